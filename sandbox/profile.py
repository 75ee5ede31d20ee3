"""TOML profiles (version 1) into validated, frozen `Profile`s.

Every mistake is collected, not just the first, and reported as `FILE: KEY: what is
wrong` so that `sockbox check` can list them all. The rule shorthands of `--allow`,
`--deny` and `explain` (`10.0.0.0/8:1000-2000`, `unix:/run/x.sock`) are parsed here too.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import re
import socket
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import tomli

from . import confine, names
from .errors import ProfileError
from .executables import CAVEAT
from .rules import (ADDRESS_CALLS, ADDRESS_KEYS, ALL_CALLS, OPTION_CALLS, OPTION_KEYS, Action,
                    Call, Glob, Host, Option, PortRange, Protocol, Rule, Verdict, decide)
from .names import AF_INET, AF_INET6, AF_UNIX


_DECISIONS_KEPT = 4096
# wait_for_hosts: its bound, and the pauses between asking again
MAX_HOST_WAIT = 3600
_FIRST_PAUSE, _LONGEST_PAUSE = 0.25, 2.0


class LogLevel(enum.Enum):
    NONE = "none"
    DENY = "deny"
    ALL = "all"


@dataclass(frozen=True)
class Profile:
    """A loaded profile: its rules in order and what happens when none matches."""

    name: str
    description: str
    default: Action
    errno: int
    log: LogLevel
    rules: tuple[Rule, ...]
    source: str  # the file as the user named it, for messages
    text: str = field(repr=False, default="")
    filesystem: confine.Filesystem | None = None  # None: files are not confined
    process: confine.Process = field(default_factory=confine.Process)
    wait_for_hosts: float = 0  # seconds a `host` may take to resolve at start

    @classmethod
    def from_toml(cls, text: str, source: str = "profile.toml") -> Profile:
        try:
            document = tomli.loads(text)
        except tomli.TOMLDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise ProfileError(source, [(where, error.msg)]) from None
        except (ValueError, RecursionError) as error:  # Python's limits: huge integers, deep nesting
            raise ProfileError(source, [("", f"not readable as TOML: {error}")]) from None
        return _Reader(source).profile(document, text)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Profile:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise ProfileError(str(path), [("", _os_reason(error))]) from None
        return cls.from_toml(text, str(path))

    @property
    def uses_exe(self) -> bool:
        """Whether a rule names executables (which executables.py must vouch for)."""
        return any(rule.exe is not None for rule in self.rules)

    @property
    def notes(self) -> list[str]:
        """What a user of this profile should know of what its rules hold against."""
        labels = [rule.label.split(":", 1)[-1] for rule in self.rules if rule.exe is not None]
        return [f"{', '.join(labels)}: {CAVEAT}"] if labels else []

    @property
    def default_verdict(self) -> Verdict:
        return Verdict(self.default, self.errno, None)

    @property
    def effective_rules(self) -> tuple[Rule, ...]:
        """The rules in the order they are tried: sockbox's own first (ALWAYS_RULES)."""
        return (*ALWAYS_RULES, *self.rules)

    def decide(self, call: Call) -> Verdict:
        # decide() is pure and a program asks the same things again and again (every
        # connect of a client to its server): remember recent answers.
        verdict = self._decided.get(call)
        if verdict is None:
            if len(self._decided) >= _DECISIONS_KEPT:
                self._decided.clear()
            verdict = self._decided[call] = decide(self.effective_rules, self.default_verdict, call)
        return verdict

    @functools.cached_property
    def _decided(self) -> dict[Call, Verdict]:
        return {}

    def audits(self, verdict: Verdict) -> bool:
        """Whether the audit record covers this decision. A kill is always recorded,
        since it is the reason the whole sandbox ends."""
        if verdict.action is Action.KILL or (verdict.rule is not None and verdict.rule.log):
            return True
        if self.log is LogLevel.ALL:
            return True
        return self.log is LogLevel.DENY and verdict.action is not Action.ALLOW

    def with_hosts_resolved(self, sleep: Callable[[float], None] = time.sleep,
                            waiting: Callable[[str], None] | None = None) -> Profile:
        """This profile with every `host` resolved now (getaddrinfo: A and AAAA). A name
        that does not resolve is an error: a rule that silently never matched would turn
        a deny into an allow. With `wait_for_hosts`, the names that do not resolve yet
        are asked again (a resolver a little late at a container's start) until that many
        seconds have passed; `waiting` hears why, once, and nothing runs meanwhile."""
        wanted = {host.name for rule in self.rules for host in rule.host or ()}
        found: dict[str, frozenset] = {}
        reasons: dict[str, str] = {}
        deadline = time.monotonic() + self.wait_for_hosts
        pause = _FIRST_PAUSE
        while True:
            for name in sorted(wanted - found.keys()):
                try:
                    infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
                    found[name] = frozenset(ipaddress.ip_address(str(i[4][0]).split("%")[0])
                                            for i in infos)
                    reasons.pop(name, None)
                except (socket.gaierror, UnicodeError) as error:
                    reasons[name] = getattr(error, "strerror", None) or str(error)
            left = deadline - time.monotonic()
            if not reasons or left <= 0:
                break
            if waiting is not None and pause == _FIRST_PAUSE:
                waiting(f"waiting up to {self.wait_for_hosts:g} s for host names to resolve: "
                        + ", ".join(f"{name} ({reason})" for name, reason in sorted(reasons.items())))
            sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE)
        if reasons:
            waited = f", after {self.wait_for_hosts:g} s" if self.wait_for_hosts else ""
            raise ProfileError(self.source, [
                (f"{rule.label.split(':', 1)[-1]}.host", f"{host.name} does not resolve "
                                                         f"({reasons[host.name]}{waited})")
                for rule in self.rules for host in rule.host or () if host.name in reasons])
        return dataclasses.replace(self, rules=tuple(
            rule if rule.host is None else
            dataclasses.replace(rule, host=tuple(Host(host.name, found[host.name]) for host in rule.host))
            for rule in self.rules))

    def with_rules_first(self, rules: Iterable[Rule]) -> Profile:
        """This profile with `rules` tried before its own (`--allow`, `--deny`)."""
        return dataclasses.replace(self, rules=(*rules, *self.rules))

    def with_inline_rules(self, allow: Iterable[str], deny: Iterable[str]) -> Profile:
        """This profile with `--deny` and then `--allow` rules tried first."""
        rules = [inline_rule(text, Action.DENY, f"--deny {text}") for text in deny]
        rules += [inline_rule(text, Action.ALLOW, f"--allow {text}") for text in allow]
        return self.with_rules_first(rules)


def builtin_directory() -> Path:
    """Where the built-in profiles are: inside the installed package (the wheel maps
    the project's profiles/ there), or beside the package in a source checkout."""
    installed = Path(__file__).with_name("profiles")
    return installed if installed.is_dir() else Path(__file__).parent.parent / "profiles"


def builtin_names() -> list[str]:
    return sorted(path.stem for path in builtin_directory().glob("*.toml"))


def load_profile(spec: str | os.PathLike[str]) -> Profile:
    """The profile `spec` names, so that nothing a sandboxed program writes can change
    which profile a later run uses unless the user named that file:

    - a bare name (no "/", not ending in ".toml": "web") is the built-in of that name,
      never a file;
    - a path ("./app.toml", "/etc/sockbox/app.toml", "web.toml") is that file; where no
      such file exists and its stem names a built-in ("web.toml"), the built-in.
    """
    text = os.fspath(spec)
    if "/" not in text and not text.endswith(".toml"):
        if text in builtin_names():
            return _builtin(text)
        raise ProfileError(text, [("", (
            f"no built-in profile {text!r} (the built-ins: {', '.join(builtin_names())}); "
            f"a profile file is named by its path, e.g. ./{text}"))])
    path = Path(text)
    if path.exists() or os.path.islink(path):
        return Profile.from_file(path)
    stem = path.name[:-len(".toml")] if path.name.endswith(".toml") else ""
    if stem in builtin_names():
        return _builtin(stem)
    raise ProfileError(text, [("", (
        f"no such profile: no file {path.absolute()}, and {stem or path.name!r} is not a "
        f"built-in profile ({', '.join(builtin_names())})"))])


def _builtin(name: str) -> Profile:
    builtin = builtin_directory() / f"{name}.toml"
    return Profile.from_toml(builtin.read_text(), builtin.name)


def _os_reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)


# ---------------------------------------------------------------------------------------
# Reading a document


_TOP_KEYS = ("profile", "rule", "filesystem", "process")
_PROFILE_KEYS = ("name", "description", "default", "errno", "log", "wait_for_hosts", "version")
RULE_KEYS = ("calls", "action", "errno", "log", "family", "type", "protocol",
             "address", "host", "port", "path", "abstract", "level", "option", "exe")


class _Reader:
    """Turns a parsed TOML document into a Profile, collecting every error."""

    def __init__(self, source: str):
        self.source = source
        self.label = os.path.basename(source) or source
        self.errors: list[tuple[str, str]] = []

    def error(self, key: str, what: str) -> None:
        self.errors.append((key, what))

    def profile(self, document: dict[str, Any], text: str) -> Profile:
        for key in document:
            if key not in _TOP_KEYS:
                self.error(key, _unknown("top-level key", key, _TOP_KEYS))
        header = document.get("profile", {})
        if not isinstance(header, dict):
            self.error("profile", "must be a table: [profile]")
            header = {}
        for key in header:
            if key not in _PROFILE_KEYS:
                self.error(f"profile.{key}", _unknown("key", key, _PROFILE_KEYS))
        version = header.get("version", 1)
        if type(version) is not int or version != 1:  # not true, not 1.0
            self.error("profile.version", f"version {header['version']!r} is not supported (only 1)")

        stem = Path(self.source).stem
        name = self.string(header, "name", "profile.name", default=stem)
        description = self.string(header, "description", "profile.description", default="")
        default = self.choice(header.get("default", "deny"), "profile.default", Action)
        errno = self.errno(header.get("errno", "EACCES"), "profile.errno")
        log = self.choice(header.get("log", "deny"), "profile.log", LogLevel)
        wait_for_hosts = header.get("wait_for_hosts", 0)
        if not is_host_wait(wait_for_hosts):
            self.error("profile.wait_for_hosts", f"{wait_for_hosts!r} is not {HOST_WAITS}")
            wait_for_hosts = 0

        tables = document.get("rule", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.error("rule", "must be an array of tables: [[rule]]")
            tables = []
        rules = [self.rule(table, f"rule[{i}]", f"{self.label}:rule[{i}]")
                 for i, table in enumerate(tables, start=1)]
        filesystem, process = confine.read_sections(document, self.source, self.error, _unknown)
        if self.errors:
            raise ProfileError(self.source, self.errors)
        return Profile(name, description, default, errno, log,
                       tuple(r for r in rules if r is not None), self.source, text, filesystem, process,
                       wait_for_hosts)

    # -- one [[rule]] table ---------------------------------------------------------------

    def rule(self, table: dict[str, Any], where: str, label: str) -> Rule | None:
        errors_before = len(self.errors)
        for key in table:
            if key not in RULE_KEYS:
                self.error(f"{where}.{key}", _unknown("key", key, RULE_KEYS))
        calls = self.calls(table.get("calls", "*"), f"{where}.calls")
        if "action" not in table:
            self.error(f"{where}.action", "missing: every rule needs allow, deny or kill")
        action = self.choice(table.get("action", "deny"), f"{where}.action", Action)
        errno = None
        if "errno" in table:
            errno = self.errno(table["errno"], f"{where}.errno")
            if action not in (Action.DENY, None):
                self.error(f"{where}.errno", f"only a deny rule returns an errno, this one is {action.value}")
        log = table.get("log", False)
        if not isinstance(log, bool):
            self.error(f"{where}.log", f"must be true or false, not {log!r}")
        conditions = {
            key: self.items(table[key], f"{where}.{key}", _PARSERS[key])
            for key in _PARSERS if key in table
        }
        self.applicable(conditions, calls, where)
        if len(self.errors) > errors_before:
            return None
        return Rule(label=label, calls=calls, action=action, errno=errno, log=log, **conditions)

    def applicable(self, conditions: dict[str, Any], calls: frozenset[str], where: str) -> None:
        """Report conditions that no call of the rule could ever satisfy."""
        present = [key for key in ADDRESS_KEYS if conditions.get(key) is not None]
        if present and not calls & ADDRESS_CALLS:
            self.error(f"{where}.{present[0]}",
                       f"none of {', '.join(sorted(calls))} carries an address "
                       f"(only {', '.join(sorted(ADDRESS_CALLS))} do)")
            return
        present = [key for key in OPTION_KEYS if conditions.get(key) is not None]
        if present and not calls & OPTION_CALLS:
            self.error(f"{where}.{present[0]}",
                       f"none of {', '.join(sorted(calls))} names a socket option "
                       f"(only {', '.join(sorted(OPTION_CALLS))} do)")
            return
        levels, options = conditions.get("level"), conditions.get("option")
        if levels is not None and options is not None and all(
                o.level is not None and o.level not in levels for o in options):
            self.error(f"{where}.option", "none of these options exists at the rule's levels")
        families = conditions.get("family")
        families = set(families) if families is not None else None
        networks = conditions.get("address") or ()
        address_kind = {AF_INET if net.version == 4 else AF_INET6 for net in networks}
        for key, kind in (("address", address_kind), ("host", {AF_INET, AF_INET6}),
                          ("port", {AF_INET, AF_INET6}),
                          ("path", {AF_UNIX}), ("abstract", {AF_UNIX})):
            if conditions.get(key) is None:
                continue
            if families is not None and not families & kind:
                self.error(f"{where}.{key}", f"never holds for family "
                           f"{', '.join(names.family_name(f) for f in sorted(families))}")
                return
            families = kind if families is None else families & kind
        protocols = conditions.get("protocol")
        if protocols is not None and families is not None and all(
                p.families is not None and not p.families & families for p in protocols):
            self.error(f"{where}.protocol", "none of these protocols exists in the rule's families")
        destination = [key for key in ("address", "host", "port") if conditions.get(key) is not None]
        types = conditions.get("type")
        if destination and types is not None and types <= {names.SOCK_RAW}:
            self.error(f"{where}.{destination[0]}", "never holds on a raw socket: its packets go "
                       "where the headers it writes say (allow raw sockets by type alone)")
        elif (conditions.get("port") is not None and protocols is not None
              and all(p.number not in names.PORT_PROTOCOLS for p in protocols)):
            self.error(f"{where}.port", "none of these protocols has ports")
        if conditions.get("address") is not None and conditions.get("path") is not None:
            self.error(f"{where}.path", "an address is either inet or unix: address and path never both hold")
        if conditions.get("host") is not None and conditions.get("path") is not None:
            self.error(f"{where}.path", "a host is reached over inet or inet6, never at a unix path")
        if conditions.get("path") is not None and conditions.get("abstract") is not None:
            self.error(f"{where}.abstract", "a unix address is a path or abstract, never both")

    # -- values -----------------------------------------------------------------------------

    def string(self, table: dict[str, Any], key: str, where: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            self.error(where, f"must be a string, not {value!r}")
            return default
        return value

    def choice(self, value: Any, where: str, enum_type: type[enum.Enum]) -> Any:
        choices = [member.value for member in enum_type]
        if value not in choices:
            self.error(where, f"{value!r} is not one of {', '.join(choices)}")
            return None
        return enum_type(value)

    def errno(self, value: Any, where: str) -> int:
        number = parse_errno(value)
        if number is None:
            self.error(where, f"{value!r} is not an errno name (like EACCES) or a number 1-4095")
            return 1
        return number

    def calls(self, value: Any, where: str) -> frozenset[str]:
        if value == "*":
            return ALL_CALLS
        if not isinstance(value, list) or not value:
            self.error(where, 'must be "*" or a non-empty list of call names')
            return ALL_CALLS
        calls: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                self.error(where, f"{item!r} is not a call name")
            elif item == "*":
                calls |= ALL_CALLS
            elif item in ALL_CALLS:
                calls.add(item)
            else:
                self.error(where, _unknown("call", item, names.SUBCALLS))
        return frozenset(calls) or ALL_CALLS

    def items(self, value: Any, where: str, parse: Callable[[Any], Any]) -> Any:
        values = value if isinstance(value, list) else [value]
        if not values:
            self.error(where, "an empty list matches nothing; leave the key out to match anything")
            return None
        parsed = []
        for item in values:
            try:
                parsed.append(parse(item))
            except ValueError as error:
                self.error(where, str(error))
        if len(parsed) < len(values):
            return None
        return frozenset(parsed) if parse in (parse_family, parse_type, parse_level) else tuple(parsed)


def _unknown(what: str, value: Any, known: Iterable[str]) -> str:
    import difflib  # only a profile with a mistake pays for it

    close = difflib.get_close_matches(str(value), list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}"


def parse_errno(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= 4095 else None
    if isinstance(value, str):
        return names.errno_number(value.upper())
    return None


def _number_or_name(value: Any, table: dict[str, int], what: str, limit: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= limit:
            return value
        raise ValueError(f"{what} {value} is outside 0-{limit}")
    if isinstance(value, str):
        key = value.lower()
        if key in table:
            return table[key]
        raise ValueError(_unknown(what, value, table))
    raise ValueError(f"{what} must be a name or a number, not {value!r}")


def parse_family(value: Any) -> int:
    if isinstance(value, str) and value.lower() in names.FAMILY_ALIASES:
        value = names.FAMILY_ALIASES[value.lower()]
    return _number_or_name(value, names.FAMILIES, "family", 0xFFFF)


def parse_type(value: Any) -> int:
    return _number_or_name(value, names.SOCK_TYPES, "type", names.SOCK_TYPE_MASK)


def parse_protocol(value: Any) -> Protocol:
    if isinstance(value, str) and value.lower() in names.PROTOCOLS:
        families, number = names.PROTOCOLS[value.lower()]
        return Protocol(number, families)
    return Protocol(_number_or_name(value, {}, "protocol", 0xFFFF))


def parse_level(value: Any) -> int:
    return _number_or_name(value, names.SOCKOPT_LEVELS, "level", 0xFFFFFFFF)


def parse_option(value: Any) -> Option:
    if isinstance(value, str):
        if value.lower() not in names.SOCKET_OPTIONS:
            raise ValueError(_unknown("option", value, names.SOCKET_OPTIONS))
        level, number = names.SOCKET_OPTIONS[value.lower()]
        return Option(number, level)
    return Option(_number_or_name(value, {}, "option", 0xFFFFFFFF))


def parse_network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise ValueError(f"address must be a CIDR string, not {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"bad CIDR {value!r}: {error}") from None


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


HOST_WAITS = f"a number of seconds from 0 to {MAX_HOST_WAIT}"


def is_host_wait(seconds: Any) -> bool:
    """Whether `seconds` is a wait_for_hosts value (HOST_WAITS)."""
    return type(seconds) in (int, float) and 0 <= seconds <= MAX_HOST_WAIT


def parse_host(value: Any) -> Host:
    if not isinstance(value, str) or not value:
        raise ValueError(f"host must be a host name, not {value!r}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        raise ValueError(f"host {value!r} is an address: write it under address")
    labels = value.rstrip(".").split(".")
    if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"host {value!r} is not a host name")
    return Host(value.rstrip(".").lower())


def parse_port(value: Any) -> PortRange:
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and value.count("-") == 1 and all(
            _decimal(part.strip()) for part in value.split("-")):
        low, high = (int(part) for part in value.split("-"))
    elif isinstance(value, str) and _decimal(value.strip()):
        low = high = int(value)
    else:
        raise ValueError(f'port must be a number or a "low-high" range, not {value!r}')
    if not (0 <= low <= 65535 and 0 <= high <= 65535):
        raise ValueError(f"port {value!r} is outside 0-65535")
    if low > high:
        raise ValueError(f"port range {value!r} runs backwards")
    return PortRange(low, high)


def _decimal(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _glob(value: Any, what: str) -> Glob:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty glob string, not {value!r}")
    return Glob(value)


def parse_path(value: Any) -> Glob:
    glob = _glob(value, "path")
    if not value.startswith("/"):
        raise ValueError(f"path {value!r} must be absolute: relative paths in calls are "
                         "resolved against the caller's working directory before matching")
    return glob


def parse_abstract(value: Any) -> Glob:
    if value == "":  # the empty name is a name too
        return Glob("")
    glob = _glob(value, "abstract")
    if value.startswith("@") or value.startswith("\0"):
        raise ValueError(f"abstract {value!r}: write the name without its leading NUL or @")
    return glob


def parse_exe(value: Any) -> Glob:
    glob = _glob(value, "exe")
    if not value.startswith("/"):
        raise ValueError(f"exe {value!r} must be an absolute path pattern")
    return glob


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "family": parse_family, "type": parse_type, "protocol": parse_protocol,
    "address": parse_network, "host": parse_host, "port": parse_port, "path": parse_path,
    "abstract": parse_abstract, "level": parse_level, "option": parse_option,
    "exe": parse_exe,
}


# ---------------------------------------------------------------------------------------
# Shorthands: --allow/--deny RULE and explain's TARGET


def parse_target(text: str) -> dict[str, Any]:
    """`1.2.3.4:443`, `[2001:db8::1]:53`, `10.0.0.0/8:1000-2000`, `*:443`,
    `unix:/run/x.sock`, `unix:@name`, or a family name, as rule conditions."""
    if text.startswith("unix:"):
        rest = text[len("unix:"):]
        if rest.startswith("@"):
            return {"abstract": (parse_abstract(rest[1:]),)}
        return {"path": (parse_path(rest),)}
    if _WORD.fullmatch(text):  # no address or port has only letters: a family, or a typo of one
        return {"family": frozenset({parse_family(text)})}
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"target {text!r}: write an IPv6 address as [addr]:port")
        ports = rest[1:]
    elif text.count(":") > 1:
        raise ValueError(f"target {text!r}: an IPv6 address goes in brackets, "
                         f"{_bracketed(text)}")
    else:
        host, _, ports = text.partition(":")
    conditions: dict[str, Any] = {}
    if host not in ("*", ""):
        conditions["address"] = (parse_network(host),)
    if ports:
        conditions["port"] = tuple(parse_port(p) for p in ports.split(","))
    if not conditions:
        raise ValueError(f"target {text!r} names neither an address nor a port")
    return conditions


_WORD = re.compile(r"[A-Za-z_]+[0-9]*")


def _bracketed(text: str) -> str:
    """How an unbracketed IPv6 target was probably meant: with its last group a port, or
    as an address alone."""
    spellings = []
    address, _, port = text.rpartition(":")
    if _decimal(port) and _is_network(address):
        spellings.append(f"[{address}]:{port} for port {port} of {address}")
    if _is_network(text):
        spellings.append(f"[{text}] for the address alone")
    return " or ".join(spellings) or "as in [2001:db8::1]:443"


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=True)
        return True
    except ValueError:
        return False


def inline_rule(text: str, action: Action, label: str) -> Rule:
    """A rule from `CALL[,CALL...][=TARGET]`, e.g. `connect=127.0.0.1:8000`."""
    call_text, _, target = text.partition("=")
    reader = _Reader(label)
    calls = reader.calls([c.strip() for c in call_text.split(",")] if call_text != "*" else "*", "calls")
    try:
        conditions = parse_target(target) if target else {}
    except ValueError as error:
        reader.error("target", str(error))
        conditions = {}
    reader.applicable(conditions, calls, "target")
    if reader.errors:
        raise ProfileError(label, reader.errors)
    return Rule(label=label, calls=calls, action=action, **conditions)


# Before every profile's rules, what no profile may allow: socket options that route
# packets through hosts of the sender's choosing (IPv4 source routing, IPv6 routing
# headers, segment routing among them, also inside IPV6_2292PKTOPTIONS' control data,
# and a next hop), so that a connection allowed to one address would travel through any
# other; and SCTP's options that connect to or bind addresses given in their value,
# which a socket call's rules would never see.
ALWAYS_RULES = _Reader("sockbox").profile(tomli.loads("""
[[rule]]
calls = ["setsockopt"]
option = ["ip_options", "ipv6_rthdr", "ipv6_2292rthdr", "ipv6_2292pktoptions", "ipv6_nexthop"]
action = "deny"
errno = "EPERM"

[[rule]]
calls = ["setsockopt"]
option = ["sctp_sockopt_connectx_old", "sctp_sockopt_connectx", "sctp_sockopt_bindx_add",
          "sctp_sockopt_bindx_rem"]
action = "deny"
errno = "EPERM"

[[rule]]
calls = ["getsockopt"]
option = ["sctp_sockopt_connectx3"]
action = "deny"
errno = "EPERM"
"""), "").rules

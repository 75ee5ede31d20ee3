"""The rule model and the decision: first matching rule wins. Pure: no I/O.

A `Call` holds the facts the supervisor gathered about one socket call; `decide` walks
the rules in order and returns the `Verdict` of the first whose every condition holds.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import re
import warnings
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from .decode import Address, Inet4, Inet6, Unix
from .names import (AF_INET, PORT_PROTOCOLS, SOCK_RAW, SOCK_TYPE_MASK, SUBCALLS, default_protocol,
                    errno_name, family_name, level_name, option_name, protocol_name, type_name)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The calls that can name an address, so the only ones `address`, `port`, `path` and
# `abstract` can apply to: listen's is the local address it listens on.
ADDRESS_CALLS = frozenset({"bind", "connect", "listen", "sendto", "sendmsg", "sendmmsg"})
# A call that names no address is also its plain twin: a sendto, sendmsg or sendmmsg
# without a destination is a send (send() is exactly that on x86_64), a recvfrom without
# an address buffer a recv; and socketcall's SYS_SEND and SYS_RECV are their plain forms.
PLAIN_ALIAS = {"sendto": "send", "sendmsg": "send", "sendmmsg": "send", "recvfrom": "recv",
               "send": "sendto", "recv": "recvfrom"}
ADDRESS_KEYS = ("address", "host", "port", "path", "abstract")
# The calls that name a socket option, so the only ones `level` and `option` can apply to.
OPTION_CALLS = frozenset({"setsockopt", "getsockopt"})
OPTION_KEYS = ("level", "option")
CONDITION_KEYS = ("family", "type", "protocol", *ADDRESS_KEYS, *OPTION_KEYS, "exe")


class Action(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    KILL = "kill"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.DENY: 1, Action.KILL: 2}


class Glob:
    """A glob where `*` and `?` stay within one path component and `**` crosses `/`."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        try:
            with warnings.catch_warnings():
                # "--" in a class: a set operation in some future Python, a range today
                warnings.simplefilter("ignore", FutureWarning)
                self._regex = re.compile(_glob_to_regex(pattern), re.DOTALL)
        except re.error as error:  # a class the regex engine refuses, as [z-a]
            raise ValueError(f"glob {pattern!r}: {error.msg}") from None

    def matches(self, text: str) -> bool:
        return self._regex.fullmatch(text) is not None

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def __reduce__(self) -> tuple[type[Glob], tuple[str]]:
        return type(self), (self.pattern,)  # compiled again as __init__ compiles it (warnings kept quiet)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Glob) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


def _glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(pattern, i)) != -1:
            body = pattern[i + 1:end]
            negate = body.startswith("!")
            # Escape what a regex class would read otherwise (and what may one day be
            # set operations: [, &, ~, |).
            body = re.sub(r"([\\^\[&~|])", r"\\\1", body[1:] if negate else body)
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Where the class opened at `start` closes, as fnmatch reads it: a `]` right after
    `[` or `[!` is a member, not the end. -1: no class, the `[` is literal."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1
    return pattern.find("]", j)


@dataclass(frozen=True)
class PortRange:
    """An inclusive range of ports."""

    low: int
    high: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.low <= port <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Protocol:
    """A protocol number, valid within `families` (None: on any family)."""

    number: int
    families: frozenset[int] | None = None


@dataclass(frozen=True)
class Host:
    """A host name in a rule, and the addresses it had when the sandbox started (None
    until then: a rule with an unresolved host never decides)."""

    name: str
    addresses: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] | None = None

    def __contains__(self, ip: object) -> bool:
        return self.addresses is not None and ip in self.addresses


@dataclass(frozen=True)
class Option:
    """A socket option number, within `level` (None: at any level)."""

    number: int
    level: int | None = None


@dataclass(frozen=True)
class Rule:
    """One rule of a profile: the conditions a call must meet, and the action."""

    label: str  # "web.toml:rule[2]" (1-based), as the audit record names it
    calls: frozenset[str]
    action: Action
    errno: int | None = None  # None: the profile's errno
    log: bool = False
    family: frozenset[int] | None = None
    type: frozenset[int] | None = None
    protocol: tuple[Protocol, ...] | None = None
    address: tuple[IPNetwork, ...] | None = None
    host: tuple[Host, ...] | None = None
    port: tuple[PortRange, ...] | None = None
    path: tuple[Glob, ...] | None = None
    abstract: tuple[Glob, ...] | None = None
    level: frozenset[int] | None = None
    option: tuple[Option, ...] | None = None
    exe: tuple[Glob, ...] | None = None

    def __str__(self) -> str:
        calls = "*" if self.calls == ALL_CALLS else ",".join(c for c in SUBCALLS if c in self.calls)
        parts = [self.action.value, calls]
        parts += [f"{key}={_show(key, getattr(self, key))}" for key in self.keys()]
        if self.errno is not None:
            parts.append(f"errno={errno_name(self.errno)}")
        if self.log:
            parts.append("log")
        return " ".join(parts)

    def keys(self) -> tuple[str, ...]:
        """The condition keys this rule sets."""
        return tuple(key for key, _, _ in self._conditions)

    @functools.cached_property
    def _conditions(self) -> tuple[tuple[str, Callable[[Any, Call], bool], Any], ...]:
        return tuple((key, _HOLDS[key], getattr(self, key)) for key in CONDITION_KEYS
                     if getattr(self, key) is not None)

    def applies_to(self, name: str, alias: str | None = None) -> bool:
        return name in self.calls or (alias is not None and alias in self.calls)

    def matches(self, call: Call, any_exe: bool = False) -> bool:
        """`any_exe`: judge `exe` conditions as holding (the executable is not known)."""
        if not self.applies_to(call.name, call.alias):
            return False
        return all((any_exe and key == "exe") or holds(value, call) for key, holds, value in self._conditions)


@dataclass(frozen=True)
class Call:
    """What the supervisor knows about one socket call."""

    name: str  # the operation: one of names.SUBCALLS
    alias: str | None = None  # "send" or "recv" when the call is a plain one in disguise
    family: int | None = None  # the address's family if the call names one, else the socket's
    type: int | None = None
    protocol: int | None = None  # as asked for: 0 means the family's default
    address: Address | None = None
    path: str | None = None  # a unix path, resolved as the kernel resolves it
    level: int | None = None  # setsockopt, getsockopt
    option: int | None = None
    exe: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What a profile decided for a call, and which rule decided it."""

    action: Action
    errno: int
    rule: Rule | None  # None: the profile's default decided


def decide(rules: Sequence[Rule], default: Verdict, call: Call) -> Verdict:
    """The verdict of the first matching rule, judging an IPv6 address that carries an
    IPv4 one as both and keeping the stricter verdict (see `ipv4_views`). A call whose
    executable is not known (`exe` None: sockbox does not vouch for it) may be any
    program's: it is judged as one that no `exe` condition names and as one that every
    `exe` condition names, and the stricter verdict kept, so that neither an allow nor
    a deny rule on `exe` is passed by a process sockbox cannot name."""
    exe_views = (False, True) if call.exe is None else (False,)
    verdicts = [_first_match(rules, default, view, any_exe) for view in views(call) for any_exe in exe_views]
    # On a tie, name the rule rather than the default.
    return max(verdicts, key=lambda verdict: (verdict.action.severity, verdict.rule is not None))


def _first_match(rules: Sequence[Rule], default: Verdict, call: Call, any_exe: bool) -> Verdict:
    for rule in rules:
        if rule.matches(call, any_exe):
            return Verdict(rule.action, default.errno if rule.errno is None else rule.errno, rule)
    return default


def views(call: Call) -> list[Call]:
    """The call as `decide` judges it: once, or, for an address that is another's in
    disguise (an IPv6 spelling of an IPv4 one), once per address it may reach."""
    if not isinstance(call.address, Inet6):
        return [call]
    mapped, carried = ipv4_views(call.address.address)
    as_ipv4 = [replace(call, family=AF_INET, address=Inet4(v4, call.address.port)) for v4 in carried]
    return as_ipv4 if mapped else [call, *as_ipv4]


_LOOPBACK4 = ipaddress.IPv4Address("127.0.0.1")
_LOOPBACK6 = ipaddress.IPv6Address("::1")
_MAPPED_ANY = ipaddress.IPv6Address("::ffff:0.0.0.0")


def reached(destination: Inet4 | Inet6, local: Address | None) -> Inet4 | Inet6:
    """Where a destination of "nowhere" goes, as the kernel routes it: 0.0.0.0 (and an
    IPv6 socket's ::ffff:0.0.0.0) to the socket's own bound IPv4 address, or loopback
    where it is bound to none (ip_route_output_key_hash_rcu); :: to loopback, IPv4's
    on a socket bound to an IPv4-mapped address (tcp_v6_connect, udpv6_sendmsg). Any
    other destination goes where it says."""
    ip = destination.address
    if not names_nowhere(destination):
        return destination
    if isinstance(destination, Inet6) and ip.is_unspecified:
        bound = local.address if isinstance(local, Inet6) else None
        mapped = bound is not None and bound.ipv4_mapped is not None
        return replace(destination, address=_mapped(_LOOPBACK4) if mapped else _LOOPBACK6)
    bound4 = local.address if isinstance(local, Inet4) else (
        local.address.ipv4_mapped if isinstance(local, Inet6) else None)
    concrete = bound4 if bound4 is not None and not bound4.is_unspecified else _LOOPBACK4
    if isinstance(destination, Inet4):
        return replace(destination, address=concrete)
    return replace(destination, address=_mapped(concrete))


def names_nowhere(destination: Inet4 | Inet6) -> bool:
    """0.0.0.0, :: or ::ffff:0.0.0.0: a destination the kernel turns into another."""
    return destination.address.is_unspecified or destination.address == _MAPPED_ANY


def _mapped(ip: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(int(_MAPPED_ANY) | int(ip))
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def ipv4_views(address: ipaddress.IPv6Address) -> tuple[bool, list[ipaddress.IPv4Address]]:
    """The IPv4 addresses an IPv6 address carries, and whether it *is* IPv4 traffic.

    An IPv4-mapped address is IPv4 on the wire, so it is judged only as IPv4. Other
    spellings (IPv4-compatible, SIIT-translated, NAT64, 6to4, Teredo) are routed as IPv6
    but reach the IPv4 host through a gateway or tunnel, so they are judged both ways.
    """
    value = int(address)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _MAPPED:
        return True, [low32]
    if address in _TRANSLATED or address in _NAT64:
        return False, [low32]
    if address in _COMPATIBLE and value > 1:
        return False, [low32]
    if address in _SIX_TO_FOUR:
        return False, [ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)]
    if address in _TEREDO:  # the server's address, then the client's (obfuscated)
        return False, [ipaddress.IPv4Address((value >> 64) & 0xFFFFFFFF),
                       ipaddress.IPv4Address(~value & 0xFFFFFFFF)]
    return False, []


def effective_protocol(family: int, sock_type: int, protocol: int) -> int:
    return protocol or default_protocol(family, sock_type & SOCK_TYPE_MASK)


def _family_holds(families: frozenset[int], call: Call) -> bool:
    return call.family in families


def _type_holds(types: frozenset[int], call: Call) -> bool:
    return call.type is not None and call.type & SOCK_TYPE_MASK in types


def _protocol_holds(protocols: Iterable[Protocol], call: Call) -> bool:
    if call.protocol is None or call.family is None or call.type is None:
        return False
    number = effective_protocol(call.family, call.type, call.protocol)
    return any(p.number == number and (p.families is None or call.family in p.families)
               for p in protocols)


def addresses_the_traffic(call: Call) -> bool:
    """Whether the call's address is where its packets go. Not for a raw socket: its
    packets carry the headers the program writes (IP_HDRINCL, which any raw socket may
    set, puts the destination there too)."""
    return call.type is not None and call.type & SOCK_TYPE_MASK != SOCK_RAW


def ports_the_traffic(call: Call) -> bool:
    """Whether the call's port is the one its packets go to: only for protocols with
    ports (TCP, UDP, ...), never for raw sockets (whose ports are ignored, or read as
    the protocol) nor ping sockets (whose port is ignored)."""
    return (addresses_the_traffic(call) and call.family is not None and call.type is not None
            and effective_protocol(call.family, call.type, call.protocol or 0) in PORT_PROTOCOLS)


def _address_holds(networks: Iterable[IPNetwork], call: Call) -> bool:
    if not isinstance(call.address, (Inet4, Inet6)) or not addresses_the_traffic(call):
        return False
    ip = call.address.address
    return any(ip.version == net.version and ip in net for net in networks)


def _host_holds(hosts: Iterable[Host], call: Call) -> bool:
    return (isinstance(call.address, (Inet4, Inet6)) and addresses_the_traffic(call)
            and any(call.address.address in h for h in hosts))


def matched_host(rule: Rule | None, call: Call) -> str | None:
    """The host of `rule` whose addresses the call's address is among, for the record."""
    if rule is None or rule.host is None or not isinstance(call.address, (Inet4, Inet6)):
        return None
    return next((h.name for h in rule.host if call.address.address in h), None)


def _port_holds(ports: Iterable[PortRange], call: Call) -> bool:
    return (isinstance(call.address, (Inet4, Inet6)) and ports_the_traffic(call)
            and any(call.address.port in r for r in ports))


def _path_holds(globs: Iterable[Glob], call: Call) -> bool:
    return call.path is not None and any(g.matches(call.path) for g in globs)


def _abstract_holds(globs: Iterable[Glob], call: Call) -> bool:
    if not isinstance(call.address, Unix) or call.address.abstract is None:
        return False
    name = os.fsdecode(call.address.abstract)
    return any(g.matches(name) for g in globs)


def _level_holds(levels: frozenset[int], call: Call) -> bool:
    return call.level in levels


def _option_holds(options: Iterable[Option], call: Call) -> bool:
    return call.option is not None and any(
        o.number == call.option and (o.level is None or o.level == call.level) for o in options)


def _exe_holds(globs: Iterable[Glob], call: Call) -> bool:
    return call.exe is not None and any(g.matches(call.exe) for g in globs)


_HOLDS: dict[str, Callable[[Any, Call], bool]] = {
    "family": _family_holds, "type": _type_holds, "protocol": _protocol_holds,
    "address": _address_holds, "host": _host_holds, "port": _port_holds, "path": _path_holds,
    "abstract": _abstract_holds, "level": _level_holds, "option": _option_holds,
    "exe": _exe_holds,
}

ALL_CALLS = frozenset(SUBCALLS)


def _show(key: str, values: Any) -> str:
    """A condition's values as a profile would write them (the key says their kind)."""
    if key == "family":
        return ",".join(family_name(v) for v in sorted(values))
    if key == "type":
        return ",".join(type_name(v) for v in sorted(values))
    if key == "protocol":
        return ",".join(protocol_name(min(p.families), p.number) if p.families else str(p.number)
                        for p in values)
    if key in ("path", "abstract", "exe"):
        return ",".join(g.pattern for g in values)
    if key == "host":
        return ",".join(h.name for h in values)
    if key == "level":
        return ",".join(level_name(v) for v in sorted(values))
    if key == "option":
        return ",".join(option_name(o.level, o.number) if o.level is not None else str(o.number)
                        for o in values)
    return ",".join(str(v) for v in values)



def socket_decides(rules: Iterable[Rule], name: str) -> bool:
    """Whether a verdict for `name` (or for the plain call it may be) can rest on its
    socket's family, type or protocol, which only the socket itself can tell."""
    names = {name, PLAIN_ALIAS.get(name)}
    return any(rule.calls & names and any(getattr(rule, key) is not None
                                          for key in ("family", "type", "protocol"))
               for rule in rules)


def needs_socket(rules: Iterable[Rule], name: str) -> bool:
    """Whether judging `name` needs its socket looked up. (The calls that carry an
    address always look at the socket, to read the address as its protocol does.)"""
    return name not in ADDRESS_CALLS | {"socket", "socketpair"} and socket_decides(rules, name)

"""`sockbox learn`: the narrowest profile that lets a recorded run do what it did.

The run is made under the `audit` profile, so every socket call stops and is recorded;
each rule written allows exactly what was seen: addresses as single hosts, the ports
used (an ephemeral bind as port 0, not the port the kernel picked), unix paths and
abstract names literally, socket options by name, and plain sends as `send`.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections import defaultdict
from dataclasses import dataclass, field

from . import names
from .decode import Inet4, Inet6, Netlink, Unix, Unspec
from .rules import (ADDRESS_CALLS, OPTION_CALLS, PLAIN_ALIAS, Call, addresses_the_traffic,
                    effective_protocol, ports_the_traffic, views)
from .names import AF_INET, AF_INET6, AF_UNIX

_COMMON_FAMILIES = {AF_UNIX, AF_INET, AF_INET6}


@dataclass
class _Draft:
    """One rule being learned: its conditions, the calls it allows, what taught it."""

    conditions: tuple[tuple[str, str], ...]  # (key, TOML value), in the rule's order
    calls: set[str] = field(default_factory=set)
    seen: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    exes: set[str] = field(default_factory=set)

    def learn(self, call: str, example: str, exe: str | None) -> None:
        self.calls.add(call)
        self.seen[example] += 1
        if exe:
            self.exes.add(exe)


class Learner:
    """Collects the calls of a run (as an audit listener) and writes the profile."""

    def __init__(self) -> None:
        self.drafts: dict[tuple[tuple[str, str], ...], _Draft] = {}
        self.options: defaultdict[tuple[str, int], set[int]] = defaultdict(set)
        self.option_users: defaultdict[tuple[str, int], set[str]] = defaultdict(set)
        self.count = 0

    @property
    def rules(self) -> list[_Draft]:
        return sorted([*self.drafts.values(), *self._option_drafts()], key=_order)

    def __call__(self, call: Call) -> None:
        self.count += 1
        if call.name in ("socket", "socketpair") and not 0 <= (call.family or 0) <= 0xFFFF:
            return  # refused by the kernel (EAFNOSUPPORT) whatever a profile allows
        if call.name in OPTION_CALLS and call.level is not None and call.option is not None:
            # One rule per call and level, listing the options used there.
            self.options[call.name, call.level].add(call.option)
            self.option_users[call.name, call.level].add(call.exe or "")
            return
        for view in views(call):  # an allowed call must be allowed however it is judged
            conditions, name, example = _what_it_needs(view)
            draft = self.drafts.setdefault(conditions, _Draft(conditions))
            draft.learn(name, example, call.exe)

    def _option_drafts(self) -> list[_Draft]:
        drafts = []
        for (name, level), numbers in sorted(self.options.items()):
            options = [names.option_name(level, number) for number in sorted(numbers)]
            if all(not option.isdigit() for option in options):
                conditions: tuple[tuple[str, str], ...] = (("option", _names(options)),)
            else:  # some unknown to sockbox: by level and number
                conditions = (("level", f"[{level}]"), ("option", f"[{', '.join(map(str, sorted(numbers)))}]"))
            draft = _Draft(conditions, {name}, exes={e for e in self.option_users[name, level] if e})
            for option in options:
                draft.seen[f"{names.level_name(level)} {option}"] += 1
            drafts.append(draft)
        return drafts

    def profile(self, command: list[str]) -> str:
        lines = ["# Learned by `sockbox learn` from one run of:",
                 f"#   {_printable(shlex.join(command))}",
                 "# Every rule allows exactly what that run did; anything else is denied.",
                 "# No [filesystem] or [process]: learn sees socket calls, not file access",
                 "# or resource use; add them by hand (see `sockbox explain -p FILE read PATH`).",
                 "", "[profile]",
                 f"description = {_toml_string('learned from ' + shlex.join(command))}",
                 'default = "deny"']
        for draft in self.rules:
            lines += ["", *_comment(draft), "[[rule]]",
                      f"calls = [{', '.join(_toml_string(c) for c in _in_order(draft.calls))}]"]
            lines += [f"{key} = {value}" for key, value in draft.conditions]
            lines.append('action = "allow"')
        return "\n".join(lines) + "\n"


def _what_it_needs(call: Call) -> tuple[tuple[tuple[str, str], ...], str, str]:
    """The conditions that allow this call and nothing wider, the name to allow it by,
    and how to say what was seen."""
    name = call.name
    if name in ("socket", "socketpair"):
        assert call.family is not None and call.type is not None
        conditions = [("family", _names_or_numbers([names.family_name(call.family)])),
                      ("type", _names_or_numbers([names.type_name(call.type)]))]
        # netlink, packet...: the protocol matters, where a profile can name it (the
        # kernel refuses a negative one, or takes its low 16 bits)
        if call.family not in _COMMON_FAMILIES and 0 <= (call.protocol or 0) <= 0xFFFF:
            protocol = effective_protocol(call.family, call.type, call.protocol or 0)
            conditions.append(("protocol", _names_or_numbers([names.protocol_name(call.family, protocol)])))
        example = f"{names.family_name(call.family)} {names.type_name(call.type)}"
        return tuple(conditions), name, example
    if name in ADDRESS_CALLS:
        return _destination(call)
    return (), name, name


def _destination(call: Call) -> tuple[tuple[tuple[str, str], ...], str, str]:
    address = call.address
    if address is None:  # names no destination: a plain send
        alias = PLAIN_ALIAS.get(call.name) or call.name
        return (), alias, f"{call.name} with no destination"
    if isinstance(address, (Inet4, Inet6)) and not addresses_the_traffic(call):
        # A raw socket's packets go where the headers it writes say: only its type can
        # allow it (address and port conditions never hold for it).
        assert call.type is not None
        conditions = (("family", _names([names.family_name(address.family)])),
                      ("type", _names_or_numbers([names.type_name(call.type)])))
        return conditions, call.name, f"a raw {names.family_name(address.family)} socket to {address.address}"
    if isinstance(address, (Inet4, Inet6)):
        network = ipaddress.ip_network(address.address)
        if call.name == "listen":  # on the port its bind got: the bind's rule says which
            return (("address", _names([str(network)])),), call.name, f"listening on {address.address}"
        if not ports_the_traffic(call):  # a protocol without ports (ping, ...): the address only
            return (("address", _names([str(network)])),), call.name, str(address.address)
        port = str(address.port) + (" (any free port)" if address.port == 0 else "")
        return ((("address", _names([str(network)])), ("port", f"[{address.port}]")),
                call.name, f"{address.address} port {port}")
    if isinstance(address, Unix) and call.path is not None:
        return (("path", _names([_literal_glob(call.path)])),), call.name, call.path
    if isinstance(address, Unix) and address.abstract is not None:
        text = address.abstract.decode(errors="surrogateescape")
        glob = _literal_glob(text)
        if text[:1] in ("@", "\0"):  # as a class: profiles write names without these in front
            glob = f"[{text[0]}]" + glob[1:]
        return (("abstract", _names([glob])),), call.name, f"@{text}"
    if isinstance(address, Unspec):
        return (("family", '["unspec"]'),), call.name, "AF_UNSPEC (dissolving an association)"
    family = names.family_name(address.family)
    what = "an unnamed unix address" if isinstance(address, Unix) else f"a {family} address"
    if isinstance(address, Netlink):
        what = f"netlink pid {address.pid} groups {address.groups:#x}"
    return (("family", _names_or_numbers([family])),), call.name, what


def _literal_glob(text: str) -> str:
    """A glob that matches `text` only: its *, ? and [ stand for themselves. A byte that
    is not UTF-8 (held as a lone surrogate) cannot be written in TOML: `?` stands for it."""
    return "".join(f"[{char}]" if char in "*?[" else "?" if _is_surrogate(char) else char
                   for char in text)


def _names(values: list[str]) -> str:
    return "[" + ", ".join(_toml_string(v) for v in values) + "]"


def _names_or_numbers(values: list[str]) -> str:
    """Families, types and protocols sockbox has no name for are numbers."""
    return "[" + ", ".join(v if v.isdigit() else _toml_string(v) for v in values) + "]"


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _printable(escaped, surrogate="\ufffd") + '"'


def _printable(text: str, surrogate: str | None = None) -> str:
    """`text` with every character TOML cannot hold raw (line breaks above all, which
    would end a comment and start a rule of the program's choosing) as a TOML escape.
    A lone surrogate has no escape: it becomes `surrogate`, or in a comment its code."""
    def escape(char: str) -> str:
        code = ord(char)
        if _is_surrogate(char) and surrogate is not None:
            return surrogate
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return "".join(char if char.isprintable() else escape(char) for char in text)


def _is_surrogate(char: str) -> bool:
    return 0xD800 <= ord(char) <= 0xDFFF


def _in_order(calls: set[str]) -> list[str]:
    return [name for name in names.SUBCALLS if name in calls]


def _order(draft: _Draft) -> tuple[int, str]:
    first = min(names.SUBCALLS.index(c) for c in draft.calls)
    return first, str(draft.conditions)


def _comment(draft: _Draft) -> list[str]:
    seen = "; ".join(f"{what} ({n} time{'s' if n > 1 else ''})" if n > 1 else what
                     for what, n in sorted(draft.seen.items()))
    lines = [f"# learned from: {_printable(seen)}"]
    if draft.exes:
        lines.append(f"# by: {_printable(', '.join(sorted(draft.exes)))}")
    return lines

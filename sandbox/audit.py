"""The audit record: one `Event` per audited decision, as JSON lines or strace-like text."""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from . import names
from .calls import Subject, int32
from .decode import Address, Inet4, Inet6, Netlink, Unix, Unknown, Unspec
from .errors import SupervisorError
from .names import AF_INET, AF_INET6
from .rules import Action, Verdict, effective_protocol, matched_host


@dataclass(frozen=True)
class Event:
    """One decision, with the fields of SPEC's audit record."""

    time: str
    pid: int
    exe: str | None
    abi: str  # "x86_64" or "i386"
    via: str  # "direct" or "socketcall"
    call: str
    fd: int | None
    family: str | None
    action: str  # "allow", "deny" or "kill"
    errno: str | None  # for deny: the errno the call returned
    rule: str | None  # "web.toml:rule[2]"; None when the profile's default decided
    address: str | None = None
    port: int | None = None
    host: str | None = None  # the rule's host name the address was matched as
    path: str | None = None
    abstract: str | None = None
    type: str | None = None
    protocol: str | None = None
    netlink_pid: int | None = None
    groups: int | None = None

    _ALWAYS = ("time", "pid", "exe", "abi", "via", "call", "fd", "family", "action", "errno", "rule")

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in dataclasses.asdict(self).items()
                if value is not None or key in self._ALWAYS}

    def to_json(self) -> str:
        import json  # where a sink writes JSON: a quiet run never does

        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Event:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in fields})


def make_event(subject: Subject, verdict: Verdict, pid: int, abi: str, via: str) -> Event:
    call = subject.call
    event = Event(
        time=_now(),
        pid=pid, exe=call.exe, abi=abi, via=via, call=call.name, fd=subject.fd,
        family=names.family_name(call.family) if call.family is not None else None,
        action=verdict.action.value,
        errno=names.errno_name(verdict.errno) if verdict.action is Action.DENY else None,
        rule=verdict.rule.label if verdict.rule else None,
    )
    if call.name in ("socket", "socketpair") and call.family is not None and call.type is not None:
        protocol = effective_protocol(call.family, call.type, call.protocol or 0)
        return dataclasses.replace(event, type=names.type_name(call.type),
                                   protocol=names.protocol_name(call.family, protocol))
    return dataclasses.replace(event, host=matched_host(verdict.rule, call),
                               **_address_fields(call.address, call.path))


def _address_fields(address: Address | None, resolved_path: str | None) -> dict[str, Any]:
    if isinstance(address, (Inet4, Inet6)):
        return {"address": str(address.address), "port": address.port}
    if isinstance(address, Unix):
        if address.abstract is not None:
            return {"abstract": os.fsdecode(address.abstract)}
        if resolved_path is not None:
            return {"path": resolved_path}
    if isinstance(address, Netlink):
        return {"netlink_pid": address.pid, "groups": address.groups}
    return {}


# --- the text form: strace's notation ---------------------------------------------------


def format_text(event: Event, subject: Subject) -> str:
    outcome = {"deny": f" = -1 {event.errno}", "kill": " = ? (sandbox killed)"}.get(event.action, "")
    rule = event.rule or "default"
    exe = f" {event.exe}" if event.exe else ""
    return f"sockbox: {event.action} {format_call(subject)}{outcome} [{rule}] pid {event.pid}{exe}"


def format_call(subject: Subject) -> str:
    """The call in strace's notation, as far as the supervisor read it: the addresses and
    message headers it judged in full, other memory (buffers, option values, lengths
    passed by pointer) as the pointer the program passed. Never the raw registers."""
    return f"{subject.call.name}({', '.join(_ARGUMENTS[subject.call.name](subject))})"


def _socket(subject: Subject) -> list[str]:
    call = subject.call
    family = call.family or 0
    parts = [names.af_constant(family), names.sock_type_constant((call.type or 0) & 0xFFFFFFFF),
             _protocol_constant(family, call.protocol or 0)]
    if call.name == "socketpair":
        parts.append(_pointer(subject.args[3]))
    return parts


def _address_call(subject: Subject) -> list[str]:  # bind, connect
    args = subject.args
    return [_fd(subject), _sockaddr(subject, args[1]), str(int32(args[2]))]


def _fd_and_pointers(subject: Subject) -> list[str]:  # accept, getsockname, getpeername
    return [_fd(subject), *map(_pointer, subject.args[1:3])]


def _accept4(subject: Subject) -> list[str]:
    return [*_fd_and_pointers(subject), names.sock_flags_constant(subject.args[3] & 0xFFFFFFFF)]


def _listen(subject: Subject) -> list[str]:
    return [_fd(subject), str(int32(subject.args[1]))]


def _shutdown(subject: Subject) -> list[str]:
    return [_fd(subject), names.shutdown_constant(subject.args[1] & 0xFFFFFFFF)]


def _buffer(subject: Subject) -> list[str]:  # send, recv, and the first four of their kin
    args = subject.args
    return [_fd(subject), _pointer(args[1]), str(args[2]), _msg_flags(args[3])]


def _sendto(subject: Subject) -> list[str]:
    return [*_buffer(subject), _sockaddr(subject, subject.args[4]), str(int32(subject.args[5]))]


def _recvfrom(subject: Subject) -> list[str]:
    return [*_buffer(subject), *map(_pointer, subject.args[4:6])]


def _sockopt(subject: Subject) -> list[str]:
    args = subject.args
    level, option = args[1] & 0xFFFFFFFF, args[2] & 0xFFFFFFFF
    length = str(int32(args[4])) if subject.call.name == "setsockopt" else _pointer(args[4])
    return [_fd(subject), names.level_constant(level), names.option_constant(level, option),
            _pointer(args[3]), length]


def _msg(subject: Subject) -> list[str]:  # sendmsg, recvmsg
    return [_fd(subject), _msghdr(subject, subject.args[1]), _msg_flags(subject.args[2])]


def _mmsg(subject: Subject) -> list[str]:  # sendmmsg, recvmmsg
    args = subject.args
    count = args[2] & 0xFFFFFFFF
    vector = _pointer(args[1])
    if subject.header is not None:
        # One subject per message: the one shown is the one the verdict is for.
        judged = f"{{msg_hdr={_msghdr(subject, args[1])}}}"
        vector = f"[{judged}]" if count == 1 else f"[{judged} /* the one decided, of {count} */]"
    parts = [_fd(subject), vector, str(count), _msg_flags(args[3])]
    if subject.call.name == "recvmmsg":
        parts.append(_pointer(args[4]))
    return parts


_ARGUMENTS: dict[str, Callable[[Subject], list[str]]] = {
    "socket": _socket, "socketpair": _socket, "bind": _address_call, "connect": _address_call,
    "listen": _listen, "accept": _fd_and_pointers, "getsockname": _fd_and_pointers,
    "getpeername": _fd_and_pointers, "accept4": _accept4, "send": _buffer, "recv": _buffer,
    "sendto": _sendto, "recvfrom": _recvfrom, "shutdown": _shutdown, "setsockopt": _sockopt,
    "getsockopt": _sockopt, "sendmsg": _msg, "recvmsg": _msg, "sendmmsg": _mmsg,
    "recvmmsg": _mmsg,
}


def _fd(subject: Subject) -> str:
    return str(subject.fd)


def _sockaddr(subject: Subject, pointer: int) -> str:
    """The address the call names, as judged; the pointer where none could be read."""
    address = subject.call.address
    return format_sockaddr(address) if address is not None else _pointer(pointer)


def _msghdr(subject: Subject, pointer: int) -> str:
    """The message header as read (sendmsg, sendmmsg); the pointer where none was."""
    header = subject.header
    if header is None:
        return _pointer(pointer)
    name = "NULL" if header.name == 0 else _sockaddr(subject, header.name)
    control = f"msg_control={_pointer(header.control)}, " if header.controllen else ""
    return (f"{{msg_name={name}, msg_namelen={header.namelen}, msg_iov={_pointer(header.iov)}, "
            f"msg_iovlen={header.iovlen}, {control}msg_controllen={header.controllen}, "
            f"msg_flags={_msg_flags(header.flags)}}}")


def _msg_flags(value: int) -> str:
    return names.msg_flags_constant(value & 0xFFFFFFFF)


def format_sockaddr(address: Address | None) -> str:
    if isinstance(address, Inet4):
        return (f'{{sa_family=AF_INET, sin_port=htons({address.port}), '
                f'sin_addr=inet_addr("{address.address}")}}')
    if isinstance(address, Inet6):
        return (f'{{sa_family=AF_INET6, sin6_port=htons({address.port}), '
                f'sin6_flowinfo=htonl({address.flowinfo}), '
                f'inet_pton(AF_INET6, "{address.address}", &sin6_addr), '
                f'sin6_scope_id={address.scope_id}}}')
    if isinstance(address, Unix):
        if address.abstract is not None:
            return f"{{sa_family=AF_UNIX, sun_path=@{_c_string(address.abstract)}}}"
        if address.path is not None:
            return f"{{sa_family=AF_UNIX, sun_path={_c_string(address.path)}}}"
        return "{sa_family=AF_UNIX}"
    if isinstance(address, Netlink):
        return f"{{sa_family=AF_NETLINK, nl_pid={address.pid}, nl_groups={address.groups:08x}}}"
    if isinstance(address, Unspec):
        return "{sa_family=AF_UNSPEC}"
    if isinstance(address, Unknown):
        return f"{{sa_family={names.af_constant(address.family)}, sa_data={_c_string(address.data)}}}"
    return "NULL"


def _protocol_constant(family: int, protocol: int) -> str:
    name = names.protocol_name(family, protocol)
    if name == str(protocol):  # no name: strace says IPPROTO_IP for inet's 0
        return "IPPROTO_IP" if protocol == 0 and family in (AF_INET, AF_INET6) else name
    return name.upper() if name.startswith("netlink_") else f"IPPROTO_{name.upper()}"


def _c_string(data: bytes) -> str:
    text = "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:o}" for b in data)
    return f'"{text}"'


def _pointer(value: int) -> str:
    return "NULL" if value == 0 else hex(value)


class Sink(NamedTuple):
    stream: IO[str]
    format: str  # "json" or "text"
    denials_only: bool = False


class AuditLog:
    """Writes each audited decision to every sink that wants it, and a summary at exit."""

    def __init__(self, sinks: Iterable[Sink] = ()):
        self.sinks = list(sinks)

    def record(self, event: Event, subject: Subject) -> None:
        for sink in self.sinks:
            if sink.denials_only and event.action == "allow":
                continue
            line = event.to_json() if sink.format == "json" else format_text(event, subject)
            _write(sink, line)

    def summary(self, decisions: Counter[tuple[str, str]], stops: int, repeats: int,
                status: int, destinations: Iterable[Event] | None = None) -> None:
        """One record at exit: every decision the supervisor made, audited or not, by
        call and action; how many times the sandbox stopped for it, and how many of
        those stops repeated the facts of a call decided before (served in C with its
        verdict); the exit status; where destinations were watched, each distinct one
        (the first call that named it)."""
        counts: dict[str, dict[str, int]] = {}
        for (call, action), count in sorted(decisions.items()):
            counts.setdefault(call, {})[action] = count
        record: dict[str, Any] = {"summary": True, "time": _now(), "decisions": counts,
                                  "stops": stops, "repeats": repeats, "status": status}
        if destinations is not None:
            record["destinations"] = [event.to_dict() for event in destinations]
        for sink in self.sinks:
            if sink.denials_only:
                continue
            if sink.format == "json":
                import json

                line = json.dumps(record)
            else:
                made = ", ".join(f"{call} {action} {n}" for call, by_action in counts.items()
                                 for action, n in by_action.items())
                line = (f"sockbox: summary: {made or 'no decisions'}; {stops} stops"
                        f" ({repeats} repeats); exit {status}")
            _write(sink, line)


def _write(sink: Sink, line: str) -> None:
    """A record that cannot be written stops the sandbox: nothing goes unrecorded."""
    try:
        sink.stream.write(line + "\n")
        sink.stream.flush()
    except OSError as error:
        name = getattr(sink.stream, "name", "?")
        raise SupervisorError(f"cannot write the audit log to {name}: {error.strerror}") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

"""From a stopped socket call's arguments and the tracee's memory, the facts rules judge.

The memory and the process are reached through the two small protocols below, so this
module does no I/O of its own and can be tested against a dictionary of bytes. Each
call is read the way net/socket.c reads it: the same bounds, the same caps, the same
errno for what it refuses.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Protocol

from .abi import Abi
from .decode import (Address, Inet4, Inet6, MsgHdr, Unix, Unspec, UIO_MAXIOV, check_addrlen,
                     check_iovlen, decode_for_socket, decode_msghdr, decode_sockaddr, mmsghdr_size,
                     msghdr_size, with_ip)
from .errors import Malformed
from .names import (AF_UNIX, MSG_CMSG_COMPAT, SOCK_SEQPACKET, SOCK_STREAM, SOCK_TYPE_MASK,
                    created_family)
from .rules import ADDRESS_CALLS, OPTION_CALLS, PLAIN_ALIAS, Call, names_nowhere, reached


class Memory(Protocol):
    def read(self, address: int, length: int) -> bytes:
        """Exactly `length` bytes at `address`, or raise Malformed(EFAULT)."""


class Process(Protocol):
    def exe(self) -> str | None: ...

    def resolve_unix_path(self, path: bytes, *, follow_last: bool) -> str:
        """The absolute path the kernel would reach for this process."""

    def socket_info(self, fd: int) -> tuple[int, int, int]:
        """(family, type, protocol) of the socket at fd, or raise Malformed(EBADF/ENOTSOCK)."""

    def local_address(self, fd: int) -> bytes:
        """The sockaddr the socket at fd is bound to (getsockname); an unbound IP
        socket's is the wildcard address with port 0."""


@dataclass(frozen=True)
class Subject:
    """One socket call, as the supervisor decides, records and (emulate) performs it."""

    call: Call
    args: tuple[int, ...]  # the call's own arguments (socketcall's array unpacked)
    fd: int | None = None
    addrlen: int | None = None
    raw_address: bytes | None = None  # the address exactly as read and judged
    socket: tuple[int, int, int] | None = None  # the socket's own family, type, protocol
    header: MsgHdr | None = None  # sendmsg, sendmmsg: the message header as read


_MESSAGE_CALLS = frozenset({"sendmsg", "recvmsg", "sendmmsg", "recvmmsg"})
_FLAGS_AT = {"sendmsg": 2, "recvmsg": 2, "sendmmsg": 3, "recvmmsg": 3}


def int32(value: int) -> int:
    """An `int` argument as the kernel sees it: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def socket_call(name: str, family: int, sock_type: int, protocol: int, exe: str | None) -> Call:
    """A socket() or socketpair() call, judged by the family the socket is made in."""
    return Call(name, family=created_family(family, sock_type), type=sock_type, protocol=protocol,
                exe=exe)


def describe(name: str, abi: Abi, args: tuple[int, ...], memory: Memory, process: Process,
             needs_socket: bool) -> list[Subject]:
    """The subjects of one call: one, or one per message of a sendmmsg."""
    mask = abi.word_mask
    args = tuple(map(mask.__and__, args))
    exe = process.exe()
    if name in ("socket", "socketpair"):
        return [Subject(socket_call(name, int32(args[0]), int32(args[1]), int32(args[2]), exe), args)]
    fd = int32(args[0])
    if abi is Abi.X86_64 and name in _MESSAGE_CALLS and args[_FLAGS_AT[name]] & MSG_CMSG_COMPAT:
        # Refused before the descriptor is looked at (__sys_sendmsg and kin): only the
        # kernel's compat entry may ask for 32-bit control messages.
        raise Malformed(errno.EINVAL, "MSG_CMSG_COMPAT from a native call")
    if name not in ADDRESS_CALLS:
        socket = process.socket_info(fd) if needs_socket else (None, None, None)
        plain = name in ("send", "recv") or (name == "recvfrom" and args[4] == 0)
        options = name in OPTION_CALLS
        call = Call(name, alias=PLAIN_ALIAS.get(name) if plain else None,
                    family=socket[0], type=socket[1], protocol=socket[2],
                    # as unsigned words, as profiles write them and the filter tests them
                    level=args[1] & 0xFFFFFFFF if options else None,
                    option=args[2] & 0xFFFFFFFF if options else None, exe=exe)
        return [Subject(call, args, fd)]

    # The address is read the way the socket's protocol reads it, so the socket comes
    # first; except that connect copies the address before it finds out the descriptor
    # is no socket (__sys_connect), so that ENOTSOCK waits.
    try:
        socket = process.socket_info(fd)
        not_a_socket = None
    except Malformed as error:
        if name != "connect" or error.errno != errno.ENOTSOCK:
            raise
        socket, not_a_socket = (0, 0, 0), error
    call = Call(name, family=socket[0], type=socket[1], protocol=socket[2], exe=exe)

    if name == "listen":
        # Judged by the address it will listen on: the socket's own. An unbound IP socket
        # is bound to every interface by listen() itself (inet_autobind).
        local = process.local_address(fd)
        address = _readable(local, socket, name)
        return [Subject(_with_address(call, address, process, follow_last=False), args, fd,
                        len(local), local, socket)]
    if name in ("bind", "connect"):
        addrlen = int32(args[2])
        check_addrlen(addrlen)
        raw = memory.read(args[1], addrlen)
        if not_a_socket is not None:
            raise not_a_socket
        # An address its socket cannot read names nothing: the call is judged without
        # one, and if allowed, the kernel refuses the same bytes with its own errno.
        address = _readable(raw, socket, name)
        if name == "connect":
            address, raw = _reached(address, raw, fd, process)
        return [Subject(_with_address(call, address, process, follow_last=name == "connect"),
                        args, fd, addrlen, raw, socket)]
    if name == "sendto":
        addrlen = int32(args[5])
        address, named = _destination(memory, args[4], addrlen, socket, fd, process)
        return [Subject(_with_address(call, address, process), args, fd, addrlen, named, socket)]
    if name == "sendmsg":
        header = decode_msghdr(memory.read(args[1], msghdr_size(abi)), abi)
        address, named = _destination(memory, header.name, header.namelen, socket, fd, process)
        check_iovlen(header)
        return [Subject(_with_address(call, address, process), args, fd, header.namelen, named,
                        socket, header)]
    return _sendmmsg(call, abi, args, memory, process, fd, socket)


def _sendmmsg(call: Call, abi: Abi, args: tuple[int, ...], memory: Memory, process: Process,
              fd: int, socket: tuple[int, int, int]) -> list[Subject]:
    """Each message, read one at a time as __sys_sendmmsg does: a fault or malformed
    message after the first ends the batch there (the kernel sends the ones before it
    and returns their count); only a bad first message fails the call."""
    count = min(args[2] & 0xFFFFFFFF, UIO_MAXIOV)  # the kernel caps vlen, it does not refuse it
    if count == 0:
        return [Subject(_plain(call), args, fd)]
    stride = mmsghdr_size(abi)
    subjects: list[Subject] = []
    for index in range(count):
        try:
            header = decode_msghdr(memory.read(args[1] + index * stride, msghdr_size(abi)), abi)
            address, raw = _destination(memory, header.name, header.namelen, socket, fd, process)
            check_iovlen(header)
        except Malformed:
            if not subjects:
                raise
            break
        subjects.append(Subject(_with_address(call, address, process), args, fd, header.namelen,
                                raw, socket, header))
    return subjects


def _destination(memory: Memory, pointer: int, length: int, socket: tuple[int, int, int], fd: int,
                 process: Process) -> tuple[Address | None, bytes | None]:
    """The destination a send names (None if it names none), and its bytes.

    An address too short for its family cannot steer any protocol (each refuses it, or
    ignores it on a connected socket), so it counts as no destination; one that cannot
    be copied or is over-long fails the call as move_addr_to_kernel() fails it.
    """
    if pointer == 0 or length == 0:
        return None, None
    check_addrlen(length)
    raw = memory.read(pointer, length)
    if socket[0] == AF_UNIX and socket[1] & SOCK_TYPE_MASK in (SOCK_STREAM, SOCK_SEQPACKET):
        return None, raw  # refused (stream) or ignored (seqpacket), never looked up
    return _reached(_readable(raw, socket, "sendto"), raw, fd, process)


def _reached(address: Address | None, raw: bytes, fd: int,
             process: Process) -> tuple[Address | None, bytes]:
    """A destination of "nowhere" (0.0.0.0, ::) as where it goes, and the bytes naming
    that place, which are what the kernel is handed: so that nothing the socket's state
    or the call's control data could change meanwhile redirects it."""
    if not isinstance(address, (Inet4, Inet6)) or not names_nowhere(address):
        return address, raw
    local = process.local_address(fd)
    concrete = reached(address, decode_sockaddr(local) if len(local) >= 2 else None)
    return concrete, with_ip(raw, concrete)


def _readable(raw: bytes, socket: tuple[int, int, int], name: str) -> Address | None:
    """The address as the socket reads it, None where the bytes cannot name one."""
    if len(raw) < 2:
        return None
    try:
        return decode_for_socket(raw, socket[0], socket[1], name)
    except Malformed:
        return None


# Built field by field rather than with dataclasses.replace, whose generic walk over the
# fields costs microseconds at every stop. An address call has no alias, level or option.
def _plain(call: Call) -> Call:
    return Call(call.name, alias=PLAIN_ALIAS.get(call.name), family=call.family, type=call.type,
                protocol=call.protocol, exe=call.exe)


def _with_address(call: Call, address: Address | None, process: Process,
                  follow_last: bool = True) -> Call:
    """The call judged by its address: the address's family replaces the socket's."""
    if address is None or (isinstance(address, Unspec) and call.name != "connect"):
        return _plain(call)
    path = None
    if isinstance(address, Unix) and address.path:
        path = process.resolve_unix_path(address.path, follow_last=follow_last)
    return Call(call.name, family=address.family, type=call.type, protocol=call.protocol,
                address=address, path=path, exe=call.exe)

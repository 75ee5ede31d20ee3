"""From a stopped socket call's arguments and the tracee's memory, the facts rules judge.

The memory and the process are reached through the two small protocols below, so this
module does no I/O of its own and can be tested against a dictionary of bytes. Each
call is read the way net/socket.c reads it: the same bounds, the same caps, the same
errno for what it refuses.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, replace
from typing import Protocol

from .abi import Abi
from .decode import (Address, Malformed, Unix, Unspec, UIO_MAXIOV, check_addrlen, decode_msghdr,
                     decode_sockaddr, mmsghdr_size, msghdr_size)
from .rules import PLAIN_ALIAS, Call


class Memory(Protocol):
    def read(self, address: int, length: int) -> bytes:
        """Exactly `length` bytes at `address`, or raise Malformed(EFAULT)."""


class Process(Protocol):
    def exe(self) -> str | None: ...

    def resolve_unix_path(self, path: bytes, *, follow_last: bool) -> str:
        """The absolute path the kernel would reach for this process."""

    def socket_info(self, fd: int) -> tuple[int, int, int]:
        """(family, type, protocol) of the socket at fd, or raise Malformed(EBADF/ENOTSOCK)."""


@dataclass(frozen=True)
class Subject:
    """One socket call, as the supervisor decides and records it."""

    call: Call
    args: tuple[int, ...]  # the call's own arguments (socketcall's array unpacked)
    fd: int | None = None
    addrlen: int | None = None


# Calls whose first argument is a socket descriptor.
_FD_CALLS = frozenset({
    "bind", "connect", "listen", "accept", "getsockname", "getpeername", "send", "recv",
    "sendto", "recvfrom", "shutdown", "setsockopt", "getsockopt", "sendmsg", "recvmsg",
    "accept4", "recvmmsg", "sendmmsg",
})


def int32(value: int) -> int:
    """An `int` argument as the kernel sees it: the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def describe(name: str, abi: Abi, args: tuple[int, ...], memory: Memory, process: Process,
             needs_socket: bool) -> list[Subject]:
    """The subjects of one call: one, or one per message of a sendmmsg."""
    args = tuple(a & abi.word_mask for a in args)
    fd = int32(args[0]) if name in _FD_CALLS else None
    base = Call(name, exe=process.exe())
    if fd is not None and needs_socket:
        family, sock_type, protocol = process.socket_info(fd)
        base = replace(base, family=family, type=sock_type, protocol=protocol)

    if name in ("socket", "socketpair"):
        base = replace(base, family=int32(args[0]), type=int32(args[1]), protocol=int32(args[2]))
        return [Subject(base, args)]
    if name in ("bind", "connect"):
        addrlen = int32(args[2])
        check_addrlen(addrlen)
        raw = memory.read(args[1], addrlen)
        address = decode_sockaddr(raw, unspec_is_ipv4=name == "bind")
        call = _with_address(base, address, process, follow_last=name == "connect")
        return [Subject(call, args, fd, addrlen)]
    if name == "sendto":
        addrlen = int32(args[5])
        address = _destination(memory, args[4], addrlen)
        return [Subject(_with_address(base, address, process), args, fd, addrlen)]
    if name == "recvfrom":
        return [Subject(_plain(base) if args[4] == 0 else base, args, fd)]
    if name == "sendmsg":
        header = decode_msghdr(memory.read(args[1], msghdr_size(abi)), abi)
        address = _destination(memory, header.name, header.namelen)
        return [Subject(_with_address(base, address, process), args, fd, header.namelen)]
    if name == "sendmmsg":
        return _sendmmsg(base, abi, args, memory, process, fd)
    if name in ("send", "recv"):
        return [Subject(_plain(base), args, fd)]
    return [Subject(base, args, fd)]


def _sendmmsg(base: Call, abi: Abi, args: tuple[int, ...], memory: Memory, process: Process,
              fd: int | None) -> list[Subject]:
    count = min(args[2] & 0xFFFFFFFF, UIO_MAXIOV)  # the kernel caps vlen, it does not refuse it
    if count == 0:
        return [Subject(_plain(base), args, fd)]
    stride = mmsghdr_size(abi)
    vector = memory.read(args[1], count * stride)
    subjects = []
    for index in range(count):
        header = decode_msghdr(vector[index * stride:(index + 1) * stride], abi)
        address = _destination(memory, header.name, header.namelen)
        subjects.append(Subject(_with_address(base, address, process), args, fd, header.namelen))
    return subjects


def _destination(memory: Memory, pointer: int, length: int) -> Address | None:
    """The destination a send names, None if it names none.

    An address too short for its family cannot steer any protocol (each refuses it, or
    ignores it on a connected socket), so it counts as no destination; one that cannot
    be copied or is over-long fails the call as move_addr_to_kernel() fails it.
    """
    if pointer == 0 or length == 0:
        return None
    check_addrlen(length)
    raw = memory.read(pointer, length)
    try:
        return decode_sockaddr(raw, unspec_is_ipv4=True)
    except Malformed as error:
        if error.errno == errno.EINVAL:
            return None
        raise


def _plain(call: Call) -> Call:
    return replace(call, alias=PLAIN_ALIAS.get(call.name))


def _with_address(call: Call, address: Address | None, process: Process,
                  follow_last: bool = True) -> Call:
    if address is None or (isinstance(address, Unspec) and call.name != "connect"):
        return _plain(call)
    path = None
    if isinstance(address, Unix) and address.path:
        path = process.resolve_unix_path(address.path, follow_last=follow_last)
    return replace(call, family=address.family, address=address, path=path)

"""Bytes from a tracee's memory into addresses and message headers. No I/O, so fuzzable.

Each decoder accepts exactly what the kernel accepts and raises `Malformed(errno)` with
the errno the kernel would give for what it refuses, so a sandboxed program sees the
same failure it would see outside.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .abi import Abi
from .errors import Malformed
from .names import AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AF_UNSPEC, SOCK_DGRAM, SOCK_TYPE_MASK

SOCKADDR_STORAGE_SIZE = 128
SUN_PATH_OFFSET = 2
SUN_PATH_SIZE = 108
UIO_MAXIOV = 1024


@dataclass(frozen=True)
class Inet4:
    """An AF_INET address."""

    address: ipaddress.IPv4Address
    port: int
    family: int = AF_INET


@dataclass(frozen=True)
class Inet6:
    """An AF_INET6 address."""

    address: ipaddress.IPv6Address
    port: int
    flowinfo: int = 0
    scope_id: int = 0
    family: int = AF_INET6


@dataclass(frozen=True)
class Unix:
    """A unix address: a filesystem `path`, an `abstract` name, or neither (unnamed)."""

    path: bytes | None = None
    abstract: bytes | None = None
    family: int = AF_UNIX


@dataclass(frozen=True)
class Netlink:
    """An AF_NETLINK address."""

    pid: int
    groups: int
    family: int = AF_NETLINK


@dataclass(frozen=True)
class Unspec:
    """AF_UNSPEC given to connect(): dissolve the association, name no peer."""

    family: int = AF_UNSPEC


@dataclass(frozen=True)
class Unknown:
    """An address sockbox does not decode: its family and the bytes after it."""

    family: int
    data: bytes


Address = Inet4 | Inet6 | Unix | Netlink | Unspec | Unknown

_MIN_LENGTH = {AF_INET: 16, AF_INET6: 24, AF_NETLINK: 12}  # 24: SIN6_LEN_RFC2133


def check_addrlen(addrlen: int) -> None:
    """move_addr_to_kernel()'s bounds on a sockaddr length passed by value."""
    if addrlen < 0 or addrlen > SOCKADDR_STORAGE_SIZE:
        raise Malformed(errno.EINVAL, f"address length {addrlen} outside 0..128")


def decode_sockaddr(raw: bytes) -> Address:
    """Decode a sockaddr of exactly len(raw) bytes by its own sa_family."""
    if len(raw) < 2:
        raise Malformed(errno.EINVAL, f"address of {len(raw)} bytes has no family")
    (family,) = struct.unpack_from("=H", raw)
    if family == AF_UNSPEC:
        return Unspec()
    if family in _MIN_LENGTH and len(raw) < _MIN_LENGTH[family]:
        raise Malformed(errno.EINVAL, f"family {family} address of only {len(raw)} bytes")
    if family == AF_INET:
        return _inet4(raw)
    if family == AF_INET6:
        return _inet6(raw)
    if family == AF_UNIX:
        return _unix(raw)
    if family == AF_NETLINK:
        pid, groups = struct.unpack_from("=II", raw, 4)
        return Netlink(pid, groups)
    return Unknown(family, raw[2:])


def decode_for_socket(raw: bytes, family: int, sock_type: int, call: str) -> Address | None:
    """The address as the socket's own protocol reads it in `call`; None where it names
    no peer. sa_family alone can mislead: an AF_UNSPEC address given to bind, sendto or
    sendmsg is read by the IPv4 layer as an IPv4 one (inet_bind, udp_sendmsg, raw_sendmsg)
    and by raw IPv6 sockets as an IPv6 one (rawv6_sendmsg), while UDP over IPv6 reads it
    as no destination (udpv6_sendmsg); and families other than inet, inet6, unix and
    netlink read their sockaddr as their own whatever sa_family says (packet_sendmsg).
    In connect, AF_UNSPEC dissolves an association in every family."""
    if len(raw) >= 2 and struct.unpack_from("=H", raw)[0] == AF_UNSPEC:
        if call == "connect":
            return Unspec()
        if family == AF_INET and len(raw) >= _MIN_LENGTH[AF_INET]:
            return _inet4(raw)
        if family == AF_INET6 and call != "bind":
            if sock_type & SOCK_TYPE_MASK == SOCK_DGRAM:
                return None
            if len(raw) >= _MIN_LENGTH[AF_INET6]:
                return _inet6(raw)
        return Unspec()
    if family not in (AF_INET, AF_INET6, AF_UNIX, AF_NETLINK):
        return Unknown(family, raw[2:])
    sa_family = struct.unpack_from("=H", raw)[0] if len(raw) >= 2 else None
    if sa_family not in _READ_BY[family]:  # refused by the protocol (EAFNOSUPPORT, EINVAL)
        return Unknown(sa_family if sa_family is not None else family, raw[2:])
    return decode_sockaddr(raw)


# The address families each socket family's calls read (an inet6 socket reads an
# AF_INET address as the IPv4 one it is).
_READ_BY = {AF_INET: {AF_INET}, AF_INET6: {AF_INET6, AF_INET}, AF_UNIX: {AF_UNIX},
            AF_NETLINK: {AF_NETLINK}}


def with_ip(raw: bytes, address: Inet4 | Inet6) -> bytes:
    """The sockaddr bytes with their IP address replaced by `address`'s, the rest (the
    family field as written, port, flow info, scope) as they were."""
    at = 4 if isinstance(address, Inet4) else 8
    packed = address.address.packed
    return raw[:at] + packed + raw[at + len(packed):]


def _inet4(raw: bytes) -> Inet4:
    port, address = struct.unpack_from("!H4s", raw, 2)
    return Inet4(ipaddress.IPv4Address(address), port)


def _inet6(raw: bytes) -> Inet6:
    port, flowinfo, address = struct.unpack_from("!HI16s", raw, 2)
    scope_id = struct.unpack_from("=I", raw, 24)[0] if len(raw) >= 28 else 0
    return Inet6(ipaddress.IPv6Address(address), port, flowinfo, scope_id)


def _unix(raw: bytes) -> Unix:
    if len(raw) > SUN_PATH_OFFSET + SUN_PATH_SIZE:
        raise Malformed(errno.EINVAL, f"unix address of {len(raw)} bytes")
    sun_path = raw[SUN_PATH_OFFSET:]
    if not sun_path:
        return Unix()
    if sun_path[0] == 0:
        return Unix(abstract=sun_path[1:])
    return Unix(path=sun_path.split(b"\0", 1)[0])


def decode_words(raw: bytes) -> tuple[int, ...]:
    """socketcall(2)'s argument array: 32-bit words."""
    return struct.unpack(f"={len(raw) // 4}I", raw[: len(raw) // 4 * 4])


class MsgHdr(NamedTuple):
    name: int
    namelen: int
    iov: int
    iovlen: int
    control: int
    controllen: int
    flags: int


_MSGHDR = {Abi.X86_64: struct.Struct("=Q i 4x Q Q Q Q i 4x"), Abi.I386: struct.Struct("=I i I I I I i")}
# struct mmsghdr is a msghdr followed by an unsigned msg_len, padded to alignment.
_MMSGHDR_SIZE = {Abi.X86_64: 64, Abi.I386: 32}


def msghdr_size(abi: Abi) -> int:
    return _MSGHDR[abi].size


def mmsghdr_size(abi: Abi) -> int:
    return _MMSGHDR_SIZE[abi]


def decode_msghdr(raw: bytes, abi: Abi) -> MsgHdr:
    """A (compat) struct user_msghdr, with the limits __copy_msghdr() applies to the
    name; the caller copies the name, then applies `check_iovlen`, in the kernel's order."""
    header = MsgHdr(*_MSGHDR[abi].unpack_from(raw))
    if header.name == 0:
        header = header._replace(namelen=0)
    if header.namelen < 0:
        raise Malformed(errno.EINVAL, f"msg_namelen {header.namelen}")
    # The kernel silently caps an oversized name at sockaddr_storage.
    return header._replace(namelen=min(header.namelen, SOCKADDR_STORAGE_SIZE))


def check_iovlen(header: MsgHdr) -> None:
    if header.iovlen > UIO_MAXIOV:
        raise Malformed(errno.EMSGSIZE, f"msg_iovlen {header.iovlen}")

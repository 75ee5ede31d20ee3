"""Unit tests for sandbox.calls.describe, against a fake tracee memory and process.

`describe` does no I/O of its own: it reads memory through `Memory.read` and asks the
process for its executable, unix paths and socket descriptors. The fakes below stand in
for both, so each test lays out exactly the bytes a tracee would hold.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import posixpath
import socket
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.abi import ARGS, Abi, socketcall_nargs
from sandbox.calls import Subject, describe, int32
from sandbox.decode import (UIO_MAXIOV, Inet4, Inet6, Netlink, Unix, Unspec, Unknown, decode_words,
                            mmsghdr_size, msghdr_size)
from sandbox.errors import Malformed
from sandbox.names import MSG_CMSG_COMPAT as CMSG_COMPAT
from sandbox.profile import load_profile
from sandbox.rules import ADDRESS_CALLS
from sandbox.names import (AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, AF_UNSPEC, IPPROTO_TCP,
                           IPPROTO_UDP, SOCK_DGRAM, SOCK_STREAM, SUBCALLS)

pytestmark = pytest.mark.pure

ABIS = [Abi.X86_64, Abi.I386]
EXE = "/usr/bin/client"
CWD = "/home/user/work"
SOCK_RAW = 3
IPPROTO_ICMPV6 = 58


# --- fakes -------------------------------------------------------------------------------


class FakeMemory:
    """Regions of bytes by start address; a read must fall inside one region."""

    def __init__(self) -> None:
        self.regions: dict[int, bytes] = {}
        self.reads: list[tuple[int, int]] = []

    def put(self, address: int, data: bytes) -> int:
        self.regions[address] = bytes(data)
        return address

    def read(self, address: int, length: int) -> bytes:
        self.reads.append((address, length))
        if length == 0:
            return b""  # as TraceeMemory: nothing to copy, nothing to fault on
        for start, data in self.regions.items():
            if length > 0 and start <= address and address + length <= start + len(data):
                return data[address - start:address - start + length]
        raise Malformed(errno.EFAULT, f"read of {length} bytes at {address:#x}")


@dataclass
class FakeProcess:
    """socket_info returns `info`, or raises Malformed(`socket_errno`) when that is set."""

    info: tuple[int, int, int] = (AF_INET, SOCK_STREAM, IPPROTO_TCP)
    socket_errno: int | None = None
    queried: list[int] = field(default_factory=list)
    resolved: list[tuple[bytes, bool]] = field(default_factory=list)
    local: bytes = struct.pack("=H", AF_INET) + bytes(14)  # unbound: 0.0.0.0 port 0

    def exe(self) -> str | None:
        return EXE

    def resolve_unix_path(self, path: bytes, *, follow_last: bool) -> str:
        self.resolved.append((path, follow_last))
        return posixpath.join(CWD, os.fsdecode(path))  # join keeps an absolute path as is

    def socket_info(self, fd: int) -> tuple[int, int, int]:
        self.queried.append(fd)
        if self.socket_errno is not None:
            raise Malformed(self.socket_errno, f"fd {fd}")
        return self.info

    def local_address(self, fd: int) -> bytes:
        return self.local


# --- building tracee memory --------------------------------------------------------------
# Addresses a 64-bit tracee might use (above 4 GiB, so truncation would show) and ones a
# 32-bit tracee might use.

BASE = {Abi.X86_64: 0x7FFE_0000_0000, Abi.I386: 0xBF00_0000}
UNMAPPED = {Abi.X86_64: 0x7FFF_DEAD_0000, Abi.I386: 0xDEAD_0000}


class Tracee:
    """A fake memory for one ABI that hands out addresses for what is placed in it."""

    def __init__(self, abi: Abi):
        self.abi = abi
        self.memory = FakeMemory()
        self._next = BASE[abi]

    def place(self, data: bytes) -> int:
        address = self.memory.put(self._next, data)
        self._next += (len(data) + 0x1000) & ~0xFFF  # a gap between regions
        return address

    def msghdr(self, name: int = 0, namelen: int = 0, iovlen: int = 1) -> bytes:
        iov = BASE[self.abi] - 0x100000  # never read by describe
        if self.abi is Abi.X86_64:
            return struct.pack("=Qi4xQQQQi4x", name, namelen, iov, iovlen, 0, 0, 0)
        return struct.pack("=IiIIIIi", name, namelen, iov, iovlen, 0, 0, 0)

    def mmsghdr(self, name: int = 0, namelen: int = 0) -> bytes:
        pad = b"\0" * (8 if self.abi is Abi.X86_64 else 4)  # unsigned msg_len (+ padding)
        return self.msghdr(name, namelen) + pad

    def message(self, sockaddr: bytes | None) -> int:
        """A msghdr naming `sockaddr` (None: no msg_name), placed in memory."""
        if sockaddr is None:
            return self.place(self.msghdr())
        return self.place(self.msghdr(self.place(sockaddr), len(sockaddr)))

    def messages(self, sockaddrs: list[bytes | None]) -> int:
        """An mmsghdr vector, one entry per sockaddr, placed in memory."""
        entries = b""
        for sockaddr in sockaddrs:
            if sockaddr is None:
                entries += self.mmsghdr()
            else:
                entries += self.mmsghdr(self.place(sockaddr), len(sockaddr))
        return self.place(entries)


def sockaddr_in(host: str, port: int, *, fam: int = AF_INET) -> bytes:
    return struct.pack("=H", fam) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)


def sockaddr_in6(host: str, port: int, flowinfo: int = 0, scope_id: int = 0) -> bytes:
    return (struct.pack("=H", AF_INET6) + struct.pack("!HI", port, flowinfo)
            + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", scope_id))


def sockaddr_un(sun_path: bytes) -> bytes:
    return struct.pack("=H", AF_UNIX) + sun_path


def sockaddr_nl(pid: int, groups: int) -> bytes:
    return struct.pack("=HxxII", AF_NETLINK, pid, groups)


V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
DEST4 = sockaddr_in("192.0.2.10", 5353)
DEST4_ADDRESS = Inet4(V4("192.0.2.10"), 5353)


def run(tracee: Tracee, name: str, args: tuple[int, ...], process: FakeProcess | None = None,
        needs_socket: bool = False) -> list[Subject]:
    return describe(name, tracee.abi, args, tracee.memory, process or FakeProcess(), needs_socket)


def one(tracee: Tracee, name: str, args: tuple[int, ...], process: FakeProcess | None = None,
        needs_socket: bool = False) -> Subject:
    subjects = run(tracee, name, args, process, needs_socket)
    assert len(subjects) == 1
    return subjects[0]


def raises_errno(err: int, function, *args, **kwargs) -> Malformed:
    with pytest.raises(Malformed) as caught:
        function(*args, **kwargs)
    got = caught.value.errno
    assert got == err, f"expected {errno.errorcode[err]}, got {errno.errorcode.get(got, got)}"
    return caught.value


# --- every subcall on both ABIs ----------------------------------------------------------

FD = 3
BUF, LEN, FLAGS = 0x5000, 64, 0


def typical_args(tracee: Tracee, name: str) -> tuple[int, ...]:
    """Arguments of an ordinary call of `name`, any memory they point to placed."""
    out = tracee.place(bytes(16))  # an output buffer (addr, sv, optval...), never decoded
    outlen = tracee.place(struct.pack("=i", 16))
    return {
        "socket": lambda: (AF_INET, SOCK_STREAM, 0),
        "socketpair": lambda: (AF_UNIX, SOCK_DGRAM, 0, out),
        "bind": lambda: (FD, tracee.place(DEST4), len(DEST4)),
        "connect": lambda: (FD, tracee.place(DEST4), len(DEST4)),
        "listen": lambda: (FD, 128),
        "accept": lambda: (FD, out, outlen),
        "getsockname": lambda: (FD, out, outlen),
        "getpeername": lambda: (FD, out, outlen),
        "send": lambda: (FD, BUF, LEN, FLAGS),
        "recv": lambda: (FD, BUF, LEN, FLAGS),
        "sendto": lambda: (FD, BUF, LEN, FLAGS, tracee.place(DEST4), len(DEST4)),
        "recvfrom": lambda: (FD, BUF, LEN, FLAGS, out, outlen),
        "shutdown": lambda: (FD, socket.SHUT_RDWR),
        "setsockopt": lambda: (FD, socket.SOL_SOCKET, socket.SO_REUSEADDR, out, 4),
        "getsockopt": lambda: (FD, socket.SOL_SOCKET, socket.SO_TYPE, out, outlen),
        "sendmsg": lambda: (FD, tracee.message(DEST4), FLAGS),
        "recvmsg": lambda: (FD, tracee.message(None), FLAGS),
        "accept4": lambda: (FD, out, outlen, socket.SOCK_CLOEXEC),
        "recvmmsg": lambda: (FD, tracee.messages([None]), 1, FLAGS, 0),
        "sendmmsg": lambda: (FD, tracee.messages([DEST4]), 1, FLAGS),
    }[name]()


# What each call looks like when made as typical_args makes it: its alias, and whether
# it names DEST4.
ADDRESSED = {"bind", "connect", "sendto", "sendmsg", "sendmmsg"}
ALIAS = {"send": "sendto", "recv": "recvfrom"}
NO_FD = {"socket", "socketpair"}


def test_the_table_covers_every_subcall():
    assert len(SUBCALLS) == 20
    assert ADDRESSED | NO_FD | set(ALIAS) <= set(SUBCALLS)


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", SUBCALLS)
def test_every_subcall(abi, name):
    tracee = Tracee(abi)
    args = typical_args(tracee, name)
    subject = one(tracee, name, args)
    call = subject.call
    assert call.name == name
    assert call.alias == ALIAS.get(name)
    assert call.exe == EXE
    assert subject.args == args
    if name in NO_FD:
        assert subject.fd is None
        assert (call.family, call.type, call.protocol) == args[:3]
    else:
        assert subject.fd == FD
    if name in ADDRESSED:
        assert (call.family, call.address, call.path) == (AF_INET, DEST4_ADDRESS, None)
        assert subject.addrlen == 16
    elif name == "listen":  # the socket's own address: here unbound, every interface
        assert (call.family, call.address) == (AF_INET, Inet4(V4("0.0.0.0"), 0))
    else:
        assert call.address is None and call.path is None


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", sorted(set(SUBCALLS) - NO_FD - ADDRESSED - {"listen"}))
def test_fd_calls_take_family_type_protocol_from_the_socket(abi, name):
    tracee = Tracee(abi)
    process = FakeProcess(info=(AF_INET6, SOCK_DGRAM, IPPROTO_UDP))
    call = one(tracee, name, typical_args(tracee, name), process, needs_socket=True).call
    assert (call.family, call.type, call.protocol) == (AF_INET6, SOCK_DGRAM, IPPROTO_UDP)
    assert process.queried == [FD]


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", sorted(ADDRESSED))
def test_an_address_family_overrides_the_sockets(abi, name):
    # An IPv4 destination on a dual-stack inet6 socket: the call is judged as inet.
    tracee = Tracee(abi)
    process = FakeProcess(info=(AF_INET6, SOCK_DGRAM, IPPROTO_UDP))
    call = one(tracee, name, typical_args(tracee, name), process, needs_socket=True).call
    assert (call.family, call.type, call.protocol) == (AF_INET, SOCK_DGRAM, IPPROTO_UDP)
    assert call.address == DEST4_ADDRESS


@pytest.mark.parametrize("name", sorted(set(SUBCALLS) - NO_FD - ADDRESS_CALLS))
def test_without_needs_socket_the_socket_is_not_asked(name):
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess()
    call = one(tracee, name, typical_args(tracee, name), process).call
    assert process.queried == []
    assert call.type is None and call.protocol is None


@pytest.mark.parametrize("name", sorted(ADDRESS_CALLS))
def test_calls_with_an_address_always_ask_the_socket(name):
    # The socket's protocol decides how the address bytes are read (decode_for_socket).
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(AF_INET6, SOCK_DGRAM, IPPROTO_UDP))
    call = one(tracee, name, typical_args(tracee, name), process).call
    assert process.queried == [FD]
    assert (call.type, call.protocol) == (SOCK_DGRAM, IPPROTO_UDP)


@pytest.mark.parametrize("name", ["socket", "socketpair"])
def test_socket_creation_never_asks_for_a_socket(name):
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(socket_errno=errno.EBADF)  # would fail if it were asked
    call = one(tracee, name, typical_args(tracee, name), process, needs_socket=True).call
    assert process.queried == []
    assert call.family == (AF_INET if name == "socket" else AF_UNIX)


def test_connect_unspec_overrides_the_sockets_family():
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(AF_INET, SOCK_DGRAM, IPPROTO_UDP))
    raw = struct.pack("=H", AF_UNSPEC) + bytes(14)
    call = one(tracee, "connect", (FD, tracee.place(raw), len(raw)), process, True).call
    assert (call.family, call.address) == (AF_UNSPEC, Unspec())
    assert (call.type, call.protocol) == (SOCK_DGRAM, IPPROTO_UDP)


def test_bad_socket_fd_fails_with_the_socket_errno():
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(socket_errno=errno.EBADF)
    raises_errno(errno.EBADF, run, tracee, "listen", (FD, 1), process, True)


# --- int32 semantics ---------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [(0, 0), (5, 5), (0x7FFFFFFF, 0x7FFFFFFF),
                                             (0x80000000, -(2**31)), (0xFFFFFFFF, -1),
                                             ((1 << 32) | 7, 7), (2**64 - 1, -1)])
def test_int32(value, expected):
    assert int32(value) == expected


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("raw_fd", [0xFFFFFFFF, 2**64 - 1])
def test_fd_is_int32(abi, raw_fd):
    # The fd argument is an int: on x86_64 the upper half of the register is ignored, and
    # on i386 a 64-bit value cannot even arise (the ABI masks it to its word).
    tracee = Tracee(abi)
    process = FakeProcess()
    subject = one(tracee, "listen", (raw_fd, 1), process, needs_socket=True)
    assert subject.fd == -1
    assert process.queried == [-1]


def test_fd_upper_register_bits_ignored_on_x86_64():
    tracee = Tracee(Abi.X86_64)
    assert one(tracee, "shutdown", ((0xDEAD << 32) | FD, 2)).fd == FD


def test_socket_args_are_int32():
    tracee = Tracee(Abi.X86_64)
    args = ((1 << 32) | AF_INET, (0xFFFF << 32) | SOCK_STREAM, (7 << 32) | IPPROTO_TCP)
    call = one(tracee, "socket", args).call
    assert (call.family, call.type, call.protocol) == (AF_INET, SOCK_STREAM, IPPROTO_TCP)


def test_socket_negative_args_stay_negative():
    tracee = Tracee(Abi.I386)
    call = one(tracee, "socketpair", (0xFFFFFFFF, 0x80000001, 0xFFFFFFFE, 0)).call
    assert (call.family, call.type, call.protocol) == (-1, -(2**31) + 1, -2)


def test_i386_args_are_masked_to_32_bits():
    tracee = Tracee(Abi.I386)
    subject = one(tracee, "listen", ((1 << 32) | FD, (1 << 40) | 5))
    assert subject.args == (FD, 5)


# --- bind and connect --------------------------------------------------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", ["bind", "connect"])
@pytest.mark.parametrize("raw, expected", [
    (sockaddr_in("127.0.0.1", 80), Inet4(V4("127.0.0.1"), 80)),
    (sockaddr_in6("2001:db8::5", 443, 0x12, 3), Inet6(V6("2001:db8::5"), 443, 0x12, 3)),
    (sockaddr_in6("::1", 443)[:24], Inet6(V6("::1"), 443)),
    (sockaddr_nl(0, 1), Netlink(0, 1)),
    (sockaddr_un(b"\0abstract\0name"), Unix(abstract=b"abstract\0name")),
    (sockaddr_un(b""), Unix()),
    (struct.pack("=H", 17) + bytes(18), Unknown(17, bytes(18))),
], ids=["inet", "inet6", "inet6-24", "netlink", "abstract", "unnamed", "unknown"])
def test_bind_connect_addresses(abi, name, raw, expected):
    tracee = Tracee(abi)
    own_family = expected.family in (AF_INET, AF_INET6, AF_UNIX, AF_NETLINK)
    process = FakeProcess(info=(expected.family if own_family else AF_INET, SOCK_STREAM, 0))
    subject = one(tracee, name, (FD, tracee.place(raw), len(raw)), process)
    assert subject.call.address == expected
    assert subject.call.family == expected.family
    assert subject.call.path is None
    assert subject.addrlen == len(raw)


@pytest.mark.parametrize("sock_family, raw, readable", [
    (AF_INET, sockaddr_in6("::1", 443), False),  # inet_bind, inet_stream_connect: refused
    (AF_INET6, sockaddr_in("127.0.0.1", 80), True),  # udpv6 reads it as the IPv4 it is
    (AF_UNIX, sockaddr_in("127.0.0.1", 80), False),
    (AF_NETLINK, sockaddr_un(b"/tmp/x"), False),
], ids=["inet-reading-inet6", "inet6-reading-inet", "unix-reading-inet", "netlink-reading-unix"])
def test_an_address_of_another_family_is_judged_as_the_socket_reads_it(sock_family, raw,
                                                                        readable):
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(sock_family, SOCK_DGRAM, 0))
    call = one(tracee, "connect", (FD, tracee.place(raw), len(raw)), process).call
    family = struct.unpack_from("=H", raw)[0]
    assert call.address.family == family
    assert isinstance(call.address, Unknown) is not readable
    assert process.resolved == []  # no filesystem path, nothing to resolve


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name, follow_last", [("connect", True), ("bind", False)])
def test_relative_unix_path_resolved(abi, name, follow_last):
    # connect follows a final symlink; bind creates the last component, so does not.
    tracee = Tracee(abi)
    process = FakeProcess(info=(AF_UNIX, SOCK_STREAM, 0))
    raw = sockaddr_un(b"run/app.sock\0")
    call = one(tracee, name, (FD, tracee.place(raw), len(raw)), process).call
    assert process.resolved == [(b"run/app.sock", follow_last)]
    assert call.path == CWD + "/run/app.sock"
    assert call.address == Unix(path=b"run/app.sock")
    assert call.family == AF_UNIX


def test_unterminated_unix_path_fills_addrlen():
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(AF_UNIX, SOCK_STREAM, 0))
    raw = sockaddr_un(b"/tmp/s.sock")
    call = one(tracee, "connect", (FD, tracee.place(raw + b"XYZ"), len(raw)), process).call
    assert call.path == "/tmp/s.sock"
    assert process.resolved == [(b"/tmp/s.sock", True)]


def test_connect_unspec_is_unspec_with_family_0():
    tracee = Tracee(Abi.X86_64)
    raw = sockaddr_in("10.0.0.1", 80, fam=AF_UNSPEC)
    call = one(tracee, "connect", (FD, tracee.place(raw), len(raw))).call
    assert call.address == Unspec()
    assert call.family == AF_UNSPEC
    assert call.alias is None


def test_bind_unspec_16_bytes_is_inet4():
    # inet_bind accepts AF_UNSPEC (with INADDR_ANY) as AF_INET.
    tracee = Tracee(Abi.X86_64)
    raw = sockaddr_in("0.0.0.0", 8080, fam=AF_UNSPEC)
    call = one(tracee, "bind", (FD, tracee.place(raw), len(raw))).call
    assert call.address == Inet4(V4("0.0.0.0"), 8080)
    assert call.family == AF_INET


def test_bind_unspec_short_names_no_address():
    tracee = Tracee(Abi.X86_64)
    raw = struct.pack("=H", AF_UNSPEC) + bytes(6)
    call = one(tracee, "bind", (FD, tracee.place(raw), len(raw))).call
    # no address to judge: the family is the socket's
    assert call.address is None and call.family == AF_INET and call.alias is None


@pytest.mark.parametrize("name", ["bind", "connect"])
@pytest.mark.parametrize("addrlen", [129, 200, 0xFFFFFFFF, 0x80000000])
def test_bind_connect_addrlen_outside_0_to_128_is_einval(name, addrlen):
    tracee = Tracee(Abi.X86_64)
    pointer = tracee.place(bytes(256))
    raises_errno(errno.EINVAL, run, tracee, name, (FD, pointer, addrlen))


@pytest.mark.parametrize("name", ["bind", "connect"])
@pytest.mark.parametrize("raw", [b"", sockaddr_in("10.0.0.1", 80)[:8]], ids=["empty", "short"])
def test_bind_connect_address_too_short_names_nothing(name, raw):
    # Judged without an address; the kernel refuses the same bytes (EINVAL) if allowed.
    tracee = Tracee(Abi.X86_64)
    subject = one(tracee, name, (FD, tracee.place(raw) if raw else 0, len(raw)))
    assert subject.call.address is None
    assert subject.raw_address == raw


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", ["bind", "connect"])
def test_bind_connect_unreadable_address_is_efault(abi, name):
    tracee = Tracee(abi)
    raises_errno(errno.EFAULT, run, tracee, name, (FD, UNMAPPED[abi], 16))


def test_connect_reads_exactly_addrlen_bytes():
    # An address at the very end of readable memory must not be over-read.
    tracee = Tracee(Abi.X86_64)
    pointer = tracee.place(DEST4)
    assert one(tracee, "connect", (FD, pointer, 16)).call.address == DEST4_ADDRESS
    assert (pointer, 16) in tracee.memory.reads


# --- sendto and recvfrom -----------------------------------------------------------------


def sendto_args(dest: int, addrlen: int) -> tuple[int, ...]:
    return (FD, BUF, LEN, FLAGS, dest, addrlen)


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendto_with_destination(abi):
    tracee = Tracee(abi)
    raw = sockaddr_in6("2001:db8::7", 53)
    subject = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw)),
                  FakeProcess(info=(AF_INET6, SOCK_DGRAM, 0)))
    assert subject.call.alias is None
    assert subject.call.address == Inet6(V6("2001:db8::7"), 53)
    assert subject.call.family == AF_INET6
    assert subject.addrlen == 28


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("dest_null, addrlen", [(True, 16), (True, 0), (False, 0),
                                                (True, 200)])
def test_sendto_without_destination_is_a_send(abi, dest_null, addrlen):
    # No destination: a NULL pointer (whatever the length) or a length of 0.
    tracee = Tracee(abi)
    dest = 0 if dest_null else tracee.place(DEST4)
    call = one(tracee, "sendto", sendto_args(dest, addrlen)).call
    assert call.alias == "send"
    assert call.address is None and call.family == AF_INET  # the socket's


@pytest.mark.parametrize("sock_family, raw", [(AF_INET, sockaddr_in("10.0.0.1", 1)[:8]),
                                              (AF_INET6, sockaddr_in6("::1", 1)[:20]),
                                              (AF_NETLINK, sockaddr_nl(1, 1)[:6]),
                                              (AF_UNIX, sockaddr_un(b"x" * 120)),
                                              (AF_INET, b"\x02")])
def test_sendto_too_short_or_invalid_address_counts_as_no_destination(sock_family, raw):
    # Every protocol refuses (or, connected, ignores) an address it cannot use.
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(sock_family, SOCK_DGRAM, 0))
    call = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw)), process).call
    assert call.alias == "send"
    assert call.address is None


@pytest.mark.parametrize("addrlen", [129, 200, 0xFFFFFFFF])
def test_sendto_addrlen_out_of_range_is_einval(addrlen):
    tracee = Tracee(Abi.X86_64)
    pointer = tracee.place(bytes(256))
    raises_errno(errno.EINVAL, run, tracee, "sendto", sendto_args(pointer, addrlen))


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendto_unreadable_address_is_efault(abi):
    tracee = Tracee(abi)
    raises_errno(errno.EFAULT, run, tracee, "sendto", sendto_args(UNMAPPED[abi], 16))


def test_sendto_unspec_16_bytes_is_inet4():
    # udp_sendmsg reads an AF_UNSPEC destination as AF_INET.
    tracee = Tracee(Abi.X86_64)
    raw = sockaddr_in("198.51.100.1", 9, fam=AF_UNSPEC)
    call = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw))).call
    assert call.address == Inet4(V4("198.51.100.1"), 9)
    assert call.family == AF_INET and call.alias is None


def test_sendto_unspec_short_is_a_send():
    tracee = Tracee(Abi.X86_64)
    raw = struct.pack("=H", AF_UNSPEC) + bytes(4)
    call = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw))).call
    assert call.alias == "send" and call.address is None


def test_sendto_unix_path_is_resolved_following_the_last_link():
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(AF_UNIX, SOCK_DGRAM, 0))
    raw = sockaddr_un(b"/dev/log\0")
    call = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw)), process).call
    assert call.path == "/dev/log"
    assert process.resolved == [(b"/dev/log", True)]


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_recvfrom_without_address_buffer_is_a_recv(abi):
    tracee = Tracee(abi)
    call = one(tracee, "recvfrom", (FD, BUF, LEN, FLAGS, 0, 0)).call
    assert call.alias == "recv"


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_recvfrom_with_address_buffer_is_not_a_recv(abi):
    # The buffer is only written, never read: describe does not touch it.
    tracee = Tracee(abi)
    subject = one(tracee, "recvfrom", (FD, BUF, LEN, FLAGS, UNMAPPED[abi], UNMAPPED[abi] + 64))
    assert subject.call.alias is None and subject.call.address is None
    assert tracee.memory.reads == []


@pytest.mark.parametrize("name, alias", [("send", "sendto"), ("recv", "recvfrom")])
def test_send_and_recv_are_their_plain_twins(name, alias):
    tracee = Tracee(Abi.I386)
    assert one(tracee, name, (FD, BUF, LEN, FLAGS)).call.alias == alias


# --- sendmsg -----------------------------------------------------------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_with_destination(abi):
    tracee = Tracee(abi)
    raw = sockaddr_un(b"\0bus")
    subject = one(tracee, "sendmsg", (FD, tracee.message(raw), FLAGS),
                  FakeProcess(info=(AF_UNIX, SOCK_DGRAM, 0)))
    assert subject.call.address == Unix(abstract=b"bus")
    assert subject.call.family == AF_UNIX and subject.call.alias is None
    assert subject.addrlen == len(raw)


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_reads_the_abis_msghdr(abi):
    tracee = Tracee(abi)
    pointer = tracee.message(DEST4)
    one(tracee, "sendmsg", (FD, pointer, FLAGS))
    assert tracee.memory.reads[0] == (pointer, 56 if abi is Abi.X86_64 else 28)


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_without_name_is_a_send(abi):
    tracee = Tracee(abi)
    subject = one(tracee, "sendmsg", (FD, tracee.message(None), FLAGS))
    assert subject.call.alias == "send" and subject.call.address is None
    assert subject.addrlen == 0


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_null_name_ignores_namelen(abi):
    tracee = Tracee(abi)
    pointer = tracee.place(tracee.msghdr(name=0, namelen=-5))
    subject = one(tracee, "sendmsg", (FD, pointer, FLAGS))
    assert subject.call.alias == "send" and subject.addrlen == 0


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_negative_namelen_is_einval(abi):
    tracee = Tracee(abi)
    pointer = tracee.place(tracee.msghdr(name=tracee.place(DEST4), namelen=-1))
    raises_errno(errno.EINVAL, run, tracee, "sendmsg", (FD, pointer, FLAGS))


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_namelen_over_128_is_capped(abi):
    tracee = Tracee(abi)
    name = tracee.place(DEST4 + bytes(112))  # exactly 128 readable bytes
    subject = one(tracee, "sendmsg", (FD, tracee.place(tracee.msghdr(name, 4096)), FLAGS))
    assert subject.addrlen == 128
    assert subject.call.address == DEST4_ADDRESS
    assert (name, 128) in tracee.memory.reads


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_iovlen_over_1024_is_emsgsize(abi):
    tracee = Tracee(abi)
    pointer = tracee.place(tracee.msghdr(name=tracee.place(DEST4), namelen=16, iovlen=1025))
    raises_errno(errno.EMSGSIZE, run, tracee, "sendmsg", (FD, pointer, FLAGS))


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_unreadable_header_is_efault(abi):
    tracee = Tracee(abi)
    raises_errno(errno.EFAULT, run, tracee, "sendmsg", (FD, UNMAPPED[abi], FLAGS))


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_unreadable_name_is_efault(abi):
    tracee = Tracee(abi)
    pointer = tracee.place(tracee.msghdr(name=UNMAPPED[abi], namelen=16))
    raises_errno(errno.EFAULT, run, tracee, "sendmsg", (FD, pointer, FLAGS))


MSG_CMSG_COMPAT = 0x80000000


@pytest.mark.parametrize("name, flags_at", [("sendmsg", 2), ("recvmsg", 2), ("sendmmsg", 3),
                                            ("recvmmsg", 3)])
def test_msg_cmsg_compat_from_a_native_call_is_einval_before_anything_else(name, flags_at):
    # Only the kernel's compat entry may ask for 32-bit control messages; a native call
    # asking is refused before its descriptor or memory is looked at.
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(socket_errno=errno.EBADF)
    args = [FD, UNMAPPED[Abi.X86_64], 1, 0]
    args[flags_at] = MSG_CMSG_COMPAT
    raises_errno(errno.EINVAL, run, tracee, name, tuple(args), process, True)
    assert process.queried == [] and tracee.memory.reads == []
    # From an i386 call the flag is the kernel's own marking, and the call goes on.
    tracee = Tracee(Abi.I386)
    args[1] = tracee.message(DEST4)
    assert run(tracee, name, tuple(args))


def test_sendmsg_header_cut_short_by_unmapped_memory_is_efault():
    tracee = Tracee(Abi.X86_64)
    pointer = tracee.place(tracee.msghdr()[:40])
    raises_errno(errno.EFAULT, run, tracee, "sendmsg", (FD, pointer, FLAGS))


def test_sendmsg_short_name_counts_as_no_destination():
    tracee = Tracee(Abi.X86_64)
    subject = one(tracee, "sendmsg", (FD, tracee.message(DEST4[:10]), FLAGS))
    assert subject.call.alias == "send" and subject.call.address is None


# --- sendmmsg ----------------------------------------------------------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmmsg_vlen_zero_is_one_plain_subject(abi):
    tracee = Tracee(abi)
    subjects = run(tracee, "sendmmsg", (FD, UNMAPPED[abi], 0, FLAGS))
    assert len(subjects) == 1
    assert subjects[0].call.alias == "send" and subjects[0].call.address is None
    assert tracee.memory.reads == []  # nothing to read, so nothing to fault on


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmmsg_each_entry_decoded_separately(abi):
    # An inet6 socket reads IPv4 destinations too, and none of another family.
    tracee = Tracee(abi)
    process = FakeProcess(info=(AF_INET6, SOCK_DGRAM, 0))
    vector = tracee.messages([DEST4, sockaddr_in6("::1", 7), None, sockaddr_un(b"rel\0")])
    subjects = run(tracee, "sendmmsg", (FD, vector, 4, FLAGS), process)
    calls = [subject.call for subject in subjects]
    assert [c.address for c in calls] == [DEST4_ADDRESS, Inet6(V6("::1"), 7), None,
                                          Unknown(AF_UNIX, b"rel\0")]
    assert [c.family for c in calls] == [AF_INET, AF_INET6, AF_INET6, AF_UNIX]  # none: the socket's
    assert [c.alias for c in calls] == [None, None, "send", None]
    assert [s.addrlen for s in subjects] == [16, 28, 0, 6]
    assert all(s.fd == FD and c.name == "sendmmsg" for s, c in zip(subjects, calls))
    assert process.resolved == []


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmmsg_vlen_capped_at_1024(abi):
    # __sys_sendmmsg caps vlen at UIO_MAXIOV rather than refusing it. Memory holds exactly
    # 1024 entries, so reading a 1025th would fault.
    tracee = Tracee(abi)
    vector = tracee.messages([DEST4] * 1024)
    subjects = run(tracee, "sendmmsg", (FD, vector, 2000, FLAGS))
    assert len(subjects) == 1024
    assert all(s.call.address == DEST4_ADDRESS for s in subjects)


def test_sendmmsg_vlen_is_an_unsigned_int():
    # Upper register bits are not part of vlen.
    tracee = Tracee(Abi.X86_64)
    vector = tracee.messages([DEST4, None])
    assert len(run(tracee, "sendmmsg", (FD, vector, (1 << 32) | 2, FLAGS))) == 2


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmmsg_uses_the_abis_entry_stride(abi):
    # 64-byte entries on x86_64, 32-byte ones on i386: the second entry's name must be
    # found where the ABI puts it.
    tracee = Tracee(abi)
    vector = tracee.messages([None, sockaddr_nl(9, 0)])
    process = FakeProcess(info=(AF_NETLINK, SOCK_DGRAM, 0))
    subjects = run(tracee, "sendmmsg", (FD, vector, 2, FLAGS), process)
    assert [s.call.address for s in subjects] == [None, Netlink(9, 0)]


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmmsg_unreadable_first_entry_is_efault(abi):
    tracee = Tracee(abi)
    raises_errno(errno.EFAULT, run, tracee, "sendmmsg", (FD, UNMAPPED[abi], 1, FLAGS))


def test_sendmmsg_bad_first_entry_fails_the_call():
    tracee = Tracee(Abi.X86_64)
    entry = tracee.msghdr(name=tracee.place(DEST4), namelen=-1) + bytes(8)
    raises_errno(errno.EINVAL, run, tracee, "sendmmsg", (FD, tracee.place(entry), 1, FLAGS))


# --- where the kernel's order of checks matters (see net/socket.c) ------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
def test_sendmsg_name_fault_comes_before_iovlen_check(abi):
    # __copy_msghdr / __get_compat_msghdr copy msg_name (move_addr_to_kernel -> EFAULT)
    # before testing msg_iovlen > UIO_MAXIOV (EMSGSIZE).
    tracee = Tracee(abi)
    pointer = tracee.place(tracee.msghdr(name=UNMAPPED[abi], namelen=16, iovlen=1025))
    raises_errno(errno.EFAULT, run, tracee, "sendmsg", (FD, pointer, FLAGS))


@pytest.mark.parametrize("name, socket_errno, expected", [
    ("connect", errno.EBADF, errno.EBADF),  # fdget fails first
    ("connect", errno.ENOTSOCK, errno.EINVAL),  # address copied before sock_from_file
    ("bind", errno.ENOTSOCK, errno.ENOTSOCK),  # sockfd_lookup_light comes first
], ids=["connect-EBADF", "connect-ENOTSOCK", "bind-ENOTSOCK"])
def test_connect_address_errors_come_before_enotsock(name, socket_errno, expected):
    # __sys_connect: fdget (EBADF), move_addr_to_kernel (EINVAL/EFAULT), then
    # __sys_connect_file's sock_from_file (ENOTSOCK). __sys_bind looks up the socket first.
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(socket_errno=socket_errno)
    pointer = tracee.place(bytes(256))
    raises_errno(expected, run, tracee, name, (FD, pointer, 200), process, True)


def test_sendmmsg_unreadable_later_entry_judges_the_readable_ones():
    # __sys_sendmmsg sends entry by entry and returns the count sent if any was: with
    # entry 0 readable and entry 1 not, the kernel sends entry 0 and returns 1 (no EFAULT).
    tracee = Tracee(Abi.X86_64)
    vector = tracee.messages([DEST4])  # room for one entry only
    subjects = run(tracee, "sendmmsg", (FD, vector, 2, FLAGS))
    assert [s.call.address for s in subjects] == [DEST4_ADDRESS]


@pytest.mark.parametrize("sock_type, protocol", [(SOCK_RAW, IPPROTO_ICMPV6),
                                                 (SOCK_DGRAM, IPPROTO_UDP)],
                         ids=["raw6", "udp6"])
def test_sendto_unspec_on_an_inet6_socket_is_not_ipv4(sock_type, protocol):
    # The AF_UNSPEC-as-AF_INET rule is udp_sendmsg's/inet_bind's (IPv4). An inet6 socket
    # reads the same bytes as a sockaddr_in6: rawv6_sendmsg accepts sin6_family 0 and
    # sends to sin6_addr; udpv6_sendmsg treats AF_UNSPEC as no destination at all.
    # Here bytes 4..8 (sin6_flowinfo) spell 10.0.0.1 and sin6_addr is 2001:db8::1.
    tracee = Tracee(Abi.X86_64)
    process = FakeProcess(info=(AF_INET6, sock_type, protocol))
    raw = (struct.pack("=H", AF_UNSPEC) + struct.pack("!H", 0) + socket.inet_aton("10.0.0.1")
           + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + bytes(4))
    call = one(tracee, "sendto", sendto_args(tracee.place(raw), len(raw)), process, True).call
    assert not isinstance(call.address, Inet4), call.address
    if sock_type == SOCK_RAW:
        assert isinstance(call.address, Inet6) and call.address.address == V6("2001:db8::1")
    else:
        assert call.address is None and call.alias == "send"


# --- fuzzing (issue 6, item 4) -----------------------------------------------------------
# describe() on any arguments, over a memory of random regions (holding random bytes,
# pointers into each other, lengths, sockaddrs and msghdrs), for any socket: it returns
# subjects or raises Malformed with a kernel errno, nothing else. The same through
# socketcall's argument array. FUZZ_EXAMPLES=N runs N examples (default 500).

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "500")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# What describe may refuse a call with: a bad pointer, a bad length or flag, too many
# iovecs, or a descriptor that is no socket.
DESCRIBE_ERRNOS = {errno.EFAULT, errno.EINVAL, errno.EMSGSIZE, errno.EBADF, errno.ENOTSOCK}
FUZZ_PROFILES = [load_profile(name) for name in ("web", "localhost", "offline", "server", "audit")]
_FAMILIES = [AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, 17, 0xFFFF]


def _word(abi: Abi, value: int) -> bytes:
    return struct.pack("=Q" if abi is Abi.X86_64 else "=I", value & abi.word_mask)


@st.composite
def fuzz_tracees(draw, abi: Abi) -> tuple[FakeMemory, list[tuple[int, bytes]], list[int], list[int]]:
    """A memory of random regions: sockaddrs each in its own region, a vector of
    (mmsg)hdrs naming them (or anything), and regions of random chunks. Also the
    addresses worth pointing at (region starts) and the lengths worth passing."""
    pages = draw(st.lists(st.integers(1, (abi.word_mask >> 12) - 0x400), min_size=6, max_size=9, unique=True))
    bases = [page << 12 for page in pages]
    raw_sockaddrs = draw(st.lists(st.builds(
        lambda fam, body: struct.pack("=H", fam) + body,
        st.sampled_from([AF_INET, AF_INET6, AF_UNIX] * 2 + _FAMILIES),
        st.one_of(st.binary(min_size=14, max_size=26), st.binary(max_size=126))), min_size=1, max_size=3))
    memory = FakeMemory()
    for base, raw in zip(bases, raw_sockaddrs):
        memory.put(base, raw)
    named = bases[:len(raw_sockaddrs)]
    lengths = sorted({len(raw) for raw in raw_sockaddrs} | {0, 2, 16, 28, 110, 128, 129})
    pointers = st.one_of(st.sampled_from(named), st.sampled_from(bases),
                         st.builds(lambda base, offset: base + offset, st.sampled_from(bases), st.integers(0, 256)),
                         st.sampled_from([0, UNMAPPED[abi]]))
    namelens = st.one_of(st.sampled_from(lengths), st.sampled_from(lengths),
                         st.integers(-(2**31), 2**31 - 1))

    def header(name: int, namelen: int, iovlen: int) -> bytes:
        if abi is Abi.X86_64:
            raw = struct.pack("=Qi4xQQQQi4x", name, namelen, 0x1000, iovlen, 0, 0, 0)
        else:
            raw = struct.pack("=IiIIIIi", name, namelen, 0x1000, iovlen & 0xFFFFFFFF, 0, 0, 0)
        return raw + bytes(mmsghdr_size(abi) - msghdr_size(abi))  # msg_len (and padding)

    iovlens = st.one_of(st.integers(0, 2), st.integers(0, 2), st.sampled_from([1024, 1025]),
                        st.integers(0, 2**64 - 1))
    headers = st.one_of(  # naming a sockaddr in memory, or anything
        st.builds(lambda pair, iovlen: header(pair[0], len(pair[1]), iovlen),
                  st.sampled_from(list(zip(named, raw_sockaddrs))), iovlens),
        st.builds(header, pointers, namelens, iovlens))
    # A vector of mmsghdrs, now and then one longer than sendmmsg's cap, maybe cut short.
    vector = b"".join(draw(st.lists(headers, min_size=1, max_size=6)))
    if draw(st.integers(0, 5)) == 0:
        vector *= (UIO_MAXIOV + 8) // (len(vector) // mmsghdr_size(abi)) + 1
    vector = vector[:len(vector) - draw(st.sampled_from([0, 0, 0, 1, 8, mmsghdr_size(abi) // 2]))]
    memory.put(bases[len(raw_sockaddrs)], vector)
    chunks = st.one_of(st.binary(min_size=1, max_size=64), pointers.map(lambda p: _word(abi, p)),
                       namelens.map(lambda n: struct.pack("=i", n)), headers)
    for base in bases[len(raw_sockaddrs) + 1:]:
        memory.put(base, b"".join(draw(st.lists(chunks, min_size=1, max_size=6))))
    return memory, list(zip(named, raw_sockaddrs)), [*named, bases[len(raw_sockaddrs)]], lengths


def fuzz_words(abi: Abi, pointers: list[int], lengths: list[int]):
    """Argument words: pointers into the memory, lengths of what is there, small
    numbers, anything (with garbage above the ABI's word, which describe must ignore)."""
    return st.one_of(
        st.sampled_from(pointers), st.sampled_from(lengths),
        st.builds(lambda base, offset: base + offset, st.sampled_from(pointers), st.integers(0, 128)),
        st.sampled_from([0, 1, 2, 3, 5, 1024, 1025, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**64 - 1,
                         UNMAPPED[abi]]),
        st.integers(0, 2**64 - 1),
    )


@st.composite
def fuzz_args(draw, abi: Abi, name: str, tracee, count: int) -> tuple[int, ...]:
    """`count` argument words: each anything, or (mostly) of the kind its place wants,
    an address and its length often those of one sockaddr in memory."""
    _, sockaddrs, pointers, lengths = tracee
    anything = fuzz_words(abi, pointers, lengths)
    address, raw = draw(st.sampled_from(sockaddrs))
    vector = pointers[len(sockaddrs)]  # the (mmsg)hdrs
    kinds = {
        "addr": st.one_of(st.just(address), st.just(address), st.just(address), st.sampled_from(pointers)),
        "msg": st.one_of(st.just(vector), st.just(vector), st.sampled_from(pointers)),
        "msgvec": st.one_of(st.just(vector), st.just(vector), st.sampled_from(pointers)),
        "addrlen": st.one_of(st.just(len(raw)), st.just(len(raw)), st.just(len(raw)), st.sampled_from(lengths)),
        "vlen": st.sampled_from([0, 1, 2, 3, 6, 1024, 1025, 2**32 + 2, 0xFFFFFFFF]),
        "flags": st.sampled_from([0, 0, 0x40, CMSG_COMPAT]), "fd": st.sampled_from([0, 3, FD, 2**32 + 3]),
    }
    places = [*ARGS[name], *[""] * (count - len(ARGS[name]))][:count]
    return tuple(draw(st.one_of(*[kinds.get(place, anything)] * 5, anything)) for place in places)


@st.composite
def fuzz_processes(draw, tracee) -> FakeProcess:
    """A socket of any kind, often of the family of a sockaddr in memory."""
    families = sorted({struct.unpack_from("=H", raw)[0] for _, raw in tracee[1]})
    family = draw(st.sampled_from([*families, *families, *_FAMILIES, AF_INET, AF_INET6, AF_UNIX]))
    sock_type = draw(st.one_of(st.sampled_from([SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, 5, SOCK_DGRAM | 0o4000]),
                               st.integers(0, 2**31 - 1)))
    protocol = draw(st.sampled_from([0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6]))
    socket_errno = draw(st.sampled_from([None] * 6 + [errno.EBADF, errno.ENOTSOCK]))
    return FakeProcess(info=(family, sock_type, protocol), socket_errno=socket_errno)


FUZZ_NAMES = st.sampled_from([*SUBCALLS, *sorted(ADDRESS_CALLS) * 3])


def check_described(name: str, abi: Abi, args: tuple[int, ...], describe_it) -> None:
    try:
        subjects = describe_it()
    except Malformed as error:
        assert error.errno in DESCRIBE_ERRNOS, (error.errno, error)
        return
    assert isinstance(subjects, list) and subjects
    masked = tuple(a & abi.word_mask for a in args)
    for subject in subjects:
        assert isinstance(subject, Subject)
        assert subject.call.name == name and subject.args == masked
        assert subject.fd == (None if name in ("socket", "socketpair") else int32(masked[0]))
        if subject.call.address is not None:
            assert subject.raw_address is not None
            assert subject.call.family == subject.call.address.family
        if subject.call.path is not None:
            assert isinstance(subject.call.address, Unix) and subject.call.path.startswith("/")
    for subject in subjects[:8]:
        for profile in FUZZ_PROFILES:  # what the supervisor does next
            assert profile.decide(subject.call).errno >= 1
    if name == "sendmmsg":
        vlen = masked[2] & 0xFFFFFFFF
        assert len(subjects) <= max(1, min(vlen, UIO_MAXIOV))  # vlen 0: one plain subject
        if vlen == 0:
            assert subjects[0].call.alias == "send" and subjects[0].call.address is None
    else:
        assert len(subjects) == 1


@FUZZ
@given(data=st.data(), abi=st.sampled_from(ABIS), name=FUZZ_NAMES, needs_socket=st.booleans())
def test_fuzz_describe(data, abi, name, needs_socket):
    tracee = data.draw(fuzz_tracees(abi))
    process = data.draw(fuzz_processes(tracee))
    args = data.draw(fuzz_args(abi, name, tracee, 6))
    check_described(name, abi, args, lambda: describe(name, abi, args, tracee[0], process, needs_socket))


@FUZZ
@given(data=st.data(), name=FUZZ_NAMES, needs_socket=st.booleans())
def test_fuzz_describe_through_socketcall(data, name, needs_socket):
    # As the supervisor does for socketcall(2): copy nargs 32-bit words from the array
    # the second argument points to (EFAULT if it cannot), then describe those.
    tracee = data.draw(fuzz_tracees(Abi.I386))
    memory, process = tracee[0], data.draw(fuzz_processes(tracee))
    words = [word & 0xFFFFFFFF for word in data.draw(fuzz_args(Abi.I386, name, tracee, socketcall_nargs(name)))]
    array = memory.put(max(memory.regions) + 0x200000, struct.pack(f"={len(words)}I", *words))  # apart
    pointer = data.draw(st.sampled_from([array, array, array + 1, array + 4, UNMAPPED[Abi.I386]]))
    try:
        args = decode_words(memory.read(pointer, 4 * socketcall_nargs(name)))
    except Malformed as error:
        assert error.errno == errno.EFAULT and pointer != array
        return
    assert len(args) == socketcall_nargs(name)
    if pointer == array:
        assert list(args) == words
    check_described(name, Abi.I386, args,
                    lambda: describe(name, Abi.I386, args, memory, process, needs_socket))


# --- listen: judged by the address it listens on ---------------------------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("local, address, path", [
    (sockaddr_in("0.0.0.0", 0), Inet4(V4("0.0.0.0"), 0), None),   # unbound: every interface
    (sockaddr_in("127.0.0.1", 8080), Inet4(V4("127.0.0.1"), 8080), None),
    (sockaddr_in6("::", 0), Inet6(ipaddress.IPv6Address("::"), 0), None),
    (sockaddr_un(b"/run/app.sock"), Unix(path=b"/run/app.sock"), "/run/app.sock"),
    (sockaddr_un(b"\0name"), Unix(abstract=b"name"), None),
    (struct.pack("=H", AF_UNIX), Unix(), None),                      # unbound unix: EINVAL, unnamed
])
def test_listen_is_judged_by_its_sockets_own_address(abi, local, address, path):
    family = {2: (AF_INET, SOCK_STREAM, IPPROTO_TCP), 10: (AF_INET6, SOCK_STREAM, IPPROTO_TCP),
              1: (AF_UNIX, SOCK_STREAM, 0)}[struct.unpack_from("=H", local)[0]]
    process = FakeProcess(info=family, local=local)
    tracee = Tracee(abi)
    subject = one(tracee, "listen", (FD, 16), process)
    assert (subject.call.address, subject.call.path) == (address, path)
    assert subject.raw_address == local


# --- a destination of nowhere: judged and sent as where it goes ---------------------------


@pytest.mark.parametrize("abi", ABIS, ids=lambda abi: abi.value)
@pytest.mark.parametrize("name", ["connect", "sendto", "sendmsg", "sendmmsg"])
@pytest.mark.parametrize("written, socket_info, local, goes_to", [
    (sockaddr_in("0.0.0.0", 80), (AF_INET, SOCK_STREAM, 6), sockaddr_in("0.0.0.0", 0), "127.0.0.1"),
    (sockaddr_in("0.0.0.0", 80), (AF_INET, SOCK_DGRAM, 17), sockaddr_in("127.0.0.5", 4000), "127.0.0.5"),
    (sockaddr_in6("::", 80), (AF_INET6, SOCK_DGRAM, 17), sockaddr_in6("::", 0), "::1"),
    (sockaddr_in6("::", 80), (AF_INET6, SOCK_DGRAM, 17), sockaddr_in6("::ffff:192.0.2.1", 9),
     "::ffff:127.0.0.1"),
    (sockaddr_in6("::ffff:0.0.0.0", 80), (AF_INET6, SOCK_DGRAM, 17), sockaddr_in6("::ffff:192.0.2.1", 9),
     "::ffff:192.0.2.1"),
])
def test_a_destination_of_nowhere_is_judged_and_sent_as_where_it_goes(abi, name, written, socket_info,
                                                                      local, goes_to):
    tracee = Tracee(abi)
    place = tracee.place(written)
    args = {"connect": (FD, place, len(written)),
            "sendto": (FD, BUF, LEN, FLAGS, place, len(written)),
            "sendmsg": (FD, tracee.message(written), FLAGS),
            "sendmmsg": (FD, tracee.messages([written]), 1, FLAGS)}[name]
    subject = one(tracee, name, args, FakeProcess(info=socket_info, local=local))
    assert subject.call.address.address == ipaddress.ip_address(goes_to)
    assert subject.call.address.port == 80
    # the bytes the kernel is handed name the same place, the rest as written
    rewritten = (sockaddr_in(goes_to, 80) if ":" not in goes_to
                 else sockaddr_in6(goes_to, 80))
    assert subject.raw_address == rewritten


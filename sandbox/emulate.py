"""Performing an allowed call in the supervisor, with exactly what was judged.

A sockaddr or msghdr lives in memory that another thread (or process) can rewrite
between the supervisor's read and the kernel's. So an allowed call that names an
address is not left to the tracee: the supervisor performs it on its copy of the
tracee's socket (the same open file, taken with pidfd_getfd), with the address bytes
it judged and unix paths as the handles it resolved, and hands the tracee the result.

It happens in two steps. `prepare` reads what the call needs from the tracee (its data,
control messages, descriptors passed along) into a `Plan`; `perform` makes the socket
calls and nothing else, so that it can run with the tracee's credentials in a child
process when the supervisor holds privileges the tracee gave up (`perform_as`).

The supervisor never blocks: it sends with MSG_DONTWAIT and connects a blocking
socket in non-blocking mode. Where the tracee would have waited, it is made to wait
in its own context (`Wait`: ppoll on its descriptor, then the call runs again), so
signals, SA_RESTART, job control and SO_SNDTIMEO for connect behave as they would.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Union

from .abi import Abi, syscall_number
from .calls import Subject
from .decode import Malformed, Unix, mmsghdr_size, msghdr_size
from .names import AF_INET, AF_INET6, AF_UNIX, IPPROTO_TCP, MSG_FASTOPEN, SOCK_STREAM
from .tracee import Credentials, SocketCopy, StopContext

MSG_DONTWAIT = 0x40
IPPROTO_MPTCP = 262
SOCK_SEQPACKET = 5
MAX_PAYLOAD = 4 << 20  # a datagram larger than this is refused (EMSGSIZE), a stream write cut
MAX_CONTROL = 64 << 10  # beyond net.core.optmem_max: the kernel says ENOBUFS
RETRY_NS = 50_000_000  # how long a tracee waits before trying again a send that would block
_CAPABILITY_VERSION_3 = 0x20080522

SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
SOL_IP, IP_RETOPTS = 0, 7
SOL_IPV6, IPV6_2292RTHDR, IPV6_RTHDR = 41, 5, 57
# Control messages that reroute a datagram through hosts of the sender's choosing:
# IPv4 source routing, IPv6 routing headers (segment routing among them).
_ROUTING = {(SOL_IP, IP_RETOPTS), (SOL_IPV6, IPV6_2292RTHDR), (SOL_IPV6, IPV6_RTHDR)}


@dataclass(frozen=True)
class Done:
    """The call's result (-errno on failure), and tracee memory to write first."""

    result: int
    writes: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Wait:
    """The tracee must wait for its descriptor `fd` to become writable, at most
    `timeout_ns` (None: no limit); then, if the wait timed out and `timed_out` is set,
    the call returns that, and otherwise the call runs again."""

    fd: int
    timeout_ns: int | None
    timed_out: int | None = None


Outcome = Union[Done, Wait]


def needs_emulation(subject: Subject) -> bool:
    """Whether letting the kernel run the call itself could use another address than
    the one judged. TCP ignores a send's address (but with MSG_FASTOPEN), a unix stream
    or seqpacket socket refuses or ignores it; every other address can be re-read."""
    name = subject.call.name
    if name in ("bind", "connect"):
        return True
    if name not in ("sendto", "sendmsg", "sendmmsg"):
        return False
    if name == "sendto" and (subject.args[4] == 0 or subject.args[5] & 0xFFFFFFFF == 0):
        return False  # no destination, in registers that no one else can change
    family, sock_type, protocol = subject.socket or (0, 0, 0)
    flags = subject.args[3] if name in ("sendto", "sendmmsg") else subject.args[2]
    stream = sock_type & 0xF == SOCK_STREAM
    if family in (AF_INET, AF_INET6) and stream and protocol in (IPPROTO_TCP, IPPROTO_MPTCP):
        return bool(flags & MSG_FASTOPEN)
    return not (family == AF_UNIX and (stream or sock_type & 0xF == SOCK_SEQPACKET))


# --- what a call needs, read from the tracee -------------------------------------------


@dataclass(frozen=True)
class Message:
    data: bytes
    control: tuple[tuple[int, int, bytes], ...]  # (level, type, data), descriptors ours
    destination: bytes | None
    flags: int
    length_at: int | None = None  # sendmmsg: where the kernel would write msg_len


@dataclass(frozen=True)
class Plan:
    name: str  # connect, bind or send
    sock: SocketCopy
    fd: int  # the tracee's descriptor
    address: bytes | None = None  # connect, bind: the sockaddr to hand the kernel
    bind_in: tuple[int, bytes] | None = None  # bind to a unix path: (directory handle, name)
    messages: tuple[Message, ...] = ()
    failure: int | None = None  # -errno found while reading the first message


def prepare(subjects: list[Subject], abi: Abi, stop: StopContext, memory) -> Plan:
    """Everything the call needs, read from the tracee now: after this, nothing more."""
    first = subjects[0]
    assert first.fd is not None
    sock = stop.socket(first.fd)
    name = first.call.name
    if name == "connect":
        return Plan("connect", sock, first.fd, address=_sockaddr(first, stop))
    if name == "bind":
        target = _unix_target(first, stop)
        if target is not None:
            assert target.name is not None
            return Plan("bind", sock, first.fd, bind_in=(target.fd, target.name))
        return Plan("bind", sock, first.fd, address=first.raw_address)
    messages: list[Message] = []
    for index, subject in enumerate(subjects):
        try:
            messages.append(_message(subject, index, abi, stop, memory))
        except Malformed as error:
            if not messages:
                return Plan("send", sock, first.fd, failure=-error.errno)
            break  # as __sys_sendmmsg: the messages before the bad one are sent
    return Plan("send", sock, first.fd, messages=tuple(messages))


def _message(subject: Subject, index: int, abi: Abi, stop: StopContext, memory) -> Message:
    destination = _sockaddr(subject, stop)
    if subject.call.name == "sendto":
        data = memory.read(subject.args[1], min(subject.args[2], MAX_PAYLOAD))
        return Message(data, (), destination, subject.args[3])
    header = subject.header
    assert header is not None
    data = _gather(header.iov, header.iovlen, abi, memory)
    control = _control(header.control, header.controllen, abi, stop, memory)
    if subject.call.name == "sendmsg":
        return Message(data, control, destination, subject.args[2])
    length_at = subject.args[1] + index * mmsghdr_size(abi) + msghdr_size(abi)
    return Message(data, control, destination, subject.args[3], length_at)


def _gather(iov: int, count: int, abi: Abi, memory) -> bytes:
    """The data an iovec array points to, up to MAX_PAYLOAD bytes."""
    if count == 0:
        return b""
    layout = "=QQ" if abi is Abi.X86_64 else "=II"
    size = struct.calcsize(layout)
    table = memory.read(iov, count * size)
    parts, total = [], 0
    for index in range(count):
        base, length = struct.unpack_from(layout, table, index * size)
        if length >= 1 << 63:
            raise Malformed(errno.EINVAL, "negative iov_len")
        take = min(length, MAX_PAYLOAD - total)
        parts.append(memory.read(base, take))
        total += take
        if total >= MAX_PAYLOAD:
            break
    return b"".join(parts)


def _control(pointer: int, length: int, abi: Abi, stop: StopContext,
             memory) -> tuple[tuple[int, int, bytes], ...]:
    """The control messages: descriptors passed (SCM_RIGHTS) turned into the
    supervisor's copies of them; routing headers refused."""
    if pointer == 0 or length == 0:
        return ()
    if length > MAX_CONTROL:
        raise Malformed(errno.ENOBUFS, f"msg_controllen {length}")
    raw = memory.read(pointer, length)
    header = struct.Struct("=Qii" if abi is Abi.X86_64 else "=Iii")
    align = 8 if abi is Abi.X86_64 else 4
    messages = []
    offset = 0
    while offset + header.size <= len(raw):
        cmsg_len, level, kind = header.unpack_from(raw, offset)
        if cmsg_len < header.size or offset + cmsg_len > len(raw):
            raise Malformed(errno.EINVAL, "bad cmsg_len")
        data = raw[offset + header.size:offset + cmsg_len]
        if (level, kind) in _ROUTING:
            raise Malformed(errno.EPERM, "a routing header in a control message")
        if (level, kind) == (SOL_SOCKET, SCM_RIGHTS):
            fds = struct.unpack(f"={len(data) // 4}i", data[:len(data) // 4 * 4])
            data = struct.pack(f"={len(fds)}i", *(stop.descriptor(fd) for fd in fds))
        messages.append((level, kind, data))
        offset += (cmsg_len + align - 1) // align * align
    return tuple(messages)


def _unix_target(subject: Subject, stop: StopContext):
    address = subject.call.address
    if not isinstance(address, Unix) or not address.path:
        return None
    return stop.unix_target(address.path, follow_last=subject.call.name != "bind")


def _sockaddr(subject: Subject, stop: StopContext) -> bytes | None:
    """The address to hand the kernel: the bytes judged, or for a unix path the handle
    it was resolved to, reached through /proc/self/fd."""
    target = _unix_target(subject, stop)
    if target is not None:
        return _unix_sockaddr(b"/proc/self/fd/%d" % target.fd)
    return subject.raw_address


def _unix_sockaddr(path: bytes) -> bytes:
    return struct.pack("=H", AF_UNIX) + path + b"\0"


# --- the calls ------------------------------------------------------------------------


def perform(plan: Plan) -> Outcome:
    """Make the socket calls of a plan; nothing is read from the tracee any more."""
    if plan.name == "connect":
        return _connect(plan)
    if plan.name == "bind":
        return _bind(plan)
    return _send(plan)


def emulate(subjects: list[Subject], abi: Abi, stop: StopContext, memory) -> Outcome:
    """Perform the call the subjects describe (several: the messages of a sendmmsg)."""
    return perform(prepare(subjects, abi, stop, memory))


def _connect(plan: Plan) -> Outcome:
    sock = plan.sock
    flags = _file_flags(sock)
    blocking = not flags & os.O_NONBLOCK
    if blocking and sock.type & 0xF in (SOCK_STREAM, SOCK_SEQPACKET):
        # Only for the moment of the call, on a socket not connected yet, so no other
        # user of the open file can notice.
        _set_file_flags(sock, flags | os.O_NONBLOCK)
        try:
            result = _raw_connect(sock.fd, plan.address)
            if result == -errno.EINPROGRESS:
                # Maybe done already (on loopback the handshake completes within the
                # call): a second connect then moves the socket to connected and tells
                # how it ended, sparing the tracee a wait and a second stop; else it
                # says EALREADY.
                result = _raw_connect(sock.fd, plan.address)
        finally:
            _set_file_flags(sock, flags)
    else:
        result = _raw_connect(sock.fd, plan.address)
    if blocking and result == -errno.EALREADY:
        return Wait(plan.fd, _send_timeout_ns(sock), timed_out=-errno.EINPROGRESS)
    if blocking and result == -errno.EAGAIN:  # a unix listener's backlog is full
        return Wait(plan.fd, RETRY_NS)
    return Done(result)


def _bind(plan: Plan) -> Outcome:
    if plan.bind_in is None:
        return Done(_raw_bind(plan.sock.fd, plan.address))
    # bind creates the name in the directory that was judged: from inside it, by name.
    directory, name = plan.bind_in
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(directory)
        return Done(_raw_bind(plan.sock.fd, _unix_sockaddr(name)))
    finally:
        os.fchdir(here)
        os.close(here)


def _send(plan: Plan) -> Outcome:
    """Message by message, as __sys_sendmmsg does: the count sent (or bytes, for one
    message), or the first error if none was; each sent message's msg_len written."""
    if plan.failure is not None:
        return Done(plan.failure)
    sock = plan.sock
    writes = []
    for index, message in enumerate(plan.messages):
        result = _send_one(sock, message)
        if result < 0 and index == 0:
            blocking = not message.flags & MSG_DONTWAIT and not _file_flags(sock) & os.O_NONBLOCK
            if blocking and result == -errno.EAGAIN:
                return Wait(plan.fd, RETRY_NS)
            if blocking and result == -errno.EINPROGRESS:  # MSG_FASTOPEN: connecting
                return Wait(plan.fd, _send_timeout_ns(sock), timed_out=-errno.EINPROGRESS)
        if result < 0:
            return Done(result if index == 0 else index, tuple(writes))
        if message.length_at is None:
            return Done(result)
        writes.append((message.length_at, struct.pack("=I", result)))
    return Done(len(plan.messages), tuple(writes))


def _send_one(sock: SocketCopy, message: Message) -> int:
    if len(message.data) >= MAX_PAYLOAD and sock.type & 0xF != SOCK_STREAM:
        return -errno.EMSGSIZE
    control = b"".join(_cmsg(level, kind, data) for level, kind, data in message.control)
    return _raw_sendmsg(sock.fd, message.data, control, message.flags | MSG_DONTWAIT,
                        message.destination)


def _cmsg(level: int, kind: int, data: bytes) -> bytes:
    if (level, kind) == (SOL_SOCKET, SCM_CREDENTIALS) and len(data) >= 4:
        # The kernel lets a process vouch only for itself: the sender is us.
        data = struct.pack("=i", os.getpid()) + data[4:]
    message = struct.pack("=Qii", socket.CMSG_LEN(len(data)), level, kind) + data
    return message.ljust(socket.CMSG_SPACE(len(data)), b"\0")


# --- with the tracee's credentials ----------------------------------------------------


def emulate_as(credentials: Credentials, subjects: list[Subject], abi: Abi, stop: StopContext,
               memory) -> Outcome:
    """`emulate`, with the socket calls made by a short-lived child process holding the
    tracee's credentials: a privileged supervisor must not lend its privileges to a
    tracee that gave its own up (a unix peer would see the supervisor's uid, a port
    below 1024 would bind, a directory the tracee cannot search would be crossed). Unix
    paths are resolved again as the tracee, and must reach what was judged."""
    plan = prepare(subjects, abi, stop, memory)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reported through the pipe
        outcome: Outcome = Done(-errno.EPERM)
        try:
            os.close(read_end)
            _become(credentials)
            stop.resolve_again()
            outcome = perform(_with_targets_of(plan, subjects, stop))
        except Malformed as error:
            outcome = Done(-error.errno)
        finally:
            os.write(write_end, pickle.dumps(outcome))
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        answer = report.read()
    os.waitpid(pid, 0)
    return pickle.loads(answer) if answer else Done(-errno.EPERM)


def _with_targets_of(plan: Plan, subjects: list[Subject], stop: StopContext) -> Plan:
    """The plan with its unix handles replaced by those resolved again."""
    first = subjects[0]
    target = _unix_target(first, stop)
    if target is None:
        return plan
    if plan.name == "bind":
        assert target.name is not None
        return Plan("bind", plan.sock, plan.fd, bind_in=(target.fd, target.name))
    if plan.name == "connect":
        return Plan("connect", plan.sock, plan.fd, address=_sockaddr(first, stop))
    messages = tuple(Message(m.data, m.control, _sockaddr(s, stop), m.flags, m.length_at)
                     for m, s in zip(plan.messages, subjects))
    return Plan("send", plan.sock, plan.fd, messages=messages, failure=plan.failure)


def _become(credentials: Credentials) -> None:
    os.setgroups(list(credentials.groups))
    os.setresgid(*credentials.gids[:3])
    os.setresuid(*credentials.uids[:3])
    if credentials.uids[1] == 0:  # root that dropped capabilities keeps only what it kept
        header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
        low, high = credentials.capabilities & 0xFFFFFFFF, credentials.capabilities >> 32
        data = (ctypes.c_uint32 * 6)(low, low, 0, high, high, 0)
        if _libc.syscall(syscall_number(Abi.X86_64, "capset"), header, data) != 0:
            raise Malformed(errno.EPERM, "capset")


# --- the calls, on raw bytes ------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.sendmsg.restype = ctypes.c_ssize_t


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_IoVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def _result(value: int) -> int:
    return value if value >= 0 else -ctypes.get_errno()


def _raw_connect(fd: int, address: bytes | None) -> int:
    data = address or b""
    return _result(_libc.connect(fd, ctypes.c_char_p(data), len(data)))


def _raw_bind(fd: int, address: bytes | None) -> int:
    data = address or b""
    return _result(_libc.bind(fd, ctypes.c_char_p(data), len(data)))


def _raw_sendmsg(fd: int, data: bytes, control: bytes, flags: int, name: bytes | None) -> int:
    payload = ctypes.create_string_buffer(data, len(data))
    iov = _IoVec(ctypes.cast(payload, ctypes.c_void_p), len(data))
    control_buffer = ctypes.create_string_buffer(control, len(control)) if control else None
    name_buffer = ctypes.create_string_buffer(name, len(name)) if name else None
    message = _MsgHdr(ctypes.cast(name_buffer, ctypes.c_void_p) if name_buffer else None,
                      len(name) if name else 0, ctypes.pointer(iov), 1,
                      ctypes.cast(control_buffer, ctypes.c_void_p) if control_buffer else None,
                      len(control), 0)
    return _result(_libc.sendmsg(fd, ctypes.byref(message), flags))


def _file_flags(sock: SocketCopy) -> int:
    return fcntl.fcntl(sock.fd, fcntl.F_GETFL)


def _set_file_flags(sock: SocketCopy, flags: int) -> None:
    fcntl.fcntl(sock.fd, fcntl.F_SETFL, flags)


def _send_timeout_ns(sock: SocketCopy) -> int | None:
    """SO_SNDTIMEO, which bounds how long a blocking connect waits (None: no bound)."""
    view = socket.socket(fileno=sock.fd)
    try:
        value = view.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16)
    finally:
        view.detach()
    seconds, microseconds = struct.unpack("=qq", value)
    return seconds * 1_000_000_000 + microseconds * 1000 or None

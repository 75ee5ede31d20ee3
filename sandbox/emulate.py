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
import functools
import os
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Union

from . import _fastpath, sockdiag
from .abi import Abi, syscall_number
from .calls import Subject
from .decode import Malformed, Unix, mmsghdr_size, msghdr_size
from .names import AF_INET, AF_INET6, AF_UNIX, IPPROTO_TCP, MSG_FASTOPEN, SOCK_STREAM
from .tracee import Credentials, SocketCopy, StopContext, UnixTarget

MSG_DONTWAIT = 0x40
MSG_CMSG_COMPAT = 0x80000000
MSG_EOR = 0x80
IPPROTO_MPTCP = 262
SOCK_SEQPACKET = 5
MAX_PAYLOAD = 4 << 20  # read at most this much of a send; a stream write beyond it is cut
RETRY_NS = 10_000_000  # how long a tracee waits before trying again a call that would block
_CAPABILITY_VERSION_3 = 0x20080522

SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
SOL_IP, IP_RETOPTS = 0, 7
SOL_IPV6, IPV6_2292RTHDR, IPV6_RTHDR = 41, 5, 57
# Control messages that reroute a datagram through hosts of the sender's choosing:
# IPv4 source routing, IPv6 routing headers (segment routing among them).
_ROUTING = {(SOL_IP, IP_RETOPTS), (SOL_IPV6, IPV6_2292RTHDR), (SOL_IPV6, IPV6_RTHDR)}


@functools.cache
def max_control() -> int:
    """Control data beyond net.core.optmem_max fails with ENOBUFS."""
    try:
        with open("/proc/sys/net/core/optmem_max") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return 20480  # the kernel's default for long


@dataclass(frozen=True)
class Done:
    """The call's result (-errno on failure), and tracee memory to write first."""

    result: int
    writes: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Wait:
    """The call would block: the tracee waits in its place, then the call runs again,
    unless the wait timed out and `timed_out` is set, which is then the call's result."""

    fd: int | None  # wait for it to be writable; None: where that would say nothing, sleep
    timeout_ns: int | None  # None: no limit
    timed_out: int | None = None
    # The socket's SO_SNDTIMEO, which bounds every wait of the call together (EAGAIN
    # after it) and, being set, makes a signal end the call with EINTR, never restart it.
    send_timeout_ns: int | None = None


@dataclass(frozen=True)
class Breach:
    """The call did what was not judged, and cannot be undone: the sandbox must end."""

    reason: str


Outcome = Union[Done, Wait, Breach]


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
    """One message of a send, as read from the tracee: what the supervisor sends."""

    data: bytes | Unreadable
    control: Control
    destination: bytes | None
    flags: int
    length_at: int | None = None  # sendmmsg: where the kernel would write msg_len


@dataclass(frozen=True)
class Plan:
    """A call as the supervisor will make it, with nothing left to read from the tracee."""

    name: str  # connect, bind or send
    sock: SocketCopy
    fd: int  # the tracee's descriptor
    address: bytes | None = None  # connect, bind: the sockaddr to hand the kernel
    bind_in: tuple[int, bytes] | None = None  # bind to a unix path: (directory handle, name)
    # ... and, where the kernel can take the path as written: (where from, the sockaddr)
    bind_as: tuple[int, bytes] | None = None
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
            return _bind_plan(sock, first, target)
        return Plan("bind", sock, first.fd, address=first.raw_address)
    messages: list[Message] = []
    if first.header is None and name != "sendto":  # sendmmsg of no message at all
        return Plan("send", sock, first.fd)
    for index, subject in enumerate(subjects):
        try:
            messages.append(_message(subject, index, sock, abi, stop, memory))
        except Malformed as error:
            if not messages:
                return Plan("send", sock, first.fd, failure=-error.errno)
            break  # as __sys_sendmmsg: the messages before the bad one are sent
    return Plan("send", sock, first.fd, messages=tuple(messages))


def _message(subject: Subject, index: int, sock: SocketCopy, abi: Abi, stop: StopContext,
             memory) -> Message:
    # A unix destination is resolved last: the kernel looks it up only after it has
    # copied the data and the control messages, so their faults come first.
    stream = sock.type & 0xF == SOCK_STREAM
    if subject.call.name == "sendto":
        check_user_range(subject.args[1], subject.args[2])
        data = _payload([(subject.args[1], subject.args[2])], stream, memory)
        # sendto's flags reach the protocol as they are; only sendmsg refuses
        # MSG_CMSG_COMPAT, and sendmsg is what performs it here.
        return Message(data, Control(), _sockaddr(subject, stop),
                       subject.args[3] & ~MSG_CMSG_COMPAT)
    header = subject.header
    assert header is not None
    data = _gather(header.iov, header.iovlen, stream, abi, memory)
    control = _control(header.control, header.controllen, abi, stop, memory)
    destination = _sockaddr(subject, stop)
    # MSG_CMSG_COMPAT marks an i386 call, whose control data is native by now.
    if subject.call.name == "sendmsg":
        return Message(data, control, destination, subject.args[2] & ~MSG_CMSG_COMPAT)
    length_at = subject.args[1] + index * mmsghdr_size(abi) + msghdr_size(abi)
    flags = subject.args[3] & ~MSG_CMSG_COMPAT | header.flags & MSG_EOR  # as ____sys_sendmsg
    return Message(data, control, destination, flags, length_at)


def _gather(iov: int, count: int, stream: bool, abi: Abi, memory) -> bytes | Unreadable:
    """The data an iovec array points to. The array itself must be readable
    (import_iovec); the data may not be, which the kernel finds only when it copies it,
    after the protocol's own checks: that is left to the kernel."""
    if count == 0:
        return b""
    layout = "=QQ" if abi is Abi.X86_64 else "=II"
    size = struct.calcsize(layout)
    table = memory.read(iov, count * size)
    lengths = [struct.unpack_from(layout, table, index * size) for index in range(count)]
    # As import_iovec(): every length is checked for sign as the array is copied, and
    # only then every buffer against user space.
    negative = 1 << (63 if abi is Abi.X86_64 else 31)
    if any(length >= negative for _, length in lengths):
        raise Malformed(errno.EINVAL, "negative iov_len")
    for base, length in lengths:
        check_user_range(base, length)
    return _payload(lengths, stream, memory)


def _payload(buffers: list[tuple[int, int]], stream: bool, memory) -> bytes | Unreadable:
    """The bytes to send. A stream takes at most MAX_PAYLOAD of them, a short write as
    any stream may make. A datagram is whole or not at all, and one beyond MAX_PAYLOAD
    is beyond any the kernel takes: it is handed over unread, as too long to send."""
    whole = sum(length for _, length in buffers)
    if whole > MAX_PAYLOAD and not stream:
        return Unreadable(whole)
    parts, left = [], MAX_PAYLOAD
    for base, length in buffers:
        take = min(length, left)
        try:
            parts.append(memory.read(base, take))
        except Malformed:
            return Unreadable(whole)
        left -= take
        if not left:
            break
    return b"".join(parts)


def check_user_range(base: int, length: int) -> None:
    """access_ok(): a buffer reaching past user space is EFAULT at once, before the
    protocol looks at anything (one merely unmapped faults later, as it is copied)."""
    if base + length > _user_space_end():
        raise Malformed(errno.EFAULT, f"{length} bytes at {base:#x} are not in user space")


@functools.cache
def _user_space_end() -> int:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            five_level = any(" la57" in line for line in cpuinfo if line.startswith("flags"))
    except OSError:
        five_level = False
    return (1 << (56 if five_level else 47)) - 4096


@dataclass(frozen=True)
class Unreadable:
    """Data the tracee pointed at that cannot be read: `length` bytes the kernel will
    be handed from memory that faults, so that it fails where it would have."""

    length: int


@dataclass(frozen=True)
class Control:
    """Control data in the native layout, ready for the kernel but for the pid of whoever
    sends it, to be written at each offset in `pid_at` (SCM_CREDENTIALS)."""

    data: bytes = b""
    pid_at: tuple[int, ...] = ()

    def for_sender(self) -> bytes:
        data = bytearray(self.data)
        for offset in self.pid_at:
            data[offset:offset + 4] = struct.pack("=i", os.getpid())
        return bytes(data)


_NATIVE_CMSG = struct.Struct("=Qii")
_COMPAT_CMSG = struct.Struct("=Iii")
_SUN_PATH_SIZE = 108
_STACK_CONTROL = 36  # ____sys_sendmsg's own buffer for control data, in bytes


def _control(pointer: int, length: int, abi: Abi, stop: StopContext, memory) -> Control:
    """The control messages, copied as ____sys_sendmsg copies them, with the descriptors
    passed (SCM_RIGHTS) turned into the supervisor's copies and routing headers refused."""
    if length == 0:
        return Control()
    if length > 0x7FFFFFFF:
        raise Malformed(errno.ENOBUFS, f"msg_controllen {length}")
    if abi is not Abi.X86_64:
        return _compat_control(pointer, length, stop, memory)
    # Copied whole, from a buffer of the socket's option memory when the stack's is too
    # small: EFAULT where unreadable (even from NULL), ENOBUFS past optmem_max.
    if not _fits_option_memory(length):
        raise Malformed(errno.ENOBUFS, f"msg_controllen {length}")
    return _native_control(bytearray(memory.read(pointer, length)), stop)


def _fits_option_memory(length: int) -> bool:
    """Whether ____sys_sendmsg gets a buffer of `length` bytes: from its stack, or from
    sock_kmalloc(), which grants less than net.core.optmem_max."""
    return length <= _STACK_CONTROL or length < max_control()


def _native_control(raw: bytearray, stop: StopContext) -> Control:
    """Left as the program laid it out, so that the protocol judges it where it would;
    patched in place, walking it exactly as for_each_cmsghdr() does: the kernel acts on
    no message this walk does not reach, so none is left with the program's numbers."""
    pid_at = []
    offset = 0
    while offset + _NATIVE_CMSG.size <= len(raw):
        cmsg_len, level, kind = _NATIVE_CMSG.unpack_from(raw, offset)
        if cmsg_len < _NATIVE_CMSG.size or cmsg_len > len(raw) - offset:
            break  # not CMSG_OK: the kernel refuses the call here (EINVAL)
        data_at = offset + _NATIVE_CMSG.size
        pid_at += _translate(raw, data_at, offset + cmsg_len, level, kind, stop)
        offset += (cmsg_len + 7) // 8 * 8
    return Control(bytes(raw), tuple(pid_at))


def _compat_control(pointer: int, length: int, stop: StopContext, memory) -> Control:
    """An i386 program's control data, rebuilt in the native layout as
    cmsghdr_from_user_compat_to_kern() rebuilds it: a first walk over the headers' lengths
    (EINVAL at a bad one, or when there is none), then ENOMEM when the native layout
    outgrows option memory, then the copy (EFAULT)."""
    spans = _compat_spans(pointer, length, memory)
    if spans is None:
        raise Malformed(errno.ENOMEM, "control data beyond option memory")
    out = bytearray()
    pid_at: list[int] = []
    for offset, cmsg_len in spans:
        raw = memory.read(pointer + offset, cmsg_len)
        _, level, kind = _COMPAT_CMSG.unpack_from(raw)
        data = raw[_COMPAT_CMSG.size:]
        start = len(out)
        out += _NATIVE_CMSG.pack(socket.CMSG_LEN(len(data)), level, kind) + data
        pid_at += _translate(out, start + _NATIVE_CMSG.size, len(out), level, kind, stop)
        out += b"\0" * (socket.CMSG_SPACE(len(data)) - socket.CMSG_LEN(len(data)))
    return Control(bytes(out), tuple(pid_at))


def _compat_spans(pointer: int, length: int, memory) -> list[tuple[int, int]] | None:
    """Where each compat header starts and how long it says it is, walked as the kernel
    walks them: from the first while a header fits (and the pointer is not NULL), on to
    any next one that starts within msg_controllen, even if it would not fit there.
    None where the native layout would outgrow option memory: the walk goes on to the
    end, for the EINVAL that comes first, but keeps nothing more."""
    spans: list[tuple[int, int]] | None = []
    headers, native_length = 0, 0
    offset = 0
    window, window_at = b"", 0
    walking = length >= _COMPAT_CMSG.size and pointer != 0
    while walking:
        if not window_at <= offset <= window_at + len(window) - 4:
            # Read ahead, for a walk over many headers; where that faults, the one field.
            window_at = offset
            try:
                window = memory.read(pointer + offset, max(4, min(length - offset, 1 << 16)))
            except Malformed:
                window = memory.read(pointer + offset, 4)
        (cmsg_len,) = struct.unpack_from("=I", window, offset - window_at)
        if not _COMPAT_CMSG.size <= cmsg_len <= length - offset:
            raise Malformed(errno.EINVAL, f"cmsg_len {cmsg_len} at offset {offset}")
        headers += 1
        if spans is not None:
            native_length += socket.CMSG_SPACE(cmsg_len - _COMPAT_CMSG.size)
            if _fits_option_memory(native_length):
                spans.append((offset, cmsg_len))
            else:
                spans = None
        offset += (cmsg_len + 3) // 4 * 4
        walking = offset < length
    if not headers:
        raise Malformed(errno.EINVAL, "no control message")
    return spans


def _translate(buffer: bytearray, start: int, end: int, level: int, kind: int,
               stop: StopContext) -> list[int]:
    """Patch one control message in place; return where a sender's pid goes."""
    if (level, kind) in _ROUTING:
        raise Malformed(errno.EPERM, "a routing header in a control message")
    if (level, kind) == (SOL_SOCKET, SCM_RIGHTS):
        for at in range(start, end - 3, 4):
            (fd,) = struct.unpack_from("=i", buffer, at)
            try:
                ours = stop.descriptor(fd)
            except Malformed:
                ours = -1  # the kernel finds it bad (EBADF) where it looks
            struct.pack_into("=i", buffer, at, ours)
    if (level, kind) == (SOL_SOCKET, SCM_CREDENTIALS) and end - start >= 12:
        return [start]
    return []


def _bind_plan(sock: SocketCopy, subject: Subject, target: UnixTarget) -> Plan:
    assert subject.fd is not None and target.name is not None and subject.raw_address
    bind_as = None
    if target.written_from is not None:
        bind_as = (target.written_from, subject.raw_address)
    return Plan("bind", sock, subject.fd, bind_in=(target.fd, target.name), bind_as=bind_as)


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
        return _unix_sockaddr(target.sun_path)
    return subject.raw_address


def _unix_sockaddr(path: bytes) -> bytes:
    # A path of the whole 108 bytes has no room for a terminator, nor needs one.
    return struct.pack("=H", AF_UNIX) + path + (b"\0" if len(path) < _SUN_PATH_SIZE else b"")


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
    result, blocking = _fastpath.connect(sock.fd, sock.type, plan.address or b"")
    if blocking and result in (-errno.EALREADY, -errno.EAGAIN):
        return wait_for("connect", sock.family, plan.fd, result, _send_timeout_ns(sock))
    return Done(result)


def wait_for(call: str, family: int, fd: int, result: int, send_timeout_ns: int | None) -> Wait:
    """How the tracee waits for a blocking call the supervisor could not complete at
    once: a connect under way (EALREADY; a send with MSG_FASTOPEN: EINPROGRESS), or no
    room (EAGAIN)."""
    if result in (-errno.EALREADY, -errno.EINPROGRESS):
        return Wait(fd, send_timeout_ns, timed_out=-errno.EINPROGRESS, send_timeout_ns=send_timeout_ns)
    # What is full is a unix listener's backlog (connect) or the receiver's queue of a
    # unix datagram: the sender's socket is writable all the while.
    polled = None if call == "connect" or family == AF_UNIX else fd
    return Wait(polled, RETRY_NS, send_timeout_ns=send_timeout_ns)


def _bind(plan: Plan) -> Outcome:
    if plan.bind_in is None:
        return Done(_raw_bind(plan.sock.fd, plan.address))
    directory, name = plan.bind_in
    if plan.bind_as is None or not sockdiag.can_tell(plan.sock.fd):
        # In the directory that was judged, from inside it, by name: the socket's name
        # (getsockname) is then that name alone, not the path the program gave.
        return Done(_bind_from(directory, plan.sock, _unix_sockaddr(name)))
    # With the path as written, so that the socket keeps it as its name; the kernel
    # resolves it once more, which a rename or a symlink swapped meanwhile could send
    # elsewhere: where it was bound is checked, and anywhere else ends the sandbox.
    start, address = plan.bind_as
    result = _bind_from(start, plan.sock, address)
    if result == 0:
        try:
            judged = sockdiag.File.of(os.stat(name, dir_fd=directory, follow_symlinks=False))
        except OSError:
            judged = None
        if judged is None or sockdiag.bound_file(plan.sock.fd) != judged:
            return Breach(f"a bind to {os.fsdecode(address[2:]).rstrip(chr(0))} reached another "
                          "place than the one judged: its path changed meanwhile")
    return Done(result)


def _bind_from(directory: int, sock: SocketCopy, address: bytes) -> int:
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(directory)
        return _raw_bind(sock.fd, address)
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
            if blocking and result in (-errno.EAGAIN, -errno.EINPROGRESS):
                return wait_for("send", sock.family, plan.fd, result, _send_timeout_ns(sock))
        if result < 0:
            return Done(result if index == 0 else index, tuple(writes))
        if message.length_at is None:
            return Done(result)
        writes.append((message.length_at, struct.pack("=I", result)))
    return Done(len(plan.messages), tuple(writes))


def _send_one(sock: SocketCopy, message: Message) -> int:
    # The kernel lets a process vouch only for itself (SCM_CREDENTIALS): the sender is
    # whoever performs the call.
    return _raw_sendmsg(sock.fd, message.data, message.control.for_sender(),
                        message.flags | MSG_DONTWAIT, message.destination)


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
        return _bind_plan(plan.sock, first, target)
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
_libc.sendmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)
# The start of the address space is never mapped (vm.mmap_min_addr): copying from it
# fails with EFAULT, as copying the tracee's unreadable data would have.
_FAULTING_ADDRESS = 4096


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(_IoVec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def _result(value: int) -> int:
    return value if value >= 0 else -ctypes.get_errno()


def _raw_bind(fd: int, address: bytes | None) -> int:
    data = address or b""
    return _result(_libc.bind(fd, ctypes.c_char_p(data), len(data)))


def _raw_sendmsg(fd: int, data: bytes | Unreadable, control: bytes, flags: int,
                 name: bytes | None) -> int:
    if isinstance(data, Unreadable):
        iov = _IoVec(_FAULTING_ADDRESS, data.length)
    else:
        payload = ctypes.create_string_buffer(data, len(data))
        iov = _IoVec(ctypes.cast(payload, ctypes.c_void_p), len(data))
    control_buffer = ctypes.create_string_buffer(control, len(control)) if control else None
    name_buffer = ctypes.create_string_buffer(name, len(name)) if name else None
    message = _MsgHdr(ctypes.cast(name_buffer, ctypes.c_void_p) if name_buffer else None,
                      len(name) if name else 0, ctypes.pointer(iov), 1,
                      ctypes.cast(control_buffer, ctypes.c_void_p) if control_buffer else None,
                      len(control), 0)
    return _result(_libc.sendmsg(fd, ctypes.byref(message), flags & 0xFFFFFFFF))


def _file_flags(sock: SocketCopy) -> int:
    return fcntl.fcntl(sock.fd, fcntl.F_GETFL)


def _send_timeout_ns(sock: SocketCopy) -> int | None:
    """SO_SNDTIMEO, which bounds how long a blocking connect waits (None: no bound)."""
    return _fastpath.send_timeout_ns(sock.fd) or None

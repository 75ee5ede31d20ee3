"""Performing an allowed call in the supervisor, with exactly what was judged.

A sockaddr or msghdr lives in memory that another thread (or process) can rewrite
between the supervisor's read and the kernel's. So an allowed call that names an
address is not left to the tracee: the supervisor performs it on its copy of the
tracee's socket (the same open file, taken with pidfd_getfd), with the address bytes
it judged and unix paths as the handles it resolved, and hands the tracee the result.

It happens in two steps. `prepare` reads what the call needs from the tracee (its data,
control messages, descriptors passed along) into a `Plan`; `perform` makes the socket
calls and nothing else, so that it can run with the tracee's credentials in a child
process when the supervisor holds privileges the tracee gave up (impersonate.py).

The supervisor never blocks: it sends with MSG_DONTWAIT and connects a blocking
socket in non-blocking mode. Where the tracee would have waited, it is made to wait
in its own context (`Wait`: ppoll on its descriptor, then the call runs again), so
signals, SA_RESTART, job control and SO_SNDTIMEO for connect behave as they would.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from dataclasses import dataclass

from . import _fastpath, libc, sockdiag
from .abi import Abi
from .calls import Subject, int32
from .control import Control, read_control
from .decode import Unix, mmsghdr_size, msghdr_size
from .errors import Malformed
from .names import AF_UNIX, MSG_CMSG_COMPAT, MSG_EOR, SOCK_STREAM, SOCK_TYPE_MASK
from .tracee import SocketCopy, StopContext, UnixTarget

MAX_PAYLOAD = 4 << 20  # read at most this much of a send; a stream write beyond it is cut
RETRY_NS = 10_000_000  # how long a tracee waits before trying again a call that would block
_SUN_PATH_SIZE = 108

@dataclass(frozen=True)
class Done:
    """The call's result (-errno on failure), and tracee memory to write first."""

    result: int
    writes: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True)
class Wait:
    """The call would block: the tracee waits in its place, then the call runs again,
    unless the wait timed out and `timed_out` is set, which is then the call's result."""

    fd: int | None  # wait for it to be ready; None: where that would say nothing, sleep
    timeout_ns: int | None  # None: no limit
    timed_out: int | None = None
    # The socket's SO_SNDTIMEO, which bounds every wait of the call together (EAGAIN
    # after it) and, being set, makes a signal end the call with EINTR, never restart it.
    send_timeout_ns: int | None = None
    readable: bool = False  # ready is readable (a receive, an accept), not writable


@dataclass(frozen=True)
class Breach:
    """The call did what was not judged, and cannot be undone: the sandbox must end."""

    reason: str


Outcome = Done | Wait | Breach


def needs_emulation(subject: Subject, socket_may_change: bool) -> bool:
    """Whether letting the kernel run the call itself could act on something else than
    what was judged: an address the kernel reads again from memory, or a socket the
    descriptor may no longer name when the kernel looks it up (another thread can
    dup2() another onto it meanwhile). A send whose registers say it names no
    destination is left to the kernel, as it goes where its socket is connected (which
    a connect decided), unless its verdict rested on the socket's family, type or
    protocol and another thread may change what the descriptor names
    (`socket_may_change`). A listen is judged by its socket's own address."""
    name = subject.call.name
    if name in ("bind", "connect", "listen"):
        return True
    if name == "sendto" and subject.args[4] != 0 and subject.args[5] & 0xFFFFFFFF != 0:
        return True
    if name in ("sendto", "send"):
        return socket_may_change
    return name in ("sendmsg", "sendmmsg")


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

    name: str  # connect, bind, listen or send
    sock: SocketCopy
    fd: int  # the tracee's descriptor
    address: bytes | None = None  # connect, bind: the sockaddr to hand the kernel
    bind_in: tuple[int, bytes] | None = None  # bind to a unix path: (directory handle, name)
    # ... and, where the kernel can take the path as written: (where from, the sockaddr)
    bind_as: tuple[int, bytes] | None = None
    messages: tuple[Message, ...] = ()
    failure: int | None = None  # -errno found while reading the first message
    backlog: int = 0  # listen


def prepare(subjects: list[Subject], abi: Abi, stop: StopContext, memory) -> Plan:
    """Everything the call needs, read from the tracee now: after this, nothing more."""
    first = subjects[0]
    assert first.fd is not None
    sock = stop.socket(first.fd)
    name = first.call.name
    if name == "connect":
        return Plan("connect", sock, first.fd, address=sockaddr_for(first, stop))
    if name == "bind":
        target = unix_target_of(first, stop)
        if target is not None:
            return bind_plan(sock, first, target)
        return Plan("bind", sock, first.fd, address=first.raw_address)
    if name == "listen":
        return Plan("listen", sock, first.fd, backlog=int32(first.args[1]))
    messages: list[Message] = []
    if first.header is None and name not in ("sendto", "send"):  # sendmmsg of no message at all
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
    stream = sock.type & SOCK_TYPE_MASK == SOCK_STREAM
    if subject.call.name in ("sendto", "send"):
        check_user_range(subject.args[1], subject.args[2])
        data = _payload([(subject.args[1], subject.args[2])], stream, memory)
        # sendto's flags reach the protocol as they are; only sendmsg refuses
        # MSG_CMSG_COMPAT, and sendmsg is what performs it here.
        return Message(data, Control(), sockaddr_for(subject, stop),
                       subject.args[3] & ~MSG_CMSG_COMPAT)
    header = subject.header
    assert header is not None
    data = _gather(header.iov, header.iovlen, stream, abi, memory)
    control = read_control(header.control, header.controllen, abi, stop, memory)
    destination = sockaddr_for(subject, stop)
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


def bind_plan(sock: SocketCopy, subject: Subject, target: UnixTarget) -> Plan:
    assert subject.fd is not None and target.name is not None and subject.raw_address
    bind_as = None
    if target.written_from is not None:
        bind_as = (target.written_from, subject.raw_address)
    return Plan("bind", sock, subject.fd, bind_in=(target.fd, target.name), bind_as=bind_as)


def unix_target_of(subject: Subject, stop: StopContext):
    address = subject.call.address
    if not isinstance(address, Unix) or not address.path:
        return None
    return stop.unix_target(address.path, follow_last=subject.call.name != "bind")


def sockaddr_for(subject: Subject, stop: StopContext) -> bytes | None:
    """The address to hand the kernel: the bytes judged, or for a unix path the handle
    it was resolved to, reached through /proc/self/fd."""
    target = unix_target_of(subject, stop)
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
    if plan.name == "listen":
        return Done(libc.listen(plan.sock.fd, plan.backlog))
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
        return Done(libc.bind(plan.sock.fd, plan.address))
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
        return libc.bind(sock.fd, address)
    finally:
        os.fchdir(here)
        os.close(here)


def _send(plan: Plan) -> Outcome:
    """Message by message, as __sys_sendmmsg does: the count sent (or bytes, for one
    message), or the first error if none was; each sent message's msg_len written."""
    if plan.failure is not None:
        return Done(plan.failure)
    sock = plan.sock
    writes: list[tuple[int, bytes]] = []
    for index, message in enumerate(plan.messages):
        # The kernel lets a process vouch only for itself (SCM_CREDENTIALS): the sender
        # is whoever performs the call.
        data = message.data.length if isinstance(message.data, Unreadable) else message.data
        result, blocking = _fastpath.sendmsg(sock.fd, data, message.control.for_sender(),
                                             message.flags, message.destination)
        if result < 0 and index == 0 and blocking:
            return wait_for("send", sock.family, plan.fd, result, _send_timeout_ns(sock))
        if result < 0:
            return Done(result if index == 0 else index, tuple(writes))
        if message.length_at is None:
            return Done(result)
        writes.append((message.length_at, struct.pack("=I", result)))
    return Done(len(plan.messages), tuple(writes))


def _send_timeout_ns(sock: SocketCopy) -> int | None:
    """SO_SNDTIMEO, which bounds how long a blocking connect waits (None: no bound)."""
    return _fastpath.send_timeout_ns(sock.fd) or None

"""What the supervisor learns about a tracee during one stop, and the handles it keeps.

Everything the decision rests on is taken as a handle, not a name: the socket as a
pidfd_getfd copy of the tracee's descriptor, a unix path as an O_PATH descriptor of
what it resolves to (or of its directory, for bind). The call the supervisor then
performs uses those handles, so nothing the tracee changes after the check (its memory,
a symlink, a directory) can change what is done.
"""

from __future__ import annotations

import _socket
import ctypes
import errno
import functools
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from . import _ptrace, libc, procfs
from .errors import Malformed, NeedDescriptor, TraceeGone

if TYPE_CHECKING:
    from .emulate import Wait
    from .executables import Vouching

O_PATH = 0o10000000
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(directory: int, path: bytes, flags: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    fd = libc.raw_syscall("openat2", directory, path, ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise Malformed(err, f"{os.fsdecode(path)}: {os.strerror(err)}")
    return fd


class SocketCopy(NamedTuple):
    fd: int  # ours: the same open file as the tracee's descriptor
    family: int
    type: int
    protocol: int


@dataclass(frozen=True)
class UnixTarget:
    """A unix path as the tracee's call would reach it. For connect and send, `fd` is
    the socket file itself; for bind, `fd` is the directory and `name` the new entry."""

    text: str  # the resolved absolute path, for the rules and the record
    fd: int
    name: bytes | None = None
    missing: bool = False  # resolves to nothing: `fd` is a directory that never holds "missing"
    # For bind: a directory from which the kernel, handed the path as the tracee wrote
    # it, starts where the judging started (its working directory, or its root, when
    # that root is ours). None where only the handles reach what was judged.
    written_from: int | None = None

    @property
    def sun_path(self) -> bytes:
        """What connect and send hand the kernel: the handle, through /proc/self/fd; or
        "missing" in a directory that never holds it, which the kernel finds missing."""
        return b"/proc/self/fd/%d" % self.fd + (b"/missing" if self.missing else b"")


class Credentials(NamedTuple):
    uids: tuple[int, ...]  # real, effective, saved, filesystem
    gids: tuple[int, ...]
    groups: tuple[int, ...]
    capabilities: int  # effective set

    @property
    def privileged(self) -> bool:
        """Whether these can hold more than a tracee started with them: an unprivileged
        process shares its user, groups and (outside user namespaces) capabilities
        with every process it starts, which cannot change them."""
        return self.uids[1] == 0 or self.capabilities != 0


# Capabilities the supervisor removes from tracees (CAP_SYS_PTRACE from every one,
# CAP_SYS_TIME under `exe` rules), never a difference that matters for performing a
# socket call.
_REMOVED_CAPABILITIES = 1 << libc.CAP_SYS_PTRACE | 1 << libc.CAP_SYS_TIME


def credentials(pid: int | str) -> Credentials:
    fields = procfs.status(pid)
    return Credentials(
        tuple(int(v) for v in fields["Uid"].split()),
        tuple(int(v) for v in fields["Gid"].split()),
        tuple(sorted(int(v) for v in fields.get("Groups", "").split())),
        int(fields["CapEff"], 16) & ~_REMOVED_CAPABILITIES,
    )


@dataclass
class Waiting:
    """A thread made to wait (ppoll) in place of a call, and how to end the wait."""

    original: Any  # its registers at the call
    wait: Wait


@dataclass
class Handing:
    """A thread running the sendmsg that hands descriptor `fd` over (or, `mapping`, the
    mmap of a low page to write that sendmsg's structures in), and the registers of
    the call it interrupted, which runs again after it."""

    fd: int
    original: Any
    tries: int = 1
    mapping: bool = False


@dataclass
class FrozenCall:
    """A call the kernel makes while the threads sharing its descriptors are kept still
    (sharing.py): the registers to give back at its exit, whether it was a blocking one
    (made non-blocking here), and the file made non-blocking for it (accept)."""

    original: Any
    blocking: bool
    nonblocking: int | None = None


@dataclass
class ThreadState:
    """What the supervisor keeps about one tracee thread from one stop to the next.
    _fastpath.c reads `pidfd` and `verdicts` by these names."""

    exe: str | None = None
    exe_read: bool = False
    pidfd: int | None = None
    pidfd_is_the_group: bool = False
    # Kept only by a privileged supervisor, which has the filter stop every call that
    # may change them and forgets them there.
    credentials: Credentials | None = None
    # The verdicts filed for this thread's executable, which _fastpath may serve its
    # calls from; None while every stop of the thread must go to Python.
    verdicts: dict[bytes, int] | None = None
    # Running a socketcall rewritten into its direct call: the registers to restore.
    rewritten: Any = None
    # Making a call while the threads sharing its descriptors are kept still.
    frozen: FrozenCall | None = None
    # Waiting in place of a call that would have blocked.
    waiting: Waiting | None = None
    # Running a call again after a wait, by where the call is and its number: decided
    # again, but not recorded again.
    running_again: tuple[int, int] | None = None
    # Running a call again after a handover, its decision recorded already.
    recorded_for: tuple[int, int] | None = None
    # When a call that waits and runs again gives up (SO_SNDTIMEO), in monotonic ns.
    give_up_at: int | None = None
    # Where pidfd_getfd is refused (handover.py): the copies of descriptors the thread
    # handed over, and the errno of those it could not, for the call at `handed_for`
    # (where it is and its number), good for its next stop only, where it runs again;
    # the handover under way.
    handed: dict[int, int] = field(default_factory=dict)
    unhanded: dict[int, int] = field(default_factory=dict)
    handed_for: tuple[int, int] | None = None
    handing: Handing | None = None
    handing_tries: int = 0  # of the handover for the call at `handed_for`

    def forget_handed(self) -> None:
        for copy in self.handed.values():
            os.close(copy)
        self.handed.clear()
        self.unhanded.clear()
        self.handed_for = None
        self.handing_tries = 0

    def forget_image(self) -> None:
        """After exec: another executable, recomputed capabilities, maybe another tid (a
        thread that exec'd takes the leader's, and whatever call the leader was in the
        middle of is gone with it)."""
        self.exe_read = False
        self.forget_credentials()
        self.close()
        if self.frozen is not None and self.frozen.nonblocking is not None:
            os.close(self.frozen.nonblocking)
        self.rewritten = self.frozen = self.waiting = self.handing = None
        self.running_again = self.recorded_for = None
        self.give_up_at = None

    def forget_credentials(self) -> None:
        self.credentials = None
        self.verdicts = None  # they may be another's now: only Python may perform calls

    def close(self) -> None:
        self.verdicts = None  # served with the pidfd closed here, never
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.forget_handed()


class StopContext:
    """One stop of one tracee thread. Implements calls.Process; close() when done."""

    def __init__(self, tid: int, thread: ThreadState, handed_over: bool = False,
                 call: tuple[int, int] | None = None, vouching: Vouching | None = None):
        self.tid = tid
        self.thread = thread
        # For a profile with `exe` rules: the executable is named only where sockbox
        # vouches for it (executables.py).
        self.vouching = vouching
        # Descriptors come handed over by the tracee (handover.py), for this call
        # (where it is and its number), rather than taken with pidfd_getfd.
        self.handed_over = handed_over
        self.call = call
        self._sockets: dict[int, SocketCopy] = {}
        self._descriptors: dict[int, int] = {}
        self._starts: dict[str, int] = {}  # the tracee's root and working directory
        self._targets: dict[tuple[bytes, bool], UnixTarget] = {}
        self._open: list[int] = []

    def close(self) -> None:
        for fd in self._open:
            os.close(fd)
        self._open.clear()

    def _keep(self, fd: int) -> int:
        self._open.append(fd)
        return fd

    # -- the process ------------------------------------------------------------------

    def exe(self) -> str | None:
        if not self.thread.exe_read:
            try:
                exe: str | None = os.readlink(f"/proc/{self.tid}/exe")
            except OSError:
                exe = None
            if exe is not None and self.vouching is not None:
                group = procfs.thread_group(self.tid)
                if not self.vouching.known(group):
                    return None  # a child stopped before its creation was read: ask again
                if not self.vouching.vouches(self.tid, group):
                    exe = None
            self.thread.exe, self.thread.exe_read = exe, True
        return self.thread.exe

    def credentials(self) -> Credentials:
        if self.thread.credentials is None:
            try:
                self.thread.credentials = credentials(self.tid)
            except (OSError, KeyError, ValueError):
                raise TraceeGone(self.tid) from None
        return self.thread.credentials

    # -- descriptors ------------------------------------------------------------------

    def descriptor(self, fd: int) -> int:
        """Our copy of the tracee's descriptor `fd` (the same open file)."""
        if fd not in self._descriptors:
            self._descriptors[fd] = self._copy_descriptor(fd)
        return self._descriptors[fd]

    def _copy_descriptor(self, fd: int) -> int:
        if self.handed_over:
            return self._handed(fd)
        pidfd = self._thread_pidfd()
        try:
            copy = self._keep(_ptrace.pidfd_getfd(pidfd, fd))
        except OSError as error:
            raise Malformed(error.errno or errno.EBADF, f"fd {fd}") from None
        if self.thread.pidfd_is_the_group:
            self._check_same_file(fd, copy)
        return copy

    def _handed(self, fd: int) -> int:
        """The copy of `fd` the thread handed over for this call, or NeedDescriptor."""
        thread = self.thread
        if thread.handed_for == self.call:
            if fd in thread.unhanded:
                raise Malformed(thread.unhanded[fd], f"fd {fd}")
            if fd in thread.handed:
                return thread.handed[fd]  # the thread's: closed once this stop is done
        raise NeedDescriptor(fd)

    def _thread_pidfd(self) -> int:
        thread = self.thread
        if thread.pidfd is None:
            try:
                thread.pidfd = _ptrace.pidfd_open(self.tid, _ptrace.PIDFD_THREAD)
                thread.pidfd_is_the_group = False
            except OSError:  # before Linux 6.9: a pidfd names the thread group
                thread.pidfd = _ptrace.pidfd_open(procfs.thread_group(self.tid))
                thread.pidfd_is_the_group = True
        return thread.pidfd

    def _check_same_file(self, fd: int, copy: int) -> None:
        """A thread may have its own descriptor table (clone without CLONE_FILES); the
        group's descriptor of the same number is then another file."""
        try:
            theirs = os.stat(f"/proc/{self.tid}/fd/{fd}")
        except OSError:
            raise Malformed(errno.EBADF, f"fd {fd}") from None
        ours = os.fstat(copy)
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            raise Malformed(errno.EBADF, f"fd {fd} of thread {self.tid}")

    def socket(self, fd: int) -> SocketCopy:
        if fd not in self._sockets:
            copy = self.descriptor(fd)
            try:
                # The C socket type: it reads family, type and protocol from the
                # descriptor with no enum conversions on top.
                probe = _socket.socket(fileno=copy)
            except OSError as error:
                raise Malformed(errno.ENOTSOCK if error.errno == errno.ENOTSOCK else errno.EBADF,
                                f"fd {fd}") from None
            family, sock_type, protocol = probe.family, probe.type, probe.proto
            probe.detach()
            self._sockets[fd] = SocketCopy(copy, family, sock_type, protocol)
        return self._sockets[fd]

    def socket_info(self, fd: int) -> tuple[int, int, int]:
        copy = self.socket(fd)
        return copy.family, copy.type, copy.protocol

    def local_address(self, fd: int) -> bytes:
        try:
            return libc.getsockname(self.socket(fd).fd)
        except OSError as error:
            raise Malformed(error.errno or errno.EBADF, f"fd {fd}") from None

    # -- unix paths -------------------------------------------------------------------

    def resolve_unix_path(self, path: bytes, *, follow_last: bool) -> str:
        return self.unix_target(path, follow_last=follow_last).text

    def unix_target(self, path: bytes, *, follow_last: bool) -> UnixTarget:
        key = (path, follow_last)
        if key not in self._targets:
            self._targets[key] = self._resolve(path, follow_last)
        return self._targets[key]

    def resolve_again(self) -> None:
        """Resolve every unix path once more, from the same starting directories but
        with the credentials now in force, and keep the new handles, provided they reach
        the same files as the first ones."""
        for (path, follow_last), first in list(self._targets.items()):
            again = self._resolve(path, follow_last)
            before, after = os.fstat(first.fd), os.fstat(again.fd)
            if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
                raise Malformed(errno.EACCES, f"{os.fsdecode(path)} changed while it was judged")
            self._targets[(path, follow_last)] = again

    def _resolve(self, path: bytes, follow_last: bool) -> UnixTarget:
        """Resolve as the kernel would for this thread: from its root or working
        directory, in its mount namespace, through symlinks; but never through a magic
        link (/proc/PID/...), which would resolve in the supervisor's context instead."""
        start, rest, resolve = self._start(path)
        directory, _, name = rest.rstrip(b"/").rpartition(b"/")
        if not follow_last and name in (b"", b".", b".."):
            raise Malformed(errno.EEXIST, f"cannot bind at {os.fsdecode(path)}")
        try:
            if follow_last:
                fd = self._keep(openat2(start, rest, O_PATH, resolve))
                return UnixTarget(os.readlink(f"/proc/self/fd/{fd}"), fd)
            fd = self._keep(openat2(start, directory or b".", O_PATH | os.O_DIRECTORY, resolve))
        except Malformed as error:
            if error.errno != errno.ENOENT:
                raise
            # Nothing there: judged by the path as written, and the kernel, handed a name
            # in an empty directory, fails with ENOENT where it would have looked.
            return UnixTarget(self._as_written(path), _nowhere(), name, missing=True)
        where = os.readlink(f"/proc/self/fd/{fd}")
        written_from = None
        if not path.startswith(b"/proc/") and self._shares_our_root():
            written_from = self._own("root" if path.startswith(b"/") else "cwd")
        return UnixTarget(os.path.join(where, os.fsdecode(name)), fd, name,
                          written_from=written_from)

    def _as_written(self, path: bytes) -> str:
        text = os.fsdecode(path)
        if not text.startswith("/"):
            try:
                text = os.path.join(os.readlink(f"/proc/{self.tid}/cwd"), text)
            except OSError:
                pass
        return os.path.normpath(text)

    def _start(self, path: bytes) -> tuple[int, bytes, int]:
        """Where resolution starts, what remains of the path, and how to resolve it."""
        # /proc/self and /proc/thread-self name whoever resolves them; here that is the
        # tracee. /proc/TID/fd/N (how programs reach long paths) is the one magic link
        # followed, and only into the tracee's own descriptors.
        path = re.sub(rb"^/proc/(self|thread-self)(?=/|$)", b"/proc/%d" % self.tid, path)
        own = re.match(rb"^/proc/(\d+)/(fd/\d+|cwd|root)(?:/+(.*))?$", path, re.DOTALL)
        if own and int(own[1]) in (self.tid, procfs.thread_group(self.tid)):
            link, rest = own[2], own[3] or b"."
            if link.startswith(b"fd/"):
                return self.descriptor(int(link[3:])), rest, RESOLVE_NO_MAGICLINKS
            return self._own(link.decode()), rest, self._resolve_from(link.decode())
        if path.startswith(b"/"):
            return self._own("root"), path.lstrip(b"/") or b".", self._resolve_from("root")
        return self._own("cwd"), path, self._resolve_from("cwd")

    def _own(self, link: str) -> int:
        """The tracee's root or working directory, as a handle (kept: resolve_again may
        run with credentials that cannot open /proc/TID of a non-dumpable tracee)."""
        if link not in self._starts:
            flags = O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
            try:
                self._starts[link] = self._keep(os.open(f"/proc/{self.tid}/{link}", flags))
            except (FileNotFoundError, ProcessLookupError):
                raise TraceeGone(self.tid) from None  # killed meanwhile (its process ended)
        return self._starts[link]

    def _resolve_from(self, link: str) -> int:
        if link == "root":
            return RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
        if not self._shares_our_root():
            # A relative path's ".." or absolute symlinks would need both the tracee's
            # root and its working directory, which openat2 cannot take at once.
            raise Malformed(errno.EACCES, "relative unix path from a chroot or another mount namespace")
        return RESOLVE_NO_MAGICLINKS

    def _shares_our_root(self) -> bool:
        try:
            theirs = (os.stat(f"/proc/{self.tid}/root"), os.stat(f"/proc/{self.tid}/ns/mnt"))
        except OSError:
            return False
        ours = (os.stat("/"), os.stat("/proc/self/ns/mnt"))
        return all((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino) for a, b in zip(theirs, ours))


@functools.cache
def _nowhere() -> int:
    """A directory that holds no "missing" and never will, as a handle: this process's
    /proc fdinfo, whose entries are numbers the kernel makes (and nothing writable is
    needed, as in a container whose files are all read-only)."""
    return os.open("/proc/self/fdinfo", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

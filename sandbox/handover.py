"""A tracee's descriptor, where pidfd_getfd is refused (Docker's and containerd's default
seccomp profiles allow it only with CAP_SYS_PTRACE): the tracee hands it over itself.

Every process of the sandbox holds one end of a unix seqpacket pair at descriptor
`number` (placed by spawn before the filter; forks inherit it, exec keeps it, and the
filter keeps a program from closing or replacing it). At a stop, the supervisor makes the
stopped thread run one sendmsg of its choosing on that end, carrying the wanted
descriptor as SCM_RIGHTS, receives it on its own end, and runs the stopped call again:
the next stop finds the copy waiting. What arrives is checked to be the file the
tracee's descriptor names (its device and inode, through /proc), so that a message
another thread forged meanwhile is never taken for it; the copy is then as good as
pidfd_getfd's: the same open file.
"""

from __future__ import annotations

import array
import errno
import os
import resource
import socket
import struct
from typing import NamedTuple

from .abi import Abi, syscall_number

MSG_DONTWAIT, MSG_NOSIGNAL = 0x40, 0x4000
SCM_RIGHTS = 1
_MSGHDR = {Abi.X86_64: struct.Struct("=QI4xQQQQi4x"), Abi.I386: struct.Struct("=IIIIIIi")}
_IOVEC = {Abi.X86_64: struct.Struct("=QQ"), Abi.I386: struct.Struct("=II")}
_CMSG = {Abi.X86_64: struct.Struct("=Qiii4x"), Abi.I386: struct.Struct("=Iiii")}
_SCRATCH = 256  # bytes of scratch the request needs
_TRIES = 3  # a descriptor that another thread keeps swapping is given up after this
_KEPT = 1024  # descriptors received and waiting for their thread, at most


def number() -> int:
    """The descriptor the channel sits at: high, where programs rarely look, and below
    the limit on open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(1023, soft - 1)


class Request(NamedTuple):
    """A syscall to make a tracee run: its ABI, number, arguments, and the memory they
    point to (to write at `at`)."""

    abi: Abi
    nr: int
    args: tuple[int, ...]
    at: int = 0
    memory: bytes = b""


def request(abi: Abi, channel: int, fd: int, scratch: int) -> Request:
    """sendmsg(channel, {one byte, SCM_RIGHTS [fd]}, MSG_DONTWAIT | MSG_NOSIGNAL) in the
    ABI's layout, its structures at `scratch`."""
    msghdr, iovec, cmsg = _MSGHDR[abi], _IOVEC[abi], _CMSG[abi]
    iov_at = scratch + msghdr.size
    cmsg_at = iov_at + iovec.size
    byte_at = cmsg_at + cmsg.size
    cmsg_len = cmsg.size - (4 if abi is Abi.X86_64 else 0)  # CMSG_LEN(4): the header and one int
    memory = (msghdr.pack(0, 0, iov_at, 1, cmsg_at, cmsg.size, 0) + iovec.pack(byte_at, 1)
              + cmsg.pack(cmsg_len, socket.SOL_SOCKET, SCM_RIGHTS, fd) + b"\0")
    assert len(memory) <= _SCRATCH
    nr = syscall_number(abi, "sendmsg")
    assert nr is not None
    return Request(abi, nr, (channel, scratch, MSG_DONTWAIT | MSG_NOSIGNAL), scratch, memory)


PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS = 0x3, 0x22


def mapping_request() -> Request:
    """An i386 mmap2 of one page, for an int $0x80 call of a 64-bit program, whose stack
    is beyond the call's reach: a compat mmap lands below 4 GiB."""
    nr = syscall_number(Abi.I386, "mmap2")
    assert nr is not None
    return Request(Abi.I386, nr, (0, 4096, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, 0xFFFFFFFF, 0))


def scratch_below(stack_pointer: int, abi_mask: int) -> int | None:
    """Room for a request below the stack's red zone, or None where the ABI cannot point
    there (int $0x80 from a 64-bit program whose stack is above 4 GiB)."""
    at = (stack_pointer - 2048 - _SCRATCH) & ~15
    return at if 0 < at and at + _SCRATCH <= abi_mask else None


class Channel:
    """The supervisor's end of the channel, and the tracees' end until spawn has placed
    it in the command's first process."""

    def __init__(self) -> None:
        self.number = number()
        self.ours, self.theirs = socket.socketpair(socket.AF_UNIX,
                                                   socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.ours.setblocking(False)
        # Descriptors received and not yet taken, with their (device, inode), oldest first.
        self._unclaimed: list[tuple[tuple[int, int], int]] = []

    def place(self) -> None:
        """In the command's first process, before the filter: the channel's end at its
        number, inherited across exec."""
        os.dup2(self.theirs.fileno(), self.number, inheritable=True)

    def placed(self) -> None:
        """In the supervisor once the command has it."""
        self.theirs.close()

    def close(self) -> None:
        self.ours.close()
        if self.theirs.fileno() >= 0:
            self.theirs.close()

    def receive(self, tid: int, fd: int) -> int | None:
        """The copy of the tracee's descriptor `fd` among what came over the channel: one
        naming the file /proc says `fd` names. Others wait for the threads that handed
        them over (several may at once); forged ones are let go once many wait."""
        self._collect()
        try:
            theirs = os.stat(f"/proc/{tid}/fd/{fd}")
        except OSError:
            return None
        for index, (identity, copy) in enumerate(self._unclaimed):
            if identity == (theirs.st_dev, theirs.st_ino):
                del self._unclaimed[index]
                return copy
        return None

    def _collect(self) -> None:
        """Every descriptor waiting on the channel, with the file it is, oldest first;
        beyond _KEPT of them, the oldest are let go."""
        for received in self._drain():
            ours = os.fstat(received)
            self._unclaimed.append(((ours.st_dev, ours.st_ino), received))
        while len(self._unclaimed) > _KEPT:
            os.close(self._unclaimed.pop(0)[1])

    def _drain(self) -> list[int]:
        """Every descriptor waiting on the channel."""
        received: list[int] = []
        while True:
            try:
                _, ancillary, _, _ = self.ours.recvmsg(1, socket.CMSG_SPACE(4 * 16),
                                                       socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                return received
            for level, kind, data in ancillary:
                if (level, kind) == (socket.SOL_SOCKET, SCM_RIGHTS):
                    fds = array.array("i")
                    fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                    received.extend(fds)


def given_up(tries: int, err: int) -> bool:
    """Whether a handover that failed with `err` is tried again: only where the
    channel was full (forged messages) or another thread swapped the descriptor."""
    return tries >= _TRIES or err not in (errno.EAGAIN, errno.ESTALE)

"""The one place that speaks ptrace and reads tracee memory.

ptrace() is glibc's, through the one ctypes handle (libc.py); the request numbers, the
options and the x86_64 register file are the kernel's ABI (include/uapi/linux/ptrace.h,
arch/x86/include/asm/user_64.h). A failed request is an OSError; every call that names
a tracee may find it gone (killed, exited), which is `TraceeGone`, never a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from typing import Any, NamedTuple
from collections.abc import Iterator

from . import _fastpath
from .abi import Abi
from .errors import Malformed, TraceeGone
from .libc import IoVec, libc, syscall

PTRACE_PEEKDATA = 2
PTRACE_POKEDATA = 5
PTRACE_POKEUSER = 6
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SYSCALL = 24
PTRACE_GETEVENTMSG = 0x4201
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

PTRACE_O_TRACESYSGOOD = 0x1
PTRACE_O_TRACEFORK = 0x2
PTRACE_O_TRACEVFORK = 0x4
PTRACE_O_TRACECLONE = 0x8
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

PTRACE_SYSCALL_INFO_SECCOMP = 3
WALL = 0x40000000  # __WALL: wait for threads as well as processes

SYSCALL_STOP = 0x80 | 5  # WSTOPSIG of a syscall stop under TRACESYSGOOD: SIGTRAP | 0x80

OPTIONS = (PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE
           | PTRACE_O_TRACEEXEC | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL)

_ptrace = libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class Registers(ctypes.Structure):
    """struct user_regs_struct of x86_64 (what PTRACE_GETREGS fills in, for tracees of
    both ABIs)."""

    _fields_ = [(name, ctypes.c_ulong) for name in (
        "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
        "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds",
        "es", "fs", "gs")]


@contextlib.contextmanager
def _gone_as_tracee_gone(pid: int) -> Iterator[None]:
    """ESRCH from a ptrace request: the tracee is gone (or no longer stopped)."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ESRCH:
            raise TraceeGone(pid) from None
        raise


def ptrace(command: int, pid: int, addr: int = 0, data: int = 0) -> int:
    """One request; OSError where it fails. A peek's word comes back unsigned, and a
    word of all ones is no error unless errno says so."""
    ctypes.set_errno(0)
    result = _ptrace(command, pid, addr, data)
    if result == -1 and (err := ctypes.get_errno()):
        raise OSError(err, f"ptrace({command:#x}, {pid}): {os.strerror(err)}")
    return result & 0xFFFFFFFFFFFFFFFF


def _request(command: int, pid: int, addr: int = 0, data: int = 0) -> int:
    with _gone_as_tracee_gone(pid):
        return ptrace(command, pid, addr, data)


def seize(pid: int) -> None:
    _request(PTRACE_SEIZE, pid, 0, OPTIONS)


def cont(pid: int, signal: int = 0) -> None:
    _request(PTRACE_CONT, pid, 0, signal)


def cont_to_syscall_exit(pid: int) -> None:
    """Resume, stopping again when the current syscall returns."""
    _request(PTRACE_SYSCALL, pid)


def listen(pid: int) -> None:
    _request(PTRACE_LISTEN, pid)


def interrupt(pid: int) -> None:
    _request(PTRACE_INTERRUPT, pid)


def event_message(pid: int) -> int:
    message = ctypes.c_ulong()
    _request(PTRACE_GETEVENTMSG, pid, 0, ctypes.addressof(message))
    return message.value


class SyscallInfo(NamedTuple):
    op: int
    arch: int
    nr: int
    args: tuple[int, ...]
    instruction_pointer: int


def syscall_info(pid: int) -> SyscallInfo:
    """PTRACE_GET_SYSCALL_INFO, read by the C extension (the one place of its layout)."""
    try:
        return SyscallInfo(*_fastpath.syscall_info(pid))
    except OSError as error:
        if error.errno == errno.ESRCH:
            raise TraceeGone(pid) from None
        raise


_ORIG_RAX = Registers.orig_rax.offset
_RAX = Registers.rax.offset
# Where each ABI's syscall arguments live in the x86_64 register file, in order.
ARGUMENT_REGISTERS = {Abi.X86_64: ("rdi", "rsi", "rdx", "r10", "r8", "r9"),
                      Abi.I386: ("rbx", "rcx", "rdx", "rsi", "rdi", "rbp")}


def set_result(pid: int, value: int) -> None:
    """At a seccomp stop: skip the syscall and make it return `value` (-errno on error)."""
    _request(PTRACE_POKEUSER, pid, _ORIG_RAX, (1 << 64) - 1)
    _request(PTRACE_POKEUSER, pid, _RAX, value & ((1 << 64) - 1))


def fail_syscall(pid: int, err: int) -> None:
    set_result(pid, -err)


def registers(pid: int) -> Registers:
    regs = Registers()
    _request(PTRACE_GETREGS, pid, 0, ctypes.addressof(regs))
    return regs


def set_registers(pid: int, regs: Registers) -> None:
    _request(PTRACE_SETREGS, pid, 0, ctypes.addressof(regs))


def copy_registers(regs: Registers) -> Registers:
    return Registers.from_buffer_copy(regs)


def rewrite_syscall(pid: int, abi: Abi, nr: int, args: tuple[int, ...]) -> Registers:
    """At a seccomp stop: make the tracee run another syscall of its ABI, or the same
    with other arguments (the kernel re-runs the filter on it). Returns the registers
    as they were, for `restore_after_rewrite` once the syscall returns."""
    original = registers(pid)
    regs = copy_registers(original)
    regs.orig_rax = nr
    for register, value in zip(ARGUMENT_REGISTERS[abi], args):
        setattr(regs, register, value & abi.word_mask)
    set_registers(pid, regs)
    return original


def restore_after_rewrite(pid: int, original: Registers) -> None:
    """At the syscall-exit stop after a rewrite: every register as it was but the result.
    i386 code relies on the kernel preserving the argument registers (ebx is the GOT
    pointer of PIC code), and a syscall the kernel restarts after a signal must restart
    as the socketcall it was, which it takes from orig_rax."""
    original.rax = registers(pid).rax
    set_registers(pid, original)


# --- tracee memory ----------------------------------------------------------------------

MAX_READ = 16 << 20  # no single call needs more; larger asks are the tracee's absurdity
_SMALL = ctypes.create_string_buffer(512)
# The one pair of iovecs every transfer fills in (one stop at a time, as _INFO).
_LOCAL, _REMOTE = IoVec(), IoVec()
_LOCAL_REF, _REMOTE_REF = ctypes.byref(_LOCAL), ctypes.byref(_REMOTE)
_WORD = 8


class TraceeMemory:
    """One tracee's memory: process_vm_readv/writev, and PTRACE_PEEKDATA/POKEDATA where
    the tracee made itself non-dumpable (which only an existing tracer gets past)."""

    def __init__(self, pid: int):
        self.pid = pid

    def read(self, address: int, length: int) -> bytes:
        if length == 0:
            return b""
        self._check_range(address, length)
        # Most reads are a sockaddr or a header: they reuse one buffer.
        buffer = _SMALL if length <= len(_SMALL) else ctypes.create_string_buffer(length)
        if self._transfer(libc.process_vm_readv, buffer, address, length):
            return buffer.raw[:length]
        words = self._peek_words(address, length)
        start = address % _WORD
        return words[start:start + length]

    def write(self, address: int, data: bytes) -> None:
        if not data:
            return
        self._check_range(address, len(data))
        buffer = ctypes.create_string_buffer(data, len(data))
        if self._transfer(libc.process_vm_writev, buffer, address, len(data)):
            return
        start = address - address % _WORD
        words = bytearray(self._peek_words(address, len(data)))
        words[address - start:address - start + len(data)] = data
        for offset in range(0, len(words), _WORD):
            word = int.from_bytes(words[offset:offset + _WORD], "little")
            self._word_request(PTRACE_POKEDATA, start + offset, word)

    def _check_range(self, address: int, length: int) -> None:
        if length < 0 or length > MAX_READ or address < 0 or address + length > 1 << 64:
            raise Malformed(errno.EFAULT, f"{length} bytes at {address:#x}")

    def _transfer(self, function: Any, buffer: Any, address: int, length: int) -> bool:
        """True when done; False where only ptrace can do it. A short transfer means
        part of the range is not mapped: EFAULT, as the kernel would answer."""
        _LOCAL.base, _LOCAL.len = ctypes.addressof(buffer), length
        _REMOTE.base, _REMOTE.len = address, length
        done = function(self.pid, _LOCAL_REF, 1, _REMOTE_REF, 1, 0)
        if done == length:
            return True
        err = ctypes.get_errno() if done < 0 else errno.EFAULT
        if err == errno.ESRCH:
            raise TraceeGone(self.pid)
        if err in (errno.EPERM, errno.ENOSYS):
            return False
        raise Malformed(errno.EFAULT, f"{length} bytes at {address:#x}")

    def _peek_words(self, address: int, length: int) -> bytes:
        start = address - address % _WORD
        end = address + length
        return b"".join(self._word_request(PTRACE_PEEKDATA, word, 0).to_bytes(_WORD, "little")
                        for word in range(start, end, _WORD))

    def _word_request(self, command: int, address: int, data: int) -> int:
        try:
            with _gone_as_tracee_gone(self.pid):
                return ptrace(command, self.pid, address, data)
        except OSError:
            raise Malformed(errno.EFAULT, f"word at {address:#x}") from None


# --- descriptors of a tracee ------------------------------------------------------------

PIDFD_THREAD = os.O_EXCL  # Linux 6.9: a pidfd for one thread, with its own fd table


def pidfd_open(pid: int, flags: int = 0) -> int:
    with _gone_as_tracee_gone(pid):
        return syscall("pidfd_open", pid, flags)


def pidfd_getfd(pidfd: int, fd: int) -> int:
    """A duplicate of another process's descriptor (the same open file), close-on-exec."""
    return syscall("pidfd_getfd", pidfd, fd, 0)


def waitpid() -> tuple[int, int]:
    """The next event of any child or tracee."""
    return os.waitpid(-1, WALL)

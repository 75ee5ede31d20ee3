"""The one handle on the C library (ctypes), and the raw calls sockbox makes through it.

Syscalls that Python's os module lacks are made by name: the number comes from
libseccomp (abi.py), so no number is written by hand here.
"""

from __future__ import annotations

import ctypes
import os

from .abi import Abi, syscall_number

libc = ctypes.CDLL(None, use_errno=True)
for _name in ("process_vm_readv", "process_vm_writev"):
    getattr(libc, _name).restype = ctypes.c_ssize_t
    getattr(libc, _name).argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong,
                                     ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong)


def raw_syscall(name: str, *args: object) -> int:
    """The x86_64 syscall `name`: its result, or -1 with ctypes' errno set."""
    return libc.syscall(syscall_number(Abi.X86_64, name), *args)


def syscall(name: str, *args: object) -> int:
    """The x86_64 syscall `name`; raises OSError on failure."""
    result = raw_syscall(name, *args)
    if result < 0:
        raise last_error(name)
    return result


def last_error(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


def result(value: int) -> int:
    """A libc call's return, or -errno where it failed."""
    return value if value >= 0 else -ctypes.get_errno()


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def getsockname(fd: int) -> bytes:
    """The socket's own address, as the kernel writes it (at most sockaddr_storage)."""
    buffer = ctypes.create_string_buffer(128)
    length = ctypes.c_uint32(len(buffer))
    if libc.getsockname(fd, buffer, ctypes.byref(length)) != 0:
        raise last_error("getsockname")
    return buffer.raw[:min(length.value, len(buffer))]


def listen(fd: int, backlog: int) -> int:
    return result(libc.listen(fd, backlog))


def bind(fd: int, address: bytes | None) -> int:
    data = address or b""
    return result(libc.bind(fd, ctypes.c_char_p(data), len(data)))


_CAPABILITY_VERSION_3 = 0x20080522
# The capabilities sockbox takes from its command (spawn) by number.
CAP_SYS_PTRACE, CAP_SYS_RESOURCE, CAP_SYS_TIME = 19, 24, 25


def capabilities() -> list[int]:
    """This thread's capability sets as capget(2) gives them: effective, permitted,
    inheritable of the low 32 capabilities, then of the high ones."""
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    syscall("capget", header, data)
    return list(data)


def set_capabilities(sets: list[int]) -> None:
    header = (ctypes.c_uint32 * 2)(_CAPABILITY_VERSION_3, 0)
    syscall("capset", header, (ctypes.c_uint32 * 6)(*sets))

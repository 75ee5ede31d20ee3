"""Per-ABI facts: audit arches, word sizes, syscall numbers, socketcall's subcalls.

Syscall numbers come from libseccomp, never from hand tables: from the table it gave
when sockbox was built (syscalls.py). It was asked number by number, because on i386
it names the socket calls by negative "multiplexed" pseudo numbers, so the direct ones
(Linux 4.3+) are found only by resolving numbers back to names.
"""

from __future__ import annotations

import enum
import functools
from typing import NamedTuple

from . import _syscalls
from .names import SUBCALLS
from .syscalls import AUDIT_ARCHES


class Abi(enum.Enum):
    X86_64 = "x86_64"
    I386 = "i386"

    @property
    def audit_arch(self) -> int:
        return _AUDIT_ARCH[self]

    @property
    def word_mask(self) -> int:
        return _WORD_MASK[self]


_AUDIT_ARCH = {abi: AUDIT_ARCHES[abi.value] for abi in Abi}
_WORD_SIZE = {Abi.X86_64: 8, Abi.I386: 4}
_WORD_MASK = {abi: (1 << (8 * size)) - 1 for abi, size in _WORD_SIZE.items()}
_BY_ARCH = {arch: abi for abi, arch in _AUDIT_ARCH.items()}
X32_SYSCALL_BIT = 0x40000000
SOCKETCALL = "socketcall"


class Via(enum.Enum):
    DIRECT = "direct"
    SOCKETCALL = "socketcall"


# The argument names of each socket call, in register (or socketcall array) order.
ARGS: dict[str, tuple[str, ...]] = {
    "socket": ("family", "type", "protocol"),
    "bind": ("fd", "addr", "addrlen"),
    "connect": ("fd", "addr", "addrlen"),
    "listen": ("fd", "backlog"),
    "accept": ("fd", "addr", "addrlen"),
    "getsockname": ("fd", "addr", "addrlen"),
    "getpeername": ("fd", "addr", "addrlen"),
    "socketpair": ("family", "type", "protocol", "sv"),
    "send": ("fd", "buf", "len", "flags"),
    "recv": ("fd", "buf", "len", "flags"),
    "sendto": ("fd", "buf", "len", "flags", "addr", "addrlen"),
    "recvfrom": ("fd", "buf", "len", "flags", "addr", "addrlen"),
    "shutdown": ("fd", "how"),
    "setsockopt": ("fd", "level", "optname", "optval", "optlen"),
    "getsockopt": ("fd", "level", "optname", "optval", "optlen"),
    "sendmsg": ("fd", "msg", "flags"),
    "recvmsg": ("fd", "msg", "flags"),
    "accept4": ("fd", "addr", "addrlen", "flags"),
    "recvmmsg": ("fd", "msgvec", "vlen", "flags", "timeout"),
    "sendmmsg": ("fd", "msgvec", "vlen", "flags"),
}
assert tuple(ARGS) == SUBCALLS


def subcall_number(name: str) -> int:
    return SUBCALLS.index(name) + 1


def subcall_name(number: int) -> str | None:
    return SUBCALLS[number - 1] if 1 <= number <= len(SUBCALLS) else None


class SocketSyscall(NamedTuple):
    abi: Abi
    nr: int
    call: str  # a subcall name, or "socketcall"


def syscall_number(abi: Abi, name: str) -> int | None:
    """The number of a syscall on an ABI, or None where the ABI lacks it."""
    return _syscalls.NUMBERS[abi.value].get(name)


def syscall_name(abi: Abi, nr: int) -> str | None:
    """The name of a syscall number on an ABI (recvmmsg_time64, where SocketSyscall.call
    says recvmmsg)."""
    return next((name for name, number in _syscalls.NUMBERS[abi.value].items() if number == nr), None)


# Syscalls that are another name for a socket call: i386's recvmmsg with a 64-bit timeout.
_SAME_CALL = {"recvmmsg_time64": "recvmmsg"}


@functools.cache
def socket_syscalls(abi: Abi) -> tuple[SocketSyscall, ...]:
    """Every syscall of this ABI that performs a socket call, socketcall(102) included."""
    names = {name: name for name in SUBCALLS} | _SAME_CALL
    if abi is Abi.I386:
        names[SOCKETCALL] = SOCKETCALL
    return tuple(
        SocketSyscall(abi, nr, call)
        for name, call in names.items()
        if (nr := syscall_number(abi, name)) is not None
    )


@functools.cache
def _by_number() -> dict[tuple[int, int], SocketSyscall]:
    return {(sc.abi.audit_arch, sc.nr): sc for abi in Abi for sc in socket_syscalls(abi)}


def identify(arch: int, nr: int) -> SocketSyscall | None:
    """The socket syscall an (audit arch, number) pair names, if it names one."""
    return _by_number().get((arch, nr))


def abi_of(arch: int) -> Abi | None:
    return _BY_ARCH.get(arch)


# socketcall(2) copies this many 32-bit words from its argument array (net/socket.c nargs).
def socketcall_nargs(subcall: str) -> int:
    return len(ARGS[subcall])


# Syscalls after which a process's credentials may differ (i386 has 16- and 32-bit ids).
_CREDENTIAL_CALLS = ("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
                     "setfsuid", "setfsgid", "setgroups", "capset", "unshare", "setns")


@functools.cache
def credential_syscalls(abi: Abi) -> tuple[tuple[str, int], ...]:
    names = [*_CREDENTIAL_CALLS, *(f"{name}32" for name in _CREDENTIAL_CALLS)]
    return tuple((name, nr) for name in names if (nr := syscall_number(abi, name)) is not None)


@functools.cache
def _credential_numbers() -> frozenset[tuple[int, int]]:
    return frozenset((abi.audit_arch, nr) for abi in Abi for _, nr in credential_syscalls(abi))


def changes_credentials(arch: int, nr: int) -> bool:
    return (arch, nr) in _credential_numbers()


# Syscalls that make a task (clone3 is refused by the filter: its flags are in memory).
_FORK_CALLS = ("fork", "vfork", "clone")


@functools.cache
def fork_syscalls(abi: Abi) -> tuple[tuple[str, int], ...]:
    return tuple((name, nr) for name in _FORK_CALLS if (nr := syscall_number(abi, name)) is not None)


@functools.cache
def _fork_numbers() -> frozenset[tuple[int, int]]:
    return frozenset((abi.audit_arch, nr) for abi in Abi for _, nr in fork_syscalls(abi))


def makes_task(arch: int, nr: int) -> bool:
    return (arch, nr) in _fork_numbers()

"""The Python half of the C fast path (sandbox/_fastpath.c): which calls C serves again,
what it is told of them (syscall numbers, socketcall's subcalls, which keys hold a
socket's facts), and the name a verdict is filed under, which C makes again from what
it reads at a stop.

A verdict is a function of the call's facts (rules.Call) and the profile alone, so a
call with the same facts gets the same verdict. C reads those facts as Python does:
the registers (or socketcall's argument array, read once), the sockaddr bytes of a
call it performs, and the socket's family, type and protocol from a pidfd_getfd copy.
"""

from __future__ import annotations

import struct

from . import _fastpath
from .abi import SOCKETCALL, Abi, socket_syscalls, socketcall_nargs, subcall_number, syscall_number
from .calls import Subject, int32
from .names import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_TYPE_MASK
from .rules import ADDRESS_CALLS, OPTION_CALLS

# Calls C performs itself, with the address it read, as emulate.py does: a connect
# from an IP socket, a sendto naming a destination from an IP datagram socket.
PERFORMED_IN_C = ("connect", "sendto")
# Calls the kernel makes once C has found them allowed: a socketcall socket(), a send
# naming no destination, a receive, accept, a socket option, the socket's names (not
# shutdown, which the handover channel's must seem to do: supervisor.keeps_the_channel).
MADE_BY_THE_KERNEL = ("socket", "send", "sendto", "recv", "recvfrom", "recvmsg", "setsockopt",
                      "getsockopt", "accept", "accept4", "getsockname", "getpeername")
SERVED_IN_C = tuple(dict.fromkeys((*PERFORMED_IN_C, *MADE_BY_THE_KERNEL)))
# socketcall's subcalls that i386 has no direct syscall for, and the direct call that
# does the same with the missing arguments 0.
I386_DIRECT = {"accept": "accept4", "send": "sendto", "recv": "recvfrom"}


def served_syscalls() -> list[tuple[int, int, str, int]]:
    """What _fastpath needs to know of the syscalls it serves: (arch, nr, call, word
    mask), socketcall(102) among them."""
    return [(abi.audit_arch, syscall.nr, syscall.call, abi.word_mask)
            for abi in Abi for syscall in socket_syscalls(abi)
            if syscall.call in SERVED_IN_C or syscall.call == SOCKETCALL]


def direct_i386(name: str) -> int:
    """The i386 syscall a socketcall subcall runs as, allowed."""
    nr = syscall_number(Abi.I386, I386_DIRECT.get(name, name))
    assert nr is not None, name
    return nr


def direct_args(name: str, args: tuple[int, ...]) -> tuple[int, ...]:
    """A subcall's arguments as its direct syscall takes them: the missing ones 0."""
    return (*args, *(0,) * (socketcall_nargs(I386_DIRECT.get(name, name)) - len(args)))


def served_subcalls() -> list[tuple[int, str, int, int]]:
    """socketcall's subcalls C serves: (number, call, words in its array, direct nr)."""
    return [(subcall_number(name), name, socketcall_nargs(name), direct_i386(name))
            for name in SERVED_IN_C]


def reads_socket(needs_socket: dict[str, bool]) -> list[str]:
    """The calls whose keys hold their socket's facts: those with an address (read as
    their socket reads it), and those whose verdict may rest on the socket."""
    return [name for name in SERVED_IN_C
            if name != "socket" and (name in ADDRESS_CALLS or needs_socket[name])]


def needs_alone(socket_decides: dict[str, bool]) -> list[str]:
    """The calls the kernel makes on a descriptor whose verdict may rest on what the
    descriptor names: served only for a thread alone in its descriptor table
    (sharing.py), where nothing can put another socket there meanwhile."""
    return [name for name in MADE_BY_THE_KERNEL if name != "socket" and socket_decides[name]]


def key(subject: Subject) -> bytes | None:
    """The name C finds this call's verdict under, None for a call C does not serve:
    what it performs (an IP connect, an IP datagram sendto naming a destination) by the
    socket and the address bytes; what the kernel makes by the registers' facts and
    the socket's, as the rules read them (NO_FACT for what they did not)."""
    call = subject.call
    name = call.name
    if name in PERFORMED_IN_C and subject.raw_address is not None:
        socket = subject.socket
        if (socket is None or socket[0] not in (AF_INET, AF_INET6)
                or (name == "sendto" and socket[1] & SOCK_TYPE_MASK != SOCK_DGRAM)):
            return None
        return _fastpath.key(name, False, *socket, subject.raw_address)
    if name not in MADE_BY_THE_KERNEL or call.address is not None or call.path is not None:
        return None
    if name == "socket":
        family, sock_type, protocol = (int32(arg) for arg in subject.args[:3])
    else:
        family, sock_type, protocol = (_fastpath.NO_FACT if fact is None else fact
                                       for fact in (call.family, call.type, call.protocol))
    extra = b""
    if name in OPTION_CALLS:
        assert call.level is not None and call.option is not None
        extra = struct.pack("=II", call.level, call.option)
    return _fastpath.key(name, call.alias is not None, family, sock_type, protocol, extra)

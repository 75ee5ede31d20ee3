"""The seccomp-BPF filter compiler (sandbox/filter.py), run on the BPF interpreter.

The filter may answer a call alone (ALLOW or ERRNO) only where the supervisor, looking
at everything it can see, would give the same answer and write no audit record;
everywhere else it must stop at the supervisor (RET_TRACE). These tests run the
assembled program as the kernel runs it (`bpf.run`) and compare its answer with
`Profile.decide()`. Pure: no processes are started.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from sandbox import bpf
from sandbox import filter as compiler
from sandbox.abi import Abi, SOCKETCALL, subcall_number, syscall_number
from sandbox.calls import int32, socket_call
from sandbox.decode import Inet4, Inet6, Netlink, Unix, Unspec
from sandbox.errors import ProfileError
from sandbox.names import MSG_FASTOPEN, SUBCALLS
from sandbox.profile import Profile, load_profile
from sandbox.rules import ADDRESS_KEYS, PLAIN_ALIAS, Action, Call

pytestmark = pytest.mark.pure

ABIS = [Abi.X86_64, Abi.I386]
ALLOW, TRACE, KILL = compiler.RET_ALLOW, compiler.RET_TRACE, compiler.RET_KILL_PROCESS
ERRNO = compiler.RET_ERRNO
SECCOMP_RET_ERRNO = 0x00050000
SOCKETCALL_NR = 102

SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
CLONE_VM, CLONE_THREAD, CLONE_UNTRACED = 0x100, 0x10000, 0x00800000
SIGCHLD = 17


def abi_id(value: object) -> str:
    return value.value if isinstance(value, Abi) else str(value)


# --- profiles ------------------------------------------------------------------------------

BUILTINS = ["audit", "localhost", "offline", "server", "web"]

# The built-ins treat many forms alike (recv and recvfrom, send and sendmsg). These
# hand-written profiles tell them apart, so that mixing up two forms shows.
EXTRA = {
    # Default deny: only plain sends and receives, and rules whose answer needs care.
    "plain-only": """
        [profile]
        default = "deny"
        errno = "EPERM"
        log = "none"

        [[rule]]
        calls = ["send", "recv"]
        action = "allow"

        [[rule]]
        calls = ["socket"]
        family = ["inet"]
        protocol = ["udp", "icmp"]
        action = "allow"

        [[rule]]
        calls = ["socketpair"]
        protocol = ["ip", "netlink_route", 0]
        action = "deny"
        errno = "EPROTONOSUPPORT"

        [[rule]]
        calls = ["socketpair"]
        family = ["unix"]
        action = "allow"

        [[rule]]
        calls = ["listen", "shutdown", "sendto"]
        family = ["unix"]
        action = "allow"

        [[rule]]
        calls = ["accept", "accept4", "getsockopt"]
        action = "deny"
        errno = "ENOTSUP"
    """,
    # Default allow: refusals that depend on the socket, the form, the program.
    "socket-facts": """
        [profile]
        default = "allow"
        log = "none"

        [[rule]]
        calls = ["send"]
        family = ["unix"]
        action = "deny"
        errno = "ECONNREFUSED"

        [[rule]]
        calls = ["recv"]
        action = "allow"

        [[rule]]
        calls = ["recvfrom", "getsockname"]
        action = "deny"
        errno = 5

        [[rule]]
        calls = ["getpeername"]
        exe = ["/usr/bin/*"]
        action = "deny"

        [[rule]]
        calls = ["socket", "socketpair"]
        type = ["raw", "packet"]
        action = "deny"
        errno = "EPERM"

        [[rule]]
        calls = ["socket"]
        family = ["inet6"]
        action = "allow"
        log = true

        [[rule]]
        calls = ["listen"]
        action = "kill"
    """,
}
PROFILES = BUILTINS + list(EXTRA)


@functools.cache
def compiled(name: str) -> tuple[Profile, list[bpf.Insn]]:
    if name in EXTRA:
        profile = Profile.from_toml("\n".join(line.strip() for line in EXTRA[name].splitlines()),
                                    f"{name}.toml")
    else:
        profile = load_profile(name)
    return profile, compiler.assemble(compiler.plan(profile))


# --- running the filter --------------------------------------------------------------------


def run(program: Sequence[bpf.Insn], abi: Abi, nr: int, *args: int, arch: int | None = None) -> int:
    """The filter's action word for one syscall entry."""
    words = tuple(args) + (0,) * (6 - len(args))
    return bpf.run(program, bpf.SeccompData(nr, abi.audit_arch if arch is None else arch, words))


def run_call(program: Sequence[bpf.Insn], abi: Abi, name: str, *args: int) -> int:
    nr = syscall_number(abi, name)
    assert nr is not None, f"{abi.value} has no {name}"
    return run(program, abi, nr, *args)


def show(word: int) -> str:
    names = {ALLOW: "ALLOW", TRACE: "TRACE", KILL: "KILL_PROCESS"}
    if word in names:
        return names[word]
    if word & 0xFFFF0000 == SECCOMP_RET_ERRNO:
        return f"ERRNO({errno.errorcode.get(word & 0xFFFF, word & 0xFFFF)})"
    return hex(word)


# --- the oracle: what the supervisor would decide ------------------------------------------


def kernel_word(profile: Profile, call: Call) -> int:
    """The filter's answer if it decided `call` exactly like the supervisor: the verdict,
    unless that is audited (only the supervisor writes the record)."""
    verdict = profile.decide(call)
    if profile.audits(verdict):
        return TRACE
    return ALLOW if verdict.action is Action.ALLOW else ERRNO(verdict.errno)


def unsound(profile: Profile, word: int, calls: Iterable[Call]) -> str | None:
    """Why `word` is wrong where the supervisor could be looking at any of `calls`.

    TRACE is always sound. ALLOW or ERRNO is sound only if every call the registers
    leave possible gets exactly that, unaudited, from the supervisor."""
    if word == TRACE:
        return None
    for call in calls:
        if (want := kernel_word(profile, call)) != word:
            return f"filter {show(word)}, but decide({call}) needs {show(want)}"
    return None


def check(profile: Profile, word: int, calls: Iterable[Call], what: object = "") -> None:
    problem = unsound(profile, word, calls)
    assert problem is None, f"{profile.name}: {what}: {problem}"


def settled(profile: Profile, calls: Iterable[Call]) -> int | None:
    """The one answer every call in `calls` gets, if they all get the same."""
    words = {kernel_word(profile, call) for call in calls}
    return words.pop() if len(words) == 1 else None


# What the supervisor may learn beyond the registers: the socket behind a descriptor,
# the address in memory, the executable. An answer from registers must suit them all.
SOCKETS = [None, (1, 1, 0), (1, 2, 0), (1, 5, 0), (2, 1, 6), (2, 2, 17), (2, 3, 1),
           (10, 1, 6), (10, 2, 17), (10, 3, 58), (16, 3, 0), (16, 2, 16), (17, 3, 768)]
ADDRESSES = [
    None,  # no destination (or one too short to steer anything): a plain call
    Inet4(ipaddress.IPv4Address("127.0.0.1"), 80),
    Inet4(ipaddress.IPv4Address("127.0.0.1"), 22),
    Inet4(ipaddress.IPv4Address("93.184.216.34"), 443),
    Inet4(ipaddress.IPv4Address("8.8.8.8"), 53),
    Inet4(ipaddress.IPv4Address("10.1.2.3"), 0),
    Inet4(ipaddress.IPv4Address("0.0.0.0"), 5000),
    Inet6(ipaddress.IPv6Address("::1"), 8080),
    Inet6(ipaddress.IPv6Address("2001:db8::1"), 443),
    Inet6(ipaddress.IPv6Address("::ffff:192.0.2.1"), 22),
    Unix(path=b"/run/nscd/socket"),
    Unix(path=b"/tmp/app.sock"),
    Unix(abstract=b"some-name"),
    Unix(),
    Unspec(),
    Netlink(0, 0),
]
EXES = [None, "/usr/bin/program"]


def with_socket(call: Call, socket: tuple[int, int, int] | None) -> Call:
    if socket is None:
        return call
    family, sock_type, protocol = socket
    return replace(call, family=family, type=sock_type, protocol=protocol)


def with_address(call: Call, address) -> Call:
    """As calls._with_address: no address (or AF_UNSPEC outside connect) is a plain call."""
    if address is None or (isinstance(address, Unspec) and call.name != "connect"):
        return replace(call, alias=PLAIN_ALIAS.get(call.name))
    path = os.fsdecode(address.path) if isinstance(address, Unix) and address.path else None
    return replace(call, family=address.family, address=address, path=path)


def fd_calls(name: str, alias: str | None = None, sockets=SOCKETS) -> list[Call]:
    """Everything `name` on some descriptor can be, memory aside."""
    return [with_socket(Call(name, alias=alias, exe=exe), socket) for socket in sockets for exe in EXES]


def addressed_calls(name: str, sockets=SOCKETS) -> list[Call]:
    """Everything `name` can be with any destination (or none) in memory."""
    return [with_address(call, address) for call in fd_calls(name, sockets=sockets) for address in ADDRESSES]


SOCKET_FAMILIES = [*range(46), 0xFFFF]
SOCKET_TYPES = [t | flags for t in (1, 2, 3, 5, 10) for flags in (0, SOCK_NONBLOCK | SOCK_CLOEXEC)]
SOCKET_PROTOCOLS = [0, 6, 17, 1, 58, 255, 16]
SOCKET_GRID = list(itertools.product(SOCKET_FAMILIES, SOCKET_TYPES, SOCKET_PROTOCOLS))

REGISTER_ONLY = ["shutdown", "getsockopt", "setsockopt", "accept", "accept4",
                 "getsockname", "getpeername", "recvmsg", "recvmmsg"]
ADDRESS_CALLS = ["bind", "connect", "listen", "sendto", "sendmsg", "sendmmsg"]  # listen: its own


@functools.cache
def memory_calls(name: str) -> list[Call]:
    """Everything a socketcall subcall can be: all its arguments are in memory."""
    if name in ("socket", "socketpair"):
        return [Call(name, family=f, type=t, protocol=p, exe=exe) for f, t, p in SOCKET_GRID for exe in EXES]
    if name in ADDRESS_CALLS:
        return addressed_calls(name)
    if name in ("send", "recv"):
        return fd_calls(name, PLAIN_ALIAS[name])
    if name == "recvfrom":
        return fd_calls(name) + fd_calls(name, "recv")
    return fd_calls(name)


@functools.cache
def calls_for(form: str) -> list[Call]:
    """Everything a direct syscall of this form can be."""
    forms = {"plain sendto": fd_calls("sendto", "send"), "plain recvfrom": fd_calls("recvfrom", "recv"),
             "recvfrom with buffer": fd_calls("recvfrom")}
    return forms[form] if form in forms else memory_calls(form)


def rule_needs_address(profile: Profile, call: str) -> bool:
    return any(call in rule.calls and any(key in ADDRESS_KEYS for key in rule.keys())
               for rule in profile.rules)


# --- arches, the x32 bit, everything that is not a socket call -----------------------------


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("arch", [0, 0xC00000B7, 0x40000028, 0x4000003E, 0xC000003F],
                         ids=["none", "aarch64", "arm", "x86_64-without-64bit", "near-x86_64"])
def test_unknown_arch_is_killed(name, arch):
    _, program = compiled(name)
    for nr in (0, 41, 102, 359):
        assert run(program, Abi.X86_64, nr, arch=arch) == KILL


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("nr", [0x40000000, 0x40000000 | 41, 0x40000000 | 39, 0x40000000 | 512, 0x7FFFFFFF],
                         ids=hex)
def test_x32_syscalls_are_killed(name, nr):
    # x32 shares x86_64's audit arch; only the bit in nr tells it apart.
    _, program = compiled(name)
    assert run(program, Abi.X86_64, nr, 2, 1, 0) == KILL


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("syscall", ["read", "write", "getpid", "close", "exit_group", "openat", "futex"])
def test_other_syscalls_are_allowed(name, abi, syscall):
    _, program = compiled(name)
    assert run_call(program, abi, syscall, 3, 0x1000, 16) == ALLOW


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_numbers_past_every_syscall_are_allowed(name, abi):
    # Past the highest planned number the binary search must still end in ALLOW.
    _, program = compiled(name)
    for nr in (1000, 0x3FFFFFFF):
        assert run(program, abi, nr) == ALLOW
    # Only x86_64 has an x32 twin; on i386 the bit means nothing.
    if abi is Abi.I386:
        assert run(program, abi, 0x40000000 | 102, 1) == ALLOW


# Syscalls that perform a socket call under a name outside names.SUBCALLS.
SOCKET_CALL_VARIANTS = {"recvmmsg_time64": "recvmmsg"}  # i386: recvmmsg with a 64-bit timespec


@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_dispatch_reaches_exactly_the_planned_syscalls(abi):
    # The binary search over numbers sends each planned syscall to its own block and
    # lets every other number through.
    profile, program = compiled("offline")
    planned = {s.nr: s.name for p in compiler.plan(profile) if p.abi is abi for s in p.syscalls}
    variants = {syscall_number(abi, name) for name in SOCKET_CALL_VARIANTS} - {None}
    for nr in range(1024):
        word = run(program, abi, nr, 0x12345, 0, 0, 0, 0, 0)
        if nr in planned:
            assert word != KILL, planned[nr]
        elif nr not in variants:  # (judged in a test of their own)
            assert word == ALLOW, (nr, show(word))
    # A few planned ones, each answered by its own block rather than a neighbour's:
    assert run_call(program, abi, "ptrace") == ERRNO(errno.EPERM)
    assert run_call(program, abi, "clone3") == ERRNO(errno.ENOSYS)
    assert run_call(program, abi, "listen", 3, 16) == TRACE  # judged by the socket's address
    assert run_call(program, abi, "accept4", 3, 0, 0, 0) == ALLOW
    assert run_call(program, abi, "connect", 3, 0x1000, 16) == TRACE


DENY_RECVMMSG = """
[profile]
default = "deny"
log = "none"

[[rule]]
calls = ["socket", "recv", "recvmsg"]
action = "allow"
"""


@pytest.mark.parametrize("name", [*PROFILES, "deny-recvmmsg"])
def test_i386_recvmmsg_time64_is_judged_like_recvmmsg(name):
    # i386 has a second recvmmsg (nr 417, Linux 5.1+) taking a 64-bit timespec, which
    # time64-aware libcs use and any program can call. The kernel runs the same
    # recvmmsg, so the profile's answer for recvmmsg (and its record) must hold for it.
    if name == "deny-recvmmsg":
        profile = Profile.from_toml(DENY_RECVMMSG, "deny-recvmmsg.toml")
        program = compiler.assemble(compiler.plan(profile))
    else:
        profile, program = compiled(name)
    old = run_call(program, Abi.I386, "recvmmsg", 3, 0x1000, 2, 0, 0)
    check(profile, old, calls_for("recvmmsg"), "i386 recvmmsg")
    word = run_call(program, Abi.I386, "recvmmsg_time64", 3, 0x1000, 2, 0, 0)
    check(profile, word, calls_for("recvmmsg"), f"i386 recvmmsg_time64 (nr 417; recvmmsg gets {show(old)})")


# --- always-on hardening -------------------------------------------------------------------

HARDENING = [
    ("io_uring_setup", errno.ENOSYS), ("io_uring_enter", errno.ENOSYS),
    ("io_uring_register", errno.ENOSYS), ("clone3", errno.ENOSYS),
    ("ptrace", errno.EPERM), ("process_vm_writev", errno.EPERM), ("pidfd_getfd", errno.EPERM),
]


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("syscall,err", HARDENING, ids=[h[0] for h in HARDENING])
def test_hardening_refuses(name, abi, syscall, err):
    _, program = compiled(name)
    for args in ((), (0x4206, 1234, 0, 0), (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)):
        assert run_call(program, abi, syscall, *args) == ERRNO(err), args


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_clone_untraced_is_refused_and_plain_clone_allowed(name, abi):
    # An untraced child would escape supervision; other clones are what fork() and
    # pthread_create() use.
    _, program = compiled(name)
    for flags in (CLONE_UNTRACED, CLONE_UNTRACED | SIGCHLD, CLONE_UNTRACED | CLONE_VM | CLONE_THREAD, 0xFFFFFFFF):
        assert run_call(program, abi, "clone", flags, 0, 0, 0, 0) == ERRNO(errno.EPERM), hex(flags)
    for flags in (0, SIGCHLD, CLONE_VM | CLONE_THREAD | SIGCHLD, 0xFFFFFFFF & ~CLONE_UNTRACED):
        assert run_call(program, abi, "clone", flags, 0x7000, 0, 0, 0) == ALLOW, hex(flags)


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_seccomp_new_listener_is_refused(name, abi):
    # A user-notification filter would outrank the supervisor's RET_TRACE.
    _, program = compiled(name)
    set_mode_filter, new_listener, tsync = 1, 1 << 3, 1
    for flags in (new_listener, new_listener | tsync, 0xFF):
        assert run_call(program, abi, "seccomp", set_mode_filter, flags, 0x1000) == ERRNO(errno.EPERM)
    # Other filters, strict mode and action queries are harmless.
    for op, flags in ((set_mode_filter, 0), (set_mode_filter, tsync), (0, 0), (2, 0), (0, new_listener)):
        assert run_call(program, abi, "seccomp", op, flags, 0x1000) == ALLOW, (op, flags)


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_pushing_input_into_a_terminal_is_refused(name, abi):
    _, program = compiled(name)
    tiocsti, tioclinux = 0x5412, 0x541C
    for upper in (0, 0xFFFF_FFFF_0000_0000):  # the kernel takes cmd as an unsigned int
        assert run_call(program, abi, "ioctl", 0, upper | tiocsti, 0x1000) == ERRNO(errno.EIO)
        assert run_call(program, abi, "ioctl", 0, upper | tioclinux, 0x1000) == ERRNO(errno.EPERM)
    for cmd in (0x5401, 0x5413, 0x541B, 0x541D):  # TCGETS, TIOCGWINSZ, FIONREAD, TIOCCONS
        assert run_call(program, abi, "ioctl", 0, cmd, 0x1000) == ALLOW


# sockbox's own rules: options that reroute packets, or connect or bind addresses given
# in their value (SCTP), whatever the profile says.
REFUSED_OPTIONS = [("setsockopt", 0, 4), ("setsockopt", 41, 57), ("setsockopt", 41, 5),
                   ("setsockopt", 41, 6), ("setsockopt", 41, 9), ("setsockopt", 132, 107),
                   ("setsockopt", 132, 110), ("setsockopt", 132, 100), ("setsockopt", 132, 101),
                   ("getsockopt", 132, 111)]


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("call,level,option", REFUSED_OPTIONS)
def test_options_that_reroute_or_connect_are_refused(name, abi, call, level, option):
    profile, program = compiled(name)
    word = run_call(program, abi, call, 3, level, option, 0x1000, 16)
    assert word in (ERRNO(errno.EPERM), TRACE)  # audited where the profile records denials
    verdict = profile.decide(Call(call, level=level, option=option, family=2, type=1, protocol=0))
    assert verdict.action is Action.DENY and verdict.errno == errno.EPERM
    assert verdict.rule is not None and verdict.rule.label.startswith("sockbox:")


def test_sctp_destinations_in_control_data_are_refused():
    from sandbox.control import _native_control
    from sandbox.errors import Malformed
    for level, kind in ((132, 7), (132, 8), (41, 9), (41, 57), (0, 7)):
        message = struct.pack("=Qii", 16 + 8, level, kind) + bytes(8)
        with pytest.raises(Malformed) as caught:
            _native_control(bytearray(message), None)  # refused before any descriptor is read
        assert caught.value.errno == errno.EPERM


# --- socket() and socketpair(): everything is in registers ---------------------------------


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_socket_grid_is_sound(name, abi, call):
    profile, program = compiled(name)
    failures = []
    for family, sock_type, protocol in SOCKET_GRID:
        word = run_call(program, abi, call, family, sock_type, protocol, 0x1000)
        subject = socket_call(call, family, sock_type, protocol, None)
        if problem := unsound(profile, word, [subject]):
            failures.append(f"{abi.value} {call}({family}, {sock_type:#x}, {protocol}): {problem}")
    assert not failures, f"{len(failures)} unsound answers, e.g.:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_socket_grid_is_settled_in_kernel(name, abi, call):
    # None of these profiles judges socket() by anything but its registers, so it
    # should stop at the supervisor only to be recorded.
    profile, program = compiled(name)
    failures = []
    for family, sock_type, protocol in SOCKET_GRID:
        word = run_call(program, abi, call, family, sock_type, protocol)
        want = kernel_word(profile, socket_call(call, family, sock_type, protocol, None))
        if word != want:
            failures.append(f"{abi.value} {call}({family}, {sock_type:#x}, {protocol}): "
                            f"filter {show(word)}, expected {show(want)}")
    assert not failures, f"{len(failures)} mismatches, e.g.:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_socket_int_arguments_ignore_upper_half(name, call):
    # The kernel truncates int arguments: to it, (1 << 32) | 17 is AF_PACKET.
    profile, program = compiled(name)
    high = 1 << 32
    for family, sock_type, protocol in [(17, 3, 768), (1, 1, 0), (2, 1, 6), (2, 2, 0), (10, 3, 0), (16, 3, 0)]:
        truncated = run_call(program, Abi.X86_64, call, family, sock_type, protocol)
        for args in [(high | family, sock_type, protocol), (family, high | sock_type, protocol),
                     (family, sock_type, (0xDEAD << 32) | protocol)]:
            word = run_call(program, Abi.X86_64, call, *args)
            assert word == truncated, f"{call}{args}: {show(word)} != {show(truncated)}"
            check(profile, word, [socket_call(call, int32(args[0]), int32(args[1]), int32(args[2]), None)],
                  f"{call}{args}")


def test_upper_half_family_is_judged_as_its_low_half():
    profile, program = compiled("offline")
    word = run_call(program, Abi.X86_64, "socket", (1 << 32) | 17, 3, 768)
    assert word == kernel_word(profile, Call("socket", family=17, type=3, protocol=768)) == TRACE  # deny, logged
    _, program = compiled("server")
    assert run_call(program, Abi.X86_64, "socket", (1 << 32) | 1, 1, 0) == ALLOW


# --- calls on a descriptor -----------------------------------------------------------------

ARG_VECTORS = [(), (3, 0x1000, 16, 0, 0, 0), (7, 0, 0, 0x40, 0x2000, 0x80),
               (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)]


def arg_vectors(abi: Abi) -> list[tuple[int, ...]]:
    if abi is Abi.I386:
        return ARG_VECTORS
    return ARG_VECTORS + [tuple(a | (0x1234 << 32) for a in (3, 0x1000, 16, 0, 0, 0))]


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi,call", [(abi, call) for abi in ABIS for call in REGISTER_ONLY
                                      if syscall_number(abi, call) is not None],  # i386 has no accept
                         ids=abi_id)
def test_register_only_calls_are_sound(name, abi, call):
    profile, program = compiled(name)
    for args in arg_vectors(abi):
        check(profile, run_call(program, abi, call, *args), calls_for(call), f"{abi.value} {call}{args}")


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
@pytest.mark.parametrize("call", ["bind", "connect", "sendmsg", "sendmmsg"])
def test_address_calls_are_sound(name, abi, call):
    profile, program = compiled(name)
    for args in arg_vectors(abi):
        check(profile, run_call(program, abi, call, *args), calls_for(call), f"{abi.value} {call}{args}")


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_sendto_without_destination_is_a_send(name, abi):
    profile, program = compiled(name)
    for dest, addrlen, flags in [(0, 0, 0), (0, 16, 0), (0, 0, 0x4040), (0x5000, 0, 0)]:
        word = run_call(program, abi, "sendto", 3, 0x1000, 5, flags, dest, addrlen)
        what = f"{abi.value} sendto(dest={dest:#x}, addrlen={addrlen}, flags={flags:#x})"
        check(profile, word, calls_for("plain sendto"), what)
        # Where nothing but the form matters, a plain send is settled in the kernel.
        if (want := settled(profile, calls_for("plain sendto"))) is not None:
            assert word == want, f"{what}: {show(word)}, expected {show(want)}"


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_sendto_with_destination_or_fastopen_stops(name, abi):
    profile, program = compiled(name)
    forms = [(0x5000, 16, 0), (0x5000, 110, 0x40), (0, 0, MSG_FASTOPEN), (0, 16, MSG_FASTOPEN | 0x40),
             (0x5000, 16, MSG_FASTOPEN)]
    if abi is Abi.X86_64:
        forms.append((1 << 32, 16, 0))  # a pointer NULL only in its low half is not NULL
    for dest, addrlen, flags in forms:
        word = run_call(program, abi, "sendto", 3, 0x1000, 5, flags, dest, addrlen)
        what = f"{abi.value} sendto(dest={dest:#x}, addrlen={addrlen}, flags={flags:#x})"
        check(profile, word, calls_for("sendto"), what)
        if rule_needs_address(profile, "sendto"):
            assert word == TRACE, f"{what}: {show(word)}"


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_recvfrom_forms_are_sound(name, abi):
    profile, program = compiled(name)
    word = run_call(program, abi, "recvfrom", 3, 0x1000, 64, 0, 0, 0)
    check(profile, word, calls_for("plain recvfrom"), f"{abi.value} recvfrom(src=NULL)")
    if (want := settled(profile, calls_for("plain recvfrom"))) is not None:
        assert word == want, f"recvfrom(src=NULL): {show(word)}, expected {show(want)}"
    for src in [0x5000] + ([1 << 32] if abi is Abi.X86_64 else []):
        word = run_call(program, abi, "recvfrom", 3, 0x1000, 64, 0, src, 0x6000)
        check(profile, word, calls_for("recvfrom with buffer"), f"{abi.value} recvfrom(src={src:#x})")


# --- i386 socketcall: every argument is in memory ------------------------------------------


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("subcall", SUBCALLS)
def test_socketcall_answers_only_what_memory_cannot_change(name, subcall):
    profile, program = compiled(name)
    assert syscall_number(Abi.I386, SOCKETCALL) == SOCKETCALL_NR
    word = run(program, Abi.I386, SOCKETCALL_NR, subcall_number(subcall), 0x8000)
    check(profile, word, memory_calls(subcall), f"socketcall(SYS_{subcall.upper()})")


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("subcall", [0, 21, 0xFF, 0xFFFFFFFF], ids=hex)
def test_socketcall_unknown_subcall_is_allowed(name, subcall):
    # The kernel answers EINVAL itself; nothing happens that a rule could judge.
    _, program = compiled(name)
    assert run(program, Abi.I386, SOCKETCALL_NR, subcall, 0x8000) == ALLOW


def test_socketcall_settles_rules_without_conditions():
    # offline allows accept outright, so socketcall(SYS_ACCEPT) need not stop; but
    # socketcall(SYS_SOCKET) must, as the family is in memory, and SYS_LISTEN, judged by
    # the socket's own address.
    _, program = compiled("offline")
    assert run(program, Abi.I386, SOCKETCALL_NR, subcall_number("accept"), 0x8000) == ALLOW
    assert run(program, Abi.I386, SOCKETCALL_NR, subcall_number("listen"), 0x8000) == TRACE
    assert run(program, Abi.I386, SOCKETCALL_NR, subcall_number("socket"), 0x8000) == TRACE
    assert run(program, Abi.I386, SOCKETCALL_NR, subcall_number("connect"), 0x8000) == TRACE


# --- random profiles: socket() decided exactly as decide() decides -------------------------

FAMILY_NAMES = ["unix", "inet", "inet6", "netlink", "packet", "unspec", 0, 1, 2, 10, 16, 17, 45, 0xFFFF]
TYPE_NAMES = ["stream", "dgram", "raw", "seqpacket", "packet", "rdm", 1, 2, 3, 15]
PROTOCOL_NAMES = ["tcp", "udp", "icmp", "icmpv6", "ip", "raw", "netlink_route", "netlink_generic",
                  "netlink_audit", 0, 1, 6, 16, 17, 58, 255, 768]
ERRNO_NAMES = ["EACCES", "EPERM", "EAFNOSUPPORT", "EPROTONOSUPPORT", "ENOSYS", 1, 97, 4095]


def toml_value(value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def toml_list(values) -> str:
    return "[" + ", ".join(toml_value(v) for v in values) + "]"


def single_condition_profile(key: str, value, action: str) -> Profile:
    other = "deny" if action == "allow" else "allow"
    return Profile.from_toml(f"""
[profile]
default = "{other}"
errno = "EPERM"
log = "none"

[[rule]]
calls = ["socket", "socketpair"]
{key} = [{toml_value(value)}]
action = "{action}"
{'errno = "EAFNOSUPPORT"' if action == "deny" else ""}
""", "single.toml")


@pytest.mark.parametrize("action", ["allow", "deny"])
@pytest.mark.parametrize("key,value", [("family", v) for v in FAMILY_NAMES] + [("type", v) for v in TYPE_NAMES]
                         + [("protocol", v) for v in PROTOCOL_NAMES], ids=str)
def test_each_condition_alone_is_decided_exactly(key, value, action):
    # One rule, one condition, the whole grid: each condition's compiled register test
    # (masks, "protocol 0 means the default", negations) must match decide() exactly.
    profile = single_condition_profile(key, value, action)
    program = compiler.assemble(compiler.plan(profile))
    for abi in ABIS:
        for family, sock_type, protocol in SOCKET_GRID:
            word = run_call(program, abi, "socket", family, sock_type, protocol)
            want = kernel_word(profile, socket_call("socket", family, sock_type, protocol, None))
            assert word == want, f"{abi.value} socket({family}, {sock_type:#x}, {protocol}): {show(word)} != {show(want)}"


@st.composite
def rule_tables(draw, calls, keys: dict[str, list]) -> str:
    """One [[rule]] on some of `calls`, with some of `keys` as conditions."""
    chosen = draw(st.one_of(st.just("*"), st.lists(st.sampled_from(calls), min_size=1, max_size=5, unique=True)))
    action = draw(st.sampled_from(["allow", "allow", "deny", "deny", "kill"]))
    lines = ["[[rule]]", f"calls = {toml_value(chosen) if chosen == '*' else toml_list(chosen)}",
             f'action = "{action}"']
    if action == "deny" and draw(st.booleans()):
        lines.append(f"errno = {toml_value(draw(st.sampled_from(ERRNO_NAMES)))}")
    for key, values in keys.items():
        if draw(st.booleans()):
            lines.append(f"{key} = {toml_list(draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True)))}")
    if draw(st.integers(0, 5)) == 0:
        lines.append("log = true")
    return "\n".join(lines)


@st.composite
def profiles(draw, calls, keys: dict[str, list]) -> Profile:
    header = ["[profile]", f'default = "{draw(st.sampled_from(["allow", "deny"]))}"',
              f"errno = {toml_value(draw(st.sampled_from(ERRNO_NAMES)))}",
              f'log = "{draw(st.sampled_from(["none", "none", "deny", "all"]))}"']
    rules = draw(st.lists(rule_tables(calls, keys), max_size=5))
    try:
        return Profile.from_toml("\n".join(header) + "\n\n" + "\n\n".join(rules) + "\n", "random.toml")
    except ProfileError:
        reject()  # e.g. protocol icmp in a rule for family unix: the loader refuses it


def register(abi: Abi, vocabulary: Sequence[int]):
    """A register: mostly a value the rules speak of, sometimes anything; on x86_64 with
    garbage in the upper half now and then."""
    low = st.one_of(*[st.sampled_from(vocabulary)] * 4, st.integers(0, 0xFFFFFFFF))
    if abi is Abi.I386:
        return low
    high = st.one_of(*[st.just(0)] * 4, st.integers(1, 0xFFFFFFFF))
    return st.tuples(low, high).map(lambda pair: pair[1] << 32 | pair[0])


def socket_vocabulary(profile: Profile) -> tuple[list[int], list[int], list[int]]:
    """Families, types and protocols the profile's rules name, a few no rule names, and
    extra weight on inet, stream/dgram and protocol 0: where 0 means TCP or UDP."""
    families, types, protocols = {1, 2, 10, 16, 17, 45, 0x80000002}, {1, 2, 3, 10, 15}, {0, 9}
    for rule in profile.rules:
        families |= rule.family or set()
        types |= rule.type or set()
        for item in rule.protocol or ():
            protocols.add(item.number)
            families |= item.families or set()
    types = {t | flags for t in types for flags in (0, SOCK_NONBLOCK | SOCK_CLOEXEC)}
    return [*sorted(families), 2, 10] * 2, [*sorted(types), 1, 2, 2 | SOCK_CLOEXEC] * 2, [*sorted(protocols), 0, 0]


SOCKET_KEYS = {"family": FAMILY_NAMES, "type": TYPE_NAMES, "protocol": PROTOCOL_NAMES}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(profile=profiles(["socket", "socketpair"], SOCKET_KEYS), data=st.data())
def test_random_profiles_decide_socket_like_the_supervisor(profile, data):
    program = compiler.assemble(compiler.plan(profile))
    vocabulary = socket_vocabulary(profile)
    for _ in range(12):
        abi = data.draw(st.sampled_from(ABIS))
        call = data.draw(st.sampled_from(["socket", "socketpair"]))
        family, sock_type, protocol = (data.draw(register(abi, words)) for words in vocabulary)
        word = run_call(program, abi, call, family, sock_type, protocol)
        # The supervisor reads int arguments as the kernel does: low 32 bits, signed.
        want = kernel_word(profile, socket_call(call, int32(family), int32(sock_type), int32(protocol), None))
        assert word == want, (f"{abi.value} {call}({family:#x}, {sock_type:#x}, {protocol:#x}): "
                              f"filter {show(word)}, decide {show(want)}\n{profile.text}")


# --- random profiles over every call and every key: sound ----------------------------------

MIXED_KEYS = {
    "family": ["unix", "inet", "inet6", "unspec", "netlink", 17],
    "type": ["stream", "dgram", "raw"],
    "protocol": ["tcp", "udp", "icmp", "netlink_route", 0],
    "port": [80, 53, "0-1023", 0],
    "address": ["127.0.0.0/8", "::1/128", "0.0.0.0/0"],
    "path": ["/run/**", "/tmp/*.sock"],
    "abstract": ["**", "some-*"],
    "exe": ["/usr/bin/*", "/bin/sh"],
}
FEW_SOCKETS = [None, (1, 1, 0), (2, 1, 6), (10, 2, 17), (16, 3, 0)]


def possible_calls(abi: Abi, name: str, args: tuple[int, ...]) -> list[Call]:
    """What the supervisor may see for a direct syscall with these registers."""
    if name in ("socket", "socketpair"):
        family, sock_type, protocol = (int32(a) for a in args[:3])
        return [socket_call(name, family, sock_type, protocol, exe) for exe in EXES]
    null_address = args[4] & abi.word_mask == 0
    if name == "sendto" and (null_address or int32(args[5]) == 0):
        return fd_calls(name, "send", FEW_SOCKETS)
    if name in ADDRESS_CALLS:
        return addressed_calls(name, FEW_SOCKETS)
    if name == "recvfrom":
        return fd_calls(name, "recv" if null_address else None, FEW_SOCKETS)
    return fd_calls(name, sockets=FEW_SOCKETS)


@functools.cache
def few_memory_calls(name: str) -> list[Call]:
    """memory_calls, thinned out to keep the property test quick."""
    return memory_calls(name)[::7] if name in ("socket", "socketpair") else [
        call for call in memory_calls(name) if call.family in (None, 1, 2, 10, 16) or call.address]


REGISTER_WORDS = st.one_of(st.sampled_from([0, 1, 2, 6, 10, 17, MSG_FASTOPEN, 1 << 32]), st.integers(0, 0xFFFFFFFF))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(profile=profiles(SUBCALLS, MIXED_KEYS), data=st.data())
def test_random_profiles_are_sound_for_every_call(profile, data):
    program = compiler.assemble(compiler.plan(profile))
    for _ in range(8):
        abi = data.draw(st.sampled_from(ABIS))
        name = data.draw(st.sampled_from([n for n in SUBCALLS if syscall_number(abi, n) is not None]))
        args = tuple(data.draw(REGISTER_WORDS) for _ in range(6))
        word = run_call(program, abi, name, *args)
        check(profile, word, possible_calls(abi, name, args), f"{abi.value} {name}{args}\n{profile.text}")
        subcall = data.draw(st.sampled_from(SUBCALLS))
        word = run(program, Abi.I386, SOCKETCALL_NR, subcall_number(subcall), 0x8000)
        check(profile, word, few_memory_calls(subcall), f"socketcall(SYS_{subcall.upper()})\n{profile.text}")


# --- the assembler -------------------------------------------------------------------------


def test_conditional_jump_over_255_instructions_is_refused():
    for span, fits in ((255, True), (256, False)):
        asm = bpf.Assembler()
        asm.load(bpf.OFF_NR)
        asm.jump(bpf.JMP_JEQ_K, 1, true=(far := asm.label("far")))
        for _ in range(span):
            asm.ret(ALLOW)
        asm.place(far)
        asm.ret(KILL)
        if fits:
            program = asm.assemble()
            assert program[1] == bpf.Insn(bpf.JMP_JEQ_K, 255, 0, 1)
            assert bpf.run(program, bpf.SeccompData(1, 0)) == KILL
            assert bpf.run(program, bpf.SeccompData(2, 0)) == ALLOW
        else:
            with pytest.raises(ValueError, match="far"):
                asm.assemble()


def test_unconditional_jump_may_go_far():
    asm = bpf.Assembler()
    asm.goto(end := asm.label())
    for _ in range(1000):
        asm.ret(ALLOW)
    asm.place(end)
    asm.ret(KILL)
    program = asm.assemble()
    assert program[0] == bpf.Insn(bpf.JMP_JA, 0, 0, 1000)
    assert bpf.run(program, bpf.SeccompData(0, 0)) == KILL


def test_backward_jump_is_refused():
    # Classic BPF only jumps forward; that is what guarantees the filter ends.
    asm = bpf.Assembler()
    asm.place(start := asm.label("start"))
    asm.load(bpf.OFF_NR)
    asm.jump(bpf.JMP_JEQ_K, 0, false=start)
    asm.ret(ALLOW)
    with pytest.raises(ValueError, match="start"):
        asm.assemble()


def test_unplaced_label_is_refused():
    asm = bpf.Assembler()
    asm.load(bpf.OFF_NR)
    asm.jump(bpf.JMP_JEQ_K, 0, false=asm.label("nowhere"))
    asm.ret(ALLOW)
    with pytest.raises(ValueError, match="nowhere"):
        asm.assemble()
    goto = bpf.Assembler()
    goto.goto(goto.label("nowhere"))
    with pytest.raises(ValueError, match="nowhere"):
        goto.assemble()


def test_program_longer_than_bpf_maxinsns_is_refused():
    asm = bpf.Assembler()
    for _ in range(bpf.MAX_INSNS + 1):
        asm.ret(ALLOW)
    with pytest.raises(ValueError):
        asm.assemble()


def test_encode_is_struct_sock_filter():
    program = [bpf.Insn(bpf.LD_W_ABS, 0, 0, bpf.OFF_ARCH), bpf.Insn(bpf.JMP_JEQ_K, 1, 2, 0xDEADBEEF),
               bpf.Insn(bpf.RET_K, 0, 0, ALLOW)]
    raw = bpf.encode(program)
    assert len(raw) == 8 * len(program)
    assert raw[8:16] == struct.pack("=HBBI", bpf.JMP_JEQ_K, 1, 2, 0xDEADBEEF)
    assert [bpf.Insn(*fields) for fields in struct.iter_unpack("=HBBI", raw)] == program


@pytest.mark.parametrize("name", PROFILES)
def test_built_filters_encode_every_instruction(name):
    profile, program = compiled(name)
    assert 0 < len(program) <= bpf.MAX_INSNS
    assert len(compiler.build(profile)) == 8 * len(program)


# --- the plan, as `sockbox show` prints it -------------------------------------------------


def syscall_plan(profile: Profile, abi: Abi, name: str) -> compiler.SyscallPlan:
    abi_plan = next(p for p in compiler.plan(profile) if p.abi is abi)
    return next(s for s in abi_plan.syscalls if s.name == name)


def test_plan_web_connect_needs_the_address():
    profile, _ = compiled("web")
    connect = syscall_plan(profile, Abi.X86_64, "connect")
    assert connect.nr == syscall_number(Abi.X86_64, "connect")
    last = connect.shapes[-1].clauses[-1]
    assert last.action == TRACE
    assert "address" in last.reason


def test_plan_web_plain_sendto_is_decided_in_kernel():
    profile, program = compiled("web")
    sendto = syscall_plan(profile, Abi.X86_64, "sendto")
    plain = [s for s in sendto.shapes if any("dest_addr == NULL" in t.text for t in s.guard)]
    assert plain, [s.shape.text for s in sendto.shapes]
    assert plain[0].clauses[-1].action == ALLOW
    assert all(clause.action != TRACE for clause in plain[0].clauses)
    # ...and the assembled filter agrees: a plain send never stops, an addressed one does.
    assert run_call(program, Abi.X86_64, "sendto", 3, 0x1000, 5, 0, 0, 0) == ALLOW
    assert run_call(program, Abi.X86_64, "sendto", 3, 0x1000, 5, 0, 0x5000, 16) == TRACE


@pytest.mark.parametrize("abi", ABIS, ids=abi_id)
def test_plan_describes_hardening_on_every_abi(abi):
    profile, _ = compiled("offline")
    plans = {s.name: s for p in compiler.plan(profile) if p.abi is abi for s in p.syscalls}
    for name, err in HARDENING:
        (clause,) = plans[name].shapes[0].clauses  # unconditional, with a reason to show
        assert clause.action == ERRNO(err) and clause.reason
    for name in ("clone", "seccomp"):  # refused on a flag, otherwise allowed
        clauses = plans[name].shapes[0].clauses
        assert [c.action for c in clauses] == [ERRNO(errno.EPERM), ALLOW]


def test_plan_socketcall_has_a_shape_per_subcall_and_one_for_the_rest():
    profile, _ = compiled("offline")
    socketcall = syscall_plan(profile, Abi.I386, SOCKETCALL)
    assert socketcall.nr == SOCKETCALL_NR
    assert len(socketcall.shapes) == len(SUBCALLS) + 1
    rest = socketcall.shapes[-1]
    assert rest.guard == () and [c.action for c in rest.clauses] == [ALLOW]


def test_plan_audit_profile_settles_no_socket_call_in_kernel():
    # audit allows everything but records it all, so every socket call stops.
    profile, _ = compiled("audit")
    for abi_plan in compiler.plan(profile):
        for syscall in abi_plan.syscalls:
            if syscall.name in SUBCALLS or syscall.name == SOCKETCALL:
                for shape in syscall.shapes:
                    if shape.shape.text != "no such subcall":
                        assert {c.action for c in shape.clauses} == {TRACE}, (abi_plan.abi, syscall.name)


@pytest.mark.parametrize("name", PROFILES)
def test_syscall_minus_one_is_not_taken_for_x32(name):
    # syscall(-1) is how some programs probe; the kernel answers ENOSYS, the filter lets it.
    _, program = compiled(name)
    assert run(program, Abi.X86_64, 0xFFFFFFFF) == ALLOW


def test_a_profile_too_big_for_the_kernel_is_decided_by_the_supervisor():
    # 1200 rules the registers could decide do not fit in the kernel's 4096
    # instructions: the calls whose rules take the most room stop at the supervisor,
    # which applies them all, so the profile runs as check accepted it.
    rules = "".join(f'[[rule]]\ncalls = ["socket"]\nfamily = ["inet"]\nprotocol = [{number}]\n'
                    f'action = "allow"\n' for number in range(1, 1201))
    profile = Profile.from_toml('[profile]\ndefault = "deny"\nlog = "none"\n' + rules)
    plans = compiler.plan(profile)
    program = compiler.assemble(plans)
    assert len(program) <= bpf.MAX_INSNS
    for abi in ABIS:
        assert run_call(program, abi, "socket", 2, 2, 17) == TRACE
        handed = [s for p in plans if p.abi is abi for s in p.syscalls if s.name == "socket"]
        assert [c.reason for c in handed[0].shapes[0].clauses] == [compiler.TOO_MANY_RULES]
        # what still fits is still the kernel's
        assert run_call(program, abi, "connect", 3, 0x1000, 16) == ERRNO(errno.EACCES)
    assert profile.decide(Call("socket", family=2, type=2, protocol=17)).action is Action.ALLOW
    assert profile.decide(Call("socket", family=2, type=2, protocol=1201)).action is Action.DENY

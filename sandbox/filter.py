"""A profile into a seccomp-BPF filter: the kernel decides what registers can decide.

The filter is built in two steps. `plan()` walks each socket syscall of each ABI (and
each form a call takes, such as sendto with and without a destination) through the
profile's rules and records, clause by clause, whether the registers settle the rule
(so the kernel can allow or fail the call alone) or whether the supervisor must look
at memory, the socket or the process (RET_TRACE). `assemble()` turns that plan into
BPF. `sockbox show` prints the same plan, so what it says is what the kernel runs.

libseccomp's own rule builder is not used: for i386 it rewrites a rule on a socket
call into one on socketcall(102) and silently drops the rule's argument conditions
there, which would turn "allow socket(AF_UNIX)" into "allow every socketcall socket()".
libseccomp still supplies the syscall numbers (abi.py).
"""

from __future__ import annotations

import ctypes
import errno
import itertools
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence

from . import bpf, libc
from .abi import (Abi, SOCKETCALL, X32_SYSCALL_BIT, SocketSyscall, credential_syscalls, fork_syscalls,
                  socket_syscalls, subcall_number, syscall_number)
from .errors import UnsupportedKernel
from .names import (AF_INET, AF_INET6, AF_PACKET, MSG_FASTOPEN, SOCK_PACKET, SOCK_TYPE_MASK, SUBCALLS,
                    default_protocol)
from .profile import Profile
from .rules import ADDRESS_KEYS, Action, Rule, Verdict

# The filter's returns (SECCOMP_RET_*, include/uapi/linux/seccomp.h).
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_TRACE = 0x7FF00000  # with data 0
_RET_ERRNO = 0x00050000
_RET_DATA = 0x0000FFFF


def RET_ERRNO(number: int) -> int:
    return _RET_ERRNO | (number & _RET_DATA)


CLONE_UNTRACED = 0x00800000
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
F_SETFD = 2
PR_SET_DUMPABLE = 4
PR_SET_MM = 35
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

# ---------------------------------------------------------------------------------------
# Register tests


@dataclass(frozen=True)
class Test:
    """A 32-bit word of seccomp_data, optionally masked, is (or is not) one of `values`;
    or, with `values` empty, lies within `within` (inclusive, unsigned)."""

    offset: int
    values: frozenset[int]
    mask: int | None = None
    negate: bool = False
    text: str = ""  # for `sockbox show`
    within: tuple[int, int] | None = None

    def holds(self, word: int) -> bool:
        value = word & self.mask if self.mask is not None else word
        if self.within is not None:
            return self.within[0] <= value <= self.within[1]
        return (value in self.values) != self.negate


def arg_is(index: int, values: Iterable[int], text: str, mask: int | None = None,
           negate: bool = False) -> Test:
    return Test(bpf.off_arg_low(index), frozenset(values), mask, negate, text)


def arg_within(index: int, low: int, high: int, text: str) -> Test:
    return Test(bpf.off_arg_low(index), frozenset(), text=text, within=(low, high))


def pointer_is_null(abi: Abi, index: int, name: str) -> tuple[Test, ...]:
    low = arg_is(index, {0}, f"{name} == NULL")
    if abi is Abi.I386:
        return (low,)  # compat syscalls use only the low 32 bits
    return (low, Test(bpf.off_arg_high(index), frozenset({0}), text=""))


Conjunction = tuple[Test, ...]

# ---------------------------------------------------------------------------------------
# The forms a socket syscall takes, as far as registers tell them apart


@dataclass(frozen=True)
class Shape:
    """One form of a socket syscall: which rule names surely match it, which match only
    depending on memory, whether it can carry an address, and which condition keys the
    registers hold (key -> argument index)."""

    call: str
    guard: Conjunction = ()
    names: frozenset[str] = frozenset()
    maybe_names: frozenset[str] = frozenset()
    address: bool = False
    registers: tuple[tuple[str, int], ...] = ()
    text: str = ""


def shapes(syscall: SocketSyscall) -> list[tuple[Conjunction, Shape]]:
    """The shapes of one syscall, each behind the register tests that select it."""
    abi, call = syscall.abi, syscall.call
    if call == SOCKETCALL:
        return [((arg_is(0, {subcall_number(name)}, f"call == SYS_{name.upper()}"),),
                 _socketcall_shape(name)) for name in SUBCALLS]
    if call in ("socket", "socketpair"):
        return [((), Shape(call, names=frozenset({call}),
                           registers=(("family", 0), ("type", 1), ("protocol", 2))))]
    if call == "sendto":
        plain = arg_is(3, {0}, "!(flags & MSG_FASTOPEN)", mask=MSG_FASTOPEN)
        names = frozenset({"sendto", "send"})
        return [
            ((*pointer_is_null(abi, 4, "dest_addr"), plain), Shape(call, names=names, text="dest_addr NULL")),
            ((arg_is(5, {0}, "addrlen == 0"), plain), Shape(call, names=names, text="addrlen 0")),
            ((), Shape(call, names=frozenset({"sendto"}), maybe_names=frozenset({"send"}),
                       address=True, text="destination or MSG_FASTOPEN")),
        ]
    if call == "recvfrom":
        return [
            (pointer_is_null(abi, 4, "src_addr"),
             Shape(call, names=frozenset({"recvfrom", "recv"}), text="no address buffer")),
            ((), Shape(call, names=frozenset({"recvfrom"}), text="address buffer")),
        ]
    if call in ("sendmsg", "sendmmsg"):
        return [((), Shape(call, names=frozenset({call}), maybe_names=frozenset({"send"}),
                           address=True))]
    if call in ("setsockopt", "getsockopt"):
        return [((), Shape(call, names=frozenset({call}), registers=(("level", 1), ("option", 2))))]
    return [((), Shape(call, names=frozenset({call}), address=call in ("bind", "connect", "listen")))]


def _socketcall_shape(name: str) -> Shape:
    # socketcall's arguments are in memory, so no condition key is decided by registers.
    if name == "send":
        return Shape(name, names=frozenset({"send", "sendto"}))
    if name == "recv":
        return Shape(name, names=frozenset({"recv", "recvfrom"}))
    if name in ("sendto", "sendmsg", "sendmmsg"):
        return Shape(name, names=frozenset({name}), maybe_names=frozenset({"send"}), address=True)
    if name == "recvfrom":
        return Shape(name, names=frozenset({name}), maybe_names=frozenset({"recv"}))
    return Shape(name, names=frozenset({name}), address=name in ("bind", "connect", "listen"))


# ---------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class Clause:
    """One rule, as far as registers can test it, with the filter's action."""

    tests: Conjunction
    action: int  # a SECCOMP_RET_* word
    reason: str


@dataclass
class ShapePlan:
    """The clauses of one way of entering a call (its registers' layout)."""

    guard: Conjunction
    shape: Shape
    clauses: list[Clause] = field(default_factory=list)


@dataclass
class SyscallPlan:
    """What the filter does for one syscall number."""

    nr: int
    name: str
    shapes: list[ShapePlan]


@dataclass
class AbiPlan:
    """The filter's plan for one ABI."""

    abi: Abi
    syscalls: list[SyscallPlan]


@dataclass(frozen=True)
class Supervision:
    """What the supervisor needs of the filter beyond the profile's rules."""

    # Stop at every syscall that can change a process's credentials, so that a
    # privileged supervisor can keep them cached.
    credentials: bool = False
    # Stop at every call that names a destination, so that the supervisor sees them all
    # (the Python API's Result.destinations).
    destinations: bool = False
    # The descriptor on which tracees hand theirs over where pidfd_getfd is refused
    # (handover.py): kept open, and the handover's own sendmsg let through.
    channel: int | None = None


def plan(profile: Profile, supervision: Supervision = Supervision()) -> list[AbiPlan]:
    """The filter's plan, within what the kernel takes (`_fitted`)."""
    counted = profile.process.processes is not None
    return _fitted([AbiPlan(abi, [*_hardening(abi, counted),
                                  *(_channel_keeping(abi, supervision.channel)
                                    if supervision.channel is not None else []),
                                  *_socket_plans(profile, abi, supervision),
                                  *(_fork_watch(abi) if counted else []),
                                  *(_credential_watch(abi) if supervision.credentials else [])])
                    for abi in Abi])


TOO_MANY_RULES = ("more rules than the kernel's filter holds (4096 instructions): the "
                  "supervisor decides")


def _fitted(plans: list[AbiPlan]) -> list[AbiPlan]:
    """The plan, with the socket syscalls whose rules take the most room handed to the
    supervisor (which always applies every rule) until the filter fits in the kernel's
    limit, or a jump in its 8-bit reach: a profile that loads always runs."""
    while True:
        try:
            assemble(plans)
            return plans
        except bpf.TooLong:
            pass
        candidates = [(sum(len(c.tests) + 2 for shape in syscall.shapes for c in shape.clauses), syscall)
                      for abi_plan in plans for syscall in abi_plan.syscalls
                      if syscall.name in _SOCKET_CALL_NAMES and not _handed_over(syscall)]
        if not candidates:
            raise UnsupportedKernel("the filter does not fit in the kernel's limit")
        _, largest = max(candidates, key=lambda candidate: candidate[0])
        largest.shapes = [ShapePlan((), Shape(largest.name), [Clause((), RET_TRACE, TOO_MANY_RULES)])]


_SOCKET_CALL_NAMES = frozenset({*SUBCALLS, SOCKETCALL})


def _handed_over(syscall: SyscallPlan) -> bool:
    return [c.reason for shape in syscall.shapes for c in shape.clauses] == [TOO_MANY_RULES]


def _channel_keeping(abi: Abi, channel: int) -> list[SyscallPlan]:
    """The handover channel stays what it is for the whole sandbox: a program cannot
    close it (it seems to), put another file in its place, mark it close-on-exec (it
    seems to), or close it with others (close_range says ENOSYS: the C library and
    CPython then close descriptors one by one)."""
    on_channel = arg_is(0, {channel}, f"fd == {channel}")
    keep = "the handover channel stays open (pidfd_getfd is refused here)"
    plans = []
    for name, tests, action in (
            ("close", (on_channel,), RET_ERRNO(0)),
            ("dup2", (arg_is(1, {channel}, f"newfd == {channel}"),), RET_ERRNO(errno.EBADF)),
            ("dup3", (arg_is(1, {channel}, f"newfd == {channel}"),), RET_ERRNO(errno.EBADF)),
            ("fcntl", (on_channel, arg_is(1, {F_SETFD}, "cmd == F_SETFD")), RET_ERRNO(0)),
            ("fcntl64", (on_channel, arg_is(1, {F_SETFD}, "cmd == F_SETFD")), RET_ERRNO(0)),
            ("close_range", (arg_within(0, 0, channel, f"first <= {channel}"),
                             arg_within(1, channel, 0xFFFFFFFF, f"last >= {channel}")), RET_ERRNO(errno.ENOSYS))):
        nr = syscall_number(abi, name)
        if nr is not None:
            plans.append(SyscallPlan(nr, name, [ShapePlan((), Shape(name), [
                Clause(tests, action, keep), Clause((), RET_ALLOW, "otherwise allowed")])]))
    return plans


_COUNTED = "makes a task: the supervisor counts it against `processes` (EAGAIN beyond)"


def _fork_watch(abi: Abi) -> list[SyscallPlan]:
    """fork and vfork stop at the supervisor (clone does in _hardening)."""
    return [SyscallPlan(nr, name, [ShapePlan((), Shape(name), [Clause((), RET_TRACE, _COUNTED)])])
            for name, nr in fork_syscalls(abi) if name != "clone"]


def _credential_watch(abi: Abi) -> list[SyscallPlan]:
    reason = "credentials may change: the supervisor forgets what it knew of them"
    return [SyscallPlan(nr, name, [ShapePlan((), Shape(name), [Clause((), RET_TRACE, reason)])])
            for name, nr in credential_syscalls(abi)]


def _socket_plans(profile: Profile, abi: Abi, supervision: Supervision) -> list[SyscallPlan]:
    compiler = _RuleCompiler(profile, supervision.destinations)
    plans = []
    for syscall in socket_syscalls(abi):
        shape_plans = [ShapePlan(guard, shape, compiler.clauses(shape))
                       for guard, shape in shapes(syscall)]
        if supervision.channel is not None:
            shape_plans[:0] = _on_the_channel(syscall, supervision.channel)
        if syscall.call == SOCKETCALL:
            no_such = Shape(SOCKETCALL, text="no such subcall")
            shape_plans.append(ShapePlan((), no_such, [
                Clause((), RET_ALLOW, "no such subcall: the kernel returns EINVAL")]))
        plans.append(SyscallPlan(syscall.nr, syscall.call, shape_plans))
    return plans


def _on_the_channel(syscall: SocketSyscall, channel: int) -> list[ShapePlan]:
    """The handover's sendmsg on the channel passes whatever the profile says (a
    program's own, on it, reaches only the supervisor); a shutdown of it seems to work.
    socketcall's shutdown, whose descriptor is in memory, stops for the supervisor to
    tell."""
    on_channel = (arg_is(0, {channel}, f"fd == {channel}"),)
    if syscall.call == "sendmsg":
        return [ShapePlan(on_channel, Shape("sendmsg", text="the handover channel"), [
            Clause((), RET_ALLOW, "the handover channel: only the supervisor reads it")])]
    if syscall.call == "shutdown":
        return [ShapePlan(on_channel, Shape("shutdown", text="the handover channel"), [
            Clause((), RET_ERRNO(0), "the handover channel stays open")])]
    if syscall.call == SOCKETCALL:
        subcall = (arg_is(0, {subcall_number("shutdown")}, "call == SYS_SHUTDOWN"),)
        return [ShapePlan(subcall, Shape("shutdown", text="the channel's, maybe"), [
            Clause((), RET_TRACE, "its descriptor may be the handover channel's")])]
    return []


def _hardening(abi: Abi, counted: bool = False) -> list[SyscallPlan]:
    """Always-on rules: the roads around a ptrace supervisor that registers can close.
    `counted`: a clone not refused stops at the supervisor, which counts tasks."""

    def refuse(name: str, err: int, why: str, tests: Conjunction = ()) -> SyscallPlan | None:
        nr = syscall_number(abi, name)
        if nr is None:
            return None
        clauses = [Clause(tests, RET_ERRNO(err), why)]
        if tests and name == "clone" and counted:
            clauses.append(Clause((), RET_TRACE, _COUNTED))
        elif tests:
            clauses.append(Clause((), RET_ALLOW, "otherwise allowed"))
        return SyscallPlan(nr, name, [ShapePlan((), Shape(name), clauses)])

    untraced = arg_is(0, {CLONE_UNTRACED}, "flags & CLONE_UNTRACED", mask=CLONE_UNTRACED)
    listener = (arg_is(0, {SECCOMP_SET_MODE_FILTER}, "op == SECCOMP_SET_MODE_FILTER"),
                arg_is(1, {SECCOMP_FILTER_FLAG_NEW_LISTENER}, "flags & NEW_LISTENER",
                       mask=SECCOMP_FILTER_FLAG_NEW_LISTENER))
    # Input pushed into a terminal is read by whoever reads it next: the user's shell,
    # once the sandbox has ended. Refused as the kernel refuses it with
    # dev.tty.legacy_tiocsti = 0 (EIO); TIOCLINUX's paste likewise, TIOCLINUX whole.
    terminal = [Clause((arg_is(1, {TIOCSTI}, "cmd == TIOCSTI"),), RET_ERRNO(errno.EIO),
                       "TIOCSTI would type input into a terminal"),
                Clause((arg_is(1, {TIOCLINUX}, "cmd == TIOCLINUX"),), RET_ERRNO(errno.EPERM),
                       "TIOCLINUX would paste a console's selection as input"),
                Clause((), RET_ALLOW, "otherwise allowed")]
    process = [Clause((arg_is(0, {PR_SET_DUMPABLE}, "option == PR_SET_DUMPABLE"), arg_is(1, {0}, "value == 0")),
                      RET_ERRNO(0), "stays traceable: a non-dumpable tracee hides its memory and "
                      "sockets from an unprivileged supervisor (the call is accepted and ignored)"),
               Clause((arg_is(0, {PR_SET_MM}, "option == PR_SET_MM"),), RET_ERRNO(errno.EPERM),
                      "PR_SET_MM_EXE_FILE would name another executable for the process"),
               Clause((), RET_ALLOW, "otherwise allowed")]
    ioctl, prctl = syscall_number(abi, "ioctl"), syscall_number(abi, "prctl")
    plans = [
        SyscallPlan(ioctl, "ioctl", [ShapePlan((), Shape("ioctl"), terminal)]) if ioctl is not None else None,
        SyscallPlan(prctl, "prctl", [ShapePlan((), Shape("prctl"), process)]) if prctl is not None else None,
        refuse("userfaultfd", errno.EPERM, "a fault handled by the tracee would stall the supervisor"),
        refuse("io_uring_setup", errno.ENOSYS, "io_uring performs socket calls seccomp cannot see"),
        refuse("io_uring_enter", errno.ENOSYS, "io_uring performs socket calls seccomp cannot see"),
        refuse("io_uring_register", errno.ENOSYS, "io_uring performs socket calls seccomp cannot see"),
        refuse("clone3", errno.ENOSYS, "its flags are in memory; libc falls back to clone"),
        refuse("clone", errno.EPERM, "an untraced child would escape supervision", (untraced,)),
        refuse("ptrace", errno.EPERM, "tracing would let a process act for another"),
        refuse("process_vm_writev", errno.EPERM, "writing another process's memory"),
        refuse("pidfd_getfd", errno.EPERM, "taking another process's sockets"),
        refuse("seccomp", errno.EPERM, "a user-notification filter outranks RET_TRACE", listener),
    ]
    return [p for p in plans if p is not None]


# The calls whose destination `watch_destinations` sees (a bind names no destination).
DESTINATION_CALLS = frozenset({"connect", "sendto", "sendmsg", "sendmmsg"})


class _RuleCompiler:
    def __init__(self, profile: Profile, watch_destinations: bool = False):
        self.profile = profile
        self.watch_destinations = watch_destinations

    def kernel_action(self, verdict: Verdict) -> int:
        """The filter's return for a decision registers settle. Audited decisions stop at
        the supervisor so that it can write the record."""
        if self.profile.audits(verdict):
            return RET_TRACE
        if verdict.action is Action.ALLOW:
            return RET_ALLOW
        return RET_ERRNO(verdict.errno)

    def clauses(self, shape: Shape) -> list[Clause]:
        if self.watch_destinations and shape.address and shape.call in DESTINATION_CALLS:
            return [Clause((), RET_TRACE, "the destination is watched (Result.destinations)")]
        clauses: list[Clause] = []
        registers = dict(shape.registers)
        for rule in self.profile.effective_rules:
            surely = bool(rule.calls & shape.names)
            if not surely and not rule.calls & shape.maybe_names:
                continue
            keys = rule.keys()
            if not shape.address and any(key in ADDRESS_KEYS for key in keys):
                continue  # cannot hold for a form that names no address
            needs = [key for key in keys if key not in registers]
            if not surely:
                needs.append("the destination, to tell a plain send")
            verdict = Verdict(rule.action, self.profile.errno if rule.errno is None else rule.errno, rule)
            action = RET_TRACE if needs else self.kernel_action(verdict)
            reason = f"{rule.label}: " + (f"needs {', '.join(needs)}" if needs else self.outcome(verdict))
            alternatives = _register_conditions(rule, registers)
            clauses.extend(Clause(tests, action, reason) for tests in alternatives)
            if alternatives == [()]:
                return clauses  # this rule (or the supervisor) settles every remaining call
        default = self.profile.default_verdict
        clauses.append(Clause((), self.kernel_action(default), f"default {self.outcome(default)}"))
        return clauses

    def outcome(self, verdict: Verdict) -> str:
        return verdict.action.value + (", audited" if self.profile.audits(verdict) else "")


def _register_conditions(rule: Rule, registers: dict[str, int]) -> list[Conjunction]:
    """The rule's register-decided keys in disjunctive normal form."""
    parts: list[list[Conjunction]] = []
    if rule.family is not None and "family" in registers:
        parts.append(_family_conditions(rule.family, registers))
    if rule.type is not None and "type" in registers:
        parts.append([(arg_is(registers["type"], rule.type, "type in rule", mask=SOCK_TYPE_MASK),)])
    if rule.protocol is not None and "protocol" in registers:
        parts.append(_protocol_conditions(rule, registers))
    if rule.level is not None and "level" in registers:
        parts.append([(arg_is(registers["level"], rule.level, "level in rule"),)])
    if rule.option is not None and "option" in registers:
        parts.append([
            (arg_is(registers["option"], {o.number}, f"option == {o.number}"),
             *((arg_is(registers["level"], {o.level}, f"level == {o.level}"),) if o.level is not None else ()))
            for o in rule.option])
    return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)] or [()]


def _family_conditions(families: frozenset[int], registers: dict[str, int]) -> list[Conjunction]:
    """family = F holds for the family the socket is made in (names.created_family):
    socket(AF_INET, SOCK_PACKET) makes a packet socket."""
    family, sock_type = registers["family"], registers["type"]
    packet_type = arg_is(sock_type, {SOCK_PACKET}, "type == SOCK_PACKET", mask=SOCK_TYPE_MASK)
    if (AF_INET in families) == (AF_PACKET in families):
        return [(arg_is(family, families, "family in rule"),)]
    if AF_INET in families:  # but not its packet spelling
        out: list[Conjunction] = [(arg_is(family, {AF_INET}, "family == AF_INET"),
                                   arg_is(sock_type, {SOCK_PACKET}, "type != SOCK_PACKET",
                                          mask=SOCK_TYPE_MASK, negate=True))]
        if families - {AF_INET}:
            out.append((arg_is(family, families - {AF_INET}, "family in rule"),))
        return out
    return [(arg_is(family, families, "family in rule"),),
            (arg_is(family, {AF_INET}, "family == AF_INET"), packet_type)]


def _protocol_conditions(rule: Rule, registers: dict[str, int]) -> list[Conjunction]:
    """protocol = X holds when the protocol argument is X, or it is 0 and X is what the
    kernel picks for that family and type."""
    family, sock_type, protocol = registers["family"], registers["type"], registers["protocol"]
    inet = {AF_INET, AF_INET6}
    out: list[Conjunction] = []
    for item in rule.protocol or ():
        families = _family_conditions(item.families, registers) if item.families else [()]
        if item.number != 0:
            out += [(arg_is(protocol, {item.number}, f"protocol == {item.number}"), *within)
                    for within in families]
            for fam, typ in itertools.product(sorted(inet & (item.families or inet)), (1, 2)):
                if default_protocol(fam, typ) == item.number:
                    out.append((arg_is(protocol, {0}, "protocol == 0"),
                                arg_is(family, {fam}, f"family == {fam}"),
                                arg_is(sock_type, {typ}, f"type == {typ}", mask=SOCK_TYPE_MASK)))
        else:
            zero = arg_is(protocol, {0}, "protocol == 0")
            for within in families:
                out.append((zero, arg_is(family, inet, "family not inet", negate=True), *within))
                out.append((zero, arg_is(family, inet, "family inet"),
                            arg_is(sock_type, {1, 2}, "type not stream/dgram", mask=SOCK_TYPE_MASK,
                                   negate=True), *within))
    return out


# ---------------------------------------------------------------------------------------
# Plan to BPF


def assemble(plans: Sequence[AbiPlan]) -> list[bpf.Insn]:
    asm = bpf.Assembler()
    sections = {p.abi: asm.label(p.abi.value) for p in plans}
    asm.load(bpf.OFF_ARCH)
    for abi_plan in plans:
        asm.jump(bpf.JMP_JEQ_K, abi_plan.abi.audit_arch, false=(skip := asm.label()))
        asm.goto(sections[abi_plan.abi])
        asm.place(skip)
    asm.ret(RET_KILL_PROCESS)  # an ABI the supervisor does not understand
    for abi_plan in plans:
        asm.place(sections[abi_plan.abi])
        _emit_abi(asm, abi_plan)
    return asm.assemble()


def build(profile: Profile, supervision: Supervision = Supervision()) -> bytes:
    return bpf.encode(assemble(plan(profile, supervision)))


def _emit_abi(asm: bpf.Assembler, abi_plan: AbiPlan) -> None:
    asm.load(bpf.OFF_NR)
    if abi_plan.abi is Abi.X86_64:
        # The x32 ABI is killed; but syscall(-1), which the kernel answers with ENOSYS
        # and programs use as a probe, is not an x32 call.
        asm.jump(bpf.JMP_JEQ_K, 0xFFFFFFFF, false=(not_minus_one := asm.label()))
        asm.ret(RET_ALLOW)
        asm.place(not_minus_one)
        asm.jump(bpf.JMP_JGE_K, X32_SYSCALL_BIT, false=(native := asm.label()))
        asm.ret(RET_KILL_PROCESS)
        asm.place(native)
    blocks = {p.nr: asm.label(p.name) for p in abi_plan.syscalls}
    _emit_dispatch(asm, sorted(blocks), blocks)
    for syscall_plan in abi_plan.syscalls:
        asm.place(blocks[syscall_plan.nr])
        for shape_plan in syscall_plan.shapes:
            _emit_shape(asm, shape_plan)


def _emit_dispatch(asm: bpf.Assembler, numbers: list[int], blocks: dict[int, bpf.Label]) -> None:
    """A binary search over syscall numbers (A holds nr); unlisted syscalls are allowed."""
    if len(numbers) <= 3:
        for nr in numbers:
            asm.jump(bpf.JMP_JEQ_K, nr, false=(next_nr := asm.label()))
            asm.goto(blocks[nr])
            asm.place(next_nr)
        asm.ret(RET_ALLOW)
        return
    middle = len(numbers) // 2
    asm.jump(bpf.JMP_JGE_K, numbers[middle], false=(low := asm.label()))
    asm.goto(high := asm.label())
    asm.place(low)
    _emit_dispatch(asm, numbers[:middle], blocks)
    asm.place(high)
    _emit_dispatch(asm, numbers[middle:], blocks)


def _emit_shape(asm: bpf.Assembler, shape_plan: ShapePlan) -> None:
    if shape_plan.guard:
        miss, body = asm.label(), asm.label()
        _emit_tests(asm, shape_plan.guard, miss)
        asm.goto(body)
        asm.place(miss)
        asm.goto(next_shape := asm.label())
        asm.place(body)
    else:
        next_shape = None
    for clause in shape_plan.clauses:
        miss = asm.label()
        _emit_tests(asm, clause.tests, miss)
        asm.ret(clause.action)
        asm.place(miss)
    if next_shape is not None:
        asm.place(next_shape)


def _emit_tests(asm: bpf.Assembler, tests: Conjunction, miss: bpf.Label) -> None:
    loaded: tuple[int, int | None] | None = None
    for test in tests:
        if loaded != (test.offset, test.mask):
            asm.load(test.offset)
            if test.mask is not None:
                asm.and_(test.mask)
            loaded = (test.offset, test.mask)
        if test.within is not None:
            low, high = test.within
            if low > 0:
                asm.jump(bpf.JMP_JGE_K, low, false=miss)
            if high < 0xFFFFFFFF:
                asm.jump(bpf.JMP_JGT_K, high, true=miss)
            continue
        values = sorted(test.values)
        if test.negate:
            for value in values:
                asm.jump(bpf.JMP_JEQ_K, value, true=miss)
            continue
        hit = asm.label()
        for value in values[:-1]:
            asm.jump(bpf.JMP_JEQ_K, value, true=hit)
        asm.jump(bpf.JMP_JEQ_K, values[-1], false=miss)
        asm.place(hit)


# ---------------------------------------------------------------------------------------
# Installing it (in the child, after PR_SET_NO_NEW_PRIVS, before execve)

_SECCOMP_GET_ACTION_AVAIL = 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp(operation: int, flags: int, argument: ctypes._CArgObject) -> int:
    return libc.raw_syscall("seccomp", operation, flags, argument)


def install(program: bytes) -> None:
    """Load the filter into the calling thread; raises OSError."""
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if _seccomp(SECCOMP_SET_MODE_FILTER, 0, ctypes.byref(prog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SET_MODE_FILTER): {errno.errorcode.get(err, err)}")


def check_kernel() -> None:
    """Refuse to start where the kernel lacks an action the filter returns."""
    for action, name in ((RET_KILL_PROCESS, "KILL_PROCESS"), (RET_TRACE, "TRACE"),
                         (RET_ERRNO(1), "ERRNO")):
        value = ctypes.c_uint32(action & 0xFFFF0000)
        if _seccomp(_SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(value)) != 0:
            raise UnsupportedKernel(f"the kernel lacks seccomp action SECCOMP_RET_{name} "
                                    f"({errno.errorcode.get(ctypes.get_errno(), '?')})")

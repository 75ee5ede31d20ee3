"""The event loop: wait, classify the stop, gather the call's facts, decide, apply, audit.

No policy lives here: `calls` turns a stop into facts, the profile decides, `emulate`
performs what must not be left to the tracee, and this module carries out the verdict
(let the call run, perform it, make it fail, or end the sandbox) and keeps track of
every thread and process it supervises.
"""

from __future__ import annotations

import _socket
import collections
import dataclasses
import errno
import fcntl
import os
import select
import signal
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

from . import _fastpath, _ptrace, fastpath, handover, procfs, sharing
from .abi import (SOCKETCALL, Abi, Via, abi_of, changes_credentials, identify, makes_task,
                  socketcall_nargs, subcall_name, syscall_number)
from .audit import AuditLog, Event, make_event
from .calls import Subject, describe, int32
from .decode import Unix, decode_words
from .domain import Domain
from .errors import Malformed, NeedDescriptor, SandboxError, SupervisorError, TraceeGone
from .executables import Vouching
from .filter import DESTINATION_CALLS
from .names import MSG_DONTWAIT, SUBCALLS
from .processes import ProcessCount
from .profile import Profile
from .rules import Action, Call, Verdict, needs_socket, socket_decides
from .signals import DiedBySignal
from .tracee import Credentials, FrozenCall, Handing, StopContext, ThreadState, Waiting

if TYPE_CHECKING:  # imported where a stop needs them: a run that never stops never loads them
    from .emulate import Outcome, Wait

_GROUP_STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
_FORK_EVENTS = {_ptrace.PTRACE_EVENT_FORK, _ptrace.PTRACE_EVENT_VFORK, _ptrace.PTRACE_EVENT_CLONE}

# What a syscall interrupted by a signal returns for the kernel to decide, per the
# handler's SA_RESTART, between running it again and failing with EINTR.
ERESTARTSYS = 512
POLLIN, POLLOUT = 0x1, 0x4
# The status waitpid reports for a seccomp stop, for one handled later than it came.
_SECCOMP_STOP = _ptrace.PTRACE_EVENT_SECCOMP << 16 | signal.SIGTRAP << 8 | 0x7F
# Calls the kernel makes after they are judged, on a verdict that may rest on what their
# descriptor refers to (plain sends are performed here instead: emulate.needs_emulation).
_KERNEL_MADE = frozenset({"accept", "accept4", "getsockname", "getpeername", "recv", "recvfrom",
                          "recvmsg", "recvmmsg", "shutdown", "setsockopt", "getsockopt"})
_RECEIVING = frozenset({"accept", "accept4", "recvfrom", "recvmsg", "recvmmsg"})
# Where the flags of the receives are, among their arguments.
_FLAGS_AT = {"recv": 3, "recvfrom": 3, "recvmsg": 2, "recvmmsg": 3}
_PPOLL = {Abi.X86_64: "ppoll", Abi.I386: "ppoll_time64"}  # both take a 64-bit timespec
_BELOW_RED_ZONE = 1024
# Verdicts filed for _fastpath, over all executables: a program that reaches ever new
# addresses finds the rest judged in Python, and the supervisor's memory bounded.
MAX_FILED = 10_000


@dataclass
class Supervisor:
    """One sandbox's supervision: every tracee, and what each is in the middle of."""

    profile: Profile
    audit: AuditLog
    main_pid: int
    credentials: Credentials  # the supervisor's own
    tracees: set[int] = field(default_factory=set)
    main_status: int | None = None
    killed_by_rule: bool = False
    threads: dict[int, ThreadState] = field(default_factory=dict)  # per tracee thread
    decisions: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    # Called with every call decided (each message of a sendmmsg): `sockbox learn`.
    observers: Sequence[Callable[[Call], None]] = ()
    # Keep every distinct destination reached or refused (the filter stops at each call
    # that names one): the summary lists them, whatever the profile audits.
    watch_destinations: bool = False
    # The command's Landlock domain, which calls performed here outside it must keep to.
    domain: Domain | None = None
    # Where pidfd_getfd is refused: the channel tracees hand their descriptors over on.
    channel: handover.Channel | None = None
    # For a profile with `exe` rules: which executables sockbox vouches for.
    vouching: Vouching | None = None
    stops: int = 0  # seccomp stops: each time a socket call waited for the supervisor

    def __post_init__(self) -> None:
        self.tracees.add(self.main_pid)
        self._needs_socket = {name: needs_socket(self.profile.effective_rules, name) for name in SUBCALLS}
        # Verdicts already reached, by executable, which _fastpath serves again for the
        # same facts (see `file`).
        self._filed: dict[str | None, dict[bytes, int]] = {}
        self._filed_count = 0
        self._socket_decides = {name: socket_decides(self.profile.effective_rules, name)
                                for name in SUBCALLS}
        self.tables = sharing.Tables(self.main_pid)
        self._fast = _fastpath.Server(
            self.threads, fastpath.served_syscalls(), fastpath.served_subcalls(),
            fastpath.reads_socket(self._needs_socket), fastpath.needs_alone(self._socket_decides),
            self.tables.alone)
        self._destinations: dict[tuple[object, ...], Event] = {}
        # A low page of each thread group's, mapped for handovers from int $0x80 calls of
        # 64-bit programs, whose stack is beyond their reach.
        self._low_scratch: dict[int, int] = {}
        self.processes = ProcessCount(self.profile.process.processes, self.main_pid)
        # The threads kept still for one thread's call (sharing.py), and the stops of
        # others that wanted the same, handled once it is made.
        self._freeze: sharing.Freeze | None = None
        self._deferred: list[tuple[int, int]] = []
        # Tracees stopped and not let go yet: the rest of the stops the fast path
        # returned, and those in a group stop (PTRACE_LISTEN).
        self._parked: set[int] = set()
        self._listening: set[int] = set()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until every tracee is gone; return the status `sockbox run` exits with.

        Fails closed: whatever goes wrong here, every process in the sandbox is dead
        before SupervisorError says what it was."""
        try:
            while self.tracees:
                try:
                    # Alone, a tracee has no others to be fair to: spare the draining waitpid.
                    events = self._fast.serve(len(self.tracees) > 1)
                except ChildProcessError:
                    break
                for index, event in enumerate(events):
                    self._parked = {later[0] for later in events[index + 1:]}
                    try:
                        if len(event) == 2:
                            self.handle(*event)
                        else:
                            self.call_waits(*event)
                    except TraceeGone:
                        pass  # its exit will be reported by waitpid
            self.stops += self._fast.stops
            self.decisions.update(self._fast.decisions())
            status = 128 + signal.SIGKILL if self.killed_by_rule else _exit_status(self.main_status)
            self.audit.summary(self.decisions, self.stops, self._fast.stops, status,
                               list(self._destinations.values()) if self.watch_destinations else None)
            return status
        except Exception as error:
            self._kill_everything()
            what = str(error) if isinstance(error, SandboxError) else f"internal error: {type(error).__name__}: {error}"
            raise SupervisorError(f"{what}; every process in the sandbox was killed") from error

    def _kill_everything(self) -> None:
        """Kill every tracee, and every one not known yet (a child whose fork event was
        still to come) as it shows up, until the supervisor has no child and no tracee."""
        self.kill_all()
        while True:
            try:
                pid, status = _ptrace.waitpid()
            except ChildProcessError:
                return
            if os.WIFSTOPPED(status):
                os.kill(pid, signal.SIGKILL)

    def handle(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.forget(pid)
            if pid == self.main_pid:
                self.main_status = status
            return
        if not os.WIFSTOPPED(status):
            return
        self.tracees.add(pid)  # a new child's first stop can come before its parent's event
        self.tables.seen(pid)
        self._listening.discard(pid)
        if self._freeze is not None and pid != self._freeze.caller and (
                pid in self._freeze.stopped or pid in self.tables.sharers(self._freeze.caller)):
            self._freeze.held.append((pid, status))  # let go once the caller's call is made
            return
        if self.killed_by_rule:
            os.kill(pid, signal.SIGKILL)
            return
        stop_signal, event = os.WSTOPSIG(status), status >> 16
        if stop_signal == _ptrace.SYSCALL_STOP:
            self.on_syscall_exit(pid)
        elif event == _ptrace.PTRACE_EVENT_SECCOMP:
            self.on_seccomp(pid)
        elif event in _FORK_EVENTS:
            child = _ptrace.event_message(pid)
            self.tracees.add(child)
            self.processes.forked(pid, child)
            self.tables.created(pid, child, sharing.shares_table(pid))
            if self.vouching is not None:
                self.vouching.forked(procfs.thread_group(pid), child)
            _ptrace.cont(pid)
        elif event == _ptrace.PTRACE_EVENT_EXEC:
            former = _ptrace.event_message(pid)
            if former != pid:  # a thread exec'd and took over the leader's id
                self.forget(former)
            self._fast.forget(pid)  # the leader's call that C ran, if it was in one, is gone
            if pid in self.threads:
                self.threads[pid].forget_image()
            self._low_scratch.pop(pid, None)  # another memory now
            self.tables.executed(pid)
            if self.vouching is not None:
                self.vouching.executed(pid)
            _ptrace.cont(pid)
        elif event == _ptrace.PTRACE_EVENT_STOP:
            if stop_signal in _GROUP_STOP_SIGNALS:
                _ptrace.listen(pid)  # stay stopped until SIGCONT, as job control expects
                self._listening.add(pid)
            else:
                _ptrace.cont(pid)
        else:
            thread = self.threads.get(pid)
            if thread is not None and thread.running_again is not None:
                self.interrupt_rerun(pid, thread, stop_signal)
            _ptrace.cont(pid, stop_signal)  # deliver the signal

    def forget(self, pid: int) -> None:
        self.tracees.discard(pid)
        self.processes.exited(pid)
        self.tables.ended(pid)
        self._fast.forget(pid)
        if self.vouching is not None:
            self.vouching.ended(pid)
        thread = self.threads.pop(pid, None)
        if thread is not None:
            thread.close()
        if self._freeze is not None and self._freeze.caller == pid:
            self.thaw()

    # -- one seccomp stop -------------------------------------------------------------------

    def on_seccomp(self, tid: int) -> None:
        self.stops += 1
        info = _ptrace.syscall_info(tid)
        abi = abi_of(info.arch)
        syscall = identify(info.arch, info.nr)
        if info.op != _ptrace.PTRACE_SYSCALL_INFO_SECCOMP or abi is None:
            _ptrace.fail_syscall(tid, errno.ENOSYS)  # nothing our filter traces: fail closed
            _ptrace.cont(tid)
            return
        if syscall is None and makes_task(info.arch, info.nr):
            self.on_fork(tid)
            return
        thread = self.threads.get(tid)
        if thread is None:
            thread = self.threads[tid] = ThreadState()
        if syscall is None:
            # A credential change the filter watches, or a filter of the program's own.
            if changes_credentials(info.arch, info.nr):
                thread.forget_credentials()
            _ptrace.cont(tid)
            return
        call_at = (info.instruction_pointer, info.nr)
        quiet = call_at in (thread.running_again, thread.recorded_for)
        thread.running_again = thread.recorded_for = None
        if not quiet:
            thread.give_up_at = None  # a call of its own, not one running again
        if thread.handed_for != call_at:  # not the call that ran again after a handover
            thread.forget_handed()
        args = info.args  # masked to the ABI's word by describe()
        name, via = syscall.call, Via.DIRECT
        memory = _ptrace.TraceeMemory(tid)
        stop = StopContext(tid, thread, handed_over=self.channel is not None, call=call_at,
                           vouching=self.vouching)
        recorded = quiet
        try:
            if name == SOCKETCALL:
                subcall, via = subcall_name(args[0] & abi.word_mask), Via.SOCKETCALL
                if subcall is None:
                    _ptrace.cont(tid)  # the kernel refuses an unknown subcall with EINVAL
                    return
                name = subcall
                args = decode_words(memory.read(args[1] & abi.word_mask, 4 * socketcall_nargs(name)))
                if self.keeps_the_channel(tid, name, args):
                    return
            if not self.still_enough(tid, name):
                return  # deferred until the threads kept still for another call go on
            subjects = describe(name, abi, args, memory, stop, self._needs_socket[name])
            subject, verdict = self.judge(subjects)
            self.file(subject, verdict)
            if not quiet:
                self.decisions[subject.call.name, verdict.action.value] += 1
                for observe in self.observers:
                    for each in subjects:
                        observe(each.call)
            if self.profile.audits(verdict) and not quiet:
                self.audit.record(make_event(subject, verdict, tid, abi.value, via.value), subject)
            if self.watch_destinations and name in DESTINATION_CALLS:
                self.note_destinations(subjects, verdict, tid, abi, via)
            recorded = True
            self.apply(tid, verdict, subjects, abi, via, memory, stop)
            self.choose_server(stop)
        except NeedDescriptor as need:
            # Running again once the descriptor is handed over; judged again, not
            # recorded again where it was.
            thread.recorded_for = call_at if recorded else None
            self.hand_over(tid, thread, abi, need.fd, memory)
            stop.close()
            return
        except Malformed as error:
            _ptrace.fail_syscall(tid, error.errno)
            _ptrace.cont(tid)
        finally:
            stop.close()
            if (self._freeze is not None and self._freeze.caller == tid and thread.frozen is None
                    and thread.handing is None):
                self.thaw()  # the call is made, refused or waits: nothing more to keep still
        thread.forget_handed()

    # -- calls the kernel makes on a verdict that rested on the socket (sharing.py) --------

    def still_enough(self, tid: int, name: str) -> bool:
        """Keep every other thread that may share `tid`'s descriptor table still, where
        the kernel will make this call on a verdict that may rest on what its descriptor
        refers to. False: another thread's call keeps them still now; this stop is
        handled once that call is made."""
        if name not in _KERNEL_MADE or not self._socket_decides[name]:
            return True
        if self._freeze is not None:
            if self._freeze.caller == tid:
                return True  # still so, after a handover
            self._deferred.append((tid, _SECCOMP_STOP))
            return False
        sharers = self.tables.sharers(tid)
        if not sharers:
            return True
        parked = {*self._parked, *self._listening, *(pid for pid, _ in self._deferred)}
        self._freeze = sharing.freeze(tid, sharers, parked.__contains__)
        if not self._freeze.complete:
            raise Malformed(errno.EAGAIN, "the threads sharing its descriptors would not stop")
        return True

    def thaw(self) -> None:
        """Let the threads kept still go on, and handle the stops held meanwhile."""
        assert self._freeze is not None
        held, self._freeze = self._freeze.held, None
        deferred, self._deferred = self._deferred, []
        pending, parked = [*held, *deferred], self._parked
        for index, (pid, status) in enumerate(pending):
            # Those still to be handled stay stopped meanwhile: a freeze that one of these
            # stops makes must not wait for them to stop again (they never would).
            self._parked = parked | {later for later, _ in pending[index + 1:]}
            try:
                self.handle(pid, status)
            except TraceeGone:
                pass
        self._parked = parked

    def make_frozen(self, tid: int, thread: ThreadState, subject: Subject, abi: Abi, via: Via,
                    stop: StopContext, memory: _ptrace.TraceeMemory) -> None:
        """Let the kernel make the call while the others are kept still, without ever
        letting it block them: a receive or accept that has nothing waits first (thawed,
        in its own context) and runs again; one that has runs as MSG_DONTWAIT (or on a
        non-blocking file, for accept), and if it finds nothing after all, runs again."""
        name = subject.call.name
        assert subject.fd is not None
        copy = stop.socket(subject.fd).fd
        flags_at = _FLAGS_AT.get(name)
        args = list(subject.args)
        if via is Via.SOCKETCALL:
            args = list(fastpath.direct_args(name, subject.args))
            name = fastpath.I386_DIRECT.get(name, name)
        blocking = False
        if name in _RECEIVING:
            nonblocking_file = fcntl.fcntl(copy, fcntl.F_GETFL) & os.O_NONBLOCK
            blocking = not nonblocking_file and not (flags_at is not None and args[flags_at] & MSG_DONTWAIT)
            ready = bool(select.select([copy], [], [], 0)[0])
            if blocking and not ready:
                from .emulate import Wait

                timeout = _receive_timeout_ns(copy)
                wait = Wait(subject.fd, timeout, timed_out=-errno.EAGAIN if timeout else None,
                            readable=True)
                self.begin_wait(tid, thread, abi, wait, memory)
                return
        frozen = FrozenCall(_ptrace.registers(tid), blocking)
        if flags_at is not None:
            args[flags_at] |= MSG_DONTWAIT
        elif blocking:  # accept: no flag for it; its file, for the moment of the call
            frozen.nonblocking = os.dup(copy)
            fcntl.fcntl(frozen.nonblocking, fcntl.F_SETFL, fcntl.fcntl(copy, fcntl.F_GETFL) | os.O_NONBLOCK)
        nr = syscall_number(abi, name)
        assert nr is not None
        _ptrace.rewrite_syscall(tid, abi, nr, tuple(args))
        thread.frozen = frozen
        _ptrace.cont_to_syscall_exit(tid)

    def made_frozen(self, tid: int, thread: ThreadState) -> None:
        """At the exit of a call made while the others were kept still: every register
        as it was but the result (or the call made again, where a receive found nothing
        after all), the file's flags as they were; it goes on, then the others."""
        frozen, thread.frozen = thread.frozen, None
        assert frozen is not None
        result = _signed(_ptrace.registers(tid).rax)
        regs = _ptrace.copy_registers(frozen.original)
        regs.rax = result & 0xFFFFFFFFFFFFFFFF
        if frozen.blocking and result == -errno.EAGAIN:
            regs.rax, regs.rip = frozen.original.orig_rax, frozen.original.rip - 2
            thread.recorded_for = (frozen.original.rip, frozen.original.orig_rax)
        if frozen.nonblocking is not None:
            flags = fcntl.fcntl(frozen.nonblocking, fcntl.F_GETFL)
            fcntl.fcntl(frozen.nonblocking, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
            os.close(frozen.nonblocking)
        _ptrace.set_registers(tid, regs)
        # Resumed before the others are let go: a freeze that one of their held stops
        # makes must see it run, and stop it, like any other.
        _ptrace.cont(tid)
        if self._freeze is not None and self._freeze.caller == tid:
            self.thaw()

    # -- descriptors handed over, where pidfd_getfd is refused (handover.py) ----------------

    def keeps_the_channel(self, tid: int, name: str, args: tuple[int, ...]) -> bool:
        """A socketcall shutdown of the handover channel seems to work (the filter has
        the direct one seem to)."""
        if self.channel is None or name != "shutdown" or int32(args[0]) != self.channel.number:
            return False
        _ptrace.set_result(tid, 0)
        _ptrace.cont(tid)
        return True

    def hand_over(self, tid: int, thread: ThreadState, abi: Abi, fd: int,
                  memory: _ptrace.TraceeMemory) -> None:
        """Make the stopped thread run, in place of its call, the sendmsg that hands
        descriptor `fd` over (handover.request); `handed` takes it at the syscall's exit."""
        assert self.channel is not None
        original = _ptrace.registers(tid)
        tries = thread.handing_tries + 1 if thread.handed_for == (original.rip, original.orig_rax) else 1
        scratch = handover.scratch_below(original.rsp, abi.word_mask)
        if scratch is None:  # int $0x80 from a 64-bit program: its stack is out of reach
            scratch = self._low_scratch.get(procfs.thread_group(tid))
        if scratch is None:
            self.inject(tid, thread, Handing(fd, original, tries, mapping=True),
                        handover.mapping_request())
            return
        request = handover.request(abi, self.channel.number, fd, scratch)
        try:
            memory.write(request.at, request.memory)
        except Malformed as error:
            thread.unhanded[fd] = error.errno
            self.run_again(tid, thread, original, skipping=True)
            return
        self.inject(tid, thread, Handing(fd, original, tries), request)

    def inject(self, tid: int, thread: ThreadState, handing: Handing,
               request: handover.Request) -> None:
        """At a seccomp stop: the thread runs `request`'s syscall in place of its call."""
        regs = _ptrace.copy_registers(handing.original)
        regs.orig_rax = request.nr
        for register, value in zip(_ptrace.ARGUMENT_REGISTERS[request.abi], request.args):
            setattr(regs, register, value)
        _ptrace.set_registers(tid, regs)
        thread.handing = handing
        _ptrace.cont_to_syscall_exit(tid)

    def handed(self, tid: int, thread: ThreadState) -> None:
        """At the exit of the injected syscall: keep the low page it mapped, or take the
        descriptor it handed over; then run the stopped call again, which now finds it
        (or the errno the descriptor gets)."""
        assert self.channel is not None and thread.handing is not None
        handing, thread.handing = thread.handing, None
        result = _signed(_ptrace.registers(tid).rax)
        if handing.mapping:
            if result >= 0:
                self._low_scratch[procfs.thread_group(tid)] = result
            else:
                thread.unhanded[handing.fd] = -result
            self.run_again(tid, thread, handing.original)
            return
        copy = self.channel.receive(tid, handing.fd) if result >= 0 else None
        if copy is not None:
            thread.handed[handing.fd] = copy
        else:
            err = -result if result < 0 else errno.ESTALE  # nothing of it arrived: swapped meanwhile
            if handover.given_up(handing.tries, err):
                thread.unhanded[handing.fd] = errno.EBADF if err == errno.ESTALE else err
            thread.handing_tries = handing.tries
        self.run_again(tid, thread, handing.original)

    def run_again(self, tid: int, thread: ThreadState, original: Any, skipping: bool = False) -> None:
        """Back to where the thread stopped, its call made again (to stop again here).
        `skipping`: the thread is at the call's seccomp stop, so the kernel must not
        make the call now (it returns the call's number instead, which is where the
        call starts again); else it is at the exit of an injected syscall."""
        regs = _ptrace.copy_registers(original)
        regs.rax = original.orig_rax
        regs.rip = original.rip - 2  # syscall, sysenter's landing and int $0x80: 2 bytes
        if skipping:
            regs.orig_rax = 0xFFFFFFFFFFFFFFFF
        thread.handed_for = (original.rip, original.orig_rax)
        _ptrace.set_registers(tid, regs)
        _ptrace.cont(tid)

    def on_fork(self, tid: int) -> None:
        """A fork, vfork or clone, which stops where `processes` is set (processes.py)."""
        if self.processes.may_fork(tid):
            _ptrace.cont_to_syscall_exit(tid)  # a fork that fails makes no event: its return says so
        else:
            _ptrace.fail_syscall(tid, errno.EAGAIN)
            _ptrace.cont(tid)

    def file(self, subject: Subject, verdict: Verdict) -> None:
        """File a verdict for _fastpath to serve again, under the facts it was reached
        on (fastpath.key). Not filed: what must be recorded (the record is written
        here) and kills."""
        if self.profile.audits(verdict) or self._filed_count >= MAX_FILED:
            return
        if verdict.action is Action.ALLOW:
            result = 0
        elif verdict.action is Action.DENY and verdict.errno > 0:
            result = verdict.errno
        else:
            return
        key = fastpath.key(subject)
        if key is None:
            return
        table = self._filed.setdefault(subject.call.exe, {})
        if key not in table:
            table[key] = result
            self._filed_count += 1

    def note_destinations(self, subjects: list[Subject], verdict: Verdict, tid: int, abi: Abi,
                          via: Via) -> None:
        """Keep each destination named (every message of a sendmmsg, all with the call's
        verdict) the first time it is reached or refused."""
        for subject in subjects:
            call = subject.call
            if call.address is None:
                continue
            key = (call.name, call.family, call.address, call.path, verdict.action)
            if key not in self._destinations:
                self._destinations[key] = make_event(subject, verdict, tid, abi.value, via.value)

    def choose_server(self, stop: StopContext) -> None:
        """Let _fastpath serve the thread's next calls where it serves them as this
        module would: the thread is in the middle of nothing, its pidfd (if it has one
        yet) names the thread, no observer wants each call, and a call performed for it
        is performed as the supervisor (which a privileged supervisor does only for its
        equals)."""
        thread = stop.thread
        servable = (thread.exe_read and not thread.pidfd_is_the_group
                    and not self.observers and not self.killed_by_rule
                    and thread.waiting is None and thread.running_again is None
                    and (not self.credentials.privileged or stop.credentials() == self.credentials))
        # No table yet: nothing to serve (the first filing for the executable makes one).
        thread.verdicts = self._filed.get(thread.exe) if servable else None

    def judge(self, subjects: list[Subject]) -> tuple[Subject, Verdict]:
        """The strictest verdict over a call's subjects (every message of a sendmmsg)."""
        if len(subjects) == 1:
            return subjects[0], self.profile.decide(subjects[0].call)
        judged = [(subject, self.profile.decide(subject.call)) for subject in subjects]
        return max(judged, key=lambda pair: pair[1].action.severity)

    def apply(self, tid: int, verdict: Verdict, subjects: list[Subject], abi: Abi, via: Via,
              memory: _ptrace.TraceeMemory, stop: StopContext) -> None:
        if verdict.action is Action.KILL:
            self.kill_all()
            return
        if verdict.action is Action.DENY:
            _ptrace.fail_syscall(tid, verdict.errno)
            _ptrace.cont(tid)
            return
        from .emulate import emulate, needs_emulation
        from .impersonate import emulate_as

        first = subjects[0]
        if not self.may_create(first, stop):
            _ptrace.fail_syscall(tid, errno.EACCES)  # as Landlock refuses it
            _ptrace.cont(tid)
            return
        socket_may_change = self._socket_decides[first.call.name] and bool(self.tables.sharers(tid))
        if needs_emulation(first, socket_may_change):
            theirs = stop.credentials() if self.credentials.privileged else None
            if theirs is not None and theirs != self.credentials:
                outcome = emulate_as(theirs, subjects, abi, stop, memory)
            else:
                outcome = emulate(subjects, abi, stop, memory)
            self.complete(tid, stop.thread, abi, outcome, memory)
        elif self._freeze is not None and self._freeze.caller == tid:
            self.make_frozen(tid, stop.thread, first, abi, via, stop, memory)
        elif via is Via.SOCKETCALL:
            # Run the direct syscall with the arguments just judged, so that a rewrite of
            # the argument array after this point changes nothing.
            nr = fastpath.direct_i386(first.call.name)
            stop.thread.rewritten = _ptrace.rewrite_syscall(
                tid, Abi.I386, nr, fastpath.direct_args(first.call.name, first.args))
            _ptrace.cont_to_syscall_exit(tid)
        else:
            _ptrace.cont(tid)

    def may_create(self, subject: Subject, stop: StopContext) -> bool:
        """A bind to a unix path makes a file, which the supervisor, outside the
        command's Landlock domain, must make only where the command may."""
        address = subject.call.address
        if (self.domain is None or subject.call.name != "bind" or not isinstance(address, Unix)
                or not address.path):
            return True
        target = stop.unix_target(address.path, follow_last=False)
        return target.missing or self.domain.may_create_in(target.fd)

    def complete(self, tid: int, thread: ThreadState, abi: Abi, outcome: Outcome,
                 memory: _ptrace.TraceeMemory) -> None:
        """Hand the tracee the outcome of a call the supervisor performed."""
        from .emulate import Breach, Done, Wait

        if isinstance(outcome, Breach):
            raise SupervisorError(outcome.reason)
        if isinstance(outcome, Wait):
            if not self.gave_up(thread, outcome):
                self.begin_wait(tid, thread, abi, outcome, memory)
                return
            outcome = Done(-errno.EAGAIN)
        thread.give_up_at = None
        for address, data in outcome.writes:
            try:
                memory.write(address, data)
            except Malformed:
                break  # as __sys_sendmmsg stops reporting lengths it cannot write
        _ptrace.set_result(tid, outcome.result)
        _ptrace.cont(tid)

    def call_waits(self, tid: int, call: str, arch: int, family: int, fd: int, result: int,
                   send_timeout_ns: int) -> None:
        """_fastpath performed a blocking call (judged and counted) that the tracee must
        now wait for, as `emulate` would have it wait."""
        from .emulate import wait_for

        abi = abi_of(arch)
        assert abi is not None
        thread = self.threads[tid]
        thread.give_up_at = None  # a call of its own, not one running again
        self.complete(tid, thread, abi, wait_for(call, family, fd, result, send_timeout_ns or None),
                      _ptrace.TraceeMemory(tid))

    # -- a tracee waiting in place of a call ------------------------------------------------

    def gave_up(self, thread: ThreadState, wait: Wait) -> bool:
        """Whether the call has waited, over all its waits, as long as SO_SNDTIMEO lets it."""
        if wait.send_timeout_ns is None:
            return False
        now = time.monotonic_ns()
        if thread.give_up_at is None:
            thread.give_up_at = now + wait.send_timeout_ns
        return now >= thread.give_up_at

    def begin_wait(self, tid: int, thread: ThreadState, abi: Abi, wait: Wait,
                   memory: _ptrace.TraceeMemory) -> None:
        """Turn the tracee's call into ppoll(fd, POLLOUT, timeout), or a ppoll on nothing
        that sleeps: it waits in its own context, where signals and job control reach
        it, not stopped in ours."""
        from .emulate import RETRY_NS

        original = _ptrace.registers(tid)
        below_stack = (original.rsp - _BELOW_RED_ZONE) & ~15
        timeout = wait.timeout_ns
        events = POLLIN if wait.readable else POLLOUT
        polled = b"" if wait.fd is None else struct.pack("=ihh", wait.fd, events, 0)
        arguments = polled
        if timeout is not None:
            arguments += struct.pack("=qq", *divmod(timeout, 1_000_000_000))
        try:
            if below_stack + len(arguments) > abi.word_mask:
                # int $0x80 from a 64-bit program: its stack is out of the call's reach
                raise Malformed(errno.EFAULT, "stack above 4 GiB")
            memory.write(below_stack, arguments)
            nr = syscall_number(abi, _PPOLL[abi])
            values: tuple[int, ...] = (below_stack if polled else 0, len(polled) // 8,
                                       below_stack + len(polled) if timeout else 0, 0, 8)
        except Malformed:
            # No memory to wait with: sleep a moment (poll with no descriptors), then run
            # the call again; a timeout cannot be kept this way.
            wait = dataclasses.replace(wait, timeout_ns=RETRY_NS, timed_out=None)
            nr = syscall_number(abi, "poll")
            values = (0, 0, RETRY_NS // 1_000_000)
        regs = _ptrace.copy_registers(original)
        regs.orig_rax = nr
        for register, value in zip(_ptrace.ARGUMENT_REGISTERS[abi], values):
            setattr(regs, register, value)
        _ptrace.set_registers(tid, regs)
        thread.waiting = Waiting(original, wait)
        thread.verdicts = None  # the call runs again after the wait: in Python
        _ptrace.cont_to_syscall_exit(tid)

    def on_syscall_exit(self, tid: int) -> None:
        self.processes.returned(tid)
        if self._fast.returned(tid):
            return  # a socketcall _fastpath ran as its direct syscall, now restored
        thread = self.threads.get(tid)
        if thread is not None and thread.handing is not None:
            self.handed(tid, thread)
            return
        if thread is not None and thread.frozen is not None:
            self.made_frozen(tid, thread)
            return
        if thread is not None and thread.rewritten is not None:
            _ptrace.restore_after_rewrite(tid, thread.rewritten)
            thread.rewritten = None
        elif thread is not None and thread.waiting is not None:
            waiting, thread.waiting = thread.waiting, None
            self.end_wait(tid, thread, waiting)
            self.choose_server(StopContext(tid, thread, vouching=self.vouching))
        _ptrace.cont(tid)

    def end_wait(self, tid: int, thread: ThreadState, waiting: Waiting) -> None:
        result = _signed(_ptrace.registers(tid).rax)
        regs = _ptrace.copy_registers(waiting.original)
        if result == 0 and waiting.wait.timed_out is not None:
            regs.rax = waiting.wait.timed_out & 0xFFFFFFFFFFFFFFFF
        else:
            # Ready, waited enough, or the wait failed (a signal among the reasons, which
            # is delivered before the call runs again: see interrupt_rerun): run the call
            # again, decided again.
            regs.rax = waiting.original.orig_rax
            regs.rip = waiting.original.rip - 2  # syscall, sysenter's landing and int $0x80: 2 bytes
            thread.running_again = (waiting.original.rip, waiting.original.orig_rax)
        _ptrace.set_registers(tid, regs)

    def interrupt_rerun(self, tid: int, thread: ThreadState, signal_number: int) -> None:
        """A signal is delivered to a thread whose call is set to run again after a wait
        (one that ended the wait, or came just after): it interrupts the call, as it
        would have natively. The call returns, as the kernel's socket waits return, EINTR
        with SO_SNDTIMEO set; else ERESTARTSYS, which the kernel, delivering the signal,
        turns into a restart (from orig_rax) or EINTR per the handler's SA_RESTART."""
        assert thread.running_again is not None
        rip, _ = thread.running_again
        regs = _ptrace.registers(tid)
        if regs.rip != rip - 2 or _ignores(tid, signal_number):
            return  # not at the call any more, or a signal that interrupts nothing
        thread.running_again = None
        regs.rip = rip
        interrupted = -errno.EINTR if thread.give_up_at is not None else -ERESTARTSYS
        regs.rax = interrupted & 0xFFFFFFFFFFFFFFFF
        _ptrace.set_registers(tid, regs)

    def kill_all(self) -> None:
        self.killed_by_rule = True
        for thread in self.threads.values():
            thread.verdicts = None
        for pid in list(self.tracees):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.tracees.discard(pid)


# Signals whose default is to be ignored.
_IGNORED_BY_DEFAULT = sum(1 << (s - 1) for s in (signal.SIGCHLD, signal.SIGCONT, signal.SIGURG,
                                                  signal.SIGWINCH))


def _ignores(tid: int, signal_number: int) -> bool:
    """Whether the thread ignores the signal, by its disposition or by default: such a
    signal, queued for a tracee all the same, would not have interrupted anything."""
    try:
        fields = procfs.status(tid)
    except OSError:
        return False
    ignored = procfs.signal_mask(fields, "SigIgn") | (_IGNORED_BY_DEFAULT & ~procfs.signal_mask(fields, "SigCgt"))
    return bool(ignored & 1 << (signal_number - 1))


def _receive_timeout_ns(fd: int) -> int | None:
    """SO_RCVTIMEO, which bounds how long a blocking receive or accept waits."""
    sock = _socket.socket(fileno=fd)
    try:
        seconds, microseconds = struct.unpack("=qq", sock.getsockopt(_socket.SOL_SOCKET,
                                                                    _socket.SO_RCVTIMEO, 16))
    finally:
        sock.detach()
    return seconds * 1_000_000_000 + microseconds * 1000 or None


def _signed(register: int) -> int:
    """A syscall's result as the register holds it, as a signed number (-errno)."""
    return register - (1 << 64) if register >= 1 << 63 else register


def _exit_status(status: int | None) -> int:
    if status is None:
        return 128 + signal.SIGKILL
    if os.WIFSIGNALED(status):
        return DiedBySignal(os.WTERMSIG(status))
    return os.WEXITSTATUS(status)

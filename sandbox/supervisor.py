"""The event loop: wait, classify the stop, gather the call's facts, decide, apply, audit.

No policy lives here: `calls` turns a stop into facts, the profile decides, and this
module only carries out the verdict (let the call run, make it fail, or end the sandbox)
and keeps track of every thread and process it supervises.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from . import _ptrace
from .abi import Abi, SOCKETCALL, Via, abi_of, identify, socketcall_nargs, subcall_name, syscall_number
from .audit import AuditLog, make_event
from .calls import Subject, describe
from .decode import Malformed, decode_words
from .profile import Profile
from .rules import Action, Verdict, needs_socket
from .names import SUBCALLS

_GROUP_STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
_FORK_EVENTS = {_ptrace.PTRACE_EVENT_FORK, _ptrace.PTRACE_EVENT_VFORK, _ptrace.PTRACE_EVENT_CLONE}

# socketcall subcalls that i386 has no direct syscall for, and the direct call that does
# the same with the missing arguments filled in.
_I386_DIRECT = {"accept": ("accept4", (0,)), "send": ("sendto", (0, 0)), "recv": ("recvfrom", (0, 0))}


class TracedProcess:
    """Facts about one tracee thread, read from /proc and its descriptors on demand."""

    def __init__(self, tid: int, exe_cache: dict[int, str | None]):
        self.tid = tid
        self._exe_cache = exe_cache

    def exe(self) -> str | None:
        if self.tid not in self._exe_cache:
            try:
                self._exe_cache[self.tid] = os.readlink(f"/proc/{self.tid}/exe")
            except OSError:
                self._exe_cache[self.tid] = None
        return self._exe_cache[self.tid]

    def resolve_unix_path(self, path: bytes, *, follow_last: bool) -> str:
        text = os.fsdecode(path)
        if not text.startswith("/"):
            try:
                text = os.path.join(os.readlink(f"/proc/{self.tid}/cwd"), text)
            except OSError:
                pass
        if follow_last:
            return os.path.realpath(text)
        head, tail = os.path.split(text)
        return os.path.join(os.path.realpath(head), tail)

    def socket_info(self, fd: int) -> tuple[int, int, int]:
        try:
            pidfd = _ptrace.pidfd_open(self.tid, _ptrace.PIDFD_THREAD)
        except OSError:
            pidfd = _ptrace.pidfd_open(_thread_group(self.tid))
        try:
            copy = _ptrace.pidfd_getfd(pidfd, fd)
        except OSError as error:
            raise Malformed(error.errno or errno.EBADF, f"fd {fd}") from None
        finally:
            os.close(pidfd)
        try:
            with socket.socket(fileno=copy) as sock:
                return int(sock.family), int(sock.type), sock.proto
        except OSError as error:
            os.close(copy)
            raise Malformed(errno.ENOTSOCK if error.errno == errno.ENOTSOCK else errno.EBADF,
                            f"fd {fd}") from None


def _thread_group(tid: int) -> int:
    with open(f"/proc/{tid}/status") as status:
        for line in status:
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    return tid


@dataclass
class Supervisor:
    profile: Profile
    audit: AuditLog
    main_pid: int
    tracees: set[int] = field(default_factory=set)
    main_status: int | None = None
    killed_by_rule: bool = False
    exe_cache: dict[int, str | None] = field(default_factory=dict)
    # Tracees running a rewritten socketcall, with the registers to restore.
    rewritten: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tracees.add(self.main_pid)
        self._needs_socket = {name: needs_socket(self.profile.rules, name) for name in SUBCALLS}

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until every tracee is gone; return the status `sockbox run` exits with."""
        while self.tracees:
            try:
                pid, status = _ptrace.waitpid()
            except ChildProcessError:
                break
            try:
                self.handle(pid, status)
            except _ptrace.TraceeGone:
                pass  # its exit will be reported by waitpid
        if self.killed_by_rule:
            return 128 + signal.SIGKILL
        return _exit_status(self.main_status)

    def handle(self, pid: int, status: int) -> None:
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.tracees.discard(pid)
            self.exe_cache.pop(pid, None)
            self.rewritten.pop(pid, None)
            if pid == self.main_pid:
                self.main_status = status
            return
        if not os.WIFSTOPPED(status):
            return
        self.tracees.add(pid)  # a new child's first stop can come before its parent's event
        if self.killed_by_rule:
            os.kill(pid, signal.SIGKILL)
            return
        stop_signal, event = os.WSTOPSIG(status), status >> 16
        if stop_signal == _ptrace.SYSCALL_STOP:
            if pid in self.rewritten:
                _ptrace.restore_after_rewrite(pid, self.rewritten.pop(pid))
            _ptrace.cont(pid)
        elif event == _ptrace.PTRACE_EVENT_SECCOMP:
            self.on_seccomp(pid)
        elif event in _FORK_EVENTS:
            self.tracees.add(_ptrace.event_message(pid))
            _ptrace.cont(pid)
        elif event == _ptrace.PTRACE_EVENT_EXEC:
            former = _ptrace.event_message(pid)
            if former != pid:  # a thread exec'd and took over the leader's id
                self.tracees.discard(former)
                self.exe_cache.pop(former, None)
            self.exe_cache.pop(pid, None)
            _ptrace.cont(pid)
        elif event == _ptrace.PTRACE_EVENT_STOP:
            if stop_signal in _GROUP_STOP_SIGNALS:
                _ptrace.listen(pid)  # stay stopped until SIGCONT, as job control expects
            else:
                _ptrace.cont(pid)
        else:
            _ptrace.cont(pid, stop_signal)  # deliver the signal

    # -- one seccomp stop -------------------------------------------------------------------

    def on_seccomp(self, tid: int) -> None:
        info = _ptrace.syscall_info(tid)
        abi = abi_of(info.arch)
        syscall = identify(info.arch, info.nr)
        if info.op != _ptrace.PTRACE_SYSCALL_INFO_SECCOMP or abi is None:
            _ptrace.fail_syscall(tid, errno.ENOSYS)  # nothing our filter traces: fail closed
            _ptrace.cont(tid)
            return
        if syscall is None:
            _ptrace.cont(tid)  # a filter of the program's own asked to trace this one
            return
        args = tuple(a & abi.word_mask for a in info.args)
        name, via = syscall.call, Via.DIRECT
        try:
            if name == SOCKETCALL:
                name, via = subcall_name(args[0]), Via.SOCKETCALL
                if name is None:
                    _ptrace.cont(tid)  # the kernel refuses an unknown subcall with EINVAL
                    return
                args = decode_words(_ptrace.TraceeMemory(tid).read(args[1], 4 * socketcall_nargs(name)))
            subjects = describe(name, abi, args, _ptrace.TraceeMemory(tid),
                                TracedProcess(tid, self.exe_cache), self._needs_socket[name])
        except Malformed as error:
            _ptrace.fail_syscall(tid, error.errno)
            _ptrace.cont(tid)
            return
        subject, verdict = self.judge(subjects)
        if self.profile.audits(verdict):
            self.audit.record(make_event(subject, verdict, tid, abi.value, via.value), subject)
        self.apply(tid, verdict, abi, via, name, args)

    def judge(self, subjects: list[Subject]) -> tuple[Subject, Verdict]:
        """The strictest verdict over a call's subjects (every message of a sendmmsg)."""
        judged = [(subject, self.profile.decide(subject.call)) for subject in subjects]
        return max(judged, key=lambda pair: pair[1].action.severity)

    def apply(self, tid: int, verdict: Verdict, abi: Abi, via: Via, name: str,
              args: tuple[int, ...]) -> None:
        if verdict.action is Action.KILL:
            self.kill_all()
            return
        if verdict.action is Action.DENY:
            _ptrace.fail_syscall(tid, verdict.errno)
        elif via is Via.SOCKETCALL:
            # Run the direct syscall with the arguments just judged, so that a rewrite of
            # the argument array after this point changes nothing.
            direct, extra = _I386_DIRECT.get(name, (name, ()))
            nr = syscall_number(Abi.I386, direct)
            assert nr is not None
            self.rewritten[tid] = _ptrace.rewrite_i386_syscall(tid, nr, (*args, *extra))
            _ptrace.cont_to_syscall_exit(tid)
            return
        _ptrace.cont(tid)

    def kill_all(self) -> None:
        self.killed_by_rule = True
        for pid in list(self.tracees):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.tracees.discard(pid)


def _exit_status(status: int | None) -> int:
    if status is None:
        return 128 + signal.SIGKILL
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)

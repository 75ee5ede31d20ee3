"""Run one command in the sandbox, in this process: check the kernel, filter, spawn,
supervise."""

from __future__ import annotations

import errno
import os
from typing import Callable, Mapping, Sequence

from . import _ptrace, filter, landlock, signals, spawn
from .audit import AuditLog, Sink
from .domain import Domain
from .errors import Malformed, UnsupportedKernel
from .profile import Profile
from .rules import Call
from .spawn import Inheritance
from .supervisor import Supervisor
from .tracee import O_PATH, credentials, openat2

PR_SET_DUMPABLE = 4


def run(profile: Profile, argv: Sequence[str], sinks: Sequence[Sink] = (),
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        inheritance: Inheritance = Inheritance(),
        observers: Sequence[Callable[[Call], None]] = (), watch_destinations: bool = False) -> int:
    """Run `argv` under `profile`; return the status `sockbox run` exits with.
    `watch_destinations`: the summary lists every destination reached or refused.

    Raises SandboxError (nothing was run), ExecFailed among them (status 126/127).
    """
    return supervise(profile, argv, sinks, env, cwd, inheritance, observers, watch_destinations)


def prepare(profile: Profile, watch_destinations: bool = False) -> bytes:
    """The start-up work: check the kernel, build the filter (which a warm sandbox does
    once for many runs)."""
    check_kernel()
    return filter.build(profile, watch_credentials=credentials("self").privileged,
                        watch_destinations=watch_destinations)


def supervise(profile: Profile, argv: Sequence[str], sinks: Sequence[Sink] = (),
              env: Mapping[str, str] | None = None, cwd: str | None = None,
              inheritance: Inheritance = Inheritance(),
              observers: Sequence[Callable[[Call], None]] = (), watch_destinations: bool = False,
              program: bytes | None = None, forward_signals: bool = True) -> int:
    """`run`, with `program`: the filter `prepare` built for this profile and
    `watch_destinations`; `forward_signals`: pass on those sent to this process (the
    CLI's; the Python API's supervisors have no one to). A death by signal is a
    signals.DiedBySignal status."""
    if program is None:
        program = prepare(profile, watch_destinations)
    ours = credentials("self")
    # Orphans of the command are reparented to us, so that we can reap them.
    spawn.prctl(spawn.PR_SET_CHILD_SUBREAPER, 1)
    domain = Domain.for_profile(profile.filesystem, profile.process, profile.source, cwd)
    signals.block()
    try:
        child = spawn.spawn(argv, program, env, cwd, inheritance, domain, profile.process)
    finally:
        if domain is not None:
            domain.close()
    # Processes in the sandbox run as our user; they must not be able to read or write
    # the supervisor's memory, which being non-dumpable forbids. Only after the fork:
    # the child would inherit it, and an unprivileged tracer cannot seize a
    # non-dumpable process.
    spawn.prctl(PR_SET_DUMPABLE, 0)
    supervisor = Supervisor(profile, AuditLog(sinks), child.pid, ours, observers=observers,
                            watch_destinations=watch_destinations, domain=domain)
    if forward_signals:
        signals.forward(child.pid, lambda: supervisor.tracees)
    return supervisor.run()


def inheritance_from(keep_fds: Sequence[int], environ: Mapping[str, str]) -> Inheritance:
    """The descriptors to pass on: those asked for, and systemd's socket-activated ones
    when LISTEN_PID names this process."""
    listen_fds = 0
    if environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            listen_fds = max(int(environ.get("LISTEN_FDS", "0")), 0)
        except ValueError:
            listen_fds = 0
    return Inheritance(tuple(keep_fds), listen_fds)


def check_kernel() -> None:
    """Refuse to start where the kernel lacks what the defences rely on."""
    filter.check_kernel()
    try:
        pidfd = _ptrace.pidfd_open(os.getpid())
        try:
            os.close(_ptrace.pidfd_getfd(pidfd, pidfd))
        finally:
            os.close(pidfd)
    except OSError as error:
        raise UnsupportedKernel(_missing("pidfd_getfd", error.errno)) from None
    try:
        os.close(openat2(-100, b"/", O_PATH, 0))  # AT_FDCWD
    except Malformed as error:
        raise UnsupportedKernel(_missing("openat2", error.errno)) from None
    if landlock.abi() == 0 and _yama_scope() < 1:
        raise UnsupportedKernel(
            "neither Landlock (Linux 5.13, lsm=landlock) nor Yama ptrace_scope >= 1 is "
            "available, so a sandboxed process could write into the memory of this user's "
            "other processes")


def _yama_scope() -> int:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as scope:
            return int(scope.read())
    except (OSError, ValueError):
        return 0


def _missing(call: str, err: int | None) -> str:
    if err == errno.ENOSYS:
        return f"the kernel lacks {call} (Linux 5.6 or later is needed)"
    return f"{call} is refused here ({os.strerror(err or errno.EPERM)}); a container runtime must allow it"

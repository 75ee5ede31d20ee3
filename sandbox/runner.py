"""Run one command in the sandbox, in this process: check the kernel, filter, spawn,
supervise."""

from __future__ import annotations

import errno
import os
from typing import NamedTuple
from collections.abc import Callable, Mapping, Sequence

from . import _ptrace, executables, filter, handover, landlock, procfs, signals, spawn
from .audit import AuditLog, Sink
from .domain import Domain
from .errors import Malformed, UnsupportedKernel, UsageError
from .filter import Supervision
from .profile import Profile
from .rules import Call
from .spawn import Inheritance
from .supervisor import Supervisor
from .tracee import O_PATH, Credentials, credentials, openat2

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


class Prepared(NamedTuple):
    """The start-up work for a profile: the filter, the descriptor the tracees hand
    theirs over on where pidfd_getfd is refused (None where it is not), and whether
    tracing was checked once for all runs (`checked`)."""

    program: bytes
    channel: int | None
    tracing_checked: bool = False


def prepare(profile: Profile, watch_destinations: bool = False) -> Prepared:
    """The start-up work: check the kernel, build the filter (which a warm sandbox does
    once for many runs)."""
    pidfd_getfd = check_kernel()
    channel = None if pidfd_getfd else handover.number()
    supervision = Supervision(credentials=credentials("self").privileged,
                              destinations=watch_destinations, channel=channel)
    return Prepared(filter.build(profile, supervision), channel)


def checked(prepared: Prepared) -> Prepared:
    """`prepared`, with the kernel's tracing checked (spawn.check_tracing) for the many
    runs of a warm sandbox."""
    spawn.check_tracing(prepared.program)
    return prepared._replace(tracing_checked=True)


class Ahead(NamedTuple):
    """A run's start-up that needs nothing of its command (which a warm sandbox does
    before its run comes): the child forked, seized and waiting for the command, the
    handover channel it inherited, the supervisor's own credentials, and the Landlock
    domain where it was built too (`domain_built`)."""

    pending: spawn.Pending
    channel: handover.Channel | None
    ours: Credentials
    domain: Domain | None = None
    domain_built: bool = False


def ahead(profile: Profile, prepared: Prepared, inheritance: Inheritance = Inheritance(),
          build_domain: bool = False) -> Ahead:
    """Fork the command's first process ahead of its command; with `build_domain`, build
    its Landlock domain too where that needs nothing of the command either (no
    [filesystem] paths to find from its working directory). From here this process
    supervises it: it must not end without `supervise` (the child dies with it)."""
    if prepared.channel is not None and prepared.channel in inheritance.descriptors():
        raise UsageError(f"descriptor {prepared.channel} is the one sockbox hands descriptors "
                         "over on here (pidfd_getfd is refused): it cannot be kept")
    domain_built = build_domain and profile.filesystem is None
    domain = _domain(profile, None) if domain_built else None
    channel = handover.Channel() if prepared.channel is not None else None
    ours = credentials("self")
    # Orphans of the command are reparented to us, so that we can reap them.
    spawn.prctl(spawn.PR_SET_CHILD_SUBREAPER, 1)
    signals.block()
    try:
        pending = spawn.fork_traced(prepared.program, inheritance, profile.process, channel,
                                    clock_fixed=profile.uses_exe, probe=not prepared.tracing_checked)
    except BaseException:
        for made in (domain, channel):
            if made is not None:
                made.close()
        raise
    # Processes in the sandbox run as our user; they must not be able to read or write
    # the supervisor's memory, which being non-dumpable forbids. Only after the fork:
    # the child would inherit it, and an unprivileged tracer cannot seize a
    # non-dumpable process.
    spawn.prctl(PR_SET_DUMPABLE, 0)
    return Ahead(pending, channel, ours, domain, domain_built)


def _domain(profile: Profile, cwd: str | None) -> Domain | None:
    return Domain.for_profile(profile.filesystem, profile.process, profile.source, cwd,
                              procfs_unwritable=profile.uses_exe)


def abandon(started: Ahead) -> None:
    """End a child forked ahead whose run never came."""
    spawn.abandon(started.pending)
    if started.channel is not None:
        started.channel.close()
    if started.domain is not None:
        started.domain.close()


def supervise(profile: Profile, argv: Sequence[str], sinks: Sequence[Sink] = (),
              env: Mapping[str, str] | None = None, cwd: str | None = None,
              inheritance: Inheritance = Inheritance(),
              observers: Sequence[Callable[[Call], None]] = (), watch_destinations: bool = False,
              prepared: Prepared | None = None, forward_signals: bool = True,
              started: Ahead | None = None, stdio: tuple[int, int, int] | None = None) -> int:
    """`run`, with `prepared`: what `prepare` did for this profile and
    `watch_destinations`; `started`: what `ahead` did with it and `inheritance`;
    `stdio`: the command's 0, 1 and 2 where they are not those `started` inherited;
    `forward_signals`: pass on those sent to this process (the CLI's; the Python API's
    supervisors have no one to). A death by signal is a signals.DiedBySignal status."""
    if prepared is None:
        prepared = prepare(profile, watch_destinations)
    vouching = (executables.Vouching(executables.settings_of(os.environ if env is None else env))
                if profile.uses_exe else None)
    domain = started.domain if started is not None and started.domain_built else _domain(profile, cwd)
    channel = None
    try:
        if started is None:
            started = ahead(profile, prepared, inheritance)
        channel = started.channel
        told = spawn.tell(started.pending, argv, env, cwd, domain, stdio)
    finally:
        if domain is not None:
            domain.close()
        if channel is not None:
            channel.placed()
    # Made while the child execs (on another CPU), and dropped if it fails to.
    supervisor = Supervisor(profile, AuditLog(sinks), started.pending.pid, started.ours,
                            observers=observers, watch_destinations=watch_destinations,
                            domain=domain, channel=channel, vouching=vouching)
    child = spawn.wait_for_exec(started.pending, told)
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


def check_kernel() -> bool:
    """Refuse to start where the kernel lacks what the defences rely on; and say whether
    pidfd_getfd works (where it does not, tracees hand descriptors over themselves)."""
    tracer = int(procfs.status("self").get("TracerPid", "0"))
    if tracer:
        raise UnsupportedKernel(f"sockbox is itself traced (by process {tracer}: another sockbox, "
                                "a debugger or strace), and a traced process cannot trace its "
                                "command: sandboxes do not nest")
    filter.check_kernel()
    try:
        pidfd = _ptrace.pidfd_open(os.getpid())
        try:
            os.close(_ptrace.pidfd_getfd(pidfd, pidfd))
            pidfd_getfd = True
        except OSError:  # refused (EPERM: Docker's, containerd's seccomp), or missing (ENOSYS)
            pidfd_getfd = False
        finally:
            os.close(pidfd)
    except OSError as error:
        raise UnsupportedKernel(_missing("pidfd_open", error.errno)) from None
    try:
        os.close(openat2(-100, b"/", O_PATH, 0))  # AT_FDCWD
    except Malformed as error:
        raise UnsupportedKernel(_missing("openat2", error.errno)) from None
    if landlock.abi() == 0 and _yama_scope() < 1:
        raise UnsupportedKernel(
            "neither Landlock (Linux 5.13, lsm=landlock) nor Yama ptrace_scope >= 1 is "
            "available, so a sandboxed process could write into the memory of this user's "
            "other processes")
    return pidfd_getfd


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

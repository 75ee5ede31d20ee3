"""Run one command in the sandbox, in this process: filter, spawn, supervise."""

from __future__ import annotations

from typing import Mapping, Sequence

from . import filter, signals, spawn
from .audit import AuditLog, Sink
from .profile import Profile
from .supervisor import Supervisor

PR_SET_DUMPABLE = 4


def run(profile: Profile, argv: Sequence[str], sinks: Sequence[Sink] = (),
        env: Mapping[str, str] | None = None, cwd: str | None = None,
        keep_fds: Sequence[int] = ()) -> int:
    """Run `argv` under `profile`; return the status `sockbox run` exits with.

    Raises SandboxError (nothing was run) or spawn.ExecFailed (status 126/127).
    """
    filter.check_kernel()
    program = filter.build(profile)
    # Orphans of the command are reparented to us, so that we can reap them.
    spawn.prctl(spawn.PR_SET_CHILD_SUBREAPER, 1)
    signals.block()
    child = spawn.spawn(argv, program, env, cwd, keep_fds)
    # Processes in the sandbox run as our user; they must not be able to read or write
    # the supervisor's memory, which being non-dumpable forbids. Only after the fork:
    # the child would inherit it, and an unprivileged tracer cannot seize a
    # non-dumpable process.
    spawn.prctl(PR_SET_DUMPABLE, 0)
    supervisor = Supervisor(profile, AuditLog(sinks), child.pid)
    signals.forward(child.pid, lambda: supervisor.tracees)
    return supervisor.run()

"""Start the command: fork; the child waits to be seized, sets NO_NEW_PRIVS, loads the
filter and execs. What fails in the child travels back over a close-on-exec pipe."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from dataclasses import dataclass
from typing import Mapping, Sequence

from ptrace import PtraceError

from . import _ptrace, filter
from .errors import SandboxError

PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

# Python ignores these at startup; a command must start with the defaults.
_RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)

_libc = ctypes.CDLL(None, use_errno=True)


class ExecFailed(SandboxError):
    """The command could not be executed; `status` is 126 or 127."""

    def __init__(self, command: str, err: int):
        self.status = 127 if err in (errno.ENOENT, errno.ENOTDIR) else 126
        reason = "command not found" if self.status == 127 else os.strerror(err)
        super().__init__(f"{command}: {reason}")


@dataclass(frozen=True)
class Child:
    pid: int


def prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def spawn(argv: Sequence[str], program: bytes, env: Mapping[str, str] | None = None,
          cwd: str | None = None, keep_fds: Sequence[int] = ()) -> Child:
    """Fork the command under ptrace and the filter. Returns once it has exec'd (its
    exec event is then waiting for the supervisor); raises ExecFailed otherwise."""
    go_read, go_write = os.pipe()
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the pipe
        _child(argv, program, env, cwd, keep_fds, go_read, go_write, report_read, report_write)
    os.close(go_read)
    os.close(report_write)
    try:
        _ptrace.seize(pid)
    except PtraceError as error:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (go_write, report_read):
            os.close(fd)
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SandboxError(f"cannot trace the command (ptrace: {reason}); "
                           "a container must allow ptrace of one's own children") from None
    os.write(go_write, b"g")
    os.close(go_write)
    with os.fdopen(report_read, "rb") as report:
        failure = report.read()
    if failure:
        os.waitpid(pid, _ptrace.WALL)
        stage, _, number = failure.decode().partition(":")
        if stage == "exec":
            raise ExecFailed(argv[0], int(number))
        raise SandboxError(f"cannot start the sandbox: {stage} failed: {os.strerror(int(number))}")
    return Child(pid)


def _child(argv: Sequence[str], program: bytes, env: Mapping[str, str] | None, cwd: str | None,
           keep_fds: Sequence[int], go_read: int, go_write: int, report_read: int,
           report_write: int) -> None:
    stage = "startup"
    try:
        os.close(go_write)
        os.close(report_read)
        os.read(go_read, 1)  # the parent has seized us (or given up)
        os.close(go_read)
        stage = "signals"
        for signum in _RESTORED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        stage = "chdir"
        if cwd is not None:
            os.chdir(cwd)
        _close_fds_except({0, 1, 2, report_write, *keep_fds})
        stage = "no_new_privs"
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        stage = "seccomp"
        filter.install(program)
        stage = "exec"
        if env is None:
            os.execvp(argv[0], list(argv))
        os.execvpe(argv[0], list(argv), dict(env))
    except OSError as error:
        os.write(report_write, f"{stage}:{error.errno or errno.EINVAL}".encode())
    except BaseException:
        os.write(report_write, f"{stage}:{errno.EINVAL}".encode())
    os._exit(127)


def _close_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)

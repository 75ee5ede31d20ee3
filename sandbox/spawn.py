"""Start the command: fork; the child waits to be seized, drops CAP_SYS_PTRACE, sets
NO_NEW_PRIVS, loads the filter and execs. What fails in the child travels back over a
close-on-exec pipe."""

from __future__ import annotations

import errno
import os
import resource
import signal
from dataclasses import dataclass
from collections.abc import Mapping, Sequence

from . import _ptrace, filter, libc
from .confine import Process
from .domain import Domain
from .errors import (STATUS_CANNOT_EXECUTE, STATUS_NOT_FOUND, ExecFailed, SandboxError,
                     UnsupportedKernel)
from .handover import Channel

PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER = 47, 3
LISTEN_FDS_START = 3  # systemd's socket activation hands descriptors over from 3

# Python ignores these at startup; a command must start with the defaults.
_RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)



@dataclass(frozen=True)
class Child:
    """The command's first process, seized and running toward its exec."""

    pid: int


@dataclass(frozen=True)
class Inheritance:
    """Descriptors the command keeps besides 0, 1 and 2: those asked for by number, and
    `listen_fds` socket-activated ones from 3 on, whose LISTEN_PID becomes the command's."""

    keep_fds: tuple[int, ...] = ()
    listen_fds: int = 0

    def descriptors(self) -> set[int]:
        return {*self.keep_fds, *range(LISTEN_FDS_START, LISTEN_FDS_START + self.listen_fds)}


def prctl(option: int, value: int, arg3: int = 0) -> None:
    if libc.libc.prctl(option, value, arg3, 0, 0) != 0:
        raise libc.last_error("prctl")


def spawn(argv: Sequence[str], program: bytes, env: Mapping[str, str] | None = None,
          cwd: str | None = None, inheritance: Inheritance = Inheritance(),
          domain: Domain | None = None, limits: Process = Process(),
          channel: Channel | None = None, clock_fixed: bool = False) -> Child:
    """Fork the command under ptrace and the filter, in `domain`, with the
    per-process `limits`, and unable to set the clock where `clock_fixed` (which the
    change times executables.py trusts come from). Returns once it has exec'd (its
    exec event is then waiting for the supervisor); raises ExecFailed otherwise."""
    go_read, go_write = os.pipe()
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the pipe
        _child(argv, program, env, cwd, inheritance, domain, limits, channel, clock_fixed, go_read,
               go_write, report_read, report_write)
    os.close(go_read)
    os.close(report_write)
    try:
        _seize_and_probe(pid)
    except SandboxError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, _ptrace.WALL)
        for fd in (go_write, report_read):
            os.close(fd)
        raise
    os.write(go_write, b"g")
    os.close(go_write)
    with os.fdopen(report_read, "rb") as report:
        failure = report.read()
    if failure:
        os.waitpid(pid, _ptrace.WALL)
        stage, _, detail = os.fsdecode(failure).partition(":")
        if stage == "exec":
            status, _, message = detail.partition(":")
            raise ExecFailed(message, int(status))
        raise SandboxError(f"cannot start the sandbox: {stage} failed: {os.strerror(int(detail))}")
    return Child(pid)


def _seize_and_probe(pid: int) -> None:
    """Seize the child while it waits on the pipe, and check on it, before it runs
    anything, that the kernel answers PTRACE_GET_SYSCALL_INFO (Linux 5.3)."""
    try:
        _ptrace.seize(pid)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SandboxError(f"cannot trace the command (ptrace: {reason}); "
                           "a container must allow ptrace of one's own children") from None
    _ptrace.interrupt(pid)
    os.waitpid(pid, _ptrace.WALL)
    try:
        _ptrace.syscall_info(pid)
    except OSError as error:
        raise UnsupportedKernel(f"the kernel lacks PTRACE_GET_SYSCALL_INFO (Linux 5.3): "
                                f"{os.strerror(error.errno or errno.EIO)}") from None
    _ptrace.cont(pid)


def _child(argv: Sequence[str], program: bytes, env: Mapping[str, str] | None, cwd: str | None,
           inheritance: Inheritance, domain: Domain | None, limits: Process,
           channel: Channel | None, clock_fixed: bool, go_read: int, go_write: int,
           report_read: int, report_write: int) -> None:
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
        ruleset = {domain.ruleset} if domain is not None else set()
        if channel is not None:
            channel.place()
        kept = {channel.number} if channel is not None else set()
        _close_fds_except({0, 1, 2, report_write, *ruleset, *kept, *inheritance.descriptors()})
        environment = dict(os.environ if env is None else env)
        if inheritance.listen_fds:
            environment["LISTEN_PID"] = str(os.getpid())
        stage = "capabilities"
        # Root could raise its limits again, were CAP_SYS_RESOURCE left to it.
        _drop_capabilities(libc.CAP_SYS_PTRACE, *((libc.CAP_SYS_RESOURCE,) if limits.limits else ()),
                           *((libc.CAP_SYS_TIME,) if clock_fixed else ()))
        stage = "no_new_privs"
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        stage = "landlock"
        if domain is not None:
            domain.enter()
        stage = "seccomp"
        filter.install(program)
        stage = "limits"
        _set_limits(limits)
        stage = "exec"
        _exec(argv, environment)
    except ExecFailed as failure:
        os.write(report_write, os.fsencode(f"exec:{failure.status}:{failure}"))
    except OSError as error:
        os.write(report_write, f"{stage}:{error.errno or errno.EINVAL}".encode())
    except BaseException:
        os.write(report_write, f"{stage}:{errno.EINVAL}".encode())
    os._exit(127)


def _exec(argv: Sequence[str], environment: dict[str, str]) -> None:
    """Become the command, found on PATH as execvp finds it; or raise ExecFailed."""
    command = argv[0]
    if not command:
        raise ExecFailed(": command not found", STATUS_NOT_FOUND)
    try:
        os.execvpe(command, list(argv), environment)
    except (OSError, ValueError) as error:  # ValueError: a NUL in an argument
        err = error.errno if isinstance(error, OSError) and error.errno else errno.EINVAL
        raise _exec_failed(command, err, environment.get("PATH")) from None


def _exec_failed(command: str, err: int, search_path: str | None) -> ExecFailed:
    """What bash says where exec fails: which file failed (the first on PATH that exists
    for a bare name), then why, looking at the file where the errno alone misleads."""
    program = command
    if "/" not in command:
        found = [path for directory in (search_path or os.defpath).split(os.pathsep)
                 if os.path.isfile(path := os.path.join(directory or ".", command))]
        if not found:
            return ExecFailed(f"{command}: command not found", STATUS_NOT_FOUND)
        program = found[0]
    if err == errno.ENOENT:
        if not os.path.exists(program):
            return ExecFailed(f"{program}: No such file or directory", STATUS_NOT_FOUND)
        # It exists, so what is missing is what the kernel would load to run it.
        interpreter = _interpreter(program)
        if interpreter is not None:
            return ExecFailed(f"{program}: {interpreter}: bad interpreter: No such file or directory",
                              STATUS_CANNOT_EXECUTE)
        return ExecFailed(f"{program}: cannot execute: required file not found", STATUS_CANNOT_EXECUTE)
    if os.path.isdir(program):
        return ExecFailed(f"{program}: Is a directory", STATUS_CANNOT_EXECUTE)
    return ExecFailed(f"{program}: {os.strerror(err)}", STATUS_CANNOT_EXECUTE)


def _interpreter(program: str) -> str | None:
    """The interpreter a script's `#!` line names, if it has one."""
    try:
        with open(program, "rb") as script:
            head = script.read(256)
    except OSError:
        return None
    words = head[2:].split(b"\n", 1)[0].split() if head.startswith(b"#!") else []
    return os.fsdecode(words[0]) if words else None


def _drop_capabilities(*capabilities: int) -> None:
    """Each capability leaves every set, for good. CAP_SYS_PTRACE always: a privileged
    tracee must not get past the supervisor being non-dumpable (to ptrace it or write
    its memory)."""
    for capability in capabilities:
        try:
            prctl(PR_CAPBSET_DROP, capability)
        except OSError as error:
            if error.errno != errno.EPERM:  # EPERM: not privileged, nothing to drop
                raise
        try:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, capability)
        except OSError as error:
            if error.errno != errno.EINVAL:  # EINVAL: ambient capabilities unsupported
                raise
    sets = libc.capabilities()
    for index in range(3):  # effective, permitted, inheritable
        for capability in capabilities:  # all below 32: the first word of each set
            sets[index] &= ~(1 << capability)
    libc.set_capabilities(sets)


# RLIMIT_CPU's soft limit sends SIGXCPU, which ends a process unless it is caught;
# the hard limit, a second later, SIGKILL.
_RLIMITS = {"cpu": (resource.RLIMIT_CPU, 1), "memory": (resource.RLIMIT_AS, 0),
            "open_files": (resource.RLIMIT_NOFILE, 0)}


def _set_limits(limits: Process) -> None:
    """Lower each limit the profile sets (never raise one: a lower limit in force
    already keeps the profile's)."""
    for key, value in limits.limits.items():
        which, grace = _RLIMITS[key]
        soft, hard = resource.getrlimit(which)
        resource.setrlimit(which, (_lower(soft, value), _lower(hard, value + grace)))


def _lower(current: int, value: int) -> int:
    return value if current == resource.RLIM_INFINITY else min(current, value)


def _close_fds_except(keep: set[int]) -> None:
    low = 0
    for fd in sorted(keep):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)

"""Start the command: fork; the child drops CAP_SYS_PTRACE, sets NO_NEW_PRIVS, waits to
be seized and told its command, enters its Landlock domain, loads the filter and execs.
What fails in the child travels back over a close-on-exec pipe.

Forking, seizing and checking on the child (`fork_traced`), and the child's first
steps, need nothing of the command, so a warm sandbox does them ahead of its run; the
command itself (its words, environment, working directory, stdio and Landlock domain)
follows over a socket (`tell`)."""

from __future__ import annotations

import errno
import marshal
import os
import resource
import signal
import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple
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


class Pending(NamedTuple):
    """A child forked, seized and checked on, waiting on `link` for its command; its
    failures to start come on `report`."""

    pid: int
    link: socket.socket
    report: int


# The header of the command's message: the length of what follows.
_HEADER = struct.Struct("=Q")
# The descriptors that come with it: stdin, stdout, stderr (where given), the ruleset.
_MAX_FDS = 4


def fork_traced(program: bytes, inheritance: Inheritance = Inheritance(), limits: Process = Process(),
                channel: Channel | None = None, clock_fixed: bool = False, probe: bool = True) -> Pending:
    """Fork the command's first process under ptrace, to run under the filter
    `program` with the per-process `limits`, and unable to set the clock where
    `clock_fixed` (which the change times executables.py trusts come from). It inherits
    `inheritance`'s descriptors and `channel` now, and dies with this process (the
    kernel's PTRACE_O_EXITKILL) if `tell` never comes. `probe`: check on it that the
    kernel answers PTRACE_GET_SYSCALL_INFO (where `check_tracing` has not)."""
    link, theirs = socket.socketpair()
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, reported through the pipe
        link.close()
        _child(theirs, program, inheritance, limits, channel, clock_fixed, report_read, report_write)
    theirs.close()
    os.close(report_write)
    try:
        _seize_and_probe(pid, probe)
    except SandboxError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, _ptrace.WALL)
        link.close()
        os.close(report_read)
        raise
    return Pending(pid, link, report_read)


def abandon(pending: Pending) -> None:
    """End a child that was never told its command."""
    pending.link.close()
    os.close(pending.report)
    os.kill(pending.pid, signal.SIGKILL)
    os.waitpid(pending.pid, _ptrace.WALL)


def check_tracing(program: bytes) -> None:
    """Refuse, as a first spawn would, where this process cannot trace its children as
    sockbox needs: once for the many runs of a warm sandbox, whose spawns then skip the
    probe (the kernel does not change under it)."""
    abandon(fork_traced(program))


def tell(pending: Pending, argv: Sequence[str], env: Mapping[str, str] | None = None,
         cwd: str | None = None, domain: Domain | None = None,
         stdio: tuple[int, int, int] | None = None) -> bool:
    """Hand the waiting child its command, to run in `domain`, with `stdio` in place of
    the 0, 1 and 2 it inherited where given (only where this process's 0, 1 and 2 are
    open, so that the child receives them above 2). False where the child was gone."""
    payload = marshal.dumps((list(argv), None if env is None else dict(env), cwd, stdio is not None,
                             domain is not None))
    fds = [*(stdio or ()), *((domain.ruleset,) if domain is not None else ())]
    try:
        socket.send_fds(pending.link, [_HEADER.pack(len(payload))], fds)
        pending.link.sendall(payload)
        return True
    except OSError:  # its report may say why
        return False
    finally:
        pending.link.close()


def wait_for_exec(pending: Pending, told: bool) -> Child:
    """Once the child that was `told` its command has exec'd (its exec event is then
    waiting for the supervisor); raises ExecFailed, or SandboxError where it failed
    before."""
    pid = pending.pid
    with os.fdopen(pending.report, "rb") as report:
        failure = report.read()
    if failure or not told:
        os.waitpid(pid, _ptrace.WALL)
        stage, _, detail = os.fsdecode(failure).partition(":")
        if stage == "exec":
            status, _, message = detail.partition(":")
            raise ExecFailed(message, int(status))
        if not failure:
            raise SandboxError("cannot start the sandbox: its first process died before its command")
        raise SandboxError(f"cannot start the sandbox: {stage} failed: {os.strerror(int(detail))}")
    return Child(pid)


def _seize_and_probe(pid: int, probe: bool) -> None:
    """Seize the child before it has its command, and with `probe` check on it that the
    kernel answers PTRACE_GET_SYSCALL_INFO (Linux 5.3)."""
    try:
        _ptrace.seize(pid)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise SandboxError(f"cannot trace the command (ptrace: {reason}); "
                           "a container must allow ptrace of one's own children") from None
    if not probe:
        return
    _ptrace.interrupt(pid)
    os.waitpid(pid, _ptrace.WALL)
    try:
        _ptrace.syscall_info(pid)
    except OSError as error:
        raise UnsupportedKernel(f"the kernel lacks PTRACE_GET_SYSCALL_INFO (Linux 5.3): "
                                f"{os.strerror(error.errno or errno.EIO)}") from None
    _ptrace.cont(pid)


def _child(link: socket.socket, program: bytes, inheritance: Inheritance, limits: Process,
           channel: Channel | None, clock_fixed: bool, report_read: int, report_write: int) -> None:
    stage = "startup"
    try:
        os.close(report_read)
        # What needs nothing of the command first (a warm sandbox's child does it before
        # its run comes). Root could raise its limits again, were CAP_SYS_RESOURCE left to it.
        stage = "capabilities"
        _drop_capabilities(libc.CAP_SYS_PTRACE, *((libc.CAP_SYS_RESOURCE,) if limits.limits else ()),
                           *((libc.CAP_SYS_TIME,) if clock_fixed else ()))
        stage = "no_new_privs"
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        stage = "startup"
        # The parent has seized us and tells the command (or has given up: EOF).
        header, fds, _, _ = socket.recv_fds(link, _HEADER.size, _MAX_FDS)
        header += _receive(link, _HEADER.size - len(header))
        argv, env, cwd, has_stdio, has_domain = marshal.loads(_receive(link, _HEADER.unpack(header)[0]))
        link.close()
        if has_stdio:
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target)
                os.close(fd)
        domain = Domain(fds[-1], None) if has_domain else None
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


def _receive(link: socket.socket, length: int) -> bytes:
    """Exactly `length` bytes from the parent; EOFError where it gave up before."""
    data = b""
    while len(data) < length:
        chunk = link.recv(length - len(data))
        if not chunk:
            raise EOFError("the parent gave up")
        data += chunk
    return data


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

"""What both parsers of the command line hand over to: `sockbox run`'s options, checked
in one place (so that `entry`'s fast parser and the typer app in `cli` accept and refuse
alike), the run they start, and what ends sockbox: an error as one line and its status.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from . import signals
from .errors import STATUS_SANDBOX_ERROR, ProfileError, SandboxError, UsageError
from .signals import DiedBySignal

LOG_FORMATS = ("json", "text")
RUN_HELP = "sockbox run --help"


@dataclass(frozen=True)
class RunOptions:
    """`sockbox run`'s command line, parsed."""

    command: tuple[str, ...]
    profile: str = "offline"
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    log: str | None = None
    log_format: str = "json"
    quiet: bool = False
    keep_fd: tuple[int, ...] = ()
    # [filesystem] paths added, and [process] values in place of the profile's (as typed)
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    signals: str | None = None
    cpu: str | None = None
    memory: str | None = None
    processes: str | None = None
    open_files: str | None = None
    wait_for_hosts: float | None = None  # in place of the profile's

    @property
    def process_values(self) -> dict[str, str | None]:
        return {"signals": self.signals, "cpu": self.cpu, "memory": self.memory,
                "processes": self.processes, "open_files": self.open_files}


def run_options(command: Sequence[str], profile: str = "offline", allow: Sequence[str] = (),
                deny: Sequence[str] = (), log: str | None = None, log_format: str | None = None,
                quiet: bool = False, keep_fd: Sequence[str] = (), read: Sequence[str] = (),
                write: Sequence[str] = (), signals: str | None = None, cpu: str | None = None,
                memory: str | None = None, processes: str | None = None,
                open_files: str | None = None, wait_for_hosts: str | None = None) -> RunOptions:
    """RunOptions from the words of a command line; UsageError for a value no run takes
    (the [filesystem] and [process] values are checked with the profile, by confine)."""
    if log_format is not None and log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format {log_format}: not one of {', '.join(LOG_FORMATS)} "
                         f"(see {RUN_HELP})")
    if log_format is not None and log is None:
        raise UsageError(f"--log-format applies to --log FILE; without --log, denials are "
                         f"reported on stderr as text (see {RUN_HELP})")
    return RunOptions(tuple(command), profile, tuple(allow), tuple(deny), log,
                      log_format or "json", quiet, tuple(descriptor(value) for value in keep_fd),
                      tuple(read), tuple(write), signals, cpu, memory, processes, open_files,
                      None if wait_for_hosts is None else seconds(wait_for_hosts))


def seconds(value: str) -> float:
    """--wait-for-hosts's value: as the profile's wait_for_hosts takes it."""
    from .profile import HOST_WAITS, is_host_wait

    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not is_host_wait(number):
        raise UsageError(f"--wait-for-hosts {value}: not {HOST_WAITS} (see {RUN_HELP})")
    return number


# The largest descriptor number: file descriptors are C ints.
_MAX_FD = 2**31 - 1


def descriptor(value: str, option: str = "--keep-fd", help_page: str = RUN_HELP) -> int:
    """A descriptor number as written after `option`: decimal digits, 0 or more."""
    if not (value.isascii() and value.isdigit()) or int(value) > _MAX_FD:
        raise UsageError(f"{option} {value}: not a descriptor number: 0, 1, 2, ... (see {help_page})")
    return int(value)


def check_open(keep_fd: Sequence[int], option: str = "--keep-fd") -> None:
    """Each descriptor to pass on is one of ours: one that is not would reach the command
    as no descriptor at all."""
    for fd in keep_fd:
        try:
            os.fstat(fd)
        except OSError as error:
            raise UsageError(f"{option} {fd}: {error.strerror} (it is not open)") from None


def start(options: RunOptions) -> int:
    """Run the command as `options` say; the status `sockbox run` exits with."""
    from . import confine, runner
    from .audit import Sink
    from .profile import load_profile

    profile = load_profile(options.profile).with_inline_rules(options.allow, options.deny)
    filesystem, process = confine.with_command_line(profile.filesystem, profile.process, options.read,
                                                    options.write, options.process_values)
    profile = dataclasses.replace(profile, filesystem=filesystem, process=process)
    if options.wait_for_hosts is not None:
        profile = dataclasses.replace(profile, wait_for_hosts=options.wait_for_hosts)
    check_open(options.keep_fd)
    sinks = []
    if options.log is not None:
        sinks.append(Sink(_open_log(options.log), options.log_format))
    elif not options.quiet:
        sinks.append(Sink(sys.stderr, "text", denials_only=True))
    try:
        resolved = profile.with_hosts_resolved(_sleep_unless_signalled,
                                               None if options.quiet else _say)
    except _Signalled as signalled:
        return DiedBySignal(signalled.signum)
    return runner.run(resolved, options.command, sinks,
                      inheritance=runner.inheritance_from(options.keep_fd, os.environ))


class _Signalled(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def _sleep_unless_signalled(duration: float) -> None:
    """Sleep, but end as the command would have at a signal meant for it: `docker stop`
    while a late resolver is waited for stops sockbox now (PID 1 has no default action
    for SIGTERM)."""
    signals.block()
    received = signal.sigtimedwait(signals.FORWARDED, duration)
    if received is not None:
        raise _Signalled(received.si_signo)


def _say(message: str) -> None:
    print(f"sockbox: {message}", file=sys.stderr, flush=True)


def _open_log(path: str) -> IO[str]:
    if path == "-":
        return sys.stderr
    try:
        return open(path, "w", buffering=1)
    except OSError as error:
        raise UsageError(f"--log {path}: {error.strerror}") from None


def failed(error: Exception) -> int:
    """One line for what stopped sockbox, and its status: 126 or 127 for a command that
    could not be executed, 125 for the rest."""
    if isinstance(error, ProfileError):
        more = len(error.errors) - 1
        suffix = f" (and {more} more: sockbox check {error.file})" if more > 0 else ""
        return fail(error.errors[0] + suffix)
    if isinstance(error, SandboxError):
        if os.environ.get("SOCKBOX_DEBUG") and error.__cause__ is not None:
            raise error
        return fail(str(error), error.status)
    if os.environ.get("SOCKBOX_DEBUG"):  # a bug of ours: still one line, the trace on request
        raise error
    return fail(f"internal error: {type(error).__name__}: {error} (SOCKBOX_DEBUG=1 shows where)")


def fail(message: str, status: int = STATUS_SANDBOX_ERROR) -> int:
    print(f"sockbox: {message}", file=sys.stderr)
    return status

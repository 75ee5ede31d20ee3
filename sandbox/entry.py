"""The `sockbox` command's entry point (the console script and `python -m sandbox`).

Every command a sandbox wraps pays for the sandbox's start, and building the typer app
costs more than all the rest of it (typer coerces each option through pydantic). So a
plain `sockbox run` is parsed here, by a parser that knows only `run`'s options and
their plain spellings; everything else (help, completion, other commands, clustered
short options, a value it would have to convert) goes to the typer app in `cli`, which
stays the one definition of the interface. tests/test_cli.py checks that the two parse
every accepted command line alike.

This is also the one place that turns errors into exit statuses: a SandboxError is one
line on stderr and status 125, a command that cannot be executed 126 or 127.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from typing import IO

from .errors import ProfileError, SandboxError, UsageError
from .signals import DiedBySignal, end_by

STATUS_SANDBOX_ERROR = 125
LOG_FORMATS = ("json", "text")


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

    @property
    def process_values(self) -> dict[str, str | None]:
        return {"signals": self.signals, "cpu": self.cpu, "memory": self.memory,
                "processes": self.processes, "open_files": self.open_files}


# Options that take a value, by every plain spelling.
_VALUED = {"-p": "profile", "--profile": "profile", "--allow": "allow", "--deny": "deny",
           "--log": "log", "--log-format": "log_format", "--keep-fd": "keep_fd",
           "--read": "read", "--write": "write", "--signals": "signals", "--cpu": "cpu",
           "--memory": "memory", "--processes": "processes", "--open-files": "open_files"}
_PROCESS_VALUED = ("signals", "cpu", "memory", "processes", "open_files")


def parse_run(args: list[str]) -> RunOptions | None:
    """`run`'s options from a command line, or None where the typer app must parse it."""
    if not args or args[0] != "run":
        return None
    profile, log, log_format, quiet = "offline", None, "json", False
    allow: list[str] = []
    deny: list[str] = []
    keep_fd: list[int] = []
    paths: dict[str, list[str]] = {"read": [], "write": []}
    process: dict[str, str] = {}
    rest = args[1:]
    while rest and rest[0].startswith("-") and rest[0] != "-":
        token = rest.pop(0)
        if token == "--":
            break
        if token in ("-q", "--quiet"):
            quiet = True
            continue
        if token.startswith("-p") and len(token) > 2 and token[2] != "=":
            name, value = "-p", token[2:]  # -pweb
        else:
            name, has_value, value = token.partition("=")
            if name == "-p" and has_value:
                return None  # typer reads "-p=web" as the profile "=web"
            if not has_value:
                if not rest:
                    return None
                value = rest.pop(0)
        option = _VALUED.get(name)
        if option == "profile":
            profile = value
        elif option == "allow":
            allow.append(value)
        elif option == "deny":
            deny.append(value)
        elif option == "log":
            log = value
        elif option == "log_format" and value in LOG_FORMATS:
            log_format = value
        elif option == "keep_fd" and value.isascii() and value.isdigit():
            keep_fd.append(int(value))
        elif option in paths:
            paths[option].append(value)
        elif option in _PROCESS_VALUED:
            process[option] = value
        else:
            return None
    if not rest:
        return None
    return RunOptions(tuple(rest), profile, tuple(allow), tuple(deny), log, log_format, quiet,
                      tuple(keep_fd), tuple(paths["read"]), tuple(paths["write"]), **process)


def start(options: RunOptions) -> int:
    """Run the command as `options` say; the status `sockbox run` exits with."""
    from . import confine, runner
    from .audit import Sink
    from .profile import load_profile
    from .spawn import ExecFailed

    profile = load_profile(options.profile).with_inline_rules(options.allow, options.deny)
    filesystem, process = confine.with_command_line(profile.filesystem, profile.process, options.read,
                                                    options.write, options.process_values)
    profile = dataclasses.replace(profile, filesystem=filesystem, process=process)
    sinks = []
    if options.log is not None:
        sinks.append(Sink(_open_log(options.log), options.log_format))
    elif not options.quiet:
        sinks.append(Sink(sys.stderr, "text", denials_only=True))
    try:
        return runner.run(profile.with_hosts_resolved(), options.command, sinks,
                          inheritance=runner.inheritance_from(options.keep_fd, os.environ))
    except ExecFailed as error:
        print(f"sockbox: {error}", file=sys.stderr)
        return error.status


def _open_log(path: str) -> IO[str]:
    if path == "-":
        return sys.stderr
    try:
        return open(path, "w", buffering=1)
    except OSError as error:
        raise UsageError(f"--log {path}: {error.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_run(args)
        if options is None:
            from . import cli
            return cli.main(args)
        return start(options)
    except Exception as error:
        return failed(error)
    except KeyboardInterrupt:
        return fail("aborted")


def console() -> None:
    """The console script and `python -m sandbox`: main(), then out without tearing the
    interpreter down, which would add some ms to every sandbox's end. What sockbox
    writes is flushed first; its audit records were flushed one by one."""
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone, or closed
            pass
    if isinstance(status, DiedBySignal):
        end_by(status.signal)
    os._exit(status)


def failed(error: Exception) -> int:
    """One line for what stopped sockbox, and status 125."""
    if isinstance(error, ProfileError):
        more = len(error.errors) - 1
        suffix = f" (and {more} more: sockbox check {error.file})" if more > 0 else ""
        return fail(error.errors[0] + suffix)
    if isinstance(error, SandboxError):
        if os.environ.get("SOCKBOX_DEBUG") and error.__cause__ is not None:
            raise error
        return fail(str(error))
    if os.environ.get("SOCKBOX_DEBUG"):  # a bug of ours: still one line, the trace on request
        raise error
    return fail(f"internal error: {type(error).__name__}: {error} (SOCKBOX_DEBUG=1 shows where)")


def fail(message: str) -> int:
    print(f"sockbox: {message}", file=sys.stderr)
    return STATUS_SANDBOX_ERROR

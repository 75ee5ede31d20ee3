"""The `sockbox` command's entry point (the console script and `python -m sandbox`).

Every command a sandbox wraps pays for the sandbox's start, and building the typer app
costs more than all the rest of it (typer coerces each option through pydantic). So a
plain `sockbox run` is parsed here, by a parser that knows only `run`'s options and
their plain spellings; everything else (help, completion, other commands, clustered
short options) goes to the typer app in `cli`, which stays the one definition of the
interface. Both hand what they parsed to `launch`, which checks the values for both;
tests/test_cli.py checks that the two treat every line the fast parser takes alike,
refusals included.

Whatever stops sockbox ends here, as `launch.failed` words it: one line on stderr and
status 125, or 126 or 127 for a command that cannot be executed.
"""

from __future__ import annotations

import os
import sys

from .launch import RunOptions, fail, failed, run_options, start
from .signals import DiedBySignal, end_by

# Options that take a value, by every plain spelling.
_VALUED = {"-p": "profile", "--profile": "profile", "--allow": "allow", "--deny": "deny",
           "--log": "log", "--log-format": "log_format", "--keep-fd": "keep_fd",
           "--read": "read", "--write": "write", "--signals": "signals", "--cpu": "cpu",
           "--memory": "memory", "--processes": "processes", "--open-files": "open_files",
           "--wait-for-hosts": "wait_for_hosts"}
# Options whose last value counts.
_SINGLE_VALUED = ("signals", "cpu", "memory", "processes", "open_files", "wait_for_hosts")


def parse_run(args: list[str]) -> RunOptions | None:
    """`run`'s options from a command line, or None where the typer app must parse it.
    Raises UsageError, as the typer app would, for a value no run takes."""
    if not args or args[0] != "run":
        return None
    profile, log, log_format, quiet = "offline", None, None, False
    allow: list[str] = []
    deny: list[str] = []
    keep_fd: list[str] = []
    paths: dict[str, list[str]] = {"read": [], "write": []}
    single: dict[str, str] = {}
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
        elif option == "log_format":
            log_format = value
        elif option == "keep_fd":
            keep_fd.append(value)
        elif option in paths:
            paths[option].append(value)
        elif option in _SINGLE_VALUED:
            single[option] = value
        else:
            return None
    if not rest:
        return None
    return run_options(rest, profile, allow, deny, log, log_format, quiet, keep_fd,
                       paths["read"], paths["write"], **single)


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

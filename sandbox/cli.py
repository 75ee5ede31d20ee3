"""The `sockbox` command: thin typer commands over the library.

The one definition of the command-line interface. A plain `sockbox run` is started by
`entry` without loading this module; errors become exit statuses there too.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__, names
from .entry import LOG_FORMATS, RunOptions, fail, start
from .errors import ProfileError, UsageError
from .profile import Profile, builtin_names, load_profile
from .rules import Action

app = typer.Typer(
    name="sockbox",
    help="Run a program with its socket calls decided by a profile (seccomp-BPF + ptrace).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


LogFormat = enum.Enum("LogFormat", {name.upper(): name for name in LOG_FORMATS}, type=str)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sockbox {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Run a program with its socket calls decided by a profile."""


ProfileOption = Annotated[str, typer.Option(
    "-p", "--profile", metavar="PROFILE",
    help="A profile file, or the name of a built-in profile (see `sockbox profiles`).")]


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[list[str], typer.Argument(
        metavar="[--] CMD [ARG]...", help="The command to run; the first word that is not an option of sockbox starts it.")],
    profile: ProfileOption = "offline",
    allow: Annotated[Optional[list[str]], typer.Option(
        "--allow", metavar="RULE", help="Allow CALL[,CALL...][=TARGET] before the profile's rules, e.g. connect=127.0.0.1:8000.")] = None,
    deny: Annotated[Optional[list[str]], typer.Option(
        "--deny", metavar="RULE", help="Deny CALL[,CALL...][=TARGET] before the profile's rules (and before --allow).")] = None,
    log: Annotated[Optional[str], typer.Option(
        "--log", metavar="FILE", help="Write one audit record per audited decision to FILE ('-' for stderr).")] = None,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="Format of --log.")] = LogFormat.JSON,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not report denials on stderr.")] = False,
    keep_fd: Annotated[Optional[list[int]], typer.Option(
        "--keep-fd", metavar="N", help="Pass descriptor N on to the command (0, 1, 2 always are; "
        "so are systemd's LISTEN_FDS when LISTEN_PID is sockbox's).")] = None,
    read: Annotated[Optional[list[str]], typer.Option(
        "--read", metavar="PATH", help="Also let the command read and execute beneath PATH "
        "(a profile without [filesystem] gets one: nothing else is readable).")] = None,
    write: Annotated[Optional[list[str]], typer.Option(
        "--write", metavar="PATH", help="Also let the command do anything beneath PATH "
        "(a profile without [filesystem] gets one).")] = None,
    signals: Annotated[Optional[str], typer.Option(
        "--signals", metavar="sandbox|any", help="Whom the command may signal, in place of the profile's.")] = None,
    cpu: Annotated[Optional[str], typer.Option(
        "--cpu", metavar="SECONDS", help="CPU seconds per process, in place of the profile's.")] = None,
    memory: Annotated[Optional[str], typer.Option(
        "--memory", metavar="SIZE", help="Address space per process (4096, 512M, 1G), in place of the profile's.")] = None,
    processes: Annotated[Optional[str], typer.Option(
        "--processes", metavar="N", help="Processes and threads alive at once in the sandbox, in place of the profile's.")] = None,
    open_files: Annotated[Optional[str], typer.Option(
        "--open-files", metavar="N", help="Descriptors per process, in place of the profile's.")] = None,
) -> None:
    """Run CMD with its socket calls decided by PROFILE (default: offline)."""
    # Only reached where entry.parse_run left the command line to typer.
    options = RunOptions(tuple(command), profile, tuple(allow or ()), tuple(deny or ()), log,
                         log_format.value, quiet, tuple(keep_fd or ()), tuple(read or ()),
                         tuple(write or ()), signals, cpu, memory, processes, open_files)
    raise typer.Exit(start(options))


@app.command(context_settings={"allow_interspersed_args": False})
def learn(
    command: Annotated[list[str], typer.Argument(
        metavar="CMD [ARG]...", help="The command to run and learn from.")],
    output: Annotated[str, typer.Option(
        "-o", "--output", metavar="FILE", help="Where to write the profile ('-': stdout, after the command ends).")] = "-",
    keep_fd: Annotated[Optional[list[int]], typer.Option(
        "--keep-fd", metavar="N", help="Pass descriptor N on to the command.")] = None,
) -> None:
    """Run CMD with every socket call allowed and recorded, then write the narrowest
    profile that lets the same run do what it did. Exits with the command's status."""
    from . import runner
    from .learn import Learner
    from .spawn import ExecFailed

    learner = Learner()
    try:
        status = runner.run(load_profile("audit"), command, observers=[learner],
                            inheritance=runner.inheritance_from(keep_fd or [], os.environ))
    except ExecFailed as error:
        typer.echo(f"sockbox: {error}", err=True)
        raise typer.Exit(error.status) from None
    text = learner.profile(command)
    Profile.from_toml(text, output)  # what is written must load
    if output == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(output).write_text(text)
        except OSError as error:
            raise UsageError(f"-o {output}: {error.strerror}") from None
    typer.echo(f"sockbox: learned {len(learner.rules)} rules from {learner.count} calls"
               + ("" if output == "-" else f"; wrote {output}"), err=True)
    raise typer.Exit(status)


@app.command()
def check(
    profiles: Annotated[list[str], typer.Argument(metavar="PROFILE...", help="Profile files or built-in names.")],
) -> None:
    """Validate profiles: print "PROFILE: ok" or every error; exit 1 if any is invalid."""
    failed = False
    for spec in profiles:
        try:
            load_profile(spec)
        except ProfileError as error:
            failed = True
            for line in error.errors:
                typer.echo(line)
        else:
            typer.echo(f"{spec}: ok")
    raise typer.Exit(1 if failed else 0)


@app.command()
def explain(
    call: Annotated[str, typer.Argument(help="A socket call: connect, sendto, socket, ...")],
    target: Annotated[Optional[str], typer.Argument(
        help="1.2.3.4:443, [2001:db8::1]:53, unix:/run/x.sock, unix:@name, or a family name.")] = None,
    profile: ProfileOption = "offline",
    family: Annotated[Optional[str], typer.Option("--family", help="The socket's family.")] = None,
    sock_type: Annotated[Optional[str], typer.Option("--type", help="The socket's type.")] = None,
    protocol: Annotated[Optional[str], typer.Option("--protocol", help="The socket's protocol.")] = None,
    exe: Annotated[Optional[str], typer.Option("--exe", help="The calling executable.")] = None,
) -> None:
    """Say what PROFILE decides for CALL [TARGET], and which rule decides it.

    Exit 0 for allow, 1 for deny or kill."""
    from .explain import PATH_ACCESSES, explain_call, explain_path

    if call in PATH_ACCESSES:  # explain read|write PATH: the profile's [filesystem]
        allowed, why = explain_path(load_profile(profile), call, target)
        typer.echo(why)
        raise typer.Exit(0 if allowed else 1)

    resolved = load_profile(profile).with_hosts_resolved()
    subject = explain_call(call, target, family, sock_type, protocol, exe)
    verdict = resolved.decide(subject)
    decided_by = f"{verdict.rule.label}: {verdict.rule}" if verdict.rule else f"the default of {resolved.source}"
    outcome = verdict.action.value + (f" {names.errno_name(verdict.errno)}" if verdict.action is Action.DENY else "")
    typer.echo(f"{outcome} ({decided_by})")
    raise typer.Exit(0 if verdict.action is Action.ALLOW else 1)


@app.command()
def show(profile: ProfileOption = "offline") -> None:
    """Print PROFILE's resolved rules, and per call and ABI whether the kernel decides
    alone or the supervisor is asked, and why."""
    from .filter import plan
    from .show import render

    resolved = load_profile(profile)
    typer.echo(render(resolved, plan(resolved)))


@app.command("profiles")
def list_profiles() -> None:
    """List the built-in profiles with their descriptions."""
    for name in builtin_names():
        typer.echo(f"{name:<10} {load_profile(name).description}")


def main(args: list[str]) -> int:
    """The typer app on a command line; called by entry.main."""
    command = typer.main.get_command(app)
    try:
        status = command.main(args=args, prog_name="sockbox", standalone_mode=False)
    except typer.TyperException as error:  # click's usage errors
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        return fail(f"{message} (see sockbox --help)")
    except typer.Abort:
        return fail("aborted")
    return status if isinstance(status, int) else 0

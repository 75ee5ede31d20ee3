"""The `sockbox` command: thin typer commands over the library.

The one definition of the command-line interface. A plain `sockbox run` is started by
`entry` without loading this module; both hand `run`'s options to `launch`, and errors
become exit statuses in `entry`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from . import __version__, names
from .errors import ProfileError, UsageError
from .launch import LOG_FORMATS, check_open, descriptor, fail, run_options, start
from .profile import Profile, builtin_names, load_profile
from .rules import Action


class Command(TyperCommand):
    """A typer command whose arguments are shown by their metavar alone: typer would add
    the Python type (`<list[str]>`) and braces (`{CMD}...`) that no user types."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        arguments = [_metavar(p) for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return [self.options_metavar, *arguments] if self.options_metavar else arguments

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments = [(_metavar(p), getattr(p, "help", None) or "") for p in self.get_params(ctx)
                     if p.param_type_name == "argument"]
        options = [record for p in self.get_params(ctx)
                   if p.param_type_name == "option" and (record := p.get_help_record(ctx))]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _metavar(param: Any) -> str:
    return param.metavar or param.name.upper()


app = typer.Typer(
    name="sockbox",
    help="Run a program with its socket calls decided by a profile (seccomp-BPF + ptrace).",
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sockbox {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Run a program with its socket calls decided by a profile."""
    if ctx.invoked_subcommand is None:  # bare `sockbox`: what it can do, as --help says it
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


ProfileOption = Annotated[str, typer.Option(
    "-p", "--profile", metavar="PROFILE",
    help="A profile file, or the name of a built-in profile (see `sockbox profiles`).")]


@app.command(cls=Command, context_settings={"allow_interspersed_args": False},
             short_help="Run a command with its socket calls decided by a profile.")
def run(
    command: Annotated[list[str], typer.Argument(
        metavar="[--] CMD [ARG]...", help="The command to run; the first word that is not an option of sockbox starts it.")],
    profile: ProfileOption = "offline",
    allow: Annotated[list[str] | None, typer.Option(
        "--allow", metavar="RULE", help="Allow CALL[,CALL...][=TARGET] before the profile's rules, e.g. connect=127.0.0.1:8000.")] = None,
    deny: Annotated[list[str] | None, typer.Option(
        "--deny", metavar="RULE", help="Deny CALL[,CALL...][=TARGET] before the profile's rules (and before --allow).")] = None,
    log: Annotated[str | None, typer.Option(
        "--log", metavar="FILE", help="Write one audit record per audited decision to FILE ('-' for stderr).")] = None,
    log_format: Annotated[str | None, typer.Option(
        "--log-format", metavar="|".join(LOG_FORMATS), help="The format of --log FILE (default: json).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not report denials on stderr.")] = False,
    keep_fd: Annotated[list[str] | None, typer.Option(
        "--keep-fd", metavar="N", help="Pass descriptor N on to the command (0, 1, 2 always are; "
        "so are systemd's LISTEN_FDS when LISTEN_PID is sockbox's).")] = None,
    read: Annotated[list[str] | None, typer.Option(
        "--read", metavar="PATH", help="Also let the command read and execute beneath PATH "
        "(a profile without [filesystem] gets one: nothing else is readable).")] = None,
    write: Annotated[list[str] | None, typer.Option(
        "--write", metavar="PATH", help="Also let the command do anything beneath PATH "
        "(a profile without [filesystem] gets one).")] = None,
    signals: Annotated[str | None, typer.Option(
        "--signals", metavar="sandbox|any", help="Whom the command may signal, in place of the profile's.")] = None,
    cpu: Annotated[str | None, typer.Option(
        "--cpu", metavar="SECONDS", help="CPU seconds per process, in place of the profile's.")] = None,
    memory: Annotated[str | None, typer.Option(
        "--memory", metavar="SIZE", help="Address space per process (4096, 512M, 1G), in place of the profile's.")] = None,
    processes: Annotated[str | None, typer.Option(
        "--processes", metavar="N", help="Processes and threads alive at once in the sandbox, in place of the profile's.")] = None,
    open_files: Annotated[str | None, typer.Option(
        "--open-files", metavar="N", help="Descriptors per process, in place of the profile's.")] = None,
    wait_for_hosts: Annotated[str | None, typer.Option(
        "--wait-for-hosts", metavar="SECONDS", help="How long a rule's host name may take to "
        "resolve before nothing runs (a late DNS at a container's start), in place of the profile's.")] = None,
) -> None:
    """Run CMD with its socket calls decided by PROFILE (default: offline)."""
    # Only reached where entry.parse_run left the command line to typer.
    options = run_options(command, profile, allow or (), deny or (), log, log_format, quiet,
                          keep_fd or (), read or (), write or (), signals, cpu, memory, processes,
                          open_files, wait_for_hosts)
    raise typer.Exit(start(options))


@app.command(cls=Command, context_settings={"allow_interspersed_args": False},
             short_help="Learn the profile a command needs, from one run of it.")
def learn(
    command: Annotated[list[str], typer.Argument(
        metavar="CMD [ARG]...", help="The command to run and learn from.")],
    output: Annotated[str, typer.Option(
        "-o", "--output", metavar="FILE", help="Where to write the profile ('-': stdout, after the command ends).")] = "-",
    keep_fd: Annotated[list[str] | None, typer.Option(
        "--keep-fd", metavar="N", help="Pass descriptor N on to the command.")] = None,
) -> None:
    """Run CMD with every socket call allowed and recorded, then write the narrowest
    profile that lets the same run do what it did. Exits with the command's status."""
    from . import runner
    from .learn import Learner

    kept = [descriptor(value, help_page="sockbox learn --help") for value in keep_fd or ()]
    check_open(kept)
    learner = Learner()
    status = runner.run(load_profile("audit"), command, observers=[learner],
                        inheritance=runner.inheritance_from(kept, os.environ))
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


@app.command(cls=Command, short_help="Validate profiles; exit 1 if any is invalid.")
def check(
    profiles: Annotated[list[str], typer.Argument(metavar="PROFILE...", help="Profile files or built-in names.")],
) -> None:
    """Validate profiles: print "PROFILE: ok" or every error; exit 1 if any is invalid."""
    from .hints import notes

    failed = False
    for spec in profiles:
        try:
            loaded = load_profile(spec)
        except ProfileError as error:
            failed = True
            for line in error.errors:
                typer.echo(line)
        else:
            typer.echo(f"{spec}: ok")
            for note in (*loaded.notes, *notes(loaded)):
                typer.echo(f"{spec}: note: {note}")
    raise typer.Exit(1 if failed else 0)


@app.command(cls=Command, short_help="Say what a profile decides for a call, and which rule decides it.")
def explain(
    call: Annotated[str, typer.Argument(
        metavar="CALL", help="A socket call (connect, sendto, socket, ...), or read or write for a path.")],
    target: Annotated[str | None, typer.Argument(
        metavar="[TARGET]",
        help="1.2.3.4:443, [2001:db8::1]:53, unix:/run/x.sock, unix:@name, or a family name; "
             "after read or write, a path.")] = None,
    profile: ProfileOption = "offline",
    family: Annotated[str | None, typer.Option(
        "--family", metavar="FAMILY", help="The socket's family: inet, inet6, unix, ...")] = None,
    sock_type: Annotated[str | None, typer.Option(
        "--type", metavar="TYPE", help="The socket's type: stream, dgram, ...")] = None,
    protocol: Annotated[str | None, typer.Option(
        "--protocol", metavar="PROTOCOL", help="The socket's protocol: tcp, udp, ...")] = None,
    exe: Annotated[str | None, typer.Option(
        "--exe", metavar="PATH",
        help="The calling executable; without it, one sockbox cannot vouch for (any, or none).")] = None,
) -> None:
    """Say what PROFILE decides for CALL [TARGET], and which rule decides it; or, for
    `read PATH` and `write PATH`, what its [filesystem] section lets the sandbox do there.

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


@app.command(cls=Command, short_help="Print a profile's rules, and where each call is decided.")
def show(profile: ProfileOption = "offline") -> None:
    """Print PROFILE's resolved rules, and per call and ABI whether the kernel decides
    alone or the supervisor is asked, and why."""
    from .filter import plan
    from .show import render

    resolved = load_profile(profile)
    typer.echo(render(resolved, plan(resolved)))


@app.command("profiles", cls=Command, short_help="List the built-in profiles.")
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
        # The help page of the command whose line it is: `sockbox run --help` for run's.
        page = f"sockbox {args[0]}" if args and args[0] in getattr(command, "commands", {}) else "sockbox"
        return fail(f"{message} (see {page} --help)")
    except typer.Abort:
        return fail("aborted")
    return status if isinstance(status, int) else 0

"""The Python API: `sandbox.run` mirrors `subprocess.run` for a command in the sandbox.

The supervisor runs in a `sockbox run` child process, never in the caller's: a tracer
must wait for every child with waitpid(-1), which would steal the exit statuses of the
caller's other subprocesses. Its audit records come back as JSON lines over a pipe.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

from . import filter
from .audit import Event
from .profile import Profile, load_profile
from .rules import Glob


class Result(subprocess.CompletedProcess):
    """A CompletedProcess with the audited decisions of the run."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: Any, stderr: Any,
                 events: list[Event]):
        super().__init__(list(args), returncode, stdout, stderr)
        self.events = events

    @property
    def denied(self) -> list[Event]:
        return [event for event in self.events if event.action in ("deny", "kill")]

    @property
    def destinations(self) -> list[Event]:
        """The recorded calls that named a peer: connect, and sends with a destination."""
        return [event for event in self.events
                if event.call in _REACHING and (event.address or event.path or event.abstract)]

    def assert_reached_only(self, *networks: str, paths: Sequence[str] = ("**",),
                            abstract: Sequence[str] = ("**",)) -> None:
        """Fail unless every recorded destination that was allowed lies in `networks`
        (CIDR blocks), `paths` or `abstract` (globs, as in profiles)."""
        blocks = [ipaddress.ip_network(block) for block in networks]
        path_globs, abstract_globs = [Glob(p) for p in paths], [Glob(a) for a in abstract]
        outside = []
        for event in self.destinations:
            if event.action != "allow":
                continue
            if event.address is not None:
                ip = ipaddress.ip_address(event.address)
                if not any(ip.version == block.version and ip in block for block in blocks):
                    outside.append(event)
            elif event.path is not None and not any(g.matches(event.path) for g in path_globs):
                outside.append(event)
            elif event.abstract is not None and not any(g.matches(event.abstract) for g in abstract_globs):
                outside.append(event)
        if outside:
            raise AssertionError("reached outside " + ", ".join(networks) + ":\n"
                                 + "\n".join(_describe(event) for event in outside))

    def assert_no_denials(self) -> None:
        if self.denied:
            raise AssertionError("denied:\n" + "\n".join(_describe(e) for e in self.denied))


_REACHING = {"connect", "sendto", "sendmsg", "sendmmsg"}


def _describe(event: Event) -> str:
    where = (f"{event.address} port {event.port}" if event.address is not None
             else event.path or f"@{event.abstract}" if (event.path or event.abstract) else "")
    return f"  {event.action} {event.call} {where} by {event.exe} (pid {event.pid}, {event.rule or 'default'})"


def run(args: Sequence[str], *, profile: Profile | str | os.PathLike[str] = "offline",
        cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
        input: bytes | str | None = None, capture_output: bool = False,
        timeout: float | None = None, check: bool = False, text: bool | None = None,
        stdin: int | IO[Any] | None = None, stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None) -> Result:
    """Run `args` in the sandbox and wait for it, like subprocess.run.

    `returncode` is what `sockbox run` would exit with. Raises ProfileError for a bad
    profile and UnsupportedKernel before anything runs; subprocess.TimeoutExpired and
    CalledProcessError as subprocess.run does.
    """
    resolved = profile if isinstance(profile, Profile) else load_profile(profile)
    filter.check_kernel()
    if capture_output:
        stdout = stderr = subprocess.PIPE
    with tempfile.TemporaryDirectory(prefix="sockbox-") as scratch:
        profile_path = Path(scratch) / (os.path.basename(resolved.source) or "profile.toml")
        profile_path.write_text(resolved.text)
        events_read, events_write = os.pipe()
        command = [sys.executable, "-m", "sandbox", "run", "--profile", str(profile_path),
                   "--log", f"/dev/fd/{events_write}", "--", *args]
        events: list[Event] = []
        reader = threading.Thread(target=_read_events, args=(events_read, events), daemon=True)
        try:
            process = subprocess.Popen(command, cwd=cwd, env=env, pass_fds=(events_write,),
                                       stdin=subprocess.PIPE if input is not None else stdin,
                                       stdout=stdout, stderr=stderr, text=text)
        finally:
            os.close(events_write)
        reader.start()
        with process:
            try:
                out, err = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired as expired:
                process.kill()  # the tracees die with their tracer (PTRACE_O_EXITKILL)
                expired.output, expired.stderr = process.communicate()
                raise
        reader.join()
    result = Result(args, process.returncode, out, err, events)
    if check:
        result.check_returncode()
    return result


def _read_events(fd: int, events: list[Event]) -> None:
    with os.fdopen(fd, "r") as stream:
        for line in stream:
            record = json.loads(line)
            if not record.get("summary"):
                events.append(Event.from_dict(record))

"""The Python API: `sandbox.run` mirrors `subprocess.run` for a command in the sandbox.

The supervisor runs in a `sockbox run` child process, never in the caller's: a tracer
must wait for every child with waitpid(-1), which would steal the exit statuses of the
caller's other subprocesses. Its audit records come back as JSON lines over a pipe.
"""

from __future__ import annotations

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


class Result(subprocess.CompletedProcess):
    """A CompletedProcess with the audited decisions of the run."""

    def __init__(self, args: Sequence[str], returncode: int, stdout: Any, stderr: Any,
                 events: list[Event]):
        super().__init__(list(args), returncode, stdout, stderr)
        self.events = events

    @property
    def denied(self) -> list[Event]:
        return [event for event in self.events if event.action in ("deny", "kill")]


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

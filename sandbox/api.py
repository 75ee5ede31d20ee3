"""The Python API: `Sandbox(profile).run(...)` and `sandbox.run(...)` mirror
`subprocess.run` for a command in the sandbox.

A `Sandbox` starts one supervisor process (sandbox/worker.py) and hands it the profile
object; each `run` hands it the command and its stdin, stdout and stderr by descriptor,
and the process forks a supervisor of that run alone. The supervision never happens in
the caller's process: a tracer must reap with waitpid(-1), which would steal the exit
statuses of the caller's other subprocesses. `sandbox.run` is a Sandbox for one run.
"""

from __future__ import annotations

import ipaddress
import locale
import os
import pickle
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import IO, Any

from . import channel
from .audit import Event
from .channel import LineReader, Request, Setup
from .errors import SandboxError, SupervisorError, UnsupportedKernel, UsageError
from .profile import Profile, load_profile
from .rules import Glob

StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]
Command = StrOrBytesPath | Sequence[StrOrBytesPath]
Stream = int | IO[Any] | None

PACKAGE = os.path.dirname(os.path.realpath(__file__))
# The supervisor process: isolated (-I: no script directory or working directory on
# sys.path, no PYTHON* variables, no user site-packages), started from "/".
_BOOT = "from sandbox.worker import main; main()"
_ERRORS: dict[str, type[SandboxError]] = {
    cls.__name__: cls for cls in (SandboxError, SupervisorError, UnsupportedKernel, UsageError)}


class Result(subprocess.CompletedProcess):
    """A CompletedProcess with the decisions of the run."""

    def __init__(self, args: Any, returncode: int, stdout: Any, stderr: Any,
                 events: list[Event], destinations: list[Event]):
        super().__init__(args, returncode, stdout, stderr)
        self.events = events
        self.destinations = destinations

    @property
    def denied(self) -> list[Event]:
        return [event for event in self.events if event.action in ("deny", "kill")]

    def assert_reached_only(self, *networks: str, paths: Sequence[str] = ("**",),
                            abstract: Sequence[str] = ("**",)) -> None:
        """Fail unless every destination the run was allowed to reach lies in `networks`
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


def _describe(event: Event) -> str:
    where = (f"{event.address} port {event.port}" if event.address is not None
             else event.path or f"@{event.abstract}" if (event.path or event.abstract) else "")
    return f"  {event.action} {event.call} {where} by {event.exe} (pid {event.pid}, {event.rule or 'default'})"


class Sandbox:
    """A warm supervisor for many runs under one profile:

        with sandbox.Sandbox("localhost") as box:
            result = box.run(["./client"], capture_output=True, timeout=10)

    The start-up work (imports, the kernel check, the filter, resolving the profile's
    host names) is done once, here; each `run` is its own sandbox, with its own
    processes, audit record and Result, exactly what `sandbox.run` gives. Runs may come
    from several threads at once: each has its own supervisor. A Sandbox serves the
    process that made it (not a fork of it); `close` ends it, and any run still going.
    """

    def __init__(self, profile: Profile | str | os.PathLike[str] = "offline"):
        loaded = profile if isinstance(profile, Profile) else load_profile(profile)
        self.profile = loaded.with_hosts_resolved()
        try:
            setup = channel.dumps(Setup(self.profile))
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            raise UsageError(f"cannot hand the profile to the supervisor process: {error}") from None
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        control, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, str(theirs.fileno())], cwd="/",
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),))
        except OSError as error:
            control.close()
            raise SandboxError(f"cannot start {sys.executable}: {error.strerror}") from None
        finally:
            theirs.close()
        self._control, self._process = control, process
        self._finalizer = weakref.finalize(self, _shut, control, process, self._owner)
        try:
            channel.send_frame(control, setup)
            self._started(LineReader(control))
        except BaseException:
            self.close()
            raise

    def _started(self, reader: LineReader) -> None:
        lines: list[dict[str, Any]] | None = []
        while lines == []:
            lines = reader.read()
        if not lines:
            raise SandboxError(f"the supervisor process ended before it was ready "
                               f"(status {self._process.wait()})")
        reply = lines[0]
        if "error" in reply:
            raise _error(reply["error"])
        package = reply["ready"]["package"]
        if os.path.realpath(package) != PACKAGE:
            raise SandboxError(f"{sys.executable} -I imports sockbox from {package}, not this "
                               f"one ({PACKAGE}): install sockbox where that Python finds it")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the supervisor process, killing any run still going. Closing a closed
        box does nothing."""
        with self._lock:
            self._closed = True
        self._finalizer()

    def run(self, args: Command, *, stdin: Stream = None, input: bytes | str | None = None,
            stdout: Stream = None, stderr: Stream = None, capture_output: bool = False,
            shell: bool = False, cwd: StrOrBytesPath | None = None, timeout: float | None = None,
            check: bool = False, encoding: str | None = None, errors: str | None = None,
            text: bool | None = None, env: Mapping[Any, Any] | None = None,
            universal_newlines: bool | None = None) -> Result:
        """Run `args` in a sandbox of its own and wait for it, as subprocess.run does.

        Takes what subprocess.run takes (a program, or a sequence of program and
        arguments; str, bytes or path-like; shell=True with a string) and raises what it
        raises (TimeoutExpired, CalledProcessError with check=True, ValueError for
        arguments that do not go together). What differs:

        - A command that was not found has `returncode` 127, one that cannot be
          executed 126 (with a line on its stderr), where subprocess raises OSError. A
          command killed by signal S has -S, as subprocess reports it; a rule with
          `action = "kill"` gives 137 (128 + SIGKILL), as `sockbox run` exits.
        - A timeout kills the run's whole sandbox, every process in it, not just the
          command's first process; the run returns (or raises) once none of them can run.
        - The command keeps only stdin, stdout and stderr (no pass_fds); no
          executable, preexec_fn, start_new_session, user, group or umask.
        - Errors of the sandbox itself are SandboxError subclasses.
        """
        if input is not None:
            if stdin is not None:
                raise ValueError("stdin and input arguments may not both be used.")
            stdin = subprocess.PIPE
        if capture_output:
            if stdout is not None or stderr is not None:
                raise ValueError("stdout and stderr arguments may not be used with capture_output.")
            stdout = stderr = subprocess.PIPE
        text_mode = bool(encoding or errors or text or universal_newlines)
        if text_mode:
            encoding = encoding or locale.getpreferredencoding(False)
        if isinstance(input, str):
            if not text_mode:
                raise TypeError("input must be bytes unless text, encoding or errors is given")
            data = input.encode(encoding or "utf-8", errors or "strict")
        else:
            data = input or b""
        request = Request(command_line(args, shell), environment(env),
                          os.fsdecode(os.path.abspath(cwd if cwd is not None else os.getcwd())))
        exchange = self._start(request, (stdin, stdout, stderr), data)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            try:
                finished = exchange.pump(deadline)
            except BaseException:  # KeyboardInterrupt among them: the sandbox goes too
                exchange.kill()
                raise
            if not finished:
                assert timeout is not None
                exchange.kill()
                # What was read so far, None for nothing (as subprocess on POSIX)
                raise subprocess.TimeoutExpired(args, timeout, output=exchange.output(1) or None,
                                                stderr=exchange.output(2) or None)
        finally:
            exchange.close()
        out, err = (_decoded(exchange.output(slot), encoding, errors) if text_mode
                    else exchange.output(slot) for slot in (1, 2))
        result = self._result(args, exchange.records, out, err)
        if check:
            result.check_returncode()
        return result

    def _start(self, request: Request, streams: tuple[Stream, Stream, Stream], data: bytes) -> _Exchange:
        """Hand the run to the supervisor process, with its channel and its stdio."""
        payload = channel.dumps(request)
        ours: dict[int, int] = {}  # our end of each pipe, by the command's descriptor
        handed: list[int] = []  # the command's 0, 1 and 2
        opened: list[int] = []  # what we opened to hand over, closed once handed
        link, theirs = socket.socketpair()
        opened.append(theirs.detach())
        try:
            for slot, stream in enumerate(streams):
                handed.append(_descriptor(slot, stream, handed, ours, opened))
            with self._lock:
                if self._closed:
                    raise UsageError("this Sandbox is closed")
                if os.getpid() != self._owner:
                    raise UsageError("a Sandbox serves the process that made it, not a fork of it")
                try:
                    channel.send_frame(self._control, payload, [opened[0], *handed])
                except OSError:
                    raise SandboxError("the sandbox's supervisor process is gone") from None
        except BaseException:
            link.close()
            for fd in ours.values():
                os.close(fd)
            raise
        finally:
            for fd in opened:
                os.close(fd)
        return _Exchange(link, ours, data)

    def _result(self, args: Any, records: list[dict[str, Any]], stdout: Any, stderr: Any) -> Result:
        events, destinations, end = [], [], None
        for record in records:
            if "error" in record:
                raise _error(record["error"])
            if "end" in record:
                end = record["end"]
            elif record.get("summary"):
                destinations = [Event.from_dict(d) for d in record.get("destinations", ())]
            elif "pidfd" not in record:
                events.append(Event.from_dict(record))
        if end is None:
            if self._closed:
                raise SandboxError("the Sandbox was closed while the command ran")
            raise SupervisorError("the run's supervisor was killed; every process of its "
                                  "sandbox died with it")
        returncode = -end["signal"] if end["signal"] else end["status"]
        return Result(args, returncode, stdout, stderr, events, destinations)


def _shut(control: socket.socket, process: subprocess.Popen[bytes], owner: int) -> None:
    control.close()  # the supervisor process sees the end, kills the runs left, and exits
    if os.getpid() == owner:
        process.wait()


def run(args: Command, *, profile: Profile | str | os.PathLike[str] = "offline",
        **options: Any) -> Result:
    """Run `args` in the sandbox under `profile` and wait for it, like subprocess.run:
    `Sandbox(profile).run(args, **options)` for one run (see Sandbox.run).

    Raises ProfileError for a bad profile and UnsupportedKernel before anything runs.
    """
    with Sandbox(profile) as box:
        return box.run(args, **options)


def command_line(args: Command, shell: bool) -> list[str]:
    """The argv that subprocess.run would execute for `args`."""
    if isinstance(args, (str, bytes)):
        words: list[Any] = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError("path-like args is not allowed when shell is true")
        words = [args]
    else:
        words = list(args)
    if shell:
        words = ["/bin/sh", "-c", *words]
    argv = [os.fsdecode(word) for word in words]
    if not argv:
        raise UsageError("no command to run")
    if any("\0" in word for word in argv):
        raise ValueError("embedded null byte")
    return argv


def environment(env: Mapping[Any, Any] | None) -> dict[str, str]:
    """The command's environment: `env`, or ours as it is now."""
    if env is None:
        return dict(os.environ)
    decoded = {os.fsdecode(key): os.fsdecode(value) for key, value in env.items()}
    for key, value in decoded.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"illegal environment variable name or value: {key!r}")
    return decoded


def _descriptor(slot: int, stream: Stream, handed: list[int], ours: dict[int, int],
                opened: list[int]) -> int:
    """The descriptor the command gets as `slot` (0, 1, 2) for `stream`."""
    if stream is None:
        try:
            os.fstat(slot)
            return slot
        except OSError:  # ours is closed: the command's reads nothing, writes nowhere
            stream = subprocess.DEVNULL
    if stream == subprocess.PIPE:
        read_end, write_end = os.pipe()
        ours[slot] = write_end if slot == 0 else read_end
        opened.append(read_end if slot == 0 else write_end)
        return opened[-1]
    if stream == subprocess.DEVNULL:
        opened.append(os.open(os.devnull, os.O_RDWR))
        return opened[-1]
    if stream == subprocess.STDOUT:
        if slot != 2:
            raise ValueError("STDOUT is only for stderr")
        return handed[1]
    if isinstance(stream, int):
        if stream < 0:
            raise ValueError(f"bad descriptor {stream}")
        return stream
    return stream.fileno()


def _decoded(data: bytes | None, encoding: str | None, errors: str | None) -> str | None:
    if data is None:
        return None
    return data.decode(encoding or "utf-8", errors or "strict").replace("\r\n", "\n").replace("\r", "\n")


def _error(reply: Mapping[str, str]) -> SandboxError:
    return _ERRORS.get(reply["kind"], SandboxError)(reply["message"])


class _Exchange:
    """One run, seen from the caller: its input written, its output and records read,
    until its supervisor is done."""

    def __init__(self, link: socket.socket, ours: dict[int, int], data: bytes):
        self.link, self.reader = link, LineReader(link)
        self.records: list[dict[str, Any]] = []
        self.pidfd: int | None = None
        self._ours = ours
        self._data = memoryview(data)
        self._output = {slot: bytearray() for slot in ours if slot != 0}
        self._selector = selectors.DefaultSelector()
        self._selector.register(link, selectors.EVENT_READ)
        for slot, fd in list(ours.items()):
            if slot != 0:
                self._selector.register(fd, selectors.EVENT_READ, slot)
            elif data:
                self._selector.register(fd, selectors.EVENT_WRITE, slot)
            else:
                self._close(slot)

    def output(self, slot: int) -> bytes | None:
        return bytes(self._output[slot]) if slot in self._output else None

    def pump(self, deadline: float | None) -> bool:
        """Move input, output and records until all are done (True) or the deadline
        passes (False)."""
        while self._selector.get_map():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            for key, _ in self._selector.select(remaining):
                if key.fileobj is self.link:
                    self._receive()
                elif key.data == 0:
                    self._write()
                else:
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        self._output[key.data] += chunk
                    else:
                        self._close(key.data)
        return True

    def _receive(self) -> None:
        lines = self.reader.read()
        if lines is None:
            self._selector.unregister(self.link)
            self.link.close()
            return
        for record in lines:
            if record.get("pidfd") and self.reader.fds:
                self.pidfd = self.reader.fds.pop(0)
            if "end" in record or "error" in record:  # its last word
                self._selector.unregister(self.link)
        self.records += lines

    def _write(self) -> None:
        try:
            written = os.write(self._ours[0], self._data[:select.PIPE_BUF])
        except BrokenPipeError:  # the command did not read it all: as subprocess, no error
            written = len(self._data)
        self._data = self._data[written:]
        if not self._data:
            self._close(0)

    def _close(self, slot: int) -> None:
        fd = self._ours.pop(slot)
        if fd in self._selector.get_map():
            self._selector.unregister(fd)
        os.close(fd)

    def kill(self) -> None:
        """End the run's whole sandbox: kill its supervisor, and with it (the kernel's
        PTRACE_O_EXITKILL) every process it traced; return once it is dead, when none of
        them can run again."""
        while self.pidfd is None and self.link.fileno() >= 0:
            self._receive()  # the supervisor's first word carries its pidfd
        if self.pidfd is None:
            return
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        select.select([self.pidfd], [], [])

    def close(self) -> None:
        for slot in list(self._ours):
            self._close(slot)
        self._selector.close()
        self.link.close()
        for fd in [*self.reader.fds, *([self.pidfd] if self.pidfd is not None else [])]:
            os.close(fd)
        self.reader.fds.clear()
        self.pidfd = None

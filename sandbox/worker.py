"""The supervisor's side of the Python API: the process that serves a `Sandbox`'s runs.

It starts as `python -I`, from `/`, with the caller's environment (sandbox/api.py), so
it imports only the installed sockbox and its dependencies: nothing from a working
directory, PYTHONPATH or user site-packages, where an earlier sandboxed program could
have written. It does the start-up work once (imports, the kernel check, the filter);
each run then gets a child of its own (forked ahead, while the run before goes on),
which spawns and supervises that run's command as `sockbox run` does and reports on the
run's own channel. One supervisor per run: a tracer reaps with waitpid(-1), and the runs
must not share processes, records or failures.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import selectors
import signal
import socket
import sys
from typing import Any, NamedTuple, NoReturn

from . import channel, runner, signals
# What the supervisor imports only at a stop (so that a `sockbox run` that never stops never
# loads it), loaded here once: every run's supervisor is a fork of this process.
from . import emulate, impersonate  # noqa: F401
from .audit import Sink
from .channel import Request, Setup
from .errors import ExecFailed, SandboxError, UsageError
from .profile import Profile
from .signals import DiedBySignal

PACKAGE = os.path.dirname(os.path.abspath(__file__))


def main() -> NoReturn:
    """`python -I -c 'from sandbox.worker import main; main()' FD`: serve the caller,
    whose socket is FD, until it closes it."""
    control = socket.socket(fileno=int(sys.argv[1]))
    # Runs get their stdio by descriptor: keep 0, 1 and 2 taken, so that none lands there.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)
    # A signal a terminal sends to the caller's process group reaches the command (and
    # the caller) directly; this process and the runs' supervisors only serve them.
    signals.block()
    try:
        started = _start(control)
    except Exception as error:
        control.sendall(channel.line({"error": failure(error)}))
        os._exit(1)
    if started is not None:
        control.sendall(channel.line({"ready": {"package": PACKAGE}}))
        gc.freeze()  # what every run's child shares stays shared: its collector skips it
        _serve(control, *started)
    os._exit(0)


def _start(control: socket.socket) -> tuple[Profile, runner.Prepared] | None:
    frame = channel.receive_frame(control)
    if frame is None:
        return None
    payload, fds = frame
    for fd in fds:
        os.close(fd)
    try:
        setup = _trusted(payload)
    except Exception as error:  # e.g. a class of the caller's that cannot be imported here
        raise UsageError(f"cannot hand the profile to the supervisor process: {error}") from None
    assert isinstance(setup, Setup)
    return setup.profile, runner.checked(runner.prepare(setup.profile, watch_destinations=True))


def _trusted(payload: bytes) -> object:
    # Unpickling runs what the pickle says, which is safe here because only the caller
    # can have written it: the frames come from its end of a socket pair it made and
    # handed to this process alone (and, passed on as they came, from this process to a
    # spare over a pair of its own). Nothing in a sandbox can hold the sending ends.
    # What a process holding a receiving end writes goes the other way, to the caller,
    # who reads JSON lines only; and a run's child closes both before its command
    # starts (whose spawn closes every other descriptor too).
    return pickle.loads(payload)


class _Spare(NamedTuple):
    """A child forked ahead of its run (forking is the slow part of starting one),
    waiting for it on `link`."""

    pidfd: int
    link: socket.socket


def _serve(control: socket.socket, profile: Profile, program: runner.Prepared) -> None:
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    children: dict[int, int] = {}  # each child still to reap, the spare among them: pid by pidfd

    def fork_spare() -> _Spare | None:
        ours, theirs = socket.socketpair()
        try:
            pid = os.fork()
        except OSError:  # the run that needs it is told
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            selector.close()
            for fd in (control.fileno(), ours.fileno(), *children):
                os.close(fd)
            _wait_for_run(theirs, profile, program)
        theirs.close()
        pidfd = os.pidfd_open(pid)
        children[pidfd] = pid
        selector.register(pidfd, selectors.EVENT_READ)
        return _Spare(pidfd, ours)

    spare = fork_spare()
    while True:
        for key, _ in selector.select():
            if key.fileobj is not control:
                selector.unregister(key.fd)
                os.waitpid(children.pop(key.fd), 0)
                os.close(key.fd)
                if spare is not None and key.fd == spare.pidfd:
                    spare.link.close()
                    spare = None
                continue
            frame = channel.receive_frame(control)
            if frame is None:  # the box was closed (or the caller is gone): end its runs
                # The spare ends by itself at the end of its link, and reaps the child it
                # forked ahead (killed, it would leave that child to init as a zombie).
                if spare is not None:
                    spare.link.close()
                for pidfd, pid in children.items():
                    if spare is None or pidfd != spare.pidfd or not select.select([pidfd], [], [], 1)[0]:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    os.waitpid(pid, 0)
                return
            payload, fds = frame
            try:
                spare = spare or fork_spare()
                if spare is None:
                    raise SandboxError("cannot start a supervisor for the run: fork failed")
                channel.send_frame(spare.link, payload, fds)  # as it came, for the spare
            except Exception as error:
                if fds:
                    os.write(fds[0], channel.line({"error": failure(error)}))
            finally:
                for fd in fds:
                    os.close(fd)
                if spare is not None:  # it has its run now (or, broken, ends)
                    spare.link.close()
            spare = fork_spare()  # the next run's, while this one runs


def _wait_for_run(link: socket.socket, profile: Profile, program: runner.Prepared) -> NoReturn:
    """A spare: fork the command's first process ahead (the slow part of a start that
    needs nothing of the command), wait for the run handed over on `link`, and be its
    supervisor."""
    started: runner.Ahead | None
    try:
        started = runner.ahead(profile, program, build_domain=True)
    except Exception:  # the run's own start tries again, and says what fails
        started = None
    frame = channel.receive_frame(link)
    if frame is None:  # the box closed before this run came
        _end_without_run(started)
    link.close()
    payload, fds = frame
    try:
        request = _trusted(payload)
        assert isinstance(request, Request) and len(fds) == 4
    except Exception as error:
        if fds:
            os.write(fds[0], channel.line({"error": failure(error)}))
        _end_without_run(started)
    _run(request, fds, profile, program, started)


def _end_without_run(started: runner.Ahead | None) -> NoReturn:
    """The child forked ahead dies with this process anyway; reaped here, it leaves no
    zombie for whoever inherits it."""
    if started is not None:
        runner.abandon(started)
    os._exit(0)


def _run(request: Request, fds: list[int], profile: Profile, program: runner.Prepared,
         started: runner.Ahead | None) -> NoReturn:
    """One run, in a child of its own: its stdio from the caller's descriptors, its
    audit records and its end on its channel."""
    try:
        link = socket.socket(fileno=fds[0])
        # First, so that the caller can kill this run, and only it, on a timeout.
        pidfd = os.pidfd_open(os.getpid())
        socket.send_fds(link, [channel.line({"pidfd": True})], [pidfd])
        os.close(pidfd)
        for target, fd in enumerate(fds[1:]):
            os.dup2(fd, target)
            os.close(fd)
        records = link.makefile("w", encoding="utf-8")
        reply: dict[str, Any]
        try:
            # Signals sent to this process are not forwarded: only the caller knows it,
            # and it ends a run by killing it. A terminal's reach the command directly.
            status = runner.supervise(profile, request.argv, [Sink(records, "json")],
                                      request.env, request.cwd, watch_destinations=True,
                                      prepared=program, forward_signals=False, started=started,
                                      stdio=(0, 1, 2))
            died = status.signal if isinstance(status, DiedBySignal) else None
            reply = {"end": {"status": int(status), "signal": died}}
        except ExecFailed as error:  # as `sockbox run` says it, and its status
            os.write(2, os.fsencode(f"sockbox: {error}\n"))
            reply = {"end": {"status": error.status, "signal": None}}
        except Exception as error:
            reply = {"error": failure(error)}
        # The run's stdio is let go first, so that the caller sees its output end with
        # this word, not with this process.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        link.sendall(channel.line(reply))
    finally:
        os._exit(0)


def failure(error: Exception) -> dict[str, str]:
    """An error for the caller to raise: a SandboxError as its kind, anything else as
    the internal error it is."""
    if isinstance(error, SandboxError):
        return {"kind": type(error).__name__, "message": str(error)}
    return {"kind": "SupervisorError", "message": f"internal error: {type(error).__name__}: {error}"}

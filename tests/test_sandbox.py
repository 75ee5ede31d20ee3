"""`sandbox.Sandbox`: one warm supervisor process for many runs, each run its own sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import sandbox

# The command's parent is its run's supervisor; that one's parent, the box's process.
WHO_SUPERVISES = "echo $PPID $(sed -n 's/^PPid:\\s*//p' /proc/$PPID/status)"


def supervisors(result: sandbox.Result) -> tuple[int, int]:
    """(the run's supervisor, its parent) as WHO_SUPERVISES printed them."""
    run, box = map(int, result.stdout.split())
    return run, box


def connect_code(port: int, token: str = "") -> str:
    return (f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=10); "
            f"s.sendall(b'ping'); s.recv(4); print({token!r})")


PF_EXITING = 0x4  # the kernel's flag for a task on its way out


def cannot_run(pid: int) -> bool:
    """Whether `pid` can never run again: gone, exiting (a zombie, or PF_EXITING), or with
    SIGKILL pending."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    state, *_, flags = stat.rpartition(")")[2].split()[:7]
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    pending = int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)
    return (state in ("Z", "X") or bool(int(flags) & PF_EXITING)
            or bool(pending & 1 << (signal.SIGKILL - 1)))


def children() -> set[int]:
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        found |= {int(pid) for pid in Path(f"/proc/self/task/{task}/children").read_text().split()}
    return found


def test_runs_share_one_warm_supervisor_process_isolated_from_the_caller(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCKBOX_TEST_CALLER", "the caller's")
    monkeypatch.chdir(tmp_path)
    with sandbox.Sandbox("localhost") as box:
        results = [box.run(["sh", "-c", WHO_SUPERVISES], env={"PATH": os.environ["PATH"], "ONLY": "x"},
                           capture_output=True, text=True) for _ in range(3)]
        pairs = [supervisors(result) for result in results]
        (warm,) = {parent for _, parent in pairs}
        assert len({run for run, _ in pairs}) == 3  # a supervisor per run
        assert warm in children()
        argv = Path(f"/proc/{warm}/cmdline").read_bytes().split(b"\0")
        assert argv[:3] == [os.fsencode(sys.executable), b"-I", b"-c"]
        assert os.readlink(f"/proc/{warm}/cwd") == "/"
        environ = Path(f"/proc/{warm}/environ").read_bytes().split(b"\0")
        assert b"SOCKBOX_TEST_CALLER=the caller's" in environ
        assert not any(item.startswith(b"ONLY=") for item in environ)
    assert warm not in children()  # closed: the process is gone, and reaped


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        found |= {int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()}
    return found


def tracer_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("TracerPid:")[1].split()[0])


def waiting_ahead(warm: int) -> tuple[int, int]:
    """The spare of the box's process `warm`, and the first process it forked ahead of
    its run, traced and waiting for its command."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for spare in children_of(warm):
            try:
                waiting = children_of(spare)
                if len(waiting) == 1 and tracer_of(only := next(iter(waiting))) == spare:
                    return spare, only
            except (FileNotFoundError, ProcessLookupError):
                continue
        time.sleep(0.01)
    raise AssertionError(f"no first process forked ahead under {warm}")


def test_a_runs_first_process_is_forked_ahead_and_ends_with_the_box(tmp_path):
    # A spare forks, seizes and readies its run's first process before the run comes;
    # that process becomes the run's command (its own stdio, directory, environment),
    # and one whose run never comes ends with the box, reaped, not left behind.
    with sandbox.Sandbox("localhost") as box:
        _, warm = supervisors(box.run(["sh", "-c", WHO_SUPERVISES], capture_output=True, text=True))
        spare, waiting = waiting_ahead(warm)
        assert Path(f"/proc/{waiting}/exe").resolve() == Path(sys.executable).resolve()  # not exec'd yet
        result = box.run(["sh", "-c", "echo $$ $PPID; pwd; echo $ONLY; cat"], cwd=tmp_path, input="in",
                         env={"PATH": os.environ["PATH"], "ONLY": "this run's"}, capture_output=True,
                         text=True)
        assert result.stdout.splitlines() == [f"{waiting} {spare}", str(tmp_path), "this run's", "in"]
        spare, waiting = waiting_ahead(warm)  # the next run's
    assert cannot_run(waiting) and not Path(f"/proc/{waiting}").exists()  # reaped
    assert cannot_run(spare)


def test_runs_of_one_box_are_isolated(tcp_server, tmp_path):
    refused = tcp_server.port + 1 if tcp_server.port < 65535 else 1
    profile = sandbox.load_profile("localhost").with_inline_rules([], [f"connect=127.0.0.1:{refused}"])
    pidfile = tmp_path / "pid"
    with sandbox.Sandbox(profile) as box:
        first = box.run([sys.executable, "-c", connect_code(refused)], capture_output=True, text=True)
        second = box.run([sys.executable, "-c", connect_code(tcp_server.port, "second")],
                         capture_output=True, text=True)
        assert first.returncode == 1 and "PermissionError" in first.stderr
        assert [(e.call, e.port, e.action) for e in first.denied] == [("connect", refused, "deny")]
        assert [(e.port, e.action) for e in first.destinations] == [(refused, "deny")]
        assert second.returncode == 0 and second.stdout == "second\n"
        assert second.events == [] and second.denied == []  # run 1's denial is not here
        assert [(e.port, e.action) for e in second.destinations] == [(tcp_server.port, "allow")]
        assert first.denied[0].pid != second.destinations[0].pid

        # A run whose timeout leaves a process behind: it can never run again once the
        # run has raised, and the next run does not see it.
        with pytest.raises(subprocess.TimeoutExpired):
            box.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=2)
        assert cannot_run(int(pidfile.read_text()))
        third = box.run(["true"])
        assert (third.returncode, third.events, third.destinations) == (0, [], [])


def test_a_timeout_kills_its_runs_sandbox_and_nothing_else(tmp_path):
    flag, pidfile = tmp_path / "flag", tmp_path / "pid"
    with sandbox.Sandbox("offline") as box:
        waiting: list[sandbox.Result] = []
        other = threading.Thread(target=lambda: waiting.append(box.run(
            ["sh", "-c", f"while [ ! -e {flag} ]; do sleep 0.05; done; echo still here"],
            capture_output=True, text=True, timeout=120)))
        other.start()
        with pytest.raises(subprocess.TimeoutExpired):
            box.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=2)
        assert cannot_run(int(pidfile.read_text()))
        assert other.is_alive()  # the other run goes on
        flag.touch()
        other.join(timeout=60)
        (result,) = waiting
        assert (result.returncode, result.stdout) == (0, "still here\n")


def test_runs_from_several_threads_at_once(tcp_server):
    results: dict[int, sandbox.Result] = {}
    with sandbox.Sandbox("localhost") as box:
        def run(index: int) -> None:
            results[index] = box.run([sys.executable, "-c", connect_code(tcp_server.port, f"run {index}")],
                                     capture_output=True, text=True, timeout=120)
        threads = [threading.Thread(target=run, args=(index,)) for index in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert sorted(results) == list(range(6))
    for index, result in results.items():
        assert (result.returncode, result.stdout) == (0, f"run {index}\n"), result.stderr
        assert [(e.call, e.port) for e in result.destinations] == [("connect", tcp_server.port)]
    assert len({result.destinations[0].pid for result in results.values()}) == 6
    assert tcp_server.received == [b"ping"] * 6


def test_a_bad_profile_is_refused_before_anything_runs(tmp_path):
    before = children()
    with pytest.raises(sandbox.ProfileError):
        sandbox.Sandbox("no-such-profile")
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\ncalls = ["connect"]\nport = [70000]\naction = "allow"\n')
    with pytest.raises(sandbox.ProfileError) as raised:
        sandbox.Sandbox(str(bad))
    assert (raised.value.file, raised.value.key) == (str(bad), "rule[1].port")
    assert children() <= before  # nothing started (an earlier test's closed box may still be ending)


def test_a_closed_box_runs_nothing():
    box = sandbox.Sandbox()
    assert box.run(["true"]).returncode == 0
    box.close()
    box.close()  # closing twice does nothing
    with pytest.raises(sandbox.UsageError, match="closed"):
        box.run(["true"])
    with sandbox.Sandbox() as box:
        pass
    box.close()
    with pytest.raises(sandbox.UsageError):
        box.run(["true"])


def test_closing_ends_a_run_still_going(tmp_path):
    pidfile = tmp_path / "pid"
    box = sandbox.Sandbox()
    raised: list[BaseException] = []

    def run() -> None:
        try:
            box.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
        except BaseException as error:
            raised.append(error)

    going = threading.Thread(target=run)
    going.start()
    while not pidfile.exists() or not pidfile.read_text().strip():
        going.join(timeout=0.05)
    box.close()
    going.join(timeout=60)
    assert not going.is_alive()
    (error,) = raised
    assert isinstance(error, sandbox.SandboxError) and "closed" in str(error)
    assert cannot_run(int(pidfile.read_text()))


def test_a_run_that_kills_its_supervisor_leaves_the_box_working():
    with sandbox.Sandbox() as box:
        with pytest.raises(sandbox.SupervisorError, match="supervisor was killed"):
            box.run(["sh", "-c", "kill -KILL $PPID; sleep 60"], timeout=60)
        assert box.run(["true"]).returncode == 0


def test_a_box_whose_process_was_killed_says_so():
    with sandbox.Sandbox() as box:
        _, warm = supervisors(box.run(["sh", "-c", WHO_SUPERVISES], capture_output=True, text=True))
        os.kill(warm, signal.SIGKILL)
        os.waitid(os.P_PID, warm, os.WEXITED | os.WNOWAIT)  # dead, left for the box to reap
        with pytest.raises(sandbox.SandboxError, match="supervisor process is gone"):
            box.run(["true"])


def test_a_box_serves_the_process_that_made_it():
    with sandbox.Sandbox() as box:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports by its status
            try:
                box.run(["true"])
            except sandbox.UsageError:
                os._exit(0)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert box.run(["true"]).returncode == 0


def test_ctrl_c_in_the_caller_kills_the_runs_sandbox(tmp_path):
    pidfile = tmp_path / "pid"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with sandbox.Sandbox() as box:
            signal.setitimer(signal.ITIMER_REAL, 1.5)
            with pytest.raises(KeyboardInterrupt):
                box.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
            assert cannot_run(int(pidfile.read_text()))
            assert box.run(["true"]).returncode == 0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

"""sockbox as a container's entrypoint: PID 1 of a fresh PID namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

FORWARDED = ["INT", "HUP", "QUIT", "USR1", "USR2", "WINCH", "TERM"]  # TERM last: it ends the test


def as_pid1(*command: str) -> subprocess.Popen:
    """`sockbox run -- COMMAND` as PID 1 of a new PID namespace, as an entrypoint runs."""
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return subprocess.Popen(["unshare", *userns, "--pid", "--fork", "--mount-proc",
                             sys.executable, "-m", "sandbox", "run", "--", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def sockbox_pid(unshare: subprocess.Popen) -> int:
    """The host pid of sockbox: the child unshare forked into the namespace."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = open(f"/proc/{unshare.pid}/task/{unshare.pid}/children").read().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    pytest.fail("unshare started no child")


def test_sockbox_is_pid_1_and_exits_with_the_commands_status():
    process = as_pid1("sh", "-c", "echo pid-of-parent $PPID; exit 5")
    out, err = process.communicate(timeout=30)
    assert "pid-of-parent 1" in out, err
    assert process.returncode == 5


def test_orphans_are_reaped():
    # The subshell leaves a child behind and exits; the orphan, now PID 1's, exits
    # too. Nothing may stay a zombie.
    script = ("(sleep 0.3 & exit 0); sleep 1.5; "
              "zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null); "
              "echo zombies:${zombies:-none}")
    process = as_pid1("sh", "-c", script)
    out, err = process.communicate(timeout=30)
    assert "zombies:none" in out, out + err
    assert process.returncode == 0


def test_signals_reach_the_command():
    # The command records every signal it gets and ends at SIGTERM; init ignores
    # signals it has no handler for, so without forwarding none would arrive.
    traps = "; ".join(f"trap 'echo got {name}' {name}" for name in FORWARDED if name != "TERM")
    script = f"{traps}; trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    process = as_pid1("sh", "-c", script)
    assert process.stdout.readline().strip() == "ready"
    pid = sockbox_pid(process)
    for name in FORWARDED:
        os.kill(pid, getattr(signal, f"SIG{name}"))
        time.sleep(0.3)  # one at a time: the shell runs a trap between its sleeps
    out, err = process.communicate(timeout=30)
    assert [line for line in out.splitlines() if line.startswith("got ")] == [f"got {n}" for n in FORWARDED], err
    assert process.returncode == 0


def test_a_command_killed_by_a_forwarded_signal_gives_128_plus_n():
    process = as_pid1("sleep", "60")
    time.sleep(0.5)
    os.kill(sockbox_pid(process), signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGTERM

"""The Python API, used the way a test harness uses it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import sandbox


def connect_code(port: int) -> str:
    return (f"import socket; s = socket.create_connection(('127.0.0.1', {port}), timeout=10); "
            f"s.sendall(b'ping'); print(s.recv(4).decode())")


def test_run_allowed_and_denied(tcp_server):
    allowed = sandbox.run([sys.executable, "-c", connect_code(tcp_server.port)], profile="localhost",
                          capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "pong\n"
    assert allowed.events == [] and allowed.denied == []  # localhost audits denials only

    denied = sandbox.run([sys.executable, "-c", connect_code(tcp_server.port)],
                         profile=sandbox.load_profile("offline"), capture_output=True, timeout=60)
    assert denied.returncode == 1
    assert b"PermissionError" in denied.stderr
    (event,) = denied.denied
    assert isinstance(event, sandbox.Event)
    assert (event.call, event.family, event.action, event.errno, event.rule) == (
        "socket", "inet", "deny", "EACCES", None)
    assert event.exe == os.path.realpath(sys.executable)
    assert tcp_server.received == [b"ping"]


def test_profile_from_toml_and_all_events(tcp_server):
    profile = sandbox.Profile.from_toml(f"""
[profile]
name = "harness"
log = "all"
[[rule]]
calls = ["socket"]
family = ["inet"]
action = "allow"
[[rule]]
calls = ["connect"]
address = ["127.0.0.1/32"]
port = [{tcp_server.port}]
action = "allow"
[[rule]]
calls = ["send", "recv", "setsockopt", "getsockopt", "getsockname", "getpeername", "shutdown"]
action = "allow"
""", source="harness.toml")
    result = sandbox.run([sys.executable, "-c", connect_code(tcp_server.port)], profile=profile,
                         capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    connects = [e for e in result.events if e.call == "connect"]
    assert [(e.address, e.port, e.action, e.rule) for e in connects] == [
        ("127.0.0.1", tcp_server.port, "allow", "harness.toml:rule[2]")]
    assert result.denied == []


def test_mirrors_subprocess_run(tmp_path):
    result = sandbox.run(["sh", "-c", 'cat; echo "$GREETING"; pwd'], input="from stdin\n", text=True,
                         capture_output=True, cwd=tmp_path, env={"PATH": os.environ["PATH"], "GREETING": "hi"})
    assert result.stdout == f"from stdin\nhi\n{tmp_path}\n"
    assert result.args == ["sh", "-c", 'cat; echo "$GREETING"; pwd']
    with pytest.raises(subprocess.CalledProcessError) as raised:
        sandbox.run(["sh", "-c", "exit 3"], check=True)
    assert raised.value.returncode == 3
    assert sandbox.run(["sh", "-c", "kill -KILL $$"]).returncode == -signal.SIGKILL  # as subprocess reports a death by signal


def test_timeout_kills_everything_in_the_sandbox(tmp_path):
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        sandbox.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=2)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("a process of the sandbox outlived the timeout")


def test_does_not_reap_the_callers_other_children():
    other = subprocess.Popen(["sh", "-c", "sleep 0.3; exit 5"])
    assert sandbox.run(["sleep", "0.6"]).returncode == 0
    assert other.wait(timeout=10) == 5


def test_errors_are_sandbox_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\ncalls = ["socket"]\nfamily = ["inet7"]\naction = "allow"\n')
    with pytest.raises(sandbox.ProfileError) as raised:
        sandbox.run(["true"], profile=str(bad))
    assert isinstance(raised.value, sandbox.SandboxError)
    assert (raised.value.file, raised.value.key) == (str(bad), "rule[1].family")
    with pytest.raises(sandbox.ProfileError):
        sandbox.load_profile("no-such-profile")


def test_every_public_name_resolves():
    # The package loads its names on first use; each one must be there.
    import sandbox
    assert {name: getattr(sandbox, name) for name in sandbox.__all__}
    assert sandbox.run is sandbox.api.run and sandbox.Profile is sandbox.profile.Profile

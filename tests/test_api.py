"""The Python API, used the way a test harness uses it."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_profile_fuzz import documents, outcome_of, random_calls, shorthands, toml_document

import sandbox
from sandbox import channel, filter, worker
from sandbox.errors import UsageError
from sandbox.profile import LogLevel, Profile, inline_rule, load_profile
from sandbox.rules import Action, Glob, PortRange, Rule


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


# --- like subprocess.run --------------------------------------------------------------------


def test_mirrors_subprocess_run(tmp_path):
    result = sandbox.run(["sh", "-c", 'cat; echo "$GREETING"; pwd'], input="from stdin\n", text=True,
                         capture_output=True, cwd=tmp_path, env={"PATH": os.environ["PATH"], "GREETING": "hi"})
    assert result.stdout == f"from stdin\nhi\n{tmp_path}\n"
    assert result.args == ["sh", "-c", 'cat; echo "$GREETING"; pwd']
    with pytest.raises(subprocess.CalledProcessError) as raised:
        sandbox.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True, check=True)
    assert (raised.value.returncode, raised.value.stdout, raised.value.stderr) == (3, b"out\n", b"err\n")


def both(args, **options) -> tuple[subprocess.CompletedProcess, sandbox.Result]:
    """The same call through subprocess.run and sandbox.run (under `audit`, which allows
    everything)."""
    return subprocess.run(args, **options), sandbox.run(args, profile="audit", **options)


def same(args, **options) -> None:
    plain, boxed = both(args, **options)
    assert (boxed.args, boxed.returncode, boxed.stdout, boxed.stderr) == (
        plain.args, plain.returncode, plain.stdout, plain.stderr), options


def test_takes_the_commands_subprocess_run_takes(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho \"$0 $# $*\"\n")
    script.chmod(0o755)
    same("true")  # a program alone: a string, not its characters
    same(b"true")
    same(script, capture_output=True)  # path-like
    same([script, b"bytes", Path("path"), "text"], capture_output=True)
    same(["sh", "-c", "exit 7"])
    same("echo $((6 * 7)) from a shell", shell=True, capture_output=True)
    same(["echo $0 $1", "zero", "one"], shell=True, capture_output=True)
    same(["sh", "-c", "echo ünïcode; printf 'a\\r\\nb\\rc'"], capture_output=True, text=True)
    same(["sh", "-c", "printf '\\377'"], capture_output=True, encoding="utf-8", errors="replace")
    same(["sh", "-c", "printf 'x\\r\\n'"], capture_output=True, universal_newlines=True)
    same(["cat"], input=b"\x00binary\xff" * 40000, capture_output=True)  # more than a pipe holds
    same(["head", "-c", "3"], input=b"more than it reads" * 10000, capture_output=True)
    same(["sh", "-c", "echo out; echo err >&2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    same(["sh", "-c", "echo out; echo err >&2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    same(["cat"], stdin=subprocess.PIPE, capture_output=True)  # a pipe with nothing: EOF
    same(["cat"], stdin=subprocess.DEVNULL, capture_output=True)
    same(["sh", "-c", "echo $X; pwd"], env={"X": "y", "PATH": os.environ["PATH"]}, cwd=tmp_path,
         capture_output=True, text=True)
    same(["sh", "-c", "echo $X; pwd"], env={b"X": b"bytes"}, cwd=os.fsencode(tmp_path),
         capture_output=True)


def test_takes_the_streams_subprocess_run_takes(tmp_path):
    source = tmp_path / "in"
    source.write_bytes(b"from a file\n")
    with open(source, "rb") as stdin, open(tmp_path / "out", "wb") as stdout:
        result = sandbox.run(["sh", "-c", "cat; echo to err >&2"], stdin=stdin, stdout=stdout,
                             stderr=stdout.fileno())
    assert result.returncode == 0 and (result.stdout, result.stderr) == (None, None)
    assert (tmp_path / "out").read_bytes() == b"from a file\nto err\n"
    # Nothing given: the command has ours, as a child of ours would.
    read_end, write_end = os.pipe()
    saved = os.dup(1)
    os.dup2(write_end, 1)
    try:
        sandbox.run(["echo", "inherited"])
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.read() == b"inherited\n"


def test_refuses_what_subprocess_run_refuses(tmp_path):
    for args, options, error in [
        (["cat"], {"input": b"x", "stdin": subprocess.PIPE}, ValueError),
        (["true"], {"capture_output": True, "stdout": subprocess.PIPE}, ValueError),
        (Path("/bin/true"), {"shell": True}, TypeError),
        (["echo", "nul\0byte"], {}, ValueError),
        (["true"], {"env": {"A=B": "c"}}, ValueError),
        (["cat"], {"input": "text without text=True"}, TypeError),
    ]:
        with pytest.raises(error):
            subprocess.run(args, **options)
        with pytest.raises(error):
            sandbox.run(args, **options)
    with pytest.raises(UsageError):
        sandbox.run([])


def test_timeout_raises_as_subprocess_does(tmp_path):
    script = "echo started; exec sleep 60"
    with pytest.raises(subprocess.TimeoutExpired) as plain:
        subprocess.run(["sh", "-c", script], capture_output=True, timeout=2)
    with pytest.raises(subprocess.TimeoutExpired) as boxed:
        sandbox.run(["sh", "-c", script], capture_output=True, timeout=2)
    assert (boxed.value.cmd, boxed.value.timeout, boxed.value.output, boxed.value.stderr) == (
        plain.value.cmd, plain.value.timeout, plain.value.output, plain.value.stderr) == (
        ["sh", "-c", script], 2, b"started\n", None)  # None: nothing was read


def test_returncode_as_subprocess_reports_a_signal_and_as_sockbox_run_the_rest(tmp_path):
    for signum in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        same(["sh", "-c", f"kill -{signum.name[3:]} $$"])
        assert sandbox.run(["sh", "-c", f"kill -{signum.name[3:]} $$"]).returncode == -signum
    same(["sh", "-c", "exit 130"])
    missing = sandbox.run(["no-such-command-anywhere"], capture_output=True, text=True)
    assert (missing.returncode, missing.stderr) == (127, "sockbox: no-such-command-anywhere: command not found\n")
    (tmp_path / "plain").write_text("not executable")
    refused = sandbox.run([str(tmp_path / "plain")], capture_output=True, text=True)
    assert refused.returncode == 126 and "Permission denied" in refused.stderr
    # A kill rule kills the whole sandbox with SIGKILL; sockbox run exits 137 for it.
    killer = dataclasses.replace(load_profile("localhost"),
                                 rules=(Rule("code:kill", frozenset({"socket"}), Action.KILL),))
    killed = sandbox.run([sys.executable, "-c", "import socket; socket.socket()"], profile=killer)
    assert killed.returncode == 128 + signal.SIGKILL
    assert [(e.call, e.action, e.rule) for e in killed.events] == [("socket", "kill", "code:kill")]


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
    assert sandbox.Sandbox is sandbox.api.Sandbox


# --- destinations, whatever the profile audits ----------------------------------------------


def reach_code(tcp_port: int, udp_port: int, refused_port: int) -> str:
    """Connect twice to the TCP server, send a datagram to 127.0.0.2, try a refused port."""
    return f"""
import socket
for _ in range(2):
    with socket.create_connection(("127.0.0.1", {tcp_port}), timeout=10) as s:
        s.sendall(b"ping"); s.recv(4)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"datagram", ("127.0.0.2", {udp_port}))
try:
    socket.create_connection(("127.0.0.1", {refused_port}), timeout=10)
except PermissionError:
    print("refused")
"""


@pytest.fixture
def udp_on_127_0_0_2():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


@pytest.mark.parametrize("log", ["none", "deny"])
def test_destinations_whatever_the_profile_audits(tcp_server, udp_on_127_0_0_2, log):
    udp_port = udp_on_127_0_0_2.getsockname()[1]
    refused_port = tcp_server.port + 1 if tcp_server.port < 65535 else 1
    profile = Profile.from_toml(f"""
[profile]
default = "allow"
log = "{log}"
[[rule]]
calls = ["connect"]
port = [{refused_port}]
action = "deny"
""", "reach.toml")
    result = sandbox.run([sys.executable, "-c", reach_code(tcp_server.port, udp_port, refused_port)],
                         profile=profile, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "refused\n", result.stderr
    assert udp_on_127_0_0_2.recv(100) == b"datagram"
    assert len(result.events) == (0 if log == "none" else 1)
    assert sorted((e.call, e.address, e.port, e.action) for e in result.destinations) == sorted([
        ("connect", "127.0.0.1", refused_port, "deny"),
        ("connect", "127.0.0.1", tcp_server.port, "allow"),  # once, though connected twice
        ("sendto", "127.0.0.2", udp_port, "allow")])
    assert all(isinstance(e, sandbox.Event) for e in result.destinations)
    result.assert_reached_only("127.0.0.0/8")  # the refused port was not reached
    with pytest.raises(AssertionError) as outside:
        result.assert_reached_only("127.0.0.1/32", "::1/128")
    sent = next(e for e in result.destinations if e.call == "sendto")
    assert str(outside.value) == ("reached outside 127.0.0.1/32, ::1/128:\n"
                                  f"  allow sendto 127.0.0.2 port {udp_port} by {sent.exe} "
                                  f"(pid {sent.pid}, default)")


def test_assert_reached_only_fails_under_localhost(tcp_server):
    # localhost audits denials only: the connect it allowed is seen all the same.
    result = sandbox.run([sys.executable, "-c", connect_code(tcp_server.port)], profile="localhost",
                         capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.events == []
    assert [(e.call, e.address, e.port) for e in result.destinations] == [
        ("connect", "127.0.0.1", tcp_server.port)]
    result.assert_reached_only("127.0.0.0/8")
    with pytest.raises(AssertionError, match=f"allow connect 127.0.0.1 port {tcp_server.port}"):
        result.assert_reached_only("10.0.0.0/8")


# --- the Profile object, exactly ------------------------------------------------------------


def connects(*ports: int) -> str:
    """Connect to each port on 127.0.0.1; print what each connect gave."""
    return f"""
import socket
for port in {list(ports)}:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"ping"); s.recv(4)
        print(port, "ok")
    except OSError as error:
        print(port, error.errno)
"""


def deny_connect_to(port: int, label: str = "code:deny") -> Rule:
    return Rule(label, frozenset({"connect"}), Action.DENY,
                address=(ipaddress.ip_network("127.0.0.1/32"),), port=(PortRange(port, port),))


@pytest.fixture
def two_servers():
    from helpers.servers import TcpServer
    servers = TcpServer(), TcpServer()
    yield servers
    for server in servers:
        server.close()


def built_profiles(port: int) -> dict[str, Profile]:
    """Profiles that deny the connect to `port` only because of what code added."""
    localhost = load_profile("localhost")
    return {
        "inline": localhost.with_inline_rules([], [f"connect=127.0.0.1:{port}"]),
        "replace": dataclasses.replace(localhost, rules=(deny_connect_to(port), *localhost.rules)),
        "code": Profile("built", "built in code", Action.ALLOW, 13, LogLevel.DENY,
                        (deny_connect_to(port),), "<code>"),
    }


@pytest.mark.parametrize("how", ["inline", "replace", "code"])
def test_rules_added_in_code_are_enforced(two_servers, how):
    denied, allowed = two_servers
    profile = built_profiles(denied.port)[how]
    result = sandbox.run([sys.executable, "-c", connects(denied.port, allowed.port)], profile=profile,
                         capture_output=True, text=True, timeout=60)
    assert result.stdout == f"{denied.port} 13\n{allowed.port} ok\n", result.stderr
    assert denied.received == [] and allowed.received == [b"ping"]
    (event,) = result.denied
    assert (event.call, event.port, event.rule) == (
        "connect", denied.port, profile.rules[0].label)


# The round trip a profile makes to the supervisor process: the frame the caller sends
# on a socket pair, unpickled as worker.py does.
def handed_over(profile: Profile) -> Profile:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        channel.send_frame(ours, channel.dumps(channel.Setup(profile)))
        frame = channel.receive_frame(theirs)
    assert frame is not None
    payload, fds = frame
    assert fds == []
    setup = worker._trusted(payload)
    assert isinstance(setup, channel.Setup)
    return setup.profile


@st.composite
def profiles_built_in_code(draw) -> Profile:
    """A random profile (a loaded document, or a built-in), changed in code: inline rules,
    fields replaced, rules reordered or dropped."""
    profile = outcome_of(lambda: Profile.from_toml(toml_document(draw(documents())), "fuzz.toml"))
    if not isinstance(profile, Profile):
        profile = load_profile(draw(st.sampled_from(["audit", "localhost", "offline", "server", "web"])))
    for text in draw(st.lists(shorthands, max_size=3)):
        action = draw(st.sampled_from([Action.ALLOW, Action.DENY, Action.KILL]))
        try:
            profile = profile.with_rules_first([inline_rule(text, action, f"--inline {text}")])
        except sandbox.SandboxError:
            pass
    rules = draw(st.permutations(profile.rules)) if draw(st.booleans()) else profile.rules
    return dataclasses.replace(
        profile, rules=tuple(rules[:draw(st.integers(0, len(rules)))]) if draw(st.booleans()) else tuple(rules),
        default=draw(st.sampled_from(list(Action))), log=draw(st.sampled_from(list(LogLevel))),
        text="" if draw(st.booleans()) else profile.text)


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(profile=profiles_built_in_code(), calls=st.lists(random_calls, min_size=1, max_size=8))
def test_profiles_reach_the_supervisor_equal_and_decide_alike(profile, calls):
    for call in calls[:2]:
        profile.decide(call)  # what a profile remembers does not travel, nor matter
    received = handed_over(profile)
    assert received == profile and type(received) is Profile
    assert "_decided" not in vars(received)
    for call in calls:
        verdict = profile.decide(call)
        assert received.decide(call) == verdict
        assert received.audits(verdict) == profile.audits(verdict)
    watched = filter.Supervision(destinations=True)
    assert filter.build(received, watched) == filter.build(profile, watched)


class Unknown(Glob):
    """A class the supervisor process cannot import (tests/ is not on its path)."""


def test_a_profile_that_cannot_travel_is_refused_before_anything_runs():
    class Local(Glob):  # not even picklable
        pass
    offline = load_profile("offline")
    for glob in (Local("/usr/bin/*"), Unknown("/usr/bin/*")):
        rule = Rule("code:rule", frozenset({"socket"}), Action.ALLOW, exe=(glob,))
        with pytest.raises(UsageError, match="cannot hand the profile to the supervisor process"):
            sandbox.Sandbox(dataclasses.replace(offline, rules=(rule,)))

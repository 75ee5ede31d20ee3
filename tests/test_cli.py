"""The command line as a user meets it: help, version, completion, profiles, show,
explain, and host names in rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import sockbox, write_profile


def test_version_and_help_on_every_command():
    assert sockbox("--version").stdout.startswith("sockbox ")
    top = sockbox("--help").stdout
    for command in ("run", "check", "explain", "learn", "profiles", "show"):
        assert command in top
        shown = sockbox(command, "--help")
        assert shown.returncode == 0 and "Usage: sockbox " + command in shown.stdout
    assert "--install-completion" in top


def test_shell_completion_script():
    # The shell is found among the caller's ancestors: a bash that stays the parent.
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m sandbox --show-completion; exit $?"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout


def test_profiles_lists_every_builtin_with_its_description():
    lines = sockbox("profiles").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["audit", "localhost", "offline", "server", "web"]
    assert all(len(line.split()) > 2 for line in lines)


def test_show_lists_rules_and_where_each_call_is_decided():
    shown = sockbox("show", "-p", "localhost").stdout
    assert "sockbox:rule[1]  deny setsockopt option=ip_options,ipv6_rthdr,ipv6_2292rthdr" in shown
    assert "x86_64: where each call is decided" in shown and "i386: where each call is decided" in shown
    rows = {line.split()[0]: line for line in shown.splitlines() if line.startswith("  ") and line.split()}
    assert "kernel allows if family in rule and type in rule" in rows["socket"]
    assert "supervisor" in rows["connect"]


@pytest.mark.parametrize("arguments,status,first_word", [
    (["connect", "127.0.0.1:8080"], 0, "allow"),
    (["connect", "[::1]:22"], 0, "allow"),
    (["connect", "10.0.0.1:80"], 1, "deny"),
    (["connect", "unix:/run/dbus/system_bus_socket"], 0, "allow"),
    (["connect", "unix:@/tmp/.X11-unix/X0"], 0, "allow"),
    (["bind", "0.0.0.0:80"], 1, "deny"),
    (["socket", "--family", "packet", "--type", "raw"], 1, "deny"),
    (["socket", "--family", "inet6", "--type", "dgram"], 0, "allow"),
    (["bind", "127.0.0.1:80"], 0, "allow"),
    (["sendto"], 0, "allow"),  # naming no destination, it is a plain send
])
def test_explain(arguments, status, first_word):
    result = sockbox("explain", "-p", "localhost", *arguments)
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stdout.split()[0] == first_word


def test_explain_bad_input_is_125():
    for arguments in (["conect"], ["connect", "300.1.1.1:1"], ["connect", "10.0.0.0/8"]):
        result = sockbox("explain", "-p", "localhost", *arguments)
        assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr


def test_host_rules_match_what_the_name_resolves_to(programs, tmp_path, tcp_server):
    profile = write_profile(tmp_path, f"""
[profile]
log = "all"
[[rule]]
calls = ["socket"]
action = "allow"
[[rule]]
calls = ["connect"]
host = ["localhost"]
port = [{tcp_server.port}]
action = "allow"
[[rule]]
calls = ["send", "recv"]
action = "allow"
""")
    log = tmp_path / "audit.jsonl"
    result = sockbox("run", "-p", profile, "--log", str(log), "--", programs("netprobe", 64),
                     "tcp", "127.0.0.1", str(tcp_server.port))
    assert result.returncode == 0, result.stdout + result.stderr
    connect = [json.loads(line) for line in log.read_text().splitlines() if '"connect"' in line]
    assert connect[0]["host"] == "localhost" and connect[0]["rule"] == "test.toml:rule[2]"
    assert sockbox("explain", "-p", profile, "connect", f"127.0.0.1:{tcp_server.port}").returncode == 0
    assert sockbox("explain", "-p", profile, "connect", f"127.0.0.2:{tcp_server.port}").returncode == 1


def test_a_host_that_does_not_resolve_stops_the_run(tmp_path):
    # In a network namespace of its own, the resolver cannot be reached: nothing leaves.
    profile = write_profile(tmp_path, """
[[rule]]
calls = ["connect"]
host = ["no-such-host.invalid"]
action = "deny"
""")
    marker = tmp_path / "ran"
    result = subprocess.run(["unshare", "--net", sys.executable, "-m", "sandbox", "run", "-p", profile,
                             "--", "touch", str(marker)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 125
    assert result.stderr.startswith(f"sockbox: {profile}: rule[1].host: no-such-host.invalid does not resolve")
    assert not marker.exists()


@pytest.mark.parametrize("value,message", [
    ('"10.0.0.1"', "is an address: write it under address"),
    ('"bad host"', "is not a host name"),
])
def test_host_values_are_checked(tmp_path, value, message):
    profile = write_profile(tmp_path, f'[[rule]]\ncalls = ["connect"]\nhost = [{value}]\naction = "allow"\n')
    result = sockbox("check", profile)
    assert result.returncode == 1 and message in result.stdout

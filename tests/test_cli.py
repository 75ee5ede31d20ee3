"""The command line as a user meets it: help, version, completion, profiles, show,
explain, and host names in rules."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.running import SOCKBOX, TESTS, in_new_netns, sockbox, write_profile
from sandbox import cli, entry, show
from sandbox.errors import UsageError
from sandbox.launch import RunOptions


COMMANDS = ("run", "check", "explain", "learn", "profiles", "show")


def test_version_and_help_on_every_command():
    assert sockbox("--version").stdout.startswith("sockbox ")
    top = sockbox("--help").stdout
    for command in COMMANDS:
        assert command in top
        shown = sockbox(command, "--help")
        assert shown.returncode == 0 and "Usage: sockbox " + command in shown.stdout
    assert "--install-completion" in top


def test_bare_sockbox_prints_its_help_as_help_does():
    bare = sockbox()
    assert (bare.returncode, bare.stderr) == (0, "")
    assert bare.stdout == sockbox("--help").stdout
    assert bare.stdout.startswith("Usage: sockbox ")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_what_a_user_types(command):
    shown = sockbox(*command.split(), "--help", env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"}).stdout
    usage = shown.splitlines()[0]
    assert not any(mark in shown for mark in ("<", "{", "list[", "[required]")), shown
    assert usage.startswith(f"Usage: sockbox {command}".rstrip())
    if not command:  # each command's summary whole, not cut off with "..."
        summaries = shown.split("Commands:\n")[1].splitlines()
        assert [line.split()[0] for line in summaries if line.startswith("  ") and line[2] != " "] == \
            list(dict.fromkeys(["run", "learn", "check", "explain", "show", "profiles"]))
        assert not any(line.rstrip().endswith("...") for line in summaries), shown


@pytest.mark.parametrize("arguments,page", [
    (["run", "--bogus", "true"], "sockbox run --help"),
    (["run"], "sockbox run --help"),
    (["run", "-p"], "sockbox run --help"),
    (["run", "--keep-fd", "-1", "true"], "sockbox run --help"),
    (["run", "--log-format", "xml", "--log", "-", "true"], "sockbox run --help"),
    (["run", "-qp", "offline", "--keep-fd", "x", "true"], "sockbox run --help"),
    (["learn", "--keep-fd", "x", "true"], "sockbox learn --help"),
    (["check"], "sockbox check --help"),
    (["explain", "-p", "localhost"], "sockbox explain --help"),
    (["show", "--bogus"], "sockbox show --help"),
    (["bogus"], "sockbox --help"),
])
def test_usage_errors_point_to_the_help_page_of_their_command(arguments, page):
    result = sockbox(*arguments)
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("sockbox: "), result.stderr
    assert result.stderr.rstrip().endswith(f"(see {page})"), result.stderr
    assert "Value error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("value,why", [
    ("99999999999", "not a descriptor number"),
    ("-1", "not a descriptor number"),
    ("x", "not a descriptor number"),
    ("97", "Bad file descriptor (it is not open)"),
])
@pytest.mark.parametrize("command", ["run", "learn"])
def test_keep_fd_takes_an_open_descriptor(tmp_path, command, value, why):
    marker = tmp_path / "ran"
    result = sockbox(command, "--keep-fd", value, "--", "touch", str(marker))
    assert result.returncode == 125
    assert result.stderr.startswith(f"sockbox: --keep-fd {value}: {why}"), result.stderr
    assert result.stderr.count("\n") == 1 and not marker.exists()


def test_log_format_needs_a_log(tmp_path):
    marker = tmp_path / "ran"
    result = sockbox("run", "--log-format", "text", "--", "touch", str(marker))
    assert result.returncode == 125 and not marker.exists()
    assert result.stderr.startswith("sockbox: --log-format applies to --log FILE"), result.stderr


def test_shell_completion_script():
    # The shell is found among the caller's ancestors: a bash that stays the parent.
    result = subprocess.run(["bash", "-c", f"{sys.executable} -m sandbox --show-completion; exit $?"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout


def test_profiles_lists_every_builtin_with_its_description():
    lines = sockbox("profiles").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["audit", "localhost", "offline", "server", "web", "workdir"]
    assert all(len(line.split()) > 2 for line in lines)


def test_show_lists_rules_and_where_each_call_is_decided(tmp_path):
    shown = sockbox("show", "-p", "localhost").stdout
    assert "sockbox:rule[1]  deny setsockopt option=ip_options,ipv6_rthdr,ipv6_2292rthdr" in shown
    assert "x86_64: where each call is decided" in shown and "i386: where each call is decided" in shown
    rows = {line.split()[0]: line for line in shown.splitlines() if line.startswith("  ") and line.split()}
    assert "kernel allows if family in rule and type in rule" in rows["socket"]
    assert "supervisor" in rows["connect"]
    assert shown.endswith(show.REPEATS + "\n")  # where repeats are decided, said once
    kernel_only = write_profile(tmp_path, '[profile]\ndefault = "allow"\nlog = "none"\n')
    assert show.REPEATS not in sockbox("show", "-p", kernel_only).stdout


def test_show_names_each_syscall_once_per_abi():
    # i386 reaches recvmmsg by two syscalls (and socketcall): each is told apart.
    shown = sockbox("show", "-p", "web").stdout
    plans = [section for section in shown.split("\n\n") if ": where each call is decided" in section]
    assert len(plans) == 2  # x86_64's, then i386's
    for section in plans:
        labels = [re.match(r"  (.+?) +(kernel|supervisor)", line).group(1)
                  for line in section.splitlines()[1:]]
        assert len(labels) == len(set(labels)), labels
    i386 = shown.split("i386: where each call is decided")[1]
    assert "\n  recvmmsg " in i386 and "\n  recvmmsg_time64 (recvmmsg) " in i386


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


LATE_HOST_PROFILE = """
[profile]
default = "deny"
{wait}
[[rule]]
calls = ["socket", "send", "recv", "sendto", "recvfrom", "getsockopt", "setsockopt",
         "getsockname", "getpeername", "shutdown"]
action = "allow"
[[rule]]
calls = ["connect"]
host = ["late.test"]
port = [80]
action = "allow"
"""
FETCH = ("import urllib.request, sys\n"
         "for url in sys.argv[1:]:\n"
         "    try: print(url, urllib.request.urlopen(url, timeout=5).read().decode(), end='')\n"
         "    except OSError as error: print(url, 'failed', error)\n")


def late_dns_run(tmp_path, dns_after: float, wait: str = "", option: tuple[str, ...] = ()) -> dict:
    """sockbox with a `host` rule for late.test, in a network namespace whose resolver
    (127.0.0.1, which answers 192.0.2.99, an address of the namespace's loopback) starts
    `dns_after` seconds after sockbox; the command fetches from late.test's address and
    from 127.0.0.1, which no rule allows."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    profile = write_profile(tmp_path, LATE_HOST_PROFILE.format(wait=wait))
    report = tmp_path / "report.json"
    command = in_new_netns(
        [sys.executable, str(TESTS / "loopback_servers.py"), "--dns-after", str(dns_after), str(report),
         "--", *SOCKBOX, "run", "-p", profile, *option, "--", sys.executable, "-c", FETCH,
         "http://192.0.2.99/", "http://127.0.0.1/"],
        setup=f"ip addr add 192.0.2.99/32 dev lo && mount --bind {resolv} /etc/resolv.conf", mounts=True)
    subprocess.run(command, capture_output=True, text=True, timeout=120)
    return json.loads(report.read_text())


def test_a_host_that_resolves_late_stops_the_run_without_a_wait(tmp_path):
    result = late_dns_run(tmp_path, dns_after=2)
    assert result["status"] == 125, result
    assert "rule[2].host: late.test does not resolve" in result["stderr"], result
    assert result["stdout"] == "" and result["http"] == 0


@pytest.mark.parametrize("given_by", ["profile", "option"])
def test_a_host_that_resolves_late_is_waited_for_and_nothing_runs_meanwhile(tmp_path, given_by):
    # the container whose DNS comes up a second or two after it: sockbox waits, then
    # judges by the name's addresses as always (fail-closed: 127.0.0.1 stays denied)
    wait, option = (("wait_for_hosts = 20", ()) if given_by == "profile"
                    else ("", ("--wait-for-hosts", "20")))
    result = late_dns_run(tmp_path, dns_after=2, wait=wait, option=option)
    assert result["status"] == 0, result
    assert "waiting up to 20 s for host names to resolve: late.test" in result["stderr"]
    assert "http://192.0.2.99/ hello from loopback" in result["stdout"], result
    assert "http://127.0.0.1/ failed" in result["stdout"] and result["http"] == 1, result
    assert "sockbox: deny connect(" in result["stderr"]


def test_the_wait_for_a_host_is_bounded(tmp_path):
    marker = tmp_path / "ran"
    profile = write_profile(tmp_path, '[profile]\nwait_for_hosts = 1.5\n[[rule]]\ncalls = ["connect"]\n'
                                      'host = ["no-such-host.invalid"]\naction = "allow"\n')
    result = subprocess.run(["unshare", "--net", *SOCKBOX, "run", "-p", profile, "--", "touch", str(marker)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 125 and not marker.exists()
    assert re.fullmatch(f"sockbox: {re.escape(profile)}: rule\\[1\\].host: no-such-host.invalid does not "
                        r"resolve \([^,]+, after 1.5 s\)", result.stderr.splitlines()[-1]), result.stderr


def test_a_signal_during_the_wait_for_a_host_ends_sockbox_as_it_would_the_command(tmp_path):
    # docker stop while DNS is late: sockbox ends at once, by the signal, nothing run
    marker = tmp_path / "ran"
    profile = write_profile(tmp_path, '[profile]\nwait_for_hosts = 60\n[[rule]]\ncalls = ["connect"]\n'
                                      'host = ["no-such-host.invalid"]\naction = "allow"\n')
    waiting = subprocess.Popen(["unshare", "--net", *SOCKBOX, "run", "-p", profile, "--", "touch", str(marker)],
                               stderr=subprocess.PIPE, text=True)
    assert waiting.stderr is not None
    assert "waiting up to 60 s" in waiting.stderr.readline()
    waiting.send_signal(signal.SIGTERM)
    assert waiting.wait(timeout=10) == -signal.SIGTERM and not marker.exists()


@pytest.mark.parametrize("value,in_toml", [("-1", "-1"), ("3601", "3601"), ("soon", '"soon"'),
                                           ("nan", "nan")])
def test_wait_for_hosts_values_are_checked(tmp_path, value, in_toml):
    result = sockbox("run", "--wait-for-hosts", value, "--", "true")
    assert result.returncode == 125
    assert result.stderr == (f"sockbox: --wait-for-hosts {value}: not a number of seconds from 0 to 3600 "
                             "(see sockbox run --help)\n")
    profile = write_profile(tmp_path, f"[profile]\nwait_for_hosts = {in_toml}\n")
    assert "profile.wait_for_hosts" in sockbox("check", profile).stdout


@pytest.mark.parametrize("value,message", [
    ('"10.0.0.1"', "is an address: write it under address"),
    ('"bad host"', "is not a host name"),
])
def test_host_values_are_checked(tmp_path, value, message):
    profile = write_profile(tmp_path, f'[[rule]]\ncalls = ["connect"]\nhost = [{value}]\naction = "allow"\n')
    result = sockbox("check", profile)
    assert result.returncode == 1 and message in result.stdout


# -- `sockbox run` parsed without typer (sandbox.entry) ------------------------------------

def fast_parsed(args: list[str]) -> RunOptions | str | None:
    """What entry's parser makes of a command line: the options `run` would start with,
    the words it refuses the line with, or None where it leaves the line to typer."""
    try:
        return entry.parse_run(args)
    except UsageError as error:
        return f"refused: {error}"


def typer_parsed(args: list[str], monkeypatch: pytest.MonkeyPatch) -> RunOptions | str | None:
    """What the typer app makes of a command line: the options `run` would start with,
    the words it refuses a value with, or None where click refuses the line."""
    started: list[RunOptions] = []
    monkeypatch.setattr(cli, "start", lambda options: started.append(options) or 0)
    try:
        cli.main(list(args))
    except UsageError as error:
        return f"refused: {error}"
    return started[0] if started else None


PLAIN_LINES = [
    ["run", "true"],
    ["run", "--", "true"],
    ["run", "-p", "web", "--", "curl", "-s", "http://127.0.0.1/"],
    ["run", "-pweb", "true"],
    ["run", "--profile=web", "true"],
    ["run", "--profile", "web", "-q", "true", "-p", "offline"],
    ["run", "-q", "--allow", "connect=127.0.0.1:80", "--allow=bind", "--deny", "connect", "true"],
    ["run", "--log", "-", "--log-format", "text", "true"],
    ["run", "--log=/tmp/x.log", "--log-format=json", "--quiet", "true"],
    ["run", "--keep-fd", "3", "--keep-fd=4", "true"],
    ["run", "--keep-fd", "007", "true"],
    ["run", "--", "--", "x"],
    ["run", "--log", "--", "true"],
    ["run", "--allow", "-q", "true"],
    ["run", "--profile", "", "true"],
    ["run", "-"],
    ["run", "-p", "web", "-p", "localhost", "true"],
    ["run", "--read", "/usr", "--read=/etc", "--write", ".", "true"],
    ["run", "--signals", "sandbox", "--cpu", "60", "--memory=1G", "--processes", "256",
     "--open-files", "1024", "true"],
    ["run", "--cpu", "1", "--cpu", "2", "--memory", "bogus", "true"],
]


@pytest.mark.pure
@pytest.mark.parametrize("args", PLAIN_LINES, ids=" ".join)
def test_plain_run_lines_are_parsed_without_typer_and_as_typer_parses_them(args, monkeypatch):
    fast = fast_parsed(args)
    assert isinstance(fast, RunOptions), "a plain `sockbox run` must not need typer"
    assert fast == typer_parsed(args, monkeypatch)


@pytest.mark.pure
@pytest.mark.parametrize("args", [
    ["run", "--keep-fd", "x", "true"], ["run", "--keep-fd", "-1", "true"],
    ["run", "--keep-fd=99999999999", "true"], ["run", "--keep-fd", "", "true"],
    ["run", "--keep-fd", "٣", "true"], ["run", "--log-format", "xml", "--log", "-", "true"],
    ["run", "--log-format", "text", "true"], ["run", "-q", "--log-format=json", "true"],
], ids=" ".join)
def test_bad_values_are_refused_without_typer_and_as_typer_refuses_them(args, monkeypatch):
    fast = fast_parsed(args)
    assert isinstance(fast, str) and fast.startswith("refused: --"), fast
    assert fast == typer_parsed(args, monkeypatch)


@pytest.mark.pure
@pytest.mark.parametrize("args", [
    ["run"], ["run", "--"], ["run", "-p"], ["run", "--help"], ["run", "-h", "true"],
    ["run", "-qp", "web", "true"], ["run", "-p=web", "true"], ["run", "--keep-fd", "-1", "-h", "true"],
    ["run", "--quiet=yes", "true"], ["run", "--bogus", "true"], ["--version"], ["check", "web"], [],
], ids=" ".join)
def test_other_lines_are_left_to_typer(args):
    assert entry.parse_run(args) is None


_TOKENS = ["run", "--", "-", "-p", "-pweb", "-p=x", "--profile", "--profile=", "--profile=web", "web",
           "-q", "--quiet", "-qp", "--allow", "--allow=connect", "connect=127.0.0.1:80", "--deny",
           "--log", "--log=-", "--log-format", "text", "xml", "--keep-fd", "--keep-fd=3", "3", "-1",
           "99999999999", "x", "-h", "--help", "true", "", "--bogus", "--read", "--write=.", "/usr",
           "--signals", "sandbox", "--cpu=5", "--memory", "1G", "--processes", "--open-files=9"]


@pytest.mark.pure
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.lists(st.sampled_from(_TOKENS), max_size=7))
def test_whatever_the_fast_parser_takes_typer_takes_alike(rest, monkeypatch):
    args = ["run", *rest]
    fast = fast_parsed(args)
    if fast is not None:
        assert fast == typer_parsed(args, monkeypatch)


def test_a_run_line_left_to_typer_runs_the_same():
    # Clustered short options are typer's to parse; the command runs all the same.
    assert entry.parse_run(["run", "-qp", "offline", "--", "sh", "-c", "exit 3"]) is None
    assert sockbox("run", "-qp", "offline", "--", "sh", "-c", "exit 3").returncode == 3

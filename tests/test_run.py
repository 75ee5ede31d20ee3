"""`sockbox run` end to end: real programs, real servers on loopback, every road in.

Each road is tried allowed (it must work, and the server must see the data) and denied
(the program must see the errno, and the server must see nothing).
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers.running import SOCKBOX, Terminal, sockbox, write_profile
from helpers.servers import UnixServer

# How a socket call enters the kernel (see tests/c/netprobe.c). From a 32-bit build,
# "syscall" already is the direct i386 syscall, so "int80" would repeat it.
ROADS = [(64, "libc"), (64, "syscall"), (64, "socketcall"), (64, "int80"),
         (32, "libc"), (32, "syscall"), (32, "socketcall")]
CONTEXTS = [[], ["--thread"], ["--fork"], ["--exec"], ["--vfork-exec"]]


def road_id(road: tuple[int, str]) -> str:
    return f"{road[1]}{road[0]}"


@pytest.mark.parametrize("context", CONTEXTS, ids=lambda c: c[0][2:] if c else "main")
@pytest.mark.parametrize("road", ROADS, ids=road_id)
def test_tcp_connect_every_road(programs, tcp_server, road, context):
    bits, via = road
    probe = [programs("netprobe", bits), *context, "--via", via, "tcp", "127.0.0.1", str(tcp_server.port)]

    allowed = sockbox("run", "-p", "localhost", "--", *probe)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "recv OK 4" in allowed.stdout
    assert tcp_server.received == [b"ping"]

    denied = sockbox("run", "-p", "localhost", "--deny", f"connect=127.0.0.1:{tcp_server.port}", "--", *probe)
    assert denied.returncode == 1, denied.stdout + denied.stderr
    assert "connect ERR EACCES" in denied.stdout
    assert "sockbox: deny connect(" in denied.stderr
    assert tcp_server.received == [b"ping"], "the denied connection reached the server"


@pytest.mark.parametrize("operation,call", [("udp", "sendto"), ("udp-msg", "sendmsg"),
                                            ("udp-connected", "connect")])
@pytest.mark.parametrize("road", ROADS, ids=road_id)
def test_udp_destinations_every_road(programs, udp_server, road, operation, call):
    bits, via = road
    probe = [programs("netprobe", bits), "--via", via, operation, "127.0.0.1", str(udp_server.port)]

    allowed = sockbox("run", "-p", "localhost", "--", *probe)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert udp_server.collect() == [b"ping"]

    denied = sockbox("run", "-q", "-p", "localhost", "--deny", f"{call}=127.0.0.1:{udp_server.port}", "--", *probe)
    assert f"{call} ERR EACCES" in denied.stdout
    assert udp_server.collect() == []


@pytest.mark.parametrize("road", ROADS, ids=road_id)
def test_sendmmsg_checks_every_message(programs, udp_server, road):
    bits, via = road
    probe = [programs("netprobe", bits), "--via", via, "udp-mmsg", "127.0.0.1", str(udp_server.port), "3"]

    allowed = sockbox("run", "-p", "localhost", "--", *probe)
    assert "sendmmsg OK 3" in allowed.stdout, allowed.stdout + allowed.stderr
    assert udp_server.collect() == [b"ping"] * 3

    denied = sockbox("run", "-q", "-p", "localhost", "--deny", f"sendmmsg=127.0.0.1:{udp_server.port}", "--", *probe)
    assert "sendmmsg ERR EACCES" in denied.stdout
    assert udp_server.collect() == []


@pytest.mark.parametrize("bits", [64, 32])
def test_ipv6_connect(programs, tcp6_server, bits):
    probe = [programs("netprobe", bits), "tcp", "::1", str(tcp6_server.port)]
    assert sockbox("run", "-p", "localhost", "--", *probe).returncode == 0
    assert tcp6_server.received == [b"ping"]
    denied = sockbox("run", "-q", "-p", "localhost", "--deny", f"connect=[::1]:{tcp6_server.port}", "--", *probe)
    assert "connect ERR EACCES" in denied.stdout
    assert tcp6_server.received == [b"ping"]


def test_ipv4_mapped_address_is_judged_as_ipv4(programs, tcp6_server):
    # An inet6 socket connecting to ::ffff:127.0.0.1 reaches 127.0.0.1 over IPv4, so a
    # rule about 127.0.0.1 must decide it. The IPv4 server here listens on ::1 only,
    # so an IPv4 listener is made for the allowed half.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    probe = [programs("netprobe", 64), "raw-connect", "10",
             "0a00" + port.to_bytes(2, "big").hex() + "00000000" + "00000000000000000000ffff7f000001" + "00000000"]
    with listener:
        allowed = sockbox("run", "-p", "localhost", "--", *probe)
        assert "connect OK 0" in allowed.stdout, allowed.stdout + allowed.stderr
        denied = sockbox("run", "-q", "-p", "localhost", "--deny", f"connect=127.0.0.1:{port}", "--", *probe)
        assert "connect ERR EACCES" in denied.stdout


@pytest.mark.parametrize("bits", [64, 32])
def test_unix_path_and_abstract(programs, unix_server, abstract_server, bits, tmp_path):
    probe = programs("netprobe", bits)
    path = unix_server.address
    assert sockbox("run", "-p", "offline", "--", probe, "unix", path).returncode == 0
    assert unix_server.received == [b"ping"]
    denied = sockbox("run", "-q", "-p", "offline", "--deny", f"connect=unix:{path}", "--", probe, "unix", path)
    assert "connect ERR EACCES" in denied.stdout
    assert unix_server.received == [b"ping"]

    name = abstract_server.address[1:]
    assert sockbox("run", "-p", "offline", "--", probe, "unix-abstract", name).returncode == 0
    assert abstract_server.received == [b"ping"]
    denied = sockbox("run", "-q", "-p", "offline", "--deny", f"connect=unix:@{name}", "--", probe, "unix-abstract", name)
    assert "connect ERR EACCES" in denied.stdout
    assert abstract_server.received == [b"ping"]


def test_relative_unix_path_is_resolved_against_the_callers_directory(programs, unix_server, tmp_path):
    directory = os.path.dirname(unix_server.address)
    profile = write_profile(tmp_path, f"""
[[rule]]
calls = ["socket"]
family = ["unix"]
action = "allow"
[[rule]]
calls = ["connect"]
path = ["{directory}/*.sock"]
action = "allow"
[[rule]]
calls = ["send", "recv"]
action = "allow"
""")
    probe = [programs("netprobe", 64), "unix", "server.sock"]
    result = sockbox("run", "-p", profile, "--", *probe, cwd=directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert unix_server.received == [b"ping"]
    # The same relative name from another directory is another socket, outside the rule.
    other = tmp_path / "other"
    other.mkdir()
    other_server = UnixServer(str(other / "server.sock"))
    elsewhere = sockbox("run", "-p", profile, "--", *probe, cwd=other)
    assert "connect ERR EACCES" in elsewhere.stdout
    assert other_server.received == []
    # A name that resolves to nothing is judged as written: outside the rule, denied;
    # inside it, failed as the kernel fails it.
    nowhere = sockbox("run", "-p", profile, "--", *probe, cwd="/")
    assert "connect ERR EACCES" in nowhere.stdout
    missing = [programs("netprobe", 64), "unix", "gone.sock"]
    gone = sockbox("run", "-p", profile, "--", *missing, cwd=directory)
    assert "connect ERR ENOENT" in gone.stdout


@pytest.mark.parametrize("bits", [64, 32])
def test_socket_family_decided_in_kernel(programs, bits):
    probe = programs("netprobe", bits)
    # AF_PACKET (17) is not in the localhost profile; AF_UNIX (1) is.
    assert "socket ERR EACCES" in sockbox("run", "-q", "-p", "localhost", "--", probe, "socket", "17", "3", "0").stdout
    assert "socket OK" in sockbox("run", "-p", "localhost", "--", probe, "socket", "1", "1", "0").stdout
    assert "socketpair OK" in sockbox("run", "-p", "offline", "--", probe, "socketpair").stdout


@pytest.mark.parametrize("bits", [64, 32])
def test_a_profile_bigger_than_the_kernels_filter_runs_as_written(programs, tmp_path, bits):
    # 1500 socket rules cannot all be kernel instructions; the supervisor takes them.
    rules = "".join(f'[[rule]]\ncalls = ["socket"]\nfamily = ["inet"]\nprotocol = [{number}]\n'
                    f'action = "allow"\n' for number in range(1, 1501))
    profile = write_profile(tmp_path, '[profile]\ndefault = "deny"\n' + rules)
    probe = programs("netprobe", bits)
    allowed = sockbox("run", "-p", profile, "--", probe, "socket", "2", "2", "17")
    assert "socket OK" in allowed.stdout, allowed.stdout + allowed.stderr
    denied = sockbox("run", "-q", "-p", profile, "--", probe, "socket", "10", "2", "17")
    assert "socket ERR EACCES" in denied.stdout, denied.stdout + denied.stderr


@pytest.mark.parametrize("road", ROADS, ids=road_id)
def test_bad_pointers_and_lengths_get_the_kernels_errno(programs, road):
    bits, via = road
    probe = programs("netprobe", bits)
    for operation, expected in (("bad-pointer", "connect ERR EFAULT"), ("bad-length", "connect ERR EINVAL")):
        native = subprocess.run([probe, "--via", via, operation], capture_output=True, text=True)
        assert expected in native.stdout
        sandboxed = sockbox("run", "-p", "localhost", "--", probe, "--via", via, operation)
        assert expected in sandboxed.stdout, sandboxed.stdout + sandboxed.stderr
    if via == "socketcall":
        sandboxed = sockbox("run", "-p", "localhost", "--", probe, "--via", via, "bad-socketcall-array")
        assert "socketcall ERR EFAULT" in sandboxed.stdout


# --- real clients -------------------------------------------------------------------------


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        body = b"hello from loopback\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_curl(http_server):
    url = f"http://127.0.0.1:{http_server.server_port}/curl"
    allowed = sockbox("run", "-p", "localhost", "--", "curl", "-sS", url)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout == "hello from loopback\n"
    assert http_server.requests == ["/curl"]

    denied = sockbox("run", "-p", "localhost", "--deny", f"connect=127.0.0.1:{http_server.server_port}",
                     "--", "curl", "-sS", url)
    assert denied.returncode == 7  # curl: couldn't connect
    assert "sockbox: deny connect(" in denied.stderr
    assert http_server.requests == ["/curl"]


def test_python_client(http_server):
    code = (f"import urllib.request; print(urllib.request.urlopen("
            f"'http://127.0.0.1:{http_server.server_port}/py', timeout=10).read().decode(), end='')")
    allowed = sockbox("run", "-p", "localhost", "--", sys.executable, "-c", code)
    assert allowed.stdout == "hello from loopback\n", allowed.stderr
    denied = sockbox("run", "-p", "offline", "--", sys.executable, "-c", code)
    assert denied.returncode == 1
    assert "PermissionError" in denied.stderr
    assert "sockbox: deny socket(AF_INET" in denied.stderr
    assert http_server.requests == ["/py"]


# --- exit statuses, options, audit ----------------------------------------------------------


def test_exit_status_of_the_command():
    assert sockbox("run", "--", "sh", "-c", "exit 7").returncode == 7
    assert sockbox("run", "sh", "-c", "exit 0").returncode == 0


def test_a_command_killed_by_a_signal_ends_sockbox_by_the_same_signal():
    for sig in (signal.SIGTERM, signal.SIGSEGV, signal.SIGINT):
        # subprocess reports a death by signal S as -S, a shell as 128 + S
        assert sockbox("run", "--", "sh", "-c", f"kill -{sig.name[3:]} $$").returncode == -sig
        shell = subprocess.run(["sh", "-c", '"$@"; echo "status $?"', "-", *SOCKBOX, "run", "--",
                                "sh", "-c", f"kill -{sig.name[3:]} $$"], capture_output=True, text=True)
        assert shell.stdout == f"status {128 + sig}\n"
        assert "core" not in shell.stderr  # sockbox's own end dumps no core


def test_ctrl_c_stops_a_shell_loop_of_sockbox_runs():
    # bash ends a loop when its foreground command died of SIGINT, not when it exited 130.
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes an interactive shell
        os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
    output = b""

    def read_until(token: bytes) -> None:
        nonlocal output
        deadline = time.monotonic() + 20
        while token not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            output += os.read(master, 4096)

    command = " ".join(SOCKBOX)
    os.write(master, f"for i in 1 2 3; do {command} run -- sleep 5; echo round-$((i * 11)); done; "
                     f"echo loop-$((6 * 7))\n".encode())
    time.sleep(2)  # sockbox and sleep are running
    os.write(master, b"\x03")  # Ctrl-C
    os.write(master, b"echo after-$((2 * 3))\n")
    read_until(b"after-6")
    assert b"round-11" not in output and b"loop-42" not in output, output.decode(errors="replace")
    os.write(master, b"exit\n")
    os.waitpid(pid, 0)
    os.close(master)


def test_command_not_found_and_not_executable(tmp_path):
    missing = sockbox("run", "--", "no-such-command-anywhere")
    assert missing.returncode == 127
    assert missing.stderr.strip() == "sockbox: no-such-command-anywhere: command not found"
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(stat.S_IRUSR)
    unrunnable = sockbox("run", "--", str(script))
    assert unrunnable.returncode == 126
    assert unrunnable.stderr.count("\n") == 1


@pytest.mark.parametrize("command,status,says", [
    ("{tmp}", 126, "{tmp}: Is a directory"),
    ("{tmp}/script.sh", 126, "{tmp}/script.sh: /no/such/interpreter: bad interpreter: No such file or directory"),
    ("script.sh", 126, "{tmp}/script.sh: /no/such/interpreter: bad interpreter: No such file or directory"),
    ("", 127, ": command not found"),
    ("{tmp}/missing", 127, "{tmp}/missing: No such file or directory"),
    ("missing", 127, "missing: command not found"),
])
def test_why_a_command_cannot_run_is_said_as_a_shell_says_it(tmp_path, command, status, says):
    script = tmp_path / "script.sh"
    script.write_text("#!/no/such/interpreter\necho hi\n")
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"}
    result = sockbox("run", "--", command.format(tmp=tmp_path), env=env)
    assert (result.returncode, result.stderr) == (status, f"sockbox: {says.format(tmp=tmp_path)}\n")


def test_first_word_that_is_not_an_option_starts_the_command():
    result = sockbox("run", "-p", "offline", "sh", "-c", "echo $1 $2", "x", "--quiet", "-p")
    assert result.returncode == 0
    assert result.stdout == "--quiet -p\n"


@pytest.mark.parametrize("arguments,message", [
    (["run"], "Missing argument"),
    (["run", "--no-such-option", "true"], "No such option"),
    (["run", "-p", "no-such-profile", "true"], "no built-in profile"),
    (["run", "--allow", "conect=1.2.3.4", "true"], "unknown call 'conect'"),
    (["run", "--log-format", "xml", "--log", "-", "true"], "xml"),
])
def test_bad_input_is_one_line_and_125(arguments, message):
    result = sockbox(*arguments)
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("sockbox: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_profile_stops_before_anything_runs(tmp_path):
    marker = tmp_path / "ran"
    profile = write_profile(tmp_path, '[[rule]]\ncalls = ["connect"]\nport = [70000]\naction = "allow"\n')
    result = sockbox("run", "-p", profile, "--", "touch", str(marker))
    assert result.returncode == 125
    assert result.stderr.strip() == f"sockbox: {profile}: rule[1].port: port 70000 is outside 0-65535"
    assert not marker.exists()


def test_profile_by_builtin_name_with_toml_suffix(tmp_path):
    result = sockbox("run", "-p", "web.toml", "--", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_audit_log_json_record(programs, tcp_server, tmp_path):
    log = tmp_path / "audit.jsonl"
    probe = programs("netprobe", 64)
    result = sockbox("run", "-p", "localhost", "--deny", f"connect=127.0.0.1:{tcp_server.port}",
                     "--log", str(log), "--", probe, "tcp", "127.0.0.1", str(tcp_server.port))
    assert result.stderr == ""  # with --log, denials go to the log only
    *records, summary = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 1
    record = records[0]
    # At exit, one summary: every decision the supervisor made, by call and action.
    assert summary["summary"] is True
    assert summary["decisions"] == {"connect": {"deny": 1}}
    assert summary["stops"] >= 1 and summary["status"] == 1
    assert set(record) >= {"time", "pid", "exe", "abi", "via", "call", "fd", "family", "address",
                           "port", "action", "errno", "rule"}
    assert record["exe"] == probe
    assert (record["abi"], record["via"], record["call"]) == ("x86_64", "direct", "connect")
    assert (record["family"], record["address"], record["port"]) == ("inet", "127.0.0.1", tcp_server.port)
    assert (record["action"], record["errno"]) == ("deny", "EACCES")
    assert record["rule"] == f"--deny connect=127.0.0.1:{tcp_server.port}"
    assert record["time"].endswith("Z")


@pytest.mark.parametrize("bits,via,abi,entry", [
    (64, "socketcall", "i386", "socketcall"), (64, "int80", "i386", "direct"),
    (32, "socketcall", "i386", "socketcall"), (32, "syscall", "i386", "direct"),
])
def test_audit_record_names_abi_and_entry(programs, tmp_path, bits, via, abi, entry):
    log = tmp_path / "audit.jsonl"
    sockbox("run", "-p", "offline", "--log", str(log), "--", programs("netprobe", bits),
            "--via", via, "tcp", "127.0.0.1", "9")
    record, _summary = [json.loads(line) for line in log.read_text().splitlines()]
    assert (record["abi"], record["via"], record["call"]) == (abi, entry, "socket")
    assert (record["family"], record["type"], record["protocol"]) == ("inet", "stream", "tcp")
    assert record["rule"] is None  # the offline profile's default denied it


def test_audit_profile_records_everything_and_text_format(programs, tcp_server, tmp_path):
    log = tmp_path / "audit.txt"
    sockbox("run", "-p", "audit", "--log", str(log), "--log-format", "text", "--",
            programs("netprobe", 64), "tcp", "127.0.0.1", str(tcp_server.port))
    *lines, summary = log.read_text().splitlines()
    assert summary.startswith("sockbox: summary: connect allow 1, recvfrom allow 1, sendto allow 1, socket allow 1;")
    assert [line.split("(")[0] for line in lines] == [
        "sockbox: allow socket", "sockbox: allow connect", "sockbox: allow sendto",
        "sockbox: allow recvfrom"]
    assert f'sin_port=htons({tcp_server.port}), sin_addr=inet_addr("127.0.0.1")' in lines[1]


def test_quiet_and_log_to_stderr(programs):
    probe = [programs("netprobe", 64), "socket", "2", "1", "0"]
    assert sockbox("run", "-q", "-p", "offline", "--", *probe).stderr == ""
    record, summary = sockbox("run", "-p", "offline", "--log", "-", "--", *probe).stderr.splitlines()
    assert json.loads(record)["call"] == "socket"
    assert json.loads(summary)["decisions"] == {"socket": {"deny": 1}}


def test_allow_rule_on_the_command_line(programs, tcp_server):
    probe = [programs("netprobe", 64), "tcp", "127.0.0.1", str(tcp_server.port)]
    assert sockbox("run", "-q", "-p", "offline", "--", *probe).returncode == 1
    result = sockbox("run", "-p", "offline", "--allow", "socket=inet", "--allow",
                     f"connect,sendto=127.0.0.1:{tcp_server.port}", "--", *probe)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tcp_server.received == [b"ping"]


def test_kill_rule_ends_the_whole_sandbox(programs, tcp_server, tmp_path):
    profile = write_profile(tmp_path, f"""
[profile]
default = "allow"
[[rule]]
calls = ["connect"]
port = [{tcp_server.port}]
action = "kill"
""")
    log = tmp_path / "audit.jsonl"
    probe = programs("netprobe", 64)
    started = time.monotonic()
    # A sibling that would otherwise keep the sandbox alive for a minute.
    result = sockbox("run", "-p", profile, "--log", str(log), "--", "sh", "-c",
                     f"sleep 60 & {probe} tcp 127.0.0.1 {tcp_server.port}; wait")
    assert result.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - started < 30
    assert tcp_server.received == []
    record, summary = [json.loads(line) for line in log.read_text().splitlines()]
    assert (record["action"], record["call"], record["rule"]) == ("kill", "connect", "test.toml:rule[1]")
    assert summary["status"] == 128 + signal.SIGKILL


def test_descendants_outliving_the_command_are_still_supervised(programs, tcp_server):
    probe = programs("netprobe", 64)
    # The command exits at once; its background child connects a moment later.
    script = f"(sleep 0.5; {probe} tcp 127.0.0.1 {tcp_server.port}) & exit 3"
    result = sockbox("run", "-p", "localhost", "--deny", f"connect=127.0.0.1:{tcp_server.port}", "--",
                     "sh", "-c", script)
    assert result.returncode == 3
    assert "connect ERR EACCES" in result.stdout
    assert tcp_server.received == []


def test_terminal_passes_through_to_an_interactive_shell(tmp_path):
    shell = Terminal("run", "--", "bash", "--norc", "--noprofile", "-i")
    shell.type(b"test -t 0 && test -t 1 && echo tty-$((6 * 7))\n")
    shell.read_until(b"tty-42")
    shell.type(b"sleep 30\n")
    time.sleep(0.5)
    shell.type(b"\x03")  # Ctrl-C: the shell's job dies, the shell and sockbox live
    shell.type(b"echo after-$((2 + 3))\n")
    shell.read_until(b"after-5")
    shell.type(b"exit 4\n")
    shell.read_until(b"exit")
    assert shell.exit_status() == 4


def test_works_for_an_unprivileged_user(programs, tcp_server, tmp_path):
    probe = [programs("netprobe", 64), "tcp", "127.0.0.1", str(tcp_server.port)]
    become = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    command = [*become, sys.executable, "-m", "sandbox", "run", "-p", "localhost"]
    env = {**os.environ, "HOME": "/nonexistent"}
    allowed = subprocess.run([*command, "--", *probe], capture_output=True, text=True, env=env, cwd="/")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert tcp_server.received == [b"ping"]
    denied = subprocess.run([*command, "--deny", f"connect=127.0.0.1:{tcp_server.port}", "--", *probe],
                            capture_output=True, text=True, env=env, cwd="/")
    assert "connect ERR EACCES" in denied.stdout
    assert tcp_server.received == [b"ping"]


@pytest.mark.parametrize("tracer", ["sockbox", "strace"])
def test_a_sockbox_inside_a_sandbox_or_a_tracer_says_so(tracer, tmp_path):
    # A traced process cannot trace: a nested sockbox stops before running anything,
    # with one line that says why (not that some syscall is refused).
    marker = tmp_path / "ran"
    outer = {"sockbox": [*SOCKBOX, "run", "--"], "strace": ["strace", "-f", "-qq", "-o", "/dev/null"]}
    result = subprocess.run([*outer[tracer], sys.executable, "-m", "sandbox", "run", "--", "touch",
                             str(marker)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 125
    assert re.fullmatch(r"sockbox: sockbox is itself traced \(by process \d+: another sockbox, a "
                        r"debugger or strace\), and a traced process cannot trace its command: "
                        r"sandboxes do not nest\n", result.stderr), result.stderr
    assert not marker.exists()


def test_explain_and_show():
    allowed = sockbox("explain", "-p", "web", "connect", "93.184.216.34:443")
    assert (allowed.returncode, allowed.stdout) == (
        0, "allow (web.toml:rule[2]: allow connect,sendto,sendmsg,sendmmsg "
           "address=0.0.0.0/0,::/0 port=80,443,53)\n")
    denied = sockbox("explain", "-p", "web", "connect", "[2001:db8::1]:22")
    assert (denied.returncode, denied.stdout) == (1, "deny EACCES (the default of web.toml)\n")
    assert sockbox("explain", "-p", "web", "connect", "10.0.0.0/8").returncode == 125
    shown = sockbox("show", "-p", "web").stdout
    assert "web.toml:rule[2]  allow connect,sendto,sendmsg,sendmmsg" in shown
    # a plain send never stops; a connect always asks the supervisor
    rows = [line.split() for line in shown.splitlines() if line.startswith("  ") and line.split()]
    assert any(row[:3] == ["sendto", "dest_addr", "NULL"] and row[3:5] == ["kernel", "allows"]
               for row in rows)
    assert any(row[0] == "connect" and row[1] == "supervisor" for row in rows)

"""Attacks on the sandbox, each run for real against a listener outside it that must see
nothing; and each road tried to an allowed place too, which must still work.

The classes follow SECURITY.md: deciding on what the kernel will use (races), roads
that carry a destination, roads around the filter, descriptors from outside, and
failing closed on the unknown.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest

from helpers.running import SOCKBOX, TESTS, Terminal, in_new_netns, sockbox, write_profile
from helpers.servers import SecretServer, TcpServer, UdpServer, UnixServer

pytestmark = pytest.mark.runtime_defaults


def guarded_profile(directory, allowed_port: int, extra: str = "") -> str:
    """IP sockets may be made; they may reach 127.0.0.1 only on `allowed_port`."""
    return write_profile(directory, f"""
[profile]
description = "loopback, one port"
[[rule]]
calls = ["socket", "socketpair"]
family = ["inet", "inet6", "unix"]
action = "allow"
[[rule]]
calls = ["connect", "sendto", "sendmsg", "sendmmsg"]
address = ["127.0.0.1/32", "::1/128"]
port = [{allowed_port}]
action = "allow"
{extra}
[[rule]]
calls = ["send", "recv", "recvfrom", "recvmsg", "getsockopt", "setsockopt", "getsockname",
         "getpeername", "shutdown"]
action = "allow"
""", name="guarded.toml")


@pytest.fixture
def denied_tcp():
    server = TcpServer()
    yield server
    server.close()


# --- 1. decide on what the kernel will use ---------------------------------------------------

RACES = [("connect", 64), ("connect", 32), ("sendto", 64), ("sendto", 32), ("sendmsg", 64),
         ("sendmsg", 32), ("sendmsg-name", 64), ("sendmmsg", 64), ("sendmmsg", 32),
         ("socketcall", 64), ("socketcall", 32), ("procmem", 64), ("procmem", 32)]


@pytest.mark.parametrize("mode,bits", RACES, ids=[f"{m}{b}" for m, b in RACES])
def test_rewriting_memory_after_the_check_gets_nothing_through(programs, tmp_path, mode, bits):
    # A second thread (or, for procmem, a second process through /proc/PID/mem) keeps
    # flipping the destination between an allowed port and a denied one while the
    # call is made 2000 times. Natively about half would go to the denied port.
    # A direct connect or UDP sendto is also served by the C fast path once its facts
    # repeat: the summary's repeats show that the race was run against it too.
    kind = TcpServer if mode in ("connect", "socketcall", "procmem") else UdpServer
    allowed, denied = kind(), kind()
    log = tmp_path / "log.jsonl"
    try:
        profile = guarded_profile(tmp_path, allowed.port)
        result = sockbox("run", "-q", "-p", profile, "--log", str(log), "--", programs("race", bits),
                         mode, str(allowed.port), str(denied.port), "2000", timeout=300)
        assert result.stdout.startswith("done 2000"), result.stdout + result.stderr
        if mode in ("connect", "procmem", "sendto") and not SOCKBOX.outer:
            # (where pidfd_getfd is refused, descriptors are handed over: no fast path)
            assert json.loads(log.read_text().splitlines()[-1])["repeats"] > 0
        if kind is UdpServer:
            reached_allowed, reached_denied = len(allowed.collect()), len(denied.collect())
        else:
            time.sleep(0.3)  # let the accept threads record what the kernel queued
            reached_allowed, reached_denied = len(allowed.received), len(denied.received)
        assert reached_denied == 0, f"{reached_denied} calls reached the denied port"
        assert reached_allowed > 0, "the race never took the allowed road"
    finally:
        allowed.close()
        denied.close()


def test_swapping_a_symlink_after_the_check_gets_nothing_through(programs, tmp_path):
    # DIR/link flips between DIR/allowed and DIR/denied, each holding a listening
    # socket `sock`; only DIR/allowed/* may be reached.
    tmp_path.chmod(0o755)
    (tmp_path / "allowed").mkdir()
    (tmp_path / "denied").mkdir()
    allowed = UnixServer(str(tmp_path / "allowed" / "sock"))
    denied = UnixServer(str(tmp_path / "denied" / "sock"))
    os.symlink(tmp_path / "allowed", tmp_path / "link")
    profile = write_profile(tmp_path, f"""
[[rule]]
calls = ["socket"]
family = ["unix"]
action = "allow"
[[rule]]
calls = ["connect"]
path = ["{tmp_path}/allowed/*"]
action = "allow"
""")
    try:
        result = sockbox("run", "-q", "-p", profile, "--", programs("race", 64), "unix",
                         str(tmp_path), "-", "2000", timeout=300)
        assert result.stdout.startswith("done 2000"), result.stdout + result.stderr
        time.sleep(0.3)
        assert denied.received == []
        assert allowed.received, "the race never took the allowed road"
    finally:
        allowed.close()
        denied.close()


def symlinked_pair(base: Path) -> Path:
    """BASE/allowed, BASE/denied, and BASE/link pointing at BASE/allowed."""
    base.mkdir()
    (base / "allowed").mkdir()
    (base / "denied").mkdir()
    os.symlink(base / "allowed", base / "link")
    return base


@pytest.mark.parametrize("bits", [64, 32])
def test_swapping_a_symlink_under_a_bind_leaves_no_live_socket_in_a_denied_directory(
        programs, tmp_path, bits):
    # DIR/link flips between DIR/allowed and DIR/denied while the program binds at
    # DIR/link/sock.N, each time a new N; only binds under */allowed/ are allowed. The
    # supervisor binds with the program's own path, which the kernel resolves once more,
    # so a flip in between can land the socket in DIR/denied: it must then end the
    # sandbox before the program hears of it. Natively about half the binds land there.
    tmp_path.chmod(0o755)
    profile = write_profile(tmp_path, f"""
[[rule]]
calls = ["socket"]
family = ["unix"]
action = "allow"
[[rule]]
calls = ["bind"]
path = ["{tmp_path}/*/allowed/*"]
action = "allow"
""")
    race = programs("race", bits)

    # The same road, left alone, works: each bind succeeds, its socket in DIR/allowed.
    still = symlinked_pair(tmp_path / "still")
    result = sockbox("run", "-q", "-p", profile, "--", race, "unix-bind", str(still), "still", "50")
    assert result.stdout == "done 50 ok 50 refused 0 escaped 0\n", result.stdout + result.stderr
    assert sorted(os.listdir(still / "allowed")) == sorted(f"sock.{i}" for i in range(50))
    assert all((still / "allowed" / f"sock.{i}").is_socket() for i in range(50))
    assert os.listdir(still / "denied") == []

    flipped = symlinked_pair(tmp_path / "flipped")
    result = sockbox("run", "-q", "-p", profile, "--", race, "unix-bind", str(flipped), "-", "2000",
                     timeout=300)
    landed = os.listdir(flipped / "denied")
    if result.returncode == 0:
        assert re.fullmatch(r"done 2000 ok [1-9]\d* refused \d+ escaped 0\n", result.stdout), \
            result.stdout
        assert landed == [], f"binds reached {landed}"
        return
    # A bind landed where it was not judged to: the sandbox ended at that bind, with
    # one line saying so, before the program (or any other process) could use it.
    assert result.returncode == 125, result.stdout + result.stderr
    assert result.stdout == ""
    breach = re.fullmatch(rf"sockbox: a bind to {re.escape(str(flipped))}/link/(sock\.\d+) reached "
                          r"another place than the one judged: its path changed meanwhile; "
                          r"every process in the sandbox was killed\n", result.stderr)
    assert breach, result.stderr
    assert landed == [breach[1]]  # that one bind, and no other
    with socket.socket(socket.AF_UNIX) as client, pytest.raises(ConnectionRefusedError):
        client.connect(str(flipped / "denied" / landed[0]))  # no one answers there
    leftover = subprocess.run(["pgrep", "-f", str(flipped)], capture_output=True, check=False)
    assert leftover.stdout == b""  # and no process of the sandbox lives on


# --- 2. every road that carries a destination is checked ----------------------------------------


def sockaddr_in_hex(family: int, host: str, port: int) -> str:
    return (struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)).hex()


@pytest.mark.parametrize("bits", [64, 32])
def test_tcp_fast_open_names_a_destination(programs, tmp_path, tcp_server, denied_tcp, bits):
    profile = guarded_profile(tmp_path, tcp_server.port)
    probe = programs("netprobe", bits)
    denied = sockbox("run", "-q", "-p", profile, "--", probe, "tcp-fastopen", "127.0.0.1", str(denied_tcp.port))
    assert "sendto ERR EACCES" in denied.stdout
    allowed = sockbox("run", "-q", "-p", profile, "--", probe, "tcp-fastopen", "127.0.0.1", str(tcp_server.port))
    assert "sendto OK 4" in allowed.stdout, allowed.stdout + allowed.stderr
    time.sleep(0.3)
    assert tcp_server.received == [b"ping"]
    assert denied_tcp.received == []


def test_af_unspec_destination_is_judged_as_the_ipv4_address_it_carries(programs, tmp_path, udp_server):
    # udp_sendmsg sends an AF_UNSPEC sockaddr to the IPv4 address inside it.
    allowed = UdpServer()
    try:
        profile = guarded_profile(tmp_path, allowed.port)
        probe = programs("netprobe", 64)
        for port, expected in ((udp_server.port, "sendto ERR EACCES"), (allowed.port, "sendto OK 4")):
            result = sockbox("run", "-q", "-p", profile, "--", probe, "raw-sendto", "2",
                             sockaddr_in_hex(0, "127.0.0.1", port))
            assert expected in result.stdout, result.stdout + result.stderr
        assert udp_server.collect() == []
        assert allowed.collect() == [b"ping"]
    finally:
        allowed.close()


def test_af_unspec_bind_is_judged_as_an_ipv4_bind(programs, tmp_path):
    # inet_bind takes AF_UNSPEC with INADDR_ANY as AF_INET: a bind rule on ports holds.
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    allowed_port = free.getsockname()[1]
    free.close()
    profile = write_profile(tmp_path, f"""
[[rule]]
calls = ["socket"]
action = "allow"
[[rule]]
calls = ["bind"]
port = [{allowed_port}]
action = "allow"
""")
    probe = programs("netprobe", 64)
    denied = sockbox("run", "-q", "-p", profile, "--", probe, "raw-bind", "2", sockaddr_in_hex(0, "0.0.0.0", 22))
    assert "bind ERR EACCES" in denied.stdout, denied.stdout + denied.stderr
    allowed = sockbox("run", "-q", "-p", profile, "--", probe, "raw-bind", "2",
                      sockaddr_in_hex(0, "0.0.0.0", allowed_port))
    assert "bind OK 0" in allowed.stdout, allowed.stdout + allowed.stderr


def test_unspecified_destination_is_judged_as_loopback(programs, tcp_server):
    # connect(0.0.0.0) reaches this host; a profile denying loopback must hold for it.
    probe = [programs("netprobe", 64), "tcp", "0.0.0.0", str(tcp_server.port)]
    denied = sockbox("run", "-q", "-p", "audit", "--deny", "connect=127.0.0.0/8", "--", *probe)
    assert "connect ERR EACCES" in denied.stdout
    assert tcp_server.received == []
    allowed = sockbox("run", "-q", "-p", "localhost", "--", *probe)
    assert "recv OK 4" in allowed.stdout
    assert tcp_server.received == [b"ping"]


@pytest.mark.parametrize("spelling", ["::ffff:10.1.2.3", "::10.1.2.3", "64:ff9b::a01:203", "2002:a01:203::1",
                                      "::ffff:0:10.1.2.3"])
def test_ipv6_spellings_of_an_ipv4_address_are_judged_as_it(tmp_path, spelling):
    profile = write_profile(tmp_path, """
[profile]
default = "allow"
[[rule]]
calls = ["connect"]
address = ["10.0.0.0/8"]
action = "deny"
""")
    result = sockbox("explain", "-p", profile, "connect", f"[{spelling}]:443")
    assert (result.returncode, result.stdout.split()[0]) == (1, "deny"), result.stdout


def test_sendmmsg_with_one_denied_message_sends_none(programs, tmp_path, udp_server):
    allowed = UdpServer()
    try:
        profile = guarded_profile(tmp_path, allowed.port)
        result = sockbox("run", "-q", "-p", profile, "--", programs("netprobe", 64), "udp-mmsg-mixed",
                         "127.0.0.1", str(allowed.port), str(udp_server.port))
        assert "sendmmsg ERR EACCES" in result.stdout
        assert allowed.collect() == [] and udp_server.collect() == []
    finally:
        allowed.close()


def test_a_symlink_into_a_denied_directory_is_judged_where_it_leads(programs, tmp_path):
    tmp_path.chmod(0o755)
    (tmp_path / "allowed").mkdir()
    (tmp_path / "denied").mkdir()
    target = UnixServer(str(tmp_path / "denied" / "sock"))
    os.symlink(tmp_path / "denied" / "sock", tmp_path / "allowed" / "innocent")
    profile = write_profile(tmp_path, f"""
[[rule]]
calls = ["socket"]
action = "allow"
[[rule]]
calls = ["connect"]
path = ["{tmp_path}/allowed/*"]
action = "allow"
""")
    try:
        result = sockbox("run", "-q", "-p", profile, "--", programs("netprobe", 64), "unix",
                         str(tmp_path / "allowed" / "innocent"))
        assert "connect ERR EACCES" in result.stdout
        assert target.received == []
    finally:
        target.close()


def test_proc_self_in_a_path_is_the_tracee_not_the_supervisor(programs, tmp_path, unix_server):
    # /proc/self/cwd/server.sock must resolve through the tracee's working directory.
    directory = os.path.dirname(unix_server.address)
    result = sockbox("run", "-p", "offline", "--", programs("netprobe", 64), "unix",
                     "/proc/self/cwd/server.sock", cwd=directory)
    assert "recv OK 4" in result.stdout, result.stdout + result.stderr
    assert unix_server.received == [b"ping"]


# --- 3. no road around the filter -------------------------------------------------------------


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("operation,expected", [
    ("io_uring", "io_uring_setup ERR ENOSYS"),
    ("notify-filter", "seccomp ERR EPERM"),
    ("untraced", "clone ERR EPERM"),
    ("clone3", "clone3 ERR ENOSYS"),
    ("ptrace-sibling", "ptrace ERR EPERM"),
    ("vm-writev", "process_vm_writev ERR EPERM"),
    ("pidfd-getfd", "pidfd_getfd ERR EPERM"),
    ("userfaultfd", "userfaultfd ERR EPERM"),
    ("ip-options", "setsockopt ERR EPERM"),
    ("rthdr", "setsockopt ERR EPERM"),
])
def test_roads_around_the_filter_are_closed(programs, tmp_path, tcp_server, denied_tcp, bits,
                                            operation, expected):
    profile = guarded_profile(tmp_path, tcp_server.port)
    result = sockbox("run", "-q", "-p", profile, "--", programs("escape", bits), operation,
                     str(denied_tcp.port))
    assert expected in result.stdout, result.stdout + result.stderr
    assert "connect OK" not in result.stdout
    assert denied_tcp.received == []


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("operation", ["trace-filter", "allow-filter", "thread", "nondumpable"])
def test_filters_of_its_own_threads_and_hiding_change_no_decision(programs, tmp_path, tcp_server,
                                                                 denied_tcp, bits, operation):
    # A filter of the program's own returning RET_TRACE with forged data, or RET_ALLOW,
    # cannot outrank sockbox's; a thread is supervised; PR_SET_DUMPABLE(0) hides nothing.
    profile = guarded_profile(tmp_path, tcp_server.port)
    escape = programs("escape", bits)
    denied = sockbox("run", "-q", "-p", profile, "--", escape, operation, str(denied_tcp.port))
    assert "connect ERR EACCES" in denied.stdout, denied.stdout + denied.stderr
    allowed = sockbox("run", "-q", "-p", profile, "--", escape, operation, str(tcp_server.port))
    assert "send OK 4" in allowed.stdout, allowed.stdout + allowed.stderr
    time.sleep(0.2)
    assert denied_tcp.received == []
    assert tcp_server.received == [b"ping"]


@pytest.mark.parametrize("bits", [64, 32])
def test_no_writing_into_processes_outside_the_sandbox(programs, bits):
    # The user's other processes (here a sleep started by the test) and the supervisor
    # are out of reach of /proc/PID/mem: the command lives in a Landlock domain.
    outside = subprocess.Popen(["sleep", "60"])
    try:
        natively = subprocess.run([programs("escape", bits), "outside-mem", str(outside.pid)],
                                  capture_output=True, text=True)
        assert "open OK" in natively.stdout  # the premise: outside the sandbox it works
        for operation in ("outside-mem", "supervisor-mem"):
            result = sockbox("run", "--", programs("escape", bits), operation, str(outside.pid))
            assert "open ERR EACCES" in result.stdout or "open ERR EPERM" in result.stdout, result.stdout
    finally:
        outside.kill()
        outside.wait()


def test_the_x32_abi_is_killed(programs):
    result = sockbox("run", "--", programs("escape", 64), "x32")
    assert result.returncode == -signal.SIGSYS  # the program died of it, and sockbox after it


def test_killing_the_supervisor_kills_the_sandbox(programs, tmp_path, denied_tcp):
    pidfile = tmp_path / "sleeper"
    profile = guarded_profile(tmp_path, 1)
    script = (f"sleep 60 & echo $! > {pidfile}; "
              f"exec {programs('escape', 64)} kill-supervisor {denied_tcp.port}")
    result = sockbox("run", "-q", "-p", profile, "--", "sh", "-c", script)
    assert result.returncode == -signal.SIGKILL  # sockbox itself was killed
    sleeper = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper), "a process of the sandbox outlived its supervisor"
    time.sleep(1.5)  # the escape program would connect a second after the kill
    assert denied_tcp.received == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- blocking calls, performed by the supervisor, behave as they would -------------------------

@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("options,expected", [
    (["--alarm", "1"], "connect ERR EINTR"),  # a signal interrupts a blocked connect
    (["--sndtimeo", "700"], "connect ERR EINPROGRESS"),  # SO_SNDTIMEO bounds it
])
def test_a_blocking_connect_keeps_its_signal_and_timeout_behaviour(programs, full_listener, bits,
                                                                   options, expected):
    probe = [programs("netprobe", bits), *options, "tcp", "127.0.0.1", str(full_listener)]
    native = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    assert expected in native.stdout  # the test's premise: natively it is so
    sandboxed = sockbox("run", "-p", "audit", "--", *probe, timeout=30)
    assert expected in sandboxed.stdout, sandboxed.stdout + sandboxed.stderr


def test_a_blocked_connect_does_not_stall_other_processes(programs, full_listener, tcp_server):
    # The first connect blocks for good; the second, in another process of the same
    # sandbox, must go through meanwhile.
    probe = programs("netprobe", 64)
    script = (f"{probe} tcp 127.0.0.1 {full_listener} & "
              f"{probe} tcp 127.0.0.1 {tcp_server.port}; kill $!")
    started = time.monotonic()
    result = sockbox("run", "-p", "localhost", "--", "sh", "-c", script, timeout=60)
    assert "recv OK 4" in result.stdout, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert tcp_server.received == [b"ping"]


# --- 4. descriptors from outside --------------------------------------------------------------


def test_inherited_descriptors_are_closed_unless_asked_for(tcp_server):
    outside = socket.create_connection(("127.0.0.1", tcp_server.port))
    fd = outside.fileno()
    use = [sys.executable, "-c", f"import os; os.write({fd}, b'ping'); print('sent')"]
    closed = subprocess.run([*SOCKBOX, "run", "--", *use],
                            pass_fds=(fd,), capture_output=True, text=True, timeout=30)
    assert "sent" not in closed.stdout and "Bad file descriptor" in closed.stderr
    kept = subprocess.run([*SOCKBOX, "run", "--keep-fd", str(fd), "--", *use],
                          pass_fds=(fd,), capture_output=True, text=True, timeout=30)
    assert "sent" in kept.stdout, kept.stderr
    outside.close()
    time.sleep(0.3)
    assert tcp_server.received == [b"ping"]


def test_socket_activation_hands_over_listen_fds():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    fd = listener.fileno()
    check = ("import os, socket; s = socket.socket(fileno=3); "
             "print(os.environ['LISTEN_PID'] == str(os.getpid()), s.getsockname()[1])")
    # As systemd starts a service: the socket at 3, LISTEN_PID naming the process.
    command = [*SOCKBOX, "run", "-p", "localhost", "--", sys.executable, "-c", check]
    launch = (f"import os; os.dup2({fd}, 3); os.environ.update(LISTEN_PID=str(os.getpid()), "
              f"LISTEN_FDS='1'); os.execv({command[0]!r}, {command!r})")
    result = subprocess.run([sys.executable, "-c", launch], pass_fds=(fd,), capture_output=True,
                            text=True, timeout=30)
    assert result.stdout.split() == ["True", str(listener.getsockname()[1])], result.stderr
    listener.close()


def test_descriptors_passed_over_a_unix_socket_still_work(tmp_path):
    # An emulated sendmsg (unix datagram to a path) carries SCM_RIGHTS: the descriptors
    # are the supervisor's copies of the sender's, and arrive working.
    tmp_path.chmod(0o755)
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "receiver.sock")
    receiver.bind(path)
    code = (f"import array, socket, os; r, w = os.pipe(); os.write(w, b'through a descriptor'); "
            f"s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
            f"s.sendmsg([b'fd'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [r]))], 0, {path!r})")
    result = sockbox("run", "-p", "offline", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    message, fds, _, _ = socket.recv_fds(receiver, 16, 1)
    assert message == b"fd"
    assert os.read(fds[0], 100) == b"through a descriptor"
    receiver.close()


# --- 5. fail closed on the unknown --------------------------------------------------------------

OUTER_FILTER = """
import errno, os, sys, pyseccomp
rule = sys.argv[1]
f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
if rule == "syscall_info":  # an old kernel: PTRACE_GET_SYSCALL_INFO is an unknown request
    f.add_rule(pyseccomp.ERRNO(errno.EIO), "ptrace", pyseccomp.Arg(0, pyseccomp.EQ, 0x420e))
elif rule == "pidfd_getfd":
    f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "pidfd_getfd")
elif rule == "openat2":
    f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "openat2")
elif rule == "kill_process":  # an old kernel: SECCOMP_RET_KILL_PROCESS unknown
    f.add_rule(pyseccomp.ERRNO(errno.EOPNOTSUPP), "seccomp", pyseccomp.Arg(0, pyseccomp.EQ, 2))
elif rule == "landlock":
    f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "landlock_create_ruleset")
f.load()
os.execv(sys.executable, [sys.executable, "-m", "sandbox", "run", "--", "touch", sys.argv[2]])
"""


def _yama_scope() -> int:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as scope:
            return int(scope.read())
    except OSError:
        return 0


@pytest.mark.parametrize("missing,message", [
    ("syscall_info", "the kernel lacks PTRACE_GET_SYSCALL_INFO"),
    ("pidfd_getfd", None),  # before Linux 5.6, or refused: descriptors are handed over
    ("openat2", "the kernel lacks openat2"),
    ("kill_process", "the kernel lacks seccomp action SECCOMP_RET_KILL_PROCESS"),
    # Without Landlock, Yama's ptrace_scope >= 1 is the other way to keep processes
    # out of each other's memory; with neither, sockbox refuses.
    ("landlock", "neither Landlock" if _yama_scope() < 1 else None),
])
def test_a_kernel_without_a_needed_feature_runs_nothing(tmp_path, missing, message):
    marker = tmp_path / "ran"
    result = subprocess.run([*SOCKBOX.outer, sys.executable, "-c", OUTER_FILTER, missing, str(marker)],
                            capture_output=True, text=True, timeout=60)
    if message is None:  # this machine has the fallback
        assert result.returncode == 0 and marker.exists(), result.stderr
        return
    assert result.returncode == 125
    assert result.stderr.startswith(f"sockbox: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not marker.exists()


def test_a_tracee_that_gave_up_root_gets_no_privilege_back(tmp_path):
    # Started as root, the program becomes nobody, then connects to a socket only root
    # may reach, and to one anybody may (whose server looks at the peer's uid). The
    # supervisor, root, must not lend it root for the call it performs.
    if os.geteuid() != 0:
        pytest.fail("this test needs the suite to run as root (as .ci/run does)")
    # pytest's own temporary directories are root's alone: nobody could not even look.
    tmp_path = Path(tempfile.mkdtemp(prefix="sockbox-privilege-"))
    tmp_path.chmod(0o755)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    hidden = UnixServer(str(private / "root-only.sock"))
    public = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    public.bind(str(tmp_path / "public.sock"))
    os.chmod(tmp_path / "public.sock", 0o777)
    public.listen()
    code = f"""
import os, socket
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
for path in ({str(private / "root-only.sock")!r}, {str(tmp_path / "public.sock")!r}):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path); print("connected")
    except OSError as error:
        print(error.errno)
"""
    try:
        result = sockbox("run", "-p", "offline", "--", sys.executable, "-c", code)
        assert result.stdout.split() == [str(errno.EACCES), "connected"], result.stdout + result.stderr
        conn, _ = public.accept()
        _, uid, gid = struct.unpack("=iII", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        assert (uid, gid) == (65534, 65534)
        assert hidden.received == []
        conn.close()
    finally:
        hidden.close()
        public.close()
        shutil.rmtree(tmp_path)


# --- 8. a learned profile written by the program ------------------------------------------------

@pytest.fixture
def short_tmp():
    """A directory of a path short enough for unix socket paths below it (108 bytes)."""
    directory = Path(tempfile.mkdtemp(prefix="sb-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_learned_run_cannot_write_rules_into_its_profile(short_tmp):
    # Everything `sockbox learn` writes that the program chose (a unix path, its
    # executable's name, its arguments) would, raw, end a comment and start a rule.
    injected = '\n[[rule]]\ncalls = ["*"]\naction = "allow"\n#'
    tmp_path = short_tmp
    program = tmp_path / f"prog{injected}"
    shutil.copy(sys.executable, program)
    script = ("import socket\n"
              f"s = socket.socket(socket.AF_UNIX)\n"
              f"try: s.connect({str(tmp_path / ('x' + injected))!r})\n"
              "except OSError: pass\n")
    learned = tmp_path / "learned.toml"
    result = sockbox("learn", "-o", str(learned), "--", str(program), "-c", script + f"x = {injected!r}\n")
    assert result.returncode == 0, result.stderr
    assert sockbox("check", str(learned)).stdout == f"{learned}: ok\n"
    text = learned.read_text()
    assert 'calls = ["*"]' not in text.splitlines()  # in the text only escaped
    decision = sockbox("explain", "-p", str(learned), "connect", "192.0.2.1:443")
    assert decision.returncode == 1 and decision.stdout.startswith("deny"), decision.stdout
    # and the path it did connect to is allowed, that path only
    allowed = sockbox("explain", "-p", str(learned), "connect", f"unix:{tmp_path}/x{injected}")
    assert allowed.returncode == 0, allowed.stdout
    assert sockbox("explain", "-p", str(learned), "connect", f"unix:{tmp_path}/x").returncode == 1


# --- the terminal -----------------------------------------------------------------------

TTY_ROADS = [("libc", 64), ("libc", 32), ("int80", 64)]
INJECTED = "echo PWNED-BY-THE-SANDBOX\n"


def run_on_a_terminal(command: list[str]) -> tuple[str, bytes]:
    """Run `command` with a new pseudo-terminal as its controlling terminal, as a shell
    runs a job; return what it printed and the input queued on the terminal once it has
    ended (what the user's shell would read and run next)."""
    master, slave = os.openpty()
    os.fchown(slave, 65534, 65534)  # so that nobody may open it as its /dev/tty

    def become_its_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        result = subprocess.run(command, stdin=slave, capture_output=True,
                                preexec_fn=become_its_terminal, timeout=60)
        attributes = termios.tcgetattr(slave)
        attributes[3] &= ~termios.ICANON  # read what is queued, lines or not
        attributes[6][termios.VMIN], attributes[6][termios.VTIME] = 0, 0
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
        queued = os.read(slave, 4096)
    finally:
        os.close(master)
        os.close(slave)
    return result.stdout.decode() + result.stderr.decode(), queued


@pytest.mark.parametrize("user", ["root", "nobody"] if os.geteuid() == 0 else ["self"])
@pytest.mark.parametrize("road,bits", TTY_ROADS, ids=[f"{r}{b}" for r, b in TTY_ROADS])
def test_the_terminal_is_not_a_way_out(programs, road, bits, user):
    # TIOCSTI pushes a line into the terminal's input, which the user's shell reads and
    # runs once the sandbox has ended. Natively (dev.tty.legacy_tiocsti = 1 here) the
    # line is queued; in the sandbox the ioctl fails with EIO and nothing is.
    as_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if user == "nobody" else []
    program = [programs("tty", bits), road, INJECTED]
    native_output, native_queued = run_on_a_terminal([*as_user, *program])
    assert native_output.strip() == "OK" and native_queued == INJECTED.encode(), native_output
    output, queued = run_on_a_terminal([*as_user, *SOCKBOX, "run", "-q", "--", *program])
    assert output.strip() == "ERR EIO"
    assert queued == b""


def test_tioclinux_paste_is_refused(programs):
    output, queued = run_on_a_terminal([*SOCKBOX, "run", "-q", "--", programs("tty", 64), "linux", "x"])
    assert output.strip() == "ERR EPERM" and queued == b""


def test_an_interactive_shell_still_works_on_its_terminal():
    shell = Terminal("run", "--", "bash", "--norc", "--noprofile", "-i")
    shell.type(b"echo typed-$((20 + 22)); exit 5\n")
    shell.read_until(b"typed-42")
    assert shell.exit_status() == 5


# --- ports and addresses that describe nothing: raw and packet sockets --------------------

RAW_PROFILE = """
[profile]
description = "raw sockets may be made; only loopback port 4243 may be reached"
[[rule]]
calls = ["socket"]
family = ["inet", "inet6"]
action = "allow"
[[rule]]
calls = ["connect", "sendto", "sendmsg", "sendmmsg"]
address = ["127.0.0.0/8", "::1/128"]
port = [4243, 17]
action = "allow"
[[rule]]
calls = ["send", "recv", "recvfrom", "getsockopt", "setsockopt"]
action = "allow"
"""
RAW_ROADS = [(mode, bits) for mode in ("connect", "sendto", "hdrincl", "sendto6") for bits in (64, 32)]


def reach(tmp_path: Path, command: list[str]) -> tuple[str, dict]:
    """`command` in a network namespace of its own (with CAP_NET_RAW there), beside the
    listeners of tests/reach.py on port 4242; what it printed and what reached them."""
    report = tmp_path / "reached.json"
    result = subprocess.run(in_new_netns([sys.executable, str(TESTS / "reach.py"), str(report), "--",
                                          *command]), capture_output=True, text=True, timeout=120)
    assert report.exists(), result.stderr
    return result.stdout.strip(), json.loads(report.read_text())


@pytest.mark.parametrize("mode,bits", RAW_ROADS, ids=[f"{m}{b}" for m, b in RAW_ROADS])
def test_a_port_condition_does_not_hold_for_a_raw_socket(programs, tmp_path, mode, bits):
    # A raw socket names an allowed port in its sockaddr and writes a UDP header to
    # another: the port (and, with IP_HDRINCL, the address) describes nothing. Natively
    # the datagram reaches the listener on 4242.
    allowed = "17" if mode == "sendto6" else "4243"  # IPv6 raw reads the port as the protocol
    program = [programs("raw", bits), mode, allowed, "4242"]
    output, native = reach(tmp_path, program)
    assert output == "OK" and native["datagrams"] == 1, (output, native)
    profile = write_profile(tmp_path, RAW_PROFILE)
    output, sandboxed = reach(tmp_path, [*SOCKBOX, "run", "-q", "-p", profile, "--", *program])
    step = "connect" if mode == "connect" else "sendto"
    assert output == f"{step} ERR EACCES", output
    assert sandboxed["datagrams"] == 0


def test_a_raw_socket_is_allowed_by_a_rule_that_says_so(programs, tmp_path):
    profile = write_profile(tmp_path, RAW_PROFILE + """
[[rule]]
calls = ["connect", "sendto"]
type = ["raw"]
action = "allow"
""")
    output, reached = reach(tmp_path, [*SOCKBOX, "run", "-q", "-p", profile, "--",
                                       programs("raw", 64), "sendto", "4243", "4242"])
    assert output == "OK" and reached["datagrams"] == 1


@pytest.mark.parametrize("bits", [64, 32])
def test_the_obsolete_spelling_of_a_packet_socket_is_judged_as_one(programs, tmp_path, bits):
    # socket(AF_INET, SOCK_PACKET) gets a packet socket: a rule for inet sockets must
    # not allow it.
    program = [programs("raw", bits), "packet", "0", "0"]
    output, _ = reach(tmp_path, program)
    assert output == "OK"
    output, _ = reach(tmp_path, [*SOCKBOX, "run", "-q", "-p", write_profile(tmp_path, RAW_PROFILE), "--",
                                 *program])
    assert output == "socket ERR EACCES"
    packet_allowed = write_profile(tmp_path, '[[rule]]\ncalls = ["socket"]\nfamily = ["packet"]\n'
                                             'action = "allow"\n', name="packet.toml")
    output, _ = reach(tmp_path, [*SOCKBOX, "run", "-q", "-p", packet_allowed, "--", *program])
    assert output == "OK"


PING = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(5)
echo = struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"exfiltrated"
try:
    s.sendto(echo, ("127.0.0.1", 443))
except OSError as error:
    sys.exit(f"sendto {error.strerror}")
print("reply" if s.recv(1024)[8:] == b"exfiltrated" else "other")
"""


def test_a_ping_socket_cannot_ride_on_an_allowed_port(tmp_path):
    # An ICMP echo carries any payload to any host; its sockaddr's port means nothing,
    # so web's port 443 must not let it out.
    setup = "sysctl -qw net.ipv4.ping_group_range='0 2147483647'"
    native = subprocess.run(in_new_netns(["python3", "-c", PING], setup), capture_output=True,
                            text=True, timeout=60)
    assert native.stdout.strip() == "reply", native.stderr
    sandboxed = subprocess.run(in_new_netns([*SOCKBOX, "run", "-q", "-p", "web", "--", "python3", "-c",
                                             PING], setup), capture_output=True, text=True, timeout=60)
    assert "sendto Permission denied" in sandboxed.stderr, sandboxed.stdout + sandboxed.stderr


SETSOCKOPT = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    s.setsockopt(socket.IPPROTO_IPV6, {option}, b"")
    print("OK")
except OSError as error:
    print(error.strerror)
"""


@pytest.mark.parametrize("option,name", [(6, "IPV6_2292PKTOPTIONS"), (57, "IPV6_RTHDR")])
def test_routing_headers_cannot_be_set_inside_other_options(option, name):
    # IPV6_2292PKTOPTIONS takes control messages, a routing header among them: it is
    # refused like IPV6_RTHDR itself. Natively (clearing them) the call succeeds.
    code = SETSOCKOPT.format(option=option)
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout == "OK\n"
    result = sockbox("run", "-q", "-p", "localhost", "--", sys.executable, "-c", code)
    assert result.stdout == "Operation not permitted\n", (name, result.stderr)


# --- destinations of "nowhere": judged as where the kernel sends them --------------------

NOWHERE = r"""
import json, socket, struct, subprocess, sys
listeners = {}
for host in ("192.0.2.1", "127.0.0.1"):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((host, 4242)); udp.setblocking(False)
    tcp = socket.socket(); tcp.bind((host, 4243)); tcp.listen(); tcp.setblocking(False)
    listeners[host] = (udp, tcp)
status = subprocess.run(sys.argv[1:]).returncode
def count(sock, stream):
    try:
        sock.accept() if stream else sock.recv(100)
        return 1
    except BlockingIOError:
        return 0
print(json.dumps({"status": status, **{host: count(udp, False) + count(tcp, True)
                                        for host, (udp, tcp) in listeners.items()}}))
"""
PKTINFO_SOURCE = r"""
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
source = struct.pack("=I4s4s", 0, socket.inet_aton("192.0.2.1"), bytes(4))  # struct in_pktinfo
s.sendmsg([b"escape"], [(socket.IPPROTO_IP, 8, source)], 0, ("0.0.0.0", 4242))  # IP_PKTINFO
"""
BOUND_SOURCE = r"""
import socket, sys
s = socket.socket(); s.bind(("192.0.2.1", 0))
sys.exit(s.connect_ex(("0.0.0.0", 4243)))
"""
DUMMY = "ip addr add 192.0.2.1/32 dev lo"  # a local address that is not loopback
BIND_ANYWHERE = """
[[rule]]
calls = ["socket", "bind"]
action = "allow"
[[rule]]
calls = ["connect", "sendto", "sendmsg"]
address = ["127.0.0.0/8"]
action = "allow"
"""


def nowhere(command: list[str]) -> dict:
    result = subprocess.run(in_new_netns([sys.executable, "-c", NOWHERE, *command], DUMMY),
                            capture_output=True, text=True, timeout=60)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("script,profile", [(PKTINFO_SOURCE, "localhost"), (BOUND_SOURCE, "bind-anywhere")],
                         ids=["pktinfo-source", "bound-source"])
def test_a_destination_of_nowhere_is_judged_as_where_it_goes(tmp_path, script, profile):
    # 0.0.0.0 goes to the call's source address: an IP_PKTINFO source, or the socket's
    # bound address. Natively both reach 192.0.2.1, a local address that is not
    # loopback; under a profile that allows loopback only, neither may.
    native = nowhere([sys.executable, "-c", script])
    assert native == {"status": 0, "192.0.2.1": 1, "127.0.0.1": 0}, native
    if profile == "bind-anywhere":
        profile = write_profile(tmp_path, BIND_ANYWHERE)
    sandboxed = nowhere([*SOCKBOX, "run", "-q", "-p", profile, "--", sys.executable, "-c", script])
    assert sandboxed["192.0.2.1"] == 0, sandboxed


# --- the socket the kernel uses is the socket that was judged -------------------------------

SWAP_PROFILE = """
[profile]
description = "unix sockets may send and receive; IP ones may only be connected to PORT"
[[rule]]
calls = ["socket", "socketpair"]
family = ["unix", "inet"]
action = "allow"
[[rule]]
calls = ["connect"]
address = ["127.0.0.1/32"]
port = [{port}]
action = "allow"
[[rule]]
calls = ["send", "sendto", "sendmsg", "sendmmsg", "recv", "recvfrom"]
family = ["unix"]
action = "allow"
"""
SWAPS = [(mode, bits) for mode in ("sendto-dest", "sendmsg-dest", "sendmmsg-dest", "send-family",
                                   "recv-family") for bits in (64, 32)]


@pytest.mark.parametrize("mode,bits", SWAPS, ids=[f"{m}{b}" for m, b in SWAPS])
def test_swapping_the_socket_after_the_check_gets_nothing_through(programs, tmp_path, mode, bits):
    # A second thread dup2()s an IP socket onto the descriptor the call names, in turn
    # with a unix one the profile lets the call use, 2000 times while the call is made.
    # Natively about half the calls act on the IP socket; in the sandbox none may.
    server = UdpServer() if mode.endswith("-dest") else SecretServer()
    try:
        profile = write_profile(tmp_path, SWAP_PROFILE.format(port=server.port), name="swap.toml")
        result = sockbox("run", "-q", "-p", profile, "--", programs("swap", bits), mode,
                         str(server.port), "2000", timeout=300)
        assert result.stdout == "done 2000 got 0\n", result.stdout + result.stderr
        if isinstance(server, UdpServer):
            assert server.collect() == []
        else:
            time.sleep(0.3)
            assert b"".join(server.received) == b""
    finally:
        server.close()


CHANNEL_PROFILE = """
[[rule]]
calls = ["socket", "socketpair"]
family = ["unix", "inet"]
action = "allow"
[[rule]]
calls = ["send", "recv"]
action = "allow"
"""


@pytest.mark.parametrize("bits", [64, 32])
def test_the_handover_channel_cannot_be_closed_replaced_or_fed_a_forged_socket(programs, tmp_path,
                                                                              outer_seccomp, bits):
    # Where pidfd_getfd is refused (the runtimes' layers), a second thread keeps sending
    # an unconnected UDP socket over the channel while the first makes 2000 sendto()s on
    # a unix seqpacket socket naming a UDP listener: judged and sent as the plain sends they
    # are there, never as the forged socket's datagrams. Without a layer there is no channel.
    udp = UdpServer()
    try:
        profile = write_profile(tmp_path, CHANNEL_PROFILE, name="channel.toml")
        result = sockbox("run", "-q", "-p", profile, "--", programs("channel", bits), str(udp.port),
                         "2000", timeout=300)
        lines = result.stdout.splitlines()
        if outer_seccomp is None:
            assert lines[0] == "no channel", result.stdout + result.stderr
        else:
            assert lines[:4] == ["close 0 kept", "dup2 EBADF", "close_range ENOSYS", "shutdown 0"], \
                result.stdout + result.stderr
        counts = re.fullmatch(r"sent (\d+) denied (\d+) lost (\d+) forged (\d+) received (\d+)", lines[-1])
        assert counts, result.stdout + result.stderr
        sent, denied, lost, forged, received = map(int, counts.groups())
        assert denied == 0 and sent + lost == 2000 and sent == received > 0, result.stdout + result.stderr
        assert (forged > 0) is (outer_seccomp is not None)
        assert udp.collect() == []
    finally:
        udp.close()


@pytest.mark.native
def test_a_task_gone_at_its_fork_event_may_share_its_table():
    # A task killed at its fork event (its process ended meanwhile) cannot be asked
    # which clone it made: its child is taken as sharing its table, the answer that
    # keeps the swap defence, and the supervisor goes on (it was an internal error).
    from sandbox import sharing
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert sharing.shares_table(gone.pid) is True


@pytest.mark.native
def test_the_swap_attack_works_natively(programs):
    # The same programs outside the sandbox win the race (so the test above can fail):
    # often, though on a busy machine a run of 2000 may lose every time.
    udp, secret = UdpServer(), SecretServer()
    try:
        through = 0
        for _ in range(5):
            result = subprocess.run([programs("swap", 64), "sendto-dest", str(udp.port), "2000"],
                                    capture_output=True, text=True, timeout=60)
            assert result.stdout == "done 2000 got 0\n"
            through += len(udp.collect())
            if through > 20:
                break
        assert through > 20
        got = 0
        for _ in range(5):
            result = subprocess.run([programs("swap", 64), "recv-family", str(secret.port), "2000"],
                                    capture_output=True, text=True, timeout=60)
            got += int(result.stdout.split()[-1])
            if got > 20:
                break
        assert got > 20, result.stdout
    finally:
        udp.close()
        secret.close()


# --- exe rules: another program's code judged as the allowed executable -----------------------

EXE_PROFILE = """
[[rule]]
calls = ["socket", "send", "recv", "getsockopt", "setsockopt", "getsockname", "getpeername", "shutdown"]
action = "allow"
[[rule]]
calls = ["connect"]
exe = ["{bin}/*"]
action = "allow"
"""
# A library that, loaded into the allowed executable, connects on its own.
INJECTED_LIBRARY = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
__attribute__((constructor)) static void injected(void) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(atoi(getenv("INJECT_PORT")))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)&to, sizeof to) == 0) write(s, "injected", 8);
    close(s);
}
unsigned int la_version(unsigned int version) { return version; }  /* as LD_AUDIT needs */
"""
# executables.py does not vouch for a file changed this close before the sandbox started.
_AGE = 2.5


class ExeFiles:
    """bin/: the executables the profile allows (copies of netprobe and of exe);
    stash/: old copies of netprobe that a program would pass off as them; lib/: a
    library to inject. All older than any sandbox the tests start. An attack that
    uses a file up takes its own (`fresh`)."""

    POOL = 16

    def __init__(self, base: Path, programs) -> None:
        self.base, self.bin, self.stash, self.lib = base, base / "bin", base / "stash", base / "lib"
        for directory in (self.bin, self.stash, self.lib):
            directory.mkdir()
        shutil.copy(programs("netprobe", 64), self.bin / "client")
        shutil.copy(programs("netprobe", 32), self.bin / "client32")
        shutil.copy(programs("exe", 64), self.bin / "waiter")
        for number in range(self.POOL):
            shutil.copy(programs("netprobe", 64), self.stash / f"old{number}")
            shutil.copy(programs("netprobe", 64), self.bin / f"victim{number}")
        source = self.lib / "injected.c"
        source.write_text(INJECTED_LIBRARY)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(self.lib / "injected.so"), str(source)],
                       check=True)
        self._taken = 0

    def fresh(self) -> int:
        """The number of an old file, and of a victim, no other test has used."""
        self._taken += 1
        assert self._taken < self.POOL, "more attacks than ExeFiles.POOL"
        return self._taken


@pytest.fixture(scope="module")
def exe_files(programs, tmp_path_factory) -> ExeFiles:
    base = tmp_path_factory.mktemp("exe")
    base.chmod(0o755)
    files = ExeFiles(base, programs)
    time.sleep(_AGE)
    return files


def exe_run(exe_files: ExeFiles, tmp_path: Path, *command: str, **kwargs) -> subprocess.CompletedProcess:
    profile = write_profile(tmp_path, EXE_PROFILE.format(bin=exe_files.bin), name="exe.toml")
    return sockbox("run", "-p", profile, "--", *command, **kwargs)


@pytest.mark.parametrize("client", ["client", "client32"])
def test_an_exe_rule_allows_its_executable(exe_files, tmp_path, tcp_server, client):
    # The user's own loader settings are the command's, not the program's choice.
    environment = {**os.environ, "LD_LIBRARY_PATH": str(exe_files.lib)}
    result = exe_run(exe_files, tmp_path, str(exe_files.bin / client), "tcp", "127.0.0.1",
                     str(tcp_server.port), env=environment)
    assert "connect OK" in result.stdout, result.stdout + result.stderr
    assert tcp_server.received == [b"ping"]


@pytest.mark.parametrize("variable,value", [
    ("LD_PRELOAD", "lib/injected.so"), ("LD_AUDIT", "lib/injected.so"), ("LD_LIBRARY_PATH", "lib"),
    ("GCONV_PATH", "lib"), ("LD_PRELOAD", "")])
def test_loader_variables_of_the_programs_choosing_void_an_exe_rule(exe_files, tmp_path, tcp_server,
                                                                    variable, value):
    # `env` is the program: it runs the allowed executable with code loaded into it.
    setting = f"{variable}={exe_files.base / value if value else ''}"
    result = exe_run(exe_files, tmp_path, "env", setting, f"INJECT_PORT={tcp_server.port}",
                     str(exe_files.bin / "client"), "tcp", "127.0.0.1", str(tcp_server.port))
    assert "connect ERR EACCES" in result.stdout, result.stdout + result.stderr
    time.sleep(0.3)
    assert tcp_server.received == []
    # the record names no executable: sockbox does not vouch for it
    assert re.search(r"sockbox: deny connect\(.*\[default\] pid \d+\n", result.stderr), result.stderr


DENY_EXE_PROFILE = """
[profile]
default = "allow"
[[rule]]
calls = ["connect"]
exe = ["{bin}/client"]
action = "deny"
"""


@pytest.mark.parametrize("setting", [None, "LD_BIND_NOW=1"])
def test_a_deny_rule_on_exe_holds_for_a_process_sockbox_cannot_name(exe_files, tmp_path, tcp_server,
                                                                    setting):
    # A loader variable of the program's choosing makes the executable unknown, not
    # some other program's: a deny rule naming it must still hold.
    profile = write_profile(tmp_path, DENY_EXE_PROFILE.format(bin=exe_files.bin), name="deny-exe.toml")
    prefix = ["env", setting] if setting else []
    result = sockbox("run", "-p", profile, "--", *prefix, str(exe_files.bin / "client"), "tcp",
                     "127.0.0.1", str(tcp_server.port))
    assert "connect ERR EACCES" in result.stdout, result.stdout + result.stderr
    # another executable, vouched for, is not denied by the rule
    result = sockbox("run", "-p", profile, "--", str(exe_files.bin / "client32"), "tcp", "127.0.0.1",
                     str(tcp_server.port))
    assert "connect OK" in result.stdout, result.stdout + result.stderr
    assert tcp_server.received == [b"ping"]


@pytest.mark.parametrize("attack,script", [
    ("rename", "mv {stash}/old{n} {bin}/renamed{n} && exec {bin}/renamed{n}"),
    ("link", "ln {stash}/old{n} {bin}/linked{n} && exec {bin}/linked{n}"),
    ("overwrite", "cat {stash}/old{n} > {bin}/victim{n} && exec {bin}/victim{n}"),
    ("bind-mount", "unshare {userns} --mount sh -c "
                   "'mount --bind {stash}/old{n} {bin}/victim{n} && exec {bin}/victim{n} \"$@\"' -"),
])
def test_a_file_put_at_an_allowed_path_is_not_the_allowed_executable(exe_files, tmp_path, tcp_server,
                                                                     attack, script):
    # Old files the program may write, moved (or written, or mounted) onto a path the
    # rule names: each would be judged by the path alone.
    userns = "" if os.geteuid() == 0 else "--user --map-root-user"
    line = script.format(stash=exe_files.stash, bin=exe_files.bin, n=exe_files.fresh(), userns=userns)
    result = exe_run(exe_files, tmp_path, "sh", "-c", f'{line} "$@"', "-", "tcp", "127.0.0.1",
                     str(tcp_server.port))
    assert "connect OK" not in result.stdout, result.stdout + result.stderr
    if attack == "bind-mount":  # refused: the mount (or, unprivileged, the user namespace's map)
        assert "connect" not in result.stdout, result.stdout
        assert re.search("Operation not permitted|Permission denied", result.stderr), result.stderr
    else:
        assert "connect ERR EACCES" in result.stdout
    time.sleep(0.3)
    assert tcp_server.received == []


@pytest.mark.parametrize("bits", [64, 32])
def test_no_process_writes_into_the_memory_of_an_allowed_executable(programs, exe_files, tmp_path, bits):
    result = exe_run(exe_files, tmp_path, programs("exe", bits), "mem", str(exe_files.bin / "waiter"))
    assert result.stdout == "mem ERR EACCES\ntask-mem ERR EACCES\nprocess_vm_writev ERR EPERM\n", result.stderr


@pytest.mark.native
def test_writing_into_the_memory_of_a_child_works_natively(programs, exe_files):
    result = subprocess.run([programs("exe", 64), "mem", str(exe_files.bin / "waiter")],
                            capture_output=True, text=True, timeout=30)
    assert result.stdout == "mem OK\ntask-mem OK\nprocess_vm_writev OK\n", result.stderr


@pytest.mark.parametrize("bits", [64, 32])
def test_a_process_cannot_name_another_executable_as_its_own(programs, exe_files, tmp_path, tcp_server, bits):
    result = exe_run(exe_files, tmp_path, programs("exe", bits), "setmm", str(exe_files.bin / "client"),
                     "127.0.0.1", str(tcp_server.port))
    assert result.stdout == "prctl ERR EPERM\nconnect ERR EACCES\n", result.stderr


def test_an_exe_profile_still_writes_files_outside_proc(exe_files, tmp_path):
    target = tmp_path / "written"
    result = exe_run(exe_files, tmp_path, "sh", "-c", f"echo x > {target} && echo y > /dev/null && "
                     "echo z > /proc/self/comm")
    assert target.read_text() == "x\n"
    assert "/proc/self/comm: Permission denied" in result.stderr


def test_exe_rules_with_proc_writable_are_refused(exe_files, tmp_path):
    profile = write_profile(tmp_path, EXE_PROFILE.format(bin=exe_files.bin)
                            + '[filesystem]\nread = ["/"]\nwrite = ["/"]\n')
    result = sockbox("run", "-p", profile, "--", "true")
    assert result.returncode == 125
    assert result.stderr == (f"sockbox: {profile}: filesystem.write[0]: / holds /proc, where a process could "
                             "write into another's memory (/proc/PID/mem), which exe rules cannot allow\n")


@pytest.mark.pure
def test_loader_settings_are_every_ld_variable_and_iconvs_modules():
    from sandbox.executables import loader_settings
    environment = b"PATH=/bin\0LD_PRELOAD=/x.so\0GCONV_PATH=/g\0LD_=\0XLD_PRELOAD=y\0GCONV_PATHS=z\0"
    assert loader_settings(environment) == {b"LD_PRELOAD=/x.so", b"GCONV_PATH=/g", b"LD_="}


@pytest.mark.pure
def test_everything_but_procfs_covers_the_rest_of_the_tree(tmp_path):
    from sandbox.domain import everything_but
    for directory in ("a/proc/x", "a/b", "c"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "a" / "file").write_text("")
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "proc")
    covering = everything_but([str(tmp_path / "a" / "proc"), str(tmp_path / "a" / "proc" / "x")])
    inside = sorted(path for path in covering if path.startswith(str(tmp_path) + "/"))
    assert inside == [str(tmp_path / "a" / "b"), str(tmp_path / "a" / "file"), str(tmp_path / "c")]

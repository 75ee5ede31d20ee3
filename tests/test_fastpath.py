"""The supervisor's C fast path (sandbox/_fastpath.c): a connect, or a UDP sendto naming
a destination, with the same facts as one decided before (executable, socket, sockaddr
bytes) is served in C with the same verdict and counted as a repeat in the summary.
Each test checks both what the program saw and how many stops were repeats, so that it
fails if the fast path serves what it must not, and also if it quietly serves nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from helpers.running import SOCKBOX, in_new_netns, sockbox, write_profile
from helpers.servers import SecretServer, TcpServer, UdpServer
from sandbox.supervisor import MAX_FILED

TIMES = 5  # how often each test makes its call
# Each call the fast path serves: the netprobe operation making it, and its server.
CALLS = {"connect": ("tcp", TcpServer), "sendto": ("udp", UdpServer)}


def summary_of(log) -> dict:
    return json.loads(log.read_text().splitlines()[-1])


def loopback_profile(directory, port: int, rule: str, log: str = "deny", call: str = "connect") -> str:
    return write_profile(directory, f"""
[profile]
log = "{log}"
[[rule]]
calls = ["socket", "send", "recv", "recvfrom", "setsockopt"]
action = "allow"
[[rule]]
calls = ["{call}"]
address = ["127.0.0.1/32"]
port = [{port}]
{rule}
""")


@pytest.fixture(params=CALLS)
def served(request):
    """(call, netprobe operation, server) for each call the fast path serves."""
    operation, kind = CALLS[request.param]
    server = kind()
    yield request.param, operation, server
    server.close()


def received(server) -> list[bytes]:
    return server.collect() if isinstance(server, UdpServer) else server.received


# Direct calls on either ABI are served in C, and so are socketcall's (C reads its
# argument array once), which i386 glibc makes every socket call through: there the
# socket() stops too (the filter cannot see its family) and is served again as well.
VIAS = [("libc", 64, TIMES - 1), ("syscall", 32, TIMES - 1), ("int80", 64, TIMES - 1),
        ("libc", 32, 2 * (TIMES - 1)), ("socketcall", 32, 2 * (TIMES - 1)),
        ("socketcall", 64, 2 * (TIMES - 1))]
DIRECT = {64: "libc", 32: "syscall"}  # how each build makes direct socket calls


@pytest.mark.parametrize("via,bits,repeats", VIAS, ids=[f"{v}{b}" for v, b, _ in VIAS])
def test_repeated_allowed_calls_are_served_from_the_first_verdict(programs, tmp_path, served,
                                                                  via, bits, repeats):
    call, operation, server = served
    log = tmp_path / "log.jsonl"
    result = sockbox("run", "-p", "localhost", "--log", str(log), "--",
                     programs("netprobe", bits), "--via", via, "--repeat", str(TIMES),
                     operation, "127.0.0.1", str(server.port))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(f"{call} OK") == TIMES
    assert received(server) == [b"ping"] * TIMES
    summary = summary_of(log)
    assert summary["decisions"][call] == {"allow": TIMES}
    assert summary["repeats"] == repeats


@pytest.mark.parametrize("bits", [64, 32])
def test_repeated_denied_calls_get_the_rules_errno_and_reach_nothing(programs, tmp_path, served,
                                                                     bits):
    # Unrecorded denials (log = "none") are repeated in C too, with the rule's errno.
    call, operation, server = served
    log = tmp_path / "log.jsonl"
    profile = loopback_profile(tmp_path, server.port, 'action = "deny"\nerrno = "ECONNREFUSED"',
                               log="none", call=call)
    result = sockbox("run", "-p", profile, "--log", str(log), "--", programs("netprobe", bits),
                     "--via", DIRECT[bits], "--repeat", str(TIMES), operation, "127.0.0.1",
                     str(server.port))
    assert result.stdout.count(f"{call} ERR ECONNREFUSED") == TIMES, result.stdout + result.stderr
    assert received(server) == []
    summary = summary_of(log)
    assert summary["decisions"][call] == {"deny": TIMES}
    assert summary["repeats"] == TIMES - 1


@pytest.mark.parametrize("profile_log,rule_log", [("all", ""), ("deny", "log = true")],
                         ids=["log-all", "rule-log"])
def test_recorded_decisions_are_never_repeated_unrecorded(programs, tmp_path, tcp_server,
                                                          profile_log, rule_log):
    log = tmp_path / "log.jsonl"
    profile = loopback_profile(tmp_path, tcp_server.port, f'action = "allow"\n{rule_log}',
                               log=profile_log)
    result = sockbox("run", "-p", profile, "--log", str(log), "--", programs("netprobe"),
                     "--repeat", str(TIMES), "tcp", "127.0.0.1", str(tcp_server.port))
    assert result.returncode == 0, result.stdout + result.stderr
    *records, summary = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["call"] for r in records if r["call"] == "connect"] == ["connect"] * TIMES
    assert summary["repeats"] == 0


def test_a_new_executable_is_not_served_with_the_verdicts_of_the_old(programs, tmp_path, tcp_server):
    # The same thread connects under one executable, allowed by an `exe` rule, then execs
    # another and makes the very same connect, which no rule allows.
    allowed, other = tmp_path / "allowed-probe", tmp_path / "other-probe"
    shutil.copy(programs("netprobe"), allowed)
    shutil.copy(programs("netprobe"), other)
    time.sleep(2.5)  # an exe rule holds for files older than the sandbox by 2 s (executables.py)
    log = tmp_path / "log.jsonl"
    profile = loopback_profile(tmp_path, tcp_server.port, f'exe = ["{allowed}"]\naction = "allow"')
    result = sockbox("run", "-q", "-p", profile, "--log", str(log), "--", str(allowed),
                     "--then", str(other), "--repeat", "3", "tcp", "127.0.0.1", str(tcp_server.port))
    assert result.stdout.count("connect OK 0") == 3, result.stdout + result.stderr
    assert result.stdout.count("connect ERR EACCES") == 3
    assert tcp_server.received == [b"ping"] * 3
    summary = summary_of(log)
    assert summary["decisions"]["connect"] == {"allow": 3, "deny": 3}
    assert summary["repeats"] == 2  # the allowed executable's second and third


# How each build makes its connects, and the repeats of 3 connects that block: 2, and
# on 32-bit glibc's setsockopt(SO_SNDTIMEO) through socketcall, and through socketcall
# the socket() too.
BLOCKING = [(64, "libc", 2), (32, "syscall", 4), (32, "socketcall", 6)]


@pytest.mark.parametrize("bits,via,repeats", BLOCKING, ids=[f"{v}{b}" for b, v, _ in BLOCKING])
def test_a_repeated_connect_that_blocks_still_waits_as_it_would(programs, full_listener, tmp_path,
                                                                bits, via, repeats):
    # Each connect to a full listener blocks until SO_SNDTIMEO: the repeat, started in
    # C, hands the wait to the supervisor's Python as the first one did.
    log = tmp_path / "log.jsonl"
    result = sockbox("run", "-p", "localhost", "--log", str(log), "--", programs("netprobe", bits),
                     "--via", via, "--sndtimeo", "300", "--repeat", "3", "tcp", "127.0.0.1", str(full_listener),
                     timeout=60)
    assert result.stdout.count("connect ERR EINPROGRESS") == 3, result.stdout + result.stderr
    summary = summary_of(log)
    assert summary["decisions"]["connect"] == {"allow": 3}  # a wait's retries are not decisions
    assert summary["repeats"] == repeats


def test_a_thread_that_changed_credentials_is_not_served_in_c(tmp_path, tcp_server):
    # A root supervisor performs a call of a tracee with other credentials as them, in a
    # child (emulate_as): the fast path, which performs as the supervisor, must not.
    if os.geteuid() != 0:
        pytest.fail("this test needs the suite to run as root (as .ci/run does)")
    code = f"""
import os, socket
def connect():
    with socket.create_connection(("127.0.0.1", {tcp_server.port})) as s:
        s.sendall(b"ping"); s.recv(4)
connect(); connect()
os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
connect(); connect()
"""
    log = tmp_path / "log.jsonl"
    result = sockbox("run", "-p", "localhost", "--log", str(log), "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tcp_server.received == [b"ping"] * 4
    summary = summary_of(log)
    assert summary["decisions"]["connect"] == {"allow": 4}
    assert summary["repeats"] == 1  # root's second connect only


def test_the_verdicts_kept_for_repeats_are_bounded(tmp_path):
    # A program that connects to ever new addresses must not grow the supervisor without
    # bound: past MAX_FILED verdicts, the rest are judged in Python every time. The
    # first address is served again; the last, never filed, is not.
    code = f"""
import socket
addresses = [(f"127.1.{{i // 250}}.{{i % 250 + 1}}", 9) for i in range({MAX_FILED + 10})]
def connect(address):
    with socket.socket() as s:
        try:
            s.connect(address)
        except OSError:
            pass
for address in addresses:
    connect(address)
connect(addresses[0]); connect(addresses[-1]); connect(addresses[-1])
"""
    log = tmp_path / "log.jsonl"
    result = sockbox("run", "-p", "localhost", "--log", str(log), "--", sys.executable, "-c", code,
                     timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_of(log)
    assert summary["decisions"]["connect"] == {"allow": MAX_FILED + 13}
    assert summary["repeats"] == 1


def test_a_repeated_send_that_finds_no_room_still_waits_as_it_would(tmp_path):
    # In a network namespace of its own whose loopback holds datagrams back (a token
    # bucket of 8 kbit/s), a small send buffer fills after a few sends; a blocking sendto
    # then waits until SO_SNDTIMEO and fails with EAGAIN. The repeats are served in C,
    # which hands such a wait to the supervisor's Python, as for a connect.
    code = """
import socket, struct, time
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.bind(("127.0.0.1", 0))
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("=qq", 0, 300_000))
for _ in range(12):
    started = time.monotonic()
    try:
        print("sent", sender.sendto(b"x" * 1000, receiver.getsockname()))
    except BlockingIOError:
        print("EAGAIN after", round(time.monotonic() - started, 2))
"""
    log = tmp_path / "log.jsonl"
    command = [*SOCKBOX, "run", "-p", "localhost", "--log", str(log), "--", sys.executable, "-c", code]
    slow_loopback = "tc qdisc add dev lo root tbf rate 8kbit burst 1600 latency 60s"
    result = subprocess.run(in_new_netns(command, slow_loopback), capture_output=True, text=True,
                            timeout=60)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[0] == "sent 1000", result.stdout + result.stderr
    waits = [float(line.split()[-1]) for line in lines if line.startswith("EAGAIN")]
    assert len(waits) >= 3, lines  # the buffer filled, and then every send waited...
    assert all(0.25 <= wait < 2 for wait in waits), lines  # ...as long as SO_SNDTIMEO says
    assert summary_of(log)["repeats"] >= len(waits)


PLAIN_PROFILE = """
[profile]
log = "none"
[[rule]]
calls = ["socket", "bind"]
action = "allow"
[[rule]]
calls = ["recv"]
family = ["inet"]
action = "allow"
[[rule]]
calls = ["recvfrom"]
family = ["unix"]
action = "allow"
"""


def test_a_receive_and_its_plain_twin_keep_their_own_verdicts(tmp_path):
    # A recvfrom with no address buffer is a recv to the rules, one with a buffer is not:
    # the same socket, the same syscall, two verdicts (both stop: each rests on the
    # family), both unrecorded and served again, each as it was reached.
    code = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setblocking(False)
for _ in range(5):
    for receive in (s.recv, s.recvfrom):
        try:
            receive(16)
        except OSError as error:
            print(receive.__name__, errno.errorcode[error.errno])
"""
    log = tmp_path / "log.jsonl"
    profile = write_profile(tmp_path, PLAIN_PROFILE)
    result = sockbox("run", "-q", "-p", profile, "--log", str(log), "--", sys.executable, "-c",
                     "import errno" + code)
    assert result.stdout == "recv EAGAIN\nrecvfrom EACCES\n" * 5, result.stdout + result.stderr
    assert summary_of(log)["repeats"] == 2 * 4


FAMILY_PROFILE = """
[profile]
log = "none"
[[rule]]
calls = ["*"]
family = ["inet"]
action = "allow"
"""


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("restart", [True, False], ids=["sa-restart", "no-restart"])
def test_a_receive_served_in_c_is_interrupted_as_natively(programs, tmp_path, bits, restart):
    # A blocking receive, served in C (32-bit: through socketcall, run as the direct
    # recvfrom), is interrupted by a signal: restarted with SA_RESTART (the socketcall
    # it was, judged again) or failing with EINTR, as natively.
    command = [programs("restart", bits), *(["restart"] if restart else [])]

    def as_natively(output: str) -> bool:
        # every receive restarted until a datagram came; or some failed with EINTR and
        # the rest got one (how many of each is the scheduler's)
        ok, eintr = (int(word) for word in output.split()[1::2])
        return (ok, eintr) == (6, 0) if restart else ok + eintr == 6 and ok >= 1 and eintr >= 1

    native = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    assert as_natively(native), native
    log = tmp_path / "log.jsonl"
    result = sockbox("run", "-q", "-p", write_profile(tmp_path, FAMILY_PROFILE), "--log", str(log),
                     "--", *command)
    assert as_natively(result.stdout), result.stdout + result.stderr
    assert summary_of(log)["repeats"] >= 5


QUIET_PROFILE = """
[profile]
log = "none"
[[rule]]
calls = ["*"]
action = "allow"
"""
OPTION_RUNS = 300


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("profile", ["server", "quiet"])
def test_socket_options_through_socketcall_are_decided_in_c_as_in_python(programs, tmp_path, bits,
                                                                        profile):
    # sockbox's own rule refuses IP_OPTIONS (EPERM) on every profile; through socketcall
    # the filter cannot see the option, so every setsockopt of an i386 program stops. C
    # serves the repeats from the words it read, runs them as the direct syscall and
    # gives every register back (the program checks them): the TCP_NODELAY ones, and the
    # getsockopt that `server` stops at too; IP_OPTIONS too where its denial is not
    # recorded (log = "none"). A 64-bit program never stops at any of them.
    log = tmp_path / "log.jsonl"
    quiet = profile == "quiet"
    if quiet:
        profile = write_profile(tmp_path, QUIET_PROFILE)
    result = sockbox("run", "-q", "-p", profile, "--log", str(log), "--", programs("sockopts", bits),
                     str(OPTION_RUNS))
    runs = OPTION_RUNS
    assert result.stdout == f"done {runs} nodelay {runs} options {runs} registers {runs}\n", (
        result.stdout + result.stderr)
    summary = summary_of(log)
    if bits == 64:
        assert summary["repeats"] == 0
        return
    assert summary["decisions"]["setsockopt"] == {"allow": runs, "deny": runs}
    assert summary["decisions"]["getsockopt"] == {"allow": runs}
    # Every kind but the first of each, and under `server` not the denials, recorded.
    assert summary["repeats"] == (3 if quiet else 2) * (runs - 1)


@pytest.mark.pure
def test_the_facts_c_is_handed_are_the_kernels():
    # _fastpath knows no syscall number, arch, word size or subcall of its own: the
    # supervisor hands them over (sandbox/fastpath.py), and they are libseccomp's, the
    # ABI's and linux/net.h's.
    import pyseccomp

    from sandbox.abi import Abi
    from sandbox.fastpath import SERVED_IN_C, served_subcalls, served_syscalls
    served = served_syscalls()
    i386 = Abi.I386.audit_arch
    # Every served call's direct syscall on each ABI (send and recv have none), and
    # socketcall(102).
    direct_calls = {"connect", "sendto", "recvfrom", "recvmsg", "setsockopt", "getsockopt",
                    "socket", "accept4", "getsockname", "getpeername"}
    assert set(SERVED_IN_C) == direct_calls | {"send", "recv", "accept"}  # x86_64 has accept
    assert sorted((arch, call) for arch, _, call, _ in served) == sorted(
        [(abi.audit_arch, call) for abi in Abi for call in direct_calls]
        + [(Abi.X86_64.audit_arch, "accept"), (i386, "socketcall")])
    for arch, nr, call, word_mask in served:
        assert pyseccomp.resolve_syscall(arch, nr).decode() == call  # libseccomp's name for it
        assert word_mask == (0xFFFFFFFF if arch == i386 else 0xFFFFFFFFFFFFFFFF)
    assert {abi.audit_arch for abi in Abi} == {0xC000003E, 0x40000003}  # AUDIT_ARCH_X86_64, _I386
    # socketcall's subcalls: SYS_* of linux/net.h, the words net/socket.c's nargs copies,
    # and the direct i386 syscall each runs as once allowed (send and recv have none).
    direct = {"send": "sendto", "recv": "recvfrom", "accept": "accept4"}
    subcalls = {name: (number, words, pyseccomp.resolve_syscall(i386, nr).decode())
                for number, name, words, nr in served_subcalls()}
    assert subcalls == {name: (number, words, direct.get(name, name)) for name, number, words in (
        ("socket", 1, 3), ("connect", 3, 3), ("send", 9, 4), ("recv", 10, 4), ("sendto", 11, 6),
        ("recvfrom", 12, 6), ("setsockopt", 14, 5), ("getsockopt", 15, 5), ("recvmsg", 17, 3),
        ("accept", 5, 3), ("accept4", 18, 4), ("getsockname", 6, 3), ("getpeername", 7, 3))}


# --- a verdict that rests on the socket is served only for the socket it was reached for ----

FLIP_PROFILE = """
[profile]
log = "{log}"
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
calls = ["send", "sendto", "recv", "recvfrom"]
family = ["unix"]
action = "allow"
"""
FLIP_TIMES = 2000
FLIPS = [(mode, bits, log) for mode in ("send-between", "recv-between") for bits in (64, 32)
         for log in ("deny", "none")] + [
        (mode, bits, "none") for mode in ("send-process", "recv-process") for bits in (64, 32)]


@pytest.mark.parametrize("mode,bits,log", FLIPS, ids=[f"{m}{b}-log-{lg}" for m, b, lg in FLIPS])
def test_a_verdict_for_one_socket_is_not_served_for_another_at_its_descriptor(
        programs, tmp_path, mode, bits, log):
    # A send's or receive's verdict rests on its socket's family, which C reads at each
    # stop and files the verdict under. The program puts a unix socket (which may send
    # and receive) and a TCP one (which may not) at the same descriptor in turn: itself,
    # between its calls (C serves both, each with its own socket's verdict: repeats), or
    # from another process sharing its descriptor table, racing the calls (C serves
    # none of them: the table is shared, so Python keeps the others still). Nothing may
    # reach the TCP listener, nor come from it.
    server = SecretServer()
    try:
        profile = write_profile(tmp_path, FLIP_PROFILE.format(port=server.port, log=log))
        log_file = tmp_path / "log.jsonl"
        result = sockbox("run", "-q", "-p", profile, "--log", str(log_file), "--",
                         programs("flip", bits), mode, str(server.port), str(FLIP_TIMES), timeout=300)
        between = mode.endswith("-between")
        unix = FLIP_TIMES if between else 0
        assert result.stdout == f"done {FLIP_TIMES} unix {unix} got 0\n", result.stdout + result.stderr
        time.sleep(0.3)
        assert b"".join(server.received) == b""
        repeats = summary_of(log_file)["repeats"]
        if between:
            assert repeats >= FLIP_TIMES * (2 if log == "none" else 1), repeats
        else:
            assert repeats == 0  # the connect before the other process came is not repeated
    finally:
        server.close()


@pytest.mark.native
def test_the_flip_attack_works_natively(programs):
    # Outside the sandbox the other process wins the race (so the test above can fail).
    server = SecretServer()
    try:
        got = 0
        for _ in range(5):
            result = subprocess.run([programs("flip", 64), "recv-process", str(server.port), "2000"],
                                    capture_output=True, text=True, timeout=60)
            got += int(result.stdout.split()[-1])
            if got > 20:
                break
        assert got > 20, result.stdout
    finally:
        server.close()

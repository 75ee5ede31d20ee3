"""Reliability: an honest program sees what it sees natively, under garbage, signals,
load and any user; a supervisor fault fails closed.

The fuzz and load sizes here are what CI affords; SOCKBOX_FUZZ_SEEDS and
SOCKBOX_LOAD_SCALE make a longer campaign (README.md, "Reliability").
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers.running import SOCKBOX, TESTS, Terminal, in_new_netns, sockbox, write_profile

pytestmark = pytest.mark.runtime_defaults("docker")  # containerd 1.6 only adds memory reads, which the attacks cover

FUZZ_SEEDS = int(os.environ.get("SOCKBOX_FUZZ_SEEDS", "4"))
FUZZ_CALLS = 4000
LOAD_SCALE = int(os.environ.get("SOCKBOX_LOAD_SCALE", "1"))
ROOT = os.geteuid() == 0
# Who runs the sandbox: as root, root and nobody; else whoever runs the tests.
USERS = ["root", "nobody"] if ROOT else ["self"]
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def as_user(user: str) -> list[str]:
    return AS_NOBODY if user == "nobody" else []


def sandboxed(profile: str, *options: str) -> list[str]:
    return [*SOCKBOX, "run", "-q", "-p", profile, *options, "--"]


@pytest.fixture
def shared_tmp():
    """A scratch directory anyone may write in (the tests' own are root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="sockbox-reliability-"))
    directory.chmod(0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# --- 1. transparency: the live path, fuzzed --------------------------------------------------


def fuzz(program: str, seed: int, workdir: Path, user: str,
         sandbox: list[str] = ()) -> tuple[list[str], dict]:
    """The fuzz program's lines ("INDEX CALL RESULT", then how it was called), and what
    reached the listeners of tests/reach.py. Each run starts in an empty directory (its
    unix binds make files) with the same address-space layout (setarch -R), so that a
    seed makes the same calls every time."""
    workdir.mkdir()
    workdir.chmod(0o777)
    report = workdir / "reach.json"
    command = [*as_user(user), sys.executable, str(TESTS / "reach.py"), str(report), "--",
               *sandbox, "setarch", "-R", program, str(seed), str(FUZZ_CALLS)]
    done = subprocess.run(in_new_netns(command), cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, "FUZZ_VERBOSE": "1"}, timeout=300)
    assert report.exists(), done.stderr[-2000:]
    reached = json.loads(report.read_text())
    assert reached["status"] == 0, done.stderr[-2000:]
    report.unlink()
    return done.stdout.splitlines(), reached


# Everything allowed: recorded (each call judged in Python), or not. Unrecorded, calls
# stop only where a rule needs their address (here one no seed makes, 192.0.2.1:1);
# there, a call whose facts repeat is served by the C fast path, which must answer alike.
ALLOW_ALL = {"audit": "audit", "unrecorded": """
[profile]
default = "allow"
log = "none"
[[rule]]
calls = ["connect", "sendto", "sendmsg", "sendmmsg"]
address = ["192.0.2.1/32"]
port = [1]
action = "deny"
"""}


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("allow_all", ALLOW_ALL)
def test_random_socket_calls_get_the_native_results(programs, shared_tmp, bits, user, allow_all):
    # Thousands of calls with bad descriptors, wild pointers, absurd lengths, unknown
    # families and options, through socketcall too (i386): every result, errno,
    # descriptor number and sendmmsg length as natively, the same destinations reached.
    profile = ALLOW_ALL[allow_all]
    if allow_all != "audit":
        profile = write_profile(shared_tmp, profile)
    repeats = 0
    for seed in range(1, FUZZ_SEEDS + 1):
        native, native_reached = fuzz(programs("fuzz", bits), seed, shared_tmp / f"native-{seed}", user)
        log = shared_tmp / f"log-{seed}.jsonl"
        boxed, boxed_reached = fuzz(programs("fuzz", bits), seed, shared_tmp / f"boxed-{seed}", user,
                                    sandboxed(profile, "--log", str(log)))
        assert len(native) == len(boxed) == FUZZ_CALLS
        differences = [f"native {a}\n  sandboxed {b.split('  (')[0]}"
                       for a, b in zip(native, boxed) if a.split("  (")[0] != b.split("  (")[0]]
        assert not differences, f"seed {seed}: " + "\n".join(differences[:10])
        assert boxed_reached == native_reached
        repeats += json.loads(log.read_text().splitlines()[-1])["repeats"]
    # The fast path was (or was not) tried; where pidfd_getfd is refused, only for the
    # calls that need no copy of a descriptor (an i386 socketcall socket(), for one).
    assert (repeats > 0) == (allow_all != "audit" and (not SOCKBOX.outer or bits == 32))


@pytest.mark.parametrize("bits", [64, 32])
def test_random_socket_calls_reach_nothing_the_profile_denies(programs, shared_tmp, bits):
    # Everything allowed but port 4242, where tests/reach.py listens: natively the fuzz
    # gets there now and then, sandboxed never, by any call, address spelling or ABI.
    profile = write_profile(shared_tmp, """
[profile]
default = "allow"
[[rule]]
calls = ["connect", "sendto", "sendmsg", "sendmmsg"]
port = [4242]
action = "deny"
""")
    natively_reached = 0
    for seed in range(1, FUZZ_SEEDS + 1):
        _, native = fuzz(programs("fuzz", bits), seed, shared_tmp / f"native-{seed}", USERS[0])
        natively_reached += native["connections"] + native["datagrams"]
        lines, boxed = fuzz(programs("fuzz", bits), seed, shared_tmp / f"boxed-{seed}", USERS[0],
                            sandboxed(profile))
        assert len(lines) == FUZZ_CALLS
        assert boxed["connections"] == boxed["datagrams"] == 0, f"seed {seed}: {boxed}"
    assert natively_reached > 0  # else this test could not have failed


# --- 1. transparency: a socket test suite nobody here wrote ------------------------------------


def unittest_outcomes(output: str) -> dict[str, str]:
    """Each test's outcome in `python -m test -v` output: ok, skipped, FAIL or ERROR."""
    outcomes = {}
    for line in output.splitlines():
        found = re.match(r"^(test\w+) \(([\w.]+)\) \.\.\. (ok|skipped|FAIL|ERROR|expected failure)", line)
        if found:
            outcomes[f"{found[2]}.{found[1]}"] = found[3]
    return outcomes


def test_cpython_socket_tests_give_the_native_results_under_audit():
    # CPython's own test_socket, natively and in the sandbox at once, each in a network
    # namespace of its own. Its VSOCK tests wait forever for a vsock peer natively as
    # much as sandboxed, so they are left out.
    suite = [sys.executable, "-m", "test", "test_socket", "-v", "--timeout", "300", "-i", "*VSOCK*"]
    runs = {where: subprocess.Popen(in_new_netns([*prefix, *suite]), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, cwd="/tmp")
            for where, prefix in (("native", []), ("sandboxed", sandboxed("audit")))}
    outputs = {where: run.communicate(timeout=600)[0] for where, run in runs.items()}
    native, boxed = (unittest_outcomes(outputs[where]) for where in ("native", "sandboxed"))
    assert len(native) > 500, outputs["native"][-3000:]
    assert "Tests result: SUCCESS" in outputs["native"], outputs["native"][-3000:]
    differences = {name: (native.get(name), boxed.get(name))
                   for name in native.keys() | boxed.keys() if native.get(name) != boxed.get(name)}
    assert not differences, (differences, outputs["sandboxed"][-3000:])
    assert runs["native"].returncode == runs["sandboxed"].returncode == 0


def test_a_unix_socket_keeps_the_name_it_was_bound_with(tmp_path):
    # getsockname and a peer's getpeername show the path as the program wrote it, relative
    # or absolute, however long. (The full 108 bytes with no terminator, which Python
    # cannot ask for, the fuzz tests do.)
    tmp_path.chmod(0o755)
    code = """
import os, socket
os.chdir(os.environ["HERE"])
for name in [b"rel.sock", os.path.join(os.environ["HERE"], "abs.sock").encode(), b"x" * 107]:
    server = socket.socket(socket.AF_UNIX)
    server.bind(name)
    server.listen()
    client = socket.socket(socket.AF_UNIX)
    client.connect(name)
    print(os.fsencode(server.getsockname()) == name, os.fsencode(client.getpeername()) == name)
"""
    result = sockbox("run", "-p", "offline", "--", sys.executable, "-c", code,
                     env={**os.environ, "HERE": str(tmp_path)})
    assert result.stdout.split() == ["True"] * 6, result.stdout + result.stderr


# --- 2. signals and job control ------------------------------------------------------------


INTERRUPTIONS = [(call, mode) for call in ("recv", "accept", "sendto")
                 for mode in ("restart", "norestart", "timeout", "expire")]


@pytest.mark.parametrize("bits", [64, 32])
def test_a_signal_interrupts_a_blocking_call_as_natively(programs, bits):
    # SIGALRM in the middle of a blocking recv, accept and sendto (which the sandbox
    # performs itself, as it names a destination): restarted under SA_RESTART, EINTR
    # without it or with a socket timeout, EAGAIN when the timeout comes first.
    def both(call_mode: tuple[str, str]) -> tuple[str, str]:
        command = [programs("interrupt", bits), *call_mode]
        native = subprocess.run(command, capture_output=True, text=True, timeout=30)
        boxed = subprocess.run([*sandboxed("audit"), *command], capture_output=True, text=True, timeout=30)
        return native.stdout, boxed.stdout

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(INTERRUPTIONS, pool.map(both, INTERRUPTIONS)))
    assert results[("sendto", "norestart")][0] == "sendto ERR EINTR\nhandled\n"
    assert results[("recv", "restart")][0] == "recv OK 4\nhandled\n"
    differences = {case: outputs for case, outputs in results.items() if outputs[0] != outputs[1]}
    assert not differences


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def wait_for_state(pid: int, states: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while (state := process_state(pid)) not in states:
        assert time.monotonic() < deadline, f"state {state}"
        time.sleep(0.01)
    return state


@pytest.mark.parametrize("stop_signal", [signal.SIGSTOP, signal.SIGTSTP])
def test_a_stopped_program_stays_stopped_until_continued(tcp_server, stop_signal):
    # Stopped from outside between socket calls, it stays stopped (the supervisor does
    # not resume it), continues on SIGCONT and finishes its work.
    code = f"""
import os, socket, sys, time
print(os.getpid(), flush=True)
sys.stdin.readline()
for _ in range(20):
    socket.create_connection(("127.0.0.1", {tcp_server.port})).close()
    time.sleep(0.01)
print("done", flush=True)
"""
    # A process group of its own under ours, as a shell's job: the kernel discards
    # SIGTSTP sent to an orphaned process group, as this one could be otherwise.
    process = subprocess.Popen([*sandboxed("localhost"), sys.executable, "-c", code],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               process_group=0)
    pid = int(process.stdout.readline())
    process.stdin.write("go\n")
    process.stdin.flush()
    time.sleep(0.05)
    os.kill(pid, stop_signal)
    wait_for_state(pid, "Tt")  # t: stopped, and traced
    time.sleep(0.5)
    assert process_state(pid) in "Tt"
    assert process.poll() is None
    os.kill(pid, signal.SIGCONT)
    assert process.stdout.readline() == "done\n"
    assert process.wait(timeout=30) == 0


def test_ctrl_z_stops_a_job_of_an_interactive_shell_and_fg_resumes_it():
    shell = Terminal("run", "-p", "localhost", "--", "bash", "--norc", "--noprofile", "-i")
    script = "import socket, time; time.sleep(1.5); socket.socket(); print('woke-' + str(6 * 7))"
    shell.type(f"{sys.executable} -c \"{script}\"\n".encode())
    time.sleep(0.7)
    shell.type(b"\x1a")  # Ctrl-Z
    shell.read_until(b"Stopped")
    shell.type(b"jobs -l; echo listed-$((1 + 1))\n")
    shell.read_until(b"listed-2")
    assert b"woke-42" not in shell.output
    shell.type(b"fg\n")
    shell.read_until(b"woke-42")
    shell.type(b"exit 3\n")
    assert shell.exit_status() == 3


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_sockbox_passes_int_and_term_on_to_the_command(sent):
    handled = """
import signal, sys, time
signal.signal(signal.SIG, lambda *_: sys.exit(7))
print("ready", flush=True)
time.sleep(30)
""".replace("SIG", sent.name)
    default = 'import time; print("ready", flush=True); time.sleep(30)'
    for code, status in ((handled, 7), (default, -sent)):  # -S: sockbox ended by the signal too
        process = subprocess.Popen([*sandboxed("offline"), sys.executable, "-c", code],
                                   stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline() == "ready\n"
        process.send_signal(sent)
        assert process.wait(timeout=30) == status


def test_every_death_by_signal_is_a_death_by_that_signal():
    deadly = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGILL, signal.SIGABRT,
              signal.SIGFPE, signal.SIGKILL, signal.SIGSEGV, signal.SIGPIPE, signal.SIGALRM,
              signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGXCPU, signal.SIGSYS]
    script = "; ".join(f"sh -c 'kill -{s.name[3:]} $$'; echo $?" for s in deadly)
    native = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout.split()
    assert native == [str(128 + s) for s in deadly]
    sandboxed_script = "; ".join(f"{' '.join(SOCKBOX)} run -- sh -c 'kill -{s.name[3:]} $$'; echo $?"
                                 for s in deadly)
    shell = subprocess.run(["sh", "-c", sandboxed_script], capture_output=True, text=True)
    assert shell.stdout.split() == native, shell.stderr


# --- 3. load -------------------------------------------------------------------------------


class Counter:
    """A loopback TCP listener that counts the connections it accepts, or a UDP socket
    that counts the datagrams it gets."""

    def __init__(self, kind: int):
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0
        if kind == socket.SOCK_STREAM:
            self.sock.listen(4096)
        threading.Thread(target=self._count, daemon=True).start()

    def _count(self) -> None:
        while True:
            try:
                if self.sock.type == socket.SOCK_STREAM:
                    self.sock.accept()[0].close()
                else:
                    self.sock.recv(16)
            except OSError:
                return
            self.count += 1

    def settled(self, expected: int, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.count < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # and nothing more comes
        return self.count

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def counters():
    made = {name: Counter(kind) for name, kind in (("tcp_ok", socket.SOCK_STREAM), ("tcp_denied", socket.SOCK_STREAM),
                                                   ("udp_ok", socket.SOCK_DGRAM), ("udp_denied", socket.SOCK_DGRAM))}
    yield made
    for counter in made.values():
        counter.close()


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("procs, threads, rounds", [(1, 48, 10), (200, 1, 5), (16, 8, 5)],
                         ids=["48-threads", "200-processes", "16x8"])
def test_many_processes_and_threads_at_once_get_every_decision_right(programs, counters, tmp_path,
                                                                     bits, procs, threads, rounds):
    rounds *= LOAD_SCALE
    ports = {name: counter.port for name, counter in counters.items()}
    profile = write_profile(tmp_path, f"""
[profile]
default = "deny"
log = "all"
[[rule]]
calls = ["socket"]
family = ["inet"]
action = "allow"
[[rule]]
calls = ["connect"]
address = ["127.0.0.1"]
port = [{ports["tcp_ok"]}]
action = "allow"
[[rule]]
calls = ["sendto"]
address = ["127.0.0.1"]
port = [{ports["udp_ok"]}]
action = "allow"
""")
    log = tmp_path / "audit.json"
    command = [programs("load", bits), "calls", str(procs), str(threads), str(rounds),
               *(str(ports[name]) for name in ("tcp_ok", "tcp_denied", "udp_ok", "udp_denied"))]
    result = subprocess.run([*sandboxed(profile, "--log", str(log)), *command],
                            capture_output=True, text=True, timeout=600)
    each = procs * threads * rounds
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"done {4 * each} wrong 0\n"
    assert counters["tcp_ok"].settled(each) == each
    assert counters["udp_ok"].settled(each) == each
    assert counters["tcp_denied"].count == counters["udp_denied"].count == 0
    # Every decision recorded: one record per call, the summary agreeing.
    records = [json.loads(line) for line in log.read_text().splitlines()]
    summary = records.pop()
    tally: dict[tuple[str, str], int] = {}
    for record in records:
        tally[record["call"], record["action"]] = tally.get((record["call"], record["action"]), 0) + 1
    assert tally == {("socket", "allow"): 4 * each, ("connect", "allow"): each,
                     ("connect", "deny"): each, ("sendto", "allow"): each, ("sendto", "deny"): each}
    assert summary["decisions"] == {"socket": {"allow": 4 * each},
                                    "connect": {"allow": each, "deny": each},
                                    "sendto": {"allow": each, "deny": each}}


@pytest.mark.parametrize("who", ["main", "thread"])
def test_exec_while_threads_are_in_the_middle_of_calls(programs, counters, who):
    # The exec kills every other thread, some of them stopped at the supervisor; the
    # new program runs, supervised, and the sandbox ends with its status.
    for _ in range(5 * LOAD_SCALE):
        result = subprocess.run([*sandboxed("localhost"), programs("load", 64), "exec", "8",
                                 str(counters["tcp_ok"].port), who],
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode, result.stdout) == (0, "exec'd\n"), result.stderr[-2000:]


def test_processes_killed_in_the_middle_of_calls(programs, counters):
    result = subprocess.run([*sandboxed("localhost"), programs("load", 64), "kill",
                             str(50 * LOAD_SCALE), str(counters["tcp_ok"].port)],
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, f"killed {50 * LOAD_SCALE}\n"), result.stderr[-2000:]
    assert counters["tcp_ok"].settled(1) > 0  # they were connecting when killed


# --- 5. any user ---------------------------------------------------------------------------


@pytest.mark.parametrize("home", ["missing", "read-only", "nonexistent"])
@pytest.mark.parametrize("user", USERS)
def test_any_user_any_home_any_working_directory(programs, tcp_server, shared_tmp, user, home):
    # An unwritable working directory, and a HOME that is unset, read-only or absent:
    # run, check, learn and the Python API work all the same.
    readonly = shared_tmp / "home"
    readonly.mkdir(mode=0o555)
    stuck = shared_tmp / "cwd"
    stuck.mkdir(mode=0o555)
    env = {key: value for key, value in os.environ.items() if key != "HOME"}
    if home == "read-only":
        env["HOME"] = str(readonly)
    elif home == "nonexistent":
        env["HOME"] = "/nonexistent"
    become = as_user(user)
    probe = [programs("netprobe", 64), "tcp", "127.0.0.1", str(tcp_server.port)]

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run([*become, *SOCKBOX, *arguments], capture_output=True, text=True,
                              env=env, cwd=stuck, timeout=60)

    allowed = run("run", "-p", "localhost", "--", *probe)
    assert allowed.returncode == 0 and "connect OK" in allowed.stdout, allowed.stdout + allowed.stderr
    denied = run("run", "-p", "web", "--", *probe)
    assert "connect ERR EACCES" in denied.stdout
    assert run("check", "web").stdout == "web: ok\n"
    learned = run("learn", "--", *probe)
    assert learned.returncode == 0 and f"port = [{tcp_server.port}]" in learned.stdout, learned.stderr
    api = subprocess.run([*become, *SOCKBOX.outer, sys.executable, "-c", f"""
import sandbox
result = sandbox.run({probe!r}, profile="audit", capture_output=True, text=True)
print(result.returncode, [(e.address, e.port) for e in result.destinations])
"""], capture_output=True, text=True, env=env, cwd=stuck, timeout=60)
    assert api.stdout.startswith("0 "), api.stdout + api.stderr
    assert f"('127.0.0.1', {tcp_server.port})" in api.stdout
    assert tcp_server.received == [b"ping"] * 3


# --- 6. supervisor faults ------------------------------------------------------------------


def leftover(marker: str) -> list[str]:
    return subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()


def test_an_audit_log_that_cannot_be_written_stops_the_sandbox():
    # Nothing may go unrecorded: a full disk stops everything, with one line and 125,
    # and no process of the sandbox lives on, untraced.
    marker = "sleep 31.4159"
    script = f"{marker} & python3 -c 'import socket; socket.socket()'; echo survived"
    result = sockbox("run", "-p", "audit", "--log", "/dev/full", "--", "sh", "-c", script)
    assert result.returncode == 125
    assert result.stderr == ("sockbox: cannot write the audit log to /dev/full: No space left "
                             "on device; every process in the sandbox was killed\n")
    assert "survived" not in result.stdout
    assert leftover(marker) == []


def test_an_audit_log_whose_reader_is_gone_stops_the_sandbox(tmp_path):
    marker = "sleep 27.1828"
    fifo = tmp_path / "log"
    os.mkfifo(fifo)
    script = f"{marker} & sleep 0.5; python3 -c 'import socket; socket.socket()'; echo survived"
    process = subprocess.Popen([*SOCKBOX, "run", "-p", "audit", "--log", str(fifo), "--",
                                "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(fifo):  # opened, then closed unread
        pass
    out, err = process.communicate(timeout=30)
    assert process.returncode == 125, err
    assert err.startswith(f"sockbox: cannot write the audit log to {fifo}: Broken pipe")
    assert "survived" not in out
    assert leftover(marker) == []


VANISH_PROFILE = """
[[rule]]
calls = ["socket", "socketpair"]
family = ["unix", "inet"]
action = "allow"
[[rule]]
calls = ["connect"]
path = ["/**"]
action = "allow"
[[rule]]
calls = ["sendto"]
address = ["127.0.0.1/32"]
action = "allow"
[[rule]]
calls = ["send", "recv"]
family = ["unix"]
action = "allow"
"""


@pytest.mark.parametrize("mode", ["paths", "family"])
@pytest.mark.parametrize("bits", [64, 32])
def test_a_process_ending_while_its_threads_are_stopped_leaves_the_sandbox_running(programs, tmp_path,
                                                                                   bits, mode):
    # Processes ended (exit_group) while sixteen threads make calls that stop at the
    # supervisor: unix paths resolved from the thread's cwd and judged sendtos
    # ("paths"), or sends and receives under a family rule, each keeping the others
    # still ("family"). Each stop of a thread killed meanwhile is let go and the sandbox
    # goes on: "paths" was an internal error (the cwd gone from /proc) that killed every
    # process; "family" waited 2 s for a thread that was stopped already, at every stop
    # handled after a frozen call (44 s a process with sixteen threads: the timeout).
    profile = write_profile(tmp_path, VANISH_PROFILE, name="vanish.toml")
    runs = 300 if mode == "paths" else 100
    script = (f"for i in $(seq {runs}); do {programs('vanish', bits)} {mode} 9 $((i * 37 % 3000)) || exit 1; "
              "done; echo done")
    result = sockbox("run", "-q", "-p", profile, "--", "sh", "-c", script, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "done\n", "")

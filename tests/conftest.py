"""Shared fixtures: C programs built for this session, loopback servers, and a way to
run `sockbox` as a user would (a separate process, its real exit status)."""

from __future__ import annotations

import errno
import ipaddress
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent

import pytest

from sandbox import ProfileError
from sandbox.decode import Inet4, Inet6
from sandbox.profile import Profile
from sandbox.rules import Call

TESTS = Path(__file__).parent
C_SOURCES = TESTS / "c"


# --- programs compiled in this session ---------------------------------------------------


@dataclass(frozen=True)
class Programs:
    directory: Path

    def __call__(self, name: str, bits: int = 64) -> str:
        return str(self.directory / f"{name}{bits}")


@pytest.fixture(scope="session")
def programs() -> Programs:
    """Every tests/c/*.c built twice: as NAME64 (x86_64) and NAME32 (gcc -m32)."""
    directory = Path(tempfile.mkdtemp(prefix="sockbox-tests-"))
    directory.chmod(0o755)  # readable by the unprivileged user of some tests
    for source in sorted(C_SOURCES.glob("*.c")):
        for bits, flags in ((64, []), (32, ["-m32"])):
            output = directory / f"{source.stem}{bits}"
            subprocess.run(["gcc", *flags, "-O2", "-Wall", "-Werror", "-o", str(output),
                            str(source), "-lpthread"], check=True)
    yield Programs(directory)
    shutil.rmtree(directory, ignore_errors=True)


# --- running sockbox ---------------------------------------------------------------------


class SockboxCommand:
    """The words that start sockbox, `python -m sandbox`: inside a runtime's outer seccomp
    layer (below) while a test runs in that mode. Spread it, `[*SOCKBOX, ...]`, where the
    command is made, so that the mode in force then applies."""

    def __init__(self) -> None:
        # The layer's words alone, for a command that reaches sockbox another way (a
        # program that execs it, the Python API).
        self.outer: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return iter([*self.outer, sys.executable, "-m", "sandbox"])


SOCKBOX = SockboxCommand()


def in_new_netns(command: list[str], setup: str = "", mounts: bool = False) -> list[str]:
    """`command` in a network namespace of its own (and a mount namespace, with
    `mounts`), loopback up, then `setup` (shell)."""
    userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    script = f'ip link set lo up{" && " + setup if setup else ""} && exec "$@"'
    return ["unshare", "--net", *(["--mount"] if mounts else []), *userns, "sh", "-c", script, "-",
            *command]


def sockbox(*args: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """`sockbox ARGS...` in a child process, output captured as text."""
    return subprocess.run([*SOCKBOX, *args], capture_output=True, text=True, timeout=timeout,
                          **kwargs)


@pytest.fixture
def run_sockbox():
    return sockbox


class Terminal:
    """`sockbox ARGS...` on a pseudo-terminal of its own, as a user at a shell runs it."""

    def __init__(self, *args: str):
        command = [*SOCKBOX, *args]
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child becomes sockbox
            os.execv(command[0], command)
        self.output = b""

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def read_until(self, token: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while token not in self.output:
            assert time.monotonic() < deadline, self.output.decode(errors="replace")
            try:
                self.output += os.read(self.master, 4096)
            except OSError:
                break

    def exit_status(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        os.close(self.master)
        return os.WEXITSTATUS(status)


# --- the container runtimes' default seccomp profiles, emulated ---------------------------

# Of the calls sockbox could use, those each runtime's default seccomp profile refuses to
# a container without CAP_SYS_PTRACE and CAP_SYS_ADMIN (no runtime grants either by
# default), with the errno it gives: Docker's (moby's profiles/seccomp/default.json, the
# same since containerd 1.7 in containerd's RuntimeDefault, what most Kubernetes clusters
# run), and containerd's RuntimeDefault before 1.7 (contrib/seccomp/seccomp_default.go),
# which lets process_vm_readv/writev through only with CAP_SYS_PTRACE too. A call they do
# not list gets their default errno, EPERM; clone3 gets ENOSYS, so that the C library
# falls back to clone. Podman's and CRI-O's default (containers-common's, since 0.48)
# refuses only kcmp of these. tests/c/outer.c applies one around a command;
# tests/test_containers.py makes each runtime's container profile from them.
RUNTIME_REFUSALS = {
    "docker": {"pidfd_getfd": errno.EPERM, "kcmp": errno.EPERM, "clone3": errno.ENOSYS},
    "containerd-1.6": {"pidfd_getfd": errno.EPERM, "kcmp": errno.EPERM, "clone3": errno.ENOSYS,
                       "process_vm_readv": errno.EPERM, "process_vm_writev": errno.EPERM},
}


def outer_layer(outer: str, runtime: str) -> list[str]:
    """The words that run a command inside `runtime`'s refusals; `outer` is tests/c/outer.c built."""
    return [outer, *(f"{call}={err}" for call, err in RUNTIME_REFUSALS[runtime].items()), "--"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "runtime_defaults(*runtimes): run each test once as it is "
                                       "and once per runtime named (all of RUNTIME_REFUSALS if "
                                       "none), every sockbox it starts through SOCKBOX inside "
                                       "that runtime's outer seccomp layer")
    config.addinivalue_line("markers", "native: a control that runs no sockbox (so no runtime's "
                                       "layer either): once, in a runtime_defaults module too "
                                       "(as a pure test is)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("runtime_defaults")
    runs_no_sockbox = any(metafunc.definition.get_closest_marker(name) for name in ("native", "pure"))
    if marker and not runs_no_sockbox:  # the runtimes it names, or all of them
        runtimes = list(marker.args) or list(RUNTIME_REFUSALS)
        metafunc.parametrize("outer_seccomp", [None, *runtimes], indirect=True,
                             ids=["plain", *(f"{runtime}-seccomp" for runtime in runtimes)])


@pytest.fixture(autouse=True)
def outer_seccomp(request: pytest.FixtureRequest):
    """The runtime whose outer seccomp layer is around every sockbox the test starts:
    none, unless its module is marked runtime_defaults (pytest_generate_tests)."""
    runtime = getattr(request, "param", None)
    if runtime is None:
        yield None
        return
    SOCKBOX.outer = outer_layer(request.getfixturevalue("programs")("outer"), runtime)
    try:
        yield runtime
    finally:
        SOCKBOX.outer = []


# --- loopback servers --------------------------------------------------------------------


@dataclass
class TcpServer:
    """Accepts on loopback, records what each connection sent, answers "pong"."""

    family: int = socket.AF_INET
    host: str = "127.0.0.1"
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.socket(self.family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = conn.recv(4096)
                self.received.append(data)
                conn.sendall(b"pong")
            except OSError:
                self.received.append(b"")

    def close(self) -> None:
        self.listener.close()


@dataclass
class UdpServer:
    """A bound loopback datagram socket; `collect` returns what reached it."""

    family: int = socket.AF_INET
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.port = self.sock.getsockname()[1]

    def collect(self, quiet_for: float = 0.3) -> list[bytes]:
        """Every datagram queued so far, and any arriving until `quiet_for` passes
        without one. Loopback queues a datagram before sendto() returns, so after the
        sender exited everything it sent is here."""
        datagrams = []
        self.sock.settimeout(quiet_for)
        while True:
            try:
                datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                return datagrams

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tcp_server():
    server = TcpServer()
    yield server
    server.close()


@pytest.fixture
def full_listener():
    """A listener whose accept queue is full, so that a connect to it blocks."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.3)
    yield listener.getsockname()[1]
    for sock in fillers:
        sock.close()
    listener.close()


@pytest.fixture
def tcp6_server():
    server = TcpServer(socket.AF_INET6, "::1")
    yield server
    server.close()


@pytest.fixture
def udp_server():
    server = UdpServer()
    yield server
    server.close()


@dataclass
class UnixServer:
    """A unix stream server at a filesystem path or an abstract name."""

    address: str | bytes
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    self.received.append(conn.recv(4096))
                    conn.sendall(b"pong")
                except OSError:  # the client left first
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def unix_server(tmp_path):
    tmp_path.chmod(0o755)
    server = UnixServer(str(tmp_path / "server.sock"))
    yield server
    server.close()


@pytest.fixture
def abstract_server():
    server = UnixServer(f"\0sockbox-test-{os.getpid()}-{time.monotonic_ns()}")
    yield server
    server.close()


def write_profile(directory: Path, text: str, name: str = "test.toml") -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


# --- profiles from text ------------------------------------------------------------------

BUILTINS = ["audit", "localhost", "offline", "server", "web", "workdir"]


def load(text: str, source: str = "test.toml") -> Profile:
    return Profile.from_toml(dedent(text), source)


def errors_of(text: str, source: str = "test.toml") -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load(text, source)
    return caught.value


# A valid first rule, so that the rule under test is rule[2] (indices are 1-based).
FIRST_RULE = """\
[[rule]]
calls = ["socket"]
action = "allow"
"""


def as_second_rule(body: str) -> str:
    return FIRST_RULE + "\n[[rule]]\n" + dedent(body)


# A valid profile that uses every key.
FULL = """\
[profile]
name = "everything"
description = "Uses every key"
default = "kill"
errno = "EPERM"
log = "all"
version = 1

[[rule]]
calls = ["socket", "socketpair"]
family = ["inet", "inet6", "unix", 16]
type = ["stream", "dgram"]
protocol = ["tcp", "udp", 0]
action = "allow"

[[rule]]
calls = ["connect", "sendto"]
address = ["10.0.0.0/8", "2001:db8::/32"]
port = [80, "8000-8999"]
exe = ["/usr/bin/*"]
action = "deny"
errno = "ECONNREFUSED"
log = true

[[rule]]
calls = ["connect"]
path = ["/run/**"]
action = "allow"

[[rule]]
calls = ["bind"]
abstract = ["dbus-*"]
action = "kill"

[[rule]]
calls = "*"
action = "allow"
"""


def connect(address: str, port: int) -> Call:
    """A connect from a TCP socket to address:port, as the supervisor describes it."""
    ip = ipaddress.ip_address(address)
    where = Inet4(ip, port) if ip.version == 4 else Inet6(ip, port)
    return Call(name="connect", family=where.family, type=socket.SOCK_STREAM, protocol=0, address=where)


pytest_plugins = ["pytester"]

"""The fixtures the tests share: the C programs built for this session, loopback servers,
and the container runtimes' outer seccomp layers around every sockbox a test starts.
What they are built on is in the helpers package."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from helpers.running import C_SOURCES, RUNTIME_REFUSALS, SOCKBOX, Programs, outer_layer
from helpers.servers import TcpServer, UdpServer, UnixServer


# --- programs compiled in this session ---------------------------------------------------


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


# --- the container runtimes' default seccomp profiles, emulated ---------------------------


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


pytest_plugins = ["pytester"]

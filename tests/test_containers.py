"""sockbox as a container's entrypoint, in real containers: podman with runc, under
Podman's own default seccomp profile and under Docker's and containerd's (made here from
RUNTIME_REFUSALS: see runtime_profile), as root and as a user with no capability.

The image is this host's own tree, from no registry: a root of a few files made here,
the host's /usr mounted read-only, and the sockbox these tests run (its virtualenv and
source) at the paths it has here. Most containers share the host's network namespace
and reach a server on its loopback; the example profile's test makes a namespace of its
own (podman's --network none) with a stand-in for example.com in it."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import sandbox
from helpers.running import RUNTIME_REFUSALS, TESTS, Programs, outer_layer

PODMAN_PROFILE = Path("/usr/share/containers/seccomp.json")  # containers-common's: Podman's default
RUNTIMES = ["podman", *RUNTIME_REFUSALS]
# Of the calls tests/c/outer.c probes, what Podman's default refuses without CAP_SYS_PTRACE.
PODMAN_REFUSES = {"kcmp": errno.EPERM}
# The capability that lets a refused call through, in both Docker's and containerd's.
LETS_THROUGH = {"clone3": "CAP_SYS_ADMIN"}  # and CAP_SYS_PTRACE for the others
# Docker's and containerd's default capabilities that Podman's lack.
DOCKER_CAPABILITIES = ["--cap-add", "audit_write,mknod,net_raw"]
# Root with the runtime's default capabilities; or as examples/pod.yaml runs the app:
# user 65534, every capability dropped, no_new_privs.
USERS = {"root": [], "nobody": ["--user", "65534:65534", "--cap-drop", "all",
                                "--security-opt", "no-new-privileges"]}


def runtime_profile(runtime: str) -> dict:
    """Docker's default seccomp profile (`docker`; containerd's RuntimeDefault since 1.7
    is the same for these calls) or containerd's RuntimeDefault before 1.7
    (`containerd-1.6`), as far as the calls sockbox makes tell them from Podman's:
    Podman's installed profile, with EPERM for a call it does not list (Podman's gives
    ENOSYS) and each call of RUNTIME_REFUSALS[runtime] refused with its errno unless the
    container holds the capability that lets it through, as they have it. It still
    differs from the real one in calls sockbox does not make: without CAP_SYS_ADMIN the
    real ones refuse mount, unshare, setns, keyctl and clone with namespace flags, which
    Podman's allows; Docker's refuses socket() for a few families (AF_VSOCK, AF_ALG...);
    they allow calls newer than this Podman (futex_waitv, fchmodat2, mseal...) and vmsplice,
    which it refuses."""
    profile = json.loads(PODMAN_PROFILE.read_text())
    refused = RUNTIME_REFUSALS[runtime]
    profile["defaultErrnoRet"], profile["defaultErrno"] = errno.EPERM, "EPERM"
    rules = []
    for rule in profile["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name not in refused]
        if rule["names"]:
            rules.append(rule)
    for name, err in refused.items():
        holder = {"caps": [LETS_THROUGH.get(name, "CAP_SYS_PTRACE")]}
        rules.append({"names": [name], "action": "SCMP_ACT_ALLOW", "includes": holder})
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": err, "excludes": holder})
    profile["syscalls"] = rules
    return profile


def image_root(directory: Path) -> Path:
    """A root for containers made from this host: the links into /usr it has (each
    container mounts the host's /usr read-only), and the files of /etc that users, the
    loader and Python's library lookup (ctypes, for libseccomp) read."""
    root = directory / "rootfs"
    for name in ("etc", "usr", "proc", "sys", "dev", "run", "tmp", "root"):
        (root / name).mkdir(parents=True)
    (root / "tmp").chmod(0o1777)  # podman's tmpfs over it takes its mode
    for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink(f"/{link}"):
            os.symlink(os.readlink(f"/{link}"), root / link)
    for name in ("passwd", "group", "nsswitch.conf", "ld.so.cache"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    return root


def limits() -> list[str]:
    """Limits any machine lets podman set. Podman's own (a million descriptors and
    processes) are above the host's hard limits, which root here, lacking
    CAP_SYS_RESOURCE, cannot raise: runc would refuse to start the container."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    processes = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    return ["--ulimit", f"nofile={min(soft, 1024)}:{min(hard, 4096)}",
            "--ulimit", f"nproc={processes}:{processes}"]


@dataclass
class Podman:
    """podman with runc, its state in a directory of this session's own."""

    state: Path
    root: Path
    profiles: dict[str, Path]
    mounts: list[str]

    def command(self, *args: str) -> list[str]:
        return ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--root", str(self.state / "storage"), "--runroot", str(self.state / "run"),
                "--tmpdir", str(self.state / "tmp"), *args]

    def container(self, runtime: str, user: str, *command: str, network: str = "host",
                  options: tuple[str, ...] = ()) -> list[str]:
        """`command` in a container of the image, under `runtime`'s default seccomp
        profile and capabilities, as `user`, in `network` (podman's --network)."""
        security = [] if runtime == "podman" else ["--security-opt", f"seccomp={self.profiles[runtime]}"]
        if runtime != "podman" and user == "root":
            security += DOCKER_CAPABILITIES
        return self.command("run", "--rm", "--read-only", "--network", network, *limits(), *security,
                            *USERS[user], *self.mounts, *options, "--rootfs", str(self.root), *command)

    def sockbox(self, runtime: str, user: str, *args: str, network: str = "host",
                options: tuple[str, ...] = ()) -> list[str]:
        """`sockbox ARGS...` as the container's entrypoint."""
        return self.container(runtime, user, str(Path(sys.prefix) / "bin" / "sockbox"), *args,
                              network=network, options=options)


@pytest.fixture(scope="session")
def podman(programs: Programs) -> Iterator[Podman]:
    # Short: podman refuses a runroot path longer than 50 characters.
    state = Path(tempfile.mkdtemp(prefix="sockbox-podman-"))
    state.chmod(0o755)  # the image's root is in it, for user 65534 too
    profiles = {}
    for runtime in RUNTIME_REFUSALS:
        profiles[runtime] = state / f"{runtime}.json"
        profiles[runtime].write_text(json.dumps(runtime_profile(runtime)))
    shared = {Path(sys.prefix), Path(sandbox.__file__).resolve().parents[1], programs.directory}
    mounts = ["--volume", "/usr:/usr:ro"]
    for path in sorted(shared):
        mounts += ["--volume", f"{path}:{path}:ro"]
    yield Podman(state, image_root(state), profiles, mounts)
    shutil.rmtree(state, ignore_errors=True)


class Greeter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = b"hello from the host\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server on the host's loopback; `.paths` is what was asked of it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Greeter)
    server.paths = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def probed(command: list[str]) -> dict[str, int]:
    """What `outer probe` printed: each call's errno, 0 where it ran."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {call: int(err) for call, err in (line.split() for line in done.stdout.splitlines())}


def native(programs: Programs, bits: int) -> dict[str, int]:
    calls = probed([programs("outer", bits), "probe"])
    assert not {errno.EPERM, errno.ENOSYS} & set(calls.values()), calls  # else nothing to see
    return calls


# --- the emulated profiles refuse what the runtimes' own refuse -----------------------------


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("runtime", RUNTIME_REFUSALS)
def test_the_outer_layer_refuses_what_the_runtime_refuses(programs, runtime, bits):
    under = probed([*outer_layer(programs("outer"), runtime), programs("outer", bits), "probe"])
    assert under == {**native(programs, bits), **RUNTIME_REFUSALS[runtime]}


@pytest.mark.parametrize("bits", [64, 32])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_each_container_profile_refuses_what_its_runtime_refuses(podman, programs, runtime, bits):
    inside = probed(podman.container(runtime, "root", programs("outer", bits), "probe"))
    refused = PODMAN_REFUSES if runtime == "podman" else RUNTIME_REFUSALS[runtime]
    assert inside == {**native(programs, bits), **refused}


# --- sockbox as the entrypoint ---------------------------------------------------------------


# The image's root is read-only (--read-only): with a tmpfs at /tmp, as podman mounts
# one, or with nothing writable at all, as Kubernetes' readOnlyRootFilesystem leaves it.
FILESYSTEMS = {"tmpfs-at-tmp": (), "nothing-writable": ("--read-only-tmpfs=false",)}


@pytest.mark.parametrize("filesystem", FILESYSTEMS)
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_curl_reaches_loopback_under_localhost_and_nothing_under_offline(podman, http_server, runtime, user,
                                                                         filesystem):
    url = f"http://127.0.0.1:{http_server.server_port}/from-the-container"
    options = FILESYSTEMS[filesystem]
    allowed = subprocess.run(podman.sockbox(runtime, user, "run", "-p", "localhost", "--", "curl", "-sS", url,
                                            options=options),
                             capture_output=True, text=True, timeout=120)
    assert (allowed.returncode, allowed.stdout) == (0, "hello from the host\n"), allowed.stderr
    denied = subprocess.run(podman.sockbox(runtime, user, "run", "-p", "offline", "--", "curl", "-sS", url,
                                           options=options),
                            capture_output=True, text=True, timeout=120)
    assert denied.returncode == 7, denied.stderr  # curl: could not connect
    assert re.search(r"^sockbox: deny socket\(AF_INET, SOCK_STREAM", denied.stderr, re.M), denied.stderr
    assert http_server.paths == ["/from-the-container"]


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_as_pid_1_it_reaps_orphans_and_exits_with_the_commands_status(podman, runtime, user):
    # The subshell leaves a child behind and exits; the orphan, now PID 1's, exits too.
    script = ("echo parent:$PPID; (sleep 0.3 &); sleep 1.5; "
              "zombies=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null); "
              "echo zombies:${zombies:-none}; exit 5")
    result = subprocess.run(podman.sockbox(runtime, user, "run", "-p", "offline", "--", "sh", "-c", script),
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (5, "parent:1\nzombies:none\n"), result.stderr


def started(podman: Podman, runtime: str, user: str, script: str) -> tuple[str, subprocess.Popen]:
    """A named container running `sh -c script` under sockbox, once it printed "ready"."""
    name = f"sockbox-test-{uuid.uuid4().hex[:12]}"
    process = subprocess.Popen(podman.sockbox(runtime, user, "run", "-p", "offline", "--", "sh", "-c", script,
                                              options=("--name", name)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = process.stdout.readline()  # type: ignore[union-attr]
    if ready != "ready\n":
        process.wait(timeout=60)
        pytest.fail(f"exit status {process.returncode}: {process.stderr.read()}")  # type: ignore[union-attr]
    return name, process


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_podman_stop_reaches_the_command(podman, runtime, user):
    # podman stop sends SIGTERM to PID 1, sockbox, and SIGKILL 30 s later: only a
    # forwarded TERM lets the command's trap end it with its own status.
    script = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done"
    name, process = started(podman, runtime, user, script)
    subprocess.run(podman.command("stop", "--time", "30", name), capture_output=True, check=True, timeout=60)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (3, "got TERM\n"), err


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_command_killed_by_a_forwarded_signal_gives_128_plus_n(podman, runtime, user):
    name, process = started(podman, runtime, user, "echo ready; exec sleep 60")
    subprocess.run(podman.command("kill", "--signal", "TERM", name), capture_output=True, check=True, timeout=60)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + 15, err


# --- the example image's profile ---------------------------------------------------------------


@pytest.fixture
def api_host(podman: Podman, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A container whose network namespace has example.com in it: tests/api_host.py with a
    certificate for the name; the container's name, and the certificate."""
    tmp_path.chmod(0o755)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=example.com", "-addext", "subjectAltName=DNS:example.com",
                    "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True, timeout=60)
    (tmp_path / "hosts").write_text("127.0.0.1 localhost\n")
    (tmp_path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    name = f"sockbox-api-host-{uuid.uuid4().hex[:12]}"
    server = subprocess.Popen(podman.container("podman", "root", sys.executable, str(TESTS / "api_host.py"),
                                               "example.com", str(cert), str(key), network="none",
                                               options=("--name", name, "--volume", f"{tmp_path}:{tmp_path}:ro")),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert server.stdout.readline() == "ready\n", server.communicate(timeout=60)  # type: ignore[union-attr]
    yield name, tmp_path
    subprocess.run(podman.command("stop", "--time", "1", name), capture_output=True, timeout=60)
    server.communicate(timeout=60)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_example_profile_lets_curl_fetch_from_its_api_host_and_denies_nothing(podman, api_host, runtime):
    # examples/app.toml as the example image runs it (user 65534, no capability), curl
    # fetching https://example.com/ from the stand-in, found through its DNS server:
    # every call curl makes on the way is allowed, so no denial is reported.
    name, files = api_host
    mounts = ("--volume", f"{files}:{files}:ro", "--volume", f"{files / 'hosts'}:/etc/hosts:ro",
              "--volume", f"{files / 'resolv.conf'}:/etc/resolv.conf:ro")
    profile = TESTS.parent / "examples" / "app.toml"
    result = subprocess.run(podman.sockbox(runtime, "nobody", "run", "-p", str(profile), "--",
                                           "curl", "-sS", "--cacert", str(files / "cert.pem"), "-o", "/dev/null",
                                           "-w", "%{http_code}\n", "https://example.com/",
                                           network=f"container:{name}", options=mounts),
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "200\n"), result.stderr
    assert result.stderr == ""

"""Running sockbox as a user would (a separate process, its real exit status), the C
programs the session builds, and the container runtimes' outer seccomp layers."""

from __future__ import annotations

import errno
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).parent.parent
C_SOURCES = TESTS / "c"


@dataclass(frozen=True)
class Programs:
    directory: Path

    def __call__(self, name: str, bits: int = 64) -> str:
        return str(self.directory / f"{name}{bits}")


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


def write_profile(directory: Path, text: str, name: str = "test.toml") -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


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

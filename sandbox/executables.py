"""What an `exe` rule is matched against: the path the kernel gives for a process's
executable, when sockbox can vouch that the process runs that file's code, and None
(no `exe` rule holds) when it cannot.

The path alone proves little: a program that can write near it can put its own code
there, and a program may run an honest executable with code of its own choosing. So,
for a profile with `exe` rules:

- The file must be unchanged since before the sandbox started (its inode's change
  time, which every write, rename, link and chmod sets to the current time and no
  call sets to another): a file created, replaced, linked or renamed onto the path by
  the program is not vouched for. The command cannot set the clock (runner drops
  CAP_SYS_TIME) nor mount anything (its Landlock domain forbids it).
- The image must have been loaded without loader variables (LD_PRELOAD and every
  other LD_*, GCONV_PATH) other than those the command itself was started with:
  those make ld.so or libc load code from files the program chooses. Read at the
  exec stop, before the loader runs; a process forked from such an image shares it.
- Its memory must not be writable by the other processes of the sandbox:
  process_vm_writev and ptrace are refused always, and the Landlock domain keeps
  /proc (and any procfs mount) from being opened for writing, so /proc/PID/mem too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

# What a profile with `exe` rules is told (sockbox check, show).
CAVEAT = ("exe rules hold for the named file's own code, as it was when the sandbox started "
          "and run without loader variables of the program's choosing; not for what a "
          "program that runs it can make it do (its arguments, configuration, the scripts of "
          "an interpreter, plugins), nor for libraries it loads from files the command may "
          "write (root without [filesystem] can replace any)")

# A file changed this close before the start is not vouched for either: the change
# time comes from a coarse clock (a tick behind) and some filesystems keep it coarser
# still (FAT: 2 s).
_CLOCK_SLACK_NS = 2_000_000_000
# The variables that make ld.so or libc load code from files of the program's choice:
# every LD_* (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ...) and iconv's modules.
_LOADER_PREFIX, _ICONV_MODULES = b"LD_", b"GCONV_PATH"

LoaderSettings = frozenset[bytes]  # "NAME=value" entries


def loader_settings(environment: bytes) -> LoaderSettings:
    """The loader variables among NUL-separated "NAME=value" entries."""
    return frozenset(entry for entry in environment.split(b"\0")
                     if entry.startswith(_LOADER_PREFIX) or entry.partition(b"=")[0] == _ICONV_MODULES)


def settings_of(environ: Mapping[str, str]) -> LoaderSettings:
    """The loader variables of an environment as the command is started with it."""
    return loader_settings(b"\0".join(os.fsencode(f"{name}={value}") for name, value in environ.items()))


class Vouching:
    """What sockbox vouches for: executables unchanged since `since_ns` (a CLOCK_REALTIME
    time), and images loaded with no loader variables beyond `started_with`."""

    def __init__(self, started_with: LoaderSettings, since_ns: int | None = None):
        self.since_ns = time.time_ns() if since_ns is None else since_ns
        self.started_with = started_with
        # Whether each process (by thread group) runs an image loaded as the program chose.
        self._steered: dict[int, bool] = {}

    def executed(self, pid: int) -> None:
        """At `pid`'s exec stop, before the loader runs: what its environment asks."""
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                settings = loader_settings(environ.read())
        except OSError:
            self._steered[pid] = True  # what it was started with is unknown: not vouched for
            return
        self._steered[pid] = not settings <= self.started_with

    def forked(self, parent_group: int, child: int) -> None:
        """A new process (or thread: harmless) runs its parent's image."""
        self._steered[child] = self._steered.get(parent_group, True)

    def ended(self, pid: int) -> None:
        self._steered.pop(pid, None)

    def known(self, group: int) -> bool:
        """Whether the image of process `group` was seen loaded or forked (a child may
        stop before the event of its creation is read)."""
        return group in self._steered

    def vouches(self, tid: int, group: int) -> bool:
        """Whether thread `tid` of process `group` runs its executable's own code."""
        if self._steered.get(group, True):
            return False
        try:
            changed = os.stat(f"/proc/{tid}/exe").st_ctime_ns
        except OSError:
            return False
        return changed < self.since_ns - _CLOCK_SLACK_NS

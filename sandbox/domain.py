"""The Landlock domain a sandbox's command enters, built when the sandbox starts from
the profile's [filesystem] and `process.signals`.

Every command enters a domain: without [filesystem] it restricts no file access (it
handles only creating block devices, allowed everywhere), but a process in a domain
reaches another's memory, descriptors or tracing (ptrace, /proc/PID/mem,
process_vm_*, pidfd_getfd) only inside its domain. With [filesystem], the domain
handles every filesystem right the kernel knows and grants:

- beneath each `read` path: execute, read files, list directories;
- beneath each `write` path: every right, refer included, so that a rename or link
  between write paths works (one whose source or destination lies elsewhere fails:
  EACCES, or EXDEV where only a link's source is read-only);
- always: reading and writing the devices of confine.IMPLICIT_DEVICES (truncation
  too, which `> /dev/null` asks for), and ioctl on /dev/tty, which a shell's job
  control needs.

What the kernel cannot enforce is refused before anything runs, naming the key:
[filesystem] without Landlock ABI 3 (truncation), `read` without ABI 5 (ioctl on
devices opened for reading), `signals = "sandbox"` without ABI 6.

Paths are resolved here (symlinks followed, relative to the command's working
directory), once: the rules hold the files found then, whatever their paths later.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import PurePosixPath
from collections.abc import Iterator

from . import landlock
from .confine import IMPLICIT_DEVICES, Filesystem, Grant, Process, Signals
from .errors import ProfileError, UnsupportedKernel
from .landlock import EXECUTE, FILE_RIGHTS, IOCTL_DEV, READ_DIR, READ_FILE, REFER, TRUNCATE, WRITE_FILE

READ_RIGHTS = EXECUTE | READ_FILE | READ_DIR
_DEVICE_RIGHTS = READ_FILE | WRITE_FILE | TRUNCATE
_IMPLICIT_RIGHTS = {device: _DEVICE_RIGHTS | (IOCTL_DEV if device == "/dev/tty" else 0)
                    for device in IMPLICIT_DEVICES}

Identity = tuple[int, int]  # (st_dev, st_ino): what a Landlock rule is tied to


def kernel_shortfalls(filesystem: Filesystem | None, process: Process, version: int) -> list[tuple[str, str]]:
    """What the sections ask that Landlock ABI `version` cannot enforce, by key."""
    has = _has(version)
    problems = []
    if filesystem is not None:
        if version < 3:
            problems.append(("filesystem", ("needs Landlock ABI 3 (Linux 6.2), which keeps files "
                                            f"outside filesystem.write from being truncated; {has}")))
        elif filesystem.read and version < 5:
            problems.append(("filesystem.read", ("needs Landlock ABI 5 (Linux 6.10), which refuses "
                                                 f"ioctl on devices opened for reading; {has}")))
    if process.signals is Signals.SANDBOX and version < 6:
        problems.append(("process.signals", f'"sandbox" needs Landlock ABI 6 (Linux 6.12); {has}'))
    return problems


def _has(version: int) -> str:
    return f"this kernel has ABI {version}" if version else "this kernel has no Landlock"


@dataclass(frozen=True)
class Resolved:
    """The listed paths, found: each grant with the file it names."""

    read: tuple[tuple[Grant, Identity, bool], ...]  # grant, file, is a directory
    write: tuple[tuple[Grant, Identity, bool], ...]

    def grant_beneath(self, identities: list[Identity], write: bool) -> Grant | None:
        """The grant that covers a file whose identity and its ancestors' (nearest
        first) are `identities`, for reading (or `write`), as Landlock decides it."""
        kinds = (self.write,) if write else (self.write, self.read)
        for identity in identities:
            for kind in kinds:
                for grant, file, _ in kind:
                    if file == identity:
                        return grant
        return None


def resolve(filesystem: Filesystem, cwd: str | None,
            write_rights: int) -> tuple[Resolved, list[tuple[Grant, int, int]]]:
    """Every listed path opened (O_PATH, symlinks followed, relative to `cwd`): the
    files found, and (grant, descriptor, rights) for each, for the caller to close.
    A path that cannot be opened is a ProfileError naming its key."""
    base = os.open(cwd or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    found: dict[str, list[tuple[Grant, Identity, bool]]] = {"read": [], "write": []}
    opened: list[tuple[Grant, int, int]] = []
    try:
        for kind, grants, rights in (("read", filesystem.read, READ_RIGHTS),
                                     ("write", filesystem.write, write_rights)):
            for grant in grants:
                try:
                    fd = os.open(grant.path, os.O_PATH | os.O_CLOEXEC, dir_fd=base)
                except OSError as error:
                    for _, fd, _ in opened:
                        os.close(fd)
                    where = grant.path
                    if not where.startswith("/"):
                        where += f" (in {os.readlink(f'/proc/self/fd/{base}')})"
                    raise ProfileError(grant.file, [(grant.key, f"{where}: {error.strerror}")]) from None
                info = os.fstat(fd)
                directory = stat.S_ISDIR(info.st_mode)
                found[kind].append((grant, (info.st_dev, info.st_ino), directory))
                opened.append((grant, fd, rights if directory else rights & FILE_RIGHTS))
    finally:
        os.close(base)
    return Resolved(tuple(found["read"]), tuple(found["write"])), opened


def ancestry(fd: int) -> Iterator[Identity]:
    """The identity of the file `fd` names, then of each directory above it up to the
    root, as Landlock walks a hierarchy: `..` from the root of a mount is the parent
    of the directory it is mounted on, which is itself passed over (hidden). Above a
    file that is not a directory: the directory of the path it was opened by."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        here = os.dup(fd)
    else:
        yield info.st_dev, info.st_ino
        parent = os.path.dirname(os.readlink(f"/proc/self/fd/{fd}"))
        here = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        info = os.fstat(here)
    try:
        while True:
            yield info.st_dev, info.st_ino
            parent_fd = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=here)
            os.close(here)
            here = parent_fd
            above = os.fstat(here)
            if (above.st_dev, above.st_ino) == (info.st_dev, info.st_ino):
                return  # the root: its .. is itself
            info = above
    finally:
        os.close(here)


@dataclass
class Domain:
    """A Landlock ruleset built in the supervisor, entered by the command's first
    process before it execs (`enter`); `resolved` is None where files are not confined."""

    ruleset: int  # close-on-exec; closed once the command has entered it
    resolved: Resolved | None

    @classmethod
    def for_profile(cls, filesystem: Filesystem | None, process: Process, source: str,
                    cwd: str | None = None, procfs_unwritable: bool = False) -> Domain | None:
        """The domain for these sections, or None where the kernel has no Landlock
        and they ask nothing of it; with `procfs_unwritable` (`exe` rules), one where no
        file beneath a procfs mount opens for writing. Raises UnsupportedKernel naming
        the key the kernel cannot enforce, ProfileError naming a path that cannot be
        found (or, with `procfs_unwritable`, a write path that holds procfs)."""
        version = landlock.abi()
        problems = kernel_shortfalls(filesystem, process, version)
        if procfs_unwritable and version < 2:
            problems.append(("rule", "exe rules need Landlock ABI 2 (Linux 5.19), which keeps other "
                                     "processes from writing into the executable's memory and still "
                                     f"lets files move between directories; {_has(version)}"))
        if problems:
            key, what = problems[0]
            raise UnsupportedKernel(f"{source}: {key}: {what}")
        if version == 0:
            return None
        scoped = landlock.SCOPE_SIGNAL if process.signals is Signals.SANDBOX else 0
        if filesystem is None:
            return cls._procfs_unwritable(scoped) if procfs_unwritable else cls._unconfined(scoped)
        handled = landlock.filesystem_rights(version)
        resolved, opened = resolve(filesystem, cwd, handled)
        if procfs_unwritable:
            _refuse_writable_procfs(resolved, opened)
        ruleset = landlock.create_ruleset(handled, scoped)
        try:
            for _, fd, rights in opened:
                landlock.add_path(ruleset, fd, rights & handled)
            for device, rights in _IMPLICIT_RIGHTS.items():
                try:
                    fd = os.open(device, os.O_PATH | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue  # nothing there to grant
                try:
                    landlock.add_path(ruleset, fd, rights & handled)
                finally:
                    os.close(fd)
        except BaseException:
            os.close(ruleset)
            raise
        finally:
            for _, fd, _ in opened:
                os.close(fd)
        return cls(ruleset, resolved)

    @classmethod
    def _unconfined(cls, scoped: int) -> Domain:
        """A domain that handles only creating block devices, allowed everywhere."""
        ruleset = landlock.create_ruleset(landlock.MAKE_BLOCK, scoped)
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)
        try:
            landlock.add_path(ruleset, root, landlock.MAKE_BLOCK)
        except BaseException:
            os.close(ruleset)
            raise
        finally:
            os.close(root)
        return cls(ruleset, None)

    @classmethod
    def _procfs_unwritable(cls, scoped: int) -> Domain:
        """A domain that handles only writing files, allowed everywhere but beneath
        procfs mounts (where /proc/PID/mem would write another process's memory); and
        moving files between directories, which a domain that handles any file right
        refuses unless it grants it (refer), allowed wherever writing is."""
        handled = WRITE_FILE | REFER
        ruleset = landlock.create_ruleset(handled, scoped)
        try:
            for path in everything_but(procfs_mounts()):
                try:
                    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    continue  # gone since it was listed
                try:
                    directory = stat.S_ISDIR(os.fstat(fd).st_mode)
                    landlock.add_path(ruleset, fd, handled if directory else WRITE_FILE)
                finally:
                    os.close(fd)
        except BaseException:
            os.close(ruleset)
            raise
        return cls(ruleset, None)

    def enter(self) -> None:
        """In the command's process, after NO_NEW_PRIVS: enter the domain."""
        landlock.restrict_self(self.ruleset)
        os.close(self.ruleset)

    def close(self) -> None:
        """In the supervisor, once the command has entered the domain."""
        os.close(self.ruleset)

    def may_create_in(self, directory: int) -> bool:
        """Whether the command may create a file (a unix socket's, say) in the
        directory `directory` (a descriptor, O_PATH will do) names: whether a write
        path is the directory or above it, as Landlock decides it. For a call the
        supervisor performs outside the domain (a bind to a unix path)."""
        if self.resolved is None:
            return True
        return self.resolved.grant_beneath(list(ancestry(directory)), write=True) is not None


def procfs_mounts() -> list[str]:
    """Where procfs is mounted in this mount namespace (/proc/self/mountinfo's mount
    points, their octal escapes undone)."""
    mounts = []
    with open("/proc/self/mountinfo") as lines:
        for line in lines:
            fields = line.split()
            if fields[fields.index("-") + 1] == "proc":
                mounts.append(re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), fields[4]))
    return mounts


def everything_but(excluded: list[str]) -> list[str]:
    """Paths whose hierarchies together hold every file but those beneath `excluded`
    (absolute paths): the entries of each directory on the way to one of them, but
    that way. Symbolic links are left out: what they lead to is covered where it is."""
    outermost = {PurePosixPath(path) for path in excluded}
    outermost = {path for path in outermost if not any(other in path.parents for other in outermost)}
    on_the_way = {parent for path in outermost for parent in path.parents}
    covering = []
    for directory in sorted(on_the_way):
        for name in sorted(os.listdir(directory)):
            entry = directory / name
            if entry not in outermost and entry not in on_the_way and not os.path.islink(entry):
                covering.append(str(entry))
    return covering


def _refuse_writable_procfs(resolved: Resolved, opened: list[tuple[Grant, int, int]]) -> None:
    """For `exe` rules: no write path may hold a procfs mount or lie beneath one."""
    procfs = []
    for mount in procfs_mounts():
        try:
            fd = os.open(mount, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            procfs.append((os.fstat(fd).st_dev, set(ancestry(fd))))
        finally:
            os.close(fd)
    for grant, identity, _ in resolved.write:
        if any(identity[0] == device or identity in above for device, above in procfs):
            for _, fd, _ in opened:
                os.close(fd)
            raise ProfileError(grant.file, [(grant.key or "filesystem.write", (
                f"{grant.path} holds /proc, where a process could write into another's memory "
                "(/proc/PID/mem), which exe rules cannot allow"))])

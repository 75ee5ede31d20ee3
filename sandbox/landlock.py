"""Landlock, the kernel's confinement of a process and its descendants by file
hierarchy (Linux 5.13) and, from ABI 6 (Linux 6.12), of the signals they may send.

Only the system calls and the facts of each ABI live here; what a profile asks of
them is `confine`'s.
"""

from __future__ import annotations

import ctypes
import struct

from . import libc


CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

# Filesystem access rights (handled_access_fs, allowed_access).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: link or rename into another directory
TRUNCATE = 1 << 14  # ABI 3: truncate(2), ftruncate(2), O_TRUNC
IOCTL_DEV = 1 << 15  # ABI 5: ioctl(2) on a character or block device opened

# The rights a rule on a file (not a directory) may carry.
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

# Scopes (ABI 6): what a domain keeps from reaching processes outside it.
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

# The filesystem rights each ABI added.
_RIGHTS_SINCE = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}


def abi() -> int:
    """The kernel's Landlock ABI version, or 0 where it has none (or has it disabled)."""
    version = libc.raw_syscall("landlock_create_ruleset", None, 0, CREATE_RULESET_VERSION)
    return max(version, 0)


def filesystem_rights(version: int) -> int:
    """Every filesystem right that ABI `version` knows."""
    return sum(rights for since, rights in _RIGHTS_SINCE.items() if since <= version)


def create_ruleset(handled_fs: int, scoped: int = 0) -> int:
    """A new ruleset handling `handled_fs` and scoping `scoped`: its descriptor
    (close-on-exec). Raises OSError."""
    # struct landlock_ruleset_attr: u64 handled_access_fs, handled_access_net, scoped. A
    # kernel older than a field takes the shorter struct.
    attr = struct.pack("=QQQ", handled_fs, 0, scoped) if scoped else struct.pack("=Q", handled_fs)
    buffer = ctypes.create_string_buffer(attr, len(attr))
    return libc.syscall("landlock_create_ruleset", buffer, len(attr), 0)


def add_path(ruleset: int, directory: int, rights: int) -> None:
    """Allow `rights` beneath the file or directory that `directory` (an O_PATH
    descriptor) names. Raises OSError."""
    # struct landlock_path_beneath_attr: u64 allowed_access; s32 parent_fd (packed)
    beneath = ctypes.create_string_buffer(struct.pack("=Qi", rights, directory), 12)
    libc.syscall("landlock_add_rule", ruleset, RULE_PATH_BENEATH, beneath, 0)


def restrict_self(ruleset: int) -> None:
    """Enter the ruleset's domain, for good (needs NO_NEW_PRIVS). Raises OSError."""
    libc.syscall("landlock_restrict_self", ruleset, 0)

"""A profile's `[filesystem]` and `[process]` sections: what a sandbox may reach beyond
sockets. Read from TOML (every mistake collected, as `filesystem.write[0]: ...`), set
from the command line, and written back as TOML.

    [filesystem]                 # without it, files are not confined
    read  = ["/usr", "/etc"]     # read and execute beneath these
    write = ["/tmp/job"]         # everything beneath these: create, write, rename, remove

    [process]
    signals = "sandbox"          # signal only the sandbox's own processes ("any")
    cpu = 60                     # CPU seconds per process
    memory = "1G"                # address space per process
    processes = 256              # processes and threads alive at once in the sandbox
    open_files = 1024            # descriptors per process

Paths stay as written here; `domain` resolves them when a sandbox starts.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from .errors import UsageError

FILESYSTEM_KEYS = ("read", "write")
PROCESS_KEYS = ("signals", "cpu", "memory", "processes", "open_files")
_SIZE = re.compile(r"([0-9]+)([KMGT]?)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_LARGEST = (1 << 63) - 1  # beyond this, setrlimit's values mean "unlimited"


class Signals(enum.Enum):
    ANY = "any"
    SANDBOX = "sandbox"


@dataclass(frozen=True)
class Grant:
    """One listed path, as written, and where it was written (for messages)."""

    path: str
    file: str  # the profile file, or the command-line option
    key: str  # e.g. filesystem.write[0]; "" for a command-line option

    @property
    def where(self) -> str:
        return f"{self.file}: {self.key}" if self.key else self.file


@dataclass(frozen=True)
class Filesystem:
    """[filesystem]: read and execute beneath `read`, everything beneath `write`; any
    other access refused (EACCES), as Landlock refuses it."""

    read: tuple[Grant, ...] = ()
    write: tuple[Grant, ...] = ()


@dataclass(frozen=True)
class Process:
    """[process]: whom the sandbox may signal, and what each process (or the whole
    sandbox, for `processes`) may use. None: no limit."""

    signals: Signals = Signals.ANY
    cpu: int | None = None  # seconds
    memory: int | None = None  # bytes of address space
    processes: int | None = None
    open_files: int | None = None

    @property
    def limits(self) -> dict[str, int]:
        """The per-process limits that are set, by key."""
        return {key: value for key, value in (("cpu", self.cpu), ("memory", self.memory),
                                              ("open_files", self.open_files)) if value is not None}


Error = Callable[[str, str], None]
Unknown = Callable[[str, Any, Iterable[str]], str]


def read_sections(document: dict[str, Any], source: str, error: Error,
                  unknown: Unknown) -> tuple[Filesystem | None, Process]:
    """The two sections of a parsed profile; mistakes go to `error(key, what)`, and
    `unknown(what, value, known)` says what an unknown key is."""
    filesystem = None
    if "filesystem" in document:
        table = _table(document["filesystem"], "filesystem", error)
        for key in table:
            if key not in FILESYSTEM_KEYS:
                error(f"filesystem.{key}", unknown("key", key, FILESYSTEM_KEYS))
        filesystem = Filesystem(_grants(table, "read", source, error),
                                _grants(table, "write", source, error))
    table = _table(document.get("process", {}), "process", error)
    for key in table:
        if key not in PROCESS_KEYS:
            error(f"process.{key}", unknown("key", key, PROCESS_KEYS))
    values: dict[str, Any] = {}
    for key, parse in _PROCESS_PARSERS.items():
        if key in table:
            try:
                values[key] = parse(table[key])
            except ValueError as reason:
                error(f"process.{key}", str(reason))
    return filesystem, Process(**values)


def _table(value: Any, name: str, error: Error) -> dict[str, Any]:
    if not isinstance(value, dict):
        error(name, f"must be a table: [{name}]")
        return {}
    return value


def _grants(table: dict[str, Any], key: str, source: str, error: Error) -> tuple[Grant, ...]:
    value = table.get(key, [])
    if not isinstance(value, list):
        error(f"filesystem.{key}", f"must be a list of paths, not {value!r}")
        return ()
    grants = []
    for index, item in enumerate(value):
        where = f"filesystem.{key}[{index}]"
        try:
            grants.append(Grant(parse_path(item), source, where))
        except ValueError as reason:
            error(where, str(reason))
    return tuple(grants)


def parse_path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a path (a non-empty string), not {value!r}")
    if "\0" in value:
        raise ValueError("a path cannot hold a NUL character")
    return value


def parse_signals(value: Any) -> Signals:
    choices = [member.value for member in Signals]
    if value not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return Signals(value)


def parse_count(value: Any) -> int:
    """A positive whole number (from TOML, or the digits of a command-line word)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _LARGEST:
        raise ValueError(f"must be a positive whole number, not {value!r}")
    return value


def parse_size(value: Any) -> int:
    """Bytes: a positive number, or one with a K, M, G or T suffix (powers of 1024)."""
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        value = int(match[1]) * _SIZE_UNITS[match[2].lower()]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _LARGEST:
        raise ValueError(f"{value!r} is not a size: bytes, or a number with K, M, G or T (1G, 512M)")
    return value


_PROCESS_PARSERS: dict[str, Callable[[Any], Any]] = {
    "signals": parse_signals, "cpu": parse_count, "memory": parse_size,
    "processes": parse_count, "open_files": parse_count,
}


# ---------------------------------------------------------------------------------------
# The command line: --read/--write add to the lists; the [process] options override.

# `run`'s options for the [process] keys, by key.
PROCESS_OPTIONS = {"signals": "--signals", "cpu": "--cpu", "memory": "--memory",
                   "processes": "--processes", "open_files": "--open-files"}


def with_command_line(filesystem: Filesystem | None, process: Process, read: Sequence[str],
                      write: Sequence[str], overrides: dict[str, str | None]
                      ) -> tuple[Filesystem | None, Process]:
    """The sections with `--read`/`--write` paths added (a profile without
    [filesystem] then gets one) and the [process] values `overrides` gives (by key,
    as typed; None: the profile's) in place of the profile's. Raises UsageError."""
    if read or write:
        filesystem = filesystem or Filesystem()
        filesystem = Filesystem((*filesystem.read, *_option_grants("--read", read)),
                                (*filesystem.write, *_option_grants("--write", write)))
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if text is not None:
            try:
                values[key] = _PROCESS_PARSERS[key](text)
            except ValueError as reason:
                raise UsageError(f"{PROCESS_OPTIONS[key]} {text}: {reason}") from None
    if values:
        fields = {key: getattr(process, key) for key in PROCESS_KEYS}
        process = Process(**{**fields, **values})
    return filesystem, process


def _option_grants(option: str, paths: Sequence[str]) -> list[Grant]:
    grants = []
    for path in paths:
        try:
            grants.append(Grant(parse_path(path), option, ""))
        except ValueError as reason:
            raise UsageError(f"{option} {path!r}: {reason}") from None
    return grants


# ---------------------------------------------------------------------------------------
# In words, for `sockbox show`


def describe(filesystem: Filesystem | None, process: Process) -> list[str]:
    if filesystem is None:
        lines = ["filesystem: not confined (no [filesystem] section)"]
    else:
        lines = ["filesystem (Landlock; any other access fails with EACCES):",
                 "  read and execute beneath: " + _paths(filesystem.read),
                 "  everything beneath:       " + _paths(filesystem.write),
                 "  always:                   " + ", ".join(IMPLICIT_DEVICES)
                 + " (read, write; ioctl on /dev/tty)"]
    signals = ("only the sandbox's own processes" if process.signals is Signals.SANDBOX
               else "any process the user may signal")
    limits = [f"{key.replace('_', ' ')} {size_text(value) if key == 'memory' else value}{_UNITS[key]}"
              for key, value in (("cpu", process.cpu), ("memory", process.memory),
                                 ("processes", process.processes), ("open_files", process.open_files))
              if value is not None]
    lines += [f"process: signals {process.signals.value} ({signals}); "
              + ("limits: " + ", ".join(limits) if limits else "no limits")]
    return lines


_UNITS = {"cpu": " s per process", "memory": " per process", "processes": " at once",
          "open_files": " per process"}


def size_text(size: int) -> str:
    """A size as a profile would write it: 1G, 512M, 4096."""
    for unit in "TGMK":
        if size % _SIZE_UNITS[unit.lower()] == 0:
            return f"{size // _SIZE_UNITS[unit.lower()]}{unit}"
    return str(size)


def _paths(grants: Sequence[Grant]) -> str:
    return ", ".join(g.path for g in grants) or "(none)"


# What a program is given beneath any [filesystem], with the rights `domain` grants:
# the devices nearly every program opens, none of which reaches the user's data.
IMPLICIT_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")

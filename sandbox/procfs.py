"""What /proc says of a process or thread: the one reader of /proc/PID/status."""

from __future__ import annotations


def status(pid: int | str) -> dict[str, str]:
    """/proc/PID/status as fields (values stripped); raises OSError if it is gone."""
    fields: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as lines:
        for line in lines:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def thread_group(tid: int) -> int:
    """The process (thread group) a thread belongs to; the tid itself if it is gone."""
    try:
        return int(status(tid)["Tgid"])
    except (OSError, KeyError, ValueError):
        return tid


def signal_mask(fields: dict[str, str], key: str) -> int:
    """A signal set of the status fields (SigIgn, SigCgt, ...) as a bit mask."""
    return int(fields.get(key, "0"), 16)

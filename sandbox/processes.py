"""`processes = N`: at most N processes and threads alive at once in the whole
sandbox, counted by the supervisor, which sees every fork, vfork and clone.

The filter stops every such call (clone3 already fails with ENOSYS). At that stop the
supervisor asks `may_fork`: a call let through holds a place until its outcome is
known, so that threads forking at once, each stopped in turn, cannot all take the
last place. The place becomes the new task at the fork event (`forked`), or is given
back when the call returns without one (`returned`, at its syscall-exit stop). A
task's end (`exited`) frees its place. Refused calls fail with EAGAIN, as the kernel's
own limits fail them.

One outcome cannot be seen: a thread killed in the middle of its fork (its process
ended by another thread) may or may not have made a child, whose fork event never
comes. Its place stays taken, and once the count reaches the limit with such places
held, it is taken again from the kernel: every task this supervisor traces.
"""

from __future__ import annotations

import collections
import os
import threading

from . import procfs


class ProcessCount:
    """The places of one sandbox's tasks (thread ids); no limit when `limit` is None."""

    def __init__(self, limit: int | None, first: int):
        self.limit = limit
        # Tasks alive, and whether their fork event was seen (the first task's needs none).
        self.alive: dict[int, bool] = {first: True}
        self.forking: set[int] = set()  # threads in a fork that holds a place
        self.unsure = 0  # places of forks whose thread died before their outcome was seen
        # Tasks that ended before their fork event was seen: the event may still come.
        self.ended_early: set[int] = set()

    @property
    def taken(self) -> int:
        return len(self.alive) + len(self.forking) + self.unsure

    def may_fork(self, tid: int) -> bool:
        """At a fork, vfork or clone stop: whether the call may go on (it then holds a
        place) or must fail with EAGAIN."""
        if self.limit is None:
            return True
        self.forking.discard(tid)  # a thread is in one call at a time: any earlier one is over
        if self.taken >= self.limit and self.unsure:
            self.recount()
        if self.taken >= self.limit:
            return False
        self.forking.add(tid)
        return True

    def forked(self, parent: int, child: int) -> None:
        """At the fork event: the call made `child`, which takes the call's place."""
        self.forking.discard(parent)
        if child in self.ended_early:
            self.ended_early.discard(child)
        else:
            self.alive[child] = True
        self._forget_early_ends()

    def returned(self, tid: int) -> None:
        """At a syscall-exit stop: a fork still holding a place made nothing (had it
        made a task, its event would have come first)."""
        self.forking.discard(tid)

    def exited(self, tid: int) -> None:
        """A task ended (or, at an exec, a thread's id went away)."""
        if self.alive.pop(tid, False) is False:
            self.ended_early.add(tid)
        if tid in self.forking:
            self.forking.discard(tid)
            self.unsure += 1
        self._forget_early_ends()

    def _forget_early_ends(self) -> None:
        # With no fork under way, no fork event is still to come.
        if not self.forking:
            self.ended_early.clear()

    def recount(self) -> None:
        """Every task that this thread (the supervisor's) traces, from /proc. A task
        not known yet whose creator (its thread group for a thread, else its parent)
        has a fork holding a place is that fork's child, still to be announced: the
        place counts it already."""
        tracer = threading.get_native_id()
        traced = {}
        for process in os.listdir("/proc"):
            if not process.isdigit():
                continue
            try:
                tasks = os.listdir(f"/proc/{process}/task")
            except OSError:
                continue  # gone meanwhile
            for task in tasks:
                fields = _identity(f"{process}/task/{task}")
                if fields.get("TracerPid") == tracer:
                    traced[int(task)] = fields
        places = collections.Counter(traced[tid]["Tgid"] for tid in self.forking if tid in traced)
        found: dict[int, bool] = {}
        for tid, fields in traced.items():
            if tid not in self.alive:
                creator = fields["Tgid"] if fields["Tgid"] != tid else fields["PPid"]
                if places[creator] > 0:
                    places[creator] -= 1
                    continue
            found[tid] = self.alive.get(tid, False)
        self.alive = found
        self.unsure = 0


def _identity(task: str) -> dict[str, int]:
    """The fields of a task's /proc status that say who it is (empty if it is gone)."""
    try:
        fields = procfs.status(task)
        return {key: int(fields[key]) for key in ("Tgid", "PPid", "TracerPid")}
    except (OSError, KeyError, ValueError):
        return {}

"""Who shares a descriptor table; and keeping them still while one of them makes a call
the kernel will make, on a verdict that rested on what a descriptor refers to.

Between the supervisor's look at descriptor N and the kernel's, another thread of the
same table can dup2() another socket onto N. A call the supervisor performs itself uses
its own copy of the socket and is safe; a call left to the kernel (a recv, an accept, a
socket option) is not, where its verdict depended on the socket's family, type or
protocol. So while such a call is judged and made, every other thread that may share the
caller's table is stopped (PTRACE_INTERRUPT; what each reports is held, and handled once
the call is made). Threads are told apart by the clone flags their creation used
(CLONE_FILES shares the table, exec gets a table of its own); a thread whose creation
has not been seen yet may share any table, and is stopped too.

A thread that shares its table with no task at all needs nothing stopped: while it is
stopped, nothing can change what its descriptors name (only a task sharing the table
could, and only a member of the table can make one that does). The C fast path serves
such a call again only for those threads (`Tables.alone`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import _ptrace, procfs
from .abi import Abi, abi_of
from .errors import TraceeGone

CLONE_FILES = 0x400
# How long the threads to stop may take to stop; one that takes longer (stuck in the
# kernel, or waiting for a vfork child that is the caller) makes the call fail.
FREEZE_WITHIN_S = 2.0


@dataclass(eq=False)
class DescriptorTable:
    """The threads sharing one descriptor table."""

    members: set[int] = field(default_factory=set)


def shares_table(pid: int) -> bool:
    """At a fork, vfork or clone event of `pid`: whether the new task shares its table.
    The syscall's number tells the call (clone3 is refused in the sandbox), the
    registers its flags. A task killed at that stop (its process ended meanwhile) is
    answered with the safe guess: the new task may share its table."""
    try:
        arch = _ptrace.syscall_info(pid).arch
        regs = _ptrace.registers(pid)
    except TraceeGone:
        return True
    abi = abi_of(arch)
    if abi is Abi.X86_64 and regs.orig_rax == _CLONE[Abi.X86_64]:
        return bool(regs.rdi & CLONE_FILES)
    if abi is Abi.I386 and regs.orig_rax == _CLONE[Abi.I386]:
        return bool(regs.rbx & CLONE_FILES)
    return False  # fork and vfork copy the table


def _clone_numbers() -> dict[Abi, int]:
    from .abi import syscall_number
    return {abi: nr for abi in Abi if (nr := syscall_number(abi, "clone")) is not None}


_CLONE = _clone_numbers()


class Tables:
    """Every tracee thread's descriptor table, as far as their creation tells."""

    def __init__(self, first: int) -> None:
        # None: not known yet (a thread seen before the event of its creation)
        self._of: dict[int, DescriptorTable | None] = {first: DescriptorTable({first})}
        # The threads that share their table with no other, which _fastpath reads (one
        # set, kept up to date in place): none while any thread's table is not known.
        self.alone: set[int] = {first}

    def seen(self, tid: int) -> None:
        if tid not in self._of:
            self._of[tid] = None
            self._changed()

    def created(self, parent: int, child: int, shares: bool) -> None:
        table = self._of.get(parent) if shares else DescriptorTable()
        if table is not None:
            table.members.add(child)
        self._of[child] = table
        self._changed()

    def executed(self, tid: int) -> None:
        """exec gives the process a table of its own (unshare_files)."""
        self.ended(tid)
        self._of[tid] = DescriptorTable({tid})
        self._changed()

    def ended(self, tid: int) -> None:
        table = self._of.pop(tid, None)
        if table is not None:
            table.members.discard(tid)
        self._changed()

    def _changed(self) -> None:
        self.alone.clear()
        if None not in self._of.values():
            self.alone.update(tid for tid, table in self._of.items()
                              if table is not None and table.members == {tid})

    def sharers(self, tid: int) -> list[int]:
        """The other threads that may share `tid`'s table: its members, and every
        thread whose table is not known yet."""
        table = self._of.get(tid)
        return [other for other, theirs in self._of.items()
                if other != tid and (theirs is None or table is None or theirs is table)]


@dataclass
class Freeze:
    """Threads kept still for `caller`'s call (`complete`: all of them stopped in
    time), and what each reported meanwhile, to be handled once the call is made."""

    caller: int
    stopped: set[int] = field(default_factory=set)
    held: list[tuple[int, int]] = field(default_factory=list)
    complete: bool = True


def freeze(caller: int, sharers: Iterable[int], still: Callable[[int], bool]) -> Freeze:
    """Stop every sharer that runs (`still` says which are stopped already), each
    until it reports a stop, which is held."""
    frozen = Freeze(caller)
    running = []
    for tid in sharers:
        frozen.stopped.add(tid)
        if still(tid):
            continue
        try:
            _ptrace.interrupt(tid)
        except TraceeGone:
            continue  # its end is still to be reported
        running.append(tid)
    deadline = time.monotonic() + FREEZE_WITHIN_S
    while running:
        for tid in list(running):
            pid, status = os.waitpid(tid, os.WNOHANG | _ptrace.WALL)
            if pid:
                frozen.held.append((pid, status))
                running.remove(tid)
            elif _ended(tid):
                running.remove(tid)  # it never runs again; its end is reported as any other
        if running and time.monotonic() > deadline:
            frozen.stopped.difference_update(running)  # they stop when they can
            frozen.complete = False
            break
        if running:
            time.sleep(0.0001)
    return frozen


def _ended(tid: int) -> bool:
    """Whether a thread has ended (a zombie: a group leader whose process is exiting
    waits so for its other threads, which may be the ones kept still) or is gone."""
    try:
        return procfs.status(tid).get("State", "Z")[:1] in ("Z", "X")
    except OSError:
        return True

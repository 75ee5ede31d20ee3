"""Performing a call with the tracee's credentials: a privileged supervisor must not lend
its privileges to a tracee that gave its own up (a unix peer would see the supervisor's
uid, a port below 1024 would bind, a directory the tracee cannot search would be
crossed). The socket calls are made by a short-lived child process holding the
tracee's credentials; unix paths are resolved again as the tracee, and must reach what
was judged."""

from __future__ import annotations

import errno
import os
import pickle

from . import libc
from .abi import Abi
from .calls import Subject
from .emulate import (Done, Message, Outcome, Plan, bind_plan, perform, prepare, sockaddr_for,
                      unix_target_of)
from .errors import Malformed
from .tracee import Credentials, StopContext


def emulate_as(credentials: Credentials, subjects: list[Subject], abi: Abi, stop: StopContext,
               memory) -> Outcome:
    """`emulate.emulate`, with the socket calls made by a child with these credentials."""
    plan = prepare(subjects, abi, stop, memory)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reported through the pipe
        outcome: Outcome = Done(-errno.EPERM)
        try:
            os.close(read_end)
            _become(credentials)
            stop.resolve_again()
            outcome = perform(_with_targets_of(plan, subjects, stop))
        except Malformed as error:
            outcome = Done(-error.errno)
        finally:
            os.write(write_end, pickle.dumps(outcome))
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        answer = report.read()
    os.waitpid(pid, 0)
    return pickle.loads(answer) if answer else Done(-errno.EPERM)


def _with_targets_of(plan: Plan, subjects: list[Subject], stop: StopContext) -> Plan:
    """The plan with its unix handles replaced by those resolved again."""
    first = subjects[0]
    target = unix_target_of(first, stop)
    if target is None:
        return plan
    if plan.name == "bind":
        return bind_plan(plan.sock, first, target)
    if plan.name == "connect":
        return Plan("connect", plan.sock, plan.fd, address=sockaddr_for(first, stop))
    messages = tuple(Message(m.data, m.control, sockaddr_for(s, stop), m.flags, m.length_at)
                     for m, s in zip(plan.messages, subjects))
    return Plan("send", plan.sock, plan.fd, messages=messages, failure=plan.failure)


def _become(credentials: Credentials) -> None:
    os.setgroups(list(credentials.groups))
    os.setresgid(*credentials.gids[:3])
    os.setresuid(*credentials.uids[:3])
    if credentials.uids[1] == 0:  # root that dropped capabilities keeps only what it kept
        low, high = credentials.capabilities & 0xFFFFFFFF, credentials.capabilities >> 32
        try:
            libc.set_capabilities([low, low, 0, high, high, 0])
        except OSError:
            raise Malformed(errno.EPERM, "capset") from None

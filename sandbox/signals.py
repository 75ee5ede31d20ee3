"""sockbox as a parent (and as PID 1): signals meant for the command reach the command.

The forwarded signals are blocked in every sockbox thread and collected by one thread
with sigwaitinfo(). Blocking also makes them reach PID 1, which the kernel otherwise
spares from signals it has no handler for. A signal the terminal sent to the whole
foreground process group has already reached a command that shares sockbox's group,
so only signals sent to sockbox itself (kill, docker stop) are passed on.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
from typing import NoReturn
from collections.abc import Callable, Iterable

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
SI_KERNEL = 0x80  # si_code of signals the kernel (a terminal) generated


def block() -> None:
    """Call before forking the command (the child unblocks them before exec)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)


def forward(main_pid: int, targets: Callable[[], Iterable[int]]) -> None:
    """Pass forwarded signals to the command; once it is gone, to what remains of its
    process tree (`targets`). A pidfd names the command, so a reused pid is never hit."""
    pidfd = os.pidfd_open(main_pid)

    def loop() -> None:
        while True:
            info = signal.sigwaitinfo(FORWARDED)
            if info.si_code == SI_KERNEL and _shares_group(main_pid):
                continue
            try:
                signal.pidfd_send_signal(pidfd, info.si_signo)
            except ProcessLookupError:
                for pid in list(targets()):
                    try:
                        os.kill(pid, info.si_signo)
                    except ProcessLookupError:
                        pass

    threading.Thread(target=loop, name="sockbox-signals", daemon=True).start()


def _shares_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == os.getpgrp()
    except ProcessLookupError:
        return False


class DiedBySignal(int):
    """The status of a command killed by a signal: 128 + its number, as a shell shows
    it. sockbox then ends by the same signal (`end_by`), so that its own parent sees a
    death by signal: a shell loop stops at Ctrl-C."""

    signal: int

    def __new__(cls, signum: int) -> DiedBySignal:
        status = super().__new__(cls, 128 + signum)
        status.signal = signum
        return status


def end_by(signum: int) -> NoReturn:
    """End this process by `signum`, without a core dump of its own. PID 1 of a
    namespace cannot be killed by itself (the kernel ignores a signal it has no handler
    for), so it exits with 128 + the number instead, as a shell would report it."""
    if os.getpid() != 1:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # whose disposition is fixed
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        signal.raise_signal(signum)  # to this thread: the forwarding thread cannot take it
    os._exit(128 + signum)  # still here: a signal whose default is not to end a process


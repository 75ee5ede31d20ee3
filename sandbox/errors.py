"""The one exception tree of sockbox.

`SandboxError` and its subclasses are what sockbox reports to its user: the CLI turns
each into one line and its `status` (125, or 126 or 127 for a command that cannot be
executed). `TraceeError` and its subclasses never leave the supervisor: they say what
one traced call or thread turned out to be, and the supervisor turns them into the
errno the program sees or forgets the thread.
"""

from __future__ import annotations

# The statuses of `sockbox run` that are sockbox's own rather than the command's.
STATUS_SANDBOX_ERROR = 125  # sockbox itself failed
STATUS_CANNOT_EXECUTE = 126  # the command exists but cannot be executed
STATUS_NOT_FOUND = 127  # the command was not found


class SandboxError(Exception):
    """sockbox itself could not do what was asked; nothing was run."""

    status = STATUS_SANDBOX_ERROR


class ProfileError(SandboxError):
    """A profile is missing or wrong. `errors` holds every problem, one line each, as
    `FILE: KEY: what is wrong`; `file` and `key` name the first."""

    def __init__(self, file: str, errors: list[tuple[str, str]]):
        self.file = file
        self.key = errors[0][0] if errors else ""
        self.errors = [_one_line(f"{file}: {key}: {what}" if key else f"{file}: {what}")
                       for key, what in errors]
        super().__init__("\n".join(self.errors))


def _one_line(text: str) -> str:
    """Each error on a line of its own, whatever a key or value holds."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode()
                   for c in text)


class UsageError(SandboxError):
    """A bad option or argument on the command line or to the Python API."""


class UnsupportedKernel(SandboxError):
    """The kernel lacks a feature sockbox's defences rely on."""


class SupervisorError(SandboxError):
    """The supervisor met an internal error; the sandbox was killed."""


class ExecFailed(SandboxError):
    """The command could not be executed: the message is what bash would say, `status`
    126 (it exists but cannot be executed) or 127 (not found)."""

    def __init__(self, message: str, status: int):
        super().__init__(_one_line(message))
        self.status = status


class TraceeError(Exception):
    """What one traced thread's call or state turned out to be (internal)."""


class Malformed(TraceeError):
    """Input the kernel would refuse; `errno` is what it would return."""

    def __init__(self, err: int, why: str):
        super().__init__(why)
        self.errno = err


class TraceeGone(TraceeError):
    """The tracee vanished (or left its stop) under the supervisor; waitpid reports it."""


class NeedDescriptor(TraceeError):
    """The stopped call needs a copy of the tracee's descriptor `fd`, which the tracee
    must hand over first (handover.py); the call runs again once it has."""

    def __init__(self, fd: int):
        super().__init__(f"fd {fd} must be handed over")
        self.fd = fd

"""sockbox: run a program with its socket calls decided by a profile.

    import sandbox
    result = sandbox.run(["curl", "-s", "http://127.0.0.1:8000/"], profile="localhost",
                         capture_output=True, timeout=30)
    result.returncode, result.events, result.denied, result.destinations

    with sandbox.Sandbox("localhost") as box:      # start-up work done once
        result = box.run(["./client"], capture_output=True, timeout=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Loaded on first use, so that `sockbox run` pays only for what it runs.
_WHERE = {"Result": "api", "Sandbox": "api", "run": "api", "Event": "audit", "Profile": "profile",
          "load_profile": "profile", "ProfileError": "errors", "SandboxError": "errors",
          "SupervisorError": "errors", "UnsupportedKernel": "errors", "UsageError": "errors"}

__all__ = ["Event", "Profile", "ProfileError", "Result", "Sandbox", "SandboxError", "SupervisorError",
           "UnsupportedKernel", "UsageError", "__version__", "load_profile", "run"]

if TYPE_CHECKING:
    from .api import Result, Sandbox, run
    from .audit import Event
    from .errors import ProfileError, SandboxError, SupervisorError, UnsupportedKernel, UsageError
    from .profile import Profile, load_profile


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(__import__(f"{__name__}.{_WHERE[name]}", fromlist=[name]), name)
    globals()[name] = value
    return value

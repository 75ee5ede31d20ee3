"""sockbox: run a program with its socket calls decided by a profile.

    import sandbox
    result = sandbox.run(["curl", "-s", "http://127.0.0.1:8000/"], profile="localhost",
                         capture_output=True, timeout=30)
    result.returncode, result.events, result.denied
"""

__version__ = "0.1.0"

from .api import Result, run
from .audit import Event
from .errors import ProfileError, SandboxError, SupervisorError, UnsupportedKernel, UsageError
from .profile import Profile, load_profile

__all__ = [
    "Event", "Profile", "ProfileError", "Result", "SandboxError", "SupervisorError",
    "UnsupportedKernel", "UsageError", "load_profile", "run", "__version__",
]

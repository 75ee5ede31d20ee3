"""A pytest plugin (registered as `sockbox`): the `sockbox` fixture runs a program in
the sandbox and lets a test assert on the decisions made.

    def test_client_stays_on_loopback(sockbox):
        result = sockbox.run(["./client", "--sync"])
        assert result.returncode == 0
        result.assert_reached_only("127.0.0.0/8", "::1/128")
        result.assert_no_denials()
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import pytest

from . import api
from .profile import Profile


class Sandbox:
    """What the `sockbox` fixture gives a test: `run`, with test-friendly defaults."""

    def __init__(self, default_profile: Profile | str = "audit", timeout: float = 120):
        self.default_profile = default_profile
        self.timeout = timeout

    def run(self, args: Sequence[str], *, profile: Profile | str | os.PathLike[str] | None = None,
            **kwargs: Any) -> api.Result:
        """sandbox.run, under `profile` (default: `audit`, which allows and records
        every socket call), with output captured as text and a timeout."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", self.timeout)
        return api.run(args, profile=self.default_profile if profile is None else profile, **kwargs)


@pytest.fixture
def sockbox() -> Sandbox:
    return Sandbox()

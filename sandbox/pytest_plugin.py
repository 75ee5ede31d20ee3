"""A pytest plugin (registered as `sockbox`): the `sockbox` fixture runs a program in
the sandbox and lets a test assert on the decisions made.

    def test_client_stays_on_loopback(sockbox):
        result = sockbox.run(["./client", "--sync"])
        assert result.returncode == 0
        result.assert_reached_only("127.0.0.0/8", "::1/128")
        result.assert_no_denials()

Runs go to a warm `sandbox.Sandbox`, one per profile for the whole session, so that a
suite of many short runs pays the sandbox's start-up once per profile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from .api import Command, Result, Sandbox
from .profile import Profile, load_profile


class Boxes:
    """The session's warm sandboxes, one per profile (equal profiles share one)."""

    def __init__(self) -> None:
        self._boxes: dict[Profile, Sandbox] = {}
        self._lock = threading.Lock()

    def get(self, profile: Profile | str | os.PathLike[str]) -> Sandbox:
        loaded = profile if isinstance(profile, Profile) else load_profile(profile)
        with self._lock:
            if loaded not in self._boxes:
                self._boxes[loaded] = Sandbox(loaded)
            return self._boxes[loaded]

    def close(self) -> None:
        for box in self._boxes.values():
            box.close()


class Harness:
    """What the `sockbox` fixture gives a test: `run`, with test-friendly defaults."""

    def __init__(self, boxes: Boxes, default_profile: Profile | str = "audit", timeout: float = 120):
        self.boxes = boxes
        self.default_profile = default_profile
        self.timeout = timeout

    def run(self, args: Command, *, profile: Profile | str | os.PathLike[str] | None = None,
            **kwargs: Any) -> Result:
        """Sandbox.run under `profile` (default: `audit`, which allows and records
        every socket call), with output captured as text and a timeout."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", self.timeout)
        box = self.boxes.get(self.default_profile if profile is None else profile)
        return box.run(args, **kwargs)


@pytest.fixture(scope="session")
def sockbox_boxes() -> Iterator[Boxes]:
    boxes = Boxes()
    yield boxes
    boxes.close()


@pytest.fixture
def sockbox(sockbox_boxes: Boxes) -> Harness:
    return Harness(sockbox_boxes)

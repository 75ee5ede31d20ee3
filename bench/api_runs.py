"""Many runs of `true` from one Python process, the way a test harness makes them.

    PYTHON bench/api_runs.py WAY N PROFILE

WAY is one of
    subprocess  subprocess.run(["true"]): no sandbox, the baseline
    run         sandbox.run(["true"], profile=...) with the profile loaded once
    box         one sandbox.Sandbox(PROFILE), then box.run(["true"]) per run
    sandlock    one sandlock.Sandbox (its quick start's policy, network to loopback
                only), then its run(["true"]) per run: construct once, run many, as
                its documentation says

One untimed run comes first (imports and set-up: reported as first_run_us), then N
timed ones; prints "ops", "per_op_us" (per run) and "first_run_us" for bench/run.py.
Where the installed sockbox has no sandbox.Sandbox, WAY box prints "unavailable WHY"
and exits 3.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

TRUE = ["true"]
UNAVAILABLE = 3
Way = Callable[[str, contextlib.ExitStack], Callable[[], None]]  # (profile, exits) -> one run


def subprocess_way(profile: str, exits: contextlib.ExitStack) -> Callable[[], None]:
    import subprocess

    return lambda: check(subprocess.run(TRUE, check=False).returncode)


def run_way(profile: str, exits: contextlib.ExitStack) -> Callable[[], None]:
    import sandbox

    loaded = sandbox.load_profile(profile)
    return lambda: check(sandbox.run(TRUE, profile=loaded).returncode)


def box_way(profile: str, exits: contextlib.ExitStack) -> Callable[[], None]:
    import sandbox

    warm: Any = getattr(sandbox, "Sandbox", None)
    if warm is None:
        print("unavailable no sandbox.Sandbox yet", flush=True)
        sys.exit(UNAVAILABLE)
    box = exits.enter_context(warm(profile))
    return lambda: check(box.run(TRUE).returncode)


def sandlock_way(profile: str, exits: contextlib.ExitStack) -> Callable[[], None]:
    # The localhost profile's counterpart: its quick start's filesystem policy, and IP
    # only to loopback.
    import sandlock  # type: ignore[import-untyped]

    box = exits.enter_context(sandlock.Sandbox(
        fs_readable=["/usr", "/lib", "/lib64", "/bin", "/etc"], fs_writable=["/tmp"],
        net_allow=["127.0.0.0/8:*", "[::1]:*"]))

    def one() -> None:
        result = box.run(TRUE)
        check(result.exit_code if result.success else f"{result.exit_code} ({result.error})")
    return one


WAYS: dict[str, Way] = {"subprocess": subprocess_way, "run": run_way, "box": box_way,
                        "sandlock": sandlock_way}


def check(status: int | str) -> None:
    if status != 0:
        sys.exit(f"api_runs: `true` ended with {status}")


def main() -> int:
    way, n, profile = WAYS[sys.argv[1]], int(sys.argv[2]), sys.argv[3]
    with contextlib.ExitStack() as exits:
        start = time.perf_counter()
        one = way(profile, exits)
        one()
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(n):
            one()
        elapsed = time.perf_counter() - start
    print(f"ops {n}\nper_op_us {1e6 * elapsed / n:.1f}\nfirst_run_us {1e6 * first:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

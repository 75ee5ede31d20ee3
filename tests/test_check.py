"""`sockbox check` through the real command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

from helpers.profiles import BUILTINS, FULL, as_second_rule
from sandbox.profile import builtin_names

ROOT = Path(__file__).resolve().parent.parent


def sockbox_check(*profiles: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *profiles],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def test_check_every_builtin() -> None:
    result = sockbox_check(*builtin_names())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{name}: ok" for name in BUILTINS]


def test_check_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text(FULL)
    result = sockbox_check(str(path))
    ok, note = result.stdout.splitlines()
    assert (result.returncode, ok) == (0, f"{path}: ok")
    # what an exe rule holds against, said wherever one is used
    assert note.startswith(f"{path}: note: rule[2]: exe rules hold for the named file's own code, "
                           "as it was when the sandbox started")


def test_check_lists_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(dedent("""\
        [profile]
        default = "reject"

        [[rule]]
        calls = ["socket"]
        action = "allow"

        [[rule]]
        calls = ["connect"]
        port = [80, "2000-1000"]
        adress = ["10.0.0.0/8"]
        action = "allow"
    """))
    result = sockbox_check(str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path}: profile.default: ")
    assert lines[1].startswith(f"{path}: rule[2].adress: unknown key 'adress'")
    assert "did you mean 'address'" in lines[1]
    assert lines[2].startswith(f"{path}: rule[2].port: ") and "backwards" in lines[2]


def test_check_reports_toml_syntax_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[profile]\ndefault = "deny"\nerrno = \n')
    result = sockbox_check(str(path))
    assert result.returncode == 1
    assert re.fullmatch(rf"{re.escape(str(path))}: line 3, column 9: \S.*\n", result.stdout), result.stdout


def test_check_good_and_bad(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(as_second_rule('calls = ["connect"]\nport = [65536]\naction = "allow"\n'))
    result = sockbox_check("web", str(bad), "offline.toml")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "web: ok",
        f"{bad}: rule[2].port: port 65536 is outside 0-65535",
        "offline.toml: ok",
    ]


def test_check_missing_profile(tmp_path: Path) -> None:
    result = sockbox_check("nonesuch", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("nonesuch: ")
    assert "no built-in profile 'nonesuch'" in result.stdout and "./nonesuch" in result.stdout


def test_check_never_crashes_on_a_strange_glob(tmp_path: Path) -> None:
    # "[!]" is a literal in fnmatch; whatever sockbox makes of it, `check` must answer
    # with ok or an error line (status 0 or 1), never an internal error (125).
    path = tmp_path / "glob.toml"
    path.write_text('[[rule]]\ncalls = ["connect"]\npath = ["/tmp/[!]]x"]\naction = "allow"\n')
    result = sockbox_check(str(path))
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.startswith(f"{path}: ")

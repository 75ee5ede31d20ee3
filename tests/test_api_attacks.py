"""Attacks on the Python API's supervisor: a sandboxed program plants Python files where
an unisolated interpreter would import them (the working directory, the command's
PYTHONPATH, the user site-packages of its HOME); a later run must not execute them, as
its supervisor runs outside the sandbox, with the network."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import sandbox

# Each planted file appends its name to the marker, wherever it runs.
PAYLOAD = "open({marker!r}, 'a').write({name!r} + '\\n')\n"


def planter(marker: Path, files: dict[Path, str]) -> list[str]:
    """A sandboxed program that writes each planted file, as an attacker's would."""
    script = "import os\n" + "".join(
        f"os.makedirs({str(path.parent)!r}, exist_ok=True)\n"
        f"open({str(path)!r}, 'w').write({body.format(marker=str(marker), name=path.name)!r})\n"
        for path, body in files.items())
    return [sys.executable, "-c", script]


def hijacked(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def plain_env(**more: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], **more}


def test_files_planted_in_the_working_directory_are_not_imported(tmp_path, monkeypatch):
    marker, where = tmp_path / "marker", tmp_path / "work"
    files = {where / "sandbox" / "__init__.py": PAYLOAD, where / "sandbox" / "__main__.py": PAYLOAD,
             where / "tomli.py": PAYLOAD, where / "pickle.py": PAYLOAD, where / "selectors.py": PAYLOAD}
    first = sandbox.run(planter(marker, files), cwd=tmp_path)
    assert first.returncode == 0 and all(path.exists() for path in files)
    # The plant is live: an interpreter that is not isolated runs it from there.
    subprocess.run([sys.executable, "-m", "sandbox", "--version"], cwd=where, capture_output=True)
    assert "__main__.py" in hijacked(marker)
    marker.unlink()

    assert sandbox.run(["true"], cwd=where).returncode == 0
    monkeypatch.chdir(where)  # the caller's own working directory is no road either
    assert sandbox.run(["true"]).returncode == 0
    with sandbox.Sandbox("localhost") as box:
        assert box.run(["true"]).returncode == 0
    assert hijacked(marker) == []


def test_files_planted_on_the_commands_pythonpath_are_not_imported(tmp_path):
    marker, where = tmp_path / "marker", tmp_path / "lib"
    files = {where / "sitecustomize.py": PAYLOAD, where / "sandbox" / "__init__.py": PAYLOAD,
             where / "tomli.py": PAYLOAD, where / "pickle.py": PAYLOAD}
    env = plain_env(PYTHONPATH=str(where))
    first = sandbox.run(planter(marker, files), env=env)
    assert first.returncode == 0 and all(path.exists() for path in files)
    subprocess.run([sys.executable, "-c", "pass"], env=env)
    assert "sitecustomize.py" in hijacked(marker)
    marker.unlink()

    assert sandbox.run(["true"], env=env).returncode == 0
    assert hijacked(marker) == []


@pytest.fixture(scope="module")
def python_with_user_site(tmp_path_factory) -> Path:
    """A Python that honours user site-packages (this one, a plain virtualenv, does not)
    and sees this one's packages: a virtualenv with the system's site-packages."""
    home = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--system-site-packages", "--without-pip", str(home)],
                   check=True)
    python = home / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "sockbox-tests.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def test_files_planted_in_the_user_site_of_home_are_not_imported(tmp_path, python_with_user_site):
    marker, home = tmp_path / "marker", tmp_path / "home"
    home.mkdir()
    env = plain_env(HOME=str(home))
    pth = "import os; " + PAYLOAD.format(marker=str(marker), name="planted.pth")
    custom = PAYLOAD.format(marker=str(marker), name="usercustomize.py")
    (tmp_path / "planter.py").write_text(textwrap.dedent(f"""\
        import os, site
        where = site.getusersitepackages()
        os.makedirs(where, exist_ok=True)
        open(os.path.join(where, "planted.pth"), "w").write({pth!r})
        open(os.path.join(where, "usercustomize.py"), "w").write({custom!r})
        """))
    # One caller, started before the plant (so that its own start is clean), with HOME
    # in its own environment too: a first run plants, a second must not run the plant.
    (tmp_path / "caller.py").write_text(textwrap.dedent(f"""\
        import site, sys
        import sandbox
        first = sandbox.run([sys.executable, {str(tmp_path / "planter.py")!r}], env={env!r})
        assert first.returncode == 0, first
        second = sandbox.run(["true"], env={env!r})
        print(second.returncode, site.ENABLE_USER_SITE)
        """))
    result = subprocess.run([python_with_user_site, tmp_path / "caller.py"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout == "0 True\n", result.stderr
    assert (home / ".local").exists() and hijacked(marker) == []
    # The plant is live: an interpreter that is not isolated runs it.
    subprocess.run([python_with_user_site, "-c", "pass"], env=env)
    assert sorted(hijacked(marker)) == ["planted.pth", "usercustomize.py"]

"""How a profile name resolves (SPEC: a planted file never replaces a built-in), and the
shorthand targets of --allow/--deny that used to be misread."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from helpers.running import sockbox
from helpers.servers import TcpServer
from sandbox.errors import ProfileError
from sandbox.profile import builtin_names, load_profile, parse_target

PERMISSIVE = '[profile]\ndescription = "planted"\ndefault = "allow"\n'


def test_a_bare_name_is_the_builtin_even_beside_a_file_of_that_name(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in builtin_names():
        Path(name).write_text(PERMISSIVE)
        assert load_profile(name).description != "planted"
        assert load_profile(name).source == f"{name}.toml"


def test_a_path_is_that_file_and_a_missing_one_falls_back_to_its_builtin(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    builtin_web = load_profile("web")
    assert load_profile("web.toml").rules == builtin_web.rules       # no such file here
    Path("web.toml").write_text('[profile]\ndescription = "my own web"\n')
    assert load_profile("web.toml").description == "my own web"       # the user named it
    assert load_profile("./web.toml").description == "my own web"
    assert load_profile(tmp_path / "web.toml").description == "my own web"  # a PathLike
    assert load_profile("web").rules == builtin_web.rules             # the bare name: built-in


@pytest.mark.parametrize("spec, looked_for", [
    ("nonesuch", "no built-in profile 'nonesuch'"),
    ("nonesuch.toml", "no file {tmp}/nonesuch.toml"),
    ("sub/app.toml", "no file {tmp}/sub/app.toml"),
])
def test_neither_file_nor_builtin_names_what_was_looked_for(spec: str, looked_for: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as caught:
        load_profile(spec)
    assert caught.value.file == spec
    assert looked_for.format(tmp=tmp_path) in str(caught.value)
    assert "web" in str(caught.value)  # the built-ins are listed


def test_a_directory_is_not_a_profile(tmp_path: Path) -> None:
    with pytest.raises(ProfileError):
        load_profile(str(tmp_path) + "/")


def test_a_file_planted_by_a_sandboxed_run_is_not_read_by_the_next(tmp_path: Path, tcp_server: TcpServer) -> None:
    # The attack: a sandboxed program writes permissive profiles named like the
    # built-ins into its working directory; the next `sockbox run` there, without -p
    # or with -p NAME, must still enforce the built-in.
    plant = ("import pathlib\n"
             "for name in ['offline', 'offline.toml', 'localhost', 'localhost.toml']:\n"
             f"    pathlib.Path(name).write_text({PERMISSIVE!r})\n")
    first = sockbox("run", "--", "python3", "-c", plant, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "offline").read_text() == PERMISSIVE
    connect = ("import socket, sys\n"
               f"s = socket.socket(); s.settimeout(5)\n"
               f"sys.exit(s.connect_ex(('127.0.0.1', {tcp_server.port})))\n")
    for options in ([], ["-p", "offline"]):
        second = sockbox("run", *options, "--", "python3", "-c", connect, cwd=tmp_path)
        assert second.returncode != 0, (options, second.stderr)   # the socket() is denied
        assert "deny socket" in second.stderr
    assert tcp_server.received == []


def test_run_names_what_it_looked_for_with_status_125(tmp_path: Path) -> None:
    result = sockbox("run", "-p", "nonesuch", "--", "true", cwd=tmp_path)
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1 and "no built-in profile 'nonesuch'" in result.stderr


@pytest.mark.parametrize("rule, hint", [
    ("connect=::1:80", "[::1]:80"),
    ("connect=fe80::1", "[fe80::1]"),
])
def test_an_unbracketed_ipv6_target_is_refused_with_the_bracketed_spelling(rule: str, hint: str) -> None:
    result = sockbox("run", "--deny", rule, "--", "true")
    assert result.returncode == 125
    assert hint in result.stderr and "bracket" in result.stderr


def test_the_bracketed_target_denies_that_port(tmp_path: Path, tcp6_server: TcpServer) -> None:
    connect = ("import socket, sys\n"
               "s = socket.socket(socket.AF_INET6); s.settimeout(5)\n"
               f"sys.exit(s.connect_ex(('::1', {tcp6_server.port})))\n")
    allowed = sockbox("run", "-p", "localhost", "--", "python3", "-c", connect)
    assert allowed.returncode == 0, allowed.stderr
    denied = sockbox("run", "-p", "localhost", "--deny", f"connect=[::1]:{tcp6_server.port}", "--",
                     "python3", "-c", connect)
    assert denied.returncode != 0 and "deny connect" in denied.stderr


def test_a_misspelt_family_is_an_unknown_family() -> None:
    result = sockbox("run", "--allow", "socket=inte", "--", "true")
    assert result.returncode == 125
    assert "unknown family 'inte'" in result.stderr and "inet" in result.stderr
    with pytest.raises(ValueError, match="unknown family"):
        parse_target("inte")
    assert parse_target("inet") == {"family": frozenset({socket.AF_INET})}

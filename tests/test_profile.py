"""A valid profile and its defaults, and which profile a name loads (built-ins or files)."""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.profiles import BUILTINS, FIRST_RULE, FULL, connect, load
from sandbox.decode import Inet4
from sandbox.profile import LogLevel, builtin_names, load_profile
from sandbox.rules import Action, Call, Glob, PortRange, Protocol

pytestmark = pytest.mark.pure

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_STREAM, SOCK_DGRAM = 1, 2


# --- a valid profile ----------------------------------------------------------------------



def test_full_profile() -> None:
    profile = load(FULL, "dir/full.toml")
    assert profile.name == "everything"
    assert profile.description == "Uses every key"
    assert profile.default is Action.KILL
    assert profile.errno == errno.EPERM
    assert profile.log is LogLevel.ALL
    assert profile.source == "dir/full.toml"
    assert len(profile.rules) == 5

    sockets, refuse, paths, abstract, rest = profile.rules
    assert [r.label for r in profile.rules] == [f"full.toml:rule[{i}]" for i in range(1, 6)]
    assert sockets.calls == {"socket", "socketpair"}
    assert sockets.family == {AF_INET, AF_INET6, AF_UNIX, AF_NETLINK}
    assert sockets.type == {SOCK_STREAM, SOCK_DGRAM}
    assert set(sockets.protocol) == {Protocol(6, frozenset({AF_INET, AF_INET6})),
                                     Protocol(17, frozenset({AF_INET, AF_INET6})), Protocol(0)}
    assert sockets.action is Action.ALLOW and sockets.errno is None and sockets.log is False

    assert refuse.address == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert refuse.port == (PortRange(80, 80), PortRange(8000, 8999))
    assert refuse.exe == (Glob("/usr/bin/*"),)
    assert (refuse.action, refuse.errno, refuse.log) == (Action.DENY, errno.ECONNREFUSED, True)

    assert paths.path == (Glob("/run/**"),)
    assert abstract.abstract == (Glob("dbus-*"),) and abstract.action is Action.KILL
    assert len(rest.calls) == 20 and rest.keys() == ()


def test_full_profile_decides() -> None:
    profile = load(FULL, "full.toml")
    curl = Call(name="connect", family=AF_INET, type=SOCK_STREAM, protocol=0,
                address=Inet4(ipaddress.IPv4Address("10.1.2.3"), 8080), exe="/usr/bin/curl")
    verdict = profile.decide(curl)
    assert (verdict.action, verdict.errno, verdict.rule.label) == (
        Action.DENY, errno.ECONNREFUSED, "full.toml:rule[2]")
    # another program falls through to the catch-all rule
    other = profile.decide(replace(curl, exe="/opt/x"))
    assert other.rule.label == "full.toml:rule[5]"


def test_defaults() -> None:
    profile = load("", "some/where/mine.toml")
    assert profile.name == "mine"                 # the file's stem
    assert profile.description == ""
    assert profile.default is Action.DENY
    assert profile.errno == errno.EACCES == 13
    assert profile.log is LogLevel.DENY
    assert profile.rules == ()
    verdict = profile.decide(connect("192.0.2.1", 80))
    assert (verdict.action, verdict.errno, verdict.rule) == (Action.DENY, 13, None)


def test_defaults_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "client.toml"
    path.write_text(FIRST_RULE)
    profile = load_profile(str(path))
    assert (profile.name, profile.default, profile.errno, profile.log) == (
        "client", Action.DENY, 13, LogLevel.DENY)
    assert profile.rules[0].label == "client.toml:rule[1]"
    assert profile.source == str(path)


@pytest.mark.parametrize("value, number", [
    ('"EPERM"', errno.EPERM), ('"EACCES"', errno.EACCES), ('"ECONNREFUSED"', errno.ECONNREFUSED),
    ('"ENETUNREACH"', errno.ENETUNREACH), ("1", 1), ("111", 111), ("4095", 4095),
])
def test_errno_by_name_or_number(value: str, number: int) -> None:
    assert load(f"[profile]\nerrno = {value}\n").errno == number
    rule = load(f'[[rule]]\ncalls = ["connect"]\naction = "deny"\nerrno = {value}\n').rules[0]
    assert rule.errno == number


def test_rule_errno_only_overrides_its_rule() -> None:
    profile = load("""\
        [profile]
        errno = "EPERM"
        [[rule]]
        calls = ["connect"]
        action = "deny"
        errno = "ENETUNREACH"
        [[rule]]
        calls = ["bind"]
        action = "deny"
    """)
    assert profile.decide(connect("192.0.2.1", 80)).errno == errno.ENETUNREACH
    bind = Call(name="bind", family=AF_INET, address=Inet4(ipaddress.IPv4Address("0.0.0.0"), 0))
    assert profile.decide(bind).errno == errno.EPERM


@pytest.mark.parametrize("default", ["allow", "deny", "kill"])
@pytest.mark.parametrize("log", ["none", "deny", "all"])
def test_every_default_and_log(default: str, log: str) -> None:
    profile = load(f'[profile]\ndefault = "{default}"\nlog = "{log}"\n')
    assert profile.default is Action(default) and profile.log is LogLevel(log)


def test_family_aliases_and_numbers() -> None:
    rule = load('[[rule]]\ncalls = ["socket"]\nfamily = ["local", 10, "netlink"]\naction = "allow"\n').rules[0]
    assert rule.family == {AF_UNIX, AF_INET6, AF_NETLINK}


def test_single_value_without_a_list() -> None:
    # a lone value reads as a one-element list
    rule = load('[[rule]]\ncalls = ["connect"]\nport = 443\naction = "allow"\n').rules[0]
    assert rule.port == (PortRange(443, 443),)



# --- load_profile -------------------------------------------------------------------------


def test_builtin_names() -> None:
    assert builtin_names() == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_by_name_with_or_without_toml(name: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no file of that name here
    plain, dotted = load_profile(name), load_profile(f"{name}.toml")
    assert plain.name == dotted.name == name
    assert plain.rules == dotted.rules
    assert plain.description and plain.description == dotted.description
    assert all(rule.label.startswith(f"{name}.toml:rule[") for rule in plain.rules)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_profiles_are_documented(name: str) -> None:
    profile = load_profile(name)
    assert profile.description.strip()
    assert "\n" not in profile.description   # a one-line description for `sockbox profiles`


# A few spot checks that the built-ins do what SPEC says they do.
@pytest.mark.parametrize("name, address, port, action", [
    ("offline", "127.0.0.1", 80, Action.DENY),
    ("localhost", "127.0.0.1", 8000, Action.ALLOW),
    ("localhost", "::1", 8000, Action.ALLOW),
    ("localhost", "::ffff:127.0.0.1", 8000, Action.ALLOW),
    ("localhost", "192.0.2.1", 80, Action.DENY),
    ("localhost", "::ffff:192.0.2.1", 80, Action.DENY),
    ("web", "93.184.216.34", 443, Action.ALLOW),
    ("web", "2606:2800:220:1::1", 80, Action.ALLOW),
    ("web", "93.184.216.34", 22, Action.DENY),
    ("server", "93.184.216.34", 443, Action.DENY),
    ("audit", "93.184.216.34", 22, Action.ALLOW),
])
def test_builtin_connect_spot_checks(name: str, address: str, port: int, action: Action) -> None:
    assert load_profile(name).decide(connect(address, port)).action is action

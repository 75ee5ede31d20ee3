"""Loading and validating profiles (SPEC "Profile format"), the rule shorthands of
`--allow`/`--deny`/`explain`, and `sockbox check` through the real command line."""

from __future__ import annotations

import errno
import ipaddress
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from textwrap import dedent

import pytest

from sandbox import ProfileError, names
from sandbox.decode import Inet4, Inet6
from sandbox.profile import (LogLevel, Profile, builtin_names, inline_rule, load_profile,
                             parse_target)
from sandbox.rules import Action, Call, Glob, PortRange, Protocol

ROOT = Path(__file__).resolve().parent.parent
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_STREAM, SOCK_DGRAM = 1, 2
BUILTINS = ["audit", "localhost", "offline", "server", "web"]


# --- helpers -----------------------------------------------------------------------------


def load(text: str, source: str = "test.toml") -> Profile:
    return Profile.from_toml(dedent(text), source)


def errors_of(text: str, source: str = "test.toml") -> ProfileError:
    with pytest.raises(ProfileError) as caught:
        load(text, source)
    return caught.value


# A valid first rule, so that the rule under test is rule[2] (indices are 1-based).
FIRST_RULE = """\
[[rule]]
calls = ["socket"]
action = "allow"
"""


def as_second_rule(body: str) -> str:
    return FIRST_RULE + "\n[[rule]]\n" + dedent(body)


def assert_one_error(error: ProfileError, key: str, *fragments: str) -> None:
    """Exactly one error, at `key`, whose text has every fragment."""
    assert len(error.errors) == 1, error.errors
    line = error.errors[0]
    assert line.startswith(f"{error.file}: {key}: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert error.key == key


def sockbox_check(*profiles: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "check", *profiles],
                          capture_output=True, text=True, timeout=60, cwd=cwd)


def connect(address: str, port: int) -> Call:
    ip = ipaddress.ip_address(address)
    where = Inet4(ip, port) if ip.version == 4 else Inet6(ip, port)
    return Call(name="connect", family=where.family, type=SOCK_STREAM, protocol=0, address=where)


# --- a valid profile ----------------------------------------------------------------------

FULL = """\
[profile]
name = "everything"
description = "Uses every key"
default = "kill"
errno = "EPERM"
log = "all"
version = 1

[[rule]]
calls = ["socket", "socketpair"]
family = ["inet", "inet6", "unix", 16]
type = ["stream", "dgram"]
protocol = ["tcp", "udp", 0]
action = "allow"

[[rule]]
calls = ["connect", "sendto"]
address = ["10.0.0.0/8", "2001:db8::/32"]
port = [80, "8000-8999"]
exe = ["/usr/bin/*"]
action = "deny"
errno = "ECONNREFUSED"
log = true

[[rule]]
calls = ["connect"]
path = ["/run/**"]
action = "allow"

[[rule]]
calls = ["bind"]
abstract = ["dbus-*"]
action = "kill"

[[rule]]
calls = "*"
action = "allow"
"""


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


# --- every kind of mistake, each at its key -----------------------------------------------

RULE_MISTAKES = [
    # (id, the body of rule[2], key, fragments of the message)
    ("unknown key", """\
        calls = ["connect"]
        adress = ["10.0.0.0/8"]
        action = "allow"
     """, "rule[2].adress", ["unknown key 'adress'", "did you mean 'address'"]),
    ("unknown call", """\
        calls = ["connect", "conect"]
        action = "allow"
     """, "rule[2].calls", ["'conect'", "did you mean 'connect'"]),
    ("empty calls", """\
        calls = []
        action = "allow"
     """, "rule[2].calls", []),
    ("unknown family", """\
        calls = ["socket"]
        family = ["inet7"]
        action = "allow"
     """, "rule[2].family", ["'inet7'"]),
    ("unknown type", """\
        calls = ["socket"]
        type = ["streem"]
        action = "allow"
     """, "rule[2].type", ["'streem'", "did you mean 'stream'"]),
    ("unknown protocol", """\
        calls = ["socket"]
        protocol = ["tcpp"]
        action = "allow"
     """, "rule[2].protocol", ["'tcpp'"]),
    ("bad CIDR", """\
        calls = ["connect"]
        address = ["10.0.0.0/33"]
        action = "allow"
     """, "rule[2].address", ["10.0.0.0/33"]),
    ("bad IPv6 CIDR", """\
        calls = ["connect"]
        address = ["2001:db8::/129"]
        action = "allow"
     """, "rule[2].address", ["2001:db8::/129"]),
    ("not an address", """\
        calls = ["connect"]
        address = ["example.com"]
        action = "allow"
     """, "rule[2].address", ["example.com"]),
    ("host bits set", """\
        calls = ["connect"]
        address = ["10.0.0.1/8"]
        action = "allow"
     """, "rule[2].address", ["10.0.0.1/8", "host bits"]),
    ("port too big", """\
        calls = ["connect"]
        port = [65536]
        action = "allow"
     """, "rule[2].port", ["65536", "0-65535"]),
    ("negative port", """\
        calls = ["connect"]
        port = [-1]
        action = "allow"
     """, "rule[2].port", ["0-65535"]),
    ("range too big", """\
        calls = ["connect"]
        port = ["1000-70000"]
        action = "allow"
     """, "rule[2].port", ["1000-70000", "0-65535"]),
    ("backwards range", """\
        calls = ["connect"]
        port = ["2000-1000"]
        action = "allow"
     """, "rule[2].port", ["2000-1000", "backwards"]),
    ("not a port", """\
        calls = ["connect"]
        port = ["https"]
        action = "allow"
     """, "rule[2].port", ["'https'"]),
    ("empty port list", """\
        calls = ["connect"]
        port = []
        action = "allow"
     """, "rule[2].port", ["empty"]),
    ("empty family list", """\
        calls = ["socket"]
        family = []
        action = "allow"
     """, "rule[2].family", ["empty"]),
    ("address on socket", """\
        calls = ["socket"]
        address = ["10.0.0.0/8"]
        action = "allow"
     """, "rule[2].address", ["carries an address"]),
    ("port on listen", """\
        calls = ["listen", "accept"]
        port = [80]
        action = "allow"
     """, "rule[2].port", ["carries an address"]),
    ("path on recv", """\
        calls = ["recv", "recvfrom"]
        path = ["/run/x.sock"]
        action = "allow"
     """, "rule[2].path", ["carries an address"]),
    ("abstract on send", """\
        calls = ["send"]
        abstract = ["x"]
        action = "allow"
     """, "rule[2].abstract", ["carries an address"]),
    ("family contradicts address", """\
        calls = ["connect"]
        family = ["unix"]
        address = ["10.0.0.0/8"]
        action = "allow"
     """, "rule[2].address", ["unix"]),
    ("family contradicts port", """\
        calls = ["connect"]
        family = ["unix", "netlink"]
        port = [80]
        action = "allow"
     """, "rule[2].port", []),
    ("family contradicts path", """\
        calls = ["connect"]
        family = ["inet", "inet6"]
        path = ["/run/x.sock"]
        action = "allow"
     """, "rule[2].path", ["inet"]),
    ("family contradicts abstract", """\
        calls = ["connect"]
        family = ["inet"]
        abstract = ["x"]
        action = "allow"
     """, "rule[2].abstract", []),
    # an IPv4 block only ever holds on the inet view of a call, an IPv6 one on inet6
    ("inet6 family with an IPv4 block", """\
        calls = ["connect"]
        family = ["inet6"]
        address = ["10.0.0.0/8"]
        action = "allow"
     """, "rule[2].address", []),
    ("inet family with an IPv6 block", """\
        calls = ["connect"]
        family = ["inet"]
        address = ["2001:db8::/32"]
        action = "allow"
     """, "rule[2].address", []),
    ("protocol contradicts family", """\
        calls = ["socket"]
        family = ["unix"]
        protocol = ["tcp"]
        action = "allow"
     """, "rule[2].protocol", []),
    ("icmpv6 on inet", """\
        calls = ["socket"]
        family = ["inet"]
        protocol = ["icmpv6"]
        action = "allow"
     """, "rule[2].protocol", []),
    ("protocol contradicts the address's family", """\
        calls = ["connect"]
        address = ["10.0.0.0/8"]
        protocol = ["netlink_route"]
        action = "allow"
     """, "rule[2].protocol", []),
    ("relative path", """\
        calls = ["connect"]
        path = ["run/x.sock"]
        action = "allow"
     """, "rule[2].path", ["'run/x.sock'", "absolute"]),
    ("abstract with @", """\
        calls = ["connect"]
        abstract = ["@dbus"]
        action = "allow"
     """, "rule[2].abstract", ["'@dbus'"]),
    ("relative exe", """\
        calls = ["connect"]
        exe = ["curl"]
        action = "allow"
     """, "rule[2].exe", ["'curl'"]),
    ("errno on allow", """\
        calls = ["connect"]
        action = "allow"
        errno = "EPERM"
     """, "rule[2].errno", ["allow"]),
    ("errno on kill", """\
        calls = ["connect"]
        action = "kill"
        errno = "EPERM"
     """, "rule[2].errno", ["kill"]),
    ("bad rule errno", """\
        calls = ["connect"]
        action = "deny"
        errno = "ENOTANERRNO"
     """, "rule[2].errno", ["ENOTANERRNO"]),
    ("errno zero", """\
        calls = ["connect"]
        action = "deny"
        errno = 0
     """, "rule[2].errno", []),
    ("missing action", """\
        calls = ["connect"]
     """, "rule[2].action", ["missing"]),
    ("bad action", """\
        calls = ["connect"]
        action = "permit"
     """, "rule[2].action", ["'permit'", "allow, deny, kill"]),
    # a misspelled action is one mistake, not also "errno on an allow rule"
    ("bad action with errno", """\
        calls = ["connect"]
        action = "dney"
        errno = "EPERM"
     """, "rule[2].action", ["'dney'"]),
    ("bad log", """\
        calls = ["connect"]
        action = "allow"
        log = "yes"
     """, "rule[2].log", ["true or false"]),
]


@pytest.mark.parametrize("body, key, fragments",
                         [case[1:] for case in RULE_MISTAKES], ids=[case[0] for case in RULE_MISTAKES])
def test_rule_mistake(body: str, key: str, fragments: list[str]) -> None:
    assert_one_error(errors_of(as_second_rule(body)), key, *fragments)


PROFILE_MISTAKES = [
    ("unknown top-level key", '[rules]\ncalls = "*"\n', "rules", ["did you mean 'rule'"]),
    ("unknown top-level value", 'name = "x"\n', "name", ["unknown top-level key 'name'"]),
    ("unknown profile key", '[profile]\ndescripton = "x"\n', "profile.descripton",
     ["did you mean 'description'"]),
    ("bad default", '[profile]\ndefault = "reject"\n', "profile.default",
     ["'reject'", "allow, deny, kill"]),
    ("bad log", '[profile]\nlog = "everything"\n', "profile.log", ["none, deny, all"]),
    ("log not a string", "[profile]\nlog = true\n", "profile.log", []),
    ("bad errno name", '[profile]\nerrno = "EFOO"\n', "profile.errno", ["EFOO"]),
    ("errno too big", "[profile]\nerrno = 5000\n", "profile.errno", ["5000"]),
    ("errno zero", "[profile]\nerrno = 0\n", "profile.errno", []),
    ("bad version", "[profile]\nversion = 2\n", "profile.version", ["2"]),
    ("name not a string", "[profile]\nname = 3\n", "profile.name", []),
    ("profile not a table", 'profile = "web"\n', "profile", []),
    ("rule not an array", '[rule]\ncalls = "*"\naction = "allow"\n', "rule", ["[[rule]]"]),
]


@pytest.mark.parametrize("text, key, fragments",
                         [case[1:] for case in PROFILE_MISTAKES], ids=[case[0] for case in PROFILE_MISTAKES])
def test_profile_mistake(text: str, key: str, fragments: list[str]) -> None:
    assert_one_error(errors_of(text), key, *fragments)


@pytest.mark.parametrize("text, line, column", [
    ('[profile]\ndefault = "deny"\nerrno = \n', 3, 9),
    ('[profile]\nname = "x"\n[[rule]\n', 3, 7),
    ('[profile]\nname = "x"\nname = "y"\n', 3, 11),
])
def test_toml_syntax_error_at_line_and_column(text: str, line: int, column: int) -> None:
    error = errors_of(text, "bad.toml")
    assert len(error.errors) == 1
    assert re.fullmatch(rf"bad\.toml: line {line}, column {column}: \S.*", error.errors[0]), error.errors


def test_every_error_is_reported_at_once() -> None:
    error = errors_of("""\
        [profile]
        default = "reject"
        colour = "red"

        [[rule]]
        calls = ["connect"]
        port = [70000, "9-1"]
        action = "allow"

        [[rule]]
        calls = ["socket"]
        action = "allow"

        [[rule]]
        calls = ["conect"]
        address = ["10.0.0.1/8"]
        action = "allow"
    """, "many.toml")
    keys = [line.split(": ")[1] for line in error.errors]
    assert keys == ["profile.colour", "profile.default", "rule[1].port", "rule[1].port",
                    "rule[3].calls", "rule[3].address"]
    assert all(line.startswith("many.toml: ") for line in error.errors)
    assert str(error) == "\n".join(error.errors)
    # file and key name the first problem
    assert error.file == "many.toml" and error.key == "profile.colour"


def test_profile_error_file_and_key() -> None:
    error = errors_of(as_second_rule('calls = ["connect"]\nport = [1, 99999]\naction = "allow"\n'),
                      "/etc/sockbox/app.toml")
    assert error.file == "/etc/sockbox/app.toml"
    assert error.key == "rule[2].port"
    assert error.errors == ["/etc/sockbox/app.toml: rule[2].port: port 99999 is outside 0-65535"]


def test_profile_error_is_a_sandbox_error() -> None:
    import sandbox
    assert issubclass(ProfileError, sandbox.SandboxError)


def test_unreadable_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        Profile.from_file(tmp_path / "missing.toml")
    assert caught.value.file == str(tmp_path / "missing.toml")


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


def test_an_existing_file_wins_over_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("web.toml").write_text('[profile]\ndescription = "my own web"\n')
    assert load_profile("web.toml").description == "my own web"
    assert load_profile("web").description != "my own web"   # no file "web": the built-in
    Path("web").write_text('[profile]\ndescription = "extensionless"\n')
    assert load_profile("web").description == "extensionless"
    assert load_profile(tmp_path / "web.toml").description == "my own web"  # a PathLike


@pytest.mark.parametrize("spec", ["nonesuch", "nonesuch.toml", "sub/web.toml"])
def test_neither_file_nor_builtin(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as caught:
        load_profile(spec)
    message = str(caught.value)
    assert caught.value.file == spec
    assert str(tmp_path / spec) in message        # the file looked for
    assert "built-in" in message and "web" in message   # and the built-ins


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


# --- sockbox check ------------------------------------------------------------------------


def test_check_every_builtin() -> None:
    result = sockbox_check(*builtin_names())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"{name}: ok" for name in BUILTINS]


def test_check_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    path.write_text(FULL)
    result = sockbox_check(str(path))
    assert (result.returncode, result.stdout) == (0, f"{path}: ok\n")


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
    assert str(tmp_path / "nonesuch") in result.stdout and "built-in" in result.stdout


def test_check_never_crashes_on_a_strange_glob(tmp_path: Path) -> None:
    # "[!]" is a literal in fnmatch; whatever sockbox makes of it, `check` must answer
    # with ok or an error line (status 0 or 1), never an internal error (125).
    path = tmp_path / "glob.toml"
    path.write_text('[[rule]]\ncalls = ["connect"]\npath = ["/tmp/[!]]x"]\naction = "allow"\n')
    result = sockbox_check(str(path))
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.startswith(f"{path}: ")


# --- shorthands ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, conditions", [
    ("1.2.3.4:443", {"address": (ipaddress.ip_network("1.2.3.4/32"),), "port": (PortRange(443, 443),)}),
    ("[2001:db8::1]:53", {"address": (ipaddress.ip_network("2001:db8::1/128"),),
                          "port": (PortRange(53, 53),)}),
    ("10.0.0.0/8:1000-2000", {"address": (ipaddress.ip_network("10.0.0.0/8"),),
                              "port": (PortRange(1000, 2000),)}),
    ("[2001:db8::/32]:1-1024", {"address": (ipaddress.ip_network("2001:db8::/32"),),
                                "port": (PortRange(1, 1024),)}),
    ("*:443", {"port": (PortRange(443, 443),)}),
    ("1.2.3.4:80,443", {"address": (ipaddress.ip_network("1.2.3.4/32"),),
                        "port": (PortRange(80, 80), PortRange(443, 443))}),
    ("1.2.3.4", {"address": (ipaddress.ip_network("1.2.3.4/32"),)}),
    ("::1", {"address": (ipaddress.ip_network("::1/128"),)}),
    ("unix:/run/x.sock", {"path": (Glob("/run/x.sock"),)}),
    ("unix:/run/**", {"path": (Glob("/run/**"),)}),
    ("unix:@name", {"abstract": (Glob("name"),)}),
    ("unix:@/tmp/.X11-unix/X0", {"abstract": (Glob("/tmp/.X11-unix/X0"),)}),
    ("inet6", {"family": frozenset({AF_INET6})}),
    ("unix", {"family": frozenset({AF_UNIX})}),
    ("netlink", {"family": frozenset({AF_NETLINK})}),
])
def test_parse_target(text: str, conditions: dict) -> None:
    assert parse_target(text) == conditions


@pytest.mark.parametrize("text", [
    "", "*", "1.2.3.4:99999", "1.2.3.4:http", "10.0.0.1/8:80", "300.1.1.1:80", "example.com:80",
    "[2001:db8::1", "[2001:db8::1]53", "unix:relative.sock", "unix:@", "1.2.3.4:90-80",
])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


def test_inline_rule() -> None:
    label = "--allow connect=127.0.0.1:8000"
    rule = inline_rule("connect=127.0.0.1:8000", Action.ALLOW, label)
    assert rule.label == label
    assert rule.calls == {"connect"} and rule.action is Action.ALLOW
    assert rule.address == (ipaddress.ip_network("127.0.0.1/32"),)
    assert rule.port == (PortRange(8000, 8000),)
    assert rule.matches(connect("127.0.0.1", 8000))
    assert not rule.matches(connect("127.0.0.1", 8001))


def test_inline_rules_come_first() -> None:
    offline = load_profile("offline")
    allowed = offline.with_rules_first([inline_rule("connect=127.0.0.1:8000", Action.ALLOW, "--allow x")])
    assert offline.decide(connect("127.0.0.1", 8000)).action is Action.DENY
    verdict = allowed.decide(connect("127.0.0.1", 8000))
    assert (verdict.action, verdict.rule.label) == (Action.ALLOW, "--allow x")
    assert allowed.rules[1:] == offline.rules


@pytest.mark.parametrize("text, calls, keys", [
    ("connect,sendto=10.0.0.0/8", {"connect", "sendto"}, ("address",)),
    ("connect", {"connect"}, ()),
    ("*=unix:/run/x.sock", None, ("path",)),
    ("socket=inet6", {"socket"}, ("family",)),
])
def test_inline_rule_forms(text: str, calls: set[str] | None, keys: tuple[str, ...]) -> None:
    rule = inline_rule(text, Action.DENY, f"--deny {text}")
    assert rule.action is Action.DENY
    assert rule.keys() == keys
    assert rule.calls == (calls if calls is not None else set(names.SUBCALLS))


@pytest.mark.parametrize("text, key", [
    ("conect=127.0.0.1:80", "calls"),
    ("connect=127.0.0.1:99999", "target"),
    ("connect=example.com:80", "target"),
    ("socket=127.0.0.1:80", "target.address"),   # socket carries no address
    ("listen=unix:/x", "target.path"),
])
def test_inline_rule_mistakes(text: str, key: str) -> None:
    with pytest.raises(ProfileError) as caught:
        inline_rule(text, Action.ALLOW, f"--allow {text}")
    assert caught.value.file == f"--allow {text}"
    assert caught.value.key == key
    assert caught.value.errors[0].startswith(f"--allow {text}: {key}: ")

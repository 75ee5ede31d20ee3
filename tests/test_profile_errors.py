"""Every kind of mistake in a profile, each reported at its key (and TOML syntax at its line
and column), all at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.profiles import as_second_rule, errors_of
from sandbox import ProfileError
from sandbox.profile import Profile

pytestmark = pytest.mark.pure


def assert_one_error(error: ProfileError, key: str, *fragments: str) -> None:
    """Exactly one error, at `key`, whose text has every fragment."""
    assert len(error.errors) == 1, error.errors
    line = error.errors[0]
    assert line.startswith(f"{error.file}: {key}: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert error.key == key



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
    ("port on accept", """\
        calls = ["accept", "accept4"]
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
    ("a port on a raw-only rule", """\
        calls = ["connect", "sendto"]
        type = ["raw"]
        port = [53]
        action = "allow"
     """, "rule[2].port", ["raw socket"]),
    ("an address on a raw-only rule", """\
        calls = ["sendto"]
        type = ["raw"]
        address = ["127.0.0.0/8"]
        action = "allow"
     """, "rule[2].address", ["raw socket"]),
    ("a port on a protocol without ports", """\
        calls = ["connect"]
        protocol = ["icmp"]
        port = [7]
        action = "allow"
     """, "rule[2].port", ["no", "ports"]),
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

"""The rule shorthands of `--allow`, `--deny` and `explain`: targets and inline rules."""

from __future__ import annotations

import ipaddress

import pytest

from helpers.profiles import connect
from sandbox import ProfileError, names
from sandbox.profile import inline_rule, load_profile, parse_target
from sandbox.rules import Action, Glob, PortRange

pytestmark = pytest.mark.pure

AF_UNIX, AF_INET6, AF_NETLINK = 1, 10, 16


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
    ("[::1]", {"address": (ipaddress.ip_network("::1/128"),)}),
    ("[::1]:80", {"address": (ipaddress.ip_network("::1/128"),), "port": (PortRange(80, 80),)}),
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
    "[2001:db8::1", "[2001:db8::1]53", "unix:relative.sock", "1.2.3.4:90-80",
    "::1", "::1:80", "2001:db8::/32", "inte",
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
    ("accept=unix:/x", "target.path"),
])
def test_inline_rule_mistakes(text: str, key: str) -> None:
    with pytest.raises(ProfileError) as caught:
        inline_rule(text, Action.ALLOW, f"--allow {text}")
    assert caught.value.file == f"--allow {text}"
    assert caught.value.key == key
    assert caught.value.errors[0].startswith(f"--allow {text}: {key}: ")

"""Profiles from text, and the calls the supervisor would describe."""

from __future__ import annotations

import ipaddress
import socket
from textwrap import dedent

import pytest

from sandbox import ProfileError
from sandbox.decode import Inet4, Inet6
from sandbox.profile import Profile
from sandbox.rules import Call

BUILTINS = ["audit", "localhost", "offline", "server", "web", "workdir"]


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


# A valid profile that uses every key.
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


def connect(address: str, port: int) -> Call:
    """A connect from a TCP socket to address:port, as the supervisor describes it."""
    ip = ipaddress.ip_address(address)
    where = Inet4(ip, port) if ip.version == 4 else Inet6(ip, port)
    return Call(name="connect", family=where.family, type=socket.SOCK_STREAM, protocol=0, address=where)

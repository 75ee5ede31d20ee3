"""Unit tests of the rule model: how one condition matches a call, and how `decide`
picks the verdict (first matching rule, default otherwise, IPv4 views of IPv6).

Pure: Rules and Calls are built by hand, nothing is run.
"""

from __future__ import annotations

import errno
import fnmatch
import ipaddress
from collections.abc import Iterable

import pytest

from sandbox import names
from sandbox.decode import Inet4, Inet6, Unix
from sandbox.rules import (ALL_CALLS, Action, Call, Glob, PortRange, Protocol, Rule,
                           Verdict, decide, effective_protocol, ipv4_views, needs_socket, reached)

pytestmark = pytest.mark.pure

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000

DEFAULT = Verdict(Action.DENY, errno.EACCES, None)


# --- helpers -----------------------------------------------------------------------------


def rule(calls: str | Iterable[str] = "*", action: Action = Action.ALLOW,
         label: str = "t.toml:rule[1]", **conditions) -> Rule:
    """A Rule; `calls` is "*" or call names, conditions as Rule takes them."""
    call_set = ALL_CALLS if calls == "*" else frozenset([calls] if isinstance(calls, str) else calls)
    return Rule(label=label, calls=call_set, action=action, **conditions)


def nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def ports(*spans: int | tuple[int, int]) -> tuple[PortRange, ...]:
    return tuple(PortRange(s, s) if isinstance(s, int) else PortRange(*s) for s in spans)


def globs(*patterns: str) -> tuple[Glob, ...]:
    return tuple(Glob(p) for p in patterns)


def inet(address: str, port: int = 0) -> Inet4 | Inet6:
    ip = ipaddress.ip_address(address)
    return Inet4(ip, port) if ip.version == 4 else Inet6(ip, port)


def to(name: str, address: str, port: int = 0, **facts) -> Call:
    """A call naming an IP destination (connect, sendto, bind ...) on a stream socket."""
    where = inet(address, port)
    facts.setdefault("type", SOCK_STREAM)
    facts.setdefault("protocol", 0)
    return Call(name=name, family=where.family, address=where, **facts)


def connect(address: str, port: int = 0, **facts) -> Call:
    return to("connect", address, port, **facts)


def socket_call(family: int, sock_type: int, protocol: int = 0) -> Call:
    return Call(name="socket", family=family, type=sock_type, protocol=protocol)


def unix_path(path: str, name: str = "connect") -> Call:
    return Call(name=name, family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                address=Unix(path=path.encode()), path=path)


def unix_abstract(abstract: str, name: str = "connect") -> Call:
    return Call(name=name, family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                address=Unix(abstract=abstract.encode()))


def verdict_of(rules: list[Rule], call: Call, default: Verdict = DEFAULT) -> Verdict:
    return decide(rules, default, call)


def action_of(rules: list[Rule], call: Call, default: Verdict = DEFAULT) -> Action:
    return verdict_of(rules, call, default).action


# --- Glob ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, text, expected", [
    ("/run/x.sock", "/run/x.sock", True),
    ("/run/x.sock", "/run/xasock", False),        # "." is literal, not a regex dot
    ("/run/x.sock", "/run/x.sock.bak", False),    # the whole text must match
    ("/run/*.sock", "/run/nscd.sock", True),
    ("/run/*.sock", "/run/.sock", True),
    ("/run/*.sock", "/run/a/b.sock", False),      # * stays within one component
    ("/run/*", "/run/a/b", False),
    ("/run/?.sock", "/run/a.sock", True),
    ("/run/?.sock", "/run/ab.sock", False),
    ("/run/a?b", "/run/a/b", False),              # ? does not match /
    ("/run/**", "/run/a/b/c.sock", True),         # ** crosses /
    ("/run/**", "/run/x", True),
    ("/**", "/tmp/.X11-unix/X0", True),
    ("/run/**/x.sock", "/run/a/b/x.sock", True),
    ("/run/**.sock", "/run/a/b.sock", True),
    ("/run/**.sock", "/run/a/b.socket", False),
    ("**", "anything/at/all", True),
    ("/tmp/[0-9].sock", "/tmp/7.sock", True),
    ("/tmp/[0-9].sock", "/tmp/a.sock", False),
    ("/tmp/[ab]x", "/tmp/bx", True),
    ("/tmp/[ab]x", "/tmp/cx", False),
    ("/tmp/[!ab]x", "/tmp/cx", True),             # [!...] negates, as in fnmatch
    ("/tmp/[!ab]x", "/tmp/ax", False),
    ("/tmp/[^a]x", "/tmp/^x", True),              # ^ is literal inside a class in fnmatch
    ("/tmp/[^a]x", "/tmp/bx", False),
])
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert Glob(pattern).matches(text) is expected


# Within one path component Glob is fnmatch (SPEC: "glob patterns (fnmatch, ** crosses /)"),
# including the corner cases of bracket classes.
@pytest.mark.parametrize("pattern", [
    "[abc]x", "[!abc]x", "[a-c]x", "[]]x", "[!]]x", "[!]", "[]", "x[", "[a-]x", "*.s?ck",
])
def test_glob_agrees_with_fnmatch_within_a_component(pattern: str) -> None:
    texts = ["ax", "dx", "]x", "!x", "-x", "x[", "[]", "[!]", "a.sock", "b"]
    glob = Glob(pattern)
    for text in texts:
        assert glob.matches(text) is fnmatch.fnmatchcase(text, pattern), (pattern, text)


def test_glob_equality_and_hash() -> None:
    assert Glob("/a/*") == Glob("/a/*")
    assert Glob("/a/*") != Glob("/a/**")
    assert len({Glob("/a/*"), Glob("/a/*")}) == 1


# --- family -------------------------------------------------------------------------------


def test_family_matches_the_calls_family() -> None:
    only_unix = rule("socket", family=frozenset({AF_UNIX}))
    assert only_unix.matches(socket_call(AF_UNIX, SOCK_STREAM))
    assert not only_unix.matches(socket_call(AF_INET, SOCK_STREAM))


def test_family_of_an_address_call_is_the_addresses_family() -> None:
    only_inet6 = rule("connect", family=frozenset({AF_INET6}))
    assert only_inet6.matches(connect("2001:db8::1", 80))
    assert not only_inet6.matches(connect("192.0.2.1", 80))
    assert rule("connect", family=frozenset({AF_UNIX})).matches(unix_path("/run/x.sock"))


def test_family_unknown_on_the_call_does_not_match() -> None:
    assert not rule("listen", family=frozenset({AF_INET})).matches(Call(name="listen"))


# --- type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sock_type, expected", [
    (SOCK_STREAM, True),
    (SOCK_STREAM | SOCK_NONBLOCK, True),           # flags ride above the type: ignored
    (SOCK_STREAM | SOCK_CLOEXEC, True),
    (SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, True),
    (SOCK_DGRAM, False),
    (SOCK_DGRAM | SOCK_NONBLOCK, False),
    (SOCK_RAW, False),
])
def test_type_ignores_socket_flags(sock_type: int, expected: bool) -> None:
    stream = rule("socket", type=frozenset({SOCK_STREAM}))
    assert stream.matches(socket_call(AF_INET, sock_type)) is expected


def test_type_with_several_types() -> None:
    either = rule("socket", type=frozenset({SOCK_STREAM, SOCK_SEQPACKET}))
    assert either.matches(socket_call(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC))
    assert not either.matches(socket_call(AF_UNIX, SOCK_DGRAM))


def test_type_unknown_on_the_call_does_not_match() -> None:
    assert not rule("listen", type=frozenset({SOCK_STREAM})).matches(Call(name="listen"))


# --- protocol -----------------------------------------------------------------------------

TCP = Protocol(6, frozenset({AF_INET, AF_INET6}))   # what the name "tcp" means
UDP = Protocol(17, frozenset({AF_INET, AF_INET6}))
ICMP = Protocol(1, frozenset({AF_INET}))
NETLINK_ROUTE = Protocol(0, frozenset({AF_NETLINK}))


def test_protocol_names_carry_their_families() -> None:
    assert names.PROTOCOLS["tcp"] == (TCP.families, TCP.number)
    assert names.PROTOCOLS["udp"] == (UDP.families, UDP.number)
    assert names.PROTOCOLS["icmp"] == (ICMP.families, ICMP.number)
    assert names.PROTOCOLS["netlink_route"] == (NETLINK_ROUTE.families, NETLINK_ROUTE.number)


@pytest.mark.parametrize("protocol, call, expected", [
    # protocol 0 is the family's default: tcp for inet streams, udp for inet datagrams
    (TCP, socket_call(AF_INET, SOCK_STREAM, 0), True),
    (TCP, socket_call(AF_INET6, SOCK_STREAM, 0), True),
    (TCP, socket_call(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), True),
    (TCP, socket_call(AF_INET, SOCK_STREAM, 6), True),
    (TCP, socket_call(AF_INET, SOCK_DGRAM, 0), False),
    (UDP, socket_call(AF_INET, SOCK_DGRAM, 0), True),
    (UDP, socket_call(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0), True),
    (UDP, socket_call(AF_INET, SOCK_STREAM, 0), False),
    # a named protocol only exists in its families
    (TCP, socket_call(AF_UNIX, SOCK_STREAM, 0), False),
    (TCP, socket_call(AF_UNIX, SOCK_STREAM, 6), False),
    (ICMP, socket_call(AF_INET, SOCK_DGRAM, 1), True),
    (ICMP, socket_call(AF_INET6, SOCK_DGRAM, 1), False),
    (NETLINK_ROUTE, socket_call(AF_NETLINK, SOCK_RAW, 0), True),
    (NETLINK_ROUTE, socket_call(AF_INET, SOCK_RAW, 0), False),
    # a number matches on any family
    (Protocol(6), socket_call(AF_INET, SOCK_STREAM, 0), True),
    (Protocol(6), socket_call(AF_UNIX, SOCK_STREAM, 6), True),
    (Protocol(0), socket_call(AF_UNIX, SOCK_STREAM, 0), True),
    (Protocol(0), socket_call(AF_INET, SOCK_STREAM, 0), False),   # effectively tcp
    (Protocol(0), socket_call(AF_INET, SOCK_RAW, 0), True),       # raw has no default
])
def test_protocol_is_the_effective_protocol(protocol: Protocol, call: Call, expected: bool) -> None:
    assert rule("socket", protocol=(protocol,)).matches(call) is expected


def test_protocol_any_of_several() -> None:
    tcp_or_udp = rule("socket", protocol=(TCP, UDP))
    assert tcp_or_udp.matches(socket_call(AF_INET, SOCK_STREAM))
    assert tcp_or_udp.matches(socket_call(AF_INET, SOCK_DGRAM))
    assert not tcp_or_udp.matches(socket_call(AF_INET, SOCK_RAW, 1))


def test_protocol_unknown_on_the_call_does_not_match() -> None:
    assert not rule("*", protocol=(Protocol(6),)).matches(Call(name="listen"))


@pytest.mark.parametrize("family, sock_type, protocol, expected", [
    (AF_INET, SOCK_STREAM, 0, 6),
    (AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0, 6),
    (AF_INET, SOCK_DGRAM, 0, 17),
    (AF_INET, SOCK_STREAM, 262, 262),  # mptcp as asked
    (AF_INET, SOCK_RAW, 0, 0),
    (AF_UNIX, SOCK_STREAM, 0, 0),
])
def test_effective_protocol(family: int, sock_type: int, protocol: int, expected: int) -> None:
    assert effective_protocol(family, sock_type, protocol) == expected


# --- address ------------------------------------------------------------------------------


@pytest.mark.parametrize("cidrs, address, expected", [
    (["10.0.0.0/8"], "10.0.0.0", True),
    (["10.0.0.0/8"], "10.255.255.255", True),
    (["10.0.0.0/8"], "11.0.0.0", False),
    (["10.0.0.0/8"], "9.255.255.255", False),
    (["192.0.2.7/32"], "192.0.2.7", True),
    (["192.0.2.7/32"], "192.0.2.8", False),
    (["10.0.0.0/8", "172.16.0.0/12"], "172.31.1.1", True),
    (["0.0.0.0/0"], "203.0.113.9", True),
    (["2001:db8::/32"], "2001:db8:ffff::1", True),
    (["2001:db8::/32"], "2001:db9::1", False),
    (["::1/128"], "::1", True),
    (["::/0"], "2a00:1450::1", True),
    # an IPv4 block never holds for an IPv6 address, nor the reverse
    (["0.0.0.0/0"], "2001:db8::1", False),
    (["::/0"], "192.0.2.1", False),
    (["::/96"], "192.0.2.1", False),
])
def test_address_cidr(cidrs: list[str], address: str, expected: bool) -> None:
    assert rule("connect", address=nets(*cidrs)).matches(connect(address, 80)) is expected


def test_address_never_holds_without_an_ip_address() -> None:
    anywhere = rule("*", address=nets("0.0.0.0/0", "::/0"))
    assert not anywhere.matches(unix_path("/run/x.sock"))
    assert not anywhere.matches(Call(name="connect", family=AF_INET, type=SOCK_STREAM, protocol=0))
    assert not anywhere.matches(Call(name="sendto", alias="send", family=AF_INET))


# --- port ---------------------------------------------------------------------------------


@pytest.mark.parametrize("port, expected", [
    (80, True), (443, True), (8000, True), (8500, True), (8999, True),
    (7999, False), (9000, False), (81, False), (0, False),
])
def test_port_numbers_and_ranges(port: int, expected: bool) -> None:
    web = rule("connect", port=ports(80, 443, (8000, 8999)))
    assert web.matches(connect("192.0.2.1", port)) is expected
    assert web.matches(connect("2001:db8::1", port)) is expected


def test_port_zero_and_top() -> None:
    assert rule("bind", port=ports(0)).matches(to("bind", "0.0.0.0", 0))
    assert rule("connect", port=ports((65535, 65535))).matches(connect("192.0.2.1", 65535))


def test_port_never_holds_without_an_ip_address() -> None:
    assert not rule("connect", port=ports((0, 65535))).matches(unix_path("/run/x.sock"))


def test_port_range_contains_and_str() -> None:
    assert 1000 in PortRange(1000, 2000) and 2000 in PortRange(1000, 2000)
    assert 2001 not in PortRange(1000, 2000)
    assert "80" not in PortRange(0, 65535)  # only ints are ports
    assert str(PortRange(80, 80)) == "80" and str(PortRange(1, 2)) == "1-2"


# --- path, abstract, exe ------------------------------------------------------------------


@pytest.mark.parametrize("patterns, path, expected", [
    (["/run/nscd/socket"], "/run/nscd/socket", True),
    (["/run/nscd/socket"], "/var/run/nscd/socket", False),
    (["/run/*/socket"], "/run/nscd/socket", True),
    (["/run/*"], "/run/nscd/socket", False),
    (["/run/**"], "/run/nscd/socket", True),
    (["/tmp/sock[0-9]"], "/tmp/sock3", True),
    (["/tmp/sock[0-9]"], "/tmp/sockx", False),
    (["/tmp/a?"], "/tmp/ab", True),
    (["/nope", "/tmp/**"], "/tmp/x/y", True),
])
def test_path_globs(patterns: list[str], path: str, expected: bool) -> None:
    assert rule("connect", path=globs(*patterns)).matches(unix_path(path)) is expected


def test_path_never_holds_for_other_addresses() -> None:
    everything = rule("connect", path=globs("/**", "**"))
    assert not everything.matches(unix_abstract("/tmp/x"))
    assert not everything.matches(connect("127.0.0.1", 80))


@pytest.mark.parametrize("patterns, name, expected", [
    (["/tmp/.X11-unix/*"], "/tmp/.X11-unix/X0", True),
    (["/tmp/.X11-unix/*"], "/tmp/.X11-unix/a/X0", False),
    (["/tmp/**"], "/tmp/.X11-unix/a/X0", True),
    (["**"], "dbus-1234", True),
    (["dbus-*"], "dbus-1234", True),
    (["dbus-*"], "xdbus-1234", False),
    (["dbus-????"], "dbus-1234", True),
    (["[a-c]name"], "bname", True),
])
def test_abstract_globs(patterns: list[str], name: str, expected: bool) -> None:
    assert rule("connect", abstract=globs(*patterns)).matches(unix_abstract(name)) is expected


def test_abstract_never_holds_for_paths_or_ip() -> None:
    everything = rule("connect", abstract=globs("**"))
    assert not everything.matches(unix_path("/run/x.sock"))
    assert not everything.matches(connect("127.0.0.1", 80))
    assert not everything.matches(Call(name="connect", family=AF_UNIX, address=Unix()))


@pytest.mark.parametrize("patterns, exe, expected", [
    (["/usr/bin/curl"], "/usr/bin/curl", True),
    (["/usr/bin/*"], "/usr/bin/curl", True),
    (["/usr/bin/*"], "/usr/bin/sub/curl", False),
    (["/usr/**"], "/usr/lib/x/y", True),
    (["/usr/bin/python3.??"], "/usr/bin/python3.11", True),
    (["/usr/bin/python3.??"], "/usr/bin/python3.9", False),
])
def test_exe_globs(patterns: list[str], exe: str, expected: bool) -> None:
    call = Call(name="connect", family=AF_INET, address=inet("192.0.2.1", 80), exe=exe)
    assert rule("connect", exe=globs(*patterns)).matches(call) is expected


def test_exe_unknown_does_not_match() -> None:
    assert not rule("connect", exe=globs("/**")).matches(connect("192.0.2.1", 80))


ALLOW = Verdict(Action.ALLOW, 0, None)


@pytest.mark.parametrize("action, default, expected", [
    (Action.ALLOW, DEFAULT, Action.DENY),    # an allow rule on exe: not passed by the unknown
    (Action.DENY, ALLOW, Action.DENY),       # a deny rule on exe: holds for the unknown too
    (Action.KILL, ALLOW, Action.KILL),
])
def test_an_unknown_exe_gets_the_stricter_of_any_exe_and_none(action: Action, default: Verdict,
                                                               expected: Action) -> None:
    rules = [rule("connect", action, exe=globs("/usr/bin/curl"))]
    assert decide(rules, default, connect("192.0.2.1", 80)).action is expected
    # a known executable is judged by its name alone
    assert decide(rules, default, connect("192.0.2.1", 80, exe="/usr/bin/wget")).action is default.action


# --- rules and decide ---------------------------------------------------------------------


def test_rule_keys_lists_the_set_conditions() -> None:
    assert rule("connect").keys() == ()
    assert rule("connect", port=ports(80), family=frozenset({AF_INET})).keys() == ("family", "port")


def test_a_key_left_out_matches_anything() -> None:
    bare = rule("connect")
    assert bare.matches(connect("192.0.2.1", 80))
    assert bare.matches(connect("2001:db8::1", 53))
    assert bare.matches(unix_path("/x"))
    assert bare.matches(Call(name="connect"))
    assert rule("*").matches(Call(name="getsockopt"))


def test_every_condition_must_hold() -> None:
    both = rule("connect", address=nets("10.0.0.0/8"), port=ports(443))
    assert both.matches(connect("10.1.2.3", 443))
    assert not both.matches(connect("10.1.2.3", 80))
    assert not both.matches(connect("192.0.2.1", 443))


def test_first_matching_rule_wins() -> None:
    first = rule("connect", Action.DENY, "t:rule[1]", port=ports(443))
    second = rule("connect", Action.ALLOW, "t:rule[2]")
    assert verdict_of([first, second], connect("192.0.2.1", 443)) == Verdict(Action.DENY, errno.EACCES, first)
    assert verdict_of([second, first], connect("192.0.2.1", 443)) == Verdict(Action.ALLOW, errno.EACCES, second)
    # a rule that does not match is skipped
    assert verdict_of([first, second], connect("192.0.2.1", 80)).rule is second


def test_no_match_gives_the_default_with_the_profile_errno() -> None:
    rules = [rule("connect", port=ports(443))]
    for default in (Verdict(Action.DENY, errno.EPERM, None), Verdict(Action.KILL, 13, None),
                    Verdict(Action.ALLOW, 13, None)):
        assert verdict_of(rules, connect("192.0.2.1", 80), default) == default
    assert verdict_of([], Call(name="listen")) == DEFAULT


def test_a_rules_own_errno() -> None:
    refuse = rule("connect", Action.DENY, errno=errno.ECONNREFUSED)
    plain = rule("bind", Action.DENY)
    assert verdict_of([refuse, plain], connect("192.0.2.1", 80)).errno == errno.ECONNREFUSED
    assert verdict_of([refuse, plain], to("bind", "192.0.2.1", 80)).errno == errno.EACCES


def test_calls_restrict_the_rule() -> None:
    only_connect = rule("connect", Action.DENY)
    assert only_connect.matches(connect("192.0.2.1", 80))
    assert not only_connect.matches(to("bind", "192.0.2.1", 80))
    assert not only_connect.matches(to("sendto", "192.0.2.1", 80))


def test_all_calls_are_the_twenty_subcalls() -> None:
    assert ALL_CALLS == frozenset(names.SUBCALLS)
    assert len(ALL_CALLS) == 20


@pytest.mark.parametrize("name, alias", [
    ("sendto", "send"), ("sendmsg", "send"), ("sendmmsg", "send"), ("recvfrom", "recv"),
    ("send", "sendto"), ("recv", "recvfrom"),
])
def test_a_plain_call_in_disguise_matches_rules_naming_either(name: str, alias: str) -> None:
    call = Call(name=name, alias=alias, family=AF_INET, type=SOCK_STREAM, protocol=0)
    assert rule(alias).matches(call)
    assert rule(name).matches(call)
    assert not rule({"connect", "recvmsg"}).matches(call)
    # without the alias the call is only itself
    assert not rule(alias).matches(Call(name=name, family=AF_INET))


def test_alias_in_decide() -> None:
    rules = [rule("send", Action.ALLOW)]
    assert action_of(rules, Call(name="sendto", alias="send", family=AF_INET)) is Action.ALLOW
    # a sendto that names a destination is not a send
    assert action_of(rules, to("sendto", "192.0.2.1", 53)) is Action.DENY


# --- IPv4 carried in IPv6 -----------------------------------------------------------------

INET6_ONLY = rule("connect", Action.ALLOW, "t:inet6", family=frozenset({AF_INET6}))
ANY_IPV6 = rule("connect", Action.ALLOW, "t:any6", address=nets("::/0"))
ANY_IPV4 = rule("connect", Action.ALLOW, "t:any4", address=nets("0.0.0.0/0"))
LOOPBACK4 = rule("connect", Action.ALLOW, "t:lo4", address=nets("127.0.0.0/8"))


def test_ipv4_mapped_is_judged_only_as_ipv4() -> None:
    mapped = connect("::ffff:127.0.0.1", 8000)
    assert action_of([INET6_ONLY], mapped) is Action.DENY
    assert action_of([ANY_IPV6], mapped) is Action.DENY
    assert verdict_of([LOOPBACK4], mapped).rule is LOOPBACK4
    # the port survives the translation, and the family is inet
    port_rule = rule("connect", address=nets("127.0.0.1/32"), port=ports(8000),
                     family=frozenset({AF_INET}))
    assert action_of([port_rule], mapped) is Action.ALLOW
    assert action_of([port_rule], connect("::ffff:127.0.0.1", 8001)) is Action.DENY


def test_ipv4_mapped_deny_rule_applies() -> None:
    # the point of the views: an IPv4 deny cannot be dodged by spelling it as IPv6
    block = rule("connect", Action.DENY, "t:block", address=nets("10.0.0.0/8"))
    assert verdict_of([block, ANY_IPV6, ANY_IPV4], connect("::ffff:10.1.2.3", 443)).rule is block


EMBEDDED = [
    # (IPv6 spelling, the IPv4 address it carries)
    ("::7f00:1", "127.0.0.1"),                                  # IPv4-compatible
    ("::ffff:0:7f00:1", "127.0.0.1"),                           # SIIT-translated
    ("64:ff9b::c000:221", "192.0.2.33"),                        # NAT64
    ("2002:c000:204::1", "192.0.2.4"),                          # 6to4
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "65.54.227.120"),  # Teredo server
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),     # Teredo client (obfuscated)
]


@pytest.mark.parametrize("ipv6, ipv4", EMBEDDED)
def test_embedded_ipv4_is_judged_both_ways(ipv6: str, ipv4: str) -> None:
    call = connect(ipv6, 443)
    block4 = rule("connect", Action.DENY, "t:block4", address=nets(f"{ipv4}/32"))
    block6 = rule("connect", Action.DENY, "t:block6", address=nets(f"{ipv6}/128"))
    # the IPv4 view is denied, the IPv6 view (and any other IPv4 view) allowed: deny wins
    assert verdict_of([block4, ANY_IPV6, ANY_IPV4], call).rule is block4
    assert verdict_of([ANY_IPV6, block4, ANY_IPV4], call).rule is block4
    # the IPv6 view is denied, the IPv4 view allowed: deny wins too
    assert verdict_of([ANY_IPV4, block6, ANY_IPV6], call).rule is block6
    # allowed only when both views are
    assert action_of([ANY_IPV6, ANY_IPV4], call) is Action.ALLOW
    assert action_of([ANY_IPV6], call) is Action.DENY       # IPv4 view falls to default
    assert action_of([ANY_IPV4], call) is Action.DENY       # IPv6 view falls to default
    assert action_of([INET6_ONLY], call) is Action.DENY     # the IPv4 view is family inet


@pytest.mark.parametrize("ipv6, ipv4", EMBEDDED[:4])
def test_stricter_verdict_wins_kill_over_deny_over_allow(ipv6: str, ipv4: str) -> None:
    call = connect(ipv6, 443)
    kill4 = rule("connect", Action.KILL, "t:kill4", address=nets(f"{ipv4}/32"))
    deny6 = rule("connect", Action.DENY, "t:deny6", address=nets("::/0"))
    allow6 = rule("connect", Action.ALLOW, "t:allow6", address=nets("::/0"))
    assert verdict_of([kill4, deny6], call).action is Action.KILL
    assert verdict_of([deny6, kill4], call).action is Action.KILL
    assert verdict_of([kill4, allow6], call).action is Action.KILL
    assert verdict_of([allow6], call, Verdict(Action.KILL, 13, None)).action is Action.KILL
    assert Action.KILL.severity > Action.DENY.severity > Action.ALLOW.severity


def test_plain_ipv6_has_one_view() -> None:
    assert action_of([ANY_IPV6], connect("2001:db8::1", 443)) is Action.ALLOW
    assert action_of([ANY_IPV6], connect("::1", 443)) is Action.ALLOW


@pytest.mark.parametrize("destination, local, goes_to", [
    ("0.0.0.0", None, "127.0.0.1"),
    ("0.0.0.0", "0.0.0.0", "127.0.0.1"),              # bound to every interface: loopback
    ("0.0.0.0", "127.0.0.2", "127.0.0.2"),            # bound: to itself
    ("0.0.0.0", "192.0.2.7", "192.0.2.7"),
    ("0.0.0.0", "::ffff:192.0.2.7", "192.0.2.7"),     # an IPv4 destination on a dual-stack socket
    ("::", None, "::1"),
    ("::", "2001:db8::7", "::1"),                     # :: goes to loopback, bound or not
    ("::", "::ffff:192.0.2.7", "::ffff:127.0.0.1"),   # bound to IPv4: IPv4's loopback
    ("::ffff:0.0.0.0", "::", "::ffff:127.0.0.1"),
    ("::ffff:0.0.0.0", "::ffff:192.0.2.7", "::ffff:192.0.2.7"),
    ("127.0.0.9", "192.0.2.7", "127.0.0.9"),          # a destination that names one: as named
    ("2001:db8::1", "::", "2001:db8::1"),
])
def test_a_destination_of_nowhere_reaches_what_the_kernel_makes_of_it(destination, local, goes_to) -> None:
    where = inet(destination, 8000)
    bound = inet(local, 5000) if local is not None else None
    assert reached(where, bound) == inet(goes_to, 8000)


@pytest.mark.parametrize("unspecified, loopback", [("0.0.0.0", "127.0.0.0/8"), ("::", "::1/128")])
def test_unspecified_bind_is_not_loopback(unspecified: str, loopback: str) -> None:
    call = to("bind", unspecified, 8000)
    no_loopback = rule("bind", Action.DENY, "t:nolo", address=nets(loopback))
    anywhere = rule("bind", Action.ALLOW, "t:any", address=nets("0.0.0.0/0", "::/0"))
    assert verdict_of([no_loopback, anywhere], call).rule is anywhere


def test_a_rule_judges_an_unspecified_address_as_itself() -> None:
    # The supervisor judges where a destination of 0.0.0.0 goes (`reached`); a rule
    # given the address itself judges 0.0.0.0, which loopback does not hold.
    assert action_of([LOOPBACK4], connect("0.0.0.0", 80)) is Action.DENY
    lo_and_any = rule("connect", address=nets("127.0.0.0/8", "0.0.0.0/32"))
    assert action_of([lo_and_any], connect("0.0.0.0", 80)) is Action.ALLOW


@pytest.mark.parametrize("ipv6, expected", [
    ("::ffff:127.0.0.1", (True, ["127.0.0.1"])),
    ("::ffff:0.0.0.0", (True, ["0.0.0.0"])),
    ("::7f00:1", (False, ["127.0.0.1"])),
    ("::ffff:0:a00:1", (False, ["10.0.0.1"])),
    ("64:ff9b::8.8.8.8", (False, ["8.8.8.8"])),
    ("2002:c000:204::1", (False, ["192.0.2.4"])),
    ("2002:0808:0808:1::2", (False, ["8.8.8.8"])),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", (False, ["65.54.227.120", "192.0.2.45"])),
    # nothing carried
    ("::", (False, [])),
    ("::1", (False, [])),
    ("2001:db8::1", (False, [])),      # documentation prefix, not Teredo's 2001::/32
    ("fe80::1", (False, [])),
    ("64:ff9b:1::8.8.8.8", (False, [])),
])
def test_ipv4_views(ipv6: str, expected: tuple[bool, list[str]]) -> None:
    mapped, carried = ipv4_views(ipaddress.IPv6Address(ipv6))
    assert (mapped, [str(a) for a in carried]) == expected


def test_views_keep_other_facts() -> None:
    # the IPv4 view is still the same call: type, protocol and exe hold as before
    call = connect("64:ff9b::c000:221", 443, exe="/usr/bin/curl")
    strict = rule("connect", address=nets("192.0.2.33/32"), port=ports(443),
                  type=frozenset({SOCK_STREAM}), protocol=(TCP,), exe=globs("/usr/bin/*"))
    assert action_of([strict, ANY_IPV6], call) is Action.ALLOW


# --- needs_socket -------------------------------------------------------------------------


@pytest.mark.parametrize("rules, name, expected", [
    ([], "recvfrom", False),
    ([rule("send", family=frozenset({AF_INET}))], "recvfrom", False),
    ([rule("recv", type=frozenset({SOCK_DGRAM}))], "recvfrom", True),   # via the alias
    ([rule("recvfrom", protocol=(UDP,))], "recv", True),
    ([rule("sendto", family=frozenset({AF_INET}))], "send", True),
    ([rule("sendto", family=frozenset({AF_INET}))], "recvmsg", False),
    ([rule("listen", family=frozenset({AF_INET}))], "listen", False),  # an address call: it always looks
    ([rule("*", type=frozenset({SOCK_STREAM}))], "accept4", True),
    # The calls that carry an address always look at the socket (to read the address
    # as its protocol does), whatever the rules ask.
    ([rule("sendto", family=frozenset({AF_INET}))], "sendto", False),
    ([rule("send", family=frozenset({AF_INET}))], "sendmsg", False),
    ([rule("connect", type=frozenset({SOCK_STREAM}))], "connect", False),
    ([rule("bind", protocol=(TCP,))], "bind", False),
    # socket and socketpair have them as arguments
    ([rule("*", family=frozenset({AF_INET}), protocol=(TCP,))], "socket", False),
    ([rule("*", type=frozenset({SOCK_STREAM}))], "socketpair", False),
])
def test_needs_socket(rules: list[Rule], name: str, expected: bool) -> None:
    assert needs_socket(rules, name) is expected

"""Fuzzing the profile loader, the shorthands and `learn` (issue 6, item 4)."""

from __future__ import annotations

import datetime
import ipaddress
import math
import os
import re
import shlex
import tempfile
from pathlib import Path

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.profiles import BUILTINS, errors_of, load
from sandbox import ProfileError, UsageError, names
from sandbox.decode import Inet4, Inet6, Netlink, Unix, Unknown, Unspec
from sandbox.learn import Learner
from sandbox.profile import ALWAYS_RULES, RULE_KEYS, Profile, inline_rule, load_profile, parse_target
from sandbox.rules import ADDRESS_CALLS, ALL_CALLS, PLAIN_ALIAS, Action, Call, Rule, Verdict

pytestmark = pytest.mark.pure

AF_UNIX, AF_INET = 1, 2
SOCK_STREAM = 1


# --- fuzzing (issue 6, item 4) ------------------------------------------------------------
# Whatever the document, loading it gives a Profile or a ProfileError whose every line is
# `FILE: KEY: what` (or `FILE: line L, column C: what` for TOML syntax), never another
# exception; a profile that loads decides any call without raising; a learned profile
# loads and allows what it learned.
#
# FUZZ_EXAMPLES=N runs N examples per test (default 400). What the fuzzers found (and
# what was fixed) is pinned in test_fuzz_findings and test_learn_findings.

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROFILE_KEYS = ("name", "description", "default", "errno", "log", "version")
SYNTAX_ERROR = re.compile(r"line \d+, column \d+")


def one_line(line: str) -> bool:
    """`sockbox check` prints each error as a line: no line break of any kind inside."""
    return len(line.splitlines()) == 1


def shown(text: str) -> str:
    """A key or file name as an error line shows it: what cannot be printed, escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode()
                   for c in text)


def outcome_of(load_it) -> Profile | ProfileError:
    """What loading gives: a Profile or a ProfileError (anything else fails the test)."""
    try:
        return load_it()
    except ProfileError as error:
        return error


# -- TOML text from Python values (tomli has no writer) --


def toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_document(document: dict[str, object]) -> str:
    """TOML text for a document: other keys first, then [profile] and [[rule]] when they
    are a table and a non-empty array of tables, inline otherwise."""
    lines, tables = [], []
    for key, value in document.items():
        if key == "profile" and isinstance(value, dict):
            tables.append("[profile]")
            tables += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
        elif key == "rule" and isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
            for rule in value:
                tables.append("[[rule]]")
                tables += [f"{toml_string(k)} = {toml_value(v)}" for k, v in rule.items()]
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


# -- documents --

toml_scalars = st.one_of(
    st.text(max_size=12), st.integers(-(2**63), 2**63 - 1), st.integers(-3, 70000),
    st.floats(), st.booleans(),
    st.sampled_from([datetime.date(1979, 5, 27), datetime.time(7, 32),
                     datetime.datetime(1979, 5, 27, 7, 32),
                     datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.timezone.utc)]),
)
toml_values = st.recursive(  # any TOML value, nested a little
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)

GLOB_TEXT = st.text(alphabet="/*?[]!-^\\az.@", max_size=10)
# Per key: the values a profile might hold, right and wrong.
PLAUSIBLE: dict[str, st.SearchStrategy] = {
    "calls": st.sampled_from(["*", *names.SUBCALLS, "conect", "", "Connect"]),
    "action": st.sampled_from(["allow", "deny", "kill", "Allow", "permit"]),
    "errno": st.one_of(st.sampled_from(["EACCES", "eperm", "EAGAIN", "ENOSUCH", "E", "errorcode"]),
                       st.integers(-1, 4097)),
    "log": st.one_of(st.booleans(), st.sampled_from(["none", "deny", "all", "yes"])),
    "family": st.one_of(st.sampled_from([*names.FAMILIES, *names.FAMILY_ALIASES, "INET", "af_inet", "2"]),
                        st.integers(-1, 0x10000)),
    "type": st.one_of(st.sampled_from([*names.SOCK_TYPES, "STREAM"]), st.integers(-1, 16)),
    "protocol": st.one_of(st.sampled_from([*names.PROTOCOLS, "TCP"]), st.integers(-1, 0x10000)),
    "address": st.one_of(
        st.sampled_from(["10.0.0.0/8", "10.0.0.1/8", "0.0.0.0/0", "::/0", "::ffff:1.2.3.4/128",
                         "300.0.0.0/8", "1.2.3.4", "fe80::1%eth0/128", "1.2.3.4/33", ""]),
        st.builds(lambda ip, prefix: f"{ip}/{prefix}", st.ip_addresses(), st.integers(0, 129))),
    "host": st.sampled_from(["example.com", "example.com.", "a..b", "-x.org", "1.2.3.4", "::1",
                             "x" * 64, "localhost", ""]),
    "port": st.one_of(st.integers(-2, 70000),
                      st.sampled_from(["1-2", "70000", "9-1", " 80 ", "1-2-3", "", "-", "0-65535",
                                       "65535-65536", "\u00b2", "\u0663", "80,443", "http"])),
    "path": st.one_of(GLOB_TEXT, GLOB_TEXT.map(lambda g: "/" + g)),
    "abstract": st.one_of(GLOB_TEXT, st.sampled_from(["@x", "\0x"])),
    "exe": st.one_of(GLOB_TEXT, GLOB_TEXT.map(lambda g: "/" + g)),
    "level": st.one_of(st.sampled_from([*names.SOCKOPT_LEVELS, "SOL_SOCKET"]), st.integers(-1, 2**32)),
    "option": st.one_of(st.sampled_from([*names.SOCKET_OPTIONS, "so_nonesuch"]), st.integers(-1, 2**32)),
    "name": st.text(max_size=8), "description": st.text(max_size=8),
    "default": st.sampled_from(["allow", "deny", "kill", "reject"]),
    "version": st.sampled_from([1, 2, 0, "1", 1.0, True]),
}


def table(keys: tuple[str, ...], max_size: int):
    """A table of mostly real keys, some junk; each value plausible for its key (alone
    or in a list) or any TOML value."""
    def value_for(key: str):
        plausible = PLAUSIBLE.get(key, toml_values)
        return st.one_of(plausible, st.lists(plausible, max_size=4), st.lists(plausible, max_size=4),
                         toml_values)
    key = st.one_of(st.sampled_from(keys), st.sampled_from(keys), st.text(max_size=8))
    return st.lists(key.flatmap(lambda k: st.tuples(st.just(k), value_for(k))), max_size=max_size).map(dict)


# Right values only, so that many random rules load and their conditions combine.
SENSIBLE = {
    "family": st.sampled_from(["inet", "inet6", "unix", "netlink", "packet", 2, 10, 1]),
    "type": st.sampled_from(["stream", "dgram", "raw", "seqpacket", 1, 2]),
    "protocol": st.sampled_from(["tcp", "udp", "icmp", "icmpv6", "netlink_route", 0, 6, 17]),
    "address": st.one_of(st.sampled_from(["10.0.0.0/8", "0.0.0.0/0", "::/0", "127.0.0.1/32",
                                          "::ffff:10.0.0.0/104", "64:ff9b::/96"]),
                         st.builds(lambda ip: f"{ip}/{ip.max_prefixlen}", st.ip_addresses())),
    "host": st.sampled_from(["example.com", "localhost."]),
    "port": st.one_of(st.integers(0, 65535), st.sampled_from(["1000-2000", "0-1023", "53"])),
    "path": st.one_of(st.sampled_from(["/run/*", "/tmp/**", "/x/[!a]?", "/**"]), GLOB_TEXT.map(lambda g: "/" + g)),
    "abstract": st.one_of(st.sampled_from(["**", "x*", "/tmp/.X11-unix/*"]),
                          GLOB_TEXT.filter(lambda g: g and g[0] != "@")),
    "exe": st.one_of(st.sampled_from(["/usr/bin/*", "/**", "/bin/sh"]), GLOB_TEXT.map(lambda g: "/" + g)),
    "level": st.sampled_from(["socket", "ip", "ipv6", "tcp", 0, 1]),
    "option": st.sampled_from(["so_reuseaddr", "ip_options", "tcp_nodelay", "so_bindtodevice", 2, 99]),
}
_KINDS = [  # calls, and conditions that can hold for them together
    (names.SUBCALLS, ("family", "type", "protocol", "exe")),
    (("connect", "sendto", "sendmsg", "sendmmsg", "bind"), ("family", "address", "port", "host", "exe")),
    (("connect", "bind", "sendto"), ("path", "type", "exe")),
    (("connect", "sendmsg"), ("abstract", "family")),
    (("setsockopt", "getsockopt"), ("level", "option", "family", "type", "protocol")),
]


@st.composite
def sensible_rules(draw) -> dict[str, object]:
    calls, keys = draw(st.sampled_from(_KINDS))
    rule: dict[str, object] = {
        "calls": draw(st.one_of(st.just("*"), st.lists(st.sampled_from(calls), min_size=1, max_size=3, unique=True))),
        "action": draw(st.sampled_from(["allow", "deny", "kill", "deny"])),
    }
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        rule[key] = draw(st.one_of(SENSIBLE[key], st.lists(SENSIBLE[key], min_size=1, max_size=3)))
    if rule["action"] == "deny" and draw(st.booleans()):
        rule["errno"] = draw(st.sampled_from(["EPERM", "econnrefused", 13]))
    if draw(st.booleans()):
        rule["log"] = draw(st.booleans())
    return rule


rule_tables = st.one_of(
    table(RULE_KEYS, 6),
    st.tuples(st.lists(PLAUSIBLE["calls"], min_size=1, max_size=3), PLAUSIBLE["action"],
              table(RULE_KEYS, 2)).map(lambda t: {"calls": t[0], "action": t[1], **t[2]}),
    sensible_rules(), sensible_rules(), sensible_rules(),
)
sensible_header = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=8), "description": st.text(max_size=20),
    "default": st.sampled_from(["allow", "deny", "kill"]), "errno": st.sampled_from(["EACCES", "EPERM", 1, 4095]),
    "log": st.sampled_from(["none", "deny", "all"]), "version": st.just(1)})


@st.composite
def documents(draw) -> dict[str, object]:
    document: dict[str, object] = {}
    if draw(st.booleans()):
        document["profile"] = draw(st.one_of(sensible_header, sensible_header, table(PROFILE_KEYS, 5),
                                             toml_scalars))
    document["rule"] = draw(st.one_of(st.lists(rule_tables, min_size=1, max_size=4),
                                      st.lists(sensible_rules(), min_size=1, max_size=4),
                                      st.lists(sensible_rules(), min_size=1, max_size=4),
                                      toml_values))
    if draw(st.integers(0, 3)) == 0:  # top-level junk
        for key, value in draw(st.lists(st.tuples(st.text(max_size=6), toml_values), max_size=2)):
            document.setdefault(key, value)
    return document


# Tokens that make random text look like a profile more often than random characters do.
TOML_TOKENS = st.sampled_from([
    "[profile]", "[[rule]]", "[rule]", "[[profile]]", "\n", "\n", " = ", "=", '"', "'", "[", "]",
    "{", "}", ",", ".", "#", "calls", "action", "port", "address", "path", "family", "errno",
    '"allow"', '"deny"', '"connect"', '"*"', '"1-2"', '"10.0.0.0/8"', '"/run/*"', "1", "70000",
    "-1", "1.5", "inf", "nan", "true", "1979-05-27", '"""', "'''", "\\", "\\u0000", "\t", " ",
    "0x10", "1_000", "+", "e", "\r\n", "\x00", "\x7f", "\ufeff",
])


@st.composite
def corrupted_documents(draw) -> str:
    """A valid document's text with a few characters deleted, replaced or inserted."""
    text = toml_document(draw(documents()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(st.one_of(st.just(""), TOML_TOKENS, st.text(max_size=2))) + text[at + cut:]
    return text


toml_texts = st.one_of(
    st.text(max_size=200), corrupted_documents(), corrupted_documents(),
    st.lists(TOML_TOKENS, max_size=40).map("".join),
    st.lists(st.one_of(TOML_TOKENS, st.text(max_size=3)), max_size=40).map("".join),
)
SOURCES = st.sampled_from(["fuzz.toml", "/etc/sockbox/app.toml", "dir.d/x", "a: b.toml"])


# -- checking an outcome --


def error_keys(document: dict[str, object]) -> set[str]:
    """Every KEY an error about this document may name."""
    keys = {str(key) for key in document} | {"profile", "rule"}
    header = document.get("profile")
    keys |= {f"profile.{key}" for key in (*PROFILE_KEYS, *(header if isinstance(header, dict) else ()))}
    rules = document.get("rule")
    for index, rule in enumerate(rules if isinstance(rules, list) else (), start=1):
        if isinstance(rule, dict):
            keys |= {f"rule[{index}].{key}" for key in (*RULE_KEYS, *rule)}
    return keys


def check_loaded(outcome: Profile | ProfileError, source: str, keys: set[str] | None = None) -> None:
    """The outcome of loading obeys the contract. `keys`: the KEYs an error may name
    (None: it must be a TOML syntax error)."""
    if isinstance(outcome, ProfileError):
        assert outcome.file == source
        assert outcome.errors, "a ProfileError without an error"
        assert str(outcome) == "\n".join(outcome.errors)
        for line in outcome.errors:
            assert line.startswith(f"{shown(source)}: "), line
            assert one_line(line), f"an error of several lines: {line!r}"
            rest = line[len(shown(source)) + 2:]
            if keys is None:
                key, _, what = rest.partition(": ")
                assert SYNTAX_ERROR.fullmatch(key) and what.strip(), line
            else:
                # A key may itself hold ": ". An empty one ("" = 1 is valid TOML) makes
                # ProfileError leave the KEY out: `FILE: what`.
                assert any(rest.startswith(f"{shown(key)}: ") and rest[len(shown(key)) + 2:].strip()
                           for key in keys if key) or ("" in keys and rest.strip()), (line, keys)
        return
    assert isinstance(outcome, Profile)
    label = os.path.basename(source) or source
    for index, rule in enumerate(outcome.rules, start=1):
        assert rule.label == f"{label}:rule[{index}]"
        assert rule.calls and rule.calls <= ALL_CALLS
        assert rule.errno is None or 1 <= rule.errno <= 4095
        str(rule)  # as `sockbox show` prints it


def check_text_outcome(outcome: Profile | ProfileError, text: str, source: str) -> None:
    try:
        document = tomli.loads(text)
    except tomli.TOMLDecodeError:  # a syntax error: at its line and column
        assert isinstance(outcome, ProfileError) and len(outcome.errors) == 1, outcome
        check_loaded(outcome, source)
        return
    except (ValueError, RecursionError):  # beyond Python's limits: one line, whatever it says
        assert isinstance(outcome, ProfileError) and len(outcome.errors) == 1, outcome
        assert outcome.errors[0].startswith(f"{shown(source)}: ") and one_line(outcome.errors[0])
        return
    check_loaded(outcome, source, error_keys(document))


# -- the loader --


@FUZZ
@given(document=documents(), source=SOURCES)
def test_fuzz_documents_load_or_fail_cleanly(document, source):
    text = toml_document(document)
    tomli.loads(text)  # valid TOML: what follows tests the loader, not the TOML writer
    outcome = outcome_of(lambda: Profile.from_toml(text, source))
    check_loaded(outcome, source, error_keys(document))
    if isinstance(outcome, Profile):
        assert (outcome.text, outcome.source) == (text, source)
        assert len(outcome.rules) == len(document["rule"])


@FUZZ
@given(text=toml_texts, source=SOURCES)
def test_fuzz_random_text_loads_or_fails_cleanly(text, source):
    check_text_outcome(outcome_of(lambda: Profile.from_toml(text, source)), text, source)


_FILES = tempfile.TemporaryDirectory(prefix="sockbox-fuzz-")


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))
@given(raw=st.one_of(st.binary(max_size=200), toml_texts.map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_fuzz_random_bytes_from_a_file_load_or_fail_cleanly(raw):
    path = Path(_FILES.name) / "fuzz.toml"
    path.write_bytes(raw)
    outcome = outcome_of(lambda: Profile.from_file(path))
    try:
        text = path.read_text()  # as from_file reads it: universal newlines
    except UnicodeDecodeError:
        assert isinstance(outcome, ProfileError) and len(outcome.errors) == 1
        assert outcome.errors[0].startswith(f"{shown(str(path))}: ") and one_line(outcome.errors[0])
        return
    check_text_outcome(outcome, text, str(path))


# -- random calls: decided by any profile that loads --

_ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6),
                 st.sampled_from([ipaddress.ip_address(a) for a in
                                  ("0.0.0.0", "::", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::",
                                   "2001::1", "::2", "127.0.0.1", "::1", "10.1.2.3")]))
_inet = st.builds(lambda ip, port, flow, scope: Inet4(ip, port) if ip.version == 4 else Inet6(ip, port, flow, scope),
                  _ips, st.integers(0, 65535), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
_addresses = st.one_of(
    st.none(), _inet, _inet,
    st.builds(Unix, st.one_of(st.none(), st.binary(max_size=20)), st.none()),
    st.builds(lambda name: Unix(abstract=name), st.binary(max_size=20)),
    st.builds(Netlink, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.just(Unspec()),
    st.builds(Unknown, st.integers(0, 0xFFFF), st.binary(max_size=20)),
)
_int32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 2, 3, 6, 10, 16, 17, 41, 255]))
_uint32 = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 6, 41, 255, 2**32 - 1]))
random_calls = st.builds(  # anything a Call can hold, coherent or not
    Call, name=st.sampled_from(names.SUBCALLS),
    alias=st.one_of(st.none(), st.sampled_from(["send", "recv", "sendto", "recvfrom"])),
    family=st.one_of(st.none(), _int32), type=st.one_of(st.none(), _int32),
    protocol=st.one_of(st.none(), _int32), address=_addresses,
    path=st.one_of(st.none(), st.text(max_size=20), st.text(max_size=10).map(lambda p: "/run/" + p)),
    level=st.one_of(st.none(), _int32), option=st.one_of(st.none(), _int32),
    exe=st.one_of(st.none(), st.text(max_size=10).map(lambda p: "/usr/bin/" + p)),
)


def check_verdict(profile: Profile, verdict: Verdict) -> None:
    assert isinstance(verdict.action, Action)
    assert 1 <= verdict.errno <= 4095
    assert verdict.rule is None or verdict.rule in profile.effective_rules
    if verdict.rule is None:
        assert (verdict.action, verdict.errno) == (profile.default, profile.errno)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples * 3 // 4))
@given(document=documents(), data=st.data())
def test_fuzz_profiles_that_load_decide_any_call(document, data):
    profile = outcome_of(lambda: Profile.from_toml(toml_document(document), "fuzz.toml"))
    if not isinstance(profile, Profile):
        profile = load_profile(data.draw(st.sampled_from(BUILTINS)))
    for call in data.draw(st.lists(random_calls, min_size=1, max_size=8)):
        verdict = profile.decide(call)
        check_verdict(profile, verdict)
        assert profile.decide(call) == verdict  # the remembered answer is the same
        profile.audits(verdict)


# -- --allow/--deny RULE and explain's TARGET --

SHORTHAND_TOKENS = st.sampled_from([
    "connect", "sendto", "socket", "listen", "bind", "*", "conect", ",", "=", "unix:", "@", "/",
    "[", "]", ":", "::", "-", "0", "1", "80", "443", "70000", "9-1", "10.0.0.0/8", "1.2.3.4",
    "2001:db8::1", "/8", "/128", "inet6", "unix", "run", "**", "?", "[!]", "[z-a]", " ",
    "%eth0", "example.com",
])
_targets = st.one_of(
    st.builds(lambda ip, port: f"{ip}:{port}", st.ip_addresses(v=4), st.integers(0, 70000)),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6), st.integers(0, 70000)),
    st.builds(lambda net, lo, hi: f"{net}:{lo}-{hi}", SENSIBLE["address"], st.integers(0, 66000),
              st.integers(0, 66000)),
    st.builds(lambda ports: "*:" + ",".join(map(str, ports)), st.lists(SENSIBLE["port"], min_size=1, max_size=3)),
    SENSIBLE["address"], SENSIBLE["path"].map(lambda p: "unix:" + p),
    SENSIBLE["abstract"].map(lambda p: "unix:@" + p), st.sampled_from([*names.FAMILIES, "local", "route"]),
)
_sensible_shorthands = st.builds(
    lambda calls, target: ",".join(calls) + (f"={target}" if target is not None else ""),
    st.one_of(st.just(["*"]), st.lists(st.sampled_from(names.SUBCALLS), min_size=1, max_size=3)),
    st.one_of(st.none(), _targets))
shorthands = st.one_of(
    st.text(max_size=30), _sensible_shorthands, _sensible_shorthands,
    st.lists(SHORTHAND_TOKENS, max_size=12).map("".join),
    st.lists(st.one_of(SHORTHAND_TOKENS, st.text(max_size=2)), max_size=12).map("".join),
)


@FUZZ
@given(text=shorthands, action=st.sampled_from(list(Action)), data=st.data())
def test_fuzz_inline_rules(text, action, data):
    label = f"--{'deny' if action is Action.DENY else 'allow'} {text}"
    try:
        rule = inline_rule(text, action, label)
    except UsageError:
        return
    except ProfileError as error:
        assert error.file == label and error.errors
        for line in error.errors:
            assert line.startswith(f"{shown(label)}: ") and one_line(line), line
            key, _, what = line[len(shown(label)) + 2:].partition(": ")
            assert key in {"calls", "target"} or (key.startswith("target.") and key[7:] in RULE_KEYS), line
            assert what.strip(), line
        return
    assert isinstance(rule, Rule)
    assert (rule.label, rule.action, rule.errno, rule.log) == (label, action, None, False)
    assert rule.calls and rule.calls <= ALL_CALLS
    profile = load_profile("offline").with_rules_first([rule])
    for call in data.draw(st.lists(random_calls, max_size=4)):
        check_verdict(profile, profile.decide(call))


@FUZZ
@given(text=shorthands)
def test_fuzz_parse_target(text):
    # explain turns a ValueError into its usage error; anything else would be a crash.
    try:
        conditions = parse_target(text)
    except ValueError:
        return
    assert conditions and set(conditions) <= {"family", "address", "port", "path", "abstract"}
    assert all(values for values in conditions.values())


# -- learn, then load: the learned profile allows what it learned --

_families = st.one_of(st.sampled_from([1, 2, 10, 16, 17, 0, 40, 45]), st.integers(-2, 50), _int32)
_types = st.one_of(st.sampled_from([1, 2, 3, 5, 1 | 0o4000, 2 | 0o2000000]), st.integers(0, 15), _int32)
_protocols = st.one_of(st.sampled_from([0, 6, 17, 1, 58, 9, 768]), st.integers(0, 300), _int32)
_unix_names = st.one_of(st.text(max_size=12), st.text(alphabet="/ab*?[]!-.", max_size=12)).map(os.fsencode)
_unix_names = st.one_of(_unix_names, _unix_names, st.binary(max_size=12))  # not always UTF-8


@st.composite
def learnable_calls(draw) -> Call:
    """A call as describe() makes it (the supervisor hands learn what it decided)."""
    name = draw(st.sampled_from(names.SUBCALLS))
    exe = draw(st.one_of(st.none(), st.just("/usr/bin/prog"),
                         _unix_names.map(lambda p: "/" + os.fsdecode(p.replace(b"\0", b"")))))
    family, sock_type, protocol = draw(_families), draw(_types), draw(_protocols)
    if name in ("socket", "socketpair"):
        return Call(name, family=family, type=sock_type, protocol=protocol, exe=exe)
    if name in ("setsockopt", "getsockopt"):
        # describe() hands levels and options on as unsigned 32-bit words
        level = draw(st.one_of(st.sampled_from(list(names.SOCKOPT_LEVELS.values())), _uint32))
        option = draw(st.one_of(st.integers(0, 70), _uint32))
        return Call(name, family=family, type=sock_type, protocol=protocol, level=level, option=option, exe=exe)
    if name in ADDRESS_CALLS:
        address = draw(st.one_of(
            st.none(), _inet, _inet,
            _unix_names.map(lambda p: Unix(path=p.split(b"\0")[0] or b"x")),  # as decode_sockaddr cuts it
            _unix_names.map(lambda p: Unix(abstract=p)), st.just(Unix()),
            st.builds(Netlink, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
            st.just(Unspec()), st.builds(Unknown, st.one_of(st.just(17), st.integers(0, 0xFFFF)), st.binary(max_size=8))))
        if address is None or (isinstance(address, Unspec) and name != "connect"):
            return Call(name, alias=PLAIN_ALIAS.get(name), family=family, type=sock_type, protocol=protocol, exe=exe)
        path = None
        if isinstance(address, Unix) and address.path:
            path = os.path.join("/home/user", os.fsdecode(address.path))  # as resolved for the process
        return Call(name, family=address.family, type=sock_type, protocol=protocol, address=address,
                    path=path, exe=exe)
    plain = name in ("send", "recv") or (name == "recvfrom" and draw(st.booleans()))
    return Call(name, alias=PLAIN_ALIAS.get(name) if plain else None, family=family, type=sock_type,
                protocol=protocol, exe=exe)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 2))
@given(calls=st.lists(learnable_calls(), min_size=1, max_size=12),
       command=st.lists(st.text(max_size=8), min_size=1, max_size=3))
def test_fuzz_learned_profiles_load_and_allow_what_they_learned(calls, command):
    learner = Learner()
    for call in calls:
        learner(call)
    text = learner.profile(command)
    profile = Profile.from_toml(text, "learned.toml")  # a ProfileError here is the bug
    assert profile.default is Action.DENY
    assert profile.description == "learned from " + shlex.join(command)
    assert all(rule.action is Action.ALLOW for rule in profile.rules)
    for call in calls:
        if call.name in ("socket", "socketpair") and not 0 <= (call.family or 0) <= 0xFFFF:
            continue  # no family the kernel takes: learn writes no rule for it
        verdict = profile.decide(call)
        if verdict.rule not in ALWAYS_RULES:  # no profile may allow those options
            assert verdict.action is Action.ALLOW, (call, verdict, text)


# -- what the fuzzers found --


@pytest.mark.parametrize("text, key", [
    pytest.param('[[rule]]\ncalls = [["connect"]]\naction = "allow"\n', "rule[1].calls",
                 id="calls-holding-a-list"),
    pytest.param('[[rule]]\ncalls = [{a = 1}]\naction = "allow"\n', "rule[1].calls",
                 id="calls-holding-a-table"),
    pytest.param('[[rule]]\ncalls = ["connect"]\npath = ["/[z-a]"]\naction = "allow"\n', "rule[1].path",
                 id="path-glob-reversed-range"),
    pytest.param('[[rule]]\ncalls = ["connect"]\nabstract = ["[b-a]"]\naction = "allow"\n',
                 "rule[1].abstract", id="abstract-glob-reversed-range"),
    pytest.param('[[rule]]\nexe = ["/usr/[9-0]"]\naction = "allow"\n', "rule[1].exe",
                 id="exe-glob-reversed-range"),
    pytest.param("x = " + "9" * 5000 + "\n", None, id="integer-of-5000-digits"),
    pytest.param("x = " + "[" * 1000 + "]" * 1000 + "\n", None, id="arrays-nested-1000-deep"),
    pytest.param('"a\\nb" = 1\n', "a\nb", id="key-with-a-line-break"),
])
def test_fuzz_findings(text: str, key: str | None) -> None:
    # Each is a mistake like any other: a ProfileError, each error on one line.
    error = errors_of(text, "found.toml")
    assert all(one_line(line) and line.startswith("found.toml: ") for line in error.errors), error.errors
    if key is None:  # beyond Python's limits: one error
        assert len(error.errors) == 1
    else:
        assert error.key == key


def test_fuzz_findings_glob_class_with_double_dash_loads_quietly() -> None:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rule = load('[[rule]]\ncalls = ["connect"]\npath = ["/[*--/]x"]\naction = "allow"\n').rules[0]
    assert rule.matches(Call("connect", family=AF_UNIX, address=Unix(path=b"/-x"), path="/-x"))


def test_fuzz_findings_inline_rule_glob() -> None:
    with pytest.raises(ProfileError):
        inline_rule("connect=unix:/[z-a]", Action.ALLOW, "--allow connect=unix:/[z-a]")


_NEWLINE_PATH = '/tmp/x\n[[rule]]\ncalls = ["*"]\naction = "allow"\n#'


@pytest.mark.parametrize("call", [
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                      address=Unix(path=_NEWLINE_PATH.encode()), path=_NEWLINE_PATH),
                 id="path-with-line-breaks-injects-a-rule"),
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                      address=Unix(path=b"/run/\xff"), path="/run/\udcff"), id="path-not-utf8"),
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                      address=Unix(abstract=b"x\0y")), id="abstract-with-nul"),
    pytest.param(Call("listen", exe="/tmp/a\nb"), id="exe-with-a-line-break"),
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0,
                      address=Unix(path="/run/\U000e0001".encode()), path="/run/\U000e0001"),
                 id="path-with-a-nonprintable-astral-character"),
    pytest.param(Call("bind", family=AF_UNIX, type=SOCK_STREAM, protocol=0, address=Unix(abstract=b"")),
                 id="empty-abstract-name"),
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0, address=Unix(abstract=b"@x")),
                 id="abstract-name-beginning-with-at"),
    pytest.param(Call("connect", family=AF_UNIX, type=SOCK_STREAM, protocol=0, address=Unix(abstract=b"\0x")),
                 id="abstract-name-beginning-with-nul"),
    pytest.param(Call("socket", family=46, type=SOCK_STREAM, protocol=0), id="family-without-a-name"),
    pytest.param(Call("socket", family=AF_INET, type=7, protocol=0), id="type-without-a-name"),
    pytest.param(Call("socket", family=17, type=3, protocol=768), id="packet-socket-protocol"),
    pytest.param(Call("setsockopt", level=0xFFFFFFFF, option=5), id="option-level-of-all-ones"),
])
def test_learn_findings(call: Call) -> None:
    learner = Learner()
    learner(call)
    text = learner.profile(["prog"])
    profile = Profile.from_toml(text, "learned.toml")
    assert profile.decide(call).action is Action.ALLOW
    assert len(profile.rules) == 1, text
    assert profile.decide(Call("connect", family=AF_INET, type=SOCK_STREAM, protocol=6,
                               address=Inet4(ipaddress.ip_address("192.0.2.1"), 443))).action is Action.DENY


@pytest.mark.parametrize("command", [
    pytest.param(["prog", "a\nb"], id="argument-with-a-line-break"),
    pytest.param(["prog", "\U000d8000"], id="argument-with-a-nonprintable-astral-character"),
])
def test_learn_findings_command(command: list[str]) -> None:
    learner = Learner()
    learner(Call("listen"))
    profile = Profile.from_toml(learner.profile(command), "learned.toml")
    assert profile.description == "learned from " + shlex.join(command)

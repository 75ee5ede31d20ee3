"""The text form of the audit record: each of the twenty socket calls in strace's notation.

The expected lines are what strace 6 prints for the same calls, except where it shows
memory the supervisor did not read for the decision (a buffer, an option's value, a
length passed by pointer): there, as strace does for memory it cannot read, the pointer.
"""

from __future__ import annotations

import ipaddress
import os

import pytest

from helpers.running import sockbox, write_profile
from sandbox.audit import format_call, format_text, make_event
from sandbox.calls import Subject, int32
from sandbox.decode import Inet4, Inet6, MsgHdr, Netlink, Unix
from sandbox.rules import Action, Call, Verdict

LOOPBACK_80 = Inet4(ipaddress.IPv4Address("127.0.0.1"), 80)
SOCKADDR_80 = '{sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("127.0.0.1")}'
BUF, ADDR, LEN = 0x7FFC50A6DBF0, 0x7FFC50A6DC10, 0x7FFC50A6DC0C


def subject(name: str, *args: int, **call: object) -> Subject:
    fd = None if name in ("socket", "socketpair") else int32(args[0])
    return Subject(Call(name, **call), args, fd)  # type: ignore[arg-type]


def header(name: int = 0, namelen: int = 0, flags: int = 0, control: int = 0,
           controllen: int = 0) -> MsgHdr:
    return MsgHdr(name, namelen, BUF, 1, control, controllen, flags)


CALLS = [
    (subject("socket", 2, 0o2004001, 0, family=2, type=0o2004001, protocol=0),
     "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP)"),
    (subject("socket", 10, 2, 17, family=10, type=2, protocol=17),
     "socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP)"),
    (subject("socket", 1, 1, 0, family=1, type=1, protocol=0), "socket(AF_UNIX, SOCK_STREAM, 0)"),
    (subject("socket", 16, 3, 0, family=16, type=3, protocol=0),
     "socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)"),
    (subject("socketpair", 1, 1, 0, ADDR, family=1, type=1, protocol=0),
     f"socketpair(AF_UNIX, SOCK_STREAM, 0, {ADDR:#x})"),
    (Subject(Call("bind", family=2, address=LOOPBACK_80), (3, ADDR, 16), 3, 16),
     f"bind(3, {SOCKADDR_80}, 16)"),
    (Subject(Call("connect", family=2, address=LOOPBACK_80), (3, ADDR, 16), 3, 16),
     f"connect(3, {SOCKADDR_80}, 16)"),
    (Subject(Call("connect", family=2), (3, ADDR, 1), 3, 1),  # too short to name a peer
     f"connect(3, {ADDR:#x}, 1)"),
    (subject("listen", 3, 5), "listen(3, 5)"),
    (subject("listen", 0xFFFFFFFF, 0), "listen(-1, 0)"),
    (subject("accept", 3, 0, 0), "accept(3, NULL, NULL)"),
    (subject("accept", 3, ADDR, LEN), f"accept(3, {ADDR:#x}, {LEN:#x})"),
    (subject("accept4", 3, 0, 0, 0o2004000), "accept4(3, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK)"),
    (subject("accept4", 3, 0, 0, 0), "accept4(3, NULL, NULL, 0)"),
    (subject("getsockname", 3, ADDR, LEN), f"getsockname(3, {ADDR:#x}, {LEN:#x})"),
    (subject("getpeername", 3, ADDR, LEN), f"getpeername(3, {ADDR:#x}, {LEN:#x})"),
    (subject("setsockopt", 3, 6, 1, BUF, 4, level=6, option=1),
     f"setsockopt(3, SOL_TCP, TCP_NODELAY, {BUF:#x}, 4)"),
    (subject("setsockopt", 3, 1, 2, BUF, 4, level=1, option=2),
     f"setsockopt(3, SOL_SOCKET, SO_REUSEADDR, {BUF:#x}, 4)"),
    (subject("setsockopt", 4, 41, 26, BUF, 4, level=41, option=26),
     f"setsockopt(4, SOL_IPV6, IPV6_V6ONLY, {BUF:#x}, 4)"),
    (subject("setsockopt", 3, 12345, 77, BUF, 4, level=12345, option=77),
     f"setsockopt(3, 0x3039 /* SOL_?? */, 77, {BUF:#x}, 4)"),
    (subject("getsockopt", 3, 1, 4, BUF, LEN, level=1, option=4),
     f"getsockopt(3, SOL_SOCKET, SO_ERROR, {BUF:#x}, {LEN:#x})"),
    (subject("send", 3, BUF, 4, 0x4040), f"send(3, {BUF:#x}, 4, MSG_DONTWAIT|MSG_NOSIGNAL)"),
    (subject("recv", 3, BUF, 16, 0), f"recv(3, {BUF:#x}, 16, 0)"),
    (subject("sendto", 3, BUF, 4, 0x4040, 0, 0, alias="send"),
     f"sendto(3, {BUF:#x}, 4, MSG_DONTWAIT|MSG_NOSIGNAL, NULL, 0)"),
    (Subject(Call("sendto", family=2, address=LOOPBACK_80), (3, BUF, 4, 0, ADDR, 16), 3, 16),
     f"sendto(3, {BUF:#x}, 4, 0, {SOCKADDR_80}, 16)"),
    (subject("recvfrom", 3, BUF, 16, 2, ADDR, LEN),
     f"recvfrom(3, {BUF:#x}, 16, MSG_PEEK, {ADDR:#x}, {LEN:#x})"),
    (subject("recvfrom", 3, BUF, 16, 0, 0, 0, alias="recv"), f"recvfrom(3, {BUF:#x}, 16, 0, NULL, NULL)"),
    (subject("shutdown", 3, 1), "shutdown(3, SHUT_WR)"),
    (subject("shutdown", 3, 7), "shutdown(3, 0x7 /* SHUT_??? */)"),
    (Subject(Call("sendmsg", family=2, address=LOOPBACK_80), (4, ADDR, 0x4000), 4, 16,
             header=header(ADDR, 16)),
     f"sendmsg(4, {{msg_name={SOCKADDR_80}, msg_namelen=16, msg_iov={BUF:#x}, msg_iovlen=1, "
     f"msg_controllen=0, msg_flags=0}}, MSG_NOSIGNAL)"),
    (Subject(Call("sendmsg", alias="send"), (3, ADDR, 0), 3, 0, header=header(control=BUF, controllen=24)),
     f"sendmsg(3, {{msg_name=NULL, msg_namelen=0, msg_iov={BUF:#x}, msg_iovlen=1, "
     f"msg_control={BUF:#x}, msg_controllen=24, msg_flags=0}}, 0)"),
    (subject("recvmsg", 3, ADDR, 0x40), f"recvmsg(3, {ADDR:#x}, MSG_DONTWAIT)"),
    (Subject(Call("sendmmsg", family=2, address=LOOPBACK_80), (4, ADDR, 1, 0), 4, 16,
             header=header(ADDR, 16)),
     f"sendmmsg(4, [{{msg_hdr={{msg_name={SOCKADDR_80}, msg_namelen=16, msg_iov={BUF:#x}, "
     f"msg_iovlen=1, msg_controllen=0, msg_flags=0}}}}], 1, 0)"),
    (Subject(Call("sendmmsg", family=2, address=LOOPBACK_80), (4, ADDR, 2, 0), 4, 16,
             header=header(ADDR, 16)),
     f"sendmmsg(4, [{{msg_hdr={{msg_name={SOCKADDR_80}, msg_namelen=16, msg_iov={BUF:#x}, "
     f"msg_iovlen=1, msg_controllen=0, msg_flags=0}}}} /* the one decided, of 2 */], 2, 0)"),
    (subject("sendmmsg", 4, ADDR, 0, 0, alias="send"), f"sendmmsg(4, {ADDR:#x}, 0, 0)"),
    (subject("recvmmsg", 3, ADDR, 2, 0x40, BUF), f"recvmmsg(3, {ADDR:#x}, 2, MSG_DONTWAIT, {BUF:#x})"),
    (subject("recvmmsg", 3, ADDR, 2, 0, 0), f"recvmmsg(3, {ADDR:#x}, 2, 0, NULL)"),
]


@pytest.mark.pure
@pytest.mark.parametrize("call,expected", CALLS, ids=[expected for _, expected in CALLS])
def test_each_call_in_straces_notation(call, expected):
    assert format_call(call) == expected


@pytest.mark.pure
def test_every_socket_call_has_a_notation():
    from sandbox.names import SUBCALLS
    assert {call.call.name for call, _ in CALLS} == set(SUBCALLS)


@pytest.mark.pure
@pytest.mark.parametrize("address,expected", [
    (Inet6(ipaddress.IPv6Address("::1"), 443),
     '{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
     'inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}'),
    (Unix(path=b"/run/x.sock"), '{sa_family=AF_UNIX, sun_path="/run/x.sock"}'),
    (Unix(abstract=b"name\n"), '{sa_family=AF_UNIX, sun_path=@"name\\12"}'),
    (Netlink(0, 1), "{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000001}"),
])
def test_addresses_of_other_families(address, expected):
    call = Subject(Call("connect", family=address.family, address=address), (5, ADDR, 16), 5, 16)
    assert format_call(call) == f"connect(5, {expected}, 16)"


@pytest.mark.pure
def test_a_denial_line_says_the_errno_rule_pid_and_executable():
    call = Subject(Call("listen", exe="/usr/bin/nc"), (3, 5), 3)
    event = make_event(call, Verdict(Action.DENY, 13, None), 4242, "x86_64", "direct")
    assert format_text(event, call) == "sockbox: deny listen(3, 5) = -1 EACCES [default] pid 4242 /usr/bin/nc"


# --- from a real program ---------------------------------------------------------------------


@pytest.mark.parametrize("bits,via", [(64, "libc"), (32, "libc"), (32, "socketcall"), (64, "socketcall")])
def test_denial_lines_of_a_real_program(programs, tmp_path, bits, via):
    # netprobe's listen: socket, setsockopt(SO_REUSEADDR) (by libc), bind, listen, getsockname
    profile = write_profile(tmp_path, '[[rule]]\ncalls = ["socket", "bind"]\naction = "allow"\n')
    probe = programs("netprobe", bits)
    result = sockbox("run", "-p", profile, "--", probe, "--via", via, "listen", "127.0.0.1", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    setsockopt, listen = result.stderr.splitlines()
    calls, _, process = listen.partition(" [default] pid ")
    assert calls == "sockbox: deny listen(3, 5) = -1 EACCES"
    assert process.split(" ", 1)[1] == os.path.realpath(probe)
    assert setsockopt.startswith("sockbox: deny setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 0x")
    assert setsockopt.endswith(f", 4) = -1 EACCES [default] pid {process}")

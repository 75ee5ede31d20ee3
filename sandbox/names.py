"""Names and numbers of the Linux socket layer, both ways.

Profiles speak in names (``inet6``, ``stream``, ``tcp``), the kernel in numbers; every
translation between the two lives here so that the profile loader, the audit record
and ``explain`` agree on spelling.
"""

from __future__ import annotations

import errno as _errno

# socketcall(2) subcall numbers are the 1-based positions in this tuple (SYS_SOCKET=1 ...).
SUBCALLS: tuple[str, ...] = (
    "socket", "bind", "connect", "listen", "accept", "getsockname", "getpeername",
    "socketpair", "send", "recv", "sendto", "recvfrom", "shutdown", "setsockopt",
    "getsockopt", "sendmsg", "recvmsg", "accept4", "recvmmsg", "sendmmsg",
)

# AF_* from include/linux/socket.h, lower case without the prefix.
FAMILIES: dict[str, int] = {
    "unspec": 0, "unix": 1, "inet": 2, "ax25": 3, "ipx": 4, "appletalk": 5, "netrom": 6,
    "bridge": 7, "atmpvc": 8, "x25": 9, "inet6": 10, "rose": 11, "decnet": 12,
    "netbeui": 13, "security": 14, "key": 15, "netlink": 16, "packet": 17, "ash": 18,
    "econet": 19, "atmsvc": 20, "rds": 21, "sna": 22, "irda": 23, "pppox": 24,
    "wanpipe": 25, "llc": 26, "ib": 27, "mpls": 28, "can": 29, "tipc": 30,
    "bluetooth": 31, "iucv": 32, "rxrpc": 33, "isdn": 34, "phonet": 35,
    "ieee802154": 36, "caif": 37, "alg": 38, "nfc": 39, "vsock": 40, "kcm": 41,
    "qipcrtr": 42, "smc": 43, "xdp": 44, "mctp": 45,
}
FAMILY_ALIASES: dict[str, str] = {"local": "unix", "file": "unix", "route": "netlink"}
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 0, 1, 2, 10, 16

SOCK_TYPES: dict[str, int] = {
    "stream": 1, "dgram": 2, "raw": 3, "rdm": 4, "seqpacket": 5, "dccp": 6, "packet": 10,
}
SOCK_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC live above it
SOCK_STREAM, SOCK_DGRAM = 1, 2

# IPPROTO_* apply to inet and inet6 sockets; NETLINK_* are the protocols of AF_NETLINK.
_IP_PROTOCOLS: dict[str, int] = {
    "ip": 0, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "pup": 12, "udp": 17,
    "idp": 22, "tp": 29, "dccp": 33, "ipv6": 41, "rsvp": 46, "gre": 47, "esp": 50,
    "ah": 51, "mtp": 92, "beetph": 94, "encap": 98, "pim": 103,
    "comp": 108, "l2tp": 115, "sctp": 132, "udplite": 136, "mpls": 137,
    "ethernet": 143, "raw": 255, "mptcp": 262,
}
_NETLINK_PROTOCOLS: dict[str, int] = {
    "route": 0, "usersock": 2, "firewall": 3, "sock_diag": 4, "nflog": 5, "xfrm": 6,
    "selinux": 7, "iscsi": 8, "audit": 9, "fib_lookup": 10, "connector": 11,
    "netfilter": 12, "ip6_fw": 13, "dnrtmsg": 14, "kobject_uevent": 15, "generic": 16,
    "scsitransport": 18, "ecryptfs": 19, "rdma": 20, "crypto": 21, "smc": 22,
}
# A protocol name stands for a number within certain families: "tcp" is 6 on inet and
# inet6 sockets, "netlink_route" is 0 on netlink ones.
PROTOCOLS: dict[str, tuple[frozenset[int], int]] = {
    **{name: (frozenset({AF_INET, AF_INET6}), num) for name, num in _IP_PROTOCOLS.items()},
    "icmp": (frozenset({AF_INET}), 1),
    "icmpv6": (frozenset({AF_INET6}), 58),
    **{f"netlink_{name}": (frozenset({AF_NETLINK}), num)
       for name, num in _NETLINK_PROTOCOLS.items()},
}
IPPROTO_TCP, IPPROTO_UDP = 6, 17

MSG_FASTOPEN = 0x20000000

# Flags of socket(2)/accept4(2) that ride in the type argument.
_SOCK_FLAGS = {0o4000: "SOCK_NONBLOCK", 0o2000000: "SOCK_CLOEXEC"}


def default_protocol(family: int, sock_type: int) -> int:
    """The protocol the kernel picks when socket() is asked for protocol 0."""
    if family in (AF_INET, AF_INET6):
        return {SOCK_STREAM: IPPROTO_TCP, SOCK_DGRAM: IPPROTO_UDP}.get(sock_type, 0)
    return 0


def family_name(number: int) -> str:
    return _FAMILY_NAMES.get(number, str(number))


def type_name(number: int) -> str:
    return _TYPE_NAMES.get(number & SOCK_TYPE_MASK, str(number & SOCK_TYPE_MASK))


def protocol_name(family: int, number: int) -> str:
    for name, (families, num) in PROTOCOLS.items():
        if num == number and family in families and name != "ip":
            return name
    return str(number)


def errno_name(number: int) -> str:
    return _errno.errorcode.get(number, str(number))


def errno_number(name: str) -> int | None:
    """An errno by name ("EACCES"); None if Linux has no such name."""
    value = getattr(_errno, name, None) if name.startswith("E") else None
    return value if isinstance(value, int) else None


def af_constant(number: int) -> str:
    """strace's spelling of a family: AF_INET, AF_UNIX, or the bare number."""
    name = _FAMILY_NAMES.get(number)
    return f"AF_{name.upper()}" if name else str(number)


def sock_type_constant(value: int) -> str:
    """strace's spelling of socket()'s type argument, flags included."""
    base = value & SOCK_TYPE_MASK
    parts = [f"SOCK_{_TYPE_NAMES[base].upper()}" if base in _TYPE_NAMES else str(base)]
    rest = value & ~SOCK_TYPE_MASK
    for bit, name in _SOCK_FLAGS.items():
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


_FAMILY_NAMES = {number: name for name, number in FAMILIES.items()}
_TYPE_NAMES = {number: name for name, number in SOCK_TYPES.items()}

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
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET = 0, 1, 2, 10, 16, 17

SOCK_TYPES: dict[str, int] = {
    "stream": 1, "dgram": 2, "raw": 3, "rdm": 4, "seqpacket": 5, "dccp": 6, "packet": 10,
}
SOCK_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC live above it
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_PACKET = 1, 2, 3, 5, 10

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
IPPROTO_TCP, IPPROTO_UDP, IPPROTO_MPTCP = 6, 17, 262
IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE = 33, 132, 136
# The protocols whose packets go to the port the sockaddr names.
PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE,
                            IPPROTO_MPTCP})

# send and receive flags (linux/socket.h)
MSG_DONTWAIT = 0x40
MSG_EOR = 0x80
MSG_FASTOPEN = 0x20000000
MSG_CMSG_COMPAT = 0x80000000  # set by the kernel's compat entry; refused from a native one
# Every flag of send and receive calls, by value, as strace names them.
MSG_FLAGS: dict[int, str] = {
    0x1: "MSG_OOB", 0x2: "MSG_PEEK", 0x4: "MSG_DONTROUTE", 0x8: "MSG_CTRUNC", 0x10: "MSG_PROXY",
    0x20: "MSG_TRUNC", MSG_DONTWAIT: "MSG_DONTWAIT", MSG_EOR: "MSG_EOR", 0x100: "MSG_WAITALL",
    0x200: "MSG_FIN", 0x400: "MSG_SYN", 0x800: "MSG_CONFIRM", 0x1000: "MSG_RST",
    0x2000: "MSG_ERRQUEUE", 0x4000: "MSG_NOSIGNAL", 0x8000: "MSG_MORE",
    0x10000: "MSG_WAITFORONE", 0x40000: "MSG_BATCH", 0x4000000: "MSG_ZEROCOPY",
    MSG_FASTOPEN: "MSG_FASTOPEN", 0x40000000: "MSG_CMSG_CLOEXEC", MSG_CMSG_COMPAT: "MSG_CMSG_COMPAT",
}
SHUTDOWN_HOW = ("SHUT_RD", "SHUT_WR", "SHUT_RDWR")

# setsockopt/getsockopt levels (SOL_*, and IPPROTO_* where the protocol is the level).
SOCKOPT_LEVELS: dict[str, int] = {
    "ip": 0, "socket": 1, "tcp": 6, "udp": 17, "ipv6": 41, "icmpv6": 58, "sctp": 132,
    "udplite": 136, "raw": 255, "netlink": 270, "packet": 263, "alg": 279, "tls": 282,
    "xdp": 283, "mptcp": 284,
}
_OPTIONS_BY_LEVEL: dict[int, dict[str, int]] = {
    1: {  # SOL_SOCKET (asm-generic/socket.h)
        "so_debug": 1, "so_reuseaddr": 2, "so_type": 3, "so_error": 4, "so_dontroute": 5,
        "so_broadcast": 6, "so_sndbuf": 7, "so_rcvbuf": 8, "so_keepalive": 9, "so_oobinline": 10,
        "so_no_check": 11, "so_priority": 12, "so_linger": 13, "so_bsdcompat": 14,
        "so_reuseport": 15, "so_passcred": 16, "so_peercred": 17, "so_rcvlowat": 18,
        "so_sndlowat": 19, "so_rcvtimeo_old": 20, "so_sndtimeo_old": 21, "so_bindtodevice": 25,
        "so_attach_filter": 26, "so_detach_filter": 27, "so_peername": 28,
        "so_timestamp_old": 29, "so_acceptconn": 30, "so_peersec": 31, "so_sndbufforce": 32,
        "so_rcvbufforce": 33, "so_passsec": 34, "so_timestampns_old": 35, "so_mark": 36,
        "so_timestamping_old": 37, "so_protocol": 38, "so_domain": 39, "so_rxq_ovfl": 40,
        "so_wifi_status": 41, "so_peek_off": 42, "so_nofcs": 43, "so_lock_filter": 44,
        "so_select_err_queue": 45, "so_busy_poll": 46, "so_max_pacing_rate": 47,
        "so_bpf_extensions": 48, "so_incoming_cpu": 49, "so_attach_bpf": 50,
        "so_attach_reuseport_cbpf": 51, "so_attach_reuseport_ebpf": 52, "so_cnx_advice": 53,
        "so_meminfo": 55, "so_incoming_napi_id": 56, "so_cookie": 57, "so_peergroups": 59,
        "so_zerocopy": 60, "so_txtime": 61, "so_bindtoifindex": 62, "so_timestamp_new": 63,
        "so_timestampns_new": 64, "so_timestamping_new": 65, "so_rcvtimeo_new": 66,
        "so_sndtimeo_new": 67, "so_detach_reuseport_bpf": 68, "so_prefer_busy_poll": 69,
        "so_busy_poll_budget": 70, "so_netns_cookie": 71, "so_buf_lock": 72,
        "so_reserve_mem": 73, "so_txrehash": 74, "so_rcvmark": 75,
    },
    0: {  # IPPROTO_IP (linux/in.h)
        "ip_tos": 1, "ip_ttl": 2, "ip_hdrincl": 3, "ip_options": 4, "ip_router_alert": 5,
        "ip_recvopts": 6, "ip_retopts": 7, "ip_pktinfo": 8, "ip_pktoptions": 9,
        "ip_mtu_discover": 10, "ip_recverr": 11, "ip_recvttl": 12, "ip_recvtos": 13,
        "ip_mtu": 14, "ip_freebind": 15, "ip_ipsec_policy": 16, "ip_xfrm_policy": 17,
        "ip_passsec": 18, "ip_transparent": 19, "ip_origdstaddr": 20, "ip_minttl": 21,
        "ip_nodefrag": 22, "ip_checksum": 23, "ip_bind_address_no_port": 24,
        "ip_recvfragsize": 25, "ip_recverr_rfc4884": 26, "ip_multicast_if": 32,
        "ip_multicast_ttl": 33, "ip_multicast_loop": 34, "ip_add_membership": 35,
        "ip_drop_membership": 36, "ip_unblock_source": 37, "ip_block_source": 38,
        "ip_add_source_membership": 39, "ip_drop_source_membership": 40,
        "ip_msfilter": 41, "ip_multicast_all": 49, "ip_unicast_if": 50,
    },
    41: {  # IPPROTO_IPV6 (linux/in6.h)
        "ipv6_addrform": 1, "ipv6_2292pktinfo": 2, "ipv6_2292hopopts": 3,
        "ipv6_2292dstopts": 4, "ipv6_2292rthdr": 5, "ipv6_2292pktoptions": 6,
        "ipv6_checksum": 7, "ipv6_2292hoplimit": 8, "ipv6_nexthop": 9, "ipv6_authhdr": 10,
        "ipv6_flowinfo": 11, "ipv6_unicast_hops": 16, "ipv6_multicast_if": 17,
        "ipv6_multicast_hops": 18, "ipv6_multicast_loop": 19, "ipv6_add_membership": 20,
        "ipv6_drop_membership": 21, "ipv6_router_alert": 22, "ipv6_mtu_discover": 23,
        "ipv6_mtu": 24, "ipv6_recverr": 25, "ipv6_v6only": 26, "ipv6_join_anycast": 27,
        "ipv6_leave_anycast": 28, "ipv6_multicast_all": 29, "ipv6_router_alert_isolate": 30,
        "ipv6_recverr_rfc4884": 31, "ipv6_flowlabel_mgr": 32, "ipv6_flowinfo_send": 33,
        "ipv6_ipsec_policy": 34, "ipv6_xfrm_policy": 35, "ipv6_hdrincl": 36,
        "ipv6_recvpktinfo": 49, "ipv6_pktinfo": 50, "ipv6_recvhoplimit": 51,
        "ipv6_hoplimit": 52, "ipv6_recvhopopts": 53, "ipv6_hopopts": 54,
        "ipv6_rthdrdstopts": 55, "ipv6_recvrthdr": 56, "ipv6_rthdr": 57,
        "ipv6_recvdstopts": 58, "ipv6_dstopts": 59, "ipv6_recvpathmtu": 60,
        "ipv6_pathmtu": 61, "ipv6_dontfrag": 62, "ipv6_recvtclass": 66, "ipv6_tclass": 67,
        "ipv6_autoflowlabel": 70, "ipv6_addr_preferences": 72, "ipv6_minhopcount": 73,
        "ipv6_origdstaddr": 74, "ipv6_transparent": 75, "ipv6_unicast_if": 76,
        "ipv6_recvfragsize": 77, "ipv6_freebind": 78,
    },
    6: {  # IPPROTO_TCP (linux/tcp.h)
        "tcp_nodelay": 1, "tcp_maxseg": 2, "tcp_cork": 3, "tcp_keepidle": 4,
        "tcp_keepintvl": 5, "tcp_keepcnt": 6, "tcp_syncnt": 7, "tcp_linger2": 8,
        "tcp_defer_accept": 9, "tcp_window_clamp": 10, "tcp_info": 11, "tcp_quickack": 12,
        "tcp_congestion": 13, "tcp_md5sig": 14, "tcp_thin_linear_timeouts": 16,
        "tcp_thin_dupack": 17, "tcp_user_timeout": 18, "tcp_repair": 19,
        "tcp_repair_queue": 20, "tcp_queue_seq": 21, "tcp_repair_options": 22,
        "tcp_fastopen": 23, "tcp_timestamp": 24, "tcp_notsent_lowat": 25, "tcp_cc_info": 26,
        "tcp_save_syn": 27, "tcp_saved_syn": 28, "tcp_repair_window": 29,
        "tcp_fastopen_connect": 30, "tcp_ulp": 31, "tcp_md5sig_ext": 32,
        "tcp_fastopen_key": 33, "tcp_fastopen_no_cookie": 34, "tcp_zerocopy_receive": 35,
        "tcp_inq": 36, "tcp_tx_delay": 37,
    },
    132: {  # IPPROTO_SCTP (linux/sctp.h): the options that name addresses
        "sctp_set_peer_primary_addr": 5, "sctp_primary_addr": 6, "sctp_sockopt_bindx_add": 100,
        "sctp_sockopt_bindx_rem": 101, "sctp_sockopt_peeloff": 102,
        "sctp_sockopt_connectx_old": 107, "sctp_get_peer_addrs": 108, "sctp_get_local_addrs": 109,
        "sctp_sockopt_connectx": 110, "sctp_sockopt_connectx3": 111,
    },
}
# An option name stands for its level and number: "ip_options" is (0, 4).
SOCKET_OPTIONS: dict[str, tuple[int, int]] = {
    name: (level, number) for level, table in _OPTIONS_BY_LEVEL.items() for name, number in table.items()
}

# Flags of socket(2)/accept4(2) that ride in the type argument (in strace's order).
_SOCK_FLAGS = {0o2000000: "SOCK_CLOEXEC", 0o4000: "SOCK_NONBLOCK"}


def default_protocol(family: int, sock_type: int) -> int:
    """The protocol the kernel picks when socket() is asked for protocol 0."""
    if family in (AF_INET, AF_INET6):
        return {SOCK_STREAM: IPPROTO_TCP, SOCK_DGRAM: IPPROTO_UDP}.get(sock_type, 0)
    return 0


def created_family(family: int, sock_type: int) -> int:
    """The family the kernel makes a socket in: socket(AF_INET, SOCK_PACKET) is the
    obsolete spelling of a packet socket, and gets one (__sock_create)."""
    return AF_PACKET if family == AF_INET and sock_type & SOCK_TYPE_MASK == SOCK_PACKET else family


def family_name(number: int) -> str:
    return _FAMILY_NAMES.get(number, str(number))


def type_name(number: int) -> str:
    return _TYPE_NAMES.get(number & SOCK_TYPE_MASK, str(number & SOCK_TYPE_MASK))


def protocol_name(family: int, number: int) -> str:
    for name, (families, num) in PROTOCOLS.items():
        if num == number and family in families and name != "ip":
            return name
    return str(number)


def level_name(number: int) -> str:
    return _LEVEL_NAMES.get(number, str(number))


def option_name(level: int, number: int) -> str:
    return _OPTION_NAMES.get((level, number), str(number))


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
    kind = f"SOCK_{_TYPE_NAMES[base].upper()}" if base in _TYPE_NAMES else str(base)
    flags = value & ~SOCK_TYPE_MASK
    return kind if flags == 0 else f"{kind}|{flags_constant(flags, _SOCK_FLAGS)}"


def flags_constant(value: int, table: dict[int, str]) -> str:
    """strace's spelling of a flags word: the names of its bits in the table's order, then
    any bits left in hex; 0 alone."""
    parts, rest = [], value
    for bit, name in table.items():
        if value & bit:
            parts.append(name)
            rest &= ~bit
    if rest or not parts:
        parts.append(hex(rest) if rest else "0")
    return "|".join(parts)


def sock_flags_constant(value: int) -> str:
    """accept4(2)'s flags: SOCK_CLOEXEC|SOCK_NONBLOCK, or 0."""
    return flags_constant(value, _SOCK_FLAGS)


def msg_flags_constant(value: int) -> str:
    """A send or receive call's flags: MSG_DONTWAIT|MSG_NOSIGNAL, or 0."""
    return flags_constant(value, MSG_FLAGS)


def level_constant(level: int) -> str:
    """strace's spelling of a socket option's level: SOL_SOCKET, SOL_TCP; an unknown
    level in hex, said to be one."""
    name = _LEVEL_NAMES.get(level)
    return f"SOL_{name.upper()}" if name else f"{level:#x} /* SOL_?? */"


def option_constant(level: int, option: int) -> str:
    """strace's spelling of a socket option: TCP_NODELAY, SO_REUSEADDR, or the number."""
    name = _OPTION_NAMES.get((level, option))
    return name.upper() if name else str(option)


def shutdown_constant(how: int) -> str:
    """shutdown(2)'s how (as an unsigned word): SHUT_RD, SHUT_WR, SHUT_RDWR; another in
    hex, said to be none."""
    return SHUTDOWN_HOW[how] if how < len(SHUTDOWN_HOW) else f"{how:#x} /* SHUT_??? */"


_FAMILY_NAMES = {number: name for name, number in FAMILIES.items()}
_LEVEL_NAMES = {number: name for name, number in SOCKOPT_LEVELS.items()}
_OPTION_NAMES = {pair: name for name, pair in SOCKET_OPTIONS.items()}
_TYPE_NAMES = {number: name for name, number in SOCK_TYPES.items()}

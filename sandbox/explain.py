"""`sockbox explain`: a concrete call from the command line's words."""

from __future__ import annotations

import ipaddress

from .decode import Inet4, Inet6, Unix
from .errors import UsageError
from .names import SOCK_DGRAM, SOCK_STREAM, SUBCALLS
from .profile import parse_family, parse_protocol, parse_target, parse_type
from .rules import PLAIN_ALIAS, Call


def explain_call(name: str, target: str | None, family: str | None, sock_type: str | None,
                 protocol: str | None, exe: str | None) -> Call:
    if name not in SUBCALLS:
        raise UsageError(f"unknown call {name!r}; one of: {', '.join(SUBCALLS)}")
    try:
        call = Call(
            name,
            family=parse_family(family) if family else None,
            type=parse_type(sock_type) if sock_type else None,
            protocol=parse_protocol(protocol).number if protocol else None,
            exe=exe,
        )
        if target is None:
            return Call(**{**call.__dict__, "alias": PLAIN_ALIAS.get(name)})
        return _with_target(call, parse_target(target), target)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _with_target(call: Call, conditions: dict, text: str) -> Call:
    fields = dict(call.__dict__)
    if "family" in conditions:
        (fields["family"],) = conditions["family"]
    elif "path" in conditions:
        (glob,) = conditions["path"]
        fields.update(family=1, address=Unix(path=glob.pattern.encode()), path=glob.pattern)
    elif "abstract" in conditions:
        (glob,) = conditions["abstract"]
        fields.update(family=1, address=Unix(abstract=glob.pattern.encode()))
    else:
        networks, ports = conditions.get("address"), conditions.get("port")
        if not networks or not ports or networks[0].num_addresses != 1 or len(ports) != 1 \
                or ports[0].low != ports[0].high:
            raise UsageError(f"target {text!r}: explain needs one address and one port, like 1.2.3.4:443")
        ip = networks[0].network_address
        address = (Inet4(ip, ports[0].low) if isinstance(ip, ipaddress.IPv4Address)
                   else Inet6(ip, ports[0].low))
        fields.update(family=address.family, address=address)
        if fields["type"] is None:  # the usual socket for the call: TCP, or UDP for a send
            fields["type"] = SOCK_DGRAM if call.name in ("sendto", "sendmsg", "sendmmsg") else SOCK_STREAM
    return Call(**fields)

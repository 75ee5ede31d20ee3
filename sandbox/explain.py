"""`sockbox explain`: a concrete call from the command line's words, or a path's access."""

from __future__ import annotations

import ipaddress
import os

from .confine import IMPLICIT_DEVICES
from .decode import Inet4, Inet6, Unix
from .domain import ancestry, resolve
from .errors import UsageError
from .names import SOCK_DGRAM, SOCK_STREAM, SUBCALLS
from .profile import Profile, parse_family, parse_protocol, parse_target, parse_type
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


# `sockbox explain -p PROFILE read|write PATH`: what [filesystem] lets a program do there.
PATH_ACCESSES = ("read", "write")


def explain_path(profile: Profile, access: str, path: str | None) -> tuple[bool, str]:
    """Whether the profile lets a sandboxed program `access` (read, which includes
    executing, or write, which includes creating) `path`, and which entry decides it.
    A path that does not exist is judged where it would be created."""
    if path is None:
        raise UsageError(f"explain {access} needs a PATH")
    filesystem = profile.filesystem
    if filesystem is None:
        return True, f"allow ({profile.source} has no [filesystem]: files are not confined)"
    resolved, opened = resolve(filesystem, None, 0)
    for _, fd, _ in opened:
        os.close(fd)
    target, missing = _nearest(path)
    try:
        identities = list(ancestry(target))
        device = None if missing else _implicit_device(identities[0])
    finally:
        os.close(target)
    if device is not None:
        return True, f"allow (always: {device})"
    grant = resolved.grant_beneath(identities, write=access == "write")
    if grant is None:
        kinds = "filesystem.write" if access == "write" else "filesystem.read or filesystem.write"
        return False, f"deny EACCES (beneath no path of {kinds})"
    return True, f"allow ({grant.where}: {grant.path})"


def _nearest(path: str) -> tuple[int, bool]:
    """An O_PATH descriptor for `path` (symlinks followed) or, where it does not
    exist, for the nearest directory above it that does; and whether it was missing."""
    candidate, missing = os.path.abspath(path), False
    while True:
        try:
            return os.open(candidate, os.O_PATH | os.O_CLOEXEC), missing
        except FileNotFoundError:
            candidate, missing = os.path.dirname(candidate), True
        except OSError as error:
            raise UsageError(f"{path}: {error.strerror}") from None


def _implicit_device(identity: tuple[int, int]) -> str | None:
    for device in IMPLICIT_DEVICES:
        try:
            info = os.stat(device)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == identity:
            return device
    return None

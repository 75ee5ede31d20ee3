"""Where a unix socket is bound in the filesystem, as the kernel itself says (sock_diag).

A bind made with the program's own path string can be checked afterwards: the file the
socket was bound at must be the one the judged directory holds under the judged name.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import NamedTuple

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
UDIAG_SHOW_VFS = 0x2
UNIX_DIAG_VFS = 1
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_REQUEST = struct.Struct("=BBHIIIII")  # struct unix_diag_req
_REPLY_SIZE = 16  # struct unix_diag_msg


class File(NamedTuple):
    """A file as sock_diag names it."""

    device: tuple[int, int]  # major, minor
    inode: int  # its low 32 bits

    @classmethod
    def of(cls, stat: os.stat_result) -> File:
        return cls((os.major(stat.st_dev), os.minor(stat.st_dev)), stat.st_ino & 0xFFFFFFFF)


def bound_file(sock_fd: int) -> File | None:
    """The file the unix socket is bound at; None if it is bound at none (unbound, or an
    abstract name). Raises OSError where sock_diag cannot say (no unix_diag in the
    kernel, or the socket is of another network namespace than ours)."""
    request = _REQUEST.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, os.fstat(sock_fd).st_ino,
                            UDIAG_SHOW_VFS, _NO_COOKIE, _NO_COOKIE)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_SOCK_DIAG) as netlink:
        netlink.send(_HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY,
                                  NLM_F_REQUEST, 1, 0) + request)
        reply = netlink.recv(8192)
    length, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", reply, _HEADER.size)
        raise OSError(-error, os.strerror(-error))
    offset = _HEADER.size + _REPLY_SIZE
    while offset + 4 <= min(length, len(reply)):
        attribute_length, attribute = struct.unpack_from("=HH", reply, offset)
        if attribute_length < 4:
            break
        if attribute == UNIX_DIAG_VFS:
            inode, device = struct.unpack_from("=II", reply, offset + 4)
            # The kernel's own dev_t: 12 bits of major above 20 of minor.
            return File((device >> 20, device & 0xFFFFF), inode)
        offset += (attribute_length + 3) & ~3
    return None


def can_tell(sock_fd: int) -> bool:
    """Whether bound_file will answer for this socket."""
    try:
        bound_file(sock_fd)
        return True
    except OSError:
        return False

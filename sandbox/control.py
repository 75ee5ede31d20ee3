"""Control messages of a send the supervisor performs: copied as the kernel copies them.

A native program's control data is handed over as it was laid out, patched in place; an
i386 program's is rebuilt in the native layout, walking it as the kernel's compat code
walks it. Either way, descriptors passed (SCM_RIGHTS) become the supervisor's copies of
them, a sender's pid (SCM_CREDENTIALS) becomes the supervisor's, and messages that
would route the datagram through hosts of the sender's choosing are refused.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import struct
from dataclasses import dataclass

from .abi import Abi
from .errors import Malformed
from .tracee import StopContext

SOL_SOCKET, SCM_RIGHTS, SCM_CREDENTIALS = 1, 1, 2
SOL_IP, IP_RETOPTS = 0, 7
SOL_IPV6, IPV6_2292RTHDR, IPV6_NEXTHOP, IPV6_RTHDR = 41, 5, 9, 57
SOL_SCTP, SCTP_DSTADDRV4, SCTP_DSTADDRV6 = 132, 7, 8
# Control messages that send a datagram elsewhere than its judged destination: through
# hosts of the sender's choosing (IPv4 source routing, IPv6 routing headers, segment
# routing among them, a next hop), or to an SCTP destination of their own.
_REFUSED = {(SOL_IP, IP_RETOPTS), (SOL_IPV6, IPV6_2292RTHDR), (SOL_IPV6, IPV6_RTHDR),
            (SOL_IPV6, IPV6_NEXTHOP), (SOL_SCTP, SCTP_DSTADDRV4), (SOL_SCTP, SCTP_DSTADDRV6)}


@functools.cache
def max_control() -> int:
    """Control data beyond net.core.optmem_max fails with ENOBUFS."""
    try:
        with open("/proc/sys/net/core/optmem_max") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return 20480  # the kernel's default for long



@dataclass(frozen=True)
class Control:
    """Control data in the native layout, ready for the kernel but for the pid of whoever
    sends it, to be written at each offset in `pid_at` (SCM_CREDENTIALS)."""

    data: bytes = b""
    pid_at: tuple[int, ...] = ()

    def for_sender(self) -> bytes:
        data = bytearray(self.data)
        for offset in self.pid_at:
            data[offset:offset + 4] = struct.pack("=i", os.getpid())
        return bytes(data)


_NATIVE_CMSG = struct.Struct("=Qii")
_COMPAT_CMSG = struct.Struct("=Iii")
_STACK_CONTROL = 36  # ____sys_sendmsg's own buffer for control data, in bytes


def read_control(pointer: int, length: int, abi: Abi, stop: StopContext, memory) -> Control:
    """The control messages, copied as ____sys_sendmsg copies them, with the descriptors
    passed (SCM_RIGHTS) turned into the supervisor's copies and routing headers refused."""
    if length == 0:
        return Control()
    if length > 0x7FFFFFFF:
        raise Malformed(errno.ENOBUFS, f"msg_controllen {length}")
    if abi is not Abi.X86_64:
        return _compat_control(pointer, length, stop, memory)
    # Copied whole, from a buffer of the socket's option memory when the stack's is too
    # small: EFAULT where unreadable (even from NULL), ENOBUFS past optmem_max.
    if not _fits_option_memory(length):
        raise Malformed(errno.ENOBUFS, f"msg_controllen {length}")
    return _native_control(bytearray(memory.read(pointer, length)), stop)


def _fits_option_memory(length: int) -> bool:
    """Whether ____sys_sendmsg gets a buffer of `length` bytes: from its stack, or from
    sock_kmalloc(), which grants less than net.core.optmem_max."""
    return length <= _STACK_CONTROL or length < max_control()


def _native_control(raw: bytearray, stop: StopContext) -> Control:
    """Left as the program laid it out, so that the protocol judges it where it would;
    patched in place, walking it exactly as for_each_cmsghdr() does: the kernel acts on
    no message this walk does not reach, so none is left with the program's numbers."""
    pid_at = []
    offset = 0
    while offset + _NATIVE_CMSG.size <= len(raw):
        cmsg_len, level, kind = _NATIVE_CMSG.unpack_from(raw, offset)
        if cmsg_len < _NATIVE_CMSG.size or cmsg_len > len(raw) - offset:
            break  # not CMSG_OK: the kernel refuses the call here (EINVAL)
        data_at = offset + _NATIVE_CMSG.size
        pid_at += _translate(raw, data_at, offset + cmsg_len, level, kind, stop)
        offset += (cmsg_len + 7) // 8 * 8
    return Control(bytes(raw), tuple(pid_at))


def _compat_control(pointer: int, length: int, stop: StopContext, memory) -> Control:
    """An i386 program's control data, rebuilt in the native layout as
    cmsghdr_from_user_compat_to_kern() rebuilds it: a first walk over the headers' lengths
    (EINVAL at a bad one, or when there is none), then ENOMEM when the native layout
    outgrows option memory, then the copy (EFAULT)."""
    spans = _compat_spans(pointer, length, memory)
    if spans is None:
        raise Malformed(errno.ENOMEM, "control data beyond option memory")
    out = bytearray()
    pid_at: list[int] = []
    for offset, cmsg_len in spans:
        raw = memory.read(pointer + offset, cmsg_len)
        _, level, kind = _COMPAT_CMSG.unpack_from(raw)
        data = raw[_COMPAT_CMSG.size:]
        start = len(out)
        out += _NATIVE_CMSG.pack(socket.CMSG_LEN(len(data)), level, kind) + data
        pid_at += _translate(out, start + _NATIVE_CMSG.size, len(out), level, kind, stop)
        out += b"\0" * (socket.CMSG_SPACE(len(data)) - socket.CMSG_LEN(len(data)))
    return Control(bytes(out), tuple(pid_at))


def _compat_spans(pointer: int, length: int, memory) -> list[tuple[int, int]] | None:
    """Where each compat header starts and how long it says it is, walked as the kernel
    walks them: from the first while a header fits (and the pointer is not NULL), on to
    any next one that starts within msg_controllen, even if it would not fit there.
    None where the native layout would outgrow option memory: the walk goes on to the
    end, for the EINVAL that comes first, but keeps nothing more."""
    spans: list[tuple[int, int]] | None = []
    headers, native_length = 0, 0
    offset = 0
    window, window_at = b"", 0
    walking = length >= _COMPAT_CMSG.size and pointer != 0
    while walking:
        if not window_at <= offset <= window_at + len(window) - 4:
            # Read ahead, for a walk over many headers; where that faults, the one field.
            window_at = offset
            try:
                window = memory.read(pointer + offset, max(4, min(length - offset, 1 << 16)))
            except Malformed:
                window = memory.read(pointer + offset, 4)
        (cmsg_len,) = struct.unpack_from("=I", window, offset - window_at)
        if not _COMPAT_CMSG.size <= cmsg_len <= length - offset:
            raise Malformed(errno.EINVAL, f"cmsg_len {cmsg_len} at offset {offset}")
        headers += 1
        if spans is not None:
            native_length += socket.CMSG_SPACE(cmsg_len - _COMPAT_CMSG.size)
            if _fits_option_memory(native_length):
                spans.append((offset, cmsg_len))
            else:
                spans = None
        offset += (cmsg_len + 3) // 4 * 4
        walking = offset < length
    if not headers:
        raise Malformed(errno.EINVAL, "no control message")
    return spans


def _translate(buffer: bytearray, start: int, end: int, level: int, kind: int,
               stop: StopContext) -> list[int]:
    """Patch one control message in place; return where a sender's pid goes."""
    if (level, kind) in _REFUSED:
        raise Malformed(errno.EPERM, "a control message that reroutes the datagram")
    if (level, kind) == (SOL_SOCKET, SCM_RIGHTS):
        for at in range(start, end - 3, 4):
            (fd,) = struct.unpack_from("=i", buffer, at)
            try:
                ours = stop.descriptor(fd)
            except Malformed:
                ours = -1  # the kernel finds it bad (EBADF) where it looks
            struct.pack_into("=i", buffer, at, ours)
    if (level, kind) == (SOL_SOCKET, SCM_CREDENTIALS) and end - start >= 12:
        return [start]
    return []

"""The wire between the Python API and its supervisor process (sandbox/worker.py).

Caller to supervisor: frames (a length, then a pickle) on a socket the caller made and
only the supervisor process inherited, each with the descriptors it hands over. Back:
JSON lines, so that the caller never unpickles what a process near the sandbox wrote.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .profile import Profile
from .rules import Rule

_LENGTH = struct.Struct("!Q")
MAX_FDS = 8  # a run hands over its channel, stdin, stdout and stderr


@dataclass(frozen=True)
class Setup:
    """What a supervisor process serves: runs under this profile (hosts resolved)."""

    profile: Profile


@dataclass(frozen=True)
class Request:
    """One run. Its channel, stdin, stdout and stderr travel with it, in that order."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        # A profile and its rules travel as their fields: what they remembered
        # (decisions, compiled conditions) stays behind and is rebuilt on demand.
        if type(obj) in (Profile, Rule):
            return type(obj), tuple(getattr(obj, f.name) for f in dataclasses.fields(obj))
        return NotImplemented


def dumps(message: Setup | Request) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    return buffer.getvalue()


def send_frame(sock: socket.socket, payload: bytes, fds: Sequence[int] = ()) -> None:
    """Send `payload` (what `dumps` made) and `fds`."""
    data = _LENGTH.pack(len(payload)) + payload
    sent = socket.send_fds(sock, [data], list(fds)) if fds else 0
    if sent < len(data):  # not even an empty send after: the reader may be gone, done
        sock.sendall(memoryview(data)[sent:])


def receive_frame(sock: socket.socket) -> tuple[bytes, list[int]] | None:
    """The next frame's pickle and descriptors; None at the end of the stream."""
    header, fds = _receive(sock, _LENGTH.size)
    if not header:
        return None
    payload, more = _receive(sock, _LENGTH.unpack(header)[0])
    return payload, fds + more


def _receive(sock: socket.socket, size: int) -> tuple[bytes, list[int]]:
    """`size` bytes, or none where the stream ends before them."""
    data, fds = bytearray(), []
    while len(data) < size:
        chunk, received, flags, _ = socket.recv_fds(sock, size - len(data), MAX_FDS,
                                                     socket.MSG_CMSG_CLOEXEC)
        fds += received
        if flags & socket.MSG_CTRUNC:
            raise ConnectionError("more descriptors than a frame carries")
        if not chunk:
            if data:
                raise ConnectionError("the stream ended within a frame")
            break
        data += chunk
    return bytes(data), fds


def line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record) + "\n").encode()


class LineReader:
    """JSON lines and descriptors as they arrive on a stream socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fds: list[int] = []
        self._pending = b""

    def read(self) -> list[dict[str, Any]] | None:
        """The lines completed by what one receive brought; None at the end."""
        chunk, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, MAX_FDS, socket.MSG_CMSG_CLOEXEC)
        self.fds += fds
        if not chunk:
            return None
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [json.loads(text) for text in lines]

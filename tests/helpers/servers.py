"""Servers on loopback that record what reached them."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TcpServer:
    """Accepts on loopback, records what each connection sent, answers "pong"."""

    family: int = socket.AF_INET
    host: str = "127.0.0.1"
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.socket(self.family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.host, 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                data = conn.recv(4096)
                self.received.append(data)
                conn.sendall(b"pong")
            except OSError:
                self.received.append(b"")

    def close(self) -> None:
        self.listener.close()


class SecretServer(TcpServer):
    """Accepts on loopback and sends "secret" over and over on every connection."""

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(b"secret" * 20000)
                while data := conn.recv(4096):
                    self.received.append(data)
            except OSError:
                pass


@dataclass
class UdpServer:
    """A bound loopback datagram socket; `collect` returns what reached it."""

    family: int = socket.AF_INET
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.port = self.sock.getsockname()[1]

    def collect(self, quiet_for: float = 0.3) -> list[bytes]:
        """Every datagram queued so far, and any arriving until `quiet_for` passes
        without one. Loopback queues a datagram before sendto() returns, so after the
        sender exited everything it sent is here."""
        datagrams = []
        self.sock.settimeout(quiet_for)
        while True:
            try:
                datagrams.append(self.sock.recv(65536))
            except TimeoutError:
                return datagrams

    def close(self) -> None:
        self.sock.close()


@dataclass
class UnixServer:
    """A unix stream server at a filesystem path or an abstract name."""

    address: str | bytes
    received: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                try:
                    self.received.append(conn.recv(4096))
                    conn.sendall(b"pong")
                except OSError:  # the client left first
                    pass

    def close(self) -> None:
        self.listener.close()

"""A stand-in for an API host, in the network namespace it runs in: a DNS server at
127.0.0.1:53 that answers NAME's A query with 127.0.0.1 (and any other query with no
address), and an HTTPS server at 127.0.0.1:443 with CERT and KEY that answers every GET
with "hello". Prints "ready" once both listen; runs until killed.

    python api_host.py NAME CERT KEY

tests/test_containers.py runs the example profile against it.
"""

import socket
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


def answer(query: bytes, name: bytes) -> bytes:
    """The response to one DNS query: an A record of 127.0.0.1 if it asks for `name`'s."""
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    (kind,) = struct.unpack("!H", query[end + 1:end + 3])
    record = b""
    if kind == 1 and query[12:end + 1] == name:  # A, for the name (compressed: offset 12)
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    header = struct.pack("!HHHHHH", struct.unpack("!H", query[:2])[0], 0x8180, 1, int(bool(record)), 0, 0)
    return header + question + record


def main() -> None:
    name, cert, key = sys.argv[1:]
    wire_name = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    https = ThreadingHTTPServer(("127.0.0.1", 443), Hello)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    threading.Thread(target=https.serve_forever, daemon=True).start()
    print("ready", flush=True)
    while True:
        query, peer = dns.recvfrom(512)
        dns.sendto(answer(query, wire_name), peer)


if __name__ == "__main__":
    main()

"""Run a command beside real servers on the loopback of a network namespace (the tests
give it one of its own): DNS on port 53 (UDP and TCP, answering every A query with
192.0.2.99), HTTP on port 80 and 8080, on 127.0.0.1 and ::1 (HTTP on every IPv4
address of the namespace).

    python loopback_servers.py [--dns-after SECONDS] REPORT -- COMMAND...

--dns-after starts the DNS servers that long after the command (a resolver that is late).

REPORT gets a JSON object: the command's status, stdout and stderr, and how many DNS
queries and HTTP requests the servers answered.
"""

import http.server
import json
import socket
import socketserver
import struct
import subprocess
import sys
import threading

ANSWER = socket.inet_aton("192.0.2.99")
served = {"dns": 0, "http": 0}


def dns_reply(query: bytes) -> bytes:
    """The query with one A record answering its first question."""
    ident, flags = struct.unpack_from("!HH", query)
    end = 12
    while query[end]:
        end += query[end] + 1
    question = query[12:end + 5]
    header = struct.pack("!HHHHHH", ident, 0x8180 | (flags & 0x0100), 1, 1, 0, 0)
    record = struct.pack("!HHHLH", 0xC00C, 1, 1, 60, 4) + ANSWER
    served["dns"] += 1
    return header + question + record


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(dns_reply(data), self.client_address)


class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        (length,) = struct.unpack("!H", self.rfile.read(2))
        reply = dns_reply(self.rfile.read(length))
        self.wfile.write(struct.pack("!H", len(reply)) + reply)


class Http(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        served["http"] += 1
        body = b"hello from loopback\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(kind, handler, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("Server", (kind,), {"address_family": family, "allow_reuse_address": True,
                                            "daemon_threads": True})
    server = server_class((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_dns():
    for host in ("127.0.0.1", "::1"):
        serve(socketserver.ThreadingUDPServer, Udp, host, 53)
        serve(socketserver.ThreadingTCPServer, Tcp, host, 53)


def main():
    arguments = sys.argv[1:]
    dns_after = float(arguments[1]) if arguments[0] == "--dns-after" else None
    report, separator, *command = arguments[2:] if dns_after is not None else arguments
    assert separator == "--" and command, __doc__
    for host in ("0.0.0.0", "::1"):
        serve(http.server.ThreadingHTTPServer, Http, host, 80)
        serve(http.server.ThreadingHTTPServer, Http, host, 8080)
    if dns_after is None:
        serve_dns()
    else:
        threading.Timer(dns_after, serve_dns).start()
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    with open(report, "w") as out:
        json.dump({"status": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
                   **served}, out)


if __name__ == "__main__":
    main()

"""Run a command beside sockets listening at port 4242 of 127.0.0.1 and ::1, TCP and
UDP, and count what reached them; in a network namespace of its own, with loopback up:

    unshare --net sh -c 'ip link set lo up && exec "$@"' - python reach.py REPORT -- COMMAND...

The command's output passes through; REPORT gets a JSON object with the command's exit
status, the connections accepted and the datagrams received. The fuzz tests use it to
see, from outside the sandbox, whether a denied destination was reached.
"""

import json
import socket
import subprocess
import sys

PORT = 4242


def listeners() -> list[socket.socket]:
    sockets = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            sock = socket.socket(family, kind)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, PORT))
            if kind == socket.SOCK_STREAM:
                sock.listen(4096)
            sock.setblocking(False)
            sockets.append(sock)
    return sockets


def drained(sock: socket.socket) -> int:
    """How many connections wait to be accepted, or datagrams to be read."""
    count = 0
    while True:
        try:
            if sock.type == socket.SOCK_STREAM:
                sock.accept()[0].close()
            else:
                sock.recv(65536)
        except BlockingIOError:
            return count
        count += 1


def main() -> None:
    report, separator, *command = sys.argv[1:]
    assert separator == "--" and command, __doc__
    sockets = listeners()
    status = subprocess.run(command).returncode
    counts = [drained(sock) for sock in sockets]
    with open(report, "w") as out:
        json.dump({"status": status, "connections": counts[0] + counts[2],
                   "datagrams": counts[1] + counts[3]}, out)


if __name__ == "__main__":
    main()

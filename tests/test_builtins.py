"""Every built-in profile with real clients against real servers on loopback, in a
network namespace of the test's own (so DNS can be on port 53 and HTTP on 80): what each
profile promises, the programs people run under it get."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers.running import SOCKBOX, TESTS, in_new_netns

CLIENTS = {
    "dig": "dig @127.0.0.1 +short +tries=1 +time=3 test.example",
    "dig-tcp-v6": "dig @::1 +tcp +short +tries=1 +time=3 test.example",
    "host": "host -W 3 test.example 127.0.0.1 | grep 'has address'",
    "nslookup": "busybox nslookup test.example 127.0.0.1 | grep 'Address: 192'",
    "curl": "curl -sS --max-time 5 http://127.0.0.1/",
    "curl-v6-8080": "curl -sS --max-time 5 'http://[::1]:8080/'",
    "python": f"{sys.executable} -c \"import urllib.request; "
              "print(urllib.request.urlopen('http://127.0.0.1/', timeout=5).read().decode(), end='')\"",
    "nc": "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 80 | tail -1",
    "nc-listen-loopback": "nc -l 127.0.0.1 9000 & sleep 0.5; echo hi | nc -N -w 3 127.0.0.1 9000; "
                          "sleep 0.3; kill $! 2>/dev/null; wait",
    "listen-loopback": f"{sys.executable} -c \"import socket; socket.create_server(('127.0.0.1', 0)); print('listening')\"",
    "listen-everywhere": f"{sys.executable} -c \"import socket; socket.create_server(('0.0.0.0', 0)); print('listening')\"",
    "listen-unbound": f"{sys.executable} -c \"import socket; s = socket.socket(); s.listen(); print('listening')\"",
    "unix": "nc -lU $TMPDIR/s.sock & sleep 0.5; echo hi | nc -N -U $TMPDIR/s.sock; "
            "sleep 0.3; kill $! 2>/dev/null; wait",
}
# What each client prints when it got through.
WORKED = {"dig": "192.0.2.99", "dig-tcp-v6": "192.0.2.99", "host": "192.0.2.99",
          "nslookup": "192.0.2.99", "curl": "hello from loopback", "curl-v6-8080": "hello from loopback",
          "python": "hello from loopback", "nc": "hello from loopback", "nc-listen-loopback": "hi",
          "listen-loopback": "listening", "listen-everywhere": "listening",
          "listen-unbound": "listening", "unix": "hi"}
# Which clients each built-in lets through; the rest it must refuse.
ALLOWS = {
    "offline": {"unix"},
    "localhost": {"dig", "dig-tcp-v6", "host", "nslookup", "curl", "curl-v6-8080", "python", "nc",
                  "nc-listen-loopback", "listen-loopback", "unix"},
    "web": {"dig", "dig-tcp-v6", "host", "nslookup", "curl", "python", "nc"},
    "server": {"listen-loopback", "listen-everywhere", "listen-unbound", "unix"},
    "audit": set(CLIENTS),
}
CASES = [(profile, client) for profile in ALLOWS for client in CLIENTS]


@pytest.fixture(scope="module")
def native_works(tmp_path_factory):
    """Each client works without sockbox, so a refusal below is the profile's."""
    results = {}
    for client in CLIENTS:
        results[client] = run(tmp_path_factory.mktemp(client), [], client)
    return results


def run(tmp_path, sandbox: list[str], client: str) -> dict:
    report = tmp_path / "report.json"
    script = f"export TMPDIR={tmp_path}; {CLIENTS[client]}"
    command = in_new_netns([sys.executable, str(TESTS / "loopback_servers.py"), str(report), "--",
                            *sandbox, "sh", "-c", script])
    ran = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert report.exists(), ran.stderr
    return json.loads(report.read_text())


@pytest.mark.parametrize("profile,client", CASES, ids=[f"{p}-{c}" for p, c in CASES])
def test_builtin_profiles_with_real_clients(tmp_path, native_works, profile, client):
    native = native_works[client]
    assert WORKED[client] in native["stdout"], native
    tmp_path.chmod(0o755)
    result = run(tmp_path, [*SOCKBOX, "run", "-p", profile, "--"], client)
    if client in ALLOWS[profile]:
        assert WORKED[client] in result["stdout"], result
        assert "sockbox: deny" not in result["stderr"], result["stderr"]
    else:
        assert WORKED[client] not in result["stdout"], result
        assert "sockbox: deny" in result["stderr"], result["stderr"]

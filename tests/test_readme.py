"""What README.md shows a user works as it says: its example profile, taken from the
README itself, lets curl fetch from the ports it allows and from no other."""

from __future__ import annotations

import errno
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helpers.running import sockbox

README = Path(__file__).parent.parent / "README.md"


def example_profile() -> str:
    """The TOML block that opens README's "Profiles" section."""
    section = README.read_text().split("\n## Profiles\n", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match, "README's Profiles section shows no profile"
    return match.group(1)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"fetched\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def serve_on_a_port_in(ports: range) -> ThreadingHTTPServer:
    for port in ports:
        try:
            server = ThreadingHTTPServer(("127.0.0.1", port), _Page)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            continue
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    pytest.fail(f"no free port in {ports}")


@pytest.fixture
def profile(tmp_path) -> str:
    path = tmp_path / "web.toml"
    path.write_text(example_profile())
    return str(path)


def test_the_example_profile_is_valid(profile):
    assert sockbox("check", profile).stdout == f"{profile}: ok\n"


def test_the_example_profile_lets_curl_fetch_from_an_allowed_port(profile):
    server = serve_on_a_port_in(range(8000, 9000))
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        result = sockbox("run", "-p", profile, "--", "curl", "-sS", url)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.returncode, result.stdout) == (0, "fetched\n"), result.stderr
    assert "sockbox: deny" not in result.stderr, result.stderr


def test_the_example_profile_keeps_curl_from_other_ports(profile):
    server = serve_on_a_port_in(range(9000, 10000))
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        result = sockbox("run", "-p", profile, "--", "curl", "-sS", url)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 7  # curl: could not connect
    denied = rf"sockbox: deny connect\(\d+, {{sa_family=AF_INET, sin_port=htons\({server.server_port}\)"
    assert re.search(denied, result.stderr), result.stderr

"""`sockbox learn` on real programs, then the learned profile enforced on them."""

from __future__ import annotations

import socket

import pytest

from helpers.running import sockbox
from helpers.servers import UnixServer


def learn(tmp_path, *command: str, cwd=None) -> str:
    profile = tmp_path / "learned.toml"
    result = sockbox("learn", "-o", str(profile), "--", *command, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.startswith("sockbox: learned ")
    assert sockbox("check", str(profile)).stdout == f"{profile}: ok\n"
    return str(profile)


@pytest.mark.parametrize("bits,via", [(64, "libc"), (32, "socketcall"), (64, "int80")])
def test_learned_profile_allows_the_run_and_nothing_else(programs, tmp_path, tcp_server, bits, via):
    probe = [programs("netprobe", bits), "--via", via, "tcp", "127.0.0.1"]
    profile = learn(tmp_path, *probe, str(tcp_server.port))
    text = open(profile).read()
    assert 'address = ["127.0.0.1/32"]' in text and f"port = [{tcp_server.port}]" in text
    assert f"# learned from: 127.0.0.1 port {tcp_server.port}" in text

    again = sockbox("run", "-p", profile, "--", *probe, str(tcp_server.port))
    assert again.returncode == 0, again.stdout + again.stderr
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    elsewhere = sockbox("run", "-q", "-p", profile, "--", *probe, str(other.getsockname()[1]))
    assert "connect ERR EACCES" in elsewhere.stdout
    other.close()
    assert tcp_server.received == [b"ping"] * 2


def test_plain_sends_are_learned_as_send_not_as_any_sendto(programs, tmp_path, tcp_server):
    profile = learn(tmp_path, programs("netprobe", 64), "tcp", "127.0.0.1", str(tcp_server.port))
    text = open(profile).read()
    assert '"send"' in text
    assert '"sendto"' not in text  # a rule naming sendto without an address would allow any


def test_udp_destinations_and_an_ephemeral_bind(programs, tmp_path, udp_server):
    profile = learn(tmp_path, programs("netprobe", 64), "udp-mmsg", "127.0.0.1", str(udp_server.port), "2")
    assert udp_server.collect() == [b"ping"] * 2
    assert sockbox("run", "-p", profile, "--", programs("netprobe", 64), "udp-mmsg", "127.0.0.1",
                   str(udp_server.port), "2").returncode == 0
    assert udp_server.collect() == [b"ping"] * 2

    listening = learn(tmp_path, programs("netprobe", 64), "listen", "127.0.0.1", "0")
    text = open(listening).read()
    assert "port = [0]" in text and "any free port" in text  # not the port the kernel picked
    assert sockbox("run", "-p", listening, "--", programs("netprobe", 64), "listen", "127.0.0.1",
                   "0").returncode == 0


def test_unix_paths_are_learned_literally(programs, tmp_path):
    tmp_path.chmod(0o755)
    server = UnixServer(str(tmp_path / "odd[1]*.sock"))
    try:
        profile = learn(tmp_path, programs("netprobe", 64), "unix", server.address)
        assert f'path = ["{tmp_path}/odd[[]1][*].sock"]' in open(profile).read()
        assert sockbox("run", "-p", profile, "--", programs("netprobe", 64), "unix",
                       server.address).returncode == 0
        # The glob characters stand for themselves: a sibling name does not match.
        sibling = UnixServer(str(tmp_path / "odd1x.sock"))
        denied = sockbox("run", "-q", "-p", profile, "--", programs("netprobe", 64), "unix",
                         sibling.address)
        assert "connect ERR EACCES" in denied.stdout
        sibling.close()
    finally:
        server.close()


def test_an_ipv4_mapped_destination_is_learned_as_ipv4(programs, tmp_path, tcp_server):
    address = ("0a00" + tcp_server.port.to_bytes(2, "big").hex() + "00000000"
               + "00000000000000000000ffff7f000001" + "00000000")
    profile = learn(tmp_path, programs("netprobe", 64), "raw-connect", "10", address)
    assert 'address = ["127.0.0.1/32"]' in open(profile).read()
    again = sockbox("run", "-p", profile, "--", programs("netprobe", 64), "raw-connect", "10", address)
    assert "connect OK 0" in again.stdout, again.stdout + again.stderr


def test_learn_writes_to_stdout_and_keeps_the_status():
    result = sockbox("learn", "--", "sh", "-c", "exit 3")
    assert result.returncode == 3
    assert result.stdout.startswith("# Learned by `sockbox learn` from one run of:")
    assert 'default = "deny"' in result.stdout

"""The pytest plugin, used from a test suite as a harness would."""

from __future__ import annotations


def test_the_sockbox_fixture_in_a_test_suite(pytester, tcp_server):
    pytester.makepyfile(f"""
        import sys

        def connect(port):
            return [sys.executable, "-c",
                    "import socket; socket.create_connection(('127.0.0.1', %d), timeout=10)" % port]

        def test_stays_on_loopback(sockbox):
            result = sockbox.run(connect({tcp_server.port}))
            assert result.returncode == 0, result.stderr
            result.assert_reached_only("127.0.0.0/8", "::1/128")
            result.assert_no_denials()
            assert [(e.call, e.port) for e in result.destinations] == [("connect", {tcp_server.port})]

        def test_catches_a_connection_elsewhere(sockbox):
            result = sockbox.run(connect({tcp_server.port}))
            result.assert_reached_only("10.0.0.0/8")   # must fail: it reached 127.0.0.1

        def test_catches_a_denial(sockbox):
            result = sockbox.run(connect({tcp_server.port}), profile="offline")
            result.assert_no_denials()                 # must fail: socket(AF_INET) denied
    """)
    outcome = pytester.runpytest_subprocess("-q")  # the plugin loads by its entry point
    outcome.assert_outcomes(passed=1, failed=2)
    text = outcome.stdout.str()
    assert "reached outside 10.0.0.0/8:" in text and f"allow connect 127.0.0.1 port {tcp_server.port}" in text
    assert "denied:" in text and "deny socket" in text

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

        def test_catches_a_connection_elsewhere_under_localhost(sockbox):
            # localhost records denials only; the destinations are seen all the same.
            result = sockbox.run(connect({tcp_server.port}), profile="localhost")
            assert result.returncode == 0 and result.events == []
            result.assert_reached_only("10.0.0.0/8")   # must fail: it reached 127.0.0.1

        def test_catches_a_denial(sockbox):
            result = sockbox.run(connect({tcp_server.port}), profile="offline")
            result.assert_no_denials()                 # must fail: socket(AF_INET) denied
    """)
    outcome = pytester.runpytest_subprocess("-q")  # the plugin loads by its entry point
    outcome.assert_outcomes(passed=1, failed=3)
    text = outcome.stdout.str()
    # One traceback line per failing test; the short summary may repeat it, width permitting.
    assert text.count("E           AssertionError: reached outside 10.0.0.0/8:") == 2
    assert f"allow connect 127.0.0.1 port {tcp_server.port}" in text
    assert "denied:" in text and "deny socket" in text


def test_the_fixture_keeps_one_warm_sandbox_per_profile(pytester):
    # Each run's supervisor is a child of the warm process of its profile's Sandbox.
    pytester.makepyfile("""
        import pytest

        WHO = "echo $(sed -n 's/^PPid:\\\\s*//p' /proc/$PPID/status)"
        seen = {}

        @pytest.mark.parametrize("profile", ["audit", "localhost", "audit", "localhost", "offline"])
        def test_run(sockbox, profile):
            result = sockbox.run(["sh", "-c", WHO], profile=profile)
            assert result.returncode == 0, result.stderr
            seen.setdefault(profile, set()).add(int(result.stdout))

        def test_one_per_profile():
            assert all(len(boxes) == 1 for boxes in seen.values()), seen
            assert len(set.union(*seen.values())) == 3, seen
    """)
    outcome = pytester.runpytest_subprocess("-q")
    outcome.assert_outcomes(passed=6)

"""The agent's metrics port listens on this host only unless told otherwise: a real agent, a real
scrape on 127.0.0.1, and a refused connection on one of the host's other addresses (the host end of
a veth pair, tests/support/guest_network.py)."""

import socket
import subprocess
import urllib.request

import pytest

from tests.support.guest_network import GuestNetwork
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES
from tests.support.ports import free_port
from tests.support.processes import notified_agent


def test_the_metrics_port_is_on_127_0_0_1_by_default(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", FIXTURES / "clean-host")):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    other = GuestNetwork()  # gives this host an address that is not loopback
    port = free_port()
    try:
        with notified_agent(tmp_path, "--scenario", FIXTURES / "clean-host", "--db", url,
                            "--metrics-port", port) as agent:
            try:
                agent.wait_for("READY=1")
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    assert "compute_recover_runs_total" in response.read().decode()
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((other.host_address, port), timeout=5).close()
            finally:
                _out, err = agent.stop()
    finally:
        other.remove()
    assert agent.returncode == 0, err

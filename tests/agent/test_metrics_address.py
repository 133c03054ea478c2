"""The agent's metrics port listens on this host only unless told otherwise: a real agent, a real
scrape on 127.0.0.1, and a refused connection on one of the host's other addresses (the host end of
a veth pair, tests/support/guest_network.py)."""

import os
import signal
import socket
import subprocess
import urllib.request

import pytest

from tests.support.guest_network import GuestNetwork
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES
from tests.support.ports import free_port


def test_the_metrics_port_is_on_127_0_0_1_by_default(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", FIXTURES / "clean-host")):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    other = GuestNetwork()  # gives this host an address that is not loopback
    notify_path, port = tmp_path / "notify", free_port()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(60)
            agent = subprocess.Popen([CONSOLE_SCRIPT, "agent", "--scenario", FIXTURES / "clean-host", "--db", url,
                                      "--metrics-port", str(port)],
                                     env=os.environ | {"NOTIFY_SOCKET": str(notify_path)},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                while "READY=1" not in notify.recv(4096).decode():
                    pass
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                    assert "compute_recover_runs_total" in response.read().decode()
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((other.host_address, port), timeout=5).close()
            finally:
                agent.send_signal(signal.SIGTERM)
                _out, err = agent.communicate(timeout=60)
    finally:
        other.remove()
    assert agent.returncode == 0, err

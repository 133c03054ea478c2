"""A tenant's `recover:address` cannot point the host's readiness probes anywhere but at the guest.

Real `compute-recover run` processes on the libvirt test driver, real listening sockets: on the
host's loopback, on one of the host's own addresses, and at guests' addresses in network namespaces
of their own (tests/guest_network.py). A refused target sees not one connection; the report and the
journal say why; the run does not wait the tier timeout for a check it will never make. The same
listener at the guest's own address, inside the allowed networks, is connected to.
"""

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.guest_network import GuestNetwork, connections, listening
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.scenarios import ORDERED_RESTART_DATABASE, ordered_restart_checked

DATABASE = ORDERED_RESTART_DATABASE
TIER_TIMEOUT = 30


def run_with_target(tmp_path: Path, address: str, port: int, guest_address: str, *options: str) -> dict:
    """fixtures/ordered-restart with the database guest's check `tcp:port` at `address` and its domain's
    interface at `guest_address`; recovered by a real run; its JSON report."""
    scenario, _ = ordered_restart_checked(tmp_path / "scenario", address, port)
    (scenario / "libvirt.xml").write_text((scenario / "libvirt.xml").read_text().replace("10.0.0.61", guest_address))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    began = time.monotonic()
    run = subprocess.run([CONSOLE_SCRIPT, "run", "--scenario", scenario, "--db", url, "--json",
                          "--resume-guests-state-on-host-boot", "--tier-timeout", str(TIER_TIMEOUT), *options],
                         capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    report["exit_code"], report["stderr"], report["wall"] = run.returncode, run.stderr, time.monotonic() - began
    explain = subprocess.run([CONSOLE_SCRIPT, "explain", DATABASE, "--db", url, "--json"], capture_output=True,
                             text=True)
    report["journaled"] = json.loads(explain.stdout)["runs"][0]
    return report


def assert_refused(report: dict, why: str) -> None:
    database = next(item for item in report["instances"] if item["uuid"] == DATABASE)
    assert report["exit_code"] == 1, report["stderr"]
    assert database["outcome"] == "not-ready" and database["power_state"] == "running"  # started, never probed
    assert database["error"].startswith("readiness check refused, no connection made: "), database["error"]
    assert why in database["error"]
    assert report["journaled"]["outcome"] == "not-ready" and why in report["journaled"]["error"]
    assert report["wall"] < TIER_TIMEOUT  # a check that will never be made is not waited for
    assert [item["outcome"] for item in report["instances"] if item["tier"] == 1] == ["ok", "ok"]


@dataclass(frozen=True)
class Refusal:
    """A check's target the run must refuse: where the listener waits, the domain's own address, the run's
    extra options, and the reason the report must give."""

    listener: socket.socket
    target: str
    domain_address: str
    reason: str
    options: tuple[str, ...] = ()


def loopback(guest: GuestNetwork, _request: pytest.FixtureRequest) -> Refusal:
    # The domain may claim the loopback address too: still not probed.
    return Refusal(listening("127.0.0.1"), "127.0.0.1", "127.0.0.1", "127.0.0.1 is a loopback address")


def hosts_own_address(guest: GuestNetwork, _request: pytest.FixtureRequest) -> Refusal:
    # The host's end of the guest's link: an address of this host.
    return Refusal(listening(guest.host_address), guest.host_address, guest.host_address,
                   f"{guest.host_address} is an address of this host")


def outside_the_allowed_networks(guest: GuestNetwork, _request: pytest.FixtureRequest) -> Refusal:
    return Refusal(listening(guest.guest_address, guest.socket()), guest.guest_address, guest.guest_address,
                   "is outside the networks probes may reach (--probe-networks: 192.168.0.0/16, fd00::/8)",
                   ("--probe-networks", "192.168.0.0/16,fd00::/8"))


def another_guests_address(guest: GuestNetwork, request: pytest.FixtureRequest) -> Refusal:
    other: GuestNetwork = request.getfixturevalue("other_guest")
    return Refusal(listening(other.guest_address, other.socket()), other.guest_address, guest.guest_address,
                   f"{other.guest_address} is not an address of this guest (its domain's interfaces have: "
                   f"{guest.guest_address})")


@pytest.mark.parametrize("refusal", [loopback, hosts_own_address, outside_the_allowed_networks,
                                     another_guests_address])
def test_a_target_other_than_the_guest_is_never_probed(tmp_path, guest, request, refusal):
    case = refusal(guest, request)
    try:
        port = case.listener.getsockname()[1]
        report = run_with_target(tmp_path, case.target, port, case.domain_address, *case.options)
        assert connections(case.listener) == 0
    finally:
        case.listener.close()
    assert_refused(report, case.reason)


def test_the_guests_own_address_inside_the_allowed_networks_is_probed(tmp_path, guest):
    listener = listening(guest.guest_address, guest.socket())
    try:
        port = listener.getsockname()[1]
        report = run_with_target(tmp_path, guest.guest_address, port, guest.guest_address)
        assert connections(listener) == 1
    finally:
        listener.close()
    database = next(item for item in report["instances"] if item["uuid"] == DATABASE)
    assert report["exit_code"] == 0, report["stderr"]
    assert database["outcome"] == "ok" and database["ready_seconds"] is not None

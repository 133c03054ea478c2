"""Where a readiness probe may connect, decided before any connection (the pure rule)."""

import pytest

from recovery.adapters.hypervisor import interface_addresses
from recovery.core.defaults import DEFAULT_PROBE_NETWORKS
from recovery.core.probe_targets import ProbeNetworksError, probe_networks, refused_target

ALLOWED = probe_networks(DEFAULT_PROBE_NETWORKS)
GUEST = {"10.0.0.7", "fd00::7"}
HOST = {"10.0.0.1", "192.168.1.10", "127.0.0.1", "::1", "fe80::1%eth0"}


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("127.8.9.10", "is a loopback address"),
    ("::1", "::1 is a loopback address"),
    ("::ffff:127.0.0.1", "is a loopback address"),
    ("169.254.169.254", "is a link-local address"),
    ("fe80::1", "is a link-local address"),
    ("224.0.0.1", "is a multicast address"),
    ("ff02::1", "is a multicast address"),
    ("0.0.0.0", "is the unspecified address"),
    ("::", "is the unspecified address"),
    ("255.255.255.255", "is a reserved address"),
    ("240.0.0.1", "is a reserved address"),
    ("10.0.0.1", "10.0.0.1 is an address of this host"),
    ("192.168.1.10", "is an address of this host"),
    ("8.8.8.8", "8.8.8.8 is outside the networks probes may reach (--probe-networks: 10.0.0.0/8, 172.16.0.0/12"),
    ("10.0.0.8", "10.0.0.8 is not an address of this guest (its domain's interfaces have: 10.0.0.7, fd00::7)"),
    ("db.example", "'db.example' is not an IP address"),
])
def test_anything_but_the_guest_is_refused_with_why(address, why):
    assert why in refused_target(address, GUEST, HOST, ALLOWED)


def test_the_guests_own_address_inside_the_allowed_networks_is_probed():
    assert refused_target("10.0.0.7", GUEST, HOST, ALLOWED) is None
    assert refused_target("fd00::7", GUEST, HOST, ALLOWED) is None
    assert refused_target("10.0.0.7", GUEST, HOST, probe_networks(["10.0.0.4/30"])) is None


def test_the_operator_narrows_or_widens_the_networks():
    assert "outside the networks" in refused_target("10.0.0.7", GUEST, HOST, probe_networks(["192.168.0.0/16"]))
    assert "outside the networks probes may reach (--probe-networks: none)" in refused_target("10.0.0.7", GUEST,
                                                                                             HOST, ())
    public = {"203.0.113.5"}
    assert refused_target("203.0.113.5", public, HOST, ALLOWED) is not None
    assert refused_target("203.0.113.5", public, HOST, probe_networks(["203.0.113.0/24"])) is None
    assert "is a loopback address" in refused_target("127.0.0.1", {"127.0.0.1"}, set(), probe_networks(["0.0.0.0/0"]))


def test_a_network_that_is_not_one_is_refused():
    with pytest.raises(ProbeNetworksError, match=r"'10\.0\.0\.1/8' is not a network"):
        probe_networks(["10.0.0.1/8"])


def test_the_guests_addresses_are_read_from_its_domains_interfaces():
    xml = ("<domain><devices><interface type='ethernet'><ip address='10.0.0.7' prefix='24'/></interface>"
           "<interface type='bridge'><ip address='fd00::7'/></interface><disk/></devices></domain>")
    assert interface_addresses(xml) == {"10.0.0.7", "fd00::7"}
    assert interface_addresses("<domain><devices/></domain>") == frozenset()

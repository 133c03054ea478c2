"""The host inventory gathered in bulk, and the repairs, on the libvirt test driver (recovery.adapters.inventory)."""

from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from recovery.adapters.inventory import (
    RepairFailed,
    existing_paths,
    gather,
    has_value,
    host_interfaces,
    mdev_name_uuid,
    pci_name_address,
    repair,
)
from recovery.core.devices import Kind, Resource, prove_domain
from states.enums import DeviceReadiness

GUEST = """<domain type='test'><name>g</name><memory>1024</memory><os><type>hvm</type></os><devices>
  <disk type='file'><source file='{disk}'/><target dev='vda'/></disk>
  <disk type='volume'><source pool='idle' volume='g.img'/><target dev='vdb'/></disk>
  <interface type='network'><source network='tenant-a'/></interface>
  <interface type='network'><source network='default'/></interface>
</devices></domain>"""


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """A private test driver host: its default pool and network, plus an inactive pool and network."""
    node = tmp_path / "node.xml"
    node.write_text("<node><cpu><mhz>1000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2"
                    "</cores><threads>1</threads><active>2</active></cpu><memory>2097152</memory></node>")
    connection = libvirt.open(f"test://{node}")
    (tmp_path / "idle").mkdir()
    connection.storagePoolDefineXML(
        f"<pool type='dir'><name>idle</name><target><path>{tmp_path / 'idle'}</path></target></pool>")
    connection.networkDefineXML("<network><name>tenant-a</name><forward mode='bridge'/><bridge name='br-a'/>"
                                "</network>")
    connection.networkDefineXML("<network><name>default</name><bridge name='virbr0'/></network>").create()
    yield connection
    connection.close()


def test_the_inventory_lists_pools_networks_and_paths_with_their_states(conn, tmp_path):
    disk = tmp_path / "disk"
    disk.write_bytes(b"")
    inventory = gather(conn, [str(disk), str(tmp_path / "gone"), "relative/disk"], sys_class_net=tmp_path)
    assert inventory.pools == {"idle": False}
    assert inventory.networks == {"tenant-a": False, "default": True}
    assert inventory.paths == {str(disk)}
    assert inventory.secrets == {}  # the test driver has no secrets
    assert "node.xml" in inventory.interfaces and "idle" in inventory.interfaces


def test_a_guest_needing_an_inactive_pool_and_network_is_repaired_then_ready(conn, tmp_path):
    disk = tmp_path / "disk"
    disk.write_bytes(b"")
    xml = GUEST.format(disk=disk)
    proof = prove_domain(xml, gather(conn, [str(disk)]))
    assert proof.readiness is DeviceReadiness.REPAIRABLE
    assert proof.repairs == (Resource(Kind.POOL, "idle"), Resource(Kind.NETWORK, "tenant-a"))
    for resource in proof.repairs:
        repair(conn, resource)
    conn.storagePoolLookupByName("idle").createXML(
        "<volume><name>g.img</name><capacity>1024</capacity></volume>", 0)
    assert prove_domain(xml, gather(conn, [str(disk)])).readiness is DeviceReadiness.READY


def test_a_volume_missing_from_an_active_pool_and_a_removed_disk_are_missing(conn, tmp_path):
    conn.storagePoolLookupByName("idle").create(0)
    conn.networkLookupByName("tenant-a").create()
    proof = prove_domain(GUEST.format(disk=tmp_path / "gone"), gather(conn, [str(tmp_path / "gone")]))
    assert proof.readiness is DeviceReadiness.MISSING
    assert proof.problems == (f"disk {tmp_path / 'gone'} does not exist",
                              "volume 'g.img' is not in storage pool 'idle'")


def test_a_repair_that_fails_names_the_resource(conn):
    with pytest.raises(RepairFailed, match="cannot start network 'nowhere': "):
        repair(conn, Resource(Kind.NETWORK, "nowhere"))
    with pytest.raises(RepairFailed, match="a bridge cannot be started"):
        repair(conn, Resource(Kind.BRIDGE, "br0"))


def test_node_device_names_read_as_addresses_and_uuids():
    assert pci_name_address("pci_0000_3b_00_1") == "0000:3b:00.1"
    assert pci_name_address("scsi_host2") is None
    uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
    assert mdev_name_uuid("mdev_" + uuid.replace("-", "_")) == uuid
    assert mdev_name_uuid("mdev_" + uuid.replace("-", "_") + "_0000_3b_00_0") == uuid
    assert mdev_name_uuid("mdev_short") is None


def test_host_interfaces_and_paths_read_the_host(tmp_path):
    assert "lo" in host_interfaces()
    assert host_interfaces(tmp_path / "absent") == frozenset()
    assert existing_paths(["/", "", "etc"]) == {"/"}


def test_the_default_test_driver_has_its_default_pool_and_network_active():
    connection = libvirt.open("test:///default")
    try:
        inventory = gather(connection, [])
    finally:
        connection.close()
    assert inventory.pools["default-pool"] is True and inventory.networks["default"] is True
    assert inventory.pci == frozenset() and inventory.mdevs == {}


class _Secret:
    """A secret whose value() fails with this libvirt error code (None: it returns the value)."""

    def __init__(self, code: int | None) -> None:
        self.code = code

    def value(self) -> bytes:
        if self.code is None:
            return b"s3cret"
        error = libvirt.libvirtError("secret value")
        error.err = (self.code, 0, "secret value", 0, "", None, None, 0, 0)
        raise error


def test_a_secret_whose_value_a_read_only_connection_cannot_read_is_not_counted_as_set():
    assert has_value(_Secret(None)) is True
    assert has_value(_Secret(libvirt.VIR_ERR_NO_SECRET)) is False
    assert has_value(_Secret(libvirt.VIR_ERR_INVALID_SECRET)) is True  # private: libvirt itself can use it
    assert has_value(_Secret(libvirt.VIR_ERR_OPERATION_DENIED)) is None  # read-only (plan): unknown
    assert has_value(_Secret(libvirt.VIR_ERR_ACCESS_DENIED)) is None

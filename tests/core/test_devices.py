"""The device proof's pure parts: reading a definition, proving it against an inventory, and the
comparison after a start (recovery.core.devices), with examples and generated definitions (hypothesis)."""

from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.core.devices import (
    MAX_DOMAIN_XML,
    DeviceProof,
    DomainXmlError,
    Inventory,
    Kind,
    Resource,
    devices,
    missing_after_start,
    needs,
    prove,
    prove_domain,
    shown_name,
)
from states.enums import DeviceReadiness

SECRET = "4f0c3b5e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
MDEV = "4b20d080-1b54-4048-85b3-a6a62d165c01"

FULL = f"""<domain type='kvm'><name>g</name><devices>
  <disk type='file' device='disk'><source file='/var/lib/nova/instances/g/disk'/><target dev='vda'/></disk>
  <disk type='block' device='disk'><source dev='/dev/mapper/mpatha'/><target dev='vdb'/>
    <encryption format='luks'><secret type='passphrase' uuid='{SECRET}'/></encryption></disk>
  <disk type='volume' device='disk'><source pool='images' volume='g.qcow2'/><target dev='vdc'/></disk>
  <disk type='network' device='disk'><auth username='nova'><secret type='ceph' usage='client.nova'/></auth>
    <source protocol='rbd' name='vms/g_disk'/><target dev='vdd'/></disk>
  <disk type='file' device='cdrom'><target dev='hda'/></disk>
  <disk type='file' device='cdrom'><source file='/iso/gone.iso' startupPolicy='optional'/><target dev='hdb'/></disk>
  <interface type='network'><mac address='52:54:00:00:00:01'/><source network='tenant-a'/></interface>
  <interface type='bridge'><mac address='52:54:00:00:00:02'/><source bridge='br-int'/></interface>
  <interface type='direct'><mac address='52:54:00:00:00:03'/><source dev='eth1' mode='bridge'/></interface>
  <interface type='hostdev'><mac address='52:54:00:00:00:04'/>
    <source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x3'/></source></interface>
  <interface type='ethernet'><mac address='52:54:00:00:00:05'/><target dev='tap1'/></interface>
  <hostdev mode='subsystem' type='pci' managed='yes'>
    <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/></source></hostdev>
  <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{MDEV.upper()}'/></source></hostdev>
  <filesystem type='mount'><source dir='/srv/share'/><target dir='share'/></filesystem>
</devices></domain>"""

EVERYTHING = Inventory(
    paths=frozenset({"/var/lib/nova/instances/g/disk", "/dev/mapper/mpatha", "/srv/share"}),
    pools={"images": True},
    volumes=frozenset({("images", "g.qcow2")}),
    networks={"tenant-a": True},
    interfaces=frozenset({"br-int", "eth1", "lo"}),
    secrets={SECRET: True, "9d5e6f70-0000-4000-8000-000000000001": True},
    secret_usages={"client.nova": "9d5e6f70-0000-4000-8000-000000000001"},
    pci=frozenset({"0000:3b:00.1", "0000:3b:02.3"}),
    mdevs={MDEV: True},
)


def test_needs_names_every_host_side_resource_once_in_document_order():
    assert needs(FULL) == (
        Resource(Kind.DISK, "/var/lib/nova/instances/g/disk"),
        Resource(Kind.DISK, "/dev/mapper/mpatha"),
        Resource(Kind.SECRET, SECRET),
        Resource(Kind.POOL, "images"),
        Resource(Kind.VOLUME, "g.qcow2", "images"),
        Resource(Kind.SECRET, "client.nova"),
        Resource(Kind.NETWORK, "tenant-a"),
        Resource(Kind.BRIDGE, "br-int"),
        Resource(Kind.HOST_INTERFACE, "eth1"),
        Resource(Kind.HOSTDEV, "0000:3b:02.3"),
        Resource(Kind.HOSTDEV, "0000:3b:00.1"),
        Resource(Kind.MDEV, MDEV),
        Resource(Kind.DISK, "/srv/share"),
    )


def test_a_host_with_everything_proves_ready():
    proof = prove_domain(FULL, EVERYTHING)
    assert proof.readiness is DeviceReadiness.READY
    assert proof.problems == () and proof.repairs == () and proof.summary() == "ready"


@pytest.mark.parametrize(("change", "reason"), [
    ({"paths": EVERYTHING.paths - {"/var/lib/nova/instances/g/disk"}},
     "disk /var/lib/nova/instances/g/disk does not exist"),
    ({"networks": {}}, "network 'tenant-a' is not defined"),
    ({"secrets": {**EVERYTHING.secrets, SECRET: False}}, f"secret {SECRET}: no value"),
    ({"secrets": {}}, f"secret {SECRET} is not defined"),
    ({"secrets": {**EVERYTHING.secrets, SECRET: None}}, f"secret {SECRET}: value not readable"),
    ({"pci": frozenset({"0000:3b:02.3"})}, "hostdev 0000:3b:00.1 absent"),
    ({"interfaces": frozenset({"eth1"})}, "bridge br-int missing"),
    ({"interfaces": frozenset({"br-int"})}, "host interface eth1 missing"),
    ({"pools": {}}, "storage pool 'images' is not defined"),
    ({"volumes": frozenset()}, "volume 'g.qcow2' is not in storage pool 'images'"),
    ({"mdevs": {}}, f"mdev {MDEV} absent"),
])
def test_each_missing_resource_is_named(change, reason):
    proof = prove_domain(FULL, Inventory(**{**EVERYTHING.__dict__, **change}))
    assert proof.readiness is DeviceReadiness.MISSING
    assert reason in proof.problems


@pytest.mark.parametrize(("change", "resource", "reason"), [
    ({"pools": {"images": False}}, Resource(Kind.POOL, "images"),
     "storage pool 'images' is inactive (started before the guest)"),
    ({"networks": {"tenant-a": False}}, Resource(Kind.NETWORK, "tenant-a"),
     "network 'tenant-a' is inactive (started before the guest)"),
    ({"mdevs": {MDEV: False}}, Resource(Kind.MDEV, MDEV),
     f"mdev {MDEV} is defined but not started (started before the guest)"),
])
def test_an_inactive_pool_network_or_mdev_is_repairable(change, resource, reason):
    proof = prove_domain(FULL, Inventory(**{**EVERYTHING.__dict__, **change}))
    assert proof.readiness is DeviceReadiness.REPAIRABLE
    assert proof.repairs == (resource,)
    assert proof.problems == (reason,)


def test_a_secret_value_a_read_only_connection_cannot_read_is_unverified_not_missing():
    unread = {**EVERYTHING.__dict__, "secrets": {**EVERYTHING.secrets, SECRET: None}, "read_only": True}
    proof = prove_domain(FULL, Inventory(**unread))
    assert proof.readiness is DeviceReadiness.UNVERIFIED
    assert proof.missing == () and proof.repairs == ()
    assert proof.problems == (f"secret {SECRET}: value not readable read-only",)
    assert proof.summary() == f"unverified: secret {SECRET}: value not readable read-only"
    repairable = prove_domain(FULL, Inventory(**{**unread, "networks": {"tenant-a": False}}))
    assert repairable.readiness is DeviceReadiness.REPAIRABLE
    assert repairable.problems[-1] == f"secret {SECRET}: value not readable read-only"
    assert prove_domain(FULL, Inventory(**{**unread, "secrets": {SECRET: False}})).readiness is DeviceReadiness.MISSING


def test_missing_outweighs_repairable_and_is_listed_first():
    inventory = Inventory(**{**EVERYTHING.__dict__, "pools": {"images": False}, "pci": frozenset()})
    proof = prove_domain(FULL, inventory)
    assert proof.readiness is DeviceReadiness.MISSING
    assert proof.problems[-1].startswith("storage pool 'images' is inactive")
    assert proof.missing == ("hostdev 0000:3b:02.3 absent", "hostdev 0000:3b:00.1 absent")
    assert proof.summary().startswith("missing: hostdev 0000:3b:02.3 absent; ")


@pytest.mark.parametrize("bad", [
    "<domain>",
    "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'aaaa'>]><domain><devices/></domain>",
    "<network/>",
    "<domain>" + " " * MAX_DOMAIN_XML + "</domain>",
])
def test_a_definition_that_cannot_be_read_safely_is_refused(bad):
    with pytest.raises(DomainXmlError):
        needs(bad)
    proof = prove_domain(bad, EVERYTHING)
    assert proof.readiness is DeviceReadiness.MISSING
    assert proof.problems[0].startswith("its definition cannot be read: ")


def test_a_tenant_written_name_is_quoted_printable_and_short():
    name = "/tmp/\u202egnp.exe" + "x" * 500
    assert shown_name(name).isprintable() and len(shown_name(name)) <= 120
    xml = f"<domain><devices><disk type='file'><source file={quoteattr(name)}/></disk></devices></domain>"
    (reason,) = prove_domain(xml, Inventory()).problems
    assert reason.isprintable() and len(reason) < 160


def test_after_start_the_devices_the_running_domain_lacks_are_named():
    live = FULL.replace("<source dev='/dev/mapper/mpatha'/><target dev='vdb'/>", "<source dev='/x'/>").replace(
        f"<address uuid='{MDEV.upper()}'/>", "<address uuid='0'/>")
    assert missing_after_start(devices(FULL), live) == ("disk vdb", f"mdev {MDEV}")
    assert missing_after_start(devices(FULL), FULL) == ()


# -- generated definitions -------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
"""Names as XML can hold them (no control characters), bidi overrides and other unprintable ones included."""
hexbyte = st.integers(0, 255)


@st.composite
def resources(draw) -> list[tuple[str, Resource]]:
    """A list of (device element, resource it needs)."""
    out = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["file", "volume", "network", "bridge", "pci", "secret"]))
        name = draw(names)
        if kind == "file":
            out.append((f"<disk type='file'><source file={quoteattr(name)}/></disk>", Resource(Kind.DISK, name)))
        elif kind == "volume":
            out.append((f"<disk type='volume'><source pool='p' volume={quoteattr(name)}/></disk>",
                        Resource(Kind.VOLUME, name, "p")))
        elif kind == "network":
            out.append((f"<interface type='network'><source network={quoteattr(name)}/></interface>",
                        Resource(Kind.NETWORK, name)))
        elif kind == "bridge":
            out.append((f"<interface type='bridge'><source bridge={quoteattr(name)}/></interface>",
                        Resource(Kind.BRIDGE, name)))
        elif kind == "secret":
            out.append((f"<disk type='network'><auth><secret type='ceph' uuid={quoteattr(name)}/></auth></disk>",
                        Resource(Kind.SECRET, name)))
        else:
            bus, slot, function = draw(hexbyte), draw(st.integers(0, 31)), draw(st.integers(0, 7))
            out.append((f"<hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='{bus:#x}' "
                        f"slot='{slot:#x}' function='{function:#x}'/></source></hostdev>",
                        Resource(Kind.HOSTDEV, f"0000:{bus:02x}:{slot:02x}.{function:x}")))
    return out


def _xml(elements: list[tuple[str, Resource]]) -> str:
    return "<domain><devices>" + "".join(e for e, _ in elements) + "</devices></domain>"


def _everything_for(found: tuple[Resource, ...]) -> Inventory:
    return Inventory(
        paths=frozenset(r.name for r in found if r.kind == Kind.DISK),
        pools={"p": True},
        volumes=frozenset((r.pool, r.name) for r in found if r.kind == Kind.VOLUME),
        networks={r.name: True for r in found if r.kind == Kind.NETWORK},
        interfaces=frozenset(r.name for r in found if r.kind == Kind.BRIDGE),
        secrets={r.name: True for r in found if r.kind == Kind.SECRET},
        pci=frozenset(r.name for r in found if r.kind == Kind.HOSTDEV),
    )


@settings(max_examples=300, deadline=None)
@given(resources())
def test_generated_definitions_name_what_they_hold(elements):
    expected = []
    for _element, resource in elements:
        if resource.kind == Kind.VOLUME:
            expected.append(Resource(Kind.POOL, "p"))
        expected.append(resource)
    assert needs(_xml(elements)) == tuple(dict.fromkeys(expected))


@settings(max_examples=300, deadline=None)
@given(resources(), st.data())
def test_removing_any_one_resource_makes_the_guest_missing_naming_it(elements, data):
    found = needs(_xml(elements))
    everything = _everything_for(found)
    assert prove(found, everything).readiness is DeviceReadiness.READY
    if not found:
        return
    gone = data.draw(st.sampled_from([r for r in found if r.kind != Kind.POOL]))
    fewer = Inventory(
        paths=everything.paths - {gone.name} if gone.kind == Kind.DISK else everything.paths,
        pools=everything.pools,
        volumes=everything.volumes - {(gone.pool, gone.name)},
        networks={k: v for k, v in everything.networks.items() if (Kind.NETWORK, k) != gone[:2]},
        interfaces=everything.interfaces - {gone.name} if gone.kind == Kind.BRIDGE else everything.interfaces,
        secrets={k: v for k, v in everything.secrets.items() if (Kind.SECRET, k) != gone[:2]},
        pci=everything.pci - {gone.name} if gone.kind == Kind.HOSTDEV else everything.pci,
    )
    proof = prove(found, fewer)
    assert proof.readiness is DeviceReadiness.MISSING
    assert [f.resource for f in proof.findings if f.readiness is DeviceReadiness.MISSING] == [gone]
    assert all(r.isprintable() for r in proof.problems)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list(DeviceReadiness)), max_size=6))
def test_a_proof_is_as_bad_as_its_worst_finding(readinesses):
    from recovery.core.devices import Finding
    proof = DeviceProof(tuple(Finding(Resource(Kind.NETWORK, str(i)), r, "" if r is DeviceReadiness.READY else "x")
                              for i, r in enumerate(readinesses)))
    for worst in (DeviceReadiness.MISSING, DeviceReadiness.REPAIRABLE, DeviceReadiness.UNVERIFIED):
        if worst in readinesses:
            assert proof.readiness is worst
            break
    else:
        assert proof.readiness is DeviceReadiness.READY
    assert len(proof.repairs) == readinesses.count(DeviceReadiness.REPAIRABLE)


@settings(max_examples=200, deadline=None)
@given(resources(), st.data())
def test_after_start_exactly_the_dropped_devices_are_named(elements, data):
    macs = [f"<interface type='bridge'><mac address='52:54:00:00:00:{i:02x}'/></interface>" for i in range(4)]
    disks = [f"<disk type='file'><target dev='vd{c}'/></disk>" for c in "abcd"]
    defined = macs + disks + [e for e, _ in elements]
    kept = data.draw(st.lists(st.sampled_from(range(len(defined))), unique=True))
    live = "<domain><devices>" + "".join(defined[i] for i in sorted(kept)) + "</devices></domain>"
    missing = missing_after_start(devices("<domain><devices>" + "".join(defined) + "</devices></domain>"), live)
    dropped = {i for i in range(8) if i not in kept}
    assert {m for m in missing if m.startswith(("interface", "disk"))} == {
        f"interface 52:54:00:00:00:{i:02x}" if i < 4 else f"disk vd{'abcd'[i - 4]}" for i in dropped}


def test_a_domain_as_libvirt_writes_it_is_read_through_its_devices_alone():
    metadata = ("<metadata>\n    <x:devices xmlns:x='urn:x'>\n      <disk type='file'><source file='/nope'/></disk>"
                "\n    </x:devices>\n  </metadata>")
    written = (f"<domain type='kvm'>\n  <name>g</name>\n  {metadata}\n  <devices>\n    <disk type='file'><source "
               "file='/d'/><target dev='vda'/></disk>\n  </devices>\n  <seclabel type='none'/>\n</domain>")
    assert needs(written) == (Resource(Kind.DISK, "/d"),)
    assert devices(written) == ("disk vda",)
    assert needs(written.replace("\n  <devices>", "<devices>")) == (Resource(Kind.DISK, "/d"),)  # read whole

"""The device proof on a real libvirtd with real QEMU guests (tests/real_libvirt.py, docs/devices.md).

Each broken guest is made for real and removed again: a disk file removed, a directory storage pool
holding a guest's volume left inactive, a libvirt network forwarding to a host bridge left inactive
(shared by two guests), an interface on a bridge that does not exist, a disk whose encryption secret has
no value, a host device address that does not exist, a disk dropped at start (startupPolicy optional),
and a guest with everything present. Every guest was running before the outage, so every one is to be
resumed: what is asserted is what libvirt reports after the run, the run's outcomes and the records.
"""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import libvirt
import pytest

from recovery.adapters.inventory import gather
from recovery.core.devices import prove_domain
from states.enums import DeviceReadiness
from tests.adapters.test_real_hypervisor import HOST, keyed_rows, recover, seeded_database
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.real_libvirt import (
    URI,
    Guests,
    guest_xml,
    make_disk,
    traversable,
)

BRIDGE, NO_BRIDGE = "crdev-br0", "crdev-nobr"
POOL, NETWORK = "crdev-pool", "crdev-net"
SECRET = "5e1a0b52-0000-4000-8000-00000000c0de"
ABSENT_PCI = "0000:ff:1f.7"


def U(nn: str) -> str:
    return f"6c1a0b52-0000-4000-8000-00000000d0{nn}"


def remove_leftovers(conn: libvirt.virConnect) -> None:
    """What a run of these tests killed before its clean-up left behind: bridges outlive the process
    that made them, and a system libvirtd keeps pools, networks and secrets, so a second run would
    fail to make its own."""
    for bridge in (BRIDGE, NO_BRIDGE):
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)
    for lookup, name in ((conn.storagePoolLookupByName, POOL), (conn.networkLookupByName, NETWORK)):
        with suppress(libvirt.libvirtError):
            resource = lookup(name)
            if resource.isActive():
                resource.destroy()
            resource.undefine()
    with suppress(libvirt.libvirtError):
        conn.secretLookupByUUIDString(SECRET).undefine()


@pytest.fixture
def host(daemon) -> Iterator[dict]:
    """The host-side resources, made here and removed afterwards: a bridge, a pool, a network, a secret,
    in a directory the libvirt-qemu user can reach."""
    conn = libvirt.open(URI)
    workdir = traversable(Path(tempfile.mkdtemp(prefix="compute-recover-devices-", dir="/var/tmp")) / "x").parent
    workdir.chmod(0o755)
    made: dict = {"conn": conn, "workdir": workdir}
    remove_leftovers(conn)
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    try:
        pool_dir = workdir / "pool"
        pool_dir.mkdir()
        pool = conn.storagePoolDefineXML(
            f"<pool type='dir'><name>{POOL}</name><target><path>{pool_dir}</path></target></pool>")
        pool.create(0)
        pool.createXML("<volume><name>g.qcow2</name><capacity unit='MiB'>1</capacity>"
                       "<target><format type='qcow2'/></target></volume>", 0)
        pool.destroy()  # left inactive, as after a reboot with autostart off
        network = conn.networkDefineXML(f"<network><name>{NETWORK}</name><forward mode='bridge'/>"
                                        f"<bridge name='{BRIDGE}'/></network>")
        secret = conn.secretDefineXML(f"<secret ephemeral='no' private='no'><uuid>{SECRET}</uuid>"
                                      f"<usage type='volume'><volume>{workdir / 'luks'}</volume></usage></secret>")
        made |= {"pool": pool, "network": network, "secret": secret}
        yield made
    finally:
        for name in ("pool", "network"):
            resource = made.get(name)
            if resource is not None:
                if resource.isActive():
                    resource.destroy()
                resource.undefine()
        if "secret" in made:
            made["secret"].undefine()
        subprocess.run(["ip", "link", "del", BRIDGE], check=False)
        conn.close()
        shutil.rmtree(workdir, ignore_errors=True)


def define(guests: Guests, nn: str, devices: str) -> None:
    """A tiny firmware guest (real_libvirt.guest_xml) with these extra devices."""
    xml = guest_xml(f"crdev-{nn}", U(nn)).replace("<devices>", f"<devices>{devices}")
    guests.conn.defineXML(xml)
    guests.defined.append(U(nn))


def file_disk(path: Path, target: str = "vda", extra: str = "") -> str:
    return (f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{path}'{extra}/>"
            f"<target dev='{target}' bus='virtio'/></disk>")


def define_degraded(guests: Guests, workdir: Path) -> None:
    """Guest 08: a second disk optional at start (startupPolicy), whose file is gone: it starts without it."""
    optional = make_disk(workdir / "optional.qcow2")
    define(guests, "08", file_disk(make_disk(workdir / "8.qcow2"))
           + file_disk(optional, "vdb", " startupPolicy='optional'"))
    optional.unlink()


def the_broken_host(guests: Guests, host: dict) -> dict[str, str]:
    """Every guest of the issue's list, defined shut off; its expected outcome by uuid."""
    workdir = host["workdir"]
    gone = make_disk(workdir / "gone.qcow2")
    define(guests, "01", file_disk(gone))
    gone.unlink()
    define(guests, "02", f"<disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                         f"<source pool='{POOL}' volume='g.qcow2'/><target dev='vda' bus='virtio'/></disk>")
    define(guests, "03", f"<interface type='network'><source network='{NETWORK}'/><model type='virtio'/></interface>")
    define(guests, "04", f"<interface type='network'><source network='{NETWORK}'/><model type='virtio'/></interface>")
    define(guests, "05", f"<interface type='bridge'><source bridge='{NO_BRIDGE}'/><model type='virtio'/></interface>")
    luks = make_disk(workdir / "luks")
    define(guests, "06", file_disk(luks).replace(
        "</disk>", f"<encryption format='luks'><secret type='passphrase' uuid='{SECRET}'/></encryption></disk>"))
    define(guests, "07", "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
                         "<address domain='0x0000' bus='0xff' slot='0x1f' function='0x7'/></source></hostdev>")
    define_degraded(guests, workdir)
    define(guests, "09", file_disk(make_disk(workdir / "9.qcow2"))
           + f"<interface type='bridge'><source bridge='{BRIDGE}'/><model type='virtio'/></interface>")
    return {U("01"): "blocked", U("02"): "ok", U("03"): "ok", U("04"): "ok", U("05"): "blocked",
            U("06"): "blocked", U("07"): "blocked", U("08"): "degraded", U("09"): "ok"}


def database(workdir: Path, uuids: list[str]) -> str:
    """Every guest's record: active and running before the outage, so to be resumed."""
    instances = [{"uuid": u, "display_name": f"crdev-{u[-2:]}", "host": HOST, "node": HOST, "vm_state": "active",
                  "task_state": None, "power_state": 1, "vcpus": 1, "memory_mb": 32, "root_gb": 0} for u in uuids]
    return seeded_database(workdir / "nova.sqlite", {
        "host": HOST, "instances": instances,
        "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute", "report_count": 1}]})


def test_the_inventory_of_the_real_host_proves_each_broken_guest(guests: Guests, host: dict) -> None:
    expected = the_broken_host(guests, host)
    conn = host["conn"]
    xml = {u: conn.lookupByUUIDString(u).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE) for u in expected}
    paths = [str(host["workdir"] / name) for name in ("gone.qcow2", "luks", "8.qcow2", "9.qcow2")]
    inventory = gather(conn, paths)
    assert inventory.pools[POOL] is False and inventory.networks[NETWORK] is False
    assert inventory.secrets[SECRET] is False and BRIDGE in inventory.interfaces
    proofs = {u: prove_domain(x, inventory) for u, x in xml.items()}
    assert proofs[U("01")].missing == (f"disk {host['workdir'] / 'gone.qcow2'} does not exist",)
    assert proofs[U("02")].problems == (f"storage pool '{POOL}' is inactive (started before the guest)",)
    assert proofs[U("03")].readiness is proofs[U("04")].readiness is DeviceReadiness.REPAIRABLE
    assert proofs[U("05")].missing == (f"bridge {NO_BRIDGE} missing",)
    assert proofs[U("06")].missing == (f"secret {SECRET}: no value",)
    assert proofs[U("07")].missing == (f"hostdev {ABSENT_PCI} absent",)
    assert proofs[U("08")].readiness is proofs[U("09")].readiness is DeviceReadiness.READY


def test_a_run_repairs_blocks_and_starts_as_the_proof_says_and_the_next_run_starts_what_came_back(
        guests: Guests, host: dict) -> None:
    expected = the_broken_host(guests, host)
    url = database(host["workdir"], list(expected))
    plan = subprocess.run([str(CONSOLE_SCRIPT), "run", "--dry-run", "--db", url, "--libvirt-uri", URI, "--host", HOST,
                           "--node", HOST, "--json", "--resume-guests-state-on-host-boot"],
                          capture_output=True, text=True, timeout=300)
    planned = {i["uuid"]: i for i in json.loads(plan.stdout)["instances"]}
    assert planned[U("01")]["error"] == f"blocked: disk {host['workdir'] / 'gone.qcow2'} does not exist"
    assert [a["name"] for a in planned[U("02")]["actions"]] == ["plug_vifs", "repair_devices", "resume_guest"]
    # read-only, libvirtd refuses the secret's value: unverified, planned started; the run reads it and blocks
    assert planned[U("06")]["error"] == f"unverified: secret {SECRET}: value not readable read-only"
    assert [a["name"] for a in planned[U("06")]["actions"]] == ["plug_vifs", "resume_guest"]
    assert not host["pool"].isActive() and not host["network"].isActive()  # a plan changes nothing

    done = recover(url, "--resume-guests-state-on-host-boot")
    report = json.loads(done.stdout)
    outcomes = {i["uuid"]: i for i in report["instances"]}
    assert {u: outcomes[u]["outcome"] for u in expected} == expected, done.stdout
    assert done.returncode == 1  # blocked and degraded guests are not a clean run
    assert outcomes[U("05")]["error"] == f"blocked: bridge {NO_BRIDGE} missing"
    assert outcomes[U("06")]["error"] == f"blocked: secret {SECRET}: no value"
    assert outcomes[U("07")]["error"] == f"blocked: hostdev {ABSENT_PCI} absent"
    assert outcomes[U("08")]["error"] == "degraded: disk vdb missing after the start"
    started = [w for w in report["warnings"] if w.startswith("started ")]
    assert sorted(started) == [f"started network '{NETWORK}' before the guests that need it",
                               f"started storage pool '{POOL}' before the guests that need it"]  # once each
    assert host["pool"].isActive() and host["network"].isActive()
    running = {u: guests.state(u)[0] == libvirt.VIR_DOMAIN_RUNNING for u in expected}
    assert running == {u: outcome in ("ok", "degraded") for u, outcome in expected.items()}
    records = keyed_rows(Path(url.removeprefix("sqlite:///")), "instances", "uuid")
    assert {records[u]["vm_state"] for u in expected} == {"active"}  # none put in error

    make_disk(host["workdir"] / "gone.qcow2")  # the resources come back
    subprocess.run(["ip", "link", "add", NO_BRIDGE, "type", "bridge"], check=True)
    try:
        again = json.loads(recover(url, "--resume-guests-state-on-host-boot").stdout)
        outcomes = {i["uuid"]: i["outcome"] for i in again["instances"]}
        assert outcomes[U("01")] == outcomes[U("05")] == "ok"
        assert outcomes[U("06")] == outcomes[U("07")] == "blocked"
        assert guests.state(U("01"))[0] == guests.state(U("05"))[0] == libvirt.VIR_DOMAIN_RUNNING
    finally:
        subprocess.run(["ip", "link", "del", NO_BRIDGE], check=False)


def test_on_degraded_stop_stops_the_guest_that_lacks_a_device(guests: Guests, host: dict) -> None:
    workdir = host["workdir"]
    define_degraded(guests, workdir)
    url = database(workdir, [U("08")])
    report = json.loads(recover(url, "--resume-guests-state-on-host-boot", "--on-degraded", "stop").stdout)
    (item,) = report["instances"]
    assert item["outcome"] == "degraded" and item["error"] == "degraded: disk vdb missing after the start; stopped"
    assert guests.state(U("08"))[0] == libvirt.VIR_DOMAIN_SHUTOFF



def test_run_plan_reads_the_secret_a_read_only_plan_could_not_and_blocks_a_guest_whose_secret_has_no_value(
        guests: Guests, host: dict) -> None:
    workdir = host["workdir"]
    luks = make_disk(workdir / "luks")
    define(guests, "06", file_disk(luks).replace(
        "</disk>", f"<encryption format='luks'><secret type='passphrase' uuid='{SECRET}'/></encryption></disk>"))
    url, plan = database(workdir, [U("06")]), workdir / "plan.json"
    target = ["--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST, "--json"]
    made = subprocess.run([str(CONSOLE_SCRIPT), "plan", *target, "--resume-guests-state-on-host-boot", "--out",
                           str(plan)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert json.loads(plan.read_text())["instances"][0]["record"]["devices"] == "unverified"
    applied = subprocess.run([str(CONSOLE_SCRIPT), "run", "--plan", str(plan), *target],
                             capture_output=True, text=True, timeout=300)
    (item,) = json.loads(applied.stdout)["instances"]
    assert (item["outcome"], item["error"]) == ("blocked", f"blocked: secret {SECRET}: no value"), applied.stdout
    assert applied.returncode == 1 and guests.state(U("06"))[0] == libvirt.VIR_DOMAIN_SHUTOFF

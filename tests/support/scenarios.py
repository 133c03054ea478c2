"""Scenarios written by the tests (a host's libvirt test-driver document and its db.json, docs/scenarios.md),
and generated outages for the benchmark and the fault tests: as many instances as wanted, on any host."""

import json
import random
import shutil
import uuid as uuidlib
from collections.abc import Iterable
from pathlib import Path

from tests.support.paths import FIXTURES

TEST_DOMAIN = (
    "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
    "<name>instance-{number:08x}</name><uuid>{uuid}</uuid><memory unit='MiB'>512</memory>"
    "<vcpu>1</vcpu><os><type>hvm</type></os>{devices}<test:runstate>{runstate}</test:runstate></domain>"
)
"""One guest of the test driver; runstate is libvirt's domain state (1 running, 3 paused, 5 shut off)."""


def write_host(directory: Path, records: dict, domains: Iterable[tuple[int, str, int]], *, cores: int,
               memory_kib: int, sockets: int = 1, threads: int = 1, devices: bool = False) -> Path:
    """A scenario directory: db.json holding `records`, libvirt.xml a test-driver node of that size with a
    domain for each (number, uuid, runstate); with `devices`, each has a disk file and a network interface."""
    guests = "".join(TEST_DOMAIN.format(number=number, uuid=uuid, runstate=runstate,
                                        devices=_devices(directory, number) if devices else "")
                     for number, uuid, runstate in domains)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "libvirt.xml").write_text(
        f"<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>{sockets}</sockets><cores>{cores}</cores>"
        f"<threads>{threads}</threads><active>{sockets * cores * threads}</active><model>x86_64</model></cpu>"
        f"<memory>{memory_kib}</memory>{DEVICE_NODE if devices else ''}{guests}</node>")
    (directory / "db.json").write_text(json.dumps(records))
    return directory

HOST_BOOT_MIX = (
    # (share, vm_state, task_state, db power, libvirt runstate): mostly guests shut off by the outage
    (0.70, "active", None, "running", 5),
    (0.10, "stopped", None, "shutdown", 5),
    (0.05, "active", "rebooting", "running", 5),
    (0.05, "active", "image_snapshot", "running", 5),
    (0.04, "active", "powering-off", "running", 1),
    (0.03, "building", "spawning", "nostate", None),
    (0.03, "error", None, "shutdown", 5),
)


def instance_uuid(host: str, number: int) -> str:
    """Distinct on every host of a fleet; stable from run to run."""
    return str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{number}.{host}"))


INTERRUPTED_HARD_REBOOTS = ((1.0, "active", "rebooting_hard", "running", 5),)
"""Every guest was hard rebooting when the host went down: each must be rebooted exactly once."""


DEVICE_NODE = "<network><name>default</name><bridge name='virbr0'/></network>"
"""The test driver's default network, for a scenario whose guests use it."""


def _devices(directory: Path, number: int) -> str:
    """A guest's devices as the device proof reads them (docs/devices.md): a disk file of its own (made
    here, empty) and an interface on the default network."""
    disk = directory / "disks" / f"{number}.qcow2"
    disk.touch()
    return (f"<devices><disk type='file' device='disk'><source file='{disk}'/><target dev='vda' bus='virtio'/></disk>"
            f"<interface type='network'><mac address='52:54:00:{number >> 16 & 255:02x}:{number >> 8 & 255:02x}:"
            f"{number & 255:02x}'/><source network='default'/></interface></devices>")


def write_scenario(directory: Path, count: int, seed: int = 7, host: str = "bench-host",
                   mix: tuple = HOST_BOOT_MIX, devices: bool = False) -> Path:
    """A generated outage scenario of `count` instances on `host` in the format of docs/scenarios.md;
    with `devices`, each guest has a disk file and an interface on the default network, both present."""
    rng = random.Random(seed)
    if devices:
        (directory / "disks").mkdir(parents=True, exist_ok=True)
    instances, domains = [], []
    shares = [m[0] for m in mix]
    for number in range(1, count + 1):
        _, vm_state, task_state, db_power, runstate = rng.choices(mix, weights=shares)[0]
        uuid = instance_uuid(host, number)
        instances.append({"uuid": uuid, "display_name": f"guest-{number}", "host": host, "node": host,
                          "vm_state": vm_state, "task_state": task_state, "power_state": db_power,
                          "vcpus": 1, "memory_mb": 512, "root_gb": 1})
        if runstate is not None:
            domains.append((number, uuid, runstate))
    services = [{"host": host, "binary": "nova-compute", "topic": "compute", "report_count": 1}]
    return write_host(directory, {"host": host, "instances": instances, "services": services}, domains,
                      sockets=2, cores=32, threads=2, memory_kib=1073741824, devices=devices)


ORDERED_RESTART_DATABASE = "6c1a0b52-0000-4000-8000-000000000061"
"""fixtures/ordered-restart's database guest: the one whose readiness check the probe tests point."""


def ordered_restart_checked(directory: Path, address: str, port: int) -> tuple[Path, dict]:
    """fixtures/ordered-restart copied to `directory`, its database guest checked by `tcp:port` at `address`
    (recover:ready, recover:address): the scenario and its records, written."""
    shutil.copytree(FIXTURES / "ordered-restart", directory)
    doc = json.loads((directory / "db.json").read_text())
    for item in doc["instances"]:
        if item["uuid"] == ORDERED_RESTART_DATABASE:
            item["metadata"] |= {"recover:ready": f"tcp:{port}", "recover:address": address}
    (directory / "db.json").write_text(json.dumps(doc))
    return directory, doc

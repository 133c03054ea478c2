"""The recovery on a real libvirtd with real QEMU guests (tests/real_libvirt.py).

The power outage of fixtures/power-outage is made real: every guest the
scenario shows shut off is started and killed with kill -9, paused ones are
suspended, the sleeping one is put to sleep through ACPI. What is asserted is
what libvirt itself then reports (state and reason, and the domain id, which
changes when a guest is booted again), the database rows, the files on disk,
the exit codes.
"""

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from real_libvirt import (
    URI,
    Daemon,
    Guests,
    RealHypervisorUnavailable,
    make_disk,
    running_daemon,
    traversable,
)

from recovery.db import open_database
from recovery.hypervisor import Hypervisor
from recovery.scenario_seed import read_db_json, seed

ROOT = Path(__file__).resolve().parent.parent
OUTAGE = ROOT / "fixtures" / "power-outage"
CLI = Path(sys.executable).with_name("compute-recover")
HOST = "compute-1"

RUNNING, PAUSED, SHUTOFF, PMSUSPENDED = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED,
                                         libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_PMSUSPENDED)
BOOTED = (RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED)
UNPAUSED = (RUNNING, libvirt.VIR_DOMAIN_RUNNING_UNPAUSED)
CRASHED = (SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
DESTROYED = (SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)


def U(nn: str) -> str:
    return f"6c1a0b52-0000-4000-8000-0000000000{nn}"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    try:
        with running_daemon() as running:
            yield running
    except RealHypervisorUnavailable as error:
        pytest.fail(f"the real-hypervisor suite cannot run: {error}", pytrace=False)


@pytest.fixture
def guests(daemon: Daemon) -> Iterator[Guests]:
    defined = Guests()
    yield defined
    defined.remove_all()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the libvirt-qemu user can reach (pytest's tmp_path is root's alone)."""
    path = traversable(Path(tempfile.mkdtemp(prefix="compute-recover-real-", dir="/var/tmp")) / "x").parent
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hv(daemon: Daemon) -> Iterator[Hypervisor]:
    hypervisor = Hypervisor.open(URI)
    yield hypervisor
    hypervisor.close()


# -- database and command line ---------------------------------------------------------------------


def seeded_database(path: Path, data: dict) -> str:
    """An SQLite database at `path` holding the scenario document `data`; its URL.

    The one place these tests create and fill a schema.
    """
    url = f"sqlite:///{path}"
    db = open_database(url)
    try:
        seed(db, data)
    finally:
        db.close()
    return url


def rows(path: Path, table: str, key: str) -> dict[str, dict]:
    """Every row of `table` by `key`, without the row id and the times of the writes."""
    con = sqlite3.connect(path)
    con.row_factory = sqlite3.Row
    try:
        return {row[key]: {k: row[k] for k in row.keys() if k not in ("id", "updated_at", "deleted_at")}  # noqa: SIM118
                for row in con.execute(f'SELECT * FROM "{table}"')}
    finally:
        con.close()


def recover(url: str, *options: object) -> subprocess.CompletedProcess:
    """`compute-recover run` against the real libvirtd, as an operator would type it."""
    command = [CLI, "run", "--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST, "--json", *options]
    return subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300)


# -- the outage on real guests -------------------------------------------------------------------------


def scenario_domains() -> list[tuple[str, str, int]]:
    """(name, uuid, libvirt state) of every domain in the scenario's node document."""
    node = ElementTree.parse(OUTAGE / "libvirt.xml").getroot()
    runstate = "{http://libvirt.org/schemas/domain/test/1.0}runstate"
    return [(dom.findtext("name"), dom.findtext("uuid"), int(dom.findtext(runstate))) for dom in node.iter("domain")]


def make_outage(guests: Guests, instances: Path, elsewhere: Path) -> None:
    """Define the scenario's domains as real guests and bring each to its state the real way.

    Instances 10 (being deleted) and 18 (evacuated away) and 22 have local disks
    under the instances path; 18 also has a volume outside it.
    """
    disks = {U(nn): [make_disk(instances / U(nn) / "disk")] for nn in ("10", "18", "22")}
    disks[U("18")].append(make_disk(elsewhere / "volume.qcow2"))
    outage = {RUNNING: guests.start, PAUSED: guests.pause, SHUTOFF: guests.crash, PMSUSPENDED: guests.pm_suspend}

    def bring_about(name: str, uuid: str, state: int) -> None:
        outage[state](guests.define(name, uuid, disks.get(uuid, [])))

    guests.in_parallel(bring_about, scenario_domains())


EXPECTED_AFTER_OUTAGE = {
    # nn: (libvirt state, reason) after the run, or None for no domain; booted ones were started afresh
    "01": BOOTED, "03": BOOTED, "04": BOOTED, "05": BOOTED, "06": BOOTED, "13": BOOTED, "16": BOOTED,
    "09": CRASHED, "20": CRASHED, "21": CRASHED, "22": CRASHED,  # error, soft-deleted, stopped: left off
    "10": None, "18": None,  # deletion finished; evacuated away
    "12": DESTROYED,  # firmware ignores the ACPI shutdown: destroyed after --stop-timeout
    "14": UNPAUSED,
}
UNCHANGED = ("02", "07", "15", "17", "19", "23", "24", "ff")
"""Guests the run leaves as they were, not restarted (same domain id): 02's soft reboot goes to a firmware
that ignores it, 17 had no job to abort, 23 sleeps (suspended), the rest run and need nothing."""


def domain_view(guests: Guests) -> dict[str, tuple]:
    """libvirt's (state, reason) and domain id of every scenario domain."""
    view = {}
    for _name, uuid, _state in scenario_domains():
        state = guests.state(uuid)
        view[uuid] = (state, guests.domain_id(uuid) if state is not None else None)
    return view


def test_power_outage_on_real_guests(guests: Guests, workdir: Path) -> None:
    instances, elsewhere = workdir / "instances", workdir / "elsewhere"
    base_image = instances / "_base" / "image"
    base_image.parent.mkdir(parents=True)
    base_image.write_text("a cached image no instance's disk list names")
    make_outage(guests, instances, elsewhere)
    url = seeded_database(workdir / "db.sqlite", read_db_json(OUTAGE / "db.json"))
    before = domain_view(guests)

    database = workdir / "db.sqlite"
    seeded_rows = rows(database, "instances", "uuid")
    options = ("--resume-guests-state-on-host-boot", "--stop-timeout", "1", "--instances-path", instances)

    dry = recover(url, *options, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert domain_view(guests) == before
    assert rows(database, "instances", "uuid") == seeded_rows

    first = recover(url, *options)
    assert first.returncode == 0, first.stderr
    after = domain_view(guests)
    assert {nn: after[U(nn)][0] for nn in EXPECTED_AFTER_OUTAGE} == EXPECTED_AFTER_OUTAGE
    assert {nn: after[U(nn)] for nn in UNCHANGED} == {nn: before[U(nn)] for nn in UNCHANGED}
    assert after[U("14")][1] == before[U("14")][1]  # unpaused in place

    # destroy_disks: the local disks of 10 and 18 and their directories went, nothing else did
    assert not (instances / U("10")).exists()
    assert not (instances / U("18")).exists()
    assert (instances / U("22") / "disk").is_file()
    assert (elsewhere / "volume.qcow2").is_file()
    assert base_image.is_file()

    # the rows are what the policy writes on libvirt's test driver for the same scenario
    reference = workdir / "reference.sqlite"
    on_test_driver = subprocess.run(
        [str(CLI), "run", "--scenario", str(OUTAGE), "--db", f"sqlite:///{reference}", "--json",
         "--stop-timeout", "1", "--resume-guests-state-on-host-boot"], capture_output=True, text=True)
    assert on_test_driver.returncode == 0, on_test_driver.stderr
    assert rows(database, "instances", "uuid") == rows(reference, "instances", "uuid")
    assert rows(database, "migrations", "instance_uuid") == rows(reference, "migrations", "instance_uuid")

    settled_rows = rows(database, "instances", "uuid")
    second = recover(url, *options)
    assert second.returncode == 0, second.stderr
    assert domain_view(guests) == after
    assert rows(database, "instances", "uuid") == settled_rows
    assert all(not item["actions"] or {a["name"] for a in item["actions"]} == {"plug_vifs"}
               for item in json.loads(second.stdout)["instances"])

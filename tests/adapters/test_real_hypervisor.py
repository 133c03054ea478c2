"""The recovery on a real libvirtd with real QEMU guests (tests/support/real_libvirt.py).

The power outage of fixtures/power-outage is made real: every guest the
scenario shows shut off is started and killed with kill -9, paused ones are
suspended, the sleeping one is put to sleep through ACPI. What is asserted is
what libvirt itself then reports (state and reason, and the domain id, which
changes when a guest is booted again), the database rows, the files on disk,
the exit codes.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import pytest

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.db.scenarios import read_db_json, seed
from tests.support.databases import migrated_database
from tests.support.parts import missing
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES, ROOT, U
from tests.support.real_libvirt import (
    LOCK,
    URI,
    Daemon,
    Guests,
    make_disk,
    make_ram_image,
    slow_reader,
    traversable,
    wait_for,
)
from tests.support.rows import rows

OUTAGE = FIXTURES / "power-outage"
HOST = "compute-1"

RUNNING, PAUSED, SHUTOFF, PMSUSPENDED = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED,
                                         libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_PMSUSPENDED)
BOOTED = (RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED)
UNPAUSED = (RUNNING, libvirt.VIR_DOMAIN_RUNNING_UNPAUSED)
CRASHED = (SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
DESTROYED = (SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED)


# -- fixtures ------------------------------------------------------------------------------------


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
    db = migrated_database(url)
    try:
        seed(db, data)
    finally:
        db.close()
    return url


def keyed_rows(path: Path, table: str, key: str) -> dict[str, dict]:
    """Every row of `table` by `key`, without the row id and the times of the writes."""
    return {row[key]: {k: v for k, v in row.items() if k not in ("id", "updated_at", "deleted_at")}
            for row in rows(f"sqlite:///{path}", f'SELECT * FROM "{table}"')}


def recover(url: str, *options: object) -> subprocess.CompletedProcess:
    """`compute-recover run` against the real libvirtd, as an operator would type it."""
    command = [CONSOLE_SCRIPT, "run", "--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST, "--json",
               *options]
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
    seeded_rows = keyed_rows(database, "instances", "uuid")
    options = ("--resume-guests-state-on-host-boot", "--stop-timeout", "1", "--instances-path", instances)

    dry = recover(url, *options, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert domain_view(guests) == before
    assert keyed_rows(database, "instances", "uuid") == seeded_rows

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
    seeded_database(reference, read_db_json(OUTAGE / "db.json"))
    on_test_driver = subprocess.run(
        [str(CONSOLE_SCRIPT), "run", "--scenario", str(OUTAGE), "--db", f"sqlite:///{reference}", "--json",
         "--stop-timeout", "1", "--resume-guests-state-on-host-boot"], capture_output=True, text=True)
    assert on_test_driver.returncode == 0, on_test_driver.stderr
    assert keyed_rows(database, "instances", "uuid") == keyed_rows(reference, "instances", "uuid")
    assert keyed_rows(database, "migrations", "instance_uuid") == keyed_rows(reference, "migrations", "instance_uuid")

    settled_rows = keyed_rows(database, "instances", "uuid")
    second = recover(url, *options)
    assert second.returncode == 0, second.stderr
    assert domain_view(guests) == after
    assert keyed_rows(database, "instances", "uuid") == settled_rows
    assert all(not item["actions"] or {a["name"] for a in item["actions"]} == {"plug_vifs"}
               for item in json.loads(second.stdout)["instances"])


# -- single actions on real guests -------------------------------------------------------------------------


GUEST = "6c1a0b52-0000-4000-8000-0000000000a1"


def one_instance(task_state: str | None) -> dict:
    """A scenario document with one instance of this host, active and running when the host went down."""
    instance = {"uuid": GUEST, "display_name": "saved-guest", "host": HOST, "node": HOST, "vm_state": "active",
                "task_state": task_state, "power_state": "running"}
    return {"host": HOST, "instances": [instance],
            "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}


@pytest.mark.parametrize(("task_state", "options"), [
    ("rebooting_hard", ()),  # an interrupted hard reboot: reboot{hard}
    (None, ("--resume-guests-state-on-host-boot",)),  # resume_guest, Nova's hard reboot
])
def test_a_managed_saved_guest_boots_fresh(guests: Guests, workdir: Path, task_state: str | None,
                                           options: tuple[str, ...]) -> None:
    dom = guests.define("instance-000000a1", GUEST)
    guests.managed_save(dom)
    assert dom.hasManagedSaveImage(0)
    url = seeded_database(workdir / "db.sqlite", one_instance(task_state))

    done = recover(url, *options)

    assert done.returncode == 0, done.stderr
    assert guests.state(GUEST) == BOOTED  # not (running, restored): the saved memory was not brought back
    assert not dom.hasManagedSaveImage(0)
    assert keyed_rows(workdir / "db.sqlite", "instances", "uuid")[GUEST]["task_state"] is None


@pytest.mark.parametrize("operation", ["stop", "revert_resize"])
def test_stopping_a_firmware_guest_honours_the_stop_timeout(guests: Guests, hv: Hypervisor, operation: str) -> None:
    # A guest in firmware never answers an ACPI shutdown, so only the timeout ends the wait.
    guests.start(guests.define("instance-000000a1", GUEST))
    started = time.monotonic()
    if operation == "stop":
        hv.stop(GUEST, timeout=1.0)
    else:
        hv.revert_resize(GUEST, power_on=False, timeout=1.0)
    waited = time.monotonic() - started
    assert guests.state(GUEST) == DESTROYED
    assert 1.0 <= waited < 30  # the timeout, not the 60 s default


@pytest.fixture
def dump_target(workdir: Path) -> Iterator[Path]:
    """A FIFO read slowly, so that a dump into it is a job that lasts."""
    fifo = workdir / "dump.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()
    slow_reader(fifo, stop)
    yield fifo
    stop.set()


def start_dump(uuid: str, target: Path, flags: int) -> tuple[threading.Thread, dict]:
    """`virsh dump` in a thread of its own connection; the returned dict gets its outcome."""
    outcome: dict = {}

    def dump() -> None:
        conn = libvirt.open(URI)
        try:
            conn.lookupByUUIDString(uuid).coreDumpWithFormat(str(target), libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_RAW,
                                                             flags)
            outcome["result"] = "completed"
        except libvirt.libvirtError as error:
            outcome["result"] = str(error)
        finally:
            conn.close()

    thread = threading.Thread(target=dump)
    thread.start()
    return thread, outcome


def job_running(dom: libvirt.virDomain) -> bool:
    return dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED


def test_abort_job_cancels_a_real_job(guests: Guests, hv: Hypervisor, workdir: Path, dump_target: Path) -> None:
    dom = guests.define("instance-000000a1", GUEST, ram_image=make_ram_image(workdir / "ram.bin"))
    guests.start(dom)
    hv.abort_job(GUEST)  # no job yet: nothing to do, no error
    thread, outcome = start_dump(GUEST, dump_target, libvirt.VIR_DUMP_LIVE)
    wait_for(lambda: job_running(dom), what="the dump job")

    hv.abort_job(GUEST)

    thread.join(timeout=60)
    assert "canceled by client" in outcome["result"]
    assert dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_NONE
    assert guests.state(GUEST)[0] == RUNNING
    hv.abort_job(GUEST)  # the job is gone: again no error


def test_a_job_libvirt_cannot_abort_is_a_failure(guests: Guests, hv: Hypervisor, workdir: Path,
                                                 dump_target: Path) -> None:
    dom = guests.define("instance-000000a1", GUEST, ram_image=make_ram_image(workdir / "ram.bin"))
    guests.start(dom)
    thread, _outcome = start_dump(GUEST, dump_target, libvirt.VIR_DUMP_MEMORY_ONLY)
    wait_for(lambda: job_running(dom), what="the dump job")

    with pytest.raises(HypervisorError) as failed:
        hv.abort_job(GUEST)

    assert str(failed.value) == (f"cannot abort the job of domain {GUEST} on {URI}: "
                                 "Requested operation is not valid: cannot abort memory-only dump")
    guests.crash(dom)  # ends the dump
    thread.join(timeout=60)


# -- host facts and connections -----------------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True])  # a dry run's connection is read-only
def test_preflight_tells_kvm_from_tcg(daemon: Daemon, read_only: bool) -> None:
    hv = Hypervisor.open(URI, read_only=read_only)
    warnings = hv.preflight()
    hv.close()
    if Path("/dev/kvm").exists():
        assert warnings == []
    else:
        assert [w for w in warnings if w.startswith("KVM is not usable on this host")]


def test_local_gb_is_the_instances_paths_filesystem(daemon: Daemon, workdir: Path) -> None:
    # The suite's libvirtd has no storage pool, as is usual on a Nova host.
    hv = Hypervisor.open(URI, instances_path=workdir)
    try:
        assert hv.capacity().local_gb == shutil.disk_usage(workdir).total // 2**30 > 0
    finally:
        hv.close()


def connections_of_this_process() -> int:
    """Clients of libvirtd whose peer is this test process, as libvirtd's admin interface lists them."""
    def admin(*command: str) -> str:
        return subprocess.run(["virt-admin", *command], capture_output=True, text=True, check=True).stdout

    ids = [line.split()[0] for line in admin("client-list", "libvirtd").splitlines() if line.strip()[:1].isdigit()]
    peers = [admin("client-info", "libvirtd", client_id) for client_id in ids]
    return sum(1 for info in peers if any(line.replace(" ", "") == f"unix_process_id:{os.getpid()}"
                                          for line in info.splitlines()))


def test_each_worker_thread_has_its_own_connection(daemon: Daemon) -> None:
    # libvirtd serves 5 calls of one connection at once (max_client_requests): 8 workers need more.
    workers = 8
    hv = Hypervisor.open(URI)
    barrier = threading.Barrier(workers)

    def read(_: int) -> None:
        barrier.wait()
        hv.domains()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(read, range(workers)))
    while_open = connections_of_this_process()
    hv.close()
    # Counted by what closing takes away, so that other tests' connections libvirtd is still
    # dropping cannot disturb the count: the first connection and one per worker.
    wait_for(lambda: connections_of_this_process() <= while_open - (workers + 1), timeout=10,
             what=f"{workers + 1} connections to close")


def test_a_lost_libvirtd_is_hypervisor_lost(daemon: Daemon) -> None:
    if not daemon.owned:
        missing("this libvirtd is the system's, not the suite's: the suite kills only a daemon it started")
    hv = Hypervisor.open(URI)
    try:
        hv.domains()
        daemon.kill()
        with pytest.raises(HypervisorLost) as lost:
            hv.domains()
        assert str(lost.value).startswith(f"lost the connection to libvirt at {URI} (")
        with pytest.raises(HypervisorLost):
            hv.start(GUEST)
        with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(HypervisorLost):
            pool.submit(hv.power_state, GUEST).result()
    finally:
        hv.close()
        daemon.start()


def test_a_second_real_hypervisor_run_waits_for_this_one(daemon: Daemon) -> None:
    """Another process's run (a second pytest, `make bench`) does not take this run's libvirtd for the
    system's, which this run kills, restarts and stops: it waits its turn, here 1 s, then says who holds it."""
    second = subprocess.run(
        [sys.executable, "-c", "from tests.support.real_libvirt import running_daemon\n"
         "with running_daemon(wait=1):\n    pass"],
        capture_output=True, text=True, timeout=60, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert second.returncode == 1
    assert second.stderr.rstrip().splitlines()[-1] == (
        f"tests.support.real_libvirt.RealHypervisorUnavailable: another real-hypervisor run (pid {os.getpid()}) "
        f"still holds {LOCK} after 1 s")


def test_undefine_takes_managed_save_and_snapshot_metadata_along(guests: Guests, hv: Hypervisor) -> None:
    # Plain virDomainUndefine refuses a domain with either.
    dom = guests.define("instance-000000a1", GUEST)
    snapshot = (f"<domainsnapshot><name>before-outage</name><state>shutoff</state><creationTime>1700000000"
                f"</creationTime><memory snapshot='no'/>{dom.XMLDesc(0)}</domainsnapshot>")
    dom.snapshotCreateXML(snapshot, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    guests.managed_save(dom)
    assert dom.hasManagedSaveImage(0) and dom.snapshotNum(0) == 1

    hv.destroy_and_undefine(GUEST)

    assert guests.state(GUEST) is None


# -- a hypervisor lost mid-run ----------------------------------------------------------------------


def twelve_to_resume(guests: Guests) -> tuple[dict, list[str]]:
    """Twelve shut-off guests whose records say they were running: each one is plugged, then started."""
    uuids = [f"6c1a0b52-0000-4000-8000-0000000001{n:02d}" for n in range(12)]
    for number, uuid in enumerate(uuids):
        guests.define(f"instance-000001{number:02x}", uuid)
    instances = [{"uuid": uuid, "display_name": f"resume-{n}", "host": HOST, "node": HOST, "vm_state": "active",
                  "task_state": None, "power_state": "running"} for n, uuid in enumerate(uuids)]
    return {"host": HOST, "instances": instances,
            "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}, uuids


def test_twelve_crashed_guests_all_come_back_at_the_default_concurrency(guests: Guests, workdir: Path) -> None:
    """The benchmark's outage as a test: twelve guests killed with kill -9 at once, then one run with the
    default --concurrency, whose workers each start guests on their own connection at the same time: every
    instance ok, every guest booted afresh."""
    data, uuids = twelve_to_resume(guests)
    guests.in_parallel(guests.crash, ((guests.domain(uuid),) for uuid in uuids))
    url = seeded_database(workdir / "db.sqlite", data)

    done = recover(url, "--resume-guests-state-on-host-boot")

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert {(i["uuid"], i["outcome"], i["error"]) for i in report["instances"]} == {(u, "ok", None) for u in uuids}
    assert {uuid: guests.state(uuid) for uuid in uuids} == dict.fromkeys(uuids, BOOTED)


def test_libvirtd_killed_mid_run_is_not_an_instance_failure(daemon: Daemon, guests: Guests, workdir: Path) -> None:
    """kill -9 of libvirtd 3 s into a run of 12 starts: the run stops starting actions, reports and finishes
    its journal, writes no failure for what it did not reach; once libvirtd is back, the next run leaves
    every guest running, as an uninterrupted run would have."""
    if not daemon.owned:
        missing("this libvirtd is the system's, not the suite's: the suite kills only a daemon it started")
    data, uuids = twelve_to_resume(guests)
    url = seeded_database(workdir / "db.sqlite", data)
    plug = workdir / "slow-plug"
    plug.write_text("#!/bin/sh\nsleep 0.5\n")
    plug.chmod(0o755)
    command = [CONSOLE_SCRIPT, "run", "--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST, "--json",
               "--resume-guests-state-on-host-boot", "--concurrency", "2", "--plug-vifs-command", plug]
    run = subprocess.Popen([str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def started_guests() -> int:
        try:
            journal = keyed_rows(workdir / "db.sqlite", "recovery_journal", "instance_uuid").values()
        except sqlite3.Error:
            return 0
        return sum(e["outcome"] == "ok" for e in journal)

    try:
        wait_for(lambda: started_guests() >= 2, timeout=120, what="the run to have started two guests")
        daemon.kill()
        out, err = run.communicate(timeout=300)
    finally:
        daemon.start()

    assert run.returncode == 1, err  # the run failed: not "refused", not a usage error
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["halted"] and report["halted"].startswith("lost the hypervisor")
    outcomes = {i["uuid"]: i["outcome"] for i in report["instances"]}
    assert set(outcomes.values()) <= {"ok", "interrupted", "not-started"}
    assert "not-started" in outcomes.values()
    records = keyed_rows(workdir / "db.sqlite", "instances", "uuid")
    assert {(r["vm_state"], r["task_state"]) for r in records.values()} == {("active", None)}  # no error, no stop
    [run_row] = keyed_rows(workdir / "db.sqlite", "recovery_runs", "id").values()
    assert run_row["status"] == "finished" and run_row["exit_code"] == 1
    journal = keyed_rows(workdir / "db.sqlite", "recovery_journal", "instance_uuid")
    assert {e["outcome"] for e in journal.values()} == set(outcomes.values())

    again = recover(url, "--resume-guests-state-on-host-boot")

    assert again.returncode == 0, again.stderr
    assert all(guests.state(uuid)[0] == RUNNING for uuid in uuids)
    records = keyed_rows(workdir / "db.sqlite", "instances", "uuid")
    assert {(r["vm_state"], r["task_state"], r["power_state"]) for r in records.values()} == {("active", None, 1)}


def test_a_guest_agent_that_never_answers_holds_its_tier_only_until_the_timeout(guests: Guests, workdir: Path) -> None:
    """recover:ready=agent on a firmware guest, which has no QEMU guest agent: it is started, reported
    not ready once --tier-timeout has passed, and the next tier's guest is started after that."""
    database, application = (f"6c1a0b52-0000-4000-8000-0000000002{n:02d}" for n in range(2))
    guests.define("instance-00000200", database)
    guests.define("instance-00000201", application)
    data = one_instance(None)
    data["instances"] = [
        {**data["instances"][0], "uuid": database, "display_name": "database",
         "metadata": {"recover:priority": "0", "recover:ready": "agent"}},
        {**data["instances"][0], "uuid": application, "display_name": "application",
         "metadata": {"recover:priority": "1"}},
    ]
    url = seeded_database(workdir / "db.sqlite", data)

    done = recover(url, "--resume-guests-state-on-host-boot", "--tier-timeout", "2s")

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    outcomes = {item["uuid"]: (item["outcome"], item["error"]) for item in report["instances"]}
    assert outcomes[database][0] == "not-ready"
    assert outcomes[database][1].startswith("not ready within the tier timeout (2 s): cannot ping the guest agent")
    assert outcomes[application] == ("ok", None)
    first, second = report["tiers"]
    # the report gives times rounded to the millisecond, each on its own: their difference may be 1 ms short
    assert first["ended"] - first["began"] >= 2 - 0.001 and second["began"] >= first["ended"]
    assert guests.state(database) == BOOTED and guests.state(application) == BOOTED
    assert keyed_rows(workdir / "db.sqlite", "recovery_journal", "instance_uuid")[database]["outcome"] == "not-ready"
    print(f"\ntier 0 (agent) began at {first['began']:.2f} s, gave up at {first['ended']:.2f} s; "
          f"tier 1 began at {second['began']:.2f} s, done at {second['ended']:.2f} s")


# -- the agent on real guests ---------------------------------------------------------------------------


def test_the_agent_keeps_real_guests_records_true(daemon: Daemon, guests: Guests, workdir: Path) -> None:
    """The agent on real QEMU: a guest killed behind its back is recorded stopped within 30 s; a stopped
    instance's guest started by hand is shut off again; an instance with a task_state is left alone; a
    reboot does not stop anything; SIGTERM exits 0."""
    killed, stopped, busy, rebooted = (f"6c1a0b52-0000-4000-8000-0000000002{n:02d}" for n in range(4))
    records = {killed: ("active", None, "running"), stopped: ("stopped", None, "shutdown"),
               busy: ("active", None, "running"), rebooted: ("active", None, "running")}
    domains = {uuid: guests.define(f"instance-000002{n:02x}", uuid) for n, uuid in enumerate(records)}
    for uuid in (killed, busy, rebooted):
        guests.start(domains[uuid])
    instances = [{"uuid": uuid, "host": HOST, "node": HOST, "vm_state": vm, "task_state": task, "power_state": power}
                 for uuid, (vm, task, power) in records.items()]
    url = seeded_database(workdir / "db.sqlite", {"host": HOST, "instances": instances,
                                                  "services": [{"host": HOST, "binary": "nova-compute"}]})
    command = [CONSOLE_SCRIPT, "-vv", "agent", "--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST,
               "--report-interval", "1", "--lifecycle-event-delay", "3", "--stop-timeout", "3"]
    log = workdir / "agent.log"
    with log.open("w") as stderr:
        agent = subprocess.Popen([str(part) for part in command], stdout=subprocess.DEVNULL, stderr=stderr)

    def record(uuid: str) -> tuple:
        row = keyed_rows(workdir / "db.sqlite", "instances", "uuid")[uuid]
        return row["vm_state"], row["task_state"], row["power_state"]

    try:
        wait_for(lambda: keyed_rows(workdir / "db.sqlite", "recovery_runs", "id")
                 and next(iter(keyed_rows(workdir / "db.sqlite", "recovery_runs", "id").values()))["status"]
                 == "finished", timeout=60, what="the agent's recovery to finish")
        rows(f"sqlite:///{workdir / 'db.sqlite'}",  # a snapshot starts after the recovery
             "UPDATE instances SET task_state = 'image_uploading' WHERE uuid = :uuid", uuid=busy)
        domains[rebooted].reboot(0)  # first: whatever events it brings are due before the busy guest's
        guests.crash(domains[killed])
        guests.crash(domains[busy])
        guests.start(domains[stopped])
        wait_for(lambda: record(killed)[0] == "stopped", timeout=30, what="the killed guest's record to be stopped")
        assert record(killed)[2] in (4, 6)  # shutdown or crashed
        wait_for(lambda: not domains[stopped].isActive(), timeout=30, what="the hand-started guest to be stopped")
        wait_for(lambda: f"instance {busy} (event STOPPED): not synced" in log.read_text(), timeout=30,
                 what="the busy guest's STOPPED event to be taken, past its delay")
        assert record(busy) == ("active", "image_uploading", 1)  # nothing happens to an instance with a task
        assert record(rebooted)[:2] == ("active", None) and domains[rebooted].isActive()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, log.read_text()
    assert record(stopped)[:2] == ("stopped", None)


def gauge(textfile: Path, metric: str) -> float | None:
    """A sample without labels from the agent's metrics textfile; None before the file or the sample exists."""
    try:
        lines = textfile.read_text().splitlines()
    except FileNotFoundError:
        return None
    return next((float(line.split()[1]) for line in lines if line.split()[:1] == [metric]), None)


def test_the_agent_rides_out_a_real_libvirtd_crash(daemon: Daemon, guests: Guests, workdir: Path) -> None:
    """kill -9 of the real libvirtd under the running `agent` (the guests' QEMU keep running, as after a crash):
    the agent logs the loss, disables its service (AUTO reason), sets compute_recover_libvirt_connected to 0,
    keeps beating and writes nothing to any instance. While libvirtd stays away it tries again every 5 s and
    does not exit. When libvirtd is back it re-enables the service, sets the gauge to 1 and hears events
    again: a guest crashed after the reconnect is recorded stopped. An operator's disable outlives a loss and a
    return. Lost for good, SIGTERM still ends it with exit 0."""
    if not daemon.owned:
        missing("this libvirtd is the system's, not the suite's: the suite kills only a daemon it started")
    crashed, steady = (f"6c1a0b52-0000-4000-8000-0000000003{n:02d}" for n in range(2))
    for number, uuid in enumerate((crashed, steady)):
        guests.start(guests.define(f"instance-000003{number:02x}", uuid))
    instances = [{"uuid": uuid, "host": HOST, "node": HOST, "vm_state": "active", "task_state": None,
                  "power_state": "running"} for uuid in (crashed, steady)]
    database = workdir / "db.sqlite"
    url = seeded_database(database, {"host": HOST, "instances": instances,
                                     "services": [{"host": HOST, "binary": "nova-compute"}]})
    textfile, log = workdir / "agent.prom", workdir / "agent.log"
    command = [CONSOLE_SCRIPT, "agent", "--db", url, "--libvirt-uri", URI, "--host", HOST, "--node", HOST,
               "--report-interval", "1", "--lifecycle-event-delay", "3", "--metrics-textfile", textfile]
    with log.open("w") as stderr:
        agent = subprocess.Popen([str(part) for part in command], stdout=subprocess.DEVNULL, stderr=stderr)

    def service() -> dict:
        return keyed_rows(database, "services", "host")[HOST]

    def connected() -> float | None:
        return gauge(textfile, "compute_recover_libvirt_connected")

    def records() -> dict[str, tuple]:
        return {uuid: (r["vm_state"], r["task_state"], r["power_state"])
                for uuid, r in keyed_rows(database, "instances", "uuid").items()}

    try:
        wait_for(lambda: connected() == 1, timeout=60, what="the agent to have recovered the host")
        settled = records()
        assert settled == {crashed: ("active", None, 1), steady: ("active", None, 1)}

        daemon.kill()
        wait_for(lambda: connected() == 0, timeout=15, what="the agent to notice libvirtd is gone")
        assert (service()["disabled"], service()["disabled_reason"]) == (1, "AUTO: Connection to libvirt lost")
        beats = service()["report_count"]
        time.sleep(11)  # two reconnect attempts, both failing
        assert agent.poll() is None  # no bounded wait: it stays, disabled, and keeps trying
        assert service()["report_count"] > beats  # still up, as Nova shows a disabled service
        assert records() == settled  # a lost libvirt is no instance's failure
        assert log.read_text().count("libvirt still unreachable") in (2, 3)  # every 5 s

        daemon.start()
        wait_for(lambda: connected() == 1, timeout=30, what="the agent to reconnect")
        wait_for(lambda: not service()["disabled"], timeout=5, what="the service to be enabled again")
        assert service()["disabled_reason"] is None
        assert records() == settled
        guests.crash(guests.domain(crashed))
        wait_for(lambda: records()[crashed][0] == "stopped", timeout=30, what="the crash after the reconnect")
        assert records()[crashed] in (("stopped", None, 4), ("stopped", None, 6))  # shutdown or crashed
        assert records()[steady] == settled[steady]

        rows(f"sqlite:///{database}", "UPDATE services SET disabled = 1, disabled_reason = 'maintenance'")
        daemon.kill()
        wait_for(lambda: connected() == 0, timeout=15, what="the agent to notice libvirtd is gone again")
        daemon.start()
        wait_for(lambda: connected() == 1, timeout=30, what="the agent to reconnect again")
        assert (service()["disabled"], service()["disabled_reason"]) == (1, "maintenance")  # an operator's stays

        daemon.kill()
        wait_for(lambda: connected() == 0, timeout=15, what="the agent to notice libvirtd is gone for good")
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
        daemon.start()
    err = log.read_text()
    assert agent.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("lost the connection to libvirt: libvirt closed the connection") == 3, err
    assert "service disabled: AUTO: Connection to libvirt lost" in err
    assert "libvirt still unreachable: cannot open libvirt at 'qemu:///system'" in err
    assert err.count("the connection to libvirt is back") == 2
    assert err.count("service re-enabled") == 1
    assert records()[steady] == settled[steady]

"""The device proof in a run, on the libvirt test driver (docs/devices.md): blocked guests are not started and
their records left as they were, an inactive network shared by two guests is started once, the others start,
a plan shows it all and changes nothing, and the journal and the exit code say so."""

import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import libvirt
from click.testing import CliRunner

from recovery.adapters.hypervisor import Hypervisor, HypervisorError
from recovery.cli import cli
from recovery.core.facts import Options, facts_from_record
from recovery.core.machine import shared_machine
from recovery.core.settings import RunSettings
from recovery.db import open_database
from recovery.db.scenarios import seed_if_empty
from recovery.present.report import run_json
from recovery.run.boot import HostBoot
from recovery.run.devices import DeviceCheck
from recovery.run.execute import Assignment
from tests.support.databases import migrated_database

HOST = "compute-1"


def U(nn: str) -> str:
    return f"6c1a0b52-0000-4000-8000-00000000e0{nn}"


def _domain(nn: str, devices: str) -> str:
    return (f"<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>instance-{nn}</name>"
            f"<uuid>{U(nn)}</uuid><memory unit='MiB'>64</memory><os><type>hvm</type></os><devices>{devices}"
            "</devices><test:runstate>5</test:runstate></domain>")


def _host(tmp_path: Path) -> tuple[str, dict]:
    """A test-driver host after a reboot (every guest shut off) and its records: 01 has everything, 02's disk
    is gone, 03 and 04 share an inactive network, 05's bridge does not exist, 06 was being powered on when
    the host went down and its disk is gone too."""
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"")
    present, gone = f"<disk type='file'><source file='{disk}'/><target dev='vda'/></disk>", (
        f"<disk type='file'><source file='{tmp_path / 'gone.qcow2'}'/><target dev='vda'/></disk>")
    lan = "<interface type='network'><mac address='52:54:00:00:00:{}'/><source network='{}'/></interface>"
    domains = [_domain("01", present + lan.format("01", "tenant-a")), _domain("02", gone),
               _domain("03", present + lan.format("03", "tenant-b")), _domain("04", lan.format("04", "tenant-b")),
               _domain("05", "<interface type='bridge'><source bridge='nosuchbr0'/></interface>"),
               _domain("06", gone)]
    node = tmp_path / "libvirt.xml"
    node.write_text("<node><cpu><mhz>1000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4"
                    "</cores><threads>1</threads><active>4</active></cpu><memory>8388608</memory>"
                    "<network><name>tenant-a</name><bridge name='virbr1'/></network>" + "".join(domains) + "</node>")
    instances = [{"uuid": U(nn), "display_name": f"guest-{nn}", "host": HOST, "node": HOST, "vm_state": "active",
                  "task_state": "powering-on" if nn == "06" else None, "power_state": 1, "vcpus": 1, "memory_mb": 64,
                  "root_gb": 0} for nn in ("01", "02", "03", "04", "05", "06")]
    return f"test://{node}", {"host": HOST, "instances": instances,
                              "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}


def _run(tmp_path: Path, dry_run: bool) -> tuple[dict, int, libvirt.virConnect, str]:
    uri, records = _host(tmp_path)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_if_empty(migrated_database(url), records)
    conn = libvirt.open(uri)
    conn.networkDefineXML("<network><name>tenant-b</name><bridge name='virbr2'/></network>")  # left inactive
    db = open_database(url, read_only=dry_run)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                           dry_run=dry_run, stop_timeout=1)
    try:
        result = HostBoot(shared_machine(), Hypervisor(conn, uri, dry_run), db, settings).run()
    finally:
        db.close()
    return run_json(result), result.exit_code, conn, url


def _items(doc: dict) -> dict[str, dict]:
    return {item["uuid"][-2:]: item for item in doc["instances"]}


def test_a_run_blocks_repairs_once_and_starts_the_rest(tmp_path):
    doc, exit_code, conn, url = _run(tmp_path, dry_run=False)
    items = _items(doc)
    assert {nn: i["outcome"] for nn, i in items.items()} == {
        "01": "ok", "02": "blocked", "03": "ok", "04": "ok", "05": "blocked", "06": "blocked"}
    assert items["02"]["error"] == f"blocked: disk {tmp_path / 'gone.qcow2'} does not exist"
    assert items["05"]["error"] == "blocked: bridge nosuchbr0 missing"
    assert [a["name"] for a in items["03"]["actions"]] == ["plug_vifs", "repair_devices", "resume_guest"]
    started = [w for w in doc["warnings"] if w.startswith("started ")]
    assert started == ["started network 'tenant-b' before the guests that need it"]  # once for 03 and 04
    assert conn.networkLookupByName("tenant-b").isActive()
    running = {dom.name()[-2:] for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}
    assert running == {"01", "03", "04"}
    assert exit_code == 1 and doc["totals"]["blocked"] == 3 and doc["totals"]["degraded"] == 0
    db = open_database(url)
    try:
        rows = db.load_instances_by_uuid([U(nn) for nn in ("02", "05", "06")])
        assert {(r.vm_state, r.task_state) for r in rows.values()} == {("active", None), ("active", "powering-on")}
    finally:
        db.close()
    journal = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        entries = dict(journal.execute("SELECT instance_uuid, outcome || ': ' || error FROM recovery_journal "
                                       "WHERE outcome = 'blocked'"))
    finally:
        journal.close()
    assert entries == {U(nn): items[nn]["outcome"] + ": " + items[nn]["error"] for nn in ("02", "05", "06")}
    explained = CliRunner().invoke(cli, ["explain", U("06"), "--db", url])
    assert explained.exit_code == 0, explained.output
    assert 'devices = "missing"' in explained.stdout and "[MATCH] retry_start" in explained.stdout
    assert f"outcome: blocked — blocked: disk {tmp_path / 'gone.qcow2'} does not exist" in explained.stdout


def test_a_plan_shows_the_proof_and_changes_nothing(tmp_path):
    doc, exit_code, conn, _url = _run(tmp_path, dry_run=True)
    items = _items(doc)
    assert {nn: i["outcome"] for nn, i in items.items()} == dict.fromkeys(("01", "02", "03", "04", "05", "06"),
                                                                            "skipped")
    assert items["01"]["error"] is None
    assert items["06"]["error"] == f"blocked: disk {tmp_path / 'gone.qcow2'} does not exist"
    assert items["04"]["error"] == "repairable: network 'tenant-b' is inactive (started before the guest)"
    assert items["06"]["actions"] == [] and "blocked" in items["06"]["reason"]
    assert not conn.networkLookupByName("tenant-b").isActive() and exit_code == 0


LIVE = "<domain><devices><disk><target dev='vda'/></disk></devices></domain>"
"""A running domain that lacks the second disk and the interface it was defined with."""


class _Started:
    stopped: list[str]

    def __init__(self) -> None:
        self.stopped = []

    def stop(self, uuid: str) -> None:
        self.stopped.append(uuid)


def test_a_started_guest_lacking_a_defined_device_is_degraded_and_stopped_when_asked():
    from recovery.core.devices import read_definition

    hypervisor = _Started()
    check = DeviceCheck(hypervisor)  # type: ignore[arg-type]
    check.defined["u"] = read_definition(
        "<domain><devices><disk><target dev='vda'/></disk><disk><target dev='vdb'/></disk>"
        "<interface type='bridge'><mac address='52:54:00:AA:00:01'/></interface></devices></domain>").devices
    assert check.degraded("u", LIVE, "keep") == (
        "degraded: disk vdb, interface 52:54:00:aa:00:01 missing after the start")
    assert hypervisor.stopped == []
    assert check.degraded("u", LIVE, "stop").endswith("missing after the start; stopped")
    assert hypervisor.stopped == ["u"]
    assert check.degraded("never-proved", LIVE, "stop") is None
    assert json.dumps(check.warnings()) == "[]"


class _Unreadable:
    def domain_xmls(self, _uuids, _inactive=False):
        raise HypervisorError("cannot read the domains' XML on test:///x: gone")


def test_a_host_whose_definitions_cannot_be_read_is_not_proved_and_says_so():
    facts = facts_from_record({"uuid": U("02"), "vm_state": "active", "task_state": "powering-on",
                               "power_state": "shutdown", "db_power_state": "running"}, HOST, Options())
    assignment = Assignment(U("02"), shared_machine().decide(facts), writable=True)
    check = DeviceCheck(_Unreadable())  # type: ignore[arg-type]
    check.prove_assignments([assignment], shared_machine())
    assert [a.name for a in assignment.decision.actions] == ["start"] and check.proofs == {}
    assert check.warnings() == ["no device proof was made (cannot read the domains' XML on test:///x: gone): "
                                "guests were started without it"]


def test_a_plan_file_keeps_the_proof_and_run_plan_blocks_as_planned(tmp_path):
    _uri, records = _host(tmp_path)  # no tenant-b here: 03 and 04 are blocked too
    (tmp_path / "db.json").write_text(json.dumps(records))
    url, assignment = f"sqlite:///{tmp_path / 'db.sqlite'}", str(tmp_path / "plan.json")
    runner = CliRunner()
    for command in (["db", "upgrade", "--db", url], ["scenario", "load", str(tmp_path), "--db", url],
                    ["plan", "--scenario", str(tmp_path), "--db", url, "--resume-guests-state-on-host-boot",
                     "--out", assignment]):
        assert runner.invoke(cli, command).exit_code == 0, command
    done = runner.invoke(cli, ["run", "--plan", assignment, "--scenario", str(tmp_path), "--db", url, "--json"])
    outcomes = {item["uuid"][-2:]: item["outcome"] for item in json.loads(done.stdout)["instances"]}
    assert outcomes == {"01": "ok", "02": "blocked", "03": "blocked", "04": "blocked", "05": "blocked",
                        "06": "blocked"}
    assert done.exit_code == 1


def test_the_repairs_are_in_the_journal_and_explain_shows_them(tmp_path):
    _doc, _exit_code, _conn, url = _run(tmp_path, dry_run=False)
    journal = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        actions = {uuid[-2:]: json.loads(text) for uuid, text in journal.execute(
            "SELECT instance_uuid, actions FROM recovery_journal WHERE instance_uuid IN (?, ?)", (U("03"), U("04")))}
    finally:
        journal.close()
    for nn in ("03", "04"):  # one start of the shared network, and each guest's entry names it
        repair = next(a for a in actions[nn] if a["name"] == "repair_devices")
        assert repair == {"name": "repair_devices", "repaired": ["network 'tenant-b'"], "outcome": "ok", "error": None}
    explained = CliRunner().invoke(cli, ["explain", U("04"), "--db", url])
    assert explained.exit_code == 0, explained.output
    assert """  repair_devices(repaired=["network 'tenant-b'"]): ok""" in explained.stdout


class _LosesInterfaces(Hypervisor):
    """The test driver, but every running domain comes up without the interfaces it was defined with."""

    def domain_xmls(self, uuids, inactive=False):
        found = super().domain_xmls(uuids, inactive)
        if inactive:
            return found
        return {uuid: re.sub(r"<interface .*?</interface>", "", xml, flags=re.S) for uuid, xml in found.items()}


def _degraded_run(tmp_path: Path, url: str, uri: str) -> tuple[dict, libvirt.virConnect]:
    conn = libvirt.open(uri)
    db = open_database(url)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                           stop_timeout=1, on_degraded="stop")
    try:
        result = HostBoot(shared_machine(), _LosesInterfaces(conn, uri, False), db, settings).run()
    finally:
        db.close()
    return run_json(result), conn


def test_a_degraded_guest_stopped_is_recorded_stopped_and_not_started_again(tmp_path):
    uri, records = _host(tmp_path)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_if_empty(migrated_database(url), records)
    doc, conn = _degraded_run(tmp_path, url, uri)
    item = _items(doc)["01"]
    assert item["outcome"] == "degraded"
    assert item["error"] == "degraded: interface 52:54:00:00:00:01 missing after the start; stopped"
    assert item["actions"][-1] == {"name": "stop", "outcome": "ok", "error": None}
    assert (item["vm_state"], item["task_state"]) == ("stopped", None)
    assert not conn.lookupByUUIDString(U("01")).isActive()
    db = open_database(url)
    try:
        row = db.load_instances_by_uuid([U("01")])[U("01")]
        assert (row.vm_state, row.task_state, row.power_state) == ("stopped", None, 4)  # as a stop leaves it
    finally:
        db.close()
    journal = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        final = journal.execute("SELECT final_vm_state, final_task_state, actions FROM recovery_journal "
                                "WHERE instance_uuid = ?", (U("01"),)).fetchone()
    finally:
        journal.close()
    assert final[:2] == ("stopped", None) and json.loads(final[2])[-1]["name"] == "stop"
    again = _items(_degraded_run(tmp_path, url, uri)[0])["01"]  # the same host state: left stopped
    assert [a["name"] for a in again["actions"]] == ["plug_vifs"] and again["outcome"] == "ok"


def test_a_resize_reverted_then_resumed_repairs_once_and_a_shared_network_is_started_once(tmp_path):
    """A crashed resize reverted with power on, then the guest resumed: both steps start it and each asks for
    its inactive network's repair; the instance repairs once (its journaled actions), and the network, shared
    with a guest that is only resumed, is started once in the run."""
    lan = "<interface type='network'><mac address='52:54:00:00:01:{}'/><source network='tenant-b'/></interface>"
    node = tmp_path / "libvirt.xml"
    node.write_text("<node><cpu><mhz>1000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4"
                    "</cores><threads>1</threads><active>4</active></cpu><memory>8388608</memory>"
                    + _domain("07", lan.format("07")) + _domain("08", lan.format("08")) + "</node>")
    uri, url = f"test://{node}", f"sqlite:///{tmp_path / 'db.sqlite'}"
    instances = [{"uuid": U(nn), "display_name": f"guest-{nn}", "host": HOST, "node": HOST, "vm_state": "active",
                  "task_state": task, "power_state": 1, "vcpus": 1, "memory_mb": 64, "root_gb": 0}
                 for nn, task in (("07", "resize_migrating"), ("08", None))]
    seed_if_empty(migrated_database(url), {"host": HOST, "instances": instances,
                                           "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]})
    conn = libvirt.open(uri)
    conn.networkDefineXML("<network><name>tenant-b</name><bridge name='virbr2'/></network>")  # left inactive
    db = open_database(url)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True), stop_timeout=1)
    try:
        result = HostBoot(shared_machine(), Hypervisor(conn, uri, False), db, settings).run()
    finally:
        db.close()
    doc = run_json(result)
    assert {nn: i["outcome"] for nn, i in _items(doc).items()} == {"07": "ok", "08": "ok"}
    journal = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        journaled = {uuid[-2:]: [a["name"] for a in json.loads(actions)] for uuid, actions in journal.execute(
            "SELECT instance_uuid, actions FROM recovery_journal")}
    finally:
        journal.close()
    assert journaled == {"07": ["plug_vifs", "repair_devices", "revert_resize", "resume_guest"],
                         "08": ["plug_vifs", "repair_devices", "resume_guest"]}
    assert [w for w in doc["warnings"] if "tenant-b" in w] == ["started network 'tenant-b' before the guests that "
                                                               "need it"]
    assert conn.networkLookupByName("tenant-b").isActive()


SECRET = "5e1a0b52-0000-4000-8000-00000000c0de"


class _WithSecret(Hypervisor):
    """The test driver (which has no secrets), with one secret: its value cannot be read over a read-only
    connection, as libvirtd refuses it; over a read-write one it is set or not (`value`)."""

    value = True

    def inventory(self, paths):
        found = super().inventory(paths)
        return dataclasses.replace(found, secrets={SECRET: None if self.read_only else self.value})


def _secret_host(tmp_path: Path) -> tuple[str, str]:
    """Guest 09, resumed after the outage, whose disk is encrypted with SECRET."""
    disk = tmp_path / "luks.qcow2"
    disk.write_bytes(b"")
    luks = (f"<disk type='file'><source file='{disk}'/><target dev='vda'/><encryption format='luks'>"
            f"<secret type='passphrase' uuid='{SECRET}'/></encryption></disk>")
    node = tmp_path / "libvirt.xml"
    node.write_text("<node><cpu><mhz>1000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>4"
                    "</cores><threads>1</threads><active>4</active></cpu><memory>8388608</memory>"
                    + _domain("09", luks) + "</node>")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_if_empty(migrated_database(url), {"host": HOST, "services": [
        {"host": HOST, "binary": "nova-compute", "topic": "compute"}], "instances": [
        {"uuid": U("09"), "display_name": "guest-09", "host": HOST, "node": HOST, "vm_state": "active",
         "task_state": None, "power_state": 1, "vcpus": 1, "memory_mb": 64, "root_gb": 0}]})
    return f"test://{node}", url


def _plan_then_apply(tmp_path: Path, value: bool) -> tuple[dict, dict, libvirt.virConnect]:
    """`plan --out` over a read-only connection, then `run --plan` over a read-write one (the secret's value
    `value`), as the commands make them: the plan's report, the run's, and the run's connection."""
    from recovery.run.plan_file import PlanWriter, load_for_run

    uri, url = _secret_host(tmp_path)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                           stop_timeout=1)
    path = tmp_path / "plan.json"
    writer, db = PlanWriter(path), open_database(url, read_only=True)
    try:
        planning = writer.settings_for(dataclasses.replace(settings, dry_run=True), uri)
        planned = HostBoot(shared_machine(), _WithSecret(libvirt.openReadOnly(uri), uri, True), db, planning,
                           screen=writer).run()
        writer.finish(planned)
    finally:
        db.close()
    applying = load_for_run(path, settings.options, frozenset())
    conn, db = libvirt.open(uri), open_database(url)
    hypervisor = _WithSecret(conn, uri, False)
    hypervisor.value = value
    try:
        applied = HostBoot(shared_machine(), hypervisor, db, applying.settings_for(settings, uri),
                           screen=applying).run()
    finally:
        db.close()
    return run_json(planned), run_json(applied), conn


def test_a_plan_made_read_only_leaves_a_secret_unverified_and_run_plan_starts_the_guest_once_its_value_is_read(
        tmp_path):
    planned, applied, conn = _plan_then_apply(tmp_path, value=True)
    (item,) = planned["instances"]
    assert item["error"] == f"unverified: secret {SECRET}: value not readable read-only"
    assert [a["name"] for a in item["actions"]] == ["plug_vifs", "resume_guest"]  # not blocked
    record = json.loads((tmp_path / "plan.json").read_text())["instances"][0]["record"]
    assert record["devices"] == "unverified"
    (item,) = applied["instances"]
    assert (item["outcome"], item["error"]) == ("ok", None)
    assert conn.lookupByUUIDString(U("09")).isActive()


def test_run_plan_blocks_a_guest_whose_unverified_secret_has_no_value(tmp_path):
    planned, applied, conn = _plan_then_apply(tmp_path, value=False)
    assert planned["instances"][0]["error"] == f"unverified: secret {SECRET}: value not readable read-only"
    (item,) = applied["instances"]
    assert (item["outcome"], item["error"]) == ("blocked", f"blocked: secret {SECRET}: no value")
    assert [a["name"] for a in item["actions"]] == ["plug_vifs"]
    assert not conn.lookupByUUIDString(U("09")).isActive() and applied["totals"]["blocked"] == 1

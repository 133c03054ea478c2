"""The agent re-checks the guests a run blocked for a missing resource when libvirt reports a storage pool or a
network appearing (docs/devices.md), on the libvirt test driver's lifecycle events: those now ready are
started, the others stay blocked, and the re-check is journaled as a run over them alone."""

import sqlite3
import time
from pathlib import Path

import libvirt

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_blocked, guests_started
from recovery.agent.metrics import Metrics
from recovery.cli.host import recover
from recovery.core.facts import Options
from recovery.core.settings import AgentSettings, RunSettings
from recovery.db import open_database
from recovery.db.scenarios import seed_if_empty
from tests.run.test_run_devices import HOST, U, _host
from tests.support.databases import migrated_database


def _heard(agent: Agent, count: int) -> None:
    deadline = time.monotonic() + 10
    while agent.resources_heard < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert agent.resources_heard >= count, "the test driver's network event never arrived"
    agent.tick()


def _running(conn: libvirt.virConnect) -> set[str]:
    return {dom.name()[-2:] for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)}


def test_a_network_appearing_starts_the_guests_it_blocked_and_only_them(tmp_path: Path) -> None:
    uri, records = _host(tmp_path)  # tenant-b is not defined: 03 and 04 are blocked, as 02, 05 and 06 are
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_if_empty(migrated_database(url), records)
    start_event_loop()
    conn, db = libvirt.open(uri), open_database(url)
    try:
        hv = Hypervisor(conn, uri, read_only=False)
        run = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                          stop_timeout=1)
        agent = Agent(db, hv, run, AgentSettings(), Metrics(), reopen=lambda: Hypervisor.open(uri))
        agent.listen()
        result = recover(hv, db, run, NetworkHook())
        blocked = guests_blocked(result)
        assert blocked.uuids == {U(nn) for nn in ("02", "03", "04", "05", "06")} and _running(conn) == {"01"}
        agent.recheck = lambda hypervisor, settings: recover(hypervisor, db, settings, NetworkHook())
        agent.start(time.monotonic(), guests_started(result), blocked)

        conn.networkDefineXML("<network><name>tenant-c</name><bridge name='virbr3'/></network>")
        _heard(agent, 1)  # a network no guest needs: re-checked, nothing started
        assert _running(conn) == {"01"}
        conn.networkCreateXML("<network><name>tenant-b</name><bridge name='virbr2'/></network>")
        _heard(agent, 2)
        assert _running(conn) == {"01", "03", "04"}
        rows = db.load_instances_by_uuid([U("03"), U("02")])
        assert (rows[U("03")].vm_state, rows[U("03")].power_state) == ("active", 1)
        conn.networkDefineXML("<network><name>tenant-d</name><bridge name='virbr4'/></network>")
        _heard(agent, 3)  # the guests still blocked, alone
    finally:
        db.close()
        conn.close()
    journal = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        entries = journal.execute("SELECT run_id, instance_uuid, outcome FROM recovery_journal "
                                  "WHERE run_id > 1 ORDER BY run_id, instance_uuid").fetchall()
    finally:
        journal.close()
    assert {(u[-2:], o) for r, u, o in entries if r == 2} == {(nn, "blocked") for nn in ("02", "03", "04", "05", "06")}
    assert {(u[-2:], o) for r, u, o in entries if r == 3} == {  # only the guests still blocked
        ("02", "blocked"), ("03", "ok"), ("04", "ok"), ("05", "blocked"), ("06", "blocked")}
    assert {u[-2:] for r, u, _o in entries if r == 4} == {"02", "05", "06"}

"""Each vocabulary has one home: what an action does to a guest is read from `states.policy.ACTIONS`,
never restated by hand, so that every consumer (the tiers, the agent's metrics, the executor) agrees."""

import time
from pathlib import Path

import libvirt

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_started
from recovery.agent.metrics import Metrics
from recovery.cli.host import recover
from recovery.core.facts import Options
from recovery.core.settings import AgentSettings, RunSettings
from recovery.db.scenarios import seed
from recovery.run.execute import ACTION_CALLS
from states.policy import ACTIONS
from tests.support.databases import migrated_database

HOST = "compute-1"
RESIZING = "6c1a0b52-0000-4000-8000-0000000000b1"


def test_the_agent_times_a_guest_a_resize_revert_powered_on(tmp_path: Path, database_url: str) -> None:
    """A resize crashed while migrating is reverted with power_on: the run brings the guest back
    running, so the agent's guests-running metric waits for it and records the time."""
    libvirt_xml = tmp_path / "libvirt.xml"
    libvirt_xml.write_text(
        "<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>1</threads>"
        "<active>4</active><model>x86_64</model></cpu><memory>8388608</memory>\n"
        "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
        f"<name>instance-0</name><uuid>{RESIZING}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64'>hvm</type></os><test:runstate>5</test:runstate></domain>\n</node>\n")
    db = migrated_database(database_url)
    seed(db, {"host": HOST,
              "instances": [{"uuid": RESIZING, "host": HOST, "node": HOST, "vm_state": "active",
                             "task_state": "resize_migrating", "power_state": "shutdown",
                             "vcpus": 1, "memory_mb": 512, "root_gb": 1}],
              "compute_nodes": [{"host": HOST, "hypervisor_hostname": HOST, "vcpus": 4, "memory_mb": 8192}],
              "services": [{"host": HOST, "report_count": 10}]})
    start_event_loop()
    uri = f"test://{libvirt_xml}"
    conn = libvirt.open(uri)
    try:
        hv = Hypervisor(conn, uri, read_only=False)
        metrics = Metrics()
        run = RunSettings(host=HOST, node=HOST, options=Options(), stop_timeout=1)
        agent = Agent(db, hv, run, AgentSettings(), metrics, reopen=lambda: Hypervisor.open(uri))
        agent.listen()
        result = recover(hv, db, run, NetworkHook())
        assert result.exit_code == 0
        assert ("revert_resize", {"power_on": True}, "ok") in [
            (a.action.name, dict(a.action.params), a.outcome) for a in result.instances[0].actions]
        assert conn.lookupByUUIDString(RESIZING).isActive()
        agent.start(time.monotonic(), guests_started(result))
        assert guests_started(result) == {RESIZING}
        assert (metrics.registry.get_sample_value("compute_recover_guests_running_seconds") or 0.0) > 0
    finally:
        conn.close()
        db.close()


def test_every_action_of_the_vocabulary_has_exactly_one_call() -> None:
    assert set(ACTION_CALLS) == set(ACTIONS)

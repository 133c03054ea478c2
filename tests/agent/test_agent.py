"""The agent after the recovery, in-process on libvirt's test driver and a real database: the
events it hears are raised by domain operations on the very connection it listens on (the test
driver emits them for operations made on that connection), the clock it delays and schedules
by is the test's own. And the `agent` command as systemd runs it: READY=1, metrics, SIGTERM.
"""

import importlib.metadata
import json
import platform
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
from sqlalchemy import select, update

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_started
from recovery.agent.metrics import Metrics
from recovery.agent.sync import sync_one
from recovery.cli.host import recover
from recovery.core.facts import Options
from recovery.core.outcomes import Outcome
from recovery.core.settings import AgentSettings, RunSettings
from recovery.db import ComputeNode, Database, Instance, InstanceRow, RecoveryRun, open_database
from recovery.db import services as records
from recovery.db.scenarios import seed
from states.enums import PowerState
from tests.support.databases import migrated_database
from tests.support.in_process import invoke, load_records
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.ports import free_port
from tests.support.processes import notified_agent
from tests.support.scenarios import write_host

HOST = "compute-1"
RUNNING_ACTIVE = "6c1a0b52-0000-4000-8000-0000000000a1"
SHUTOFF_STOPPED = "6c1a0b52-0000-4000-8000-0000000000a2"
BUSY = "6c1a0b52-0000-4000-8000-0000000000a3"
SHUTOFF, RUNNING = 4, 1

def write_scenario(directory: Path, first_runstate: int = 1) -> Path:
    """Two running active guests and one shut-off stopped one; the host's records agree (unless
    the first guest is given another libvirt runstate: 5 is shut off, as after a power outage)."""
    guests = [(RUNNING_ACTIVE, "active", "running", first_runstate), (SHUTOFF_STOPPED, "stopped", "shutdown", 5),
              (BUSY, "active", "running", 1)]
    records = {
        "host": HOST,
        "instances": [{"uuid": u, "host": HOST, "node": HOST, "vm_state": vm, "task_state": None,
                       "power_state": power, "vcpus": 1, "memory_mb": 512, "root_gb": 1}
                      for u, vm, power, _ in guests],
        "compute_nodes": [{"host": HOST, "hypervisor_hostname": HOST, "vcpus": 4, "memory_mb": 8192}],
        "services": [{"host": HOST, "report_count": 10}],
    }
    return write_host(directory, records, ((n, u, r) for n, (u, _, _, r) in enumerate(guests)),
                      cores=4, memory_kib=8388608)


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Host:
    agent: Agent
    conn: libvirt.virConnect
    db: Database
    clock: Clock
    metrics: Metrics

    def domain(self, uuid: str) -> libvirt.virDomain:
        return self.conn.lookupByUUIDString(uuid)

    def record(self, uuid: str) -> InstanceRow:
        return self.db.load_instances_by_uuid([uuid])[uuid]

    def hear(self, count: int = 1) -> None:
        """Let the agent take the events the event loop thread has queued by now (they arrive within ms)."""
        deadline = time.monotonic() + 10
        while self.agent.events_heard < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.agent.events_heard >= count, "the test driver's lifecycle event never arrived"
        self.agent.tick()

    def later(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.agent.tick()

    def count(self, metric: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(metric, labels) or 0.0


@pytest.fixture
def host(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[Host]:
    """The scenario recovered in-process as `agent` does it: listening first, then `run`'s recovery.
    Parametrized indirectly with True: the first guest was shut off and the run resumes it."""
    resume = getattr(request, "param", False)
    scenario = write_scenario(tmp_path / "scenario", first_runstate=5 if resume else 1)
    db = migrated_database(database_url)
    seed(db, json.loads((scenario / "db.json").read_text()))
    start_event_loop()
    uri = f"test://{scenario / 'libvirt.xml'}"
    conn = libvirt.open(uri)
    hv = Hypervisor(conn, uri, read_only=False)
    clock, metrics = Clock(), Metrics()
    run = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=resume), stop_timeout=1)
    agent = Agent(db, hv, run, AgentSettings(), metrics, reopen=lambda: Hypervisor.open(uri), clock=clock)
    agent.listen()
    result = recover(hv, db, run, NetworkHook())
    assert result.exit_code == 0
    metrics.record_run(result)
    agent.start(time.monotonic(), guests_started(result))
    yield Host(agent, conn, db, clock, metrics)
    conn.close()
    db.close()


def test_a_guest_shut_off_behind_its_back_is_stopped_after_the_delay(host: Host) -> None:
    host.domain(RUNNING_ACTIVE).destroy()
    host.hear()
    host.later(14)
    assert host.record(RUNNING_ACTIVE).vm_state == "active"  # still within Nova's 15 s
    host.later(2)
    record = host.record(RUNNING_ACTIVE)
    assert (record.vm_state, record.task_state, record.power_state) == ("stopped", None, SHUTOFF)
    assert host.count("compute_recover_power_syncs_total", action="stop", outcome="stopped") == 1
    assert host.count("compute_recover_lifecycle_events_total", outcome="handled") == 1


def test_a_reboot_does_not_stop_the_instance(host: Host) -> None:
    dom = host.domain(RUNNING_ACTIVE)
    dom.destroy()
    dom.create()
    host.hear(2)
    host.later(60)
    record = host.record(RUNNING_ACTIVE)
    assert (record.vm_state, record.power_state) == ("active", RUNNING)
    assert host.domain(RUNNING_ACTIVE).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert host.count("compute_recover_lifecycle_events_total", outcome="dropped") == 1


def test_a_stopped_instances_guest_started_by_hand_is_stopped_again(host: Host) -> None:
    host.domain(SHUTOFF_STOPPED).create()
    host.hear()
    record = host.record(SHUTOFF_STOPPED)
    assert (record.vm_state, record.task_state, record.power_state) == ("stopped", None, SHUTOFF)
    assert host.domain(SHUTOFF_STOPPED).state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


def test_nothing_happens_to_an_instance_with_a_task_state(host: Host) -> None:
    with host.db.transaction("start a task, as Nova would") as conn:
        conn.execute(update(Instance).where(Instance.uuid == BUSY).values(task_state="rebooting"))
    before = host.record(BUSY)
    host.domain(BUSY).destroy()
    host.hear()
    host.later(16)
    assert host.record(BUSY) == before
    assert host.count("compute_recover_power_syncs_total", action="none", outcome="skipped") == 1


def test_a_paused_guest_of_an_active_instance_only_has_its_power_state_recorded(host: Host) -> None:
    host.domain(RUNNING_ACTIVE).suspend()
    host.hear()
    record = host.record(RUNNING_ACTIVE)
    assert (record.vm_state, record.power_state) == ("active", int(PowerState.PAUSED))


def test_the_periodic_sync_corrects_a_power_state_no_event_spoke_of(host: Host) -> None:
    with host.db.transaction("write a wrong power state") as conn:
        conn.execute(update(Instance).where(Instance.uuid == RUNNING_ACTIVE).values(power_state=SHUTOFF))
    host.later(599)
    assert host.record(RUNNING_ACTIVE).power_state == SHUTOFF
    host.later(1)
    assert host.record(RUNNING_ACTIVE).power_state == RUNNING


def test_a_concurrent_writer_is_never_overwritten(host: Host) -> None:
    stale = host.record(RUNNING_ACTIVE)
    with host.db.transaction("Nova writes meanwhile") as conn:
        conn.execute(update(Instance).where(Instance.uuid == RUNNING_ACTIVE)
                     .values(vm_state="error", updated_at=host.db.next_stamp(stale.updated_at)))
    result = sync_one(host.db, host.agent.hv, HOST, stale, PowerState.SHUTDOWN, 1)
    assert result.outcome == Outcome.CONFLICT
    assert (host.record(RUNNING_ACTIVE).vm_state, host.record(RUNNING_ACTIVE).power_state) == ("error", RUNNING)
    assert host.domain(RUNNING_ACTIVE).state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_the_heartbeat_beats_every_report_interval(host: Host) -> None:
    before = records.list_services(host.db, HOST)[0]
    host.later(9)
    assert records.list_services(host.db, HOST)[0].report_count == before.report_count
    host.later(1)
    after = records.list_services(host.db, HOST)[0]
    assert after.report_count == before.report_count + 1 and after.last_seen_up >= before.last_seen_up
    assert host.count("compute_recover_last_heartbeat_timestamp_seconds") > 0


def test_the_compute_node_is_updated_every_update_resources_interval(host: Host) -> None:
    with host.db.transaction("spoil the usage") as conn:
        conn.execute(update(ComputeNode).values(vcpus_used=99))
    host.later(59)
    assert host.db.load_host(HOST).compute_nodes[0].vcpus_used == 99
    host.later(1)
    assert host.db.load_host(HOST).compute_nodes[0].vcpus_used == 3


@pytest.mark.parametrize("host", [True], indirect=True)
def test_the_metrics_time_the_guests_the_run_resumed(host: Host) -> None:
    assert host.count("compute_recover_actions_total", action="resume_guest", outcome="ok") == 1
    assert host.count("compute_recover_guests_running_seconds") > 0


def test_the_metrics_count_the_run(host: Host) -> None:
    assert host.count("compute_recover_runs_total", exit_code="0") == 1
    assert sum(host.count("compute_recover_instances_total", rule=r, outcome="ok")
               for r in ("plug_vifs", "none")) == 3


# --- the command, as systemd runs it -------------------------------------------------------------


def test_agent_under_systemd_notifies_ready_serves_metrics_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "scenario")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = migrated_database(url)
    seed(db, json.loads((scenario / "db.json").read_text()))
    db.close()
    port = free_port()
    with notified_agent(tmp_path, "--scenario", scenario, "--db", url, "--metrics-port", port,
                        "--metrics-address", "127.0.0.1", "--metrics-textfile", tmp_path / "agent.prom",
                        env={"WATCHDOG_USEC": "2000000"}) as agent:
        agent.wait_for("READY=1")
        agent.wait_for("WATCHDOG=1")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            scraped = response.read().decode()
        out, err = agent.stop()
    messages = agent.messages
    assert agent.returncode == 0, err
    assert 'compute_recover_runs_total{exit_code="0"} 1.0' in scraped
    assert 'compute_recover_instances_total{outcome="ok",rule="plug_vifs"}' in scraped
    assert any("STOPPING=1" in m for m in messages)
    assert "compute_recover_runs_total" in (tmp_path / "agent.prom").read_text()
    db = open_database(url, read_only=True)
    try:
        assert all(r.task_state is None for r in db.load_host(HOST).instances)  # nothing half-written
        with db.reading("read the runs") as conn:
            assert conn.execute(select(RecoveryRun.status, RecoveryRun.exit_code)).all() == [("finished", 0)]
        [service] = records.list_services(db, HOST)
        assert service.last_seen_up is not None and not service.disabled
    finally:
        db.close()
    assert "instances 3, ok 3" in out


def compute_nodes(url: str) -> list[tuple[str, str]]:
    db = open_database(url, read_only=True)
    try:
        with db.reading("read the compute nodes") as conn:
            return [tuple(row) for row in conn.execute(select(ComputeNode.host, ComputeNode.hypervisor_hostname))]
    finally:
        db.close()


def test_the_agent_keeps_the_hosts_recorded_compute_node_when_libvirts_hostname_differs(tmp_path: Path) -> None:
    """libvirt's test driver names its host after the machine, not compute-1: without --node, the
    agent (and run) act as the node recorded for the host instead of making it a second one."""
    scenario = write_scenario(tmp_path / "scenario")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = migrated_database(url)
    seed(db, json.loads((scenario / "db.json").read_text()))
    db.close()
    target = ("--libvirt-uri", f"test://{scenario / 'libvirt.xml'}", "--host", HOST, "--db", url)
    assert Hypervisor.open(target[1]).hostname() != HOST
    with notified_agent(tmp_path, *target) as agent:
        agent.wait_for("READY=1")
        _, err = agent.stop()
    assert agent.returncode == 0, err
    assert compute_nodes(url) == [(HOST, HOST)]

    other = subprocess.run([CONSOLE_SCRIPT, "run", *target, "--node", "compute-1.example.org"],
                           capture_output=True, text=True, timeout=60)
    assert other.returncode == 3 and "second compute node" in other.stderr and "--node compute-1" in other.stderr
    assert compute_nodes(url) == [(HOST, HOST)]


def test_the_metrics_start_at_zero_with_build_info_and_no_created_series() -> None:
    from prometheus_client import generate_latest

    metrics = Metrics()
    text = generate_latest(metrics.registry).decode()
    assert "_created" not in text
    assert metrics.registry.get_sample_value(
        "compute_recover_build_info", {"version": importlib.metadata.version("compute-recover"),
                                       "python": platform.python_version()}) == 1
    for name, labels in (("compute_recover_runs_total", {"exit_code": "0"}),
                         ("compute_recover_runs_total", {"exit_code": "1"}),
                         ("compute_recover_instances_total", {"rule": "none", "outcome": "failed"}),
                         ("compute_recover_actions_total", {"action": "reboot", "outcome": "failed"}),
                         ("compute_recover_power_syncs_total", {"action": "stop", "outcome": "failed"}),
                         ("compute_recover_lifecycle_events_total", {"outcome": "dropped"})):
        assert metrics.registry.get_sample_value(name, labels) == 0, (name, labels)


def test_run_writes_its_metrics_textfile(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "scenario", first_runstate=5)
    path = tmp_path / "db.sqlite"
    load_records(f"sqlite:///{path}", scenario)
    textfile = tmp_path / "run.prom"
    out = invoke("run", "--scenario", scenario, "--db", f"sqlite:///{path}", "--json", "--metrics-textfile", textfile,
                 "--resume-guests-state-on-host-boot")
    assert out.exit_code == 0, out.stderr
    text = textfile.read_text()
    assert 'compute_recover_runs_total{exit_code="0"} 1.0' in text
    assert 'compute_recover_actions_total{action="resume_guest",outcome="ok"} 1.0' in text
    assert "compute_recover_build_info{" in text and "_created" not in text
    refused = invoke("run", "--scenario", scenario, "--db", f"sqlite:///{path}", "--dry-run",
                     "--metrics-textfile", tmp_path / "dry.prom")
    assert refused.exit_code == 2 and not (tmp_path / "dry.prom").exists()

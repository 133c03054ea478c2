"""Claim before act: a change made to an instance between its decision and its execution is never
overwritten, and when it makes the claim fail, the hypervisor was not touched. A record the run does not
write (deleted, another host's) is claimed too, by a check that it still holds what it was decided from.

Real parts: each example gathers and decides a host from a real SQLite file and a real libvirt
test-driver domain the way a run does, journals the decisions, then has another writer change the
row behind the decisions' back (a new updated_at, as Nova's writes have) and executes them. The
instance is this host's own, deleted, evacuated away or another host's, before and after the change;
its domain is in any libvirt state (every power state) or absent.
"""

import tempfile
from datetime import datetime
from pathlib import Path

import libvirt
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from recovery.adapters.hypervisor import Hypervisor
from recovery.adapters.network import NetworkHook
from recovery.core.facts import TASK_STATES, VM_STATES, Options
from recovery.core.machine import shared_machine
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.db import Database
from recovery.db.journal import insert_entries, journal_for, start_run
from recovery.db.models import Instance
from recovery.db.scenarios import seed_if_empty
from recovery.run.decisions import decide_host
from recovery.run.execute import Assignment, InstanceResult, LostRace, Ports, execute
from recovery.run.gather import gather
from recovery.run.journal_entries import DecisionEntries
from states.enums import LIBVIRT_DOMAIN_STATE_TO_POWER, PowerState, RunningDeletedInstanceAction
from tests.support.databases import migrated_database

UUID = "6c1a0b52-0000-4000-8000-00000000c0a5"
HOST, OTHER = "compute-1", "compute-2"
DOMAIN = """<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
<name>instance-00000001</name><uuid>{uuid}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu>
<os><type>hvm</type></os><test:runstate>{runstate}</test:runstate></domain>"""
NODE = """<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
<active>2</active><model>x86_64</model></cpu><memory>8388608</memory>{domain}</node>"""

OWNERSHIP = ("owned", "deleted", "evacuated", "elsewhere")
"""Whose the record is: this host's live instance, a deleted one, evacuated away from this host (an
evacuation record names it), or another host's with no evacuation."""
RUNSTATES = sorted(set(LIBVIRT_DOMAIN_STATE_TO_POWER) - {0})
"""Every libvirt domain state the test driver can hold a domain in (NOSTATE is a domain's absence)."""

LATER = datetime(2026, 1, 1, 0, 0, 7)
"""The other writer's updated_at, after the seeded one."""

records = st.tuples(st.sampled_from(VM_STATES), st.sampled_from(TASK_STATES), st.sampled_from(OWNERSHIP))


def _task(task: str) -> str | None:
    return None if task == "none" else task


def _seed(db: Database, record: tuple[str, str, str], db_power: PowerState) -> None:
    vm_state, task, ownership = record
    instance = {"uuid": UUID, "vm_state": vm_state, "task_state": _task(task), "power_state": int(db_power),
                "host": HOST if ownership in ("owned", "deleted") else OTHER, "deleted": ownership == "deleted",
                "updated_at": "2026-01-01T00:00:00"}
    evacuations = [{"instance_uuid": UUID, "source_compute": HOST, "dest_compute": OTHER, "source_node": HOST,
                    "dest_node": OTHER, "migration_type": "evacuation", "status": "done"}]
    seed_if_empty(db, {"host": HOST, "instances": [instance],
                       "migrations": evacuations if ownership == "evacuated" else []})


def _change_behind_its_back(db: Database, record: tuple[str, str, str]) -> None:
    """Another writer's change (Nova's API, another host's nova-compute): new states, maybe a new host
    or a deletion, and always a new updated_at."""
    vm_state, task, ownership = record
    values = {"vm_state": vm_state, "task_state": _task(task), "updated_at": LATER,
              "host": HOST if ownership in ("owned", "deleted") else OTHER,
              "deleted": Instance.id if ownership == "deleted" else 0}
    with db.transaction("change the row behind the decision's back") as conn:
        conn.execute(update(Instance).where(Instance.uuid == UUID).values(values))


def _domains(conn: libvirt.virConnect) -> dict[str, tuple[int, int]]:
    """Every domain the test driver holds: its libvirt state (and reason), by uuid."""
    return {dom.UUIDString(): tuple(dom.state()) for dom in conn.listAllDomains()}


def _row(db: Database) -> tuple[str | None, str | None, str | None, bool]:
    row = db.load_instances_by_uuid([UUID])[UUID]
    return row.vm_state, row.task_state, row.host, row.deleted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decided_from=records, changed_to=records, runstate=st.none() | st.sampled_from(RUNSTATES),
       db_power=st.sampled_from(PowerState), resume=st.booleans(),
       deleted_action=st.sampled_from(RunningDeletedInstanceAction))
def test_a_concurrent_change_is_never_overwritten_and_a_lost_claim_touches_nothing(
        decided_from, changed_to, runstate, db_power, resume, deleted_action):
    assume(changed_to != decided_from)
    options = Options(resume_guests_state_on_host_boot=resume, running_deleted_instance_action=deleted_action)
    run_settings = RunSettings(host=HOST, node=HOST, options=options, stop_timeout=0.1)
    domain = "" if runstate is None else DOMAIN.format(uuid=UUID, runstate=runstate)
    with tempfile.TemporaryDirectory() as tmp:
        node = Path(tmp) / "node.xml"
        node.write_text(NODE.format(domain=domain))
        uri = f"test://{node}"
        conn = libvirt.open(uri)  # the test driver keeps its state per connection: the run's, observed here
        hypervisor = Hypervisor(conn, uri, read_only=False)
        db = migrated_database(f"sqlite:///{Path(tmp) / 'db.sqlite'}")
        _seed(db, decided_from, db_power)
        machine = shared_machine()
        assignments = decide_host(machine, run_settings, gather(db, hypervisor, HOST)).assignments
        run_id = start_run(db, HOST, {})
        decided = [(a.uuid, a.decision, None) for a in assignments]
        entries = DecisionEntries(machine).before_execution(decided, [], {})
        journal_ids = insert_entries(db, run_id, entries)
        _change_behind_its_back(db, changed_to)
        changed_row, domains_before = _row(db), _domains(conn)
        results: list[tuple[Assignment, InstanceResult | None]] = []
        for assignment in assignments:
            assignment.journal_id = journal_ids[assignment.uuid]
            try:
                ports = Ports(hypervisor, db, NetworkHook(), stop_timeout=0.1)
                results.append((assignment, execute(ports, assignment)))
            except LostRace:
                results.append((assignment, None))  # the claim before the first action was refused
        row_after, domains_after, journal = _row(db), _domains(conn), journal_for(db, UUID)
        db.close()
        conn.close()
    if decided_from[2] == "owned":
        assert results, "this host's own instance is always decided"
    for assignment, result in results:
        event(f"{decided_from[2]} -> {changed_to[2]}: " + ("claim lost" if result is None else str(result.outcome)))
        if result is None:  # the claim was lost: nothing ran, nothing written, nothing journaled as done
            assert domains_after == domains_before
            assert row_after == changed_row
            assert all(action["outcome"] == Outcome.PENDING for entry in journal for action in entry["actions"])
            assert all(entry["outcome"] == Outcome.PENDING for entry in journal)
        elif assignment.writable:
            # A live record of this host changed behind the decision is always a lost claim, unless its
            # decision had nothing to write and nothing to do.
            assert result.outcome == Outcome.CONFLICT or all(not step.case.writes for step in assignment.decision.steps)
        else:
            # A record the run does not write (deleted, another host's) is checked before its domain is
            # acted on: changed behind the decision (evacuated back here, say), nothing is done to it.
            assert not result.actions, result.actions
    # Whatever ran, the other writer's change is never overwritten: a record the run does not own is
    # never written, and a claim of one it owns fails on the change.
    assert row_after == changed_row

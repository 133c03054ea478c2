"""CAS: a change made to an instance between its decision and the write is never overwritten.

Real parts: each example executes a decision against a real SQLite file and a real libvirt
test-driver domain, after the row was changed behind the decision's back.
"""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery.adapters.hypervisor import Hypervisor
from recovery.adapters.network import NetworkHook
from recovery.core.facts import TASK_STATES, VM_STATES, Facts, Options, facts_from_record
from recovery.core.machine import shared_machine
from recovery.core.outcomes import Outcome
from recovery.db.scenarios import seed_if_empty
from recovery.run.execute import LostRace, Plan, Ports, execute
from tests.support.databases import migrated_database

UUID = "6c1a0b52-0000-4000-8000-00000000c0a5"
HOST = "compute-1"
RUNSTATE = {"running": 1, "paused": 3, "shutdown": 5}
NODE = """<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
<active>2</active><model>x86_64</model></cpu><memory>8388608</memory>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>instance-00000001</name>
<uuid>{uuid}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<test:runstate>{runstate}</test:runstate></domain></node>"""

states = st.tuples(st.sampled_from(VM_STATES), st.sampled_from(TASK_STATES))


def _task(task: str) -> str | None:
    return None if task == "none" else task


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decided_from=states, changed_to=states, power=st.sampled_from(sorted(RUNSTATE)), resume=st.booleans())
def test_a_concurrent_change_is_never_overwritten(decided_from, changed_to, power, resume):
    if changed_to == decided_from:
        return
    record = {"uuid": UUID, "vm_state": decided_from[0], "task_state": _task(decided_from[1]),
              "power_state": power, "db_power_state": "running", "host": HOST}
    facts: Facts = facts_from_record(record, HOST, Options(resume_guests_state_on_host_boot=resume))
    decision = shared_machine().decide(facts)
    with tempfile.TemporaryDirectory() as tmp:
        node = Path(tmp) / "node.xml"
        node.write_text(NODE.format(uuid=UUID, runstate=RUNSTATE[power]))
        db = migrated_database(f"sqlite:///{Path(tmp) / 'db.sqlite'}")
        # The row as someone else left it after the decision was made from `decided_from`.
        seed_if_empty(db, {"host": HOST, "instances": [{
            "uuid": UUID, "vm_state": changed_to[0], "task_state": _task(changed_to[1]), "power_state": "running"}]})
        hypervisor = Hypervisor.open(f"test://{node}")
        try:
            result = execute(Ports(hypervisor, db, NetworkHook(), stop_timeout=0.1), Plan(UUID, decision, True))
        except LostRace:
            result = None  # the claim before the first action was refused: nothing ran, nothing written
        [row] = db.load_host(HOST).instances
        db.close()
    assert (row.vm_state, row.task_state) == (changed_to[0], _task(changed_to[1]))
    if result is not None and result.outcome != Outcome.CONFLICT:
        # Nothing was to be written to the record, so the change could not have been overwritten.
        assert all(not step.case.writes for step in decision.steps)

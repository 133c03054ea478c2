"""Carry out a power-sync decision on one instance: every record write compare-and-swaps on the
(vm_state, task_state, updated_at) it was decided from, so a concurrent Nova writer wins and is
never overwritten. A stop claims the record first (task powering-off, as Nova's stop API does),
then stops the guest, then writes vm_state stopped with the power state reached."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.core.outcomes import Outcome
from recovery.core.power_decision import SyncDecision, SyncFacts, decide_sync
from recovery.db import Database, InstanceRow
from recovery.run.gather import gather
from states.enums import PowerState, TaskState, VmState
from states.power_sync import SyncAction


@dataclass(frozen=True)
class SyncResult:
    uuid: str
    decision: SyncDecision
    outcome: Outcome
    error: str | None = None


def facts_for(row: InstanceRow, host: str, power: PowerState) -> SyncFacts:
    return SyncFacts(row.vm_state, row.task_state, row.host == host, row.deleted, row.power_state, power)


def sync_one(db: Database, hv: Hypervisor, host: str, row: InstanceRow, power: PowerState,
             stop_timeout: float) -> SyncResult:
    """Decide and apply. HypervisorLost and DatabaseFailure leave to the caller (the agent stops syncing)."""
    decision = decide_sync(facts_for(row, host, power))
    if decision.skip:
        return SyncResult(row.key, decision, Outcome.SKIPPED)
    expect = (row.vm_state, row.task_state, row.updated_at)
    if decision.record_power is not None:
        expect = _swap(db, row, expect, power_state=int(decision.record_power))
        if expect is None:
            return SyncResult(row.key, decision, Outcome.CONFLICT)
    if decision.action is SyncAction.NONE:
        return SyncResult(row.key, decision, Outcome.UNCHANGED if decision.record_power is None else Outcome.RECORDED)
    expect = _swap(db, row, expect, task_state=TaskState.POWERING_OFF.value)
    if expect is None:
        return SyncResult(row.key, decision, Outcome.CONFLICT)
    error = None
    try:
        hv.stop(row.key, stop_timeout)
    except HypervisorLost:
        _swap(db, row, expect, task_state=None)  # the claim is undone; the next sync decides again
        raise
    except HypervisorError as failure:
        error = str(failure)
    reached = int(hv.power_state(row.key))
    done = {"task_state": None, "power_state": reached} | ({} if error else {"vm_state": VmState.STOPPED.value})
    if _swap(db, row, expect, **done) is None:
        return SyncResult(row.key, decision, Outcome.CONFLICT, error)
    return SyncResult(row.key, decision, Outcome.FAILED if error else Outcome.STOPPED, error)


def sync_all(db: Database, hv: Hypervisor, host: str, stop_timeout: float) -> Iterable[SyncResult]:
    """Nova's periodic _sync_power_states: every live instance of the host against its guest's state
    now (no guest: NOSTATE), from one bulk read of each side."""
    gathered = gather(db, hv, host)
    for uuid, row in gathered.instances.items():
        domain = gathered.domains.get(uuid)
        yield sync_one(db, hv, host, row, domain.power_state if domain else PowerState.NOSTATE, stop_timeout)


def _swap(db: Database, row: InstanceRow, expect: tuple[str | None, str | None, datetime | None],
          **changes) -> tuple[str | None, str | None, datetime | None] | None:
    """One compare-and-swap; the new expectation, or None when another writer changed the record."""
    stamp = db.next_stamp(expect[2])
    with db.transaction(f"sync instance {row.key}") as conn:
        if not db.compare_and_swap(conn, row.uuid, expect, stamp, **changes):
            return None
    vm_state = changes.get("vm_state", expect[0])
    task_state = changes["task_state"] if "task_state" in changes else expect[1]
    return vm_state, task_state, stamp

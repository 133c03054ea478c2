"""The power-sync policy (pure): Nova's _sync_instance_power_state, case by case, and its invariants."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.core.power_decision import SyncFacts, decide_sync
from states.enums import PowerState, TaskState, VmState
from states.power_sync import EVENT_POWER_STATE, LifecycleEvent, SyncAction

P = PowerState


def facts(vm_state: str, power: PowerState, task: str | None = None, db_power: int | None = None,
          on_this_host: bool = True, deleted: bool = False) -> SyncFacts:
    return SyncFacts(vm_state, task, on_this_host, deleted, int(P.RUNNING) if db_power is None else db_power, power)


@pytest.mark.parametrize(("vm_state", "power", "action"), [
    ("active", P.SHUTDOWN, SyncAction.STOP),
    ("active", P.CRASHED, SyncAction.STOP),
    ("active", P.SUSPENDED, SyncAction.STOP),
    ("active", P.PAUSED, SyncAction.NONE),  # QEMU may pause a guest itself (an I/O error): left alone
    ("active", P.NOSTATE, SyncAction.NONE),  # a guest missing while libvirt restarts: left alone
    ("active", P.RUNNING, SyncAction.NONE),
    ("stopped", P.RUNNING, SyncAction.FORCE_STOP),
    ("stopped", P.PAUSED, SyncAction.FORCE_STOP),
    ("stopped", P.SUSPENDED, SyncAction.FORCE_STOP),
    ("stopped", P.SHUTDOWN, SyncAction.NONE),
    ("stopped", P.CRASHED, SyncAction.NONE),
    ("stopped", P.NOSTATE, SyncAction.NONE),
    ("paused", P.SHUTDOWN, SyncAction.FORCE_STOP),
    ("paused", P.CRASHED, SyncAction.FORCE_STOP),
    ("paused", P.RUNNING, SyncAction.NONE),
    ("suspended", P.SHUTDOWN, SyncAction.NONE),
    ("error", P.SHUTDOWN, SyncAction.NONE),
    ("building", P.SHUTDOWN, SyncAction.NONE),
    ("resized", P.SHUTDOWN, SyncAction.NONE),
    ("rescued", P.SHUTDOWN, SyncAction.NONE),
    ("soft-delete", P.RUNNING, SyncAction.NONE),
])
def test_what_novas_sync_does_for_each_vm_state_and_power_state(vm_state: str, power: PowerState,
                                                                action: SyncAction) -> None:
    decision = decide_sync(facts(vm_state, power))
    assert not decision.skip and decision.action is action


@pytest.mark.parametrize("case", [
    facts("active", P.SHUTDOWN, task=TaskState.REBOOTING.value),
    facts("active", P.SHUTDOWN, on_this_host=False),
    facts("active", P.SHUTDOWN, deleted=True),
])
def test_an_instance_with_a_task_on_another_host_or_deleted_is_skipped(case: SyncFacts) -> None:
    decision = decide_sync(case)
    assert decision.skip and decision.record_power is None and decision.action is SyncAction.NONE


def test_the_events_say_novas_power_states() -> None:
    assert EVENT_POWER_STATE == {LifecycleEvent.STARTED: P.RUNNING, LifecycleEvent.RESUMED: P.RUNNING,
                                 LifecycleEvent.SUSPENDED: P.PAUSED, LifecycleEvent.STOPPED: P.SHUTDOWN}


every_fact = st.builds(
    SyncFacts,
    st.sampled_from([v.value for v in VmState] + [None]),
    st.sampled_from([t.value for t in TaskState] + [None]),
    st.booleans(), st.booleans(), st.sampled_from([int(p) for p in PowerState] + [None]), st.sampled_from(PowerState))


@given(every_fact)
def test_the_power_state_is_written_exactly_when_the_record_differs_and_nothing_is_skipped(f: SyncFacts) -> None:
    decision = decide_sync(f)
    skipped = f.task_state is not None or not f.on_this_host or f.deleted
    assert decision.skip is skipped
    expected = None if skipped or f.db_power_state == int(f.vm_power_state) else f.vm_power_state
    assert decision.record_power == expected


@given(every_fact)
def test_only_a_guest_not_where_its_record_says_is_stopped(f: SyncFacts) -> None:
    decision = decide_sync(f)
    if decision.action is not SyncAction.NONE:
        assert f.vm_state in ("active", "stopped", "paused")
        assert f.vm_power_state is not PowerState.NOSTATE
        assert (f.vm_state == "stopped") == (f.vm_power_state not in (P.SHUTDOWN, P.CRASHED))

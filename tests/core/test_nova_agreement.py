"""The compiled machine against an independent, imperative transcription of Nova (tests/support/nova_reference.py)."""

import itertools

import pytest

from recovery.core.facts import Facts, Options
from recovery.core.machine import shared_machine
from states.enums import NO_TASK, PowerState, RunningDeletedInstanceAction, TaskState, VmState
from tests.support.nova_reference import NOVA_POWER_INTEGERS, POWER_STATES, TASK_STATES, VM_STATES, nova_decide

DEFAULTS = Options()
EVACUATION_STATUSES = (None, "accepted", "pre-migrating", "done", "completed", "error")
RDIA = tuple(a.value for a in RunningDeletedInstanceAction)


def machine_says(facts: Facts):
    decision = shared_machine().decide(facts)
    actions = [{"name": a.name, **dict(a.params)} for a in decision.actions]
    return actions, decision.vm_state, decision.task_state


def disagreements(all_facts):
    found, count = [], 0
    for facts in all_facts:
        count += 1
        got, want = machine_says(facts), nova_decide(facts)
        if got != want:
            found.append(f"{facts}\n    machine: {got}\n    nova:    {want}")
    return count, found


def report(found: list[str]) -> str:
    return f"{len(found)} disagreements; first 10:\n" + "\n".join(found[:10])


def test_the_enumerations_are_the_specs():
    assert tuple(v.value for v in VmState) == VM_STATES
    assert tuple(t.value for t in TaskState) == TASK_STATES
    assert NO_TASK not in TASK_STATES
    assert {p.label: int(p) for p in PowerState} == NOVA_POWER_INTEGERS
    assert tuple(p.label for p in PowerState) == POWER_STATES


def test_every_triple_agrees_with_nova():
    """Every combination: 12 vm, 43 task, 6 power, 6 db power, owned, resume option, 3 old_vm_state."""
    everything = (
        Facts(
            vm_state=vm, task_state=task, power_state=power, owned=owned, db_power_state=db_power,
            old_vm_state=old_vm_state, domain_present=True, evacuation_status=None, shared_storage=False,
            deleted=False, resume_guests_state_on_host_boot=resume,
            destroy_after_evacuate=DEFAULTS.destroy_after_evacuate,
            running_deleted_instance_action=DEFAULTS.running_deleted_instance_action,
        )
        for vm, task, power, db_power, owned, resume, old_vm_state in itertools.product(
            VM_STATES, (NO_TASK, *TASK_STATES), POWER_STATES, POWER_STATES, (True, False), (False, True),
            (None, "stopped", "active"),
        )
    )
    count, found = disagreements(everything)
    assert count == 12 * 43 * 6 * 6 * 2 * 2 * 3
    assert not found, report(found)


# A few start states that reach different rules; each with every power state a present
# domain can report, and with no domain at all (which the hypervisor reports as nostate).
EVACUATION_TRIPLES = (
    ("active", NO_TASK), ("deleted", NO_TASK), ("error", "deleting"), ("active", "rebooting"),
    ("building", "spawning"), ("stopped", "powering-on"), ("active", "resize_migrating"), ("soft-delete", NO_TASK),
)


def test_evacuation_and_deleted_records_agree_with_nova():
    everything = (
        Facts(
            vm_state=vm, task_state=task, power_state=power, owned=owned, db_power_state="running",
            old_vm_state=None, domain_present=domain_present, evacuation_status=status,
            shared_storage=shared, deleted=deleted, resume_guests_state_on_host_boot=True,
            destroy_after_evacuate=destroy_after_evacuate, running_deleted_instance_action=rdia,
        )
        for (vm, task), (power, domain_present), status, shared, deleted, destroy_after_evacuate, rdia, owned
        in itertools.product(
            EVACUATION_TRIPLES, [*((p, True) for p in POWER_STATES), ("nostate", False)], EVACUATION_STATUSES,
            (False, True), (False, True), (False, True), RDIA, (False, True),
        )
    )
    count, found = disagreements(everything)
    assert count == len(EVACUATION_TRIPLES) * 7 * 6 * 2 * 2 * 2 * 4 * 2
    assert not found, report(found)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # A soft reboot that shut the guest down becomes a hard one, written as reboot_pending_hard.
        (("active", "rebooting", "shutdown"), ([{"name": "reboot", "type": "hard"}], "active", "reboot_pending_hard")),
        # The policy extends Nova here: rebooting with the guest running is simply over.
        (("active", "rebooting", "running"), ([{"name": "plug_vifs"}], "active", None)),
        (("stopped", "reboot_pending", "running"), ([{"name": "plug_vifs"}], "stopped", "reboot_pending")),
        (("paused", "unpausing", "paused"), ([{"name": "unpause"}], "paused", "unpausing")),
        (("error", "resize_migrating", "shutdown"),
         ([{"name": "plug_vifs"}, {"name": "revert_resize", "power_on": True}], "error", None)),
    ],
)
def test_oracle_spot_checks(facts, expected):
    """The oracle itself, on hand-worked cases (so a shared mistake cannot hide in both)."""
    vm, task, power = facts
    f = Facts(vm, task, power, True, "shutdown", None, True, None, False, False, False, True, "log")
    assert nova_decide(f) == expected
    assert machine_says(f) == expected

"""The device readiness fact in the policy (states/policy.py `starting`), proved over every state and class
of the other facts, and as `decide` and `diff` read it (docs/devices.md)."""

import json

from click.testing import CliRunner

from recovery.cli import cli
from recovery.core.facts import Facts, Options, decide_record, facts_from_record
from recovery.core.machine import shared_machine
from recovery.proofs.fact_classes import explore, fact_classes, guard_tests
from states.enums import DeviceReadiness
from states.policy import POLICY, STARTS_GUEST

READY, REPAIRABLE, MISSING, UNVERIFIED = (r.value for r in (DeviceReadiness.READY, DeviceReadiness.REPAIRABLE,
                                                             DeviceReadiness.MISSING, DeviceReadiness.UNVERIFIED))


def _four_ways(facts: Facts) -> tuple:
    machine = shared_machine()
    return tuple(machine.decide_afresh(facts._replace(devices=r)) for r in (READY, REPAIRABLE, MISSING, UNVERIFIED))


def test_the_device_fact_changes_only_decisions_that_start_the_guest_and_as_declared():
    classes = fact_classes(guard_tests(POLICY))
    starting_states = 0
    for case, (ready, repairable, missing, unverified) in explore(_four_ways, classes, fixed={"devices": READY}):
        # what a read-only connection could not read, the run proves again: planned as if ready
        assert (unverified.actions, unverified.vm_state, unverified.task_state) == (
            ready.actions, ready.vm_state, ready.task_state), case.describe()
        starts = [a for a in ready.actions if a in STARTS_GUEST]
        if not starts:
            assert ready.actions == repairable.actions == missing.actions, case.describe()
            assert ready.vm_state == repairable.vm_state == missing.vm_state, case.describe()
            continue
        starting_states += 1
        assert [a for a in missing.actions if a in STARTS_GUEST] == [], case.describe()
        assert list(missing.actions) == [a for a in ready.actions if a not in STARTS_GUEST], case.describe()
        assert missing.vm_state != "error" or ready.facts.vm_state == "error", case.describe()
        first_start = next(i for i, action in enumerate(repairable.actions) if action in STARTS_GUEST)
        assert repairable.actions[first_start - 1].name == "repair_devices", case.describe()
        # a revert then a resume both start the guest: its devices are repaired once, before the first
        assert [a.name for a in repairable.actions].count("repair_devices") == 1, case.describe()
        assert [a for a in repairable.actions if a.name != "repair_devices"] == list(ready.actions), case.describe()
        assert (repairable.vm_state, repairable.task_state) == (ready.vm_state, ready.task_state)
    assert starting_states > 0


def test_decide_reads_an_optional_devices_field_and_refuses_a_bad_one():
    record = {"uuid": "u1", "vm_state": "active", "task_state": "powering-on", "power_state": "shutdown",
              "db_power_state": "running"}
    assert facts_from_record(record, "h", Options()).devices == READY
    assert facts_from_record({**record, "devices": None}, "h", Options()).devices == READY
    facts = facts_from_record({**record, "devices": MISSING}, "h", Options())
    assert facts.devices == MISSING and decide_record(facts, None)["devices"] == MISSING
    assert "devices" not in decide_record(facts._replace(devices=READY), None)
    lines = "\n".join(json.dumps(r) for r in (record, {**record, "devices": "repairable"},
                                               {**record, "devices": "missing"}, {**record, "devices": "gone"}))
    out = CliRunner().invoke(cli, ["decide", "--host", "h"], input=lines + "\n")
    decided = [json.loads(line) for line in out.stdout.splitlines()]
    assert [[a["name"] for a in d.get("actions", [])] for d in decided[:3]] == [
        ["start"], ["repair_devices", "start"], []]
    assert "devices must be null or one of ready, repairable, missing" in decided[3]["error"]


def test_diff_shows_the_states_a_missing_resource_changes():
    out = CliRunner().invoke(cli, ["diff", "--a", "devices=ready", "--b", "devices=missing"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[1] == "b: states/policy.py with devices=missing"
    assert "    a: start; record active/powering-on" in lines
    assert "    b: no action; record active/powering-on" in lines
    refused = CliRunner().invoke(cli, ["diff", "--b", "devices=broken"])
    assert refused.exit_code == 2 and "devices is one of ready, repairable, missing" in refused.output

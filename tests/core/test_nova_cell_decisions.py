"""Decisions on a Nova cell database (the fact nova_cell): what is handed to nova-compute's start, and the
records that keep its start from undoing a decision (docs/nova.md, the division of labour)."""

import pytest

from recovery.core.effects import action_effects
from states.policy import act
from tests.core.test_instance_policy import actions, decide, with_metadata

DOMAIN_GONE = {"power_state": "nostate", "domain_present": False}


@pytest.mark.parametrize("value", [None, "always", "if-down-less-than:1h"])
def test_on_a_nova_cell_every_policy_that_would_start_an_active_guest_whose_domain_is_gone_hands_it_off(value):
    """Only nova-compute can build the domain again (its start's _resume_guests_state); on compute-recover's
    own database the start is tried, fails, and the instance goes to error."""
    record = with_metadata(value, host_down_seconds=600, **DOMAIN_GONE)
    on_nova = decide({**record, "nova_cell": True}, "--resume-guests-state-on-host-boot")
    assert [a["name"] for a in on_nova["actions"]] == ["plug_vifs"]
    assert "left to nova-compute: the domain built again" in on_nova["reason"]
    assert actions(record, "--resume-guests-state-on-host-boot") == ["plug_vifs", "resume_guest"]


@pytest.mark.parametrize(("value", "args", "why"), [
    ("never", (), "recover:resume=never"),
    ("if-down-less-than:1h", (), "the host was down longer than allowed"),
    ("always", ("--max-downtime", "1h"), "the host was down longer than allowed"),
    (None, ("--max-downtime", "1h"), "the host was down longer than allowed"),
])
def test_on_a_nova_cell_a_guest_kept_off_with_its_domain_gone_is_not_handed_off(value, args, why):
    """Kept off by its policy: its observed power state (nostate) is recorded instead, so that nova-compute's
    start, which resumes only a guest recorded running, leaves it off."""
    record = {**with_metadata(value, host_down_seconds=7_200, **DOMAIN_GONE), "nova_cell": True}
    decision = decide(record, "--resume-guests-state-on-host-boot", *args)
    assert [a["name"] for a in decision["actions"]] == ["plug_vifs"]
    assert why in decision["reason"] and "left to nova-compute" not in decision["reason"]


def test_without_the_nova_option_nova_compute_rebuilds_nothing_so_nothing_is_handed_off():
    record = {**with_metadata("always", **DOMAIN_GONE), "nova_cell": True}
    assert "left to nova-compute" not in decide(record)["reason"]
    assert actions(record) == ["plug_vifs", "resume_guest"]


EVACUATED_DELETED = {"uuid": "u-2", "host": "compute-2", "vm_state": "active", "task_state": None,
                     "power_state": "nostate", "db_power_state": "running", "domain_present": False, "deleted": True,
                     "evacuation": {"status": "accepted"}}


def test_a_deleted_instances_evacuation_with_no_domain_left_is_left_open_on_a_nova_cell_as_nova_leaves_it():
    """_destroy_evacuated_instances skips an evacuated instance it cannot load (deleted) and has no domain of:
    its migration stays as it is. On compute-recover's own database the evacuation is completed."""
    on_nova = decide({**EVACUATED_DELETED, "nova_cell": True})
    assert on_nova["actions"] == [] and "its evacuation is left open, as nova-compute leaves it" in on_nova["reason"]
    assert [a["name"] for a in decide(EVACUATED_DELETED)["actions"]] == ["complete_migration"]


@pytest.mark.parametrize("power", ["running", "paused", "suspended"])
def test_resuming_a_running_paused_or_suspended_guest_records_the_power_it_keeps(power):
    """Nova's libvirt driver's resume on host boot returns at once for such a guest, and so does resume_guest:
    the record says the power it has (not running, not active), so nova-compute's start, which resumes a guest
    recorded running whose domain is not, does not try it again. Any other guest is booted, and only its power
    is recorded: its vm_state and task_state stay as Nova's _resume_guests_state leaves them."""
    assert action_effects(act("resume_guest"), succeeded=True, power_state=power) == {"power_state": power}
    for other in ("shutdown", "crashed", "nostate", None):
        assert action_effects(act("resume_guest"), succeeded=True, power_state=other) == {"power_state": "running"}


@pytest.mark.parametrize("power", ["paused", "suspended"])
def test_nova_decides_to_resume_a_paused_or_suspended_guest_recorded_running_as_decide_does(power):
    record = with_metadata(None, power_state=power)
    assert actions(record, "--resume-guests-state-on-host-boot") == ["plug_vifs", "resume_guest"]

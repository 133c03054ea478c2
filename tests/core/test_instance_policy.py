"""Per-instance resume policy (instance metadata recover:resume) and --max-downtime, through `decide` and `explain`."""

import json

import pytest
from click.testing import CliRunner

from recovery.cli import cli
from recovery.core.metadata import PolicyValueError, parse_duration, parse_resume

HOST = "compute-1"
STOPPED_BY_OUTAGE = {"uuid": "u-1", "vm_state": "active", "task_state": None, "power_state": "shutdown",
                     "db_power_state": "running"}


def decide(record: dict, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["decide", "--host", HOST, *args], input=json.dumps(record) + "\n")
    return json.loads(result.stdout)


def actions(record: dict, *args: str) -> list[str]:
    return [a["name"] for a in decide(record, *args)["actions"]]


def with_metadata(value: str | None, **fields) -> dict:
    return {**STOPPED_BY_OUTAGE, **fields, **({"metadata": {"recover:resume": value}} if value else {})}


def test_without_metadata_or_new_options_nova_decides():
    assert actions(with_metadata(None), "--resume-guests-state-on-host-boot") == ["plug_vifs", "resume_guest"]
    assert actions(with_metadata(None)) == ["plug_vifs"]
    assert actions(with_metadata(None, host_down_seconds=86_400), "--resume-guests-state-on-host-boot") == [
        "plug_vifs", "resume_guest"], "no --max-downtime: no limit"


def test_never_stays_off_even_with_resume_on():
    decision = decide(with_metadata("never"), "--resume-guests-state-on-host-boot")
    assert [a["name"] for a in decision["actions"]] == ["plug_vifs"]
    assert "recover:resume=never, so it stays off" in decision["reason"]


def test_always_resumes_a_guest_that_was_not_running_without_the_nova_option():
    assert actions(with_metadata("always", db_power_state="shutdown")) == ["plug_vifs", "resume_guest"]
    assert actions(with_metadata("always", power_state="running")) == ["plug_vifs"]


@pytest.mark.parametrize("power", ["paused", "suspended"])
def test_always_leaves_a_paused_or_suspended_guest_so_unless_nova_would_resume_it(power):
    """resume_guest leaves such a guest as it is (as Nova's libvirt driver does): `always` does not call it
    for nothing, but its power state is recorded; recorded running, Nova's own rule resumes it (a no-op)."""
    decision = decide(with_metadata("always", power_state=power, db_power_state="shutdown"))
    assert [a["name"] for a in decision["actions"]] == ["plug_vifs"]
    assert "it is paused or suspended, which resuming leaves as it is" in decision["reason"]
    assert actions(with_metadata("always", power_state=power)) == ["plug_vifs", "resume_guest"]


def test_max_downtime_leaves_every_guest_off_when_the_host_was_down_longer():
    two_hours = {"host_down_seconds": 7_200}
    args = ("--resume-guests-state-on-host-boot", "--max-downtime", "1h")
    for value in (None, "always", "if-was-running"):
        decision = decide(with_metadata(value, **two_hours), *args)
        assert [a["name"] for a in decision["actions"]] == ["plug_vifs"], value
        assert "the host was down longer than allowed" in decision["reason"]
    assert actions(with_metadata(None, host_down_seconds=1_800), *args) == ["plug_vifs", "resume_guest"]


def test_if_down_less_than_resumes_only_after_a_short_outage_and_overrides_max_downtime():
    assert actions(with_metadata("if-down-less-than:30m", host_down_seconds=600)) == ["plug_vifs", "resume_guest"]
    assert actions(with_metadata("if-down-less-than:30m", host_down_seconds=3_600)) == ["plug_vifs"]
    assert actions(with_metadata("if-down-less-than:3h", host_down_seconds=7_200), "--max-downtime", "1h") == [
        "plug_vifs", "resume_guest"]
    assert actions(with_metadata("if-down-less-than:30m")) == ["plug_vifs", "resume_guest"], "downtime unknown"


def test_the_host_default_applies_to_instances_without_metadata():
    assert actions(with_metadata(None), "--resume-policy", "always") == ["plug_vifs", "resume_guest"]
    assert actions(with_metadata("if-was-running"), "--resume-policy", "always") == ["plug_vifs"]


def test_explain_says_why_a_guest_stays_off():
    record = with_metadata(None, host_down_seconds=7_200)
    result = CliRunner().invoke(cli, ["explain", "--host", HOST, "--facts", json.dumps(record),
                                      "--resume-guests-state-on-host-boot", "--max-downtime", "1h"])
    assert result.exit_code == 0
    assert "down_too_long is true" in result.stdout
    assert "the host was down longer than allowed" in result.stdout


@pytest.mark.parametrize(("record", "message"), [
    (with_metadata("sometimes"), "recover:resume 'sometimes' is not a resume policy: use always, never, "
     "if-was-running or if-down-less-than:<duration>"),
    (with_metadata("if-down-less-than:soon"), "recover:resume 'soon' is not a duration"),
    ({**STOPPED_BY_OUTAGE, "metadata": {"recover:resume": 3}}, "metadata must be null or an object of strings"),
    ({**STOPPED_BY_OUTAGE, "host_down_seconds": -1}, "host_down_seconds must be null or a number of seconds >= 0"),
])
def test_a_bad_policy_value_is_that_lines_error(record, message):
    assert message in decide(record)["error"]


def test_a_bad_option_is_exit_2():
    result = CliRunner().invoke(cli, ["decide", "--host", HOST, "--max-downtime", "forever"], input="")
    assert result.exit_code == 2
    assert "--max-downtime 'forever' is not a duration" in result.stderr


def test_durations():
    assert [parse_duration(t, "x") for t in ("90", "90s", "30m", "1h", "2d", "1.5h")] == [
        90, 90, 1_800, 3_600, 172_800, 5_400]
    assert parse_resume("if-down-less-than:10m") == ("if-down-less-than", 600)
    with pytest.raises(PolicyValueError):
        parse_duration("0s", "x")

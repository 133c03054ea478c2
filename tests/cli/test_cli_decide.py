"""`compute-recover decide | explain --facts | graph` as a user sees them: output, messages, exit codes."""

import importlib.metadata
import json
import re

import pytest
from click.testing import CliRunner

from recovery.cli import cli

VM_CHOICES = ("active, building, paused, suspended, stopped, rescued, resized, soft-delete, deleted, error, "
              "shelved, shelved_offloaded")
TASK_CHOICES = (
    "block_device_mapping, deleting, image_backup, image_pending_upload, image_snapshot, image_snapshot_pending, "
    "image_uploading, migrating, networking, pausing, powering-off, powering-on, reboot_pending, "
    "reboot_pending_hard, reboot_started, reboot_started_hard, rebooting, rebooting_hard, "
    "rebuild_block_device_mapping, rebuild_spawning, rebuilding, rescuing, resize_confirming, resize_finish, "
    "resize_migrated, resize_migrating, resize_prep, resize_reverting, restoring, resuming, scheduling, shelving, "
    "shelving_image_pending_upload, shelving_image_uploading, shelving_offloading, soft-deleting, spawning, "
    "suspending, unpausing, unrescuing, unshelving, updating_password"
)
POWER_CHOICES = "nostate, running, paused, shutdown, crashed, suspended or Nova's integer (0, 1, 3, 4, 6, 7)"
MISSING = ("every record needs uuid, vm_state, task_state, power_state and db_power_state "
           "(task_state may be null)")

HOST = "this-host"


def record(**fields) -> dict:
    base = {"uuid": "u1", "vm_state": "active", "task_state": None, "power_state": "running",
            "db_power_state": "running"}
    return {**base, **fields}


def decide(*lines, args=()):
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    result = CliRunner().invoke(cli, ["decide", "--host", HOST, *args], input=text, catch_exceptions=False)
    return result, [json.loads(line) for line in result.stdout.splitlines()]


def decide_one(args=(), **fields) -> dict:
    result, out = decide(record(**fields), args=args)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(out) == 1
    return out[0]


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "uuid", "message"),
    [
        (record(vm_state="running"), "u1", f"unknown vm_state 'running': use one of {VM_CHOICES}"),
        (record(task_state="napping"), "u1", f"unknown task_state 'napping': use null or one of {TASK_CHOICES}"),
        (record(task_state="none"), "u1", f"unknown task_state 'none': use null or one of {TASK_CHOICES}"),
        (record(power_state="on"), "u1", f"unknown power_state 'on': use one of {POWER_CHOICES}"),
        (record(power_state=2), "u1", f"unknown power_state 2: use one of {POWER_CHOICES}"),
        (record(db_power_state="off"), "u1", f"unknown db_power_state 'off': use one of {POWER_CHOICES}"),
        ({k: v for k, v in record().items() if k != "db_power_state"}, "u1",
         f"missing field 'db_power_state': {MISSING}"),
        ({k: v for k, v in record().items() if k != "task_state"}, "u1", f"missing field 'task_state': {MISSING}"),
        ({k: v for k, v in record().items() if k != "uuid"}, None, f"missing field 'uuid': {MISSING}"),
        ("[1, 2]", None, "a record must be a JSON object, not list"),
        ('"active"', None, "a record must be a JSON object, not str"),
        (record(evacuation="yes"), "u1", "evacuation must be null or an object with a string status, not 'yes'"),
        (record(evacuation={"dest_host": "b"}), "u1",
         "evacuation must be null or an object with a string status, not {'dest_host': 'b'}"),
        (record(deleted="no"), "u1", "deleted must be true or false, not 'no'"),
    ],
    ids=["vm_state", "task_state", "task_state-none-spelled", "power_state", "power_state-int", "db_power_state",
         "missing-db_power_state", "missing-task_state", "missing-uuid", "list", "string", "evacuation-string",
         "evacuation-no-status", "deleted-not-bool"],
)
def test_a_bad_record_names_the_field_and_the_fix(line, uuid, message):
    result, out = decide(line)
    assert out == [{"uuid": uuid, "error": f"line 1: {message}"}]
    assert result.exit_code == 1
    assert result.stderr == "decide: 1 input line(s) could not be decided; their output lines carry the error\n"


def test_malformed_json_is_reported_on_its_line():
    result, out = decide(record(uuid="a"), "{not json", record(uuid="c"))
    assert [o["uuid"] for o in out] == ["a", None, "c"]
    assert out[1]["error"].startswith("line 2: not valid JSON (") and out[1]["error"].endswith(")")
    assert set(out[1]) == {"uuid", "error"}
    assert "error" not in out[0] and "error" not in out[2]
    assert result.exit_code == 1


def test_blank_lines_are_ignored_but_counted():
    result, out = decide("", record(uuid="a"), "   ", "\t", record(uuid="b", vm_state="bogus"))
    assert [o["uuid"] for o in out] == ["a", "b"]
    assert out[1]["error"].startswith("line 5: unknown vm_state 'bogus'")
    assert result.exit_code == 1


def test_empty_input_decides_nothing():
    for text in ("", "\n\n  \n"):
        result = CliRunner().invoke(cli, ["decide", "--host", HOST], input=text)
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_outputs_follow_input_order():
    uuids = [f"uuid-{n:03d}" for n in range(50)][::-1]
    states = ["active", "stopped", "building", "error", "deleted"]
    result, out = decide(*(record(uuid=u, vm_state=states[i % 5]) for i, u in enumerate(uuids)))
    assert result.exit_code == 0
    assert [o["uuid"] for o in out] == uuids
    assert [o["state"].split("/")[0] for o in out] == [states[i % 5] for i in range(50)]


# -- options and facts -------------------------------------------------------------------------


def test_a_valid_record_gets_the_full_output_record():
    out = decide_one(vm_state="active", task_state="powering-off", power_state="running")
    assert out == {
        "uuid": "u1",
        "state": "active/powering-off/running",
        "path": [{"rule": "retry_stop", "from": "active/powering-off/running", "to": "active/powering-off/running"}],
        "actions": [{"name": "stop"}],
        "vm_state": "active",
        "task_state": "powering-off",
        "reason": "A power-off was interrupted, so the stop is retried.",
    }


def test_host_decides_ownership():
    args = ("--host", "compute-1")
    owned = CliRunner().invoke(cli, ["decide", *args], input=json.dumps(record(host="compute-1")) + "\n")
    assert json.loads(owned.stdout)["actions"] == [{"name": "plug_vifs"}]
    other = CliRunner().invoke(cli, ["decide", *args], input=json.dumps(record(host="compute-2")) + "\n")
    decision = json.loads(other.stdout)
    assert decision["actions"] == [] and [s["rule"] for s in decision["path"]] == ["not_owned"]
    missing = CliRunner().invoke(cli, ["decide", *args], input=json.dumps(record()) + "\n")
    assert json.loads(missing.stdout)["actions"] == [{"name": "plug_vifs"}], "no host means this host"


EVACUATED = {"status": "done", "dest_host": "compute-2", "shared_storage": False}


def test_evacuated_away_domain_is_destroyed_and_the_evacuation_completed():
    out = decide_one(host="compute-2", evacuation=EVACUATED)
    assert out["actions"] == [{"name": "destroy_evacuated", "destroy_disks": True}, {"name": "complete_migration"}]
    shared = decide_one(host="compute-2", evacuation={**EVACUATED, "shared_storage": True})
    assert shared["actions"][0] == {"name": "destroy_evacuated", "destroy_disks": False}
    deleted = decide_one(host="compute-2", deleted=True, evacuation={**EVACUATED, "shared_storage": True})
    assert deleted["actions"][0] == {"name": "destroy_evacuated", "destroy_disks": True}


def test_no_destroy_after_evacuate_leaves_the_domain():
    out = decide_one(args=("--no-destroy-after-evacuate",), host="compute-2", evacuation=EVACUATED)
    assert out["actions"] == []
    assert [s["rule"] for s in out["path"]] == ["evacuated_away"]
    assert "left alone" in out["reason"]


def test_an_evacuation_no_longer_pending_is_not_evidence():
    out = decide_one(host="compute-2", evacuation={**EVACUATED, "status": "completed"})
    assert out["actions"] == [] and [s["rule"] for s in out["path"]] == ["not_owned"]


def test_running_deleted_instance_action_reap_destroys_a_deleted_records_domain():
    reap = decide_one(args=("--running-deleted-instance-action", "reap"), deleted=True)
    assert reap["actions"] == [{"name": "reap_domain"}]
    assert decide_one(deleted=True)["actions"] == [], "the default (log) only reports"
    shutdown = decide_one(args=("--running-deleted-instance-action", "shutdown"), deleted=True)
    assert shutdown["actions"] == [{"name": "shutdown_domain"}]
    gone = decide_one(args=("--running-deleted-instance-action", "reap"), deleted=True, domain_present=False)
    assert gone["actions"] == [], "no domain, nothing to reap"


def test_bad_running_deleted_instance_action_is_a_usage_error():
    result = CliRunner().invoke(cli, ["decide", "--running-deleted-instance-action", "burn"], input="")
    assert result.exit_code == 2
    assert "Invalid value for '--running-deleted-instance-action'" in result.stderr


def test_power_states_are_accepted_as_novas_integers():
    out = decide_one(args=("--resume-guests-state-on-host-boot",), power_state=4, db_power_state=1)
    assert out["state"] == "active/none/shutdown"
    assert out["actions"] == [{"name": "plug_vifs"}, {"name": "resume_guest"}]
    assert decide_one(power_state=0)["state"] == "active/none/nostate"
    assert decide_one(power_state=7, vm_state="suspended")["state"] == "suspended/none/suspended"


def test_resume_guests_state_on_host_boot_is_off_by_default():
    assert decide_one(power_state="shutdown")["actions"] == [{"name": "plug_vifs"}]


def test_no_domain_means_power_nostate():
    out = decide_one(domain_present=False, power_state="running")
    assert out["state"] == "active/none/nostate"
    without = record(domain_present=False)
    del without["power_state"]
    result, decided = decide(without)
    assert result.exit_code == 0 and decided[0]["state"] == "active/none/nostate"


# -- explain -----------------------------------------------------------------------------------

SNAPSHOT = {
    "vm_state": "active", "task_state": "image_snapshot", "power_state": "shutdown", "db_power_state": "running",
}


def explain(*args, stdin=None):
    return CliRunner().invoke(cli, ["explain", "--host", HOST, *args], input=stdin)


def test_explain_shows_the_path_and_why_earlier_rules_did_not_match():
    result = explain("--facts", json.dumps(SNAPSHOT), "--resume-guests-state-on-host-boot")
    assert result.exit_code == 0, result.stderr
    text = result.stdout.splitlines()
    assert text[0] == "start state: active/image_snapshot/shutdown"
    path = text[text.index("path:") + 1: text.index("path:") + 4]
    assert path == [
        "  active/image_snapshot/shutdown --interrupted_snapshot--> active/none/shutdown",
        "  active/none/shutdown --plug_vifs--> active/none/shutdown",
        "  active/none/shutdown --resume_guest--> active/none/shutdown",
    ]
    assert "actions: plug_vifs, resume_guest" in text
    assert "record after the decision: vm_state=active task_state=null" in text
    assert "  [no   ] not_owned at active/image_snapshot/shutdown: owned is true, not false" in text
    assert "  [no   ] evacuated_away at active/image_snapshot/shutdown: evacuation_status is null, not accepted, " \
           "done, pre-migrating" in text
    assert "  [MATCH] interrupted_snapshot at active/image_snapshot/shutdown: vm_state is active; " \
           "task_state is image_snapshot" in text
    assert "  [no   ] retry_reboot at active/none/shutdown: task_state is none, not reboot_pending; task_state is " \
           "none, not reboot_pending_hard; task_state is none, not reboot_started, rebooting; task_state is none, " \
           "not reboot_started_hard, rebooting_hard" in text
    assert text[-1].startswith("why: A snapshot was interrupted, so its task is cleared; then ")


def test_explain_without_the_option_does_not_resume():
    result = explain("--facts", json.dumps(SNAPSHOT))
    assert "actions: plug_vifs" in result.stdout.splitlines()


def test_explain_json_from_stdin():
    result = explain("--facts", "-", "--json", "--resume-guests-state-on-host-boot", stdin=json.dumps(SNAPSHOT))
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"uuid", "state", "facts", "options", "considered", "path", "actions", "vm_state",
                        "task_state", "reason"}
    assert doc["uuid"] == "(facts)"
    assert doc["state"] == "active/image_snapshot/shutdown"
    assert doc["facts"]["host"] is None and doc["options"]["resume_guests_state_on_host_boot"] is True
    assert [s["rule"] for s in doc["path"]] == ["interrupted_snapshot", "plug_vifs", "resume_guest"]
    assert doc["actions"] == [{"name": "plug_vifs"}, {"name": "resume_guest"}]
    assert (doc["vm_state"], doc["task_state"]) == ("active", None)
    matched = [c["rule"] for c in doc["considered"] if c["matched"]]
    assert matched == ["interrupted_snapshot", "plug_vifs", "resume_guest"]
    assert all(set(c) == {"rule", "state", "matched", "why"} for c in doc["considered"])


def test_explain_names_the_uuid_argument():
    result = explain("abc-123", "--facts", json.dumps(SNAPSHOT), "--json")
    assert json.loads(result.stdout)["uuid"] == "abc-123"


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({**SNAPSHOT, "vm_state": "bogus"}, f"unknown vm_state 'bogus': use one of {VM_CHOICES}"),
        ({"vm_state": "active"}, f"missing field 'task_state': {MISSING}"),
        ("[]", "a record must be a JSON object, not list"),
    ],
)
def test_explain_bad_facts_exit_2_with_one_error_line(facts, message):
    result = explain("--facts", facts if isinstance(facts, str) else json.dumps(facts))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"compute-recover: --facts: {message}"]


def test_explain_malformed_facts_exit_2():
    result = explain("--facts", "{bad")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("compute-recover: --facts: not valid JSON (")


# -- graph -------------------------------------------------------------------------------------


def graph(*args):
    return CliRunner().invoke(cli, ["graph", *args])


def test_mermaid_graph_of_one_vm_state():
    result = graph("--format", "mermaid", "--vm-state", "active")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "stateDiagram-v2"
    assert '    state "active/rebooting/shutdown" as s_active_rebooting_shutdown' in lines
    assert "    s_active_rebooting_shutdown --> s_active_reboot_pending_hard_shutdown: retry_reboot" in lines
    assert "    s_active_image_snapshot_running --> s_active_none_running: interrupted_snapshot" in lines
    edges = [line for line in lines if " --> " in line]
    assert edges and all(line.startswith("    s_active_") for line in edges), "only edges leaving active states"


def test_dot_graph():
    result = graph("--format", "dot", "--vm-state", "active", "--task-state", "rebooting")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "digraph recovery {" and lines[-1] == "}"
    assert '    "active/rebooting/shutdown" -> "active/reboot_pending_hard/shutdown" [label="retry_reboot"];' in lines
    assert '    "active/rebooting/running" -> "active/none/running" [label="transition_finished"];' in lines
    assert not any('"active/rebooting/running" -> "active/reboot_pending_hard' in line for line in lines)
    edges = [line for line in lines if " -> " in line]
    assert all(line.startswith('    "active/rebooting/') for line in edges)


def test_graph_rejects_an_unknown_vm_state():
    result = graph("--vm-state", "bogus")
    assert result.exit_code == 2
    assert "Invalid value for '--vm-state': 'bogus' is not one of 'active'" in result.stderr


MERMAID_MAX_EDGES = 500
MERMAID_MAX_TEXT_SIZE = 50_000
"""Mermaid's default `maxEdges` and `maxTextSize`: beyond them it refuses to render."""


def test_unfiltered_graph_is_a_summary_mermaid_renders_by_default():
    summary = graph().stdout
    edges = [line for line in summary.splitlines() if " --> " in line]
    assert len(summary) <= MERMAID_MAX_TEXT_SIZE and len(edges) <= MERMAID_MAX_EDGES
    assert "    s_active --> s_error: failed_build (24)<br/>failed_rebuild (18)" in edges
    assert '    state "active" as s_active' in summary.splitlines()
    full_edges = [line for line in graph("--full").stdout.splitlines() if " --> " in line]
    assert len(full_edges) > MERMAID_MAX_EDGES
    counts = [int(count) for line in edges for count in re.findall(r"\w+ \((\d+)\)", line)]
    assert sum(counts) == len(full_edges), "the summary counts every full transition once"


def test_graph_full_draws_every_state_triple():
    lines = graph("--full", "--format", "dot").stdout.splitlines()
    assert '    "active/rebooting/shutdown" -> "active/reboot_pending_hard/shutdown" [label="retry_reboot"];' in lines


# -- version -----------------------------------------------------------------------------------


def test_version_is_the_installed_package_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"compute-recover, version {importlib.metadata.version('compute-recover')}\n"

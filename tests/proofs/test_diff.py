"""`compute-recover diff`: exactly the states and fact classes whose decision changes, and the instances hit."""

import itertools
import json
import re

import pytest
import yaml
from click.testing import CliRunner

from recovery.cli import cli
from recovery.core.facts import Facts, Options
from recovery.core.machine import shared_machine
from recovery.proofs.diff import OPTION_FIELDS, SIDE_FIELDS, compare, outcome, side
from recovery.proofs.fact_classes import ALL_TRIPLES
from recovery.proofs.policy_source import installed_policy, policy_from_file
from tests.support.in_process import load_records
from tests.support.paths import FIXTURES, ROOT

POLICY_FILE = ROOT / "states" / "policy.py"


def diff(*args: str):
    return CliRunner().invoke(cli, ["diff", *args], catch_exceptions=False)


def brute_force_changes(a: Options, b: Options, classes) -> set[tuple]:
    """Every (triple, class of each non-option fact) whose decision changes, by deciding each one."""
    fields = [f for f in classes if f not in SIDE_FIELDS]
    machine, changed = shared_machine(), set()
    options_a = {f: getattr(a, f) for f in OPTION_FIELDS}
    options_b = {f: getattr(b, f) for f in OPTION_FIELDS}
    for triple in ALL_TRIPLES:
        for combination in itertools.product(*(classes[f] for f in fields)):
            values = {c.field: c.representative for c in combination}
            first = machine.decide(Facts(*triple, **values, **options_a))
            second = machine.decide(Facts(*triple, **values, **options_b))
            if outcome(first) != outcome(second):
                changed.add((triple, combination))
    return changed


def expanded(result) -> set[tuple]:
    """The (triple, class combination) pairs the listed symbolic cases stand for."""
    fields = [f for f in result.classes if f not in SIDE_FIELDS]
    found = set()
    for difference in result.differences:
        fixed = {c.field: c for c in difference.case.fixed}
        choices = [(fixed[f],) if f in fixed else result.classes[f] for f in fields]
        found.update((difference.case.triple, combination) for combination in itertools.product(*choices))
    return found


def test_resume_off_against_on_lists_exactly_the_states_whose_decision_changes():
    policy = installed_policy()
    result = compare(side(policy, ("resume=off",)), side(policy, ("resume=on",)))
    listed = expanded(result)
    assert listed == brute_force_changes(Options(resume_guests_state_on_host_boot=False),
                                         Options(resume_guests_state_on_host_boot=True), result.classes)
    assert sum(result.covered(d.case) for d in result.differences) == len(listed)
    for difference in result.differences:
        assert [a.name for a in difference.b.actions] == [*[a.name for a in difference.a.actions], "resume_guest"]


def test_the_cli_lists_each_change_with_both_sides():
    result = diff("--a", "resume=off", "--b", "resume=on")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "a: states/policy.py with default options"
    assert lines[1] == "b: states/policy.py with resume_guests_state_on_host_boot=on"
    index = lines.index("active/none/shutdown owned=true db_power_state=running domain_present=true evacuation_status "
                        "in {null, completed, error, ...} deleted=false down_too_long=false")
    assert lines[index + 1:index + 3] == ["    a: plug_vifs; record active/none",
                                          "    b: plug_vifs, resume_guest; record active/none"]
    assert re.fullmatch(r"1,406 of [\d,]+ symbolic cases differ, standing for 19,016 of 1,585,152 cases "
                        r"\(states x fact classes\)", lines[-1])
    assert not any(line.startswith("active/none/running ") for line in lines), "a running guest is never resumed"


def test_the_host_default_resume_policy_is_a_side_option():
    """Turning --resume-policy never on a host that resumes: exactly the guests Nova's rule would resume stay off."""
    policy = installed_policy()
    never = compare(side(policy, ("resume=on",)), side(policy, ("resume=on", "resume_policy=never")))
    resume = compare(side(policy, ("resume=off",)), side(policy, ("resume=on",)))
    assert expanded(never) == expanded(resume)


def test_identical_sides_differ_nowhere():
    result = diff("--json")
    doc = json.loads(result.stdout)
    assert doc["differences"] == [] and doc["cases"] == 1_585_152


def test_a_policy_copy_is_compared_with_the_installed_one(tmp_path):
    """A copy that resumes only guests that were stopped cleanly (not crashed) differs exactly there."""
    text = POLICY_FILE.read_text()
    old = '''is_in("resume_guests_state_on_host_boot", True),
                reason="it was running before the host went down and resume_guests_state_on_host_boot is on, "
                "so the guest is resumed",'''
    assert text.count(old) == 1
    copy = tmp_path / "policy.py"
    copy.write_text(text.replace(old, 'not_in("power_state", "crashed"), ' + old))
    result = diff("--a", "resume=on", "--b", "resume=on", "--b-policy-module", str(copy), "--json")
    doc = json.loads(result.stdout)
    assert doc["differences"]
    assert {d["state"].split("/")[2] for d in doc["differences"]} == {"crashed"}
    assert all([a["name"] for a in d["a"]["actions"]][-1] == "resume_guest" for d in doc["differences"])
    assert doc["b"] == f"{copy} with resume_guests_state_on_host_boot=on"
    assert policy_from_file(copy).rules != installed_policy().rules


@pytest.mark.parametrize(("args", "message"), [
    (["--a", "resume"], "'resume' is not a decision option setting: use NAME=VALUE"),
    (["--b", "colour=on"], "'colour=on' is not a decision option setting"),
    (["--a", "resume=maybe"], "'resume=maybe': resume_guests_state_on_host_boot is on or off"),
    (["--a", "running_deleted_instance_action=burn"], "running_deleted_instance_action is one of reap, shutdown"),
    (["--db", "sqlite:///x.sqlite"], "diff --db needs --host"),
])
def test_bad_settings_are_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(cli, ["diff", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1


def test_with_a_database_it_lists_the_instances_of_the_host_it_would_affect_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'outage.sqlite'}"
    load_records(url, FIXTURES / "power-outage")
    before = (tmp_path / "outage.sqlite").read_bytes()
    result = diff("--a", "resume=off", "--b", "resume=on", "--db", url, "--host", "compute-1", "--json")
    assert result.exit_code == 0
    affected = {i["name"]: i for i in json.loads(result.stdout)["affected"]}
    # the guests that ran, have no task that settles them otherwise, and are not evacuated or elsewhere
    assert set(affected) == {"plain-running-guest", "snapshot-interrupted", "resize-prep-interrupted",
                             "pause-interrupted", "resize-migrating-crashed", "live-migration-interrupted"}
    assert affected["plain-running-guest"]["power_states"] == ["nostate", "paused", "shutdown", "crashed", "suspended"]
    assert (tmp_path / "outage.sqlite").read_bytes() == before


def test_diff_takes_f_and_c_with_the_keys_and_values_of_the_full_json():
    sides = ("--a", "resume=off", "--b", "resume=on")
    full = json.loads(diff(*sides, "--json").output)["differences"]
    assert full and set(full[0]) == {"state", "facts", "a", "b"}
    picked = json.loads(diff(*sides, "-f", "json", "-c", "state", "-c", "facts", "-c", "a", "-c", "b").output)
    assert picked == full  # the same keys, and values of the same types
    assert json.loads(diff(*sides, "-f", "json", "-c", "facts").output) == [{"facts": d["facts"]} for d in full]
    assert diff(*sides, "-f", "value", "-c", "state").output.splitlines() == [d["state"] for d in full]
    assert yaml.safe_load(diff(*sides, "-f", "yaml", "-c", "a").output) == [{"a": d["a"]} for d in full]
    bad = CliRunner().invoke(cli, ["diff", *sides, "-c", "nope"])
    assert bad.exit_code == 2 and "state, facts, a, b" in bad.output

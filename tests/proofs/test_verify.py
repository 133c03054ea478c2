"""`compute-recover verify`: exhaustive proofs over every state and fact class, and counterexamples."""

import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from recovery.cli import cli
from recovery.core.facts import Facts
from recovery.core.machine import shared_machine
from recovery.proofs.fact_classes import FACT_FIELDS, OTHER, explore, fact_classes, guard_tests
from recovery.proofs.policy_source import installed_policy, policy_at_revision
from recovery.proofs.verify import EVIDENCE_TESTS, decision_summary
from states.policy import POLICY
from tests.support.paths import ROOT

POLICY_FILE = ROOT / "states" / "policy.py"
REAP_CASE = '''                is_in("deleted", True), DOMAIN_HERE,
                is_in("running_deleted_instance_action", RunningDeletedInstanceAction.REAP.value),'''


def verify(*args: str):
    return CliRunner().invoke(cli, ["verify", *args], catch_exceptions=False)


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = POLICY_FILE.read_text()
    assert text.count(old) == 1
    copy = tmp_path / "policy.py"
    copy.write_text(text.replace(old, new))
    return copy


def test_the_installed_policy_holds_every_invariant_over_the_whole_space():
    result = verify()
    assert result.exit_code == 0, result.stdout
    assert "3,096 states x 73,728 fact classes" in result.stdout
    assert "= 228,261,888 cases per invariant" in result.stdout
    rows = re.findall(r"^  (\S+(?: \S+)?) +(holds|FAILS) +([\d,]+) symbolic cases covering ([\d,]+) cases$",
                      result.stdout, re.MULTILINE)
    assert [name for name, *_ in rows] == [
        "totality", "determinism", "decision cache", "safety", "convergence", "trigger agreement"]
    for _name, verdict, _symbolic, covered in rows:
        assert verdict == "holds" and covered == "228,261,888"
    assert result.stdout.rstrip().endswith("every invariant holds")


def test_a_rule_broken_in_a_copy_of_the_policy_gives_a_counterexample_and_exit_1(tmp_path):
    """Reaping without a deleted record: the orphan option alone would destroy live guests."""
    copy = broken_copy(tmp_path, REAP_CASE, REAP_CASE.replace('is_in("deleted", True), DOMAIN_HERE,', "DOMAIN_HERE,"))
    result = verify("--policy-module", str(copy))
    assert result.exit_code == 1
    assert re.search(r"^  safety +FAILS", result.stdout, re.MULTILINE)
    assert re.search(r"^  totality +holds", result.stdout, re.MULTILINE)
    counterexample = result.stdout[result.stdout.index("counterexample to safety"):]
    assert "deleted=false" in counterexample
    assert "running_deleted_instance_action=reap" in counterexample
    assert "problem:  reap_domain destroys the domain, but the record is not deleted" in counterexample
    assert '"deleted": false' in counterexample and '"name": "reap_domain"' in counterexample
    assert re.search(r"checked [\d,]+ symbolic cases standing for [\d,]+ cases: 2 invariant\(s\) fail", result.stdout)


def test_a_rule_that_never_settles_fails_convergence(tmp_path):
    """Retrying a start that leaves the task set would start the guest on every run."""
    old = '''    "start": ActionOutcome(on_success=_RUNNING_ACTIVE, on_failure=(("task_state", None),)),'''
    new = old.replace("on_success=_RUNNING_ACTIVE", 'on_success=(("power_state", "running"),)')
    copy = broken_copy(tmp_path, old, new)
    result = verify("--policy-module", str(copy))
    assert result.exit_code == 1
    assert re.search(r"^  convergence +FAILS", result.stdout, re.MULTILINE)
    assert "powering-on" in result.stdout[result.stdout.index("counterexample to convergence"):]


@pytest.mark.parametrize(("args", "message"), [
    (["--policy-module", "/nonexistent/policy.py"], "policy module /nonexistent/policy.py does not exist"),
    (["--rev", "no-such-revision"], "cannot read no-such-revision:states/policy.py"),
])
def test_a_policy_that_cannot_be_loaded_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(cli, ["verify", *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_a_module_without_a_policy_table_is_refused(tmp_path):
    copy = tmp_path / "policy.py"
    copy.write_text("RULES = ()\n")
    result = CliRunner().invoke(cli, ["verify", "--policy-module", str(copy)])
    assert result.exit_code == 2
    assert "must define POLICY (a tuple of Rule) and ACTIONS (a dict)" in result.stderr


def test_the_policy_at_head_is_the_committed_table():
    assert repr(policy_at_revision("HEAD").rules) == repr(installed_policy().rules)


# -- the explorer covers every combination: checked against brute force on a few start triples -----


CLASSES = fact_classes(guard_tests(POLICY), EVIDENCE_TESTS)
TRIPLES = (("active", "none", "shutdown"), ("active", "deleting", "running"))


def test_values_a_guard_cannot_tell_apart_share_a_class():
    assert {c.members for c in CLASSES["evacuation_status"]} == {
        ("accepted", "done", "pre-migrating"), (None, "completed", "error", OTHER)}
    assert {c.members for c in CLASSES["running_deleted_instance_action"]} == {("reap",), ("shutdown",),
                                                                               ("log", "noop")}
    assert {c.members for c in CLASSES["db_power_state"]} == {
        ("running",), ("nostate", "paused", "shutdown", "crashed", "suspended")}


def test_every_symbolic_case_decides_as_every_combination_it_stands_for():
    """Each class is tried through its first and last member (every class of one member is tried whole)."""
    machine = shared_machine()
    for triple in TRIPLES:
        cases = list(explore(machine.decide_afresh, CLASSES, [triple]))
        seen = set()
        for combination in itertools.product(*(CLASSES[f] for f in FACT_FIELDS)):
            chosen = dict(zip(FACT_FIELDS, combination, strict=True))
            matching = [(case, decision) for case, decision in cases
                        if all(chosen[c.field] == c for c in case.fixed)]
            assert len(matching) == 1, (triple, chosen)
            case, decision = matching[0]
            seen.add(case)
            for values in itertools.product(*({chosen[f].members[0], chosen[f].members[-1]} for f in FACT_FIELDS)):
                facts = Facts(*triple, *values)
                assert decision_summary(machine.decide(facts)) == decision_summary(decision), facts
        assert seen == {case for case, _ in cases}
        assert sum(case.covered(CLASSES) for case, _ in cases) == 73_728

"""The invariants of the policy, proved over generated facts (hypothesis)."""

import itertools
import json
import string

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recovery.cli import cli
from recovery.core.documents import decision_json
from recovery.core.facts import POWER_STATES, TASK_STATES, VM_STATES, Facts, Options, facts_from_record
from recovery.core.machine import RecoveryMachine, shared_machine
from recovery.present.graph import takeable_edges
from recovery.proofs.verify import CONVERGENCE_BOUND, attach_model, convergence, fire_triggers, safety
from states.enums import NO_TASK, DeviceReadiness, ResumePolicy, RunningDeletedInstanceAction
from states.policy import ACTIONS, POLICY

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PENDING = ("accepted", "pre-migrating", "done")
EVACUATION_STATUSES = (None, *PENDING, "completed", "error", "failed")
RDIA = tuple(a.value for a in RunningDeletedInstanceAction)
ALL_STATE_NAMES_SORTED = sorted(f"{v}/{t}/{p}" for v in VM_STATES for t in TASK_STATES for p in POWER_STATES)
ALL_STATE_NAMES = frozenset(ALL_STATE_NAMES_SORTED)

# The action vocabulary (docs/policy.md), with each action's parameters and their allowed values.
VOCABULARY = {
    "complete_deletion": {}, "restart_deletion": {}, "reboot": {"type": {"soft", "hard"}}, "unpause": {},
    "stop": {}, "start": {}, "plug_vifs": {}, "revert_resize": {"power_on": {True, False}},
    "abort_live_migration": {}, "resume_guest": {}, "destroy_evacuated": {"destroy_disks": {True, False}},
    "complete_migration": {}, "reap_domain": {}, "shutdown_domain": {}, "repair_devices": {},
    "destroy_domain": {"destroy_disks": {True}},
}

vm_states = st.sampled_from(VM_STATES)
task_states = st.sampled_from(TASK_STATES)
power_states = st.sampled_from(POWER_STATES)

any_facts = st.builds(
    Facts,
    vm_state=vm_states, task_state=task_states, power_state=power_states, owned=st.booleans(),
    db_power_state=power_states, old_vm_state=st.none() | vm_states, domain_present=st.booleans(),
    evacuation_status=st.sampled_from(EVACUATION_STATUSES), shared_storage=st.booleans(), deleted=st.booleans(),
    resume_guests_state_on_host_boot=st.booleans(), destroy_after_evacuate=st.booleans(),
    running_deleted_instance_action=st.sampled_from(RDIA),
    resume_policy=st.sampled_from([p.value for p in ResumePolicy]), down_too_long=st.booleans(),
    devices=st.sampled_from([r.value for r in DeviceReadiness]),
    nova_cell=st.booleans(),
)
"""Every combination of the enumerations and facts, consistent or not."""

facts = any_facts.map(lambda f: f if f.domain_present else f._replace(power_state="nostate"))
"""Facts as a record can produce them: without a domain the hypervisor reports nostate."""


def summary(decision) -> tuple:
    return (
        tuple((s.rule.name, s.source, s.dest) for s in decision.steps),
        tuple((a.name, a.params) for a in decision.actions),
        decision.vm_state, decision.task_state, decision.reason,
    )


# -- totality and determinism ------------------------------------------------------------------


@FAST
@given(any_facts)
def test_every_combination_yields_exactly_one_well_formed_decision(f):
    decision = shared_machine().decide(f)
    order = [rule.name for rule in POLICY]
    steps = decision.steps
    assert steps, "empty path"
    assert steps[0].source == f.state
    for step, following in itertools.pairwise(steps):
        assert step.dest == following.source
        assert not step.rule.stop, f"{step.rule.name} stops, yet the walk went on"
    for step in steps:
        assert step.source in ALL_STATE_NAMES and step.dest in ALL_STATE_NAMES
    indices = [order.index(s.rule.name) for s in steps]
    assert indices == sorted(set(indices)), "rules must be taken in priority order, each at most once"
    vm_state, task_state, power_state = steps[-1].dest.split("/")
    assert (decision.vm_state, decision.task_state or NO_TASK) == (vm_state, task_state)
    assert power_state == f.power_state, "a decision never writes the hypervisor's power state"
    for action in decision.actions:
        assert action.name in VOCABULARY
        params = dict(action.params)
        assert set(params) == set(VOCABULARY[action.name]), action
        for name, value in params.items():
            assert value in VOCABULARY[action.name][name] and type(value) is type(next(iter(
                VOCABULARY[action.name][name]))), action
    assert decision.reason.endswith(".") and decision.reason[0].isupper()
    json.dumps(decision_json(decision))


_fresh: list[RecoveryMachine] = []


def fresh_machine() -> RecoveryMachine:
    if not _fresh:
        _fresh.append(RecoveryMachine())
    return _fresh[0]


@FAST
@given(any_facts)
def test_the_same_facts_always_yield_the_same_decision(f):
    first = shared_machine().decide(f)
    again = shared_machine().decide(Facts(*list(f)))
    rebuilt = fresh_machine().decide(f)
    assert fresh_machine() is not shared_machine()
    assert summary(first) == summary(again) == summary(rebuilt)


# -- safety ------------------------------------------------------------------------------------


def test_exactly_these_actions_destroy_a_domain():
    assert set(ACTIONS) == set(VOCABULARY)
    assert {name for name, outcome in ACTIONS.items() if outcome.destroys_domain} == {
        "destroy_evacuated", "reap_domain", "restart_deletion", "destroy_domain",
    }


@FAST
@given(any_facts)
def test_no_domain_is_destroyed_without_evidence(f):
    """No decision destroys or undefines a domain except on rule 1's evidence (a pending evacuation away),
    a deleted instance record (marked deleted, vm_state deleted, or a deletion in progress), or an explicit
    orphan option (running_deleted_instance_action reap); `compute-recover verify` proves it for every class."""
    assert SAFETY(f) is None, f


@FAST
@given(facts.map(lambda f: f._replace(destroy_after_evacuate=False)))
def test_without_destroy_after_evacuate_no_evacuated_domain_is_destroyed(f):
    names = [a.name for a in shared_machine().decide(f).actions]
    assert "destroy_evacuated" not in names
    if f.evacuation_status in PENDING and f.domain_present:
        assert names == [], "the stale domain is left alone and the evacuation stays open"


@FAST
@given(facts.map(lambda f: f._replace(
    owned=False, deleted=False, evacuation_status=None if f.evacuation_status in PENDING else f.evacuation_status)))
def test_an_instance_of_another_host_is_left_alone(f):
    decision = shared_machine().decide(f)
    assert decision.actions == ()
    assert (decision.vm_state, decision.task_state or NO_TASK) == (f.vm_state, f.task_state)


# -- convergence -------------------------------------------------------------------------------


@FAST
@given(facts)
def test_deciding_again_after_success_reaches_a_fixed_point_within_three_steps(f):
    assert CONVERGENCE_BOUND == 3
    assert CONVERGENCE(f) is None, f


# -- the machine is the source of truth ----------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    """One model on a separately built machine, told to report each executed transition.

    (Adding a model to 3,096 states costs ~10 ms, so it is added once and moved with set_state.)
    """
    machine = fresh_machine()
    assert machine is not shared_machine()
    instance = attach_model(machine)
    yield instance
    machine.machine.remove_model(instance)
    assert instance not in machine.machine.models


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=facts)
def test_firing_the_machines_triggers_agrees_with_the_walk(model, f):
    """What `transitions` itself does when each rule is fired is what `decide` (a table walk) says."""
    decision = shared_machine().decide(f)
    reached, fired = fire_triggers(fresh_machine(), model, f)
    assert fired == [
        (s.rule.name, s.rule.cases.index(s.case), s.source, s.dest, s.case.actions) for s in decision.steps
    ]
    assert reached == decision.steps[-1].dest
    assert tuple(a for *_, actions in fired for a in actions) == decision.actions


# -- the CLI isolates bad lines ------------------------------------------------------------------

HOST = "this-host"
uuids = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)

valid_records = st.fixed_dictionaries(
    {
        "uuid": uuids, "vm_state": vm_states, "task_state": st.none() | task_states.filter(lambda t: t != NO_TASK),
        "power_state": power_states | st.sampled_from([0, 1, 3, 4, 6, 7]), "db_power_state": power_states,
    },
    optional={
        "host": st.sampled_from([HOST, "other-host"]), "old_vm_state": st.none() | vm_states,
        "domain_present": st.booleans(), "deleted": st.booleans(),
        "evacuation": st.none() | st.fixed_dictionaries(
            {"status": st.sampled_from(EVACUATION_STATUSES[1:]), "dest_host": st.just("other-host"),
             "shared_storage": st.booleans()}),
    },
)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


not_json = st.text(alphabet='{}[]":,abc01 ', min_size=1, max_size=20).filter(
    lambda t: t.strip() != "" and _not_json(t))
not_objects = st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.text(max_size=5), st.none()).map(
    json.dumps)
bad_records = st.one_of(
    valid_records.map(lambda r: {**r, "vm_state": "running"}),
    valid_records.map(lambda r: {**r, "task_state": "napping"}),
    valid_records.map(lambda r: {**r, "power_state": 2, "domain_present": True}),
    valid_records.map(lambda r: {k: v for k, v in r.items() if k != "db_power_state"}),
    valid_records.map(lambda r: {**r, "evacuation": "yes"}),
    valid_records.map(lambda r: {**r, "deleted": "no"}),
).map(json.dumps)

lines = st.lists(
    st.one_of(
        valid_records.map(lambda r: ("valid", json.dumps(r))),
        valid_records.map(lambda r: ("valid", json.dumps(r))),
        not_json.map(lambda t: ("broken", t)),
        not_objects.map(lambda t: ("broken", t)),
        bad_records.map(lambda t: ("broken", t)),
        st.sampled_from(["", "   ", "\t"]).map(lambda t: ("blank", t)),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def decide_cli(runner: CliRunner, text: str):
    return runner.invoke(cli, ["decide", "--host", HOST], input=text, catch_exceptions=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines)
def test_bad_lines_never_stop_the_other_lines(runner, mix):
    result = decide_cli(runner, "".join(text + "\n" for _, text in mix))
    outputs = result.stdout.splitlines()
    expected_kinds = [(number, kind, text) for number, (kind, text) in enumerate(mix, 1) if kind != "blank"]
    assert len(outputs) == len(expected_kinds)
    for (number, kind, text), line in zip(expected_kinds, outputs, strict=True):
        got = json.loads(line)
        if kind == "valid":
            record = json.loads(text)
            facts_alone = facts_from_record(record, HOST, Options())
            assert got == {"uuid": record["uuid"], **decision_json(shared_machine().decide(facts_alone))}
            alone = decide_cli(runner, text + "\n")
            assert alone.exit_code == 0 and alone.stdout == line + "\n"
        else:
            assert set(got) == {"uuid", "error"}, got
            assert got["error"].startswith(f"line {number}: "), got
            parsed = None if not text.startswith("{") or _not_json(text) else json.loads(text)
            assert got["uuid"] == (parsed.get("uuid") if isinstance(parsed, dict) else None)
    broken = sum(kind == "broken" for kind, _ in mix)
    assert result.exit_code == (1 if broken else 0)
    if broken:
        assert f"{broken} input line(s) could not be decided" in result.stderr
    else:
        assert result.stderr == ""


# -- the graph shows exactly the transitions walks can take ----------------------------------------


@FAST
@given(any_facts)
def test_every_step_a_walk_takes_is_an_edge_of_the_graph(f):
    taken = {(step.source, step.rule.name, step.dest) for step in shared_machine().decide(f).steps}
    assert taken <= TAKEABLE


def test_the_graph_leaves_out_transitions_behind_a_rule_that_always_matches():
    # retry_reboot always stops active/rebooting/shutdown before plug_vifs could be tried
    assert ("active/rebooting/shutdown", "plug_vifs", "active/rebooting/shutdown") not in TAKEABLE
    assert ("active/rebooting/shutdown", "retry_reboot", "active/reboot_pending_hard/shutdown") in TAKEABLE
    # entered after interrupted_snapshot, active/none/shutdown goes on to plug_vifs and resume_guest
    assert ("active/none/shutdown", "resume_guest", "active/none/shutdown") in TAKEABLE
    compiled = sum(len(shared_machine().transitions_from(s)) for s in ALL_STATE_NAMES)
    assert len(TAKEABLE) < compiled


TAKEABLE = takeable_edges(shared_machine())
SAFETY = safety(shared_machine(), ACTIONS)
CONVERGENCE = convergence(shared_machine(), ACTIONS)

"""The policy's invariants, proved over every state and every class of facts (docs/verify.md).

Each invariant is a check of one facts value; `recovery.proofs.fact_classes` runs it on
every start triple and every class of facts the check can tell apart, so a
proof here is exhaustive, not sampled. A failing check returns why, and the
symbolic case it failed on is the counterexample.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from math import prod

from recovery.core.effects import after_success
from recovery.core.facts import Facts
from recovery.core.machine import ALL_STATES, Decision, RecoveryMachine
from recovery.proofs.fact_classes import (
    ALL_TRIPLES,
    FactClass,
    SymbolicCase,
    completed,
    explore,
    fact_classes,
    guard_tests,
)
from recovery.proofs.policy_source import PolicyTable
from states.enums import EVACUATION_PENDING_STATUSES, NO_TASK, RunningDeletedInstanceAction, TaskState, VmState
from states.policy import ActionOutcome

CONVERGENCE_BOUND = 3
"""Runs after which deciding again changes nothing: each decision's success leads to a fixed point within it."""

EVIDENCE_TESTS = {
    "evacuation_status": {EVACUATION_PENDING_STATUSES},
    "running_deleted_instance_action": {frozenset({RunningDeletedInstanceAction.REAP.value})},
}
"""What the safety invariant asks of the facts, so that its classes are told apart too."""


def decision_summary(decision: Decision) -> tuple:
    """Everything a decision says, comparable across machines built separately."""
    return (
        tuple((s.rule.name, s.rule.cases.index(s.case), s.source, s.dest) for s in decision.steps),
        decision.actions, decision.vm_state, decision.task_state, decision.reason,
    )


def evacuated_away(facts: Facts) -> bool:
    return facts.evacuation_status in EVACUATION_PENDING_STATUSES


def deleted_record(facts: Facts) -> bool:
    return facts.task_state == TaskState.DELETING.value or facts.vm_state == VmState.DELETED.value or facts.deleted


# -- the invariants ------------------------------------------------------------------------------


def totality(machine: RecoveryMachine, vocabulary: dict[str, ActionOutcome]) -> Callable[[Facts], str | None]:
    """Every facts value yields one well-formed decision: a path of rules in priority order, each at most
    once, stopping only at its end, writing only vm_state/task_state, starting known actions."""
    order = {rule.name: index for index, rule in enumerate(machine.policy)}

    def check(facts: Facts) -> str | None:
        decision = machine.decide_afresh(facts)
        steps = decision.steps
        if not steps:
            return "no rule matched: the walk ended with an empty path"
        if steps[0].source != facts.state:
            return f"the path starts at {steps[0].source}, not at the start state"
        for step, following in itertools.pairwise(steps):
            if step.dest != following.source:
                return f"{following.rule.name} leaves {following.source}, but {step.rule.name} led to {step.dest}"
            if step.rule.stop:
                return f"{step.rule.name} stops, yet the walk went on with {following.rule.name}"
        indices = [order[s.rule.name] for s in steps]
        if indices != sorted(set(indices)):
            return "rules were taken out of priority order or twice: " + ", ".join(s.rule.name for s in steps)
        vm_state, task_state, power_state = steps[-1].dest.split("/")
        if (decision.vm_state, decision.task_state or NO_TASK) != (vm_state, task_state):
            return "the decision's vm_state/task_state differ from where its path ends"
        if power_state != facts.power_state:
            return "the path changes the power state, which only the hypervisor reports"
        unknown = [a.name for a in decision.actions if a.name not in vocabulary]
        if unknown:
            return f"actions outside the vocabulary: {', '.join(unknown)}"
        return None

    return check


def determinism(machine: RecoveryMachine, twin: RecoveryMachine) -> Callable[[Facts], str | None]:
    """The decision is a function of the facts: two machines compiled separately from the table agree."""

    def check(facts: Facts) -> str | None:
        first, second = machine.decide_afresh(facts), twin.decide_afresh(facts)
        if decision_summary(first) != decision_summary(second):
            return f"two compilations disagree: {_path(first)} versus {_path(second)}"
        return None

    return check


def decision_cache(machine: RecoveryMachine) -> Callable[[Facts], str | None]:
    """`decide` caches walks by the answers to the guards' tests; every cached decision is the walk's."""

    def check(facts: Facts) -> str | None:
        walked = machine.decide_afresh(facts)
        cached = machine.decide(completed(facts))
        if decision_summary(cached) != decision_summary(walked):
            return f"the cached decision {_path(cached)} differs from the walk {_path(walked)}"
        return None

    return check


def safety(machine: RecoveryMachine, vocabulary: dict[str, ActionOutcome]) -> Callable[[Facts], str | None]:
    """No domain is destroyed or undefined without evidence: a pending evacuation away (with
    destroy_after_evacuate), a deleted record, or the explicit orphan option (running_deleted_instance_action
    reap); at most one destroying action; an instance of another host, neither deleted nor evacuated away,
    is left alone."""

    def check(facts: Facts) -> str | None:
        decision = machine.decide_afresh(facts)
        destroying = [a.name for a in decision.actions if vocabulary[a.name].destroys_domain]
        if len(destroying) > 1:
            return f"more than one action destroys the domain: {', '.join(destroying)}"
        for name in destroying:
            problem = _destruction_without_evidence(name, facts)
            if problem:
                return f"{name} destroys the domain, but {problem}"
        left_alone = not decision.actions and (decision.vm_state, decision.task_state or NO_TASK) == (
            facts.vm_state, facts.task_state)
        if not left_alone and not facts.owned and not facts.deleted and not evacuated_away(facts):
            return "the database places the instance on another host, yet the decision acts on it"
        return None

    return check


def _destruction_without_evidence(name: str, facts: Facts) -> str | None:
    reap = RunningDeletedInstanceAction.REAP.value
    if name == "destroy_evacuated":
        if not (evacuated_away(facts) and facts.destroy_after_evacuate and facts.domain_present):
            return "no pending evacuation away with destroy_after_evacuate on and a local domain"
    elif name == "reap_domain":
        if not (facts.deleted and facts.running_deleted_instance_action == reap and facts.domain_present):
            return "the record is not deleted with running_deleted_instance_action reap and a local domain"
        if evacuated_away(facts):
            return "the instance was evacuated away (its evacuation must be cleaned up instead)"
    elif name in ("restart_deletion", "destroy_domain"):
        if not (facts.task_state == TaskState.DELETING.value and facts.owned):
            return "no deletion of an instance of this host was in progress"
        if facts.deleted or evacuated_away(facts):
            return "the record is already deleted or evacuated away"
    elif not (evacuated_away(facts) or deleted_record(facts) or facts.running_deleted_instance_action == reap):
        return "there is no evacuation away, no deleted record and no orphan option reap"
    return None


def convergence(machine: RecoveryMachine, vocabulary: dict[str, ActionOutcome]) -> Callable[[Facts], str | None]:
    """Deciding again after every action succeeded reaches a fixed point within CONVERGENCE_BOUND runs, where
    the record is left as it is and only network interfaces are plugged again. Over facts a record can
    produce: without a domain the hypervisor reports nostate."""

    def check(facts: Facts) -> str | None:
        if facts.power_state != "nostate" and not facts.domain_present:
            return None
        trail = [facts]
        for _ in range(CONVERGENCE_BOUND):
            trail.append(after_success(machine.decide_afresh(trail[-1]), vocabulary))
        last = trail[-1]
        final = machine.decide_afresh(last)
        if after_success(final, vocabulary) != last:
            return f"no fixed point after {CONVERGENCE_BOUND} runs: " + " -> ".join(f.state for f in trail)
        if (final.vm_state, final.task_state or NO_TASK) != (last.vm_state, last.task_state):
            return f"at the fixed point {last.state} the decision still writes the record"
        extra = [a.name for a in final.actions if a.name != "plug_vifs"]
        if extra:
            return f"at the fixed point {last.state} the decision still starts {', '.join(extra)}"
        return None

    return check


class TriggerModel:
    """A bare model object for `transitions`; records the case of every transition that fires."""

    def __init__(self):
        self.fired_cases = []

    def record_case(self, event_data) -> None:
        self.fired_cases.append(event_data.transition.conditions[0].func.case)


def attach_model(machine: RecoveryMachine) -> TriggerModel:
    """A model on `machine` told to record each executed transition (adding one costs ~10 ms: reuse it)."""
    model = TriggerModel()
    machine.machine.after_state_change = "record_case"
    machine.machine.add_model(model, initial=ALL_STATES[0])
    return model


def fire_triggers(machine: RecoveryMachine, model: TriggerModel, facts: Facts) -> tuple[str, list[tuple]]:
    """Fire each rule's trigger on the real `transitions` machine, in priority order, honouring stop/continue.

    Returns the state reached and, per transition fired, (rule, case index, source, dest, actions).
    """
    machine.machine.set_state(facts.state, model=model)
    model.fired_cases.clear()
    fired = []
    events = machine.machine.events
    for rule in machine.policy:
        before = model.state
        if before not in events[rule.name].transitions:  # no transition of this rule leaves this state
            continue
        if model.trigger(rule.name, facts=facts):
            case = model.fired_cases.pop()
            fired.append((rule.name, rule.cases.index(case), before, model.state, case.actions))
            if rule.stop:
                break
    return model.state, fired


def trigger_agreement(machine: RecoveryMachine, twin: RecoveryMachine) -> Callable[[Facts], str | None]:
    """What `transitions` itself does when each rule's trigger is fired is what the walk decides."""
    model = attach_model(twin)

    def check(facts: Facts) -> str | None:
        decision = machine.decide_afresh(facts)
        reached, fired = fire_triggers(twin, model, facts)
        walked = [(s.rule.name, s.rule.cases.index(s.case), s.source, s.dest, s.case.actions) for s in decision.steps]
        if fired != walked or reached != decision.steps[-1].dest:
            shown = " -> ".join(f"{name}[{index}]" for name, index, *_ in fired) or "nothing"
            return f"firing the triggers took {shown}, ending at {reached}; the walk took {_path(decision)}"
        return None

    return check


def _path(decision: Decision) -> str:
    return " -> ".join(f"{s.rule.name}[{s.rule.cases.index(s.case)}]" for s in decision.steps) or "nothing"


# -- running them --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterexample:
    case: SymbolicCase
    problem: str
    decision: Decision


@dataclass(frozen=True)
class Proof:
    invariant: str
    summary: str
    symbolic_cases: int
    covered: int
    counterexample: Counterexample | None


@dataclass(frozen=True)
class Verification:
    policy: PolicyTable
    classes: dict[str, tuple[FactClass, ...]]
    triples: tuple[tuple[str, str, str], ...]
    proofs: tuple[Proof, ...]

    @property
    def fact_class_count(self) -> int:
        return prod(len(c) for c in self.classes.values())

    @property
    def state_count(self) -> int:
        return len(self.triples)

    @property
    def cases_per_invariant(self) -> int:
        return self.state_count * self.fact_class_count

    @property
    def holds(self) -> bool:
        return all(p.counterexample is None for p in self.proofs)


def verify(policy: PolicyTable, triples: tuple[tuple[str, str, str], ...] = ALL_TRIPLES) -> Verification:
    """Prove every invariant over every start triple and fact class; the first counterexample of each."""
    machine, twin = RecoveryMachine(policy.rules), RecoveryMachine(policy.rules)
    classes = fact_classes(guard_tests(policy.rules), EVIDENCE_TESTS)
    invariants = (
        ("totality", totality, totality(machine, policy.actions)),
        ("determinism", determinism, determinism(machine, twin)),
        ("decision cache", decision_cache, decision_cache(machine)),
        ("safety", safety, safety(machine, policy.actions)),
        ("convergence", convergence, convergence(machine, policy.actions)),
        ("trigger agreement", trigger_agreement, trigger_agreement(machine, twin)),
    )
    proofs = []
    for name, factory, check in invariants:
        count = covered = 0
        found = None
        for case, problem in explore(check, classes, triples):
            count += 1
            covered += case.covered(classes)
            if problem is not None:
                found = Counterexample(case, problem, machine.decide_afresh(case.facts()))
                break
        proofs.append(Proof(name, " ".join(factory.__doc__.split()), count, covered, found))
    return Verification(policy, classes, tuple(triples), tuple(proofs))

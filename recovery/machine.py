"""Compile the policy table into one `transitions` machine and walk it.

The machine is built once per process: its states are every
`vm_state/task_state/power_state` triple, and every case of every rule becomes
a transition (trigger = rule name) from each triple its conditions on the
triple admit, to the triple its record writes lead to, guarded by its
conditions on the other facts. Deciding walks that graph from the instance's
start state: rules in priority order, first matching case wins, a stopping
rule ends the walk, a continuing one moves to its destination and the walk
goes on with the next rule. The walk reads the machine's own transition table
rather than firing `trigger()` per instance, which would cost milliseconds per
instance at 100,000 instances.
"""

import itertools
from dataclasses import dataclass
from functools import cache, lru_cache

from transitions import Machine

from recovery.facts import POWER_STATES, TASK_STATES, VM_STATES, Facts, record_task_state, state_name
from states.enums import NO_TASK
from states.policy import POLICY, TRIPLE_FIELDS, Action, Case, Condition, Rule

ALL_STATES: tuple[str, ...] = tuple(
    state_name(vm, task, power) for vm, task, power in itertools.product(VM_STATES, TASK_STATES, POWER_STATES)
)
_FACT_INDEX = {name: index for index, name in enumerate(Facts._fields)}


def condition_holds(condition: Condition, value: object) -> bool:
    return (value in condition.values) != condition.negated


@cache
def _shown_values(condition: Condition) -> str:
    return ", ".join(sorted(show_value(v) for v in condition.values))


def describe_failure(condition: Condition, value: object) -> str:
    """Why a condition does not hold, for explanations."""
    shown = _shown_values(condition)
    if condition.negated:
        return f"{condition.field} is {show_value(value)}, which is excluded ({shown})"
    return f"{condition.field} is {show_value(value)}, not {shown}"


def show_value(value: object) -> str:
    """A fact value as explanations and docs/policy.md spell it: null, true, false, or the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class CaseGuard:
    """The transition condition of one case: its conditions on the non-triple facts."""

    def __init__(self, rule_index: int, rule: Rule, case: Case):
        self.rule_index = rule_index
        self.rule = rule
        self.case = case
        self._checks = tuple(
            (_FACT_INDEX[c.field], c.values, c.negated) for c in case.when if c.field not in TRIPLE_FIELDS
        )

    @property
    def always(self) -> bool:
        """True when the case reads no fact beyond the triple, so it matches whenever it is tried."""
        return not self._checks

    def holds(self, facts: Facts) -> bool:
        return all((facts[index] in values) != negated for index, values, negated in self._checks)

    def __call__(self, event_data) -> bool:
        """Lets `transitions` itself evaluate the guard when a trigger is fired."""
        return self.holds(event_data.kwargs["facts"])


@dataclass(frozen=True)
class Step:
    rule: Rule
    case: Case
    source: str
    dest: str


@dataclass(frozen=True)
class Consideration:
    """One rule the walk looked at: whether it matched, and the guard values that decided it."""

    rule: str
    state: str
    matched: bool
    why: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    facts: Facts
    steps: tuple[Step, ...]
    actions: tuple[Action, ...]
    vm_state: str
    task_state: str | None
    reason: str

    @property
    def start_state(self) -> str:
        return self.facts.state


def _writes_applied(state: tuple[str, str, str], case: Case) -> tuple[str, str, str]:
    vm_state, task_state, power_state = state
    for field, value in case.writes:
        if field == "vm_state":
            vm_state = value
        elif field == "task_state":
            task_state = value if value is not None else NO_TASK
        else:
            raise ValueError(f"a rule may write only vm_state and task_state, not {field}")
    return vm_state, task_state, power_state


def _admitted_triples(case: Case) -> itertools.product:
    """Every triple the case's conditions on vm_state, task_state and power_state admit."""
    return itertools.product(*(
        [v for v in domain if all(condition_holds(c, v) for c in case.when if c.field == field)]
        for field, domain in zip(TRIPLE_FIELDS, (VM_STATES, TASK_STATES, POWER_STATES), strict=True)
    ))


def _sources_by_dest(case: Case) -> dict[str, list[str]]:
    """The case's transitions, grouped by destination: one add_transition call per group is
    several times faster to build than one per source (the machine is built at every start)."""
    by_dest: dict[str, list[str]] = {}
    for triple in _admitted_triples(case):
        by_dest.setdefault(state_name(*_writes_applied(triple, case)), []).append(state_name(*triple))
    return by_dest


class RecoveryMachine:
    """The compiled policy. Build one per process and share it."""

    def __init__(self, policy: tuple[Rule, ...] = POLICY):
        self.policy = policy
        self.machine = Machine(model=None, states=list(ALL_STATES), auto_transitions=False, initial=None,
                               send_event=True)
        for rule_index, rule in enumerate(policy):
            for case in rule.cases:
                guard = CaseGuard(rule_index, rule, case)
                for dest, sources in _sources_by_dest(case).items():
                    self.machine.add_transition(rule.name, sources, dest, conditions=[guard])
        self._outgoing = self._index_outgoing()
        self._fact_tests = tuple(sorted({
            (_FACT_INDEX[c.field], c.values)
            for rule in policy for case in rule.cases for c in case.when if c.field not in TRIPLE_FIELDS
        }, key=repr))
        self._walks: dict[tuple, tuple[Step, ...]] = {}
        self._considerations: dict[Facts, tuple[Consideration, ...]] = {}

    def abstract_key(self, facts: Facts) -> tuple:
        """The start state and the truth of every fact test a guard can make.

        Guards read facts only through these tests, so facts with equal keys
        walk the same path; the key space is small enough to cache walks by it.
        """
        return (facts[0], facts[1], facts[2], *[facts[index] in values for index, values in self._fact_tests])

    def _index_outgoing(self) -> dict[str, tuple[tuple[int, CaseGuard, str], ...]]:
        """Per state, its transitions in priority order, read back from the machine."""
        outgoing: dict[str, list[tuple[int, CaseGuard, str]]] = {state: [] for state in ALL_STATES}
        for event in self.machine.events.values():
            for source, transitions in event.transitions.items():
                for transition in transitions:
                    guard = transition.conditions[0].func
                    outgoing[source].append((guard.rule_index, guard, transition.dest))
        return {state: tuple(sorted(entries, key=lambda e: e[0])) for state, entries in outgoing.items()}

    def transitions_from(self, state: str) -> tuple[tuple[int, CaseGuard, str], ...]:
        return self._outgoing[state]

    def walk(self, facts: Facts) -> tuple[Step, ...]:
        state, next_rule, steps = facts.state, 0, []
        while True:
            for rule_index, guard, dest in self._outgoing[state]:
                if rule_index >= next_rule and guard.holds(facts):
                    steps.append(Step(guard.rule, guard.case, state, dest))
                    if guard.rule.stop:
                        return tuple(steps)
                    state, next_rule = dest, rule_index + 1
                    break
            else:
                return tuple(steps)

    def decide(self, facts: Facts) -> Decision:
        key = self.abstract_key(facts)
        steps = self._walks.get(key)
        if steps is None:
            steps = self._walks[key] = self.walk(facts)
        return _decision(facts, steps)

    def decide_afresh(self, facts: Facts) -> Decision:
        """Decide by walking, without the cache: for facts partly unknown (recovery.fact_classes)."""
        return _decision(facts, self.walk(facts))

    def consider(self, facts: Facts) -> tuple[Consideration, ...]:
        """Every rule in order with why it matched or not, up to where the walk ended."""
        found = self._considerations.get(facts)
        if found is None:
            found = self._considerations[facts] = self._consider(facts)
        return found

    def _consider(self, facts: Facts) -> tuple[Consideration, ...]:
        steps = {step.rule.name: step for step in self.walk(facts)}
        state = facts.state
        result = []
        for rule in self.policy:
            values = dict(zip(TRIPLE_FIELDS, state.split("/"), strict=True))
            view = {**facts._asdict(), **values}
            step = steps.get(rule.name)
            if step is not None:
                why = tuple(f"{c.field} is {show_value(view[c.field])}" for c in step.case.when) or ("always",)
                result.append(Consideration(rule.name, state, True, why))
                if rule.stop:
                    break
                state = step.dest
                continue
            why = tuple(dict.fromkeys(
                next(describe_failure(c, view[c.field]) for c in case.when if not condition_holds(c, view[c.field]))
                for case in rule.cases
            ))
            result.append(Consideration(rule.name, state, False, why))
        return tuple(result)


def _decision(facts: Facts, steps: tuple[Step, ...]) -> Decision:
    """Steps are never empty: every walk that gets as far as plug_vifs matches it."""
    vm_state, task_state, _ = steps[-1].dest.split("/")
    actions = tuple(action for step in steps for action in step.case.actions)
    reason = _sentence([step.case.reason for step in steps])
    return Decision(
        facts=facts,
        steps=steps,
        actions=actions,
        vm_state=vm_state,
        task_state=record_task_state(task_state),
        reason=reason,
    )


def _sentence(parts: list[str]) -> str:
    text = "; then ".join(parts)
    return text[0].upper() + text[1:] + "."


@lru_cache(maxsize=1)
def shared_machine() -> RecoveryMachine:
    return RecoveryMachine()

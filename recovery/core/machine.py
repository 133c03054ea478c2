"""Compile the policy table into one `transitions` machine and walk it.

The machine is built once per process: its states are every
`vm_state/task_state/power_state` triple, and every case of every rule becomes
a transition (trigger = rule name) from each triple its conditions on the
triple admit, to the triple its record writes lead to, guarded by its
conditions on the other facts. Deciding walks that graph from the instance's
start state: rules in priority order, first matching case wins, a stopping
rule ends the walk, a continuing one moves to its destination and the walk
goes on with the next rule.

The walk reads an index of the same transitions, built straight from the cases,
rather than firing `trigger()` per instance (milliseconds each at 100,000
instances); compiling the `transitions` machine itself takes most of a second,
so it is built only when asked for (`graph`, `verify`), and `verify` proves the
index and the machine's own triggers agree.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from operator import itemgetter

from transitions import Machine

from recovery.core.facts import POWER_STATES, TASK_STATES, VM_STATES, Facts, record_task_state, state_name
from states.enums import NO_TASK
from states.policy import ACTIONS, POLICY, TRIPLE_FIELDS, Action, Case, Condition, Rule

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
        self.tests = frozenset((index, values) for index, values, _negated in self._checks)
        """The (fact index, values) membership tests the guard reads facts through."""
        self.admitted = tuple(
            frozenset(v for v in domain if all(condition_holds(c, v) for c in case.when if c.field == field))
            for field, domain in zip(TRIPLE_FIELDS, (VM_STATES, TASK_STATES, POWER_STATES), strict=True)
        )
        """The vm_state, task_state and power_state values the case's conditions on them admit."""

    def admits(self, vm_state: str, task_state: str, power_state: str) -> bool:
        vm_ok, task_ok, power_ok = self.admitted
        return vm_state in vm_ok and task_state in task_ok and power_state in power_ok

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

    @property
    def hands_off(self) -> bool:
        """Whether it leaves work to nova-compute's start (a case of the policy's division of labour)."""
        return any(step.case.hands_off for step in self.steps)

    @property
    def records_power(self) -> bool:
        """Whether the guest is deliberately left as it is, its observed power state to be recorded."""
        return any(step.case.records_power for step in self.steps)

    def steps_with_actions(self) -> Iterator[tuple[Step, tuple[Action, ...]]]:
        """Each step with those of its case's actions that the decision does (`actions` is their order): one
        done once per instance that an earlier step did already is left out."""
        position = 0
        for step in self.steps:
            done = []
            for action in step.case.actions:
                if position < len(self.actions) and self.actions[position] == action:
                    done.append(action)
                    position += 1
            yield step, tuple(done)


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


def _sources_by_dest(guard: CaseGuard) -> dict[str, list[str]]:
    """The case's transitions, grouped by destination: one add_transition call per group is
    several times faster to build than one per source. Sources in the order of ALL_STATES."""
    by_dest: dict[str, list[str]] = {}
    for triple in itertools.product(*(sorted(values, key=domain.index) for values, domain in
                                      zip(guard.admitted, (VM_STATES, TASK_STATES, POWER_STATES), strict=True))):
        by_dest.setdefault(state_name(*_writes_applied(triple, guard.case)), []).append(state_name(*triple))
    return by_dest


class RecoveryMachine:
    """The compiled policy. Build one per process and share it."""

    def __init__(self, policy: tuple[Rule, ...] = POLICY):
        self.policy = policy
        self._guards = tuple(
            CaseGuard(rule_index, rule, case) for rule_index, rule in enumerate(policy) for case in rule.cases
        )
        self._outgoing: dict[str, tuple[tuple[int, CaseGuard, str], ...]] = {}
        self._tests_from: dict[tuple[str, str, str], tuple[Callable[[Facts], tuple], tuple[frozenset, ...]]] = {}
        self._walks: dict[tuple, tuple[tuple[Step, ...], tuple[Action, ...]]] = {}
        self._considerations: dict[Facts, tuple[Consideration, ...]] = {}

    @cached_property
    def machine(self) -> Machine:
        """The policy as a `transitions` machine: one trigger per rule, one transition per case
        and source, guarded by the case's conditions on the other facts."""
        machine = Machine(model=None, states=list(ALL_STATES), auto_transitions=False, initial=None,
                          send_event=True)
        for guard in self._guards:
            for dest, sources in _sources_by_dest(guard).items():
                machine.add_transition(guard.rule.name, sources, dest, conditions=[guard])
        return machine

    def abstract_key(self, facts: Facts) -> tuple:
        """The start state and the truth of every fact test a guard on the walk's way can make.

        Guards read facts only through these tests, so facts with equal keys
        walk the same path; the key space is small enough to cache walks by it.
        """
        triple = facts[0], facts[1], facts[2]
        tests = self._tests_from.get(triple)
        if tests is None:
            tests = self._tests_from[triple] = _key_tests(self._fact_tests_from(state_name(*triple)))
        read, sets = tests
        return (*triple, *map(frozenset.__contains__, sets, read(facts)))

    def _fact_tests_from(self, start: str) -> tuple[tuple[int, frozenset], ...]:
        """The fact tests of every guard on a transition reachable from `start`: the only facts
        its walks can read, so the only ones its cache key needs."""
        seen, todo, tests = {start}, [start], set()
        while todo:
            for _index, guard, dest in self.transitions_from(todo.pop()):
                tests |= guard.tests
                if dest not in seen:
                    seen.add(dest)
                    todo.append(dest)
        return tuple(sorted(tests, key=repr))

    def transitions_from(self, state: str) -> tuple[tuple[int, CaseGuard, str], ...]:
        """The state's transitions in priority order, as (rule index, guard, destination); indexed
        when first asked for, since a run meets only a few of the states."""
        found = self._outgoing.get(state)
        if found is None:
            triple = tuple(state.split("/"))
            found = self._outgoing[state] = tuple(
                (guard.rule_index, guard, state_name(*_writes_applied(triple, guard.case)))
                for guard in self._guards if guard.admits(*triple)
            )
        return found

    def walk(self, facts: Facts) -> tuple[Step, ...]:
        state, next_rule, steps = facts.state, 0, []
        while True:
            for rule_index, guard, dest in self.transitions_from(state):
                if rule_index >= next_rule and guard.holds(facts):
                    steps.append(Step(guard.rule, guard.case, state, dest))
                    if guard.rule.stop:
                        return tuple(steps)
                    state, next_rule = dest, rule_index + 1
                    break
            else:
                return tuple(steps)

    def decide(self, facts: Facts, key: tuple | None = None) -> Decision:
        """`key`: the facts' abstract_key, when the caller has it already."""
        if key is None:
            key = self.abstract_key(facts)
        walked = self._walks.get(key)
        if walked is None:
            steps = self.walk(facts)
            walked = self._walks[key] = steps, _step_actions(steps)
        return _decision(facts, *walked)

    def decide_afresh(self, facts: Facts) -> Decision:
        """Decide by walking, without the cache: for facts partly unknown (recovery.proofs.fact_classes)."""
        steps = self.walk(facts)
        return _decision(facts, steps, _step_actions(steps))

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


def _key_tests(tests: tuple[tuple[int, frozenset], ...]) -> tuple[Callable[[Facts], tuple], tuple[frozenset, ...]]:
    """The tests as one read of the facts they look at and the sets those must be in, so that a key is
    made without a Python-level loop (`decide` makes one per record)."""
    indexes = tuple(index for index, _values in tests)
    read = itemgetter(*indexes) if len(indexes) > 1 else (lambda facts: tuple(facts[i] for i in indexes))
    return read, tuple(values for _index, values in tests)


def _step_actions(steps: tuple[Step, ...]) -> tuple[Action, ...]:
    """The actions of the steps in order; one done once per instance (ActionOutcome.once_per_instance) only
    where a step first asks for it."""
    actions, once = [], set()
    for action in (action for step in steps for action in step.case.actions):
        if ACTIONS[action.name].once_per_instance:
            if action in once:
                continue
            once.add(action)
        actions.append(action)
    return tuple(actions)


def _decision(facts: Facts, steps: tuple[Step, ...], actions: tuple[Action, ...]) -> Decision:
    """Steps are never empty: every walk that gets as far as plug_vifs matches it."""
    vm_state, task_state, _ = steps[-1].dest.split("/")
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

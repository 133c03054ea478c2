"""Every class of facts the guards can tell apart, and an explorer that visits each one.

A guard reads a fact only by asking whether it is one of a few values. Values
that answer every such question alike are one class: deciding cannot tell them
apart, so checking one representative checks them all. The explorer runs a
check with every non-triple fact left unknown; when the check reads an
unknown fact it is run again once per class of that fact. Each run that
finishes is a symbolic case: a start triple and the classes of the facts the
check read, standing for every value of the facts it did not read. Over all
3,096 triples this covers the whole space of facts without sampling it.
"""

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from math import prod
from typing import Any, TypeVar

from recovery.core.errors import RecoveryError
from recovery.core.facts import DEVICE_READINESS, POWER_STATES, TASK_STATES, VM_STATES, Facts
from recovery.core.machine import show_value
from states.enums import EVACUATION_PENDING_STATUSES, ResumePolicy, RunningDeletedInstanceAction
from states.policy import TRIPLE_FIELDS, Rule

OTHER = "<any other value>"
"""The representative of an open domain's values that no test names."""

_BOOLEAN = (False, True)
FIELD_DOMAINS: dict[str, tuple[tuple, bool]] = {
    "owned": (_BOOLEAN, False),
    "db_power_state": (POWER_STATES, False),
    "old_vm_state": ((None, *VM_STATES), False),
    "domain_present": (_BOOLEAN, False),
    "evacuation_status": ((None, *sorted(EVACUATION_PENDING_STATUSES), "completed", "error"), True),
    "shared_storage": (_BOOLEAN, False),
    "deleted": (_BOOLEAN, False),
    "resume_guests_state_on_host_boot": (_BOOLEAN, False),
    "destroy_after_evacuate": (_BOOLEAN, False),
    "running_deleted_instance_action": (tuple(a.value for a in RunningDeletedInstanceAction), False),
    "resume_policy": (tuple(p.value for p in ResumePolicy), False),
    "down_too_long": (_BOOLEAN, False),
    "devices": (DEVICE_READINESS, False),
    "nova_cell": (_BOOLEAN, False),
}
"""The values each non-triple fact can take (and whether strings beyond them can occur)."""

FACT_FIELDS = tuple(f for f in Facts._fields if f not in TRIPLE_FIELDS)
ALL_TRIPLES: tuple[tuple[str, str, str], ...] = tuple(itertools.product(VM_STATES, TASK_STATES, POWER_STATES))


@dataclass(frozen=True)
class FactClass:
    """Values of one fact that every test answers alike."""

    field: str
    members: tuple
    open_ended: bool
    """Also every value that no test names (the field's domain is open)."""

    @property
    def representative(self) -> object:
        return self.members[0]

    def label(self) -> str:
        shown = [show_value(v) for v in self.members if v != OTHER]
        if len(shown) == 1 and not self.open_ended:
            return f"{self.field}={shown[0]}"
        return f"{self.field} in {{{', '.join(shown)}{', ...' if self.open_ended else ''}}}"


def guard_tests(policy: Iterable[Rule]) -> dict[str, set[frozenset]]:
    """The value sets each non-triple fact is tested against by some case of the policy."""
    tests: dict[str, set[frozenset]] = {field: set() for field in FACT_FIELDS}
    for rule in policy:
        for case in rule.cases:
            for condition in case.when:
                if condition.field not in TRIPLE_FIELDS:
                    tests[condition.field].add(condition.values)
    return tests


def fact_classes(*tests: dict[str, set[frozenset]]) -> dict[str, tuple[FactClass, ...]]:
    """Per fact, the partition of its values by the answers to all the given tests."""
    classes = {}
    for field in FACT_FIELDS:
        known, open_ended = FIELD_DOMAINS[field]
        sets = sorted(set().union(*(t.get(field, set()) for t in tests)), key=lambda s: sorted(map(repr, s)))
        named = {v for s in sets for v in s} - set(known)
        values = [*known, *sorted(named, key=repr), *((OTHER,) if open_ended else ())]
        groups: dict[tuple[bool, ...], list] = {}
        for value in values:
            groups.setdefault(tuple(value in s for s in sets), []).append(value)
        classes[field] = tuple(
            FactClass(field, tuple(members), open_ended and OTHER in members) for members in groups.values()
        )
    return classes


class Unassigned(RecoveryError):
    """A check read a fact the explorer has not fixed yet."""

    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


class Unknown:
    """A fact not fixed yet: any question about its value stops the check so that it is branched on.

    Tuples compare members by identity first, so facts holding the same unknown still compare equal.
    """

    __slots__ = ("field",)

    def __init__(self, field: str):
        self.field = field

    def __hash__(self) -> int:
        raise Unassigned(self.field)

    def __eq__(self, other: object) -> bool:
        raise Unassigned(self.field)

    def __bool__(self) -> bool:
        raise Unassigned(self.field)

    def __repr__(self) -> str:
        return f"<{self.field}: any>"


_UNKNOWN = {field: Unknown(field) for field in FACT_FIELDS}


def completed(facts: Facts) -> Facts:
    """The facts with every unknown one given its field's first value."""
    return facts._replace(**{f: FIELD_DOMAINS[f][0][0] for f in FACT_FIELDS if type(getattr(facts, f)) is Unknown})
R = TypeVar("R")


@dataclass(frozen=True)
class SymbolicCase:
    """A start triple with the classes of the facts a check read; it stands for every value of the rest."""

    triple: tuple[str, str, str]
    fixed: tuple[FactClass, ...]

    @property
    def state(self) -> str:
        return "/".join(self.triple)

    def facts(self) -> Facts:
        """Concrete facts of this case: each read fact its class's representative, the rest their first class's."""
        chosen = {c.field: c.representative for c in self.fixed}
        return completed(Facts(*self.triple, *(chosen.get(f, _UNKNOWN[f]) for f in FACT_FIELDS)))

    def covered(self, classes: dict[str, tuple[FactClass, ...]]) -> int:
        """How many (triple, full fact class) combinations this case stands for."""
        return prod(len(classes[f]) for f in FACT_FIELDS) // prod(len(classes[c.field]) for c in self.fixed)

    def describe(self) -> str:
        return " ".join([self.state, *(c.label() for c in self.fixed)]) if self.fixed else f"{self.state} (any facts)"


def explore(check: Callable[[Facts], R], classes: dict[str, tuple[FactClass, ...]],
            triples: Iterable[tuple[str, str, str]] = ALL_TRIPLES,
            fixed: dict[str, Any] | None = None) -> Iterator[tuple[SymbolicCase, R]]:
    """Run `check` on every symbolic case: each triple, branching on each fact it reads.

    `fixed` gives facts a value up front (they are then never branched on).
    """
    by_value = {f: {v: c for c in classes[f] for v in c.members} for f in FACT_FIELDS}
    given = tuple(by_value[f].get(v) or FactClass(f, (v,), False) for f, v in (fixed or {}).items())
    base = [(fixed or {}).get(f, _UNKNOWN[f]) for f in FACT_FIELDS]
    position = {f: 3 + i for i, f in enumerate(FACT_FIELDS)}
    for triple in triples:
        pending: list[dict[str, FactClass]] = [{}]
        while pending:
            chosen = pending.pop()
            values = [*triple, *base]
            for f, c in chosen.items():
                values[position[f]] = c.representative
            try:
                result = check(Facts._make(values))
            except Unassigned as unknown:
                pending.extend({**chosen, unknown.field: c} for c in reversed(classes[unknown.field]))
                continue
            yield SymbolicCase(triple, given + tuple(chosen[f] for f in FACT_FIELDS if f in chosen)), result

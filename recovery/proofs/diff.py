"""What changing a decision option or the policy table would change (docs/diff.md).

Two sides, each a policy table with its decision options, are compared over
every start triple and every class of facts either table can tell apart
(`recovery.proofs.fact_classes`): a case is listed when the two decisions start
different actions or leave the record in a different state.
"""

from dataclasses import dataclass, fields
from math import prod

from recovery.core.errors import RecoveryError
from recovery.core.facts import POWER_STATES, Facts, Options, facts_from_record
from recovery.core.machine import Decision, RecoveryMachine
from recovery.core.metadata import PolicyValueError, parse_resume
from recovery.proofs.fact_classes import (
    ALL_TRIPLES,
    FACT_FIELDS,
    FactClass,
    SymbolicCase,
    explore,
    fact_classes,
    guard_tests,
)
from recovery.proofs.policy_source import PolicyTable
from states.enums import RunningDeletedInstanceAction

OPTION_FIELDS = tuple(f.name for f in fields(Options) if f.name in Facts._fields)
"""The options that are facts themselves (--max-downtime is not: it decides the fact down_too_long)."""
OPTION_ALIASES = {"resume": "resume_guests_state_on_host_boot"}
"""Short names accepted for the options in `--a`/`--b` settings."""

_BOOLEAN_WORDS = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False,
                  "0": False}


class DiffSettingError(RecoveryError, ValueError):
    """A `--a`/`--b` setting that names no decision option or gives it a bad value."""


def parse_setting(text: str) -> tuple[str, object]:
    """`name=value` (e.g. resume=off, running_deleted_instance_action=reap) as (Options field, value)."""
    name, sep, value = text.partition("=")
    field = OPTION_ALIASES.get(name.strip().replace("-", "_"), name.strip().replace("-", "_"))
    if not sep or field not in OPTION_FIELDS:
        raise DiffSettingError(f"{text!r} is not a decision option setting: use NAME=VALUE with NAME one of "
                               f"{', '.join([*OPTION_ALIASES, *OPTION_FIELDS])}")
    value = value.strip().lower()
    if field == "running_deleted_instance_action":
        choices = [a.value for a in RunningDeletedInstanceAction]
        if value not in choices:
            raise DiffSettingError(f"{text!r}: {field} is one of {', '.join(choices)}")
        return field, value
    if field == "resume_policy":
        try:
            return field, parse_resume(value, field)[0]
        except PolicyValueError as error:
            raise DiffSettingError(str(error)) from None
    if value not in _BOOLEAN_WORDS:
        raise DiffSettingError(f"{text!r}: {field} is on or off")
    return field, _BOOLEAN_WORDS[value]


@dataclass(frozen=True)
class Side:
    policy: PolicyTable
    options: Options

    def describe(self) -> str:
        changed = [f"{f}={_shown(getattr(self.options, f))}" for f in OPTION_FIELDS
                   if getattr(self.options, f) != getattr(Options(), f)]
        return f"{self.policy.source}" + (f" with {', '.join(changed)}" if changed else " with default options")


def side(policy: PolicyTable, settings: tuple[str, ...]) -> Side:
    return Side(policy, Options(**dict(parse_setting(s) for s in settings)))


def _shown(value: object) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def outcome(decision: Decision) -> tuple:
    """What a decision does: the actions it starts and the record it leaves (comparable across policy copies,
    whose Action class is their own)."""
    return tuple((a.name, a.params) for a in decision.actions), decision.vm_state, decision.task_state


def _with_options(facts: Facts, options: Options) -> Facts:
    return facts._replace(**{f: getattr(options, f) for f in OPTION_FIELDS})


@dataclass(frozen=True)
class Difference:
    case: SymbolicCase
    a: Decision
    b: Decision


@dataclass(frozen=True)
class PolicyDiff:
    a: Side
    b: Side
    classes: dict[str, tuple[FactClass, ...]]
    differences: tuple[Difference, ...]
    symbolic_cases: int

    @property
    def fact_fields(self) -> tuple[str, ...]:
        """The facts that are not options (the options are fixed per side)."""
        return tuple(f for f in FACT_FIELDS if f not in OPTION_FIELDS)

    def covered(self, case: SymbolicCase) -> int:
        read = {c.field for c in case.fixed}
        return prod(len(self.classes[f]) for f in self.fact_fields if f not in read)

    @property
    def total_cases(self) -> int:
        return len(ALL_TRIPLES) * prod(len(self.classes[f]) for f in self.fact_fields)


def compare(a: Side, b: Side) -> PolicyDiff:
    """Every symbolic case (triple and classes of the facts either side read) where the outcomes differ."""
    machines = RecoveryMachine(a.policy.rules), RecoveryMachine(b.policy.rules)
    classes = fact_classes(guard_tests(a.policy.rules), guard_tests(b.policy.rules))

    def check(facts: Facts) -> tuple[Decision, Decision] | None:
        first = machines[0].decide_afresh(_with_options(facts, a.options))
        second = machines[1].decide_afresh(_with_options(facts, b.options))
        return None if outcome(first) == outcome(second) else (first, second)

    found, count = [], 0
    for case, pair in explore(check, classes):
        count += 1
        if pair is not None:
            found.append(Difference(case, *pair))
    return PolicyDiff(a, b, classes, tuple(found), count)


@dataclass(frozen=True)
class AffectedInstance:
    uuid: str
    name: str | None
    state: str
    power_states: tuple[str, ...]
    """The domain power states (nostate: no domain) under which its decision differs."""


def affected_instances(diff: PolicyDiff, records: list[tuple[str | None, dict]], host: str) -> list[AffectedInstance]:
    """The instances (name, decide record without a power state) whose decision differs for some domain state.

    The database does not know the hypervisor's power state, so each is decided for every one.
    """
    machines = RecoveryMachine(diff.a.policy.rules), RecoveryMachine(diff.b.policy.rules)
    affected = []
    for name, record in records:
        differing = []
        for power in POWER_STATES:
            shaped = {**record, "power_state": power, "domain_present": power != "nostate"}
            first = machines[0].decide(facts_from_record(shaped, host, diff.a.options))
            second = machines[1].decide(facts_from_record(shaped, host, diff.b.options))
            if outcome(first) != outcome(second):
                differing.append(power)
        if differing:
            state = f"{record['vm_state']}/{record['task_state'] or 'none'}"
            affected.append(AffectedInstance(record["uuid"], name, state, tuple(differing)))
    return affected

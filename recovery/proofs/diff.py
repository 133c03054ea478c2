"""What changing a decision option or the policy table would change (docs/diff.md).

Two sides, each a policy table with its decision options, are compared over
every start triple and every class of facts either table can tell apart
(`recovery.proofs.fact_classes`): a case is listed when the two decisions start
different actions or leave the record in a different state.
"""

from dataclasses import dataclass, fields
from math import prod

from recovery.core.errors import RecoveryError
from recovery.core.facts import DEVICE_READINESS, POWER_STATES, Facts, Options, facts_from_record
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
from states.enums import DeviceReadiness, RunningDeletedInstanceAction

OPTION_FIELDS = tuple(f.name for f in fields(Options) if f.name in Facts._fields)
"""The options that are facts themselves (--max-downtime is not: it decides the fact down_too_long)."""
DEVICES = "devices"
SIDE_FIELDS = (*OPTION_FIELDS, DEVICES)
"""The facts each side fixes: its options, and the device readiness every guest is decided with (ready unless
a setting says otherwise: `--b devices=missing` shows which states a missing resource changes)."""
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
    if not sep or field not in SIDE_FIELDS:
        raise DiffSettingError(f"{text!r} is not a decision option setting: use NAME=VALUE with NAME one of "
                               f"{', '.join([*OPTION_ALIASES, *SIDE_FIELDS])}")
    value = value.strip().lower()
    if field == DEVICES:
        if value not in DEVICE_READINESS:
            raise DiffSettingError(f"{text!r}: {field} is one of {', '.join(DEVICE_READINESS)}")
        return field, value
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
    devices: str = DeviceReadiness.READY.value

    def describe(self) -> str:
        changed = [f"{f}={_shown(getattr(self.options, f))}" for f in OPTION_FIELDS
                   if getattr(self.options, f) != getattr(Options(), f)]
        if self.devices != DeviceReadiness.READY.value:
            changed.append(f"{DEVICES}={self.devices}")
        return f"{self.policy.source}" + (f" with {', '.join(changed)}" if changed else " with default options")

    def with_devices(self, facts: Facts) -> Facts:
        """A record's facts with this side's device readiness; its own metadata still decides its resume policy."""
        return facts._replace(devices=self.devices)

    def fixed(self, facts: Facts) -> Facts:
        """The facts with this side's options and device readiness."""
        return facts._replace(devices=self.devices, **{f: getattr(self.options, f) for f in OPTION_FIELDS})


def side(policy: PolicyTable, settings: tuple[str, ...]) -> Side:
    parsed = dict(parse_setting(s) for s in settings)
    devices = parsed.pop(DEVICES, DeviceReadiness.READY.value)
    return Side(policy, Options(**parsed), devices)


def _shown(value: object) -> str:
    return {True: "on", False: "off"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def outcome(decision: Decision) -> tuple:
    """What a decision does: the actions it starts and the record it leaves (comparable across policy copies,
    whose Action class is their own)."""
    return tuple((a.name, a.params) for a in decision.actions), decision.vm_state, decision.task_state


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
        """The facts that are not fixed per side (options and device readiness are)."""
        return tuple(f for f in FACT_FIELDS if f not in SIDE_FIELDS)

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
        first = machines[0].decide_afresh(a.fixed(facts))
        second = machines[1].decide_afresh(b.fixed(facts))
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
            first, second = (machine.decide(side.with_devices(facts_from_record(shaped, host, side.options)))
                             for machine, side in zip(machines, (diff.a, diff.b), strict=True))
            if outcome(first) != outcome(second):
                differing.append(power)
        if differing:
            state = f"{record['vm_state']}/{record['task_state'] or 'none'}"
            affected.append(AffectedInstance(record["uuid"], name, state, tuple(differing)))
    return affected

"""Plan, then apply: `plan --out FILE` writes what a run would do and from which facts; `run --plan
FILE` does exactly that and holds back, instance by instance, every instance whose facts changed.

The file (docs/plan.md) holds the host, node, libvirt URI and decision options it was made with,
and per instance the decide input record its decision was made from, its row's updated_at, its
domain's state, the decision, and the order the run starts it in. A checksum over all of it
catches a file edited or damaged since it was written. A plan is applied only on the host, node
and hypervisor it was made for, and with its own decision options.

Applying compares in memory (the run reads the host as every run does, not one statement more):
an instance is executed only when its facts, its row's updated_at and its decision are the plan's.
Its claim then compares the planned vm_state, task_state and updated_at, so a change between the
read and the claim is caught too.
"""

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from recovery.core.bounds import (
    MAX_DOCUMENT_BYTES,
    InputError,
    bounded_string,
    canonical_uuid,
    parse_json,
    read_limited,
    shown,
)
from recovery.core.documents import decision_json, to_json
from recovery.core.errors import RecoveryError
from recovery.core.facts import Facts, FactsError, Options, facts_from_record, record_task_state, record_uuid
from recovery.core.machine import show_value
from recovery.core.metadata import MAX_DURATION_SECONDS, PolicyValueError, parse_resume
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.files import PrivateReplacement
from recovery.run.boot import DecisionScreen, RunResult
from recovery.run.execute import Assignment, InstanceResult
from states.enums import DeviceReadiness, RunningDeletedInstanceAction

FORMAT = "compute-recover plan"
VERSION = 1
"""Raised whenever a reader of version 1 could misread a file; a plan is short-lived, so only this version is read."""
DECISION_FIELDS = ("path", "actions", "vm_state", "task_state")
"""What of a decision must be as planned for it to be executed (its reason is prose around them)."""
MAX_URI_LENGTH = 4096
MAKE_ANOTHER = "make a new plan with `compute-recover plan --out FILE`"

log = logging.getLogger(__name__)


class PlanFileError(RecoveryError, ValueError):
    """A plan file that cannot be written or applied; the message is one line naming the file and the fix."""


# --- the document ------------------------------------------------------------------------------


def checksum(body: dict) -> str:
    """sha256 of the document without its checksum, in one canonical spelling (sorted keys, no spaces,
    ASCII only: a hostile file's lone surrogate is escaped, not an encoding error)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ")


def plan_document(settings: RunSettings, libvirt_uri: str, assignments: list[Assignment], made_at: datetime) -> dict:
    """The plan file's content: `plans` in the order the run starts them."""
    body = {
        "format": FORMAT,
        "version": VERSION,
        "made_at": made_at.isoformat(timespec="seconds"),
        "host": settings.host,
        "node": settings.node,
        "libvirt_uri": libvirt_uri,
        "options": asdict(settings.options),
        "instances": [_planned_json(order, assignment) for order, assignment in enumerate(assignments, 1)],
    }
    return {**body, "sha256": checksum(body)}


def _planned_json(order: int, assignment: Assignment) -> dict:
    facts = assignment.decision.facts
    return {
        "uuid": assignment.uuid,
        "order": order,
        "record": assignment.record,
        "updated_at": _stamp(assignment.updated_at),
        "domain_state": facts.power_state if facts.domain_present else None,
        "decision": decision_json(assignment.decision),
    }


@dataclass(frozen=True)
class PlannedInstance:
    """What one instance's planned decision was made from, and the decision."""

    facts: Facts
    updated_at: str | None
    decision: dict
    """The DECISION_FIELDS of the decision."""


@dataclass(frozen=True)
class LoadedPlan:
    name: str
    sha256: str
    """Of the file's bytes, as the run's journal records it."""
    made_at: str
    host: str
    node: str
    libvirt_uri: str
    options: Options
    instances: dict[str, PlannedInstance]


def parse_plan(data: bytes, name: str) -> LoadedPlan:
    """A plan file's bytes, validated as hostile input: any flaw is one PlanFileError."""
    try:
        doc = parse_json(data)
    except InputError as error:
        raise PlanFileError(f"plan file {name} is not a whole plan: {error}; {MAKE_ANOTHER}") from None
    if type(doc) is not dict or doc.get("format") != FORMAT:
        raise PlanFileError(f"plan file {name} is not a compute-recover plan (no \"format\": \"{FORMAT}\"); "
                            f"{MAKE_ANOTHER}")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise PlanFileError(f"plan file {name} has format version {shown(version)}; this compute-recover applies "
                            f"version {VERSION}: {MAKE_ANOTHER}")
    if doc.get("sha256") != checksum({k: v for k, v in doc.items() if k != "sha256"}):
        raise PlanFileError(f"plan file {name} does not match its checksum: it was edited or damaged since it was "
                            f"written; {MAKE_ANOTHER}")
    try:
        host = bounded_string(doc.get("host"), "host")
        options = _options(doc.get("options"))
        return LoadedPlan(name, hashlib.sha256(data).hexdigest(), bounded_string(doc.get("made_at"), "made_at"), host,
                          bounded_string(doc.get("node"), "node"),
                          bounded_string(doc.get("libvirt_uri"), "libvirt_uri", MAX_URI_LENGTH), options,
                          _instances(doc.get("instances"), host, options))
    except (InputError, FactsError, PolicyValueError) as error:
        raise PlanFileError(f"plan file {name}: {error}; {MAKE_ANOTHER}") from None


def _flag(value: Any, name: str) -> None:
    if type(value) is not bool:
        raise InputError(f"options.{name} must be true or false, not {shown(value)}")


def _action_choice(value: Any, name: str) -> None:
    choices = [a.value for a in RunningDeletedInstanceAction]
    if value not in choices:
        raise InputError(f"options.{name} must be one of {', '.join(choices)}, not {shown(value)}")


def _resume(value: Any, name: str) -> None:
    parse_resume(value, f"options.{name}")


def _limit(value: Any, name: str) -> None:
    """The bound --max-downtime has (parse_duration): above 0, at most 366 days."""
    if value is not None and (type(value) not in (int, float) or not 0 < value <= MAX_DURATION_SECONDS):
        raise InputError(f"options.{name} must be null or a number of seconds above 0 and at most "
                         f"{MAX_DURATION_SECONDS} (366 days), not {shown(value)}")


_OPTION_CHECKS = {"resume_guests_state_on_host_boot": _flag, "destroy_after_evacuate": _flag,
                  "running_deleted_instance_action": _action_choice, "resume_policy": _resume,
                  "max_downtime": _limit}
"""One check for each decision option (Options); a plan holds exactly these."""


def _options(value: Any) -> Options:
    if type(value) is not dict or value.keys() != _OPTION_CHECKS.keys():
        raise InputError(f"options must be an object of exactly {', '.join(_OPTION_CHECKS)}")
    for name, check in _OPTION_CHECKS.items():
        check(value[name], name)
    return Options(**value)


def _instances(value: Any, host: str, options: Options) -> dict[str, PlannedInstance]:
    if type(value) is not list:
        raise InputError(f"instances must be a list, not {shown(value)}")
    planned: dict[str, PlannedInstance] = {}
    for index, item in enumerate(value):
        try:
            uuid, instance = _instance(item, host, options)
        except (InputError, FactsError, PolicyValueError) as error:
            raise InputError(f"instances[{index}]: {error}") from None
        if uuid in planned:
            raise InputError(f"instances[{index}]: instance {uuid} is planned twice")
        planned[uuid] = instance
    return planned


def _instance(item: Any, host: str, options: Options) -> tuple[str, PlannedInstance]:
    if type(item) is not dict:
        raise InputError(f"must be an object, not {shown(item)}")
    uuid = canonical_uuid(item.get("uuid"))
    record = item.get("record")
    if record_uuid(record) != uuid:
        raise InputError(f"record must be the decide input record of instance {uuid}")
    facts = facts_from_record(record, host, options)
    updated_at = item.get("updated_at")
    if updated_at is not None:
        try:
            datetime.fromisoformat(bounded_string(updated_at, "updated_at"))
        except ValueError:
            raise InputError(f"updated_at {shown(updated_at)} is not a timestamp") from None
    return uuid, PlannedInstance(facts, updated_at, _decision(item.get("decision")))


def _decision(value: Any) -> dict:
    """The decision's DECISION_FIELDS, checked as far as messages about it read them."""
    if type(value) is not dict:
        raise InputError(f"decision must be an object, not {shown(value)}")
    decision = {name: value.get(name) for name in DECISION_FIELDS}
    for name, key in (("path", "rule"), ("actions", "name")):
        steps = decision[name]
        if type(steps) is not list or any(type(s) is not dict or type(s.get(key)) is not str for s in steps):
            raise InputError(f"decision.{name} must be a list of objects with a string {key}")
    return decision


# --- applying ---------------------------------------------------------------------------------


RECHECKED = (DeviceReadiness.READY.value, DeviceReadiness.MISSING.value)
"""What the run's own proof may find of a guest planned `unverified` (a secret's value the plan's read-only
connection could not read) without it being a change: ready, started as planned; missing, blocked."""


def changes_since(planned: PlannedInstance, assignment: Assignment) -> list[str]:
    """What differs between the plan and the instance now, each as `what old → new`; empty when nothing. A
    device readiness the plan left unverified is the run's to prove (RECHECKED), not a change."""
    fresh, then = assignment.decision.facts, planned.facts
    rechecked = then.devices == DeviceReadiness.UNVERIFIED.value and fresh.devices in RECHECKED
    if rechecked:
        then = then._replace(devices=fresh.devices)
    changes = [f"{name} {show_value(old)} → {show_value(new)}"
               for name, old, new in zip(Facts._fields, then, fresh, strict=True) if old != new]
    stamp = _stamp(assignment.updated_at)
    if stamp != planned.updated_at:
        changes.append(f"updated_at {show_value(planned.updated_at)} → {show_value(stamp)}")
    if not changes and not (rechecked and fresh.devices == DeviceReadiness.MISSING.value):  # blocked: not planned
        now = {name: decision_json(assignment.decision)[name] for name in DECISION_FIELDS}
        if now != planned.decision:
            changes.append(f"decision {_said(planned.decision)} → {_said(now)} (the policy is not the plan's)")
    return changes


def _said(decision: dict) -> str:
    rules = " → ".join(step["rule"] for step in decision["path"]) or "no rule"
    return f"{rules} ({', '.join(a['name'] for a in decision['actions']) or 'no actions'})"


def check_options(plan: LoadedPlan, options: Options, given: frozenset[str]) -> None:
    """A decision option set for this run (flag, environment, config, nova.conf) must be the plan's:
    the plan's options win, and one that says otherwise refuses the run."""
    differing = [name for name in sorted(given) if getattr(options, name) != getattr(plan.options, name)]
    if differing:
        said = ", ".join(f"--{name.replace('_', '-')} {show_value(getattr(options, name))} (the plan: "
                         f"{show_value(getattr(plan.options, name))})" for name in differing)
        raise PlanFileError(f"plan file {plan.name} was made with other decision options than this run's: {said}; "
                            f"a plan is applied with its own options: drop these or {MAKE_ANOTHER}")


class PlanHook(DecisionScreen, Protocol):
    """What `run` does differently when it writes a plan (`plan --out`) or applies one (`run --plan`)."""

    def settings_for(self, settings: RunSettings, libvirt_uri: str) -> RunSettings:
        """The run's settings, once its host, node and hypervisor are known; PlanFileError refuses the run."""

    def finish(self, result: RunResult) -> None:
        """After the run, before its report; PlanFileError if the plan cannot be written."""


class PlanApplication:
    """`run --plan`: the instances whose facts and decision are the plan's are executed; the others are held back."""

    def __init__(self, plan: LoadedPlan):
        self.plan = plan

    def settings_for(self, settings: RunSettings, libvirt_uri: str) -> RunSettings:
        plan = self.plan
        for what, planned, now in (("host", plan.host, settings.host), ("node", plan.node, settings.node),
                                   ("libvirt URI", plan.libvirt_uri, libvirt_uri)):
            if planned != now:
                raise PlanFileError(f"plan file {plan.name} was made for {what} {planned!r}, not {now!r}: a plan is "
                                    f"applied only where it was made (check --host, --node, --libvirt-uri, "
                                    f"--scenario), or {MAKE_ANOTHER}")
        log.info("applying plan %s (sha256 %s, made at %s): %d instance(s)", plan.name, plan.sha256, plan.made_at,
                 len(plan.instances))
        return replace(settings, options=plan.options,
                       applied_plan={"file": plan.name, "sha256": plan.sha256, "made_at": plan.made_at})

    def screen(self, assignments: list[Assignment],
               failures: list[InstanceResult]) -> tuple[list[Assignment], list[InstanceResult]]:
        kept, held = [], []
        for assignment in assignments:
            refusal = self.recheck(assignment)
            if refusal is None:
                kept.append(assignment)
            else:
                held.append(refusal)
        seen = {assignment.uuid for assignment in assignments} | {failure.uuid for failure in failures}
        held += [InstanceResult(uuid, None, outcome=Outcome.CHANGED,
                                error="in the plan, but no longer an instance of this host (its record is gone or "
                                "moved): nothing was done to it")
                 for uuid in self.plan.instances if uuid not in seen]
        return kept, held

    def recheck(self, assignment: Assignment) -> InstanceResult | None:
        planned = self.plan.instances.get(assignment.uuid)
        if planned is None:
            return _held_back(assignment, Outcome.UNPLANNED, "not in the plan (new on this host since it was made): "
                                                       "nothing was done to it; make a new plan")
        changes = changes_since(planned, assignment)
        if changes:
            return _held_back(assignment, Outcome.CHANGED,
                              f"changed since the plan: {'; '.join(changes)}: nothing was done to it")
        return None

    def finish(self, result: RunResult) -> None:
        """Nothing to write: the journal holds the run."""


def _held_back(assignment: Assignment, outcome: Outcome, error: str) -> InstanceResult:
    facts = assignment.decision.facts
    return InstanceResult(assignment.uuid, assignment.decision, outcome=outcome, error=error, vm_state=facts.vm_state,
                          task_state=record_task_state(facts.task_state), power_state=facts.power_state)


def load_for_run(path: Path, options: Options, given: frozenset[str]) -> PlanApplication:
    """`run --plan FILE`: the plan read and checked against the run's options; a PlanFileError (or the
    InputError of a damaged file) when it cannot be applied."""
    name = str(path.resolve())
    try:
        with open(path, "rb") as handle:
            data = read_limited(handle, MAX_DOCUMENT_BYTES, f"plan file {name}")
        plan = parse_plan(data, name)
        check_options(plan, options, given)
    except OSError as error:
        raise PlanFileError(f"cannot read plan file {name}: {error.strerror}") from error
    return PlanApplication(plan)


# --- writing ----------------------------------------------------------------------------------


class PlanWriter:
    """`plan --out FILE`: the plan in a private temporary file beside FILE (recovery.files), renamed over
    FILE only once whole, so FILE is never half-written. Made first, so an unwritable FILE fails before any
    reading."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = PrivateReplacement(path)
        except OSError as error:
            raise PlanFileError(f"cannot write plan file {path}: {error.strerror} (choose a writable --out)") from None
        self._assignments: dict[str, Assignment] = {}
        self._settings: RunSettings | None = None
        self._libvirt_uri = ""

    def settings_for(self, settings: RunSettings, libvirt_uri: str) -> RunSettings:
        self._settings, self._libvirt_uri = settings, libvirt_uri
        return settings

    def screen(self, assignments: list[Assignment],
               failures: list[InstanceResult]) -> tuple[list[Assignment], list[InstanceResult]]:
        self._assignments = {assignment.uuid: assignment for assignment in assignments}
        return assignments, []

    def recheck(self, assignment: Assignment) -> InstanceResult | None:
        return None

    def finish(self, result: RunResult) -> None:
        """Write the plan, in the order the run's report lists (and a real run starts) its instances."""
        assert self._settings is not None, "settings_for comes first"
        ordered = [self._assignments[r.uuid] for r in result.instances if r.uuid in self._assignments]
        document = plan_document(self._settings, self._libvirt_uri, ordered, datetime.now(UTC))
        try:
            self._file.file.write((to_json(document, indent=2) + "\n").encode())
            self._file.commit()
        except OSError as error:
            raise PlanFileError(f"cannot write plan file {self.path}: {error.strerror}") from None
        log.info("wrote plan %s: %d instance(s)", self.path, len(ordered))

    def discard(self) -> None:
        """Remove the temporary file if it was not renamed (the command failed or was stopped)."""
        self._file.discard()

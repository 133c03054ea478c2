"""Deciding every instance and domain of a host from its gathered facts (recovery/run/gather.py).

Each instance the run is responsible for (its own, and another host's that was evacuated from it
or is deleted) is decided by the machine; a bad row or bad instance metadata fails that instance
alone, before any action. The domains the run leaves alone are reported with why.
"""

import uuid as uuidlib
from dataclasses import dataclass
from typing import Protocol

from recovery.adapters.hypervisor import Hypervisor
from recovery.core.bounds import NOVA_INTEGER_MAX
from recovery.core.effects import starts_guest
from recovery.core.facts import Facts, FactsError, facts_from_record
from recovery.core.machine import RecoveryMachine
from recovery.core.metadata import PolicyValueError, start_order
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.db import Database, InstanceRow, MigrationRow
from recovery.run.execute import Assignment, InstanceResult
from recovery.run.gather import HostFacts, gather


class DecisionScreen(Protocol):
    """Sees every decision before anything is executed, and may hold some back: `plan --out` keeps
    them for its file, `run --plan` holds back those whose facts changed since the plan."""

    def screen(self, assignments: list[Assignment],
               failures: list[InstanceResult]) -> tuple[list[Assignment], list[InstanceResult]]:
        """The assignments to execute, and a result for each instance held back (journaled, not acted on)."""

    def recheck(self, assignment: Assignment) -> InstanceResult | None:
        """A decision made again after a lost claim: the result if it is held back, else None."""


@dataclass
class DomainReport:
    uuid: str
    name: str
    action: str
    reason: str


@dataclass
class Decided:
    """A host's decisions: the assignments to execute, the instances failed before any action, the domains left
    alone."""

    assignments: list[Assignment]
    failures: list[InstanceResult]
    domains: list[DomainReport]


def decide_host(machine: RecoveryMachine, settings: RunSettings, gathered: HostFacts) -> Decided:
    """Decide every instance this run is responsible for; report the domains it leaves alone."""
    decided = Decided([], [], [])
    rows, by_domain = gathered.instances, gathered.domains
    candidates = list(rows.values())
    for uuid, row in gathered.elsewhere.items():
        domain = by_domain.get(uuid)
        if uuid in gathered.evacuations or row.deleted:
            candidates.append(row)
        elif domain is not None:
            decided.domains.append(DomainReport(uuid, domain.name, "none",
                                                f"owned by host {row.host} (no evacuation record): left alone"))
    for uuid, domain in by_domain.items():
        if uuid not in rows and uuid not in gathered.elsewhere:
            decided.domains.append(DomainReport(uuid, domain.name, "none",
                                                "unknown domain: no instance record claims it, so it is never touched"))
    for row in candidates:
        assignment = _decide_row(machine, settings, gathered, row, decided.failures)
        if assignment is None:
            continue
        decided.assignments.append(assignment)
        domain = by_domain.get(row.key)
        if domain is not None and row.key not in rows:
            names = ", ".join(a.name for a in assignment.decision.actions) or "none"
            decided.domains.append(DomainReport(row.key, domain.name, names, assignment.decision.reason))
    return decided


def _decide_row(machine: RecoveryMachine, settings: RunSettings, gathered: HostFacts, row: InstanceRow,
                failures: list[InstanceResult]) -> Assignment | None:
    """One instance's assignment, or None with its failure added to `failures`."""
    try:
        _check_row(row)
        record = gathered.record(row)
        facts = facts_from_record(record, settings.host, settings.options)
    except FactsError as error:
        failures.append(InstanceResult(row.key, None, outcome=Outcome.FAILED,
                                       error=f"bad database row: {error}; fix the instances row",
                                       vm_state=row.vm_state, task_state=row.task_state))
        return None
    assignment = decide_instance(machine, row, record, facts, gathered.evacuations.get(row.key),
                           gathered.network_info.get(row.key))
    if starts_guest(assignment.decision):
        try:
            assignment.order = start_order(row.metadata)
        except PolicyValueError as error:
            failures.append(InstanceResult(row.key, assignment.decision, outcome=Outcome.FAILED,
                                           error=f"bad instance metadata: {error}; set it right (openstack "
                                           "server set --property KEY=VALUE) or unset it",
                                           vm_state=row.vm_state, task_state=row.task_state))
            return None
    return assignment


def decide_instance(machine: RecoveryMachine, row: InstanceRow, record: dict, facts: Facts,
                    evacuation: MigrationRow | None, network_info: str | None = None) -> Assignment:
    """The machine's decision on one instance, with what its execution needs of the row (and, on Nova's cell
    database, its network info cache)."""
    return Assignment(row.key, machine.decide(facts), writable=facts.owned and not facts.deleted, host=row.host,
                evacuation_id=evacuation.id if evacuation else None,
                stored_uuid=row.uuid if row.uuid != row.key else None, updated_at=row.updated_at, record=record,
                project=row.project_id, network_info=network_info)


def decide_again(machine: RecoveryMachine, settings: RunSettings, database: Database, hypervisor: Hypervisor,
                 uuid: str, down_seconds: float | None) -> Assignment | None:
    """One more decision after a lost claim, from facts fresh from this one instance's row and domain
    (the run's downtime kept); None when its record vanished or went bad."""
    gathered = gather(database, hypervisor, settings.host, only=[uuid], down_seconds=down_seconds,
                      nova_cell=settings.nova_cell)
    row = gathered.row(uuid)
    if row is None:
        return None
    record = gathered.record(row)
    try:
        facts = facts_from_record(record, settings.host, settings.options)
    except FactsError:
        return None
    return decide_instance(machine, row, record, facts, gathered.evacuations.get(row.key),
                           gathered.network_info.get(row.key))


def evacuation_warnings(settings: RunSettings, gathered: HostFacts) -> list[str]:
    """Rule 1 with destroy_after_evacuate off leaves a stale domain: say so."""
    if settings.options.destroy_after_evacuate:
        return []
    return [f"instance {uuid} was evacuated to {m.dest_compute} but --no-destroy-after-evacuate leaves its "
            f"stale domain {gathered.domains[uuid].name} here; destroy it once the evacuation is confirmed"
            for uuid, m in gathered.evacuations.items() if uuid in gathered.domains]


def _check_row(row: InstanceRow) -> None:
    """What `decide` cannot see of a row: a uuid libvirt could never report (so it cannot be
    matched to its domain), and sizes outside Nova's columns (which would poison the compute
    node's sums). Refused before any action: we do not guess."""
    try:
        uuidlib.UUID(row.uuid)
    except (TypeError, ValueError):
        raise FactsError(f"uuid {row.uuid[:40]!r} is malformed (expected 32 hex digits, 8-4-4-4-12)") from None
    for name in ("vcpus", "memory_mb", "root_gb"):
        value = getattr(row, name)
        if value is not None and not 0 <= value <= NOVA_INTEGER_MAX:
            raise FactsError(f"{name} {value} is outside Nova's Integer range 0..{NOVA_INTEGER_MAX}")

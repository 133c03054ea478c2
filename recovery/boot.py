"""The host boot routine (SPEC §6): preflight, identity, bulk load, decide, execute, report.

Mirrors nova-compute's start: init_host (driver init, evacuation cleanup,
every instance through the machine), then pre_start_hook (compute node
record), then post_start_hook (service record).
"""

import time
import uuid as uuidlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from recovery.db import Database, InstanceRow, MigrationRow
from recovery.executor import (
    CONFLICT,
    FAILED,
    OK,
    SKIPPED,
    ActionResult,
    InstanceResult,
    LostRace,
    Plan,
    Ports,
    execute,
)
from recovery.exits import EXIT_FAILED, EXIT_OK
from recovery.facts import FactsError, facts_from_record, record_task_state
from recovery.hypervisor import DomainInfo, Hypervisor
from recovery.machine import RecoveryMachine
from recovery.network import NetworkHook
from recovery.render import action_json, considerations_json, path_json
from recovery.settings import RunSettings
from states.enums import PowerState


class Refused(Exception):
    """Preflight or identity check refused the run; nothing was changed."""


@dataclass
class DomainReport:
    uuid: str
    name: str
    action: str
    reason: str


@dataclass
class RunResult:
    run_id: int | None
    settings: RunSettings
    instances: list[InstanceResult]
    domains: list[DomainReport]
    power_states: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    network_error: str | None = None
    """Why the deferred network apply at the end failed, if it did."""
    seconds: float = 0.0

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(r.outcome for r in self.instances)
        return {"instances": len(self.instances), **{o: counts[o] for o in (OK, FAILED, SKIPPED, CONFLICT)},
                "domains_reported": len(self.domains)}

    @property
    def exit_code(self) -> int:
        failed = self.network_error is not None or any(r.outcome in (FAILED, CONFLICT) for r in self.instances)
        return EXIT_FAILED if failed else EXIT_OK


def check_identity(db: Database, settings: RunSettings, domains: list[DomainInfo]) -> None:
    """Refuse to act on a renamed host or on a database that does not know this host."""
    node = db.find_compute_node_by_hypervisor_hostname(settings.node)
    if node is not None and node.host != settings.host:
        raise Refused(
            f"compute node {settings.node!r} belongs to host {node.host!r}, not {settings.host!r}: the host may "
            "have been renamed; set --host to the recorded name or fix the compute_nodes row"
        )
    if domains and not db.service_exists(settings.host):
        raise Refused(
            f"the database has no service record for host {settings.host!r} but the hypervisor already has "
            f"{len(domains)} domain(s): wrong database (--db) or wrong --host?"
        )


def _record(row: InstanceRow, power: PowerState | None, evacuation: MigrationRow | None) -> dict:
    """A database row and its domain's power state (None: no domain) as a decide input record (SPEC §5),
    so that rows are validated exactly as `decide` validates its input."""
    return {
        "uuid": row.uuid,
        "vm_state": row.vm_state,
        "task_state": row.task_state,
        "power_state": power.label if power is not None else "nostate",
        "db_power_state": row.power_state if row.power_state is not None else 0,
        "host": row.host,
        "old_vm_state": row.system_metadata.get("old_vm_state"),
        "domain_present": power is not None,
        "evacuation": {"status": evacuation.status, "dest_host": evacuation.dest_compute} if evacuation else None,
        "deleted": row.deleted,
    }


def _check_uuid(value: str) -> None:
    """A row whose uuid libvirt could never report cannot be matched to its domain: refuse to guess."""
    try:
        uuidlib.UUID(value)
    except (TypeError, ValueError):
        raise FactsError(f"uuid {value!r} is malformed (expected 32 hex digits, 8-4-4-4-12)") from None


def live_record(db: Database, hypervisor: Hypervisor, uuid: str, host: str) -> dict | None:
    """One instance's facts as they are now, as a decide input record: for `explain --live` and for
    deciding again after a lost race. A domain in libvirt's NOSTATE counts as no domain here."""
    row = db.load_instances_by_uuid([uuid]).get(uuid)
    if row is None:
        return None
    power = hypervisor.power_state(uuid)
    evacuation = next((m for m in db.load_host(host).evacuations if m.instance_uuid == uuid), None)
    return _record(row, None if power is PowerState.NOSTATE else power, evacuation)


class HostBoot:
    """One run of the routine over an open hypervisor and database."""

    def __init__(self, machine: RecoveryMachine, hypervisor: Hypervisor, database: Database,
                 settings: RunSettings, network: NetworkHook | None = None):
        self.machine = machine
        self.ports = Ports(hypervisor, database, network or NetworkHook(), settings.stop_timeout)
        self.settings = settings

    def run(self) -> RunResult:
        started = time.perf_counter()
        hv, db, settings = self.ports.hypervisor, self.ports.database, self.settings
        warnings = hv.preflight()
        domains = hv.domains()
        check_identity(db, settings, domains)
        snapshot = db.load_host(settings.host)
        by_domain = {d.uuid: d for d in domains}
        evacuations = {m.instance_uuid: m for m in snapshot.evacuations}
        rows = {row.uuid: row for row in snapshot.instances}
        elsewhere = db.load_instances_by_uuid(
            {u for u in (*by_domain, *evacuations) if u not in rows}
        )
        run_id = None if settings.dry_run else db.start_run(settings.host, False, self._options_json())

        plans, failures, domain_reports = self._plan(rows, elsewhere, by_domain, evacuations)
        warnings += self._evacuation_warnings(by_domain, evacuations)
        results = list(failures)
        network_error = None
        try:
            evacuated = [p for p in plans if p.evacuation_id is not None]
            results += self._execute_all(evacuated)
            results += self._execute_all([p for p in plans if p.evacuation_id is None])
        finally:
            if not settings.dry_run:
                network_error = self._apply_network()
        if not settings.dry_run:
            capacity = hv.capacity()
            db.upsert_compute_node(settings.host, settings.node, capacity.vcpus, capacity.memory_mb, capacity.local_gb)
            db.touch_service(settings.host)
        power = {d.uuid: d.power_state.label for d in hv.domains()}
        result = RunResult(run_id, settings, results, domain_reports, power, warnings, network_error=network_error)
        if run_id is not None:
            db.journal(run_id, (self._journal_entry(r, power) for r in results))
            db.finish_run(run_id, result.exit_code, result.totals)
        result.seconds = time.perf_counter() - started
        return result

    def _apply_network(self) -> str | None:
        """Apply the deferred network rules once; a failure is reported, not raised, so the run still finishes."""
        try:
            self.ports.network.apply()
        except Exception as error:  # reported in the run's result and exit code
            return str(error)
        return None

    def _options_json(self) -> dict:
        options, settings = self.settings.options, self.settings
        return {"node": settings.node, "concurrency": settings.concurrency, **options.__dict__}

    def _evacuation_warnings(self, by_domain: dict[str, DomainInfo], evacuations: dict[str, MigrationRow]) -> list[str]:
        """Rule 1 with destroy_after_evacuate off leaves a stale domain: say so (SPEC §4)."""
        if self.settings.options.destroy_after_evacuate:
            return []
        return [f"instance {uuid} was evacuated to {m.dest_compute} but --no-destroy-after-evacuate leaves its "
                f"stale domain {by_domain[uuid].name} here; destroy it once the evacuation is confirmed"
                for uuid, m in evacuations.items() if uuid in by_domain]

    def _plan(
        self,
        rows: dict[str, InstanceRow],
        elsewhere: dict[str, InstanceRow],
        by_domain: dict[str, DomainInfo],
        evacuations: dict[str, MigrationRow],
    ) -> tuple[list[Plan], list[InstanceResult], list[DomainReport]]:
        """Decide every instance this run is responsible for; report the domains it leaves alone."""
        plans: list[Plan] = []
        failures: list[InstanceResult] = []
        reports: list[DomainReport] = []
        candidates = list(rows.values())
        for uuid, row in elsewhere.items():
            domain = by_domain.get(uuid)
            if uuid in evacuations or row.deleted:
                candidates.append(row)
            elif domain is not None:
                reports.append(DomainReport(uuid, domain.name, "none",
                                            f"owned by host {row.host} (no evacuation record): left alone"))
        for uuid, domain in by_domain.items():
            if uuid not in rows and uuid not in elsewhere:
                reports.append(DomainReport(uuid, domain.name, "none",
                                            "unknown domain: no instance record claims it, so it is never touched"))
        for row in candidates:
            domain = by_domain.get(row.uuid)
            evacuation = evacuations.get(row.uuid)
            try:
                _check_uuid(row.uuid)
                power = domain.power_state if domain else None
                facts = facts_from_record(_record(row, power, evacuation), self.settings.host, self.settings.options)
            except FactsError as error:
                failures.append(InstanceResult(row.uuid, None, outcome=FAILED,
                                               error=f"bad database row: {error}; fix the instances row",
                                               vm_state=row.vm_state, task_state=row.task_state))
                continue
            decision = self.machine.decide(facts)
            plans.append(Plan(row.uuid, decision, writable=facts.owned and not facts.deleted,
                              evacuation_id=evacuation.id if evacuation else None))
            if domain is not None and row.uuid not in rows:
                names = ", ".join(a.name for a in decision.actions) or "none"
                reports.append(DomainReport(row.uuid, domain.name, names, decision.reason))
        return plans, failures, reports

    def _execute_all(self, plans: list[Plan]) -> list[InstanceResult]:
        if self.settings.dry_run:
            return [self._planned(plan) for plan in plans]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self._execute_one, plans))

    @staticmethod
    def _planned(plan: Plan) -> InstanceResult:
        decision = plan.decision
        return InstanceResult(plan.uuid, decision, [ActionResult(a, SKIPPED) for a in decision.actions],
                              outcome=SKIPPED, vm_state=decision.facts.vm_state,
                              task_state=record_task_state(decision.facts.task_state))

    def _execute_one(self, plan: Plan) -> InstanceResult:
        try:
            try:
                return execute(self.ports, plan)
            except LostRace:
                fresh = self._redecide(plan)
                if fresh is None:
                    return InstanceResult(plan.uuid, plan.decision, outcome=CONFLICT,
                                          error="the record vanished or went bad between decision and write")
                return execute(self.ports, fresh)
        except LostRace as race:
            return InstanceResult(plan.uuid, plan.decision, outcome=CONFLICT, error=str(race))
        except Exception as error:  # one instance's failure never stops the others
            return InstanceResult(plan.uuid, plan.decision, outcome=FAILED, error=f"{type(error).__name__}: {error}")

    def _redecide(self, plan: Plan) -> Plan | None:
        """Facts fresh from the database and libvirt, for one more decision after a lost race."""
        record = live_record(self.ports.database, self.ports.hypervisor, plan.uuid, self.settings.host)
        if record is None:
            return None
        try:
            facts = facts_from_record(record, self.settings.host, self.settings.options)
        except FactsError:
            return None
        evacuation_id = plan.evacuation_id if facts.evacuation_status else None
        return Plan(plan.uuid, self.machine.decide(facts), facts.owned and not facts.deleted, evacuation_id)

    def _journal_entry(self, result: InstanceResult, power: dict[str, str]) -> dict:
        decision = result.decision
        return {
            "instance_uuid": result.uuid,
            "start_state": decision.start_state if decision else None,
            "facts": decision.facts._asdict() if decision else None,
            "path": path_json(decision) if decision else [],
            "considered": considerations_json(self.machine.consider(decision.facts)) if decision else [],
            "actions": [{**action_json(a.action), "outcome": a.outcome, "error": a.error} for a in result.actions],
            "final_vm_state": result.vm_state,
            "final_task_state": result.task_state,
            "final_power_state": int(PowerState[power.get(result.uuid, "nostate").upper()]),
            "outcome": result.outcome,
            "error": result.error,
            "reason": decision.reason if decision else result.error,
        }

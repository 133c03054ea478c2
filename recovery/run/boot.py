"""The host boot routine: preflight, identity, lock, bulk load, decide, journal, execute, report.

Mirrors nova-compute's start: init_host (driver init, evacuation cleanup, every instance through
the machine), then pre_start_hook (compute node record), then post_start_hook (service record).
A real run holds the host's lock for all of it and journals as it goes; a dry run takes no lock
and writes nothing.
"""

import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from recovery.adapters.hypervisor import DomainInfo, HostCapacity, Hypervisor, HypervisorError
from recovery.adapters.network import NetworkHook
from recovery.core.bounds import NOVA_INTEGER_MAX
from recovery.core.documents import action_json, considerations_json, path_json
from recovery.core.effects import starts_guest
from recovery.core.errors import RecoveryError
from recovery.core.exit_codes import EXIT_FAILED, EXIT_OK
from recovery.core.facts import Facts, FactsError, facts_from_record, record_task_state
from recovery.core.machine import Decision, RecoveryMachine
from recovery.core.metadata import PolicyValueError, start_order
from recovery.core.outcomes import RUN_OUTCOMES, Outcome
from recovery.core.servicegroup import host_down_seconds
from recovery.core.settings import RunSettings
from recovery.db import Database, DatabaseError, InstanceRow, MigrationRow
from recovery.db import journal as journals
from recovery.db.lock import host_lock
from recovery.db.store import utcnow
from recovery.run.execute import (
    ActionResult,
    Halt,
    InstanceResult,
    LostRace,
    Plan,
    Ports,
    execute,
    final_entry,
    power_to_record,
    succeeded,
)
from recovery.run.tiers import TierReport, run_tiers, tiers_of
from states.enums import PowerState


class Refused(RecoveryError):
    """Preflight or identity check refused the run; nothing was changed."""


class DecisionScreen(Protocol):
    """Sees every decision before anything is executed, and may hold some back: `plan --out` keeps
    them for its file, `run --plan` holds back those whose facts changed since the plan."""

    def screen(self, plans: list[Plan], failures: list[InstanceResult]) -> tuple[list[Plan], list[InstanceResult]]:
        """The plans to execute, and a result for each instance held back (journaled, not acted on)."""

    def recheck(self, plan: Plan) -> InstanceResult | None:
        """A decision made again after a lost claim: the result if it is held back, else None."""


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
    halted: str | None = None
    """Why the run stopped starting actions (database or hypervisor gone), if it did."""
    seconds: float = 0.0
    started: float = 0.0
    """When the run began (time.monotonic()): the tiers' times are reported from it."""
    tiers: list[TierReport] = field(default_factory=list)
    """The tiers of ordered restart, lowest priority first."""
    host_down_seconds: float | None = None
    """How long the host was down, from its service's last heartbeat before this run; None: unknown."""

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(r.outcome for r in self.instances)
        outcomes = (*RUN_OUTCOMES, Outcome.HANDED_OFF) if self.settings.nova_cell else RUN_OUTCOMES  # else none
        return {"instances": len(self.instances), **{o: counts[o] for o in outcomes},
                "domains_reported": len(self.domains)}

    @property
    def exit_code(self) -> int:
        failed = self.network_error is not None or self.halted is not None
        failed = failed or any(r.outcome not in (Outcome.OK, Outcome.SKIPPED, Outcome.HANDED_OFF)
                               for r in self.instances)
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


def instance_record(row: InstanceRow, power: PowerState | None, evacuation: MigrationRow | None,
                    host_down_seconds: float | None = None, nova_cell: bool = False) -> dict:
    """A database row and its domain's power state (None: no domain) as a decide input record,
    with how long the host was down (None: unknown) and, for a row of Nova's cell database, `nova_cell`,
    so that rows are validated exactly as `decide` validates its input."""
    return {
        "uuid": row.key,
        "vm_state": row.vm_state,
        "task_state": row.task_state,
        "power_state": power.label if power is not None else "nostate",
        "db_power_state": row.power_state if row.power_state is not None else 0,
        "host": row.host,
        "old_vm_state": row.system_metadata.get("old_vm_state"),
        "domain_present": power is not None,
        "evacuation": {"status": evacuation.status, "dest_host": evacuation.dest_compute} if evacuation else None,
        "deleted": row.deleted,
        "metadata": row.metadata,
        "host_down_seconds": host_down_seconds,
        **({"nova_cell": True} if nova_cell else {}),
    }


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


def live_record(db: Database, hypervisor: Hypervisor, uuid: str, host: str,
                host_down_seconds: float | None, nova_cell: bool = False) -> tuple[dict, InstanceRow] | None:
    """One instance's facts as they are now, as a decide input record, with its row: for
    `explain --live` and for deciding again after a lost claim. Reads that one instance only.
    A domain in libvirt's NOSTATE counts as no domain here."""
    row = db.load_instances_by_uuid([uuid]).get(uuid.lower())
    if row is None:
        return None
    power = hypervisor.power_state(row.key)
    evacuation = db.evacuation_of(host, row.uuid)
    power = None if power is PowerState.NOSTATE else power
    return instance_record(row, power, evacuation, host_down_seconds, nova_cell), row


class HostBoot:
    """One run of the routine over an open hypervisor and database."""

    def __init__(self, machine: RecoveryMachine, hypervisor: Hypervisor, database: Database,
                 settings: RunSettings, network: NetworkHook | None = None,
                 on_result: Callable[[InstanceResult], None] | None = None, journal: Database | None = None,
                 screen: DecisionScreen | None = None):
        """`journal`: the database the run is journaled in, when not `database` (a Nova cell database)."""
        self.machine = machine
        self.screen = screen
        self.on_result = on_result
        """Called from the worker threads with each executed instance's result (the progress bar)."""
        self.ports = Ports(hypervisor, database, network or NetworkHook(), settings.stop_timeout, Halt(), journal)
        self.settings = settings
        self._decision_entries: dict[Facts, dict] = {}
        self.host_down_seconds: float | None = None
        """Read with the host's records before anything is written (the run's heartbeat comes last)."""

    def run(self) -> RunResult:
        """Raises Refused (nothing changed), LockTimeout (nothing changed), HypervisorError or
        DatabaseError before the run starts; once started, always returns a result."""
        started, began = time.perf_counter(), time.monotonic()
        hv, db, settings = self.ports.hypervisor, self.ports.database, self.settings
        warnings = hv.preflight()
        domains = hv.domains()
        check_identity(db, settings, domains)
        if settings.dry_run:  # nothing is locked or changed: the domains as listed are the run's
            result = self._recover(warnings, None, domains)
        else:
            capacity = hv.capacity()  # read now: the compute node is still updated if libvirt goes later
            with host_lock(db, settings.host, settings.lock_timeout):  # in the records' database: shared by all
                db.prepare_for_writes()
                self.ports.journal_database.prepare_for_writes()
                result = self._recover(warnings, capacity)
        result.seconds = time.perf_counter() - started
        result.started = began
        return result

    def _recover(self, warnings: list[str], capacity: HostCapacity | None,
                 domains: list[DomainInfo] | None = None) -> RunResult:
        """A real run lists the domains again once it holds the lock, and opens its journal once the
        host's records are read, so that the run's options record how long the host was down."""
        hv, db, settings = self.ports.hypervisor, self.ports.database, self.settings
        if domains is None:
            domains = hv.domains()
        snapshot = db.load_host(settings.host)
        self.host_down_seconds = host_down_seconds(snapshot.service, utcnow())
        run_id = None
        if not settings.dry_run:
            run_id = journals.start_run(self.ports.journal_database, settings.host, self._options_json())
        by_domain = {d.uuid.lower(): d for d in domains}
        evacuations = {m.instance_uuid.lower(): m for m in snapshot.evacuations if m.instance_uuid}
        rows = {row.key: row for row in snapshot.instances}
        elsewhere = db.load_instances_by_uuid({u for u in (*by_domain, *evacuations) if u not in rows})
        plans, failures, domain_reports = self._plan(rows, elsewhere, by_domain, evacuations)
        if self.screen is not None:
            plans, held_back = self.screen.screen(plans, failures)
            failures += held_back
        warnings += self._evacuation_warnings(by_domain, evacuations)
        if run_id is not None:
            ids = journals.insert_entries(self.ports.journal_database, run_id,
                                          self._entries(plans, failures, by_domain))
            for plan in plans:
                plan.journal_id = ids.get(plan.uuid)
        executed: list[InstanceResult] = []
        tiers: list[TierReport] = []
        network_error = None
        try:
            executed += self._execute_all([p for p in plans if p.evacuation_id is not None])
            executed += self._execute_all([p for p in plans if p.evacuation_id is None and p.order is None])
            ordered, tiers = self._execute_tiers([p for p in plans if p.evacuation_id is None and p.order])
            executed += ordered
        finally:
            if not settings.dry_run:
                network_error = self._apply_network()
        position = {plan.uuid: number for number, plan in enumerate(plans)}
        results = list(failures) + sorted(executed, key=lambda r: position[r.uuid])
        halted = self.ports.halt.reason
        result = RunResult(run_id, settings, results, domain_reports, self._power_now(results, by_domain), warnings,
                           network_error=network_error, halted=halted, host_down_seconds=self.host_down_seconds,
                           tiers=tiers)
        if run_id is not None:
            self._close_run(result, capacity)
        return result

    def _close_run(self, result: RunResult, capacity: HostCapacity | None) -> None:
        """pre_start_hook and post_start_hook, then the run's end in the journal. A database that
        failed during the run is tried once more: if it is back, the journal is finished."""
        try:
            if capacity is not None and not self.ports.halt.database_failed:
                result.warnings += self._update_host_records(capacity)
            journals.finish_run(self.ports.journal_database, result.run_id, result.exit_code, result.totals)
        except DatabaseError as error:
            result.halted = result.halted or str(error)
            result.warnings.append(f"the run's journal could not be finished ({error}); the host's next run "
                                   "marks it interrupted")

    def _update_host_records(self, capacity: HostCapacity) -> list[str]:
        """pre_start_hook and post_start_hook: the compute node's capacity and usage, and the service's
        heartbeat. On a Nova cell database a missing record is not created (warned instead): Nova's
        nova-compute creates both, with what compute-recover does not know (the hypervisor's type,
        version and CPU description; the service's uuid and object version)."""
        db, settings = self.ports.database, self.settings
        create = not settings.nova_cell
        warnings = []
        node = db.upsert_compute_node(settings.host, settings.node, capacity.vcpus, capacity.memory_mb,
                                      capacity.local_gb, create=create)
        if node is None:
            warnings.append(f"no compute node {settings.node!r} of host {settings.host} in the Nova database: not "
                            "created here (nova-compute creates it when it starts)")
        if not db.heartbeat(settings.host, create=create):
            warnings.append(f"no nova-compute service of host {settings.host} in the Nova database: not created "
                            "here (nova-compute creates it when it starts)")
        return warnings

    def _power_now(self, results: list[InstanceResult], by_domain: dict[str, DomainInfo]) -> dict[str, str]:
        """Power states for the report: re-read in one call after a real run (a dry run changed none);
        from before the run if libvirt is gone."""
        if self.settings.dry_run:
            return {uuid: d.power_state.label for uuid, d in by_domain.items()}
        try:
            return {d.uuid.lower(): d.power_state.label for d in self.ports.hypervisor.domains()}
        except HypervisorError:
            known = {uuid: d.power_state.label for uuid, d in by_domain.items()}
            return known | {r.uuid: r.power_state for r in results if r.power_state is not None}

    def _apply_network(self) -> str | None:
        """Apply the deferred network rules once; a failure is reported, not raised, so the run still finishes."""
        try:
            self.ports.network.apply()
        except Exception as error:  # reported in the run's result and exit code
            return str(error)
        return None

    def _options_json(self) -> dict:
        options, settings = self.settings.options, self.settings
        applied = {"plan": settings.applied_plan} if settings.applied_plan else {}
        return {"node": settings.node, "concurrency": settings.concurrency, **options.__dict__,
                "host_down_seconds": self.host_down_seconds, **applied}

    def _evacuation_warnings(self, by_domain: dict[str, DomainInfo], evacuations: dict[str, MigrationRow]) -> list[str]:
        """Rule 1 with destroy_after_evacuate off leaves a stale domain: say so."""
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
            domain = by_domain.get(row.key)
            evacuation = evacuations.get(row.key)
            try:
                _check_row(row)
                power = domain.power_state if domain else None
                record = instance_record(row, power, evacuation, self.host_down_seconds, self.settings.nova_cell)
                facts = facts_from_record(record, self.settings.host, self.settings.options)
            except FactsError as error:
                failures.append(InstanceResult(row.key, None, outcome=Outcome.FAILED,
                                               error=f"bad database row: {error}; fix the instances row",
                                               vm_state=row.vm_state, task_state=row.task_state))
                continue
            plan = self._plan_for(row, record, facts, evacuation)
            if starts_guest(plan.decision):
                try:
                    plan.order = start_order(row.metadata)
                except PolicyValueError as error:
                    failures.append(InstanceResult(row.key, plan.decision, outcome=Outcome.FAILED,
                                                   error=f"bad instance metadata: {error}; set it right (openstack "
                                                   "server set --property KEY=VALUE) or unset it",
                                                   vm_state=row.vm_state, task_state=row.task_state))
                    continue
            plans.append(plan)
            if domain is not None and row.key not in rows:
                decision = plans[-1].decision
                names = ", ".join(a.name for a in decision.actions) or "none"
                reports.append(DomainReport(row.key, domain.name, names, decision.reason))
        return plans, failures, reports

    def _plan_for(self, row: InstanceRow, record: dict, facts: Facts, evacuation: MigrationRow | None) -> Plan:
        return Plan(row.key, self.machine.decide(facts), writable=facts.owned and not facts.deleted,
                    evacuation_id=evacuation.id if evacuation else None,
                    stored_uuid=row.uuid if row.uuid != row.key else None, updated_at=row.updated_at, record=record)

    def _execute_all(self, plans: list[Plan]) -> list[InstanceResult]:
        if self.settings.dry_run:
            return [self._planned(plan) for plan in plans]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self._execute_and_report, plans))

    def _execute_tiers(self, plans: list[Plan]) -> tuple[list[InstanceResult], list[TierReport]]:
        """The instances that start a guest, tier by tier (recovery/run/tiers.py)."""
        tiers = tiers_of(plans)
        if self.settings.dry_run:
            return [self._planned(plan) for plan in plans], [TierReport(t.priority, len(t.plans)) for t in tiers]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return run_tiers(tiers, pool, self._execute_and_report, self.ports, self.settings.tier_timeout)

    def _execute_and_report(self, plan: Plan) -> InstanceResult:
        result = self._execute_one(plan)
        result.order = plan.order
        if self.on_result is not None:
            self.on_result(result)
        return result

    @staticmethod
    def _planned(plan: Plan) -> InstanceResult:
        decision = plan.decision
        return InstanceResult(plan.uuid, decision, [ActionResult(a, Outcome.SKIPPED) for a in decision.actions],
                              outcome=Outcome.HANDED_OFF if decision.hands_off else Outcome.SKIPPED,
                              vm_state=decision.facts.vm_state,
                              task_state=record_task_state(decision.facts.task_state), order=plan.order)

    def _execute_one(self, plan: Plan) -> InstanceResult:
        if _nothing_to_do(plan.decision):
            return _untouched(plan)
        try:
            try:
                return execute(self.ports, plan)
            except LostRace:
                fresh = self._redecide(plan)
                if fresh is None:
                    return InstanceResult(plan.uuid, plan.decision, outcome=Outcome.CONFLICT,
                                          error="the record vanished or went bad between decision and claim")
                return self._held_back(fresh) or execute(self.ports, fresh)
        except LostRace as race:
            return InstanceResult(plan.uuid, plan.decision, outcome=Outcome.CONFLICT, error=str(race))
        except Exception as error:  # one instance's failure never stops the others
            return InstanceResult(plan.uuid, plan.decision, outcome=Outcome.FAILED,
                                  error=f"{type(error).__name__}: {error}")

    def _redecide(self, plan: Plan) -> Plan | None:
        """Facts fresh from this one instance's row and domain, for one more decision after a lost claim;
        its journal entry then tells the new decision."""
        db = self.ports.database
        found = live_record(db, self.ports.hypervisor, plan.uuid, self.settings.host, self.host_down_seconds,
                            self.settings.nova_cell)
        if found is None:
            return None
        record, row = found
        try:
            facts = facts_from_record(record, self.settings.host, self.settings.options)
        except FactsError:
            return None
        evacuation = db.evacuation_of(self.settings.host, row.uuid) if facts.evacuation_status else None
        fresh = self._plan_for(row, record, facts, evacuation)
        fresh.journal_id, fresh.order = plan.journal_id, plan.order
        if fresh.journal_id is not None:
            with self.ports.journal_database.transaction(f"journal the new decision for {plan.uuid}") as conn:
                journals.update_entry(conn, fresh.journal_id, self._decision_entry(fresh.decision))
        return fresh

    def _held_back(self, plan: Plan) -> InstanceResult | None:
        """A decision made again after a lost claim passes the screen too (`run --plan`: the row changed
        since the plan); one held back is journaled as such."""
        held = self.screen.recheck(plan) if self.screen is not None else None
        if held is not None and plan.journal_id is not None:
            with self.ports.journal_database.transaction(f"journal why {plan.uuid} was held back") as conn:
                journals.update_entry(conn, plan.journal_id, final_entry(held))
        return held

    def _decision_entry(self, decision: Decision) -> dict:
        """The journal's account of a decision. Equal facts share one (its values the same objects),
        so that the journal encodes it once for all the instances that share it."""
        entry = self._decision_entries.get(decision.facts)
        if entry is None:
            entry = self._decision_entries[decision.facts] = {
                "start_state": decision.start_state,
                "facts": decision.facts._asdict(),
                "path": path_json(decision),
                "considered": considerations_json(self.machine.consider(decision.facts)),
                "actions": [{**action_json(a), "outcome": Outcome.PENDING, "error": None} for a in decision.actions],
                "reason": decision.reason,
            }
        return entry

    def _entries(self, plans: list[Plan], failures: list[InstanceResult], by_domain: dict[str, DomainInfo]):
        """Every decision as journaled before anything is executed: pending where there is work."""
        for plan in plans:
            entry = {"instance_uuid": plan.uuid, **self._decision_entry(plan.decision)}
            if _nothing_to_do(plan.decision):
                domain = by_domain.get(plan.uuid)
                entry |= final_entry(_untouched(plan, domain.power_state.label if domain else "nostate"))
            else:
                entry |= {"outcome": Outcome.PENDING}
            yield entry
        for failure in failures:
            entry = {"instance_uuid": failure.uuid, "reason": failure.error, "path": [], "considered": []}
            if failure.decision is not None:  # decided but held back by the screen: nothing done
                entry |= self._decision_entry(failure.decision)
            yield entry | final_entry(failure)


def _nothing_to_do(decision: Decision) -> bool:
    facts = decision.facts
    return not decision.actions and not power_to_record(decision) and (decision.vm_state, decision.task_state) == (
        facts.vm_state, record_task_state(facts.task_state))


def _untouched(plan: Plan, power: str | None = None) -> InstanceResult:
    facts = plan.decision.facts
    return InstanceResult(plan.uuid, plan.decision, outcome=succeeded(plan.decision, Outcome.OK),
                          vm_state=facts.vm_state,
                          task_state=record_task_state(facts.task_state), power_state=power)

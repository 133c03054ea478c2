"""The host boot routine: preflight, identity, lock, bulk load, decide, journal, execute, report.

Mirrors nova-compute's start: init_host (driver init, evacuation cleanup, every instance through
the machine), then pre_start_hook (compute node record), then post_start_hook (service record).
A real run holds the host's lock for all of it and journals as it goes; a dry run takes no lock
and writes nothing.
"""

import logging
import time

from recovery.adapters.hypervisor import DomainInfo, HostCapacity, Hypervisor
from recovery.adapters.network import NetworkHook
from recovery.core.errors import RecoveryError
from recovery.core.machine import RecoveryMachine
from recovery.core.settings import RunSettings
from recovery.db import Database
from recovery.db import journal as journals
from recovery.db.lock import host_lock
from recovery.run.decisions import DecisionScreen, decide_host, evacuation_warnings
from recovery.run.devices import DeviceCheck
from recovery.run.execute import Assignment, Halt, InstanceResult, Ports
from recovery.run.execution import Execution, RunWatch, nothing_to_do, untouched
from recovery.run.finish import RunResult, apply_network, close_run, power_now
from recovery.run.gather import gather
from recovery.run.journal_entries import DecisionEntries, run_options

log = logging.getLogger(__name__)


class Refused(RecoveryError):
    """Preflight or identity check refused the run; nothing was changed."""


def check_identity(db: Database, settings: RunSettings, domains: list[DomainInfo]) -> None:
    """Refuse to act on a renamed host or on a database that does not know this host."""
    node = db.find_compute_node_by_hypervisor_hostname(settings.node)
    if node is not None and node.host != settings.host:
        recorded = {row.host for row in db.load_instances_by_uuid(d.uuid for d in domains).values()}
        raise Refused(
            f"compute node {settings.node!r} belongs to host {node.host!r}, not {settings.host!r}: the host may "
            f"have been renamed; {rename_fix(node.host, node.uuid, settings.host, recorded)}"
        )
    if node is None and (recorded := db.node_names_of(settings.host)):
        names = ", ".join(map(repr, recorded))
        raise Refused(
            f"host {settings.host!r} has compute node {names}, not {settings.node!r}: acting as {settings.node!r} "
            f"would give the host a second compute node; run with --node {recorded[0]} or without --node, or "
            "delete the stale compute_nodes row"
        )
    if domains and not db.service_exists(settings.host):
        raise Refused(
            f"the database has no service record for host {settings.host!r} but the hypervisor already has "
            f"{len(domains)} domain(s): wrong database (--db) or wrong --host?"
        )


def node_name(db: Database, host: str, given: str | None, hypervisor: Hypervisor) -> str:
    """--node, else the host's one recorded compute node, else libvirt's hostname: a libvirt hostname
    that changed (a short name become a FQDN) must not give the host a second compute node."""
    if given is not None:
        return given
    hostname, recorded = hypervisor.hostname(), db.node_names_of(host)
    if len(recorded) == 1 and recorded[0] != hostname:
        log.info("compute node %r: recorded for host %s (libvirt's hostname is %r)", recorded[0], host, hostname)
        return recorded[0]
    return hostname


def rename_fix(old: str | None, node_uuid: str | None, new: str, instance_hosts: set[str | None]) -> str:
    """The fix that works when followed: the old name if this host's guests are still recorded under it
    (as Nova advises: set the host back), else the records of the node and service renamed to the new one."""
    if old in instance_hosts:
        return f"this host's guests are recorded on {old!r}: run with --host {old}"
    return (f"if {new!r} is its name now, rename the node and service records with "
            f"`UPDATE compute_nodes SET host = '{new}' WHERE uuid = '{node_uuid}' AND deleted = 0; "
            f"UPDATE services SET host = '{new}' WHERE host = '{old}' AND topic = 'compute' AND deleted = 0;` "
            "and run again")


class HostBoot:
    """One run of the routine over an open hypervisor and database."""

    def __init__(self, machine: RecoveryMachine, hypervisor: Hypervisor, database: Database,
                 settings: RunSettings, network: NetworkHook | None = None,
                 watch: RunWatch | None = None, journal: Database | None = None,
                 screen: DecisionScreen | None = None):
        """`journal`: the database the run is journaled in, when not `database` (a Nova cell database);
        `watch`: told the number of instances to execute, then each one's result (the progress bar)."""
        self.machine = machine
        self.screen = screen
        self.watch = watch
        self.devices = DeviceCheck(hypervisor)
        """The device proof of the guests this run starts (docs/devices.md)."""
        self.ports = Ports(hypervisor, database, network or NetworkHook(), settings.stop_timeout, Halt(), journal,
                           repair_devices=self.devices.repair)
        self.settings = settings
        self.entries = DecisionEntries(machine)

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
            with host_lock(db, settings.host, settings.lock_timeout) as lease:  # in the records' database
                self.ports.lease = lease  # verified before each instance's first action
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
        ports, settings = self.ports, self.settings
        recheck = settings.recheck
        gathered = gather(ports.database, ports.hypervisor, settings.host, domains=domains,
                          nova_cell=settings.nova_cell) if recheck is None else (
            gather(ports.database, ports.hypervisor, settings.host, only=recheck.uuids,
                   down_seconds=recheck.down_seconds, nova_cell=settings.nova_cell))
        run_id = None
        if not settings.dry_run:
            run_id = journals.start_run(ports.journal_database, settings.host,
                                        run_options(settings, gathered.down_seconds))
        decided = decide_host(self.machine, settings, gathered)
        assignments, failures = decided.assignments, decided.failures
        if settings.device_proof:  # unproved, no guest has a definition to compare after its start either
            self.devices.prove_assignments(assignments, self.machine)
        if self.screen is not None:
            assignments, held_back = self.screen.screen(assignments, failures)
            failures += held_back
        warnings += evacuation_warnings(settings, gathered)
        if run_id is not None:
            self._journal_decisions(run_id, assignments, failures, gathered.domains)
        execution = Execution(self.machine, ports, settings, self.entries, gathered.down_seconds, self.devices,
                              self.screen, self.watch)
        network_error = None
        try:
            executed, tiers = execution.run(assignments)
        finally:
            if not settings.dry_run:
                network_error = apply_network(ports.network)
        warnings += self.devices.warnings()
        position = {assignment.uuid: number for number, assignment in enumerate(assignments)}
        results = list(failures) + sorted(executed, key=lambda r: position[r.uuid])
        power = power_now(ports.hypervisor, settings.dry_run, results, gathered.domains)
        result = RunResult(run_id, settings, results, decided.domains, power, warnings, network_error=network_error,
                           halted=ports.halt.reason, host_down_seconds=gathered.down_seconds, tiers=tiers,
                           names=gathered.names(), interrupted_by=ports.halt.signal)
        if run_id is not None:
            close_run(ports, result, capacity)
        return result

    def _journal_decisions(self, run_id: int, assignments: list[Assignment], failures: list[InstanceResult],
                           by_domain: dict[str, DomainInfo]) -> None:
        """Every decision journaled before anything is executed; each assignment learns its entry's id."""
        decided = ((p.uuid, p.decision, self._untouched(p, by_domain) if nothing_to_do(p.decision) else None)
                   for p in assignments)
        domain_names = {uuid: domain.name for uuid, domain in by_domain.items()}
        ids = journals.insert_entries(self.ports.journal_database, run_id,
                                      self.entries.before_execution(decided, failures, domain_names))
        for assignment in assignments:
            assignment.journal_id = ids.get(assignment.uuid)

    def _untouched(self, assignment: Assignment, by_domain: dict[str, DomainInfo]) -> InstanceResult:
        """The final result of an assignment with nothing to do, journaled before anything is executed (a guest a
        missing resource keeps off is blocked)."""
        domain = by_domain.get(assignment.uuid)
        result = untouched(assignment, domain.power_state.label if domain else "nostate")
        self.devices.settle(assignment, result, self.settings.dry_run)
        return result

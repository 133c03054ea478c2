"""The end of a run: the deferred network apply, the power states reported, the result and its exit
code, then the host's records (nova-compute's pre_start_hook and post_start_hook) and the run's end
in the journal.
"""

from collections import Counter
from dataclasses import dataclass, field

from recovery.adapters.hypervisor import DomainInfo, HostCapacity, Hypervisor, HypervisorError
from recovery.adapters.network import NetworkHook
from recovery.core.exit_codes import EXIT_FAILED, EXIT_OK, SIGNAL_EXIT_BASE
from recovery.core.outcomes import RUN_OUTCOMES, Outcome
from recovery.core.settings import RunSettings
from recovery.db import Database, DatabaseError
from recovery.db import journal as journals
from recovery.db.lock import LeaseLost
from recovery.run.decisions import DomainReport
from recovery.run.execute import InstanceResult, Ports
from recovery.run.tiers import TierReport


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
    names: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    """Instance uuid → its display name and its libvirt domain's name (HostFacts.names)."""
    interrupted_by: int | None = None
    """The signal that stopped the run (it then exits 128 + its number), if one did."""

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(r.outcome for r in self.instances)
        outcomes = (*RUN_OUTCOMES, Outcome.HANDED_OFF) if self.settings.nova_cell else RUN_OUTCOMES  # else none
        return {"instances": len(self.instances), **{o: counts[o] for o in outcomes},
                "domains_reported": len(self.domains)}

    @property
    def exit_code(self) -> int:
        if self.interrupted_by is not None:
            return SIGNAL_EXIT_BASE + self.interrupted_by
        failed = self.network_error is not None or self.halted is not None
        failed = failed or any(r.outcome not in (Outcome.OK, Outcome.SKIPPED, Outcome.HANDED_OFF)
                               for r in self.instances)
        return EXIT_FAILED if failed else EXIT_OK


def apply_network(network: NetworkHook) -> str | None:
    """Apply the deferred network rules once; a failure is reported, not raised, so the run still finishes."""
    try:
        network.apply()
    except Exception as error:  # reported in the run's result and exit code
        return str(error)
    return None


def power_now(hypervisor: Hypervisor, dry_run: bool, results: list[InstanceResult],
              by_domain: dict[str, DomainInfo]) -> dict[str, str]:
    """Power states for the report: re-read in one call after a real run (a dry run changed none);
    from before the run if libvirt is gone."""
    if dry_run:
        return {uuid: d.power_state.label for uuid, d in by_domain.items()}
    try:
        return {d.uuid.lower(): d.power_state.label for d in hypervisor.domains()}
    except HypervisorError:
        known = {uuid: d.power_state.label for uuid, d in by_domain.items()}
        return known | {r.uuid: r.power_state for r in results if r.power_state is not None}


def close_run(ports: Ports, result: RunResult, capacity: HostCapacity | None) -> None:
    """pre_start_hook and post_start_hook, then the run's end in the journal. A database that
    failed during the run is tried once more: if it is back, the journal is finished."""
    try:
        if capacity is not None and not ports.halt.database_failed and _lease_holds(ports):
            result.warnings += update_host_records(ports.database, result.settings, capacity)
        journals.finish_run(ports.journal_database, result.run_id, result.exit_code, result.totals,
                            interrupted=result.interrupted_by is not None)
    except DatabaseError as error:
        result.halted = result.halted or str(error)
        result.warnings.append(f"the run's journal could not be finished ({error}); the host's next run "
                               "marks it interrupted")


def _lease_holds(ports: Ports) -> bool:
    """A run that lost the host lock leaves the host's records to the run that may hold it now."""
    try:
        ports.lease.verify()
    except LeaseLost:
        return False
    return True


def update_host_records(db: Database, settings: RunSettings, capacity: HostCapacity) -> list[str]:
    """pre_start_hook and post_start_hook: the compute node's capacity and usage, and the service's
    heartbeat. On a Nova cell database a missing record is not created (warned instead): Nova's
    nova-compute creates both, with what compute-recover does not know (the hypervisor's type,
    version and CPU description; the service's uuid and object version)."""
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

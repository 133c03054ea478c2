"""Gathering one host's facts: its instances (with their system and user metadata), their domains,
the evacuations away from it, and how long its service was down, read in bulk, so that `run`,
`plan`, `explain --live`, `diff --db` and the agent's power sync all decide from facts read the
same way.

Read in a fixed number of statements whatever the instance count (recovery.db.store.load_host,
and one bulk read of the records of domains and evacuations the host does not own). With `only`,
just the named instances are read, wherever they live: for `explain --live` and for deciding one
instance again after a lost claim.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum

from recovery.adapters.hypervisor import DomainInfo, Hypervisor
from recovery.core.servicegroup import host_down_seconds
from recovery.db import Database, InstanceRow, MigrationRow
from recovery.db.services import list_services
from recovery.db.store import utcnow
from states.enums import PowerState


class Unread(Enum):
    """The default of `gather`'s `down_seconds`: not known yet, so read from the host's service."""

    DOWNTIME = "read"


@dataclass(frozen=True)
class HostFacts:
    """What one host's instances are decided from; every mapping is keyed by canonical (lower-case) uuid."""

    host: str
    instances: dict[str, InstanceRow]
    """The host's live instances (not marked deleted), in id order."""
    elsewhere: dict[str, InstanceRow]
    """Records of the domains and evacuations that are not live instances of the host (another
    host's, or deleted); a domain in neither mapping is unknown."""
    domains: dict[str, DomainInfo]
    evacuations: dict[str, MigrationRow]
    """Evacuations away from this host whose local copy may still need cleaning up."""
    down_seconds: float | None
    """How long the host was down, from its service's last heartbeat; None: unknown."""
    nova_cell: bool = False
    """The records are Nova's cell database: each record says so (`nova_cell`), for the division of labour."""
    network_info: Mapping[str, str] = field(default_factory=dict)
    """On Nova's cell database, the network info cache of each instance that names a readiness address:
    where the guest's addresses are there (recovery/core/network_info.py)."""

    def row(self, uuid: str) -> InstanceRow | None:
        return self.instances.get(uuid) or self.elsewhere.get(uuid)

    def names(self) -> dict[str, tuple[str | None, str | None]]:
        """Instance uuid → the names an operator knows it by: its display name (`openstack server list`'s)
        and its libvirt domain's (`virsh list`'s); None where not known."""
        known = {uuid: (None, domain.name) for uuid, domain in self.domains.items()}
        rows = {**self.elsewhere, **self.instances}
        return known | {uuid: (row.display_name, known.get(uuid, (None, None))[1]) for uuid, row in rows.items()}

    def record(self, row: InstanceRow) -> dict:
        """The instance's decide input record, with its domain's power state and its evacuation."""
        domain = self.domains.get(row.key)
        return instance_record(row, domain.power_state if domain else None, self.evacuations.get(row.key),
                               self.down_seconds, self.nova_cell)


def gather(db: Database, hypervisor: Hypervisor | None, host: str, *, only: Collection[str] | None = None,
           domains: list[DomainInfo] | None = None,
           down_seconds: float | Unread | None = Unread.DOWNTIME, nova_cell: bool = False) -> HostFacts:
    """The host's facts: the domains listed (unless given; none without a hypervisor), then the records.
    `only`: just these instances, each domain's power state read alone (libvirt's NOSTATE then counts as
    no domain; the domain's name is not read).
    `down_seconds`: the downtime already read (deciding again within a run keeps the run's).
    `nova_cell`: the records are Nova's cell database (recovery.db.schema.is_nova_cell)."""
    if only is not None:
        return _gather_only(db, hypervisor, host, only, down_seconds, nova_cell)
    listed = domains if domains is not None else hypervisor.domains() if hypervisor is not None else []
    by_domain = {d.uuid.lower(): d for d in listed}
    snapshot = db.load_host(host, nova_cell=nova_cell)
    if isinstance(down_seconds, Unread):
        down_seconds = host_down_seconds(snapshot.service, utcnow())
    evacuations = {m.instance_uuid.lower(): m for m in snapshot.evacuations if m.instance_uuid}
    rows = {row.key: row for row in snapshot.instances}
    elsewhere = db.load_instances_by_uuid({u for u in (*by_domain, *evacuations) if u not in rows})
    return HostFacts(host, rows, elsewhere, by_domain, evacuations, down_seconds, nova_cell, snapshot.network_info)


def _gather_only(db: Database, hypervisor: Hypervisor | None, host: str, uuids: Collection[str],
                 down_seconds: float | Unread | None, nova_cell: bool) -> HostFacts:
    rows = db.load_instances_by_uuid(uuids)
    domains, evacuations = {}, {}
    for uuid, row in rows.items():
        power = hypervisor.power_state(uuid) if hypervisor is not None else PowerState.NOSTATE
        if power is not PowerState.NOSTATE:
            domains[uuid] = DomainInfo(uuid, "", power)  # its name is not read: only its power state counts
        evacuation = db.evacuation_of(host, row.uuid)
        if evacuation is not None:
            evacuations[uuid] = evacuation
    if isinstance(down_seconds, Unread):
        services = list_services(db, host, "nova-compute")
        down_seconds = host_down_seconds(services[0] if services else None, utcnow())
    ours = {uuid: row for uuid, row in rows.items() if row.host == host and not row.deleted}
    return HostFacts(host, ours, {u: r for u, r in rows.items() if u not in ours}, domains, evacuations,
                     down_seconds, nova_cell, db.load_network_info(rows) if nova_cell else {})


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

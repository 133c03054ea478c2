"""The tables: Nova's cell-database tables (the columns compute-recover shares with Nova), our own
run journal, and the plain frozen rows every store operation hands back.

Callers never hold ORM state, so nothing can trigger a lazy per-instance read. vm_state and
task_state stay plain strings: a database may hold values outside Nova's enumerations, and the
caller validates them so one bad row gets a clear error while the rest still recover.
Timestamps are naive UTC, as Nova stores them. The schema itself is created and changed only by
the Alembic migrations in recovery/migrations (`compute-recover db upgrade`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypedDict

from sqlalchemy import DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# --- Nova's tables (the shared columns) --------------------------------------------------------


class Instance(SQLModel, table=True):
    __tablename__ = "instances"

    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(max_length=36, unique=True)
    host: str | None = Field(default=None, max_length=255, index=True)
    node: str | None = Field(default=None, max_length=255)
    display_name: str | None = Field(default=None, max_length=255)
    project_id: str | None = Field(default=None, max_length=255, index=True)
    """The tenant (Keystone project) the instance belongs to: its `recover:priority` orders only
    the guests of the same project."""
    vm_state: str | None = Field(default=None, max_length=255)
    task_state: str | None = Field(default=None, max_length=255)
    power_state: int | None = None
    deleted: int = 0
    """0 while live; Nova marks a deleted row with its own id."""
    created_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    """Set on every write, as Nova does; compute-recover's claims compare it, so a claim is lost
    to any writer that touched the row since it was read."""
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime)
    vcpus: int | None = None
    memory_mb: int | None = None
    root_gb: int | None = None
    launched_at: datetime | None = Field(default=None, sa_type=DateTime)


class InstanceSystemMetadata(SQLModel, table=True):
    __tablename__ = "instance_system_metadata"

    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str = Field(max_length=36, index=True)
    key: str = Field(max_length=255)
    value: str | None = Field(default=None, max_length=255)
    deleted: int = 0


class InstanceMetadata(SQLModel, table=True):
    """The user's metadata (`openstack server set --property`), where the `recover:*` policy keys live."""

    __tablename__ = "instance_metadata"

    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str = Field(max_length=36, index=True)
    key: str = Field(max_length=255)
    value: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted: int = 0


class Migration(SQLModel, table=True):
    __tablename__ = "migrations"

    id: int | None = Field(default=None, primary_key=True)
    instance_uuid: str | None = Field(default=None, max_length=36, index=True)
    source_compute: str | None = Field(default=None, max_length=255, index=True)
    dest_compute: str | None = Field(default=None, max_length=255)
    source_node: str | None = Field(default=None, max_length=255)
    dest_node: str | None = Field(default=None, max_length=255)
    migration_type: str | None = Field(default=None, max_length=255)
    status: str | None = Field(default=None, max_length=255)
    created_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted: int = 0


class ComputeNode(SQLModel, table=True):
    __tablename__ = "compute_nodes"
    __table_args__ = (
        UniqueConstraint("host", "hypervisor_hostname", "deleted",
                         name="uniq_compute_nodes0host0hypervisor_hostname0deleted"),
    )

    id: int | None = Field(default=None, primary_key=True)
    uuid: str | None = Field(default=None, max_length=36, unique=True)
    host: str | None = Field(default=None, max_length=255, index=True)
    hypervisor_hostname: str | None = Field(default=None, max_length=255)
    vcpus: int = 0
    memory_mb: int = 0
    local_gb: int = 0
    vcpus_used: int = 0
    memory_mb_used: int = 0
    local_gb_used: int = 0
    running_vms: int | None = None
    free_ram_mb: int | None = None
    free_disk_gb: int | None = None
    disk_available_least: int | None = None
    """Written with the used amounts, from the same figures (nova-compute reads them as it starts)."""
    created_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted: int = 0


class Service(SQLModel, table=True):
    __tablename__ = "services"

    id: int | None = Field(default=None, primary_key=True)
    host: str | None = Field(default=None, max_length=255, index=True)
    binary: str | None = Field(default=None, max_length=255)
    topic: str | None = Field(default=None, max_length=255)
    report_count: int = 0
    disabled: bool = False
    disabled_reason: str | None = Field(default=None, max_length=255)
    forced_down: bool = False
    last_seen_up: datetime | None = Field(default=None, sa_type=DateTime)
    created_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted: int = 0


# --- Our own tables ----------------------------------------------------------------------------

RUN_RUNNING, RUN_FINISHED, RUN_INTERRUPTED = "running", "finished", "interrupted"


class RecoveryRun(SQLModel, table=True):
    __tablename__ = "recovery_runs"

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255, index=True)
    status: str = Field(default=RUN_RUNNING, max_length=16)
    """running, finished, or interrupted (a run that never finished: marked by the host's next run)."""
    pid: int | None = None
    machine: str | None = Field(default=None, max_length=255)
    """Where the run's process runs: with pid and started_at, names the holder of the host lock."""
    started_at: datetime = Field(sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    dry_run: bool
    options: str = Field(sa_type=Text)
    """JSON object of the options the run was started with."""
    exit_code: int | None = None
    totals: str | None = Field(default=None, sa_type=Text)
    """JSON object of outcome counts, written when the run finishes."""
    report: str | None = Field(default=None, sa_type=Text)
    """JSON of the report the run printed (its document), written after it (`runs ID` prints it again)."""


class RecoveryJournal(SQLModel, table=True):
    """One instance's (or domain's) decision and what executing it did, within one run."""

    __tablename__ = "recovery_journal"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="recovery_runs.id", index=True)
    instance_uuid: str = Field(max_length=36, index=True)
    domain_name: str | None = Field(default=None, max_length=255)
    """The libvirt domain the run found for the instance (None: no domain, or journaled before it was kept)."""
    start_state: str | None = Field(default=None, max_length=255)
    facts: str | None = Field(default=None, sa_type=Text)
    path: str | None = Field(default=None, sa_type=Text)
    considered: str | None = Field(default=None, sa_type=Text)
    """Every rule the machine evaluated, with whether it matched and why."""
    actions: str | None = Field(default=None, sa_type=Text)
    """Each action with its outcome and error."""
    final_vm_state: str | None = Field(default=None, max_length=255)
    final_task_state: str | None = Field(default=None, max_length=255)
    final_power_state: int | None = None
    outcome: str | None = Field(default=None, max_length=32)
    error: str | None = Field(default=None, sa_type=Text)
    reason: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)


JOURNAL_JSON_FIELDS = ("facts", "path", "considered", "actions")
"""Journal entry keys stored as JSON text and parsed back by `journal_for`."""

JOURNAL_FIELDS = frozenset(
    {"instance_uuid", "domain_name", "start_state", *JOURNAL_JSON_FIELDS, "final_vm_state", "final_task_state"}
    | {"final_power_state", "outcome", "error", "reason"}
)
"""The keys a journal entry may carry; the run id and creation time are the store's."""


# --- Plain rows handed to callers --------------------------------------------------------------


@dataclass(frozen=True)
class InstanceRow:
    uuid: str
    """As stored; compare with `key`, never with this."""
    host: str | None
    node: str | None
    display_name: str | None
    vm_state: str | None
    task_state: str | None
    power_state: int | None
    deleted: bool
    vcpus: int | None
    memory_mb: int | None
    root_gb: int | None
    updated_at: datetime | None = None
    project_id: str | None = None
    """Its tenant: start order tiers are per project."""
    system_metadata: dict[str, str | None] = field(default_factory=dict)
    """Live system metadata by key, e.g. `old_vm_state` for a resize revert."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Live user metadata by key, e.g. `recover:resume` (docs/recovery-policy.md)."""

    @property
    def key(self) -> str:
        """The uuid in canonical lower case, as libvirt reports it: uuids are compared by this."""
        return self.uuid.lower()


@dataclass(frozen=True)
class MigrationRow:
    id: int
    instance_uuid: str | None
    source_compute: str | None
    dest_compute: str | None
    source_node: str | None
    dest_node: str | None
    migration_type: str | None
    status: str | None


@dataclass(frozen=True)
class ComputeNodeRow:
    id: int
    uuid: str | None
    host: str | None
    hypervisor_hostname: str | None
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int
    memory_mb_used: int
    local_gb_used: int
    running_vms: int | None
    free_ram_mb: int | None = None
    free_disk_gb: int | None = None
    disk_available_least: int | None = None


@dataclass(frozen=True)
class ServiceRow:
    id: int
    host: str | None
    binary: str | None
    topic: str | None
    report_count: int
    disabled: bool
    disabled_reason: str | None
    forced_down: bool
    last_seen_up: datetime | None
    updated_at: datetime | None
    created_at: datetime | None = None
    """With last_seen_up and updated_at, what Nova's servicegroup check reads as the last heartbeat."""
    unreadable: tuple[str, ...] = ()
    """The time columns whose stored value is no naive timestamp (text in SQLite that does not
    parse, or carries a UTC offset): held as None here, and a heartbeat read from one is unknown."""


@dataclass(frozen=True)
class HostSnapshot:
    """Everything the boot routine reads about one host, loaded in a fixed number of queries."""

    host: str
    instances: tuple[InstanceRow, ...]
    """The host's instances that are not marked deleted, in id order."""
    evacuations: tuple[MigrationRow, ...]
    """Evacuations away from this host whose local copy may still need cleaning up."""
    compute_nodes: tuple[ComputeNodeRow, ...]
    service: ServiceRow | None
    """The host's nova-compute service record, if it has one."""
    network_info: Mapping[str, str] = field(default_factory=dict)
    """Nova's network info cache (its text, bounded) of each instance that names a readiness address, by
    canonical uuid: on Nova's cell database only (recovery.db.store.load_host)."""


class InstanceChanges(TypedDict, total=False):
    """What a compare-and-swap may write to an instance."""

    vm_state: str | None
    task_state: str | None
    power_state: int | None
    mark_deleted: bool

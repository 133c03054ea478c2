"""The database layer: Nova's cell-database tables, our run journal, and bulk store operations.

Tables use Nova's table and column names for the part we share, so a read-only plan can later
run against a real Nova database. Every operation is a fixed number of SQL statements however
many instances a host has, and returns plain frozen dataclasses: callers never hold ORM state
and can never trigger a lazy per-instance read.

vm_state and task_state stay plain strings here: a database may hold values outside Nova's
enumerations, and the caller validates them so one bad row gets a clear error while the rest
still recover. Timestamps are naive UTC, as Nova stores them.
"""

import itertools
import json
import os
import re
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, TypedDict, TypeVar, Unpack

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    String,
    Text,
    Update,
    bindparam,
    cast,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from states.enums import EVACUATION_PENDING_STATUSES, VmState

DB_ENV = "COMPUTE_RECOVER_DB"
"""Environment variable naming the database: an SQLAlchemy URL or a path to an SQLite file."""

DEFAULT_DB_PATH = "compute-recover.sqlite"
"""SQLite file (relative to the working directory) used when neither --db nor $COMPUTE_RECOVER_DB
names a database, so the demo needs no server."""

LIVE_MIGRATION_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
"""The statuses of Nova's MigrationList.get_in_progress_by_instance."""

IN_CHUNK = 500
"""Most values bound into one IN list; keeps far below every backend's parameter limit."""

JOURNAL_BATCH = 1_000
"""Journal rows per bulk insert: a 100,000-instance run never holds them all serialized."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite writer waits for another writer's lock before failing."""

PG_CONNECT_TIMEOUT_S = 10
"""How long to wait for a PostgreSQL server before calling it unreachable."""

_FIX = f"check --db / {DB_ENV}"

_FREES_RESOURCES = (VmState.DELETED.value, VmState.SHELVED_OFFLOADED.value)
"""vm_states whose instances Nova's resource tracker no longer counts as using the host."""


# --- Nova's tables (the shared columns) --------------------------------------------------------


class Instance(SQLModel, table=True):
    __tablename__ = "instances"

    id: int | None = Field(default=None, primary_key=True)
    uuid: str = Field(max_length=36, unique=True)
    host: str | None = Field(default=None, max_length=255, index=True)
    node: str | None = Field(default=None, max_length=255)
    display_name: str | None = Field(default=None, max_length=255)
    vm_state: str | None = Field(default=None, max_length=255)
    task_state: str | None = Field(default=None, max_length=255)
    power_state: int | None = None
    deleted: int = 0
    """0 while live; Nova marks a deleted row with its own id."""
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime)
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
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
    deleted: int = 0


class ComputeNode(SQLModel, table=True):
    __tablename__ = "compute_nodes"

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
    updated_at: datetime | None = Field(default=None, sa_type=DateTime)
    deleted: int = 0


# --- Our own tables ----------------------------------------------------------------------------


class RecoveryRun(SQLModel, table=True):
    __tablename__ = "recovery_runs"

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255)
    started_at: datetime = Field(sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    dry_run: bool
    options: str = Field(sa_type=Text)
    """JSON object of the options the run was started with."""
    exit_code: int | None = None
    totals: str | None = Field(default=None, sa_type=Text)
    """JSON object of outcome counts, written when the run finishes."""


class RecoveryJournal(SQLModel, table=True):
    """One instance's (or domain's) decision and what executing it did, within one run."""

    __tablename__ = "recovery_journal"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="recovery_runs.id", index=True)
    instance_uuid: str = Field(max_length=36, index=True)
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


JOURNAL_JSON_FIELDS = ("facts", "path", "considered", "actions")
"""Journal entry keys stored as JSON text and parsed back by `journal_for`."""

JOURNAL_FIELDS = frozenset(
    {"instance_uuid", "start_state", *JOURNAL_JSON_FIELDS, "final_vm_state", "final_task_state"}
    | {"final_power_state", "outcome", "error", "reason"}
)
"""The keys a journal entry may carry; the run id and creation time are the store's."""


# --- Plain rows handed to callers --------------------------------------------------------------


@dataclass(frozen=True)
class InstanceRow:
    uuid: str
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
    system_metadata: dict[str, str | None] = field(default_factory=dict)
    """Live system metadata by key, e.g. `old_vm_state` for a resize revert."""


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


class InstanceChanges(TypedDict, total=False):
    """What a compare-and-swap may write to an instance."""

    vm_state: str | None
    task_state: str | None
    power_state: int | None
    mark_deleted: bool


@dataclass
class StatementCounter:
    count: int = 0


class DatabaseError(Exception):
    """The database cannot be used; the message is one line, names the masked URL, and says
    what to check."""


# --- Engine ------------------------------------------------------------------------------------


def default_url() -> str:
    """$COMPUTE_RECOVER_DB (a URL, or a path taken as an SQLite file), else DEFAULT_DB_PATH."""
    target = os.environ.get(DB_ENV) or DEFAULT_DB_PATH
    return target if "://" in target else f"sqlite:///{target}"


def open_database(url: str | None = None) -> "Database":
    """Connect, create any missing tables, and fail with one password-free line if we can't."""
    raw = url or default_url()
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseError(_mask_unparsed(f"cannot parse database URL {raw}: {exc} — {_FIX}")) from None
    masked = parsed.render_as_string(hide_password=True)
    engine = None
    try:
        engine = create_engine(parsed, **_engine_options(parsed))
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        SQLModel.metadata.create_all(engine)
    except (SQLAlchemyError, ImportError) as exc:
        if engine is not None:
            engine.dispose()
        where = masked
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            where += f" (file {os.path.abspath(parsed.database)})"  # sqlite:///relative vs sqlite:////absolute
        message = f"cannot open database {where}: {_one_line(exc)} — {_FIX}"
        # Drivers may quote connection parameters, and the password may even be part of one.
        raise DatabaseError(message.replace(parsed.password, "***") if parsed.password else message) from None
    return Database(engine)


def _engine_options(url: URL) -> dict[str, Any]:
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        return {"connect_args": {"connect_timeout": PG_CONNECT_TIMEOUT_S}}
    return {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside a writer; busy_timeout makes concurrent writers queue
    instead of failing, so a small thread pool can execute actions against one file. In WAL
    mode synchronous=NORMAL survives a crash of this process (not of the machine) without an
    fsync per commit, which a run of one commit per instance needs."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _one_line(exc: BaseException) -> str:
    """The driver's own message (not SQLAlchemy's wrapper, which adds the SQL), on one line."""
    text = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def _mask_unparsed(text: str) -> str:
    """Hide a password in text whose URL SQLAlchemy could not parse (greedy: over-masks)."""
    return re.sub(r"(//[^/:@\s]*:).*@", r"\1***@", text)


# --- Store -------------------------------------------------------------------------------------


class Database:
    """A connected database; each operation uses one connection and one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def masked_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def count_statements(self) -> Iterator[StatementCounter]:
        """Count SQL statements sent while the block runs, to prove reads don't grow per instance."""
        counter = StatementCounter()

        def on_execute(*_args: Any) -> None:
            counter.count += 1

        event.listen(self.engine, "before_cursor_execute", on_execute)
        try:
            yield counter
        finally:
            event.remove(self.engine, "before_cursor_execute", on_execute)

    # Reads

    def load_host(self, host: str) -> HostSnapshot:
        """This host's live instances with metadata, pending evacuations away from it, its
        compute nodes and its service: five statements whatever the instance count."""
        on_host = (Instance.host == host) & (Instance.deleted == 0)
        evacuated = (
            _migration_type_is("evacuation")
            & (Migration.source_compute == host)
            & Migration.status.in_(sorted(EVACUATION_PENDING_STATUSES))
            & (Migration.deleted == 0)
        )
        with self.engine.connect() as conn:
            return HostSnapshot(
                host=host,
                instances=tuple(_instances(conn, on_host)),
                evacuations=_rows(conn, MigrationRow, Migration, evacuated),
                compute_nodes=_rows(conn, ComputeNodeRow, ComputeNode, _node_of(host)),
                service=next(iter(_rows(conn, ServiceRow, Service, _compute_service(host))), None),
            )

    def load_instances_by_uuid(self, uuids: Iterable[str]) -> dict[str, InstanceRow]:
        """Instance records by uuid wherever they live, deleted ones included, so a domain can
        be classified as deleted, owned by another host, or unknown (absent from the result)."""
        wanted = sorted(set(uuids))
        found: dict[str, InstanceRow] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                found.update((row.uuid, row) for row in _instances(conn, Instance.uuid.in_(chunk)))
        return found

    def find_compute_node_by_hypervisor_hostname(self, name: str) -> ComputeNodeRow | None:
        """The live compute node for a hypervisor hostname (oldest first), whatever its host:
        a node naming another host means this host was renamed."""
        live = (ComputeNode.hypervisor_hostname == name) & (ComputeNode.deleted == 0)
        with self.engine.connect() as conn:
            return next(iter(_rows(conn, ComputeNodeRow, ComputeNode, live)), None)

    def service_exists(self, host: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(select(Service.id).where(_compute_service(host)).limit(1))
            return found.first() is not None

    # Writes

    def compare_and_swap(
        self,
        uuid: str,
        expect_vm_state: str | None,
        expect_task_state: str | None,
        **changes: Unpack[InstanceChanges],
    ) -> bool:
        """Write `changes` only if the live record still holds the (vm_state, task_state) the
        decision was made from; False means someone else changed it and nothing was written."""
        unknown = changes.keys() - InstanceChanges.__annotations__.keys()
        if unknown:
            raise TypeError(f"compare_and_swap: unknown change(s) {sorted(unknown)}")
        params = {"b_uuid": uuid, "e_vm_state": _plain(expect_vm_state), "e_task_state": _plain(expect_task_state),
                  "b_now": _utcnow()}
        params |= {f"c_{name}": _plain(value) for name, value in changes.items() if name != "mark_deleted"}
        with self.engine.begin() as conn:
            return conn.execute(_cas_statement(frozenset(changes)), params).rowcount == 1

    def set_migration_status(self, migration_id: int, status: str) -> bool:
        """Returns whether the migration record exists (and was updated)."""
        statement = update(Migration).where(Migration.id == migration_id).values(status=status)
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def fail_live_migrations(self, instance_uuid: str) -> int:
        """Set the instance's in-progress live migrations to error, as Nova's _init_instance
        does when it finds the instance still migrating; returns how many there were."""
        statement = (
            update(Migration)
            .where(
                Migration.instance_uuid == instance_uuid,
                _migration_type_is("live-migration"),
                Migration.status.in_(LIVE_MIGRATION_IN_PROGRESS),
                Migration.deleted == 0,
            )
            .values(status="error")
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount

    def upsert_compute_node(
        self, host: str, hypervisor_hostname: str, vcpus: int, memory_mb: int, local_gb: int
    ) -> ComputeNodeRow:
        """Record the host's capacity and, computed in SQL from its live instances, the used
        amounts and running guest count (Nova's pre_start_hook); create the node when missing."""
        counted = (
            (Instance.host == host)
            & (Instance.deleted == 0)
            & or_(Instance.vm_state.is_(None), Instance.vm_state.not_in(_FREES_RESOURCES))
        )

        def total(column: Any) -> Any:
            return select(func.coalesce(func.sum(column), 0)).where(counted).scalar_subquery()

        values = {
            "vcpus": vcpus,
            "memory_mb": memory_mb,
            "local_gb": local_gb,
            "vcpus_used": total(Instance.vcpus),
            "memory_mb_used": total(Instance.memory_mb),
            "local_gb_used": total(Instance.root_gb),
            # Nova's resource tracker counts every instance it tracks here, whatever its power state.
            "running_vms": select(func.count(Instance.id)).where(counted).scalar_subquery(),
        }
        this_node = _node_of(host) & (ComputeNode.hypervisor_hostname == hypervisor_hostname)
        with self.engine.begin() as conn:
            if conn.execute(update(ComputeNode).where(this_node).values(values)).rowcount == 0:
                identity = {"uuid": str(uuidlib.uuid4()), "host": host}
                conn.execute(
                    insert(ComputeNode).values(identity | {"hypervisor_hostname": hypervisor_hostname} | values)
                )
            return _rows(conn, ComputeNodeRow, ComputeNode, this_node)[0]

    def touch_service(self, host: str) -> None:
        """Report this host's nova-compute service alive (report_count + 1), creating the
        record on first start as nova-compute does."""
        now = _utcnow()
        bump = {"report_count": Service.report_count + 1, "updated_at": now, "last_seen_up": now}
        with self.engine.begin() as conn:
            if conn.execute(update(Service).where(_compute_service(host)).values(bump)).rowcount:
                return
            conn.execute(
                insert(Service)
                .values(host=host, binary="nova-compute", topic="compute", report_count=1)
                .values(updated_at=now, last_seen_up=now)
            )

    # Runs and the decision journal

    def start_run(self, host: str, dry_run: bool, options: Mapping[str, Any]) -> int:
        row = {
            "host": host,
            "started_at": _utcnow(),
            "dry_run": dry_run,
            "options": json.dumps(options, sort_keys=True),
        }
        with self.engine.begin() as conn:
            return conn.execute(insert(RecoveryRun).values(row)).inserted_primary_key[0]

    def journal(self, run_id: int, entries: Iterable[Mapping[str, Any]]) -> None:
        """Record a run's decisions in one transaction, inserted in bulk batches so that only one
        batch is held serialized at a time; keys outside JOURNAL_FIELDS are a bug."""
        now = _utcnow()
        rows = (_journal_row(run_id, entry, now) for entry in entries)
        with self.engine.begin() as conn:
            while batch := list(itertools.islice(rows, JOURNAL_BATCH)):
                conn.execute(insert(RecoveryJournal), batch)

    def finish_run(self, run_id: int, exit_code: int, totals: Mapping[str, Any]) -> None:
        values = {"finished_at": _utcnow(), "exit_code": exit_code, "totals": json.dumps(totals)}
        with self.engine.begin() as conn:
            conn.execute(update(RecoveryRun).where(RecoveryRun.id == run_id).values(values))

    def journal_for(self, uuid: str) -> list[dict[str, Any]]:
        """An instance's journal entries, newest run first, each with its run's host,
        started_at and dry_run (as `run_host`, `run_started_at`, `dry_run`)."""
        statement = (
            select(
                *RecoveryJournal.__table__.columns,
                RecoveryRun.host.label("run_host"),
                RecoveryRun.started_at.label("run_started_at"),
                RecoveryRun.dry_run,
            )
            .join(RecoveryRun, RecoveryRun.id == RecoveryJournal.run_id)
            .where(RecoveryJournal.instance_uuid == uuid)
            .order_by(RecoveryRun.started_at.desc(), RecoveryRun.id.desc(), RecoveryJournal.id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        return [{**row, **{name: json.loads(row[name]) for name in JOURNAL_JSON_FIELDS}} for row in rows]


# --- Helpers -----------------------------------------------------------------------------------


_Row = TypeVar("_Row")

_INSTANCE_COLUMNS = [getattr(Instance, f.name) for f in fields(InstanceRow) if f.name != "system_metadata"]


def _instances(conn: Connection, where: ColumnElement[bool]) -> list[InstanceRow]:
    """Instances matching `where` with their live system metadata: two statements."""
    rows = conn.execute(select(*_INSTANCE_COLUMNS).where(where).order_by(Instance.id)).all()
    metadata: dict[str, dict[str, str | None]] = {}
    meta = InstanceSystemMetadata
    for instance_uuid, key, value in conn.execute(
        select(meta.instance_uuid, meta.key, meta.value).where(
            meta.deleted == 0, meta.instance_uuid.in_(select(Instance.uuid).where(where))
        )
    ):
        metadata.setdefault(instance_uuid, {})[key] = value
    return [
        InstanceRow(
            **{
                **row._mapping,
                "deleted": row.deleted != 0,
                "system_metadata": metadata.get(row.uuid, {}),
            }
        )
        for row in rows
    ]


def _rows(conn: Connection, row_type: type[_Row], model: Any, where: ColumnElement[bool]) -> tuple[_Row, ...]:
    """Rows of `model` matching `where` (id order) as `row_type`, whose fields name columns."""
    columns = [getattr(model, f.name) for f in fields(row_type)]
    result = conn.execute(select(*columns).where(where).order_by(model.id))
    return tuple(row_type(**row._mapping) for row in result)


def _migration_type_is(kind: str) -> ColumnElement[bool]:
    """Compare the column's text: in Nova's schema it is an ENUM type, which PostgreSQL will not
    compare with a VARCHAR parameter."""
    return cast(Migration.migration_type, String) == kind


def _node_of(host: str) -> ColumnElement[bool]:
    return (ComputeNode.host == host) & (ComputeNode.deleted == 0)


def _compute_service(host: str) -> ColumnElement[bool]:
    return (Service.host == host) & (Service.binary == "nova-compute") & (Service.deleted == 0)


def _journal_row(run_id: int, entry: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    unknown = entry.keys() - JOURNAL_FIELDS
    if unknown:
        raise ValueError(f"journal entry has unknown field(s) {sorted(unknown)}")
    row = {name: entry.get(name) for name in JOURNAL_FIELDS}
    row |= {name: json.dumps(entry.get(name)) for name in JOURNAL_JSON_FIELDS}
    return row | {"run_id": run_id, "created_at": now}


def _plain(value: Any) -> Any:
    """Enum members as the values they stand for: prepared statements bind them untyped."""
    return value.value if isinstance(value, Enum) else value


@cache
def _cas_statement(changed: frozenset[str]) -> Update:
    """One prepared UPDATE per set of changed columns, so a run of thousands of writes compiles
    a handful of statements instead of one per instance."""
    values: dict[str, Any] = {name: bindparam(f"c_{name}") for name in changed if name != "mark_deleted"}
    values["updated_at"] = bindparam("b_now")
    if "mark_deleted" in changed:
        values |= {"deleted": Instance.id, "deleted_at": bindparam("b_now")}
    return (
        update(Instance)
        .where(
            Instance.uuid == bindparam("b_uuid"),
            Instance.vm_state.is_not_distinct_from(bindparam("e_vm_state")),
            Instance.task_state.is_not_distinct_from(bindparam("e_task_state")),
            Instance.deleted == 0,
        )
        .values(values)
    )


def _utcnow() -> datetime:
    """Naive UTC, as Nova stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)

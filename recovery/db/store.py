"""The store: bulk reads of a host's records and the writes a recovery makes to them.

Every read is a fixed number of SQL statements however many instances a host has. Every write
is one short transaction, and every failure leaves as a `DatabaseFailure` whose one-line message
names the masked URL: the run stops starting actions when it sees one.
"""

import logging
import uuid as uuidlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from typing import Any, TypeVar, Unpack

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    Select,
    String,
    Text,
    Update,
    bindparam,
    case,
    cast,
    column,
    event,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    table,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from recovery.core.bounds import NOVA_INTEGER_MAX
from recovery.core.defaults import DEFAULT_DB_TIMEOUT
from recovery.core.metadata import ADDRESS_KEY
from recovery.core.network_info import MAX_NETWORK_INFO_CHARS
from recovery.db.engine import DatabaseError, describe, enter_wal_mode, leave_wal_mode, one_line
from recovery.db.models import (
    ComputeNode,
    ComputeNodeRow,
    HostSnapshot,
    Instance,
    InstanceChanges,
    InstanceMetadata,
    InstanceRow,
    InstanceSystemMetadata,
    Migration,
    MigrationRow,
    Service,
    ServiceRow,
)
from states.enums import EVACUATION_PENDING_STATUSES, VmState

LIVE_MIGRATION_IN_PROGRESS = ("queued", "preparing", "running", "post-migrating")
"""The statuses of Nova's MigrationList.get_in_progress_by_instance."""

IN_CHUNK = 500
"""Most values bound into one IN list; keeps far below every backend's parameter limit."""

log = logging.getLogger(__name__)

_FREES_RESOURCES = (VmState.DELETED.value, VmState.SHELVED_OFFLOADED.value)
"""vm_states whose instances Nova's resource tracker no longer counts as using the host."""


class DatabaseFailure(DatabaseError):
    """A read or write failed for a reason other than a lost race: connection lost, disk full,
    read-only database, timeout. The run stops starting actions when it sees one."""


@dataclass
class StatementCounter:
    count: int = 0


class ConnectedDatabase:
    """A connected database: its connections and transactions, each failure as one line naming the
    masked URL, and the timestamps a write stamps."""

    def __init__(self, engine: Engine, url: URL, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        self.engine = engine
        self.url = url
        self.read_only = read_only
        self.timeout = timeout
        """How long one call may take (--db-timeout): the engine's limit, and the host lock check's."""
        self._stamp_step = timedelta(seconds=1) if url.get_backend_name() == "mysql" else timedelta(microseconds=1)

    @property
    def masked_url(self) -> str:
        return describe(self.url)

    def close(self) -> None:
        self.engine.dispose()
        if not self.read_only:
            leave_wal_mode(self.url)

    def prepare_for_writes(self) -> None:
        """Before the first write of a run (SQLite: readers may then read beside the writer)."""
        with self._failing("prepare for writing"):
            enter_wal_mode(self.engine)

    @contextmanager
    def transaction(self, what: str) -> Iterator[Connection]:
        """One transaction; any database failure leaves as a one-line DatabaseFailure."""
        with self._failing(what), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self, what: str) -> Iterator[Connection]:
        with self._failing(what), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def connection(self, what: str) -> Iterator[Connection]:
        """A connection held for several transactions (`transaction_on`): one pool checkout for all."""
        with self._failing(what), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction_on(self, conn: Connection, what: str) -> Iterator[Connection]:
        """One transaction on a held connection; failures as `transaction`'s."""
        with self._failing(what), conn.begin():
            yield conn

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as error:
            raise DatabaseFailure(
                f"database {self.masked_url} failed to {what}: {one_line(error, self.url)}"
            ) from None

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

    def has_tables(self, *names: str) -> bool:
        with self.reading("list its tables") as conn:
            present = set(inspect(conn).get_table_names())
        return set(names) <= present

    def next_stamp(self, previous: datetime | None) -> datetime:
        """Now (naive UTC, as Nova stores it), strictly after `previous` at the column's precision
        (MySQL's DATETIME keeps whole seconds): a claim must really change the row it claims."""
        now = utcnow()
        if self._stamp_step >= timedelta(seconds=1):
            now = now.replace(microsecond=0)
        if previous is not None and now <= previous:
            now = previous + self._stamp_step
        return now


class HostReads(ConnectedDatabase):
    """Bulk reads of a host's records: a fixed number of statements however many instances it has."""

    def load_host(self, host: str, nova_cell: bool = False) -> HostSnapshot:
        """This host's live instances with their system and user metadata, pending evacuations away
        from it (read as Nova reads them, soft-deleted ones included), its compute nodes and its
        service (whose last heartbeat tells how long the host was down, read before the run writes a
        new one): five statements whatever the instance count; on Nova's cell database (`nova_cell`) a
        sixth, the network info caches of those that name a readiness address."""
        on_host = (Instance.host == host) & (Instance.deleted == 0)
        with self.reading(f"load host {host}") as conn:
            return HostSnapshot(
                host=host,
                instances=tuple(_instances(conn, on_host)),
                evacuations=_evacuations(conn, _evacuated_from(host)),
                compute_nodes=_rows(conn, ComputeNodeRow, ComputeNode, _node_of(host)),
                service=next(iter(service_rows(conn, _compute_service(host))), None),
                network_info=_network_info(conn, on_host) if nova_cell else {},
            )

    def load_network_info(self, uuids: Iterable[str]) -> dict[str, str]:
        """The network info caches of these instances (Nova's cell database only) that name a readiness
        address, by canonical uuid (for deciding a few instances again)."""
        wanted = sorted({u.lower() for u in uuids})
        found: dict[str, str] = {}
        with self.reading("load network info caches") as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                found |= _network_info(conn, Instance.uuid.in_(chunk + [u.upper() for u in chunk]))
        return found

    def load_instances_by_uuid(self, uuids: Iterable[str]) -> dict[str, InstanceRow]:
        """Instance records by canonical (lower-case) uuid wherever they live, deleted ones
        included, so a domain can be classified as deleted, owned by another host, or unknown
        (absent from the result). A record stored in upper case is found as well."""
        wanted = sorted({u.lower() for u in uuids})
        found: dict[str, InstanceRow] = {}
        with self.reading("load instances by uuid") as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start : start + IN_CHUNK]
                spellings = chunk + [u.upper() for u in chunk]
                found.update((row.key, row) for row in _instances(conn, Instance.uuid.in_(spellings)))
        return found

    def evacuation_of(self, host: str, uuid: str) -> MigrationRow | None:
        """The pending evacuation of one instance away from `host`, if any (for deciding it again)."""
        spellings = [uuid.lower(), uuid.upper(), uuid]
        where = _evacuated_from(host) & Migration.instance_uuid.in_(spellings)
        with self.reading(f"load the evacuation of {uuid}") as conn:
            return next(iter(_evacuations(conn, where)), None)

    def find_compute_node_by_hypervisor_hostname(self, name: str) -> ComputeNodeRow | None:
        """The live compute node for a hypervisor hostname (oldest first), whatever its host:
        a node naming another host means this host was renamed."""
        live = (ComputeNode.hypervisor_hostname == name) & (ComputeNode.deleted == 0)
        with self.reading("find the compute node") as conn:
            return next(iter(_rows(conn, ComputeNodeRow, ComputeNode, live)), None)

    def node_names_of(self, host: str) -> list[str]:
        """The hypervisor hostnames of the host's live compute nodes, oldest first."""
        with self.reading("find the host's compute nodes") as conn:
            found = conn.execute(select(ComputeNode.hypervisor_hostname).where(_node_of(host)).order_by(ComputeNode.id))
            return [name for name in found.scalars() if name is not None]

    def service_exists(self, host: str) -> bool:
        with self.reading("find the service record") as conn:
            found = conn.execute(select(Service.id).where(_compute_service(host)).limit(1))
            return found.first() is not None


class RecoveryWrites(ConnectedDatabase):
    """The writes a recovery makes to instances and migrations: an instance's record only by
    compare-and-swap on the state it was decided from."""

    def compare_and_swap(
        self,
        conn: Connection,
        uuid: str,
        expect: tuple[str | None, str | None, datetime | None],
        stamp: datetime,
        **changes: Unpack[InstanceChanges],
    ) -> bool:
        """Within `conn`'s transaction, write `changes` and `stamp` as updated_at only if the live
        record still holds the (vm_state, task_state, updated_at) it was decided from; False means
        another writer changed it and nothing was written."""
        unknown = changes.keys() - InstanceChanges.__annotations__.keys()
        if unknown:
            raise TypeError(f"compare_and_swap: unknown change(s) {sorted(unknown)}")
        vm_state, task_state, updated_at = expect
        params = {"b_uuid": uuid, "e_vm_state": _plain(vm_state), "e_task_state": _plain(task_state),
                  "e_updated_at": updated_at, "b_now": stamp}
        params |= {f"c_{name}": _plain(value) for name, value in changes.items() if name != "mark_deleted"}
        return conn.execute(_cas_statement(frozenset(changes)), params).rowcount == 1

    def still_holds(self, conn: Connection, uuid: str, expect: tuple[str | None, str | None, datetime | None]) -> bool:
        """Within `conn`'s transaction, whether the live record still holds the (vm_state, task_state,
        updated_at) it was decided from: the claim of an action that changes nothing in the record,
        which therefore writes nothing (not even updated_at: a row whose only change is its
        timestamp is a change that is not there for every client polling with changes-since)."""
        vm_state, task_state, updated_at = expect
        params = {"b_uuid": uuid, "e_vm_state": _plain(vm_state), "e_task_state": _plain(task_state),
                  "e_updated_at": updated_at}
        return conn.execute(_holds_statement(), params).first() is not None

    def set_migration_status(self, migration_id: int, status: str) -> bool:
        """Returns whether the migration record exists (and was updated)."""
        statement = (update(Migration).where(Migration.id == migration_id)
                     .values(status=status, updated_at=utcnow()))
        with self.transaction(f"set migration {migration_id} {status}") as conn:
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
            .values(status="error", updated_at=utcnow())
        )
        with self.transaction(f"fail the live migrations of {instance_uuid}") as conn:
            return conn.execute(statement).rowcount


class HostRecords(ConnectedDatabase):
    """The host's own records: its compute node (capacity and usage) and its service's heartbeat."""

    def upsert_compute_node(
        self, host: str, hypervisor_hostname: str, vcpus: int, memory_mb: int, local_gb: int, create: bool = True
    ) -> ComputeNodeRow | None:
        """Record the host's capacity, the used amounts and running guest count of its live instances
        (Nova's pre_start_hook), and the free amounts from the same figures, all in one write; create
        the node when missing. A node that already holds all of it is not written (no updated_at
        without a change).

        Called under the host lock, and the table has Nova's unique key on (host,
        hypervisor_hostname, deleted), so two first boots can never make two rows. Without
        `create`, a missing node stays missing (None). Sizes outside
        Nova's Integer range are bad rows (refused before any action) and are not counted, so
        the sums cannot overflow.
        """
        this_node = _node_of(host) & (ComputeNode.hypervisor_hostname == hypervisor_hostname)
        with self.transaction(f"update the compute node of {host}") as conn:
            values = _node_figures(conn, host, vcpus, memory_mb, local_gb)
            node = next(iter(_rows(conn, ComputeNodeRow, ComputeNode, this_node)), None)
            if node is None and not create:
                return None
            now = utcnow()
            if node is None:
                identity = {"uuid": str(uuidlib.uuid4()), "host": host, "hypervisor_hostname": hypervisor_hostname}
                conn.execute(insert(ComputeNode).values(identity | values | {"created_at": now, "updated_at": now}))
            elif any(getattr(node, name) != value for name, value in values.items()):
                conn.execute(update(ComputeNode).where(this_node).values(values | {"updated_at": now}))
            return _rows(conn, ComputeNodeRow, ComputeNode, this_node)[0]

    def heartbeat(self, host: str, create: bool = True) -> bool:
        """Report this host's nova-compute service alive as Nova's servicegroup driver does
        (report_count + 1, last_seen_up = now), creating the record on first start when `create`;
        whether the record exists now."""
        now = utcnow()
        bump = {"report_count": Service.report_count + 1, "updated_at": now, "last_seen_up": now}
        with self.transaction(f"report service {host} alive") as conn:
            if conn.execute(update(Service).where(_compute_service(host)).values(bump)).rowcount:
                return True
            if not create:
                return False
            conn.execute(
                insert(Service)
                .values(host=host, binary="nova-compute", topic="compute", report_count=1)
                .values(created_at=now, updated_at=now, last_seen_up=now)
            )
            return True


class Database(HostReads, RecoveryWrites, HostRecords):
    """A connected database; each operation is one connection and one transaction."""


# --- Helpers -----------------------------------------------------------------------------------


_Row = TypeVar("_Row")

SYSTEM_METADATA, USER_METADATA = "system", "user"

_MIGRATION_FIELDS = [f.name for f in fields(MigrationRow)]
_MIGRATION_COLUMNS = [getattr(Migration, name) for name in _MIGRATION_FIELDS]

_INSTANCE_COLUMNS = [getattr(Instance, f.name) for f in fields(InstanceRow)
                     if f.name not in ("system_metadata", "metadata")]


def _instances(conn: Connection, where: ColumnElement[bool]) -> list[InstanceRow]:
    """Instances matching `where` with their live system and user metadata: two statements (both
    metadata tables are read in one UNION ALL, told apart by a column naming the table)."""
    rows = conn.execute(select(*_INSTANCE_COLUMNS).where(where).order_by(Instance.id)).all()
    metadata: dict[str, dict[str, dict[str, str | None]]] = {SYSTEM_METADATA: {}, USER_METADATA: {}}
    matching = select(Instance.uuid).where(where)
    live_metadata = union_all(*(
        select(literal(kind).label("kind"), table.instance_uuid, table.key, table.value)
        .where(table.deleted == 0, table.instance_uuid.in_(matching))
        for kind, table in ((SYSTEM_METADATA, InstanceSystemMetadata), (USER_METADATA, InstanceMetadata))
    ))
    for kind, instance_uuid, key, value in conn.execute(live_metadata):
        if value is None and kind == USER_METADATA:
            continue  # Nova's API never writes a null user value: a key without one says nothing
        metadata[kind].setdefault(instance_uuid, {})[key] = value
    return [
        InstanceRow(
            **{
                **row._mapping,
                "deleted": row.deleted != 0,
                "system_metadata": metadata[SYSTEM_METADATA].get(row.uuid, {}),
                "metadata": metadata[USER_METADATA].get(row.uuid, {}),
            }
        )
        for row in rows
    ]


INFO_CACHES = table("instance_info_caches", column("instance_uuid", String), column("network_info", Text),
                    column("deleted", Integer))
"""Nova's table of each instance's network info cache (Nova's cell database only: compute-recover's own
schema has none), named here without a model so that it is never taken for one of compute-recover's tables."""


def _network_info(conn: Connection, where: ColumnElement[bool]) -> dict[str, str]:
    """The live network info caches of the instances matching `where` whose user metadata names a readiness
    address (the only ones a probe needs), by canonical uuid: one statement. At most one character more
    than recovery.core.network_info allows is fetched, so that a huge cache costs no more than that."""
    names_address = (select(InstanceMetadata.id)
                     .where(InstanceMetadata.instance_uuid == Instance.uuid, InstanceMetadata.key == ADDRESS_KEY,
                            InstanceMetadata.deleted == 0).exists())
    statement = (select(Instance.uuid, func.substr(INFO_CACHES.c.network_info, 1, MAX_NETWORK_INFO_CHARS + 1))
                 .join(INFO_CACHES, INFO_CACHES.c.instance_uuid == Instance.uuid)
                 .where(where, INFO_CACHES.c.deleted == 0, names_address))
    return {uuid.lower(): text for uuid, text in conn.execute(statement) if text is not None}


def _rows(conn: Connection, row_type: type[_Row], model: Any, where: ColumnElement[bool]) -> tuple[_Row, ...]:
    """Rows of `model` matching `where` (id order) as `row_type`, whose fields name columns."""
    columns = [getattr(model, f.name) for f in fields(row_type)]
    result = conn.execute(select(*columns).where(where).order_by(model.id))
    return tuple(row_type(**row._mapping) for row in result)


SERVICE_TIMES = ("last_seen_up", "updated_at", "created_at")
"""The service columns read as time, whatever text an SQLite file holds in them."""


def service_rows(conn: Connection, where: ColumnElement[bool]) -> tuple[ServiceRow, ...]:
    """Service records matching `where` (id order). A time column whose stored value is no naive
    timestamp is None in the row, named in its `unreadable`, and logged as one warning line:
    one bad value never stops a command (SQLite stores any text in a DATETIME column)."""
    names = [f.name for f in fields(ServiceRow) if f.name != "unreadable"]
    columns = [type_coerce(getattr(Service, name), String) if name in SERVICE_TIMES else getattr(Service, name)
               for name in names]
    rows = []
    for row in conn.execute(select(*columns).where(where).order_by(Service.id)):
        values = dict(zip(names, row, strict=True))
        unreadable = []
        for name in SERVICE_TIMES:
            values[name], problem = stored_time(values[name])
            if problem:
                unreadable.append(name)
                log.warning("service record %s (%s on %s): %s %s: read as missing, downtime unknown",
                            values["id"], values["binary"], values["host"], name, problem)
        rows.append(ServiceRow(**values, unreadable=tuple(unreadable)))
    return tuple(rows)


def stored_time(value: str | datetime | None) -> tuple[datetime | None, str | None]:
    """A stored timestamp as naive UTC (as Nova writes them), else None and what is wrong with it."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None, f"{value!r} is not a timestamp"
    else:
        parsed = value
    if parsed is not None and parsed.tzinfo is not None:
        return None, f"{value!r} carries a UTC offset (Nova stores naive UTC)"
    return parsed, None


def _node_figures(conn: Connection, host: str, vcpus: int, memory_mb: int, local_gb: int) -> dict[str, int]:
    """A compute node's columns from the host's capacity and its live instances' sizes (one statement):
    used as Nova's resource tracker counts it, free as total minus used. disk_available_least is the
    free disk too: nova-compute's resource tracker refines it with the disk over-commit it measures."""
    counted = (
        (Instance.host == host)
        & (Instance.deleted == 0)
        & or_(Instance.vm_state.is_(None), Instance.vm_state.not_in(_FREES_RESOURCES))
    )

    def total(column: Any) -> Any:
        return func.coalesce(func.sum(case((column.between(0, NOVA_INTEGER_MAX), column), else_=0)), 0)

    # Nova's resource tracker counts every instance it tracks in running_vms, whatever its power state.
    used = conn.execute(select(total(Instance.vcpus), total(Instance.memory_mb), total(Instance.root_gb),
                               func.count(Instance.id)).where(counted)).one()
    vcpus_used, memory_mb_used, local_gb_used, running_vms = (int(figure) for figure in used)
    return {
        "vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb,
        "vcpus_used": vcpus_used, "memory_mb_used": memory_mb_used, "local_gb_used": local_gb_used,
        "running_vms": running_vms,
        "free_ram_mb": memory_mb - memory_mb_used, "free_disk_gb": local_gb - local_gb_used,
        "disk_available_least": local_gb - local_gb_used,
    }


def _evacuated_from(host: str) -> ColumnElement[bool]:
    """Nova's _destroy_evacuated_instances filter, read with read_deleted='yes': deleting an
    evacuated instance soft-deletes its migration too, and its stale domain here must still go."""
    return (
        _migration_type_is("evacuation")
        & (Migration.source_compute == host)
        & Migration.status.in_(sorted(EVACUATION_PENDING_STATUSES))
    )


def _evacuations(conn: Connection, where: ColumnElement[bool]) -> tuple[MigrationRow, ...]:
    """The live migrations matching `where`, and the soft-deleted ones of instances that have no
    live one (an evacuated instance deleted since), in id order."""
    rows = conn.execute(select(*_MIGRATION_COLUMNS, Migration.deleted).where(where).order_by(Migration.id)).all()
    live = {row.instance_uuid for row in rows if row.deleted == 0}
    return tuple(MigrationRow(**{name: getattr(row, name) for name in _MIGRATION_FIELDS})
                 for row in rows if row.deleted == 0 or row.instance_uuid not in live)


def _migration_type_is(kind: str) -> ColumnElement[bool]:
    """Nova's cell schema makes migration_type an ENUM on PostgreSQL, which a text parameter cannot
    be compared with; compared as text it works on every backend."""
    return cast(Migration.migration_type, String) == kind


def _node_of(host: str) -> ColumnElement[bool]:
    return (ComputeNode.host == host) & (ComputeNode.deleted == 0)


def _compute_service(host: str) -> ColumnElement[bool]:
    return (Service.host == host) & (Service.binary == "nova-compute") & (Service.deleted == 0)


def _plain(value: Any) -> Any:
    """Enum members as the values they stand for: prepared statements bind them untyped."""
    return value.value if isinstance(value, Enum) else value


def _as_decided() -> ColumnElement[bool]:
    """The live row still holds what it was decided from (bound as b_uuid and e_*)."""
    return (
        (Instance.uuid == bindparam("b_uuid"))
        & Instance.vm_state.is_not_distinct_from(bindparam("e_vm_state"))
        & Instance.task_state.is_not_distinct_from(bindparam("e_task_state"))
        & _StoredInstant(Instance.updated_at).is_not_distinct_from(bindparam("e_updated_at", type_=DateTime))
        & (Instance.deleted == 0)
    )


@cache
def _cas_statement(changed: frozenset[str]) -> Update:
    """One prepared UPDATE per set of changed columns, so a run of thousands of writes compiles
    a handful of statements instead of one per instance."""
    values: dict[str, Any] = {name: bindparam(f"c_{name}") for name in changed if name != "mark_deleted"}
    values["updated_at"] = bindparam("b_now")
    if "mark_deleted" in changed:
        values |= {"deleted": Instance.id, "deleted_at": bindparam("b_now")}
    return update(Instance).where(_as_decided()).values(values)


@cache
def _holds_statement() -> Select[tuple[int]]:
    """The row, locked until the transaction ends where the backend locks rows (on SQLite the
    transaction is the only writer), if it still holds what it was decided from."""
    return select(Instance.id).where(_as_decided()).with_for_update()


class _StoredInstant(FunctionElement[datetime]):
    """A timestamp column as the instant it stores, comparable with a bound datetime whatever form
    the row was written in. PostgreSQL's timestamp and MySQL's DATETIME compare as instants already.
    SQLite stores text, and other writers (other tools, hand-made fixtures, Nova's own on
    SQLite) leave `2024-05-14 03:00:00` where SQLAlchemy writes `2024-05-14 03:00:00.000000`, or a
    `T` between date and time: compared as text, a claim on such an unchanged row would never match."""

    type = DateTime()
    inherit_cache = True
    name = "stored_instant"


@compiles(_StoredInstant)
def _stored_instant(element: _StoredInstant, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_StoredInstant, "sqlite")
def _stored_instant_sqlite(element: _StoredInstant, compiler: SQLCompiler, **kw: Any) -> str:
    """The stored text in SQLAlchemy's own form (the bound side's): date and time to the second,
    then the fraction's digits padded to six (SQLAlchemy reads `.5` as 500000 µs too)."""
    column = compiler.process(element.clauses, **kw)
    fraction = f"CASE WHEN substr({column}, 20, 1) = '.' THEN substr({column}, 21) ELSE '' END"
    return f"(strftime('%Y-%m-%d %H:%M:%S', {column}) || '.' || substr({fraction} || '000000', 1, 6))"


def utcnow() -> datetime:
    """Naive UTC, as Nova stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)

"""Seeding a database from a scenario's db.json (docs/scenarios.md).

Parsing is pure: `parse_db_json` turns the document into table rows, filling defaults, or raises
a one-line ScenarioError naming the file and field. A value must fit its column as Nova declares
it (lengths and Integer ranges are read from the models in `recovery.db`), and the file must keep
within the bounds of `recovery.core.bounds`. Writing is one transaction that seeds only an
empty database, so running a scenario twice against the same database never duplicates records.
"""

import uuid as uuidlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, delete, insert, or_, select, update

from recovery.core.bounds import (
    MAX_DOCUMENT_BYTES,
    NOVA_INTEGER_MAX,
    NOVA_INTEGER_MIN,
    InputError,
    canonical_uuid,
    parse_json,
    read_limited,
    shown,
)
from recovery.core.errors import RecoveryError
from recovery.db import (
    ComputeNode,
    Database,
    Instance,
    InstanceMetadata,
    InstanceSystemMetadata,
    Migration,
    RecoveryJournal,
    RecoveryRun,
    Service,
)
from states.enums import PowerState


class ScenarioError(RecoveryError):
    """A scenario's db.json cannot be used; the message is one line naming the file and field."""


IGNORED_FIELDS_LISTED = 20
"""A warning names this many ignored fields at most, so a document of made-up names stays one short line."""

REQUIRED = object()
"""Schema default marking a field the document must give."""

Default = Any
"""A value, REQUIRED, or a callable computing the value from the fields parsed before it."""

Schema = dict[str, tuple[Callable[[Any], Any], Default]]
"""Field name → (converter raising ValueError on a bad value, default); parsed in order."""


@dataclass(frozen=True)
class SeedRows:
    """A parsed db.json as rows ready for bulk insert."""

    instances: list[dict[str, Any]]
    deleted_uuids: list[str]
    """Instances to mark deleted the way Nova does (deleted = id) once their ids exist."""
    system_metadata: list[dict[str, Any]]
    metadata: list[dict[str, Any]]
    """The user's metadata (instance_metadata rows), where the `recover:*` policy keys live."""
    migrations: list[dict[str, Any]]
    compute_nodes: list[dict[str, Any]]
    services: list[dict[str, Any]]
    ignored_fields: list[str]
    """Fields the document has beyond the columns compute-recover uses, as `table.field`."""


def read_db_json(path: Path) -> dict[str, Any]:
    """The document, read no further than MAX_DOCUMENT_BYTES and parsed within input_bounds."""
    try:
        with path.open("rb") as handle:
            data = parse_json(read_limited(handle, MAX_DOCUMENT_BYTES, "the file"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except InputError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a JSON object at the top level")
    return data


def seed(db: Database, data: Mapping[str, Any], source: str = "db.json", *, replace: bool = False,
         warn: Callable[[str], None] | None = None) -> None:
    """Load a scenario into an empty database (`replace`: into one emptied first); refuse one that
    already holds records."""
    if not seed_if_empty(db, data, source, warn=warn, replace=replace):
        raise ScenarioError(f"{source}: database {db.masked_url} already holds records; load into an empty "
                            "database, or pass --replace to delete them first")


_REPLACED = (RecoveryJournal, RecoveryRun, InstanceSystemMetadata, InstanceMetadata, Instance, Migration, ComputeNode,
             Service)
"""What --replace empties, children first: the records and the journal that spoke of them."""


def seed_if_empty(
    db: Database, data: Mapping[str, Any], source: str = "db.json", warn: Callable[[str], None] | None = None,
    replace: bool = False,
) -> bool:
    """Seed when the database holds no instances, migrations, compute nodes or services (or, with
    `replace`, after deleting them and the journal, in the same transaction); return whether it did
    (False: it already had data and nothing was written)."""
    rows = parse_db_json(data, source)
    if rows.ignored_fields and warn is not None:
        warn(ignored_fields_warning(rows.ignored_fields, source))
    holds_data = or_(*(select(model.id).exists() for model in (Instance, Migration, ComputeNode, Service)))
    with db.transaction(f"load {source}") as conn:
        if replace:
            for model in _REPLACED:
                conn.execute(delete(model))
        elif conn.execute(select(holds_data)).scalar():
            return False
        for model, table_rows in (
            (Instance, rows.instances),
            (InstanceSystemMetadata, rows.system_metadata),
            (InstanceMetadata, rows.metadata),
            (Migration, rows.migrations),
            (ComputeNode, rows.compute_nodes),
            (Service, rows.services),
        ):
            if table_rows:
                conn.execute(insert(model), table_rows)
        if rows.deleted_uuids:
            conn.execute(update(Instance).where(Instance.uuid.in_(rows.deleted_uuids)).values(deleted=Instance.id))
    return True


def ignored_fields_warning(ignored_fields: list[str], source: str) -> str:
    """One short line naming the fields seeding ignores, however many a document makes up."""
    listed, more = ignored_fields[:IGNORED_FIELDS_LISTED], len(ignored_fields) - IGNORED_FIELDS_LISTED
    return (f"{source}: ignored fields compute-recover does not use: {', '.join(listed)}"
            + (f" and {more:,} more" if more > 0 else ""))


def parse_db_json(data: Mapping[str, Any], source: str = "db.json") -> SeedRows:
    """The document as rows, defaults filled in; a ScenarioError names the first bad field."""
    ignored: set[str] = set()
    top = _record(data, source, "", _top_schema(), ignored, Instance)  # its host is every instance's host
    host = top["host"]
    instances, deleted_uuids, system_metadata, user_metadata = [], [], [], []
    seen: set[str] = set()
    for row in _table(top, "instances", source, _instance_schema(host), ignored, Instance):
        if row["uuid"] in seen:
            raise ScenarioError(f"{source}: instances[{len(instances)}].uuid: duplicate uuid {row['uuid']}")
        seen.add(row["uuid"])
        system_metadata += _metadata_rows(row["uuid"], row.pop("system_metadata"))
        user_metadata += _metadata_rows(row["uuid"], row.pop("metadata"))
        if row.pop("deleted"):
            deleted_uuids.append(row["uuid"])
            row["deleted_at"] = row["deleted_at"] or _utcnow()
        instances.append(row)
    return SeedRows(
        instances=instances,
        deleted_uuids=deleted_uuids,
        system_metadata=system_metadata,
        metadata=user_metadata,
        migrations=_table(top, "migrations", source, _MIGRATION, ignored, Migration),
        compute_nodes=_table(top, "compute_nodes", source, _compute_node_schema(host), ignored, ComputeNode),
        services=_table(top, "services", source, _service_schema(host), ignored, Service),
        ignored_fields=sorted(ignored),
    )


def _metadata_rows(instance_uuid: str, metadata: dict[str, str]) -> list[dict[str, Any]]:
    return [{"instance_uuid": instance_uuid, "key": key, "value": value} for key, value in metadata.items()]


# --- Converters: return the column value or raise ValueError saying what was expected ----------


def _name(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a non-empty string, got {shown(value)}")


def _text(value: Any) -> str | None:
    return None if value is None else _name(value)


def _uuid(value: Any) -> str:
    """Stored in canonical lower case, so the rest of compute-recover compares uuids as equal strings."""
    try:
        return canonical_uuid(_name(value))
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _amount(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError(f"expected a non-negative integer, got {shown(value)}")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {shown(value)}")


def _time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as naive UTC (Nova's storage); one without an offset is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    except (TypeError, ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        raise ValueError(f"expected an ISO 8601 timestamp between years 1 and 9999, got {shown(value)}") from None


def _power_state(value: Any) -> int:
    """Nova's integer, given as the integer or the name (`running`, `shutdown`, ...)."""
    names = {state.label: state.value for state in PowerState}
    if isinstance(value, str) and value.lower() in names:
        return names[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    expected = ", ".join(f"{state.label} ({state.value})" for state in PowerState)
    raise ValueError(f"unknown power state {shown(value)}; expected one of {expected}")


def _metadata(value: Any) -> dict[str, str]:
    """Each key and value becomes a row of instance_system_metadata (or, alike, instance_metadata),
    so each must fit its column."""
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise ValueError("expected an object of string values")
    columns = InstanceSystemMetadata.__table__.columns
    for key, item in value.items():
        try:
            _check_fits(key, columns["key"])
            _check_fits(item, columns["value"])
        except ValueError as exc:
            raise ValueError(f"key {shown(key)}: {exc}") from None
    return dict(value)


def _deleted(value: Any) -> bool:
    """Nova's column holds 0 or the row's id; a scenario may also say true/false."""
    if isinstance(value, int):
        return bool(value)
    raise ValueError(f"expected true, false or an integer, got {shown(value)}")


def _records(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    raise ValueError("expected a list of objects")


# --- Schemas (field order matters: a callable default sees the fields before it) ---------------


def _top_schema() -> Schema:
    return {
        "host": (_name, REQUIRED),
        "instances": (_records, []),
        "migrations": (_records, []),
        "compute_nodes": (_records, []),
        "services": (_records, []),
    }


def _instance_schema(host: str) -> Schema:
    """Missing columns default to an m1.tiny-sized instance on the scenario's host, power state nostate."""
    return {
        "uuid": (_uuid, REQUIRED),
        "host": (_text, host),
        "node": (_text, lambda row: row["host"]),
        "display_name": (_text, None),
        "project_id": (_text, None),
        "vm_state": (_text, REQUIRED),
        "task_state": (_text, None),
        "power_state": (_power_state, PowerState.NOSTATE.value),
        "deleted": (_deleted, False),
        "deleted_at": (_time, None),
        "updated_at": (_time, None),
        "vcpus": (_amount, 1),
        "memory_mb": (_amount, 512),
        "root_gb": (_amount, 1),
        "launched_at": (_time, None),
        "system_metadata": (_metadata, lambda _row: {}),
        "metadata": (_metadata, lambda _row: {}),
    }


_MIGRATION: Schema = {
    "instance_uuid": (_uuid, REQUIRED),
    "source_compute": (_name, REQUIRED),
    "dest_compute": (_text, None),
    "source_node": (_text, lambda row: row["source_compute"]),
    "dest_node": (_text, lambda row: row["dest_compute"]),
    "migration_type": (_name, REQUIRED),
    "status": (_name, REQUIRED),
}
"""Type, status and source have no defaults: an evacuation record is the only evidence that
lets the machine destroy a domain, so it must be spelled out."""


def _compute_node_schema(host: str) -> Schema:
    return {
        "uuid": (_uuid, lambda _row: str(uuidlib.uuid4())),
        "host": (_name, host),
        "hypervisor_hostname": (_name, lambda row: row["host"]),
        "vcpus": (_amount, 0),
        "memory_mb": (_amount, 0),
        "local_gb": (_amount, 0),
        "vcpus_used": (_amount, 0),
        "memory_mb_used": (_amount, 0),
        "local_gb_used": (_amount, 0),
        "running_vms": (_amount, 0),
    }


def _service_schema(host: str) -> Schema:
    return {
        "host": (_name, host),
        "binary": (_name, "nova-compute"),
        "topic": (_name, "compute"),
        "report_count": (_amount, 0),
        "disabled": (_flag, False),
        "disabled_reason": (_text, None),
        "forced_down": (_flag, False),
        "last_seen_up": (_time, None),
        "updated_at": (_time, None),
    }


def _table(
    top: Mapping[str, Any], table: str, source: str, schema: Schema, ignored: set[str], model: Any
) -> list[dict[str, Any]]:
    return [_record(raw, source, f"{table}[{index}]", schema, ignored, model) for index, raw in enumerate(top[table])]


def _check_fits(value: Any, column: Column) -> None:
    """A value too long for its String(n) column, or outside a (32-bit) Integer column, is refused
    here by name rather than by the database on insert (or, on SQLite, not at all)."""
    length = getattr(column.type, "length", None)
    if length is not None and isinstance(value, str) and len(value) > length:
        raise ValueError(f"{len(value):,} characters is longer than Nova's String({length}) column holds "
                         f"({shown(value)})")
    if (isinstance(column.type, Integer) and not isinstance(column.type, BigInteger) and type(value) is int
            and not NOVA_INTEGER_MIN <= value <= NOVA_INTEGER_MAX):
        raise ValueError(f"{value} is outside Nova's Integer range ({NOVA_INTEGER_MIN} to {NOVA_INTEGER_MAX})")


def _field_label(name: str) -> str:
    """A field name as a warning lists it: quoted and cut short unless it is a plain short name."""
    return name if name.isprintable() and len(name) <= 64 else shown(name)


def _record(raw: Any, source: str, path: str, schema: Schema, ignored: set[str], model: Any) -> dict[str, Any]:
    """One object checked against its schema, required fields present, each value fitting the
    model's column of the same name. Fields outside the schema (other Nova columns, notes) are
    ignored and collected, since a typo of a required one still fails as missing."""

    def error(name: str, problem: str) -> ScenarioError:
        where = ".".join(part for part in (path, name) if part) or "top level"
        return ScenarioError(f"{source}: {where}: {problem}")

    if not isinstance(raw, Mapping):
        raise error("", f"expected an object, got {type(raw).__name__}")
    table = path.split("[")[0]
    ignored.update(f"{table}.{_field_label(name)}" if table else _field_label(name)
                   for name in raw.keys() - schema.keys())
    columns = model.__table__.columns
    row: dict[str, Any] = {}
    for name, (convert, default) in schema.items():
        if name in raw:
            try:
                row[name] = convert(raw[name])
                if name in columns:
                    _check_fits(row[name], columns[name])
            except ValueError as exc:
                raise error(name, str(exc)) from None
        elif default is REQUIRED:
            raise error(name, "required field missing")
        else:
            row[name] = default(row) if callable(default) else default
    return row


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)

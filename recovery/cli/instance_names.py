"""Which instance `explain NAME` means: a uuid, an instance's display name, or a libvirt domain's name."""

import uuid as uuidlib

from sqlalchemy import select

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorUnavailable
from recovery.cli.exits import CommandError
from recovery.core.bounds import canonical_uuid
from recovery.db import Database
from recovery.db import journal as journals
from recovery.db.models import Instance


def resolve_instance(db: Database, text: str, libvirt_uri: str) -> str:
    """The uuid `text` names: itself if it is shaped like one or is some instance's uuid; else the
    one live instance record of that display name, or the one libvirt domain of that name (read-only,
    when --libvirt-uri reaches one). No match, or more than one, is a usage error naming the candidates."""
    uuid = canonical_uuid(text)
    if _uuid_shaped(uuid) or _known_uuid(db, uuid):
        return uuid
    candidates = {uuid.lower(): f"instance {name!r} on host {host}" for uuid, name, host in _named(db, text)}
    for domain in _domains_named(libvirt_uri, text):
        candidates.setdefault(domain.uuid.lower(), f"libvirt domain {domain.name!r} at {libvirt_uri}")
    if not candidates:
        raise CommandError(f"no instance or libvirt domain is named {text!r}: give its uuid, its display name (as "
                           "the instances table records it) or its libvirt domain name; check --db and --libvirt-uri")
    if len(candidates) > 1:
        listed = "; ".join(f"{uuid} ({what})" for uuid, what in sorted(candidates.items()))
        raise CommandError(f"{text!r} names {len(candidates)} instances: {listed} — give one uuid")
    return next(iter(candidates))


def _uuid_shaped(text: str) -> bool:
    try:
        uuidlib.UUID(text)
    except ValueError:
        return False
    return True


def _known_uuid(db: Database, uuid: str) -> bool:
    """Nova's uuid column takes any string, so a name may be some instance's uuid: that one wins."""
    if db.has_tables("instances") and db.load_instances_by_uuid([uuid]):
        return True
    return db.has_tables("recovery_journal", "recovery_runs") and bool(journals.journal_for(db, uuid, 1))


def _named(db: Database, name: str) -> list[tuple[str, str, str | None]]:
    if not db.has_tables("instances"):
        return []
    statement = select(Instance.uuid, Instance.display_name, Instance.host).where(
        Instance.display_name == name, Instance.deleted == 0)
    with db.reading(f"find instances named {name!r}") as conn:
        return [tuple(row) for row in conn.execute(statement)]


def _domains_named(uri: str, name: str) -> list:
    """Domains of that name, if libvirt can be reached read-only; none if it cannot."""
    try:
        hypervisor = Hypervisor.open(uri, read_only=True)
    except HypervisorUnavailable:
        return []
    try:
        return [domain for domain in hypervisor.domains() if domain.name == name]
    except HypervisorError:
        return []
    finally:
        hypervisor.close()

"""The service records: listing them, and the changes `services set` and the agent make.

Each change is one conditional UPDATE, so it never undoes another writer's change it did not
see: the agent's automatic disable only takes an enabled service, and its re-enable only a
service still disabled for the agent's own reason (Nova's `AUTO: ` prefix), never one an
operator disabled.
"""

from sqlalchemy import ColumnElement, select, update

from recovery.core.errors import RecoveryError
from recovery.db.models import Service, ServiceRow
from recovery.db.store import Database, service_rows, utcnow

COMPUTE_BINARY = "nova-compute"

AUTO_DISABLE_PREFIX = "AUTO: "
"""Nova's mark on a reason the service gave itself; only such a disable is lifted automatically."""

LIBVIRT_LOST_REASON = AUTO_DISABLE_PREFIX + "Connection to libvirt lost"


class ServiceNotFound(RecoveryError, LookupError):
    """No live service record for the host and binary."""


def _service(host: str, binary: str) -> ColumnElement[bool]:
    return (Service.host == host) & (Service.binary == binary) & (Service.deleted == 0)


def list_services(db: Database, host: str | None = None, binary: str | None = None) -> list[ServiceRow]:
    """Live service records (id order), of one host and/or binary when given."""
    where = Service.deleted == 0
    if host is not None:
        where &= Service.host == host
    if binary is not None:
        where &= Service.binary == binary
    with db.reading("list the services") as conn:
        return list(service_rows(conn, where))


def _change(db: Database, host: str, binary: str, what: str, values: dict,
            only_if: ColumnElement[bool] | None = None) -> bool:
    """Apply `values` (with updated_at) to the host's service where `only_if` holds; whether it did.
    ServiceNotFound when the host has no such service at all."""
    where = _service(host, binary) if only_if is None else _service(host, binary) & only_if
    with db.transaction(f"{what} service {binary} on {host}") as conn:
        if conn.execute(update(Service).where(where).values(values | {"updated_at": utcnow()})).rowcount:
            return True
        if conn.execute(select(Service.id).where(_service(host, binary))).first() is None:
            raise ServiceNotFound(f"no {binary} service on host {host!r}")
        return False


def set_disabled(db: Database, host: str, disabled: bool, reason: str | None = None,
                 binary: str = COMPUTE_BINARY) -> None:
    """As `openstack compute service set --disable [--disable-reason] | --enable`: enabling clears the reason."""
    values = {"disabled": disabled, "disabled_reason": reason if disabled else None}
    _change(db, host, binary, "disable" if disabled else "enable", values)


def set_forced_down(db: Database, host: str, forced_down: bool, binary: str = COMPUTE_BINARY) -> None:
    """As `openstack compute service set --down | --up`: a forced-down service reads as down at once."""
    _change(db, host, binary, "force down" if forced_down else "unforce", {"forced_down": forced_down})


def auto_disable(db: Database, host: str, reason: str, binary: str = COMPUTE_BINARY) -> bool:
    """Disable an enabled service for `reason` (which carries the AUTO prefix); whether it did."""
    values = {"disabled": True, "disabled_reason": reason}
    return _change(db, host, binary, "disable", values, only_if=Service.disabled.is_(False))


def auto_enable(db: Database, host: str, binary: str = COMPUTE_BINARY) -> bool:
    """Re-enable a service only while it is disabled for a reason the service gave itself; whether it did."""
    mine = Service.disabled.is_(True) & Service.disabled_reason.startswith(AUTO_DISABLE_PREFIX, autoescape=True)
    return _change(db, host, binary, "re-enable", {"disabled": False, "disabled_reason": None}, only_if=mine)

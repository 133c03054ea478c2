"""Whether a service is up, by the rule of Nova's servicegroup database driver (pure).

A service is up when it is not forced down and its last heartbeat (`last_seen_up`, else
`updated_at`, else `created_at`) lies within `service_down_time` of now, either side (Nova
compares the absolute difference, so a clock running ahead does not read as down).
"""

from datetime import datetime
from typing import TYPE_CHECKING

from recovery.core.defaults import DEFAULT_REPORT_INTERVAL, DEFAULT_SERVICE_DOWN_TIME

if TYPE_CHECKING:  # the command line reads the defaults here without loading the database layer
    from recovery.db.models import ServiceRow

DOWN_TIME_FACTOR = 2.5
"""Nova raises a service_down_time not above report_interval to this many report intervals."""


def service_down_time(configured: float = DEFAULT_SERVICE_DOWN_TIME,
                      report_interval: float = DEFAULT_REPORT_INTERVAL) -> float:
    """The down time Nova really uses: one a single late beat would cross is raised."""
    if configured <= report_interval:
        return float(int(report_interval * DOWN_TIME_FACTOR))
    return configured


def last_heartbeat(service: "ServiceRow", columns: tuple[str, ...] = ("last_seen_up", "updated_at", "created_at")
                   ) -> datetime | None:
    """The first of `columns` that holds a time; None when there is none, or when the first that
    holds anything holds a value that could not be read (the heartbeat is then unknown, never an
    older column's time)."""
    for column in columns:
        if column in service.unreadable:
            return None
        value = getattr(service, column)
        if value is not None:
            return value
    return None


def host_down_seconds(service: "ServiceRow | None", now: datetime) -> float | None:
    """How long the host has been down, from its service's last heartbeat (`last_seen_up`, else
    `updated_at`; not `created_at`, which says when it was registered, not when it was last up).
    Whole seconds; None when there is no record of one; a clock behind the database's reads as 0."""
    beat = service and last_heartbeat(service, ("last_seen_up", "updated_at"))
    return None if beat is None else float(max(0, round((now - beat).total_seconds())))


def is_up(service: "ServiceRow", now: datetime, down_time: float) -> bool:
    """`now` is naive UTC, as the records store time."""
    if service.forced_down:
        return False
    beat = last_heartbeat(service)
    return beat is not None and abs((now - beat).total_seconds()) <= down_time

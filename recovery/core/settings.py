"""What one run of the host boot routine is asked to do."""

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from recovery.core.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_PROBE_NETWORKS,
    DEFAULT_READINESS_BUDGET,
    DEFAULT_RECONNECT_INTERVAL,
    DEFAULT_REPORT_INTERVAL,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_SYNC_POWER_STATE_INTERVAL,
    DEFAULT_TIER_TIMEOUT,
    DEFAULT_UPDATE_RESOURCES_INTERVAL,
)
from recovery.core.facts import Options
from recovery.core.probe_targets import IPNetwork, probe_networks
from states.enums import OnDegraded
from states.power_sync import LIFECYCLE_DELAY

DEFAULT_INSTANCES_PATH = Path("/var/lib/nova/instances")
"""Nova's instances_path: where an instance's local disks live, in a directory named by its uuid."""

STATE_DIR_ENV = "COMPUTE_RECOVER_STATE_DIR"
DEFAULT_STATE_DIR = "/var/lib/compute-recover"
"""Where compute-recover keeps its own state on a host: the journal database beside a Nova one."""

JOURNAL_FILE = "journal.sqlite"


def default_journal_path() -> str:
    """The journal database a bare `--journal-db` names: a local SQLite file in
    $COMPUTE_RECOVER_STATE_DIR, else in DEFAULT_STATE_DIR."""
    return os.path.join(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR, JOURNAL_FILE)


@dataclass(frozen=True)
class Recheck:
    """The agent's re-check of the guests a run blocked (docs/devices.md): only these instances, decided
    with that run's downtime (the host has been up since, and beating)."""

    uuids: frozenset[str]
    down_seconds: float | None


@dataclass(frozen=True, kw_only=True)
class RunTuning:
    """How a recovery runs, whatever host it recovers: what the command line's options and the boot routine's
    settings share."""

    concurrency: int = DEFAULT_CONCURRENCY
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    tier_timeout: float = DEFAULT_TIER_TIMEOUT
    readiness_budget: float = DEFAULT_READINESS_BUDGET
    probe_networks: tuple[IPNetwork, ...] = field(default_factory=lambda: probe_networks(DEFAULT_PROBE_NETWORKS))
    """Where readiness checks may connect (recovery/core/probe_targets.py)."""
    on_degraded: str = OnDegraded.KEEP.value
    """What is done with a started guest that lacks a device its definition asks for (docs/devices.md)."""

    def tuning(self) -> dict[str, object]:
        """These fields alone, to hand on to another RunTuning."""
        return {f.name: getattr(self, f.name) for f in fields(RunTuning)}


@dataclass(frozen=True, kw_only=True)
class RunSettings(RunTuning):
    host: str
    node: str
    options: Options
    dry_run: bool = False
    nova_cell: bool = False
    """The records are Nova's own cell database: records Nova's nova-compute creates are never created."""
    applied_plan: dict[str, str] | None = None
    """`run --plan`: the plan file's name and sha256, journaled with the run's options."""
    recheck: Recheck | None = None
    """Set by the agent when a resource appeared: the run is over these blocked guests alone."""


@dataclass(frozen=True)
class AgentSettings:
    """What `agent` does after the recovery, and how often (seconds)."""

    report_interval: float = DEFAULT_REPORT_INTERVAL
    """Between heartbeats (Nova's report_interval)."""
    sync_power_state_interval: float = DEFAULT_SYNC_POWER_STATE_INTERVAL
    """Between full power-state syncs (Nova's sync_power_state_interval)."""
    update_resources_interval: float = DEFAULT_UPDATE_RESOURCES_INTERVAL
    """Between updates of the compute node record (Nova's periodic tick)."""
    lifecycle_event_delay: float = LIFECYCLE_DELAY
    """How long a STOPPED event waits for a later event that cancels it (a reboot)."""
    reconnect_interval: float = DEFAULT_RECONNECT_INTERVAL
    """Between attempts to reopen a lost libvirt connection."""
    metrics_textfile: str | None = None
    """Written after the run and every report interval, for node-exporter's textfile collector."""

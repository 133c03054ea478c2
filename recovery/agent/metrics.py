"""The agent's Prometheus metrics (prometheus-client): served over HTTP (--metrics-port) and/or
written for node-exporter's textfile collector (--metrics-textfile). One registry per agent, so
tests and several agents in one process never share counts. Every counter has its series at 0 from
the start (a rate over a series that appears at its first event misses that event), and no `_created`
series (noise to every dashboard: the process start time says the same)."""

import importlib.metadata
import platform
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from recovery.core.exit_codes import EXIT_FAILED, EXIT_OK
from recovery.core.outcomes import ACTION_OUTCOMES, RUN_OUTCOMES, SYNC_OUTCOMES
from recovery.files import write_private
from recovery.run.boot import RunResult
from states.policy import ACTIONS, POLICY
from states.power_sync import SyncAction

disable_created_metrics()
LIFECYCLE_EVENT_OUTCOMES = ("handled", "dropped", "ignored")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter("compute_recover_runs", "Recovery runs, by exit code.", ["exit_code"], registry=r)
        self.instances = Counter("compute_recover_instances", "Instances recovered, by deciding rule and outcome.",
                                 ["rule", "outcome"], registry=r)
        self.actions = Counter("compute_recover_actions", "Recovery actions, by name and outcome.",
                               ["action", "outcome"], registry=r)
        self.run_duration = Gauge("compute_recover_run_duration_seconds", "Duration of the last recovery run.",
                                  registry=r)
        self.guests_running = Gauge(
            "compute_recover_guests_running_seconds",
            "Seconds from the last run's start until every guest it started or resumed was running.", registry=r)
        self.last_heartbeat = Gauge("compute_recover_last_heartbeat_timestamp_seconds",
                                    "Unix time of the last heartbeat written to the service record.", registry=r)
        self.events = Counter("compute_recover_lifecycle_events", "libvirt lifecycle events, by what became of "
                              "them (handled, or dropped: a delayed stop overtaken by a later event).",
                              ["outcome"], registry=r)
        self.syncs = Counter("compute_recover_power_syncs", "Instance power-state syncs, by action and outcome.",
                             ["action", "outcome"], registry=r)
        self.libvirt_connected = Gauge("compute_recover_libvirt_connected",
                                       "1 while the connection to libvirt is up.", registry=r)
        build = Gauge("compute_recover_build_info", "Always 1: the version of compute-recover and of Python.",
                      ["version", "python"], registry=r)
        build.labels(version=importlib.metadata.version("compute-recover"),
                     python=platform.python_version()).set(1)
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Every label value the vocabulary knows, at 0."""
        for code in (EXIT_OK, EXIT_FAILED):  # a run that refused or found the host locked is not a run
            self.runs.labels(exit_code=str(code))
        for outcome in RUN_OUTCOMES:
            for rule in (*(rule.name for rule in POLICY), "none"):
                self.instances.labels(rule=rule, outcome=outcome)
        for outcome in ACTION_OUTCOMES:
            for action in ACTIONS:
                self.actions.labels(action=action, outcome=outcome)
        for outcome in SYNC_OUTCOMES:
            for sync in SyncAction:
                self.syncs.labels(action=sync.value, outcome=outcome)
        for event in LIFECYCLE_EVENT_OUTCOMES:
            self.events.labels(outcome=event)

    def record_run(self, result: RunResult) -> None:
        self.runs.labels(exit_code=str(result.exit_code)).inc()
        self.run_duration.set(result.seconds)
        for instance in result.instances:
            steps = instance.decision.steps if instance.decision else ()
            rule = steps[-1].rule.name if steps else "none"
            self.instances.labels(rule=rule, outcome=instance.outcome).inc()
            for action in instance.actions:
                self.actions.labels(action=action.action.name, outcome=action.outcome).inc()

    def beat(self) -> None:
        self.last_heartbeat.set(time.time())

    def serve(self, port: int, address: str = "0.0.0.0") -> None:
        """Serve /metrics from a daemon thread until `close`."""
        self._server, _thread = start_http_server(port, addr=address, registry=self.registry)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def write_textfile(self, path: str) -> None:
        """Atomically (a temporary file renamed), as the textfile collector needs; 0600 (recovery.files)."""
        write_private(path, generate_latest(self.registry))

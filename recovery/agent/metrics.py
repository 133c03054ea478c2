"""The agent's Prometheus metrics (prometheus-client): served over HTTP (--metrics-port) and/or
written for node-exporter's textfile collector (--metrics-textfile). One registry per agent, so
tests and several agents in one process never share counts."""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server, write_to_textfile

from recovery.run.boot import RunResult


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
        """Atomically (a temporary file renamed), as the textfile collector needs."""
        write_to_textfile(path, self.registry)

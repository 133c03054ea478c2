"""The body of `compute-recover agent`: recover the host as `run` does, then stay (recovery.agent.loop),
with systemd's notify protocol (READY=1 after the recovery, watchdog pings) and the metrics."""

import logging
import os
import signal
import sys
import time
from pathlib import Path

import sdnotify

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_started
from recovery.agent.metrics import Metrics
from recovery.cli import logs
from recovery.cli.exits import EXIT_OK, EXIT_USAGE, fail
from recovery.cli.run import (
    open_db,
    open_hypervisor,
    open_journal,
    print_result,
    recover,
    require_schema,
    resolve_target,
)
from recovery.core.defaults import DEFAULT_TIER_TIMEOUT
from recovery.core.facts import Options
from recovery.core.settings import DEFAULT_INSTANCES_PATH, AgentSettings, RunSettings


class Systemd:
    """sd_notify when started by systemd (NOTIFY_SOCKET set); silent otherwise."""

    def __init__(self) -> None:
        self._notifier = sdnotify.SystemdNotifier()
        usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
        ours = usec and usec.isdigit() and (not pid or pid == str(os.getpid()))
        self._interval = int(usec) / 2e6 if ours else None  # ping twice per watchdog period
        self._next_ping = 0.0

    def notify(self, message: str) -> None:
        self._notifier.notify(message)

    def ping(self) -> None:
        if self._interval is not None and time.monotonic() >= self._next_ping:
            self.notify("WATCHDOG=1")
            self._next_ping = time.monotonic() + self._interval


def agent(scenario: str | None, node: str | None, concurrency: int, stop_timeout: float, lock_timeout: float,
          db_timeout: float, plug_vifs_command: str | None, network_apply_command: str | None, db_url: str | None,
          libvirt_uri: str, host: str | None, options: Options, settings: AgentSettings,
          metrics_port: int | None, metrics_address: str, instances_path: Path = DEFAULT_INSTANCES_PATH,
          journal_db_url: str | None = None, tier_timeout: float = DEFAULT_TIER_TIMEOUT) -> None:
    logs.raise_to_info()
    host, libvirt_uri, node = resolve_target(scenario, node, libvirt_uri, host)
    systemd, metrics = Systemd(), Metrics()
    db = open_db(db_url, timeout=db_timeout)
    journal = open_journal(journal_db_url, db, db_timeout)
    try:
        nova_cell = require_schema(db, False, journal)
        start_event_loop()  # before the connection is opened: libvirt binds its events to the loop then
        hypervisor = open_hypervisor(libvirt_uri, read_only=False, instances_path=instances_path)
        run = RunSettings(host=host, node=node or hypervisor.hostname(), options=options, concurrency=concurrency,
                          stop_timeout=stop_timeout, lock_timeout=lock_timeout, tier_timeout=tier_timeout,
                          nova_cell=nova_cell)
        if metrics_port is not None:
            _serve_metrics(metrics, metrics_port, metrics_address)
        keeper = Agent(db, hypervisor, run, settings, metrics,
                       reopen=lambda: Hypervisor.open(libvirt_uri, instances_path=instances_path),
                       workers=concurrency)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: keeper.stop())
        keeper.listen()
        systemd.notify(f"STATUS=recovering host {host}")
        started = time.monotonic()
        result = recover(hypervisor, db, run, NetworkHook(plug_vifs_command, network_apply_command), journal=journal)
        metrics.record_run(result)
        if result.halted is None:
            metrics.beat()  # the run's closing heartbeat
        print_result(result)
        keeper.start(started, guests_started(result))
        keeper.on_tick = systemd.ping
        systemd.notify(f"READY=1\nSTATUS=host {host} recovered (exit code {result.exit_code}); keeping its records")
        keeper.serve()
        systemd.notify("STOPPING=1")
        logging.getLogger(__name__).info("stopped by a signal: the work in hand was finished")
    finally:
        metrics.close()
        db.close()
        if journal is not None:
            journal.close()
    sys.exit(EXIT_OK)


def _serve_metrics(metrics: Metrics, port: int, address: str) -> None:
    try:
        metrics.serve(port, address)
    except OSError as error:
        fail(f"cannot serve metrics on {address}:{port}: {error.strerror} — choose another --metrics-port",
             EXIT_USAGE)

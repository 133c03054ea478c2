"""`compute-recover agent`: recover the host as `run` does, then stay (recovery.agent.loop), with
systemd's notify protocol (READY=1 after the recovery, watchdog pings) and the metrics."""

import logging
import os
import signal
import sys
import time

import click
import sdnotify

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_blocked, guests_started
from recovery.agent.metrics import Metrics
from recovery.cli import logs
from recovery.cli.exits import CommandError
from recovery.cli.host import journaled_report, print_report_document, recover
from recovery.cli.nova_options import nova_conf_options
from recovery.cli.open import open_db, open_journal, require_schema, resolve_target
from recovery.cli.option_checks import FiniteFloatRange
from recovery.cli.options import ENV_PREFIX, RecoveryOptions, journal_db_option, recovery_options
from recovery.core.defaults import (
    DEFAULT_REPORT_INTERVAL,
    DEFAULT_SYNC_POWER_STATE_INTERVAL,
    DEFAULT_UPDATE_RESOURCES_INTERVAL,
)
from recovery.core.exit_codes import EXIT_OK
from recovery.core.settings import AgentSettings
from states.power_sync import LIFECYCLE_DELAY


def _positive(name: str, default: float, help_text: str):
    return click.option(f"--{name}", type=FiniteFloatRange(0.1, 86_400), default=default, show_default=True,
                        envvar=ENV_PREFIX + name.upper().replace("-", "_"), help=help_text)


@click.command()
@_positive("report-interval", DEFAULT_REPORT_INTERVAL, "Seconds between heartbeats to the service record.")
@_positive("sync-power-state-interval", DEFAULT_SYNC_POWER_STATE_INTERVAL,
           "Seconds between full power-state syncs of every instance.")
@_positive("update-resources-interval", DEFAULT_UPDATE_RESOURCES_INTERVAL,
           "Seconds between updates of the compute node record.")
@_positive("lifecycle-event-delay", LIFECYCLE_DELAY,
           "Seconds a STOPPED event waits; a later event of the guest (a reboot) drops it.")
@click.option("--metrics-port", type=click.IntRange(0, 65_535), envvar=ENV_PREFIX + "METRICS_PORT",
              help="Serve Prometheus metrics over HTTP on this port [default: not served].")
@click.option("--metrics-address", default="0.0.0.0", show_default=True, envvar=ENV_PREFIX + "METRICS_ADDRESS",
              help="Address the metrics port listens on.")
@click.option("--metrics-textfile", type=click.Path(dir_okay=False), envvar=ENV_PREFIX + "METRICS_TEXTFILE",
              help="Also write the metrics to this file (node-exporter's textfile collector; name it *.prom).")
@journal_db_option
@nova_conf_options()
@recovery_options
def agent(report_interval: float, sync_power_state_interval: float, update_resources_interval: float,
          lifecycle_event_delay: float, metrics_port: int | None, metrics_address: str, metrics_textfile: str | None,
          **recovery) -> None:
    """Recover this host as `run` does, then stay and keep its records true.

    Heartbeats the service record, syncs power states from libvirt's lifecycle events and
    periodically, updates the compute node record, disables the service while libvirt is lost.
    SIGTERM or SIGINT: finish the work in hand and exit 0. Under systemd (Type=notify): READY=1
    once the host is recovered, and watchdog pings.
    """
    settings = AgentSettings(report_interval=report_interval, sync_power_state_interval=sync_power_state_interval,
                             update_resources_interval=update_resources_interval,
                             lifecycle_event_delay=lifecycle_event_delay, metrics_textfile=metrics_textfile)
    keep_host(RecoveryOptions(**recovery), settings, metrics_port, metrics_address)


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


def keep_host(recovery: RecoveryOptions, settings: AgentSettings, metrics_port: int | None,
              metrics_address: str) -> None:
    logs.raise_to_info()
    recovery = resolve_target(recovery)
    host, libvirt_uri, instances_path = recovery.host, recovery.libvirt_uri, recovery.instances_path
    systemd, metrics = Systemd(), Metrics()
    db = open_db(recovery.db_url, timeout=recovery.db_timeout)
    journal = open_journal(recovery.journal_db_url, db, recovery.db_timeout)
    try:
        nova_cell = require_schema(db, False, journal)
        start_event_loop()  # before the connection is opened: libvirt binds its events to the loop then
        hypervisor = Hypervisor.open(libvirt_uri, read_only=False, instances_path=instances_path)
        run = recovery.settings(recovery.node or hypervisor.hostname(), False, nova_cell)
        if metrics_port is not None:
            _serve_metrics(metrics, metrics_port, metrics_address)
        keeper = Agent(db, hypervisor, run, settings, metrics,
                       reopen=lambda: Hypervisor.open(libvirt_uri, instances_path=instances_path),
                       workers=recovery.concurrency)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: keeper.stop())
        keeper.listen()
        systemd.notify(f"STATUS=recovering host {host}")
        started = time.monotonic()
        network = NetworkHook(recovery.plug_vifs_command, recovery.network_apply_command)
        result = recover(hypervisor, db, run, network, journal=journal)
        metrics.record_run(result)
        if result.halted is None:
            metrics.beat()  # the run's closing heartbeat
        print_report_document(journaled_report(result, journal or db))
        keeper.recheck = lambda hv, settings: recover(hv, db, settings, network, journal=journal)
        keeper.start(started, guests_started(result), guests_blocked(result))
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
        raise CommandError(f"cannot serve metrics on {address}:{port}: {error.strerror} — choose another "
                           "--metrics-port") from error

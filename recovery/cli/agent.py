"""`compute-recover agent`: recover the host as `run` does, then stay (recovery.agent.loop), with
systemd's notify protocol (READY=1 after the recovery, watchdog pings) and the metrics."""

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import click
import sdnotify

from recovery.adapters.hypervisor import Hypervisor, start_event_loop
from recovery.adapters.network import NetworkHook
from recovery.agent.loop import Agent, guests_blocked, guests_started
from recovery.agent.metrics import Metrics
from recovery.cli import logs
from recovery.cli.exits import CommandError, exit_code
from recovery.cli.help_groups import GroupedCommand
from recovery.cli.host import journaled_report, print_report_document, recover
from recovery.cli.interrupts import Interruption
from recovery.cli.nova_options import nova_conf_options
from recovery.cli.open import open_db, open_journal, require_schema, resolve_target
from recovery.cli.option_checks import FiniteFloatRange
from recovery.cli.options import (
    ENV_PREFIX,
    RecoveryOptions,
    duration_seconds,
    journal_db_option,
    metrics_textfile_option,
    recovery_options,
)
from recovery.core.defaults import (
    DEFAULT_REPORT_INTERVAL,
    DEFAULT_START_WAIT,
    DEFAULT_SYNC_POWER_STATE_INTERVAL,
    DEFAULT_UPDATE_RESOURCES_INTERVAL,
    MAX_TIER_TIMEOUT,
)
from recovery.core.errors import RecoveryError
from recovery.core.exit_codes import EXIT_OK, EXIT_UNAVAILABLE
from recovery.core.metadata import format_duration
from recovery.core.settings import AgentSettings
from recovery.run.boot import node_name
from states.power_sync import LIFECYCLE_DELAY

log = logging.getLogger(__name__)

T = TypeVar("T")

START_RETRY_MAX_S = 30.0
"""The longest pause between two tries."""


def _positive(name: str, default: float, help_text: str):
    return click.option(f"--{name}", type=FiniteFloatRange(0.1, 86_400), default=default, show_default=True,
                        envvar=ENV_PREFIX + name.upper().replace("-", "_"), help=help_text)


@click.command(cls=GroupedCommand)
@_positive("report-interval", DEFAULT_REPORT_INTERVAL, "Seconds between heartbeats to the service record.")
@_positive("sync-power-state-interval", DEFAULT_SYNC_POWER_STATE_INTERVAL,
           "Seconds between full power-state syncs of every instance.")
@_positive("update-resources-interval", DEFAULT_UPDATE_RESOURCES_INTERVAL,
           "Seconds between updates of the compute node record.")
@_positive("lifecycle-event-delay", LIFECYCLE_DELAY,
           "Seconds a STOPPED event waits; a later event of the guest (a reboot) drops it.")
@click.option("--metrics-port", type=click.IntRange(0, 65_535), envvar=ENV_PREFIX + "METRICS_PORT",
              help="Serve Prometheus metrics over HTTP on this port [default: not served].")
@click.option("--metrics-address", default="127.0.0.1", show_default=True, envvar=ENV_PREFIX + "METRICS_ADDRESS",
              help="Address the metrics port listens on: this host only, unless told otherwise (0.0.0.0 for every "
              "interface).")
@metrics_textfile_option("Also write the metrics to this file (node-exporter's textfile collector; name it *.prom).")
@click.option("--start-wait", default=format_duration(DEFAULT_START_WAIT), show_default=True, metavar="DURATION",
              callback=duration_seconds(MAX_TIER_TIMEOUT), envvar=ENV_PREFIX + "START_WAIT",
              help="How long to wait, trying again with backoff, for a database or libvirt that does not answer "
              "at start (slow to come up at boot) before exiting 6.")
@journal_db_option
@nova_conf_options()
@recovery_options
def agent(report_interval: float, sync_power_state_interval: float, update_resources_interval: float,
          lifecycle_event_delay: float, metrics_port: int | None, metrics_address: str, metrics_textfile: str | None,
          start_wait: float, **recovery) -> None:
    """Recover this host as `run` does, then stay and keep its records true.

    Heartbeats the service record, syncs power states from libvirt's lifecycle events and
    periodically, updates the compute node record, disables the service while libvirt is lost.
    SIGTERM or SIGINT: finish the work in hand and exit 0. Under systemd (Type=notify): READY=1
    once the host is recovered, and watchdog pings.
    """
    settings = AgentSettings(report_interval=report_interval, sync_power_state_interval=sync_power_state_interval,
                             update_resources_interval=update_resources_interval,
                             lifecycle_event_delay=lifecycle_event_delay, metrics_textfile=metrics_textfile)
    keep_host(RecoveryOptions(**recovery), settings, metrics_port, metrics_address, start_wait)


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
              metrics_address: str, start_wait: float = DEFAULT_START_WAIT) -> None:
    logs.raise_to_info()
    recovery = resolve_target(recovery)
    host, libvirt_uri, instances_path = recovery.host, recovery.libvirt_uri, recovery.instances_path
    systemd, metrics = Systemd(), Metrics()
    deadline = time.monotonic() + start_wait
    db = _when_answering(lambda: open_db(recovery.db_url, timeout=recovery.db_timeout), deadline, systemd)
    journal = open_journal(recovery.journal_db_url, db, recovery.db_timeout)
    try:
        nova_cell = require_schema(db, False, journal)
        start_event_loop()  # before the connection is opened: libvirt binds its events to the loop then
        hypervisor = _when_answering(lambda: Hypervisor.open(libvirt_uri, read_only=False,
                                                             instances_path=instances_path), deadline, systemd)
        run = recovery.settings(node_name(db, host, recovery.node, hypervisor), False, nova_cell)
        if metrics_port is not None:
            _serve_metrics(metrics, metrics_port, metrics_address)
        keeper = Agent(db, hypervisor, run, settings, metrics,
                       reopen=lambda: Hypervisor.open(libvirt_uri, instances_path=instances_path),
                       workers=recovery.concurrency)
        interruption, recovering = Interruption(), threading.Event()
        recovering.set()

        def on_signal(number: int, frame: FrameType | None) -> None:
            keeper.stop()
            if recovering.is_set():  # the recovery stops taking instances, as `run`: within the stop timeout
                interruption.received(number, frame)

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, on_signal)
        keeper.listen()
        systemd.notify(f"STATUS=recovering host {host}")
        started = time.monotonic()
        network = NetworkHook(recovery.plug_vifs_command, recovery.network_apply_command)
        result = recover(hypervisor, db, run, network, journal=journal, interruption=interruption)
        recovering.clear()
        metrics.record_run(result)
        if result.halted is None:
            metrics.beat()  # the run's closing heartbeat
        print_report_document(journaled_report(result, journal or db))
        if not keeper.stopping:
            keeper.recheck = lambda hv, settings: recover(hv, db, settings, network, journal=journal)
            keeper.start(started, guests_started(result), guests_blocked(result))
            keeper.on_tick = systemd.ping
            systemd.notify(f"READY=1\nSTATUS=host {host} recovered (exit code {result.exit_code}); keeping its "
                           "records")
            keeper.serve()
        systemd.notify("STOPPING=1")
        logging.getLogger(__name__).info("stopped by a signal: the work in hand was finished")
    finally:
        metrics.close()
        db.close()
        if journal is not None:
            journal.close()
    sys.exit(EXIT_OK)


def _when_answering(opening: Callable[[], T], deadline: float, systemd: Systemd) -> T:
    """What `opening` opens, tried again with backoff (1 s, doubling, at most START_RETRY_MAX_S) while
    what it opens does not answer (exit code 6: a database or libvirtd still starting at boot), until
    `deadline` (time.monotonic()); then its error."""
    delay = 1.0
    while True:
        try:
            return opening()
        except RecoveryError as error:
            left = deadline - time.monotonic()
            if exit_code(error) != EXIT_UNAVAILABLE or left <= 0:
                raise
            wait = min(delay, left)
            log.warning("%s; trying again in %g s (--start-wait: %s left)", error, wait, format_duration(left))
            systemd.notify("STATUS=waiting for the database or libvirt to answer (--start-wait)")  # latin-1 only
            time.sleep(wait)
            delay = min(delay * 2, START_RETRY_MAX_S)


def _serve_metrics(metrics: Metrics, port: int, address: str) -> None:
    try:
        metrics.serve(port, address)
    except OSError as error:
        raise CommandError(f"cannot serve metrics on {address}:{port}: {error.strerror} — choose another "
                           "--metrics-port") from error

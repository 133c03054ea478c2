"""The agent's life after the recovery: lifecycle events, periodic tasks, a lost libvirt.

One thread does all the work, so an event and a periodic sync never race for one record: the
libvirt event loop thread only queues what it hears, and the loop below takes events and due
tasks in turn. A STOPPED event waits (Nova's 15 s) and is dropped if a later event of the same
guest comes first. A storage pool, network or node device appearing re-checks the guests the run
blocked for a missing resource (docs/devices.md). `stop()` (from a signal handler) lets the task in hand
finish, then the loop ends: no heartbeat after it.
"""

import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.agent.metrics import Metrics
from recovery.agent.sync import SyncResult, sync_all, sync_one
from recovery.core.effects import action_starts_guest
from recovery.core.errors import RecoveryError
from recovery.core.outcomes import Outcome
from recovery.core.settings import AgentSettings, Recheck, RunSettings
from recovery.db import Database, DatabaseError
from recovery.db import services as service_records
from recovery.run.boot import RunResult
from states.enums import PowerState
from states.power_sync import DELAYED_EVENTS, EVENT_POWER_STATE, LifecycleEvent

log = logging.getLogger(__name__)

def guests_started(result: RunResult) -> set[str]:
    """The instances whose guest the run started, resumed or brought back (by an action that succeeded)."""
    return {r.uuid for r in result.instances
            if any(action_starts_guest(a.action) and a.outcome == Outcome.OK for a in r.actions)}


def guests_blocked(result: RunResult) -> Recheck:
    """The instances the run kept off for a missing resource, to re-check (with that run's downtime) when one
    appears."""
    return Recheck(frozenset(r.uuid for r in result.instances if r.outcome == Outcome.BLOCKED),
                   result.host_down_seconds)


@dataclass(frozen=True)
class _Event:
    uuid: str
    event: int


@dataclass(frozen=True)
class _Lost:
    why: str


@dataclass(frozen=True)
class _Appeared:
    what: str


_WAKE = object()


class AgentState:
    """What the agent's parts share: the records and the hypervisor (replaced when libvirt comes back),
    the settings, the metrics, the clock (monotonic seconds; tests pass their own), the inbox the
    loop takes from, and how a sync's result is counted."""

    def __init__(self, db: Database, hypervisor: Hypervisor, run: RunSettings, settings: AgentSettings,
                 metrics: Metrics, reopen: Callable[[], Hypervisor],
                 clock: Callable[[], float] = time.monotonic, workers: int = 0) -> None:
        """`workers`: instances synced at once beside the loop (a stop may wait --stop-timeout for a guest,
        as Nova's stop does in a thread of its own); 0 syncs inline, which tests with a clock use."""
        self.db, self.hv, self.run, self.settings = db, hypervisor, run, settings
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync") if workers else None
        self._instance_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self.metrics, self.reopen, self.clock = metrics, reopen, clock
        self.connected = True
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # put() is safe from a signal handler
        self._delayed: dict[str, tuple[float, LifecycleEvent]] = {}
        self._due: dict[str, float] = {}
        self._stopping = threading.Event()
        self._to_run: set[str] = set()
        self._run_started = 0.0
        self.events_heard = 0
        """Lifecycle events the listener has queued so far."""
        self.on_tick: Callable[[], None] = lambda: None
        """Called at every turn of the loop (the systemd watchdog ping)."""
        self.recheck: Callable[[Hypervisor, RunSettings], RunResult] | None = None
        """Runs the recovery over the blocked guests alone (the command's `recover`); None: never re-checked."""
        self._blocked = Recheck(frozenset(), None)
        self._appeared: list[str] = []
        self.resources_heard = 0
        """Storage pool, network and node device events the listener has queued so far."""

    def _count(self, result: SyncResult, cause: str) -> None:
        decision = result.decision
        self.metrics.syncs.labels(action=decision.action.value, outcome=result.outcome).inc()
        if decision.skip:
            log.debug("instance %s (%s): not synced: %s", result.uuid, cause, decision.reason)
        elif decision.record_power is not None or result.outcome != Outcome.UNCHANGED:
            log.info("instance %s (%s): %s: %s%s", result.uuid, cause, decision.reason, result.outcome,
                     f" ({result.error})" if result.error else "")


class EventListener(AgentState):
    """Lifecycle events: heard on libvirt's event loop thread, which only queues them; taken by the
    loop, each syncs its instance, a STOPPED event after Nova's delay unless a later one overtakes it."""

    def heard(self, uuid: str, event: int) -> None:
        """The listener: called on libvirt's event loop thread, so it only queues."""
        self._inbox.put(_Event(uuid.lower(), event))
        self.events_heard += 1

    def heard_resource(self, what: str) -> None:
        """A storage pool, network or node device appeared: called on libvirt's event loop thread, so it only
        queues."""
        self._inbox.put(_Appeared(what))
        self.resources_heard += 1

    def _watch(self, hypervisor: Hypervisor) -> None:
        """Register for the guests' lifecycle events and the resources' (raises HypervisorError)."""
        hypervisor.watch_lifecycle(self.heard, self.heard_close)
        hypervisor.watch_resources(self.heard_resource)

    def heard_close(self, reason: int) -> None:
        """libvirt closed the connection (libvirtd stopped or crashed): called on the event loop thread."""
        self._inbox.put(_Lost(f"libvirt closed the connection (reason {reason})"))

    def _event(self, uuid: str, event_type: int) -> None:
        try:
            event = LifecycleEvent(event_type)
        except ValueError:
            return  # an event that says no power state (defined, undefined, ...): Nova ignores it too
        if self._delayed.pop(uuid, None) is not None:
            self.metrics.events.labels(outcome="dropped").inc()
            log.info("instance %s: a later event overtook its delayed STOPPED event, which is dropped", uuid)
        if event in DELAYED_EVENTS:
            self._delayed[uuid] = (self.clock() + self.settings.lifecycle_event_delay, event)
            return
        self._sync_event(uuid, event)

    def _sync_event(self, uuid: str, event: LifecycleEvent) -> None:
        if not self.connected:
            return
        if self._pool is None:
            self._sync_now(uuid, event)
        else:
            self._pool.submit(self._sync_now, uuid, event)

    def _sync_now(self, uuid: str, event: LifecycleEvent) -> None:
        """One instance at a time (events of one guest in order); a lost libvirt goes back to the loop."""
        with self._instance_locks[uuid]:
            self._sync_locked(uuid, event)

    def _sync_locked(self, uuid: str, event: LifecycleEvent) -> None:
        try:
            row = self.db.load_instances_by_uuid([uuid]).get(uuid)
            if row is None:
                self.metrics.events.labels(outcome="ignored").inc()
                return
            result = sync_one(self.db, self.hv, self.run.host, row, EVENT_POWER_STATE[event], self.run.stop_timeout)
        except HypervisorLost as lost:
            self._inbox.put(_Lost(str(lost)))
            return
        except DatabaseError as error:
            log.warning("instance %s: event %s not synced: %s", uuid, event.name, error)
            return
        self.metrics.events.labels(outcome="handled").inc()
        self._count(result, f"event {event.name}")


class PeriodicTasks(EventListener):
    """The tasks due by the clock (heartbeat, power sync, resources, reconnecting to a lost libvirt)
    and what losing libvirt stops. Above the listener, which reconnecting registers again."""

    def _periodic(self) -> dict[str, tuple[float, Callable[[], None]]]:
        """Each periodic task's interval and body; `reconnect` is scheduled only while libvirt is lost."""
        s = self.settings
        return {"heartbeat": (s.report_interval, self._task_heartbeat),
                "power_sync": (s.sync_power_state_interval, self._task_power_sync),
                "resources": (s.update_resources_interval, self._task_resources),
                "reconnect": (s.reconnect_interval, self._task_reconnect)}

    def _task_heartbeat(self) -> None:
        try:
            self.db.heartbeat(self.run.host, create=not self.run.nova_cell)
        except DatabaseError as error:
            log.warning("heartbeat not written: %s", error)
            return
        self.metrics.beat()
        self._check_guests_running()
        self._write_metrics()

    def _task_power_sync(self) -> None:
        if not self.connected:
            return
        try:
            for result in sync_all(self.db, self.hv, self.run.host, self.run.stop_timeout):
                self._count(result, "periodic sync")
        except HypervisorLost as lost:
            self._lost(str(lost))
        except (HypervisorError, DatabaseError) as error:
            log.warning("power-state sync stopped: %s", error)

    def _task_resources(self) -> None:
        if not self.connected:
            return
        try:
            capacity = self.hv.capacity()
            self.db.upsert_compute_node(self.run.host, self.run.node, capacity.vcpus, capacity.memory_mb,
                                        capacity.local_gb, create=not self.run.nova_cell)
        except HypervisorLost as lost:
            self._lost(str(lost))
        except (HypervisorError, DatabaseError) as error:
            log.warning("compute node not updated: %s", error)

    def _task_reconnect(self) -> None:
        try:
            hypervisor = self.reopen()
            self._watch(hypervisor)
        except HypervisorError as error:
            log.info("libvirt still unreachable: %s", error)
            return
        self.hv, self.connected = hypervisor, True
        self._due.pop("reconnect", None)
        self.metrics.libvirt_connected.set(1)
        log.warning("the connection to libvirt is back")
        try:
            if service_records.auto_enable(self.db, self.run.host):
                log.warning("service re-enabled: it had disabled itself when libvirt was lost")
        except (DatabaseError, service_records.ServiceNotFound) as error:
            log.warning("service not re-enabled: %s", error)
        self._task_power_sync()  # whatever happened meanwhile
        self._appeared.append("libvirt's return")  # a resource may have appeared unheard

    def _lost(self, why: str) -> None:
        """Stop using libvirt, disable the service (unless an operator already did), and try to reconnect."""
        if not self.connected:
            return
        self.connected = False
        self.metrics.libvirt_connected.set(0)
        self._delayed.clear()
        self._due["reconnect"] = self.clock() + self.settings.reconnect_interval
        log.error("lost the connection to libvirt: %s", why)
        try:
            if service_records.auto_disable(self.db, self.run.host, service_records.LIBVIRT_LOST_REASON):
                log.warning("service disabled: %s", service_records.LIBVIRT_LOST_REASON)
        except (DatabaseError, service_records.ServiceNotFound) as error:
            log.warning("service not disabled: %s", error)

    def _check_guests_running(self) -> None:
        """Once every guest the run started is running, record how long that took from the run's start."""
        if not self._to_run or not self.connected:
            return
        try:
            running = {d.uuid.lower() for d in self.hv.domains() if d.power_state is PowerState.RUNNING}
        except HypervisorError:
            return
        if self._to_run <= running:
            self.metrics.guests_running.set(time.monotonic() - self._run_started)
            self._to_run = set()

    def _write_metrics(self) -> None:
        if self.settings.metrics_textfile:
            try:
                self.metrics.write_textfile(self.settings.metrics_textfile)
            except OSError as error:
                log.warning("metrics file %s not written: %s", self.settings.metrics_textfile, error)


class BlockedGuests(PeriodicTasks):
    """The guests the run kept off for a missing resource (docs/devices.md): when a storage pool, network or
    node device appears, the recovery runs again over them alone, which proves their devices afresh and starts
    those now ready in their tiers; the ones still missing something wait for the next."""

    def _recheck_blocked(self) -> None:
        """One re-check for everything heard since the last (a burst of events is one run)."""
        appeared, self._appeared = self._appeared, []
        blocked = self._blocked
        if not appeared or not blocked.uuids or self.recheck is None or not self.connected:
            return
        log.warning("re-checking %d blocked guest(s): %s appeared", len(blocked.uuids), ", ".join(appeared))
        try:
            result = self.recheck(self.hv, replace(self.run, recheck=blocked))
        except HypervisorLost as lost:
            self._lost(str(lost))
            self._appeared = appeared  # again once libvirt is back
            return
        except RecoveryError as error:
            log.warning("blocked guests not re-checked: %s", error)
            return
        self.metrics.record_run(result)
        self._blocked = replace(blocked, uuids=guests_blocked(result).uuids)
        started = guests_started(result)
        if started:
            log.warning("started %d guest(s) a run had blocked: %s", len(started), ", ".join(sorted(started)))


class Agent(BlockedGuests):
    """Keeps one host's records true after its recovery: listen, start, then serve events and due
    tasks in turn on one thread until stopped."""

    def listen(self) -> None:
        """Register for the hypervisor's lifecycle events: before the recovery starts, as Nova does."""
        self._watch(self.hv)
        self.metrics.libvirt_connected.set(1)

    def stop(self) -> None:
        """Finish the work in hand, then leave the loop (signal-safe)."""
        self._stopping.set()
        self._inbox.put(_WAKE)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self, run_started: float, guests_to_run: set[str], blocked: Recheck | None = None) -> None:
        """Schedule the periodic tasks, counting from now (the run has just beaten once); `blocked`: the guests
        the run kept off for a missing resource (guests_blocked), re-checked when a resource appears."""
        now = self.clock()
        self._due = {task: now + interval for task, (interval, _) in self._periodic().items() if task != "reconnect"}
        self._run_started, self._to_run = run_started, set(guests_to_run)
        self._blocked = blocked or self._blocked
        self._check_guests_running()
        self._write_metrics()

    def serve(self) -> None:
        while not self.stopping:
            self.tick()
            if self.stopping:
                break
            with contextlib.suppress(queue.Empty):
                self._take(self._inbox.get(timeout=self._seconds_to_next()))
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # the work in hand finishes before the agent exits
        self._write_metrics()

    def tick(self) -> None:
        """Everything heard so far and everything due by the clock now."""
        self.on_tick()
        while not self.stopping:
            try:
                self._take(self._inbox.get_nowait())
            except queue.Empty:
                break
        if not self.stopping:
            self._recheck_blocked()
        now = self.clock()
        for uuid in sorted(uuid for uuid, (due, _) in self._delayed.items() if due <= now):
            delayed = self._delayed.pop(uuid, None)  # a lost connection clears them meanwhile
            if delayed is not None and not self.stopping:
                self._sync_event(uuid, delayed[1])
        for task, due in sorted(self._due.items(), key=lambda item: item[1]):
            if due <= now and not self.stopping:
                interval, run = self._periodic()[task]
                self._due[task] = now + interval
                run()

    def _seconds_to_next(self) -> float:
        dues = [*self._due.values(), *(due for due, _ in self._delayed.values())]
        return min(max(0.0, min(dues, default=1.0) - self.clock()), 1.0)

    def _take(self, item: object) -> None:
        if isinstance(item, _Event):
            self._event(item.uuid, item.event)
        elif isinstance(item, _Lost):
            self._lost(item.why)
        elif isinstance(item, _Appeared):
            self._appeared.append(item.what)

"""Ordered restart: the guests a run starts go in tiers by `recover:priority`, lowest first, within
their project: a tenant's priorities order its own guests and never hold another project's back.

A tier's guests are started at most --concurrency at once (all projects together); the tier is done
when each guest it started is ready by its `recover:ready` check (after its `recover:start-delay`),
or when --tier-timeout has passed since the tier began, or when the run's --readiness-budget is
spent: a guest still not ready then is reported `not-ready`, with why, and the project's next tier
starts anyway. A check whose target is not the guest's (recovery/core/probe_targets.py) is refused
before any connection and not waited for. Instances whose decision starts no guest are not in a
tier (recovery/run/boot.py recovers them before the tiers).

`TierWait` is the pure part (what a tier waits on, which checks are due, when it is done: times
are passed in); `run_tiers` drives it with the executor, the checks (recovery/adapters/probes.py), the
journal and the clock.
"""

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from contextlib import suppress
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue

from recovery.adapters.hypervisor import HypervisorLost
from recovery.adapters.probes import ProbeRefused, not_ready_because
from recovery.core.effects import starts_guest
from recovery.core.metadata import READY_RUNNING, StartOrder
from recovery.core.outcomes import Outcome
from recovery.core.probe_targets import IPNetwork
from recovery.db import DatabaseError
from recovery.db.journal import update_entry
from recovery.run.execute import Assignment, InstanceResult, Ports
from recovery.run.journal_entries import outcome_entry

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.5
"""Seconds between two checks of a guest that is not ready yet."""


@dataclass
class Tier:
    priority: int
    assignments: list[Assignment]
    project: str | None = None
    """The tenant whose guests these are: tiers order one project's guests only."""


def tiers_of(assignments: Iterable[Assignment]) -> list[Tier]:
    """Assignments with a start order, grouped by project and priority: each project's tiers lowest first,
    projects in the order their first assignment comes; their order within a tier."""
    by_tier: dict[str | None, dict[int, list[Assignment]]] = {}
    for assignment in assignments:
        by_tier.setdefault(assignment.project, {}).setdefault(assignment.order.priority, []).append(assignment)
    return [Tier(priority, tiers[priority], project)
            for project, tiers in by_tier.items() for priority in sorted(tiers)]


@dataclass
class TierReport:
    """One tier of a run, for the report; the times are time.monotonic() (None on a dry run)."""

    priority: int
    instances: int
    began: float | None = None
    ended: float | None = None
    not_ready: int = 0
    project: str | None = None


class TierWait:
    """The guests of one tier that were started and are not ready yet. Pure: every time is given."""

    def __init__(self, deadline: float, interval: float = CHECK_INTERVAL):
        self.deadline = deadline
        self.interval = interval
        self._awaited: dict[str, tuple[StartOrder, float]] = {}
        """uuid → (its order, when it was started)."""
        self._next_check: dict[str, float] = {}
        self.ready_seconds: dict[str, float] = {}
        """Seconds from its start until it was seen ready, by uuid."""
        self._why: dict[str, str] = {}
        self.refused: dict[str, str] = {}
        """Guests whose check was refused before any connection (recovery/core/probe_targets.py), and why:
        never ready, so not waited for."""

    def started(self, uuid: str, order: StartOrder, now: float) -> None:
        self._awaited[uuid] = (order, now)
        self._next_check[uuid] = now + order.start_delay
        if not order.waits:
            self.checked(uuid, None, now)

    def due(self, now: float) -> list[tuple[str, StartOrder]]:
        """The awaited guests to check now. A `running` one needs no check: its start-delay has passed."""
        due = []
        for uuid, at in list(self._next_check.items()):
            if at <= now:
                order = self._awaited[uuid][0]
                if order.ready == READY_RUNNING:
                    self.checked(uuid, None, now)
                else:
                    due.append((uuid, order))
        return due

    def checked(self, uuid: str, why_not: str | None, now: float) -> None:
        """A check's answer: None (ready) or why it is not ready yet."""
        if why_not is None:
            self.ready_seconds[uuid] = now - self._awaited.pop(uuid)[1]
            del self._next_check[uuid]
        else:
            self._why[uuid] = why_not
            self._next_check[uuid] = now + self.interval

    def refuse(self, uuid: str, why: str) -> None:
        """The guest's check may not be made: it is not waited for (its tier does not wait its timeout)."""
        self._awaited.pop(uuid, None)
        self._next_check.pop(uuid, None)
        self.refused[uuid] = why

    def done(self, now: float) -> bool:
        return not self._awaited or now >= self.deadline

    def wake_in(self, now: float) -> float | None:
        """Seconds until the next check is due or the deadline; None once done (nothing to wake for)."""
        if self.done(now):
            return None
        return max(0.0, min(self.deadline, *self._next_check.values()) - now)

    def not_ready(self) -> dict[str, str]:
        """Why each guest still awaited is not ready (once the tier is done)."""
        return {uuid: self._why.get(uuid) or self._unchecked(order, started)
                for uuid, (order, started) in self._awaited.items()} | self.refused

    def _unchecked(self, order: StartOrder, started: float) -> str:
        if started + order.start_delay >= self.deadline:
            return f"its start-delay of {order.start_delay:g} s did not end before the tier timeout"
        return "the tier timeout passed before it was checked"


def _check(ports: Ports, waiting: TierWait, uuid: str, order: StartOrder, allowed: tuple[IPNetwork, ...],
           network_info: str | None) -> None:
    """Check the guest and record the answer; a refused target is not waited for; a lost hypervisor
    halts the run."""
    try:
        why = not_ready_because(ports.hypervisor, uuid, order, allowed, network_info)
    except ProbeRefused as refused:
        log.warning("%s: readiness check %s refused: %s", uuid, order.describe(), refused)
        waiting.refuse(uuid, str(refused))
        return
    except HypervisorLost as lost:
        ports.halt.stop(f"lost the hypervisor: {lost}")
        why = str(lost)
    waiting.checked(uuid, why, time.monotonic())


def _journal_not_ready(ports: Ports, assignment: Assignment, result: InstanceResult) -> None:
    if assignment.journal_id is None or ports.halt.database_failed:
        return
    try:
        with ports.journal_database.transaction(f"journal that {assignment.uuid} is not ready") as conn:
            update_entry(conn, assignment.journal_id, outcome_entry(result))
    except DatabaseError as error:
        ports.halt.stop(str(error), database=True)


@dataclass
class _Lane:
    """One project's tiers, one after another; the lanes of different projects run side by side."""

    tiers: list[Tier]
    index: int = 0
    report: TierReport | None = None
    waiting: TierWait | None = None
    running: dict[Future, Assignment] = field(default_factory=dict)
    results: list[InstanceResult] = field(default_factory=list)

    @property
    def tier(self) -> Tier:
        return self.tiers[self.index]


@dataclass(frozen=True)
class Readiness:
    """How long a run waits for its guests: each tier at most `tier_timeout` seconds, the whole run
    at most `budget` seconds (whatever the metadata says), and checks only where `allowed`."""

    tier_timeout: float
    budget: float
    allowed: tuple[IPNetwork, ...]


def run_tiers(tiers: list[Tier], pool: Executor, execute: Callable[[Assignment], InstanceResult], ports: Ports,
              readiness: Readiness) -> tuple[list[InstanceResult], list[TierReport]]:
    """Each project's tiers in turn, the projects side by side: a tier's assignments executed on `pool` (shared,
    so --concurrency bounds them all), then its guests checked until ready, its tier timeout or the
    run's readiness budget; one not ready is journaled so. A halted run stops waiting (the next
    tiers then start nothing)."""
    halt = ports.halt
    finished: SimpleQueue[Future] = SimpleQueue()
    owner: dict[Future, _Lane] = {}
    budget_ends = time.monotonic() + readiness.budget
    lanes: dict[str | None, _Lane] = {}
    for tier in tiers:
        lanes.setdefault(tier.project, _Lane([])).tiers.append(tier)
    active = list(lanes.values())
    network_info = {assignment.uuid: assignment.network_info for tier in tiers for assignment in tier.assignments
                    if assignment.network_info}
    results: list[InstanceResult] = []
    reports: list[TierReport] = []

    def begin(lane: _Lane) -> None:
        now = time.monotonic()
        lane.report = TierReport(lane.tier.priority, len(lane.tier.assignments), began=now, project=lane.tier.project)
        lane.waiting, lane.results = TierWait(min(now + readiness.tier_timeout, budget_ends)), []
        for assignment in lane.tier.assignments:
            future = pool.submit(execute, assignment)
            lane.running[future], owner[future] = assignment, lane
            future.add_done_callback(finished.put)  # a queue, not concurrent.futures.wait: that walks every future

    for lane in active:
        begin(lane)
    while active:
        now = time.monotonic()
        pause = min((p for lane in active if (p := lane.waiting.wake_in(now)) is not None), default=None)
        if any(lane.running for lane in active):
            with suppress(Empty):
                future = finished.get(timeout=pause)
                lane = owner.pop(future)
                assignment, result = lane.running.pop(future), future.result()
                lane.results.append(result)
                if result.outcome == Outcome.OK and result.decision is not None and starts_guest(result.decision):
                    lane.waiting.started(assignment.uuid, assignment.order, time.monotonic())
        else:
            time.sleep(pause or 0.0)
        for lane in list(active):
            if not (lane.waiting.done(time.monotonic()) or halt.reason):
                for uuid, order in lane.waiting.due(time.monotonic()):
                    _check(ports, lane.waiting, uuid, order, readiness.allowed, network_info.get(uuid))
            if lane.running or not (lane.waiting.done(time.monotonic()) or halt.reason):
                continue
            results += lane.results
            reports.append(_end_tier(lane, ports, readiness))
            lane.index += 1
            if lane.index < len(lane.tiers):
                begin(lane)
            else:
                active.remove(lane)
    return results, reports


def _end_tier(lane: _Lane, ports: Ports, readiness: Readiness) -> TierReport:
    """The tier's report; each guest not ready marked so, with why, in its result and the journal."""
    report, waiting = lane.report, lane.waiting
    report.ended = time.monotonic()
    late = {} if ports.halt.reason else waiting.not_ready()
    by_uuid = {assignment.uuid: assignment for assignment in lane.tier.assignments}
    if waiting.deadline < report.began + readiness.tier_timeout:
        limit = f"not ready within the run's readiness budget ({readiness.budget:g} s)"
    else:
        limit = f"not ready within the tier timeout ({readiness.tier_timeout:g} s)"
    for result in lane.results:
        result.ready_seconds = waiting.ready_seconds.get(result.uuid)
        if result.uuid in late:
            result.outcome = Outcome.NOT_READY
            result.error = (f"readiness check refused, no connection made: {late[result.uuid]}"
                            if result.uuid in waiting.refused else f"{limit}: {late[result.uuid]}")
            _journal_not_ready(ports, by_uuid[result.uuid], result)
    report.not_ready = len(late)
    return report

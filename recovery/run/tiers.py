"""Ordered restart: the guests a run starts go in tiers by `recover:priority`, lowest first.

A tier's guests are started at most --concurrency at once; the tier is done when each guest it
started is ready by its `recover:ready` check (after its `recover:start-delay`), or when
--tier-timeout has passed since the tier began: a guest still not ready then is reported
`not-ready`, with why, and the next tier starts anyway. Instances whose decision starts no guest
are not in a tier (recovery/run/boot.py recovers them before the tiers).

`TierWait` is the pure part (what a tier waits on, which checks are due, when it is done: times
are passed in); `run_tiers` drives it with the executor, the checks (recovery/adapters/probes.py), the
journal and the clock.
"""

import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from contextlib import suppress
from dataclasses import dataclass
from queue import Empty, SimpleQueue

from recovery.adapters.hypervisor import HypervisorLost
from recovery.adapters.probes import not_ready_because
from recovery.core.effects import starts_guest
from recovery.core.metadata import READY_RUNNING, StartOrder
from recovery.core.outcomes import Outcome
from recovery.db import DatabaseError
from recovery.db.journal import update_entry
from recovery.run.execute import InstanceResult, Plan, Ports
from recovery.run.journal_entries import outcome_entry

CHECK_INTERVAL = 0.5
"""Seconds between two checks of a guest that is not ready yet."""


@dataclass
class Tier:
    priority: int
    plans: list[Plan]


def tiers_of(plans: Iterable[Plan]) -> list[Tier]:
    """Plans with a start order, grouped by priority, lowest first; plan order within a tier."""
    by_priority: dict[int, list[Plan]] = {}
    for plan in plans:
        by_priority.setdefault(plan.order.priority, []).append(plan)
    return [Tier(priority, by_priority[priority]) for priority in sorted(by_priority)]


@dataclass
class TierReport:
    """One tier of a run, for the report; the times are time.monotonic() (None on a dry run)."""

    priority: int
    instances: int
    began: float | None = None
    ended: float | None = None
    not_ready: int = 0


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
                for uuid, (order, started) in self._awaited.items()}

    def _unchecked(self, order: StartOrder, started: float) -> str:
        if started + order.start_delay >= self.deadline:
            return f"its start-delay of {order.start_delay:g} s did not end before the tier timeout"
        return "the tier timeout passed before it was checked"


def _check(ports: Ports, uuid: str, order: StartOrder) -> str | None:
    """Why the guest is not ready (None: it is); a lost hypervisor halts the run."""
    try:
        return not_ready_because(ports.hypervisor, uuid, order)
    except HypervisorLost as lost:
        ports.halt.stop(f"lost the hypervisor: {lost}")
        return str(lost)


def _journal_not_ready(ports: Ports, plan: Plan, result: InstanceResult) -> None:
    if plan.journal_id is None or ports.halt.database_failed:
        return
    try:
        with ports.journal_database.transaction(f"journal that {plan.uuid} is not ready") as conn:
            update_entry(conn, plan.journal_id, outcome_entry(result))
    except DatabaseError as error:
        ports.halt.stop(str(error), database=True)


def run_tiers(tiers: list[Tier], pool: Executor, execute: Callable[[Plan], InstanceResult], ports: Ports,
              timeout: float) -> tuple[list[InstanceResult], list[TierReport]]:
    """Each tier in turn: its plans executed on `pool`, then its guests checked until ready or `timeout`;
    one not ready is journaled so. A halted run stops waiting (the next tiers then start nothing)."""
    halt = ports.halt
    results: list[InstanceResult] = []
    reports = []
    for tier in tiers:
        report = TierReport(tier.priority, len(tier.plans), began=time.monotonic())
        waiting = TierWait(report.began + timeout)
        finished: SimpleQueue[Future] = SimpleQueue()
        running: dict[Future, Plan] = {}
        for plan in tier.plans:
            running[pool.submit(execute, plan)] = plan
        for future in running:  # a queue, not concurrent.futures.wait: that walks every future at each call
            future.add_done_callback(finished.put)
        by_uuid = {plan.uuid: plan for plan in tier.plans}
        while running or not (waiting.done(time.monotonic()) or halt.reason):
            pause = waiting.wake_in(time.monotonic())
            if running:
                with suppress(Empty):
                    future = finished.get(timeout=pause)
                    plan, result = running.pop(future), future.result()
                    results.append(result)
                    if result.outcome == Outcome.OK and result.decision is not None and starts_guest(result.decision):
                        waiting.started(plan.uuid, plan.order, time.monotonic())
            else:
                time.sleep(pause or 0.0)
            if not (waiting.done(time.monotonic()) or halt.reason):
                for uuid, order in waiting.due(time.monotonic()):
                    waiting.checked(uuid, _check(ports, uuid, order), time.monotonic())
        report.ended = time.monotonic()
        late = {} if halt.reason else waiting.not_ready()
        for result in results[-len(tier.plans):]:
            result.ready_seconds = waiting.ready_seconds.get(result.uuid)
            if result.uuid in late:
                result.outcome = Outcome.NOT_READY
                result.error = f"not ready within the tier timeout ({timeout:g} s): {late[result.uuid]}"
                _journal_not_ready(ports, by_uuid[result.uuid], result)
        report.not_ready = len(late)
        reports.append(report)
    return results, reports

"""Executing a host's decisions: the evacuated instances first, then those that start no guest, then
the guests in tiers (recovery/run/tiers.py), each instance claimed and carried out by
recovery/run/execute.py on a pool of --concurrency workers. A claim lost to another writer is
decided once more from fresh facts, and journaled so. A dry run executes nothing: every action is
reported skipped.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from recovery.core.facts import record_task_state
from recovery.core.machine import Decision, RecoveryMachine
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.db import DatabaseError
from recovery.db import journal as journals
from recovery.run.decisions import DecisionScreen, decide_again
from recovery.run.devices import DeviceCheck
from recovery.run.execute import (
    ActionResult,
    Assignment,
    InstanceResult,
    LostRace,
    Ports,
    execute,
    power_to_record,
    record_stopped,
    succeeded,
)
from recovery.run.journal_entries import DecisionEntries, final_entry
from recovery.run.tiers import Readiness, TierReport, run_tiers, tiers_of


class RunWatch(Protocol):
    """What a run tells as it goes (the progress bar): how many instances it is about to execute, then,
    from the worker threads, each one's result."""

    def planned(self, total: int) -> None: ...

    def finished(self, result: InstanceResult) -> None: ...


class Execution:
    """Carries out one run's assignments; `down_seconds` is the run's, kept when an instance is decided again."""

    def __init__(self, machine: RecoveryMachine, ports: Ports, settings: RunSettings, entries: DecisionEntries,
                 down_seconds: float | None, devices: DeviceCheck, screen: DecisionScreen | None = None,
                 watch: RunWatch | None = None):
        self.machine, self.ports, self.settings, self.entries = machine, ports, settings, entries
        self.down_seconds = down_seconds
        self.devices = devices
        """The run's device proof: blocked results, and the live devices compared after the starts."""
        self.screen = screen
        self.watch = watch

    def run(self, assignments: list[Assignment]) -> tuple[list[InstanceResult], list[TierReport]]:
        """Every assignment's result (evacuations, then instances that start no guest, then the tiers) and the tiers."""
        if self.watch is not None and not self.settings.dry_run:
            self.watch.planned(len(assignments))
        executed = self._execute_all([p for p in assignments if p.evacuation_id is not None])
        executed += self._execute_all([p for p in assignments if p.evacuation_id is None and p.order is None])
        ordered, tiers = self._execute_tiers([p for p in assignments if p.evacuation_id is None and p.order])
        executed += ordered
        if not self.settings.dry_run and not self.ports.halt.reason:
            degraded = self.devices.compare_after_start(assignments, executed, self.settings.on_degraded)
            for assignment, result in degraded:
                if assignment.uuid in self.devices.stopped:
                    record_stopped(self.ports, assignment, result)
                else:
                    self._journal_again(assignment, result)
        return executed, tiers

    def _planned(self, assignment: Assignment) -> InstanceResult:
        decision = assignment.decision
        result = InstanceResult(assignment.uuid, decision, [ActionResult(a, Outcome.SKIPPED) for a in decision.actions],
                                outcome=Outcome.HANDED_OFF if decision.hands_off else Outcome.SKIPPED,
                                vm_state=decision.facts.vm_state,
                                task_state=record_task_state(decision.facts.task_state), order=assignment.order)
        self.devices.settle(assignment, result, dry_run=True)
        return result

    def _journal_again(self, assignment: Assignment, result: InstanceResult) -> None:
        """A result the device proof changed after its entry was journaled (blocked, degraded)."""
        if assignment.journal_id is None or self.ports.halt.database_failed:
            return
        try:
            with self.ports.journal_database.transaction(f"journal the device proof of {assignment.uuid}") as conn:
                journals.update_entry(conn, assignment.journal_id, final_entry(result))
        except DatabaseError as error:
            self.ports.halt.stop(str(error), database=True)

    def _execute_all(self, assignments: list[Assignment]) -> list[InstanceResult]:
        if self.settings.dry_run:
            return [self._planned(assignment) for assignment in assignments]
        with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
            return list(pool.map(self._execute_and_report, assignments))

    def _execute_tiers(self, assignments: list[Assignment]) -> tuple[list[InstanceResult], list[TierReport]]:
        """The instances that start a guest, tier by tier (recovery/run/tiers.py)."""
        tiers = tiers_of(assignments)
        if self.settings.dry_run:
            return ([self._planned(assignment) for assignment in assignments],
                    [TierReport(t.priority, len(t.assignments), project=t.project) for t in tiers])
        settings = self.settings
        readiness = Readiness(settings.tier_timeout, settings.readiness_budget, settings.probe_networks)
        with ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
            return run_tiers(tiers, pool, self._execute_and_report, self.ports, readiness)

    def _execute_and_report(self, assignment: Assignment) -> InstanceResult:
        result = self._execute_one(assignment)
        if self.devices.settle(assignment, result, dry_run=False):  # blocked: journaled as such
            self._journal_again(assignment, result)
        result.order = assignment.order
        if self.watch is not None:
            self.watch.finished(result)
        return result

    def _execute_one(self, assignment: Assignment) -> InstanceResult:
        if nothing_to_do(assignment.decision):
            return untouched(assignment)
        try:
            try:
                return execute(self.ports, assignment)
            except LostRace:
                fresh = self._redecide(assignment)
                if fresh is None:
                    return InstanceResult(assignment.uuid, assignment.decision, outcome=Outcome.CONFLICT,
                                          error="the record vanished or went bad between decision and claim")
                return self._held_back(fresh) or execute(self.ports, fresh)
        except LostRace as race:
            return InstanceResult(assignment.uuid, assignment.decision, outcome=Outcome.CONFLICT, error=str(race))
        except Exception as error:  # one instance's failure never stops the others
            return InstanceResult(assignment.uuid, assignment.decision, outcome=Outcome.FAILED,
                                  error=f"{type(error).__name__}: {error}")

    def _redecide(self, assignment: Assignment) -> Assignment | None:
        """Facts fresh from this one instance's row and domain, for one more decision after a lost claim;
        its journal entry then tells the new decision."""
        ports = self.ports
        fresh = decide_again(self.machine, self.settings, ports.database, ports.hypervisor, assignment.uuid,
                             self.down_seconds)
        if fresh is None:
            return None
        fresh.journal_id, fresh.order = assignment.journal_id, assignment.order
        if fresh.journal_id is not None:
            with ports.journal_database.transaction(f"journal the new decision for {assignment.uuid}") as conn:
                journals.update_entry(conn, fresh.journal_id, self.entries.decision(fresh.decision))
        return fresh

    def _held_back(self, assignment: Assignment) -> InstanceResult | None:
        """A decision made again after a lost claim passes the screen too (`run --plan`: the row changed
        since the plan); one held back is journaled as such."""
        held = self.screen.recheck(assignment) if self.screen is not None else None
        if held is not None and assignment.journal_id is not None:
            with self.ports.journal_database.transaction(f"journal why {assignment.uuid} was held back") as conn:
                journals.update_entry(conn, assignment.journal_id, final_entry(held))
        return held


def nothing_to_do(decision: Decision) -> bool:
    facts = decision.facts
    return not decision.actions and not power_to_record(decision) and (decision.vm_state, decision.task_state) == (
        facts.vm_state, record_task_state(facts.task_state))


def untouched(assignment: Assignment, power: str | None = None) -> InstanceResult:
    facts = assignment.decision.facts
    return InstanceResult(assignment.uuid, assignment.decision, outcome=succeeded(assignment.decision, Outcome.OK),
                          vm_state=facts.vm_state, task_state=record_task_state(facts.task_state), power_state=power)

"""Carry out one instance's decision against libvirt, the network hook and the database.

Claim before act: before its first action an instance's row is claimed by a compare-and-swap on
the (vm_state, task_state, updated_at) it was decided from, which writes the decision's own
writes and a new updated_at, so a concurrent writer is detected before any action, never after.
A row the decision changes nothing in is claimed by checking it instead (no updated_at without a
change: clients polling with changes-since would see changes that are not there); under the host
lock only another kind of writer (Nova's API) can race, and its change is seen at the end as a conflict.
Steps then run in order; each action's outcome is journaled as it completes, and the state the
actions reached is written, with the journal's final word, in one last transaction (two, the
record's first, when the journal has a database of its own). Each of these writes is committed
before the step after it, in a transaction it shares with the other workers' writes of the
moment (recovery.db.group_commit). An action
that fails applies Nova's failure writes, and one that stops on failure skips the rest.

A run that loses its database or its hypervisor is halted: no instance starts another action,
and nothing is written on behalf of an action whose end was not seen.
"""

import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.adapters.network import NetworkHook
from recovery.core.defaults import DEFAULT_STOP_TIMEOUT
from recovery.core.documents import action_json
from recovery.core.effects import action_effects
from recovery.core.errors import RecoveryError
from recovery.core.facts import record_task_state
from recovery.core.machine import Decision
from recovery.core.metadata import StartOrder
from recovery.core.outcomes import Outcome
from recovery.db import Database, DatabaseFailure
from recovery.db.group_commit import GroupCommit
from recovery.db.journal import update_entry
from recovery.db.lock import HostLease, LeaseLost
from recovery.run.journal_entries import final_entry, progress_entry
from states.enums import NO_TASK, PowerState
from states.policy import ACTIONS, Action

log = logging.getLogger(__name__)


@dataclass
class ActionResult:
    action: Action
    outcome: Outcome
    error: str | None = None
    done: dict[str, Any] = field(default_factory=dict)
    """What the action's entry adds to its parameters about what it did (the resources a repair started)."""

    def json(self) -> dict[str, Any]:
        """The action's entry in the journal and the report."""
        return {**action_json(self.action), **self.done, "outcome": self.outcome, "error": self.error}


@dataclass
class Assignment:
    """One instance given to the executor: its decision, and what carrying it out needs beyond it (which row
    to claim, where it is journaled, when its guest starts). Not to be confused with a plan file (plan_file.py),
    which holds many of these as `plan --out` wrote them."""

    uuid: str
    """Canonical (lower case), as libvirt, the report and the journal name the instance."""
    decision: Decision
    writable: bool
    """Only a live record of this host is written; evacuated or deleted ones are not ours."""
    host: str | None = None
    """The record's host when it was read: a record not written is checked to hold it still before acting."""
    evacuation_id: int | None = None
    stored_uuid: str | None = None
    """The uuid as the row stores it, when its case differs."""
    updated_at: datetime | None = None
    """The row's updated_at when it was read: part of what a claim compares."""
    journal_id: int | None = None
    record: dict | None = None
    """The decide input record it was decided from, as `plan --out` writes it."""
    order: StartOrder | None = None
    """When its guest is started (recovery/run/tiers.py); None when its decision starts no guest."""
    project: str | None = None
    """Its tenant (the record's project_id): tiers order one project's guests only."""
    network_info: str | None = None
    """On Nova's cell database, its network info cache as read (bounded, unparsed): the guest's own
    addresses, where its readiness probe may go (recovery/core/network_info.py)."""


@dataclass
class InstanceResult:
    uuid: str
    decision: Decision | None
    actions: list[ActionResult] = field(default_factory=list)
    outcome: Outcome = Outcome.OK
    error: str | None = None
    vm_state: str | None = None
    task_state: str | None = None
    power_state: str | None = None
    """Read from libvirt after the actions (None: not read)."""
    order: StartOrder | None = None
    """The start order its guest was started in, as its assignment's."""
    ready_seconds: float | None = None
    """Seconds from its start until its tier saw it ready (None: not awaited, or never ready)."""
    updated_at: datetime | None = None
    """The record's updated_at as this run last committed it (a later write compares it: record_stopped)."""


class Halt:
    """Shared by every instance of one run: once the database or the hypervisor is gone, no
    instance starts another action. The first reason is kept."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self.database_failed = False
        self.signal: int | None = None
        """The signal (SIGINT, SIGTERM) that stopped the run, if one did."""
        self._lock = threading.Lock()

    def stop(self, reason: str, database: bool = False) -> None:
        with self._lock:
            self._reason = self._reason or reason
            self.database_failed = self.database_failed or database

    def interrupt(self, number: int) -> None:
        """A signal asks the run to stop: no instance starts another action; those under way finish."""
        with self._lock:
            self.signal = self.signal or number
            self._reason = self._reason or f"interrupted by {signal.Signals(number).name}"

    @property
    def reason(self) -> str | None:
        return self._reason


@dataclass
class Ports:
    hypervisor: Hypervisor
    database: Database
    """The instance records (Nova's tables)."""
    network: NetworkHook
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    halt: Halt = field(default_factory=Halt)
    journal: Database | None = None
    """Where the run is journaled, when not in `database` (beside a Nova cell database)."""
    lease: HostLease = field(default_factory=HostLease)
    """The host lock the run holds (a dry run holds none: nothing to verify)."""
    repair_devices: Callable[[str], list[str]] | None = None
    """Starts the inactive resources an instance's device proof found (recovery/run/devices.py); returns
    them, named as the journal shows them."""
    writes: GroupCommit[tuple[Connection, Connection], tuple[Connection, Connection]] = field(init=False)
    """Every instance's record and journal writes, committed together with the other workers'."""

    def __post_init__(self) -> None:
        self.writes = GroupCommit(self._connections, self._recording)

    @property
    def journal_database(self) -> Database:
        return self.journal or self.database

    @contextmanager
    def _connections(self) -> Iterator[tuple[Connection, Connection]]:
        """The records' connection and the journal's (the same one when they share a database)."""
        with self.database.connection("write the instance records") as records:
            if self.journal is None:
                yield records, records
                return
            with self.journal.connection("write the journal") as journal:
                yield records, journal

    @contextmanager
    def _recording(self, held: tuple[Connection, Connection], what: str) -> Iterator[tuple[Connection, Connection]]:
        """A record write and its journal entry: one transaction in one database; in two, the
        journal's commits after the record's, so the journal never claims a write that failed."""
        records, journal = held
        if records is journal:
            with self.database.transaction_on(records, what):
                yield records, records
            return
        with self.journal_database.transaction_on(journal, f"journal: {what}"), \
                self.database.transaction_on(records, what):
            yield records, journal


class LostRace(RecoveryError):
    """The record changed under us before anything was written or done; nothing was."""


def _destroy(ports: Ports, assignment: Assignment, params: dict[str, Any], destroy_disks: bool = False) -> None:
    """Nova deletes a deleted instance's disks; an evacuated one's only when the decision says so."""
    ports.hypervisor.destroy_and_undefine(assignment.uuid,
                                          destroy_disks=destroy_disks or params.get("destroy_disks", False))


def _abort_live_migration(ports: Ports, assignment: Assignment, _params: dict[str, Any]) -> None:
    try:
        ports.hypervisor.abort_job(assignment.uuid)
    finally:
        ports.database.fail_live_migrations(assignment.stored_uuid or assignment.uuid)


def _complete_migration(ports: Ports, assignment: Assignment, _params: dict[str, Any]) -> None:
    evacuation = assignment.evacuation_id
    if evacuation is None or not ports.database.set_migration_status(evacuation, "completed"):
        raise RuntimeError("the evacuation's migration record is gone")


def _repair_devices(ports: Ports, uuid: str) -> dict[str, Any]:
    """The repair, and the resources it made sure of for the action's entry (`repaired`)."""
    if ports.repair_devices is None:
        raise ValueError("no device proof was made in this run")
    return {"repaired": ports.repair_devices(uuid)}


ActionCall = Callable[[Ports, Assignment, dict[str, Any]], dict[str, Any] | None]

ACTION_CALLS: dict[str, ActionCall] = {
    "complete_deletion": lambda ports, assignment, params: None,  # only the record write that marks it deleted
    "restart_deletion": functools.partial(_destroy, destroy_disks=True),
    "reboot": lambda ports, assignment, params: (
        ports.hypervisor.hard_reboot if params["type"] == "hard" else ports.hypervisor.soft_reboot)(assignment.uuid),
    "unpause": lambda ports, assignment, params: ports.hypervisor.unpause(assignment.uuid),
    "stop": lambda ports, assignment, params: ports.hypervisor.stop(assignment.uuid, ports.stop_timeout),
    "start": lambda ports, assignment, params: ports.hypervisor.start(assignment.uuid),
    "plug_vifs": lambda ports, assignment, params: ports.network.plug_vifs(assignment.uuid),
    "revert_resize": lambda ports, assignment, params: ports.hypervisor.revert_resize(
        assignment.uuid, params["power_on"], ports.stop_timeout),
    "abort_live_migration": _abort_live_migration,
    "resume_guest": lambda ports, assignment, params: ports.hypervisor.resume_guest(assignment.uuid),
    "destroy_evacuated": _destroy,
    "complete_migration": _complete_migration,
    "reap_domain": _destroy,
    "shutdown_domain": lambda ports, assignment, params: ports.hypervisor.shutdown(assignment.uuid),
    "repair_devices": lambda ports, assignment, params: _repair_devices(ports, assignment.uuid),
    "destroy_domain": _destroy,
}
"""What carries out each action of the vocabulary (states.policy.ACTIONS): the hypervisor, network or
database call it is, returning what its entry adds (ActionResult.done), if anything."""


def _run_action(ports: Ports, assignment: Assignment, action: Action) -> dict[str, Any]:
    return ACTION_CALLS[action.name](ports, assignment, dict(action.params)) or {}


def observed_power_to_record(decision: Decision) -> str | None:
    """The guest's power state as observed, when the decision deliberately leaves it so (recorded, so
    that nova-compute's start does not undo the decision); None when nothing asks for it."""
    return decision.facts.power_state if decision.records_power else None


def power_to_record(decision: Decision) -> bool:
    """Whether the record's power state must be written though the decision changes nothing else."""
    observed = observed_power_to_record(decision)
    return observed is not None and observed != decision.facts.db_power_state


class _Record:
    """The instance record as this run intends it, and what the database last confirmed."""

    def __init__(self, ports: Ports, assignment: Assignment):
        facts = assignment.decision.facts
        self.ports, self.db, self.assignment = ports, ports.database, assignment
        self.confirmed = (facts.vm_state, record_task_state(facts.task_state), assignment.updated_at)
        self.vm_state, self.task_state = self.confirmed[:2]
        self.stored_power: str | None = facts.db_power_state
        """The power state the record holds (None: not known): one equal to it is not written again."""
        self.power_state: str | None = observed_power_to_record(assignment.decision)
        self.mark_deleted = False
        self.claimed = False

    def apply(self, effects: dict) -> None:
        for name, value in effects.items():
            if name == "vm_state":
                self.vm_state = value
            elif name == "task_state":
                self.task_state = value
            elif name == "power_state":
                self.power_state = value
            elif name == "deleted":
                self.mark_deleted = bool(value)

    def write(self, conn: Connection) -> bool:
        """Compare-and-swap what changed, with a new updated_at; with nothing changed (a claim before an
        action that changes nothing in the record), only check that the row still holds what it was
        decided from. False when another writer changed the row since it was read."""
        if not self.assignment.writable:
            return True
        changes: dict[str, Any] = {}
        if (self.vm_state, self.task_state) != self.confirmed[:2]:
            changes.update(vm_state=self.vm_state, task_state=self.task_state)
        if self.power_state is not None and self.power_state != self.stored_power:
            changes["power_state"] = int(PowerState[self.power_state.upper()])
        if self.mark_deleted:
            changes["mark_deleted"] = True
        uuid = self.assignment.stored_uuid or self.assignment.uuid
        if not changes:  # nothing to change in the record: checked, not written (no new updated_at)
            if not self.db.still_holds(conn, uuid, self.confirmed):
                return False
            self.claimed = True
            return True
        stamp = self.db.next_stamp(self.confirmed[2])
        if not self.db.compare_and_swap(conn, uuid, self.confirmed, stamp, **changes):
            return False
        self.confirmed = (self.vm_state, self.task_state, stamp)
        self.stored_power = self.power_state or self.stored_power
        self.power_state, self.mark_deleted, self.claimed = None, False, True
        return True

    def claim(self, conn: Connection) -> bool:
        """Before the first action outside: the record this run writes is compare-and-swapped; one it does not
        (deleted, or another host's) is only checked to hold still what it was decided from, host included."""
        if self.assignment.writable:
            return self.write(conn)
        uuid = self.assignment.stored_uuid or self.assignment.uuid
        self.claimed = self.db.still_as_read(conn, uuid, self.confirmed, self.assignment.host)
        return self.claimed

    def commit(self, what: str, work: Callable[[Connection, Connection], None], result: InstanceResult) -> None:
        """Run `work` (the record's connection, the journal's) in a committed transaction (Ports.writes).
        If it is not committed, the record and the report are again as last committed; a write
        rolled back for another's failure is simply made again."""
        saved = (self.confirmed, self.stored_power, self.power_state, self.mark_deleted, self.claimed,
                 result.outcome, result.error, result.vm_state, result.task_state)

        def undo() -> None:
            (self.confirmed, self.stored_power, self.power_state, self.mark_deleted, self.claimed,
             result.outcome, result.error, result.vm_state, result.task_state) = saved

        self.ports.writes.write(what, lambda connections: work(*connections), undo)

    def lost(self) -> str:
        vm_state, task_state, _ = self.confirmed
        return (f"the record changed since it was decided from {vm_state}/{task_state or NO_TASK}; "
                "it was not overwritten")


def execute(ports: Ports, assignment: Assignment) -> InstanceResult:
    """Carry out the assignment. Raises LostRace only when the row changed before anything was written or done,
    so that the caller may decide it again."""
    record = _Record(ports, assignment)
    result = InstanceResult(assignment.uuid, assignment.decision)
    planned = list(assignment.decision.actions)
    done, acted = 0, False
    power = assignment.decision.facts.power_state  # the guest's, as the actions leave it by their declared effects
    if ports.halt.reason is not None:  # a halted run writes nothing more, not even a decision without actions
        return _halted(ports, assignment, result, planned, record)
    for step, actions in assignment.decision.steps_with_actions():
        record.apply(dict(step.case.writes))
        for action in actions:
            if ports.halt.reason is not None:
                return _halted(ports, assignment, result, planned[done:], record)
            outside = _acts_outside(ports, action)
            if outside and not record.claimed and not _lease_held(ports):
                return _halted(ports, assignment, result, planned[done:], record)
            if outside and not record.claimed and not _claim(ports, assignment, record, result):
                return result
            error = _attempt(ports, assignment, action, result)
            done += 1
            acted = acted or outside
            if error is HALTED:
                return _halted(ports, assignment, result, planned[done:], record)
            if error is not None:
                record.apply(action_effects(action, succeeded=False))
                if ACTIONS[action.name].stops_on_failure:
                    return _finish(ports, assignment, record, result, planned[done:], acted)
                continue
            effects = action_effects(action, succeeded=True, power_state=power)
            record.apply(effects)
            power = str(effects.get("power_state", power))
            if outside and done < len(planned) and not _journal_progress(ports, assignment, result, planned[done:]):
                return _halted(ports, assignment, result, planned[done:], record)
    return _finish(ports, assignment, record, result, [], acted)


def _lease_held(ports: Ports) -> bool:
    """Before an instance's first action outside: is the host lock still this run's? If its session
    ended, a second run may hold it now, so the run stops starting actions, as when the database goes
    (the database itself still works: the journal says why)."""
    try:
        ports.lease.verify()
    except LeaseLost as lost:
        log.error("%s", lost)
        ports.halt.stop(str(lost))
        return False
    except DatabaseFailure as failure:
        log.error("the database failed: %s", failure)
        ports.halt.stop(str(failure), database=True)
        return False
    return True


def _acts_outside(ports: Ports, action: Action) -> bool:
    """Whether the action does anything outside this process. Plugging VIFs with no
    --plug-vifs-command does not: it needs no claim before it, nor a journal write after it (a run
    killed right after it has nothing to account for); its outcome goes with the next write."""
    return action.name != "plug_vifs" or ports.network.plugs


HALTED = object()
"""What `_attempt` returns when the action's end was not seen because the hypervisor went away."""


def _attempt(ports: Ports, assignment: Assignment, action: Action, result: InstanceResult) -> object | None:
    """Run one action and record its outcome; None on success, else the error (or HALTED)."""
    log.debug("%s: %s", assignment.uuid, action.name + "".join(f" {k}={v}" for k, v in action.params))
    try:
        done = _run_action(ports, assignment, action)
    except HypervisorLost as lost:
        log.error("%s: %s: lost the hypervisor: %s", assignment.uuid, action.name, lost)
        ports.halt.stop(f"lost the hypervisor: {lost}")
        result.actions.append(ActionResult(action, Outcome.INTERRUPTED, str(lost)))
        return HALTED
    except DatabaseFailure as failure:
        log.error("%s: %s: the database failed: %s", assignment.uuid, action.name, failure)
        ports.halt.stop(str(failure), database=True)
        result.actions.append(ActionResult(action, Outcome.INTERRUPTED, str(failure)))
        return HALTED
    except Exception as error:  # one action's failure is reported, never raised
        text = _one_line(error)
        log.warning("%s: %s failed: %s", assignment.uuid, action.name, text)
        result.actions.append(ActionResult(action, Outcome.FAILED, text))
        result.error = result.error or f"{action.name}: {text}"
        result.outcome = Outcome.FAILED
        return error
    result.actions.append(ActionResult(action, Outcome.OK, done=done))
    return None


def _claim(ports: Ports, assignment: Assignment, record: _Record, result: InstanceResult) -> bool:
    """Claim the row before the first action; False (with the result filled) if the database failed."""
    def claim(conn: Connection, _journal: Connection) -> None:
        if not record.claim(conn):
            raise LostRace(record.lost())

    try:
        record.commit(f"claim instance {assignment.uuid}", claim, result)
    except DatabaseFailure as failure:
        ports.halt.stop(str(failure), database=True)
        result.outcome, result.error = Outcome.NOT_STARTED, str(failure)
        result.vm_state, result.task_state = record.confirmed[:2]
        result.actions += [ActionResult(a, Outcome.NOT_STARTED) for a in assignment.decision.actions]
        return False
    return True


def _journal_progress(ports: Ports, assignment: Assignment, result: InstanceResult, remaining: list[Action]) -> bool:
    if assignment.journal_id is None:
        return True
    try:
        _journal(ports, f"journal the progress of {assignment.uuid}", assignment.journal_id,
                 progress_entry(result, remaining))
    except DatabaseFailure as failure:
        ports.halt.stop(str(failure), database=True)
        return False
    return True


def _finish(ports: Ports, assignment: Assignment, record: _Record, result: InstanceResult, skipped: list[Action],
            acted: bool) -> InstanceResult:
    """Write the state reached and the journal's final word (in one transaction when they share a database).
    Unclaimed and having done nothing outside (`acted`), a lost write means deciding it again."""
    result.actions += [ActionResult(action, Outcome.SKIPPED) for action in skipped]
    result.power_state = _power_after(ports, assignment) if result.actions else None
    def lost() -> None:
        if not record.claimed and not acted:
            raise LostRace(record.lost())  # nothing written or done yet: decide it again
        result.outcome, result.error = Outcome.CONFLICT, record.lost()

    failure = _write_final(ports, assignment, record, result, f"record instance {assignment.uuid}", lost)
    if failure is not None:
        result.outcome, result.error = Outcome.INTERRUPTED, f"the outcome could not be recorded: {failure}"
        result.vm_state, result.task_state, result.updated_at = record.confirmed
    return result


def _write_final(ports: Ports, assignment: Assignment, record: _Record, result: InstanceResult, what: str,
                 lost: Callable[[], None]) -> DatabaseFailure | None:
    """The record's write and the journal's final entry in one transaction; `lost` says what a row changed
    by another writer since means for the result. The database's failure (the run then halts), or None."""
    def work(conn: Connection, journal: Connection) -> None:
        if not record.write(conn):
            lost()
        result.vm_state, result.task_state, result.updated_at = record.confirmed
        result.outcome = succeeded(assignment.decision, result.outcome)
        if assignment.journal_id is not None:
            update_entry(journal, assignment.journal_id, final_entry(result))

    try:
        record.commit(what, work, result)
    except DatabaseFailure as failure:
        ports.halt.stop(str(failure), database=True)
        return failure
    return None


def succeeded(decision: Decision, outcome: str) -> str:
    """An instance's outcome once its record is written: a success that leaves work to nova-compute is
    said to be handed off."""
    return Outcome.HANDED_OFF if outcome == Outcome.OK and decision.hands_off else outcome


STOP = Action("stop", ())


def record_stopped(ports: Ports, assignment: Assignment, result: InstanceResult) -> None:
    """A guest stopped again after its start (--on-degraded stop): its record written as a `stop` action
    leaves it (stopped, no task, shut down) and the stop journaled with its outcome, so that the next run
    does not start it again without the device. A record changed since this run wrote it is not overwritten."""
    record = _Record(ports, assignment)
    record.confirmed = (result.vm_state, result.task_state, result.updated_at)
    record.vm_state, record.task_state, record.claimed = result.vm_state, result.task_state, True
    record.stored_power = None  # this run's own write of it is not known here: the stop's power state is written
    record.apply(action_effects(STOP, succeeded=True))
    result.actions.append(ActionResult(STOP, Outcome.OK))
    result.power_state = _power_after(ports, assignment)

    def lost() -> None:
        result.error = f"{result.error}; {record.lost()}"

    failure = _write_final(ports, assignment, record, result, f"record instance {assignment.uuid} stopped", lost)
    if failure is not None:
        result.error = f"{result.error}; its stop could not be recorded: {failure}"


def _halted(ports: Ports, assignment: Assignment, result: InstanceResult, remaining: list[Action],
            record: _Record) -> InstanceResult:
    """Stop this instance where it is: no record write at all (no failure writes either); the journal
    says where it stopped, if the database is still there."""
    result.actions += [ActionResult(action, Outcome.NOT_STARTED) for action in remaining]
    started = any(a.outcome != Outcome.NOT_STARTED for a in result.actions)
    result.outcome = Outcome.INTERRUPTED if started else Outcome.NOT_STARTED
    result.error = result.error or f"the run stopped: {ports.halt.reason}"
    result.vm_state, result.task_state = record.confirmed[:2]
    if assignment.journal_id is not None and not ports.halt.database_failed:
        try:
            _journal(ports, f"journal where {assignment.uuid} stopped", assignment.journal_id, final_entry(result))
        except DatabaseFailure as failure:
            ports.halt.stop(str(failure), database=True)
    return result


def _journal(ports: Ports, what: str, entry_id: int, changes: dict[str, Any]) -> None:
    """A journal entry's update alone, committed with the other workers' writes."""
    ports.writes.write(what, lambda connections: update_entry(connections[1], entry_id, changes))


def _power_after(ports: Ports, assignment: Assignment) -> str | None:
    try:
        return ports.hypervisor.power_state(assignment.uuid).label
    except HypervisorError:
        return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

"""Carry out one instance's decision against libvirt, the network hook and the database.

Steps run in order. A step's record writes are kept in memory and written
(compare-and-swap on the vm_state/task_state the record held when decided)
just before the instance's first action, which claims it, and once more at
the end. An action that fails applies Nova's failure writes, and one that
stops on failure skips the rest of the steps.
"""

from dataclasses import dataclass, field

from recovery.db import Database
from recovery.facts import record_task_state
from recovery.hypervisor import Hypervisor
from recovery.machine import Decision
from recovery.network import NetworkHook
from recovery.outcomes import action_effects
from states.enums import NO_TASK, PowerState
from states.policy import ACTIONS, Action

OK, FAILED, SKIPPED, CONFLICT = "ok", "failed", "skipped", "conflict"


@dataclass
class ActionResult:
    action: Action
    outcome: str
    error: str | None = None


@dataclass
class Plan:
    """What the executor needs beyond the decision: where the record and migrations are."""

    uuid: str
    decision: Decision
    writable: bool
    """Only a live record of this host is written; evacuated or deleted ones are not ours."""
    evacuation_id: int | None = None


@dataclass
class InstanceResult:
    uuid: str
    decision: Decision | None
    actions: list[ActionResult] = field(default_factory=list)
    outcome: str = OK
    error: str | None = None
    vm_state: str | None = None
    task_state: str | None = None


@dataclass
class Ports:
    hypervisor: Hypervisor
    database: Database
    network: NetworkHook
    stop_timeout: float = 60.0


class LostRace(Exception):
    """The record changed under us; nothing was written."""


def _run_action(ports: Ports, plan: Plan, action: Action) -> None:
    hv, uuid, params = ports.hypervisor, plan.uuid, dict(action.params)
    name = action.name
    if name in ("restart_deletion", "destroy_evacuated", "reap_domain"):
        # Nova deletes a deleted instance's disks; an evacuated one's only when the decision says so.
        hv.destroy_and_undefine(uuid, destroy_disks=name == "restart_deletion" or params.get("destroy_disks", False))
    elif name == "reboot":
        (hv.hard_reboot if params["type"] == "hard" else hv.soft_reboot)(uuid)
    elif name == "unpause":
        hv.unpause(uuid)
    elif name == "stop":
        hv.stop(uuid, ports.stop_timeout)
    elif name == "start":
        hv.start(uuid)
    elif name == "plug_vifs":
        ports.network.plug_vifs(uuid)
    elif name == "revert_resize":
        hv.revert_resize(uuid, params["power_on"], ports.stop_timeout)
    elif name == "abort_live_migration":
        try:
            hv.abort_job(uuid)
        finally:
            ports.database.fail_live_migrations(uuid)
    elif name == "resume_guest":
        hv.resume_guest(uuid)
    elif name == "complete_migration":
        if plan.evacuation_id is None or not ports.database.set_migration_status(plan.evacuation_id, "completed"):
            raise RuntimeError("the evacuation's migration record is gone")
    elif name == "shutdown_domain":
        hv.shutdown(uuid)
    elif name != "complete_deletion":  # complete_deletion is only the record write that marks it deleted
        raise ValueError(f"no executor for action {name}")


class _Record:
    """The instance record as this run intends it, and what the database last confirmed."""

    def __init__(self, ports: Ports, plan: Plan):
        facts = plan.decision.facts
        self.ports, self.plan = ports, plan
        self.confirmed = (facts.vm_state, record_task_state(facts.task_state))
        self.vm_state, self.task_state = self.confirmed
        self.power_state: str | None = None
        self.mark_deleted = False

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

    def flush(self) -> None:
        if not self.plan.writable:
            return
        changes: dict = {}
        if (self.vm_state, self.task_state) != self.confirmed:
            changes.update(vm_state=self.vm_state, task_state=self.task_state)
        if self.power_state is not None:
            changes["power_state"] = int(PowerState[self.power_state.upper()])
        if self.mark_deleted:
            changes["mark_deleted"] = True
        if not changes:
            return
        if not self.ports.database.compare_and_swap(self.plan.uuid, *self.confirmed, **changes):
            raise LostRace(f"the record changed since it was decided from {self.confirmed[0]}/"
                           f"{self.confirmed[1] or NO_TASK}; it was not overwritten")
        self.confirmed = (self.vm_state, self.task_state)
        self.power_state, self.mark_deleted = None, False


def execute(ports: Ports, plan: Plan) -> InstanceResult:
    """Run the plan; raises LostRace only if the claim before the first action was lost."""
    decision = plan.decision
    record = _Record(ports, plan)
    result = InstanceResult(plan.uuid, decision)
    pending = [action for step in decision.steps for action in step.case.actions]
    claimed = False
    stopped = False
    for step in decision.steps:
        if stopped:
            break
        record.apply(dict((k, v) for k, v in step.case.writes))
        for action in step.case.actions:
            if not claimed:
                record.flush()  # a LostRace here leaves everything untouched: the caller re-decides
                claimed = True
            pending.remove(action)
            try:
                _run_action(ports, plan, action)
            except Exception as error:  # one action's failure is reported, never raised
                result.actions.append(ActionResult(action, FAILED, _one_line(error)))
                record.apply(action_effects(action, succeeded=False))
                if result.error is None:
                    result.error = f"{action.name}: {_one_line(error)}"
                result.outcome = FAILED
                if ACTIONS[action.name].stops_on_failure:
                    stopped = True
                    break
                continue
            result.actions.append(ActionResult(action, OK))
            record.apply(action_effects(action, succeeded=True))
    result.actions += [ActionResult(action, SKIPPED) for action in pending]
    try:
        record.flush()
    except LostRace as race:
        result.outcome, result.error = CONFLICT, str(race)
    result.vm_state, result.task_state = record.confirmed
    return result


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

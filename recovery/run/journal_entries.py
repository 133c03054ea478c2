"""The run journal's entries, shaped in one place: the run's options, each decision as journaled
before anything is executed, each action's progress, each instance's final word, a guest not
ready in its tier. recovery.db.journal stores them as rows; `explain` reads them back.
"""

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from recovery.core.documents import action_json, considerations_json, path_json
from recovery.core.facts import Facts
from recovery.core.machine import Decision, RecoveryMachine
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from states.enums import PowerState
from states.policy import Action

if TYPE_CHECKING:  # execute.py writes its entries with this module's help
    from recovery.run.execute import InstanceResult


def run_options(settings: RunSettings, host_down_seconds: float | None) -> dict[str, Any]:
    """The run's options as its journal records them, with how long the host was down and the plan applied."""
    applied = {"plan": settings.applied_plan} if settings.applied_plan else {}
    return {"node": settings.node, "concurrency": settings.concurrency, **settings.options.__dict__,
            "host_down_seconds": host_down_seconds, **applied}


class DecisionEntries:
    """The journal's account of each decision. Equal facts share one (its values the same objects),
    so that the journal encodes it once for all the instances that share it."""

    def __init__(self, machine: RecoveryMachine) -> None:
        self.machine = machine
        self._known: dict[Facts, dict] = {}

    def decision(self, decision: Decision) -> dict[str, Any]:
        entry = self._known.get(decision.facts)
        if entry is None:
            entry = self._known[decision.facts] = {
                "start_state": decision.start_state,
                "facts": decision.facts._asdict(),
                "path": path_json(decision),
                "considered": considerations_json(self.machine.consider(decision.facts)),
                "actions": [{**action_json(a), "outcome": Outcome.PENDING, "error": None} for a in decision.actions],
                "reason": decision.reason,
            }
        return entry

    def before_execution(self, decided: Iterable[tuple[str, Decision, "InstanceResult | None"]],
                         failures: Iterable["InstanceResult"],
                         domain_names: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every decision as journaled before anything is executed: pending where there is work, final
        where there is none (`decided`: uuid, decision, and its result when it is already known), each
        with the name of the libvirt domain found for it (`domain_names`, by uuid), for `explain`."""
        for uuid, decision, result in decided:
            entry = {"instance_uuid": uuid, "domain_name": domain_names.get(uuid), **self.decision(decision)}
            yield entry | (final_entry(result) if result is not None else {"outcome": Outcome.PENDING})
        for failure in failures:
            entry = {"instance_uuid": failure.uuid, "domain_name": domain_names.get(failure.uuid),
                     "reason": failure.error, "path": [], "considered": []}
            if failure.decision is not None:  # decided but held back by the screen: nothing done
                entry |= self.decision(failure.decision)
            yield entry | final_entry(failure)


def actions_json(result: "InstanceResult", remaining: list[Action]) -> list[dict]:
    done = [a.json() for a in result.actions]
    return done + [{**action_json(a), "outcome": Outcome.PENDING, "error": None} for a in remaining]


def progress_entry(result: "InstanceResult", remaining: list[Action]) -> dict[str, Any]:
    """The journal fields an action's completion sets: every action's outcome so far, the rest pending."""
    return {"actions": actions_json(result, remaining)}


def final_entry(result: "InstanceResult") -> dict[str, Any]:
    """The journal fields an instance's outcome sets."""
    power = result.power_state
    return {
        "actions": actions_json(result, []),
        "final_vm_state": result.vm_state,
        "final_task_state": result.task_state,
        "final_power_state": int(PowerState[power.upper()]) if power else None,
        "outcome": result.outcome,
        "error": result.error,
    }


def outcome_entry(result: "InstanceResult") -> dict[str, Any]:
    """The journal fields a later verdict on an executed instance sets (not ready in its tier)."""
    return {"outcome": result.outcome, "error": result.error}

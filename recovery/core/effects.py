"""What a decision does to the facts once its writes are made and its actions ran.

Pure: the executor writes these effects to the record after an action
succeeds, and the property suite uses them to prove convergence.
"""

import functools

from recovery.core.facts import Facts
from recovery.core.machine import Decision
from states.enums import NO_TASK
from states.policy import ACTIONS, Action, ActionOutcome


def action_effects(action: Action, succeeded: bool, vocabulary: dict[str, ActionOutcome] = ACTIONS,
                   power_state: str | None = None) -> dict[str, object]:
    """The fact changes an action causes, by the vocabulary's declared outcomes; `power_state` is the
    guest's before the action (None: not known), which an action may leave as it is (`leaves_power`)."""
    outcome = vocabulary[action.name]
    if not succeeded:
        return dict(outcome.on_failure)
    if power_state in outcome.leaves_power:
        return {"power_state": power_state}
    effects = dict(outcome.on_success)
    params = dict(action.params)
    for (param, value), extra in outcome.on_success_by_param:
        if params.get(param) == value:
            effects.update(extra)
    return effects


@functools.cache
def action_starts_guest(action: Action) -> bool:
    """Whether the action, once it succeeded, leaves the guest running (start, resume, reboot, a
    resize revert with power_on...): read from the vocabulary, so no list of such actions is kept by hand."""
    return action_effects(action, succeeded=True).get("power_state") == "running"


def starts_guest(decision: Decision) -> bool:
    """Whether the decision leaves the guest running by an action of its own."""
    return any(action_starts_guest(action) for action in decision.actions)


def apply_effects(facts: Facts, effects: dict[str, object]) -> Facts:
    """New facts after effects; a new power state is also what the database now records."""
    changes = dict(effects)
    if "task_state" in changes and changes["task_state"] is None:
        changes["task_state"] = NO_TASK
    if "power_state" in changes:
        changes["db_power_state"] = changes["power_state"]
    return facts._replace(**changes)


def after_success(decision: Decision, vocabulary: dict[str, ActionOutcome] = ACTIONS) -> Facts:
    """The facts once the decision's writes are made and all its actions succeeded."""
    facts = decision.facts._replace(vm_state=decision.vm_state, task_state=decision.task_state or NO_TASK)
    for action in decision.actions:
        facts = apply_effects(facts, action_effects(action, succeeded=True, vocabulary=vocabulary,
                                                    power_state=facts.power_state))
    return facts



REASSERTING_ACTIONS = frozenset({"plug_vifs"})
"""Actions that re-assert what already holds (Nova plugs every instance's VIFs at every start): a
plan that holds only these changes nothing."""


def changes_anything(decision: Decision, vocabulary: dict[str, ActionOutcome] = ACTIONS) -> bool:
    """Whether carrying the decision out would change anything: a fact it would leave otherwise (the
    record's states, the guest's power, the domain, the evacuation), or an action that does more than
    re-assert (a plan's "would change")."""
    if any(action.name not in REASSERTING_ACTIONS for action in decision.actions):
        return True
    return after_success(decision, vocabulary) != decision.facts

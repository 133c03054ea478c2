"""What one observed power state means for an instance record (pure): skip it, record the
power state, and whether to stop it. The policy's data is states/power_sync.py."""

from dataclasses import dataclass

from states.enums import PowerState
from states.power_sync import SYNC_RULES, SyncAction


@dataclass(frozen=True)
class SyncFacts:
    vm_state: str | None
    task_state: str | None
    on_this_host: bool
    deleted: bool
    db_power_state: int | None
    vm_power_state: PowerState
    """What the hypervisor says now (or the event reported)."""


@dataclass(frozen=True)
class SyncDecision:
    skip: bool
    record_power: PowerState | None
    """The power state to write, when the record's differs."""
    action: SyncAction
    reason: str


def decide_sync(facts: SyncFacts) -> SyncDecision:
    if facts.deleted:
        return SyncDecision(True, None, SyncAction.NONE, "the record is deleted")
    if not facts.on_this_host:
        return SyncDecision(True, None, SyncAction.NONE, "the instance has moved to another host")
    if facts.task_state is not None:
        return SyncDecision(True, None, SyncAction.NONE,
                            f"task {facts.task_state} is in progress: its owner keeps the record")
    power = facts.vm_power_state
    record = power if facts.db_power_state != int(power) else None
    for rule in SYNC_RULES:
        if facts.vm_state in rule.vm_states and power in rule.power_states:
            return SyncDecision(False, record, rule.action, rule.reason)
    reason = f"power state {power.label} recorded" if record is not None else "the record already agrees"
    return SyncDecision(False, record, SyncAction.NONE, reason)

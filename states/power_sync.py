"""The power-state sync policy after the start (Nova's _sync_instance_power_state and
handle_lifecycle_event), as data: which lifecycle event says which power state, which events
wait before they count, and which (vm_state, power state) pairs call for a stop.

Every pair not listed only has its power state recorded. An instance with a task_state, on
another host, or deleted is never touched: whatever runs that task owns the record.
"""

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from states.enums import PowerState, VmState


class LifecycleEvent(IntEnum):
    """libvirt's virDomainEventType values that Nova turns into a power state."""

    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5


EVENT_POWER_STATE = {
    LifecycleEvent.STARTED: PowerState.RUNNING,
    LifecycleEvent.SUSPENDED: PowerState.PAUSED,
    LifecycleEvent.RESUMED: PowerState.RUNNING,
    LifecycleEvent.STOPPED: PowerState.SHUTDOWN,
}
"""The power state each event reports (Nova maps libvirt's suspend, a pause, to paused)."""

DELAYED_EVENTS = frozenset({LifecycleEvent.STOPPED})
"""Held back for LIFECYCLE_DELAY seconds and dropped if any later event of the same guest comes
first: a rebooting guest stops and starts again, and must not be stopped for it."""

LIFECYCLE_DELAY = 15.0
"""Nova's delay for STOPPED events, in seconds."""


class SyncAction(StrEnum):
    NONE = "none"
    STOP = "stop"
    """Nova's compute API stop: the instance ends stopped, its guest shut off."""
    FORCE_STOP = "force_stop"
    """The same stop, for an instance whose vm_state the API's stop would refuse (already stopped or paused)."""


@dataclass(frozen=True)
class SyncRule:
    vm_states: frozenset[VmState]
    power_states: frozenset[PowerState]
    action: SyncAction
    reason: str


SYNC_RULES = (
    SyncRule(frozenset({VmState.ACTIVE}), frozenset({PowerState.SHUTDOWN, PowerState.CRASHED}), SyncAction.STOP,
             "the guest of an active instance shut down by itself: stop the instance"),
    SyncRule(frozenset({VmState.ACTIVE}), frozenset({PowerState.SUSPENDED}), SyncAction.STOP,
             "the guest of an active instance is suspended unexpectedly: stop the instance"),
    SyncRule(frozenset({VmState.STOPPED}), frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED}),
             SyncAction.FORCE_STOP, "the guest of a stopped instance is running: stop it again"),
    SyncRule(frozenset({VmState.PAUSED}), frozenset({PowerState.SHUTDOWN, PowerState.CRASHED}),
             SyncAction.FORCE_STOP, "the guest of a paused instance shut down by itself: stop the instance"),
)
"""First match wins; no match records the power state only (an active guest found paused or
missing is left alone, as Nova leaves it: a pause may be QEMU's own, a missing guest a libvirt restart)."""

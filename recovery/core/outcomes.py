"""The outcomes: what became of an instance in a run (its report, its journal entry, each of its
actions) and of a power-state sync. One vocabulary, so that the executor, the tiers, the report,
the journal and the agent name each outcome with the same word."""

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Not run: a dry run, or an earlier action that stops on failure failed (a sync: nothing to decide)."""
    CONFLICT = "conflict"
    """Another writer changed the record first: it was not overwritten."""
    NOT_STARTED = "not-started"
    """The run halted before this instance's first action: nothing was done or written for it."""
    INTERRUPTED = "interrupted"
    """The run halted while this instance was being recovered: what its last action did is unknown,
    and its record holds what was claimed; the next run decides it again."""
    CHANGED = "changed"
    """`run --plan`: the instance's facts (or its decision) changed since the plan was made: nothing was done to it."""
    UNPLANNED = "unplanned"
    """`run --plan`: the instance is not in the plan (new on the host since): nothing was done to it."""
    HANDED_OFF = "handed-off"
    """Done here as the decision says, and the rest left to nova-compute's start (the reason says what and
    why): on a Nova cell database, the work that needs the cloud's other services (docs/nova.md)."""
    NOT_READY = "not-ready"
    """The guest was started, but did not pass its readiness check within its tier's timeout."""
    BLOCKED = "blocked"
    """A host-side resource the guest's definition needs is missing (docs/devices.md): it was not started, and
    its record is as it was, so that a later run starts it once the resource is back."""
    DEGRADED = "degraded"
    """The guest was started, but a device its definition asks for is not in the running domain (docs/devices.md)."""
    PENDING = "pending"
    """A journal entry's (and its actions') outcome from the moment it is decided until its actions have run."""
    UNCHANGED = "unchanged"
    """A power-state sync: the record and the guest agree; nothing was written."""
    RECORDED = "recorded"
    """A power-state sync: the guest's power state was written to the record."""
    STOPPED = "stopped"
    """A power-state sync: the guest was stopped, as its record says it should be."""


RUN_OUTCOMES = (Outcome.OK, Outcome.FAILED, Outcome.SKIPPED, Outcome.CONFLICT, Outcome.NOT_STARTED,
                Outcome.INTERRUPTED, Outcome.CHANGED, Outcome.UNPLANNED, Outcome.NOT_READY, Outcome.BLOCKED,
                Outcome.DEGRADED)
"""An instance's outcomes at the end of a run, in the order the report's totals list them."""

ACTION_OUTCOMES = (Outcome.OK, Outcome.FAILED, Outcome.SKIPPED, Outcome.NOT_STARTED, Outcome.INTERRUPTED)
"""An action's outcomes at the end of a run."""

SYNC_OUTCOMES = (Outcome.UNCHANGED, Outcome.RECORDED, Outcome.STOPPED, Outcome.SKIPPED, Outcome.CONFLICT,
                 Outcome.FAILED)
"""A power-state sync's outcomes."""

"""Nova's state enumerations, with the values exactly as Nova stores them."""

from enum import IntEnum, StrEnum


class VmState(StrEnum):
    ACTIVE = "active"
    BUILDING = "building"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    STOPPED = "stopped"
    RESCUED = "rescued"
    RESIZED = "resized"
    SOFT_DELETED = "soft-delete"
    DELETED = "deleted"
    ERROR = "error"
    SHELVED = "shelved"
    SHELVED_OFFLOADED = "shelved_offloaded"


class TaskState(StrEnum):
    """Every non-null task state; a null task is spelled `none` in state names."""

    BLOCK_DEVICE_MAPPING = "block_device_mapping"
    DELETING = "deleting"
    IMAGE_BACKUP = "image_backup"
    IMAGE_PENDING_UPLOAD = "image_pending_upload"
    IMAGE_SNAPSHOT = "image_snapshot"
    IMAGE_SNAPSHOT_PENDING = "image_snapshot_pending"
    IMAGE_UPLOADING = "image_uploading"
    MIGRATING = "migrating"
    NETWORKING = "networking"
    PAUSING = "pausing"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    REBOOT_PENDING = "reboot_pending"
    REBOOT_PENDING_HARD = "reboot_pending_hard"
    REBOOT_STARTED = "reboot_started"
    REBOOT_STARTED_HARD = "reboot_started_hard"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
    REBUILD_SPAWNING = "rebuild_spawning"
    REBUILDING = "rebuilding"
    RESCUING = "rescuing"
    RESIZE_CONFIRMING = "resize_confirming"
    RESIZE_FINISH = "resize_finish"
    RESIZE_MIGRATED = "resize_migrated"
    RESIZE_MIGRATING = "resize_migrating"
    RESIZE_PREP = "resize_prep"
    RESIZE_REVERTING = "resize_reverting"
    RESTORING = "restoring"
    RESUMING = "resuming"
    SCHEDULING = "scheduling"
    SHELVING = "shelving"
    SHELVING_IMAGE_PENDING_UPLOAD = "shelving_image_pending_upload"
    SHELVING_IMAGE_UPLOADING = "shelving_image_uploading"
    SHELVING_OFFLOADING = "shelving_offloading"
    SOFT_DELETING = "soft-deleting"
    SPAWNING = "spawning"
    SUSPENDING = "suspending"
    UNPAUSING = "unpausing"
    UNRESCUING = "unrescuing"
    UNSHELVING = "unshelving"
    UPDATING_PASSWORD = "updating_password"


NO_TASK = "none"
"""How a null task_state is spelled inside a state name (`active/none/running`)."""


class PowerState(IntEnum):
    """Power states by name, valued with Nova's integers (the database column)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7

    @property
    def label(self) -> str:
        return self.name.lower()


LIBVIRT_DOMAIN_STATE_TO_POWER = {
    0: PowerState.NOSTATE,  # VIR_DOMAIN_NOSTATE
    1: PowerState.RUNNING,  # VIR_DOMAIN_RUNNING
    2: PowerState.RUNNING,  # VIR_DOMAIN_BLOCKED
    3: PowerState.PAUSED,  # VIR_DOMAIN_PAUSED
    4: PowerState.SHUTDOWN,  # VIR_DOMAIN_SHUTDOWN
    5: PowerState.SHUTDOWN,  # VIR_DOMAIN_SHUTOFF
    6: PowerState.CRASHED,  # VIR_DOMAIN_CRASHED
    7: PowerState.SUSPENDED,  # VIR_DOMAIN_PMSUSPENDED
}
"""libvirt's virDomainState values mapped to power states; no domain means NOSTATE."""


class RunningDeletedInstanceAction(StrEnum):
    """What to do with a domain whose instance record is deleted (Nova's option)."""

    REAP = "reap"
    SHUTDOWN = "shutdown"
    LOG = "log"
    NOOP = "noop"


class ResumePolicy(StrEnum):
    """When a guest that is not running is started again (instance metadata `recover:resume`)."""

    ALWAYS = "always"
    NEVER = "never"
    IF_WAS_RUNNING = "if-was-running"
    """Nova's rule: it ran before the host went down and resume_guests_state_on_host_boot is on."""
    IF_DOWN_LESS_THAN = "if-down-less-than"
    """It ran before, and the host was down less than the duration given with it."""


EVACUATION_PENDING_STATUSES = frozenset({"accepted", "pre-migrating", "done"})
"""Migration statuses under which this host still has to clean up an evacuated copy."""


class DeviceReadiness(StrEnum):
    """Whether the host-side resources a guest's definition names are there (docs/devices.md).

    Worst first is missing, then repairable, then unverified; a guest that is not about to be started is `ready`."""

    READY = "ready"
    REPAIRABLE = "repairable"
    """Every resource is there, but an inactive storage pool, network or mediated device must be started first."""
    MISSING = "missing"
    """A resource is not there: the guest is not started (blocked) until it returns."""
    UNVERIFIED = "unverified"
    """Every resource is there as far as a read-only connection (`plan`, `explain --live`) can tell, but a
    secret's value cannot be read over it: decided as `ready`, and the run, which reads the value, proves the
    guest again before starting it (a secret without a value then blocks it)."""


class OnDegraded(StrEnum):
    """What is done with a started guest that lacks a device its definition asks for (--on-degraded)."""

    KEEP = "keep"
    """Left running, reported degraded."""
    STOP = "stop"
    """Stopped again, reported degraded."""

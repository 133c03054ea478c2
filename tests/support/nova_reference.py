"""An independent oracle: Nova's start-up recovery written as plain imperative code.

This follows the procedure of Nova's `ComputeManager.init_host()`:
`_destroy_evacuated_instances()`, then `_init_instance()` for each instance,
with `_retry_reboot()` and `compute.utils.get_reboot_type()`, and the
`running_deleted_instance_action` handling of `_cleanup_running_deleted_instances()`.
It deliberately shares no code with `states.policy` or `recovery.core.machine`: the
enumerations and state lists below are transcribed from
Nova's `vm_states.py` / `task_states.py`, so that a mistake in the policy table
shows up as a disagreement instead of being copied.

Where the policy (docs/policy.md) deviates from or extends Nova, this follows the
policy; every such place is marked `POLICY:` in a comment.

`nova_decide(facts)` reads the attributes of a `recovery.core.facts.Facts` value
(a null task spelled "none") and returns `(actions, vm_state, task_state)`:
the ordered action dicts (`{"name": ..., **params}`), and the record's
vm_state / task_state after the decision's own writes (task None when null).
"""

# Nova's enumerations, values exactly as Nova stores them.
VM_STATES = (
    "active", "building", "paused", "suspended", "stopped", "rescued", "resized",
    "soft-delete", "deleted", "error", "shelved", "shelved_offloaded",
)
TASK_STATES = (
    "block_device_mapping", "deleting", "image_backup", "image_pending_upload", "image_snapshot",
    "image_snapshot_pending", "image_uploading", "migrating", "networking", "pausing", "powering-off",
    "powering-on", "reboot_pending", "reboot_pending_hard", "reboot_started", "reboot_started_hard",
    "rebooting", "rebooting_hard", "rebuild_block_device_mapping", "rebuild_spawning", "rebuilding",
    "rescuing", "resize_confirming", "resize_finish", "resize_migrated", "resize_migrating", "resize_prep",
    "resize_reverting", "restoring", "resuming", "scheduling", "shelving", "shelving_image_pending_upload",
    "shelving_image_uploading", "shelving_offloading", "soft-deleting", "spawning", "suspending",
    "unpausing", "unrescuing", "unshelving", "updating_password",
)
POWER_STATES = ("nostate", "running", "paused", "shutdown", "crashed", "suspended")
NOVA_POWER_INTEGERS = {"nostate": 0, "running": 1, "paused": 3, "shutdown": 4, "crashed": 6, "suspended": 7}

# nova/compute/vm_states.py
ALLOW_SOFT_REBOOT = ("active",)
ALLOW_HARD_REBOOT = ("active", "stopped", "paused", "suspended", "error")
# nova/compute/task_states.py
SOFT_REBOOT_STATES = ("rebooting", "reboot_pending", "reboot_started")

# _destroy_evacuated_instances() looks for evacuation migrations in these statuses.
EVACUATION_PENDING = ("accepted", "pre-migrating", "done")


def get_reboot_type(task_state, power_state):
    """compute.utils.get_reboot_type: hard unless the guest runs and the task is a soft one."""
    if power_state != "running":
        return "hard"
    if task_state in SOFT_REBOOT_STATES:
        return "soft"
    return "hard"


def retry_reboot(vm_state, task_state, power_state):
    """ComputeManager._retry_reboot: (whether to retry, reboot type)."""
    pending_soft = task_state == "reboot_pending" and vm_state in ALLOW_SOFT_REBOOT
    pending_hard = task_state == "reboot_pending_hard" and vm_state in ALLOW_HARD_REBOOT
    # POLICY: Nova only retries reboot_started / reboot_started_hard when the guest is
    # not running; retry_reboot adds rebooting and rebooting_hard.
    started_not_running = (
        task_state in ("reboot_started", "reboot_started_hard", "rebooting", "rebooting_hard")
        and power_state != "running"
    )
    return (pending_soft or pending_hard or started_not_running), get_reboot_type(task_state, power_state)


def destroy_evacuated_instance(facts, vm_state, task_state):
    """_destroy_evacuated_instances for one instance, or None when it was not evacuated away."""
    if facts.evacuation_status not in EVACUATION_PENDING:
        return None
    actions = []
    if facts.domain_present:
        if not facts.destroy_after_evacuate:
            # Nova's workarounds.destroy_after_evacuate = False: warn, leave the
            # domain and the migration alone.
            return actions, vm_state, task_state
        # Nova: destroy_disks = not shared storage; always when the instance is deleted.
        destroy_disks = True if facts.deleted else not facts.shared_storage
        actions.append({"name": "destroy_evacuated", "destroy_disks": destroy_disks})
    # POLICY: Nova only visits evacuated instances that still have a local domain,
    # so without one it leaves the migration as it is; evacuated_away completes it
    # whenever there is nothing (left) to destroy.
    actions.append({"name": "complete_migration"})
    return actions, vm_state, task_state


def cleanup_deleted_instance(facts, vm_state, task_state):
    """_cleanup_running_deleted_instances for one record that is marked deleted.

    Nova's init_host() never loads deleted records, so `_init_instance` does not
    see them; their leftover domain is up to running_deleted_instance_action.
    """
    actions = []
    if facts.domain_present:
        option = facts.running_deleted_instance_action
        if option == "reap":
            actions.append({"name": "reap_domain"})
        # Nova calls driver.power_off() on any such domain; here (as in
        # the policy) a domain that is not up (shut down, crashed, no state) is left alone.
        elif option == "shutdown" and facts.power_state in ("running", "paused", "suspended"):
            actions.append({"name": "shutdown_domain"})
        # "log" and "noop" only report.
    return actions, vm_state, task_state


def init_instance(facts, vm_state, task_state):
    """ComputeManager._init_instance for one instance this host owns."""
    power_state = facts.power_state
    actions = []

    if not facts.owned:
        # The record names another host: skipped, with a warning.
        return actions, vm_state, task_state

    if vm_state == "soft-delete" or (vm_state == "error" and task_state not in ("resize_migrating", "deleting")):
        return actions, vm_state, task_state

    if vm_state == "deleted":
        actions.append({"name": "complete_deletion"})
        return actions, vm_state, task_state

    if vm_state == "building" or task_state in ("scheduling", "block_device_mapping", "networking", "spawning"):
        return actions, "error", None

    if vm_state in ("active", "stopped") and task_state in (
        "rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"
    ):
        return actions, "error", None

    if vm_state != "error" and task_state in (
        "image_snapshot_pending", "image_pending_upload", "image_uploading", "image_snapshot"
    ):
        task_state = None

    if vm_state != "error" and task_state == "resize_prep":
        task_state = None

    if task_state == "deleting":
        actions.append({"name": "restart_deletion"})
        return actions, vm_state, task_state

    try_reboot, reboot_type = retry_reboot(vm_state, task_state, power_state)
    if try_reboot:
        if task_state in SOFT_REBOOT_STATES and reboot_type == "hard":
            task_state = "reboot_pending_hard"
        actions.append({"name": "reboot", "type": reboot_type})
        return actions, vm_state, task_state
    # POLICY: Nova clears only reboot_started, reboot_started_hard, pausing and
    # unpausing here; transition_finished also clears rebooting and rebooting_hard.
    if power_state == "running" and task_state in (
        "reboot_started", "reboot_started_hard", "rebooting_hard", "rebooting", "pausing", "unpausing"
    ):
        task_state = None
        vm_state = "active"
    elif power_state == "paused" and task_state == "unpausing":
        actions.append({"name": "unpause"})
        return actions, vm_state, task_state

    if task_state == "powering-off":
        actions.append({"name": "stop"})
        return actions, vm_state, task_state

    if task_state == "powering-on":
        actions.append({"name": "start"})
        return actions, vm_state, task_state

    actions.append({"name": "plug_vifs"})

    if task_state == "resize_migrating":
        # Nova: old_vm_state missing from system metadata means power on.
        actions.append({"name": "revert_resize", "power_on": facts.old_vm_state != "stopped"})
        task_state = None  # also when the revert fails

    if task_state == "migrating":
        # POLICY: older Nova only resets the task; reset_live_migration (like newer Nova)
        # also aborts the live migration (its migration record goes to error).
        actions.append({"name": "abort_live_migration"})
        task_state = None

    # POLICY: the power state compared here is the one the hypervisor reported at
    # the start (the decision is made before any action runs); Nova re-reads it
    # after a resize revert.
    expect_running = facts.db_power_state == "running" and power_state != "running"
    if expect_running and facts.resume_guests_state_on_host_boot:
        actions.append({"name": "resume_guest"})
    return actions, vm_state, task_state


def nova_decide(facts):
    """The whole start-up procedure for one instance's facts: (actions, vm_state, task_state)."""
    vm_state = facts.vm_state
    task_state = None if facts.task_state in (None, "none") else facts.task_state

    # init_host(): evacuation clean-up first; evacuated instances skip _init_instance.
    evacuated = destroy_evacuated_instance(facts, vm_state, task_state)
    if evacuated is not None:
        return evacuated
    # Deleted records are never passed to _init_instance; only their domain is handled.
    if facts.deleted:
        return cleanup_deleted_instance(facts, vm_state, task_state)
    return init_instance(facts, vm_state, task_state)

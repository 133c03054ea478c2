"""The startup policy as a declarative transition table (docs/policy.md is generated from it).

Each rule leaves from the states its conditions admit. Its cases are tried in
order and the first whose conditions all hold is taken: it writes the record,
starts actions, and either stops the evaluation or continues it with the next
rule from the state it wrote. `recovery.core.machine` compiles this table into a
`transitions` machine over every `vm_state/task_state/power_state` triple.

Condition fields are the triple (`vm_state`, `task_state`, `power_state`) and
the facts of `recovery.core.facts.Facts`. Values are spelled as strings, booleans or
None, exactly as the facts hold them.
"""

from dataclasses import dataclass

from states.enums import (
    EVACUATION_PENDING_STATUSES,
    DeviceReadiness,
    ResumePolicy,
    RunningDeletedInstanceAction,
    TaskState,
    VmState,
)

TRIPLE_FIELDS = ("vm_state", "task_state", "power_state")


@dataclass(frozen=True)
class Condition:
    """`field` holds one of `values` (or, when `negated`, none of them)."""

    field: str
    values: frozenset
    negated: bool = False


def is_in(fact: str, *values) -> Condition:
    return Condition(fact, frozenset(values))


def not_in(fact: str, *values) -> Condition:
    return Condition(fact, frozenset(values), negated=True)


@dataclass(frozen=True)
class Action:
    """An action as a rule starts it: a vocabulary name and its parameters."""

    name: str
    params: tuple[tuple[str, object], ...] = ()


def act(name: str, **params) -> Action:
    return Action(name, tuple(sorted(params.items())))


@dataclass(frozen=True)
class Case:
    """One way a rule can match, with what it then does and says."""

    when: tuple[Condition, ...]
    reason: str
    writes: tuple[tuple[str, object], ...] = ()
    actions: tuple[Action, ...] = ()
    hands_off: bool = False
    """The rest of the work needs the cloud's other services: it is left, in the record state that
    makes nova-compute's own start do it, to nova-compute (its reason says what and why)."""
    records_power: bool = False
    """The guest is deliberately left as it is: its observed power state is recorded, so that
    nova-compute's start (resume_guests_state_on_host_boot) does not undo the decision."""


@dataclass(frozen=True)
class Rule:
    name: str
    nova: str
    """The branch of Nova's ComputeManager this rule mirrors (method, and condition within it)."""
    summary: str
    cases: tuple[Case, ...]
    stop: bool = True


def case(*when: Condition, reason: str, writes: dict | None = None, actions: tuple[Action, ...] = (),
         hands_off: bool = False, records_power: bool = False) -> Case:
    return Case(tuple(when), reason, tuple((writes or {}).items()), actions, hands_off, records_power)


def hand_off(*when: Condition, done_here: str, left: str, actions: tuple[Action, ...] = ()) -> Case:
    """A case of a Nova cell database that leaves what needs Neutron, Placement or Cinder to
    nova-compute's start (docs/nova.md, the division of labour). nova_cell is tested last, so that on
    compute-recover's own database `explain` says why a rule did not match as it always did."""
    return case(*when, NOVA_CELL, reason=f"{done_here}; left to nova-compute: {left}", actions=actions,
                hands_off=True)


@dataclass(frozen=True)
class ActionOutcome:
    """What an action of the vocabulary does to the facts, by Nova's semantics.

    `on_success` is the state the action reaches (the record is written with
    it); `on_failure` is what Nova writes to the record when it fails; when
    `stops_on_failure`, the rest of the instance's steps are skipped.
    """

    on_success: tuple[tuple[str, object], ...] = ()
    on_failure: tuple[tuple[str, object], ...] = ()
    stops_on_failure: bool = False
    destroys_domain: bool = False
    on_success_by_param: tuple[tuple[tuple[str, object], tuple[tuple[str, object], ...]], ...] = ()
    """Extra success effects that depend on a parameter: ((param, value), effects)."""
    leaves_power: frozenset[str] = frozenset()
    """Power states the action finds the guest in and leaves it in: from one of them its success changes
    nothing but the record's power state, which then says the power the guest kept."""
    once_per_instance: bool = False
    """Done at most once for an instance, where its decision first asks for it: steps that each ask for it
    (a crashed resize reverted with power on, then the guest resumed) are served by the first."""


_RUNNING_ACTIVE = (("vm_state", "active"), ("task_state", None), ("power_state", "running"))
_DOMAIN_GONE = (("domain_present", False), ("power_state", "nostate"))

ACTIONS: dict[str, ActionOutcome] = {
    "complete_deletion": ActionOutcome(on_success=(("deleted", True),)),
    "restart_deletion": ActionOutcome(
        on_success=(("vm_state", "deleted"), ("task_state", None), ("deleted", True), *_DOMAIN_GONE),
        on_failure=(("vm_state", "error"),),
        destroys_domain=True,
    ),
    "reboot": ActionOutcome(
        on_success=_RUNNING_ACTIVE, on_failure=(("vm_state", "error"), ("task_state", None))
    ),
    "unpause": ActionOutcome(on_success=_RUNNING_ACTIVE, on_failure=(("task_state", None),)),
    "stop": ActionOutcome(
        on_success=(("vm_state", "stopped"), ("task_state", None), ("power_state", "shutdown")),
        on_failure=(("task_state", None),),
    ),
    "start": ActionOutcome(on_success=_RUNNING_ACTIVE, on_failure=(("task_state", None),)),
    "plug_vifs": ActionOutcome(on_failure=(("vm_state", "error"),), stops_on_failure=True),
    "revert_resize": ActionOutcome(
        on_success_by_param=(
            (("power_on", True), (("power_state", "running"), ("domain_present", True))),
            (("power_on", False), (("power_state", "shutdown"), ("domain_present", True))),
        )
    ),
    "abort_live_migration": ActionOutcome(),
    "resume_guest": ActionOutcome(on_success=(("power_state", "running"),), on_failure=(("vm_state", "error"),),
                                  leaves_power=frozenset({"running", "paused", "suspended"})),
    "destroy_evacuated": ActionOutcome(on_success=_DOMAIN_GONE, stops_on_failure=True, destroys_domain=True),
    "complete_migration": ActionOutcome(on_success=(("evacuation_status", "completed"),)),
    "reap_domain": ActionOutcome(on_success=_DOMAIN_GONE, destroys_domain=True),
    "shutdown_domain": ActionOutcome(on_success=(("power_state", "shutdown"),)),
    "repair_devices": ActionOutcome(on_success=(("devices", DeviceReadiness.READY.value),), stops_on_failure=True,
                                    once_per_instance=True),
    "destroy_domain": ActionOutcome(on_success=_DOMAIN_GONE, stops_on_failure=True, destroys_domain=True),
}
"""The action vocabulary and what each action does when it runs."""

STARTS_GUEST = frozenset({act("reboot", type="hard"), act("start"), act("revert_resize", power_on=True),
                          act("resume_guest")})
"""The actions that start a guest from its definition: before them its devices are proved (docs/devices.md)."""


_PENDING = tuple(sorted(EVACUATION_PENDING_STATUSES))
_HARD_REBOOT_VM_STATES = (VmState.ACTIVE, VmState.STOPPED, VmState.PAUSED, VmState.SUSPENDED, VmState.ERROR)
_SPAWN_TASKS = (TaskState.SCHEDULING, TaskState.BLOCK_DEVICE_MAPPING, TaskState.NETWORKING, TaskState.SPAWNING)
_REBUILD_TASKS = (TaskState.REBUILDING, TaskState.REBUILD_BLOCK_DEVICE_MAPPING, TaskState.REBUILD_SPAWNING)
_SNAPSHOT_TASKS = (
    TaskState.IMAGE_SNAPSHOT,
    TaskState.IMAGE_SNAPSHOT_PENDING,
    TaskState.IMAGE_PENDING_UPLOAD,
    TaskState.IMAGE_UPLOADING,
)
_SETTLED_IF_RUNNING_TASKS = (
    TaskState.REBOOT_STARTED,
    TaskState.REBOOT_STARTED_HARD,
    TaskState.REBOOTING_HARD,
    TaskState.REBOOTING,
    TaskState.PAUSING,
    TaskState.UNPAUSING,
)
_ERROR_CLEARED = {"vm_state": VmState.ERROR.value, "task_state": None}


def _values(*members) -> tuple[str, ...]:
    return tuple(m.value for m in members)


def _task(*tasks) -> Condition:
    return is_in("task_state", *_values(*tasks))


EVACUATED = is_in("evacuation_status", *_PENDING)
NOVA_CELL = is_in("nova_cell", True)
"""The records are Nova's cell database: nova-compute starts after the run and can do what needs the
cloud's other services. On compute-recover's own database nothing can: it completes everything itself."""
NO_DOMAIN = is_in("domain_present", False)
_EVACUATION_LEFT = ("the instance's Placement allocations on this node removed and the evacuation completed by "
                    "_destroy_evacuated_instances, since only nova-compute speaks to Placement")
_DELETION_LEFT = ("the deletion finished by _init_instance (_delete_instance: its Neutron ports deallocated, its "
                  "Cinder volumes detached, its Placement allocations deleted, the record and its children "
                  "soft-deleted), since only nova-compute speaks to those services")
DOMAIN_HERE = is_in("domain_present", True)
NOT_RUNNING = not_in("power_state", "running")
WAS_RUNNING = is_in("db_power_state", "running")
DOWN_TOO_LONG = is_in("down_too_long", True)
_TOO_LONG = ("the host was down longer than allowed (its recover:resume=if-down-less-than duration, or "
             "--max-downtime), so it is left off")


def _resume(policy: ResumePolicy) -> Condition:
    return is_in("resume_policy", policy.value)


DEVICES_MISSING = is_in("devices", DeviceReadiness.MISSING.value)
DEVICES_REPAIRABLE = is_in("devices", DeviceReadiness.REPAIRABLE.value)


def starting(*when: Condition, reason: str, writes: dict | None = None,
             actions: tuple[Action, ...]) -> tuple[Case, Case, Case]:
    """A case that starts the guest, after its two device-proof twins (docs/devices.md): a host resource
    missing blocks the start and leaves the record as it is, so that a later run starts it once the
    resource is back; inactive ones are repaired first. With every resource ready the case is as it was."""
    return (
        case(*when, DEVICES_MISSING,
             reason=f"{reason}; but a host resource its definition needs is missing, so it is blocked: not "
             "started, and its record left as it is until the resource returns"),
        case(*when, DEVICES_REPAIRABLE, reason=f"{reason}, once the inactive storage pools, networks or mediated "
             "devices it needs are started", writes=writes, actions=(act("repair_devices"), *actions)),
        case(*when, reason=reason, writes=writes, actions=actions),
    )

POLICY: tuple[Rule, ...] = (
    Rule(
        "evacuated_away",
        "ComputeManager._destroy_evacuated_instances (init_host)",
        "an evacuation moved the instance away while this host was down",
        (
            hand_off(
                EVACUATED, DOMAIN_HERE, is_in("destroy_after_evacuate", True),
                is_in("shared_storage", True), is_in("deleted", False),
                done_here="it was evacuated to another host that shares its storage, so the stale local domain "
                "is destroyed without its disks",
                left=_EVACUATION_LEFT,
                actions=(act("destroy_evacuated", destroy_disks=False),),
            ),
            hand_off(
                EVACUATED, DOMAIN_HERE, is_in("destroy_after_evacuate", True), is_in("deleted", False),
                done_here="it was evacuated to another host (storage not shared), so the stale local domain "
                "is destroyed with its disks",
                left=_EVACUATION_LEFT,
                actions=(act("destroy_evacuated", destroy_disks=True),),
            ),
            hand_off(
                EVACUATED, NO_DOMAIN, is_in("deleted", False),
                done_here="it was evacuated to another host and no local domain is left, so nothing is done here",
                left=_EVACUATION_LEFT,
            ),
            case(
                EVACUATED, DOMAIN_HERE, is_in("destroy_after_evacuate", True),
                is_in("shared_storage", True), is_in("deleted", False),
                reason="it was evacuated to another host that shares its storage, so the stale local "
                "domain is destroyed without its disks and the evacuation completed",
                actions=(act("destroy_evacuated", destroy_disks=False), act("complete_migration")),
            ),
            case(
                EVACUATED, DOMAIN_HERE, is_in("destroy_after_evacuate", True),
                reason="it was evacuated to another host (storage not shared, or the record is deleted), "
                "so the stale local domain is destroyed with its disks and the evacuation completed",
                actions=(act("destroy_evacuated", destroy_disks=True), act("complete_migration")),
            ),
            case(
                EVACUATED, DOMAIN_HERE,
                reason="it was evacuated to another host, but destroy_after_evacuate is off, so the stale "
                "local domain is left alone (warning) and the evacuation stays open",
            ),
            case(
                EVACUATED, NO_DOMAIN, is_in("deleted", True), NOVA_CELL,
                reason="it was evacuated to another host and deleted since, and no local domain is left, so "
                "nothing is done: its evacuation is left open, as nova-compute leaves it (its allocations were "
                "released when it was deleted)",
            ),
            case(
                EVACUATED,
                reason="it was evacuated to another host and no local domain is left, so only the "
                "evacuation is completed",
                actions=(act("complete_migration"),),
            ),
        ),
    ),
    Rule(
        "deleted_record",
        "ComputeManager._cleanup_running_deleted_instances (running_deleted_instance_action)",
        "the instance record is deleted",
        (
            case(
                is_in("deleted", True), DOMAIN_HERE,
                is_in("running_deleted_instance_action", RunningDeletedInstanceAction.REAP.value),
                reason="its record is deleted but its domain remains, and running_deleted_instance_action "
                "is reap, so the domain is destroyed and undefined",
                actions=(act("reap_domain"),),
            ),
            case(
                is_in("deleted", True), DOMAIN_HERE,
                is_in("running_deleted_instance_action", RunningDeletedInstanceAction.SHUTDOWN.value),
                is_in("power_state", "running", "paused", "suspended"),
                reason="its record is deleted but its domain is still up, and running_deleted_instance_action "
                "is shutdown, so the domain is shut down",
                actions=(act("shutdown_domain"),),
            ),
            case(
                is_in("deleted", True), DOMAIN_HERE,
                reason="its record is deleted but its domain remains; running_deleted_instance_action does "
                "not ask to touch it, so it is only reported",
            ),
            case(
                is_in("deleted", True),
                reason="its record is deleted and no domain is left here, so there is nothing to do",
            ),
        ),
    ),
    Rule(
        "not_owned",
        "ComputeManager.init_host: only instances whose host is this host are initialised",
        "the database places the instance on another host",
        (case(is_in("owned", False), reason="the database places it on another host, so it is left alone"),),
    ),
    Rule(
        "not_recoverable",
        "_init_instance: vm_state soft-delete, or error without resize_migrating/deleting: return",
        "soft-deleted or in error: not recovered",
        (
            case(
                is_in("vm_state", VmState.SOFT_DELETED.value),
                reason="it is soft-deleted, so it is left as it is",
            ),
            case(
                is_in("vm_state", VmState.ERROR.value),
                not_in("task_state", *_values(TaskState.RESIZE_MIGRATING, TaskState.DELETING)),
                reason="it is in error with no crashed resize or deletion to finish, so it is left as it is",
            ),
        ),
    ),
    Rule(
        "partial_deletion",
        "_init_instance: vm_state deleted -> _complete_partial_deletion",
        "deleted in vm_state but the record is not yet marked deleted",
        (
            hand_off(
                is_in("vm_state", VmState.DELETED.value),
                done_here="it was deleted but the deletion was not recorded, so nothing is done here",
                left="the deletion completed by _init_instance (_complete_partial_deletion: the record and its "
                "children soft-deleted, its Placement allocations deleted), since only nova-compute speaks to "
                "Placement",
            ),
            case(
                is_in("vm_state", VmState.DELETED.value),
                reason="it was deleted but the deletion was not recorded, so the deletion is completed",
                actions=(act("complete_deletion"),),
            ),
        ),
    ),
    Rule(
        "failed_build",
        "_init_instance: building or a spawn task -> _set_instance_obj_error_state",
        "the build was interrupted",
        (
            case(
                is_in("vm_state", VmState.BUILDING.value),
                reason="its build was interrupted, so it is put in error",
                writes=_ERROR_CLEARED,
            ),
            case(
                _task(*_SPAWN_TASKS),
                reason="its spawn was interrupted, so it is put in error",
                writes=_ERROR_CLEARED,
            ),
        ),
    ),
    Rule(
        "failed_rebuild",
        "_init_instance: active/stopped with a rebuild task -> _set_instance_obj_error_state",
        "the rebuild was interrupted",
        (
            case(
                is_in("vm_state", *_values(VmState.ACTIVE, VmState.STOPPED)),
                _task(*_REBUILD_TASKS),
                reason="its rebuild was interrupted, so it is put in error",
                writes=_ERROR_CLEARED,
            ),
        ),
    ),
    Rule(
        "interrupted_snapshot",
        "_init_instance: image task_state (post-reboot clear) -> task_state None",
        "a snapshot was interrupted",
        (
            case(
                not_in("vm_state", VmState.ERROR.value),
                _task(*_SNAPSHOT_TASKS),
                reason="a snapshot was interrupted, so its task is cleared",
                writes={"task_state": None},
            ),
        ),
        stop=False,
    ),
    Rule(
        "interrupted_resize_prep",
        "_init_instance: task_state resize_prep -> task_state None",
        "a resize was interrupted while being prepared",
        (
            case(
                not_in("vm_state", VmState.ERROR.value),
                _task(TaskState.RESIZE_PREP),
                reason="a resize was interrupted while being prepared, so its task is cleared",
                writes={"task_state": None},
            ),
        ),
        stop=False,
    ),
    Rule(
        "interrupted_deletion",
        "_init_instance: task_state deleting -> _delete_instance",
        "a deletion was interrupted",
        (
            hand_off(
                _task(TaskState.DELETING), DOMAIN_HERE,
                done_here="a deletion was interrupted, so its domain is destroyed with its disks",
                left=_DELETION_LEFT,
                actions=(act("destroy_domain", destroy_disks=True),),
            ),
            hand_off(
                _task(TaskState.DELETING), NO_DOMAIN,
                done_here="a deletion was interrupted and its domain is gone, so nothing is done here",
                left=_DELETION_LEFT,
            ),
            case(
                _task(TaskState.DELETING),
                reason="a deletion was interrupted, so it is restarted",
                actions=(act("restart_deletion"),),
            ),
        ),
    ),
    Rule(
        "retry_reboot",
        "_init_instance: _retry_reboot -> reboot_instance",
        "a reboot was interrupted",
        (
            case(
                _task(TaskState.REBOOT_PENDING), is_in("vm_state", VmState.ACTIVE.value),
                is_in("power_state", "running"),
                reason="a soft reboot was pending and the guest runs, so the soft reboot is retried",
                actions=(act("reboot", type="soft"),),
            ),
            *starting(
                _task(TaskState.REBOOT_PENDING), is_in("vm_state", VmState.ACTIVE.value), NOT_RUNNING,
                reason="a soft reboot was pending but the guest is not running, so it becomes a hard reboot",
                writes={"task_state": TaskState.REBOOT_PENDING_HARD.value},
                actions=(act("reboot", type="hard"),),
            ),
            *starting(
                _task(TaskState.REBOOT_PENDING_HARD), is_in("vm_state", *_values(*_HARD_REBOOT_VM_STATES)),
                reason="a hard reboot was pending, so it is retried",
                actions=(act("reboot", type="hard"),),
            ),
            *starting(
                _task(TaskState.REBOOTING, TaskState.REBOOT_STARTED), NOT_RUNNING,
                reason="a soft reboot stopped the guest and never started it again, so it becomes a hard reboot",
                writes={"task_state": TaskState.REBOOT_PENDING_HARD.value},
                actions=(act("reboot", type="hard"),),
            ),
            *starting(
                _task(TaskState.REBOOTING_HARD, TaskState.REBOOT_STARTED_HARD), NOT_RUNNING,
                reason="a hard reboot stopped the guest and never started it again, so it is retried",
                actions=(act("reboot", type="hard"),),
            ),
        ),
    ),
    Rule(
        "transition_finished",
        "_init_instance: running with a reboot/pause task -> task_state None, vm_state active",
        "a reboot or pause finished: the guest runs",
        (
            case(
                is_in("power_state", "running"), _task(*_SETTLED_IF_RUNNING_TASKS),
                reason="the guest runs, so the reboot or (un)pause it was doing is over and the record "
                "becomes active",
                writes={"task_state": None, "vm_state": VmState.ACTIVE.value},
            ),
        ),
        stop=False,
    ),
    Rule(
        "interrupted_unpause",
        "_init_instance: paused with task unpausing -> driver.unpause",
        "an unpause was interrupted",
        (
            case(
                is_in("power_state", "paused"), _task(TaskState.UNPAUSING),
                reason="an unpause was interrupted and the guest is still paused, so it is unpaused",
                actions=(act("unpause"),),
            ),
        ),
    ),
    Rule(
        "retry_stop",
        "_init_instance: task_state powering-off -> stop_instance",
        "a power-off was interrupted",
        (
            case(
                _task(TaskState.POWERING_OFF),
                reason="a power-off was interrupted, so the stop is retried",
                actions=(act("stop"),),
            ),
        ),
    ),
    Rule(
        "retry_start",
        "_init_instance: task_state powering-on -> start_instance",
        "a power-on was interrupted",
        (
            *starting(
                _task(TaskState.POWERING_ON),
                reason="a power-on was interrupted, so the start is retried",
                actions=(act("start"),),
            ),
        ),
    ),
    Rule(
        "plug_vifs",
        "_init_instance: driver.plug_vifs",
        "the guest's network interfaces are plugged again",
        (case(reason="its network interfaces are plugged again", actions=(act("plug_vifs"),)),),
        stop=False,
    ),
    Rule(
        "revert_crashed_resize",
        "_init_instance: task_state resize_migrating -> driver.finish_revert_migration",
        "a resize crashed while migrating",
        (
            case(
                _task(TaskState.RESIZE_MIGRATING), is_in("old_vm_state", VmState.STOPPED.value),
                reason="a resize crashed while migrating, so it is reverted (left powered off, as it was "
                "stopped before) and its task cleared",
                writes={"task_state": None},
                actions=(act("revert_resize", power_on=False),),
            ),
            *starting(
                _task(TaskState.RESIZE_MIGRATING),
                reason="a resize crashed while migrating, so it is reverted and powered on, and its task cleared",
                writes={"task_state": None},
                actions=(act("revert_resize", power_on=True),),
            ),
        ),
        stop=False,
    ),
    Rule(
        "reset_live_migration",
        "_init_instance: task_state migrating -> migration status error, task_state None",
        "a live migration was interrupted",
        (
            case(
                _task(TaskState.MIGRATING),
                reason="a live migration was interrupted, so it is aborted and its task cleared",
                writes={"task_state": None},
                actions=(act("abort_live_migration"),),
            ),
        ),
        stop=False,
    ),
    Rule(
        "resume_guest",
        "_init_instance: resume_guests_state_on_host_boot -> driver.resume_state_on_host_boot; beyond Nova: "
        "instance metadata recover:resume and --max-downtime",
        "the guest is started again as its resume policy asks",
        (
            hand_off(
                not_in("resume_policy", ResumePolicy.NEVER.value), WAS_RUNNING, NOT_RUNNING,
                is_in("resume_guests_state_on_host_boot", True), NO_DOMAIN, is_in("vm_state", VmState.ACTIVE.value),
                is_in("down_too_long", False),
                done_here="it was running before the host went down, its resume policy would start it and "
                "resume_guests_state_on_host_boot is on, but its domain is gone, so nothing is done here",
                left="the domain built again from its records and started by _init_instance "
                "(_resume_guests_state: the libvirt driver's hard reboot, with its network and volumes), since "
                "only nova-compute can build a domain's definition",
            ),
            case(
                _resume(ResumePolicy.NEVER), WAS_RUNNING, NOT_RUNNING,
                reason="it was running before the host went down, but its metadata says recover:resume=never, "
                "so it stays off",
                records_power=True,
            ),
            case(
                _resume(ResumePolicy.ALWAYS), NOT_RUNNING, DOWN_TOO_LONG,
                reason=f"its metadata says recover:resume=always, but {_TOO_LONG}",
                records_power=True,
            ),
            case(
                _resume(ResumePolicy.ALWAYS), is_in("power_state", "paused", "suspended"),
                not_in("db_power_state", "running"),
                reason="its metadata says recover:resume=always, but it is paused or suspended, which resuming leaves "
                "as it is (as Nova's libvirt driver does), so it is left so",
                records_power=True,
            ),
            *starting(
                _resume(ResumePolicy.ALWAYS), NOT_RUNNING, is_in("vm_state", VmState.STOPPED.value),
                reason="it is stopped and its metadata says recover:resume=always, so the guest is started and "
                "recorded active",
                writes={"vm_state": VmState.ACTIVE.value},
                actions=(act("resume_guest"),),
            ),
            *starting(
                _resume(ResumePolicy.ALWAYS), NOT_RUNNING,
                reason="it is not running and its metadata says recover:resume=always, so the guest is resumed",
                actions=(act("resume_guest"),),
            ),
            case(
                _resume(ResumePolicy.IF_DOWN_LESS_THAN), WAS_RUNNING, NOT_RUNNING, DOWN_TOO_LONG,
                reason=f"it was running before the host went down, but {_TOO_LONG}",
                records_power=True,
            ),
            *starting(
                _resume(ResumePolicy.IF_DOWN_LESS_THAN), WAS_RUNNING, NOT_RUNNING,
                reason="it was running before the host went down, which was down for less than its "
                "recover:resume=if-down-less-than duration, so the guest is resumed",
                actions=(act("resume_guest"),),
            ),
            case(
                _resume(ResumePolicy.IF_WAS_RUNNING), WAS_RUNNING, NOT_RUNNING,
                is_in("resume_guests_state_on_host_boot", True), DOWN_TOO_LONG,
                reason=f"it was running before the host went down and resume_guests_state_on_host_boot is on, "
                f"but {_TOO_LONG}",
                records_power=True,
            ),
            *starting(
                _resume(ResumePolicy.IF_WAS_RUNNING), WAS_RUNNING, NOT_RUNNING,
                is_in("resume_guests_state_on_host_boot", True),
                reason="it was running before the host went down and resume_guests_state_on_host_boot is on, "
                "so the guest is resumed",
                actions=(act("resume_guest"),),
            ),
        ),
    ),
)
"""The startup policy, in priority order."""

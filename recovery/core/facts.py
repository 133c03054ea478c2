"""The facts a decision reads, and their validation from untrusted records.

A decision is a pure function of one `Facts` value, so everything a guard may
read is here: the state triple, ownership, what the database last recorded,
evacuation evidence, whether the record is deleted, and the run's options.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from recovery.core.bounds import NOVA_STRING_LENGTH, InputError, bounded_string, canonical_uuid, shown
from recovery.core.errors import RecoveryError
from recovery.core.metadata import PolicyValueError, resume_facts
from states.enums import (
    NO_TASK,
    DeviceReadiness,
    PowerState,
    ResumePolicy,
    RunningDeletedInstanceAction,
    TaskState,
    VmState,
)

VM_STATES = tuple(s.value for s in VmState)
DEVICE_READINESS = tuple(r.value for r in DeviceReadiness)
TASK_STATES = (NO_TASK, *(t.value for t in TaskState))
POWER_STATES = tuple(p.label for p in PowerState)


class FactsError(RecoveryError, ValueError):
    """A record that cannot be decided; the message names the field and the fix."""


T = TypeVar("T")


def _within_bounds(check: Callable[..., T], *args: Any) -> T:
    """An `input_bounds` check whose refusal is this record's FactsError."""
    try:
        return check(*args)
    except InputError as error:
        raise FactsError(str(error)) from None


@dataclass(frozen=True)
class Options:
    """Operator options that change decisions (Nova's option names)."""

    resume_guests_state_on_host_boot: bool = False
    destroy_after_evacuate: bool = True
    running_deleted_instance_action: str = RunningDeletedInstanceAction.LOG.value
    resume_policy: str = ResumePolicy.IF_WAS_RUNNING.value
    """The host default for instances without `recover:resume` metadata (recovery.core.metadata)."""
    max_downtime: float | None = None
    """Seconds the host may have been down for guests to be resumed; None: no limit."""


class Facts(NamedTuple):
    """Everything a guard may read. Hashable, so equal facts share one decision."""

    vm_state: str
    task_state: str
    power_state: str
    owned: bool
    db_power_state: str
    old_vm_state: str | None
    domain_present: bool
    evacuation_status: str | None
    shared_storage: bool
    deleted: bool
    resume_guests_state_on_host_boot: bool
    destroy_after_evacuate: bool
    running_deleted_instance_action: str
    resume_policy: str = ResumePolicy.IF_WAS_RUNNING.value
    down_too_long: bool = False
    """The host was down at least as long as the instance's if-down-less-than or --max-downtime allows."""
    devices: str = DeviceReadiness.READY.value
    """Whether the host-side resources its definition needs are there (recovery.core.devices); proved only
    for a guest about to be started, every other one is ready."""
    nova_cell: bool = False
    """The record is in Nova's cell database, so nova-compute's start follows the run: what needs the cloud's
    other services is handed to it (docs/nova.md, the division of labour). A record's `nova_cell`."""

    @property
    def state(self) -> str:
        return state_name(self.vm_state, self.task_state, self.power_state)


def record_task_state(task_state: str) -> str | None:
    """A task as the database column holds it: `none` in state names is null there."""
    return None if task_state == NO_TASK else task_state


def state_name(vm_state: str, task_state: str | None, power_state: str) -> str:
    return f"{vm_state}/{task_state or NO_TASK}/{power_state}"


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def parse_vm_state(value: Any, field: str = "vm_state", allow_null: bool = False) -> str | None:
    if value is None and allow_null:
        return None
    if value not in VM_STATES:
        raise FactsError(f"unknown {field} {shown(value)}: use one of {_choices(VM_STATES)}")
    return value


def parse_task_state(value: Any) -> str:
    """A null task is spelled `none` inside the machine, as in state names."""
    if value is None:
        return NO_TASK
    if value == NO_TASK or value not in TASK_STATES:
        raise FactsError(f"unknown task_state {shown(value)}: use null or one of {_choices(TASK_STATES[1:])}")
    return value


def parse_power_state(value: Any, field: str = "power_state") -> str:
    """Accepts a name (`running`) or Nova's integer (1)."""
    if isinstance(value, bool):
        raise FactsError(f"unknown {field} {shown(value)}: use one of {_choices(POWER_STATES)} or Nova's integer")
    if isinstance(value, int):
        try:
            return PowerState(value).label
        except ValueError:
            pass
    elif isinstance(value, str) and value.lower() in POWER_STATES:
        return value.lower()
    raise FactsError(
        f"unknown {field} {shown(value)}: use one of {_choices(POWER_STATES)} or Nova's integer "
        f"({', '.join(str(int(p)) for p in PowerState)})"
    )


_VM_STATE_SET = frozenset(VM_STATES)
_TASK_STATE_SET = frozenset(TASK_STATES) - {NO_TASK}
_POWER_BY_INPUT = {**{p.label: p.label for p in PowerState}, **{int(p): p.label for p in PowerState}}


def _flag(record: dict, field: str, default: bool) -> bool:
    value = record.get(field, default)
    if value is None:
        return default
    if value is not True and value is not False:
        raise FactsError(f"{field} must be true or false, not {shown(value)}")
    return value


def _missing(record: dict) -> FactsError:
    absent = [f for f in ("uuid", "vm_state", "task_state", "power_state", "db_power_state") if f not in record]
    return FactsError(f"missing field {absent[0]!r}: every record needs uuid, vm_state, task_state, "
                      "power_state and db_power_state (task_state may be null)")


def _power(record: dict, field: str) -> str:
    value = record[field]
    if type(value) in (str, int):  # bool is not accepted as an integer power state
        label = _POWER_BY_INPUT.get(value)
        if label is not None:
            return label
    return parse_power_state(value, field)


def record_uuid(record: Any) -> str | None:
    """A record's uuid in canonical form, or None when it has none usable (its error line then names none)."""
    if not isinstance(record, dict):
        return None
    try:
        return canonical_uuid(record.get("uuid"))
    except InputError:
        return None


def _check_evacuation(evacuation: Any) -> None:
    if type(evacuation) is not dict or type(evacuation.get("status")) is not str:
        raise FactsError(f"evacuation must be null or an object with a string status, not {shown(evacuation)}")
    _within_bounds(bounded_string, evacuation["status"], "evacuation.status")
    dest_host = evacuation.get("dest_host")
    if dest_host is not None:
        _within_bounds(bounded_string, dest_host, "evacuation.dest_host")


def facts_from_record(record: Any, this_host: str, options: Options) -> Facts:
    """Validate one `decide` input record (docs/decide.md) into facts."""
    return identified_facts(record, this_host, options)[1]


def identified_facts(record: Any, this_host: str, options: Options) -> tuple[str, Facts]:
    """Validate one `decide` input record into its canonical uuid and its facts.

    The common case is checked with set look-ups only, since `decide` calls
    this for every one of possibly 100,000 records.
    """
    if not isinstance(record, dict):
        raise FactsError(f"a record must be a JSON object, not {type(record).__name__}")
    try:
        uuid, vm_state, task_state = record["uuid"], record["vm_state"], record["task_state"]
        db_power_state = _power(record, "db_power_state")
    except KeyError:
        raise _missing(record) from None
    uuid = _within_bounds(canonical_uuid, uuid)
    if type(vm_state) is not str or vm_state not in _VM_STATE_SET:
        parse_vm_state(vm_state)
    if task_state is None:
        task_state = NO_TASK
    elif type(task_state) is not str or task_state not in _TASK_STATE_SET:
        parse_task_state(task_state)
    domain_present = _flag(record, "domain_present", True)
    if not domain_present:
        power_state = PowerState.NOSTATE.label  # the hypervisor reports no state without a domain
    elif "power_state" in record:
        power_state = _power(record, "power_state")
    else:
        raise _missing(record)
    host = record.get("host")
    if host is not None and type(host) is not str:
        raise FactsError(f"host must be a string or absent, not {shown(host)}")
    if host is not None and len(host) > NOVA_STRING_LENGTH:
        _within_bounds(bounded_string, host, "host")
    old_vm_state = record.get("old_vm_state")
    if old_vm_state is not None and (type(old_vm_state) is not str or old_vm_state not in _VM_STATE_SET):
        parse_vm_state(old_vm_state, "old_vm_state")
    evacuation = record.get("evacuation")
    if evacuation is not None:
        _check_evacuation(evacuation)
    resume_policy, down_too_long = _resume_facts(record, options)
    devices = record.get("devices", DeviceReadiness.READY.value)
    if devices is None:
        devices = DeviceReadiness.READY.value
    elif type(devices) is not str or devices not in DEVICE_READINESS:
        raise FactsError(f"devices must be null or one of {_choices(DEVICE_READINESS)}, not {shown(devices)}")
    return uuid, Facts(
        vm_state,
        task_state,
        power_state,
        host is None or host == this_host,
        db_power_state,
        old_vm_state,
        domain_present,
        evacuation["status"] if evacuation else None,
        _flag(evacuation, "shared_storage", False) if evacuation else False,
        _flag(record, "deleted", False),
        options.resume_guests_state_on_host_boot,
        options.destroy_after_evacuate,
        options.running_deleted_instance_action,
        resume_policy,
        down_too_long,
        devices,
        _flag(record, "nova_cell", False),
    )


def decide_record(facts: Facts, host: str | None) -> dict:
    """Facts as a `decide` input record (docs/decide.md), the inverse of `facts_from_record`: fed
    back to `decide` or `explain --facts` with the same --host and options, it decides the same.
    `host` is the instance's host as recorded; the options are not part of a record. The device readiness
    is written only when it is not `ready`, the default, and `nova_cell` only when true (a record of
    compute-recover's own database has none), so that records stay as they were."""
    evacuation = None
    if facts.evacuation_status is not None:
        evacuation = {"status": facts.evacuation_status, "shared_storage": facts.shared_storage}
    return {
        "vm_state": facts.vm_state,
        "task_state": record_task_state(facts.task_state),
        "power_state": facts.power_state,
        "db_power_state": facts.db_power_state,
        "host": host,
        "old_vm_state": facts.old_vm_state,
        "domain_present": facts.domain_present,
        "evacuation": evacuation,
        "deleted": facts.deleted,
    } | ({} if facts.devices == DeviceReadiness.READY.value else {"devices": facts.devices}) | (
        {"nova_cell": True} if facts.nova_cell else {})


def options_of(facts: Facts) -> dict:
    """The run's options a decision read, by their names as flags and config keys spell them (the
    downtime limit is read through the fact it gives, down_too_long)."""
    return {name: getattr(facts, name) for name in Options.__dataclass_fields__ if name in Facts._fields}


def _resume_facts(record: dict, options: Options) -> tuple[str, bool]:
    """The instance's resume policy and whether the host was down too long for it (docs/recovery-policy.md)."""
    metadata, down = record.get("metadata"), record.get("host_down_seconds")
    if metadata is None and down is None and options.max_downtime is None:
        return options.resume_policy, False  # the common case, checked with no parsing
    if metadata is not None and (type(metadata) is not dict or any(
            type(k) is not str or type(v) is not str for k, v in metadata.items())):
        raise FactsError(f"metadata must be null or an object of strings, not {shown(metadata)}")
    if down is not None and (type(down) not in (int, float) or down < 0):
        raise FactsError(f"host_down_seconds must be null or a number of seconds >= 0, not {shown(down)}")
    try:
        return resume_facts(metadata or {}, options.resume_policy, options.max_downtime, down)
    except PolicyValueError as error:
        raise FactsError(str(error)) from None

"""A run's device proof (docs/devices.md): before any guest is started, the host-side resources of every
guest the run would start are proved against one inventory of the host, and each such guest is decided
again with its device readiness; repairs are made once per run; after a start, the live devices are
compared with the definition.

Only guests whose decision starts them are looked at, and the inventory is gathered only when there is
one: a run that starts nothing reads nothing more than before.
"""

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from recovery.adapters.hypervisor import Hypervisor, HypervisorError
from recovery.core.devices import (
    Definition,
    DeviceProof,
    Resource,
    disk_paths,
    missing_after_start,
    prove_definitions,
    read_definition,
    shown_name,
)
from recovery.core.effects import starts_guest
from recovery.core.errors import RecoveryError
from recovery.core.machine import Decision, RecoveryMachine
from recovery.core.outcomes import Outcome
from recovery.run.execute import Assignment, InstanceResult
from states.enums import DeviceReadiness, OnDegraded
from states.policy import STARTS_GUEST


def boots_definition(decision: Decision) -> bool:
    """Whether the decision starts the guest from its definition (states.policy.STARTS_GUEST): those are the
    guests whose devices are proved (an unpause or a soft reboot of a running guest needs no proof)."""
    return any(action in STARTS_GUEST for action in decision.actions)


def prove_guests(hypervisor: Hypervisor, uuids: Iterable[str]) -> tuple[dict[str, Definition], dict[str, DeviceProof]]:
    """The definitions of these guests that have a domain, and their proofs against one inventory of the host,
    by uuid; HypervisorError when either cannot be read."""
    definitions = {u: read_definition(x) for u, x in hypervisor.domain_xmls(uuids, True).items()}
    inventory = hypervisor.inventory(disk_paths(r for d in definitions.values() for r in d.needs))
    return definitions, prove_definitions(definitions, inventory)


@dataclass
class DeviceCheck:
    """One run's proofs, the repairs it made, and each proved guest's devices."""

    hypervisor: Hypervisor
    proofs: dict[str, DeviceProof] = field(default_factory=dict)
    """The proofs that found a resource not ready, by uuid: all a run acts on. A ready guest's is not kept, nor
    its definition's resources: on a host of thousands, what a run keeps until its end costs it collections."""
    defined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each proved guest's devices as its definition names them (Definition.devices), compared after its start."""
    repaired: dict[Resource, str | None] = field(default_factory=dict)
    """Each repair tried in this run and its error (None: started)."""
    stopped: set[str] = field(default_factory=set)
    """The guests stopped again after their start for a missing device (--on-degraded stop)."""
    unproved: str | None = None
    """Why no proof could be made in this run (the inventory or the definitions could not be read)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prove(self, decisions: dict[str, Decision], machine: RecoveryMachine) -> dict[str, Decision]:
        """The decisions that change once device readiness is known, by uuid. `decisions`: those that start
        a guest. One inventory for all of them; a guest without a domain is left to its start to report."""
        if not decisions:
            return {}
        definitions, proofs = prove_guests(self.hypervisor, decisions)
        self.defined = {uuid: definition.devices for uuid, definition in definitions.items()}
        self.proofs = {uuid: proof for uuid, proof in proofs.items() if proof.readiness is not DeviceReadiness.READY}
        return {uuid: machine.decide(decisions[uuid].facts._replace(devices=proof.readiness.value))
                for uuid, proof in self.proofs.items()}

    def prove_assignments(self, assignments: list[Assignment], machine: RecoveryMachine) -> None:
        """The proof of every assignment that boots its guest from its definition: each whose resources are not all
        ready is decided again with its readiness (kept in its record, so that a plan file keeps it and
        `run --plan` compares it too); one no longer started leaves its tier. A host whose definitions or
        inventory cannot be read is not proved (said in the run's warnings): its guests are started as before."""
        try:
            changed = self.prove({p.uuid: p.decision for p in assignments if boots_definition(p.decision)}, machine)
        except HypervisorError as error:
            self.proofs.clear()
            self.unproved = str(error)
            return
        for assignment in assignments:
            decision = changed.get(assignment.uuid)
            if decision is not None:
                assignment.decision = decision
                if assignment.record is not None:
                    assignment.record = {**assignment.record, "devices": decision.facts.devices}
                if not starts_guest(decision):
                    assignment.order = None

    def settle(self, assignment: Assignment, result: InstanceResult, dry_run: bool) -> bool:
        """What the proof adds to an assignment's result: a plan (dry run) shows it in the error; a guest a missing
        resource kept off is blocked. True when the outcome changed (to be journaled again)."""
        if dry_run:
            result.error = result.error or self.shown(assignment.uuid)
            return False
        if result.outcome == Outcome.OK and assignment.decision.facts.devices == DeviceReadiness.MISSING.value:
            result.outcome, result.error = Outcome.BLOCKED, self.shown(assignment.uuid)
            return True
        return False

    def compare_after_start(self, assignments: list[Assignment], results: list[InstanceResult],
                            on_degraded: str) -> list[tuple[Assignment, InstanceResult]]:
        """Every guest the run started, its live devices compared with its definition once the starts are
        done (one listing, then a read per guest, not contending with the starts); each one that lacks a
        device it was defined with is made degraded (and stopped with --on-degraded stop), and returned."""
        by_uuid = {assignment.uuid: assignment for assignment in assignments}
        started = {r.uuid: r for r in results if r.outcome == Outcome.OK and r.uuid in self.defined
                   and r.uuid in by_uuid and boots_definition(by_uuid[r.uuid].decision)}
        if not started:
            return []
        try:
            live = self.hypervisor.domain_xmls(started)
        except HypervisorError:
            return []  # the starts were seen; a comparison that cannot be made is not a failure
        changed = []
        for uuid, xml in live.items():
            degraded = self.degraded(uuid, xml, on_degraded)
            if degraded is not None:
                started[uuid].outcome, started[uuid].error = Outcome.DEGRADED, degraded
                changed.append((by_uuid[uuid], started[uuid]))
        return changed

    def repair(self, uuid: str) -> list[str]:
        """Start what this guest's proof found inactive, each resource once per run (a second guest needing
        it gets the first one's result); returns them named (`network 'tenant-b'`), for the journal entry of
        the guest's repair_devices; raises with the resources that could not be started."""
        failed = []
        repairs = self.proofs[uuid].repairs if uuid in self.proofs else ()
        for resource in repairs:
            with self._lock:
                if resource not in self.repaired:
                    try:
                        self.hypervisor.repair(resource)
                        self.repaired[resource] = None
                    except (RecoveryError, HypervisorError) as error:
                        self.repaired[resource] = str(error)
                error = self.repaired[resource]
            if error is not None:
                failed.append(error)
        if failed:
            raise HypervisorError("; ".join(failed))
        return [_named(resource) for resource in repairs]

    def shown(self, uuid: str) -> str | None:
        """The guest's proof as its report's error says it: `blocked: ...` naming the missing resources,
        `repairable: ...` the inactive ones, `unverified: ...` the secrets a read-only connection could not read
        (and a repairable guest's such secrets too); None when every resource is ready or it was not proved."""
        proof = self.proofs.get(uuid)
        if proof is None or proof.readiness is DeviceReadiness.READY:
            return None
        if proof.readiness is DeviceReadiness.MISSING:
            return "blocked: " + "; ".join(proof.missing)
        return f"{proof.readiness}: " + "; ".join(proof.problems)

    def degraded(self, uuid: str, live_xml: str, on_degraded: str) -> str | None:
        """After the guest's start: the devices its definition asks for that its running domain (`live_xml`)
        lacks, as the result's error (None: every one is there); with --on-degraded stop it is stopped again."""
        defined = self.defined.get(uuid)
        if not defined:
            return None
        try:
            missing = missing_after_start(defined, live_xml)
        except RecoveryError:
            return None
        if not missing:
            return None
        error = f"degraded: {', '.join(missing)} missing after the start"
        if on_degraded == OnDegraded.STOP.value:
            try:
                self.hypervisor.stop(uuid)
                self.stopped.add(uuid)
                error += "; stopped"
            except HypervisorError as failure:
                error += f"; could not be stopped: {failure}"
        return error

    def warnings(self) -> list[str]:
        """For the run's warnings: a proof that could not be made, and one line per repair made or tried."""
        unproved = [f"no device proof was made ({self.unproved}): guests were started without it"] if (
            self.unproved) else []
        return unproved + [f"started {_named(r)} before the guests that need it" if error is None
                           else f"could not start {_named(r)}: {error}" for r, error in self.repaired.items()]


def _named(resource: Resource) -> str:
    """A repaired resource as the warnings and the journal name it: `storage pool 'NAME'`."""
    return f"{resource.kind} '{shown_name(resource.name)}'"

"""A run's device proof (docs/devices.md): before any guest is started, the host-side resources of every
guest the run would start are proved against one inventory of the host, and each such guest is decided
again with its device readiness; repairs are made once per run; after a start, the live devices are
compared with the definition.

Only guests whose decision starts them are looked at, and the inventory is gathered only when there is
one: a run that starts nothing reads nothing more than before.
"""

import threading
from dataclasses import dataclass, field

from recovery.adapters.hypervisor import Hypervisor, HypervisorError
from recovery.core.devices import (
    Definition,
    DeviceProof,
    Resource,
    disk_paths,
    missing_after_start,
    prove_definition,
    read_definition,
    shown_name,
)
from recovery.core.errors import RecoveryError
from recovery.core.machine import Decision, RecoveryMachine
from states.enums import DeviceReadiness, OnDegraded
from states.policy import STARTS_GUEST


def boots_definition(decision: Decision) -> bool:
    """Whether the decision starts the guest from its definition (states.policy.STARTS_GUEST): those are the
    guests whose devices are proved (an unpause or a soft reboot of a running guest needs no proof)."""
    return any(action in STARTS_GUEST for action in decision.actions)


@dataclass
class DeviceCheck:
    """One run's proofs, the repairs it made, and each proved guest's definition."""

    hypervisor: Hypervisor
    proofs: dict[str, DeviceProof] = field(default_factory=dict)
    definitions: dict[str, Definition] = field(default_factory=dict)
    repaired: dict[Resource, str | None] = field(default_factory=dict)
    """Each repair tried in this run and its error (None: started)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prove(self, decisions: dict[str, Decision], machine: RecoveryMachine) -> dict[str, Decision]:
        """The decisions that change once device readiness is known, by uuid. `decisions`: those that start
        a guest. One inventory for all of them; a guest without a domain is left to its start to report."""
        if not decisions:
            return {}
        self.definitions = {u: read_definition(x) for u, x in self.hypervisor.domain_xmls(decisions, True).items()}
        paths = set().union(*(disk_paths(d.needs) for d in self.definitions.values()))
        inventory = self.hypervisor.inventory(paths)
        changed = {}
        for uuid, definition in self.definitions.items():
            proof = self.proofs[uuid] = prove_definition(definition, inventory)
            if proof.readiness is not DeviceReadiness.READY:
                changed[uuid] = machine.decide(decisions[uuid].facts._replace(devices=proof.readiness.value))
        return changed

    def repair(self, uuid: str) -> None:
        """Start what this guest's proof found inactive, each resource once per run (a second guest needing
        it gets the first one's result); raises with the resources that could not be started."""
        failed = []
        for resource in self.proofs[uuid].repairs if uuid in self.proofs else ():
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

    def shown(self, uuid: str) -> str | None:
        """The guest's proof as its report's error says it: `blocked: ...` naming the missing resources,
        `repairable: ...` naming the inactive ones; None when every resource is ready or it was not proved."""
        proof = self.proofs.get(uuid)
        if proof is None or proof.readiness is DeviceReadiness.READY:
            return None
        if proof.readiness is DeviceReadiness.MISSING:
            return "blocked: " + "; ".join(proof.missing)
        return "repairable: " + "; ".join(proof.problems)

    def degraded(self, uuid: str, live_xml: str, on_degraded: str) -> str | None:
        """After the guest's start: the devices its definition asks for that its running domain (`live_xml`)
        lacks, as the result's error (None: every one is there); with --on-degraded stop it is stopped again."""
        definition = self.definitions.get(uuid)
        if definition is None or not definition.devices:
            return None
        try:
            missing = missing_after_start(definition.devices, live_xml)
        except RecoveryError:
            return None
        if not missing:
            return None
        error = f"degraded: {', '.join(missing)} missing after the start"
        if on_degraded == OnDegraded.STOP.value:
            try:
                self.hypervisor.stop(uuid)
                error += "; stopped"
            except HypervisorError as failure:
                error += f"; could not be stopped: {failure}"
        return error

    def repairs_done(self) -> list[str]:
        """One line per repair this run made or tried, for the run's warnings."""
        return [f"started {r.kind} '{shown_name(r.name)}' before the guests that need it" if error is None
                else f"could not start {r.kind} '{shown_name(r.name)}': {error}" for r, error in self.repaired.items()]

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
    DeviceProof,
    Resource,
    disk_paths,
    missing_after_start,
    needs,
    prove_domain,
    shown_name,
)
from recovery.core.devices import devices as defined_devices
from recovery.core.errors import RecoveryError
from recovery.core.machine import Decision, RecoveryMachine
from states.enums import DeviceReadiness

BLOCKED = "blocked"
"""A host-side resource the guest's definition needs is missing: it was not started, its record is as it was."""
DEGRADED = "degraded"
"""The guest was started, but a device its definition asks for is not in the running domain."""


@dataclass
class DeviceCheck:
    """One run's proofs, the repairs it made, and each proved guest's defined devices."""

    hypervisor: Hypervisor
    proofs: dict[str, DeviceProof] = field(default_factory=dict)
    defined: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """The devices each proved guest's definition asks for (compared with the live ones after its start)."""
    repaired: dict[Resource, str | None] = field(default_factory=dict)
    """Each repair tried in this run and its error (None: started)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prove(self, decisions: dict[str, Decision], machine: RecoveryMachine) -> dict[str, Decision]:
        """The decisions that change once device readiness is known, by uuid. `decisions`: those that start
        a guest. One inventory for all of them; a guest without a domain is left to its start to report."""
        if not decisions:
            return {}
        definitions = self.hypervisor.definitions(decisions)
        wanted = {}
        for uuid, xml in definitions.items():
            try:
                wanted[uuid] = needs(xml)
            except RecoveryError:
                wanted[uuid] = ()
        inventory = self.hypervisor.inventory(set().union(*map(disk_paths, wanted.values())))
        changed = {}
        for uuid, xml in definitions.items():
            proof = self.proofs[uuid] = prove_domain(xml, inventory)
            try:
                self.defined[uuid] = defined_devices(xml)
            except RecoveryError:
                self.defined[uuid] = ()
            if proof.readiness is not DeviceReadiness.READY:
                facts = decisions[uuid].facts._replace(devices=proof.readiness.value)
                changed[uuid] = machine.decide(facts)
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

    def blocked_reason(self, uuid: str) -> str:
        proof = self.proofs.get(uuid)
        return "blocked: " + ("; ".join(proof.missing) if proof else "a host resource is missing")

    def missing_after_start(self, uuid: str) -> tuple[str, ...]:
        """The devices the guest's definition asks for that its running domain lacks (none when not proved)."""
        defined = self.defined.get(uuid)
        if not defined:
            return ()
        live = self.hypervisor.live_xml(uuid)
        if live is None:
            return ()
        try:
            return missing_after_start(defined, live)
        except RecoveryError:
            return ()

    def repairs_done(self) -> list[str]:
        """One line per repair this run made or tried, for the run's warnings."""
        return [f"started {r.kind} '{shown_name(r.name)}' before the guests that need it" if error is None
                else f"could not start {r.kind} '{shown_name(r.name)}': {error}" for r, error in self.repaired.items()]

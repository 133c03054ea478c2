"""Whether a started guest is ready by its `recover:ready` check: the imperative shell of ordered
restart (the waiting itself is recovery/run/tiers.py). One check takes at most CHECK_TIMEOUT seconds.
A TCP check connects only where recovery/core/probe_targets.py allows: to the guest itself."""

import socket

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.core.metadata import READY_AGENT, READY_TCP, StartOrder
from recovery.core.probe_targets import IPNetwork, refused_target

CHECK_TIMEOUT = 1
"""Seconds one check may wait for an answer (the guest agent's, or a TCP handshake)."""


class ProbeRefused(Exception):
    """The check's target is not the guest's to probe: no connection was made, none ever will be."""


def host_addresses() -> frozenset[str]:
    """Every address of this host's interfaces, as they are now."""
    import psutil  # imported on use: only TCP checks ask

    return frozenset(address.address for addresses in psutil.net_if_addrs().values() for address in addresses
                     if address.family in (socket.AF_INET, socket.AF_INET6))


def not_ready_because(hypervisor: Hypervisor, uuid: str, order: StartOrder,
                      allowed: tuple[IPNetwork, ...]) -> str | None:
    """None when the guest answers its check; else why not, in one line. `running` needs no check:
    its start succeeded. ProbeRefused when a TCP check's address is not the guest's to connect to
    (`allowed`: the networks probes may reach). HypervisorLost is raised: it is about the host, not
    this guest."""
    if order.ready == READY_AGENT:
        try:
            hypervisor.guest_agent_ping(uuid, CHECK_TIMEOUT)
        except HypervisorLost:
            raise
        except HypervisorError as error:
            return str(error)
    elif order.ready == READY_TCP:
        try:
            guest = hypervisor.guest_addresses(uuid)
        except HypervisorLost:
            raise
        except HypervisorError as error:
            return str(error)
        why = refused_target(order.address or "", guest, host_addresses(), allowed)
        if why is not None:
            raise ProbeRefused(why)
        try:
            with socket.create_connection((order.address, order.port), timeout=CHECK_TIMEOUT):
                pass
        except OSError as error:
            return f"no TCP connection to {order.address} port {order.port}: {error.strerror or error}"
    return None

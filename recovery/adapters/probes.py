"""Whether a started guest is ready by its `recover:ready` check: the imperative shell of ordered
restart (the waiting itself is recovery/run/tiers.py). One check takes at most CHECK_TIMEOUT seconds."""

import socket

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.core.metadata import READY_AGENT, READY_TCP, StartOrder

CHECK_TIMEOUT = 1
"""Seconds one check may wait for an answer (the guest agent's, or a TCP handshake)."""


def not_ready_because(hypervisor: Hypervisor, uuid: str, order: StartOrder) -> str | None:
    """None when the guest answers its check; else why not, in one line. `running` needs no check:
    its start succeeded. HypervisorLost is raised: it is about the host, not this guest."""
    if order.ready == READY_AGENT:
        try:
            hypervisor.guest_agent_ping(uuid, CHECK_TIMEOUT)
        except HypervisorLost:
            raise
        except HypervisorError as error:
            return str(error)
    elif order.ready == READY_TCP:
        try:
            with socket.create_connection((order.address, order.port), timeout=CHECK_TIMEOUT):
                pass
        except OSError as error:
            return f"no TCP connection to {order.address} port {order.port}: {error.strerror or error}"
    return None

"""Whether a started guest is ready by its `recover:ready` check: the imperative shell of ordered
restart (the waiting itself is recovery/run/tiers.py). One check takes at most CHECK_TIMEOUT seconds.
A TCP check connects only where recovery/core/probe_targets.py allows: to the guest itself."""

import socket

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorLost
from recovery.core.metadata import READY_AGENT, READY_TCP, StartOrder
from recovery.core.network_info import NetworkInfoError, cached_addresses
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
                      allowed: tuple[IPNetwork, ...], network_info: str | None = None) -> str | None:
    """None when the guest answers its check; else why not, in one line. `running` needs no check:
    its start succeeded. ProbeRefused when a TCP check's address is not the guest's to connect to
    (`allowed`: the networks probes may reach; the guest's addresses are its domain's, and on Nova's cell
    database those of its `network_info` cache too). HypervisorLost is raised: it is about the host, not
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
        cached, unread = _cached_addresses(network_info)
        why = refused_target(order.address or "", guest | cached, host_addresses(), allowed,
                             "its domain's interfaces" if network_info is None or unread else
                             "its domain's interfaces and its network info cache")
        if why is not None:
            raise ProbeRefused(why if unread is None else f"{why}; its network info cache is not readable: {unread}")
        try:
            with socket.create_connection((order.address, order.port), timeout=CHECK_TIMEOUT):
                pass
        except OSError as error:
            return f"no TCP connection to {order.address} port {order.port}: {error.strerror or error}"
    return None


def _cached_addresses(network_info: str | None) -> tuple[frozenset[str], str | None]:
    """The guest's addresses from its network info cache, and why none were read from a bad one."""
    if network_info is None:
        return frozenset(), None
    try:
        return cached_addresses(network_info), None
    except NetworkInfoError as error:
        return frozenset(), str(error)

"""Where a readiness probe may connect (pure): only to the guest itself.

`recover:address` is instance metadata, written by the tenant, and the probe is made by the compute
host. Left unchecked it points the host's connections anywhere: at its own loopback services, its
management network, another tenant's guest. So a `tcp:<port>` check goes only to an address that is
the guest's own (its domain's interfaces name it, or on Nova's cell database its network info cache:
recovery/core/network_info.py), inside the networks the operator allows
(--probe-networks), and never to a loopback, link-local, multicast, unspecified or reserved (the
broadcast address included) address or one of the host's own. Anything else is refused, with
the reason, before any connection.
"""

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProbeNetworksError(ValueError):
    """An allowed network that is not a network; the message names it."""


def probe_networks(texts: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks as --probe-networks gives them (CIDR, e.g. 10.0.0.0/8 or fd00::/8)."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text.strip(), strict=True))
        except ValueError as error:
            raise ProbeNetworksError(f"--probe-networks {text!r} is not a network ({error}): give CIDR networks, "
                                     "e.g. 10.0.0.0/8") from None
    return tuple(networks)


def _unroutable(address: IPAddress) -> str | None:
    """Why an address is never a guest's, whatever the networks allowed."""
    for kind, holds in (("a loopback", address.is_loopback), ("a link-local", address.is_link_local),
                        ("a multicast", address.is_multicast), ("the unspecified", address.is_unspecified),
                        ("a reserved", address.is_reserved)):
        if holds:
            return f"{address} is {kind} address"
    return None


def refused_target(address: str, guest_addresses: Iterable[str], host_addresses: Iterable[str],
                   allowed: tuple[IPNetwork, ...], known_from: str = "its domain's interfaces") -> str | None:
    """None when a probe may connect to `address`; else why not, in one line (`known_from`: where the
    guest's addresses were read)."""
    try:
        target = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    for form in (getattr(target, "ipv4_mapped", None), target):  # ::ffff:127.0.0.1 is 127.0.0.1
        why = form is not None and _unroutable(form)
        if why:
            return f"{why}: a readiness probe goes only to the guest"
    real = getattr(target, "ipv4_mapped", None) or target
    if real in {_parsed(a) for a in host_addresses}:
        return f"{address} is an address of this host: a readiness probe goes only to the guest"
    if not any(real in network for network in allowed):
        shown = ", ".join(str(n) for n in allowed) or "none"
        return f"{address} is outside the networks probes may reach (--probe-networks: {shown})"
    guest = {_parsed(a) for a in guest_addresses} - {None}
    if real not in guest:
        have = ", ".join(sorted(str(a) for a in guest)) or "none"
        return f"{address} is not an address of this guest ({known_from} have: {have})"
    return None


def _parsed(text: str) -> IPAddress | None:
    try:
        parsed = ipaddress.ip_address(text.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
    except ValueError:
        return None
    return getattr(parsed, "ipv4_mapped", None) or parsed

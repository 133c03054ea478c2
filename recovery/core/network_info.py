"""A guest's own addresses from Nova's network info cache (pure): where its readiness probe may go.

On a Nova cell database a guest's addresses are not in its libvirt definition (Nova's interfaces name
no IP) but in `instance_info_caches.network_info`: a JSON list of the guest's ports (VIFs), each with
its network's subnets and, in each, the fixed IPs the port holds. Those are the guest's own
interface addresses; its floating IPs are the cloud's NAT addresses in front of it and are not.

The cache is a column any writer of the database may have filled, so it is read as untrusted input:
its size is bounded (the reader fetches at most one character more than the limit), it is parsed
with the bounds of every document compute-recover reads, and any shape other than Nova's is refused
with the reason, never a traceback.
"""

from typing import Any

from recovery.core.bounds import InputError, parse_json, shown

MAX_NETWORK_INFO_CHARS = 256 * 1024
"""A cache longer than this is refused: Nova's for a guest with dozens of ports is a few tens of KiB."""


class NetworkInfoError(InputError):
    """A network info cache that cannot be read; the message says what is wrong with it."""


def cached_addresses(network_info: str) -> frozenset[str]:
    """The fixed IP addresses of every port in a `network_info` document (its text, as stored)."""
    if len(network_info) > MAX_NETWORK_INFO_CHARS:
        raise NetworkInfoError(f"it is longer than {MAX_NETWORK_INFO_CHARS:,} characters, the limit")
    try:
        vifs = parse_json(network_info)
    except InputError as error:
        raise NetworkInfoError(str(error)) from None
    addresses: set[str] = set()
    for vif in _list(vifs, "the document"):
        network = _object(vif, "a port").get("network")
        if network is None:
            continue  # a port not bound to a network yet has no address
        for subnet in _list(_object(network, "a port's network").get("subnets", []), "a network's subnets"):
            for ip in _list(_object(subnet, "a subnet").get("ips", []), "a subnet's ips"):
                address = _object(ip, "an ip").get("address")
                if type(address) is not str:
                    raise NetworkInfoError(f"an ip's address is {shown(address)}, not a string")
                addresses.add(address)
    return frozenset(addresses)


def _list(value: Any, what: str) -> list:
    if type(value) is not list:
        raise NetworkInfoError(f"{what} is {shown(value)}, not a list")
    return value


def _object(value: Any, what: str) -> dict:
    if type(value) is not dict:
        raise NetworkInfoError(f"{what} is {shown(value)}, not an object")
    return value

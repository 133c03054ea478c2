"""The host inventory a device proof reads (recovery.core.devices), gathered in one pass, and the repairs.

One bulk call per kind of resource (storage pools and their volumes, networks, secrets, node devices),
one listing of /sys/class/net for host interfaces and bridges, and one stat per disk source that the
domains to be started name: the cost does not grow with a round trip per guest. A driver that does not
know a kind of resource (the test driver has no secrets) reports none of it.
"""

import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import libvirt

from recovery.core.devices import Inventory, Kind, Resource, shown_name
from recovery.core.errors import RecoveryError

SYS_CLASS_NET = Path("/sys/class/net")
_UNSUPPORTED = (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_NO_CONNECT)


class RepairFailed(RecoveryError):
    """Starting an inactive pool, network or mediated device failed; the message names it and why."""


def _listed(call, *args) -> list:
    """A bulk listing, empty when the driver has no such resources at all."""
    try:
        return call(*args)
    except libvirt.libvirtError as error:
        if error.get_error_code() in _UNSUPPORTED:
            return []
        raise


def _pools(conn: libvirt.virConnect) -> tuple[dict[str, bool], frozenset[tuple[str, str]]]:
    pools, volumes = {}, set()
    for pool in _listed(conn.listAllStoragePools):
        active = bool(pool.isActive())
        pools[pool.name()] = active
        if active:
            volumes.update((pool.name(), volume.name()) for volume in _listed(pool.listAllVolumes))
    return pools, frozenset(volumes)


def has_value(secret: libvirt.virSecret) -> bool | None:
    """Whether the secret holds a value. libvirt has no call that says so without reading it, so the
    value is read and dropped at once; a private secret, whose value no client may read, counts as set.
    None: this connection may not read values (a read-only one, as `plan` and `explain` open, or one an
    access policy denies), so whether it is set cannot be told here: the proof says unverified, neither set
    nor missing, and the run, reading the value, proves it again."""
    try:
        secret.value()
    except libvirt.libvirtError as error:
        code = error.get_error_code()
        if code in (libvirt.VIR_ERR_OPERATION_DENIED, libvirt.VIR_ERR_ACCESS_DENIED):
            return None
        return code != libvirt.VIR_ERR_NO_SECRET
    return True


def _secrets(conn: libvirt.virConnect) -> tuple[dict[str, bool | None], dict[str, str]]:
    values, usages = {}, {}
    for secret in _listed(conn.listAllSecrets):
        uuid = secret.UUIDString()
        values[uuid] = has_value(secret)
        with suppress(libvirt.libvirtError):  # a secret without usage has none to look up by
            if secret.usageID():
                usages[secret.usageID()] = uuid
    return values, usages


def pci_name_address(name: str) -> str | None:
    """A PCI node device's name (`pci_0000_3b_00_1`) as the address a domain writes (`0000:3b:00.1`)."""
    parts = name.split("_")
    if len(parts) != 5 or parts[0] != "pci":
        return None
    _pci, domain, bus, slot, function = parts
    return f"{domain}:{bus}:{slot}.{function}"


def mdev_name_uuid(name: str) -> str | None:
    """A mediated device's node device name (`mdev_<uuid>`, or `mdev_<uuid>_<parent>` for a defined one)
    as its uuid."""
    if not name.startswith("mdev_") or len(name) < 41:
        return None
    uuid = name[5:41].replace("_", "-").lower()
    return uuid if [len(p) for p in uuid.split("-")] == [8, 4, 4, 4, 12] else None


def _node_devices(conn: libvirt.virConnect) -> tuple[frozenset[str], dict[str, bool]]:
    """PCI addresses and mediated devices (uuid -> active). Defined but inactive mediated devices are
    listed with a flag older daemons and the test driver refuse: there are then none."""
    pci, mdevs = set(), {}
    caps = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV
    for device in _listed(conn.listAllDevices, caps):
        name = device.name()
        address, uuid = pci_name_address(name), mdev_name_uuid(name)
        if address:
            pci.add(address)
        elif uuid:
            mdevs[uuid] = True
    for device in _inactive_mdevs(conn):
        uuid = mdev_name_uuid(device.name())
        if uuid:
            mdevs.setdefault(uuid, False)
    return frozenset(pci), mdevs


def _inactive_mdevs(conn: libvirt.virConnect) -> list[libvirt.virNodeDevice]:
    flags = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_INACTIVE
    try:
        return _listed(conn.listAllDevices, flags)
    except libvirt.libvirtError as error:
        if error.get_error_code() == libvirt.VIR_ERR_INVALID_ARG:
            return []
        raise


def host_interfaces(sys_class_net: Path = SYS_CLASS_NET) -> frozenset[str]:
    """The host's network interfaces, bridges (Linux or Open vSwitch) among them."""
    try:
        return frozenset(os.listdir(sys_class_net))
    except OSError:
        return frozenset()


def existing_paths(paths: Iterable[str]) -> frozenset[str]:
    """The absolute paths among `paths` that exist (a relative one names nothing libvirt opens)."""
    return frozenset(p for p in paths if p.startswith("/") and os.path.exists(p))


def gather(conn: libvirt.virConnect, paths: Iterable[str], sys_class_net: Path = SYS_CLASS_NET,
           read_only: bool = False) -> Inventory:
    """The inventory in one pass over the host; `paths` are the disk sources to look up; `read_only`: `conn` is
    a read-only connection (Inventory.read_only)."""
    pools, volumes = _pools(conn)
    secrets, usages = _secrets(conn)
    pci, mdevs = _node_devices(conn)
    return Inventory(
        paths=existing_paths(paths),
        pools=pools,
        volumes=volumes,
        networks={network.name(): bool(network.isActive()) for network in _listed(conn.listAllNetworks)},
        interfaces=host_interfaces(sys_class_net),
        secrets=secrets,
        secret_usages=usages,
        pci=pci,
        mdevs=mdevs,
        read_only=read_only,
    )


def _mdev_device(conn: libvirt.virConnect, uuid: str) -> libvirt.virNodeDevice:
    for device in _inactive_mdevs(conn):
        if mdev_name_uuid(device.name()) == uuid:
            return device
    raise RepairFailed(f"cannot start mdev {shown_name(uuid)}: it is not defined")


def repair(conn: libvirt.virConnect, resource: Resource) -> None:
    """Start an inactive storage pool, network or mediated device; RepairFailed says why not."""
    try:
        if resource.kind == Kind.POOL:
            conn.storagePoolLookupByName(resource.name).create(0)
        elif resource.kind == Kind.NETWORK:
            conn.networkLookupByName(resource.name).create()
        elif resource.kind == Kind.MDEV:
            _mdev_device(conn, resource.name).create(0)
        else:
            raise RepairFailed(f"a {resource.kind} cannot be started")
    except libvirt.libvirtError as error:
        message = (error.get_error_message() or str(error)).splitlines()[0]
        raise RepairFailed(f"cannot start {resource.kind} '{shown_name(resource.name)}': {message}") from error

"""Device proof: the host-side resources a domain's definition needs, and whether the host has them.

Pure: `needs` reads a domain's XML into resources (disk sources, storage volumes and their pools,
libvirt networks, bridges and host interfaces, secrets, PCI host devices, mediated devices), `prove`
checks them against an `Inventory` gathered in bulk (recovery.adapters.inventory), and
`missing_after_start` compares a started domain's live XML with its definition (docs/devices.md).

Domain XML comes from the hypervisor, but the names in it are written by tenants and operators:
it is read with a size bound and refused when it carries a document type (no entity is ever
expanded), and names are cut short and made printable before a reason quotes them.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple
from xml.etree import ElementTree

from recovery.core.errors import RecoveryError
from states.enums import DeviceReadiness

MAX_DOMAIN_XML = 16 * 1024 * 1024
"""Characters of domain XML read at most (a domain with hundreds of devices is well under 1 MiB)."""
NAME_SHOWN = 120
"""Characters of a tenant-written name a reason quotes at most."""


class DomainXmlError(RecoveryError):
    """A domain definition that cannot be read safely; the message says why."""


class Kind(StrEnum):
    """What kind of host-side resource a definition names."""

    DISK = "disk"
    """A disk source on the host: a file, a block device or a directory."""
    POOL = "storage pool"
    VOLUME = "volume"
    NETWORK = "network"
    BRIDGE = "bridge"
    HOST_INTERFACE = "host interface"
    SECRET = "secret"
    HOSTDEV = "hostdev"
    MDEV = "mdev"


class Resource(NamedTuple):
    kind: Kind
    name: str
    pool: str | None = None
    """The storage pool a volume is in."""


class Finding(NamedTuple):
    resource: Resource
    readiness: DeviceReadiness
    reason: str
    """Empty when ready; else what is wrong, naming the resource."""


_WORST_FIRST = (DeviceReadiness.MISSING, DeviceReadiness.REPAIRABLE, DeviceReadiness.UNVERIFIED, DeviceReadiness.READY)
REPAIRABLE_KINDS = frozenset({Kind.POOL, Kind.NETWORK, Kind.MDEV})
"""Resources that can be defined but inactive, and are then started before the guest."""


@dataclass(frozen=True, slots=True)
class DeviceProof:
    """The findings of one guest, one per resource its definition needs."""

    findings: tuple[Finding, ...] = ()

    @property
    def readiness(self) -> DeviceReadiness:
        found = {f.readiness for f in self.findings}
        return next((r for r in _WORST_FIRST if r in found), DeviceReadiness.READY)

    @property
    def repairs(self) -> tuple[Resource, ...]:
        """The inactive resources to start before the guest."""
        return tuple(f.resource for f in self.findings if f.readiness is DeviceReadiness.REPAIRABLE)

    @property
    def problems(self) -> tuple[str, ...]:
        """The reasons of every resource that is not ready, missing ones first."""
        order = {r: i for i, r in enumerate(_WORST_FIRST)}
        return tuple(f.reason for f in sorted(self.findings, key=lambda f: order[f.readiness])
                     if f.readiness is not DeviceReadiness.READY)

    @property
    def missing(self) -> tuple[str, ...]:
        """The reasons of the missing resources: why the guest is blocked."""
        return tuple(f.reason for f in self.findings if f.readiness is DeviceReadiness.MISSING)

    def summary(self) -> str:
        """One line for plans and reports: the readiness and what is wrong."""
        problems = self.problems
        return f"{self.readiness}: {'; '.join(problems)}" if problems else str(self.readiness)


@dataclass(frozen=True)
class Inventory:
    """What the host has, gathered in one pass before any guest is proved."""

    paths: frozenset[str] = frozenset()
    """Disk sources (files, block devices, directories) that exist; only those the domains name are looked at."""
    pools: Mapping[str, bool] = field(default_factory=dict)
    """Storage pool name -> active."""
    volumes: frozenset[tuple[str, str]] = frozenset()
    """(pool, volume) of every volume in an active pool (an inactive pool's volumes cannot be listed)."""
    networks: Mapping[str, bool] = field(default_factory=dict)
    """libvirt network name -> active."""
    interfaces: frozenset[str] = frozenset()
    """Host network interfaces, bridges among them."""
    secrets: Mapping[str, bool | None] = field(default_factory=dict)
    """Secret uuid -> holds a value (None: unknown, the connection may not read values)."""
    read_only: bool = False
    """Gathered over a read-only connection (`plan`, `explain --live`), which may not read a secret's value: such
    a secret is unverified, for the run to read. Over a read-write one, a value it may not read is missing."""
    secret_usages: Mapping[str, str] = field(default_factory=dict)
    """A secret's usage id -> its uuid (a disk may name its secret either way)."""
    pci: frozenset[str] = frozenset()
    """PCI addresses of the host's devices, as `0000:3b:00.1`."""
    mdevs: Mapping[str, bool] = field(default_factory=dict)
    """Mediated device uuid -> active."""


def shown_name(name: str) -> str:
    """A tenant-written name as a reason quotes it: printable and at most NAME_SHOWN characters."""
    if not name.isprintable():
        name = name.encode("unicode_escape").decode("ascii")
    return name if len(name) <= NAME_SHOWN else name[:NAME_SHOWN - 1] + "…"


# -- reading a definition -------------------------------------------------------------------------


_LIBVIRT_DEVICES = ("\n  <devices>", "\n  </devices>")
"""How libvirt writes a domain's own <devices> element: on lines of their own, indented by two. Anywhere else
in its output (metadata, tenant-written text) the same characters cannot occur: text escapes `<`, and
nested elements are indented deeper."""


def _devices_only(domain_xml: str) -> str:
    """Of a domain as libvirt writes it, a <domain> holding only its <devices>: what is read of it, in half
    the parse (a run reads thousands). Any other document is kept whole."""
    start = domain_xml.find(_LIBVIRT_DEVICES[0]) if domain_xml.startswith("<domain") else -1
    end = domain_xml.find(_LIBVIRT_DEVICES[1], start) if start >= 0 else -1
    if end < 0:
        return domain_xml
    return "<domain>" + domain_xml[start:end + len(_LIBVIRT_DEVICES[1])] + "</domain>"


def parse_domain(domain_xml: str) -> ElementTree.Element:
    """The domain element (its devices at least), after the size bound and with no document type (so no
    entity to expand)."""
    if len(domain_xml) > MAX_DOMAIN_XML:
        raise DomainXmlError(f"the domain XML is {len(domain_xml):,} characters, more than the "
                             f"{MAX_DOMAIN_XML:,} read")
    if "<!DOCTYPE" in domain_xml or "<!ENTITY" in domain_xml:
        raise DomainXmlError("the domain XML carries a document type or entity, which libvirt never writes")
    try:
        root = ElementTree.fromstring(_devices_only(domain_xml))
    except ElementTree.ParseError as error:
        raise DomainXmlError(f"the domain XML is not well-formed: {error}") from None
    if root.tag != "domain":
        raise DomainXmlError(f"the XML's root is <{shown_name(root.tag)}>, not <domain>")
    return root


def pci_address(element: ElementTree.Element) -> str:
    """`<address domain='0x0000' bus='0x3b' slot='0x00' function='0x1'/>` as `0000:3b:00.1`; an address
    that does not read as numbers is kept as written, so that it is reported missing under its own name."""
    values = [element.get(part, "0") for part in ("domain", "bus", "slot", "function")]
    try:
        domain, bus, slot, function = (int(v, 0) for v in values)
    except ValueError:
        return ":".join(values)
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def _secret(element: ElementTree.Element) -> Resource | None:
    key = element.get("uuid") or element.get("usage")
    return Resource(Kind.SECRET, key) if key else None


def _disk_needs(disk: ElementTree.Element) -> Iterable[Resource]:
    source = disk.find("source")
    if source is not None and source.get("startupPolicy") != "optional":
        kind = disk.get("type", "file")
        if kind == "volume" and source.get("pool") and source.get("volume"):
            yield Resource(Kind.POOL, source.get("pool"))
            yield Resource(Kind.VOLUME, source.get("volume"), source.get("pool"))
        elif kind in ("file", "block", "dir"):
            path = source.get({"file": "file", "block": "dev", "dir": "dir"}[kind])
            if path:
                yield Resource(Kind.DISK, path)
    for secret in disk.iter("secret"):  # of <encryption> or <auth>, in the disk or in its <source>
        found = _secret(secret)
        if found:
            yield found


def _interface_needs(interface: ElementTree.Element) -> Iterable[Resource]:
    kind, source = interface.get("type"), interface.find("source")
    if source is None:
        return
    if kind == "network" and source.get("network"):
        yield Resource(Kind.NETWORK, source.get("network"))
    elif kind == "bridge" and source.get("bridge"):
        yield Resource(Kind.BRIDGE, source.get("bridge"))
    elif kind == "direct" and source.get("dev"):
        yield Resource(Kind.HOST_INTERFACE, source.get("dev"))
    elif kind == "hostdev":
        address = source.find("address[@type='pci']")
        if address is not None:
            yield Resource(Kind.HOSTDEV, pci_address(address))


def _hostdev_needs(hostdev: ElementTree.Element) -> Iterable[Resource]:
    if hostdev.get("mode", "subsystem") != "subsystem":
        return
    address = hostdev.find("source/address")
    if address is None:
        return
    if hostdev.get("type") == "pci":
        yield Resource(Kind.HOSTDEV, pci_address(address))
    elif hostdev.get("type") == "mdev" and address.get("uuid"):
        yield Resource(Kind.MDEV, address.get("uuid").lower())


def needs(domain_xml: str) -> tuple[Resource, ...]:
    """Every host-side resource the definition names, in document order, each once."""
    return _needs(parse_domain(domain_xml))


def _needs(root: ElementTree.Element) -> tuple[Resource, ...]:
    devices = root.find("devices")
    if devices is None:
        return ()
    found: list[Resource] = []
    for element in devices:
        if element.tag == "disk":
            found.extend(_disk_needs(element))
        elif element.tag == "interface":
            found.extend(_interface_needs(element))
        elif element.tag == "hostdev":
            found.extend(_hostdev_needs(element))
        elif element.tag == "filesystem" and element.get("type", "mount") == "mount":
            directory = element.find("source")
            if directory is not None and directory.get("dir"):
                found.append(Resource(Kind.DISK, directory.get("dir")))
    return tuple(dict.fromkeys(found))


def disk_paths(resources: Iterable[Resource]) -> set[str]:
    """The host paths among resources: what the inventory must look up."""
    return {r.name for r in resources if r.kind == Kind.DISK}


# -- proving them ---------------------------------------------------------------------------------


def _ready(resource: Resource) -> Finding:
    return Finding(resource, DeviceReadiness.READY, "")


def _missing(resource: Resource, reason: str) -> Finding:
    return Finding(resource, DeviceReadiness.MISSING, reason)


def _repairable(resource: Resource, reason: str) -> Finding:
    return Finding(resource, DeviceReadiness.REPAIRABLE, reason)


def _defined_active(resource: Resource, states: Mapping[str, bool], what: str) -> Finding:
    active = states.get(resource.name)
    name = shown_name(resource.name)
    if active is None:
        return _missing(resource, f"{what} '{name}' is not defined")
    if not active:
        return _repairable(resource, f"{what} '{name}' is inactive (started before the guest)")
    return _ready(resource)


def check(resource: Resource, inventory: Inventory) -> Finding:
    """One resource against the inventory."""
    name = shown_name(resource.name)
    kind = resource.kind
    if kind == Kind.DISK:
        return _ready(resource) if resource.name in inventory.paths else _missing(
            resource, f"disk {name} does not exist")
    if kind == Kind.POOL:
        return _defined_active(resource, inventory.pools, "storage pool")
    if kind == Kind.VOLUME:
        if not inventory.pools.get(resource.pool or ""):
            return _ready(resource)  # its pool is what is reported: an inactive pool's volumes are unknown
        if (resource.pool, resource.name) in inventory.volumes:
            return _ready(resource)
        return _missing(resource, f"volume '{name}' is not in storage pool '{shown_name(resource.pool or '')}'")
    if kind == Kind.NETWORK:
        return _defined_active(resource, inventory.networks, "network")
    if kind in (Kind.BRIDGE, Kind.HOST_INTERFACE):
        return _ready(resource) if resource.name in inventory.interfaces else _missing(
            resource, f"{kind} {name} missing")
    if kind == Kind.SECRET:
        uuid = inventory.secret_usages.get(resource.name, resource.name)
        if uuid not in inventory.secrets:
            return _missing(resource, f"secret {name} is not defined")
        has_value = inventory.secrets[uuid]
        if has_value is None and inventory.read_only:  # not missing: the run reads it and proves the guest again
            return Finding(resource, DeviceReadiness.UNVERIFIED, f"secret {name}: value not readable read-only")
        if has_value is None:  # never start a guest on a value the run itself could not read
            return _missing(resource, f"secret {name}: value not readable")
        return _ready(resource) if has_value else _missing(resource, f"secret {name}: no value")
    if kind == Kind.HOSTDEV:
        return _ready(resource) if resource.name in inventory.pci else _missing(resource, f"hostdev {name} absent")
    active = inventory.mdevs.get(resource.name)
    if active is None:
        return _missing(resource, f"mdev {name} absent")
    return _ready(resource) if active else _repairable(resource, f"mdev {name} is defined but not started "
                                                                 "(started before the guest)")


def prove(resources: Iterable[Resource], inventory: Inventory) -> DeviceProof:
    return DeviceProof(tuple(check(r, inventory) for r in resources))


DEFINITION = Resource(Kind.DISK, "<definition>")
"""Stands for a definition that cannot be read at all."""


@dataclass(frozen=True, slots=True)
class Definition:
    """What a domain's definition asks of the host and shows its guest, read in one parse."""

    needs: tuple[Resource, ...] = ()
    devices: tuple[str, ...] = ()
    """As `devices` names them: compared with the live domain's after the start."""
    error: str | None = None
    """Why the definition cannot be read (it then needs nothing and shows nothing)."""


def read_definition(domain_xml: str) -> Definition:
    try:
        root = parse_domain(domain_xml)
    except DomainXmlError as error:
        return Definition(error=str(error))
    return Definition(_needs(root), _devices(root))


def prove_definition(definition: Definition, inventory: Inventory) -> DeviceProof:
    """The proof of one definition; one that cannot be read is missing, with why."""
    if definition.error is not None:
        return DeviceProof((_missing(DEFINITION, f"its definition cannot be read: {definition.error}"),))
    return prove(definition.needs, inventory)


def prove_definitions(definitions: Mapping[str, Definition], inventory: Inventory) -> dict[str, DeviceProof]:
    """The proof of each definition, by the same key. A resource several guests need (a network, a storage
    pool, a secret) is checked once and its finding shared: a run proves thousands of guests on a few."""
    checked: dict[Resource, Finding] = {}

    def finding(resource: Resource) -> Finding:
        found = checked.get(resource)
        if found is None:
            found = checked[resource] = check(resource, inventory)
        return found

    return {key: prove_definition(definition, inventory) if definition.error is not None
            else DeviceProof(tuple(map(finding, definition.needs))) for key, definition in definitions.items()}


def prove_domain(domain_xml: str, inventory: Inventory) -> DeviceProof:
    return prove_definition(read_definition(domain_xml), inventory)


# -- after the start ------------------------------------------------------------------------------


def devices(domain_xml: str) -> tuple[str, ...]:
    """The guest-visible devices a definition asks for, named so that the live XML names them alike:
    disks by target, interfaces by MAC address, host devices by PCI address, mediated devices by uuid."""
    return _devices(parse_domain(domain_xml))


def _devices(root: ElementTree.Element) -> tuple[str, ...]:
    found_devices = root.find("devices")
    found: list[str] = []
    for element in () if found_devices is None else found_devices:
        if element.tag == "disk":
            target = element.find("target")
            if target is not None and target.get("dev"):
                found.append(f"disk {shown_name(target.get('dev'))}")
        elif element.tag == "interface":
            mac = element.find("mac")
            if mac is not None and mac.get("address"):
                found.append(f"interface {shown_name(mac.get('address').lower())}")
        elif element.tag == "hostdev":
            found.extend(f"{r.kind} {shown_name(r.name)}" for r in _hostdev_needs(element))
    return tuple(dict.fromkeys(found))


def missing_after_start(defined: Iterable[str], live_xml: str) -> tuple[str, ...]:
    """The devices a definition asked for (`devices` of it) that the running domain lacks: it is `degraded`."""
    live = set(devices(live_xml))
    return tuple(d for d in defined if d not in live)

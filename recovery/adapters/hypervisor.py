"""The libvirt adapter: the only code that reads or changes domains.

A thin imperative shell. Every libvirt failure leaves here as a
`HypervisorError` whose message is one line naming the domain or URI, so the
run report and the journal can show it as it is; a failure because the
connection to libvirtd is gone is a `HypervisorLost`, which is about the host,
not the instance. Lifecycle calls are idempotent where libvirt's are not
(starting a running domain is a no-op), so that a second `run` changes nothing.
One `Hypervisor` may serve a thread pool working on different domains: each
worker thread gets a connection of its own to a daemon (see `_conn`).
"""

import functools
import shutil
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import libvirt
import libvirt_qemu

from recovery.adapters import inventory
from recovery.core.defaults import DEFAULT_STOP_TIMEOUT
from recovery.core.devices import Inventory, Resource
from recovery.core.errors import RecoveryError
from recovery.core.settings import DEFAULT_INSTANCES_PATH
from states.enums import LIBVIRT_DOMAIN_STATE_TO_POWER, PowerState

MIN_LIBVIRT_VERSION = 8_000_000
"""Oldest libvirt accepted (8.0.0), as libvirt encodes versions."""

SUPPORTED_VIRT_TYPES = frozenset({"qemu", "kvm"})
SUPPORTED_ARCHES = frozenset({"i686", "x86_64"})

SHARED_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "ceph", "fuse.ceph-fuse", "fuse.cephfs", "glusterfs", "fuse.glusterfs", "cifs", "smb3",
    "lustre", "gpfs", "ocfs2", "gfs2", "beegfs", "virtiofs", "9p", "fuse.quobyte", "quobyte",
})
"""Filesystem types other hosts may mount too: disks there may be in use by the host an instance went to."""

_UNDEFINE_FLAG_SETS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
)
"""Undefine flags, most complete first: a managed-save image, an NVRAM file, snapshot or checkpoint
metadata must not keep a domain defined. A driver refusing a flag gets the next set, and plain
undefine after the last (as Nova falls back)."""

_LOST_CONNECTION_CODES = frozenset({libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC})


class HypervisorError(RecoveryError):
    """A libvirt call failed; the one-line message names the domain or URI and what went wrong."""


class HypervisorLost(HypervisorError):
    """The connection to libvirtd is gone (the daemon died or restarted): no call can succeed until
    it is back, and a failure now says nothing about the instance being acted on."""


class HypervisorUnavailable(HypervisorError):
    """The libvirt URI cannot be opened: wrong --libvirt-uri, or libvirtd is not running."""


class PreflightRefused(HypervisorError):
    """The host's libvirt is too old to recover on; upgrading libvirt is the fix."""


@dataclass(frozen=True)
class DomainInfo:
    """One domain as the machine sees it: identity and Nova's power state."""

    uuid: str
    name: str
    power_state: PowerState


@dataclass(frozen=True)
class HostCapacity:
    """What the compute node record advertises (Nova's vcpus, memory_mb, local_gb)."""

    vcpus: int
    memory_mb: int
    local_gb: int


def version_text(version: int) -> str:
    """libvirt's integer version (major * 1,000,000 + minor * 1,000 + micro) as `8.0.0`."""
    return f"{version // 1_000_000}.{version // 1_000 % 1_000}.{version % 1_000}"


def assess_host(uri: str, lib_version: int, virt_type: str, arch: str, kvm_usable: bool | None = None) -> list[str]:
    """Nova's driver-init checks on facts already read: refuse old libvirt, warn on the rest.

    `kvm_usable` is None where the question does not arise (a driver other
    than qemu). Pure, so that every branch is testable against a libvirt that
    cannot be made old, foreign or emulated.
    """
    if lib_version < MIN_LIBVIRT_VERSION:
        raise PreflightRefused(
            f"libvirt {version_text(lib_version)} at '{uri}' is older than "
            f"{version_text(MIN_LIBVIRT_VERSION)}: upgrade libvirt on this host"
        )
    warnings = []
    if virt_type.lower() not in SUPPORTED_VIRT_TYPES:
        warnings.append(f"virt type is '{virt_type.lower()}', not qemu/kvm: recovery is untested there")
    if arch not in SUPPORTED_ARCHES:
        warnings.append(f"host arch is '{arch}', not i686/x86_64: recovery is untested there")
    if kvm_usable is False:
        warnings.append("KVM is not usable on this host (no /dev/kvm, or libvirt cannot use it): guests run "
                        "emulated under TCG, many times slower; load the kvm module or enable virtualization")
    return warnings


def wait_until(done: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll `done` until it holds or `timeout` seconds pass; whether it held.

    Polls rather than subscribing to lifecycle events, which would need an
    event loop thread for a wait that happens once per stopped instance.
    """
    deadline = time.monotonic() + timeout
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))
    return True


def filesystem_type(path: Path, mounts: Iterable[tuple[str, str]]) -> str | None:
    """The type of the filesystem `path` lies on, from (mount point, type) pairs: the deepest mount holding it."""
    holding = [(Path(mountpoint), fstype) for mountpoint, fstype in mounts if path.is_relative_to(mountpoint)]
    return max(holding, key=lambda mount: len(mount[0].parts))[1] if holding else None


def is_shared_storage(path: Path) -> bool:
    """Whether `path` is on a filesystem other hosts may mount (NFS, CephFS, GlusterFS...)."""
    import psutil  # imported on use: only deleting disks asks

    mounts = ((part.mountpoint, part.fstype) for part in psutil.disk_partitions(all=True))
    return filesystem_type(path.resolve(), mounts) in SHARED_FILESYSTEMS


def disk_files(domain_xml: str) -> list[Path]:
    """The files behind a domain's disk devices (`<disk type='file'><source file=...>`)."""
    devices = ElementTree.fromstring(domain_xml).iterfind("./devices/disk/source[@file]")
    return [Path(source.attrib["file"]) for source in devices]


def interface_addresses(domain_xml: str) -> frozenset[str]:
    """The IP addresses a domain's interfaces are configured with (`<interface><ip address=...>`)."""
    devices = ElementTree.fromstring(domain_xml).iterfind("./devices/interface/ip[@address]")
    return frozenset(ip.attrib["address"] for ip in devices)


def local_disk_paths(domain_xml: str, uuid: str, instances_path: Path) -> list[Path]:
    """What destroying an instance's local disks removes: its disk files that lie under the instances
    path, then its own directory there. Paths are resolved first, so a symlink or `..` cannot lead
    outside; a disk anywhere else (a volume, a shared image) is never included."""
    root = instances_path.resolve()
    inside = [path.resolve() for path in disk_files(domain_xml) if path.resolve().is_relative_to(root)]
    own_directory = root / uuid
    return [*inside, own_directory] if own_directory.resolve() == own_directory else inside


def restore_resize_directory(instances_path: Path, uuid: str) -> bool:
    """Move `<instances_path>/<uuid>_resize` back to `<instances_path>/<uuid>`, where a resize set the
    instance's disks aside, replacing what a failed migration left there, as Nova's libvirt driver
    does on a revert; whether there was one. Only inside the instances path (a uuid cannot lead out)."""
    root = instances_path.resolve()
    base, aside = root / uuid, root / f"{uuid}_resize"
    if aside.resolve() != aside or base.resolve() != base or not aside.is_dir():
        return False
    shutil.rmtree(base, ignore_errors=True)
    aside.rename(base)
    return True


def _one_line(error: libvirt.libvirtError) -> str:
    """libvirt's message on one line (XML parse errors span several)."""
    return " ".join(str(error).split())


def _ignore_libvirt_error(_context: object, _error: object) -> None:
    """Swallow the report: the raised libvirtError carries the same message."""


@functools.cache
def _silence_libvirt() -> None:
    """Stop libvirt printing every error to stderr, once per process."""
    libvirt.registerErrorHandler(_ignore_libvirt_error, None)


_RESOURCE_EVENTS = (
    ("storagePoolEventRegisterAny", libvirt.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE, "storage pool",
     frozenset({libvirt.VIR_STORAGE_POOL_EVENT_DEFINED, libvirt.VIR_STORAGE_POOL_EVENT_STARTED,
                libvirt.VIR_STORAGE_POOL_EVENT_CREATED})),
    ("networkEventRegisterAny", libvirt.VIR_NETWORK_EVENT_ID_LIFECYCLE, "network",
     frozenset({libvirt.VIR_NETWORK_EVENT_DEFINED, libvirt.VIR_NETWORK_EVENT_STARTED})),
    ("nodeDeviceEventRegisterAny", libvirt.VIR_NODE_DEVICE_EVENT_ID_LIFECYCLE, "node device",
     frozenset({libvirt.VIR_NODE_DEVICE_EVENT_CREATED, libvirt.VIR_NODE_DEVICE_EVENT_DEFINED})),
)
"""The resource lifecycle events a blocked guest waits for: the registering call, the event, what it is
about, and the events that say it appeared."""


@functools.cache
def start_event_loop() -> None:
    """libvirt's default event loop, run by a daemon thread, once per process: needed before
    opening a connection whose lifecycle events are watched (`Hypervisor.watch_lifecycle`)."""
    libvirt.virEventRegisterDefaultImpl()

    def run() -> None:
        while True:
            libvirt.virEventRunDefaultImpl()

    threading.Thread(target=run, name="libvirt-events", daemon=True).start()


def _power(dom: libvirt.virDomain) -> PowerState:
    return LIBVIRT_DOMAIN_STATE_TO_POWER.get(dom.state()[0], PowerState.NOSTATE)


def _boot(dom: libvirt.virDomain) -> None:
    """Nova's hard reboot: destroy if active, then boot afresh from the definition.

    A managed-save image is discarded, not restored (VIR_DOMAIN_START_FORCE_BOOT;
    a driver without that flag gets the image removed first).
    """
    if dom.isActive():
        dom.destroy()
    try:
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_FORCE_BOOT)
    except libvirt.libvirtError as e:
        if e.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        dom.create()


def _ensure_running(dom: libvirt.virDomain) -> None:
    """Bring a domain to running by the least destructive way its state allows."""
    power = _power(dom)
    if power is PowerState.RUNNING:
        return
    if power is PowerState.PAUSED:
        dom.resume()
    elif power is PowerState.SUSPENDED:
        dom.pMWakeup(0)
    else:
        _boot(dom)


def _stop(dom: libvirt.virDomain, timeout: float) -> None:
    """Shut down gracefully, destroying after `timeout`.

    A crashed, paused or pm-suspended guest cannot answer an ACPI shutdown
    (QEMU refuses to send one to a paused guest), so it is destroyed without
    waiting.
    """
    if not dom.isActive():
        return
    if _power(dom) not in (PowerState.CRASHED, PowerState.PAUSED, PowerState.SUSPENDED):
        dom.shutdown()
        if wait_until(lambda: not dom.isActive(), timeout):
            return
    dom.destroy()


def _undefine(dom: libvirt.virDomain) -> None:
    """Undefine with the most complete flag set the driver accepts, else plainly."""
    for flags in _UNDEFINE_FLAG_SETS:
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError as e:
            if e.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
    dom.undefine()


def _remove_local_disks(paths: list[Path]) -> None:
    """Delete disk files and the instance's directory; already gone is fine (a repeated run)."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _kvm_usable(conn: libvirt.virConnect, arch: str) -> bool | None:
    """Whether a qemu driver can run KVM guests of `arch` (else only TCG); None for other drivers.

    The capabilities document lists a `kvm` domain type for an arch only when
    libvirtd can use /dev/kvm; it is readable over a read-only connection too.
    """
    if conn.getType() != "QEMU":
        return None
    guests = ElementTree.fromstring(conn.getCapabilities()).iterfind("./guest/arch")
    return any(guest.get("name") == arch and guest.find("./domain[@type='kvm']") is not None for guest in guests)


def _connection_lost(conn: libvirt.virConnect, error: libvirt.libvirtError) -> bool:
    """Whether `error` came from a connection that is gone rather than from the call itself."""
    if error.get_error_domain() == libvirt.VIR_FROM_RPC or error.get_error_code() in _LOST_CONNECTION_CODES:
        return True
    try:
        return not conn.isAlive()
    except libvirt.libvirtError:
        return True


class HypervisorConnection:
    """Connections to one libvirt URI (one per worker thread), the one-line errors of every call on
    them, and the preflight check of the host's libvirt."""

    def __init__(self, conn: libvirt.virConnect, uri: str, read_only: bool,
                 instances_path: Path = DEFAULT_INSTANCES_PATH) -> None:
        self.uri = uri
        self.read_only = read_only
        self.instances_path = instances_path
        self._first = conn
        self._opened = [conn]
        self._opening = threading.Lock()
        self._per_thread = threading.local()
        self._one_per_thread = conn.getType() != "TEST"

    @classmethod
    def open(cls, uri: str, read_only: bool = False,
             instances_path: Path = DEFAULT_INSTANCES_PATH) -> Self:
        """Connect; read-only for dry runs, so that they cannot change a domain even by mistake."""
        return cls(cls._connect(uri, read_only), uri, read_only, instances_path)

    @staticmethod
    def _connect(uri: str, read_only: bool) -> libvirt.virConnect:
        _silence_libvirt()
        try:
            return libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
        except libvirt.libvirtError as e:
            raise HypervisorUnavailable(
                f"cannot open libvirt at '{uri}': {_one_line(e)} — check --libvirt-uri / that libvirtd is running"
            ) from e

    @property
    def _conn(self) -> libvirt.virConnect:
        """This thread's connection.

        libvirtd serves at most max_client_requests (default 5) calls of one
        client connection at once, so threads sharing one connection would
        queue behind each other: each worker thread opens its own. The test
        driver keeps its state per connection, so there every thread shares
        the first.
        """
        if not self._one_per_thread or threading.current_thread() is threading.main_thread():
            return self._first
        conn = getattr(self._per_thread, "conn", None)
        if conn is None:
            try:
                conn = self._connect(self.uri, self.read_only)
            except HypervisorUnavailable as e:
                raise HypervisorLost(str(e)) from e
            with self._opening:
                self._opened.append(conn)
            self._per_thread.conn = conn
        return conn

    def close(self) -> None:
        with self._opening:
            for conn in self._opened:
                with suppress(libvirt.libvirtError):  # a connection to a daemon that died is closed already
                    conn.close()
            self._opened.clear()

    def _error(self, message: str, error: libvirt.libvirtError) -> HypervisorError:
        """`message` with libvirt's reason, as HypervisorLost when the connection is gone."""
        if _connection_lost(self._conn, error):
            return HypervisorLost(f"lost the connection to libvirt at {self.uri} ({_one_line(error)}); "
                                  f"{message} did not complete: check that libvirtd is running, then run again")
        return HypervisorError(f"{message}: {_one_line(error)}")

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as e:
            raise self._error(f"cannot {what} on {self.uri}", e) from e

    def _lookup(self, uuid: str) -> libvirt.virDomain | None:
        """The domain with this UUID, or None; a malformed UUID names no domain either."""
        try:
            return self._conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as e:
            if e.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                return None
            raise self._error(f"cannot look up domain {uuid} on {self.uri}", e) from e

    @contextmanager
    def _failing(self, action: str, uuid: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as e:
            raise self._error(f"cannot {action} domain {uuid} on {self.uri}", e) from e

    def preflight(self) -> list[str]:
        """Raise PreflightRefused on libvirt older than 8.0.0; return warnings for an untested or emulated host.

        getType() says QEMU for KVM and TCG alike, so KVM is looked for in the
        host's capabilities.
        """
        with self._reading("read the hypervisor's version and type"):
            lib_version = self._conn.getLibVersion()
            virt_type = self._conn.getType()
            arch = self._conn.getInfo()[0]
            kvm_usable = _kvm_usable(self._conn, arch)
        return assess_host(self.uri, lib_version, virt_type, arch, kvm_usable)


class HypervisorReads(HypervisorConnection):
    """What libvirt says and changes nothing: the domains and their power states, the host's capacity
    and hostname, guest agent pings and lifecycle events. Allowed on a read-only connection."""

    def domains(self) -> list[DomainInfo]:
        """Every domain (active or not) with its power state, by name, in one bulk call.

        getAllDomainStats lists and reads states in a single round trip, so a
        domain cannot vanish between listing and reading its state.
        """
        with self._reading("list domains"):
            stats = self._conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
        found = [
            DomainInfo(
                dom.UUIDString(), dom.name(), LIBVIRT_DOMAIN_STATE_TO_POWER.get(st["state.state"], PowerState.NOSTATE)
            )
            for dom, st in stats
        ]
        return sorted(found, key=lambda d: d.name)

    def power_state(self, uuid: str) -> PowerState:
        """The power state now; NOSTATE when no such domain (as Nova reads a missing domain)."""
        dom = self._lookup(uuid)
        if dom is None:
            return PowerState.NOSTATE
        try:
            return _power(dom)
        except libvirt.libvirtError as e:
            if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:  # undefined since the lookup
                return PowerState.NOSTATE
            raise self._error(f"cannot read the state of domain {uuid} on {self.uri}", e) from e

    def capacity(self) -> HostCapacity:
        """vcpus and memory from the node info; local_gb as Nova measures its instances path.

        The size of the active storage pool whose directory holds the
        instances path, else of the instances path's filesystem (Nova's
        get_fs_info), else, with no instances path on this host, of the
        largest active pool; 0 with none of these.
        """
        with self._reading("read host capacity"):
            _model, memory_mb, cpus, *_ = self._conn.getInfo()
            pools = self._conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
            sized = [(self._pool_path(pool), pool.info()[1]) for pool in pools]
        instances = self.instances_path.resolve()
        covering = [size for path, size in sized if path is not None and instances.is_relative_to(path)]
        if covering:
            local_bytes = covering[0]
        elif instances.is_dir():
            local_bytes = shutil.disk_usage(instances).total
        else:
            local_bytes = max((size for _path, size in sized), default=0)
        return HostCapacity(vcpus=cpus, memory_mb=memory_mb, local_gb=local_bytes // 2**30)

    @staticmethod
    def _pool_path(pool: libvirt.virStoragePool) -> Path | None:
        path = ElementTree.fromstring(pool.XMLDesc(0)).findtext("./target/path")
        return Path(path).resolve() if path else None

    def domain_xmls(self, uuids: Iterable[str], inactive: bool = False) -> dict[str, str]:
        """The XML of each of these domains that exists, by uuid, from one listing (no look-up per domain):
        `inactive`, the persistent definition a start boots from (what the device proof reads); else the
        running domain's, its devices as started."""
        wanted = set(uuids)
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        found = {}
        with self._reading("read the domains' XML"):
            for dom in self._conn.listAllDomains():
                uuid = dom.UUIDString().lower()
                if uuid in wanted:
                    try:
                        found[uuid] = dom.XMLDesc(flags)
                    except libvirt.libvirtError as error:
                        if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # gone since the listing
                            raise
        return found

    def inventory(self, paths: Iterable[str]) -> Inventory:
        """The host's storage, networks, interfaces, secrets and devices in one pass (recovery.adapters.inventory)."""
        with self._reading("gather the host inventory (pools, networks, secrets, node devices)"):
            return inventory.gather(self._conn, paths, read_only=self.read_only)

    def repair(self, resource: Resource) -> None:
        """Start an inactive storage pool, network or mediated device; RepairFailed says why not."""
        if self.read_only:
            raise HypervisorError(f"refusing to start {resource.kind} {resource.name}: the connection to {self.uri} "
                                  "is read-only")
        inventory.repair(self._conn, resource)

    def hostname(self) -> str:
        """The hypervisor hostname, which the compute node record is keyed on."""
        with self._reading("read the hypervisor hostname"):
            return self._conn.getHostname()

    def guest_agent_ping(self, uuid: str, timeout: int) -> None:
        """Ping the QEMU guest agent (`guest-ping`), waiting at most `timeout` seconds (1 or more) for
        its answer; HypervisorError says why it did not answer (no agent configured, none running...)."""
        dom = self._lookup(uuid)
        if dom is None:
            raise HypervisorError(f"cannot ping the guest agent: no domain with uuid {uuid} on {self.uri}")
        with self._failing("ping the guest agent of", uuid):
            libvirt_qemu.qemuAgentCommand(dom, '{"execute": "guest-ping"}', timeout, 0)

    def guest_addresses(self, uuid: str) -> frozenset[str]:
        """The addresses the guest's domain names for its interfaces (its live definition)."""
        dom = self._lookup(uuid)
        if dom is None:
            return frozenset()
        with self._failing("read the interfaces of", uuid):
            return interface_addresses(dom.XMLDesc(0))

    def watch_lifecycle(self, on_event: Callable[[str, int], None], on_close: Callable[[int], None]) -> None:
        """Call on_event(uuid, libvirt event type) for every lifecycle event of this connection's
        domains, and on_close(reason) when the connection drops (start_event_loop first)."""
        with self._reading("register for lifecycle events"):
            self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                lambda _conn, dom, event, _detail, _opaque: on_event(dom.UUIDString(), event), None)
            self._conn.registerCloseCallback(lambda _conn, reason, _opaque: on_close(reason), None)

    def watch_resources(self, on_appeared: Callable[[str], None]) -> None:
        """Call on_appeared(what, e.g. "network 'tenant-a'") whenever a storage pool or libvirt network is defined
        or started, or a node device (PCI, mediated) is created or defined: what a blocked guest may have been
        waiting for (docs/devices.md). A driver without such events (node devices on the test driver) has none."""
        for register, event_id, kind, appearing in _RESOURCE_EVENTS:
            def heard(_conn, resource, event, _detail, _opaque, kind=kind, appearing=appearing) -> None:
                if event in appearing:
                    on_appeared(f"{kind} '{resource.name()}'")

            with self._reading(f"register for {kind} events"):
                try:
                    getattr(self._conn, register)(None, event_id, heard, None)
                except libvirt.libvirtError as error:
                    if error.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                        raise


class DomainActions(HypervisorConnection):
    """The lifecycle calls that change a domain (reboot, start, stop, undefine...), each refused on a
    read-only connection and idempotent where libvirt's call is not."""

    def _refuse_if_read_only(self, action: str, uuid: str) -> None:
        if self.read_only:
            raise HypervisorError(f"refusing to {action} domain {uuid}: the connection to {self.uri} is read-only")

    @contextmanager
    def _changing(self, action: str, uuid: str) -> Iterator[libvirt.virDomain]:
        """The domain to act on, with the read-only refusal and one-line errors every lifecycle call shares."""
        self._refuse_if_read_only(action, uuid)
        dom = self._lookup(uuid)
        if dom is None:
            raise HypervisorError(f"cannot {action}: no domain with uuid {uuid} on {self.uri}")
        with self._failing(action, uuid):
            yield dom

    def hard_reboot(self, uuid: str) -> None:
        """Destroy if active, then boot afresh (a managed-save image is discarded, as in Nova)."""
        with self._changing("hard reboot", uuid) as dom:
            _boot(dom)

    def soft_reboot(self, uuid: str) -> None:
        """Ask a running guest to reboot; anything else has no guest to ask, so boot it afresh."""
        with self._changing("soft reboot", uuid) as dom:
            if _power(dom) is PowerState.RUNNING:
                dom.reboot(0)
            else:
                _boot(dom)

    def start(self, uuid: str) -> None:
        """Bring the domain to running; a no-op when it already runs."""
        with self._changing("start", uuid) as dom:
            _ensure_running(dom)

    def stop(self, uuid: str, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Shut down, destroying if still active after `timeout` seconds; a no-op when shut off."""
        with self._changing("stop", uuid) as dom:
            _stop(dom, timeout)

    def unpause(self, uuid: str) -> None:
        """Resume a paused domain; a no-op when it already runs."""
        with self._changing("unpause", uuid) as dom:
            if _power(dom) is not PowerState.RUNNING:
                dom.resume()

    def resume_guest(self, uuid: str) -> None:
        """Nova's resume_state_on_host_boot: a guest running, paused or pm-suspended is left as it is
        (Nova ignores those states); any other is hard rebooted, booting afresh from its definition."""
        with self._changing("resume guest", uuid) as dom:
            if _power(dom) not in (PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED):
                _boot(dom)

    def destroy_and_undefine(self, uuid: str, destroy_disks: bool = False) -> None:
        """Remove the domain for good; a no-op when it does not exist (a repeated run).

        With `destroy_disks`, also delete the instance's local disks (see
        `local_disk_paths`), unless the instances path is on shared storage,
        where they may belong to the host the instance now runs on. The files
        are found before undefining, which forgets them; a repeated run still
        removes the instance's directory.
        """
        self._refuse_if_read_only("destroy and undefine", uuid)
        dom = self._lookup(uuid)
        with self._failing("destroy and undefine", uuid):
            domain_xml = dom.XMLDesc(0) if dom is not None else "<domain/>"
            if dom is not None:
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():  # a transient domain is gone once destroyed
                    _undefine(dom)
        if destroy_disks and not is_shared_storage(self.instances_path):
            try:
                _remove_local_disks(local_disk_paths(domain_xml, uuid, self.instances_path))
            except OSError as e:
                raise HypervisorError(f"cannot delete the local disks of domain {uuid}: {e}") from e

    def shutdown(self, uuid: str) -> None:
        """Ask the guest to shut down, without forcing it; a no-op when shut off."""
        with self._changing("shut down", uuid) as dom:
            if dom.isActive():
                dom.shutdown()

    def revert_resize(self, uuid: str, power_on: bool, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Bring this host's original copy back: its disk directory first, as Nova's libvirt driver
        does (finish_revert_migration), then the guest, running if `power_on`, else shut off
        (waiting `timeout`)."""
        with self._changing("revert resize of", uuid) as dom:
            restore_resize_directory(self.instances_path, uuid)
            if power_on:
                _ensure_running(dom)
            else:
                _stop(dom, timeout)

    def abort_job(self, uuid: str) -> None:
        """Abort the domain's job (a live migration).

        No job, a shut-off domain or a driver without jobs is no error; a job
        that libvirt cannot abort (an incoming migration, a memory-only dump)
        is: libvirt names both OPERATION_INVALID, so the job is read again to
        tell them apart.
        """
        with self._changing("abort the job of", uuid) as dom:
            if not dom.isActive():
                return
            try:
                dom.abortJob()
            except libvirt.libvirtError as e:
                if e.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                    return
                if e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and not _has_job(dom):
                    return
                raise


def _has_job(dom: libvirt.virDomain) -> bool:
    return dom.jobInfo()[0] != libvirt.VIR_DOMAIN_JOB_NONE


class Hypervisor(HypervisorReads, DomainActions):
    """Connections to one libvirt URI; read calls always, lifecycle calls only when not read-only."""

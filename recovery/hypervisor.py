"""The libvirt adapter: the only code that reads or changes domains.

A thin imperative shell. Every libvirt failure leaves here as a
`HypervisorError` whose message is one line naming the domain or URI, so the
run report and the journal can show it as it is. Lifecycle calls are
idempotent where libvirt's are not (starting a running domain is a no-op), so
that a second `run` changes nothing. A `Hypervisor` holds no mutable Python
state: one instance may serve a thread pool working on different domains,
because libvirt connections are thread-safe.
"""

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import libvirt

from states.enums import LIBVIRT_DOMAIN_STATE_TO_POWER, PowerState

MIN_LIBVIRT_VERSION = 8_000_000
"""Oldest libvirt accepted (8.0.0), as libvirt encodes versions."""

STOP_TIMEOUT = 60.0
"""Seconds a guest gets to shut down before it is destroyed (Nova's shutdown_timeout)."""

SUPPORTED_VIRT_TYPES = frozenset({"qemu", "kvm"})
SUPPORTED_ARCHES = frozenset({"i686", "x86_64"})

_UNDEFINE_FLAGS = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
"""Nova's undefine flags: a managed-save image or NVRAM file must not keep a domain defined."""


class HypervisorError(Exception):
    """A libvirt call failed; the one-line message names the domain or URI and what went wrong."""


class HypervisorUnavailable(HypervisorError):
    """The libvirt URI cannot be opened: wrong --libvirt-uri, or libvirtd is not running."""


class HypervisorLost(HypervisorError):
    """The connection to libvirtd is gone: not the instance's failure, and no action should start."""


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


def assess_host(uri: str, lib_version: int, virt_type: str, arch: str) -> list[str]:
    """Nova's driver-init checks on facts already read: refuse old libvirt, warn on the rest.

    Pure, so that every branch is testable against a libvirt that cannot be
    made old or foreign.
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


def _one_line(error: libvirt.libvirtError) -> str:
    """libvirt's message on one line (XML parse errors span several)."""
    return " ".join(str(error).split())


def _ignore_libvirt_error(_context: object, _error: object) -> None:
    """Swallow the report: the raised libvirtError carries the same message."""


@functools.cache
def _silence_libvirt() -> None:
    """Stop libvirt printing every error to stderr, once per process."""
    libvirt.registerErrorHandler(_ignore_libvirt_error, None)


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
    """Start from scratch: an active but dead domain (crashed, shutting down) is destroyed first."""
    if dom.isActive():
        dom.destroy()
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

    A crashed or pm-suspended guest cannot answer an ACPI shutdown, so (as in
    Nova) it is destroyed without waiting.
    """
    if not dom.isActive():
        return
    if _power(dom) not in (PowerState.CRASHED, PowerState.SUSPENDED):
        dom.shutdown()
        if wait_until(lambda: not dom.isActive(), timeout):
            return
    dom.destroy()


class Hypervisor:
    """One libvirt connection; read calls always, lifecycle calls only when not read-only."""

    def __init__(self, conn: libvirt.virConnect, uri: str, read_only: bool) -> None:
        self._conn = conn
        self.uri = uri
        self.read_only = read_only

    @classmethod
    def open(cls, uri: str, read_only: bool = False) -> "Hypervisor":
        """Connect; read-only for dry runs, so that they cannot change a domain even by mistake."""
        _silence_libvirt()
        try:
            conn = libvirt.openReadOnly(uri) if read_only else libvirt.open(uri)
        except libvirt.libvirtError as e:
            raise HypervisorUnavailable(
                f"cannot open libvirt at '{uri}': {_one_line(e)} — check --libvirt-uri / that libvirtd is running"
            ) from e
        return cls(conn, uri, read_only)

    def close(self) -> None:
        self._conn.close()

    def _error(self, message: str) -> HypervisorError:
        """The error for a failed call: HypervisorLost when the connection itself is gone."""
        try:
            alive = self._conn.isAlive()
        except libvirt.libvirtError:
            alive = False
        return HypervisorError(message) if alive else HypervisorLost(f"{message} (the connection to libvirt is lost)")

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as e:
            raise self._error(f"cannot {what} on {self.uri}: {_one_line(e)}") from e

    def _lookup(self, uuid: str) -> libvirt.virDomain | None:
        """The domain with this UUID, or None; a malformed UUID names no domain either."""
        try:
            return self._conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as e:
            if e.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                return None
            raise self._error(f"cannot look up domain {uuid} on {self.uri}: {_one_line(e)}") from e

    def _refuse_if_read_only(self, action: str, uuid: str) -> None:
        if self.read_only:
            raise HypervisorError(f"refusing to {action} domain {uuid}: the connection to {self.uri} is read-only")

    @contextmanager
    def _failing(self, action: str, uuid: str) -> Iterator[None]:
        try:
            yield
        except libvirt.libvirtError as e:
            raise self._error(f"cannot {action} domain {uuid} on {self.uri}: {_one_line(e)}") from e

    @contextmanager
    def _changing(self, action: str, uuid: str) -> Iterator[libvirt.virDomain]:
        """The domain to act on, with the read-only refusal and one-line errors every lifecycle call shares."""
        self._refuse_if_read_only(action, uuid)
        dom = self._lookup(uuid)
        if dom is None:
            raise HypervisorError(f"cannot {action}: no domain with uuid {uuid} on {self.uri}")
        with self._failing(action, uuid):
            yield dom

    # -- reads ---------------------------------------------------------------

    def preflight(self) -> list[str]:
        """Raise PreflightRefused on libvirt older than 8.0.0; return warnings for an untested host."""
        with self._reading("read the hypervisor's version and type"):
            lib_version = self._conn.getLibVersion()
            virt_type = self._conn.getType()
            arch = self._conn.getInfo()[0]
        return assess_host(self.uri, lib_version, virt_type, arch)

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
            raise self._error(f"cannot read the state of domain {uuid} on {self.uri}: {_one_line(e)}") from e

    def capacity(self) -> HostCapacity:
        """vcpus and memory from the node info; local_gb is the largest active storage pool's size, else 0.

        Nova measures its instances directory instead, which this host may not
        share a filesystem with; the largest pool is the usual place for disks.
        """
        with self._reading("read host capacity"):
            _model, memory_mb, cpus, *_ = self._conn.getInfo()
            pools = self._conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
            local_bytes = max((pool.info()[1] for pool in pools), default=0)
        return HostCapacity(vcpus=cpus, memory_mb=memory_mb, local_gb=local_bytes // 2**30)

    def hostname(self) -> str:
        """The hypervisor hostname, which the compute node record is keyed on."""
        with self._reading("read the hypervisor hostname"):
            return self._conn.getHostname()

    def watch_lifecycle(self, on_event: Callable[[str, int], None], on_close: Callable[[int], None]) -> None:
        """Call on_event(uuid, libvirt event type) for every lifecycle event of this connection's
        domains, and on_close(reason) when the connection drops (start_event_loop first)."""
        with self._reading("register for lifecycle events"):
            self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                lambda _conn, dom, event, _detail, _opaque: on_event(dom.UUIDString(), event), None)
            self._conn.registerCloseCallback(lambda _conn, reason, _opaque: on_close(reason), None)

    # -- lifecycle ---------------------------------------------------------------

    def hard_reboot(self, uuid: str) -> None:
        """Destroy if active, then create."""
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

    def stop(self, uuid: str, timeout: float = STOP_TIMEOUT) -> None:
        """Shut down, destroying if still active after `timeout` seconds; a no-op when shut off."""
        with self._changing("stop", uuid) as dom:
            _stop(dom, timeout)

    def unpause(self, uuid: str) -> None:
        """Resume a paused domain; a no-op when it already runs."""
        with self._changing("unpause", uuid) as dom:
            if _power(dom) is not PowerState.RUNNING:
                dom.resume()

    def resume_guest(self, uuid: str) -> None:
        """Create if shut off or crashed, resume if paused, wake if pm-suspended; a no-op when running."""
        with self._changing("resume guest", uuid) as dom:
            _ensure_running(dom)

    def destroy_and_undefine(self, uuid: str) -> None:
        """Remove the domain for good; a no-op when it does not exist (a repeated run)."""
        self._refuse_if_read_only("destroy and undefine", uuid)
        dom = self._lookup(uuid)
        if dom is None:
            return
        with self._failing("destroy and undefine", uuid):
            if dom.isActive():
                dom.destroy()
            if not dom.isPersistent():  # a transient domain is gone once destroyed
                return
            try:
                dom.undefineFlags(_UNDEFINE_FLAGS)
            except libvirt.libvirtError as e:
                if e.get_error_code() != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                dom.undefine()  # a driver without these flags (as Nova falls back)

    def shutdown(self, uuid: str) -> None:
        """Ask the guest to shut down, without forcing it; a no-op when shut off."""
        with self._changing("shut down", uuid) as dom:
            if dom.isActive():
                dom.shutdown()

    def revert_resize(self, uuid: str, power_on: bool) -> None:
        """Bring this host's original copy back: running if `power_on`, else shut off."""
        with self._changing("revert resize of", uuid) as dom:
            if power_on:
                _ensure_running(dom)
            else:
                _stop(dom, STOP_TIMEOUT)

    def abort_job(self, uuid: str) -> None:
        """Abort the domain's job (a live migration); no job, a shut-off domain or a driver without jobs is no error."""
        with self._changing("abort the job of", uuid) as dom:
            try:
                dom.abortJob()
            except libvirt.libvirtError as e:
                if e.get_error_code() not in (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_SUPPORT):
                    raise

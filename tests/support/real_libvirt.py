"""A real libvirtd with real QEMU guests, for the real-hypervisor suite and `make bench`.

`running_daemon` uses the system libvirtd when one answers, else starts its own
(with virtlogd, which QEMU guests log through) and stops what it started; one
such run at a time on a machine (`exclusive`).
`Guests` defines tiny guests (32 MiB, 1 vCPU, no disk or a small qcow2) that
sit in firmware, puts them in the states a power outage leaves behind with the
real crash (kill -9 of the guest's qemu, `virsh suspend`, `virsh managedsave`,
an ACPI sleep), and removes every domain it defined.

Nothing here skips: a missing package or a daemon that will not start is a
failure naming the reason and the fix.
"""

import fcntl
import grp
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import libvirt_qemu

URI = "qemu:///system"
QEMU_PIDS = Path("/run/libvirt/qemu")
REQUIRED_PROGRAMS = ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img")
LOCK = Path("/run/lock/compute-recover-real-hypervisor.lock")
EXCLUSIVE_WAIT_S = 1800.0
"""How long a run waits for another run's turn: a whole real-hypervisor module takes minutes."""
SLEEP_S3 = "o /w 0x604 0x2400"
"""HMP: write SLP_EN with sleep type S3 to the PIIX4 PM control register, as a guest OS going to sleep would."""


class RealHypervisorUnavailable(Exception):
    """libvirtd or QEMU cannot run here; the message says why and what fixes it."""


def _connect() -> libvirt.virConnect | None:
    try:
        return libvirt.open(URI)
    except libvirt.libvirtError:
        return None


def _make_kvm_usable_by_qemu() -> None:
    """/dev/kvm readable only by root makes libvirt re-probe QEMU on every start (4 s, not 0.4 s):
    give it to the kvm group that the libvirt-qemu user is in, mode 0660, as udev does on a Debian host."""
    kvm = Path("/dev/kvm")
    if not kvm.exists() or os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    if kvm.stat().st_gid != gid or kvm.stat().st_mode & 0o660 != 0o660:
        os.chown(kvm, -1, gid)
        kvm.chmod(0o660)


@dataclass
class Daemon:
    """The libvirtd the suite talks to; `owned` when this process started it (and may kill it)."""

    owned: bool
    workdir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self) -> None:
        """Start virtlogd and libvirtd in the foreground and wait until libvirtd answers."""
        for directory in ("/var/log/libvirt", "/var/lib/libvirt/qemu", "/run/libvirt"):
            Path(directory).mkdir(parents=True, exist_ok=True)
        for program in ("virtlogd", "libvirtd"):
            if program in self.processes and self.processes[program].poll() is None:
                continue
            log = open(self.workdir / f"{program}.log", "ab")  # noqa: SIM115 (the child keeps it)
            self.processes[program] = subprocess.Popen(
                [program, "--pid-file", str(self.workdir / f"{program}.pid")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            conn = _connect()
            if conn is not None:
                conn.close()
                return
            if self.processes["libvirtd"].poll() is not None:
                break
            time.sleep(0.1)
        log = (self.workdir / "libvirtd.log").read_text(errors="replace")[-2000:]
        raise RealHypervisorUnavailable(f"libvirtd did not start answering on {URI}; its log ends:\n{log}")

    def kill(self) -> None:
        """kill -9 of libvirtd, as a crash would (guests keep running, as they do then)."""
        process = self.processes["libvirtd"]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for name in ("libvirtd", "virtlogd"):
            process = self.processes.pop(name, None)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def exclusive(wait: float = EXCLUSIVE_WAIT_S) -> Iterator[None]:
    """This machine's real-hypervisor runs (pytest, `make bench`), one at a time: the second would take the
    first's libvirtd for the system's and lose it whenever the first kills, restarts or stops it (a run
    halted with guests not started), and would remove the first's guests of the same UUID as stale. The
    lock (flock, released when its holder exits, even by kill -9) is waited for `wait` seconds."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "a+") as lock:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.seek(0)
                    raise RealHypervisorUnavailable(f"another real-hypervisor run ({lock.read().strip()}) "
                                                    f"still holds {LOCK} after {wait:g} s") from None
                time.sleep(1)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        yield


@contextmanager
def running_daemon(wait: float = EXCLUSIVE_WAIT_S) -> Iterator[Daemon]:
    """A libvirtd answering on qemu:///system for the duration; started (and stopped) here when none runs.
    Waits (`exclusive`) while another real-hypervisor run of this machine is under way."""
    missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
    if missing:
        raise RealHypervisorUnavailable(
            f"{', '.join(missing)} not installed: run `make setup-test` (it installs libvirtd and QEMU from Debian)"
        )
    with exclusive(wait):
        yield from _daemon()


def _daemon() -> Iterator[Daemon]:
    """running_daemon's body, under the machine's lock."""
    _make_kvm_usable_by_qemu()
    workdir = Path(tempfile.mkdtemp(prefix="compute-recover-libvirtd-"))
    conn = _connect()
    if conn is not None:
        conn.close()
        daemon = Daemon(owned=False, workdir=workdir)
    else:
        if os.geteuid() != 0:
            raise RealHypervisorUnavailable(f"no libvirtd answers on {URI}, and only root can start one: run as root")
        daemon = Daemon(owned=True, workdir=workdir)
    try:
        if daemon.owned:
            daemon.start()
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def guest_xml(name: str, uuid: str, disks: list[Path] = (), ram_image: Path | None = None) -> str:
    """A guest of 32 MiB and 1 vCPU that sits in firmware (nothing to boot), able to sleep to RAM.

    `ram_image` is loaded into guest memory at 16 MiB: a firmware guest's RAM
    is nearly all zero pages, which a dump streams in a few hundred KiB, too
    quickly to catch the job running.
    """
    disk_elements = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
        f"<target dev='vd{chr(ord('a') + number)}' bus='virtio'/></disk>"
        for number, disk in enumerate(disks)
    )
    loader = (
        "<qemu:commandline><qemu:arg value='-device'/>"
        f"<qemu:arg value='loader,file={ram_image},addr=0x1000000'/></qemu:commandline>"
        if ram_image else ""
    )
    domain_type = "kvm" if Path("/dev/kvm").exists() else "qemu"
    return (
        f"<domain type='{domain_type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
        f"<name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>32</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>"
        "<pm><suspend-to-mem enabled='yes'/></pm><on_crash>destroy</on_crash>"
        f"<devices>{disk_elements}<controller type='usb' model='none'/><memballoon model='none'/>"
        "<video><model type='none'/></video></devices>"
        f"{loader}</domain>"
    )


def traversable(path: Path) -> Path:
    """`path` with every directory above it searchable by others, so the libvirt-qemu user can reach it."""
    for directory in (path.parent, *path.parent.parents):
        mode = directory.stat().st_mode
        if mode & 0o005 != 0o005 and directory.owner() == "root":
            directory.chmod(mode | 0o005)
    return path


def make_ram_image(path: Path, size: int = 8 * 2**20) -> Path:
    """Random bytes for `guest_xml(ram_image=...)`, readable by the libvirt-qemu user."""
    path.write_bytes(os.urandom(size))
    path.chmod(0o644)
    return traversable(path)


def make_disk(path: Path) -> Path:
    """A 1 MiB qcow2 image (qemu-img), its directories traversable by the libvirt-qemu user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)
    return traversable(path)


def wait_for(done, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class Guests:
    """The guests one test defines on the daemon, removed again by `remove_all`."""

    def __init__(self) -> None:
        libvirt.registerErrorHandler(lambda _context, _error: None, None)  # raised errors say it all
        self.conn = libvirt.open(URI)
        self.defined: list[str] = []
        self._defining = threading.Lock()

    def define(self, name: str, uuid: str, disks: list[Path] = (), ram_image: Path | None = None) -> libvirt.virDomain:
        stale = self._find(uuid)
        if stale is not None:  # left by a run that was killed before its clean-up
            self._remove(stale)
        dom = self.conn.defineXML(guest_xml(name, uuid, list(disks), ram_image))
        with self._defining:
            self.defined.append(uuid)
        return dom

    def _find(self, uuid: str) -> libvirt.virDomain | None:
        for attempt in range(2):
            try:
                return self.conn.lookupByUUIDString(uuid)
            except libvirt.libvirtError as error:
                if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN or attempt:
                    return None
                self.conn = libvirt.open(URI)  # libvirtd was restarted under this test: connect again
        return None

    def domain(self, uuid: str) -> libvirt.virDomain:
        """The defined domain, looked up afresh (a domain object of a libvirtd that was restarted is dead)."""
        dom = self._find(uuid)
        assert dom is not None, f"no domain {uuid}"
        return dom

    def state(self, uuid: str) -> tuple[int, int] | None:
        """libvirt's (state, reason) of the domain, None when it is not defined."""
        dom = self._find(uuid)
        return tuple(dom.state()) if dom is not None else None

    def domain_id(self, uuid: str) -> int:
        return self.conn.lookupByUUIDString(uuid).ID()

    # -- the outage, made real ------------------------------------------------

    def start(self, dom: libvirt.virDomain) -> None:
        if not dom.isActive():
            dom.create()

    def crash(self, dom: libvirt.virDomain) -> None:
        """kill -9 of the guest's qemu process: libvirt sees it shut off (crashed)."""
        self.start(dom)
        pid = int((QEMU_PIDS / f"{dom.name()}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not dom.isActive(), what=f"{dom.name()} to die")

    def pause(self, dom: libvirt.virDomain) -> None:
        self.start(dom)
        dom.suspend()

    def managed_save(self, dom: libvirt.virDomain) -> None:
        self.start(dom)
        dom.managedSave(0)

    def pm_suspend(self, dom: libvirt.virDomain) -> None:
        """Sleep to RAM through the ACPI register, repeated until the firmware has set ACPI up."""
        self.start(dom)

        def asleep() -> bool:
            if dom.state()[0] == libvirt.VIR_DOMAIN_PMSUSPENDED:
                return True
            libvirt_qemu.qemuMonitorCommand(dom, SLEEP_S3, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP)
            time.sleep(0.3)
            return dom.state()[0] == libvirt.VIR_DOMAIN_PMSUSPENDED

        wait_for(asleep, timeout=20, what=f"{dom.name()} to sleep")

    # -- clean-up ---------------------------------------------------------------

    def in_parallel(self, work: Callable[..., None], arguments: Iterable[tuple]) -> None:
        """`work(*each)` for each argument tuple, four at a time (libvirtd serves 5 calls of a client at once)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done in [pool.submit(work, *each) for each in arguments]:
                done.result()

    def _remove(self, dom: libvirt.virDomain) -> None:
        """kill -9 and undefine: quicker than virDomainDestroy, which gives QEMU time to exit."""
        if dom.isActive():
            with suppress(FileNotFoundError, ProcessLookupError):
                os.kill(int((QEMU_PIDS / f"{dom.name()}.pid").read_text()), signal.SIGKILL)
            wait_for(lambda: not dom.isActive(), what=f"{dom.name()} to die")
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)

    def remove_all(self) -> None:
        found = [dom for dom in map(self._find, self.defined) if dom is not None]
        self.in_parallel(self._remove, ((dom,) for dom in found))
        self.defined.clear()
        self.conn.close()


def slow_reader(fifo: Path, stop: threading.Event) -> threading.Thread:
    """A thread reading `fifo` at about 640 KiB/s until `stop`, so that a dump of an 8 MiB
    `ram_image` into it stays a running job for some 13 s."""
    def read() -> None:
        with open(fifo, "rb") as pipe:
            while not stop.is_set() and pipe.read(64 * 1024):
                time.sleep(0.1)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread

"""The libvirt adapter against libvirt's real test driver (no mocks).

Every `Hypervisor.open` of a test:/// URI gets its own in-memory copy of the
node document, so each test starts from tests/data/hypervisor-node.xml as
written: one domain per libvirt run state.
"""

import shutil
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
import psutil
import pytest

from recovery.adapters.hypervisor import (
    DomainInfo,
    HostCapacity,
    Hypervisor,
    HypervisorError,
    HypervisorUnavailable,
    PreflightRefused,
    assess_host,
    filesystem_type,
    local_disk_paths,
    version_text,
    wait_until,
)
from states.enums import PowerState
from tests.support.paths import TEST_DATA

NODE = TEST_DATA / "hypervisor-node.xml"
URI = f"test://{NODE.resolve()}"

UUID = {
    "nostate": "00000000-0000-4000-8000-000000000000",
    "running": "11111111-1111-4111-8111-111111111111",
    "blocked": "22222222-2222-4222-8222-222222222222",
    "paused": "33333333-3333-4333-8333-333333333333",
    "shutting-down": "44444444-4444-4444-8444-444444444444",
    "shutoff": "55555555-5555-4555-8555-555555555555",
    "crashed": "66666666-6666-4666-8666-666666666666",
    "pmsuspended": "77777777-7777-4777-8777-777777777777",
}
RUNNING = ("running", "blocked")
BOOTED = [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED]
MISSING = "99999999-9999-4999-8999-999999999999"

# docs/scenarios.md: libvirt's domain states as Nova's power states.
EXPECTED_POWER = {
    "nostate": PowerState.NOSTATE,
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutting-down": PowerState.SHUTDOWN,
    "shutoff": PowerState.SHUTDOWN,
    "crashed": PowerState.CRASHED,
    "pmsuspended": PowerState.SUSPENDED,
}

LIFECYCLE: dict[str, Callable[[Hypervisor, str], None]] = {
    "hard_reboot": Hypervisor.hard_reboot,
    "soft_reboot": Hypervisor.soft_reboot,
    "start": Hypervisor.start,
    "stop": lambda hv, uuid: hv.stop(uuid, timeout=1.0),
    "unpause": Hypervisor.unpause,
    "resume_guest": Hypervisor.resume_guest,
    "destroy_and_undefine": Hypervisor.destroy_and_undefine,
    "shutdown": Hypervisor.shutdown,
    "revert_resize(power_on)": lambda hv, uuid: hv.revert_resize(uuid, power_on=True),
    "revert_resize(off)": lambda hv, uuid: hv.revert_resize(uuid, power_on=False),
    "abort_job": Hypervisor.abort_job,
}


def node_document(tmp_path: Path, model: str = "x86_64", body: str = "") -> str:
    """A test:/// URI for a minimal node document with this CPU model and extra elements."""
    path = tmp_path / "node.xml"
    path.write_text(
        f"<node><cpu><mhz>1000</mhz><model>{model}</model><nodes>1</nodes><sockets>1</sockets>"
        f"<cores>2</cores><threads>1</threads><active>2</active></cpu><memory>2097152</memory>{body}</node>"
    )
    return f"test://{path}"


@pytest.fixture
def hv() -> Iterator[Hypervisor]:
    hypervisor = Hypervisor.open(URI)
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def ro() -> Iterator[Hypervisor]:
    hypervisor = Hypervisor.open(URI, read_only=True)
    yield hypervisor
    hypervisor.close()


def states(hv: Hypervisor) -> dict[str, PowerState]:
    return {d.name: d.power_state for d in hv.domains()}


def boot_record(hv: Hypervisor, uuid: str) -> tuple[int, list[int]]:
    """The domain's id and [state, reason] as libvirt holds them.

    Reaches into the adapter's connection (the test driver's memory is private
    to it) to see what power states cannot: the id changes when a domain is
    destroyed and created, the reason becomes "booted" on a reboot.
    """
    dom = hv._conn.lookupByUUIDString(uuid)
    return dom.ID(), dom.state()


# -- reads ---------------------------------------------------------------------


def test_domains_maps_every_libvirt_state_to_novas_power_state(hv: Hypervisor) -> None:
    assert states(hv) == EXPECTED_POWER


def test_domains_carry_uuids_and_come_sorted_by_name(hv: Hypervisor) -> None:
    found = hv.domains()
    assert [d.name for d in found] == sorted(UUID)
    assert all(d == DomainInfo(UUID[d.name], d.name, EXPECTED_POWER[d.name]) for d in found)


@pytest.mark.parametrize("name", sorted(UUID))
def test_power_state_by_uuid(hv: Hypervisor, name: str) -> None:
    assert hv.power_state(UUID[name]) is EXPECTED_POWER[name]


@pytest.mark.parametrize("uuid", [MISSING, "not-a-uuid"])
def test_power_state_of_no_domain_is_nostate(hv: Hypervisor, uuid: str) -> None:
    assert hv.power_state(uuid) is PowerState.NOSTATE


def test_capacity_reads_node_info_and_the_storage_pool(hv: Hypervisor) -> None:
    # The test driver sizes every pool at 100 GiB whatever the document says.
    assert hv.capacity() == HostCapacity(vcpus=8, memory_mb=8192, local_gb=100)


def test_capacity_without_a_storage_pool_has_no_local_disk(tmp_path: Path) -> None:
    hv = Hypervisor.open(node_document(tmp_path))
    assert hv.capacity() == HostCapacity(vcpus=2, memory_mb=2048, local_gb=0)


def test_hostname_is_this_machines(hv: Hypervisor) -> None:
    # The test driver reports the real host's name, possibly fully qualified.
    assert hv.hostname().split(".")[0] == socket.gethostname().split(".")[0]


def test_preflight_warns_that_the_test_driver_is_not_qemu(hv: Hypervisor) -> None:
    assert hv.preflight() == ["virt type is 'test', not qemu/kvm: recovery is untested there"]


def test_preflight_warns_on_a_foreign_arch(tmp_path: Path) -> None:
    hv = Hypervisor.open(node_document(tmp_path, model="aarch64"))
    assert hv.preflight() == [
        "virt type is 'test', not qemu/kvm: recovery is untested there",
        "host arch is 'aarch64', not i686/x86_64: recovery is untested there",
    ]


def test_preflight_also_works_read_only(ro: Hypervisor) -> None:
    assert len(ro.preflight()) == 1


@pytest.mark.parametrize("virt_type", ["QEMU", "qemu", "kvm"])
@pytest.mark.parametrize("arch", ["x86_64", "i686"])
def test_assess_host_is_silent_on_a_supported_host(virt_type: str, arch: str) -> None:
    assert assess_host("qemu:///system", 8_000_000, virt_type, arch) == []


@pytest.mark.parametrize("version", [7_010_000, 6_000_000, 7_999_999])
def test_assess_host_refuses_libvirt_older_than_8(version: int) -> None:
    with pytest.raises(PreflightRefused) as refused:
        assess_host("qemu:///system", version, "QEMU", "x86_64")
    assert str(refused.value) == (
        f"libvirt {version_text(version)} at 'qemu:///system' is older than 8.0.0: upgrade libvirt on this host"
    )


def test_version_text() -> None:
    assert [version_text(v) for v in (9_000_000, 8_010_002, 10_002_000)] == ["9.0.0", "8.10.2", "10.2.0"]


# -- opening -------------------------------------------------------------------


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("uri", ["test:///nonexistent/file.xml", "bogus://nowhere/x"])
def test_unreachable_uri_is_one_line_naming_it_and_the_fix(uri: str, read_only: bool) -> None:
    with pytest.raises(HypervisorUnavailable) as unavailable:
        Hypervisor.open(uri, read_only=read_only)
    message = str(unavailable.value)
    assert "\n" not in message
    assert message.startswith(f"cannot open libvirt at '{uri}': ")
    assert message.endswith(" — check --libvirt-uri / that libvirtd is running")
    assert len(message) > len(f"cannot open libvirt at '{uri}': ") + len(" — check --libvirt-uri / that libvirtd")


def test_a_multi_line_libvirt_error_becomes_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<node><cpu>\n<bogus")
    with pytest.raises(HypervisorUnavailable) as unavailable:
        Hypervisor.open(f"test://{bad}")
    assert "\n" not in str(unavailable.value)
    assert "Couldn't find end of Start Tag bogus" in str(unavailable.value)


def test_libvirt_errors_are_not_printed_to_stderr(hv: Hypervisor, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(HypervisorError):
        hv.unpause(UUID["shutoff"])
    assert "libvirt" not in capfd.readouterr().err


# -- lifecycle: resulting states -----------------------------------------------


@pytest.mark.parametrize(
    ("operation", "name", "expected"),
    [
        ("hard_reboot", "running", PowerState.RUNNING),
        ("hard_reboot", "shutoff", PowerState.RUNNING),
        ("hard_reboot", "crashed", PowerState.RUNNING),
        ("hard_reboot", "paused", PowerState.RUNNING),
        ("hard_reboot", "pmsuspended", PowerState.RUNNING),
        ("soft_reboot", "running", PowerState.RUNNING),
        ("soft_reboot", "blocked", PowerState.RUNNING),
        ("soft_reboot", "shutoff", PowerState.RUNNING),
        ("soft_reboot", "crashed", PowerState.RUNNING),
        ("soft_reboot", "paused", PowerState.RUNNING),
        ("start", "shutoff", PowerState.RUNNING),
        ("start", "running", PowerState.RUNNING),
        ("start", "crashed", PowerState.RUNNING),
        ("start", "nostate", PowerState.RUNNING),
        ("start", "shutting-down", PowerState.RUNNING),
        ("start", "paused", PowerState.RUNNING),
        ("stop", "running", PowerState.SHUTDOWN),
        ("stop", "paused", PowerState.SHUTDOWN),
        ("stop", "crashed", PowerState.SHUTDOWN),
        ("stop", "pmsuspended", PowerState.SHUTDOWN),
        ("stop", "shutoff", PowerState.SHUTDOWN),
        ("unpause", "paused", PowerState.RUNNING),
        ("unpause", "running", PowerState.RUNNING),
        ("resume_guest", "shutoff", PowerState.RUNNING),
        ("resume_guest", "crashed", PowerState.RUNNING),
        ("resume_guest", "shutting-down", PowerState.RUNNING),
        ("resume_guest", "paused", PowerState.PAUSED),
        ("resume_guest", "pmsuspended", PowerState.SUSPENDED),
        ("resume_guest", "running", PowerState.RUNNING),
        ("resume_guest", "blocked", PowerState.RUNNING),
        ("shutdown", "running", PowerState.SHUTDOWN),
        ("shutdown", "shutoff", PowerState.SHUTDOWN),
        ("revert_resize(power_on)", "shutoff", PowerState.RUNNING),
        ("revert_resize(power_on)", "running", PowerState.RUNNING),
        ("revert_resize(off)", "shutoff", PowerState.SHUTDOWN),
        ("revert_resize(off)", "running", PowerState.SHUTDOWN),
        ("abort_job", "running", PowerState.RUNNING),
        ("abort_job", "shutoff", PowerState.SHUTDOWN),
    ],
)
def test_lifecycle_reaches_its_state_and_leaves_the_others_alone(
    hv: Hypervisor, operation: str, name: str, expected: PowerState
) -> None:
    LIFECYCLE[operation](hv, UUID[name])
    assert states(hv) == {**EXPECTED_POWER, name: expected}


@pytest.mark.parametrize(
    ("operation", "name"),
    [
        *((op, name) for op in ("start", "resume_guest", "unpause", "revert_resize(power_on)") for name in RUNNING),
        ("resume_guest", "paused"),  # Nova's resume_state_on_host_boot leaves paused and pm-suspended guests be
        ("resume_guest", "pmsuspended"),
        ("abort_job", "running"),
        ("abort_job", "shutoff"),
        ("shutdown", "shutoff"),
        ("stop", "shutoff"),
        ("revert_resize(off)", "shutoff"),
    ],
)
def test_a_domain_already_where_the_call_leads_is_not_restarted(hv: Hypervisor, operation: str, name: str) -> None:
    before = boot_record(hv, UUID[name])
    LIFECYCLE[operation](hv, UUID[name])
    assert boot_record(hv, UUID[name]) == before


def test_soft_reboot_reboots_a_running_guest_in_place(hv: Hypervisor) -> None:
    domain_id, _ = boot_record(hv, UUID["running"])
    hv.soft_reboot(UUID["running"])
    assert boot_record(hv, UUID["running"]) == (domain_id, BOOTED)


def test_hard_reboot_destroys_and_creates_a_running_guest(hv: Hypervisor) -> None:
    domain_id, _ = boot_record(hv, UUID["running"])
    hv.hard_reboot(UUID["running"])
    new_id, state = boot_record(hv, UUID["running"])
    assert new_id != domain_id
    assert state == BOOTED


@pytest.mark.parametrize("operation", ["start", "stop", "resume_guest", "unpause", "shutdown", "hard_reboot"])
def test_a_repeated_lifecycle_call_is_harmless(hv: Hypervisor, operation: str) -> None:
    name = "paused" if operation == "unpause" else "shutoff"
    LIFECYCLE[operation](hv, UUID[name])
    after_first = states(hv)
    LIFECYCLE[operation](hv, UUID[name])
    assert states(hv) == after_first


@pytest.mark.parametrize("name", ["running", "shutoff", "paused", "crashed"])
def test_destroy_and_undefine_removes_the_domain(hv: Hypervisor, name: str) -> None:
    hv.destroy_and_undefine(UUID[name])
    assert hv.power_state(UUID[name]) is PowerState.NOSTATE
    assert states(hv) == {n: p for n, p in EXPECTED_POWER.items() if n != name}


def test_destroy_and_undefine_of_no_domain_is_a_no_op(hv: Hypervisor) -> None:
    hv.destroy_and_undefine(UUID["running"])
    hv.destroy_and_undefine(UUID["running"])
    hv.destroy_and_undefine(MISSING)
    assert len(hv.domains()) == len(UUID) - 1


def test_unpause_of_a_shut_off_domain_fails_on_one_line(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError) as failed:
        hv.unpause(UUID["shutoff"])
    assert str(failed.value) == (
        f"cannot unpause domain {UUID['shutoff']} on {URI}: internal error: domain 'shutoff' not paused"
    )


def test_waking_a_pm_suspended_guest_reports_the_drivers_refusal(hv: Hypervisor) -> None:
    # The test driver has no virDomainPMWakeup; qemu has.
    with pytest.raises(HypervisorError) as failed:
        hv.start(UUID["pmsuspended"])
    assert str(failed.value).startswith(f"cannot start domain {UUID['pmsuspended']} on {URI}: ")
    assert "virDomainPMWakeup" in str(failed.value)
    assert hv.power_state(UUID["pmsuspended"]) is PowerState.SUSPENDED


@pytest.mark.parametrize("operation", sorted(set(LIFECYCLE) - {"destroy_and_undefine"}))
@pytest.mark.parametrize("uuid", [MISSING, "not-a-uuid"])
def test_lifecycle_on_no_domain_names_the_uuid_and_uri(hv: Hypervisor, operation: str, uuid: str) -> None:
    with pytest.raises(HypervisorError) as failed:
        LIFECYCLE[operation](hv, uuid)
    assert str(failed.value).endswith(f": no domain with uuid {uuid} on {URI}")


# -- read-only (dry runs) --------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(LIFECYCLE))
@pytest.mark.parametrize("name", ["running", "shutoff", "paused"])
def test_read_only_refuses_every_lifecycle_call(ro: Hypervisor, operation: str, name: str) -> None:
    with pytest.raises(HypervisorError) as refused:
        LIFECYCLE[operation](ro, UUID[name])
    assert str(refused.value).endswith(f"domain {UUID[name]}: the connection to {URI} is read-only")
    assert states(ro) == EXPECTED_POWER


def test_read_only_refuses_even_for_a_missing_domain(ro: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match="read-only"):
        ro.destroy_and_undefine(MISSING)


def test_read_only_still_reads(ro: Hypervisor) -> None:
    assert ro.read_only
    assert states(ro) == EXPECTED_POWER
    assert ro.capacity() == HostCapacity(vcpus=8, memory_mb=8192, local_gb=100)


# -- concurrency and waiting -----------------------------------------------------


def test_a_thread_pool_can_drive_different_domains_at_once(hv: Hypervisor) -> None:
    plan = {
        "shutoff": (hv.start, PowerState.RUNNING),
        "crashed": (hv.hard_reboot, PowerState.RUNNING),
        "paused": (hv.unpause, PowerState.RUNNING),
        "running": (hv.stop, PowerState.SHUTDOWN),
        "blocked": (hv.destroy_and_undefine, None),
        "shutting-down": (hv.resume_guest, PowerState.RUNNING),
    }
    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        futures = [pool.submit(operation, UUID[name]) for name, (operation, _) in plan.items()]
        for future in futures:
            future.result()
    expected = {**EXPECTED_POWER, **{name: state for name, (_, state) in plan.items()}}
    assert states(hv) == {name: state for name, state in expected.items() if state is not None}


def test_wait_until_returns_once_the_condition_holds() -> None:
    polls = iter([False, False, True])
    started = time.monotonic()
    assert wait_until(lambda: next(polls), timeout=5.0, interval=0.01)
    assert time.monotonic() - started < 1.0


def test_wait_until_gives_up_after_the_timeout() -> None:
    started = time.monotonic()
    assert not wait_until(lambda: False, timeout=0.2, interval=0.05)
    assert 0.2 <= time.monotonic() - started < 1.0


def test_wait_until_never_sleeps_past_the_deadline() -> None:
    polls: list[float] = []
    started = time.monotonic()
    assert not wait_until(lambda: polls.append(time.monotonic()) is not None, timeout=0.1, interval=10.0)
    assert len(polls) == 2
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("operation", ["start", "unpause", "revert_resize(power_on)"])
def test_a_paused_guest_is_resumed_not_rebooted(hv: Hypervisor, operation: str) -> None:
    domain_id, _ = boot_record(hv, UUID["paused"])
    LIFECYCLE[operation](hv, UUID["paused"])
    assert boot_record(hv, UUID["paused"]) == (
        domain_id,
        [libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_UNPAUSED],
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("running", libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN),
        ("paused", libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED),  # no guest to answer ACPI: not waited for
        ("crashed", libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED),
        ("pmsuspended", libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED),
    ],
)
def test_stop_shuts_down_gracefully_when_the_guest_can_answer(hv: Hypervisor, name: str, reason: int) -> None:
    hv.stop(UUID[name])
    assert boot_record(hv, UUID[name])[1] == [libvirt.VIR_DOMAIN_SHUTOFF, reason]


# -- Nova's libvirt actions: fresh boots, undefine, local disks, host facts -------------------------------------


def test_hard_reboot_discards_a_managed_save_image(hv: Hypervisor) -> None:
    # The test driver has no VIR_DOMAIN_START_FORCE_BOOT: the fallback removes the image before booting.
    dom = hv._conn.lookupByUUIDString(UUID["running"])
    dom.managedSave(0)
    hv.hard_reboot(UUID["running"])
    assert dom.state() == BOOTED  # not (running, restored)
    assert not dom.hasManagedSaveImage(0)


def test_destroy_and_undefine_removes_a_managed_save_image_with_the_domain(hv: Hypervisor) -> None:
    hv._conn.lookupByUUIDString(UUID["running"]).managedSave(0)
    hv.destroy_and_undefine(UUID["running"])
    assert hv.power_state(UUID["running"]) is PowerState.NOSTATE


DISKED = "88888888-8888-4888-8888-888888888888"


def define_with_disks(hv: Hypervisor, *disks: Path) -> None:
    sources = "".join(f"<disk type='file' device='disk'><source file='{disk}'/><target dev='vd{chr(97 + n)}'/>"
                      "</disk>" for n, disk in enumerate(disks))
    hv._conn.defineXML(f"<domain type='test'><name>disked</name><uuid>{DISKED}</uuid><memory>1024</memory>"
                       f"<os><type>hvm</type></os><devices>{sources}</devices></domain>")


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    """An instances path holding the disked instance's directory and disk, another instance's, and the image cache."""
    root = tmp_path / "instances"
    for path in (root / DISKED / "disk", root / DISKED / "console.log", root / UUID["running"] / "disk",
                 root / "_base" / "image", tmp_path / "volumes" / "volume"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("data")
    return root


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("destroy_disks", [True, False])
def test_destroy_disks_removes_the_instances_local_disks_and_nothing_else(
    tmp_path: Path, instances: Path, destroy_disks: bool
) -> None:
    hv = Hypervisor.open(URI, instances_path=instances)
    define_with_disks(hv, instances / DISKED / "disk", tmp_path / "volumes" / "volume")
    before = files_under(tmp_path)
    hv.destroy_and_undefine(DISKED, destroy_disks=destroy_disks)
    gone = {f"instances/{DISKED}/disk", f"instances/{DISKED}/console.log"} if destroy_disks else set()
    assert files_under(tmp_path) == before - gone
    assert (instances / DISKED).exists() is not destroy_disks


def test_destroy_disks_never_follows_a_disk_out_of_the_instances_path(tmp_path: Path, instances: Path) -> None:
    (instances / DISKED / "escape").symlink_to(tmp_path / "volumes" / "volume")
    hv = Hypervisor.open(URI, instances_path=instances)
    define_with_disks(hv, instances / DISKED / "escape", instances / DISKED / ".." / ".." / "volumes" / "volume")
    hv.destroy_and_undefine(DISKED, destroy_disks=True)
    assert (tmp_path / "volumes" / "volume").read_text() == "data"
    assert not (instances / DISKED).exists()


def test_destroy_disks_keeps_disks_on_shared_storage(
    tmp_path: Path, instances: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An NFS mount cannot be made here: the mount table is faked to put the instances path on NFS.
    real = psutil.disk_partitions(all=True)
    nfs = type(real[0])("server:/export", str(instances), "nfs4", "rw")
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: [*real, nfs])
    hv = Hypervisor.open(URI, instances_path=instances)
    define_with_disks(hv, instances / DISKED / "disk")
    before = files_under(tmp_path)
    hv.destroy_and_undefine(DISKED, destroy_disks=True)
    assert hv.power_state(DISKED) is PowerState.NOSTATE
    assert files_under(tmp_path) == before


def test_destroy_disks_of_an_already_undefined_instance_removes_its_directory(instances: Path) -> None:
    hv = Hypervisor.open(URI, instances_path=instances)
    hv.destroy_and_undefine(DISKED, destroy_disks=True)  # a rerun after the domain went
    assert not (instances / DISKED).exists()
    assert (instances / UUID["running"] / "disk").exists()


@pytest.mark.parametrize(("path", "expected"), [
    ("/var/lib/nova/instances", "nfs4"),
    ("/var/lib/nova/instances/abc/disk", "nfs4"),
    ("/var/lib/nova", "ext4"),
    ("/var/lib/novaish", "ext4"),
    ("/srv/x", "xfs"),
])
def test_filesystem_type_is_the_deepest_mount_holding_the_path(path: str, expected: str) -> None:
    mounts = [("/", "ext4"), ("/srv", "xfs"), ("/var/lib/nova/instances", "nfs4")]
    assert filesystem_type(Path(path), mounts) == expected


def test_local_disk_paths_are_the_disks_under_the_instances_path_and_its_directory(tmp_path: Path) -> None:
    root = tmp_path / "instances"
    xml = (f"<domain><devices><disk><source file='{root}/u/disk'/></disk><disk><source file='/srv/vol'/></disk>"
           "<disk type='block'><source dev='/dev/sdb'/></disk></devices></domain>")
    assert local_disk_paths(xml, "u", root) == [root / "u" / "disk", root / "u"]


def test_local_gb_is_the_covering_pools_size(tmp_path: Path) -> None:
    # The node's pool is a directory pool at /var/lib/libvirt/images (sized 100 GiB by the test driver).
    hv = Hypervisor.open(URI, instances_path=Path("/var/lib/libvirt/images/nova"))
    assert hv.capacity().local_gb == 100


def test_local_gb_is_the_instances_paths_filesystem_when_no_pool_covers_it(tmp_path: Path) -> None:
    hv = Hypervisor.open(URI, instances_path=tmp_path)
    assert hv.capacity().local_gb == shutil.disk_usage(tmp_path).total // 2**30


def test_assess_host_warns_when_kvm_is_not_usable() -> None:
    assert assess_host("qemu:///system", 9_000_000, "QEMU", "x86_64", kvm_usable=False) == [
        "KVM is not usable on this host (no /dev/kvm, or libvirt cannot use it): guests run emulated under TCG, "
        "many times slower; load the kvm module or enable virtualization"
    ]
    assert assess_host("qemu:///system", 9_000_000, "QEMU", "x86_64", kvm_usable=True) == []

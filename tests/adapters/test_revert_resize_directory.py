"""A reverted resize brings the instance's disk directory back as Nova's libvirt driver does
(finish_revert_migration): `<instances_path>/<uuid>_resize` is moved back to `<instances_path>/<uuid>`,
replacing what a failed migration left there (issue 18, item 2). libvirt's real test driver."""

from pathlib import Path

import pytest

from recovery.adapters.hypervisor import Hypervisor, restore_resize_directory
from states.enums import PowerState
from tests.support.paths import TEST_DATA

NODE = TEST_DATA / "hypervisor-node.xml"
URI = f"test://{NODE.resolve()}"
SHUTOFF = "55555555-5555-4555-8555-555555555555"


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    root = tmp_path / "instances"
    (root / f"{SHUTOFF}_resize").mkdir(parents=True)
    (root / f"{SHUTOFF}_resize" / "disk").write_text("the original disk")
    return root


@pytest.mark.parametrize("power_on", [True, False])
def test_a_revert_moves_the_resize_directory_back_before_the_guest_comes_back(instances: Path, power_on: bool):
    hv = Hypervisor.open(URI, instances_path=instances)
    assert hv.power_state(SHUTOFF) is PowerState.SHUTDOWN
    hv.revert_resize(SHUTOFF, power_on=power_on, timeout=0.1)
    assert (instances / SHUTOFF / "disk").read_text() == "the original disk"
    assert not (instances / f"{SHUTOFF}_resize").exists()
    assert hv.power_state(SHUTOFF) is (PowerState.RUNNING if power_on else PowerState.SHUTDOWN)


def test_what_a_failed_migration_left_in_the_instance_directory_is_replaced(instances: Path):
    (instances / SHUTOFF).mkdir()
    (instances / SHUTOFF / "disk").write_text("a half-copied disk")
    assert restore_resize_directory(instances, SHUTOFF) is True
    assert sorted(p.name for p in instances.iterdir()) == [SHUTOFF]
    assert (instances / SHUTOFF / "disk").read_text() == "the original disk"


def test_without_a_resize_directory_nothing_moves(tmp_path: Path):
    (tmp_path / SHUTOFF).mkdir()
    (tmp_path / SHUTOFF / "disk").write_text("current")
    assert restore_resize_directory(tmp_path, SHUTOFF) is False
    assert (tmp_path / SHUTOFF / "disk").read_text() == "current"


def test_a_uuid_cannot_lead_out_of_the_instances_path(tmp_path: Path, instances: Path):
    (tmp_path / "outside_resize").mkdir()
    assert restore_resize_directory(instances, "../outside") is False
    assert (tmp_path / "outside_resize").is_dir() and not (tmp_path / "outside").exists()

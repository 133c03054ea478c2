"""Fixtures of the real-hypervisor tests: a libvirtd of the suite's own (one per module, taken in turn with
any other real-hypervisor run on the machine) and the guests a test defines, removed after it."""

from collections.abc import Iterator

import pytest

from tests.support.real_libvirt import Daemon, Guests, RealHypervisorUnavailable, running_daemon


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    try:
        with running_daemon() as running:
            yield running
    except RealHypervisorUnavailable as error:
        pytest.fail(f"the real-hypervisor suite cannot run: {error}", pytrace=False)


@pytest.fixture
def guests(daemon: Daemon) -> Iterator[Guests]:
    defined = Guests()
    yield defined
    defined.remove_all()

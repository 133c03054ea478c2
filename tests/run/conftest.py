"""Fixtures of the run's tests."""

from collections.abc import Iterator

import pytest

from tests.support.guest_network import GuestNetwork


@pytest.fixture
def guest() -> Iterator[GuestNetwork]:
    """A guest's network of its own (a network namespace), removed after the test."""
    network = GuestNetwork()
    yield network
    network.remove()


@pytest.fixture
def other_guest() -> Iterator[GuestNetwork]:
    """Another tenant's guest, answering on its own address."""
    network = GuestNetwork()
    yield network
    network.remove()

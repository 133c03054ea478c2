"""`services` at 80 columns: a table of its columns while they fit, and otherwise each service stacked (its
host whole in a column of its own, the rest as `Header: value` lines), so that no line is wider than the
terminal and no host name is split over lines, whatever -c chooses."""

import sqlite3

import pytest
from click.testing import CliRunner

from recovery.cli import cli
from tests.support.in_process import invoke, load_records
from tests.support.paths import FIXTURES

LONG_HOST = "compute-1.rack-12.west.example.org"
REASON = "maintenance window for the kernel upgrade of the whole rack, change ticket 4411"
ALL = ("id", "binary", "host", "zone", "status", "state", "updated_at", "last_seen_up", "report_count",
       "disabled_reason", "forced_down")


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    load_records(url, FIXTURES / "power-outage")
    assert invoke("services", "set", "--db", url, "--host", "compute-1", "--disable", "--reason", REASON).exit_code == 0
    return url


def listing(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(cli, ["services", *args], env={"COLUMNS": str(columns), "COMPUTE_RECOVER_DB": None})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def assert_fits(text: str, hosts: list[str], width: int = 80) -> None:
    assert max(len(line) for line in text.splitlines()) <= width, text
    words = text.split()
    for host in hosts:
        assert any(host in word for word in words), f"{host} split over lines:\n{text}"


@pytest.mark.parametrize("chosen", [(), ALL, ("host", "disabled_reason"), ("disabled_reason", "host", "state")])
def test_every_listing_fits_80_columns_with_every_host_name_whole(url, chosen):
    text = listing("--db", url, *(arg for column in chosen for arg in ("-c", column)))
    assert_fits(text, ["compute-1"])


def test_columns_that_do_not_fit_are_stacked_under_the_host(url):
    text = listing("--db", url, *(arg for column in ALL for arg in ("-c", column)))
    lines = text.splitlines()
    host_line = next(line for line in lines if "compute-1" in line)
    assert host_line.split()[:3] == ["compute-1", "ID:", "1"]
    assert "Disabled Reason: maintenance window" in text and "Forced Down: False" in text
    assert " ".join(text.split()).count(" ".join(REASON.split())) == 1  # the reason whole, wrapped at spaces
    wide = listing("--db", url, *(arg for column in ALL for arg in ("-c", column)), columns=250)
    assert "Disabled Reason" in wide.splitlines()[1] and "ID:" not in wide  # a plain table where it fits


def test_a_long_host_name_stays_whole(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    load_records(url, FIXTURES / "power-outage")
    assert invoke("services", "set", "--db", url, "--host", "compute-1", "--disable").exit_code == 0
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE services SET host = ?", (LONG_HOST,))
    assert_fits(listing("--db", url), [LONG_HOST])
    assert_fits(listing("--db", url, columns=60), [LONG_HOST], width=60)

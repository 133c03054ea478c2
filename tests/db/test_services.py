"""The service record after the start: heartbeats, Nova's up/down rule with a controlled clock,
`services` and `services set` — on real SQLite files and a real PostgreSQL server."""

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from recovery.cli import cli
from recovery.cli.services import service_json
from recovery.core.servicegroup import is_up, service_down_time
from recovery.db import Database, Service, ServiceRow
from recovery.db import services as records
from tests.support.databases import migrated_database
from tests.support.paths import ROOT

HOST = "compute-1"
T0 = datetime(2026, 1, 1, 12, 0, 0)


def row(**columns) -> ServiceRow:
    base = dict(id=1, host=HOST, binary="nova-compute", topic="compute", report_count=1, disabled=False,
                disabled_reason=None, forced_down=False, last_seen_up=None, updated_at=None, created_at=None)
    return ServiceRow(**base | columns)


def the_service(db: Database, host: str = HOST) -> ServiceRow:
    return records.list_services(db, host)[0]


@pytest.fixture
def db(database_url: str):
    database = migrated_database(database_url)
    yield database
    database.close()


# --- the rule (pure) ----------------------------------------------------------------------------


@pytest.mark.parametrize(("configured", "interval", "used"), [
    (60, 10, 60), (60, 60, 150), (30, 40, 100), (25, 10, 25), (10, 10, 25)])
def test_a_down_time_not_above_the_report_interval_is_raised_to_two_and_a_half_intervals(
        configured: float, interval: float, used: float) -> None:
    assert service_down_time(configured, interval) == used


@pytest.mark.parametrize(("columns", "seconds_later", "up"), [
    ({"last_seen_up": T0}, 60, True),
    ({"last_seen_up": T0}, 61, False),
    ({"last_seen_up": T0}, -60, True),  # a clock behind the writer's: Nova compares the absolute difference
    ({"last_seen_up": T0}, -61, False),
    ({"updated_at": T0}, 30, True),  # no last_seen_up: updated_at stands in
    ({"created_at": T0}, 30, True),  # nor updated_at: created_at does
    ({"last_seen_up": T0 - timedelta(hours=1), "updated_at": T0}, 30, False),  # last_seen_up wins when set
    ({}, 0, False),
    ({"last_seen_up": T0, "forced_down": True}, 0, False),
])
def test_up_is_not_forced_down_and_a_heartbeat_within_the_down_time(columns: dict, seconds_later: int,
                                                                    up: bool) -> None:
    assert is_up(row(**columns), T0 + timedelta(seconds=seconds_later), 60) is up


@given(st.integers(-10**6, 10**6), st.floats(1, 10**5))
def test_forced_down_is_down_whatever_the_heartbeat(seconds: int, down_time: float) -> None:
    assert not is_up(row(last_seen_up=T0, forced_down=True), T0 + timedelta(seconds=seconds), down_time)


# --- heartbeat and set, on real databases --------------------------------------------------------


def test_heartbeat_creates_the_service_then_counts_and_marks_it_seen(db: Database) -> None:
    db.heartbeat(HOST)
    first = the_service(db)
    assert (first.binary, first.topic, first.report_count) == ("nova-compute", "compute", 1)
    assert first.last_seen_up is not None and first.created_at is not None
    db.heartbeat(HOST)
    second = the_service(db)
    assert second.report_count == 2 and second.last_seen_up >= first.last_seen_up
    assert len(records.list_services(db)) == 1


def test_a_beaten_service_is_up_and_down_after_seventy_seconds_without_a_beat(db: Database) -> None:
    db.heartbeat(HOST)
    beat = the_service(db).last_seen_up
    down_time = service_down_time()
    assert service_json(the_service(db), beat + timedelta(seconds=5), down_time)["state"] == "up"
    assert service_json(the_service(db), beat + timedelta(seconds=70), down_time)["state"] == "down"


def test_forced_down_is_down_at_once_and_lifting_it_is_up_again(db: Database) -> None:
    db.heartbeat(HOST)
    now = the_service(db).last_seen_up
    records.set_forced_down(db, HOST, True)
    assert service_json(the_service(db), now, 60)["state"] == "down"
    records.set_forced_down(db, HOST, False)
    assert service_json(the_service(db), now, 60)["state"] == "up"


def test_disable_with_a_reason_and_enable_clears_it(db: Database) -> None:
    db.heartbeat(HOST)
    records.set_disabled(db, HOST, True, "maintenance")
    doc = service_json(the_service(db), T0, 60)
    assert (doc["status"], doc["disabled_reason"]) == ("disabled", "maintenance")
    records.set_disabled(db, HOST, False)
    doc = service_json(the_service(db), T0, 60)
    assert (doc["status"], doc["disabled_reason"]) == ("enabled", None)


def test_setting_an_unknown_service_says_so(db: Database) -> None:
    with pytest.raises(records.ServiceNotFound, match="no nova-compute service on host 'nowhere'"):
        records.set_disabled(db, "nowhere", True)


def test_the_automatic_disable_never_replaces_an_operators(db: Database) -> None:
    db.heartbeat(HOST)
    records.set_disabled(db, HOST, True, "maintenance")
    assert not records.auto_disable(db, HOST, records.LIBVIRT_LOST_REASON)
    assert not records.auto_enable(db, HOST)
    assert the_service(db).disabled_reason == "maintenance"


def test_the_automatic_disable_is_lifted_by_the_automatic_enable(db: Database) -> None:
    db.heartbeat(HOST)
    assert records.auto_disable(db, HOST, records.LIBVIRT_LOST_REASON)
    assert (the_service(db).disabled, the_service(db).disabled_reason) == (True, "AUTO: Connection to libvirt lost")
    assert records.auto_enable(db, HOST)
    assert (the_service(db).disabled, the_service(db).disabled_reason) == (False, None)


# --- the commands --------------------------------------------------------------------------------


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def recovered(tmp_path: Path) -> str:
    """A database right after `run` recovered the clean-host scenario."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert invoke("db", "upgrade", "--db", url).exit_code == 0
    assert invoke("scenario", "load", str(ROOT / "fixtures" / "clean-host"), "--db", url).exit_code == 0
    assert invoke("run", "--scenario", str(ROOT / "fixtures" / "clean-host"), "--db", url).exit_code == 0
    return url


def listed(url: str, *args: str) -> list[dict]:
    result = invoke("services", "--json", "--db", url, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_right_after_run_the_host_is_up_with_last_seen_up_set(recovered: str) -> None:
    [service] = listed(recovered, "--host", HOST)
    assert (service["host"], service["binary"], service["status"], service["state"]) == (
        HOST, "nova-compute", "enabled", "up")
    assert service["last_seen_up"] is not None and service["zone"] is None


def test_without_a_beat_for_seventy_seconds_the_host_is_down(recovered: str) -> None:
    db = migrated_database(recovered)
    try:
        aged = the_service(db).last_seen_up - timedelta(seconds=70)
        with db.transaction("age the heartbeat") as conn:
            conn.execute(update(Service).values(last_seen_up=aged))
    finally:
        db.close()
    assert listed(recovered)[0]["state"] == "down"
    assert listed(recovered, "--service-down-time", "90")[0]["state"] == "up"


def test_services_set_round_trips(recovered: str) -> None:
    result = invoke("services", "set", "--host", HOST, "--disable", "--reason", "disk swap", "--db", recovered)
    assert result.exit_code == 0, result.output
    assert "disabled (disk swap)" in result.output
    service = listed(recovered)[0]
    assert (service["status"], service["disabled_reason"], service["state"]) == ("disabled", "disk swap", "up")
    assert invoke("services", "set", "--host", HOST, "--forced-down", "--db", recovered).exit_code == 0
    assert listed(recovered)[0]["state"] == "down"
    assert invoke("services", "set", "--host", HOST, "--enable", "--no-forced-down", "--db", recovered).exit_code == 0
    service = listed(recovered)[0]
    assert (service["status"], service["disabled_reason"], service["state"]) == ("enabled", None, "up")


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "nowhere", "--disable"], "no nova-compute service on host 'nowhere'"),
    (["--host", HOST], "nothing to set"),
    (["--host", HOST, "--enable", "--reason", "x"], "--reason goes with --disable only"),
])
def test_services_set_refuses_with_one_line(recovered: str, args: list[str], message: str) -> None:
    result = invoke("services", "set", *args, "--db", recovered)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_the_listing_opens_the_database_read_only(recovered: str, tmp_path: Path) -> None:
    before = (tmp_path / "db.sqlite").stat().st_mtime_ns
    listed(recovered)
    assert (tmp_path / "db.sqlite").stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]


def test_the_table_shows_the_state(recovered: str) -> None:
    result = invoke("services", "--db", recovered)
    assert result.exit_code == 0
    assert "nova-compute" in result.output and " up " in result.output

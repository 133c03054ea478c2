"""A service timestamp SQLite holds as text that is no naive UTC time: one warning line, never a traceback.

SQLite keeps any text in a DATETIME column. A `last_seen_up` that does not parse, or that carries a
UTC offset (Nova writes naive UTC), is read as missing: the host's downtime is unknown, `plan`,
`run`, `services` and the `agent` say so in one warning line, and the host is still recovered.
Real processes on the libvirt test driver and a real SQLite file.
"""

import json
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from recovery.core.servicegroup import host_down_seconds, is_up
from recovery.db import ServiceRow
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES
from tests.support.processes import notified_agent

BAD_VALUES = ["garbage", "2026-12-04 10:00:00+02:00", "2026-12-04T10:00:00Z"]


def compute_recover(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([CONSOLE_SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120)


def host_with_service_heartbeat(tmp_path: Path, value: str) -> tuple[Path, str]:
    """The power-outage scenario loaded into a new SQLite file whose service row's last_seen_up is `value`."""
    scenario = tmp_path / "scenario"
    shutil.copytree(FIXTURES / "power-outage", scenario)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        assert compute_recover(*command, "--db", url).returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("UPDATE services SET last_seen_up = ?, updated_at = ?",
                            (value, "2026-12-04 09:00:00")).rowcount == 1
    return scenario, url


def assert_one_warning(stderr: str, value: str) -> None:
    assert "Traceback" not in stderr
    warnings = [line for line in stderr.splitlines() if "downtime unknown" in line]
    assert len(warnings) == 1, stderr
    assert "last_seen_up" in warnings[0] and repr(value) in warnings[0]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_plan_and_run_warn_once_and_recover_the_host(tmp_path, value):
    scenario, url = host_with_service_heartbeat(tmp_path, value)
    plan = compute_recover("plan", "--scenario", scenario, "--db", url, "--resume-guests-state-on-host-boot", "--json")
    assert plan.returncode == 0, plan.stderr
    assert_one_warning(plan.stderr, value)
    assert json.loads(plan.stdout)["host_down_seconds"] is None  # not taken from updated_at instead

    run = compute_recover("run", "--scenario", scenario, "--db", url, "--resume-guests-state-on-host-boot", "--json",
                          "--stop-timeout", "1")
    assert run.returncode == 0, run.stderr
    assert_one_warning(run.stderr, value)
    report = json.loads(run.stdout)
    assert report["host_down_seconds"] is None
    assert report["totals"]["instances"] > 0 and report["totals"].get("failed", 0) == 0
    assert {item["outcome"] for item in report["instances"]} == {"ok"}


@pytest.mark.parametrize("value", BAD_VALUES)
def test_services_lists_the_service_with_its_heartbeat_unknown(tmp_path, value):
    _, url = host_with_service_heartbeat(tmp_path, value)
    listed = compute_recover("services", "--db", url, "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert_one_warning(listed.stderr, value)
    [service] = json.loads(listed.stdout)
    assert (service["last_seen_up"], service["state"], service["updated_at"]) == (None, "down", "2026-12-04T09:00:00")


def test_the_agent_recovers_the_host_and_keeps_running(tmp_path):
    scenario, url = host_with_service_heartbeat(tmp_path, "garbage")
    with notified_agent(tmp_path, "--scenario", scenario, "--db", url, "--resume-guests-state-on-host-boot",
                        "--stop-timeout", "1") as agent:
        agent.wait_for("READY=1")  # sent once the recovery is done
        out, err = agent.stop()
    assert agent.returncode == 0, err
    assert_one_warning(err, "garbage")
    assert "failed 0" in out


def service(**columns) -> ServiceRow:
    base = dict(id=1, host="compute-1", binary="nova-compute", topic="compute", report_count=1, disabled=False,
                disabled_reason=None, forced_down=False, last_seen_up=None, updated_at=None)
    return ServiceRow(**base | columns)


def test_an_unreadable_heartbeat_is_unknown_never_an_older_columns_time():
    now, earlier = datetime(2026, 12, 4, 12), datetime(2026, 12, 4, 11, 59, 30)
    unreadable = service(updated_at=earlier, unreadable=("last_seen_up",))
    assert host_down_seconds(unreadable, now) is None
    assert not is_up(unreadable, now, 60)
    assert host_down_seconds(service(updated_at=earlier), now) == 30
    assert is_up(service(updated_at=earlier), now, 60)

"""The host boot routine against real PostgreSQL 15 and MariaDB servers (a fleet's shared database).

The same outage as on SQLite must give the same rows: compare-and-swap writes,
bulk reads, the journal and `explain` all go through each server here.
"""

import json

from click.testing import CliRunner

from recovery.cli import cli
from tests.support.in_process import load_records
from tests.support.paths import FIXTURES, U
from tests.support.rows import rows


def keyed(url: str, sql: str) -> dict[str, dict]:
    """The rows of `sql` by their column row_key."""
    return {row["row_key"]: row for row in rows(url, sql)}


def test_power_outage_recovers_the_same_on_a_database_server(server_database_url):
    runner = CliRunner()
    load_records(server_database_url, FIXTURES / "power-outage")
    result = runner.invoke(cli, ["run", "--scenario", str(FIXTURES / "power-outage"), "--db", server_database_url,
                                 "--resume-guests-state-on-host-boot", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {i["outcome"] for i in report["instances"]} == {"ok"}

    instances = keyed(
        server_database_url, "SELECT uuid AS row_key, vm_state, task_state, power_state, deleted FROM instances"
    )
    assert (instances[U("03")]["vm_state"], instances[U("03")]["task_state"], instances[U("03")]["power_state"]) == (
        "active", None, 1)
    assert (instances[U("08")]["vm_state"], instances[U("08")]["task_state"]) == ("error", None)
    assert instances[U("10")]["deleted"] != 0 and instances[U("10")]["vm_state"] == "deleted"
    assert instances[U("11")]["deleted"] != 0
    assert (instances[U("12")]["vm_state"], instances[U("12")]["power_state"]) == ("stopped", 4)
    assert instances[U("20")]["vm_state"] == "error"

    migrations = keyed(server_database_url, "SELECT instance_uuid AS row_key, status FROM migrations")
    assert migrations[U("18")]["status"] == "completed"
    assert migrations[U("17")]["status"] == "error"

    journal = keyed(server_database_url, "SELECT instance_uuid AS row_key, outcome FROM recovery_journal")
    assert set(journal) == {i["uuid"] for i in report["instances"]}

    explained = runner.invoke(cli, ["explain", U("03"), "--db", server_database_url, "--json"])
    assert explained.exit_code == 0, explained.output
    [latest] = json.loads(explained.stdout)["runs"]
    assert [step["rule"] for step in latest["path"]] == ["retry_reboot"]
    assert latest["actions"][0] == {"name": "reboot", "type": "hard", "outcome": "ok", "error": None}

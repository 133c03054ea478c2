"""A database URL's own options are merged with compute-recover's guards, never in their place.

On the real PostgreSQL cluster the suite starts: a URL carrying `?options=` (the common way to set
`search_path`) still gets a read-only session on read-only paths and the --db-timeout limits; a
URL whose options would set those guards itself is refused in one line, before any connection.
"""

import subprocess
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from recovery.db import DatabaseError, open_database
from recovery.db.engine import guarded_settings
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.pg_cluster import PG_PASSWORD
from tests.support.scenarios import write_scenario

HOST = "compute-1"
SEARCH_PATH = "-csearch_path=public"


def with_options(url: str, options: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(options, safe='')}"


def settings(url: str, *, read_only: bool, timeout: float) -> dict[str, str]:
    db = open_database(url, read_only=read_only, timeout=timeout)
    try:
        with db.engine.connect() as conn:
            names = ("default_transaction_read_only", "statement_timeout", "lock_timeout", "search_path")
            return {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in names}
    finally:
        db.close()


def test_a_url_with_options_keeps_the_read_only_session_and_the_time_limits(pg_database_url):
    url = with_options(pg_database_url, SEARCH_PATH)
    assert "options=-csearch_path%3Dpublic" in url
    assert settings(url, read_only=True, timeout=2) == {
        "default_transaction_read_only": "on", "statement_timeout": "2s", "lock_timeout": "2s", "search_path": "public",
    }
    assert settings(url, read_only=False, timeout=3) == {
        "default_transaction_read_only": "off", "statement_timeout": "3s", "lock_timeout": "3s",
        "search_path": "public",
    }


def test_a_url_with_options_cannot_write_on_a_read_only_path_and_its_calls_are_bounded(pg_database_url):
    db = open_database(with_options(pg_database_url, SEARCH_PATH), read_only=True, timeout=1)
    try:
        with db.engine.connect() as conn, pytest.raises(DBAPIError, match="read-only transaction"):
            conn.execute(text("CREATE TABLE written (id integer)"))
        with db.engine.connect() as conn, pytest.raises(DBAPIError, match="statement timeout"):
            conn.execute(text("SELECT pg_sleep(5)"))
    finally:
        db.close()


@pytest.mark.parametrize("options", [
    "-c default_transaction_read_only=off",
    "-cdefault_transaction_read_only=off",
    "--default-transaction-read-only=off",
    "-c search_path=public -c statement_timeout=0",
    "-sc LOCK_TIMEOUT=0",
    "-c transaction_read_only=off",
])
def test_a_url_whose_options_would_lift_a_guard_is_refused_in_one_line(pg_database_url, options):
    with pytest.raises(DatabaseError) as refused:
        open_database(with_options(pg_database_url, options), read_only=True)
    message = str(refused.value)
    assert "\n" not in message and PG_PASSWORD not in message
    assert "which compute-recover sets itself" in message


def test_the_options_are_read_as_the_server_reads_them():
    assert guarded_settings(r"-c search_path=a\ -c\ statement_timeout=0") == []  # one escaped value
    assert guarded_settings("-c search_path=public") == []
    assert guarded_settings("-B 8 -c statement_timeout=0") == ["statement_timeout"]
    assert guarded_settings("-c statement_timeout") == ["statement_timeout"]


def test_plan_and_a_refused_url_through_the_command(tmp_path, pg_database_url):
    """What the operator sees: `plan` works with `?options=`, a guard-lifting URL is one line, exit 2."""
    write_scenario(tmp_path / "scenario", 5, host=HOST)
    for command in (("db", "upgrade"), ("scenario", "load", tmp_path / "scenario")):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", pg_database_url], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    plan = [CONSOLE_SCRIPT, "plan", "--scenario", tmp_path / "scenario", "--resume-guests-state-on-host-boot", "--db"]
    planned = subprocess.run([*plan, with_options(pg_database_url, SEARCH_PATH)], capture_output=True, text=True)
    assert planned.returncode == 0, planned.stderr
    refused = subprocess.run([*plan, with_options(pg_database_url, "-c default_transaction_read_only=off")],
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stdout == "" and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "default_transaction_read_only" in refused.stderr and PG_PASSWORD not in refused.stderr


def test_a_mariadb_url_may_tighten_its_time_limits_never_lift_them(mariadb_database_url):
    for lifting in ("read_timeout=0", "write_timeout=never", "connect_timeout=-1"):
        with pytest.raises(DatabaseError, match="would lift the time limit") as refused:
            open_database(f"{mariadb_database_url}&{lifting}", read_only=True)
        assert "\n" not in str(refused.value)
    db = open_database(f"{mariadb_database_url}&read_timeout=1", read_only=True, timeout=30)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT @@session.tx_read_only")).scalar_one() == 1
            with pytest.raises(DBAPIError, match=r"Lost connection|timed out"):
                conn.execute(text("SELECT SLEEP(4)"))
    finally:
        db.close()

"""The host lock as a lease: verified on the lock's own session, lost when that session ends.

On the real servers the suite starts: PostgreSQL sessions ended by `pg_terminate_backend` (and kept
through `idle_session_timeout`), MariaDB connections ended by `KILL`. A lost lease is said by
`verify`, and it is lost for real: another run takes the lock at once.
"""

import struct
import time

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from recovery.db import open_database
from recovery.db.lock import LeaseLost, _key, _mysql_name, host_lock
from tests.support.databases import migrated_database

HOSTS = ["compute-1", "compute-2", "compute-9", "compute-11"]


def test_the_hosts_cover_negative_and_positive_postgresql_keys():
    keys = [struct.unpack(">q", _key(host))[0] for host in HOSTS]
    assert min(keys) < 0 < max(keys)


def end_lock_session(url: str, host: str) -> None:
    """End, from outside, the server session that holds `host`'s lock."""
    server = make_url(url)
    if server.get_backend_name() == "postgresql":
        key = struct.unpack(">q", _key(host))[0]
        with psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                             dbname=server.database, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = %s", (key,)).fetchall()
        assert ended == [(True,)]
        return
    admin = pymysql.connect(host=server.host, port=server.port, user=server.username, password=server.password)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT IS_USED_LOCK(%s)", (_mysql_name(host),))
            [(holder,)] = cursor.fetchall()
            assert holder is not None
            cursor.execute(f"KILL {int(holder)}")
    finally:
        admin.close()


@pytest.mark.parametrize("host", HOSTS)
def test_a_held_lease_verifies_on_every_server(server_database_url, host):
    migrated_database(server_database_url).close()
    db = open_database(server_database_url)
    try:
        with host_lock(db, host, timeout=0) as lease:
            lease.verify()
            lease.verify()
    finally:
        db.close()


def test_a_lease_whose_session_is_ended_is_lost_and_another_run_can_take_the_lock(server_database_url):
    migrated_database(server_database_url).close()
    one, two = open_database(server_database_url), open_database(server_database_url)
    try:
        with host_lock(one, "compute-1", timeout=0) as lease:
            lease.verify()
            end_lock_session(server_database_url, "compute-1")
            with host_lock(two, "compute-1", timeout=5):  # the danger: the lock is free for a second run
                pass
            with pytest.raises(LeaseLost, match="lost the lock of host compute-1: its session on") as lost:
                lease.verify()
            assert "s3cret" not in str(lost.value) and "\n" not in str(lost.value)
            with pytest.raises(LeaseLost):  # and stays lost
                lease.verify()
    finally:
        one.close()
        two.close()


def test_an_sqlite_lease_is_the_kernels_and_always_holds(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrated_database(url).close()
    db = open_database(url)
    try:
        with host_lock(db, "compute-1", timeout=0) as lease:
            lease.verify()
    finally:
        db.close()


def test_idle_session_timeout_does_not_end_the_lock_session(pg_database_url):
    migrated_database(pg_database_url).close()
    server = make_url(pg_database_url)
    with psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                         dbname=server.database, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{server.database}" SET idle_session_timeout = 1000')
    db = open_database(pg_database_url)
    try:
        with host_lock(db, "compute-1", timeout=0) as lease:
            with db.engine.connect() as conn:  # the database's other sessions do get the limit
                assert conn.exec_driver_sql("SHOW idle_session_timeout").scalar() == "1s"
            with psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                                 dbname=server.database, autocommit=True) as watcher:
                idle = db.engine.connect()  # another session of the database's, left idle (not in a transaction)
                pid = idle.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                idle.commit()
                deadline = time.monotonic() + 30
                while watcher.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                    assert time.monotonic() < deadline, "the limit never ended an idle session"
                    time.sleep(0.1)  # the watcher is never idle that long
                idle.invalidate()
                lease.verify()  # the lock's session, idle as long as the one that was ended, was not
    finally:
        db.close()

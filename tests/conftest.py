"""Shared fixtures: real databases only — an SQLite file per test, and a throwaway PostgreSQL
cluster and MariaDB server per session (started from the Debian server binaries, never a mock)."""

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pymysql
import pytest
from sqlalchemy.engine import make_url

from tests.support.parts import missing as missing_part
from tests.support.pg_cluster import ClusterError, ClusterUnavailable, PostgresCluster
from tests.support.ports import free_port

MARIADB_USER = "compute_recover"
MARIADB_PASSWORD = "s3cret-maria-password"
"""The MariaDB test account signs in over TCP with a password, as Nova's does, so URLs carry it
and every message must hide it."""

MARIADB_START_TIMEOUT_S = 60
"""How long the MariaDB server may take to accept connections on a busy 2-core machine."""

_database_names = itertools.count()


@contextmanager
def _started_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL cluster, removed afterwards. Fails when the server binaries are
    absent; any other start-up failure is an error."""
    try:
        cluster = PostgresCluster()
    except ClusterUnavailable as missing:
        missing_part(str(missing))
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        cluster.start()
        yield cluster
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    finally:
        cluster.remove()


def _server_workdir(prefix: str, account: str) -> tuple[Path, str | None]:
    """A fresh temp dir for a throwaway server and the account to run it as: when we are root
    (both servers refuse to run as root) the dir belongs to `account`, else the server runs as
    us (None). Fails when we are root and `account` does not exist."""
    if os.geteuid() != 0:
        return Path(tempfile.mkdtemp(prefix=prefix)), None
    try:
        user = pwd.getpwnam(account)
    except KeyError:
        missing_part(f"running as root and there is no '{account}' user to run the server as")
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    return workdir, account


def _failed(command: object, returncode: int | None, output: str, log: Path) -> None:
    detail = output + (log.read_text(errors="replace") if log.exists() else "")
    pytest.fail(f"{command} failed ({returncode}):\n{detail}", pytrace=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of the `postgres` database on the session's cluster (password auth on)."""
    with _started_cluster() as cluster:
        yield cluster.url()


@pytest.fixture
def private_pg_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL cluster of the test's own, to stop, restart or freeze (SIGSTOP)."""
    with _started_cluster() as cluster:
        yield cluster


@pytest.fixture
def pg_database_url(pg_url: str) -> str:
    """URL of a new, empty database on the session's cluster (one per test, so tests never share rows)."""
    server = make_url(pg_url)
    name = f"test_{next(_database_names)}"
    connection = dict(host=server.host, port=server.port, user=server.username, password=server.password)
    with psycopg.connect(dbname=server.database, autocommit=True, **connection) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL (no database selected) of a fresh MariaDB server on a free loopback port with a private
    socket, run as the `mysql` user when we are root; its test account signs in with a password.
    Stopped and removed at session end. Fails when the server binaries are absent; any other
    start-up failure is an error."""
    install_db, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
    if install_db is None or server is None:
        missing_part("MariaDB server binaries (mariadb-install-db, mariadbd) not found: apt-get install "
                     "mariadb-server")
    workdir, account = _server_workdir("compute-recover-mariadb-", "mysql")
    run_as = [f"--user={account}"] if account else []
    data, log, port = workdir / "data", workdir / "server.log", free_port()
    small = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]
    init = workdir / "init.sql"  # run by the server at start-up: the only way in is the password account
    init.write_text(
        f"CREATE USER '{MARIADB_USER}'@'127.0.0.1' IDENTIFIED BY '{MARIADB_PASSWORD}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{MARIADB_USER}'@'127.0.0.1' WITH GRANT OPTION;\n"
    )
    init.chmod(0o644)
    installed = subprocess.run(
        [install_db, "--no-defaults", *run_as, f"--datadir={data}", "--skip-test-db", "--skip-name-resolve", *small],
        capture_output=True, text=True,
    )  # fmt: skip
    if installed.returncode != 0:
        shutil.rmtree(workdir, ignore_errors=True)
        _failed("mariadb-install-db", installed.returncode, installed.stdout + installed.stderr, log)
    process = subprocess.Popen(
        [
            server, "--no-defaults", *run_as, f"--datadir={data}", f"--socket={workdir / 'mysqld.sock'}",
            f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={workdir / 'mysqld.pid'}",
            f"--log-error={log}", f"--tmpdir={workdir}", "--skip-name-resolve", f"--init-file={init}",
            "--character-set-server=utf8mb4", "--innodb-flush-log-at-trx-commit=0", *small,
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_mariadb(process, port, log)
        yield f"mysql+pymysql://{MARIADB_USER}:{MARIADB_PASSWORD}@127.0.0.1:{port}/?charset=utf8mb4"
    finally:
        process.terminate()
        try:
            process.wait(timeout=MARIADB_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_mariadb(process: subprocess.Popen, port: int, log: Path) -> None:
    """Return once the test account can sign in; fail with the server log if the server exits
    or does not answer in time."""
    deadline = time.monotonic() + MARIADB_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            _failed("mariadbd", process.returncode, "", log)
        try:
            pymysql.connect(host="127.0.0.1", port=port, user=MARIADB_USER, password=MARIADB_PASSWORD).close()
            return
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline:
                _failed("mariadbd", "still starting", f"no connection after {MARIADB_START_TIMEOUT_S}s\n", log)
            time.sleep(0.1)


@pytest.fixture
def mariadb_database_url(mariadb_url: str) -> str:
    """URL of a new, empty utf8mb4 database on the session's MariaDB server (one per test)."""
    server = make_url(mariadb_url)
    name = f"test_{next(_database_names)}"
    admin = pymysql.connect(host=server.host, port=server.port, user=server.username, password=server.password)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()
    return server.set(database=name).render_as_string(hide_password=False)


SERVER_DATABASE_FIXTURES = {"postgresql": "pg_database_url", "mariadb": "mariadb_database_url"}
"""The fixture giving a fresh database on each database server the suite starts."""


@pytest.fixture(params=list(SERVER_DATABASE_FIXTURES))
def server_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each database server the suite starts: PostgreSQL, then MariaDB."""
    return request.getfixturevalue(SERVER_DATABASE_FIXTURES[request.param])


@pytest.fixture(params=["sqlite", *SERVER_DATABASE_FIXTURES])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind: an SQLite file, a PostgreSQL database, then a
    MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'compute-recover.sqlite'}"
    return request.getfixturevalue(SERVER_DATABASE_FIXTURES[request.param])


"""Shared fixtures: real databases only — an SQLite file per test and a throwaway PostgreSQL
cluster per session (started with the server binaries, never a mock)."""

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

PG_PASSWORD = "s3cret-pg-password"
"""The test cluster's superuser password: password auth is on, so URLs must carry it and every
message must hide it."""

_database_names = itertools.count()


def _pg_bindir() -> Path | None:
    """The newest Debian-installed PostgreSQL server binaries, else initdb on PATH."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda initdb: int(initdb.parent.parent.name) if initdb.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of the `postgres` database on a fresh cluster on a free loopback port, run as the
    `postgres` user when we are root (initdb refuses root); stopped and removed at session end.
    Skips when the server binaries are absent; any other start-up failure is an error."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    as_server_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="compute-recover-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(workdir, account.pw_uid, account.pw_gid)
        as_server_user = ["runuser", "-u", "postgres", "--"]
    data, port = workdir / "data", _free_port()
    (workdir / "pwfile").write_text(PG_PASSWORD + "\n")

    def run(*command: object) -> None:
        done = subprocess.run([*as_server_user, *map(str, command)], capture_output=True, text=True)
        if done.returncode != 0:
            log = workdir / "server.log"
            detail = done.stderr + (log.read_text() if log.exists() else "")
            pytest.fail(f"{command[0]} failed ({done.returncode}):\n{detail}", pytrace=False)

    server_options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={workdir} -c fsync=off"
    try:
        run(
            bindir / "initdb", "-D", data, "-U", "postgres", f"--pwfile={workdir / 'pwfile'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "--encoding=UTF8", "--no-sync",
        )  # fmt: skip
        run(bindir / "pg_ctl", "-D", data, "-l", workdir / "server.log", "-o", server_options, "-w", "start")
        yield f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pg_database_url(pg_url: str) -> str:
    """URL of a new, empty database on the session's cluster (one per test, so tests never share rows)."""
    server = make_url(pg_url)
    name = f"test_{next(_database_names)}"
    connection = dict(host=server.host, port=server.port, user=server.username, password=server.password)
    with psycopg.connect(dbname=server.database, autocommit=True, **connection) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'compute-recover.sqlite'}"
    return request.getfixturevalue("pg_database_url")


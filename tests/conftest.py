"""Shared fixtures: real databases only — an SQLite file per test and a throwaway PostgreSQL
cluster per session (started with the server binaries, never a mock)."""

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from pg_cluster import ClusterError, ClusterUnavailable, PostgresCluster, free_port
from sqlalchemy.engine import make_url

_database_names = itertools.count()

_free_port = free_port
"""A free loopback port, for fixtures that start other servers."""


@contextmanager
def _started_cluster() -> Iterator[PostgresCluster]:
    """A started PostgreSQL cluster, removed afterwards. Skips when the server binaries are
    absent; any other start-up failure is an error."""
    try:
        cluster = PostgresCluster()
    except ClusterUnavailable as missing:
        pytest.skip(str(missing))
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        cluster.start()
        yield cluster
    except ClusterError as error:
        pytest.fail(str(error), pytrace=False)
    finally:
        cluster.remove()


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'compute-recover.sqlite'}"
    return request.getfixturevalue("pg_database_url")


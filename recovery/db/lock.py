"""One recovery per host at a time, enforced where every machine sees it: in the database.

PostgreSQL: a session advisory lock; MySQL/MariaDB: GET_LOCK; SQLite: an open-file-description
byte-range lock on the database file itself, which every process on the machine sees. Each is
keyed by host, so runs for different hosts never wait for each other, and each is released by
the database or the kernel when its holder dies (kill -9 included), so it can never go stale.

A server's lock lives on one session, and a session can end under a live run (a pooler, a
firewall dropping an idle connection, `pg_terminate_backend`, `KILL`): the lock is then free for
a second run. So the holder gets a `HostLease` to verify before each batch of actions, on the
lock's own session (bounded by the watchdog), and the session is kept from timing out while idle.
"""

import fcntl
import hashlib
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from recovery.core.errors import RecoveryError
from recovery.db.engine import DatabaseError, Watchdog, one_line
from recovery.db.store import Database, DatabaseFailure

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1

SQLITE_LOCK_BASE = 1 << 40
"""Byte offset of the host locks in an SQLite file: far above SQLite's own lock bytes (1 GiB)."""


class LockTimeout(RecoveryError):
    """Another recovery of the host held the lock for the whole --lock-timeout."""


class LeaseLost(DatabaseFailure):
    """The host lock is no longer held (its session ended): the run must start no more actions."""


class HostLease:
    """The held host lock, verified on demand: `verify` raises LeaseLost once it is not held."""

    def verify(self) -> None:
        """A file lock (SQLite) is the kernel's and cannot be lost while the process lives."""


class _SessionLease(HostLease):
    """A server's lock, held by one session: asking that session whether it still holds it."""

    def __init__(self, conn: Connection, held: str, key: dict[str, Any], host: str, db: Database) -> None:
        self._conn, self._held, self._key, self._host, self._db = conn, held, key, host, db
        self._guard = threading.Lock()
        self._lost: str | None = None

    def verify(self) -> None:
        with self._guard:
            if self._lost is None:
                self._lost = self._ask()
            if self._lost is not None:
                raise LeaseLost(self._lost)

    def _ask(self) -> str | None:
        """Why the lock is lost, or None while held. A session that fails while the database still
        answers was ended under the run; when the database does not answer either, the database
        failed (DatabaseFailure, as any call of the run would say)."""
        session = self._conn.connection.dbapi_connection
        try:
            with Watchdog.shared().watching(session, self._db.timeout):
                held = self._conn.execute(text(self._held), self._key).scalar()
                self._conn.commit()
        except SQLAlchemyError as error:
            with self._db.reading(f"verify the lock of host {self._host}") as conn:
                conn.execute(text("SELECT 1"))
            return f"lost the lock of host {self._host}: its session on {self._db.masked_url} ended " \
                   f"({one_line(error, self._db.url)})"
        if not held:
            return f"lost the lock of host {self._host}: its session on {self._db.masked_url} no longer holds it"
        return None


def _key(host: str) -> bytes:
    return hashlib.blake2b(f"compute-recover host {host}".encode(), digest_size=8).digest()


@contextmanager
def host_lock(db: Database, host: str, timeout: float) -> Iterator[HostLease]:
    """Hold the host's recovery lock for the block; LockTimeout after `timeout` seconds of waiting.
    The lease's `verify` takes at most the database's time limit (--db-timeout)."""
    backend = db.url.get_backend_name()
    if backend == "sqlite":
        with _file_lock(db, host, timeout):
            yield HostLease()
        return
    with db.reading(f"open the lock session for {host}") as conn:
        watchdog, session = Watchdog.shared(), conn.connection.dbapi_connection
        if backend == "postgresql":
            acquire, release, held = _pg_lock, "SELECT pg_advisory_unlock(:key)", _PG_HELD
            key: dict[str, Any] = {"key": struct.unpack(">q", _key(host))[0]}
        elif backend in ("mysql", "mariadb"):
            acquire, release, held = _mysql_lock, "SELECT RELEASE_LOCK(:key)", _MYSQL_HELD
            key = {"key": _mysql_name(host)}
        else:
            raise DatabaseError(f"no host lock is implemented for {backend} databases: use SQLite, "
                                "PostgreSQL or MySQL/MariaDB")
        with watchdog.suspended(session):  # waiting for the lock may take up to `timeout`
            if not acquire(conn, host, timeout):
                raise LockTimeout(f"another recovery of host {host} held the lock for {timeout:g} s")
        try:
            _never_idle_out(conn, backend)
            with watchdog.suspended(session):  # held, idle, for the whole run on purpose
                yield _SessionLease(conn, held, key, host, db)
        finally:
            _release(conn, release, key)


_PG_HELD = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :key AND objsubid = 1)")
"""Whether this session holds the advisory lock of the (bigint) key: pg_locks shows its high and
low 32 bits as classid and objid."""
_MYSQL_HELD = "SELECT IS_USED_LOCK(:key) = CONNECTION_ID()"


def _never_idle_out(conn: Connection, backend: str) -> None:
    """The lock's session sits idle between checks, maybe for a whole tier timeout: keep the server's
    idle limits (PostgreSQL's idle_session_timeout, MySQL's wait_timeout) from ending it."""
    if backend == "postgresql":
        if int(conn.execute(text("SHOW server_version_num")).scalar() or 0) >= 140000:
            conn.execute(text("SET idle_session_timeout = 0"))
    else:
        conn.execute(text("SET SESSION wait_timeout = 31536000"))  # MySQL's and MariaDB's largest: a year
    conn.commit()


def _release(conn: Connection, statement: str, key: dict[str, Any]) -> None:
    """Watched again, so a frozen server cannot hold the run here. A session that is gone
    (server stopped, connection severed) took its lock with it: the server releases a dead
    session's locks, so there is nothing left to release and the run's report still goes out."""
    try:
        conn.execute(text(statement), key)
        conn.commit()
    except SQLAlchemyError:
        pass


def _pg_lock(conn: Connection, host: str, timeout: float) -> bool:
    key = struct.unpack(">q", _key(host))[0]
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        if conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            conn.commit()
            return True
        conn.commit()
        if time.monotonic() >= deadline:
            return False
        if not waiting:
            waiting = True
            _log_wait(host, timeout)
        time.sleep(POLL_INTERVAL_S)


def _mysql_name(host: str) -> str:
    return "compute-recover:" + _key(host).hex()  # GET_LOCK names are at most 64 characters


def _log_wait(host: str, timeout: float) -> None:
    log.info("another recovery of host %s holds its lock: waiting up to %g s (--lock-timeout)", host, timeout)


def _mysql_lock(conn: Connection, host: str, timeout: float) -> bool:
    log.debug("taking the lock of host %s (GET_LOCK waits up to %g s)", host, timeout)
    got = conn.execute(text("SELECT GET_LOCK(:key, :timeout)"), {"key": _mysql_name(host), "timeout": timeout})
    return got.scalar() == 1


_SPARE_DESCRIPTORS: dict[str, list[int]] = {}
"""Descriptors of database files, kept open once used and handed out again: closing any descriptor
of a file drops every POSIX lock this process holds on it, SQLite's own included (SQLite keeps its
descriptors open for the same reason). Each holder gets a descriptor of its own, because locks of
one open file description never conflict with each other."""
_SPARE_GUARD = threading.Lock()


@contextmanager
def _descriptor(db: Database, host: str) -> Iterator[int]:
    real = os.path.realpath(db.url.database)
    with _SPARE_GUARD:
        spare = _SPARE_DESCRIPTORS.setdefault(real, [])
        fd = spare.pop() if spare else None
    if fd is None:
        try:
            fd = os.open(real, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:  # a read-only file or file system: a run could not write anyway
            raise DatabaseFailure(f"database {db.masked_url} failed to take the lock for {host}: "
                                  f"{error.strerror}") from None
    try:
        yield fd
    finally:
        with _SPARE_GUARD:
            _SPARE_DESCRIPTORS[real].append(fd)


@contextmanager
def _file_lock(db: Database, host: str, timeout: float) -> Iterator[None]:
    """An exclusive lock on one byte of the database file, chosen by host. Open-file-description
    locks (not POSIX process locks) so that SQLite closing its own descriptors of the same file
    in this process can never drop it."""
    offset = SQLITE_LOCK_BASE + int.from_bytes(_key(host)[:4], "big")
    with _descriptor(db, host) as fd:
        deadline = time.monotonic() + timeout
        if not _try_lock(fd, offset, fcntl.F_WRLCK):
            _log_wait(host, timeout)
        while not _try_lock(fd, offset, fcntl.F_WRLCK):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"another recovery of host {host} held the lock for {timeout:g} s")
            time.sleep(POLL_INTERVAL_S)
        try:
            yield
        finally:
            _try_lock(fd, offset, fcntl.F_UNLCK)


def _try_lock(fd: int, offset: int, kind: Any) -> bool:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0, as OFD locks require).
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)
    except BlockingIOError:
        return False
    except PermissionError:  # EACCES: some systems report a held lock this way
        return False
    return True

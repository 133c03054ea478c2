"""Opening a database: URL, driver options, time limits, read-only sessions, file permissions.

Opening never creates anything: not a file, not a table. A missing SQLite file is an error that
names the command which creates it (`compute-recover db upgrade`), and read-only callers (dry run,
plan, explain) get a session the database itself keeps from writing. Every call is bounded by a
time limit, so a frozen or unreachable server fails the call instead of hanging the run.
"""

import contextlib
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import QueuePool

from recovery.core.errors import RecoveryError
from recovery.db.urls import DatabaseUrlError, driver_advice, masked, parse_database_url, scrub, sqlite_path
from recovery.files import create_private, make_private

DB_ENV = "COMPUTE_RECOVER_DB"
"""Environment variable naming the database: an SQLAlchemy URL or a path to an SQLite file."""

FIX = f"check --db / {DB_ENV}"

DEFAULT_DB_PATH = "compute-recover.sqlite"
"""SQLite file (relative to the working directory) used when neither --db nor $COMPUTE_RECOVER_DB
names a database, so the demo needs no server."""


class DatabaseError(RecoveryError):
    """The database cannot be used; the message is one line, names the masked URL, and says what
    to check. It never contains the password."""


class DatabaseUnreachable(DatabaseError):
    """No server answered at opening (refused, timed out, no route): it may come back, unlike a bad
    URL or a refused password (a server that answers says why, with an SQLSTATE or an error number)."""


MYSQL_UNREACHABLE = frozenset({2002, 2003, 2005, 2006, 2013})
"""Client error numbers of MySQL drivers that mean no server answered (socket, TCP, host, gone, lost)."""


def default_url() -> str:
    """$COMPUTE_RECOVER_DB (a URL, or a path taken as an SQLite file), else DEFAULT_DB_PATH."""
    return os.environ.get(DB_ENV) or DEFAULT_DB_PATH


def parse(text: str | None) -> URL:
    try:
        return parse_database_url(text or default_url())
    except DatabaseUrlError as error:
        raise DatabaseError(f"{error} — {FIX}") from None


def describe(url: URL) -> str:
    """The masked URL, and for SQLite the absolute file it names (sqlite:///relative vs ////absolute)."""
    path = sqlite_path(url)
    return masked(url) + (f" (file {path})" if path and path != url.database else "")


def one_line(error: BaseException, url: URL) -> str:
    """The driver's own message (not SQLAlchemy's wrapper, which adds the SQL) on one line, secrets masked."""
    text = str(error.orig) if isinstance(error, DBAPIError) else str(error)
    return scrub(" ".join(text.split()) or type(error).__name__, url)


def create_database_engine(url: URL, *, read_only: bool, timeout: float, create: bool = False) -> Engine:
    """An engine for `url` that creates nothing on connect (unless `create`: the SQLite file, 0600)."""
    if not math.isfinite(timeout) or timeout <= 0:
        raise DatabaseError(f"the database timeout must be a positive number of seconds, not {timeout}")
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            engine = _sqlite_engine(url, read_only=read_only, timeout=timeout, create=create)
        else:
            engine = create_engine(url, **_server_options(url, read_only, timeout))
    except DatabaseError:
        raise
    except (SQLAlchemyError, ImportError) as error:
        advice = driver_advice(url) if isinstance(error, ImportError) else ""
        raise DatabaseError(f"cannot use database {describe(url)}: {one_line(error, url)}{advice} — {FIX}") from None
    if backend == "mysql" and read_only:
        event.listen(engine, "connect", _mysql_read_only)
    if backend == "postgresql":
        Watchdog.shared().guard(engine, timeout)
    return engine


def probe(engine: Engine, url: URL) -> None:
    """Connect once, so that an unreachable server or a wrong password is said at opening."""
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as error:
        engine.dispose()
        kind = DatabaseUnreachable if _unreachable(error) else DatabaseError
        raise kind(f"cannot open database {describe(url)}: {one_line(error, url)} — {FIX}") from None


def _unreachable(error: SQLAlchemyError) -> bool:
    """Whether no server answered, or one said it cannot take connections yet (starting up, shutting
    down, recovering). libpq marks what a PostgreSQL server said with its severity (FATAL: a refused
    password, an unknown database); MySQL drivers give a connection that failed a client error number."""
    orig = getattr(error, "orig", None)
    if orig is None or not isinstance(error, DBAPIError):
        return False
    if hasattr(orig, "sqlstate"):  # psycopg
        said = str(orig)
        return "FATAL:" not in said or "the database system is" in said
    return bool(orig.args) and orig.args[0] in MYSQL_UNREACHABLE


def _sqlite_engine(url: URL, *, read_only: bool, timeout: float, create: bool) -> Engine:
    path = sqlite_path(url)
    if path is None:
        return create_engine(url)  # in memory: nothing on disk to create or protect
    if not os.path.exists(path):
        if not create:
            raise DatabaseError(
                f"no database file {path}: create it with `compute-recover db upgrade --db {masked(url)}` — {FIX}"
            )
        try:
            create_private(path)
        except OSError as error:
            raise DatabaseError(f"cannot create database file {path}: {error.strerror} — check the directory") from None
    mode = "ro" if read_only else "rw"

    def connect() -> sqlite3.Connection:
        # mode=ro/rw: SQLite never creates the file; the URI form needs the path percent-safe.
        target = f"file:{_uri_path(path)}?mode={mode}"
        return sqlite3.connect(target, uri=True, timeout=timeout, check_same_thread=False)

    # A file shared by the run's worker threads: a queue pool (the URL alone would mean an in-memory pool).
    engine = create_engine("sqlite://", creator=connect, poolclass=QueuePool, pool_size=8, max_overflow=64)
    event.listen(engine, "connect", _sqlite_reader if read_only else _sqlite_writer)
    return engine


def make_sqlite_file_private(url: URL) -> None:
    """The SQLite file `db upgrade` is about to make a database in (an operator's `touch`, an empty SQLite
    file, maybe behind a symlink) made 0600, as a file it creates (recovery.files); nothing for a server."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        make_private(path)
    except OSError as error:
        raise DatabaseError(f"cannot make database file {os.path.realpath(path)} private (0600): {error.strerror} — "
                            "check its owner") from None


def _sqlite_writer(dbapi_connection: Any, _record: Any) -> None:
    """In WAL mode (see `enter_wal_mode`) synchronous=NORMAL survives a crash of this process (not
    of the machine) without an fsync per commit, which one commit per instance step needs. The
    busy timeout (the connection's timeout) makes concurrent writers queue."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def enter_wal_mode(engine: Engine) -> None:
    """Let readers run beside a writer: called once a run is about to write (never on opening,
    which must leave the file untouched when a run is refused). Undone by `leave_wal_mode`."""
    if engine.url.get_backend_name() == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def leave_wal_mode(url: URL) -> None:
    """Put an SQLite file back in rollback-journal mode once its last writer is done.

    A read-only connection to a file in WAL mode creates -wal and -shm files beside it, and a
    dry run, `plan` or `explain` must create no file. Only possible when no other connection
    has the file open; otherwise the file stays in WAL mode until the last writer leaves.
    """
    path = sqlite_path(url)
    if path is None or not os.path.exists(path):
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{_uri_path(path)}?mode=rw", uri=True, timeout=0.1)) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass  # another connection still uses the file: the last writer will do it


def _uri_path(path: str) -> str:
    """A path as SQLite's URI form needs it (percent-escaped where URI syntax would misread it)."""
    return path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _sqlite_reader(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _server_options(url: URL, read_only: bool, timeout: float) -> dict[str, Any]:
    """Driver arguments that bound every call and keep read-only sessions read-only, merged with
    what the URL itself asks for (connect_args win over the URL's query in SQLAlchemy)."""
    seconds = max(1, math.ceil(timeout))
    if url.get_backend_name() == "postgresql":
        guards = {"statement_timeout": str(int(timeout * 1000)), "lock_timeout": str(int(timeout * 1000))}
        if read_only:
            guards["default_transaction_read_only"] = "on"
        own = _query_values(url, "options")
        _refuse_overrides(url, guarded_settings(" ".join(own)))
        ours = " ".join(f"-c {name}={value}" for name, value in guards.items())
        return {"connect_args": {"connect_timeout": seconds, "options": " ".join([*own, ours])},
                "pool_pre_ping": False}
    if url.get_backend_name() == "mysql":
        limits = {"connect_timeout": seconds, "read_timeout": seconds, "write_timeout": seconds}
        return {"connect_args": {key: _tighter(url, key, bound) for key, bound in limits.items()},
                "pool_recycle": 3600}
    return {}


GUARDED_SETTINGS = frozenset({"statement_timeout", "lock_timeout", "default_transaction_read_only",
                              "transaction_read_only"})
"""PostgreSQL settings compute-recover sets on every session itself: a URL may not set them."""

_PG_SWITCHES_WITH_ARGUMENT = frozenset("BcCDdfhkNprStvW-")
"""The backend's switches that take an argument (postgres.c's getopt string), so that grouped
switches (`-sc name=value`) and separate arguments are read as the server reads them."""


def guarded_settings(options: str) -> list[str]:
    """The names (normalised as the server does) of the guarded settings a libpq `options`
    string sets, through `-c name=value`, `-cname=value`, `--name=value` or grouped switches."""
    words = _split_options(options)
    found, index = [], 0
    while index < len(words):
        word, index = words[index], index + 1
        if not word.startswith("-"):
            continue  # the server refuses stray words itself
        for position in range(1, len(word)):
            switch = word[position]
            if switch not in _PG_SWITCHES_WITH_ARGUMENT:
                continue
            argument = word[position + 1 :]
            if not argument and index < len(words):
                argument, index = words[index], index + 1
            if switch in "c-":
                name = argument.partition("=")[0].replace("-", "_").lower()
                found += [name] if name in GUARDED_SETTINGS else []
            break
    return found


def _split_options(options: str) -> list[str]:
    """Words as the server splits `options` (pg_split_opts): whitespace separates, a backslash
    takes the next character literally."""
    words, word, escaped, started = [], [], False, False
    for char in options:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char.isspace():
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def _query_values(url: URL, key: str) -> list[str]:
    value = url.query.get(key)
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _refuse_overrides(url: URL, names: list[str]) -> None:
    if names:
        raise DatabaseError(
            f"the database URL's options set {', '.join(sorted(set(names)))}, which compute-recover sets itself "
            f"(the --db-timeout limits, read-only sessions): remove it from the URL {masked(url)}"
        )


def _tighter(url: URL, key: str, bound: int) -> int:
    """The URL's own MySQL time limit when it is a tighter one; refused when it would lift the bound."""
    values = _query_values(url, key)
    if not values:
        return bound
    try:
        asked = float(values[-1])
    except ValueError:
        asked = math.nan
    if not math.isfinite(asked) or asked <= 0:
        raise DatabaseError(f"the database URL's {key}={values[-1]} would lift the time limit compute-recover "
                            f"sets from --db-timeout: remove it from {masked(url)}")
    return max(1, min(bound, math.ceil(asked)))


def _mysql_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION TRANSACTION READ ONLY")
    cursor.close()


class Watchdog:
    """Severs a PostgreSQL connection whose call has outlived the time limit.

    A frozen server (SIGSTOP, a hung host) still has its kernel acknowledge TCP, so neither
    libpq's timeouts nor TCP keepalives end a call waiting on it, and the server-side
    statement_timeout cannot fire either. Shutting the socket down makes the waiting call fail
    at once with a connection error, which the run treats as a failed database. One thread
    watches every engine; arming a call is a dictionary write.
    """

    _instance: "Watchdog | None" = None
    _create_lock = threading.Lock()

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, Any, float]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="db-watchdog", daemon=True).start()

    @classmethod
    def shared(cls) -> "Watchdog":
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = Watchdog()
            return cls._instance

    def guard(self, engine: Engine, timeout: float) -> None:
        """Every connection `engine` hands out (for one operation) must be back within `timeout`."""
        event.listen(engine, "checkout", lambda dbapi_connection, _record, _proxy: self._arm(dbapi_connection, timeout))
        event.listen(engine, "checkin", lambda dbapi_connection, _record: self._disarm(dbapi_connection))

    @contextlib.contextmanager
    def suspended(self, dbapi_connection: Any) -> Iterator[None]:
        """Leave a connection unwatched while it is held on purpose (the host lock's session, for
        as long as the lock is awaited and held); watched again, with a fresh limit, afterwards."""
        with self._lock:
            armed = self._deadlines.pop(id(dbapi_connection), None)
        try:
            yield
        finally:
            if armed is not None:
                self._arm(dbapi_connection, armed[2])

    @contextlib.contextmanager
    def watching(self, dbapi_connection: Any, timeout: float) -> Iterator[None]:
        """Watch a connection held unwatched (the host lock's) for one call of at most `timeout`."""
        self._arm(dbapi_connection, timeout)
        try:
            yield
        finally:
            self._disarm(dbapi_connection)

    def _arm(self, dbapi_connection: Any, timeout: float) -> None:
        with self._lock:
            self._deadlines[id(dbapi_connection)] = (time.monotonic() + timeout, dbapi_connection, timeout)

    def _disarm(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._deadlines.pop(id(dbapi_connection), None)

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            with self._lock:
                late = [conn for deadline, conn, _ in self._deadlines.values() if deadline < now]
                for conn in late:
                    self._deadlines.pop(id(conn), None)
            for conn in late:
                _sever(conn)


def _sever(dbapi_connection: Any) -> None:
    """Shut the connection's socket down under the waiting call (it then fails as a lost connection)."""
    import socket

    try:
        fd = dbapi_connection.fileno()
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # closed or lost (psycopg's fileno raises its own OperationalError then): the call has
        pass  # ended anyway, and the watchdog's one thread must live on for every other connection

"""Group commit (recovery.db.group_commit) on a real SQLite file: writes from many threads share
transactions, yet each comes back only once committed, and one failing write loses no other."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from recovery.db.group_commit import GroupCommit


def _table(path: Path):
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS written (n INTEGER PRIMARY KEY)"))
        conn.execute(text("DELETE FROM written"))
    return engine


def _group(engine, begin=None) -> GroupCommit:
    """Writes through one held connection of `engine`, each batch in `begin(connection, what)`."""
    return GroupCommit(engine.connect, begin or (lambda conn, _what: _begin(conn)))


@contextmanager
def _begin(conn: Connection):
    with conn.begin():
        yield conn


def _rows(engine) -> set[int]:
    with engine.connect() as conn:
        return {n for (n,) in conn.execute(text("SELECT n FROM written"))}


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class Refused(Exception):
    pass


def _writer(group: GroupCommit, failing: set[int], committed_seen: dict[int, bool], engine, outside: set[int]):
    """Write n; the work also notes n outside the database (in `outside`), which its undo takes back."""
    def write(n: int) -> str:
        def work(conn: Connection) -> None:
            outside.add(n)
            conn.execute(text("INSERT INTO written (n) VALUES (:n)"), {"n": n})
            if n in failing:
                raise Refused(n)

        try:
            group.write(f"write {n}", work, undo=lambda: outside.discard(n))
        except Refused:
            return "refused"
        committed_seen[n] = n in _rows(engine)  # committed before write() returned
        return "ok"
    return write


@settings(max_examples=15, deadline=None)
@given(count=st.integers(1, 60), failing=st.sets(st.integers(0, 59), max_size=6), threads=st.integers(1, 8))
def test_every_write_is_committed_once_or_refused_and_a_failing_write_loses_no_other(tmp_path_factory, count,
                                                                                      failing, threads):
    engine = _table(tmp_path_factory.mktemp("group") / "db.sqlite")
    group = _group(engine)
    seen: dict[int, bool] = {}
    outside: set[int] = set()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(_writer(group, failing, seen, engine, outside), range(count)))
    assert _rows(engine) == {n for n in range(count) if n not in failing}
    assert outside == _rows(engine)  # what a write changed outside was undone whenever it was not committed
    assert outcomes == ["refused" if n in failing else "ok" for n in range(count)]
    assert all(seen.values()) and len(seen) == count - len(failing & set(range(count)))


def test_writes_waiting_together_share_one_transaction(tmp_path):
    engine = _table(tmp_path / "db.sqlite")
    transactions: list[str] = []
    release = threading.Event()

    def begin(conn: Connection, what: str):
        transactions.append(what)
        if len(transactions) == 1:
            release.wait(5)  # the first transaction is slow: the others queue behind it meanwhile
        return _begin(conn)

    group = _group(engine, begin)

    def write(n: int) -> None:
        group.write(f"write {n}", lambda conn: conn.execute(text("INSERT INTO written (n) VALUES (:n)"), {"n": n}))

    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(write, 0)
        _until(lambda: transactions)
        rest = [pool.submit(write, n) for n in range(1, 6)]
        _until(lambda: len(group._queue) == 5)
        release.set()
        for future in [first, *rest]:
            future.result()
    assert _rows(engine) == set(range(6))
    assert transactions == ["write 0", "write 1 (and 4 more writes)"]


def test_a_failed_commit_reaches_every_writer_of_the_batch(tmp_path):
    engine = _table(tmp_path / "db.sqlite")

    class CommitFailed(Exception):
        pass

    @contextmanager
    def failing(conn: Connection, _what: str):
        with conn.begin() as transaction:
            yield conn
            transaction.rollback()
            raise CommitFailed("disk full")

    group = _group(engine, failing)
    with pytest.raises(CommitFailed, match="disk full"):
        group.write("write 1", lambda conn: conn.execute(text("INSERT INTO written (n) VALUES (1)")))
    assert _rows(engine) == set()


def test_a_statement_failing_in_the_database_is_every_writers_failure(tmp_path):
    """As recovery.db's transactions do, the transaction reports a database error as its own
    failure: then it is the whole batch's, not one write's to retry around."""
    engine = _table(tmp_path / "db.sqlite")

    class DatabaseDown(Exception):
        pass

    @contextmanager
    def begin(conn: Connection, _what: str):
        try:
            with conn.begin():
                yield conn
        except SQLAlchemyError as error:
            raise DatabaseDown(type(error).__name__) from None

    group = _group(engine, begin)
    release, started = threading.Event(), threading.Event()

    def first(conn: Connection) -> None:
        started.set()
        release.wait(5)

    def insert(n: int):
        return lambda conn: conn.execute(text("INSERT INTO written (n) VALUES (:n)"), {"n": n})

    with ThreadPoolExecutor(3) as pool:
        held = pool.submit(group.write, "hold", first)
        started.wait(5)
        duplicate = pool.submit(group.write, "insert 7 again", lambda conn: (insert(7)(conn), insert(7)(conn)))
        other = pool.submit(group.write, "insert 8", insert(8))
        _until(lambda: len(group._queue) == 2)
        release.set()
        held.result()
        for future in (duplicate, other):
            with pytest.raises(DatabaseDown, match="IntegrityError"):
                future.result()
    assert _rows(engine) == set()


def test_without_a_connection_every_writer_is_told_why():
    class Unreachable(Exception):
        pass

    def hold():
        raise Unreachable("connection refused")

    group = GroupCommit(hold, lambda conn, _what: _begin(conn))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(group.write, f"write {n}", lambda conn: None) for n in range(8)]
        for future in futures:
            with pytest.raises(Unreachable, match="connection refused"):
                future.result()

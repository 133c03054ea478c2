"""Rows read apart from compute-recover's own store (plain sqlite3 on a file, plain SQL on a URL): what the
tests assert on is what the database holds."""

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Select, create_engine, text


def query(path: Path, sql: str, *args: object) -> list[dict]:
    """The rows of one statement, opened read-only so that reading never creates or changes the file."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in con.execute(sql, args)]
    finally:
        con.close()


def rows(url: str, query: str | Select, **params: Any) -> list[dict[str, Any]]:
    """Rows of an SQL text or of a select (typed: timestamps as datetimes on every backend) on any database,
    in a transaction of its own that commits, so that a test can also change a row behind a run's back."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(query) if isinstance(query, str) else query, params)
            return [dict(row) for row in result.mappings()] if result.returns_rows else []
    finally:
        engine.dispose()

"""Rows of an SQLite database file read with plain sqlite3, apart from compute-recover's own store:
what the tests assert on is what the file holds."""

import sqlite3
from pathlib import Path


def query(path: Path, sql: str, *args: object) -> list[dict]:
    """The rows of one statement, opened read-only so that reading never creates or changes the file."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in con.execute(sql, args)]
    finally:
        con.close()

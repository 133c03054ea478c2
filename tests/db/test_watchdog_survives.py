"""The database watchdog's one thread survives severing a connection that is already gone.

psycopg's `fileno()` raises its own OperationalError on a closed or lost connection (not an OSError):
the watchdog thread once died of it, leaving every later call of the process unwatched.
"""

import psycopg
from sqlalchemy.engine import make_url

from recovery.db.engine import _sever


def test_severing_a_closed_postgresql_connection_is_quiet(pg_url):
    server = make_url(pg_url)
    conn = psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                           dbname=server.database)
    conn.close()
    _sever(conn)  # raised psycopg.OperationalError ("the connection is closed") in the watchdog's thread

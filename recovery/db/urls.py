"""Database URLs in every form an operator may give, and their rendering without secrets.

Parsing goes through SQLAlchemy's URL object (and psycopg's parser for libpq keyword strings);
nothing here ever echoes the raw text an operator typed, because the raw text is where a
password hides in forms the URL grammar does not expect (an unescaped `@`, `?password=`,
`password=` in a libpq string).
"""

import os
import re
from urllib.parse import unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from recovery.core.errors import RecoveryError

SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "secret"})
"""Query parameters whose value is a secret, whatever the driver calls it."""

MASK = "***"

_HALF_SQLITE = re.compile(r"^sqlite:(?!//)", re.IGNORECASE)
SQLITE_FORMS = "sqlite:////abs/path (an absolute path: four slashes) or sqlite:///relative/path"
DRIVER_FORMS = {
    "postgresql": "postgresql+psycopg://user:password@host/database",
    "mysql": "mysql+pymysql://user:password@host/database",
    "mariadb": "mariadb+pymysql://user:password@host/database",
}
"""The URL forms of the drivers compute-recover installs (psycopg 3, PyMySQL), for a URL that names
a dialect without a driver SQLAlchemy can load (its defaults, psycopg2 and MySQLdb, are not installed)."""


def driver_advice(url: URL) -> str:
    """What to write instead of a URL whose driver cannot be loaded; empty when there is no advice."""
    form = DRIVER_FORMS.get(url.get_backend_name())
    return f": write {form}" if form else ""


_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<rest>.*)$", re.DOTALL)


class DatabaseUrlError(RecoveryError, ValueError):
    """The text names no database compute-recover can open; the message never repeats the text."""


def parse_database_url(text: str) -> URL:
    """An SQLAlchemy URL for `text`: a URL, a libpq keyword string (`host=… dbname=…`), or a path
    taken as an SQLite file."""
    text = text.strip()
    if not text:
        raise DatabaseUrlError("the database URL is empty")
    match = _SCHEME.match(text)
    if match is None:
        if _HALF_SQLITE.match(text):  # sqlite:/x, sqlite:x: not a file named so, a URL missing slashes
            raise DatabaseUrlError(f"the database URL is missing slashes: {SQLITE_FORMS}")
        return _from_keywords(text) if "=" in text else URL.create("sqlite", database=text)
    scheme = match["scheme"].lower()
    if scheme.partition("+")[0] == "postgres":
        raise DatabaseUrlError("SQLAlchemy names PostgreSQL `postgresql`, not `postgres`: write "
                               f"{DRIVER_FORMS['postgresql']}")
    if scheme == "sqlite" and match["rest"] and not match["rest"].startswith("/"):
        raise DatabaseUrlError(f"an SQLite URL has three slashes before a path: {SQLITE_FORMS}")
    rest = match["rest"]
    userinfo, at, hostpath = rest.rpartition("@")
    if at and ":" in userinfo:  # re-escape the password: it may hold @ : / ? unescaped
        user, _, password = userinfo.partition(":")
        rest = f"{user}:{_quote(password)}@{hostpath}"
    try:
        return make_url(f"{match['scheme']}://{rest}")
    except (ArgumentError, ValueError):
        raise DatabaseUrlError(
            f"the database URL (scheme {match['scheme']!r}) cannot be parsed; write it as "
            "dialect+driver://user:password@host:port/database"
        ) from None


def _quote(password: str) -> str:
    """Percent-escape what URL syntax would misread, keeping escapes the operator already wrote."""
    return "".join(f"%{ord(c):02X}" if c in "@:/?#%" and not _escape_at(password, i) else c
                   for i, c in enumerate(password))


def _escape_at(text: str, index: int) -> bool:
    return text[index] == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[index + 1 : index + 3] or "") is not None


def _from_keywords(text: str) -> URL:
    """A libpq keyword/value connection string as a PostgreSQL URL."""
    from psycopg.conninfo import conninfo_to_dict  # only PostgreSQL operators write this form

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(text).items()}
    except Exception:  # psycopg's message quotes the string, password included
        raise DatabaseUrlError(
            "the database connection string is neither a URL nor valid libpq 'key=value' pairs"
        ) from None
    port = params.pop("port", None)
    if port is not None and not port.isdigit():
        raise DatabaseUrlError("the database connection string's port is not a number")
    return URL.create(
        "postgresql+psycopg",
        username=params.pop("user", None),
        password=params.pop("password", None),
        host=params.pop("host", None) or params.pop("hostaddr", None),
        port=int(port) if port else None,
        database=params.pop("dbname", None),
        query=params,
    )


def masked(url: URL) -> str:
    """The URL as text with every secret (the password, and secret query parameters) replaced."""
    placeholder = "MASKEDSECRET"  # survives URL quoting, unlike the asterisks
    query = {k: (placeholder if k.lower() in SECRET_QUERY_KEYS else v) for k, v in url.query.items()}
    text = url.set(query=query).render_as_string(hide_password=True).replace(placeholder, MASK)
    return scrub(text, url)  # a secret may stand elsewhere too, e.g. inside the database name


def secrets(url: URL) -> list[str]:
    """Every secret the URL carries, longest first, in the forms a driver may quote it."""
    values = [url.password or ""]
    values += [v for k, vs in url.query.items() if k.lower() in SECRET_QUERY_KEYS
               for v in (vs if isinstance(vs, tuple) else (vs,))]
    forms = {form for value in values if value for form in (value, unquote(value))}
    return sorted(forms, key=len, reverse=True)


SHORT_SECRET = 8
"""A secret shorter than this is masked only where it stands alone: masking every `p` of a message
for the password `p` would garble it (`***ostgres://`) and hide nothing."""


def scrub(text: str, url: URL) -> str:
    """`text` (a driver's message, say) with every secret of `url` masked."""
    for secret in secrets(url):
        if len(secret) >= SHORT_SECRET:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    return text


def sqlite_path(url: URL) -> str | None:
    """The absolute path of an SQLite URL's file; None for another backend or an in-memory database."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(url.database)

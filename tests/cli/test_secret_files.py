"""A file that holds the database password and is readable by every user gets a warning naming it;
every file compute-recover writes (the databases `db upgrade` makes, a plan, the metrics textfile) is
private (0600), the real file behind a symlink.

Real processes and real files: a --config TOML file and a nova.conf whose database URL carries a
password (pointing at a closed port: the warning comes when the file is read, before any connection).
"""

import contextlib
import json
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.paths import CONSOLE_SCRIPT, FIXTURES

SECRET_URL = "postgresql+psycopg://nova:s3cret@127.0.0.1:1/nova"


def plan_with(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([CONSOLE_SCRIPT, "plan", "--host", "compute-1", "--db-timeout", "1", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def compute_recover(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([CONSOLE_SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=120)


def warnings_about(path: Path, stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "readable by every user" in line and str(path) in line]


PASSWORD_FILES = {
    "--config": ("compute-recover.toml", f'db = "{SECRET_URL}"\n'),
    "--nova-conf": ("nova.conf", f"[DEFAULT]\nhost = compute-1\n\n[database]\nconnection = {SECRET_URL}\n"),
}
"""Each file a command reads a database URL from, holding one with a password."""


@pytest.mark.parametrize("option", sorted(PASSWORD_FILES))
@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, False), (0o600, False)])
def test_a_file_holding_a_password_readable_by_others_is_named(tmp_path, option, mode, warned):
    name, content = PASSWORD_FILES[option]
    holder = tmp_path / name
    holder.write_text(content)
    holder.chmod(mode)
    done = plan_with(option, holder)
    assert done.returncode == 6  # no database answers: the warning came when the file was read
    assert len(warnings_about(holder, done.stderr)) == (1 if warned else 0), done.stderr
    assert "s3cret" not in done.stderr


def test_a_config_file_without_a_password_gets_no_warning(tmp_path):
    config = tmp_path / "compute-recover.toml"
    config.write_text(f'db = "sqlite:///{tmp_path / "missing.sqlite"}"\n')
    config.chmod(0o644)
    assert warnings_about(config, plan_with("--config", config).stderr) == []


@pytest.mark.parametrize("through_symlink", [False, True])
def test_db_upgrade_makes_an_empty_file_it_makes_a_database_in_private(tmp_path, through_symlink):
    real = tmp_path / "real" / "compute-recover.sqlite"
    real.parent.mkdir()
    real.touch()
    real.chmod(0o644)
    named = real
    if through_symlink:
        named = tmp_path / "link.sqlite"
        named.symlink_to(real)
    done = subprocess.run([CONSOLE_SCRIPT, "db", "upgrade", "--db", f"sqlite:///{named}"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert "(created)" in done.stdout
    assert oct(os.stat(real).st_mode & 0o777) == oct(0o600)


# --- every file compute-recover writes is 0600, the real file behind a symlink (recovery/files.py) ------


def behind_a_symlink(tmp_path: Path, content: bytes) -> tuple[Path, Path]:
    """A file readable by everyone holding `content`, and a symlink to it: (the link, the real file)."""
    real = tmp_path / "real" / "file"
    real.parent.mkdir()
    real.write_bytes(content)
    real.chmod(0o644)
    link = tmp_path / "link"
    link.symlink_to(real)
    return link, real


def mode(path: Path) -> str:
    return oct(os.stat(path, follow_symlinks=False).st_mode & 0o777)


def an_sqlite_file_without_tables() -> bytes:
    """What `sqlite3 FILE 'PRAGMA user_version = 1'` leaves: a database file, not empty, with no table."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "made.sqlite"
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA user_version = 1")
        return path.read_bytes()


@pytest.mark.parametrize("option", ["--db", "--journal-db"])
def test_db_upgrade_makes_a_non_empty_file_it_makes_the_database_in_private_behind_a_symlink(tmp_path, option):
    link, real = behind_a_symlink(tmp_path, an_sqlite_file_without_tables())
    done = compute_recover("db", "upgrade", option, f"sqlite:///{link}")
    assert done.returncode == 0, done.stderr
    assert "(created)" in done.stdout
    assert mode(real) == oct(0o600) and link.is_symlink()


def test_db_upgrade_creates_a_missing_file_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "new.sqlite"
    done = subprocess.run(["sh", "-c", f'umask 000 && exec "$0" db upgrade --db sqlite:///{path}', CONSOLE_SCRIPT],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert mode(path) == oct(0o600)


def test_db_upgrade_leaves_a_database_it_did_not_make_as_it_is(tmp_path):
    path = tmp_path / "made.sqlite"
    assert compute_recover("db", "upgrade", "--db", f"sqlite:///{path}").returncode == 0
    path.chmod(0o640)  # the operator's choice for a database that has compute-recover's tables already
    again = compute_recover("db", "upgrade", "--db", f"sqlite:///{path}")
    assert again.returncode == 0 and "up to date" in again.stdout
    assert mode(path) == oct(0o640)


def test_db_upgrade_refuses_to_make_a_database_in_a_fifo(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    done = compute_recover("db", "upgrade", "--db", f"sqlite:///{fifo}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert mode(fifo) == oct(0o644)


REPLACED_FILES = {
    "plan --out": (("plan", "--out"), lambda text: json.loads(text)["host"] == "compute-1"),
    "run --metrics-textfile": (("run", "--metrics-textfile"), lambda text: "compute_recover_runs_total" in text),
}
"""Each file a command replaces whole, and how its new content is told from the older one."""


@pytest.mark.parametrize("writer", sorted(REPLACED_FILES))
def test_a_replaced_file_is_the_real_file_behind_a_symlink_made_0600(tmp_path, writer):
    (command, option), is_new = REPLACED_FILES[writer]
    link, real = behind_a_symlink(tmp_path, b"an older file\n")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert compute_recover("db", "upgrade", "--db", url).returncode == 0
    assert compute_recover("scenario", "load", FIXTURES / "clean-host", "--db", url).returncode == 0
    done = compute_recover(command, "--scenario", FIXTURES / "clean-host", "--db", url, option, link)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and is_new(real.read_text())
    assert mode(real) == oct(0o600)
    assert sorted(p.name for p in real.parent.iterdir()) == ["file"]  # no temporary file left


def test_plan_out_refuses_to_replace_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o644)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert compute_recover("db", "upgrade", "--db", url).returncode == 0
    assert compute_recover("scenario", "load", FIXTURES / "clean-host", "--db", url).returncode == 0
    for out in (fifo, link):
        done = compute_recover("plan", "--scenario", FIXTURES / "clean-host", "--db", url, "--out", out)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"cannot write plan file {out}: not a regular file" in done.stderr
    assert fifo.is_fifo() and mode(fifo) == oct(0o644) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite", "fifo", "link"]

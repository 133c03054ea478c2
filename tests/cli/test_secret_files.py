"""A file that holds the database password and is readable by every user gets a warning naming it;
a database file `db upgrade` makes a database in is private (0600), behind a symlink too.

Real processes and real files: a --config TOML file and a nova.conf whose database URL carries a
password (pointing at a closed port: the warning comes when the file is read, before any connection).
"""

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import CONSOLE_SCRIPT

SECRET_URL = "postgresql+psycopg://nova:s3cret@127.0.0.1:1/nova"


def plan_with(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([CONSOLE_SCRIPT, "plan", "--host", "compute-1", "--db-timeout", "1", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


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

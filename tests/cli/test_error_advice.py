"""Errors that say the fix (issue 20, item 7): a database URL in a wrong form names the right one, a bad
value names where it came from, and no database at all says how to name one (not how to make a stray file)."""

import pytest
from click.testing import CliRunner

from recovery.cli import cli


def services(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["services", *args], env={"COMPUTE_RECOVER_DB": None, **(env or {})})


@pytest.mark.parametrize(("url", "advice"), [
    ("postgres://u:s3cret@db/nova", "write postgresql+psycopg://user:password@host/database"),
    ("postgres+psycopg2://u@db/nova", "write postgresql+psycopg://user:password@host/database"),
    ("mysql://u:s3cret@db/nova", "write mysql+pymysql://user:password@host/database"),
    ("mariadb://u@db/nova", "write mariadb+pymysql://user:password@host/database"),
    ("sqlite:/var/lib/x.sqlite", "sqlite:////abs/path (an absolute path: four slashes)"),
    ("sqlite:x.sqlite", "sqlite:////abs/path (an absolute path: four slashes)"),
    ("sqlite://x.sqlite", "sqlite:////abs/path (an absolute path: four slashes)"),
])
def test_a_url_in_a_wrong_form_names_the_right_one(url, advice):
    result = services("--db", url)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert advice in line and "s3cret" not in line
    assert line.endswith("check --db / COMPUTE_RECOVER_DB")


def test_a_bad_url_names_the_environment_variable_or_config_key_it_came_from(tmp_path):
    result = services(env={"COMPUTE_RECOVER_DB": "postgres://db/nova"})
    assert result.stderr.rstrip().endswith("check --db, given by environment variable COMPUTE_RECOVER_DB")
    config = tmp_path / "c.toml"
    config.write_text('db = "sqlite:/x"\n')
    result = services("--config", str(config))
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith(f"check --db, given by config file {config}, key db")


def test_no_database_at_all_says_how_to_name_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = services("--config", "/dev/null")
    assert result.exit_code == 2
    assert result.stderr.startswith("compute-recover: no database given: name it with --db, $COMPUTE_RECOVER_DB "
                                    "or `db` in the config file (/etc/compute-recover/compute-recover.toml)")
    assert not list(tmp_path.iterdir())


def test_a_usage_error_is_one_line_with_a_hint():
    result = CliRunner().invoke(cli, ["run", "--bogus"])
    assert result.exit_code == 2
    assert result.stderr == ("compute-recover: No such option '--bogus'. Did you mean '--host'? "
                             "(see `compute-recover run --help`)\n")
    result = CliRunner().invoke(cli, ["rnu"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("compute-recover: No such command 'rnu'.")

"""`compute-recover` in-process through click's runner, as the end-to-end tests drive it: exit code,
stdout and stderr apart, the environment's database left out."""

import json
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from recovery.cli import cli
from tests.support.paths import FIXTURES, U


@dataclass
class Cli:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> dict:
        return json.loads(self.stdout)

    def item(self, nn: str) -> dict:
        return next(i for i in self.doc["instances"] if i["uuid"] == U(nn))


def invoke(*args: str) -> Cli:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COMPUTE_RECOVER_DB": None}, catch_exceptions=False)
    return Cli(result.exit_code, result.stdout, result.stderr)


def cli_run(path: Path, scenario: str, *options: str) -> Cli:
    """`run --scenario`, after `db upgrade` and `scenario load` when the database file does not exist yet."""
    if not path.exists():
        load_scenario(path, scenario)
    return invoke("run", "--scenario", FIXTURES / scenario, "--db", f"sqlite:///{path}", "--json",
                  "--stop-timeout", "1", *options)


def load_records(url: str, scenario: Path) -> None:
    """What an operator does before a first run: create the tables (`db upgrade`), load the records
    (`scenario load`)."""
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        out = invoke(*command, "--db", url)
        assert out.exit_code == 0, out.stderr


def load_scenario(path: Path, scenario: str) -> None:
    """load_records of a scenario in fixtures/ into an SQLite file."""
    load_records(f"sqlite:///{path}", FIXTURES / scenario)

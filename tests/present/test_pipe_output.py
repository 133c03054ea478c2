"""Output into a pipe reads as the terminal would (issue 20, item 6, in part): $COLUMNS wide (80 when it is
not set), no padding at the ends of lines, every uuid whole."""

import re

import pytest
from click.testing import CliRunner

from recovery.cli import cli
from tests.support.in_process import load_scenario
from tests.support.paths import FIXTURES

UUID = re.compile(r"6c1a0b52-0000-4000-8000-[0-9a-f]{12}")


@pytest.mark.parametrize(("columns", "width"), [("80", 80), (None, 80), ("120", 120)])
def test_a_piped_report_fits_columns_and_pads_nothing(tmp_path, columns, width):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    planned = CliRunner().invoke(cli, ["plan", "--scenario", str(FIXTURES / "power-outage"), "--db", f"sqlite:///{path}",
                                       "-f", "value", "-c", "uuid"], env={"COMPUTE_RECOVER_DB": None})
    result = CliRunner().invoke(cli, ["run", "--scenario", str(FIXTURES / "power-outage"), "--db", f"sqlite:///{path}",
                                      "--resume-guests-state-on-host-boot", "--stop-timeout", "1"],
                                env={"COMPUTE_RECOVER_DB": None, "COLUMNS": columns})
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    assert not [line for line in lines if line.endswith(" ")]
    assert set(planned.stdout.split()) <= {uuid for line in lines for uuid in UUID.findall(line)}
    assert not [line for line in lines if "6c1a0b52-" in line and not UUID.search(line)], "a uuid was cut"

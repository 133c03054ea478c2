"""The run report's instance table written as plain lines (recovery.present.plain_table, used into a pipe or a
file) is line for line what rich lays out, for every scenario, at every narrow width, with hostile cells."""

import io
import json

import pytest
from rich.console import Console

from recovery.present import report_table
from recovery.present.plain_table import two_column_lines
from recovery.present.report import ordered
from tests.support.in_process import invoke, load_scenario
from tests.support.paths import FIXTURES

SCENARIOS = ("power-outage", "ordered-restart", "bad-rows", "return-after-evacuation", "clean-host")
PLANNED_ONLY = ("ordered-restart",)
"""Scenarios never run for real here: their readiness checks would connect to the fixture's guest addresses."""
WIDTHS = (61, 80, 100, 133, 179)


def reports(tmp_path, scenario: str) -> list[dict]:
    """The scenario's plan and its real run's report (JSON), as the table is drawn from them."""
    path = tmp_path / f"{scenario}.sqlite"
    load_scenario(path, scenario)
    common = ["--scenario", FIXTURES / scenario, "--db", f"sqlite:///{path}", "--resume-guests-state-on-host-boot"]
    done = [invoke("plan", *common, "--json")]
    if scenario not in PLANNED_ONLY:
        done.append(invoke("run", *common, "--json", "--stop-timeout", "1"))
    assert all(result.exit_code in (0, 1) for result in done), [result.stderr for result in done]
    return [json.loads(result.stdout) for result in done]


def hostile(doc: dict) -> dict:
    """The same report with names, errors and reasons a terminal finds hard: wide characters, long words."""
    items = [dict(item) for item in doc["instances"]]
    for number, item in enumerate(items):
        item["name"] = ["サーバー名前の長いインスタンス" * 2, "x" * 130, "a b  c   d", None][number % 4]
        item["error"] = ["", "e" * 95 + " tail", "disk 'vda' missing: /var/lib/nova/instances/" + "d" * 70][number % 3]
    return {**doc, "instances": items}


def by_rich(doc: dict, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    title = "compute-recover plan for host (nothing was changed)"
    console.print(report_table._instance_table(title, doc["instances"], width, ordered(doc), doc["dry_run"]))
    return [line.rstrip(" ") for line in console.file.getvalue().splitlines()]


def by_hand(doc: dict, width: int) -> list[str] | None:
    title = "compute-recover plan for host (nothing was changed)"
    rows = report_table._narrow_rows(doc["instances"], ordered(doc), doc["dry_run"])
    return two_column_lines(title, ("instance", report_table._narrow_header(doc["dry_run"])), rows, width,
                            report_table.UUID_WIDTH)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_plain_table_is_what_rich_draws(tmp_path, scenario):
    for doc in reports(tmp_path, scenario):
        for variant in (doc, hostile(doc)):
            for width in WIDTHS:
                plain = by_hand(variant, width)
                assert plain is not None
                assert plain == by_rich(variant, width), (scenario, width)


def test_too_narrow_a_terminal_is_left_to_rich(tmp_path):
    doc = reports(tmp_path, "power-outage")[0]
    assert by_hand(doc, 50) is None

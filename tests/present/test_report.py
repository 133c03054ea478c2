"""The run table a person reads: uuids whole on one line at 80 columns, errors on one line, no empty table.

Real runs (libvirt's test driver, SQLite files) through `compute-recover run --json`, rendered with rich
at a fixed width exactly as `run` renders them on a terminal of that width.
"""

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from recovery.cli import cli
from recovery.present.report_table import print_report
from tests.support.in_process import load_records
from tests.support.paths import FIXTURES

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run_doc(tmp_path: Path, scenario: Path, *options: str) -> dict:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    load_records(db, scenario)
    runner = CliRunner(env={"COMPUTE_RECOVER_DB": None})
    result = runner.invoke(cli, ["run", "--scenario", str(scenario), "--db", db, "--json", "--stop-timeout", "1",
                                 *options])
    return json.loads(result.stdout)


def rendered(doc: dict, width: int) -> list[str]:
    out = io.StringIO()
    print_report(doc, Console(file=out, width=width, color_system=None, highlight=False))
    return out.getvalue().splitlines()


def table_lines(lines: list[str]) -> list[str]:
    """The table's lines: the report's lines before the first one about a domain or the totals."""
    end = next(i for i, line in enumerate(lines) if line.startswith(("domain ", "instances ")))
    return lines[:end]


@pytest.mark.parametrize("width", [80, 100, 200])
def test_every_instance_uuid_sits_whole_on_one_line(tmp_path, width):
    doc = run_doc(tmp_path, FIXTURES / "power-outage", "--resume-guests-state-on-host-boot")
    lines = rendered(doc, width)
    assert all(len(line) <= width for line in lines)
    table = table_lines(lines)
    on_a_line = [uuid for line in table for uuid in UUID.findall(line)]
    assert sorted(on_a_line) == sorted(item["uuid"] for item in doc["instances"])
    assert not [line for line in table if "6c1a0b52" in line and not UUID.search(line)], "a uuid was cut"


def test_narrow_table_keeps_the_essentials_of_each_instance(tmp_path):
    doc = run_doc(tmp_path, FIXTURES / "power-outage", "--resume-guests-state-on-host-boot")
    text = "\n".join(rendered(doc, 80))
    row = text[text.index("6c1a0b52-0000-4000-8000-000000000003"):text.index("6c1a0b52-0000-4000-8000-000000000004")]
    words = row.split()
    assert words[:5] == ["6c1a0b52-0000-4000-8000-000000000003", "active/rebooting/shutdown", "→",
                         "active/none/running", "ok"]
    assert 'reboot(type="hard"): ok' in row


def test_wide_table_adds_the_path(tmp_path):
    doc = run_doc(tmp_path, FIXTURES / "power-outage", "--resume-guests-state-on-host-boot")
    row = next(line for line in rendered(doc, 200) if "6c1a0b52-0000-4000-8000-000000000007" in line)
    assert "interrupted_resize_prep →" in row and "active/resize_prep/running" in row


def words(lines: list[str]) -> str:
    """The rendered lines as one run of words: a cell wrapped over several lines reads whole again."""
    return " ".join(" ".join(lines).split())


def test_an_error_is_wrapped_whole_in_the_table_and_stays_whole_in_json(tmp_path):
    long_reason = "the switch port refused the binding " + "because of a very long reason " * 10
    script = tmp_path / "plug"
    script.write_text(f"#!/bin/sh\necho '{long_reason.strip()}' >&2\nexit 1\n")
    script.chmod(0o755)
    doc = run_doc(tmp_path, FIXTURES / "clean-host", "--plug-vifs-command", str(script))
    failed = [item for item in doc["instances"] if item["outcome"] == "failed"]
    assert failed and all(long_reason.strip() in item["error"] for item in failed)
    lines = rendered(doc, 80)
    assert all(len(line) <= 80 for line in lines)
    assert len([line for line in lines if "plugging VIFs failed" in line]) == len(failed)
    assert not any(line.rstrip().endswith("…") for line in lines), "an error is wrapped, never cut"
    assert words(lines).count(" ".join(long_reason.split())) == len(failed)


def test_at_80_columns_a_bad_rows_value_is_whole_and_the_tier_is_in_the_stacked_cell(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "ordered").mkdir()
    bad = run_doc(tmp_path / "bad", FIXTURES / "bad-rows")
    lines = rendered(bad, 80)
    assert all(len(line) <= 80 for line in lines)
    for item in (item for item in bad["instances"] if item["error"]):
        assert " ".join(item["error"].split()) in words(lines)
    assert "unknown vm_state 'actve'" in words(lines)
    ordered = run_doc(tmp_path / "ordered", FIXTURES / "ordered-restart", "--resume-guests-state-on-host-boot")
    lines = rendered(ordered, 80)
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if line.split()[:1] == ["instance"])
    assert header.split() == ["instance", "start", "state", "→", "now;", "actions"]  # no column of its own
    row = words(lines)[words(lines).index(ordered["instances"][0]["uuid"]):]
    first = ordered["instances"][0]  # its outcome is ok or not-ready: whether port 5432 answers here
    assert row.split()[:5] == [first["uuid"], "active/none/shutdown", "→", "active/none/running", first["outcome"]]
    assert f"tier {first['tier']} ({first['ready']})" in row and first["tier"] == 0


def test_a_host_without_instances_says_so_instead_of_an_empty_table(tmp_path):
    scenario = tmp_path / "empty-host"
    scenario.mkdir()
    node = ET.parse(FIXTURES / "clean-host" / "libvirt.xml")
    for domain in node.getroot().findall("domain"):
        node.getroot().remove(domain)
    node.write(scenario / "libvirt.xml")
    data = json.loads((FIXTURES / "clean-host" / "db.json").read_text())
    (scenario / "db.json").write_text(json.dumps({**data, "instances": []}))
    doc = run_doc(tmp_path, scenario)
    lines = rendered(doc, 80)
    assert lines[-2:-1] == ["compute-recover run on compute-1: no instances on this host"]
    assert not any(line.split()[:1] == ["instance"] for line in lines)

"""docs/ stays true: generated pages match the code, every page and --help points only inside the repository."""

import re

import click
import pytest
from click.testing import CliRunner

from recovery.cli import cli, docs
from recovery.db import scenarios as scenario_seed
from states.policy import POLICY
from tests.support.paths import ROOT

OUTSIDE_REFERENCE = re.compile(r"SPEC|\.\./shared|/work/")


@pytest.mark.parametrize("name", ["policy.md", "commands.md"])
def test_generated_page_matches_the_code(name):
    committed = (ROOT / "docs" / name).read_text()
    assert committed == docs.generated_pages()[name], (
        f"docs/{name} is out of date: run `python -m recovery.cli.docs` (or `make docs`) and commit it"
    )


def test_policy_page_names_each_rule_with_its_nova_branch_in_priority_order():
    page = (ROOT / "docs" / "policy.md").read_text()
    rows = [line for line in page.splitlines() if re.match(r"\| \d+ \| `", line)]
    assert [row.split("`")[1] for row in rows] == [rule.name for rule in POLICY]
    for rule, row in zip(POLICY, rows, strict=True):
        assert rule.nova and f"`{rule.nova}`" in row
        assert row.endswith("| stop |" if rule.stop else "| continue |")


def test_commands_page_lists_every_command_option_and_exit_code():
    page = (ROOT / "docs" / "commands.md").read_text()
    for name, command in cli.commands.items():
        assert f"## `compute-recover {name}`" in page
        for option in (p for p in command.params if p.param_type_name == "option"):
            assert f"`{option.opts[0]}" in page, f"{name} {option.opts[0]}"
    assert "| 3 | Refused before changing anything" in page


@pytest.mark.filterwarnings("ignore:'click.utils.make_default_short_help' is deprecated:DeprecationWarning")
def test_man_pages_are_written_for_every_command(tmp_path):
    """click-man 0.6 still calls a click helper that click 8.2 deprecates; the pages are unaffected."""
    docs.write_man_pages(tmp_path)
    pages = {path.name for path in tmp_path.iterdir()}

    def names(group: click.Group, prefix: str) -> set[str]:
        found = set()
        for name, command in group.commands.items():
            found.add(f"{prefix}-{name}.1")
            if isinstance(command, click.Group):
                found |= names(command, f"{prefix}-{name}")
        return found

    assert pages == {"compute-recover.1", *names(cli, "compute-recover")}
    run_page = (tmp_path / "compute-recover-run.1").read_text()
    assert run_page.startswith('.TH "COMPUTE-RECOVER RUN" "1"')
    assert r"\-\-resume\-guests\-state\-on\-host\-boot" in run_page


def _undated(page: str) -> str:
    """A man page less the date in its .TH line (the day it was made)."""
    first, _, rest = page.partition("\n")
    fields = first.split('"')
    return '"'.join([*fields[:5], "DATE", *fields[6:]]) + "\n" + rest


@pytest.mark.filterwarnings("ignore:'click.utils.make_default_short_help' is deprecated:DeprecationWarning")
def test_the_committed_man_pages_match_the_code(tmp_path):
    """man/ is what the wheel installs into share/man/man1: `make docs` rewrites it."""
    docs.write_man_pages(tmp_path)
    generated = {path.name: _undated(path.read_text()) for path in tmp_path.iterdir()}
    committed = {path.name: _undated(path.read_text()) for path in (ROOT / "man").iterdir()}
    assert committed == generated, "man/ is out of date: run `python -m recovery.cli.docs` (or `make docs`)"


def _help_texts() -> dict[str, str]:
    runner = CliRunner()
    texts = {"compute-recover --help": runner.invoke(cli, ["--help"]).stdout}
    for name in cli.commands:
        texts[f"compute-recover {name} --help"] = runner.invoke(cli, [name, "--help"]).stdout
    return texts


def _project_texts() -> dict[str, str]:
    paths = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "fixtures").glob("*/README.md")]
    return {str(path.relative_to(ROOT)): path.read_text() for path in paths}


def test_readme_docs_and_help_name_no_file_outside_the_repository():
    texts = {**_project_texts(), **_help_texts()}
    offenders = {where: match.group() for where, text in texts.items() if (match := OUTSIDE_REFERENCE.search(text))}
    assert not offenders


def test_help_points_into_docs():
    assert "docs/commands.md" in _help_texts()["compute-recover --help"]


def test_every_relative_link_in_the_readme_and_docs_resolves():
    for where, text in _project_texts().items():
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (ROOT / where).parent.joinpath(target).exists(), f"{where} links to missing {target}"


def test_scenario_page_names_every_db_json_field():
    page = (ROOT / "docs" / "scenarios.md").read_text()
    schemas = (
        scenario_seed._top_schema(),
        scenario_seed._instance_schema("h"),
        scenario_seed._MIGRATION,
        scenario_seed._compute_node_schema("h"),
        scenario_seed._service_schema("h"),
    )
    missing = sorted({field for schema in schemas for field in schema if f"`{field}`" not in page})
    assert not missing, f"docs/scenarios.md does not describe {missing}"

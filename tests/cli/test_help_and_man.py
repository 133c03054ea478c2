"""Help and man pages as good as the docs (issue 20, item 8): -V, each command's exit codes at the end of
its --help, man pages with the whole summary in NAME and EXIT STATUS, ENVIRONMENT and FILES sections."""

import pytest
from click.testing import CliRunner

from recovery.cli import cli, docs
from recovery.cli.exits import COMMAND_EXIT_CODES, MEANINGS


def test_dash_capital_v_prints_the_version():
    result = CliRunner().invoke(cli, ["-V"])
    assert result.exit_code == 0 and result.stdout.startswith("compute-recover, version ")


@pytest.mark.parametrize("path", sorted(COMMAND_EXIT_CODES))
def test_each_commands_help_ends_with_its_exit_codes(path):
    text = CliRunner().invoke(cli, [*path.split(), "--help"]).stdout
    tail = text[text.index("Exit status:"):].splitlines()
    codes = COMMAND_EXIT_CODES[path]
    code_lines = [line for line in tail[1:] if not line.startswith(" " * 6)]  # not a meaning's wrapped lines
    assert [line.split()[0] for line in code_lines] == [str(code) for code in codes]
    assert max(len(line) for line in tail) <= 80
    assert set(codes) <= set(MEANINGS)


@pytest.mark.filterwarnings("ignore:'click.utils.make_default_short_help' is deprecated:DeprecationWarning")
def test_man_pages_have_exit_status_environment_and_files(tmp_path):
    docs.write_man_pages(tmp_path)
    run = (tmp_path / "compute-recover-run.1").read_text()
    name = run.splitlines()[run.splitlines().index(".SH NAME") + 1]
    assert name == r"compute\-recover\-run \- Recover this host's instances: decide, execute, journal and report."
    for section in ('.SH "EXIT STATUS"', ".SH ENVIRONMENT", ".SH FILES"):
        assert section in run
    assert r"\fBCOMPUTE_RECOVER_STOP_TIMEOUT\fP" in run
    assert r"/etc/compute\-recover/compute\-recover.toml" in run
    assert '.SH "EXIT STATUS"' in (tmp_path / "compute-recover.1").read_text()
    assert r"\fB5\fP" in (tmp_path / "compute-recover-plan.1").read_text()


GROUPED = ("run", "plan", "agent", "explain", "runs")
SECTIONS = ("What it reads:", "What it does:", "Output:", "Safety:", "Other options:")


@pytest.mark.parametrize("name", GROUPED)
def test_the_long_commands_help_lists_options_in_groups(name):
    text = CliRunner().invoke(cli, [name, "--help"], env={"COLUMNS": "80"}).stdout
    found = [line for line in text.splitlines() if line in SECTIONS]
    assert found == [s for s in SECTIONS if s in found] and "Other options:" in found and len(found) >= 3
    other = text[text.index("Other options:"):text.index("Exit status:")]
    assert [line.split(",")[0].strip() for line in other.splitlines()[1:] if line.strip()] == ["-h"]


def test_run_help_puts_each_option_in_its_group():
    text = CliRunner().invoke(cli, ["run", "--help"], env={"COLUMNS": "80"}).stdout

    def section(title: str) -> str:
        start = text.index(title)
        ends = [text.index(other, start + 1) for other in (*SECTIONS, "Exit status:") if other in text[start + 1:]]
        return text[start:min(ends)]

    assert "--db TEXT" in section("What it reads:") and "--nova-conf FILE" in section("What it reads:")
    assert "--resume-policy" in section("What it does:") and "--concurrency" in section("What it does:")
    assert "-f, --format" in section("Output:") and "--failed" in section("Output:")
    assert "--dry-run" in section("Safety:") and "--lock-timeout" in section("Safety:")


@pytest.mark.parametrize("path", ["", *sorted(COMMAND_EXIT_CODES)])
def test_every_help_fits_80_columns(path):
    text = CliRunner().invoke(cli, [*path.split(), "--help"], env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_the_command_list_gives_each_summary_whole():
    text = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "80"}).stdout
    listed = " ".join(text[text.index("Commands:"):].split())
    assert "..." not in listed
    assert "agent Recover this host as `run` does, then stay and keep its records true." in listed
    assert "run Recover this host's instances: decide, execute, journal and report." in listed

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
    assert [line.split()[0] for line in tail[1:]] == [str(code) for code in codes]
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

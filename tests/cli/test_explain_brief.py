"""`explain --brief`: each run's start state, the rules that matched, actions, outcome and why, without the
facts, options and every rule considered, wrapped to the terminal's width."""

from click.testing import CliRunner

from recovery.cli import cli
from tests.support.in_process import cli_run
from tests.support.paths import U, uri


def test_brief_leaves_out_the_facts_and_the_rules_considered_and_fits_the_width(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0
    args = ["explain", U("03"), "--db", f"sqlite:///{path}", "--live", "--libvirt-uri", uri("power-outage")]
    full = CliRunner().invoke(cli, args, env={"COLUMNS": "80"}).stdout
    brief = CliRunner().invoke(cli, [*args, "--brief"], env={"COLUMNS": "60"}).stdout
    assert "facts:" in full and "rules considered:" in full
    assert "facts:" not in brief and "rules considered:" not in brief and "options:" not in brief
    assert "path: retry_reboot\n" in brief and 'actions: reboot(type="hard"): ok\n' in brief
    assert "path: plug_vifs → resume_guest\n" in brief  # --live's decision
    assert max(len(line) for line in brief.splitlines()) <= 60
    why = brief.index("why: A soft reboot")
    lines = brief[why:].splitlines()
    assert lines[1].startswith("  ") and " ".join(line.strip() for line in lines[:2]) == (
        "why: A soft reboot stopped the guest and never started it again, so it becomes a hard reboot.")

"""A plan that reads as a plan, names where an operator looks, and past runs (issue 20, items 3, 4, 5):
`plan` and `run --dry-run` show would-be actions, predicted end states and "would change N of M",
--detailed-exitcode tells pending changes from none, reports carry display and domain names, `runs`
lists the journal's runs and prints any run's report again as the run printed it."""

import json

from click.testing import CliRunner

from recovery.cli import cli
from tests.support.in_process import invoke, load_scenario
from tests.support.paths import FIXTURES, HOST, U

SCENARIO = FIXTURES / "power-outage"


def plan(path, *options: str):
    return invoke("plan", "--scenario", SCENARIO, "--db", f"sqlite:///{path}", *options)


def run(path, *options: str):
    return invoke("run", "--scenario", SCENARIO, "--db", f"sqlite:///{path}", "--stop-timeout", "1", *options)


def test_a_plan_shows_what_it_would_do_the_end_state_and_how_many_would_change(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    doc = plan(path, "--json").doc
    build = next(i for i in doc["instances"] if i["name"] == "build-interrupted")
    assert (build["state"], build["would_be"], build["would_change"]) == (
        "building/spawning/nostate", "error/none/nostate", True)  # not its current state: the decision's end
    assert doc["would_change"] == sum(i["would_change"] for i in doc["instances"]) == 17
    plugged = next(i for i in doc["instances"] if i["name"] == "plain-running-guest")
    assert plugged["would_change"] is False  # plug_vifs only re-asserts: nothing would change
    table = invoke("plan", "--scenario", SCENARIO, "--db", f"sqlite:///{path}").stdout
    assert "compute-recover plan for compute-1 (nothing was changed)" in table
    assert "skipped" not in table and "would change" in table and 'reboot(type="hard")' in table
    assert "would change 17 of 23 instances" in table
    rows = plan(path, "-f", "value", "-c", "uuid", "-c", "would_be", "-c", "actions").stdout.splitlines()
    assert f'{U("03")} active/none/running reboot(type="hard")' in rows
    dry_run = run(path, "--dry-run", "--json").doc
    assert dry_run | {"seconds": 0} == doc | {"seconds": 0}  # run --dry-run is the same plan


def test_detailed_exitcode_tells_pending_changes_from_nothing_to_do(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    assert plan(path, "-f", "value", "-c", "uuid").exit_code == 0  # opt-in only
    assert plan(path, "-f", "value", "-c", "uuid", "--detailed-exitcode").exit_code == 5
    assert run(path, "--dry-run", "--detailed-exitcode", "-f", "value", "-c", "uuid").exit_code == 5
    assert run(path, "--detailed-exitcode").exit_code == 2  # a real run's exit code says how it went
    clean = tmp_path / "clean.sqlite"
    load_scenario(clean, "clean-host")
    args = ("plan", "--scenario", FIXTURES / "clean-host", "--db", f"sqlite:///{clean}", "--json",
            "--detailed-exitcode")
    settled = invoke(*args)
    assert settled.exit_code == 0 and settled.doc["would_change"] == 0  # plug_vifs only: nothing to do
    assert invoke(*args, "--resume-guests-state-on-host-boot").exit_code == 5


def test_names_are_in_the_json_the_rows_and_the_table(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    out = run(path, "--json")
    item = out.item("03")
    assert (item["name"], item["domain"]) == ("soft-reboot-became-hard", "instance-00000003")
    assert run(path, "--dry-run", "-f", "value", "-c", "name", "-c", "domain").stdout.splitlines()[2] == (
        "soft-reboot-became-hard instance-00000003")
    wide = CliRunner().invoke(cli, ["run", "--scenario", str(SCENARIO), "--db", f"sqlite:///{path}", "--dry-run"],
                              env={"COMPUTE_RECOVER_DB": None, "COLUMNS": "200"})
    assert "soft-reboot-became-hard / instance-00000003" in wide.stdout
    explained = invoke("explain", U("03"), "--db", f"sqlite:///{path}", "-f", "value", "-c", "name", "-c", "outcome")
    assert explained.stdout == "soft-reboot-became-hard ok\n"


def test_runs_lists_the_runs_and_prints_the_last_ones_report_as_it_was(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    url = f"sqlite:///{path}"
    first = run(path)
    second = run(path, "--json")
    listed = invoke("runs", "--db", url, "--json").doc
    assert [(r["id"], r["host"], r["status"], r["exit_code"]) for r in listed] == [
        (2, HOST, "finished", 0), (1, HOST, "finished", 0)]
    assert listed[1]["totals"]["ok"] == 23 and listed[0]["seconds"] >= 0
    assert invoke("runs", "1", "--db", url).stdout == first.stdout
    assert invoke("runs", "last", "--db", url, "--json").stdout == second.stdout
    assert invoke("runs", "--db", url, "-f", "value", "-c", "id").stdout == "2\n1\n"


def test_outcome_filters_show_only_those_instances(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    url = f"sqlite:///{path}"
    assert run(path, "--failed", "-f", "value", "-c", "uuid").stdout == ""
    doc = json.loads(invoke("runs", "last", "--db", url, "--outcome", "ok", "--json").stdout)
    assert doc["shown"] == {"outcomes": ["ok"], "instances": 23} and len(doc["instances"]) == 23
    assert invoke("runs", "--db", url, "--failed", "-f", "value", "-c", "id").stdout == ""
    assert invoke("runs", "--db", url, "--outcome", "ok", "-f", "value", "-c", "id").stdout == "1\n"
    assert "shown: 0 of 23 instances (outcome failed)" in invoke("runs", "1", "--db", url, "--outcome",
                                                                   "failed").stdout


def test_changes_shows_only_the_instances_the_plan_would_change(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    doc = json.loads(plan(path, "--resume-guests-state-on-host-boot", "--changes", "--json").stdout)
    assert doc["shown"] == {"outcomes": [], "instances": 18, "would_change": True}
    assert len(doc["instances"]) == 18 and all(i["would_change"] for i in doc["instances"])
    assert doc["would_change"] == 18 and doc["totals"]["instances"] == 23  # the totals stay the plan's
    table = plan(path, "--resume-guests-state-on-host-boot", "--changes").stdout
    assert "shown: 18 of 23 instances (the plan would change)" in table
    unchanged = plan(path, "--changes", "--outcome", "failed").stdout
    assert "no instance of outcome failed and the plan would change" in " ".join(unchanged.split())
    refused = run(path, "--changes")
    assert refused.exit_code == 2 and "--changes goes with --dry-run" in refused.stderr

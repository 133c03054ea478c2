"""Plan, then apply (docs/plan.md): `plan --out FILE` writes the plan, `run --plan FILE` executes
exactly it and holds back each instance whose facts changed since.

Real libvirt test driver (a changed domain is a changed scenario document, since the driver reads
it afresh on every connection), real SQLite files, and PostgreSQL and MariaDB through the
`database_url` fixture. Other writers are played by direct SQL, as another nova-compute or the
API would write.
"""

import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.adapters.hypervisor import Hypervisor
from recovery.cli import cli
from recovery.core.facts import Options
from recovery.core.machine import shared_machine
from recovery.core.settings import RunSettings
from recovery.db import open_database
from recovery.run.boot import HostBoot
from recovery.run.plan_file import PlanApplication, PlanFileError, parse_plan
from tests.support.commands import python_command
from tests.support.in_process import load_records
from tests.support.paths import FIXTURES
from tests.support.rows import rows
from tests.support.scenarios import instance_uuid, write_scenario

HOST = "plan-host"
COUNT = 30


class Cli:
    def __init__(self, *args: object):
        result = CliRunner().invoke(cli, [str(a) for a in args], env={"COMPUTE_RECOVER_DB": None},
                                    catch_exceptions=False)
        self.exit_code, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr

    @property
    def items(self) -> dict[str, dict]:
        return {item["uuid"]: item for item in json.loads(self.stdout)["instances"]}


def instance_rows(url: str) -> dict[str, dict]:
    return {row["uuid"]: row for row in rows(url, "SELECT uuid, vm_state, task_state, power_state, deleted, "
                                                 "updated_at FROM instances")}


def journal_outcomes(url: str) -> dict[str, str]:
    return {row["instance_uuid"]: row["outcome"] for row in rows(url, "SELECT instance_uuid, outcome FROM "
                                                                     "recovery_journal")}


def everything(url: str) -> dict[str, list]:
    """Every row of every table the run could write, for before/after comparisons on any database."""
    tables = ("instances", "migrations", "services", "compute_nodes", "recovery_runs", "recovery_journal")
    return {t: sorted(map(repr, rows(url, f"SELECT * FROM {t}"))) for t in tables}


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A generated outage scenario of COUNT instances, its records loaded as an operator loads them."""
    return write_scenario(tmp_path / "scenario", COUNT, host=HOST)


def loaded(scenario: Path, url: str) -> str:
    load_records(url, scenario)
    return url


def make_plan(scenario: Path, url: str, out: Path, *options: str) -> dict:
    made = Cli("plan", "--scenario", scenario, "--db", url, "--out", out, "--json", *options)
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["dry_run"] is True  # the normal plan output is still printed
    return json.loads(out.read_text())


def apply_plan(scenario: Path, url: str, plan: Path, *options: str) -> Cli:
    return Cli("run", "--plan", plan, "--scenario", scenario, "--db", url, "--json", "--stop-timeout", "1", *options)


def planned(document: dict) -> dict[str, dict]:
    return {item["uuid"]: item for item in document["instances"]}


def action_names(actions: list[dict]) -> list[str]:
    return [a["name"] for a in actions]


def set_runstate(scenario: Path, uuid: str, runstate: int | None) -> None:
    """Change (or, with None, remove) one domain in the scenario's libvirt document, as if the guest changed."""
    document = (scenario / "libvirt.xml").read_text()
    start = document.index(f"<uuid>{uuid}</uuid>")
    begin, end = document.rindex("<domain", 0, start), document.index("</domain>", start) + len("</domain>")
    domain = document[begin:end]
    if runstate is None:
        changed = ""
    else:
        old = domain[domain.index("<test:runstate>"):domain.index("</test:runstate>")]
        changed = domain.replace(old, f"<test:runstate>{runstate}")
    (scenario / "libvirt.xml").write_text(document[:begin] + changed + document[end:])


def first(document: dict, vm_state: str, task_state: str | None, domain_state: str | None) -> str:
    """The first planned instance in this state (the generated mix always has one)."""
    return next(item["uuid"] for item in document["instances"]
                if (item["record"]["vm_state"], item["record"]["task_state"], item["domain_state"])
                == (vm_state, task_state, domain_state))


# --- applying a plan ---------------------------------------------------------------------------


def test_run_plan_executes_the_planned_decisions(host, database_url, tmp_path):
    url = loaded(host, database_url)
    document = make_plan(host, url, tmp_path / "plan.json", "--resume-guests-state-on-host-boot")
    assert document["host"] == HOST and document["options"]["resume_guests_state_on_host_boot"] is True
    assert [item["order"] for item in document["instances"]] == list(range(1, COUNT + 1))
    before = instance_rows(url)
    out = apply_plan(host, url, tmp_path / "plan.json")  # no resume flag: the plan's options are used
    assert out.exit_code == 0, out.stderr
    assert set(out.items) == set(planned(document)) == set(before)
    after = instance_rows(url)
    for uuid, item in planned(document).items():
        report = out.items[uuid]
        assert report["outcome"] == "ok", report
        assert action_names(report["actions"]) == action_names(item["decision"]["actions"])
        assert {a["outcome"] for a in report["actions"]} <= {"ok"}
        assert (after[uuid]["vm_state"], after[uuid]["task_state"]) == (report["vm_state"], report["task_state"])
        # written (with a new updated_at) exactly when the record changed: no updated_at without a change
        changed = {name for name, value in after[uuid].items() if value != before[uuid][name]} - {"updated_at"}
        assert (after[uuid]["updated_at"] != before[uuid]["updated_at"]) == bool(changed), (before[uuid], after[uuid])
        if "resume_guest" in action_names(item["decision"]["actions"]):
            assert report["power_state"] == "running"  # the domain, read back over the run's connection
    assert any("resume_guest" in action_names(i["decision"]["actions"]) for i in document["instances"])
    assert set(journal_outcomes(url).values()) == {"ok"}


def change_row(scenario: Path, url: str, uuid: str) -> None:
    """Someone starts deleting the instance: its row is written (task_state, updated_at)."""
    rows(url, "UPDATE instances SET task_state = 'deleting', updated_at = :now WHERE uuid = :uuid",
         now=datetime(2030, 1, 2, 3, 4, 5), uuid=uuid)


def start_domain(scenario: Path, url: str, uuid: str) -> None:
    set_runstate(scenario, uuid, 1)


def remove_domain(scenario: Path, url: str, uuid: str) -> None:
    set_runstate(scenario, uuid, None)


@pytest.mark.parametrize(("plan_options", "state", "planned_action", "change", "words"), [
    ((), ("active", "rebooting", "shutdown"), "reboot", change_row,
     ["task_state rebooting → deleting", "updated_at null → 2030-01-02 03:04:05"]),
    (("--resume-guests-state-on-host-boot",), ("active", None, "shutdown"), "resume_guest", start_domain,
     ["power_state shutdown → running"]),
    (("--resume-guests-state-on-host-boot",), ("active", None, "shutdown"), "resume_guest", remove_domain,
     ["domain_present true → false"]),
], ids=["row-changed", "domain-started", "domain-gone"])
def test_an_instance_changed_after_the_plan_is_held_back_and_the_rest_executed(
        host, database_url, tmp_path, plan_options, state, planned_action, change, words):
    url = loaded(host, database_url)
    document = make_plan(host, url, tmp_path / "plan.json", *plan_options)
    changed = first(document, *state)
    assert planned_action in action_names(planned(document)[changed]["decision"]["actions"])
    change(host, url, changed)
    written = instance_rows(url)[changed]
    out = apply_plan(host, url, tmp_path / "plan.json")
    assert out.exit_code == 1, out.stderr
    item = out.items[changed]
    assert (item["outcome"], item["actions"]) == ("changed", [])
    for said in words:
        assert said in item["error"]
    assert instance_rows(url)[changed] == written  # untouched
    assert {i["outcome"] for uuid, i in out.items.items() if uuid != changed} == {"ok"}
    assert journal_outcomes(url)[changed] == "changed"
    assert json.loads(out.stdout)["totals"]["changed"] == 1


def test_instances_new_or_gone_since_the_plan_are_reported_and_untouched(host, tmp_path):
    url = loaded(host, f"sqlite:///{tmp_path / 'db.sqlite'}")
    document = make_plan(host, url, tmp_path / "plan.json")
    gone = first(document, "building", "spawning", None)  # no domain: deleting its row takes it off the host
    rows(url, "DELETE FROM instances WHERE uuid = :uuid", uuid=gone)
    new = instance_uuid(HOST, COUNT + 1)
    rows(url, "INSERT INTO instances (uuid, host, node, display_name, vm_state, task_state, power_state, deleted) "
             "VALUES (:uuid, :host, :host, 'late', 'active', 'rebooting', 1, 0)", uuid=new, host=HOST)
    out = apply_plan(host, url, tmp_path / "plan.json")
    assert out.exit_code == 1
    assert out.items[new]["outcome"] == "unplanned" and "not in the plan" in out.items[new]["error"]
    assert out.items[gone]["outcome"] == "changed" and "no longer an instance of this host" in out.items[gone]["error"]
    row = instance_rows(url)[new]
    assert (row["vm_state"], row["task_state"], row["updated_at"]) == ("active", "rebooting", None)
    assert journal_outcomes(url)[new] == "unplanned"
    assert {i["outcome"] for uuid, i in out.items.items() if uuid not in (new, gone)} == {"ok"}


def test_a_row_changed_between_the_read_and_the_claim_is_held_back_not_decided_again(tmp_path):
    """While 01's VIFs are plugged (one instance at a time), someone turns 03's reboot into a hard one:
    a plain run would decide 03 again; applying a plan, the claim on the planned updated_at is lost
    and 03 is held back."""
    scenario = FIXTURES / "power-outage"
    path = tmp_path / "db.sqlite"
    url = loaded(scenario, f"sqlite:///{path}")
    make_plan(scenario, url, tmp_path / "plan.json")
    one, three = (f"6c1a0b52-0000-4000-8000-0000000000{nn}" for nn in ("01", "03"))
    plug = python_command(tmp_path, "plug.py", f"""
if sys.argv[-1] == {one!r}:
    con = sqlite3.connect({str(path)!r}, timeout=30)
    con.execute("UPDATE instances SET task_state = 'rebooting_hard' WHERE uuid = ?", ({three!r},))
    con.commit()
""")
    out = apply_plan(scenario, url, tmp_path / "plan.json", "--concurrency", "1", "--plug-vifs-command", plug)
    assert out.exit_code == 1
    item = out.items[three]
    assert item["outcome"] == "changed"
    assert "task_state rebooting → rebooting_hard" in item["error"]
    assert instance_rows(url)[three]["task_state"] == "rebooting_hard"  # the other writer's, not overwritten
    assert journal_outcomes(url)[three] == "changed"
    assert out.items[one]["outcome"] == "ok"


def test_explain_shows_the_plan_a_run_applied(host, tmp_path):
    url = loaded(host, f"sqlite:///{tmp_path / 'db.sqlite'}")
    document = make_plan(host, url, tmp_path / "plan.json")
    assert apply_plan(host, url, tmp_path / "plan.json").exit_code == 0
    digest = hashlib.sha256((tmp_path / "plan.json").read_bytes()).hexdigest()
    explained = Cli("explain", document["instances"][0]["uuid"], "--db", url)
    assert explained.exit_code == 0, explained.stderr
    assert f"applied plan {tmp_path / 'plan.json'} (sha256 {digest}" in explained.stdout


def test_a_decision_option_given_to_the_run_must_be_the_plans(host, tmp_path):
    path = tmp_path / "db.sqlite"
    url = loaded(host, f"sqlite:///{path}")
    make_plan(host, url, tmp_path / "plan.json")
    before = path.read_bytes()
    out = apply_plan(host, url, tmp_path / "plan.json", "--resume-guests-state-on-host-boot")
    assert out.exit_code == 2
    assert "--resume-guests-state-on-host-boot true (the plan: false)" in out.stderr
    assert len(out.stderr.splitlines()) == 1
    assert path.read_bytes() == before
    same = apply_plan(host, url, tmp_path / "plan.json", "--no-resume-guests-state-on-host-boot")
    assert same.exit_code == 0, same.stderr


def test_run_plan_uses_the_plans_libvirt_uri_unless_one_is_given(host, tmp_path):
    url = loaded(host, f"sqlite:///{tmp_path / 'db.sqlite'}")
    uri = f"test://{host / 'libvirt.xml'}"
    made = Cli("plan", "--libvirt-uri", uri, "--host", HOST, "--db", url, "--out", tmp_path / "plan.json")
    assert made.exit_code == 0, made.stderr
    elsewhere = Cli("run", "--plan", tmp_path / "plan.json", "--host", HOST, "--db", url, "--json",
                    "--libvirt-uri", "test:///default")
    assert elsewhere.exit_code == 2 and "libvirt URI" in elsewhere.stderr  # given: still the run's own
    out = Cli("run", "--plan", tmp_path / "plan.json", "--host", HOST, "--db", url, "--json", "--stop-timeout", "1")
    assert out.exit_code == 0, out.stderr
    assert len(out.items) == COUNT and {item["outcome"] for item in out.items.values()} == {"ok"}


def test_applying_a_plan_issues_no_statement_more_than_a_run(tmp_path):
    """The comparison with the plan is in memory: as many SQL statements as a plain run of the same host."""
    scenario = write_scenario(tmp_path / "scenario", 200, host=HOST)
    counts = {}
    for name in ("plain", "planned"):
        url = loaded(scenario, f"sqlite:///{tmp_path / f'{name}.sqlite'}")
        screen = None
        if name == "planned":
            make_plan(scenario, url, tmp_path / "plan.json", "--resume-guests-state-on-host-boot")
            screen = PlanApplication(parse_plan((tmp_path / "plan.json").read_bytes(), "plan.json"))
        db = open_database(url)
        settings = RunSettings(host=HOST, node=HOST, options=Options(True), stop_timeout=1)
        try:
            hypervisor = Hypervisor.open(f"test://{scenario / 'libvirt.xml'}", read_only=False)
            with db.count_statements() as counter:
                result = HostBoot(shared_machine(), hypervisor, db, settings, screen=screen).run()
        finally:
            db.close()
        assert result.totals["ok"] == 200, result.totals
        counts[name] = counter.count
    assert counts["planned"] == counts["plain"]


# --- plan files that must not be applied ----------------------------------------------------------


def resealed(document: dict) -> str:
    """A document edited as a forger would, its checksum made to match again."""
    from recovery.run.plan_file import checksum

    body = {k: v for k, v in document.items() if k != "sha256"}
    return json.dumps({**body, "sha256": checksum(body)})


def other_host(document: dict) -> str:
    return resealed({**document, "host": "another-host"})


def tampered(document: dict) -> str:
    document["instances"][0]["decision"]["actions"] = [{"name": "restart_deletion"}]
    return json.dumps(document)


def wrong_version(document: dict) -> str:
    return resealed({**document, "version": 2})


def planned_twice(document: dict) -> str:
    return resealed({**document, "instances": document["instances"] + document["instances"][:1]})


def bad_record(document: dict) -> str:
    document["instances"][0]["record"]["vm_state"] = "exploded"
    return resealed(document)


def other_options(document: dict) -> str:
    return resealed({**document, "options": {**document["options"], "resume_policy": "sometimes"}})


def absurd_downtime(document: dict) -> str:
    return resealed({**document, "options": {**document["options"], "max_downtime": 1e300}})


HOSTILE = {
    "another host": (other_host, "was made for host 'another-host', not 'plan-host'"),
    "tampered": (tampered, "does not match its checksum"),
    "truncated": (lambda d: json.dumps(d)[:2000], "is not a whole plan: not valid JSON"),
    "wrong version": (wrong_version, "has format version 2; this compute-recover applies version 1"),
    "not a plan": (lambda d: json.dumps({"instances": []}), "is not a compute-recover plan"),
    "deep nesting": (lambda d: "[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    "huge integer": (lambda d: '{"version": ' + "9" * 5000 + "}", "larger than any Nova column holds"),
    "NaN": (lambda d: '{"version": NaN}', "NaN and Infinity are refused"),
    "planned twice": (planned_twice, "is planned twice"),
    "bad record": (bad_record, "instances[0]: unknown vm_state 'exploded'"),
    "bad option": (other_options, "options.resume_policy 'sometimes' is not a resume policy"),
    "absurd downtime": (absurd_downtime, "options.max_downtime must be null or a number of seconds above 0 and at"),
    "not UTF-8": (lambda d: "\udcff", "not valid UTF-8"),
    "lone surrogate": (lambda d: json.dumps({**d, "host": "\ud800"}), "does not match its checksum"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_bad_plan_file_is_refused_in_one_line_and_changes_nothing(host, tmp_path, case):
    path = tmp_path / "db.sqlite"
    url = loaded(host, f"sqlite:///{path}")
    document = make_plan(host, url, tmp_path / "plan.json")
    spoil, words = HOSTILE[case]
    (tmp_path / "plan.json").write_bytes(spoil(document).encode("utf-8", "surrogateescape"))
    before = path.read_bytes()
    out = apply_plan(host, url, tmp_path / "plan.json")
    assert out.exit_code == 2
    assert words in out.stderr
    assert len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("db.sqlite-*"))  # not even opened for writing


@pytest.fixture(scope="module")
def plan_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A whole plan file of a small host, made once for the damage properties."""
    directory = tmp_path_factory.mktemp("plan")
    scenario = write_scenario(directory / "scenario", 8, host=HOST)
    make_plan(scenario, loaded(scenario, f"sqlite:///{directory / 'db.sqlite'}"), directory / "plan.json")
    return (directory / "plan.json").read_bytes()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_cut_of_a_plan_file_is_refused(plan_bytes, data):
    cut = data.draw(st.integers(0, len(plan_bytes) - 2))
    with pytest.raises(PlanFileError):
        parse_plan(plan_bytes[:cut], "plan.json")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_changed_byte_is_refused_or_means_the_same_plan(plan_bytes, data):
    """A byte changed anywhere: refused, or (a space made a tab) the very same plan."""
    where = data.draw(st.integers(0, len(plan_bytes) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != plan_bytes[where]))
    damaged = plan_bytes[:where] + bytes([byte]) + plan_bytes[where + 1:]
    try:
        plan = parse_plan(damaged, "plan.json")
    except PlanFileError:
        return
    assert plan.instances == parse_plan(plan_bytes, "plan.json").instances


def test_a_plan_for_another_host_changes_nothing_on_a_database_server(host, server_database_url, tmp_path):
    url = loaded(host, server_database_url)
    document = make_plan(host, url, tmp_path / "plan.json")
    (tmp_path / "plan.json").write_text(other_host(document))
    before = everything(url)
    out = apply_plan(host, url, tmp_path / "plan.json")
    assert out.exit_code == 2 and "was made for host 'another-host'" in out.stderr
    assert everything(url) == before


def test_a_missing_plan_file_is_one_line(tmp_path):
    out = Cli("run", "--plan", tmp_path / "nowhere.json", "--scenario", FIXTURES / "clean-host",
              "--db", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert out.exit_code == 2
    assert out.stderr.strip() == (f"compute-recover: cannot read plan file {tmp_path / 'nowhere.json'}: "
                                  "No such file or directory")


# --- writing the plan ------------------------------------------------------------------------------


def test_the_plan_file_is_readable_by_its_owner_only(host, tmp_path):
    url = loaded(host, f"sqlite:///{tmp_path / 'db.sqlite'}")
    old_umask = os.umask(0o022)
    try:
        make_plan(host, url, tmp_path / "plan.json")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "plan.json").stat().st_mode) == 0o600


@pytest.fixture
def unwritable_directory(tmp_path: Path) -> Path:
    """A directory no file can be made in: read-only by mode, or (root ignores modes) /sys, read-only for all."""
    if os.geteuid() == 0:
        return Path("/sys")
    directory = tmp_path / "read-only"
    directory.mkdir(mode=0o500)
    return directory


def test_plan_out_to_an_unwritable_place_is_one_line_and_leaves_no_file(host, tmp_path, unwritable_directory):
    url = loaded(host, f"sqlite:///{tmp_path / 'db.sqlite'}")
    listing = sorted(os.listdir(unwritable_directory))
    out = Cli("plan", "--scenario", host, "--db", url, "--out", unwritable_directory / "plan.json")
    assert out.exit_code == 2
    assert out.stderr.startswith(f"compute-recover: cannot write plan file {unwritable_directory / 'plan.json'}: ")
    assert len(out.stderr.splitlines()) == 1 and out.stdout == ""
    assert sorted(os.listdir(unwritable_directory)) == listing


def test_a_failed_plan_leaves_neither_the_file_nor_a_temporary_one(tmp_path):
    """A plan that cannot be made (the database has no instance records) writes no file at all."""
    empty = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    assert Cli("db", "upgrade", "--db", empty).exit_code == 0
    (tmp_path / "out").mkdir()
    out = Cli("plan", "--libvirt-uri", "test:///nowhere/at/all.xml", "--host", HOST, "--db", empty,
              "--out", tmp_path / "out" / "plan.json")
    assert out.exit_code != 0
    assert list((tmp_path / "out").iterdir()) == []

"""Nova's own code is the judge (issue 18, item 4): a cell database built by Nova 34.0.0's own schema
migrations and filled through Nova's objects, on SQLite, PostgreSQL and MariaDB; `compute-recover run`
on it; then Nova's objects load every row back, and nova-compute's start (Nova's real
_destroy_evacuated_instances and _init_instance, its collaborators recorded: tests/support/nova_judge.py)
acts on exactly the instances the report hands to nova-compute, and on no other.

Nova runs in the suite's own virtualenv (build/nova-venv, made by `make test`), as a subprocess:
the product's environment never holds Nova. Without it these tests are skipped, saying how to build it.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import make_url

from recovery.cli import cli
from tests.support.paths import ROOT

NOVA_PYTHON = ROOT / "build" / "nova-venv" / "bin" / "python"
JUDGE = ROOT / "tests" / "support" / "nova_judge.py"
HOST, OTHER = "compute-1", "compute-2"
RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 1, 3, 4, 7
TEST_RUNSTATE = {RUNNING: 1, PAUSED: 3, SHUTDOWN: 5, SUSPENDED: 7}
"""Nova's power integers as libvirt test-driver run states (5: shut off, 7: pm-suspended)."""
NOVA_POWER = {"running": RUNNING, "paused": PAUSED, "shutdown": SHUTDOWN, "crashed": 6, "suspended": 7}
ROUTINE = {("driver", "get_info"), ("driver", "list_instance_uuids"), ("driver", "list_instances"),
           ("driver", "instance_exists"), ("driver", "plug_vifs"), ("driver", "check_instance_shared_storage_local"),
           ("network", "get_instance_nw_info"), ("shares", "get_share_info")}
"""What nova-compute's start does to every instance it looks at (reads, and plugging the VIFs again):
not acting on it."""
CHILD_TABLES = {"instance_extra": "instance_uuid", "instance_system_metadata": "instance_uuid",
                "instance_info_caches": "instance_uuid", "instance_id_mappings": "uuid",
                "instance_metadata": "instance_uuid"}
"""The child rows Nova's instance.destroy() soft-deletes with the instance."""


DOWN_SINCE = (datetime.now(UTC) - timedelta(hours=2)).replace(tzinfo=None).isoformat()
"""The host's last heartbeat: down two hours, longer than if-down-less-than:1h allows, less than 1d."""


def U(n: int) -> str:
    return f"6c1a0b52-0000-4000-8000-0000000019{n:02d}"


def instance(n: int, vm_state: str, task_state: str | None, power: int, domain: int | None, **extra: Any) -> dict:
    return {"uuid": U(n), "host": HOST, "vm_state": vm_state, "task_state": task_state, "power_state": power,
            "domain": domain, **extra}


INSTANCES = [
    instance(1, "active", None, RUNNING, RUNNING),
    instance(2, "active", None, RUNNING, SHUTDOWN, metadata={"recover:resume": "never"}),
    instance(3, "active", None, RUNNING, SHUTDOWN),
    instance(4, "active", None, RUNNING, None),
    instance(5, "stopped", None, SHUTDOWN, SHUTDOWN),
    instance(6, "active", "deleting", RUNNING, RUNNING),
    instance(7, "deleted", None, SHUTDOWN, None),
    instance(8, "building", None, 0, None),
    instance(9, "active", "spawning", 0, None),
    instance(10, "active", "rebuilding", RUNNING, SHUTDOWN),
    instance(11, "active", "image_snapshot", RUNNING, RUNNING),
    instance(12, "active", "resize_prep", RUNNING, RUNNING),
    instance(13, "active", "rebooting", RUNNING, SHUTDOWN),
    instance(14, "active", "reboot_pending", RUNNING, RUNNING),
    instance(15, "stopped", "reboot_pending_hard", SHUTDOWN, SHUTDOWN),
    instance(16, "active", "rebooting_hard", RUNNING, RUNNING),
    instance(17, "active", "pausing", RUNNING, RUNNING),
    instance(18, "paused", "unpausing", PAUSED, PAUSED),
    instance(19, "active", "powering-off", RUNNING, RUNNING),
    instance(20, "stopped", "powering-on", SHUTDOWN, SHUTDOWN),
    instance(21, "active", "resize_migrating", RUNNING, SHUTDOWN, system_metadata={"old_vm_state": "active"}),
    instance(22, "active", "migrating", RUNNING, RUNNING),
    instance(23, "error", None, SHUTDOWN, SHUTDOWN),
    instance(24, "soft-delete", None, SHUTDOWN, SHUTDOWN),
    instance(25, "error", "deleting", SHUTDOWN, SHUTDOWN),
    # Evacuated to compute-2 while this host was down, in every status Nova looks at, and after.
    instance(30, "active", None, RUNNING, RUNNING, host=OTHER),
    instance(31, "active", None, RUNNING, None, host=OTHER),
    instance(32, "active", None, RUNNING, RUNNING, host=OTHER),
    instance(33, "active", None, RUNNING, RUNNING, host=OTHER),
    instance(34, "active", None, RUNNING, RUNNING, host=OTHER, deleted=True),
    # Evacuations in the statuses Nova leaves alone (the instance where the failure left it), and deleted
    # instances' evacuations in several statuses, with and without a domain left here.
    instance(35, "error", None, RUNNING, RUNNING, host=OTHER),
    instance(36, "error", None, RUNNING, SHUTDOWN),
    instance(37, "active", None, RUNNING, RUNNING),
    instance(38, "active", None, RUNNING, RUNNING, host=OTHER, deleted=True),
    instance(39, "active", None, RUNNING, None, host=OTHER, deleted=True),
    instance(26, "active", None, RUNNING, RUNNING, host=OTHER, deleted=True),
    instance(27, "error", None, RUNNING, None, host=OTHER, deleted=True),
    instance(28, "active", None, RUNNING, None, host=OTHER, deleted=True),
    instance(29, "active", None, RUNNING, SHUTDOWN, host=OTHER, deleted=True),
    # Every other vm_state, and the task states _init_instance passes by or handles on its way.
    instance(40, "rescued", None, RUNNING, RUNNING),
    instance(41, "rescued", None, RUNNING, SHUTDOWN),
    instance(42, "shelved", None, SHUTDOWN, SHUTDOWN),
    instance(43, "shelved_offloaded", None, 0, None, host=None),
    instance(44, "suspended", None, SHUTDOWN, SHUTDOWN),
    instance(45, "suspended", None, SUSPENDED, SUSPENDED),
    instance(46, "resized", None, RUNNING, RUNNING),
    instance(47, "soft-delete", None, RUNNING, RUNNING),
    instance(48, "soft-delete", None, RUNNING, SHUTDOWN),
    instance(49, "paused", None, PAUSED, PAUSED),
    instance(50, "active", "rescuing", RUNNING, RUNNING),
    instance(51, "rescued", "unrescuing", RUNNING, RUNNING),
    instance(52, "active", "suspending", RUNNING, SHUTDOWN),
    instance(53, "suspended", "resuming", SHUTDOWN, SHUTDOWN),
    instance(54, "active", "shelving", RUNNING, RUNNING),
    instance(55, "active", "shelving_image_uploading", SHUTDOWN, SHUTDOWN),
    instance(56, "shelved", "shelving_offloading", SHUTDOWN, SHUTDOWN),
    instance(57, "building", "spawning", 0, None),
    instance(58, "active", "rebuild_spawning", 0, None),
    instance(59, "stopped", "rebuild_block_device_mapping", SHUTDOWN, SHUTDOWN),
    instance(60, "resized", "resize_reverting", RUNNING, RUNNING),
    instance(61, "active", "resize_finish", RUNNING, SHUTDOWN),
    instance(62, "active", "resize_migrated", RUNNING, SHUTDOWN),
    instance(63, "stopped", "powering-off", SHUTDOWN, SHUTDOWN),
    instance(64, "soft-delete", "deleting", SHUTDOWN, SHUTDOWN),
    instance(65, "active", None, RUNNING, PAUSED),
    instance(66, "active", None, RUNNING, None, metadata={"recover:resume": "always"}),
    instance(67, "active", None, RUNNING, None, metadata={"recover:resume": "if-down-less-than:1d"}),
    instance(68, "active", None, RUNNING, None, metadata={"recover:resume": "never"}),
    instance(69, "active", None, RUNNING, SHUTDOWN, metadata={"recover:resume": "if-down-less-than:1h"}),
    instance(70, "active", None, RUNNING, None, metadata={"recover:resume": "if-down-less-than:1h"}),
    instance(71, "active", None, SHUTDOWN, SHUTDOWN, metadata={"recover:resume": "always"}),
    instance(72, "stopped", None, SHUTDOWN, None),
    instance(73, "active", "pausing", RUNNING, PAUSED),
    instance(74, "active", None, RUNNING, SUSPENDED),
    instance(75, "active", None, RUNNING, SHUTDOWN, metadata={"recover:resume": "always"}),
    instance(76, "stopped", "reboot_started_hard", SHUTDOWN, SHUTDOWN),
    instance(77, "active", "unpausing", RUNNING, RUNNING),
    instance(78, "active", "image_backup", RUNNING, RUNNING),
    instance(79, "shelved_offloaded", "spawning", 0, None),
    instance(80, "shelved_offloaded", "unshelving", 0, None),
    instance(81, "active", "soft-deleting", RUNNING, RUNNING),
    instance(82, "active", "updating_password", RUNNING, RUNNING),
    instance(83, "resized", "resize_confirming", RUNNING, RUNNING),
    instance(84, "paused", None, PAUSED, SHUTDOWN),
    instance(86, "active", "scheduling", 0, None),
    instance(87, "building", "block_device_mapping", 0, None),
    instance(88, "building", "networking", 0, None),
    instance(89, "active", "image_snapshot_pending", RUNNING, RUNNING),
    instance(90, "active", "image_pending_upload", RUNNING, RUNNING),
    instance(91, "active", "image_uploading", RUNNING, SHUTDOWN),
    instance(92, "active", "reboot_started", RUNNING, SHUTDOWN),
    instance(93, "active", "shelving_image_pending_upload", SHUTDOWN, SHUTDOWN),
    instance(94, "soft-delete", "restoring", SHUTDOWN, SHUTDOWN),
]
MIGRATIONS = [
    {"instance_uuid": U(22), "migration_type": "live-migration", "status": "running"},
    {"instance_uuid": U(30), "migration_type": "evacuation", "status": "done"},
    {"instance_uuid": U(31), "migration_type": "evacuation", "status": "accepted"},
    {"instance_uuid": U(32), "migration_type": "evacuation", "status": "pre-migrating"},
    {"instance_uuid": U(33), "migration_type": "evacuation", "status": "completed"},
    {"instance_uuid": U(34), "migration_type": "evacuation", "status": "done"},
    {"instance_uuid": U(35), "migration_type": "evacuation", "status": "failed"},
    {"instance_uuid": U(36), "migration_type": "evacuation", "status": "error"},
    {"instance_uuid": U(37), "migration_type": "evacuation", "status": "cancelled"},
    {"instance_uuid": U(38), "migration_type": "evacuation", "status": "accepted"},
    {"instance_uuid": U(39), "migration_type": "evacuation", "status": "pre-migrating"},
    {"instance_uuid": U(26), "migration_type": "evacuation", "status": "completed"},
    {"instance_uuid": U(27), "migration_type": "evacuation", "status": "failed"},
    {"instance_uuid": U(28), "migration_type": "evacuation", "status": "accepted"},
    {"instance_uuid": U(29), "migration_type": "evacuation", "status": "error"},
    {"instance_uuid": U(46), "migration_type": "resize", "status": "finished", "source_compute": OTHER},
    {"instance_uuid": U(60), "migration_type": "resize", "status": "reverting", "source_compute": OTHER},
    {"instance_uuid": U(83), "migration_type": "resize", "status": "confirming", "source_compute": OTHER},
]
KEPT_AS_IT_IS = {U(2): SHUTDOWN, U(68): None, U(69): SHUTDOWN, U(70): None, U(65): PAUSED, U(73): PAUSED,
                 U(74): SUSPENDED}
"""Guests left as they are, with the power their domain keeps (None: no domain): kept off by their resume
policy, with their domain or without one; or paused or pm-suspended, which resume_guest leaves so, as Nova's
libvirt driver's resume on host boot does. Their observed power state is recorded, so nova-compute's start
with resume_guests_state_on_host_boot leaves them so."""
REVERTED = U(21)
HANDED_OFF = {U(4): "active, its domain gone: rebuilt by _resume_guests_state",
              U(6): "an interrupted deletion: finished by _delete_instance",
              U(7): "deleted, not marked: finished by _complete_partial_deletion",
              U(25): "an interrupted deletion in error: finished by _delete_instance",
              U(30): "evacuated (done), domain here: allocations and migration by _destroy_evacuated_instances",
              U(31): "evacuated (accepted), no domain: the same",
              U(32): "evacuated (pre-migrating), domain here: the same",
              U(66): "active, its domain gone, recover:resume=always: rebuilt by _resume_guests_state",
              U(67): "active, its domain gone, recover:resume=if-down-less-than:1d: the same"}
"""What the division of labour hands to nova-compute in this cell (docs/nova.md)."""


def spec(domains: dict[str, int]) -> dict:
    return {
        "host": HOST, "resume_guests_state_on_host_boot": True,
        "nodes": [{"host": HOST, "uuid": "7a1f0000-0000-4000-8000-000000000001", "last_seen_up": DOWN_SINCE},
                  {"host": OTHER, "uuid": "7a1f0000-0000-4000-8000-000000000002"}],
        "instances": [{k: v for k, v in i.items() if k != "domain"} for i in INSTANCES],
        "migrations": [{"source_compute": HOST, "dest_compute": HOST if m["migration_type"] != "evacuation" else OTHER,
                        **m} for m in MIGRATIONS],
        "domains": domains,
    }


@pytest.fixture(scope="module")
def nova_python() -> Path:
    if not NOVA_PYTHON.exists():
        pytest.skip(f"Nova's virtualenv is missing: `make {NOVA_PYTHON.parent.parent.relative_to(ROOT)}/.installed` "
                    "(part of `make test`) builds it")
    return NOVA_PYTHON


def judge(python: Path, command: str, url: str, tmp_path: Path, document: dict | None = None) -> dict:
    """Run Nova's side (tests/support/nova_judge.py) in Nova's virtualenv; its JSON answer."""
    args = [str(python), str(JUDGE), command, nova_side_url(url)]
    if document is not None:
        path = tmp_path / f"{command}.json"
        path.write_text(json.dumps(document))
        args.append(str(path))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, f"nova_judge {command} failed:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout)


def nova_side_url(url: str) -> str:
    """The same database for Nova's virtualenv, which has psycopg2 where compute-recover has psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def libvirt_node(domains: dict[str, int]) -> str:
    guests = "".join(
        f"<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>instance-{n:08x}</name>"
        f"<uuid>{uuid}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
        f"<test:runstate>{TEST_RUNSTATE[power]}</test:runstate></domain>"
        for n, (uuid, power) in enumerate(domains.items(), start=1))
    return ("<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>2</threads>"
            f"<active>16</active><model>x86_64</model></cpu><memory>33554432</memory>{guests}</node>")


def invoke(*args: object) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COMPUTE_RECOVER_DB": None})


def table_rows(url: str) -> dict[str, dict[Any, dict]]:
    """Every row of the tables a run may write, by table and id (plain SQL, not compute-recover's store)."""
    engine = create_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine, only=["instances", "migrations", "compute_nodes", "services", *CHILD_TABLES])
        with engine.connect() as conn:
            return {name: {row["id"]: dict(row) for row in conn.execute(select(table)).mappings()}
                    for name, table in meta.tables.items()}
    finally:
        engine.dispose()


def only_stamped(before: dict, after: dict) -> list[str]:
    """Rows whose only change is updated_at."""
    return [f"{table} {row_id}" for table, rows in after.items() for row_id, row in rows.items()
            if row_id in before[table] and {k for k in row if row[k] != before[table][row_id][k]} == {"updated_at"}]


def acted_on(calls: list[dict], before: dict, after: dict) -> set[str]:
    """The instances nova-compute's start did something to: a call beyond the routine, or a record change."""
    acted = {c["uuid"] for c in calls if (c["who"], c["method"]) not in ROUTINE and c["uuid"]}
    for table, key in (("instances", "uuid"), ("migrations", "instance_uuid")):
        for row_id, row in after[table].items():
            old = before[table].get(row_id)
            if old is None or {k for k in row if row[k] != old[k]} - {"updated_at"}:
                acted.add(row[key])
    return acted


@pytest.fixture
def cell(database_url: str, nova_python: Path, tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The Nova-built cell, and the host's domains (power integers by uuid); a crashed resize's disks set
    aside in its instances path, as Nova's libvirt driver leaves them; the journal's database made."""
    domains = {i["uuid"]: i["domain"] for i in INSTANCES if i["domain"] is not None}
    built = judge(nova_python, "build", database_url, tmp_path, spec(domains))
    assert built == {"instances": len(INSTANCES), "migrations": len(MIGRATIONS)}
    (tmp_path / "instances" / f"{REVERTED}_resize").mkdir(parents=True)
    (tmp_path / "instances" / f"{REVERTED}_resize" / "disk").write_text("the original disk")
    made = invoke("db", "upgrade", "--journal-db", f"sqlite:///{tmp_path / 'journal.sqlite'}")
    assert made.exit_code == 0, made.output
    yield database_url, domains


def recover(url: str, domains: dict[str, int], tmp_path: Path) -> dict:
    """`compute-recover run` on the cell, its libvirt holding `domains`: its report."""
    node = tmp_path / "node.xml"
    node.write_text(libvirt_node(domains))
    out = invoke("run", "--db", url, "--journal-db", f"sqlite:///{tmp_path / 'journal.sqlite'}", "--libvirt-uri",
                 f"test://{node}", "--host", HOST, "--instances-path", tmp_path / "instances",
                 "--resume-guests-state-on-host-boot", "--stop-timeout", "0.1", "--json")
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def left_domains(report: dict, domains: dict[str, int]) -> dict[str, int]:
    """The host's domains as a run left them: its instances' as re-read after it, the others' as they were."""
    left = {i["uuid"]: NOVA_POWER[i["power_state"]] for i in report["instances"] if i["power_state"] in NOVA_POWER}
    for item in report["domains"]:  # domains the run left alone keep the power they had
        left.setdefault(item["uuid"], domains[item["uuid"]])
    return left


def test_novas_objects_load_every_row_compute_recover_leaves(cell, nova_python, tmp_path):
    url, domains = cell
    recover(url, domains, tmp_path)
    loaded = judge(nova_python, "load", url, tmp_path)
    assert loaded["failures"] == []
    assert loaded["counts"]["instances"] == len(INSTANCES)


def test_nova_computes_start_after_a_run_acts_only_on_what_was_handed_to_it(cell, nova_python, tmp_path):
    url, domains = cell
    before_run = table_rows(url)
    report = recover(url, domains, tmp_path)
    after_run = table_rows(url)
    outcomes = {item["uuid"]: item["outcome"] for item in report["instances"]}
    handed_off = {uuid for uuid, outcome in outcomes.items() if outcome == "handed-off"}
    assert handed_off == set(HANDED_OFF)
    assert {uuid: o for uuid, o in outcomes.items() if o not in ("ok", "handed-off")} == {}
    assert all("left to nova-compute: " in item["reason"] for item in report["instances"] if item["uuid"] in handed_off)
    assert report["totals"]["handed-off"] == len(HANDED_OFF)

    assert only_stamped(before_run, after_run) == []
    deleted = {row["uuid"] for row in after_run["instances"].values() if row["deleted"]}
    live_children = sorted(f"{table} of {row[key]}" for table, key in CHILD_TABLES.items()
                           for row in after_run[table].values()
                           if row[key] in deleted - handed_off and not row["deleted"])
    assert live_children == []

    started = judge(nova_python, "start", url, tmp_path, spec(left_domains(report, domains)))
    assert started["errors"] == []
    after_start = table_rows(url)
    acted = acted_on(started["calls"], after_run, after_start)
    assert acted == handed_off, {"acted beyond the hand-off": sorted(acted - handed_off),
                                 "handed off, not acted on": sorted(handed_off - acted)}
    released = {c["uuid"] for c in started["calls"] if c["who"] == "placement"}
    assert released == set(HANDED_OFF) - {U(4), U(66), U(67)}  # every allocation release handed over is made
    assert {uuid: started["domains"].get(uuid) for uuid in KEPT_AS_IT_IS} == KEPT_AS_IT_IS
    assert not [c for c in started["calls"] if c["uuid"] in KEPT_AS_IT_IS and (c["who"], c["method"]) not in ROUTINE]
    assert (tmp_path / "instances" / REVERTED / "disk").read_text() == "the original disk"


def test_a_second_run_changes_no_row_but_the_services_heartbeat(cell, tmp_path):
    url, domains = cell
    first = recover(url, domains, tmp_path)
    before = table_rows(url)
    second = recover(url, left_domains(first, domains), tmp_path)
    after = table_rows(url)
    changed = {f"{table} {row_id}" for table, rows in after.items() for row_id, row in rows.items()
               if row != before[table].get(row_id)}
    assert changed == {f"services {row_id}" for row_id, row in after["services"].items() if row["host"] == HOST}
    assert {i["outcome"] for i in second["instances"]} == {"ok", "handed-off"}
    assert {i["uuid"] for i in second["instances"] if i["outcome"] == "handed-off"} == set(HANDED_OFF)


EXTENSIONS = {
    U(2): "recover:resume=never (docs/recovery-policy.md): Nova's start would resume it",
    U(68): "recover:resume=never, its domain gone: Nova's start would build it again",
    U(69): "recover:resume=if-down-less-than:1h, the host down 2h: Nova's start would resume it",
    U(70): "the same, its domain gone: Nova's start would build it again",
    U(71): "recover:resume=always: started though it was not running; Nova's start leaves it off",
}
"""Where compute-recover's plan departs from Nova's start on purpose, each documented."""


def test_nova_decides_on_every_pre_run_state_as_the_plan_does(cell, nova_python, tmp_path):
    """Nova's start on the cell as it was before any run acts on exactly the instances the plan acts on
    (here or by handing them to nova-compute), but for the documented extensions."""
    url, domains = cell
    node = tmp_path / "node.xml"
    node.write_text(libvirt_node(domains))
    out = invoke("plan", "--db", url, "--libvirt-uri", f"test://{node}", "--host", HOST,
                 "--resume-guests-state-on-host-boot", "--json")
    assert out.exit_code == 0, out.output
    planned = json.loads(out.stdout)["instances"]
    plan_acts = {i["uuid"] for i in planned if i["outcome"] == "handed-off"
                 or [a for a in i["actions"] if a["name"] != "plug_vifs"]
                 or [step for step in i["path"] if step["from"] != step["to"]]}
    assert plan_acts == {U(n) for n in (3, 4, *range(6, 23), 25, 30, 31, 32, 34, 38, 41, 52, 57, 58, 59, 61, 62, 63,
                                        65, 66, 67, 71, 73, 74, 75, 76, 77, 79, *range(86, 93))}
    before = table_rows(url)
    started = judge(nova_python, "start", url, tmp_path, spec(domains))
    nova_acts = acted_on(started["calls"], before, table_rows(url))
    assert nova_acts ^ plan_acts == set(EXTENSIONS), {"Nova only": sorted(nova_acts - plan_acts),
                                                      "plan only": sorted(plan_acts - nova_acts)}

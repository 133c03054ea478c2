"""Compare-and-swap whatever form the row's timestamp was stored in (issue 18, item 3).

SQLite keeps timestamps as text, and not every writer spells them as SQLAlchemy does: other tools
and hand-made fixtures leave whole seconds (`2024-05-14 03:00:00`), a `T` between date and time, or a
shorter fraction. A claim on such an unchanged row must still win, and one on a changed row still
lose; on PostgreSQL's timestamp and MariaDB's DATETIME the instant is what is compared already.
"""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from recovery.cli import cli
from recovery.db import Database, Instance
from recovery.db.scenarios import seed
from tests.support.databases import migrated_database

HOST = "compute-1"
UUID = "6c1a0b52-0000-4000-8000-0000000018a1"
NODE = """<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
<active>2</active><model>x86_64</model></cpu><memory>8388608</memory>
<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>instance-00000001</name>
<uuid>{uuid}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>
<test:runstate>5</test:runstate></domain></node>"""

SQLITE_FORMS = {
    "whole seconds": "2024-05-14 03:00:00",
    "T and whole seconds": "2024-05-14T03:00:00",
    "milliseconds": "2024-05-14 03:00:00.250",
    "microseconds": "2024-05-14 03:00:00.250000",
    "T and microseconds": "2024-05-14T03:00:00.000007",
}


def store_updated_at(db: Database, uuid: str, stored: str) -> None:
    """Write the column's text as another writer left it, past SQLAlchemy's own formatting."""
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE instances SET updated_at = :stored WHERE uuid = :uuid"),
                     {"stored": stored, "uuid": uuid})


def claim(db: Database, uuid: str, updated_at: datetime | None) -> bool:
    row = db.load_instances_by_uuid([uuid])[uuid]
    with db.transaction("claim") as conn:
        return db.compare_and_swap(conn, uuid, (row.vm_state, row.task_state, updated_at),
                                   db.next_stamp(updated_at), task_state=None)


@pytest.mark.parametrize("form", sorted(SQLITE_FORMS))
@pytest.mark.parametrize("restamped", [False, True], ids=["unchanged-wins", "stamped-since-loses"])
def test_a_sqlite_claim_compares_the_instant_whatever_the_stored_form(tmp_path, form, restamped):
    """Unchanged since it was read: the claim wins; saved again by another writer with its states unchanged:
    it loses."""
    db = migrated_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        seed(db, {"host": HOST, "instances": [{"uuid": UUID, "vm_state": "active", "task_state": "rebooting"}]})
        store_updated_at(db, UUID, SQLITE_FORMS[form])
        read = db.load_instances_by_uuid([UUID])[UUID].updated_at
        assert read is not None
        if restamped:
            store_updated_at(db, UUID, "2024-05-14 03:00:01")
        assert claim(db, UUID, read) is not restamped
        assert db.load_instances_by_uuid([UUID])[UUID].task_state == ("rebooting" if restamped else None)
    finally:
        db.close()


def test_a_claim_on_an_unchanged_row_wins_on_every_backend(database_url):
    """PostgreSQL timestamp, MariaDB DATETIME (whole seconds) and SQLite, each as its own writes leave it."""
    db = migrated_database(database_url)
    try:
        seed(db, {"host": HOST, "instances": [{"uuid": UUID, "vm_state": "active", "task_state": "rebooting"}]})
        with db.engine.begin() as conn:
            conn.execute(Instance.__table__.update().values(updated_at=datetime(2024, 5, 14, 3, 0, 0, 123456)))
        read = db.load_instances_by_uuid([UUID])[UUID].updated_at
        assert claim(db, UUID, read) is True
        assert claim(db, UUID, read) is False  # the claim itself changed the row
    finally:
        db.close()


def invoke(*args: object) -> Any:
    return CliRunner().invoke(cli, [str(a) for a in args], env={"COMPUTE_RECOVER_DB": None})


def test_a_row_with_second_precision_timestamps_on_sqlite_is_claimed_and_recovered(tmp_path: Path):
    """The end-to-end case of the issue: before, such a row was `conflict` on every run, never recovered."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = migrated_database(url)
    try:
        seed(db, {"host": HOST, "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}],
                  "instances": [{"uuid": UUID, "vm_state": "active", "task_state": "rebooting_hard",
                                 "power_state": "shutdown"}]})
        store_updated_at(db, UUID, "2024-05-14 03:00:00")
    finally:
        db.close()
    node = tmp_path / "node.xml"
    node.write_text(NODE.format(uuid=UUID))

    out = invoke("run", "--db", url, "--libvirt-uri", f"test://{node}", "--host", HOST, "--json")

    assert out.exit_code == 0, out.output
    [item] = json.loads(out.stdout)["instances"]
    assert item["outcome"] == "ok", item
    assert [a["name"] for a in item["actions"]] == ["reboot"]
    db = migrated_database(url)
    try:
        with db.engine.connect() as conn:
            row = conn.execute(select(Instance.vm_state, Instance.task_state, Instance.power_state)).one()
    finally:
        db.close()
    assert tuple(row) == ("active", None, 1)

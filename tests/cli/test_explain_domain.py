"""`explain` names the libvirt domain each run acted on, from the journal alone (no --live, no libvirt);
a journal made before entries kept the domain's name (journal_0002) is still read, and says it has none."""

from alembic import command

from recovery.db import migrate, open_database
from tests.support.in_process import cli_run, invoke
from tests.support.paths import U


def test_explain_shows_the_domain_the_run_found_without_live(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0

    text = invoke("explain", U("03"), "--db", f"sqlite:///{path}")
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[:2] == [f"instance {U('03')} (soft-reboot-became-hard)",
                                            "host compute-1, node compute-1, libvirt domain instance-00000003"]
    doc = invoke("explain", U("03"), "--db", f"sqlite:///{path}", "--json").doc
    assert doc["domain"] == "instance-00000003" and doc["runs"][0]["domain_name"] == "instance-00000003"
    rows = invoke("explain", U("03"), "--db", f"sqlite:///{path}", "-f", "value", "-c", "run_id", "-c", "domain")
    assert rows.stdout == "1 instance-00000003\n"


def test_an_instance_without_a_domain_is_said_to_have_none(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage").exit_code == 0
    text = invoke("explain", U("08"), "--db", f"sqlite:///{path}")  # build-interrupted: no domain was defined
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[1].endswith(", no libvirt domain journaled")


def test_a_journal_older_than_the_domain_column_is_read_as_it_is(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage").exit_code == 0
    db = open_database(f"sqlite:///{path}")
    config = migrate.config()
    with db.transaction("downgrade") as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "journal_0002")
    db.close()
    old = invoke("explain", U("03"), "--db", f"sqlite:///{path}")
    assert old.exit_code == 0, old.stderr
    assert old.stdout.splitlines()[1] == "host compute-1, node compute-1, no libvirt domain journaled"
    assert "== newest run 1" in old.stdout

    assert invoke("db", "upgrade", "--db", f"sqlite:///{path}").exit_code == 0
    assert cli_run(path, "power-outage").exit_code == 0
    doc = invoke("explain", U("03"), "--db", f"sqlite:///{path}", "--json").doc
    assert doc["domain"] == "instance-00000003"
    assert [r["domain_name"] for r in doc["runs"]] == ["instance-00000003", None]

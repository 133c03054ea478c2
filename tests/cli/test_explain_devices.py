"""`explain --live` proves the guest's devices as a run would before starting it (docs/devices.md): a guest
whose disk is gone is shown blocked with the resource named, not as one that would start."""

import json

from click.testing import CliRunner

from recovery.cli import cli
from recovery.db.scenarios import seed_if_empty
from tests.run.test_run_devices import HOST, U, _host
from tests.support.databases import migrated_database


def _explain_live(tmp_path, nn: str, *flags: str):
    uri, records = _host(tmp_path)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed_if_empty(migrated_database(url), records)
    return CliRunner().invoke(cli, ["explain", U(nn), "--db", url, "--live", "--libvirt-uri", uri,
                                    "--host", HOST, "--resume-guests-state-on-host-boot", *flags])


def test_explain_live_shows_a_guest_whose_disk_is_gone_blocked(tmp_path):
    out = _explain_live(tmp_path, "06", "--json")
    assert out.exit_code == 0, out.output
    live = json.loads(out.stdout)["live"]
    assert live["facts"]["devices"] == "missing"
    assert live["actions"] == [] and "blocked" in live["reason"]
    assert live["devices"] == {"readiness": "missing", "resources": [
        {"kind": "disk", "name": str(tmp_path / "gone.qcow2"), "pool": None, "readiness": "missing",
         "reason": f"disk {tmp_path / 'gone.qcow2'} does not exist"}]}
    text = _explain_live(tmp_path, "06").stdout
    assert "devices: missing" in text
    assert f"  disk {tmp_path / 'gone.qcow2'}: missing — disk {tmp_path / 'gone.qcow2'} does not exist" in text


def test_explain_live_shows_a_ready_guest_as_starting_with_its_resources(tmp_path):
    live = json.loads(_explain_live(tmp_path, "01", "--json").stdout)["live"]
    assert [a["name"] for a in live["actions"]] == ["plug_vifs", "resume_guest"]
    assert live["devices"]["readiness"] == "ready"
    assert {(r["kind"], r["readiness"]) for r in live["devices"]["resources"]} == {("disk", "ready"),
                                                                                 ("network", "ready")}

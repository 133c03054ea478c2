"""What a resumed guest's record says afterwards: its power, and nothing Nova's own resume on host boot
would not write. nova-compute's _resume_guests_state boots the guest and leaves vm_state and task_state
as they were, so a rescued instance stays `rescued` and a task state Nova passes by stays; only a stopped
instance that `recover:resume=always` starts (beyond Nova) is recorded `active`, so that the power sync
does not take it for a guest that started by itself and stop it.

Real parts: `compute-recover run` on the libvirt test driver and an SQLite file.
"""

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support.processes import cli, load
from tests.support.scenarios import write_host

HOST = "compute-1"
UUID = "6c1a0b52-0000-4000-8000-0000000021a1"


@pytest.mark.parametrize(("vm_state", "task_state", "db_power", "metadata", "recorded"), [
    ("rescued", None, 1, {}, ("rescued", None, 1)),
    ("active", "suspending", 1, {}, ("active", "suspending", 1)),
    ("active", None, 1, {}, ("active", None, 1)),
    ("stopped", None, 4, {"recover:resume": "always"}, ("active", None, 1)),
], ids=["rescued", "task-nova-passes-by", "active", "stopped-always"])
def test_a_resumed_guests_record_says_what_nova_would_leave(tmp_path: Path, vm_state, task_state, db_power,
                                                             metadata, recorded):
    records = {"host": HOST, "services": [{"host": HOST, "binary": "nova-compute"}],
               "instances": [{"uuid": UUID, "vm_state": vm_state, "task_state": task_state,
                              "power_state": db_power, "metadata": metadata}]}
    scenario = write_host(tmp_path / "scenario", records, [(1, UUID, 5)], cores=2, memory_kib=8388608)
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, scenario)

    done = cli("run", "--scenario", scenario, "--db", url, "--resume-guests-state-on-host-boot", "--json")

    assert done.returncode == 0, done.stderr
    [item] = json.loads(done.stdout)["instances"]
    assert [(a["name"], a["outcome"]) for a in item["actions"]][-1] == ("resume_guest", "ok")
    assert item["power_state"] == "running"
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT vm_state, task_state, power_state FROM instances WHERE uuid = ?",
                           (UUID,)).fetchone()
    assert row == recorded

"""A tenant's priorities order its own guests only, and a run's readiness waits have a budget.

Real `compute-recover run` processes on the libvirt test driver and a real SQLite file. Project A
has eight guests at eight priorities, each waiting on a guest-agent check that never answers (the
test driver runs no guest agent); project B has one guest at a middle priority. B's guest is not
held back at all; A's waits, whatever its metadata says, end with the run's --readiness-budget.
"""

import json
import subprocess
from pathlib import Path

from tests.support.paths import CONSOLE_SCRIPT

HOST = "compute-1"
A, B = "project-a", "project-b"
DOMAIN = """<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'><name>instance-{n:08x}</name>
<uuid>{uuid}</uuid><memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>
<test:runstate>5</test:runstate></domain>"""


def uuid(number: int) -> str:
    return f"6c1a0b52-0000-4000-8000-{number:012d}"


def tenants_scenario(directory: Path) -> Path:
    """A's guests 1-8 at priorities 0-7 (check: agent), B's guest 9 at priority 4 (check: running);
    all shut off by a power outage, all running before it."""
    guests = [(number, A, number - 1, "agent") for number in range(1, 9)] + [(9, B, 4, "running")]
    instances = [{"uuid": uuid(n), "display_name": f"guest-{n}", "project_id": project, "vm_state": "active",
                  "power_state": "running", "metadata": {"recover:priority": str(priority), "recover:ready": ready}}
                 for n, project, priority, ready in guests]
    directory.mkdir()
    (directory / "db.json").write_text(json.dumps({
        "host": HOST, "instances": instances,
        "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}))
    (directory / "libvirt.xml").write_text(
        "<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>8</cores><threads>1</threads>"
        "<active>8</active><model>x86_64</model></cpu><memory>16777216</memory>"
        + "".join(DOMAIN.format(n=n, uuid=uuid(n)) for n, *_ in guests) + "</node>")
    return directory


def recovered(tmp_path: Path, *options: str) -> dict:
    scenario = tenants_scenario(tmp_path / "scenario")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    run = subprocess.run([CONSOLE_SCRIPT, "run", "--scenario", scenario, "--db", url, "--json",
                          "--resume-guests-state-on-host-boot", "--tier-timeout", "1s", *options],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr  # A's guests are not ready
    return json.loads(run.stdout)


def test_eight_priorities_of_one_project_delay_another_projects_guest_by_0_s(tmp_path):
    report = recovered(tmp_path)
    tiers = {(t["project"], t["priority"]): t for t in report["tiers"]}
    assert sorted(tiers) == [(A, p) for p in range(8)] + [(B, 4)]
    first = min(t["began"] for t in report["tiers"])
    b_tier = tiers[(B, 4)]
    print(f"\nB's tier began {b_tier['began'] - first:.3f} s after the first tier and ended "
          f"{b_tier['ended'] - first:.3f} s after it; A's last tier ended "
          f"{tiers[(A, 7)]['ended'] - first:.2f} s after it")
    assert b_tier["began"] - first < 0.5  # not after A's tiers 0 to 3 (four tier timeouts)
    assert b_tier["ended"] - first < 0.5 and b_tier["not_ready"] == 0
    assert tiers[(A, 7)]["began"] - tiers[(A, 0)]["began"] >= 7 * 1.0  # A's own tiers still wait on each other
    items = {item["uuid"]: item for item in report["instances"]}
    assert items[uuid(9)]["outcome"] == "ok" and items[uuid(9)]["power_state"] == "running"
    assert [items[uuid(n)]["outcome"] for n in range(1, 9)] == ["not-ready"] * 8
    assert items[uuid(1)]["error"].startswith("not ready within the tier timeout (1 s): ")


def test_the_readiness_budget_bounds_the_whole_runs_waiting(tmp_path):
    report = recovered(tmp_path, "--readiness-budget", "3s")
    tiers = {(t["project"], t["priority"]): t for t in report["tiers"]}
    first = min(t["began"] for t in report["tiers"])
    last = max(t["ended"] for t in report["tiers"])
    print(f"\nwaiting with a 3 s budget: {last - first:.2f} s for eight 1 s tiers")
    assert 3.0 <= last - first < 4.0  # eight tiers of 1 s would take 8 s
    items = {item["uuid"]: item for item in report["instances"]}
    assert items[uuid(1)]["error"].startswith("not ready within the tier timeout (1 s)")
    assert items[uuid(8)]["error"].startswith("not ready within the run's readiness budget (3 s)")
    assert tiers[(A, 7)]["ended"] - tiers[(A, 7)]["began"] < 0.5  # started after the budget: not waited for
    assert items[uuid(8)]["power_state"] == "running"  # started all the same, as a timed-out tier's next one is

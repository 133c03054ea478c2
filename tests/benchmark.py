"""`make bench`: decision throughput and memory, and host-boot wall time.

Measured here, never in a timed unit test. Each measured command runs in its
own process so its peak memory (ru_maxrss) is its own.
"""

import json
import random
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from databases import migrated_database
from scenarios import write_scenario

from recovery.boot import HostBoot
from recovery.facts import POWER_STATES, TASK_STATES, VM_STATES, Options
from recovery.hypervisor import Hypervisor
from recovery.machine import shared_machine
from recovery.scenario_seed import seed_if_empty
from recovery.settings import RunSettings

RECORDS = 100_000
HOST = "bench-host"
BASELINE = (
    "import json, sys\n"
    "out = sys.stdout\n"
    "for line in sys.stdin:\n"
    "    out.write(json.dumps(json.loads(line)) + '\\n')\n"
)


def random_records(count: int, seed: int = 42) -> list[dict]:
    """Records spread over the whole state space, with a few evacuated and deleted ones."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        task = rng.choice(TASK_STATES)
        record = {
            "uuid": str(uuidlib.UUID(int=rng.getrandbits(128))),
            "vm_state": rng.choice(VM_STATES),
            "task_state": None if task == "none" else task,
            "power_state": rng.choice(POWER_STATES),
            "db_power_state": rng.choice(POWER_STATES),
            "host": HOST if rng.random() < 0.9 else "other-host",
        }
        if rng.random() < 0.2:
            record["old_vm_state"] = rng.choice(("active", "stopped"))
        if rng.random() < 0.02:
            record["evacuation"] = {"status": "done", "dest_host": "other-host", "shared_storage": rng.random() < 0.5}
        if rng.random() < 0.01:
            record["deleted"] = True
        records.append(record)
    return records


PEAK_PROBE = (
    "import resource, subprocess, sys\n"
    "with open(sys.argv[1], 'rb') as stdin:\n"
    "    status = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, status)\n"
)
"""Runs a command from a small process, so its peak memory is not the forked benchmark's own."""


def measure(command: list[str], stdin_path: Path) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB and exit status of one command fed from a file."""
    started = time.perf_counter()
    probe = subprocess.run([sys.executable, "-c", PEAK_PROBE, str(stdin_path), *command],
                           capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    peak_kb, status = probe.stdout.split()
    return elapsed, int(peak_kb) / 1024, int(status)


def bench_decide(workdir: Path) -> None:
    path = workdir / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in random_records(RECORDS)))
    exe = str(Path(sys.executable).with_name("compute-recover"))
    parse_s, parse_mb, _ = measure([sys.executable, "-c", BASELINE], path)
    decide_s, decide_mb, status = measure([exe, "decide", "--host", HOST, "--resume-guests-state-on-host-boot"], path)
    if status != 0:
        sys.exit(f"bench: decide exited {status}")
    ratio = decide_s / parse_s
    print(f"decide, {RECORDS:,} random records")
    print(f"  parse+print JSON Lines only : {parse_s:6.2f} s  ({RECORDS / parse_s:9,.0f} lines/s, "
          f"peak {parse_mb:5.0f} MB)")
    print(f"  compute-recover decide      : {decide_s:6.2f} s  ({RECORDS / decide_s:9,.0f} decisions/s, "
          f"peak {decide_mb:5.0f} MB)")
    print(f"  ratio decide / parse+print  : {ratio:6.2f}x   (target <= 3x; peak memory target < 200 MB)")


def read_statements(workdir: Path, count: int) -> int:
    """SQL statements a dry run issues for `count` instances: must not grow with the count."""
    scenario = workdir / f"scenario-{count}"
    write_scenario(scenario, count)
    db = migrated_database(f"sqlite:///{workdir / f'statements-{count}.sqlite'}")
    seed_if_empty(db, json.loads((scenario / "db.json").read_text()))
    hypervisor = Hypervisor.open(f"test://{scenario / 'libvirt.xml'}", read_only=True)
    settings = RunSettings(host=HOST, node=HOST, options=Options(True), dry_run=True)
    with db.count_statements() as counter:
        HostBoot(shared_machine(), hypervisor, db, settings).run()
    return counter.count


def bench_host_boot(workdir: Path, count: int = 5_000) -> None:
    scenario = workdir / "scenario"
    write_scenario(scenario, count)
    url = f"sqlite:///{workdir / 'boot.sqlite'}"
    seed_if_empty(migrated_database(url), json.loads((scenario / "db.json").read_text()))
    exe = str(Path(sys.executable).with_name("compute-recover"))
    base = [exe, "run", "--scenario", str(scenario), "--db", url, "--resume-guests-state-on-host-boot", "--json"]
    print(f"compute-recover run, generated {count:,}-instance scenario (test driver + SQLite), whole command")
    for label, extra, target in (("dry run", ["--dry-run"], 2.0), ("real run", [], 5.0)):
        elapsed, peak_mb, status = measure(base + extra, workdir / "empty-stdin")
        if status not in (0, 1):
            sys.exit(f"bench: run exited {status}")
        print(f"  {label:9}: {elapsed:6.2f} s wall, peak {peak_mb:4.0f} MB   (target <= {target:.0f} s)")
    small, large = read_statements(workdir, 500), read_statements(workdir, count)
    print(f"  SQL statements in a dry run: {small} for 500 instances, {large} for {count:,} (must not grow)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="compute-recover-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "empty-stdin").write_text("")
        bench_decide(workdir)
        bench_host_boot(workdir)


if __name__ == "__main__":
    main()

"""`make bench`: decision throughput and memory, and host-boot wall time.

Measured here, never in a timed unit test. Each measured command runs in its
own process so its peak memory (ru_maxrss) is its own.
"""

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from recovery.facts import POWER_STATES, TASK_STATES, VM_STATES

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


def measure(command: list[str], stdin_path: Path) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB and exit status of one command fed from a file."""
    with open(stdin_path, "rb") as stdin, open(os.devnull, "wb") as devnull:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdin=stdin, stdout=devnull)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


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
    print(f"  parse+print JSON Lines only : {parse_s:6.2f} s  ({RECORDS / parse_s:9,.0f} lines/s, peak {parse_mb:5.0f} MB)")
    print(f"  compute-recover decide      : {decide_s:6.2f} s  ({RECORDS / decide_s:9,.0f} decisions/s, "
          f"peak {decide_mb:5.0f} MB)")
    print(f"  ratio decide / parse+print  : {ratio:6.2f}x   (target <= 3x; peak memory target < 200 MB)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="compute-recover-bench-") as tmp:
        bench_decide(Path(tmp))


if __name__ == "__main__":
    main()

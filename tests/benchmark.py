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

import libvirt
from databases import migrated_database

from recovery.boot import HostBoot
from recovery.facts import POWER_STATES, TASK_STATES, VM_STATES, Options
from recovery.hypervisor import Hypervisor
from recovery.machine import shared_machine
from recovery.scenario_seed import seed_if_empty
from recovery.settings import DEFAULT_CONCURRENCY, RunSettings

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


HOST_BOOT_MIX = (
    # (share, vm_state, task_state, db power, libvirt runstate): mostly guests shut off by the outage
    (0.70, "active", None, "running", 5),
    (0.10, "stopped", None, "shutdown", 5),
    (0.05, "active", "rebooting", "running", 5),
    (0.05, "active", "image_snapshot", "running", 5),
    (0.04, "active", "powering-off", "running", 1),
    (0.03, "building", "spawning", "nostate", None),
    (0.03, "error", None, "shutdown", 5),
)


def write_scenario(directory: Path, count: int, seed: int = 7) -> None:
    """A generated outage scenario of `count` instances in the format of docs/scenarios.md."""
    rng = random.Random(seed)
    instances, domains = [], []
    shares = [m[0] for m in HOST_BOOT_MIX]
    for number in range(1, count + 1):
        _, vm_state, task_state, db_power, runstate = rng.choices(HOST_BOOT_MIX, weights=shares)[0]
        uuid = str(uuidlib.UUID(int=number))
        instances.append({"uuid": uuid, "display_name": f"guest-{number}", "host": HOST, "node": HOST,
                          "vm_state": vm_state, "task_state": task_state, "power_state": db_power,
                          "vcpus": 1, "memory_mb": 512, "root_gb": 1})
        if runstate is not None:
            domains.append(
                "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                f"<name>instance-{number:08x}</name><uuid>{uuid}</uuid><memory unit='MiB'>512</memory>"
                f"<vcpu>1</vcpu><os><type>hvm</type></os><test:runstate>{runstate}</test:runstate></domain>"
            )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "libvirt.xml").write_text(
        "<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>2</sockets><cores>32</cores><threads>2</threads>"
        "<active>128</active><model>x86_64</model></cpu><memory>1073741824</memory>"
        + "".join(domains) + "</node>"
    )
    services = [{"host": HOST, "binary": "nova-compute", "topic": "compute", "report_count": 1}]
    (directory / "db.json").write_text(json.dumps({"host": HOST, "instances": instances, "services": services}))


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


def guests_to_resume(count: int) -> dict:
    """A scenario document of `count` instances that were running when the host went down."""
    instances = [{"uuid": str(uuidlib.UUID(int=0xB0000 + n)), "display_name": f"bench-guest-{n}", "host": HOST,
                  "node": HOST, "vm_state": "active", "task_state": None, "power_state": "running"}
                 for n in range(1, count + 1)]
    return {"host": HOST, "instances": instances,
            "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}


def bench_real_guests(workdir: Path, count: int = 12) -> None:
    """Time until every guest to resume runs again, on a real libvirtd with real QEMU guests."""
    from real_libvirt import RealHypervisorUnavailable, running_daemon

    try:
        with running_daemon():
            timings = time_resuming(workdir, guests_to_resume(count))
    except RealHypervisorUnavailable as error:
        sys.exit(f"bench: no real hypervisor for the real-guest benchmark: {error}")
    sequential, default = timings["--concurrency 1"], timings[f"default ({DEFAULT_CONCURRENCY})"]
    print(f"compute-recover run, {count} real QEMU guests to resume (real libvirtd; whole run, in-process)")
    for label, elapsed in timings.items():
        print(f"  {label:32}: {elapsed:6.2f} s")
    print(f"  ratio --concurrency 1 / default : {sequential / default:6.2f}x   (target >= 1.6x)")


def time_resuming(workdir: Path, data: dict) -> dict[str, float]:
    """Seconds until every guest runs again after a real crash (kill -9): a run one at a time, a run
    with the default concurrency, and `virsh start` one after another."""
    from real_libvirt import URI, Guests

    guests = Guests()
    timings = {}
    try:
        doms = [guests.define(f"bench-{n:02d}", i["uuid"]) for n, i in enumerate(data["instances"])]

        def outage() -> None:
            guests.in_parallel(guests.crash, ((dom,) for dom in doms))

        for label, concurrency in (("--concurrency 1", 1), (f"default ({DEFAULT_CONCURRENCY})", DEFAULT_CONCURRENCY)):
            outage()
            db = migrated_database(f"sqlite:///{workdir / f'real-{concurrency}.sqlite'}")
            seed_if_empty(db, data)
            hypervisor = Hypervisor.open(URI)
            settings = RunSettings(host=HOST, node=HOST, options=Options(True), concurrency=concurrency)
            started = time.perf_counter()
            HostBoot(shared_machine(), hypervisor, db, settings).run()
            timings[label] = time.perf_counter() - started
            hypervisor.close()
            if not all(dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING for dom in doms):
                sys.exit(f"bench: after the {label} run not every guest runs")
        outage()
        started = time.perf_counter()
        for dom in doms:
            subprocess.run(["virsh", "-q", "-c", URI, "start", dom.name()], check=True, stdout=subprocess.DEVNULL)
        timings["virsh start, one after another"] = time.perf_counter() - started
    finally:
        guests.remove_all()
    return timings


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="compute-recover-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "empty-stdin").write_text("")
        bench_decide(workdir)
        bench_host_boot(workdir)
        bench_real_guests(workdir)


if __name__ == "__main__":
    main()

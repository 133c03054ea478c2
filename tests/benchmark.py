"""`make bench` (python -m tests.benchmark): decision throughput and memory, and host-boot wall time.

Measured here, never in a timed unit test. Each measured command runs in its
own process so its peak memory (ru_maxrss) is its own.
"""

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import libvirt
from sqlalchemy import select
from sqlalchemy.engine import make_url

from recovery.adapters.hypervisor import Hypervisor
from recovery.cli.exits import EXIT_LOCKED
from recovery.core.defaults import DEFAULT_CONCURRENCY
from recovery.core.facts import POWER_STATES, TASK_STATES, VM_STATES, Options
from recovery.core.machine import shared_machine
from recovery.core.settings import RunSettings
from recovery.db import Instance, open_database
from recovery.db.scenarios import seed_if_empty
from recovery.run.boot import HostBoot
from tests.support.databases import migrated_database
from tests.support.paths import CONSOLE_SCRIPT, ROOT
from tests.support.pg_cluster import ClusterUnavailable, PostgresCluster
from tests.support.scenarios import HOST_BOOT_MIX, INTERRUPTED_HARD_REBOOTS, write_scenario

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


TRIALS = 3
"""Each timed command runs this many times and its best time counts: on a shared machine other work
only ever slows a run down, so the fastest is the truest figure (peak memory: the largest)."""


def best_of(command: list[str], stdin_path: Path, reset: Callable[[], None] = lambda: None) -> tuple[float, float, int]:
    """`measure` TRIALS times, `reset` before each (a run changes what the next would find)."""
    trials = []
    for _ in range(TRIALS):
        reset()
        trials.append(measure(command, stdin_path))
    return min(t[0] for t in trials), max(t[1] for t in trials), max(t[2] for t in trials)


def bench_decide(workdir: Path) -> None:
    path = workdir / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in random_records(RECORDS)))
    exe = str(CONSOLE_SCRIPT)
    parse_s, parse_mb, _ = best_of([sys.executable, "-c", BASELINE], path)
    decide_s, decide_mb, status = best_of([exe, "decide", "--host", HOST, "--resume-guests-state-on-host-boot"], path)
    if status != 0:
        sys.exit(f"bench: decide exited {status}")
    ratio = decide_s / parse_s
    print(f"decide, {RECORDS:,} random records (best of {TRIALS})")
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


def seeded_host(workdir: Path, name: str, count: int, devices: bool = False) -> tuple[Path, str]:
    """A generated scenario of `count` instances and the URL of an SQLite database holding its records."""
    scenario = workdir / f"{name}-scenario"
    write_scenario(scenario, count, devices=devices)
    url = f"sqlite:///{workdir / f'{name}.sqlite'}"
    seed_if_empty(migrated_database(url), json.loads((scenario / "db.json").read_text()))
    return scenario, url


def resetter(url: str) -> Callable[[], None]:
    """What puts the SQLite database at `url` back as it is now: the host as it came back, so that what a
    real run recovered is recovered again."""
    database = Path(make_url(url).database)
    pristine = database.with_suffix(".pristine")
    shutil.copyfile(database, pristine)
    return lambda: shutil.copyfile(pristine, database)


def bench_host_boot(workdir: Path, count: int = 5_000) -> None:
    scenario, url = seeded_host(workdir, "boot", count)
    fresh_host = resetter(url)

    exe = str(CONSOLE_SCRIPT)
    base = [exe, "run", "--scenario", str(scenario), "--db", url, "--resume-guests-state-on-host-boot", "--json"]
    print(f"compute-recover run, generated {count:,}-instance scenario (test driver + SQLite), whole command, "
          f"best of {TRIALS}")
    for label, extra, target in (("dry run", ["--dry-run"], 2.0), ("real run", [], 5.0)):
        elapsed, peak_mb, status = best_of(base + extra, workdir / "empty-stdin", fresh_host)
        if status not in (0, 1):
            sys.exit(f"bench: run exited {status}")
        print(f"  {label:9}: {elapsed:6.2f} s wall, peak {peak_mb:4.0f} MB   (target <= {target:.0f} s)")
    small, large = read_statements(workdir, 500), read_statements(workdir, count)
    print(f"  SQL statements in a dry run: {small} for 500 instances, {large} for {count:,} (must not grow)")


PROOF_REPETITIONS = 7
"""Runs of each side of the device proof's A/B: the median of each is compared."""


def bench_device_proof(workdir: Path, count: int = 5_000, repetitions: int = PROOF_REPETITIONS) -> None:
    """The same `compute-recover run` of a host with the device proof and without it (RunSettings.device_proof,
    which no option sets: tests/support/proof_run.py), alternating, from the same records each time: every
    guest has a disk file and a network interface (all present), so that the proof reads, parses and checks
    every guest it starts. Target: the medians' ratio at most 1.10 (docs/devices.md)."""
    scenario, url = seeded_host(workdir, "devices", count, devices=True)
    fresh_host = resetter(url)
    command = [str(CONSOLE_SCRIPT), "run", "--scenario", str(scenario), "--db", url,
               "--resume-guests-state-on-host-boot", "--json"]
    figures: dict[str, dict[str, list[float]]] = {what: {"on": [], "off": []} for what in PROOF_FIGURES}
    for repetition in range(repetitions):
        for proof in ("on", "off") if repetition % 2 == 0 else ("off", "on"):  # neither side always first
            fresh_host()
            started, cpu = time.perf_counter(), children_cpu_seconds()
            done = subprocess.run([sys.executable, "-m", "tests.support.proof_run", proof, *command],
                                  capture_output=True, text=True, cwd=ROOT)
            wall, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu
            if done.returncode != 0:
                sys.exit(f"bench: the run with the proof {proof} failed: {done.stderr}")
            run_wall, run_cpu = map(float, done.stdout.split())
            for what, value in zip(PROOF_FIGURES, (run_wall, run_cpu, wall, cpu), strict=True):
                figures[what][proof].append(value)
    print(f"compute-recover run, {count:,} guests each with a disk file and an interface, with the device proof "
          f"and without it, alternating, {repetitions} runs each (medians; target: ratio <= 1.10)")
    for what, sides in figures.items():
        on, off = statistics.median(sides["on"]), statistics.median(sides["off"])
        print(f"  {what:24}: with {on:6.2f} s, without {off:6.2f} s, ratio {on / off:5.3f}")


PROOF_FIGURES = ("the run, wall", "the command, CPU", "the whole process, wall", "the whole process, CPU")
"""What the device proof's A/B compares: the run alone (its report's seconds), the command's CPU (its
imports done), and the whole process; CPU is what a loaded machine disturbs least."""


def bench_plan(workdir: Path, count: int = 5_000) -> None:
    """`plan --out` then `run --plan` of a host, beside the plain real run of bench_host_boot."""
    scenario, url = seeded_host(workdir, "plan", count)
    exe = str(CONSOLE_SCRIPT)
    target = ["--scenario", str(scenario), "--db", url, "--json"]
    plan_file = workdir / "plan.json"
    print(f"plan, then apply, generated {count:,}-instance scenario (test driver + SQLite), whole command")
    for label, command in (("plan --out", [exe, "plan", "--out", str(plan_file), "--resume-guests-state-on-host-boot"]),
                           ("run --plan", [exe, "run", "--plan", str(plan_file)])):
        elapsed, peak_mb, status = measure(command + target, workdir / "empty-stdin")
        if status != 0:
            sys.exit(f"bench: {label} exited {status}")
        print(f"  {label}: {elapsed:6.2f} s wall, peak {peak_mb:4.0f} MB")
    print(f"  plan file: {plan_file.stat().st_size / 1e6:.1f} MB")


def bench_table(workdir: Path, count: int = 5_000) -> None:
    """`plan` of a host printed as the table for people against -f json: the table's layout must not cost
    much more than the document's (at most 1.2x), however many instances there are."""
    scenario, url = seeded_host(workdir, "table", count)
    base = [str(CONSOLE_SCRIPT), "plan", "--scenario", str(scenario), "--db", url, "--resume-guests-state-on-host-boot"]
    print(f"plan, generated {count:,}-instance scenario (test driver + SQLite), into a file, best of {TRIALS}")
    timed = {}
    for label, extra in (("-f json", ["-f", "json"]), ("table", [])):
        elapsed, peak_mb, status = best_of(base + extra, workdir / "empty-stdin")
        if status != 0:
            sys.exit(f"bench: plan {label} exited {status}")
        timed[label] = elapsed
        print(f"  {label:8}: {elapsed:6.2f} s wall, peak {peak_mb:4.0f} MB")
    print(f"  ratio table / json: {timed['table'] / timed['-f json']:5.2f}x   (target <= 1.2x)")


FLEET_HOSTS = 100
FLEET_INSTANCES = 100
FLEET_PARALLEL = 8
EXECUTED = ("ok", "failed", "interrupted")
"""Action outcomes that mean the action was carried out (or begun)."""


def compute_recover(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], capture_output=True, text=True)


def write_fleet(workdir: Path, hosts: list[str], count: int, mix: tuple = HOST_BOOT_MIX) -> Path:
    """Each host's own scenario directory (its test-driver document and db.json), and a directory
    whose db.json holds every host's records, for one `scenario load`; returns that directory."""
    instances, services = [], []
    for number, host in enumerate(hosts):
        write_scenario(workdir / host, count, seed=number, host=host, mix=mix)
        data = json.loads((workdir / host / "db.json").read_text())
        instances += data["instances"]
        services += data["services"]
    fleet = workdir / "fleet"
    fleet.mkdir(exist_ok=True)
    (fleet / "db.json").write_text(json.dumps({"host": hosts[0], "instances": instances, "services": services}))
    return fleet


def load_fresh(url: str, fleet: Path) -> None:
    done = compute_recover("scenario", "load", fleet, "--db", url, "--replace")
    if done.returncode != 0:
        sys.exit(f"bench: scenario load failed: {done.stderr}")


def run_hosts(url: str, scenarios: list[Path], parallel: int, *options: str) -> tuple[float, list]:
    """`compute-recover run` for each host's scenario, `parallel` processes at a time: wall
    seconds and each run's finished process."""
    def one(scenario: Path) -> subprocess.CompletedProcess:
        return compute_recover("run", "--scenario", scenario, "--db", url, "--json", *options)

    return timed_map(one, scenarios, parallel)


def timed_map(function: Callable, items: list, parallel: int) -> tuple[float, list]:
    """`function` over `items`, `parallel` calls at a time: wall seconds and the results in order."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        done = list(pool.map(function, items))
    return time.perf_counter() - started, done


def children_cpu_seconds() -> float:
    """User and system CPU of every process this benchmark has started and waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def executed_twice(reports: list[dict]) -> int:
    """Actions carried out more than once for one instance across all the reports."""
    counts = Counter((item["uuid"], json.dumps(action, sort_keys=True))
                     for report in reports for item in report["instances"]
                     for action in ({k: v for k, v in a.items() if k not in ("outcome", "error")}
                                    for a in item["actions"] if a["outcome"] in EXECUTED))
    return sum(n - 1 for n in counts.values() if n > 1)


def lost_updates(url: str, reports: list[dict]) -> int:
    """Instances whose record is not what their own run's report says it wrote."""
    db = open_database(url, read_only=True)
    try:
        with db.reading("read the fleet's records") as conn:
            rows = {uuid: (vm, task) for uuid, vm, task in conn.execute(
                select(Instance.uuid, Instance.vm_state, Instance.task_state))}
    finally:
        db.close()
    return sum(rows[item["uuid"]] != (item["vm_state"], item["task_state"])
               for report in reports for item in report["instances"])


def reports_of(runs: list[subprocess.CompletedProcess]) -> list[dict]:
    bad = [run for run in runs if run.returncode not in (0, 1, EXIT_LOCKED)]
    if bad:
        sys.exit(f"bench: run exited {bad[0].returncode}: {bad[0].stderr}")
    return [json.loads(run.stdout) for run in runs if run.returncode != EXIT_LOCKED]


def fleet_parallelisms() -> tuple[int, ...]:
    """One process per core (what a launcher on this machine should use), then the issue's 8 at a
    time, more processes than cores: where the lock and the claims meet the most contention."""
    return tuple(sorted({parallel for parallel in (min(os.cpu_count() or 1, FLEET_PARALLEL), FLEET_PARALLEL)
                         if parallel > 1}))


def bench_fleet(workdir: Path, host_count: int = FLEET_HOSTS) -> None:
    """100 hosts x 100 instances in one PostgreSQL database: concurrent runs (one per core, and 8
    at a time) next to the same runs one after another, each with its host's own test-driver
    document; next to each ratio, the same processes doing only the start-up."""
    hosts = [f"fleet-{number:03d}" for number in range(host_count)]
    try:
        cluster = PostgresCluster()
    except ClusterUnavailable as missing:
        print(f"fleet: skipped: {missing}")
        return
    try:
        cluster.start()
        url = cluster.url()
        if compute_recover("db", "upgrade", "--db", url).returncode != 0:
            sys.exit("bench: db upgrade failed")
        fleet = write_fleet(workdir, hosts, FLEET_INSTANCES)
        print(f"fleet: {host_count} hosts x {FLEET_INSTANCES} instances, one PostgreSQL database, "
              "one `compute-recover run` process per host (--lock-timeout 0: a run that would wait is refused)")
        seconds = {}
        for parallel in (1, *fleet_parallelisms()):
            label = "one after another" if parallel == 1 else f"concurrent, {parallel} at a time"
            load_fresh(url, fleet)
            runs_cpu, server_cpu = children_cpu_seconds(), cluster.cpu_seconds()
            seconds[parallel], runs = run_hosts(url, [workdir / h for h in hosts], parallel,
                                                "--resume-guests-state-on-host-boot", "--lock-timeout", "0")
            runs_cpu, server_cpu = children_cpu_seconds() - runs_cpu, cluster.cpu_seconds() - server_cpu
            reports = reports_of(runs)
            waits = sum(run.returncode == EXIT_LOCKED for run in runs)
            print(f"  {label:24}: {seconds[parallel]:6.1f} s wall; actions executed twice "
                  f"{executed_twice(reports)}, updates lost {lost_updates(url, reports)}, lock waits {waits}")
            print(f"  {'':24}  CPU: the runs {runs_cpu:5.1f} s, PostgreSQL {server_cpu:5.1f} s")
        floors = start_up_ratios(host_count)
        for parallel in fleet_parallelisms():
            print(f"  ratio {parallel} at a time / one after another: {seconds[parallel] / seconds[1]:.2f}   "
                  f"(target <= 0.6); the same {host_count} processes doing only the start-up (imports): "
                  f"{floors[parallel]:.2f}")
        bench_same_host(workdir, url)
    finally:
        cluster.remove()


START_UP = "import recovery.cli, recovery.cli.run"
"""What a `run` process does before it reads anything: most of a 100-instance run's CPU."""


def start_up_ratios(count: int) -> dict[int, float]:
    """Wall time of `count` processes that only start up, at each fleet parallelism, over the same
    one after another: how far this machine's cores carry the part of a run no lock or claim
    touches (more processes than cores cost each one its caches at every switch)."""
    def start_up(_: int) -> None:
        subprocess.run([sys.executable, "-c", START_UP], check=True)

    seconds = {parallel: timed_map(start_up, list(range(count)), parallel)[0]
               for parallel in (1, *fleet_parallelisms())}
    return {parallel: seconds[parallel] / seconds[1] for parallel in fleet_parallelisms()}


def bench_same_host(workdir: Path, url: str, trials: int = 3) -> None:
    """Two runs of one host at once: every interrupted hard reboot is rebooted once between them."""
    fleet = write_fleet(workdir / "twin", ["twin-host"], FLEET_INSTANCES, INTERRUPTED_HARD_REBOOTS)
    print(f"two concurrent runs of one host, {FLEET_INSTANCES} interrupted hard reboots, {trials} trials:")
    for trial in range(1, trials + 1):
        load_fresh(url, fleet)
        _, runs = run_hosts(url, [workdir / "twin" / "twin-host"] * 2, 2)
        reports = reports_of(runs)
        reboots = sum(a["name"] == "reboot" and a["outcome"] in EXECUTED
                      for report in reports for item in report["instances"] for a in item["actions"])
        last = max(reports, key=lambda report: report["run_id"])  # its report says what the rows hold now
        print(f"  trial {trial}: reboots {reboots} (must be {FLEET_INSTANCES}), actions executed twice "
              f"{executed_twice(reports)}, updates lost {lost_updates(url, [last])}, "
              f"exit codes {sorted(run.returncode for run in runs)}")


def guests_to_resume(count: int) -> dict:
    """A scenario document of `count` instances that were running when the host went down."""
    instances = [{"uuid": str(uuidlib.UUID(int=0xB0000 + n)), "display_name": f"bench-guest-{n}", "host": HOST,
                  "node": HOST, "vm_state": "active", "task_state": None, "power_state": "running"}
                 for n in range(1, count + 1)]
    return {"host": HOST, "instances": instances,
            "services": [{"host": HOST, "binary": "nova-compute", "topic": "compute"}]}


def bench_real_guests(workdir: Path, count: int = 12) -> None:
    """Time until every guest to resume runs again, on a real libvirtd with real QEMU guests."""
    from tests.support.real_libvirt import RealHypervisorUnavailable, running_daemon

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
    from tests.support.real_libvirt import URI, Guests

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


PARTS: dict[str, Callable[[Path], object]] = {
    "decide": bench_decide,
    "host-boot": bench_host_boot,
    "device-proof": bench_device_proof,
    "plan": bench_plan,
    "table": bench_table,
    "real-guests": bench_real_guests,
    "fleet": bench_fleet,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"only these parts, of {', '.join(PARTS)} [default: all]")
    chosen = parser.parse_args().parts or list(PARTS)
    if unknown := [part for part in chosen if part not in PARTS]:
        parser.error(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    with tempfile.TemporaryDirectory(prefix="compute-recover-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "empty-stdin").write_text("")
        for part in chosen:
            PARTS[part](workdir)


if __name__ == "__main__":
    main()

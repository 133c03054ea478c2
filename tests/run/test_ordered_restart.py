"""Ordered restart with readiness (docs/recovery-policy.md): the start-order metadata keys, the
pure waiting of one tier (recovery/run/tiers.py TierWait, with times given, no sleeps), and the
fixtures/ordered-restart scenario run on libvirt's test driver against a real TCP socket that the
test opens late, or never."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from recovery.adapters.hypervisor import Hypervisor
from recovery.adapters.probes import not_ready_because
from recovery.cli import cli
from recovery.core.effects import starts_guest
from recovery.core.facts import Options, facts_from_record
from recovery.core.machine import shared_machine
from recovery.core.metadata import (
    DEFAULT_ORDER,
    READY_AGENT,
    READY_RUNNING,
    READY_TCP,
    PolicyValueError,
    StartOrder,
    start_order,
)
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.db import open_database
from recovery.db.scenarios import read_db_json, seed_if_empty
from recovery.present.report import run_json
from recovery.run import tiers
from recovery.run.boot import HostBoot, RunResult
from recovery.run.tiers import TierWait
from tests.support.databases import migrated_database
from tests.support.guest_network import GuestNetwork
from tests.support.paths import FIXTURES
from tests.support.rows import rows

FIXTURE = FIXTURES / "ordered-restart"
HOST = "compute-1"
DATABASE, APP_1, APP_2, NEVER, STOPPED = (f"6c1a0b52-0000-4000-8000-0000000000{nn}" for nn in ("61", "62", "63",
                                                                                             "64", "65"))
APPS = (APP_1, APP_2)


# --- the metadata keys -------------------------------------------------------------------------------


def test_an_instance_without_start_order_keys_has_the_default_order():
    assert start_order({}) is DEFAULT_ORDER
    assert start_order({"recover:resume": "never", "owner": "ops"}) is DEFAULT_ORDER
    assert (DEFAULT_ORDER.priority, DEFAULT_ORDER.ready, DEFAULT_ORDER.waits) == (0, READY_RUNNING, False)


def test_every_start_order_key_is_read():
    order = start_order({"recover:priority": "-5", "recover:ready": "tcp:5432", "recover:address": " 10.0.0.7 ",
                         "recover:start-delay": "30s"})
    assert order == StartOrder(priority=-5, ready=READY_TCP, port=5432, address="10.0.0.7", start_delay=30.0)
    assert order.describe() == "tcp:5432 at 10.0.0.7 after 30s"
    assert start_order({"recover:ready": "tcp:443", "recover:address": "fd00::1"}).address == "fd00::1"
    assert start_order({"recover:ready": "agent"}).ready == READY_AGENT
    assert start_order({"recover:start-delay": "2m"}).waits


@pytest.mark.parametrize(("metadata", "message"), [
    ({"recover:priority": "high"}, "recover:priority 'high' is not an integer from -1000 to 1000: lower starts first"),
    ({"recover:priority": "1001"}, "recover:priority '1001' is not an integer from -1000 to 1000"),
    ({"recover:priority": "1" * 400}, "recover:priority '1111111111"),
    ({"recover:ready": "http"}, "recover:ready 'http' is not a readiness check: use running, agent or tcp:<port>"),
    ({"recover:ready": "tcp:0"}, "recover:ready 'tcp:0' is not a readiness check"),
    ({"recover:ready": "tcp:65536"}, "(port 1 to 65535)"),
    ({"recover:ready": "tcp:5432"}, "recover:ready 'tcp:5432' needs recover:address: set it to the guest's IP address"),
    ({"recover:ready": "tcp:5432", "recover:address": "db.example"},
     "recover:address 'db.example' is not an IP address: give the guest's IPv4 or IPv6 address"),
    ({"recover:start-delay": "2h"}, "recover:start-delay '2h' must be more than 0 and at most 1h"),
    ({"recover:start-delay": "soon"}, "recover:start-delay 'soon' is not a duration"),
])
def test_a_bad_start_order_value_names_key_value_and_fix(metadata, message):
    with pytest.raises(PolicyValueError) as error:
        start_order(metadata)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_only_decisions_that_leave_the_guest_running_start_it():
    def decision(**record):
        base = {"uuid": "u", "vm_state": "active", "task_state": None, "power_state": "shutdown",
                "db_power_state": "running", "host": HOST}
        return shared_machine().decide(facts_from_record({**base, **record}, HOST, Options(True)))

    assert starts_guest(decision())  # resume_guest
    assert starts_guest(decision(task_state="rebooting_hard"))  # reboot
    assert not starts_guest(decision(vm_state="stopped", db_power_state="shutdown"))  # plug_vifs only
    assert not starts_guest(decision(metadata={"recover:resume": "never"}))


# --- one tier's waiting, with the times given ---------------------------------------------------------


TCP = StartOrder(ready=READY_TCP, port=5432, address="127.0.0.1")


def test_a_running_guest_without_delay_is_ready_when_started():
    wait = TierWait(deadline=100.0)
    wait.started("a", DEFAULT_ORDER, now=10.0)
    assert wait.done(10.0) and wait.ready_seconds == {"a": 0.0} and wait.not_ready() == {}
    assert wait.wake_in(10.0) is None


def test_a_guest_is_checked_until_it_answers():
    wait = TierWait(deadline=100.0, interval=0.5)
    wait.started("db", TCP, now=10.0)
    assert wait.due(10.0) == [("db", TCP)]
    wait.checked("db", "connection refused", now=10.0)
    assert wait.due(10.2) == [] and wait.wake_in(10.2) == pytest.approx(0.3)
    assert not wait.done(10.6) and wait.due(10.6) == [("db", TCP)]
    wait.checked("db", None, now=12.0)
    assert wait.done(12.0) and wait.ready_seconds == {"db": 2.0}


def test_a_start_delay_holds_the_check_back():
    delayed_tcp = StartOrder(ready=READY_TCP, port=1, address="127.0.0.1", start_delay=5.0)
    delayed_running = StartOrder(start_delay=3.0)
    wait = TierWait(deadline=100.0)
    wait.started("db", delayed_tcp, now=0.0)
    wait.started("app", delayed_running, now=0.0)
    assert wait.due(2.9) == [] and wait.wake_in(2.9) == pytest.approx(0.1)
    assert wait.due(3.0) == [] and wait.ready_seconds == {"app": 3.0}  # running needs no check: only the delay
    assert wait.due(5.0) == [("db", delayed_tcp)]


def test_the_deadline_ends_the_wait_and_says_why_each_guest_is_not_ready():
    wait = TierWait(deadline=30.0)
    wait.started("refused", TCP, now=0.0)
    wait.checked("refused", "no TCP connection to 127.0.0.1 port 5432: Connection refused", now=0.0)
    wait.started("late", StartOrder(start_delay=60.0), now=1.0)
    wait.started("unchecked", TCP, now=29.9)
    assert not wait.done(29.9) and wait.done(30.0)
    assert wait.not_ready() == {
        "refused": "no TCP connection to 127.0.0.1 port 5432: Connection refused",
        "late": "its start-delay of 60 s did not end before the tier timeout",
        "unchecked": "the tier timeout passed before it was checked",
    }


@given(st.lists(st.tuples(st.sampled_from([READY_RUNNING, READY_TCP]), st.integers(0, 20),
                          st.lists(st.booleans(), max_size=40)), min_size=1, max_size=6),
       st.integers(1, 30))
def test_every_guest_ends_ready_after_its_delay_or_reported_never_both(guests, timeout):
    """Stepping a tier's clock to its deadline: each started guest is ready no sooner than its
    start-delay, or reported not ready with a reason; a tier is done at its deadline at the latest."""
    wait = TierWait(deadline=float(timeout), interval=0.5)
    answers = {}
    for number, (ready, delay, replies) in enumerate(guests):
        order = StartOrder(ready=ready, port=1 if ready == READY_TCP else None,
                           address="127.0.0.1" if ready == READY_TCP else None, start_delay=float(delay))
        wait.started(str(number), order, now=0.0)
        answers[str(number)] = iter(replies)
    now = 0.0
    while not wait.done(now):
        for uuid, _order in wait.due(now):
            wait.checked(uuid, None if next(answers[uuid], False) else "refused", now)
        now += 0.25
    assert now <= timeout + 0.25
    late = wait.not_ready()
    assert set(late) | set(wait.ready_seconds) == set(answers) and not set(late) & set(wait.ready_seconds)
    for uuid, seconds in wait.ready_seconds.items():
        assert seconds >= guests[int(uuid)][1]
    assert all(late.values())


# --- the scenario on the test driver ------------------------------------------------------------------


class LatePort:
    """A TCP port at a guest's address (a network namespace of its own, tests/guest_network.py) reserved
    at once (bound: connections are refused) that starts listening only when `open` is called: a database
    guest that takes a while to come up."""

    def __init__(self) -> None:
        self.network = GuestNetwork()
        self.address = self.network.guest_address
        self.socket = self.network.socket()
        self.port = self.socket.getsockname()[1]
        self.opened: float | None = None

    def open(self) -> None:
        self.opened = time.monotonic()
        self.socket.listen()

    def close(self) -> None:
        self.socket.close()
        self.network.remove()


@pytest.fixture
def late_port() -> Iterator[LatePort]:
    port = LatePort()
    yield port
    port.close()


def scenario(tmp_path: Path, port: LatePort, **metadata_changes: dict) -> Path:
    """fixtures/ordered-restart copied, its database guest ready on `port` at the port's guest address
    (in its record's metadata and its domain's interface); metadata_changes replace an instance's
    metadata (by uuid)."""
    directory = tmp_path / "ordered-restart"
    shutil.copytree(FIXTURE, directory)
    doc = json.loads((directory / "db.json").read_text())
    for item in doc["instances"]:
        if item["uuid"] == DATABASE:
            item["metadata"]["recover:ready"] = f"tcp:{port.port}"
            item["metadata"]["recover:address"] = port.address
        item["metadata"] = metadata_changes.get(item["uuid"], item.get("metadata", {}))
    (directory / "db.json").write_text(json.dumps(doc))
    domains = (directory / "libvirt.xml").read_text()
    assert domains.count("10.0.0.61") == 1
    (directory / "libvirt.xml").write_text(domains.replace("10.0.0.61", port.address))
    return directory


def seeded_url(tmp_path: Path, directory: Path) -> str:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = migrated_database(url)
    try:
        assert seed_if_empty(db, read_db_json(directory / "db.json"))
    finally:
        db.close()
    return url


def recover(directory: Path, url: str, tier_timeout: float, dry_run: bool = False) -> tuple[RunResult, Hypervisor]:
    """The routine in-process (the test driver's domains live in this connection), resume on."""
    hv = Hypervisor.open(f"test://{directory / 'libvirt.xml'}", read_only=dry_run)
    db = open_database(url, read_only=dry_run)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                           dry_run=dry_run, tier_timeout=tier_timeout)
    try:
        return HostBoot(shared_machine(), hv, db, settings).run(), hv
    finally:
        db.close()


def powers(hv: Hypervisor) -> dict[str, str]:
    return {d.uuid: d.power_state.label for d in hv.domains()}


def by_uuid(result: RunResult) -> dict[str, dict]:
    return {item["uuid"]: item for item in run_json(result)["instances"]}


def journal(url: str) -> dict[str, dict]:
    return {row["instance_uuid"]: row for row in rows(url, "SELECT * FROM recovery_journal")}


def test_the_database_starts_first_and_the_applications_once_its_port_answers(tmp_path, late_port, monkeypatch):
    directory = scenario(tmp_path, late_port)
    url = seeded_url(tmp_path, directory)
    checks: list[tuple[float, str | None]] = []

    def checked_then_opened(*args, **kwargs):
        """The run's own check; the port opens only once a check found it closed, so that tier 0 is
        seen waiting for it, however long the run took to get there."""
        why = not_ready_because(*args, **kwargs)
        checks.append((time.monotonic(), why))
        if why is not None and late_port.opened is None:
            late_port.open()
        return why

    monkeypatch.setattr(tiers, "not_ready_because", checked_then_opened)
    result, hv = recover(directory, url, tier_timeout=30)

    first, second = result.tiers
    assert (first.priority, first.instances, second.priority, second.instances) == (0, 1, 1, 2)
    refused = [at for at, why in checks if why is not None]
    assert refused and "Connection refused" in checks[0][1]  # the port was closed while tier 1 was held
    assert first.began <= refused[0] < late_port.opened  # ... then it opened
    assert checks[-1][1] is None and checks[-1][0] > late_port.opened  # a check after it opened found it open
    assert late_port.opened < first.ended <= second.began  # the applications' tier began once the port answered
    assert first.ended - first.began < 30 and first.not_ready == 0
    items = by_uuid(result)
    assert items[DATABASE]["outcome"] == "ok"
    assert items[DATABASE]["ready"] == f"tcp:{late_port.port} at {late_port.address}"
    assert items[DATABASE]["ready_seconds"] >= late_port.opened - first.began - 0.1
    assert [items[u]["tier"] for u in (DATABASE, APP_1, APP_2, NEVER, STOPPED)] == [0, 1, 1, None, None]
    now = powers(hv)
    assert [now[u] for u in (DATABASE, *APPS)] == ["running"] * 3
    assert now[NEVER] == "shutdown" and items[NEVER]["actions"] == [{"name": "plug_vifs", "outcome": "ok",
                                                                     "error": None}]
    assert now[STOPPED] == "shutdown"
    assert result.exit_code == 0
    print(f"\ntier 0 ready {first.ended - first.began:.2f} s after it began (port opened "
          f"{late_port.opened - first.began:.2f} s after); tier 1 began {second.began - first.ended:.3f} s later, "
          f"done in {second.ended - second.began:.3f} s")


def test_a_database_that_never_answers_is_not_ready_and_the_applications_start_after_the_timeout(tmp_path,
                                                                                                 late_port):
    directory = scenario(tmp_path, late_port)
    url = seeded_url(tmp_path, directory)
    result, hv = recover(directory, url, tier_timeout=1.5)

    first, second = result.tiers
    assert first.ended - first.began >= 1.5 and second.began >= first.ended and first.not_ready == 1
    items = by_uuid(result)
    assert items[DATABASE]["outcome"] == Outcome.NOT_READY
    assert items[DATABASE]["error"].startswith("not ready within the tier timeout (1.5 s): no TCP connection to "
                                               f"{late_port.address} port {late_port.port}")
    assert [items[u]["outcome"] for u in APPS] == ["ok", "ok"]
    now = powers(hv)
    assert [now[u] for u in (DATABASE, *APPS)] == ["running"] * 3 and now[NEVER] == "shutdown"
    assert result.exit_code == 1 and result.totals[Outcome.NOT_READY] == 1
    entries = journal(url)
    assert entries[DATABASE]["outcome"] == Outcome.NOT_READY and "no TCP connection" in entries[DATABASE]["error"]
    assert entries[APP_1]["outcome"] == "ok"


def test_a_dry_run_shows_the_tiers_and_checks_nothing(tmp_path, late_port):
    directory = scenario(tmp_path, late_port)
    url = seeded_url(tmp_path, directory)
    result, hv = recover(directory, url, tier_timeout=60, dry_run=True)
    assert [(t.priority, t.instances, t.began) for t in result.tiers] == [(0, 1, None), (1, 2, None)]
    assert result.seconds < 60  # nothing waited for the port that never opens
    items = by_uuid(result)
    assert [items[u]["tier"] for u in (DATABASE, APP_1, APP_2, NEVER, STOPPED)] == [0, 1, 1, None, None]
    assert set(powers(hv).values()) == {"shutdown"}


def test_plan_and_explain_show_the_order(tmp_path, late_port):
    directory = scenario(tmp_path, late_port)
    url = seeded_url(tmp_path, directory)
    runner = CliRunner()
    plan = runner.invoke(cli, ["plan", "--scenario", str(directory), "--db", url, "--resume-guests-state-on-host-boot"],
                         env={"COMPUTE_RECOVER_DB": None, "COLUMNS": "220"})
    assert plan.exit_code == 0, plan.stderr
    assert f"0 (tcp:{late_port.port} at {late_port.address})" in plan.stdout and "1 (running)" in plan.stdout
    assert "tier 0: 1 to start; tier 1: 2 to start" in plan.stdout
    explain = runner.invoke(cli, ["explain", DATABASE, "--db", url], env={"COMPUTE_RECOVER_DB": None})
    assert explain.exit_code == 0, explain.stderr
    told = f"start order (when a run starts it): tier 0, ready: tcp:{late_port.port} at {late_port.address}"
    assert told in explain.stdout


def test_bad_start_order_metadata_fails_that_instance_only(tmp_path, late_port):
    directory = scenario(tmp_path, late_port, **{APP_1: {"recover:priority": "first"}})
    url = seeded_url(tmp_path, directory)
    late_port.open()
    result, hv = recover(directory, url, tier_timeout=5)
    items = by_uuid(result)
    assert items[APP_1]["outcome"] == "failed"
    assert items[APP_1]["error"] == (
        "bad instance metadata: recover:priority 'first' is not an integer from -1000 to 1000: lower starts first "
        "(e.g. 0 for a database, 1 for its applications); set it right (openstack server set --property KEY=VALUE) "
        "or unset it")
    now = powers(hv)
    assert now[APP_1] == "shutdown" and now[APP_2] == "running" and now[DATABASE] == "running"
    assert result.exit_code == 1

"""On a Nova cell database a guest's addresses are in its network info cache, and only those (or its
domain's) may be probed.

Real `compute-recover run` processes on the libvirt test driver against a Nova-schema SQLite file
(tests/support/nova_cell_schema.py) and a journal database of its own. The database guest's domain
names no address, as Nova's domains do not; its `instance_info_caches.network_info` is what the run
reads. The listener is at a guest address inside a network namespace of its own
(tests/support/guest_network.py): a cache naming it lets the probe connect; a cache naming another
guest, or one that is malformed, too large or of another shape, is refused with the reason in the
report, and the listener sees no connection.
"""

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, update

from recovery.core.network_info import MAX_NETWORK_INFO_CHARS, NetworkInfoError, cached_addresses
from recovery.db import open_database
from tests.support.guest_network import connections, listening
from tests.support.nova_cell_schema import create_nova_schema, insert_nova_scenario, instance_info_caches
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.scenarios import ORDERED_RESTART_DATABASE, ordered_restart_checked

DATABASE = ORDERED_RESTART_DATABASE


def network_info(*addresses: str) -> str:
    """Nova's network_info for a guest with one port holding `addresses` as fixed IPs (and a floating IP)."""
    ips = [{"address": a, "type": "fixed", "version": 4, "floating_ips": [{"address": "203.0.113.9"}]}
           for a in addresses]
    return json.dumps([{"id": "8b5c1a6e-0000-4000-8000-000000000061", "address": "fa:16:3e:00:00:61",
                        "network": {"id": "net", "label": "private", "bridge": "br-int",
                                    "subnets": [{"cidr": "10.0.0.0/8", "ips": ips, "routes": []}]},
                        "type": "ovs", "devname": "tap00000061", "active": True}])


def run_on_nova(tmp_path: Path, address: str, port: int, cache: str) -> dict:
    """fixtures/ordered-restart in a Nova cell database, the database guest's check `tcp:port` at `address`,
    its domain naming no address and its info cache holding `cache`; recovered by a real run: its report."""
    scenario, doc = ordered_restart_checked(tmp_path / "scenario", address, port)
    domains = (scenario / "libvirt.xml").read_text()
    (scenario / "libvirt.xml").write_text(domains.replace("<ip address='10.0.0.61' prefix='24'/>", ""))
    nova = f"sqlite:///{tmp_path / 'nova.sqlite'}"
    create_nova_schema(nova)
    insert_nova_scenario(nova, doc)
    engine = create_engine(nova)
    with engine.begin() as conn:
        conn.execute(update(instance_info_caches).where(instance_info_caches.c.instance_uuid == DATABASE)
                     .values(network_info=cache))
    engine.dispose()
    journal = f"sqlite:///{tmp_path / 'journal.sqlite'}"
    made = subprocess.run([CONSOLE_SCRIPT, "db", "upgrade", "--journal-db", journal], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    run = subprocess.run([CONSOLE_SCRIPT, "run", "--scenario", scenario, "--db", nova, "--journal-db", journal,
                          "--json", "--resume-guests-state-on-host-boot", "--tier-timeout", "30"],
                         capture_output=True, text=True, timeout=300)
    assert "Traceback" not in run.stderr, run.stderr
    report = json.loads(run.stdout)
    report["exit_code"], report["stderr"] = run.returncode, run.stderr
    return report


def database_item(report: dict) -> dict:
    return next(item for item in report["instances"] if item["uuid"] == DATABASE)


def test_an_address_from_the_guests_info_cache_is_probed(tmp_path, guest):
    listener = listening(guest.guest_address, guest.socket())
    try:
        port = listener.getsockname()[1]
        report = run_on_nova(tmp_path, guest.guest_address, port, network_info(guest.guest_address))
        reached = connections(listener)
    finally:
        listener.close()
    item = database_item(report)
    assert report["exit_code"] == 0, report["stderr"]
    assert item["outcome"] == "ok" and item["ready"] == f"tcp:{port} at {guest.guest_address}"
    assert reached >= 1


def test_an_address_the_guests_info_cache_does_not_name_is_refused(tmp_path, guest, other_guest):
    other = other_guest
    listener = listening(other.guest_address, other.socket())
    try:
        port = listener.getsockname()[1]
        report = run_on_nova(tmp_path, other.guest_address, port, network_info(guest.guest_address))
        reached = connections(listener)
    finally:
        listener.close()
    item = database_item(report)
    assert reached == 0
    assert report["exit_code"] == 1 and item["outcome"] == "not-ready"
    assert item["error"] == (f"readiness check refused, no connection made: {other.guest_address} is not an address "
                             "of this guest (its domain's interfaces and its network info cache have: "
                             f"{guest.guest_address})")


HOSTILE_CACHES = {
    "not JSON": ("[{", "not valid JSON"),
    "an object": ('{"address": "ADDRESS"}', "the document is {'address': "),
    "a port that is a string": ('["ADDRESS"]', "a port is 'ADDRESS"),
    "subnets not a list": ('[{"network": {"subnets": {"ips": []}}}]', "a network's subnets is {'ips': []}, not a list"),
    "an address that is a number": ('[{"network": {"subnets": [{"ips": [{"address": 167772161}]}]}}]',
                                    "an ip's address is 167772161, not a string"),
    "nested too deep": ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    "too large": ('[{"network": {"subnets": [{"ips": [{"address": "ADDRESS"}]}]}, "pad": "'
                  + "x" * MAX_NETWORK_INFO_CHARS + '"}]', f"longer than {MAX_NETWORK_INFO_CHARS:,} characters"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_CACHES))
def test_a_malformed_info_cache_is_refused_with_the_reason_and_nothing_is_probed(tmp_path, guest, kind):
    cache, reason = (text.replace("ADDRESS", guest.guest_address) for text in HOSTILE_CACHES[kind])
    listener = listening(guest.guest_address, guest.socket())
    try:
        port = listener.getsockname()[1]
        report = run_on_nova(tmp_path, guest.guest_address, port, cache)
        reached = connections(listener)
    finally:
        listener.close()
    item = database_item(report)
    assert reached == 0
    assert report["exit_code"] == 1 and item["outcome"] == "not-ready" and item["power_state"] == "running"
    assert item["error"].startswith("readiness check refused, no connection made: "
                                    f"{guest.guest_address} is not an address of this guest (its domain's "
                                    "interfaces have: none); its network info cache is not readable: "), item["error"]
    assert reason in item["error"], item["error"]


# --- the parser alone --------------------------------------------------------------------------


def test_the_fixed_ips_of_every_port_are_the_guests_addresses_not_its_floating_ones():
    two_ports = json.loads(network_info("10.0.0.5")) + json.loads(network_info("fd00::5", "10.1.0.5"))
    two_ports.append({"id": "unbound", "network": None})
    assert cached_addresses(json.dumps(two_ports)) == {"10.0.0.5", "fd00::5", "10.1.0.5"}
    assert cached_addresses("[]") == frozenset()


@pytest.mark.parametrize("kind", sorted(HOSTILE_CACHES))
def test_a_malformed_info_cache_is_a_network_info_error(kind):
    cache, reason = HOSTILE_CACHES[kind]
    with pytest.raises(NetworkInfoError) as refused:
        cached_addresses(cache)
    assert reason in str(refused.value)


# --- read in bulk with the other facts ---------------------------------------------------------


def test_the_info_caches_are_read_in_one_statement_whatever_the_instance_count(tmp_path):
    """On a Nova cell database, load_host reads the caches of the instances naming a readiness address
    in one more statement, the same for 10 and 200 instances; the others' caches are not read at all."""
    url = f"sqlite:///{tmp_path / 'nova.sqlite'}"
    create_nova_schema(url)

    def fleet(host: str, count: int) -> list[dict]:
        return [{"uuid": f"6c1a0b52-0000-4000-8000-{host[-1]}{n:011d}", "host": host, "node": host,
                 "vm_state": "active", "power_state": "running",
                 "metadata": {"recover:ready": "tcp:22", "recover:address": f"10.0.{n // 250}.{n % 250 + 1}"}
                 if n % 2 else {}} for n in range(count)]

    insert_nova_scenario(url, {"host": "small", "instances": fleet("small", 10) + fleet("big2", 200)})
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(update(instance_info_caches).values(network_info=network_info("10.0.0.1")))
    engine.dispose()
    db = open_database(url)
    try:
        with db.count_statements() as small_reads:
            small = db.load_host("small", nova_cell=True)
        with db.count_statements() as big_reads:
            big = db.load_host("big2", nova_cell=True)
        with db.count_statements() as own_reads:
            db.load_host("big2")
    finally:
        db.close()
    assert (len(small.network_info), len(big.network_info)) == (5, 100)  # the ones naming an address
    assert all(cached_addresses(text) == {"10.0.0.1"} for text in big.network_info.values())
    assert small_reads.count == big_reads.count == own_reads.count + 1

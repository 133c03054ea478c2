"""The operator's interface as a person or a script sees it (docs/operating.md): output formats and
columns, errors as objects in machine formats, config keys, option checks before acting, logging,
explain by name and agreeing with the journal, shell completion.

Real libvirt test driver and real SQLite files through the click commands; syslog through a real
datagram socket the test listens on.
"""

import csv
import io
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from recovery.cli import logs
from recovery.present.progress import SHOW_AFTER
from tests.support.commands import python_command
from tests.support.in_process import cli_run, invoke, load_scenario
from tests.support.parts import require_program
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES, HOST, U, uri
from tests.support.processes import busy_host, cli
from tests.support.real_libvirt import wait_for
from tests.support.rows import query


def scenario_run(path: Path, *options: str):
    """`run` on power-outage without --json (cli_run adds it), after loading the scenario."""
    load_scenario(path, "power-outage")
    return invoke("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{path}", "--stop-timeout", "1",
                  *options)


# --- -f/--format and -c/--column -----------------------------------------------------------------


def test_value_format_with_one_column_prints_bare_uuids(tmp_path):
    out = scenario_run(tmp_path / "db.sqlite", "-f", "value", "-c", "uuid")
    assert out.exit_code == 0, out.stderr
    recovered = {row["instance_uuid"] for row in query(tmp_path / "db.sqlite", "SELECT * FROM recovery_journal")}
    assert sorted(out.stdout.split("\n")[:-1]) == sorted(recovered)


def test_csv_has_a_header_and_one_row_per_instance(tmp_path):
    out = scenario_run(tmp_path / "db.sqlite", "-f", "csv", "--resume-guests-state-on-host-boot")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == ["uuid", "start_state", "path", "actions", "outcome", "error", "vm_state", "task_state",
                             "power_state", "tier", "ready", "reason"]
    row = next(r for r in rows if r["uuid"] == U("03"))
    assert (row["start_state"], row["outcome"], row["vm_state"], row["task_state"]) == (
        "active/rebooting/shutdown", "ok", "active", "")
    assert (row["tier"], row["ready"]) == ("0", "running")  # a guest it starts: the default tier
    stopped = next(r for r in rows if r["uuid"] == U("22"))
    assert (stopped["tier"], stopped["ready"]) == ("", "")  # starts no guest: in no tier
    assert row["actions"] == 'reboot(type="hard"): ok'


def test_yaml_is_the_run_document_and_columns_make_rows(tmp_path):
    out = scenario_run(tmp_path / "db.sqlite", "-f", "yaml")
    doc = yaml.safe_load(out.stdout)
    assert doc["host"] == HOST and len(doc["instances"]) == doc["totals"]["instances"]
    again = invoke("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
                   "-f", "json", "-c", "UUID", "-c", "outcome")
    assert {tuple(row) for row in json.loads(again.stdout)} == {("uuid", "outcome")}


def test_an_unknown_column_is_refused_before_anything_is_done(tmp_path):
    out = scenario_run(tmp_path / "db.sqlite", "-f", "value", "-c", "uuid", "-c", "colour")
    assert out.exit_code == 2
    assert "unknown column(s) colour: the columns are uuid, start_state," in out.stderr
    assert not query(tmp_path / "db.sqlite", "SELECT * FROM recovery_runs")


def test_json_and_another_format_together_is_a_usage_error(tmp_path):
    out = scenario_run(tmp_path / "db.sqlite", "--json", "-f", "csv")
    assert out.exit_code == 2 and "--json is short for -f json" in out.stderr


def test_services_in_value_and_csv(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage").exit_code == 0
    value = invoke("services", "--db", f"sqlite:///{path}", "-f", "value", "-c", "host", "-c", "state")
    assert value.stdout == f"{HOST} up\n"
    table = invoke("services", "--db", f"sqlite:///{path}", "-c", "Host", "-c", "Forced Down")
    assert "Host" in table.stdout and "Forced Down" in table.stdout and "Binary" not in table.stdout


# --- fatal errors in machine formats -------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "parse"), [(("--json",), json.loads), (("-f", "yaml"), yaml.safe_load)])
def test_a_fatal_error_is_one_object_on_stdout_in_json_and_yaml(tmp_path, fmt, parse):
    out = invoke("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}",
                 *fmt)
    assert out.exit_code == 2
    message = out.stderr.strip().removeprefix("compute-recover: ")
    assert parse(out.stdout) == {"error": message, "exit_code": 2}
    assert "no database file" in message


def test_a_usage_error_after_json_is_an_object_too(tmp_path):
    out = invoke("run", "--json", "--stop-timeout", "nan", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert out.exit_code == 2
    assert json.loads(out.stdout) == {
        "error": "Invalid value for '--stop-timeout': 'nan' is not a finite number of seconds", "exit_code": 2}


def test_value_and_csv_print_no_error_on_stdout(tmp_path):
    out = invoke("run", "-f", "value", "-c", "uuid", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert out.exit_code == 2 and out.stdout == "" and "no database file" in out.stderr


# --- options checked before acting ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_stop_timeout_must_be_a_finite_number_in_range(tmp_path, value):
    out = scenario_run(tmp_path / "db.sqlite", "--stop-timeout", value)
    assert out.exit_code == 2 and "--stop-timeout" in out.stderr
    assert not query(tmp_path / "db.sqlite", "SELECT * FROM recovery_runs")


@pytest.mark.parametrize("option", ["--plug-vifs-command", "--network-apply-command"])
def test_a_missing_hook_command_stops_the_run_before_the_first_instance(tmp_path, option):
    missing = scenario_run(tmp_path / "db.sqlite", option, "plug-my-vifs --fast")
    assert missing.exit_code == 2
    assert missing.stderr == (f"compute-recover: {option}: plug-my-vifs is not found on PATH: give its absolute "
                              "path or install it\n")
    not_executable = tmp_path / "hook"
    not_executable.write_text("#!/bin/sh\n")
    out = invoke("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
                 option, str(not_executable))
    assert out.exit_code == 2 and f"{not_executable} is not an executable file" in out.stderr
    assert not query(tmp_path / "db.sqlite", "SELECT * FROM recovery_runs")


def test_a_hook_on_path_is_accepted(tmp_path):
    assert scenario_run(tmp_path / "db.sqlite", "--network-apply-command", "true").exit_code == 0


def test_a_failed_network_apply_is_said_once(tmp_path):
    apply = python_command(tmp_path, "apply", "sys.exit('iptables-restore: line 3 failed')")
    out = scenario_run(tmp_path / "db.sqlite", "--network-apply-command", apply)
    assert out.exit_code == 1
    assert "network apply failed (exit 1): iptables-restore: line 3 failed" in out.stdout
    assert out.stdout.count("network apply") == 1


# --- config file keys ----------------------------------------------------------------------------


def test_config_keys_are_the_option_names(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    config = tmp_path / "recover.toml"
    config.write_text(f'db = "sqlite:///{path}"\njson = true\nstop_timeout = 1\n'
                      f'scenario = "{FIXTURES / "power-outage"}"\n')
    out = invoke("run", "--config", config)
    assert out.exit_code == 0, out.stderr
    assert out.doc["host"] == HOST and query(path, "SELECT * FROM recovery_runs")


def test_an_unknown_config_key_names_it_and_the_valid_keys(tmp_path):
    config = tmp_path / "recover.toml"
    config.write_text('db_url = "sqlite:///x"\n')
    out = invoke("run", "--config", config)
    assert out.exit_code == 2
    assert "names unknown options: db_url; the keys of `run` are " in out.stderr
    assert "db, db_timeout, destroy_after_evacuate," in out.stderr


# --- logging -------------------------------------------------------------------------------------


def test_verbose_logs_go_to_stderr_never_into_json(tmp_path):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    out = invoke("-vv", "run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{path}", "--json")
    assert out.doc["run_id"] == 1
    assert f"compute-recover: INFO recovery.cli.host: recovering host {HOST}" in out.stderr
    assert "run 1 on host compute-1 finished" in out.stderr
    assert f"DEBUG recovery.run.execute: {U('03')}: reboot" in out.stderr
    quiet = invoke("-q", "run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{path}", "--json")
    assert quiet.stderr == "" and quiet.doc["run_id"] == 2


def test_syslog_receives_the_runs_log(tmp_path):
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(5)
        path = tmp_path / "db.sqlite"
        load_scenario(path, "power-outage")
        result = invoke("-v", "--log-to", "syslog", "--syslog-address", address, "run", "--scenario",
                        FIXTURES / "power-outage", "--db", f"sqlite:///{path}", "--json")
        assert result.exit_code == 0 and result.stderr == ""
        records = []
        while not any("recovery.cli.host" in record for record in records):
            records.append(listener.recv(65536).decode())
    tag = f"<30>compute-recover[{os.getpid()}]: INFO"
    assert records[-1].startswith(f"{tag} recovery.cli.host: recovering host")
    assert records[0].startswith(f"{tag} recovery.cli.nova_options: option --")  # each option's source comes first


def test_log_targets_that_are_not_there_are_one_line_and_exit_2(tmp_path):
    syslog = invoke("--log-to", "syslog", "--syslog-address", str(tmp_path / "nothing"), "decide")
    assert syslog.exit_code == 2 and "--log-to syslog: cannot reach syslog at" in syslog.stderr
    if not Path("/run/systemd/journal/socket").exists():
        journal = invoke("--log-to", "journal", "decide")
        assert journal.exit_code == 2
        assert journal.stderr == ("compute-recover: --log-to journal: no systemd journal here "
                                  "(/run/systemd/journal/socket is missing): use --log-to syslog or stderr\n")


# --- explain -------------------------------------------------------------------------------------


def test_explain_by_instance_name_and_by_domain_name(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage").exit_code == 0
    db = f"sqlite:///{path}"
    by_name = invoke("explain", "soft-reboot-became-hard", "--db", db, "--json")
    assert by_name.exit_code == 0, by_name.stderr
    assert by_name.doc["uuid"] == U("03")
    by_domain = invoke("explain", "instance-00000003", "--db", db, "--libvirt-uri", uri("power-outage"), "--json")
    assert by_domain.doc["uuid"] == U("03")
    nothing = invoke("explain", "no-such-guest", "--db", db, "--libvirt-uri", uri("power-outage"))
    assert nothing.exit_code == 2 and "no instance or libvirt domain is named 'no-such-guest'" in nothing.stderr


def test_an_ambiguous_name_lists_the_candidates(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage").exit_code == 0
    with __import__("sqlite3").connect(path) as con:
        con.execute("UPDATE instances SET display_name = 'web' WHERE uuid IN (?, ?)", (U("01"), U("02")))
    out = invoke("explain", "web", "--db", f"sqlite:///{path}")
    assert out.exit_code == 2
    assert out.stderr == (f"compute-recover: 'web' names 2 instances: {U('01')} (instance 'web' on host compute-1); "
                          f"{U('02')} (instance 'web' on host compute-1) — give one uuid\n")


def test_explain_limit_shows_the_newest_runs(tmp_path):
    path = tmp_path / "db.sqlite"
    for _ in range(3):
        assert cli_run(path, "power-outage").exit_code == 0
    out = invoke("explain", U("01"), "--db", f"sqlite:///{path}", "--limit", "2", "-f", "value", "-c", "run_id")
    assert out.stdout == "3\n2\n"


def test_explain_live_decides_as_the_last_run_did(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0
    db, libvirt = f"sqlite:///{path}", uri("power-outage")
    live = invoke("explain", U("22"), "--db", db, "--live", "--libvirt-uri", libvirt, "--json").doc["live"]
    assert live["host"] == HOST and live["decided"] == "as run 1 on host compute-1 decided it"
    assert live["options"]["resume_guests_state_on_host_boot"] is True
    assert live["facts"]["host"] == HOST and "owned by" not in live["reason"]
    flagged = invoke("explain", U("22"), "--db", db, "--live", "--libvirt-uri", libvirt, "--host", "compute-9",
                     "--no-destroy-after-evacuate", "--json").doc["live"]
    assert flagged["host"] == "compute-9"
    assert flagged["decided"] == "as run 1 on host compute-1 decided it, except where flags say otherwise"
    assert flagged["options"] == {"resume_guests_state_on_host_boot": True, "destroy_after_evacuate": False,
                                  "running_deleted_instance_action": "log", "resume_policy": "if-was-running"}
    assert flagged["actions"] == []


def test_explain_facts_feed_back_into_decide_and_explain(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0
    for nn in ("03", "13", "18", "22"):
        run = invoke("explain", U(nn), "--db", f"sqlite:///{path}", "--json").doc["runs"][0]
        assert run["facts"]["task_state"] != "none"
        line = json.dumps({"uuid": U(nn), **run["facts"]}) + "\n"
        decided = subprocess.run([CONSOLE_SCRIPT, "decide", "--host", HOST, "--resume-guests-state-on-host-boot"],
                                 input=line, capture_output=True, text=True, check=True)
        decision = json.loads(decided.stdout)
        assert [a["name"] for a in decision["actions"]] == [a["name"] for a in run["actions"]]
        assert decision["path"] == run["path"]
        again = invoke("explain", "--facts", json.dumps(run["facts"]), "--host", HOST,
                       "--resume-guests-state-on-host-boot", "--json")
        assert again.exit_code == 0, again.stderr
        assert again.doc["facts"] == run["facts"] and again.doc["path"] == run["path"]


# --- shell completion ----------------------------------------------------------------------------


def test_shell_completion_completes_commands_and_options():
    env = {**os.environ, "_COMPUTE_RECOVER_COMPLETE": "bash_complete", "COMP_WORDS": "compute-recover ex",
           "COMP_CWORD": "1"}
    done = subprocess.run([CONSOLE_SCRIPT], env=env, capture_output=True, text=True)
    assert done.stdout.split() == ["plain,explain"]
    env |= {"COMP_WORDS": "compute-recover run -f ", "COMP_CWORD": "3"}
    done = subprocess.run([CONSOLE_SCRIPT], env=env, capture_output=True, text=True)
    assert done.stdout.split() == [f"plain,{f}" for f in ("table", "json", "value", "csv", "yaml")]


# --- the progress bar, in a real terminal (tmux, 80 columns) ------------------------------------


class Terminal:
    """A tmux session 80 columns wide running one shell command line."""

    def __init__(self, name: str, command: str):
        self.name = name
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "50"], check=True)
        subprocess.run(["tmux", "send-keys", "-t", name, command + "; echo EXIT=$?", "Enter"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-J", "-t", self.name, "-S", "-"],
                              capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, seconds: float = 60) -> str:
        deadline = time.monotonic() + seconds
        while text not in (screen := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{screen}"
            time.sleep(0.2)
        return screen

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@pytest.fixture
def slow_run(tmp_path):
    """A run of power-outage that takes several seconds: each VIF plug sleeps, one instance at a time."""
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    plug = tmp_path / "slow-plug"
    plug.write_text("#!/bin/sh\nsleep 0.3\n")
    plug.chmod(0o755)
    return (f"COMPUTE_RECOVER_DB=sqlite:///{path} {CONSOLE_SCRIPT} run --scenario {FIXTURES / 'power-outage'} "
            f"--concurrency 1 --stop-timeout 1 --plug-vifs-command {plug}")


def test_a_long_run_on_a_terminal_shows_a_progress_bar_then_the_table(slow_run, tmp_path):
    require_program("tmux", "make test installs it")
    terminal = Terminal(f"cr-progress-{os.getpid()}", slow_run)
    try:
        during = terminal.wait_for(" done, 0 failed")
        bar = next(line for line in during.splitlines() if "recovering compute-1" in line)
        assert len(bar) <= 80
        after = terminal.wait_for("EXIT=0")
    finally:
        terminal.close()
    assert "recovering compute-1" not in after, "the bar is gone once the table is printed"
    lines = after.rsplit("EXIT=$?", 1)[1].splitlines()  # what the run printed, after the command typed
    assert [line for line in lines if len(line) > 80] == []
    assert {U(nn) for nn in ("01", "03", "22")} <= {word for line in lines for word in line.split()}


@pytest.fixture
def held_run(tmp_path):
    """A run whose first VIF plug says it began (the `plugging` file) and holds the run until the test
    creates the `go` file: the run is seen in progress for as long as the test needs."""
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    plug = tmp_path / "held-plug"
    plug.write_text(f"#!/bin/sh\ntouch {tmp_path / 'plugging'}\n"
                    f"while [ ! -e {tmp_path / 'go'} ]; do sleep 0.05; done\n")
    plug.chmod(0o755)
    return (f"COMPUTE_RECOVER_DB=sqlite:///{path} {CONSOLE_SCRIPT} run --scenario {FIXTURES / 'power-outage'} "
            f"--concurrency 1 --stop-timeout 1 --plug-vifs-command {plug}")


@pytest.mark.parametrize("tail", ["--json", "-f value -c uuid", "> out.txt"])
def test_no_progress_bar_in_machine_formats_or_into_a_file(held_run, tmp_path, tail):
    require_program("tmux", "make test installs it")
    plugging = tmp_path / "plugging"
    terminal = Terminal(f"cr-noprogress-{os.getpid()}", f"cd {tmp_path} && {held_run} {tail}")
    try:
        wait_for(plugging.exists, timeout=60, what="the run's first VIF plug")
        # The run began before its first plug, which holds it: once SHOW_AFTER has passed since the plug
        # began, a bar would be on the screen of a run still going.
        seen_after = plugging.stat().st_mtime + SHOW_AFTER + 0.5
        wait_for(lambda: time.time() >= seen_after, timeout=60, what="the bar's delay to pass")
        during = terminal.screen()
        assert "EXIT=" not in during.rsplit("EXIT=$?", 1)[1]  # the run was still going when it was looked at
        (tmp_path / "go").touch()
        after = terminal.wait_for("EXIT=0")
    finally:
        (tmp_path / "go").touch()
        terminal.close()
    assert "recovering compute-1" not in during + after
    if tail.startswith(">"):
        assert "recovering" not in (tmp_path / "out.txt").read_text()


@pytest.fixture
def journal_socket():
    """A datagram socket where systemd-journald's would be, read by the test (only where no journald runs)."""
    socket_path = Path(logs.JOURNAL_SOCKET)
    if socket_path.exists() or os.geteuid() != 0:
        pytest.skip("a journald runs here (its socket exists), or not root: the journal socket cannot be stood in for")
    made = [p for p in reversed(socket_path.parents) if not p.exists()]
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(socket_path))
    listener.settimeout(5)
    try:
        yield listener
    finally:
        listener.close()
        socket_path.unlink()
        for directory in reversed(made):
            directory.rmdir()


def test_the_journal_receives_structured_records(tmp_path, journal_socket):
    path = tmp_path / "db.sqlite"
    load_scenario(path, "power-outage")
    result = invoke("-v", "--log-to", "journal", "run", "--scenario", FIXTURES / "power-outage", "--db",
                    f"sqlite:///{path}", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    fields: dict[str, str] = {}
    while fields.get("LOGGER") != "recovery.cli.host":
        datagram = journal_socket.recv(65536).decode()
        fields = dict(line.split("=", 1) for line in datagram.splitlines() if "=" in line)
    assert fields["MESSAGE"].startswith("recovering host compute-1")
    assert (fields["PRIORITY"], fields["SYSLOG_IDENTIFIER"], fields["LOGGER"]) == (
        "6", "compute-recover", "recovery.cli.host")


def test_a_lock_wait_is_logged_with_verbose(tmp_path):
    with busy_host(tmp_path) as (_path, url, _holder, _first):
        second = cli("-v", "run", "--scenario", FIXTURES / "clean-host", "--db", url, "--lock-timeout", "0.5")
    assert second.returncode == 4
    assert ("compute-recover: INFO recovery.db.lock: another recovery of host compute-1 holds its lock: waiting "
            "up to 0.5 s (--lock-timeout)") in second.stderr.splitlines()

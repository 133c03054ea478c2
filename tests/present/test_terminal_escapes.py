"""Control characters from data never reach a terminal raw: real commands on a real pty.

An instance's display_name holding ESC, a CSI colour sequence, an OSC window-title sequence, a
one-byte C1 CSI and a newline followed by a forged line; a service host holding ESC. Through a
pseudo-terminal (as an operator sees it, rich and click believing a terminal is there) and through
pipes (`-f value`, `-f csv`), the output holds no raw ESC or C1 byte from the data and no forged
line; JSON and YAML keep the data exact.
"""

import json
import os
import pty
import select
import shutil
import sqlite3
import subprocess
import tty
from pathlib import Path

import yaml

from recovery.core.printable import printable
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES

UUID = "6c1a0b52-0000-4000-8000-000000000001"  # plain-running-guest of the power-outage scenario
EVIL_NAME = "guest\x1b[31mRED\x1b]0;owned\x07\x9b2J\nFORGED: host compute-9 is down"
EVIL_HOST = "compute-1\x1b[2J\x1b]2;title\x07\rFORGED"
RAW_CONTROLS = (b"\x1b[31mRED", b"\x1b]", b"\x07", b"\x1b[2J", "\x9b".encode(), b"\r")
"""The data's own control sequences (rich's styling has ESC sequences of its own, never these)."""


def loaded(tmp_path: Path) -> str:
    """The power-outage scenario in a new SQLite file, its first instance renamed `EVIL_NAME`."""
    scenario = tmp_path / "scenario"
    shutil.copytree(FIXTURES / "power-outage", scenario)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        assert subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True).returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("UPDATE instances SET display_name = ? WHERE uuid = ?", (EVIL_NAME, UUID)).rowcount == 1
    return url


def on_a_terminal(*args: object) -> tuple[int, bytes]:
    """Run the command with stdout and stderr on a new pty (raw); its exit code and every byte it wrote."""
    controller, terminal = pty.openpty()
    tty.setraw(terminal)  # no newline translation: every byte as the command wrote it
    process = subprocess.Popen([CONSOLE_SCRIPT, *map(str, args)], stdin=subprocess.DEVNULL, stdout=terminal,
                               stderr=terminal, env=os.environ | {"COLUMNS": "200", "TERM": "xterm-256color"})
    os.close(terminal)
    output = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        assert ready, "the command wrote nothing for 60 s"
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the command closed its end of the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=60), output


def assert_no_raw_controls(output: bytes) -> None:
    for raw in RAW_CONTROLS:
        assert raw not in output, (raw, output)
    assert not any(line.lstrip().lower().startswith(b"forged") for line in output.splitlines()), output


def test_explain_on_a_terminal_prints_the_name_escaped_on_its_own_line(tmp_path):
    url = loaded(tmp_path)
    code, output = on_a_terminal("explain", UUID, "--db", url)
    assert code == 0, output
    assert b"\x1b" not in output  # explain's text has no styling of its own: not one ESC byte
    assert_no_raw_controls(output)
    [line] = [line for line in output.decode().splitlines() if line.startswith(f"instance {UUID}")]
    assert "guest\\x1b[31mRED\\x1b]0;owned\\x07\\x9b2J\\nFORGED: host compute-9 is down" in line


def test_explain_live_on_a_terminal_escapes_the_name_and_json_keeps_it(tmp_path):
    url = loaded(tmp_path)
    code, output = on_a_terminal("explain", UUID, "--db", url, "--live", "--host", "compute-1",
                                 "--libvirt-uri", f"test://{FIXTURES / 'power-outage' / 'libvirt.xml'}")
    assert code == 0, output
    assert b"\x1b" not in output
    assert_no_raw_controls(output)
    listed = subprocess.run([CONSOLE_SCRIPT, "explain", UUID, "--db", url, "--live", "--host", "compute-1",
                             "--libvirt-uri", f"test://{FIXTURES / 'power-outage' / 'libvirt.xml'}", "-f", "json"],
                            capture_output=True, text=True)
    assert json.loads(listed.stdout)["instance"]["display_name"] == EVIL_NAME  # JSON: exact


def test_json_and_yaml_keep_the_data_exact(tmp_path):
    url = loaded(tmp_path)
    as_json = subprocess.run([CONSOLE_SCRIPT, "explain", UUID, "--db", url, "-f", "json"], capture_output=True,
                             text=True)
    as_yaml = subprocess.run([CONSOLE_SCRIPT, "explain", UUID, "--db", url, "-f", "yaml"], capture_output=True,
                             text=True)
    assert json.loads(as_json.stdout)["instance"]["display_name"] == EVIL_NAME
    assert yaml.safe_load(as_yaml.stdout)["instance"]["display_name"] == EVIL_NAME


def evil_service_host(tmp_path: Path) -> str:
    url = loaded(tmp_path)
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE services SET host = ?, last_seen_up = 'not a time'", (EVIL_HOST,))
    return url


def test_services_value_and_csv_escape_a_host_holding_esc(tmp_path):
    url = evil_service_host(tmp_path)
    value = subprocess.run([CONSOLE_SCRIPT, "services", "--db", url, "-f", "value", "-c", "host", "-c", "state"],
                           capture_output=True)
    assert value.returncode == 0, value.stderr
    assert value.stdout.decode() == "compute-1\\x1b[2J\\x1b]2;title\\x07\\rFORGED down\n"
    csv = subprocess.run([CONSOLE_SCRIPT, "services", "--db", url, "-f", "csv", "-c", "host"], capture_output=True)
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.decode() == '"host"\n"compute-1\\x1b[2J\\x1b]2;title\\x07\\rFORGED"\n'
    for output in (value, csv):
        assert_no_raw_controls(output.stdout + output.stderr)  # the log's warning line names the host too
    as_json = subprocess.run([CONSOLE_SCRIPT, "services", "--db", url, "-f", "json"], capture_output=True, text=True)
    assert json.loads(as_json.stdout)[0]["host"] == EVIL_HOST


def test_the_services_table_and_the_log_on_a_terminal_escape_the_host(tmp_path):
    url = evil_service_host(tmp_path)
    code, output = on_a_terminal("services", "--db", url)
    assert code == 0, output
    assert_no_raw_controls(output)  # rich styles the table with escapes of its own, never the data's
    text = output.decode()
    assert "compute-1\\x1b[2J\\x1b]2;title\\x07\\rFORGED" in text
    [warning] = [line for line in text.splitlines() if "downtime unknown" in line]
    assert "nova-compute on compute-1\\x1b[2J" in warning


def test_the_run_report_on_a_terminal_escapes_a_bad_uuid_and_its_error(tmp_path):
    url = loaded(tmp_path)
    bad_uuid = "6c1a0b52-0000-4000-8000-00000000\x1b[2J\nFORGED"
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE instances SET uuid = ? WHERE uuid = ?", (bad_uuid, UUID))
    code, output = on_a_terminal("run", "--scenario", tmp_path / "scenario", "--db", url, "--stop-timeout", "1",
                                 "--resume-guests-state-on-host-boot")
    assert code == 1, output  # the bad row fails, the others recover
    assert_no_raw_controls(output)
    assert "6c1a0b52-0000-4000-8000-00000000\\x1b[2j\\nforged" in output.decode()  # the uuid as its key: lower case


def test_printable_escapes_controls_only():
    assert printable("Müller's guest 日本 [bold]x[/]") == "Müller's guest 日本 [bold]x[/]"
    escaped = "a\\x1b[31mb\\tc\\r\\n\\x00\\x7f\\x9b\\u202e\\u2028"
    assert printable("a\x1b[31mb\tc\r\n\x00\x7f\x9b\u202e\u2028") == escaped
    assert printable(printable(EVIL_NAME)) == printable(EVIL_NAME)

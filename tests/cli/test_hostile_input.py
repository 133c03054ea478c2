"""Hostile input is bounded: `decide` lines, `explain --facts` and scenario db.json files.

Each bad record gets one clear line while the others proceed; output stays valid JSON; no
traceback ever. The bounds are documented in recovery/core/bounds.py.
"""

import json
import subprocess
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.cli import cli
from recovery.core.bounds import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_LINE_BYTES,
    NOVA_STRING_LENGTH,
    UUID_LENGTH,
    shown,
)
from recovery.core.documents import to_json
from recovery.db import Instance, InstanceSystemMetadata, Migration
from recovery.db.scenarios import ScenarioError, ignored_fields_warning, parse_db_json, read_db_json
from tests.support.paths import CONSOLE_SCRIPT

HOST = "this-host"
GOOD = {"uuid": "u1", "vm_state": "active", "task_state": None, "power_state": "running",
        "db_power_state": "running"}
UPPER_UUID = "6C1A0B52-0000-4000-8000-0000000000AB"


def strict_json(text: str) -> Any:
    """JSON as another program reads it: NaN and Infinity are not JSON."""
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in output")
    return json.loads(text, parse_constant=refuse)


def line(**fields: Any) -> bytes:
    return json.dumps({**GOOD, **fields}).encode()


def nested(depth: int) -> Any:
    """An array `depth` levels deep (the record around it adds one more)."""
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def decide(data: bytes, *args: str) -> tuple[int, list[Any], str]:
    """Exit code, output lines (each parsed strictly) and stderr of `decide` fed `data`."""
    result = CliRunner().invoke(cli, ["decide", "--host", HOST, *args], input=data, catch_exceptions=False)
    return result.exit_code, [strict_json(text) for text in result.stdout.splitlines()], result.stderr


def decide_between_good_lines(bad: bytes) -> dict:
    """The output for `bad` placed between two good lines, which must still be decided."""
    code, out, stderr = decide(line(uuid="before") + b"\n" + bad + b"\n" + line(uuid="after") + b"\n")
    assert code == 1
    assert len(out) == 3
    assert [out[0]["uuid"], out[2]["uuid"]] == ["before", "after"]
    assert out[0]["actions"] == out[2]["actions"] == [{"name": "plug_vifs"}]
    assert stderr == "decide: 1 input line(s) could not be decided; their output lines carry the error\n"
    assert set(out[1]) == {"uuid", "error"} and out[1]["error"].startswith("line 2: ")
    return out[1]


# -- decide: one JSON line for every line, whatever it holds ------------------------------------


@pytest.mark.parametrize(
    ("bad", "uuid", "error"),
    [
        (b"[" * 100_000 + b"]" * 100_000, None, f"arrays and objects nested deeper than {MAX_DEPTH} levels"),
        (line(notes=nested(MAX_DEPTH)), None, f"arrays and objects nested deeper than {MAX_DEPTH} levels"),
        (b'{"uuid": NaN}', None, "NaN is not a number JSON allows (NaN and Infinity are refused)"),
        (line().replace(b'"running"}', b"Infinity}"), None,
         "Infinity is not a number JSON allows (NaN and Infinity are refused)"),
        (line().replace(b'"running"}', b"-Infinity}"), None,
         "-Infinity is not a number JSON allows (NaN and Infinity are refused)"),
        (line().replace(b'"running"}', b"1e400}"), None,
         "number '1e400' is too large for a double (it would be infinite)"),
        (line().replace(b'"running"}', b"1" + b"0" * 4999 + b"}"), None,
         "integer 10000000000000000000... (5,000 characters) is larger than any Nova column holds"),
        (b"\xff\xfe{}", None, "not valid UTF-8 (invalid start byte at byte 0)"),
        (b"null", None, "a record must be a JSON object, not NoneType"),
        (b"17", None, "a record must be a JSON object, not int"),
        (line(power_state=2**63), "u1", "unknown power_state 9223372036854775808: use one of nostate, running, "
         "paused, shutdown, crashed, suspended or Nova's integer (0, 1, 3, 4, 6, 7)"),
        (line(vm_state=5), "u1", "unknown vm_state 5: use one of active, building, paused, suspended, stopped, "
         "rescued, resized, soft-delete, deleted, error, shelved, shelved_offloaded"),
        (line(host=5), "u1", "host must be a string or absent, not 5"),
        (line(host="h" * (NOVA_STRING_LENGTH + 1)), "u1",
         f"host is 256 characters long; Nova's column holds at most 255 ({shown('h' * 256)})"),
        (line(evacuation={"status": "s" * (NOVA_STRING_LENGTH + 1)}), "u1",
         f"evacuation.status is 256 characters long; Nova's column holds at most 255 ({shown('s' * 256)})"),
        (line(evacuation={"status": "done", "dest_host": ["b"]}), "u1", "evacuation.dest_host must be a string, not "
         "['b']"),
        (line(uuid="u" * (UUID_LENGTH + 1)), None, "uuid must be 1 to 36 printable ASCII characters (Nova's "
         "String(36) column), not 'uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu'"),
        (line(uuid="tab\there"), None, "uuid must be 1 to 36 printable ASCII characters (Nova's String(36) column), "
         "not 'tab\\there'"),
        (line(uuid={"nested": "object"}), None, "uuid must be 1 to 36 printable ASCII characters (Nova's String(36) "
         "column), not {'nested': 'object'}"),
        (line(uuid=UPPER_UUID, vm_state="bogus"), UPPER_UUID.lower(), "unknown vm_state 'bogus': use one of active, "
         "building, paused, suspended, stopped, rescued, resized, soft-delete, deleted, error, shelved, "
         "shelved_offloaded"),
    ],
    ids=["deep-nesting-100000", "nesting-one-past-the-limit", "nan-uuid", "infinity", "minus-infinity",
         "float-overflow", "5000-digit-integer", "not-utf8", "null", "number", "power-state-2**63",
         "vm-state-int", "host-int", "host-256", "evacuation-status-256", "dest-host-list", "uuid-37",
         "uuid-control-char", "uuid-object", "upper-case-uuid-in-an-error"],
)
def test_a_hostile_line_gets_one_error_line_and_the_others_are_decided(bad, uuid, error):
    assert decide_between_good_lines(bad) == {"uuid": uuid, "error": f"line 2: {error}"}


def test_an_error_quotes_a_huge_bad_value_briefly():
    out = decide_between_good_lines(line(vm_state="x" * 500_000))
    assert out["error"].startswith("line 2: unknown vm_state 'xxxx")
    assert len(out["error"]) < 300


def test_values_at_the_bounds_are_decided():
    at_bounds = line(uuid="u" * UUID_LENGTH, notes=nested(MAX_DEPTH - 1), ignored_number=-(2**63), power_state=1,
                     evacuation={"status": "s" * NOVA_STRING_LENGTH, "dest_host": "d" * NOVA_STRING_LENGTH})
    code, out, _ = decide(at_bounds + b"\n" + line(host="h" * NOVA_STRING_LENGTH) + b"\n")
    assert code == 0
    assert out[0]["uuid"] == "u" * UUID_LENGTH and out[0]["state"] == "active/none/running"
    assert [step["rule"] for step in out[1]["path"]] == ["not_owned"]


def test_an_upper_case_uuid_is_decided_and_reported_in_lower_case():
    code, out, _ = decide(line(uuid=UPPER_UUID) + b"\n")
    assert code == 0
    assert out[0]["uuid"] == UPPER_UUID.lower()


def test_a_line_over_the_limit_is_an_error_and_is_skipped_to_its_end():
    longest = line(uuid="longest")
    longest += b" " * (MAX_LINE_BYTES - len(longest))
    too_long = line(uuid="too-long")
    too_long += b" " * (MAX_LINE_BYTES + 1 - len(too_long))
    code, out, _ = decide(longest + b"\n" + too_long + b"\n" + line(uuid="after") + b"\n" + too_long)
    assert code == 1
    assert [o["uuid"] for o in out] == ["longest", None, "after", None]
    assert out[1] == {"uuid": None, "error": "line 2: longer than 1,048,576 bytes, the limit for one record"}
    assert out[3]["error"].startswith("line 4: longer than"), "the last line, without a newline, too"


def test_json_output_refuses_nan_rather_than_print_a_token_that_is_not_json():
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json({"uuid": float("nan")})


def test_the_console_script_survives_every_hostile_line_and_keeps_the_good_ones():
    """A real process: the recursion limit, stdin's encoding and stdout are the interpreter's own."""
    hostile = [b"[" * 100_000 + b"]" * 100_000, b'{"uuid": NaN, "vm_state": "active"}', b"\xc3\x28",
               b"x" * (MAX_LINE_BYTES + 10), line(memory_mb=2**64).replace(b"18446744073709551616", b"9" * 5000)]
    data = b"".join(line(uuid=f"good-{n}") + b"\n" + bad + b"\n" for n, bad in enumerate(hostile))
    data += line(uuid=UPPER_UUID) + b"\n"
    proc = subprocess.run([str(CONSOLE_SCRIPT), "decide", "--host", HOST], input=data, capture_output=True,
                          check=False)
    assert proc.returncode == 1
    assert b"Traceback" not in proc.stderr
    assert proc.stderr == b"decide: 5 input line(s) could not be decided; their output lines carry the error\n"
    out = [strict_json(text) for text in proc.stdout.decode("ascii").splitlines()]
    assert [o["uuid"] for o in out] == ["good-0", None, "good-1", None, "good-2", None, "good-3", None,
                                        "good-4", None, UPPER_UUID.lower()]
    assert all(o["actions"] == [{"name": "plug_vifs"}] for o in out[::2])
    assert [o["error"].split(":")[0] for o in out[1::2]] == ["line 2", "line 4", "line 6", "line 8", "line 10"]
    assert "nested deeper than 32 levels" in out[1]["error"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("decide --host h <&-", "decide reads stdin, which is closed"),
        ("decide --host h >&- </dev/null", "decide writes its decisions to stdout, which is closed"),
        ("explain --facts - <&-", "--facts - reads stdin, which is closed"),
    ],
)
def test_a_closed_standard_stream_is_a_usage_error_not_a_traceback(command, message):
    proc = subprocess.run(["sh", "-c", f'exec "$0" {command}', str(CONSOLE_SCRIPT)], capture_output=True, text=True,
                          check=False)
    assert (proc.returncode, proc.stderr) == (2, f"compute-recover: {message}\n")


# -- decide: the property ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
"""Any JSON value, NaN and Infinity included (json.dumps writes them as the bare tokens)."""

record_fields = st.sampled_from([*GOOD, "host", "old_vm_state", "domain_present", "evacuation", "deleted"])
mangled_records = st.builds(lambda field, value: json.dumps({**GOOD, field: value}), record_fields, json_values)
"""A good record with one field replaced by any value: every validation path."""

input_lines = st.one_of(
    st.sampled_from([b"", b" ", b"\t", b"\r", b" \x0b\x0c "]),
    st.text().map(lambda text: text.replace("\n", "").encode()),
    st.binary().map(lambda data: data.replace(b"\n", b"")),
    json_values.map(lambda value: json.dumps(value).encode()),
    mangled_records.map(str.encode),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(input_lines, max_size=8))
def test_decide_prints_one_valid_json_line_per_non_blank_line(lines):
    code, out, stderr = decide(b"\n".join(lines) + b"\n")
    non_blank = [data for data in lines if data.strip()]
    assert len(out) == len(non_blank)
    assert all(isinstance(o, dict) and "uuid" in o for o in out)
    errors = sum("error" in o for o in out)
    assert code == (1 if errors else 0)
    assert stderr == (f"decide: {errors} input line(s) could not be decided; their output lines carry the error\n"
                      if errors else "")


# -- explain --facts --------------------------------------------------------------------------------


def explain(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(cli, ["explain", "--host", HOST, *args], input=stdin, catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--facts", "[" * 100_000), None, "--facts: arrays and objects nested deeper than 32 levels"),
        (("--facts", '{"uuid": NaN}'), None, "--facts: NaN is not a number JSON allows (NaN and Infinity are refused)"),
        (("--facts", "-"), json.dumps(GOOD).encode() + b" " * MAX_LINE_BYTES,
         "--facts: stdin is larger than 1,048,576 bytes, the limit"),
        (("--facts", "-"), b"\xff", "--facts: not valid UTF-8 (invalid start byte at byte 0)"),
        (("u" * 37, "--facts", json.dumps({**GOOD, "uuid": None})), None,
         "uuid must be 1 to 36 printable ASCII characters (Nova's String(36) column), not "
         "'uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu'"),
    ],
    ids=["deep", "nan", "stdin-over-1MiB", "not-utf8", "uuid-argument-37"],
)
def test_explain_refuses_hostile_facts_with_one_line_and_exit_2(args, stdin, message):
    result = explain(*args, stdin=stdin)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"compute-recover: {message}"]


def test_explain_stops_reading_an_endless_stdin_at_the_limit():
    """A real process on /dev/zero: reading it whole would never end."""
    with open("/dev/zero", "rb") as endless:
        proc = subprocess.run([str(CONSOLE_SCRIPT), "explain", "--host", HOST, "--facts", "-"], stdin=endless,
                              capture_output=True, text=True, timeout=120, check=False)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "compute-recover: --facts: stdin is larger than 1,048,576 bytes, the limit\n"


def test_explain_reports_an_upper_case_uuid_in_lower_case_as_json():
    facts = {key: value for key, value in GOOD.items() if key != "uuid"}
    result = explain(UPPER_UUID, "--facts", "-", "--json", stdin=json.dumps(facts).encode())
    assert result.exit_code == 0
    assert strict_json(result.stdout)["uuid"] == UPPER_UUID.lower()


# -- scenario db.json ----------------------------------------------------------------------------------


def scenario(**tables: Any) -> dict:
    return {"host": HOST, **tables}


def instance(uuid: str, **columns: Any) -> dict:
    return {"uuid": uuid, "vm_state": "active", **columns}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (scenario(instances=[instance("a"), instance("b"), instance("c"), instance("d", memory_mb=2**62)]),
         "instances[3].memory_mb: 4611686018427387904 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        (scenario(instances=[instance("a", vcpus=2**31)]),
         "instances[0].vcpus: 2147483648 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        (scenario(instances=[instance("a", root_gb=2**63)]),
         "instances[0].root_gb: 9223372036854775808 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        (scenario(compute_nodes=[{"memory_mb": 2**40}]),
         "compute_nodes[0].memory_mb: 1099511627776 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        (scenario(services=[{"report_count": 2**31}]),
         "services[0].report_count: 2147483648 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        (scenario(instances=[instance("a", power_state=2**40)]),
         "instances[0].power_state: unknown power state 1099511627776; expected one of nostate (0), running (1), "
         "paused (3), shutdown (4), crashed (6), suspended (7)"),
        (scenario(instances=[instance("a", display_name="d" * 256)]),
         f"instances[0].display_name: 256 characters is longer than Nova's String(255) column holds "
         f"({shown('d' * 256)})"),
        ({"host": "h" * 256}, f"host: 256 characters is longer than Nova's String(255) column holds "
         f"({shown('h' * 256)})"),
        (scenario(migrations=[{"instance_uuid": "a", "source_compute": HOST, "migration_type": "evacuation",
                               "status": "s" * 256}]),
         f"migrations[0].status: 256 characters is longer than Nova's String(255) column holds "
         f"({shown('s' * 256)})"),
        (scenario(instances=[instance("a" * 37)]),
         "instances[0].uuid: uuid must be 1 to 36 printable ASCII characters (Nova's String(36) column), not "
         "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"),
        (scenario(instances=[instance("a", system_metadata={"k": "v" * 256})]),
         f"instances[0].system_metadata: key 'k': 256 characters is longer than Nova's String(255) column holds "
         f"({shown('v' * 256)})"),
        (scenario(instances=[instance("a", launched_at="9999-12-31T23:00:00-05:00")]),
         "instances[0].launched_at: expected an ISO 8601 timestamp between years 1 and 9999, "
         "got '9999-12-31T23:00:00-05:00'"),
        (scenario(instances=[instance("ABC"), instance("abc")]), "instances[1].uuid: duplicate uuid abc"),
    ],
    ids=["memory_mb-2**62", "vcpus-2**31", "root_gb-2**63", "node-memory", "report_count", "power-state-2**40",
         "display_name-256", "host-256", "status-256", "uuid-37", "metadata-value-256", "timestamp-overflow",
         "uuids-equal-but-for-case"],
)
def test_a_value_its_column_cannot_hold_is_one_line_naming_the_field(document, message):
    with pytest.raises(ScenarioError) as raised:
        parse_db_json(document, "db.json")
    assert str(raised.value) == f"db.json: {message}"


def test_values_that_fill_their_columns_exactly_are_accepted():
    rows = parse_db_json(scenario(
        instances=[instance("u" * 36, memory_mb=2**31 - 1, display_name="d" * 255,
                            system_metadata={"k" * 255: "v" * 255})],
        compute_nodes=[{"memory_mb": 2**31 - 1}],
    ))
    assert rows.instances[0]["memory_mb"] == 2**31 - 1
    assert rows.compute_nodes[0]["memory_mb"] == 2**31 - 1


def test_upper_case_uuids_are_stored_in_canonical_lower_case():
    rows = parse_db_json(scenario(
        instances=[instance(UPPER_UUID, deleted=True)],
        migrations=[{"instance_uuid": UPPER_UUID, "source_compute": "other", "dest_compute": HOST,
                     "migration_type": "evacuation", "status": "done"}],
        compute_nodes=[{"uuid": UPPER_UUID}],
    ))
    lower = UPPER_UUID.lower()
    assert rows.instances[0]["uuid"] == lower
    assert rows.deleted_uuids == [lower]
    assert rows.migrations[0]["instance_uuid"] == lower
    assert rows.compute_nodes[0]["uuid"] == lower


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"host": "h", "instances": [{"uuid": "a", "vm_state": "active", "memory_mb": 9223372036854775808}]}',
         "instances[0].memory_mb: 9223372036854775808 is outside Nova's Integer range (-2147483648 to 2147483647)"),
        ('{"host": "h", "instances": [{"uuid": "a", "vm_state": "active", "memory_mb": ' + "9" * 30 + "}]}",
         "integer 99999999999999999999... (30 characters) is larger than any Nova column holds"),
        ('{"host": "h", "instances": [{"uuid": "a", "vm_state": "active", "memory_mb": NaN}]}',
         "NaN is not a number JSON allows (NaN and Infinity are refused)"),
        ('{"host": "h", "instances": [{"uuid": "a", "vm_state": "active", "vcpus": Infinity}]}',
         "Infinity is not a number JSON allows (NaN and Infinity are refused)"),
        ('{"host": "h", "notes": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "arrays and objects nested deeper than 32 levels"),
        ('{"host": "h", "notes": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",
         "arrays and objects nested deeper than 32 levels"),
    ],
    ids=["2**63", "30-digit", "nan", "infinity", "nested-100000", "nested-one-past-the-limit"],
)
def test_a_hostile_db_json_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "db.json"
    path.write_text(text)
    with pytest.raises(ScenarioError) as raised:
        parse_db_json(read_db_json(path), str(path))
    assert str(raised.value) == f"{path}: {message}"


def test_a_db_json_over_the_size_limit_is_refused_unparsed(tmp_path):
    path = tmp_path / "db.json"
    with path.open("wb") as handle:
        handle.write(b'{"host": "h"}')
        handle.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ScenarioError) as raised:
        read_db_json(path)
    assert str(raised.value) == f"{path}: the file is larger than 67,108,864 bytes, the limit"
    path.write_bytes(b'{"host": "h"}'.ljust(MAX_DOCUMENT_BYTES))
    assert read_db_json(path) == {"host": "h"}, "a file of exactly the limit is read"
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(ScenarioError, match="the file is larger than 67,108,864 bytes"):
        read_db_json(path)  # reading it whole would never end


def test_a_warning_lists_odd_ignored_field_names_quoted_and_few():
    made_up = {**{f"f{n:02}": 1 for n in range(30)}, "bad\nname": 1, "long" * 100: 1}
    rows = parse_db_json(scenario(instances=[instance("a", **made_up)]))
    warning = ignored_fields_warning(rows.ignored_fields, "db.json")
    assert "\n" not in warning and len(warning) < 600
    assert warning.startswith("db.json: ignored fields compute-recover does not use: instances.'bad\\nname', "
                              f"instances.{shown('long' * 100)}, instances.f00, instances.f01, ")
    assert warning.endswith(", instances.f17 and 12 more")


def test_the_bounds_decide_checks_are_the_database_columns():
    """`decide` starts without the database layer, so it keeps the limits as numbers; they must agree."""
    assert Instance.__table__.columns["uuid"].type.length == UUID_LENGTH
    assert Migration.__table__.columns["instance_uuid"].type.length == UUID_LENGTH
    for column in ("host", "node", "vm_state", "task_state"):
        assert Instance.__table__.columns[column].type.length == NOVA_STRING_LENGTH
    assert Migration.__table__.columns["status"].type.length == NOVA_STRING_LENGTH
    assert InstanceSystemMetadata.__table__.columns["value"].type.length == NOVA_STRING_LENGTH


def test_the_console_script_refuses_a_hostile_scenario_with_one_line(tmp_path):
    directory = tmp_path / "scenario"
    directory.mkdir()
    (directory / "db.json").write_text(json.dumps(scenario(instances=[instance("a"), instance("b", memory_mb=2**62)])))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    subprocess.run([str(CONSOLE_SCRIPT), "db", "upgrade", "--db", url], check=True, capture_output=True)
    before = (tmp_path / "db.sqlite").read_bytes()
    proc = subprocess.run([str(CONSOLE_SCRIPT), "scenario", "load", str(directory), "--db", url],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert (tmp_path / "db.sqlite").read_bytes() == before
    assert proc.stderr.splitlines() == [
        f"compute-recover: {directory / 'db.json'}: instances[1].memory_mb: 4611686018427387904 is outside "
        "Nova's Integer range (-2147483648 to 2147483647)"]

"""docs/decide.md: every sample case decided by Nova's own code, through the real `compute-recover decide`."""

import json
import shutil
import subprocess

import pytest

from tests.support.paths import CONSOLE_SCRIPT, TEST_DATA

SAMPLE = TEST_DATA / "nova-decisions-sample.jsonl"
CASES = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]


def console_script() -> str:
    beside = CONSOLE_SCRIPT
    found = str(beside) if beside.exists() else shutil.which("compute-recover")
    assert found, "the compute-recover console script is not installed"
    return found


def case_id(index: int, case: dict) -> str:
    record = case["input"]
    resume = "resume" if case["options"]["resume_guests_state_on_host_boot"] else "noresume"
    return (f"{index:03d}-{record['vm_state']}/{record['task_state'] or 'none'}/{record['power_state']}"
            f"-db_{record['db_power_state']}-{resume}")


@pytest.fixture(scope="module")
def decided() -> dict[int, dict]:
    """Each case's output line, from one `decide` run per option set (the output is in input order)."""
    exe = console_script()
    out: dict[int, dict] = {}
    for resume in (False, True):
        group = [i for i, c in enumerate(CASES) if c["options"]["resume_guests_state_on_host_boot"] == resume]
        hosts = {CASES[i]["this_host"] for i in group}
        assert len(hosts) == 1
        cmd = [exe, "decide", "--host", hosts.pop()] + (["--resume-guests-state-on-host-boot"] if resume else [])
        stdin = "".join(json.dumps(CASES[i]["input"]) + "\n" for i in group)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert len(lines) == len(group), proc.stdout
        out.update(zip(group, (json.loads(line) for line in lines), strict=True))
    return out


def test_the_sample_is_complete():
    assert len(CASES) == 145
    assert {c["options"]["resume_guests_state_on_host_boot"] for c in CASES} == {False, True}


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case_id(i, c) for i, c in enumerate(CASES)])
def test_nova_sample_case(decided, index):
    case = CASES[index]
    got = decided[index]
    assert got["uuid"] == case["input"]["uuid"]
    assert "error" not in got, got["error"]
    assert {
        "actions": got["actions"], "vm_state": got["vm_state"], "task_state": got["task_state"],
    } == case["expect"], f"input {json.dumps(case['input'])}, reason: {got['reason']}"

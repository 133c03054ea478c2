"""`make demo` shows the tool in parts (set up; look: plan; act: run; ask why: explain), each of which fits
an 80x24 terminal: at most 24 lines, and those of look, act and ask why of at most 80 columns, so that
nothing scrolls away unread (set up's lines name the database file by its absolute path, as long as the
checkout's)."""

import os
import subprocess

from tests.support.parts import require_program
from tests.support.paths import CONSOLE_SCRIPT, ROOT

PARTS = ("== set up", "== look", "== act", "== ask why")


def test_each_part_of_make_demo_fits_an_80_by_24_terminal(tmp_path):
    require_program("make", "runs the Makefile's demo target")
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", "LINES": "24"}
    env.pop("COMPUTE_RECOVER_DB", None)
    # -o setup: the venv is there already (the suite runs in it); the demo runs this checkout's console script
    done = subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-o", "setup", "demo",
                           f"CLI={CONSOLE_SCRIPT}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    starts = [number for number, line in enumerate(lines) if line.startswith(PARTS)]
    assert [lines[n].split(" (")[0].split(":")[0] for n in starts] == [
        "== set up", "== look, read only", "== act", "== ask why"]
    for begin, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        part = lines[begin:end]
        while part and not part[-1]:
            part.pop()
        assert len(part) <= 24, "\n".join(part)
        if not part[0].startswith("== set up"):
            assert max(len(line) for line in part) <= 80, "\n".join(part)
    explained = "\n".join(lines[starts[3]:])
    assert "libvirt domain instance-00000003" in explained and "why: A soft reboot" in explained
    assert "== what the machine would decide now (--live)" in explained
    assert "instances 23, ok 23, failed 0" in done.stdout

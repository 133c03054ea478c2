"""One `compute-recover run` exactly as the command runs it, in this process, with the device proof switched
off when asked: RunSettings.device_proof, which no option sets, is set here. The benchmark's A/B of what the
proof costs (tests/benchmark.py, part device-proof) runs it both ways. Prints the run's own seconds (its
report's) and this process's CPU seconds in the command (every thread's: on a shared machine, what the
command itself spent).

    python -m tests.support.proof_run on|off compute-recover run ARGS... --json
"""

import contextlib
import dataclasses
import io
import json
import sys
import time

from recovery.cli import main
from recovery.cli.options import RecoveryOptions


def run(proof: str, argv: list[str]) -> None:
    if proof == "off":
        settings = RecoveryOptions.settings
        RecoveryOptions.settings = lambda self, *args: dataclasses.replace(settings(self, *args), device_proof=False)
    sys.argv = argv
    report, cpu = io.StringIO(), time.process_time()
    try:
        with contextlib.redirect_stdout(report):
            main()
    except SystemExit as end:
        if end.code not in (0, 1):  # 1: some instance failed, as a run may
            sys.exit(f"proof_run: the run exited {end.code}")
    cpu = time.process_time() - cpu
    print(f"{json.loads(report.getvalue())['seconds']} {cpu:.4f}")


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2:])

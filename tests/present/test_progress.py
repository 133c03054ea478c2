"""The progress bar: done out of the total the run executes, the percentage and the time left, in 80 columns."""

import io
import json

from rich.console import Console

from recovery.adapters.hypervisor import Hypervisor
from recovery.adapters.network import NetworkHook
from recovery.cli.host import recover
from recovery.core.facts import Options
from recovery.core.outcomes import Outcome
from recovery.core.settings import RunSettings
from recovery.db.scenarios import read_db_json, seed_if_empty
from recovery.present.progress import RunProgress
from recovery.run.execute import InstanceResult
from tests.support.databases import migrated_database
from tests.support.paths import FIXTURES, HOST, uri


def bar_line(progress: RunProgress) -> str:
    console = Console(width=80, color_system=None, file=io.StringIO())
    console.print(progress._bar.make_tasks_table(progress._bar.tasks))
    return console.file.getvalue().rstrip("\n")


def test_the_bar_shows_done_of_total_percentage_and_time_left_in_80_columns():
    progress = RunProgress(Console(file=io.StringIO(), width=80), "compute-1.with-a-rather-long.example.org")
    progress.planned(23)
    for outcome in [Outcome.OK] * 6 + [Outcome.FAILED]:
        progress.finished(InstanceResult("u", None, outcome=outcome))
    line = bar_line(progress)
    assert "7/23 done, 1 failed" in line and "30%" in line and line.endswith(" left")
    assert len(line) <= 80


class Watch:
    def __init__(self) -> None:
        self.totals: list[int] = []
        self.results: list[InstanceResult] = []

    def planned(self, total: int) -> None:
        self.totals.append(total)

    def finished(self, result: InstanceResult) -> None:
        self.results.append(result)


def test_a_run_tells_its_watch_the_total_before_the_results(tmp_path):
    db = migrated_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed_if_empty(db, read_db_json(FIXTURES / "power-outage" / "db.json"))
    watch = Watch()
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume_guests_state_on_host_boot=True),
                           stop_timeout=1)
    try:
        result = recover(Hypervisor.open(uri("power-outage"), read_only=False), db, settings, NetworkHook(), watch)
    finally:
        db.close()
    assert watch.totals == [len(watch.results)] and len(watch.results) == len(result.instances)
    assert json.dumps(watch.totals)  # one plain number

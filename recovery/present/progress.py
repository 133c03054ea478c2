"""The progress bar a person sees on a terminal while a run takes its time.

It appears only once the run has gone on for SHOW_AFTER seconds (a quick run shows its table at
once, with no flash of a bar), counts the instances finished and failed, and disappears before
the table is printed. `run` draws it only for a table on a terminal, never with -q or a machine
format, and never when stdout is not a terminal.
"""

import sys
import threading

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from recovery.core.outcomes import Outcome
from recovery.run.execute import InstanceResult

SHOW_AFTER = 2.0
"""Seconds a run goes on before its bar is drawn."""


class RunProgress:
    """A context manager whose `finished` is HostBoot's callback for each finished instance."""

    def __init__(self, console: Console, host: str, show_after: float = SHOW_AFTER):
        self._bar = Progress(
            SpinnerColumn(), TextColumn(f"recovering {host}"), BarColumn(),
            TextColumn("{task.completed} done, {task.fields[failed]} failed"), TimeElapsedColumn(),
            console=console, transient=True, redirect_stderr=sys.stderr.isatty(),
        )
        self._task = self._bar.add_task("run", total=None, failed=0)
        self._failed = 0
        self._lock = threading.Lock()
        self._closed = False
        self._timer = threading.Timer(show_after, self._show)
        self._timer.daemon = True

    def _show(self) -> None:
        with self._lock:
            if not self._closed:
                self._bar.start()

    def finished(self, result: InstanceResult) -> None:
        """Called from the worker threads as each instance finishes."""
        with self._lock:
            self._failed += result.outcome == Outcome.FAILED
            self._bar.update(self._task, advance=1, failed=self._failed)

    def __enter__(self) -> "RunProgress":
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._closed = True
            self._bar.stop()

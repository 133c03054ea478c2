"""SIGINT and SIGTERM while `run` or `plan` recovers a host: stop as a failing database stops a run.

The first signal stops the run taking new instances (the run's `Halt`): the actions under way
finish (each bounded, a guest's stop by --stop-timeout), the partial report is printed, the run is
journaled `interrupted`, `plan --out` writes no plan and removes its temporary file, and the command
exits 128 + the signal's number (130, 143). A second signal ends the process at once. The agent
stops its recovery the same way (within its unit's stop timeout), then exits 0 as on any SIGTERM.
"""

import logging
import os
import signal
from types import FrameType, TracebackType

from recovery.core.exit_codes import SIGNAL_EXIT_BASE
from recovery.run.execute import Halt

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruption:
    """Installed for the command's whole life (a `with` block, in the main thread); `attach` hands it
    the run's Halt once the run exists (a signal that came before stops the run at once)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._halt: Halt | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Interruption":
        self._previous = {number: signal.signal(number, self.received) for number in SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def attach(self, halt: Halt) -> None:
        self._halt = halt
        if self.signal is not None:
            halt.interrupt(self.signal)

    def exit_code(self, otherwise: int) -> int:
        return otherwise if self.signal is None else SIGNAL_EXIT_BASE + self.signal

    def received(self, number: int, _frame: FrameType | None) -> None:
        """The signal handler (the agent calls it from its own while it recovers the host)."""
        if self.signal is not None:  # the second: no more waiting for the actions under way
            signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
            return
        self.signal = number
        log.warning("%s: stopping: no instance is started any more; the actions under way finish (a second signal "
                    "ends the process at once)", signal.Signals(number).name)
        if self._halt is not None:
            self._halt.interrupt(number)

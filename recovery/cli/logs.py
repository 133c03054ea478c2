"""Where compute-recover's log records go (-q/-v, --log-to): stderr, syslog or the systemd journal
(stderr and syslog lines with control characters escaped; the journal keeps each message exact).

Every module logs through `logging.getLogger(__name__)` under the `recovery` logger, configured
here once per process by the command group. Log records never go to stdout, where the run report
and the machine formats are.
"""

import logging
import logging.handlers
import os
import sys

from recovery.cli.exits import CommandError
from recovery.core.printable import printable

ROOT = "recovery"
TARGETS = ("stderr", "syslog", "journal")
SYSLOG_SOCKET = "/dev/log"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "compute-recover"

_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class CurrentStderrHandler(logging.StreamHandler):
    """Writes each record to sys.stderr as it is then: the progress display swaps it for a proxy
    that prints above the bar, so lines and the bar do not garble each other."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class PrintableFormatter(logging.Formatter):
    """Escapes control characters in each record's message (`printable`): data in a log line
    (a name, an error) never drives the terminal or forges a line of its own. A traceback
    appended to the record keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(logging.makeLogRecord(record.__dict__ | {"message": printable(record.message)}))


def level_for(verbose: int, quiet: bool) -> int:
    """-q: errors only; default: warnings; -v: what each run does; -vv: every action."""
    return _LEVELS[-1 if quiet else min(verbose, 2)]


def configure(level: int, target: str, syslog_address: str = SYSLOG_SOCKET) -> None:
    """Send the `recovery` loggers' records at `level` and above to one target; a CommandError if it is absent."""
    logger = logging.getLogger(ROOT)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(_handler(target, syslog_address))
    logger.setLevel(level)
    logger.propagate = False


def raise_to_info() -> None:
    """For a service (`agent`): what it does is worth its log at the default verbosity."""
    logger = logging.getLogger(ROOT)
    if logger.level == logging.WARNING:
        logger.setLevel(logging.INFO)


def _handler(target: str, syslog_address: str) -> logging.Handler:
    if target == "journal":
        return _journal_handler()
    if target == "syslog":
        return _syslog_handler(syslog_address)
    handler = CurrentStderrHandler()
    handler.setFormatter(PrintableFormatter(f"{IDENTIFIER}: %(levelname)s %(name)s: %(message)s"))
    return handler


def _syslog_handler(address: str) -> logging.Handler:
    """RFC 3164 lines to the local syslog socket (or a host:port over UDP), facility daemon."""
    host, _, port = address.rpartition(":")
    target: str | tuple[str, int] = (host, int(port)) if host and port.isdigit() else address
    if isinstance(target, str) and not os.path.exists(target):  # the handler would drop every record silently
        raise CommandError(f"--log-to syslog: cannot reach syslog at {address} (no such socket): start a syslog "
                           "daemon, give --syslog-address, or use --log-to stderr")
    handler = logging.handlers.SysLogHandler(target, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    handler.setFormatter(PrintableFormatter(f"{IDENTIFIER}[{os.getpid()}]: %(levelname)s %(name)s: %(message)s"))
    return handler


def _journal_handler() -> logging.Handler:
    """systemd-python's handler: structured fields (PRIORITY, CODE_FILE, LOGGER) over the journal's socket."""
    if not os.path.exists(JOURNAL_SOCKET):
        raise CommandError(f"--log-to journal: no systemd journal here ({JOURNAL_SOCKET} is missing): use --log-to "
                           "syslog or stderr")
    from systemd.journal import JournalHandler  # imported on use: it loads libsystemd

    handler = JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler

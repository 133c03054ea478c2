"""What one run of the host boot routine is asked to do."""

from dataclasses import dataclass

from recovery.facts import Options

DEFAULT_CONCURRENCY = 4
"""Few guests start at once, so a host coming back does not cause a boot storm."""

DEFAULT_DB_TIMEOUT = 30.0
"""How long one database call may take (connect, statement, commit) before the database counts as failed."""

DEFAULT_LOCK_TIMEOUT = 60.0
"""How long a run waits for another recovery of the same host to finish before giving up."""


@dataclass(frozen=True)
class RunSettings:
    host: str
    node: str
    options: Options
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    stop_timeout: float = 60.0
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT

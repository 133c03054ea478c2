"""What one run of the host boot routine is asked to do."""

from dataclasses import dataclass
from pathlib import Path

from recovery.facts import Options

DEFAULT_CONCURRENCY = 4
"""Few guests start at once, so a host coming back does not cause a boot storm."""

DEFAULT_INSTANCES_PATH = Path("/var/lib/nova/instances")
"""Nova's instances_path: where an instance's local disks live, in a directory named by its uuid."""


@dataclass(frozen=True)
class RunSettings:
    host: str
    node: str
    options: Options
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    stop_timeout: float = 60.0

"""Files that hold a secret should be private: a word when one is readable by every user.

A --config file or a nova.conf whose database URL carries the password, left readable by others
(mode 0644, as an editor or a copy often leaves it), gives the database to every account on the
compute host. compute-recover still reads it (refusing would stop a host's recovery), but says so,
naming the file and the fix.
"""

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def warn_if_readable_by_others(path: Path | str, what: str) -> None:
    """Log one warning when `path` (`what` it is, e.g. "config file") is readable by every user."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # reading it says what is wrong
    if mode & stat.S_IROTH:
        log.warning("%s %s holds the database password and is readable by every user (mode %04o): make it "
                    "private (chmod o-rwx %s)", what, path, stat.S_IMODE(mode), path)

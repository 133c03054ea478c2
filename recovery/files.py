"""The files compute-recover writes are its owner's alone (0600): the SQLite databases `db upgrade`
makes (the records' and the journal's), `plan --out`'s plan and the metrics textfile.

A symlink is followed, as an operator who links a file to another disk means: the real file it leads
to is the one created, made private or replaced, and the link stays. Modes are set on the open file
(fchmod), never on a name that could be swapped for another between a check and the change, and a
name that is not a regular file (a FIFO, a device) is refused rather than written through.
"""

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
"""Read and write for the owner only, whatever the umask."""


def create_private(path: str | os.PathLike[str]) -> None:
    """A new empty file at `path`, 0600; FileExistsError when something (even a dangling symlink) is there."""
    os.close(_private(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)))


def make_private(path: str | os.PathLike[str]) -> None:
    """The existing regular file at `path` (the real one behind a symlink) made 0600."""
    os.close(_private(os.open(path, os.O_RDONLY | os.O_NONBLOCK)))


def _private(fd: int) -> int:
    """`fd`, its file made 0600; closed and refused (OSError) when it is not a regular file."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


class PrivateReplacement:
    """A file's new content in a private temporary file beside the real file (behind a symlink, the one it
    leads to), renamed over it only once whole (`commit`), so the file is never seen half-written; made at
    once, so that an unwritable place fails before any work."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(os.path.realpath(path))
        if self.path.exists() and not self.path.is_file():
            raise OSError(errno.EINVAL, "not a regular file")  # never /dev/null replaced by a file
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._temporary = Path(temporary)
        self.file: IO[bytes] = os.fdopen(_private(handle), "wb")

    def commit(self) -> None:
        """Flush it to disk and put it in place of the real file, the rename itself durable too."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self._temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def discard(self) -> None:
        """Remove the temporary file if it was not put in place."""
        self.file.close()
        self._temporary.unlink(missing_ok=True)


def write_private(path: str | os.PathLike[str], content: bytes) -> None:
    """`content` as the whole of the file at `path`, atomically and 0600 (PrivateReplacement)."""
    replacement = PrivateReplacement(path)
    try:
        replacement.file.write(content)
        replacement.commit()
    finally:
        replacement.discard()

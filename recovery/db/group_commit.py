"""Group commit: writes from the run's worker threads share transactions.

Every instance step is written before the step after it starts (a claim before the first action,
each action's outcome as it completes), so a run of thousands of instances makes thousands of small
transactions, and their cost, not the hypervisor's, bounds the run. Workers that want a write at
the same moment hand it here; the first becomes the leader, runs every queued write in one
transaction and commits, while the next writes queue for the next transaction. Each worker still
returns only once its own write is committed, so no guarantee is weakened.

A write is a function of the open transaction. If one raises, nothing of its batch is kept: the
whole transaction is rolled back, the writer gets its exception, and each other writer gets
`RolledBack` to restore what it assumed and ask again. A failed commit reaches every writer of the
batch as the database's failure.
"""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Connections = TypeVar("Connections")
Result = TypeVar("Result")


class RolledBack(Exception):
    """Another write of the same transaction failed, so this one was rolled back too: write again."""


@dataclass
class _Write(Generic[Connections]):
    what: str
    work: Callable[[Connections], object]
    done: bool = False
    result: object = None
    error: BaseException | None = None


@dataclass
class GroupCommit(Generic[Connections]):
    """`begin(what)` opens one transaction (yielding what the writes need) and commits it on exit."""

    begin: Callable[[str], AbstractContextManager[Connections]]
    _queue: list[_Write] = field(default_factory=list)
    _leading: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def write(self, what: str, work: Callable[[Connections], Result]) -> Result:
        """Run `work` in a committed transaction, with whatever other writes are waiting."""
        mine = _Write(what, work)
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._leading:
                    self._changed.wait()
                    continue
                batch, self._queue, self._leading = self._queue, [], True
                self._changed.release()
                try:
                    _commit(self.begin, batch)
                finally:
                    self._changed.acquire()
                    self._leading = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]


def _commit(begin: Callable[[str], AbstractContextManager], batch: list[_Write]) -> None:
    what = batch[0].what if len(batch) == 1 else f"{batch[0].what} (and {len(batch) - 1} more writes)"
    failed: _Write | None = None
    try:
        with begin(what) as connections:
            for write in batch:
                try:
                    write.result = write.work(connections)
                except BaseException as error:
                    failed, write.error = write, error
                    raise
    except BaseException as error:  # delivered to the writers, each raising it in its own thread
        for write in batch:
            if write is not failed:
                write.error = RolledBack() if failed is not None else error
    for write in batch:
        write.done = True

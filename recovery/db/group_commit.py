"""Group commit: writes from the run's worker threads share transactions and a connection.

Every instance step is written before the step after it starts (a claim before the first action,
each action's outcome as it completes), so a run of thousands of instances makes thousands of small
transactions, and their cost, not the hypervisor's, bounds the run. Workers that want a write at
the same moment hand it here; the first becomes the leader: it takes a connection, runs every
queued write in one transaction and commits, and goes on with the writes queued meanwhile, on the
same connection, for at most `lead_seconds` (well inside any database call's time limit). Each
worker still returns only once its own write is committed, so no guarantee is weakened.

A write is a function of the open transaction. If one raises, nothing of its batch is kept: the
whole transaction is rolled back, the writer gets its exception, and each other writer gets
`RolledBack` to restore what it assumed and ask again. A failure the transaction reports as its
own (a statement or the commit failing in the database) reaches every writer of the batch.
"""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

Held = TypeVar("Held")
Connections = TypeVar("Connections")
Result = TypeVar("Result")


class RolledBack(Exception):
    """Another write of the same transaction failed, so this one was rolled back too: write again."""


@dataclass
class _Write:
    what: str
    work: Callable[[object], object]
    done: bool = False
    result: object = None
    error: BaseException | None = None


@dataclass
class GroupCommit(Generic[Held, Connections]):
    """`hold()` takes what a leader writes through (a connection) for its turn; `begin(held, what)`
    opens one transaction on it, yielding what the writes need, and commits it on exit."""

    hold: Callable[[], AbstractContextManager[Held]]
    begin: Callable[[Held, str], AbstractContextManager[Connections]]
    lead_seconds: float = 0.25
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
                    self._lead(batch)
                finally:
                    self._changed.acquire()
                    self._leading = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _lead(self, batch: list[_Write]) -> None:
        """Commit `batch`, then whatever queued meanwhile, until the queue is empty or the turn is up."""
        deadline = time.monotonic() + self.lead_seconds
        try:
            with self.hold() as held:
                while batch:
                    _commit(partial(self.begin, held), batch)
                    with self._changed:
                        self._changed.notify_all()
                        if time.monotonic() > deadline:
                            return
                        batch, self._queue = self._queue, []
        except BaseException as error:  # no connection: each writer not yet served gets why
            for write in batch:
                if not write.done:
                    write.error, write.done = error, True


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
        if failed is not None and error is not failed.error:
            failed = None  # the transaction made the write's error its own (a database failure): everyone's
        for write in batch:
            if write is not failed:
                write.error = RolledBack() if failed is not None else error
    for write in batch:
        write.done = True

"""Group commit: writes from the run's worker threads share transactions and a connection.

Every instance step is written before the step after it starts (a claim before the first action,
each action's outcome as it completes), so a run of thousands of instances makes thousands of small
transactions, and their cost, not the hypervisor's, bounds the run. Workers that want a write at
the same moment hand it here; the first becomes the leader: it runs every queued write in one
transaction and commits, and goes on with the writes queued meanwhile on the same connection. Each
worker still returns only once its own write is committed, so no guarantee is weakened.

A write is a function of the open transaction. If one raises, nothing of its batch is kept: the
whole transaction is rolled back, the writer gets its exception, and each other write is made
again (after its `undo`). A failure the transaction reports as its
own (a statement or the commit failing in the database) reaches every writer of the batch.
"""

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from recovery.core.errors import RecoveryError

Held = TypeVar("Held")
Connections = TypeVar("Connections")
Result = TypeVar("Result")


class RolledBack(RecoveryError):
    """Another write of the same transaction failed, so this one was rolled back too: write again."""


class _Write:
    """One writer's write; `woken` is a lock held until the write is done or its writer is to lead."""

    __slots__ = ("done", "error", "result", "what", "woken", "work")

    def __init__(self, what: str, work: Callable[[object], object]) -> None:
        self.what, self.work = what, work
        self.done, self.result, self.error = False, None, None
        self.woken = threading.Lock()
        self.woken.acquire()


@dataclass
class GroupCommit(Generic[Held, Connections]):
    """`hold()` takes what a leader writes through (a connection) for its turn; `begin(held, what)`
    opens one transaction on it, yielding what the writes need, and commits it on exit."""

    hold: Callable[[], AbstractContextManager[Held]]
    begin: Callable[[Held, str], AbstractContextManager[Connections]]
    _queue: list[_Write] = field(default_factory=list)
    _leading: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, what: str, work: Callable[[Connections], Result],
              undo: Callable[[], None] = lambda: None) -> Result:
        """Run `work` in a committed transaction, with whatever other writes are waiting. `undo` puts
        back what `work` changed outside the database: it runs when the write is not committed, before
        a write rolled back for another's failure is made again, or before its own error is raised."""
        while True:
            try:
                return self._write_once(what, work)
            except RolledBack:
                undo()
            except BaseException:
                undo()
                raise

    def _write_once(self, what: str, work: Callable[[Connections], Result]) -> Result:
        mine = _Write(what, work)
        with self._lock:
            self._queue.append(mine)
            lead, self._leading = not self._leading, True
        if not lead:
            mine.woken.acquire()  # each writer is woken once: done, or handed the lead
        if not mine.done:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """Commit what is queued, and what queues meanwhile, on one connection, until the queue is
        empty; then hand the lead to the first writer still waiting, if one came in between. A
        connection is never held idle (a watched one would be cut as hung)."""
        batch: list[_Write] = []
        try:
            with self.hold() as held:
                while True:
                    with self._lock:
                        batch, self._queue = self._queue, []
                    if not batch:
                        break
                    _commit(partial(self.begin, held), batch)
                    for write in batch:
                        write.woken.release()
        except BaseException as error:  # no connection: each writer waiting gets why
            with self._lock:
                batch, self._queue = [w for w in batch if not w.done] + self._queue, []
            for write in batch:
                write.error, write.done = error, True
                write.woken.release()
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].woken.release()  # not done: its writer leads next
                else:
                    self._leading = False


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

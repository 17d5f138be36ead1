"""What the SQL stores share: one store thread, group commit, following other writers, reads.

``SQLiteEventStore`` and ``PostgresEventStore`` are this class with an engine
(a database, its connections and its SQL dialect) filled in. Nothing here
knows which engine it runs on.

Theory of operation
===================

* **One store thread** (its own ``threading.Thread``, design rule 21) owns
  the store's write connection and its view of the log's head. It takes work
  from a queue: appends, other jobs (a checkpoint), "look for news", and
  ``_END``. Appends queued together are drained into one batch of at most
  ``max_batch`` events and committed in one transaction (group commit).
* **Several writers share one log** (design rule 25). The engine's commit
  takes the database's write lock first (SQLite ``BEGIN IMMEDIATE``,
  PostgreSQL an advisory transaction lock), reads the head *inside* the
  transaction, and gives the new events the positions after it. Events that
  other processes committed since this thread last looked come back with the
  batch (``others``), so they are announced first, in position order. When
  idle, the thread looks for other writers' commits (SQLite: every
  ``poll_interval``, when ``PRAGMA data_version`` says another connection
  committed; PostgreSQL: when a notification or the poll says so) and hands
  what it reads to the trio thread the same way.
* **Announcing** happens on the trio thread, in ``run_sync_soon`` callbacks,
  which run in the order the thread queued them: ``_announce`` moves the head
  and tells the commit listeners (the bus) about each event exactly once, in
  position order, whoever committed it.
* **Cancellation** (design rule 21). An appender cancelled while its batch
  commits only stops waiting; one cancelled before the thread took its work
  withdraws it (``_lock`` orders the two). Closing commits the queue first.
* **Reads** run in worker threads on the engine's reader connection, one at
  a time (``_read_limiter``), with the SQL of ``events/_sql.py``.
* **Pruning** (design rule 42) removes the oldest events, a prefix of the
  log, in transactions of at most ``PRUNE_CHUNK`` events that hold the
  log's lock like a commit, each one a job of the store thread in order with
  the appends. The last event is always kept, so the head (read from the log
  inside every commit, rule 25) never goes back and positions are never
  reused.
* **Failures** (design rule 27). The engine sorts an error into "the store
  cannot be used now" (``StoreUnavailable``, ``StoreFull``: every member of
  the batch gets it, nothing of the batch is committed) and anything else,
  which can only come from one member's data: the batch is then committed
  again one appender at a time, so only the member at fault fails. Events
  queued with ``append_nowait`` that fail are counted (``statistics().dropped``)
  and logged; nothing is lost silently.

Invariants: ``_head`` (trio thread) is the last announced position and only
grows, through ``_announce``, one event at a time but past the events a
prune removed before this store read them; the thread's own ``head`` is
never behind the last batch it handed over.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from queue import Empty, SimpleQueue
from time import perf_counter
from typing import Any, Final, Generic, Self, TypeVar, final
from uuid import UUID

import attrs
import trio

from .. import _telemetry
from .._core._check import finite_at_least, int_at_least, unicode_problem
from .._event import Event, EventType, check_trace_context
from .._exceptions import EventsError, PruneRefused, StoreCorrupt, StoreReadOnly
from .._telemetry import STORE_COMMIT, STORE_DROPPED
from ._closed import StoreClosed
from ._codec import dump_payload, parse_json
from ._filter import EventFilter
from ._pace import cancel_requested
from ._sql import Dialect, read_sql, where
from ._store import (
    EventStore,
    StoreStatistics,
    check_checkpoint_args,
    check_event,
    check_event_id,
    check_prune_args,
    check_read_args,
)

__all__ = [
    "PRUNE_CHUNK",
    "Committed",
    "PruneStep",
    "ThreadedStore",
    "Work",
    "check_type_and_payload",
    "decode_page",
    "log",
    "place",
    "prune_step",
    "stored_payload",
]

log: Final = logging.getLogger("trio_smith.events")
_parse_type: Final = EventType.parse

#: A connection of the engine (sqlite3.Connection, psycopg.Connection).
C = TypeVar("C")

#: States of queued work: waiting in the queue, taken by the store thread
#: (committed or failing as one batch), or withdrawn by a cancelled appender.
_QUEUED: Final = 0
_TAKEN: Final = 1
_WITHDRAWN: Final = 2


@final
class Work:
    """Appends, or one other job, for the store thread; and its outcome.

    ``state`` changes only under the store's lock (the thread takes, a
    cancelled appender withdraws). ``task`` is the appender waiting for the
    outcome, None if nobody waits (``append_nowait``, or a cancelled one).
    """

    __slots__ = ("error", "events", "job", "result", "rows", "state", "task")

    def __init__(
        self,
        events: list[Event],
        rows: list[tuple[Any, ...]],
        task: trio.lowlevel.Task | None,
        job: Callable[[Any], Any] | None = None,
    ) -> None:
        self.events = events
        #: The events encoded by the engine, in the same order.
        self.rows = rows
        self.task = task
        self.job = job
        self.state = _QUEUED
        self.result: Any = None
        self.error: BaseException | None = None


#: Put last on the queue: commit what precedes, then end.
_END: Final = Work([], [], None)
#: Look for other writers' commits (PostgreSQL's listener queues it).
_LOOK: Final = Work([], [], None)


@final
@attrs.frozen(kw_only=True)
class Committed:
    """What one transaction did, as the engine's ``commit`` reports it.

    Attributes:
        others: events other writers committed after the thread's head and
            before this batch, in position order.
        stored: each event of the batch as stored (an id already held gives
            the original), in batch order.
        new: the events this transaction added, in position order.
    """

    others: list[Event]
    stored: list[Event]
    new: list[Event]


#: The most events one transaction of ``prune`` removes: other writers wait
#: for the log's lock no longer than that takes (80-100 ms for SQLite here;
#: design rule 42).
PRUNE_CHUNK: Final = 2_000


@final
@attrs.frozen(kw_only=True)
class PruneStep:
    """What one transaction of ``prune`` did (``prune_step``).

    Attributes:
        through: the last position the prune removes (0: nothing to remove),
            decided by its first transaction.
        removed: events this transaction removed.
        done: nothing is left to remove up to ``through``.
        behind: the durable subscription furthest behind and its checkpoint,
            when it lies below ``through`` (nothing was removed).
    """

    through: int
    removed: int
    done: bool
    behind: tuple[str, int] | None = None


def prune_step(
    query: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
    delete: Callable[[int], int],
    *,
    param: str,
    newer: str,
    before: Any,
    through: int | None,
    force: bool,
    chunk: int,
) -> PruneStep:
    """One transaction of ``prune``, in both engines: they hold the log's lock around it.

    The first transaction decides ``through``: the position before the first
    event at or after ``before``, and never the last event. Each removes at
    most ``chunk`` events from the start of the log, up to ``through``.

    Args:
        query: runs a SELECT inside the transaction, returning its rows.
        delete: removes the events at or below a position; how many it removed.
        param: the engine's parameter marker.
        newer: the condition "at or after ``before``" on ``ts``, with one
            parameter (SQLite writes ``+ts`` so that it walks the positions
            from the start, through no more than the events it removes).
        before: ``before`` as the engine passes a time.
        through: decided by an earlier transaction, or None for the first.
        force: remove events a durable subscription has not handled.
        chunk: the most events to remove.
    """
    if through is None:
        top = query("SELECT position FROM events ORDER BY position DESC LIMIT 1", ())
        if not top:
            return PruneStep(through=0, removed=0, done=True)
        last = int(top[0][0])
        first_newer = query(
            f"SELECT position FROM events WHERE {newer} ORDER BY position LIMIT 1", (before,)
        )
        through = last - 1 if not first_newer else min(last - 1, int(first_newer[0][0]) - 1)
    oldest = query("SELECT position FROM events ORDER BY position LIMIT 1", ())
    if not oldest or int(oldest[0][0]) > through:
        return PruneStep(through=through, removed=0, done=True)
    if not force:
        behind = query(
            "SELECT name, position FROM subscriptions "
            f"WHERE position < {param} ORDER BY position, name LIMIT 1",
            (through,),
        )
        if behind:
            name, checkpoint = behind[0]
            return PruneStep(
                through=through, removed=0, done=True, behind=(str(name), int(checkpoint))
            )
    end = min(through, int(oldest[0][0]) + chunk - 1)
    return PruneStep(through=through, removed=delete(end), done=end >= through)


class ThreadedStore(EventStore, Generic[C]):
    """A durable store with a store thread; engines subclass it (module docstring).

    An engine implements the abstract methods. ``_connect`` runs in a worker
    thread when the store opens; ``_commit``, ``_newer`` and ``_others_wrote``
    run in the store thread on ``_connection``; reads run in worker threads
    through ``_query``.
    """

    __slots__ = (
        "_announced_others",
        "_appended",
        "_capacity",
        "_closed",
        "_connection",
        "_dropped",
        "_follow_error",
        "_head",
        "_idle_wait",
        "_jobs",
        "_lock",
        "_name",
        "_opened",
        "_pending",
        "_pruned",
        "_read_limiter",
        "_room",
        "_thread_done",
        "_token",
        "_transactions",
        "max_batch",
        "poll_interval",
        "read_only",
        "store_id",
    )

    def __init__(
        self,
        *,
        name: str,
        max_batch: int,
        queue: int,
        read_only: bool,
        poll_interval: float,
        idle_wait: float | None,
    ) -> None:
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {read_only!r}")
        finite_at_least("poll_interval", poll_interval, 0, strict=True)
        int_at_least("max_batch", max_batch, 1)
        int_at_least("queue", queue, 1)
        super().__init__()
        self._name = name
        self.read_only = read_only
        self.poll_interval = poll_interval
        self.max_batch = max_batch
        #: Seconds the store thread waits for work before it looks for other
        #: writers' commits; None: only when told (``_LOOK``).
        self._idle_wait = idle_wait
        #: The last error met while following, logged once (not at every poll);
        #: "" once following works again. Written by the store thread only.
        self._follow_error = ""
        #: Work for the store thread, in order; ``_END`` last.
        self._jobs: SimpleQueue[Work] = SimpleQueue()
        #: Orders the store thread taking work against an appender withdrawing it.
        self._lock = threading.Lock()
        #: Work queued or being committed (trio thread only); at most
        #: ``_capacity``, beyond which appends wait in ``_room``.
        self._pending = 0
        self._capacity = queue
        self._room = trio.lowlevel.ParkingLot()
        self._token: trio.lowlevel.TrioToken | None = None
        #: The store thread's connection (None until open, and after close).
        self._connection: C | None = None
        #: One read at a time on the reader connection.
        self._read_limiter = trio.CapacityLimiter(1)
        self._thread_done = trio.Event()
        self._head = 0
        self._opened = False
        self._closed = False
        self._appended = 0
        self._transactions = 0
        self._announced_others = 0
        self._dropped = 0
        #: Events this store object pruned (written by the store thread).
        self._pruned = 0
        #: The store's own id (store_meta), stable across reopenings.
        self.store_id: str | None = None

    @property
    def name(self) -> str:
        return self._name

    # ------------------------------------------------------------ engine

    @abc.abstractmethod
    def _connect(self) -> tuple[C, int, str]:
        """Open (or create) and check the store, in a worker thread.

        Returns:
            The store thread's connection, the head, the store id.

        Raises:
            StoreOpenError: the store cannot be opened; nothing was changed.
        """

    @abc.abstractmethod
    def _encode(self, event: Event) -> tuple[Any, ...]:
        """An event's row, all but its position (``_work`` calls it, on the appender's side).

        Raises:
            TypeError, ValueError, OverflowError: the event cannot be stored;
                the message says why.
        """

    @abc.abstractmethod
    def _commit(self, events: list[Event], rows: list[tuple[Any, ...]], head: int) -> Committed:
        """Commit one batch in one transaction (store thread); see ``Committed``.

        ``head`` is the last position the thread has handed over; the engine
        reads the real head inside the transaction (others may have written).
        """

    @abc.abstractmethod
    def _newer(self, head: int) -> list[Event]:
        """Up to one page of committed events after ``head`` (store thread)."""

    @abc.abstractmethod
    def _others_wrote(self) -> bool:
        """Whether another writer may have committed since the last call (store thread)."""

    @abc.abstractmethod
    def _store_error(self, exc: Exception) -> EventsError | None:
        """The store error ``exc`` means when the store cannot be used now, else None.

        None means the error can only come from the data of the batch (it is
        then committed again one appender at a time).
        """

    @property
    @abc.abstractmethod
    def _dialect(self) -> Dialect:
        """How the engine writes parameters, ids and times."""

    @abc.abstractmethod
    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run a read in a worker thread on the reader connection.

        Raises:
            StoreClosed: the store is closed.
            StoreUnavailable: the engine cannot be read now.
        """

    @abc.abstractmethod
    def _decode(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        """Rows of ``COLUMNS`` (events/_sql.py) as events.

        Raises:
            StoreCorrupt: a row cannot be an event, naming its position.
        """

    @abc.abstractmethod
    def _save_checkpoint(self, connection: C, name: str, position: int, now: datetime) -> None:
        """Store a durable subscription's position (store thread, autocommit)."""

    @abc.abstractmethod
    def _prune_step(
        self, connection: C, before: datetime, through: int | None, force: bool, chunk: int
    ) -> PruneStep:
        """One transaction of ``prune`` (store thread): ``prune_step`` under the log's lock."""

    @abc.abstractmethod
    def _disconnect(self) -> None:
        """Close every connection (trio thread, once the store thread has ended)."""

    def _thread_connection(self) -> C:
        """The store thread's connection, opened again if it broke (store thread)."""
        connection = self._connection
        assert connection is not None
        return connection

    def _reset_connection(self) -> None:
        """After a store error in the store thread: drop a connection that broke."""

    def _last_words(self) -> None:
        """In the store thread, after the last commit, before it ends."""

    # ------------------------------------------------------------ opening

    async def __aenter__(self) -> Self:
        if self._opened:
            raise RuntimeError(f"event store {self._name!r} was already opened; build a new one")
        self._opened = True
        self._connection, self._head, self.store_id = await trio.to_thread.run_sync(self._connect)
        # A thread of its own, not trio.to_thread per batch: the round trip
        # through trio's thread cache costs twice as much, and one publisher
        # awaiting each append pays it on every event (design rule 21).
        self._token = trio.lowlevel.current_trio_token()
        threading.Thread(
            target=self._thread, name=f"trio_smith store {self._name}", daemon=True
        ).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            # Shielded: the queued appends are committed and their appenders
            # told even if the block is cancelled (the queue is bounded).
            with trio.CancelScope(shield=True):
                await self.aclose()
        finally:
            if self._token is not None:
                self._disconnect()

    async def aclose(self) -> None:
        """Commit every queued append, then refuse further use; idempotent.

        The connections are released when the ``async with`` block ends.
        """
        first = not self._closed
        self._closed = True
        if first and self._token is not None:
            # Appenders waiting for room give up (StoreClosed); the thread
            # commits what is queued, then ends.
            self._room.unpark_all()
            self._jobs.put(_END)
        if self._token is not None:
            await self._thread_done.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed or self._token is None:
            raise StoreClosed(self._name)

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise StoreReadOnly(self._name)

    # ------------------------------------------------------------ the store thread

    def _thread(self) -> None:
        """The store thread: commit what is queued, in batches, follow others, until ``_END``."""
        jobs = self._jobs
        token = self._token
        assert token is not None
        head = self._head
        later: Work | None = None
        try:
            while True:
                if later is not None:
                    work, later = later, None
                else:
                    try:
                        work = jobs.get(timeout=self._idle_wait)
                    except Empty:
                        work = _LOOK
                if work is _END:
                    self._last_words()
                    return
                if work is _LOOK:
                    head = self._follow(head, token)
                    continue
                if work.job is not None:
                    self._run_job(work, token)
                    continue
                batch = [work]
                size = len(work.events)
                while size < self.max_batch and not jobs.empty():
                    try:
                        more = jobs.get_nowait()
                    except Empty:  # pragma: no cover - only this thread takes
                        break
                    if more.job is not None or more is _END or more is _LOOK:
                        later = more  # after this batch, in order
                        break
                    batch.append(more)
                    size += len(more.events)
                with self._lock:
                    taken = [work for work in batch if work.state == _QUEUED]
                    for work in taken:
                        work.state = _TAKEN
                if taken:
                    head = self._commit_taken(taken, head, token)
        except trio.RunFinishedError:
            # trio.run ended without closing the store (a bug in the caller
            # or an interpreter exit): nobody is left to tell.
            pass
        finally:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._thread_done.set)

    def _follow(self, head: int, token: trio.lowlevel.TrioToken) -> int:
        """Hand over what other writers committed after ``head``; the new head."""
        try:
            if not self._others_wrote():
                return head
            while events := self._newer(head):
                position = events[-1].position
                assert position is not None
                head = position
                token.run_sync_soon(self._followed, events)
        except Exception as exc:
            # Looked for again at the next poll or notification; logged once.
            self._reset_connection()
            if str(exc) != self._follow_error:
                self._follow_error = str(exc)
                log.warning("event store %r cannot read other writers' events: %s", self._name, exc)
        else:
            self._follow_error = ""
        return head

    def _commit_taken(self, taken: list[Work], head: int, token: trio.lowlevel.TrioToken) -> int:
        """Commit the taken work as one batch; on a data error, one appender at a time."""
        start = perf_counter()
        try:
            done = self._commit(
                [e for w in taken for e in w.events], [r for w in taken for r in w.rows], head
            )
        except Exception as exc:
            error = self._store_error(exc)
            if error is not None:
                self._reset_connection()
                token.run_sync_soon(self._finished, taken, None, error)
                return head
            if len(taken) == 1:
                token.run_sync_soon(self._finished, taken, None, self._refused(taken[0], exc))
                return head
            # Design rule 27: one member's data cannot spoil the others.
            for work in taken:
                head = self._commit_taken([work], head, token)
            return head
        head = _last(done.others, _last(done.new, head))
        token.run_sync_soon(self._committed, taken, done, perf_counter() - start)
        return head

    def _refused(self, work: Work, exc: Exception) -> Exception:
        """The error of one appender's events that the engine would not store."""
        first = work.events[0].id if work.events else None
        error = ValueError(f"event {first} cannot be stored in {self._name!r}: {exc}")
        error.__cause__ = exc
        return error

    def _run_job(self, work: Work, token: trio.lowlevel.TrioToken) -> None:
        assert work.job is not None
        with self._lock:
            if work.state != _QUEUED:
                return  # withdrawn
            work.state = _TAKEN
        try:
            result = work.job(self._thread_connection())
        except Exception as exc:
            error = self._store_error(exc)
            if error is not None:
                self._reset_connection()
            token.run_sync_soon(self._finished, [work], None, error or exc)
        else:
            token.run_sync_soon(self._finished, [work], result, None)

    # ------------------------------------------------------------ the trio thread

    def _announce(self, events: Sequence[Event]) -> int:
        """Move the head over ``events`` not announced yet; tell the listeners, once each.

        Returns:
            How many events were announced.
        """
        head = self._head
        first = events[0].position
        assert first is not None
        if first <= head:
            events = [e for e in events if e.position is not None and e.position > head]
            if not events:
                return 0
            first = events[0].position
            assert first is not None
        # Invariant: positions are dense, and every batch the thread hands
        # over starts right after the last one it handed over, unless a prune
        # (design rule 42) removed events before this store could read them:
        # they are gone, and the listeners go on from the first kept event.
        if first != head + 1:
            assert first > head + 1, f"event store {self._name!r}: position {first} after {head}"
            log.warning(
                "event store %r: positions %d to %d were pruned before this store read them",
                self._name,
                head + 1,
                first - 1,
            )
        position = events[-1].position
        assert position is not None
        self._head = position
        try:
            self._notify(events)
        except Exception:
            # Listeners must not raise (EventStore.add_listener); this runs
            # outside any task, where an error would crash trio.
            log.exception("a commit listener of event store %r raised", self._name)
        return len(events)

    def _followed(self, events: list[Event]) -> None:
        """On the trio thread: events other writers committed."""
        self._announced_others += self._announce(events)

    def _committed(self, taken: list[Work], done: Committed, duration: float) -> None:
        """On the trio thread: a batch is committed; announce, then wake the appenders.

        ``duration``: the transaction's seconds in the store thread (perf_counter).
        """
        self._transactions += 1
        self._appended += len(done.new)
        if _telemetry.enabled and _telemetry.attached(STORE_COMMIT):
            # On the trio thread, as every handler is called (rule 44).
            _telemetry.execute(
                STORE_COMMIT, {"events": len(done.new), "duration": duration}, {"store": self._name}
            )
        if done.others:
            self._followed(done.others)
        if done.new:
            self._announce(done.new)
        offset = 0
        results = []
        for work in taken:
            results.append(done.stored[offset : offset + len(work.events)])
            offset += len(work.events)
        self._finished(taken, results, None)

    def _finished(self, done: list[Work], result: Any, error: BaseException | None) -> None:
        """On the trio thread: wake the waiters of finished work; make room."""
        self._pending -= len(done)
        for index, work in enumerate(done):
            task = work.task
            if task is None:
                if error is not None and work.job is None:
                    self._dropped += len(work.events)
                    log.error(
                        "event store %r dropped %d event(s) queued with append_nowait: %s",
                        self._name,
                        len(work.events),
                        error,
                    )
                    if _telemetry.enabled and _telemetry.attached(STORE_DROPPED):
                        _telemetry.execute(
                            STORE_DROPPED,
                            {"count": len(work.events)},
                            {"store": self._name, "error_type": type(error).__name__},
                        )
                continue
            work.task = None
            if error is not None:
                work.error = error
            elif work.job is not None:
                work.result = result
            else:
                work.result = result[index]
            trio.lowlevel.reschedule(task)
        self._room.unpark(count=len(done))

    async def _room_for_one(self) -> None:
        """Wait while the queue is full (backpressure); raise if the store closed."""
        while self._pending >= self._capacity:
            await self._room.park()
            self._check_writable()

    async def _submit(self, work: Work) -> Any:
        if cancel_requested():
            await trio.lowlevel.checkpoint_if_cancelled()
        if self._pending >= self._capacity:
            await self._room_for_one()
        work.task = trio.lowlevel.current_task()
        self._pending += 1
        self._jobs.put(work)

        def abort(_: Any) -> trio.lowlevel.Abort:
            with self._lock:
                withdrawn = work.state == _QUEUED
                if withdrawn:
                    work.state = _WITHDRAWN
            # Taken: the batch commits all the same (a transaction in the
            # thread is never abandoned half-way); only the waiting stops.
            work.task = None
            if withdrawn:
                self._pending -= 1
                self._room.unpark()
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)
        if work.error is not None:
            raise work.error
        return work.result

    async def _run_in_thread(self, job: Callable[[C], Any]) -> Any:
        """Run ``job(connection)`` in the store thread, in order with the appends."""
        self._check_writable()
        return await self._submit(Work([], [], None, job))

    def _work(self, events: list[Event]) -> Work:
        """Encode on the appender's side (design rule 22): a bad event fails here, alone.

        Raises:
            TypeError, ValueError: ``event <id> cannot be stored: <why>``.
        """
        encode = self._encode
        rows = []
        for event in events:
            try:
                rows.append(encode(event))
            except (TypeError, ValueError, OverflowError) as exc:
                kind = ValueError if isinstance(exc, OverflowError) else type(exc)
                raise kind(f"event {event.id} cannot be stored: {exc}") from exc
        return Work(events, rows, None)

    async def append(self, event: Event) -> Event:
        check_event(event)
        self._check_writable()
        result: list[Event] = await self._submit(self._work([event]))
        return result[0]

    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        batch = [check_event(event) for event in events]
        self._check_writable()
        if not batch:
            await trio.lowlevel.checkpoint()
            return []
        result: list[Event] = await self._submit(self._work(batch))
        return result

    def append_nowait(self, event: Event) -> None:
        check_event(event)
        self._check_writable()
        if self._pending >= self._capacity:
            raise trio.WouldBlock
        work = self._work([event])
        self._pending += 1
        self._jobs.put(work)

    async def head(self) -> int:
        self._check_open()
        await trio.lowlevel.checkpoint()
        return self._head

    # ------------------------------------------------------------ reading

    async def read(
        self,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> list[Event]:
        check_read_args(filter, after, limit, last)
        self._check_open()
        if limit == 0:
            await trio.lowlevel.checkpoint()
            return []
        sql, params = read_sql(filter, after, limit, last, self._dialect)
        return self._decode(await self._query(sql, params))

    async def get(self, event_id: UUID) -> Event | None:
        check_event_id(event_id)
        rows = await self._query(
            f"SELECT {self._dialect.columns} FROM events WHERE event_id = {self._dialect.param}",
            (self._dialect.uuid(event_id),),
        )
        return self._decode(rows)[0] if rows else None

    async def count(self, filter: EventFilter | None = None) -> int:
        check_read_args(filter, 0, None)
        condition, params = where(filter, 0, self._dialect)
        rows = await self._query(f"SELECT count(*) FROM events WHERE {condition}", params)
        return int(rows[0][0])

    async def save_checkpoint(self, name: str, position: int) -> None:
        check_checkpoint_args(name, position)
        now = datetime.now(UTC)
        # One durable statement, in order with the appends.
        await self._run_in_thread(
            lambda connection: self._save_checkpoint(connection, name, position, now)
        )

    async def load_checkpoint(self, name: str) -> int | None:
        check_checkpoint_args(name)
        rows = await self._query(
            f"SELECT position FROM subscriptions WHERE name = {self._dialect.param}", (name,)
        )
        return int(rows[0][0]) if rows else None

    async def prune(self, before: datetime, *, force: bool = False) -> int:
        """Remove the oldest events, those from the start of the log up to ``before``.

        What goes is the run of events at the start of the log (the lowest
        positions) whose times are all before ``before``: it stops at the
        first event at or after ``before`` (so an older event stored after a
        newer one stays), and the last event of the log always stays. The
        log remains one unbroken run of positions. Positions are never
        renumbered or reused: ``head()`` does not change, and a read or a
        replay from a position before the first kept event starts at it
        (design rule 42). Removed in transactions of at most 2,000 events,
        in order with this store's appends; other processes' appends wait
        for each as for a commit.

        Args:
            before: an aware datetime.
            force: remove events even if a durable subscription has not
                handled them yet (its checkpoint lies below them); it will
                resume at the first kept event.

        Returns:
            How many events were removed.

        Raises:
            TypeError, ValueError: ``before`` is not an aware datetime, or
                ``force`` not a bool.
            PruneRefused: without ``force``, a durable subscription's
                checkpoint lies below the last event to remove (it names the
                one furthest behind); nothing was removed.
            StoreReadOnly: the store is read-only.
            StoreClosed: the store is closed.
            StoreUnavailable: the store cannot be written now. A prune
                stopped half-way (by this, or by cancellation) has removed
                the oldest of its events, and can be run again.
        """
        check_prune_args(before, force)
        self._check_writable()
        through: int | None = None
        removed = 0

        def step(connection: C) -> PruneStep:
            done = self._prune_step(connection, before, through, force, PRUNE_CHUNK)
            # Counted here, on the store thread: a prune cancelled while a
            # transaction commits still counts what that one removed.
            self._pruned += done.removed
            return done

        while True:
            done: PruneStep = await self._run_in_thread(step)
            if done.behind is not None:
                name, checkpoint = done.behind
                raise PruneRefused(self._name, name, checkpoint, done.through)
            through = done.through
            removed += done.removed
            if done.done:
                return removed

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            name=self._name,
            head=self._head,
            appended=self._appended,
            transactions=self._transactions,
            followed=self._announced_others,
            dropped=self._dropped,
            queued=self._pending,
            follow_error=self._follow_error or None,
            pruned=self._pruned,
        )


def stored_payload(event: Event) -> str:
    """The payload's JSON text, as both stores write it.

    Raises:
        TypeError, ValueError: the payload is not JSON (an ``Event`` built
            without ``Event.new``), or it or the source holds text UTF-8
            cannot encode.
    """
    payload = dump_payload(event.payload)
    for field, text in (("payload", payload), ("source", event.source)):
        problem = unicode_problem(text)
        if problem is not None:
            raise ValueError(f"its {field} holds {problem}, which UTF-8 cannot encode")
    return payload


def decode_page(
    rows: list[tuple[Any, ...]],
    store: str,
    decode: Callable[[list[tuple[Any, ...]]], list[Event]],
    check_row: Callable[[tuple[Any, ...], str], None],
) -> list[Event]:
    """``decode(rows)``; if it fails, ``check_row`` names the first damaged row.

    The engines' decoders are a replay's hot path and check only what would
    otherwise pass silently; ``check_row`` is the slow, thorough look that
    raises StoreCorrupt naming the position (design rule 26).
    """
    try:
        return decode(rows)
    except Exception:
        for row in rows:
            check_row(row, store)
        raise  # pragma: no cover - check_row refuses whatever decode did


def check_type_and_payload(store: str, position: int, kind: object, payload: object) -> None:
    """Raise StoreCorrupt if a row's type or payload cannot be read back (both engines)."""
    try:
        _parse_type(kind)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise StoreCorrupt(store, position, f"its type is not an event type ({exc})") from None
    try:
        data = parse_json(payload)  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreCorrupt(store, position, f"its payload is not JSON ({exc})") from None
    if type(data) is not dict:
        raise StoreCorrupt(store, position, f"its payload is not a JSON object ({payload!r:.60})")


def check_trace_context_column(store: str, position: int, text: object) -> None:
    """Raise StoreCorrupt if a row's trace context is neither NULL nor a carrier's JSON."""
    if text is None:
        return
    try:
        check_trace_context(parse_json(text))  # type: ignore[arg-type]
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreCorrupt(
            store, position, f"its trace_context is not a trace context ({exc})"
        ) from None


def place(
    events: list[Event],
    encoded: list[tuple[Any, ...]],
    head: int,
    known: dict[UUID, Event],
) -> tuple[list[Event], list[Event], list[tuple[Any, ...]]]:
    """Positions after ``head`` for the events whose ids are not in ``known``.

    An id repeated within the batch is placed once; ``known`` maps the ids
    already stored to their events (it is filled in).

    Returns:
        Each event as stored (batch order), the new ones (position order),
        and the rows to insert: ``(position, *encoded row)``.
    """
    stored: list[Event] = []
    new: list[Event] = []
    rows: list[tuple[Any, ...]] = []
    position = head
    for event, row in zip(events, encoded, strict=True):
        kept = known.get(event.id)
        if kept is None:
            position += 1
            kept = known[event.id] = event.at_position(position)
            new.append(kept)
            rows.append((position, *row))
        stored.append(kept)
    return stored, new, rows


def _last(events: list[Event], default: int) -> int:
    if not events:
        return default
    position = events[-1].position
    assert position is not None
    return position

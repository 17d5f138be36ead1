"""``SQLiteEventStore``: the durable event store in one SQLite file, with group commit.

Theory of operation
===================

* **One file, WAL.** Readers never block the writer. ``synchronous=FULL``
  (the default) makes every commit durable; ``NORMAL`` survives a process
  crash but not a power loss, and is much faster per commit
  (reference/events.md section 0).
* **Dense, commit-ordered positions.** ``position`` is the rowid, assigned
  explicitly by the single writer as ``head + 1, head + 2, ...`` inside its
  transaction, so a reader that has seen ``p`` has seen everything up to
  ``p`` (reference/events.md 4.1). Ids are unique (idempotent appends).
* **Group commit** (reference/events.md 4.2). One writer thread per store
  (its own thread, not ``trio.to_thread`` per batch, whose round trip costs
  twice as much) takes appends from a queue, drains what is queued into one
  batch, and commits it in one transaction. Back on the trio thread (a
  ``run_sync_soon`` callback) the head moves, the commit listeners are told
  (the bus fans out) and each appender is woken with its positions.
  ``queue`` bounds the appends queued or committing: beyond it, ``append``
  waits (backpressure). Concurrency is what makes batches: one publisher
  awaiting each append pays one fsync per event.
* **Cancellation.** An appender cancelled while its batch commits only stops
  waiting: the batch is committed (the transaction runs in the thread and is
  never abandoned half-way), its listeners are told, and the event keeps its
  position. An appender cancelled before the writer took its event withdraws
  it (a lock orders the two). Closing waits, shielded, for the queue to be
  committed.
* **Reads** run in worker threads on their own connection.

Invariant: ``_head`` is the last committed position, updated only by the
writer task on the trio thread, before the listeners are called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any, Final, Literal, Self, final
from uuid import UUID

import trio

from .._core._check import finite_at_least, int_at_least, optional_name
from .._event import EVENT_SETTERS, PARSED_TYPES, Event, EventType, trusted_uuid
from .._exceptions import StoreClosed, StoreCorrupt, StoreFileError, StoreReadOnly
from ._codec import dump_payload, parse_json
from ._filter import EventFilter
from ._pace import cancel_requested
from ._store import (
    EventStore,
    check_checkpoint_args,
    check_event,
    check_event_id,
    check_read_args,
)

__all__ = ["SCHEMA_VERSION", "SQLiteEventStore"]

#: The schema this code writes; a file with a newer one is refused.
SCHEMA_VERSION: Final = 1
#: What ``store_meta.format`` holds in a trio_smith store.
FORMAT: Final = "trio_smith.events"

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    event_id       BLOB    NOT NULL,
    ts             INTEGER NOT NULL,
    source         TEXT    NOT NULL,
    category       TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 1,
    correlation_id BLOB,
    causation_id   BLOB,
    payload        TEXT    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events(event_id);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_correlation ON events(correlation_id, position)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_source ON events(source, position);
CREATE INDEX IF NOT EXISTS events_type ON events(type, position);
CREATE TABLE IF NOT EXISTS subscriptions (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""

#: What reads select (``category`` is the type's, so it is not read back).
_COLUMNS: Final = "position, event_id, ts, source, type, correlation_id, causation_id, payload"

#: Inserts a row unless its id is stored (the batch is then redone).
_INSERT: Final = (
    "INSERT INTO events (position, event_id, ts, source, category, type, "
    "correlation_id, causation_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(event_id) DO NOTHING"
)

log: Final = logging.getLogger("trio_smith.events")

_uuid: Final = trusted_uuid
_new_object: Final = object.__new__
_from_bytes: Final = int.from_bytes
_fromtimestamp: Final = datetime.fromtimestamp
_parse: Final = EventType.parse
_loads: Final = parse_json
#: Microsecond timestamps below this (2**32 s, the year 2106) survive a
#: round trip through a float exactly.
_FLOAT_EXACT: Final = 2**32 * 1_000_000


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _prefix_bound(prefix: str) -> str:
    """The smallest str greater than every str that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _where(filter: EventFilter | None, after: int) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of a read (positions > after).

    Query plans (checked in tests/events/test_sqlite_plans.py): id,
    correlation, exact source and type use their ``(column, position)``
    indexes. A time range or a source prefix must use ``events_ts`` or
    ``events_source``; without statistics SQLite would rather walk the rowid
    range for ``position > ?`` (it saves the sort), which reads the whole
    log. So with those constraints the position bound is written
    ``+position``, which no index serves: the planner then takes the
    constraint's index and sorts what it finds.
    """
    clauses: list[str] = []
    params: list[Any] = []
    low = after
    if filter is not None and filter.after_position is not None:
        low = max(low, filter.after_position)
    ranged = filter is not None and (
        filter.since is not None or filter.until is not None or bool(filter.source_prefixes)
    )
    position = "+position" if ranged else "position"
    if low > 0:
        clauses.append(f"{position} > ?")
        params.append(low)
    if filter is None:
        return " AND ".join(clauses) or "1", params
    if filter.until_position is not None:
        clauses.append(f"{position} <= ?")
        params.append(filter.until_position)
    for column, values in (
        ("type", None if filter.types is None else sorted(t.wire for t in filter.types)),
        ("category", None if filter.categories is None else sorted(filter.categories)),
        (
            "correlation_id",
            None
            if filter.correlation_ids is None
            else sorted(c.bytes for c in filter.correlation_ids),
        ),
    ):
        if values is not None:
            if not values:
                return "0", []
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    if filter.constrains_source:
        alternatives: list[str] = []
        exact = sorted(filter.sources or ())
        if exact:
            alternatives.append(f"source IN ({', '.join('?' * len(exact))})")
            params.extend(exact)
        for prefix in sorted(filter.source_prefixes or ()):
            # A range, so the source index serves it (LIKE would not, and
            # would need escaping).
            alternatives.append("(source >= ? AND source < ?)")
            params.extend((prefix, _prefix_bound(prefix)))
        if not alternatives:
            return "0", []
        clauses.append(f"({' OR '.join(alternatives)})")
    if filter.since is not None:
        clauses.append("ts >= ?")
        params.append(_micros(filter.since))
    if filter.until is not None:
        clauses.append("ts < ?")
        params.append(_micros(filter.until))
    return " AND ".join(clauses) or "1", params


def _events(rows: list[tuple[Any, ...]], store: str) -> list[Event]:
    """Decode rows of ``_COLUMNS``: a replay's hot path (docs/performance.md).

    ``build_event`` inlined, and ids decoded once per page: a correlation or
    causation id that is the row's own id or one met earlier in the page is
    the same UUID object.

    Raises:
        StoreCorrupt: a row cannot be an event (damaged outside trio_smith);
            the error names the first such position (design rule 26).
    """
    try:
        return _decode(rows)
    except Exception:
        for row in rows:
            _check_row(row, store)
        raise  # pragma: no cover - _check_row refuses whatever _decode did


def _decode(rows: list[tuple[Any, ...]]) -> list[Event]:
    ids: dict[bytes, UUID] = {}
    events: list[Event] = []
    append = events.append
    new, from_bytes, uuid, loads = _new_object, _from_bytes, _uuid, _loads
    fromtimestamp, parsed, parse = _fromtimestamp, PARSED_TYPES, _parse
    set_id, set_ts, set_source, set_type, set_payload, set_cor, set_cause, set_pos = EVENT_SETTERS
    for position, raw_id, ts, source, kind, correlation, causation, payload in rows:
        # The checks that would otherwise pass a damaged row silently (SQLite
        # columns take any type); the rest fails loudly below.
        if len(raw_id) != 16 or type(source) is not str:
            raise ValueError("damaged row")
        event = new(Event)
        set_id(event, uuid(from_bytes(raw_id)))
        ids[raw_id] = event.id
        # A float holds every microsecond exactly below 2**32 s (the year
        # 2106): fromtimestamp's rounding gives back the exact value, for
        # half the cost of the timedelta sum.
        set_ts(
            event,
            fromtimestamp(ts / 1e6, UTC)
            if 0 <= ts < _FLOAT_EXACT
            else _EPOCH + timedelta(microseconds=ts),
        )
        set_source(event, source)
        set_type(event, parsed.get(kind) or parse(kind))
        data = loads(payload)
        if type(data) is not dict:
            raise ValueError("damaged row")
        set_payload(event, data)
        set_cor(
            event,
            None if correlation is None else ids.get(correlation) or _uuid16(correlation),
        )
        set_cause(event, None if causation is None else ids.get(causation) or _uuid16(causation))
        set_pos(event, position)
        append(event)
    return events


def _uuid16(raw: bytes) -> UUID:
    if len(raw) != 16:
        raise ValueError("damaged row")
    return _uuid(_from_bytes(raw))


def _check_row(row: tuple[Any, ...], store: str) -> None:
    """Raise StoreCorrupt, naming the position, if ``row`` cannot be decoded."""
    position, raw_id, ts, source, kind, correlation, causation, payload = row

    def damaged(reason: str) -> StoreCorrupt:
        return StoreCorrupt(store, position, reason)

    for column, value, optional in (
        ("event_id", raw_id, False),
        ("correlation_id", correlation, True),
        ("causation_id", causation, True),
    ):
        if not (optional and value is None) and (type(value) is not bytes or len(value) != 16):
            raise damaged(f"its {column} is not a 16-byte UUID ({value!r:.60})")
    if type(ts) is not int:
        raise damaged(f"its timestamp is not an integer ({ts!r:.60})")
    try:
        _EPOCH + timedelta(microseconds=ts)
    except OverflowError:
        raise damaged(f"its timestamp {ts} is out of range") from None
    if type(source) is not str or not source:
        raise damaged(f"its source is not a non-empty text ({source!r:.60})")
    try:
        _parse(kind)
    except (TypeError, ValueError) as exc:
        raise damaged(f"its type is not an event type ({exc})") from None
    try:
        data = _loads(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise damaged(f"its payload is not JSON ({exc})") from None
    if type(data) is not dict:
        raise damaged(f"its payload is not a JSON object ({payload!r:.60})")


def _encode(event: Event) -> tuple[Any, ...]:
    """An event's row, all but its position; on the appender's side, so a bad event fails alone.

    Raises:
        TypeError, ValueError: the event cannot be stored (a payload built
            without ``Event.new`` that is not JSON, a naive timestamp).
    """
    try:
        return (
            event.id.bytes,
            _micros(event.timestamp),
            event.source,
            event.type.category,
            event.type.wire,
            None if event.correlation_id is None else event.correlation_id.bytes,
            None if event.causation_id is None else event.causation_id.bytes,
            dump_payload(event.payload),
        )
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"event {event.id} cannot be stored: {exc}") from exc


#: States of an append: waiting in the queue, taken by the writer thread
#: (committed or failing as one batch), or withdrawn by a cancelled appender.
_QUEUED: Final = 0
_TAKEN: Final = 1
_WITHDRAWN: Final = 2


@final
class _Work:
    """Appends, or one other job, for the writer thread; and its outcome.

    ``state`` changes only under the store's lock (the writer thread takes,
    a cancelled appender withdraws). ``task`` is the appender waiting for the
    outcome, None if nobody waits (``append_nowait``, or a cancelled one).
    """

    __slots__ = ("error", "events", "job", "result", "rows", "state", "task")

    def __init__(
        self,
        events: list[Event],
        task: trio.lowlevel.Task | None,
        job: Callable[[sqlite3.Connection], Any] | None = None,
    ) -> None:
        self.events = events
        #: The events encoded (``_encode``), in the same order.
        self.rows = [_encode(event) for event in events]
        self.task = task
        self.job = job
        self.state = _QUEUED
        self.result: Any = None
        self.error: BaseException | None = None


#: Put last on the writer's queue: commit what precedes, then end.
_END: Final = _Work([], None)


def _read_only_uri(path: str) -> str:
    """A ``file:`` URI that opens ``path`` read-only, whatever characters it holds.

    SQLite reads ``?``, ``#`` and ``%`` in a URI as syntax, so they are
    percent-encoded (as is everything but the path's separators and letters).
    """
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"


@final
class SQLiteEventStore(EventStore):
    """The durable event store: one SQLite file, WAL, group commit.

    ``async with SQLiteEventStore(path) as store:`` opens (or creates) the
    file and starts its writer thread; leaving the block commits every queued
    append, then closes. Positions are dense from 1 and follow commit order;
    an ``append`` that returned is on disk (``synchronous="FULL"``).

    Args:
        path: the store file; its directory must exist. Created if missing.
        synchronous: ``"FULL"`` (default): every commit is durable, also
            across a power loss. ``"NORMAL"``: durable across a crash of the
            process, not of the machine; much faster per commit.
        busy_timeout: seconds to wait for another process's lock.
        max_batch: the most events committed in one transaction.
        queue: appends that may be queued or committing at once; beyond
            it ``append`` waits (backpressure) and ``append_nowait`` raises
            WouldBlock.
        read_only: open an existing store without ever writing to it, and
            follow what other processes append (polling): its listeners (a
            bus) see their events. Writes raise ``StoreReadOnly``.
        poll_interval: seconds between two polls of a read-only store.
        name: for errors and logs; default: the path.

    Raises:
        ValueError, TypeError: a bad argument (the message names it).

    ``async with`` raises:
        StoreFileError: the directory does not exist, or the file is not a
            trio_smith store, has a newer schema, or is corrupt. The file is
            not modified.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_head",
        "_jobs",
        "_lock",
        "_name",
        "_nursery",
        "_nursery_cm",
        "_opened",
        "_path",
        "_pending",
        "_read_limiter",
        "_reader",
        "_room",
        "_synchronous",
        "_token",
        "_writer",
        "_writer_done",
        "busy_timeout",
        "max_batch",
        "poll_interval",
        "read_only",
        "store_id",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 5.0,
        max_batch: int = 1000,
        queue: int = 4096,
        read_only: bool = False,
        poll_interval: float = 0.1,
        name: str | None = None,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or a path, got {path!r}")
        self._path = os.fspath(path)
        if not self._path:
            raise ValueError("path must not be empty")
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        finite_at_least("busy_timeout", busy_timeout, 0)
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {read_only!r}")
        finite_at_least("poll_interval", poll_interval, 0, strict=True)
        self.read_only = read_only
        self.poll_interval = poll_interval
        int_at_least("max_batch", max_batch, 1)
        int_at_least("queue", queue, 1)
        self._name = optional_name(name) or self._path
        self._synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        super().__init__()
        #: Work for the writer thread, in order; ``_END`` last.
        self._jobs: SimpleQueue[_Work] = SimpleQueue()
        #: Orders the writer thread taking work against an appender withdrawing it.
        self._lock = threading.Lock()
        #: Work queued or being committed (trio thread only); at most
        #: ``_capacity``, beyond which appends wait in ``_room``.
        self._pending = 0
        self._capacity = queue
        self._room = trio.lowlevel.ParkingLot()
        self._token: trio.lowlevel.TrioToken | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        #: One read at a time on the reader connection; reads do not wait for
        #: commits (WAL readers never block the writer).
        self._read_limiter = trio.CapacityLimiter(1)
        self._writer_done = trio.Event()
        self._head = 0
        self._opened = False
        self._closed = False
        self._nursery_cm: Any = None
        self._nursery: trio.Nursery | None = None
        #: The store's own id (store_meta), stable across reopenings.
        self.store_id: str | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        """The store file."""
        return self._path

    def __repr__(self) -> str:
        return f"<SQLiteEventStore {self._path!r} head={self._head}>"

    # ------------------------------------------------------------ opening

    def _connect(self) -> tuple[sqlite3.Connection | None, sqlite3.Connection, int, str]:
        """Open (or create) the file and check it; runs in a thread."""
        directory = os.path.dirname(os.path.abspath(self._path))
        if not os.path.isdir(directory):
            raise StoreFileError(self._path, f"directory {directory!r} does not exist")
        # SQLite itself would call a directory or a device a "disk I/O error",
        # and would write its journal beside /dev/null.
        if os.path.isdir(self._path):
            raise StoreFileError(self._path, "it is a directory")
        if os.path.exists(self._path) and not os.path.isfile(self._path):
            raise StoreFileError(self._path, "it is not a regular file")
        exists = os.path.exists(self._path) and os.path.getsize(self._path) > 0
        if self.read_only and not exists and os.path.exists(self._path):
            raise StoreFileError(self._path, "it is empty, not a trio_smith event store")
        if exists and self._check_file():
            # An SQLite file with no tables at all: a store whose creation was
            # cut short (killed before its schema committed). Create it.
            exists = False
        if not exists and self.read_only:
            raise StoreFileError(self._path, "no such file (read-only stores are not created)")
        if self.read_only:
            reader = sqlite3.connect(
                _read_only_uri(self._path),
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                head = reader.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
                store_id = reader.execute(
                    "SELECT value FROM store_meta WHERE key = 'store_id'"
                ).fetchone()
            except BaseException:
                reader.close()
                raise
            return None, reader, int(head[0]), str(store_id[0])
        writer = sqlite3.connect(
            self._path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute(f"PRAGMA synchronous={self._synchronous}")
            writer.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            if not exists:
                # One transaction: a file has the whole schema and its
                # store_meta, or nothing (two processes creating it at once
                # both end up with the first one's).
                writer.executescript(
                    "BEGIN IMMEDIATE;"
                    + _SCHEMA
                    + "INSERT OR IGNORE INTO store_meta (key, value) VALUES "
                    + f"('format', '{FORMAT}'), ('schema_version', '{SCHEMA_VERSION}'), "
                    + f"('store_id', '{uuid.uuid4()}');"
                    + "COMMIT;"
                )
            store_id = writer.execute(
                "SELECT value FROM store_meta WHERE key = 'store_id'"
            ).fetchone()[0]
            head = writer.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
            reader = sqlite3.connect(
                self._path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except BaseException:
            writer.close()
            raise
        return writer, reader, head, store_id

    def _check_file(self) -> bool:
        """Refuse a file that is not ours, is newer, or is corrupt, without writing to it.

        Returns:
            True if it is an SQLite database without any table (to be created).
        """
        try:
            probe = sqlite3.connect(_read_only_uri(self._path), uri=True)
        except sqlite3.Error as exc:
            raise StoreFileError(self._path, f"cannot be read ({exc})") from None
        try:
            try:
                tables = {
                    row[0]
                    for row in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            except sqlite3.DatabaseError as exc:
                raise StoreFileError(
                    self._path, f"not an SQLite database, or corrupt ({exc})"
                ) from None
            if not tables and not self.read_only:
                return True
            if "store_meta" not in tables or "events" not in tables:
                raise StoreFileError(self._path, "not a trio_smith event store")
            meta = dict(probe.execute("SELECT key, value FROM store_meta").fetchall())
            if meta.get("format") != FORMAT:
                raise StoreFileError(self._path, "not a trio_smith event store")
            version = meta.get("schema_version", "")
            if not version.isdigit():
                raise StoreFileError(self._path, f"unreadable schema version {version!r}")
            if int(version) > SCHEMA_VERSION:
                raise StoreFileError(
                    self._path,
                    f"its schema version {int(version)} is newer than this trio_smith "
                    f"reads ({SCHEMA_VERSION})",
                )
            check = probe.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreFileError(self._path, f"corrupt ({check})")
            return False
        except sqlite3.DatabaseError as exc:
            raise StoreFileError(self._path, f"corrupt ({exc})") from None
        finally:
            probe.close()

    async def __aenter__(self) -> Self:
        if self._opened:
            raise RuntimeError(f"event store {self._name!r} was already opened; build a new one")
        self._opened = True
        try:
            writer, reader, head, store_id = await trio.to_thread.run_sync(self._connect)
        except sqlite3.Error as exc:  # what _check_file could not foresee (a lock, say)
            raise StoreFileError(self._path, f"cannot be used ({exc})") from None
        self._writer, self._reader, self._head, self.store_id = writer, reader, head, store_id
        if self.read_only:
            self._nursery_cm = trio.open_nursery()
            nursery = self._nursery = await self._nursery_cm.__aenter__()
            nursery.start_soon(self._follow, name=f"trio_smith store follower {self._name}")
        else:
            # A thread of its own, not trio.to_thread per batch: the round
            # trip through trio's thread cache costs twice as much, and one
            # publisher awaiting each append pays it on every event.
            self._token = trio.lowlevel.current_trio_token()
            threading.Thread(
                target=self._write_loop, name=f"trio_smith store writer {self._name}", daemon=True
            ).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            # Shielded: the queued appends are committed and their appenders
            # told even if the block is cancelled (the queue is bounded).
            with trio.CancelScope(shield=True):
                await self.aclose()
        finally:
            cm, self._nursery_cm = self._nursery_cm, None
            try:
                if cm is not None:
                    await cm.__aexit__(None, None, None)
            finally:
                for connection in (self._writer, self._reader):
                    if connection is not None:
                        connection.close()

    async def aclose(self) -> None:
        """Commit every queued append, then refuse further use; idempotent.

        The file itself is released when the ``async with`` block ends.
        """
        first = not self._closed
        self._closed = True
        if first and self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        elif first and self._token is not None:
            # Appenders waiting for room give up (StoreClosed); the writer
            # commits what is queued, then ends.
            self._room.unpark_all()
            self._jobs.put(_END)
        if self._token is not None:
            await self._writer_done.wait()
        else:
            await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed or self._reader is None:
            raise StoreClosed(self._name)

    def _check_writable(self) -> None:
        self._check_open()
        if self.read_only:
            raise StoreReadOnly(self._name)

    async def _follow(self) -> None:
        """Read-only: poll for events other processes commit; tell the listeners."""
        while True:
            await trio.sleep(self.poll_interval)
            while True:
                rows = await self._query(
                    f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position "
                    "LIMIT 1000",
                    (self._head,),
                )
                if not rows:
                    break
                self._announce(_events(rows, self._name))

    def _announce(self, committed: list[Event]) -> None:
        """Move the head to a committed batch and tell the listeners, at once."""
        position = committed[-1].position
        assert position is not None
        self._head = position
        self._notify(committed)

    # ------------------------------------------------------------ writing

    def _write_loop(self) -> None:
        """The writer thread: commit what is queued, in batches, until ``_END``."""
        jobs = self._jobs
        token = self._token
        assert token is not None
        head = self._head
        later: _Work | None = None
        try:
            while True:
                work = jobs.get() if later is None else later
                later = None
                if work is _END:
                    # What SQLite advises before closing a connection: it
                    # runs ANALYZE where the queries made it worth it.
                    with contextlib.suppress(sqlite3.Error):
                        assert self._writer is not None
                        self._writer.execute("PRAGMA optimize")
                    return
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
                    if more.job is not None or more is _END:
                        later = more  # after this batch, in order
                        break
                    batch.append(more)
                    size += len(more.events)
                with self._lock:
                    taken = [work for work in batch if work.state == _QUEUED]
                    for work in taken:
                        work.state = _TAKEN
                if not taken:
                    continue
                try:
                    stored, new = self._commit(
                        [e for w in taken for e in w.events],
                        [r for w in taken for r in w.rows],
                        head,
                    )
                except Exception as exc:
                    token.run_sync_soon(self._finished, taken, None, exc)
                    continue
                if new:
                    position = new[-1].position
                    assert position is not None
                    head = position
                token.run_sync_soon(self._committed, taken, stored, new)
        except trio.RunFinishedError:
            # trio.run ended without closing the store (a bug in the caller
            # or an interpreter exit): nobody is left to tell.
            pass
        finally:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._writer_done.set)

    def _run_job(self, work: _Work, token: trio.lowlevel.TrioToken) -> None:
        assert work.job is not None
        assert self._writer is not None
        with self._lock:
            if work.state != _QUEUED:
                return  # withdrawn
            work.state = _TAKEN
        try:
            result = work.job(self._writer)
        except Exception as exc:
            token.run_sync_soon(self._finished, [work], None, exc)
        else:
            token.run_sync_soon(self._finished, [work], result, None)

    def _committed(self, taken: list[_Work], stored: list[Event], new: list[Event]) -> None:
        """On the trio thread: a batch is committed; tell the listeners, then wake the appenders."""
        if new:
            try:
                self._announce(new)
            except Exception:
                # Listeners must not raise (EventStore.add_listener); this
                # runs outside any task, where an error would crash trio.
                log.exception("a commit listener of event store %r raised", self._name)
        offset = 0
        results = []
        for work in taken:
            results.append(stored[offset : offset + len(work.events)])
            offset += len(work.events)
        self._finished(taken, results, None)

    def _finished(self, done: list[_Work], result: Any, error: BaseException | None) -> None:
        """On the trio thread: wake the waiters of finished work; make room."""
        self._pending -= len(done)
        for index, work in enumerate(done):
            task = work.task
            if task is None:
                if error is not None and work.job is None:
                    log.error("append_nowait to event store %r failed", self._name, exc_info=error)
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

    def _commit(
        self, events: list[Event], encoded: list[tuple[Any, ...]], head: int
    ) -> tuple[list[Event], list[Event]]:
        """Commit one batch, in the writer thread; return (each event as stored, the new ones).

        Ids already stored are rare (a retried append), so the batch is first
        inserted as if all were new; only if the unique id index refused
        some (fewer rows changed) is it rolled back and redone with a lookup
        of the stored ones, so that positions stay dense.
        """
        writer = self._writer
        assert writer is not None
        writer.execute("BEGIN IMMEDIATE")
        try:
            stored, new, rows = self._place(events, encoded, head, {})
            before = writer.total_changes
            writer.executemany(_INSERT, rows)
            if writer.total_changes - before != len(rows):
                writer.execute("ROLLBACK")
                writer.execute("BEGIN IMMEDIATE")
                stored, new, rows = self._place(events, encoded, head, self._stored(events))
                writer.executemany(_INSERT, rows)
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise
        return stored, new

    @staticmethod
    def _place(
        events: list[Event],
        encoded: list[tuple[Any, ...]],
        head: int,
        known: dict[bytes, Event],
    ) -> tuple[list[Event], list[Event], list[tuple[Any, ...]]]:
        """Positions for the events not in ``known`` (repeats in the batch too)."""
        stored: list[Event] = []
        new: list[Event] = []
        rows: list[tuple[Any, ...]] = []
        position = head
        for event, row in zip(events, encoded, strict=True):
            kept = known.get(row[0])
            if kept is None:
                position += 1
                kept = known[row[0]] = event.at_position(position)
                new.append(kept)
                rows.append((position, *row))
            stored.append(kept)
        return stored, new, rows

    def _stored(self, events: list[Event]) -> dict[bytes, Event]:
        """The events of the batch whose ids the store already holds."""
        writer = self._writer
        assert writer is not None
        ids = list({e.id.bytes for e in events})
        found: dict[bytes, Event] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = writer.execute(
                f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for event in _events(rows, self._name):
                found[event.id.bytes] = event
        return found

    async def _room_for_one(self) -> None:
        """Wait while the queue is full (backpressure); raise if the store closed."""
        while self._pending >= self._capacity:
            await self._room.park()
            self._check_writable()

    async def _submit(self, events: list[Event], job: Any = None) -> Any:
        if cancel_requested():
            await trio.lowlevel.checkpoint_if_cancelled()
        if self._pending >= self._capacity:
            await self._room_for_one()
        task = trio.lowlevel.current_task()
        work = _Work(events, task, job)
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

    async def append(self, event: Event) -> Event:
        check_event(event)
        self._check_writable()
        result: list[Event] = await self._submit([event])
        return result[0]

    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        batch = [check_event(event) for event in events]
        self._check_writable()
        if not batch:
            await trio.lowlevel.checkpoint()
            return []
        result: list[Event] = await self._submit(batch)
        return result

    def append_nowait(self, event: Event) -> None:
        check_event(event)
        self._check_writable()
        if self._pending >= self._capacity:
            raise trio.WouldBlock
        self._pending += 1
        self._jobs.put(_Work([event], None))

    # ------------------------------------------------------------ reading

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._check_open()
        reader = self._reader
        assert reader is not None

        def run() -> list[tuple[Any, ...]]:
            return reader.execute(sql, params).fetchall()

        return await trio.to_thread.run_sync(run, limiter=self._read_limiter)

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
        where, params = _where(filter, after)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY position"
        if limit is not None:
            params.append(limit)
            if last:
                # Walk the positions backwards, then put the page in order.
                sql = f"SELECT * FROM ({sql} DESC LIMIT ?) ORDER BY position"
            else:
                sql += " LIMIT ?"
        return _events(await self._query(sql, params), self._name)

    async def get(self, event_id: UUID) -> Event | None:
        check_event_id(event_id)
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id.bytes,)
        )
        return _events(rows, self._name)[0] if rows else None

    async def count(self, filter: EventFilter | None = None) -> int:
        check_read_args(filter, 0, None)
        where, params = _where(filter, 0)
        rows = await self._query(f"SELECT count(*) FROM events WHERE {where}", params)
        return int(rows[0][0])

    async def head(self) -> int:
        self._check_open()
        await trio.lowlevel.checkpoint()
        return self._head

    async def save_checkpoint(self, name: str, position: int) -> None:
        check_checkpoint_args(name, position)
        self._check_writable()
        now = _micros(datetime.now(UTC))

        def run(writer: sqlite3.Connection) -> None:
            writer.execute(
                "INSERT INTO subscriptions (name, position, updated_ts) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET position = excluded.position, "
                "updated_ts = excluded.updated_ts",
                (name, position, now),
            )

        # Autocommit: one durable statement, in order with the appends.
        await self._submit([], run)

    async def load_checkpoint(self, name: str) -> int | None:
        check_checkpoint_args(name)
        rows = await self._query("SELECT position FROM subscriptions WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else None

"""``SQLiteEventStore``: the durable event store in one SQLite file, with group commit.

Theory of operation
===================

* **One file, WAL.** Readers never block the writer. ``synchronous=FULL``
  (the default) makes every commit durable; ``NORMAL`` survives a process
  crash but not a power loss, and is much faster per commit
  (docs/performance.md).
* **Dense, commit-ordered positions, across processes.** ``position`` is the
  rowid. The store thread (``events/_threaded.py``) commits each batch in a
  ``BEGIN IMMEDIATE`` transaction, which takes the file's write lock (waiting
  up to ``busy_timeout`` for another writer), reads the head *inside* it and
  numbers the batch ``head + 1, head + 2, ...``. So any number of processes
  (or store objects) may append to one file: positions stay dense and follow
  commit order, and a reader that has seen ``p`` has seen everything up to
  ``p`` (design rule 25). Ids are unique (idempotent appends).
* **Other writers' events.** Rows committed by others since the store
  thread's head come back with the batch, so the listeners see them first;
  when idle, the thread checks ``PRAGMA data_version`` (it changes only when
  *another* connection commits) every ``poll_interval`` and reads what is new.
* **Read-only** stores open the file with ``mode=ro`` (never written,
  never created) and follow the same way. On a read-only medium, where
  SQLite cannot create the ``-shm`` file that ``mode=ro`` needs, a store
  whose log has no write-ahead content is opened ``immutable`` instead: it is
  read as it is.
* **Reads** run in worker threads on their own connection.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, final
from uuid import UUID

import attrs
import trio

from .._core._check import finite_at_least, optional_name
from .._event import (
    EVENT_SETTERS,
    PARSED_TYPES,
    Event,
    EventType,
    check_trace_context,
    trusted_uuid,
)
from .._exceptions import (
    EventsError,
    StoreCorrupt,
    StoreFileError,
    StoreFull,
    StoreUnavailable,
)
from ._codec import dump_payload, parse_json
from ._sql import COLUMNS_V1, Dialect
from ._threaded import (
    Committed,
    PruneStep,
    ThreadedStore,
    check_trace_context_column,
    check_type_and_payload,
    decode_page,
    place,
    prune_step,
    stored_payload,
)

__all__ = ["SCHEMA_VERSION", "SQLiteEventStore"]

#: The schema this code writes; a file with a newer one is refused. Version 2
#: added ``events.trace_context``; a writable open migrates a version 1 file
#: (``_migrate``), a read-only one reads it as it is (docs/design.md rule 46).
SCHEMA_VERSION: Final = 2
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
    payload        TEXT    NOT NULL,
    trace_context  TEXT
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

#: Inserts a row unless its id is stored (the batch is then redone).
_INSERT: Final = (
    "INSERT INTO events (position, event_id, ts, source, category, type, "
    "correlation_id, causation_id, payload, trace_context) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(event_id) DO NOTHING"
)

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


_DIALECT: Final = Dialect(param="?", uuid=lambda value: value.bytes, time=_micros)
#: Reads of a version 1 file opened read-only (no ``trace_context`` column).
_DIALECT_V1: Final = attrs.evolve(_DIALECT, columns=COLUMNS_V1)

#: SQLite's primary result codes that say the file cannot be written now.
_FULL: Final = sqlite3.SQLITE_FULL
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _events(rows: list[tuple[Any, ...]], store: str) -> list[Event]:
    """Decode rows of ``COLUMNS``.

    Raises:
        StoreCorrupt: a row cannot be an event (damaged outside trio_smith);
            the error names the first such position (design rule 26).
    """
    return decode_page(rows, store, _decode, _check_row)


def _decode(rows: list[tuple[Any, ...]]) -> list[Event]:
    """A replay's hot path (docs/performance.md): ``build_event`` inlined, and ids
    decoded once per page (a correlation or causation id that is the row's own
    id or one met earlier in the page is the same UUID object)."""
    ids: dict[bytes, UUID] = {}
    events: list[Event] = []
    append = events.append
    new, from_bytes, uuid, loads = _new_object, _from_bytes, _uuid, _loads
    fromtimestamp, parsed, parse = _fromtimestamp, PARSED_TYPES, _parse
    (set_id, set_ts, set_source, set_type, set_payload, set_cor, set_cause, set_pos, set_trace) = (
        EVENT_SETTERS
    )
    for position, raw_id, ts, source, kind, correlation, causation, payload, trace in rows:
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
        # Rare, and checked whole: a damaged carrier would pass silently.
        set_trace(event, None if trace is None else check_trace_context(loads(trace)))
        append(event)
    return events


def _uuid16(raw: bytes) -> UUID:
    if len(raw) != 16:
        raise ValueError("damaged row")
    return _uuid(_from_bytes(raw))


def _check_row(row: tuple[Any, ...], store: str) -> None:
    """Raise StoreCorrupt, naming the position, if ``row`` cannot be decoded."""
    position, raw_id, ts, source, kind, correlation, causation, payload, trace = row

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
    check_type_and_payload(store, position, kind, payload)
    check_trace_context_column(store, position, trace)


def _encode(event: Event) -> tuple[Any, ...]:
    """An event's row, all but its position.

    Raises:
        TypeError, ValueError: the event cannot be stored (``stored_payload``;
            a naive timestamp).
    """
    return (
        event.id.bytes,
        _micros(event.timestamp),
        event.source,
        event.type.category,
        event.type.wire,
        None if event.correlation_id is None else event.correlation_id.bytes,
        None if event.causation_id is None else event.causation_id.bytes,
        stored_payload(event),
        None if event.trace_context is None else dump_payload(dict(event.trace_context)),
    )


def _has_trace_context(connection: sqlite3.Connection) -> bool:
    """Whether the file's events table has the ``trace_context`` column (version 2)."""
    return any(row[1] == "trace_context" for row in connection.execute("PRAGMA table_info(events)"))


def _uri(path: str, option: str) -> str:
    """A ``file:`` URI that opens ``path`` with ``option``, whatever characters it holds.

    SQLite reads ``?``, ``#`` and ``%`` in a URI as syntax, so they are
    percent-encoded (as is everything but the path's separators and letters).
    """
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?{option}"


def _code(exc: Exception) -> int | None:
    """SQLite's primary result code of an error, if it has one."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


@final
class SQLiteEventStore(ThreadedStore[sqlite3.Connection]):
    """The durable event store: one SQLite file, WAL, group commit.

    ``async with SQLiteEventStore(path) as store:`` opens (or creates) the
    file and starts its store thread; leaving the block commits every queued
    append, then closes. Positions are dense from 1 and follow commit order;
    an ``append`` that returned is on disk (``synchronous="FULL"``). Several
    processes may append to one file at once (positions stay dense across
    them), and each store's listeners see every process's events, in order.

    Args:
        path: the store file; its directory must exist. Created if missing.
        synchronous: ``"FULL"`` (default): every commit is durable, also
            across a power loss. ``"NORMAL"``: durable across a crash of the
            process, not of the machine; much faster per commit.
        busy_timeout: seconds to wait for another process's write lock; an
            append still waiting then fails with ``StoreUnavailable``.
        max_batch: the most events committed in one transaction.
        queue: appends that may be queued or committing at once; beyond
            it ``append`` waits (backpressure) and ``append_nowait`` raises
            WouldBlock.
        read_only: open an existing store without ever writing to it. Writes
            raise ``StoreReadOnly``.
        poll_interval: seconds between two looks for other processes'
            appends while the store is idle (they are announced to the
            listeners, a bus, within about this time).
        name: for errors and logs; default: the path.

    Raises:
        ValueError, TypeError: a bad argument (the message names it).

    ``async with`` raises:
        StoreFileError: the directory does not exist; the file is not a
            trio_smith store, has a newer schema, or is corrupt; it (or its
            directory) cannot be written and ``read_only`` is False. Nothing
            is created or modified.

    Operations may raise ``StoreUnavailable`` (another process held the
    write lock for longer than ``busy_timeout``, or the file cannot be read
    or written), ``StoreFull`` (the disk is full: nothing of that append is
    stored, and appends succeed again once there is room) and
    ``StoreCorrupt`` (a read met a row damaged outside trio_smith).
    """

    __slots__ = (
        "_data_version",
        "_immutable",
        "_path",
        "_read_dialect",
        "_reader",
        "_synchronous",
        "busy_timeout",
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
        finite_at_least("poll_interval", poll_interval, 0, strict=True)
        super().__init__(
            name=optional_name(name) or self._path,
            max_batch=max_batch,
            queue=queue,
            read_only=read_only,
            poll_interval=poll_interval,
            idle_wait=poll_interval,
        )
        self._synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._reader: sqlite3.Connection | None = None
        #: The store thread's last ``PRAGMA data_version``.
        self._data_version = 0
        #: Opened from a read-only medium with ``immutable=1`` (nothing to follow).
        self._immutable = False
        #: How reads select: ``_DIALECT_V1`` for a version 1 file opened read-only.
        self._read_dialect = _DIALECT

    @property
    def path(self) -> str:
        """The store file."""
        return self._path

    def __repr__(self) -> str:
        return f"<SQLiteEventStore {self._path!r} head={self._head}>"

    @property
    def _dialect(self) -> Dialect:
        return self._read_dialect

    # ------------------------------------------------------------ opening

    def _connect(self) -> tuple[sqlite3.Connection, int, str]:
        try:
            return self._open_file()
        except sqlite3.Error as exc:  # what the checks could not foresee (a lock, say)
            raise StoreFileError(self._path, f"cannot be used ({exc})") from None

    def _open_file(self) -> tuple[sqlite3.Connection, int, str]:
        """Open (or create) the file and check it; runs in a worker thread."""
        path = self._path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreFileError(path, f"directory {directory!r} does not exist")
        # SQLite itself would call a directory or a device a "disk I/O error",
        # and would write its journal beside /dev/null.
        if os.path.isdir(path):
            raise StoreFileError(path, "it is a directory")
        if os.path.exists(path) and not os.path.isfile(path):
            raise StoreFileError(path, "it is not a regular file")
        exists = os.path.exists(path) and os.path.getsize(path) > 0
        # ``missing``: a store may yet appear there (``follow --wait`` waits).
        if self.read_only and not exists and os.path.exists(path):
            raise StoreFileError(path, "it is empty, not a trio_smith event store", missing=True)
        if not exists and self.read_only:
            raise StoreFileError(
                path, "no such file (read-only stores are not created)", missing=True
            )
        if not self.read_only:
            # Checked before SQLite opens anything, so that nothing (a -wal
            # or -shm file) is left beside a file we refuse.
            if exists and not os.access(path, os.R_OK | os.W_OK):
                raise StoreFileError(
                    path, "it cannot be written (open it with read_only=True to read it)"
                )
            if not os.access(directory, os.W_OK | os.X_OK):
                raise StoreFileError(
                    path,
                    f"its directory {directory!r} cannot be written, and SQLite keeps its "
                    "write-ahead log beside the file (open it with read_only=True to read it)",
                )
        if exists and self._check_file():
            # An SQLite file with no tables at all: a store whose creation was
            # cut short (killed before its schema committed). Create it.
            exists = False
        if self.read_only:
            thread = self._open_read_only()
            try:
                reader = self._open_read_only()
                head = thread.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
                store_id = thread.execute(
                    "SELECT value FROM store_meta WHERE key = 'store_id'"
                ).fetchone()
                self._data_version = int(thread.execute("PRAGMA data_version").fetchone()[0])
                self._read_dialect = _DIALECT if _has_trace_context(thread) else _DIALECT_V1
            except BaseException:
                thread.close()
                raise
            self._reader = reader
            return thread, int(head[0]), str(store_id[0])
        writer = sqlite3.connect(
            path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._wal(writer)
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
            else:
                self._migrate(writer)
            self._read_dialect = _DIALECT
            store_id = writer.execute(
                "SELECT value FROM store_meta WHERE key = 'store_id'"
            ).fetchone()[0]
            head = writer.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
            self._data_version = int(writer.execute("PRAGMA data_version").fetchone()[0])
            self._reader = sqlite3.connect(
                path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except BaseException:
            writer.close()
            raise
        return writer, head, store_id

    def _migrate(self, writer: sqlite3.Connection) -> None:
        """Bring an older file to ``SCHEMA_VERSION``, in one write transaction.

        Version 1 lacks ``events.trace_context``: adding a nullable column
        rewrites no row. The version is read again under the write lock, so
        of two processes opening one old file, the second finds it done.
        """
        (version,) = writer.execute(
            "SELECT value FROM store_meta WHERE key = 'schema_version'"
        ).fetchone()
        if int(version) >= SCHEMA_VERSION:
            return
        writer.execute("BEGIN IMMEDIATE")
        try:
            (version,) = writer.execute(
                "SELECT value FROM store_meta WHERE key = 'schema_version'"
            ).fetchone()
            if int(version) < SCHEMA_VERSION:
                if not _has_trace_context(writer):
                    writer.execute("ALTER TABLE events ADD COLUMN trace_context TEXT")
                writer.execute(
                    "UPDATE store_meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
            writer.execute("COMMIT")
        except BaseException:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            raise

    def _wal(self, writer: sqlite3.Connection) -> None:
        """Put the file in WAL mode, waiting up to ``busy_timeout`` for other processes.

        Changing the journal mode needs the file to itself, and SQLite says
        "database is locked" at once, without its busy handler, while another
        process is creating the same store: try again until ``busy_timeout``.
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.001
        while True:
            try:
                writer.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if _code(exc) not in _BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)  # a worker thread: the store is opening
            pause = min(pause * 2, 0.05)

    def _open_read_only(self) -> sqlite3.Connection:
        """A connection that never writes, on a writable or a read-only medium.

        ``mode=ro`` needs the ``-shm`` file of a WAL store, which SQLite
        creates when it is missing; on a read-only medium (or in a directory
        this user cannot write) it cannot, and the open fails. The store's
        content then lies in the main file alone if its log (``-wal``) is
        empty, and ``immutable=1`` reads it without any ``-shm``.
        """
        connection = sqlite3.connect(
            _uri(self._path, "mode=ro"),
            uri=True,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            connection.close()
            # CANTOPEN on a read-only medium, READONLY_DIRECTORY in a
            # directory this user cannot write.
            if _code(exc) not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
                raise
            wal = self._path + "-wal"
            if os.path.exists(wal) and os.path.getsize(wal) > 0:
                raise StoreFileError(
                    self._path,
                    f"its write-ahead log {wal!r} cannot be read without creating "
                    f"{self._path + '-shm'!r}, and its directory cannot be written",
                ) from None
            self._immutable = True
            return sqlite3.connect(
                _uri(self._path, "immutable=1"),
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        return connection

    def _check_file(self) -> bool:
        """Refuse a file that is not ours, is newer, or is corrupt, without writing to it.

        Without a write-ahead log beside it, the file is read ``immutable``:
        that creates no ``-wal``/``-shm`` files, so a refused file is left
        exactly as it was.

        Returns:
            True if it is an SQLite database without any table (to be created).
        """
        wal = self._path + "-wal"
        option = "mode=ro" if os.path.exists(wal) else "immutable=1"
        try:
            probe = sqlite3.connect(_uri(self._path, option), uri=True)
        except sqlite3.Error as exc:
            raise StoreFileError(self._path, f"cannot be read ({exc})") from None
        try:
            try:
                tables = {
                    row[0]
                    for row in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            except sqlite3.OperationalError as exc:
                if _code(exc) == sqlite3.SQLITE_CANTOPEN:
                    raise StoreFileError(self._path, f"cannot be read ({exc})") from None
                raise StoreFileError(
                    self._path, f"not an SQLite database, or corrupt ({exc})"
                ) from None
            except sqlite3.DatabaseError as exc:
                raise StoreFileError(
                    self._path, f"not an SQLite database, or corrupt ({exc})"
                ) from None
            if not tables and not self.read_only:
                return True
            if "store_meta" not in tables or "events" not in tables:
                # No table at all: a store being created (its schema not yet
                # committed), or an empty database.
                raise StoreFileError(self._path, "not a trio_smith event store", missing=not tables)
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

    def _disconnect(self) -> None:
        for connection in (self._connection, self._reader):
            if connection is not None:
                connection.close()
        self._connection = self._reader = None

    def _last_words(self) -> None:
        if not self.read_only and self._connection is not None:
            # What SQLite advises before closing a connection: it runs
            # ANALYZE where the queries made it worth it.
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("PRAGMA optimize")

    # ------------------------------------------------------------ the store thread

    def _store_error(self, exc: Exception) -> EventsError | None:
        if isinstance(exc, EventsError):
            return exc
        if isinstance(exc, sqlite3.OperationalError | sqlite3.InternalError) or type(exc) in (
            sqlite3.DatabaseError,
            sqlite3.Error,
        ):
            code = _code(exc)
            if code == _FULL:
                return StoreFull(self._name, str(exc))
            if code in _BUSY:
                return StoreUnavailable(
                    self._name,
                    f"another connection held its write lock for more than busy_timeout "
                    f"({self.busy_timeout:g} s)",
                )
            return StoreUnavailable(self._name, str(exc))
        return None

    def _commit(self, events: list[Event], rows: list[tuple[Any, ...]], head: int) -> Committed:
        """Commit one batch (store thread): the write lock, the head read inside, the inserts.

        Ids already stored are rare (a retried append), so the batch is first
        inserted as if all were new; only if the unique id index refused
        some (fewer rows changed) is it rolled back and done again, in a new
        transaction, with a lookup of the stored ones, so positions stay
        dense. (Not a savepoint: with one open, SQLite journals every page
        the inserts touch, which made group commit a fifth slower.)
        """
        writer = self._thread_connection()
        known: dict[UUID, Event] | None = None
        while True:
            writer.execute("BEGIN IMMEDIATE")
            try:
                # fetchall, not fetchone: a statement left unfinished keeps a
                # cursor open on the table, which slows every insert after it.
                top = writer.execute(
                    "SELECT position FROM events ORDER BY position DESC LIMIT 1"
                ).fetchall()
                now = int(top[0][0]) if top else 0
                others = self._rows_after(writer, head) if now > head else []
                if known is not None:
                    known = self._stored(writer, events)
                stored, new, placed = place(events, rows, now, known or {})
                before = writer.total_changes
                writer.executemany(_INSERT, placed)
                if writer.total_changes - before == len(placed):
                    writer.execute("COMMIT")
                    return Committed(others=others, stored=stored, new=new)
                known = {}
                writer.execute("ROLLBACK")
            except BaseException:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise

    def _rows_after(self, connection: sqlite3.Connection, head: int) -> list[Event]:
        columns = self._read_dialect.columns
        rows = connection.execute(
            f"SELECT {columns} FROM events WHERE position > ? ORDER BY position", (head,)
        ).fetchall()
        return _events(rows, self._name)

    def _stored(self, connection: sqlite3.Connection, events: list[Event]) -> dict[UUID, Event]:
        """The events of the batch whose ids the store already holds."""
        ids = list({e.id.bytes for e in events})
        found: dict[UUID, Event] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            rows = connection.execute(
                f"SELECT {self._read_dialect.columns} FROM events WHERE event_id IN ({marks})",
                chunk,
            ).fetchall()
            for event in _events(rows, self._name):
                found[event.id] = event
        return found

    def _others_wrote(self) -> bool:
        connection = self._thread_connection()
        version = int(connection.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version
        self._data_version = version
        return changed

    def _newer(self, head: int) -> list[Event]:
        connection = self._thread_connection()
        rows = connection.execute(
            f"SELECT {self._read_dialect.columns} FROM events WHERE position > ? "
            "ORDER BY position LIMIT 1000",
            (head,),
        ).fetchall()
        return _events(rows, self._name)

    def _encode(self, event: Event) -> tuple[Any, ...]:
        return _encode(event)

    def _save_checkpoint(
        self, connection: sqlite3.Connection, name: str, position: int, now: datetime
    ) -> None:
        connection.execute(
            "INSERT INTO subscriptions (name, position, updated_ts) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET position = excluded.position, "
            "updated_ts = excluded.updated_ts",
            (name, position, _micros(now)),
        )

    def _prune_step(
        self,
        connection: sqlite3.Connection,
        before: datetime,
        through: int | None,
        force: bool,
        chunk: int,
    ) -> PruneStep:
        # The write lock, as a commit takes it (design rule 42).
        connection.execute("BEGIN IMMEDIATE")
        try:
            done = prune_step(
                lambda sql, params: connection.execute(sql, params).fetchall(),
                lambda end: (
                    connection.execute("DELETE FROM events WHERE position <= ?", (end,)).rowcount
                ),
                param="?",
                newer="+ts >= ?",
                before=_micros(before),
                through=through,
                force=force,
                chunk=chunk,
            )
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return done

    # ------------------------------------------------------------ reading

    def _decode(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        return _events(rows, self._name)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._check_open()
        reader = self._reader
        assert reader is not None

        def run() -> list[tuple[Any, ...]]:
            try:
                return reader.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._store_error(exc) or StoreUnavailable(self._name, str(exc)) from exc

        return await trio.to_thread.run_sync(run, limiter=self._read_limiter)

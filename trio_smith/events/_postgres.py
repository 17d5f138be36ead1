"""``PostgresEventStore``: the event log in PostgreSQL, for several processes and hosts.

It is the SQLite store's design (``events/_threaded.py``) on a server: one
store thread per store owns a psycopg connection (psycopg's synchronous API;
its asyncio API does not run under trio), takes everything queued, and
commits it in one transaction.

Theory of operation
===================

* **Dense, commit-ordered positions** (design rule 28). Each batch takes a
  transaction-scoped advisory lock keyed by the store's table, reads the head
  *inside* the transaction and numbers the batch ``head + 1, ...``. A
  sequence or identity column would not do: a transaction that draws a value
  and commits after a later one leaves a hole that a reader passes over and
  that fills in later (measured: 14-22% of events missed by a tailing reader
  under 4 writer processes); with the lock, the next writer starts only once
  the previous commit is visible, so a reader that has seen ``p`` has seen
  everything up to ``p``.
* **Round trips.** The lock and the head read go in one pipelined round trip;
  the rows go by binary ``COPY``; the notification and ``COMMIT`` in one more.
  An id already stored makes the ``COPY`` fail on the unique index (ids are
  rare repeats: a retried append), and the batch is redone with a lookup.
* **Other processes' appends** (design rule 28). Each commit also sends a
  notification (``pg_notify`` on the channel ``trio_smith.<schema>``, sent at
  commit, in commit order). A listener thread of its own ``LISTEN``s, and on
  a notification, every ``poll_interval`` (in case one was missed) and after
  each reconnection it asks the store thread to look: that reads from the
  table after the last position it handed over. The notification is only a
  wake-up; the table is the delivery, so nothing is missed or seen twice.
* **A server that goes away.** Any operation then fails with
  ``StoreUnavailable`` (never a bare psycopg error, never a hang: connect,
  lock and statement timeouts, TCP keepalives and ``tcp_user_timeout`` bound
  every wait by ``timeout``); the connection is dropped and opened again by
  the next operation, so the store resumes by itself once the server is back.
* **Text.** PostgreSQL's text cannot hold NUL: an event whose source holds
  one is refused alone by its appender (a payload's NUL is written ``\\u0000``
  in its JSON, which the ``json`` column keeps exactly).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import trio

from .._core._check import finite_at_least, optional_name
from .._event import EVENT_SETTERS, PARSED_TYPES, Event, EventType, check_trace_context
from .._exceptions import (
    EventsError,
    StoreFull,
    StoreOpenError,
    StoreUnavailable,
)
from ._codec import dump_payload, parse_json
from ._sql import COLUMNS_V1, Dialect
from ._threaded import (
    _LOOK,
    Committed,
    PruneStep,
    ThreadedStore,
    check_trace_context_column,
    check_type_and_payload,
    decode_page,
    log,
    place,
    prune_step,
    stored_payload,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresEventStore"]

#: The schema this code writes; a store with a newer one is refused. Version 2
#: added ``events.trace_context``; a writable open migrates a version 1 store
#: (``_migrate``), a read-only one reads it as it is (docs/design.md rule 46).
SCHEMA_VERSION: Final = 2
#: What ``store_meta.format`` holds in a trio_smith store.
FORMAT: Final = "trio_smith.events"
#: The first key of trio_smith's advisory locks ("tS"); the second is the
#: events table's oid, so two stores in one database never wait for each other.
_LOCK_CLASS: Final = 0x7453

_SCHEMA: Final = """
CREATE TABLE events (
    position       bigint      PRIMARY KEY,
    event_id       uuid        NOT NULL,
    ts             timestamptz NOT NULL,
    source         text COLLATE "C" NOT NULL,
    category       text COLLATE "C" NOT NULL,
    type           text COLLATE "C" NOT NULL,
    schema_version integer     NOT NULL DEFAULT 1,
    correlation_id uuid,
    causation_id   uuid,
    payload        json        NOT NULL,
    trace_context  json
);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_correlation ON events (correlation_id, position)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX events_source ON events (source, position);
CREATE INDEX events_type ON events (type, position);
CREATE TABLE subscriptions (
    name       text COLLATE "C" PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_ts timestamptz NOT NULL
);
CREATE TABLE store_meta (key text PRIMARY KEY, value text NOT NULL);
"""

#: Batches of at most this many events go in one pipelined round trip
#: (``_insert``); larger ones by binary ``COPY`` (``_WRITTEN``), which dumps
#: rows faster than a long statement's parameters.
_SMALL_BATCH: Final = 16

#: One row of a small batch's VALUES (the casts type every parameter).
_ROW: Final = (
    "(%s::uuid, %s::timestamptz, %s::text, %s::text, %s::text, %s::uuid, %s::uuid, %s::text, "
    "%s::text, {n})"
)


@functools.cache
def _insert(size: int) -> str:
    """A small batch's INSERT: numbered from the head that this very statement reads.

    Its snapshot is taken after the preceding lock statement returned, so it
    sees every earlier commit; the rows keep the order given.
    """
    rows = ", ".join(_ROW.format(n=n) for n in range(1, size + 1))
    return (
        "INSERT INTO events (position, event_id, ts, source, category, type, "
        "correlation_id, causation_id, payload, trace_context) "
        "SELECT head.at + batch.n, batch.event_id, batch.ts, batch.source, batch.category, "
        "batch.type, batch.correlation_id, batch.causation_id, batch.payload::json, "
        "batch.trace_context::json "
        "FROM (SELECT coalesce(max(position), 0) AS at FROM events) AS head, "
        f"(VALUES {rows}) AS batch (event_id, ts, source, category, type, correlation_id, "
        "causation_id, payload, trace_context, n) RETURNING position"
    )


#: The columns a batch writes (``COPY``), and their types for binary COPY.
_WRITTEN: Final = (
    "position, event_id, ts, source, category, type, correlation_id, causation_id, payload, "
    "trace_context"
)
_WRITTEN_TYPES: Final = (
    "int8",
    "uuid",
    "timestamptz",
    "text",
    "text",
    "text",
    "uuid",
    "uuid",
    # Sent as text: binary json is its text, which the server parses as json.
    # Typed "json", psycopg would dump the str as a JSON *string*.
    "text",
    "text",  # trace_context, json as the payload
)

_DIALECT: Final = Dialect(param="%s", uuid=lambda value: value, time=lambda moment: moment)
#: Reads of a version 1 store opened read-only (no ``trace_context`` column).
_DIALECT_V1: Final = attrs.evolve(_DIALECT, columns=COLUMNS_V1)

#: A schema name: an identifier short enough for the notification channel's.
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")

#: SQLSTATE classes that say the server cannot be used now (connection,
#: resources, operator intervention, prerequisite state, system, access
#: rule or missing object, internal, transaction rollback), not the data.
_UNAVAILABLE: Final = frozenset({"08", "40", "42", "53", "55", "57", "58", "XX", "25"})
_DISK_FULL: Final = "53100"

_parse: Final = EventType.parse
_loads: Final = parse_json
_new_object: Final = object.__new__


def _psycopg() -> Any:
    """psycopg, imported when a store is built (it is an optional extra)."""
    try:
        import psycopg  # optional, and 0.15 s to import
    except ImportError as exc:
        raise ModuleNotFoundError(
            "PostgresEventStore needs psycopg: pip install 'trio-smith[postgres]'"
        ) from exc
    return psycopg


def _first_line(exc: BaseException) -> str:
    """An engine error in one line (libpq's messages run over several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _redacted(params: dict[str, Any]) -> str:
    """A URL naming the server and database, never the password."""
    user = params.get("user")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port")
    dbname = params.get("dbname") or user or ""
    where = f"[{host}]" if ":" in host and "," not in host else host
    return f"postgresql://{f'{user}@' if user else ''}{where}{f':{port}' if port else ''}/{dbname}"


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def _events(rows: list[tuple[Any, ...]], store: str) -> list[Event]:
    """Decode rows of ``COLUMNS`` (ids and times come as ``UUID`` and UTC ``datetime``).

    Raises:
        StoreCorrupt: a row cannot be an event, naming its position.
    """
    return decode_page(rows, store, _decode, _check_row)


def _decode(rows: list[tuple[Any, ...]]) -> list[Event]:
    events: list[Event] = []
    append = events.append
    new, loads, parsed, parse = _new_object, _loads, PARSED_TYPES, _parse
    (set_id, set_ts, set_source, set_type, set_payload, set_cor, set_cause, set_pos, set_trace) = (
        EVENT_SETTERS
    )
    for position, event_id, ts, source, kind, correlation, causation, payload, trace in rows:
        event = new(Event)
        set_id(event, event_id)
        set_ts(event, ts)
        set_source(event, source)
        set_type(event, parsed.get(kind) or parse(kind))
        data = loads(payload)
        if type(data) is not dict:
            raise ValueError("damaged row")
        set_payload(event, data)
        set_cor(event, correlation)
        set_cause(event, causation)
        set_pos(event, position)
        set_trace(event, None if trace is None else check_trace_context(loads(trace)))
        append(event)
    return events


def _check_row(row: tuple[Any, ...], store: str) -> None:
    """Raise StoreCorrupt, naming the position, if ``row`` cannot be decoded."""
    position, _, _, _, kind, _, _, payload, trace = row
    check_type_and_payload(store, position, kind, payload)
    check_trace_context_column(store, position, trace)


def _encode(event: Event) -> tuple[Any, ...]:
    """An event's row, all but its position.

    Raises:
        TypeError, ValueError: the event cannot be stored (``stored_payload``;
            a naive timestamp; a NUL character in the source or the type,
            which PostgreSQL text cannot hold).
    """
    payload = stored_payload(event)
    if "\0" in event.source:
        raise ValueError("its source holds a NUL character, which PostgreSQL text cannot")
    if "\0" in event.type.wire:
        raise ValueError("its type holds a NUL character, which PostgreSQL text cannot")
    if event.timestamp.utcoffset() is None:
        raise TypeError(f"its timestamp is naive: {event.timestamp!r}")
    return (
        event.id,
        event.timestamp,
        event.source,
        event.type.category,
        event.type.wire,
        event.correlation_id,
        event.causation_id,
        payload,
        None if event.trace_context is None else dump_payload(dict(event.trace_context)),
    )


@final
class PostgresEventStore(ThreadedStore["psycopg.Connection[Any]"]):
    """The event log in PostgreSQL: several processes, on several hosts, share one log.

    ``async with PostgresEventStore("postgresql://user@db-host/app") as store:``
    connects, creates the store's tables in ``schema`` if they are missing,
    and starts its store thread. It is used exactly like
    :class:`SQLiteEventStore` and keeps the same contract: positions are
    dense from 1 and follow commit order across every process that appends,
    appends are idempotent by id, and each store's listeners (a bus) see
    every process's events, once each, in position order.

    Needs the ``postgres`` extra (``pip install 'trio-smith[postgres]'``).

    Args:
        dsn: a libpq connection string or ``postgresql://`` URL.
        schema: the PostgreSQL schema that holds the store's tables; several
            stores can live in one database under different schemas.
        max_batch: the most events committed in one transaction.
        queue: appends that may be queued or committing at once; beyond it
            ``append`` waits (backpressure) and ``append_nowait`` raises
            WouldBlock.
        read_only: use an existing store without ever writing to it. Writes
            raise ``StoreReadOnly``.
        poll_interval: seconds between two looks for other processes'
            appends when no notification came (notifications normally wake
            the store at once).
        timeout: seconds any one wait for the server may take: connecting,
            another writer's lock, a statement, an unanswered connection.
        name: for errors and logs; default: the DSN as a URL, without its
            password.

    Raises:
        ValueError, TypeError: a bad argument (the message names it).
        ModuleNotFoundError: psycopg is not installed.

    ``async with`` raises:
        StoreOpenError: the server cannot be reached, the database does not
            exist, the schema holds tables that are not a trio_smith store or
            a store of a newer schema version, or (read-only) there is no
            store. Nothing is created or modified.

    Operations may raise ``StoreUnavailable`` (the server went away, or did
    not answer within ``timeout``; the store connects again by itself),
    ``StoreFull`` (the server's disk is full) and ``StoreCorrupt`` (a read
    met a row damaged outside trio_smith).
    """

    __slots__ = (
        "_busy",
        "_channel",
        "_connect_params",
        "_dsn",
        "_hung",
        "_lock_key",
        "_read_dialect",
        "_reader",
        "_schema",
        "_stop",
        "_wake",
        "_watcher",
        "_writer_pid",
        "timeout",
    )

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "trio_smith",
        max_batch: int = 1000,
        queue: int = 4096,
        read_only: bool = False,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str, got {type(dsn).__name__}")
        given: object = schema
        if not isinstance(given, str) or not _SCHEMA_NAME.fullmatch(given):
            raise ValueError(
                f"schema must be a letter or _ then up to 47 letters, digits or _, got {schema!r}"
            )
        finite_at_least("timeout", timeout, 0, strict=True)
        pg = _psycopg()
        try:
            params = pg.conninfo.conninfo_to_dict(dsn)
        except pg.ProgrammingError as exc:
            raise ValueError(
                f"dsn is not a PostgreSQL connection string or URL: {_first_line(exc)}"
            ) from None
        super().__init__(
            name=optional_name(name) or _redacted(params),
            max_batch=max_batch,
            queue=queue,
            read_only=read_only,
            poll_interval=poll_interval,
            idle_wait=None,
        )
        self._dsn = dsn
        self._schema = schema
        self.timeout = timeout
        # Bounds on every wait for the server; the DSN's own settings win.
        seconds = max(1, round(timeout))
        defaults = {
            "connect_timeout": max(2, seconds),
            "keepalives": 1,
            "keepalives_idle": max(1, seconds // 2),
            "keepalives_interval": max(1, seconds // 4),
            "keepalives_count": 3,
            "tcp_user_timeout": int(timeout * 1000),
            "application_name": "trio_smith",
        }
        self._connect_params = {k: v for k, v in defaults.items() if k not in params}
        self._reader: psycopg.Connection[Any] | None = None
        #: How reads select: ``_DIALECT_V1`` for a version 1 store opened read-only.
        self._read_dialect = _DIALECT
        self._lock_key = (_LOCK_CLASS, 0)
        self._channel = f"trio_smith.{schema}"
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake: tuple[int, int] | None = None
        #: The waits the watch thread watches: the store thread's ("writer")
        #: and a read's ("reader"), with when they began.
        self._busy: dict[str, tuple[float, psycopg.Connection[Any]]] = {}
        #: Those it ended (their error then says so), until the next wait.
        self._hung: set[str] = set()
        #: The server process of the store thread's connection: its own
        #: commits' notifications need no look.
        self._writer_pid = 0

    @property
    def schema(self) -> str:
        """The schema that holds the store's tables."""
        return self._schema

    def __repr__(self) -> str:
        return f"<PostgresEventStore {self._name!r} schema={self._schema!r} head={self._head}>"

    @property
    def _dialect(self) -> Dialect:
        return self._read_dialect

    # ------------------------------------------------------------ connections

    def _open_connection(self, *, role: str) -> psycopg.Connection[Any]:
        """A new autocommit connection to the store's schema, in UTC.

        Raises:
            pg.Error: as psycopg raises it (callers sort it out).
        """
        pg = _psycopg()
        from psycopg import sql
        from psycopg.types.string import TextBinaryLoader, TextLoader

        # No prepared statements: psycopg's cache of them goes wrong when a
        # pipeline fails half-way ("prepared statement does not exist").
        connection: psycopg.Connection[Any] = pg.connect(
            self._dsn, autocommit=True, prepare_threshold=None, **self._connect_params
        )
        try:
            settings: list[sql.Composable] = [
                sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)),
                sql.SQL("SET TIME ZONE 'UTC'"),
            ]
            # json comes back as its text: _decode parses it (the C scanner).
            connection.adapters.register_loader("json", TextLoader)
            connection.adapters.register_loader("json", TextBinaryLoader)
            if role == "writer":
                millis = int(self.timeout * 1000)
                settings.append(sql.SQL(f"SET lock_timeout = {millis}"))
                settings.append(sql.SQL(f"SET statement_timeout = {millis}"))
            if self.read_only:
                settings.append(sql.SQL("SET default_transaction_read_only = on"))
            connection.execute(sql.SQL("; ").join(settings))
        except BaseException:
            connection.close()
            raise
        return connection

    def _connect(self) -> tuple[psycopg.Connection[Any], int, str]:
        pg = _psycopg()
        self._start_watching()
        connection: psycopg.Connection[Any] | None = None
        try:
            try:
                connection = self._open_connection(role="writer")
            except pg.Error as exc:
                raise StoreOpenError(self._name, f"cannot connect ({_first_line(exc)})") from None
            self._writer_pid = connection.info.backend_pid
            with self._waiting("writer", connection):
                store_id = self._check_or_create(connection)
                (oid,) = connection.execute("SELECT 'events'::regclass::oid").fetchall()[0]
                # An oid is unsigned; the advisory lock takes a signed int4.
                self._lock_key = (_LOCK_CLASS, oid - 2**32 if oid >= 2**31 else oid)
                top = connection.execute(
                    "SELECT position FROM events ORDER BY position DESC LIMIT 1"
                ).fetchone()
            self._reader = self._open_connection(role="reader")
        except BaseException as exc:
            self._stop_watching()
            if connection is not None:
                connection.close()
            self._close_reader()
            if isinstance(exc, pg.Error | StoreUnavailable):
                reason = exc.reason if isinstance(exc, StoreUnavailable) else _first_line(exc)
                raise StoreOpenError(self._name, f"cannot be used ({reason})") from None
            raise
        return connection, 0 if top is None else int(top[0]), store_id

    def _check_or_create(self, connection: psycopg.Connection[Any]) -> str:
        """Refuse what is not a store of ours (changing nothing); create a missing one."""
        from psycopg import sql

        found = self._tables(connection)
        if not found:
            if self.read_only:
                raise StoreOpenError(
                    self._name,
                    f"no trio_smith event store in schema {self._schema!r} "
                    "(read-only stores are not created)",
                    missing=True,
                )
            # Two processes creating the store at once: the lock orders them,
            # and the second finds the first one's tables.
            with connection.transaction():
                connection.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self._schema)
                )
                connection.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
                )
                if not self._tables(connection):
                    connection.execute(_SCHEMA)
                    connection.execute(
                        "INSERT INTO store_meta (key, value) VALUES "
                        "('format', %s), ('schema_version', %s), ('store_id', %s)",
                        (FORMAT, str(SCHEMA_VERSION), str(uuid.uuid4())),
                    )
            found = self._tables(connection)
        if "store_meta" not in found or "events" not in found:
            raise StoreOpenError(
                self._name,
                f"schema {self._schema!r} holds tables that are not a trio_smith event store",
            )
        meta = dict(connection.execute("SELECT key, value FROM store_meta").fetchall())
        if meta.get("format") != FORMAT:
            raise StoreOpenError(
                self._name, f"schema {self._schema!r} is not a trio_smith event store"
            )
        version = meta.get("schema_version", "")
        if not version.isdigit():
            raise StoreOpenError(self._name, f"unreadable schema version {version!r}")
        if int(version) > SCHEMA_VERSION:
            raise StoreOpenError(
                self._name,
                f"its schema version {int(version)} is newer than this trio_smith "
                f"reads ({SCHEMA_VERSION})",
            )
        if int(version) < SCHEMA_VERSION and not self.read_only:
            self._migrate(connection)
        self._read_dialect = _DIALECT if self._has_trace_context(connection) else _DIALECT_V1
        return str(meta.get("store_id", ""))

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        """Bring an older store to ``SCHEMA_VERSION``, in one transaction.

        Version 1 lacks ``events.trace_context``: adding a nullable column
        rewrites no row. The creation lock orders two processes migrating at
        once; the second finds the version already raised.
        """
        with connection.transaction():
            connection.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, self._schema)
            )
            (version,) = connection.execute(
                "SELECT value FROM store_meta WHERE key = 'schema_version'"
            ).fetchall()[0]
            if int(version) < SCHEMA_VERSION:
                connection.execute("ALTER TABLE events ADD COLUMN IF NOT EXISTS trace_context json")
                connection.execute(
                    "UPDATE store_meta SET value = %s WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )

    def _has_trace_context(self, connection: psycopg.Connection[Any]) -> bool:
        """Whether the events table has the ``trace_context`` column (version 2)."""
        return bool(
            connection.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'events' AND column_name = 'trace_context'",
                (self._schema,),
            ).fetchall()
        )

    def _tables(self, connection: psycopg.Connection[Any]) -> set[str]:
        rows = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (self._schema,),
        ).fetchall()
        return {str(row[0]) for row in rows}

    def _thread_connection(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = self._open_connection(role="writer")
            self._writer_pid = connection.info.backend_pid
        return connection

    def _reset_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _disconnect(self) -> None:
        self._stop_watching()
        self._reset_connection()
        self._close_reader()

    # ------------------------------------------------------------ the watch thread

    def _start_watching(self) -> None:
        self._wake = os.pipe()
        self._watcher = threading.Thread(
            target=self._watch, name=f"trio_smith store watcher {self._name}", daemon=True
        )
        self._watcher.start()

    def _stop_watching(self) -> None:
        self._stop.set()
        wake, self._wake = self._wake, None
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake[1], b"x")
            os.close(wake[1])

    @contextlib.contextmanager
    def _waiting(self, role: str, connection: psycopg.Connection[Any]) -> Iterator[None]:
        """Within the block, the watch thread ends a wait on ``connection`` beyond ``timeout``."""
        self._hung.discard(role)
        self._busy[role] = (time.monotonic(), connection)
        try:
            yield
        except Exception as exc:
            if role in self._hung:
                raise StoreUnavailable(
                    self._name, f"the server did not answer within timeout ({self.timeout:g} s)"
                ) from exc
            raise
        finally:
            del self._busy[role]

    def _watch(self) -> None:
        """The watch thread: wake-ups for the store thread, and an end to hung waits.

        It ``LISTEN``s on a connection of its own, so a notification is never
        consumed by another statement, and asks the store thread to look on
        each notification, every ``poll_interval`` (a missed one), and after
        each reconnection (notifications sent meanwhile are lost; the table
        has their events). A server that accepts a connection and then never
        answers (stopped, or cut off without a reset) would hold a libpq call
        for ever: a wait of the store thread or of a read that passes
        ``timeout`` has its socket shut down, which ends it with an error.
        """
        pg = _psycopg()
        wake = self._wake
        assert wake is not None
        stop = self._stop
        tick = min(self.poll_interval, self.timeout / 4)
        delay = tick
        connection: psycopg.Connection[Any] | None = None
        looked = time.monotonic()
        try:
            while not stop.is_set():
                self._end_hung_waits()
                try:
                    if connection is None:
                        connection = self._open_connection(role="listener")
                        connection.execute(f'LISTEN "{self._channel}"')
                        delay = tick
                        self._jobs.put(_LOOK)
                    readable, _, _ = select.select([connection.fileno(), wake[0]], [], [], tick)
                    if wake[0] in readable:
                        break
                    if readable:
                        notes = list(connection.notifies(timeout=0))
                        if not notes:
                            # Readable without a notification: the server may
                            # have closed the connection (psycopg does not say).
                            connection.execute("SELECT 1")
                            continue
                        if all(note.pid == self._writer_pid for note in notes):
                            continue  # this store's own commits: nothing to read
                    elif time.monotonic() - looked < self.poll_interval:
                        continue
                    looked = time.monotonic()
                    self._jobs.put(_LOOK)
                except pg.Error as exc:
                    if connection is not None:
                        connection.close()
                        connection = None
                        log.warning(
                            "event store %r lost its notification connection: %s",
                            self._name,
                            _first_line(exc),
                        )
                    # Wait before connecting again, longer each time; a close
                    # wakes it at once.
                    readable, _, _ = select.select([wake[0]], [], [], delay)
                    delay = min(delay * 2, max(tick, 5.0))
                    if readable:
                        break
        finally:
            if connection is not None:
                connection.close()
            os.close(wake[0])

    def _end_hung_waits(self) -> None:
        now = time.monotonic()
        for role, (since, connection) in list(self._busy.items()):
            if now - since > self.timeout and role not in self._hung:
                self._hung.add(role)
                with contextlib.suppress(OSError, ValueError):
                    # shutdown() acts on the socket, so a duplicate ends
                    # libpq's own wait too.
                    sock = socket.socket(fileno=os.dup(connection.fileno()))
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    finally:
                        sock.close()

    # ------------------------------------------------------------ the store thread

    def _store_error(self, exc: Exception) -> EventsError | None:
        if isinstance(exc, EventsError):
            return exc
        pg = _psycopg()
        if not isinstance(exc, pg.Error):
            return None
        state = _sqlstate(exc)
        if state == _DISK_FULL:
            return StoreFull(self._name, _first_line(exc))
        if state is None:
            if isinstance(exc, pg.OperationalError | pg.InterfaceError):
                return StoreUnavailable(self._name, _first_line(exc))
            return None
        if state[:2] in _UNAVAILABLE:
            return StoreUnavailable(self._name, _first_line(exc))
        return None

    def _commit(self, events: list[Event], rows: list[tuple[Any, ...]], head: int) -> Committed:
        """Commit one batch (store thread): the lock, the head read inside, the rows.

        A small batch of new ids takes one round trip (``_small``); a large
        one, or one that meets an id already stored, goes by ``_copy``.
        """
        pg = _psycopg()
        connection = self._thread_connection()
        with self._waiting("writer", connection):
            if len(events) <= _SMALL_BATCH:
                try:
                    return self._small(connection, events, rows, head)
                except pg.errors.UniqueViolation:
                    pass  # an id already stored, or repeated: look them up
                return self._copy(connection, events, rows, head, lookup=True)
            for attempt in range(3):
                try:
                    return self._copy(connection, events, rows, head, lookup=attempt > 0)
                except pg.errors.UniqueViolation:
                    continue  # an id stored already (or meanwhile, by another writer)
        raise StoreUnavailable(self._name, "a batch met stored ids three times in a row")

    def _small(
        self,
        connection: psycopg.Connection[Any],
        events: list[Event],
        rows: list[tuple[Any, ...]],
        head: int,
    ) -> Committed:
        """Lock, insert numbered from the head, notify, commit: one round trip.

        Raises:
            UniqueViolation: an id is already stored (nothing was committed).
        """
        params = [value for row in rows for value in row]
        with self._rolled_back_on_error(connection):
            with connection.pipeline():
                connection.execute("BEGIN")
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._lock_key)
                inserted = connection.execute(_insert(len(rows)), params)
                connection.execute(
                    "SELECT pg_notify(%s, (SELECT max(position) FROM events)::text)",
                    (self._channel,),
                )
                connection.execute("COMMIT")
            first = min(row[0] for row in inserted.fetchall())
        stored = [event.at_position(first + i) for i, event in enumerate(events)]
        # Committed before this batch (dense positions): read them after it.
        others = self._rows_after(connection, head, first - 1) if first - 1 > head else []
        return Committed(others=others, stored=stored, new=stored)

    def _copy(
        self,
        connection: psycopg.Connection[Any],
        events: list[Event],
        rows: list[tuple[Any, ...]],
        head: int,
        *,
        lookup: bool,
    ) -> Committed:
        """Lock and read the head, ``COPY`` the new rows, notify, commit.

        With ``lookup``, the ids already stored are looked up first (and not
        written again).

        Raises:
            UniqueViolation: an id another writer stored meanwhile.
        """
        with self._rolled_back_on_error(connection):
            with connection.pipeline():
                connection.execute("BEGIN")
                connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._lock_key)
                top = connection.execute(
                    "SELECT position FROM events ORDER BY position DESC LIMIT 1"
                ).fetchone()
            now = 0 if top is None else int(top[0])
            others = self._rows_after(connection, head, now) if now > head else []
            known = self._stored(connection, events) if lookup else {}
            stored, new, placed = place(events, rows, now, known)
            if placed:
                with (
                    connection.cursor() as cursor,
                    cursor.copy(f"COPY events ({_WRITTEN}) FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    copy.set_types(_WRITTEN_TYPES)
                    for row in placed:
                        copy.write_row(row)
            with connection.pipeline():
                if new:
                    connection.execute(
                        "SELECT pg_notify(%s, %s)", (self._channel, str(now + len(new)))
                    )
                connection.execute("COMMIT")
        return Committed(others=others, stored=stored, new=new)

    @contextlib.contextmanager
    def _rolled_back_on_error(self, connection: psycopg.Connection[Any]) -> Iterator[None]:
        """Roll back a transaction an error left open (or drop a broken connection)."""
        pg = _psycopg()
        try:
            yield
        except BaseException:
            if (
                not connection.closed
                and connection.info.transaction_status != pg.pq.TransactionStatus.IDLE
            ):
                try:
                    connection.execute("ROLLBACK")
                except Exception:  # the connection broke: the server rolls back
                    connection.close()
            raise

    def _rows_after(
        self, connection: psycopg.Connection[Any], head: int, until: int
    ) -> list[Event]:
        """The events other writers committed after ``head``, up to ``until``."""
        rows = (
            connection.cursor(binary=True)
            .execute(
                f"SELECT {self._read_dialect.columns} FROM events "
                "WHERE position > %s AND position <= %s "
                "ORDER BY position",
                (head, until),
            )
            .fetchall()
        )
        return _events(rows, self._name)

    def _stored(
        self, connection: psycopg.Connection[Any], events: list[Event]
    ) -> dict[uuid.UUID, Event]:
        """The events of the batch whose ids the store already holds."""
        rows = (
            connection.cursor(binary=True)
            .execute(
                f"SELECT {self._read_dialect.columns} FROM events WHERE event_id = ANY(%s)",
                (list({e.id for e in events}),),
            )
            .fetchall()
        )
        return {event.id: event for event in _events(rows, self._name)}

    def _others_wrote(self) -> bool:
        # Only asked when the listener says so (a notification, or a poll).
        return True

    def _newer(self, head: int) -> list[Event]:
        connection = self._thread_connection()
        with self._waiting("writer", connection):
            rows = (
                connection.cursor(binary=True)
                .execute(
                    f"SELECT {self._read_dialect.columns} FROM events WHERE position > %s "
                    "ORDER BY position LIMIT 1000",
                    (head,),
                )
                .fetchall()
            )
        return _events(rows, self._name)

    def _encode(self, event: Event) -> tuple[Any, ...]:
        return _encode(event)

    def _save_checkpoint(
        self, connection: psycopg.Connection[Any], name: str, position: int, now: datetime
    ) -> None:
        with self._waiting("writer", connection):
            connection.execute(
                "INSERT INTO subscriptions (name, position, updated_ts) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position, "
                "updated_ts = excluded.updated_ts",
                (name, position, now),
            )

    def _prune_step(
        self,
        connection: psycopg.Connection[Any],
        before: datetime,
        through: int | None,
        force: bool,
        chunk: int,
    ) -> PruneStep:
        # The advisory lock, as a commit takes it (design rule 42).
        with self._waiting("writer", connection), self._rolled_back_on_error(connection):
            connection.execute("BEGIN")
            connection.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._lock_key)
            done = prune_step(
                lambda sql, params: connection.execute(sql, params).fetchall(),
                lambda end: (
                    connection.execute("DELETE FROM events WHERE position <= %s", (end,)).rowcount
                ),
                param="%s",
                newer="ts >= %s",
                before=before,
                through=through,
                force=force,
                chunk=chunk,
            )
            connection.execute("COMMIT")
        return done

    # ------------------------------------------------------------ reading

    def _decode(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        return _events(rows, self._name)

    async def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self._check_open()

        def run() -> list[tuple[Any, ...]]:
            pg = _psycopg()
            try:
                if self._reader is None or self._reader.closed:
                    self._reader = self._open_connection(role="reader")
                with self._waiting("reader", self._reader):
                    rows: list[tuple[Any, ...]] = (
                        self._reader.cursor(binary=True).execute(sql, params).fetchall()
                    )
            except StoreUnavailable:
                self._close_reader()
                raise
            except pg.Error as exc:
                self._close_reader()
                error = self._store_error(exc) or StoreUnavailable(self._name, _first_line(exc))
                raise error from exc
            return rows

        return await trio.to_thread.run_sync(run, limiter=self._read_limiter)

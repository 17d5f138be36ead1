"""Events carry a W3C trace context: the field, the injector, the codec, old stores."""

from __future__ import annotations

import json
import logging
import pathlib
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import pytest

from trio_smith import telemetry
from trio_smith._emit import Emitter
from trio_smith.events import (
    Event,
    PostgresEventStore,
    SQLiteEventStore,
    SystemEvent,
    dumps,
    loads,
)
from trio_smith.events._sqlite import SCHEMA_VERSION

from .store_contract import PAID, TRACEPARENT, at, event

TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
CARRIER = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}


@pytest.fixture(autouse=True)
def no_injector() -> Iterator[None]:
    previous = telemetry.set_context_injector(None)
    yield
    telemetry.set_context_injector(previous)


# ---------------------------------------------------------------- the field


def test_an_event_has_no_trace_context_unless_given_one() -> None:
    assert event().trace_context is None
    given = dict(CARRIER)
    made = Event.new(PAID, source="a", trace_context=given)
    assert made.trace_context == CARRIER
    given["tracestate"] = "changed=1"
    assert made.trace_context == CARRIER, "the carrier is copied"
    only_parent = Event.new(PAID, source="a", trace_context={"traceparent": TRACEPARENT})
    assert only_parent.trace_context == {"traceparent": TRACEPARENT}
    # Not part of an event's hash (a dict is not hashable), as the payload.
    assert hash(made) == hash(attrs.evolve(made, trace_context=None))


@pytest.mark.parametrize(
    ("carrier", "error", "message"),
    [
        (
            "00-x",
            TypeError,
            "trace_context must be a mapping or None, got '00-x'",
        ),
        (
            {"traceparent": TRACEPARENT, "baggage": "k=v"},
            ValueError,
            "trace_context may hold only 'traceparent' and 'tracestate', got key 'baggage'",
        ),
        (
            {"traceparent": 5},
            TypeError,
            "trace_context['traceparent'] must be a str, got 5",
        ),
        (
            {"tracestate": "a=b"},
            ValueError,
            "trace_context needs a 'traceparent', got {'tracestate': 'a=b'}",
        ),
        (
            {},
            ValueError,
            "trace_context needs a 'traceparent', got {}",
        ),
        (
            {"traceparent": TRACEPARENT.upper()},
            ValueError,
            "trace_context['traceparent'] must be a W3C traceparent (2, 32, 16 and 2 "
            f"lowercase hex digits joined by '-'), got {TRACEPARENT.upper()!r}",
        ),
        (
            {"traceparent": TRACEPARENT + "-00"},
            ValueError,
            "trace_context['traceparent'] must be a W3C traceparent (2, 32, 16 and 2 "
            f"lowercase hex digits joined by '-'), got {TRACEPARENT + '-00'!r}",
        ),
        (
            {"traceparent": TRACEPARENT, "tracestate": "a=\u00e9"},
            ValueError,
            "trace_context['tracestate'] must be printable ASCII text, got 'a=\u00e9'",
        ),
        (
            {"traceparent": TRACEPARENT, "tracestate": "a=b\n"},
            ValueError,
            "trace_context['tracestate'] must be printable ASCII text, got 'a=b\\n'",
        ),
    ],
)
def test_a_malformed_trace_context_is_refused_by_name(
    carrier: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        Event.new(PAID, source="a", trace_context=carrier)  # type: ignore[arg-type]
    assert str(caught.value) == message


# ---------------------------------------------------------------- the injector


def test_the_injector_fills_new_events_and_an_explicit_carrier_wins() -> None:
    calls: list[None] = []

    def inject() -> Mapping[str, str] | None:
        calls.append(None)
        return {"traceparent": TRACEPARENT}

    assert telemetry.set_context_injector(inject) is None
    assert Event.new(PAID, source="a").trace_context == {"traceparent": TRACEPARENT}
    assert Event.new(PAID, source="a", trace_context=CARRIER).trace_context == CARRIER
    assert len(calls) == 1, "an explicit trace context does not ask the injector"
    # The library's own events (one emitter builds them all) ask it too.
    published: list[Event] = []

    class Publisher:
        def publish_nowait(self, made: Event) -> None:
            published.append(made)

    Emitter(Publisher(), "test").emit(SystemEvent.STARTED, "x", {})
    assert published[0].trace_context == {"traceparent": TRACEPARENT}
    assert telemetry.set_context_injector(None) is inject
    assert Event.new(PAID, source="a").trace_context is None
    assert len(calls) == 2


def test_an_injector_that_returns_none_leaves_the_field_none() -> None:
    telemetry.set_context_injector(lambda: None)
    assert Event.new(PAID, source="a").trace_context is None


@pytest.mark.parametrize("returned", [{"traceparent": "nope"}, "text", {"x": "y"}])
def test_a_failing_injector_is_logged_and_the_event_carries_none(
    returned: object, caplog: pytest.LogCaptureFixture
) -> None:
    def bad() -> Any:
        return returned

    def raising() -> Mapping[str, str]:
        raise RuntimeError("boom")

    for injector in (bad, raising):
        telemetry.set_context_injector(injector)
        caplog.clear()
        with caplog.at_level(logging.ERROR, "trio_smith.events"):
            assert Event.new(PAID, source="a").trace_context is None
        assert [r.getMessage() for r in caplog.records] == [
            f"trace context injector {injector!r} failed; the event carries none"
        ]


def test_an_injector_must_be_callable() -> None:
    with pytest.raises(TypeError) as caught:
        telemetry.set_context_injector("inject")  # type: ignore[arg-type]
    assert str(caught.value) == "injector must be callable or None, got 'inject'"


# ---------------------------------------------------------------- the codec


def test_the_codec_writes_the_field_only_when_it_is_set() -> None:
    plain = event()
    text = dumps(plain)
    assert "trace_context" not in json.loads(text), "new JSON without it equals old JSON"
    assert loads(text) == plain
    traced = Event.new(PAID, source="a", timestamp=at(1), trace_context=CARRIER)
    data = json.loads(dumps(traced))
    assert data["trace_context"] == CARRIER
    assert loads(dumps(traced)) == traced
    data["trace_context"] = None
    assert loads(json.dumps(data)).trace_context is None


def test_old_json_decodes_unchanged() -> None:
    # Written by a trio_smith that had no trace_context field.
    old = (
        '{"id":"01964b3c-4f3a-7b1e-9c2d-3e4f5a6b7c8d","timestamp":"2025-03-01T12:00:00+00:00",'
        '"source":"a/1","type":"agent.started","payload":{"k":1},'
        '"correlation_id":"01964b3c-4f3a-7b1e-9c2d-3e4f5a6b7c8d","causation_id":null,'
        '"position":4}'
    )
    decoded = loads(old)
    assert decoded.trace_context is None
    assert decoded.position == 4
    assert dumps(decoded) == old


def test_the_codec_refuses_a_malformed_trace_context_by_name() -> None:
    data = json.loads(dumps(event()))
    data["trace_context"] = {"traceparent": TRACEPARENT, "baggage": "k=v"}
    with pytest.raises(ValueError, match=r"^not a trio_smith event: ") as caught:
        loads(json.dumps(data))
    assert str(caught.value) == (
        "not a trio_smith event: trace_context may hold only 'traceparent' and "
        "'tracestate', got key 'baggage' @ $.trace_context"
    )


# ---------------------------------------------------------------- older stores

#: The SQLite schema of version 1 (before trace_context), as it was written.
SQLITE_V1 = """
CREATE TABLE events (
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
CREATE UNIQUE INDEX events_event_id ON events(event_id);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_correlation ON events(correlation_id, position)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX events_source ON events(source, position);
CREATE INDEX events_type ON events(type, position);
CREATE TABLE subscriptions (
    name       TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES
    ('format', 'trio_smith.events'), ('schema_version', '1'),
    ('store_id', '5d0c1d51-8a6a-4d5e-9a43-4f1a1b8d2e60');
"""


def _v1_sqlite(path: pathlib.Path, events: list[Event]) -> None:
    """A version 1 store file holding ``events`` (positions from 1)."""
    with sqlite3.connect(path) as db:
        db.executescript(SQLITE_V1)
        db.executemany(
            "INSERT INTO events (position, event_id, ts, source, category, type, "
            "correlation_id, causation_id, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    e.id.bytes,
                    int(e.timestamp.timestamp() * 1_000_000),
                    e.source,
                    e.type.category,
                    e.type.wire,
                    e.correlation_id.bytes if e.correlation_id else None,
                    e.causation_id.bytes if e.causation_id else None,
                    json.dumps(e.payload),
                )
                for i, e in enumerate(events, 1)
            ],
        )
    db.close()


def _sqlite_version(path: pathlib.Path) -> tuple[str, list[str]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        (version,) = db.execute(
            "SELECT value FROM store_meta WHERE key = 'schema_version'"
        ).fetchone()
        columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
    db.close()
    return version, columns


async def test_an_old_sqlite_file_is_read_as_it_is_and_migrated_when_opened_writable(
    tmp_path: pathlib.Path,
) -> None:
    assert SCHEMA_VERSION == 2
    path = tmp_path / "v1.db"
    root = event(payload={"k": 1})
    old = [root, event(t=1, cause=root)]
    _v1_sqlite(path, old)
    before = path.read_bytes()

    async with SQLiteEventStore(path, read_only=True) as store:
        expected = [e.at_position(i) for i, e in enumerate(old, 1)]
        assert await store.read() == expected
        assert await store.read(last=True, limit=1) == expected[1:]
        assert await store.get(root.id) == expected[0]
        assert [e.trace_context for e in await store.read()] == [None, None]
        assert await store.head() == 2
    assert path.read_bytes() == before, "a read-only open writes nothing"
    assert _sqlite_version(path) == ("1", [*_V1_COLUMNS])

    async with SQLiteEventStore(path) as store:
        assert _sqlite_version(path) == ("2", [*_V1_COLUMNS, "trace_context"])
        assert await store.read() == expected
        traced = await store.append(
            Event.new(PAID, source="b", timestamp=at(2), trace_context=CARRIER)
        )
        assert traced.position == 3
    async with SQLiteEventStore(path, read_only=True) as store:
        assert await store.read() == [*expected, traced]
    # A second writable open finds nothing to do.
    async with SQLiteEventStore(path) as store:
        assert await store.read() == [*expected, traced]
    assert _sqlite_version(path) == ("2", [*_V1_COLUMNS, "trace_context"])


_V1_COLUMNS = (
    "position",
    "event_id",
    "ts",
    "source",
    "category",
    "type",
    "schema_version",
    "correlation_id",
    "causation_id",
    "payload",
)

#: The PostgreSQL schema of version 1 (before trace_context), as it was written.
POSTGRES_V1 = """
CREATE SCHEMA trio_smith;
SET search_path TO trio_smith;
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
    payload        json        NOT NULL
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
INSERT INTO store_meta (key, value) VALUES
    ('format', 'trio_smith.events'), ('schema_version', '1'),
    ('store_id', '5d0c1d51-8a6a-4d5e-9a43-4f1a1b8d2e60');
"""


def _postgres_version(dsn: str) -> tuple[str, list[str]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        rows = db.execute(
            "SELECT value FROM trio_smith.store_meta WHERE key = 'schema_version'"
        ).fetchall()
        columns = db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'trio_smith' AND table_name = 'events' ORDER BY ordinal_position"
        ).fetchall()
    return str(rows[0][0]), [str(c[0]) for c in columns]


async def test_an_old_postgres_store_is_read_as_it_is_and_migrated_when_opened_writable(
    pg_dsn: str,
) -> None:
    import psycopg

    root = event(payload={"k": 1})
    old = [root, event(t=1, cause=root)]
    with psycopg.connect(pg_dsn, autocommit=True) as db:
        db.execute(POSTGRES_V1.encode())
        with db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO trio_smith.events (position, event_id, ts, source, category, "
                "type, correlation_id, causation_id, payload) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::json)",
                [
                    (
                        i,
                        e.id,
                        e.timestamp,
                        e.source,
                        e.type.category,
                        e.type.wire,
                        e.correlation_id,
                        e.causation_id,
                        json.dumps(e.payload),
                    )
                    for i, e in enumerate(old, 1)
                ],
            )
    expected = [e.at_position(i) for i, e in enumerate(old, 1)]

    async with PostgresEventStore(pg_dsn, read_only=True) as store:
        assert await store.read() == expected
        assert await store.read(last=True, limit=1) == expected[1:]
        assert await store.get(root.id) == expected[0]
        assert await store.head() == 2
    assert _postgres_version(pg_dsn) == ("1", list(_V1_COLUMNS))

    async with PostgresEventStore(pg_dsn) as store:
        assert _postgres_version(pg_dsn) == ("2", [*_V1_COLUMNS, "trace_context"])
        assert await store.read() == expected
        traced = await store.append(
            Event.new(PAID, source="b", timestamp=at(2), trace_context=CARRIER)
        )
        assert traced.position == 3
    async with PostgresEventStore(pg_dsn, read_only=True) as store:
        assert await store.read() == [*expected, traced]
    async with PostgresEventStore(pg_dsn) as store:
        assert await store.read() == [*expected, traced]
    assert _postgres_version(pg_dsn) == ("2", [*_V1_COLUMNS, "trace_context"])

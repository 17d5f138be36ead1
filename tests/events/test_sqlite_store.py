"""SQLiteEventStore: the store contract, plus files, durability modes and reopening."""

from __future__ import annotations

import pathlib
import re
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import (
    AgentEvent,
    Event,
    EventBus,
    EventFilter,
    SQLiteEventStore,
    StoreCorrupt,
    StoreFileError,
    StoreReadOnly,
    SystemEvent,
    uuid7,
)
from trio_smith.events._sqlite import _FLOAT_EXACT, SCHEMA_VERSION, _events

from .store_contract import StoreContract, StoreFactory, event


class TestSQLiteEventStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: pathlib.Path) -> StoreFactory:
        counter = iter(range(1_000_000))
        return lambda: SQLiteEventStore(tmp_path / f"store-{next(counter)}.db")


async def test_events_survive_closing_and_reopening(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        first = await store.append_many([event(), event(), event()])
        store_id = store.store_id
    async with SQLiteEventStore(path) as store:
        assert await store.head() == 3
        assert await store.read() == first
        assert store.store_id == store_id
        fourth = await store.append(event())
    assert fourth.position == 4


def _untouched(path: pathlib.Path) -> bytes:
    return path.read_bytes()


async def test_a_file_that_is_not_a_store_is_refused_and_left_alone(
    tmp_path: pathlib.Path,
) -> None:
    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello, this is not a database" * 100)
    before = _untouched(text)
    message = f"cannot open event store {str(text)!r}: not an SQLite database, or corrupt "
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}"):
        async with SQLiteEventStore(text):
            pass
    assert text.read_bytes() == before

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = _untouched(other)
    message = f"cannot open event store {str(other)!r}: not a trio_smith event store"
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(other):
            pass
    assert other.read_bytes() == before


async def test_a_newer_schema_is_refused_and_left_alone(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "future.db"
    async with SQLiteEventStore(path) as store:
        await store.append(event())
    with sqlite3.connect(path) as db:
        db.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    before = _untouched(path)
    message = (
        f"cannot open event store {str(path)!r}: its schema version 99 is newer than "
        f"this trio_smith reads ({SCHEMA_VERSION})"
    )
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(path):
            pass
    assert path.read_bytes() == before


async def test_a_missing_directory_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nowhere" / "events.db"
    message = (
        f"cannot open event store {str(path)!r}: directory "
        f"{str(tmp_path / 'nowhere')!r} does not exist"
    )
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(path):
            pass
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(synchronous="OFF"), "synchronous must be 'FULL' or 'NORMAL', got 'OFF'"),
        (dict(busy_timeout=-1), "busy_timeout must be a finite number >= 0, got -1"),
        (dict(max_batch=0), "max_batch must be an int >= 1, got 0"),
        (dict(queue=True), "queue must be an int >= 1, got True"),
        (dict(name=""), "name must be a non-empty str or None, got ''"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    tmp_path: pathlib.Path, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SQLiteEventStore(tmp_path / "x.db", **kwargs)  # type: ignore[arg-type]


async def test_normal_durability_mode_stores_the_same(tmp_path: pathlib.Path) -> None:
    async with SQLiteEventStore(tmp_path / "fast.db", synchronous="NORMAL") as store:
        stored = await store.append_many([event() for _ in range(10)])
        assert [e.position for e in stored] == list(range(1, 11))


async def test_a_durable_subscription_resumes_after_a_restart(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store, EventBus(store) as bus:
        for n in range(5):
            await bus.publish(event(payload={"n": n}))
        sub = bus.subscribe(durable="mailer")
        handled = [await sub.receive() for _ in range(3)]
        await sub.save_checkpoint()
        await sub.aclose()
    assert [e.position for e in handled] == [1, 2, 3]
    # "Restart": a new store object, bus and subscription on the same file.
    async with SQLiteEventStore(path) as store, EventBus(store) as bus:
        sub = bus.subscribe(durable="mailer")
        await bus.publish(event(payload={"n": 5}))
        rest = [await sub.receive() for _ in range(3)]
        assert [e.position for e in rest] == [4, 5, 6]
        assert sub.name == "mailer"
        assert await store.load_checkpoint("mailer") == 3


async def test_a_durable_subscription_without_a_checkpoint_starts_at_from_position(
    tmp_path: pathlib.Path,
) -> None:
    async with SQLiteEventStore(tmp_path / "e.db") as store, EventBus(store) as bus:
        for _ in range(4):
            await bus.publish(event())
        sub = bus.subscribe(durable="late", from_position=2)
        got = [await sub.receive() for _ in range(2)]
        assert [e.position for e in got] == [3, 4]
        plain = bus.subscribe(name="plain")
        with pytest.raises(RuntimeError, match=r"^subscription 'plain' is not durable$"):
            await plain.save_checkpoint()


async def test_a_read_only_store_follows_what_another_connection_writes(
    tmp_path: pathlib.Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteEventStore(path) as writer:
        first = await writer.append(event())
        async with SQLiteEventStore(path, read_only=True) as reader, EventBus(reader) as bus:
            assert await reader.head() == 1
            live = bus.subscribe()
            second = await writer.append(event())
            got = await live.receive()  # polled from the file, in virtual time
            assert got == second
            assert await reader.read() == [first, second]
            message = f"event store {str(path)!r} is read-only"
            with pytest.raises(StoreReadOnly, match=f"^{re.escape(message)}$"):
                await reader.append(event())
            with pytest.raises(StoreReadOnly):
                reader.append_nowait(event())
            with pytest.raises(StoreReadOnly):
                await reader.save_checkpoint("x", 1)


@pytest.mark.parametrize("name", ["what?.db", "a#b.db", "100%.db", "sp ace.db"])
async def test_a_read_only_store_opens_any_file_name(tmp_path: pathlib.Path, name: str) -> None:
    # SQLite reads ?, # and % in a file: URI as syntax; the path is quoted.
    path = tmp_path / name
    async with SQLiteEventStore(path) as store:
        await store.append(Event.new(AgentEvent.STARTED, source="a"))
    async with SQLiteEventStore(path, read_only=True) as reader:
        assert [e.position for e in await reader.read()] == [1]


@pytest.mark.parametrize("read_only", [False, True])
async def test_paths_that_are_no_store_file_are_refused_by_name(
    tmp_path: pathlib.Path, read_only: bool
) -> None:
    # SQLite alone would say "disk I/O error" for these, or write beside a device.
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    cases = [
        (tmp_path, "it is a directory"),
        (pathlib.Path("/dev/null"), "it is not a regular file"),
    ]
    if read_only:
        cases.append((empty, "it is empty, not a trio_smith event store"))
    for path, reason in cases:
        with pytest.raises(StoreFileError) as info:
            async with SQLiteEventStore(path, read_only=read_only):
                pass  # pragma: no cover
        assert str(info.value) == f"cannot open event store {str(path)!r}: {reason}"
    assert empty.read_bytes() == b""


async def test_an_sqlite_error_at_open_is_a_store_file_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    async with SQLiteEventStore(path):
        pass

    real = sqlite3.connect

    def locked(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        if kwargs.get("uri"):
            connection: sqlite3.Connection = real(*args, **kwargs)
            return connection  # the read-only check passes
        raise sqlite3.OperationalError("database is locked")  # the writer cannot

    monkeypatch.setattr(sqlite3, "connect", locked)
    with pytest.raises(StoreFileError) as info:
        async with SQLiteEventStore(path):
            pass  # pragma: no cover
    assert str(info.value) == (
        f"cannot open event store {str(path)!r}: cannot be used (database is locked)"
    )


async def test_a_read_only_store_never_creates_a_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "absent.db"
    message = (
        f"cannot open event store {str(path)!r}: no such file (read-only stores are not created)"
    )
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(path, read_only=True):
            pass
    assert not path.exists()


async def test_a_filtered_durable_subscription_checkpoints_past_what_it_filters_out(
    tmp_path: pathlib.Path,
) -> None:
    """docs/design.md E5: its checkpoint advances with the log."""
    path = tmp_path / "filtered.db"
    agents = EventFilter(categories="agent")
    async with SQLiteEventStore(path) as store, EventBus(store) as bus:
        sub = bus.subscribe(agents, durable="agents")
        first = await bus.publish(Event.new(AgentEvent.STARTED, source="a"))
        assert await sub.receive() == first
        for _ in range(5):
            await bus.publish(event(SystemEvent.STARTED))  # filtered out
        assert sub.last_position == 1
        assert sub.checkpoint_position == 6
        # An agent event it has not received yet holds the checkpoint before it.
        pending = await bus.publish(Event.new(AgentEvent.STOPPED, source="a"))
        await bus.publish(event(SystemEvent.STARTED))
        assert sub.checkpoint_position == 6
        await sub.save_checkpoint()
        assert await store.load_checkpoint("agents") == 6
        assert await sub.receive() == pending
        assert sub.checkpoint_position == 8
        await sub.save_checkpoint()
    async with SQLiteEventStore(path) as store, EventBus(store) as bus:
        sub = bus.subscribe(agents, durable="agents")
        later = await bus.publish(Event.new(AgentEvent.STARTED, source="b"))
        assert await sub.receive() == later
        assert sub.checkpoint_position == 9


async def test_an_event_that_cannot_be_encoded_fails_alone(tmp_path: pathlib.Path) -> None:
    good = event()
    bad = Event(
        id=uuid7(),
        timestamp=good.timestamp,
        source="hand-made",
        type=good.type,
        payload={"tags": {"a", "b"}},  # not JSON: built without Event.new
    )
    async with SQLiteEventStore(tmp_path / "e.db") as store:
        with pytest.raises(
            TypeError,
            match=f"^event {bad.id} cannot be stored: Object of type set is not JSON serializable$",
        ):
            await store.append(bad)
        with pytest.raises(TypeError, match=f"^event {bad.id} cannot be stored"):
            store.append_nowait(bad)
        with pytest.raises(TypeError, match=f"^event {bad.id} cannot be stored"):
            await store.append_many([good, bad])
        assert await store.read() == []
        assert (await store.append(good)).position == 1


async def test_a_listener_that_raises_is_logged_and_appends_go_on(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(events: object) -> None:
        raise RuntimeError("listener bug")

    async with SQLiteEventStore(tmp_path / "e.db", name="store-x") as store:
        store.add_listener(broken)
        assert (await store.append(event())).position == 1
        assert (await store.append(event())).position == 2
    assert [r.getMessage() for r in caplog.records].count(
        "a commit listener of event store 'store-x' raised"
    ) == 2


async def test_closing_while_cancelled_still_commits_the_queue(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "e.db"
    with trio.CancelScope() as scope:
        async with SQLiteEventStore(path) as store:
            for n in range(50):
                store.append_nowait(event(payload={"n": n}))
            scope.cancel()
            await trio.lowlevel.checkpoint()
    assert scope.cancelled_caught
    async with SQLiteEventStore(path) as store:
        assert [e.payload["n"] for e in await store.read()] == list(range(50))


async def test_a_full_queue_is_backpressure(tmp_path: pathlib.Path) -> None:
    async with SQLiteEventStore(tmp_path / "e.db", queue=2) as store:
        store.append_nowait(event())
        store.append_nowait(event())
        with pytest.raises(trio.WouldBlock):
            store.append_nowait(event())
        # An awaited append waits for room, then commits after the others.
        assert (await store.append(event())).position == 3


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.integers(-(2**40), 2**40),
        st.integers(_FLOAT_EXACT - 2**24, _FLOAT_EXACT + 2**24),
        st.integers(0, 2**32 * 10**6 * 2),
        st.sampled_from([0, 1, _FLOAT_EXACT - 1, _FLOAT_EXACT, 253_402_300_799_999_999]),
    )
)
def test_stored_timestamps_decode_exactly(micros: int) -> None:
    """The float fast path of the row decoder agrees with exact arithmetic."""
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    row = (1, uuid7().bytes, micros, "s", "system.started", None, None, "{}", None)
    (decoded,) = _events([row], "test")
    assert decoded.timestamp == expected
    assert decoded.timestamp.tzinfo is UTC


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (
            "payload = '{\"a\": '",
            "its payload is not JSON (Expecting value: line 1 column 7 (char 6))",
        ),
        ("payload = '[1, 2]'", "its payload is not a JSON object ('[1, 2]')"),
        (
            "type = 'nodot'",
            "its type is not an event type "
            "(event type must look like 'category.name', got 'nodot')",
        ),
        ("event_id = x'0102'", "its event_id is not a 16-byte UUID (b'\\x01\\x02')"),
        ("correlation_id = 'text'", "its correlation_id is not a 16-byte UUID ('text')"),
        ("causation_id = x'00'", "its causation_id is not a 16-byte UUID (b'\\x00')"),
        ("ts = 'noon'", "its timestamp is not an integer ('noon')"),
        ("ts = 9223372036854775807", "its timestamp 9223372036854775807 is out of range"),
        ("source = x'07'", "its source is not a non-empty text (b'\\x07')"),
        (
            'trace_context = \'{"x": "y"}\'',
            "its trace_context is not a trace context (trace_context may hold only "
            "'traceparent' and 'tracestate', got key 'x')",
        ),
        (
            "trace_context = '[1]'",
            "its trace_context is not a trace context "
            "(trace_context must be a mapping or None, got [1])",
        ),
        (
            "trace_context = '{'",
            "its trace_context is not a trace context (Expecting property name enclosed "
            "in double quotes: line 1 column 2 (char 1))",
        ),
    ],
)
async def test_a_damaged_row_is_a_store_corrupt_error_naming_its_position(
    tmp_path: pathlib.Path, damage: str, reason: str
) -> None:
    path = tmp_path / "damaged.db"
    async with SQLiteEventStore(path) as store:
        stored = await store.append_many([event(), event(cause=None), event()])
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE events SET {damage} WHERE position = 2")
    db.close()
    message = f"event store {str(path)!r} holds a damaged event at position 2: {reason}"
    async with SQLiteEventStore(path, read_only=True) as store:
        reads: list[Callable[[], Awaitable[object]]] = [
            store.read,
            lambda: store.read(after=1),
            lambda: store.read(last=True, limit=2),
        ]
        if "event_id" not in damage:
            reads.append(lambda: store.get(stored[1].id))
        for read in reads:
            with pytest.raises(StoreCorrupt, match=f"^{re.escape(message)}$") as caught:
                await read()
            assert caught.value.position == 2
        # The rows around it read as they were.
        assert await store.read(limit=1) == stored[:1]
        assert await store.read(after=2) == stored[2:]

"""PostgresEventStore: the store contract on a real PostgreSQL server, plus what a
server adds: opening rules, query plans, other processes' appends, a server
that goes away.

The server is a private one started by tests/postgres.py (or the one
``TRIO_SMITH_PG_DSN`` names); each test gets a database of its own.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from uuid import UUID

import psycopg
import pytest
import trio

from trio_smith.events import (
    AgentEvent,
    Event,
    EventBus,
    EventFilter,
    EventType,
    PostgresEventStore,
    StoreCorrupt,
    StoreOpenError,
    StoreReadOnly,
    StoreUnavailable,
    uuid7,
)
from trio_smith.events._postgres import _DIALECT
from trio_smith.events._sql import COLUMNS, read_sql

from ..postgres import Postgres, PostgresServer
from .store_contract import StoreContract, StoreFactory, at, event


@pytest.fixture(scope="module")
def shared_dsn(postgres: Postgres) -> Iterator[str]:
    """One database for the contract tests: each store gets a schema of its own."""
    name = f"contract_{os.getpid()}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


_schema_numbers = itertools.count()


class TestPostgresEventStore(StoreContract):
    @pytest.fixture
    def make_store(self, shared_dsn: str) -> StoreFactory:
        return lambda: PostgresEventStore(shared_dsn, schema=f"store_{next(_schema_numbers)}")


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True)


def _schemas(dsn: str) -> dict[str, list[str]]:
    """Every non-system schema and its tables (what a refused open must leave alone)."""
    with _connect(dsn) as db:
        rows = db.execute(
            "SELECT n.nspname, coalesce(array_agg(c.relname ORDER BY c.relname) "
            "FILTER (WHERE c.relname IS NOT NULL), '{}') FROM pg_namespace n "
            "LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' "
            "WHERE n.nspname NOT LIKE 'pg_%' AND n.nspname <> 'information_schema' "
            "GROUP BY n.nspname ORDER BY n.nspname"
        ).fetchall()
    return {str(name): list(tables) for name, tables in rows}


async def _refused(store: PostgresEventStore, message: str) -> None:
    with pytest.raises(StoreOpenError, match=f"^{re.escape(message)}$"):
        async with store:
            pass


def _name(dsn: str) -> str:
    """The store's default name: the DSN as a URL, without a password."""
    return PostgresEventStore(dsn).name


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(dsn=b"host=x"), TypeError, "dsn must be a str, got bytes"),
        (
            dict(dsn="host=x nonsense"),
            ValueError,
            'dsn is not a PostgreSQL connection string or URL: missing "=" after "nonsense" '
            "in connection info string",
        ),
        (
            dict(dsn="host=x", schema="Robert'); DROP TABLE students;--"),
            ValueError,
            "schema must be a letter or _ then up to 47 letters, digits or _, "
            'got "Robert\'); DROP TABLE students;--"',
        ),
        (
            dict(dsn="host=x", schema="s" * 49),
            ValueError,
            f"schema must be a letter or _ then up to 47 letters, digits or _, got {'s' * 49!r}",
        ),
        (dict(dsn="host=x", timeout=0), ValueError, "timeout must be a finite number > 0, got 0"),
        (
            dict(dsn="host=x", poll_interval=-1),
            ValueError,
            "poll_interval must be a finite number > 0, got -1",
        ),
        (dict(dsn="host=x", max_batch=0), ValueError, "max_batch must be an int >= 1, got 0"),
        (dict(dsn="host=x", read_only=1), TypeError, "read_only must be a bool, got 1"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        PostgresEventStore(**kwargs)


def test_the_default_name_never_shows_the_password() -> None:
    store = PostgresEventStore("postgresql://alice:s3cret@db.example:6543/app")
    assert store.name == "postgresql://alice@db.example:6543/app"
    assert "s3cret" not in repr(store)
    assert PostgresEventStore("host=db user=bob password=pw dbname=x").name == (
        "postgresql://bob@db/x"
    )


async def test_a_server_that_is_not_there_is_refused_at_open() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresEventStore(f"postgresql://postgres@127.0.0.1:{port}/x", timeout=2)
    with pytest.raises(StoreOpenError) as caught:
        async with store:
            pass
    assert str(caught.value).startswith(
        f"cannot open event store 'postgresql://postgres@127.0.0.1:{port}/x': cannot connect ("
    )
    assert "Connection refused" in str(caught.value)


async def test_a_missing_database_is_refused_at_open(pg_dsn: str) -> None:
    missing = pg_dsn.rsplit("/", 1)[0] + "/no_such_database"
    store = PostgresEventStore(missing)
    with pytest.raises(StoreOpenError, match='database "no_such_database" does not exist'):
        async with store:
            pass


async def test_a_schema_that_is_not_a_store_is_refused_and_left_alone(pg_dsn: str) -> None:
    with _connect(pg_dsn) as db:
        db.execute(
            "CREATE SCHEMA app; CREATE TABLE app.events (id int); INSERT INTO app.events VALUES (1)"
        )
        db.execute("CREATE SCHEMA other; CREATE TABLE other.store_meta (key text, value text)")
        db.execute("INSERT INTO other.store_meta VALUES ('format', 'someone.else')")
        db.execute("CREATE TABLE other.events (id int)")
    before = _schemas(pg_dsn)
    name = _name(pg_dsn)
    await _refused(
        PostgresEventStore(pg_dsn, schema="app"),
        f"cannot open event store {name!r}: schema 'app' holds tables that are not a "
        "trio_smith event store",
    )
    await _refused(
        PostgresEventStore(pg_dsn, schema="other"),
        f"cannot open event store {name!r}: schema 'other' is not a trio_smith event store",
    )
    assert _schemas(pg_dsn) == before


async def test_a_newer_schema_version_is_refused_and_left_alone(pg_dsn: str) -> None:
    async with PostgresEventStore(pg_dsn) as store:
        await store.append(event())
    with _connect(pg_dsn) as db:
        db.execute("UPDATE trio_smith.store_meta SET value = '3' WHERE key = 'schema_version'")
    before = _schemas(pg_dsn)
    await _refused(
        PostgresEventStore(pg_dsn),
        f"cannot open event store {_name(pg_dsn)!r}: its schema version 3 is newer than this "
        "trio_smith reads (2)",
    )
    assert _schemas(pg_dsn) == before


async def test_a_read_only_store_is_never_created(pg_dsn: str) -> None:
    before = _schemas(pg_dsn)
    await _refused(
        PostgresEventStore(pg_dsn, read_only=True),
        f"cannot open event store {_name(pg_dsn)!r}: no trio_smith event store in schema "
        "'trio_smith' (read-only stores are not created)",
    )
    assert _schemas(pg_dsn) == before


async def test_a_read_only_store_reads_follows_and_refuses_writes(pg_dsn: str) -> None:
    async with PostgresEventStore(pg_dsn) as writer:
        first = await writer.append(event())
        async with (
            PostgresEventStore(pg_dsn, read_only=True) as reader,
            EventBus(reader) as bus,
        ):
            live = bus.subscribe()
            assert await reader.read() == [first]
            second = await writer.append(event())
            with trio.fail_after(10):
                assert await live.receive() == second
            with pytest.raises(StoreReadOnly):
                await reader.append(event())
            with pytest.raises(StoreReadOnly):
                await reader.save_checkpoint("x", 1)


async def test_two_stores_on_one_log_see_each_others_events_at_once(pg_dsn: str) -> None:
    # A long poll: what arrives comes through notifications.
    async with (
        PostgresEventStore(pg_dsn, poll_interval=60) as a,
        PostgresEventStore(pg_dsn, poll_interval=60) as b,
        EventBus(a) as bus_a,
        EventBus(b) as bus_b,
    ):
        on_a, on_b = bus_a.subscribe(), bus_b.subscribe()
        async with trio.open_nursery() as nursery:
            for bus, name in ((bus_a, "a"), (bus_b, "b")):
                for n in range(25):
                    nursery.start_soon(bus.publish, event(source=name, payload={"n": n}))
        stored = await a.read()
        assert [e.position for e in stored] == list(range(1, 51))
        with trio.fail_after(10):
            assert [await on_a.receive() for _ in range(50)] == stored
            assert [await on_b.receive() for _ in range(50)] == stored
        assert a.statistics().appended + b.statistics().appended == 50
        assert a.statistics().followed + a.statistics().appended == 50


async def test_an_event_appended_through_two_stores_is_stored_once(pg_dsn: str) -> None:
    twice = event()
    async with PostgresEventStore(pg_dsn) as a, PostgresEventStore(pg_dsn) as b:
        await a.append(event())
        first = await a.append(twice)
        assert await b.append(twice) == first
        _, again, _ = await b.append_many([event(), twice, event()])
        assert again == first
        assert [e.position for e in await b.read()] == [1, 2, 3, 4]


async def test_text_postgresql_cannot_hold_is_refused_alone_or_stored_exactly(
    pg_dsn: str,
) -> None:
    good = event()
    nul_source = Event(id=uuid7(), timestamp=good.timestamp, source="a\0b", type=good.type)
    nul_payload = event(payload={"text": "a\0b", "key\0": 1})
    async with PostgresEventStore(pg_dsn, name="pg") as store:
        message = (
            f"event {nul_source.id} cannot be stored: its source holds a NUL character, "
            "which PostgreSQL text cannot"
        )
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            await store.append(nul_source)
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            store.append_nowait(nul_source)
        stored = await store.append_many([good, nul_payload])
        assert [e.position for e in stored] == [1, 2]
        assert (await store.get(nul_payload.id)) == stored[1]
        assert stored[1].payload == {"text": "a\0b", "key\0": 1}


def _plan(dsn: str, sql: str, params: Sequence[Any]) -> str:
    with _connect(dsn) as db:
        db.execute("SET search_path TO trio_smith")
        rows = db.execute(f"EXPLAIN {sql}", params).fetchall()
    return "\n".join(str(row[0]) for row in rows)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (lambda ids: EventFilter(correlation_ids={ids[7]}), "events_correlation"),
        (lambda ids: EventFilter(sources={"agents/7"}), "events_source"),
        (lambda ids: EventFilter(source_prefixes={"agents/7"}), "events_source"),
        (lambda ids: EventFilter(types={EventType("billing", "paid")}), "events_type"),
        (lambda ids: EventFilter(since=at(100), until=at(101)), "events_ts"),
        (lambda ids: EventFilter(after_position=5990), "events_pkey"),
    ],
)
async def test_queries_use_their_indexes(
    pg_dsn: str, query: Callable[[list[UUID]], EventFilter], index: str
) -> None:
    async with PostgresEventStore(pg_dsn) as store:
        stored = await store.append_many(
            [
                event(
                    EventType("billing", "paid") if n % 500 == 0 else AgentEvent.STARTED,
                    source=f"agents/{n}",
                    t=n,
                )
                for n in range(6000)
            ]
        )
        ids = [e.id for e in stored]
        with _connect(pg_dsn) as db:
            db.execute("ANALYZE trio_smith.events")
        wanted = query(ids)
        sql, params = read_sql(wanted, 0, None, False, _DIALECT)
        plan = _plan(pg_dsn, sql, params)
        assert index in plan, plan
        assert "Seq Scan" not in plan, plan
        expected = [e for e in stored if wanted.matches(e)]
        assert await store.read(wanted) == expected
        get = f"SELECT {COLUMNS} FROM events WHERE event_id = %s"
        assert "events_event_id" in _plan(pg_dsn, get, [ids[3]])
        last = read_sql(None, 0, 20, True, _DIALECT)
        assert "Index Scan Backward using events_pkey" in _plan(pg_dsn, *last)


async def test_a_damaged_row_is_a_store_corrupt_error_naming_its_position(pg_dsn: str) -> None:
    async with PostgresEventStore(pg_dsn, name="pg") as store:
        stored = await store.append_many([event(), event(), event()])
        with _connect(pg_dsn) as db:
            db.execute("UPDATE trio_smith.events SET type = 'nodot' WHERE position = 2")
        message = (
            "event store 'pg' holds a damaged event at position 2: its type is not an event type "
            "(event type must look like 'category.name', got 'nodot')"
        )
        with pytest.raises(StoreCorrupt, match=f"^{re.escape(message)}$"):
            await store.read()
        assert await store.read(after=2) == stored[2:]


def _server_processes(server: PostgresServer) -> list[int]:
    """The postmaster and its children (the backends)."""
    pid = server.pid
    assert pid is not None
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [pid, *(int(child) for child in children.split())]


async def test_a_server_that_goes_away_is_store_unavailable_and_the_store_resumes(
    private_postgres: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = private_postgres
    async with (
        PostgresEventStore(server.dsn, name="pg", poll_interval=0.05) as store,
        PostgresEventStore(server.dsn, name="other", poll_interval=0.05) as other,
        EventBus(other) as bus,
    ):
        live = bus.subscribe()
        first = await store.append(event())
        await trio.to_thread.run_sync(server.stop)
        for attempt in (store.append(event()), store.read()):
            with pytest.raises(StoreUnavailable, match=r"^event store 'pg' is unavailable: "):
                await attempt
        store.append_nowait(lost := event())
        with pytest.raises(StoreUnavailable):
            await store.append(event())  # after it, the append_nowait has failed too
        assert store.statistics().dropped == 1
        await trio.to_thread.run_sync(server.start)
        second = await store.append(event())
        assert second.position == 2
        assert await store.read() == [first, second]
        assert await store.get(lost.id) is None
        # The other store's notification connection came back, and it missed nothing.
        with trio.fail_after(20):
            assert [await live.receive() for _ in range(2)] == [first, second]
    assert "event store 'other' lost its notification connection" in caplog.text


async def test_a_server_that_stops_answering_is_store_unavailable_within_timeout(
    private_postgres: PostgresServer,
) -> None:
    server = private_postgres
    async with PostgresEventStore(server.dsn, name="pg", timeout=1, poll_interval=0.1) as store:
        first = await store.append(event())
        frozen = _server_processes(server)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            message = (
                "event store 'pg' is unavailable: the server did not answer within timeout (1 s)"
            )
            unanswered = event()
            with trio.fail_after(15):
                with pytest.raises(StoreUnavailable, match=f"^{re.escape(message)}$"):
                    await store.append(unanswered)
                with pytest.raises(StoreUnavailable, match=f"^{re.escape(message)}$"):
                    await store.read()
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        # The unanswered append may have been committed once the server woke
        # (its COMMIT was sent): appending it again is safe, and stores it once.
        again = await store.append(unanswered)
        second = await store.append(event())
        assert [e.id for e in await store.read()] == [first.id, unanswered.id, second.id]
        assert again.position == 2


async def test_payloads_are_json_objects_sql_can_query(pg_dsn: str) -> None:
    async with PostgresEventStore(pg_dsn) as store:
        await store.append(event(payload={"n": 1, "tags": ["a"]}))  # a small batch
        await store.append_many([event(payload={"n": n}) for n in range(2, 302)])  # by COPY
    with _connect(pg_dsn) as db:
        rows = db.execute(
            "SELECT json_typeof(payload), payload->>'n' FROM trio_smith.events ORDER BY position"
        ).fetchall()
    assert rows == [("object", str(n)) for n in range(1, 302)]

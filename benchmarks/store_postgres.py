"""Benchmark: the PostgreSQL event store against raw psycopg floors, on one server, in one run.

Targets (each a ratio of events per second):

1. 64 concurrent publishers (64 trio tasks, each awaiting
   ``await store.append(event)`` in a loop): >= 0.5x raw psycopg with
   64-row transactions (``executemany`` of 64 rows, then ``COMMIT``);
2. ``append_many`` of 1,000 events per call: >= 0.5x raw ``executemany`` of
   1,000 rows per transaction;
3. replay of 100,000 events with ``async for event in store.scan()``:
   >= 0.5x raw psycopg reading the store's columns a page of 1,000 at a time
   (``WHERE position > %s ORDER BY position LIMIT %s`` on one connection,
   with a binary cursor as the store reads) and doing ``json.loads`` of each
   payload.

For information: one publisher awaiting each append against one row per
transaction (an autocommit ``INSERT``: one round trip and one WAL flush per
event); the replay floor with a text cursor; and WRITERS (4) writer OS
processes sharing one store against one process (below).

The floors use plain psycopg (the sync API, one connection, in the main
thread) on a schema of their own holding the store's tables and indexes (the
``_SCHEMA`` statements of ``trio_smith/events/_postgres.py``, run as they
are), with the store's session settings (``search_path``, UTC). A floor row
is the store's own encoding (``_encode`` of that module, plus the position),
encoded inside the timed loop, inserted with ``INSERT INTO events
(<the columns the store writes>) VALUES (%s, ...)``. (The store itself
writes a small batch with one pipelined ``INSERT ... SELECT FROM unnest``
and a large one with binary ``COPY``; the floors are what a plain psycopg
program would do.) Payloads are JSON objects in both (checked).

The server: if ``TRIO_SMITH_PG_DSN`` is set, that server, in a database
created for the run and dropped after it; otherwise a private server that
``tests/postgres.py`` starts on 127.0.0.1 with ``fsync = on`` (durable
commits, as the SQLite benchmark uses ``synchronous=FULL``), closed at the
end. The header prints the server's ``fsync`` and ``synchronous_commit``.
Without PostgreSQL's binaries (and no ``TRIO_SMITH_PG_DSN``) the script says
so and exits 0.

Every append run starts from a schema of its own: a floor's is made, tables
included, before the clock starts; the store creates its own when it opens,
before the clock starts. A store run has its own ``trio.run`` and is
timed from its first append until its last one has returned (the store is
opened before and closed after). Replay reads one schema of 100,000 events
written by the store beforehand (then ``VACUUM ANALYZE``d, so that no
read pays for setting hint bits). The events are built with ``Event.new``
before anything is timed; floor and store write the same objects. After
every run the script asserts that the table holds exactly the events
appended, at positions 1..N, and that the store returned each appender dense
positions (in its own order for a single publisher and for each of the 64
publishers; consecutive for ``append_many``) and the right head; a replay
must yield every event once, at positions 1..N, in order. Each run's schema
is dropped after its checks.

Writer processes: WRITERS fresh interpreters running this script with
``--writer`` (never a fork of a process that has run trio), each opening its
own ``PostgresEventStore`` on the same schema and appending its quarter of
the 64-publisher events with 16 trio tasks awaiting ``store.append`` (each
process group-commits; the processes take turns at the store's advisory
lock). Each opens its store, says "ready" and waits for a line on stdin; the
parent releases them all at once and times from the release until every one
has said "done". The rate is compared with the 64-publisher run of the same
round, and checked like the others.

The number of single-transaction events is scaled to the server's commit
rate (measured first), so the script stays under about 90 s. Floor and store
runs are interleaved over up to ROUNDS rounds (fewer if the time budget runs
out); each run gets a ``gc.collect()``. Each rate is the best over the
rounds; each ratio is the ratio of two best rates, with the min-max of the
per-round ratios in brackets.

For reference, if the environment variable
``TRIO_SMITH_BENCH_EVENTSOURCING`` names a Python interpreter that has
``eventsourcing`` with its PostgreSQL extra (kept out of this project's
dependencies, e.g. in a throwaway venv), each round also times its
``PostgresApplicationRecorder`` as shipped (``PostgresDatastore`` with its
defaults: a pool of one connection, autocommit; ``insert_events`` locks the
table, notifies, inserts and commits in a pipelined transaction) with 1
and with 1,000 events per call, in a subprocess, on a schema of its own of
the same database, against the same raw floors.

It prints a summary table and one PASS/FAIL line per target (it always
exits 0). Run: ``make bench`` or ``.venv/bin/python benchmarks/store_postgres.py``.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
import trio
from _store_bench import (
    BATCH,
    WRITER_TASKS,
    WRITERS,
    Series,
    append_batches,
    append_concurrently,
    append_each,
    check_positions,
    make_events,
    run_writers,
    share_files,
    timed,
    writer_process,
)
from _store_bench import replay as replay_store
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from trio_smith.events import Event, EventStore, PostgresEventStore
from trio_smith.events._postgres import _SCHEMA, _WRITTEN, _encode
from trio_smith.events._sql import COLUMNS

#: Publishers in the group-commit benchmark.
PUBLISHERS = 64
#: Events per batched run (BATCH_EVENTS // BATCH transactions).
BATCH_EVENTS = 20_000
#: Events replayed.
REPLAY_EVENTS = 100_000
#: Rows per page of the replay floor (the store's scan reads pages of 1,000).
PAGE = 1_000
#: Seconds one single-transaction floor run should take, at the measured
#: commit rate, and the bounds on its number of events.
SINGLE_SECONDS = 0.3
SINGLE_MIN, SINGLE_MAX = 100, 3_000
#: Seconds the 64-publisher run should take at 10x the commit rate, and
#: bounds on the appends of each publisher.
CONCURRENT_SECONDS = 0.5
PER_PUBLISHER_MIN, PER_PUBLISHER_MAX = 20, 500
ROUNDS = 5
MIN_ROUNDS = 2
#: No new round starts after this many seconds.
BUDGET = 55.0

CONCURRENT_TARGET = 0.5
BATCH_TARGET = 0.5
REPLAY_TARGET = 0.5

#: The store's own tables and indexes, the columns it writes (in the order
#: of its rows) and the columns it reads, so the floors pay for exactly the
#: same indexes, data and decoding work.
SCHEMA = _SCHEMA
INSERT = f"INSERT INTO events ({_WRITTEN}) VALUES ({', '.join(['%s'] * 9)})"
#: The replay's schema (written once by the store).
REPLAY_SCHEMA = "bench_replay"

Connection = psycopg.Connection[Any]


def encode(event: Event, position: int) -> tuple[Any, ...]:
    """The row the store writes for ``event`` at ``position``."""
    return (position, *_encode(event))


# ---------------------------------------------------------------- helpers


class Database:
    """The run's database: an admin connection, and schemas made and dropped in it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.admin: Connection = psycopg.connect(dsn, autocommit=True)
        self._names = itertools.count(1)

    def new_schema(self) -> str:
        """A schema name not used before in this run (nothing is created)."""
        return f"bench_{next(self._names)}"

    def connect(self, schema: str, *, create: bool, autocommit: bool = True) -> Connection:
        """A raw connection to ``schema``, with the store's session settings.

        With ``create``, the schema and the store's tables and indexes are made first.
        """
        connection: Connection = psycopg.connect(self.dsn, autocommit=True)
        if create:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        connection.execute(f"SET search_path TO \"{schema}\"; SET TIME ZONE 'UTC'")
        if create:
            connection.execute(SCHEMA)
        connection.autocommit = autocommit
        return connection

    def check(self, schema: str, events: Sequence[Event], what: str) -> None:
        """The schema's table holds exactly ``events``, at positions 1..N."""
        row = self.admin.execute(
            f'SELECT count(*), min(position), max(position) FROM "{schema}".events'
        ).fetchone()
        ids = {found[0] for found in self.admin.execute(f'SELECT event_id FROM "{schema}".events')}
        n = len(events)
        if row != (n, 1, n):
            raise AssertionError(f"{what}: table holds {row} (count, min, max), expected {n}")
        if ids != {event.id for event in events}:
            raise AssertionError(f"{what}: the table does not hold the events appended")

    def drop(self, schema: str) -> None:
        self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def close(self) -> None:
        self.admin.close()


def commit_rate(db: Database, seconds: float = 0.3) -> float:
    """Autocommit one-row INSERTs per second into a one-column table (a durable commit's floor)."""
    schema = db.new_schema()
    connection = db.connect(schema, create=False)
    try:
        connection.execute(f'CREATE SCHEMA "{schema}"; CREATE TABLE probe (x bigint)')
        n = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            connection.execute("INSERT INTO probe VALUES (%s)", (n,))
            n += 1
    finally:
        connection.close()
        db.drop(schema)
    return n / elapsed


# ---------------------------------------------------------------- floors


def raw_single(db: Database, events: Sequence[Event]) -> float:
    """Seconds: one autocommit ``INSERT`` (a transaction) per event."""
    schema = db.new_schema()
    connection = db.connect(schema, create=True)
    execute = connection.execute
    gc.collect()
    start = time.perf_counter()
    for position, event in enumerate(events, 1):
        execute(INSERT, encode(event, position))
    elapsed = time.perf_counter() - start
    connection.close()
    db.check(schema, events, "raw 1/txn")
    db.drop(schema)
    return elapsed


def raw_batched(db: Database, events: Sequence[Event], batch: int) -> float:
    """Seconds: ``executemany`` of ``batch`` rows per transaction, then ``COMMIT``."""
    schema = db.new_schema()
    connection = db.connect(schema, create=True, autocommit=False)
    cursor = connection.cursor()
    gc.collect()
    start = time.perf_counter()
    for first in range(0, len(events), batch):
        cursor.executemany(
            INSERT, [encode(e, p) for p, e in enumerate(events[first : first + batch], first + 1)]
        )
        connection.commit()
    elapsed = time.perf_counter() - start
    connection.close()
    db.check(schema, events, f"raw executemany {batch}")
    db.drop(schema)
    return elapsed


def raw_replay(db: Database, n: int, *, binary: bool) -> float:
    """Seconds: read every row, a page of PAGE at a time, ``json.loads`` each payload."""
    connection = db.connect(REPLAY_SCHEMA, create=False)
    cursor = connection.cursor(binary=binary)
    sql = f"SELECT {COLUMNS} FROM events WHERE position > %s ORDER BY position LIMIT %s"
    loads = json.loads
    count = 0
    last = 0
    gc.collect()
    start = time.perf_counter()
    while True:
        rows = cursor.execute(sql, (last, PAGE)).fetchall()
        for row in rows:
            payload = row[7]
            # psycopg's json loader has parsed the column already (the JSON
            # decode of the floor); text would be parsed here.
            if type(payload) is str:
                loads(payload)
        count += len(rows)
        if len(rows) < PAGE:
            break
        last = rows[-1][0]
    elapsed = time.perf_counter() - start
    connection.close()
    if count != n:
        raise AssertionError(f"raw replay read {count} events, expected {n}")
    return elapsed


# ---------------------------------------------------------------- store


def _open(db: Database, schema: str) -> Callable[[], PostgresEventStore]:
    return lambda: PostgresEventStore(db.dsn, schema=schema)


def _store_run(
    db: Database,
    events: Sequence[Event],
    body: Callable[[EventStore], Awaitable[list[list[int]]]],
    what: str,
) -> float:
    """Seconds ``body`` took on a new schema; checks positions and table, drops the schema."""
    schema = db.new_schema()
    elapsed, positions = timed(_open(db, schema), body, len(events))
    check_positions(positions, len(events), what)
    db.check(schema, events, what)
    db.drop(schema)
    return elapsed


def store_single(db: Database, events: Sequence[Event]) -> float:
    """Seconds: one publisher awaiting each ``await store.append(event)``."""
    return _store_run(db, events, lambda s: append_each(s, events), "store append")


def store_concurrent(db: Database, events: Sequence[Event]) -> float:
    """Seconds: PUBLISHERS tasks, each awaiting ``store.append`` of its share in a loop."""
    return _store_run(
        db,
        events,
        lambda s: append_concurrently(s, events, PUBLISHERS),
        f"store {PUBLISHERS} publishers",
    )


def store_many(db: Database, events: Sequence[Event]) -> float:
    """Seconds: ``await store.append_many(events[i:i + BATCH])`` in turn."""
    return _store_run(db, events, lambda s: append_batches(s, events), "store append_many")


def write_replay_schema(db: Database, events: Sequence[Event]) -> None:
    """Write the replay's events with the store; check its payloads are JSON objects."""

    async def main() -> None:
        async with PostgresEventStore(db.dsn, schema=REPLAY_SCHEMA) as store:
            for first in range(0, len(events), BATCH):
                await store.append_many(events[first : first + BATCH])

    trio.run(main)
    db.check(REPLAY_SCHEMA, events, "replay schema")
    db.admin.execute(f'VACUUM ANALYZE "{REPLAY_SCHEMA}".events')
    row = db.admin.execute(
        f'SELECT json_typeof(payload) FROM "{REPLAY_SCHEMA}".events WHERE position = 1'
    ).fetchone()
    if row is None or row[0] != "object":
        raise AssertionError(f"the store's payloads are not JSON objects: {row!r}")


def store_writers(db: Database, events: Sequence[Event], shares: list[str]) -> tuple[float, int]:
    """Seconds: WRITERS processes, each with its own store on one schema, released together.

    Also returns the transactions the processes committed in all.
    """
    schema = db.new_schema()

    async def create() -> None:
        async with PostgresEventStore(db.dsn, schema=schema):
            pass  # the schema and its tables exist before the processes open them

    trio.run(create)
    orders = [
        {"dsn": db.dsn, "schema": schema, "events": share, "tasks": WRITER_TASKS}
        for share in shares
    ]
    elapsed, positions, transactions = run_writers(__file__, orders)
    check_positions(positions, len(events), f"{WRITERS} writer processes")
    db.check(schema, events, f"{WRITERS} writer processes")
    db.drop(schema)
    return elapsed, transactions


# ---------------------------------------------------------------- eventsourcing

#: Run by the eventsourcing interpreter: stdin has one JSON line (the
#: connection's parts, the schema, the counts); prints the seconds of each
#: part, and psycopg's implementation, as JSON.
ES_SCRIPT = """
import json, sys, time, uuid
import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
c = json.loads(sys.stdin.readline())
single, batched, batch = c["single"], c["batched"], c["batch"]
datastore = PostgresDatastore(
    c["dbname"], c["host"], c["port"], c["user"], c["password"], schema=c["schema"]
)
recorder = PostgresApplicationRecorder(datastore)
recorder.create_table()
def build(n):
    return [
        StoredEvent(
            uuid.uuid4(),
            1,
            "bench:Stored",
            json.dumps({"i": i, "name": f"item-{i}", "ok": True}, separators=(",", ":")).encode(),
        )
        for i in range(n)
    ]
ones, many = build(single), build(batched)
start = time.perf_counter()
for stored in ones:
    recorder.insert_events([stored])
mid = time.perf_counter()
for first in range(0, batched, batch):
    recorder.insert_events(many[first : first + batch])
end = time.perf_counter()
assert recorder.max_notification_id() == single + batched
datastore.close()
print(json.dumps({"single": mid - start, "batched": end - mid, "psycopg": psycopg.pq.__impl__}))
"""


class EventsourcingFailed(Exception):
    """The eventsourcing interpreter failed (not installed, say); the message has why."""


def eventsourcing(python: str, db: Database, single: int, batched: int) -> tuple[float, float, str]:
    """Seconds of eventsourcing's 1-per-call and BATCH-per-call appends; its psycopg's kind."""
    schema = db.new_schema()
    db.admin.execute(f'CREATE SCHEMA "{schema}"')
    params = conninfo_to_dict(db.dsn)
    orders = {
        "dbname": params.get("dbname", ""),
        "host": params.get("host", ""),
        "port": params.get("port", ""),
        "user": params.get("user", ""),
        "password": params.get("password", ""),
        "schema": schema,
        "single": single,
        "batched": batched,
        "batch": BATCH,
    }
    try:
        done = subprocess.run(
            [python, "-c", ES_SCRIPT],
            input=json.dumps(orders) + "\n",
            check=False,
            capture_output=True,
            text=True,
        )
    finally:
        db.drop(schema)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise EventsourcingFailed(f"{python}: {lines[-1]}")
    seconds = json.loads(done.stdout)
    return float(seconds["single"]), float(seconds["batched"]), str(seconds["psycopg"])


# ---------------------------------------------------------------- report


def start_server() -> tuple[str, Callable[[], None], str] | None:
    """The server's DSN, how to let it go, and what it is; None (said why) if there is none."""
    dsn = os.environ.get("TRIO_SMITH_PG_DSN")
    if dsn:
        return dsn, lambda: None, "the server of TRIO_SMITH_PG_DSN"
    # benchmarks/ scripts run as `python benchmarks/store_postgres.py`, so
    # sys.path[0] is benchmarks/, not the repository's root, and the test
    # suite's server helper (tests/postgres.py) would not be found.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.postgres import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer.start_new(fsync=True)
    except PostgresUnavailable as exc:
        print(
            f"PostgreSQL benchmark skipped: {exc.reason} (Debian: apt-get install postgresql;"
            " or set TRIO_SMITH_PG_DSN to a server where this user may create databases)"
        )
        return None
    return server.dsn, server.close, "a private server on 127.0.0.1 (tests/postgres.py)"


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    wall = time.perf_counter()
    started = start_server()
    if started is None:
        return
    server_dsn, stop_server, where = started
    database = f"trio_smith_bench_{os.getpid()}"
    try:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        try:
            dsn = make_conninfo(server_dsn, dbname=database)
            db = Database(dsn)
            try:
                run(db, where, wall)
            finally:
                db.close()
        finally:
            with psycopg.connect(server_dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        stop_server()
    print(f"\n(the script took {time.perf_counter() - wall:.0f} s)")


def run(db: Database, where: str, wall: float) -> None:
    es_python = os.environ.get("TRIO_SMITH_BENCH_EVENTSOURCING")
    settings = {
        name: str(db.admin.execute(f"SHOW {name}").fetchall()[0][0])
        for name in ("server_version", "fsync", "synchronous_commit")
    }
    with tempfile.TemporaryDirectory(prefix="trio_smith-bench-") as directory:
        rate = commit_rate(db)
        n_single = max(SINGLE_MIN, min(SINGLE_MAX, round(rate * SINGLE_SECONDS)))
        per_publisher = max(
            PER_PUBLISHER_MIN,
            min(PER_PUBLISHER_MAX, round(rate * 10 * CONCURRENT_SECONDS / PUBLISHERS)),
        )
        n_concurrent = per_publisher * PUBLISHERS
        events = make_events(max(REPLAY_EVENTS, n_concurrent, BATCH_EVENTS, n_single))
        single = events[:n_single]
        concurrent = events[:n_concurrent]
        batched = events[:BATCH_EVENTS]
        replay = events[:REPLAY_EVENTS]
        write_replay_schema(db, replay)
        shares = share_files(directory, concurrent)

        # Warm-up (every variant once, small, checked like the others).
        warm = events[: PUBLISHERS * 4]
        raw_single(db, warm)
        raw_batched(db, warm, PUBLISHERS)
        raw_batched(db, warm, BATCH)
        store_single(db, warm)
        store_concurrent(db, warm)
        store_many(db, warm)

        one = Series("1 publisher, await append", None, floor="1 row per txn (autocommit)")
        many = Series(
            f"{PUBLISHERS} publishers, await append",
            CONCURRENT_TARGET,
            floor=f"executemany {PUBLISHERS}/txn",
        )
        shared = Series(
            f"{WRITERS} processes x {WRITER_TASKS} tasks (1)",
            None,
            floor=f"1 process x {PUBLISHERS} tasks",
        )
        batch = Series(
            f"append_many of {BATCH:,}", BATCH_TARGET, floor=f"executemany {BATCH:,}/txn"
        )
        scan = Series(
            f"replay of {REPLAY_EVENTS:,}, scan()",
            REPLAY_TARGET,
            floor="binary pages + json.loads",
        )
        scan_text = Series(
            f"replay of {REPLAY_EVENTS:,}, scan()", None, floor="text pages + json.loads"
        )
        es_one = Series("eventsourcing, 1 per call (2)", None, floor=one.floor)
        es_many = Series(f"eventsourcing, {BATCH:,} per call (2)", None, floor=batch.floor)
        es_psycopg = ""
        es_failed = ""
        commits: list[int] = []

        rounds = 0
        while rounds < ROUNDS and (rounds < MIN_ROUNDS or time.perf_counter() - wall < BUDGET):
            rounds += 1
            raw_1 = raw_single(db, single)
            one.add(n_single, raw_1, n_single, store_single(db, single))
            raw_64 = raw_batched(db, concurrent, PUBLISHERS)
            store_64 = store_concurrent(db, concurrent)
            many.add(n_concurrent, raw_64, n_concurrent, store_64)
            writers, transactions = store_writers(db, concurrent, shares)
            shared.add(n_concurrent, store_64, n_concurrent, writers)
            commits.append(transactions)
            raw_b = raw_batched(db, batched, BATCH)
            batch.add(BATCH_EVENTS, raw_b, BATCH_EVENTS, store_many(db, batched))
            if es_python and not es_failed:
                try:
                    es_1, es_b, es_psycopg = eventsourcing(es_python, db, n_single, BATCH_EVENTS)
                except EventsourcingFailed as exc:
                    es_failed = str(exc)
                else:
                    es_one.add(n_single, raw_1, n_single, es_1)
                    es_many.add(BATCH_EVENTS, raw_b, BATCH_EVENTS, es_b)
            raw_r = raw_replay(db, REPLAY_EVENTS, binary=True)
            text_r = raw_replay(db, REPLAY_EVENTS, binary=False)
            store_r = replay_store(_open(db, REPLAY_SCHEMA), replay)
            scan.add(REPLAY_EVENTS, raw_r, REPLAY_EVENTS, store_r)
            scan_text.add(REPLAY_EVENTS, text_r, REPLAY_EVENTS, store_r)

    print(
        f"PostgresEventStore against raw psycopg {psycopg.__version__} with the same schema"
        f" (best of {rounds} interleaved rounds; in brackets the min-max of the per-round"
        f" ratios)\nserver: {where}, PostgreSQL {settings['server_version']}, fsync"
        f" {settings['fsync']}, synchronous_commit {settings['synchronous_commit']}\n"
        f"commit floor (autocommit 1-row INSERT): {rate:,.0f}/s; events per run:"
        f" {n_single:,} (1 publisher), {n_concurrent:,} ({PUBLISHERS} publishers and"
        f" {WRITERS} processes), {BATCH_EVENTS:,} (batched), {REPLAY_EVENTS:,} (replay)"
    )
    rows = [one, many, shared, batch, scan, scan_text]
    if es_one.base:
        rows += [es_one, es_many]
    print(
        f"\n{'figure (events/s)':<38}{'floor':<28}{'floor/s':>10}{'store/s':>10}"
        f"{'ratio':>7}  {'(rounds)':<11}  target"
    )
    for series in rows:
        target = "-" if series.target is None else f">= {series.target:g}x"
        print(
            f"{series.name:<38}{series.floor:<28}{max(series.base):>10,.0f}"
            f"{max(series.subject):>10,.0f}{series.ratio:>6.2f}x  ({series.spread():<9})"
            f"  {target}"
        )
    mean_commits = sum(commits) / len(commits)
    print(
        f"(1) {WRITERS} writer processes, each with its own store on one schema and"
        f" {WRITER_TASKS} tasks awaiting append, released together, against one process"
        f" with {PUBLISHERS} tasks (the {PUBLISHERS}-publisher run of the same round; the"
        f" same {n_concurrent:,} events): what sharing the store's lock costs;"
        f" {mean_commits:,.0f} commits per run in all ({n_concurrent / mean_commits:.1f}"
        f" events each)"
    )
    if es_one.base:
        print(
            "(2) eventsourcing's PostgresApplicationRecorder (psycopg implementation:"
            f" {es_psycopg}), against the same raw floors"
        )
    if es_failed:
        print(f"(eventsourcing reference failed, skipped from then on: {es_failed})")
    elif not es_python:
        print(
            "(eventsourcing reference skipped: set TRIO_SMITH_BENCH_EVENTSOURCING to a Python"
            " that has eventsourcing[postgres])"
        )
    print()
    for series in (many, batch, scan):
        assert series.target is not None
        print(
            f"{'PASS' if series.passed else 'FAIL'} {series.name}: {series.ratio:.2f}x floor"
            f" (target >= {series.target:g}x)"
        )


if __name__ == "__main__":
    if sys.argv[1:] == ["--writer"]:
        writer_process(lambda orders: PostgresEventStore(orders["dsn"], schema=orders["schema"]))
    else:
        main()

"""Benchmark: the SQLite event store against raw sqlite3 floors, in one run.

Targets (docs/performance.md; design rule 21 for group commit), all
with ``synchronous="FULL"``, each a ratio of events per second:

1. one publisher awaiting each ``await store.append(event)``: >= 0.8x the
   raw floor of one transaction per event;
2. 64 concurrent publishers (64 trio tasks, each awaiting its appends in a
   loop): >= 8x that same floor (group commit);
3. ``append_many`` of 1,000 events per call: >= 0.5x raw ``executemany`` of
   1,000 rows per transaction;
4. replay of 100,000 events with ``async for event in store.scan()``:
   >= 0.7x raw sqlite3 reading the rows a page of 1,000 at a time and doing
   ``json.loads`` of each payload.

The floors use plain ``sqlite3`` in the main thread, on a file with the
store's own schema (the ``CREATE TABLE``/``INDEX`` statements of
``trio_smith/events/_sqlite.py``, copied below) and PRAGMAs (WAL,
``synchronous=FULL``, ``busy_timeout``). A floor transaction is
``BEGIN IMMEDIATE; INSERT ...; COMMIT`` with the row encoded as the store
encodes it (16-byte ids, UTC microseconds, compact JSON payload), encoding
inside the timed loop. Targets 1-3 are also measured with
``synchronous="NORMAL"``, for information.

Also for information (no target), what sharing one file costs: WRITERS (4)
writer OS processes, each a fresh interpreter running this script with
``--writer`` (never a fork of a process that has run trio), each opening its
own ``SQLiteEventStore(path, synchronous="FULL")`` on the same file and
appending its quarter of the 64-publisher events with 16 trio tasks awaiting
``store.append`` (so each process group-commits, and the processes contend
for the file's write lock). Each opens its store, says "ready" and waits for
a line on stdin; the parent releases them all at once and times from the
release until every one has said "done" (its last append returned). The
rate is compared with the 64-publisher run (one process, 64 tasks, the same
events) of the same round; the processes run last in each round, so that
the other runs follow each other as they did before. Afterwards the file must hold exactly those
events at positions 1..N, and the positions the processes' stores returned
must be 1..N, each once, increasing for every task.

Every append run starts from an empty file, made (schema included) before
the clock starts; a run is timed from its first append until its last one
has returned (the store is opened before and closed after). Replay reads one
file of 100,000 events written by the store beforehand. The events are built
with ``Event.new`` before anything is timed; floor and store write the same
objects. After every run the script asserts that the file holds exactly the
events appended, at positions 1..N, and that the store returned each
appender dense positions (in its own order for a single publisher and for
each of the 64 publishers; consecutive for ``append_many``) and the right
head; a replay must yield every event once, at positions 1..N, in order.

The number of single-transaction events is scaled to this machine's fsync
rate (measured first: a 200-byte write and ``os.fsync``), so the script stays
under about 90 s on a slow disk. Floor and store runs are interleaved over
up to ROUNDS rounds (fewer if the time budget runs out); each run gets a
``gc.collect()`` and, for the store, its own ``trio.run``. Each rate is the
best over the rounds (other work only ever slows a run down); each ratio is
the ratio of two best rates, with the min-max of the per-round ratios in
brackets.

For reference, if the environment variable
``TRIO_SMITH_BENCH_EVENTSOURCING`` names a Python interpreter that has the
``eventsourcing`` package (kept out of this project's dependencies, e.g. in
a throwaway venv), each round also times its ``SQLiteApplicationRecorder``
as shipped (WAL, the build's default ``synchronous``, which is FULL on
usual builds): ``insert_events`` with 1 and with 1,000 events per call, in a
subprocess, against the same raw floors.

It prints a summary table and one PASS/FAIL line per target (it always
exits 0). Run: ``make bench`` or ``.venv/bin/python benchmarks/store.py``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import queue
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

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

from trio_smith.events import Event, SQLiteEventStore
from trio_smith.events._sql import COLUMNS
from trio_smith.events._sqlite import _INSERT, _SCHEMA, _encode

Sync = Literal["FULL", "NORMAL"]

#: Publishers in the group-commit benchmark.
PUBLISHERS = 64
#: Events per batched run (BATCH_EVENTS // BATCH transactions).
BATCH_EVENTS = 20_000
#: Events replayed.
REPLAY_EVENTS = 100_000
#: Rows per page of the replay floor (the store's scan reads pages of 1,000).
PAGE = 1_000
#: Seconds one single-transaction floor run should take, at the measured
#: fsync rate, and the bounds on its number of events.
SINGLE_SECONDS = 0.25
SINGLE_MIN, SINGLE_MAX = 100, 3_000
#: Events of one publisher-awaits-each run with synchronous=NORMAL.
SINGLE_NORMAL = 3_000
#: Seconds the 64-publisher run should take at 10x the fsync rate, and
#: bounds on the appends of each publisher.
CONCURRENT_SECONDS = 0.25
PER_PUBLISHER_MIN, PER_PUBLISHER_MAX = 20, 500
ROUNDS = 5
MIN_ROUNDS = 2
#: No new round starts after this many seconds.
BUDGET = 60.0

SINGLE_TARGET = 0.8
CONCURRENT_TARGET = 8.0
BATCH_TARGET = 0.5
REPLAY_TARGET = 0.7

#: The store's own tables, indexes, columns, INSERT and row encoding, so the
#: floors pay for exactly the same indexes and encoding as the store.
SCHEMA = _SCHEMA
INSERT = _INSERT


def encode(event: Event, position: int) -> tuple[Any, ...]:
    """The row the store inserts for ``event`` at ``position``."""
    return (position, *_encode(event))


_files = itertools.count(1)


# ---------------------------------------------------------------- helpers


def new_path(directory: str) -> str:
    return os.path.join(directory, f"store-{next(_files)}.db")


def remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def connect(path: str, synchronous: Sync) -> sqlite3.Connection:
    """A raw connection with the store's PRAGMAs, and its schema created."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(SCHEMA)
    return db


def check_file(path: str, events: Sequence[Event], what: str) -> None:
    """The file holds exactly ``events``, at positions 1..N."""
    db = sqlite3.connect(path)
    try:
        count, low, high = db.execute(
            "SELECT count(*), min(position), max(position) FROM events"
        ).fetchone()
        ids = {row[0] for row in db.execute("SELECT event_id FROM events")}
    finally:
        db.close()
    n = len(events)
    if (count, low, high) != (n, 1, n):
        raise AssertionError(f"{what}: file holds {count} events at {low}..{high}, expected {n}")
    if ids != {event.id.bytes for event in events}:
        raise AssertionError(f"{what}: the file does not hold the events appended")


def fsync_rate(directory: str, seconds: float = 0.3) -> float:
    """200-byte appends + ``os.fsync`` per second (the floor of every durable commit)."""
    path = os.path.join(directory, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        n = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            n += 1
    finally:
        os.close(fd)
        os.remove(path)
    return n / elapsed


# ---------------------------------------------------------------- floors


def raw_single(directory: str, events: Sequence[Event], synchronous: Sync) -> float:
    """Seconds: one ``BEGIN IMMEDIATE; INSERT; COMMIT`` per event."""
    path = new_path(directory)
    db = connect(path, synchronous)
    execute = db.execute
    gc.collect()
    start = time.perf_counter()
    for position, event in enumerate(events, 1):
        execute("BEGIN IMMEDIATE")
        execute(INSERT, encode(event, position))
        execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    check_file(path, events, f"raw 1/txn {synchronous}")
    remove(path)
    return elapsed


def raw_batched(
    directory: str, events: Sequence[Event], synchronous: Sync, batch: int = BATCH
) -> float:
    """Seconds: ``executemany`` of ``batch`` rows per transaction."""
    path = new_path(directory)
    db = connect(path, synchronous)
    gc.collect()
    start = time.perf_counter()
    for first in range(0, len(events), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            INSERT,
            [encode(e, p) for p, e in enumerate(events[first : first + batch], first + 1)],
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    check_file(path, events, f"raw executemany {batch} {synchronous}")
    remove(path)
    return elapsed


def raw_replay(path: str, n: int) -> float:
    """Seconds: read every row, a page of PAGE at a time, ``json.loads`` each payload."""
    db = sqlite3.connect(path, isolation_level=None)
    sql = f"SELECT {COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
    loads = json.loads
    count = 0
    last = 0
    gc.collect()
    start = time.perf_counter()
    while True:
        rows = db.execute(sql, (last, PAGE)).fetchall()
        for row in rows:
            loads(row[7])
        count += len(rows)
        if len(rows) < PAGE:
            break
        last = rows[-1][0]
    elapsed = time.perf_counter() - start
    db.close()
    if count != n:
        raise AssertionError(f"raw replay read {count} events, expected {n}")
    return elapsed


# ---------------------------------------------------------------- store


def _open(path: str, synchronous: Sync = "FULL") -> Callable[[], SQLiteEventStore]:
    return lambda: SQLiteEventStore(path, synchronous=synchronous)


def store_single(directory: str, events: Sequence[Event], synchronous: Sync) -> float:
    """Seconds: one publisher awaiting each ``await store.append(event)``."""
    path = new_path(directory)
    elapsed, positions = timed(
        _open(path, synchronous), lambda s: append_each(s, events), len(events)
    )
    check_positions(positions, len(events), f"store append {synchronous}")
    check_file(path, events, f"store append {synchronous}")
    remove(path)
    return elapsed


def store_concurrent(directory: str, events: Sequence[Event], synchronous: Sync) -> float:
    """Seconds: PUBLISHERS tasks, each awaiting ``store.append`` of its share in a loop."""
    path = new_path(directory)
    elapsed, positions = timed(
        _open(path, synchronous),
        lambda s: append_concurrently(s, events, PUBLISHERS),
        len(events),
    )
    check_positions(positions, len(events), f"store {PUBLISHERS} publishers {synchronous}")
    check_file(path, events, f"store {PUBLISHERS} publishers {synchronous}")
    remove(path)
    return elapsed


def store_many(directory: str, events: Sequence[Event], synchronous: Sync) -> float:
    """Seconds: ``await store.append_many(events[i:i + BATCH])`` in turn."""
    path = new_path(directory)
    elapsed, positions = timed(
        _open(path, synchronous), lambda s: append_batches(s, events), len(events)
    )
    check_positions(positions, len(events), f"store append_many {synchronous}")
    check_file(path, events, f"store append_many {synchronous}")
    remove(path)
    return elapsed


def write_replay_file(directory: str, events: Sequence[Event]) -> str:
    path = os.path.join(directory, "replay.db")

    async def main() -> None:
        async with SQLiteEventStore(path, synchronous="NORMAL") as store:
            for first in range(0, len(events), BATCH):
                await store.append_many(events[first : first + BATCH])

    trio.run(main)
    check_file(path, events, "replay file")
    return path


def thread_hops_us(calls: int = 2_000, windows: int = 3) -> tuple[float, float]:
    """Microseconds per no-op round trip to a thread (best of ``windows``).

    Returns ``trio.to_thread.run_sync`` (reads pay one per page) and the
    writer's own hop: a ``SimpleQueue`` to a thread that answers with
    ``run_sync_soon`` (appends pay one per commit).
    """

    def noop() -> None:
        pass

    async def main() -> tuple[float, float]:
        limiter = trio.CapacityLimiter(1)
        token = trio.lowlevel.current_trio_token()
        requests: queue.SimpleQueue[trio.lowlevel.Task | None] = queue.SimpleQueue()

        def answer() -> None:
            while (task := requests.get()) is not None:
                token.run_sync_soon(trio.lowlevel.reschedule, task)

        worker = threading.Thread(target=answer, daemon=True)
        worker.start()
        to_thread = writer = float("inf")
        for _ in range(windows):
            start = time.perf_counter()
            for _ in range(calls):
                await trio.to_thread.run_sync(noop, limiter=limiter)
            to_thread = min(to_thread, time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(calls):
                requests.put(trio.lowlevel.current_task())
                await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
            writer = min(writer, time.perf_counter() - start)
        requests.put(None)
        worker.join()
        return to_thread / calls * 1e6, writer / calls * 1e6

    gc.collect()
    return trio.run(main)


def store_writers(directory: str, events: Sequence[Event], shares: list[str]) -> tuple[float, int]:
    """Seconds: WRITERS processes, each with its own store on one file, released together.

    Also returns the transactions the processes committed in all.
    """
    path = new_path(directory)

    async def create() -> None:
        async with SQLiteEventStore(path):
            pass  # the file and its schema exist before the processes open it

    trio.run(create)
    orders = [{"path": path, "events": share, "tasks": WRITER_TASKS} for share in shares]
    elapsed, positions, transactions = run_writers(__file__, orders)
    check_positions(positions, len(events), f"{WRITERS} writer processes")
    check_file(path, events, f"{WRITERS} writer processes")
    remove(path)
    return elapsed, transactions


# ---------------------------------------------------------------- eventsourcing

#: Run by the eventsourcing interpreter: argv = path, single, batched, batch;
#: prints the seconds of each part as JSON.
ES_SCRIPT = """
import json, sys, time, uuid
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
path, single, batched, batch = sys.argv[1], *map(int, sys.argv[2:])
recorder = SQLiteApplicationRecorder(SQLiteDatastore(path))
recorder.create_table()
def build(n):
    return [
        StoredEvent(uuid.uuid4(), 1, "bench:Stored", json.dumps({"i": i}).encode())
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
print(json.dumps({"single": mid - start, "batched": end - mid}))
"""


def eventsourcing(python: str, directory: str, single: int, batched: int) -> tuple[float, float]:
    """Seconds of eventsourcing's 1-per-call and BATCH-per-call appends."""
    path = new_path(directory)
    out = subprocess.run(
        [python, "-c", ES_SCRIPT, path, str(single), str(batched), str(BATCH)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    remove(path)
    seconds = json.loads(out)
    return float(seconds["single"]), float(seconds["batched"])


# ---------------------------------------------------------------- report


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    wall = time.perf_counter()
    es_python = os.environ.get("TRIO_SMITH_BENCH_EVENTSOURCING")
    with tempfile.TemporaryDirectory(prefix="trio_smith-bench-") as directory:
        fsync = fsync_rate(directory)
        n_single = max(SINGLE_MIN, min(SINGLE_MAX, round(fsync * SINGLE_SECONDS)))
        per_publisher = max(
            PER_PUBLISHER_MIN,
            min(PER_PUBLISHER_MAX, round(fsync * 10 * CONCURRENT_SECONDS / PUBLISHERS)),
        )
        n_concurrent = per_publisher * PUBLISHERS
        events = make_events(max(REPLAY_EVENTS, n_concurrent, BATCH_EVENTS, SINGLE_NORMAL))
        single = {"FULL": events[:n_single], "NORMAL": events[:SINGLE_NORMAL]}
        concurrent = events[:n_concurrent]
        batched = events[:BATCH_EVENTS]
        replay = events[:REPLAY_EVENTS]
        replay_path = write_replay_file(directory, replay)
        shares = share_files(directory, concurrent)

        # Warm-up (every variant once, small, checked like the others).
        warm = events[: PUBLISHERS * 4]
        for sync in ("FULL", "NORMAL"):
            raw_single(directory, warm, sync)
            raw_batched(directory, warm, sync)
            store_single(directory, warm, sync)
            store_concurrent(directory, warm, sync)
            store_many(directory, warm, sync)

        modes: tuple[Sync, ...] = ("FULL", "NORMAL")
        one = {m: Series(f"1 publisher, await append ({m})", None) for m in modes}
        many = {m: Series(f"{PUBLISHERS} publishers, await append ({m})", None) for m in modes}
        ceiling = {m: Series(f"raw, {PUBLISHERS} rows per txn ({m}) (1)", None) for m in modes}
        batch = {m: Series(f"append_many of {BATCH:,} ({m})", None) for m in modes}
        one["FULL"].target = SINGLE_TARGET
        many["FULL"].target = CONCURRENT_TARGET
        batch["FULL"].target = BATCH_TARGET
        scan = Series(f"replay of {REPLAY_EVENTS:,}, scan()", REPLAY_TARGET)
        shared = Series(f"{WRITERS} processes x {WRITER_TASKS} tasks (FULL) (3)", None)
        shared_commits: list[int] = []
        es_one = Series("eventsourcing, 1 per call (2)", None)
        es_many = Series(f"eventsourcing, {BATCH:,} per call (2)", None)

        rounds = 0
        hop = writer_hop = float("inf")
        store_64: dict[Sync, float] = {}
        while rounds < ROUNDS and (rounds < MIN_ROUNDS or time.perf_counter() - wall < BUDGET):
            rounds += 1
            for m in modes:
                evs = single[m]
                raw_1 = raw_single(directory, evs, m)
                one[m].add(len(evs), raw_1, len(evs), store_single(directory, evs, m))
                store_64[m] = store_concurrent(directory, concurrent, m)
                many[m].add(len(evs), raw_1, n_concurrent, store_64[m])
                raw_64 = raw_batched(directory, concurrent, m, PUBLISHERS)
                ceiling[m].add(len(evs), raw_1, n_concurrent, raw_64)
                raw_b = raw_batched(directory, batched, m)
                store_b = store_many(directory, batched, m)
                batch[m].add(BATCH_EVENTS, raw_b, BATCH_EVENTS, store_b)
                if m == "FULL" and es_python:
                    es_1, es_b = eventsourcing(es_python, directory, len(evs), BATCH_EVENTS)
                    es_one.add(len(evs), raw_1, len(evs), es_1)
                    es_many.add(BATCH_EVENTS, raw_b, BATCH_EVENTS, es_b)
            hops = thread_hops_us()
            hop, writer_hop = min(hop, hops[0]), min(writer_hop, hops[1])
            scan.add(
                REPLAY_EVENTS,
                raw_replay(replay_path, REPLAY_EVENTS),
                REPLAY_EVENTS,
                replay_store(_open(replay_path), replay),
            )
            # Last in the round, so the runs above follow each other as they
            # always have.
            writers, commits = store_writers(directory, concurrent, shares)
            shared.add(n_concurrent, store_64["FULL"], n_concurrent, writers)
            shared_commits.append(commits)

    print(
        f"SQLiteEventStore against raw sqlite3 with the same schema, WAL"
        f" (best of {rounds} interleaved rounds; in brackets the min-max of the per-round"
        f" ratios)\nfsync floor (200 B write + fsync): {fsync:,.0f}/s; events per run:"
        f" {n_single:,} (1 publisher, FULL), {SINGLE_NORMAL:,} (NORMAL),"
        f" {n_concurrent:,} ({PUBLISHERS} publishers), {BATCH_EVENTS:,} (batched),"
        f" {REPLAY_EVENTS:,} (replay)"
    )
    rows: list[tuple[Series, str]] = []
    for m in modes:
        rows += [
            (one[m], "1 txn per event"),
            (many[m], "1 txn per event"),
            (ceiling[m], "1 txn per event"),
            (batch[m], f"executemany {BATCH:,}/txn"),
        ]
        if m == "FULL":
            rows.append((shared, f"1 process x {PUBLISHERS} tasks"))
    rows.append((scan, "rows + json.loads"))
    if es_python:
        rows += [(es_one, "1 txn per event"), (es_many, f"executemany {BATCH:,}/txn")]
    print(
        f"\n{'figure (events/s)':<40}{'floor':<26}{'floor/s':>10}{'store/s':>10}"
        f"{'ratio':>7}  {'(rounds)':<11}  target"
    )
    for series, floor in rows:
        target = "-" if series.target is None else f">= {series.target:g}x"
        print(
            f"{series.name:<40}{floor:<26}{max(series.base):>10,.0f}{max(series.subject):>10,.0f}"
            f"{series.ratio:>6.2f}x  ({series.spread():<9})  {target}"
        )
    print(
        f"(1) raw sqlite3 with {PUBLISHERS}-row transactions (executemany): what"
        f" {PUBLISHERS} publishers awaiting each append can reach at best"
    )
    if es_python:
        print("(2) eventsourcing's SQLiteApplicationRecorder, against the raw FULL floors")
    else:
        print(
            "(eventsourcing reference skipped: set TRIO_SMITH_BENCH_EVENTSOURCING to a Python"
            " that has it)"
        )
    mean_commits = sum(shared_commits) / len(shared_commits)
    print(
        f"(3) {WRITERS} writer processes, each with its own store on one file and"
        f" {WRITER_TASKS} tasks awaiting append, released together, against one process"
        f" with {PUBLISHERS} tasks (the {PUBLISHERS}-publisher run of the same round;"
        f" the same {n_concurrent:,} events): what sharing the file's write lock costs;"
        f" {mean_commits:,.0f} commits per run in all"
        f" ({n_concurrent / mean_commits:.1f} events each)"
    )
    print(
        f"no-op round trips to a thread: the writer's queue + run_sync_soon (appends pay one"
        f" per commit) {writer_hop:.0f} us; trio.to_thread.run_sync (reads pay one per page)"
        f" {hop:.0f} us"
    )
    print()
    for series in (one["FULL"], many["FULL"], batch["FULL"], scan):
        assert series.target is not None
        print(
            f"{'PASS' if series.passed else 'FAIL'} {series.name}: {series.ratio:.2f}x floor"
            f" (target >= {series.target:g}x)"
        )
    print(f"\n(the script took {time.perf_counter() - wall:.0f} s)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--writer"]:
        writer_process(lambda orders: SQLiteEventStore(orders["path"], synchronous="FULL"))
    else:
        main()

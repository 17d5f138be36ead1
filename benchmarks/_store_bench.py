"""What the two store benchmarks share (benchmarks/store.py, benchmarks/store_postgres.py).

The store side of every figure is engine-blind: the events, the appenders
(one publisher, concurrent publishers, ``append_many``), the replay, the
writer processes released together, the checks of the positions the
appenders got, and the per-round series of rates. Each script supplies how
to open its store and its own floors. ``make bench`` skips this module
(its name starts with ``_``).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import trio

from trio_smith.events import Event, EventStore, EventType

TYPE = EventType("bench", "stored")
#: Events per ``append_many`` call.
BATCH = 1_000
#: Writer processes sharing one store, and publisher tasks in each (64 in
#: all, as in the one-process figure they are compared with).
WRITERS = 4
WRITER_TASKS = 16
#: Seconds a writer process may take to start, or to finish its appends.
WRITER_TIMEOUT = 120.0

T = TypeVar("T")


def make_events(n: int) -> list[Event]:
    return [
        Event.new(TYPE, source="bench/publisher", payload={"i": i, "name": f"item-{i}", "ok": True})
        for i in range(n)
    ]


# ---------------------------------------------------------------- appenders


async def append_each(store: EventStore, events: Sequence[Event]) -> list[list[int]]:
    """One publisher awaiting each ``append``; the positions it got."""
    append = store.append
    positions: list[int] = []
    for event in events:
        position = (await append(event)).position
        assert position is not None
        positions.append(position)
    return [positions]


async def append_concurrently(
    store: EventStore, events: Sequence[Event], tasks: int
) -> list[list[int]]:
    """``tasks`` trio tasks, each awaiting ``append`` of its share in a loop; their positions."""
    shares = [events[i::tasks] for i in range(tasks)]
    positions: list[list[int]] = [[] for _ in range(tasks)]

    async def publisher(i: int) -> None:
        append = store.append
        mine = positions[i]
        for event in shares[i]:
            position = (await append(event)).position
            assert position is not None
            mine.append(position)

    async with trio.open_nursery() as nursery:
        for i in range(tasks):
            nursery.start_soon(publisher, i)
    return positions


async def append_batches(store: EventStore, events: Sequence[Event]) -> list[list[int]]:
    """``append_many`` of BATCH events in turn; the positions, as one appender's."""
    positions: list[int] = []
    for first in range(0, len(events), BATCH):
        for event in await store.append_many(events[first : first + BATCH]):
            assert event.position is not None
            positions.append(event.position)
    return [positions]


def check_positions(positions: list[list[int]], n: int, what: str) -> None:
    """The positions the appenders got are 1..n, each once, increasing for every appender."""
    if sorted(p for mine in positions for p in mine) != list(range(1, n + 1)):
        raise AssertionError(f"{what}: positions are not 1..N")
    if any(mine != sorted(mine) for mine in positions):
        raise AssertionError(f"{what}: an appender's positions went backwards")


def timed(
    open_store: Callable[[], EventStore],
    body: Callable[[EventStore], Awaitable[T]],
    n: int,
) -> tuple[float, T]:
    """Seconds ``body(store)`` took, in its own ``trio.run``, and what it returned.

    The store is opened before the clock starts and closed after it stops;
    its head must then be ``n``.
    """

    async def main() -> tuple[float, T]:
        async with open_store() as store:
            start = time.perf_counter()
            result = await body(store)
            elapsed = time.perf_counter() - start
            head = await store.head()
            if head != n:
                raise AssertionError(f"store head {head} after {n} appends")
        return elapsed, result

    gc.collect()
    return trio.run(main)


def replay(open_store: Callable[[], EventStore], events: Sequence[Event]) -> float:
    """Seconds: ``async for event in store.scan()`` over a store holding ``events``."""
    n = len(events)

    async def main() -> float:
        async with open_store() as store:
            expected = 1
            last: Event | None = None
            start = time.perf_counter()
            async for event in store.scan():
                if event.position != expected:
                    raise AssertionError(f"replay: position {event.position}, expected {expected}")
                expected += 1
                last = event
            elapsed = time.perf_counter() - start
            if expected != n + 1:
                raise AssertionError(f"replay yielded {expected - 1} events, expected {n}")
            want = events[-1]
            if last is None or (last.id, last.timestamp, last.type, last.payload) != (
                want.id,
                want.timestamp,
                want.type,
                want.payload,
            ):
                raise AssertionError("replay: the last event is not the last appended")
        return elapsed

    gc.collect()
    return trio.run(main)


# ---------------------------------------------------------------- writer processes


def writer_process(open_store: Callable[[dict[str, Any]], EventStore]) -> None:
    """One writer process (a benchmark script run with ``--writer``), driven by ``run_writers``.

    Reads its orders from stdin (one JSON line: where its store is, a pickle
    of its events, its number of tasks; stdin rather than the command line,
    where other users could read a password), opens its store with
    ``open_store(orders)``, says "ready", waits for a line (the release),
    appends with its tasks, says "done" once every append has returned, then
    prints (JSON) the positions each task got and the transactions its store
    committed.
    """
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    orders = json.loads(sys.stdin.readline())
    with open(orders["events"], "rb") as file:
        events: list[Event] = pickle.load(file)

    async def run() -> tuple[list[list[int]], int]:
        async with open_store(orders) as store:
            print("ready", flush=True)
            await trio.to_thread.run_sync(sys.stdin.readline)
            positions = await append_concurrently(store, events, orders["tasks"])
            print("done", flush=True)
            return positions, store.statistics().transactions

    positions, transactions = trio.run(run)
    print(json.dumps({"positions": positions, "transactions": transactions}), flush=True)


def share_files(directory: str, events: Sequence[Event]) -> list[str]:
    """Pickle each writer process's share of ``events`` (once; every run reads them)."""
    paths = []
    for k in range(WRITERS):
        path = os.path.join(directory, f"writer-{k}.pickle")
        with open(path, "wb") as file:
            pickle.dump(list(events[k::WRITERS]), file)
        paths.append(path)
    return paths


def _readline(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline()


def _send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _expect(process: subprocess.Popen[str], word: str) -> None:
    line = _readline(process)
    if line.strip() != word:
        raise RuntimeError(
            f"writer process {process.pid} said {line!r}, expected {word!r}"
            f" (exit status {process.poll()})"
        )


def run_writers(script: str, orders: list[dict[str, Any]]) -> tuple[float, list[list[int]], int]:
    """Run ``script --writer`` once per order, released together (see ``writer_process``).

    Each is a fresh interpreter, never a fork of a process that has run trio.

    Returns:
        The seconds from the release until every process said "done", the
        positions each of their tasks got, and their transactions in all.
    """
    processes = [
        subprocess.Popen(
            [sys.executable, os.path.abspath(script), "--writer"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in orders
    ]

    def kill() -> None:
        for process in processes:
            process.kill()

    # A writer that hangs is killed (only the processes started here, by pid).
    timer = threading.Timer(WRITER_TIMEOUT, kill)
    timer.start()
    try:
        for process, order in zip(processes, orders, strict=True):
            _send(process, json.dumps(order))
        for process in processes:
            _expect(process, "ready")
        gc.collect()
        start = time.perf_counter()
        for process in processes:
            _send(process, "go")
        for process in processes:
            _expect(process, "done")
        elapsed = time.perf_counter() - start
        reports = [json.loads(_readline(process)) for process in processes]
        for process in processes:
            if process.wait() != 0:
                raise RuntimeError(f"writer process {process.pid} exited with {process.returncode}")
    finally:
        timer.cancel()
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()
    positions = [task for report in reports for task in report["positions"]]
    return elapsed, positions, sum(report["transactions"] for report in reports)


# ---------------------------------------------------------------- report


class Series:
    """Per-round rates (events/s) of a subject and of its floor."""

    def __init__(self, name: str, target: float | None, floor: str = "") -> None:
        self.name = name
        self.floor = floor
        self.target = target
        self.base: list[float] = []
        self.subject: list[float] = []

    def add(self, n_base: int, base: float, n_subject: int, subject: float) -> None:
        self.base.append(n_base / base)
        self.subject.append(n_subject / subject)

    @property
    def ratio(self) -> float:
        return max(self.subject) / max(self.base)

    def spread(self) -> str:
        ratios = [s / b for s, b in zip(self.subject, self.base, strict=True)]
        return f"{min(ratios):.2f}-{max(ratios):.2f}"

    @property
    def passed(self) -> bool:
        return self.target is None or self.ratio >= self.target

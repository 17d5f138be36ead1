"""A writer or a follower process for tests/events/test_multiprocess.py.

``python store_process.py write STORE WRITER COUNT`` appends COUNT events
(``{"writer": WRITER, "n": n}``), in batches of 1 to 8 (``append`` and
``append_many`` in turn), and prints ``<position> <id hex>`` for each
acknowledged one, flushed at once. An append that fails with
``StoreUnavailable`` (a server restarting) is retried with the same events,
which is safe: appends are idempotent by id; it prints ``retry`` each time.
It exits 0 when all are acknowledged.

``python store_process.py follow STORE`` opens the store (read-only for an
SQLite file), subscribes to a bus from position 0 (replay, then live), and
prints ``<position> <id hex>`` for each event it is delivered, until SIGTERM.
It prints ``ready`` once it is subscribed.

STORE is a file path, or a ``postgresql://`` URL (schema ``trio_smith``).
"""

from __future__ import annotations

import signal
import sys

import trio

from trio_smith.events import (
    Event,
    EventBus,
    EventStore,
    EventType,
    PostgresEventStore,
    SQLiteEventStore,
    StoreUnavailable,
)

WRITTEN = EventType("test", "written")


def _store(spec: str, *, read_only: bool) -> EventStore:
    if spec.startswith("postgresql://"):
        return PostgresEventStore(spec, poll_interval=0.05, timeout=5)
    return SQLiteEventStore(spec, read_only=read_only, poll_interval=0.01, busy_timeout=30)


def _ack(events: list[Event]) -> None:
    # One write per batch: a kill can cut off at most the last line.
    sys.stdout.write("".join(f"{e.position} {e.id.hex}\n" for e in events))
    sys.stdout.flush()


async def write(spec: str, writer: int, count: int) -> None:
    async with _store(spec, read_only=False) as store:
        n = 0
        size = 1
        while n < count:
            batch = [
                Event.new(WRITTEN, source=f"writer/{writer}", payload={"writer": writer, "n": k})
                for k in range(n, min(count, n + size))
            ]
            while True:
                try:
                    if len(batch) == 1:
                        stored = [await store.append(batch[0])]
                    else:
                        stored = await store.append_many(batch)
                    break
                except StoreUnavailable:
                    print("retry", flush=True)
                    await trio.sleep(0.05)
            _ack(stored)
            n += len(batch)
            size = size % 8 + 1


async def follow(spec: str) -> None:
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with (
            _store(spec, read_only=True) as store,
            EventBus(store) as bus,
            bus.subscribe(from_position=0, buffer=10_000) as events,
        ):
            print("ready", flush=True)
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()

                nursery.start_soon(stop_on_signal)
                async for event in events:
                    _ack([event])


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["write", spec, writer, count]:
            trio.run(write, spec, int(writer), int(count))
        case ["follow", spec]:
            trio.run(follow, spec)
        case _:
            sys.exit(f"usage: {sys.argv[0]} write STORE WRITER COUNT | follow STORE")

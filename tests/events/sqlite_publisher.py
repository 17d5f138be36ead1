"""A publisher for the crash tests: appends to an SQLite store until it is killed.

Run as ``python sqlite_publisher.py STORE_FILE [TASKS]``. It opens the store
with ``synchronous="FULL"`` and runs TASKS (default 8) concurrent trio tasks
that append events as fast as they can. For every acknowledged append (the
``append`` call returned, so the event is committed) it prints one line
``<position> <event id hex>`` and flushes it. It never stops by itself;
tests/events/test_sqlite_crash.py kills it with SIGKILL.
"""

from __future__ import annotations

import sys

import trio

from trio_smith.events import AgentEvent, Event
from trio_smith.events._sqlite import SQLiteEventStore


async def _publish(store: SQLiteEventStore, task: int) -> None:
    for n in range(sys.maxsize):
        stored = await store.append(
            Event.new(AgentEvent.STATE_CHANGED, source=f"publisher/{task}", payload={"n": n})
        )
        # One write per line: a kill can cut off at most the last line.
        sys.stdout.write(f"{stored.position} {stored.id.hex}\n")
        sys.stdout.flush()


async def main(path: str, tasks: int) -> None:
    async with SQLiteEventStore(path, synchronous="FULL") as store, trio.open_nursery() as nursery:
        for task in range(tasks):
            nursery.start_soon(_publish, store, task)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} STORE_FILE [TASKS]")
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 8)

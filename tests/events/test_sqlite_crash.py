"""SQLiteEventStore under a killed process and under cancellation.

* A publisher process (sqlite_publisher.py) is killed with SIGKILL after a
  random number of acknowledged appends; the reopened file must hold every
  acknowledged event at its acknowledged position, with dense positions, pass
  ``PRAGMA integrity_check`` and take new appends.
* Concurrent appenders cancelled at a random point must leave whole batches
  only: an ``append_many`` is in the store entirely, at consecutive positions,
  or not at all.

No test sleeps: the kill happens after a counted number of output lines, and
cancellation after a counted number of checkpoints.
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import signal
import sqlite3
import subprocess
import sys
from uuid import UUID

import pytest
import trio

from trio_smith.events import AgentEvent, Event
from trio_smith.events._sqlite import SQLiteEventStore

PUBLISHER = pathlib.Path(__file__).with_name("sqlite_publisher.py")
CRASHES = 5


def _integrity(path: pathlib.Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _parse_acks(data: bytes) -> dict[int, str]:
    """Complete ``<position> <id hex>`` lines; a cut-off last line is not an ack."""
    acks: dict[int, str] = {}
    for line in data.split(b"\n")[:-1]:
        position, event_id = line.decode().split()
        assert int(position) not in acks, f"position {position} acknowledged twice"
        acks[int(position)] = event_id
    return acks


async def _publish_until_killed(path: pathlib.Path, acks_before_kill: int) -> dict[int, str]:
    """Run the publisher, SIGKILL it after ``acks_before_kill`` acks; every ack it printed."""
    process = await trio.lowlevel.open_process(
        [sys.executable, str(PUBLISHER), str(path)], stdout=subprocess.PIPE
    )
    stdout = process.stdout
    assert stdout is not None
    output = bytearray()
    try:
        while output.count(b"\n") < acks_before_kill:
            chunk = await stdout.receive_some()
            assert chunk, f"the publisher ended by itself (exit code {await process.wait()})"
            output += chunk
    finally:
        process.send_signal(signal.SIGKILL)
        code = await process.wait()
    assert code == -signal.SIGKILL
    # Lines it wrote before it died are acknowledgements too.
    while chunk := await stdout.receive_some():
        output += chunk
    await stdout.aclose()
    acks = _parse_acks(bytes(output))
    assert len(acks) >= acks_before_kill
    return acks


async def test_every_acknowledged_append_survives_a_kill_of_the_process(
    tmp_path: pathlib.Path,
) -> None:
    # One file for every round: each round also reopens a file left by a crash.
    path = tmp_path / "crash.db"
    rng = random.Random(20250301)
    acknowledged: dict[int, str] = {}
    for _ in range(CRASHES):
        acks = await _publish_until_killed(path, rng.randint(20, 400))
        for position, event_id in acks.items():
            assert acknowledged.setdefault(position, event_id) == event_id, (
                f"position {position} acknowledged for two events"
            )

        async with SQLiteEventStore(path, synchronous="FULL") as store:
            head = await store.head()
            stored = await store.read()
            assert [e.position for e in stored] == list(range(1, head + 1))
            assert len({e.id for e in stored}) == head
            by_position = {e.position: e.id.hex for e in stored}
            missing = {p: i for p, i in acknowledged.items() if by_position.get(p) != i}
            assert not missing, f"acknowledged but not stored as acknowledged: {missing}"
            after = await store.append(
                Event.new(AgentEvent.STATE_CHANGED, source="after-crash", payload={})
            )
            assert after.position == head + 1
            acknowledged[head + 1] = after.id.hex
        assert _integrity(path) == "ok"


#: Opens a new store in argv[1] and kills itself with SIGKILL just before the
#: schema transaction runs, i.e. after ``PRAGMA journal_mode=WAL`` has
#: written the file's header page.
KILL_WHILE_CREATING = """
import os, signal, sqlite3, sys

import trio

from trio_smith.events._sqlite import SQLiteEventStore


class KilledBeforeTheSchema(sqlite3.Connection):
    def executescript(self, script):
        os.kill(os.getpid(), signal.SIGKILL)


real_connect = sqlite3.connect
sqlite3.connect = lambda *args, **kwargs: real_connect(
    *args, factory=KilledBeforeTheSchema, **kwargs
)


async def main():
    async with SQLiteEventStore(sys.argv[1]):
        pass


trio.run(main)
"""


async def test_a_store_killed_while_creating_its_file_opens_again(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new.db"
    done = await trio.run_process(
        [sys.executable, "-c", KILL_WHILE_CREATING, str(path)], check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert path.stat().st_size > 0  # the WAL header page, without the schema
    # Nothing was acknowledged, so the file holds nothing to keep: opening it
    # again must create the store, not refuse the file for good.
    async with SQLiteEventStore(path) as store:
        assert await store.head() == 0
        assert (await store.append(Event.new(AgentEvent.STARTED, source="a"))).position == 1
    assert _integrity(path) == "ok"


# ---------------------------------------------------------------- cancellation

APPENDERS = 16


async def _append_forever(
    store: SQLiteEventStore,
    rng: random.Random,
    submitted: list[list[Event]],
    returned: list[list[Event]],
) -> None:
    while True:
        batch = [
            Event.new(AgentEvent.STATE_CHANGED, source=f"appender/{len(submitted)}", payload={})
            for _ in range(rng.randint(1, 5))
        ]
        submitted.append(batch)
        if len(batch) == 1 and rng.random() < 0.5:
            returned.append([await store.append(batch[0])])
        else:
            returned.append(await store.append_many(batch))


@pytest.mark.parametrize("cancel_the_store_too", [False, True])
@pytest.mark.parametrize("seed", range(6))
async def test_cancelled_appenders_leave_whole_batches_at_dense_positions(
    tmp_path: pathlib.Path, seed: int, cancel_the_store_too: bool
) -> None:
    path = tmp_path / "cancel.db"
    rng = random.Random(seed)
    submitted: list[list[Event]] = []
    returned: list[list[Event]] = []
    for _ in range(3):
        # Each round cancels after its own number of checkpoints, on the same file.
        checkpoints = rng.randint(0, 1500)
        with trio.CancelScope() as everything:
            async with SQLiteEventStore(path) as store:
                with trio.CancelScope() as appenders:
                    async with trio.open_nursery() as nursery:
                        for _ in range(APPENDERS):
                            nursery.start_soon(
                                _append_forever,
                                store,
                                random.Random(rng.random()),
                                submitted,
                                returned,
                            )
                        for _ in range(checkpoints):
                            await trio.lowlevel.checkpoint()
                        (everything if cancel_the_store_too else appenders).cancel()
        assert everything.cancelled_caught == cancel_the_store_too

        async with SQLiteEventStore(path) as store:
            head = await store.head()
            after = await store.append(
                Event.new(AgentEvent.STATE_CHANGED, source="after-cancel", payload={})
            )
            submitted.append([after])
            returned.append([after])
            stored = await store.read()
        assert after.position == head + 1

        assert [e.position for e in stored] == list(range(1, head + 2))
        position_of = {e.id: e.position for e in stored}
        assert len(position_of) == len(stored), "an event was stored twice"
        for batch in submitted:
            positions = [position_of.get(e.id) for e in batch]
            if positions[0] is None:
                assert positions == [None] * len(batch), f"half a batch stored: {positions}"
            else:
                assert positions == list(range(positions[0], positions[0] + len(batch)))
        for result in returned:
            for event in result:
                assert position_of.get(event.id) == event.position, "a returned append is lost"
        ids: set[UUID] = {e.id for batch in submitted for e in batch}
        assert set(position_of) <= ids, "the store holds an event nobody appended"
        assert _integrity(path) == "ok"

"""SQLiteEventStore shared by several writers, and its failures: a lock held too long,
a full disk, a read-only medium, a batch with one bad member.

Several store objects on one file stand for several processes here (each has
its own connections and store thread, exactly as another process would);
tests/events/test_multiprocess.py runs real processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import trio

from trio_smith.events import (
    Event,
    EventBus,
    SQLiteEventStore,
    StoreCorrupt,
    StoreFileError,
    StoreFull,
    StoreUnavailable,
    uuid7,
)
from trio_smith.events._threaded import Committed

from .store_contract import Recorder, event


class Counter(Recorder):
    """A listener that can be waited on until it has seen ``n`` events."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = trio.Event()

    def __call__(self, batch: Sequence[Event]) -> None:
        super().__call__(batch)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_seen(self, n: int) -> None:
        # Other writers' events arrive when the store thread polls (real
        # time), so the wait is bounded in real time.
        with trio.fail_after(10):
            while len(self.events) < n:
                await self._changed.wait()


async def test_two_writers_on_one_file_interleave_with_dense_positions(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "shared.db"
    async with SQLiteEventStore(path) as a, SQLiteEventStore(path) as b:
        positions = []
        for _ in range(5):
            positions.append((await a.append(event(source="a"))).position)
            positions.append((await b.append(event(source="b"))).position)
        assert positions == list(range(1, 11))
        stored = await a.read()
        assert [e.position for e in stored] == list(range(1, 11))
        assert [e.source for e in stored] == ["a", "b"] * 5
        assert await b.read() == stored


async def test_each_writer_tells_its_listeners_every_writers_events_once_in_order(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "shared.db"
    async with (
        SQLiteEventStore(path, poll_interval=0.01) as a,
        SQLiteEventStore(path, poll_interval=0.01) as b,
    ):
        seen_a, seen_b = Counter(), Counter()
        a.add_listener(seen_a)
        b.add_listener(seen_b)
        async with trio.open_nursery() as nursery:
            for store, name in ((a, "a"), (b, "b")):
                for n in range(20):
                    nursery.start_soon(store.append, event(source=name, payload={"n": n}))
        stored = await a.read()
        assert [e.position for e in stored] == list(range(1, 41))
        # The writer that committed last learnt of the other's events in its
        # own transaction; the other learns of the rest while idle.
        await seen_a.wait_seen(40)
        await seen_b.wait_seen(40)
        assert seen_a.events == stored
        assert seen_b.events == stored
        assert a.statistics().appended + b.statistics().appended == 40
        assert a.statistics().followed == 20
        assert b.statistics().followed == 20
        assert await a.head() == await b.head() == 40


async def test_a_bus_on_a_shared_file_delivers_the_other_writers_events(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "shared.db"
    async with (
        SQLiteEventStore(path, poll_interval=0.01) as mine,
        EventBus(mine) as bus,
        SQLiteEventStore(path) as theirs,
    ):
        live = bus.subscribe()
        catching_up = bus.subscribe(from_position=0)
        first = await theirs.append(event(source="theirs"))
        second = await bus.publish(event(source="mine"))
        third = await theirs.append(event(source="theirs"))
        assert [await live.receive() for _ in range(3)] == [first, second, third]
        assert [await catching_up.receive() for _ in range(3)] == [first, second, third]


async def test_an_event_appended_by_two_writers_is_stored_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "shared.db"
    twice = event()
    async with SQLiteEventStore(path) as a, SQLiteEventStore(path) as b:
        await a.append(event())
        first = await a.append(twice)
        again = await b.append(twice)
        assert again == first
        (*_, also) = await b.append_many([event(), twice])
        assert also == first
        assert [e.position for e in await a.read()] == [1, 2, 3]


@contextlib.contextmanager
def _write_lock(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the file's write lock."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    finally:
        db.execute("ROLLBACK")
        db.close()


async def test_a_lock_held_beyond_busy_timeout_is_store_unavailable_then_appends_resume(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "locked.db"
    async with SQLiteEventStore(path, busy_timeout=0.05, name="locked") as store:
        kept = await store.append(event())
        with _write_lock(path):
            message = (
                "event store 'locked' is unavailable: another connection held its write "
                "lock for more than busy_timeout (0.05 s)"
            )
            with pytest.raises(StoreUnavailable, match=f"^{re.escape(message)}$"):
                await store.append(event())
            store.append_nowait(lost := event())
            # Committed in order: once this one has failed, so has the other.
            with pytest.raises(StoreUnavailable, match=f"^{re.escape(message)}$"):
                await store.append(event())
        # The failed append_nowait is counted and logged, not silent.
        assert store.statistics().dropped == 1
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            f"event store 'locked' dropped 1 event(s) queued with append_nowait: {message}"
        ]
        after = await store.append(event())
        assert after.position == 2
        assert await store.read() == [kept, after]
        assert await store.get(lost.id) is None
        assert store.statistics().queued == 0


async def test_a_batch_never_fails_because_of_one_member(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = SQLiteEventStore._commit

    def refusing(
        store: SQLiteEventStore, events: list[Event], rows: list[tuple[Any, ...]], head: int
    ) -> Committed:
        # Stands in for a row the engine refuses for its data alone, inside
        # the transaction: any batch that holds an event from "bad".
        if any(e.source == "bad" for e in events):
            raise sqlite3.IntegrityError("CHECK constraint failed: stands in for bad data")
        return commit(store, events, rows, head)

    monkeypatch.setattr(SQLiteEventStore, "_commit", refusing)
    async with SQLiteEventStore(tmp_path / "b.db", name="b") as store:
        results: dict[str, Any] = {}

        async def append(label: str, ev: Event) -> None:
            try:
                results[label] = await store.append(ev)
            except ValueError as exc:
                results[label] = exc

        bad = event(source="bad")
        async with trio.open_nursery() as nursery:
            # Queued together, so the store thread takes them as one batch.
            for n in range(3):
                nursery.start_soon(append, f"good-{n}", event(source=f"good-{n}"))
            nursery.start_soon(append, "bad", bad)
            for n in range(3, 6):
                nursery.start_soon(append, f"good-{n}", event(source=f"good-{n}"))
        error = results.pop("bad")
        assert isinstance(error, ValueError)
        assert str(error) == (
            f"event {bad.id} cannot be stored in 'b': "
            "CHECK constraint failed: stands in for bad data"
        )
        assert isinstance(error.__cause__, sqlite3.IntegrityError)
        stored = await store.read()
        assert sorted(e.source for e in stored) == [f"good-{n}" for n in range(6)]
        assert [e.position for e in stored] == list(range(1, 7))
        assert {label: e.position for label, e in results.items()} == {
            e.source: e.position for e in stored
        }


async def test_a_surrogate_in_a_hand_built_event_is_refused_alone(tmp_path: pathlib.Path) -> None:
    good = event()
    bad = Event(id=uuid7(), timestamp=good.timestamp, source="s\udc80", type=good.type)
    worse = Event(
        id=uuid7(), timestamp=good.timestamp, source="s", type=good.type, payload={"k": "\ud800"}
    )
    async with SQLiteEventStore(tmp_path / "s.db") as store:
        message = (
            f"event {bad.id} cannot be stored: its source holds a lone surrogate U+DC80 at "
            "index 1, which UTF-8 cannot encode"
        )
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            await store.append(bad)
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            store.append_nowait(bad)
        with pytest.raises(ValueError, match=rf"^event {worse.id} cannot be stored: its payload"):
            await store.append_many([good, worse])
        assert (await store.append(good)).position == 1
        assert store.statistics().dropped == 0


# ---------------------------------------------------------------- media


def _fill(directory: pathlib.Path) -> pathlib.Path:
    """Fill the file system with one file; return it."""
    filler = directory / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    assert shutil.disk_usage(directory).free < 65536
    return filler


async def _append_until_it_fails(store: SQLiteEventStore, acknowledged: list[Event]) -> None:
    for _ in range(100):
        acknowledged.append(await store.append(event(payload={"blob": "x" * 20_000})))


async def test_a_full_disk_is_store_full_and_appends_resume_once_there_is_room(
    small_disk: pathlib.Path,
) -> None:
    path = small_disk / "full.db"
    acknowledged: list[Event] = []
    async with SQLiteEventStore(path, name="full") as store:
        acknowledged += await store.append_many([event(payload={"n": n}) for n in range(10)])
        filler = _fill(small_disk)
        with pytest.raises(StoreFull, match=r"^event store 'full' is full: ") as caught:
            await _append_until_it_fails(store, acknowledged)
        assert "full" in caught.value.reason
        assert isinstance(caught.value, OSError)
        # Reads still work, and nothing acknowledged is missing.
        assert await store.read() == acknowledged
        os.remove(filler)
        after = await store.append(event(payload={"blob": "x" * 20_000}))
        assert after.position == len(acknowledged) + 1
        acknowledged.append(after)
    async with SQLiteEventStore(path) as reopened:
        assert await reopened.read() == acknowledged


async def _make_store(path: pathlib.Path, events: Sequence[Event]) -> list[Event]:
    async with SQLiteEventStore(path) as store:
        return await store.append_many(events)


async def test_a_store_on_a_read_only_medium_opens_read_only_and_refuses_writing(
    read_only_copy: tuple[pathlib.Path, pathlib.Path],
) -> None:
    source, view = read_only_copy
    stored = await _make_store(source / "events.db", [event(), event()])
    assert sorted(os.listdir(source)) == ["events.db"]  # closed cleanly: no -wal left
    path = view / "events.db"
    async with SQLiteEventStore(path, read_only=True) as store:
        assert await store.read() == stored
        assert await store.head() == 2
    message = (
        f"cannot open event store {str(path)!r}: it cannot be written (open it with "
        "read_only=True to read it)"
    )
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(path):
            pass
    new = view / "new.db"
    message = (
        f"cannot open event store {str(new)!r}: its directory {str(view)!r} cannot be written, "
        "and SQLite keeps its write-ahead log beside the file (open it with read_only=True to "
        "read it)"
    )
    with pytest.raises(StoreFileError, match=f"^{re.escape(message)}$"):
        async with SQLiteEventStore(new):
            pass
    assert sorted(os.listdir(view)) == ["events.db"]


async def test_a_store_left_with_a_log_on_a_read_only_medium_is_read_with_its_log(
    read_only_copy: tuple[pathlib.Path, pathlib.Path],
) -> None:
    source, view = read_only_copy
    async with SQLiteEventStore(source / "events.db") as writer:
        stored = await writer.append_many([event(), event()])
        # While the writer is open, its -wal and -shm exist: a reader on the
        # read-only view uses them.
        assert (source / "events.db-wal").exists()
        async with SQLiteEventStore(view / "events.db", read_only=True) as store:
            assert await store.read() == stored


async def test_a_refused_file_gets_no_log_files_beside_it(tmp_path: pathlib.Path) -> None:
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE notes (text TEXT)")
    assert sorted(os.listdir(tmp_path)) == ["other.db"]
    for read_only in (False, True):
        with pytest.raises(StoreFileError, match="not a trio_smith event store"):
            async with SQLiteEventStore(other, read_only=read_only):
                pass
        assert sorted(os.listdir(tmp_path)) == ["other.db"]


#: Run as a user who may read but not write the store and its directory:
#: prints what opening for writing raised, then the events read read-only.
AS_A_READER = """
import sys, trio
from trio_smith.events import SQLiteEventStore, StoreFileError

async def main(path):
    try:
        async with SQLiteEventStore(path):
            print("opened for writing")
    except StoreFileError as exc:
        print(exc)
    async with SQLiteEventStore(path, read_only=True) as store:
        print(" ".join(e.id.hex for e in await store.read()))

trio.run(main, sys.argv[1])
"""


async def test_a_user_who_cannot_write_the_store_is_refused_writing_and_reads_it(
    tmp_path: pathlib.Path,
) -> None:
    # A directory anyone may enter and read, written only by its owner.
    directory = pathlib.Path(tempfile.mkdtemp(prefix="trio_smith-shared-"))
    try:
        os.chmod(directory, 0o755)
        path = directory / "theirs.db"
        stored = await _make_store(path, [event(), event()])
        os.chmod(path, 0o644)
        command = [sys.executable, "-c", AS_A_READER, str(path)]
        if os.geteuid() == 0:
            # Root may write anything: run as nobody.
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        else:
            os.chmod(directory, 0o555)
            os.chmod(path, 0o444)
        result = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
        refused, read = result.stdout.decode().splitlines()
        assert refused == (
            f"cannot open event store {str(path)!r}: it cannot be written (open it with "
            "read_only=True to read it)"
        )
        assert read == " ".join(e.id.hex for e in stored)
        assert sorted(os.listdir(directory)) == ["theirs.db"]
    finally:
        os.chmod(directory, 0o755)
        shutil.rmtree(directory)


async def test_a_damaged_row_from_another_writer_is_reported_not_skipped(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "d.db"
    async with SQLiteEventStore(path, poll_interval=0.01, name="d") as store:
        seen = Counter()
        store.add_listener(seen)
        first = await store.append(event())
        with contextlib.closing(sqlite3.connect(path)) as other, other:
            other.execute(
                "INSERT INTO events (position, event_id, ts, source, category, type, payload) "
                "VALUES (2, ?, 0, 'other', 'agent', 'agent.started', '{')",
                (uuid7().bytes,),
            )
        message = (
            "event store 'd' holds a damaged event at position 2: its payload is not JSON "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
        )
        # The store thread meets it when it next looks (real time: it polls).
        with trio.fail_after(10):
            for _ in range(10_000):
                if store.statistics().follow_error is not None:
                    break
                await trio.sleep(0.01)
        assert store.statistics().follow_error == message
        # Nothing past it is announced, and appends say why.
        with pytest.raises(StoreCorrupt, match=f"^{re.escape(message)}$"):
            await store.append(event())
        assert seen.events == [first]
        assert await store.head() == 1


#: Says "ready", waits for a line, then opens (creating it if missing) the
#: store argv[1] and appends one event: released together, the processes
#: create the store at the same moment.
CREATE_AND_APPEND = """
import sys, trio
from trio_smith.events import Event, SQLiteEventStore

async def main(path):
    print("ready", flush=True)
    sys.stdin.readline()
    async with SQLiteEventStore(path) as store:
        await store.append(Event.new("test.created", source=sys.argv[2]))

trio.run(main, sys.argv[1])
"""


async def _created_together(path: pathlib.Path, count: int) -> list[int | None]:
    """Start ``count`` processes, release them at once; their exit codes."""
    processes = [
        await trio.lowlevel.open_process(
            [sys.executable, "-c", CREATE_AND_APPEND, str(path), f"process/{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for n in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            said = b""
            while not said.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, "a process ended before it was ready"
                said += chunk
            assert said == b"ready\n"
        for process in processes:
            assert process.stdin is not None
            await process.stdin.send_all(b"go\n")
        return [await process.wait() for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()


async def test_processes_creating_one_store_at_once_all_open_it(tmp_path: pathlib.Path) -> None:
    # Switching a new file to WAL needs it to itself: SQLite answers "database
    # is locked" at once, without waiting, while another process creates it.
    for attempt in range(3):
        path = tmp_path / f"new-{attempt}.db"
        assert await _created_together(path, 4) == [0, 0, 0, 0]
        async with SQLiteEventStore(path, read_only=True) as store:
            stored = await store.read()
        assert [e.position for e in stored] == [1, 2, 3, 4]
        assert sorted(e.source for e in stored) == [f"process/{n}" for n in range(4)]


async def test_opening_waits_while_another_process_holds_a_new_file(
    tmp_path: pathlib.Path,
) -> None:
    # What another process creating the store does to the file for a moment:
    # SQLite's switch to WAL then fails at once, without its busy handler.
    path = tmp_path / "new.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA user_version = 7")  # an SQLite file, no table yet
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    stored: list[Event] = []

    async def open_and_append() -> None:
        async with SQLiteEventStore(path, busy_timeout=10) as store:
            stored.append(await store.append(event()))

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_and_append)
            # Real time: the store retries in its worker thread.
            await trio.sleep(0.2)
            assert not stored
            other.execute("ROLLBACK")
    finally:
        other.close()
    assert [e.position for e in stored] == [1]

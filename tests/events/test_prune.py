"""``prune``: the durable stores remove the oldest events (design rule 42).

Each test runs on both engines: SQLite in ``tmp_path`` and PostgreSQL on the
tests' private server (tests/postgres.py; skipped without its binaries,
except under CI). What is checked: which events go (a prefix of the log,
never the last event), that positions are never renumbered or reused, that
reads and replays from before the cut start at the first kept event, the
refusal to pass a durable subscription's checkpoint (and ``force``), the
transactions of at most ``PRUNE_CHUNK`` events, and the statistics.
"""

from __future__ import annotations

import itertools
import pathlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import trio

from trio_smith.events import (
    Event,
    EventBus,
    EventFilter,
    PostgresEventStore,
    PruneRefused,
    SQLiteEventStore,
    StoreClosed,
    StoreReadOnly,
    _threaded,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

#: Builds a store on one log; ``read_only`` for a reader beside it.
Factory = Callable[..., SQLiteEventStore | PostgresEventStore]

_schemas = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Factory:
    """Stores on one log of the engine under test (each test gets a log of its own)."""
    if request.param == "sqlite":
        path = tmp_path / "events.db"
        return lambda **kwargs: SQLiteEventStore(path, **kwargs)
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"prune_{next(_schemas)}"
    return lambda **kwargs: PostgresEventStore(dsn, schema=schema, **kwargs)


def at(minute: float) -> Event:
    """An event of ``minute`` minutes after T0."""
    return Event.new(
        "billing.invoice_paid",
        source="billing",
        payload={"minute": minute},
        timestamp=T0 + timedelta(minutes=minute),
    )


def minutes(events: list[Event]) -> list[object]:
    return [e.payload["minute"] for e in events]


def positions(events: list[Event]) -> list[int | None]:
    return [e.position for e in events]


async def test_prune_removes_the_oldest_events_and_keeps_the_positions(
    make_store: Factory,
) -> None:
    async with make_store() as store:
        await store.append_many([at(m) for m in range(10)])
        assert await store.prune(T0 + timedelta(minutes=4)) == 4
        kept = await store.read()
        assert minutes(kept) == list(range(4, 10))
        # Never renumbered: the head stays, new events go after it.
        assert positions(kept) == list(range(5, 11))
        assert await store.head() == 10
        assert await store.count() == 6
        appended = await store.append(at(10))
        assert appended.position == 11
        # A read from before the cut starts at the first kept event.
        assert positions(await store.read(after=2, limit=2)) == [5, 6]
        assert positions(await store.read(EventFilter(until_position=6))) == [5, 6]
        # Pruning again to the same time removes nothing more.
        assert await store.prune(T0 + timedelta(minutes=4)) == 0
        assert store.statistics().pruned == 4
    # A new store object on the same log sees the same.
    async with make_store(read_only=True) as reader:
        assert positions(await reader.read()) == list(range(5, 12))
        assert await reader.head() == 11
        assert reader.statistics().pruned == 0


async def test_the_last_event_is_always_kept(make_store: Factory) -> None:
    async with make_store() as store:
        await store.append_many([at(m) for m in range(3)])
        assert await store.prune(T0 + timedelta(days=1)) == 2
        [last] = await store.read()
        assert (last.position, last.payload["minute"]) == (3, 2)
        # The head is read from the log in every commit (design rule 25):
        # with the last event kept, positions are never used twice.
        assert (await store.append(at(3))).position == 4
        assert await store.prune(T0 + timedelta(days=1)) == 1
        assert positions(await store.read()) == [4]


async def test_an_older_event_after_a_newer_one_stays(make_store: Factory) -> None:
    # The log stays one unbroken run of positions: what goes is a prefix.
    async with make_store() as store:
        await store.append_many([at(0), at(1), at(9), at(2), at(3), at(10)])
        assert await store.prune(T0 + timedelta(minutes=5)) == 2
        assert minutes(await store.read()) == [9, 2, 3, 10]


async def test_nothing_to_prune(make_store: Factory) -> None:
    async with make_store() as store:
        assert await store.prune(T0) == 0
        await store.append_many([at(m) for m in range(3)])
        assert await store.prune(T0) == 0
        assert await store.prune(T0 - timedelta(days=1)) == 0
        assert await store.count() == 3
        assert store.statistics().pruned == 0


async def test_a_durable_subscription_s_checkpoint_stops_a_prune(make_store: Factory) -> None:
    async with make_store() as store:
        await store.append_many([at(m) for m in range(10)])
        await store.save_checkpoint("mailer", 3)
        await store.save_checkpoint("audit", 2)
        await store.save_checkpoint("indexer", 9)
        before = T0 + timedelta(minutes=6)
        with pytest.raises(PruneRefused) as refused:
            await store.prune(before)
        # The one furthest behind is named; nothing was removed.
        assert str(refused.value) == (
            f"cannot prune event store {store.name!r} through position 6: durable "
            "subscription 'audit' has its checkpoint at position 2"
        )
        assert (refused.value.subscription, refused.value.checkpoint) == ("audit", 2)
        assert (refused.value.store, refused.value.through) == (store.name, 6)
        assert isinstance(refused.value, RuntimeError)
        assert await store.count() == 10
        # Up to the lowest checkpoint is allowed: those events were handled.
        assert await store.prune(T0 + timedelta(minutes=2)) == 2
        # force removes what the subscriptions have not handled.
        assert await store.prune(before, force=True) == 4
        assert positions(await store.read()) == [7, 8, 9, 10]
        assert store.statistics().pruned == 6


async def test_a_replay_from_before_the_cut_starts_at_the_first_kept_event(
    make_store: Factory,
) -> None:
    async with make_store() as store, EventBus(store) as bus:
        for m in range(8):
            await bus.publish(at(m))
        mailer = bus.subscribe(durable="mailer")
        handled = [await mailer.receive() for _ in range(2)]
        await mailer.save_checkpoint()
        await mailer.aclose()
        assert positions(handled) == [1, 2]
        assert await store.prune(T0 + timedelta(minutes=5), force=True) == 5

        # From a position before the cut, from the start, and a durable
        # subscription whose checkpoint (2) lies below it: each gets the
        # kept events, gap-free, then the live ones after the head.
        replays = [
            bus.subscribe(from_position=1),
            bus.subscribe(from_position=0),
            bus.subscribe(durable="mailer"),
        ]
        live = await bus.publish(at(8))
        assert live.position == 9
        for replay in replays:
            got = [await replay.receive() for _ in range(4)]
            assert positions(got) == [6, 7, 8, 9]
            await replay.aclose()
        assert [e.position async for e in bus.replay()] == [6, 7, 8, 9]


async def test_a_large_prune_is_removed_in_several_transactions(
    make_store: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_threaded, "PRUNE_CHUNK", 3)
    async with make_store() as store, make_store() as other:
        await store.append_many([at(m) for m in range(11)])
        assert await store.prune(T0 + timedelta(minutes=10)) == 10
        assert positions(await store.read()) == [11]
        assert store.statistics().pruned == 10
        # Another writer on the same log numbers its events after the head.
        assert (await other.append(at(11))).position == 12


async def test_a_checkpoint_saved_during_a_chunked_prune_stops_the_rest(
    make_store: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each transaction checks the checkpoints again: what it removed stays
    # removed (a prefix), the rest is refused.
    monkeypatch.setattr(_threaded, "PRUNE_CHUNK", 2)
    async with make_store() as store, make_store() as other:
        await store.append_many([at(m) for m in range(8)])
        engine = type(store)
        real = engine._prune_step
        steps = 0

        def between_steps(*args: Any) -> _threaded.PruneStep:
            # In the store thread, before its second transaction: another
            # process saves a checkpoint below the cut.
            nonlocal steps
            steps += 1
            if steps == 2:
                trio.from_thread.run(other.save_checkpoint, "late", 3, trio_token=token)
            return real(*args)

        token = trio.lowlevel.current_trio_token()
        monkeypatch.setattr(engine, "_prune_step", between_steps)
        with pytest.raises(PruneRefused, match=r"'late' has its checkpoint at position 3$"):
            await store.prune(T0 + timedelta(minutes=6))
        assert positions(await store.read()) == [3, 4, 5, 6, 7, 8]
        assert store.statistics().pruned == 2


async def test_a_store_that_had_not_read_the_pruned_events_goes_on_after_them(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process's store (and its bus) that had not yet read the events
    # a prune removed: they are gone; it announces the kept ones and says so.
    path = tmp_path / "events.db"
    async with (
        SQLiteEventStore(path) as store,
        SQLiteEventStore(path, read_only=True, poll_interval=3600) as behind,
        EventBus(behind) as bus,
    ):
        seen = bus.subscribe()
        await store.append_many([at(m) for m in range(6)])
        assert await store.prune(T0 + timedelta(minutes=4)) == 4
        await store.append(at(6))
        # Its next look (a commit, or the poll) finds the kept events.
        behind._jobs.put(_threaded._LOOK)
        got = [await seen.receive() for _ in range(3)]
        assert positions(got) == [5, 6, 7]
        assert behind.statistics().followed == 3
        assert await behind.head() == 7
    assert (
        f"event store {str(path)!r}: positions 1 to 4 were pruned before this store read them"
        in caplog.messages
    )


@pytest.mark.parametrize(
    ("before", "force", "error", "message"),
    [
        ("2026-01-01", False, TypeError, "before must be a datetime, got '2026-01-01'"),
        (
            datetime(2026, 1, 1),
            False,
            ValueError,
            "before must be an aware datetime (with a time zone), got "
            "datetime.datetime(2026, 1, 1, 0, 0)",
        ),
        (T0, 1, TypeError, "force must be a bool, got 1"),
    ],
)
async def test_bad_arguments_are_refused_by_name(
    make_store: Factory, before: object, force: object, error: type[Exception], message: str
) -> None:
    async with make_store() as store:
        await store.append_many([at(m) for m in range(3)])
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            await store.prune(before, force=force)  # type: ignore[arg-type]
        assert await store.count() == 3


async def test_a_read_only_or_closed_store_refuses_to_prune(make_store: Factory) -> None:
    async with make_store() as store:
        await store.append_many([at(m) for m in range(3)])
    async with make_store(read_only=True) as reader:
        with pytest.raises(StoreReadOnly):
            await reader.prune(T0 + timedelta(days=1))
        assert await reader.count() == 3
    with pytest.raises(StoreClosed):
        await store.prune(T0 + timedelta(days=1))

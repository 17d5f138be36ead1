"""Which calls of publish and receive are schedule points (design rule 17).

Every call checks for cancellation; only the ``checkpoint_every``-th call
since the last yield (64 by default), a call that waits, and a cancelled
call yield. ``trio.testing.assert_checkpoints()`` passes around exactly those,
``assert_no_checkpoints()`` around the others.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from trio.testing import assert_checkpoints, assert_no_checkpoints

from trio_smith.events import AgentEvent, Event, EventBus, MemoryEventStore
from trio_smith.events._pace import EVERY


def ev(n: int = 0) -> Event:
    return Event.new(AgentEvent.MESSAGE_RECEIVED, source="agents/a", payload={"n": n})


def schedule_points(calls: int, every: int) -> list[int]:
    """The 1-based calls that yield, counting from a fresh count."""
    return [i for i in range(1, calls + 1) if i % every == 0]


def points() -> tuple[int, int]:
    """trio's counts of the current task's cancel points and schedule points.

    (What ``assert_checkpoints`` compares; it checks nothing when the block
    raises, as a cancelled call does.)
    """
    task = trio.lowlevel.current_task()
    return task._cancel_points, task._schedule_points


def assert_full_checkpoint_since(before: tuple[int, int]) -> None:
    after = points()
    assert after[0] > before[0]
    assert after[1] > before[1]


def test_the_default_is_64() -> None:
    assert EVERY == 64
    assert EventBus().checkpoint_every == 64


@pytest.mark.parametrize("every", [1, 3, 64])
async def test_publish_is_a_schedule_point_exactly_every_nth_call(every: int) -> None:
    async with EventBus(checkpoint_every=every) as bus:
        sub = bus.subscribe(buffer=10_000)
        for i in range(1, 3 * every + 2):
            if i % every == 0:
                with assert_checkpoints():
                    await bus.publish(ev(i))
            else:
                with assert_no_checkpoints():
                    await bus.publish(ev(i))
        assert len(sub._queue) == 3 * every + 1


@pytest.mark.parametrize("every", [1, 3, 64])
async def test_receive_is_a_schedule_point_exactly_every_nth_call(every: int) -> None:
    async with EventBus(checkpoint_every=every) as bus:
        sub = bus.subscribe(buffer=10_000)
        for i in range(3 * every + 1):
            bus.publish_nowait(ev(i))
        for i in range(1, 3 * every + 2):
            if i % every == 0:
                with assert_checkpoints():
                    assert (await sub.receive()).payload["n"] == i - 1
            else:
                with assert_no_checkpoints():
                    assert (await sub.receive()).payload["n"] == i - 1


async def test_async_for_paces_like_receive() -> None:
    async with EventBus(checkpoint_every=4) as bus:
        sub = bus.subscribe(buffer=100)
        for i in range(13):
            bus.publish_nowait(ev(i))
        task = trio.lowlevel.current_task()
        seen = []
        points = []
        before = task._schedule_points
        async for event in sub:
            seen.append(event.payload["n"])
            if task._schedule_points != before:
                points.append(len(seen))
                before = task._schedule_points
            if len(seen) == 13:
                break
        assert seen == list(range(13))
        assert points == schedule_points(13, 4)


async def test_each_subscription_and_the_publisher_count_their_own_calls() -> None:
    async with EventBus(checkpoint_every=3) as bus:
        a = bus.subscribe(buffer=100)
        b = bus.subscribe(buffer=100)
        # Publishes 1 and 2 do not yield; 3 does.
        with assert_no_checkpoints():
            await bus.publish(ev(1))
            await bus.publish(ev(2))
        with assert_checkpoints():
            await bus.publish(ev(3))
        with assert_no_checkpoints():
            await a.receive()
            await b.receive()
            await a.receive()
            await b.receive()
        with assert_checkpoints():
            await a.receive()
        with assert_checkpoints():
            await b.receive()


async def test_a_receive_that_waits_is_a_checkpoint_and_restarts_the_count() -> None:
    async with EventBus(checkpoint_every=4) as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=100)

        async def publish_later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            bus.publish_nowait(ev(0))

        with assert_no_checkpoints():
            bus.publish_nowait(ev(-1))
            await sub.receive()  # call 1 of 4
        nursery.start_soon(publish_later)
        with assert_checkpoints():
            await sub.receive()  # waits: call 2 yields, and the count restarts
        for i in range(1, 9):
            bus.publish_nowait(ev(i))
        with assert_no_checkpoints():
            for _ in range(3):
                await sub.receive()
        with assert_checkpoints():
            await sub.receive()  # the 4th call since the wait


async def test_a_publish_that_waits_for_room_is_a_checkpoint_and_restarts_the_count() -> None:
    async with EventBus(checkpoint_every=4) as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=1)
        await bus.publish(ev(0))  # call 1 of 4: the buffer is full now

        async def take_later() -> None:
            await trio.testing.wait_all_tasks_blocked()
            await sub.receive()

        nursery.start_soon(take_later)
        with assert_checkpoints():
            await bus.publish(ev(1))  # waits for room: call 2 yields
        sub.close()
        with assert_no_checkpoints():
            for i in range(3):
                await bus.publish(ev(i))
        with assert_checkpoints():
            await bus.publish(ev(9))  # the 4th call since the wait


@pytest.mark.parametrize("every", [1, 5, 64])
async def test_a_store_backed_publish_yields_on_the_bus_s_and_the_store_s_count(every: int) -> None:
    # The bus's count, and the MemoryEventStore's own: its append yields on
    # every 64th call (a schedule point; the bus's entry check makes it a
    # full checkpoint only on the bus's own due calls).
    async with EventBus(MemoryEventStore(), checkpoint_every=every) as bus:
        calls = 2 * EVERY
        full = set(schedule_points(calls, every))
        store_only = set(schedule_points(calls, EVERY)) - full
        for i in range(1, calls + 1):
            if i in full:
                with assert_checkpoints():
                    await bus.publish(ev(i))
            elif i in store_only:
                before = points()
                await bus.publish(ev(i))
                assert points() == (before[0], before[1] + 1)
            else:
                with assert_no_checkpoints():
                    await bus.publish(ev(i))
        assert await bus.store.head() == calls  # type: ignore[union-attr]


async def test_every_publish_checks_for_cancellation() -> None:
    async with EventBus(checkpoint_every=4) as bus:
        sub = bus.subscribe(buffer=100)
        for i in range(10):
            before = points()
            with trio.CancelScope() as scope:
                scope.cancel()
                await bus.publish(ev(i))
            assert scope.cancelled_caught
            assert_full_checkpoint_since(before)  # it raised through one
        assert len(sub._queue) == 0
        assert bus.statistics().published == 0
        # Each cancelled call yielded: the count restarted after the last one.
        with assert_no_checkpoints():
            for i in range(3):
                await bus.publish(ev(i))
        with assert_checkpoints():
            await bus.publish(ev(3))


async def test_every_receive_checks_for_cancellation() -> None:
    async with EventBus(checkpoint_every=4) as bus:
        sub = bus.subscribe(buffer=100)
        for i in range(5):
            bus.publish_nowait(ev(i))
        for _ in range(10):
            before = points()
            with trio.CancelScope() as scope:
                scope.cancel()
                await sub.receive()
            assert scope.cancelled_caught
            assert_full_checkpoint_since(before)
        # Nothing was consumed.
        assert [(await sub.receive()).payload["n"] for _ in range(5)] == list(range(5))


async def test_a_deadline_stops_a_publish_loop_within_n_calls(
    mock_clock: trio.testing.MockClock,
) -> None:
    # A deadline becomes a cancellation when trio's scheduler runs: at the
    # next yield, so a loop that never waits sees it within checkpoint_every
    # calls, and the first call after that is cancelled before it publishes.
    async with EventBus(checkpoint_every=8) as bus:
        sub = bus.subscribe(buffer=1000)
        published_after = 0
        with trio.move_on_after(1) as scope:
            for i in range(3):
                await bus.publish(ev(i))
            mock_clock.jump(2)
            while True:
                await bus.publish(ev(0))
                published_after += 1
        assert scope.cancelled_caught
        # Calls 4..8 publish; call 8 yields and trio sees the deadline; call 9
        # is cancelled.
        assert published_after == 8 - 3
        assert len(sub._queue) == 8


@pytest.mark.parametrize(("every", "runs"), [(16, range(9, 12)), (1000, range(2))])
async def test_a_receive_loop_lets_other_tasks_run_every_nth_event(every: int, runs: range) -> None:
    # The point of the yields: a consumer whose buffer is full does not keep
    # the other tasks from running for more than about checkpoint_every events.
    async with EventBus(checkpoint_every=every) as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=1000)
        for i in range(160):
            bus.publish_nowait(ev(i))
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await trio.lowlevel.checkpoint()

        nursery.start_soon(ticker)
        await trio.lowlevel.checkpoint()  # the ticker is running
        start = ticks
        longest = gap = 0
        seen = ticks
        for _ in range(160):
            await sub.receive()
            gap = 0 if ticks != seen else gap + 1
            seen = ticks
            longest = max(longest, gap)
        nursery.cancel_scope.cancel()
        # The ticker runs once per yield of the receiver (once per batch of
        # trio's scheduler, whose order within a batch is random).
        assert ticks - start in runs
        if every < 160:
            assert longest <= 2 * every


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "checkpoint_every must be an int >= 1, got 0"),
        (-1, "checkpoint_every must be an int >= 1, got -1"),
        (True, "checkpoint_every must be an int >= 1, got True"),
        (2.0, "checkpoint_every must be an int >= 1, got 2.0"),
        ("64", "checkpoint_every must be an int >= 1, got '64'"),
    ],
)
def test_checkpoint_every_is_checked(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        EventBus(checkpoint_every=value)  # type: ignore[arg-type]


def test_checkpoint_every_is_readable() -> None:
    assert EventBus(checkpoint_every=1).checkpoint_every == 1

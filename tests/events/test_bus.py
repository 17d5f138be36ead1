"""EventBus: delivery, overflow policies, backpressure, catch-up, handlers, causality."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import pytest
import trio
import trio.testing

from trio_smith.events import (
    AgentEvent,
    BusClosed,
    Event,
    EventBus,
    EventFilter,
    EventStore,
    MemoryEventStore,
    NoEventStore,
    Overflow,
    SubscriberOverflowed,
    Subscription,
    SystemEvent,
    current_cause,
)

from .stores import GatedStore


def ev(n: int = 0, source: str = "agents/a") -> Event:
    return Event.new(AgentEvent.MESSAGE_RECEIVED, source=source, payload={"n": n})


def numbers(events: Sequence[Event]) -> list[int]:
    return [e.payload["n"] for e in events]


async def drain(sub: Subscription) -> list[Event]:
    """Everything ready now, without blocking."""
    got: list[Event] = []
    while True:
        try:
            got.append(sub.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return got


# ---------------------------------------------------------------- delivery


async def test_every_subscriber_gets_every_matching_event_in_order() -> None:
    async with EventBus() as bus:
        everything = bus.subscribe()
        agents = bus.subscribe(EventFilter(categories="agent"))
        for n in range(5):
            await bus.publish(ev(n))
            await bus.publish(Event.new(SystemEvent.STARTED, source="sys", payload={"n": n}))
        assert numbers(await drain(everything)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
        assert numbers(await drain(agents)) == [0, 1, 2, 3, 4]
        stats = bus.statistics()
    assert stats.published == 10
    assert stats.published_by_type == {"agent.message_received": 5, "system.started": 5}
    assert stats.delivered == 15


async def test_with_a_store_events_are_stored_first_and_delivered_with_positions() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        sub = bus.subscribe()
        first = await bus.publish(ev(1))
        bus.publish_nowait(ev(2))
        ephemeral = await bus.publish(ev(3), persist=False)
        got = await drain(sub)
    assert first.position == 1
    assert ephemeral.position is None
    assert [e.position for e in got] == [1, 2, None]
    assert await store.count() == 2


async def test_publishing_a_stored_id_again_delivers_nothing_and_returns_the_original() -> None:
    store = MemoryEventStore()
    event = ev(1)
    async with EventBus(store) as bus:
        sub = bus.subscribe()
        first = await bus.publish(event)
        again = await bus.publish(event)
        assert again == first
        assert len(await drain(sub)) == 1


async def test_iteration_ends_after_the_buffer_when_the_bus_closes() -> None:
    got: list[Event] = []
    async with EventBus() as bus:
        sub = bus.subscribe()
        for n in range(3):
            await bus.publish(ev(n))
    async for event in sub:
        got.append(event)
    assert numbers(got) == [0, 1, 2]


async def test_a_closed_subscription_refuses_to_receive_and_stops_buffering() -> None:
    async with EventBus() as bus:
        sub = bus.subscribe(name="mine")
        await sub.aclose()
        await bus.publish(ev())
        with pytest.raises(trio.ClosedResourceError, match=r"^subscription 'mine' is closed$"):
            await sub.receive()
        assert bus.statistics().subscriptions == ()


async def test_two_tasks_receiving_from_one_subscription_is_refused() -> None:
    async with EventBus() as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(name="s")
        nursery.start_soon(sub.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError, match=r"^another task is receiving from 's'$"):
            await sub.receive()
        nursery.cancel_scope.cancel()


async def test_a_cancelled_receive_consumes_nothing() -> None:
    async with EventBus() as bus:
        sub = bus.subscribe()
        with trio.CancelScope() as scope:
            scope.cancel()
            await bus.publish(ev(1))
        assert scope.cancelled_caught  # publish checks for cancellation first
        await bus.publish(ev(2))
        with trio.CancelScope() as scope:
            scope.cancel()
            await sub.receive()
        assert numbers(await drain(sub)) == [2]


# ---------------------------------------------------------------- overflow


async def test_block_makes_the_publisher_wait_for_room() -> None:
    async with EventBus() as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=2)
        published: list[int] = []

        async def publisher() -> None:
            for n in range(5):
                await bus.publish(ev(n))
                published.append(n)

        nursery.start_soon(publisher)
        await trio.testing.wait_all_tasks_blocked()
        assert published == [0, 1]
        assert sub.statistics().buffered == 2
        assert (await sub.receive()).payload["n"] == 0
        await trio.testing.wait_all_tasks_blocked()
        assert published == [0, 1, 2]
        got = [(await sub.receive()).payload["n"] for _ in range(4)]
        assert got == [1, 2, 3, 4]


async def test_publish_nowait_on_a_full_block_subscriber_publishes_nothing() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        full = bus.subscribe(EventFilter(categories="agent"), buffer=1)
        other = bus.subscribe()
        bus.publish_nowait(ev(1))
        with pytest.raises(trio.WouldBlock):
            bus.publish_nowait(ev(2))
        # An event the full subscriber does not take still goes through.
        bus.publish_nowait(Event.new(SystemEvent.STARTED, source="s"))
        assert await store.count() == 2
        assert len(await drain(other)) == 2
        assert len(await drain(full)) == 1


async def test_a_publisher_cancelled_while_waiting_for_room_published_nothing() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        sub = bus.subscribe(buffer=1)
        await bus.publish(ev(1))
        with trio.move_on_after(1) as scope:
            await bus.publish(ev(2))
        assert scope.cancelled_caught
        assert await store.count() == 1
        assert numbers(await drain(sub)) == [1]


async def test_drop_oldest_keeps_the_latest_events() -> None:
    async with EventBus() as bus:
        sub = bus.subscribe(buffer=3, overflow=Overflow.DROP_OLDEST)
        for n in range(10):
            bus.publish_nowait(ev(n))
        assert numbers(await drain(sub)) == [7, 8, 9]
        assert sub.statistics().dropped == 7


async def test_drop_newest_keeps_the_first_events() -> None:
    async with EventBus() as bus:
        sub = bus.subscribe(buffer=3, overflow=Overflow.DROP_NEWEST)
        for n in range(10):
            bus.publish_nowait(ev(n))
        assert numbers(await drain(sub)) == [0, 1, 2]
        assert bus.statistics().dropped == 7


async def test_drops_are_counted_always_and_logged_sparingly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with EventBus(name="b") as bus:
        sub = bus.subscribe(buffer=1, overflow=Overflow.DROP_NEWEST, name="s")
        for n in range(102):
            bus.publish_nowait(ev(n))
        assert sub.statistics().dropped == 101
    assert [r.getMessage() for r in caplog.records] == [
        f"subscription 's' on event bus 'b' has dropped {n} event(s) (DROP_NEWEST); "
        "statistics().dropped counts them"
        for n in (1, 10, 100)
    ]


async def test_error_delivers_the_buffer_then_raises_where_the_gap_begins() -> None:
    async with EventBus(MemoryEventStore()) as bus:
        sub = bus.subscribe(buffer=2, overflow=Overflow.ERROR, name="slow")
        for n in range(4):
            bus.publish_nowait(ev(n))
        assert numbers([await sub.receive(), await sub.receive()]) == [0, 1]
        message = (
            "subscription 'slow' fell behind: its buffer of 2 events was full "
            "(last delivered position 2)"
        )
        with pytest.raises(SubscriberOverflowed, match=f"^{re.escape(message)}$") as info:
            await sub.receive()
        assert info.value.last_position == 2
        assert sub.statistics().fell_behind == 1


async def test_catch_up_recovers_every_stored_event_once_in_order() -> None:
    async with EventBus(MemoryEventStore()) as bus:
        sub = bus.subscribe(buffer=2, overflow=Overflow.CATCH_UP)
        for n in range(2):
            await bus.publish(ev(n))
        bus.publish_nowait(ev(99), persist=False)  # cannot be recovered: dropped
        for n in range(2, 10):
            await bus.publish(ev(n))
        assert not sub.caught_up
        got = [await sub.receive() for _ in range(10)]
        await sub.wait_caught_up()
        await bus.publish(ev(10))
        got.append(await sub.receive())
        stats = sub.statistics()
    assert numbers(got) == list(range(11))
    assert [e.position for e in got] == list(range(1, 12))
    assert stats.dropped == 1
    assert stats.fell_behind == 1
    assert stats.caught_up


# ---------------------------------------------------------------- catch-up from a position


async def test_from_position_replays_then_goes_live_exactly_once() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        for n in range(5):
            await bus.publish(ev(n))
        sub = bus.subscribe(from_position=2)
        await bus.publish(ev(5))
        got = [await sub.receive() for _ in range(4)]
        await sub.wait_caught_up()
        await bus.publish(ev(6))
        got.append(await sub.receive())
    assert [e.position for e in got] == [3, 4, 5, 6, 7]


async def test_from_position_zero_with_a_filter_replays_the_matching_log() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        for n in range(6):
            await bus.publish(ev(n, source=f"agents/{n % 2}"))
        sub = bus.subscribe(EventFilter(sources="agents/1"), from_position=0)
        got = [await sub.receive() for _ in range(3)]
    assert numbers(got) == [1, 3, 5]


async def test_catch_up_with_a_store_that_commits_later_keeps_position_order() -> None:
    store = GatedStore()
    async with EventBus(store) as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=1)
        for n in range(3):
            nursery.start_soon(bus.publish, ev(n))
        await trio.testing.wait_all_tasks_blocked()
        store.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        got: list[Event] = []
        while len(got) < 3:
            got.append(await sub.receive())
        # Over capacity (a store that commits later), still in position order.
        assert [e.position for e in got] == [1, 2, 3]


# ---------------------------------------------------------------- handlers


async def test_a_raising_handler_is_isolated_counted_logged_and_called_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    async def handler(event: Event) -> None:
        seen.append(event.payload["n"])
        if event.payload["n"] % 2:
            raise ValueError("odd")

    async with EventBus() as bus:
        other = bus.subscribe()
        h = await bus.add_handler(handler, name="h")
        for n in range(5):
            await bus.publish(ev(n))
    assert seen == [0, 1, 2, 3, 4]
    assert h.statistics().handler_errors == 2
    assert numbers(await drain(other)) == [0, 1, 2, 3, 4]
    errors = [r for r in caplog.records if r.name == "trio_smith.events"]
    assert len(errors) == 2
    assert errors[0].levelno == logging.ERROR
    assert errors[0].getMessage().startswith("handler 'h' on bus ")


async def test_events_published_by_a_handler_are_caused_by_its_event() -> None:
    async with EventBus(MemoryEventStore()) as bus:
        replies = bus.subscribe(EventFilter(categories="system"))

        async def reply(event: Event) -> None:
            assert current_cause() == event
            await bus.publish(Event.new(SystemEvent.STARTED, source="handler"))

        await bus.add_handler(reply, EventFilter(categories="agent"))
        root = await bus.publish(ev(1))
        answer = await replies.receive()
    assert answer.causation_id == root.id
    assert answer.correlation_id == root.correlation_id == root.id


async def test_a_subscription_loop_sets_the_cause_and_restores_it_after() -> None:
    async with EventBus() as bus:
        async with bus.subscribe() as sub:
            await bus.publish(ev(1))
            async for event in sub:
                made = Event.new(SystemEvent.STARTED, source="me")
                assert made.causation_id == event.id
                break
        assert current_cause() is None


async def test_remove_handler_stops_it_and_frees_the_name() -> None:
    seen: list[int] = []

    async def handler(event: Event) -> None:
        seen.append(event.payload["n"])

    async with EventBus() as bus:
        h = await bus.add_handler(handler, name="h")
        await bus.publish(ev(1))
        await trio.testing.wait_all_tasks_blocked()
        await bus.remove_handler(h)
        await bus.remove_handler("h")  # idempotent
        await bus.publish(ev(2))
        await bus.add_handler(handler, name="h")
    assert seen == [1]


async def test_a_second_handler_with_the_same_name_is_refused() -> None:
    async def handler(event: Event) -> None:
        pass

    async with EventBus(name="b") as bus:
        await bus.add_handler(handler, name="h")
        with pytest.raises(ValueError, match=r"^a handler named 'h' is already on bus 'b'$"):
            await bus.add_handler(handler, name="h")


async def test_a_sync_handler_is_refused() -> None:
    def handler(event: Event) -> None:
        pass

    async with EventBus() as bus:
        with pytest.raises(TypeError, match="handler") as caught:
            await bus.add_handler(handler)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "handler must be an async function, got the plain function "
        "'test_a_sync_handler_is_refused.<locals>.handler' (define it with async def)"
    )


async def test_on_a_clean_exit_handlers_finish_their_buffered_events() -> None:
    seen: list[int] = []

    async def slow(event: Event) -> None:
        await trio.lowlevel.checkpoint()
        seen.append(event.payload["n"])

    async with EventBus() as bus:
        await bus.add_handler(slow)
        for n in range(20):
            bus.publish_nowait(ev(n))
    assert seen == list(range(20))


# ---------------------------------------------------------------- reading the store


async def test_replay_get_by_id_and_get_by_correlation_read_the_store() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        root = await bus.publish(ev(0))
        for n in range(1, 4):
            await bus.publish(
                Event.new(AgentEvent.STARTED, source="a", payload={"n": n}, cause=root)
            )
        await bus.publish(ev(9))
        assert await bus.get_by_id(root.id) == root
        chain = await bus.get_by_correlation(root.id)
        assert numbers(chain) == [0, 1, 2, 3]
        replayed = [e async for e in bus.replay(filter=EventFilter(types="agent.started"))]
        assert numbers(replayed) == [1, 2, 3]
        assert numbers([e async for e in bus.replay()]) == [0, 1, 2, 3, 9]
        later = root.timestamp.replace(year=root.timestamp.year + 1)
        assert [e async for e in bus.replay(since=later)] == []


# ---------------------------------------------------------------- errors


async def test_operations_that_need_a_store_say_so() -> None:
    async with EventBus(name="b") as bus:
        with pytest.raises(
            NoEventStore, match=r"^event bus 'b' has no store, which from_position needs$"
        ):
            bus.subscribe(from_position=0)
        with pytest.raises(
            NoEventStore, match=r"^event bus 'b' has no store, which Overflow.CATCH_UP needs$"
        ):
            bus.subscribe(overflow=Overflow.CATCH_UP)
        with pytest.raises(NoEventStore, match=r"^event bus 'b' has no store, which replay needs$"):
            bus.replay()


async def test_a_closed_bus_refuses_and_wakes_blocked_publishers() -> None:
    bus = EventBus(name="b")
    with pytest.raises(BusClosed, match=r"^event bus 'b' is not open$"):
        await bus.publish(ev())
    caught: list[BusClosed] = []

    async def blocked() -> None:
        try:
            await bus.publish(ev(2))
        except BusClosed as exc:
            caught.append(exc)

    async with trio.open_nursery() as nursery, bus:
        bus.subscribe(buffer=1)
        await bus.publish(ev(1))
        nursery.start_soon(blocked)
        await trio.testing.wait_all_tasks_blocked()
    assert len(caught) == 1
    with pytest.raises(BusClosed, match=r"^event bus 'b' is not open$"):
        bus.publish_nowait(ev())
    with pytest.raises(BusClosed, match=r"^event bus 'b' is not open$"):
        bus.subscribe()
    with pytest.raises(RuntimeError, match=r"^event bus 'b' was already entered; build a new one$"):
        async with bus:
            pass


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(buffer=0), ValueError, "buffer must be an int >= 1, got 0"),
        (dict(buffer=True), ValueError, "buffer must be an int >= 1, got True"),
        (dict(overflow="block"), TypeError, "overflow must be an Overflow, got 'block'"),
        (dict(from_position=-1), ValueError, "from_position must be an int >= 0 or None, got -1"),
        (dict(name=""), ValueError, "name must be a non-empty str or None, got ''"),
        (dict(filter="agent"), TypeError, "filter must be an EventFilter or None, got 'agent'"),
    ],
)
async def test_bad_subscribe_arguments_are_refused_by_name(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    async with EventBus(MemoryEventStore()) as bus:
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            bus.subscribe(**kwargs)  # type: ignore[arg-type]


def test_bad_bus_arguments_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"^store must be an EventStore or None, got 'x'$"):
        EventBus("x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^name must be a non-empty str or None, got ''$"):
        EventBus(name="")


async def test_publishing_something_else_than_an_event_is_refused() -> None:
    async with EventBus() as bus:
        with pytest.raises(TypeError, match=r"^expected an Event, got 'x'$"):
            await bus.publish("x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^expected an Event, got 'x'$"):
            bus.publish_nowait("x")  # type: ignore[arg-type]


def test_an_event_store_is_an_abstract_interface() -> None:
    with pytest.raises(TypeError):
        EventStore()  # type: ignore[abstract]


async def test_cancelled_while_handlers_drain_the_bus_still_stops_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopped = []

    async def stuck(event: Event) -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.append(event.payload["n"])

    with trio.move_on_after(5) as scope:
        async with EventBus() as bus:
            await bus.add_handler(stuck)
            await bus.publish(ev(1))
    assert scope.cancelled_caught
    assert stopped == [1]
    assert not bus.statistics().open


async def test_catch_up_over_several_store_pages_keeps_order() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus:
        await store.append_many([ev(n) for n in range(2500)])
        sub = bus.subscribe(from_position=0, buffer=4)
        got = []
        async for event in sub:
            got.append(event.position)
            if len(got) == 2500:
                break
        assert got == list(range(1, 2501))
        assert sub.caught_up


async def test_wait_caught_up_blocks_until_the_replay_is_delivered() -> None:
    store = MemoryEventStore()
    async with EventBus(store) as bus, trio.open_nursery() as nursery:
        for n in range(3):
            await bus.publish(ev(n))
        sub = bus.subscribe(from_position=0)
        done = trio.Event()

        async def waiter() -> None:
            await sub.wait_caught_up()
            done.set()

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        await sub.receive()
        await sub.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        await sub.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert done.is_set()


async def test_closing_a_full_block_subscriber_releases_its_publisher() -> None:
    async with EventBus() as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=1)
        await bus.publish(ev(1))
        nursery.start_soon(bus.publish, ev(2))
        await trio.testing.wait_all_tasks_blocked()
        assert bus.statistics().published == 1
        await sub.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert bus.statistics().published == 2


async def test_long_runs_of_publishes_and_receives_yield_to_other_tasks() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with EventBus() as bus, trio.open_nursery() as nursery:
        sub = bus.subscribe(buffer=1000)
        nursery.start_soon(ticker)
        before = ticks
        for n in range(640):
            await bus.publish(ev(n))
        after_publishing = ticks
        got = 0
        async for _ in sub:
            got += 1
            if got == 640:
                break
        after_receiving = ticks
        nursery.cancel_scope.cancel()
    # A yield every 64 calls: the ticker ran about ten times in each loop.
    assert after_publishing - before >= 9
    assert after_receiving - after_publishing >= 9


async def test_a_handler_under_error_policy_is_resubscribed_after_it_fell_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []
    gate = trio.Event()

    async def slow(event: Event) -> None:
        await gate.wait()
        seen.append(event.payload["n"])

    async with EventBus() as bus:
        handler = await bus.add_handler(slow, buffer=2, overflow=Overflow.ERROR, name="h")
        first = handler.subscription
        for n in range(3):
            bus.publish_nowait(ev(n))  # 0 and 1 fill the buffer of 2; 2 overflows
        gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert handler.subscription is not first
        bus.publish_nowait(ev(9))
        await trio.testing.wait_all_tasks_blocked()
        assert handler.statistics().fell_behind == 1
    assert seen == [0, 1, 9]
    assert any("fell behind" in r.getMessage() for r in caplog.records)

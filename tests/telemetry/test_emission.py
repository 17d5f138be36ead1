"""Each emission point of the library, seen by an attached handler (docs/design.md rule 44)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import ChildSpec, Restart, RestartIntensityExceeded, Supervisor, telemetry
from trio_smith.events import (
    Event,
    EventBus,
    MemoryEventStore,
    Overflow,
    PostgresEventStore,
    SQLiteEventStore,
    StoreUnavailable,
    SystemEvent,
    caused_by,
)
from trio_smith.resilience import CallNotPermitted, CircuitBreaker
from trio_smith.routing import AgentDied, Registry, Router, Task

from ..postgres import PostgresServer
from .conftest import Seen

CHILD = [("trio_smith", "child", kind) for kind in ("started", "failed", "restarted", "stopped")]
GAVE_UP = ("trio_smith", "supervisor", "gave_up")


async def test_supervision_events(seen: Seen, autojump_clock: trio.testing.MockClock) -> None:
    telemetry.attach("sup", [*CHILD, GAVE_UP], seen)
    runs = 0

    async def crash() -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(1)
        raise ValueError("boom")

    async def idle() -> None:
        await trio.sleep_forever()

    bus = EventBus()
    async with bus:
        with pytest.raises(RestartIntensityExceeded):
            async with Supervisor(
                [ChildSpec("idle", idle), ChildSpec("c", crash)],
                name="top",
                max_restarts=1,
                within=10,
                events=bus,
            ):
                await trio.sleep_forever()
    kinds = [(n[-1], d["child_id"]) for n, _, d in seen.events if n != GAVE_UP]
    assert kinds == [
        ("started", "idle"),
        ("started", "c"),
        ("failed", "c"),
        ("restarted", "c"),
        ("started", "c"),
        ("failed", "c"),
        ("stopped", "idle"),
    ]
    started = seen.named("trio_smith", "child", "started")
    correlation = started[1][1]["correlation_id"]
    assert isinstance(correlation, str)  # its event's chain
    assert started[1][0] == {"incarnation": 2}
    assert started[1][1] == {
        "supervisor": "top",
        "child_id": "c",
        "incarnation": 2,
        "os_pid": None,
        "correlation_id": correlation,
    }
    failed = seen.named("trio_smith", "child", "failed")
    assert failed[0][0] == {"incarnation": 2}
    assert failed[0][1]["error_type"] == "ValueError"
    assert failed[0][1]["reason"] == "failed"
    restarted = seen.named("trio_smith", "child", "restarted")
    assert restarted == [
        (
            {"incarnation": 3, "restarts": 1},
            {
                "supervisor": "top",
                "child_id": "c",
                "incarnation": 3,
                "os_pid": None,
                "correlation_id": failed[0][1]["correlation_id"],  # one chain (rule 40)
            },
        )
    ]
    stopped = seen.named("trio_smith", "child", "stopped")
    assert stopped[0][1]["reason"] == "shutdown"
    assert stopped[0][1]["error_type"] is None
    assert seen.named(*GAVE_UP) == [
        ({"restarts": 2}, {"supervisor": "top", "reason": "intensity", "child_id": "c"})
    ]
    assert runs == 2


async def test_supervision_events_without_a_publisher(
    seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    telemetry.attach("sup", CHILD, seen)

    async def done() -> None:
        await trio.sleep(1)

    async with Supervisor([ChildSpec("d", done, restart=Restart.TEMPORARY)]) as sup:
        await trio.sleep(2)
        await sup.shutdown()
    assert [n[-1] for n, _, _ in seen.events] == ["started", "stopped"]
    assert seen.events[1][2]["reason"] == "normal"
    assert seen.events[1][2]["correlation_id"] is None


BREAKER = [("trio_smith", "breaker", "state_change"), ("trio_smith", "breaker", "call")]


async def fails() -> None:
    raise OSError("down")


async def works() -> int:
    return 1


async def test_breaker_tripping(seen: Seen, autojump_clock: trio.testing.MockClock) -> None:
    telemetry.attach("breaker", BREAKER, seen)
    breaker = CircuitBreaker(
        "db", sliding_window_size=2, minimum_calls=2, slow_call_duration_threshold=0.5
    )
    assert await breaker.call(works) == 1
    with pytest.raises(OSError, match=r"^down$"):
        await breaker.call(fails)  # 50% of 2 calls: it opens
    with pytest.raises(CallNotPermitted):
        await breaker.call(works)
    calls = seen.named("trio_smith", "breaker", "call")
    assert [d["outcome"] for _, d in calls] == ["success", "failure", "not_permitted"]
    assert calls[0] == ({"duration": 0.0}, {"breaker": "db", "outcome": "success", "slow": False})
    assert seen.named("trio_smith", "breaker", "state_change") == [
        ({}, {"breaker": "db", "from_state": "CLOSED", "to_state": "OPEN"})
    ]
    # The state change comes before the outcome of the call that tripped it.
    assert [n[-1] for n, _, _ in seen.events] == ["call", "state_change", "call", "call"]


async def test_breaker_slow_ignored_and_async_with(
    seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    telemetry.attach("breaker", BREAKER, seen)
    breaker = CircuitBreaker("b", slow_call_duration_threshold=0.5, ignore_exceptions=(KeyError,))

    async def slow() -> None:
        await trio.sleep(1)

    await breaker.call(slow)
    with pytest.raises(KeyError):
        async with breaker:
            raise KeyError("x")
    async with breaker:
        await trio.sleep(0.25)
    breaker.force_open()
    with pytest.raises(CallNotPermitted):
        async with breaker:
            pass
    assert seen.named("trio_smith", "breaker", "call") == [
        ({"duration": 1.0}, {"breaker": "b", "outcome": "success", "slow": True}),
        ({"duration": 0.0}, {"breaker": "b", "outcome": "ignored", "slow": False}),
        ({"duration": 0.25}, {"breaker": "b", "outcome": "success", "slow": False}),
        ({"duration": 0.0}, {"breaker": "b", "outcome": "not_permitted", "slow": False}),
    ]
    assert seen.named("trio_smith", "breaker", "state_change") == [
        ({}, {"breaker": "b", "from_state": "CLOSED", "to_state": "FORCED_OPEN"})
    ]


async def test_breaker_on_trio_clock_hot_path(seen: Seen) -> None:
    # Trio's SystemClock: the shell's hot path (rule 23) tells the outcome too.
    telemetry.attach("breaker", BREAKER, seen)
    breaker = CircuitBreaker("fast")
    for _ in range(3):
        await breaker.call(works)
    calls = seen.named("trio_smith", "breaker", "call")
    assert [d for _, d in calls] == [{"breaker": "fast", "outcome": "success", "slow": False}] * 3
    assert all(0 <= m["duration"] < 1 for m, _ in calls)


async def test_bus_drops(seen: Seen) -> None:
    telemetry.attach("bus", [("trio_smith", "bus", "dropped")], seen)
    async with (
        EventBus(name="main") as bus,
        bus.subscribe(buffer=1, overflow=Overflow.DROP_NEWEST, name="slow"),
    ):
        for _ in range(3):
            bus.publish_nowait(Event.new(SystemEvent.STARTED, source="t"))
    assert (
        seen.events
        == [
            (
                ("trio_smith", "bus", "dropped"),
                {"count": 1},
                {"bus": "main", "subscription": "slow"},
            )
        ]
        * 2
    )


COMMIT = ("trio_smith", "store", "commit")


async def test_sqlite_store_commit(seen: Seen, tmp_path: pathlib.Path) -> None:
    telemetry.attach("store", [COMMIT], seen)
    path = tmp_path / "events.db"
    async with SQLiteEventStore(path) as store:
        await store.append(Event.new(SystemEvent.STARTED, source="t"))
        await store.append_many([Event.new(SystemEvent.STARTED, source="t") for _ in range(3)])
    assert [m["events"] for _, m, _ in seen.events] == [1, 3]
    assert all(d == {"store": store.name} for _, _, d in seen.events)
    assert all(m["duration"] > 0 for _, m, _ in seen.events)


async def test_a_store_that_drops_queued_events_says_so(
    seen: Seen, private_postgres: PostgresServer
) -> None:
    # The one way a store loses events: append_nowait work whose commit
    # failed (here: the server went away), counted and told.
    telemetry.attach("store", [("trio_smith", "store", "dropped")], seen)
    async with PostgresEventStore(private_postgres.dsn, name="pg") as store:
        await store.append(Event.new(SystemEvent.STARTED, source="t"))
        await trio.to_thread.run_sync(private_postgres.stop)
        store.append_nowait(Event.new(SystemEvent.STARTED, source="t"))
        store.append_nowait(Event.new(SystemEvent.STARTED, source="t"))
        with pytest.raises(StoreUnavailable):
            await store.append(Event.new(SystemEvent.STARTED, source="t"))
        assert store.statistics().dropped == 2
        await trio.to_thread.run_sync(private_postgres.start)
    assert sum(m["count"] for _, m, _ in seen.events) == 2
    assert {tuple(sorted(d.items())) for _, _, d in seen.events} == {
        (("error_type", "StoreUnavailable"), ("store", "pg"))
    }


async def test_memory_store_commit(seen: Seen) -> None:
    telemetry.attach("store", [COMMIT], seen)
    store = MemoryEventStore(name="mem")
    event = Event.new(SystemEvent.STARTED, source="t")
    await store.append(event)
    await store.append(event)  # already stored: no commit
    assert [(m["events"], d) for _, m, d in seen.events] == [(1, {"store": "mem"})]


ROUTER = [("trio_smith", "router", "request", end) for end in ("start", "stop", "exception")]


def answering(agent: str) -> Any:
    async def handler(task: Task) -> str:
        await trio.sleep(0.5)
        if task.payload == "crash":
            raise ValueError("boom")
        return agent

    return handler


async def test_router_request_span(seen: Seen, autojump_clock: trio.testing.MockClock) -> None:
    telemetry.attach("router", ROUTER, seen)
    registry = Registry()
    router = Router(registry, {"t": "worker"}, name="hub")
    cause = Event.new(SystemEvent.STARTED, source="test")
    async with Supervisor([registry.agent("w1", answering("w1"), role="worker")]) as sup:
        task = Task("t")
        with caused_by(cause):
            assert await router.request(task) == "w1"
        crashing = Task("t", "crash")
        with pytest.raises(AgentDied):
            await router.request(crashing)
        await sup.shutdown()
    names = [n[-1] for n, _, _ in seen.events]
    assert names == ["start", "stop", "start", "exception"]
    start, stop = seen.events[0][1:], seen.events[1][1:]
    assert set(start[0]) == {"system_time"}
    common = {
        "router": "hub",
        "task_type": "t",
        "task_id": str(task.id),
        "correlation_id": str(cause.id),
        "causation_id": str(cause.id),
    }
    assert start[1] == {**common, "role": None, "agent": None}
    assert stop == ({"duration": 0.5}, {**common, "role": "worker", "agent": "w1"})
    failed_measurements, failed = seen.events[3][1:]
    assert failed_measurements == {"duration": 0.5}
    assert failed["kind"] == "error"
    assert str(failed["reason"]).startswith("AgentDied: ")
    assert failed["task_id"] == str(crashing.id)
    assert failed["causation_id"] is None
    assert (failed["role"], failed["agent"]) == ("worker", "w1")

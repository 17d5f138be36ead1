"""``Supervisor(events=...)``: supervision events on the bus, with causal links."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_smith import ChildSpec, Restart, RestartIntensityExceeded, Supervisor
from trio_smith.events import (
    EventBus,
    EventFilter,
    MemoryEventStore,
    SupervisionEvent,
)
from trio_smith.events._codec import dump_payload

from ..publisher import Recorder


def kinds(rec: Recorder) -> list[tuple[str, str | None]]:
    return [(e.type.name, e.payload.get("child_id")) for e in rec.events]


async def idle() -> None:
    await trio.sleep_forever()


async def test_a_crash_and_restart_publish_failed_restarted_started_in_one_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    crashed = False

    async def crash_once() -> None:
        nonlocal crashed
        await trio.sleep(1)
        if not crashed:
            crashed = True
            raise ValueError("disk full")
        await trio.sleep_forever()

    async with Supervisor(
        [ChildSpec("db", idle), ChildSpec("worker", crash_once)], name="root", events=rec
    ) as sup:
        await trio.sleep(2)
        await sup.shutdown()
    assert kinds(rec) == [
        ("child_started", "db"),
        ("child_started", "worker"),
        ("supervisor_started", None),
        ("child_failed", "worker"),
        ("child_restarted", "worker"),
        ("child_started", "worker"),
        ("child_stopped", "worker"),
        ("child_stopped", "db"),
        ("supervisor_stopped", None),
    ]
    failed = rec.events[3]
    restarted = rec.events[4]
    assert failed.payload == {
        "supervisor": "root",
        "child_id": "worker",
        "incarnation": failed.payload["incarnation"],
        "error_type": "ValueError",
        "error": "disk full",
        "traceback": failed.payload["traceback"],
    }
    # The innermost frames, where it was raised: file:line in function.
    innermost = failed.payload["traceback"].splitlines()[-1]
    assert innermost.startswith(__file__ + ":")
    assert innermost.endswith(" in crash_once")
    assert restarted.causation_id == failed.id
    assert restarted.correlation_id == failed.correlation_id == failed.id
    assert rec.events[5].payload["incarnation"] == restarted.payload["incarnation"]
    assert all(e.source == "root" for e in rec.events)
    assert rec.events[6].payload["reason"] == "shutdown"
    assert rec.events[-1].payload == {"supervisor": "root", "reason": "shutdown"}


async def test_nested_supervisors_inherit_the_publisher_and_use_their_path(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def inner() -> None:
        async with Supervisor([ChildSpec("leaf", idle)]):
            await trio.sleep_forever()

    async with Supervisor([ChildSpec("branch", inner)], name="root", events=rec) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    leaf = [e for e in rec.events if e.payload.get("child_id") == "leaf"]
    assert [e.type.name for e in leaf] == ["child_started", "child_stopped"]
    assert {e.source for e in leaf} == {"root/branch"}
    assert leaf[0].payload["supervisor"] == "root/branch"


async def test_giving_up_is_published_with_the_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def crash() -> None:
        await trio.sleep(0.1)
        raise KeyError("gone")

    try:
        async with Supervisor([ChildSpec("c", crash)], max_restarts=1, name="s", events=rec):
            await trio.sleep_forever()
    except RestartIntensityExceeded:
        pass
    gave_up = [e for e in rec.events if e.type == SupervisionEvent.SUPERVISOR_GAVE_UP]
    assert len(gave_up) == 1
    assert gave_up[0].payload == {
        "supervisor": "s",
        "reason": "intensity",
        "child_id": "c",
        "error_type": "KeyError",
        "error": "'gone'",
        "traceback": gave_up[0].payload["traceback"],
    }
    assert gave_up[0].payload["traceback"].endswith(" in crash")
    last_failure = [e for e in rec.events if e.type == SupervisionEvent.CHILD_FAILED][-1]
    assert gave_up[0].causation_id == last_failure.id
    assert rec.events[-1].payload["reason"] == "intensity"


async def test_an_error_whose_text_holds_a_lone_surrogate_is_published_storable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # UTF-8 cannot encode a lone surrogate: published as is, the events would
    # fail a store's batch commit. They carry its backslash escape instead.
    rec = Recorder()

    class OddError(RuntimeError):
        pass

    OddError.__module__ = "odd\udc80"  # a type name may hold one too

    async def crash() -> None:
        await trio.sleep(0.1)
        raise OddError("bad \ud800")

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor([ChildSpec("c", crash)], max_restarts=0, name="s", events=rec):
            await trio.sleep_forever()
    [failed] = rec.of(SupervisionEvent.CHILD_FAILED)
    [gave_up] = rec.of(SupervisionEvent.SUPERVISOR_GAVE_UP)
    for event in (failed, gave_up):
        assert event.payload["error"] == "bad \\ud800"
        assert event.payload["error_type"] == (
            "odd\\udc80.test_an_error_whose_text_holds_a_lone_surrogate_is_published_storable."
            "<locals>.OddError"
        )
    for event in rec.events:
        dump_payload(event.payload).encode("utf-8")


async def test_a_normal_return_and_an_ignored_start_are_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def done() -> None:
        await trio.sleep(1)

    async def ignore(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return

    async with Supervisor(
        [
            ChildSpec("t", done, restart=Restart.TEMPORARY),
            ChildSpec("i", ignore, restart=Restart.TEMPORARY),
        ],
        events=rec,
    ) as sup:
        await trio.sleep(2)
        await sup.shutdown()
    stops = {
        e.payload["child_id"]: e.payload["reason"]
        for e in rec.events
        if e.type.name == "child_stopped"
    }
    assert stops == {"t": "normal", "i": "ignored"}


async def test_a_refusing_publisher_never_stops_supervision(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder(refuse=True)
    async with Supervisor([ChildSpec("a", idle)], events=rec) as sup:
        await trio.sleep(1)
        stats = sup.statistics()
        await sup.shutdown()
    assert stats.events_dropped == 2  # child_started, supervisor_started
    assert rec.events == []


async def test_supervision_events_reach_a_stored_bus_and_trace_by_correlation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryEventStore()
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(1)
        if calls == 1:
            raise RuntimeError("flake")
        await trio.sleep_forever()

    async with EventBus(store) as bus:
        async with bus.subscribe(EventFilter(categories="supervision")) as events:
            async with Supervisor([ChildSpec("w", flaky)], name="app", events=bus) as sup:
                await trio.sleep(2)
                await sup.shutdown()
            seen = []
            while True:
                event = await events.receive()
                seen.append(event)
                if event.type == SupervisionEvent.SUPERVISOR_STOPPED:
                    break
        failed = next(e for e in seen if e.type == SupervisionEvent.CHILD_FAILED)
        chain = await bus.get_by_correlation(failed.id)
    assert [e.type.name for e in chain] == ["child_failed", "child_restarted", "child_started"]
    assert [e.position for e in seen] == sorted(e.position for e in seen if e.position)


def test_a_publisher_without_publish_nowait_is_refused() -> None:
    with pytest.raises(
        TypeError, match=r"^events must have a publish_nowait method, got <object object at "
    ):
        Supervisor(events=object())  # type: ignore[arg-type]


async def test_a_full_block_subscriber_never_stalls_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    crashes = 0

    async def crash_twice() -> None:
        nonlocal crashes
        await trio.sleep(1)
        if crashes < 2:
            crashes += 1
            raise ValueError("again")
        await trio.sleep_forever()

    async with EventBus() as bus:
        stuck = bus.subscribe(buffer=1)  # never drained
        async with Supervisor([ChildSpec("c", crash_twice)], events=bus) as sup:
            await trio.sleep(5)
            stats = sup.statistics()
            await sup.shutdown()
        assert stuck.statistics().buffered == 1
    assert stats.restarts == 2
    assert stats.events_dropped >= 6  # two failed/restarted/started triples, at least

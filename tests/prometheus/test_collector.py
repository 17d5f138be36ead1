"""trio_smith.prometheus: a live tree, breaker, bus and store, read through real scrapes.

Scrapes run on another thread (``trio.to_thread``, or prometheus_client's own
HTTP server), as in production, and are parsed with prometheus_client's
parser: docs/design.md rule 45.
"""

from __future__ import annotations

import math
import pathlib
import threading
import urllib.request
from collections.abc import Iterator

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from trio_smith import ChildSpec, DynamicSupervisor, Restart, Supervisor, current_child
from trio_smith.events import (
    AgentEvent,
    Event,
    EventBus,
    EventFilter,
    MemoryEventStore,
    Overflow,
    SQLiteEventStore,
)
from trio_smith.prometheus import TrioSmithCollector
from trio_smith.resilience import CallNotPermitted, CircuitBreaker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def scrape(registry: CollectorRegistry) -> Samples:
    """A scrape from another thread, as prometheus_client's HTTP server does."""
    text = await trio.to_thread.run_sync(generate_latest, registry)
    return parse(text.decode())


def registry_of(collector: TrioSmithCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


async def idle() -> None:
    await trio.sleep_forever()


class Boom(Exception):
    pass


async def test_a_live_tree_breaker_bus_and_store_through_a_real_scrape(
    tmp_path: pathlib.Path,
) -> None:
    crashes = 0
    go, crashed = trio.Event(), trio.Event()

    async def crash_twice() -> None:
        nonlocal crashes
        await go.wait()
        if crashes < 2:
            crashes += 1
            if crashes == 2:
                crashed.set()
            raise Boom("boom")
        await trio.sleep_forever()

    async def failing() -> None:
        raise Boom("down")

    breaker = CircuitBreaker("payments", minimum_calls=2, sliding_window_size=2)
    children = [
        ChildSpec("steady", idle),
        ChildSpec("flaky", crash_twice),
        Supervisor.spec("inner", [ChildSpec("leaf", idle)]),
    ]
    async with (
        SQLiteEventStore(tmp_path / "events.db", name="log") as store,
        EventBus(store=store, name="main") as bus,
        Supervisor(children, name="root", max_restarts=5, within=60) as root,
    ):
        collector = TrioSmithCollector(
            supervisors=[root], breakers=[breaker], buses=[bus], stores=[store]
        )
        registry = registry_of(collector)
        async with collector.running(interval=3600):
            # Crashes after the collector started count as failures.
            await root.terminate_child("steady")
            await root.restart_child("steady")
            go.set()
            await crashed.wait()
            for _ in range(2):
                with pytest.raises(Boom):
                    await breaker.call(failing)
            with pytest.raises(CallNotPermitted):
                await breaker.call(failing)
            async with bus.subscribe(EventFilter(categories="agent")) as events:
                for _ in range(3):
                    await bus.publish(Event.new(AgentEvent.STARTED, source="agents/a"))
                for _ in range(3):
                    await events.receive()
                collector.refresh()
                samples = await scrape(registry)
        await root.shutdown()

    sup = {"supervisor": "root"}
    assert value(samples, "trio_smith_supervisor_state", **sup, state="running") == 1
    assert value(samples, "trio_smith_supervisor_state", **sup, state="stopped") == 0
    assert value(samples, "trio_smith_supervisor_children", **sup, status="running") == 3
    assert value(samples, "trio_smith_supervisor_children", **sup, status="restarting") == 0
    # restart_child once, then two automatic restarts of flaky.
    assert value(samples, "trio_smith_supervisor_restarts_total", **sup) == 3
    assert value(samples, "trio_smith_child_restarts_total", **sup, child="flaky") == 2
    assert value(samples, "trio_smith_child_restarts_total", **sup, child="steady") == 1
    assert value(samples, "trio_smith_child_failures_total", **sup, child="flaky") == 2
    assert value(samples, "trio_smith_supervisor_child_failures_total", **sup) == 2
    assert value(samples, "trio_smith_supervisor_gave_up_total", **sup) == 0
    assert value(samples, "trio_smith_supervisor_max_restarts", **sup) == 5
    # A child that never failed has no failure series of its own.
    steady = (("child", "steady"), ("supervisor", "root"))
    assert ("trio_smith_child_failures_total", steady) not in samples
    # The nested supervisor, found through the tree, by its path.
    inner = {"supervisor": "root/inner"}
    assert value(samples, "trio_smith_supervisor_state", **inner, state="running") == 1
    assert value(samples, "trio_smith_supervisor_children", **inner, status="running") == 1

    breaker_labels = {"name": "payments"}
    assert value(samples, "trio_smith_circuitbreaker_state", **breaker_labels, state="open") == 1
    assert value(samples, "trio_smith_circuitbreaker_state", **breaker_labels, state="closed") == 0
    assert (
        value(samples, "trio_smith_circuitbreaker_calls_total", **breaker_labels, kind="failed")
        == 2
    )
    assert (
        value(samples, "trio_smith_circuitbreaker_calls_total", **breaker_labels, kind="successful")
        == 0
    )
    assert (
        value(samples, "trio_smith_circuitbreaker_not_permitted_calls_total", **breaker_labels) == 1
    )
    assert value(samples, "trio_smith_circuitbreaker_failure_rate", **breaker_labels) == 1.0
    assert value(samples, "trio_smith_circuitbreaker_slow_call_rate", **breaker_labels) == 0.0
    assert (
        value(samples, "trio_smith_circuitbreaker_buffered_calls", **breaker_labels, kind="failed")
        == 2
    )

    assert (
        value(samples, "trio_smith_bus_events_published_total", bus="main", category="agent") == 3
    )
    assert value(samples, "trio_smith_bus_events_delivered_total", bus="main") == 3
    assert value(samples, "trio_smith_bus_events_dropped_total", bus="main") == 0
    assert value(samples, "trio_smith_store_events_appended_total", store="log") == 3
    assert value(samples, "trio_smith_store_head_position", store="log") == 3
    assert value(samples, "trio_smith_store_follow_error", store="log") == 0
    assert 0 <= value(samples, "trio_smith_snapshot_age_seconds") < 60


async def test_counters_need_the_collector_running() -> None:
    # The failure counters come from telemetry events, counted while it runs.
    async def crash() -> None:
        raise Boom("boom")

    async with Supervisor([ChildSpec("c", crash, restart=Restart.TEMPORARY)], name="root") as root:
        collector = TrioSmithCollector(supervisors=[root])
        collector.refresh()
        samples = await scrape(registry_of(collector))
        await root.shutdown()
    assert value(samples, "trio_smith_supervisor_child_failures_total", supervisor="root") == 0


async def test_a_supervisor_that_gave_up() -> None:
    go, back = trio.Event(), trio.Event()
    crashed = False

    async def crash_once() -> None:
        nonlocal crashed
        await go.wait()
        if not crashed:
            crashed = True
            raise Boom("boom")
        back.set()  # in the restarted inner supervisor
        await trio.sleep_forever()

    inner = Supervisor.spec("inner", [ChildSpec("c", crash_once)], max_restarts=0)
    async with Supervisor([inner], name="root", max_restarts=1, within=60) as root:
        collector = TrioSmithCollector(supervisors=[root])
        async with collector.running(interval=3600):
            go.set()
            await back.wait()
            collector.refresh()
            samples = await scrape(registry_of(collector))
        await root.shutdown()
    assert value(samples, "trio_smith_supervisor_gave_up_total", supervisor="root/inner") == 1
    assert value(samples, "trio_smith_child_failures_total", supervisor="root", child="inner") == 1
    assert value(samples, "trio_smith_supervisor_gave_up_total", supervisor="root") == 0


async def test_a_pools_children_have_no_series_of_their_own() -> None:
    crashed: set[str] = set()
    back: set[str] = set()
    all_back = trio.Event()

    async def crash_once(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        me = current_child().id
        if me not in crashed:
            crashed.add(me)
            raise Boom("boom")
        back.add(me)
        if len(back) == 3:
            all_back.set()
        await trio.sleep_forever()

    async with DynamicSupervisor(ChildSpec("conn", crash_once), name="pool") as pool:
        collector = TrioSmithCollector(supervisors=[pool])
        async with collector.running(interval=3600):
            for _ in range(3):
                await pool.start_child()
            await all_back.wait()
            collector.refresh()
            samples = await scrape(registry_of(collector))
        await pool.shutdown()
    assert (
        value(samples, "trio_smith_supervisor_children", supervisor="pool", status="running") == 3
    )
    assert value(samples, "trio_smith_supervisor_restarts_total", supervisor="pool") == 3
    assert value(samples, "trio_smith_supervisor_child_failures_total", supervisor="pool") == 3
    assert not {"trio_smith_child_restarts_total", "trio_smith_child_failures_total"} & names(
        samples
    )


async def test_bus_counters_never_go_down_when_a_subscription_closes() -> None:
    async with EventBus(name="b") as bus:
        collector = TrioSmithCollector(buses=[bus])
        registry = registry_of(collector)
        async with bus.subscribe(buffer=1, overflow=Overflow.DROP_OLDEST) as events:
            for _ in range(3):
                bus.publish_nowait(Event.new(AgentEvent.STARTED, source="a"))
            await events.receive()
            collector.refresh()
            before = await scrape(registry)
        collector.refresh()
        after = await scrape(registry)
    for samples in (before, after):
        assert value(samples, "trio_smith_bus_events_delivered_total", bus="b") == 1
        assert value(samples, "trio_smith_bus_events_dropped_total", bus="b") == 2
    assert value(before, "trio_smith_bus_subscriptions", bus="b") == 1
    assert value(after, "trio_smith_bus_subscriptions", bus="b") == 0


async def test_breaker_rates_are_absent_below_the_minimum_number_of_calls() -> None:
    async def ok() -> None:
        pass

    breaker = CircuitBreaker("b", minimum_calls=10)
    await breaker.call(ok)
    collector = TrioSmithCollector(breakers=[breaker])
    collector.refresh()
    samples = await scrape(registry_of(collector))
    assert value(samples, "trio_smith_circuitbreaker_state", name="b", state="closed") == 1
    assert (
        value(samples, "trio_smith_circuitbreaker_buffered_calls", name="b", kind="successful") == 1
    )
    assert "trio_smith_circuitbreaker_failure_rate" not in names(samples)
    assert "trio_smith_circuitbreaker_slow_call_rate" not in names(samples)


async def test_a_scrape_is_answered_while_the_trio_thread_is_stuck() -> None:
    store = MemoryEventStore(name="m")
    collector = TrioSmithCollector(stores=[store])
    collector.refresh()
    registry = registry_of(collector)
    answered = threading.Event()
    result: list[bytes] = []

    def scrape_thread() -> None:
        result.append(generate_latest(registry))
        answered.set()

    threading.Thread(target=scrape_thread).start()
    # The trio thread blocks (a stuck loop) until the other thread has scraped.
    assert answered.wait(timeout=30)
    samples = parse(result[0].decode())
    assert value(samples, "trio_smith_store_head_position", store="m") == 0
    await trio.lowlevel.checkpoint()


async def test_a_scrape_over_http() -> None:
    collector = TrioSmithCollector(breakers=[CircuitBreaker("http")])
    collector.refresh()
    registry = registry_of(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        port = server.server_address[1]

        def get() -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                body: bytes = r.read()
                return body

        samples = parse((await trio.to_thread.run_sync(get)).decode())
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert value(samples, "trio_smith_circuitbreaker_state", name="http", state="closed") == 1


def test_registration_never_collects_and_before_a_snapshot_the_age_is_nan() -> None:
    collector = TrioSmithCollector()
    registry = CollectorRegistry()
    registry.register(collector)  # describe() only: no trio needed
    samples = parse(generate_latest(registry).decode())
    assert math.isnan(value(samples, "trio_smith_snapshot_age_seconds"))
    assert names(samples) == {"trio_smith_snapshot_age_seconds"}
    described = {family.name for family in collector.describe()}
    collected = {family.name for family in collector.collect()}
    assert described == collected


def test_refresh_outside_trio_is_refused() -> None:
    with pytest.raises(RuntimeError):
        TrioSmithCollector().refresh()


async def test_running_refuses_a_bad_interval() -> None:
    collector = TrioSmithCollector()
    with pytest.raises(ValueError, match="interval") as info:
        async with collector.running(interval=0):
            pass  # pragma: no cover
    assert str(info.value) == "interval must be a finite number > 0, got 0"


def test_add_refuses_the_wrong_kind_and_adds_nothing() -> None:
    bus = EventBus(name="b")
    collector = TrioSmithCollector()
    with pytest.raises(TypeError) as info:
        collector.add(buses=[bus, "oops"])  # type: ignore[list-item]
    assert str(info.value) == "buses must hold EventBus objects, got 'oops'"
    with pytest.raises(TypeError) as info:
        TrioSmithCollector(breakers="b")  # type: ignore[arg-type]
    assert str(info.value) == "breakers must be an iterable, got 'b'"


async def test_add_and_remove() -> None:
    one, two = CircuitBreaker("one"), CircuitBreaker("two")
    collector = TrioSmithCollector(breakers=[one])
    collector.add(breakers=[two, two])
    registry = registry_of(collector)
    collector.refresh()
    samples = await scrape(registry)
    assert value(samples, "trio_smith_circuitbreaker_state", name="two", state="closed") == 1
    collector.remove(breakers=[two, CircuitBreaker("never-added")])
    collector.refresh()
    samples = await scrape(registry)
    assert value(samples, "trio_smith_circuitbreaker_state", name="one", state="closed") == 1
    assert (
        "trio_smith_circuitbreaker_state",
        (("name", "two"), ("state", "closed")),
    ) not in samples


@pytest.fixture(autouse=True)
def _no_leftover_handlers() -> Iterator[None]:
    from trio_smith import telemetry

    yield
    assert not [h for h, _ in telemetry.handlers() if h.startswith("trio_smith.prometheus")]

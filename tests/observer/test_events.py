"""The observer's event stream: restarts seen live, slow and stuck clients, many clients.

Real sockets on 127.0.0.1 and trio's real clock; no timing assertions
(docs/design.md rule 47).
"""

from __future__ import annotations

import json
from typing import Any

import trio

from trio_smith import ChildSpec, Supervisor
from trio_smith.events import Event, EventBus, SupervisionEvent
from trio_smith.observer import Observer

from .client import address, events, get

RESTARTED = str(SupervisionEvent.CHILD_RESTARTED)


async def idle() -> None:
    await trio.sleep_forever()


def crash_on(signal: trio.Event) -> ChildSpec:
    """A child that crashes once, when ``signal`` is set, and then runs."""
    crashed: list[bool] = []

    async def crashy() -> None:
        if not crashed:
            await signal.wait()
            crashed.append(True)
            raise RuntimeError("boom")
        await trio.sleep_forever()

    return ChildSpec("crashy", crashy)


def child(tree: Any, child_id: str) -> Any:
    return next(c for c in tree["root"]["children"] if c["id"] == child_id)


async def until(condition: Any) -> None:
    """Poll: the observer's state changes on other tasks' socket I/O, in real time."""
    while not condition():  # noqa: ASYNC110
        await trio.sleep(0.01)


async def test_a_restart_arrives_as_an_event_and_as_a_tree_update() -> None:
    crash = trio.Event()
    async with (
        EventBus() as bus,
        Supervisor([crash_on(crash), ChildSpec("steady", idle)], events=bus) as root,
        Observer(root, bus=bus, tree_interval=0.05) as obs,
        events(obs.url, "/api/events?category=supervision") as stream,
    ):
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        first = await stream.next_of("tree")
        assert child(first, "crashy")["restarts"] == 0
        crash.set()
        while True:
            kind, data = await stream.next()
            if kind == "event" and RESTARTED in data:
                break
        while child(await stream.next_of("tree"), "crashy")["restarts"] != 1:
            pass
        await root.shutdown()


async def test_the_filter_picks_the_events() -> None:
    async with (
        EventBus() as bus,
        Supervisor([ChildSpec("w", idle)], events=bus) as root,
        Observer(root, bus=bus) as obs,
        events(obs.url, "/api/events?type=app.wanted&source_prefix=here/") as stream,
    ):
        await stream.next_of("tree")
        await bus.publish(Event.new("app.unwanted", source="here/a"))
        await bus.publish(Event.new("app.wanted", source="elsewhere"))
        await bus.publish(Event.new("app.wanted", source="here/b", payload={"n": 1}))
        got = await stream.next_of("event")
        assert (got["type"], got["source"], got["payload"]) == ("app.wanted", "here/b", {"n": 1})
        await root.shutdown()


async def test_html_in_an_event_is_escaped_in_the_stream() -> None:
    async with (
        EventBus() as bus,
        Supervisor([], events=bus) as root,
        Observer(root, bus=bus) as obs,
        events(obs.url, "/api/events?category=app") as stream,
    ):
        await stream.next_of("tree")
        await bus.publish(Event.new("app.x", source="s", payload={"html": "<b>&</b>"}))
        kind, data = await stream.next()
        while kind != "event":
            kind, data = await stream.next()
        assert "<" not in data
        assert ">" not in data
        assert "&" not in data
        assert "\\u003cb\\u003e\\u0026\\u003c/b\\u003e" in data
        await root.shutdown()


async def test_without_a_bus_the_stream_carries_the_tree() -> None:
    crash = trio.Event()
    async with (
        Supervisor([crash_on(crash)]) as root,
        Observer(root, tree_interval=0.05) as obs,
        events(obs.url) as stream,
    ):
        assert child(await stream.next_of("tree"), "crashy")["restarts"] == 0
        crash.set()
        while child(await stream.next_of("tree"), "crashy")["restarts"] != 1:
            pass
        await root.shutdown()


async def test_a_stuck_client_never_blocks_the_application_or_other_clients() -> None:
    blob = "x" * 10_000
    async with (
        EventBus() as bus,
        Supervisor([ChildSpec("w", idle)], events=bus) as root,
        Observer(root, bus=bus, client_buffer=8) as obs,
    ):
        # A client that asks for the stream and never reads a byte.
        stuck = await trio.open_tcp_stream(*address(obs.url))
        await stuck.send_all(b"GET /api/events?category=load HTTP/1.1\r\nHost: x\r\n\r\n")
        received: list[int] = []
        async with (
            events(obs.url, "/api/events?category=load") as reader,
            trio.open_nursery() as nursery,
        ):
            await reader.next_of("tree")
            await until(lambda: obs.statistics().clients == 2)

            dropped: list[int] = []

            async def read_all() -> None:
                while True:
                    kind, data = await reader.next()
                    if kind == "dropped":
                        dropped.append(json.loads(data)["dropped"])
                    if kind != "event":
                        continue
                    got = json.loads(data)
                    if got["type"] == "load.done":
                        return
                    received.append(got["payload"]["i"])

            nursery.start_soon(read_all)
            for i in range(3000):
                bus.publish_nowait(Event.new("load.tick", source="t", payload={"i": i, "b": blob}))
                if i % 50 == 49:
                    await trio.lowlevel.checkpoint()
            await bus.publish(Event.new("load.done", source="t"))
            # The application goes on: its tree still answers.
            assert (await get(obs.url, "/api/tree")).status == 200
        await until(lambda: obs.statistics().clients == 1)  # the stuck one, still connected
        stats = obs.statistics()
        assert stats.events_dropped > 0
        assert dropped  # the slow reader was told it lost events
        assert dropped == sorted(dropped)
        assert received == sorted(received)
        assert received
        assert root.which_children()[0].status.value == "running"
        await stuck.aclose()
        await root.shutdown()


async def test_a_client_that_takes_nothing_is_disconnected() -> None:
    blob = "y" * 50_000
    async with (
        EventBus() as bus,
        Supervisor([], events=bus) as root,
        Observer(root, bus=bus, send_timeout=0.2) as obs,
    ):
        stuck = await trio.open_tcp_stream(*address(obs.url))
        await stuck.send_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: obs.statistics().clients == 1)
        while obs.statistics().clients_disconnected == 0:
            bus.publish_nowait(Event.new("load.tick", source="t", payload={"b": blob}))
            await trio.sleep(0.01)
        await until(lambda: obs.statistics().clients == 0)
        await stuck.aclose()
        await root.shutdown()


async def test_fifty_clients_at_once() -> None:
    async with (
        EventBus() as bus,
        Supervisor([ChildSpec("w", idle)], events=bus) as root,
        Observer(root, bus=bus) as obs,
    ):
        seen: list[str] = []
        ready = trio.Semaphore(0)

        async def client() -> None:
            async with events(obs.url, "/api/events?category=app") as stream:
                assert child(await stream.next_of("tree"), "w")["status"] == "running"
                ready.release()
                seen.append((await stream.next_of("event"))["type"])

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(client)
            for _ in range(50):
                await ready.acquire()
            assert obs.statistics().clients == 50
            tree = await get(obs.url, "/api/tree")  # others are served meanwhile
            assert tree.status == 200
            await bus.publish(Event.new("app.hello", source="t"))
        assert seen == ["app.hello"] * 50
        await until(lambda: obs.statistics().clients == 0)
        assert obs.statistics().events_sent == 50
        await root.shutdown()


async def test_streams_beyond_max_clients_get_503() -> None:
    async with (
        Supervisor([]) as root,
        Observer(root, max_clients=1) as obs,
        events(obs.url) as first,
    ):
        await first.next_of("tree")
        refused = await get(obs.url, "/api/events")
        assert (refused.status, refused.body) == (
            503,
            b"too many event streams (max_clients=1)\n",
        )
        assert obs.statistics().clients_refused == 1
        await root.shutdown()

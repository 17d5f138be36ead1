"""Benchmark: request/reply through the registry and the router against a raw trio floor.

No target is set for routing (docs/performance.md); the aim is a hub close
to raw trio. This script measures, in one process and one run, the time of one
request/reply round trip between two tasks:

* floor: raw trio, the least a request/reply can do: the caller puts
  ``(message, reply_channel)`` in a ``trio.open_memory_channel(64)`` and
  waits on a one-slot reply channel made for the request; the agent task
  loops ``async for``, and sends the answer back;
* ``await registry.request(name, message)``: an agent made by
  ``Registry.agent`` under a ``Supervisor``, no events, no breaker;
* ``await router.request(Task(...))``: the same through a ``Router`` with
  two agents of the role (round robin), no events;
* the router again with events on an ``EventBus`` over a
  ``MemoryEventStore`` (five events per task: routed, received, processed,
  completed, and the store append of each).

Each figure is the best of several windows over interleaved rounds (the
machine is noisy), in microseconds per round trip, with its ratio to the
floor measured in the same run. The informal target printed is <= 3x the
floor without events (the registry books each request so that a dying
callee fails it at once, and drops late replies).

Run: ``make bench`` or ``.venv/bin/python benchmarks/routing.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import trio

from trio_smith import Supervisor
from trio_smith.events import EventBus, MemoryEventStore
from trio_smith.routing import Registry, Router, Task

#: Round trips per window, windows per round, interleaved rounds.
TRIPS = 5_000
WINDOWS = 3
ROUNDS = 5
TARGET = 3.0


async def _timed(trip: Callable[[], Awaitable[object]]) -> float:
    best = float("inf")
    for _ in range(WINDOWS):
        start = time.perf_counter()
        for _ in range(TRIPS):
            await trip()
        best = min(best, (time.perf_counter() - start) / TRIPS)
    return best * 1e6


async def floor() -> float:
    send, receive = trio.open_memory_channel[tuple[object, trio.MemorySendChannel[object]]](64)

    async def agent() -> None:
        async for message, reply in receive:
            reply.send_nowait(message)

    async def trip() -> object:
        reply_send, reply_receive = trio.open_memory_channel[object](1)
        await send.send((1, reply_send))
        return await reply_receive.receive()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent)
        result = await _timed(trip)
        nursery.cancel_scope.cancel()
    return result


async def echo(message: object) -> object:
    return message


async def registry_request() -> float:
    registry = Registry()
    async with Supervisor([registry.agent("a", echo)]) as sup:
        result = await _timed(lambda: registry.request("a", 1))
        await sup.shutdown()
    return result


async def router_request(with_events: bool) -> float:
    async with EventBus(store=MemoryEventStore()) as bus:
        registry = Registry(events=bus if with_events else None)
        router = Router(registry, {"t": "worker"})
        specs = [registry.agent(n, echo, role="worker") for n in ("w1", "w2")]
        async with Supervisor(specs) as sup:
            task = Task("t")
            result = await _timed(lambda: router.request(task))
            await sup.shutdown()
    return result


async def main() -> None:
    best: dict[str, float] = {}
    cases: list[tuple[str, Callable[[], Awaitable[float]]]] = [
        ("floor: raw trio request/reply", floor),
        ("registry.request", registry_request),
        ("router.request", lambda: router_request(False)),
        ("router.request + events (memory store)", lambda: router_request(True)),
    ]
    for _ in range(ROUNDS):
        for label, run in cases:
            figure = await run()
            best[label] = min(best.get(label, float("inf")), figure)
    base = best[cases[0][0]]
    print(f"request/reply round trip, best of {ROUNDS} rounds x {WINDOWS} windows x {TRIPS}")
    for label, figure in best.items():
        print(f"  {label:<42} {figure:7.2f} us  {figure / base:5.2f}x floor")
    for label in ("registry.request", "router.request"):
        ratio = best[label] / base
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"{verdict}: {label} <= {TARGET:g}x the raw floor ({ratio:.2f}x)")


if __name__ == "__main__":
    trio.run(main)

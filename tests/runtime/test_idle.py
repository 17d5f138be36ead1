"""Idle children: ``async with current_child().idle():`` (docs/design.md rule 38).

A watched worker that waits for work is silent without being hung. Every
test runs on trio's MockClock (``autojump_clock``); with ``Heartbeat(1.0)``
a child that never beats is judged about 5.3 s after its start, one with
steady 1 s beats about 4.5 s after its last.
"""

from __future__ import annotations

import math

import trio
import trio.testing

from trio_smith import ChildSpec, Heartbeat, Supervisor, current_child
from trio_smith._core._phi import PhiState

#: Judged hung this long after its first heartbeat (the bootstrap history: mean 1 s, sd 250 ms).
FIRST = 5.307


async def test_a_worker_waiting_on_an_empty_channel_is_idle_not_hung(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receive = trio.open_memory_channel[int](0)
    done: list[int] = []

    async def worker() -> None:
        while True:
            async with current_child().idle():
                job = await receive.receive()
            done.append(job)
            current_child().heartbeat()

    spec = ChildSpec("w", worker, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec]) as sup:
        await trio.sleep(3600)  # an hour without work
        [info] = sup.which_children()
        assert info.restarts == 0
        assert info.phi == 0.0  # silence while idle never counts
        await send.send(1)
        await trio.sleep(1)
        await send.send(2)
        await trio.sleep(1)
        assert done == [1, 2]
        assert sup.which_children()[0].restarts == 0
        await sup.shutdown()


async def test_the_same_worker_without_idle_is_judged_hung(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # What idle() is for: the documented loop without it is cancelled as hung.
    send, receive = trio.open_memory_channel[int](0)

    async def worker() -> None:
        while True:
            await receive.receive()
            current_child().heartbeat()

    spec = ChildSpec("w", worker, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec], max_restarts=100, within=60) as sup:
        await trio.sleep(60)
        assert sup.which_children()[0].restarts > 0
        await sup.shutdown()
    send.close()


async def test_a_hang_after_an_idle_hour_is_caught_as_fast_as_a_fresh_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The idle hour never enters the heartbeat history: after it, steady
    # beats then silence outside idle() are judged as soon as for a child
    # that beat steadily all along (about 4.5 s after the last beat).
    judged: list[float] = []
    last_beat: list[float] = []
    restarted = trio.Event()

    async def worker() -> None:
        if current_child().incarnation > 1:
            judged.append(trio.current_time())  # restarted at once: the verdict's time
            restarted.set()
            await trio.sleep_forever()
        for _ in range(5):
            await trio.sleep(1)
            current_child().heartbeat()
        async with current_child().idle():
            await trio.sleep(3600)
        for _ in range(5):
            await trio.sleep(1)
            current_child().heartbeat()
        last_beat.append(trio.current_time())
        await trio.sleep_forever()  # hung: outside idle(), no beats

    spec = ChildSpec("w", worker, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec], max_restarts=10, within=60) as sup:
        await restarted.wait()
        await sup.shutdown()
    # Its twin, beating every second for 10 s with no idle hour between.
    twin = PhiState(Heartbeat(1.0)._config)
    for second in range(11):
        twin.heartbeat(second * 1000)
    expected = ((twin.suspect_at() or 0) - 10_000) / 1000
    assert math.isclose(judged[0] - last_beat[0], expected, abs_tol=0.002)
    assert 4 < expected < 5


async def test_idle_blocks_nest_and_count_from_the_child_s_own_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    states: list[float | None] = []
    restarted = trio.Event()

    async def worker() -> None:
        ctx = current_child()
        if ctx.incarnation > 1:
            states.append(trio.current_time())  # restarted at once: the verdict's time
            restarted.set()
            await trio.sleep_forever()

        async def helper() -> None:
            async with ctx.idle():
                await trio.sleep(100)

        async with trio.open_nursery() as nursery, ctx.idle():
            nursery.start_soon(helper)
            async with ctx.idle():
                await trio.sleep(50)
            await trio.sleep(10)
            # Out of its own blocks at 60 s; the helper's lasts until 100 s.
        # Out of every idle block since 100 s: silence counts again.
        await trio.sleep_forever()

    spec = ChildSpec("w", worker, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec], max_restarts=10, within=60) as sup:
        await trio.sleep(99)
        states.append(sup.which_children()[0].phi)
        assert sup.which_children()[0].restarts == 0
        await restarted.wait()
        await sup.shutdown()
    assert states[0] == 0.0
    # Idle from 0 until 100 s (the helper): judged 5.307 s after that (the
    # bootstrap history: the idle time recorded nothing).
    assert states[1] is not None
    assert math.isclose(states[1], 100 + FIRST, abs_tol=0.002)


async def test_heartbeats_while_idle_count_but_never_feed_the_detector(
    autojump_clock: trio.testing.MockClock,
) -> None:
    contexts = []

    async def worker() -> None:
        ctx = current_child()
        contexts.append(ctx)
        async with ctx.idle():
            for _ in range(3):
                await trio.sleep(1000)
                ctx.heartbeat()
            await trio.sleep_forever()

    spec = ChildSpec("w", worker, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec]) as sup:
        await trio.sleep(3500)
        [info] = sup.which_children()
        [ctx] = contexts
        assert (ctx.heartbeats, ctx.last_heartbeat) == (3, 3000.0)
        assert info.phi == 0.0
        assert info.restarts == 0
        await sup.shutdown()


async def test_idle_in_an_unwatched_child_is_harmless(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def worker() -> None:
        async with current_child().idle():
            await trio.sleep(10)

    async with Supervisor([ChildSpec("w", worker)]) as sup:
        await trio.sleep(5)
        [info] = sup.which_children()
        assert info.phi is None
        await sup.shutdown()

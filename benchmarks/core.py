"""Benchmark: the supervision core's decision cost against a raw trio restart.

The trio runtime (next) must restart a crashing child at >= 0.5x the rate of
a bare trio restart loop, whatever the number of idle siblings. So the pure
core must cost a small fraction of one raw restart, and its cost per restart
must not grow with the number of siblings. This script measures, in one run:

* floor: a bare trio loop that runs a child which raises at once, in a fresh
  nursery, and catches its error (one "restart" per iteration);
* core: one crash and restart through ``SupervisorMachine`` (ChildExited ->
  StartChild -> ChildStarted), one_for_one, with 1, 100 and 10,000 idle
  siblings, and a one_for_all group restart of 100 children.

It prints each rate and its ratio to the floor. Run: ``make bench``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import trio

from trio_smith import ChildSpec, Strategy
from trio_smith._core._protocol import (
    ChildExited,
    ChildStarted,
    ChildStopped,
    ExitKind,
    StartChild,
    StartupRequested,
    StopChild,
)
from trio_smith._core._supervision import SupervisorMachine

REPEATS = 5


def best_rate(setup: Callable[[], Callable[[int], None]], n: int) -> float:
    """Operations per second: the best of REPEATS timed runs of ``setup()(n)``.

    ``setup`` (building and starting a supervisor) is not timed.
    """
    best = float("inf")
    for _ in range(REPEATS):
        run = setup()
        start = time.perf_counter()
        run(n)
        best = min(best, time.perf_counter() - start)
    return n / best


def raw_trio_restarts(n: int) -> None:
    async def crash() -> None:
        raise ValueError("crash")

    async def main() -> None:
        for _ in range(n):
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(crash)
            except* ValueError:
                pass

    trio.run(main)


async def _child() -> None:
    """Never run: the core only sees specs."""


def _booted(ids: list[str], strategy: Strategy) -> SupervisorMachine:
    m = SupervisorMachine(
        [ChildSpec(i, _child) for i in ids],
        strategy=strategy,
        max_restarts=10**9,
        within=1.0,
        random=random.random,
    )
    commands = m.handle(StartupRequested(), now=0.0)
    while commands:
        start = commands[-1]
        assert isinstance(start, StartChild)
        commands = m.handle(ChildStarted(child_id=start.child_id), now=0.0)
    return m


def core_one_for_one(siblings: int) -> Callable[[], Callable[[int], None]]:
    def setup() -> Callable[[int], None]:
        m = _booted([f"c{i}" for i in range(siblings)] + ["x"], Strategy.ONE_FOR_ONE)
        return lambda n: cycle(m, n)

    def cycle(m: SupervisorMachine, n: int) -> None:
        incarnation = siblings + 1
        now = 0.0
        handle = m.handle
        for _ in range(n):
            now += 0.001
            [start] = handle(
                ChildExited(child_id="x", incarnation=incarnation, kind=ExitKind.ABNORMAL),
                now=now,
            )
            assert isinstance(start, StartChild)
            incarnation = start.incarnation
            handle(ChildStarted(child_id="x"), now=now)

    return setup


def core_one_for_all(size: int) -> Callable[[], Callable[[int], None]]:
    def setup() -> Callable[[int], None]:
        m = _booted([f"c{i}" for i in range(size)], Strategy.ONE_FOR_ALL)
        return lambda n: cycle(m, n)

    def cycle(m: SupervisorMachine, n: int) -> None:
        incarnation = 1
        now = 0.0
        for _ in range(n):
            now += 0.001
            commands = m.handle(
                ChildExited(child_id="c0", incarnation=incarnation, kind=ExitKind.ABNORMAL),
                now=now,
            )
            while commands:
                command = commands[-1]
                if isinstance(command, StopChild):
                    commands = m.handle(ChildStopped(child_id=command.child_id), now=now)
                else:
                    assert isinstance(command, StartChild)
                    if command.child_id == "c0":
                        incarnation = command.incarnation
                    commands = m.handle(ChildStarted(child_id=command.child_id), now=now)

    return setup


def main() -> None:
    floor = best_rate(lambda: raw_trio_restarts, 5_000)
    rows = [("floor: bare trio restart loop", floor, 1)]
    for siblings in (1, 100, 10_000):
        rate = best_rate(core_one_for_one(siblings), 20_000)
        rows.append((f"core one_for_one restart, {siblings} idle siblings", rate, 1))
    group = best_rate(core_one_for_all(100), 200)
    rows.append(("core one_for_all restart of 100 children (per child)", group * 100, 100))

    print(f"{'benchmark':<58}{'per second':>14}{'us each':>10}{'x floor':>10}")
    for name, rate, _ in rows:
        print(f"{name:<58}{rate:>14,.0f}{1e6 / rate:>10.2f}{rate / floor:>10.1f}")
    flat = rows[1][1] / rows[3][1]
    print(f"\ncost with 10,000 idle siblings / with 1: {flat:.2f}x (1.0 = independent)")


if __name__ == "__main__":
    main()

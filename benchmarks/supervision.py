"""Benchmark: the trio supervision runtime against raw trio floors, in one run.

Targets (docs/design.md rule 31; docs/performance.md): a crashing child restarts at
>= 0.5x the rate of a bare trio restart loop, its cost per restart is the
same (<= 1.25x) with 10,000 idle siblings, and an idle child costs <= 1.5x
the memory of a raw task. This script measures, in the same process:

* restarts, floor: a bare trio loop that runs each incarnation in a fresh
  ``trio.CancelScope()``; an incarnation does one checkpoint and raises
  ``ValueError``, which the loop catches;
* restarts, supervised: one child ``ChildSpec("c", crash)`` of a one_for_one
  ``Supervisor`` whose fn does one checkpoint and raises, so the supervisor
  restarts it; a closure counts incarnations. Timing starts at the second
  incarnation (the first lets the scheduler run every sibling to its
  ``sleep_forever``, so starting 10,000 siblings is not counted) and the
  last timed incarnation sets a ``trio.Event`` and sleeps for ever. Run with
  no sibling and with 10,000 idle siblings started before it;
* memory per idle child: ``tracemalloc`` traced memory after a
  ``gc.collect()``, before and after starting N = 10,000 children, once
  every task is blocked, divided by N. Floor: raw tasks started with
  ``await nursery.start(fn)``, where fn enters its own ``trio.CancelScope()``,
  calls ``task_status.started()`` and sleeps for ever. Supervised: 10,000
  ``ChildSpec(f"c{i}", idle)`` children of one ``Supervisor``; building the
  specs is inside the window (the supervisor keeps them), and their share is
  printed too;
* start and stop of 10,000 idle children (informational): entering
  ``async with Supervisor(specs)`` until every child is blocked, then
  ``await sup.shutdown()`` (reverse start order, one child at a time) until
  the ``async with`` has exited; floor: 10,000 ``nursery.start`` tasks as
  above, then cancelling the nursery until it has exited.

* restarts of a child that takes ``task_status`` (it calls ``started()``,
  then checkpoints and raises), with the library's default logging (no
  logger level set; Python's last-resort handler formats the crash reports
  the burst limit lets through, to ``os.devnull`` here): target >= 0.5x the
  floor's rate, like any child; and the same silenced (informational).

Timings are the best of several windows and runs (the machine is noisy),
interleaving floor and supervised runs. Except for the default-logging
figure, the script sets the ``trio_smith`` logger to CRITICAL so that only
the supervision work is timed. It prints every figure with its ratio to its
floor, a summary table and one PASS/FAIL line per target (it always exits 0).

Run: ``make bench`` or ``.venv/bin/python benchmarks/supervision.py``.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import time
import tracemalloc

import trio
from trio.testing import wait_all_tasks_blocked

from trio_smith import ChildSpec, Supervisor
from trio_smith.events import EventBus, Overflow

#: Restarts per timed window, windows per run, and interleaved runs.
RESTARTS = 10_000
WINDOWS = 3
ROUNDS = 3
#: Idle siblings in the restart benchmark; children in the memory and
#: start/stop benchmarks.
SIBLINGS = 10_000
CHILDREN = 10_000

RESTART_RATIO_TARGET = 0.5
SIBLING_COST_TARGET = 1.25
MEMORY_RATIO_TARGET = 1.5


# ---------------------------------------------------------------- restarts


def raw_restart_windows(n: int, windows: int) -> list[float]:
    """Seconds per window of ``n`` restarts of a bare trio restart loop."""

    async def crash() -> None:
        await trio.lowlevel.checkpoint()
        raise ValueError("crash")

    async def main() -> list[float]:
        durations = []
        # The loop exactly as a user would write it (contextlib.suppress would
        # add a call per restart to the floor, hence the noqa).
        for _ in range(2):  # warm-up, as the supervised run's first incarnation
            with trio.CancelScope():
                try:  # noqa: SIM105
                    await crash()
                except ValueError:
                    pass
        for _ in range(windows):
            start = time.perf_counter()
            for _ in range(n):
                with trio.CancelScope():
                    try:  # noqa: SIM105
                        await crash()
                    except ValueError:
                        pass
            durations.append(time.perf_counter() - start)
        return durations

    gc.collect()
    return trio.run(main)


async def _idle() -> None:
    await trio.sleep_forever()


def supervised_restart_windows(
    n: int,
    windows: int,
    siblings: int,
    events: bool = False,
    *,
    task_status: bool = False,
    default_logging: bool = False,
) -> list[float]:
    """Seconds per window of ``n`` supervised restarts of one crashing child.

    ``siblings`` idle children come before it in the start order. With
    ``events``, the supervisor publishes its supervision events (three per
    restart: failed, restarted, started) to an ``EventBus`` with one
    DROP_OLDEST subscriber. With ``task_status`` the child takes
    ``task_status`` and calls ``started()`` before its checkpoint. With
    ``default_logging`` the ``trio_smith`` logger keeps Python's defaults
    (no level set: WARNING and above reach the last-resort handler, which
    writes to ``sys.stderr``; here stderr is swapped for ``os.devnull`` during
    the run so that the report is readable, the formatting is still paid).
    """

    async def main() -> list[float]:
        incarnations = 0
        stamps: list[float] = []
        # Incarnation 2 stamps the start; every n-th incarnation after it
        # ends a window; the last one stops the loop.
        first = 2
        last = first + n * windows
        finished = trio.Event()

        async def crash() -> None:
            nonlocal incarnations
            incarnations += 1
            if incarnations >= first and (incarnations - first) % n == 0:
                stamps.append(time.perf_counter())
                if incarnations == last:
                    finished.set()
                    await trio.sleep_forever()
            await trio.lowlevel.checkpoint()
            raise ValueError("crash")

        async def crash_started(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            await crash()

        specs = [ChildSpec(f"s{i}", _idle) for i in range(siblings)]
        specs.append(ChildSpec("c", crash_started if task_status else crash))
        async with EventBus() as bus:
            watcher = bus.subscribe(overflow=Overflow.DROP_OLDEST)
            async with Supervisor(
                specs, max_restarts=10**9, within=1.0, events=bus if events else None
            ) as sup:
                await finished.wait()
                await sup.shutdown()
            published = watcher.statistics().delivered + watcher.statistics().buffered
            published += watcher.statistics().dropped
            assert published >= (3 * n * windows if events else 0)
        return [b - a for a, b in itertools.pairwise(stamps)]

    gc.collect()
    if not default_logging:
        return trio.run(main)
    logger = logging.getLogger("trio_smith")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        try:
            return trio.run(main)
        finally:
            logger.setLevel(level)


# ---------------------------------------------------------------- memory


async def _raw_idle(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.CancelScope():
        task_status.started()
        await trio.sleep_forever()


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def raw_memory(n: int) -> float:
    """Traced bytes per raw idle task started with ``nursery.start``."""

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            await wait_all_tasks_blocked()
            before = _traced()
            for _ in range(n):
                await nursery.start(_raw_idle)
            await wait_all_tasks_blocked()
            after = _traced()
            tracemalloc.stop()  # the teardown need not be traced
            nursery.cancel_scope.cancel()
        return (after - before) / n

    tracemalloc.start()
    try:
        return trio.run(main)
    finally:
        tracemalloc.stop()


def supervised_memory(n: int) -> tuple[float, float]:
    """Traced bytes per idle supervised child, and the share of its ChildSpec."""

    async def main() -> tuple[float, float]:
        await wait_all_tasks_blocked()
        before = _traced()
        specs = [ChildSpec(f"c{i}", _idle) for i in range(n)]
        with_specs = _traced()
        async with Supervisor(specs, max_restarts=10**9, within=1.0) as sup:
            await wait_all_tasks_blocked()
            after = _traced()
            tracemalloc.stop()
            await sup.shutdown()
        return (after - before) / n, (with_specs - before) / n

    tracemalloc.start()
    try:
        return trio.run(main)
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------- start and stop


def raw_start_stop(n: int) -> tuple[float, float]:
    """Seconds to start ``n`` raw idle tasks with ``nursery.start``, and to cancel them."""

    async def main() -> tuple[float, float]:
        async with trio.open_nursery() as nursery:
            start = time.perf_counter()
            for _ in range(n):
                await nursery.start(_raw_idle)
            await wait_all_tasks_blocked()
            started = time.perf_counter()
            nursery.cancel_scope.cancel()
        return started - start, time.perf_counter() - started

    gc.collect()
    return trio.run(main)


def supervised_start_stop(n: int) -> tuple[float, float]:
    """Seconds to enter a Supervisor of ``n`` idle children, and to shut it down."""

    async def main() -> tuple[float, float]:
        specs = [ChildSpec(f"c{i}", _idle) for i in range(n)]
        start = time.perf_counter()
        async with Supervisor(specs, max_restarts=10**9, within=1.0) as sup:
            await wait_all_tasks_blocked()
            started = time.perf_counter()
            await sup.shutdown()
        return started - start, time.perf_counter() - started

    gc.collect()
    return trio.run(main)


# ---------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    n = RESTARTS

    floor_s: list[float] = []
    alone_s: list[float] = []
    crowd_s: list[float] = []
    events_s: list[float] = []
    status_s: list[float] = []
    status_logged_s: list[float] = []
    for _ in range(ROUNDS):
        floor_s += raw_restart_windows(n, WINDOWS)
        alone_s += supervised_restart_windows(n, WINDOWS, 0)
        crowd_s += supervised_restart_windows(n, WINDOWS, SIBLINGS)
        events_s += supervised_restart_windows(n, WINDOWS, 0, events=True)
        status_s += supervised_restart_windows(n, WINDOWS, 0, task_status=True)
        status_logged_s += supervised_restart_windows(
            n, WINDOWS, 0, task_status=True, default_logging=True
        )
    floor_us = min(floor_s) / n * 1e6
    alone_us = min(alone_s) / n * 1e6
    crowd_us = min(crowd_s) / n * 1e6
    events_us = min(events_s) / n * 1e6
    status_us = min(status_s) / n * 1e6
    status_logged_us = min(status_logged_s) / n * 1e6
    restart_ratio = floor_us / alone_us  # supervised rate / floor rate
    status_ratio = floor_us / status_logged_us
    sibling_cost = crowd_us / alone_us
    print(f"restarts ({n:,} per window, best of {ROUNDS * WINDOWS} windows)")
    print(
        f"  {'floor: bare trio restart loop':<34}{1e6 / floor_us:>9,.0f}/s {floor_us:>7.2f} us each"
    )
    print(
        f"  {'supervised, no sibling':<34}{1e6 / alone_us:>9,.0f}/s {alone_us:>7.2f} us each"
        f"  rate {restart_ratio:.2f}x floor"
    )
    print(
        f"  {f'supervised, {SIBLINGS:,} idle siblings':<34}{1e6 / crowd_us:>9,.0f}/s"
        f" {crowd_us:>7.2f} us each  cost {sibling_cost:.2f}x no sibling"
    )
    print(
        f"  {'supervised, events=EventBus':<34}{1e6 / events_us:>9,.0f}/s"
        f" {events_us:>7.2f} us each  cost {events_us / alone_us:.2f}x without events"
    )
    print(
        f"  {'task_status child':<34}{1e6 / status_us:>9,.0f}/s"
        f" {status_us:>7.2f} us each  rate {floor_us / status_us:.2f}x floor"
    )
    print(
        f"  {'task_status child, default logging':<34}{1e6 / status_logged_us:>9,.0f}/s"
        f" {status_logged_us:>7.2f} us each  rate {status_ratio:.2f}x floor"
    )

    raw_bytes = raw_memory(CHILDREN)
    sup_bytes, spec_bytes = supervised_memory(CHILDREN)
    memory_ratio = sup_bytes / raw_bytes
    print(f"\nmemory per idle child ({CHILDREN:,} children, tracemalloc)")
    print(f"  {'floor: raw task (nursery.start)':<34}{raw_bytes:>9,.0f} B")
    print(
        f"  {'supervised child':<34}{sup_bytes:>9,.0f} B"
        f"  {memory_ratio:.2f}x floor (its ChildSpec and id: {spec_bytes:,.0f} B)"
    )

    raw_runs = []
    sup_runs = []
    for _ in range(ROUNDS):
        raw_runs.append(raw_start_stop(CHILDREN))
        sup_runs.append(supervised_start_stop(CHILDREN))
    raw_start = min(r[0] for r in raw_runs) / CHILDREN * 1e6
    raw_stop = min(r[1] for r in raw_runs) / CHILDREN * 1e6
    sup_start = min(r[0] for r in sup_runs) / CHILDREN * 1e6
    sup_stop = min(r[1] for r in sup_runs) / CHILDREN * 1e6
    print(f"\nstart and stop of {CHILDREN:,} idle children (best of {ROUNDS} runs)")
    print(
        f"  {'floor: nursery.start, then cancel':<34}"
        f"start {raw_start:>6.1f} us  stop {raw_stop:>6.1f} us per child"
    )
    print(
        f"  {'Supervisor enter, then shutdown()':<34}"
        f"start {sup_start:>6.1f} us  stop {sup_stop:>6.1f} us per child"
        f"  ({sup_start / raw_start:.2f}x, {sup_stop / raw_stop:.2f}x floor)"
    )

    rows = [
        ("restart: us each, supervised / floor", alone_us, floor_us, "<= 2 (rate >= 0.5x)"),
        (f"restart: us each, {SIBLINGS:,} siblings / none", crowd_us, alone_us, "<= 1.25"),
        ("memory: B per idle child, supervised / raw", sup_bytes, raw_bytes, "<= 1.5"),
        ("restart: us each, events=EventBus / none", events_us, alone_us, "-"),
        ("restart: task_status, default logging / floor", status_logged_us, floor_us, "<= 2"),
        ("restart: task_status, silenced / floor", status_us, floor_us, "-"),
        ("start: us per child, Supervisor / raw", sup_start, raw_start, "-"),
        ("stop: us per child, shutdown / cancel", sup_stop, raw_stop, "-"),
    ]
    print(f"\n{'figure':<46}{'value':>10}{'floor':>10}{'ratio':>8}  target")
    for name, value, floor, target in rows:
        print(f"{name:<46}{value:>10,.2f}{floor:>10,.2f}{value / floor:>8.2f}  {target}")
    print()
    print(
        f"{_verdict(restart_ratio >= RESTART_RATIO_TARGET)} restart rate "
        f"{restart_ratio:.2f}x floor (target >= {RESTART_RATIO_TARGET})"
    )
    print(
        f"{_verdict(status_ratio >= RESTART_RATIO_TARGET)} restart rate of a task_status "
        f"child with default logging {status_ratio:.2f}x floor (target >= {RESTART_RATIO_TARGET})"
    )
    print(
        f"{_verdict(sibling_cost <= SIBLING_COST_TARGET)} restart cost with {SIBLINGS:,} "
        f"siblings {sibling_cost:.2f}x (target <= {SIBLING_COST_TARGET})"
    )
    print(
        f"{_verdict(memory_ratio <= MEMORY_RATIO_TARGET)} memory per idle child "
        f"{memory_ratio:.2f}x raw (target <= {MEMORY_RATIO_TARGET})"
    )


if __name__ == "__main__":
    main()

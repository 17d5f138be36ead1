"""Benchmark: supervised programs (``os_process``) against trio's own subprocess floor.

Targets (issue text, docs/processes.md): spawn + ready + stop of a trivial
program at >= 0.8x the rate of a raw ``trio.lowlevel.open_process`` + kill +
wait; restart of a crashing program at >= 0.8x a raw open_process + wait
loop. Measured in the same run, interleaved, best of 3 rounds:

* spawn + ready + stop, floor: ``open_process(["sleep", "60"])``, SIGKILL,
  ``await wait()``; supervised: a ``DynamicSupervisor`` whose template is
  ``os_process(["sleep", "60"])`` with ``shutdown=0``: ``start_child`` (ready
  at spawn) then ``terminate_child`` (SIGKILL to the group, reaped);
* restart, floor: ``open_process(["false"])`` then ``await wait()`` in a
  loop; supervised: ``ChildSpec("p", os_process(["false"]))`` restarted by
  its supervisor (``max_restarts`` huge), counted from ``which_children()``.

Each supervised figure is measured twice: with the defaults (the guardian
process holds the program's group; Python can ``vfork``), which the targets
apply to, and with ``parent_death_signal=True`` (a parent-death signal armed
between fork and exec, which rules out ``vfork``), shown for its cost.

Run: ``make bench`` or ``.venv/bin/python benchmarks/processes.py``. It
prints every figure with its ratio to its floor and one PASS/FAIL line per
target (it always exits 0).
"""

from __future__ import annotations

import logging
import signal
import time

import trio

from trio_smith import ChildSpec, DynamicSupervisor, Supervisor, os_process

N = 200
ROUNDS = 5
TARGET = 0.8


async def raw_spawn_stop(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        process = await trio.lowlevel.open_process(["sleep", "60"])
        process.send_signal(signal.SIGKILL)
        await process.wait()
    return (time.perf_counter() - start) / n


async def supervised_spawn_stop(n: int, pdeathsig: bool = False) -> float:
    program = os_process(["sleep", "60"], parent_death_signal=pdeathsig)
    template = ChildSpec("p", program, shutdown=0)
    async with DynamicSupervisor(template) as pool:
        start = time.perf_counter()
        for _ in range(n):
            handle = await pool.start_child()
            await pool.terminate_child(handle)
        took = time.perf_counter() - start
        await pool.shutdown()
    return took / n


async def raw_restarts(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        process = await trio.lowlevel.open_process(["false"])
        await process.wait()
    return (time.perf_counter() - start) / n


async def supervised_restarts(n: int, pdeathsig: bool = False) -> float:
    spec = ChildSpec("p", os_process(["false"], parent_death_signal=pdeathsig))
    async with Supervisor([spec], max_restarts=10**9, within=1.0) as sup:
        start = time.perf_counter()
        while sup.which_children()[0].restarts < n:  # noqa: ASYNC110 - sampling a count
            await trio.sleep(0.001)
        took = time.perf_counter() - start
        await sup.shutdown()
    return took / sup.which_children()[0].restarts if took else took


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    rows: dict[str, list[float]] = {
        "spawn+stop floor": [],
        "spawn+stop": [],
        "spawn+stop, pdeathsig": [],
        "restart floor": [],
        "restart": [],
        "restart, pdeathsig": [],
    }
    for _ in range(ROUNDS):
        rows["spawn+stop floor"].append(trio.run(raw_spawn_stop, N))
        rows["spawn+stop"].append(trio.run(supervised_spawn_stop, N))
        rows["spawn+stop, pdeathsig"].append(trio.run(supervised_spawn_stop, N, True))
        rows["restart floor"].append(trio.run(raw_restarts, N))
        rows["restart"].append(trio.run(supervised_restarts, N))
        rows["restart, pdeathsig"].append(trio.run(supervised_restarts, N, True))
    best = {name: min(times) * 1e3 for name, times in rows.items()}
    print(f"programs ({N} per round, best of {ROUNDS})")
    for name, ms in best.items():
        print(f"  {name:<28}{ms:>8.3f} ms each")
    print()
    for label, kind, floor in (
        ("spawn + ready + stop", "spawn+stop", "spawn+stop floor"),
        ("restart", "restart", "restart floor"),
    ):
        ratio = best[floor] / best[kind]
        verdict = "PASS" if ratio >= TARGET else "FAIL"
        print(f"{verdict} {label}: rate {ratio:.2f}x the raw floor (target >= {TARGET})")
    for label, kind, floor in (
        ("spawn + ready + stop", "spawn+stop, pdeathsig", "spawn+stop floor"),
        ("restart", "restart, pdeathsig", "restart floor"),
    ):
        ratio = best[floor] / best[kind]
        print(f"cost  {label} with parent_death_signal=True: rate {ratio:.2f}x the raw floor")


if __name__ == "__main__":
    main()

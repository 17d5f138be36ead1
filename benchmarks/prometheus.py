"""Benchmark: one Prometheus scrape of a supervision tree of 10,000 children.

Target (docs/operations.md): a scrape, ``collect()`` plus the text
exposition (``prometheus_client.generate_latest``), of a tree of 10,000
children takes under 50 ms. The snapshot the scrape reads is taken on the
trio thread (``TrioSmithCollector.refresh``, docs/design.md rule 45); its
cost is shown beside, since it holds the trio loop while it runs.

Two trees, best of 5 scrapes each:

* idle: one ``Supervisor`` of 10,000 idle children: per-supervisor series
  only (a child has series of its own once it restarted or failed);
* restarted: the same tree after every child was restarted once: 10,000
  ``trio_smith_child_restarts_total`` series, the worst case for the scrape.

Run: ``make bench`` or ``.venv/bin/python benchmarks/prometheus.py``. It
prints every figure and one PASS/FAIL line per tree (it always exits 0).
"""

from __future__ import annotations

import logging
import time

import trio
from prometheus_client import CollectorRegistry, generate_latest

from trio_smith import ChildSpec, Supervisor
from trio_smith.prometheus import TrioSmithCollector

N = 10_000
ROUNDS = 5
TARGET_MS = 50.0


async def idle() -> None:
    await trio.sleep_forever()


def best_ms(fn: object, rounds: int = ROUNDS) -> float:
    assert callable(fn)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


async def measure() -> dict[str, tuple[float, float, int]]:
    figures: dict[str, tuple[float, float, int]] = {}
    children = [ChildSpec(f"w{i}", idle) for i in range(N)]
    async with Supervisor(children, name="root", max_restarts=N + 1) as root:
        collector = TrioSmithCollector(supervisors=[root])
        registry = CollectorRegistry()
        registry.register(collector)
        for label in ("idle", "restarted"):
            if label == "restarted":
                for i in range(N):
                    await root.terminate_child(f"w{i}")
                    await root.restart_child(f"w{i}")
            refresh = best_ms(collector.refresh)
            size = len(generate_latest(registry))
            scrape = await trio.to_thread.run_sync(best_ms, lambda: generate_latest(registry))
            figures[label] = (refresh, scrape, size)
        await root.shutdown()
    return figures


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    figures = trio.run(measure)
    print(f"prometheus scrape of a tree of {N:,} children (best of {ROUNDS})")
    for label, (refresh, scrape, size) in figures.items():
        print(
            f"  {label:<10} snapshot on the trio thread {refresh:7.2f} ms, "
            f"scrape {scrape:7.2f} ms, {size / 1e3:,.0f} kB"
        )
    print()
    for label, (_, scrape, _) in figures.items():
        verdict = "PASS" if scrape < TARGET_MS else "FAIL"
        print(f"{verdict} scrape, {label} tree: {scrape:.1f} ms (target < {TARGET_MS:.0f} ms)")


if __name__ == "__main__":
    main()

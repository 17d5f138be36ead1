"""Benchmark: the circuit breaker's cost per call, and the phi detector's per heartbeat.

Target (docs/design.md rule 31; docs/performance.md): the overhead
of a successful call through a CLOSED breaker, on trio, is no more than the
cheapest Python peer's measured in the same run (circuitbreaker, purgatory,
aiobreaker: ``make bench`` installs them, the ``bench`` extra), or, when
none is installed, no more than 0.6 us over the bare ``await``.

Measured in one process, each variant a loop of CALLS awaits of the same
trivial ``async def`` in one ``trio.run``:

* bare: ``await work()``, the floor;
* trio_smith: ``await breaker.call(work)``, ``async with breaker: await
  work()`` and a ``@breaker``-decorated function, with resilience4j's
  defaults (count window of 100, minimum 100 calls, durations read from
  ``trio.current_time``);
* peers, when importable: circuitbreaker's ``@circuit``, purgatory's
  decorator and ``async with`` forms, aiobreaker's ``call_async``.

Overhead = time per call minus the bare time per call. The variants run in
turn, ROUNDS times; each figure is the best round (a shared machine only
ever slows a run down), and the spread of the rounds is printed.

With a bus attached (``events=``, docs/design.md rule 41), ``breaker.call``
is measured twice: publishing the state's events only (the default: the
hot path stays open) and one event per call (``call_events=True``); the
events the bus refused are printed.

With a telemetry handler that does nothing attached to
``("trio_smith", "breaker", "call")`` (``trio_smith.telemetry``, docs/design.md
rule 44), ``breaker.call`` is measured once more: the price of a metrics
handler per call, beyond the handler itself.

It also measures ``PhiAccrualFailureDetector.heartbeat(node)`` and
``phi(node)`` with 1 and 10,000 monitored nodes (the cost must not grow with
the number of nodes or of samples: O(1) per heartbeat), and the extra cost
of ``current_child().heartbeat()`` in a watched child.

Then the four companions (docs/design.md rules 48-52), each against the
bare trio floor doing the same job and the cheapest peer (docs/performance.md):

* Retry (3 attempts, a 0.5 s wait; the first attempt succeeds):
  ``retry.call`` and ``@retry`` against a hand-written ``for``/``try`` loop
  (the floor), tenacity's ``@retry`` and stamina's ``@retry`` (both on trio);
* TimeLimiter (1 s): ``limiter.call`` and ``async with limiter`` against
  ``with trio.move_on_after(1.0)``;
* Bulkhead (25 permits): ``bulkhead.call`` and ``async with bulkhead``
  against ``async with trio.Semaphore(25)``;
* RateLimiter (a limit it never reaches): ``limiter.call`` and ``async
  with limiter`` against a hand-written fixed-window counter on
  ``trio.current_time()`` (the floor) and aiolimiter's ``async with``,
  which runs on asyncio only: its overhead is taken over a bare ``await``
  in ``asyncio.run``;
* the five composed (``compose(...)``) around one call, for the record.

Target: each one's overhead is no more than its cheapest peer's and no more
than twice its floor's.

Run: ``make bench`` or ``.venv/bin/python benchmarks/resilience.py``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from trio_smith import telemetry
from trio_smith.events import EventBus
from trio_smith.resilience import (
    Bulkhead,
    CircuitBreaker,
    RateLimiter,
    Retry,
    TimeLimiter,
    compose,
)

CALLS = 100_000
ROUNDS = 5
#: The target when no peer is installed, in microseconds.
ABSOLUTE_TARGET_US = 0.6

Loop = Callable[[], Awaitable[float]]


async def work() -> int:
    return 1


def timed(body: Callable[[], Awaitable[None]]) -> Loop:
    async def run() -> float:
        start = time.perf_counter()
        await body()
        return (time.perf_counter() - start) / CALLS * 1e6

    return run


def bare() -> Loop:
    async def body() -> None:
        for _ in range(CALLS):
            await work()

    return timed(body)


def breaker_call() -> Loop:
    breaker = CircuitBreaker("bench")

    async def body() -> None:
        call = breaker.call
        for _ in range(CALLS):
            await call(work)
        assert breaker.statistics().buffered_calls == min(CALLS, 100)

    return timed(body)


def breaker_context() -> Loop:
    breaker = CircuitBreaker("bench")

    async def body() -> None:
        for _ in range(CALLS):
            async with breaker:
                await work()

    return timed(body)


def breaker_decorated() -> Loop:
    breaker = CircuitBreaker("bench")
    protected = breaker(work)

    async def body() -> None:
        for _ in range(CALLS):
            await protected()

    return timed(body)


def breaker_with_bus(**options: Any) -> Callable[[], Loop]:
    """``await breaker.call(work)`` with ``events=`` an open EventBus.

    The bus has one subscriber (the default buffer and overflow, BLOCK) that
    never reads during the loop, as a monitoring task that is not scheduled
    in a tight loop: once its buffer is full, the bus refuses events and the
    breaker counts them in ``events_dropped``.
    """

    label = ", ".join(f"{key}={value}" for key, value in sorted(options.items()))

    def factory() -> Loop:
        async def run() -> float:
            async with EventBus() as bus, bus.subscribe():
                breaker = CircuitBreaker("bench", events=bus, **options)
                call = breaker.call
                start = time.perf_counter()
                for _ in range(CALLS):
                    await call(work)
                elapsed = (time.perf_counter() - start) / CALLS * 1e6
                DROPPED[label] = breaker.statistics().events_dropped
                return elapsed

        return run

    return factory


def breaker_call_with_telemetry() -> Loop:
    """``await breaker.call(work)`` with a no-op telemetry handler on the breaker's calls."""
    breaker = CircuitBreaker("bench")

    def noop(name: object, measurements: object, metadata: object) -> None:
        pass

    async def body() -> None:
        telemetry.attach("bench", [("trio_smith", "breaker", "call")], noop)
        try:
            call = breaker.call
            for _ in range(CALLS):
                await call(work)
        finally:
            telemetry.detach("bench")

    return timed(body)


#: Events dropped in the last round of each bus variant, by its options.
DROPPED: dict[str, int] = {}


def peers() -> dict[str, Callable[[], Loop]]:
    """The peers that are importable, by name: a factory of their loop each."""
    found: dict[str, Callable[[], Loop]] = {}
    try:
        circuitbreaker: Any = importlib.import_module("circuitbreaker")
    except ImportError:
        pass
    else:

        def circuit() -> Loop:
            protected = circuitbreaker.circuit(failure_threshold=5)(work)

            async def body() -> None:
                for _ in range(CALLS):
                    await protected()

            return timed(body)

        found["circuitbreaker 2 @circuit"] = circuit
    try:
        purgatory: Any = importlib.import_module("purgatory")
    except ImportError:
        pass
    else:

        def purgatory_decorator() -> Loop:
            protected = purgatory.AsyncCircuitBreakerFactory()(circuit="bench")(work)

            async def body() -> None:
                for _ in range(CALLS):
                    await protected()

            return timed(body)

        def purgatory_context() -> Loop:
            factory = purgatory.AsyncCircuitBreakerFactory()

            async def body() -> None:
                for _ in range(CALLS):
                    async with await factory.get_breaker("bench"):
                        await work()

            return timed(body)

        found["purgatory 3 decorator"] = purgatory_decorator
        found["purgatory 3 async with"] = purgatory_context
    try:
        aiobreaker: Any = importlib.import_module("aiobreaker")
    except ImportError:
        pass
    else:

        def aiobreaker_call() -> Loop:
            breaker = aiobreaker.CircuitBreaker()

            async def body() -> None:
                for _ in range(CALLS):
                    await breaker.call_async(work)

            return timed(body)

        found["aiobreaker 1 call_async"] = aiobreaker_call
    return found


def run_loop(factory: Callable[[], Loop]) -> float:
    """Microseconds per call of one loop, in its own trio.run."""
    loop = factory()
    gc.collect()
    return trio.run(loop)


# ---------------------------------------------------------------- phi


def detector_costs() -> dict[str, float] | None:
    """Microseconds per heartbeat / phi, with 1 and 10,000 nodes; None if there is no detector."""
    try:
        resilience: Any = importlib.import_module("trio_smith.resilience")
        detector_class = resilience.PhiAccrualFailureDetector
    except (ImportError, AttributeError):
        return None
    n = 100_000
    results: dict[str, float] = {}

    async def main() -> None:
        for nodes in (1, 10_000):
            detector = detector_class()
            names = [f"node-{i}" for i in range(nodes)]
            for name in names:
                detector.heartbeat(name)
            # Fill every history to its maximum sample size first, so the
            # figure is that of a full window (eviction included).
            target = names[0]
            for _ in range(1_100):
                detector.heartbeat(target)
            heartbeat, phi = detector.heartbeat, detector.phi
            start = time.perf_counter()
            for _ in range(n):
                heartbeat(target)
            results[f"heartbeat(node), {nodes:,} nodes"] = (time.perf_counter() - start) / n * 1e6
            start = time.perf_counter()
            for _ in range(n):
                phi(target)
            results[f"phi(node), {nodes:,} nodes"] = (time.perf_counter() - start) / n * 1e6

    trio.run(main)
    return results


def child_heartbeat_costs() -> dict[str, float] | None:
    """Microseconds per ``current_child().heartbeat()``, unwatched and watched."""
    try:
        smith: Any = importlib.import_module("trio_smith")
        heartbeat_spec = smith.Heartbeat
    except AttributeError:
        return None
    n = 100_000
    results: dict[str, float] = {}

    async def child(label: str, done: trio.Event) -> None:
        ctx = smith.current_child()
        beat = ctx.heartbeat
        start = time.perf_counter()
        for _ in range(n):
            beat()
        results[label] = (time.perf_counter() - start) / n * 1e6
        done.set()

    async def main() -> None:
        for label, spec in (
            ("child heartbeat(), not watched", None),
            ("child heartbeat(), watched", heartbeat_spec(1.0)),
        ):
            extra = {} if spec is None else {"heartbeat": spec}
            done = trio.Event()
            child_spec = smith.ChildSpec(
                "c", child, (label, done), restart=smith.Restart.TEMPORARY, **extra
            )
            async with smith.Supervisor([child_spec]) as sup:
                await done.wait()
                await sup.shutdown()

    trio.run(main)
    return results


# ---------------------------------------------------------------- the companions


def each(body: Callable[[], Awaitable[object]]) -> Loop:
    """A loop of CALLS ``await body()``."""

    async def loop() -> None:
        for _ in range(CALLS):
            await body()

    return timed(loop)


def retry_floor() -> Loop:
    async def attempt() -> int:
        for _ in range(3):
            try:
                return await work()
            except Exception:
                await trio.sleep(0.5)
        raise AssertionError("unreachable: work() succeeds")

    return each(attempt)


def retry_call() -> Loop:
    retry = Retry("bench", max_attempts=3, wait=0.5)
    return each(functools.partial(retry.call, work))


def retry_decorated() -> Loop:
    return each(Retry("bench", max_attempts=3, wait=0.5)(work))


def time_limiter_floor() -> Loop:
    async def body() -> None:
        for _ in range(CALLS):
            with trio.move_on_after(1.0):
                await work()

    return timed(body)


def time_limiter_call() -> Loop:
    return each(functools.partial(TimeLimiter("bench", timeout=1.0).call, work))


def time_limiter_context() -> Loop:
    limiter = TimeLimiter("bench", timeout=1.0)

    async def body() -> None:
        for _ in range(CALLS):
            async with limiter:
                await work()

    return timed(body)


def bulkhead_floor() -> Loop:
    async def body() -> None:
        semaphore = trio.Semaphore(25)
        for _ in range(CALLS):
            async with semaphore:
                await work()

    return timed(body)


def bulkhead_call() -> Loop:
    return each(functools.partial(Bulkhead("bench", max_concurrent_calls=25).call, work))


def bulkhead_context() -> Loop:
    bulkhead = Bulkhead("bench", max_concurrent_calls=25)

    async def body() -> None:
        for _ in range(CALLS):
            async with bulkhead:
                await work()

    return timed(body)


def rate_floor() -> Loop:
    """A fixed window of ``limit`` permits per second, by hand, on trio's clock."""

    async def body() -> None:
        limit, period = 10**9, 1.0
        window, used = 0, 0
        clock = trio.current_time
        for _ in range(CALLS):
            now_window = int(clock() // period)
            if now_window != window:
                window, used = now_window, 0
            if used >= limit:
                raise AssertionError("unreachable: the limit is never reached")
            used += 1
            await work()

    return timed(body)


def rate_limiter() -> RateLimiter:
    return RateLimiter("bench", limit_for_period=10**9, refresh_period=1.0, timeout=0.0)


def rate_call() -> Loop:
    return each(functools.partial(rate_limiter().call, work))


def rate_context() -> Loop:
    limiter = rate_limiter()

    async def body() -> None:
        for _ in range(CALLS):
            async with limiter:
                await work()

    return timed(body)


def composed_call() -> Loop:
    composition = compose(
        retry=Retry("bench"),
        circuit_breaker=CircuitBreaker("bench"),
        rate_limiter=rate_limiter(),
        time_limiter=TimeLimiter("bench"),
        bulkhead=Bulkhead("bench"),
    )
    return each(functools.partial(composition.call, work))


def retry_peers() -> dict[str, Callable[[], Loop]]:
    found: dict[str, Callable[[], Loop]] = {}
    try:
        tenacity: Any = importlib.import_module("tenacity")
    except ImportError:
        pass
    else:

        def tenacity_retry() -> Loop:
            return each(
                tenacity.retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_fixed(0.5))(
                    work
                )
            )

        found["tenacity @retry"] = tenacity_retry
    try:
        stamina: Any = importlib.import_module("stamina")
    except ImportError:
        pass
    else:

        def stamina_retry() -> Loop:
            return each(stamina.retry(on=Exception, attempts=3, wait_initial=0.5)(work))

        found["stamina @retry"] = stamina_retry
    return found


def aiolimiter_overhead() -> float | None:
    """aiolimiter's ``async with`` overhead over a bare await, both on asyncio; None if absent."""
    try:
        aiolimiter: Any = importlib.import_module("aiolimiter")
    except ImportError:
        return None

    async def bare_loop() -> float:
        start = time.perf_counter()
        for _ in range(CALLS):
            await work()
        return (time.perf_counter() - start) / CALLS * 1e6

    async def limited_loop() -> float:
        limiter = aiolimiter.AsyncLimiter(10**9, 1.0)
        start = time.perf_counter()
        for _ in range(CALLS):
            async with limiter:
                await work()
        return (time.perf_counter() - start) / CALLS * 1e6

    gc.collect()
    floor = asyncio.run(bare_loop())
    gc.collect()
    return asyncio.run(limited_loop()) - floor


#: Each companion, by title: its floor, and our forms (the first is the one judged).
COMPANIONS: dict[str, tuple[Callable[[], Loop], dict[str, Callable[[], Loop]]]] = {
    "Retry": (
        retry_floor,
        {"retry.call(fn)": retry_call, "@retry": retry_decorated},
    ),
    "TimeLimiter": (
        time_limiter_floor,
        {"limiter.call(fn)": time_limiter_call, "async with limiter": time_limiter_context},
    ),
    "Bulkhead": (
        bulkhead_floor,
        {"bulkhead.call(fn)": bulkhead_call, "async with bulkhead": bulkhead_context},
    ),
    "RateLimiter": (
        rate_floor,
        {"limiter.call(fn)": rate_call, "async with limiter": rate_context},
    ),
}


def companions() -> None:
    """Measure the companions and print each one's figures and verdicts."""
    peers_of: dict[str, dict[str, Callable[[], Loop]]] = {"Retry": retry_peers()}
    rounds: dict[tuple[str, str], list[float]] = {}
    aio: list[float] = []
    for _ in range(ROUNDS):
        floor = run_loop(bare)
        for title, (floor_factory, ours) in COMPANIONS.items():
            variants = {"floor": floor_factory, **ours, **peers_of.get(title, {})}
            for name, factory in variants.items():
                rounds.setdefault((title, name), []).append(run_loop(factory) - floor)
        rounds.setdefault(("Composed", "all five, call(fn)"), []).append(
            run_loop(composed_call) - floor
        )
        overhead = aiolimiter_overhead()
        if overhead is not None:
            aio.append(overhead)
    best = {key: min(values) for key, values in rounds.items()}
    print(
        f"\nCompanions: overhead per successful call over a bare await, us (best of {ROUNDS}"
        f" rounds of {CALLS:,} calls; min-max in brackets)"
    )
    for title in [*COMPANIONS, "Composed"]:
        print(f"{title}")
        for (group, name), values in rounds.items():
            if group == title:
                spread = f"({min(values):.3f}-{max(values):.3f})"
                print(f"  {name:<38}{best[group, name]:>10.3f}  {spread}")
        if title == "RateLimiter" and aio:
            print(f"  {'aiolimiter async with (asyncio)':<38}{min(aio):>10.3f}")
        if title not in COMPANIONS:
            continue
        first = next(iter(COMPANIONS[title][1]))
        mine = best[title, first]
        floor_cost = best[title, "floor"]
        peers = {name: best[title, name] for name in peers_of.get(title, {})}
        if title == "RateLimiter" and aio:
            peers["aiolimiter (asyncio)"] = min(aio)
        checks = [(f"<= 2x the floor ({2 * floor_cost:.3f})", mine <= 2 * floor_cost)]
        if peers:
            cheapest = min(peers, key=lambda name: peers[name])
            checks.append((f"<= {cheapest} ({peers[cheapest]:.3f})", mine <= peers[cheapest]))
        for label, passed in checks:
            print(f"  {'PASS' if passed else 'FAIL'}: {first} {mine:.3f} us {label}")


# ---------------------------------------------------------------- main


def main() -> None:
    ours: dict[str, Callable[[], Loop]] = {
        "trio_smith await breaker.call(fn)": breaker_call,
        "trio_smith async with breaker": breaker_context,
        "trio_smith @breaker": breaker_decorated,
    }
    with_bus: dict[str, Callable[[], Loop]] = {
        "breaker.call, events=bus": breaker_with_bus(),
        "breaker.call, events=bus, call_events": breaker_with_bus(call_events=True),
        "breaker.call, no-op telemetry handler": breaker_call_with_telemetry,
    }
    others = peers()
    variants = {"bare await": bare, **ours, **with_bus, **others}
    best: dict[str, float] = {}
    rounds: dict[str, list[float]] = {name: [] for name in variants}
    run_loop(bare)  # warm-up
    for _ in range(ROUNDS):
        floor = run_loop(bare)
        rounds["bare await"].append(floor)
        for name, factory in variants.items():
            if name == "bare await":
                continue
            rounds[name].append(run_loop(factory) - floor)
    for name, values in rounds.items():
        best[name] = min(values)

    print(
        f"Circuit breaker overhead per successful call, CLOSED (best of {ROUNDS} rounds of"
        f" {CALLS:,} calls; in brackets the min-max over the rounds)"
    )
    print(f"{'variant':<40}{'us per call':>12}  rounds")
    for name, values in rounds.items():
        label = "time" if name == "bare await" else "overhead"
        print(f"{name:<40}{best[name]:>12.3f}  ({min(values):.3f}-{max(values):.3f}) {label}")

    ours_best = min(best[name] for name in ours)
    call_best = best["trio_smith await breaker.call(fn)"]
    if others:
        peer_name = min(others, key=lambda name: best[name])
        target = best[peer_name]
        verdict = "PASS" if call_best <= target else "FAIL"
        print(
            f"\n{verdict}: breaker.call overhead {call_best:.3f} us <= cheapest peer"
            f" ({peer_name}) {target:.3f} us; fastest trio_smith form {ours_best:.3f} us"
        )
    else:
        verdict = "PASS" if call_best <= ABSOLUTE_TARGET_US else "FAIL"
        print(
            f"\n{verdict}: breaker.call overhead {call_best:.3f} us <= {ABSOLUTE_TARGET_US} us"
            " (no peer installed: `pip install -e '.[bench]'` adds them)"
        )

    print("\nEvents dropped in the last round (one subscriber that never reads, buffer 128):")
    for name, dropped in DROPPED.items():
        print(f"  {name or 'state events only'}: {dropped:,} of {CALLS:,} calls")

    for title, costs in (
        ("Phi-accrual detector (us per operation)", detector_costs()),
        ("Hung-child detection (us per heartbeat)", child_heartbeat_costs()),
    ):
        if costs is None:
            continue
        print(f"\n{title}")
        for name, value in costs.items():
            print(f"{name:<40}{value:>12.3f}")

    companions()


if __name__ == "__main__":
    main()

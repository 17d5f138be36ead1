"""Benchmark: event bus fan-out against the naive trio floor, in one run.

Target (docs/performance.md): fan-out with the BLOCK
policy, every subscriber draining, at >= 5x the events per second of the
naive trio floor at 1, 10 and 100 subscribers. This script measures, in the
same process:

* fan-out, floor (design rule 18): one bounded memory channel
  per subscriber (``trio.open_memory_channel(BUFFER)``); the publisher does
  ``await send_channel.send(event)`` to each subscriber's channel in turn,
  and each subscriber is a task doing ``async for event in receive_channel``;
* fan-out, bus: ``async with EventBus() as bus``, N ``bus.subscribe(
  buffer=BUFFER)`` subscriptions, each drained by a task doing ``async for
  event in subscription``; the publisher does ``await bus.publish(event)``;
* fan-out, bus with ``publish_nowait`` (informational): the publisher calls
  ``bus.publish_nowait(event)`` and ``await trio.lowlevel.checkpoint()``
  once every 64 events (falling back to ``await bus.publish`` on
  ``trio.WouldBlock``, which is counted);
* the same bus backed by a ``MemoryEventStore`` at 1 and 10 subscribers,
  against the store-less bus;
* filtered fan-out (informational): 100 subscribers, each with an
  ``EventFilter(types=...)``, of which 10 take the events; its floor checks
  the same predicate per subscriber and ``await send()``s to the 10 channels;
* the cost of ``Event.new`` and of ``uuid7()`` alone (informational).

Events per second = events published / the time from the first publish until
every subscriber has received the last event (stamped by the subscriber that
receives it last). Every subscriber task is started and blocked before the
clock starts. The events are built with ``Event.new`` beforehand; floor and
bus carry the same objects. Each subscriber counts what it receives; after
every run the script asserts that each subscriber received exactly the
events published (and a filtered-out one none), the last one last. The
warm-up runs every variant once with each subscriber recording what it
receives, and checks the whole sequence (a benchmark that drops events is
worthless).

Floor and bus runs are interleaved over ROUNDS rounds, each run in its own
``trio.run`` after a ``gc.collect()``. Each rate is the best over the rounds
(other work on a shared machine only ever slows a run down), and each ratio
is the ratio of two best rates; the min-max of the per-round ratios (a
round's floor and bus runs are seconds apart) shows the noise. Each run also
records the CPU time of the thread (``time.thread_time``: trio runs every task
on one thread), which other processes disturb less; the ``cpu`` ratios divide
the best CPU-time rates. The PASS/FAIL verdicts use the wall-clock ratios. It
prints a summary table and one PASS/FAIL line per target (it always exits 0).

Run: ``make bench`` or ``.venv/bin/python benchmarks/events.py``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import trio
from trio.testing import wait_all_tasks_blocked

from trio_smith.events import (
    DEFAULT_BUFFER,
    Event,
    EventBus,
    EventFilter,
    EventType,
    MemoryEventStore,
    uuid7,
)

#: Buffer per subscriber, floor and bus alike (trio_smith's default).
BUFFER = DEFAULT_BUFFER
#: Events published per run, by number of subscribers (20k-80k deliveries
#: per run).
EVENTS = {1: 20_000, 10: 4_000, 100: 800}
STORE_SUBSCRIBERS = (1, 10)
FILTERED_SUBSCRIBERS = 100
FILTERED_MATCHING = 10
ROUNDS = 7
#: Publishes between two checkpoints in the publish_nowait variant.
NOWAIT_BATCH = 64
#: Event.new / uuid7 timing: calls per window, windows.
NEW_CALLS = 20_000
NEW_WINDOWS = 5

FANOUT_TARGET = 5.0

TYPE = EventType("bench", "tick")
OTHER = EventType("bench", "other")


class Clock(NamedTuple):
    """A reading of both clocks, or the difference of two."""

    wall: float
    cpu: float

    @staticmethod
    def now() -> Clock:
        return Clock(time.perf_counter(), time.thread_time())

    def __sub__(self, other: tuple[float, ...]) -> Clock:
        return Clock(self.wall - other[0], self.cpu - other[1])


def make_events(n: int) -> list[Event]:
    return [Event.new(TYPE, source="bench/publisher", payload={"i": i}) for i in range(n)]


class Tally:
    """What the subscribers of one run received, and when the last one finished.

    With ``record``, every subscriber also keeps what it received (a
    verification run: the order is checked too).
    """

    def __init__(
        self, events: Sequence[Event], subscribers: int, takers: int, record: bool
    ) -> None:
        self.events = events
        self.expected = len(events)
        self.last_id = events[-1].id
        self.takers = takers
        self.counts = [0] * subscribers
        self.last_ok = [False] * subscribers
        self.logs: list[list[Event]] | None = [[] for _ in range(subscribers)] if record else None
        self.waiting = takers
        self.end = Clock(0.0, 0.0)

    def finished(self) -> None:
        self.waiting -= 1
        if self.waiting == 0:
            self.end = Clock.now()

    def check(self, what: str) -> None:
        """Every taker received every event (in order, if recorded); the others none."""
        for i, count in enumerate(self.counts):
            expected = self.expected if i < self.takers else 0
            if count != expected or (expected and not self.last_ok[i]):
                raise AssertionError(
                    f"{what}: subscriber {i} received {count} events (expected "
                    f"{expected}; the last event came last: {self.last_ok[i]})"
                )
        if self.waiting != 0:
            raise AssertionError(f"{what}: {self.waiting} subscribers did not finish")
        if self.logs is not None:
            ids = [event.id for event in self.events]
            for i, log in enumerate(self.logs[: self.takers]):
                if [event.id for event in log] != ids:
                    raise AssertionError(f"{what}: subscriber {i} received events out of order")


async def drain(tally: Tally, i: int, channel: trio.abc.ReceiveChannel[Event]) -> None:
    """One subscriber: ``async for event in channel``, counting."""
    expected = tally.expected
    received = 0
    async with channel:
        if tally.logs is None:
            async for event in channel:
                received += 1
                if received == expected:
                    tally.last_ok[i] = event.id == tally.last_id
                    tally.finished()
        else:
            log = tally.logs[i]
            async for event in channel:
                log.append(event)
                received += 1
                if received == expected:
                    tally.last_ok[i] = event.id == tally.last_id
                    tally.finished()
    tally.counts[i] = received


# ---------------------------------------------------------------- floor


def floor_fanout(
    events: Sequence[Event], subscribers: int, *, matching: int | None = None, record: bool = False
) -> Clock:
    """Time taken: a bounded channel per subscriber, ``await send()`` to each in turn.

    ``matching``: the publisher checks a type per subscriber first (the
    floor of filtered fan-out); that many take the events.
    """
    takers = subscribers if matching is None else matching
    tally = Tally(events, subscribers, takers, record)

    async def main() -> Clock:
        sends: list[trio.MemorySendChannel[Event]] = []
        async with trio.open_nursery() as nursery:
            for i in range(subscribers):
                send, receive = trio.open_memory_channel[Event](BUFFER)
                sends.append(send)
                nursery.start_soon(drain, tally, i, receive)
            routes = [
                (frozenset({TYPE if i < (matching or 0) else OTHER}), channel)
                for i, channel in enumerate(sends)
            ]
            await wait_all_tasks_blocked()
            start = Clock.now()
            if matching is None:
                for event in events:
                    for channel in sends:
                        await channel.send(event)
            else:
                for event in events:
                    for types, channel in routes:
                        if event.type in types:
                            await channel.send(event)
            for channel in sends:
                await channel.aclose()
        return tally.end - start

    gc.collect()
    elapsed = trio.run(main)
    tally.check(f"floor, {subscribers} subscribers")
    return elapsed


# ---------------------------------------------------------------- bus


def bus_fanout(
    events: Sequence[Event],
    subscribers: int,
    *,
    store: bool = False,
    nowait: bool = False,
    matching: int | None = None,
    record: bool = False,
) -> tuple[Clock, int]:
    """Time taken, and the publishes that fell back from ``publish_nowait`` to ``publish``.

    ``matching``: give every subscriber an ``EventFilter(types=...)``; that
    many take the events, the others another type.
    """
    takers = subscribers if matching is None else matching
    tally = Tally(events, subscribers, takers, record)
    fallbacks = 0

    async def main() -> Clock:
        nonlocal fallbacks
        bus = EventBus(MemoryEventStore() if store else None)
        async with trio.open_nursery() as nursery, bus:
            for i in range(subscribers):
                if matching is None:
                    flt = None
                else:
                    flt = EventFilter(types=TYPE if i < matching else OTHER)
                nursery.start_soon(drain, tally, i, bus.subscribe(flt, buffer=BUFFER))
            await wait_all_tasks_blocked()
            start = Clock.now()
            if nowait:
                publish_nowait = bus.publish_nowait
                left = NOWAIT_BATCH
                for event in events:
                    try:
                        publish_nowait(event)
                    except trio.WouldBlock:
                        fallbacks += 1
                        await bus.publish(event)
                    left -= 1
                    if left == 0:
                        left = NOWAIT_BATCH
                        await trio.lowlevel.checkpoint()
            else:
                publish = bus.publish
                for event in events:
                    await publish(event)
            # Leaving the bus closes it: each subscription delivers what it
            # has buffered, then its iteration ends.
        return tally.end - start

    gc.collect()
    elapsed = trio.run(main)
    what = "bus" + (" + store" if store else "") + (" (publish_nowait)" if nowait else "")
    tally.check(f"{what}, {subscribers} subscribers")
    return elapsed, fallbacks


# ---------------------------------------------------------------- Event.new


def per_call_us(fn: Callable[[], object], calls: int, windows: int) -> float:
    """Microseconds per call of ``fn``: the best of ``windows`` windows."""
    best = float("inf")
    for _ in range(windows):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def event_new() -> Event:
    return Event.new(TYPE, source="bench/publisher", payload={"i": 1})


# ---------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


class Series:
    """Per-round rates (wall clock) of a subject and of what it is compared with.

    It also keeps the CPU time of each run (``time.thread_time``: trio runs
    every task on one thread), which other processes on the machine disturb
    less than the wall clock.
    """

    def __init__(self, events: int) -> None:
        self.events = events
        self.base: list[float] = []
        self.subject: list[float] = []
        self.base_cpu: list[float] = []
        self.subject_cpu: list[float] = []

    def add(self, base: Clock, subject: Clock) -> None:
        self.base.append(self.events / base.wall)
        self.subject.append(self.events / subject.wall)
        self.base_cpu.append(self.events / base.cpu)
        self.subject_cpu.append(self.events / subject.cpu)

    @property
    def ratios(self) -> list[float]:
        return [s / b for s, b in zip(self.subject, self.base, strict=True)]

    @property
    def best_base(self) -> float:
        return max(self.base)

    @property
    def best(self) -> float:
        return max(self.subject)

    @property
    def ratio(self) -> float:
        return self.best / self.best_base

    @property
    def cpu_ratio(self) -> float:
        return max(self.subject_cpu) / max(self.base_cpu)

    def spread(self, digits: int = 1) -> str:
        return f"{min(self.ratios):.{digits}f}-{max(self.ratios):.{digits}f}"


def _rate(rates: Sequence[float]) -> str:
    return f"{max(rates):>11,.0f}/s"


def _delivery_us(rates: Sequence[float], subscribers: int) -> str:
    return f"{1e6 / (max(rates) * subscribers):>6.2f} us/delivery"


def main() -> None:
    logging.getLogger("trio_smith").setLevel(logging.CRITICAL)
    wall = time.perf_counter()
    events = make_events(max(EVENTS.values()))
    sized = {n: events[:count] for n, count in EVENTS.items()}

    # Warm-up, which is also the verification run: every variant once, small,
    # each subscriber recording what it receives (checked in full, in order).
    warm = events[:2_000]
    floor_fanout(warm, 10, record=True)
    floor_fanout(warm, 10, matching=2, record=True)
    for store in (False, True):
        bus_fanout(warm, 10, store=store, record=True)
    bus_fanout(warm, 10, nowait=True, record=True)
    bus_fanout(warm, 10, matching=2, record=True)

    fanout = {n: Series(len(evs)) for n, evs in sized.items()}
    nowait = {n: Series(len(evs)) for n, evs in sized.items()}
    stored = {n: Series(len(sized[n])) for n in STORE_SUBSCRIBERS}
    filtered = Series(len(sized[FILTERED_SUBSCRIBERS]))
    fallbacks = 0
    for _ in range(ROUNDS):
        for n, evs in sized.items():
            floor_s = floor_fanout(evs, n)
            bus_s, _ = bus_fanout(evs, n)
            nowait_s, fell = bus_fanout(evs, n, nowait=True)
            fallbacks += fell
            fanout[n].add(floor_s, bus_s)
            nowait[n].add(floor_s, nowait_s)
            if n in stored:
                store_s, _ = bus_fanout(evs, n, store=True)
                stored[n].add(bus_s, store_s)
        evs = sized[FILTERED_SUBSCRIBERS]
        floor_s = floor_fanout(evs, FILTERED_SUBSCRIBERS, matching=FILTERED_MATCHING)
        filtered_s, _ = bus_fanout(evs, FILTERED_SUBSCRIBERS, matching=FILTERED_MATCHING)
        filtered.add(floor_s, filtered_s)

    new_us = per_call_us(event_new, NEW_CALLS, NEW_WINDOWS)
    uuid_us = per_call_us(uuid7, NEW_CALLS * 5, NEW_WINDOWS)

    def subs(n: int) -> str:
        return f"{n} subscriber{'s' if n > 1 else ''}"

    print(
        f"fan-out, BLOCK, buffer {BUFFER}, every subscriber draining with async for\n"
        f"(best of {ROUNDS} interleaved rounds; in brackets the min-max of the per-round"
        f" ratios; cpu: the ratio of thread CPU times)"
    )
    for n in sized:
        s, w = fanout[n], nowait[n]
        print(f"  {subs(n)}, {s.events:,} events")
        print(f"    {'floor: await send() to each':<30}{_rate(s.base)} {_delivery_us(s.base, n)}")
        for name, series in (("bus: await publish()", s), ("bus: publish_nowait(), ckpt/64", w)):
            print(
                f"    {name:<30}{_rate(series.subject)} {_delivery_us(series.subject, n)}"
                f"  {series.ratio:4.1f}x floor ({series.spread()}), cpu {series.cpu_ratio:.1f}x"
            )
    if fallbacks:
        print(f"  (publish_nowait raised WouldBlock {fallbacks} times; those used await publish)")

    print("\nstore-backed bus: EventBus(MemoryEventStore()), await publish()")
    for n, s in stored.items():
        print(
            f"  {subs(n):<14}{_rate(s.subject)}  {s.ratio:.2f}x the store-less bus"
            f" ({s.spread(2)}), cpu {s.cpu_ratio:.2f}x;"
            f" {s.best / fanout[n].best_base:.1f}x the floor"
        )

    print(
        f"\nfiltered fan-out: {FILTERED_SUBSCRIBERS} subscribers, each with"
        f" EventFilter(types=...); {FILTERED_MATCHING} take the {filtered.events:,} events"
    )
    print(f"  {'floor: type check, await send()':<32}{_rate(filtered.base)}")
    print(
        f"  {'bus':<32}{_rate(filtered.subject)}  {filtered.ratio:.1f}x floor"
        f" ({filtered.spread()}), cpu {filtered.cpu_ratio:.1f}x"
    )

    print(
        f"\nEvent.new(): {new_us:.2f} us per event; uuid7() alone: {uuid_us:.2f} us"
        f" (best of {NEW_WINDOWS} windows)"
    )

    print(
        f"\n{'figure (events/s)':<36}{'floor':>10}{'trio_smith':>12}{'ratio':>7}{'cpu':>7}  target"
    )
    rows: list[tuple[str, Series, str]] = [
        (f"fan-out, {subs(n)}", fanout[n], f">= {FANOUT_TARGET:g}") for n in sized
    ]
    rows += [(f"publish_nowait, {subs(n)}", nowait[n], "-") for n in sized]
    rows += [(f"store / no store, {subs(n)} (1)", stored[n], "-") for n in stored]
    rows.append(
        (f"filtered, {FILTERED_MATCHING} of {FILTERED_SUBSCRIBERS} subscribers", filtered, "-")
    )
    for name, series, target in rows:
        print(
            f"{name:<36}{series.best_base:>10,.0f}{series.best:>12,.0f}"
            f"{series.ratio:>7.2f}{series.cpu_ratio:>7.2f}  {target}"
        )
    print("(1) compared with the store-less bus, not the floor")
    print()
    for n in sized:
        ratio = fanout[n].ratio
        print(
            f"{_verdict(ratio >= FANOUT_TARGET)} fan-out to {subs(n)} {ratio:.1f}x floor"
            f" (cpu {fanout[n].cpu_ratio:.1f}x; target >= {FANOUT_TARGET:g})"
        )
    print(f"\n(the script took {time.perf_counter() - wall:.0f} s)")


if __name__ == "__main__":
    main()

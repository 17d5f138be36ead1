"""The real Bulkhead under MockClock against a naive first-come-first-served model.

Hypothesis draws a schedule: calls that arrive at given times and hold their
permit for given durations, some cancelled (while waiting or while running),
some entering with ``async with`` rather than ``call()``, and ``change()``s
of the limit and the wait. The schedule runs on the real bulkhead in one
``trio.run`` with an autojumping ``MockClock``; a plain event loop over the
same schedule says what a fair semaphore with a bounded wait must do. Each
call's fate (admitted at t and ended at t', refused at t, cancelled while
waiting at t) and the statistics read at probe times must agree.

No two events of the schedule may fall in the same instant where their order
matters (trio runs the tasks woken together in an unspecified order), so
each family of events gets its own fractional part, a multiple of 1/4096
(exact in binary, so sums of times are exact): call i arrives at
``n + (i+1)/4096``; every wait and hold is a whole number of seconds, so each
deadline and each release keeps the fraction of what started it; call i's
cancellation is at ``n + (1024+i)/4096``, change k at ``n + (2048+k)/4096``
and probe k at ``n + (3072+k)/4096``. Two releases in the same instant
commute, so they need no fraction of their own.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith._core._bulkhead import Permits
from trio_smith.resilience import Bulkhead, BulkheadFull

GRID = 4096


def fraction(slot: int) -> float:
    return slot / GRID


@attrs.frozen
class Call:
    arrival: float
    hold: int
    cancel_at: float | None
    async_with: bool


@attrs.frozen
class Change:
    at: float
    limit: int | None
    max_wait: int | None


@attrs.frozen
class Schedule:
    limit: int
    max_wait: int
    calls: tuple[Call, ...]
    changes: tuple[Change, ...]
    probes: tuple[float, ...]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    n_calls = draw(st.integers(1, 10))
    calls = []
    for i in range(n_calls):
        arrival = draw(st.integers(0, 12)) + fraction(i + 1)
        cancel = draw(st.none() | st.integers(0, 10))
        calls.append(
            Call(
                arrival=arrival,
                hold=draw(st.integers(1, 6)),
                # After the arrival: same whole second or later, larger fraction.
                cancel_at=None
                if cancel is None
                else math.floor(arrival) + cancel + fraction(1024 + i),
                async_with=draw(st.booleans()),
            )
        )
    changes = tuple(
        Change(
            at=draw(st.integers(0, 15)) + fraction(2048 + k),
            limit=draw(st.none() | st.integers(0, 4)),
            max_wait=draw(st.none() | st.integers(0, 5)),
        )
        for k in range(draw(st.integers(0, 3)))
    )
    probes = tuple(draw(st.integers(0, 20)) + fraction(3072 + k) for k in range(3))
    return Schedule(
        limit=draw(st.integers(0, 3)),
        max_wait=draw(st.integers(0, 4)),
        calls=tuple(calls),
        changes=changes,
        probes=probes,
    )


# What a call did: ("admitted", at, ended at, "done" | "cancelled"),
# ("rejected", at) or ("cancelled_waiting", at).
Fate = tuple[Any, ...]
Snapshot = tuple[
    int, int, int, int, int, int
]  # limit, available, waiting, permitted, rejected, finished


def model(schedule: Schedule) -> tuple[list[Fate], list[Snapshot]]:
    """A fair semaphore with a bounded wait, simulated one instant at a time."""
    limit = schedule.limit
    max_wait = schedule.max_wait
    held = 0
    queue: list[tuple[int, float]] = []  # (call, deadline), in arrival order
    running: dict[int, tuple[float, float]] = {}  # call -> (admitted at, ends at)
    fates: list[Fate | None] = [None] * len(schedule.calls)
    permitted = rejected = finished = 0
    snapshots: list[Snapshot] = []

    def admit(i: int, now: float) -> None:
        nonlocal held, permitted
        held += 1
        permitted += 1
        call = schedule.calls[i]
        end = now + call.hold
        if call.cancel_at is not None and call.cancel_at < end:
            end = call.cancel_at
        running[i] = (now, end)

    def admit_waiters(now: float) -> None:
        while queue and held < limit:
            i, _ = queue.pop(0)
            admit(i, now)

    # Every instant at which something may happen, in order.
    events: list[tuple[float, str, int]] = []
    for i, call in enumerate(schedule.calls):
        events.append((call.arrival, "arrive", i))
    for k, change in enumerate(schedule.changes):
        events.append((change.at, "change", k))
    for k, probe in enumerate(schedule.probes):
        events.append((probe, "probe", k))
    events.sort()
    pending = list(events)
    while True:
        # The next instant: a scheduled event, a running call's end, a
        # waiter's deadline or cancellation.
        times = [t for t, _, _ in pending[:1]]
        times += [end for _, end in running.values()]
        for i, deadline in queue:
            times.append(deadline)
            cancel = schedule.calls[i].cancel_at
            if cancel is not None:
                times.append(cancel)
        if not times:
            break
        now = min(times)
        # Deadlines and cancellations of waiters first (trio processes every
        # expired deadline before running the tasks they wake).
        for i, deadline in list(queue):
            cancel = schedule.calls[i].cancel_at
            if cancel is not None and cancel == now:
                queue.remove((i, deadline))
                fates[i] = ("cancelled_waiting", now)
            elif deadline == now:
                queue.remove((i, deadline))
                fates[i] = ("rejected", now)
                rejected += 1
        for i, (start, end) in sorted(running.items()):
            if end == now:
                del running[i]
                held -= 1
                finished += 1
                cancel = schedule.calls[i].cancel_at
                how = "cancelled" if cancel is not None and cancel == end else "done"
                fates[i] = ("admitted", start, end, how)
                admit_waiters(now)
        while pending and pending[0][0] == now:
            _, kind, index = pending.pop(0)
            if kind == "arrive":
                if held < limit and not queue:
                    admit(index, now)
                elif max_wait == 0:
                    fates[index] = ("rejected", now)
                    rejected += 1
                else:
                    queue.append((index, now + max_wait))
            elif kind == "change":
                change = schedule.changes[index]
                if change.max_wait is not None:
                    max_wait = change.max_wait
                if change.limit is not None:
                    limit = change.limit
                    admit_waiters(now)
            else:
                snapshots.append(
                    (limit, max(0, limit - held), len(queue), permitted, rejected, finished)
                )
    assert all(fate is not None for fate in fates)
    return [fate for fate in fates if fate is not None], snapshots


def run(schedule: Schedule) -> tuple[list[Fate], list[Snapshot]]:
    """The schedule on the real Bulkhead."""
    fates: list[Fate | None] = [None] * len(schedule.calls)
    snapshots: list[Snapshot] = []

    async def main() -> None:
        bulkhead = Bulkhead(
            "model", max_concurrent_calls=schedule.limit, max_wait=schedule.max_wait
        )

        async def one(i: int, call: Call) -> None:
            await trio.sleep_until(call.arrival)
            started: list[float] = []

            async def hold() -> None:
                started.append(trio.current_time())
                await trio.sleep(call.hold)

            deadline = math.inf if call.cancel_at is None else call.cancel_at
            with trio.CancelScope(deadline=deadline) as scope:
                try:
                    if call.async_with:
                        async with bulkhead:
                            await hold()
                    else:
                        await bulkhead.call(hold)
                except BulkheadFull:
                    fates[i] = ("rejected", trio.current_time())
                    return
            now = trio.current_time()
            if not started:
                assert scope.cancelled_caught
                fates[i] = ("cancelled_waiting", now)
            else:
                fates[i] = (
                    "admitted",
                    started[0],
                    now,
                    "cancelled" if scope.cancelled_caught else "done",
                )

        async def change(c: Change) -> None:
            await trio.sleep_until(c.at)
            bulkhead.change(max_concurrent_calls=c.limit, max_wait=c.max_wait)

        async def probe(at: float) -> None:
            await trio.sleep_until(at)
            s = bulkhead.statistics()
            snapshots.append(
                (
                    s.max_concurrent_calls,
                    s.available_concurrent_calls,
                    s.waiting_calls,
                    s.permitted_calls,
                    s.rejected_calls,
                    s.finished_calls,
                )
            )

        async with trio.open_nursery() as nursery:
            for i, call in enumerate(schedule.calls):
                nursery.start_soon(one, i, call)
            for c in schedule.changes:
                nursery.start_soon(change, c)
            for at in sorted(schedule.probes):
                nursery.start_soon(probe, at)
        final = bulkhead.statistics()
        # Nothing held, nobody waiting, every admitted call finished.
        assert final.waiting_calls == 0
        assert final.available_concurrent_calls == final.max_concurrent_calls
        assert final.permitted_calls == final.finished_calls

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert all(fate is not None for fate in fates)
    return [fate for fate in fates if fate is not None], snapshots


@given(
    st.integers(0, 4),
    st.lists(st.tuples(st.sampled_from(["arrive", "end", "give_up", "resize"]), st.integers(0, 4))),
)
def test_the_permits_alone_against_counters(limit: int, steps: list[tuple[str, int]]) -> None:
    """The pure accounting, with the line of waiters reduced to its length."""
    permits = Permits(limit)
    waiting = 0
    running = 0  # the naive model: calls running, and the limit
    naive_limit = limit
    naive_waiting = 0

    def naive_admit() -> None:
        nonlocal running, naive_waiting
        while naive_waiting and running < naive_limit:
            naive_waiting -= 1
            running += 1

    for step, n in steps:
        if step == "arrive":
            if not permits.take():
                waiting += 1
            if running < naive_limit and not naive_waiting:
                running += 1
            else:
                naive_waiting += 1
        elif step == "end" and running:
            if permits.give_back(waiting):
                waiting -= 1
            running -= 1
            naive_admit()
        elif step == "give_up" and waiting:
            waiting -= 1
            naive_waiting -= 1
        elif step == "resize":
            waiting -= permits.resize(n, waiting)
            naive_limit = n
            naive_admit()
        assert (permits.held, permits.limit, waiting) == (running, naive_limit, naive_waiting)
        assert permits.available == max(0, naive_limit - running)
        # The invariant that makes a newcomer unable to overtake a waiter.
        assert not waiting or permits.held >= permits.limit


@settings(max_examples=300)
@given(schedules())
def test_the_bulkhead_is_a_fair_semaphore_with_a_bounded_wait(schedule: Schedule) -> None:
    assert run(schedule) == model(schedule)


def test_a_worked_schedule() -> None:
    """Two permits, a 2 s wait; a cancelled waiter, a cancelled holder, a lowered limit."""
    f = fraction
    schedule = Schedule(
        limit=2,
        max_wait=2,
        calls=(
            Call(arrival=f(1), hold=5, cancel_at=None, async_with=False),
            Call(arrival=f(2), hold=1, cancel_at=None, async_with=True),
            Call(arrival=f(3), hold=1, cancel_at=None, async_with=False),
            Call(arrival=1 + f(4), hold=1, cancel_at=1 + f(1024 + 3), async_with=False),
            Call(arrival=2 + f(5), hold=4, cancel_at=3 + f(1024 + 4), async_with=True),
            Call(arrival=3 + f(6), hold=1, cancel_at=None, async_with=False),
            Call(arrival=3 + f(7), hold=1, cancel_at=None, async_with=True),
        ),
        changes=(Change(at=2 + f(2048), limit=1, max_wait=None),),
        probes=(1 + f(3072), 4 + f(3073)),
    )
    expected = (
        [
            ("admitted", f(1), 5 + f(1), "done"),
            ("admitted", f(2), 1 + f(2), "done"),
            ("admitted", 1 + f(2), 2 + f(2), "done"),  # waited for call 1's permit
            ("cancelled_waiting", 1 + f(1024 + 3)),
            ("admitted", 2 + f(5), 3 + f(1024 + 4), "cancelled"),  # before the limit fell
            ("admitted", 5 + f(1), 6 + f(1), "done"),  # call 4's permit vanished: waits for 0's
            ("rejected", 5 + f(7)),
        ],
        [
            (2, 0, 0, 3, 0, 1),
            (1, 0, 2, 4, 0, 3),
        ],
    )
    assert model(schedule) == expected
    assert run(schedule) == expected

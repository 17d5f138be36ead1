"""The rate limiter: resilience4j's RateLimiter tests ported to trio, and trio's own cases.

Every time is on ``autojump_clock`` and exact: each test checks the
``trio.current_time()`` at which a callee runs or a refusal is raised.
resilience4j's tests count a 250 ms cycle (``CYCLE_IN_NANOS``) from the
limiter's creation, at 0 here. Its blocking form parks a caller that cannot
be served in time for the whole timeout before it refuses; the trio limiter
refuses at once, as resilience4j's ``reservePermission`` and its Kotlin
coroutine adapter do, so the ported tests check the refusal at its arrival.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import EventBus
from trio_smith.resilience import (
    RateLimiter,
    RateLimiterEvent,
    RateLimiterStatistics,
    RequestNotPermitted,
)

from ..publisher import Recorder
from ._telemetry import Seen, recording

ACQUIRE = ("trio_smith", "rate_limiter", "acquire")
#: resilience4j AtomicRateLimiterTest's cycle, seconds.
CYCLE = 0.25


@pytest.fixture
def seen() -> Iterator[Seen]:
    """The rate limiter's telemetry events, while this test runs."""
    with recording(ACQUIRE) as got:
        yield got


def limiter_of(**options: Any) -> RateLimiter:
    """resilience4j AtomicRateLimiterTest's setup: 1 permit per 250 ms, timeout 0."""
    config: dict[str, Any] = dict(limit_for_period=1, refresh_period=CYCLE, timeout=0.0)
    config.update(options)
    return RateLimiter("test", **config)


class Callee:
    """An async callable that records the time of each run."""

    def __init__(self, result: object = "ok", error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.runs: list[float] = []

    async def __call__(self) -> object:
        self.runs.append(trio.current_time())
        if self.error is not None:
            raise self.error
        return self.result


def available(limiter: RateLimiter) -> int:
    return limiter.statistics().available_permissions


def snapshot(limiter: RateLimiter) -> tuple[int, float, int]:
    """(available permissions, retry_after, waiting calls)."""
    stats = limiter.statistics()
    return stats.available_permissions, stats.retry_after, stats.waiting_calls


async def refused(limiter: RateLimiter, callee: Callee) -> RequestNotPermitted:
    with pytest.raises(RequestNotPermitted) as caught:
        await limiter.call(callee)
    return caught.value


# ---------------------------------------------------------------- configuration


async def test_defaults_and_a_fresh_limiter_s_statistics() -> None:
    """resilience4j RateLimiterConfigTest (5 s timeout) and AtomicRateLimiterTest.metricsTest."""
    limiter = RateLimiter(limit_for_period=1, refresh_period=CYCLE)
    assert limiter.name == "rate_limiter"
    assert repr(limiter) == "<RateLimiter 'rate_limiter' 1 per 0.25 s>"
    assert limiter.statistics() == RateLimiterStatistics(
        name="rate_limiter",
        limit_for_period=1,
        refresh_period=0.25,
        timeout=5.0,
        available_permissions=1,
        waiting_calls=0,
        retry_after=0.0,
        permitted_calls=0,
        rejected_calls=0,
        events_dropped=0,
    )


def test_the_limit_and_the_period_are_required() -> None:
    """resilience4j's defaults (50 per 500 ns) limit nothing, so there are none."""
    message = (
        "RateLimiter.__init__() missing 2 required keyword-only arguments: "
        "'limit_for_period' and 'refresh_period'"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        RateLimiter("r")  # type: ignore[call-arg]
    message = "RateLimiter.__init__() missing 1 required keyword-only argument: 'refresh_period'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        RateLimiter("r", limit_for_period=5)  # type: ignore[call-arg]


TOO_LARGE = "is too large: at most 2**63 - 1 ns (about 292 years), got"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(name=""), ValueError, "name must be a non-empty str, got ''"),
        (dict(name=None), ValueError, "name must be a non-empty str, got None"),
        (dict(limit_for_period=0), ValueError, "limit_for_period must be an int >= 1, got 0"),
        (dict(limit_for_period=-1), ValueError, "limit_for_period must be an int >= 1, got -1"),
        (dict(limit_for_period=1.5), ValueError, "limit_for_period must be an int >= 1, got 1.5"),
        (dict(limit_for_period=True), ValueError, "limit_for_period must be an int >= 1, got True"),
        (dict(limit_for_period=None), ValueError, "limit_for_period must be an int >= 1, got None"),
        (dict(limit_for_period="5"), ValueError, "limit_for_period must be an int >= 1, got '5'"),
        (
            dict(refresh_period=0),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got 0",
        ),
        (
            dict(refresh_period=-1e-9),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got -1e-09",
        ),
        (
            dict(refresh_period=5e-10),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got 5e-10",
        ),
        (
            dict(refresh_period=math.nan),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got nan",
        ),
        (
            dict(refresh_period=math.inf),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got inf",
        ),
        (
            dict(refresh_period=True),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got True",
        ),
        (
            dict(refresh_period="1"),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got '1'",
        ),
        (
            dict(refresh_period=None),
            ValueError,
            "refresh_period must be a finite number >= 1e-09, got None",
        ),
        (dict(refresh_period=1e10), ValueError, f"refresh_period {TOO_LARGE} 10000000000.0"),
        (dict(timeout=-1), ValueError, "timeout must be a finite number >= 0, got -1"),
        (dict(timeout=-1e-9), ValueError, "timeout must be a finite number >= 0, got -1e-09"),
        (dict(timeout=math.nan), ValueError, "timeout must be a finite number >= 0, got nan"),
        (dict(timeout=math.inf), ValueError, "timeout must be a finite number >= 0, got inf"),
        (dict(timeout=-math.inf), ValueError, "timeout must be a finite number >= 0, got -inf"),
        (dict(timeout=False), ValueError, "timeout must be a finite number >= 0, got False"),
        (dict(timeout=None), ValueError, "timeout must be a finite number >= 0, got None"),
        (dict(timeout=10**10), ValueError, f"timeout {TOO_LARGE} 10000000000"),
        (
            dict(drain_on_exception=3),
            TypeError,
            "drain_on_exception must be a callable or None, got 3",
        ),
        (
            dict(drain_on_result="yes"),
            TypeError,
            "drain_on_result must be a callable or None, got 'yes'",
        ),
        (dict(events=3), TypeError, "events must have a publish_nowait method, got 3"),
        (dict(call_events=1, events=Recorder()), TypeError, "call_events must be a bool, got 1"),
        (dict(call_events=None), TypeError, "call_events must be a bool, got None"),
        (
            dict(call_events=True),
            ValueError,
            "call_events=True needs a publisher, but events is None",
        ),
    ],
)
def test_bad_arguments_are_refused_with_their_names(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """resilience4j RateLimiterConfigTest (limit 0, period 0 or -1 ns, timeout -1 ns, too large)."""
    config: dict[str, Any] = dict(limit_for_period=1, refresh_period=1.0)
    config.update(options)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        RateLimiter(**config)


def test_the_smallest_period_is_one_nanosecond_and_ints_are_taken() -> None:
    RateLimiter(limit_for_period=1, refresh_period=1e-9, timeout=0)
    RateLimiter(limit_for_period=10**12, refresh_period=3600, timeout=9_223_372_036)


async def test_bad_arguments_of_the_methods_are_refused_and_change_nothing() -> None:
    limiter = limiter_of()
    bad: list[tuple[Any, str]] = [(0, "0"), (-1, "-1"), (True, "True"), (1.0, "1.0")]
    for permits, shown in bad:
        message = f"permits must be an int >= 1, got {shown}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            await limiter.acquire(permits)
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            limiter.acquire_nowait(permits)
    with pytest.raises(ValueError, match=r"^limit_for_period must be an int >= 1, got 0$"):
        limiter.change_limit(0)
    with pytest.raises(ValueError, match=r"^limit_for_period must be an int >= 1, got False$"):
        limiter.change_limit(False)
    with pytest.raises(ValueError, match=r"^timeout must be a finite number >= 0, got nan$"):
        limiter.change_timeout(math.nan)
    with pytest.raises(ValueError, match=f"^timeout {re.escape(TOO_LARGE)} 1e\\+300$"):
        limiter.change_timeout(1e300)
    stats = limiter.statistics()
    assert (stats.limit_for_period, stats.timeout, stats.available_permissions) == (1, 0.0, 1)
    assert (stats.permitted_calls, stats.rejected_calls) == (0, 0)


def test_the_decorator_refuses_what_is_not_an_async_function() -> None:
    def sync_fetch() -> str:
        return "fetched"  # pragma: no cover

    message = (
        "a rate limiter decorates an async function, got the plain function "
        "'test_the_decorator_refuses_what_is_not_an_async_function.<locals>.sync_fetch' "
        "(define it with async def)"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        limiter_of()(sync_fetch)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a rate limiter decorates an async function, got 3$"):
        limiter_of()(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- AtomicRateLimiterTest


async def test_the_first_cycle_holds_the_whole_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.permissionsInFirstCycle."""
    limiter = limiter_of()
    await trio.sleep_until(0.24999999)
    assert available(limiter) == 1


async def test_one_permit_per_cycle_with_a_zero_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.acquireAndRefreshWithEventPublishing."""
    events = Recorder()
    limiter = limiter_of(events=events, call_events=True)
    callee = Callee()
    await trio.sleep_until(CYCLE)
    assert await limiter.call(callee) == "ok"
    assert snapshot(limiter) == (0, 0.25, 0)
    error = await refused(limiter, callee)
    assert error.retry_after == 0.25
    assert trio.current_time() == 0.25  # refused at once
    assert snapshot(limiter) == (0, 0.25, 0)  # unchanged
    await trio.sleep_until(2 * CYCLE)
    await limiter.call(callee)
    await refused(limiter, callee)
    assert callee.runs == [0.25, 0.5]
    assert events.wire_names() == [
        str(RateLimiterEvent.SUCCESSFUL_ACQUIRE),
        str(RateLimiterEvent.FAILED_ACQUIRE),
        str(RateLimiterEvent.SUCCESSFUL_ACQUIRE),
        str(RateLimiterEvent.FAILED_ACQUIRE),
    ]
    assert [event.payload for event in events.events[:2]] == [
        {"rate_limiter": "test", "permits": 1, "wait": 0.0},
        {"rate_limiter": "test", "permits": 1, "wait": 0.25},
    ]
    assert events.events[0].source == "rate_limiter/test"
    stats = limiter.statistics()
    assert (stats.permitted_calls, stats.rejected_calls) == (2, 2)


async def test_a_reserved_permit_is_used_at_the_next_cycle_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.reserveAndRefresh."""
    limiter = limiter_of(timeout=CYCLE)
    first, second = Callee(), Callee()
    await trio.sleep_until(CYCLE)
    await limiter.call(first)
    assert snapshot(limiter) == (0, 0.25, 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.call, second)
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-1, 0.5, 1)
    assert first.runs == [0.25]
    assert second.runs == [0.5]
    assert snapshot(limiter) == (0, 0.25, 0)


async def test_a_call_that_cannot_be_served_in_time_is_refused_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.reserveFewThenSkipCyclesBeforeRefresh (and NonBlocking).

    resilience4j's blocking form parks the second waiter for the whole
    timeout before refusing it; here it is refused at its arrival.
    """
    limiter = limiter_of(timeout=CYCLE)
    waiter, late = Callee(), Callee()
    await trio.sleep_until(CYCLE)
    await limiter.call(Callee())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.call, waiter)
        await trio.testing.wait_all_tasks_blocked()
        error = await refused(limiter, late)
        assert error.retry_after == 0.5
        assert trio.current_time() == 0.25
        assert snapshot(limiter) == (-1, 0.5, 1)  # nothing reserved for it
    assert waiter.runs == [0.5]
    assert late.runs == []
    await trio.sleep_until(6 * CYCLE)
    assert snapshot(limiter) == (1, 0.0, 0)  # idle cycles refill only to the limit


async def test_more_permits_than_the_limit_wait_several_cycles(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.reserveManyCyclesIfWegithgreaterThenLimitPerPeriod."""
    limiter = limiter_of(timeout=5 * CYCLE)
    await trio.sleep_until(CYCLE)
    await limiter.acquire(3)
    assert trio.current_time() == 0.75
    assert snapshot(limiter) == (0, 0.25, 0)


async def test_a_zero_timeout_refuses_until_the_cycle_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.rejectedByTimeoutNonBlocking."""
    limiter = limiter_of()
    await trio.sleep_until(CYCLE)
    limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted) as caught:
        limiter.acquire_nowait()
    assert caught.value.retry_after == 0.25
    assert snapshot(limiter) == (0, 0.25, 0)
    await trio.sleep_until(2 * CYCLE - 1e-9)
    assert snapshot(limiter) == (0, 1e-9, 0)  # one nanosecond to go


async def test_a_waiter_cancelled_before_its_cycle_never_runs_and_its_permit_goes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.waitingThreadIsInterrupted, with the refund.

    resilience4j keeps the interrupted waiter's permit spent (available
    stays -1); here the waiter raises Cancelled, its callee never runs, and
    the permit goes back (available 0), so the next caller gets the cycle
    the cancelled one had reserved.
    """
    limiter = limiter_of(timeout=CYCLE)
    waiter, newcomer = Callee(), Callee()
    cancelled: list[float] = []
    await trio.sleep_until(CYCLE)
    await limiter.call(Callee())
    scope = trio.CancelScope()

    async def wait_then_call() -> None:
        with scope:
            try:
                await limiter.call(waiter)
            except trio.Cancelled:
                cancelled.append(trio.current_time())
                raise

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_then_call)
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-1, 0.5, 1)
        await trio.sleep_until(0.3)
        scope.cancel()
    assert scope.cancelled_caught
    assert cancelled == [0.3]
    assert waiter.runs == []
    assert snapshot(limiter) == (0, 0.2, 0)
    await limiter.call(newcomer)
    assert newcomer.runs == [0.5]
    stats = limiter.statistics()
    assert (stats.permitted_calls, stats.rejected_calls) == (2, 0)


async def test_a_new_limit_counts_from_the_next_cycle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.changePermissionsLimitBetweenCycles."""
    limiter = limiter_of(timeout=CYCLE)
    waiter = Callee()
    await trio.sleep_until(CYCLE)
    await limiter.call(Callee())
    assert snapshot(limiter) == (0, 0.25, 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.call, waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-1, 0.5, 1)
        limiter.change_limit(2)
        assert limiter.statistics().limit_for_period == 2
        assert snapshot(limiter) == (-1, 0.25, 1)  # the estimate is recomputed at once
    assert waiter.runs == [0.5]  # the waiter keeps the cycle it reserved
    assert snapshot(limiter) == (1, 0.0, 0)


async def test_permits_reserved_upfront_until_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.reservePermissionsUpfront: 3 per 10 ms, timeout 12 ms."""
    limiter = RateLimiter("upfront", limit_for_period=3, refresh_period=0.01, timeout=0.012)
    order: list[int] = []
    outcomes: dict[int, float | RequestNotPermitted] = {}

    async def caller(index: int) -> None:
        order.append(index)  # no checkpoint from here to the reservation
        try:
            await limiter.acquire()
        except RequestNotPermitted as error:
            outcomes[index] = error
        else:
            outcomes[index] = trio.current_time()

    await trio.sleep_until(0.01)
    async with trio.open_nursery() as nursery:
        for index in range(9):
            nursery.start_soon(caller, index)
    by_turn = [outcomes[index] for index in order]
    assert by_turn[:6] == [0.01, 0.01, 0.01, 0.02, 0.02, 0.02]
    for error in by_turn[6:]:
        assert isinstance(error, RequestNotPermitted)
        assert error.retry_after == 0.02


async def test_changes_keep_the_other_settings() -> None:
    """resilience4j AtomicRateLimiterTest.changeDefaultTimeoutDuration and changeLimitForPeriod."""
    limiter = limiter_of()
    limiter.change_timeout(1)
    stats = limiter.statistics()
    assert (stats.limit_for_period, stats.refresh_period, stats.timeout) == (1, 0.25, 1.0)
    limiter.change_limit(35)
    stats = limiter.statistics()
    assert (stats.limit_for_period, stats.refresh_period, stats.timeout) == (35, 0.25, 1.0)


async def test_a_longer_timeout_lets_a_refused_wait_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = limiter_of()
    await limiter.acquire()
    with pytest.raises(RequestNotPermitted):
        await limiter.acquire()
    limiter.change_timeout(CYCLE)
    await limiter.acquire()
    assert trio.current_time() == 0.25


async def test_each_limiter_counts_cycles_from_its_own_creation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.firstIterationAtomicRateLimitNanoTime."""
    first = limiter_of()
    await trio.sleep_until(0.1)
    second = limiter_of()
    await trio.sleep_until(0.2)
    for limiter in (first, second):
        limiter.acquire_nowait()
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait()
    await trio.sleep_until(0.3)
    first.acquire_nowait()  # its cycle 1 started at 0.25
    with pytest.raises(RequestNotPermitted) as caught:
        second.acquire_nowait()  # its cycle 1 starts at 0.35
    assert caught.value.retry_after == pytest.approx(0.05, abs=1e-9)
    await trio.sleep_until(0.35)
    # (0.35 - 0.1) s is 249999999.99999997 ns in floats: the nearest
    # nanosecond is the cycle's start, in call() as in acquire_nowait().
    assert await second.call(Callee()) == "ok"
    await trio.sleep_until(0.6)
    second.acquire_nowait()


def test_a_limiter_built_outside_trio_counts_from_its_first_use() -> None:
    limiter = limiter_of()

    async def main() -> None:
        await trio.sleep_until(0.1)
        limiter.acquire_nowait()
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait()
        await trio.sleep_until(0.3)
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait()
        await trio.sleep_until(0.35)
        limiter.acquire_nowait()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_limiter_used_again_in_a_new_trio_run_starts_afresh() -> None:
    limiter = limiter_of()

    async def late() -> None:
        await trio.sleep_until(10.0)
        limiter.acquire_nowait()
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait()

    async def early() -> None:
        # This run's clock reads 0: before the cycle the limiter knew.
        assert available(limiter) == 1
        limiter.acquire_nowait()
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait()

    trio.run(late, clock=trio.testing.MockClock(autojump_threshold=0))
    trio.run(early, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_cycles_and_a_new_limit_on_a_running_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j AtomicRateLimiterTest.notSpyRawTest (a real clock there; a mock one here)."""
    limiter = limiter_of()
    await trio.sleep_until(0.3)
    limiter.acquire_nowait()
    await trio.sleep_until(0.5)
    limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted):
        limiter.acquire_nowait()
    limiter.change_limit(2)
    await trio.sleep_until(0.75)
    limiter.acquire_nowait()
    limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted):
        limiter.acquire_nowait()


# ---------------------------------------------------------------- calls


async def test_a_refused_call_never_runs_and_a_permitted_one_runs_once() -> None:
    """resilience4j RateLimiterTest.decorate* (a refused permission, a granted one)."""
    limiter = RateLimiter("api", limit_for_period=1, refresh_period=3600, timeout=0)
    callee = Callee(result=42)
    assert await limiter.call(callee) == 42
    error = await refused(limiter, callee)
    assert len(callee.runs) == 1
    assert str(error) == "rate limiter 'api' does not permit further calls"
    assert error.rate_limiter == "api"
    assert 0 < error.retry_after <= 3600


async def test_the_rejection_message_names_the_limiter() -> None:
    """resilience4j RequestNotPermittedExceptionTest."""
    limiter = RateLimiter("payments", limit_for_period=1, refresh_period=60, timeout=0)
    limiter.acquire_nowait()
    with pytest.raises(
        RequestNotPermitted, match=r"^rate limiter 'payments' does not permit further calls$"
    ):
        await limiter.acquire()


async def test_a_call_spends_its_permit_whatever_its_outcome() -> None:
    """resilience4j CoroutineRateLimiterTest: limit 10 per 10 s, timeout 0."""
    limiter = RateLimiter("r", limit_for_period=10, refresh_period=10, timeout=0)
    assert await limiter.call(Callee()) == "ok"
    assert available(limiter) == 9
    failing = RateLimiter("r", limit_for_period=10, refresh_period=10, timeout=0)
    with pytest.raises(RuntimeError, match=r"^BAM!$"):
        await failing.call(Callee(error=RuntimeError("BAM!")))
    assert available(failing) == 9
    callee = Callee()
    many = RateLimiter("r", limit_for_period=10, refresh_period=10, timeout=0)
    for _ in range(10):
        await many.call(callee)
    await refused(many, callee)
    assert len(callee.runs) == 10
    assert available(many) == 0


async def test_the_decorator_passes_arguments_and_keywords(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter("r", limit_for_period=2, refresh_period=1.0, timeout=1.0)

    @limiter
    async def add(x: int, y: int = 0) -> int:
        """Adds."""
        return x + y

    assert await add(1, y=2) == 3
    assert await add(4) == 4
    assert trio.current_time() == 0.0
    assert await add(5, 5) == 10
    assert trio.current_time() == 1.0  # the third call waited for cycle 1
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert limiter.statistics().permitted_calls == 3


async def test_async_with_takes_a_permit_before_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = limiter_of(timeout=CYCLE)
    entered: list[float] = []
    async with limiter as same:
        assert same is limiter
        entered.append(trio.current_time())
    async with limiter:
        entered.append(trio.current_time())
    assert entered == [0.0, 0.25]
    limiter.change_timeout(0)
    with pytest.raises(RequestNotPermitted):
        async with limiter:
            raise AssertionError("not entered")  # pragma: no cover
    other = RateLimiter("other", limit_for_period=2, refresh_period=1)
    with pytest.raises(ValueError, match=r"^the block's own error passes$"):
        async with other:
            raise ValueError("the block's own error passes")
    assert available(limiter) == 0
    assert available(other) == 1


async def test_acquire_nowait_never_waits_whatever_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = limiter_of(timeout=10.0)
    limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted) as caught:
        limiter.acquire_nowait()
    assert caught.value.retry_after == 0.25
    assert snapshot(limiter) == (0, 0.25, 0)  # nothing reserved
    with pytest.raises(RequestNotPermitted) as caught:
        limiter.acquire_nowait(3)
    assert caught.value.retry_after == 0.75
    await limiter.acquire(2)  # the timeout lets acquire() wait two cycles
    assert trio.current_time() == 0.5
    stats = limiter.statistics()
    assert (stats.permitted_calls, stats.rejected_calls) == (2, 2)


async def test_a_refusal_is_a_checkpoint_and_a_free_permit_is_not() -> None:
    limiter = RateLimiter("r", limit_for_period=3, refresh_period=3600, timeout=0)

    async def no_checkpoint() -> str:
        return "done"

    with trio.testing.assert_no_checkpoints():
        assert await limiter.call(no_checkpoint) == "done"
    with trio.testing.assert_no_checkpoints():
        await limiter.acquire()
    with trio.testing.assert_no_checkpoints():
        async with limiter:
            pass
    with trio.testing.assert_checkpoints(), pytest.raises(RequestNotPermitted):
        await limiter.call(no_checkpoint)
    with trio.testing.assert_checkpoints(), pytest.raises(RequestNotPermitted):
        await limiter.acquire()


async def test_a_refusal_cancelled_in_its_checkpoint_raises_cancelled() -> None:
    limiter = RateLimiter("r", limit_for_period=1, refresh_period=3600, timeout=0)
    limiter.acquire_nowait()
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.statistics().rejected_calls == 1


# ---------------------------------------------------------------- cancellation


async def test_an_outer_cancellation_while_the_callee_runs_leaves_the_permit_spent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The rate limiter's part of a whole stack cancelled from outside: the permit was spent."""
    seen_errors: list[Exception] = []

    def drain_on(error: Exception) -> bool:
        seen_errors.append(error)  # pragma: no cover
        return True  # pragma: no cover

    limiter = RateLimiter(
        "r", limit_for_period=2, refresh_period=10, timeout=0, drain_on_exception=drain_on
    )
    with trio.move_on_after(0.5) as scope:
        await limiter.call(trio.sleep_forever)
    assert scope.cancelled_caught
    assert seen_errors == []  # a cancellation is never an outcome
    stats = limiter.statistics()
    assert (stats.available_permissions, stats.permitted_calls) == (1, 1)


async def test_a_cancelled_waiter_ahead_of_another_keeps_its_permit_spent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The refund's limit: a later waiter's cycle was counted past the cancelled permit.

    Refunding it would let a newcomer share that later waiter's cycle, two
    calls in a cycle of one permit; it stays spent, as in resilience4j.
    """
    limiter = RateLimiter("r", limit_for_period=1, refresh_period=1.0, timeout=5.0)
    runs: dict[str, float] = {}
    first_scope = trio.CancelScope()

    async def call(label: str, scope: trio.CancelScope | None = None) -> None:
        async def record() -> None:
            runs[label] = trio.current_time()

        with scope or trio.CancelScope():
            await limiter.call(record)

    await limiter.acquire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "first", first_scope)  # cycle 1
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(call, "second")  # cycle 2
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-2, 3.0, 2)
        await trio.sleep_until(0.5)
        first_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-2, 2.5, 1)  # not refunded
        nursery.start_soon(call, "newcomer")
    assert runs == {"second": 2.0, "newcomer": 3.0}


async def test_the_last_waiter_cancelled_gives_its_permit_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter("r", limit_for_period=1, refresh_period=1.0, timeout=5.0)
    times: list[float] = []
    scopes = [trio.CancelScope(), trio.CancelScope()]

    async def waiter(scope: trio.CancelScope) -> None:
        with scope:
            await limiter.acquire()
            times.append(trio.current_time())  # pragma: no cover

    await limiter.acquire()
    async with trio.open_nursery() as nursery:
        for scope in scopes:
            nursery.start_soon(waiter, scope)
            await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-2, 3.0, 2)
        scopes[1].cancel()  # the last in line: refunded
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-1, 2.0, 1)
        scopes[0].cancel()  # now the last in line too: refunded
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (0, 1.0, 0)
    assert times == []
    async with limiter:
        assert trio.current_time() == 1.0


async def test_an_interrupt_while_waiting_passes_unchanged_and_gives_the_permit_back(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = limiter_of(timeout=1.0)
    limiter.acquire_nowait()

    async def interrupted(deadline: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(trio, "sleep_until", interrupted)
    with pytest.raises(KeyboardInterrupt):
        await limiter.acquire()
    monkeypatch.undo()
    assert snapshot(limiter) == (0, 0.25, 0)
    assert limiter.statistics().permitted_calls == 1


async def test_async_with_cancelled_while_waiting_never_enters_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = limiter_of(timeout=1.0)
    limiter.acquire_nowait()
    with trio.move_on_after(0.1) as scope:
        async with limiter:
            raise AssertionError("not entered")  # pragma: no cover
    assert scope.cancelled_caught
    assert snapshot(limiter) == (0, 0.15, 0)


# ---------------------------------------------------------------- concurrency


async def test_many_waiters_are_released_at_cycle_starts_in_the_order_they_came(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter("r", limit_for_period=2, refresh_period=1.0, timeout=10.0)
    order: list[int] = []
    ran: dict[int, float] = {}

    async def caller(index: int) -> None:
        order.append(index)  # no checkpoint from here to the reservation

        async def record() -> None:
            ran[index] = trio.current_time()

        await limiter.call(record)

    async with trio.open_nursery() as nursery:
        for index in range(10):
            nursery.start_soon(caller, index)
        await trio.testing.wait_all_tasks_blocked()
        assert snapshot(limiter) == (-8, 5.0, 8)
    assert [ran[index] for index in order] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert limiter.statistics().waiting_calls == 0


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 3),
    timeout_cycles=st.integers(0, 3),
    callers=st.lists(
        st.tuples(
            st.integers(0, 8),  # arrival, in quarter cycles
            st.none() | st.integers(1, 8),  # cancelled after, in quarter cycles
        ),
        max_size=10,
    ),
)
def test_cancellations_never_let_a_cycle_exceed_its_limit(
    limit: int, timeout_cycles: int, callers: list[tuple[int, int | None]]
) -> None:
    """Waiters cancelled at random: refunds never put two calls in one permit's place."""
    ran: list[float] = []
    refused_at: list[tuple[float, float]] = []

    async def caller(arrival: float, cancel_after: float | None, limiter: RateLimiter) -> None:
        await trio.sleep_until(arrival)

        async def record() -> None:
            ran.append(trio.current_time())

        with trio.move_on_after(math.inf if cancel_after is None else cancel_after):
            try:
                await limiter.call(record)
            except RequestNotPermitted:
                refused_at.append((arrival, trio.current_time()))

    async def main() -> None:
        limiter = RateLimiter(
            "r", limit_for_period=limit, refresh_period=1.0, timeout=float(timeout_cycles)
        )
        async with trio.open_nursery() as nursery:
            for arrival, cancel_after in callers:
                nursery.start_soon(
                    caller,
                    arrival / 4,
                    None if cancel_after is None else cancel_after / 4,
                    limiter,
                )
        assert limiter.statistics().waiting_calls == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    per_cycle = Counter(math.floor(time) for time in ran)
    assert all(count <= limit for count in per_cycle.values())
    assert all(at == arrival for arrival, at in refused_at)  # refused at once


# ---------------------------------------------------------------- drains


class Overloaded(Exception):
    pass


class VeryOverloaded(Overloaded):
    pass


async def test_a_matching_error_drains_the_cycle() -> None:
    """resilience4j RateLimiterWithConditionalDrainIntegrationTest (on a failed call)."""
    events = Recorder()
    limiter = RateLimiter(
        "r",
        limit_for_period=5,
        refresh_period=3600,
        timeout=0,
        drain_on_exception=lambda error: isinstance(error, Overloaded),
        events=events,
    )
    with pytest.raises(VeryOverloaded):
        await limiter.call(Callee(error=VeryOverloaded()))
    assert available(limiter) == 0
    (drained,) = events.events
    assert drained.type == RateLimiterEvent.DRAINED
    assert drained.payload["permits"] == 4
    assert 0 < drained.payload["wait"] <= 3600
    with pytest.raises(KeyError):
        await RateLimiter(
            "r",
            limit_for_period=5,
            refresh_period=3600,
            drain_on_exception=lambda error: isinstance(error, Overloaded),
        ).call(Callee(error=KeyError("other")))


@pytest.mark.parametrize(("result", "left"), [("overloaded", 0), ("fine", 4)])
async def test_a_matching_result_drains_the_cycle(result: str, left: int) -> None:
    """resilience4j RateLimiterWithConditionalDrainIntegrationTest.

    shouldDrainRateLimiterInConditionMetOnSuccessfulCall and
    shouldNotDrainRateLimiterInConditionNotMetOnSuccessfulCall.
    """
    limiter = RateLimiter(
        "r",
        limit_for_period=5,
        refresh_period=3600,
        drain_on_result=lambda value: value == "overloaded",
    )
    assert await limiter.call(Callee(result=result)) == result
    assert available(limiter) == left


async def test_the_drain_predicates_see_the_result_or_the_error() -> None:
    """resilience4j RateLimiterWithConditionalDrainTest: results to one, errors to the other."""
    results: list[object] = []
    errors: list[Exception] = []
    boom = RuntimeError("boom")

    def on_result(value: object) -> bool:
        results.append(value)
        return False

    def on_error(error: Exception) -> bool:
        errors.append(error)
        return False

    limiter = RateLimiter(
        "r",
        limit_for_period=5,
        refresh_period=3600,
        drain_on_result=on_result,
        drain_on_exception=on_error,
    )
    await limiter.call(Callee(result=None))
    await limiter.call(Callee(result=7))
    with pytest.raises(RuntimeError):
        await limiter.call(Callee(error=boom))
    with pytest.raises(RuntimeError):
        async with limiter:
            raise boom
    async with limiter:
        pass
    assert results == [None, 7]  # None is tested too
    assert errors == [boom, boom]
    assert available(limiter) == 0  # five calls, no drain


async def test_a_raising_drain_predicate_fails_the_call_after_it_ran() -> None:
    def broken(value: object) -> bool:
        raise LookupError("predicate")

    limiter = RateLimiter("r", limit_for_period=5, refresh_period=3600, drain_on_result=broken)
    callee = Callee()
    with pytest.raises(LookupError, match=r"^predicate$"):
        await limiter.call(callee)
    assert len(callee.runs) == 1
    assert available(limiter) == 4


async def test_drain_refuses_the_rest_of_the_cycle(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = Recorder()
    limiter = RateLimiter("r", limit_for_period=3, refresh_period=1.0, timeout=2.0, events=events)
    await trio.sleep_until(0.25)
    limiter.acquire_nowait()
    limiter.drain()
    assert snapshot(limiter) == (0, 0.75, 0)
    await limiter.acquire()  # waits for the next cycle
    assert trio.current_time() == 1.0
    limiter.drain()
    assert [event.payload for event in events.events] == [
        {"rate_limiter": "r", "permits": 2, "wait": 0.75},
        {"rate_limiter": "r", "permits": 2, "wait": 1.0},
    ]


# ---------------------------------------------------------------- events and telemetry


async def test_by_default_only_refusals_and_drains_are_published(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j RateLimiterEventPublisherTest: limit 1 per 5 s, timeout 0."""
    events = Recorder()
    limiter = RateLimiter("p", limit_for_period=1, refresh_period=5, timeout=0, events=events)
    await limiter.call(Callee())
    await refused(limiter, Callee())
    limiter.drain()
    assert events.wire_names() == [
        str(RateLimiterEvent.FAILED_ACQUIRE),
        str(RateLimiterEvent.DRAINED),
    ]
    assert events.events[1].payload == {"rate_limiter": "p", "permits": 0, "wait": 5.0}


async def test_call_events_add_each_successful_acquire(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j RateLimiterEventPublisherTest.shouldConsumeOnSuccessEvent."""
    events = Recorder()
    limiter = limiter_of(timeout=1.0, events=events, call_events=True)
    await limiter.call(Callee())
    await limiter.acquire(2)
    assert [event.payload for event in events.events] == [
        {"rate_limiter": "test", "permits": 1, "wait": 0.0},
        {"rate_limiter": "test", "permits": 2, "wait": 0.5},  # published after its wait
    ]


async def test_events_reach_a_real_bus() -> None:
    async with EventBus() as bus:
        subscription = bus.subscribe()
        limiter = RateLimiter("bus", limit_for_period=1, refresh_period=10, timeout=0, events=bus)
        limiter.acquire_nowait()
        with pytest.raises(RequestNotPermitted):
            limiter.acquire_nowait(2)
        event = subscription.receive_nowait()
    assert event.type == RateLimiterEvent.FAILED_ACQUIRE
    assert event.payload["permits"] == 2
    assert event.source == "rate_limiter/bus"


async def test_a_refusing_publisher_never_affects_a_call() -> None:
    events = Recorder(refuse=True)
    limiter = RateLimiter(
        "r", limit_for_period=1, refresh_period=10, timeout=0, events=events, call_events=True
    )
    assert await limiter.call(Callee()) == "ok"
    await refused(limiter, Callee())
    limiter.drain()
    assert events.tries == 3
    assert limiter.statistics().events_dropped == 3


async def test_telemetry_of_each_acquisition(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    limiter = RateLimiter("db", limit_for_period=1, refresh_period=1.0, timeout=1.0)
    await limiter.call(Callee())
    async with limiter:
        pass
    with pytest.raises(RequestNotPermitted):
        limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted):
        await limiter.acquire(3)
    with trio.move_on_after(0.5):
        await limiter.acquire()  # cancelled while waiting: no event
    assert seen == [
        ({"wait": 0.0}, {"rate_limiter": "db", "outcome": "permitted"}),
        ({"wait": 1.0}, {"rate_limiter": "db", "outcome": "permitted"}),
        ({"wait": 1.0}, {"rate_limiter": "db", "outcome": "rejected"}),
        ({"wait": 3.0}, {"rate_limiter": "db", "outcome": "rejected"}),
    ]


async def test_the_decorated_call_passes_a_partial_for_keywords() -> None:
    limiter = RateLimiter("r", limit_for_period=5, refresh_period=10)

    async def join(*parts: str, sep: str = "") -> str:
        return sep.join(parts)

    assert await limiter.call(functools.partial(join, "a", "b", sep="-")) == "a-b"
    assert await limiter(join)("c", "d", sep="+") == "c+d"

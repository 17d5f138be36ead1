"""``CircuitBreaker`` through its public API: resilience4j's rules, with docs/design.md B1-B8.

Marks like (S02) number resilience4j's own scenarios (``CircuitBreakerStateMachineTest``
and friends), each described where it is tested; T1-T6 are the trio-specific
scenarios listed in docs/design.md. Time
runs on trio's ``MockClock`` (``autojump_clock``): no real sleeping, and
``autojump_clock.jump()`` moves time without any task sleeping.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_smith import IllegalStateTransition
from trio_smith._core._breaker import BreakerConfig, BreakerMachine
from trio_smith.events import SystemEvent
from trio_smith.resilience import (
    BreakerStatistics,
    CallNotPermitted,
    CircuitBreaker,
    CircuitBreakerEvent,
    CircuitState,
    SlidingWindowType,
    WaitInterval,
)

from ..publisher import Recorder

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
DISABLED = CircuitState.DISABLED
FORCED_OPEN = CircuitState.FORCED_OPEN
METRICS_ONLY = CircuitState.METRICS_ONLY

# Wire names of the events, short.
SUCCESS = "circuit_breaker.success"
ERROR = "circuit_breaker.error"
IGNORED = "circuit_breaker.ignored_error"
NOT_PERMITTED = "circuit_breaker.not_permitted"
TRANSITION = "circuit_breaker.state_transition"
RESET = "circuit_breaker.reset"
FAILURE_EXCEEDED = "circuit_breaker.failure_rate_exceeded"
SLOW_EXCEEDED = "circuit_breaker.slow_call_rate_exceeded"
SYSTEM_OPEN = "system.circuit_breaker_open"
SYSTEM_CLOSED = "system.circuit_breaker_closed"


class Boom(Exception):
    pass


class Ignored(LookupError):
    pass


def state(breaker: CircuitBreaker) -> CircuitState:
    """The state, read through a call (mypy would narrow repeated ``.state`` reads)."""
    return breaker.state


async def ok(value: object = "ok") -> object:
    return value


async def boom() -> None:
    raise Boom("down")


async def nap(seconds: float) -> str:
    await trio.sleep(seconds)
    return "rested"


async def slow_boom(seconds: float) -> None:
    await trio.sleep(seconds)
    raise Boom("slow and down")


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    """Calls that raise Boom, each re-raised unchanged by the breaker."""
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.call(boom)


async def rejected(breaker: CircuitBreaker) -> CallNotPermitted:
    """A call the breaker must refuse; the callee must not run."""
    ran: list[bool] = []

    async def callee() -> None:
        ran.append(True)

    with pytest.raises(CallNotPermitted) as info:
        await breaker.call(callee)
    assert ran == []
    return info.value


def half_open(breaker: CircuitBreaker) -> CircuitBreaker:
    breaker.transition_to(OPEN)
    breaker.transition_to(HALF_OPEN)
    return breaker


# ---------------------------------------------------------------- calls and trips


async def test_a_call_returns_the_callee_result_and_counts_a_success() -> None:
    # No MockClock: the hot path (trio's SystemClock read directly).
    breaker = CircuitBreaker("b")
    assert await breaker.call(ok, 7) == 7
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.successful_calls, stats.failed_calls) == (1, 1, 0)
    await fail(breaker)
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.successful_calls, stats.failed_calls) == (2, 1, 1)
    assert stats.failure_rate == -1.0  # 2 calls < minimum_calls 100


async def test_failure_rate_at_exactly_the_threshold_opens_and_the_tripping_call_raises_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S02: 3 failures in 6 calls is 50 %, and 50 % trips (>=).
    breaker = CircuitBreaker(
        "api", sliding_window_size=6, minimum_calls=6, wait_duration_in_open_state=30.0
    )
    for _ in range(3):
        await breaker.call(ok)
    await fail(breaker, 2)
    stats = breaker.statistics()
    assert (stats.state, stats.failure_rate, stats.buffered_calls) == (CLOSED, -1.0, 5)
    with pytest.raises(Boom, match=r"^down$"):  # the tripping call: its own error
        await breaker.call(boom)
    stats = breaker.statistics()
    assert (stats.state, stats.failure_rate, stats.attempts) == (OPEN, 50.0, 1)
    error = await rejected(breaker)
    assert str(error) == "circuit breaker 'api' is OPEN and does not permit calls"
    assert (error.breaker, error.state, error.retry_after) == ("api", "OPEN", 30.0)
    autojump_clock.jump(12.0)
    assert (await rejected(breaker)).retry_after == 18.0
    assert breaker.statistics().not_permitted_calls == 2


async def test_below_the_failure_threshold_the_breaker_stays_closed() -> None:
    breaker = CircuitBreaker("b", sliding_window_size=4, minimum_calls=4)
    await fail(breaker)
    for _ in range(3):
        await breaker.call(ok)
    stats = breaker.statistics()
    assert (stats.state, stats.failure_rate) == (CLOSED, 25.0)


async def test_slow_calls_open_the_breaker_and_only_strictly_longer_calls_are_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S04: durations come from the clock; slow means > slow_call_duration_threshold.
    bus = Recorder()
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=4,
        minimum_calls=4,
        slow_call_duration_threshold=2.0,
        slow_call_rate_threshold=50.0,
        events=bus,
        call_events=True,
    )
    assert await breaker.call(nap, 2.0) == "rested"  # exactly the threshold: not slow
    with pytest.raises(Boom):
        await breaker.call(slow_boom, 3.0)  # slow and failed
    await breaker.call(ok)
    bus.take()
    assert await breaker.call(nap, 2.5) == "rested"  # the tripping call returns its result
    stats = breaker.statistics()
    assert (stats.state, stats.slow_calls, stats.slow_failed_calls, stats.failed_calls) == (
        OPEN,
        2,
        1,
        1,
    )
    assert (stats.slow_call_rate, stats.failure_rate) == (50.0, 25.0)
    assert bus.take() == [SUCCESS, SLOW_EXCEEDED, TRANSITION, SYSTEM_OPEN]


async def test_both_rates_exceeded_report_failure_before_slow_then_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Recorder()
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        slow_call_duration_threshold=1.0,
        events=bus,
        call_events=True,
    )
    with pytest.raises(Boom):
        await breaker.call(slow_boom, 5.0)
    assert bus.take() == [ERROR, FAILURE_EXCEEDED, SLOW_EXCEEDED, TRANSITION, SYSTEM_OPEN]


async def test_a_late_result_after_the_trip_is_recorded_without_a_transition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # OPEN keeps the window that opened it; results of calls admitted before
    # the trip still land there, and OPEN never moves on results.
    breaker = CircuitBreaker("b", sliding_window_size=2, minimum_calls=2)
    gate = trio.Event()

    async def waits() -> str:
        await gate.wait()
        return "late"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, waits)
        await trio.testing.wait_all_tasks_blocked()
        await fail(breaker, 2)
        assert state(breaker) is OPEN
        gate.set()
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls, stats.failed_calls) == (OPEN, 2, 1)
    assert stats.failure_rate == 50.0


# ---------------------------------------------------------------- OPEN and its wait


async def test_open_admits_a_trial_call_only_strictly_after_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S37: at exactly the deadline the call is still rejected (isAfter).
    breaker = CircuitBreaker(
        "b", wait_duration_in_open_state=5.0, permitted_calls_in_half_open=2, minimum_calls=2
    )
    breaker.transition_to(OPEN)
    autojump_clock.jump(5.0)
    assert (await rejected(breaker)).retry_after == 0.0
    autojump_clock.jump(0.001)
    assert await breaker.call(ok) == "ok"
    assert state(breaker) is HALF_OPEN  # 1 of min(minimum_calls, permitted) = 2
    await breaker.call(ok)
    assert state(breaker) is CLOSED


async def test_open_shows_until_a_call_arrives_after_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # resilience4j's default: no automatic transition without run() (#1533).
    breaker = CircuitBreaker("b", wait_duration_in_open_state=5.0)
    breaker.transition_to(OPEN)
    autojump_clock.jump(100.0)
    stats = breaker.statistics()
    assert (stats.state, stats.retry_after) == (OPEN, 0.0)
    await breaker.call(ok)
    assert state(breaker) is HALF_OPEN


async def test_the_wait_in_open_grows_with_openings_in_a_row_and_restarts_after_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        permitted_calls_in_half_open=1,
        wait_duration_in_open_state=WaitInterval.exponential(1.0, 2.0, maximum=3.0),
    )
    waits = []
    for _ in range(4):
        await fail(breaker)  # a trip, then failed trial calls
        stats = breaker.statistics()
        waits.append((stats.attempts, stats.retry_after))
        assert stats.retry_after is not None
        autojump_clock.jump(stats.retry_after + 0.001)
    assert waits == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 3.0)]
    await breaker.call(ok)  # the trial call succeeds
    assert (state(breaker), breaker.statistics().attempts) == (CLOSED, 0)
    await fail(breaker)
    stats = breaker.statistics()
    assert (stats.attempts, stats.retry_after) == (1, 1.0)


async def test_a_randomized_wait_draws_from_the_given_random_source(
    autojump_clock: trio.testing.MockClock,
) -> None:
    draws = iter([0.0, 0.9999])
    breaker = CircuitBreaker(
        "b",
        wait_duration_in_open_state=WaitInterval.randomized(1.0, 0.5),
        random=lambda: next(draws),
    )
    breaker.transition_to(OPEN)
    assert breaker.statistics().retry_after == 0.5
    breaker.transition_to(OPEN)
    assert breaker.statistics().retry_after == 1.5


async def test_open_for_and_open_until_override_the_wait_and_keep_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # resilience4j's transitionToOpenStateFor and transitionToOpenStateUntil.
    bus = Recorder()
    breaker = CircuitBreaker("b", wait_duration_in_open_state=60.0, events=bus)
    breaker.open_for(3.0)
    stats = breaker.statistics()
    assert (stats.state, stats.attempts, stats.retry_after) == (OPEN, 0, 3.0)
    assert bus.take() == [TRANSITION, SYSTEM_OPEN]
    autojump_clock.jump(1.0)
    breaker.open_until(trio.current_time() + 7.0)
    stats = breaker.statistics()
    assert (stats.state, stats.attempts, stats.retry_after) == (OPEN, 0, 7.0)
    assert bus.take() == []  # OPEN -> OPEN: no transition event
    breaker.transition_to(OPEN)  # the usual wait, one more attempt
    assert (breaker.statistics().attempts, breaker.statistics().retry_after) == (1, 60.0)
    breaker.open_until(trio.current_time() - 10.0)  # in the past: the wait is over
    assert breaker.statistics().retry_after == 0.0
    await rejected(breaker)  # but not strictly after yet
    autojump_clock.jump(0.001)
    await breaker.call(ok)
    assert state(breaker) is HALF_OPEN


async def test_open_for_and_open_until_refuse_bad_times() -> None:
    breaker = CircuitBreaker("b")
    for bad in (-1.0, math.inf, math.nan, True):
        with pytest.raises(
            ValueError, match=f"^{re.escape(f'seconds must be a finite number >= 0, got {bad!r}')}$"
        ):
            breaker.open_for(bad)
    wrong: list[Any] = [math.inf, math.nan, "1"]
    for value in wrong:
        with pytest.raises(
            ValueError, match=f"^{re.escape(f'deadline must be a finite number, got {value!r}')}$"
        ):
            breaker.open_until(value)
    assert state(breaker) is CLOSED


# ---------------------------------------------------------------- HALF_OPEN


async def test_half_open_admits_its_permitted_calls_and_counts_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S11: a refusal in HALF_OPEN counts one not-permitted call.
    breaker = half_open(CircuitBreaker("b", permitted_calls_in_half_open=2))
    gate = trio.Event()
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(breaker.call, gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        error = await rejected(breaker)
        assert (error.state, error.retry_after) == ("HALF_OPEN", None)
        assert breaker.statistics().not_permitted_calls == 1
        gate.set()
    assert state(breaker) is CLOSED


async def test_reentering_half_open_restores_every_permit_and_old_permits_stay_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S09: a new HALF_OPEN has all its permits; design.md B3: a permit of an
    # earlier HALF_OPEN, released later, does not add to the new one.
    breaker = half_open(CircuitBreaker("b", permitted_calls_in_half_open=2))
    gate = trio.Event()
    old = trio.CancelScope()

    async def old_calls() -> None:
        with old:
            async with trio.open_nursery() as nursery:
                for _ in range(2):
                    nursery.start_soon(breaker.call, trio.sleep_forever)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(old_calls)
        await trio.testing.wait_all_tasks_blocked()
        await rejected(breaker)
        half_open(breaker)
        for _ in range(2):
            nursery.start_soon(breaker.call, gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        await rejected(breaker)
        # The two old calls end cancelled: their permits go nowhere.
        old.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert state(breaker) is HALF_OPEN
        await rejected(breaker)
        assert breaker.statistics().not_permitted_calls == 2
        gate.set()
    assert state(breaker) is CLOSED


async def test_ignored_exceptions_release_half_open_permits_and_are_not_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S16, S17: an ignored error gives its permit back; four of them in a row
    # in a HALF_OPEN of four permits, then four successes close it.
    bus = Recorder()

    async def lookup() -> None:
        raise Ignored("not here")

    breaker = half_open(
        CircuitBreaker(
            "b",
            permitted_calls_in_half_open=4,
            minimum_calls=5,
            ignore_exceptions=(LookupError,),  # S34: subclasses too
            events=bus,
            call_events=True,
        )
    )
    bus.take()
    for _ in range(8):
        with pytest.raises(Ignored, match=r"^not here$"):
            await breaker.call(lookup)
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls, stats.not_permitted_calls) == (HALF_OPEN, 0, 0)
    assert bus.take() == [IGNORED] * 8
    for _ in range(3):
        await breaker.call(ok)
    assert state(breaker) is HALF_OPEN
    await breaker.call(ok)
    assert state(breaker) is CLOSED


async def test_ignore_exceptions_cover_subclasses() -> None:
    # S34.
    breaker = CircuitBreaker(
        "b", sliding_window_size=1, minimum_calls=1, ignore_exceptions=(LookupError,)
    )

    async def missing() -> None:
        raise KeyError("k")

    for _ in range(3):
        with pytest.raises(KeyError):
            await breaker.call(missing)
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (CLOSED, 0)


async def test_an_ignored_error_event_names_the_error() -> None:
    bus = Recorder()
    breaker = CircuitBreaker(
        "b", ignore_exception=lambda e: "skip" in str(e), events=bus, call_events=True
    )

    async def skip() -> None:
        raise Boom("skip me")

    with pytest.raises(Boom):
        await breaker.call(skip)
    (event,) = bus.events
    assert event.type == CircuitBreakerEvent.IGNORED_ERROR
    assert event.payload == {
        "breaker": "b",
        "state": "CLOSED",
        "duration": event.payload["duration"],
        "error_type": f"{__name__}.Boom",  # its public name: nobody re-exports it
        "error": "skip me",
        "traceback": event.payload["traceback"],
    }
    assert event.payload["traceback"].endswith(" in skip")
    assert breaker.statistics().buffered_calls == 0


async def test_half_open_decides_after_the_smaller_of_minimum_calls_and_permitted_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S36: minimum_calls=2, permitted=4: the verdict comes after 2 calls.
    breaker = half_open(
        CircuitBreaker("b", minimum_calls=2, permitted_calls_in_half_open=4, sliding_window_size=10)
    )
    await breaker.call(ok)
    assert state(breaker) is HALF_OPEN
    await breaker.call(ok)
    assert state(breaker) is CLOSED
    other = half_open(
        CircuitBreaker("c", minimum_calls=2, permitted_calls_in_half_open=4, sliding_window_size=10)
    )
    await other.call(ok)
    await fail(other)  # 1 of 2 failed: 50 % >= 50 %
    assert (state(other), other.statistics().attempts) == (OPEN, 2)


@pytest.mark.parametrize("after", [OPEN, CLOSED], ids=lambda s: s.value)
async def test_half_open_max_wait_moves_to_open_or_closed_on_time_under_run(
    autojump_clock: trio.testing.MockClock, after: CircuitState
) -> None:
    # S26 (to OPEN, the default) and S27 (to CLOSED): a trial call that hangs
    # no longer keeps the breaker half-open for ever.
    breaker = half_open(
        CircuitBreaker(
            "b",
            permitted_calls_in_half_open=1,
            max_wait_duration_in_half_open_state=5.0,
            state_after_half_open_wait=after,
        )
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        nursery.start_soon(breaker.call, trio.sleep_forever)
        await trio.sleep_until(4.999)
        assert state(breaker) is HALF_OPEN
        await trio.sleep_until(5.0)
        await trio.testing.wait_all_tasks_blocked()
        assert state(breaker) is after
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("after", [OPEN, CLOSED], ids=lambda s: s.value)
async def test_without_run_half_open_max_wait_is_applied_at_the_next_call(
    autojump_clock: trio.testing.MockClock, after: CircuitState
) -> None:
    # design.md B2: the limit is checked lazily, as OPEN's wait is.
    breaker = half_open(
        CircuitBreaker(
            "b",
            permitted_calls_in_half_open=1,
            max_wait_duration_in_half_open_state=5.0,
            state_after_half_open_wait=after,
        )
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, trio.sleep_forever)
        await trio.testing.wait_all_tasks_blocked()
        autojump_clock.jump(5.0)
        assert state(breaker) is HALF_OPEN  # nobody called yet
        if after is OPEN:
            assert (await rejected(breaker)).state == "OPEN"
        else:
            assert await breaker.call(ok) == "ok"
        assert state(breaker) is after
        nursery.cancel_scope.cancel()


async def test_a_trial_call_that_outlives_the_half_open_limit_is_a_late_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Without run(), the result must land where run() would have put the
    # breaker at the limit: OPEN, and a success there does not close it.
    breaker = half_open(
        CircuitBreaker(
            "b",
            permitted_calls_in_half_open=1,
            minimum_calls=1,
            max_wait_duration_in_half_open_state=5.0,
        )
    )
    assert await breaker.call(nap, 6.0) == "rested"
    stats = breaker.statistics()
    assert (stats.state, stats.attempts) == (OPEN, 2)


# ---------------------------------------------------------------- manual states and events


async def test_reset_publishes_a_transition_only_when_not_closed_then_reset() -> None:
    # resilience4j's reset().
    bus = Recorder()
    breaker = CircuitBreaker("b", events=bus)
    await breaker.call(ok)
    bus.take()
    breaker.reset()
    assert bus.take() == [RESET]
    breaker.force_open()
    bus.take()
    breaker.reset()
    assert bus.take() == [TRANSITION, SYSTEM_CLOSED, RESET]
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls, stats.attempts, stats.not_permitted_calls) == (
        CLOSED,
        0,
        0,
        0,
    )


async def test_disabled_and_forced_open_publish_only_transitions_and_resets() -> None:
    # S19.
    bus = Recorder()
    breaker = CircuitBreaker("b", sliding_window_size=1, minimum_calls=1, events=bus)
    breaker.disable()
    assert bus.take() == [TRANSITION]
    for _ in range(5):
        await fail(breaker)
        await breaker.call(ok)
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls, stats.failure_rate) == (DISABLED, 0, -1.0)
    assert bus.take() == []
    breaker.force_open()
    assert bus.take() == [TRANSITION, SYSTEM_OPEN]
    error = await rejected(breaker)
    assert (error.state, error.retry_after) == ("FORCED_OPEN", None)
    stats = breaker.statistics()
    assert (stats.not_permitted_calls, stats.attempts) == (1, 1)
    assert bus.take() == []  # the rejection counted, not published
    breaker.reset()
    assert bus.take() == [TRANSITION, SYSTEM_CLOSED, RESET]


async def test_forced_open_never_leaves_by_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S20: neither the lazy nor the timed transition applies.
    breaker = CircuitBreaker("b", wait_duration_in_open_state=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        breaker.force_open()
        await trio.sleep(1000.0)
        await rejected(breaker)
        assert state(breaker) is FORCED_OPEN
        nursery.cancel_scope.cancel()


async def test_illegal_transitions_raise_and_change_nothing() -> None:
    # S21.
    bus = Recorder()
    breaker = CircuitBreaker("b", events=bus)
    await breaker.call(ok)
    bus.take()
    with pytest.raises(
        IllegalStateTransition,
        match=r"^circuit breaker 'b' in state CLOSED cannot handle a transition to HALF_OPEN$",
    ) as info:
        breaker.transition_to(HALF_OPEN)
    assert (info.value.state, info.value.input) == ("CLOSED", "a transition to HALF_OPEN")
    assert (state(breaker), breaker.statistics().buffered_calls) == (CLOSED, 1)
    breaker.metrics_only()
    await breaker.call(ok)
    bus.take()
    attempts: list[Callable[[], None]] = [
        lambda: breaker.transition_to(OPEN),
        lambda: breaker.open_for(1.0),
        lambda: breaker.open_until(1e9),
    ]
    for attempt in attempts:
        with pytest.raises(
            IllegalStateTransition,
            match=r"^circuit breaker 'b' in state METRICS_ONLY cannot handle a transition to OPEN$",
        ):
            attempt()
    with pytest.raises(
        IllegalStateTransition,
        match=r"^circuit breaker 'b' in state METRICS_ONLY cannot handle a "
        r"transition to HALF_OPEN$",
    ):
        breaker.transition_to(HALF_OPEN)
    assert (state(breaker), breaker.statistics().buffered_calls) == (METRICS_ONLY, 1)
    assert bus.take() == []
    with pytest.raises(TypeError, match=r"^state must be a CircuitState, got 'OPEN'$"):
        breaker.transition_to("OPEN")  # type: ignore[arg-type]


async def test_metrics_only_reports_each_exceeded_rate_once_per_stay_and_never_opens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # resilience4j's failure-rate and slow-call-rate exceeded events.
    bus = Recorder()
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=2,
        minimum_calls=2,
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=50.0,
        events=bus,
        call_events=True,
    )
    breaker.metrics_only()
    assert bus.take() == [TRANSITION]
    await fail(breaker, 2)
    assert bus.take() == [ERROR, ERROR, FAILURE_EXCEEDED]
    await fail(breaker, 3)
    assert bus.take() == [ERROR] * 3
    await breaker.call(nap, 2.0)
    assert bus.take() == [SUCCESS, SLOW_EXCEEDED]
    await breaker.call(nap, 2.0)
    assert bus.take() == [SUCCESS]
    stats = breaker.statistics()
    assert (stats.state, stats.slow_call_rate, stats.attempts) == (METRICS_ONLY, 100.0, 0)
    breaker.metrics_only()  # a new stay: fresh window, reports again, no transition event
    assert bus.take() == []
    await fail(breaker, 2)
    assert bus.take() == [ERROR, ERROR, FAILURE_EXCEEDED]
    assert state(breaker) is METRICS_ONLY


async def test_a_transition_to_the_current_state_starts_a_new_stay_without_an_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # resilience4j's OPEN -> OPEN; it re-arms the wait with one more attempt.
    bus = Recorder()
    breaker = CircuitBreaker("b", wait_duration_in_open_state=10.0, events=bus)
    await breaker.call(ok)
    breaker.transition_to(CLOSED)
    assert breaker.statistics().buffered_calls == 0
    breaker.transition_to(OPEN)
    bus.take()
    autojump_clock.jump(4.0)
    breaker.transition_to(OPEN)
    stats = breaker.statistics()
    assert (stats.state, stats.attempts, stats.retry_after) == (OPEN, 2, 10.0)
    for same in (HALF_OPEN, HALF_OPEN, DISABLED, DISABLED, FORCED_OPEN, FORCED_OPEN):
        breaker.transition_to(same)
    assert bus.take() == [TRANSITION, TRANSITION, TRANSITION, SYSTEM_OPEN]
    # HALF_OPEN kept 2, DISABLED has 0, then FORCED_OPEN twice: +1 each.
    assert breaker.statistics().attempts == 2


async def test_run_moves_open_to_half_open_at_the_deadline_and_a_manual_move_cancels_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # S28: the scheduled transition happens at the deadline; any transition
    # out of OPEN cancels it.
    bus = Recorder()
    breaker = CircuitBreaker("b", wait_duration_in_open_state=2.0, events=bus)
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        breaker.transition_to(OPEN)
        await trio.sleep(2.0)
        await trio.testing.wait_all_tasks_blocked()
        assert state(breaker) is HALF_OPEN
        assert trio.current_time() == 2.0
        bus.take()
        breaker.transition_to(OPEN)  # due at 4.0
        await trio.sleep(1.0)
        breaker.force_open()
        await trio.sleep(10.0)
        assert state(breaker) is FORCED_OPEN
        breaker.transition_to(CLOSED)
        breaker.transition_to(OPEN)  # due at 15.0, not at the older 4.0
        await trio.sleep(1.0)
        assert state(breaker) is OPEN
        await trio.sleep(1.5)
        await trio.testing.wait_all_tasks_blocked()
        assert state(breaker) is HALF_OPEN
        nursery.cancel_scope.cancel()
    assert [event.payload["state"] for event in bus.events if event.type.wire == TRANSITION] == [
        "OPEN",
        "FORCED_OPEN",
        "CLOSED",
        "OPEN",
        "HALF_OPEN",
    ]


async def test_run_twice_is_refused_and_may_run_again_after_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("timers")
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        with pytest.raises(
            RuntimeError, match=r"^circuit breaker 'timers' is already running its timers$"
        ):
            await breaker.run()
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- windows


async def test_a_count_window_keeps_the_last_ten_of_twelve_calls() -> None:
    # S29.
    breaker = CircuitBreaker("b", sliding_window_size=10, minimum_calls=10)
    await fail(breaker, 2)
    for _ in range(10):
        await breaker.call(ok)
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls, stats.failure_rate) == (10, 0, 0.0)


def test_a_time_window_holds_whole_seconds_as_resilience4j_s_vector() -> None:
    # resilience4j's SlidingTimeWindowMetricsTest (design.md B5): window 5, 100 ms calls.
    config = BreakerConfig(
        sliding_window_type=SlidingWindowType.TIME_BASED, sliding_window_size=5, minimum_calls=5
    )
    machine = BreakerMachine(config, name="w", now=0.0, random=lambda: 0.5)
    vector = [
        (0.0, 1, 0),
        (0.1, 2, 0),
        (0.2, 3, 0),
        (1.2, 4, 0),
        (2.2, 5, 0),
        (3.2, 6, 1),  # the one error
        (4.2, 7, 1),
        (5.2, 5, 1),
        (6.2, 5, 1),
        (11.2, 1, 0),
    ]
    for at, total, failed in vector:
        assert machine.acquire(at) is not None
        if at == 3.2:
            machine.failed(0.1, at)
        else:
            machine.succeeded(0.1, at)
        window = machine.phase.metrics.window
        assert (window.total, window.failed) == (total, failed), at
    assert machine.state is CLOSED
    # Reading advances the window too: at 15.0 the call at 11.2 is still in
    # (seconds 11..15), at 16.0 it is out.
    machine.rates(15.0)
    assert machine.phase.metrics.window.total == 1
    assert machine.rates(16.0) == (-1.0, -1.0)
    assert machine.phase.metrics.window.total == 0


async def test_a_time_window_on_trio_s_clock_forgets_old_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "b",
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=10,
        minimum_calls=2,
    )
    await fail(breaker)
    autojump_clock.jump(10.0)
    await fail(breaker)  # the first failure has left the window
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (CLOSED, 1)
    await breaker.call(ok)
    assert breaker.statistics().failure_rate == 50.0
    assert state(breaker) is OPEN


# ---------------------------------------------------------------- what counts as a failure


async def test_an_exception_that_is_not_recorded_counts_as_a_success() -> None:
    # S30.
    bus = Recorder()
    breaker = CircuitBreaker("b", record_exceptions=(Boom,), events=bus, call_events=True)

    async def value_error() -> None:
        raise ValueError("not ours")

    with pytest.raises(ValueError, match=r"^not ours$"):
        await breaker.call(value_error)
    await fail(breaker)
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.successful_calls, stats.failed_calls) == (2, 1, 1)
    assert bus.take() == [SUCCESS, ERROR]


async def test_record_classes_and_predicate_are_or_ed_and_a_single_class_is_accepted() -> None:
    breaker = CircuitBreaker(
        "b",
        record_exceptions=KeyError,  # type: ignore[arg-type]  # one class: accepted at run time
        record_exception=lambda e: "bad" in str(e),
    )
    for error in (KeyError("k"), ValueError("bad value"), ValueError("fine")):

        async def raises(error: Exception = error) -> None:
            raise error

        with pytest.raises(type(error)):
            await breaker.call(raises)
    stats = breaker.statistics()
    assert (stats.failed_calls, stats.successful_calls) == (2, 1)
    only_predicate = CircuitBreaker("p", record_exception=lambda e: isinstance(e, Boom))
    await fail(only_predicate)
    assert only_predicate.statistics().failed_calls == 1


async def test_ignore_takes_precedence_over_record() -> None:
    breaker = CircuitBreaker("b", record_exceptions=(Boom,), ignore_exceptions=(Boom,))
    await fail(breaker)
    assert breaker.statistics().buffered_calls == 0


async def test_record_result_marks_a_returned_value_as_a_failure() -> None:
    # S32: the value is still returned; a None result is never tested.
    bus = Recorder()
    tested: list[object] = []

    def bad(result: Any) -> bool:
        tested.append(result)
        return bool(result == "bad")

    breaker = CircuitBreaker("b", record_result=bad, events=bus, call_events=True)
    assert await breaker.call(ok, "bad") == "bad"
    assert await breaker.call(ok, "good") == "good"
    assert await breaker.call(ok, None) is None
    assert tested == ["bad", "good"]
    stats = breaker.statistics()
    assert (stats.failed_calls, stats.successful_calls) == (1, 2)
    # A marked result is an ERROR with no exception to name.
    assert set(bus.events[0].payload) == {"breaker", "state", "duration"}
    assert bus.take() == [ERROR, SUCCESS, SUCCESS]


# S35 (transitionOnResult) is not offered: design.md B7, use open_for().


async def test_a_predicate_that_raises_gives_the_permit_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # resilience4j #2324 (CircuitBreakerThrowingPredicateLeakTest): the
    # predicate's error propagates, nothing is recorded, the permit returns.
    def broken(_: object) -> bool:
        raise RuntimeError("predicate broke")

    choices: list[dict[str, Any]] = [
        {"record_exception": broken},
        {"ignore_exception": broken},
        {"record_result": broken},
    ]
    for options in choices:
        breaker = half_open(
            CircuitBreaker("b", permitted_calls_in_half_open=1, minimum_calls=1, **options)
        )
        callee = ok if "record_result" in options else boom
        with pytest.raises(RuntimeError, match=r"^predicate broke$"):
            await breaker.call(callee)
        stats = breaker.statistics()
        assert (stats.state, stats.buffered_calls) == (HALF_OPEN, 0)
    # The permit came back: a trial call is admitted and decides.
    breaker = half_open(
        CircuitBreaker(
            "b", permitted_calls_in_half_open=1, minimum_calls=1, record_exception=broken
        )
    )
    with pytest.raises(RuntimeError):
        await breaker.call(boom)
    assert await breaker.call(ok) == "ok"
    assert state(breaker) is CLOSED


# ---------------------------------------------------------------- trio scenarios T1-T6


async def test_t1_a_cancelled_trial_call_gives_its_permit_back_and_cancelled_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Also S10: a released permit is admitted again.
    breaker = half_open(
        CircuitBreaker("b", permitted_calls_in_half_open=1, sliding_window_size=1, minimum_calls=1)
    )
    seen: list[BaseException] = []
    scope = trio.CancelScope()

    async def task_a() -> None:
        with scope:
            try:
                await breaker.call(trio.sleep_forever)
            except BaseException as exc:
                seen.append(exc)
                raise

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task_a)
        await trio.testing.wait_all_tasks_blocked()
        error = await rejected(breaker)  # task B: refused at once
        assert (error.state, breaker.statistics().not_permitted_calls) == ("HALF_OPEN", 1)
        scope.cancel()
    assert scope.cancelled_caught
    assert len(seen) == 1
    assert type(seen[0]) is trio.Cancelled  # unchanged
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (HALF_OPEN, 0)
    # The permit is back: the next call is admitted, HALF_OPEN until it ends.
    gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        assert state(breaker) is HALF_OPEN
        await rejected(breaker)
        gate.set()
    assert state(breaker) is CLOSED


async def test_t2_a_cancelled_call_is_not_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("b", sliding_window_size=2, minimum_calls=2)
    await fail(breaker)
    with trio.move_on_after(1.0) as scope:
        await breaker.call(trio.sleep_forever)
    assert scope.cancelled_caught
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (CLOSED, 1)
    await fail(breaker)
    assert state(breaker) is OPEN


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit, GeneratorExit])
async def test_t3_a_base_exception_is_not_recorded_releases_the_permit_and_is_re_raised(
    interrupt: type[BaseException],
) -> None:
    breaker = half_open(
        CircuitBreaker("b", permitted_calls_in_half_open=1, sliding_window_size=1, minimum_calls=1)
    )
    raised = interrupt()

    async def interrupted() -> None:
        raise raised

    with pytest.raises(interrupt) as info:
        await breaker.call(interrupted)
    assert info.value is raised
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (HALF_OPEN, 0)
    with pytest.raises(interrupt):
        async with breaker:
            raise interrupt()
    assert await breaker.call(ok) == "ok"  # the permit came back both times
    assert state(breaker) is CLOSED


async def test_t4_an_exception_group_is_classified_as_a_whole() -> None:
    async def group() -> None:
        raise ExceptionGroup("many", [Boom("inside")])

    recorded_by_default = CircuitBreaker("a")
    with pytest.raises(ExceptionGroup):
        await recorded_by_default.call(group)
    assert recorded_by_default.statistics().failed_calls == 1
    # record_exceptions=(Boom,): the group is not a Boom, so it is a success.
    by_class = CircuitBreaker("b", record_exceptions=(Boom,))
    with pytest.raises(ExceptionGroup):
        await by_class.call(group)
    assert (by_class.statistics().successful_calls, by_class.statistics().failed_calls) == (1, 0)
    ignored = CircuitBreaker("c", ignore_exceptions=(ExceptionGroup,))
    with pytest.raises(ExceptionGroup):
        await ignored.call(group)
    assert ignored.statistics().buffered_calls == 0


async def test_t4_a_group_of_cancelled_from_a_nursery_is_a_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open(
        CircuitBreaker("b", permitted_calls_in_half_open=1, sliding_window_size=1, minimum_calls=1)
    )
    seen: list[BaseException] = []

    async def sleepers() -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(trio.sleep_forever)
        except BaseException as exc:
            seen.append(exc)
            raise

    with trio.move_on_after(1.0) as scope:
        await breaker.call(sleepers)
    assert scope.cancelled_caught
    (group,) = seen
    assert isinstance(group, BaseExceptionGroup)
    assert all(isinstance(leaf, trio.Cancelled) for leaf in group.exceptions)
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (HALF_OPEN, 0)
    assert await breaker.call(ok) == "ok"  # the permit came back
    assert state(breaker) is CLOSED


async def test_t4_a_group_mixing_errors_and_cancelled_is_not_an_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # design.md B4: the call was cancelled before it finished.
    breaker = half_open(
        CircuitBreaker("b", permitted_calls_in_half_open=1, sliding_window_size=1, minimum_calls=1)
    )
    seen: list[BaseException] = []

    async def fails_when_cancelled() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise Boom("cleanup failed")

    async def mixed() -> None:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fails_when_cancelled)
                nursery.start_soon(trio.sleep_forever)
        except BaseException as exc:
            seen.append(exc)
            raise

    with pytest.raises(ExceptionGroup), trio.move_on_after(1.0):
        await breaker.call(mixed)
    (group,) = seen
    assert isinstance(group, BaseExceptionGroup)
    assert not isinstance(group, Exception)
    assert {type(leaf) for leaf in group.exceptions} == {Boom, trio.Cancelled}
    stats = breaker.statistics()
    assert (stats.state, stats.buffered_calls) == (HALF_OPEN, 0)
    assert await breaker.call(ok) == "ok"


async def test_t5_five_calls_after_the_wait_with_two_permits_let_exactly_two_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "b", permitted_calls_in_half_open=2, minimum_calls=2, wait_duration_in_open_state=1.0
    )
    breaker.transition_to(OPEN)
    autojump_clock.jump(1.5)
    reached: list[int] = []
    refused: list[CallNotPermitted] = []
    gate = trio.Event()

    async def callee(i: int) -> None:
        reached.append(i)
        await gate.wait()

    async def caller(i: int) -> None:
        try:
            await breaker.call(callee, i)
        except CallNotPermitted as error:
            refused.append(error)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(caller, i)
        await trio.testing.wait_all_tasks_blocked()
        assert (len(reached), len(refused)) == (2, 3)
        assert {error.state for error in refused} == {"HALF_OPEN"}
        assert breaker.statistics().not_permitted_calls == 3
        gate.set()
    assert len(reached) == 2
    assert state(breaker) is CLOSED


async def test_t6_a_rejected_call_is_a_checkpoint() -> None:
    breaker = CircuitBreaker("b")
    breaker.force_open()
    with trio.testing.assert_checkpoints(), pytest.raises(CallNotPermitted):
        await breaker.call(ok)
    with trio.testing.assert_checkpoints(), pytest.raises(CallNotPermitted):
        async with breaker:
            pass
    # And a cancelled caller is stopped there.
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await breaker.call(ok)


async def test_t6_a_retry_loop_on_a_rejecting_breaker_does_not_starve_a_sibling() -> None:
    breaker = CircuitBreaker("b")
    breaker.force_open()
    progress = 0
    attempts = 0

    async def sibling(scope: trio.CancelScope) -> None:
        nonlocal progress
        for _ in range(20):
            await trio.lowlevel.checkpoint()
            progress += 1
        scope.cancel()

    with trio.CancelScope() as loop_scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sibling, loop_scope)
            while attempts < 100_000:  # a bound, so that a missing checkpoint fails, not hangs
                attempts += 1
                with contextlib.suppress(CallNotPermitted):
                    await breaker.call(ok)
    assert loop_scope.cancelled_caught
    assert progress == 20
    assert attempts < 100_000


async def test_call_not_permitted_names_the_state_that_refused_even_if_it_moves_meanwhile(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # During the rejection's checkpoint other tasks run: a trial call may
    # close the breaker. The error must still say what refused the call.
    breaker = CircuitBreaker("b", wait_duration_in_open_state=30.0)
    breaker.transition_to(OPEN)
    real_checkpoint = trio.lowlevel.checkpoint

    async def checkpoint_during_which_another_task_resets() -> None:
        breaker.reset()
        await real_checkpoint()

    monkeypatch.setattr(trio.lowlevel, "checkpoint", checkpoint_during_which_another_task_resets)
    error = await rejected(breaker)
    monkeypatch.undo()
    assert state(breaker) is CLOSED
    assert (error.state, error.retry_after) == ("OPEN", 30.0)
    assert str(error) == "circuit breaker 'b' is OPEN and does not permit calls"


# ---------------------------------------------------------------- the three call forms


async def test_async_with_serves_concurrent_tasks_and_nests_in_one_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("b", sliding_window_size=20, minimum_calls=20)

    async def user(delay: float, fails: bool) -> None:
        async with breaker:
            await trio.sleep(delay)
            async with breaker:
                await trio.sleep(delay)
                if fails:
                    raise Boom("inner")

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(user, 1.0 - i / 10, False)
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (8, 0)
    with pytest.raises(Boom, match=r"^inner$"):
        await user(0.5, True)
    stats = breaker.statistics()
    # The error went out through both blocks: each recorded a failure.
    assert (stats.buffered_calls, stats.failed_calls) == (10, 2)


async def test_async_with_in_half_open_holds_permits_and_measures_its_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open(
        CircuitBreaker(
            "b",
            permitted_calls_in_half_open=2,
            minimum_calls=2,
            slow_call_duration_threshold=1.0,
        )
    )
    async with breaker, breaker:  # two permits held by one task, nested
        with pytest.raises(CallNotPermitted):
            async with breaker:
                pass  # pragma: no cover
        await trio.sleep(2.0)  # both blocks are slow
    stats = breaker.statistics()
    assert (stats.state, stats.slow_call_rate) == (OPEN, 100.0)


async def test_the_decorator_passes_args_and_kwargs_and_keeps_the_function_name() -> None:
    breaker = CircuitBreaker("b")
    got: list[tuple[object, ...]] = []

    @breaker
    async def fetch(a: int, b: int = 0, *, key: str = "") -> str:
        """Fetch it."""
        got.append((a, b, key))
        return f"{a}-{b}-{key}"

    assert await fetch(1) == "1-0-"
    assert await fetch(1, 2, key="k") == "1-2-k"
    assert await fetch(a=3) == "3-0-"
    assert got == [(1, 0, ""), (1, 2, "k"), (3, 0, "")]
    assert (fetch.__name__, fetch.__doc__) == ("fetch", "Fetch it.")
    assert breaker.statistics().successful_calls == 3
    breaker.force_open()
    with pytest.raises(CallNotPermitted):
        await fetch(1)
    assert len(got) == 3


def sync_fetch() -> str:
    return "fetched"  # pragma: no cover


async def ticks() -> AsyncIterator[int]:
    yield 1  # pragma: no cover


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (3, "a circuit breaker decorates an async function, got 3"),
        (
            sync_fetch,
            "a circuit breaker decorates an async function, got the plain function "
            "'sync_fetch' (define it with async def)",
        ),
        (
            ticks,
            "a circuit breaker decorates an async function, got the async generator "
            "function 'ticks' (a body with yield makes an async generator, not a coroutine)",
        ),
        (
            functools.partial(sync_fetch),
            "a circuit breaker decorates an async function, got functools.partial of the "
            "plain function 'sync_fetch' (define it with async def)",
        ),
    ],
)
def test_the_decorator_refuses_what_is_not_an_async_function(fn: Any, message: str) -> None:
    # At decoration time: a sync function would fail only when called, and
    # each call would be recorded as a failure (docs/design.md rule 41).
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        CircuitBreaker("b")(fn)


async def test_the_decorator_takes_every_kind_of_async_function() -> None:
    breaker = CircuitBreaker("b")

    class Fetcher:
        async def __call__(self, x: int) -> int:
            return x + 1

        async def fetch(self, x: int) -> int:
            return x + 2

    def logged(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
        @functools.wraps(fn)
        def wrapper(x: int) -> Awaitable[int]:  # sync, returns the coroutine
            return fn(x)

        return wrapper

    async def add(x: int, y: int) -> int:
        return x + y

    async def three(x: int) -> int:
        return x + 3

    protected = [
        breaker(Fetcher()),
        breaker(Fetcher().fetch),
        breaker(functools.partial(add, 3)),
        breaker(logged(three)),
    ]
    assert [await fn(1) for fn in protected] == [2, 3, 4, 4]
    assert breaker.statistics().successful_calls == 4


async def test_call_takes_keyword_arguments_through_partial() -> None:
    breaker = CircuitBreaker("b")

    async def join(a: str, *, sep: str) -> str:
        return sep.join([a, a])

    assert await breaker.call(functools.partial(join, sep="+"), "x") == "x+x"


# ---------------------------------------------------------------- statistics and events


async def test_statistics_report_every_field(autojump_clock: trio.testing.MockClock) -> None:
    breaker = CircuitBreaker(
        "stats",
        sliding_window_size=4,
        minimum_calls=2,
        failure_rate_threshold=60.0,
        slow_call_rate_threshold=60.0,
        slow_call_duration_threshold=1.0,
        events=Recorder(refuse=True),
        call_events=True,
    )
    await breaker.call(ok)
    await fail(breaker)
    await breaker.call(nap, 2.0)
    with pytest.raises(Boom):
        await breaker.call(slow_boom, 2.0)
    assert breaker.statistics() == BreakerStatistics(
        name="stats",
        state=CLOSED,
        failure_rate=50.0,
        slow_call_rate=50.0,
        buffered_calls=4,
        failed_calls=2,
        slow_calls=2,
        slow_failed_calls=1,
        successful_calls=2,
        not_permitted_calls=0,
        attempts=0,
        retry_after=None,
        events_dropped=4,
    )
    assert repr(breaker) == "<CircuitBreaker 'stats' CLOSED>"
    assert (breaker.name, breaker.config.minimum_calls) == ("stats", 2)


def test_a_breaker_shows_its_initial_state_before_its_first_use() -> None:
    breaker = CircuitBreaker("lazy", initial_state=FORCED_OPEN)
    assert breaker.state is FORCED_OPEN
    assert repr(breaker) == "<CircuitBreaker 'lazy' ?>"


async def test_events_on_a_trip_come_in_resilience4j_order_with_their_payloads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Recorder()
    breaker = CircuitBreaker(
        "api",
        sliding_window_size=2,
        minimum_calls=2,
        wait_duration_in_open_state=10.0,
        events=bus,
        call_events=True,
    )
    await breaker.call(ok)
    assert bus.take() == [SUCCESS]
    await fail(breaker)
    error, exceeded, transition, system_open = bus.events
    assert [event.type.wire for event in bus.events] == [
        ERROR,
        FAILURE_EXCEEDED,
        TRANSITION,
        SYSTEM_OPEN,
    ]
    assert {event.source for event in bus.events} == {"circuit_breaker/api"}
    assert error.payload == {
        "breaker": "api",
        "state": "CLOSED",
        "duration": 0.0,
        "error_type": f"{__name__}.Boom",
        "error": "down",
        "traceback": error.payload["traceback"],
    }
    assert exceeded.payload == {"breaker": "api", "state": "CLOSED", "rate": 50.0}
    assert transition.payload == {"breaker": "api", "state": "OPEN", "from_state": "CLOSED"}
    assert system_open.type == SystemEvent.CIRCUIT_BREAKER_OPEN
    assert system_open.payload == transition.payload
    bus.take()
    await rejected(breaker)
    # Published by the rejection itself, not by some later call.
    assert bus.take() == [NOT_PERMITTED]
    autojump_clock.jump(10.5)
    await breaker.call(ok)
    assert bus.take() == [TRANSITION, SUCCESS]
    await breaker.call(ok)
    assert bus.take() == [SUCCESS, TRANSITION, SYSTEM_CLOSED]
    assert bus.events == []


async def test_a_lazy_move_to_half_open_is_published_when_it_happens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = Recorder()
    breaker = CircuitBreaker("b", wait_duration_in_open_state=1.0, events=bus, call_events=True)
    breaker.transition_to(OPEN)
    bus.take()
    autojump_clock.jump(2.0)
    gate = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(breaker.call, gate.wait)
        await trio.testing.wait_all_tasks_blocked()
        assert bus.take() == [TRANSITION]  # before the trial call ends
        gate.set()
    assert bus.take() == [SUCCESS]


async def test_a_refusing_publisher_counts_dropped_events_and_never_affects_a_call() -> None:
    bus = Recorder(refuse=True)
    breaker = CircuitBreaker(
        "b", sliding_window_size=1, minimum_calls=1, events=bus, call_events=True
    )
    assert await breaker.call(ok) == "ok"
    assert breaker.statistics().events_dropped == 1
    with pytest.raises(Boom, match=r"^down$"):
        await breaker.call(boom)
    assert state(breaker) is OPEN
    # error, failure_rate_exceeded, state_transition, system.circuit_breaker_open
    assert breaker.statistics().events_dropped == 5
    await rejected(breaker)
    assert (breaker.statistics().events_dropped, bus.tries) == (6, 6)


async def test_a_breaker_without_a_publisher_builds_no_events() -> None:
    breaker = CircuitBreaker("b", sliding_window_size=1, minimum_calls=1)
    await fail(breaker)
    await rejected(breaker)
    assert breaker.statistics().events_dropped == 0


async def test_by_default_a_bus_hears_the_state_not_each_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # docs/design.md rule 41: transitions, resets and thresholds reached are
    # published; success, error, ignored_error and not_permitted are not.
    bus = Recorder()
    breaker = CircuitBreaker(
        "api",
        sliding_window_size=2,
        minimum_calls=2,
        wait_duration_in_open_state=10.0,
        ignore_exceptions=(Ignored,),
        events=bus,
    )
    await breaker.call(ok)
    with pytest.raises(Ignored):
        await breaker.call(raise_ignored)
    assert bus.take() == []
    await fail(breaker)
    assert bus.take() == [FAILURE_EXCEEDED, TRANSITION, SYSTEM_OPEN]
    await rejected(breaker)
    assert bus.take() == []
    autojump_clock.jump(10.5)
    await breaker.call(ok)
    await breaker.call(ok)
    assert bus.take() == [TRANSITION, TRANSITION, SYSTEM_CLOSED]
    breaker.reset()
    assert bus.take() == [RESET]
    # The hot path (CLOSED, a success) publishes nothing either.
    for _ in range(5):
        await breaker.call(ok)
    assert bus.take() == []
    assert breaker.statistics().events_dropped == 0


async def raise_ignored() -> None:
    raise Ignored("not recorded")


async def test_a_state_only_bus_keeps_the_trip_of_a_slow_success_on_the_hot_path() -> None:
    # No MockClock: the hot path reads trio's SystemClock. A success slower
    # than the threshold trips the breaker there, and its events go out.
    bus = Recorder()
    breaker = CircuitBreaker(
        "slow",
        sliding_window_size=1,
        minimum_calls=1,
        slow_call_rate_threshold=100,
        slow_call_duration_threshold=1e-9,
        events=bus,
    )
    await breaker.call(ok)
    assert state(breaker) is OPEN
    assert bus.take() == [SLOW_EXCEEDED, TRANSITION, SYSTEM_OPEN]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            dict(call_events=True),
            ValueError,
            "call_events=True needs a publisher, but events is None",
        ),
        (dict(call_events=1, events=Recorder()), TypeError, "call_events must be a bool, got 1"),
        (dict(call_events=None), TypeError, "call_events must be a bool, got None"),
    ],
)
def test_call_events_is_a_bool_that_needs_a_publisher(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        CircuitBreaker("b", **options)


async def test_the_first_dropped_event_is_logged_once_naming_the_breaker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = Recorder(refuse=True)
    breaker = CircuitBreaker("api", events=bus, call_events=True)
    with caplog.at_level(logging.WARNING, logger="trio_smith.events"):
        for _ in range(9):
            await breaker.call(ok)
    assert breaker.statistics().events_dropped == 9
    # One line for 9 drops (the 10th, 100th... log again: docs/design.md rule 34).
    assert [record.getMessage() for record in caplog.records] == [
        "circuit breaker 'api' dropped event circuit_breaker.success (1 dropped so far): "
        "trio.WouldBlock"
    ]


async def test_a_billion_half_open_permits_cost_only_the_calls_made(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 8 bytes per permit were allocated on every move to HALF_OPEN: 7.6 GiB
    # here, before the first trial call (docs/design.md rule 41).
    breaker = CircuitBreaker(
        "wide",
        sliding_window_size=2,
        minimum_calls=3,
        permitted_calls_in_half_open=10**9,
        wait_duration_in_open_state=1.0,
    )
    for cycle in range(3):
        await fail(breaker, 2)
        assert state(breaker) is OPEN
        autojump_clock.jump(1.5)
        tracemalloc.start()
        try:
            await breaker.call(ok)
            await breaker.call(ok)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100_000, f"cycle {cycle}: {peak} bytes"
        stats = breaker.statistics()
        assert (stats.state, stats.buffered_calls, stats.failure_rate) == (HALF_OPEN, 2, -1.0)
        # min(minimum_calls, permitted) = 3 calls decide: the third closes it.
        await breaker.call(ok)
        assert state(breaker) is CLOSED


# ---------------------------------------------------------------- construction


class NamedThing:
    def __repr__(self) -> str:
        return "<thing>"


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(name=""), ValueError, "name must be a non-empty str, got ''"),
        (dict(name=3), ValueError, "name must be a non-empty str, got 3"),
        (
            dict(failure_rate_threshold=0),
            ValueError,
            "failure_rate_threshold must be a percentage in (0, 100], got 0",
        ),
        (
            dict(slow_call_rate_threshold=101),
            ValueError,
            "slow_call_rate_threshold must be a percentage in (0, 100], got 101",
        ),
        (
            dict(slow_call_duration_threshold=0),
            ValueError,
            "slow_call_duration_threshold must be a number of seconds > 0, got 0",
        ),
        (
            dict(sliding_window_type="TIME_BASED"),
            TypeError,
            "sliding_window_type must be a SlidingWindowType, got 'TIME_BASED'",
        ),
        (dict(sliding_window_size=0), ValueError, "sliding_window_size must be an int >= 1, got 0"),
        (dict(minimum_calls=1.5), ValueError, "minimum_calls must be an int >= 1, got 1.5"),
        (
            dict(permitted_calls_in_half_open=0),
            ValueError,
            "permitted_calls_in_half_open must be an int >= 1, got 0",
        ),
        (
            dict(wait_duration_in_open_state=0),
            ValueError,
            "wait_duration_in_open_state must be a WaitInterval or a finite number of "
            "seconds >= 0.001, got 0",
        ),
        (
            dict(max_wait_duration_in_half_open_state=-1),
            ValueError,
            "max_wait_duration_in_half_open_state must be 0 (no limit) or a finite number "
            "of seconds >= 0.001, got -1",
        ),
        (
            dict(state_after_half_open_wait=HALF_OPEN),
            ValueError,
            "state_after_half_open_wait must be CircuitState.OPEN or CircuitState.CLOSED, "
            "got <CircuitState.HALF_OPEN: 'HALF_OPEN'>",
        ),
        (
            dict(initial_state="OPEN"),
            TypeError,
            "initial_state must be a CircuitState, got 'OPEN'",
        ),
        (
            dict(record_exceptions=(ValueError, int)),
            TypeError,
            "record_exceptions must be a tuple of Exception subclasses, "
            "got (<class 'ValueError'>, <class 'int'>)",
        ),
        (
            dict(record_exceptions=[ValueError]),
            TypeError,
            "record_exceptions must be a tuple of Exception subclasses, got [<class 'ValueError'>]",
        ),
        (
            dict(ignore_exceptions=(KeyboardInterrupt,)),
            TypeError,
            "ignore_exceptions must be a tuple of Exception subclasses, "
            "got (<class 'KeyboardInterrupt'>,)",
        ),
        *[
            (
                {label: "x"},
                TypeError,
                f"{label} must be a callable or None, got 'x'",
            )
            for label in (
                "record_exception",
                "ignore_exception",
                "record_result",
                "clock",
                "random",
            )
        ],
        (
            dict(events=NamedThing()),
            TypeError,
            "events must have a publish_nowait method, got <thing>",
        ),
    ],
)
def test_constructor_refuses_bad_arguments_with_exact_messages(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        CircuitBreaker(**options)


async def test_a_custom_clock_drives_durations_and_deadlines() -> None:
    now = [100.0]
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        slow_call_duration_threshold=5.0,
        slow_call_rate_threshold=100.0,
        failure_rate_threshold=100.0,
        wait_duration_in_open_state=3.0,
        clock=lambda: now[0],
    )

    async def takes_ten() -> str:
        now[0] += 10.0
        return "done"

    assert await breaker.call(takes_ten) == "done"
    stats = breaker.statistics()
    assert (stats.state, stats.slow_calls, stats.retry_after) == (OPEN, 1, 3.0)
    now[0] += 3.5
    assert await breaker.call(ok) == "ok"
    assert state(breaker) is CLOSED


def test_the_event_kinds_are_resilience4j_s() -> None:
    assert [
        str(kind)
        for kind in (
            CircuitBreakerEvent.SUCCESS,
            CircuitBreakerEvent.ERROR,
            CircuitBreakerEvent.IGNORED_ERROR,
            CircuitBreakerEvent.NOT_PERMITTED,
            CircuitBreakerEvent.STATE_TRANSITION,
            CircuitBreakerEvent.RESET,
            CircuitBreakerEvent.FAILURE_RATE_EXCEEDED,
            CircuitBreakerEvent.SLOW_CALL_RATE_EXCEEDED,
        )
    ] == [
        SUCCESS,
        ERROR,
        IGNORED,
        NOT_PERMITTED,
        TRANSITION,
        RESET,
        FAILURE_EXCEEDED,
        SLOW_EXCEEDED,
    ]
    assert str(SystemEvent.CIRCUIT_BREAKER_CLOSED) == SYSTEM_CLOSED

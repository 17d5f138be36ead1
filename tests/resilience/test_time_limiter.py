"""The time limiter: resilience4j's TimeLimiter tests ported to trio, and trio's own cases.

Every time is on ``autojump_clock`` and exact. resilience4j's
``TimeLimiterTest.shouldThrowTimeoutExceptionAndNotInvokeCancel``
(``cancelRunningFuture(false)``: the late work goes on) has no trio
counterpart: a trio call runs inside its caller's task, so the limiter
always cancels the late call (see
``test_the_late_call_is_always_cancelled_and_its_finally_runs_at_the_deadline``).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith.events import EventBus
from trio_smith.resilience import (
    CallNotPermitted,
    CallTimedOut,
    CircuitBreaker,
    CircuitState,
    TimeLimiter,
    TimeLimiterEvent,
    TimeLimiterStatistics,
)

from ..publisher import Recorder
from ._telemetry import Seen, recording

CALL = ("trio_smith", "time_limiter", "call")


@pytest.fixture
def seen() -> Iterator[Seen]:
    """The time limiter's telemetry events, while this test runs."""
    with recording(CALL) as got:
        yield got


def counts(limiter: TimeLimiter) -> tuple[int, int, int]:
    """(successful, failed, timed out)."""
    stats = limiter.statistics()
    return stats.successful_calls, stats.failed_calls, stats.timed_out_calls


async def answer() -> int:
    return 42


async def work(seconds: float, value: int = 42) -> int:
    await trio.sleep(seconds)
    return value


async def fails() -> None:
    raise RuntimeError("BAM!")


# ---------------------------------------------------------------- configuration


def test_the_configured_timeout_is_kept() -> None:
    """resilience4j TimeLimiterTest.shouldReturnCorrectTimeoutDuration."""
    limiter = TimeLimiter("t", timeout=1)
    assert limiter.timeout == 1.0
    assert isinstance(limiter.timeout, float)
    assert limiter.statistics().timeout == 1.0


def test_defaults() -> None:
    """resilience4j TimeLimiterConfigTest (defaults: 1 s)."""
    limiter = TimeLimiter()
    assert limiter.name == "time_limiter"
    assert limiter.statistics() == TimeLimiterStatistics(
        name="time_limiter",
        timeout=1.0,
        successful_calls=0,
        failed_calls=0,
        timed_out_calls=0,
        events_dropped=0,
    )


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(name=""), ValueError, "name must be a non-empty str, got ''"),
        (dict(name=3), ValueError, "name must be a non-empty str, got 3"),
        (dict(name=None), ValueError, "name must be a non-empty str, got None"),
        (dict(timeout=-1), ValueError, "timeout must be a finite number >= 0, got -1"),
        (dict(timeout=-1e-9), ValueError, "timeout must be a finite number >= 0, got -1e-09"),
        (dict(timeout=math.nan), ValueError, "timeout must be a finite number >= 0, got nan"),
        (dict(timeout=math.inf), ValueError, "timeout must be a finite number >= 0, got inf"),
        (dict(timeout=-math.inf), ValueError, "timeout must be a finite number >= 0, got -inf"),
        (dict(timeout=True), ValueError, "timeout must be a finite number >= 0, got True"),
        (dict(timeout="1"), ValueError, "timeout must be a finite number >= 0, got '1'"),
        (dict(timeout=None), ValueError, "timeout must be a finite number >= 0, got None"),
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
    """resilience4j TimeLimiterConfigTest (a null timeout is refused; here, more is)."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        TimeLimiter(**options)


def test_a_zero_timeout_is_accepted() -> None:
    assert TimeLimiter("t", timeout=0).timeout == 0.0


# ---------------------------------------------------------------- outcomes


async def test_a_call_that_returns_in_time_gives_its_result() -> None:
    """resilience4j TimeLimiterTest.shouldReturnResult (the execute and decorate forms)."""
    limiter = TimeLimiter("t")
    assert await limiter.call(answer) == 42
    decorated = limiter(answer)
    assert await decorated() == 42
    async with limiter:
        pass
    assert counts(limiter) == (3, 0, 0)


async def test_a_slow_call_within_the_timeout_returns_when_it_is_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j TimeLimiterTest.shouldReturnResultWithCompletionStage."""
    limiter = TimeLimiter("t", timeout=1.0)
    assert await limiter.call(work, 0.5) == 42
    assert trio.current_time() == 0.5
    assert counts(limiter) == (1, 0, 0)


async def test_a_call_that_runs_past_the_deadline_times_out_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j TimeLimiterTest.shouldThrowTimeoutExceptionAndInvokeCancel."""
    limiter = TimeLimiter("TestTimeLimiter", timeout=1.0)
    with pytest.raises(CallTimedOut) as caught:
        await limiter.call(trio.sleep_forever)
    assert trio.current_time() == 1.0
    error = caught.value
    assert str(error) == "time limiter 'TestTimeLimiter' timed out the call after 1.0 s"
    assert error.time_limiter == "TestTimeLimiter"
    assert error.timeout == 1.0
    assert isinstance(error, TimeoutError)
    # Nothing confusing is chained: the Cancelled was the limiter's own.
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert counts(limiter) == (0, 0, 1)


async def test_the_timeout_error_is_exactly_at_the_deadline_for_longer_work(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j TimeLimiterTest.shouldThrowTimeoutExceptionWithCompletionStage."""
    limiter = TimeLimiter("t", timeout=0.3)
    with pytest.raises(CallTimedOut, match=r"^time limiter 't' timed out the call after 0\.3 s$"):
        await limiter.call(work, 0.5)
    assert trio.current_time() == 0.3


async def test_the_late_call_is_always_cancelled_and_its_finally_runs_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j TimeLimiterTest.shouldTimeoutAndCancelOnCorrectThreadType.

    There is no ``cancelRunningFuture(false)``: the work never goes on after
    the timeout (TimeLimiterTest.shouldThrowTimeoutExceptionAndNotInvokeCancel
    has no trio counterpart).
    """
    limiter = TimeLimiter("t", timeout=0.05)
    seen: list[tuple[str, float]] = []

    async def long_work() -> None:
        try:
            await trio.sleep(10.0)
            seen.append(("finished", trio.current_time()))  # pragma: no cover
        except trio.Cancelled:
            seen.append(("cancelled", trio.current_time()))
            raise
        finally:
            seen.append(("finally", trio.current_time()))

    with pytest.raises(CallTimedOut):
        await limiter.call(long_work)
    assert seen == [("cancelled", 0.05), ("finally", 0.05)]
    await trio.sleep(20.0)
    assert seen == [("cancelled", 0.05), ("finally", 0.05)]


async def test_the_callee_s_own_exception_passes_unchanged() -> None:
    """resilience4j TimeLimiterTest.unwrapExecutionException.

    And CoroutineTimeLimiterTest "should execute unsuccessful function".
    """
    limiter = TimeLimiter("t")
    error = RuntimeError("BAM!")

    async def raises() -> None:
        raise error

    with pytest.raises(RuntimeError) as caught:
        await limiter.call(raises)
    assert caught.value is error
    assert counts(limiter) == (0, 1, 0)


async def test_a_zero_timeout_lets_a_call_that_never_waits_succeed() -> None:
    """resilience4j TimeLimiterEventPublisherTest.shouldConsumeOnSuccessEvent."""
    events = Recorder()
    limiter = TimeLimiter("t", timeout=0, events=events, call_events=True)
    assert await limiter.call(answer) == 42
    async with limiter:
        pass
    assert events.wire_names() == ["time_limiter.success"] * 2
    assert counts(limiter) == (2, 0, 0)


async def test_a_zero_timeout_times_out_a_call_at_its_first_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j TimeLimiterEventPublisherTest.shouldConsumeOnTimeoutEvent."""
    events = Recorder()
    limiter = TimeLimiter("t", timeout=0, events=events)
    with pytest.raises(CallTimedOut, match=r"^time limiter 't' timed out the call after 0\.0 s$"):
        await limiter.call(work, 1.0)
    assert trio.current_time() == 0.0
    ran: list[str] = []

    async def checkpoints_once() -> None:
        ran.append("before")
        await trio.lowlevel.checkpoint()
        ran.append("after")  # pragma: no cover

    with pytest.raises(CallTimedOut):
        await limiter.call(checkpoints_once)
    assert ran == ["before"]
    assert events.wire_names() == ["time_limiter.timeout"] * 2


async def test_a_timed_out_stream_emits_nothing(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j FlowTimeLimiterTest "should cancel operation that times out"."""
    limiter = TimeLimiter("t", timeout=0.01)
    started: list[int] = []
    got: list[int] = []

    async def stream() -> AsyncIterator[int]:
        started.append(1)
        for n in range(3):
            await trio.sleep(0.1)
            yield n  # pragma: no cover

    async def collect() -> None:
        async with limiter:
            async for item in stream():
                got.append(item)  # pragma: no cover

    with pytest.raises(CallTimedOut):
        await collect()
    assert got == []
    assert started == [1]
    assert counts(limiter) == (0, 0, 1)


# ---------------------------------------------------------------- cancellation


async def test_an_outer_cancellation_passes_untouched_and_is_not_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j CoroutineTimeLimiterTest "should ignore non-timeout cancellations"."""
    events = Recorder()
    limiter = TimeLimiter("t", timeout=10.0, events=events, call_events=True)
    with trio.move_on_after(1.0) as outer:
        await limiter.call(trio.sleep_forever)
    assert outer.cancelled_caught
    with trio.move_on_after(1.0) as outer:
        async with limiter:
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert trio.current_time() == 2.0
    assert counts(limiter) == (0, 0, 0)
    assert events.events == []


async def test_an_outer_cancellation_at_the_deadline_wins_over_the_timeout(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    events = Recorder()
    limiter = TimeLimiter("t", timeout=1.0, events=events)
    for form in ("call", "async with"):
        with trio.move_on_after(1.0) as outer:
            if form == "call":
                await limiter.call(trio.sleep_forever)
            else:
                async with limiter:
                    await trio.sleep_forever()
        assert outer.cancelled_caught, form
    assert counts(limiter) == (0, 0, 0)
    assert events.events == []
    assert seen == []


async def test_an_outer_cancellation_during_the_callee_s_cleanup_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TimeLimiter("t", timeout=1.0)
    outer = trio.CancelScope()

    async def cleans_up() -> None:
        try:
            await trio.sleep_forever()
        finally:
            # The deadline fired; the caller gives up while cleanup runs.
            with trio.CancelScope(shield=True):
                outer.cancel()
                await trio.sleep(0.5)

    with outer:
        await limiter.call(cleans_up)
    assert outer.cancelled_caught
    assert trio.current_time() == 1.5
    assert counts(limiter) == (0, 0, 0)


async def test_no_deadline_outlives_the_call(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TimeLimiter("t", timeout=1.0)
    assert await limiter.call(work, 0.5) == 42
    assert trio.current_effective_deadline() == math.inf
    async with limiter:
        await trio.sleep(0.5)
    assert trio.current_effective_deadline() == math.inf
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep_forever)
    assert trio.current_effective_deadline() == math.inf
    # Well past every deadline the limiter set: nothing cancels this sleep.
    await trio.sleep(10.0)
    assert trio.current_time() == 12.0


async def test_a_callee_that_swallows_the_cancellation_and_returns_succeeds(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """The block's own outcome counts, as resilience4j's Kotlin TimeLimiter reports it."""
    events = Recorder()
    limiter = TimeLimiter("t", timeout=1.0, events=events, call_events=True)

    async def stubborn() -> str:
        try:
            await trio.sleep(5.0)
        except trio.Cancelled:
            return "partial"
        return "full"  # pragma: no cover

    assert await limiter.call(stubborn) == "partial"
    assert trio.current_time() == 1.0
    assert counts(limiter) == (1, 0, 0)
    assert events.wire_names() == ["time_limiter.success"]
    assert events.events[0].payload["duration"] == 1.0
    assert seen == [({"duration": 1.0}, {"time_limiter": "t", "outcome": "success"})]


async def test_a_callee_that_swallows_the_cancellation_and_raises_fails() -> None:
    limiter = TimeLimiter("t", timeout=0)

    async def converts() -> None:
        try:
            await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            raise KeyError("gave up") from None

    with pytest.raises(KeyError):
        await limiter.call(converts)
    assert counts(limiter) == (0, 1, 0)


async def test_a_callee_that_never_checkpoints_cannot_be_timed_out(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """Cancellation is delivered at checkpoints only: such a call succeeds, however late."""
    limiter = TimeLimiter("t", timeout=1.0)

    async def busy() -> str:
        autojump_clock.jump(5.0)  # five seconds of work without a checkpoint
        return "done"

    assert await limiter.call(busy) == "done"
    assert counts(limiter) == (1, 0, 0)
    assert seen == [({"duration": 5.0}, {"time_limiter": "t", "outcome": "success"})]
    # The deadline did not leak: the next checkpoint is not cancelled.
    await trio.sleep(1.0)


async def test_the_limiter_adds_no_checkpoint_of_its_own() -> None:
    limiter = TimeLimiter("t")
    with trio.testing.assert_no_checkpoints():
        assert await limiter.call(answer) == 42
        async with limiter:
            pass


async def test_keyboard_interrupt_passes_and_is_not_counted() -> None:
    limiter = TimeLimiter("t")

    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await limiter.call(interrupted)
    with pytest.raises(KeyboardInterrupt):
        async with limiter:
            raise KeyboardInterrupt
    assert counts(limiter) == (0, 0, 0)


async def test_a_group_of_the_limiter_s_cancellations_is_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TimeLimiter("t", timeout=1.0)

    async def two_sleepers() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)

    with pytest.raises(CallTimedOut):
        await limiter.call(two_sleepers)
    assert counts(limiter) == (0, 0, 1)


async def test_an_error_beside_the_limiter_s_cancellation_is_the_call_s_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TimeLimiter("t", timeout=1.0)

    async def fails_when_cancelled() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ValueError("cleanup failed")

    async def group() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(fails_when_cancelled)

    with pytest.RaisesGroup(ValueError):
        await limiter.call(group)
    with pytest.RaisesGroup(ValueError):
        async with limiter:
            await group()
    assert counts(limiter) == (0, 2, 0)


# ---------------------------------------------------------------- forms


async def test_async_with_raises_the_timeout_from_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TimeLimiter("t", timeout=1.0)
    after: list[str] = []

    async def late() -> None:
        async with limiter:
            await trio.sleep(2.0)
            after.append("never")  # pragma: no cover

    with pytest.raises(CallTimedOut) as caught:
        await late()
    assert after == []
    assert trio.current_time() == 1.0
    # The limiter's own Cancelled is not shown as the cause.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    with pytest.raises(RuntimeError, match=r"^BAM!$"):
        async with limiter:
            await fails()
    async with limiter as entered:
        assert entered is limiter
    assert counts(limiter) == (1, 1, 1)


async def test_nested_limiters_time_out_the_right_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    outer = TimeLimiter("outer", timeout=1.0)
    inner = TimeLimiter("inner", timeout=5.0)
    with pytest.raises(CallTimedOut) as caught:
        async with outer, inner:
            await trio.sleep_forever()
    assert caught.value.time_limiter == "outer"
    # To the inner limiter, the outer deadline is an outer cancellation.
    assert counts(inner) == (0, 0, 0)
    assert counts(outer) == (0, 0, 1)
    with pytest.raises(CallTimedOut) as caught:
        async with inner, outer:
            await trio.sleep_forever()
    assert caught.value.time_limiter == "outer"
    assert counts(inner) == (0, 1, 0)  # what its block raised: the outer's timeout
    # The same limiter nested in itself: each entry has its own deadline.
    async with outer:
        async with outer:
            await trio.sleep(0.5)
        await trio.sleep(0.4)
    assert counts(outer) == (2, 0, 2)


async def test_concurrent_tasks_share_a_limiter_with_their_own_deadlines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = TimeLimiter("t", timeout=1.0)
    ends: dict[str, object] = {}

    async def task(label: str, start: float, seconds: float) -> None:
        await trio.sleep(start)
        try:
            async with limiter:
                await trio.sleep(seconds)
            ends[label] = trio.current_time()
        except CallTimedOut:
            ends[label] = ("timeout", trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(task, "a", 0.0, 0.5)
        nursery.start_soon(task, "b", 0.25, 2.0)
        nursery.start_soon(task, "c", 0.5, 0.75)
    assert ends == {"a": 0.5, "b": ("timeout", 1.25), "c": 1.25}


async def test_the_decorator_passes_arguments_and_keywords() -> None:
    limiter = TimeLimiter("t")

    @limiter
    async def add(x: int, y: int = 0) -> int:
        """Adds."""
        await trio.lowlevel.checkpoint()
        return x + y

    assert await add(1, y=2) == 3
    assert await add(4) == 4
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    # A partial for keywords, as trio takes them; add() is itself limited,
    # so this is two calls.
    assert await limiter.call(functools.partial(add, 5, y=5)) == 10
    assert counts(limiter) == (4, 0, 0)


def sync_fetch() -> str:
    return "fetched"  # pragma: no cover


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (3, "a time limiter decorates an async function, got 3"),
        (
            sync_fetch,
            "a time limiter decorates an async function, got the plain function "
            "'sync_fetch' (define it with async def)",
        ),
    ],
)
def test_the_decorator_refuses_what_is_not_an_async_function(fn: Any, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        TimeLimiter("t")(fn)


# ---------------------------------------------------------------- events and telemetry


async def test_by_default_only_timeouts_are_published(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = Recorder()
    limiter = TimeLimiter("t", timeout=1.0, events=events)
    await limiter.call(answer)
    with pytest.raises(RuntimeError):
        await limiter.call(fails)
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep_forever)
    assert events.wire_names() == ["time_limiter.timeout"]
    event = events.events[0]
    assert event.type == TimeLimiterEvent.TIMEOUT
    assert event.source == "time_limiter/t"
    assert event.payload == {"time_limiter": "t", "timeout": 1.0, "duration": 1.0}


async def test_call_events_add_success_and_error(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j TimeLimiterEventPublisherTest.shouldConsumeOnErrorEvent.

    And CoroutineTimeLimiterTest "should execute successful function".
    """
    events = Recorder()
    limiter = TimeLimiter("t", timeout=1.0, events=events, call_events=True)
    assert await limiter.call(work, 0.25) == 42
    with pytest.raises(RuntimeError):
        await limiter.call(fails)
    with pytest.raises(CallTimedOut):
        async with limiter:
            await trio.sleep_forever()
    assert [e.type for e in events.events] == [
        TimeLimiterEvent.SUCCESS,
        TimeLimiterEvent.ERROR,
        TimeLimiterEvent.TIMEOUT,
    ]
    success, error, timeout = (e.payload for e in events.events)
    assert success == {"time_limiter": "t", "timeout": 1.0, "duration": 0.25}
    assert error["error_type"] == "RuntimeError"
    assert error["error"] == "BAM!"
    assert "in fails" in str(error["traceback"])
    assert {k: error[k] for k in ("time_limiter", "timeout", "duration")} == {
        "time_limiter": "t",
        "timeout": 1.0,
        "duration": 0.0,
    }
    assert timeout == {"time_limiter": "t", "timeout": 1.0, "duration": 1.0}


async def test_events_reach_a_real_bus(autojump_clock: trio.testing.MockClock) -> None:
    async with EventBus() as bus:
        subscription = bus.subscribe()
        limiter = TimeLimiter("t", timeout=0.5, events=bus)
        with pytest.raises(CallTimedOut):
            await limiter.call(trio.sleep_forever)
        event = subscription.receive_nowait()
    assert event.type == TimeLimiterEvent.TIMEOUT
    assert event.payload == {"time_limiter": "t", "timeout": 0.5, "duration": 0.5}


async def test_a_refusing_publisher_never_affects_a_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = Recorder(refuse=True)
    limiter = TimeLimiter("t", timeout=1.0, events=events, call_events=True)
    assert await limiter.call(answer) == 42
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep_forever)
    assert events.tries == 2
    assert limiter.statistics().events_dropped == 2


async def test_telemetry_of_each_outcome(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    limiter = TimeLimiter("db", timeout=1.0)
    await limiter.call(work, 0.25)

    async def slow_failure() -> None:
        await trio.sleep(0.5)
        raise RuntimeError("BAM!")

    with pytest.raises(RuntimeError):
        async with limiter:
            await slow_failure()
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep_forever)
    with trio.move_on_after(0.5):
        await limiter.call(trio.sleep_forever)  # cancelled from outside: nothing
    assert seen == [
        ({"duration": 0.25}, {"time_limiter": "db", "outcome": "success"}),
        ({"duration": 0.5}, {"time_limiter": "db", "outcome": "error"}),
        ({"duration": 1.0}, {"time_limiter": "db", "outcome": "timeout"}),
    ]


# ---------------------------------------------------------------- with a circuit breaker


async def test_a_timeout_inside_a_breaker_is_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j DecoratorsTest.shouldThrowTimeoutException."""
    breaker = CircuitBreaker("b")
    limiter = TimeLimiter("t", timeout=0.1)
    with pytest.raises(CallTimedOut):
        await breaker.call(limiter.call, work, 1.0)
    assert trio.current_time() == 0.1
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (1, 1)


async def test_a_fallback_for_the_timeout_inside_a_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j DecoratorsTest.decorateCompletionStageWithTimeoutExceptionFallback."""
    breaker = CircuitBreaker("b")
    limiter = TimeLimiter("t", timeout=0.1)

    async def with_fallback() -> str:
        try:
            return str(await breaker.call(limiter.call, work, 1.0))
        except CallTimedOut:
            return "fallback"

    assert await with_fallback() == "fallback"
    assert breaker.statistics().failed_calls == 1


async def test_a_fast_call_inside_a_breaker_is_a_success() -> None:
    """resilience4j DecoratorsTest.decorateSupplierWithThreadPoolBulkhead (limiter in breaker)."""
    breaker = CircuitBreaker("b")
    limiter = TimeLimiter("t")
    assert await breaker.call(limiter.call, answer) == 42
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.successful_calls) == (1, 1)


async def test_timeouts_open_a_breaker_around_the_limiter_but_escaping_cancellations_do_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j #1123 (Kotlin): the timeout must reach the breaker as an ordinary exception."""
    # A deadline outside the breaker: the breaker sees Cancelled, never an
    # outcome, and does not open however often it fires.
    escaping = CircuitBreaker("escaping", sliding_window_size=2, minimum_calls=2)
    for _ in range(4):
        with trio.move_on_after(0.1):
            await escaping.call(trio.sleep_forever)
    assert escaping.state is CircuitState.CLOSED
    assert escaping.statistics().buffered_calls == 0
    # The limiter inside converts its own deadline: two timeouts open it.
    breaker = CircuitBreaker("b", sliding_window_size=2, minimum_calls=2)
    limiter = TimeLimiter("t", timeout=0.1)
    for _ in range(2):
        with pytest.raises(CallTimedOut):
            await breaker.call(limiter.call, trio.sleep_forever)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CallNotPermitted):
        await breaker.call(limiter.call, answer)


async def test_an_outer_cancellation_through_breaker_and_limiter_records_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("b", sliding_window_size=2, minimum_calls=2)
    limiter = TimeLimiter("t", timeout=10.0)
    with trio.move_on_after(1.0) as outer:
        async with breaker, limiter:
            await trio.sleep_forever()
    assert outer.cancelled_caught
    assert breaker.statistics().buffered_calls == 0
    assert counts(limiter) == (0, 0, 0)

"""The five components composed in resilience4j's order (docs/design.md rule 52).

Scenarios from resilience4j's ``DecoratorsTest`` and from what each layer
sees in the aspect order ``Retry(CircuitBreaker(RateLimiter(TimeLimiter(
Bulkhead(call)))))``. All time is ``autojump_clock``'s.
"""

from __future__ import annotations

import functools

import pytest
import trio
import trio.lowlevel
import trio.testing

from trio_smith.events import Event, EventType, caused_by
from trio_smith.resilience import (
    Bulkhead,
    BulkheadFull,
    CallNotPermitted,
    CallTimedOut,
    CircuitBreaker,
    CircuitState,
    Composition,
    RateLimiter,
    RequestNotPermitted,
    Retry,
    TimeLimiter,
    compose,
)

from ..publisher import Recorder


class Callee:
    """An async callee that records when it ran and does what its script says."""

    def __init__(self, *script: object) -> None:
        #: One step per call; the last repeats. An exception is raised, a
        #: float is slept (then "done" is returned), anything else returned.
        self.script = list(script)
        self.starts: list[float] = []

    async def __call__(self) -> object:
        self.starts.append(trio.current_time())
        step = self.script[min(len(self.starts), len(self.script)) - 1]
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, float):
            await trio.sleep(step)
            return "done"
        return step

    @property
    def calls(self) -> int:
        return len(self.starts)


def breaker(**options: object) -> CircuitBreaker:
    settings: dict[str, object] = {"sliding_window_size": 10, "minimum_calls": 10}
    settings.update(options)
    return CircuitBreaker("cb", **settings)  # type: ignore[arg-type]


async def test_a_fast_call_through_all_five_returns_once_and_is_counted_by_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j DecoratorsTest.decorateSupplier: each layer sees one successful call."""
    callee = Callee("Hello world")
    composition = compose(
        retry=Retry("r"),
        circuit_breaker=breaker(),
        rate_limiter=RateLimiter("rl", limit_for_period=10, refresh_period=1.0),
        time_limiter=TimeLimiter("tl"),
        bulkhead=Bulkhead("bh"),
    )
    assert await composition.call(callee) == "Hello world"
    assert callee.calls == 1
    assert composition.circuit_breaker is not None
    cb = composition.circuit_breaker.statistics()
    assert (cb.buffered_calls, cb.successful_calls) == (1, 1)
    assert composition.retry is not None
    assert composition.retry.statistics().successful_calls_without_retry == 1
    assert composition.rate_limiter is not None
    assert composition.rate_limiter.statistics().available_permissions == 9
    assert composition.time_limiter is not None
    assert composition.time_limiter.statistics().successful_calls == 1
    assert composition.bulkhead is not None
    assert composition.bulkhead.statistics().available_concurrent_calls == 25


async def test_each_retry_attempt_is_one_breaker_call() -> None:
    """resilience4j DecoratorsTest.decorateCompletionStagePropagatesContextWithRetryAsync."""
    callee = Callee(ValueError("boom"))
    cb = breaker()
    retry = Retry("r", wait=0.0)
    with pytest.raises(ValueError, match="boom"):
        await compose(retry=retry, circuit_breaker=cb).call(callee)
    assert callee.calls == 3
    stats = cb.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (3, 3)
    assert retry.statistics().failed_calls_with_retry == 1


async def test_retry_retries_a_rejection_of_the_breaker_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j's default: CallNotPermitted is an ordinary exception to Retry."""
    callee = Callee("never")
    cb = breaker()
    cb.force_open()
    retry = Retry("r")
    with pytest.raises(CallNotPermitted) as caught:
        await compose(retry=retry, circuit_breaker=cb).call(callee)
    assert caught.value.breaker == "cb"
    assert trio.current_time() == 1.0  # two waits of 0.5 s
    assert callee.calls == 0
    assert retry.statistics().failed_calls_with_retry == 1
    assert cb.statistics().not_permitted_calls == 3


async def test_retry_told_to_ignore_the_rejection_stops_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The opt-out resilience4j's maintainers advise: ignore CallNotPermitted."""
    cb = breaker()
    cb.force_open()
    retry = Retry("r", ignore_exceptions=(CallNotPermitted,))
    with pytest.raises(CallNotPermitted):
        await compose(retry=retry, circuit_breaker=cb).call(Callee("never"))
    assert trio.current_time() == 0.0
    assert retry.statistics().failed_calls_without_retry == 1
    assert cb.statistics().not_permitted_calls == 1


async def test_a_later_attempt_after_the_open_wait_is_the_trial_call_that_closes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A retry schedule that outlasts OPEN's wait: the third attempt is the half-open trial."""
    callee = Callee(ValueError("boom"), "ok")
    cb = CircuitBreaker(
        "cb",
        sliding_window_size=1,
        minimum_calls=1,
        wait_duration_in_open_state=1.0,
        permitted_calls_in_half_open=1,
    )
    retry = Retry("r", wait=0.6)
    assert await compose(retry=retry, circuit_breaker=cb).call(callee) == "ok"
    assert callee.starts == [0.0, 1.2]  # 0.6 was rejected: the breaker was open until 1.0
    assert trio.current_time() == 1.2
    assert cb.state is CircuitState.CLOSED
    assert retry.statistics().successful_calls_with_retry == 1


async def test_a_breaker_outside_retry_records_one_failure_for_all_attempts() -> None:
    """The other order, nested by hand: one logical operation counts once."""
    callee = Callee(ValueError("boom"))
    cb = breaker()
    retry = Retry("r", wait=0.0)
    with pytest.raises(ValueError, match="boom"):
        await cb.call(functools.partial(retry.call, callee))
    assert callee.calls == 3
    assert cb.statistics().failed_calls == 1


async def test_timeouts_inside_the_breaker_count_as_failures_and_open_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j DecoratorsTest.shouldThrowTimeoutException, and Kotlin #1123's fix."""
    cb = breaker(sliding_window_size=2, minimum_calls=2)
    composition = compose(circuit_breaker=cb, time_limiter=TimeLimiter("tl", timeout=0.1))
    for expected_end in (0.1, 0.2):
        with pytest.raises(CallTimedOut) as caught:
            await composition.call(Callee(1.0))
        assert str(caught.value) == "time limiter 'tl' timed out the call after 0.1 s"
        assert trio.current_time() == pytest.approx(expected_end)
    stats = cb.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (2, 2)
    assert cb.state is CircuitState.OPEN


async def test_retry_outside_a_time_limiter_retries_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j #331: the callee hangs on its first attempt only."""
    callee = Callee(60.0, "ok")
    retry = Retry("r", wait=0.5)
    result = await compose(retry=retry, time_limiter=TimeLimiter("tl", timeout=1.0)).call(callee)
    assert result == "ok"
    assert callee.starts == [0.0, 1.5]


async def test_a_full_bulkhead_inside_a_breaker_is_recorded_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j #1656: BulkheadFull is a failure to the breaker unless ignored."""
    cb = breaker()
    bulkhead = Bulkhead("bh", max_concurrent_calls=1)
    composition = compose(circuit_breaker=cb, bulkhead=bulkhead)
    release = trio.Event()

    async def hold() -> None:
        await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(composition.call, hold)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFull):
            await composition.call(Callee("never"))
        release.set()
    stats = cb.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (2, 1)

    ignoring = compose(
        circuit_breaker=breaker(ignore_exceptions=(BulkheadFull,)),
        bulkhead=Bulkhead("none", max_concurrent_calls=0),
    )
    with pytest.raises(BulkheadFull):
        await ignoring.call(Callee("never"))
    assert ignoring.circuit_breaker is not None
    assert ignoring.circuit_breaker.statistics().buffered_calls == 0


async def test_a_call_the_breaker_rejects_spends_no_rate_limiter_permit() -> None:
    cb = breaker()
    cb.force_open()
    limiter = RateLimiter("rl", limit_for_period=5, refresh_period=60.0)
    with pytest.raises(CallNotPermitted):
        await compose(circuit_breaker=cb, rate_limiter=limiter).call(Callee("never"))
    assert limiter.statistics().available_permissions == 5


async def test_each_attempt_spends_a_permit_and_a_refusal_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RequestNotPermitted is an ordinary failure to the breaker and to Retry."""
    callee = Callee(ValueError("boom"))
    cb = breaker()
    limiter = RateLimiter("rl", limit_for_period=2, refresh_period=60.0, timeout=0.0)
    retry = Retry("r", wait=0.5)
    with pytest.raises(RequestNotPermitted) as caught:
        await compose(retry=retry, circuit_breaker=cb, rate_limiter=limiter).call(callee)
    assert str(caught.value) == "rate limiter 'rl' does not permit further calls"
    assert callee.calls == 2
    assert limiter.statistics().available_permissions == 0
    stats = cb.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (3, 3)


async def test_the_deadline_covers_the_wait_for_a_bulkhead_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The time limiter sits outside the bulkhead: its deadline includes the wait."""
    bulkhead = Bulkhead("bh", max_concurrent_calls=1, max_wait=10.0)
    composition = compose(time_limiter=TimeLimiter("tl", timeout=1.0), bulkhead=bulkhead)
    release = trio.Event()

    async def hold() -> None:
        await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bulkhead.call, hold)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(CallTimedOut):
            await composition.call(Callee("never"))
        assert trio.current_time() == 1.0
        assert bulkhead.statistics().waiting_calls == 0
        release.set()
    assert bulkhead.statistics().available_concurrent_calls == 1


async def test_an_outer_cancellation_passes_every_layer_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The whole stack, cancelled from outside while the callee runs."""
    callee = Callee(60.0)
    cb = breaker()
    retry = Retry("r", wait=0.0)
    limiter = RateLimiter("rl", limit_for_period=5, refresh_period=600.0)
    time_limiter = TimeLimiter("tl", timeout=30.0)
    bulkhead = Bulkhead("bh", max_concurrent_calls=1)
    composition = compose(
        retry=retry,
        circuit_breaker=cb,
        rate_limiter=limiter,
        time_limiter=time_limiter,
        bulkhead=bulkhead,
    )
    with trio.move_on_after(5.0) as scope:
        await composition.call(callee)
    assert scope.cancelled_caught
    assert callee.calls == 1
    assert cb.statistics().buffered_calls == 0
    r = retry.statistics()
    assert (
        r.successful_calls_without_retry,
        r.successful_calls_with_retry,
        r.failed_calls_without_retry,
        r.failed_calls_with_retry,
    ) == (0, 0, 0, 0)
    t = time_limiter.statistics()
    assert (t.successful_calls, t.failed_calls, t.timed_out_calls) == (0, 0, 0)
    assert bulkhead.statistics().available_concurrent_calls == 1
    assert limiter.statistics().available_permissions == 4  # taken before the call


async def test_async_with_enters_every_layer_and_the_breaker_sees_an_inner_refusal(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cb = breaker()
    limiter = RateLimiter("rl", limit_for_period=2, refresh_period=60.0, timeout=0.0)
    bulkhead = Bulkhead("bh", max_concurrent_calls=2)
    composition = compose(
        circuit_breaker=cb,
        rate_limiter=limiter,
        time_limiter=TimeLimiter("tl", timeout=1.0),
        bulkhead=bulkhead,
    )
    async with composition:
        assert bulkhead.statistics().available_concurrent_calls == 1
    with pytest.raises(CallTimedOut):
        async with composition:
            await trio.sleep(5.0)
    assert trio.current_time() == 1.0
    with pytest.raises(RequestNotPermitted):
        async with composition:
            raise AssertionError("the block must not run")  # pragma: no cover
    stats = cb.statistics()
    assert (stats.buffered_calls, stats.successful_calls, stats.failed_calls) == (3, 1, 2)
    assert bulkhead.statistics().available_concurrent_calls == 2


async def test_async_with_nests_in_one_task_and_runs_in_many() -> None:
    bulkhead = Bulkhead("bh", max_concurrent_calls=4)
    composition = compose(bulkhead=bulkhead)
    async with composition, composition:
        assert bulkhead.statistics().available_concurrent_calls == 2
    seen: list[int] = []

    async def user() -> None:
        async with composition:
            await trio.lowlevel.checkpoint()
            seen.append(bulkhead.statistics().available_concurrent_calls)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(user)
    assert len(seen) == 3
    assert min(seen) == 1
    assert bulkhead.statistics().available_concurrent_calls == 4


async def test_async_with_a_retry_is_refused_before_any_layer_is_entered() -> None:
    bulkhead = Bulkhead("bh", max_concurrent_calls=1)
    composition = compose(retry=Retry("r"), bulkhead=bulkhead)
    with pytest.raises(TypeError) as caught:
        async with composition:
            raise AssertionError("the block must not run")  # pragma: no cover
    assert str(caught.value) == (
        "a composition with a Retry cannot guard a block (retry 'r' would have to run it "
        "again): use call() or the decorator"
    )
    assert bulkhead.statistics().available_concurrent_calls == 1


async def test_the_decorator_keeps_the_function_and_passes_keywords(
    autojump_clock: trio.testing.MockClock,
) -> None:
    composition = compose(retry=Retry("r", wait=0.1), time_limiter=TimeLimiter("tl"))
    failures = [ValueError("once")]

    @composition
    async def greet(name: str, *, punctuation: str = "!") -> str:
        """Says hello."""
        if failures:
            raise failures.pop()
        return f"hello {name}{punctuation}"

    assert greet.__name__ == "greet"
    assert greet.__doc__ == "Says hello."
    assert await greet("you", punctuation="?") == "hello you?"
    assert trio.current_time() == pytest.approx(0.1)


def test_the_decorator_refuses_a_plain_function() -> None:
    def plain() -> int:
        return 1

    with pytest.raises(TypeError) as caught:
        compose(bulkhead=Bulkhead())(plain)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "a composition decorates an async function, got the plain function "
        "'test_the_decorator_refuses_a_plain_function.<locals>.plain' (define it with async def)"
    )


def test_compose_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="compose needs") as empty:
        compose()
    assert str(empty.value) == (
        "compose needs at least one of retry, circuit_breaker, rate_limiter, time_limiter, bulkhead"
    )
    with pytest.raises(TypeError) as wrong:
        compose(retry=CircuitBreaker("cb"))  # type: ignore[arg-type]
    assert str(wrong.value).startswith("retry must be a Retry or None, got <")
    with pytest.raises(TypeError) as swapped:
        compose(time_limiter=Bulkhead("bh"))  # type: ignore[arg-type]
    assert str(swapped.value).startswith("time_limiter must be a TimeLimiter or None, got <")


def test_a_composition_shows_its_layers_outermost_first() -> None:
    composition = Composition(
        bulkhead=Bulkhead("bh"), retry=Retry("r"), circuit_breaker=CircuitBreaker("cb")
    )
    assert repr(composition) == "Composition(Retry('r'), CircuitBreaker('cb'), Bulkhead('bh'))"


async def test_every_component_s_events_follow_the_work_being_handled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each component publishes in the causal chain of the event being handled (rule 40)."""
    recorder = Recorder()
    cause = Event.new(EventType("test", "request"), source="test")
    limiter = RateLimiter(
        "rl", limit_for_period=1, refresh_period=60.0, timeout=0.0, events=recorder
    )
    composition = compose(
        retry=Retry("r", wait=0.1, events=recorder),
        circuit_breaker=CircuitBreaker("cb", events=recorder, call_events=True),
        rate_limiter=limiter,
        time_limiter=TimeLimiter("tl", timeout=1.0, events=recorder),
        bulkhead=Bulkhead("bh", max_concurrent_calls=1, events=recorder),
    )
    with caused_by(cause):
        with pytest.raises(RequestNotPermitted):
            await composition.call(Callee(5.0))
        limiter.drain()
        with pytest.raises(BulkheadFull):
            await Bulkhead("full", max_concurrent_calls=0, events=recorder).call(Callee("never"))
    categories = {event.type.category for event in recorder.events}
    assert categories >= {"retry", "circuit_breaker", "rate_limiter", "time_limiter", "bulkhead"}
    assert [e.type.wire for e in recorder.events if e.causation_id != cause.id] == []
    assert {e.correlation_id for e in recorder.events} == {cause.correlation_id}

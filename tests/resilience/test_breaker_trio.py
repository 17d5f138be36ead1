"""The breaker under trio: scenarios T1-T6 (docs/design.md), events, the three call forms.

Everything time-related runs on ``autojump_clock``.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
import trio
import trio.testing

from trio_smith.events import SystemEvent
from trio_smith.resilience import (
    CallNotPermitted,
    CircuitBreaker,
    CircuitBreakerEvent,
    CircuitState,
)

from ..publisher import Recorder


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """The state, read through a call (so mypy does not narrow it between reads)."""
    return breaker.state


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise ValueError("boom")


async def open_breaker(breaker: CircuitBreaker, failures: int) -> None:
    for _ in range(failures):
        with contextlib.suppress(ValueError):
            await breaker.call(boom)


def half_open_breaker(permitted: int) -> CircuitBreaker:
    return CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        wait_duration_in_open_state=1.0,
        permitted_calls_in_half_open=permitted,
    )


async def test_t1_a_cancelled_trial_call_gives_its_permit_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open_breaker(permitted=1)
    await open_breaker(breaker, 1)
    await trio.sleep(1.5)
    entered = trio.Event()

    async def hang() -> None:
        entered.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def a() -> None:
            with scope:
                await breaker.call(hang)

        nursery.start_soon(a)
        await entered.wait()
        assert state_of(breaker) is CircuitState.HALF_OPEN
        with pytest.raises(CallNotPermitted) as rejected:
            await breaker.call(ok)
        assert rejected.value.retry_after is None
        assert breaker.statistics().not_permitted_calls == 1
        scope.cancel()
    stats = breaker.statistics()
    assert stats.buffered_calls == 0
    assert stats.state is CircuitState.HALF_OPEN
    # The permit came back: the next call is admitted and closes the breaker.
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is CircuitState.CLOSED


async def test_t2_a_cancelled_call_is_not_recorded() -> None:
    breaker = CircuitBreaker("b", sliding_window_size=2, minimum_calls=2)
    await open_breaker(breaker, 1)
    with trio.move_on_after(0) as scope:

        async def slow() -> None:
            await trio.sleep_forever()

        await breaker.call(slow)
    assert scope.cancelled_caught
    assert breaker.statistics().buffered_calls == 1
    assert state_of(breaker) is CircuitState.CLOSED
    await open_breaker(breaker, 1)
    assert state_of(breaker) is CircuitState.OPEN


async def test_t3_keyboard_interrupt_is_not_recorded_and_releases_the_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open_breaker(permitted=1)
    await open_breaker(breaker, 1)
    await trio.sleep(1.5)

    async def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await breaker.call(interrupted)
    assert breaker.statistics().buffered_calls == 0
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"  # the permit came back


async def test_t4_an_exception_group_is_classified_as_a_whole() -> None:
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        record_exceptions=(KeyError,),
        ignore_exception=lambda e: isinstance(e, ExceptionGroup),
    )

    async def group() -> None:
        raise ExceptionGroup("many", [KeyError("k")])

    with pytest.raises(ExceptionGroup):
        await breaker.call(group)
    # Ignored as a whole: not recorded, even though it holds a KeyError.
    assert breaker.statistics().buffered_calls == 0
    assert state_of(breaker) is CircuitState.CLOSED


async def test_t4_a_group_of_cancelled_is_a_cancellation() -> None:
    breaker = CircuitBreaker("b", sliding_window_size=1, minimum_calls=1)

    async def nursery_of_sleepers() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)

    with trio.move_on_after(0):
        await breaker.call(nursery_of_sleepers)
    assert breaker.statistics().buffered_calls == 0
    assert state_of(breaker) is CircuitState.CLOSED


async def test_t5_half_open_admits_exactly_the_permitted_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open_breaker(permitted=2)
    await open_breaker(breaker, 1)
    await trio.sleep(1.5)
    reached = 0
    rejected = 0

    async def probe() -> None:
        nonlocal reached
        reached += 1
        await trio.sleep(1)

    async def caller() -> None:
        nonlocal rejected
        try:
            await breaker.call(probe)
        except CallNotPermitted:
            rejected += 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(caller)
    assert (reached, rejected) == (2, 3)


async def test_t6_a_rejected_call_is_a_checkpoint() -> None:
    breaker = CircuitBreaker("b")
    breaker.force_open()
    with trio.testing.assert_checkpoints(), pytest.raises(CallNotPermitted):
        await breaker.call(ok)
    with trio.testing.assert_checkpoints(), pytest.raises(CallNotPermitted):
        async with breaker:
            pass


async def test_t6_a_retry_loop_does_not_starve_other_tasks() -> None:
    breaker = CircuitBreaker("b")
    breaker.force_open()
    sibling_ran = trio.Event()

    async def retry_loop() -> None:
        while not sibling_ran.is_set():
            with contextlib.suppress(CallNotPermitted):
                await breaker.call(ok)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(retry_loop)

        async def sibling() -> None:
            sibling_ran.set()

        nursery.start_soon(sibling)
    assert sibling_ran.is_set()


async def test_the_tripping_call_raises_its_own_error_and_later_calls_are_rejected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "api", sliding_window_size=2, minimum_calls=2, wait_duration_in_open_state=10.0
    )
    await breaker.call(ok)
    with pytest.raises(ValueError, match=r"^boom$"):
        await breaker.call(boom)
    assert state_of(breaker) is CircuitState.OPEN
    await trio.sleep(4)
    with pytest.raises(
        CallNotPermitted, match=r"^circuit breaker 'api' is OPEN and does not permit calls$"
    ) as rejected:
        await breaker.call(ok)
    assert rejected.value.breaker == "api"
    assert rejected.value.state == "OPEN"
    assert rejected.value.retry_after == pytest.approx(6.0)


async def test_async_with_works_nested_and_in_concurrent_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker("b", sliding_window_size=10, minimum_calls=10)

    async def user(delay: float) -> None:
        async with breaker:
            await trio.sleep(delay)
            async with breaker:
                await trio.sleep(delay)

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(user, i / 10)
    with pytest.raises(ValueError, match=r"^inner$"):
        async with breaker:
            raise ValueError("inner")
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (7, 1)


async def test_the_decorator_passes_arguments_and_records() -> None:
    breaker = CircuitBreaker("b", sliding_window_size=3, minimum_calls=3)

    @breaker
    async def add(a: int, b: int = 0) -> int:
        if a < 0:
            raise ValueError("negative")
        return a + b

    assert await add(1, b=2) == 3
    assert await add(4) == 4
    assert add.__name__ == "add"
    with pytest.raises(ValueError, match=r"^negative$"):
        await add(-1)
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (3, 1)
    assert stats.failure_rate == pytest.approx(100 / 3)


async def test_call_takes_partials_for_keywords() -> None:
    breaker = CircuitBreaker("b")

    async def greet(name: str, *, punctuation: str) -> str:
        return name + punctuation

    assert await breaker.call(functools.partial(greet, punctuation="!"), "trio") == "trio!"


async def test_events_on_a_trip_come_in_resilience4j_s_order() -> None:
    sink = Recorder()
    breaker = CircuitBreaker(
        "api", sliding_window_size=2, minimum_calls=2, events=sink, call_events=True
    )
    await breaker.call(ok)
    with pytest.raises(ValueError, match=r"^boom$"):
        await breaker.call(boom)
    with pytest.raises(CallNotPermitted):
        await breaker.call(ok)
    assert sink.wire_names() == [
        str(CircuitBreakerEvent.SUCCESS),
        str(CircuitBreakerEvent.ERROR),
        str(CircuitBreakerEvent.FAILURE_RATE_EXCEEDED),
        str(CircuitBreakerEvent.STATE_TRANSITION),
        str(SystemEvent.CIRCUIT_BREAKER_OPEN),
        str(CircuitBreakerEvent.NOT_PERMITTED),
    ]
    error = sink.events[1]
    assert error.source == "circuit_breaker/api"
    assert error.payload["error_type"] == "ValueError"
    assert error.payload["error"] == "boom"
    transition = sink.events[3]
    assert (transition.payload["from_state"], transition.payload["state"]) == ("CLOSED", "OPEN")
    assert sink.events[2].payload["rate"] == 50.0


async def test_reset_publishes_the_closing_and_the_reset() -> None:
    sink = Recorder()
    breaker = CircuitBreaker("api", events=sink)
    breaker.force_open()
    breaker.reset()
    assert sink.wire_names() == [
        str(CircuitBreakerEvent.STATE_TRANSITION),
        str(SystemEvent.CIRCUIT_BREAKER_OPEN),
        str(CircuitBreakerEvent.STATE_TRANSITION),
        str(SystemEvent.CIRCUIT_BREAKER_CLOSED),
        str(CircuitBreakerEvent.RESET),
    ]


async def test_a_refusing_bus_never_affects_a_call() -> None:
    sink = Recorder(refuse=True)
    breaker = CircuitBreaker("api", events=sink, call_events=True)
    assert await breaker.call(ok) == "ok"
    with pytest.raises(ValueError, match=r"^boom$"):
        await breaker.call(boom)
    assert breaker.statistics().events_dropped == 2
    assert breaker.statistics().buffered_calls == 2


async def test_run_moves_open_to_half_open_at_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open_breaker(permitted=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(breaker.run)
        with pytest.raises(
            RuntimeError, match=r"^circuit breaker 'b' is already running its timers$"
        ):
            await breaker.run()
        await open_breaker(breaker, 1)
        opened = trio.current_time()
        await trio.sleep(0.5)
        assert state_of(breaker) is CircuitState.OPEN
        await trio.sleep(0.6)
        assert state_of(breaker) is CircuitState.HALF_OPEN
        assert breaker.statistics().not_permitted_calls == 0
        assert trio.current_time() - opened == pytest.approx(1.1)
        nursery.cancel_scope.cancel()


async def test_without_run_the_move_is_lazy_and_strictly_after_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = half_open_breaker(permitted=1)
    await open_breaker(breaker, 1)
    await trio.sleep(1.0)
    with pytest.raises(CallNotPermitted):
        await breaker.call(ok)  # exactly at the deadline: still OPEN (S37)
    await trio.sleep(5.0)
    assert state_of(breaker) is CircuitState.OPEN  # nobody called
    assert await breaker.call(ok) == "ok"
    assert state_of(breaker) is CircuitState.CLOSED


def test_bad_arguments_are_refused_with_their_names() -> None:
    with pytest.raises(
        ValueError, match=r"^failure_rate_threshold must be a percentage in \(0, 100\], got 0$"
    ):
        CircuitBreaker(failure_rate_threshold=0)
    with pytest.raises(ValueError, match=r"^name must be a non-empty str, got ''$"):
        CircuitBreaker("")
    with pytest.raises(
        TypeError, match=r"^ignore_exceptions must be a tuple of Exception subclasses, got \(1,\)$"
    ):
        CircuitBreaker(ignore_exceptions=(1,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^record_result must be a callable or None, got 3$"):
        CircuitBreaker(record_result=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^events must have a publish_nowait method, got 'bus'$"):
        CircuitBreaker(events="bus")  # type: ignore[arg-type]

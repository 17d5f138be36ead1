"""The breaker's hot path reads trio's SystemClock directly: it must agree with trio.current_time().

No real sleeping: a long wait in OPEN shows whether the deadline computed on
the hot path (``offset + perf_counter()``) is on trio's clock.
"""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

from trio_smith import _trio_private
from trio_smith.resilience import CircuitBreaker, CircuitState, _breaker

from ..publisher import Recorder


async def fail() -> None:
    raise ValueError("down")


async def succeed() -> int:
    return 1


def test_the_hot_path_reads_the_clock_through_the_one_private_module() -> None:
    # Design rule 32: _trio_private checks the names at import; the breaker
    # holds no private trio name of its own.
    assert vars(_breaker)["system_clock_offset"] is _trio_private.system_clock_offset
    assert not any(name.startswith("_trio") or name == "_RUN_CONTEXT" for name in vars(_breaker))


@pytest.mark.parametrize("bus", [None, Recorder()], ids=["no bus", "a bus of state events"])
async def test_the_hot_path_does_not_call_trio_current_time(
    monkeypatch: pytest.MonkeyPatch, bus: Recorder | None
) -> None:
    # A bus that hears only the state's events keeps the hot path (rule 41).
    breaker = CircuitBreaker("clock", events=bus)
    await breaker.call(succeed)  # builds the machine (it reads the clock once)

    def forbidden() -> float:
        raise AssertionError("trio.current_time() on the hot path")

    monkeypatch.setattr(trio, "current_time", forbidden)
    monkeypatch.setattr(breaker, "_clock", forbidden)
    assert await breaker.call(succeed) == 1
    async with breaker:
        pass


async def test_a_deadline_set_on_the_hot_path_is_on_trio_s_clock() -> None:
    breaker = CircuitBreaker(
        "clock", sliding_window_size=2, minimum_calls=2, wait_duration_in_open_state=1000.0
    )
    await breaker.call(succeed)
    before = trio.current_time()
    with contextlib.suppress(ValueError):
        await breaker.call(fail)  # the tripping call, on the hot path
    after = trio.current_time()
    assert breaker.state is CircuitState.OPEN
    # The deadline is now + 1000 s on trio's clock, the trip between before
    # and after; statistics() reads the clock between earliest and latest.
    earliest = trio.current_time()
    retry_after = breaker.statistics().retry_after
    latest = trio.current_time()
    assert retry_after is not None
    assert earliest + retry_after <= after + 1000.0 + 1e-6
    assert latest + retry_after >= before + 1000.0 - 1.0


async def test_a_deadline_set_in_async_with_is_on_trio_s_clock() -> None:
    breaker = CircuitBreaker(
        "clock", sliding_window_size=1, minimum_calls=1, wait_duration_in_open_state=1000.0
    )
    before = trio.current_time()
    with contextlib.suppress(ValueError):
        async with breaker:
            raise ValueError("down")
    after = trio.current_time()
    # statistics() reads the clock between these two: the deadline it
    # measured from lies between them plus retry_after.
    earliest = trio.current_time()
    retry_after = breaker.statistics().retry_after
    latest = trio.current_time()
    assert retry_after is not None
    assert earliest + retry_after <= after + 1000.0 + 1e-6
    assert latest + retry_after >= before + 1000.0 - 1.0


async def test_a_mock_clock_drives_durations_off_the_hot_path(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "clock",
        sliding_window_size=1,
        minimum_calls=1,
        slow_call_duration_threshold=5.0,
        slow_call_rate_threshold=100.0,
    )

    async def slow() -> None:
        await trio.sleep(6.0)

    await breaker.call(slow)
    # One slow call of one: 100 % slow, the breaker opens (a success can trip it).
    assert breaker.state is CircuitState.OPEN

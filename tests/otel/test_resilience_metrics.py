"""Retries, time limiters, bulkheads and rate limiters, through trio_smith.otel into the SDK.

Real components on ``autojump_clock``, so every duration is exact; each
metric's points are compared whole, by attribute set.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trio_smith import otel
from trio_smith.resilience import (
    Bulkhead,
    BulkheadFull,
    CallTimedOut,
    RateLimiter,
    RequestNotPermitted,
    Retry,
    TimeLimiter,
)

from .helpers import counts, key, sums


class Boom(Exception):
    pass


async def ok() -> str:
    await trio.sleep(0.5)
    return "ok"


async def test_retry_calls_and_their_attempts_by_outcome(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    reader: InMemoryMetricReader,
) -> None:
    retry = Retry("fetch", max_attempts=3, wait=1.0, retry_exceptions=(OSError,))
    flaky = [OSError("once")]

    async def fails_once() -> str:
        if flaky:
            raise flaky.pop()
        return "ok"

    async def fails(error: Exception) -> None:
        raise error

    assert await retry.call(ok) == "ok"
    assert await retry.call(fails_once) == "ok"
    with pytest.raises(Boom):
        await retry.call(fails, Boom("not retried"))
    with pytest.raises(OSError, match="always"):
        await retry.call(fails, OSError("always"))
    with trio.move_on_after(0.5):  # cancelled in its first wait: no outcome
        await retry.call(fails, OSError("cancelled"))

    def fetch(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.retry": "fetch", "trio_smith.retry.outcome": outcome})

    assert counts(reader, "trio_smith.retry.calls") == {
        fetch("successful_without_retry"): 1,
        fetch("successful_with_retry"): 1,
        fetch("failed_without_retry"): 1,
        fetch("failed_with_retry"): 1,
    }
    assert counts(reader, "trio_smith.retry.attempts") == {
        fetch("successful_without_retry"): 1,
        fetch("successful_with_retry"): 2,
        fetch("failed_without_retry"): 1,
        fetch("failed_with_retry"): 3,
    }


async def test_time_limiter_calls_and_durations_by_outcome(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    reader: InMemoryMetricReader,
) -> None:
    limiter = TimeLimiter("slow", timeout=1.0)

    async def raises() -> None:
        await trio.sleep(0.25)
        raise Boom("own error")

    assert await limiter.call(ok) == "ok"
    async with limiter:
        await trio.sleep(0.25)
    with pytest.raises(Boom):
        await limiter.call(raises)
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep, 2)
    with trio.move_on_after(0.5):  # an outer cancellation is no outcome
        await limiter.call(trio.sleep, 2)

    def slow(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.time_limiter": "slow", "trio_smith.time_limiter.outcome": outcome})

    assert counts(reader, "trio_smith.time_limiter.calls") == {
        slow("success"): 2,
        slow("error"): 1,
        slow("timeout"): 1,
    }
    assert counts(reader, "trio_smith.time_limiter.call.duration") == {
        slow("success"): 2,
        slow("error"): 1,
        slow("timeout"): 1,
    }
    assert sums(reader, "trio_smith.time_limiter.call.duration") == {
        slow("success"): 0.75,
        slow("error"): 0.25,
        slow("timeout"): 1.0,
    }


async def test_bulkhead_calls_waits_and_durations(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    reader: InMemoryMetricReader,
) -> None:
    bulkhead = Bulkhead("db", max_concurrent_calls=1, max_wait=0.5)

    async def hold() -> None:  # from 0 to 1.0
        async with bulkhead:
            await trio.sleep(1)

    async def refused() -> None:  # from 0.25, waits 0.5 and is refused
        await trio.sleep(0.25)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(ok)

    async def gives_up() -> None:  # from 0.5, cancelled in line: nothing to report
        await trio.sleep(0.5)
        with trio.move_on_after(0.125):
            await bulkhead.call(ok)

    async def admitted() -> None:  # from 0.75, waits 0.25, runs 0.5
        await trio.sleep(0.75)
        assert await bulkhead.call(ok) == "ok"

    async with trio.open_nursery() as nursery:
        for task in (hold, refused, gives_up, admitted):
            nursery.start_soon(task)

    def db(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.bulkhead": "db", "trio_smith.bulkhead.outcome": outcome})

    assert counts(reader, "trio_smith.bulkhead.calls") == {db("finished"): 2, db("rejected"): 1}
    assert counts(reader, "trio_smith.bulkhead.wait_time") == {db("finished"): 2, db("rejected"): 1}
    assert sums(reader, "trio_smith.bulkhead.wait_time") == {
        db("finished"): 0.25,
        db("rejected"): 0.5,
    }
    # A rejected call never ran: no duration.
    assert counts(reader, "trio_smith.bulkhead.call.duration") == {db("finished"): 2}
    assert sums(reader, "trio_smith.bulkhead.call.duration") == {db("finished"): 1.5}


async def test_rate_limiter_acquisitions_and_the_waits_of_granted_ones(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    reader: InMemoryMetricReader,
) -> None:
    # Built inside trio: one permit a second, cycles from now.
    limiter = RateLimiter("api", limit_for_period=1, refresh_period=1.0, timeout=1.0)
    limiter.acquire_nowait()  # cycle 0's permit, no wait
    await limiter.acquire()  # waits 1.0 s for cycle 1's
    with pytest.raises(RequestNotPermitted):
        limiter.acquire_nowait()  # it would wait 1.0 s: refused
    assert await limiter.call(ok) == "ok"  # waits 1.0 s for cycle 2's

    def api(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.rate_limiter": "api", "trio_smith.rate_limiter.outcome": outcome})

    assert counts(reader, "trio_smith.rate_limiter.acquisitions") == {
        api("permitted"): 3,
        api("rejected"): 1,
    }
    # A refused acquisition waited for nothing: only granted waits are recorded.
    assert counts(reader, "trio_smith.rate_limiter.wait_time") == {api("permitted"): 3}
    assert sums(reader, "trio_smith.rate_limiter.wait_time") == {api("permitted"): 2.0}

"""trio_smith.prometheus: retries, time limiters, bulkheads and rate limiters.

Real components driven on ``autojump_clock``; their figures are read from
``statistics()`` in the snapshot (docs/design.md rule 45) and scraped from
another thread, then compared with every expected sample.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_smith.prometheus import TrioSmithCollector
from trio_smith.resilience import (
    Bulkhead,
    BulkheadFull,
    CallTimedOut,
    RateLimiter,
    RequestNotPermitted,
    Retry,
    TimeLimiter,
)

from .test_collector import Samples, registry_of, scrape

RESILIENCE = (
    "trio_smith_retry_",
    "trio_smith_timelimiter_",
    "trio_smith_bulkhead_",
    "trio_smith_ratelimiter_",
)


def resilience(samples: Samples) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of the four components' families, for an exact comparison."""
    return {key: v for key, v in samples.items() if key[0].startswith(RESILIENCE)}


def calls(family: str, name: str, **kinds: float) -> Samples:
    """The expected samples of a ``{name, kind}`` counter family."""
    return {
        (f"{family}_total", (("kind", kind), ("name", name))): value
        for kind, value in kinds.items()
    }


def gauge(family: str, name: str, value: float) -> Samples:
    return {(family, (("name", name),)): value}


class Boom(Exception):
    pass


async def ok() -> str:
    await trio.sleep(0.5)
    return "ok"


async def drive_retry(retry: Retry) -> None:
    """One call of each kind: the first attempt, a second one, not retried, ran out."""
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


async def test_retry_calls_by_kind_from_statistics(autojump_clock: trio.testing.MockClock) -> None:
    retry = Retry("fetch", max_attempts=3, wait=1.0, retry_exceptions=(OSError,))
    # Counted before the collector exists: the figures are the Retry's own
    # (from its creation), not telemetry counted while the collector runs.
    await drive_retry(retry)
    collector = TrioSmithCollector(retries=[retry])
    registry = registry_of(collector)
    collector.refresh()
    samples = await scrape(registry)
    assert resilience(samples) == calls(
        "trio_smith_retry_calls",
        "fetch",
        successful_without_retry=1,
        successful_with_retry=1,
        failed_without_retry=1,
        failed_with_retry=1,
    )


async def test_a_retry_cancelled_while_it_waits_is_in_no_kind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("fetch", max_attempts=3, wait=10.0)

    async def fails() -> None:
        raise OSError("down")

    collector = TrioSmithCollector(retries=[retry])
    with trio.move_on_after(5):
        await retry.call(fails)
    collector.refresh()
    samples = await scrape(registry_of(collector))
    assert resilience(samples) == calls(
        "trio_smith_retry_calls",
        "fetch",
        successful_without_retry=0,
        successful_with_retry=0,
        failed_without_retry=0,
        failed_with_retry=0,
    )


async def test_time_limiter_calls_by_kind(autojump_clock: trio.testing.MockClock) -> None:
    limiter = TimeLimiter("slow", timeout=1.0)

    async def raises() -> None:
        await trio.sleep(0.25)
        raise Boom("own error")

    collector = TrioSmithCollector(time_limiters=[limiter])
    assert await limiter.call(ok) == "ok"
    async with limiter:
        await trio.sleep(0.5)
    with pytest.raises(Boom):
        await limiter.call(raises)
    with pytest.raises(CallTimedOut):
        await limiter.call(trio.sleep, 2)
    # Cancelled from outside: not the limiter's timeout, in no kind.
    with trio.move_on_after(0.5):
        await limiter.call(trio.sleep, 2)
    collector.refresh()
    samples = await scrape(registry_of(collector))
    assert resilience(samples) == calls(
        "trio_smith_timelimiter_calls", "slow", successful=2, failed=1, timeout=1
    )


async def test_bulkhead_gauges_and_calls_while_calls_wait_and_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("db", max_concurrent_calls=2, max_wait=0.5)
    collector = TrioSmithCollector(bulkheads=[bulkhead])
    registry = registry_of(collector)
    release = trio.Event()
    refused: list[BulkheadFull] = []

    async def hold() -> None:
        async with bulkhead:
            await release.wait()

    async def too_late() -> None:
        try:
            await bulkhead.call(ok)
        except BulkheadFull as error:
            refused.append(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold)
        nursery.start_soon(hold)
        await trio.sleep(0.125)
        nursery.start_soon(too_late)  # waits 0.5 s in line, then is refused
        await trio.sleep(0.25)
        collector.refresh()
        waiting = await scrape(registry)
        await trio.sleep(0.5)
        assert len(refused) == 1
        nursery.start_soon(bulkhead.call, ok)  # admitted when the holders end
        await trio.sleep(0.25)
        release.set()
    bulkhead.change(max_concurrent_calls=5)
    collector.refresh()
    after = await scrape(registry)

    assert resilience(waiting) == {
        **gauge("trio_smith_bulkhead_available_concurrent_calls", "db", 0),
        **gauge("trio_smith_bulkhead_max_allowed_concurrent_calls", "db", 2),
        **gauge("trio_smith_bulkhead_waiting_calls", "db", 1),
        **calls("trio_smith_bulkhead_calls", "db", permitted=2, rejected=0),
    }
    assert resilience(after) == {
        **gauge("trio_smith_bulkhead_available_concurrent_calls", "db", 5),
        **gauge("trio_smith_bulkhead_max_allowed_concurrent_calls", "db", 5),
        **gauge("trio_smith_bulkhead_waiting_calls", "db", 0),
        **calls("trio_smith_bulkhead_calls", "db", permitted=3, rejected=1),
    }


async def test_rate_limiter_gauges_go_negative_while_a_permit_is_reserved(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Built inside trio: its cycles count from now, 2 permits a second.
    limiter = RateLimiter("api", limit_for_period=2, refresh_period=1.0, timeout=1.0)
    collector = TrioSmithCollector(rate_limiters=[limiter])
    registry = registry_of(collector)
    limiter.acquire_nowait()
    limiter.acquire_nowait()
    with pytest.raises(RequestNotPermitted):
        limiter.acquire_nowait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire)  # reserves a permit of the next cycle
        await trio.sleep(0.5)
        collector.refresh()
        waiting = await scrape(registry)
    await trio.sleep(0.5)  # 1.5 s: the second cycle, one permit of it taken
    collector.refresh()
    after = await scrape(registry)

    assert resilience(waiting) == {
        **gauge("trio_smith_ratelimiter_available_permissions", "api", -1),
        **gauge("trio_smith_ratelimiter_waiting_threads", "api", 1),
        **calls("trio_smith_ratelimiter_calls", "api", permitted=2, rejected=1),
    }
    assert resilience(after) == {
        **gauge("trio_smith_ratelimiter_available_permissions", "api", 1),
        **gauge("trio_smith_ratelimiter_waiting_threads", "api", 0),
        **calls("trio_smith_ratelimiter_calls", "api", permitted=3, rejected=1),
    }


async def test_all_four_together_one_series_per_name_and_remove(
    autojump_clock: trio.testing.MockClock,
) -> None:
    first, twin = Retry("r", wait=0), Retry("r", wait=0)
    await first.call(ok)
    limiter = TimeLimiter("t")
    bulkhead = Bulkhead("b", max_concurrent_calls=3)
    rate = RateLimiter("q", limit_for_period=4, refresh_period=1.0)
    collector = TrioSmithCollector(retries=[first])
    collector.add(retries=[twin, first], time_limiters=[limiter], bulkheads=[bulkhead])
    collector.add(rate_limiters=[rate, rate])
    registry = registry_of(collector)
    collector.refresh()
    samples = await scrape(registry)
    # Two watched objects of one name: the first one added is exported.
    assert resilience(samples) == {
        **calls(
            "trio_smith_retry_calls",
            "r",
            successful_without_retry=1,
            successful_with_retry=0,
            failed_without_retry=0,
            failed_with_retry=0,
        ),
        **calls("trio_smith_timelimiter_calls", "t", successful=0, failed=0, timeout=0),
        **gauge("trio_smith_bulkhead_available_concurrent_calls", "b", 3),
        **gauge("trio_smith_bulkhead_max_allowed_concurrent_calls", "b", 3),
        **gauge("trio_smith_bulkhead_waiting_calls", "b", 0),
        **calls("trio_smith_bulkhead_calls", "b", permitted=0, rejected=0),
        **gauge("trio_smith_ratelimiter_available_permissions", "q", 4),
        **gauge("trio_smith_ratelimiter_waiting_threads", "q", 0),
        **calls("trio_smith_ratelimiter_calls", "q", permitted=0, rejected=0),
    }
    collector.remove(
        retries=[first],
        time_limiters=[limiter],
        bulkheads=[bulkhead, Bulkhead("never-added")],
        rate_limiters=[rate],
    )
    collector.refresh()
    samples = await scrape(registry)
    # The twin is still watched: now it is the one exported under "r".
    assert resilience(samples) == calls(
        "trio_smith_retry_calls",
        "r",
        successful_without_retry=0,
        successful_with_retry=0,
        failed_without_retry=0,
        failed_with_retry=0,
    )


async def test_wrong_kinds_are_refused_and_nothing_is_added() -> None:
    retry, bulkhead = Retry("r"), Bulkhead("b")
    collector = TrioSmithCollector()
    with pytest.raises(TypeError) as info:
        collector.add(retries=[retry], rate_limiters=[retry])  # type: ignore[list-item]
    assert str(info.value) == f"rate_limiters must hold RateLimiter objects, got {retry!r}"
    collector.refresh()
    assert resilience(await scrape(registry_of(collector))) == {}

    cases: list[tuple[dict[str, object], str]] = [
        ({"retries": ["r"]}, "retries must hold Retry objects, got 'r'"),
        ({"retries": retry}, f"retries must be an iterable, got {retry!r}"),
        ({"time_limiters": "t"}, "time_limiters must be an iterable, got 't'"),
        ({"time_limiters": [None]}, "time_limiters must hold TimeLimiter objects, got None"),
        ({"bulkheads": b"b"}, "bulkheads must be an iterable, got b'b'"),
        ({"bulkheads": [retry]}, f"bulkheads must hold Bulkhead objects, got {retry!r}"),
        ({"rate_limiters": 3}, "rate_limiters must be an iterable, got 3"),
        (
            {"rate_limiters": [bulkhead]},
            f"rate_limiters must hold RateLimiter objects, got {bulkhead!r}",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(TypeError) as info:
            TrioSmithCollector(**kwargs)  # type: ignore[arg-type]
        assert str(info.value) == message

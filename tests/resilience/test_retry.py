"""Retry under trio: resilience4j's retry scenarios, events, telemetry, cancellation, checks.

The scenarios come from resilience4j's tests (each docstring names the test
method ported); times are exact seconds of ``autojump_clock``, a trio
``MockClock``, so each test checks when every attempt started. The last
test runs the real Retry against the naive loop of
tests/core/test_retry_schedule.py under hypothesis.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith import telemetry
from trio_smith.events import EventBus
from trio_smith.resilience import (
    CallNotPermitted,
    CircuitBreaker,
    CircuitState,
    MaxRetriesExceeded,
    Retry,
    RetryEvent,
    RetryStatistics,
    WaitInterval,
)

from ..core.test_retry_schedule import Plan, Trace, naive_retry, plans, scripts, uniforms_of
from ..publisher import Recorder
from ..telemetry.conftest import Seen

#: A script item: the attempt raises ``ValueError("attempt <n>")``.
FAIL = object()


class Callee:
    """An async callee that plays a script, noting when each attempt started.

    Each item is raised (an exception, or a fresh ValueError for FAIL) or
    returned; the last item repeats. ``duration`` seconds pass in each
    attempt (a sleep, so it is also a checkpoint).
    """

    def __init__(self, *script: object, duration: float = 0.0) -> None:
        self.script = script or ("ok",)
        self.duration = duration
        self.starts: list[float] = []
        self.raised: list[BaseException] = []

    async def __call__(self, *args: object) -> object:
        self.starts.append(trio.current_time())
        item = self.script[min(len(self.starts), len(self.script)) - 1]
        await trio.sleep(self.duration)
        if item is FAIL:
            item = ValueError(f"attempt {len(self.starts)}")
        if isinstance(item, BaseException):
            self.raised.append(item)
            raise item
        return item


def counts(retry: Retry) -> tuple[int, int, int, int]:
    """resilience4j's four counters, in its order: successful without/with, failed without/with."""
    stats = retry.statistics()
    return (
        stats.successful_calls_without_retry,
        stats.successful_calls_with_retry,
        stats.failed_calls_without_retry,
        stats.failed_calls_with_retry,
    )


def exactly(text: str) -> str:
    return f"^{re.escape(text)}$"


def kinds(recorder: Recorder) -> list[str]:
    return recorder.wire_names()


@pytest.fixture
def seen() -> Iterator[Seen]:
    """A telemetry handler on the Retry's two events, detached after the test."""
    recorder = Seen()
    telemetry.attach(
        "test-retry", [("trio_smith", "retry", "retry"), ("trio_smith", "retry", "call")], recorder
    )
    yield recorder
    telemetry.detach("test-retry")


# ---------------------------------------------------------------- successes


async def test_a_first_time_success_is_one_silent_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldNotRetry; CoroutineRetryTest (success)."""
    events = Recorder()
    retry = Retry("r", events=events)
    callee = Callee("Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0]
    assert counts(retry) == (1, 0, 0, 0)
    assert retry.statistics().attempts == 1
    assert events.events == []
    assert trio.current_time() == 0.0


async def test_a_result_the_predicate_refuses_is_returned_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldNotRetryWithResult."""
    retry = Retry("r", max_attempts=2, retry_result=lambda value: "tryAgain" in value)
    callee = Callee("Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0]
    assert counts(retry) == (1, 0, 0, 0)
    assert retry.statistics().attempts == 1


async def test_a_retried_result_that_runs_out_of_attempts_is_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldRetryWithResult."""
    retry = Retry("r", max_attempts=2, retry_result=lambda value: "Hello world" in value)
    callee = Callee("Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0, 0.5]
    assert counts(retry) == (0, 0, 0, 1)
    # resilience4j counts 3 "total calls" here; two attempts ran.
    assert retry.statistics().attempts == 2


async def test_a_failure_then_a_success_returns_the_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldReturnSuccessfullyAfterSecondAttempt.

    Also SupplierRetryTest.testDecorateSupplier.
    """
    retry = Retry("r")
    callee = Callee(FAIL, "Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0, 0.5]
    assert counts(retry) == (0, 1, 0, 0)
    assert retry.statistics().attempts == 2


async def test_each_call_of_a_decorated_function_is_retried_on_its_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.testDecorateSupplierAndInvokeTwice."""
    retry = Retry("r")
    callee = Callee(FAIL, "ok", FAIL, "ok")

    @retry
    async def fetch() -> object:
        return await callee()

    assert await fetch() == "ok"
    assert await fetch() == "ok"
    assert callee.starts == [0.0, 0.5, 0.5, 1.0]
    assert trio.current_time() == 1.0
    assert counts(retry) == (0, 2, 0, 0)
    assert retry.statistics().attempts == 4


async def test_an_error_then_a_retried_result_returns_that_result_when_out_of_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.testDecorateCallableWithRetryResult."""
    retry = Retry("r", max_attempts=2, retry_result=lambda value: "Hello world" in value)
    callee = Callee(FAIL, "Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0, 0.5]
    assert counts(retry) == (0, 0, 0, 1)


# ---------------------------------------------------------------- failures


async def test_three_failures_raise_the_last_error_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterThreeAttempts."""
    retry = Retry("r")
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")) as raised:
        await retry.call(callee)
    assert raised.value is callee.raised[-1]
    assert callee.starts == [0.0, 0.5, 1.0]
    assert trio.current_time() == 1.0
    assert counts(retry) == (0, 0, 0, 1)
    assert retry.statistics().attempts == 3


async def test_attempts_start_after_the_previous_attempt_and_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j's timeline: attempts start at 0, d + w, 2d + 2w (d: each attempt's time)."""
    retry = Retry("r", wait=0.5)
    callee = Callee(FAIL, duration=0.25)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.75, 1.5]
    assert trio.current_time() == 1.75


async def test_one_attempt_never_waits_and_counts_as_failed_with_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterOneAttempt."""
    events = Recorder()
    retry = Retry("r", max_attempts=1, events=events)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 1")):
        await retry.call(callee)
    assert callee.starts == [0.0]
    assert trio.current_time() == 0.0
    assert counts(retry) == (0, 0, 0, 1)
    assert kinds(events) == ["retry.error"]


async def test_an_error_the_predicate_refuses_is_raised_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterOneAttemptAndIgnoreException."""
    events = Recorder()
    retry = Retry("r", retry_exception=lambda error: False, events=events)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 1")):
        await retry.call(callee)
    assert callee.starts == [0.0]
    assert trio.current_time() == 0.0
    assert counts(retry) == (0, 0, 1, 0)
    assert kinds(events) == ["retry.ignored_error"]


async def test_an_error_a_result_and_an_error_raise_the_third_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterThreeAttemptsAndRecoverWithResult."""
    retry = Retry("r", retry_result=lambda value: "Hello world" in value)
    callee = Callee(FAIL, "Hello world", FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.5, 1.0]
    assert counts(retry) == (0, 0, 0, 1)


async def test_an_error_retried_on_a_later_attempt_may_still_be_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j counts a non-retryable error as failed without retry on any attempt."""
    events = Recorder()
    retry = Retry("r", ignore_exceptions=(KeyError,), events=events)
    callee = Callee(FAIL, KeyError("gone"))
    with pytest.raises(KeyError):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.5]
    assert counts(retry) == (0, 0, 1, 0)
    assert kinds(events) == ["retry.retry", "retry.ignored_error"]
    assert events.events[-1].payload["attempts"] == 2


# ---------------------------------------------------------------- waits


async def test_an_exponential_wait_interval_grows_per_failed_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldTakeIntoAccountBackoffFunction."""
    retry = Retry("r", wait=WaitInterval.exponential(0.5, 2.0))
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.5, 1.5]


async def test_a_wait_function_of_the_attempt_number(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j RunnableRetryTest.shouldTakeIntoAccountBackoffFunction (500 ms, then x * x)."""

    def wait(attempt: int, error: Exception | None, result: object) -> float:
        return float(500 ** (2 ** (attempt - 1))) / 1000

    retry = Retry("r", wait=wait)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.5, 250.5]


async def test_a_wait_function_of_the_result_or_the_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldUseBackoffBiFunctionWhenRetryWithResult."""
    asked: list[tuple[int, Exception | None, object]] = []

    def wait(attempt: int, error: Exception | None, result: object) -> float:
        asked.append((attempt, error, result))
        if error is not None:
            return 1.0
        return 0.1 if "100" in str(result) else 0.2

    retry = Retry("r", wait=wait, retry_result=lambda value: "Await" in value)
    callee = Callee("Await 100", "Await 200", "Hello world")
    assert await retry.call(callee) == "Hello world"
    assert callee.starts == [0.0, 0.1, pytest.approx(0.3)]
    assert asked == [(1, None, "Await 100"), (2, None, "Await 200")]


async def test_a_wait_function_gets_the_error_after_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    asked: list[tuple[int, Exception | None, object]] = []

    def wait(attempt: int, error: Exception | None, result: object) -> float:
        asked.append((attempt, error, result))
        return 1.0

    retry = Retry("r", wait=wait)
    callee = Callee(FAIL, "ok")
    assert await retry.call(callee) == "ok"
    assert asked == [(1, callee.raised[0], None)]
    assert callee.starts == [0.0, 1.0]


async def test_a_negative_wait_raises_the_error_after_one_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j CallableTest.shouldPropagateLastExceptionWhenSleepFunctionThrowsException."""
    retry = Retry("r", wait=lambda attempt, error, result: -1)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 1")):
        await retry.call(callee)
    assert callee.starts == [0.0]
    # Counted as failed with retry (resilience4j counts nothing on this path).
    assert counts(retry) == (0, 0, 0, 1)


async def test_waits_zero_then_negative_stop_after_two_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j CallableTest
    .shouldStopRetryingAndEmitProperEventsIfIntervalFunctionReturnsLessThanZero.
    """
    events = Recorder()
    waits = iter([0, -1])
    retry = Retry("r", wait=lambda attempt, error, result: next(waits), events=events)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 2")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.0]
    assert kinds(events) == ["retry.retry", "retry.error"]


async def test_waits_zero_then_one_go_on_to_the_last_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j CallableTest
    .shouldContinueRetryingAndEmitProperEventsIfIntervalFunctionReturnsZeroOrMore.
    """
    events = Recorder()
    waits = iter([0, 1])
    retry = Retry("r", wait=lambda attempt, error, result: next(waits), events=events)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert callee.starts == [0.0, 0.0, 1.0]
    assert kinds(events) == ["retry.retry", "retry.retry", "retry.error"]


async def test_a_negative_wait_after_a_result_ends_as_if_the_attempts_ran_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j fails here (sync) or counts a success (async); the attempts run out instead."""
    events = Recorder()
    retry = Retry(
        "r",
        retry_result=lambda value: True,
        wait=lambda attempt, error, result: -1,
        fail_after_max_attempts=True,
        events=events,
    )
    callee = Callee("busy")
    with pytest.raises(
        MaxRetriesExceeded, match=exactly("retry 'r' has exhausted all attempts (1)")
    ):
        await retry.call(callee)
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 1)
    assert kinds(events) == ["retry.error"]
    lenient = Retry("r", retry_result=lambda value: True, wait=lambda a, e, r: -1)
    assert await lenient.call(callee) == "busy"


async def test_a_zero_wait_is_a_checkpoint() -> None:
    """A callee that fails without a checkpoint still cannot make the loop ignore a cancellation."""
    calls = 0

    async def fails_at_once() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("now")

    retry = Retry("r", wait=0, max_attempts=5)
    with trio.CancelScope() as scope:
        scope.cancel()
        await retry.call(fails_at_once)
    assert scope.cancelled_caught
    assert calls == 1


async def test_a_randomized_wait_interval_draws_from_random(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("r", wait=WaitInterval.randomized(1.0, 0.5), random=lambda: 0.0)
    callee = Callee(FAIL, "ok")
    assert await retry.call(callee) == "ok"
    # max(1, 1000 - 500 + 0 * 1001) ms
    assert callee.starts == [0.0, 0.5]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [(math.nan, ValueError), (math.inf, ValueError), ("1", TypeError), (False, TypeError)],
)
async def test_a_wait_function_that_returns_no_wait_fails_the_call_naming_it(
    autojump_clock: trio.testing.MockClock, answer: object, kind: type[Exception]
) -> None:
    retry = Retry("r", wait=lambda attempt, error, result: answer)  # type: ignore[arg-type,return-value]
    callee = Callee(FAIL)
    text = (
        f"the wait function of retry 'r' returned {answer!r} for attempt 1; it must return "
        "a finite number of seconds >= 0, or a negative number to stop"
    )
    with pytest.raises(kind, match=exactly(text)) as raised:
        await retry.call(callee)
    assert raised.value.__context__ is callee.raised[0]
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 1


# ---------------------------------------------------------------- results running out


async def test_results_running_out_raise_max_retries_exceeded_when_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldThrowMaxRetriesExceededIfConfigured."""
    retry = Retry(
        "test",
        max_attempts=3,
        fail_after_max_attempts=True,
        retry_result=lambda value: value == "retryable response",
    )
    callee = Callee("retryable response")
    with pytest.raises(
        MaxRetriesExceeded, match=exactly("retry 'test' has exhausted all attempts (3)")
    ) as raised:
        await retry.call(callee)
    assert raised.value.retry == "test"
    assert raised.value.attempts == 3
    assert raised.value.last_result == "retryable response"
    assert raised.value.__context__ is None
    assert callee.starts == [0.0, 0.5, 1.0]
    assert counts(retry) == (0, 0, 0, 1)


async def test_errors_running_out_raise_the_error_even_with_fail_after_max_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldNotThrowMaxRetriesExceededIfCompletedExceptionally."""
    retry = Retry("r", fail_after_max_attempts=True)
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(callee)
    assert len(callee.starts) == 3


async def test_the_result_consumer_sees_each_retried_result_before_its_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest.shouldPerformConsumeResultBeforeRetryAttemptOnRetry."""
    consumed: list[tuple[int, object, float]] = []
    retry = Retry(
        "r",
        retry_result=lambda value: True,
        consume_result_before_retry=lambda attempt, result: consumed.append(
            (attempt, result, trio.current_time())
        ),
    )
    callee = Callee("r1", "r2", "r3")
    assert await retry.call(callee) == "r3"
    assert consumed == [(1, "r1", 0.0), (2, "r2", 0.5)]


async def test_a_none_result_is_given_to_the_result_predicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j RunnableRetryTest.shouldTakeIntoAccountRetryOnResult."""
    calls = 0

    results: list[object] = []

    async def work() -> None:
        nonlocal calls
        calls += 1

    def again(value: object) -> bool:
        results.append(value)
        return calls != 2

    retry = Retry("r", retry_result=again)
    await retry.call(work)
    assert results == [None, None]
    assert calls == 2
    assert trio.current_time() == 0.5


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
async def test_max_attempts_is_the_number_of_attempts(
    autojump_clock: trio.testing.MockClock, max_attempts: int
) -> None:
    """resilience4j CompletionStageRetryTest
    .shouldCompleteFutureAfter{One,Two,Three}AttemptsInCaseOfExceptionAtAsyncStage
    and .shouldRetry[Tow]AttemptsInCaseOResultRetryMatchAtSyncStage.
    """
    failing = Callee(FAIL)
    retry = Retry("r", max_attempts=max_attempts)
    with pytest.raises(ValueError, match=exactly(f"attempt {max_attempts}")):
        await retry.call(failing)
    assert len(failing.starts) == max_attempts
    busy = Callee("busy")
    results = Retry("r", max_attempts=max_attempts, retry_result=lambda value: True)
    assert await results.call(busy) == "busy"
    assert len(busy.starts) == max_attempts


@pytest.mark.parametrize(
    ("script", "attempts"),
    [(("ok",), 1), ((FAIL, FAIL, "ok"), 3), ((FAIL,), 5)],
    ids=["success", "fail-fail-success", "five-failures"],
)
async def test_attempts_counts_each_attempt_made(
    autojump_clock: trio.testing.MockClock, script: tuple[object, ...], attempts: int
) -> None:
    """resilience4j RetryMetricsTest (total calls 1, 3, 5 with maxAttempts 5)."""
    retry = Retry("r", max_attempts=5)
    with pytest.raises(ValueError, match=r"^attempt \d$") if script == (FAIL,) else nullcontext():
        await retry.call(Callee(*script))
    assert retry.statistics().attempts == attempts


@pytest.mark.parametrize(
    ("options", "script", "calls", "expected"),
    [
        (dict(), ("ok",), 1, (1, 0, 0, 0)),
        (dict(wait=0.01), (FAIL, "ok"), 2, (0, 1, 0, 0)),
        (dict(max_attempts=6), ("again", "ok"), 2, (0, 1, 0, 0)),
        (dict(), (FAIL,), 3, (0, 0, 0, 1)),
    ],
    ids=["success", "fail-then-success", "result-retry", "always-failing"],
)
async def test_the_four_counters(
    autojump_clock: trio.testing.MockClock,
    options: dict[str, Any],
    script: tuple[object, ...],
    calls: int,
    expected: tuple[int, int, int, int],
) -> None:
    """resilience4j CoroutineRetryTest: its four counters after each kind of call."""
    retry = Retry("r", retry_result=lambda value: value == "again", **options)
    callee = Callee(*script)
    with pytest.raises(ValueError, match=r"^attempt \d$") if script == (FAIL,) else nullcontext():
        await retry.call(callee)
    assert len(callee.starts) == calls
    assert counts(retry) == expected


# ---------------------------------------------------------------- what is retried


class B(Exception):
    pass


class C(B):
    pass


class Rt(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (RuntimeError("x"), True),
        (Rt("x"), False),
        (C("x"), False),
        (B("x"), False),
        (Exception("x"), False),
    ],
    ids=["RuntimeError", "its-ignored-subclass", "ignored-superclass", "ignored", "unlisted"],
)
async def test_ignored_classes_win_over_retried_classes(
    autojump_clock: trio.testing.MockClock, error: Exception, retried: bool
) -> None:
    """resilience4j RetryConfigBuilderTest.shouldUseIgnoreExceptionOverRecordToBuildPredicate."""
    retry = Retry("r", retry_exceptions=(RuntimeError, C), ignore_exceptions=(B, Rt))
    callee = Callee(error, "ok")
    if retried:
        assert await retry.call(callee) == "ok"
    else:
        with pytest.raises(type(error)):
            await retry.call(callee)
    assert len(callee.starts) == (2 if retried else 1)


async def test_the_ignore_predicate_wins_over_the_retry_predicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j RetryConfigBuilderTest.shouldUseBothRecordToBuildPredicate."""
    retry = Retry(
        "r",
        retry_exception=lambda error: str(error) == "test",
        ignore_exception=lambda error: isinstance(error, KeyError),
    )
    assert await retry.call(Callee(ValueError("test"), "ok")) == "ok"
    with pytest.raises(ValueError, match=exactly("other")):
        await retry.call(Callee(ValueError("other"), "ok"))
    with pytest.raises(KeyError):
        await retry.call(Callee(KeyError("test"), "ok"))
    assert counts(retry) == (0, 1, 2, 0)


async def test_an_exception_group_is_classified_as_a_whole(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("r", retry_exceptions=(ValueError,))
    callee = Callee(ExceptionGroup("g", [ValueError("inside")]), "ok")
    with pytest.raises(ExceptionGroup):
        await retry.call(callee)
    assert len(callee.starts) == 1
    assert counts(retry) == (0, 0, 1, 0)


async def test_a_raising_retry_predicate_fails_the_call_with_its_error(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """resilience4j CompletionStageRetryTest
    .shouldCompleteExceptionallyWhenRetryOnExPredicateThrows.
    """

    def predicate(error: Exception) -> bool:
        raise RuntimeError("predicate failed")

    events = Recorder()
    retry = Retry("r", retry_exception=predicate, events=events)
    callee = Callee(FAIL)
    with pytest.raises(RuntimeError, match=exactly("predicate failed")) as raised:
        await retry.call(callee)
    assert raised.value.__context__ is callee.raised[0]
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 1
    assert events.events == []
    assert seen.events == []


async def test_a_raising_result_predicate_fails_the_call_with_its_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("r", retry_result=lambda value: 1 / 0 > 0)
    callee = Callee("ok")
    with pytest.raises(ZeroDivisionError):
        await retry.call(callee)
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 0)


async def test_a_raising_result_consumer_fails_the_call_with_its_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def consume(attempt: int, result: object) -> None:
        raise KeyError("consumer")

    retry = Retry("r", retry_result=lambda value: True, consume_result_before_retry=consume)
    callee = Callee("ok")
    with pytest.raises(KeyError):
        await retry.call(callee)
    assert callee.starts == [0.0]


# ---------------------------------------------------------------- cancellation


async def test_cancelled_during_the_wait_propagates_and_counts_no_call(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """resilience4j SupplierRetryTest.shouldMarkThreadInterruptedWhenInterruptedDuringRetry.

    resilience4j raises the last error; under trio the Cancelled propagates.
    """
    events = Recorder()
    retry = Retry("r", events=events)
    callee = Callee(FAIL)
    with trio.move_on_after(0.25) as scope:
        await retry.call(callee)
    assert scope.cancelled_caught
    assert callee.starts == [0.0]
    assert trio.current_time() == 0.25
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 1
    assert kinds(events) == ["retry.retry"]
    assert [name for name, _, _ in seen.events] == [("trio_smith", "retry", "retry")]


async def test_cancelled_during_the_wait_after_a_result_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SupplierRetryTest
    .shouldThrowCancellationExceptionWhenInterruptedDuringRetryOnResult.
    """
    retry = Retry("r", retry_result=lambda value: True)
    callee = Callee("busy")
    with trio.move_on_after(0.75) as scope:
        await retry.call(callee)
    assert scope.cancelled_caught
    assert callee.starts == [0.0, 0.5]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 2


@pytest.mark.parametrize(
    "retry_result", [None, lambda value: False], ids=["plain", "with-predicate"]
)
async def test_cancelled_during_the_first_attempt_propagates_uncounted(
    autojump_clock: trio.testing.MockClock, retry_result: Any
) -> None:
    retry = Retry("r", retry_result=retry_result)
    callee = Callee("ok", duration=1.0)
    with trio.move_on_after(0.5) as scope:
        await retry.call(callee)
    assert scope.cancelled_caught
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 0


async def test_cancelled_during_a_later_attempt_makes_no_further_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("r")
    callee = Callee(FAIL, duration=1.0)
    with trio.move_on_after(2.0) as scope:
        await retry.call(callee)
    assert scope.cancelled_caught
    # 0-1 fails, waits to 1.5, attempt 2 runs from 1.5 and is cancelled at 2.
    assert callee.starts == [0.0, 1.5]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 1


@pytest.mark.parametrize(
    "error",
    [KeyboardInterrupt(), SystemExit(3), BaseExceptionGroup("g", [KeyboardInterrupt()])],
    ids=repr,
)
async def test_other_base_exceptions_pass_unretried_and_uncounted(
    autojump_clock: trio.testing.MockClock, error: BaseException
) -> None:
    retry = Retry("r")
    callee = Callee(error, "ok")
    with pytest.raises(type(error)) as raised:
        await retry.call(callee)
    assert raised.value is error
    assert callee.starts == [0.0]
    assert counts(retry) == (0, 0, 0, 0)
    assert retry.statistics().attempts == 0


# ---------------------------------------------------------------- with a circuit breaker


async def test_an_open_breaker_inside_is_retried_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j `#1065`: CallNotPermitted is an ordinary error to Retry, retried by default."""
    breaker = CircuitBreaker("b")
    breaker.force_open()
    retry = Retry("r")
    callee = Callee("ok")
    with pytest.raises(CallNotPermitted):
        await retry.call(breaker.call, callee)
    assert trio.current_time() == 1.0
    assert callee.starts == []
    assert counts(retry) == (0, 0, 0, 1)
    assert retry.statistics().attempts == 3
    assert breaker.statistics().not_permitted_calls == 3


async def test_an_open_breaker_inside_stops_the_retry_when_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j `#1065`: the opt-out its maintainers advise, ignoring CallNotPermitted."""
    breaker = CircuitBreaker("b")
    breaker.force_open()
    retry = Retry("r", ignore_exceptions=(CallNotPermitted,))
    with pytest.raises(CallNotPermitted):
        await retry.call(breaker.call, Callee("ok"))
    assert trio.current_time() == 0.0
    assert counts(retry) == (0, 0, 1, 0)
    assert retry.statistics().attempts == 1


async def test_a_later_attempt_becomes_the_breakers_half_open_trial(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The retry schedule outlasts the OPEN wait: the third attempt is the trial call."""
    breaker = CircuitBreaker(
        "b",
        sliding_window_size=1,
        minimum_calls=1,
        wait_duration_in_open_state=1.0,
        permitted_calls_in_half_open=1,
    )
    retry = Retry("r", max_attempts=3, wait=0.6)
    callee = Callee(FAIL, "ok")
    assert await retry.call(breaker.call, callee) == "ok"
    # 0: fails and opens the breaker until 1.0; 0.6: rejected; 1.2: the trial.
    assert callee.starts == [0.0, 1.2]
    assert trio.current_time() == 1.2
    assert breaker.state is CircuitState.CLOSED
    assert counts(retry) == (0, 1, 0, 0)
    assert retry.statistics().attempts == 3


async def test_a_breaker_outside_the_retry_records_one_failure_per_operation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j DecoratorsTest order reversed, as Spring Boot 3's README shows."""
    breaker = CircuitBreaker("b")
    retry = Retry("r")
    callee = Callee(FAIL)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await breaker.call(retry.call, callee)
    assert len(callee.starts) == 3
    stats = breaker.statistics()
    assert (stats.buffered_calls, stats.failed_calls) == (1, 1)


# ---------------------------------------------------------------- events


def payloads(recorder: Recorder) -> list[dict[str, object]]:
    """The payloads, without the tracebacks (their lines change with the code)."""
    return [
        {key: value for key, value in event.payload.items() if key != "traceback"}
        for event in recorder.events
    ]


async def test_events_of_three_failures(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j EventPublisherTest.shouldReturnAfterThreeAttempts."""
    events = Recorder()
    retry = Retry("x", events=events)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(Callee(FAIL))
    assert trio.current_time() == 1.0
    assert kinds(events) == ["retry.retry", "retry.retry", "retry.error"]
    assert {event.source for event in events.events} == {"retry/x"}
    error = {"error_type": "ValueError"}
    assert payloads(events) == [
        {"retry": "x", "attempts": 1, "wait": 0.5, **error, "error": "attempt 1"},
        {"retry": "x", "attempts": 2, "wait": 0.5, **error, "error": "attempt 2"},
        {"retry": "x", "attempts": 3, **error, "error": "attempt 3"},
    ]
    for event in events.events:
        assert isinstance(event.payload["traceback"], str)
        assert event.payload["traceback"].endswith("in __call__")


async def test_events_of_results_running_out(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j EventPublisherTest.asyncShouldReturnAfterThreeAttempts."""
    events = Recorder()
    retry = Retry(
        "x",
        wait=0.001,
        retry_result=lambda value: value == "hello world",
        fail_after_max_attempts=True,
        events=events,
    )
    callee = Callee("hello world")
    with pytest.raises(MaxRetriesExceeded):
        await retry.call(callee)
    assert len(callee.starts) == 3
    assert payloads(events) == [
        {"retry": "x", "attempts": 1, "wait": 0.001},
        {"retry": "x", "attempts": 2, "wait": 0.001},
        {"retry": "x", "attempts": 3},
    ]
    assert kinds(events) == ["retry.retry", "retry.retry", "retry.error"]


async def test_events_of_a_failure_then_a_success(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j EventPublisherTest.shouldReturnAfterTwoAttempts."""
    events = Recorder()
    retry = Retry("x", events=events)
    assert await retry.call(Callee(FAIL, "ok")) == "ok"
    assert trio.current_time() == 0.5
    assert kinds(events) == ["retry.retry", "retry.success"]
    # SUCCESS carries the last error, as resilience4j's does.
    assert payloads(events)[1] == {
        "retry": "x",
        "attempts": 2,
        "error_type": "ValueError",
        "error": "attempt 1",
    }


async def test_events_of_an_ignored_error(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j EventPublisherTest.shouldIgnoreError."""
    events = Recorder()
    retry = Retry("x", retry_exception=lambda error: isinstance(error, OSError), events=events)
    with pytest.raises(ValueError, match=exactly("attempt 1")):
        await retry.call(Callee(FAIL))
    assert trio.current_time() == 0.0
    assert payloads(events) == [
        {"retry": "x", "attempts": 1, "error_type": "ValueError", "error": "attempt 1"}
    ]
    assert kinds(events) == ["retry.ignored_error"]


async def test_events_reach_a_real_bus_in_order(autojump_clock: trio.testing.MockClock) -> None:
    async with EventBus() as bus, bus.subscribe() as subscription:
        retry = Retry("x", events=bus, max_attempts=4)
        assert await retry.call(Callee(FAIL, FAIL, "ok")) == "ok"
        got = []
        while True:
            try:
                got.append(subscription.receive_nowait())
            except trio.WouldBlock:
                break
    assert [event.type for event in got] == [
        RetryEvent.RETRY,
        RetryEvent.RETRY,
        RetryEvent.SUCCESS,
    ]
    assert [event.payload["attempts"] for event in got] == [1, 2, 3]
    assert retry.statistics().events_dropped == 0


async def test_a_refusing_publisher_costs_events_not_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = Recorder(refuse=True)
    retry = Retry("x", events=events)
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(Callee(FAIL))
    assert events.tries == 3
    assert retry.statistics() == RetryStatistics(
        name="x",
        successful_calls_without_retry=0,
        successful_calls_with_retry=0,
        failed_calls_without_retry=0,
        failed_calls_with_retry=1,
        attempts=3,
        events_dropped=3,
    )


def test_the_event_types() -> None:
    assert [
        RetryEvent.RETRY.wire,
        RetryEvent.ERROR.wire,
        RetryEvent.SUCCESS.wire,
        RetryEvent.IGNORED_ERROR.wire,
    ] == ["retry.retry", "retry.error", "retry.success", "retry.ignored_error"]


# ---------------------------------------------------------------- telemetry


def telemetry_of(seen: Seen) -> list[tuple[str, dict[str, float], dict[str, object]]]:
    return [(name[-1], measurements, metadata) for name, measurements, metadata in seen.events]


async def test_telemetry_of_three_failures(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    retry = Retry("db")
    with pytest.raises(ValueError, match=exactly("attempt 3")):
        await retry.call(Callee(FAIL))
    assert telemetry_of(seen) == [
        ("retry", {"attempt": 1, "wait": 0.5}, {"retry": "db"}),
        ("retry", {"attempt": 2, "wait": 0.5}, {"retry": "db"}),
        ("call", {"attempts": 3}, {"retry": "db", "outcome": "failed_with_retry"}),
    ]


@pytest.mark.parametrize(
    ("options", "script", "outcome", "attempts"),
    [
        (dict(), ("ok",), "successful_without_retry", 1),
        (dict(retry_result=lambda value: False), ("ok",), "successful_without_retry", 1),
        (dict(), (FAIL, "ok"), "successful_with_retry", 2),
        (dict(ignore_exceptions=(ValueError,)), (FAIL,), "failed_without_retry", 1),
        (dict(max_attempts=2), (FAIL,), "failed_with_retry", 2),
    ],
    ids=["hot-path", "with-predicate", "with-retry", "ignored", "exhausted"],
)
async def test_telemetry_tells_each_counted_call_once(
    autojump_clock: trio.testing.MockClock,
    seen: Seen,
    options: dict[str, Any],
    script: tuple[object, ...],
    outcome: str,
    attempts: int,
) -> None:
    retry = Retry("db", **options)
    failing = outcome.startswith("failed")
    with pytest.raises(ValueError, match=r"^attempt \d$") if failing else nullcontext():
        await retry.call(Callee(*script))
    calls = seen.named("trio_smith", "retry", "call")
    assert calls == [({"attempts": attempts}, {"retry": "db", "outcome": outcome})]


# ---------------------------------------------------------------- the three forms


async def test_call_passes_positional_arguments() -> None:
    async def add(a: int, b: int) -> int:
        return a + b

    assert await Retry("r").call(add, 1, 2) == 3


async def test_the_decorator_keeps_the_signature_and_passes_keywords(
    autojump_clock: trio.testing.MockClock,
) -> None:
    retry = Retry("r")
    seen_args: list[tuple[int, str]] = []

    async def fetch(key: int, *, mode: str = "fast") -> str:
        """Fetch a key."""
        seen_args.append((key, mode))
        if len(seen_args) == 1:
            raise ValueError("first")
        return f"{key}:{mode}"

    decorated = retry(fetch)
    assert decorated.__name__ == "fetch"
    assert decorated.__doc__ == "Fetch a key."
    assert decorated.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert inspect.signature(decorated) == inspect.signature(fetch)
    assert inspect.iscoroutinefunction(decorated)
    assert await decorated(7, mode="slow") == "7:slow"
    assert seen_args == [(7, "slow"), (7, "slow")]
    assert await decorated(8) == "8:fast"


@pytest.mark.parametrize(
    "retry_result", [None, lambda value: value == "again"], ids=["plain", "results"]
)
async def test_a_decorated_function_counts_and_tells_as_call_does(
    autojump_clock: trio.testing.MockClock, seen: Seen, retry_result: Any
) -> None:
    retry = Retry("r", retry_result=retry_result)
    callee = Callee("ok", FAIL if retry_result is None else "again", "ok")

    @retry
    async def fetch(*, key: int) -> object:
        return await callee(key)

    assert await fetch(key=1) == "ok"
    assert await fetch(key=2) == "ok"
    assert callee.starts == [0.0, 0.0, 0.5]
    assert counts(retry) == (1, 1, 0, 0)
    assert seen.named("trio_smith", "retry", "call") == [
        ({"attempts": 1}, {"retry": "r", "outcome": "successful_without_retry"}),
        ({"attempts": 2}, {"retry": "r", "outcome": "successful_with_retry"}),
    ]


def sync_fetch() -> str:
    return "sync"


async def ticks() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("fn", "text"),
    [
        (3, "a retry decorates an async function, got 3"),
        (
            sync_fetch,
            "a retry decorates an async function, got the plain function 'sync_fetch' "
            "(define it with async def)",
        ),
        (
            ticks,
            "a retry decorates an async function, got the async generator function 'ticks' "
            "(a body with yield makes an async generator, not a coroutine)",
        ),
        (
            functools.partial(sync_fetch),
            "a retry decorates an async function, got functools.partial of the plain "
            "function 'sync_fetch' (define it with async def)",
        ),
    ],
)
def test_the_decorator_refuses_what_is_not_an_async_function(fn: Any, text: str) -> None:
    with pytest.raises(TypeError, match=exactly(text)):
        Retry("r")(fn)


def test_name_repr_and_fresh_statistics() -> None:
    retry = Retry()
    assert retry.name == "retry"
    assert repr(Retry("db", max_attempts=4)) == "<Retry 'db' max_attempts=4>"
    assert retry.statistics() == RetryStatistics(
        name="retry",
        successful_calls_without_retry=0,
        successful_calls_with_retry=0,
        failed_calls_without_retry=0,
        failed_calls_with_retry=0,
        attempts=0,
        events_dropped=0,
    )


# ---------------------------------------------------------------- arguments


WAIT_TEXT = "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got "


@pytest.mark.parametrize(
    ("options", "kind", "text"),
    [
        (dict(name=""), ValueError, "name must be a non-empty str, got ''"),
        (dict(name=1), ValueError, "name must be a non-empty str, got 1"),
        (dict(max_attempts=0), ValueError, "max_attempts must be an int >= 1, got 0"),
        (dict(max_attempts=True), ValueError, "max_attempts must be an int >= 1, got True"),
        (dict(max_attempts=3.0), ValueError, "max_attempts must be an int >= 1, got 3.0"),
        (dict(max_attempts=math.nan), ValueError, "max_attempts must be an int >= 1, got nan"),
        (dict(max_attempts=None), ValueError, "max_attempts must be an int >= 1, got None"),
        (dict(wait=-0.001), ValueError, WAIT_TEXT + "-0.001"),
        (dict(wait=math.nan), ValueError, WAIT_TEXT + "nan"),
        (dict(wait=math.inf), ValueError, WAIT_TEXT + "inf"),
        (dict(wait=-math.inf), ValueError, WAIT_TEXT + "-inf"),
        (dict(wait=True), TypeError, WAIT_TEXT + "True"),
        (dict(wait=None), TypeError, WAIT_TEXT + "None"),
        (dict(wait="0.5"), TypeError, WAIT_TEXT + "'0.5'"),
        (
            dict(retry_exceptions=[ValueError]),
            TypeError,
            "retry_exceptions must be a tuple of Exception subclasses, got [<class 'ValueError'>]",
        ),
        (
            dict(retry_exceptions=(ValueError, 1)),
            TypeError,
            "retry_exceptions must be a tuple of Exception subclasses, got "
            "(<class 'ValueError'>, 1)",
        ),
        (
            dict(ignore_exceptions=(KeyboardInterrupt,)),
            TypeError,
            "ignore_exceptions must be a tuple of Exception subclasses, got "
            "(<class 'KeyboardInterrupt'>,)",
        ),
        (
            dict(ignore_exceptions=None),
            TypeError,
            "ignore_exceptions must be a tuple of Exception subclasses, got None",
        ),
        (
            dict(retry_exception=1),
            TypeError,
            "retry_exception must be a callable or None, got 1",
        ),
        (
            dict(ignore_exception="no"),
            TypeError,
            "ignore_exception must be a callable or None, got 'no'",
        ),
        (dict(retry_result=True), TypeError, "retry_result must be a callable or None, got True"),
        (
            dict(consume_result_before_retry=0),
            TypeError,
            "consume_result_before_retry must be a callable or None, got 0",
        ),
        (dict(random=0.5), TypeError, "random must be a callable or None, got 0.5"),
        (
            dict(fail_after_max_attempts=1),
            TypeError,
            "fail_after_max_attempts must be a bool, got 1",
        ),
        (
            dict(fail_after_max_attempts=None),
            TypeError,
            "fail_after_max_attempts must be a bool, got None",
        ),
        (dict(events=[]), TypeError, "events must have a publish_nowait method, got []"),
    ],
)
def test_each_argument_is_checked_with_a_message_naming_it(
    options: dict[str, Any], kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind, match=exactly(text)):
        Retry(**options)


@pytest.mark.parametrize(
    "wait", [0, 0.0, 0.005, 2, WaitInterval.constant(0.001), lambda a, e, r: 1.0], ids=repr
)
def test_a_wait_of_zero_a_number_an_interval_or_a_function_is_taken(wait: Any) -> None:
    """resilience4j RetryConfigBuilderTest.zeroWaitInterval and waitIntervalOfFiveMillis."""
    Retry("r", wait=wait)


async def test_a_zero_wait_retries_at_once(autojump_clock: trio.testing.MockClock) -> None:
    """resilience4j RetryConfigBuilderTest.zeroWaitInterval."""
    callee = Callee(FAIL, "ok")
    assert await Retry("r", wait=0).call(callee) == "ok"
    assert callee.starts == [0.0, 0.0]


def test_a_single_exception_class_is_taken_for_a_tuple() -> None:
    # As the breaker's record_exceptions: a lone class is a tuple of one.
    Retry("r", retry_exceptions=ValueError, ignore_exceptions=KeyError)  # type: ignore[arg-type]


# ---------------------------------------------------------------- against the naive loop


def retry_of(plan: Plan, events: Recorder) -> Retry:
    """The real Retry for a plan of tests/core/test_retry_schedule.py."""
    wait: Any = plan.wait
    if isinstance(plan.wait, list):
        answers = plan.wait
        wait = lambda attempt, error, result: answers[attempt - 1]  # noqa: E731
    retry_letter, ignore_letter, modulo = plan.retry_letter, plan.ignore_letter, plan.retry_modulo
    return Retry(
        "h",
        max_attempts=plan.max_attempts,
        wait=wait,
        retry_exceptions=plan.retry_exceptions,
        retry_exception=None if retry_letter is None else (lambda e: retry_letter in str(e)),
        ignore_exceptions=plan.ignore_exceptions,
        ignore_exception=None if ignore_letter is None else (lambda e: ignore_letter in str(e)),
        retry_result=None if modulo is None else (lambda value: value % modulo == 0),
        fail_after_max_attempts=plan.fail_after_max_attempts,
        consume_result_before_retry=(lambda attempt, result: None) if plan.consume else None,
        events=events,
        random=uniforms_of(plan),
    )


def expected_event(
    kind: str, attempts: int, wait: float | None, error: Exception | None
) -> tuple[object, ...]:
    return (f"retry.{kind}", attempts, wait, None if error is None else str(error))


def got_event(payload: Mapping[str, object], wire: str) -> tuple[object, ...]:
    return (wire, payload["attempts"], payload.get("wait"), payload.get("error"))


@settings(max_examples=150)
@given(data=st.data())
def test_the_retry_runs_as_the_naive_loop_on_trios_clock(data: st.DataObject) -> None:
    plan = data.draw(plans())
    calls = data.draw(st.lists(scripts(plan), min_size=1, max_size=3))
    events = Recorder()
    retry = retry_of(plan, events)
    model_random = uniforms_of(plan)
    expected_counts = dict.fromkeys(["without", "with", "failed_without", "failed_with"], 0)
    total_attempts = 0

    async def main() -> None:
        nonlocal total_attempts
        for script in calls:
            expected: Trace = naive_retry(plan, script, model_random)
            callee = Callee(*script)
            begin = trio.current_time()
            events.events.clear()
            end: tuple[object, ...]
            try:
                end = ("return", await retry.call(callee))
            except MaxRetriesExceeded as exc:
                end = ("exhausted", exc.last_result, exc.attempts)
            except Exception as exc:
                # The error itself: exceptions compare by identity.
                end = ("raise", exc)
            assert end == expected.end
            assert len(callee.starts) == expected.used
            starts = [begin]
            for wait in expected.waits:
                starts.append(starts[-1] + wait)
            assert callee.starts == pytest.approx(starts, abs=1e-9)
            assert [got_event(event.payload, event.type.wire) for event in events.events] == [
                expected_event(*event) for event in expected.events
            ]
            key = {
                "successful_without_retry": "without",
                "successful_with_retry": "with",
                "failed_without_retry": "failed_without",
                "failed_with_retry": "failed_with",
            }[expected.outcome]
            expected_counts[key] += 1
            total_attempts += expected.used
            stats = retry.statistics()
            assert counts(retry) == tuple(expected_counts.values())
            assert stats.attempts == total_attempts

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

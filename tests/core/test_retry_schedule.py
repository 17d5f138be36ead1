"""Retry's pure schedule: the call table, the checks, and a naive loop under hypothesis.

The reference is resilience4j's retry loop (``RetryImpl.ContextImpl``).
``naive_retry`` below writes that loop out plainly, as one ``while`` over a
script of attempt outcomes, with its own counters; the hypothesis tests run
the same scripts through :class:`RetrySchedule` and require the same
attempts, waits, events, answer and counters. tests/resilience/test_retry.py
runs the real trio Retry against the same loop under ``MockClock``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith import IllegalStateTransition
from trio_smith._core._breaker import WaitInterval
from trio_smith._core._retry import (
    TRANSITIONS,
    RetryAction,
    RetryCall,
    RetryConfig,
    RetryDecision,
    RetryInput,
    RetryOutcome,
    RetryPhase,
    RetrySchedule,
    RetrySignal,
)

ATTEMPTING = RetryPhase.ATTEMPTING
WAITING = RetryPhase.WAITING
DONE = RetryPhase.DONE


class Base(Exception):
    pass


class Sub(Base):
    pass


class Other(Exception):
    pass


#: The classes the generated scripts raise (RuntimeError stands for any other).
KINDS: tuple[type[Exception], ...] = (Base, Sub, Other, RuntimeError)


def schedule(**config: Any) -> RetrySchedule:
    return RetrySchedule(RetryConfig(**config), name="t", random=lambda: 0.5)


def message(pattern: str) -> str:
    return f"^{re.escape(pattern)}$"


# ---------------------------------------------------------------- the call table


def call_in(phase: RetryPhase) -> RetryCall:
    """A call of a schedule that retries everything (waits 1 s), brought to ``phase``."""
    call = schedule(
        wait=1.0, retry_result=lambda value: value == "again", ignore_exceptions=(KeyError,)
    ).start()
    if phase is WAITING:
        call.raised(ValueError("x"))
    elif phase is DONE:
        call.returned("fine")
    assert call.phase is phase
    return call


def look(call: RetryCall) -> tuple[object, ...]:
    counters = call.schedule.counters
    return (
        call.phase,
        call.attempts,
        call.failures,
        call.last_error,
        counters.attempts,
        counters.successful_without_retry,
        counters.successful_with_retry,
        counters.failed_without_retry,
        counters.failed_with_retry,
    )


def feed(call: RetryCall, given: RetryInput, outcome: object) -> RetryDecision | None:
    if given is RetryInput.RAISED:
        assert isinstance(outcome, Exception)
        return call.raised(outcome)
    if given is RetryInput.RETURNED:
        return call.returned(outcome)
    call.waited()
    return None


#: Each input with the outcomes it can carry: one that leads on to WAITING
#: and one that ends the call (an ignored error, an accepted result).
INPUTS = [
    (RetryInput.RAISED, ValueError("retried")),
    (RetryInput.RAISED, KeyError("ignored")),
    (RetryInput.RETURNED, "again"),
    (RetryInput.RETURNED, "fine"),
    (RetryInput.WAITED, None),
]


@pytest.mark.parametrize(("given", "outcome"), INPUTS, ids=repr)
@pytest.mark.parametrize("phase", list(RetryPhase), ids=lambda p: p.value)
def test_every_phase_and_input_pair_follows_the_table(
    phase: RetryPhase, given: RetryInput, outcome: object
) -> None:
    """A pair in TRANSITIONS leads to one of its phases; any other raises and changes nothing."""
    call = call_in(phase)
    before = look(call)
    if (phase, given) not in TRANSITIONS:
        expected = f"retry 't' in state {phase.value} cannot handle {given.value}"
        with pytest.raises(IllegalStateTransition, match=message(expected)):
            feed(call, given, outcome)
        assert look(call) == before
        return
    decision = feed(call, given, outcome)
    assert call.phase in TRANSITIONS[phase, given]
    if decision is not None:
        assert (call.phase is WAITING) == (decision.action is RetryAction.RETRY)


def test_the_table_has_the_three_moves_of_a_call() -> None:
    assert dict(TRANSITIONS) == {
        (ATTEMPTING, RetryInput.RAISED): {WAITING, DONE},
        (ATTEMPTING, RetryInput.RETURNED): {WAITING, DONE},
        (WAITING, RetryInput.WAITED): {ATTEMPTING},
    }


def test_a_done_call_takes_no_further_outcome() -> None:
    call = call_in(DONE)
    with pytest.raises(
        IllegalStateTransition, match=message("retry 't' in state DONE cannot handle RAISED")
    ):
        call.raised(ValueError("late"))
    assert call.attempts == 1


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("options", "kind", "text"),
    [
        (dict(max_attempts=0), ValueError, "max_attempts must be an int >= 1, got 0"),
        (dict(max_attempts=True), ValueError, "max_attempts must be an int >= 1, got True"),
        (dict(max_attempts=2.0), ValueError, "max_attempts must be an int >= 1, got 2.0"),
        (dict(max_attempts="3"), ValueError, "max_attempts must be an int >= 1, got '3'"),
        (
            dict(wait=-0.001),
            ValueError,
            "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, "
            "got -0.001",
        ),
        (
            dict(wait=math.nan),
            ValueError,
            "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got nan",
        ),
        (
            dict(wait=math.inf),
            ValueError,
            "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got inf",
        ),
        (
            dict(wait=True),
            TypeError,
            "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got True",
        ),
        (
            dict(wait="0.5"),
            TypeError,
            "wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got '0.5'",
        ),
        (
            dict(fail_after_max_attempts=1),
            TypeError,
            "fail_after_max_attempts must be a bool, got 1",
        ),
    ],
)
def test_config_refuses_bad_numbers_naming_them(
    options: dict[str, Any], kind: type[Exception], text: str
) -> None:
    with pytest.raises(kind, match=message(text)):
        RetryConfig(**options)


@pytest.mark.parametrize("wait", [0, 0.0, 0.005, 7, WaitInterval.constant(0.5), lambda a, e, r: 1])
def test_config_takes_zero_numbers_intervals_and_functions(wait: Any) -> None:
    assert RetryConfig(wait=wait).wait is wait


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("1", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_a_wait_function_that_answers_no_wait_fails_naming_it(
    answer: object, kind: type[Exception]
) -> None:
    call = schedule(wait=lambda attempt, error, result: answer).start()
    text = (
        f"the wait function of retry 't' returned {answer!r} for attempt 1; it must return "
        "a finite number of seconds >= 0, or a negative number to stop"
    )
    with pytest.raises(kind, match=message(text)):
        call.raised(ValueError("x"))
    # The call is over, its attempt counted, no outcome counted.
    assert look(call) == (DONE, 1, 1, call.last_error, 1, 0, 0, 0, 0)


@pytest.mark.parametrize("answer", [-1, -0.001, -math.inf])
def test_a_negative_wait_stops_after_an_error(answer: float) -> None:
    call = schedule(wait=lambda attempt, error, result: answer).start()
    error = ValueError("x")
    decision = call.raised(error)
    assert decision == RetryDecision(
        action=RetryAction.RAISE,
        attempts=1,
        outcome=RetryOutcome.FAILED_WITH_RETRY,
        signal=RetrySignal.ERROR,
        error=error,
    )


def test_an_integer_wait_is_seconds_as_a_float() -> None:
    decision = schedule(wait=lambda attempt, error, result: 2).start().raised(ValueError())
    assert decision.wait == 2.0
    assert isinstance(decision.wait, float)


def test_a_wait_interval_counts_failed_attempts_and_draws_only_when_randomized() -> None:
    draws: list[float] = []

    def random() -> float:
        draws.append(0.25)
        return 0.25

    exponential = RetrySchedule(
        RetryConfig(wait=WaitInterval.exponential(0.5, 2.0), max_attempts=9),
        name="t",
        random=random,
    )
    assert [exponential.wait(n, None, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert draws == []
    randomized = RetrySchedule(
        RetryConfig(wait=WaitInterval.randomized(1.0, 0.5)), name="t", random=random
    )
    # max(1, 1000 - 500 + 0.25 * 1001) ms
    assert randomized.wait(1, None, None) == 0.75
    assert draws == [0.25]


# ---------------------------------------------------------------- callbacks that raise


def test_a_raising_retry_predicate_ends_the_call_uncounted() -> None:
    """The call is over, its attempt counted, no outcome counted.

    resilience4j CompletionStageRetryTest
    .shouldCompleteExceptionallyWhenRetryOnExPredicateThrows.
    """

    def predicate(error: Exception) -> bool:
        raise RuntimeError("predicate")

    call = schedule(retry_exception=predicate).start()
    with pytest.raises(RuntimeError, match=r"^predicate$"):
        call.raised(ValueError("x"))
    assert look(call) == (DONE, 1, 0, None, 1, 0, 0, 0, 0)


@pytest.mark.parametrize("which", ["retry_result", "consume_result_before_retry", "wait"])
def test_a_raising_result_callback_ends_the_call_uncounted(which: str) -> None:
    def boom(*args: object) -> Any:
        raise KeyError(which)

    options: dict[str, Any] = dict(retry_result=lambda value: True)
    options[which] = boom
    call = schedule(**options).start()
    with pytest.raises(KeyError):
        call.returned("r")
    assert call.phase is DONE
    assert call.schedule.counters.attempts == 1
    assert look(call)[5:] == (0, 0, 0, 0)


# ---------------------------------------------------------------- resilience4j's worked cases


def run_script(sched: RetrySchedule, script: list[object]) -> tuple[list[RetryDecision], int]:
    """Feed a script to one call; returns its decisions and how many attempts it used."""
    call = sched.start()
    decisions = []
    for used, outcome in enumerate(script, 1):
        if isinstance(outcome, Exception):
            decision = call.raised(outcome)
        else:
            decision = call.returned(outcome)
        decisions.append(decision)
        if decision.action is not RetryAction.RETRY:
            return decisions, used
        call.waited()
    raise AssertionError("the script ran out")


def test_fail_result_fail_raises_the_third_error() -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterThreeAttemptsAndRecoverWithResult."""
    sched = schedule(retry_result=lambda value: value == "Hello world")
    third = ValueError("3")
    decisions, used = run_script(sched, [ValueError("1"), "Hello world", third])
    assert used == 3
    assert decisions[-1].action is RetryAction.RAISE
    assert decisions[-1].error is third
    assert [d.wait for d in decisions[:-1]] == [0.5, 0.5]
    # The result's RETRY carries no error.
    assert decisions[1].error is None


def test_max_one_attempt_counts_a_retryable_failure_as_failed_with_retry() -> None:
    """resilience4j SupplierRetryTest.shouldReturnAfterOneAttempt."""
    sched = schedule(max_attempts=1)
    decisions, used = run_script(sched, [ValueError()])
    assert used == 1
    assert decisions[0].outcome is RetryOutcome.FAILED_WITH_RETRY
    assert decisions[0].signal is RetrySignal.ERROR


def test_exhausted_results_count_real_attempts() -> None:
    """resilience4j counts maxAttempts + 1 total calls here; the schedule counts what ran."""
    sched = schedule(max_attempts=3, retry_result=lambda value: True)
    decisions, used = run_script(sched, ["a", "b", "c"])
    assert used == 3
    assert decisions[-1].action is RetryAction.RETURN
    assert decisions[-1].result == "c"
    assert sched.counters.attempts == 3
    assert sched.counters.failed_with_retry == 1


def test_a_negative_wait_after_a_result_ends_as_exhausted() -> None:
    sched = schedule(
        retry_result=lambda value: True,
        fail_after_max_attempts=True,
        wait=lambda attempt, error, result: -1,
    )
    decisions, used = run_script(sched, ["r"])
    assert used == 1
    assert decisions[0].action is RetryAction.EXHAUSTED
    assert decisions[0].result == "r"
    assert decisions[0].attempts == 1


def test_ignore_wins_over_retry_classes() -> None:
    """resilience4j RetryConfigBuilderTest.shouldUseIgnoreExceptionOverRecordToBuildPredicate."""

    class R(RuntimeError):
        pass

    sched = schedule(retry_exceptions=(RuntimeError, Sub), ignore_exceptions=(Base, R))
    assert sched.retryable(RuntimeError("x"))
    assert not sched.retryable(R("x"))
    assert not sched.retryable(Sub("x"))
    assert not sched.retryable(Base("x"))
    assert not sched.retryable(Exception("x"))


def test_ignore_wins_over_the_retry_predicate() -> None:
    """resilience4j RetryConfigBuilderTest.shouldUseBothRecordToBuildPredicate."""
    sched = schedule(retry_exception=lambda error: str(error) == "test", ignore_exceptions=(Base,))
    assert sched.retryable(Other("test"))
    assert not sched.retryable(Other("other"))
    assert not sched.retryable(Base("test"))


# ---------------------------------------------------------------- the naive loop


@dataclass
class Plan:
    """A Retry's configuration, described so that both sides can build it."""

    max_attempts: int
    #: seconds, a WaitInterval, or the wait function's answers by attempt.
    wait: float | WaitInterval | list[float]
    retry_exceptions: tuple[type[Exception], ...] | None
    #: retry_exception: retry errors whose message holds this letter.
    retry_letter: str | None
    ignore_exceptions: tuple[type[Exception], ...]
    #: ignore_exception: ignore errors whose message holds this letter.
    ignore_letter: str | None
    #: retry_result: retry results divisible by this.
    retry_modulo: int | None
    fail_after_max_attempts: bool
    consume: bool
    #: Uniform numbers for a randomized WaitInterval, in turn.
    uniforms: list[float]


@dataclass
class Trace:
    """What a loop did with one script."""

    used: int = 0
    waits: list[float] = field(default_factory=list)
    #: (kind, attempts, wait or None, error or None), in order.
    events: list[tuple[str, int, float | None, Exception | None]] = field(default_factory=list)
    #: ("return", value), ("raise", error), ("exhausted", value, attempts).
    end: tuple[object, ...] = ()
    outcome: str = ""
    consumed: list[tuple[int, object]] = field(default_factory=list)
    wait_calls: list[tuple[int, Exception | None, object]] = field(default_factory=list)


def uniforms_of(plan: Plan) -> Callable[[], float]:
    cycle: Iterator[float] = itertools.cycle(plan.uniforms)
    return lambda: next(cycle)


def naive_retry(plan: Plan, script: list[object], random: Callable[[], float]) -> Trace:
    """resilience4j's loop, written out: attempt, classify, count, wait, again."""
    trace = Trace()
    failures = 0
    last_error: Exception | None = None

    def wait_for(attempt: int, error: Exception | None, result: object) -> float:
        if isinstance(plan.wait, list):
            trace.wait_calls.append((attempt, error, result))
            return plan.wait[attempt - 1]
        if isinstance(plan.wait, WaitInterval):
            u = random() if plan.wait.randomization else 0.0
            return plan.wait.delay(attempt, u)
        return float(plan.wait)

    while True:
        outcome = script[trace.used]
        trace.used += 1
        if isinstance(outcome, Exception):
            error = outcome
            ignored = isinstance(error, plan.ignore_exceptions) or (
                plan.ignore_letter is not None and plan.ignore_letter in str(error)
            )
            by_letter = plan.retry_letter is not None and plan.retry_letter in str(error)
            if plan.retry_exceptions is None and plan.retry_letter is None:
                wanted = True
            elif plan.retry_exceptions is None:
                wanted = by_letter
            else:
                wanted = isinstance(error, plan.retry_exceptions) or by_letter
            if ignored or not wanted:
                trace.events.append(("ignored_error", trace.used, None, error))
                trace.end = ("raise", error)
                trace.outcome = "failed_without_retry"
                return trace
            failures += 1
            last_error = error
            wait = wait_for(failures, error, None) if failures < plan.max_attempts else -1.0
            if wait < 0:
                trace.events.append(("error", trace.used, None, error))
                trace.end = ("raise", error)
                trace.outcome = "failed_with_retry"
                return trace
            trace.events.append(("retry", trace.used, wait, error))
            trace.waits.append(wait)
            continue
        result = outcome
        if plan.retry_modulo is not None and result % plan.retry_modulo == 0:  # type: ignore[operator]
            failures += 1
            wait = -1.0
            if failures < plan.max_attempts:
                if plan.consume:
                    trace.consumed.append((failures, result))
                wait = wait_for(failures, None, result)
            if wait >= 0:
                trace.events.append(("retry", trace.used, wait, None))
                trace.waits.append(wait)
                continue
            trace.events.append(("error", trace.used, None, last_error))
            trace.outcome = "failed_with_retry"
            if plan.fail_after_max_attempts:
                trace.end = ("exhausted", result, trace.used)
            else:
                trace.end = ("return", result)
            return trace
        if failures == 0:
            trace.outcome = "successful_without_retry"
        else:
            trace.events.append(("success", trace.used, None, last_error))
            trace.outcome = "successful_with_retry"
        trace.end = ("return", result)
        return trace


def build(plan: Plan, sink: list[Trace]) -> RetrySchedule:
    """The schedule under test; its callbacks write into the trace ``sink[0]``."""

    def wait_function(attempt: int, error: Exception | None, result: object) -> float:
        sink[0].wait_calls.append((attempt, error, result))
        assert isinstance(plan.wait, list)
        return plan.wait[attempt - 1]

    wait: Any = wait_function if isinstance(plan.wait, list) else plan.wait
    retry_letter, ignore_letter, modulo = plan.retry_letter, plan.ignore_letter, plan.retry_modulo
    config = RetryConfig(
        max_attempts=plan.max_attempts,
        wait=wait,
        retry_exceptions=plan.retry_exceptions,
        retry_exception=None if retry_letter is None else (lambda e: retry_letter in str(e)),
        ignore_exceptions=plan.ignore_exceptions,
        ignore_exception=None if ignore_letter is None else (lambda e: ignore_letter in str(e)),
        retry_result=None if modulo is None else (lambda value: value % modulo == 0),
        fail_after_max_attempts=plan.fail_after_max_attempts,
        consume_result_before_retry=(
            (lambda attempt, result: sink[0].consumed.append((attempt, result)))
            if plan.consume
            else None
        ),
    )
    return RetrySchedule(config, name="t", random=uniforms_of(plan))


def drive(sched: RetrySchedule, script: list[object], trace: Trace) -> None:
    """Run one call of the schedule over ``script`` the way the shell does."""
    call = sched.start()
    while True:
        outcome = script[trace.used]
        trace.used += 1
        if isinstance(outcome, Exception):
            decision = call.raised(outcome)
        else:
            decision = call.returned(outcome)
        assert decision.attempts == trace.used == call.attempts
        if decision.signal is not None:
            wait = decision.wait if decision.signal is RetrySignal.RETRY else None
            trace.events.append((decision.signal.value, decision.attempts, wait, decision.error))
        if decision.action is RetryAction.RETRY:
            assert decision.outcome is None
            assert call.phase is WAITING
            trace.waits.append(decision.wait)
            call.waited()
            continue
        assert call.phase is DONE
        assert decision.outcome is not None
        trace.outcome = decision.outcome.value
        if decision.action is RetryAction.RAISE:
            trace.end = ("raise", decision.error)
        elif decision.action is RetryAction.RETURN:
            trace.end = ("return", decision.result)
        else:
            trace.end = ("exhausted", decision.result, decision.attempts)
        return


CLASS_SETS = st.lists(st.sampled_from(KINDS), max_size=2, unique=True).map(tuple)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    max_attempts = draw(st.integers(1, 5))
    wait_kind = draw(st.sampled_from(["constant", "interval", "function"]))
    wait: float | WaitInterval | list[float]
    if wait_kind == "constant":
        wait = draw(st.sampled_from([0, 0.0, 0.25, 0.5, 1.5]))
    elif wait_kind == "interval":
        wait = WaitInterval(
            initial=draw(st.sampled_from([0.001, 0.1, 0.5])),
            multiplier=draw(st.sampled_from([1.0, 1.5, 2.0])),
            maximum=draw(st.sampled_from([None, 1.0])),
            randomization=draw(st.sampled_from([0.0, 0.5])),
        )
    else:
        wait = draw(
            st.lists(
                st.sampled_from([0.0, 0.125, 1.0, -1.0, -0.001]),
                min_size=max_attempts,
                max_size=max_attempts,
            )
        )
    return Plan(
        max_attempts=max_attempts,
        wait=wait,
        retry_exceptions=draw(st.none() | CLASS_SETS),
        retry_letter=draw(st.sampled_from([None, "r"])),
        ignore_exceptions=draw(CLASS_SETS),
        ignore_letter=draw(st.sampled_from([None, "i"])),
        retry_modulo=draw(st.sampled_from([None, 1, 2, 3])),
        fail_after_max_attempts=draw(st.booleans()),
        consume=draw(st.booleans()),
        uniforms=draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=3)),
    )


@st.composite
def outcomes(draw: st.DrawFn) -> object:
    if draw(st.booleans()):
        return draw(st.integers(0, 6))
    kind = draw(st.sampled_from(KINDS))
    return kind(draw(st.sampled_from(["", "r", "i", "ri"])))


def scripts(plan: Plan) -> st.SearchStrategy[list[object]]:
    """At most ``max_attempts`` attempts can be made: that many outcomes."""
    return st.lists(outcomes(), min_size=plan.max_attempts, max_size=plan.max_attempts)


@given(data=st.data())
def test_the_schedule_decides_as_the_naive_loop(data: st.DataObject) -> None:
    plan = data.draw(plans())
    calls = data.draw(st.lists(scripts(plan), min_size=1, max_size=3))
    sink = [Trace()]
    sched = build(plan, sink)
    expected_counts = dict.fromkeys(
        [outcome.value for outcome in RetryOutcome],
        0,
    )
    expected_attempts = 0
    # The model draws its own uniform numbers from the same cycle.
    model_random = uniforms_of(plan)
    for script in calls:
        expected = naive_retry(plan, script, model_random)
        got = sink[0] = Trace()
        drive(sched, script, got)
        assert got.used == expected.used
        assert got.waits == expected.waits
        assert got.events == expected.events
        assert got.outcome == expected.outcome
        assert got.end == expected.end
        assert got.consumed == expected.consumed
        assert got.wait_calls == expected.wait_calls
        expected_counts[expected.outcome] += 1
        expected_attempts += expected.used
        counters = sched.counters
        assert counters.attempts == expected_attempts
        assert {name: getattr(counters, name) for name in expected_counts} == expected_counts


@given(data=st.data())
def test_a_call_makes_at_most_max_attempts_and_waits_between_them(data: st.DataObject) -> None:
    plan = data.draw(plans())
    script = data.draw(scripts(plan))
    trace = Trace()
    drive(build(plan, [trace]), script, trace)
    assert 1 <= trace.used <= plan.max_attempts
    assert len(trace.waits) == trace.used - 1
    assert all(wait >= 0 for wait in trace.waits)
    # A first-time success is the only silent call.
    assert (trace.events == []) == (trace.outcome == "successful_without_retry")

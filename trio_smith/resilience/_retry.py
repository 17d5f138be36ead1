"""Retry's trio shell: runs the attempts, sleeps the waits, publishes what happened.

Every decision is the schedule's (``trio_smith._core._retry``, one
``RetryCall`` per call); this module makes the attempts, catches what they
raise (``Exception`` only: ``trio.Cancelled`` and every other
``BaseException`` pass through untouched, docs/design.md B4), sleeps with
``trio.sleep`` (so ``MockClock`` drives it and a cancelled wait raises
``Cancelled``), and turns decisions into events and telemetry
(docs/design.md rule 44). "Retry" in docs/resilience.md has the semantics;
rule 48 and B11-B13 the design.

The hot path (no ``retry_result``, the first attempt returns): the await and
one counter; the schedule is not consulted at all.
"""

from __future__ import annotations

import functools
import random as _random
from collections.abc import Awaitable, Callable
from typing import Any, Final, ParamSpec, TypeVar, cast, final

import attrs
import trio

from .. import _telemetry
from .._core._breaker import WaitInterval
from .._core._check import exception_types, non_empty_str, optional_callable
from .._core._retry import (
    RetryAction,
    RetryCall,
    RetryConfig,
    RetryDecision,
    RetrySchedule,
    RetrySignal,
    WaitFunction,
)
from .._emit import Emitter, check_publisher, describe_error
from .._event import Event, EventPublisher, EventType
from .._exceptions import MaxRetriesExceeded
from .._telemetry import RETRY_CALL, RETRY_RETRY
from ._decorate import check_async

__all__ = ["Retry", "RetryEvent", "RetryStatistics"]

P = ParamSpec("P")
T = TypeVar("T")

_RETRY: Final = RetryAction.RETRY
_RETURN: Final = RetryAction.RETURN
_RAISE: Final = RetryAction.RAISE


@final
class RetryEvent:
    """The event types of a Retry, category ``retry`` (resilience4j ``RetryEvent.Type``).

    With ``events=``, a Retry publishes RETRY before each wait (``wait`` in
    its payload) and one event when a call ends: SUCCESS (accepted after
    failed attempts), ERROR (the attempts ran out, or the wait said stop) or
    IGNORED_ERROR (an error that is not retried). A first-time success
    publishes nothing.
    """

    RETRY: Final = EventType("retry", "retry")
    ERROR: Final = EventType("retry", "error")
    SUCCESS: Final = EventType("retry", "success")
    IGNORED_ERROR: Final = EventType("retry", "ignored_error")


_EVENT_TYPES: Final = {signal: getattr(RetryEvent, signal.name) for signal in RetrySignal}


@final
@attrs.frozen(kw_only=True)
class RetryStatistics:
    """A snapshot of a Retry's counts (resilience4j ``Retry.Metrics``).

    Calls that were cancelled (or raised another ``BaseException``), and calls
    ended by an error of a predicate, a wait function or a consumer, are in
    no call count; their finished attempts are in ``attempts``.

    Attributes:
        name: the Retry's name.
        successful_calls_without_retry: calls whose first attempt was accepted.
        successful_calls_with_retry: calls accepted after failed attempts.
        failed_calls_without_retry: calls ended by an error that is not
            retried, on any attempt.
        failed_calls_with_retry: calls whose attempts ran out (errors or
            retried results), or whose wait said stop.
        attempts: attempts made (each returned or raised an ``Exception``);
            resilience4j counts one more for a call that ran out on results.
        events_dropped: events the publisher refused (full, closed, or its
            own error); the first refusal is logged as a warning naming the
            Retry, then the 10th, the 100th...
    """

    name: str
    successful_calls_without_retry: int
    successful_calls_with_retry: int
    failed_calls_without_retry: int
    failed_calls_with_retry: int
    attempts: int
    events_dropped: int


@final
class Retry:
    """Calls an async function again when it fails, with resilience4j's semantics.

    Use it as ``await retry.call(fn, *args)`` or as a decorator (``@retry``);
    there is no ``async with``, since a block cannot be run again. An
    attempt that raises a retryable ``Exception``, or whose result
    ``retry_result`` accepts, is followed by a wait and another attempt,
    up to ``max_attempts`` attempts in all. When they run out on errors,
    the last error itself is raised; on results, the last result is
    returned (or :class:`~trio_smith.resilience.MaxRetriesExceeded` raised,
    with ``fail_after_max_attempts``).

    Every ``Exception`` is retried by default, :class:`CallNotPermitted`
    from a circuit breaker inside included (as in resilience4j); pass
    ``ignore_exceptions=(CallNotPermitted,)`` to stop at an open breaker.
    ``trio.Cancelled``, ``KeyboardInterrupt`` and every other exception that
    is not an ``Exception`` are never retried nor counted: they propagate
    unchanged, from the attempt or from the wait.

    Args:
        name: names the Retry in errors, events and logs.
        max_attempts: attempts in all, the first one included (>= 1).
        wait: the wait before each new attempt: seconds (a finite number
            >= 0; 0 retries at once, after a checkpoint), a
            :class:`WaitInterval` of the number of failed attempts (1 for the
            first wait), or a function ``wait(attempt, error, result)`` of
            that number and the failed attempt's error (None after a
            retried result) or result (None after an error), returning
            seconds; a negative number stops: the call ends as if the
            attempts had run out. A function that returns NaN, +inf or no
            number makes the call fail with ValueError or TypeError.
        retry_exceptions: exception classes that are retried (subclasses
            too); default: every ``Exception`` (unless ``retry_exception``
            alone is given).
        retry_exception: a predicate that also marks retried exceptions
            (or-ed with ``retry_exceptions`` when both are given).
        ignore_exceptions: exception classes never retried; they win over
            both of the above.
        ignore_exception: a predicate that also marks exceptions never retried.
        retry_result: a predicate on a returned value (None included); True
            retries the call.
        fail_after_max_attempts: raise ``MaxRetriesExceeded`` instead of
            returning the last result when the attempts run out on results.
        consume_result_before_retry: ``consume(attempt, result)``, called
            before each retry of a result (to release it, log it...).
        events: where to publish :class:`RetryEvent` events (an
            ``EventBus``, or anything with ``publish_nowait``); None
            publishes nothing.
        random: uniform numbers in [0, 1) for a randomized WaitInterval;
            default ``random.random``.

    Raises:
        ValueError: a number out of range, naming it.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        name: str = "retry",
        *,
        max_attempts: int = 3,
        wait: float | WaitInterval | WaitFunction = 0.5,
        retry_exceptions: tuple[type[Exception], ...] | None = None,
        retry_exception: Callable[[Exception], bool] | None = None,
        ignore_exceptions: tuple[type[Exception], ...] = (),
        ignore_exception: Callable[[Exception], bool] | None = None,
        retry_result: Callable[[Any], bool] | None = None,
        fail_after_max_attempts: bool = False,
        consume_result_before_retry: Callable[[int, Any], None] | None = None,
        events: EventPublisher | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._name = non_empty_str("name", name)
        retry_types = (
            None
            if retry_exceptions is None
            else exception_types("retry_exceptions", retry_exceptions)
        )
        ignore_types = exception_types("ignore_exceptions", ignore_exceptions)
        for label, value in (
            ("retry_exception", retry_exception),
            ("ignore_exception", ignore_exception),
            ("retry_result", retry_result),
            ("consume_result_before_retry", consume_result_before_retry),
            ("random", random),
        ):
            optional_callable(label, value)
        config = RetryConfig(
            max_attempts=max_attempts,
            wait=wait,
            retry_exceptions=retry_types,
            retry_exception=retry_exception,
            ignore_exceptions=ignore_types,
            ignore_exception=ignore_exception,
            retry_result=retry_result,
            fail_after_max_attempts=fail_after_max_attempts,
            consume_result_before_retry=consume_result_before_retry,
        )
        checked = check_publisher(events)
        self._events = checked
        self._emitter = Emitter(checked, f"retry {self._name!r}")
        self._source = f"retry/{self._name}"
        self._schedule = RetrySchedule(
            config, name=self._name, random=random if random is not None else _random.random
        )
        #: No result predicate: a returned value always ends the call, so
        #: call() may take its hot path.
        self._plain = retry_result is None
        #: The hot path's first-time successes (the schedule counts the rest).
        self._first_time = 0

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The Retry's name."""
        return self._name

    def statistics(self) -> RetryStatistics:
        """A snapshot of the call counts and attempts."""
        counters = self._schedule.counters
        first_time = self._first_time
        return RetryStatistics(
            name=self._name,
            successful_calls_without_retry=counters.successful_without_retry + first_time,
            successful_calls_with_retry=counters.successful_with_retry,
            failed_calls_without_retry=counters.failed_without_retry,
            failed_calls_with_retry=counters.failed_with_retry,
            attempts=counters.attempts + first_time,
            events_dropped=self._emitter.dropped,
        )

    def __repr__(self) -> str:
        return f"<Retry {self._name!r} max_attempts={self._schedule.config.max_attempts}>"

    # ------------------------------------------------------------ calls

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)``, again after each retryable failure, and return its result.

        Args:
            fn: an async callable.
            *args: its positional arguments (use ``functools.partial`` for
                keywords, as trio does).

        Returns:
            What the accepted attempt returned, or the last result when the
            attempts ran out on results.

        Raises:
            MaxRetriesExceeded: the attempts ran out on results, with
                ``fail_after_max_attempts``.
            Exception: the last attempt's error, unchanged: not retryable, or
                the attempts ran out, or the wait said stop. Or what a
                predicate, the wait function or the consumer raised.
            trio.Cancelled: the caller was cancelled, during an attempt or a
                wait; no further attempt is made.
        """
        if self._plain:
            try:
                result = await fn(*args)
            except Exception as error:
                # Decided here, inside the handler: a predicate that raises
                # then carries the attempt's error as its __context__.
                retry = self._schedule.start()
                decision = retry.raised(error)
            else:
                self._first_time += 1
                if _telemetry.enabled:
                    self._tell_call("successful_without_retry", 1)
                return result
        else:
            retry = self._schedule.start()
            decision = await self._attempt(retry, fn, args)
        return cast(T, await self._go_on(retry, decision, fn, args))

    async def _attempt(
        self, retry: RetryCall, fn: Callable[..., Awaitable[object]], args: tuple[object, ...]
    ) -> RetryDecision:
        try:
            result = await fn(*args)
        except Exception as error:
            return retry.raised(error)
        return retry.returned(result)

    async def _go_on(
        self,
        retry: RetryCall,
        decision: RetryDecision,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> object:
        """Wait and attempt again while the schedule says so, then end the call."""
        while decision.action is _RETRY:
            self._publish(decision)
            if _telemetry.enabled and _telemetry.attached(RETRY_RETRY):
                _telemetry.execute(
                    RETRY_RETRY,
                    {"attempt": decision.attempts, "wait": decision.wait},
                    {"retry": self._name},
                )
            # Always a checkpoint, a wait of 0 included: a callee that fails
            # without one cannot make the loop starve the scheduler.
            await trio.sleep(decision.wait)
            retry.waited()
            decision = await self._attempt(retry, fn, args)
        self._publish(decision)
        outcome = decision.outcome
        if _telemetry.enabled and outcome is not None:
            self._tell_call(outcome.value, decision.attempts)
        action = decision.action
        if action is _RETURN:
            return decision.result
        if action is _RAISE:
            error = decision.error
            assert error is not None
            raise error
        raise MaxRetriesExceeded(self._name, decision.attempts, decision.result)

    def _publish(self, decision: RetryDecision) -> None:
        signal = decision.signal
        if self._events is None or signal is None:
            return
        payload: dict[str, object] = {"retry": self._name, "attempts": decision.attempts}
        if signal is RetrySignal.RETRY:
            payload["wait"] = decision.wait
        if decision.error is not None:
            payload.update(describe_error(decision.error))
        # A Retry never waits for, nor fails because of, a bus (docs/design.md rule 34).
        self._emitter.publish(Event.new(_EVENT_TYPES[signal], source=self._source, payload=payload))

    def _tell_call(self, outcome: str, attempts: int) -> None:
        """One call's telemetry; callers check ``_telemetry.enabled`` first (rule 44)."""
        if _telemetry.attached(RETRY_CALL):
            _telemetry.execute(
                RETRY_CALL, {"attempts": attempts}, {"retry": self._name, "outcome": outcome}
            )

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so that every call is retried as :meth:`call` retries.

        Args:
            fn: an async function (see :class:`~trio_smith.ChildSpec` for
                what counts as one).

        Returns:
            An async function with the same signature.

        Raises:
            TypeError: ``fn`` is not an async function (a plain function would
                only fail when called, and be retried), naming it.
        """
        check_async(fn, "retry")

        @functools.wraps(fn)
        async def retried(*args: P.args, **kwargs: P.kwargs) -> T:
            if not self._plain:
                return await self.call(functools.partial(fn, *args, **kwargs))
            # call()'s hot path, written out here: one coroutine layer less
            # costs a decorated call as much as retry.call.
            try:
                result = await fn(*args, **kwargs)
            except Exception as error:
                retry = self._schedule.start()
                decision = retry.raised(error)
            else:
                self._first_time += 1
                if _telemetry.enabled:
                    self._tell_call("successful_without_retry", 1)
                return result
            again = functools.partial(fn, *args, **kwargs)
            return cast(T, await self._go_on(retry, decision, again, ()))

        return retried

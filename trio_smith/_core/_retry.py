"""Retry's schedule: resilience4j's retry loop, one call at a time, with time left out.

docs/design.md rule 48 (and B11-B13) is the contract this module implements.

Theory of operation
-------------------

This is resilience4j's ``RetryImpl.ContextImpl`` (the per-call context) as a
plain object. Each call through a Retry gets a fresh :class:`RetryCall`,
which moves along ``TRANSITIONS``::

    ATTEMPTING --RAISED or RETURNED--> WAITING --WAITED--> ATTEMPTING ...
         |
         +--------RAISED or RETURNED--> DONE

Anything else (an outcome while WAITING, anything once DONE) raises
``IllegalStateTransition`` and changes nothing.

An attempt's outcome (:meth:`RetryCall.raised`, :meth:`RetryCall.returned`)
answers with a :class:`RetryDecision`: what to do (retry after ``wait``
seconds, raise the attempt's error, return the result, or raise
``MaxRetriesExceeded``), which counter of :class:`RetryCounters` moved, and
which event to publish. The rules are resilience4j's, with ``n`` the failed
attempts of the call so far (retried errors and retried results share it):

* an error that is not retryable ends the call at once, whatever the attempt:
  failed without retry, IGNORED_ERROR;
* a retryable error makes ``n += 1``; at ``max_attempts`` the call fails with
  it (failed with retry, ERROR), else the wait for ``n`` is computed now, after
  the attempt; a negative wait means "stop" (failed with retry, ERROR);
* a result ``retry_result`` accepts makes ``n += 1`` the same way; when the
  attempts run out (or the wait says stop) the call fails with retry (ERROR)
  and returns that result, or raises ``MaxRetriesExceeded`` with
  ``fail_after_max_attempts``; before each result retry
  ``consume_result_before_retry(n, result)`` runs;
* any other result ends the call: successful without retry when ``n == 0``
  (no event: a first-time success is silent), else successful with retry
  (SUCCESS).

``attempts`` counts the attempts actually made (resilience4j counts one more
for a call that ran out of attempts on results; docs/resilience.md, Retry).
A predicate, a wait function or a consumer that raises ends the call with
its error: the call is DONE, the attempt counted, no outcome counter moved.

The wait is a constant, a ``WaitInterval`` of ``n`` (its random number from
the injected ``random``), or a function ``wait(n, error, result)``; the
function's answer is checked here. Time itself is the shell's: it sleeps.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias, final

import attrs

from .._exceptions import IllegalStateTransition
from ._breaker import WaitInterval
from ._check import int_at_least, is_finite_number, is_number

__all__ = [
    "TRANSITIONS",
    "RetryAction",
    "RetryCall",
    "RetryConfig",
    "RetryCounters",
    "RetryDecision",
    "RetryInput",
    "RetryOutcome",
    "RetryPhase",
    "RetrySchedule",
    "RetrySignal",
    "WaitFunction",
]

#: ``wait(attempt, error, result) -> seconds``: error None after a retried
#: result, result None after a retried error; negative means "stop".
WaitFunction: TypeAlias = Callable[[int, Exception | None, Any], float]


@final
class RetryPhase(enum.Enum):
    """Where one call through a Retry is."""

    #: An attempt is running (or about to).
    ATTEMPTING = "ATTEMPTING"
    #: Sleeping before the next attempt.
    WAITING = "WAITING"
    #: The call has its answer (or a callback of the Retry raised).
    DONE = "DONE"


@final
class RetryInput(enum.Enum):
    """What the shell tells a call's machine."""

    #: The attempt raised an ``Exception``.
    RAISED = "RAISED"
    #: The attempt returned.
    RETURNED = "RETURNED"
    #: The wait before the next attempt is over.
    WAITED = "WAITED"


ATTEMPTING: Final = RetryPhase.ATTEMPTING
WAITING: Final = RetryPhase.WAITING
DONE: Final = RetryPhase.DONE
RAISED: Final = RetryInput.RAISED
RETURNED: Final = RetryInput.RETURNED
WAITED: Final = RetryInput.WAITED

#: The whole lifecycle of a call: each input a phase takes, and the phases it
#: may lead to. Anything missing raises IllegalStateTransition.
TRANSITIONS: Final[Mapping[tuple[RetryPhase, RetryInput], frozenset[RetryPhase]]] = {
    (ATTEMPTING, RAISED): frozenset({WAITING, DONE}),
    (ATTEMPTING, RETURNED): frozenset({WAITING, DONE}),
    (WAITING, WAITED): frozenset({ATTEMPTING}),
}


@final
class RetryAction(enum.Enum):
    """What the shell does after an attempt."""

    #: Sleep ``wait`` seconds, then attempt again.
    RETRY = "retry"
    #: Raise the attempt's error (the last error) itself.
    RAISE = "raise"
    #: Return the attempt's result.
    RETURN = "return"
    #: Raise ``MaxRetriesExceeded`` (results ran out, ``fail_after_max_attempts``).
    EXHAUSTED = "exhausted"


@final
class RetryOutcome(enum.Enum):
    """The counter a finished call moves (resilience4j's metric names)."""

    SUCCESSFUL_WITHOUT_RETRY = "successful_without_retry"
    SUCCESSFUL_WITH_RETRY = "successful_with_retry"
    FAILED_WITHOUT_RETRY = "failed_without_retry"
    FAILED_WITH_RETRY = "failed_with_retry"


@final
class RetrySignal(enum.Enum):
    """The event a decision publishes (resilience4j ``RetryEvent.Type``)."""

    RETRY = "retry"
    ERROR = "error"
    SUCCESS = "success"
    IGNORED_ERROR = "ignored_error"


@final
@attrs.frozen(kw_only=True)
class RetryDecision:
    """What one attempt's outcome means.

    Attributes:
        action: what the shell does now.
        attempts: attempts made in this call so far, this one included.
        wait: RETRY: seconds to sleep (>= 0); else 0.0.
        outcome: the counter moved (None while the call goes on).
        signal: the event to publish, or None (a first-time success).
        error: the error to raise (RAISE) or to describe in the event: the
            attempt's error, or for SUCCESS and a result's ERROR the call's
            last retried error; None if there is none.
        result: RETURN and EXHAUSTED: the attempt's result.
    """

    action: RetryAction
    attempts: int
    wait: float = 0.0
    outcome: RetryOutcome | None = None
    signal: RetrySignal | None = None
    error: Exception | None = None
    result: Any = None


# ---------------------------------------------------------------- configuration


def _check_wait(value: object) -> None:
    if isinstance(value, WaitInterval):
        return
    if is_number(value):
        if is_finite_number(value) and value >= 0:  # type: ignore[operator]
            return
        kind: type[Exception] = ValueError
    elif callable(value):
        return
    else:
        kind = TypeError
    raise kind(
        f"wait must be a finite number of seconds >= 0, a WaitInterval or a callable, got {value!r}"
    )


@final
@attrs.frozen(kw_only=True)
class RetryConfig:
    """The numbers and rules of a Retry (resilience4j ``RetryConfig``), checked.

    The shell's ``Retry`` documents each field and checks the exception
    classes and callables; this checks the numbers and the flag.

    Raises:
        ValueError: ``max_attempts`` is not an int >= 1; ``wait`` is a
            number that is negative, NaN or infinite.
        TypeError: ``wait`` is neither a number, a WaitInterval nor a
            callable; ``fail_after_max_attempts`` is not a bool.
    """

    max_attempts: int = 3
    wait: float | WaitInterval | WaitFunction = 0.5
    retry_exceptions: tuple[type[Exception], ...] | None = None
    retry_exception: Callable[[Exception], bool] | None = None
    ignore_exceptions: tuple[type[Exception], ...] = ()
    ignore_exception: Callable[[Exception], bool] | None = None
    retry_result: Callable[[Any], bool] | None = None
    fail_after_max_attempts: bool = False
    consume_result_before_retry: Callable[[int, Any], None] | None = None

    def __attrs_post_init__(self) -> None:
        int_at_least("max_attempts", self.max_attempts, 1)
        _check_wait(self.wait)
        flag: object = self.fail_after_max_attempts
        if not isinstance(flag, bool):
            raise TypeError(f"fail_after_max_attempts must be a bool, got {flag!r}")


# ---------------------------------------------------------------- the machine


@final
class RetryCounters:
    """The counts of one Retry's calls, as the schedule moves them.

    The shell's hot path counts its first-time successes itself (one
    increment); ``RetryStatistics`` adds them to these.
    """

    __slots__ = (
        "attempts",
        "failed_with_retry",
        "failed_without_retry",
        "successful_with_retry",
        "successful_without_retry",
    )

    def __init__(self) -> None:
        #: Attempts that returned or raised an Exception.
        self.attempts = 0
        self.successful_without_retry = 0
        self.successful_with_retry = 0
        self.failed_without_retry = 0
        self.failed_with_retry = 0

    def count(self, outcome: RetryOutcome) -> None:
        """One more call with this outcome."""
        if outcome is RetryOutcome.SUCCESSFUL_WITHOUT_RETRY:
            self.successful_without_retry += 1
        elif outcome is RetryOutcome.SUCCESSFUL_WITH_RETRY:
            self.successful_with_retry += 1
        elif outcome is RetryOutcome.FAILED_WITHOUT_RETRY:
            self.failed_without_retry += 1
        else:
            self.failed_with_retry += 1


@final
class RetrySchedule:
    """One Retry's rules and counters; it starts a :class:`RetryCall` per call.

    Args:
        config: the checked configuration.
        name: the Retry's name, for errors.
        random: uniform numbers in [0, 1), for a randomized WaitInterval.
    """

    __slots__ = (
        "_constant",
        "_function",
        "_interval",
        "_random",
        "config",
        "counters",
        "name",
    )

    def __init__(self, config: RetryConfig, *, name: str, random: Callable[[], float]) -> None:
        self.config = config
        self.name = name
        self._random = random
        self.counters = RetryCounters()
        wait = config.wait
        self._constant: float | None = None
        self._interval: WaitInterval | None = None
        self._function: WaitFunction | None = None
        if isinstance(wait, WaitInterval):
            self._interval = wait
        elif is_number(wait):
            self._constant = float(wait)  # type: ignore[arg-type]
        else:
            self._function = wait  # type: ignore[assignment]

    def start(self) -> RetryCall:
        """A new call, ready for its first attempt."""
        return RetryCall(self)

    def retryable(self, error: Exception) -> bool:
        """resilience4j's exception predicate: (classes or predicate, or all) and not ignored.

        Classes match subclasses; an ignored class or ``ignore_exception``
        wins over both ``retry_exceptions`` and ``retry_exception``.
        """
        config = self.config
        ignore = config.ignore_exception
        if isinstance(error, config.ignore_exceptions) or (ignore is not None and ignore(error)):
            return False
        types = config.retry_exceptions
        predicate = config.retry_exception
        if types is None:
            return bool(predicate(error)) if predicate is not None else True
        return isinstance(error, types) or (predicate is not None and bool(predicate(error)))

    def wait(self, attempt: int, error: Exception | None, result: object) -> float:
        """Seconds to wait after the ``attempt``-th failed attempt (1 for the first wait).

        Negative means "stop".

        Raises:
            TypeError: the wait function returned something that is not a
                number (a bool included).
            ValueError: it returned NaN or +infinity.
        """
        if self._constant is not None:
            return self._constant
        interval = self._interval
        if interval is not None:
            return interval.delay(attempt, self._random() if interval.randomization else 0.0)
        function = self._function
        assert function is not None
        value: object = function(attempt, error, result)
        if is_number(value) and not math.isnan(value) and value != math.inf:  # type: ignore[arg-type]
            return float(value)  # type: ignore[arg-type]
        kind = ValueError if is_number(value) else TypeError
        raise kind(
            f"the wait function of retry {self.name!r} returned {value!r} for attempt "
            f"{attempt}; it must return a finite number of seconds >= 0, or a negative "
            "number to stop"
        )


@final
class RetryCall:
    """One call's context: its phase, its attempts, its failures and last error."""

    __slots__ = ("attempts", "failures", "last_error", "phase", "schedule")

    def __init__(self, schedule: RetrySchedule) -> None:
        self.schedule = schedule
        self.phase = ATTEMPTING
        #: Attempts made (that returned or raised an Exception).
        self.attempts = 0
        #: resilience4j's n: retried errors and retried results so far.
        self.failures = 0
        #: The last retryable error (resilience4j ``lastException``).
        self.last_error: Exception | None = None

    def _enter(self, given: RetryInput) -> None:
        """Check that the phase takes ``given``; an outcome ends the call until decided.

        DONE first: a predicate, wait function or consumer that raises leaves
        the call over, its attempt counted and no outcome counted.
        """
        phase = self.phase
        if (phase, given) not in TRANSITIONS:
            raise IllegalStateTransition(f"retry {self.schedule.name!r}", phase.value, given.value)
        if given is WAITED:
            self.phase = ATTEMPTING
            return
        self.phase = DONE
        self.attempts += 1
        self.schedule.counters.attempts += 1

    def _end(
        self,
        action: RetryAction,
        outcome: RetryOutcome,
        signal: RetrySignal | None,
        error: Exception | None,
        result: object = None,
    ) -> RetryDecision:
        self.schedule.counters.count(outcome)
        return RetryDecision(
            action=action,
            attempts=self.attempts,
            outcome=outcome,
            signal=signal,
            error=error,
            result=result,
        )

    def _retry(self, wait: float, error: Exception | None) -> RetryDecision:
        self.phase = WAITING
        return RetryDecision(
            action=RetryAction.RETRY,
            attempts=self.attempts,
            wait=wait,
            signal=RetrySignal.RETRY,
            error=error,
        )

    def raised(self, error: Exception) -> RetryDecision:
        """The attempt raised ``error``: retry, or raise it.

        Raises:
            IllegalStateTransition: the call is not ATTEMPTING.
            Exception: what a predicate or the wait function raised.
        """
        self._enter(RAISED)
        schedule = self.schedule
        if not schedule.retryable(error):
            return self._end(
                RetryAction.RAISE,
                RetryOutcome.FAILED_WITHOUT_RETRY,
                RetrySignal.IGNORED_ERROR,
                error,
            )
        self.failures += 1
        self.last_error = error
        if self.failures < schedule.config.max_attempts:
            wait = schedule.wait(self.failures, error, None)
            if wait >= 0:
                return self._retry(wait, error)
        return self._end(
            RetryAction.RAISE, RetryOutcome.FAILED_WITH_RETRY, RetrySignal.ERROR, error
        )

    def returned(self, result: object) -> RetryDecision:
        """The attempt returned ``result``: retry, return it, or raise MaxRetriesExceeded.

        Raises:
            IllegalStateTransition: the call is not ATTEMPTING.
            Exception: what ``retry_result``, the consumer or the wait
                function raised.
        """
        self._enter(RETURNED)
        schedule = self.schedule
        config = schedule.config
        predicate = config.retry_result
        if predicate is not None and predicate(result):
            self.failures += 1
            failures = self.failures
            if failures < config.max_attempts:
                consume = config.consume_result_before_retry
                if consume is not None:
                    consume(failures, result)
                wait = schedule.wait(failures, None, result)
                if wait >= 0:
                    return self._retry(wait, None)
            action = RetryAction.EXHAUSTED if config.fail_after_max_attempts else RetryAction.RETURN
            return self._end(
                action, RetryOutcome.FAILED_WITH_RETRY, RetrySignal.ERROR, self.last_error, result
            )
        if self.failures == 0:
            return self._end(
                RetryAction.RETURN, RetryOutcome.SUCCESSFUL_WITHOUT_RETRY, None, None, result
            )
        return self._end(
            RetryAction.RETURN,
            RetryOutcome.SUCCESSFUL_WITH_RETRY,
            RetrySignal.SUCCESS,
            self.last_error,
            result,
        )

    def waited(self) -> None:
        """The wait is over: the next attempt may start.

        Raises:
            IllegalStateTransition: the call is not WAITING.
        """
        self._enter(WAITED)

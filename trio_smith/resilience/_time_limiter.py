"""The time limiter: a call that has not returned by its deadline is cancelled and fails.

resilience4j's ``TimeLimiter`` in the shape of its Kotlin coroutine adapter,
which is trio's: the call runs in a cancel scope with a deadline on trio's
clock. When that scope catches its own cancellation, the call raises
:class:`CallTimedOut`, an ordinary ``Exception`` (a ``TimeoutError``), so that
a circuit breaker around the limiter records it as a failure and a Retry
around it retries it. Every other cancellation passes through untouched
(docs/design.md rule 49; B14, B15).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, final

import attrs
import trio

from .. import _telemetry
from .._core._check import finite_at_least, non_empty_str
from .._emit import Emitter, check_call_events, check_publisher, describe_error
from .._event import Event, EventPublisher, EventType
from .._exceptions import CallTimedOut
from .._telemetry import TIME_LIMITER_CALL
from .._trio_private import current_time
from ._decorate import through

__all__ = ["TimeLimiter", "TimeLimiterEvent", "TimeLimiterStatistics"]

P = ParamSpec("P")
T = TypeVar("T")


@final
class TimeLimiterEvent:
    """The event types of a time limiter, category ``time_limiter``.

    They are resilience4j's ``TimeLimiterEvent.Type`` kinds. A time limiter
    with ``events=`` publishes TIMEOUT; SUCCESS and ERROR, one per call,
    only with ``call_events=True``.
    """

    SUCCESS: Final = EventType("time_limiter", "success")
    TIMEOUT: Final = EventType("time_limiter", "timeout")
    ERROR: Final = EventType("time_limiter", "error")


@final
@attrs.frozen(kw_only=True)
class TimeLimiterStatistics:
    """A snapshot of a time limiter (resilience4j's ``successful``, ``failed``, ``timeout``).

    Attributes:
        name: the time limiter's name.
        timeout: its timeout, seconds.
        successful_calls: calls that returned (within the deadline, or past
            it for a callee that did not let itself be cancelled).
        failed_calls: calls that raised an ``Exception`` of their own.
        timed_out_calls: calls that raised :class:`CallTimedOut`.
        events_dropped: events the publisher refused (full, closed, or its
            own error); the first refusal is logged as a warning naming the
            time limiter, then the 10th, the 100th...
    """

    name: str
    timeout: float
    successful_calls: int
    failed_calls: int
    timed_out_calls: int
    events_dropped: int


#: Per task: the entries of ``async with limiter:`` blocks, innermost first,
#: as (limiter, cancel scope, start, outer entry). A contextvar, not an
#: attribute: many tasks may be inside the same limiter at once.
_ENTRY: Final[contextvars.ContextVar[tuple[Any, ...] | None]] = contextvars.ContextVar(
    "trio_smith.time_limiter_entry", default=None
)


@final
class TimeLimiter:
    """Cancels a call that runs past ``timeout`` seconds and raises :class:`CallTimedOut`.

    Use it as ``async with limiter:``, ``await limiter.call(fn, *args)`` or
    a decorator (``@limiter``). The call runs in a ``trio.CancelScope`` whose
    deadline is ``timeout`` seconds after it starts. At the deadline the
    callee is cancelled at its next checkpoint (its ``finally`` blocks run),
    and when the cancellation has unwound out of it the call raises
    :class:`CallTimedOut`. trio always cancels the late call: there is no
    "let it run" option (resilience4j ``cancelRunningFuture(false)``).

    - The callee's own exceptions propagate unchanged (an ``error``).
    - A cancellation from outside (an enclosing scope, a nursery) propagates
      unchanged, and is neither counted nor published. When the outer
      cancellation and the deadline come at the same instant, ``Cancelled``
      wins.
    - A callee that catches the cancellation and returns a value anyway
      has returned: the call succeeds with that value. A callee that never
      reaches a checkpoint cannot be interrupted; it succeeds, however
      late.
    - No deadline outlives the call.

    Args:
        name: names the time limiter in errors, events and logs.
        timeout: seconds, a finite number >= 0. With 0, a call succeeds only
            if it returns without reaching a checkpoint.
        events: where to publish events (an ``EventBus``, or anything with
            ``publish_nowait``); None publishes nothing. By default only
            ``timeout`` goes out.
        call_events: also publish ``success`` and ``error``, one per call.
            Needs ``events``.

    Raises:
        ValueError: a number out of range, naming it.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        name: str = "time_limiter",
        *,
        timeout: float = 1.0,
        events: EventPublisher | None = None,
        call_events: bool = False,
    ) -> None:
        self._name = non_empty_str("name", name)
        finite_at_least("timeout", timeout, 0)
        checked = check_publisher(events)
        check_call_events(checked, call_events)
        self._timeout = float(timeout)
        self._events = checked
        self._call_events = call_events
        self._emitter = Emitter(checked, f"time limiter {self._name!r}")
        self._source = f"time_limiter/{self._name}"
        self._successful_calls = 0
        self._failed_calls = 0
        self._timed_out_calls = 0

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The time limiter's name."""
        return self._name

    @property
    def timeout(self) -> float:
        """Seconds a call may run."""
        return self._timeout

    def statistics(self) -> TimeLimiterStatistics:
        """A snapshot of the counts."""
        return TimeLimiterStatistics(
            name=self._name,
            timeout=self._timeout,
            successful_calls=self._successful_calls,
            failed_calls=self._failed_calls,
            timed_out_calls=self._timed_out_calls,
            events_dropped=self._emitter.dropped,
        )

    # ------------------------------------------------------------ outcomes

    def _succeeded(self, start: float) -> None:
        self._successful_calls += 1
        if self._call_events or _telemetry.enabled:
            duration = current_time() - start
            if self._call_events:
                self._publish(TimeLimiterEvent.SUCCESS, duration, None)
            if _telemetry.enabled:
                self._tell("success", duration)

    def _ended(self, error: BaseException, start: float) -> None:
        """The block raised ``error``: an ``Exception`` is the callee's failure."""
        if not isinstance(error, Exception):
            # Cancelled from outside, KeyboardInterrupt, a BaseExceptionGroup:
            # not an outcome (as the breaker's, docs/design.md B4).
            return
        self._failed_calls += 1
        if self._call_events or _telemetry.enabled:
            duration = current_time() - start
            if self._call_events:
                self._publish(TimeLimiterEvent.ERROR, duration, error)
            if _telemetry.enabled:
                self._tell("error", duration)

    def _timed_out(self, start: float) -> CallTimedOut:
        """This limiter's scope caught its own deadline: the timeout error to raise.

        Only its own: trio's scope catches a ``Cancelled`` only when no
        enclosing cancellation is visible, so when the caller's deadline and
        the limiter's fire together, ``Cancelled`` wins without a check here.
        """
        self._timed_out_calls += 1
        if self._events is not None or _telemetry.enabled:
            duration = current_time() - start
            if self._events is not None:
                self._publish(TimeLimiterEvent.TIMEOUT, duration, None)
            if _telemetry.enabled:
                self._tell("timeout", duration)
        return CallTimedOut(self._name, self._timeout)

    def _publish(self, kind: EventType, duration: float, error: BaseException | None) -> None:
        payload: dict[str, object] = {
            "time_limiter": self._name,
            "timeout": self._timeout,
            "duration": duration,
        }
        if error is not None:
            payload.update(describe_error(error))
        # Never waits for, nor fails because of, a bus (docs/design.md rule 20).
        self._emitter.publish(Event.new(kind, source=self._source, payload=payload))

    def _tell(self, outcome: str, duration: float) -> None:
        """One call's telemetry; callers check ``_telemetry.enabled`` first (design rule 44)."""
        if _telemetry.attached(TIME_LIMITER_CALL):
            _telemetry.execute(
                TIME_LIMITER_CALL,
                {"duration": duration},
                {"time_limiter": self._name, "outcome": outcome},
            )

    # ------------------------------------------------------------ calls

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)`` under the deadline and return its result.

        Args:
            fn: an async callable.
            *args: its positional arguments (use ``functools.partial`` for
                keywords, as trio does).

        Returns:
            What ``fn`` returned.

        Raises:
            CallTimedOut: the deadline passed and ``fn`` was cancelled.
            BaseException: whatever ``fn`` raised, unchanged, and any
                cancellation from outside.
        """
        start = current_time()
        scope = trio.CancelScope(deadline=start + self._timeout)
        try:
            with scope:
                result = await fn(*args)
        except BaseException as error:
            self._ended(error, start)
            raise
        if scope.cancelled_caught:
            # Nothing is chained: the Cancelled was this limiter's own.
            raise self._timed_out(start) from None
        self._succeeded(start)
        return result

    async def __aenter__(self) -> TimeLimiter:
        start = current_time()
        scope = trio.CancelScope(deadline=start + self._timeout)
        scope.__enter__()
        _ENTRY.set((self, scope, start, _ENTRY.get()))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        entry = _ENTRY.get()
        # Invariant: blocks nest per task, so the innermost entry is ours.
        assert entry is not None
        assert entry[0] is self
        _ENTRY.set(entry[3])
        scope: trio.CancelScope = entry[1]
        start: float = entry[2]
        try:
            # The scope takes its own Cancelled out of what the block raised
            # (out of a group too: then it raises the rest).
            scope.__exit__(exc_type, exc, tb)
        except BaseException as error:
            self._ended(error, start)
            raise
        if scope.cancelled_caught:
            # from None: the Cancelled being handled here was this limiter's.
            raise self._timed_out(start) from None
        if exc is None:
            self._succeeded(start)
        else:
            self._ended(exc, start)
        return False

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so that every call goes through :meth:`call`.

        Args:
            fn: an async function (see :class:`~trio_smith.ChildSpec` for
                what counts as one).

        Returns:
            An async function with the same signature.

        Raises:
            TypeError: ``fn`` is not an async function, naming it.
        """
        return through(self.call, fn, "time limiter")

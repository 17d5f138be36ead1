"""The rate limiter's trio shell: reads the clock, sleeps for reserved permits, reports.

Every decision about permits is the machine's (``trio_smith._core._rate``,
resilience4j's ``AtomicRateLimiter`` in integer nanoseconds); this module
turns trio's clock into nanoseconds since the limiter's origin, sleeps until
a reserved permit's cycle starts, refuses with :class:`RequestNotPermitted`
after a checkpoint, gives back the reservation of a waiter that is
cancelled, drains after the calls its predicates pick, and publishes events
and telemetry (docs/design.md rule 44). The semantics: rule 51 and B18-B20.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from math import floor
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, final

import attrs
import trio

from .. import _telemetry
from .._core._check import int_at_least, non_empty_str, optional_callable
from .._core._rate import RateMachine, nanoseconds
from .._emit import Emitter, check_call_events, check_publisher
from .._event import EventPublisher, EventType, current_cause
from .._exceptions import RequestNotPermitted
from .._telemetry import RATE_LIMITER_ACQUIRE
from .._trio_private import current_time
from ._decorate import through

__all__ = ["RateLimiter", "RateLimiterEvent", "RateLimiterStatistics"]

P = ParamSpec("P")
T = TypeVar("T")


@final
class RateLimiterEvent:
    """The event types of a rate limiter, category ``rate_limiter``.

    resilience4j's ``RateLimiterEvent.Type`` kinds. A limiter with
    ``events=`` publishes FAILED_ACQUIRE (a refusal) and DRAINED;
    SUCCESSFUL_ACQUIRE, one per permitted call, only with
    ``call_events=True``. Each payload is ``{"rate_limiter": name,
    "permits": n, "wait": seconds}``: the seconds waited (SUCCESSFUL_ACQUIRE),
    the seconds the call would have had to wait (FAILED_ACQUIRE), or, for
    DRAINED, the permits drained and the seconds until the next permit.
    """

    SUCCESSFUL_ACQUIRE: Final = EventType("rate_limiter", "successful_acquire")
    FAILED_ACQUIRE: Final = EventType("rate_limiter", "failed_acquire")
    DRAINED: Final = EventType("rate_limiter", "drained")


@final
@attrs.frozen(kw_only=True)
class RateLimiterStatistics:
    """A snapshot of a rate limiter (resilience4j ``RateLimiter.Metrics``).

    Attributes:
        name: the limiter's name.
        limit_for_period: permits per cycle.
        refresh_period: the cycle's length, seconds.
        timeout: the longest a call waits for a permit, seconds.
        available_permissions: the current cycle's permits left; negative
            while permits of later cycles are reserved by waiting calls.
        waiting_calls: calls sleeping until their reserved permit's cycle.
        retry_after: seconds a call arriving now would wait for one permit
            (0.0: none; it may exceed the timeout: such a call is refused).
        permitted_calls: acquisitions granted (``call``, ``async with``,
            ``acquire`` and ``acquire_nowait``; one whatever the permits).
        rejected_calls: acquisitions refused with :class:`RequestNotPermitted`.
        events_dropped: events the publisher refused (full, closed, or its
            own error); the first refusal is logged as a warning naming the
            limiter, then the 10th, the 100th...
    """

    name: str
    limit_for_period: int
    refresh_period: float
    timeout: float
    available_permissions: int
    waiting_calls: int
    retry_after: float
    permitted_calls: int
    rejected_calls: int
    events_dropped: int


@final
class RateLimiter:
    """A rate limiter with resilience4j's ``AtomicRateLimiter`` semantics, for trio.

    Time is cut into cycles of ``refresh_period`` seconds; each cycle holds
    ``limit_for_period`` permits. A call takes one permit of the current
    cycle, or reserves one of a later cycle and sleeps until that cycle
    starts, if that wait is at most ``timeout``; otherwise it is refused at
    once with :class:`RequestNotPermitted`, reserving nothing. Cycles count
    from the limiter's origin: trio's clock when it is built inside a trio
    run, else its first use (a limiter used again in a later trio run whose
    clock reads earlier starts afresh). Idle cycles refill only up to the
    limit: a burst after a pause gets ``limit_for_period`` permits at once,
    then waits for cycle starts.

    Use it as ``await limiter.call(fn, *args)``, ``async with limiter:``, a
    decorator (``@limiter``), or take permits with :meth:`acquire` and
    :meth:`acquire_nowait`. A call that runs has spent its permit, whatever
    its outcome, as in resilience4j. A call cancelled (or interrupted) while
    it waits for its reserved permit never runs, and the permit goes back
    when no later waiter's cycle was counted after it (design.md explains
    this departure from resilience4j, which keeps it spent).

    Args:
        name: names the limiter in errors, events and logs.
        limit_for_period: permits per cycle (an int >= 1). Required:
            resilience4j's default, 50 per 500 ns, limits nothing.
        refresh_period: the cycle's length in seconds (>= 1 ns, counted in
            whole nanoseconds). Required.
        timeout: the longest a call may wait for a permit, seconds (finite,
            >= 0); 0: never wait.
        drain_on_exception: a predicate on the exception of a call that
            raised one (an ``Exception``; never a cancellation); true drains
            the current cycle's remaining permits (an overloaded upstream).
        drain_on_result: a predicate on a call's returned value (``None``
            included); true drains likewise.
        events: where to publish events (an ``EventBus``, or anything with
            ``publish_nowait``); None publishes nothing. By default only
            refusals and drains go out.
        call_events: also publish one SUCCESSFUL_ACQUIRE per permitted call.
            Needs ``events``.

    Raises:
        ValueError: a number out of range or of the wrong type, naming it.
        TypeError: a predicate that is not callable, a publisher without
            ``publish_nowait``, a ``call_events`` that is not a bool.
    """

    def __init__(
        self,
        name: str = "rate_limiter",
        *,
        limit_for_period: int,
        refresh_period: float,
        timeout: float = 5.0,
        drain_on_exception: Callable[[Exception], bool] | None = None,
        drain_on_result: Callable[[Any], bool] | None = None,
        events: EventPublisher | None = None,
        call_events: bool = False,
    ) -> None:
        self._name = non_empty_str("name", name)
        self._machine = RateMachine(
            limit_for_period=limit_for_period,
            period_ns=nanoseconds("refresh_period", refresh_period, positive=True),
            timeout_ns=nanoseconds("timeout", timeout, positive=False),
        )
        optional_callable("drain_on_exception", drain_on_exception)
        optional_callable("drain_on_result", drain_on_result)
        checked = check_publisher(events)
        check_call_events(checked, call_events)
        self._drain_on_exception = drain_on_exception
        self._drain_on_result = drain_on_result
        self._emitter = Emitter(checked, f"rate limiter {self._name!r}")
        self._source = f"rate_limiter/{self._name}"
        self._call_events = call_events
        #: trio's time at the start of cycle 0; None until the first use
        #: when the limiter was built outside a trio run.
        self._origin: float | None
        try:
            self._origin = current_time()
        except RuntimeError:
            self._origin = None
        #: The waiting calls' tickets, oldest first (a dict as an ordered set).
        self._waiting: dict[int, None] = {}
        self._tickets = 0
        self._permitted = 0
        self._rejected = 0

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The limiter's name."""
        return self._name

    def __repr__(self) -> str:
        machine = self._machine
        return (
            f"<RateLimiter {self._name!r} {machine.limit_for_period} per "
            f"{machine.period_ns / 1e9!r} s>"
        )

    def statistics(self) -> RateLimiterStatistics:
        """A snapshot of the configuration, the current cycle and the counts.

        Raises:
            RuntimeError: outside a trio run (the cycle needs trio's clock).
        """
        now_ns = self._now_ns()
        machine = self._machine
        return RateLimiterStatistics(
            name=self._name,
            limit_for_period=machine.limit_for_period,
            refresh_period=machine.period_ns / 1e9,
            timeout=machine.timeout_ns / 1e9,
            available_permissions=machine.available(now_ns),
            waiting_calls=len(self._waiting),
            retry_after=machine.nanos_to_wait(now_ns) / 1e9,
            permitted_calls=self._permitted,
            rejected_calls=self._rejected,
            events_dropped=self._emitter.dropped,
        )

    def _now_ns(self) -> int:
        """trio's time as whole nanoseconds since the origin (taken now if unset)."""
        now = current_time()
        origin = self._origin
        if origin is None:
            origin = self._origin = now
        # The nearest nanosecond (monotonic, as the clock is): the machine's
        # time. math.floor is the cheaper of the two built-ins that make an int.
        return floor((now - origin) * 1e9 + 0.5)

    # ------------------------------------------------------------ permits

    async def _admit(self, permits: int, now_ns: int, wait: int) -> None:
        """After a reservation that did not grant at once: sleep for it, or refuse."""
        if wait < 0:
            self._rejected += 1
            # Read before the checkpoint, which other tasks may use to move the state.
            error = RequestNotPermitted(self._name, -wait / 1e9)
            self._report_rejected(permits, -wait)
            # A refusal is still a checkpoint, so a retry loop cannot starve
            # the scheduler (as the breaker's CallNotPermitted).
            await trio.lowlevel.checkpoint()
            raise error
        origin = self._origin
        assert origin is not None  # set by whoever computed now_ns
        self._tickets += 1
        ticket = self._tickets
        waiting = self._waiting
        waiting[ticket] = None
        try:
            await trio.sleep_until(origin + (now_ns + wait) / 1e9)
        except BaseException:
            # Cancelled (or interrupted) before its cycle: the call never
            # runs. Its permits go back only if no waiter reserved after it:
            # a later waiter's cycle was counted past these permits, and a
            # refund would let a newcomer share that cycle, over the limit.
            last = next(reversed(waiting))
            del waiting[ticket]
            if last == ticket:
                self._machine.refund(self._now_ns(), permits)
            raise
        del waiting[ticket]
        self._granted(permits, wait)

    def _granted(self, permits: int, wait: int) -> None:
        self._permitted += 1
        if self._call_events or _telemetry.enabled:
            self._report_permitted(permits, wait)

    async def acquire(self, permits: int = 1) -> None:
        """Take ``permits``, sleeping until their cycle if that is within the timeout.

        Args:
            permits: how many (an int >= 1; more than ``limit_for_period``
                waits for several cycles).

        Raises:
            RequestNotPermitted: the wait would exceed the timeout (after a
                checkpoint); nothing was reserved. Its ``retry_after`` is
                that wait, seconds.
            ValueError: ``permits`` is not an int >= 1.
        """
        int_at_least("permits", permits, 1)
        now_ns = self._now_ns()
        wait = self._machine.reserve(now_ns, permits)
        if wait:
            await self._admit(permits, now_ns, wait)
        else:
            self._granted(permits, 0)

    def acquire_nowait(self, permits: int = 1) -> None:
        """Take ``permits`` from the current cycle, or raise: never wait, whatever the timeout.

        Args:
            permits: how many (an int >= 1).

        Raises:
            RequestNotPermitted: the current cycle has not enough permits
                left; nothing was reserved. Its ``retry_after`` is the wait
                :meth:`acquire` would need, seconds.
            ValueError: ``permits`` is not an int >= 1.
        """
        int_at_least("permits", permits, 1)
        wait = self._machine.reserve(self._now_ns(), permits, 0)
        if wait:
            self._rejected += 1
            self._report_rejected(permits, -wait)
            raise RequestNotPermitted(self._name, -wait / 1e9)
        self._granted(permits, 0)

    def drain(self) -> None:
        """Take the permits left in the current cycle: later calls wait for the next one.

        resilience4j ``drainPermissions``, for an upstream that says it is
        overloaded. Permits already reserved ahead stay reserved. Publishes
        DRAINED.
        """
        now_ns = self._now_ns()
        machine = self._machine
        drained = machine.drain(now_ns)
        self._emitter.emit(
            RateLimiterEvent.DRAINED,
            self._source,
            {
                "rate_limiter": self._name,
                "permits": drained,
                "wait": machine.nanos_to_wait(now_ns) / 1e9,
            },
            current_cause(),
        )

    def change_limit(self, limit_for_period: int) -> None:
        """Set the permits per cycle (resilience4j ``changeLimitForPeriod``).

        The current cycle keeps its count; the new limit applies from the
        next cycle. Waiting calls keep the cycle they reserved.

        Raises:
            ValueError: not an int >= 1.
        """
        self._machine.change_limit(limit_for_period)

    def change_timeout(self, timeout: float) -> None:
        """Set the longest wait for later calls (resilience4j ``changeTimeoutDuration``).

        Raises:
            ValueError: not a finite number of seconds >= 0, or too large.
        """
        self._machine.change_timeout(nanoseconds("timeout", timeout, positive=False))

    # ------------------------------------------------------------ reports

    def _report_permitted(self, permits: int, wait_ns: int) -> None:
        if self._call_events:
            self._report(RateLimiterEvent.SUCCESSFUL_ACQUIRE, "permitted", permits, wait_ns)
        elif _telemetry.enabled:
            self._tell("permitted", wait_ns / 1e9)

    def _report_rejected(self, permits: int, wait_ns: int) -> None:
        self._report(RateLimiterEvent.FAILED_ACQUIRE, "rejected", permits, wait_ns)

    def _report(self, kind: EventType, outcome: str, permits: int, wait_ns: int) -> None:
        """One acquisition's event and telemetry; ``wait`` waited, or needed if refused."""
        wait = wait_ns / 1e9
        # In the causal chain of the work being handled, as every component's
        # events are (docs/design.md rule 40); a limiter never waits for, nor
        # fails because of, a bus (rule 34).
        self._emitter.emit(
            kind,
            self._source,
            {"rate_limiter": self._name, "permits": permits, "wait": wait},
            current_cause(),
        )
        if _telemetry.enabled:
            self._tell(outcome, wait)

    def _tell(self, outcome: str, wait: float) -> None:
        if _telemetry.attached(RATE_LIMITER_ACQUIRE):
            _telemetry.execute(
                RATE_LIMITER_ACQUIRE,
                {"wait": wait},
                {"rate_limiter": self._name, "outcome": outcome},
            )

    # ------------------------------------------------------------ calls

    def _drain_if(self, predicate: Callable[[Any], bool], value: object) -> None:
        if predicate(value):
            self.drain()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Take a permit (waiting for it if need be), then return ``await fn(*args)``.

        Args:
            fn: an async callable.
            *args: its positional arguments (use ``functools.partial`` for
                keywords, as trio does).

        Returns:
            What ``fn`` returned.

        Raises:
            RequestNotPermitted: no permit within the timeout (after a
                checkpoint); ``fn`` was not called.
            Exception: whatever ``fn`` raised, unchanged (its permit is
                spent), or whatever a drain predicate raised.
        """
        # acquire(1) written out: with a permit free, one clock read, the
        # machine's integer arithmetic, and no checkpoint but fn's own.
        now = current_time()
        origin = self._origin
        if origin is None:
            origin = self._origin = now
        now_ns = floor((now - origin) * 1e9 + 0.5)
        wait = self._machine.reserve(now_ns, 1)
        if wait:
            await self._admit(1, now_ns, wait)
        else:
            self._permitted += 1
            if self._call_events or _telemetry.enabled:
                self._report_permitted(1, 0)
        try:
            result = await fn(*args)
        except Exception as error:
            if self._drain_on_exception is not None:
                self._drain_if(self._drain_on_exception, error)
            raise
        if self._drain_on_result is not None:
            self._drain_if(self._drain_on_result, result)
        return result

    async def __aenter__(self) -> RateLimiter:
        # acquire(1) written out (one coroutine less).
        now_ns = self._now_ns()
        wait = self._machine.reserve(now_ns, 1)
        if wait:
            await self._admit(1, now_ns, wait)
        else:
            self._granted(1, 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        # A block has no result: only drain_on_exception applies.
        if isinstance(exc, Exception) and self._drain_on_exception is not None:
            self._drain_if(self._drain_on_exception, exc)
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
        return through(self.call, fn, "rate limiter")

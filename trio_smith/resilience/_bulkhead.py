"""The bulkhead: at most N calls at once, the others wait in line or are refused.

resilience4j's ``SemaphoreBulkhead`` (fair), on trio. The permits are counted
by ``trio_smith._core._bulkhead.Permits``; this shell queues the waiters on a
``trio.lowlevel.ParkingLot`` and hands each freed permit to the first of
them. ``trio.Semaphore`` is not used: its ``acquire()`` always executes a
checkpoint, even with a permit free, and a bulkhead admits a call the way the
circuit breaker does, without one (the call itself checkpoints). docs/design.md
rule 50 and B16, B17.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, final

import attrs
import trio

from .. import _telemetry
from .._core._bulkhead import Permits
from .._core._check import finite_at_least, int_at_least, non_empty_str
from .._emit import Emitter, check_call_events, check_publisher
from .._event import Event, EventPublisher, EventType
from .._exceptions import BulkheadFull
from .._telemetry import BULKHEAD_CALL
from .._trio_private import current_time
from ._decorate import through

__all__ = ["Bulkhead", "BulkheadEvent", "BulkheadStatistics"]

P = ParamSpec("P")
T = TypeVar("T")


@final
class BulkheadEvent:
    """The event types of a bulkhead, category ``bulkhead`` (resilience4j ``BulkheadEvent.Type``).

    A bulkhead with ``events=`` publishes CALL_REJECTED; CALL_PERMITTED and
    CALL_FINISHED, one each per admitted call, only with ``call_events=True``.
    """

    CALL_PERMITTED: Final = EventType("bulkhead", "call_permitted")
    CALL_REJECTED: Final = EventType("bulkhead", "call_rejected")
    CALL_FINISHED: Final = EventType("bulkhead", "call_finished")


@final
@attrs.frozen(kw_only=True)
class BulkheadStatistics:
    """A snapshot of a bulkhead (resilience4j ``Bulkhead.Metrics``, and counts).

    Attributes:
        name: the bulkhead's name.
        max_concurrent_calls: its limit.
        available_concurrent_calls: free permits; 0 (never negative) while
            more calls run than a lowered limit allows.
        waiting_calls: calls waiting for a permit.
        permitted_calls: calls admitted so far.
        rejected_calls: calls refused with :class:`BulkheadFull` so far.
        finished_calls: admitted calls that ended, however they ended
            (cancelled ones included): ``permitted_calls - finished_calls``
            calls hold a permit now.
        events_dropped: events the publisher refused (full, closed, or its
            own error); the first refusal is logged as a warning naming the
            bulkhead, then the 10th, the 100th...
    """

    name: str
    max_concurrent_calls: int
    available_concurrent_calls: int
    waiting_calls: int
    permitted_calls: int
    rejected_calls: int
    finished_calls: int
    events_dropped: int


#: Per task: the entries of ``async with bulkhead:`` blocks, innermost first,
#: as (bulkhead, arrival, admission, outer entry). A contextvar, not an
#: attribute: many tasks may be inside the same bulkhead at once.
_ENTRY: Final[contextvars.ContextVar[tuple[Any, ...] | None]] = contextvars.ContextVar(
    "trio_smith.bulkhead_entry", default=None
)


@final
class Bulkhead:
    """At most ``max_concurrent_calls`` calls at once (resilience4j's semaphore bulkhead).

    Use it as ``async with bulkhead:``, ``await bulkhead.call(fn, *args)`` or
    a decorator (``@bulkhead``). A call that finds a permit free runs at
    once, without a checkpoint of its own. Otherwise it waits in line, first
    come first served, for at most ``max_wait`` seconds, and is then refused
    with :class:`BulkheadFull`; with ``max_wait=0`` (the default) it is
    refused at once, after a checkpoint. A newcomer never overtakes a
    waiter: a freed permit is handed to the first waiter.

    The permit is the call's until it ends, however it ends: a result, an
    exception, ``trio.Cancelled``, ``KeyboardInterrupt`` or an exception
    group. A waiter that is cancelled never owns a permit; ``Cancelled``
    propagates unchanged and nothing is counted. The bulkhead never
    classifies outcomes: its only error is the refusal, an ``Exception``
    that a circuit breaker around it records as a failure unless told to
    ignore it.

    Args:
        name: names the bulkhead in errors, events and logs.
        max_concurrent_calls: permits, an int >= 0 (0 refuses every call).
        max_wait: seconds a call may wait for a permit, a finite number >= 0.
        events: where to publish events (an ``EventBus``, or anything with
            ``publish_nowait``); None publishes nothing. By default only
            ``call_rejected`` goes out.
        call_events: also publish ``call_permitted`` and ``call_finished``
            for every admitted call. Needs ``events``.

    Raises:
        ValueError: a number out of range, naming it.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        name: str = "bulkhead",
        *,
        max_concurrent_calls: int = 25,
        max_wait: float = 0.0,
        events: EventPublisher | None = None,
        call_events: bool = False,
    ) -> None:
        self._name = non_empty_str("name", name)
        int_at_least("max_concurrent_calls", max_concurrent_calls, 0)
        finite_at_least("max_wait", max_wait, 0)
        checked = check_publisher(events)
        check_call_events(checked, call_events)
        self._permits = Permits(max_concurrent_calls)
        self._max_wait = float(max_wait)
        #: The waiters, in arrival order (trio's ParkingLot is FIFO).
        self._lot = trio.lowlevel.ParkingLot()
        self._events = checked
        self._call_events = call_events
        self._emitter = Emitter(checked, f"bulkhead {self._name!r}")
        self._source = f"bulkhead/{self._name}"
        self._permitted_calls = 0
        self._rejected_calls = 0
        self._finished_calls = 0

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The bulkhead's name."""
        return self._name

    @property
    def max_concurrent_calls(self) -> int:
        """The limit: calls that may hold a permit at once."""
        return self._permits.limit

    @property
    def max_wait(self) -> float:
        """Seconds a new call may wait for a permit."""
        return self._max_wait

    def statistics(self) -> BulkheadStatistics:
        """A snapshot of the permits and the counts."""
        permits = self._permits
        return BulkheadStatistics(
            name=self._name,
            max_concurrent_calls=permits.limit,
            available_concurrent_calls=permits.available,
            waiting_calls=len(self._lot),
            permitted_calls=self._permitted_calls,
            rejected_calls=self._rejected_calls,
            finished_calls=self._finished_calls,
            events_dropped=self._emitter.dropped,
        )

    # ------------------------------------------------------------ changing

    def change(
        self, *, max_concurrent_calls: int | None = None, max_wait: float | None = None
    ) -> None:
        """Change the limit or the wait (resilience4j ``changeConfig``); None keeps it.

        A larger limit admits waiters at once, in line order. A smaller one
        stops nobody and never blocks the caller: new calls wait (or are
        refused) until enough running calls have ended. A new ``max_wait``
        applies to calls that arrive from now on; waiters keep theirs.

        Raises:
            ValueError: ``max_concurrent_calls`` is not an int >= 0, or
                ``max_wait`` not a finite number >= 0; nothing changes.
        """
        # Both are checked before either changes.
        if max_concurrent_calls is not None:
            int_at_least("max_concurrent_calls", max_concurrent_calls, 0)
        if max_wait is not None:
            finite_at_least("max_wait", max_wait, 0)
            self._max_wait = float(max_wait)
        if max_concurrent_calls is not None:
            lot = self._lot
            admitted = self._permits.resize(max_concurrent_calls, len(lot))
            if admitted:
                lot.unpark(count=admitted)

    # ------------------------------------------------------------ calls

    async def _wait(self, arrival: float) -> float:
        """No permit was free at ``arrival``: wait for one in line, or be refused.

        Returns:
            The time the permit was handed over; the caller owns it. Nothing
            may checkpoint between that and the caller's ``try``, or a
            cancellation there would leak the permit.

        Raises:
            BulkheadFull: no permit within ``max_wait`` (at once for 0, after
                a checkpoint).
        """
        max_wait = self._max_wait
        if max_wait > 0:
            with trio.CancelScope(deadline=arrival + max_wait):
                # Parked, this task owns no permit: a cancellation removes it
                # from the line, so no permit is ever handed to a waiter that
                # gave up. Unparked, it owns one, even if it is cancelled in
                # the same scheduling round (the next checkpoint raises).
                await self._lot.park()
                return current_time()
            # This scope caught its own deadline. An outer cancellation at the
            # same instant is not caught here: it propagates (Cancelled wins).
            limit = self._permits.limit
            wait = current_time() - arrival
        else:
            # A refusal is still a checkpoint, so a retry loop cannot starve
            # the scheduler (as the breaker's, docs/design.md T6). Cancelled
            # there: nothing is counted. The call waited for no permit.
            limit = self._permits.limit
            wait = 0.0
            await trio.lowlevel.checkpoint()
        self._rejected_calls += 1
        if self._events is not None:
            self._publish(BulkheadEvent.CALL_REJECTED, limit, wait)
        if _telemetry.enabled:
            self._tell("rejected", wait, 0.0)
        raise BulkheadFull(self._name, limit)

    def _admitted(self, arrival: float, admitted: float) -> None:
        self._permitted_calls += 1
        if self._call_events:
            self._publish(BulkheadEvent.CALL_PERMITTED, self._permits.limit, admitted - arrival)

    def _finish(self, arrival: float, admitted: float) -> None:
        """An admitted call ends: its permit goes to the first waiter, or is freed."""
        lot = self._lot
        if self._permits.give_back(len(lot)):
            lot.unpark()
        self._finished_calls += 1
        if self._call_events or _telemetry.enabled:
            wait = admitted - arrival
            if self._call_events:
                self._publish(BulkheadEvent.CALL_FINISHED, self._permits.limit, wait)
            if _telemetry.enabled:
                self._tell("finished", wait, current_time() - admitted)

    def _publish(self, kind: EventType, limit: int, wait: float) -> None:
        payload = {"bulkhead": self._name, "max_concurrent_calls": limit, "wait": wait}
        # Never waits for, nor fails because of, a bus (docs/design.md rule 20).
        self._emitter.publish(Event.new(kind, source=self._source, payload=payload))

    def _tell(self, outcome: str, wait: float, duration: float) -> None:
        """One call's telemetry; callers check ``_telemetry.enabled`` first (design rule 44)."""
        if _telemetry.attached(BULKHEAD_CALL):
            _telemetry.execute(
                BULKHEAD_CALL,
                {"wait": wait, "duration": duration},
                {"bulkhead": self._name, "outcome": outcome},
            )

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)`` holding a permit, and return its result.

        Args:
            fn: an async callable.
            *args: its positional arguments (use ``functools.partial`` for
                keywords, as trio does).

        Returns:
            What ``fn`` returned.

        Raises:
            BulkheadFull: no permit within ``max_wait``; ``fn`` was not called.
            BaseException: whatever ``fn`` raised, unchanged; the permit is
                given back first.
        """
        arrival = current_time()
        # A free permit means nobody waits: admitted at once, no checkpoint.
        admitted = arrival if self._permits.take() else await self._wait(arrival)
        try:
            self._admitted(arrival, admitted)
            return await fn(*args)
        finally:
            self._finish(arrival, admitted)

    async def __aenter__(self) -> Bulkhead:
        arrival = current_time()
        admitted = arrival if self._permits.take() else await self._wait(arrival)
        try:
            self._admitted(arrival, admitted)
        except BaseException:
            # Only a publisher raising a BaseException gets here; __aexit__
            # will not run, so the permit goes back now.
            self._finish(arrival, admitted)
            raise
        _ENTRY.set((self, arrival, admitted, _ENTRY.get()))
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
        self._finish(entry[1], entry[2])
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
        return through(self.call, fn, "bulkhead")

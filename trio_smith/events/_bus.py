"""``EventBus``: publish once, deliver to every matching subscriber, with backpressure.

Theory of operation
===================

* **Buffers.** Each subscription owns a bounded FIFO buffer (a deque with a
  capacity) and at most one parked receiving task. Delivering is a
  ``deque.append`` plus, when the receiver is parked, one ``reschedule``:
  no task switch per delivery. A memory channel per subscriber would do the
  same job, but it cannot drop its oldest item from the sending side, and
  its ``receive`` always yields (design rules 17 and 18).
* **Publish path.** ``publish`` first waits while a BLOCK subscriber that
  takes the event is full (the backpressure), then hands the event to the
  store, if any; the store commits it and calls the bus's commit listener,
  which fans out. Without a store (or with ``persist=False``) it fans out at
  once. Fan-out never blocks: it appends to each matching buffer, or applies
  the subscriber's overflow policy. So with an in-memory store or no store a
  BLOCK buffer never exceeds its capacity, and nothing can be half-published
  when a publisher is cancelled: everything before the fan-out is a wait,
  everything after is synchronous.
* **Order.** Stored events are fanned out by the store's commit listener, in
  position order, exactly once, even when the store commits in batches or a
  publisher is cancelled while its append is in flight (publish after
  commit, design rules 18 and 29). So each subscriber sees stored events in
  position order.
* **Catch-up** (design rule 29). A subscription from a position, or
  one whose CATCH_UP buffer overflowed, is registered for live events
  *first*, then reads the store page by page after the last position it
  delivered, then drains its live buffer, dropping events at or below that
  position. Every event is committed either before the registration (so the
  read sees it) or after (so the live buffer has it): no gap, no duplicate.
  If the live buffer overflows again meanwhile, the subscription drops out of
  live delivery again and the loop repeats from the last position.
* **Pacing.** Publishing and receiving check for cancellation on every call
  but yield to the scheduler only on every ``checkpoint_every``-th call (64
  by default), which is a full trio checkpoint, or whenever they wait
  (design rule 17).

Invariants: ``_live`` holds exactly the registered subscriptions, in
subscription order; a BLOCK subscription is in ``_full`` iff it is registered
and its buffer holds at least ``capacity`` events.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Final, Self, final
from uuid import UUID

import attrs
import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from .. import _telemetry
from .._core._check import async_problem, int_at_least, optional_name, optional_str
from .._core._spec import ChildSpec, Restart
from .._event import Event, EventType, current_cause, keep_cause, set_cause
from .._exceptions import NoEventStore, SubscriberOverflowed
from .._supervision import Supervisor
from .._telemetry import BUS_DROPPED
from ._closed import BusClosed
from ._filter import EventFilter
from ._pace import EVERY, Pacer, cancel_requested
from ._store import DEFAULT_PAGE, EventStore, StoreScan

__all__ = [
    "BusStatistics",
    "DEFAULT_BUFFER",
    "EventBus",
    "Handler",
    "Overflow",
    "Subscription",
    "SubscriptionStatistics",
]

log: Final = logging.getLogger("trio_smith.events")

#: Events a subscription buffers by default.
DEFAULT_BUFFER: Final = 128

_bus_names: Final = itertools.count(1)


class Overflow(enum.Enum):
    """What happens when an event arrives for a subscription whose buffer is full."""

    #: The publisher waits until there is room (real backpressure). The default.
    BLOCK = "block"
    #: The oldest buffered event is dropped to make room (latest-wins telemetry).
    DROP_OLDEST = "drop_oldest"
    #: The new event is dropped.
    DROP_NEWEST = "drop_newest"
    #: The subscription delivers what it has buffered, then raises
    #: :class:`~trio_smith.events.SubscriberOverflowed`.
    ERROR = "error"
    #: The subscription drops out of live delivery, reads the missed events
    #: from the store, and rejoins live with no gap and no duplicate. Needs a
    #: store; events published without one (``persist=False``) are dropped.
    CATCH_UP = "catch_up"


@final
@attrs.frozen(kw_only=True)
class SubscriptionStatistics:
    """A snapshot of one subscription.

    Attributes:
        name: its name.
        buffer: its capacity.
        overflow: its overflow policy.
        buffered: events waiting in its buffer.
        delivered: events handed to the subscriber so far.
        dropped: events lost to DROP_OLDEST / DROP_NEWEST (and, for
            CATCH_UP, events published without the store).
        fell_behind: how many times it overflowed under CATCH_UP or ERROR.
        caught_up: whether it is delivering live events (not replaying).
        last_position: the position of the last stored event it delivered,
            or of its start position; None before any.
        handler_errors: exceptions its handler raised (handler subscriptions).
    """

    name: str
    buffer: int
    overflow: Overflow
    buffered: int
    delivered: int
    dropped: int
    fell_behind: int
    caught_up: bool
    last_position: int | None
    handler_errors: int


@final
@attrs.frozen(kw_only=True)
class BusStatistics:
    """A snapshot of an event bus.

    Attributes:
        name: the bus's name.
        open: whether it accepts events.
        published: events fanned out so far (stored ones once, when committed).
        published_by_type: the same, by wire type name.
        delivered: events handed to subscribers, over all open subscriptions.
        dropped: events dropped by overflow policies, over all subscriptions.
        handler_errors: exceptions raised by handlers, over all handlers.
        subscriptions: one snapshot per open subscription, oldest first.
    """

    name: str
    open: bool
    published: int
    published_by_type: Mapping[str, int] = attrs.field(hash=False)
    delivered: int
    dropped: int
    handler_errors: int
    subscriptions: tuple[SubscriptionStatistics, ...]


@final
class Subscription(trio.abc.ReceiveChannel[Event]):
    """One subscriber's view of the bus: a receive channel of the events it takes.

    Made by :meth:`EventBus.subscribe`; it is registered (and buffering) from
    that moment. Use it as ``async with bus.subscribe(...) as events: async
    for event in events: ...``. While a task handles an event it received, that
    event is the current cause (:func:`~trio_smith.events.current_cause`), so
    events it publishes join the same causal chain.

    Iteration ends (``trio.EndOfChannel``) when the bus closes, after the
    buffered events have been delivered.
    """

    __slots__ = (
        "_bus",
        "_caught_up",
        "_closed",
        "_ended",
        "_fast_limit",
        "_fell_behind",
        "_last",
        "_outer_cause",
        "_overflowed",
        "_pace",
        "_predicate",
        "_queue",
        "_replay",
        "_replaying",
        "_resume",
        "_room",
        "_waiter",
        "buffer",
        "delivered",
        "dropped",
        "durable",
        "fell_behind_count",
        "filter",
        "handler_errors",
        "name",
        "overflow",
    )

    def __init__(
        self,
        bus: EventBus,
        filter: EventFilter | None,
        *,
        name: str,
        buffer: int,
        overflow: Overflow,
        from_position: int | None,
        durable: str | None = None,
    ) -> None:
        self._bus = bus
        self.name = name
        self.filter = filter
        self.buffer = buffer
        self.overflow = overflow
        #: None takes every event (no call per delivery).
        self._predicate = None if filter is None else filter.predicate()
        #: Below this length an append leaves room (the fan-out fast path).
        self._fast_limit = buffer - 1
        self._queue: deque[Event] = deque()
        self._waiter: Task | None = None
        #: Publishers waiting for room (BLOCK).
        self._room = trio.lowlevel.ParkingLot()
        #: The last stored position delivered, or where it started: every
        #: stored event after it is owed. A live subscription starts at the
        #: last position the bus has fanned out: all later ones reach it live.
        self._last: int | None = from_position
        if from_position is None and bus._store is not None:
            self._last = bus._fanned_out
        #: Catch-up state: a page read from the store, and whether more pages
        #: are to be read before the live buffer may be drained.
        self._replay: deque[Event] = deque()
        self._replaying = from_position is not None
        #: A durable subscription's name; its saved checkpoint is read before
        #: the first page.
        self.durable = durable
        self._resume = durable is not None
        self._fell_behind = False
        self._caught_up: trio.Event | None = None
        #: ERROR overflowed: raise once the buffer is delivered.
        self._overflowed = False
        self._closed = False
        self._ended = False
        self._pace = Pacer(bus._checkpoint_every)
        self._outer_cause = current_cause()
        self.delivered = 0
        self.dropped = 0
        self.fell_behind_count = 0
        self.handler_errors = 0

    def __repr__(self) -> str:
        return f"<Subscription {self.name!r} on {self._bus.name!r}>"

    # ------------------------------------------------------------ publisher side

    def _offer(self, event: Event) -> None:
        """Deliver one event (fan-out; never blocks)."""
        queue = self._queue
        if len(queue) < self.buffer:
            queue.append(event)
            if len(queue) >= self.buffer and self.overflow is Overflow.BLOCK:
                self._bus._full[self] = None
            self._wake()
            return
        overflow = self.overflow
        if overflow is Overflow.BLOCK:
            # Only a store that commits later (group commit) gets here: the
            # publishers waited for room before they appended.
            queue.append(event)
        elif overflow is Overflow.DROP_OLDEST:
            queue.popleft()
            queue.append(event)
            self._dropped_one()
        elif overflow is Overflow.DROP_NEWEST:
            self._dropped_one()
        elif overflow is Overflow.CATCH_UP and event.position is None:
            self._dropped_one()  # not stored, so it cannot be caught up on
        else:
            self.fell_behind_count += 1
            self._bus._unregister(self)
            if overflow is Overflow.CATCH_UP:
                self._fell_behind = True
                self._caught_up = None
            else:
                self._overflowed = True
            self._wake()

    def _dropped_one(self) -> None:
        """Count a dropped event; log the 1st, 10th, 100th... (counted always, logged sparingly)."""
        self.dropped += 1
        dropped = self.dropped
        if _telemetry.enabled and _telemetry.attached(BUS_DROPPED):
            _telemetry.execute(
                BUS_DROPPED, {"count": 1}, {"bus": self._bus.name, "subscription": self.name}
            )
        if dropped in (1, 10, 100, 1000) or dropped % 10_000 == 0:
            log.warning(
                "subscription %r on event bus %r has dropped %d event(s) (%s); "
                "statistics().dropped counts them",
                self.name,
                self._bus.name,
                dropped,
                self.overflow.name,
                extra={
                    "bus": self._bus.name,
                    "subscription": self.name,
                    "dropped": dropped,
                    "overflow": self.overflow.value,
                },
            )

    def _wake(self) -> None:
        task = self._waiter
        if task is not None:
            self._waiter = None
            reschedule(task)

    def _end(self) -> None:
        """The bus closed: deliver what is buffered, then end."""
        self._ended = True
        self._wake()

    # ------------------------------------------------------------ receiver side

    def _take(self) -> Event | None:
        """The next event to deliver, if one is ready (never blocks)."""
        if self._replay:
            event = self._replay.popleft()
            self._last = event.position
            if not self._replay and not self._replaying:
                self._mark_caught_up()
            return event
        if self._replaying:
            return None
        queue = self._queue
        while queue:
            was_full = len(queue) >= self.buffer
            event = queue.popleft()
            if was_full and len(queue) < self.buffer and self.overflow is Overflow.BLOCK:
                # Room again: publishers waiting for it may go on.
                self._bus._full.pop(self, None)
                self._room.unpark_all()
            position = event.position
            if position is not None:
                last = self._last
                if last is not None and position <= last:
                    continue  # already delivered by the replay (the overlap)
                self._last = position
            return event
        return None

    def _mark_caught_up(self) -> None:
        if self._caught_up is not None:
            self._caught_up.set()

    def _deliver(self, event: Event) -> Event:
        self.delivered += 1
        set_cause(event)
        return event

    def _check_state(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError(f"subscription {self.name!r} is closed")
        if self._overflowed:
            # Raised after the buffer was delivered: _last is where the gap is.
            raise SubscriberOverflowed(self.name, self.buffer, self._last)
        if self._ended:
            raise trio.EndOfChannel

    def _begin_catch_up(self) -> None:
        # Design rule 29: register for live events first, then read.
        self._fell_behind = False
        self._replaying = True
        self._bus._register(self)

    def receive_nowait(self) -> Event:
        """The next event if one is ready, without blocking.

        Raises:
            trio.WouldBlock: none is ready (or the store must be read first).
            trio.EndOfChannel: the bus closed and everything was delivered.
            SubscriberOverflowed: an ERROR subscription fell behind.
            trio.ClosedResourceError: the subscription was closed.
        """
        if self._closed:
            raise trio.ClosedResourceError(f"subscription {self.name!r} is closed")
        event = self._take()
        if event is not None:
            return self._deliver(event)
        if self._replaying or self._fell_behind:
            raise trio.WouldBlock
        self._check_state()
        raise trio.WouldBlock

    async def receive(self) -> Event:
        """The next event, waiting for one if needed.

        Every call checks for cancellation before it takes an event:
        cancelled, it raises ``trio.Cancelled`` and consumes nothing. It
        yields to the scheduler only when it waits for an event (or reads the
        store), and on every ``checkpoint_every``-th call of this subscription
        (the bus's, 64 by default) since it last did, which is then a full
        checkpoint; the other calls are not schedule points
        (``trio.testing.assert_no_checkpoints()`` passes around them). With
        ``EventBus(checkpoint_every=1)`` every call is a full checkpoint.
        ``async for`` over the subscription behaves the same. See "Checkpoints"
        in docs/events.md and design rule 17.

        Raises:
            trio.EndOfChannel: the bus closed and everything was delivered.
            SubscriberOverflowed: an ERROR subscription fell behind, after it
                delivered what it had buffered.
            trio.ClosedResourceError: the subscription was closed.
            trio.BusyResourceError: another task is receiving already.
        """
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise trio.EndOfChannel from None

    async def __anext__(self) -> Event:
        # The one copy of the receive path: ``async for`` (the hot path)
        # gets it without the wrapper coroutine the inherited __anext__ adds.
        # Design rule 17: the due call is a full checkpoint (trio's check
        # before the work, a shielded yield after it); the others only check.
        # A cancelled call raises through a full checkpoint: the count restarts.
        pace = self._pace
        due = pace.due()
        if due or cancel_requested():
            pace.reset()
            await trio.lowlevel.checkpoint_if_cancelled()
        queue = self._queue
        if queue and len(queue) < self.buffer and not (self._replay or self._replaying):
            # Fast path of _take: no replay, and no publisher waits for room.
            event: Event | None = queue[0]
            assert event is not None
            position = event.position
            if position is None:
                queue.popleft()
            elif self._last is None or position > self._last:
                queue.popleft()
                self._last = position
            else:
                event = self._take()
        else:
            event = self._take()
        if event is None:
            try:
                event = await self._wait_for_event()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        elif due:
            await trio.lowlevel.cancel_shielded_checkpoint()
        self.delivered += 1
        set_cause(event)
        return event

    async def _wait_for_event(self) -> Event:
        """The slow path of receive: read the store, catch up, or park."""
        while True:
            if self._closed:
                raise trio.ClosedResourceError(f"subscription {self.name!r} is closed")
            if self._replaying:
                await self._read_page()
            elif self._fell_behind:
                self._begin_catch_up()
            else:
                self._check_state()
                await self._park()
            event = self._take()
            if event is not None:
                return event

    async def _read_page(self) -> None:
        store = self._bus._store
        assert store is not None
        if self._resume:
            saved = await store.load_checkpoint(self.durable or "")
            self._resume = False
            if saved is not None:
                self._last = saved
        after = self._last or 0
        page = await store.read(self.filter, after=after, limit=DEFAULT_PAGE)
        self._pace.reset()
        if len(page) < DEFAULT_PAGE:
            self._replaying = False
            if not page:
                self._mark_caught_up()
        self._replay.extend(page)

    async def _park(self) -> None:
        if self._waiter is not None:
            raise trio.BusyResourceError(f"another task is receiving from {self.name!r}")
        self._waiter = current_task()

        def abort(_: object) -> Abort:
            self._waiter = None
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)
        self._pace.reset()

    @property
    def caught_up(self) -> bool:
        """Whether it delivers live events (it is not reading missed ones from the store)."""
        return not (self._replaying or self._fell_behind or self._replay)

    async def wait_caught_up(self) -> None:
        """Wait until every stored event it missed has been delivered.

        For a subscription from a position, or one that fell behind under
        CATCH_UP: returns once the replay has been handed out and only live
        events remain. Returns at once otherwise.
        """
        if self.caught_up:
            await trio.lowlevel.checkpoint()
            return
        if self._caught_up is None:
            self._caught_up = trio.Event()
        await self._caught_up.wait()

    async def save_checkpoint(self) -> None:
        """Save this durable subscription's position (``checkpoint_position``) in the store.

        A restarted subscription with the same ``durable`` name resumes after
        it. Call it after handling events: delivery is at least once.

        Raises:
            RuntimeError: the subscription is not durable.
        """
        if self.durable is None:
            raise RuntimeError(f"subscription {self.name!r} is not durable")
        store = self._bus._store
        assert store is not None
        if self._resume:
            # Nothing was read yet: the saved position stands.
            await trio.lowlevel.checkpoint()
            return
        await store.save_checkpoint(self.durable, self.checkpoint_position or 0)

    @property
    def last_position(self) -> int | None:
        """The position of the last stored event delivered (or the start position)."""
        return self._last

    @property
    def checkpoint_position(self) -> int | None:
        """How far this subscription has seen the log: what :meth:`save_checkpoint` saves.

        Every stored event up to it that the filter takes has been delivered.
        It is ``last_position``, moved on past the events the filter left
        out, so that a filtered durable subscription's checkpoint advances
        while nothing it takes is published (EventStoreDB sends checkpoint
        markers for this; see E5 in docs/design.md).
        """
        last = self._last
        if (
            self._replaying
            or self._replay
            or self._fell_behind
            or self._overflowed
            or self._closed
            or self._resume
            or self._bus._store is None
        ):
            return last
        # Live: the bus fanned out every stored event up to _fanned_out, in
        # order, and this subscription's buffer holds the ones it took and
        # not yet delivered (after copies of replayed ones, the overlap). So
        # everything before the first one still owed was delivered or left
        # out.
        seen = self._bus._fanned_out
        for event in self._queue:
            position = event.position
            if position is not None and (last is None or position > last):
                seen = position - 1
                break
        return seen if last is None else max(last, seen)

    def statistics(self) -> SubscriptionStatistics:
        """A frozen snapshot of this subscription."""
        return SubscriptionStatistics(
            name=self.name,
            buffer=self.buffer,
            overflow=self.overflow,
            buffered=len(self._queue) + len(self._replay),
            delivered=self.delivered,
            dropped=self.dropped,
            fell_behind=self.fell_behind_count,
            caught_up=self.caught_up,
            last_position=self._last,
            handler_errors=self.handler_errors,
        )

    def close(self) -> None:
        """Stop receiving: unregister and discard the buffer (idempotent, synchronous)."""
        if self._closed:
            return
        self._closed = True
        self._bus._unregister(self)
        self._bus._subscriptions.pop(self, None)
        self._queue.clear()
        self._replay.clear()
        self._wake()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_value is not None:
            # An error out of the handling of an event keeps that event as
            # its cause: aclose resets the current cause before a supervisor
            # sees the error (docs/design.md rule 40).
            keep_cause(exc_value, current_cause())
        await self.aclose()

    async def aclose(self) -> None:
        """Close the subscription (see :meth:`close`); a checkpoint.

        In the task that closes it (the ``async with`` exit), the current
        cause goes back to what it was when the subscription was made.
        """
        self.close()
        set_cause(self._outer_cause)
        await trio.lowlevel.checkpoint()


@final
class Handler:
    """A handler subscription, as :meth:`EventBus.add_handler` returns it.

    Attributes:
        name: its name, unique on its bus (also its child id under the bus's
            handler supervisor).
    """

    __slots__ = ("_done", "_subscription", "name")

    def __init__(self, name: str, subscription: Subscription) -> None:
        self.name = name
        self._subscription = subscription
        #: Set when its loop has ended (the bus waits for it on a clean exit).
        self._done = trio.Event()

    @property
    def subscription(self) -> Subscription:
        """The subscription it reads (a new one after an ``Overflow.ERROR`` overflow)."""
        return self._subscription

    def statistics(self) -> SubscriptionStatistics:
        """A frozen snapshot of its subscription, ``handler_errors`` included."""
        return self._subscription.statistics()

    def __repr__(self) -> str:
        return f"<Handler {self.name!r}>"


_ANY_FILTER: Final = EventFilter()


@final
class EventBus:
    """The system-wide event bus: publish once, every matching subscriber receives.

    ``async with EventBus(store=...) as bus:`` opens it (and a supervisor for
    its handlers); leaving the block closes it: subscriptions deliver what
    they have buffered and end, handlers finish their buffered events, then
    stop.

    With a store, events are appended to it first and fanned out when
    committed, carrying their position, in position order; catch-up
    subscriptions and the CATCH_UP policy read missed events from it.

    Args:
        store: where published events are kept; None keeps nothing.
        name: for errors, logs and statistics; default ``"bus-<n>"``.
        checkpoint_every: how often :meth:`publish` and
            :meth:`Subscription.receive` yield to the scheduler when they do
            not wait: every ``checkpoint_every``-th call (counted per bus for
            publish, per subscription for receive) is a full trio checkpoint;
            every call checks for cancellation. 1 makes every call a full
            checkpoint, as trio's own rule asks, at a cost in throughput (see
            "Checkpoints" in docs/events.md; design rule 17). Default 64.

    Raises:
        TypeError: ``store`` is not an EventStore.
        ValueError: an empty ``name``, or ``checkpoint_every`` is not an
            int >= 1.
    """

    __slots__ = (
        "__weakref__",
        "_by_type",
        "_checkpoint_every",
        "_entered",
        "_fanned_out",
        "_full",
        "_handlers",
        "_live",
        "_name",
        "_open",
        "_pace",
        "_published",
        "_remove_listener",
        "_stack",
        "_store",
        "_sub_names",
        "_subscriptions",
        "_supervisor",
    )

    def __init__(
        self,
        store: EventStore | None = None,
        *,
        name: str | None = None,
        checkpoint_every: int = EVERY,
    ) -> None:
        if store is not None and not isinstance(store, EventStore):
            raise TypeError(f"store must be an EventStore or None, got {store!r}")
        self._name = optional_name(name) or f"bus-{next(_bus_names)}"
        int_at_least("checkpoint_every", checkpoint_every, 1)
        self._checkpoint_every: int = checkpoint_every
        self._store = store
        # Invariants: see the module docstring.
        self._live: tuple[Subscription, ...] = ()
        self._full: dict[Subscription, None] = {}
        #: Every open subscription, registered or catching up.
        self._subscriptions: dict[Subscription, None] = {}
        self._handlers: dict[str, Handler] = {}
        self._sub_names = itertools.count(1)
        self._open = False
        self._entered = False
        self._pace = Pacer(checkpoint_every)
        self._published = 0
        #: The position of the last stored event fanned out (or the store's
        #: head when the bus opened).
        self._fanned_out = 0
        self._by_type: dict[EventType, int] = {}
        self._remove_listener: Callable[[], None] | None = None
        self._stack: AsyncExitStack | None = None
        self._supervisor: Supervisor | None = None

    @property
    def name(self) -> str:
        """The bus's name."""
        return self._name

    @property
    def store(self) -> EventStore | None:
        """The store events are kept in, if any."""
        return self._store

    @property
    def checkpoint_every(self) -> int:
        """Every how many calls :meth:`publish` and ``receive`` yield (see the class)."""
        return self._checkpoint_every

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<EventBus {self._name!r} {state} subscriptions={len(self._subscriptions)}>"

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"event bus {self._name!r} was already entered; build a new one")
        self._entered = True
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._supervisor = await stack.enter_async_context(
                Supervisor(name=f"{self._name}.handlers")
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        if self._store is not None:
            self._remove_listener = self._store.add_listener(self._on_commit)
            try:
                head = await self._store.head()
            except BaseException:
                await self.__aexit__(None, None, None)
                raise
            self._fanned_out = max(self._fanned_out, head)
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._close()
        stack = self._stack
        assert stack is not None
        assert self._supervisor is not None
        if exc is None:
            try:
                # Handlers finish the events they have, then return (TRANSIENT).
                for handler in list(self._handlers.values()):
                    await handler._done.wait()
                await self._supervisor.shutdown()
            except BaseException as error:
                # Cancelled while waiting: the supervisor stops the handlers
                # in order, then the error goes on.
                if not await stack.__aexit__(type(error), error, error.__traceback__):
                    raise
                return None
        return await stack.__aexit__(exc_type, exc, tb)

    def _close(self) -> None:
        self._open = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        for sub in list(self._subscriptions):
            sub._end()
        self._live = ()
        for sub in list(self._full):
            sub._room.unpark_all()
        self._full.clear()

    def _check_open(self) -> None:
        if not self._open:
            raise BusClosed(self._name)

    def _need_store(self, what: str) -> EventStore:
        if self._store is None:
            raise NoEventStore(self._name, what)
        return self._store

    # ------------------------------------------------------------ registration

    def _register(self, sub: Subscription) -> None:
        if self._open and sub not in self._live:
            self._live = (*self._live, sub)

    def _unregister(self, sub: Subscription) -> None:
        if sub in self._live:
            self._live = tuple(s for s in self._live if s is not sub)
        if self._full.pop(sub, 0) is None:
            sub._room.unpark_all()

    # ------------------------------------------------------------ publishing

    def _fan_out(self, event: Event) -> None:
        self._published += 1
        by_type = self._by_type
        by_type[event.type] = by_type.get(event.type, 0) + 1
        for sub in self._live:
            predicate = sub._predicate
            if predicate is None or predicate(event):
                queue = sub._queue
                if len(queue) < sub._fast_limit:
                    # The fast path of _offer: room left after this event.
                    queue.append(event)
                    task = sub._waiter
                    if task is not None:
                        sub._waiter = None
                        reschedule(task)
                else:
                    sub._offer(event)

    def _on_commit(self, events: Sequence[Event]) -> None:
        for event in events:
            self._fan_out(event)
        position = events[-1].position
        assert position is not None
        self._fanned_out = position

    def _blocker(self, event: Event) -> Subscription | None:
        for sub in self._full:
            if sub._predicate is None or sub._predicate(event):
                return sub
        return None

    async def publish(self, event: Event, *, persist: bool = True) -> Event:
        """Publish an event: store it (if the bus has a store), then deliver it.

        Waits first while a BLOCK subscriber that takes the event has a full
        buffer (backpressure). If cancelled while waiting, nothing was
        published; once the store has the event, it is delivered even if the
        publisher is cancelled.

        Every call checks for cancellation before it publishes: cancelled, it
        raises ``trio.Cancelled`` and publishes nothing. It yields to the
        scheduler only when it waits (for room, or for the store's append),
        and on every ``checkpoint_every``-th call on this bus (64 by default)
        since it last did, which is then a full checkpoint; the other calls
        are not schedule points (``trio.testing.assert_no_checkpoints()``
        passes around them) unless the store's append yields: a SQL store's
        always does, a :class:`MemoryEventStore`'s on every 64th append. With
        ``EventBus(checkpoint_every=1)`` every call is a full checkpoint. See
        "Checkpoints" in docs/events.md and design rule 17.

        Args:
            event: the event, e.g. from :meth:`Event.new`.
            persist: False delivers it without storing it (an ephemeral
                event: no position, not replayable).

        Returns:
            The event as delivered: with its position if it was stored. If the
            store already held its id, the stored event; nothing is delivered
            again.

        Raises:
            TypeError: ``event`` is not an Event.
            BusClosed: the bus is not open.
        """
        if type(event) is not Event:
            raise TypeError(f"expected an Event, got {event!r}")
        # Design rule 17: the due call is a full checkpoint (trio's check
        # before the work, a shielded yield after it); the others only check.
        # A cancelled call raises through a full checkpoint: the count restarts.
        pace = self._pace
        due = pace.due()
        if due or cancel_requested():
            pace.reset()
            await trio.lowlevel.checkpoint_if_cancelled()
        if not self._open:
            raise BusClosed(self._name)
        waited = False
        while self._full:
            blocker = self._blocker(event)
            if blocker is None:
                break
            waited = True
            await blocker._room.park()
            self._check_open()
        store = self._store
        if store is not None and persist:
            # The store's append may yield too (it paces itself).
            event = await store.append(event)
        else:
            self._fan_out(event)
        if waited:
            pace.reset()
        elif due:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    def publish_nowait(self, event: Event, *, persist: bool = True) -> None:
        """Publish an event without blocking.

        With a store that commits later, the event is delivered when it is
        committed.

        Raises:
            trio.WouldBlock: a BLOCK subscriber that takes the event is full,
                or the store cannot take it now; nothing was published.
            TypeError: ``event`` is not an Event.
            BusClosed: the bus is not open.
        """
        if type(event) is not Event:
            raise TypeError(f"expected an Event, got {event!r}")
        if not self._open:
            raise BusClosed(self._name)
        if self._full and self._blocker(event) is not None:
            raise trio.WouldBlock
        store = self._store
        if store is not None and persist:
            store.append_nowait(event)
        else:
            self._fan_out(event)

    # ------------------------------------------------------------ subscribing

    def subscribe(
        self,
        filter: EventFilter | None = None,
        *,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow = Overflow.BLOCK,
        from_position: int | None = None,
        durable: str | None = None,
        name: str | None = None,
    ) -> Subscription:
        """Subscribe to the events ``filter`` takes; use the result with ``async with``.

        The subscription is registered (buffering) when this returns. It is
        synchronous: no event can slip between subscribing and receiving.

        Args:
            filter: which events; None for all.
            buffer: events buffered before ``overflow`` applies; >= 1.
            overflow: what happens when the buffer is full.
            from_position: first deliver the stored events after this
                position (0 for the whole log), then live events, each exactly
                once and in order. Needs a store.
            durable: a durable subscription's name: it starts after the
                position last saved under that name in the store
                (:meth:`Subscription.save_checkpoint`), or after
                ``from_position`` (default 0) if none was, so it resumes
                where it left off after a restart. Delivery is at least
                once: save after handling. Needs a store.
            name: for statistics and errors; default: ``durable``, or
                ``"subscription-<n>"``.

        Returns:
            The :class:`Subscription`, a ``trio.abc.ReceiveChannel[Event]``.

        Raises:
            TypeError, ValueError: a bad argument (the message names it).
            NoEventStore: ``from_position``, ``durable`` or
                ``Overflow.CATCH_UP`` on a bus without a store.
            BusClosed: the bus is not open.
        """
        if filter is not None and not isinstance(filter, EventFilter):
            raise TypeError(f"filter must be an EventFilter or None, got {filter!r}")
        int_at_least("buffer", buffer, 1)
        if not isinstance(overflow, Overflow):
            raise TypeError(f"overflow must be an Overflow, got {overflow!r}")
        int_at_least("from_position", from_position, 0, optional=True)
        optional_name(name)
        if optional_str("durable", durable) is not None:
            self._need_store("a durable subscription")
            from_position = from_position or 0
        if from_position is not None:
            self._need_store("from_position")
        if overflow is Overflow.CATCH_UP:
            self._need_store("Overflow.CATCH_UP")
        self._check_open()
        sub = Subscription(
            self,
            filter,
            name=name or durable or f"subscription-{next(self._sub_names)}",
            buffer=buffer,
            overflow=overflow,
            from_position=from_position,
            durable=durable,
        )
        self._subscriptions[sub] = None
        self._register(sub)
        return sub

    async def add_handler(
        self,
        handler: Callable[[Event], Awaitable[object]],
        filter: EventFilter | None = None,
        *,
        name: str | None = None,
        buffer: int = DEFAULT_BUFFER,
        overflow: Overflow = Overflow.BLOCK,
        from_position: int | None = None,
    ) -> Handler:
        """Run ``await handler(event)`` for each event ``filter`` takes, as a supervised task.

        The handler runs in a child of the bus's supervisor, one event at a
        time, in order, with the event as the current cause. An exception it
        raises is isolated: it is logged (logger ``trio_smith.events``) and
        counted in ``handler_errors``, and the handler is called afresh with
        the next event; it never stops the bus or other subscribers (design
        rule 19). Under ``Overflow.ERROR`` the handler is resubscribed live
        after it fell behind.

        Args:
            handler: an async function of one event.
            filter, buffer, overflow, from_position: as for :meth:`subscribe`.
            name: unique on this bus; default ``"handler-<n>"``.

        Returns:
            A :class:`Handler`, to pass to :meth:`remove_handler`.

        Raises:
            TypeError: ``handler`` is not an async function.
            ValueError: a bad argument, or a name already in use.
            BusClosed: the bus is not open.
        """
        problem = async_problem(handler)
        if problem is not None:
            raise TypeError(f"handler must be an async function, got {problem}")
        self._check_open()
        if name is None:
            name = f"handler-{next(self._sub_names)}"
        if name in self._handlers:
            raise ValueError(f"a handler named {name!r} is already on bus {self._name!r}")
        sub = self.subscribe(
            filter, buffer=buffer, overflow=overflow, from_position=from_position, name=name
        )
        entry = Handler(name, sub)
        self._handlers[name] = entry
        assert self._supervisor is not None
        try:
            await self._supervisor.start_child(
                ChildSpec(
                    id=name,
                    fn=self._run_handler,
                    args=(entry, handler),
                    restart=Restart.TRANSIENT,
                )
            )
        except BaseException:
            self._handlers.pop(name, None)
            sub.close()
            raise
        return entry

    async def remove_handler(self, handler: Handler | str) -> None:
        """Stop a handler (at once) and drop its subscription; idempotent.

        Raises:
            BusClosed: the bus is not open.
        """
        name = handler.name if isinstance(handler, Handler) else handler
        self._check_open()
        entry = self._handlers.pop(name, None)
        if entry is None:
            await trio.lowlevel.checkpoint()
            return
        entry._subscription.close()
        assert self._supervisor is not None
        await self._supervisor.terminate_child(name)
        await self._supervisor.delete_child(name)

    async def _run_handler(
        self, entry: Handler, handler: Callable[[Event], Awaitable[object]]
    ) -> None:
        try:
            while True:
                sub = entry._subscription
                try:
                    event = await sub.receive()
                except (trio.EndOfChannel, trio.ClosedResourceError):
                    return
                except SubscriberOverflowed as exc:
                    log.warning(
                        "handler %r on bus %r: %s; resubscribing", entry.name, self._name, exc
                    )
                    fresh = self.subscribe(
                        sub.filter, buffer=sub.buffer, overflow=sub.overflow, name=sub.name
                    )
                    fresh.handler_errors = sub.handler_errors
                    fresh.fell_behind_count = sub.fell_behind_count
                    sub.close()
                    entry._subscription = fresh
                    continue
                try:
                    await handler(event)
                except Exception:
                    # Design rule 19: isolated, counted, logged; the next event
                    # gets a fresh call.
                    sub.handler_errors += 1
                    log.exception(
                        "handler %r on bus %r raised on event %s (%s)",
                        entry.name,
                        self._name,
                        event.id,
                        event.type,
                    )
        finally:
            entry._done.set()

    # ------------------------------------------------------------ reading the store

    def replay(
        self,
        since: Any = None,
        until: Any = None,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
    ) -> StoreScan:
        """Iterate over stored events, oldest first, a page at a time.

        ``async for event in bus.replay(since, until, filter):``.

        Args:
            since: earliest timestamp, inclusive (aware datetime), or None.
            until: latest timestamp, exclusive, or None.
            filter: further conditions.
            after: only positions greater than this.

        Raises:
            NoEventStore: the bus has no store.
            TypeError, ValueError: a bad argument.
        """
        store = self._need_store("replay")
        query = EventFilter(since=since, until=until)
        if filter is not None:
            if not isinstance(filter, EventFilter):
                raise TypeError(f"filter must be an EventFilter or None, got {filter!r}")
            query = query & filter
        return store.scan(None if query == _ANY_FILTER else query, after=after)

    async def get_by_id(self, event_id: UUID) -> Event | None:
        """The stored event with this id, or None.

        Raises:
            NoEventStore: the bus has no store.
        """
        return await self._need_store("get_by_id").get(event_id)

    async def get_by_correlation(self, correlation_id: UUID) -> list[Event]:
        """The stored events of one causal chain, in position order.

        Raises:
            NoEventStore: the bus has no store.
        """
        return await self._need_store("get_by_correlation").get_by_correlation(correlation_id)

    # ------------------------------------------------------------ introspection

    def statistics(self) -> BusStatistics:
        """A frozen snapshot: events published by type, deliveries, drops, handler errors."""
        subs = tuple(sub.statistics() for sub in self._subscriptions)
        return BusStatistics(
            name=self._name,
            open=self._open,
            published=self._published,
            published_by_type={kind.wire: n for kind, n in self._by_type.items()},
            delivered=sum(s.delivered for s in subs),
            dropped=sum(s.dropped for s in subs),
            handler_errors=sum(s.handler_errors for s in subs),
            subscriptions=subs,
        )

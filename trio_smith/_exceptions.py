"""Every error trio_smith raises on purpose, in one module.

Each class derives from :class:`TrioSmithError` and also from its builtin kin
(``LookupError`` for a missing child, ``RuntimeError`` for a call that does not
fit the current state), so callers can catch either. Each carries its facts as
attributes and has one exact message; the tests match the messages exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import attrs
import trio

__all__ = [
    "RestartRecord",
    "TrioSmithError",
    "IllegalStateTransition",
    "SupervisorError",
    "SupervisorGaveUp",
    "RestartIntensityExceeded",
    "ChildFailureEscalated",
    "ChildStartFailed",
    "ChildHung",
    "ChildNotFound",
    "ChildRunning",
    "ChildRestarting",
    "ChildAlreadyStarted",
    "ChildAlreadyPresent",
    "ChildLimitReached",
    "SupervisorNotRunning",
    "NoCurrentChild",
    "CallNotPermitted",
    "EventsError",
    "BusClosed",
    "StoreClosed",
    "NoEventStore",
    "StoreFileError",
    "StoreReadOnly",
    "SubscriberOverflowed",
]


@final
@attrs.frozen(kw_only=True)
class RestartRecord:
    """One entry of a supervisor's restart-intensity history (OTP R5.1).

    It lives here, at the bottom of the layering, because the give-up errors
    carry it; the intensity window in ``_core`` produces it.

    Attributes:
        at: when the restart was decided, in ``trio.current_time()`` seconds.
        child_id: the child being restarted.
    """

    at: float
    child_id: str


class TrioSmithError(Exception):
    """Base class of every error trio_smith raises on purpose."""


@final
class IllegalStateTransition(TrioSmithError, RuntimeError):
    """A state machine was given an input that its transition table does not allow.

    The machine is left exactly as it was. For a supervisor this means the
    runtime broke the core's protocol (a bug in trio_smith, please report it);
    for a circuit breaker it is a manual transition resilience4j forbids.

    Attributes:
        machine: which machine refused, e.g. ``"supervisor"``.
        state: the state it was in, as text.
        input: the refused input, as text.
    """

    def __init__(self, machine: str, state: str, input: str) -> None:
        super().__init__(f"{machine} in state {state} cannot handle {input}")
        self.machine = machine
        self.state = state
        self.input = input


class SupervisorError(TrioSmithError):
    """Base class of the errors of supervisors and of their child API."""


class SupervisorGaveUp(SupervisorError, RuntimeError):
    """A supervisor stopped all its children and gave up.

    Raised bare (never inside an ExceptionGroup) out of ``async with
    Supervisor(...)``; the child's own error, if any, is ``__cause__``.

    Attributes:
        child_id: the child whose exit made the supervisor give up.
        restarts: the restarts inside the intensity window at that moment,
            oldest first.
    """

    def __init__(self, message: str, child_id: str, restarts: Sequence[RestartRecord] = ()) -> None:
        super().__init__(message)
        self.child_id = child_id
        self.restarts: tuple[RestartRecord, ...] = tuple(restarts)


@final
class RestartIntensityExceeded(SupervisorGaveUp):
    """More than ``max_restarts`` restarts happened within ``within`` seconds (OTP R5.3).

    Attributes:
        child_id: the child whose restart was one too many.
        max_restarts: the supervisor's limit.
        within: the supervisor's window, in seconds.
        restarts: the restarts in the window, the fatal one included, oldest first.
    """

    def __init__(
        self,
        child_id: str,
        *,
        max_restarts: int,
        within: float,
        restarts: Sequence[RestartRecord] = (),
    ) -> None:
        super().__init__(
            f"restart intensity exceeded: {len(restarts)} restarts within {within!r} s "
            f"(max_restarts={max_restarts!r}); the last one was for child {child_id!r}",
            child_id,
            restarts,
        )
        self.max_restarts = max_restarts
        self.within = within


@final
class ChildFailureEscalated(SupervisorGaveUp):
    """A child exited abnormally under ``Strategy.ESCALATE``."""

    def __init__(self, child_id: str, *, restarts: Sequence[RestartRecord] = ()) -> None:
        super().__init__(
            f"child {child_id!r} failed and the strategy is ESCALATE", child_id, restarts
        )


@final
class ChildStartFailed(SupervisorError, RuntimeError):
    """A child failed before it had started (OTP R2.3, R1.11 ``start_child``).

    The child's own error is ``__cause__``.

    Attributes:
        child_id: the child that failed to start.
    """

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} failed to start")
        self.child_id = child_id


@final
class ChildHung(SupervisorError, TimeoutError):
    """A watched child stopped sending heartbeats: its phi reached the threshold.

    The supervisor cancels the child; its exit is abnormal with this error
    (not a stop), so the strategy, restart type and intensity apply as for a
    crash, and a give-up error carries it as ``__cause__``. See
    ``trio_smith.Heartbeat``.

    Attributes:
        child_id: the hung child.
        supervisor: its supervisor's name.
        phi: the suspicion level when it was judged (``math.inf`` possible).
        silence: seconds since its last heartbeat (or its start).
        threshold: the threshold phi reached.
    """

    def __init__(
        self, child_id: str, supervisor: str, *, phi: float, silence: float, threshold: float
    ) -> None:
        super().__init__(
            f"child {child_id!r} of supervisor {supervisor!r} is hung: no heartbeat for "
            f"{silence:.3f} s (phi {phi:.2f} >= threshold {threshold!r})"
        )
        self.child_id = child_id
        self.supervisor = supervisor
        self.phi = phi
        self.silence = silence
        self.threshold = threshold


@final
class ChildNotFound(SupervisorError, LookupError):
    """No child with this id (OTP ``{error,not_found}``)."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"no child with id {child_id!r}")
        self.child_id = child_id


@final
class ChildRunning(SupervisorError, RuntimeError):
    """The child is running, so it cannot be restarted or deleted (OTP ``{error,running}``)."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is running")
        self.child_id = child_id


@final
class ChildRestarting(SupervisorError, RuntimeError):
    """The child waits for an automatic restart (OTP ``{error,restarting}``)."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is restarting")
        self.child_id = child_id


@final
class ChildAlreadyStarted(SupervisorError, RuntimeError):
    """A child with this id is running (OTP ``{error,{already_started,Pid}}``)."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is already started")
        self.child_id = child_id


@final
class ChildAlreadyPresent(SupervisorError, RuntimeError):
    """A child with this id exists but is not running (OTP ``{error,already_present}``)."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id!r} is already present")
        self.child_id = child_id


@final
class ChildLimitReached(SupervisorError, RuntimeError):
    """A dynamic supervisor already runs ``max_children`` children (Elixir ``:max_children``)."""

    def __init__(self, supervisor: str, max_children: int) -> None:
        super().__init__(
            f"supervisor {supervisor!r} already has max_children={max_children!r} children"
        )
        self.supervisor = supervisor
        self.max_children = max_children


@final
class SupervisorNotRunning(SupervisorError, RuntimeError):
    """The supervisor has not been entered yet, or is stopping, or has stopped.

    Raised by the child API (``start_child`` and the like) instead of waiting
    for ever, also when a shutdown interrupts a request that was under way.
    """

    def __init__(self, supervisor: str) -> None:
        super().__init__(f"supervisor {supervisor!r} is not running")
        self.supervisor = supervisor


@final
class NoCurrentChild(TrioSmithError, LookupError):
    """``current_child()`` was called outside a supervised child."""

    def __init__(self) -> None:
        super().__init__("current_child() was called outside a child of a trio_smith supervisor")


@final
class CallNotPermitted(TrioSmithError, RuntimeError):
    """A circuit breaker rejected a call (resilience4j ``CallNotPermittedException``).

    Attributes:
        breaker: the breaker's name.
        state: the state that rejected the call, e.g. ``"OPEN"``.
        retry_after: seconds until the breaker will admit a trial call, or None
            if no time will (forced open, or half-open and full).
    """

    def __init__(self, breaker: str, state: str, retry_after: float | None = None) -> None:
        super().__init__(f"circuit breaker {breaker!r} is {state} and does not permit calls")
        self.breaker = breaker
        self.state = state
        self.retry_after = retry_after


class EventsError(TrioSmithError):
    """Base class of the errors of the event bus and the event stores."""


@final
class BusClosed(EventsError, trio.ClosedResourceError):
    """The event bus is not open: it was never entered, or it has closed."""

    def __init__(self, bus: str) -> None:
        super().__init__(f"event bus {bus!r} is not open")
        self.bus = bus


@final
class StoreClosed(EventsError, trio.ClosedResourceError):
    """The event store has been closed."""

    def __init__(self, store: str) -> None:
        super().__init__(f"event store {store!r} is closed")
        self.store = store


@final
class StoreReadOnly(EventsError, PermissionError):
    """The event store was opened read-only (``read_only=True``): it takes no writes."""

    def __init__(self, store: str) -> None:
        super().__init__(f"event store {store!r} is read-only")
        self.store = store


@final
class StoreFileError(EventsError, OSError):
    """A store file cannot be used; it was left exactly as it was.

    Raised when the file is not a trio_smith event store, has a newer schema
    than this version reads, is corrupt, or its directory does not exist.

    Attributes:
        path: the file.
        reason: what is wrong, in words.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot open event store {path!r}: {reason}")
        self.path = path
        self.reason = reason


@final
class NoEventStore(EventsError, RuntimeError):
    """An operation needs the bus's store, and the bus has none."""

    def __init__(self, bus: str, operation: str) -> None:
        super().__init__(f"event bus {bus!r} has no store, which {operation} needs")
        self.bus = bus
        self.operation = operation


@final
class SubscriberOverflowed(EventsError, BufferError):
    """A subscription with ``Overflow.ERROR`` fell behind its publishers.

    Raised by the subscription after it has delivered every event it had
    buffered, so ``last_position`` is exactly where the gap begins
    (EventStoreDB's "Consumer too slow").

    Attributes:
        subscription: the subscription's name.
        buffer: its buffer size.
        last_position: the position of the last event it delivered, or None.
    """

    def __init__(self, subscription: str, buffer: int, last_position: int | None) -> None:
        super().__init__(
            f"subscription {subscription!r} fell behind: its buffer of {buffer} events "
            f"was full (last delivered position {last_position!r})"
        )
        self.subscription = subscription
        self.buffer = buffer
        self.last_position = last_position

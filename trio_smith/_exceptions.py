"""Every error trio_smith raises on purpose, in one module, except two.

``BusClosed`` and ``StoreClosed`` also derive from
``trio.ClosedResourceError``, so they live in ``trio_smith/events/_closed.py``:
this module sits below the pure core and must not import trio (design rules
8 and 11).

Each class derives from :class:`TrioSmithError` and also from its builtin kin
(``LookupError`` for a missing child, ``RuntimeError`` for a call that does not
fit the current state), so callers can catch either. Each carries its facts as
attributes and has one exact message; the tests match the messages exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import attrs

__all__ = [
    "RestartRecord",
    "TrioSmithError",
    "IllegalStateTransition",
    "TrioInternalsChanged",
    "ProcessFailed",
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
    "ChildFailed",
    "ChildTerminated",
    "SupervisorNotRunning",
    "NoCurrentChild",
    "CallNotPermitted",
    "BulkheadFull",
    "RequestNotPermitted",
    "CallTimedOut",
    "MaxRetriesExceeded",
    "EventsError",
    "NoEventStore",
    "StoreOpenError",
    "StoreFileError",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreFull",
    "StoreCorrupt",
    "PruneRefused",
    "SubscriberOverflowed",
    "AlreadyInstrumented",
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
        normal_exit: the restart followed a normal return of a PERMANENT
            child (OTP restarts those too), not a failure.
    """

    at: float
    child_id: str
    normal_exit: bool = False


class TrioSmithError(Exception):
    """Base class of every error trio_smith raises on purpose."""


@final
class TrioInternalsChanged(TrioSmithError, ImportError):
    """A private trio name trio_smith reads is missing or has changed shape.

    Raised by ``import trio_smith`` (docs/design.md rule 32), naming the
    private name and trio's version.
    """


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

    When some of those restarts followed normal returns (a PERMANENT child
    is restarted when it returns, as in OTP), the message says how many, of
    which children, and how many followed failures.

    Attributes:
        child_id: the child whose restart was one too many.
        max_restarts: the supervisor's limit.
        within: the supervisor's window, in seconds.
        restarts: the restarts in the window, the fatal one included, oldest first.
        normal_exits: how many of them followed a normal return.
    """

    def __init__(
        self,
        child_id: str,
        *,
        max_restarts: int,
        within: float,
        restarts: Sequence[RestartRecord] = (),
    ) -> None:
        records = tuple(restarts)
        message = (
            f"restart intensity exceeded: {len(records)} restarts within {within!r} s "
            f"(max_restarts={max_restarts!r}); the last one was for child {child_id!r}"
        )
        returned: dict[str, int] = {}
        for record in records:
            if record.normal_exit:
                returned[record.child_id] = returned.get(record.child_id, 0) + 1
        normal_exits = sum(returned.values())
        if normal_exits:
            # A PERMANENT child that may finish is the usual mistake behind
            # this: say so, and what to use instead.
            children = ", ".join(
                f"child {cid!r} returned {'once' if n == 1 else f'{n} times'}"
                for cid, n in returned.items()
            )
            message += (
                f"; {normal_exits} came after a normal return ({children}) and "
                f"{len(records) - normal_exits} after a failure: a PERMANENT child is "
                f"restarted when it returns; use Restart.TRANSIENT or Restart.TEMPORARY "
                f"for a child that may finish"
            )
        super().__init__(message, child_id, records)
        self.max_restarts = max_restarts
        self.within = within
        self.normal_exits = normal_exits


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
class ProcessFailed(TrioSmithError, RuntimeError):
    """A supervised program (``os_process``) ended with an exit it does not count as normal.

    Its child's exit is abnormal with this error: the strategy, restart type
    and intensity apply as for any crash.

    Attributes:
        program: the program (``argv[0]``).
        returncode: its exit code, or None if a signal ended it.
        signal: the name of the signal that ended it (``"SIGKILL"``), or None.
        output: its last lines of output (stdout and stderr), oldest first.
    """

    def __init__(
        self,
        program: str,
        *,
        returncode: int | None,
        signal: str | None,
        output: tuple[str, ...] = (),
    ) -> None:
        how = f"was killed by {signal}" if signal is not None else f"exited with code {returncode}"
        super().__init__(f"program {program!r} {how}")
        self.program = program
        self.returncode = returncode
        self.signal = signal
        self.output = output


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
    """No child with this id (OTP ``{error,not_found}``), or no supervisor at a path.

    ``Supervisor.find(path)`` raises it with ``path`` and ``found`` set.

    Attributes:
        child_id: the id that is missing; for ``find``, the first name of the
            path that was not found.
        path: the path ``find`` was asked for, or None.
        found: the part of that path that was found (the supervisor that
            runs no supervisor named ``child_id``), or None if the path does
            not begin with the name of the supervisor searched from.
    """

    def __init__(self, child_id: str, *, path: str | None = None, found: str | None = None) -> None:
        if path is None:
            message = f"no child with id {child_id!r}"
        elif found is None:
            message = (
                f"no supervisor at {path!r}: the supervisor searched from is not named {child_id!r}"
            )
        else:
            message = f"no supervisor at {path!r}: {found!r} runs no supervisor named {child_id!r}"
        super().__init__(message)
        self.child_id = child_id
        self.path = path
        self.found = found


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


@final
class BulkheadFull(TrioSmithError, RuntimeError):
    """A bulkhead had no permit for a call within its wait (resilience4j ``BulkheadFullException``).

    Attributes:
        bulkhead: the bulkhead's name.
        max_concurrent_calls: its limit when it refused the call.
    """

    def __init__(self, bulkhead: str, max_concurrent_calls: int) -> None:
        super().__init__(f"bulkhead {bulkhead!r} is full and does not permit further calls")
        self.bulkhead = bulkhead
        self.max_concurrent_calls = max_concurrent_calls


@final
class RequestNotPermitted(TrioSmithError, RuntimeError):
    """A rate limiter had no permit for a call within its timeout (resilience4j's name).

    Attributes:
        rate_limiter: the rate limiter's name.
        retry_after: seconds the call would have had to wait for its permit
            (longer than the limiter's timeout): a caller may sleep that long
            and try again.
    """

    def __init__(self, rate_limiter: str, retry_after: float) -> None:
        super().__init__(f"rate limiter {rate_limiter!r} does not permit further calls")
        self.rate_limiter = rate_limiter
        self.retry_after = retry_after


@final
class CallTimedOut(TrioSmithError, TimeoutError):
    """A time limiter's deadline passed before its call returned.

    A ``TimeoutError`` (so an ``Exception``, unlike ``trio.Cancelled``): a
    circuit breaker around the time limiter records it as a failure, and a
    Retry around it retries it, as resilience4j's ``TimeoutException`` is.

    Attributes:
        time_limiter: the time limiter's name.
        timeout: its timeout, seconds.
    """

    def __init__(self, time_limiter: str, timeout: float) -> None:
        super().__init__(f"time limiter {time_limiter!r} timed out the call after {timeout!r} s")
        self.time_limiter = time_limiter
        self.timeout = timeout


@final
class MaxRetriesExceeded(TrioSmithError, RuntimeError):
    """A Retry with ``fail_after_max_attempts=True`` ran out of attempts on results.

    resilience4j ``MaxRetriesExceededException``: without that option the
    last result is returned instead. Attempts that end in exceptions never
    raise it: the last exception itself propagates.

    Attributes:
        retry: the Retry's name.
        attempts: the attempts made (its ``max_attempts``).
        last_result: what the last attempt returned.
    """

    def __init__(self, retry: str, attempts: int, last_result: object) -> None:
        super().__init__(f"retry {retry!r} has exhausted all attempts ({attempts})")
        self.retry = retry
        self.attempts = attempts
        self.last_result = last_result


class EventsError(TrioSmithError):
    """Base class of the errors of the event bus and the event stores."""


@final
class StoreReadOnly(EventsError, PermissionError):
    """The event store was opened read-only (``read_only=True``): it takes no writes."""

    def __init__(self, store: str) -> None:
        super().__init__(f"event store {store!r} is read-only")
        self.store = store


class StoreOpenError(EventsError, OSError):
    """A store cannot be opened; nothing was created or modified.

    Raised when opening (``async with``) finds no file or server, a file or
    schema that is not a trio_smith event store, a newer schema than this
    version reads, or a store it may not use as asked.

    Attributes:
        store: the store's name (a path, or a database URL without its password).
        reason: what is wrong, in words.
        missing: there is no store there yet (opening read-only, which
            creates none): it may appear later.
    """

    def __init__(self, store: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(f"cannot open event store {store!r}: {reason}")
        self.store = store
        self.reason = reason
        self.missing = missing


@final
class StoreFileError(StoreOpenError):
    """A store file cannot be used; it was left exactly as it was.

    Raised when the file is not a trio_smith event store, has a newer schema
    than this version reads, is corrupt, cannot be written when opened for
    writing, or its directory does not exist.

    Attributes:
        path: the file.
        reason: what is wrong, in words.
        missing: there is no store file yet (opening read-only).
    """

    def __init__(self, path: str, reason: str, *, missing: bool = False) -> None:
        super().__init__(path, reason, missing=missing)
        self.path = path


@final
class StoreUnavailable(EventsError, ConnectionError):
    """The store's file or server cannot be used right now; try again later.

    Raised by an operation when the database server has gone away or cannot
    be reached, or another process holds the file's write lock for longer
    than ``busy_timeout``. An append that raised it was not acknowledged; if
    the connection broke during the commit it may still have been committed,
    so append the same event again (appends are idempotent by id). The store
    reconnects by itself.

    Attributes:
        store: the store's name.
        reason: what went wrong, in words.
    """

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"event store {store!r} is unavailable: {reason}")
        self.store = store
        self.reason = reason


@final
class StoreFull(EventsError, OSError):
    """The store's disk (or database) has no room for the append.

    Nothing of the failed batch was committed, and nothing committed before
    is lost; appends succeed again once there is room.

    Attributes:
        store: the store's name.
        reason: what the engine said, in words.
    """

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"event store {store!r} is full: {reason}")
        self.store = store
        self.reason = reason


@final
class StoreCorrupt(EventsError, ValueError):
    """A stored event cannot be read back: its row was damaged outside trio_smith.

    Attributes:
        store: the store's name.
        position: the damaged event's position.
        reason: what is wrong with it, in words.
    """

    def __init__(self, store: str, position: int, reason: str) -> None:
        super().__init__(
            f"event store {store!r} holds a damaged event at position {position}: {reason}"
        )
        self.store = store
        self.position = position
        self.reason = reason


@final
class PruneRefused(EventsError, RuntimeError):
    """``prune`` would remove events a durable subscription has not handled yet.

    Nothing was removed. ``prune(..., force=True)`` removes them anyway.

    Attributes:
        store: the store's name.
        subscription: the durable subscription furthest behind.
        checkpoint: the position it last saved.
        through: the last position the prune would have removed.
    """

    def __init__(self, store: str, subscription: str, checkpoint: int, through: int) -> None:
        super().__init__(
            f"cannot prune event store {store!r} through position {through}: durable "
            f"subscription {subscription!r} has its checkpoint at position {checkpoint}"
        )
        self.store = store
        self.subscription = subscription
        self.checkpoint = checkpoint
        self.through = through


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


class RoutingError(TrioSmithError):
    """Base class of the errors of the agent registry and the router."""


@final
class AgentNotFound(RoutingError, LookupError):
    """No agent is registered under this name (never, or no longer).

    Attributes:
        agent: the name looked up.
    """

    def __init__(self, agent: str) -> None:
        super().__init__(f"no agent named {agent!r}")
        self.agent = agent


@final
class AgentNameTaken(RoutingError, ValueError):
    """A running agent already holds this name.

    Attributes:
        agent: the name.
    """

    def __init__(self, agent: str) -> None:
        super().__init__(f"the agent name {agent!r} is taken by a running agent")
        self.agent = agent


@final
class AgentUnavailable(RoutingError, ConnectionError):
    """The agent is down (restarting, or stopped) and did not come back in time.

    Attributes:
        agent: the agent's name.
        waited: seconds the sender waited for it.
    """

    def __init__(self, agent: str, waited: float) -> None:
        super().__init__(f"agent {agent!r} is not running; waited {waited:g} s for it to restart")
        self.agent = agent
        self.waited = waited


@final
class AgentDied(RoutingError, ConnectionAbortedError):
    """The agent ended (crashed, hung, was stopped) before it replied.

    The caller learns it at once. The agent's own error, if it crashed, is
    the ``__cause__``.

    Attributes:
        agent: the agent's name.
        request_id: the request it was handling or had queued.
        reason: how it ended, e.g. ``"crashed: ValueError: bad input"``.
    """

    def __init__(self, agent: str, request_id: object, reason: str) -> None:
        super().__init__(f"agent {agent!r} ended before replying to request {request_id}: {reason}")
        self.agent = agent
        self.request_id = request_id
        self.reason = reason


@final
class RequestTimeout(RoutingError, TimeoutError):
    """No reply came within the request's timeout.

    A reply that comes later is dropped (and counted); it never reaches the
    caller and never fails the agent.

    Attributes:
        agent: the agent's name.
        request_id: the request, or None if the agent stayed down (restarting)
            the whole time and the request was never sent.
        timeout: the timeout, in seconds.
    """

    def __init__(self, agent: str, request_id: object, timeout: float) -> None:
        detail = "it stayed down" if request_id is None else f"request {request_id}"
        super().__init__(f"no reply from agent {agent!r} within {timeout:g} s ({detail})")
        self.agent = agent
        self.request_id = request_id
        self.timeout = timeout


@final
class NoRoute(RoutingError, LookupError):
    """The router has no role for this task type and no default.

    Attributes:
        task_type: the task's type.
    """

    def __init__(self, task_type: str) -> None:
        super().__init__(f"no route for task type {task_type!r} and no default role")
        self.task_type = task_type


@final
class NoAgentAvailable(RoutingError, ConnectionError):
    """No agent of the role can take the task now (none, all down, or all behind an open breaker).

    Attributes:
        role: the role.
        down: agents of the role that are down (restarting or stopped).
        open: agents whose circuit breaker refused the task.
    """

    def __init__(self, role: str, *, down: int = 0, open: int = 0) -> None:
        if down == 0 and open == 0:
            detail = "no agent has that role"
        else:
            detail = f"{down} down, {open} behind an open circuit breaker"
        super().__init__(f"no agent of role {role!r} is available: {detail}")
        self.role = role
        self.down = down
        self.open = open


@final
class UnexpectedReply(RoutingError, TypeError):
    """An agent's reply is not of the type the caller asked for (``reply_type=``).

    The request itself completed: the agent replied and goes on.

    Attributes:
        agent: the agent that replied.
        reply: what it replied.
        expected: the type the caller asked for.
    """

    def __init__(self, agent: str, reply: object, expected: type) -> None:
        super().__init__(
            f"agent {agent!r} replied with a value of type {type(reply).__qualname__}, "
            f"expected {expected.__qualname__}"
        )
        self.agent = agent
        self.reply = reply
        self.expected = expected


@final
class ChildFailed(SupervisorError, RuntimeError):
    """A pool child failed and will not be restarted: ``ChildHandle.wait()`` raises it.

    The child's own error is ``__cause__`` (``ChildHung`` for a hung child).
    It was temporary, or its supervisor gave up because of this failure
    (``ESCALATE``, or one restart too many). See docs/design.md rule 39.

    Attributes:
        child_id: the child.
        supervisor: its supervisor's name.
    """

    def __init__(self, child_id: str, supervisor: str) -> None:
        super().__init__(
            f"child {child_id!r} of supervisor {supervisor!r} failed and was not restarted"
        )
        self.child_id = child_id
        self.supervisor = supervisor


@final
class ChildTerminated(SupervisorError, RuntimeError):
    """A pool child was stopped for good by its supervisor: ``ChildHandle.wait()`` raises it.

    Attributes:
        child_id: the child.
        supervisor: its supervisor's name.
        reason: ``"terminate_child"`` (``terminate_child(handle)``),
            ``"shutdown"`` (the supervisor stopped: ``shutdown()``, an error
            in its block, cancellation) or ``"gave_up"`` (the supervisor gave
            up because of another child; its ``RestartIntensityExceeded`` or
            ``ChildFailureEscalated`` is ``__cause__``).
    """

    def __init__(self, child_id: str, supervisor: str, reason: str) -> None:
        how = {
            "terminate_child": "by terminate_child()",
            "shutdown": "by its supervisor's shutdown",
            "gave_up": "because its supervisor gave up",
        }[reason]
        super().__init__(f"child {child_id!r} of supervisor {supervisor!r} was stopped {how}")
        self.child_id = child_id
        self.supervisor = supervisor
        self.reason = reason


@final
class AlreadyInstrumented(TrioSmithError, RuntimeError):
    """``trio_smith.otel.instrument()`` was called while an instrumentation is attached."""

    def __init__(self) -> None:
        super().__init__(
            "trio_smith is already instrumented for OpenTelemetry: call uninstrument() on the "
            "Instrumentation that instrument() returned before instrumenting again"
        )

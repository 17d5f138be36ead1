"""The supervision core's protocol: the facts it takes and the commands it gives.

``SupervisorMachine.handle(input, now=...)`` takes one input and returns a list
of commands for the runtime to carry out in order. Non-blocking commands
(:class:`ScheduleRestart`, :class:`CancelRestart`, :class:`CancelChild`,
:class:`Reply`) are done at once. A blocking command (:class:`StartChild`,
:class:`StopChild` or, in a pool, :class:`StopChildren`) is always the last of
its list, and the next input must be its result (:class:`ChildStarted` /
:class:`StartFailed` / :class:`StartIgnored`, or :class:`ChildStopped`, one per
child of a :class:`StopChildren`, in any order) — or
:class:`ShutdownRequested`, which may interrupt. :class:`ChildJudgedHung` is
taken meanwhile too: it only ever gives a :class:`CancelChild`.
:class:`Exit` is the very last command the machine ever gives.

This is OTP R12.1 ("one event at a time, run to completion") made explicit:
while a blocking command is out, the runtime queues every other fact (child
exits, API requests, timers) and feeds it only when the machine is idle again.
"""

from __future__ import annotations

import enum
from typing import final

import attrs

from .._exceptions import RestartRecord
from ._spec import ChildSpec

__all__ = [
    "BLOCKING",
    "CancelChild",
    "CancelRestart",
    "ChildExited",
    "ChildJudgedHung",
    "ChildStarted",
    "ChildStopped",
    "Command",
    "DeleteChildRequested",
    "Exit",
    "ExitKind",
    "ExitReason",
    "Input",
    "Reply",
    "ReplyOutcome",
    "RestartChildRequested",
    "ScheduleRestart",
    "ShutdownRequested",
    "StartChild",
    "StartChildRequested",
    "StartFailed",
    "StartIgnored",
    "StartupRequested",
    "StopChild",
    "StopChildren",
    "TerminateChildRequested",
    "TimerFired",
]


# ----------------------------------------------------------------- facts (inputs)


@final
class ExitKind(enum.Enum):
    """How a child ended by itself (OTP R3.1)."""

    #: It returned (OTP ``normal``, ``shutdown``, ``{shutdown, _}``).
    NORMAL = "normal"
    #: It raised, or was hard-cancelled by something other than its supervisor.
    ABNORMAL = "abnormal"


@final
@attrs.frozen(kw_only=True)
class StartupRequested:
    """Start the children of the spec list, one at a time, in order (OTP R2.1)."""


@final
@attrs.frozen(kw_only=True)
class ShutdownRequested:
    """Stop every child in reverse start order, then exit.

    Legal in every state: while a blocking command is out it interrupts the
    current operation (outer cancellation cannot wait for it).
    """


@final
@attrs.frozen(kw_only=True)
class ChildStarted:
    """Result of :class:`StartChild`: the child is running."""

    child_id: str


@final
@attrs.frozen(kw_only=True)
class StartFailed:
    """Result of :class:`StartChild`: the child failed before it had started."""

    child_id: str
    error: object = None


@final
@attrs.frozen(kw_only=True)
class StartIgnored:
    """Result of :class:`StartChild`: the child chose not to run (OTP ``ignore``)."""

    child_id: str


@final
@attrs.frozen(kw_only=True)
class ChildStopped:
    """Result of :class:`StopChild`: the child is gone, whatever way it ended.

    A child that had already ended by itself when its stop came is reported
    here too; its own exit fact is then stale and ignored (OTP R7.1).
    """

    child_id: str


@final
@attrs.frozen(kw_only=True)
class ChildExited:
    """A running child ended by itself (never because its supervisor stopped it).

    Stale facts (an older incarnation, a child no longer running, an unknown
    id) are ignored (OTP R7.3).
    """

    child_id: str
    incarnation: int
    kind: ExitKind
    error: object = None


@final
@attrs.frozen(kw_only=True)
class TimerFired:
    """The delay of a :class:`ScheduleRestart` is over (stale timers are ignored)."""

    child_id: str
    timer: int


@final
@attrs.frozen(kw_only=True)
class ChildJudgedHung:
    """The runtime's hang detector (phi accrual) judged this incarnation hung.

    The machine answers :class:`CancelChild` when the verdict is about the
    current incarnation of a running or starting child that is not being
    stopped, and the machine is not shutting down; any other verdict is stale
    and ignored. Taken in every phase but NEW, also while a start or stop of
    another child is out: it changes nothing in the machine.
    """

    child_id: str
    incarnation: int


@final
@attrs.frozen(kw_only=True)
class StartChildRequested:
    """API ``start_child(spec)`` (OTP 1.11)."""

    spec: ChildSpec


@final
@attrs.frozen(kw_only=True)
class RestartChildRequested:
    """API ``restart_child(id)`` (OTP 1.11)."""

    child_id: str


@final
@attrs.frozen(kw_only=True)
class TerminateChildRequested:
    """API ``terminate_child(id)`` (OTP 1.11)."""

    child_id: str


@final
@attrs.frozen(kw_only=True)
class DeleteChildRequested:
    """API ``delete_child(id)`` (OTP 1.11)."""

    child_id: str


Input = (
    StartupRequested
    | ShutdownRequested
    | ChildStarted
    | StartFailed
    | StartIgnored
    | ChildStopped
    | ChildExited
    | TimerFired
    | StartChildRequested
    | RestartChildRequested
    | TerminateChildRequested
    | DeleteChildRequested
    | ChildJudgedHung
)

# ----------------------------------------------------------------- commands


@final
@attrs.frozen(kw_only=True)
class StartChild:
    """Blocking: start this child; answer with its start result.

    ``incarnation`` numbers every start of the machine; the runtime tags the
    child's exit fact with it so that stale exits can be told apart.
    """

    child_id: str
    incarnation: int


@final
@attrs.frozen(kw_only=True)
class StopChild:
    """Blocking: stop this child as its ``shutdown`` says; answer :class:`ChildStopped`.

    Also sent for a child whose start is under way when a shutdown interrupts
    it: the runtime then aborts the start.
    """

    child_id: str


@final
@attrs.frozen(kw_only=True)
class StopChildren:
    """Blocking, pools only: stop all these children at once; answer one
    :class:`ChildStopped` per child, in any order.

    A pool's shutdown (OTP ``terminate_dynamic_children``, R4.7): every child
    is asked to stop at the same instant, and each gets its own
    ``ChildSpec.shutdown`` timed from that instant (OTP: one timer for all).
    ``child_ids`` are in reverse start order. One of them may be a child
    whose start is under way (a shutdown interrupted it): the runtime aborts
    that start, as for :class:`StopChild`. A machine that is not a pool never
    gives this command.
    """

    child_ids: tuple[str, ...]


@final
@attrs.frozen(kw_only=True)
class ScheduleRestart:
    """Feed ``TimerFired(child_id, timer)`` after ``delay`` seconds.

    ``delay == 0`` means "after the facts already queued": OTP's
    ``try_again_restart`` message to itself (R6.1), which lets a pending
    shutdown or ``terminate_child`` in between two attempts (R6.7).
    """

    child_id: str
    delay: float
    timer: int


@final
@attrs.frozen(kw_only=True)
class CancelRestart:
    """Drop the pending timer of a :class:`ScheduleRestart`; its firing would be stale."""

    child_id: str
    timer: int


@final
@attrs.frozen(kw_only=True)
class CancelChild:
    """Cancel this incarnation of a child: it was judged hung (:class:`ChildJudgedHung`).

    Not a stop: the child's end comes back as an ordinary
    :class:`ChildExited` (``ABNORMAL``), or as :class:`StartFailed` if it was
    still starting, and the restart rules apply. An incarnation that has
    already ended is left alone.
    """

    child_id: str
    incarnation: int


@final
class ReplyOutcome(enum.Enum):
    """How an API request that was accepted ended."""

    OK = "ok"
    #: The child's start said "ignore"; it is not running (OTP ``{ok,undefined}``).
    IGNORED = "ignored"
    #: The child failed before it had started; ``Reply.error`` is its error.
    START_FAILED = "start_failed"
    #: A shutdown interrupted the request.
    ABORTED = "aborted"
    #: ``start_child`` refused: the machine holds ``max_children`` children
    #: already (Elixir ``DynamicSupervisor``); nothing changed.
    LIMIT_REACHED = "limit_reached"


@final
@attrs.frozen(kw_only=True)
class Reply:
    """The API request being handled is complete.

    Requests refused at once (unknown id, running child, ...) do not get a
    Reply: ``handle`` raises the API error and changes nothing. The one
    exception is ``LIMIT_REACHED``: a refusal that is a Reply (the machine
    knows the limit, the caller's error names it), also with nothing changed.
    """

    outcome: ReplyOutcome
    child_id: str
    error: object = None


@final
class ExitReason(enum.Enum):
    """Why the supervisor exited."""

    #: ``ShutdownRequested``.
    SHUTDOWN = "shutdown"
    #: A significant child ended (OTP R10.5).
    AUTO_SHUTDOWN = "auto_shutdown"
    #: A child failed to start while the supervisor started up (OTP R2.3).
    START_FAILED = "start_failed"
    #: More than ``max_restarts`` restarts within ``within`` (OTP R5.6).
    INTENSITY = "intensity"
    #: A child exited abnormally under ``Strategy.ESCALATE``.
    ESCALATED = "escalated"


@final
@attrs.frozen(kw_only=True)
class Exit:
    """Terminal: every child is stopped; the supervisor ends for ``reason``.

    ``child_id`` and ``error`` name the child and error behind a failure
    reason; ``restarts`` is the restart-intensity history at that moment.
    """

    reason: ExitReason
    child_id: str | None = None
    error: object = None
    restarts: tuple[RestartRecord, ...] = ()


Command = (
    StartChild
    | StopChild
    | StopChildren
    | ScheduleRestart
    | CancelRestart
    | CancelChild
    | Reply
    | Exit
)

#: The commands whose result is the machine's next input.
BLOCKING: tuple[type[StartChild], type[StopChild], type[StopChildren]] = (
    StartChild,
    StopChild,
    StopChildren,
)

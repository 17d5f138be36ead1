"""The supervision core: Erlang/OTP's supervisor as a pure state machine.

Theory of operation
===================

An OTP supervisor is a process that handles one event at a time and runs each
to completion (R12.1): a child's exit, an API call, its own retry message.
Handling an event may block on I/O (stopping a child and waiting for it,
starting one and waiting for its start result). This module keeps OTP's
decisions and makes the blocking explicit:

* :meth:`SupervisorMachine.handle` takes one fact (see ``_protocol``) and
  returns the commands to carry out. A blocking command (start or stop a
  child) is always last, and the next input must be its result; the runtime
  queues every other fact meanwhile. So an OTP event handler becomes a *job*:
  a plan of steps (``STOP id`` / ``START id``) run one blocking step at a time.
* Time (``now``) and randomness (for backoff jitter) come from outside.

The supervisor's phase says what input it can take (``_PHASE_TABLE``); each
child's status moves along ``CHILD_TRANSITIONS``. Anything missing from
either table raises :exc:`IllegalStateTransition` and changes nothing.

Jobs and the OTP functions they stand for (``supervisor.erl``):

========== ============================================================
INIT       ``init_children``: start each spec in order (R2.1); a failure
           stops the started ones and exits START_FAILED (R2.3).
RESTART    ``restart/2``: one *attempt*. Count it in the intensity window
           (R5.1, R5.3) or give up (R5.6); then stop the affected running
           children in reverse start order and start the affected
           non-temporary ones in start order (R4.1-R4.4). A failed start
           marks that child RESTARTING, leaves the later ones stopped
           (R6.3) and schedules the next attempt for it (R6.1, R6.4, R6.5).
BACKOFF    trio_smith's addition (Akka): stop the affected siblings now,
           then schedule the attempt after the child's backoff delay.
API_*      ``handle_call`` for start/restart/terminate (R1.11 table).
SHUTDOWN   ``terminate/2``: stop everything in reverse start order (R8.1),
           then exit with the reason. A pool stops every child at once
           (``terminate_dynamic_children``, R4.7): see below.
========== ============================================================

A retry is a :class:`ScheduleRestart` whose :class:`TimerFired` comes back
through the runtime's queue, exactly like OTP's ``try_again_restart`` cast to
itself: facts already queued (a ``terminate_child``, a shutdown) are served
between two attempts (R6.6, R6.7). With backoff the same timer just has a
delay. Every attempt counts toward intensity when it happens.

Exits the supervisor caused are never failures (R3.5): they arrive as
:class:`ChildStopped`. A child that ends by itself while its supervisor is
busy has its :class:`ChildExited` queued; if the supervisor stops that child
first, the exit is absorbed (R7.1) and, arriving later with an old
``incarnation``, ignored as stale (R7.3); if the child was restarted by the
current job, its new exit is a fresh failure (R7.2).

Pools and limits
================

``pool=True`` is OTP's ``simple_one_for_one`` (Elixir's
``DynamicSupervisor``) over the one_for_one rules, with two differences:

* A pool child that ends for good is removed at once, as OTP's ``del_child``
  erases a dynamic child (R4.8): a temporary or a transient normal exit, an
  ignored start, a ``terminate_child``, and a child that ends for good just
  before the supervisor gives up. Children stopped *by the shutdown* stay in
  the table, stopped, as in any machine. So an idle pool holds no stopped
  child.
* A pool's shutdown asks every live child to stop at once
  (:class:`StopChildren`, reverse start order) and waits for their
  :class:`ChildStopped` in any order (``awaiting_stops``), then exits.

``max_children`` (Elixir) refuses a ``start_child`` once the machine holds
that many children, with ``Reply(LIMIT_REACHED)`` and nothing changed.

Hung children
=============

The runtime judges hangs (phi accrual, ``_phi``) and reports the verdict as
:class:`ChildJudgedHung`; the machine decides whether to act on it
(:class:`CancelChild`) or whether it is stale. The cancelled child's end then
comes back as an ordinary abnormal exit or failed start.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, final

import attrs

from .._exceptions import (
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    IllegalStateTransition,
    RestartRecord,
)
from ._check import finite_at_least, int_at_least
from ._intensity import RestartWindow
from ._protocol import (
    CancelChild,
    CancelRestart,
    ChildExited,
    ChildJudgedHung,
    ChildStarted,
    ChildStopped,
    Command,
    DeleteChildRequested,
    Exit,
    ExitKind,
    ExitReason,
    Input,
    Reply,
    ReplyOutcome,
    RestartChildRequested,
    ScheduleRestart,
    ShutdownRequested,
    StartChild,
    StartChildRequested,
    StartFailed,
    StartIgnored,
    StartupRequested,
    StopChild,
    StopChildren,
    TerminateChildRequested,
    TimerFired,
)
from ._spec import (
    AutoShutdown,
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildStatus,
    IdentityHash,
    Restart,
    Strategy,
)

__all__ = ["CHILD_TRANSITIONS", "ChildEvent", "Phase", "SupervisorMachine"]


@final
class Phase(IdentityHash, enum.Enum):
    """What the machine can take next."""

    #: Built; waits for StartupRequested.
    NEW = "new"
    #: Waits for the next fact: a child exit, a timer, an API request.
    IDLE = "idle"
    #: A StartChild is out; waits for its result.
    AWAITING_START = "awaiting_start"
    #: A StopChild (or a pool's StopChildren) is out; waits for ChildStopped.
    AWAITING_STOP = "awaiting_stop"
    #: Gave its Exit command; takes nothing but (ignored) shutdown requests.
    EXITED = "exited"


@final
class ChildEvent(IdentityHash, enum.Enum):
    """What happens to a child, as the status table knows it."""

    START_ISSUED = "start_issued"
    STARTED = "started"
    IGNORED = "ignored"
    #: A start failed and is not retried (start-up, API, escalation).
    START_FAILED = "start_failed"
    #: A start failed during an automatic restart: it will be retried (R6.1).
    START_FAILED_RETRY = "start_failed_retry"
    EXITED = "exited"
    STOP_ISSUED = "stop_issued"
    STOPPED = "stopped"
    #: A delayed restart was scheduled (backoff).
    RESTART_SCHEDULED = "restart_scheduled"
    #: The pending restart was dropped (terminate_child, group restart,
    #: shutdown) or is being attempted now.
    RESTART_DROPPED = "restart_dropped"


_S = ChildStatus
_E = ChildEvent

#: Every legal move of a child's status. A temporary child is removed from the
#: table once STOPPED (OTP never keeps a temporary spec that is not running).
CHILD_TRANSITIONS: Final[dict[tuple[ChildStatus, ChildEvent], ChildStatus]] = {
    (_S.STOPPED, _E.START_ISSUED): _S.STARTING,
    (_S.STARTING, _E.STARTED): _S.RUNNING,
    (_S.STARTING, _E.IGNORED): _S.STOPPED,
    (_S.STARTING, _E.START_FAILED): _S.STOPPED,
    (_S.STARTING, _E.START_FAILED_RETRY): _S.RESTARTING,
    # A shutdown can interrupt a start under way.
    (_S.STARTING, _E.STOP_ISSUED): _S.STOPPING,
    (_S.RUNNING, _E.EXITED): _S.STOPPED,
    (_S.RUNNING, _E.STOP_ISSUED): _S.STOPPING,
    (_S.STOPPING, _E.STOPPED): _S.STOPPED,
    (_S.STOPPED, _E.RESTART_SCHEDULED): _S.RESTARTING,
    (_S.RESTARTING, _E.RESTART_DROPPED): _S.STOPPED,
}


@final
class _Step(enum.Enum):
    START = "start"
    STOP = "stop"


@final
class _JobKind(IdentityHash, enum.Enum):
    INIT = "init"
    RESTART = "restart"
    BACKOFF = "backoff"
    API_START = "api_start"
    API_RESTART = "api_restart"
    API_TERMINATE = "api_terminate"
    SHUTDOWN = "shutdown"


_API_JOBS: Final = frozenset({_JobKind.API_START, _JobKind.API_RESTART, _JobKind.API_TERMINATE})


@attrs.define(slots=True)
class _Child:
    spec: ChildSpec
    status: ChildStatus = ChildStatus.STOPPED
    #: Number of the current (or last) start, unique in the machine.
    incarnation: int = 0
    #: Successful starts; ``restarts`` is this minus one.
    starts: int = 0
    started_at: float = 0.0
    #: Akka's restartCount: consecutive backoff restarts (K4).
    backoff_count: int = 0
    #: The pending ScheduleRestart's timer.
    #: Invariant: set iff status is RESTARTING (between handle() calls).
    timer: int | None = None
    #: The error of its last exit or failed start, for the give-up errors.
    last_error: object = None
    #: Its last exit was a normal return (its restart is counted as one).
    normal_exit: bool = False


@attrs.define(slots=True)
class _Job:
    kind: _JobKind
    #: The child the job is about (None for INIT and a plain SHUTDOWN).
    child_id: str | None
    steps: deque[tuple[_Step, str]]
    #: API jobs: how the request ended so far.
    outcome: ReplyOutcome = ReplyOutcome.OK
    #: SHUTDOWN only: why, and the error behind it.
    reason: ExitReason = ExitReason.SHUTDOWN
    error: object = None
    restarts: tuple[RestartRecord, ...] = ()


def _check_config(
    strategy: object,
    max_restarts: object,
    within: object,
    backoff: object,
    auto_shutdown: object,
    max_children: object,
    pool: object,
) -> None:
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a Strategy, got {strategy!r}")
    if not isinstance(max_restarts, int) or isinstance(max_restarts, bool):
        raise TypeError(f"max_restarts must be an int, got {max_restarts!r}")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts!r}")
    finite_at_least("within", within, 0, strict=True)
    if backoff is not None and not isinstance(backoff, Backoff):
        raise TypeError(f"backoff must be a Backoff or None, got {backoff!r}")
    if not isinstance(auto_shutdown, AutoShutdown):
        raise TypeError(f"auto_shutdown must be an AutoShutdown, got {auto_shutdown!r}")
    int_at_least("max_children", max_children, 1, optional=True)
    if not isinstance(pool, bool):
        raise TypeError(f"pool must be a bool, got {pool!r}")
    if pool and strategy not in (Strategy.ONE_FOR_ONE, Strategy.ESCALATE):
        # OTP simple_one_for_one restarts each child alone (R4.7); a group
        # restart would stop siblings that a pool then could not tell from
        # children that ended for good.
        raise ValueError(
            f"a pool needs Strategy.ONE_FOR_ONE or Strategy.ESCALATE, got {strategy!r}"
        )


@final
class SupervisorMachine:
    """The decisions of one supervisor, with no I/O, no clock and no randomness.

    Args:
        children: the static child specs, in start order.
        strategy: the restart strategy.
        max_restarts: restarts tolerated within ``within`` seconds (OTP
            intensity); one more makes the supervisor give up.
        within: the window, in seconds (OTP period), finite and > 0.
        backoff: the default delay before automatic restarts; None restarts
            at once as OTP does. A child spec's own ``backoff`` wins.
        auto_shutdown: when significant children shut the supervisor down.
        random: returns uniform floats in [0, 1) for backoff jitter.
        max_children: how many children the machine may hold; a
            ``start_child`` beyond it gets ``Reply(LIMIT_REACHED)`` (Elixir
            ``DynamicSupervisor``). None: no limit.
        pool: OTP ``simple_one_for_one``: children that end for good are
            removed at once, and a shutdown stops every child at once
            (:class:`StopChildren`). Needs ONE_FOR_ONE or ESCALATE.

    Raises:
        ValueError: a value out of range, a duplicate child id, or a
            significant child under ``AutoShutdown.NEVER`` (OTP R1.2, R1.5, R1.6).
        TypeError: an argument of the wrong type.
    """

    __slots__ = (
        "_auto_shutdown",
        "_awaiting",
        "_backoff",
        "_children",
        "_incarnations",
        "_job",
        "_max_children",
        "_now",
        "_out",
        "_phase",
        "_pool",
        "_random",
        "_stops",
        "_strategy",
        "_timers",
        "_window",
    )

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        random: Callable[[], float],
        max_children: int | None = None,
        pool: bool = False,
    ) -> None:
        _check_config(strategy, max_restarts, within, backoff, auto_shutdown, max_children, pool)
        self._strategy = strategy
        self._max_children = max_children
        self._pool = pool
        self._backoff = backoff
        self._auto_shutdown = auto_shutdown
        self._random = random
        self._window = RestartWindow(max_restarts, within)
        # Invariant: iteration order is start order (R4.6: a child added later
        # goes to the end; restart_child keeps its place).
        self._children: dict[str, _Child] = {}
        for spec in children:
            self._check_new_spec(spec)
            if spec.id in self._children:
                raise ValueError(f"duplicate child id {spec.id!r}")
            self._children[spec.id] = _Child(spec)
        self._phase = Phase.NEW
        self._job: _Job | None = None
        # Invariant: set iff phase is AWAITING_START or AWAITING_STOP, except
        # during a pool's group stop (then None, and _stops is not empty).
        self._awaiting: str | None = None
        # A pool's group stop: the children whose ChildStopped is still due.
        # Invariant: empty unless phase is AWAITING_STOP with a StopChildren out.
        self._stops: set[str] = set()
        self._incarnations = 0
        self._timers = 0
        self._now = -math.inf
        self._out: list[Command] = []

    # ------------------------------------------------------------ queries

    @property
    def phase(self) -> Phase:
        """What the machine can take next."""
        return self._phase

    @property
    def strategy(self) -> Strategy:
        """The restart strategy."""
        return self._strategy

    @property
    def awaiting(self) -> str | None:
        """The child whose start or stop result the machine waits for, if any.

        None during a pool's group stop (:class:`StopChildren`), even when the
        stop of a single child was under way before it: see ``awaiting_stops``.
        """
        return self._awaiting

    @property
    def awaiting_stops(self) -> frozenset[str]:
        """The children whose :class:`ChildStopped` the machine waits for.

        A pool's group stop: the ids not stopped yet; a single StopChild: its
        id; otherwise empty.
        """
        if self._stops:
            return frozenset(self._stops)
        if self._phase is Phase.AWAITING_STOP and self._awaiting is not None:
            return frozenset((self._awaiting,))
        return frozenset()

    @property
    def pool(self) -> bool:
        """Whether the machine is a pool (OTP simple_one_for_one)."""
        return self._pool

    @property
    def max_children(self) -> int | None:
        """How many children the machine may hold (None: no limit)."""
        return self._max_children

    @property
    def stopping(self) -> bool:
        """Whether the machine is stopping all its children to exit."""
        return self._job is not None and self._job.kind is _JobKind.SHUTDOWN

    @property
    def size(self) -> int:
        """How many child specs the machine holds, running or not."""
        return len(self._children)

    def child_status(self, child_id: str) -> ChildStatus | None:
        """Return a child's status, or None if the machine holds no such child."""
        child = self._children.get(child_id)
        return None if child is None else child.status

    def spec(self, child_id: str) -> ChildSpec:
        """Return the spec of a child.

        Raises:
            ChildNotFound: no such child.
        """
        child = self._children.get(child_id)
        if child is None:
            raise ChildNotFound(child_id)
        return child.spec

    def which_children(self) -> list[ChildInfo]:
        """Return a snapshot of every child, in start order.

        OTP lists newest first; trio_smith lists in start order, which reads
        naturally and is the order of a tree view.
        """
        return [
            ChildInfo(
                id=child_id,
                status=child.status,
                restart=child.spec.restart,
                significant=child.spec.significant,
                restarts=max(0, child.starts - 1),
            )
            for child_id, child in self._children.items()
        ]

    def count_children(
        self, is_supervisor: Callable[[str], bool] = lambda child_id: False
    ) -> ChildCounts:
        """Count the children as OTP's ``count_children/1`` does.

        Args:
            is_supervisor: tells whether a child runs a supervisor; the runtime
                knows, this machine does not.
        """
        supervisors = sum(1 for child_id in self._children if is_supervisor(child_id))
        return ChildCounts(
            specs=len(self._children),
            active=sum(1 for c in self._children.values() if c.status is ChildStatus.RUNNING),
            supervisors=supervisors,
            workers=len(self._children) - supervisors,
        )

    def restart_history(self, now: float) -> tuple[RestartRecord, ...]:
        """Return the restarts inside the intensity window at ``now``, oldest first."""
        return self._window.history(now)

    # ------------------------------------------------------------ input

    def handle(self, input: Input, *, now: float) -> list[Command]:
        """Apply one fact and return the commands to carry out, in order.

        Args:
            input: the fact.
            now: the current time in seconds; it never goes back.

        Returns:
            The commands; a blocking one (StartChild, StopChild) is last.

        Raises:
            IllegalStateTransition: the input is not allowed now; nothing changed.
            ChildNotFound, ChildRunning, ChildRestarting, ChildAlreadyStarted,
            ChildAlreadyPresent, ValueError: an API request refused at once,
                as OTP refuses it (R1.11); nothing changed.
        """
        handler = _PHASE_TABLE.get((self._phase, type(input)))
        if handler is None:
            raise IllegalStateTransition("supervisor", self._phase.name, repr(input))
        # A fact about another child than the awaited one is illegal; a hung
        # verdict is not such a fact: it changes nothing, and the runtime
        # must be able to cancel a hung child while another one starts/stops.
        awaited = getattr(input, "child_id", None)
        if awaited is not None and type(input) is not ChildJudgedHung:
            if self._awaiting is not None:
                if awaited != self._awaiting:
                    raise IllegalStateTransition(
                        "supervisor", f"{self._phase.name}({self._awaiting!r})", repr(input)
                    )
            elif self._stops and awaited not in self._stops:
                raise IllegalStateTransition(
                    "supervisor", f"{self._phase.name}({sorted(self._stops)!r})", repr(input)
                )
        if now < self._now:
            raise ValueError(f"now must not go back in time: {now!r} < {self._now!r}")
        self._now = now
        out: list[Command] = []
        self._out = out
        handler(self, input)
        return out

    def handle_exit_fast(
        self,
        child_id: str,
        incarnation: int,
        kind: ExitKind,
        error: object,
        *,
        now: float,
        awaits_start: bool = False,
    ) -> int | list[Command]:
        """``handle(ChildExited(...))``, fused with an immediate restart of that child.

        The runtime's hot path (a crash loop under one_for_one, docs/design.md
        rule 13).

        Args:
            awaits_start: the child's start has a result to wait for (its
                ``fn`` takes ``task_status``). If False, it counts as started
                as soon as it is spawned.

        Returns:
            The new incarnation, when ``handle`` would have answered exactly
            ``[StartChild(child_id, incarnation)]``. Without
            ``awaits_start`` the next input would have been
            ``ChildStarted(child_id)``: it is applied too and the child is
            RUNNING again. With it, the start is out and the next input must
            be its result, exactly as after that ``StartChild``. Otherwise
            the commands that ``handle(ChildExited(...))`` returns, with the
            same effects.
        """
        child = self._children.get(child_id)
        if (
            child is None
            or self._phase is not Phase.IDLE
            or self._strategy is not Strategy.ONE_FOR_ONE
            or child.status is not ChildStatus.RUNNING
            or child.incarnation != incarnation
            or now < self._now
            or child.spec.backoff is not None
            or self._backoff is not None
            or not (
                child.spec.restart is Restart.PERMANENT
                or (child.spec.restart is Restart.TRANSIENT and kind is ExitKind.ABNORMAL)
            )
        ):
            fact = ChildExited(child_id=child_id, incarnation=incarnation, kind=kind, error=error)
            return self.handle(fact, now=now)
        # The steps of _on_child_exited -> _attempt_restart -> _advance ->
        # _on_child_started, for affected == [child_id] (R3.2, R4.1, R5.1).
        self._now = now
        self._move(child, ChildEvent.EXITED)
        child.last_error = error
        child.normal_exit = kind is ExitKind.NORMAL
        if self._window.add(now, child_id, child.normal_exit):
            out: list[Command] = []
            self._out = out
            if self._pool:
                del self._children[child_id]  # as _attempt_restart does
            self._shutdown(ExitReason.INTENSITY, child_id=child_id, error=error)  # R5.6
            return out
        self._move(child, ChildEvent.START_ISSUED)
        self._incarnations += 1
        child.incarnation = self._incarnations
        if awaits_start:
            # What _attempt_restart -> _advance leave when they issue the
            # StartChild: a RESTART job with no step left, waiting for it.
            self._job = _Job(_JobKind.RESTART, child_id, deque())
            self._awaiting = child_id
            self._phase = Phase.AWAITING_START
            return self._incarnations
        self._move(child, ChildEvent.STARTED)
        child.starts += 1
        child.started_at = now
        return self._incarnations

    def handle_started_fast(self, child_id: str, *, now: float) -> bool:
        """``handle(ChildStarted(child_id))`` when it would answer nothing, fused.

        The second half of the runtime's hot path for a child that takes
        ``task_status`` (``handle_exit_fast(..., awaits_start=True)``): the
        awaited start of a restart with nothing left to do after it.

        Returns:
            True if it was applied (the child is RUNNING, the machine IDLE,
            and ``handle`` would have returned ``[]``); False if nothing was
            applied, and ``handle`` must take the fact.
        """
        job = self._job
        if (
            self._phase is not Phase.AWAITING_START
            or self._awaiting != child_id
            or job is None
            or job.kind is not _JobKind.RESTART
            or job.steps
            or now < self._now
        ):
            return False
        # The steps of _on_child_started -> _advance -> _finish for a RESTART
        # job whose plan is done.
        child = self._children[child_id]
        self._now = now
        self._move(child, ChildEvent.STARTED)
        child.starts += 1
        child.started_at = now
        self._awaiting = None
        self._job = None
        self._phase = Phase.IDLE
        return True

    # ------------------------------------------------------------ handlers

    def _on_startup(self, _: StartupRequested) -> None:
        self._begin(_JobKind.INIT, None, [(_Step.START, cid) for cid in self._children])

    def _on_shutdown_requested(self, _: ShutdownRequested) -> None:
        """A shutdown while a blocking command is out (D5)."""
        job = self._job
        if job is not None and job.kind is _JobKind.SHUTDOWN:
            return  # already stopping: the first reason stands
        if job is not None and job.kind in _API_JOBS:
            assert job.child_id is not None
            self._emit(Reply(outcome=ReplyOutcome.ABORTED, child_id=job.child_id))
        if self._pool:
            # The start under way is aborted with the others (one
            # StopChildren); a stop under way stays awaited beside them.
            self._shutdown(ExitReason.SHUTDOWN)
        elif self._phase is Phase.AWAITING_START:
            # Trio cannot wait for a start that may never end: abort it.
            cid = self._awaiting
            assert cid is not None
            self._move(self._children[cid], ChildEvent.STOP_ISSUED)
            self._awaiting = None
            self._shutdown(ExitReason.SHUTDOWN, first_stop=cid)
        else:
            # AWAITING_STOP: keep waiting for the stop under way; the
            # shutdown goes on after it.
            self._shutdown(ExitReason.SHUTDOWN, first_stop=self._awaiting)

    def _on_idle_shutdown(self, _: ShutdownRequested) -> None:
        self._shutdown(ExitReason.SHUTDOWN)

    def _on_exited_shutdown(self, _: ShutdownRequested) -> None:
        """Shutting down an exited supervisor does nothing (idempotent)."""

    def _on_child_judged_hung(self, fact: ChildJudgedHung) -> None:
        """Cancel a hung incarnation, unless the verdict is stale (design rule 4).

        Stale: an unknown child, another incarnation, a child that is not
        running or starting (stopped, restarting, or being stopped: its stop
        deals with it), or a machine that is shutting down (every child is
        about to be stopped anyway). Nothing in the machine changes.
        """
        child = self._children.get(fact.child_id)
        if (
            child is None
            or child.incarnation != fact.incarnation
            or (
                child.status is not ChildStatus.RUNNING and child.status is not ChildStatus.STARTING
            )
            or (self._job is not None and self._job.kind is _JobKind.SHUTDOWN)
        ):
            return
        self._emit(CancelChild(child_id=fact.child_id, incarnation=fact.incarnation))

    def _on_exited_hung(self, _: ChildJudgedHung) -> None:
        """A verdict after the exit is stale: every child is stopped."""

    def _on_child_exited(self, fact: ChildExited) -> None:
        child = self._children.get(fact.child_id)
        if (
            child is None
            or child.status is not ChildStatus.RUNNING
            or child.incarnation != fact.incarnation
        ):
            return  # R7.3: stale or unknown, e.g. absorbed by a group restart (R7.1)
        self._move(child, ChildEvent.EXITED)
        child.last_error = fact.error
        child.normal_exit = fact.kind is ExitKind.NORMAL
        backoff = child.spec.backoff or self._backoff
        if backoff is not None and self._now - child.started_at >= backoff.reset_after:
            child.backoff_count = 0  # Akka K6: it stayed up long enough
        restart = child.spec.restart
        if fact.kind is ExitKind.ABNORMAL and self._strategy is Strategy.ESCALATE:
            self._retire(child)
            self._shutdown(ExitReason.ESCALATED, child_id=fact.child_id, error=fact.error)
        elif restart is Restart.PERMANENT or (
            restart is Restart.TRANSIENT and fact.kind is ExitKind.ABNORMAL
        ):
            # R3.2: restart needed (a permanent child returning normally too).
            if backoff is None:
                self._attempt_restart(child)
            else:
                # D9: stop the affected siblings now; attempt after the delay.
                self._begin(
                    _JobKind.BACKOFF,
                    fact.child_id,
                    [(_Step.STOP, cid) for cid in reversed(self._affected(fact.child_id))],
                )
        else:
            # R3.2/R3.4: no restart; the spec goes (temporary, or any pool
            # child: R4.8) or stays stopped; only the auto-shutdown check
            # runs (R10.2).
            self._retire(child)
            if self._auto_shutdown_due(child):
                self._shutdown(ExitReason.AUTO_SHUTDOWN, child_id=fact.child_id)

    def _on_timer_fired(self, fact: TimerFired) -> None:
        child = self._children.get(fact.child_id)
        if child is None or child.status is not ChildStatus.RESTARTING or child.timer != fact.timer:
            return  # stale: cancelled, or overtaken by a group restart
        self._attempt_restart(child)

    def _on_start_child(self, request: StartChildRequested) -> None:
        spec = request.spec
        self._check_new_spec(spec)
        # The limit comes after the spec's own checks (a bad spec is the
        # caller's error whatever the count, as Elixir validates the spec
        # before its handle_call counts) and before the duplicate check: the
        # limit is the supervisor's answer to any start while it is full.
        if self._max_children is not None and len(self._children) >= self._max_children:
            self._emit(Reply(outcome=ReplyOutcome.LIMIT_REACHED, child_id=spec.id))
            return
        existing = self._children.get(spec.id)
        if existing is not None:
            if existing.status is ChildStatus.RUNNING:
                raise ChildAlreadyStarted(spec.id)
            raise ChildAlreadyPresent(spec.id)
        self._children[spec.id] = _Child(spec)  # R4.6: appended to the start order
        self._begin(_JobKind.API_START, spec.id, [(_Step.START, spec.id)])

    def _on_restart_child(self, request: RestartChildRequested) -> None:
        child = self._api_child(request.child_id)
        if child.status is ChildStatus.RESTARTING:
            raise ChildRestarting(request.child_id)
        if child.status is not ChildStatus.STOPPED:
            raise ChildRunning(request.child_id)
        # R5.1: a restart by the API never counts toward intensity.
        self._begin(_JobKind.API_RESTART, request.child_id, [(_Step.START, request.child_id)])

    def _on_terminate_child(self, request: TerminateChildRequested) -> None:
        self._api_child(request.child_id)
        # R3.5/R10.3: no restart, no auto-shutdown; stopping a RESTARTING
        # child just ends its retry loop (R6.6); a stopped one is fine (idempotent).
        self._begin(_JobKind.API_TERMINATE, request.child_id, [(_Step.STOP, request.child_id)])

    def _on_delete_child(self, request: DeleteChildRequested) -> None:
        child = self._api_child(request.child_id)
        if child.status is ChildStatus.RESTARTING:
            raise ChildRestarting(request.child_id)
        if child.status is not ChildStatus.STOPPED:
            raise ChildRunning(request.child_id)
        del self._children[request.child_id]
        self._emit(Reply(outcome=ReplyOutcome.OK, child_id=request.child_id))

    def _on_child_started(self, result: ChildStarted) -> None:
        child = self._children[result.child_id]
        self._move(child, ChildEvent.STARTED)
        child.starts += 1
        child.started_at = self._now
        self._awaiting = None
        self._advance()

    def _on_start_ignored(self, result: StartIgnored) -> None:
        # R2.2: "not started"; the spec stays, stopped, unless temporary
        # or in a pool (R4.8: OTP keeps no dynamic child that is not running).
        child = self._children[result.child_id]
        self._move(child, ChildEvent.IGNORED)
        self._retire(child)
        self._awaiting = None
        job = self._job
        assert job is not None
        if job.kind in _API_JOBS:
            job.outcome = ReplyOutcome.IGNORED
        self._advance()

    def _on_start_failed(self, result: StartFailed) -> None:
        cid = result.child_id
        child = self._children[cid]
        child.last_error = result.error
        child.normal_exit = False  # its retry follows a failure
        self._awaiting = None
        job = self._job
        assert job is not None
        if job.kind is _JobKind.RESTART and self._strategy is not Strategy.ESCALATE:
            # R6.1/R6.3: the child waits to be tried again, the rest of the
            # plan is dropped (later children stay stopped), and the next
            # attempt is queued behind the facts already waiting.
            self._move(child, ChildEvent.START_FAILED_RETRY)
            job.steps.clear()
            self._schedule_restart(child)
            self._advance()
            return
        self._move(child, ChildEvent.START_FAILED)
        if job.kind is _JobKind.API_START:
            # R1.11: the spec is discarded and the caller gets the error.
            del self._children[cid]
            job.steps.clear()
            job.outcome = ReplyOutcome.START_FAILED
            job.error = result.error
            self._advance()
        elif job.kind is _JobKind.API_RESTART:
            # R1.11: the child stays stopped (a pool: removed, R4.8); no
            # retry, no intensity entry.
            if self._pool:
                del self._children[cid]
            job.outcome = ReplyOutcome.START_FAILED
            job.error = result.error
            self._advance()
        elif job.kind is _JobKind.INIT:
            # R2.3: fatal, no retry; stop the started ones in reverse order.
            self._retire(child)
            self._shutdown(ExitReason.START_FAILED, child_id=cid, error=result.error)
        else:
            # An automatic restart under ESCALATE: a failure, so give up.
            self._retire(child)
            self._shutdown(ExitReason.ESCALATED, child_id=cid, error=result.error)

    def _on_child_stopped(self, result: ChildStopped) -> None:
        child = self._children[result.child_id]
        self._move(child, ChildEvent.STOPPED)
        self._remove_if_temporary(child)  # R3.3: never restarted, even as a bystander
        stops = self._stops
        if stops:
            # A pool's group stop: the children end in any order (R4.7).
            stops.discard(result.child_id)
            if stops:
                return
        self._awaiting = None
        self._advance()

    # ------------------------------------------------------------ jobs

    def _begin(self, kind: _JobKind, child_id: str | None, steps: list[tuple[_Step, str]]) -> None:
        self._job = _Job(kind, child_id, deque(steps))
        self._advance()

    def _shutdown(
        self,
        reason: ExitReason,
        *,
        child_id: str | None = None,
        error: object = None,
        first_stop: str | None = None,
    ) -> None:
        """Stop every child in reverse start order, then exit (R5.6, R8.1, R10.5).

        ``first_stop`` is a child whose stop is already under way (or must be
        issued first: an interrupted start).
        """
        steps: deque[tuple[_Step, str]] = deque(
            (_Step.STOP, cid) for cid in reversed(self._children) if cid != first_stop
        )
        self._job = _Job(
            _JobKind.SHUTDOWN,
            child_id,
            steps,
            reason=reason,
            error=error,
            restarts=self._window.history(self._now),
        )
        if self._pool:
            self._stop_together()
            return
        if first_stop is None:
            self._advance()
            return
        self._awaiting = first_stop
        if self._phase is not Phase.AWAITING_STOP:  # an interrupted start
            self._phase = Phase.AWAITING_STOP
            self._emit(StopChild(child_id=first_stop))

    def _stop_together(self) -> None:
        """A pool's shutdown: stop every child at once (OTP terminate_dynamic_children, R4.7).

        Running children, and one whose start a shutdown interrupted, get one
        StopChildren (reverse start order); a pending retry is dropped; a stop
        already under way (an interrupted terminate_child) stays awaited
        beside them. With nothing to stop, the job ends.
        """
        job = self._job
        assert job is not None
        assert job.kind is _JobKind.SHUTDOWN
        job.steps.clear()
        group: list[str] = []
        under_way: str | None = None
        for cid in reversed(self._children):
            child = self._children[cid]
            status = child.status
            if status is ChildStatus.RUNNING or status is ChildStatus.STARTING:
                self._move(child, ChildEvent.STOP_ISSUED)
                group.append(cid)
            elif status is ChildStatus.STOPPING:
                under_way = cid  # its StopChild is out already
            elif status is ChildStatus.RESTARTING:
                self._drop_restart(child)
        if group:
            self._stops = set(group)
            if under_way is not None:
                self._stops.add(under_way)
            self._awaiting = None
            self._phase = Phase.AWAITING_STOP
            self._emit(StopChildren(child_ids=tuple(group)))
        elif under_way is not None:
            self._awaiting = under_way  # a single stop, as in any machine
            self._phase = Phase.AWAITING_STOP
        else:
            self._awaiting = None
            self._finish(job)

    def _advance(self) -> None:
        """Run the current job's steps until one blocks or the job ends."""
        job = self._job
        assert job is not None
        steps = job.steps
        while steps:
            step, cid = steps.popleft()
            child = self._children.get(cid)
            if child is None:
                continue  # a temporary removed by an earlier step of the plan
            if step is _Step.START:
                self._move(child, ChildEvent.START_ISSUED)
                self._incarnations += 1
                child.incarnation = self._incarnations
                self._awaiting = cid
                self._phase = Phase.AWAITING_START
                self._emit(StartChild(child_id=cid, incarnation=self._incarnations))
                return
            if child.status is ChildStatus.RUNNING:
                self._move(child, ChildEvent.STOP_ISSUED)
                self._awaiting = cid
                self._phase = Phase.AWAITING_STOP
                self._emit(StopChild(child_id=cid))
                return
            if child.status is ChildStatus.RESTARTING:
                # OTP sets a restarting child to undefined when it terminates
                # a group or itself; its pending retry is dropped.
                self._drop_restart(child)
            # A stopped child needs nothing.
        self._finish(job)

    def _finish(self, job: _Job) -> None:
        self._job = None
        self._phase = Phase.IDLE
        if job.kind is _JobKind.SHUTDOWN:
            self._phase = Phase.EXITED
            self._emit(
                Exit(
                    reason=job.reason,
                    child_id=job.child_id,
                    error=job.error,
                    restarts=job.restarts,
                )
            )
        elif job.kind is _JobKind.BACKOFF:
            assert job.child_id is not None
            child = self._children[job.child_id]
            self._move(child, ChildEvent.RESTART_SCHEDULED)
            self._schedule_restart(child)
        elif job.kind in _API_JOBS:
            assert job.child_id is not None
            if self._pool and job.kind is _JobKind.API_TERMINATE:
                # R4.8: terminate_child erases a dynamic child (it is stopped
                # now, or was removed already as a temporary).
                self._children.pop(job.child_id, None)
            self._emit(Reply(outcome=job.outcome, child_id=job.child_id, error=job.error))

    def _attempt_restart(self, child: _Child) -> None:
        """OTP ``restart/2``: count the attempt, then restart per the strategy."""
        cid = child.spec.id
        if child.status is ChildStatus.RESTARTING:
            # Its timer fired. OTP ``del_child``/``split_child`` mark it
            # undefined first.
            self._move(child, ChildEvent.RESTART_DROPPED)
            child.timer = None
        if self._window.add(self._now, cid, child.normal_exit):
            # R5.6: do not restart it; stop the others in reverse order; exit.
            # OTP's restart/2 del_child's it first: a pool erases it (R4.8).
            if self._pool:
                del self._children[cid]
            self._shutdown(ExitReason.INTENSITY, child_id=cid, error=child.last_error)
            return
        affected = self._affected(cid)
        steps = [(_Step.STOP, c) for c in reversed(affected) if c != cid]
        steps += [(_Step.START, c) for c in affected]
        self._begin(_JobKind.RESTART, cid, steps)

    def _affected(self, child_id: str) -> list[str]:
        """The children a restart of ``child_id`` touches, in start order (R4.1-R4.3)."""
        if self._strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        if self._strategy is Strategy.REST_FOR_ONE:
            ids = list(self._children)
            return ids[ids.index(child_id) :]
        return [child_id]

    def _schedule_restart(self, child: _Child) -> None:
        """Queue the next attempt: now (OTP) or after the backoff delay (Akka K3, K4)."""
        backoff = child.spec.backoff or self._backoff
        if backoff is None:
            delay = 0.0
        else:
            delay = backoff.delay(child.backoff_count, self._random())
            child.backoff_count += 1
        self._timers += 1
        child.timer = self._timers
        self._emit(ScheduleRestart(child_id=child.spec.id, delay=delay, timer=self._timers))

    def _drop_restart(self, child: _Child) -> None:
        assert child.timer is not None  # invariant of RESTARTING
        self._move(child, ChildEvent.RESTART_DROPPED)
        self._emit(CancelRestart(child_id=child.spec.id, timer=child.timer))
        child.timer = None

    # ------------------------------------------------------------ helpers

    def _emit(self, command: Command) -> None:
        self._out.append(command)

    def _move(self, child: _Child, event: ChildEvent) -> None:
        new = CHILD_TRANSITIONS.get((child.status, event))
        if new is None:
            raise IllegalStateTransition(f"child {child.spec.id!r}", child.status.name, event.name)
        child.status = new

    def _remove_if_temporary(self, child: _Child) -> None:
        if child.spec.restart is Restart.TEMPORARY:
            del self._children[child.spec.id]

    def _retire(self, child: _Child) -> None:
        """A child ended for good (OTP del_child): a temporary or any pool child goes (R4.8)."""
        if self._pool or child.spec.restart is Restart.TEMPORARY:
            del self._children[child.spec.id]

    def _api_child(self, child_id: str) -> _Child:
        child = self._children.get(child_id)
        if child is None:
            raise ChildNotFound(child_id)
        return child

    def _check_new_spec(self, spec: object) -> None:
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"children must be ChildSpec instances, got {spec!r}")
        # OTP R1.6 (b).
        if spec.significant and self._auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"child {spec.id!r} is significant, which needs auto_shutdown "
                "other than AutoShutdown.NEVER"
            )

    def _auto_shutdown_due(self, child: _Child) -> bool:
        """R10.1-R10.4, R10.6: called after a significant child ended for good."""
        if self._auto_shutdown is AutoShutdown.NEVER or not child.spec.significant:
            return False
        if self._auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            return True
        # ALL_SIGNIFICANT: "alive" is anything but stopped, restarting included (R10.4).
        return not any(
            c.spec.significant and c.status is not ChildStatus.STOPPED
            for c in self._children.values()
        )


_M = SupervisorMachine
_P = Phase

#: Which input each phase takes, and the handler that takes it.
_PHASE_TABLE: Final[dict[tuple[Phase, type[Any]], Callable[[_M, Any], None]]] = {
    (_P.NEW, StartupRequested): _M._on_startup,
    (_P.NEW, ShutdownRequested): _M._on_idle_shutdown,
    (_P.IDLE, ChildExited): _M._on_child_exited,
    (_P.IDLE, TimerFired): _M._on_timer_fired,
    (_P.IDLE, StartChildRequested): _M._on_start_child,
    (_P.IDLE, RestartChildRequested): _M._on_restart_child,
    (_P.IDLE, TerminateChildRequested): _M._on_terminate_child,
    (_P.IDLE, DeleteChildRequested): _M._on_delete_child,
    (_P.IDLE, ShutdownRequested): _M._on_idle_shutdown,
    (_P.AWAITING_START, ChildStarted): _M._on_child_started,
    (_P.AWAITING_START, StartFailed): _M._on_start_failed,
    (_P.AWAITING_START, StartIgnored): _M._on_start_ignored,
    (_P.AWAITING_START, ShutdownRequested): _M._on_shutdown_requested,
    (_P.AWAITING_STOP, ChildStopped): _M._on_child_stopped,
    (_P.AWAITING_STOP, ShutdownRequested): _M._on_shutdown_requested,
    (_P.EXITED, ShutdownRequested): _M._on_exited_shutdown,
    # A hung verdict is taken whenever children may run, and ignored once
    # exited; before start-up there is no incarnation to judge.
    (_P.IDLE, ChildJudgedHung): _M._on_child_judged_hung,
    (_P.AWAITING_START, ChildJudgedHung): _M._on_child_judged_hung,
    (_P.AWAITING_STOP, ChildJudgedHung): _M._on_child_judged_hung,
    (_P.EXITED, ChildJudgedHung): _M._on_exited_hung,
}

"""The control loop: carries out the pure core's commands with trio.

One :class:`Runtime` per supervisor owns a ``SupervisorMachine`` (every
decision) and a nursery (the tasks). The nursery holds one *control loop*
task and one task per running child (``_boundary.run_child``).

* **Facts in.** Child tasks, API callers and timers turn what happens into
  the core's facts. A fact goes into ``queue``; the control loop feeds the
  queue to the machine, one fact at a time (OTP R12.1, docs/design.md rule 13).
* **Commands out.** ``apply`` runs ``machine.handle`` and carries out the
  commands at once: replies, timers, and the *issue* of a start or stop
  (spawn the child's task; ask it to stop or cancel its scope). A blocking
  command whose result is already known (a child without ``task_status`` is
  started as soon as it is spawned; a child that already ended is stopped)
  has its result fed straight back. Otherwise ``blocking`` holds it and the
  control loop waits for its result before it takes the next fact.
* **The fast paths.** When the control loop is idle (nothing blocking,
  nothing queued), a child task that ends applies its own exit fact. This is
  the same serial order the loop would give (trio runs one task at a time
  and ``apply`` never awaits), without two task switches per restart. When
  the core restarts that very child at once, the same task runs the new
  incarnation in a fresh cancel scope instead of spawning a task; a child
  that takes ``task_status`` then applies its own ``ChildStarted`` when it
  calls ``started()``, since the loop would take that result first anyway.
* **Hung children** (``_watch``): the loop sleeps until the earliest timer or
  phi deadline; an incarnation found hung is a ``ChildJudgedHung`` fact, and
  the core decides whether it is cancelled (``CancelChild``).
* **Ordered shutdown by construction.** Every child's cancel scope is
  shielded, so cancellation from outside reaches only the control loop; its
  ``finally`` then feeds ``ShutdownRequested`` and runs the machine to its
  ``Exit`` inside a shielded scope, which stops the children in reverse start
  order (OTP R8.1; a pool's together, R4.7), and lets the cancellation go on.

Invariants (between two awaits of the control loop):

* every child the machine holds as STARTING, RUNNING or STOPPING has its
  current incarnation in ``runs``, with exactly one cancel scope;
* ``blocking`` is set iff the machine waits for a start or stop result;
* facts are fed in the order they were queued; the fast paths run only when
  the queue is empty.
"""

from __future__ import annotations

import functools
import inspect
import math
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Final, final

import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from .._core._check import optional_name
from .._core._protocol import (
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
    ScheduleRestart,
    ShutdownRequested,
    StartChild,
    StartFailed,
    StartIgnored,
    StartupRequested,
    StopChild,
    StopChildren,
    TerminateChildRequested,
    TimerFired,
)
from .._core._reports import ReportLimit
from .._core._spec import AutoShutdown, Backoff, ChildSpec, ChildStatus, Heartbeat, Strategy
from .._core._supervision import Phase, SupervisorMachine
from .._emit import check_publisher
from .._event import EventPublisher
from .._exceptions import (
    ChildFailureEscalated,
    ChildLimitReached,
    ChildStartFailed,
    RestartIntensityExceeded,
    SupervisorError,
    SupervisorNotRunning,
)
from . import _boundary
from ._context import CURRENT, ChildContext
from ._pool import ChildEnd, settle_at_exit
from ._report import Reporter
from ._timers import RestartTimers
from ._watch import HungWatch

if TYPE_CHECKING:
    from ._supervisor import DynamicSupervisor, Supervisor

__all__ = ["Runtime"]


@final
class _Call:
    """An API request waiting in the queue, and its answer."""

    __slots__ = ("abandoned", "done", "error", "input", "reply", "taken")

    def __init__(self, input: Input) -> None:
        self.input = input
        self.done = trio.Event()
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.taken = False
        self.abandoned = False

    def answer(self, reply: Reply | None = None, error: BaseException | None = None) -> None:
        self.reply = reply
        self.error = error
        self.done.set()


#: Queued by ``shutdown()``: a ShutdownRequested that waits its turn (D5).
_SHUTDOWN_REQUEST: Final = ShutdownRequested()
_RESULTS: Final = frozenset({ChildStarted, StartFailed, StartIgnored, ChildStopped})
_CHILD_FACTS: Final = (
    ChildExited,
    ChildStopped,
    StartFailed,
    StartIgnored,
    DeleteChildRequested,
    TerminateChildRequested,
)
#: Facts after which a child the core removed was stopped by it, not ended by itself.
_STOPS: Final = frozenset({ChildStopped, DeleteChildRequested, TerminateChildRequested})

_Item = Input | _Call
_Blocking = StartChild | StopChild | StopChildren


def takes_task_status(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` takes ``task_status`` (trio's ``nursery.start`` protocol).

    Cached per function: 10,000 children of one function (a pool, a start-up
    list) inspect its signature once, not once each.
    """
    try:
        return _signature_has_task_status(fn)
    except TypeError:  # an unhashable callable: not cacheable
        return _signature_has_task_status.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _signature_has_task_status(fn: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin or a C callable: no task_status
        return False
    return "task_status" in parameters


@final
class Runtime:
    """Runs one supervisor: see the module docstring."""

    def __init__(
        self,
        children: tuple[ChildSpec, ...],
        *,
        strategy: Strategy,
        max_restarts: int,
        within: float,
        backoff: Backoff | None,
        auto_shutdown: AutoShutdown,
        name: str | None,
        kind: str,
        max_children: int | None = None,
        pool: bool = False,
        events: EventPublisher | None = None,
        report_limit: ReportLimit | None = None,
    ) -> None:
        optional_name(name)
        if report_limit is not None and not isinstance(report_limit, ReportLimit):
            raise TypeError(f"report_limit must be a ReportLimit or None, got {report_limit!r}")
        self.machine = SupervisorMachine(
            children,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            auto_shutdown=auto_shutdown,
            random=random.random,
            max_children=max_children,
            pool=pool,
        )
        self._given_name = name
        self.name = name or kind
        #: Names from the root supervisor down to this one, "/"-separated:
        #: the source of its supervision events.
        self.path = self.name
        self.report = Reporter(check_publisher(events), self.name, report_limit)
        self.kind = kind
        self.max_restarts = max_restarts
        self.within = within
        self.max_children = max_children
        self.nursery: trio.Nursery | None = None
        self.nursery_cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        self.parent: ChildContext | None = None
        self.entered = False
        self.body_running = False
        self.ready = False
        self._ready_event = trio.Event()
        self.done = trio.Event()
        self.exit: Exit | None = None
        self.failure: SupervisorError | None = None
        #: Queue of facts and API calls, fed to the machine in order.
        self.queue: deque[_Item] = deque()
        #: The current incarnation of every child that has one.
        self.runs: dict[str, ChildContext] = {}
        self.blocking: _Blocking | None = None
        #: The pool's group stop under way (StopChildren), if any.
        self._group_stop: StopChildren | None = None
        #: Delayed restarts (ScheduleRestart with a delay).
        self._timers = RestartTimers()
        self.hung = HungWatch(self.poke)
        #: Stop now, whatever is under way (outer cancellation, an error in
        #: the body, the parent stopping this supervisor; D5).
        self.interrupted = False
        #: Cancel every child at once, down the tree, whatever its
        #: ``shutdown`` (``serve``'s second signal or deadline; rule 43).
        self.cut = False
        self._shutdown_queued = False
        self._waiter: Task | None = None
        self._call: _Call | None = None
        self.restarts = 0
        #: Whether any child ever ran a program (which_children shows pids then).
        self.programs = False
        #: Ids of children seen running a supervisor (count_children, D11).
        self.supervisor_ids: set[str] = set()
        #: Told a child's status after each fact about it, and None once it
        #: is gone or this supervisor has stopped (routing's registry: will a
        #: stopped agent come back?). One per child id.
        self._listeners: dict[str, Callable[[ChildStatus | None], None]] = {}
        #: How each pool child with a handle ends for good (``ChildHandle.wait()``),
        #: until it has: then only its handle holds it (docs/design.md rule 39).
        self._ends: dict[str, ChildEnd] = {}
        #: The public face (``Supervisor.find`` returns it).
        self.face: Supervisor | DynamicSupervisor | None = None

    # ------------------------------------------------------------ queries

    @property
    def events(self) -> EventPublisher | None:
        return self.report.events

    @property
    def events_dropped(self) -> int:
        return self.report.emitter.dropped

    @property
    def stopping(self) -> bool:
        return self.machine.stopping or self.interrupted or self._shutdown_queued

    def phi_of(self, child_id: str, now_ms: int) -> float | None:
        """The phi of a child's live, watched incarnation, or None."""
        ctx = self.runs.get(child_id)
        if ctx is None or ctx._ended or ctx._watch is None:
            return None
        if ctx._idle:
            return 0.0  # silence while idle never counts (docs/design.md rule 38)
        return ctx._watch.state.phi(now_ms)

    def restart_deadlines(self) -> dict[str, float]:
        """When each child waiting for a delayed restart is restarted (trio's clock)."""
        return self._timers.deadlines() if self._timers else {}

    def live(self, child_id: str) -> ChildContext | None:
        """A child's running incarnation, or None."""
        ctx = self.runs.get(child_id)
        return None if ctx is None or ctx._ended else ctx

    def nested(self, child_id: str) -> list[Runtime]:
        """The live supervisors run by a child."""
        ctx = self.runs.get(child_id)
        if ctx is None or ctx._ended:
            return []
        return list(ctx._supervisors)

    # ------------------------------------------------------------ ChildOwner

    def beat(self, ctx: ChildContext, now: float) -> None:
        self.hung.beat(ctx, now, self.name, self.path)

    def idle(self, ctx: ChildContext, idle: bool, now: float) -> None:
        if idle:
            self.hung.pause(ctx)
        else:
            self.hung.resume(ctx, now)

    def mark_started(self, ctx: ChildContext) -> None:
        """``task_status.started()``: the start result, applied here if the loop waits for it."""
        self._started(ctx)
        blocking = self.blocking
        if (
            type(blocking) is StartChild
            and blocking.child_id == ctx.id
            and self.runs.get(ctx.id) is ctx
            and not self.interrupted
        ):
            # The loop takes a blocking command's result before anything
            # else (_next_fact), so applying it from here is the same order.
            cid = ctx.id
            self.blocking = None
            if self.machine.handle_started_fast(cid, now=trio.current_time()):
                if cid in self._listeners:
                    self._tidy(cid)
            else:
                self.apply(ChildStarted(child_id=cid))
            if self._loop_has_work():
                self.poke()
        else:
            self.poke()

    def listen(self, child_id: str, listener: Callable[[ChildStatus | None], None]) -> None:
        """Tell ``listener`` the child's status after each fact about it (None: gone).

        It replaces the child's previous listener; it is dropped once told None.
        It must not raise.
        """
        if self.exit is not None:
            listener(None)
        else:
            self._listeners[child_id] = listener

    def expect_end(self, child_id: str) -> ChildEnd:
        """Keep how the pool child about to be started ends for good (its handle's ``wait()``)."""
        end = self._ends[child_id] = ChildEnd()
        return end

    def forget_end(self, child_id: str) -> None:
        """Its start did not give a handle: nobody will wait for it."""
        self._ends.pop(child_id, None)

    # ------------------------------------------------------------ lifecycle

    def attach(self, nursery: trio.Nursery) -> None:
        """Register with the child this supervisor runs in, if any (tree, D11)."""
        self.nursery = nursery
        parent = CURRENT.get(None)
        if parent is not None and not parent._ended:
            owner = parent._owner
            assert isinstance(owner, Runtime)
            self.parent = parent
            if self._given_name is None:
                self.name = parent.id
            self.path = f"{owner.path}/{self.name}"
            self.report.adopt(self.name, self.path, owner.events)
            parent._supervisors.append(self)
            owner.supervisor_ids.add(parent.id)
            if parent._stop_asked:
                self.interrupted = True
                self.cut = owner.cut
        else:
            self.report.adopt(self.name, self.path, None)

    def detach(self) -> None:
        """Leave the child this supervisor runs in (idempotent)."""
        parent = self.parent
        if parent is not None and self in parent._supervisors:
            parent._supervisors.remove(self)
            owner = parent._owner
            assert isinstance(owner, Runtime)
            owner.poke()

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    def interrupt(self) -> None:
        """Shut down now, interrupting any operation under way (D5)."""
        if self.exit is None and not self.interrupted:
            self.interrupted = True
            self.poke()

    def cut_short(self) -> None:
        """Shut down now and cancel every child at once, down the tree (rule 43).

        The children being stopped are cancelled now, and every child asked
        to stop from now on is cancelled when asked, whatever its ``shutdown``.
        """
        self.cut = True
        self.interrupt()
        for ctx in self.runs.values():
            for nested in ctx._supervisors:
                nested.cut_short()
            if ctx._stop_asked and not ctx._ended:
                ctx._kill_at = -math.inf
                ctx._after_supervisors = False
                self._enforce_stop(ctx)
        self.poke()

    def request_shutdown(self) -> None:
        """Queue a shutdown behind the requests already queued (OTP R12.1)."""
        if self.exit is None and not self._shutdown_queued:
            self._shutdown_queued = True
            self.queue.append(_SHUTDOWN_REQUEST)
            self.poke()

    async def call(self, request: Input) -> Reply:
        """Queue an API request and wait for its answer."""
        if not self.entered or self.exit is not None or self.stopping:
            await trio.lowlevel.checkpoint()
            raise SupervisorNotRunning(self.name)
        call = _Call(request)
        self.queue.append(call)
        self.poke()
        try:
            await call.done.wait()
        except BaseException:
            # A cancelled caller withdraws a request that has not begun; one
            # under way completes, as an OTP call that timed out does (D22).
            if not call.taken:
                call.abandoned = True
            raise
        if call.error is not None:
            raise call.error
        assert call.reply is not None
        return call.reply

    # ------------------------------------------------------------ control loop

    async def run(self) -> None:
        """The control loop: a task in the supervisor's nursery."""
        try:
            self.apply(StartupRequested())
            await self._loop()
        finally:
            if self.exit is None:
                # Cancelled from outside (or KeyboardInterrupt): stop every
                # child in order anyway, shielded, then let it propagate.
                self.interrupted = True
                with trio.CancelScope(shield=True):
                    await self._loop()

    async def _loop(self) -> None:
        while self.exit is None:
            if self._timers:
                now = trio.current_time()
                for cid, timer in self._timers.pop_due(now):
                    self.queue.append(TimerFired(child_id=cid, timer=timer))
            if self.hung:
                self._judge_hung()
            fact = self._next_fact()
            if fact is not None:
                self.apply(fact)
                continue
            deadline = self._timers.next_deadline()
            if self.hung:
                due = self.hung.next_due()
                if due is not None:
                    deadline = min(deadline, due)
            if self.blocking is not None and type(self.blocking) is not StartChild:
                deadline = min(deadline, self._kill_deadline())
            if deadline == math.inf:
                await self._park()
            else:
                with trio.move_on_at(deadline):
                    await self._park()

    async def _park(self) -> None:
        self._waiter = current_task()
        await wait_task_rescheduled(self._abort_park)

    def _abort_park(self, _: object) -> Abort:
        # Cancelled while parked: trio reschedules the task itself, so a poke
        # from now on must not (a task is rescheduled at most once).
        self._waiter = None
        return Abort.SUCCEEDED

    def poke(self) -> None:
        """Wake the control loop if it is parked."""
        task = self._waiter
        if task is not None:
            self._waiter = None
            reschedule(task)

    def _next_fact(self) -> Input | None:
        machine = self.machine
        blocking = self.blocking
        if blocking is not None:
            result = self._result_of(blocking)
            if result is not None:
                return result
            if self.interrupted and not machine.stopping:
                return ShutdownRequested()
            return None
        if self.interrupted and not machine.stopping:
            return ShutdownRequested()
        queue = self.queue
        while queue:
            item = queue.popleft()
            if type(item) is not _Call:
                return item
            if item.abandoned:
                continue
            item.taken = True
            self._call = item
            return item.input
        return None

    def _stopping_ids(self, blocking: _Blocking) -> tuple[str, ...] | frozenset[str]:
        """The children whose stop the machine waits for (one, or a pool's together)."""
        awaited = self.machine.awaiting_stops
        if awaited:
            return awaited
        return (blocking.child_id,) if type(blocking) is StopChild else ()

    def _result_of(self, blocking: _Blocking) -> Input | None:
        if type(blocking) is StartChild:
            cid = blocking.child_id
            ctx = self.runs[cid]
            if ctx._started:
                return ChildStarted(child_id=cid)
            if not ctx._ended or ctx._escaped:
                # An escaped child is no start result: the interrupt it
                # raised shuts the supervisor down (rule 15).
                return None
            if ctx._normal:
                return StartIgnored(child_id=cid)
            return StartFailed(child_id=cid, error=ctx._error)
        stopping = self._stopping_ids(blocking)
        for cid in stopping:
            run = self.runs.get(cid)
            if run is None or run._ended:
                return ChildStopped(child_id=cid)
        for cid in stopping:
            self._enforce_stop(self.runs[cid])
        return None

    def _kill_deadline(self) -> float:
        """When the next child being stopped is to be cancelled."""
        deadline = math.inf
        assert self.blocking is not None
        for cid in self._stopping_ids(self.blocking):
            ctx = self.runs.get(cid)
            if ctx is not None and not ctx._killed:
                deadline = min(deadline, ctx._kill_at)
        return deadline

    def _judge_hung(self) -> None:
        """Hand the core each incarnation found hung; it decides (``CancelChild``)."""
        now = trio.current_time()
        for ctx, verdict in self.hung.due(now, self.name):
            fact = ChildJudgedHung(child_id=ctx.id, incarnation=ctx.incarnation)
            for command in self.machine.handle(fact, now=now):
                assert type(command) is CancelChild
                watch = ctx._watch
                assert watch is not None
                watch.hung = verdict
                # Not a stop: the end is abnormal, with ChildHung (_boundary).
                ctx._scope.cancel(reason=str(verdict))

    # ------------------------------------------------------------ commands

    def apply(
        self, fact: Input | None, commands: list[Command] | None = None, about: str | None = None
    ) -> None:
        """Feed a fact (or take the commands it gave), carry them out, feed back known results.

        ``about`` names the child whose fact gave ``commands``, to tidy after
        (its exit: the fast path).
        """
        machine = self.machine
        stopped = False
        while True:
            if commands is None:
                if fact is None:
                    break
                if type(fact) in _RESULTS:
                    self.blocking = None
                call = self._call
                try:
                    commands = machine.handle(fact, now=trio.current_time())
                except (SupervisorError, ValueError, TypeError) as exc:
                    if call is None or fact is not call.input:
                        raise
                    # Refused at once, nothing changed (OTP R1.11, D12).
                    self._call = None
                    call.answer(error=exc)
                    return
                about = fact.child_id if isinstance(fact, _CHILD_FACTS) else None
                stopped = type(fact) in _STOPS
            fact = None
            for command in commands:
                kind = type(command)
                if kind is StartChild:
                    fact = self._issue_start(command)  # type: ignore[arg-type]
                elif kind is StopChild:
                    fact = self._issue_stop(command)  # type: ignore[arg-type]
                elif kind is StopChildren:
                    fact = self._issue_stops(command)  # type: ignore[arg-type]
                elif kind is Reply:
                    self._reply(command)  # type: ignore[arg-type]
                elif kind is ScheduleRestart:
                    self._schedule(command)  # type: ignore[arg-type]
                elif kind is Exit:
                    self._on_exit(command)  # type: ignore[arg-type]
                    return
                elif kind is CancelRestart:
                    self._timers.cancel(command.timer)  # type: ignore[union-attr]
                else:  # CancelChild comes only from _judge_hung
                    raise AssertionError(f"unexpected command {command!r}")
            if self.blocking is None and fact is None and machine.awaiting_stops:
                # A pool's group stop goes on until the last child has stopped.
                assert self._group_stop is not None
                self.blocking = self._group_stop
            if about is not None:
                self._tidy(about, stopped)
            commands = None
            about = None
            stopped = False
        if not self.ready and machine.phase is Phase.IDLE:
            self.ready = True
            self._ready_event.set()
            self.report.supervisor_started()

    def incarnation(self, cid: str, incarnation: int, heartbeat: Heartbeat | None) -> ChildContext:
        """Make and register a child's next incarnation (watched if ``heartbeat``)."""
        cause = None
        if cid in self.runs:
            self.restarts += 1
            cause = self.report.child_restarted(cid, incarnation, self.restarts)
        ctx = self.runs[cid] = ChildContext(self, cid, incarnation)
        ctx._cause = cause
        if heartbeat is not None:
            self.hung.start(ctx, heartbeat, trio.current_time())
        return ctx

    def _started(self, ctx: ChildContext) -> None:
        """The child counts as started (spawned, or ``task_status.started()``)."""
        ctx._started = True
        self.report.child_started(ctx)

    def _issue_start(self, command: StartChild) -> Input | None:
        cid = command.child_id
        spec = self.machine.spec(cid)
        ctx = self.incarnation(cid, command.incarnation, spec.heartbeat)
        takes_status = takes_task_status(spec.fn)
        assert self.nursery is not None
        self.nursery.start_soon(
            _boundary.run_child, self, ctx, spec, takes_status, name=f"trio_smith child {cid}"
        )
        if takes_status:
            self.blocking = command
            return None
        self._started(ctx)
        return ChildStarted(child_id=cid)

    def _issue_stop(self, command: StopChild) -> Input | None:
        ctx = self.runs.get(command.child_id)
        if ctx is None or ctx._ended:
            return ChildStopped(child_id=command.child_id)
        self._ask_stop(ctx, trio.current_time())
        self.blocking = command
        return None

    def _issue_stops(self, command: StopChildren) -> Input | None:
        """A pool's children, asked to stop together: one instant for all (R4.7)."""
        now = trio.current_time()
        for cid in command.child_ids:
            ctx = self.runs.get(cid)
            if ctx is not None and not ctx._ended:
                self._ask_stop(ctx, now)
        self._group_stop = command
        self.blocking = command
        return self._result_of(command)

    def _ask_stop(self, ctx: ChildContext, now: float) -> None:
        """Start stopping a child as its ``ChildSpec.shutdown`` says (R8.2-R8.4, D17)."""
        if ctx._stop_asked:
            return
        ctx._stop_asked = True
        if ctx._event is not None:
            ctx._event.set()
        if ctx._on_stop is not None:
            ctx._on_stop()
        shutdown = self.machine.spec(ctx.id).shutdown
        if self.cut:
            for nested in ctx._supervisors:
                nested.cut_short()
            ctx._kill_at = -math.inf
        elif shutdown == 0 or (shutdown is None and not ctx._supervisors):
            ctx._kill_at = -math.inf  # cancel at once
        else:
            for nested in ctx._supervisors:
                nested.interrupt()
            if shutdown is None:
                ctx._after_supervisors = True
            else:
                ctx._kill_at = now + shutdown
        self._enforce_stop(ctx)

    def _enforce_stop(self, ctx: ChildContext) -> None:
        if ctx._killed:
            return
        if ctx._kill_at <= trio.current_time() or (ctx._after_supervisors and not ctx._supervisors):
            ctx._killed = True
            ctx._scope.cancel(reason=f"stopped by supervisor {self.name!r}")

    def _reply(self, reply: Reply) -> None:
        call = self._call
        if call is None:
            return
        self._call = None
        outcome = reply.outcome
        if outcome is ReplyOutcome.START_FAILED:
            error = ChildStartFailed(reply.child_id)
            error.__cause__ = reply.error if isinstance(reply.error, BaseException) else None
            call.answer(error=error)
        elif outcome is ReplyOutcome.ABORTED:
            call.answer(error=SupervisorNotRunning(self.name))
        elif outcome is ReplyOutcome.LIMIT_REACHED:
            assert self.max_children is not None
            call.answer(error=ChildLimitReached(self.name, self.max_children))
        else:
            call.answer(reply)

    def _schedule(self, command: ScheduleRestart) -> None:
        if command.delay <= 0:
            # OTP's try_again_restart: behind the facts already queued (R6.1).
            self.queue.append(TimerFired(child_id=command.child_id, timer=command.timer))
        else:
            deadline = trio.current_time() + command.delay
            self._timers.add(deadline, command.timer, command.child_id)
            self.report.restart_delayed(command.child_id, command.delay)
        self.poke()

    def _tidy(self, cid: str, stopped: bool = False) -> None:
        """Forget a child the core no longer holds; tell its listener its status.

        ``stopped``: the fact was a stop (or ``terminate_child``), not the
        child's own end; it settles how a pool child ended for good, unless
        the supervisor is shutting down: its exit settles that (docs/design.md
        rule 39).
        """
        machine = self.machine
        status = machine.child_status(cid)
        if status is None:
            ctx = self.runs.pop(cid, None)
            if self._ends and not machine.stopping:
                end = self._ends.pop(cid, None)
                if end is not None:
                    end.removed(ctx, stopped, self.name)
        listener = self._listeners.get(cid)
        if listener is not None:
            if status is None:
                del self._listeners[cid]
            listener(status)

    def _on_exit(self, command: Exit) -> None:
        self.exit = command
        self.blocking = None
        reason = command.reason
        cause = command.error if isinstance(command.error, BaseException) else None
        failure: SupervisorError | None = None
        if reason is ExitReason.INTENSITY:
            assert command.child_id is not None
            failure = RestartIntensityExceeded(
                command.child_id,
                max_restarts=self.max_restarts,
                within=self.within,
                restarts=command.restarts,
            )
        elif reason is ExitReason.ESCALATED:
            assert command.child_id is not None
            failure = ChildFailureEscalated(command.child_id, restarts=command.restarts)
        elif reason is ExitReason.START_FAILED:
            assert command.child_id is not None
            failure = ChildStartFailed(command.child_id)
        if failure is not None:
            failure.__cause__ = cause
            self.failure = failure
            self.report.gave_up(reason.value, command.child_id, failure)
        elif reason is ExitReason.AUTO_SHUTDOWN:
            self.report.auto_shutdown(command.child_id)
        call = self._call
        if call is not None:
            self._call = None
            call.answer(error=SupervisorNotRunning(self.name))
        for item in self.queue:
            if type(item) is _Call and not item.abandoned:
                item.answer(error=SupervisorNotRunning(self.name))
        self.queue.clear()
        self._timers.clear()
        self.hung.clear()
        self.runs.clear()
        if self._ends:
            settle_at_exit(self._ends, command, failure, self.name)
            self._ends.clear()
        listeners = list(self._listeners.values())
        self._listeners.clear()
        for listener in listeners:
            listener(None)
        self.ready = True
        self._ready_event.set()
        self.report.stopped(reason.value)
        self.done.set()
        # The parent may be waiting for this supervisor to stop (D19), even
        # if the body of its ``async with`` goes on.
        self.detach()
        if failure is not None and reason is not ExitReason.START_FAILED and self.body_running:
            # Like a nursery whose child failed: the body is cancelled, and
            # the failure is raised bare out of ``async with`` (rule 16).
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel(reason=f"supervisor {self.name!r} gave up")
        self.poke()

    # ------------------------------------------------------------ child ends

    def child_escaped(self, ctx: ChildContext, error: BaseException | None) -> None:
        """A child's task unwinds with a BaseException (KeyboardInterrupt...): rule 15.

        It is never restarted and never a start result: it propagates through
        the supervisor's nursery, which cancels the control loop, whose
        ordered shutdown then finds this child already ended.
        """
        ctx._ended = True
        ctx._escaped = True
        if ctx._watch is not None:
            self.hung.discard(ctx)
        if self.exit is None:
            if error is not None and not isinstance(error, trio.Cancelled):
                self.report.child_interrupted(ctx, error)
            self.interrupted = True
            self.poke()

    def child_ended(
        self,
        ctx: ChildContext,
        normal: bool,
        error: BaseException | None,
        takes_status: bool,
    ) -> ChildContext | None:
        """Turn a child's end into a fact; return a new incarnation to run in this task."""
        ctx._ended = True
        ctx._normal = normal
        ctx._error = error
        if ctx._watch is not None:
            self.hung.discard(ctx)
        if self.exit is not None:
            return None
        self.report.child_ended(ctx, normal, error)
        if not ctx._started or ctx._stop_asked:
            # A start result or the end of a stop: the control loop waits for it.
            self.poke()
            return None
        kind = ExitKind.NORMAL if normal else ExitKind.ABNORMAL
        if self.blocking is not None or self.queue or self.interrupted or not self.ready:
            self.queue.append(
                ChildExited(child_id=ctx.id, incarnation=ctx.incarnation, kind=kind, error=error)
            )
            self.poke()
            return None
        # The fast path: the control loop is idle, so this task may feed the
        # fact itself (the module docstring explains why that is the same).
        cid = ctx.id
        watch = ctx._watch
        heartbeat = None if watch is None else watch.heartbeat
        machine = self.machine
        now = trio.current_time()
        outcome = machine.handle_exit_fast(
            cid, ctx.incarnation, kind, error, now=now, awaits_start=takes_status
        )
        if isinstance(outcome, int):
            # Restarted at once: run the new incarnation in this task.
            new = self.incarnation(cid, outcome, heartbeat)
            if takes_status:
                # The start is out; its started() feeds ChildStarted (mark_started).
                self.blocking = StartChild(child_id=cid, incarnation=outcome)
                if cid in self._listeners:
                    self._tidy(cid)  # STARTING
            else:
                self._started(new)
            return new
        self.apply(None, outcome, cid)
        if self._loop_has_work():
            self.poke()
        return None

    def _loop_has_work(self) -> bool:
        return (
            self.blocking is not None
            or self.exit is not None
            or bool(self.queue)
            or self.interrupted
        )

"""The supervision runtime: carries out the pure core's commands with trio.

Theory of operation
===================

One ``_Runtime`` per supervisor owns a ``SupervisorMachine`` (the decisions)
and a nursery (the tasks). The nursery holds one *control loop* task and one
task per running child.

* **Facts in.** Child tasks, API callers and timers turn what happens into
  the core's facts. A fact goes into ``_queue``; the control loop feeds the
  queue to the machine, one fact at a time (OTP R12.1).
* **Commands out.** ``_apply`` runs ``machine.handle`` and carries out the
  commands at once: replies, timers, and the *issue* of a start or stop
  (spawn the child's task; ask it to stop or cancel its scope). A blocking
  command whose result is already known (a child without ``task_status`` is
  started as soon as it is spawned; a child that already ended is stopped)
  has its result fed straight back. Otherwise ``_blocking`` holds it and the
  control loop waits for its result before it takes the next fact.
* **The fast path.** When the control loop is idle (nothing blocking, nothing
  queued), a child task that ends applies its own exit fact. This is the
  same serial order the loop would give (trio runs one task at a time and
  ``_apply`` never awaits), without two task switches per restart. When the
  core's fused transition (``handle_exit_fast``) restarts that very child at
  once, the same task runs the new incarnation in a fresh cancel scope
  instead of spawning a task; any other restart spawns one.
* **The child boundary** (``_child_main``): ``return`` is a normal exit,
  ``except Exception`` / ``except* Exception`` an abnormal one, and an end
  after the supervisor asked the child to stop is a stop, never a failure
  (OTP R3.5). ``trio.Cancelled`` and other BaseExceptions propagate.
* **Hung children** (``ChildSpec.heartbeat``). Each incarnation of a watched
  child gets Akka's phi state (``_core._phi``), its creation counting as the
  first heartbeat. ``ChildContext.heartbeat()`` feeds it in O(1). The
  control loop keeps a heap of exact deadlines (``PhiState.suspect_at``)
  and sleeps until the earliest timer or deadline; a due incarnation whose
  phi has reached the threshold is cancelled and ends abnormally with
  ``ChildHung``, otherwise it is rescheduled (lazily: a heartbeat pushes an
  entry only when it moves the deadline earlier). Incarnations being
  stopped are not judged. An unwatched child costs a None check.
* **Ordered shutdown by construction.** Every child's cancel scope is
  shielded, so cancellation from outside reaches only the control loop; its
  ``finally`` then feeds ``ShutdownRequested`` and runs the machine to its
  ``Exit`` inside a shielded scope, which stops the children one at a time in
  reverse start order (OTP R8.1), and lets the cancellation go on.

Invariants (between two awaits of the control loop):

* every child the machine holds as STARTING, RUNNING or STOPPING has its
  current incarnation in ``_runs``, with exactly one cancel scope;
* ``_blocking`` is set iff the machine waits for a start or stop result;
* facts are fed in the order they were queued; the fast path runs only when
  the queue is empty.
"""

from __future__ import annotations

import contextvars
import functools
import heapq
import inspect
import logging
import math
import random
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, final

import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

from ._core._check import optional_name
from ._core._phi import PhiDeadlines, PhiState, to_ms
from ._core._protocol import (
    CancelRestart,
    ChildExited,
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
    StartChildRequested,
    StartFailed,
    StartIgnored,
    StartupRequested,
    StopChild,
    TimerFired,
)
from ._core._spec import AutoShutdown, Backoff, ChildSpec, ChildStatus, Heartbeat, Strategy
from ._core._supervision import Phase, SupervisorMachine
from ._event import (
    Event,
    EventPublisher,
    EventType,
    SupervisionEvent,
    linked_event,
    storable_text,
)
from ._exceptions import (
    ChildFailureEscalated,
    ChildHung,
    ChildLimitReached,
    ChildStartFailed,
    NoCurrentChild,
    RestartIntensityExceeded,
    SupervisorError,
    SupervisorNotRunning,
)

__all__ = ["ChildContext", "current_child"]

log: Final = logging.getLogger("trio_smith.supervisor")

_CURRENT: Final[contextvars.ContextVar[ChildContext]] = contextvars.ContextVar(
    "trio_smith.current_child"
)


def current_child() -> ChildContext:
    """Return the context of the supervised child this code runs in.

    Tasks that a child starts in its own nurseries see the child's context
    too.

    Returns:
        The child's :class:`ChildContext`.

    Raises:
        NoCurrentChild: not called from inside a child of a supervisor.
    """
    ctx = _CURRENT.get(None)
    if ctx is None:
        raise NoCurrentChild
    return ctx


@final
class ChildContext:
    """What a running child knows about itself (one per incarnation).

    Get it with :func:`current_child`. Attributes:

    * ``id``: the child's id in its supervisor.
    * ``supervisor``: the supervisor's name.
    * ``incarnation``: which start of the child this is, unique in its supervisor.
    * ``stop_requested``: a :class:`trio.Event` set when the supervisor asks
      the child to stop (``ChildSpec.shutdown`` of ``T > 0`` or ``math.inf``,
      or a child that runs a supervisor).
    """

    __slots__ = (
        "_after_supervisors",
        "_cause",
        "_ended",
        "_error",
        "_event",
        "_heartbeats",
        "_kill_at",
        "_killed",
        "_last_heartbeat",
        "_normal",
        "_owner",
        "_scope",
        "_started",
        "_stop_asked",
        "_supervisors",
        "_watch",
        "id",
        "incarnation",
    )

    def __init__(self, owner: _Runtime, child_id: str, incarnation: int) -> None:
        self._owner = owner
        self.id = child_id
        self.incarnation = incarnation
        # Invariant: the child's one cancel scope; shielded so that only its
        # own supervisor can cancel it (ordered shutdown, DESIGN.md section 2).
        self._scope = trio.CancelScope(shield=True)
        self._started = False
        self._ended = False
        self._normal = False
        self._error: BaseException | None = None
        self._stop_asked = False
        self._killed = False
        self._kill_at = math.inf
        #: Shutdown None of a child that runs a supervisor: cancel it once its
        #: supervisors have stopped (OTP ``infinity`` for supervisors, R8.4).
        self._after_supervisors = False
        self._event: trio.Event | None = None
        #: Supervisors this child runs (they register when entered).
        self._supervisors: list[_Runtime] = []
        self._heartbeats = 0
        self._last_heartbeat: float | None = None
        #: The supervision event that brought this incarnation about (a restart).
        self._cause: Event | None = None
        #: Hung-child detection (``ChildSpec.heartbeat``); None: not watched.
        self._watch: _Watch | None = None

    @property
    def supervisor(self) -> str:
        """The name of the supervisor that runs this child."""
        return self._owner.name

    @property
    def stop_requested(self) -> trio.Event:
        """Set when the supervisor asks this child to stop; return soon after."""
        event = self._event
        if event is None:
            # Made on first use: most children never look at it.
            event = self._event = trio.Event()
            if self._stop_asked:
                event.set()
        return event

    def heartbeat(self) -> None:
        """Tell the supervisor that this child is alive and making progress.

        Cheap (no checkpoint, O(1)). A child whose spec has a
        :class:`~trio_smith.Heartbeat` must call it about every
        ``Heartbeat.interval`` seconds, or it is judged hung; for other
        children it only keeps ``last_heartbeat`` and ``heartbeats``.
        """
        now = trio.current_time()
        self._last_heartbeat = now
        self._heartbeats += 1
        watch = self._watch
        if watch is not None:
            self._owner._beat(self, watch, now)

    @property
    def last_heartbeat(self) -> float | None:
        """``trio.current_time()`` of the last :meth:`heartbeat`, or None."""
        return self._last_heartbeat

    @property
    def heartbeats(self) -> int:
        """How many times :meth:`heartbeat` was called in this incarnation."""
        return self._heartbeats

    def _hung(self) -> ChildHung | None:
        """The verdict if this incarnation was judged hung (it is being cancelled for it)."""
        watch = self._watch
        return None if watch is None else watch.hung

    def _listen(self, listener: Callable[[ChildStatus | None], None]) -> None:
        """Have ``listener`` told this child's status after each fact about it (None: gone).

        For trio_smith.routing: an agent's name outlives an incarnation only
        while its supervisor may start it again.
        """
        self._owner.listen(self.id, listener)

    def __repr__(self) -> str:
        return (
            f"<ChildContext id={self.id!r} supervisor={self._owner.name!r} "
            f"incarnation={self.incarnation}>"
        )


@final
class _Watch:
    """Hung-child detection for one incarnation: Akka's phi state.

    Its deadline lives in the supervisor's ``PhiDeadlines`` agenda, which a
    heartbeat touches only when it moves the deadline earlier.
    """

    __slots__ = ("heartbeat", "hung", "state")

    def __init__(self, heartbeat: Heartbeat, state: PhiState) -> None:
        self.heartbeat = heartbeat
        self.state = state
        #: Set when the supervisor judged the incarnation hung and cancelled it.
        self.hung: ChildHung | None = None


@final
class _TaskStatus:
    """The ``task_status`` a child gets: ``started()`` ends its start (trio's protocol)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: ChildContext) -> None:
        self._ctx = ctx

    def started(self, value: object = None) -> None:
        ctx = self._ctx
        if ctx._started:
            raise RuntimeError("called 'started' twice on the same task status")
        ctx._owner._mark_started(ctx)
        ctx._owner._poke()


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
_CHILD_FACTS: Final = (ChildExited, ChildStopped, StartFailed, StartIgnored, DeleteChildRequested)
_FAILURES: Final = frozenset({ExitReason.INTENSITY, ExitReason.ESCALATED, ExitReason.START_FAILED})

_Item = Input | _Call


def _describe(error: BaseException | None) -> dict[str, object]:
    """An error as event payload: its type's qualified name and its message.

    Both made storable: an exception's message may hold a lone surrogate.
    """
    if error is None:
        return {"error_type": None, "error": None}
    kind = type(error)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {"error_type": storable_text(name), "error": storable_text(str(error))}


def _takes_task_status(fn: Callable[..., object]) -> bool:
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
class _Runtime:
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
        parallel_shutdown: bool = False,
        events: EventPublisher | None = None,
    ) -> None:
        optional_name(name)
        self.machine = SupervisorMachine(
            children,
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            auto_shutdown=auto_shutdown,
            random=random.random,
        )
        if events is not None and not callable(getattr(events, "publish_nowait", None)):
            raise TypeError(f"events must have a publish_nowait method, got {events!r}")
        self._given_name = name
        self.name = name or kind
        #: Names from the root supervisor down to this one, "/"-separated:
        #: the source of its supervision events.
        self.path = self.name
        #: Where supervision events go (inherited from the parent when None).
        self.events = events
        self.events_dropped = 0
        #: The last failure event: the cause of the restarts it brings about.
        self._last_failure: Event | None = None
        self.kind = kind
        self.max_restarts = max_restarts
        self.within = within
        self.max_children = max_children
        #: A dynamic pool: children stop in parallel, and a child that is
        #: stopped for good is removed (OTP simple_one_for_one, R4.7, R4.8).
        self.pool = parallel_shutdown
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
        self._queue: deque[_Item] = deque()
        #: The current incarnation of every child that has one.
        self._runs: dict[str, ChildContext] = {}
        self._blocking: StartChild | StopChild | None = None
        #: Delayed restarts: [deadline, timer id, child id, live].
        self._timers: list[list[Any]] = []
        self._timer_entries: dict[int, list[Any]] = {}
        #: Hung-child deadlines of the watched incarnations, ms.
        self._watches: PhiDeadlines[ChildContext] = PhiDeadlines()
        #: Whether any child was ever watched for hangs.
        self.watched = False
        #: Stop now, whatever is under way (outer cancellation, an error in
        #: the body, the parent stopping this supervisor; D5).
        self._interrupt = False
        self._shutdown_queued = False
        self._waiter: Task | None = None
        self._call: _Call | None = None
        self._killed_all = False
        self.restarts = 0
        #: Ids of children seen running a supervisor (count_children, D11).
        self.supervisor_ids: set[str] = set()
        #: Told a child's status after each fact about it, and None once it
        #: is gone or this supervisor has stopped (routing's registry: will a
        #: stopped agent come back?). One per child id.
        self._listeners: dict[str, Callable[[ChildStatus | None], None]] = {}

    # ------------------------------------------------------------ queries

    @property
    def stopping(self) -> bool:
        return self.machine.stopping or self._interrupt or self._shutdown_queued

    def phi_of(self, child_id: str, now_ms: int) -> float | None:
        """The phi of a child's live, watched incarnation, or None."""
        ctx = self._runs.get(child_id)
        if ctx is None or ctx._ended or ctx._watch is None:
            return None
        return ctx._watch.state.phi(now_ms)

    def nested(self, child_id: str) -> list[_Runtime]:
        """The live supervisors run by a child."""
        ctx = self._runs.get(child_id)
        if ctx is None or ctx._ended:
            return []
        return list(ctx._supervisors)

    # ------------------------------------------------------------ lifecycle

    def attach(self, nursery: trio.Nursery) -> None:
        """Register with the child this supervisor runs in, if any (tree, D11)."""
        self.nursery = nursery
        parent = _CURRENT.get(None)
        if parent is not None and not parent._ended:
            self.parent = parent
            if self._given_name is None:
                self.name = parent.id
            self.path = f"{parent._owner.path}/{self.name}"
            if self.events is None:
                self.events = parent._owner.events
            parent._supervisors.append(self)
            parent._owner.supervisor_ids.add(parent.id)
            if parent._stop_asked:
                self._interrupt = True

    def detach(self) -> None:
        """Leave the child this supervisor runs in (idempotent)."""
        parent = self.parent
        if parent is not None and self in parent._supervisors:
            parent._supervisors.remove(self)
            parent._owner._poke()

    async def wait_ready(self) -> None:
        await self._ready_event.wait()

    def interrupt(self) -> None:
        """Shut down now, interrupting any operation under way (D5)."""
        if self.exit is None and not self._interrupt:
            self._interrupt = True
            self._poke()

    def request_shutdown(self) -> None:
        """Queue a shutdown behind the requests already queued (OTP R12.1)."""
        if self.exit is None and not self._shutdown_queued:
            self._shutdown_queued = True
            self._queue.append(_SHUTDOWN_REQUEST)
            self._poke()

    async def call(self, request: Input) -> Reply:
        """Queue an API request and wait for its answer."""
        if not self.entered or self.exit is not None or self.stopping:
            await trio.lowlevel.checkpoint()
            raise SupervisorNotRunning(self.name)
        call = _Call(request)
        self._queue.append(call)
        self._poke()
        try:
            await call.done.wait()
        except BaseException:
            # A cancelled caller withdraws a request that has not begun; one
            # under way completes, as an OTP call that timed out does.
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
            self._apply(StartupRequested())
            await self._loop()
        finally:
            if self.exit is None:
                # Cancelled from outside (or KeyboardInterrupt): stop every
                # child in order anyway, shielded, then let it propagate.
                self._interrupt = True
                with trio.CancelScope(shield=True):
                    await self._loop()

    async def _loop(self) -> None:
        while self.exit is None:
            if self._timers:
                self._fire_due_timers()
            if self._watches:
                self._judge_due_watches()
            fact = self._next_fact()
            if fact is not None:
                self._apply(fact)
                continue
            deadline = self._timers[0][0] if self._timers else math.inf
            if self._watches:
                due = self._watches.next_due()
                if due is not None:
                    deadline = min(deadline, due / 1000)
            blocking = self._blocking
            if type(blocking) is StopChild:
                ctx = self._runs[blocking.child_id]
                if not ctx._killed:
                    deadline = min(deadline, ctx._kill_at)
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

    def _poke(self) -> None:
        task = self._waiter
        if task is not None:
            self._waiter = None
            reschedule(task)

    def _next_fact(self) -> Input | None:
        machine = self.machine
        blocking = self._blocking
        if blocking is not None:
            result = self._result_of(blocking)
            if result is not None:
                return result
            if self._interrupt and not machine.stopping:
                return ShutdownRequested()
            return None
        if self._interrupt and not machine.stopping:
            return ShutdownRequested()
        queue = self._queue
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

    def _result_of(self, blocking: StartChild | StopChild) -> Input | None:
        cid = blocking.child_id
        ctx = self._runs[cid]
        if type(blocking) is StartChild:
            if ctx._started:
                return ChildStarted(child_id=cid)
            if not ctx._ended:
                return None
            if ctx._normal:
                return StartIgnored(child_id=cid)
            return StartFailed(child_id=cid, error=ctx._error)
        if ctx._ended:
            return ChildStopped(child_id=cid)
        self._enforce_stop(ctx)
        return None

    def _fire_due_timers(self) -> None:
        now = trio.current_time()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, timer, cid, live = heapq.heappop(timers)
            self._timer_entries.pop(timer, None)
            if live:
                self._queue.append(TimerFired(child_id=cid, timer=timer))

    # ------------------------------------------------------------ hung children

    def _watch_start(self, ctx: ChildContext, heartbeat: Heartbeat) -> None:
        """Watch a new incarnation; its creation is its first heartbeat.

        Akka's ``expect``: a child that never calls ``heartbeat()`` is still
        judged, from the bootstrap history.
        """
        state = PhiState(heartbeat._config)
        state.heartbeat(to_ms(trio.current_time()))
        watch = ctx._watch = _Watch(heartbeat, state)
        self.watched = True
        self._watch_schedule(ctx, watch)

    def _watch_schedule(self, ctx: ChildContext, watch: _Watch) -> None:
        """Set the incarnation's exact deadline (``suspect_at``) in the agenda."""
        due = watch.state.suspect_at()
        assert due is not None  # the state has had its first heartbeat
        if self._watches.schedule(ctx, due):
            self._poke()  # an earlier wake-up than the loop sleeps for

    def _beat(self, ctx: ChildContext, watch: _Watch, now: float) -> None:
        """A watched child's heartbeat: O(1); rescheduled only if its deadline moved earlier."""
        state = watch.state
        interval = state.heartbeat(to_ms(now))
        if interval is not None:
            # Akka's warning at 2/3 of the acceptable pause.
            log.warning(
                "child %r of supervisor %r: heartbeat interval is growing too large: %d ms",
                ctx.id,
                self.name,
                interval,
            )
        if watch.hung is not None or ctx._ended or self.exit is not None:
            return
        due = self._watches.due(ctx)
        if due is not None and state.suspected_before(due):
            self._watch_schedule(ctx, watch)

    def _judge_due_watches(self) -> None:
        """Judge the incarnations whose deadline has come: hung, or rescheduled."""
        now = trio.current_time()
        now_ms = to_ms(now)
        for ctx, due in self._watches.pop_due(now):
            watch = ctx._watch
            assert watch is not None
            if watch.hung is not None or ctx._ended or ctx._stop_asked or self.stopping:
                continue  # judged, ended, or being stopped: not judged
            # The loop woke at due / 1000 s: judge at due even if the clock,
            # converted back, reads a ms less (huge times).
            at = max(now_ms, due)
            state = watch.state
            phi = state.phi(at)
            threshold = state.config.threshold
            if phi < threshold:
                # A heartbeat moved the deadline later: sleep until then (lazy).
                self._watch_schedule(ctx, watch)
                continue
            assert state.timestamp is not None
            hung = watch.hung = ChildHung(
                ctx.id,
                self.name,
                phi=phi,
                silence=(at - state.timestamp) / 1000,
                threshold=threshold,
            )
            # Not a stop: the child's end is abnormal, with ChildHung (_child_main).
            ctx._scope.cancel(reason=str(hung))

    # ------------------------------------------------------------ commands

    def _apply(
        self, fact: Input | None, commands: list[Command] | None = None, about: str | None = None
    ) -> None:
        """Feed a fact (or take the commands it gave), carry them out, feed back known results.

        ``about`` names the child whose fact gave ``commands``, to tidy after.
        """
        machine = self.machine
        while True:
            if commands is None:
                if fact is None:
                    break
                if type(fact) in _RESULTS:
                    self._blocking = None
                call = self._call
                try:
                    if (
                        self.max_children is not None
                        and type(fact) is StartChildRequested
                        and machine.size >= self.max_children
                    ):
                        raise ChildLimitReached(self.name, self.max_children)
                    commands = machine.handle(fact, now=trio.current_time())
                except (SupervisorError, ValueError, TypeError) as exc:
                    if call is None or fact is not call.input:
                        raise
                    # Refused at once, nothing changed (OTP R1.11, D12).
                    self._call = None
                    call.answer(error=exc)
                    return
                about = fact.child_id if isinstance(fact, _CHILD_FACTS) else None
            fact = None
            for command in commands:
                if type(command) is StartChild:
                    fact = self._issue_start(command)
                elif type(command) is StopChild:
                    fact = self._issue_stop(command)
                elif type(command) is Reply:
                    self._reply(command)
                elif type(command) is ScheduleRestart:
                    self._schedule(command)
                elif type(command) is Exit:
                    self._on_exit(command)
                    return
                elif type(command) is CancelRestart:
                    entry = self._timer_entries.pop(command.timer, None)
                    if entry is not None:
                        entry[3] = False
            if about is not None:
                self._tidy(about)
            commands = None
            about = None
        if not self.ready and machine.phase is Phase.IDLE:
            self.ready = True
            self._ready_event.set()
            self._publish(SupervisionEvent.SUPERVISOR_STARTED, {})

    def _incarnation(self, cid: str, incarnation: int, heartbeat: Heartbeat | None) -> ChildContext:
        """Make and register a child's next incarnation (watched if ``heartbeat``)."""
        cause = None
        if cid in self._runs:
            self.restarts += 1
            log.info("restarting child %r of supervisor %r", cid, self.name)
            if self.events is not None:
                cause = self._publish(
                    SupervisionEvent.CHILD_RESTARTED,
                    {"child_id": cid, "incarnation": incarnation},
                    self._last_failure,
                )
        ctx = self._runs[cid] = ChildContext(self, cid, incarnation)
        ctx._cause = cause
        if heartbeat is not None:
            self._watch_start(ctx, heartbeat)
        return ctx

    def _mark_started(self, ctx: ChildContext) -> None:
        """The child counts as started (spawned, or ``task_status.started()``)."""
        ctx._started = True
        if self.events is not None:
            self._publish(
                SupervisionEvent.CHILD_STARTED,
                {"child_id": ctx.id, "incarnation": ctx.incarnation},
                ctx._cause,
            )

    def _publish(
        self, kind: EventType, payload: dict[str, object], cause: Event | None = None
    ) -> Event | None:
        """Publish a supervision event; a full or closed bus drops it (counted).

        Supervision never waits for subscribers: a supervisor that blocked on
        a slow bus could not restart its children (design rule 20).
        """
        events = self.events
        if events is None:
            return None
        # No Event.new: the payload is ours and JSON-safe, so its checks would
        # only cost time (three events per restart); and the causal chain is
        # the supervisor's, not that of whatever event the task running this
        # code happens to be handling.
        event = linked_event(kind, self.path, {"supervisor": self.path, **payload}, cause)
        try:
            events.publish_nowait(event)
        except Exception as exc:  # trio.WouldBlock, BusClosed, or the publisher's own
            self.events_dropped += 1
            log.debug("supervisor %r dropped %s: %r", self.name, kind, exc)
        return event

    def _publish_end(self, ctx: ChildContext, normal: bool, error: BaseException | None) -> None:
        """Publish how a child ended: stopped (normal, ignored, shutdown) or failed."""
        payload: dict[str, object] = {"child_id": ctx.id, "incarnation": ctx.incarnation}
        if ctx._stop_asked and ctx._started:
            payload["reason"] = "shutdown"
            if error is not None:
                payload.update(_describe(error))
            self._publish(SupervisionEvent.CHILD_STOPPED, payload)
        elif normal:
            payload["reason"] = "normal" if ctx._started else "ignored"
            self._publish(SupervisionEvent.CHILD_STOPPED, payload)
        else:
            payload.update(_describe(error))
            if type(error) is ChildHung:
                payload["reason"] = "hung"
                # JSON has no infinity: None for a phi past float range.
                payload["phi"] = error.phi if math.isfinite(error.phi) else None
                payload["silence"] = error.silence
            if not ctx._started:
                payload["during"] = "start"
            self._last_failure = self._publish(SupervisionEvent.CHILD_FAILED, payload)

    def _issue_start(self, command: StartChild) -> Input | None:
        cid = command.child_id
        spec = self.machine.spec(cid)
        ctx = self._incarnation(cid, command.incarnation, spec.heartbeat)
        takes_status = _takes_task_status(spec.fn)
        assert self.nursery is not None
        self.nursery.start_soon(
            self._child_main, ctx, spec, takes_status, name=f"trio_smith child {cid}"
        )
        if takes_status:
            self._blocking = command
            return None
        self._mark_started(ctx)
        return ChildStarted(child_id=cid)

    def _issue_stop(self, command: StopChild) -> Input | None:
        cid = command.child_id
        ctx = self._runs.get(cid)
        if ctx is None or ctx._ended:
            return ChildStopped(child_id=cid)
        if self.pool and self.machine.stopping and not self._killed_all:
            # OTP R4.7: a pool's children all get the stop request at once and
            # share one deadline; the core then collects them one by one.
            for other in self._runs.values():
                if not other._ended:
                    self._ask_stop(other)
        self._ask_stop(ctx)
        self._blocking = command
        return None

    def _ask_stop(self, ctx: ChildContext) -> None:
        """Start stopping a child as its ``ChildSpec.shutdown`` says (R8.2-R8.4, D17)."""
        if ctx._stop_asked:
            return
        ctx._stop_asked = True
        if ctx._event is not None:
            ctx._event.set()
        shutdown = self.machine.spec(ctx.id).shutdown
        if shutdown == 0 or (shutdown is None and not ctx._supervisors):
            ctx._kill_at = -math.inf  # cancel at once
        else:
            for nested in ctx._supervisors:
                nested.interrupt()
            if shutdown is None:
                ctx._after_supervisors = True
            else:
                ctx._kill_at = trio.current_time() + shutdown
        self._enforce_stop(ctx)

    def _enforce_stop(self, ctx: ChildContext) -> None:
        if ctx._killed:
            return
        if ctx._kill_at <= trio.current_time() or (ctx._after_supervisors and not ctx._supervisors):
            ctx._killed = True
            ctx._scope.cancel(reason=f"stopped by supervisor {self.name!r}")
            if self.pool and self.machine.stopping:
                self._killed_all = True
                for other in self._runs.values():
                    if other._stop_asked and not other._killed:
                        other._killed = True
                        other._scope.cancel(reason=f"stopped by supervisor {self.name!r}")

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
        else:
            call.answer(reply)

    def _schedule(self, command: ScheduleRestart) -> None:
        if command.delay <= 0:
            # OTP's try_again_restart: behind the facts already queued (R6.1).
            self._queue.append(TimerFired(child_id=command.child_id, timer=command.timer))
        else:
            entry = [trio.current_time() + command.delay, command.timer, command.child_id, True]
            self._timer_entries[command.timer] = entry
            heapq.heappush(self._timers, entry)
            log.info(
                "child %r of supervisor %r restarts in %.3g s",
                command.child_id,
                self.name,
                command.delay,
            )
        self._poke()

    def listen(self, child_id: str, listener: Callable[[ChildStatus | None], None]) -> None:
        """Tell ``listener`` the child's status after each fact about it (None: gone).

        It replaces the child's previous listener; it is dropped once told None.
        It must not raise.
        """
        if self.exit is not None:
            listener(None)
        else:
            self._listeners[child_id] = listener

    def _tidy(self, cid: str) -> None:
        """Forget a child the core no longer holds; a pool drops stopped children."""
        status = self.machine.child_status(cid)
        if status is None:
            self._runs.pop(cid, None)
        elif self.pool and status is ChildStatus.STOPPED and self.machine.phase is Phase.IDLE:
            # OTP R4.7/R4.8: a pool keeps no stopped children.
            self.machine.handle(DeleteChildRequested(child_id=cid), now=trio.current_time())
            self._runs.pop(cid, None)
            status = None
        listener = self._listeners.get(cid)
        if listener is not None:
            if status is None:
                del self._listeners[cid]
            listener(status)

    def _on_exit(self, command: Exit) -> None:
        self.exit = command
        self._blocking = None
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
            log.error("supervisor %r gave up: %s", self.name, failure)
            if self.events is not None:
                self._publish(
                    SupervisionEvent.SUPERVISOR_GAVE_UP,
                    {"reason": reason.value, "child_id": command.child_id, **_describe(cause)},
                    self._last_failure,
                )
        elif reason is ExitReason.AUTO_SHUTDOWN:
            log.info(
                "supervisor %r shuts down: significant child %r ended",
                self.name,
                command.child_id,
            )
        call = self._call
        if call is not None:
            self._call = None
            call.answer(error=SupervisorNotRunning(self.name))
        for item in self._queue:
            if type(item) is _Call and not item.abandoned:
                item.answer(error=SupervisorNotRunning(self.name))
        self._queue.clear()
        self._timers.clear()
        self._timer_entries.clear()
        self._watches.clear()
        self._runs.clear()
        listeners = list(self._listeners.values())
        self._listeners.clear()
        for listener in listeners:
            listener(None)
        self.ready = True
        self._ready_event.set()
        if self.events is not None:
            self._publish(SupervisionEvent.SUPERVISOR_STOPPED, {"reason": reason.value})
        self.done.set()
        # The parent may be waiting for this supervisor to stop (D19), even
        # if the body of its ``async with`` goes on.
        self.detach()
        if failure is not None and reason is not ExitReason.START_FAILED and self.body_running:
            # Like a nursery whose child failed: the body is cancelled, and
            # the failure is raised bare out of ``async with``.
            assert self.nursery is not None
            self.nursery.cancel_scope.cancel(reason=f"supervisor {self.name!r} gave up")
        self._poke()

    # ------------------------------------------------------------ children

    async def _child_main(self, ctx: ChildContext, spec: ChildSpec, takes_status: bool) -> None:
        """One child's task: the child boundary, run once per incarnation.

        It runs again (same spec, no ``task_status``) only when the fused
        fast path restarted the child in this task.
        """
        while True:
            _CURRENT.set(ctx)
            normal = False
            error: BaseException | None = None
            finished = False
            try:
                with ctx._scope:
                    try:
                        try:
                            if takes_status:
                                await spec.fn(*spec.args, task_status=_TaskStatus(ctx))
                            else:
                                await spec.fn(*spec.args)
                            normal = True
                        except Exception as exc:
                            error = exc
                    except* Exception as group:
                        # A group mixing errors with Cancelled or
                        # KeyboardInterrupt (trio-notes 4): the errors are the
                        # failure, the rest keeps propagating.
                        error = group
                finished = True
                watch = ctx._watch
                if watch is not None and watch.hung is not None and not ctx._stop_asked:
                    # Judged hung and cancelled (_judge_due_watches): a
                    # failure, whatever the child did while unwinding.
                    normal = False
                    error = watch.hung
            finally:
                if not finished:
                    # A BaseException (KeyboardInterrupt...) escapes: report
                    # the end through the queue, never restart in this task.
                    self._child_ended(ctx, False, None, restartable=False)
            again = self._child_ended(ctx, normal, error, restartable=not takes_status)
            if again is None:
                return
            ctx = again

    def _child_ended(
        self,
        ctx: ChildContext,
        normal: bool,
        error: BaseException | None,
        *,
        restartable: bool,
    ) -> ChildContext | None:
        """Turn a child's end into a fact; return a new incarnation to run in this task.

        ``restartable``: this task may run the next incarnation (the child
        takes no ``task_status`` and its task is not unwinding).
        """
        ctx._ended = True
        if ctx._watch is not None:
            self._watches.discard(ctx)
        if self.exit is not None:
            return None
        if self.events is not None:
            self._publish_end(ctx, normal, error)
        if not ctx._started or ctx._stop_asked:
            # A start result or the end of a stop: the control loop waits for it.
            ctx._normal = normal
            ctx._error = error
            if error is not None:
                if ctx._stop_asked:
                    # OTP's shutdown_error report (D16).
                    log.error(
                        "child %r of supervisor %r raised while being stopped",
                        ctx.id,
                        self.name,
                        exc_info=error,
                    )
                else:
                    log.error(
                        "child %r of supervisor %r failed to start",
                        ctx.id,
                        self.name,
                        exc_info=error,
                    )
            self._poke()
            return None
        if not normal:
            log.error(
                "child %r of supervisor %r failed",
                ctx.id,
                self.name,
                exc_info=error,
            )
        kind = ExitKind.NORMAL if normal else ExitKind.ABNORMAL
        if self._blocking is not None or self._queue or self._interrupt or not self.ready:
            self._queue.append(
                ChildExited(child_id=ctx.id, incarnation=ctx.incarnation, kind=kind, error=error)
            )
            self._poke()
            return None
        # The fast path: the control loop is idle, so this task may feed the
        # fact itself (the module docstring explains why that is the same).
        cid = ctx.id
        if restartable:
            outcome = self.machine.handle_exit_fast(
                cid, ctx.incarnation, kind, error, now=trio.current_time()
            )
            if isinstance(outcome, int):
                # Restarted at once: run the new incarnation in this task.
                watch = ctx._watch
                new = self._incarnation(cid, outcome, None if watch is None else watch.heartbeat)
                self._mark_started(new)
                return new
            self._apply(None, outcome, cid)
        else:
            self._apply(
                ChildExited(child_id=cid, incarnation=ctx.incarnation, kind=kind, error=error)
            )
        if self._loop_has_work():
            self._poke()
        return None

    def _loop_has_work(self) -> bool:
        return self._blocking is not None or self.exit is not None

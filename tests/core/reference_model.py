"""A deliberately naive reference model of the OTP supervisor, for differential tests.

This module is NOT the supervision core. It is a slow, obvious transliteration of
Erlang/OTP ``lib/stdlib/src/supervisor.erl`` (the 2024 revision, store id
1672091485) into Python, written without looking at
``trio_smith/_core/_supervision.py``, so that hypothesis can run both side by side
and demand identical command lists for identical inputs.

How it is built:

* Every OTP handler (``init_children``, ``handle_info({'EXIT',...})``,
  ``handle_cast({try_again_restart,...})``, ``handle_call(...)``, ``terminate/2``)
  is a Python *generator*. Where the Erlang code blocks (a synchronous child start
  in ``do_start_child``, a child shutdown in ``do_terminate``/``shutdown/1``) the
  generator ``yield``\\ s the blocking command (:class:`StartChild` /
  :class:`StopChild`) and receives the result fact through ``.send()``.
  Non-blocking commands (:class:`ScheduleRestart`, :class:`CancelRestart`,
  :class:`Reply`, :class:`Exit`) are appended to an output list.
* ``handle(input, now=...)`` starts a generator (when idle) or resumes the one that
  is blocked, and returns the commands emitted until it blocks again (the blocking
  command is then the last element) or finishes.
* Children are a plain list of small mutable records in start order; every lookup
  is a linear scan. The restart-intensity history is a plain list.

trio_smith's own decisions that OTP does not have (continuous-time window, backoff
delays, explicit timers instead of the ``try_again_restart`` cast, the way a
shutdown interrupts a blocked operation) follow the contract given to the author
of this model; the comments say where they differ from OTP.

Pools (``pool=True``) follow OTP's ``simple_one_for_one``: ``del_child`` of a
dynamic child is ``dyn_erase`` (the child is gone from the supervisor, not
kept "undefined"), and ``terminate/2`` runs ``terminate_dynamic_children``:
every child gets its exit signal at once, then the supervisor collects the
'DOWN's in whatever order they come. ``max_children`` is Elixir
``DynamicSupervisor``'s: ``start_child`` answers ``{:error, :max_children}``
when the supervisor holds that many children. A hung verdict (trio_smith's
phi-accrual detector) is answered with a cancel of that very incarnation,
unless it is stale.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import final

import attrs

from trio_smith._core._protocol import (
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
from trio_smith._core._spec import (
    AutoShutdown,
    Backoff,
    ChildInfo,
    ChildSpec,
    ChildStatus,
    Restart,
    Strategy,
)
from trio_smith._exceptions import (
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    IllegalStateTransition,
    RestartRecord,
)

__all__ = ["ReferenceSupervisor"]


# Child states, as OTP's #child.pid field holds them:
#   "running"    - a pid                      (ChildStatus.RUNNING)
#   "undefined"  - undefined                  (ChildStatus.STOPPED)
#   "restarting" - {restarting, _}            (ChildStatus.RESTARTING)
#   "starting"   - inside do_start_child      (ChildStatus.STARTING)
#   "stopping"   - inside do_terminate        (ChildStatus.STOPPING)
RUNNING = "running"
UNDEFINED = "undefined"
RESTARTING = "restarting"
STARTING = "starting"
STOPPING = "stopping"

_STATUS = {
    RUNNING: ChildStatus.RUNNING,
    UNDEFINED: ChildStatus.STOPPED,
    RESTARTING: ChildStatus.RESTARTING,
    STARTING: ChildStatus.STARTING,
    STOPPING: ChildStatus.STOPPING,
}


@attrs.define
class _Child:
    """OTP's ``#child{}`` record, plus what trio_smith adds (counters, backoff)."""

    id: str
    spec: ChildSpec
    # Every child starts out "undefined": not yet started (OTP: check_startspec
    # builds records with pid = undefined before start_children runs).
    state: str = UNDEFINED
    incarnation: int = 0  # of its current/last StartChild
    timer: int | None = None  # of its pending ScheduleRestart
    started_at: float | None = None
    successful_starts: int = 0
    backoff_count: int = 0
    last_error: object = None
    last_exit_normal: bool = False  # its restart record says so


@final
@attrs.frozen
class _AlreadyOut:
    """Yielded by a generator that must wait for a blocking command already sent.

    Used when a shutdown interrupts an operation whose StopChild is out: the
    new SHUTDOWN generator waits for the same ChildStopped without sending the
    StopChild again; and by a pool's shutdown, which waits for one ChildStopped
    after the other for the same StopChildren.
    """

    command: StopChild | StopChildren


_Yield = StartChild | StopChild | StopChildren | _AlreadyOut
_Gen = Generator[_Yield, Input, None]


class ReferenceSupervisor:
    """The naive model. Same inputs, same commands as ``SupervisorMachine``."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy,
        max_restarts: int,
        within: float,
        backoff: Backoff | None,
        auto_shutdown: AutoShutdown,
        random: Callable[[], float],
        max_children: int | None = None,
        pool: bool = False,
    ) -> None:
        self._children: list[_Child] = [_Child(id=spec.id, spec=spec) for spec in children]
        self._max_children = max_children
        self._pool = pool
        # The children whose 'DOWN' terminate_dynamic_children still waits for.
        self._waiting: set[str] = set()
        self._strategy = strategy
        self._max_restarts = max_restarts
        self._within = within
        self._backoff = backoff
        self._auto_shutdown = auto_shutdown
        self._random = random
        # OTP #state.restarts (newest last here, oldest first).
        self._restarts: list[RestartRecord] = []
        self._last_incarnation = 0
        self._last_timer = 0
        self._now = 0.0
        self._out: list[Command] = []
        self._started = False
        self._exited = False
        # The generator blocked on a command, the command it waits for, and
        # what kind of operation it is ("startup", "exit", "timer", "api",
        # "shutdown"), plus the child id of an API request.
        self._gen: _Gen | None = None
        self._pending: StartChild | StopChild | StopChildren | None = None
        self._op = ""
        self._api_child_id = ""

    # ------------------------------------------------------------ public view

    def which_children(self) -> list[ChildInfo]:
        # OTP which_children lists newest first; the contract asks start order.
        result = []
        for c in self._children:
            result.append(
                ChildInfo(
                    id=c.id,
                    status=_STATUS[c.state],
                    restart=c.spec.restart,
                    significant=c.spec.significant,
                    restarts=max(c.successful_starts - 1, 0),
                )
            )
        return result

    def restart_history(self, now: float) -> tuple[RestartRecord, ...]:
        return tuple(r for r in self._restarts if now - r.at <= self._within)

    @property
    def awaiting(self) -> str | None:
        if self._pending is None or isinstance(self._pending, StopChildren):
            return None
        return self._pending.child_id

    @property
    def awaiting_stops(self) -> frozenset[str]:
        if isinstance(self._pending, StopChildren):
            return frozenset(self._waiting)
        if isinstance(self._pending, StopChild):
            return frozenset([self._pending.child_id])
        return frozenset()

    @property
    def exited(self) -> bool:
        return self._exited

    # ------------------------------------------------------------ small helpers

    def _find(self, child_id: str) -> _Child | None:
        for c in self._children:
            if c.id == child_id:
                return c
        return None

    def _remove(self, c: _Child) -> None:
        # OTP remove_child/2
        new_list = []
        for other in self._children:
            if other is not c:
                new_list.append(other)
        self._children = new_list

    def _del_child(self, c: _Child) -> None:
        # OTP del_child/2: a temporary child is removed, any other gets pid
        # undefined. simple_one_for_one: dyn_erase, the child is gone. Not
        # from terminate/2, which erases nothing (the supervisor is ending;
        # the children it stopped stay listed, stopped).
        c.state = UNDEFINED
        erased = self._pool and self._op != "shutdown"
        if c.spec.restart is Restart.TEMPORARY or erased:
            self._remove(c)

    def _effective_backoff(self, c: _Child) -> Backoff | None:
        if c.spec.backoff is not None:
            return c.spec.backoff
        return self._backoff

    def _next_incarnation(self) -> int:
        self._last_incarnation += 1
        return self._last_incarnation

    def _next_timer(self) -> int:
        self._last_timer += 1
        return self._last_timer

    def _window(self, now: float) -> tuple[RestartRecord, ...]:
        return tuple(r for r in self._restarts if now - r.at <= self._within)

    def _affected(self, c: _Child) -> list[_Child]:
        """The children a restart of ``c`` touches, in start order (OTP restart/3)."""
        if self._strategy is Strategy.ONE_FOR_ALL:
            return list(self._children)
        if self._strategy is Strategy.REST_FOR_ONE:
            # OTP split_child/2: the child and every child started after it.
            result: list[_Child] = []
            seen = False
            for other in self._children:
                if other is c:
                    seen = True
                if seen:
                    result.append(other)
            return result
        # ONE_FOR_ONE, and ESCALATE (which restarts like one_for_one).
        return [c]

    def _state_text(self) -> str:
        if self._exited:
            return "exited"
        if not self._started:
            return "not_started"
        if self._pending is not None:
            return f"awaiting {self._pending!r}"
        return "idle"

    def _illegal(self, input: Input) -> IllegalStateTransition:
        return IllegalStateTransition("supervisor", self._state_text(), repr(input))

    # ------------------------------------------------------------ driving

    def _drive(self, gen: _Gen, value: Input | None) -> list[Command]:
        """Run ``gen`` until it blocks or ends; return what it emitted."""
        try:
            yielded = next(gen) if value is None else gen.send(value)
        except StopIteration:
            self._gen = None
            self._pending = None
            self._op = ""
            self._api_child_id = ""
        else:
            self._gen = gen
            if isinstance(yielded, _AlreadyOut):
                self._pending = yielded.command  # already out: not emitted again
            else:
                self._out.append(yielded)
                self._pending = yielded
        out = self._out
        self._out = []
        return out

    def handle(self, input: Input, *, now: float) -> list[Command]:
        # After Exit: only ShutdownRequested and hung verdicts, ignored.
        if self._exited:
            if isinstance(input, ShutdownRequested | ChildJudgedHung):
                return []
            raise self._illegal(input)

        # A hung verdict, at any moment after start-up (trio_smith decision).
        if isinstance(input, ChildJudgedHung) and self._started:
            self._now = now
            return self._judged_hung(input)

        # A blocking command is out: only its result, or ShutdownRequested.
        if self._gen is not None:
            pending = self._pending
            assert pending is not None
            if isinstance(input, ShutdownRequested):
                return self._interrupt(now)
            ok = False
            if isinstance(pending, StartChild):
                if isinstance(input, ChildStarted | StartFailed | StartIgnored):
                    ok = input.child_id == pending.child_id
            elif isinstance(pending, StopChildren):
                if isinstance(input, ChildStopped):
                    ok = input.child_id in self._waiting
            elif isinstance(input, ChildStopped):
                ok = input.child_id == pending.child_id
            if not ok:
                raise self._illegal(input)
            self._now = now
            return self._drive(self._gen, input)

        # Before StartupRequested: only StartupRequested or ShutdownRequested.
        if not self._started:
            if isinstance(input, StartupRequested):
                self._started = True
                self._now = now
                self._op = "startup"
                return self._drive(self._init_children(), None)
            if isinstance(input, ShutdownRequested):
                self._started = True
                self._now = now
                return self._drive(self._terminate(ExitReason.SHUTDOWN, None, None), None)
            raise self._illegal(input)

        # Idle.
        if isinstance(input, ShutdownRequested):
            self._now = now
            return self._drive(self._terminate(ExitReason.SHUTDOWN, None, None), None)
        if isinstance(input, ChildExited):
            c = self._find(input.child_id)
            # OTP R7.1/R7.3: unknown, not running, or an older incarnation: stale.
            if c is None or c.state != RUNNING or c.incarnation != input.incarnation:
                return []
            self._now = now
            self._op = "exit"
            return self._drive(self._restart_child(c, input.kind, input.error), None)
        if isinstance(input, TimerFired):
            c = self._find(input.child_id)
            if c is None or c.state != RESTARTING or c.timer != input.timer:
                return []
            self._now = now
            self._op = "timer"
            return self._drive(self._try_again_restart(c), None)
        if isinstance(input, StartChildRequested):
            return self._api_start_child(input.spec, now)
        if isinstance(input, RestartChildRequested):
            return self._api_restart_child(input.child_id, now)
        if isinstance(input, TerminateChildRequested):
            return self._api_terminate_child(input.child_id, now)
        if isinstance(input, DeleteChildRequested):
            return self._api_delete_child(input.child_id, now)
        raise self._illegal(input)

    # ------------------------------------------------------------ hung verdicts

    def _judged_hung(self, verdict: ChildJudgedHung) -> list[Command]:
        """Cancel the hung incarnation, if the verdict is about it (trio_smith decision).

        Nothing changes here: the cancelled child's end comes back later as an
        ordinary exit (or a failed start). A verdict is stale when the child
        is unknown, is another incarnation, is not running or starting, or
        the supervisor is terminating (every child gets stopped anyway).
        """
        if self._op == "shutdown":
            return []
        c = self._find(verdict.child_id)
        if c is None or c.incarnation != verdict.incarnation:
            return []
        if c.state != RUNNING and c.state != STARTING:
            return []
        return [CancelChild(child_id=c.id, incarnation=c.incarnation)]

    # ------------------------------------------------------------ interrupts

    def _interrupt(self, now: float) -> list[Command]:
        """ShutdownRequested while a blocking command is out (trio_smith decision).

        OTP has no equivalent: a gen_server only sees the parent's EXIT once the
        current callback has returned (R12.1). trio_smith abandons the operation.
        """
        if self._op == "shutdown":
            return []  # already shutting down: keep waiting
        assert self._gen is not None
        pending = self._pending
        assert pending is not None
        if self._op == "api":
            self._out.append(Reply(outcome=ReplyOutcome.ABORTED, child_id=self._api_child_id))
        self._gen.close()  # the interrupted operation is abandoned
        self._gen = None
        self._now = now
        if self._pool:
            return self._drive(self._interrupted_dynamic_terminate(pending), None)
        assert not isinstance(pending, StopChildren)  # only a pool sends those
        return self._drive(self._interrupted_terminate(pending), None)

    def _interrupted_dynamic_terminate(
        self, pending: StartChild | StopChild | StopChildren
    ) -> _Gen:
        """A pool's terminate/2 after an interrupt: the child in flight goes with the rest."""
        self._op = "shutdown"
        history = self._window(self._now)
        assert not isinstance(pending, StopChildren)  # only a terminate sends those
        yield from self._terminate_dynamic_children(pending)
        self._out.append(Exit(reason=ExitReason.SHUTDOWN, restarts=history))
        self._exited = True

    def _interrupted_terminate(self, pending: StartChild | StopChild) -> _Gen:
        """terminate/2 after an interrupt: first finish stopping the child in flight."""
        self._op = "shutdown"
        x = self._find(pending.child_id)
        assert x is not None
        history = self._window(self._now)
        snapshot = [c.id for c in reversed(self._children) if c is not x]
        if isinstance(pending, StartChild):
            x.state = STOPPING
            result = yield StopChild(child_id=x.id)
        else:
            result = yield _AlreadyOut(pending)
        assert isinstance(result, ChildStopped)
        self._del_child(x)
        yield from self._terminate_children(snapshot)
        self._out.append(Exit(reason=ExitReason.SHUTDOWN, restarts=history))
        self._exited = True

    # ------------------------------------------------------------ terminate

    def _terminate(self, reason: ExitReason, child_id: str | None, error: object) -> _Gen:
        """OTP terminate/2 -> terminate_children/2, then the process exits."""
        self._op = "shutdown"
        history = self._window(self._now)
        if self._pool:
            yield from self._terminate_dynamic_children(None)
        else:
            snapshot = [c.id for c in reversed(self._children)]
            yield from self._terminate_children(snapshot)
        self._out.append(Exit(reason=reason, child_id=child_id, error=error, restarts=history))
        self._exited = True

    def _terminate_dynamic_children(self, in_flight: StartChild | StopChild | None) -> _Gen:
        """OTP terminate_dynamic_children/1 (R4.7).

        Every live child gets its exit signal at once (one StopChildren, in
        reverse start order); a child whose start was interrupted goes with
        them; a stop already out (an interrupted terminate_child) is waited
        for too, without being sent again. A restarting child has no process:
        its retry is dropped. Then the 'DOWN's are collected in any order.
        The children stay listed, stopped (temporaries go: R3.3).
        """
        to_stop: list[str] = []
        for c in reversed(self._children):
            starting = isinstance(in_flight, StartChild) and c.id == in_flight.child_id
            if c.state == RUNNING or starting:
                c.state = STOPPING
                to_stop.append(c.id)
            elif c.state == RESTARTING:
                if c.timer is not None:
                    self._out.append(CancelRestart(child_id=c.id, timer=c.timer))
                    c.timer = None
                c.state = UNDEFINED
        waiting = set(to_stop)
        if isinstance(in_flight, StopChild):
            waiting.add(in_flight.child_id)
        if not waiting:
            return
        self._waiting = waiting
        command: StopChild | StopChildren
        if to_stop:
            command = StopChildren(child_ids=tuple(to_stop))
            result = yield command
        else:
            assert isinstance(in_flight, StopChild)
            command = in_flight
            result = yield _AlreadyOut(in_flight)
        while True:
            assert isinstance(result, ChildStopped)
            self._waiting.discard(result.child_id)
            stopped = self._find(result.child_id)
            assert stopped is not None
            self._del_child(stopped)
            if not self._waiting:
                return
            result = yield _AlreadyOut(command)

    def _terminate_children(self, ids: list[str]) -> _Gen:
        """OTP terminate_children/2 over ``ids`` (already in termination order).

        Each child still present: running -> do_terminate (StopChild, wait) and
        pid undefined; restarting -> its pending retry is dropped (trio_smith
        cancels the timer) and pid undefined; undefined -> nothing. Temporary
        children are removed (del_child).
        """
        for child_id in ids:
            c = self._find(child_id)
            if c is None:
                continue
            if c.state == RUNNING:
                c.state = STOPPING
                result = yield StopChild(child_id=c.id)
                assert isinstance(result, ChildStopped)
                self._del_child(c)
            elif c.state == RESTARTING:
                if c.timer is not None:
                    self._out.append(CancelRestart(child_id=c.id, timer=c.timer))
                    c.timer = None
                self._del_child(c)
            # "undefined": nothing to do.

    # ------------------------------------------------------------ start-up

    def _init_children(self) -> _Gen:
        """OTP init_children/2 -> start_children/2."""
        ids = [c.id for c in self._children]
        for child_id in ids:
            c = self._find(child_id)
            if c is None:
                continue
            result = yield from self._do_start_child(c)
            if isinstance(result, StartIgnored):
                self._del_child(c)  # {ok, undefined} when temporary -> remove
            elif isinstance(result, StartFailed):
                # {error, NChildren, Reason} -> terminate_children; {stop, {shutdown, ...}}
                c.last_error = result.error
                self._del_child(c)
                yield from self._terminate(ExitReason.START_FAILED, c.id, result.error)
                return

    def _do_start_child(self, c: _Child) -> Generator[_Yield, Input, Input]:
        """OTP do_start_child/3: one synchronous start; returns the result fact."""
        c.state = STARTING
        c.incarnation = self._next_incarnation()
        result = yield StartChild(child_id=c.id, incarnation=c.incarnation)
        if isinstance(result, ChildStarted):
            c.state = RUNNING
            c.started_at = self._now
            c.successful_starts += 1
        return result

    # ------------------------------------------------------------ child exits

    def _restart_child(self, c: _Child, kind: ExitKind, error: object) -> _Gen:
        """OTP handle_info({'EXIT',...}) -> restart_child/3 -> do_restart/3."""
        c.state = UNDEFINED
        c.last_error = error
        c.last_exit_normal = kind is ExitKind.NORMAL
        backoff = self._effective_backoff(c)
        # Akka K6 (trio_smith: measured at the exit from the last start).
        if (
            backoff is not None
            and c.started_at is not None
            and self._now - c.started_at >= backoff.reset_after
        ):
            c.backoff_count = 0

        # trio_smith's ESCALATE: any abnormal exit gives up at once.
        if kind is ExitKind.ABNORMAL and self._strategy is Strategy.ESCALATE:
            self._del_child(c)
            yield from self._terminate(ExitReason.ESCALATED, c.id, error)
            return

        # do_restart/3: permanent always; transient unless normal/shutdown.
        if c.spec.restart is Restart.PERMANENT or (
            c.spec.restart is Restart.TRANSIENT and kind is ExitKind.ABNORMAL
        ):
            if backoff is None:
                yield from self._restart(c)  # OTP restart/2
                return
            # trio_smith backoff: stop the bystanders now, restart after the delay.
            stop_ids = [a.id for a in reversed(self._affected(c)) if a is not c]
            yield from self._terminate_children(stop_ids)
            c.state = RESTARTING
            delay = backoff.delay(c.backoff_count, self._random())
            c.backoff_count += 1
            c.timer = self._next_timer()
            self._out.append(ScheduleRestart(child_id=c.id, delay=delay, timer=c.timer))
            return

        # normal transient, or temporary: del_child, then do_auto_shutdown/2.
        self._del_child(c)
        if self._auto_shutdown is AutoShutdown.NEVER:
            return
        if not c.spec.significant:
            return
        if self._auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            yield from self._terminate(ExitReason.AUTO_SHUTDOWN, c.id, None)
            return
        # all_significant: children_any(pid =/= undefined andalso significant)
        any_alive = False
        for other in self._children:
            if other.state != UNDEFINED and other.spec.significant:
                any_alive = True
        if not any_alive:
            yield from self._terminate(ExitReason.AUTO_SHUTDOWN, c.id, None)

    def _try_again_restart(self, c: _Child) -> _Gen:
        """OTP handle_cast({try_again_restart, Id}) (trio_smith: a TimerFired)."""
        c.timer = None
        yield from self._restart(c)

    def _restart(self, c: _Child) -> _Gen:
        """OTP restart/2: add_restart/1, then restart/3 for the strategy."""
        if c.state == RESTARTING:
            c.state = UNDEFINED  # its timer has fired
        # add_restart/3, continuous and inclusive (R5.4 trio_smith decision).
        now = self._now
        kept = [r for r in self._restarts if not (now - r.at > self._within)]
        kept.append(RestartRecord(at=now, child_id=c.id, normal_exit=c.last_exit_normal))
        self._restarts = kept
        if len(self._restarts) > self._max_restarts:
            # {terminate, NState} -> {shutdown, del_child(Child, NState)}
            self._del_child(c)
            yield from self._terminate(ExitReason.INTENSITY, c.id, c.last_error)
            return
        yield from self._restart_multiple_children(c)

    def _restart_multiple_children(self, c: _Child) -> _Gen:
        """OTP restart/3 (one_for_one, rest_for_one, one_for_all) and
        restart_multiple_children/3: terminate_children, then start_children.

        one_for_one is the same thing with an affected set of just ``c``.
        """
        affected = self._affected(c)
        stop_ids = [a.id for a in reversed(affected) if a is not c]
        yield from self._terminate_children(stop_ids)
        start_ids = [a.id for a in affected]
        for child_id in start_ids:
            a = self._find(child_id)
            if a is None:
                continue  # a temporary removed by terminate_children
            result = yield from self._do_start_child(a)
            if isinstance(result, StartIgnored):
                self._del_child(a)
            elif isinstance(result, StartFailed):
                a.last_error = result.error
                a.last_exit_normal = False
                if self._strategy is Strategy.ESCALATE:
                    self._del_child(a)
                    yield from self._terminate(ExitReason.ESCALATED, a.id, result.error)
                    return
                # {abort, ...} -> the failed child is restarting, the rest stay
                # undefined (R6.3); try_again_restart (a zero-delay timer here,
                # or a backoff delay).
                a.state = RESTARTING
                backoff = self._effective_backoff(a)
                if backoff is None:
                    delay = 0.0
                else:
                    delay = backoff.delay(a.backoff_count, self._random())
                    a.backoff_count += 1
                a.timer = self._next_timer()
                self._out.append(ScheduleRestart(child_id=a.id, delay=delay, timer=a.timer))
                return

    # ------------------------------------------------------------ API (handle_call)

    def _api_start_child(self, spec: ChildSpec, now: float) -> list[Command]:
        """OTP handle_call({start_child, Spec}) -> check_childspec, handle_start_child/2."""
        if spec.significant and self._auto_shutdown is AutoShutdown.NEVER:
            raise ValueError(
                f"child {spec.id!r} is significant, which needs auto_shutdown other than "
                "AutoShutdown.NEVER"
            )
        # Elixir DynamicSupervisor handle_call({:start_child, ...}): the spec
        # is validated first, then the count is checked before anything else.
        if self._max_children is not None and len(self._children) >= self._max_children:
            self._now = now
            return [Reply(outcome=ReplyOutcome.LIMIT_REACHED, child_id=spec.id)]
        old = self._find(spec.id)
        if old is not None:
            if old.state == RUNNING:
                raise ChildAlreadyStarted(spec.id)
            raise ChildAlreadyPresent(spec.id)
        self._now = now
        self._op = "api"
        self._api_child_id = spec.id
        return self._drive(self._handle_start_child(spec), None)

    def _handle_start_child(self, spec: ChildSpec) -> _Gen:
        c = _Child(id=spec.id, spec=spec)
        self._children.append(c)  # save_child: end of the start order
        result = yield from self._do_start_child(c)
        if isinstance(result, ChildStarted):
            self._out.append(Reply(outcome=ReplyOutcome.OK, child_id=c.id))
        elif isinstance(result, StartIgnored):
            self._del_child(c)
            self._out.append(Reply(outcome=ReplyOutcome.IGNORED, child_id=c.id))
        else:
            assert isinstance(result, StartFailed)
            self._remove(c)  # {error, {What, Child}}: the spec is not kept
            self._out.append(
                Reply(outcome=ReplyOutcome.START_FAILED, child_id=c.id, error=result.error)
            )

    def _api_restart_child(self, child_id: str, now: float) -> list[Command]:
        """OTP handle_call({restart_child, Id})."""
        c = self._find(child_id)
        if c is None:
            raise ChildNotFound(child_id)
        if c.state == RESTARTING:
            raise ChildRestarting(child_id)
        if c.state != UNDEFINED:
            raise ChildRunning(child_id)
        self._now = now
        self._op = "api"
        self._api_child_id = child_id
        return self._drive(self._handle_restart_child(c), None)

    def _handle_restart_child(self, c: _Child) -> _Gen:
        result = yield from self._do_start_child(c)  # keeps its place; no add_restart
        if isinstance(result, ChildStarted):
            self._out.append(Reply(outcome=ReplyOutcome.OK, child_id=c.id))
        elif isinstance(result, StartIgnored):
            self._del_child(c)
            self._out.append(Reply(outcome=ReplyOutcome.IGNORED, child_id=c.id))
        else:
            assert isinstance(result, StartFailed)
            c.state = UNDEFINED  # OTP: {reply, Error, State}, the old state
            c.last_error = result.error
            if self._pool:
                self._remove(c)  # no stopped dynamic child is ever kept
            self._out.append(
                Reply(outcome=ReplyOutcome.START_FAILED, child_id=c.id, error=result.error)
            )

    def _api_terminate_child(self, child_id: str, now: float) -> list[Command]:
        """OTP handle_call({terminate_child, Id}): do_terminate, then del_child."""
        c = self._find(child_id)
        if c is None:
            raise ChildNotFound(child_id)
        self._now = now
        self._op = "api"
        self._api_child_id = child_id
        return self._drive(self._handle_terminate_child(c), None)

    def _handle_terminate_child(self, c: _Child) -> _Gen:
        if c.state == RUNNING:
            c.state = STOPPING
            result = yield StopChild(child_id=c.id)
            assert isinstance(result, ChildStopped)
        elif c.state == RESTARTING and c.timer is not None:
            # the pending try_again_restart is dropped (handle_cast finds no
            # restarting child); trio_smith cancels its timer.
            self._out.append(CancelRestart(child_id=c.id, timer=c.timer))
            c.timer = None
        self._del_child(c)
        self._out.append(Reply(outcome=ReplyOutcome.OK, child_id=c.id))

    def _api_delete_child(self, child_id: str, now: float) -> list[Command]:
        """OTP handle_call({delete_child, Id})."""
        c = self._find(child_id)
        if c is None:
            raise ChildNotFound(child_id)
        if c.state == RESTARTING:
            raise ChildRestarting(child_id)
        if c.state != UNDEFINED:
            raise ChildRunning(child_id)
        self._now = now
        self._remove(c)
        return [Reply(outcome=ReplyOutcome.OK, child_id=child_id)]

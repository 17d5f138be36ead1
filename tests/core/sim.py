"""A pure-Python runtime for the supervision core, for tests.

It does what the trio runtime does, without trio: one FIFO queue of facts fed
to the machine one at a time (OTP's mailbox), blocking commands carried out at
once with scripted start outcomes, timers on a virtual clock, and "processes"
that are just entries in ``alive``. It records a trace in the format of the
Erlang/OTP oracle (tests/otp/oracle.py), so the same scenario can be run here
and on a real OTP supervisor and the traces compared.

Trace entries:
``["start", id, "ok"|"fail"|"ignore"]``, ``["stop", id]`` (a live child
stopped by its supervisor), ``["exit", id, reason]`` / ``["exit_skipped", id]``,
``["api", op, id, result]``, ``["which", [[id, state], ...]]``,
``["count", specs, active, supervisors, workers]``, ``["sup_exit", reason]``,
``["sup_start_failed", id]``.

A pool scenario (``"strategy": "simple_one_for_one"``) runs a machine with
``pool=True`` and no static children; its ``start_child`` steps name only
the new child's id (the ``"template"`` gives its restart type). Its trace is
normalised as OTP shows a simple_one_for_one supervisor: ``count`` gives 1
spec; ``terminate_child`` of a child that is gone is ``ok`` (OTP terminates
a dead pid without complaint; the runtime's ``DynamicSupervisor`` too).
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from trio_smith import (
    AutoShutdown,
    Backoff,
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildInfo,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStatus,
    Restart,
    RestartRecord,
    Strategy,
)
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
from trio_smith._core._supervision import SupervisorMachine

Trace = list[Any]


class MachineLike(Protocol):
    """What the simulator needs: the real machine and the reference model both fit."""

    def handle(self, input: Input, *, now: float) -> list[Command]: ...

    def which_children(self) -> list[ChildInfo]: ...

    def restart_history(self, now: float) -> tuple[RestartRecord, ...]: ...


async def _child() -> None:
    """The children's function; the simulator never runs it."""


def spec(
    child_id: str,
    restart: Restart | str = Restart.PERMANENT,
    *,
    significant: bool = False,
    backoff: Backoff | None = None,
) -> ChildSpec:
    """A child spec for the simulator (restart given as an enum or its OTP name)."""
    return ChildSpec(
        child_id,
        _child,
        restart=Restart(restart),
        significant=significant,
        backoff=backoff,
    )


_STATE = {
    ChildStatus.RUNNING: "running",
    ChildStatus.STOPPED: "undefined",
    ChildStatus.RESTARTING: "restarting",
    ChildStatus.STARTING: "starting",
    ChildStatus.STOPPING: "stopping",
}

_REPLY = {
    ReplyOutcome.OK: "ok",
    ReplyOutcome.IGNORED: "ok_undefined",
    ReplyOutcome.START_FAILED: "start_failed",
    ReplyOutcome.ABORTED: "aborted",
    ReplyOutcome.LIMIT_REACHED: "max_children",
}

_REFUSAL: dict[type[Exception], str] = {
    ChildNotFound: "not_found",
    ChildRunning: "running",
    ChildRestarting: "restarting",
    ChildAlreadyPresent: "already_present",
    ChildAlreadyStarted: "already_started",
    ValueError: "bad_combination",
}


class _Call:
    """A synchronous call in the queue, like a gen_server call in a mailbox."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self.action = action
        self.done = False
        self.result: Any = None


class Sim:
    """Runs a supervision machine the way a runtime would.

    Args:
        machine: the machine (or reference model) to drive.
        starts: scripted start outcomes per child id, consumed one per start;
            "ok" when a child's script is exhausted.
    """

    def __init__(
        self,
        machine: MachineLike,
        starts: Mapping[str, Sequence[str]] = {},
        *,
        pool: bool = False,
    ) -> None:
        self.machine = machine
        #: Normalise the trace as OTP shows a simple_one_for_one supervisor.
        self.pool = pool
        self.now = 0.0
        self.queue: deque[Input | _Call] = deque()
        self._timers: list[tuple[float, int, TimerFired]] = []
        self._cancelled: set[int] = set()
        self.outcomes: defaultdict[str, deque[str]] = defaultdict(deque)
        for child_id, outcomes in starts.items():
            self.outcomes[child_id].extend(outcomes)
        #: Live child "processes": id -> incarnation.
        self.alive: dict[str, int] = {}
        self.trace: Trace = []
        #: Every command the machine gave, in order.
        self.commands: list[Command] = []
        self.replies: list[Reply] = []
        self.exited: Exit | None = None
        self._exit_reported = False

    # ------------------------------------------------------------ scenario steps

    def boot(self) -> None:
        """Start the supervisor (its static children start in order)."""
        self._feed(StartupRequested())
        self._end_step()

    def exit(self, child_id: str, reason: str = "crash", *, settle: bool = True) -> None:
        """Make a running child end by itself ("normal", "shutdown" or "crash").

        With ``settle=False`` its exit stays queued and the supervisor does
        nothing until the next call, stop or settling exit: later exits queue
        behind it, and a call is served after the first restart attempt and
        before its retry (the oracle's "pending" mode).
        """
        if self._dead():
            return
        if child_id not in self.alive:
            self.trace.append(["exit_skipped", child_id])
        else:
            self.queue_exit(child_id, reason)
        if settle:
            self._drain()
        self._end_step()

    def queue_exit(self, child_id: str, reason: str = "crash") -> None:
        """A live child ends now; its exit fact joins the queue, nothing is fed."""
        self.trace.append(["exit", child_id, reason])
        incarnation = self.alive.pop(child_id)
        kind = ExitKind.ABNORMAL if reason == "crash" else ExitKind.NORMAL
        error = f"{child_id} crashed" if kind is ExitKind.ABNORMAL else None
        self.queue.append(
            ChildExited(child_id=child_id, incarnation=incarnation, kind=kind, error=error)
        )

    def script(self, child_id: str, outcomes: Sequence[str]) -> None:
        """Append outcomes to a child's start script."""
        self.outcomes[child_id].extend(outcomes)

    def api(self, op: str, arg: str | ChildSpec, *, invalid: str | None = None) -> str:
        """Call an API function through the queue, settle, and return the normalised result.

        ``invalid`` is the refusal of a request that the caller could not
        even build (a spec the ChildSpec constructor refused): it still goes
        through the queue, as the call does in OTP.
        """
        if self._dead():
            return "sup_down"
        child_id = arg.id if isinstance(arg, ChildSpec) else arg
        request: Input
        if invalid is not None:
            result: str = self._call(lambda: invalid)
            self.trace.append(["api", op, child_id, result])
            self._drain()
            self._end_step()
            return result
        if op == "start_child":
            assert isinstance(arg, ChildSpec)
            request = StartChildRequested(spec=arg)
        elif op == "restart_child":
            request = RestartChildRequested(child_id=child_id)
        elif op == "terminate_child":
            request = TerminateChildRequested(child_id=child_id)
        elif op == "delete_child":
            request = DeleteChildRequested(child_id=child_id)
        else:
            raise ValueError(op)

        def action() -> str:
            before = len(self.replies)
            try:
                self._feed(request)
            except tuple(_REFUSAL) as error:
                return _REFUSAL[type(error)]
            assert len(self.replies) == before + 1, "an accepted request gets one Reply"
            return _REPLY[self.replies[-1].outcome]

        result = self._call(action)
        if self.pool and op == "terminate_child" and result == "not_found":
            result = "ok"  # OTP: terminating a pid that is gone is fine
        self.trace.append(["api", op, child_id, result])
        self._drain()
        self._end_step()
        return result

    def which(self) -> list[list[str]] | str:
        """Record and return which_children as [[id, state], ...] in start order."""
        if self._dead():
            return "sup_down"
        rows: list[list[str]] | str = self._call(
            lambda: [[info.id, _STATE[info.status]] for info in self.machine.which_children()]
        )
        self.trace.append(["which", rows])
        self._drain()
        self._end_step()
        return rows

    def count(self) -> None:
        """Record count_children (every child is a worker here)."""
        if self._dead():
            return
        infos = self._call(self.machine.which_children)
        if infos == "sup_down":
            self.trace.append(["count", "sup_down"])
        else:
            active = sum(1 for i in infos if i.status is ChildStatus.RUNNING)
            specs = 1 if self.pool else len(infos)  # OTP: a pool has one spec
            self.trace.append(["count", specs, active, 0, len(infos)])
        self._drain()
        self._end_step()

    def stop(self) -> None:
        """Ask the supervisor to shut down (queued, like the parent's exit signal)."""
        if self._dead():
            return
        self.queue.append(ShutdownRequested())
        self._drain()
        self._end_step()

    def judge_hung(self, child_id: str, incarnation: int | None = None) -> None:
        """Feed a hung verdict (for the live incarnation unless given), then settle."""
        if self._dead():
            return
        if incarnation is None:
            incarnation = self.alive.get(child_id, 0)
        self.queue.append(ChildJudgedHung(child_id=child_id, incarnation=incarnation))
        self._drain()
        self._end_step()

    def settle(self) -> None:
        """Feed every queued fact (retries included) until the queue is empty."""
        self._drain()
        self._end_step()

    def _drain(self) -> None:
        while self.queue and not self.exited:
            self._feed_next()

    def finish(self) -> None:
        """End of a scenario: nothing queued is dropped."""
        self._drain()
        self._end_step()

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing due timers in order and settling after each."""
        target = self.now + seconds
        while self._timers and self._timers[0][0] <= target and not self.exited:
            due, _, fact = heapq.heappop(self._timers)
            if fact.timer in self._cancelled:
                continue
            self.now = max(self.now, due)
            self.queue.append(fact)
            self._drain()
        self.now = target
        self._end_step()

    def pending_timers(self) -> list[tuple[float, str]]:
        """The (due time, child id) of every live timer, soonest first."""
        return sorted((d, f.child_id) for d, _, f in self._timers if f.timer not in self._cancelled)

    # ------------------------------------------------------------ the runtime

    def _dead(self) -> bool:
        return self.exited is not None

    def _end_step(self) -> None:
        # The oracle notices the supervisor's death after the step.
        if self.exited is not None and not self._exit_reported:
            self._exit_reported = True
            if self.exited.reason is ExitReason.START_FAILED:
                self.trace.append(["sup_start_failed", self.exited.child_id])
            else:
                self.trace.append(["sup_exit", "shutdown"])

    def ended(self) -> Exit | None:
        """The machine's Exit command, if it has exited (a call, so mypy re-reads it)."""
        return self.exited

    def exit_command(self) -> Exit:
        """The machine's Exit command; fails the test if it is still running."""
        assert self.exited is not None, "the supervisor is still running"
        return self.exited

    def statuses(self) -> dict[str, str]:
        """Each child's status value, in start order."""
        return {i.id: i.status.value for i in self.machine.which_children()}

    def feed_one(self) -> None:
        """Feed only the oldest queued fact (what follows it stays queued)."""
        self._feed_next()

    def _call(self, action: Callable[[], Any]) -> Any:
        call = _Call(action)
        self.queue.append(call)
        while not call.done:
            self._feed_next()  # an Exit marks every queued call done ("sup_down")
        return call.result

    def _feed_next(self) -> None:
        item = self.queue.popleft()
        if isinstance(item, _Call):
            item.result = item.action()
            item.done = True
        else:
            self._feed(item)

    def _feed(self, fact: Input) -> None:
        commands = self.machine.handle(fact, now=self.now)
        while True:
            self.commands.extend(commands)
            for command in commands:
                self._do(command)
            last = commands[-1] if commands else None
            if isinstance(last, StartChild):
                commands = self.machine.handle(self._start(last), now=self.now)
            elif isinstance(last, StopChild):
                commands = self.machine.handle(self._stop(last), now=self.now)
            elif isinstance(last, StopChildren):
                # All asked at once; they end in the order given (reverse
                # start order), each answer but the last giving nothing.
                for child_id in last.child_ids[:-1]:
                    stopped = self._stop(StopChild(child_id=child_id))
                    assert self.machine.handle(stopped, now=self.now) == []
                stopped = self._stop(StopChild(child_id=last.child_ids[-1]))
                commands = self.machine.handle(stopped, now=self.now)
            else:
                return

    def _do(self, command: Command) -> None:
        if isinstance(command, ScheduleRestart):
            fact = TimerFired(child_id=command.child_id, timer=command.timer)
            if command.delay == 0:
                self.queue.append(fact)  # OTP's try_again_restart cast to itself
            else:
                heapq.heappush(self._timers, (self.now + command.delay, command.timer, fact))
        elif isinstance(command, CancelRestart):
            self._cancelled.add(command.timer)
        elif isinstance(command, Reply):
            self.replies.append(command)
        elif isinstance(command, CancelChild):
            # The hung incarnation is cancelled: an abnormal end of its own.
            if self.alive.get(command.child_id) == command.incarnation:
                self.queue_exit(command.child_id)
        elif isinstance(command, Exit):
            self.exited = command
            assert not self.alive, f"children left running at exit: {self.alive}"
            # Calls still queued are answered by a dead supervisor.
            for item in self.queue:
                if isinstance(item, _Call):
                    item.done = True
                    item.result = "sup_down"
            self.queue.clear()

    def _start(self, command: StartChild) -> ChildStarted | StartFailed | StartIgnored:
        child_id = command.child_id
        script = self.outcomes[child_id]
        outcome = script.popleft() if script else "ok"
        self.trace.append(["start", child_id, outcome])
        if outcome == "ok":
            self.alive[child_id] = command.incarnation
            return ChildStarted(child_id=child_id)
        if outcome == "fail":
            return StartFailed(child_id=child_id, error=f"{child_id} failed to start")
        return StartIgnored(child_id=child_id)

    def _stop(self, command: StopChild) -> ChildStopped:
        # A child that already ended by itself has its exit queued: absorbed (R7.1).
        if self.alive.pop(command.child_id, None) is not None:
            self.trace.append(["stop", command.child_id])
        return ChildStopped(child_id=command.child_id)


def machine(
    children: Sequence[ChildSpec],
    *,
    strategy: Strategy | str = Strategy.ONE_FOR_ONE,
    max_restarts: int = 3,
    within: float = 5.0,
    backoff: Backoff | None = None,
    auto_shutdown: AutoShutdown | str = AutoShutdown.NEVER,
    random: Callable[[], float] = lambda: 0.0,
    max_children: int | None = None,
    pool: bool = False,
) -> SupervisorMachine:
    """A SupervisorMachine with OTP names accepted for the enums."""
    return SupervisorMachine(
        children,
        strategy=Strategy(strategy),
        max_restarts=max_restarts,
        within=within,
        backoff=backoff,
        auto_shutdown=AutoShutdown(auto_shutdown),
        random=random,
        max_children=max_children,
        pool=pool,
    )


MachineFactory = Callable[..., MachineLike]


def run_scenario(scenario: Mapping[str, Any], factory: MachineFactory = machine) -> Trace:
    """Run an oracle-format scenario (see tests/otp/oracle.py) and return its trace."""
    pool = scenario["strategy"] == "simple_one_for_one"
    template = scenario.get("template", {})
    try:
        children = [
            spec(c["id"], c["restart"], significant=c.get("significant", False))
            for c in scenario.get("children", [])
        ]
        options: dict[str, Any] = {}
        if pool:
            options = {"pool": True, "max_children": scenario.get("max_children")}
        m = factory(
            children,
            strategy="one_for_one" if pool else scenario["strategy"],
            max_restarts=scenario["intensity"],
            within=float(scenario["period"]),
            auto_shutdown=scenario.get("auto_shutdown", "never"),
            **options,
        )
    except ValueError as error:
        return [["sup_start_error", str(error)]]
    sim = Sim(m, scenario.get("starts", {}), pool=pool)
    sim.boot()
    for step in scenario["steps"]:
        if sim.exited:
            break
        op = step["op"]
        if op == "exit":
            sim.exit(step["id"], step["reason"], settle=step.get("settle", True))
        elif op == "script":
            sim.script(step["id"], step["outcomes"])
        elif op == "start_child":
            child = step["child"]
            if pool:
                child = {"significant": False, **template, "id": child["id"]}
            try:
                new = spec(child["id"], child["restart"], significant=child["significant"])
            except ValueError:
                sim.api("start_child", child["id"], invalid="bad_combination")
            else:
                sim.api("start_child", new)
        elif op in ("restart_child", "terminate_child", "delete_child"):
            sim.api(op, step["id"])
        elif op == "which_children":
            sim.which()
        elif op == "count_children":
            sim.count()
        elif op == "stop":
            sim.stop()
        elif op == "hung":
            sim.judge_hung(step["id"])
        else:
            raise ValueError(f"unknown step {step!r}")
    sim.finish()
    return sim.trace


def lines(trace: Trace) -> list[str]:
    """Render a trace compactly: "start a", "start a fail", "stop b", "exit a crash"."""
    out = []
    for entry in trace:
        kind = entry[0]
        if kind == "start":
            out.append("start " + entry[1] + ("" if entry[2] == "ok" else " " + entry[2]))
        elif kind == "which":
            out.append("which " + " ".join(f"{i}:{s}" for i, s in entry[1]))
        else:
            out.append(" ".join(str(x) for x in entry))
    return out


def booted(
    children: Sequence[ChildSpec],
    starts: Mapping[str, Sequence[str]] = {},
    **options: Any,
) -> Sim:
    """A simulator whose supervisor has started, with the start-up trace cleared."""
    sim = Sim(machine(children, **options), starts)
    sim.boot()
    sim.trace.clear()
    return sim

"""The supervision machine against the naive reference model, under hypothesis.

Both are driven with the same facts; after every step their commands (or
their refusals), child tables, restart windows and phases must be identical.
The driver plays the runtime: it answers blocking commands, lets children die
now or "quietly" (their exit fact queued while the supervisor is busy, to
reach OTP R7.1), fires timers, calls the API, jumps the clock, replays stale
facts and interrupts with shutdowns. Pools (OTP simple_one_for_one) are
generated too, with ``max_children`` and ``start_child`` requests beyond it,
group stops answered in a random order, and hung verdicts (fresh and stale)
at any moment.
"""

from __future__ import annotations

import os
import random
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_smith import (
    AutoShutdown,
    Backoff,
    ChildSpec,
    IllegalStateTransition,
    Restart,
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
    Input,
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

from .reference_model import ReferenceSupervisor
from .sim import spec

IDS = ["a", "b", "c", "d", "e"]
START_OUTCOMES = st.sampled_from(["ok"] * 6 + ["fail", "ignore"])
#: Burst actions: answers when a command is out, events when idle.
BURST = (
    ["ok"] * 4
    + ["fail", "ignore", "quiet", "time", "hung"]
    + ["exit"] * 4
    + ["mailbox", "timer", "api"]
)
MISPLACED: list[Input] = [
    ChildStarted(child_id="a"),
    ChildStopped(child_id="b"),
    StartupRequested(),
    StartFailed(child_id="c"),
]

backoffs = st.one_of(
    st.none(),
    st.builds(
        Backoff,
        initial=st.sampled_from([0.5, 1.0]),
        multiplier=st.sampled_from([1.0, 2.0, 3.0]),
        maximum=st.sampled_from([1.0, 4.0, 10.0]),
        jitter=st.sampled_from([0.0, 0.5]),
        reset_after=st.sampled_from([None, 2.0]),
    ),
)


@st.composite
def child_specs(draw: st.DrawFn, child_id: str, auto_shutdown: AutoShutdown) -> ChildSpec:
    restart = draw(st.sampled_from(list(Restart)))
    significant = (
        auto_shutdown is not AutoShutdown.NEVER
        and restart is not Restart.PERMANENT
        and draw(st.booleans())
    )
    backoff = draw(st.one_of(st.none(), backoffs)) if draw(st.integers(0, 3)) == 0 else None
    return spec(child_id, restart, significant=significant, backoff=backoff)


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    auto_shutdown = draw(st.sampled_from(list(AutoShutdown)))
    # A pool (OTP simple_one_for_one) in one run of two: no static
    # children or a few, one_for_one restarts (or escalate).
    pool = draw(st.booleans())
    count = draw(st.sampled_from([0, 0, 1, 2, 3] if pool else [0, 1, 2, 3, 3, 4, 4, 5, 5]))
    children = [draw(child_specs(IDS[i], auto_shutdown)) for i in range(count)]
    strategies = [Strategy.ONE_FOR_ONE] * 3 + [Strategy.ESCALATE] if pool else list(Strategy)
    return {
        "children": children,
        "pool": pool,
        # Often within reach of the static children and a few start_child.
        "max_children": draw(st.sampled_from([None, None, None, 1, 2, 3, 4])),
        "strategy": draw(st.sampled_from(strategies)),
        "max_restarts": draw(st.integers(0, 4)),
        "within": draw(st.sampled_from([1.0, 2.5, 10.0])),
        "backoff": draw(backoffs) if draw(st.booleans()) else None,
        "auto_shutdown": auto_shutdown,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "fail_startup": draw(st.integers(0, 9)) == 0,
        # Extra specs the API may start (ids can clash with the static ones).
        "spare": [draw(child_specs(i, auto_shutdown)) for i in IDS],
    }


def _outcome(model: Any, fact: Input, now: float) -> tuple[str, object]:
    try:
        return "ok", model.handle(fact, now=now)
    except IllegalStateTransition:
        # The two word their state differently; the refusal itself must match.
        return "illegal", None
    except Exception as error:
        return type(error).__name__, str(error)


class SupervisionComparison(RuleBasedStateMachine):
    """Drives SupervisorMachine and ReferenceSupervisor with the same facts."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        #: Live child "processes": id -> incarnation.
        self.alive: dict[str, int] = {}
        #: Exit facts of quiet deaths and zero-delay retries, in queue order.
        self.mailbox: list[Input] = []
        #: Pending timers with a delay: timer -> (due, child id).
        self.timers: dict[int, tuple[float, str]] = {}
        #: Facts seen before, replayed as stale input.
        self.old: list[Input] = []
        self.blocking: StartChild | StopChild | StopChildren | None = None
        self.exit: Exit | None = None
        #: From StartupRequested until the machine is first idle.
        self.booting = False
        self.spare: list[ChildSpec] = []
        #: The children of the group stop (StopChildren) not answered yet,
        #: the stop of an interrupted terminate_child included.
        self.group_left: list[str] = []
        #: The start under way was cancelled (hung): it must fail.
        self.start_cancelled = False

    @initialize(config=configurations())
    def build(self, config: dict[str, Any]) -> None:
        self.alive.clear()
        self.mailbox.clear()
        self.timers.clear()
        self.old.clear()
        self.blocking = None
        self.exit = None
        self.group_left = []
        self.start_cancelled = False
        keys = (
            "strategy",
            "max_restarts",
            "within",
            "backoff",
            "auto_shutdown",
            "max_children",
            "pool",
        )
        options = {k: config[k] for k in keys}
        self.machine = SupervisorMachine(
            config["children"], random=random.Random(config["seed"]).random, **options
        )
        self.reference = ReferenceSupervisor(
            config["children"], random=random.Random(config["seed"]).random, **options
        )
        self.spare = config["spare"]
        self.static = len(config["children"])  # the limit only guards start_child
        self.booting = not config["fail_startup"]
        self.feed(StartupRequested())

    # ---------------------------------------------------------------- the runtime

    def feed(self, fact: Input) -> list[Command]:
        got = _outcome(self.machine, fact, self.now)
        expected = _outcome(self.reference, fact, self.now)
        assert got == expected, f"{fact!r} at {self.now}"
        self.check_same_state()
        if got[0] != "ok":
            return []
        commands: list[Command] = got[1]  # type: ignore[assignment]
        if self.machine.awaiting is None and not self.machine.awaiting_stops:
            self.blocking = None
            self.booting = False
            self.start_cancelled = False
        # else: a new blocking command below, or an ignored shutdown request
        # while the same one is still out, or the rest of a group stop.
        for command in commands:
            if isinstance(command, StartChild | StopChild | StopChildren):
                assert command is commands[-1], "a blocking command comes last"
                assert self.machine.pool or not isinstance(command, StopChildren)
                if isinstance(command, StopChildren):
                    self.group_left = list(command.child_ids)
                    interrupted = self.blocking if isinstance(fact, ShutdownRequested) else None
                    if isinstance(interrupted, StopChild):
                        # An interrupted terminate_child: its stop is still out.
                        self.group_left.append(interrupted.child_id)
                    elif isinstance(interrupted, StartChild):
                        # An interrupted start is aborted with the others.
                        assert interrupted.child_id in command.child_ids
                    self.start_cancelled = False
                self.blocking = command
            elif isinstance(command, CancelChild):
                self.cancel(command)
            elif isinstance(command, ScheduleRestart):
                if command.delay == 0:
                    self.mailbox.append(TimerFired(child_id=command.child_id, timer=command.timer))
                else:
                    self.timers[command.timer] = (self.now + command.delay, command.child_id)
            elif isinstance(command, CancelRestart):
                self.timers.pop(command.timer, None)
            elif isinstance(command, Exit):
                assert command is commands[-1]
                self.exit = command
                assert not self.alive, "every child is stopped before Exit"
        if isinstance(fact, ChildExited | TimerFired):
            self.old.append(fact)
        return commands

    def cancel(self, command: CancelChild) -> None:
        # The runtime cancels the hung incarnation: a running one ends
        # abnormally (its exit queued), a starting one fails to start.
        child_id = command.child_id
        if self.alive.get(child_id) == command.incarnation:
            del self.alive[child_id]
            self.mailbox.append(
                ChildExited(
                    child_id=child_id,
                    incarnation=command.incarnation,
                    kind=ExitKind.ABNORMAL,
                    error=f"{child_id} hung",
                )
            )
        elif (
            isinstance(self.blocking, StartChild)
            and self.blocking.child_id == child_id
            and self.blocking.incarnation == command.incarnation
        ):
            self.start_cancelled = True
        else:
            # It has ended already, its exit still queued: nothing to cancel.
            assert any(
                isinstance(fact, ChildExited)
                and (fact.child_id, fact.incarnation) == (child_id, command.incarnation)
                for fact in self.mailbox
            ), command

    def check_same_state(self) -> None:
        assert self.machine.which_children() == self.reference.which_children()
        assert self.machine.restart_history(self.now) == self.reference.restart_history(self.now)
        assert self.machine.awaiting == self.reference.awaiting
        assert self.machine.awaiting_stops == self.reference.awaiting_stops
        if self.machine.pool and self.machine.phase.name == "IDLE":
            # An idle pool holds no stopped child (OTP R4.8).
            assert all(i.status.name != "STOPPED" for i in self.machine.which_children())
        limit = self.machine.max_children
        assert limit is None or self.machine.size <= max(limit, self.static)
        assert (self.machine.phase.name == "EXITED") == self.reference.exited

    def idle(self) -> bool:
        return self.blocking is None and self.exit is None

    # ---------------------------------------------------------------- results

    def answer(self, outcome: str, data: st.DataObject | None = None) -> None:
        if self.booting and outcome == "fail" and self.now == 0.0:
            outcome = "ok"  # a failing start-up ends the run at once: keep it rare
        if self.start_cancelled:
            outcome = "fail"  # a start cancelled as hung ends as a failed start
        command = self.blocking
        if isinstance(command, StopChildren):
            # The children of a group stop end in any order.
            index = 0 if data is None else data.draw(st.integers(0, len(self.group_left) - 1))
            child_id = self.group_left.pop(index)
            self.alive.pop(child_id, None)
            self.feed(ChildStopped(child_id=child_id))
            return
        if isinstance(command, StopChild):
            self.alive.pop(command.child_id, None)  # may have died by itself already
            self.feed(ChildStopped(child_id=command.child_id))
            return
        assert isinstance(command, StartChild)
        child_id = command.child_id
        if outcome == "ok":
            self.alive[child_id] = command.incarnation
            self.feed(ChildStarted(child_id=child_id))
        elif outcome == "fail":
            self.feed(StartFailed(child_id=child_id, error=f"start of {child_id} failed"))
        else:
            self.feed(StartIgnored(child_id=child_id))

    @precondition(lambda self: self.blocking is not None)
    @rule(data=st.data(), outcome=START_OUTCOMES)
    def answer_one(self, data: st.DataObject, outcome: str) -> None:
        self.answer(outcome, data)

    @precondition(lambda self: self.blocking is not None)
    @rule(data=st.data(), outcomes=st.lists(START_OUTCOMES, min_size=1, max_size=12))
    def run_to_idle(self, data: st.DataObject, outcomes: list[str]) -> None:
        # A whole group restart (or start-up) in one step.
        for outcome in outcomes:
            if self.blocking is None:
                return
            self.answer(outcome, data)

    @rule(data=st.data())
    def hung_verdict(self, data: st.DataObject) -> None:
        # In any phase, exited included: about a live incarnation, the start
        # under way, or anything stale (old incarnations, unknown ids).
        choice = data.draw(st.sampled_from(["live", "live", "starting", "stale", "none", "none"]))
        if choice == "none":
            return  # a rule of its own: keep verdicts from crowding out the rest
        blocking = self.blocking
        if choice == "live" and self.alive:
            child_id = data.draw(st.sampled_from(sorted(self.alive)))
            incarnation = self.alive[child_id]
        elif choice == "starting" and isinstance(blocking, StartChild):
            child_id, incarnation = blocking.child_id, blocking.incarnation
        else:
            child_id = data.draw(st.sampled_from([*IDS, "nobody"]))
            incarnation = data.draw(st.integers(0, 12))
        self.feed(ChildJudgedHung(child_id=child_id, incarnation=incarnation))

    # ---------------------------------------------------------------- child exits

    @precondition(lambda self: self.exit is None and bool(self.alive))
    @rule(data=st.data(), kind=st.sampled_from(list(ExitKind)))
    def child_dies_quietly(self, data: st.DataObject, kind: ExitKind) -> None:
        # It ends while the supervisor may be busy: its exit waits in the mailbox.
        child_id = data.draw(st.sampled_from(sorted(self.alive)))
        incarnation = self.alive.pop(child_id)
        self.mailbox.append(ChildExited(child_id=child_id, incarnation=incarnation, kind=kind))

    @precondition(lambda self: self.idle())
    @rule(data=st.data(), event=st.sampled_from(["exit"] * 4 + ["mailbox", "timer"] * 2 + ["api"]))
    def idle_event(self, data: st.DataObject, event: str) -> None:
        # One rule with weights, so that exits and timers dominate.
        if event == "exit" and self.alive:
            child_id = data.draw(st.sampled_from(sorted(self.alive)))
            kind = data.draw(st.sampled_from([ExitKind.ABNORMAL] * 2 + [ExitKind.NORMAL]))
            incarnation = self.alive.pop(child_id)
            error = f"{child_id} failed" if kind is ExitKind.ABNORMAL else None
            self.feed(
                ChildExited(child_id=child_id, incarnation=incarnation, kind=kind, error=error)
            )
        elif event == "mailbox" and self.mailbox:
            self.feed(self.mailbox.pop(0))
        elif event == "timer" and self.timers:
            timer = data.draw(st.sampled_from(sorted(self.timers)))
            due, child_id = self.timers.pop(timer)
            self.now = max(self.now, due)
            self.feed(TimerFired(child_id=child_id, timer=timer))
        else:
            self.api_call(data)

    def api_call(self, data: st.DataObject) -> None:
        ops: list[Any] = [
            StartChildRequested,
            RestartChildRequested,
            TerminateChildRequested,
            DeleteChildRequested,
        ]
        if self.machine.pool:
            # A pool grows by start_child; restart/delete find no stopped child.
            ops = [StartChildRequested] * 4 + [TerminateChildRequested] * 2 + ops
        op = data.draw(st.sampled_from(ops))
        if op is StartChildRequested:
            self.feed(StartChildRequested(spec=data.draw(st.sampled_from(self.spare))))
        else:
            self.feed(op(child_id=data.draw(st.sampled_from([*IDS, "nobody"]))))

    @precondition(lambda self: self.exit is None)
    @rule(data=st.data(), actions=st.lists(st.sampled_from(BURST), min_size=5, max_size=25))
    def burst(self, data: st.DataObject, actions: list[str]) -> None:
        # Many steps in one: hypothesis favours short runs, supervisors need long ones.
        for action in actions:
            if self.exit is not None:
                return
            if self.blocking is not None:
                if action == "interrupt":
                    self.feed(ShutdownRequested())
                elif action == "quiet" and self.alive:
                    self.child_dies_quietly(data, ExitKind.ABNORMAL)
                elif action == "hung":
                    self.hung_verdict(data)
                else:
                    self.answer(action if action in ("ok", "fail", "ignore") else "ok", data)
            elif action == "hung":
                self.hung_verdict(data)
            elif action == "time":
                self.now += data.draw(st.sampled_from([0.5, 2.5, 10.0]))
            elif action == "interrupt":
                continue  # only interrupts a command under way
            elif action == "quiet" and self.alive:
                self.child_dies_quietly(data, ExitKind.ABNORMAL)
            else:
                self.idle_event(data, action)

    # ---------------------------------------------------------------- the rest

    @precondition(lambda self: self.exit is None)
    @rule(
        data=st.data(),
        action=st.sampled_from(["time"] * 4 + ["stale"] * 2 + ["misplaced", "shutdown"]),
    )
    def misc(self, data: st.DataObject, action: str) -> None:
        if action == "time":
            self.now += data.draw(st.sampled_from([0.25, 1.0, 2.5, 10.0]))
        elif action == "stale" and self.old and self.idle():
            self.replay_stale(data.draw(st.sampled_from(self.old)))
        elif action == "misplaced":
            self.refuse_misplaced(data.draw(st.sampled_from(MISPLACED)))
        elif action == "shutdown" and data.draw(st.integers(0, 1 if self.machine.pool else 3)) == 0:
            self.feed(ShutdownRequested())

    def replay_stale(self, fact: Input) -> None:
        if isinstance(fact, ChildExited) and self.alive.get(fact.child_id) == fact.incarnation:
            return  # not stale: that process still lives
        if (isinstance(fact, TimerFired) and fact.timer in self.timers) or fact in self.mailbox:
            return
        assert self.feed(fact) == []

    def refuse_misplaced(self, fact: Input) -> None:
        # Legal only when it answers the pending command; else both refuse,
        # checked without feeding: the machines must stay as they are.
        answers = (
            (
                isinstance(self.blocking, StartChild)
                and isinstance(fact, ChildStarted | StartFailed)
                and fact.child_id == self.blocking.child_id
            )
            or (
                isinstance(self.blocking, StopChild)
                and isinstance(fact, ChildStopped)
                and fact.child_id == self.blocking.child_id
            )
            or (
                isinstance(self.blocking, StopChildren)
                and isinstance(fact, ChildStopped)
                and fact.child_id in self.group_left
            )
        )
        if not answers:
            assert _outcome(self.machine, fact, self.now)[0] == "illegal"
            assert _outcome(self.reference, fact, self.now)[0] == "illegal"

    @precondition(lambda self: self.exit is not None)
    @rule(config=configurations())
    def new_supervisor(self, config: dict[str, Any]) -> None:
        # The old one takes nothing but (ignored) shutdowns; go on with a new one.
        assert self.feed(ShutdownRequested()) == []
        self.build(config)

    @invariant()
    def blocking_command_matches_awaited_child(self) -> None:
        if isinstance(self.blocking, StopChildren):
            assert self.machine.awaiting is None
            assert self.machine.awaiting_stops == frozenset(self.group_left)
        elif self.blocking is not None:
            assert self.machine.awaiting == self.blocking.child_id


TestSupervisionComparison = SupervisionComparison.TestCase
# At least 200 examples of 50 steps in CI; SOAK_EXAMPLES=N for long local runs.
TestSupervisionComparison.settings = settings(
    max_examples=int(os.environ.get("SOAK_EXAMPLES", "300")), stateful_step_count=50
)

"""Shell versus core: real supervisors on trio against the pure supervision machine.

Hypothesis draws a supervisor (strategy, restart intensity, backoff) with
children (restart type, shutdown mode, scripted start outcomes, with or
without ``task_status``) and a schedule: children crash or return (one, or
several at once), virtual time passes, an API call is made, and an ending
(``shutdown()`` or a cancellation from outside). The schedule runs twice:

* on a real ``Supervisor`` in ``trio.run`` with a ``MockClock``, whose
  scripted children log what happens to them: ``["start", id, outcome]``,
  ``["exit", id, "crash"|"normal"]`` (it ended by itself), ``["stop", id]``
  (its supervisor stopped it), and the API results;
* on ``tests.core.sim.Sim``, which drives a bare ``SupervisorMachine`` the way
  a runtime should and logs the same entries from the commands the core gives.

After every step the logs and ``which_children()`` must be equal; at the end
so must the way the supervisor ended, and no task may be left. A child that
runs its own supervisor is checked against a Sim nested in the Sim (a fresh
machine per start of that child, OTP R5.7).

What the oracle cannot know is taken from the real run, and only that:

* When several children end at once, or as an API call is made, trio decides
  the order in which their exits reach the supervisor. The oracle takes the
  call first (the caller queues it before the children run), then the exits in
  the order the children logged them; a child that logged its end before the
  call's turn is gone by then (OTP: its exit signal is in the mailbox). Within
  such a step the exits and the API result are compared apart from the stops
  and starts they cause.
* A child whose ``fn`` takes no ``task_status`` counts as started when its
  task is spawned, so when it first runs and logs "start" is up to trio's
  scheduler: such "start" entries are compared per child, not in the global
  order.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_smith import (
    Backoff,
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildFailureEscalated,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorError,
    SupervisorGaveUp,
    SupervisorNotRunning,
    current_child,
)
from trio_smith._core._protocol import (
    ChildStarted,
    ChildStopped,
    ExitReason,
    StartChild,
    StartFailed,
    StartIgnored,
    StopChild,
)
from trio_smith._core._supervision import SupervisorMachine

from ..core.sim import Sim, machine

#: The id of the child that runs a nested supervisor.
NESTED = "sup"
#: ``ChildSpec.shutdown`` of a graceful child: asked to stop, it returns at once.
GRACE = 5.0

Entry = list[Any]

# ---------------------------------------------------------------- the plan


@attrs.frozen
class Kid:
    """One scripted worker."""

    id: str
    restart: Restart
    #: None or 0 (cancelled at once) or GRACE (asked to stop; it returns).
    shutdown: float | None
    #: Its fn takes ``task_status``: the supervisor awaits its start.
    status: bool
    #: Start outcomes, one per start ("ok" once used up): "ok", "fail", "ignore".
    script: tuple[str, ...]


@attrs.frozen
class Tree:
    """The child NESTED: a supervisor of grandchildren."""

    position: int
    restart: Restart
    shutdown: float | None
    strategy: Strategy
    max_restarts: int
    within: float
    kids: tuple[Kid, ...]


@attrs.frozen
class End:
    """Live workers end at once: (index among the live ones by id, crash?) each."""

    orders: tuple[tuple[int, bool], ...]


@attrs.frozen
class Wait:
    """Virtual time passes; due backoff timers fire on the way."""

    seconds: float


@attrs.frozen
class Call:
    """An API call (``pick`` chooses its child) as workers end, like End's ``orders``."""

    op: str
    pick: int
    orders: tuple[tuple[int, bool], ...] = ()


Step = End | Wait | Call


@attrs.frozen
class Plan:
    strategy: Strategy
    max_restarts: int
    within: float
    backoff: Backoff | None
    kids: tuple[Kid, ...]
    #: Specs that only ``start_child`` adds.
    extra: tuple[Kid, ...]
    tree: Tree | None
    steps: tuple[Step, ...]
    #: End by cancelling an outer scope rather than by ``shutdown()``.
    cancel: bool


@attrs.frozen
class CancelAt:
    """Cancel from outside during step ``step``, after ``ticks`` checkpoints."""

    step: int
    ticks: int


OPS = ("start_child", "restart_child", "terminate_child", "delete_child")
OUTCOMES = st.sampled_from(("ok", "ok", "ok", "ok", "fail", "ignore"))


def steps(together: int) -> st.SearchStrategy[Step]:
    """Steps; up to ``together`` children end in one step."""
    order = st.tuples(st.integers(0, 7), st.booleans())
    ends = st.builds(End, orders=st.lists(order, min_size=1, max_size=together).map(tuple))
    racing = st.lists(order, max_size=together if together > 1 else 0).map(tuple)
    return st.one_of(
        ends,
        ends,
        st.builds(Wait, seconds=st.sampled_from((0.5, 1.0, 2.5, 6.0))),
        st.builds(Call, op=st.sampled_from(OPS), pick=st.integers(0, 9), orders=racing),
    )


@st.composite
def kids(draw: st.DrawFn, prefix: str, low: int, high: int) -> tuple[Kid, ...]:
    out = []
    for n in range(draw(st.integers(low, high))):
        status = draw(st.booleans())
        out.append(
            Kid(
                id=f"{prefix}{n}",
                restart=draw(st.sampled_from(Restart)),
                shutdown=draw(st.sampled_from((None, 0.0, GRACE))),
                status=status,
                script=tuple(draw(st.lists(OUTCOMES, max_size=4))) if status else (),
            )
        )
    return tuple(out)


@st.composite
def trees(draw: st.DrawFn) -> Tree:
    return Tree(
        position=draw(st.integers(0, 5)),
        restart=draw(st.sampled_from(Restart)),
        shutdown=draw(st.sampled_from((None, 0.0))),
        strategy=draw(st.sampled_from(Strategy)),
        max_restarts=draw(st.integers(0, 2)),
        within=draw(st.sampled_from((1.0, 5.0))),
        kids=draw(kids("g", 1, 3)),
    )


@st.composite
def plans(draw: st.DrawFn, *, nested: bool = False) -> Plan:
    return Plan(
        strategy=draw(st.sampled_from(Strategy)),
        max_restarts=draw(st.integers(0, 4)),
        within=draw(st.sampled_from((1.0, 2.0, 5.0, 10.0))),
        backoff=draw(
            st.none() | st.just(Backoff(initial=0.5, multiplier=2.0, maximum=2.0, reset_after=1.0))
        ),
        kids=draw(kids("c", 0 if nested else 1, 4 if nested else 5)),
        extra=draw(kids("n", 0, 2)),
        tree=draw(trees()) if nested else None,
        # One child at a time in a tree, and no exits racing API calls: the
        # Sim queues a parent's stop behind its children's exits, the runtime
        # interrupts at once (D5).
        steps=tuple(draw(st.lists(steps(1 if nested else 3), min_size=4, max_size=30))),
        cancel=draw(st.booleans()),
    )


# ---------------------------------------------------------------- the real children


class Crash(Exception):
    """What a scripted child raises when told to crash."""


class StartFailure(Exception):
    """What a scripted child raises before it has started."""


class Order:
    """Tells one incarnation of a worker to end (set once)."""

    def __init__(self) -> None:
        self.event = trio.Event()
        self.crash = False


class World:
    """What the real children share: the log, their scripts, their orders."""

    def __init__(self, scripts: Mapping[str, Sequence[str]]) -> None:
        self.trace: list[Entry] = []
        self.scripts = {child_id: deque(script) for child_id, script in scripts.items()}
        #: The live workers (grandchildren included), by id.
        self.orders: dict[str, Order] = {}
        #: The supervisor the NESTED child runs now.
        self.inner: Supervisor | None = None

    def order(self, child_id: str, crash: bool) -> None:
        order = self.orders[child_id]
        order.crash = crash
        order.event.set()


async def _first(*events: trio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


async def _work(world: World, graceful: bool, task_status: trio.TaskStatus[None]) -> None:
    me = current_child().id
    script = world.scripts.get(me)
    outcome = script.popleft() if script else "ok"
    world.trace.append(["start", me, outcome])
    if outcome == "fail":
        raise StartFailure(f"{me} failed to start")
    if outcome == "ignore":
        return
    order = Order()
    world.orders[me] = order
    task_status.started()
    stopped = True
    try:
        if graceful:
            await _first(order.event, current_child().stop_requested)
        else:
            await order.event.wait()
        # An order that lost the race with a stop request: the supervisor
        # counts this end as a stop (R3.5), and so does the log.
        stopped = current_child().stop_requested.is_set() or not order.event.is_set()
    finally:
        del world.orders[me]
        kind = "crash" if order.crash else "normal"
        world.trace.append(["stop", me] if stopped else ["exit", me, kind])
    if order.crash:
        raise Crash(f"{me} crashed")


async def plain_worker(world: World, graceful: bool) -> None:
    """A worker that counts as started as soon as its task is spawned."""
    await _work(world, graceful, trio.TASK_STATUS_IGNORED)


async def status_worker(
    world: World, graceful: bool, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A worker whose start the supervisor awaits (it may fail or ignore)."""
    # Its start takes a scheduler round, in which a shutdown may interrupt it.
    await trio.lowlevel.checkpoint()
    await _work(world, graceful, task_status)


async def subtree(
    world: World,
    specs: tuple[ChildSpec, ...],
    tree: Tree,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The NESTED child: runs a supervisor of ``specs`` until stopped or it gives up."""
    started = False
    try:
        async with Supervisor(
            specs, strategy=tree.strategy, max_restarts=tree.max_restarts, within=tree.within
        ) as inner:
            world.inner = inner
            world.trace.append(["start", NESTED, "ok"])
            started = True
            task_status.started()
    except ChildStartFailed:
        world.trace.append(["start", NESTED, "fail"])
        raise
    except SupervisorGaveUp:
        world.trace.append(["exit", NESTED, "crash"])
        raise
    except BaseException:
        if not started:  # stopped while its supervisor was starting up
            world.trace.append(["start", NESTED, "aborted"])
        world.trace.append(["stop", NESTED])
        raise
    # Its supervisor only ends without an error when its parent stops it.
    world.trace.append(["stop", NESTED])


# ---------------------------------------------------------------- the oracle


class TreeSim(Sim):
    """A Sim whose child NESTED runs an inner Sim: a fresh machine per start (R5.7)."""

    def __init__(
        self,
        machine: SupervisorMachine,
        starts: Mapping[str, Sequence[str]],
        make_inner: Callable[[], SupervisorMachine] | None,
    ) -> None:
        super().__init__(machine, starts)
        self.make_inner = make_inner
        self.inner: Sim | None = None
        #: Children that die just as the next API call's turn comes; their
        #: exit facts queue behind the call.
        self.dying: list[tuple[str, str]] = []

    def _call(self, action: Callable[[], Any]) -> Any:
        dying, self.dying = self.dying, []

        def die_then_act() -> Any:
            for child_id, reason in dying:
                if child_id in self.alive:
                    self.queue_exit(child_id, reason)
                else:
                    self.trace.append(["exit_skipped", child_id])
            return action()

        return super()._call(die_then_act)

    def _start(self, command: StartChild) -> ChildStarted | StartFailed | StartIgnored:
        if command.child_id != NESTED or self.make_inner is None:
            return super()._start(command)
        inner = Sim(self.make_inner())
        # One log and one set of start scripts for the whole tree.
        inner.now, inner.trace, inner.outcomes = self.now, self.trace, self.outcomes
        self.inner = inner
        inner.boot()
        if inner.ended() is not None:
            self.trace.append(["start", NESTED, "fail"])
            return StartFailed(child_id=NESTED, error=f"{NESTED} failed to start")
        self.trace.append(["start", NESTED, "ok"])
        self.alive[NESTED] = command.incarnation
        return ChildStarted(child_id=NESTED)

    def _stop(self, command: StopChild) -> ChildStopped:
        if command.child_id == NESTED and NESTED in self.alive and self.inner is not None:
            self.inner.now = self.now
            self.inner.stop()  # its children stop, in reverse order, before it ends
        return super()._stop(command)

    def running_inner(self) -> Sim | None:
        """The inner Sim, if the NESTED child is running."""
        inner = self.inner
        if NESTED in self.alive and inner is not None and inner.ended() is None:
            return inner
        return None


_ORACLE_KINDS = frozenset({"start", "stop", "exit", "exit_skipped", "api"})
_EXITS = frozenset({"exit", "exit_skipped"})
_REFUSALS: dict[type[Exception], str] = {
    ChildNotFound: "not_found",
    ChildRunning: "running",
    ChildRestarting: "restarting",
    ChildAlreadyPresent: "already_present",
    ChildAlreadyStarted: "already_started",
    ChildStartFailed: "start_failed",
    SupervisorNotRunning: "sup_down",
}


def oracle_entries(trace: Sequence[Entry]) -> list[Entry]:
    """The Sim's log in the real children's format (``ok_undefined`` reads as ``ok``)."""
    out = []
    for entry in trace:
        if entry[0] not in _ORACLE_KINDS:
            continue
        if entry[0] == "api" and entry[3] == "ok_undefined":
            entry = [*entry[:3], "ok"]
        out.append(list(entry))
    return out


def describe(error: BaseException | None) -> object:
    """A real child error as the Sim writes it."""
    if error is None:
        return None
    if isinstance(error, SupervisorGaveUp):
        return f"{NESTED} crashed"
    if isinstance(error, ChildStartFailed):
        return f"{NESTED} failed to start"
    return str(error)


# ---------------------------------------------------------------- one run


class Run:
    """One schedule, on a real supervisor and on the oracle."""

    def __init__(self, plan: Plan, cancel_at: CancelAt | None = None) -> None:
        self.plan = plan
        self.cancel_at = cancel_at
        tree = plan.tree
        grandkids = tree.kids if tree is not None else ()
        every = (*plan.kids, *plan.extra, *grandkids)
        scripts = {kid.id: kid.script for kid in every}
        self.world = World(scripts)
        self.plain = {kid.id for kid in every if not kid.status}
        self.grandkids = {kid.id for kid in grandkids}
        self.graceful = {kid.id for kid in every if kid.shutdown == GRACE}
        specs = {kid.id: self._spec(kid) for kid in every}
        static = [specs[kid.id] for kid in plan.kids]
        make_inner: Callable[[], SupervisorMachine] | None = None
        if tree is not None:
            inner_specs = tuple(specs[kid.id] for kid in tree.kids)
            args = (self.world, inner_specs, tree)
            nested = ChildSpec(NESTED, subtree, args, restart=tree.restart, shutdown=tree.shutdown)
            static.insert(min(tree.position, len(static)), nested)

            def make_inner() -> SupervisorMachine:
                return machine(
                    inner_specs,
                    strategy=tree.strategy,
                    max_restarts=tree.max_restarts,
                    within=tree.within,
                )

        self.static = static
        self.startable = [*static, *(specs[kid.id] for kid in plan.extra)]
        self.ids = [spec.id for spec in self.startable] + ["ghost"]
        self.sim = TreeSim(
            machine(
                static,
                strategy=plan.strategy,
                max_restarts=plan.max_restarts,
                within=plan.within,
                backoff=plan.backoff,
            ),
            scripts,
            make_inner,
        )
        #: Step boundaries: (index in the real log, index in the Sim's log,
        #: several children ended in the step that ends here).
        self.marks: list[tuple[int, int, bool]] = [(0, 0, False)]
        #: Where in the real log the exits of the current step start, and the
        #: API call they raced with: what the oracle must replay.
        self.pending: tuple[int, Call | None] | None = None
        self.together = False
        # What the run found.
        self.sup: Supervisor | None = None
        self.failure: SupervisorError | None = None
        self.cancelled = False
        self.leaked = 0
        self.marker: int | None = None
        self.snapshot: list[str] = []
        self.inner_snapshot: list[str] = []

    def _spec(self, kid: Kid) -> ChildSpec:
        fn = status_worker if kid.status else plain_worker
        args = (self.world, kid.shutdown == GRACE)
        return ChildSpec(kid.id, fn, args, restart=kid.restart, shutdown=kid.shutdown)

    # ------------------------------------------------------------ the real run

    async def main(self) -> None:
        before = trio.lowlevel.current_statistics().tasks_living
        plan, at = self.plan, self.cancel_at
        self.sim.boot()
        with trio.fail_after(1e6):  # virtual time: turns a deadlock into an error
            async with trio.open_nursery() as helpers:
                with trio.CancelScope() as outer:
                    try:
                        async with Supervisor(
                            self.static,
                            strategy=plan.strategy,
                            max_restarts=plan.max_restarts,
                            within=plan.within,
                            backoff=plan.backoff,
                        ) as sup:
                            self.sup = sup
                            await self._step_and_check(sup, None, "start-up")
                            for index, step in enumerate(plan.steps):
                                if at is not None and at.step == index:
                                    helpers.start_soon(self._cancel_later, at.ticks, outer, sup)
                                await self._step_and_check(sup, step, f"step {index} {step}")
                            self.sim.stop()
                            if at is not None:  # the cancellation comes at the end
                                helpers.start_soon(self._cancel_later, at.ticks, outer, sup)
                                await trio.sleep_forever()
                            elif plan.cancel:
                                outer.cancel()
                                await trio.lowlevel.checkpoint()
                            else:
                                await sup.shutdown()
                    except SupervisorError as exc:
                        self.failure = exc
                self.cancelled = outer.cancelled_caught
        self.leaked = trio.lowlevel.current_statistics().tasks_living - before
        self.marks.append((len(self.world.trace), len(self.sim.trace), False))

    async def _cancel_later(self, ticks: int, outer: trio.CancelScope, sup: Supervisor) -> None:
        for _ in range(ticks):
            await trio.lowlevel.checkpoint()
        self.snapshot = [info.id for info in sup.which_children()]
        inner = self.world.inner
        self.inner_snapshot = [] if inner is None else [i.id for i in inner.which_children()]
        self.marker = len(self.world.trace)
        outer.cancel()

    async def _step(self, sup: Supervisor, step: Step) -> None:
        """Run one step on the real supervisor; the oracle replays it (``replay``)."""
        if isinstance(step, Wait):
            self.sim.advance(step.seconds)
            await trio.sleep(step.seconds)
            return
        world = self.world
        live = sorted(world.orders)
        if len(step.orders) > 1:
            # A graceful child ends a few scheduler rounds after its order (it
            # watches its stop request in a nursery), so a retry the supervisor
            # queues meanwhile may overtake its exit. The others all end, and so
            # reach the supervisor, before any task that their ends wake runs.
            live = [child_id for child_id in live if child_id not in self.graceful]
        targets: dict[str, bool] = {}
        for pick, crash in step.orders if live else ():
            targets.setdefault(live[pick % len(live)], crash)
        call = step if isinstance(step, Call) else None
        self.pending = (len(world.trace), call)
        self.together = len(targets) + (call is not None) > 1
        for target, crash in targets.items():
            world.order(target, crash)  # they run once this task waits
        if call is not None:
            # Queued at once, so ahead of the exits of the children just told to end.
            arg = self._argument(call)
            result = await self._call(sup, call.op, arg)
            child_id = arg.id if isinstance(arg, ChildSpec) else arg
            world.trace.append(["api", call.op, child_id, result])

    def _argument(self, call: Call) -> ChildSpec | str:
        if call.op == "start_child":
            return self.startable[call.pick % len(self.startable)]
        return self.ids[call.pick % len(self.ids)]

    @staticmethod
    async def _call(sup: Supervisor, op: str, arg: ChildSpec | str) -> str:
        try:
            if isinstance(arg, ChildSpec):
                await sup.start_child(arg)
            elif op == "restart_child":
                await sup.restart_child(arg)
            elif op == "terminate_child":
                await sup.terminate_child(arg)
            else:
                await sup.delete_child(arg)
        except tuple(_REFUSALS) as exc:
            return _REFUSALS[type(exc)]
        return "ok"

    def replay(self) -> None:
        """Feed the oracle the step: its API call, then the exits in the real log's order."""
        if self.pending is None:
            return
        (start, call), self.pending = self.pending, None
        sim = self.sim
        exits = [(e[1], e[2]) for e in self.world.trace[start:] if e[0] == "exit"]
        if call is not None:
            sim.dying = exits  # dead before the call's turn, queued behind it
            sim.api(call.op, self._argument(call))
            sim.dying, exits = [], []
        for child_id, reason in exits:
            if child_id not in self.grandkids:
                sim.exit(child_id, reason, settle=False)
                continue
            inner = sim.running_inner()
            if inner is None:
                sim.trace.append(["exit_skipped", child_id])
            else:
                inner.now = sim.now
                inner.exit(child_id, reason)
        sim.settle()

    async def _step_and_check(self, sup: Supervisor, step: Step | None, where: str) -> None:
        try:
            # A supervisor that gives up cancels this body in here: the lines
            # after the ``finally`` run only while the real supervisor is up.
            if step is not None:
                await self._step(sup, step)
            await trio.testing.wait_all_tasks_blocked()
        finally:
            if self.marker is None:  # else the exits that raced the cancellation go later
                self.replay()
            self.marks.append((len(self.world.trace), len(self.sim.trace), self.together))
            self.together = False
        if self.marker is not None:
            return  # cancelled from outside: the oracle cannot follow
        exit = self.sim.ended()
        assert exit is None, f"{where}: the core exited ({exit}), the supervisor did not"
        self.check_traces(where)
        assert sup.which_children() == self.sim.machine.which_children(), where
        inner = self.sim.running_inner()
        if inner is not None:
            assert self.world.inner is not None
            assert self.world.inner.which_children() == inner.machine.which_children(), where

    # ------------------------------------------------------------ checks

    def check_traces(self, where: str) -> None:
        """Each step's real log equals the oracle's, as the module docstring says."""
        real, expected = self.world.trace, self.sim.trace
        plain = self.plain

        def timed(entries: Sequence[Entry], together: bool) -> list[Entry]:
            kept = [e for e in entries if not (e[0] == "start" and e[1] in plain)]
            if not together:
                return kept
            exits = [e for e in kept if e[0] in _EXITS]
            calls = [e for e in kept if e[0] == "api"]
            return exits + calls + [e for e in kept if e[0] not in _EXITS and e[0] != "api"]

        for (r0, s0, _), (r1, s1, together) in itertools.pairwise(self.marks):
            mine = timed(real[r0:r1], together)
            theirs = timed(oracle_entries(expected[s0:s1]), together)
            assert mine == theirs, f"{where}: the log differs from step mark {r0}/{s0} on"
        expected = oracle_entries(expected)
        for child_id in {e[1] for e in expected + real if e[0] != "api"}:
            mine = [e for e in real if e[1] == child_id and e[0] != "api"]
            theirs = [e for e in expected if e[1] == child_id and e[0] != "api"]
            assert mine == theirs, f"{where}: child {child_id!r} differs"

    def check_nothing_left(self) -> None:
        """Every task ended, every started child ended, every child is stopped."""
        assert self.leaked == 0, f"{self.leaked} tasks left running"
        assert self.world.orders == {}, f"children still running: {sorted(self.world.orders)}"
        for child_id in {e[1] for e in self.world.trace if e[0] == "start"}:
            entries = [e for e in self.world.trace if e[1] == child_id and e[0] != "api"]
            starts = sum(1 for e in entries if e[0] == "start" and e[2] in ("ok", "aborted"))
            ends = sum(1 for e in entries if e[0] in ("stop", "exit"))
            assert starts == ends, f"{child_id!r}: {starts} starts, {ends} ends"
        if self.sup is not None:
            statuses = {info.id: info.status for info in self.sup.which_children()}
            assert set(statuses.values()) <= {ChildStatus.STOPPED}, statuses

    def check_outcome(self) -> None:
        """The supervisor ended as the core decided, with the same child, cause and history."""
        exit = self.sim.ended()
        assert exit is not None, "the core never exited"
        failure = self.failure
        if exit.reason is ExitReason.SHUTDOWN:
            assert failure is None, f"the core shut down, the supervisor raised {failure!r}"
            return
        kind = {
            ExitReason.INTENSITY: RestartIntensityExceeded,
            ExitReason.ESCALATED: ChildFailureEscalated,
            ExitReason.START_FAILED: ChildStartFailed,
        }[exit.reason]
        assert isinstance(failure, SupervisorGaveUp | ChildStartFailed)
        assert type(failure) is kind, f"the core exited {exit}, the supervisor {failure!r}"
        assert failure.child_id == exit.child_id
        assert describe(failure.__cause__) == exit.error
        if isinstance(failure, SupervisorGaveUp):
            assert failure.restarts == exit.restarts


def run(plan: Plan, cancel_at: CancelAt | None = None) -> Run:
    """Run a plan in a fresh trio run on a MockClock that jumps whenever all tasks block."""
    r = Run(plan, cancel_at)
    trio.run(r.main, clock=trio.testing.MockClock(autojump_threshold=0))
    return r


# ---------------------------------------------------------------- tests


def _plan(strategy: Strategy, kids: tuple[Kid, ...], *steps: Step, **more: Any) -> Plan:
    fields: dict[str, Any] = dict(max_restarts=3, within=5.0, backoff=None, extra=(), tree=None)
    fields.update(more)
    return Plan(strategy=strategy, kids=kids, steps=steps, cancel=False, **fields)


def _kid(child_id: str, *script: str, restart: Restart = Restart.PERMANENT) -> Kid:
    return Kid(child_id, restart, None, bool(script), script)


#: Rare paths that random plans reach seldom, run every time.
API_START_FAILURES = _plan(
    Strategy.ONE_FOR_ONE,
    (_kid("c0", "ok", "fail"),),
    Call("start_child", 1),  # n0 fails to start: its spec is discarded
    Call("start_child", 1),
    Call("terminate_child", 0),
    Call("restart_child", 0),  # c0 fails to start: it stays stopped
    Call("restart_child", 0),
    extra=(_kid("n0", "fail", "ok", restart=Restart.TRANSIENT),),
)
ESCALATED_RESTART_FAILURE = _plan(
    Strategy.ESCALATE,
    (_kid("c0", "ok", "fail"), _kid("c1")),
    End(((0, False),)),  # c0 returns, its restart fails to start: give up
)
RETRIES_RACING_EXITS = _plan(
    Strategy.REST_FOR_ONE,
    (_kid("c0"), _kid("c1"), _kid("c2", restart=Restart.TEMPORARY), _kid("c3", "ok", "ok", "fail")),
    End(((0, False),)),
    End(((0, False), (2, False))),  # c3 fails to restart; its retry waits behind c0's exit
    End(((0, False),)),
)

#: Cancelled at step 0, 1, 2 after no tick: during a stop for terminate_child,
#: during a start for restart_child, during a start for an automatic restart.
CANCEL_MID_JOB = _plan(
    Strategy.ONE_FOR_ONE,
    (_kid("c0", "ok", "ok"), _kid("c1", "ok", "ok")),
    Call("terminate_child", 0),
    Call("restart_child", 0),
    End(((1, True),)),
)


@settings(max_examples=300)
@given(plans())
@example(API_START_FAILURES)
@example(ESCALATED_RESTART_FAILURE)
@example(RETRIES_RACING_EXITS)
def test_a_real_supervisor_starts_and_stops_children_exactly_as_the_core_decides(
    plan: Plan,
) -> None:
    """Random crashes, returns, waits and API calls: same log, children and outcome."""
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()
    exit = r.sim.ended()
    if plan.cancel and exit is not None and exit.reason is ExitReason.SHUTDOWN:
        assert r.cancelled, "the outer cancellation escaped its scope"


@settings(max_examples=150)
@given(plans(nested=True))
def test_a_nested_tree_behaves_as_the_composed_cores(plan: Plan) -> None:
    """A child running a supervisor: its children stop first; giving up is its failure."""
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()


def _decreasing(ids: Sequence[str], order: Sequence[str]) -> bool:
    positions = [order.index(child_id) for child_id in ids]
    return all(a > b for a, b in itertools.pairwise(positions))


@settings(max_examples=200)
@given(plans(nested=False) | plans(nested=True), st.integers(0, 30), st.integers(0, 12))
@example(CANCEL_MID_JOB, 0, 0)
@example(CANCEL_MID_JOB, 1, 0)
@example(CANCEL_MID_JOB, 2, 0)
def test_cancellation_from_outside_at_any_moment_stops_everything_in_order(
    plan: Plan, step: int, ticks: int
) -> None:
    """Cancelled mid-step: children stop in reverse order, nothing is left, nothing escapes."""
    r = run(plan, CancelAt(step=step % (len(plan.steps) + 1), ticks=ticks))
    r.check_nothing_left()
    if r.failure is not None:
        # An exit reached it before the cancellation did, and it gave up: so
        # must the core, given the exits in the same order.
        assert not r.cancelled
        r.replay()
        r.check_outcome()
        return
    assert r.marker is not None, "the cancellation never came"
    assert r.cancelled, "the cancellation escaped its scope"
    stops = [e[1] for e in r.world.trace[r.marker :] if e[0] == "stop"]
    for order in (r.snapshot, r.inner_snapshot):
        mine = [child_id for child_id in stops if child_id in order]
        # The first may be a stop that was already under way.
        assert _decreasing(mine[1:], order), (mine, order)
    if NESTED in stops:
        last = len(stops) - 1 - stops[::-1].index(NESTED)
        assert not set(stops[last:]) & r.grandkids, f"grandchildren stopped after {NESTED}"


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_crash_loop_gives_up_with_the_same_history_under_every_strategy(
    strategy: Strategy,
) -> None:
    """A fixed case of the harness: three crashes with one restart allowed."""
    graceful = Kid("c1", Restart.TRANSIENT, GRACE, True, ())
    crash = End(((0, True),))
    r = run(_plan(strategy, (_kid("c0"), graceful), crash, crash, crash, max_restarts=1))
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()
    assert isinstance(r.failure, SupervisorGaveUp)
    assert r.failure.child_id == "c0"
    assert r.world.trace[-1] == ["stop", "c1"]

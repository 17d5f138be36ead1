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
machine per start of that child, OTP R5.7), two levels deep. Hypothesis
builds each such child either the old way (its function enters
``async with Supervisor``) or with ``Supervisor.spec`` (the real spec's
function, wrapped only to log; its nested supervisor is found with
``find``, by path).

A ``DynamicSupervisor`` (a pool: ``SupervisorMachine(pool=True,
max_children=...)``) is driven the same way from its template: ``start_child``
(``ChildLimitReached`` beyond ``max_children``), ``terminate_child`` by
handle, exits, waits and the ending. It stops its children at once, so the
stops of one group stop are compared as a set. Every handle is waited for
(``ChildHandle.wait()``) from the moment ``start_child`` returns it: after
each step, the handles whose wait has returned, and what it gave, must be
those of the children the core has removed for good (docs/design.md rule
39), told apart by the fact that removed them (``PoolEnds``); at the exit,
every other one. A waiter that comes after the end must get the same.

Watched workers (``ChildSpec.heartbeat``) heartbeat until a Hang step; the
real supervisor then judges them hung once phi crosses the threshold, and the
core decides (``ChildJudgedHung`` -> ``CancelChild``). A hung worker may also
end by itself just before, at or after the instant of its verdict.

What the oracle cannot know is taken from the real run, and only that:

* When several children end at once, or as an API call is made, trio decides
  the order in which their exits reach the supervisor. The oracle takes the
  call first (the caller queues it before the children run), then the exits in
  the order the children logged them; a child that logged its end before the
  call's turn is gone by then (OTP: its exit signal is in the mailbox). Within
  such a step the exits and the API result are compared apart from the stops
  and starts they cause.
* When a verdict came: the hang detector measures, the oracle cannot. Each
  verdict the real runtime feeds its machine is noted (``_VerdictSpy``: only
  its instant and child id), and the oracle feeds its own machine a verdict
  about the incarnation alive *there*, at that instant of its virtual clock,
  with the verdicts of one instant fed together, as ``Runtime._judge_hung``
  does. A hung worker that ends by itself is an exit at the instant the real
  log gives; if it ended first the runtime drops its verdict, if the verdict
  came first it is cancelled and logs ``["exit", id, "hung"]``.
* A child whose ``fn`` takes no ``task_status`` counts as started when its
  task is spawned, so when it first runs and logs "start" is up to trio's
  scheduler: such "start" entries are compared per child, not in the global
  order.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    ChildFailed,
    ChildFailureEscalated,
    ChildHandle,
    ChildHung,
    ChildInfo,
    ChildLimitReached,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    ChildTerminated,
    DynamicSupervisor,
    Heartbeat,
    Restart,
    RestartIntensityExceeded,
    RestartRecord,
    Strategy,
    Supervisor,
    SupervisorError,
    SupervisorGaveUp,
    SupervisorNotRunning,
    current_child,
)
from trio_smith._core._protocol import (
    CancelChild,
    ChildExited,
    ChildJudgedHung,
    ChildStarted,
    ChildStopped,
    Command,
    Exit,
    ExitKind,
    ExitReason,
    Input,
    Reply,
    ReplyOutcome,
    StartChild,
    StartFailed,
    StartIgnored,
    StopChild,
    TerminateChildRequested,
)
from trio_smith._core._supervision import SupervisorMachine
from trio_smith._supervision._context import ChildContext, hung_verdict
from trio_smith._supervision._runtime import Runtime

from ..core.sim import MachineLike, Sim, machine

#: The id of the child that runs a nested supervisor, and of its own such child.
NESTED = "sup"
NESTED2 = "sup2"
#: A DynamicSupervisor's template id: its children are "w-1", "w-2"...
POOL = "w"
#: The name of the supervisor under test (its default name).
ROOT = "supervisor"
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
    #: Watched for hangs with this ``Heartbeat.interval``: it heartbeats
    #: every interval until a Hang step.
    heartbeat: float | None = None


@attrs.frozen
class Tree:
    """The child ``id``: a supervisor of grandchildren, and maybe of a ``sub`` tree."""

    position: int
    restart: Restart
    shutdown: float | None
    strategy: Strategy
    max_restarts: int
    within: float
    kids: tuple[Kid, ...]
    id: str = NESTED
    #: A child of this tree's supervisor that runs a supervisor in turn.
    sub: Tree | None = None
    #: Built with ``Supervisor.spec`` (else its function enters the supervisor).
    spec: bool = False


@attrs.frozen
class End:
    """Live workers end at once: (index among the live ones by id, crash?) each."""

    orders: tuple[tuple[int, bool], ...]


@attrs.frozen
class Wait:
    """Virtual time passes; due backoff timers fire and hung children are judged on the way."""

    seconds: float


@attrs.frozen
class Call:
    """An API call (``pick`` chooses its child) as workers end, like End's ``orders``."""

    op: str
    pick: int
    orders: tuple[tuple[int, bool], ...] = ()


@attrs.frozen
class Hang:
    """A live watched worker (``pick``) stops heartbeating.

    With ``end`` = (how, offset ms) it ends by itself (``how``: "crash" or
    "normal") ``offset`` ms from the instant its verdict is due: before it
    (the verdict never comes), at it (trio decides which comes first) or
    after it (too late: it is cancelled).
    """

    pick: int
    end: tuple[str, int] | None = None


Step = End | Wait | Call | Hang


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
class PoolPlan:
    """A ``DynamicSupervisor`` of ``template`` (id POOL); Call picks a handle to terminate."""

    template: Kid
    #: Start scripts of the n-th ``start_child``'s child (cycled), if it takes task_status.
    scripts: tuple[tuple[str, ...], ...]
    max_children: int | None
    max_restarts: int
    within: float
    backoff: Backoff | None
    steps: tuple[Step, ...]
    cancel: bool


@attrs.frozen
class CancelAt:
    """Cancel from outside during step ``step``, after ``ticks`` checkpoints."""

    step: int
    ticks: int


OPS = ("start_child", "restart_child", "terminate_child", "delete_child")
POOL_OPS = ("start_child", "start_child", "terminate_child")
OUTCOMES = st.sampled_from(("ok", "ok", "ok", "ok", "fail", "ignore"))
#: ``Heartbeat.interval`` of a watched worker: judged about 4.52 intervals
#: after its last heartbeat.
INTERVALS = (0.2, 0.3, 0.5)
BACKOFF = Backoff(initial=0.5, multiplier=2.0, maximum=2.0, reset_after=1.0)


def steps(together: int, ops: Sequence[str] = OPS, hang: bool = False) -> st.SearchStrategy[Step]:
    """Steps; up to ``together`` children end in one step; Hang steps if ``hang``."""
    order = st.tuples(st.integers(0, 7), st.booleans())
    ends = st.builds(End, orders=st.lists(order, min_size=1, max_size=together).map(tuple))
    racing = st.lists(order, max_size=together if together > 1 else 0).map(tuple)
    waits = st.builds(Wait, seconds=st.sampled_from((0.5, 1.0, 2.5, 6.0)))
    calls = st.builds(Call, op=st.sampled_from(ops), pick=st.integers(0, 9), orders=racing)
    options = [ends, ends, waits, calls]
    if ops is POOL_OPS:  # a pool starts empty: more starts, fewer ends
        options = [ends, waits, calls, calls]
    if hang:
        how = st.sampled_from(("crash", "normal"))
        end = st.none() | st.tuples(how, st.sampled_from((-1, 0, 0, 1)))
        hangs = st.builds(Hang, pick=st.integers(0, 7), end=end)
        options = [options[0], waits, waits, calls, hangs, hangs]
    return st.one_of(*options)


@st.composite
def kids(draw: st.DrawFn, prefix: str, low: int, high: int, hang: bool = False) -> tuple[Kid, ...]:
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
                heartbeat=draw(st.sampled_from((None, *INTERVALS))) if hang else None,
            )
        )
    return tuple(out)


@st.composite
def trees(draw: st.DrawFn, depth: int = 1, tree_id: str = NESTED, prefix: str = "g") -> Tree:
    return Tree(
        position=draw(st.integers(0, 5)),
        restart=draw(st.sampled_from(Restart)),
        shutdown=draw(st.sampled_from((None, 0.0))),
        strategy=draw(st.sampled_from(Strategy)),
        max_restarts=draw(st.integers(0, 2)),
        within=draw(st.sampled_from((1.0, 5.0))),
        kids=draw(kids(prefix, 0 if depth > 1 else 1, 3)),
        id=tree_id,
        sub=draw(trees(depth - 1, NESTED2, "h")) if depth > 1 else None,
        spec=draw(st.booleans()),
    )


@st.composite
def plans(draw: st.DrawFn, *, nested: bool = False, depth: int = 1, hang: bool = False) -> Plan:
    return Plan(
        strategy=draw(st.sampled_from(Strategy)),
        max_restarts=draw(st.integers(0, 4)),
        within=draw(st.sampled_from((1.0, 2.0, 5.0, 10.0))),
        backoff=draw(st.none() | st.just(BACKOFF)),
        kids=draw(kids("c", 0 if nested else 1, 4 if nested else 5, hang)),
        extra=draw(kids("n", 0, 2, hang)),
        tree=draw(trees(depth)) if nested else None,
        # One child at a time in a tree, and no exits racing API calls: the
        # Sim queues a parent's stop behind its children's exits, the runtime
        # interrupts at once (D5).
        steps=tuple(draw(st.lists(steps(1 if nested else 3, hang=hang), min_size=4, max_size=30))),
        cancel=draw(st.booleans()),
    )


@st.composite
def pool_plans(draw: st.DrawFn, *, hang: bool = False) -> PoolPlan:
    status = draw(st.booleans())
    return PoolPlan(
        template=Kid(
            id=POOL,
            restart=draw(st.sampled_from(Restart)),
            shutdown=draw(st.sampled_from((None, 0.0, GRACE))),
            status=status,
            script=(),
            heartbeat=draw(st.sampled_from(INTERVALS)) if hang else None,
        ),
        scripts=(
            tuple(tuple(s) for s in draw(st.lists(st.lists(OUTCOMES, max_size=3), min_size=1)))
            if status
            else ((),)
        ),
        max_children=draw(st.none() | st.integers(1, 4)),
        max_restarts=draw(st.integers(0, 4)),
        within=draw(st.sampled_from((1.0, 2.0, 5.0, 10.0))),
        backoff=draw(st.none() | st.just(BACKOFF)),
        steps=tuple(draw(st.lists(steps(3, POOL_OPS, hang), min_size=4, max_size=30))),
        cancel=draw(st.booleans()),
    )


# ---------------------------------------------------------------- the real children


class Crash(Exception):
    """What a scripted child raises when told to crash."""


class StartFailure(Exception):
    """What a scripted child raises before it has started."""


class Order:
    """Tells one incarnation of a worker to end (set once), or to hang."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.event = trio.Event()
        self.crash = False
        #: It stopped heartbeating.
        self.hung = False
        #: Its deadline is when a hung worker ends by itself (Hang.end).
        self.scope = trio.CancelScope()


class World:
    """What the real children share: the log, their scripts, their orders."""

    def __init__(self, scripts: Mapping[str, Sequence[str]]) -> None:
        self.trace: list[Entry] = []
        #: trio's clock at each entry of ``trace``.
        self.when: list[float] = []
        self.scripts = {child_id: deque(script) for child_id, script in scripts.items()}
        #: The live workers (grandchildren included), by id.
        self.orders: dict[str, Order] = {}
        #: The supervisor each nested child (NESTED, NESTED2) runs now.
        self.inner: dict[str, Supervisor] = {}
        #: What each pool handle's wait() gave, once it returned (``waited``).
        self.waits: dict[str, str] = {}
        #: Each worker incarnation's end entry (its index in ``trace``), to
        #: compare with how the child boundary classified that end.
        self.ends: list[tuple[int, ChildContext]] = []
        #: The supervisor under test (nested ones are found from it by path).
        self.root: Supervisor | DynamicSupervisor | None = None
        #: Each stop logged while its supervisor was stopping all its
        #: children (its shutdown, or giving up): the supervisor, the child,
        #: the supervisor's children in start order (R8.1).
        self.shutdown_stops: list[tuple[Runtime, str, list[str]]] = []

    def add(self, entry: Entry) -> None:
        self.trace.append(entry)
        self.when.append(trio.current_time())

    def stopped(self, ctx: ChildContext) -> None:
        """Log that its supervisor stopped ``ctx``'s child, noting it if that one was stopping."""
        owner = ctx._owner
        assert isinstance(owner, Runtime)
        if owner.machine.stopping:
            order = [info.id for info in owner.machine.which_children()]
            self.shutdown_stops.append((owner, ctx.id, order))
        self.add(["stop", ctx.id])

    def order(self, child_id: str, crash: bool) -> None:
        order = self.orders[child_id]
        order.crash = crash
        order.event.set()

    def hang(self, child_id: str, end: tuple[str, int] | None) -> None:
        """The worker stops heartbeating (and ends by itself around its verdict)."""
        order = self.orders[child_id]
        order.hung = True
        if end is not None:
            how, offset = end
            watch = order.ctx._watch
            assert watch is not None
            # When the real detector judges it (ms), now that no heartbeat follows.
            due = watch.state.suspect_at()
            assert due is not None
            order.crash = how == "crash"
            order.scope.deadline = (due + offset) / 1000


async def _first(*events: trio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with trio.open_nursery() as nursery:

        async def wait(event: trio.Event) -> None:
            await event.wait()
            nursery.cancel_scope.cancel()

        for event in events:
            nursery.start_soon(wait, event)


async def _beat(ctx: ChildContext, order: Order, interval: float) -> None:
    """Heartbeat every ``interval`` until told to hang (creation was the first beat)."""
    while True:
        await trio.sleep(interval)
        if order.hung:
            return
        ctx.heartbeat()


async def _wait(ctx: ChildContext, order: Order, graceful: bool) -> None:
    if graceful:
        await _first(order.event, ctx.stop_requested)
    else:
        await order.event.wait()


async def _work(world: World, graceful: bool, task_status: trio.TaskStatus[None]) -> str:
    """Logs its start and end; returns ``"<id>#<incarnation>"`` when it ends normally."""
    ctx = current_child()
    me = ctx.id
    result = f"{me}#{ctx.incarnation}"
    script = world.scripts.get(me)
    outcome = script.popleft() if script else "ok"
    world.add(["start", me, outcome])
    if outcome == "fail":
        raise StartFailure(f"{me} failed to start")
    if outcome == "ignore":
        return result
    order = Order(ctx)
    world.orders[me] = order
    task_status.started()
    stopped = True
    try:
        with order.scope:
            watch = ctx._watch
            if watch is None:
                await _wait(ctx, order, graceful)
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_beat, ctx, order, watch.heartbeat.interval)
                    await _wait(ctx, order, graceful)
                    nursery.cancel_scope.cancel()
        # An order that lost the race with a stop request: the supervisor
        # counts this end as a stop (R3.5), and so does the log.
        ended = order.event.is_set() or order.scope.cancelled_caught
        stopped = ctx.stop_requested.is_set() or not ended
    finally:
        del world.orders[me]
        kind = "crash" if order.crash else "normal"
        world.ends.append((len(world.trace), ctx))
        if hung_verdict(ctx) is not None:
            # Judged hung and cancelled: a failure whatever it did, even if
            # asked to stop after the verdict (_boundary, D26).
            world.add(["exit", me, "hung"])
        elif stopped:
            world.stopped(ctx)
        else:
            world.add(["exit", me, kind])
    if order.crash:
        raise Crash(f"{me} crashed")
    return result


async def plain_worker(world: World, graceful: bool) -> str:
    """A worker that counts as started as soon as its task is spawned."""
    return await _work(world, graceful, trio.TASK_STATUS_IGNORED)


async def status_worker(
    world: World, graceful: bool, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> str:
    """A worker whose start the supervisor awaits (it may fail or ignore)."""
    # Its start takes a scheduler round, in which a shutdown may interrupt it.
    await trio.lowlevel.checkpoint()
    return await _work(world, graceful, task_status)


async def _logged_tree(
    world: World, me: str, enter: Callable[[Callable[[], None]], Awaitable[None]]
) -> None:
    """Run a nested child's supervisor (``enter``), logging its start and end.

    ``enter`` calls its argument once the nested supervisor has started.
    """
    started = False

    def ready() -> None:
        nonlocal started
        world.add(["start", me, "ok"])
        started = True

    try:
        await enter(ready)
    except ChildStartFailed:
        world.add(["start", me, "fail"])
        raise
    except SupervisorGaveUp:
        world.add(["exit", me, "crash"])
        raise
    except BaseException:
        if not started:  # stopped while its supervisor was starting up
            world.add(["start", me, "aborted"])
        world.stopped(current_child())
        raise
    # Its supervisor only ends without an error when its parent stops it.
    world.stopped(current_child())


async def subtree(
    world: World,
    specs: tuple[ChildSpec, ...],
    tree: Tree,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A nested child the old way: its function enters a supervisor of ``specs``."""

    async def enter(ready: Callable[[], None]) -> None:
        async with Supervisor(
            specs, strategy=tree.strategy, max_restarts=tree.max_restarts, within=tree.within
        ) as inner:
            world.inner[tree.id] = inner
            ready()
            task_status.started()

    await _logged_tree(world, tree.id, enter)


class _LoggedStatus:
    """The ``task_status`` a ``.spec`` child's function is given: logs, then passes it on."""

    def __init__(
        self, world: World, path: str, ready: Callable[[], None], status: trio.TaskStatus[None]
    ) -> None:
        self.world, self.path, self.ready, self.status = world, path, ready, status

    def started(self, value: object = None) -> None:
        world = self.world
        assert world.root is not None
        inner = world.root.find(self.path)  # the nested supervisor, by its path
        assert isinstance(inner, Supervisor)
        world.inner[self.path.rpartition("/")[2]] = inner
        self.ready()
        self.status.started()


async def spec_tree(
    world: World,
    path: str,
    fn: Callable[..., Awaitable[object]],
    *args: object,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """A ``Supervisor.spec`` child: its own function, wrapped only to log."""

    async def enter(ready: Callable[[], None]) -> None:
        await fn(*args, task_status=_LoggedStatus(world, path, ready, task_status))

    await _logged_tree(world, path.rpartition("/")[2], enter)


# ---------------------------------------------------------------- hung verdicts


class _VerdictSpy(SupervisorMachine):  # type: ignore[misc]
    """A SupervisorMachine that notes every hung verdict the runtime feeds it.

    A real supervisor's machine is made one of these (``__class__``, same
    layout): the verdict is the runtime's measurement, which the oracle cannot
    make; what the core decides from it is compared.
    """

    __slots__ = ()

    def handle(self, input: Input, *, now: float) -> list[Command]:
        if type(input) is ChildJudgedHung:
            _VERDICTS.append((now, id(self), input.child_id))
        return super().handle(input, now=now)


#: (trio time, id of the machine, child id) of every verdict of the current run.
_VERDICTS: list[tuple[float, int, str]] = []


def spy_on(sup: Supervisor | DynamicSupervisor) -> int:
    """Make the supervisor's machine a _VerdictSpy; return the machine's id."""
    core = sup._rt.machine
    core.__class__ = _VerdictSpy
    return id(core)


# ---------------------------------------------------------------- the oracle


class TreeSim(Sim):
    """A Sim whose child ``nested`` runs an inner TreeSim: a fresh one per start (R5.7)."""

    def __init__(
        self,
        machine: MachineLike,
        starts: Mapping[str, Sequence[str]],
        make_inner: Callable[[], TreeSim] | None,
        nested: str = NESTED,
    ) -> None:
        super().__init__(machine, starts)
        self.make_inner = make_inner
        self.nested = nested
        self.inner: TreeSim | None = None
        #: Children that die just as the next API call's turn comes; their
        #: exit facts queue behind the call.
        self.dying: list[tuple[str, str]] = []
        #: Incarnations cancelled as hung by the verdicts being fed.
        self.hung_now: list[tuple[str, int]] = []

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

    def _do(self, command: Command) -> None:
        if isinstance(command, CancelChild):
            if self.alive.get(command.child_id) == command.incarnation:
                del self.alive[command.child_id]
                self.hung_now.append((command.child_id, command.incarnation))
            return
        super()._do(command)

    def judge(self, child_ids: Sequence[str], ends: Sequence[str]) -> None:
        """Verdicts found at one instant, fed at once (``Runtime._judge_hung``), then settle.

        Each is about the incarnation alive here; the cancelled ones end in
        the order of ``ends`` (trio's), after every verdict was fed.
        """
        if self._dead():
            return
        self.hung_now = []
        for child_id in child_ids:
            incarnation = self.alive.get(child_id, 0)
            self._feed(ChildJudgedHung(child_id=child_id, incarnation=incarnation))
            if self._dead():
                break
        cancelled = sorted(
            self.hung_now, key=lambda c: ends.index(c[0]) if c[0] in ends else len(ends)
        )
        for child_id, incarnation in cancelled:
            self.trace.append(["exit", child_id, "hung"])
            self.queue.append(
                ChildExited(
                    child_id=child_id,
                    incarnation=incarnation,
                    kind=ExitKind.ABNORMAL,
                    error=f"{child_id} hung",
                )
            )
        self.settle()

    def advance_to(self, target: float, *, inclusive: bool = True) -> None:
        """Fire the timers due before ``target`` (or at it), then set the clock to it."""
        timers = self._timers
        while timers and not self.exited:
            due, _, fact = timers[0]
            if due > target or (due == target and not inclusive):
                break
            heapq.heappop(timers)
            if fact.timer in self._cancelled:
                continue
            self.now = max(self.now, due)
            self.queue.append(fact)
            self._drain()
        self.now = max(self.now, target)
        self._end_step()

    def _start(self, command: StartChild) -> ChildStarted | StartFailed | StartIgnored:
        if command.child_id != self.nested or self.make_inner is None:
            return super()._start(command)
        inner = self.make_inner()
        # One log and one set of start scripts for the whole tree.
        inner.now, inner.trace, inner.outcomes = self.now, self.trace, self.outcomes
        self.inner = inner
        inner.boot()
        if inner.ended() is not None:
            self.trace.append(["start", self.nested, "fail"])
            return StartFailed(child_id=self.nested, error=f"{self.nested} failed to start")
        self.trace.append(["start", self.nested, "ok"])
        self.alive[self.nested] = command.incarnation
        return ChildStarted(child_id=self.nested)

    def _stop(self, command: StopChild) -> ChildStopped:
        if command.child_id == self.nested and self.nested in self.alive and self.inner:
            self.inner.now = self.now
            self.inner.stop()  # its children stop, in reverse order, before it ends
        return super()._stop(command)

    def running_inner(self) -> TreeSim | None:
        """The inner Sim, if the nested child is running."""
        inner = self.inner
        if self.nested in self.alive and inner is not None and inner.ended() is None:
            return inner
        return None


class PoolEnds:
    """A pool's machine, noting when and how the core ends each child for good (rule 39).

    A child ends for good when the machine removes it from its table while
    supervising: how is told by the fact that removed it (its own normal
    end gives its result, ``"<id>#<incarnation>"``; an abnormal one
    ``failed <error>``; a stop or ``terminate_child`` ``terminated``).
    Removed while shutting down, or never removed, it ended at the exit:
    ``failed <error>`` for the child whose failure made the pool give up,
    ``gave_up <reason>`` for the others then, ``shutdown`` for a plain
    shutdown. Only children whose ``start_child`` gave a handle count.
    """

    def __init__(self, core: SupervisorMachine) -> None:
        self.core = core
        #: What each handle's wait() must give, once the core ended it for good.
        self.ended: dict[str, str] = {}
        self.handles: set[str] = set()
        #: The incarnation of each child's last start (an ignored start's result).
        self.starts: dict[str, int] = {}

    def which_children(self) -> list[ChildInfo]:
        return self.core.which_children()

    def restart_history(self, now: float) -> tuple[RestartRecord, ...]:
        return self.core.restart_history(now)

    def handle(self, input: Input, *, now: float) -> list[Command]:
        before = {info.id for info in self.core.which_children()}
        commands = self.core.handle(input, now=now)
        exit = None
        for command in commands:
            if isinstance(command, StartChild):
                self.starts[command.child_id] = command.incarnation
            elif isinstance(command, Reply) and command.outcome in _HANDLED:
                self.handles.add(command.child_id)
            elif isinstance(command, Exit):
                exit = command
        if exit is not None:
            for child_id in self.handles - set(self.ended):
                self.ended[child_id] = self._at_exit(child_id, exit)
        elif not self.core.stopping:
            gone = before - {info.id for info in self.core.which_children()}
            for child_id in gone & self.handles:
                self.ended[child_id] = self._removed_by(input, child_id)
        return commands

    def _removed_by(self, fact: Input, child_id: str) -> str:
        if isinstance(fact, ChildExited):
            if fact.kind is ExitKind.NORMAL:
                return f"result {child_id}#{fact.incarnation}"
            return f"failed {fact.error}"
        if isinstance(fact, StartIgnored):
            return f"result {child_id}#{self.starts[child_id]}"
        assert isinstance(fact, ChildStopped | TerminateChildRequested), fact
        return "terminated"

    @staticmethod
    def _at_exit(child_id: str, exit: Exit) -> str:
        if exit.reason in (ExitReason.INTENSITY, ExitReason.ESCALATED):
            if child_id == exit.child_id and exit.error is not None:
                return f"failed {exit.error}"
            return f"gave_up {exit.reason.value}"
        return "shutdown"


#: A start that gives a handle.
_HANDLED = frozenset({ReplyOutcome.OK, ReplyOutcome.IGNORED})


async def waited(handle: ChildHandle) -> str:
    """What ``handle.wait()`` gives, written as ``PoolEnds`` writes it."""
    try:
        return f"result {await handle.wait()}"
    except ChildFailed as exc:
        return f"failed {describe(exc.__cause__)}"
    except ChildTerminated as exc:
        if exc.reason == "terminate_child":
            return "terminated"
        if exc.reason == "gave_up":
            kind = (
                ExitReason.INTENSITY
                if isinstance(exc.__cause__, RestartIntensityExceeded)
                else ExitReason.ESCALATED
            )
            return f"gave_up {kind.value}"
        return exc.reason


_ORACLE_KINDS = frozenset({"start", "stop", "exit", "exit_skipped", "api"})
_EXITS = frozenset({"exit", "exit_skipped"})
_REFUSALS: dict[type[Exception], str] = {
    ChildNotFound: "not_found",
    ChildRunning: "running",
    ChildRestarting: "restarting",
    ChildAlreadyPresent: "already_present",
    ChildAlreadyStarted: "already_started",
    ChildStartFailed: "start_failed",
    ChildLimitReached: "max_children",
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


def group_stops(entries: Sequence[Entry]) -> list[Entry]:
    """Each run of consecutive stops as a set (sorted): a pool stops its children at once."""
    out: list[Entry] = []
    run: list[Entry] = []
    for entry in [*entries, ["end"]]:
        if entry[0] == "stop":
            run.append(entry)
            continue
        out.extend(sorted(run, key=lambda e: str(e[1])))
        run = []
        out.append(entry)
    return out[:-1]


def describe(error: BaseException | None) -> object:
    """A real child error as the Sim writes it."""
    if error is None:
        return None
    if isinstance(error, SupervisorGaveUp):
        return f"{NESTED} crashed"
    if isinstance(error, ChildStartFailed):
        return f"{NESTED} failed to start"
    if isinstance(error, ChildHung):
        return f"{error.child_id} hung"
    return str(error)


def which(sup: Supervisor | DynamicSupervisor) -> list[ChildInfo]:
    """``which_children()`` without what only the shell knows (phi, heartbeat, restart time)."""
    return [
        attrs.evolve(info, phi=None, last_heartbeat=None, restart_at=None)
        for info in sup.which_children()
    ]


# ---------------------------------------------------------------- one run


class Run:
    """One schedule, on a real supervisor and on the oracle."""

    def __init__(self, plan: Plan | PoolPlan, cancel_at: CancelAt | None = None) -> None:
        self.plan = plan
        self.cancel_at = cancel_at
        #: Each child's depth: 0 for the supervisor's own, 1 for a tree's...
        self.depth: dict[str, int] = {}
        #: Each nested child's descendants.
        self.below: dict[str, set[str]] = {}
        self.static: list[ChildSpec] = []
        self.startable: list[ChildSpec] = []
        self.ids: list[str] = []
        #: A pool's template spec, the ids its children will get, their handles.
        self.template: ChildSpec | None = None
        self.counter = itertools.count(1)
        self.handles: dict[str, ChildHandle] = {}
        #: The oracle's view of the pool's ends for good; the helpers' nursery
        #: (waiters run there); what a wait after the end gave.
        self.ends: PoolEnds | None = None
        self.nursery: trio.Nursery | None = None
        self.late: dict[str, str] = {}
        if isinstance(plan, PoolPlan):
            self._pool_setup(plan)
        else:
            self._tree_setup(plan)
        #: Step boundaries: (index in the real log, index in the Sim's log,
        #: several children ended in the step that ends here).
        self.marks: list[tuple[int, int, bool]] = [(0, 0, False)]
        #: Where in the real log the exits of the current step start, the API
        #: call they raced with and its argument: what the oracle must replay.
        self.pending: tuple[int, Call | None, ChildSpec | str] | None = None
        #: A Wait step: verdicts and real log from where, the Sim's clock at its end.
        self.waiting: tuple[int, int, float] | None = None
        self.together = False
        #: Verdicts of the run; how many the oracle has taken; the top machine's id.
        self.verdicts = _VERDICTS
        self.verdicts.clear()
        self.taken = 0
        self.core = 0
        # What the run found.
        self.sup: Supervisor | DynamicSupervisor | None = None
        self.failure: SupervisorError | None = None
        self.cancelled = False
        self.leaked = 0
        self.marker: int | None = None
        self.final: list[ChildInfo] = []

    def _tree_setup(self, plan: Plan) -> None:
        trees: list[Tree] = []
        tree = plan.tree
        while tree is not None:
            trees.append(tree)
            tree = tree.sub
        every = (*plan.kids, *plan.extra, *(kid for t in trees for kid in t.kids))
        scripts = {kid.id: kid.script for kid in every}
        self.world = World(scripts)
        self.plain = {kid.id for kid in every if not kid.status}
        self.graceful = {kid.id for kid in every if kid.shutdown == GRACE}
        for kid in (*plan.kids, *plan.extra):
            self.depth[kid.id] = 0
        for level, t in enumerate(trees, 1):
            self.depth[t.id] = level - 1
            for kid in t.kids:
                self.depth[kid.id] = level
            self.below[t.id] = {k.id for u in trees[level - 1 :] for k in u.kids}
            self.below[t.id] |= {u.id for u in trees[level:]}
        specs = {kid.id: self._spec(kid) for kid in every}
        # Built from the deepest supervisor up: each level's spec of the
        # nested child, and how the oracle makes its inner Sim.
        nested: ChildSpec | None = None
        make_inner: Callable[[], TreeSim] | None = None
        for level, t in reversed(list(enumerate(trees))):
            inner_specs = [specs[kid.id] for kid in t.kids]
            if nested is not None:
                inner_specs.insert(min(trees[level + 1].position, len(inner_specs)), nested)
            nested = self._nested(t, tuple(inner_specs), [u.id for u in trees[: level + 1]])
            sub_id = trees[level + 1].id if level + 1 < len(trees) else NESTED
            make_inner = functools.partial(
                self._inner_sim, tuple(inner_specs), t, make_inner, sub_id
            )
        static = [specs[kid.id] for kid in plan.kids]
        if nested is not None:
            assert plan.tree is not None
            static.insert(min(plan.tree.position, len(static)), nested)
        self.static = static
        self.startable = [*static, *(specs[kid.id] for kid in plan.extra)]
        self.ids = [spec.id for spec in self.startable] + ["ghost"]
        core = machine(
            static,
            strategy=plan.strategy,
            max_restarts=plan.max_restarts,
            within=plan.within,
            backoff=plan.backoff,
        )
        self.sim = TreeSim(core, scripts, make_inner)

    def _nested(self, tree: Tree, specs: tuple[ChildSpec, ...], ids: list[str]) -> ChildSpec:
        """The spec of the child that runs ``tree``: the old way, or ``Supervisor.spec``'s."""
        if not tree.spec:
            args = (self.world, specs, tree)
            return ChildSpec(tree.id, subtree, args, restart=tree.restart, shutdown=tree.shutdown)
        real = Supervisor.spec(
            tree.id,
            specs,
            restart=tree.restart,
            shutdown=tree.shutdown,
            strategy=tree.strategy,
            max_restarts=tree.max_restarts,
            within=tree.within,
        )
        path = "/".join([ROOT, *ids])
        return attrs.evolve(real, fn=spec_tree, args=(self.world, path, real.fn, *real.args))

    @staticmethod
    def _inner_sim(
        specs: tuple[ChildSpec, ...],
        tree: Tree,
        make_inner: Callable[[], TreeSim] | None,
        nested: str,
    ) -> TreeSim:
        core = machine(
            specs, strategy=tree.strategy, max_restarts=tree.max_restarts, within=tree.within
        )
        return TreeSim(core, {}, make_inner, nested)

    def _pool_setup(self, plan: PoolPlan) -> None:
        # At most one new child per Call (terminate_child without a handle starts one).
        starts = sum(1 for s in plan.steps if isinstance(s, Call))
        ids = [f"{POOL}-{n}" for n in range(1, starts + 1)]
        template = plan.template
        scripts = {
            child_id: plan.scripts[n % len(plan.scripts)] if template.status else ()
            for n, child_id in enumerate(ids)
        }
        self.world = World(scripts)
        self.plain = set() if template.status else set(ids)
        self.graceful = set(ids) if template.shutdown == GRACE else set()
        self.depth = dict.fromkeys(ids, 0)
        self.template = self._spec(template)
        core = machine(
            [],
            pool=True,
            max_children=plan.max_children,
            max_restarts=plan.max_restarts,
            within=plan.within,
            backoff=plan.backoff,
        )
        self.ends = PoolEnds(core)
        self.sim = TreeSim(self.ends, scripts, None)
        self.sim.pool = True  # terminating a child that is gone is fine

    def _spec(self, kid: Kid) -> ChildSpec:
        fn = status_worker if kid.status else plain_worker
        args = (self.world, kid.shutdown == GRACE)
        heartbeat = None if kid.heartbeat is None else Heartbeat(kid.heartbeat)
        return ChildSpec(
            kid.id, fn, args, restart=kid.restart, shutdown=kid.shutdown, heartbeat=heartbeat
        )

    # ------------------------------------------------------------ the real run

    def _open(self) -> Supervisor | DynamicSupervisor:
        plan = self.plan
        if isinstance(plan, PoolPlan):
            assert self.template is not None
            return DynamicSupervisor(
                self.template,
                max_children=plan.max_children,
                max_restarts=plan.max_restarts,
                within=plan.within,
                backoff=plan.backoff,
            )
        return Supervisor(
            self.static,
            strategy=plan.strategy,
            max_restarts=plan.max_restarts,
            within=plan.within,
            backoff=plan.backoff,
        )

    async def main(self) -> None:
        before = trio.lowlevel.current_statistics().tasks_living
        plan, at = self.plan, self.cancel_at
        self.sim.boot()
        with trio.fail_after(1000):  # virtual time: turns a deadlock into an error
            async with trio.open_nursery() as helpers:
                self.nursery = helpers
                with trio.CancelScope() as outer:
                    try:
                        supervisor = self._open()
                        self.core = spy_on(supervisor)
                        self.world.root = supervisor
                        async with supervisor as sup:
                            self.sup = sup
                            await self._step_and_check(sup, None, "start-up")
                            for index, step in enumerate(plan.steps):
                                if at is not None and at.step == index:
                                    helpers.start_soon(self._cancel_later, at.ticks, outer)
                                await self._step_and_check(sup, step, f"step {index} {step}")
                            self.sim.stop()
                            if at is not None:  # the cancellation comes at the end
                                helpers.start_soon(self._cancel_later, at.ticks, outer)
                                await trio.sleep_forever()
                            elif plan.cancel:
                                outer.cancel()
                                await trio.lowlevel.checkpoint()
                            else:
                                await sup.shutdown()
                    except SupervisorError as exc:
                        self.failure = exc
                self.cancelled = outer.cancelled_caught
            for handle in self.handles.values():  # waiters that come after the end
                self.late[handle.id] = await waited(handle)
        self.leaked = trio.lowlevel.current_statistics().tasks_living - before
        if self.sup is not None:  # phi needs trio's clock
            self.final = self.sup.which_children()
        self.marks.append((len(self.world.trace), len(self.sim.trace), False))

    async def _wait_for(self, handle: ChildHandle) -> None:
        self.world.waits[handle.id] = await waited(handle)

    async def _cancel_later(self, ticks: int, outer: trio.CancelScope) -> None:
        for _ in range(ticks):
            await trio.lowlevel.checkpoint()
        self.marker = len(self.world.trace)
        outer.cancel()

    async def _step(self, sup: Supervisor | DynamicSupervisor, step: Step) -> None:
        """Run one step on the real supervisor; the oracle replays it (``replay``)."""
        world = self.world
        if isinstance(step, Wait):
            until = self.sim.now + step.seconds
            self.waiting = (len(self.verdicts), len(world.trace), until)
            await trio.sleep(step.seconds)
            return
        if isinstance(step, Hang):
            watched = [
                child_id
                for child_id, order in sorted(world.orders.items())
                if order.ctx._watch is not None and not order.hung
            ]
            if watched:
                world.hang(watched[step.pick % len(watched)], step.end)
            return
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
        arg: ChildSpec | str = ""
        op = ""
        if call is not None:
            arg = self._argument(call)
            op = "start_child" if isinstance(arg, ChildSpec) else call.op
        self.pending = (len(world.trace), call, arg)
        self.together = len(targets) + (call is not None) > 1
        for target, crash in targets.items():
            world.order(target, crash)  # they run once this task waits
        if call is not None:
            # Queued at once, so ahead of the exits of the children just told to end.
            result = await self._call(sup, op, arg)
            child_id = arg.id if isinstance(arg, ChildSpec) else arg
            world.add(["api", op, child_id, result])

    def _argument(self, call: Call) -> ChildSpec | str:
        if self.template is not None:  # a pool: a new child, or a handle's
            if call.op == "start_child" or not self.handles:
                return attrs.evolve(self.template, id=f"{POOL}-{next(self.counter)}")
            return sorted(self.handles)[call.pick % len(self.handles)]
        if call.op == "start_child":
            return self.startable[call.pick % len(self.startable)]
        return self.ids[call.pick % len(self.ids)]

    async def _call(
        self, sup: Supervisor | DynamicSupervisor, op: str, arg: ChildSpec | str
    ) -> str:
        try:
            if isinstance(sup, DynamicSupervisor):
                if isinstance(arg, ChildSpec):
                    handle = await sup.start_child()
                    assert handle.id == arg.id, (handle, arg.id)
                    self.handles[handle.id] = handle
                    assert self.nursery is not None
                    self.nursery.start_soon(self._wait_for, handle)
                else:
                    await sup.terminate_child(self.handles[arg])
            elif isinstance(arg, ChildSpec):
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
        if self.waiting is not None:
            self._replay_wait()
        assert self.taken == len(self.verdicts), "a verdict came outside a Wait step"
        if self.pending is None:
            return
        (start, call, arg), self.pending = self.pending, None
        sim = self.sim
        exits = [(e[1], e[2]) for e in self.world.trace[start:] if e[0] == "exit"]
        if call is not None:
            sim.dying = exits  # dead before the call's turn, queued behind it
            sim.api("start_child" if isinstance(arg, ChildSpec) else call.op, arg)
            sim.dying, exits = [], []
        for child_id, reason in exits:
            if not self.depth.get(child_id, 0):
                sim.exit(child_id, reason, settle=False)
                continue
            inner = self._sim_of(child_id)
            if inner is None:
                sim.trace.append(["exit_skipped", child_id])
            else:
                inner.exit(child_id, reason)
        sim.settle()

    def _sim_of(self, child_id: str) -> TreeSim | None:
        """The running Sim that holds the child, its clock set, or None."""
        sim = self.sim
        for _ in range(self.depth.get(child_id, 0)):
            inner = sim.running_inner()
            if inner is None:
                return None
            inner.now = sim.now
            sim = inner
        return sim

    def _replay_wait(self) -> None:
        """Time passed: timers, verdicts and hung workers ending by themselves, in time order."""
        assert self.waiting is not None
        (first, start, target), self.waiting = self.waiting, None
        world, sim = self.world, self.sim
        verdicts = self.verdicts[first:]
        self.taken = len(self.verdicts)
        assert all(core == self.core for _, core, _ in verdicts), "a verdict in a tree"
        # (time, position in the real log, what): a batch of verdicts goes where
        # its first cancelled child logged its end (first at its instant if none).
        events: list[tuple[float, float, list[str] | tuple[str, str]]] = []
        for when, batch in itertools.groupby(verdicts, key=lambda v: v[0]):
            ids = [child_id for _, _, child_id in batch]
            ends = [
                i
                for i in range(start, len(world.trace))
                if world.trace[i][:3] == ["exit", world.trace[i][1], "hung"]
                and world.trace[i][1] in ids
                and world.when[i] == when
            ]
            events.append((when, min(ends, default=-1), ids))
        for i in range(start, len(world.trace)):
            entry = world.trace[i]
            if entry[0] == "exit" and entry[2] != "hung":
                events.append((world.when[i], i, (entry[1], entry[2])))
        for when, _, what in sorted(events, key=lambda e: e[:2]):
            sim.advance_to(when, inclusive=False)
            if isinstance(what, list):
                self.together |= len(what) > 1
                hung = [e[1] for e in world.trace[start:] if e[0] == "exit" and e[2] == "hung"]
                sim.judge(what, hung)
            else:
                sim.exit(*what)
        sim.advance_to(max(target, sim.now))

    async def _step_and_check(
        self, sup: Supervisor | DynamicSupervisor, step: Step | None, where: str
    ) -> None:
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
        assert which(sup) == self.sim.machine.which_children(), where
        self.check_waits(where)
        sim = self.sim
        while (inner := sim.running_inner()) is not None:
            real = self.world.inner.get(sim.nested)
            assert real is not None
            assert which(real) == inner.machine.which_children(), f"{where}: {sim.nested}"
            sim = inner

    # ------------------------------------------------------------ checks

    def check_traces(self, where: str) -> None:
        """Each step's real log equals the oracle's, as the module docstring says."""
        real, expected = self.world.trace, self.sim.trace
        plain = self.plain
        pool = self.template is not None

        def timed(entries: Sequence[Entry], together: bool) -> list[Entry]:
            kept = [e for e in entries if not (e[0] == "start" and e[1] in plain)]
            if together:
                exits = [e for e in kept if e[0] in _EXITS]
                calls = [e for e in kept if e[0] == "api"]
                kept = exits + calls + [e for e in kept if e[0] not in _EXITS and e[0] != "api"]
            # Grouped once the exits and the call are set apart: the caller,
            # answered before the exit that makes a pool give up, logs its
            # result when trio runs it, which may be amid the pool's stops.
            return group_stops(kept) if pool else kept

        for (r0, s0, _), (r1, s1, together) in itertools.pairwise(self.marks):
            mine = timed(real[r0:r1], together)
            theirs = timed(oracle_entries(expected[s0:s1]), together)
            assert mine == theirs, f"{where}: the log differs from step mark {r0}/{s0} on"
        expected = oracle_entries(expected)
        for child_id in {e[1] for e in expected + real if e[0] != "api"}:
            mine = [e for e in real if e[1] == child_id and e[0] != "api"]
            theirs = [e for e in expected if e[1] == child_id and e[0] != "api"]
            assert mine == theirs, f"{where}: child {child_id!r} differs"

    def check_waits(self, where: str) -> None:
        """The handles whose wait() returned, and what it gave, are the core's ends for good."""
        if self.ends is None:
            return
        assert set(self.handles) == self.ends.handles, where
        assert self.world.waits == self.ends.ended, where

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
            statuses = {info.id: info.status for info in self.final}
            assert set(statuses.values()) <= {ChildStatus.STOPPED}, statuses
        for index, ctx in self.world.ends:
            # The log's "hung" is the boundary's: the end it gave the runtime
            # is the incarnation's ChildHung exactly when it was judged hung.
            if ctx._ended and not ctx._escaped:
                logged = self.world.trace[index] == ["exit", ctx.id, "hung"]
                assert logged == isinstance(ctx._error, ChildHung), (ctx.id, ctx._error)

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


def run(plan: Plan | PoolPlan, cancel_at: CancelAt | None = None) -> Run:
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


#: A ``Supervisor.spec`` tree gives up (max_restarts=0) and is started
#: afresh by its parent (R5.7), twice; then a sibling crashes.
SPEC_TREE_GIVES_UP = _plan(
    Strategy.ONE_FOR_ONE,
    (_kid("c0"),),
    End(((1, True),)),  # g0 crashes: the tree gives up, its parent restarts it
    End(((1, False),)),  # g0 returns: permanent, so the fresh tree gives up too
    End(((0, True),)),
    tree=Tree(
        position=1,
        restart=Restart.PERMANENT,
        shutdown=None,
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=0,
        within=5.0,
        kids=(_kid("g0", "ok"),),
        spec=True,
    ),
)


@settings(max_examples=150)
@given(plans(nested=True))
@example(SPEC_TREE_GIVES_UP)
def test_a_nested_tree_behaves_as_the_composed_cores(plan: Plan) -> None:
    """A child running a supervisor: its children stop first; giving up is its failure."""
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()


#: Two levels deep: h0 returns as the cancellation comes; sup2, which its
#: parent stops only a few scheduler rounds later (D19), restarts all three
#: first (one_for_all: h2 and h1 stopped, all started), then stops them in
#: reverse order. Cancelled at step 1, after no tick.
RESTART_BEFORE_ITS_TURN = _plan(
    Strategy.ONE_FOR_ONE,
    (),
    Wait(0.5),
    End(((0, False),)),
    max_restarts=0,
    within=1.0,
    tree=Tree(
        position=0,
        restart=Restart.PERMANENT,
        shutdown=None,
        strategy=Strategy.ONE_FOR_ONE,
        max_restarts=0,
        within=1.0,
        kids=(),
        sub=Tree(
            position=0,
            restart=Restart.PERMANENT,
            shutdown=None,
            strategy=Strategy.ONE_FOR_ALL,
            max_restarts=1,
            within=1.0,
            kids=(_kid("h0"), _kid("h1"), _kid("h2")),
            id=NESTED2,
        ),
    ),
)


def _decreasing(ids: Sequence[str], order: Sequence[str]) -> bool:
    positions = [order.index(child_id) for child_id in ids]
    return all(a > b for a, b in itertools.pairwise(positions))


@settings(max_examples=200)
@given(
    plans(nested=False) | plans(nested=True) | plans(nested=True, depth=2),
    st.integers(0, 30),
    st.integers(0, 12),
)
@example(CANCEL_MID_JOB, 0, 0)
@example(CANCEL_MID_JOB, 1, 0)
@example(CANCEL_MID_JOB, 2, 0)
@example(RESTART_BEFORE_ITS_TURN, 1, 0)
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
    # Each supervisor stops its children in reverse start order (R8.1) from
    # the moment it begins to stop them all. A nested one begins when its
    # parent stops it (D19), not when the cancellation comes: until then it
    # may still restart a child that ended meanwhile, stopping others for
    # that (its strategy), and only what is under way then is cut short (D5).
    mine: dict[Runtime, list[str]] = {}
    orders: dict[Runtime, list[str]] = {}
    for owner, child_id, order in r.world.shutdown_stops:
        mine.setdefault(owner, []).append(child_id)
        orders.setdefault(owner, order)
    for owner, ids in mine.items():
        # The first may be a stop that was already under way.
        assert _decreasing(ids[1:], orders[owner]), (owner.name, ids, orders[owner])
    stops = [e[1] for e in r.world.trace[r.marker :] if e[0] == "stop"]
    for nested, below in r.below.items():
        if nested in stops:
            last = len(stops) - 1 - stops[::-1].index(nested)
            assert not set(stops[last:]) & below, f"descendants stopped after {nested}"


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


@settings(max_examples=100)
@given(plans(nested=True, depth=2))
def test_a_tree_two_levels_deep_behaves_as_the_composed_cores(plan: Plan) -> None:
    """A child runs a supervisor whose child runs a supervisor: each level as its core says."""
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()


def _pool(template: Kid, *steps: Step, **more: Any) -> PoolPlan:
    fields: dict[str, Any] = dict(
        scripts=((),), max_children=None, max_restarts=3, within=5.0, backoff=None, cancel=False
    )
    fields.update(more)
    return PoolPlan(template=template, steps=steps, **fields)


#: A full pool refuses, then takes a child again once one is gone; the
#: refused start uses up an id as the real DynamicSupervisor's counter does.
POOL_LIMIT = _pool(
    Kid(POOL, Restart.TRANSIENT, GRACE, True, ()),
    Call("start_child", 0),
    Call("start_child", 0),
    Call("start_child", 0),  # w-3: max_children
    End(((0, False),)),  # w-1 returns: transient, removed
    Call("start_child", 0),  # w-4 fails to start, w-5 is ignored
    Call("start_child", 0),
    Call("start_child", 0),
    Call("terminate_child", 0),
    Call("terminate_child", 0),  # a handle whose child is gone: fine
    End(((0, True), (1, True))),
    scripts=((), (), (), ("fail",), ("ignore",), ()),
    max_children=2,
)
#: Handles of every kind of end: a child returns (its result), one is
#: terminated, and the pool gives up over one that crashes twice (it failed;
#: the one still running was stopped because the pool gave up).
POOL_GIVES_UP = _pool(
    Kid(POOL, Restart.TRANSIENT, None, True, ()),
    Call("start_child", 0),
    Call("start_child", 0),
    Call("start_child", 0),
    Call("start_child", 0),
    End(((0, False),)),  # w-1 returns
    Call("terminate_child", 1),  # w-2
    End(((0, True),)),  # w-3 crashes: restarted (transient)
    End(((0, True),)),  # and again: one restart too many
    max_restarts=1,
)
#: Watched pool children: one hangs and is cancelled, one hangs and crashes
#: by itself 1 ms before its verdict, one at the very instant of it.
POOL_HUNG = _pool(
    Kid(POOL, Restart.PERMANENT, None, False, (), heartbeat=0.2),
    Call("start_child", 0),
    Call("start_child", 0),
    Call("start_child", 0),
    Hang(0),
    Wait(2.5),
    Hang(1, ("crash", -1)),
    Hang(2, ("normal", 0)),
    Wait(2.5),
    Wait(2.5),
)

#: Two children judged hung at one instant: the first one's end exceeds the
#: intensity and the pool gives up, asking the other, already cancelled as
#: hung, to stop. Its end is still a hung failure (D26), absorbed by the
#: shutdown (D16), not a stop.
POOL_HUNG_THEN_GIVES_UP = _pool(
    Kid(POOL, Restart.PERMANENT, GRACE, False, (), heartbeat=0.2),
    End(((0, False),)),
    Call("start_child", 0),
    End(((0, False),)),
    Call("start_child", 0, ((0, False),)),
    Wait(0.5),
    Hang(0),
    Hang(0),
    End(((0, False), (0, False))),
    Wait(1.0),
    max_restarts=2,
    within=2.0,
)

#: Three permanent children return within a second: the last return gives
#: up (the fourth restart) as a start_child, queued first, is refused at
#: max_children; its caller may log that between the pool's two stops.
POOL_REFUSED_AS_IT_GIVES_UP = _pool(
    Kid(POOL, Restart.PERMANENT, None, True, ()),
    Call("start_child", 0),
    Call("start_child", 0, ((0, False),)),
    Call("start_child", 0, ((0, False), (1, False))),
    Call("start_child", 0, ((0, False),)),
    max_children=3,
    within=1.0,
)


@settings(max_examples=150)
@given(pool_plans() | pool_plans(hang=True))
@example(POOL_LIMIT)
@example(attrs.evolve(POOL_LIMIT, cancel=True))
@example(POOL_HUNG)
@example(POOL_GIVES_UP)
@example(POOL_HUNG_THEN_GIVES_UP)
@example(POOL_REFUSED_AS_IT_GIVES_UP)
def test_a_dynamic_supervisor_runs_its_pool_exactly_as_the_core_decides(plan: PoolPlan) -> None:
    """start_child (to the limit), terminate_child by handle, exits, hangs, the group stop.

    Every handle's wait() returns when, and with what, the core ends its child for good.
    """
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()
    r.check_waits("end")
    assert r.late == r.world.waits
    exit = r.sim.ended()
    if plan.cancel and exit is not None and exit.reason is ExitReason.SHUTDOWN:
        assert r.cancelled, "the outer cancellation escaped its scope"


@settings(max_examples=60)
@given(pool_plans() | pool_plans(hang=True), st.integers(0, 30), st.integers(0, 12))
def test_a_pool_cancelled_from_outside_at_any_moment_stops_everything(
    plan: PoolPlan, step: int, ticks: int
) -> None:
    """Cancelled mid-step: every pool child stops (in any order), nothing is left.

    Every handle's wait() has returned, and a wait after the end gives the same.
    """
    r = run(plan, CancelAt(step=step % (len(plan.steps) + 1), ticks=ticks))
    r.check_nothing_left()
    assert set(r.world.waits) == set(r.handles)
    assert r.late == r.world.waits
    if r.failure is not None:
        assert not r.cancelled
        r.replay()
        r.check_outcome()
        return
    assert r.marker is not None, "the cancellation never came"
    assert r.cancelled, "the cancellation escaped its scope"


def _watched(child_id: str, interval: float, *script: str, **more: Any) -> Kid:
    fields: dict[str, Any] = dict(restart=Restart.PERMANENT, shutdown=None)
    fields.update(more)
    return Kid(child_id, status=bool(script), script=script, heartbeat=interval, **fields)


#: Two children hang at once with the same history: one instant, two verdicts.
HUNG_TOGETHER = _plan(
    Strategy.ONE_FOR_ALL,
    (_watched("c0", 0.2), _watched("c1", 0.2), _kid("c2")),
    Hang(0),
    Hang(0),
    Wait(6.0),
    Wait(1.0),
)
#: Verdicts racing a child's own end, under a restart strategy that stops siblings.
HUNG_RACES = _plan(
    Strategy.REST_FOR_ONE,
    (
        _watched("c0", 0.3, restart=Restart.TRANSIENT),
        _watched("c1", 0.2, "ok", "fail", "ok"),
        _watched("c2", 0.5, shutdown=GRACE),
    ),
    Hang(0, ("normal", 0)),
    Hang(0, ("crash", 1)),
    Wait(2.5),
    Hang(2, ("normal", -1)),
    Wait(6.0),
    Hang(0),
    Hang(0),
    Hang(0),
    Wait(6.0),
    backoff=BACKOFF,
)
#: A hung child's verdicts exhaust the intensity: the supervisor gives up.
HUNG_GIVES_UP = _plan(
    Strategy.ONE_FOR_ONE,
    (_watched("c0", 0.2), _kid("c1")),
    Hang(0),
    Wait(2.5),
    Hang(0),
    Wait(2.5),
    max_restarts=1,
)


@settings(max_examples=150)
@given(plans(hang=True))
@example(HUNG_TOGETHER)
@example(HUNG_RACES)
@example(HUNG_GIVES_UP)
def test_hung_children_are_cancelled_exactly_when_the_core_decides(plan: Plan) -> None:
    """Watched children hang (and may end around their verdict): same log, children, outcome."""
    r = run(plan)
    r.check_traces("end")
    r.check_outcome()
    r.check_nothing_left()

"""The demo's system: a supervised multi-agent tree under chaos, and ``run_demo``.

The tree (start order; each group is a sub-supervisor)::

    demo (ONE_FOR_ONE, generous intensity)
    ├── tools         runs the search-api breaker's timers (breaker.run)
    ├── researchers   researcher-1, researcher-2: search through a Retry
    │                 around the breaker (resilience.compose)
    ├── coders        coder-1, coder-2: delegate research, then write code;
    │                 gives up after 3 restarts within 1 s
    ├── analysts      analyst-1, analyst-2: analyze, and every unknown type
    ├── indexer       a real program (os_process): READY=1, WATCHDOG=1,
    │                 STATUS=...; crashes now and then under chaos
    └── hub           submits the seeded stream of tasks through the router

Every agent is a ``Registry.agent`` with a ``Heartbeat``, so the
phi-accrual detector watches it. A director outside the tree plays the
:class:`~._demo_plan.Timeline` (outage, hang, burst) and publishes a
``chaos.*`` event for each step; workers publish ``chaos.crash_injected``
and ``chaos.hang_injected`` in the causal chain of the task that did it.
All events (supervision, agent, routing, circuit breaker, chaos) go through
one ``EventBus`` into the event store (an SQLite file, or PostgreSQL).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Final, final
from uuid import UUID

import attrs
import trio

from .. import (
    ChildSpec,
    Heartbeat,
    Ready,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    TreeNode,
    current_child,
    os_process,
)
from ..events import (
    Event,
    EventBus,
    EventFilter,
    EventStore,
    EventType,
    Overflow,
    Subscription,
    caused_by,
    current_cause,
    uuid7,
)
from ..resilience import CallNotPermitted, CircuitBreaker, CircuitState, Retry, compose
from ..routing import AgentNotFound, Registry, Router, RoutingError, Task
from ._demo_plan import DemoConfig, Job, Plan, Timeline
from ._demo_view import (
    DEMO_SUBTREES,
    NOTABLE_TYPES,
    AgentView,
    ChaosEvent,
    DemoEvent,
    GroupView,
    Observer,
    Reporter,
    Snapshot,
    Summary,
    TaskCounts,
    TraceChoice,
)
from ._stores import is_database_url, make_store, shown

__all__ = ["ROOT", "ChaosCrash", "DemoSystem", "ToolUnavailable", "causal_depth", "run_demo"]

#: The root supervisor's name: the first part of every supervision source.
ROOT: Final = "demo"
TOOL: Final = "search-api"

#: Seconds a hub task may wait for its reply, and a coder for its research.
#: A coder does not heartbeat while it waits, so its detector tolerates
#: longer silences than the others' (see HEARTBEATS).
REQUEST_TIMEOUT: Final = 2.0
DELEGATION_TIMEOUT: Final = 0.6

#: A researcher's search makes this many attempts (a Retry around the
#: breaker): the second hides the tool's occasional failure, and in an
#: outage it doubles the failures the breaker sees, so it opens within a
#: few tasks even in a short run.
SEARCH_ATTEMPTS: Final = 2

#: How often a busy worker heartbeats (half the detector's interval).
BEAT: Final = 0.05

#: The detectors: a worker silent for about 0.45 s (``4.52 * interval``,
#: see ``Heartbeat``) is judged hung; coders, which wait up to
#: DELEGATION_TIMEOUT for their research, get a longer acceptable pause
#: (judged hung after about 1.16 s of silence).
HEARTBEATS: Final = {
    "researcher": Heartbeat(0.1),
    "coder": Heartbeat(0.1, acceptable_pause=1.0),
    "analyst": Heartbeat(0.1),
}

#: The sub-supervisors: (name, role, agents, max_restarts, within). The
#: coders' intensity is tight on purpose: the scripted burst of crashes
#: exceeds it (an escalation). At the default chaos (0.1, about 5 code
#: tasks a second, 0.5 crashes) 4 random crashes within 1 s are rare,
#: about one run in 30 at the default 20 s. The others
#: tolerate the random chaos: researchers take about 12 calls a second
#: (delegations included), so about 6 crashes in 5 s, rarely 16.
GROUPS: Final = (
    ("researchers", "researcher", 2, 15, 5.0),
    ("coders", "coder", 2, 3, 1.0),
    ("analysts", "analyst", 2, 15, 5.0),
)

#: The root restarts a group that gave up (the escalation's other half);
#: it gives up itself only if groups keep failing, as they may at --chaos 1.
ROOT_INTENSITY: Final = (30, 10.0)

#: What the demo's subscription takes.
NOTABLE: Final = EventFilter(types=NOTABLE_TYPES)


class ChaosCrash(Exception):
    """The injected failure that crashes a worker (``--chaos``, the burst)."""


class ToolUnavailable(Exception):
    """The flaky search tool failed a call (the breaker records these)."""


@final
@attrs.frozen(kw_only=True, slots=True)
class Answer:
    """A worker's reply.

    Attributes:
        worker: who answered.
        text: the answer.
        degraded: a fallback answer (no tool, no research), not a full one.
    """

    worker: str
    text: str
    degraded: bool = False


async def busy(seconds: float) -> None:
    """Simulate ``seconds`` of work, heartbeating all along (it is progress, not a hang)."""
    child = current_child()
    end = trio.current_time() + seconds
    while (left := end - trio.current_time()) > 0:
        child.heartbeat()
        await trio.sleep(min(left, BEAT))
    child.heartbeat()


@final
class SearchTool:
    """The flaky external search tool: down during the outage, and now and then otherwise."""

    def __init__(self, timeline: Timeline, start: Callable[[], float]) -> None:
        self.timeline = timeline
        self._start = start
        self.calls = 0
        #: The jobs whose one transient failure has happened.
        self._failed_once: set[str] = set()

    async def search(self, job: Job) -> str:
        """Search for ``job.topic``; its latency is ``job.work``.

        Raises:
            ToolUnavailable: during the outage; or once for a job whose draw
                says so (a transient failure: a retry works).
        """
        self.calls += 1
        await trio.sleep(job.work)
        if self.timeline.in_outage(trio.current_time() - self._start()):
            raise ToolUnavailable(f"{TOOL}: 503 Service Unavailable")
        if job.tool_fails and job.label not in self._failed_once:
            self._failed_once.add(job.label)
            raise ToolUnavailable(f"{TOOL}: 502 Bad Gateway")
        return f"{3 + len(job.topic) % 5} results on {job.topic}"


@final
class DemoSystem:
    """The agents, the router, the breaker and the hub; counters; snapshots.

    Args:
        config: the run's settings.
        bus: where every component publishes.
        observer: counts the notable events (for snapshots).
    """

    def __init__(self, config: DemoConfig, bus: EventBus, observer: Observer) -> None:
        self.config = config
        self.bus = bus
        self.observer = observer
        self.timeline = Timeline.for_duration(config.duration)
        self.plan = Plan(seed=config.seed, chaos=config.chaos, rate=config.rate)
        #: trio time when the run began (set by ``run``).
        self.start = 0.0
        self.registry = Registry(
            events=bus, mailbox_size=16, restart_wait=1.0, request_timeout=REQUEST_TIMEOUT
        )
        self.router = Router(
            self.registry,
            {"research": "researcher", "code": "coder", "analyze": "analyst"},
            default="analyst",
            events=bus,
            name="hub",
        )
        # Small windows so that an outage opens it within a few calls, and
        # a normal 5 % failure rate almost never does (4 of the last 8).
        self.breaker = CircuitBreaker(
            TOOL,
            failure_rate_threshold=50.0,
            sliding_window_size=8,
            minimum_calls=4,
            permitted_calls_in_half_open=3,
            wait_duration_in_open_state=self.timeline.breaker_wait,
            record_exceptions=(ToolUnavailable,),
            events=bus,
        )
        self.tool = SearchTool(self.timeline, lambda: self.start)
        # A tool failure is tried again at once; an open breaker is not
        # (only ToolUnavailable is retried): the researcher answers from
        # its cache instead of waiting for a dead tool.
        self.search = compose(
            retry=Retry(
                TOOL, max_attempts=SEARCH_ATTEMPTS, wait=0.0, retry_exceptions=(ToolUnavailable,)
            ),
            circuit_breaker=self.breaker,
        )
        #: The running incarnation of each sub-supervisor (for phi).
        self.groups: dict[str, Supervisor] = {}
        self.group_views = {
            name: GroupView(max_restarts=limit, within=within)
            for name, _, _, limit, within in GROUPS
        }
        self.root: Supervisor | None = None
        #: The tree just before the final shutdown.
        self.final_tree: TreeNode | None = None
        self.root_failure: SupervisorGaveUp | None = None
        self.tasks = TaskCounts()
        self.hub_in_flight = 0
        #: Correlations of hub code tasks, worth tracing: (priority, label, id).
        self.candidates: list[tuple[int, str, UUID]] = []

    # ------------------------------------------------------------ events

    def publish(self, kind: EventType, source: str, payload: dict[str, object]) -> Event:
        """Publish a demo or chaos event, caused by the event being handled (if any).

        Never waits: like the supervisors, the demo drops an event the bus
        refuses rather than stall the system.
        """
        event = Event.new(kind, source=source, payload=payload)
        with contextlib.suppress(trio.WouldBlock):
            self.bus.publish_nowait(event)
        return event

    def _crash(self, worker: str, job: Job) -> ChaosCrash:
        self.publish(
            ChaosEvent.CRASH_INJECTED, f"agents/{worker}", {"agent": worker, "task": job.label}
        )
        return ChaosCrash(f"injected into task {job.label}")

    # ------------------------------------------------------------ workers

    def _researcher(self, name: str) -> Callable[[Task], Awaitable[Answer]]:
        async def research(task: Task) -> Answer:
            job: Job = task.payload
            if job.crash:
                raise self._crash(name, job)
            try:
                found = await self.search.call(self.tool.search, job)
            except CallNotPermitted:
                return Answer(worker=name, text=f"cached notes on {job.topic}", degraded=True)
            except ToolUnavailable as exc:
                return Answer(worker=name, text=f"no results ({exc})", degraded=True)
            return Answer(worker=name, text=found)

        return research

    def _coder(self, name: str) -> Callable[[Task], Awaitable[Answer]]:
        async def code(task: Task) -> Answer:
            job: Job = task.payload
            degraded = False
            if job.sub is not None:
                await busy(job.work / 2)
                # Through the router, inside this task's handling: the
                # research joins this task's causal chain.
                try:
                    research = await self.router.request(
                        Task("research", job.sub), timeout=DELEGATION_TIMEOUT
                    )
                except RoutingError:
                    degraded = True  # no research: write the code anyway
                else:
                    degraded = research.degraded
            if job.crash:
                raise self._crash(name, job)
            await busy(job.work / 2)
            return Answer(worker=name, text=f"code for {job.topic}", degraded=degraded)

        return code

    def _analyst(self, name: str) -> Callable[[Task], Awaitable[Answer]]:
        async def analyze(task: Task) -> Answer:
            job: Job = task.payload
            if job.hang:
                self.publish(
                    ChaosEvent.HANG_INJECTED, f"agents/{name}", {"agent": name, "task": job.label}
                )
                # Stuck, and silent: no heartbeat from here on. The
                # supervisor's detector sees phi climb, cancels us, restarts us.
                await trio.sleep_forever()
            await busy(job.work)
            if job.crash:
                raise self._crash(name, job)
            return Answer(worker=name, text=f"analysis of {job.topic}")

        return analyze

    # ------------------------------------------------------------ the tree

    def _group(
        self, name: str, role: str, count: int, max_restarts: int, within: float
    ) -> ChildSpec:
        handlers = {
            "researcher": self._researcher,
            "coder": self._coder,
            "analyst": self._analyst,
        }
        specs = [
            self.registry.agent(
                f"{role}-{n}",
                handlers[role](f"{role}-{n}"),
                role=role,
                heartbeat=HEARTBEATS[role],
            )
            for n in range(1, count + 1)
        ]

        async def run_group(
            *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            async with Supervisor(
                specs,
                strategy=Strategy.ONE_FOR_ONE,
                max_restarts=max_restarts,
                within=within,
                name=name,
                events=self.bus,
            ) as group:
                self.groups[name] = group
                task_status.started()
                await trio.sleep_forever()

        return ChildSpec(name, run_group)

    def _programs(self) -> list[ChildSpec]:
        """The indexer, a real program, unless the run leaves programs out."""
        if not self.config.programs:
            return []
        argv = [
            sys.executable,
            "-m",
            "trio_smith.cli._demo_indexer",
            str(self.config.seed),
            str(self.config.chaos),
        ]
        program = os_process(argv, ready=Ready.notify())
        return [ChildSpec("indexer", program, heartbeat=Heartbeat(0.25), shutdown=2.0)]

    def children(self) -> list[ChildSpec]:
        """The root's children, in start order: the hub last, once its workers are up."""
        return [
            ChildSpec("tools", self.breaker.run),
            *(self._group(*group) for group in GROUPS),
            *self._programs(),
            ChildSpec("hub", self.hub),
        ]

    # ------------------------------------------------------------ tasks

    async def submit(self, job: Job) -> None:
        """Route ``job`` as a task, wait for its reply, count the outcome.

        A task submitted while an event is being handled (the director's
        chaos events) joins that event's chain; the hub's tasks each begin
        a chain of their own, with an id we keep to suggest a trace.
        """
        correlation = None if current_cause() is not None else uuid7()
        task = Task(job.type, job, correlation_id=correlation)
        tasks = self.tasks
        self.tasks = attrs.evolve(tasks, submitted=tasks.submitted + 1)
        self.hub_in_flight += 1
        try:
            answer: Answer = await self.router.request(task, timeout=REQUEST_TIMEOUT)
        except RoutingError:
            # AgentDied (crash, hang), NoAgentAvailable, RequestTimeout: the
            # caller's problem, counted; the system goes on.
            self.tasks = attrs.evolve(self.tasks, failed=self.tasks.failed + 1)
        else:
            if answer.degraded:
                self.tasks = attrs.evolve(self.tasks, degraded=self.tasks.degraded + 1)
            else:
                self.tasks = attrs.evolve(self.tasks, ok=self.tasks.ok + 1)
        finally:
            self.hub_in_flight -= 1
        if correlation is not None and job.sub is not None:
            # A crash after the delegation makes the best trace.
            priority = 2 if job.crash else 1 if job.sub.crash else 0
            self.candidates.append((priority, job.label, correlation))

    async def hub(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The hub child: submit the plan's jobs as they come, at most ``concurrency`` at once."""
        slots = trio.Semaphore(self.config.concurrency)
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                job = self.plan.next_job()
                await trio.sleep(job.delay)
                # Bounded concurrency: at the limit the hub waits (backpressure).
                await slots.acquire()
                nursery.start_soon(self._submit_then_release, job, slots)

    async def _submit_then_release(self, job: Job, slots: trio.Semaphore) -> None:
        try:
            await self.submit(job)
        finally:
            slots.release()

    async def direct(self) -> None:
        """Play the timeline: the outage, the hang and the burst, each announced by an event."""
        timeline = self.timeline
        async with trio.open_nursery() as nursery:
            for step in timeline.steps():
                await trio.sleep_until(self.start + step.at)
                if step.kind == "outage_started":
                    # The tool reads the timeline itself; this event only tells.
                    seconds = timeline.outage_end - timeline.outage_start
                    self.publish(
                        ChaosEvent.OUTAGE_STARTED, "chaos", {"tool": TOOL, "seconds": seconds}
                    )
                elif step.kind == "outage_ended":
                    self.publish(ChaosEvent.OUTAGE_ENDED, "chaos", {"tool": TOOL})
                elif step.kind == "hang":
                    planned = self.publish(ChaosEvent.HANG_PLANNED, "chaos", {"role": "analyst"})
                    with caused_by(planned):  # the task joins the event's chain
                        nursery.start_soon(self.submit, Plan.hang_job())
                else:
                    jobs = Plan.burst_jobs()
                    burst = self.publish(
                        ChaosEvent.BURST, "chaos", {"role": "coder", "tasks": len(jobs)}
                    )
                    with caused_by(burst):
                        for job in jobs:
                            nursery.start_soon(self.submit, job)

    # ------------------------------------------------------------ looking

    def snapshot(self) -> Snapshot:
        """The system now (never blocks)."""
        agents: dict[str, AgentView] = {}
        phis: dict[str, float | None] = {}
        for group in self.groups.values():
            for info in group.which_children():
                phis[info.id] = info.phi
        for name in self.registry.names():
            try:
                agent = self.registry.lookup(name)
            except AgentNotFound:  # pragma: no cover - names() and lookup() agree
                continue
            agents[name] = AgentView(
                phi=phis.get(name), queued=agent.queued, in_flight=agent.in_flight
            )
        router = self.router.statistics()
        retry = None
        state = self.breaker.state
        if state is CircuitState.OPEN:
            retry = self.breaker.statistics().retry_after
        return Snapshot(
            elapsed=trio.current_time() - self.start,
            duration=self.config.duration,
            tree=self._tree(),
            agents=agents,
            groups=self.group_views,
            breaker=(TOOL, state, retry),
            hub_in_flight=self.hub_in_flight,
            concurrency=self.config.concurrency,
            counts=self.observer.counts,
            tasks=attrs.evolve(
                self.tasks,
                routed=router.routed,
                completed=router.completed,
                route_failed=router.failed,
            ),
            events_stored=self.bus.statistics().published,
        )

    def _tree(self) -> TreeNode | None:
        if self.final_tree is not None:
            return self.final_tree
        return None if self.root is None else self.root.tree()

    def events_dropped(self) -> int:
        """Events a component could not publish (a full bus); 0 in a healthy run."""
        dropped = self.registry.statistics().events_dropped
        dropped += self.breaker.statistics().events_dropped
        if self.root is not None:
            dropped += self.root.statistics().events_dropped
        return dropped + sum(g.statistics().events_dropped for g in self.groups.values())

    # ------------------------------------------------------------ running

    async def run(self, reporter: Reporter, stop: trio.Event, banner: list[str]) -> None:
        """Run the tree until the duration has passed or ``stop`` is set; then stop it.

        Returns when every child has stopped. If the root supervisor gives
        up (only under extreme chaos), ``root_failure`` says so.
        """
        self.start = trio.current_time()
        deadline = self.start + self.config.duration
        limit, within = ROOT_INTENSITY
        try:
            async with (
                Supervisor(
                    self.children(), max_restarts=limit, within=within, name=ROOT, events=self.bus
                ) as root,
                contextlib.AsyncExitStack() as stack,
            ):
                self.root = root
                if self.config.observe is not None:
                    from ..observer import Observer as TreeObserver

                    host, port, token = self.config.observe
                    served = await stack.enter_async_context(
                        TreeObserver(root, host=host, port=port, bus=self.bus, token=token)
                    )
                    banner = [
                        *banner,
                        f"observer at {served.url} (trio-smith observe {served.url})",
                    ]
                reporter.begin(banner, self.snapshot())
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self.direct)
                    nursery.start_soon(self._show, reporter)
                    with trio.move_on_at(deadline):
                        await stop.wait()
                    nursery.cancel_scope.cancel()
                # The last frame shows the tree as it ran, not as it stopped.
                self.final_tree = root.tree()
                await root.shutdown()
        except SupervisorGaveUp as exc:
            # Only under extreme chaos: the run ends early, and says why.
            self.root_failure = exc

    async def _show(self, reporter: Reporter) -> None:
        while True:
            await trio.sleep(reporter.interval)
            reporter.update(self.snapshot())


def causal_depth(events: list[Event]) -> int:
    """The longest cause-to-effect path among ``events`` (one correlation), in events."""
    by_id = {event.id: event for event in events}
    depths: dict[UUID, int] = {}
    for event in events:  # stored in position order: a cause precedes its effects
        cause = event.causation_id
        depths[event.id] = depths.get(cause, 0) + 1 if cause in by_id else 1
    return max(depths.values(), default=0)


async def choose_trace(
    store: EventStore, candidates: list[tuple[int, str, UUID]], *, tries: int = 40
) -> TraceChoice | None:
    """The most telling of the candidate correlations, as the store holds them.

    Prefers a chain with a crash, then one with a delegation, then the
    deepest; looks at most at ``tries`` candidates, crash-flagged ones first.
    """
    ordered = sorted(candidates, key=lambda c: -c[0])[:tries]
    best: TraceChoice | None = None
    for _, label, correlation in ordered:
        events = await store.get_by_correlation(correlation)
        if not events:
            continue
        routed = sum(
            1 for e in events if e.type.category == "routing" and e.type.name == "task_routed"
        )
        choice = TraceChoice(
            correlation_id=correlation,
            task=label,
            depth=causal_depth(events),
            delegated=routed >= 2,
            crashed=any(e.type == ChaosEvent.CRASH_INJECTED for e in events),
        )
        if best is None or _rank(choice) > _rank(best):
            best = choice
    return best


def _rank(choice: TraceChoice) -> tuple[bool, bool, int]:
    return (choice.crashed, choice.delegated, choice.depth)


async def _observe(
    subscription: Subscription, observer: Observer, reporter: Reporter, start: Callable[[], float]
) -> None:
    """Feed the notable events to the observer and their lines to the reporter, until the end."""
    async with subscription:
        async for event in subscription:
            line = observer.see(event, trio.current_time() - start())
            if line is not None:
                reporter.notable(line)
            if observer.ended is not None:
                return


async def run_demo(
    config: DemoConfig,
    *,
    reporter: Reporter,
    stop: trio.Event | None = None,
    banner: list[str] | None = None,
) -> Summary:
    """Run the demo: the tree under chaos for ``config.duration`` seconds, shown by ``reporter``.

    Opens (or creates) the store ``config.db`` and appends the run's events
    to it. Checkpoints; blocks for the duration (or until ``stop`` is set).

    Args:
        config: the run's settings.
        reporter: shows the run (plain lines or the live tree).
        stop: set it to end the run early (Ctrl-C), cleanly.
        banner: lines the reporter shows first.

    Returns:
        The summary; its counts are those of the events the store holds.

    Raises:
        StoreOpenError: ``config.db`` is not a store this version can use
            (it is left unchanged), its directory does not exist, or its
            database cannot be reached.
        ValueError: ``config.db`` is a malformed PostgreSQL URL.
    """
    stop = stop if stop is not None else trio.Event()
    existed = is_database_url(config.db) or await trio.Path(config.db).exists()
    # NORMAL: a run's telemetry may lose its last events to a power cut,
    # not to a crash of the process; FULL would fsync every group commit.
    async with make_store(config.db, read_only=False, synchronous="NORMAL") as store:
        before = await store.head()
        db = shown(store, config.db)
        if not existed or before == 0:
            where = "a new store"
        else:
            where = f"appending to the existing store, {before} events so far"
        banner = [*(banner or []), f"events -> {db} ({where}); Ctrl-C stops it early"]
        async with EventBus(store, name="demo") as bus:
            observer = Observer(ROOT, DEMO_SUBTREES)
            system = DemoSystem(config, bus, observer)
            # CATCH_UP: the view never slows the system (a full buffer is
            # refilled from the store), and it misses nothing.
            notable = bus.subscribe(
                NOTABLE, buffer=256, overflow=Overflow.CATCH_UP, name="demo-view"
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_observe, notable, observer, reporter, lambda: system.start)
                await bus.publish(
                    Event.new(
                        DemoEvent.RUN_STARTED,
                        source=ROOT,
                        payload={
                            "seed": config.seed,
                            "duration": config.duration,
                            "chaos": config.chaos,
                        },
                    )
                )
                await system.run(reporter, stop, banner)
                elapsed = trio.current_time() - system.start
                # Stored after everything the tree published, and delivered
                # in position order: once the observer has it, it has all.
                ended = await bus.publish(
                    Event.new(
                        DemoEvent.RUN_ENDED,
                        source=ROOT,
                        payload={"elapsed": elapsed, "interrupted": stop.is_set()},
                    )
                )
            reporter.end(system.snapshot())
        trace = await choose_trace(store, system.candidates)
        written = store.statistics()
    assert ended.position is not None
    final = system.snapshot()
    return Summary(
        db=db,
        seed=config.seed,
        duration=config.duration,
        chaos=config.chaos,
        elapsed=elapsed,
        interrupted=stop.is_set(),
        root_failure=None if system.root_failure is None else str(system.root_failure),
        tasks=final.tasks,
        counts=observer.counts,
        events_before=before,
        events_stored=written.appended,
        events_followed=written.followed,
        events_dropped=system.events_dropped(),
        trace=trace,
    )

"""What the demo shows: notable events as lines, snapshots of the tree, and the summary.

Pure functions and small classes, no trio: :class:`Observer` turns the
events the demo subscribes to into counters and one :class:`Line` per
notable event; :class:`Snapshot` is the state of the running system at one
moment; the two reporters show them, :class:`PlainReporter` as plain lines
(a pipe, a log file, ``--plain``) and :class:`LiveReporter` as a rich live
view on a terminal (:class:`LiveView`, laid out for the terminal's size).
``summary_lines`` writes the end-of-run summary.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol, TextIO, final
from uuid import UUID

import attrs
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .. import TreeNode
from ..events import Event, EventType, SupervisionEvent
from ..resilience import CircuitBreakerEvent, CircuitState
from ._output import silence

__all__ = [
    "AgentView",
    "ChaosEvent",
    "Counts",
    "DemoEvent",
    "GroupView",
    "Line",
    "LiveReporter",
    "LiveView",
    "NOTABLE_TYPES",
    "Observer",
    "PlainReporter",
    "Reporter",
    "Snapshot",
    "Summary",
    "TaskCounts",
    "TraceChoice",
    "summary_lines",
]


@final
class DemoEvent:
    """The demo's own event types (category ``demo``): where a run begins and ends."""

    RUN_STARTED: Final = EventType("demo", "run_started")
    #: Published once the tree has stopped: every event of the run precedes it.
    RUN_ENDED: Final = EventType("demo", "run_ended")


@final
class ChaosEvent:
    """The injected chaos (category ``chaos``), so the store shows what was done on purpose."""

    OUTAGE_STARTED: Final = EventType("chaos", "outage_started")
    OUTAGE_ENDED: Final = EventType("chaos", "outage_ended")
    HANG_PLANNED: Final = EventType("chaos", "hang_planned")
    BURST: Final = EventType("chaos", "crash_burst")
    #: Published by a worker, in the task's causal chain, just before it crashes.
    CRASH_INJECTED: Final = EventType("chaos", "crash_injected")
    #: Published by a worker, in the task's causal chain, as it stops heartbeating.
    HANG_INJECTED: Final = EventType("chaos", "hang_injected")


#: What the demo's subscription takes: the events that make a line.
NOTABLE_TYPES: Final = frozenset(
    {
        SupervisionEvent.CHILD_FAILED,
        SupervisionEvent.CHILD_RESTARTED,
        SupervisionEvent.SUPERVISOR_GAVE_UP,
        CircuitBreakerEvent.STATE_TRANSITION,
        ChaosEvent.OUTAGE_STARTED,
        ChaosEvent.OUTAGE_ENDED,
        ChaosEvent.HANG_PLANNED,
        ChaosEvent.BURST,
        DemoEvent.RUN_ENDED,
    }
)

#: Width of a line's kind column.
_KIND_WIDTH: Final = 9

#: Styles of the live view.
_STATUS_STYLES: Final = {
    "running": "green",
    "starting": "yellow",
    "restarting": "bold yellow",
    "stopping": "red",
    "stopped": "red",
}
_BREAKER_STYLES: Final = {
    CircuitState.CLOSED: "bold green",
    CircuitState.HALF_OPEN: "bold yellow",
    CircuitState.OPEN: "bold red",
}
_LINE_STYLES: Final = {
    "restart": "yellow",
    "hung": "magenta",
    "escalate": "bold red",
    "breaker": "cyan",
    "chaos": "blue",
}


@final
@attrs.frozen(kw_only=True, slots=True)
class Line:
    """One notable event as the demo shows it.

    Attributes:
        at: seconds since the run began, when the demo saw it.
        kind: ``restart``, ``hung``, ``escalate``, ``breaker``, ``chaos``
            or ``status``.
        text: what happened.
    """

    at: float
    kind: str
    text: str

    def __str__(self) -> str:
        return f"[{self.at:7.2f}s] {self.kind:<{_KIND_WIDTH}}{self.text}"


@final
@attrs.frozen(kw_only=True, slots=True)
class Counts:
    """What the demo counted from the events it saw.

    Attributes:
        restarts: ``supervision.child_restarted`` events, at every level.
        crashes: children that failed other than by hanging (workers and
            supervisors that gave up).
        hung: children the phi-accrual detector judged hung.
        escalations: supervisors that gave up (``supervisor_gave_up``).
        breaker_trips: breaker moves from CLOSED to OPEN.
        breaker_opened: breaker moves to OPEN, also after a failed trial.
        breaker_closed: breaker moves back to CLOSED.
    """

    restarts: int = 0
    crashes: int = 0
    hung: int = 0
    escalations: int = 0
    breaker_trips: int = 0
    breaker_opened: int = 0
    breaker_closed: int = 0


def _short_type(name: object) -> str:
    """``ChaosCrash`` for ``trio_smith.cli._demo_system.ChaosCrash``."""
    return str(name).rsplit(".", 1)[-1]


def _who(supervisor: object, child_id: object, root: str) -> str:
    """A child's place below the root: ``researchers/researcher-1``, ``coders``."""
    path = str(supervisor)
    if path == root:
        return str(child_id)
    if path.startswith(root + "/"):
        path = path[len(root) + 1 :]
    return f"{path}/{child_id}"


@final
class Observer:
    """Counts the notable events and words them; knows when the run's events are all in.

    Args:
        root: the root supervisor's name (dropped from the paths it shows).
        subtrees: the children that are supervisors: their restart is said
            to restart "the whole subtree" (the demo's; none by default).
    """

    __slots__ = ("_failures", "counts", "ended", "root", "subtrees")

    def __init__(self, root: str, subtrees: frozenset[str] = frozenset()) -> None:
        self.root = root
        self.subtrees = subtrees
        self.counts = Counts()
        #: The ``demo.run_ended`` event, once seen.
        self.ended: Event | None = None
        #: The last failure of each child, for the line of its restart.
        self._failures: dict[str, str] = {}

    def see(self, event: Event, at: float) -> Line | None:
        """Count ``event`` and return its line (None: nothing to show).

        Args:
            event: one of ``NOTABLE_TYPES``.
            at: seconds since the run began.
        """
        kind = event.type
        payload = event.payload
        counts = self.counts
        if kind == SupervisionEvent.CHILD_FAILED:
            who = _who(payload.get("supervisor"), payload.get("child_id"), self.root)
            if payload.get("reason") == "hung":
                self.counts = attrs.evolve(counts, hung=counts.hung + 1)
                phi = payload.get("phi")
                silence = payload.get("silence")
                phi_text = f"{phi:.1f}" if isinstance(phi, int | float) else "inf"
                silence_text = f"{silence:.2f}" if isinstance(silence, int | float) else "?"
                self._failures[who] = f"hung, phi {phi_text}"
                return Line(
                    at=at,
                    kind="hung",
                    text=f"{who} (phi {phi_text}, silent {silence_text} s): cancelled",
                )
            self.counts = attrs.evolve(counts, crashes=counts.crashes + 1)
            error_type = _short_type(payload.get("error_type"))
            if error_type in ("RestartIntensityExceeded", "ChildFailureEscalated"):
                self._failures[who] = "it gave up"  # its own line said why
            else:
                self._failures[who] = f"{error_type}: {payload.get('error')}"
            return None
        if kind == SupervisionEvent.CHILD_RESTARTED:
            who = _who(payload.get("supervisor"), payload.get("child_id"), self.root)
            self.counts = attrs.evolve(counts, restarts=counts.restarts + 1)
            failure = self._failures.pop(who, None)
            subtree = " (the whole subtree)" if who in self.subtrees else ""
            after = f" after {failure}" if failure else ""
            return Line(at=at, kind="restart", text=f"{who}{subtree}{after}")
        if kind == SupervisionEvent.SUPERVISOR_GAVE_UP:
            self.counts = attrs.evolve(counts, escalations=counts.escalations + 1)
            path = str(payload.get("supervisor"))
            name = path.rsplit("/", 1)[-1]
            cause = f"{payload.get('child_id')}, {_short_type(payload.get('error_type'))}"
            if payload.get("reason") == "intensity":
                why = f"too many restarts (last: {cause})"
            else:
                why = f"{payload.get('reason')} ({cause})"
            upward = "its parent takes over" if "/" in path else "nothing above it"
            return Line(at=at, kind="escalate", text=f"{name} gave up: {why}; {upward}")
        if kind == CircuitBreakerEvent.STATE_TRANSITION:
            state = payload.get("state")
            before = payload.get("from_state")
            if state == CircuitState.OPEN.value:
                trip = 1 if before == CircuitState.CLOSED.value else 0
                self.counts = attrs.evolve(
                    counts,
                    breaker_opened=counts.breaker_opened + 1,
                    breaker_trips=counts.breaker_trips + trip,
                )
            elif state == CircuitState.CLOSED.value:
                self.counts = attrs.evolve(counts, breaker_closed=counts.breaker_closed + 1)
            return Line(at=at, kind="breaker", text=f"{payload.get('breaker')} {before} -> {state}")
        if kind == DemoEvent.RUN_ENDED:
            self.ended = event
            return None
        text = _CHAOS_TEXT.get(kind)
        if text is not None:
            return Line(at=at, kind="chaos", text=text.format_map(dict(payload)))
        return None


#: The demo's children of the root that are supervisors: their restart restarts a subtree.
DEMO_SUBTREES: Final = frozenset({"researchers", "coders", "analysts"})

_CHAOS_TEXT: Final[Mapping[EventType, str]] = {
    ChaosEvent.OUTAGE_STARTED: "{tool} outage begins: every call fails for {seconds:.1f} s",
    ChaosEvent.OUTAGE_ENDED: "{tool} outage ends",
    ChaosEvent.HANG_PLANNED: "an analyst gets a task on which it will stop heartbeating",
    ChaosEvent.BURST: "a burst of {tasks} code tasks that crash their coder",
}


@final
@attrs.frozen(kw_only=True, slots=True)
class AgentView:
    """An agent in a snapshot.

    Attributes:
        phi: its hung-worker suspicion (None: not running).
        queued: messages waiting in its mailbox.
        in_flight: requests it has taken and not answered.
    """

    phi: float | None
    queued: int
    in_flight: int


@final
@attrs.frozen(kw_only=True, slots=True)
class GroupView:
    """A sub-supervisor's restart intensity, for its label."""

    max_restarts: int
    within: float


@final
@attrs.frozen(kw_only=True, slots=True)
class TaskCounts:
    """Tasks, as the hub and the router count them.

    Attributes:
        submitted: tasks the hub (and the scripted chaos) submitted.
        ok: of those, answered fully.
        degraded: answered with a fallback (the tool failed or its breaker
            was open, or a coder's research did not come).
        failed: not answered: the worker died (crash, hang), no worker was
            available, or the request timed out.
        routed: tasks the router gave to an agent, delegated research included.
        completed: routed tasks that got their reply.
        route_failed: routed tasks whose request raised.
    """

    submitted: int = 0
    ok: int = 0
    degraded: int = 0
    failed: int = 0
    routed: int = 0
    completed: int = 0
    route_failed: int = 0


@final
@attrs.frozen(kw_only=True, slots=True)
class Snapshot:
    """The running system at one moment, for the reporters.

    Attributes:
        elapsed: seconds since the run began.
        duration: the run's planned length.
        tree: the supervision tree (None before it starts).
        agents: by name.
        groups: the sub-supervisors' restart intensities, by name.
        breaker: the breaker's name, state and seconds until a trial call
            (OPEN only).
        hub_in_flight: hub tasks waiting for their reply.
        concurrency: the most the hub lets wait at once.
        counts: what the observer counted.
        tasks: task counts.
        events_stored: events the run has stored so far.
    """

    elapsed: float
    duration: float
    tree: TreeNode | None
    agents: Mapping[str, AgentView]
    groups: Mapping[str, GroupView]
    breaker: tuple[str, CircuitState, float | None]
    hub_in_flight: int
    concurrency: int
    counts: Counts
    tasks: TaskCounts
    events_stored: int


@final
@attrs.frozen(kw_only=True, slots=True)
class TraceChoice:
    """The correlation the summary suggests tracing, and why.

    Attributes:
        correlation_id: the chain's id.
        task: the label of the task that began it.
        depth: the longest cause-to-effect path in it, in events.
        delegated: a worker routed a sub-task within it.
        crashed: a worker crashed within it.
    """

    correlation_id: UUID
    task: str
    depth: int
    delegated: bool
    crashed: bool


@final
@attrs.frozen(kw_only=True, slots=True)
class Summary:
    """The outcome of a run.

    Attributes:
        db: the store: its file, or its URL without a password.
        seed, duration, chaos: the run's settings.
        elapsed: seconds it ran.
        interrupted: stopped early by Ctrl-C (or SIGTERM).
        root_failure: the root supervisor gave up with this message.
        tasks: task counts.
        counts: what the observer counted.
        events_before: events the store held before the run.
        events_stored: events the run stored.
        events_followed: events other processes appended to the same store
            during the run (the view showed them too).
        events_dropped: events a full bus refused (0 normally).
        trace: the correlation worth tracing, if any.
    """

    db: str
    seed: int
    duration: float
    chaos: float
    elapsed: float
    interrupted: bool
    root_failure: str | None
    tasks: TaskCounts
    counts: Counts
    events_before: int
    events_stored: int
    events_followed: int
    events_dropped: int
    trace: TraceChoice | None


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def status_line(snapshot: Snapshot) -> Line:
    """The periodic one-line status of a plain run."""
    tasks = snapshot.tasks
    counts = snapshot.counts
    name, state, _ = snapshot.breaker
    return Line(
        at=snapshot.elapsed,
        kind="status",
        text=(
            f"tasks {tasks.submitted} ({tasks.ok} ok, {tasks.degraded} degraded, "
            f"{tasks.failed} failed), routed {tasks.routed} | restarts {counts.restarts} | "
            f"hung {counts.hung} | escalations {counts.escalations} | "
            f"{name} {state.value} | events {snapshot.events_stored}"
        ),
    )


def _cut(count: int) -> str:
    """Requests still waiting when the run stopped: neither answered nor failed."""
    return f", {count} cut short by the end" if count > 0 else ""


def _quote(path: str) -> str:
    """``path`` as a shell word (the commands the summary prints are copied and run)."""
    if path and all(c.isalnum() or c in "._-/+:=@%," for c in path):
        return path
    return "'" + path.replace("'", "'\\''") + "'"


def summary_lines(summary: Summary, *, program: str = "trio-smith") -> list[str]:
    """The end-of-run summary, with the commands that inspect the store.

    Args:
        summary: the run's figures.
        program: how to run trio-smith in those commands.

    Returns:
        The lines, without newlines.
    """
    tasks = summary.tasks
    counts = summary.counts
    how = "interrupted" if summary.interrupted else "done"
    if summary.root_failure is not None:
        how = "stopped: the root supervisor gave up"
    lines = [
        f"trio-smith demo {how} after {summary.elapsed:.1f} s "
        f"(seed {summary.seed}, chaos {summary.chaos:g})",
    ]
    if summary.root_failure is not None:
        lines.append(f"  root failure   {summary.root_failure}")
    cut = tasks.routed - tasks.completed - tasks.route_failed
    hub_cut = tasks.submitted - tasks.ok - tasks.degraded - tasks.failed
    lines += [
        f"  tasks routed   {tasks.routed}: {tasks.completed} completed, {tasks.route_failed} "
        f"failed{_cut(cut)} (delegated research included)",
        f"  hub tasks      {tasks.submitted}: {tasks.ok} ok, {tasks.degraded} degraded, "
        f"{tasks.failed} failed{_cut(hub_cut)}",
        f"  failures       {counts.crashes + counts.hung}: "
        f"{_plural(counts.crashes, 'crash', 'crashes')}, {counts.hung} hung",
        f"  restarts       {counts.restarts}",
        f"  hung caught    {counts.hung}",
        f"  escalations    {counts.escalations}",
        f"  breaker trips  {counts.breaker_trips} (opened {_plural(counts.breaker_opened, 'time')},"
        f" closed again {_plural(counts.breaker_closed, 'time')})",
        f"  events stored  {summary.events_stored} in {summary.db}"
        + (f" (after {summary.events_before} from earlier runs)" if summary.events_before else ""),
    ]
    if summary.events_followed:
        lines.append(
            f"  other writers  {summary.events_followed} events appended to the same store "
            "meanwhile (shown and counted too)"
        )
    if summary.events_dropped:
        lines.append(f"  events dropped {summary.events_dropped} (the bus was full)")
    db = _quote(summary.db)
    lines += ["", "Inspect them:", f"  {program} events stats {db}"]
    trace = summary.trace
    if trace is not None:
        what = ["a delegation" if trace.delegated else "", "a crash" if trace.crashed else ""]
        about = " and ".join(w for w in what if w) or "its causal chain"
        lines.append(f"  {program} events trace {db} {trace.correlation_id}")
        lines.append(f"      (task {trace.task}: {about}, {trace.depth} events deep)")
    lines.append(f"  {program} events list {db} --type supervision.supervisor_gave_up")
    return lines


class Reporter(Protocol):
    """Shows a run: its banner, each notable line, and snapshots.

    ``interval`` is the seconds between two snapshots it wants.
    """

    interval: float

    def begin(self, lines: Sequence[str], snapshot: Snapshot) -> None:
        """The run begins: its banner and the tree as started."""

    def notable(self, line: Line) -> None:
        """A notable event."""

    def update(self, snapshot: Snapshot) -> None:
        """The system now."""

    def end(self, snapshot: Snapshot) -> None:
        """The run has ended; the summary follows."""

    def summary(self, lines: Sequence[str]) -> None:
        """Show the summary (after ``end``, out of trio)."""


@final
class PlainReporter:
    """Plain lines: one per notable event, a status line every ``interval`` seconds.

    Each line is flushed, so ``| tee``, ``| grep --line-buffered`` and log
    files see it at once. When the reader goes away (``| head``), output
    goes to the null device and ``on_gone`` is called (the demo stops).
    """

    def __init__(
        self,
        out: TextIO,
        *,
        interval: float = 1.0,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self.out = out
        self.interval = interval
        self.on_gone = on_gone
        self.gone = False

    def _write(self, text: str) -> None:
        if self.gone:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.gone = True
            silence(self.out)
            if self.on_gone is not None:
                self.on_gone()

    def begin(self, lines: Sequence[str], snapshot: Snapshot) -> None:
        """Print the banner and the tree as text."""
        for line in lines:
            self._write(line)
        if snapshot.tree is not None:
            self._write(snapshot.tree.render())

    def notable(self, line: Line) -> None:
        """Print the line."""
        self._write(str(line))

    def update(self, snapshot: Snapshot) -> None:
        """Print a status line."""
        self._write(str(status_line(snapshot)))

    def end(self, snapshot: Snapshot) -> None:
        """Print the last status line."""
        self.update(snapshot)

    def summary(self, lines: Sequence[str]) -> None:
        """Print the summary after an empty line."""
        self._write("\n" + "\n".join(lines))


@final
class LiveReporter:
    """A rich live view: the tree with statuses, restarts, phi and the breaker; counters; a log.

    Args:
        console: where to draw (a terminal).
        log_size: how many of the last notable lines it keeps; the view
            shows as many of them as the terminal has room for.
        interval: seconds between redraws.
    """

    def __init__(self, console: Console, *, log_size: int = 200, interval: float = 0.125) -> None:
        self.console = console
        self.interval = interval
        self._log: collections.deque[Line] = collections.deque(maxlen=log_size)
        self._banner: Sequence[str] = ()
        self._live: Live | None = None
        self._last: Snapshot | None = None

    def begin(self, lines: Sequence[str], snapshot: Snapshot) -> None:
        """Print the banner, then start the live view."""
        for line in lines:
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        # Redrawn by update() from the trio task, never from rich's own
        # refresh thread: the snapshot is read on the trio thread only.
        self._live = Live(
            LiveView(snapshot, self._log),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start(refresh=True)
        self._last = snapshot

    def notable(self, line: Line) -> None:
        """Add the line to the log (drawn at the next update)."""
        self._log.append(line)

    def update(self, snapshot: Snapshot) -> None:
        """Redraw."""
        self._last = snapshot
        if self._live is not None:
            self._live.update(LiveView(snapshot, self._log), refresh=True)

    def end(self, snapshot: Snapshot) -> None:
        """Draw the last frame and leave it on the screen."""
        self.update(snapshot)
        if self._live is not None:
            self._live.stop()
            self._live = None

    def summary(self, lines: Sequence[str]) -> None:
        """Print the summary below the last frame.

        Each line is printed whole, never wrapped by rich (``soft_wrap``): a
        terminal narrower than a command folds it only on screen, and a
        copied command stays one line that runs.
        """
        self.console.print()
        for line in lines:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, "white"))


def _phi_style(phi: float) -> str:
    # The detector's threshold is 8 (Akka's default); 1 means about a 10 %
    # chance that a heartbeat this late is still normal.
    if phi < 1:
        return "green"
    if phi < 4:
        return "yellow"
    return "bold red"


def _node_label(node: TreeNode, snapshot: Snapshot) -> Text:
    # One line each, whatever the width: a long label is cut with an
    # ellipsis, so the tree's height is its node count (LiveView's budget).
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(node.id, style="bold" if node.kind == "supervisor" else "")
    label.append("  ")
    label.append_text(_status(node.status))
    if node.restarts:
        label.append(f"  restarts {node.restarts}", style="yellow")
    group = snapshot.groups.get(node.id)
    if group is not None:
        label.append(f"  (gives up after {group.max_restarts} in {group.within:g} s)", style="dim")
    agent = snapshot.agents.get(node.id)
    if agent is not None:
        if agent.phi is not None:
            phi = "inf" if math.isinf(agent.phi) else f"{agent.phi:.2f}"
            label.append("  phi ")
            label.append(phi, style=_phi_style(agent.phi))
        label.append(f"  mailbox {agent.queued}")
        if agent.in_flight:
            label.append(f" +{agent.in_flight} busy", style="dim")
    if node.id == "tools":
        name, state, retry = snapshot.breaker
        label.append(f"  {name} ")
        label.append(state.value, style=_BREAKER_STYLES.get(state, "white"))
        if retry is not None and retry > 0:
            label.append(f" (trial in {retry:.1f} s)", style="dim")
    if node.id == "hub":
        label.append(f"  in flight {snapshot.hub_in_flight}/{snapshot.concurrency}", style="dim")
    if node.os_pid is not None:
        label.append(f"  pid {node.os_pid}", style="dim")
        if node.status_text:
            label.append(f"  {node.status_text}", style="dim")
    return label


def _add_children(branch: Tree, node: TreeNode, snapshot: Snapshot) -> None:
    for child in node.children:
        _add_children(branch.add(_node_label(child, snapshot)), child, snapshot)


#: The events panel shows at least this many rows, even on a terminal too
#: low for the rest (the live display then cuts the bottom).
_MIN_LOG_ROWS: Final = 1


@final
class LiveView:
    """The live view of one snapshot, laid out for the terminal at each redraw.

    From the top: the supervision tree in a panel (the elapsed time and the
    events stored on its bottom edge), the counters, then the last notable
    lines in a panel that takes the rest of the terminal's height, so that
    nothing is cut: on 80x24 the tree (13 nodes, 15 rows), two lines of
    counters and the last five rows of lines fit exactly. A taller terminal shows more lines; one
    wide enough for the tree and the counters side by side puts them so.
    A line too long for the width is wrapped under its text, and counted.

    Args:
        snapshot: the system now.
        log: the notable lines, oldest first (the newest are shown).
    """

    def __init__(self, snapshot: Snapshot, log: Sequence[Line]) -> None:
        self.snapshot = snapshot
        self.log = log

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        tree = _tree_panel(self.snapshot)
        side = _counter_table(self.snapshot)
        tree_width = Measurement.get(console, options, tree).maximum
        side_width = Measurement.get(console, options, side).maximum
        top: RenderableType
        if tree_width + 2 + side_width <= width:
            grid = Table.grid(padding=(0, 2))
            grid.add_row(tree, side)
            top = grid
        else:
            tree.expand = True  # as wide as the events panel below it
            top = Group(tree, _counter_lines(self.snapshot, width))
        yield top
        yield events_panel(top, self.log, console, options, min_rows=_MIN_LOG_ROWS)


def events_panel(
    top: RenderableType,
    log: Sequence[Line],
    console: Console,
    options: ConsoleOptions,
    *,
    min_rows: int,
    fill: bool = True,
) -> Panel:
    """The events panel under ``top``: the rows ``top`` leaves of the screen, newest lines.

    With ``fill`` False it is no taller than its lines (a printed frame).
    """
    height = options.height or options.size.height
    used = len(console.render_lines(top, options.update(height=None), pad=False))
    rows = max(min_rows, height - used - 2)  # the panel's two borders
    if not fill:
        rows = max(min_rows, min(rows, len(log)))
    return Panel(
        _log_text(log, rows, options.max_width - 4, console),
        title="events",
        title_align="left",
        height=rows + 2,
    )


def _tree_panel(snapshot: Snapshot) -> Panel:
    if snapshot.tree is None:
        tree: RenderableType = Text("starting...", style="dim")
    else:
        root = Tree(_node_label(snapshot.tree, snapshot), guide_style="dim")
        _add_children(root, snapshot.tree, snapshot)
        tree = root
    return Panel(
        tree,
        title="supervision tree",
        title_align="left",
        subtitle=f"{snapshot.elapsed:.1f} / {snapshot.duration:g} s  ·  "
        f"{snapshot.events_stored} events stored",
        subtitle_align="right",
        border_style="blue",
        expand=False,
    )


def _counter_table(snapshot: Snapshot) -> Table:
    """The counters as labelled rows, beside the tree on a wide terminal."""
    tasks = snapshot.tasks
    counts = snapshot.counts
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_row(
        "tasks", f"{tasks.routed} routed: {tasks.completed} completed, {tasks.route_failed} failed"
    )
    table.add_row("hub", f"{tasks.ok} ok, {tasks.degraded} degraded, {tasks.failed} failed")
    table.add_row(
        "supervision",
        f"{_plural(counts.restarts, 'restart')}, {counts.hung} hung caught, "
        f"{_plural(counts.escalations, 'escalation')}",
    )
    table.add_row(
        "breaker",
        f"{_plural(counts.breaker_trips, 'trip')}; opened {_plural(counts.breaker_opened, 'time')},"
        f" closed again {_plural(counts.breaker_closed, 'time')}",
    )
    return table


def _counter_lines(snapshot: Snapshot, width: int) -> Text:
    """The counters under the tree, packed into as few lines of ``width`` as they fit.

    Each group (tasks, hub, supervision, breaker) stays whole on its line,
    cut with an ellipsis only if it alone is wider than the terminal; on 80
    columns the counts of a 20 s run take two lines.
    """
    tasks = snapshot.tasks
    counts = snapshot.counts
    groups = [
        (
            "tasks",
            f"{tasks.routed} routed: {tasks.completed} completed, {tasks.route_failed} failed",
        ),
        ("hub", f"{tasks.ok} ok, {tasks.degraded} degraded, {tasks.failed} failed"),
        (
            "",
            f"{_plural(counts.restarts, 'restart')}, {counts.hung} hung caught, "
            f"{_plural(counts.escalations, 'escalation')}",
        ),
        (
            "breaker",
            f"{_plural(counts.breaker_trips, 'trip')}, {counts.breaker_opened} opened, "
            f"{counts.breaker_closed} closed",
        ),
    ]
    lines: list[Text] = []
    for label, value in groups:
        group = Text()
        if label:
            group.append(label + " ", style="bold")
        group.append(value)
        if lines and lines[-1].cell_len + 3 + group.cell_len <= width:
            lines[-1].append(" · ")
            lines[-1].append_text(group)
        else:
            lines.append(group)
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


def _log_text(log: Sequence[Line], rows: int, width: int, console: Console) -> Text:
    """The newest lines of ``log`` that fit ``rows`` rows of ``width``, oldest first.

    A line longer than the width wraps under its text (after the time and
    the kind); each row is at most ``width`` cells, so the panel's height is
    exactly what was counted.
    """
    if not log:
        return Text("(nothing yet)", style="dim")
    shown: list[list[Text]] = []
    left = rows
    for line in reversed(log):
        if left <= 0:
            break
        lead = Text(f"[{line.at:6.2f}s] ", style="dim")
        lead.append(f"{line.kind:<{_KIND_WIDTH}}", style=_LINE_STYLES.get(line.kind, ""))
        room = max(1, width - lead.cell_len)
        parts = list(Text(line.text).wrap(console, room))
        if len(parts) > left:
            if shown:
                break  # whole lines only, but for the newest
            parts = parts[:left]
            cut = parts[-1]
            cut.right_crop(max(0, cut.cell_len - (room - 1)))
            cut.append("…")
        rows_of_line = [lead + parts[0]]
        rows_of_line += [Text(" " * lead.cell_len) + part for part in parts[1:]]
        shown.append(rows_of_line)
        left -= len(rows_of_line)
    text = Text(no_wrap=True, overflow="crop")
    first = True
    if left > 0 and len(shown) < len(log):
        # Older lines did not fit whole: the newest stays on the last row.
        shown.append([Text()] * left)
    for rows_of_line in reversed(shown):
        for row in rows_of_line:
            if not first:
                text.append("\n")
            text.append_text(row)
            first = False
    return text

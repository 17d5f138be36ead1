"""The public supervisors: ``Supervisor`` and ``DynamicSupervisor``.

Both are thin faces over ``_runtime.Runtime``: they validate arguments when
built, turn API calls into the core's requests, and implement ``async with``:
entering starts the children (OTP R2.1), leaving waits until the supervisor
has stopped, and every way of leaving stops the children in reverse start
order before anything propagates.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import itertools
from collections.abc import Iterable
from types import TracebackType
from typing import Literal, Self, final

import attrs
import trio

from .._core._phi import to_ms
from .._core._protocol import (
    DeleteChildRequested,
    Input,
    RestartChildRequested,
    StartChildRequested,
    TerminateChildRequested,
)
from .._core._reports import DEFAULT_REPORT_LIMIT, ReportLimit
from .._core._spec import (
    AutoShutdown,
    Backoff,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Restart,
    Strategy,
)
from .._event import EventPublisher
from .._exceptions import (
    ChildNotFound,
    RestartRecord,
    SupervisorNotRunning,
)
from . import _nested
from ._pool import ArgumentCheck, ChildEnd
from ._runtime import Runtime, takes_task_status

__all__ = [
    "ChildHandle",
    "DynamicSupervisor",
    "Supervisor",
    "SupervisorState",
    "SupervisorStatistics",
    "TreeNode",
    "cut_short",
    "only_cancelled",
]


@final
class SupervisorState(enum.Enum):
    """Where a supervisor is in its life."""

    #: Built, not entered yet.
    NEW = "new"
    #: Starting its children (inside ``async with``'s entry).
    STARTING = "starting"
    #: Supervising.
    RUNNING = "running"
    #: Stopping its children to exit.
    STOPPING = "stopping"
    #: Exited; every child is stopped.
    STOPPED = "stopped"


@final
@attrs.frozen(kw_only=True)
class SupervisorStatistics:
    """A snapshot of a supervisor (``Supervisor.statistics()``).

    Attributes:
        name: the supervisor's name.
        state: where it is in its life.
        strategy: its restart strategy (``ONE_FOR_ONE`` for a dynamic one).
        children: child specs held, running or not.
        active: children running.
        restarts: children started again after their first start, since the
            supervisor was entered (automatic, group and API restarts).
        recent_restarts: the restart-intensity window now, oldest first.
        max_restarts: the intensity limit.
        within: the intensity window, seconds.
        path: its place in the tree, ``"root/child/..."``: the source of its
            supervision events.
        events_dropped: supervision events a full or closed bus refused.
    """

    name: str
    state: SupervisorState
    strategy: Strategy
    children: int
    active: int
    restarts: int
    recent_restarts: tuple[RestartRecord, ...]
    max_restarts: int
    within: float
    path: str
    events_dropped: int


@final
@attrs.frozen(kw_only=True)
class TreeNode:
    """One node of a supervision tree snapshot (``Supervisor.tree()``).

    Attributes:
        id: the supervisor's name (root) or the child's id.
        kind: ``"supervisor"`` for a supervisor or a child that runs one,
            else ``"worker"``.
        status: a ``SupervisorState`` value for the root, a ``ChildStatus``
            value for a child.
        restarts: how many times this child was restarted (0 for the root).
        children: the nodes below, in start order.
        os_pid: the pid of the program the child runs (``os_process``), or None.
        status_text: the program's last ``STATUS=`` message, or None.
    """

    id: str
    kind: Literal["supervisor", "worker"]
    status: str
    restarts: int = 0
    children: tuple[TreeNode, ...] = ()
    os_pid: int | None = None
    status_text: str | None = None

    def render(self) -> str:
        """Return the tree as text, one node per line, drawn with box characters."""
        lines = [self._label()]
        self._render_children(lines, "")
        return "\n".join(lines)

    def _label(self) -> str:
        label = f"{self.id} [{self.status}] {self.kind}"
        if self.restarts:
            label += f", restarts={self.restarts}"
        if self.os_pid is not None:
            label += f", pid={self.os_pid}"
        if self.status_text:
            label += f": {self.status_text}"
        return label

    def _render_children(self, lines: list[str], prefix: str) -> None:
        for index, child in enumerate(self.children):
            last = index == len(self.children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child._label()}")
            child._render_children(lines, prefix + ("    " if last else "│   "))


def _state(rt: Runtime) -> SupervisorState:
    if not rt.entered:
        return SupervisorState.NEW
    if rt.exit is not None:
        return SupervisorState.STOPPED
    if rt.stopping:
        return SupervisorState.STOPPING
    if not rt.ready:
        return SupervisorState.STARTING
    return SupervisorState.RUNNING


def _child_nodes(rt: Runtime) -> tuple[TreeNode, ...]:
    nodes = []
    for info in rt.machine.which_children():
        nested = rt.nested(info.id)
        below: tuple[TreeNode, ...] = ()
        if len(nested) == 1:
            below = _child_nodes(nested[0])
        elif nested:
            below = tuple(_tree(n) for n in nested)
        live = rt.live(info.id) if rt.programs else None
        nodes.append(
            TreeNode(
                id=info.id,
                kind="supervisor" if nested or info.id in rt.supervisor_ids else "worker",
                status=info.status.value,
                restarts=info.restarts,
                children=below,
                os_pid=None if live is None else live.os_pid,
                status_text=None if live is None else live._status_text,
            )
        )
    return tuple(nodes)


def _tree(rt: Runtime) -> TreeNode:
    return TreeNode(
        id=rt.name, kind="supervisor", status=_state(rt).value, children=_child_nodes(rt)
    )


def only_cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is ``trio.Cancelled``, or a group of nothing else."""
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(only_cancelled(leaf) for leaf in exc.exceptions)
    return False


def cut_short(supervisor: Supervisor | DynamicSupervisor) -> None:
    """Shut ``supervisor`` down now, cancelling every child at once, down the tree.

    For ``trio_smith.serve``: a second stop signal, or the shutdown deadline,
    stops waiting for each child's ``shutdown`` (docs/design.md rule 43).
    """
    supervisor._rt.cut_short()


def _specs(children: object) -> tuple[ChildSpec, ...]:
    """The children as a tuple, refusing what is not a collection of them (rule 7)."""
    if isinstance(children, str | bytes | ChildSpec) or not isinstance(children, Iterable):
        raise TypeError(f"children must be an iterable of ChildSpec, got {children!r}")
    return tuple(children)


def _tree_spec(
    child_id: str,
    make: functools.partial[Supervisor] | functools.partial[DynamicSupervisor],
    kind: str,
    name: str | None,
    restart: Restart,
    shutdown: float | None,
    significant: bool,
    backoff: Backoff | None,
) -> ChildSpec:
    """The spec of a child that runs the supervisor ``make`` builds (``.spec``)."""
    tree = _nested.NestedTree(make, f"{kind} {name or child_id!r}")
    return ChildSpec(
        child_id,
        _nested.run_tree,
        (tree,),
        restart=restart,
        shutdown=shutdown,
        significant=significant,
        backoff=backoff,
    )


class _Base:
    """What both supervisors share: ``async with``, introspection, shutdown."""

    __slots__ = ("_rt",)

    _rt: Runtime

    @property
    def name(self) -> str:
        """The supervisor's name (default: the id of the child it runs in)."""
        return self._rt.name

    async def __aenter__(self) -> Self:
        rt = self._rt
        if rt.entered:
            raise RuntimeError(f"supervisor {rt.name!r} was already entered; build a new one")
        rt.entered = True
        cm = trio.open_nursery()
        rt.nursery_cm = cm
        nursery = await cm.__aenter__()
        rt.attach(nursery)
        nursery.start_soon(rt.run, name=f"trio_smith supervisor {rt.name}")
        try:
            await rt.wait_ready()
        except BaseException as exc:
            await self._leave(exc)
            raise
        if rt.failure is not None:  # a child failed to start (OTP R2.3)
            await self._leave(None)
        rt.body_running = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        await self._leave(exc)
        return False

    async def _leave(self, exc: BaseException | None) -> None:
        """Stop (if not stopped), close the nursery, and raise what must be raised."""
        rt = self._rt
        rt.body_running = False
        if exc is not None and not isinstance(exc, trio.Cancelled):
            rt.interrupt()  # an error in the body: ordered shutdown at once
        cm = rt.nursery_cm
        assert cm is not None
        try:
            await cm.__aexit__(None, None, None)
        except BaseException as nursery_exc:
            rt.detach()
            failure = rt.failure
            if failure is not None and only_cancelled(nursery_exc):
                raise failure from failure.__cause__
            raise
        rt.detach()
        failure = rt.failure
        if failure is None:
            return
        if exc is None or isinstance(exc, trio.Cancelled):
            # Bare, not in an ExceptionGroup (docs/design.md rule 16).
            raise failure from failure.__cause__
        raise BaseExceptionGroup(
            f"supervisor {rt.name!r} gave up while the body of its 'async with' raised",
            [exc, failure],
        )

    async def shutdown(self) -> None:
        """Stop every child in reverse start order and wait until the supervisor has stopped.

        The request waits its turn behind the requests already queued (OTP
        R12.1). ``async with`` then exits normally. Calling it again, or after
        the supervisor stopped, just waits.

        Raises:
            SupervisorNotRunning: the supervisor was never entered.
        """
        rt = self._rt
        if not rt.entered:
            await trio.lowlevel.checkpoint()
            raise SupervisorNotRunning(rt.name)
        rt.request_shutdown()
        await rt.done.wait()

    def which_children(self) -> list[ChildInfo]:
        """Return a snapshot of every child, in start order (D4). Never blocks.

        A child watched for hangs (``ChildSpec.heartbeat``) has its current
        ``phi`` and ``last_heartbeat``; a child waiting for a delayed restart
        (:class:`Backoff`) has its ``restart_at``; the others have None.
        """
        rt = self._rt
        infos = rt.machine.which_children()
        if rt.exit is not None:
            # A stopped supervisor has no live incarnation and no pending
            # restart (and it may be asked after trio.run has returned).
            return infos
        restart_at = rt.restart_deadlines()
        if not (rt.hung.watched or rt.programs or restart_at):
            return infos  # nothing to add: the common case stays one copy
        now_ms = to_ms(trio.current_time()) if rt.hung.watched else 0
        out = []
        for info in infos:
            live = rt.live(info.id)
            if live is None:
                at = restart_at.get(info.id)
                out.append(info if at is None else attrs.evolve(info, restart_at=at))
                continue
            phi = rt.phi_of(info.id, now_ms) if rt.hung.watched else None
            pid, text = live.os_pid, live._status_text
            if phi is None and pid is None:
                out.append(info)
            else:
                beat = None if phi is None else live.last_heartbeat
                out.append(
                    attrs.evolve(info, phi=phi, last_heartbeat=beat, os_pid=pid, status_text=text)
                )
        return out

    def count_children(self) -> ChildCounts:
        """Count the children as OTP's ``count_children/1`` does. Never blocks.

        A child counts as a supervisor once it has been seen running one (D11).
        """
        rt = self._rt
        return rt.machine.count_children(is_supervisor=rt.supervisor_ids.__contains__)

    def statistics(self) -> SupervisorStatistics:
        """Return a frozen snapshot of the supervisor. Never blocks."""
        rt = self._rt
        machine = rt.machine
        counts = machine.count_children()
        return SupervisorStatistics(
            name=rt.name,
            state=_state(rt),
            strategy=machine.strategy,
            children=counts.specs,
            active=counts.active,
            restarts=rt.restarts,
            recent_restarts=machine.restart_history(trio.current_time()),
            max_restarts=rt.max_restarts,
            within=rt.within,
            path=rt.path,
            events_dropped=rt.events_dropped,
        )

    def tree(self) -> TreeNode:
        """Return a snapshot of the live tree below this supervisor.

        Children that run supervisors (nested ``async with Supervisor``) show
        their own children, recursively.
        """
        return _tree(self._rt)

    def render(self) -> str:
        """Return the live tree below this supervisor as text (``tree().render()``)."""
        return self.tree().render()

    def find(self, path: str) -> Supervisor | DynamicSupervisor:
        """Return the live supervisor at ``path`` in the tree below this one. Never blocks.

        The path is the names of the supervisors from this one down,
        "/"-separated, this one's first: ``root.find("app/agents")``, as
        ``statistics().path`` shows them. A nested supervisor's name is the
        id of the child that runs it unless it was given one. Live: entered
        and not stopped yet; a supervisor whose child is restarting is not.

        Args:
            path: the names, this supervisor's first.

        Returns:
            The nested ``Supervisor`` or ``DynamicSupervisor``, or this one.

        Raises:
            ChildNotFound: no live supervisor there; ``.found`` is the part
                of the path that was found, ``.child_id`` the first name
                that was not.
            TypeError: ``path`` is not a str.
        """
        face = _nested.find(self._rt, path).face
        assert face is not None
        return face

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._rt.name!r} {_state(self._rt).value}>"


@final
class Supervisor(_Base):
    """An Erlang/OTP supervisor run by trio: ``async with Supervisor(...) as sup:``.

    Entering starts the children one at a time in list order, each started
    before the next (a child whose ``fn`` takes ``task_status`` counts as
    started when it calls ``task_status.started()``). The block then behaves
    as a nursery: leaving it waits until the supervisor stops, which happens
    only on :meth:`shutdown`, giving up, auto-shutdown, an error in the block,
    or cancellation from outside. Whatever the trigger, the children stop one
    at a time in reverse start order before anything propagates.

    Args:
        children: the child specs, in start order.
        strategy: what a restart touches (OTP rules R4.1-R4.6; ``ESCALATE`` gives
            up at the first abnormal exit).
        max_restarts: restarts tolerated within ``within`` seconds; one more
            makes the supervisor give up (OTP intensity, R5.3).
        within: the restart-intensity window in seconds, finite and > 0.
        backoff: delays before automatic restarts; None restarts at once as
            OTP does. A child's own ``ChildSpec.backoff`` wins.
        auto_shutdown: when significant children shut the supervisor down.
        name: for logs, errors and the tree; default: the id of the child it
            runs in, or ``"supervisor"``.
        events: where to publish supervision events (child started /
            stopped / failed / restarted, supervisor started / gave up /
            stopped; see ``trio_smith.events.SupervisionEvent``), e.g. an
            ``EventBus``: anything with ``publish_nowait(event)``. Their source
            is the supervisor's path. A nested supervisor without its own
            inherits its parent's. Publishing never blocks supervision: an
            event the publisher refuses is dropped and counted
            (``statistics().events_dropped``).
        report_limit: the crash-report burst limit: at most
            ``report_limit.burst`` full crash reports (with traceback) per
            ``report_limit.window`` seconds, then one summary line with the
            count of the others; None writes every report in full.

    Raises:
        ValueError: an argument out of range, a duplicate child id, or a
            significant child under ``AutoShutdown.NEVER``.
        TypeError: an argument of the wrong type.

    ``async with`` raises:

    - ``ChildStartFailed``: a child failed before it had started, on entry;
      the children already started were stopped in reverse order.
    - ``RestartIntensityExceeded``: too many restarts (bare, ``__cause__`` is
      the child's error, ``.restarts`` the window).
    - ``ChildFailureEscalated``: an abnormal exit under ``Strategy.ESCALATE``.
    - The body's own exception, after the ordered shutdown.
    """

    __slots__ = ()

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        name: str | None = None,
        events: EventPublisher | None = None,
        report_limit: ReportLimit | None = DEFAULT_REPORT_LIMIT,
    ) -> None:
        self._rt = Runtime(
            _specs(children),
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            auto_shutdown=auto_shutdown,
            name=name,
            kind="supervisor",
            events=events,
            report_limit=report_limit,
        )
        self._rt.face = self

    @staticmethod
    def spec(
        id: str,
        children: Iterable[ChildSpec] = (),
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | None = None,
        significant: bool = False,
        restart_backoff: Backoff | None = None,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        name: str | None = None,
        events: EventPublisher | None = None,
        report_limit: ReportLimit | None = DEFAULT_REPORT_LIMIT,
    ) -> ChildSpec:
        """Return the spec of a child that runs a nested ``Supervisor`` of ``children``.

        OTP's supervisor child. Its start completes once the nested
        supervisor has started every child of its own (so a sibling started
        after it finds them running); stopping it is the nested supervisor's
        ordered stop, waited for (``shutdown=None``: D19, OTP's
        ``infinity``). When the nested supervisor gives up, its error
        (``RestartIntensityExceeded``...) is the child's failure and the
        parent applies ``restart`` (D6). Each start runs a fresh supervisor
        (OTP R5.7). Find it with ``find("<root>/.../<name>")``.

        The options of the child in its parent keep ``ChildSpec``'s names,
        those of the nested supervisor ``Supervisor``'s; ``backoff`` is the
        nested supervisor's (for its children), ``restart_backoff`` the
        child's own. Every option is checked here, at the call.

        Args:
            id: the child's id in its parent, and the nested supervisor's
                name unless ``name`` is given.
            children: the nested supervisor's children, in start order.
            restart: the child's restart type (``ChildSpec.restart``).
            shutdown: how the child is stopped (``ChildSpec.shutdown``); None
                waits for the nested supervisor's ordered stop.
            significant: as ``ChildSpec.significant``.
            restart_backoff: delays before the parent restarts the child
                (``ChildSpec.backoff``).
            strategy: as for :class:`Supervisor`.
            max_restarts: as for :class:`Supervisor`.
            within: as for :class:`Supervisor`.
            backoff: as for :class:`Supervisor`: the nested supervisor's
                delays before restarting its children.
            auto_shutdown: as for :class:`Supervisor`.
            name: the nested supervisor's name; default ``id``.
            events: as for :class:`Supervisor`; default: its parent's.
            report_limit: as for :class:`Supervisor`.

        Returns:
            The child spec, for a parent's children or ``start_child``.

        Raises:
            TypeError: an option of the wrong type, or one neither
                ``ChildSpec`` nor ``Supervisor`` takes (naming it).
            ValueError: an option out of range, a duplicate child id, or a
                significant child under ``AutoShutdown.NEVER``.
        """
        make = functools.partial(
            Supervisor,
            _specs(children),
            strategy=strategy,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            auto_shutdown=auto_shutdown,
            name=name,
            events=events,
            report_limit=report_limit,
        )
        make()  # every option checked now (docs/design.md rule 7)
        return _tree_spec(
            id, make, "Supervisor", name, restart, shutdown, significant, restart_backoff
        )

    async def _request(self, request: Input) -> None:
        await self._rt.call(request)

    async def start_child(self, spec: ChildSpec) -> None:
        """Add a child at the end of the start order and start it.

        Waits until it has started (``task_status.started()``); a child that
        returns before that is kept stopped (OTP ``ignore``) unless temporary.

        Raises:
            TypeError: ``spec`` is not a ChildSpec.
            ValueError: ``spec`` is significant under ``AutoShutdown.NEVER``.
            ChildAlreadyStarted: a child with that id is running.
            ChildAlreadyPresent: a child with that id exists, not running.
            ChildStartFailed: it failed before it had started (its error is
                ``__cause__``); the spec is discarded (OTP R1.11).
            SupervisorNotRunning: the supervisor is not running.
        """
        if not isinstance(spec, ChildSpec):
            raise TypeError(f"spec must be a ChildSpec, got {spec!r}")
        await self._request(StartChildRequested(spec=spec))

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child as its ``shutdown`` says; idempotent.

        It is not restarted and its end never triggers auto-shutdown; a
        temporary child's spec is removed. Stopping a restarting child ends
        its retries.

        Raises:
            ChildNotFound: no child with that id.
            SupervisorNotRunning: the supervisor is not running.
        """
        await self._request(TerminateChildRequested(child_id=child_id))

    async def restart_child(self, child_id: str) -> None:
        """Start a stopped child again, in its place in the start order.

        This never counts toward restart intensity.

        Raises:
            ChildNotFound: no child with that id.
            ChildRunning: it is running.
            ChildRestarting: it waits for an automatic restart.
            ChildStartFailed: it failed before it had started; it stays stopped.
            SupervisorNotRunning: the supervisor is not running.
        """
        await self._request(RestartChildRequested(child_id=child_id))

    async def delete_child(self, child_id: str) -> None:
        """Remove a stopped child's spec.

        Raises:
            ChildNotFound: no child with that id.
            ChildRunning: it is running.
            ChildRestarting: it waits for an automatic restart.
            SupervisorNotRunning: the supervisor is not running.
        """
        await self._request(DeleteChildRequested(child_id=child_id))


@final
@attrs.frozen(kw_only=True)
class ChildHandle:
    """A child of a :class:`DynamicSupervisor`, as ``start_child`` returns it.

    Attributes:
        id: the child's id in its supervisor: ``"<template id>-<n>"``.
        args: the arguments it was started with (after the template's).
    """

    id: str
    args: tuple[object, ...]
    owner: object = attrs.field(eq=False, repr=False)
    _end: ChildEnd = attrs.field(eq=False, repr=False)

    async def wait(self) -> object:
        """Wait until the child has ended for good; return what its function returned.

        A child ends for good when its supervisor will not start it again:
        a temporary child after its first end, a transient one after a
        normal return, one whose start was ignored (it returned before
        ``task_status.started()``), and any child that ``terminate_child``
        or its supervisor's stop ended. A restart is no end: the wait goes
        on across restarts. Any number of tasks may wait, before or after
        the end; cancelling one changes nothing for the others or for the
        child (docs/design.md rule 39).

        Returns:
            What the child's function returned (its last incarnation).

        Raises:
            ChildFailed: it failed and was not restarted: it was temporary,
                or its supervisor gave up because of this failure. Its error
                is ``__cause__``.
            ChildTerminated: its supervisor stopped it for good; ``.reason``
                says how (``"terminate_child"``, ``"shutdown"``, or
                ``"gave_up"``, with the supervisor's error as ``__cause__``).
        """
        return await self._end.wait(self.id)


@final
class DynamicSupervisor(_Base):
    """Many children of one template, started on demand (OTP simple_one_for_one).

    Each child runs ``template.fn(*template.args, *args)`` with the
    template's restart type, shutdown and backoff, and is restarted with the
    same arguments as ``Strategy.ONE_FOR_ONE`` says. A child that ends for
    good is removed (OTP R4.7, R4.8). On shutdown every child is asked to stop
    at once and they share one deadline (OTP: in parallel). It starts empty.

    Args:
        template: the spec every child is made from; its id prefixes the
            children's ids. It may not be significant (OTP R1.3).
        max_children: how many children may exist at once; None for no limit
            (Elixir ``DynamicSupervisor``'s ``max_children``).
        max_restarts: as for :class:`Supervisor`.
        within: as for :class:`Supervisor`.
        backoff: as for :class:`Supervisor` (the template's own wins).
        name: as for :class:`Supervisor`.
        events: as for :class:`Supervisor`.
        report_limit: as for :class:`Supervisor`.

    Raises:
        ValueError: an argument out of range, or a significant template.
        TypeError: an argument of the wrong type.
    """

    __slots__ = ("_check", "_counter", "_template")

    def __init__(
        self,
        template: ChildSpec,
        *,
        max_children: int | None = None,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        name: str | None = None,
        events: EventPublisher | None = None,
        report_limit: ReportLimit | None = DEFAULT_REPORT_LIMIT,
    ) -> None:
        if not isinstance(template, ChildSpec):
            raise TypeError(f"template must be a ChildSpec, got {template!r}")
        if template.significant:
            raise ValueError(
                f"template {template.id!r} is significant, but a DynamicSupervisor "
                "never shuts down by itself (OTP R1.3)"
            )
        self._template = template
        self._counter = itertools.count(1)
        self._check = ArgumentCheck(template, takes_task_status(template.fn))
        self._rt = Runtime(
            (),
            strategy=Strategy.ONE_FOR_ONE,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            auto_shutdown=AutoShutdown.NEVER,
            name=name,
            kind="dynamic supervisor",
            max_children=max_children,
            pool=True,
            events=events,
            report_limit=report_limit,
        )
        self._rt.face = self

    @staticmethod
    def spec(
        id: str,
        template: ChildSpec,
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | None = None,
        significant: bool = False,
        restart_backoff: Backoff | None = None,
        max_children: int | None = None,
        max_restarts: int = 3,
        within: float = 5.0,
        backoff: Backoff | None = None,
        name: str | None = None,
        events: EventPublisher | None = None,
        report_limit: ReportLimit | None = DEFAULT_REPORT_LIMIT,
    ) -> ChildSpec:
        """Return the spec of a child that runs a nested ``DynamicSupervisor`` of ``template``.

        As :meth:`Supervisor.spec`: the child is started once the pool
        has started (empty), stopping it stops the pool's children
        together and waits, and a pool that gives up makes the child fail.
        Options keep ``ChildSpec``'s and ``DynamicSupervisor``'s names;
        ``restart_backoff`` is the child's own ``ChildSpec.backoff``.

        Args:
            id: the child's id in its parent, and the pool's name unless
                ``name`` is given.
            template: the spec of every child of the pool.
            restart: the child's restart type (``ChildSpec.restart``).
            shutdown: how the child is stopped (``ChildSpec.shutdown``); None
                waits for the pool's stop.
            significant: as ``ChildSpec.significant``.
            restart_backoff: delays before the parent restarts the child.
            max_children: as for :class:`DynamicSupervisor`.
            max_restarts: as for :class:`DynamicSupervisor`.
            within: as for :class:`DynamicSupervisor`.
            backoff: as for :class:`DynamicSupervisor`.
            name: the pool's name; default ``id``.
            events: as for :class:`DynamicSupervisor`; default: its parent's.
            report_limit: as for :class:`DynamicSupervisor`.

        Returns:
            The child spec.

        Raises:
            TypeError: an option of the wrong type, or an unknown one.
            ValueError: an option out of range, or a significant template.
        """
        make = functools.partial(
            DynamicSupervisor,
            template,
            max_children=max_children,
            max_restarts=max_restarts,
            within=within,
            backoff=backoff,
            name=name,
            events=events,
            report_limit=report_limit,
        )
        make()  # every option checked now (docs/design.md rule 7)
        return _tree_spec(
            id, make, "DynamicSupervisor", name, restart, shutdown, significant, restart_backoff
        )

    @property
    def template(self) -> ChildSpec:
        """The spec every child is made from."""
        return self._template

    async def start_child(self, *args: object) -> ChildHandle:
        """Start a child running ``template.fn(*template.args, *args)``.

        Waits until it has started. A child that returns before calling
        ``task_status.started()`` is not kept (OTP R4.8); its handle then
        names no child, and its ``wait()`` returns what it returned.

        The arguments are checked against the template function's signature
        first (``task_status`` aside): a child that could never be called
        is refused here, before anything starts, rather than crash-looping
        until the pool gives up.

        Returns:
            The child's handle, for :meth:`terminate_child` and
            :meth:`ChildHandle.wait`.

        Raises:
            TypeError: the arguments do not fit the template's function
                (naming it and the problem).
            ChildLimitReached: ``max_children`` children exist already.
            ChildStartFailed: it failed before it had started (its error is
                ``__cause__``).
            SupervisorNotRunning: the supervisor is not running.
        """
        rt = self._rt
        template = self._template
        every = template.args + args
        self._check(every)
        child_id = f"{template.id}-{next(self._counter)}"
        spec = attrs.evolve(template, id=child_id, args=every)
        end = rt.expect_end(child_id)
        try:
            await rt.call(StartChildRequested(spec=spec))
        except BaseException:
            rt.forget_end(child_id)
            raise
        return ChildHandle(id=child_id, args=args, owner=rt, end=end)

    async def terminate_child(self, handle: ChildHandle) -> None:
        """Stop the child of a handle and remove it; a child that is gone already is fine.

        Raises:
            ChildNotFound: the handle is not from this supervisor.
            SupervisorNotRunning: the supervisor is not running.
        """
        if not isinstance(handle, ChildHandle):
            raise TypeError(f"handle must be a ChildHandle, got {handle!r}")
        if handle.owner is not self._rt:
            await trio.lowlevel.checkpoint()
            raise ChildNotFound(handle.id)
        # OTP: terminating a child that is already dead is ok.
        with contextlib.suppress(ChildNotFound):
            await self._rt.call(TerminateChildRequested(child_id=handle.id))

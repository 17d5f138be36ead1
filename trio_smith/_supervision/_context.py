"""What a running child knows about itself, and how it talks to its supervisor.

A :class:`ChildContext` is made per incarnation by the supervisor's runtime.
It reaches its supervisor only through :class:`ChildOwner`, a protocol of
four members, so the child side never depends on how the runtime works.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol, final

import trio

from .._core._spec import ChildStatus
from .._exceptions import NoCurrentChild

if TYPE_CHECKING:
    from .._event import Event
    from ._runtime import Runtime
    from ._watch import Watch

__all__ = ["CURRENT", "ChildContext", "ChildOwner", "TaskStatus", "current_child"]

CURRENT: Final[contextvars.ContextVar[ChildContext]] = contextvars.ContextVar(
    "trio_smith.current_child"
)


class ChildOwner(Protocol):
    """What a child's context needs from its supervisor."""

    @property
    def name(self) -> str:
        """The supervisor's name."""
        ...

    def beat(self, ctx: ChildContext, now: float) -> None:
        """A heartbeat of a watched incarnation."""
        ...

    def mark_started(self, ctx: ChildContext) -> None:
        """The incarnation called ``task_status.started()``."""
        ...

    def idle(self, ctx: ChildContext, idle: bool, now: float) -> None:
        """A watched incarnation entered (True) or left (False) its outermost ``idle()``."""
        ...

    def listen(self, child_id: str, listener: Callable[[ChildStatus | None], None]) -> None:
        """Tell ``listener`` the child's status after each fact about it (None: gone)."""
        ...


def current_child() -> ChildContext:
    """Return the context of the supervised child this code runs in.

    Tasks that a child starts in its own nurseries see the child's context
    too.

    Returns:
        The child's :class:`ChildContext`.

    Raises:
        NoCurrentChild: not called from inside a child of a supervisor.
    """
    ctx = CURRENT.get(None)
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

    # The underscored slots are the runtime's bookkeeping for this
    # incarnation (trio_smith/_supervision/_runtime.py); nothing outside the
    # _supervision package reads them.
    __slots__ = (
        "_after_supervisors",
        "_cause",
        "_ended",
        "_error",
        "_escaped",
        "_event",
        "_failure_cause",
        "_heartbeats",
        "_idle",
        "_kill_at",
        "_killed",
        "_last_heartbeat",
        "_normal",
        "_on_stop",
        "_os_pid",
        "_owner",
        "_result",
        "_scope",
        "_started",
        "_status_text",
        "_stop_asked",
        "_supervisors",
        "_watch",
        "id",
        "incarnation",
    )

    def __init__(self, owner: ChildOwner, child_id: str, incarnation: int) -> None:
        self._owner = owner
        self.id = child_id
        self.incarnation = incarnation
        # Invariant: the child's one cancel scope; shielded so that only its
        # own supervisor can cancel it (ordered shutdown, docs/design.md rule 14).
        self._scope = trio.CancelScope(shield=True)
        self._started = False
        self._ended = False
        #: Ended by a BaseException other than Cancelled (KeyboardInterrupt...):
        #: never a start result, never restarted (docs/design.md rule 15).
        self._escaped = False
        self._normal = False
        self._error: BaseException | None = None
        self._stop_asked = False
        self._killed = False
        self._kill_at = math.inf
        #: Shutdown None of a child that runs a supervisor: cancel it once its
        #: supervisors have stopped (OTP ``infinity`` for supervisors, D19).
        self._after_supervisors = False
        self._event: trio.Event | None = None
        #: Supervisors this child runs (they register when entered).
        self._supervisors: list[Runtime] = []
        self._heartbeats = 0
        self._last_heartbeat: float | None = None
        #: The supervision event that brought this incarnation about (a restart).
        self._cause: Event | None = None
        #: The event whose work it was doing when it failed (the current
        #: cause in its task then), or None.
        self._failure_cause: Event | None = None
        #: What its function returned (a normal exit), for ``ChildHandle.wait()``.
        self._result: object = None
        #: How many ``idle()`` blocks it is in: silence there never counts as hung.
        self._idle = 0
        #: Hung-child detection (``ChildSpec.heartbeat``); None: not watched.
        self._watch: Watch | None = None
        #: A program's pid and its last ``STATUS=`` (``os_process``); None for tasks.
        self._os_pid: int | None = None
        self._status_text: str | None = None
        #: Called (synchronously) when it is asked to stop: a program's stop
        #: signal goes out at once, without a task waiting for it.
        self._on_stop: Callable[[], None] | None = None

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
        if self._watch is not None and not self._idle:
            self._owner.beat(self, now)

    def idle(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A block in which this child waits for work: its silence there is never a hang.

        Wrap the waits of a watched child (``ChildSpec.heartbeat``) that may
        last longer than it is allowed to be silent, such as receiving the
        next job from a channel::

            while True:
                async with current_child().idle():
                    job = await jobs.receive()
                await handle(job)  # beats as it goes, if it runs long
                current_child().heartbeat()

        Inside, phi reads 0 and the child is never judged hung; heartbeats
        still count in ``heartbeats`` and ``last_heartbeat``. Leaving the
        outermost block counts as a heartbeat that starts the next interval
        afresh: the idle time never enters the heartbeat history
        (docs/design.md rule 38). Blocks may nest and may be entered by the
        tasks the child starts. Cheap: no checkpoint.

        Returns:
            An async context manager.
        """
        return _Idle(self)

    @property
    def os_pid(self) -> int | None:
        """The pid of the program this child runs (``os_process``), or None."""
        return self._os_pid

    @property
    def last_heartbeat(self) -> float | None:
        """``trio.current_time()`` of the last :meth:`heartbeat`, or None."""
        return self._last_heartbeat

    @property
    def heartbeats(self) -> int:
        """How many times :meth:`heartbeat` was called in this incarnation."""
        return self._heartbeats

    def __repr__(self) -> str:
        return (
            f"<ChildContext id={self.id!r} supervisor={self._owner.name!r} "
            f"incarnation={self.incarnation}>"
        )


@final
class _Idle:
    """``async with ctx.idle():`` (see :meth:`ChildContext.idle`)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: ChildContext) -> None:
        self._ctx = ctx

    async def __aenter__(self) -> None:
        ctx = self._ctx
        ctx._idle += 1
        if ctx._idle == 1 and ctx._watch is not None:
            ctx._owner.idle(ctx, True, trio.current_time())

    async def __aexit__(self, *exc_info: object) -> None:
        ctx = self._ctx
        ctx._idle -= 1
        if ctx._idle == 0 and ctx._watch is not None:
            ctx._owner.idle(ctx, False, trio.current_time())


@final
class TaskStatus:
    """The ``task_status`` a child gets: ``started()`` ends its start (trio's protocol)."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: ChildContext) -> None:
        self._ctx = ctx

    def started(self, value: object = None) -> None:
        ctx = self._ctx
        if ctx._started:
            raise RuntimeError("called 'started' twice on the same task status")
        ctx._owner.mark_started(ctx)


# ------------------------------------------------------------ for trio_smith.routing
#
# The registry follows agents that are supervised children. These two
# functions are all it may know of a child beyond the public API.


def listen_status(ctx: ChildContext, listener: Callable[[ChildStatus | None], None]) -> None:
    """Have ``listener`` told the child's status after each fact about it (None: gone).

    An agent's name outlives an incarnation only while its supervisor may
    start it again (docs/design.md, routing deviations). It replaces the
    child's previous listener, is dropped once told None, and must not raise.
    """
    ctx._owner.listen(ctx.id, listener)


def hung_verdict(ctx: ChildContext) -> BaseException | None:
    """The ``ChildHung`` this incarnation was judged with (it is being cancelled), or None."""
    watch = ctx._watch
    return None if watch is None else watch.hung

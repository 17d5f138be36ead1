"""Hung-child detection: Akka's phi accrual per watched incarnation.

Each incarnation of a child whose spec has a ``Heartbeat`` gets a
:class:`Watch` (its phi state, its creation counting as the first heartbeat,
docs/design.md A2). The supervisor's :class:`HungWatch` keeps one agenda of
exact deadlines (``PhiState.suspect_at``, A4); a heartbeat touches the
agenda only when it moves a deadline earlier. When a deadline comes and phi
has reached the threshold, the watch reports the incarnation as hung; the
supervision core decides whether it is cancelled (``ChildJudgedHung``, a
stale verdict is ignored), so this module only measures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from .._core._phi import PhiDeadlines, PhiState, to_ms
from .._core._spec import Heartbeat
from .._exceptions import ChildHung

if TYPE_CHECKING:
    from ._context import ChildContext

__all__ = ["HungWatch", "Watch"]

log: Final = logging.getLogger("trio_smith.supervisor")


@final
class Watch:
    """Hung-child detection for one incarnation: its phi state and its verdict."""

    __slots__ = ("heartbeat", "hung", "state")

    def __init__(self, heartbeat: Heartbeat, state: PhiState) -> None:
        self.heartbeat = heartbeat
        self.state = state
        #: Set once the incarnation was judged hung and its cancel was issued.
        self.hung: ChildHung | None = None


@final
class HungWatch:
    """The watched incarnations of one supervisor and their deadlines (ms).

    Args:
        wake: called when a deadline moved earlier than the control loop
            sleeps for.
    """

    __slots__ = ("_agenda", "_wake", "watched")

    def __init__(self, wake: Callable[[], None]) -> None:
        self._agenda: PhiDeadlines[ChildContext] = PhiDeadlines()
        self._wake = wake
        #: Whether any child was ever watched (which_children shows phi then).
        self.watched = False

    def __bool__(self) -> bool:
        return bool(self._agenda)

    def start(self, ctx: ChildContext, heartbeat: Heartbeat, now: float) -> None:
        """Watch a new incarnation; its creation is its first heartbeat (A2)."""
        state = PhiState(heartbeat._config)
        state.heartbeat(to_ms(now))
        watch = ctx._watch = Watch(heartbeat, state)
        self.watched = True
        self._schedule(ctx, watch)

    def _schedule(self, ctx: ChildContext, watch: Watch) -> None:
        due = watch.state.suspect_at()
        assert due is not None  # the state has had its first heartbeat
        if self._agenda.schedule(ctx, due):
            self._wake()

    def beat(self, ctx: ChildContext, now: float, supervisor: str, path: str) -> None:
        """A heartbeat: O(1); rescheduled only if its deadline moved earlier."""
        watch = ctx._watch
        assert watch is not None
        state = watch.state
        interval = state.heartbeat(to_ms(now))
        if interval is not None:
            # Akka's warning at 2/3 of the acceptable pause.
            log.warning(
                "child %r of supervisor %r: heartbeat interval is growing too large: %d ms",
                ctx.id,
                supervisor,
                interval,
                extra={
                    "supervisor": path,
                    "child_id": ctx.id,
                    "incarnation": ctx.incarnation,
                    "reason": "heartbeat_late",
                    "correlation_id": None,
                    "interval_ms": interval,
                },
            )
        if watch.hung is not None or ctx._ended:
            return
        due = self._agenda.due(ctx)
        if due is not None and state.suspected_before(due):
            self._schedule(ctx, watch)

    def pause(self, ctx: ChildContext) -> None:
        """The incarnation is idle: no deadline until :meth:`resume` (docs/design.md rule 38)."""
        self._agenda.discard(ctx)

    def resume(self, ctx: ChildContext, now: float) -> None:
        """It is no longer idle: a heartbeat at ``now`` that records no interval."""
        watch = ctx._watch
        assert watch is not None
        if watch.hung is not None or ctx._ended:
            return
        watch.state.resume(to_ms(now))
        self._schedule(ctx, watch)

    def next_due(self) -> float | None:
        """When the earliest deadline comes, in seconds, or None."""
        due = self._agenda.next_due()
        return None if due is None else due / 1000

    def due(self, now: float, supervisor: str) -> list[tuple[ChildContext, ChildHung]]:
        """The incarnations found hung now, each with its verdict.

        The others whose deadline came are rescheduled (a heartbeat moved
        their deadline later: lazy). Ended or already judged ones are dropped.
        """
        now_ms = to_ms(now)
        found = []
        for ctx, due in self._agenda.pop_due(now):
            watch = ctx._watch
            assert watch is not None
            if watch.hung is not None or ctx._ended or ctx._idle:
                continue
            # The loop woke at due / 1000 s: judge at due even if the clock,
            # converted back, reads a ms less (huge times).
            at = max(now_ms, due)
            state = watch.state
            phi = state.phi(at)
            threshold = state.config.threshold
            if phi < threshold:
                self._schedule(ctx, watch)
                continue
            assert state.timestamp is not None
            hung = ChildHung(
                ctx.id,
                supervisor,
                phi=phi,
                silence=(at - state.timestamp) / 1000,
                threshold=threshold,
            )
            found.append((ctx, hung))
        return found

    def discard(self, ctx: ChildContext) -> None:
        self._agenda.discard(ctx)

    def clear(self) -> None:
        self._agenda.clear()

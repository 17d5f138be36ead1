"""The phi-accrual failure detector: a registry of monitored nodes, Akka's semantics.

Theory of operation
===================

One :class:`PhiAccrualFailureDetector` holds a ``PhiState`` (the pure
machine of ``trio_smith._core._phi``, Akka's ``PhiAccrualFailureDetector``)
per node, as Akka's ``DefaultFailureDetectorRegistry`` does: the first
heartbeat registers a node, and a node never heard from counts as
available. Time is ``trio.current_time()``, converted to whole ms.

* **Queries are lazy.** ``phi``, ``is_available`` and ``is_monitoring``
  compute from the history and the clock when asked; they need no task.
* **expect(node) is lazy and exact.** Akka's cluster schedules
  ``ExpectedFirstHeartbeat`` after ``expected-response-after`` and injects a
  heartbeat if the node is still not monitored then. Here the node keeps
  the instant; whoever looks at the node at or after it first applies the
  synthetic heartbeat, stamped with that instant. The result is the one the
  timer would have given.
* **Notifications are edge-triggered and need the watcher.** ``async with
  detector:`` runs one task that sleeps until the earliest moment a node
  crosses the threshold (``PhiState.suspect_at``, exact to the ms), then
  calls ``on_unreachable(node, phi)`` once for that reachable -> unreachable
  edge. Its agenda is a ``PhiDeadlines`` (the supervisor's hung-child
  watch uses the same). A heartbeat is O(1): it
  reschedules only when it moves the node's deadline *earlier* (phi
  already reaches the threshold just before the scheduled instant), which
  is rare; a deadline that moves later is found when the entry comes due.
  ``on_reachable(node)`` is called by ``heartbeat()`` when a node reported
  unreachable is available again.

Invariant (while the watcher runs): every monitored or expected node that
was not reported unreachable has a deadline in the agenda, at its exact
deadline or earlier.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Final, Generic, Self, TypeVar, final

import attrs
import trio

from .._core._check import finite_at_least
from .._core._phi import PhiConfig, PhiDeadlines, PhiState, to_ms

__all__ = ["PhiAccrualFailureDetector", "PhiDetectorStatistics", "PhiNodeStatistics"]

log: Final = logging.getLogger("trio_smith.resilience")

N = TypeVar("N", bound=Hashable)


@final
@attrs.frozen(kw_only=True)
class PhiNodeStatistics(Generic[N]):
    """A snapshot of one node (``PhiAccrualFailureDetector.node_statistics``).

    Attributes:
        node: the node.
        phi: its suspicion level now.
        available: ``phi < threshold``.
        monitoring: whether it has had a heartbeat (real or expected).
        reported_unreachable: whether ``on_unreachable`` was called for it
            and no ``on_reachable`` since.
        last_heartbeat: time of its last heartbeat, whole ms as seconds, or None.
        samples: intervals in its history (the two bootstrap ones included).
        mean: mean interval, seconds, or None before the first heartbeat.
        std_deviation: population standard deviation of the intervals,
            seconds (before the ``min_std_deviation`` floor), or None.
        suspect_at: the time at which it becomes unavailable if it stays
            silent (ms as seconds), or None if it is not monitored.
    """

    node: N
    phi: float
    available: bool
    monitoring: bool
    reported_unreachable: bool
    last_heartbeat: float | None
    samples: int
    mean: float | None
    std_deviation: float | None
    suspect_at: float | None


@final
@attrs.frozen(kw_only=True)
class PhiDetectorStatistics:
    """A snapshot of a detector (``PhiAccrualFailureDetector.statistics``).

    Attributes:
        nodes: nodes registered (heard from, or expected).
        monitoring: nodes that have had a heartbeat.
        unavailable: nodes whose phi is at or above the threshold now.
        reported_unreachable: nodes reported by ``on_unreachable`` and not
            reachable again since.
        watching: whether the watcher task runs (inside ``async with``).
    """

    nodes: int
    monitoring: int
    unavailable: int
    reported_unreachable: int
    watching: bool


@final
class _Node:
    """One registered node: Akka's state, plus the watcher's bookkeeping."""

    __slots__ = ("expect_ms", "state", "unreachable")

    def __init__(self, state: PhiState) -> None:
        self.state = state
        #: Pending expect(): the synthetic first heartbeat's ms, or None.
        self.expect_ms: int | None = None
        #: on_unreachable was called and on_reachable not since.
        self.unreachable = False


@final
class PhiAccrualFailureDetector(Generic[N]):
    """Akka's phi-accrual failure detector for any number of nodes.

    A node is any hashable value. Call :meth:`heartbeat` when a node shows a
    sign of life; ask :meth:`phi` or :meth:`is_available`. The suspicion
    level phi grows while a node is silent, faster the more regular its
    heartbeats were; a node is unavailable once ``phi >= threshold``, and the
    chance that this is a mistake is about ``10 ** -threshold``. A node never
    heard from is available (not monitored), as in Akka's registry; use
    :meth:`expect` to have it suspected if it never speaks.

    Queries work at any time. Edge-triggered notifications
    (``on_unreachable``, ``on_reachable``) need the watcher task, run by
    ``async with detector:``.

    Durations are in seconds (``trio.current_time()``), used in whole
    milliseconds as Akka does. Defaults are Akka's cluster settings.

    Args:
        threshold: phi at which a node is unavailable; finite, > 0.
        max_sample_size: intervals kept per node, an int >= 1.
        min_std_deviation: floor of the standard deviation, seconds, >= 0.001.
        acceptable_heartbeat_pause: added to the mean interval, seconds, >= 0.
        first_heartbeat_estimate: the expected interval, which seeds a new
            node's history, seconds, >= 0.001.
        expected_response_after: delay of :meth:`expect`'s synthetic first
            heartbeat, seconds, >= 0.
        on_unreachable: called as ``on_unreachable(node, phi)`` by the
            watcher when a node becomes unavailable (once per edge).
        on_reachable: called as ``on_reachable(node)`` by :meth:`heartbeat`
            when a node reported unreachable is available again.

    Callbacks are synchronous; an exception they raise is logged on the
    ``trio_smith.resilience`` logger and otherwise ignored.

    Raises:
        ValueError: an argument out of range, naming it and its value.
        TypeError: a callback that is not callable.
    """

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        max_sample_size: int = 1000,
        min_std_deviation: float = 0.1,
        acceptable_heartbeat_pause: float = 3.0,
        first_heartbeat_estimate: float = 1.0,
        expected_response_after: float = 1.0,
        on_unreachable: Callable[[N, float], object] | None = None,
        on_reachable: Callable[[N], object] | None = None,
    ) -> None:
        self._config = PhiConfig(
            threshold=threshold,
            max_sample_size=max_sample_size,
            min_std_deviation=min_std_deviation,
            acceptable_heartbeat_pause=acceptable_heartbeat_pause,
            first_heartbeat_estimate=first_heartbeat_estimate,
        )
        finite_at_least("expected_response_after", expected_response_after, 0)
        if on_unreachable is not None and not callable(on_unreachable):
            raise TypeError(f"on_unreachable must be callable or None, got {on_unreachable!r}")
        if on_reachable is not None and not callable(on_reachable):
            raise TypeError(f"on_reachable must be callable or None, got {on_reachable!r}")
        self._expected_response_after = expected_response_after
        self._on_unreachable = on_unreachable
        self._on_reachable = on_reachable
        self._nodes: dict[N, _Node] = {}
        #: The watcher's agenda: each node's next instant to look at, ms.
        self._deadlines: PhiDeadlines[N] = PhiDeadlines()
        self._watching = False
        self._wake: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: AbstractAsyncContextManager[trio.Nursery] | None = None

    # ------------------------------------------------------------ parameters

    @property
    def threshold(self) -> float:
        """phi at which a node is unavailable."""
        return self._config.threshold

    @property
    def max_sample_size(self) -> int:
        """Intervals kept per node."""
        return self._config.max_sample_size

    @property
    def min_std_deviation(self) -> float:
        """Floor of the standard deviation, seconds."""
        return self._config.min_std_deviation

    @property
    def acceptable_heartbeat_pause(self) -> float:
        """Added to the mean interval, seconds."""
        return self._config.acceptable_heartbeat_pause

    @property
    def first_heartbeat_estimate(self) -> float:
        """The interval a new node's history is seeded with, seconds."""
        return self._config.first_heartbeat_estimate

    @property
    def expected_response_after(self) -> float:
        """Delay of :meth:`expect`'s synthetic first heartbeat, seconds."""
        return self._expected_response_after

    # ------------------------------------------------------------ heartbeats

    def heartbeat(self, node: N) -> None:
        """Record a heartbeat from ``node`` now, registering it if new.

        O(1), no checkpoint. The interval since the last heartbeat enters the
        history only if the node was available (Akka); an interval of at
        least 2/3 of the acceptable pause is logged as a warning. If the node
        was reported unreachable and is available now, ``on_reachable(node)``
        is called.
        """
        now_ms = to_ms(trio.current_time())
        entry = self._nodes.get(node)
        if entry is None:
            entry = self._nodes[node] = _Node(PhiState(self._config))
        elif entry.expect_ms is not None:
            self._settle_expect(entry, now_ms)
        state = entry.state
        interval = state.heartbeat(now_ms)
        if interval is not None:
            # Akka: "heartbeat interval is growing too large for address ...".
            log.warning(
                "heartbeat interval is growing too large for node %r: %d ms", node, interval
            )
        if entry.unreachable:
            if state.phi(now_ms) < self._config.threshold:
                entry.unreachable = False
                if self._watching:
                    self._schedule(node, entry)
                self._notify_reachable(node)
            return
        if self._watching:
            due = self._deadlines.due(node)
            if due is None or state.suspected_before(due):
                self._schedule(node, entry)

    def expect(self, node: N) -> None:
        """Expect a first heartbeat from ``node`` within ``expected_response_after``.

        Akka's ``ExpectedFirstHeartbeat``: if the node has had no heartbeat
        by then, a synthetic one is recorded at that instant, so that a node
        that never speaks is eventually suspected. No effect on a monitored
        node; a second call keeps the earlier instant. Registers the node.
        """
        now = trio.current_time()
        at = to_ms(now + self._expected_response_after)
        entry = self._nodes.get(node)
        if entry is None:
            entry = self._nodes[node] = _Node(PhiState(self._config))
        else:
            if entry.expect_ms is not None:
                self._settle_expect(entry, to_ms(now))
            if entry.state.is_monitoring:
                return
        if entry.expect_ms is None or at < entry.expect_ms:
            entry.expect_ms = at
            if self._watching:
                due = self._deadlines.due(node)
                if due is None or at < due:
                    self._schedule(node, entry)

    def remove(self, node: N) -> None:
        """Forget a node (no callback). Unknown nodes are ignored."""
        self._nodes.pop(node, None)
        self._deadlines.discard(node)

    def reset(self) -> None:
        """Forget every node (no callbacks)."""
        self._nodes.clear()
        self._deadlines.clear()

    # ------------------------------------------------------------ queries

    def _state(self, node: N, now_ms: int) -> _Node | None:
        entry = self._nodes.get(node)
        if entry is not None and entry.expect_ms is not None:
            self._settle_expect(entry, now_ms)
        return entry

    def phi(self, node: N) -> float:
        """Return the node's suspicion level now; 0.0 for a node not monitored."""
        now_ms = to_ms(trio.current_time())
        entry = self._state(node, now_ms)
        return 0.0 if entry is None else entry.state.phi(now_ms)

    def is_available(self, node: N) -> bool:
        """Whether ``phi(node) < threshold``; True for a node not monitored (Akka)."""
        return self.phi(node) < self._config.threshold

    def is_monitoring(self, node: N) -> bool:
        """Whether the node has had a heartbeat (real, or expected and due)."""
        entry = self._state(node, to_ms(trio.current_time()))
        return entry is not None and entry.state.is_monitoring

    def suspect_at(self, node: N) -> float | None:
        """Return when the node becomes unavailable if it stays silent.

        Exact: ``is_available(node)`` is False from that ``trio.current_time()``
        on (whole ms), True before, unless a heartbeat comes.

        Returns:
            A time in seconds (whole ms), or None for a node not monitored.
        """
        entry = self._state(node, to_ms(trio.current_time()))
        if entry is None:
            return None
        due = entry.state.suspect_at()
        return None if due is None else due / 1000

    def nodes(self) -> list[N]:
        """Return the registered nodes, in registration order."""
        return list(self._nodes)

    def node_statistics(self, node: N) -> PhiNodeStatistics[N] | None:
        """Return a snapshot of one node, or None if it is not registered."""
        now_ms = to_ms(trio.current_time())
        entry = self._state(node, now_ms)
        if entry is None:
            return None
        state = entry.state
        history = state.history
        phi = state.phi(now_ms)
        due = state.suspect_at()
        return PhiNodeStatistics(
            node=node,
            phi=phi,
            available=phi < self._config.threshold,
            monitoring=state.is_monitoring,
            reported_unreachable=entry.unreachable,
            last_heartbeat=None if state.timestamp is None else state.timestamp / 1000,
            samples=0 if history is None else len(history),
            mean=None if history is None else history.mean / 1000,
            std_deviation=None if history is None else history.std_deviation / 1000,
            suspect_at=None if due is None else due / 1000,
        )

    def statistics(self) -> PhiDetectorStatistics:
        """Return a snapshot of the whole detector."""
        now_ms = to_ms(trio.current_time())
        threshold = self._config.threshold
        monitoring = unavailable = unreachable = 0
        for entry in self._nodes.values():
            if entry.expect_ms is not None:
                self._settle_expect(entry, now_ms)
            state = entry.state
            monitoring += state.is_monitoring
            unavailable += state.phi(now_ms) >= threshold
            unreachable += entry.unreachable
        return PhiDetectorStatistics(
            nodes=len(self._nodes),
            monitoring=monitoring,
            unavailable=unavailable,
            reported_unreachable=unreachable,
            watching=self._watching,
        )

    # ------------------------------------------------------------ the watcher

    async def __aenter__(self) -> Self:
        """Start the watcher task that calls ``on_unreachable``."""
        if self._watching:
            raise RuntimeError("this failure detector's watcher is already running")
        manager = trio.open_nursery()
        nursery = await manager.__aenter__()
        self._nursery_manager = manager
        self._watching = True
        self._deadlines.clear()
        for node, entry in self._nodes.items():
            if not entry.unreachable:
                self._schedule(node, entry)
        nursery.start_soon(self._watch, name="trio_smith phi-accrual watcher")
        self._nursery = nursery
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Stop the watcher; queries keep working, notifications stop."""
        nursery = self._nursery
        manager = self._nursery_manager
        assert nursery is not None
        assert manager is not None
        nursery.cancel_scope.cancel(reason="the failure detector's async with exited")
        self._watching = False
        self._deadlines.clear()
        self._wake = None
        self._nursery = None
        self._nursery_manager = None
        return await manager.__aexit__(exc_type, exc, tb)

    def _settle_expect(self, entry: _Node, now_ms: int) -> None:
        """Apply a due expect(): the synthetic first heartbeat, at its own instant."""
        at = entry.expect_ms
        assert at is not None
        if entry.state.is_monitoring:
            entry.expect_ms = None
        elif at <= now_ms:
            entry.expect_ms = None
            entry.state.heartbeat(at)

    def _schedule(self, node: N, entry: _Node) -> None:
        """Set the node's next instant to look at: its deadline, or a pending expect."""
        due = entry.state.suspect_at()
        if due is None:
            due = entry.expect_ms
            if due is None:
                self._deadlines.discard(node)
                return
        if self._deadlines.schedule(node, due) and self._wake is not None:
            self._wake.set()  # sooner than the watcher sleeps for

    async def _watch(self) -> None:
        deadlines = self._deadlines
        while True:
            self._fire_due()
            self._wake = trio.Event()
            due = deadlines.next_due()
            with trio.move_on_at(math.inf if due is None else due / 1000):
                await self._wake.wait()

    def _fire_due(self) -> None:
        now = trio.current_time()
        now_ms = to_ms(now)
        threshold = self._config.threshold
        for node, due in self._deadlines.pop_due(now):
            entry = self._nodes.get(node)
            if entry is None or entry.unreachable:
                continue  # removed, or already reported
            # Woken at due / 1000 s: look at the node at due at least, even
            # if the clock, converted back, reads a ms less (huge times).
            at = max(now_ms, due)
            if entry.expect_ms is not None:
                self._settle_expect(entry, at)
            phi = entry.state.phi(at)
            if phi < threshold:
                self._schedule(node, entry)  # moved later by heartbeats: lazy
                continue
            entry.unreachable = True
            self._notify_unreachable(node, phi)

    def _notify_unreachable(self, node: N, phi: float) -> None:
        callback = self._on_unreachable
        # Akka's cluster: "Marking node(s) as UNREACHABLE" (a warning).
        log.warning(
            "node %r is unreachable (phi %.2f >= threshold %r)", node, phi, self._config.threshold
        )
        if callback is None:
            return
        try:
            callback(node, phi)
        except Exception:
            log.exception("on_unreachable callback raised for node %r", node)

    def _notify_reachable(self, node: N) -> None:
        callback = self._on_reachable
        log.info("node %r is reachable again", node)
        if callback is None:
            return
        try:
            callback(node)
        except Exception:
            log.exception("on_reachable callback raised for node %r", node)

    def __repr__(self) -> str:
        return (
            f"<PhiAccrualFailureDetector threshold={self._config.threshold!r} "
            f"nodes={len(self._nodes)} watching={self._watching}>"
        )

"""Delayed restarts: the timers of ``ScheduleRestart`` commands with a delay.

The core numbers its timers and may cancel one (``CancelRestart``); a timer
that comes due becomes a ``TimerFired`` fact, queued like any other. A
cancelled timer stays in the heap, marked dead, and is skipped when it comes
due (cancelling is O(1), the heap stays valid).
"""

from __future__ import annotations

import heapq
import math
from typing import final

__all__ = ["RestartTimers"]


@final
class _Entry:
    __slots__ = ("child_id", "deadline", "live", "timer")

    def __init__(self, deadline: float, timer: int, child_id: str) -> None:
        self.deadline = deadline
        self.timer = timer
        self.child_id = child_id
        self.live = True

    def __lt__(self, other: _Entry) -> bool:
        # Timer numbers increase: equal deadlines fire in scheduling order.
        return (self.deadline, self.timer) < (other.deadline, other.timer)


@final
class RestartTimers:
    """The pending delayed restarts of one supervisor, by deadline (trio's clock)."""

    __slots__ = ("_by_timer", "_heap")

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._by_timer: dict[int, _Entry] = {}

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, deadline: float, timer: int, child_id: str) -> None:
        entry = _Entry(deadline, timer, child_id)
        self._by_timer[timer] = entry
        heapq.heappush(self._heap, entry)

    def cancel(self, timer: int) -> None:
        """Forget a timer (``CancelRestart``); an unknown or fired one is fine."""
        entry = self._by_timer.pop(timer, None)
        if entry is not None:
            entry.live = False

    def pop_due(self, now: float) -> list[tuple[str, int]]:
        """The live timers due at ``now``, as (child id, timer), in deadline order."""
        heap = self._heap
        due = []
        while heap and heap[0].deadline <= now:
            entry = heapq.heappop(heap)
            self._by_timer.pop(entry.timer, None)
            if entry.live:
                due.append((entry.child_id, entry.timer))
        return due

    def deadlines(self) -> dict[str, float]:
        """The deadline of each child's live timer, by child id."""
        return {entry.child_id: entry.deadline for entry in self._by_timer.values()}

    def next_deadline(self) -> float:
        """The earliest deadline (a cancelled timer's included), or infinity."""
        return self._heap[0].deadline if self._heap else math.inf

    def clear(self) -> None:
        self._heap.clear()
        self._by_timer.clear()

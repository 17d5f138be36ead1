"""The restart-intensity window: one per supervisor (OTP rules R5.1-R5.6, docs/design.md)."""

from __future__ import annotations

from collections import deque
from typing import final

from .._exceptions import RestartRecord

__all__ = ["RestartWindow"]


@final
class RestartWindow:
    """Counts restarts in a sliding window and says when there were too many.

    OTP R5.3, in continuous time (R5.4, trio_smith's rule): at a restart at
    time ``t``, a recorded restart ``r`` still counts iff ``t - r <= within``;
    the new restart is recorded, and the supervisor must give up iff more than
    ``max_restarts`` restarts now count. So ``max_restarts`` restarts inside
    the window are tolerated and the next one is fatal; ``max_restarts=0``
    gives up at the first restart (R5.5).

    Invariant: ``_records`` is ordered by time (``now`` never goes back) and
    holds at most ``max_restarts + 1`` records, since the supervisor gives up
    as soon as it would hold more than ``max_restarts``.
    """

    __slots__ = ("_records", "max_restarts", "within")

    def __init__(self, max_restarts: int, within: float) -> None:
        self.max_restarts = max_restarts
        self.within = within
        # (time, child id, after a normal exit): a RestartRecord is built
        # only when history is read.
        self._records: deque[tuple[float, str, bool]] = deque()

    def add(self, at: float, child_id: str, normal_exit: bool = False) -> bool:
        """Record a restart of ``child_id`` at time ``at``.

        Args:
            normal_exit: the restart follows a normal return (a PERMANENT
                child), not a failure; the give-up error says so.

        Returns:
            True if the restart is one too many: the supervisor must give up.
        """
        records = self._records
        while records and at - records[0][0] > self.within:
            records.popleft()
        records.append((at, child_id, normal_exit))
        return len(records) > self.max_restarts

    def history(self, now: float) -> tuple[RestartRecord, ...]:
        """Return the restarts that count at time ``now``, oldest first."""
        return tuple(
            RestartRecord(at=at, child_id=child_id, normal_exit=normal_exit)
            for at, child_id, normal_exit in self._records
            if now - at <= self.within
        )

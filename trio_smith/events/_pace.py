"""Fast-path scheduling: check for cancellation cheaply, yield every few operations.

Why: in trio a full checkpoint costs about 3 us, more than delivering an
event (0.3 us per delivery with one checkpoint per 64 events, 16-28x the
naive floor, against 2.8x with one per event; docs/performance.md). So the
bus's hot paths check for cancellation on every call and yield once every
``EVERY`` calls (``EventBus(checkpoint_every=...)``), or whenever they have
to wait anyway. Design rule 17.
"""

from __future__ import annotations

from typing import Final, final

from .._trio_private import cancel_requested

__all__ = ["EVERY", "Pacer", "cancel_requested"]

#: Fast-path operations between two yields to the scheduler, by default.
EVERY: Final = 64


@final
class Pacer:
    """Counts fast-path operations; every ``every``-th one is due to yield.

    Count the call on entry, so that the due call can make a full trio
    checkpoint: awaiting ``checkpoint_if_cancelled()`` before the work (a
    cancellation point), and a cancel-shielded yield after it (a schedule
    point), so that a cancellation never undoes or hides work done::

        due = self._pace.due()
        if due or cancel_requested():
            await trio.lowlevel.checkpoint_if_cancelled()
        ...  # the work
        if due:
            await trio.lowlevel.cancel_shielded_checkpoint()

    (A plain method, not an awaitable: building a coroutine on every call
    would cost as much as a delivery.) A call that waited has yielded anyway:
    it calls :meth:`reset` instead of yielding again.
    """

    __slots__ = ("_every", "_left")

    def __init__(self, every: int = EVERY) -> None:
        self._every = every
        self._left = every

    @property
    def every(self) -> int:
        """Calls between two yields (1: every call)."""
        return self._every

    def reset(self) -> None:
        """The caller has just yielded anyway."""
        self._left = self._every

    def due(self) -> bool:
        """Count one operation; True once every ``every`` calls."""
        self._left -= 1
        if self._left > 0:
            return False
        self._left = self._every
        return True

"""Fast-path scheduling: check for cancellation cheaply, yield every few operations.

Why: in trio a full checkpoint costs about 3 us, more than delivering an
event (reference/events.md section 0: 0.3 us per delivery with one checkpoint
per 64 events, 16-28x the naive floor, against 2.8x with one per event). So
the bus's hot paths check for cancellation on every call and yield once
every ``EVERY`` calls, or whenever they have to wait anyway. Design rule 17.
"""

from __future__ import annotations

from typing import Final, final

from trio.lowlevel import current_task

__all__ = ["EVERY", "Pacer", "cancel_requested"]

#: Fast-path operations between two yields to the scheduler.
EVERY: Final = 64


@final
class Pacer:
    """Counts fast-path operations; every ``EVERY``-th one is due to yield.

    Use it *after* the operation has taken effect, with a cancel-shielded
    yield, so that a cancellation never undoes (or hides) work done::

        if self._pace.due():
            await trio.lowlevel.cancel_shielded_checkpoint()

    (A plain method, not an awaitable: building a coroutine on every call
    would cost as much as a delivery.)
    """

    __slots__ = ("_left",)

    def __init__(self) -> None:
        self._left = EVERY

    def reset(self) -> None:
        """The caller has just yielded anyway."""
        self._left = EVERY

    def due(self) -> bool:
        """Count one operation; True once every ``EVERY`` calls."""
        self._left -= 1
        if self._left > 0:
            return False
        self._left = EVERY
        return True


def cancel_requested() -> bool:
    """Whether the calling task may be cancelled; cheap, and never yields.

    Use it as ``if cancel_requested(): await
    trio.lowlevel.checkpoint_if_cancelled()``, which raises ``Cancelled``
    exactly when trio's own test says so. It reads the task's cancel status
    directly: awaiting ``checkpoint_if_cancelled`` on every call costs a
    coroutine, 0.2-0.5 us, as much as the rest of a publish. Should a trio
    release rename that internal, the answer is True and every call takes the
    public path: slower, never wrong. (A pending KeyboardInterrupt is seen at
    the next yield, at most ``EVERY`` calls later.)
    """
    try:
        return bool(current_task()._cancel_status.effectively_cancelled)
    except AttributeError:
        return True

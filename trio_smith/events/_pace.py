"""``Pacer``: yield to the scheduler once every few fast-path operations.

Why: in trio a full checkpoint costs about 3 us, more than delivering an
event (reference/events.md section 0: 0.3 us per delivery with one checkpoint
per 64 events, 16-28x the naive floor, against 2.8x with one per event). So
the bus's hot paths check for cancellation on every call
(``checkpoint_if_cancelled``, which does not yield) and yield once every
``EVERY`` calls, or whenever they have to wait anyway. Design rule 17.
"""

from __future__ import annotations

from typing import Final, final

import trio

__all__ = ["EVERY", "Pacer"]

#: Fast-path operations between two yields to the scheduler.
EVERY: Final = 64


@final
class Pacer:
    """Counts fast-path operations; every ``EVERY``-th one yields, shielded.

    Call it *after* the operation has taken effect: the yield is
    cancel-shielded, so a cancellation never undoes (or hides) work done.
    """

    __slots__ = ("_left",)

    def __init__(self) -> None:
        self._left = EVERY

    def reset(self) -> None:
        """The caller has just yielded anyway."""
        self._left = EVERY

    async def __call__(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._left = EVERY
            await trio.lowlevel.cancel_shielded_checkpoint()

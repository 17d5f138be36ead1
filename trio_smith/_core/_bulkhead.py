"""A bulkhead's permits: how many calls hold one, and who gets a freed one.

Pure accounting (resilience4j ``SemaphoreBulkhead`` with a fair semaphore);
the trio shell (``trio_smith.resilience._bulkhead``) owns the queue of
waiters and tells this machine how many there are. A freed permit is handed
to the first waiter rather than put back, so a newcomer can never overtake a
waiter: the invariant is "there are waiters only when no permit is free"
(``held >= limit``), and a newcomer is admitted exactly when a permit is
free (docs/design.md rule 50).
"""

from __future__ import annotations

from typing import final

__all__ = ["Permits"]


@final
class Permits:
    """The permits of one bulkhead.

    ``held`` counts the calls that own a permit: running, or handed one and
    not yet resumed. It may exceed ``limit`` right after the limit was
    lowered; freed permits then vanish until it is back under the limit.

    Args:
        limit: the number of permits (an int >= 0, checked by the shell).
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self) -> bool:
        """Take a free permit for a newcomer, if there is one.

        Returns:
            True: the caller owns a permit. False: it must wait or be
            refused (there is no free permit, so no waiter is overtaken).
        """
        if self.held < self.limit:
            self.held += 1
            return True
        return False

    def give_back(self, waiting: int) -> bool:
        """A call that owned a permit ends.

        Args:
            waiting: the number of calls waiting for a permit.

        Returns:
            True: the permit goes to the first waiter, who now owns it
            (``held`` is unchanged). False: it is freed (or, above a lowered
            limit, it vanishes).
        """
        if waiting and self.held <= self.limit:
            return True
        self.held -= 1
        return False

    def resize(self, limit: int, waiting: int) -> int:
        """Set a new limit.

        A larger limit admits waiters at once; a smaller one takes effect as
        running calls end (nobody is stopped, and the caller never waits).

        Args:
            limit: the new number of permits (an int >= 0).
            waiting: the number of calls waiting for a permit.

        Returns:
            How many of the first waiters now own a permit.
        """
        self.limit = limit
        admitted = min(waiting, max(0, limit - self.held))
        self.held += admitted
        return admitted

    @property
    def available(self) -> int:
        """Free permits; 0 while ``held`` is above a lowered limit."""
        return max(0, self.limit - self.held)

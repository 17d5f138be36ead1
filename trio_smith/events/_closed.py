"""The two errors that are also trio's kin: a closed bus, a closed store.

They derive from :class:`trio.ClosedResourceError` as well as from
``EventsError``, so a caller catches them as it catches a closed trio
channel. They live here, not in ``trio_smith/_exceptions.py`` with the other
errors, because that module is below the pure core, which must not import
trio (design rules 8 and 11).
"""

from __future__ import annotations

from typing import final

import trio

from .._exceptions import EventsError

__all__ = ["BusClosed", "StoreClosed"]


@final
class BusClosed(EventsError, trio.ClosedResourceError):
    """The event bus is not open: it was never entered, or it has closed."""

    def __init__(self, bus: str) -> None:
        super().__init__(f"event bus {bus!r} is not open")
        self.bus = bus


@final
class StoreClosed(EventsError, trio.ClosedResourceError):
    """The event store has been closed."""

    def __init__(self, store: str) -> None:
        super().__init__(f"event store {store!r} is closed")
        self.store = store

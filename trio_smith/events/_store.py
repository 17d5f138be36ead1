"""The event store interface every backend implements, and what they share.

A store is an append-only log. Positions are dense from 1 and follow commit
order, so a reader that has seen position ``p`` has seen every committed
event up to ``p`` (no gaps that fill in later), whichever process committed
them: several processes may share one durable store (design rule 25).

The bus needs one thing beyond appends and reads: *commit listeners*. A store
calls each listener synchronously, on the trio thread, with every batch of
events committed to its log, in position order and exactly once per event
(a duplicate id is not a new event): its own appends and, for a log that
other processes (or other store objects) also write, theirs, as soon as it
sees them. The bus fans events out from there, which is what makes live
delivery follow store order even when appends commit in batches (group
commit) or their callers are cancelled mid-way.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, Self, final
from uuid import UUID

import attrs
import trio

from .._core._check import int_at_least, non_empty_str
from .._event import Event
from ._filter import EventFilter

__all__ = [
    "EventStore",
    "Listener",
    "StoreScan",
    "StoreStatistics",
    "check_checkpoint_args",
    "check_event",
    "check_prune_args",
    "check_read_args",
]

#: Called with each committed batch (non-empty, in position order).
Listener = Callable[[Sequence[Event]], None]

#: Events per page when a scan reads the store.
DEFAULT_PAGE: Final = 1000


@final
@attrs.frozen(kw_only=True)
class StoreStatistics:
    """A snapshot of an event store.

    Attributes:
        name: the store's name.
        head: the last position its listeners were told about.
        appended: events this store object committed (ids already stored
            are not counted).
        transactions: transactions that committed them (group commit puts
            many appends in one).
        followed: events other writers (processes, or other store objects on
            the same log) committed, that its listeners were told about.
        dropped: events given to ``append_nowait`` that could not be
            committed; each is also logged (logger ``trio_smith.events``).
        queued: appends queued or committing now.
        follow_error: why other writers' events cannot be read right now (a
            damaged row, a server gone away), or None; listeners get nothing
            past the head meanwhile. The store keeps trying.
        pruned: events this store object removed with ``prune`` (the
            durable stores; 0 for the others).
    """

    name: str
    head: int
    appended: int
    transactions: int
    followed: int
    dropped: int
    queued: int
    follow_error: str | None
    pruned: int = 0


def check_checkpoint_args(name: object, position: object = 0) -> str:
    """Validate the arguments of the checkpoint methods (every backend calls it)."""
    int_at_least("checkpoint position", position, 0)
    return non_empty_str("checkpoint name", name)


def check_prune_args(before: object, force: object) -> None:
    """Validate the arguments of ``prune`` (the durable stores call it).

    Raises:
        TypeError: ``before`` is not a datetime, or ``force`` not a bool.
        ValueError: ``before`` is naive.
    """
    if not isinstance(before, datetime):
        raise TypeError(f"before must be a datetime, got {before!r}")
    if before.utcoffset() is None:
        raise ValueError(f"before must be an aware datetime (with a time zone), got {before!r}")
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, got {force!r}")


def check_event(event: object) -> Event:
    """``event`` if it is an Event (every backend's appends call it)."""
    if not isinstance(event, Event):
        raise TypeError(f"expected an Event, got {event!r}")
    return event


def check_event_id(event_id: object) -> UUID:
    """``event_id`` if it is a UUID (every backend's ``get`` calls it)."""
    if not isinstance(event_id, UUID):
        raise TypeError(f"event_id must be a UUID, got {event_id!r}")
    return event_id


def check_read_args(
    filter: EventFilter | None, after: int, limit: int | None, last: bool = False
) -> EventFilter | None:
    """Validate the arguments of :meth:`EventStore.read` (every backend calls it)."""
    if filter is not None and not isinstance(filter, EventFilter):
        raise TypeError(f"filter must be an EventFilter or None, got {filter!r}")
    int_at_least("after", after, 0)
    int_at_least("limit", limit, 0, optional=True)
    if not isinstance(last, bool):
        raise TypeError(f"last must be a bool, got {last!r}")
    return filter


class EventStore(abc.ABC):
    """An append-only event log: the interface of every backend.

    Use it as an async context manager (``async with store:``) or call
    :meth:`aclose`. Every async method checks for cancellation; reads are
    full checkpoints, appends yield at least every 64 calls (design rule 17).
    """

    __slots__ = ("__weakref__", "_listeners")

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """A name for errors and logs (the file, for a file store)."""

    @abc.abstractmethod
    async def append(self, event: Event) -> Event:
        """Append one event; return it with its position once it is committed.

        Idempotent: if the store already holds an event with that id, nothing
        is written and the stored event (with its original position) is
        returned. The position of ``event`` itself is ignored.

        Raises:
            TypeError: ``event`` is not an Event.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        """Append events atomically, in order; return them with their positions.

        The new ones get consecutive positions; ids already stored (or
        repeated within ``events``) return the first stored event, as
        :meth:`append` does.

        Raises:
            TypeError: an item is not an Event (nothing is appended).
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    def append_nowait(self, event: Event) -> None:
        """Queue one event for appending without blocking.

        It is committed (and listeners told) as soon as the store can; an
        in-memory store does it at once.

        Raises:
            trio.WouldBlock: the store cannot take it now (nothing queued).
            TypeError: ``event`` is not an Event.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def read(
        self,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> list[Event]:
        """The events after position ``after`` that ``filter`` takes, in position order.

        This is the one query: a filter can name types, categories, sources
        (exact or prefix), correlation ids, a time range and a position
        range. Page with ``after=last_page[-1].position``.

        Args:
            filter: which events; None for all.
            after: only positions greater than this.
            limit: at most this many; None for all.
            last: with ``limit``, the last ``limit`` matching events rather
                than the first (still in position order), e.g. the latest 20.

        Raises:
            TypeError, ValueError: a bad argument.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def get(self, event_id: UUID) -> Event | None:
        """The event with this id, or None.

        Raises:
            TypeError: ``event_id`` is not a UUID.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def count(self, filter: EventFilter | None = None) -> int:
        """How many stored events ``filter`` takes (all, if None).

        Raises:
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def head(self) -> int:
        """The position of the last committed event; 0 when empty.

        Raises:
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def save_checkpoint(self, name: str, position: int) -> None:
        """Remember that the durable subscription ``name`` has handled up to ``position``.

        Raises:
            ValueError: an empty name, or a position < 0.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    async def load_checkpoint(self, name: str) -> int | None:
        """The position last saved for ``name``, or None if none was.

        Raises:
            ValueError: an empty name.
            StoreClosed: the store is closed.
        """

    @abc.abstractmethod
    def statistics(self) -> StoreStatistics:
        """A frozen snapshot: head, events appended and followed, drops, queue."""

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with each batch of newly committed events.

        See the module docstring for the guarantees. A listener must not
        raise, block, or append to the store (other listeners would see the
        nested batch first).

        Returns:
            A function that removes the listener (idempotent).

        Raises:
            TypeError: ``listener`` is not callable.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _notify(self, committed: Sequence[Event]) -> None:
        """Tell every listener about a committed batch (backends call it)."""
        for listener in tuple(self._listeners):
            listener(committed)

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close the store, after committing every queued append; idempotent."""

    def scan(self, filter: EventFilter | None = None, *, after: int = 0) -> StoreScan:
        """Iterate over the events :meth:`read` would return, a page at a time.

        ``async for event in store.scan(filter):`` reads pages of
        1000 events, so a long history never sits in memory at once.
        """
        check_read_args(filter, after, None)
        return StoreScan(self, filter, after)

    async def get_by_correlation(
        self, correlation_id: UUID, *, after: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The events of one correlation (a causal chain), in position order."""
        if not isinstance(correlation_id, UUID):
            raise TypeError(f"correlation_id must be a UUID, got {correlation_id!r}")
        return await self.read(
            EventFilter(correlation_ids={correlation_id}), after=after, limit=limit
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@final
class StoreScan:
    """An async iterator over a store's events, read a page at a time."""

    __slots__ = ("_after", "_done", "_filter", "_page", "_store")

    def __init__(self, store: EventStore, filter: EventFilter | None, after: int) -> None:
        self._store = store
        self._filter = filter
        self._after = after
        self._page: list[Event] = []
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if not self._page:
            if self._done:
                await trio.lowlevel.checkpoint()
                raise StopAsyncIteration
            page = await self._store.read(self._filter, after=self._after, limit=DEFAULT_PAGE)
            self._done = len(page) < DEFAULT_PAGE
            if not page:
                raise StopAsyncIteration
            page.reverse()
            self._page = page
        event = self._page.pop()
        assert event.position is not None
        self._after = event.position
        return event

"""``MemoryEventStore``: the event store in a list, for tests and ephemeral use.

It commits at once: an append inserts, tells the listeners and returns
without yielding in between, so it is atomic with respect to cancellation.
Reads use per-field indexes (id, correlation, source, type) of positions,
kept sorted because positions only grow.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from time import perf_counter as _perf_counter
from typing import Final, final
from uuid import UUID

import trio

from .. import _telemetry
from .._core._check import optional_name
from .._event import Event, EventType
from .._telemetry import STORE_COMMIT
from ._closed import StoreClosed
from ._filter import EventFilter
from ._pace import Pacer, cancel_requested
from ._store import (
    EventStore,
    StoreStatistics,
    check_checkpoint_args,
    check_event,
    check_event_id,
    check_read_args,
)

__all__ = ["MemoryEventStore"]

_names: Final = itertools.count(1)


def _merged(lists: Iterable[list[int]]) -> list[int]:
    found: set[int] = set()
    for positions in lists:
        found.update(positions)
    return sorted(found)


@final
class MemoryEventStore(EventStore):
    """An event store that lives in memory (tests, ephemeral use).

    It passes the same contract suite as the durable stores: dense positions
    from 1, idempotent appends by id, the same queries. Appends are committed
    at once; nothing survives the process.

    Args:
        name: for errors and logs; default ``"memory-<n>"``.
    """

    __slots__ = (
        "_by_correlation",
        "_by_id",
        "_by_source",
        "_by_type",
        "_checkpoints",
        "_closed",
        "_events",
        "_name",
        "_pace",
        "_transactions",
    )

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__()
        self._name = optional_name(name) or f"memory-{next(_names)}"
        # Invariant: _events[i].position == i + 1, and every index list is
        # sorted (positions are only ever appended).
        self._events: list[Event] = []
        self._by_id: dict[UUID, Event] = {}
        self._by_correlation: dict[UUID, list[int]] = {}
        self._by_source: dict[str, list[int]] = {}
        self._by_type: dict[EventType, list[int]] = {}
        self._checkpoints: dict[str, int] = {}
        self._closed = False
        self._pace = Pacer()
        self._transactions = 0

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<MemoryEventStore {self._name!r} head={len(self._events)}>"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(self._name)

    def _insert(self, events: Sequence[Event]) -> list[Event]:
        """Commit events (already checked); tell the listeners about the new ones."""
        # Telemetry times the commit only while a handler is attached (rule 44).
        start = _perf_counter() if _telemetry.enabled else 0.0
        result: list[Event] = []
        new: list[Event] = []
        for event in events:
            stored = self._by_id.get(event.id)
            if stored is None:
                position = len(self._events) + 1
                stored = event.at_position(position)
                self._events.append(stored)
                self._by_id[event.id] = stored
                if stored.correlation_id is not None:
                    self._by_correlation.setdefault(stored.correlation_id, []).append(position)
                self._by_source.setdefault(stored.source, []).append(position)
                self._by_type.setdefault(stored.type, []).append(position)
                new.append(stored)
            result.append(stored)
        if new:
            self._transactions += 1
            self._notify(new)
            if _telemetry.enabled and start and _telemetry.attached(STORE_COMMIT):
                _telemetry.execute(
                    STORE_COMMIT,
                    {"events": len(new), "duration": _perf_counter() - start},
                    {"store": self._name},
                )
        return result

    async def append(self, event: Event) -> Event:
        check_event(event)
        if cancel_requested():
            await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        stored = self._insert((event,))[0]
        if self._pace.due():
            await trio.lowlevel.cancel_shielded_checkpoint()
        return stored

    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        batch = [check_event(event) for event in events]
        if cancel_requested():
            await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        stored = self._insert(batch)
        if self._pace.due():
            await trio.lowlevel.cancel_shielded_checkpoint()
        return stored

    def append_nowait(self, event: Event) -> None:
        check_event(event)
        self._check_open()
        self._insert((event,))

    def _candidates(self, filter: EventFilter | None, after: int) -> Iterable[int]:
        """Positions that may match, ascending, all > after (the cheapest index)."""
        low = after
        high = len(self._events)
        if filter is not None:
            if filter.after_position is not None:
                low = max(low, filter.after_position)
            if filter.until_position is not None:
                high = min(high, filter.until_position)
            index: list[int] | None = None
            if filter.correlation_ids is not None:
                index = _merged(self._by_correlation.get(c, []) for c in filter.correlation_ids)
            elif filter.sources is not None and filter.source_prefixes is None:
                index = _merged(self._by_source.get(s, []) for s in filter.sources)
            elif filter.types is not None:
                index = _merged(self._by_type.get(t, []) for t in filter.types)
            if index is not None:
                start = bisect.bisect_right(index, low)
                stop = bisect.bisect_right(index, high)
                return itertools.islice(index, start, stop)
        return range(low + 1, high + 1)

    def _select(self, filter: EventFilter | None, after: int, limit: int | None) -> list[Event]:
        matches = None if filter is None else filter.matches
        found: list[Event] = []
        if limit == 0:
            return found
        events = self._events
        for position in self._candidates(filter, after):
            event = events[position - 1]
            if matches is None or matches(event):
                found.append(event)
                if limit is not None and len(found) >= limit:
                    break
        return found

    async def read(
        self,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> list[Event]:
        check_read_args(filter, after, limit, last)
        await trio.lowlevel.checkpoint()
        self._check_open()
        if last and limit is not None:
            # The memory store is for tests and small logs: select, then cut.
            return self._select(filter, after, None)[-limit:] if limit else []
        return self._select(filter, after, limit)

    async def get(self, event_id: UUID) -> Event | None:
        check_event_id(event_id)
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._by_id.get(event_id)

    async def count(self, filter: EventFilter | None = None) -> int:
        check_read_args(filter, 0, None)
        await trio.lowlevel.checkpoint()
        self._check_open()
        if filter is None:
            return len(self._events)
        return len(self._select(filter, 0, None))

    async def head(self) -> int:
        await trio.lowlevel.checkpoint()
        self._check_open()
        return len(self._events)

    async def save_checkpoint(self, name: str, position: int) -> None:
        check_checkpoint_args(name, position)
        await trio.lowlevel.checkpoint()
        self._check_open()
        self._checkpoints[name] = position

    async def load_checkpoint(self, name: str) -> int | None:
        check_checkpoint_args(name)
        await trio.lowlevel.checkpoint()
        self._check_open()
        return self._checkpoints.get(name)

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            name=self._name,
            head=len(self._events),
            appended=len(self._events),
            transactions=self._transactions,
            followed=0,
            dropped=0,
            queued=0,
            follow_error=None,
        )

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()

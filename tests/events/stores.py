"""Test doubles: stores that commit later or read slowly, built on MemoryEventStore."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

import trio

from trio_smith.events import Event, EventFilter, EventStore, MemoryEventStore
from trio_smith.events._store import Listener, StoreStatistics


class WrappedStore(EventStore):
    """Delegates everything to a MemoryEventStore; subclasses change one thing."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.inner = MemoryEventStore(name=name)

    @property
    def name(self) -> str:
        return self.inner.name

    async def append(self, event: Event) -> Event:
        return await self.inner.append(event)

    async def append_many(self, events: Sequence[Event]) -> list[Event]:
        return await self.inner.append_many(events)

    def append_nowait(self, event: Event) -> None:
        self.inner.append_nowait(event)

    async def read(
        self,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> list[Event]:
        return await self.inner.read(filter, after=after, limit=limit, last=last)

    async def get(self, event_id: UUID) -> Event | None:
        return await self.inner.get(event_id)

    async def count(self, filter: EventFilter | None = None) -> int:
        return await self.inner.count(filter)

    async def head(self) -> int:
        return await self.inner.head()

    async def save_checkpoint(self, name: str, position: int) -> None:
        await self.inner.save_checkpoint(name, position)

    async def load_checkpoint(self, name: str) -> int | None:
        return await self.inner.load_checkpoint(name)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        return self.inner.add_listener(listener)

    def statistics(self) -> StoreStatistics:
        return self.inner.statistics()

    async def aclose(self) -> None:
        await self.inner.aclose()


class GatedStore(WrappedStore):
    """Commits each append only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.gate = trio.Event()

    async def append(self, event: Event) -> Event:
        await self.gate.wait()
        return await super().append(event)


class BatchingStore(WrappedStore):
    """Commits queued appends in batches from ``ticker`` (a group commit), and
    yields after each read, as a read in a worker thread would."""

    def __init__(self) -> None:
        super().__init__("batching")
        self.pending: list[tuple[Event, list[Event], trio.Event]] = []
        self.wake = trio.Event()
        #: The last committed position, known as soon as the commit is.
        self.committed = 0
        self.inner.add_listener(self._track)

    def _track(self, events: Sequence[Event]) -> None:
        self.committed = events[-1].position or 0

    async def append(self, event: Event) -> Event:
        await trio.lowlevel.checkpoint()
        result: list[Event] = []
        done = trio.Event()
        self.pending.append((event, result, done))
        self.wake.set()
        await done.wait()
        return result[0]

    async def read(
        self,
        filter: EventFilter | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> list[Event]:
        found = await super().read(filter, after=after, limit=limit, last=last)
        for _ in range(2):  # commits can land before the reader resumes
            await trio.lowlevel.checkpoint()
        return found

    async def ticker(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            for _ in range(3):  # let more appends join the batch
                await trio.lowlevel.checkpoint()
            batch, self.pending = self.pending, []
            # MemoryEventStore.append_many inserts and tells the listeners
            # without yielding in between: one atomic commit.
            with trio.CancelScope(shield=True):
                stored = await self.inner.append_many([event for event, _, _ in batch])
            for (_, result, done), event in zip(batch, stored, strict=True):
                result.append(event)
                done.set()

"""Hypothesis: catch-up and live delivery give every subscriber each event once, in order.

Random scripts publish stored and ephemeral events (awaited, or spawned so
that a batching store commits several at once), start subscribers at random
moments (live, or from a random position) with tiny buffers and BLOCK or
CATCH_UP policies, and drain them at random speeds. Each subscriber must see
exactly the stored events it is owed, in position order, once; and the
ephemeral events it sees must be a subsequence of those it could see.
Whenever it is sampled, ``checkpoint_position`` must be covered: every owed
event up to it was already delivered.
"""

from __future__ import annotations

import itertools
import pathlib
import tempfile
from collections.abc import Callable, Sequence
from uuid import UUID

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import (
    AgentEvent,
    Event,
    EventBus,
    EventFilter,
    MemoryEventStore,
    Overflow,
    SQLiteEventStore,
    Subscription,
    SystemEvent,
)

from .stores import BatchingStore

_FILES = tempfile.TemporaryDirectory(prefix="trio_smith_bus_")
_counter = itertools.count()


@attrs.frozen
class Publish:
    agent: bool
    persist: bool
    spawn: bool


@attrs.frozen
class Subscribe:
    from_back: int | None  # None: live; else from (head - from_back)
    buffer: int
    catch_up: bool
    agents_only: bool
    pauses: tuple[int, ...]  # checkpoints between receives, cycled


@attrs.frozen
class Pause:
    checkpoints: int


Step = Publish | Subscribe | Pause

steps = st.one_of(
    st.builds(Publish, st.booleans(), st.just(True), st.booleans()),
    st.builds(Publish, st.booleans(), st.booleans(), st.booleans()),  # ephemeral too
    st.builds(
        Subscribe,
        st.one_of(st.none(), st.integers(0, 6)),
        st.integers(1, 3),
        st.booleans(),
        st.booleans(),
        st.lists(st.integers(0, 3), min_size=1, max_size=4).map(tuple),
    ),
    st.builds(Pause, st.integers(0, 5)),
)


@attrs.define
class Watch:
    spec: Subscribe
    sub: Subscription
    start: int  # stored events with a position above this are owed
    ephemeral_before: int  # ephemeral events published before it subscribed
    got: list[Event] = attrs.Factory(list)
    #: (checkpoint_position, events delivered by then), sampled as it runs.
    checkpoints: list[tuple[int | None, int]] = attrs.Factory(list)

    def sample(self) -> None:
        self.checkpoints.append((self.sub.checkpoint_position, len(self.got)))


async def consume(watch: Watch) -> None:
    pauses = watch.spec.pauses
    i = 0
    async for event in watch.sub:
        watch.got.append(event)
        watch.sample()
        for _ in range(pauses[i % len(pauses)]):
            await trio.lowlevel.checkpoint()
            watch.sample()
        i += 1


async def run_script(script: Sequence[Step], kind: str) -> None:
    if kind == "sqlite":
        path = pathlib.Path(_FILES.name) / f"bus-{next(_counter)}.db"
        async with SQLiteEventStore(path, synchronous="NORMAL") as sqlite:
            await run_on(script, sqlite, lambda: sqlite._head)
    elif kind == "batching":
        batching = BatchingStore()
        await run_on(script, batching, lambda: batching.committed)
    else:
        memory = MemoryEventStore()
        await run_on(script, memory, lambda: len(memory._events))


async def run_on(
    script: Sequence[Step],
    store: MemoryEventStore | BatchingStore | SQLiteEventStore,
    committed: Callable[[], int],
) -> None:
    """Run a script on a bus over ``store``; ``committed()`` is its announced head."""
    spawned: set[UUID] = set()
    idle = trio.Event()
    idle.set()

    async def spawn_publish(bus: EventBus, event: Event, persist: bool) -> None:
        nonlocal idle
        try:
            await bus.publish(event, persist=persist)
        finally:
            spawned.discard(event.id)
            if not spawned:
                idle.set()

    published: list[Event] = []  # in publish order, for ephemeral ones
    watches: list[Watch] = []
    awaited_ids: set[UUID] = set()
    n = 0
    async with trio.open_nursery() as nursery:
        if isinstance(store, BatchingStore):
            nursery.start_soon(store.ticker)
        # Consumers end when the bus closes and their buffers are drained.
        async with trio.open_nursery() as consumers, EventBus(store) as bus:
            for step in script:
                if isinstance(step, Publish):
                    n += 1
                    kind = AgentEvent.STARTED if step.agent else SystemEvent.STARTED
                    event = Event.new(kind, source="s", payload={"n": n})
                    published.append(event)
                    if step.spawn:
                        if idle.is_set():
                            idle = trio.Event()
                        spawned.add(event.id)
                        consumers.start_soon(spawn_publish, bus, event, step.persist)
                    else:
                        awaited_ids.add(event.id)
                        await bus.publish(event, persist=step.persist)
                elif isinstance(step, Subscribe):
                    head = committed()
                    start = head if step.from_back is None else max(0, head - step.from_back)
                    sub = bus.subscribe(
                        EventFilter(categories="agent") if step.agents_only else None,
                        buffer=step.buffer,
                        overflow=Overflow.CATCH_UP if step.catch_up else Overflow.BLOCK,
                        from_position=None if step.from_back is None else start,
                    )
                    watch = Watch(step, sub, start, len(published))
                    watches.append(watch)
                    consumers.start_soon(consume, watch)
                else:
                    for _ in range(step.checkpoints):
                        await trio.lowlevel.checkpoint()
                        for watch in watches:
                            watch.sample()
            # Spawned publishers finish before the bus closes (a commit in
            # a worker thread looks "blocked" to trio, so wait for them).
            await idle.wait()
        nursery.cancel_scope.cancel()

    everything = await store.read()
    for watch in watches:
        takes = (
            (lambda e: e.type.category == "agent") if watch.spec.agents_only else (lambda e: True)
        )
        owed = [
            e
            for e in everything
            if e.position is not None and e.position > watch.start and takes(e)
        ]
        stored = [e for e in watch.got if e.position is not None]
        assert stored == owed, (
            watch.spec,
            [e.position for e in stored],
            [e.position for e in owed],
        )
        for checkpoint, count in watch.checkpoints:
            delivered = {e.position for e in watch.got[:count]}
            missing = [
                e.position
                for e in owed
                if checkpoint is not None and e.position is not None and e.position <= checkpoint
                if e.position not in delivered
            ]
            assert not missing, (watch.spec, checkpoint, missing)
        ephemeral = [e for e in watch.got if e.position is None]
        stored_ids = {e.id for e in everything}
        matching = [e for e in published if takes(e) and e.id not in stored_ids]
        assert len({e.id for e in ephemeral}) == len(ephemeral), "an ephemeral event twice"
        assert {e.id for e in ephemeral} <= {e.id for e in matching}
        # Awaited publishes happen in script order: their relative order holds,
        # and a BLOCK subscriber loses none published after it subscribed.
        awaited = [
            e
            for e in published[watch.ephemeral_before :]
            if e.id in awaited_ids and takes(e) and e.id not in stored_ids
        ]
        got_awaited = [e for e in ephemeral if e.id in awaited_ids]
        if not watch.spec.catch_up:
            assert got_awaited == awaited
        else:
            it = iter(awaited)
            assert all(any(e == c for c in it) for e in got_awaited), "out of order"


@settings(max_examples=150, deadline=None)
@given(script=st.lists(steps, min_size=1, max_size=40))
async def test_memory_store_subscribers_get_each_event_once_in_order(
    script: list[Step],
) -> None:
    await run_script(script, "memory")


@settings(max_examples=100, deadline=None)
@given(script=st.lists(steps, min_size=1, max_size=40))
async def test_batching_store_subscribers_get_each_event_once_in_order(
    script: list[Step],
) -> None:
    await run_script(script, "batching")


@settings(max_examples=60, deadline=None)
@given(script=st.lists(steps, min_size=1, max_size=30))
async def test_sqlite_store_subscribers_get_each_event_once_in_order(
    script: list[Step],
) -> None:
    await run_script(script, "sqlite")

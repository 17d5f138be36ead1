"""Every store backend against a deliberately naive model, under hypothesis.

Hypothesis generates a list of operations (appends with repeated ids, reads
with random filters, lookups); one trio test runs them against every backend
in ``BACKENDS`` (memory, SQLite) and PostgreSQL, and against ``Model``, a plain
list, and asserts after every
step that each backend returned what the model returned, holds the same
events and told its listener about exactly the new ones.

A stateful ``RuleBasedStateMachine`` cannot keep a trio store open between
steps, so the operations are data, interpreted inside one ``async`` test;
hypothesis still shrinks the list.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeAlias
from uuid import UUID

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import (
    AgentEvent,
    Event,
    EventFilter,
    EventStore,
    EventType,
    MemoryEventStore,
    PostgresEventStore,
    SQLiteEventStore,
    SystemEvent,
)

from ..postgres import Postgres
from .store_contract import Recorder, StoreFactory

#: Every backend, by name; each must agree with the model (and so with each
#: other). Each call of a factory opens a new, empty store (a file store: a
#: new temporary file), once per hypothesis example.
_FILES = tempfile.TemporaryDirectory(prefix="trio_smith_model_")
_counter = itertools.count()


def _sqlite_store() -> SQLiteEventStore:
    # NORMAL: the model checks logic, not fsync; it keeps examples fast.
    path = pathlib.Path(_FILES.name) / f"model-{next(_counter)}.db"
    return SQLiteEventStore(path, synchronous="NORMAL")


BACKENDS: list[tuple[str, StoreFactory]] = [
    ("memory", MemoryEventStore),
    ("sqlite", _sqlite_store),
]


@pytest.fixture(scope="module")
def backends(request: pytest.FixtureRequest) -> Iterator[list[tuple[str, StoreFactory]]]:
    """BACKENDS and PostgreSQL: a database for this module, a new schema per example.

    Without a PostgreSQL server (only possible outside CI, see
    tests/conftest.py) the other backends still run.
    """
    try:
        postgres: Postgres = request.getfixturevalue("postgres")
    except pytest.skip.Exception:
        yield BACKENDS
        return
    name = f"model_{os.getpid()}"
    dsn = postgres.create_database(name)
    schemas = itertools.count()
    yield [
        *BACKENDS,
        ("postgres", lambda: PostgresEventStore(dsn, schema=f"model_{next(schemas)}")),
    ]
    postgres.drop_database(name)


# ---------------------------------------------------------------- pools

KEYS = range(16)


def _id(key: int) -> UUID:
    """A fixed UUIDv7 per key, so a key names the same event id in every example."""
    ms = 1_740_000_000_000 + key
    return UUID(int=ms << 80 | 0x7 << 76 | 0b10 << 62 | key)


IDS = [_id(key) for key in KEYS]
# agent.stopped and system.stopped share a name: types are compared whole.
TYPES = [AgentEvent.STARTED, AgentEvent.STOPPED, SystemEvent.STOPPED, EventType("billing", "paid")]
CATEGORIES = ["agent", "system", "billing", "tool"]
SOURCES = ["a/1", "a/2", "ab/1", "b/1", "b"]
FILTER_SOURCES = [*SOURCES, "c"]
PREFIXES = ["a/", "a", "b", "ab/1", "c/"]
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMES = [
    T0,
    T0 + timedelta(seconds=1),
    T0 + timedelta(seconds=1, microseconds=1),
    T0 + timedelta(seconds=2),
]
FILTER_TIMES = [
    *TIMES,
    T0 + timedelta(seconds=0.5),
    # The same instant as TIMES[1], in another time zone.
    TIMES[1].astimezone(timezone(timedelta(hours=-5))),
]
PAYLOADS: list[dict[str, Any]] = [{}, {"n": 1}, {"s": "é☃", "l": [1, 2.5, None, True], "o": {}}]
MAX_POSITION = 18

# ---------------------------------------------------------------- operations


@attrs.frozen
class Spec:
    """How to build one event; the same key is the same id (a duplicate)."""

    key: int
    type: EventType
    source: str
    time: datetime
    payload: dict[str, Any]
    # None: a root event (its own correlation); -1: no correlation at all.
    correlation: int | None

    def build(self) -> Event:
        if self.correlation == -1:
            return Event(
                id=IDS[self.key],
                timestamp=self.time,
                source=self.source,
                type=self.type,
                payload=self.payload,
            )
        return Event.new(
            self.type,
            source=self.source,
            payload=self.payload,
            id=IDS[self.key],
            correlation_id=None if self.correlation is None else IDS[self.correlation],
            timestamp=self.time,
        )


@attrs.frozen
class Append:
    spec: Spec


@attrs.frozen
class AppendMany:
    specs: list[Spec]


@attrs.frozen
class AppendNowait:
    spec: Spec


@attrs.frozen
class Read:
    filter: EventFilter | None
    after: int
    limit: int | None


@attrs.frozen
class Scan:
    filter: EventFilter | None
    after: int


@attrs.frozen
class Get:
    key: int


@attrs.frozen
class Count:
    filter: EventFilter | None


@attrs.frozen
class Head:
    pass


@attrs.frozen
class ByCorrelation:
    key: int
    after: int
    limit: int | None


Op: TypeAlias = (
    Append | AppendMany | AppendNowait | Read | Scan | Get | Count | Head | ByCorrelation
)

specs = st.builds(
    Spec,
    key=st.sampled_from(KEYS),
    type=st.sampled_from(TYPES),
    source=st.sampled_from(SOURCES),
    time=st.sampled_from(TIMES),
    payload=st.sampled_from(PAYLOADS),
    correlation=st.one_of(st.none(), st.just(-1), st.sampled_from(KEYS)),
)


positions = st.integers(0, MAX_POSITION)
limits = st.one_of(st.none(), st.integers(0, 6))
#: A strategy for the value of each EventFilter field.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "types": st.frozensets(st.sampled_from(TYPES), min_size=1, max_size=3),
    "categories": st.frozensets(st.sampled_from(CATEGORIES), min_size=1, max_size=3),
    "sources": st.frozensets(st.sampled_from(FILTER_SOURCES), min_size=1, max_size=3),
    "source_prefixes": st.frozensets(st.sampled_from(PREFIXES), min_size=1, max_size=3),
    "correlation_ids": st.frozensets(st.sampled_from(IDS), min_size=1, max_size=3),
    "since": st.sampled_from(FILTER_TIMES),
    "until": st.sampled_from(FILTER_TIMES),
    "after_position": positions,
    "until_position": positions,
}

#: Fields set together; the pairs interact (sources or prefixes, time and
#: position ranges), so they come as often as single fields.
FIELD_GROUPS = [
    ("types",),
    ("categories",),
    ("sources",),
    ("source_prefixes",),
    ("sources", "source_prefixes"),
    ("correlation_ids",),
    ("since",),
    ("until",),
    ("since", "until"),
    ("after_position",),
    ("until_position",),
    ("after_position", "until_position"),
]


@st.composite
def _filters(draw: st.DrawFn) -> EventFilter:
    # A few fields at a time: a filter that sets every field takes almost nothing.
    groups = draw(st.lists(st.sampled_from(FIELD_GROUPS), max_size=2, unique=True))
    names = sorted({name for group in groups for name in group})
    return EventFilter(**{name: draw(FIELDS[name]) for name in names})


filters = st.one_of(st.none(), _filters())
operations: st.SearchStrategy[Op] = st.one_of(
    st.builds(Append, specs),
    st.builds(AppendMany, st.lists(specs, max_size=5)),
    st.builds(AppendNowait, specs),
    st.builds(Read, filters, positions, limits),
    st.builds(Scan, filters, positions),
    st.builds(Get, st.sampled_from(KEYS)),
    st.builds(Count, filters),
    st.just(Head()),
    st.builds(ByCorrelation, st.sampled_from(KEYS), positions, limits),
)

# A list of lists, flattened: plain lists average 5 items, too few for a
# store to grow; this averages about 20 and still shrinks item by item.
scripts = st.lists(st.lists(operations, max_size=10), max_size=8).map(
    lambda chunks: [op for chunk in chunks for op in chunk]
)

# ---------------------------------------------------------------- the model


def _takes(f: EventFilter, e: Event) -> bool:
    """Whether the filter takes the stored event, read straight off the docs."""
    assert e.position is not None
    exact = f.sources is not None and e.source in f.sources
    prefixed = f.source_prefixes is not None and any(
        e.source.startswith(p) for p in f.source_prefixes
    )
    return all(
        [
            f.types is None or e.type in f.types,
            f.categories is None or e.type.category in f.categories,
            (f.sources is None and f.source_prefixes is None) or exact or prefixed,
            f.correlation_ids is None or e.correlation_id in f.correlation_ids,
            f.since is None or e.timestamp >= f.since,
            f.until is None or e.timestamp < f.until,
            f.after_position is None or e.position > f.after_position,
            f.until_position is None or e.position <= f.until_position,
        ]
    )


class Model:
    """The store as a list: index i holds position i + 1; lookups are linear scans."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def _stored(self, event_id: UUID) -> Event | None:
        for e in self.events:
            if e.id == event_id:
                return e
        return None

    def append(self, event: Event) -> Event:
        stored = self._stored(event.id)
        if stored is None:
            stored = attrs.evolve(event, position=len(self.events) + 1)
            self.events.append(stored)
        return stored

    def read(self, f: EventFilter | None, after: int, limit: int | None) -> list[Event]:
        found = [
            e for i, e in enumerate(self.events, 1) if i > after and (f is None or _takes(f, e))
        ]
        return found if limit is None else found[:limit]

    def run(self, op: Op) -> object:
        match op:
            case Append(spec) | AppendNowait(spec):
                stored = self.append(spec.build())
                return stored if isinstance(op, Append) else None
            case AppendMany(many):
                return [self.append(spec.build()) for spec in many]
            case Read(f, after, limit):
                return self.read(f, after, limit)
            case Scan(f, after):
                return self.read(f, after, None)
            case Get(key):
                return self._stored(IDS[key])
            case Count(f):
                return len(self.read(f, 0, None))
            case Head():
                return len(self.events)
            case ByCorrelation(key, after, limit):
                return self.read(EventFilter(correlation_ids=IDS[key]), after, limit)
        raise AssertionError(op)


async def run(store: EventStore, op: Op) -> object:
    """Apply ``op`` to a real store and return its answer."""
    match op:
        case Append(spec):
            return await store.append(spec.build())
        case AppendNowait(spec):
            event = spec.build()
            store.append_nowait(event)
            # Committed "as soon as the store can": wait for it, at checkpoints
            # only (a duplicate id is found at once).
            while (stored := await store.get(event.id)) is None:
                await trio.lowlevel.checkpoint()
            # Readable is not yet announced: a store tells its listeners (and
            # moves its head) when its writer resumes after the commit.
            assert stored.position is not None
            while await store.head() < stored.position:
                await trio.lowlevel.checkpoint()
            return None
        case AppendMany(many):
            return await store.append_many([spec.build() for spec in many])
        case Read(f, after, limit):
            return await store.read(f, after=after, limit=limit)
        case Scan(f, after):
            return [e async for e in store.scan(f, after=after)]
        case Get(key):
            return await store.get(IDS[key])
        case Count(f):
            return await store.count(f)
        case Head():
            return await store.head()
        case ByCorrelation(key, after, limit):
            return await store.get_by_correlation(IDS[key], after=after, limit=limit)
    raise AssertionError(op)


def _ids(result: object) -> object:
    """Shorter failure messages: events as (position, key) pairs."""
    if isinstance(result, Event):
        return (result.position, IDS.index(result.id))
    if isinstance(result, list):
        return [_ids(item) for item in result]
    return result


@settings(max_examples=200, deadline=None)
@given(ops=scripts)
async def test_every_backend_agrees_with_a_naive_model(
    backends: list[tuple[str, StoreFactory]], ops: Sequence[Op]
) -> None:
    model = Model()
    async with AsyncExitStack() as stack:
        stores: list[tuple[str, EventStore, Recorder]] = []
        for name, make_store in backends:
            store = await stack.enter_async_context(make_store())
            recorder = Recorder()
            store.add_listener(recorder)
            stores.append((name, store, recorder))
        for step, op in enumerate(ops):
            expected = model.run(op)
            for name, store, recorder in stores:
                got = await run(store, op)
                where = f"{name}, step {step}: {op}"
                assert _ids(got) == _ids(expected), where
                assert got == expected, where
                assert await store.read() == model.events, where
                assert recorder.events == model.events, where

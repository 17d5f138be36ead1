"""The contract every event store backend must pass.

A backend's test module subclasses :class:`StoreContract` and overrides the
``make_store`` fixture; pytest collects the tests through the subclass only
(the name has no ``Test`` prefix). ``make_store()`` returns an async context
manager that opens a new, empty store and closes it on exit, so a backend
that needs a writer task (SQLite) opens and closes it there. Each test calls
it once, so a file store's fixture may take ``tmp_path``::

    class TestMemoryEventStore(StoreContract):
        @pytest.fixture
        def make_store(self) -> StoreFactory:
            return MemoryEventStore

The tests rely only on the documented contract (trio_smith/events/_store.py),
so they hold for a store that commits later (group commit): an event given to
``append_nowait`` is checked after a later ``await store.append(...)``, which
commits after it, and listeners are checked by the concatenation of their
batches, not by how appends were grouped into batches.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeAlias

import attrs
import pytest
import trio
import trio.testing

from trio_smith.events import (
    AgentEvent,
    Event,
    EventFilter,
    EventStore,
    EventType,
    StoreClosed,
    SystemEvent,
    uuid7,
)
from trio_smith.events._store import DEFAULT_PAGE

__all__ = ["PAID", "TRACEPARENT", "Recorder", "StoreContract", "StoreFactory", "at", "event"]

#: Opens a new, empty store as ``async with make_store() as store:``.
StoreFactory: TypeAlias = Callable[[], AbstractAsyncContextManager[EventStore]]

PAID = EventType("billing", "paid")
#: A W3C traceparent (the Trace Context specification's example).
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed, aware UTC time ``seconds`` after T0 (tests never read the clock)."""
    return T0 + timedelta(seconds=seconds)


def event(
    type: EventType = AgentEvent.STARTED,
    *,
    source: str = "a/1",
    t: float = 0.0,
    payload: dict[str, Any] | None = None,
    cause: Event | None = None,
) -> Event:
    """A new event at a fixed time (a root event unless ``cause`` is given)."""
    return Event.new(type, source=source, payload=payload, cause=cause, timestamp=at(t))


class Recorder:
    """A store listener that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    def __call__(self, batch: Sequence[Event]) -> None:
        self.batches.append(list(batch))

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def _positions(events: Sequence[Event]) -> list[int | None]:
    return [e.position for e in events]


async def _invoke(call: Callable[[EventStore], object], store: EventStore) -> None:
    """Call ``call(store)``, awaiting the result if it is awaitable."""
    result = call(store)
    if inspect.isawaitable(result):
        await result


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True)


def _closed(store: EventStore) -> str:
    return f"^{re.escape(f'event store {store.name!r} is closed')}$"


# ---------------------------------------------------------------- the corpus
#
# Eight events that every filter field can tell apart. Timestamps are not in
# position order (e8 is older than e7), correlations interleave, and the
# sources include "ab/x" (prefix "a" but not "a/") and "b" (a source that is
# also a prefix of "b/1").
#
#   label  type                 source  time  correlation
#   e1     agent.started        a/1     t0    e1 (root)
#   e2     agent.stopped        a/1     t1    e1
#   e3     system.stopped       b/1     t1    e3 (root)
#   e4     billing.paid         a/2     t2    e3
#   e5     agent.started        a/2     t3    e5 (root)
#   e6     billing.paid         ab/x    t3    e1
#   e7     system.stopped       b       t4    e7 (root)
#   e8     billing.paid         b/1     t2    e5

Corpus: TypeAlias = dict[str, Event]


def corpus() -> Corpus:
    """The eight events above, not stored yet, in append order."""
    e1 = event(AgentEvent.STARTED, source="a/1", t=0)
    e2 = event(AgentEvent.STOPPED, source="a/1", t=1, cause=e1)
    e3 = event(SystemEvent.STOPPED, source="b/1", t=1)
    e4 = event(PAID, source="a/2", t=2, cause=e3)
    e5 = event(AgentEvent.STARTED, source="a/2", t=3)
    e6 = event(PAID, source="ab/x", t=3, cause=e2)
    e7 = event(SystemEvent.STOPPED, source="b", t=4)
    e8 = event(PAID, source="b/1", t=2, cause=e5)
    return {"e1": e1, "e2": e2, "e3": e3, "e4": e4, "e5": e5, "e6": e6, "e7": e7, "e8": e8}


async def _stored_corpus(store: EventStore) -> Corpus:
    events = corpus()
    stored = await store.append_many(list(events.values()))
    return dict(zip(events, stored, strict=True))


def _case(name: str, build: Callable[[Corpus], EventFilter], expected: str) -> Any:
    return pytest.param(build, expected.split(), id=name)


def _correlation(*labels: str) -> Callable[[Corpus], EventFilter]:
    def build(c: Corpus) -> EventFilter:
        return EventFilter(correlation_ids={c[label].id for label in labels})

    return build


FILTER_CASES = [
    _case("no-constraint", lambda c: EventFilter(), "e1 e2 e3 e4 e5 e6 e7 e8"),
    _case("one-type", lambda c: EventFilter(types=AgentEvent.STARTED), "e1 e5"),
    _case(
        "several-types",
        lambda c: EventFilter(types={AgentEvent.STARTED, PAID}),
        "e1 e4 e5 e6 e8",
    ),
    _case("type-by-wire-name", lambda c: EventFilter(types="billing.paid"), "e4 e6 e8"),
    _case(
        "same-name-other-category",
        lambda c: EventFilter(types=SystemEvent.STOPPED),
        "e3 e7",
    ),
    _case("no-types", lambda c: EventFilter(types=()), ""),
    _case("no-categories", lambda c: EventFilter(categories=()), ""),
    _case("no-sources", lambda c: EventFilter(sources=()), ""),
    _case("no-prefixes", lambda c: EventFilter(source_prefixes=()), ""),
    _case(
        "no-sources-but-a-prefix",
        lambda c: EventFilter(sources=(), source_prefixes="a/"),
        "e1 e2 e4 e5",
    ),
    _case("no-correlations", lambda c: EventFilter(correlation_ids=()), ""),
    _case("one-category", lambda c: EventFilter(categories="agent"), "e1 e2 e5"),
    _case(
        "several-categories",
        lambda c: EventFilter(categories={"system", "billing"}),
        "e3 e4 e6 e7 e8",
    ),
    _case("unknown-category", lambda c: EventFilter(categories="tool"), ""),
    _case("one-source", lambda c: EventFilter(sources="a/1"), "e1 e2"),
    _case("several-sources", lambda c: EventFilter(sources={"a/2", "b"}), "e4 e5 e7"),
    _case("source-is-exact", lambda c: EventFilter(sources="a"), ""),
    _case("prefix-subtree", lambda c: EventFilter(source_prefixes="a/"), "e1 e2 e4 e5"),
    _case("prefix-plain", lambda c: EventFilter(source_prefixes="a"), "e1 e2 e4 e5 e6"),
    _case("prefix-equal-to-a-source", lambda c: EventFilter(source_prefixes="b"), "e3 e7 e8"),
    _case(
        "several-prefixes",
        lambda c: EventFilter(source_prefixes={"ab", "b/"}),
        "e3 e6 e8",
    ),
    _case(
        "sources-or-prefixes",
        lambda c: EventFilter(sources="b", source_prefixes="a/"),
        "e1 e2 e4 e5 e7",
    ),
    _case("one-correlation", _correlation("e1"), "e1 e2 e6"),
    _case("several-correlations", _correlation("e3", "e5"), "e3 e4 e5 e8"),
    _case("unknown-correlation", lambda c: EventFilter(correlation_ids=uuid7()), ""),
    _case("since-is-inclusive", lambda c: EventFilter(since=at(2)), "e4 e5 e6 e7 e8"),
    _case("until-is-exclusive", lambda c: EventFilter(until=at(2)), "e1 e2 e3"),
    _case("time-range", lambda c: EventFilter(since=at(1), until=at(3)), "e2 e3 e4 e8"),
    _case("empty-time-range", lambda c: EventFilter(since=at(3), until=at(3)), ""),
    _case(
        "time-between-events",
        lambda c: EventFilter(since=at(1.5), until=at(3.000001)),
        "e4 e5 e6 e8",
    ),
    _case(
        "time-in-another-timezone",
        lambda c: EventFilter(since=at(2).astimezone(timezone(timedelta(hours=2)))),
        "e4 e5 e6 e7 e8",
    ),
    _case("after-position", lambda c: EventFilter(after_position=5), "e6 e7 e8"),
    _case("until-position", lambda c: EventFilter(until_position=3), "e1 e2 e3"),
    _case(
        "position-range",
        lambda c: EventFilter(after_position=2, until_position=6),
        "e3 e4 e5 e6",
    ),
    _case("after-the-head", lambda c: EventFilter(after_position=8), ""),
    _case("until-position-zero", lambda c: EventFilter(until_position=0), ""),
    _case(
        "type-and-prefix",
        lambda c: EventFilter(types=PAID, source_prefixes="b"),
        "e8",
    ),
    _case(
        "category-and-correlation",
        lambda c: EventFilter(categories="agent", correlation_ids=c["e1"].id),
        "e1 e2",
    ),
    _case(
        "types-time-and-position",
        lambda c: EventFilter(types={AgentEvent.STARTED, PAID}, since=at(2), until_position=6),
        "e4 e5 e6",
    ),
    _case(
        "disjoint-fields",
        lambda c: EventFilter(sources="a/1", categories="system"),
        "",
    ),
    _case(
        "every-field",
        lambda c: EventFilter(
            types={PAID, SystemEvent.STOPPED},
            categories={"billing", "system"},
            sources="b",
            source_prefixes="a/",
            correlation_ids={c["e3"].id, c["e7"].id},
            since=at(1),
            until=at(5),
            after_position=3,
            until_position=8,
        ),
        "e4 e7",
    ),
]


def _bad(
    call: Callable[[EventStore], object], error: type[Exception], message: str, id: str
) -> Any:
    return pytest.param(call, error, f"^{re.escape(message)}$", id=id)


_NOT_AN_ID = "0190f000-0000-7000-8000-000000000000"

BAD_ARGUMENTS = [
    _bad(
        lambda s: s.read("x"),  # type: ignore[arg-type]
        TypeError,
        "filter must be an EventFilter or None, got 'x'",
        "read-filter",
    ),
    _bad(lambda s: s.read(after=-1), ValueError, "after must be an int >= 0, got -1", "read-after"),
    _bad(
        lambda s: s.read(after=True),
        ValueError,
        "after must be an int >= 0, got True",
        "read-after-bool",
    ),
    _bad(
        lambda s: s.read(after=1.0),  # type: ignore[arg-type]
        ValueError,
        "after must be an int >= 0, got 1.0",
        "read-after-float",
    ),
    _bad(
        lambda s: s.read(limit=-1),
        ValueError,
        "limit must be an int >= 0 or None, got -1",
        "read-limit",
    ),
    _bad(
        lambda s: s.read(limit=False),
        ValueError,
        "limit must be an int >= 0 or None, got False",
        "read-limit-bool",
    ),
    _bad(
        lambda s: s.count({"types": "agent.started"}),  # type: ignore[arg-type]
        TypeError,
        "filter must be an EventFilter or None, got {'types': 'agent.started'}",
        "count-filter",
    ),
    _bad(
        lambda s: s.get(_NOT_AN_ID),  # type: ignore[arg-type]
        TypeError,
        f"event_id must be a UUID, got {_NOT_AN_ID!r}",
        "get-str",
    ),
    _bad(
        lambda s: s.get_by_correlation(_NOT_AN_ID),  # type: ignore[arg-type]
        TypeError,
        f"correlation_id must be a UUID, got {_NOT_AN_ID!r}",
        "get-by-correlation-str",
    ),
    _bad(
        lambda s: s.get_by_correlation(uuid7(), after=-1),
        ValueError,
        "after must be an int >= 0, got -1",
        "get-by-correlation-after",
    ),
    _bad(
        lambda s: s.get_by_correlation(uuid7(), limit=-2),
        ValueError,
        "limit must be an int >= 0 or None, got -2",
        "get-by-correlation-limit",
    ),
    _bad(
        lambda s: s.scan(after=-1),
        ValueError,
        "after must be an int >= 0, got -1",
        "scan-after",
    ),
    _bad(
        lambda s: s.scan("x"),  # type: ignore[arg-type]
        TypeError,
        "filter must be an EventFilter or None, got 'x'",
        "scan-filter",
    ),
    _bad(
        lambda s: s.append("x"),  # type: ignore[arg-type]
        TypeError,
        "expected an Event, got 'x'",
        "append",
    ),
    _bad(
        lambda s: s.append_many([event(), 1, event()]),  # type: ignore[list-item]
        TypeError,
        "expected an Event, got 1",
        "append-many",
    ),
    _bad(
        lambda s: s.append_nowait(None),  # type: ignore[arg-type]
        TypeError,
        "expected an Event, got None",
        "append-nowait",
    ),
    _bad(
        lambda s: s.add_listener(1),  # type: ignore[arg-type]
        TypeError,
        "listener must be callable, got 1",
        "add-listener",
    ),
]


class StoreContract:
    """The tests every EventStore backend must pass; subclass and give ``make_store``."""

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        """Overridden by each backend: returns a factory of new, empty stores."""
        raise NotImplementedError

    # ------------------------------------------------------------ append

    async def test_positions_are_dense_from_one_in_append_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            first = await store.append(event())
            batch = await store.append_many([event(), event()])
            store.append_nowait(event())
            last = await store.append(event())
            assert _positions([first, *batch, last]) == [1, 2, 3, 5]
            assert _positions(await store.read()) == [1, 2, 3, 4, 5]

    async def test_append_returns_the_event_with_its_position_and_equal_fields(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            a, b = event(source="a/1"), event(PAID, source="b/1", t=1)
            stored_a = await store.append(a)
            stored_b = await store.append(b)
            assert stored_a == attrs.evolve(a, position=1)
            assert stored_b == attrs.evolve(b, position=2)
            assert await store.read() == [stored_a, stored_b]

    async def test_stored_events_keep_every_field(self, make_store: StoreFactory) -> None:
        root = event()
        rich = Event.new(
            "billing.paid",
            source="shop/checkout-1",
            payload={
                "amount": 12.5,
                "whole": 3.0,
                "count": 3,
                "big": 2**53 + 1,
                "text": "crème brûlée ☃",
                "items": [1, "two", None, True, {"k": []}],
                "empty": {},
            },
            cause=root,
            timestamp=datetime(2025, 3, 1, 14, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2))),
        )
        # Built with the constructor: an event with no correlation at all.
        bare = Event(id=uuid7(), timestamp=at(9), source="x", type=SystemEvent.STARTED)
        async with make_store() as store:
            stored = await store.append_many([root, rich, bare])
            assert stored == [
                attrs.evolve(root, position=1),
                attrs.evolve(rich, position=2),
                attrs.evolve(bare, position=3),
            ]
            everything = await store.read()
            assert everything == stored
            # == takes True for 1 and 3.0 for 3; JSON text does not.
            assert [_json(e.payload) for e in everything] == [
                _json(e.payload) for e in (root, rich, bare)
            ]
            assert all(e.timestamp.utcoffset() == timedelta(0) for e in everything)
            assert everything[1].timestamp == datetime(2025, 3, 1, 12, 30, 0, 123456, tzinfo=UTC)
            assert await store.get(rich.id) == stored[1]
            assert await store.get(bare.id) == stored[2]
            assert await store.get_by_correlation(root.id) == stored[:2]
            assert await store.read(EventFilter(correlation_ids={root.id, bare.id})) == stored[:2]

    async def test_stored_events_keep_their_trace_context(self, make_store: StoreFactory) -> None:
        # Every other event of a batch carries one; 40 events take the
        # PostgreSQL store's COPY path as well as its small-batch insert.
        traced = {"traceparent": TRACEPARENT, "tracestate": "vendor=a,other=b:c"}
        events = [
            Event.new(
                PAID,
                source="a",
                timestamp=at(i),
                trace_context=traced
                if i % 2
                else ({"traceparent": TRACEPARENT} if i % 4 else None),
            )
            for i in range(40)
        ]
        async with make_store() as store:
            small = await store.append_many(events[:3])
            large = await store.append_many(events[3:])
            stored = small + large
            assert stored == [e.at_position(i) for i, e in enumerate(events, 1)]
            everything = await store.read()
            assert everything == stored
            assert [e.trace_context for e in everything] == [e.trace_context for e in events]
            assert everything[1].trace_context == traced
            assert everything[0].trace_context is None
            got = await store.get(events[1].id)
            assert got is not None
            assert got.trace_context == traced
            assert await store.read(last=True, limit=2) == stored[-2:]

    async def test_append_ignores_the_position_of_its_input(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            first = await store.append(attrs.evolve(event(), position=42))
            second = await store.append(attrs.evolve(event(), position=1))
            batch = await store.append_many([attrs.evolve(event(), position=7)])
            assert _positions([first, second, *batch]) == [1, 2, 3]
            assert _positions(await store.read()) == [1, 2, 3]

    async def test_append_of_a_stored_id_returns_the_original_and_writes_nothing(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            original = await store.append(event(source="a/1", payload={"try": 1}))
            other = await store.append(event())
            recorder = Recorder()
            store.add_listener(recorder)
            retry = attrs.evolve(original, source="b/9", payload={"try": 2}, position=None)
            assert await store.append(retry) == original
            assert await store.append(original) == original
            assert await store.head() == 2
            assert await store.read() == [original, other]
            assert recorder.batches == []

    async def test_append_many_assigns_consecutive_positions_in_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            await store.append(event())
            events = [event(source=f"s/{i}") for i in range(5)]
            stored = await store.append_many(events)
            assert stored == [attrs.evolve(e, position=i) for i, e in enumerate(events, 2)]
            assert (await store.read())[1:] == stored

    async def test_append_many_returns_the_originals_of_ids_already_stored(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            a = await store.append(event(source="a"))
            recorder = Recorder()
            store.add_listener(recorder)
            x, y = event(source="x"), event(source="y")
            stored = await store.append_many([x, attrs.evolve(a, source="changed"), y])
            assert stored == [attrs.evolve(x, position=2), a, attrs.evolve(y, position=3)]
            assert await store.read() == [a, stored[0], stored[2]]
            assert recorder.events == [stored[0], stored[2]]

    async def test_append_many_keeps_the_first_of_ids_repeated_in_the_batch(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            a, b = event(source="a", payload={"n": 1}), event(source="b")
            again = attrs.evolve(a, payload={"n": 2})
            stored = await store.append_many([a, b, again, a])
            first = attrs.evolve(a, position=1)
            assert stored == [first, attrs.evolve(b, position=2), first, first]
            assert await store.head() == 2
            assert await store.read() == stored[:2]
            assert recorder.events == stored[:2]

    async def test_append_many_of_only_stored_ids_writes_nothing(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            stored = await store.append_many([event(), event()])
            recorder = Recorder()
            store.add_listener(recorder)
            assert await store.append_many(stored[::-1]) == stored[::-1]
            assert await store.head() == 2
            assert recorder.batches == []

    async def test_append_many_of_nothing_returns_nothing(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            assert await store.append_many([]) == []
            assert await store.append_many(()) == []
            assert await store.head() == 0
            assert recorder.batches == []

    async def test_append_many_with_a_non_event_appends_nothing(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            a, b = event(), event()
            with pytest.raises(TypeError, match=r"^expected an Event, got 'b'$"):
                await store.append_many([a, "b", b])  # type: ignore[list-item]
            assert await store.head() == 0
            assert await store.get(a.id) is None
            assert recorder.batches == []
            # Nothing half-done: the same events append normally afterwards.
            assert _positions(await store.append_many([a, b])) == [1, 2]

    async def test_append_nowait_is_committed_before_a_later_append(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            queued, later = event(source="queued"), event(source="later")
            store.append_nowait(queued)
            stored_later = await store.append(later)
            assert stored_later.position == 2
            stored = [attrs.evolve(queued, position=1), stored_later]
            assert await store.read() == stored
            assert await store.get(queued.id) == stored[0]
            assert recorder.events == stored

    async def test_append_nowait_of_a_stored_id_writes_nothing(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            original = await store.append(event())
            recorder = Recorder()
            store.add_listener(recorder)
            store.append_nowait(attrs.evolve(original, payload={"retry": True}))
            store.append_nowait(original)
            later = await store.append(event())
            assert later.position == 2
            assert await store.read() == [original, later]
            assert recorder.events == [later]

    async def test_aclose_commits_queued_appends(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            queued = [event(source=f"q/{i}") for i in range(3)]
            for e in queued:
                store.append_nowait(e)
            await store.aclose()
            assert recorder.events == [attrs.evolve(e, position=i) for i, e in enumerate(queued, 1)]

    # ------------------------------------------------------------ read

    async def test_read_returns_every_event_in_position_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            assert await store.read() == []
            stored = await store.append_many([event(t=9 - i) for i in range(10)])
            assert await store.read() == stored
            assert await store.read(None, after=0, limit=None) == stored

    async def test_read_after_is_exclusive(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            stored = await store.append_many([event() for _ in range(5)])
            assert await store.read(after=0) == stored
            assert await store.read(after=2) == stored[2:]
            assert await store.read(after=4) == stored[4:]
            assert await store.read(after=5) == []
            assert await store.read(after=100) == []

    async def test_read_limit_takes_the_first_events(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            stored = await store.append_many([event() for _ in range(5)])
            assert await store.read(limit=0) == []
            assert await store.read(limit=1) == stored[:1]
            assert await store.read(limit=3) == stored[:3]
            assert await store.read(limit=5) == stored
            assert await store.read(limit=50) == stored
            assert await store.read(after=3, limit=1) == stored[3:4]
            assert await store.read(after=3, limit=0) == []

    async def test_read_last_takes_the_last_matches_in_position_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            c = await _stored_corpus(store)
            everything = await store.read()
            paid = EventFilter(types=PAID)
            for limit in (0, 1, 2, 3, 50):
                assert await store.read(limit=limit, last=True) == everything[-limit:][:limit]
                matches = await store.read(paid)
                want = matches[-limit:] if limit else []
                assert await store.read(paid, limit=limit, last=True) == want
            assert await store.read(paid, after=3, limit=2, last=True) == [c["e6"], c["e8"]]
            assert await store.read(EventFilter(until_position=4), limit=2, last=True) == [
                c["e3"],
                c["e4"],
            ]
            assert await store.read(paid, last=True) == await store.read(paid)  # no limit
            with pytest.raises(TypeError, match="last must be a bool, got 1"):
                await store.read(last=1)  # type: ignore[arg-type]

    @pytest.mark.parametrize("page", [1, 3, 10, 11])
    async def test_paging_with_after_yields_each_event_exactly_once(
        self, make_store: StoreFactory, page: int
    ) -> None:
        async with make_store() as store:
            stored = await store.append_many([event(t=i % 4) for i in range(10)])
            seen: list[Event] = []
            after = 0
            # Bounded, so a store that repeats events fails instead of looping.
            for _ in range(len(stored) + 1):
                chunk = await store.read(after=after, limit=page)
                if not chunk:
                    break
                assert len(chunk) <= page
                seen.extend(chunk)
                last = chunk[-1].position
                assert last is not None
                after = last
            assert seen == stored

    async def test_paging_a_filter_yields_each_match_exactly_once(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            stored = await store.append_many(
                [event(PAID if i % 3 else AgentEvent.STARTED) for i in range(20)]
            )
            paid = EventFilter(types=PAID)
            seen: list[Event] = []
            after = 0
            for _ in range(len(stored) + 1):
                chunk = await store.read(paid, after=after, limit=4)
                if not chunk:
                    break
                seen.extend(chunk)
                last = chunk[-1].position
                assert last is not None
                after = last
            assert seen == [e for e in stored if e.type == PAID]

    @pytest.mark.parametrize(("build", "expected"), FILTER_CASES)
    async def test_read_and_count_take_exactly_the_events_the_filter_takes(
        self,
        make_store: StoreFactory,
        build: Callable[[Corpus], EventFilter],
        expected: list[str],
    ) -> None:
        async with make_store() as store:
            stored = await _stored_corpus(store)
            filter = build(stored)
            want = [stored[label] for label in expected]
            assert await store.read(filter) == want
            assert await store.count(filter) == len(want)
            assert [e async for e in store.scan(filter)] == want

    async def test_read_combines_the_filter_with_after_and_limit(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            c = await _stored_corpus(store)
            paid = EventFilter(types=PAID)
            assert await store.read(paid, after=4) == [c["e6"], c["e8"]]
            assert await store.read(paid, after=3, limit=2) == [c["e4"], c["e6"]]
            assert await store.read(paid, limit=1) == [c["e4"]]
            assert await store.read(paid, limit=0) == []
            # after= and after_position both apply: the later one wins.
            assert await store.read(EventFilter(after_position=6), after=2) == [c["e7"], c["e8"]]
            assert await store.read(EventFilter(after_position=2), after=6) == [c["e7"], c["e8"]]
            assert await store.read(EventFilter(until_position=4), after=2) == [c["e3"], c["e4"]]
            # The limit counts matches, not the events passed over.
            assert await store.read(EventFilter(sources="b"), limit=1) == [c["e7"]]

    async def test_scan_yields_what_read_returns_across_pages(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            assert [e async for e in store.scan()] == []
            for total in (1, DEFAULT_PAGE, DEFAULT_PAGE + 1, 2500):
                head = await store.head()
                await store.append_many(
                    [event(PAID if i % 2 else AgentEvent.STARTED) for i in range(total - head)]
                )
                everything = await store.read()
                assert len(everything) == total
                assert [e async for e in store.scan()] == everything

    async def test_scan_with_a_filter_and_after_yields_what_read_returns(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            await store.append_many(
                [event(PAID if i % 5 else AgentEvent.STARTED) for i in range(2500)]
            )
            paid = EventFilter(types=PAID)
            expected = await store.read(paid, after=100)
            assert len(expected) > DEFAULT_PAGE
            assert [e async for e in store.scan(paid, after=100)] == expected
            assert [e async for e in store.scan(paid, after=2500)] == []

    # ------------------------------------------------------------ lookups

    async def test_get_returns_the_stored_event_or_none(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            a = event()
            assert await store.get(a.id) is None
            stored = await store.append_many([a, event()])
            assert await store.get(a.id) == stored[0]
            assert await store.get(stored[1].id) == stored[1]
            assert await store.get(uuid7()) is None

    async def test_get_by_correlation_returns_one_causal_chain_in_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            c = await _stored_corpus(store)
            root = c["e1"].id
            assert await store.get_by_correlation(root) == [c["e1"], c["e2"], c["e6"]]
            assert await store.get_by_correlation(root, after=1) == [c["e2"], c["e6"]]
            assert await store.get_by_correlation(root, after=2, limit=5) == [c["e6"]]
            assert await store.get_by_correlation(root, limit=2) == [c["e1"], c["e2"]]
            assert await store.get_by_correlation(root, limit=0) == []
            assert await store.get_by_correlation(c["e2"].id) == []
            assert await store.get_by_correlation(uuid7()) == []

    async def test_head_is_the_last_position_and_count_the_stored_events(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            assert await store.head() == 0
            assert await store.count() == 0
            assert await store.count(EventFilter(types=PAID)) == 0
            stored = await store.append_many([event(), event(PAID), event()])
            assert await store.head() == 3
            await store.append(stored[0])
            await store.append_many(stored)
            assert await store.head() == 3
            assert await store.count() == 3
            assert await store.count(EventFilter(types=PAID)) == 1
            await store.append(event())
            assert await store.head() == 4
            assert await store.count() == 4

    # ------------------------------------------------------------ listeners

    async def test_listener_sees_each_new_event_once_in_position_order(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            a = await store.append(event())
            # Called on commit: by the time the append returns.
            assert recorder.events == [a]
            batch = await store.append_many([event(), event(), event()])
            assert recorder.events == [a, *batch]
            store.append_nowait(event())
            last = await store.append(event())
            stored = await store.read()
            assert recorder.events == stored
            assert stored[-1] == last
            assert all(recorder.batches)
            for chunk in recorder.batches:
                first = chunk[0].position
                assert first is not None
                assert _positions(chunk) == list(range(first, first + len(chunk)))

    async def test_listener_is_not_called_again_for_stored_ids(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            stored = await store.append_many([event(), event()])
            await store.append(stored[0])
            await store.append_many(stored)
            store.append_nowait(stored[1])
            new = await store.append_many([stored[1], event(), stored[0]])
            assert recorder.events == [*stored, new[1]]

    async def test_listener_added_later_sees_only_later_events(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            await store.append_many([event(), event()])
            recorder = Recorder()
            store.add_listener(recorder)
            later = await store.append(event())
            assert recorder.events == [later]

    async def test_removing_a_listener_stops_calls_and_is_idempotent(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            remove = store.add_listener(recorder)
            a = await store.append(event())
            remove()
            await store.append(event())
            await store.append_many([event(), event()])
            store.append_nowait(event())
            remove()
            await store.append(event())
            assert recorder.events == [a]

    async def test_several_listeners_each_see_every_new_event(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            first, second, third = Recorder(), Recorder(), Recorder()
            store.add_listener(first)
            remove_second = store.add_listener(second)
            store.add_listener(third)
            a = await store.append(event())
            remove_second()
            rest = await store.append_many([event(), event()])
            assert first.events == third.events == [a, *rest]
            assert second.events == [a]

    # ------------------------------------------------------------ errors

    @pytest.mark.parametrize(("call", "error", "message"), BAD_ARGUMENTS)
    async def test_bad_arguments_raise_with_exact_messages_and_change_nothing(
        self,
        make_store: StoreFactory,
        call: Callable[[EventStore], object],
        error: type[Exception],
        message: str,
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            with pytest.raises(error, match=message):
                await _invoke(call, store)
            assert await store.head() == 0
            assert recorder.batches == []

    async def test_every_operation_on_a_closed_store_raises_store_closed(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            stored = await store.append(event())
            recorder = Recorder()
            store.add_listener(recorder)
            await store.aclose()
            closed = _closed(store)
            with pytest.raises(StoreClosed, match=closed) as raised:
                await store.append(event())
            assert raised.value.store == store.name
            with pytest.raises(StoreClosed, match=closed):
                await store.append(stored)
            with pytest.raises(StoreClosed, match=closed):
                await store.append_many([event()])
            with pytest.raises(StoreClosed, match=closed):
                await store.append_many([])
            with pytest.raises(StoreClosed, match=closed):
                store.append_nowait(event())
            with pytest.raises(StoreClosed, match=closed):
                await store.read()
            with pytest.raises(StoreClosed, match=closed):
                await store.read(EventFilter(types=PAID), after=1, limit=1)
            with pytest.raises(StoreClosed, match=closed):
                await store.get(stored.id)
            with pytest.raises(StoreClosed, match=closed):
                await store.get_by_correlation(stored.id)
            with pytest.raises(StoreClosed, match=closed):
                await store.count()
            with pytest.raises(StoreClosed, match=closed):
                await store.count(EventFilter(types=PAID))
            with pytest.raises(StoreClosed, match=closed):
                await store.head()
            with pytest.raises(StoreClosed, match=closed):
                await anext(store.scan())
            assert recorder.batches == []

    async def test_aclose_is_idempotent(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            await store.append(event())
            await store.aclose()
            await store.aclose()
        # Leaving the async with closed it a third time.
        with pytest.raises(StoreClosed, match=_closed(store)):
            await store.head()

    async def test_leaving_async_with_closes_the_store(self, make_store: StoreFactory) -> None:
        async with make_store() as store:
            await store.append(event())
        with pytest.raises(StoreClosed, match=_closed(store)):
            await store.read()

    # ------------------------------------------------------------ cancellation

    async def test_an_append_cancelled_before_it_starts_appends_nothing(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            recorder = Recorder()
            store.add_listener(recorder)
            a, b = event(), event()
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.append(a)
            assert scope.cancelled_caught
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.append_many([a, b])
            assert scope.cancelled_caught
            assert await store.head() == 0
            assert await store.get(a.id) is None
            assert recorder.batches == []
            assert _positions(await store.append_many([b, a])) == [1, 2]

    @pytest.mark.parametrize(
        "query",
        ["read", "read-filtered", "get", "get_by_correlation", "count", "head"],
    )
    async def test_every_query_is_a_checkpoint(self, make_store: StoreFactory, query: str) -> None:
        async with make_store() as store:
            a = await store.append(event())
            calls: dict[str, Callable[[], Any]] = {
                "read": store.read,
                "read-filtered": lambda: store.read(EventFilter(types=PAID)),
                "get": lambda: store.get(a.id),
                "get_by_correlation": lambda: store.get_by_correlation(a.id),
                "count": lambda: store.count(EventFilter(sources="a/1")),
                "head": store.head,
            }
            with trio.testing.assert_checkpoints():
                await calls[query]()
            with trio.CancelScope() as scope:
                scope.cancel()
                await calls[query]()
            assert scope.cancelled_caught

    # ------------------------------------------------------------ checkpoints

    async def test_checkpoints_are_saved_overwritten_and_kept_per_name(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            assert await store.load_checkpoint("audit") is None
            await store.save_checkpoint("audit", 3)
            await store.save_checkpoint("mailer", 0)
            assert await store.load_checkpoint("audit") == 3
            await store.save_checkpoint("audit", 7)
            assert await store.load_checkpoint("audit") == 7
            assert await store.load_checkpoint("mailer") == 0

    @pytest.mark.parametrize(
        ("name", "position", "message"),
        [
            ("", 1, "checkpoint name must be a non-empty str, got ''"),
            (3, 1, "checkpoint name must be a non-empty str, got 3"),
            ("a", -1, "checkpoint position must be an int >= 0, got -1"),
            ("a", True, "checkpoint position must be an int >= 0, got True"),
        ],
    )
    async def test_bad_checkpoint_arguments_are_refused_by_name(
        self, make_store: StoreFactory, name: Any, position: Any, message: str
    ) -> None:
        async with make_store() as store:
            with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
                await store.save_checkpoint(name, position)
            if name != "a":
                with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
                    await store.load_checkpoint(name)

    async def test_checkpoints_on_a_closed_store_raise_store_closed(
        self, make_store: StoreFactory
    ) -> None:
        async with make_store() as store:
            pass
        with pytest.raises(StoreClosed):
            await store.save_checkpoint("a", 1)
        with pytest.raises(StoreClosed):
            await store.load_checkpoint("a")

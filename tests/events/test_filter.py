"""``EventFilter`` against a naive predicate written here, and its constructor checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import AgentEvent, Event, EventFilter, EventType, SystemEvent

# ---------------------------------------------------------------- pools

#: Small pools, so that random events and random filters often meet on a value.
TYPES = [
    AgentEvent.STARTED,
    AgentEvent.STOPPED,
    SystemEvent.STARTED,
    EventType("billing", "paid"),
    EventType("billing", "call.finished"),
    EventType("x", "started"),
]
CATEGORY_POOL = ["agent", "system", "billing", "x", "tool"]
EVENT_SOURCES = ["a", "a/1", "a/12", "a/2", "ab", "b", "b/1", "c/a/1"]
#: Nested on purpose ("a" < "a/" < "a/1" < "a/12"), plus ones no event has.
SOURCE_POOL = ["a", "a/", "a/1", "a/12", "a/2", "ab", "b", "b/", "b/1", "c", "z"]
CORRELATIONS = [UUID(int=1), UUID(int=2), UUID(int=3)]
_BASE = datetime(2024, 1, 1, tzinfo=UTC)
TIMES = [_BASE + timedelta(seconds=s) for s in (0, 1, 2, 3, 5)]
#: The same instants seen from another zone: bounds compare as instants.
TIMES_ELSEWHERE = [t.astimezone(timezone(timedelta(hours=-3))) for t in TIMES]


events = st.builds(
    Event,
    id=st.uuids(),
    timestamp=st.sampled_from(TIMES),
    source=st.sampled_from(EVENT_SOURCES),
    type=st.sampled_from(TYPES),
    payload=st.just({}),
    correlation_id=st.none() | st.sampled_from(CORRELATIONS),
    causation_id=st.none(),
    position=st.none() | st.integers(1, 20),
)

#: Fixed events checked on every example besides the drawn one: every source
#: with every type, the other fields cycling through their pools (coprime
#: lengths, so the combinations spread).
_POSITIONS: list[int | None] = [None, 1, 2, 3, 10, 19, 20]
UNIVERSE = [
    Event(
        id=UUID(int=1000 + i),
        timestamp=TIMES[i % len(TIMES)],
        source=source,
        type=kind,
        correlation_id=[None, *CORRELATIONS][i % 4],
        position=_POSITIONS[i % len(_POSITIONS)],
    )
    for i, (source, kind) in enumerate(
        (source, kind) for source in EVENT_SOURCES for kind in TYPES for _ in range(3)
    )
]


def _some(pool: list[Any]) -> st.SearchStrategy[frozenset[Any]]:
    return st.frozensets(st.sampled_from(pool), max_size=3)


#: A value for each field (never None: a field left out is None).
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "types": _some(TYPES),
    "categories": _some(CATEGORY_POOL),
    "sources": _some(SOURCE_POOL),
    "source_prefixes": _some(SOURCE_POOL),
    "correlation_ids": _some(CORRELATIONS),
    "since": st.sampled_from(TIMES + TIMES_ELSEWHERE),
    "until": st.sampled_from(TIMES + TIMES_ELSEWHERE),
    "after_position": st.integers(0, 21),
    "until_position": st.integers(0, 21),
}


@st.composite
def few_field_filters(draw: st.DrawFn) -> EventFilter:
    """A filter setting a few fields, so that two of them often both take an event.

    With every field set at random, nearly every event fails some field and
    the interesting case (both filters take it) would hardly ever come up.
    This also yields ``EventFilter()`` and the one-field shapes that
    ``predicate()`` specialises.
    """
    names = draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=3, unique=True))
    return EventFilter(**{name: draw(FIELD_VALUES[name]) for name in names})


#: Any field set or not, independently.
any_filters = st.builds(
    EventFilter,
    **{name: st.none() | values for name, values in FIELD_VALUES.items()},
)
#: Only the source part, where the intersection logic is subtle.
source_filters = st.builds(
    EventFilter,
    sources=st.none() | FIELD_VALUES["sources"],
    source_prefixes=st.none() | FIELD_VALUES["source_prefixes"],
)
filters = few_field_filters() | source_filters | any_filters


@st.composite
def filters_sharing_a_field(draw: st.DrawFn) -> tuple[EventFilter, EventFilter]:
    """Two filters that both set one field (and maybe one more each).

    Random pairs rarely constrain the same field while both still take some
    event; these exercise how ``&`` combines each field in turn.
    """
    names = sorted(FIELD_VALUES)
    shared = draw(st.sampled_from(names))
    pair = []
    for _ in range(2):
        fields = sorted({shared, *draw(st.lists(st.sampled_from(names), max_size=1))})
        pair.append(EventFilter(**{name: draw(FIELD_VALUES[name]) for name in fields}))
    return pair[0], pair[1]


def naive_matches(f: EventFilter, e: Event) -> bool:
    """Whether ``e`` passes ``f``, written straight from the docstring."""
    if f.types is not None and e.type not in f.types:
        return False
    if f.categories is not None and e.type.category not in f.categories:
        return False
    if f.correlation_ids is not None and e.correlation_id not in f.correlation_ids:
        return False
    if f.sources is not None or f.source_prefixes is not None:
        exact = f.sources is not None and e.source in f.sources
        prefixed = f.source_prefixes is not None and any(
            e.source.startswith(prefix) for prefix in f.source_prefixes
        )
        if not exact and not prefixed:
            return False
    if f.since is not None and not e.timestamp >= f.since:
        return False
    if f.until is not None and not e.timestamp < f.until:
        return False
    if f.after_position is not None and (e.position is None or not e.position > f.after_position):
        return False
    return f.until_position is None or (e.position is not None and e.position <= f.until_position)


# ---------------------------------------------------------------- properties


@settings(max_examples=200)
@given(f=filters, e=events)
def test_matches_agrees_with_the_naive_predicate(f: EventFilter, e: Event) -> None:
    for event in [e, *UNIVERSE]:
        assert f.matches(event) == naive_matches(f, event), event


@settings(max_examples=150)
@given(f=filters, e=events)
def test_predicate_agrees_with_matches(f: EventFilter, e: Event) -> None:
    predicate = f.predicate()
    for event in [e, *UNIVERSE]:
        assert predicate(event) == f.matches(event), event


@pytest.mark.parametrize(
    "f",
    [
        EventFilter(),
        EventFilter(types=AgentEvent.STARTED),
        EventFilter(types=["billing.paid", "x.started"]),
        EventFilter(types=[]),
        EventFilter(categories="agent"),
        EventFilter(categories=["billing", "system"]),
        EventFilter(categories=[]),
        EventFilter(types=AgentEvent.STARTED, categories="system"),
    ],
    ids=repr,
)
def test_predicate_agrees_with_matches_on_the_shapes_it_specialises(f: EventFilter) -> None:
    predicate = f.predicate()
    assert [predicate(event) for event in UNIVERSE] == [f.matches(event) for event in UNIVERSE]
    assert [predicate(event) for event in UNIVERSE] == [naive_matches(f, e) for e in UNIVERSE]


@settings(max_examples=200)
@given(f=filters, g=filters, e=events)
def test_the_intersection_takes_exactly_the_events_both_take(
    f: EventFilter, g: EventFilter, e: Event
) -> None:
    both = f & g
    assert isinstance(both, EventFilter)
    for event in [e, *UNIVERSE]:
        assert both.matches(event) == (naive_matches(f, event) and naive_matches(g, event)), event


@settings(max_examples=300)
@given(pair=filters_sharing_a_field(), e=events)
def test_the_intersection_of_filters_on_the_same_field_takes_what_both_take(
    pair: tuple[EventFilter, EventFilter], e: Event
) -> None:
    f, g = pair
    both = f & g
    for event in [e, *UNIVERSE]:
        assert both.matches(event) == (naive_matches(f, event) and naive_matches(g, event)), event


@settings(max_examples=100)
@given(f=filters, g=filters)
def test_the_intersection_commutes(f: EventFilter, g: EventFilter) -> None:
    # Stronger than agreeing on sampled events: the two are the same value.
    assert f & g == g & f


# ---------------------------------------------------------------- examples


def _event(source: str = "a", *, position: int | None = None, at: int = 0) -> Event:
    return Event(
        id=UUID(int=99),
        timestamp=_BASE + timedelta(seconds=at),
        source=source,
        type=AgentEvent.STARTED,
        position=position,
    )


@pytest.mark.parametrize(
    ("f", "g", "source", "expected"),
    [
        # Nested prefixes: the longer one is the intersection.
        (dict(source_prefixes="a/"), dict(source_prefixes="a/1"), "a/12", True),
        (dict(source_prefixes="a/"), dict(source_prefixes="a/1"), "a/2", False),
        (dict(source_prefixes="a/1"), dict(source_prefixes="a/"), "a/2", False),
        # Disjoint prefixes: nothing.
        (dict(source_prefixes="a/"), dict(source_prefixes="b/"), "a/1", False),
        # An exact source survives if the other side's prefix takes it.
        (dict(sources="a/1"), dict(source_prefixes="a/"), "a/1", True),
        (dict(sources="a/1"), dict(source_prefixes="b/"), "a/1", False),
        # A prefix meeting exact sources keeps only those it covers.
        (dict(source_prefixes="a"), dict(sources=["ab", "b"]), "ab", True),
        (dict(source_prefixes="a"), dict(sources=["ab", "b"]), "b", False),
        (dict(source_prefixes="a"), dict(sources=["ab", "b"]), "abc", False),
        # An unconstrained side leaves the other as it is.
        (dict(), dict(source_prefixes="a/"), "a/1", True),
        (dict(sources="b"), dict(), "a", False),
    ],
)
def test_intersecting_source_parts(
    f: dict[str, Any], g: dict[str, Any], source: str, expected: bool
) -> None:
    assert (EventFilter(**f) & EventFilter(**g)).matches(_event(source)) is expected


def test_time_bounds_are_since_inclusive_and_until_exclusive() -> None:
    f = EventFilter(since=_BASE + timedelta(seconds=1), until=_BASE + timedelta(seconds=3))
    assert [f.matches(_event(at=s)) for s in range(5)] == [False, True, True, False, False]


def test_position_bounds_are_after_exclusive_and_until_inclusive() -> None:
    f = EventFilter(after_position=1, until_position=3)
    assert [f.matches(_event(position=p)) for p in range(5)] == [False, False, True, True, False]


@pytest.mark.parametrize("bound", [dict(after_position=0), dict(until_position=100)])
def test_an_event_without_a_position_fails_any_position_bound(bound: dict[str, Any]) -> None:
    assert not EventFilter(**bound).matches(_event(position=None))
    assert EventFilter().matches(_event(position=None))


def test_the_intersection_with_something_else_is_a_type_error() -> None:
    other: Any = 5
    with pytest.raises(TypeError):
        EventFilter() & other


# ---------------------------------------------------------------- constructor


def test_a_single_type_or_wire_name_is_wrapped() -> None:
    assert EventFilter(types=AgentEvent.STARTED).types == frozenset({AgentEvent.STARTED})
    assert EventFilter(types="agent.started").types == frozenset({AgentEvent.STARTED})
    assert EventFilter(types=["agent.started", SystemEvent.STARTED]).types == frozenset(
        {AgentEvent.STARTED, SystemEvent.STARTED}
    )
    assert EventFilter(types="billing.call.finished").types == frozenset(
        {EventType("billing", "call.finished")}
    )


def test_single_strs_and_uuids_are_wrapped() -> None:
    f = EventFilter(
        categories="agent", sources="a/1", source_prefixes="a/", correlation_ids=UUID(int=1)
    )
    assert f.categories == frozenset({"agent"})
    assert f.sources == frozenset({"a/1"})
    assert f.source_prefixes == frozenset({"a/"})
    assert f.correlation_ids == frozenset({UUID(int=1)})


def test_fields_left_out_are_none_and_take_everything() -> None:
    f = EventFilter()
    assert (f.types, f.categories, f.sources, f.source_prefixes, f.correlation_ids) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert not f.constrains_source
    assert f.matches(_event())


def test_zero_is_a_valid_position_bound() -> None:
    assert EventFilter(after_position=0, until_position=0).after_position == 0


_NAIVE = datetime(2024, 1, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(types=5), TypeError, "types must be event types or wire names, got 5"),
        (dict(types=[5]), TypeError, "event type must be an EventType or a str, got 5"),
        (dict(types="nodot"), ValueError, "event type must look like 'category.name', got 'nodot'"),
        (dict(types=[""]), ValueError, "event type must look like 'category.name', got ''"),
        (
            dict(types="agent.strated"),
            ValueError,
            "unknown agent event type 'agent.strated'; custom types need a category of their own",
        ),
        (dict(categories=5), TypeError, "categories must be a str or strs, got 5"),
        (dict(categories=""), ValueError, "categories must be non-empty strs, got ''"),
        (dict(categories=[5]), ValueError, "categories must be non-empty strs, got 5"),
        (
            dict(categories="a.b"),
            ValueError,
            "categories may not contain dots or spaces, got 'a.b'",
        ),
        (
            dict(categories="a b"),
            ValueError,
            "categories may not contain dots or spaces, got 'a b'",
        ),
        (dict(sources=5), TypeError, "sources must be a str or strs, got 5"),
        (dict(sources=""), ValueError, "sources must be non-empty strs, got ''"),
        (dict(sources=["a", None]), ValueError, "sources must be non-empty strs, got None"),
        (dict(source_prefixes=[""]), ValueError, "source_prefixes must be non-empty strs, got ''"),
        (dict(source_prefixes=3.0), TypeError, "source_prefixes must be a str or strs, got 3.0"),
        (dict(correlation_ids="x"), TypeError, "correlation_ids must be UUIDs, got 'x'"),
        (dict(correlation_ids=5), TypeError, "correlation_ids must be UUIDs, got 5"),
        (dict(correlation_ids=[1]), TypeError, "correlation_ids must be UUIDs, got 1"),
        (
            dict(since=_NAIVE),
            ValueError,
            "since must be timezone-aware, got datetime.datetime(2024, 1, 1, 0, 0)",
        ),
        (
            dict(until=_NAIVE),
            ValueError,
            "until must be timezone-aware, got datetime.datetime(2024, 1, 1, 0, 0)",
        ),
        (dict(since="2024-01-01"), TypeError, "since must be a datetime or None, got '2024-01-01'"),
        (dict(until=5), TypeError, "until must be a datetime or None, got 5"),
        (dict(after_position=-1), ValueError, "after_position must be an int >= 0 or None, got -1"),
        (dict(until_position=-5), ValueError, "until_position must be an int >= 0 or None, got -5"),
        (
            dict(after_position=True),
            ValueError,
            "after_position must be an int >= 0 or None, got True",
        ),
        (
            dict(until_position=False),
            ValueError,
            "until_position must be an int >= 0 or None, got False",
        ),
        (
            dict(after_position=1.0),
            ValueError,
            "after_position must be an int >= 0 or None, got 1.0",
        ),
        (
            dict(until_position="3"),
            ValueError,
            "until_position must be an int >= 0 or None, got '3'",
        ),
    ],
)
def test_constructor_refuses_bad_fields_naming_them(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        EventFilter(**kwargs)


@pytest.mark.parametrize("field", ["categories", "sources", "source_prefixes", "correlation_ids"])
def test_constructor_names_the_field_when_an_item_is_unhashable(field: str) -> None:
    # The class docstring promises that the message names the field, not a
    # bare "unhashable type: 'list'".
    kwargs: dict[str, Any] = {field: [["a"]]}
    with pytest.raises(TypeError, match=rf"^{field} must be .*, got \[\['a'\]\]$"):
        EventFilter(**kwargs)


# ---------------------------------------------------------------- query strings


def test_from_query_builds_every_field() -> None:
    query = (
        "type=agent.failed type=tool.execution_failed category=agent source=db "
        "source=agents/* correlation=01a20ad1-3005-7d4e-9553-96b4168833c4 "
        "since=2026-01-01T00:00Z until=2026-01-02T00:00+01:00 after_position=3 until_position=9"
    )
    assert EventFilter.from_query(query) == EventFilter(
        types={"agent.failed", "tool.execution_failed"},
        categories="agent",
        sources="db",
        source_prefixes="agents/",
        correlation_ids=UUID("01a20ad1-3005-7d4e-9553-96b4168833c4"),
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=1))),
        after_position=3,
        until_position=9,
    )
    assert EventFilter.from_query("") == EventFilter()
    assert EventFilter.from_query("source='my agent'") == EventFilter(sources="my agent")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("foo", "bad filter term 'foo': expected key=value"),
        ("type=", "bad filter term 'type=': expected key=value"),
        (
            "x=1",
            "bad filter term 'x=1': unknown key 'x' (known: type, category, source, "
            "correlation, since, until, after_position, until_position)",
        ),
        (
            "since=2026-01-01",
            "bad filter term 'since=2026-01-01': a time needs a time zone, "
            "e.g. 2026-01-01T00:00+00:00",
        ),
        ("after_position=x", "bad filter term 'after_position=x': expected an int"),
        (
            "type=nodot",
            "bad filter term 'type=nodot': event type must look like 'category.name', got 'nodot'",
        ),
        (
            "source=*",
            "bad filter term 'source=*': a prefix needs at least one character before '*'",
        ),
        (
            "until_position=1 until_position=2",
            "bad filter term 'until_position=2': until_position given twice",
        ),
        ('source="open', "bad filter query 'source=\"open': No closing quotation"),
        (
            "after_position=-1",
            "bad filter query 'after_position=-1': after_position must be an int >= 0 "
            "or None, got -1",
        ),
    ],
)
def test_from_query_refuses_a_bad_term_quoting_it(query: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        EventFilter.from_query(query)


@settings(max_examples=300)
@given(f=filters)
def test_to_query_round_trips_through_from_query(f: EventFilter) -> None:
    empty = frozenset() in (f.types, f.categories, f.correlation_ids) or (
        f.constrains_source and not (f.sources or f.source_prefixes)
    )
    if empty:
        with pytest.raises(ValueError, match=r"takes no event; no query string expresses it$"):
            f.to_query()
        return
    back = EventFilter.from_query(f.to_query())
    assert [back.matches(e) for e in UNIVERSE] == [f.matches(e) for e in UNIVERSE]
    assert back.to_query() == f.to_query()

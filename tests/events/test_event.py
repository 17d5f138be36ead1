"""The event model: UUIDv7 ids, event types, ``Event.new`` and the causal context."""

from __future__ import annotations

import copy
import enum
import json
import pickle
import re
import sys
import time
import types
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any
from uuid import UUID

import attrs
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith import _event
from trio_smith.events import (
    CATEGORIES,
    AgentEvent,
    Event,
    EventType,
    SupervisionEvent,
    SystemEvent,
    ToolEvent,
    caused_by,
    current_cause,
    uuid7,
)
from trio_smith.events._codec import dump_payload

NAMESPACES: dict[str, type] = {
    "system": SystemEvent,
    "agent": AgentEvent,
    "tool": ToolEvent,
    "supervision": SupervisionEvent,
}

#: A fixed millisecond well in the past (2023-11-14), for the fake clocks.
T0_MS = 1_700_000_000_000
RAND_MAX = (1 << 74) - 1
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _ms(u: UUID) -> int:
    """The Unix millisecond a UUIDv7 carries in its top 48 bits."""
    return u.int >> 80


def _rand(u: UUID) -> int:
    """The 74 counter/random bits of a UUIDv7 (rand_a then rand_b)."""
    return ((u.int >> 64) & 0xFFF) << 62 | (u.int & ((1 << 62) - 1))


def _fake_clock(
    monkeypatch: pytest.MonkeyPatch,
    readings: Callable[[], int],
    *,
    last_ms: int = 0,
    last_rand: int = 0,
) -> None:
    """Make ``trio_smith._event`` read ``time.time_ns()`` from ``readings`` only.

    The generator's state is set through ``monkeypatch`` too, so the real
    sequence resumes untouched after the test.
    """
    monkeypatch.setattr(_event, "_last_ms", last_ms)
    monkeypatch.setattr(_event, "_last_rand", last_rand)
    monkeypatch.setattr(_event, "time", types.SimpleNamespace(time_ns=readings))


def _constant(ms: int) -> Callable[[], int]:
    return lambda: ms * 1_000_000


def _stepping(values_ms: Iterator[int]) -> Callable[[], int]:
    return lambda: next(values_ms) * 1_000_000


# ---------------------------------------------------------------- uuid7


def test_uuid7_has_version_7_and_the_rfc_variant() -> None:
    for _ in range(1000):
        u = uuid7()
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        assert (u.int >> 76) & 0xF == 7
        assert (u.int >> 62) & 0b11 == 0b10


def test_uuid7_returns_ordinary_uuids() -> None:
    # uuid7 builds its UUIDs without UUID.__init__: they must still behave.
    u = uuid7()
    assert type(u) is UUID
    same = UUID(int=u.int)
    assert u == same
    assert hash(u) == hash(same)
    assert UUID(str(u)) == u
    assert u.is_safe == same.is_safe
    assert pickle.loads(pickle.dumps(u)) == u
    assert copy.deepcopy(u) == u
    with pytest.raises(TypeError):
        u.__setattr__("int", 0)


def test_uuid7_is_strictly_increasing_over_many_calls() -> None:
    ids = [uuid7() for _ in range(100_000)]
    assert all(a < b for a, b in pairwise(ids))
    # Comparing UUIDs compares their ints; the str form sorts the same way.
    assert [str(u) for u in ids] == sorted(str(u) for u in ids)


def test_uuid7_embeds_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    u = uuid7()
    after = time.time_ns() // 1_000_000
    # Generous: an earlier burst of ids may have counted a little ahead.
    assert before - 5_000 <= _ms(u) <= after + 5_000


def test_uuid7_counts_up_within_a_millisecond_that_does_not_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_clock(monkeypatch, _constant(T0_MS))
    ids = [uuid7() for _ in range(1000)]
    assert {_ms(u) for u in ids} == {T0_MS}
    assert all(_rand(b) == _rand(a) + 1 for a, b in pairwise(ids))
    assert all(a < b for a, b in pairwise(ids))


def test_uuid7_stays_increasing_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_clock(monkeypatch, _stepping(iter(range(T0_MS, T0_MS - 1000, -1))))
    ids = [uuid7() for _ in range(1000)]
    assert all(a < b for a, b in pairwise(ids))
    # The first reading is kept: ids never carry a time earlier than an id before them.
    assert {_ms(u) for u in ids} == {T0_MS}


def test_uuid7_takes_fresh_random_bits_when_the_clock_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_clock(monkeypatch, _stepping(iter([T0_MS, T0_MS + 1, T0_MS + 7])))
    a, b, c = uuid7(), uuid7(), uuid7()
    assert [_ms(a), _ms(b), _ms(c)] == [T0_MS, T0_MS + 1, T0_MS + 7]
    assert a < b < c


def test_uuid7_counter_overflow_carries_into_the_next_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_clock(monkeypatch, _constant(T0_MS), last_ms=T0_MS, last_rand=RAND_MAX - 2)
    a, b = uuid7(), uuid7()
    assert (_ms(a), _rand(a)) == (T0_MS, RAND_MAX - 1)
    assert (_ms(b), _rand(b)) == (T0_MS, RAND_MAX)
    # All 74 bits are set and the version/variant bits are still intact.
    assert (b.version, b.variant) == (7, uuid.RFC_4122)
    c = uuid7()
    assert _ms(c) == T0_MS + 1
    # After the carry the counter restarts from 73 random bits: room to count.
    assert _rand(c) < 1 << 73
    d = uuid7()
    assert _ms(d) == T0_MS + 1
    assert _rand(d) == _rand(c) + 1
    assert a < b < c < d
    assert (c.version, c.variant) == (7, uuid.RFC_4122)


# ---------------------------------------------------------------- EventType


def test_event_type_wire_name_str_and_repr() -> None:
    kind = EventType("billing", "paid")
    assert kind.wire == "billing.paid"
    assert str(kind) == "billing.paid"
    assert repr(kind) == "EventType('billing', 'paid')"
    assert repr(AgentEvent.STARTED) == "EventType('agent', 'started')"


def test_event_type_parse_splits_at_the_first_dot() -> None:
    assert EventType.parse("agent.started") == AgentEvent.STARTED
    assert EventType.parse("billing.call.finished") == EventType("billing", "call.finished")
    assert EventType.parse("billing.call.finished").wire == "billing.call.finished"


def test_event_types_are_values() -> None:
    assert EventType("billing", "paid") == EventType("billing", "paid")
    assert EventType("billing", "paid") != EventType("billing", "refunded")
    assert len({EventType("billing", "paid"), EventType.parse("billing.paid")}) == 1


@pytest.mark.parametrize(
    ("category", "name"),
    [
        ("billing", "paid"),
        ("my-app_2", "call.finished"),
        ("x", "y"),
        ("ünïcode", "naïve"),
    ],
)
def test_event_type_accepts_custom_categories(category: str, name: str) -> None:
    kind = EventType(category, name)
    assert (kind.category, kind.name) == (category, name)
    assert EventType.parse(kind.wire) == kind


@pytest.mark.parametrize(
    ("category", "name", "message"),
    [
        ("a.b", "x", "event category may not contain dots or spaces, got 'a.b'"),
        ("a b", "x", "event category may not contain dots or spaces, got 'a b'"),
        ("a\tb", "x", "event category may not contain dots or spaces, got 'a\\tb'"),
        ("", "x", "event category must be a non-empty str, got ''"),
        (1, "x", "event category must be a non-empty str, got 1"),
        ("x", "", "event name must be a non-empty str, got ''"),
        ("x", "a b", "event name may not contain spaces or start or end with a dot, got 'a b'"),
        ("x", ".a", "event name may not contain spaces or start or end with a dot, got '.a'"),
        ("x", "a.", "event name may not contain spaces or start or end with a dot, got 'a.'"),
        (
            "system",
            "strated",
            "unknown system event type 'system.strated'; custom types need a category of their own",
        ),
        (
            "supervision",
            "child_exploded",
            "unknown supervision event type 'supervision.child_exploded'; "
            "custom types need a category of their own",
        ),
    ],
)
def test_event_type_refuses_malformed_or_unknown_reserved_types(
    category: Any, name: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        EventType(category, name)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("nodot", "event type must look like 'category.name', got 'nodot'"),
        ("", "event type must look like 'category.name', got ''"),
        ("system.", "event name must be a non-empty str, got ''"),
        (".started", "event category must be a non-empty str, got ''"),
        (
            "billing..paid",
            "event name may not contain spaces or start or end with a dot, got '.paid'",
        ),
        (
            "agent.strated",
            "unknown agent event type 'agent.strated'; custom types need a category of their own",
        ),
    ],
)
def test_event_type_parse_refuses_malformed_wire_names(wire: str, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        EventType.parse(wire)


@pytest.mark.parametrize("wire", [5, None, b"agent.started", AgentEvent.STARTED])
def test_event_type_parse_refuses_a_non_str(wire: Any) -> None:
    message = f"event type must be an EventType or a str, got {wire!r}"
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        EventType.parse(wire)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_every_reserved_name_is_an_attribute_of_its_namespace_and_vice_versa(
    category: str,
) -> None:
    namespace = NAMESPACES[category]
    attributes = {name for name in dir(namespace) if name.isupper()}
    assert attributes == {name.upper() for name in CATEGORIES[category]}
    # Each declared ClassVar is set, and nothing is set that is not declared.
    assert set(namespace.__annotations__) == attributes
    for name in CATEGORIES[category]:
        assert getattr(namespace, name.upper()) == EventType(category, name)


def test_the_namespaces_cover_exactly_the_reserved_categories() -> None:
    assert set(NAMESPACES) == set(CATEGORIES)


# ---------------------------------------------------------------- Event.new


def test_new_fills_a_uuid7_id_and_an_aware_utc_timestamp_of_now() -> None:
    before = datetime.now(UTC)
    event = Event.new(AgentEvent.STARTED, source="agents/a")
    after = datetime.now(UTC)
    assert event.id.version == 7
    assert event.timestamp.tzinfo is UTC
    assert before - timedelta(seconds=1) <= event.timestamp <= after + timedelta(seconds=1)
    assert event.source == "agents/a"
    assert event.type == AgentEvent.STARTED
    assert event.payload == {}
    assert event.position is None


def test_new_gives_each_event_a_later_id() -> None:
    events = [Event.new("billing.paid", source="a") for _ in range(100)]
    assert all(a.id < b.id for a, b in pairwise(events))


def test_new_accepts_a_wire_name_as_type() -> None:
    assert Event.new("agent.started", source="a").type == AgentEvent.STARTED
    assert Event.new("billing.call.finished", source="a").type == EventType(
        "billing", "call.finished"
    )


def test_new_refuses_a_malformed_wire_name() -> None:
    message = "unknown tool event type 'tool.ran'; custom types need a category of their own"
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        Event.new("tool.ran", source="a")


def test_new_copies_the_payload_and_makes_tuples_lists() -> None:
    inner = [1, 2]
    payload: dict[str, Any] = {"items": inner, "pair": (1, ("x", None)), "nested": {"k": True}}
    event = Event.new("billing.paid", source="a", payload=payload)
    inner.append(3)
    payload["extra"] = 1
    payload["nested"]["k"] = False
    assert event.payload == {"items": [1, 2], "pair": [1, ["x", None]], "nested": {"k": True}}
    assert type(event.payload["pair"]) is list
    assert type(event.payload["pair"][1]) is list
    assert event.payload["items"] is not inner


def test_new_keeps_json_scalars_as_they_are() -> None:
    payload = {"n": None, "t": True, "i": -(10**30), "f": 1.5, "s": "é", "z": -0.0}
    assert Event.new("billing.paid", source="a", payload=payload).payload == payload


def test_new_takes_subclasses_of_json_scalars() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    class Colour(enum.StrEnum):
        RED = "red"

    event = Event.new("billing.paid", source="a", payload={"x": [Level.HIGH, Colour.RED]})
    assert event.payload == {"x": [3, "red"]}


@pytest.mark.parametrize(
    ("payload", "error", "message"),
    [
        ({"k": [1, {2}]}, TypeError, "payload['k'][1] is not JSON-compatible: {2} (set)"),
        ({"b": b"x"}, TypeError, "payload['b'] is not JSON-compatible: b'x' (bytes)"),
        (
            {"when": datetime(2024, 1, 1)},
            TypeError,
            "payload['when'] is not JSON-compatible: "
            "datetime.datetime(2024, 1, 1, 0, 0) (datetime)",
        ),
        ({"a": {"b": [(0, object)]}}, TypeError, None),
        ({1: "x"}, TypeError, "payload has a key that is not a str: 1"),
        ({"a": {None: 1}}, TypeError, "payload['a'] has a key that is not a str: None"),
        ({"x": float("nan")}, ValueError, "payload['x'] is not JSON-compatible: nan is not finite"),
        (
            {"x": [float("inf")]},
            ValueError,
            "payload['x'][0] is not JSON-compatible: inf is not finite",
        ),
        (
            {"x": {"y": -float("inf")}},
            ValueError,
            "payload['x']['y'] is not JSON-compatible: -inf is not finite",
        ),
        ([1, 2], TypeError, "payload must be a mapping, got [1, 2]"),
        ("ab", TypeError, "payload must be a mapping, got 'ab'"),
        (3, TypeError, "payload must be a mapping, got 3"),
    ],
)
def test_new_refuses_payloads_json_cannot_hold_naming_the_path(
    payload: Any, error: type[Exception], message: str | None
) -> None:
    if message is None:
        message = (
            f"payload['a']['b'][0][1] is not JSON-compatible: {object!r} "
            f"({type(object).__qualname__})"
        )
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", source="a", payload=payload)


def _cyclic_list() -> list[object]:
    items: list[object] = [1]
    items.append(items)
    return items


def _cyclic_dict() -> dict[str, object]:
    mapping: dict[str, object] = {}
    mapping["self"] = mapping
    return mapping


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"x": _cyclic_list()}, "payload['x'][1] is not JSON-compatible: it contains itself"),
        (_cyclic_dict(), "payload['self'] is not JSON-compatible: it contains itself"),
    ],
    ids=["list", "dict"],
)
def test_new_refuses_a_cyclic_payload_naming_the_path(
    payload: dict[str, object], message: str
) -> None:
    # JSON cannot hold a cycle: a ValueError naming the path, not a RecursionError.
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", source="a", payload=payload)


def test_new_accepts_a_value_shared_by_two_keys() -> None:
    # Shared is not cyclic: the same list twice is two equal copies.
    shared = [1, {"k": 2}]
    event = Event.new("billing.paid", source="a", payload={"a": shared, "b": (shared, shared)})
    assert event.payload == {"a": [1, {"k": 2}], "b": [[1, {"k": 2}], [1, {"k": 2}]]}
    assert event.payload["a"] is not shared


def _nested(containers: int) -> dict[str, Any]:
    """A payload of ``containers`` nested containers: the object, then lists."""
    value: Any = 1
    for _ in range(containers - 1):
        value = [value]
    return {"x": value}


def test_new_accepts_a_payload_nested_max_payload_depth_levels() -> None:
    assert _event.MAX_PAYLOAD_DEPTH == 200
    event = Event.new("billing.paid", source="a", payload=_nested(200))
    assert event.payload == _nested(200)


def test_new_refuses_a_payload_nested_deeper_naming_the_path() -> None:
    message = "payload['x']" + "[0]" * 199 + " is nested deeper than 200 levels"
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", source="a", payload=_nested(201))


class _Text(str):
    """A str subclass: payload values of it take the slow path."""


class _Int(int):
    """An int subclass: payload values of it take the slow path."""


#: What UTF-8 cannot encode: a store would fail to write it (and its batch).
_SURROGATE = "a lone surrogate U+D800 at index 1"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: Event.new("billing.paid", source="s\ud800"),
            f"source must be valid Unicode text, got 's\\ud800' ({_SURROGATE})",
        ),
        (
            lambda: Event.new("billing.pa\ud800id", source="s"),
            "event name must be valid Unicode text, got 'pa\\ud800id' "
            "(a lone surrogate U+D800 at index 2)",
        ),
        (
            lambda: Event.new("b\ud800.paid", source="s"),
            f"event category must be valid Unicode text, got 'b\\ud800' ({_SURROGATE})",
        ),
        (
            lambda: EventType("bi\udfffll", "x"),
            "event category must be valid Unicode text, got 'bi\\udfffll' "
            "(a lone surrogate U+DFFF at index 2)",
        ),
        (
            lambda: EventType("billing", "é\udc80"),
            "event name must be valid Unicode text, got 'é\\udc80' "
            "(a lone surrogate U+DC80 at index 1)",
        ),
    ],
    ids=["source", "wire-name", "wire-category", "category", "name"],
)
def test_new_refuses_a_source_or_type_holding_a_lone_surrogate(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        build()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"s": "a\ud800"}, f"payload['s'] is not JSON-compatible: a str with {_SURROGATE}"),
        (
            {"ok": "é", "s": "é\udc80"},
            "payload['s'] is not JSON-compatible: a str with a lone surrogate U+DC80 at index 1",
        ),
        (
            {"items": [1, "x", "x\ud800"]},
            f"payload['items'][2] is not JSON-compatible: a str with {_SURROGATE}",
        ),
        (
            {"a": {"b": ("ok", {"c": "\udfff"})}},
            "payload['a']['b'][1]['c'] is not JSON-compatible: "
            "a str with a lone surrogate U+DFFF at index 0",
        ),
        (
            {"s": _Text("a\ud800")},
            f"payload['s'] is not JSON-compatible: a str with {_SURROGATE}",
        ),
        (
            {"k\ud800": 1},
            f"payload has a key that is not valid Unicode text: 'k\\ud800' ({_SURROGATE})",
        ),
        (
            {"k\ud800": [1]},
            f"payload has a key that is not valid Unicode text: 'k\\ud800' ({_SURROGATE})",
        ),
        (
            {"a": [{"é\ud800": None}]},
            f"payload['a'][0] has a key that is not valid Unicode text: 'é\\ud800' ({_SURROGATE})",
        ),
    ],
    ids=[
        "flat",
        "flat-after-non-ascii",
        "in-list",
        "nested",
        "str-subclass",
        "key",
        "key-slow-path",
        "nested-key",
    ],
)
def test_new_refuses_payload_text_holding_a_lone_surrogate_naming_the_path(
    payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", source="a", payload=payload)


def test_new_accepts_valid_non_ascii_text_everywhere() -> None:
    payload = {"é☃": "naïve ☃ \U0001f600", "list": ["ü", {"ключ": "значение"}], "s": _Text("é")}
    event = Event.new(EventType("ünïcode", "naïve☃"), source="agents/é☃\U0001f600", payload=payload)
    assert (event.source, event.type.wire) == ("agents/é☃\U0001f600", "ünïcode.naïve☃")
    assert event.payload == payload
    dump_payload(event.payload).encode("utf-8")


_TOO_LONG = "an int of more than 4300 digits (sys.get_int_max_str_digits())"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"i": 10**5000}, f"payload['i'] is not JSON-compatible: {_TOO_LONG}"),
        ({"a": [1, 10**5000]}, f"payload['a'][1] is not JSON-compatible: {_TOO_LONG}"),
        # 4301 digits, the sign not counted (as str() counts them).
        ({"a": {"b": -(10**4300)}}, f"payload['a']['b'] is not JSON-compatible: {_TOO_LONG}"),
        ({"i": _Int(10**4300)}, f"payload['i'] is not JSON-compatible: {_TOO_LONG}"),
        ({"a": (_Int(-(10**5000)),)}, f"payload['a'][0] is not JSON-compatible: {_TOO_LONG}"),
    ],
    ids=["flat", "in-list", "nested-negative", "int-subclass", "int-subclass-in-tuple"],
)
def test_new_refuses_a_payload_int_too_long_for_str_naming_the_path(
    payload: dict[str, Any], message: str
) -> None:
    assert sys.get_int_max_str_digits() == 4300
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", source="a", payload=payload)


def test_new_accepts_a_payload_int_of_exactly_the_limits_digits() -> None:
    assert sys.get_int_max_str_digits() == 4300
    longest = 10**4300 - 1
    payload = {"i": longest, "j": -longest, "k": [_Int(longest)], "short": 2**2000}
    event = Event.new("billing.paid", source="a", payload=payload)
    assert event.payload == payload
    assert len(dump_payload(event.payload)) > 3 * 4300


def test_new_follows_the_interpreters_int_to_str_limit() -> None:
    before = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)  # unlimited
        assert Event.new("billing.paid", source="a", payload={"i": 10**5000}).payload == {
            "i": 10**5000
        }
        sys.set_int_max_str_digits(640)  # the lowest limit there is
        event = Event.new("billing.paid", source="a", payload={"i": 10**640 - 1})
        assert event.payload == {"i": 10**640 - 1}
        message = (
            "payload['i'] is not JSON-compatible: "
            "an int of more than 640 digits (sys.get_int_max_str_digits())"
        )
        with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
            Event.new("billing.paid", source="a", payload={"i": 10**640})
    finally:
        sys.set_int_max_str_digits(before)


#: Every code point, surrogates included (st.text() alone never draws them).
_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=8)


@given(
    st.dictionaries(
        _ANY_TEXT, _ANY_TEXT | st.lists(_ANY_TEXT, max_size=3) | st.integers(), max_size=4
    )
)
def test_new_refuses_a_payload_exactly_when_a_store_could_not_write_it(
    payload: dict[str, Any],
) -> None:
    try:
        event = Event.new("billing.paid", source="a", payload=payload)
    except ValueError:
        with pytest.raises(UnicodeEncodeError):
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
    else:
        dump_payload(event.payload).encode("utf-8")


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("bad \ud800", "bad \\ud800"),
        ("\udfffé\ud83d\ude00", "\\udfffé\\ud83d\\ude00"),
    ],
)
def test_storable_text_escapes_each_lone_surrogate(text: str, stored: str) -> None:
    assert _event.storable_text(text) == stored
    stored.encode("utf-8")


@pytest.mark.parametrize("text", ["", "plain", "é☃ \U0001f600", "a\\ud800 already escaped"])
def test_storable_text_returns_valid_text_as_it_is(text: str) -> None:
    assert _event.storable_text(text) is text


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (dict(source=""), ValueError, "source must be a non-empty str, got ''"),
        (dict(source=None), ValueError, "source must be a non-empty str, got None"),
        (
            dict(timestamp=datetime(2024, 1, 1)),
            ValueError,
            "timestamp must be timezone-aware, got datetime.datetime(2024, 1, 1, 0, 0)",
        ),
        (dict(timestamp="2024-01-01"), TypeError, "timestamp must be a datetime, got '2024-01-01'"),
        (dict(id="x"), TypeError, "id must be a UUID or None, got 'x'"),
        (dict(id=uuid.UUID(int=1).int), TypeError, "id must be a UUID or None, got 1"),
        (dict(correlation_id="x"), TypeError, "correlation_id must be a UUID or None, got 'x'"),
        (dict(causation_id=5), TypeError, "causation_id must be a UUID or None, got 5"),
        (dict(cause="x"), TypeError, "cause must be an Event or None, got 'x'"),
    ],
)
def test_new_refuses_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    kwargs.setdefault("source", "a")
    with pytest.raises(error, match=rf"^{re.escape(message)}$"):
        Event.new("billing.paid", **kwargs)


def test_new_converts_an_aware_timestamp_to_utc() -> None:
    local = datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    event = Event.new("billing.paid", source="a", timestamp=local)
    assert event.timestamp.tzinfo is UTC
    assert event.timestamp == local
    assert (event.timestamp.hour, event.timestamp.minute) == (7, 0)


def test_new_keeps_an_explicit_id() -> None:
    given = uuid.uuid4()
    event = Event.new("billing.paid", source="a", id=given)
    assert event.id == given
    assert event.correlation_id == given


# ---------------------------------------------------------------- causality


def test_a_root_event_is_its_own_correlation() -> None:
    assert current_cause() is None
    event = Event.new("billing.paid", source="a")
    assert event.correlation_id == event.id
    assert event.causation_id is None


def test_an_event_built_under_caused_by_continues_the_causes_chain() -> None:
    cause = Event.new("billing.paid", source="a")
    with caused_by(cause):
        assert current_cause() is cause
        effect = Event.new("billing.receipt_sent", source="b")
    assert effect.correlation_id == cause.correlation_id == cause.id
    assert effect.causation_id == cause.id


def test_a_chain_of_three_keeps_the_roots_correlation() -> None:
    root = Event.new("billing.paid", source="a")
    with caused_by(root):
        middle = Event.new("billing.receipt_sent", source="b")
    with caused_by(middle):
        last = Event.new("billing.archived", source="c")
    assert {root.correlation_id, middle.correlation_id, last.correlation_id} == {root.id}
    assert (middle.causation_id, last.causation_id) == (root.id, middle.id)


def test_a_cause_without_correlation_id_counts_as_a_root() -> None:
    # Events built with the constructor (e.g. by an importer) may lack one.
    bare = Event(
        id=uuid7(), timestamp=datetime.now(UTC), source="a", type=EventType("billing", "paid")
    )
    effect = Event.new("billing.receipt_sent", source="b", cause=bare)
    assert (effect.correlation_id, effect.causation_id) == (bare.id, bare.id)


def test_explicit_correlation_and_causation_ids_win_over_the_context() -> None:
    cause = Event.new("billing.paid", source="a")
    correlation, causation = uuid.uuid4(), uuid.uuid4()
    with caused_by(cause):
        both = Event.new(
            "billing.x", source="b", correlation_id=correlation, causation_id=causation
        )
        only_correlation = Event.new("billing.x", source="b", correlation_id=correlation)
        only_causation = Event.new("billing.x", source="b", causation_id=causation)
    assert (both.correlation_id, both.causation_id) == (correlation, causation)
    assert (only_correlation.correlation_id, only_correlation.causation_id) == (
        correlation,
        cause.id,
    )
    assert (only_causation.correlation_id, only_causation.causation_id) == (
        cause.correlation_id,
        causation,
    )


def test_explicit_ids_without_a_cause_are_kept() -> None:
    correlation, causation = uuid.uuid4(), uuid.uuid4()
    event = Event.new("billing.x", source="b", correlation_id=correlation, causation_id=causation)
    assert (event.correlation_id, event.causation_id) == (correlation, causation)


def test_an_explicit_cause_wins_over_the_context() -> None:
    in_context = Event.new("billing.paid", source="a")
    other_root = Event.new("billing.paid", source="b")
    explicit = Event.new("billing.receipt_sent", source="b", cause=other_root)
    with caused_by(in_context):
        effect = Event.new("billing.x", source="c", cause=explicit)
    assert effect.correlation_id == other_root.id
    assert effect.causation_id == explicit.id


def test_caused_by_none_starts_a_new_chain() -> None:
    cause = Event.new("billing.paid", source="a")
    with caused_by(cause), caused_by(None):
        assert current_cause() is None
        fresh = Event.new("billing.x", source="b")
    assert fresh.correlation_id == fresh.id
    assert fresh.causation_id is None


def test_caused_by_restores_the_previous_cause_after_the_block() -> None:
    outer = Event.new("billing.paid", source="a")
    inner = Event.new("billing.paid", source="b")
    assert current_cause() is None
    with caused_by(outer):
        with caused_by(inner):
            assert current_cause() is inner
        assert current_cause() is outer
        after_inner = Event.new("billing.x", source="c")
    assert current_cause() is None
    assert after_inner.causation_id == outer.id
    later = Event.new("billing.x", source="c")
    assert (later.correlation_id, later.causation_id) == (later.id, None)


def test_caused_by_restores_the_previous_cause_after_an_exception() -> None:
    outer = Event.new("billing.paid", source="a")
    inner = Event.new("billing.paid", source="b")

    class Boom(Exception):
        pass

    with caused_by(outer):
        with pytest.raises(Boom), caused_by(inner):
            raise Boom
        assert current_cause() is outer
    assert current_cause() is None


async def test_a_sibling_started_outside_the_block_does_not_see_the_cause() -> None:
    root = Event.new("billing.paid", source="a")
    seen: dict[str, Event | None] = {}
    may_look = trio.Event()
    looked = trio.Event()

    async def sibling() -> None:
        await may_look.wait()
        seen["sibling"] = current_cause()
        seen["sibling_new"] = Event.new("billing.x", source="s")
        looked.set()

    async def late_child() -> None:
        await trio.lowlevel.checkpoint()
        seen["late_child"] = current_cause()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sibling)
        with caused_by(root):
            # The sibling looks while this task is inside the block.
            may_look.set()
            await looked.wait()
            assert current_cause() is root
        nursery.start_soon(late_child)

    assert seen["sibling"] is None
    sibling_new = seen["sibling_new"]
    assert sibling_new is not None
    assert (sibling_new.correlation_id, sibling_new.causation_id) == (sibling_new.id, None)
    assert seen["late_child"] is None


async def test_a_cause_set_in_a_child_task_does_not_leak_to_its_parent() -> None:
    child_cause = Event.new("billing.paid", source="child")
    inside = trio.Event()
    parent_looked = trio.Event()
    seen_in_child: list[Event | None] = []

    async def child() -> None:
        with caused_by(child_cause):
            inside.set()
            await parent_looked.wait()
            seen_in_child.append(current_cause())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(child)
        await inside.wait()
        assert current_cause() is None
        assert Event.new("billing.x", source="parent").causation_id is None
        parent_looked.set()
    assert seen_in_child == [child_cause]


async def test_a_task_started_inside_caused_by_sees_the_cause() -> None:
    root = Event.new("billing.paid", source="a")
    seen: list[Event | None] = []
    made: list[Event] = []

    async def child() -> None:
        await trio.lowlevel.checkpoint()
        seen.append(current_cause())
        made.append(Event.new("billing.x", source="c"))

    async with trio.open_nursery() as nursery:
        with caused_by(root):
            nursery.start_soon(child)
    assert seen == [root]
    assert (made[0].correlation_id, made[0].causation_id) == (root.id, root.id)


# ---------------------------------------------------------------- trusted builders


@settings(max_examples=300)
@given(st.integers(0, 2**128 - 1))
def test_trusted_uuid_is_the_uuid_the_constructor_builds(value: int) -> None:
    made = _event.trusted_uuid(value)
    expected = UUID(int=value)
    assert made == expected
    assert hash(made) == hash(expected)
    assert (str(made), made.bytes, made.is_safe) == (
        str(expected),
        expected.bytes,
        expected.is_safe,
    )
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.deepcopy(made) == expected


def test_build_event_sets_every_field_as_the_constructor_does() -> None:
    assert [f.name for f in attrs.fields(Event)] == [
        "id",
        "timestamp",
        "source",
        "type",
        "payload",
        "correlation_id",
        "causation_id",
        "position",
        "trace_context",
    ], "build_event and EVENT_SETTERS follow the field order"
    cause = Event.new(AgentEvent.STARTED, source="a")
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
        "source": "x/y",
        "type": SystemEvent.STOPPED,
        "payload": {"k": [1, "v"]},
        "correlation_id": cause.correlation_id,
        "causation_id": cause.id,
        "position": 7,
        "trace_context": {"traceparent": TRACEPARENT},
    }
    built = _event.build_event(**fields)
    expected = Event(**fields)
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    assert attrs.asdict(built, recurse=False) == fields
    assert cause.at_position(3) == attrs.evolve(cause, position=3)
    traced = attrs.evolve(cause, trace_context={"traceparent": TRACEPARENT})
    assert traced.at_position(3) == attrs.evolve(traced, position=3)

"""The events codec: round trips, the JSON shapes it writes, and what it refuses."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith.events import CATEGORIES, Event, EventType, dumps, loads
from trio_smith.events._codec import dump_payload, from_dict, load_payload, parse_json, to_dict

# ---------------------------------------------------------------- strategies

RESERVED_TYPES = [EventType(c, n) for c, names in sorted(CATEGORIES.items()) for n in sorted(names)]


def _no_space(text: str) -> bool:
    return not any(c.isspace() for c in text)


custom_categories = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="."), min_size=1, max_size=8
).filter(lambda c: _no_space(c) and c not in CATEGORIES)
custom_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=10).filter(
    lambda n: _no_space(n) and not n.startswith(".") and not n.endswith(".")
)
event_types = st.sampled_from(RESERVED_TYPES) | st.builds(
    EventType, custom_categories, custom_names
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(st.text(), json_values, max_size=5)

zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
timestamps = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    event = Event.new(
        draw(event_types),
        source=draw(st.text(min_size=1, max_size=20)),
        payload=draw(payloads),
        id=draw(st.none() | st.uuids()),
        correlation_id=draw(st.none() | st.uuids()),
        causation_id=draw(st.none() | st.uuids()),
        timestamp=draw(st.none() | timestamps),
    )
    position = draw(st.none() | st.integers(1, 2**63 - 1))
    return attrs.evolve(event, position=position)


def _strict_json(text: str) -> Any:
    """Parse ``text`` as standard JSON: NaN and Infinity are refused."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"not standard JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FIELDS = {
    "id",
    "timestamp",
    "source",
    "type",
    "payload",
    "correlation_id",
    "causation_id",
    "position",
}


# ---------------------------------------------------------------- round trips


@settings(max_examples=120)
@given(event=events())
def test_loads_inverts_dumps_and_from_dict_inverts_to_dict(event: Event) -> None:
    text = dumps(event)
    back = loads(text)
    assert back == event
    assert back.timestamp.tzinfo is UTC
    assert loads(text.encode()) == event
    data = to_dict(event)
    assert from_dict(data) == event
    # The dict is JSON-ready: it survives standard JSON unchanged.
    assert _strict_json(json.dumps(data)) == data


@settings(max_examples=100)
@given(event=events())
def test_dumps_writes_one_line_of_json_with_the_documented_shapes(event: Event) -> None:
    text = dumps(event)
    assert "\n" not in text
    data = _strict_json(text)
    assert set(data) == FIELDS
    assert data["id"] == str(event.id)
    assert CANONICAL_UUID.match(data["id"])
    assert data["timestamp"].endswith("+00:00")
    assert datetime.fromisoformat(data["timestamp"]) == event.timestamp
    assert data["source"] == event.source
    assert data["type"] == event.type.wire
    assert data["payload"] == event.payload
    for field in ("correlation_id", "causation_id"):
        value = getattr(event, field)
        assert data[field] == (None if value is None else str(value))
        assert data[field] is None or CANONICAL_UUID.match(data[field])
    assert data["position"] == event.position


def test_dumps_of_a_known_event() -> None:
    event = Event(
        id=UUID("01890a5d-ac96-774b-bcce-b302099a8057"),
        timestamp=datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC),
        source="agents/é",
        type=EventType("billing", "call.finished"),
        payload={"n": [1, 2.5, None, True], "s": "ü"},
        correlation_id=UUID("01890a5d-ac96-774b-bcce-b302099a8057"),
        causation_id=None,
        position=7,
    )
    assert dumps(event) == (
        '{"id":"01890a5d-ac96-774b-bcce-b302099a8057",'
        '"timestamp":"2024-05-01T12:00:00.250000+00:00",'
        '"source":"agents/é","type":"billing.call.finished",'
        '"payload":{"n":[1,2.5,null,true],"s":"ü"},'
        '"correlation_id":"01890a5d-ac96-774b-bcce-b302099a8057",'
        '"causation_id":null,"position":7}'
    )
    assert loads(dumps(event)) == event


def test_from_dict_takes_ids_and_types_as_objects_too() -> None:
    event = Event.new("billing.paid", source="a", correlation_id=UUID(int=5))
    data = {**to_dict(event), "id": event.id, "correlation_id": UUID(int=5), "type": event.type}
    assert from_dict(data) == event


def test_loads_converts_a_timestamp_with_another_offset_to_utc() -> None:
    data = to_dict(Event.new("billing.paid", source="a"))
    data["timestamp"] = "2024-05-01T14:00:00+02:00"
    event = loads(json.dumps(data))
    assert event.timestamp == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC


@settings(max_examples=60)
@given(payload=payloads)
def test_load_payload_inverts_dump_payload(payload: dict[str, Any]) -> None:
    text = dump_payload(payload)
    assert load_payload(text) == payload
    assert load_payload(text.encode()) == payload
    assert _strict_json(text) == payload


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_dump_payload_refuses_non_finite_floats(value: float) -> None:
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        dump_payload({"x": [value]})


@pytest.mark.parametrize("text", ["[1]", "1", '"x"', "null"])
def test_load_payload_refuses_json_that_is_not_an_object(text: str) -> None:
    message = f"expected a JSON object, got {json.loads(text)!r}"
    with pytest.raises(TypeError, match=rf"^{re.escape(message)}$"):
        load_payload(text)


# ---------------------------------------------------------------- refusals

PREFIX = "not a trio_smith event: "


def _valid() -> dict[str, Any]:
    return to_dict(Event.new("billing.paid", source="a", payload={"k": 1}))


def test_loads_of_invalid_json_says_so() -> None:
    message = (
        "not a trio_smith event: invalid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    )
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        loads("{")


@pytest.mark.parametrize("text", ["", "{", '{"id": }', "nope", '{"a": 1} trailing'])
def test_loads_refuses_text_that_is_not_json(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}invalid JSON \("):
        loads(text)


@pytest.mark.parametrize("text", [b"\xff", b'{"id": "\xff"}'])
def test_loads_refuses_bytes_that_are_not_utf8_as_not_an_event(text: bytes) -> None:
    # Not a bare UnicodeDecodeError: every refusal carries the common prefix.
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}not UTF-8 \(.*\)$"):
        loads(text)


@pytest.mark.parametrize(
    "text", ["[" * 100_000, '{"payload":' * 100_000], ids=["arrays", "objects"]
)
def test_loads_refuses_json_nested_too_deeply_to_parse_as_not_an_event(text: str) -> None:
    # Python's json parser gives up with a RecursionError; loads() promises
    # "ValueError: not JSON, or not an event", with the common prefix.
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}JSON nested too deeply$"):
        loads(text)


@pytest.mark.parametrize("text", ["[]", "1", "null", '"event"'])
def test_loads_refuses_json_that_is_not_an_object(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}"):
        loads(text)


@pytest.mark.parametrize(
    "field", sorted(FIELDS - {"payload", "correlation_id", "causation_id", "position"})
)
def test_loads_refuses_an_object_missing_a_required_field(field: str) -> None:
    data = _valid()
    del data[field]
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}.*\$\.{field}\b"):
        loads(json.dumps(data))


def test_loads_refuses_extra_fields() -> None:
    data = _valid()
    data["colour"] = "blue"
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}.*colour"):
        loads(json.dumps(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("type", "system.strated"),
        ("type", "nodot"),
        ("type", 5),
        ("timestamp", "2024-01-01T00:00:00"),
        ("timestamp", "yesterday"),
        ("timestamp", 1_700_000_000),
        ("payload", [1, 2]),
        ("payload", "{}"),
        ("payload", None),
        ("id", "not-a-uuid"),
        ("id", 5),
        ("correlation_id", "x"),
        ("causation_id", 7),
    ],
)
def test_loads_refuses_a_malformed_field_naming_it(field: str, value: Any) -> None:
    data = _valid()
    data[field] = value
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}.*\$\.{field}\b"):
        loads(json.dumps(data))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # cattrs' defaults would coerce these: str(5), int("3"), int(1.5) == 1,
        # int(True); the codec must refuse them instead.
        ("source", 5),
        ("source", None),
        ("position", "3"),
        ("position", 1.5),
        ("position", True),
        # Values no event has: Event.new refuses an empty source, and
        # positions start at 1.
        ("source", ""),
        ("position", 0),
        ("position", -1),
    ],
)
def test_from_dict_refuses_values_that_do_not_describe_an_event(field: str, value: Any) -> None:
    data = _valid()
    data[field] = value
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}.*\$\.{field}\b"):
        from_dict(data)
    with pytest.raises(ValueError, match=rf"^{re.escape(PREFIX)}.*\$\.{field}\b"):
        loads(json.dumps(data))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_loads_refuses_a_payload_with_non_finite_numbers(constant: str) -> None:
    # Python's json module reads these non-standard constants; accepting them
    # would yield an event whose dumps() is not JSON and that dump_payload refuses.
    text = dumps(Event.new("billing.paid", source="a", payload={"x": 0}))
    text = text.replace('"payload":{"x":0}', f'"payload":{{"x":[{constant}]}}')
    message = f"{PREFIX}invalid JSON ({constant} is not a JSON number)"
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        loads(text)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        value = parse(text)
    except ValueError as exc:
        return type(exc).__name__, str(exc)
    # NaN != NaN: compare the canonical text of what was parsed.
    return "ok", json.dumps(value)


@settings(max_examples=300)
@given(
    st.one_of(
        _json_values.map(json.dumps),
        _json_values.map(lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)),
        _json_values.map(lambda v: " " + json.dumps(v) + "\n"),
        st.text(max_size=20),
        st.sampled_from(["", " ", "{", "{}x", "[1,", "NaN", "-Infinity", '{"a":1} ', "\ufeff{}"]),
    )
)
def test_parse_json_is_json_loads(text: str) -> None:
    """The fast path of stored payloads returns and raises exactly what json.loads does."""
    assert _outcome(parse_json, text) == _outcome(json.loads, text)


def test_dump_payload_is_compact_json_dumps() -> None:
    payload = {"a": [1, 2.5, None, True, 'é\n"'], "b": {"c": {}}, "big": 2**70, "f": -0.0}
    assert dump_payload(payload) == json.dumps(
        payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    with pytest.raises(ValueError, match=r"^Out of range float values are not JSON compliant"):
        dump_payload({"x": math.inf})
    with pytest.raises(TypeError, match=r"^Object of type set is not JSON serializable$"):
        dump_payload({"x": {1}})

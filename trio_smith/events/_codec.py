"""The events codec: the one place events become JSON and back (docs/design.md rule 22).

One private ``cattrs`` converter knows how to (un)structure an ``Event``:
ids as canonical UUID strings, timestamps as ISO 8601 with ``+00:00``, the
type as its wire name. Stores use the field-level helpers (``dump_payload``
and friends) for their columns; the CLI and tests use ``dumps``/``loads``.
"""

from __future__ import annotations

import json
import json.encoder
import json.scanner
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import cattrs
from cattrs.v import format_exception

from .._core._check import is_int
from .._event import Event, EventType, check_trace_context

__all__ = [
    "dump_payload",
    "dumps",
    "from_dict",
    "load_payload",
    "loads",
    "parse_json",
    "to_dict",
]


def _structure_uuid(value: Any, _: type) -> UUID:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected a UUID string, got {value!r}")
    return UUID(value)


def _structure_datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {value!r}")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"expected a timezone-aware timestamp, got {value!r}")
    return moment.astimezone(UTC)


def _structure_str(value: Any, _: type) -> str:
    # cattrs' default is str(value): 5 would become "5".
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value


def _structure_int(value: Any, _: type) -> int:
    # cattrs' default is int(value): "3", 1.5 and True would pass.
    if not is_int(value) or value < 1:
        raise TypeError(f"expected an int >= 1, got {value!r}")
    return int(value)


def _structure_type(value: Any, _: type) -> EventType:
    if isinstance(value, EventType):
        return value
    return EventType.parse(value)


def _structure_payload(value: Any, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {value!r}")
    return value


def _is_payload(kind: Any) -> bool:
    return bool(kind == dict[str, Any])


def _unstructure_payload(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def _is_trace_context(kind: Any) -> bool:
    return bool(kind == Mapping[str, str] | None)


def _structure_trace_context(value: Any, _: type) -> dict[str, str] | None:
    return check_trace_context(value)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_unstructure_hook(UUID, str)
    converter.register_structure_hook(UUID, _structure_uuid)
    converter.register_unstructure_hook(datetime, datetime.isoformat)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_unstructure_hook(EventType, str)
    converter.register_structure_hook(EventType, _structure_type)
    # The payload was validated as JSON when the event was built: pass it on.
    converter.register_unstructure_hook_func(_is_payload, _unstructure_payload)
    converter.register_structure_hook_func(_is_payload, _structure_payload)
    converter.register_structure_hook_func(_is_trace_context, _structure_trace_context)
    return converter


_converter: Final = _make_converter()


def to_dict(event: Event) -> dict[str, Any]:
    """The event as a JSON-ready dict (every field, ``position`` included).

    ``trace_context`` only when it is not None: an event without one reads
    as it did before the field existed.
    """
    result: dict[str, Any] = _converter.unstructure(event)
    if result["trace_context"] is None:
        del result["trace_context"]
    return result


def _format_error(exc: BaseException, kind: type | None) -> str:
    # A trace context's own check says what is wrong with it; cattrs would
    # only name the expected type.
    if str(exc).startswith("trace_context"):
        return str(exc)
    return format_exception(exc, kind)


def from_dict(data: Any) -> Event:
    """The event a dict from :func:`to_dict` describes.

    Raises:
        ValueError: ``data`` does not describe an event; the message says why.
    """
    try:
        return _converter.structure(data, Event)
    except Exception as exc:
        detail = (
            "; ".join(cattrs.transform_error(exc, format_exception=_format_error))
            if isinstance(exc, cattrs.BaseValidationError)
            else str(exc)
        )
        raise ValueError(f"not a trio_smith event: {detail}") from exc


def dumps(event: Event) -> str:
    """The event as one line of JSON."""
    return json.dumps(to_dict(event), separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Event:
    """The event a line of :func:`dumps` describes.

    Raises:
        ValueError: not JSON, or not an event.
    """
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not a trio_smith event: not UTF-8 ({exc})") from exc
    except RecursionError:
        raise ValueError("not a trio_smith event: JSON nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not a trio_smith event: invalid JSON ({exc})") from exc
    return from_dict(data)


def _refuse_constant(name: str) -> Any:
    # json reads NaN and Infinity, which JSON (and Event.new) do not allow.
    raise ValueError(f"{name} is not a JSON number")


_PAYLOAD_ENCODER: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)
# json.dumps with options builds an encoder on every call, and even a kept
# JSONEncoder builds its C encoder on every encode(): a third of a store
# append's own time. The C encoder is built once here, with the arguments
# JSONEncoder.iterencode gives it (stdlib's json.encoder.c_make_encoder;
# absent without the C accelerator, then the kept encoder serves). No cycle
# check: Event.new refuses cyclic payloads, and a hand-built one fails with
# RecursionError.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None,
        _PAYLOAD_ENCODER.default,
        json.encoder.encode_basestring,
        None,
        _PAYLOAD_ENCODER.key_separator,
        _PAYLOAD_ENCODER.item_separator,
        False,
        False,
        False,
    )
)


def dump_payload(payload: dict[str, Any]) -> str:
    """A payload as compact JSON text (a store column)."""
    if _c_encode is None:
        return _PAYLOAD_ENCODER.encode(payload)
    return "".join(_c_encode(payload, 0))


# json.loads goes through three Python layers and two regex matches before
# the C scanner; for a short payload they cost more than the parsing
# (1.9 us against 0.8 us per stored payload here). The scanner is built once,
# as JSONDecoder builds it; absent without the C accelerator.
_c_scanner: Any = getattr(json.scanner, "c_make_scanner", None)
_scan: Final = None if _c_scanner is None else _c_scanner(json.JSONDecoder())
_loads: Final = json.loads


def parse_json(text: str) -> Any:
    """``json.loads(text)``, faster for compact text such as a stored payload.

    The C scanner parses from the first character; when it does not take
    exactly the whole text (whitespace around it, an error), ``json.loads``
    decides, so the result and every error are json.loads's own.
    """
    if _scan is not None:
        try:
            value, end = _scan(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return value
    return _loads(text)


def load_payload(text: str | bytes) -> dict[str, Any]:
    """A payload column back as a dict."""
    return _structure_payload(json.loads(text), dict)

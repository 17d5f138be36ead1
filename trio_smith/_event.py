"""The event model: ``Event``, event types, UUIDv7 ids and the causal context.

It sits below the supervision shell (docs/design.md rule 11): supervisors build
their lifecycle events here and hand them to anything with ``publish_nowait``
(``EventPublisher``), so the shell never imports the bus.

Theory of operation
===================

* **Ids** are UUIDv7 (RFC 9562 section 5.7): 48 bits of Unix milliseconds,
  then 74 random bits. Ids made by one process are strictly increasing: when
  the clock has not moved (or went back), the previous id's random bits are
  incremented (RFC 9562 section 6.2, method 2), so ids sort in creation
  order, which keeps the store's unique index append-mostly
  (docs/design.md rule 30: +52% batched appends over uuid4).
* **Types** are ``EventType(category, name)`` with the wire name
  ``"category.name"``. The four reserved categories (``system``, ``agent``,
  ``tool``, ``supervision``) accept only their listed names, so a typo fails
  loudly; any other category is a custom one.
* **Causality** flows through a context variable: ``Event.new`` reads the
  event being handled (set by subscriptions around each delivered event, by
  handlers, or by ``caused_by``) and copies its ``correlation_id``, with
  ``causation_id = cause.id``. A root event is its own correlation, so one
  correlation id finds a whole causal chain, root included. Explicit
  arguments always win.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, NoReturn, Protocol, TypeAlias, final
from uuid import UUID, SafeUUID

import attrs

from ._core._check import non_empty_str, unicode_problem

__all__ = [
    "AgentEvent",
    "CATEGORIES",
    "Event",
    "EventPublisher",
    "EventType",
    "SupervisionEvent",
    "SystemEvent",
    "ToolEvent",
    "TraceContextInjector",
    "caused_by",
    "current_cause",
    "set_context_injector",
    "uuid7",
]

log: Final = logging.getLogger("trio_smith.events")

# ---------------------------------------------------------------- UUIDv7

_RAND_BITS: Final = 74
_RAND_MASK: Final = (1 << _RAND_BITS) - 1
# A private generator: ids need uniqueness and speed, not secrecy.
_rng = random.Random(os.urandom(32))
_last_ms = 0
_last_rand = 0


def uuid7() -> UUID:
    """Return a new UUIDv7: time-ordered, and strictly increasing within this process.

    Returns:
        A version 7, RFC 9562 variant ``uuid.UUID``. Ids made later in the
        same process always compare greater, even within one millisecond or
        if the wall clock steps back.
    """
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    if ms > _last_ms:
        rand = _rng.getrandbits(_RAND_BITS)
    else:
        # Same millisecond, or the clock went back: count up from the last id
        # (RFC 9562 6.2 method 2); a carry moves into the next millisecond.
        ms = _last_ms
        rand = _last_rand + 1
        if rand > _RAND_MASK:
            ms += 1
            rand = _rng.getrandbits(_RAND_BITS - 1)
    _last_ms, _last_rand = ms, rand
    # Layout: unix_ts_ms(48) | ver(4)=7 | rand_a(12) | var(2)=0b10 | rand_b(62).
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 62) << 64
        | 0b10 << 62
        | (rand & ((1 << 62) - 1))
    )
    # UUID(int=...) re-validates the range; ours is in range by construction.
    return trusted_uuid(value)


_new_uuid: Final = UUID.__new__
_SET_UUID_INT: Final = UUID.int.__set__  # type: ignore[misc, attr-defined]
_SET_UUID_SAFE: Final = UUID.is_safe.__set__  # type: ignore[misc, attr-defined]
_UNKNOWN: Final = SafeUUID.unknown


def trusted_uuid(value: int) -> UUID:
    """``UUID(int=value)`` for a value known to fit in 128 bits, without the checks.

    Half the cost of the constructor: new ids and decoded rows use it. Sets
    the slots as ``UUID.__init__`` does.
    """
    made = _new_uuid(UUID)
    _SET_UUID_INT(made, value)
    _SET_UUID_SAFE(made, _UNKNOWN)
    return made


# ---------------------------------------------------------------- types

#: The reserved categories and the only names each accepts (docs/design.md E4).
CATEGORIES: Final[Mapping[str, frozenset[str]]] = {
    "system": frozenset(
        {
            "started",
            "stopping",
            "stopped",
            "health_check_passed",
            "health_check_failed",
            "configuration_changed",
            "resource_pool_exhausted",
            "circuit_breaker_open",
            "circuit_breaker_closed",
        }
    ),
    "agent": frozenset(
        {
            "created",
            "started",
            "stopped",
            "failed",
            "message_received",
            "message_processed",
            "state_changed",
        }
    ),
    "tool": frozenset(
        {
            "registered",
            "unregistered",
            "execution_started",
            "execution_completed",
            "execution_failed",
            "permission_denied",
        }
    ),
    "supervision": frozenset(
        {
            "supervisor_started",
            "supervisor_stopped",
            "supervisor_gave_up",
            "child_started",
            "child_stopped",
            "child_failed",
            "child_restarted",
            "child_output",
        }
    ),
}


def _check_category(category: str) -> None:
    non_empty_str("event category", category)
    if "." in category or any(c.isspace() for c in category):
        raise ValueError(f"event category may not contain dots or spaces, got {category!r}")


def _check_name(name: str) -> None:
    non_empty_str("event name", name)
    if any(c.isspace() for c in name) or name.startswith(".") or name.endswith("."):
        raise ValueError(
            f"event name may not contain spaces or start or end with a dot, got {name!r}"
        )


#: Wire names parsed so far (bounded: wire names may come from any file).
PARSED_TYPES: Final[dict[str, EventType]] = {}
_PARSED_MAX: Final = 4096


@final
@attrs.frozen(slots=True, repr=False, cache_hash=True)
class EventType:
    """The type of an event: a category and a name, on the wire ``"category.name"``.

    The reserved categories ``system``, ``agent``, ``tool`` and
    ``supervision`` accept only the names listed on :class:`SystemEvent`,
    :class:`AgentEvent`, :class:`ToolEvent` and :class:`SupervisionEvent`;
    any other category is a custom one (``EventType("billing", "paid")``).

    Args:
        category: no dots and no spaces.
        name: no spaces; may contain dots after the first character
            (``"call.finished"``).

    Raises:
        ValueError: a malformed category or name, or a name not listed for a
            reserved category.
    """

    category: str
    name: str

    def __attrs_post_init__(self) -> None:
        _check_category(self.category)
        _check_name(self.name)
        known = CATEGORIES.get(self.category)
        if known is not None and self.name not in known:
            raise ValueError(
                f"unknown {self.category} event type {self.wire!r}; "
                f"custom types need a category of their own"
            )

    @property
    def wire(self) -> str:
        """The wire name, ``"category.name"``."""
        return f"{self.category}.{self.name}"

    @classmethod
    def parse(cls, wire: str) -> EventType:
        """Build a type from its wire name ``"category.name"``.

        Parsed types are remembered: decoding a stored log meets the same few
        wire names over and over.

        Raises:
            ValueError: no dot, or an invalid category or name.
        """
        given: object = wire
        if not isinstance(given, str):
            raise TypeError(f"event type must be an EventType or a str, got {wire!r}")
        known = PARSED_TYPES.get(wire)
        if known is not None:
            return known
        category, dot, name = wire.partition(".")
        if not dot:
            raise ValueError(f"event type must look like 'category.name', got {wire!r}")
        kind = cls(category, name)
        if len(PARSED_TYPES) < _PARSED_MAX:
            PARSED_TYPES[wire] = kind
        return kind

    def __str__(self) -> str:
        return self.wire

    def __repr__(self) -> str:
        return f"EventType({self.category!r}, {self.name!r})"


@final
class SystemEvent:
    """The ``system`` event types (docs/design.md E4)."""

    STARTED: ClassVar[EventType]
    STOPPING: ClassVar[EventType]
    STOPPED: ClassVar[EventType]
    HEALTH_CHECK_PASSED: ClassVar[EventType]
    HEALTH_CHECK_FAILED: ClassVar[EventType]
    CONFIGURATION_CHANGED: ClassVar[EventType]
    RESOURCE_POOL_EXHAUSTED: ClassVar[EventType]
    CIRCUIT_BREAKER_OPEN: ClassVar[EventType]
    CIRCUIT_BREAKER_CLOSED: ClassVar[EventType]


@final
class AgentEvent:
    """The ``agent`` event types."""

    CREATED: ClassVar[EventType]
    STARTED: ClassVar[EventType]
    STOPPED: ClassVar[EventType]
    FAILED: ClassVar[EventType]
    MESSAGE_RECEIVED: ClassVar[EventType]
    MESSAGE_PROCESSED: ClassVar[EventType]
    STATE_CHANGED: ClassVar[EventType]


@final
class ToolEvent:
    """The ``tool`` event types."""

    REGISTERED: ClassVar[EventType]
    UNREGISTERED: ClassVar[EventType]
    EXECUTION_STARTED: ClassVar[EventType]
    EXECUTION_COMPLETED: ClassVar[EventType]
    EXECUTION_FAILED: ClassVar[EventType]
    PERMISSION_DENIED: ClassVar[EventType]


@final
class SupervisionEvent:
    """The ``supervision`` event types: trio_smith's own lifecycle events.

    Supervisors given ``events=`` publish them with the supervisor's path
    (``"root/child/..."``) as source: ``SUPERVISOR_STARTED``,
    ``SUPERVISOR_STOPPED``, ``SUPERVISOR_GAVE_UP``, ``CHILD_STARTED``,
    ``CHILD_STOPPED``, ``CHILD_FAILED``, ``CHILD_RESTARTED`` and
    ``CHILD_OUTPUT`` (a program's output line, ``os_process``). Their
    payloads are listed in docs/events.md ("Supervision events"), field by
    field; the payload always has ``"supervisor"`` (the path) and, for child
    events, ``"child_id"`` and ``"incarnation"``.
    """

    SUPERVISOR_STARTED: ClassVar[EventType]
    SUPERVISOR_STOPPED: ClassVar[EventType]
    SUPERVISOR_GAVE_UP: ClassVar[EventType]
    CHILD_STARTED: ClassVar[EventType]
    CHILD_STOPPED: ClassVar[EventType]
    CHILD_FAILED: ClassVar[EventType]
    CHILD_RESTARTED: ClassVar[EventType]
    CHILD_OUTPUT: ClassVar[EventType]


for _cls, _category in (
    (SystemEvent, "system"),
    (AgentEvent, "agent"),
    (ToolEvent, "tool"),
    (SupervisionEvent, "supervision"),
):
    for _name in sorted(CATEGORIES[_category]):
        setattr(_cls, _name.upper(), EventType(_category, _name))


# ---------------------------------------------------------------- payloads


_SCALARS: Final = frozenset({str, int, bool, type(None)})


#: Deeper payloads are refused (JSON encoders and decoders recurse too).
MAX_PAYLOAD_DEPTH: Final = 200

#: An int of at most this many bits has at most 603 decimal digits, fewer
#: than any int-to-str limit (the smallest nonzero one is 640 digits,
#: ``sys.int_info.str_digits_check_threshold``): only longer ints need
#: a closer look.
_SHORT_INT_BITS: Final = 2000


def storable_text(text: str) -> str:
    """``text`` if UTF-8 can encode it, else with each lone surrogate backslash-escaped.

    For text the library puts into payloads without validation (an
    exception's message): a store must be able to write it.
    """
    if unicode_problem(text) is None:
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@functools.lru_cache(maxsize=4)
def _power_of_ten(exponent: int) -> int:
    """``10**exponent``, kept: 26 us for the default limit's 4300."""
    power: int = 10**exponent  # typeshed: Any, as a negative exponent makes a float
    return power


def _refuse_str(value: str, path: str) -> NoReturn:
    """Refuse a payload str that UTF-8 cannot encode (a store could not write it).

    Callers test ``unicode_problem(value) is not None`` first, so that the
    path (a repr per key) and the message are built only for a refusal.
    """
    raise ValueError(f"payload{path} is not JSON-compatible: a str with {unicode_problem(value)}")


def _refuse_key(key: str, path: str) -> NoReturn:
    """Refuse a payload key that UTF-8 cannot encode (as ``_refuse_str``)."""
    raise ValueError(
        f"payload{path} has a key that is not valid Unicode text: {key!r} ({unicode_problem(key)})"
    )


def _check_int(value: int, path: str) -> None:
    """Refuse an int too long for ``str()`` (``sys.get_int_max_str_digits()``).

    Called for ints longer than ``_SHORT_INT_BITS`` only. The message never
    shows the int itself: writing it is what cannot be done.
    """
    limit = sys.get_int_max_str_digits()
    # |value| < 2**bits <= 8**limit < 10**limit: at most ``limit`` digits.
    if limit == 0 or int.bit_length(value) <= 3 * limit:
        return
    if int.__abs__(value) >= _power_of_ten(limit):
        raise ValueError(
            f"payload{path} is not JSON-compatible: an int of more than {limit} digits "
            f"(sys.get_int_max_str_digits())"
        )


def _json_copy(value: object, path: str, ancestors: set[int] | None = None) -> Any:
    """A copy of ``value`` with tuples made lists; raise on anything JSON cannot hold.

    ``ancestors`` holds the ids of the containers on the path to ``value``,
    to refuse a cycle (or a payload too deep) instead of recursing for ever.
    Text must be encodable as UTF-8 and ints writable by ``str()``, else a
    store's commit would fail later.
    """
    kind = type(value)
    if kind is dict:
        # Fast path: a flat object of str keys and scalar values, checked,
        # then copied in one go. ASCII text costs one isascii(), a short int
        # one bit_length(); a path is built only for a refusal.
        assert isinstance(value, dict)
        for key, item in value.items():
            if type(key) is not str:
                break
            if not key.isascii() and unicode_problem(key) is not None:
                _refuse_key(key, path)
            kind = type(item)
            if kind is str:
                if not item.isascii() and unicode_problem(item) is not None:
                    _refuse_str(item, f"{path}[{key!r}]")
            elif kind is int:
                if item.bit_length() > _SHORT_INT_BITS:
                    _check_int(item, f"{path}[{key!r}]")
            elif kind not in _SCALARS:
                break
        else:
            return value.copy()
    elif kind is str:
        assert isinstance(value, str)
        if not value.isascii() and unicode_problem(value) is not None:
            _refuse_str(value, path)
        return value
    elif kind is int:
        assert isinstance(value, int)
        if value.bit_length() > _SHORT_INT_BITS:
            _check_int(value, path)
        return value
    elif kind in _SCALARS:
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise ValueError(f"payload{path} is not JSON-compatible: {value!r} is not finite")
    if isinstance(value, str):
        if unicode_problem(value) is not None:
            _refuse_str(value, path)
        return value
    if isinstance(value, int):  # bool included: it is short
        if int.bit_length(value) > _SHORT_INT_BITS:
            _check_int(value, path)
        return value
    if not isinstance(value, Mapping | list | tuple):
        raise TypeError(
            f"payload{path} is not JSON-compatible: {value!r} ({type(value).__qualname__})"
        )
    if ancestors is None:
        ancestors = set()
    marker = id(value)
    if marker in ancestors:
        raise ValueError(f"payload{path} is not JSON-compatible: it contains itself")
    if len(ancestors) >= MAX_PAYLOAD_DEPTH:
        raise ValueError(f"payload{path} is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
    ancestors.add(marker)
    try:
        if isinstance(value, Mapping):
            copy = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"payload{path} has a key that is not a str: {key!r}")
                if unicode_problem(key) is not None:
                    _refuse_key(key, path)
                copy[key] = _json_copy(item, f"{path}[{key!r}]", ancestors)
            return copy
        return [_json_copy(item, f"{path}[{i}]", ancestors) for i, item in enumerate(value)]
    finally:
        ancestors.discard(marker)


# ---------------------------------------------------------------- trace context

#: The W3C Trace Context ``traceparent`` header: version, trace id, parent
#: (span) id and flags, lowercase hex.
_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
#: The keys of a trace context carrier (W3C Trace Context's two headers).
TRACE_CONTEXT_KEYS: Final = frozenset({"traceparent", "tracestate"})

#: Called for every new event, for its trace context (``set_context_injector``).
TraceContextInjector: TypeAlias = Callable[[], "Mapping[str, str] | None"]
_injector: TraceContextInjector | None = None


def check_trace_context(value: object) -> dict[str, str] | None:
    """A copy of a W3C trace context carrier, checked; None stays None.

    Raises:
        TypeError: not a mapping or None, or a value that is not a str.
        ValueError: a key other than ``traceparent`` and ``tracestate``, no
            ``traceparent``, a ``traceparent`` not in the W3C form, or a
            ``tracestate`` that is not printable ASCII.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"trace_context must be a mapping or None, got {value!r}")
    carrier: dict[str, str] = {}
    for key, text in value.items():
        if key not in TRACE_CONTEXT_KEYS:
            raise ValueError(
                f"trace_context may hold only 'traceparent' and 'tracestate', got key {key!r}"
            )
        if not isinstance(text, str):
            raise TypeError(f"trace_context[{key!r}] must be a str, got {text!r}")
        carrier[key] = text
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        raise ValueError(f"trace_context needs a 'traceparent', got {value!r}")
    if not _TRACEPARENT.fullmatch(traceparent):
        raise ValueError(
            "trace_context['traceparent'] must be a W3C traceparent "
            f"(2, 32, 16 and 2 lowercase hex digits joined by '-'), got {traceparent!r}"
        )
    tracestate = carrier.get("tracestate")
    if tracestate is not None and not all(" " <= c <= "~" for c in tracestate):
        raise ValueError(
            f"trace_context['tracestate'] must be printable ASCII text, got {tracestate!r}"
        )
    return carrier


def set_context_injector(injector: TraceContextInjector | None) -> TraceContextInjector | None:
    """Give every new event the trace context ``injector`` returns (None: no injector).

    ``trio_smith.otel.instrument()`` installs one that returns the current
    span's W3C headers (``opentelemetry.propagate.inject``);
    ``uninstrument()`` removes it. With no injector (the default) events
    carry no trace context unless given one, at the cost of one None check.
    An injector that raises, or returns something that is not a trace
    context, is logged and the event gets none: no event is lost to it.

    Args:
        injector: called with no argument for each new event (by
            ``Event.new`` unless it is given ``trace_context``, and for the
            library's own events); returns a carrier of ``traceparent`` and
            optionally ``tracestate``, or None.

    Returns:
        The injector it replaces, or None.

    Raises:
        TypeError: ``injector`` is neither callable nor None.
    """
    global _injector
    if injector is not None and not callable(injector):
        raise TypeError(f"injector must be callable or None, got {injector!r}")
    previous, _injector = _injector, injector
    return previous


def _injected(injector: TraceContextInjector) -> dict[str, str] | None:
    try:
        return check_trace_context(injector())
    except Exception:
        log.exception("trace context injector %r failed; the event carries none", injector)
        return None


# ---------------------------------------------------------------- events

_CAUSE: Final[contextvars.ContextVar[Event | None]] = contextvars.ContextVar(
    "trio_smith.event_cause", default=None
)


@final
@attrs.frozen(kw_only=True, slots=True)
class Event:
    """Something that happened, as the bus carries it and a store keeps it.

    Build events with :meth:`new`, which validates; the constructor trusts its
    arguments (the codec uses it). Treat ``payload`` as read-only: every
    subscriber gets the same object.

    Attributes:
        id: a UUIDv7, time-ordered; a store refuses a second event with an id
            it holds (an append of it again returns the original).
        timestamp: when it happened, an aware UTC datetime.
        source: the component it comes from, e.g. ``"agents/researcher-1"``.
        type: its :class:`EventType`.
        payload: a JSON object (str keys; values None, bool, int, finite
            float, str, lists and objects of those). Its text is valid
            Unicode (no lone surrogate) and its ints have at most
            ``sys.get_int_max_str_digits()`` digits, so a store can write it.
        correlation_id: the id of the root of its causal chain (its own id
            for a root event).
        causation_id: the id of the event that caused it, or None.
        position: its place in the store's log, from 1; None until a store
            has assigned it, and for events published without a store.
        trace_context: the W3C Trace Context of the work that made it
            (``{"traceparent": ..., "tracestate": ...}``, the latter
            optional), so that a trace continues in whatever process reads
            the event (``trio_smith.otel.context_of``); None when it has
            none. Read-only, as ``payload``.
    """

    id: UUID
    timestamp: datetime
    source: str
    type: EventType
    payload: dict[str, Any] = attrs.field(factory=dict, hash=False)
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    position: int | None = None
    trace_context: Mapping[str, str] | None = attrs.field(default=None, hash=False)

    @classmethod
    def new(
        cls,
        type: EventType | str,
        *,
        source: str,
        payload: Mapping[str, object] | None = None,
        cause: Event | None = None,
        correlation_id: UUID | None = None,
        causation_id: UUID | None = None,
        id: UUID | None = None,
        timestamp: datetime | None = None,
        trace_context: Mapping[str, str] | None = None,
    ) -> Event:
        """Build a validated event, filling its id, time and causal links.

        Args:
            type: an :class:`EventType` or its wire name ``"category.name"``.
            source: the component it comes from; a non-empty str of valid
                Unicode text.
            payload: a JSON object; it is copied (tuples become lists).
            cause: the event that caused this one; default: the event being
                handled in this context (see :func:`current_cause`).
            correlation_id: default: the cause's correlation, else the new
                event's own id.
            causation_id: default: the cause's id, else None.
            id: default: a new :func:`uuid7`. Give one to make a retried
                publish idempotent.
            timestamp: default: now. An aware datetime, stored as UTC (for
                imports and tests).
            trace_context: a W3C Trace Context carrier: ``traceparent``
                and optionally ``tracestate``; it is copied. Default: what
                the injector returns
                (:func:`trio_smith.telemetry.set_context_injector`), else None.

        Returns:
            The event, without a position.

        Raises:
            TypeError: ``payload`` holds something JSON cannot (the message
                names its path, e.g. ``payload['items'][2]``), or an argument
                has the wrong type.
            ValueError: a malformed type, an empty source, a non-finite float,
                text holding a lone surrogate (``"\\ud800"``, which UTF-8
                cannot encode) in the type, the source, or a payload key or
                value, a payload int of more digits than
                ``sys.get_int_max_str_digits()`` allows, a naive timestamp,
                or a malformed ``trace_context`` (a key other than
                ``traceparent`` and ``tracestate``, no ``traceparent``, one
                not in the W3C form, a ``tracestate`` not printable ASCII).
                Payload messages name the path, as for TypeError.
        """
        kind = type if isinstance(type, EventType) else EventType.parse(type)
        non_empty_str("source", source)
        data: dict[str, Any] = {} if payload is None else _json_copy(payload, "")
        if not isinstance(data, dict):
            raise TypeError(f"payload must be a mapping, got {payload!r}")
        if timestamp is not None:
            if not isinstance(timestamp, datetime):
                raise TypeError(f"timestamp must be a datetime, got {timestamp!r}")
            if timestamp.tzinfo is None or timestamp.utcoffset() is None:
                raise ValueError(f"timestamp must be timezone-aware, got {timestamp!r}")
            timestamp = timestamp.astimezone(UTC)
        for label, value in (("id", id), ("correlation_id", correlation_id)):
            if value is not None and not isinstance(value, UUID):
                raise TypeError(f"{label} must be a UUID or None, got {value!r}")
        if causation_id is not None and not isinstance(causation_id, UUID):
            raise TypeError(f"causation_id must be a UUID or None, got {causation_id!r}")
        if cause is None:
            cause = _CAUSE.get()
        elif not isinstance(cause, Event):
            raise TypeError(f"cause must be an Event or None, got {cause!r}")
        return linked_event(
            kind,
            source,
            data,
            cause,
            event_id=id,
            timestamp=timestamp,
            correlation_id=correlation_id,
            causation_id=causation_id,
            trace_context=check_trace_context(trace_context),
        )

    def at_position(self, position: int) -> Event:
        """This event as a store keeps it: the same, with ``position`` set.

        (Stores call it once per appended event; building the copy directly
        costs a fraction of ``attrs.evolve``.)
        """
        return build_event(
            self.id,
            self.timestamp,
            self.source,
            self.type,
            self.payload,
            self.correlation_id,
            self.causation_id,
            position,
            self.trace_context,
        )


_new_object: Final = object.__new__
#: The slot setters of Event's fields, in order (stores decode rows with them).
EVENT_SETTERS: Final = tuple(getattr(Event, field.name).__set__ for field in attrs.fields(Event))
(
    _SET_ID,
    _SET_TIMESTAMP,
    _SET_SOURCE,
    _SET_TYPE,
    _SET_PAYLOAD,
    _SET_CORRELATION,
    _SET_CAUSATION,
    _SET_POSITION,
    _SET_TRACE_CONTEXT,
) = EVENT_SETTERS


def build_event(
    id: UUID,
    timestamp: datetime,
    source: str,
    type: EventType,
    payload: dict[str, Any],
    correlation_id: UUID | None,
    causation_id: UUID | None,
    position: int | None,
    trace_context: Mapping[str, str] | None = None,
) -> Event:
    """``Event(...)`` from trusted parts, in half the time (``at_position`` uses it).

    Sets the slots directly, as attrs' own ``__init__`` does, minus the
    keyword call (the SQLite store's row decoder inlines the same setters,
    ``EVENT_SETTERS``). tests/events/test_event.py checks that it agrees
    with the constructor field by field.
    """
    event = _new_object(Event)
    _SET_ID(event, id)
    _SET_TIMESTAMP(event, timestamp)
    _SET_SOURCE(event, source)
    _SET_TYPE(event, type)
    _SET_PAYLOAD(event, payload)
    _SET_CORRELATION(event, correlation_id)
    _SET_CAUSATION(event, causation_id)
    _SET_POSITION(event, position)
    _SET_TRACE_CONTEXT(event, trace_context)
    return event


def linked_event(
    kind: EventType,
    source: str,
    payload: dict[str, Any],
    cause: Event | None,
    *,
    event_id: UUID | None = None,
    timestamp: datetime | None = None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
    trace_context: Mapping[str, str] | None = None,
) -> Event:
    """Build an event from checked parts, with the causal links (see "Causality" above).

    ``cause`` is taken as given (None: a root event), never from the context;
    :meth:`Event.new` validates and resolves the context first. Supervisors
    call it directly: their payloads are theirs and JSON-safe. The trace
    context is the checked one given, else the injector's, if one is set
    (one None check when none is).
    """
    if trace_context is None and _injector is not None:
        trace_context = _injected(_injector)
    if event_id is None:
        event_id = uuid7()
    if cause is not None:
        if correlation_id is None:
            correlation_id = cause.correlation_id or cause.id
        if causation_id is None:
            causation_id = cause.id
    elif correlation_id is None:
        correlation_id = event_id
    return Event(
        id=event_id,
        timestamp=datetime.now(UTC) if timestamp is None else timestamp,
        source=source,
        type=kind,
        payload=payload,
        correlation_id=correlation_id,
        causation_id=causation_id,
        trace_context=trace_context,
    )


def current_cause() -> Event | None:
    """The event being handled in this context, if any.

    Subscriptions set it to each event they deliver (in the receiving task),
    handlers run with it, and :func:`caused_by` sets it explicitly.
    :meth:`Event.new` uses it as the default cause.
    """
    return _CAUSE.get()


@contextmanager
def caused_by(event: Event | None) -> Iterator[None]:
    """Within the block, events built with :meth:`Event.new` are caused by ``event``.

    An exception that escapes the block keeps ``event`` (on each exception of
    a group), so that a supervisor whose child it fails can publish the
    failure in the chain of the work it ended (``failure_cause``); the
    innermost block an exception escapes is the one it keeps.

    Args:
        event: the cause, or None to start new causal chains.
    """
    token = _CAUSE.set(event)
    try:
        yield
    except BaseException as exc:
        # The current cause is reset below, before any supervisor sees the
        # error: the error carries it out instead.
        keep_cause(exc, event)
        raise
    finally:
        _CAUSE.reset(token)


#: The attribute under which an exception keeps the cause of the
#: ``caused_by`` block it escaped (a 1-tuple: a kept None means "no cause").
_CAUSE_ATTRIBUTE: Final = "_trio_smith_cause"


def keep_cause(error: BaseException, event: Event | None) -> None:
    """Keep ``event`` on ``error`` (on each leaf of a group) unless it keeps one already.

    For a block that resets the current cause while ``error`` escapes it
    (``caused_by``, a subscription's ``async with``): the error carries the
    cause out to the supervisor that sees it (``failure_cause``).
    """
    if isinstance(error, BaseExceptionGroup):
        # On the leaves: ``except*`` hands on new groups, never this one.
        for inner in error.exceptions:
            keep_cause(inner, event)
    elif not hasattr(error, _CAUSE_ATTRIBUTE):
        with suppress(AttributeError, TypeError):  # a class without __dict__
            setattr(error, _CAUSE_ATTRIBUTE, (event,))


def _recorded_cause(error: BaseException) -> tuple[Event | None] | None:
    """The cause kept on ``error`` or on the first leaf of its group that keeps one."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _recorded_cause(inner)
            if found is not None:
                return found
        return None
    kept: tuple[Event | None] | None = getattr(error, _CAUSE_ATTRIBUTE, None)
    return kept


def failure_cause(error: BaseException) -> Event | None:
    """The event whose work ``error`` ended: the cause of a child's failure.

    The cause of the innermost :func:`caused_by` block the error escaped
    (of a group: of its first exception that escaped one), else the current
    cause of the calling task (an event a subscription or a mailbox is
    delivering there). The child boundary calls it in the failed child's own
    task.
    """
    kept = _recorded_cause(error)
    return _CAUSE.get() if kept is None else kept[0]


#: Make an event the current cause in this context (subscriptions use it);
#: the bound method itself, which saves a call per delivered event.
set_cause: Final = _CAUSE.set


class EventPublisher(Protocol):
    """Anything a supervisor can publish to: an ``EventBus``, or your own."""

    def publish_nowait(self, event: Event) -> object:
        """Publish without blocking; raise ``trio.WouldBlock`` when it cannot."""
        ...

"""``EventFilter``: which events a subscription, a replay or a query wants.

A filter is a conjunction of fields; each field is a disjunction of its
values (``types={a, b}`` means "type a or type b"); ``None`` leaves a field
unconstrained. ``f & g`` is again a flat filter (it intersects field by
field), so stores can always translate it to an indexed query. The filter is
pure: ``matches(event)`` depends on nothing but the two values.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, final
from uuid import UUID

import attrs

from .._core._check import int_at_least
from .._event import Event, EventType

__all__ = ["EventFilter"]


def _collect(value: Any, single: type, message: str) -> frozenset[Any] | None:
    """One value or an iterable of them, as a frozenset; None stays None.

    ``message`` is the TypeError for anything else (a str never counts as an
    iterable of values, unless it is itself a single value).
    """
    if value is None:
        return None
    if isinstance(value, single):
        return frozenset((value,))
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(message)
    try:
        return frozenset(value)
    except TypeError:  # an unhashable item
        raise TypeError(message) from None


def _types(value: Any) -> frozenset[EventType] | None:
    # Not _collect: wire names are parsed first, so that a bad item is named.
    if value is None:
        return None
    if isinstance(value, EventType | str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise TypeError(f"types must be event types or wire names, got {value!r}")
    return frozenset(v if isinstance(v, EventType) else EventType.parse(v) for v in value)


def _strs(label: str, value: Any) -> frozenset[str] | None:
    items = _collect(value, str, f"{label} must be a str or strs, got {value!r}")
    for item in items or ():
        if not isinstance(item, str) or not item:
            raise ValueError(f"{label} must be non-empty strs, got {item!r}")
    return items


def _categories(value: Any) -> frozenset[str] | None:
    items = _strs("categories", value)
    for category in items or ():
        if "." in category or any(c.isspace() for c in category):
            raise ValueError(f"categories may not contain dots or spaces, got {category!r}")
    return items


def _sources(value: Any) -> frozenset[str] | None:
    return _strs("sources", value)


def _prefixes(value: Any) -> frozenset[str] | None:
    return _strs("source_prefixes", value)


def _uuids(value: Any) -> frozenset[UUID] | None:
    items = _collect(value, UUID, f"correlation_ids must be UUIDs, got {value!r}")
    for item in items or ():
        if not isinstance(item, UUID):
            raise TypeError(f"correlation_ids must be UUIDs, got {item!r}")
    return items


def _check_time(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise TypeError(f"{attribute.name} must be a datetime or None, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{attribute.name} must be timezone-aware, got {value!r}")


def _check_position(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    int_at_least(attribute.name, value, 0, optional=True)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _both(a: frozenset[Any] | None, b: frozenset[Any] | None) -> frozenset[Any] | None:
    return b if a is None else a if b is None else a & b


@final
@attrs.frozen(kw_only=True, slots=True)
class EventFilter:
    """Which events to take; every field left as None takes all.

    Args:
        types: event types (or wire names); one or several.
        categories: type categories, e.g. ``"agent"``.
        sources: exact sources.
        source_prefixes: source prefixes; an event matches the source part
            if its source is one of ``sources`` or starts with one of these.
            Include the separator to mean a subtree: ``"agents/"``.
        correlation_ids: correlation ids.
        since: earliest timestamp, inclusive (aware datetime).
        until: latest timestamp, exclusive.
        after_position: positions greater than this (a checkpoint); events
            without a position never match a position bound.
        until_position: positions up to this one, inclusive.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range; the
            message names it.
    """

    types: frozenset[EventType] | None = attrs.field(default=None, converter=_types)
    categories: frozenset[str] | None = attrs.field(default=None, converter=_categories)
    sources: frozenset[str] | None = attrs.field(default=None, converter=_sources)
    source_prefixes: frozenset[str] | None = attrs.field(default=None, converter=_prefixes)
    correlation_ids: frozenset[UUID] | None = attrs.field(default=None, converter=_uuids)
    since: datetime | None = attrs.field(default=None, validator=_check_time)
    until: datetime | None = attrs.field(default=None, validator=_check_time)
    after_position: int | None = attrs.field(default=None, validator=_check_position)
    until_position: int | None = attrs.field(default=None, validator=_check_position)

    @property
    def constrains_source(self) -> bool:
        """Whether the source part takes only some sources."""
        return self.sources is not None or self.source_prefixes is not None

    def source_matches(self, source: str) -> bool:
        """Whether ``source`` passes the source part of the filter."""
        if not self.constrains_source:
            return True
        if self.sources is not None and source in self.sources:
            return True
        return self.source_prefixes is not None and source.startswith(tuple(self.source_prefixes))

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes every field of the filter."""
        if self.types is not None and event.type not in self.types:
            return False
        if self.categories is not None and event.type.category not in self.categories:
            return False
        if self.correlation_ids is not None and event.correlation_id not in self.correlation_ids:
            return False
        if not self.source_matches(event.source):
            return False
        if self.since is not None and event.timestamp < self.since:
            return False
        if self.until is not None and event.timestamp >= self.until:
            return False
        position = event.position
        if self.after_position is not None and (
            position is None or position <= self.after_position
        ):
            return False
        return not (
            self.until_position is not None and (position is None or position > self.until_position)
        )

    def predicate(self) -> Callable[[Event], bool]:
        """A function equal to :meth:`matches`, specialised to the fields that are set.

        The bus calls it once per subscriber and event, so it skips the
        fields a filter leaves open.
        """
        if self == _ANY:
            return _always
        if attrs.evolve(self, types=None) == _ANY:
            types = self.types
            assert types is not None
            return lambda event: event.type in types
        if attrs.evolve(self, categories=None) == _ANY:
            categories = self.categories
            assert categories is not None
            return lambda event: event.type.category in categories
        return self.matches

    @classmethod
    def from_query(cls, query: str) -> EventFilter:
        """Build a filter from a query string, as the command line takes it.

        The query is whitespace-separated ``key=value`` terms (shell quoting
        allowed); a key given several times takes any of its values. Keys:
        ``type`` (a wire name), ``category``, ``source`` (exact; a trailing
        ``*`` makes it a prefix: ``source=agents/*``), ``correlation`` (a
        UUID), ``since`` and ``until`` (ISO 8601 with a time zone),
        ``after_position`` and ``until_position`` (ints)::

            EventFilter.from_query("category=agent source=agents/* since=2026-01-01T00:00Z")

        Raises:
            ValueError: a malformed term or value; the message quotes it.
        """
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, got {query!r}")
        try:
            terms = shlex.split(query)
        except ValueError as exc:
            raise ValueError(f"bad filter query {query!r}: {exc}") from None
        many: dict[str, list[Any]] = {}
        once: dict[str, Any] = {}
        for term in terms:
            key, eq, value = term.partition("=")
            if not eq or not value:
                raise ValueError(f"bad filter term {term!r}: expected key=value")
            if key not in _QUERY_KEYS:
                raise ValueError(
                    f"bad filter term {term!r}: unknown key {key!r} "
                    f"(known: {', '.join(_QUERY_KEYS)})"
                )
            try:
                part = _query_field(key, value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bad filter term {term!r}: {exc}") from None
            for name, item in part.items():
                if name in _SINGLE:
                    if name in once:
                        raise ValueError(f"bad filter term {term!r}: {key} given twice")
                    once[name] = item
                else:
                    many.setdefault(name, []).append(item)
        fields: dict[str, Any] = {**many, **once}
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad filter query {query!r}: {exc}") from None

    def to_query(self) -> str:
        """The query string :meth:`from_query` turns back into an equivalent filter.

        Raises:
            ValueError: the filter takes no event at all (a field with an
                empty set of values, as ``&`` can produce): no query says so.
        """
        if frozenset() in (self.types, self.categories, self.correlation_ids) or (
            self.constrains_source and not (self.sources or self.source_prefixes)
        ):
            raise ValueError(f"{self!r} takes no event; no query string expresses it")
        terms: list[str] = []
        terms += [f"type={t.wire}" for t in sorted(self.types or (), key=str)]
        terms += [f"category={c}" for c in sorted(self.categories or ())]
        terms += [f"source={s}" for s in sorted(self.sources or ())]
        terms += [f"source={p}*" for p in sorted(self.source_prefixes or ())]
        terms += [f"correlation={c}" for c in sorted(self.correlation_ids or (), key=str)]
        for key in ("since", "until"):
            moment = getattr(self, key)
            if moment is not None:
                terms.append(f"{key}={moment.isoformat()}")
        for key in ("after_position", "until_position"):
            position = getattr(self, key)
            if position is not None:
                terms.append(f"{key}={position}")
        return " ".join(shlex.quote(term) for term in terms)

    def __and__(self, other: EventFilter) -> EventFilter:
        """The filter that takes exactly the events both take."""
        if not isinstance(other, EventFilter):
            return NotImplemented
        sources: frozenset[str] | None
        prefixes: frozenset[str] | None
        if not self.constrains_source:
            sources, prefixes = other.sources, other.source_prefixes
        elif not other.constrains_source:
            sources, prefixes = self.sources, self.source_prefixes
        else:
            # x passes both iff it is an exact source of one passing the
            # other, or it starts with the longer of two nested prefixes.
            sources = frozenset(
                {s for s in self.sources or () if other.source_matches(s)}
                | {s for s in other.sources or () if self.source_matches(s)}
            )
            prefixes = frozenset(
                max(p, q, key=len)
                for p in self.source_prefixes or ()
                for q in other.source_prefixes or ()
                if p.startswith(q) or q.startswith(p)
            )
        after = [p for p in (self.after_position, other.after_position) if p is not None]
        until = [p for p in (self.until_position, other.until_position) if p is not None]
        return EventFilter(
            types=_both(self.types, other.types),
            categories=_both(self.categories, other.categories),
            sources=sources,
            source_prefixes=prefixes,
            correlation_ids=_both(self.correlation_ids, other.correlation_ids),
            since=_later(self.since, other.since),
            until=_earlier(self.until, other.until),
            after_position=max(after) if after else None,
            until_position=min(until) if until else None,
        )


_QUERY_KEYS: Final = (
    "type",
    "category",
    "source",
    "correlation",
    "since",
    "until",
    "after_position",
    "until_position",
)


#: Query keys that take one value.
_SINGLE: Final = frozenset({"since", "until", "after_position", "until_position"})


def _query_field(key: str, value: str) -> dict[str, Any]:
    """The EventFilter field (and item) one ``key=value`` term gives."""
    if key == "type":
        return {"types": EventType.parse(value)}
    if key == "category":
        return {"categories": value}
    if key == "source":
        if not value.endswith("*"):
            return {"sources": value}
        if value == "*":
            raise ValueError("a prefix needs at least one character before '*'")
        return {"source_prefixes": value[:-1]}
    if key == "correlation":
        return {"correlation_ids": UUID(value)}
    if key in ("since", "until"):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a time needs a time zone, e.g. 2026-01-01T00:00+00:00")
        return {key: moment}
    try:
        return {key: int(value)}
    except ValueError:
        raise ValueError("expected an int") from None


def _always(_: Event) -> bool:
    return True


_ANY = EventFilter()

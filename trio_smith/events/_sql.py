"""The SQL of a read, for both SQL stores: an ``EventFilter`` as a ``WHERE`` clause.

SQLite and PostgreSQL differ here only in the parameter marker and in how an
id and a time are passed (16 bytes and UTC microseconds in SQLite; ``uuid``
and ``timestamptz`` in PostgreSQL), so one builder takes a ``Dialect``.

Query plans (checked in tests/events/test_sqlite_plans.py and
tests/events/test_postgres_store.py): id, correlation, exact source and type
use their ``(column, position)`` indexes. A time range or a source prefix
must use the ``ts`` or ``source`` index; a young store has no statistics, and
the planner would rather walk the position range for ``position > ?`` (it
saves the sort), which reads the whole log. So with those constraints the
position bound is written ``+position``, which no index serves: the planner
then takes the constraint's index and sorts what it finds (design rule 22).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, final
from uuid import UUID

import attrs

from ._filter import EventFilter

__all__ = ["COLUMNS", "COLUMNS_V1", "MAX_POSITION", "Dialect", "prefix_bound", "read_sql", "where"]

#: The columns every read selects, in the order the stores' row decoders take
#: them (``category`` is the type's, so it is not read back).
COLUMNS: Final = (
    "position, event_id, ts, source, type, correlation_id, causation_id, payload, trace_context"
)
#: The same from a schema version 1 store opened read-only, which has no
#: ``trace_context`` column (a writable open adds it: docs/design.md rule 46).
COLUMNS_V1: Final = (
    "position, event_id, ts, source, type, correlation_id, causation_id, payload, "
    "NULL AS trace_context"
)

#: The largest position (and limit) a 64-bit integer column holds; a bound
#: beyond it is no bound (an ``after`` beyond it selects nothing).
MAX_POSITION: Final = 2**63 - 1


@final
@attrs.frozen(kw_only=True)
class Dialect:
    """How one SQL engine writes a parameter, an id and a time, and the columns it reads."""

    param: str
    uuid: Callable[[UUID], Any]
    time: Callable[[datetime], Any]
    columns: str = COLUMNS


def prefix_bound(prefix: str) -> str | None:
    """The smallest text greater than every text that starts with ``prefix``.

    Both engines compare text by code point (SQLite's BINARY collation, and
    PostgreSQL's ``"C"``, on UTF-8). None when there is none (the prefix is
    all U+10FFFF). Surrogates are skipped: no store holds them.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    code = ord(stem[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return stem[:-1] + chr(code)


def where(filter: EventFilter | None, after: int, dialect: Dialect) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of a read (positions > after)."""
    mark = dialect.param
    clauses: list[str] = []
    params: list[Any] = []
    low = after
    if filter is not None and filter.after_position is not None:
        low = max(low, filter.after_position)
    if low >= MAX_POSITION:
        return "FALSE", []
    ranged = filter is not None and (
        filter.since is not None or filter.until is not None or bool(filter.source_prefixes)
    )
    position = "+position" if ranged else "position"
    if low > 0:
        clauses.append(f"{position} > {mark}")
        params.append(low)
    if filter is None:
        return " AND ".join(clauses) or "TRUE", params
    if filter.until_position is not None and filter.until_position < MAX_POSITION:
        clauses.append(f"{position} <= {mark}")
        params.append(filter.until_position)
    for column, values in (
        ("type", None if filter.types is None else sorted(t.wire for t in filter.types)),
        ("category", None if filter.categories is None else sorted(filter.categories)),
        (
            "correlation_id",
            None
            if filter.correlation_ids is None
            else [dialect.uuid(c) for c in sorted(filter.correlation_ids)],
        ),
    ):
        if values is not None:
            if not values:
                return "FALSE", []
            clauses.append(f"{column} IN ({', '.join([mark] * len(values))})")
            params.extend(values)
    if filter.constrains_source:
        alternatives: list[str] = []
        exact = sorted(filter.sources or ())
        if exact:
            alternatives.append(f"source IN ({', '.join([mark] * len(exact))})")
            params.extend(exact)
        for prefix in sorted(filter.source_prefixes or ()):
            # A range, so the source index serves it (LIKE would not, and
            # would need escaping).
            bound = prefix_bound(prefix)
            if bound is None:
                alternatives.append(f"source >= {mark}")
                params.append(prefix)
            else:
                alternatives.append(f"(source >= {mark} AND source < {mark})")
                params.extend((prefix, bound))
        if not alternatives:
            return "FALSE", []
        clauses.append(f"({' OR '.join(alternatives)})")
    if filter.since is not None:
        clauses.append(f"ts >= {mark}")
        params.append(dialect.time(filter.since))
    if filter.until is not None:
        clauses.append(f"ts < {mark}")
        params.append(dialect.time(filter.until))
    return " AND ".join(clauses) or "TRUE", params


def read_sql(
    filter: EventFilter | None,
    after: int,
    limit: int | None,
    last: bool,
    dialect: Dialect,
) -> tuple[str, list[Any]]:
    """The statement of ``EventStore.read`` and its parameters (``limit`` > 0 or None)."""
    condition, params = where(filter, after, dialect)
    sql = f"SELECT {dialect.columns} FROM events WHERE {condition} ORDER BY position"
    if limit is not None and limit < MAX_POSITION:
        params.append(limit)
        if last:
            # Walk the positions backwards, then put the page in order.
            sql = f"SELECT * FROM ({sql} DESC LIMIT {dialect.param}) AS page ORDER BY position"
        else:
            sql += f" LIMIT {dialect.param}"
    return sql, params

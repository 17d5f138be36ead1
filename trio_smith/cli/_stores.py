"""Which store a command's ``DB`` argument names: an SQLite file or a PostgreSQL URL.

``trio-smith events`` and ``trio-smith demo --db`` take either; this is the
one place that tells them apart and builds the store.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from ..events import EventStore, PostgresEventStore, SQLiteEventStore

#: The stores a ``DB`` argument names.
DurableStore: TypeAlias = SQLiteEventStore | PostgresEventStore

__all__ = ["DEFAULT_SCHEMA", "DurableStore", "is_database_url", "make_store", "shown"]

#: The URL schemes libpq accepts.
_SCHEMES: Final = ("postgresql://", "postgres://")
DEFAULT_SCHEMA: Final = "trio_smith"


def is_database_url(spec: str) -> bool:
    """Whether ``spec`` is a PostgreSQL URL rather than a file path."""
    return spec.startswith(_SCHEMES)


def make_store(
    spec: str,
    *,
    read_only: bool,
    schema: str = DEFAULT_SCHEMA,
    synchronous: str = "FULL",
) -> DurableStore:
    """The store ``spec`` names (not opened yet).

    Args:
        spec: a file path (SQLite) or a ``postgresql://`` URL.
        read_only: open it without ever writing to it.
        schema: the PostgreSQL schema (a URL only).
        synchronous: SQLite's durability mode (a file only).

    Raises:
        ValueError: a malformed URL or schema (the message says why).
    """
    if is_database_url(spec):
        return PostgresEventStore(spec, schema=schema, read_only=read_only)
    assert synchronous in ("FULL", "NORMAL")
    return SQLiteEventStore(
        spec, read_only=read_only, synchronous="FULL" if synchronous == "FULL" else "NORMAL"
    )


def shown(store: EventStore, spec: str) -> str:
    """How to show the store to a user: a URL without its password, or the path."""
    return store.name if is_database_url(spec) else spec

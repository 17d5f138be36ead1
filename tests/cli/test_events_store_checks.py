"""``trio-smith events``: what only the store can check, ``prune``, and ``follow --wait``.

- ``--category`` refuses a category no event in the store has (a typo would
  match nothing, silently), naming the store's categories; exit status 2.
- ``--correlation`` takes part of an id (the 8 digits ``list`` shows), as
  ``trace`` does, and refuses a part that names no correlation, or several.
- ``prune`` removes the oldest events, refuses to pass a durable
  subscription's checkpoint without ``--force``, and never creates a store.
- ``follow --wait`` waits for a store that does not exist yet, then prints
  its events from the first.

Commands run in this process through ``trio_smith.cli.main`` (``call``),
``follow`` in a subprocess; the store is the fixture store of
tests/cli/test_events_cli.py (14 events from 2026-01-02T03:04:05Z on).
"""

from __future__ import annotations

import pathlib
import queue
import signal
import sqlite3
from collections.abc import Callable

import pytest
import trio

from trio_smith.events import PostgresEventStore, SQLiteEventStore, StoreOpenError

from .test_events_cli import (
    ALPHA,
    EVENTS,
    Follower,
    _new,
    append,
    call,
    db,
    failed,
    follow,
    ok,
    own_db,
    positions,
)

__all__ = ["db", "follow", "own_db"]  # fixtures, used by name

CATEGORIES = "agent, billing, supervision, system, tool"


# ---------------------------------------------------------------- --category


@pytest.mark.parametrize("command", ["list", "query"])
def test_an_unknown_category_is_refused_with_the_store_s_categories(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    result = call(capsys, command, db, "--category", "supervison")
    assert failed(result, 2) == (
        f"trio-smith events {command}: error: argument --category: no event in the store "
        f"has category 'supervison'; its categories are {CATEGORIES}"
    )
    # Each is checked: one good one does not let a bad one through.
    result = call(capsys, command, db, "--category", "agent", "--category", "biling")
    assert failed(result, 2).endswith(f"has category 'biling'; its categories are {CATEGORIES}")


def test_a_category_in_the_store_or_a_reserved_one_is_taken(
    db: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert positions(ok(call(capsys, "query", db, "--category", "billing"))) == [10]
    # Reserved categories are never typos, even where no event has them.
    empty = tmp_path / "empty.db"
    append(empty, [])
    assert ok(call(capsys, "query", empty, "--category", "tool")) == []
    assert failed(call(capsys, "list", empty, "--category", "billing"), 2) == (
        "trio-smith events list: error: argument --category: no event in the store has "
        "category 'billing'; it holds no events"
    )


def test_follow_refuses_an_unknown_category_too(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert failed(call(capsys, "follow", db, "--category", "agnet"), 2) == (
        "trio-smith events follow: error: argument --category: no event in the store has "
        f"category 'agnet'; its categories are {CATEGORIES}"
    )


# ---------------------------------------------------------------- --correlation


def test_correlation_takes_the_short_id_list_shows(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # list shows the last 8 hex digits; the first ones work too, as in trace.
    shown = ok(call(capsys, "list", db, "--limit", "1", "--to-position", "1"))[0].split()[4]
    assert shown == "7c8d9e01" == ALPHA.hex[-8:]
    expected = [1, 3, 4, 6, 7, 8, 9]
    assert positions(ok(call(capsys, "query", db, "--correlation", shown))) == expected
    assert (
        positions(ok(call(capsys, "query", db, "--correlation", "0197c0de-1a2b-7c3d-8e4f-5a6b")))
        == expected
    )
    both = ok(call(capsys, "query", db, "--correlation", "9e01", "--correlation", "d00d"))
    assert positions(both) == [*expected, 12, 13]
    assert positions(ok(call(capsys, "list", db, "--correlation", "456789AB", "--limit", "1"))) == [
        10
    ]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("beef", "no correlation id in the store starts or ends with 'beef'"),
        (
            "0197",
            "'0197' is ambiguous: 4 correlation ids start or end with it "
            "(0197c0de-1a2b-7c3d-8e4f-0123456789ab, 0197c0de-1a2b-7c3d-8e4f-5a6b7c8d9e01, "
            "0197c0df-ffff-7fff-bfff-fedcba987654, ...)",
        ),
    ],
)
def test_a_correlation_part_that_names_none_or_several_is_refused(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str], fragment: str, message: str
) -> None:
    assert failed(call(capsys, "query", db, "--correlation", fragment), 2) == (
        f"trio-smith events query: error: argument --correlation: {message}"
    )
    # trace says the same (status 1: its argument is what it looks for).
    assert failed(call(capsys, "trace", db, fragment), 1) == f"trio-smith events: error: {message}"


# ---------------------------------------------------------------- prune


def _checkpoint(path: pathlib.Path, name: str, position: int) -> None:
    async def save() -> None:
        async with SQLiteEventStore(path) as store:
            await store.save_checkpoint(name, position)

    trio.run(save)


def test_prune_removes_the_events_before_a_time(
    own_db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = call(capsys, "prune", own_db, "--before", "2026-01-02T03:04:07Z")
    assert ok(result) == [
        f"pruned 10 events from {own_db} (positions 1 to 10); the log starts at position 11 "
        "(2026-01-02T03:04:07.000Z)"
    ]
    assert positions(ok(call(capsys, "query", own_db))) == [11, 12, 13, 14]
    stats = ok(call(capsys, "stats", own_db))
    assert stats[1:4] == ["events          4", "head            14", "first position  11"]
    # Nothing older left, and the last event always stays.
    assert ok(call(capsys, "prune", own_db, "--before", "2026-01-02T03:04:07Z")) == [
        f"pruned 0 events from {own_db}; the log starts at position 11 (2026-01-02T03:04:07.000Z)"
    ]
    assert ok(call(capsys, "prune", own_db, "--before", "1d")) == [
        f"pruned 3 events from {own_db} (positions 11 to 13); the log starts at position 14 "
        "(2026-01-02T03:04:08.000Z)"
    ]


def test_prune_stops_at_a_durable_subscription_s_checkpoint_unless_forced(
    own_db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _checkpoint(own_db, "mailer", 4)
    result = call(capsys, "prune", own_db, "--before", "2026-01-02T03:04:07Z")
    assert failed(result, 1) == (
        f"trio-smith events: error: cannot prune event store {str(own_db)!r} through "
        "position 10: durable subscription 'mailer' has its checkpoint at position 4; "
        "--force prunes past it"
    )
    assert positions(ok(call(capsys, "query", own_db))) == list(range(1, 15))
    result = call(capsys, "prune", own_db, "--before", "2026-01-02T03:04:07Z", "--force")
    assert ok(result)[0].startswith(f"pruned 10 events from {own_db} (positions 1 to 10)")


def test_prune_never_creates_a_store(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.db"
    assert failed(call(capsys, "prune", missing, "--before", "1d"), 1) == (
        f"trio-smith events: error: no such store file: {str(missing)!r}"
    )
    empty = tmp_path / "empty.db"
    empty.touch()
    assert failed(call(capsys, "prune", empty, "--before", "1d"), 1) == (
        f"trio-smith events: error: cannot open event store {str(empty)!r}: it is empty, "
        "not a trio_smith event store"
    )
    assert empty.read_bytes() == b""
    assert not missing.exists()
    assert failed(call(capsys, "prune", missing), 2) == (
        "trio-smith events prune: error: the following arguments are required: --before"
    )


def test_prune_a_postgresql_store(pg_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    # No store in the database: refused, and none created.
    assert failed(call(capsys, "prune", pg_dsn, "--before", "1d"), 1).endswith(
        "no trio_smith event store in schema 'trio_smith' (read-only stores are not created)"
    )

    async def fill() -> str:
        async with PostgresEventStore(pg_dsn) as store:
            await store.append_many(EVENTS)
            await store.save_checkpoint("mailer", 2)
            return store.name

    name = trio.run(fill)
    assert failed(call(capsys, "prune", pg_dsn, "--before", "2026-01-02T03:04:06Z"), 1) == (
        f"trio-smith events: error: cannot prune event store {name!r} through position 9: "
        "durable subscription 'mailer' has its checkpoint at position 2; --force prunes past it"
    )
    assert ok(call(capsys, "prune", pg_dsn, "--before", "2026-01-02T03:04:06Z", "--force")) == [
        f"pruned 9 events from {name} (positions 1 to 9); the log starts at position 10 "
        "(2026-01-02T03:04:06.500Z)"
    ]
    assert positions(ok(call(capsys, "query", pg_dsn))) == list(range(10, 15))


# ---------------------------------------------------------------- follow --wait


def test_follow_fails_on_a_missing_store_without_wait(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "later.db"
    assert failed(call(capsys, "follow", missing), 1) == (
        f"trio-smith events: error: no such store file: {str(missing)!r}"
    )


def test_follow_wait_waits_for_the_store_then_prints_it_from_the_first(
    tmp_path: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    path = tmp_path / "later.db"
    # A custom category is not checked against a store that is not there.
    follower = follow(path, "--wait", "--type", "agent.started", "--category", "agent")
    custom = follow(path, "--wait", "--category", "billing")
    # Not yet there; then an empty file (a store being created), then a
    # store, written at once: nothing of it is missed.
    with pytest.raises(queue.Empty):
        follower.lines.get(timeout=0.5)
    path.touch()
    append(
        path,
        [_new("agent.created", "agents/a"), _new("agent.started", "agents/a", payload={"n": 1})],
    )
    line = follower.line()
    assert line is not None
    assert line.split()[:3] == ["2", line.split()[1], "agent.started"]
    append(path, [_new("agent.started", "agents/b", payload={"n": 2})])
    line = follower.line()
    assert line is not None
    assert line.endswith('{"n":2}')
    assert follower.finish(signal.SIGINT) == (0, "")
    append(path, [_new("billing.invoice_paid", "billing", payload={"n": 3})])
    line = custom.line()
    assert line is not None
    assert line.split()[0] == "4"
    assert custom.finish(signal.SIGTERM) == (0, "")


def test_follow_wait_does_not_wait_for_what_is_no_store(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    assert failed(call(capsys, "follow", other, "--wait"), 1) == (
        f"trio-smith events: error: cannot open event store {str(other)!r}: "
        "not a trio_smith event store"
    )
    nowhere = tmp_path / "no-such-directory" / "events.db"
    assert failed(call(capsys, "follow", nowhere, "--wait"), 1) == (
        f"trio-smith events: error: cannot open event store {str(nowhere)!r}: "
        f"directory {str(nowhere.parent)!r} does not exist"
    )


def test_follow_wait_for_a_postgresql_store(pg_dsn: str, follow: Callable[..., Follower]) -> None:
    follower = follow(pg_dsn, "--wait")
    with pytest.raises(queue.Empty):
        follower.lines.get(timeout=1.5)

    async def create() -> None:
        async with PostgresEventStore(pg_dsn) as store:
            await store.append(_new("agent.started", "agents/pg"))

    trio.run(create)
    line = follower.line(timeout=15)
    assert line is not None
    assert line.split()[0] == "1"
    assert "agents/pg" in line
    assert follower.finish(signal.SIGTERM) == (0, "")


async def test_a_read_only_store_that_is_not_there_yet_says_so(
    tmp_path: pathlib.Path, pg_dsn: str
) -> None:
    # What --wait waits on: StoreOpenError.missing.
    async def missing(store: SQLiteEventStore | PostgresEventStore) -> bool:
        with pytest.raises(StoreOpenError) as refused:
            async with store:
                pass
        return refused.value.missing

    (tmp_path / "empty.db").touch()
    with sqlite3.connect(tmp_path / "bare.db") as connection:
        connection.execute("PRAGMA user_version = 1")  # an SQLite file, no table
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    for name, expected in [
        ("none.db", True),
        ("empty.db", True),
        ("bare.db", True),
        ("other.db", False),
        ("no-such-directory/x.db", False),
    ]:
        assert await missing(SQLiteEventStore(tmp_path / name, read_only=True)) is expected, name
    assert await missing(PostgresEventStore(pg_dsn, read_only=True))
    assert not await missing(
        PostgresEventStore("postgresql://nobody@127.0.0.1:1/x", read_only=True)
    )

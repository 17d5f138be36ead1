"""SQLiteEventStore: every query shape of docs/design.md rule 30 is served by its index.

The SQL is built exactly as ``SQLiteEventStore.read`` and ``get`` build it
(``read_sql`` and ``COLUMNS``), checked to return what ``read`` returns, and
its ``EXPLAIN QUERY PLAN`` is read on a file of a few thousand events, both
as the store leaves it (no statistics: the store never runs ``ANALYZE``) and
after ``ANALYZE``.

Notes on the expectations:

* ``read`` always orders by position, so a shape served by an index that is
  not in position order (``events_ts``; ``events_source`` for a prefix range,
  several sources; an ``IN`` of several values) needs a sort step
  (``USE TEMP B-TREE FOR ORDER BY``); the shapes that name one value of an
  ``(x, position)`` index walk it in position order without one.
* Category alone has no index: a category holds about a third of the events
  here (four reserved categories make it >= 25% in general), and
  design rule 30 says the planner rightly picks the rowid range scan, filtering
  as it goes.
* the condition always constrains ``position > ?`` (0 for a whole read), so even
  a scan of everything shows as ``SEARCH ... USING INTEGER PRIMARY KEY``; a
  bare ``SCAN events`` never appears for these shapes.
* This SQLite has no STAT4, so the plan does not depend on the parameter
  values, only on the shape (and on sqlite_stat1 after ``ANALYZE``).
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import trio

from trio_smith.events import AgentEvent, Event, EventFilter, SystemEvent, ToolEvent
from trio_smith.events._sql import COLUMNS, read_sql
from trio_smith.events._sqlite import _DIALECT, SQLiteEventStore

from .store_contract import at

EVENTS = 4000
TYPES = [
    AgentEvent.CREATED,
    AgentEvent.STARTED,
    AgentEvent.STOPPED,
    AgentEvent.FAILED,
    ToolEvent.REGISTERED,
    ToolEvent.EXECUTION_STARTED,
    ToolEvent.EXECUTION_FAILED,
    SystemEvent.STARTED,
    SystemEvent.STOPPING,
    SystemEvent.STOPPED,
]
CORRELATIONS = 200
SORT = "USE TEMP B-TREE FOR ORDER BY"
PAGE = dict(after=EVENTS // 2, limit=100)


def _events() -> list[Event]:
    """Events one second apart: 45 agent sources (90%), 5 tool sources, 10 types."""
    rng = random.Random(41)
    roots = [
        Event.new(AgentEvent.CREATED, source="agents/root", timestamp=at(0))
        for _ in range(CORRELATIONS)
    ]
    events = roots[:]
    for i in range(len(roots), EVENTS):
        source = (
            f"agents/{rng.randrange(45)}" if rng.random() < 0.9 else f"tools/{rng.randrange(5)}"
        )
        events.append(
            Event.new(rng.choice(TYPES), source=source, cause=rng.choice(roots), timestamp=at(i))
        )
    return events


async def _fill(path: pathlib.Path, events: list[Event]) -> None:
    async with SQLiteEventStore(path) as store:
        await store.append_many(events)


@attrs.frozen
class Store:
    path: pathlib.Path
    events: list[Event]
    analyzed: bool


@pytest.fixture(scope="module", params=[False, True], ids=["as_appended", "after_analyze"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Store:
    path = tmp_path_factory.mktemp("plans") / "events.db"
    events = _events()
    trio.run(_fill, path, events)
    analyzed: bool = request.param
    if analyzed:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("ANALYZE")
    return Store(path, events, analyzed)


@contextlib.contextmanager
def _open(path: pathlib.Path) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        yield db


def _read_sql(
    filter: EventFilter | None, after: int = 0, limit: int | None = None
) -> tuple[str, list[Any]]:
    """The SQL and parameters ``SQLiteEventStore.read`` runs."""
    return read_sql(filter, after, limit, False, _DIALECT)


#: The SQL ``SQLiteEventStore.get`` runs.
GET_SQL = f"SELECT {COLUMNS} FROM events WHERE event_id = ?"


def _plan(db: sqlite3.Connection, sql: str, params: list[Any]) -> list[str]:
    return [str(row[3]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def _filters(events: list[Event]) -> dict[str, EventFilter | None]:
    """One filter per query shape of design rule 30 (get by id is separate)."""
    return {
        "time_range": EventFilter(since=at(EVENTS * 0.6), until=at(EVENTS * 0.62)),
        "correlation": EventFilter(correlation_ids=events[7].correlation_id),
        "source_exact": EventFilter(sources="agents/7"),
        "source_prefix": EventFilter(source_prefixes="tools/"),
        "type": EventFilter(types=ToolEvent.EXECUTION_FAILED),
        "category": EventFilter(categories="agent"),
        "position_range": EventFilter(after_position=2500, until_position=2600),
        "no_filter": None,
    }


#: Per shape and read kind (whole log, or a page after a position): the
#: access the plan must use, and whether it sorts. A whole read leaves out
#: ``position > 0``, so the indexes are searched on their column alone.
EXPECTED: dict[tuple[str, bool], tuple[str, bool]] = {
    ("time_range", False): ("SEARCH events USING INDEX events_ts (ts>? AND ts<?)", True),
    ("time_range", True): ("SEARCH events USING INDEX events_ts (ts>? AND ts<?)", True),
    ("correlation", False): (
        "SEARCH events USING INDEX events_correlation (correlation_id=?)",
        False,
    ),
    ("correlation", True): (
        "SEARCH events USING INDEX events_correlation (correlation_id=? AND position>?)",
        False,
    ),
    ("source_exact", False): ("SEARCH events USING INDEX events_source (source=?)", False),
    ("source_exact", True): (
        "SEARCH events USING INDEX events_source (source=? AND position>?)",
        False,
    ),
    ("source_prefix", False): (
        "SEARCH events USING INDEX events_source (source>? AND source<?)",
        True,
    ),
    ("source_prefix", True): (
        "SEARCH events USING INDEX events_source (source>? AND source<?)",
        True,
    ),
    ("type", False): ("SEARCH events USING INDEX events_type (type=?)", False),
    ("type", True): ("SEARCH events USING INDEX events_type (type=? AND position>?)", False),
    # No category index: the rowid order with a filter (design rule 30: four
    # categories mean >= 25% selectivity); the whole log reads every row.
    ("category", False): ("SCAN events", False),
    ("category", True): ("SEARCH events USING INTEGER PRIMARY KEY (rowid>?)", False),
    ("position_range", False): (
        "SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
        False,
    ),
    ("position_range", True): (
        "SEARCH events USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
        False,
    ),
    # Plain replay / paging: WHERE position > :last ORDER BY position LIMIT :page.
    ("no_filter", False): ("SCAN events", False),
    ("no_filter", True): ("SEARCH events USING INTEGER PRIMARY KEY (rowid>?)", False),
}
#: Shapes that read every row on purpose.
WHOLE_SCANS = {("category", False), ("no_filter", False)}

SHAPES = [
    pytest.param(shape, page, id=f"{shape}-{'page' if page else 'whole'}")
    for shape in dict.fromkeys(shape for shape, _ in EXPECTED)
    for page in (False, True)
]

FULL_SCAN = re.compile(r"^SCAN events\b(?! USING)")


def _assert_plan(plan: list[str], access: str, sorts: bool, scan_ok: bool = False) -> None:
    if not scan_ok:
        assert not [line for line in plan if FULL_SCAN.match(line)], f"full table scan: {plan}"
    assert access in plan, f"expected {access!r}, planned {plan}"
    assert (SORT in plan) == sorts, f"sort step {'missing' if sorts else 'added'}: {plan}"


def test_get_by_id_uses_the_event_id_index(store: Store) -> None:
    with _open(store.path) as db:
        plan = _plan(db, GET_SQL, [store.events[123].id.bytes])
        assert db.execute(GET_SQL, [store.events[123].id.bytes]).fetchone()[0] == 124
    _assert_plan(plan, "SEARCH events USING INDEX events_event_id (event_id=?)", sorts=False)


@pytest.mark.parametrize(("shape", "page"), SHAPES)
def test_each_read_shape_uses_its_index(store: Store, shape: str, page: bool) -> None:
    sql, params = _read_sql(_filters(store.events)[shape], **(PAGE if page else {}))
    with _open(store.path) as db:
        plan = _plan(db, sql, params)
    access, sorts = EXPECTED[shape, page]
    _assert_plan(plan, access, sorts, scan_ok=(shape, page) in WHOLE_SCANS)


@pytest.mark.parametrize(("shape", "page"), SHAPES)
async def test_the_copied_sql_returns_what_read_returns(
    store: Store, shape: str, page: bool
) -> None:
    # Guards the copy in _read_sql: if read() builds its SQL differently, the
    # plans above would be checked for the wrong query.
    filter = _filters(store.events)[shape]
    arguments: dict[str, Any] = PAGE if page else {}
    sql, params = _read_sql(filter, **arguments)
    with _open(store.path) as db:
        expected = [row[0] for row in db.execute(sql, params)]
    async with SQLiteEventStore(store.path) as opened:
        read = [e.position for e in await opened.read(filter, **arguments)]
    assert read == expected
    assert read, "the shape's test values select no events"

"""What ``trio-smith events`` prints: event lines, causal trees and store statistics.

Pure functions of their arguments (no I/O, no clock), so the output of a
command depends only on the events it shows. Plain output is for people and
``grep``: one line per event, the same line for the same event whichever
command prints it and whatever else it prints. ``--json`` output is for
programs: every event exactly as ``trio_smith.events.dumps`` writes it.

Theory of operation (plain event lines)
=======================================

Columns are two spaces apart and have fixed widths, so a line never depends
on its neighbours and ``follow`` lines up with ``list``: the position is
right-aligned to the width the caller gives (the store head's, at least the
header's three), the type is padded to 30 characters (the longest reserved
wire name), the source to 20. A longer type or source pushes the rest of its
line to the right. A header row names the columns. The correlation column
shows the *last* eight hex digits of the id: trio_smith's ids are UUIDv7,
whose first digits are a timestamp and are the same for every correlation
begun in the same minute. The payload is compact JSON, cut with an ellipsis
to fit the terminal's width (at least ``MIN_PAYLOAD`` characters), or to
``PAYLOAD_WIDTH`` characters when the output is not a terminal; with
``full`` it is written whole, pretty-printed, under its line instead.
Characters that are not printable (a newline or an escape in a source, say)
are shown escaped, so that one event is always one line. Colours (ANSI) are
added around the columns, never inside the widths.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, final
from uuid import UUID

import attrs

from ..events import Event, dumps

__all__ = [
    "MIN_PAYLOAD",
    "PAYLOAD_WIDTH",
    "SHORT_ID",
    "Layout",
    "Node",
    "StoreStats",
    "Tally",
    "build_tree",
    "event_line",
    "header_line",
    "offset",
    "payload_lines",
    "payload_summary",
    "short_id",
    "stats_json",
    "stats_lines",
    "timestamp",
    "tree_json",
    "tree_lines",
]

#: Characters of payload a plain line shows when the output is not a
#: terminal, the ellipsis included.
PAYLOAD_WIDTH: Final = 80
#: The fewest characters of payload a line fitted to a terminal shows: on a
#: narrower terminal the line is longer than the width (the terminal wraps it).
MIN_PAYLOAD: Final = 16
#: The position column is at least as wide as its header.
_POSITION_HEADER: Final = "POS"
#: Hex digits of a correlation id a plain line shows (its last ones).
SHORT_ID: Final = 8
#: Type and source column widths (longer values push the line right).
TYPE_WIDTH: Final = 30
SOURCE_WIDTH: Final = 20

_ELLIPSIS: Final = "…"

#: ANSI SGR codes of the columns: dim position and time, the correlation in
#: magenta, the type by category, failures in red.
_BOLD: Final = "1"
_DIM: Final = "2"
_CORRELATION: Final = "35"
_CATEGORY_COLORS: Final = {
    "system": "36",
    "agent": "32",
    "tool": "34",
    "supervision": "33",
}
_FAILURE_COLOR: Final = "31"
_FAILURE_WORDS: Final = ("failed", "gave_up", "denied", "open", "exhausted")


@final
@attrs.frozen(kw_only=True, slots=True)
class Layout:
    """How plain event lines are written.

    Attributes:
        position_width: the position column's width (at least 3, its header's).
        width: the terminal's width, which each line's payload is cut to fit;
            None (not a terminal): payloads are cut to ``PAYLOAD_WIDTH``.
        color: colour the columns (ANSI).
        full: leave the payload column out, and write each payload whole,
            pretty-printed, under its line.
    """

    position_width: int = len(_POSITION_HEADER)
    width: int | None = None
    color: bool = False
    full: bool = False

    @classmethod
    def for_head(
        cls, head: int, *, width: int | None = None, color: bool = False, full: bool = False
    ) -> Layout:
        """The layout of a store whose last position is ``head``."""
        return cls(
            position_width=max(len(str(head)), len(_POSITION_HEADER)),
            width=width,
            color=color,
            full=full,
        )


def _paint(text: str, code: str, color: bool) -> str:
    """``text`` in the ANSI style ``code`` if ``color``."""
    if not color or not code or not text:
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def _type_color(event: Event) -> str:
    name = event.type.name
    if any(word in name for word in _FAILURE_WORDS):
        return _FAILURE_COLOR
    return _CATEGORY_COLORS.get(event.type.category, "")


_MICROSECOND: Final = timedelta(microseconds=1)


def printable(text: str) -> str:
    """``text`` with each non-printable character written as its Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC to the millisecond: ``2026-01-02T03:04:05.678Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def short_id(correlation_id: UUID | None) -> str:
    """The last ``SHORT_ID`` hex digits of a correlation id; ``-`` for none."""
    return "-" if correlation_id is None else correlation_id.hex[-SHORT_ID:]


def payload_summary(payload: dict[str, Any], width: int = PAYLOAD_WIDTH) -> str:
    """A payload as compact JSON on one line, cut to ``width`` characters with ``…``."""
    text = printable(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))
    if len(text) > width:
        return text[: width - 1] + _ELLIPSIS
    return text


def payload_lines(payload: dict[str, Any], indent: str) -> list[str]:
    """A payload whole, as JSON pretty-printed (two spaces a level), each line after ``indent``."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    return [indent + printable(line) for line in text.splitlines()]


def _fitted(payload: dict[str, Any], used: int, layout: Layout) -> str:
    """The payload column of a line whose other columns take ``used`` characters."""
    if layout.width is None:
        return payload_summary(payload)
    return payload_summary(payload, max(MIN_PAYLOAD, layout.width - used))


def _columns(cells: list[tuple[str, int, str]], layout: Layout) -> tuple[str, int]:
    """Cells ``(text, width, colour)`` two spaces apart, padded; and the plain length.

    A negative width right-aligns.
    """
    parts = []
    used = 0
    for text, width, code in cells:
        pad = " " * max(0, abs(width) - len(text))
        painted = _paint(text, code, layout.color)
        parts.append(pad + painted if width < 0 else painted + pad)
        used += max(abs(width), len(text)) + 2
    return "  ".join(parts), used


def header_line(layout: Layout) -> str:
    """The header row over event lines written with ``layout``."""
    cells = [
        (_POSITION_HEADER, -layout.position_width, _BOLD),
        ("TIME", 24, _BOLD),
        ("TYPE", TYPE_WIDTH, _BOLD),
        ("SOURCE", SOURCE_WIDTH, _BOLD),
        ("CORR", SHORT_ID, _BOLD),
    ]
    if not layout.full:
        cells.append(("PAYLOAD", 0, _BOLD))
    line, _ = _columns(cells, layout)
    return line.rstrip()


def event_line(event: Event, layout: Layout) -> list[str]:
    """One event as a plain line (see "Theory of operation" above).

    Args:
        event: a stored event.
        layout: the columns' widths, the terminal's, colour, full payloads.

    Returns:
        The line, then (``layout.full``) its payload's lines.
    """
    line, used = _columns(
        [
            (str(event.position), -layout.position_width, _DIM),
            (timestamp(event.timestamp), 24, _DIM),
            (event.type.wire, TYPE_WIDTH, _type_color(event)),
            (printable(event.source), SOURCE_WIDTH, ""),
            (short_id(event.correlation_id), SHORT_ID, _CORRELATION),
        ],
        layout,
    )
    if layout.full:
        return [line.rstrip(), *payload_lines(event.payload, "    ")]
    return [f"{line}  {_fitted(event.payload, used, layout)}"]


# ---------------------------------------------------------------- trees


def offset(delta: timedelta) -> str:
    """A time offset: ``+12.3ms`` under a second, ``+1.234s`` from one on."""
    micros = delta // _MICROSECOND
    sign = "-" if micros < 0 else "+"
    micros = abs(micros)
    if micros < 1_000_000:
        return f"{sign}{micros / 1000:.1f}ms"
    return f"{sign}{micros / 1_000_000:.3f}s"


@final
@attrs.define(slots=True)
class Node:
    """An event of a causal tree and the events it caused, in position order."""

    event: Event
    children: list[Node] = attrs.field(factory=list)


def build_tree(events: Sequence[Event]) -> list[Node]:
    """Arrange the events of one correlation as trees of cause and effect.

    Each event goes under the event its ``causation_id`` names; an event
    without a cause, or whose cause is not among ``events``, is a root.
    Events that only cause each other in a circle (hand-made data) would
    hang under no root: the earliest of each circle becomes a root instead.

    Args:
        events: in position order.

    Returns:
        The roots, in position order; every event appears exactly once.
    """
    nodes = {event.id: Node(event) for event in events}
    parents: dict[UUID, Node] = {}
    roots: list[Node] = []
    for event in events:
        node = nodes[event.id]
        cause = event.causation_id
        parent = None if cause is None or cause == event.id else nodes.get(cause)
        if parent is None:
            roots.append(node)
        else:
            parent.children.append(node)
            parents[event.id] = parent
    reached: set[UUID] = set()
    _reach(roots, reached)
    for event in events:
        if event.id not in reached:
            node = nodes[event.id]
            parents[event.id].children.remove(node)
            roots.append(node)
            _reach([node], reached)
    roots.sort(key=_position)
    return roots


def _reach(roots: list[Node], reached: set[UUID]) -> None:
    """Add the ids of ``roots`` and of everything under them to ``reached``."""
    stack = list(roots)
    while stack:
        node = stack.pop()
        reached.add(node.event.id)
        stack.extend(node.children)


def _position(node: Node) -> int:
    return node.event.position or 0


def tree_lines(roots: Sequence[Node], layout: Layout | None = None) -> Iterator[str]:
    """The trees drawn with box characters, one line per event.

    A line reads ``type  source  +12.3ms  {payload}``; the offset is from
    the time of the first root. Roots start at the left margin, the events
    they caused go beneath them after ``├── `` or ``└── `` (the last one).
    The payload is cut to fit ``layout``'s width, or (``layout.full``) written
    whole under its line, within the tree's guides.
    """
    if not roots:
        return
    layout = layout or Layout()
    origin = roots[0].event.timestamp
    # Iterative, not recursive: a causal chain can be thousands of events deep.
    stack: list[tuple[Node, str, str]] = [(root, "", "") for root in reversed(roots)]
    while stack:
        node, lead, indent = stack.pop()
        event = node.event
        source = printable(event.source)
        when = offset(event.timestamp - origin)
        line = (
            f"{lead}{_paint(event.type.wire, _type_color(event), layout.color)}  {source}  "
            f"{_paint(when, _DIM, layout.color)}"
        )
        if layout.full:
            yield line
            guide = indent + ("│   " if node.children else "    ")
            yield from payload_lines(event.payload, guide)
        else:
            used = len(lead) + len(event.type.wire) + len(source) + len(when) + 6
            yield f"{line}  {_fitted(event.payload, used, layout)}"
        last = len(node.children) - 1
        for index in range(last, -1, -1):
            if index == last:
                stack.append((node.children[index], indent + "└── ", indent + "    "))
            else:
                stack.append((node.children[index], indent + "├── ", indent + "│   "))


def tree_json(correlation_id: UUID, count: int, roots: Sequence[Node]) -> str:
    """The trees as one line of JSON.

    ``{"correlation_id": "...", "count": N, "roots": [NODE, ...]}``, where a
    NODE is ``{"event": EVENT, "children": [NODE, ...]}`` and an EVENT is the
    object ``trio_smith.events.dumps`` writes.
    """
    parts = [f'{{"correlation_id":"{correlation_id}","count":{count},"roots":[']
    # Written iteratively, as tree_lines draws: json.dumps would recurse.
    stack: list[Node | str] = ["]}"]
    _push(stack, roots)
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            parts.append(item)
            continue
        parts.append(f'{{"event":{dumps(item.event)},"children":[')
        stack.append("]}")
        _push(stack, item.children)
    return "".join(parts)


def _push(stack: list[Node | str], nodes: Sequence[Node]) -> None:
    """Push ``nodes`` so that they pop in order, with commas between them."""
    for index in range(len(nodes) - 1, -1, -1):
        stack.append(nodes[index])
        if index:
            stack.append(",")


# ---------------------------------------------------------------- statistics

#: How many sources ``stats`` lists.
TOP_SOURCES: Final = 10


@final
@attrs.frozen(kw_only=True, slots=True)
class StoreStats:
    """What ``trio-smith events stats`` reports about a store.

    ``first`` and ``last`` are the earliest and the latest event times; the
    counts are (name, count) pairs, most frequent first, ties by name.
    """

    path: str
    events: int
    head: int
    #: The position of the first event (above 1 once the store was pruned).
    first_position: int | None
    first: datetime | None
    last: datetime | None
    #: The file's and its write-ahead log's sizes; None for a database store.
    file_size: int | None
    wal_size: int | None
    correlations: int
    categories: tuple[tuple[str, int], ...]
    types: tuple[tuple[str, int], ...]
    top_sources: tuple[tuple[str, int], ...]


@final
@attrs.define(slots=True)
class Tally:
    """Counts events one at a time, for :class:`StoreStats`."""

    events: int = 0
    first_position: int | None = None
    first: datetime | None = None
    last: datetime | None = None
    categories: Counter[str] = attrs.field(factory=Counter)
    types: Counter[str] = attrs.field(factory=Counter)
    sources: Counter[str] = attrs.field(factory=Counter)
    correlations: set[UUID] = attrs.field(factory=set)

    def add(self, event: Event) -> None:
        """Count one event (in position order)."""
        self.events += 1
        if self.first_position is None:
            self.first_position = event.position
        moment = event.timestamp
        # Min and max, not the first and last by position: a store may hold
        # events imported with older timestamps, or from a clock that stepped.
        if self.first is None or moment < self.first:
            self.first = moment
        if self.last is None or moment > self.last:
            self.last = moment
        self.categories[event.type.category] += 1
        self.types[event.type.wire] += 1
        self.sources[event.source] += 1
        if event.correlation_id is not None:
            self.correlations.add(event.correlation_id)

    def finish(
        self, *, path: str, head: int, file_size: int | None, wal_size: int | None
    ) -> StoreStats:
        """The statistics of the events counted so far."""
        return StoreStats(
            path=path,
            events=self.events,
            head=head,
            first_position=self.first_position,
            first=self.first,
            last=self.last,
            file_size=file_size,
            wal_size=wal_size,
            correlations=len(self.correlations),
            categories=_ranked(self.categories),
            types=_ranked(self.types),
            top_sources=_ranked(self.sources)[:TOP_SOURCES],
        )


def _ranked(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _size(size: int) -> str:
    """A file size in bytes, and in binary units from a KiB on."""
    if size < 1024:
        return f"{size} bytes"
    scaled, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{size} bytes ({scaled:.1f} {unit})"


def stats_lines(stats: StoreStats) -> Iterator[str]:
    """The statistics as aligned plain lines: a summary, then the counts."""
    summary = [
        ("store", printable(stats.path)),
        ("events", str(stats.events)),
        ("head", str(stats.head)),
    ]
    if stats.first_position is not None and stats.first_position > 1:
        # Pruned: the positions before it were removed.
        summary.append(("first position", str(stats.first_position)))
    summary += [
        ("first", "-" if stats.first is None else timestamp(stats.first)),
        ("last", "-" if stats.last is None else timestamp(stats.last)),
    ]
    if stats.file_size is not None:
        summary.append(("file size", _size(stats.file_size)))
    if stats.wal_size:
        summary.append(("wal size", _size(stats.wal_size)))
    summary.append(("correlations", str(stats.correlations)))
    yield from _table(summary, indent="", numbers=False)
    for title, counts in (
        ("by category", stats.categories),
        ("by type", stats.types),
        (f"top {TOP_SOURCES} sources", stats.top_sources),
    ):
        if counts:
            yield ""
            yield title
            yield from _table([(printable(n), str(c)) for n, c in counts], indent="  ")


def _table(rows: Iterable[tuple[str, str]], *, indent: str, numbers: bool = True) -> Iterator[str]:
    """Two columns: names padded to the widest, values right-aligned if numbers."""
    rows = list(rows)
    name_width = max(len(name) for name, _ in rows)
    value_width = max(len(value) for _, value in rows) if numbers else 0
    for name, value in rows:
        yield f"{indent}{name:<{name_width}}  {value:>{value_width}}"


def stats_json(stats: StoreStats) -> str:
    """The statistics as one line of JSON; the counts are objects, most frequent first."""
    data = {
        "path": stats.path,
        "events": stats.events,
        "head": stats.head,
        "first_position": stats.first_position,
        "first_timestamp": None if stats.first is None else stats.first.isoformat(),
        "last_timestamp": None if stats.last is None else stats.last.isoformat(),
        "file_size": stats.file_size,
        "wal_size": stats.wal_size,
        "correlations": stats.correlations,
        "categories": dict(stats.categories),
        "types": dict(stats.types),
        "top_sources": dict(stats.top_sources),
    }
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

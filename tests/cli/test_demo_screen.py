"""``trio-smith demo`` in a real terminal's size: the live view fits, the summary's commands run.

The live view is rendered with rich at a given size (``Console(width=...,
height=..., record=True)``) from a snapshot of the demo's full tree, the
indexer included, and busy counters. On 80x24 nothing may be cut: every
panel's last line shows, no line is wider than the terminal, and the newest
notable line is on screen; a larger terminal shows more of the log, and a
wide one puts the counters beside the tree. The summary's commands are
printed at 60 columns, copied from the screen and given to the command
line's parser.
"""

from __future__ import annotations

import io
import shlex

import attrs
import pytest
from rich.cells import cell_len
from rich.console import Console

from trio_smith import TreeNode
from trio_smith.cli._demo_view import (
    AgentView,
    Counts,
    GroupView,
    Line,
    LiveReporter,
    LiveView,
    Snapshot,
    Summary,
    TaskCounts,
    TraceChoice,
    summary_lines,
)
from trio_smith.cli._main import build_parser
from trio_smith.events import uuid7
from trio_smith.resilience import CircuitState


def _worker(name: str, restarts: int = 0) -> TreeNode:
    return TreeNode(id=name, kind="worker", status="running", restarts=restarts)


def _group(name: str, *workers: TreeNode, restarts: int = 0) -> TreeNode:
    return TreeNode(
        id=name, kind="supervisor", status="running", restarts=restarts, children=workers
    )


#: The demo's tree (docs/cli.md, "What runs") late in a long run.
TREE = TreeNode(
    id="demo",
    kind="supervisor",
    status="running",
    children=(
        _worker("tools"),
        _group("researchers", _worker("researcher-1", 113), _worker("researcher-2", 97)),
        _group("coders", _worker("coder-1", 8), _worker("coder-2", 11), restarts=12),
        _group("analysts", _worker("analyst-1", 101), _worker("analyst-2", 96)),
        TreeNode(
            id="indexer",
            kind="worker",
            status="running",
            restarts=17,
            os_pid=4_194_303,
            status_text="123456 documents indexed",
        ),
        _worker("hub"),
    ),
)

AGENTS = {
    f"{role}-{n}": AgentView(phi=1.23 * n, queued=12, in_flight=1)
    for role in ("researcher", "coder", "analyst")
    for n in (1, 2)
}

SNAPSHOT = Snapshot(
    elapsed=18.25,
    duration=20.0,
    tree=TREE,
    agents=AGENTS,
    groups={
        "researchers": GroupView(max_restarts=15, within=5.0),
        "coders": GroupView(max_restarts=3, within=1.0),
        "analysts": GroupView(max_restarts=15, within=5.0),
    },
    breaker=("search-api", CircuitState.OPEN, 1.25),
    hub_in_flight=8,
    concurrency=8,
    # A 20 s run's figures (docs/cli.md).
    counts=Counts(
        restarts=51,
        crashes=51,
        hung=1,
        escalations=1,
        breaker_trips=1,
        breaker_opened=3,
        breaker_closed=1,
    ),
    tasks=TaskCounts(
        submitted=389, ok=284, degraded=58, failed=43, routed=477, completed=420, route_failed=52
    ),
    events_stored=2443,
)

#: After ten minutes: the counters take more room.
BUSY = attrs.evolve(
    SNAPSHOT,
    elapsed=598.25,
    duration=600.0,
    counts=Counts(
        restarts=1234,
        crashes=1200,
        hung=30,
        escalations=29,
        breaker_trips=30,
        breaker_opened=61,
        breaker_closed=30,
    ),
    tasks=TaskCounts(
        submitted=11_832, ok=9_876, degraded=1_234, failed=700, routed=14_210, completed=13_399
    ),
    events_stored=123_456,
)

#: Notable lines, some longer than 80 columns, the newest last.
LOG = [
    Line(at=500.0 + n, kind=kind, text=text)
    for n, (kind, text) in enumerate(
        [
            ("restart", "researchers/researcher-1 after ChaosCrash: injected into task 4411.r"),
            ("breaker", "search-api CLOSED -> OPEN"),
            ("hung", "analysts/analyst-2 (phi 8.1, silent 0.58 s): cancelled"),
            (
                "escalate",
                "coders gave up: too many restarts (last: coder-1, ChaosCrash); its "
                "parent takes over",
            ),
            ("restart", "coders (the whole subtree) after it gave up"),
        ]
        * 8
    )
]
LOG.append(Line(at=598.0, kind="chaos", text="the newest line"))


def _screen(
    width: int, height: int, log: list[Line] = LOG, snapshot: Snapshot = SNAPSHOT
) -> list[str]:
    """The view as a ``width`` x ``height`` terminal draws it."""
    console = Console(
        width=width, height=height, record=True, file=io.StringIO(), force_terminal=True
    )
    console.print(LiveView(snapshot, log))
    return console.export_text().splitlines()


def _panels(lines: list[str]) -> list[tuple[int, int]]:
    """The first and last row of each panel (boxes drawn from the left margin)."""
    tops = [n for n, line in enumerate(lines) if line.startswith("╭")]
    bottoms = [n for n, line in enumerate(lines) if line.startswith("╰")]
    return list(zip(tops, bottoms, strict=True))


@pytest.mark.parametrize("snapshot", [SNAPSHOT, BUSY], ids=["20s", "600s"])
@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (120, 40), (200, 50)])
def test_nothing_is_cut(width: int, height: int, snapshot: Snapshot) -> None:
    lines = _screen(width, height, snapshot=snapshot)
    assert len(lines) == height
    assert max(cell_len(line) for line in lines) <= width
    tree, events = _panels(lines)
    # Each panel is whole: its last row is drawn, and the events panel ends
    # on the terminal's last row, with the newest line just above it.
    assert lines[tree[1]].startswith("╰")
    assert "events stored" in lines[tree[1]]
    assert events[1] == height - 1
    assert "the newest line" in lines[-2]
    for node in ("demo  running", "indexer  running", "hub  running", "analyst-2  running"):
        assert any(node in line for line in lines[tree[0] : tree[1]]), node
    # The counters, once each.
    assert sum("hung caught" in line for line in lines) == 1


def test_80x24_holds_the_tree_the_counters_and_the_last_lines() -> None:
    lines = _screen(80, 24)
    assert _panels(lines) == [(0, 14), (17, 23)]
    assert lines[14].endswith(" 18.2 / 20 s  ·  2443 events stored ─╯")
    assert lines[15:17] == [
        "tasks 477 routed: 420 completed, 52 failed · hub 284 ok, 58 degraded, 43 failed",
        "51 restarts, 1 hung caught, 1 escalation · breaker 1 trip, 3 opened, 1 closed",
    ]
    # A line wider than the panel wraps under its text, and is counted.
    assert lines[18:23] == [
        "│ [537.00s] hung     analysts/analyst-2 (phi 8.1, silent 0.58 s): cancelled    │",
        "│ [538.00s] escalate coders gave up: too many restarts (last: coder-1,         │",
        "│                    ChaosCrash); its parent takes over                        │",
        "│ [539.00s] restart  coders (the whole subtree) after it gave up               │",
        "│ [598.00s] chaos    the newest line                                           │",
    ]


def test_a_taller_or_wider_terminal_shows_more() -> None:
    def shown(lines: list[str]) -> int:
        return sum(line.startswith("│ [") for line in lines)

    assert shown(_screen(80, 24)) == 4
    assert shown(_screen(80, 40)) == 15
    # Wide: the counters beside the tree, and room for more lines.
    wide = _screen(160, 40)
    assert "demo  running" in wide[1]
    assert "tasks" in wide[0]
    assert "hung caught" in wide[2]
    assert shown(wide) == 23
    assert not any(line.startswith("tasks ") for line in wide)
    # Ten minutes in, the counters take four lines on 80 columns: fewer log rows.
    assert shown(_screen(80, 24, snapshot=BUSY)) == 2
    # A short log leaves the panel's other rows empty.
    few = _screen(80, 24, LOG[-1:])
    assert few[18] == "│ [598.00s] chaos    the newest line" + " " * 43 + "│"
    assert few[19] == "│" + " " * 78 + "│"


def test_a_node_label_wider_than_the_terminal_is_cut_not_wrapped() -> None:
    lines = _screen(50, 30)
    tree, _ = _panels(lines)
    assert tree == (0, 14)  # one row per node still
    assert lines[4] == "│ │   ├── researcher-1  running  restarts 113  … │"


# ---------------------------------------------------------------- the summary's commands


def _summary(db: str) -> Summary:
    return Summary(
        db=db,
        seed=42,
        duration=20.0,
        chaos=0.1,
        elapsed=20.0,
        interrupted=False,
        root_failure=None,
        tasks=TaskCounts(),
        counts=Counts(),
        events_before=0,
        events_stored=2443,
        events_followed=0,
        events_dropped=0,
        trace=TraceChoice(correlation_id=uuid7(), task="26", depth=5, delegated=True, crashed=True),
    )


@pytest.mark.parametrize(
    "db",
    [
        "/home/someone/projects/a-rather-long-directory-name/trio-smith-demo.db",
        "/tmp/with space/demo's store.db",
        "postgresql://app@db-host:5432/app",
    ],
)
def test_the_summary_s_commands_are_one_line_each_and_run(db: str) -> None:
    screen = io.StringIO()
    console = Console(file=screen, width=60, force_terminal=True, color_system=None)
    summary = _summary(db)
    LiveReporter(console).summary(summary_lines(summary, program=".venv/bin/trio-smith"))
    lines = screen.getvalue().splitlines()
    commands = [line.strip() for line in lines if line.startswith("  .venv/bin/trio-smith ")]
    assert len(commands) == 3
    assert max(map(len, commands)) > 60  # longer than the terminal, and still whole
    parser = build_parser()
    stats, trace, listing = (parser.parse_args(shlex.split(c)[1:]) for c in commands)
    assert (stats.events_command, stats.db) == ("stats", db)
    assert (trace.events_command, trace.db) == ("trace", db)
    assert trace.correlation.uuid == summary.trace.correlation_id  # type: ignore[union-attr]
    assert (listing.events_command, listing.db) == ("list", db)
    assert [str(t) for t in listing.types] == ["supervision.supervisor_gave_up"]

"""``trio-smith events``, driven as a user drives it.

End to end, each command runs as ``python -m trio_smith events ...`` in a
subprocess with stdout a pipe: what each subcommand prints, exit statuses,
stderr, signals and a reader that goes away. Commands that do not depend on
each other start together (``run_all``); ``follow`` is fed by a writer in
this process. The tables (every filter, every bad argument, every bad file)
call the same entry point, ``trio_smith.cli.main``, in this process: a
subprocess costs about 0.3 s to start.

The fixture store holds 14 events with known ids and times in four
correlations: one a causal chain five levels deep with a branch, one whose
root was caused by an event the store does not hold.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import attrs
import pytest
import trio
import trio.testing

from trio_smith.cli import main
from trio_smith.cli._events import _end_if_stuck
from trio_smith.events import (
    Event,
    PostgresEventStore,
    SQLiteEventStore,
    StoreOpenError,
    StoreStatistics,
    StoreUnavailable,
    loads,
)

from ..events.stores import WrappedStore

# ---------------------------------------------------------------- the fixture store

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
#: Correlation ids (each its root's id); they share their first hex digits,
#: as UUIDv7 ids made in the same minute do.
ALPHA = UUID("0197c0de-1a2b-7c3d-8e4f-5a6b7c8d9e01")
BETA = UUID("0197c0de-1a2b-7c3d-8e4f-0123456789ab")
GAMMA = UUID("0197c0df-ffff-7fff-bfff-fedcba987654")
#: Its root names a cause the store does not hold.
DELTA = UUID("0197c0e0-0000-7000-8000-00000000d00d")


def _event(
    n: int,
    kind: str,
    source: str,
    payload: dict[str, Any] | None = None,
    *,
    cause: Event | None = None,
    ms: float = 0.0,
    id: UUID | None = None,
    correlation_id: UUID | None = None,
    causation_id: UUID | None = None,
) -> Event:
    return Event.new(
        kind,
        source=source,
        payload=payload,
        cause=cause,
        id=id or UUID(f"0197c0de-0000-7000-8000-{n:012x}"),
        timestamp=T0 + timedelta(milliseconds=ms),
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def _build_events() -> list[Event]:
    a1 = _event(1, "agent.created", "agents/alpha", {"name": "alpha"}, id=ALPHA)
    b1 = _event(2, "agent.created", "agents/beta", {"name": "beta"}, ms=0.5, id=BETA)
    a2 = _event(3, "agent.started", "agents/alpha", cause=a1, ms=1.5)
    a3 = _event(4, "tool.execution_started", "tools/search", {"query": "trio"}, cause=a2, ms=2)
    b2 = _event(5, "agent.started", "agents/beta", cause=b1, ms=3)
    a4 = _event(6, "tool.execution_failed", "tools/search", {"error": "timeout"}, cause=a3, ms=12.3)
    a5 = _event(
        7,
        "supervision.child_failed",
        "root",
        {"supervisor": "root", "child_id": "alpha", "error": "slow"},
        cause=a4,
        ms=12.8,
    )
    a6 = _event(
        8,
        "supervision.child_restarted",
        "root",
        {"supervisor": "root", "child_id": "alpha", "restarts": 1},
        cause=a5,
        ms=13,
    )
    a7 = _event(9, "agent.message_received", "agents/alpha", {"text": "hi"}, cause=a2, ms=20)
    lines = [{"item": f"widget-{i}", "cents": 1999} for i in range(4)]
    b3 = _event(10, "billing.invoice_paid", "billing/invoices", {"lines": lines}, cause=b2, ms=1500)
    c1 = _event(11, "system.started", "system", id=GAMMA, ms=2000)
    d1 = _event(
        12,
        "agent.failed",
        "agents/gamma",
        {"error": "lost"},
        correlation_id=DELTA,
        causation_id=UUID(int=1),
        ms=2500,
    )
    d2 = _event(13, "agent.stopped", "agents/gamma", cause=d1, ms=2600)
    c2 = _event(14, "system.configuration_changed", "ops/con\nsole", {"k": 1}, cause=c1, ms=3000)
    events = [a1, b1, a2, a3, b2, a4, a5, a6, a7, b3, c1, d1, d2, c2]
    return [event.at_position(index) for index, event in enumerate(events, 1)]


EVENTS = _build_events()


def append(path: pathlib.Path, events: Sequence[Event]) -> None:
    """Append ``events`` to the store at ``path`` (created if missing), as a writer would."""

    async def main() -> None:
        async with SQLiteEventStore(path) as store:
            await store.append_many(events)

    trio.run(main)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The fixture store; commands only read it."""
    path = tmp_path_factory.mktemp("cli") / "events.db"
    append(path, EVENTS)
    return path


@pytest.fixture
def own_db(db: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the fixture store for one test to append to."""
    path = tmp_path / "events.db"
    shutil.copyfile(db, path)
    return path


# ---------------------------------------------------------------- running the command

#: The command's environment: UTF-8 on its pipes whatever the locale.
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8"}

Arg = str | os.PathLike[str]
Result = subprocess.CompletedProcess[str]


def _command(args: Sequence[Arg]) -> list[str]:
    return [sys.executable, "-m", "trio_smith", "events", *map(str, args)]


def _start(args: Sequence[Arg]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=ENV,
    )


def run_all(*commands: Sequence[Arg]) -> list[Result]:
    """Run ``trio-smith events`` commands in subprocesses, all at once; their results."""
    processes = [_start(args) for args in commands]
    results = []
    for process, args in zip(processes, commands, strict=True):
        out, err = process.communicate(timeout=30)
        results.append(subprocess.CompletedProcess(args, process.returncode, out, err))
    return results


def call(capsys: pytest.CaptureFixture[str], *args: Arg) -> Result:
    """Run one ``trio-smith events`` command in this process, through ``main``."""
    try:
        status = main(["events", *map(str, args)])
    except SystemExit as exc:  # argparse's exit
        status = exc.code if isinstance(exc.code, int) else -1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, status, out, err)


def ok(result: Result) -> list[str]:
    """The lines a command printed, after checking that it succeeded quietly."""
    assert (result.returncode, result.stderr) == (0, ""), result
    return result.stdout.splitlines()


def positions(lines: list[str]) -> list[int]:
    """The first column of plain event lines."""
    return [int(line.split()[0]) for line in lines]


def failed(result: Result, status: int) -> str:
    """The one line of stderr of a command that failed with ``status`` and printed nothing."""
    assert (result.returncode, result.stdout) == (status, ""), result
    assert result.stderr.endswith("\n"), result
    assert result.stderr.count("\n") == 1, result
    return result.stderr[:-1]


#: The end-to-end commands on the fixture store (each ``subcommand DB ...``);
#: they start together, once, and the tests below look at what they printed.
SHOWN = ["list", "query --json", "trace 9e01", "stats"]


@pytest.fixture(scope="module")
def shown(db: pathlib.Path) -> dict[str, Result]:
    """What each command in ``SHOWN`` did, by its text."""
    commands: list[list[Arg]] = [
        [command, db, *options] for command, *options in map(str.split, SHOWN)
    ]
    return dict(zip(SHOWN, run_all(*commands), strict=True))


# ---------------------------------------------------------------- list and query

LINES = {
    1: "  1  2026-01-02T03:04:05.000Z  agent.created                   agents/alpha          "
    '7c8d9e01  {"name":"alpha"}',
    2: "  2  2026-01-02T03:04:05.000Z  agent.created                   agents/beta           "
    '456789ab  {"name":"beta"}',
    5: "  5  2026-01-02T03:04:05.003Z  agent.started                   agents/beta           "
    "456789ab  {}",
    7: "  7  2026-01-02T03:04:05.012Z  supervision.child_failed        root                  "
    '7c8d9e01  {"supervisor":"root","child_id":"alpha","error":"slow"}',
    10: " 10  2026-01-02T03:04:06.500Z  billing.invoice_paid            billing/invoices      "
    '456789ab  {"lines":[{"item":"widget-0","cents":1999},{"item":"widget-1","cents":1999},'
    '{"i…',
    12: " 12  2026-01-02T03:04:07.500Z  agent.failed                    agents/gamma          "
    '0000d00d  {"error":"lost"}',
    13: " 13  2026-01-02T03:04:07.600Z  agent.stopped                   agents/gamma          "
    "0000d00d  {}",
    14: " 14  2026-01-02T03:04:08.000Z  system.configuration_changed    ops/con\\nsole         "
    'ba987654  {"k":1}',
}


def test_list_and_query_print_aligned_lines_in_position_order(
    db: pathlib.Path, shown: dict[str, Result], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ok(shown["list"])
    assert positions(lines) == list(range(1, 15))
    # Fixed columns: a line is the same whatever else is printed; a long
    # payload is cut with an ellipsis, a newline in a source is escaped.
    for position, line in LINES.items():
        assert lines[position - 1] == line
    assert ok(call(capsys, "list", db, "--limit", "3")) == [LINES[12], LINES[13], LINES[14]]
    # The last match lies far below the head: list reads further back.
    assert ok(call(capsys, "list", db, "--type", "agent.created", "--limit", "1")) == [LINES[2]]
    lines = ok(call(capsys, "query", db, "--source-prefix", "agents/"))
    assert positions(lines) == [1, 2, 3, 5, 9, 12, 13]
    assert (lines[0], lines[3], lines[5]) == (LINES[1], LINES[5], LINES[12])


FILTERS: list[tuple[list[str], list[int]]] = [
    (["query", "--type", "agent.created"], [1, 2]),
    (["query", "--type", "agent.created", "--type", "agent.stopped"], [1, 2, 13]),
    (["query", "--type", "billing.invoice_paid"], [10]),
    (["query", "--type", "agent.state_changed"], []),
    (["query", "--category", "supervision"], [7, 8]),
    (["query", "--category", "tool", "--category", "billing"], [4, 6, 10]),
    (["query", "--source", "root"], [7, 8]),
    (["query", "--source", "agents"], []),
    (["query", "--source", "root", "--source", "system"], [7, 8, 11]),
    (["query", "--source-prefix", "tools/", "--source", "system"], [4, 6, 11]),
    (["query", "--source-prefix", "agents/a", "--source-prefix", "r"], [1, 3, 7, 8, 9]),
    (["query", "--correlation", str(BETA)], [2, 5, 10]),
    (["query", "--correlation", GAMMA.hex, "--correlation", str(DELTA)], [11, 12, 13, 14]),
    # A time without a zone is UTC; --since is inclusive, --until exclusive.
    (["query", "--since", "2026-01-02T03:04:07.5"], [12, 13, 14]),
    (["query", "--until", "2026-01-02T03:04:05.003Z"], [1, 2, 3, 4]),
    (
        ["query", "--since", "2026-01-02T04:04:07+01:00", "--until", "2026-01-02T03:04:07.6Z"],
        [11, 12],
    ),
    (["query", "--since", "2026-01-02"], list(range(1, 15))),
    (["query", "--since", "36500d"], list(range(1, 15))),
    (["query", "--until", "36500d"], []),
    (["query", "--until", "1.5h", "--since", "500000h"], list(range(1, 15))),
    (["query", "--from-position", "5", "--to-position", "7"], [5, 6, 7]),
    (["query", "--from-position", "13"], [13, 14]),
    (["query", "--to-position", "2"], [1, 2]),
    (["query", "--from-position", "9", "--to-position", "8"], []),
    (["query", "--category", "agent", "--limit", "2"], [1, 2]),
    (
        ["query", "--category", "agent", "--source-prefix", "agents/a", "--from-position", "2"],
        [3, 9],
    ),
    (["list", "--limit", "1"], [14]),
    (["list", "--type", "agent.created", "--limit", "1"], [2]),
    (["list", "--type", "agent.created", "--limit", "5"], [1, 2]),
    (["list", "--type", "agent.created", "--type", "agent.started", "--limit", "3"], [2, 3, 5]),
    (["list", "--limit", "100"], list(range(1, 15))),
    (["list", "--from-position", "2", "--to-position", "9", "--limit", "2"], [8, 9]),
    (["list", "--source-prefix", "agents/", "--limit", "4"], [5, 9, 12, 13]),
    (["list", "--category", "tool", "--until", "2026-01-02T03:04:05.010Z"], [4]),
    (["list", "--correlation", str(ALPHA), "--to-position", "8", "--limit", "2"], [7, 8]),
    # The largest integers SQLite stores are accepted (2**63 - 1).
    (["list", "--limit", str(2**63 - 1), "--to-position", str(2**63 - 1)], list(range(1, 15))),
    (["query", "--from-position", str(2**63 - 1), "--limit", str(2**63 - 1)], []),
]


@pytest.mark.parametrize(("args", "expected"), FILTERS, ids=[" ".join(a) for a, _ in FILTERS])
def test_each_filter_selects_its_events(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: list[int]
) -> None:
    command, *options = args
    assert positions(ok(call(capsys, command, db, *options))) == expected


def test_json_lines_are_the_codec_s_and_round_trip(
    db: pathlib.Path, shown: dict[str, Result], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ok(shown["query --json"])
    assert [loads(line) for line in lines] == EVENTS
    assert json.loads(lines[9])["position"] == 10
    # Never cut, unlike a plain line.
    assert json.loads(lines[9])["payload"] == EVENTS[9].payload
    last2 = ok(call(capsys, "list", db, "--json", "--limit", "2"))
    assert [loads(line) for line in last2] == EVENTS[-2:]


# ---------------------------------------------------------------- trace


def test_trace_draws_the_causal_tree(
    db: pathlib.Path, shown: dict[str, Result], capsys: pytest.CaptureFixture[str]
) -> None:
    # The last digits, as list shows them.
    assert ok(shown["trace 9e01"]) == [
        f"correlation {ALPHA}: 7 events",
        'agent.created  agents/alpha  +0.0ms  {"name":"alpha"}',
        "└── agent.started  agents/alpha  +1.5ms  {}",
        '    ├── tool.execution_started  tools/search  +2.0ms  {"query":"trio"}',
        '    │   └── tool.execution_failed  tools/search  +12.3ms  {"error":"timeout"}',
        "    │       └── supervision.child_failed  root  +12.8ms  "
        '{"supervisor":"root","child_id":"alpha","error":"slow"}',
        "    │           └── supervision.child_restarted  root  +13.0ms  "
        '{"supervisor":"root","child_id":"alpha","restarts":1}',
        '    └── agent.message_received  agents/alpha  +20.0ms  {"text":"hi"}',
    ]
    # The first digits, upper case, with a hyphen.
    assert ok(call(capsys, "trace", db, "0197C0DF-FFFF")) == [
        f"correlation {GAMMA}: 2 events",
        "system.started  system  +0.0ms  {}",
        '└── system.configuration_changed  ops/con\\nsole  +1.000s  {"k":1}',
    ]
    # The whole id, without hyphens. Its root's cause is not in the store: it
    # is a root all the same.
    assert ok(call(capsys, "trace", db, DELTA.hex)) == [
        f"correlation {DELTA}: 2 events",
        'agent.failed  agents/gamma  +0.0ms  {"error":"lost"}',
        "└── agent.stopped  agents/gamma  +100.0ms  {}",
    ]


def _shape(node: dict[str, Any]) -> tuple[int, list[Any]]:
    event = loads(json.dumps(node["event"]))
    assert event == EVENTS[(event.position or 0) - 1]
    return event.position or 0, [_shape(child) for child in node["children"]]


def test_trace_json_nests_the_events(db: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    (line,) = ok(call(capsys, "trace", db, str(ALPHA), "--json"))
    tree = json.loads(line)
    assert (tree["correlation_id"], tree["count"]) == (str(ALPHA), 7)
    assert [_shape(root) for root in tree["roots"]] == [
        (1, [(3, [(4, [(6, [(7, [(8, [])])])]), (9, [])])])
    ]
    (line,) = ok(call(capsys, "trace", db, "0000d00d", "--json"))
    assert [_shape(root) for root in json.loads(line)["roots"]] == [(12, [(13, [])])]


def test_trace_refuses_an_ambiguous_or_unknown_correlation(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = UUID(int=7)
    cases = [
        (
            "0197c0de",
            f"'0197c0de' is ambiguous: 2 correlation ids start or end with it ({BETA}, {ALPHA})",
        ),
        (
            "0197",
            f"'0197' is ambiguous: 4 correlation ids start or end with it ({BETA}, {ALPHA}, "
            f"{GAMMA}, ...)",
        ),
        ("be-ef", "no correlation id in the store starts or ends with 'be-ef'"),
        (str(unknown), f"no events with correlation id {unknown}"),
    ]
    for ref, message in cases:
        assert failed(call(capsys, "trace", db, ref), 1) == f"trio-smith events: error: {message}"


# ---------------------------------------------------------------- stats

STATS = [
    "events        14",
    "head          14",
    "first         2026-01-02T03:04:05.000Z",
    "last          2026-01-02T03:04:08.000Z",
    "FILE SIZE",
    "correlations  4",
    "",
    "by category",
    "  agent        7",
    "  supervision  2",
    "  system       2",
    "  tool         2",
    "  billing      1",
    "",
    "by type",
    "  agent.created                 2",
    "  agent.started                 2",
    "  agent.failed                  1",
    "  agent.message_received        1",
    "  agent.stopped                 1",
    "  billing.invoice_paid          1",
    "  supervision.child_failed      1",
    "  supervision.child_restarted   1",
    "  system.configuration_changed  1",
    "  system.started                1",
    "  tool.execution_failed         1",
    "  tool.execution_started        1",
    "",
    "top 10 sources",
    "  agents/alpha      3",
    "  agents/beta       2",
    "  agents/gamma      2",
    "  root              2",
    "  tools/search      2",
    "  billing/invoices  1",
    "  ops/con\\nsole     1",
    "  system            1",
]


def test_stats_counts_the_store(
    db: pathlib.Path, shown: dict[str, Result], capsys: pytest.CaptureFixture[str]
) -> None:
    plain = shown["stats"]
    size = db.stat().st_size
    size_line = f"file size     {size} bytes ({size / 1024:.1f} KiB)"
    assert ok(plain) == [
        f"store         {db}",
        *(size_line if line == "FILE SIZE" else line for line in STATS),
    ]
    (line,) = ok(call(capsys, "stats", db, "--json"))
    assert json.loads(line) == {
        "path": str(db),
        "events": 14,
        "head": 14,
        "first_position": 1,
        "first_timestamp": "2026-01-02T03:04:05+00:00",
        "last_timestamp": "2026-01-02T03:04:08+00:00",
        "file_size": size,
        "wal_size": 0,
        "correlations": 4,
        "categories": {"agent": 7, "supervision": 2, "system": 2, "tool": 2, "billing": 1},
        "types": {
            "agent.created": 2,
            "agent.started": 2,
            "agent.failed": 1,
            "agent.message_received": 1,
            "agent.stopped": 1,
            "billing.invoice_paid": 1,
            "supervision.child_failed": 1,
            "supervision.child_restarted": 1,
            "system.configuration_changed": 1,
            "system.started": 1,
            "tool.execution_failed": 1,
            "tool.execution_started": 1,
        },
        "top_sources": {
            "agents/alpha": 3,
            "agents/beta": 2,
            "agents/gamma": 2,
            "root": 2,
            "tools/search": 2,
            "billing/invoices": 1,
            "ops/con\nsole": 1,
            "system": 1,
        },
    }


def test_an_empty_store_prints_nothing_and_empty_stats(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.db"
    append(path, [])
    assert ok(call(capsys, "list", path)) == []
    assert ok(call(capsys, "query", path, "--json")) == []
    lines = ok(call(capsys, "stats", path))
    assert lines[1:5] == [
        "events        0",
        "head          0",
        "first         -",
        "last          -",
    ]
    assert lines[-1] == "correlations  0"
    (line,) = ok(call(capsys, "stats", path, "--json"))
    stats = json.loads(line)
    assert (stats["first_timestamp"], stats["types"], stats["top_sources"]) == (None, {}, {})
    assert stats["first_position"] is None


# ---------------------------------------------------------------- follow


class Follower:
    """A ``follow`` subprocess and the lines it prints, read by a thread."""

    def __init__(self, *args: Arg) -> None:
        self.process = _start(["follow", *args])
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    def line(self, timeout: float = 10.0) -> str | None:
        """The next line it prints (None once it has exited); fail after ``timeout`` s."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"follow printed nothing for {timeout} s")

    def finish(self, signum: int | None = None) -> tuple[int, str]:
        """Send ``signum`` (if any); return its exit status and its stderr."""
        if signum is not None:
            self.process.send_signal(signum)
        # The reader thread drains stdout until the end, however much is left
        # (thousands of lines when it is stopped while catching up).
        self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        _, err = self.process.communicate(timeout=10)
        return self.process.returncode, err


@pytest.fixture
def follow() -> Iterator[Callable[..., Follower]]:
    """Starts ``follow`` subprocesses; kills any a failing test leaves running."""
    started: list[Follower] = []

    def start(*args: Arg) -> Follower:
        started.append(Follower(*args))
        return started[-1]

    yield start
    for follower in started:
        follower.process.kill()
        follower.process.communicate()


def _new(kind: str, source: str, **kwargs: Any) -> Event:
    return Event.new(kind, source=source, **kwargs)


def test_follow_prints_new_matches_from_the_head_until_sigint(
    own_db: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    follower = follow(own_db, "--category", "agent", "--source-prefix", "agents/", "--since", "1h")
    # It starts after the head it finds, at a moment this process cannot see:
    # append markers until one comes through. Nothing before them may.
    first = None
    for n in range(100):
        append(own_db, [_new("agent.state_changed", "agents/marker", payload={"n": n})])
        try:
            first = follower.lines.get(timeout=0.25)
            break
        except queue.Empty:
            continue
    assert first is not None, "follow printed no marker"
    assert int(first.split()[0]) > len(EVENTS)
    assert "agents/marker" in first
    append(
        own_db,
        [
            _new("agent.created", "agents/new"),
            _new("tool.registered", "agents/new"),  # another category
        ],
    )
    append(
        own_db,
        [
            _new("agent.started", "root"),  # another source
            _new("agent.started", "agents/old", timestamp=T0),  # before --since
            _new("agent.stopped", "agents/new", payload={"n": "last"}),
        ],
    )
    seen: list[str] = []
    while not seen or not seen[-1].endswith('{"n":"last"}'):
        line = follower.line()
        assert line is not None
        if "agents/marker" not in line:  # one of the markers sent before it was ready
            seen.append(line)
    assert [line.split()[2:4] for line in seen] == [
        ["agent.created", "agents/new"],
        ["agent.stopped", "agents/new"],
    ]
    assert follower.finish(signal.SIGINT) == (0, "")


def test_follow_replays_from_a_position_then_goes_live_without_gaps(
    own_db: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    follower = follow(own_db, "--from-position", "13", "--json")
    replayed = [follower.line(), follower.line()]
    assert [loads(line or "") for line in replayed] == EVENTS[12:]
    live = [_new("agent.started", "agents/live", payload={"n": n}) for n in range(3)]
    append(own_db, live[:1])
    append(own_db, live[1:])
    got = [loads(follower.line() or "") for _ in live]
    assert [event.position for event in got] == [15, 16, 17]
    assert [event.payload for event in got] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert follower.finish(signal.SIGTERM) == (0, "")


def test_follow_ends_after_the_to_position(
    own_db: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    follower = follow(own_db, "--from-position", "14", "--to-position", "15")
    assert follower.line() == LINES[14]
    append(own_db, [_new("agent.started", "agents/a"), _new("agent.stopped", "agents/a")])
    line = follower.line()
    assert line is not None
    fields = line.split()
    assert (fields[0], fields[2]) == ("15", "agent.started")
    assert follower.line() is None  # it exits by itself, before position 16
    assert follower.finish() == (0, "")


def _many(count: int, source: str) -> list[Event]:
    return [_new("agent.started", source, payload={"n": n}) for n in range(count)]


#: Events enough for 20 pages: a reader of them is still reading when a
#: signal sent after its first line arrives.
MANY = 20_000


def test_follow_stopped_while_catching_up_exits_0_quietly(
    own_db: pathlib.Path, follow: Callable[..., Follower]
) -> None:
    append(own_db, _many(MANY, "agents/old"))
    head = len(EVENTS) + MANY
    # Replaying the store from the start: stopped after the first line.
    replaying = follow(own_db, "--from-position", "1")
    assert (replaying.line() or "").split()[0] == "1"
    assert replaying.finish(signal.SIGTERM) == (0, "")
    # Live, while the store's poller reads a big append page by page:
    # stopped after the first new line. The poller, cut off in the middle of
    # a poll that found events, used to report the store closed (exit 1 and
    # a StoreClosed traceback).
    live = follow(own_db, "--from-position", head)
    assert (live.line() or "").split()[0] == str(head)  # the listener is in place
    append(own_db, _many(MANY, "agents/new"))
    assert (live.line() or "").split()[0] == str(head + 1)
    assert live.finish(signal.SIGTERM) == (0, "")


# ---------------------------------------------------------------- output closed early


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.db"
    append(path, [_new("agent.started", f"agents/{n}") for n in range(5000)])
    process = _start(["query", path])
    assert process.stdout is not None
    assert process.stdout.readline().split()[0] == "1"
    process.stdout.close()  # as `| head -1` does
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")


# ---------------------------------------------------------------- mistakes


def test_mistakes_are_one_line_on_stderr_and_touch_no_file(
    db: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "missing.db"
    newer = _newer_store(db, tmp_path)
    before = newer.read_bytes()
    usage, bad_file = run_all(["list", missing, "--limit", "0"], ["follow", newer])
    assert failed(usage, 2) == (
        "trio-smith events list: error: argument --limit: expected an integer >= 1, got '0'"
    )
    assert failed(bad_file, 1) == (
        f"trio-smith events: error: cannot open event store {str(newer)!r}: its schema "
        "version 99 is newer than this trio_smith reads (2)"
    )
    assert not missing.exists()
    assert newer.read_bytes() == before


def _newer_store(db: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A copy of the fixture store that claims a newer schema."""
    newer = tmp_path / "newer.db"
    shutil.copyfile(db, newer)
    with contextlib.closing(sqlite3.connect(newer)) as connection, connection:
        connection.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    return newer


BAD_ARGUMENTS: list[tuple[list[str], str]] = [
    (
        ["list", "--limit", "-1"],
        "trio-smith events list: error: argument --limit: expected an integer >= 1, got '-1'",
    ),
    (
        ["query", "--limit", "many"],
        "trio-smith events query: error: argument --limit: expected an integer >= 1, got 'many'",
    ),
    (
        ["query", "--type", "agent.bogus"],
        "trio-smith events query: error: argument --type: unknown agent event type "
        "'agent.bogus'; custom types need a category of their own",
    ),
    (
        ["list", "--type", "started"],
        "trio-smith events list: error: argument --type: event type must look like "
        "'category.name', got 'started'",
    ),
    (
        ["list", "--category", "agent.x"],
        "trio-smith events list: error: argument --category: categories may not contain "
        "dots or spaces, got 'agent.x'",
    ),
    (
        ["list", "--source", ""],
        "trio-smith events list: error: argument --source: expected a non-empty source, got ''",
    ),
    (
        ["follow", "--since", "yesterday"],
        "trio-smith events follow: error: argument --since: expected an ISO 8601 time or "
        "a duration such as 30s, 5m, 2h, 1d; got 'yesterday'",
    ),
    (
        ["list", "--until", "5w"],
        "trio-smith events list: error: argument --until: expected an ISO 8601 time or "
        "a duration such as 30s, 5m, 2h, 1d; got '5w'",
    ),
    (
        ["list", "--since", "99999999999d"],
        "trio-smith events list: error: argument --since: time out of range: '99999999999d'",
    ),
    (
        ["list", "--until", "0001-01-01T00:00+01:00"],
        "trio-smith events list: error: argument --until: time out of range: "
        "'0001-01-01T00:00+01:00'",
    ),
    (
        ["query", "--correlation", "not-a-uuid"],
        "trio-smith events query: error: argument --correlation: expected a correlation id or "
        "at least 4 of its hex digits, got 'not-a-uuid'",
    ),
    (
        ["list", "--from-position", "0"],
        "trio-smith events list: error: argument --from-position: expected a position "
        "(an integer >= 1), got '0'",
    ),
    (
        ["query", "--to-position", "x"],
        "trio-smith events query: error: argument --to-position: expected a position "
        "(an integer >= 1), got 'x'",
    ),
    (
        ["trace", "abc"],
        "trio-smith events trace: error: argument CORRELATION_ID: expected a correlation "
        "id or at least 4 of its hex digits, got 'abc'",
    ),
    (
        ["trace", "abcg"],
        "trio-smith events trace: error: argument CORRELATION_ID: expected a correlation "
        "id or at least 4 of its hex digits, got 'abcg'",
    ),
    # Integers go to SQLite, whose integers have 64 bits: at most 2**63 - 1.
    (
        ["list", "--limit", "99999999999999999999999"],
        "trio-smith events list: error: argument --limit: expected an integer "
        "<= 9223372036854775807, got '99999999999999999999999'",
    ),
    (
        ["query", "--limit", str(2**63)],
        "trio-smith events query: error: argument --limit: expected an integer "
        "<= 9223372036854775807, got '9223372036854775808'",
    ),
    (
        ["list", "--from-position", "99999999999999999999999"],
        "trio-smith events list: error: argument --from-position: expected a position "
        "(an integer <= 9223372036854775807), got '99999999999999999999999'",
    ),
    (
        ["query", "--to-position", str(2**63)],
        "trio-smith events query: error: argument --to-position: expected a position "
        "(an integer <= 9223372036854775807), got '9223372036854775808'",
    ),
    (
        ["follow", "--from-position", str(2**64)],
        "trio-smith events follow: error: argument --from-position: expected a position "
        "(an integer <= 9223372036854775807), got '18446744073709551616'",
    ),
    # More digits than int() reads (4300) is too large all the same.
    (
        ["list", "--limit", "9" * 5000],
        "trio-smith events list: error: argument --limit: expected an integer "
        f"<= 9223372036854775807, got '{'9' * 5000}'",
    ),
    (
        ["follow", "--to-position", "-" + "9" * 5000],
        "trio-smith events follow: error: argument --to-position: expected a position "
        f"(an integer >= 1), got '-{'9' * 5000}'",
    ),
    # Times beyond datetime's years 1 to 9999.
    (
        ["list", "--since", "99999-01-01"],
        "trio-smith events list: error: argument --since: expected an ISO 8601 time or "
        "a duration such as 30s, 5m, 2h, 1d; got '99999-01-01'",
    ),
    (
        ["query", "--since", f"{10**20}s"],
        "trio-smith events query: error: argument --since: time out of range: "
        "'100000000000000000000s'",
    ),
    (
        ["follow", "--until", "2932897d"],
        "trio-smith events follow: error: argument --until: time out of range: '2932897d'",
    ),
    (
        ["list", "--since", "9999-12-31T23:59:59-01:00"],
        "trio-smith events list: error: argument --since: time out of range: "
        "'9999-12-31T23:59:59-01:00'",
    ),
    (["stats", "--bogus"], "trio-smith: error: unrecognized arguments: --bogus"),
    (["follow", "--limit", "3"], "trio-smith: error: unrecognized arguments: --limit 3"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_ARGUMENTS, ids=[" ".join(a)[:60] for a, _ in BAD_ARGUMENTS]
)
def test_a_bad_argument_is_one_line_and_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    never = tmp_path / "never.db"
    command, *options = args
    # The store argument comes first; it is never looked at.
    assert failed(call(capsys, command, never, *options), 2) == message
    assert not never.exists()


def test_a_missing_subcommand_or_store_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert failed(call(capsys), 2) == (
        "trio-smith events: error: the following arguments are required: SUBCOMMAND"
    )
    assert failed(call(capsys, "stats"), 2) == (
        "trio-smith events stats: error: the following arguments are required: DB"
    )
    assert failed(call(capsys, "nonsense"), 2).startswith(
        "trio-smith events: error: argument SUBCOMMAND: invalid choice: 'nonsense'"
    )


def test_a_bad_file_is_one_line_exits_1_and_is_left_alone(
    db: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "folder.db"
    folder.mkdir()
    empty = tmp_path / "empty.db"
    empty.touch()
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    other = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(other)) as connection, connection:
        connection.execute("CREATE TABLE t (x)")
    newer = _newer_store(db, tmp_path)
    before = {path: path.read_bytes() for path in (empty, text, other, newer)}
    listing = sorted(tmp_path.iterdir())
    cases: list[tuple[list[Arg], str]] = [
        (
            ["list", tmp_path / "missing.db"],
            f"no such store file: {str(tmp_path / 'missing.db')!r}",
        ),
        (["query", folder], f"cannot open event store {str(folder)!r}: it is a directory"),
        (
            ["follow", empty],
            f"cannot open event store {str(empty)!r}: it is empty, not a trio_smith event store",
        ),
        (
            ["trace", text, str(ALPHA)],
            f"cannot open event store {str(text)!r}: not an SQLite database, or corrupt (",
        ),
        (["stats", other], f"cannot open event store {str(other)!r}: not a trio_smith event store"),
        (
            ["list", newer],
            f"cannot open event store {str(newer)!r}: its schema version 99 is newer than this "
            "trio_smith reads (2)",
        ),
    ]
    for args, message in cases:
        line = failed(call(capsys, *args), 1)
        assert line.startswith(f"trio-smith events: error: {message}"), line
    assert {path: path.read_bytes() for path in before} == before
    # SQLite's read-only probe of a WAL-mode file (the newer store) may leave
    # an empty -wal and a -shm beside it; nothing else appears.
    new = set(tmp_path.iterdir()) - set(listing)
    assert {path.name for path in new} <= {"newer.db-wal", "newer.db-shm"}
    assert not any(path.stat().st_size for path in new if path.name.endswith("-wal"))


def _damage(path: pathlib.Path, position: int) -> None:
    """Break the payload of the event at ``position``, as a stray tool or a bad disk might."""
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE events SET payload = '{' WHERE position = ?", (position,))


def test_a_damaged_event_is_one_line_exits_1_and_is_left_alone(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "damaged.db"
    append(path, EVENTS)
    _damage(path, 2)  # BETA's root
    before = path.read_bytes()
    message = (
        f"trio-smith events: error: event store {str(path)!r} holds a damaged event at "
        "position 2: its payload is not JSON ("
    )
    # Every command that reads event 2 says so: stats reads every event,
    # trace reads the correlation (or, for part of an id, every event).
    for args in [
        ["list"],
        ["list", "--json", "--limit", "13"],
        ["query"],
        ["query", "--type", "agent.created", "--json"],
        ["follow", "--from-position", "1"],
        ["trace", str(BETA)],
        ["trace", "9e01"],
        ["stats"],
        ["stats", "--json"],
    ]:
        command, *options = args
        line = failed(call(capsys, command, path, *options), 1)
        assert line.startswith(message), (args, line)
    # Reads that do not reach it are not troubled.
    assert positions(ok(call(capsys, "list", path, "--limit", "12"))) == list(range(3, 15))
    assert positions(ok(call(capsys, "query", path, "--from-position", "3"))) == list(range(3, 15))
    assert ok(call(capsys, "trace", path, str(ALPHA)))[0] == f"correlation {ALPHA}: 7 events"
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "args",
    [["list"], ["query"], ["follow", "--from-position", "1"], ["trace", str(ALPHA)], ["stats"]],
    ids=lambda args: " ".join(args),
)
def test_a_store_that_is_unavailable_is_one_line_and_exits_1(
    db: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
) -> None:
    # The SQLite store raises StoreUnavailable when it cannot get at its file
    # for a while (a lock held too long): made to happen here, on every read.
    async def read(self: SQLiteEventStore, *args: object, **kwargs: object) -> list[Event]:
        await trio.lowlevel.checkpoint()
        raise StoreUnavailable(str(db), "database is locked")

    monkeypatch.setattr(SQLiteEventStore, "read", read)
    command, *options = args
    assert failed(call(capsys, command, db, *options), 1) == (
        f"trio-smith events: error: event store {str(db)!r} is unavailable: database is locked"
    )


def test_a_store_that_cannot_be_opened_is_one_line_and_exits_1(
    db: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # StoreOpenError, the base of StoreFileError: what a store that is not a
    # file (a server) raises at open.
    async def refuse(self: SQLiteEventStore) -> SQLiteEventStore:
        await trio.lowlevel.checkpoint()
        raise StoreOpenError(str(db), "the server refused the connection")

    monkeypatch.setattr(SQLiteEventStore, "__aenter__", refuse)
    for command in ["list", "query", "follow", "stats"]:
        assert failed(call(capsys, command, db), 1) == (
            f"trio-smith events: error: cannot open event store {str(db)!r}: "
            "the server refused the connection"
        )


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_db(pg_dsn: str) -> str:
    """The fixture store's events in PostgreSQL (a database of this test's own)."""

    async def main() -> None:
        async with PostgresEventStore(pg_dsn) as store:
            await store.append_many(EVENTS)

    trio.run(main)
    return pg_dsn


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["query", "--json"],
        ["query", "--category", "agent", "--source-prefix", "agents/", "--limit", "3"],
        ["list", "--limit", "2", "--to-position", "9"],
        ["trace", "9e01"],
        ["trace", "9e01", "--json"],
    ],
)
def test_a_postgresql_url_gives_what_the_file_gives(
    db: pathlib.Path, pg_db: str, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    subcommand, *options = command
    from_file = ok(call(capsys, subcommand, db, *options))
    from_database = ok(call(capsys, subcommand, pg_db, *options))
    assert from_database == from_file
    assert from_file


def test_stats_of_a_postgresql_store(
    db: pathlib.Path, pg_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    of_file = json.loads(ok(call(capsys, "stats", db, "--json"))[0])
    of_database = json.loads(ok(call(capsys, "stats", pg_db, "--json"))[0])
    name = PostgresEventStore(pg_db).name
    assert of_database == {**of_file, "path": name, "file_size": None, "wal_size": None}
    lines = ok(call(capsys, "stats", pg_db))
    assert lines[0] == f"store         {name}"
    assert not any(line.startswith(("file size", "wal size")) for line in lines)


def test_follow_a_postgresql_store(pg_db: str, follow: Callable[..., Follower]) -> None:
    follower = follow(pg_db, "--from-position", "13")
    assert [int(follower.line().split()[0]) for _ in range(2)] == [13, 14]  # type: ignore[union-attr]

    async def write() -> None:
        async with PostgresEventStore(pg_db) as store:
            await store.append(_new("agent.started", "agents/late"))

    trio.run(write)
    line = follower.line()
    assert line is not None
    assert line.split()[0] == "15"
    assert "agents/late" in line
    assert follower.finish(signal.SIGTERM) == (0, "")


def test_postgresql_mistakes_are_one_line(
    pg_db: str, db: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    nowhere = f"postgresql://postgres@127.0.0.1:{port}/x"
    assert failed(call(capsys, "list", nowhere), 1).startswith(
        f"trio-smith events: error: cannot open event store '{nowhere}': cannot connect ("
    )
    assert failed(call(capsys, "list", pg_db, "--schema", "nothing_here"), 1) == (
        f"trio-smith events: error: cannot open event store "
        f"{PostgresEventStore(pg_db).name!r}: no trio_smith event store in schema "
        "'nothing_here' (read-only stores are not created)"
    )
    assert failed(call(capsys, "list", pg_db, "--schema", "no-dashes"), 1) == (
        "trio-smith events: error: schema must be a letter or _ then up to 47 letters, "
        "digits or _, got 'no-dashes'"
    )
    assert failed(call(capsys, "list", db, "--schema", "other"), 1) == (
        f"trio-smith events: error: --schema applies to a postgresql:// URL, not to the file "
        f"{str(db)!r}"
    )


class _StuckStore(WrappedStore):
    """A store whose reading of other writers' events fails from the start."""

    def statistics(self) -> StoreStatistics:
        return attrs.evolve(super().statistics(), follow_error="damaged, say")


async def test_follow_ends_once_the_store_cannot_read_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = _StuckStore("stuck")
    start = trio.current_time()
    message = (
        "event store 'stuck' is unavailable: no new event could be read for 10 s: damaged, say"
    )
    with pytest.raises(StoreUnavailable, match=f"^{re.escape(message)}$"):
        await _end_if_stuck(store)
    assert 10 <= trio.current_time() - start <= 12


def test_a_store_on_a_read_only_medium_can_be_inspected(
    read_only_copy: tuple[pathlib.Path, pathlib.Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, view = read_only_copy
    append(source / "events.db", EVENTS)
    assert positions(ok(call(capsys, "list", view / "events.db", "--limit", "3"))) == [12, 13, 14]
    stats = json.loads(ok(call(capsys, "stats", view / "events.db", "--json"))[0])
    assert stats["events"] == len(EVENTS)
    assert sorted(os.listdir(view)) == ["events.db"]

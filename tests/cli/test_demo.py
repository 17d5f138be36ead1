"""``trio-smith demo``: the supervised multi-agent system under chaos.

Most tests run the whole demo in this process under trio's ``MockClock``
(``autojump_clock``): a 3 s run takes a fraction of a real second, and its
events go to a real SQLite store in ``tmp_path``, which the tests then
query. A few run ``python -m trio_smith demo`` in a subprocess as a user
does: a real 3 s run, Ctrl-C, a bad file. Argument and file mistakes are
checked through ``trio_smith.cli.main`` in this process.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from uuid import UUID

import pytest
import trio
from rich.console import Console

from trio_smith.cli import main
from trio_smith.cli._demo import make_reporter
from trio_smith.cli._demo_plan import DemoConfig, Job, Plan, Timeline
from trio_smith.cli._demo_system import run_demo
from trio_smith.cli._demo_view import (
    DEMO_SUBTREES,
    Line,
    LiveReporter,
    Observer,
    PlainReporter,
    Reporter,
    Snapshot,
    Summary,
    summary_lines,
)
from trio_smith.events import Event, PostgresEventStore, SQLiteEventStore

# ---------------------------------------------------------------- helpers


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps once trio has been idle for 0.3 ms of real time.

    Not ``autojump_clock`` (a threshold of 0): the store commits in a
    thread, and with 0 trio's loop spins (epoll without a timeout) whenever
    it waits for that thread, starving it of the GIL: a 3 s run then takes
    from 1 to 30 real seconds instead of about one.
    """
    return trio.testing.MockClock(autojump_threshold=0.0003)


async def _run(
    db: pathlib.Path,
    *,
    seed: int = 1,
    duration: float = 3.0,
    chaos: float = 0.1,
    stop: trio.Event | None = None,
    reporter: Reporter | None = None,
) -> tuple[Summary, str]:
    """Run the demo in this process; its summary and its plain output."""
    out = io.StringIO()
    summary = await run_demo(
        # No real program: it would live in real time, the run on a MockClock.
        DemoConfig(seed=seed, duration=duration, chaos=chaos, db=str(db), programs=False),
        reporter=reporter or PlainReporter(out),
        stop=stop,
        banner=["banner"],
    )
    return summary, out.getvalue()


async def _stored(db: pathlib.Path) -> list[Event]:
    """Every event in the store, in position order."""
    async with SQLiteEventStore(db, read_only=True) as store:
        return await store.read()


def _of(events: Sequence[Event], wire: str, **payload: object) -> list[Event]:
    """The events of type ``wire`` whose payload has these items."""
    return [
        e
        for e in events
        if str(e.type) == wire and all(e.payload.get(k) == v for k, v in payload.items())
    ]


def _depth(events: Sequence[Event]) -> int:
    """The longest path from a root to a leaf of the causal tree, in events."""
    by_id = {e.id: e for e in events}

    def depth(event: Event) -> int:
        n = 1
        while event.causation_id in by_id:
            event = by_id[event.causation_id]
            n += 1
        return n

    return max(map(depth, events), default=0)


# ---------------------------------------------------------------- the run, in process


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_short_run_shows_restarts_a_breaker_cycle_a_hang_and_an_escalation(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock, seed: int
) -> None:
    db = tmp_path / "demo.db"
    summary, out = await _run(db, seed=seed)

    counts = summary.counts
    assert counts.restarts >= 1
    assert counts.breaker_trips >= 1
    assert counts.breaker_closed >= 1
    assert counts.hung >= 1
    assert counts.escalations >= 1
    assert summary.tasks.routed > 0
    assert summary.root_failure is None
    assert not summary.interrupted

    # What a user sees, one plain line each.
    line = r"^\[ *\d+\.\d\ds\] "
    assert re.search(line + r"restart  (researchers|coders|analysts)/\w+-\d after ", out, re.M)
    assert re.search(line + r"breaker  search-api CLOSED -> OPEN$", out, re.M)
    assert re.search(line + r"breaker  search-api HALF_OPEN -> CLOSED$", out, re.M)
    assert re.search(
        line + r"hung     analysts/analyst-\d \(phi \d+\.\d, silent \d\.\d\d s\): cancelled$",
        out,
        re.M,
    )
    assert re.search(line + r"escalate coders gave up: too many restarts", out, re.M)
    assert re.search(line + r"restart  coders \(the whole subtree\) after it gave up$", out, re.M)
    assert re.search(line + r"status   tasks \d+ ", out, re.M)

    # ... and what the store holds.
    events = await _stored(db)
    assert _of(events, "supervision.child_restarted")
    assert _of(events, "circuit_breaker.state_transition", from_state="CLOSED", state="OPEN")
    assert _of(events, "circuit_breaker.state_transition", from_state="HALF_OPEN", state="CLOSED")
    assert _of(events, "supervision.child_failed", supervisor="demo/analysts", reason="hung")
    assert _of(events, "supervision.supervisor_gave_up", supervisor="demo/coders")
    assert _of(events, "supervision.child_restarted", supervisor="demo", child_id="coders")
    assert _of(events, "routing.task_routed", task_type="summarize", role="analyst")


async def test_the_summary_counts_what_the_store_holds(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    db = tmp_path / "demo.db"
    summary, out = await _run(db, seed=4)
    events = await _stored(db)

    failed = _of(events, "supervision.child_failed")
    hung = [e for e in failed if e.payload.get("reason") == "hung"]
    counts = summary.counts
    assert counts.restarts == len(_of(events, "supervision.child_restarted"))
    assert counts.hung == len(hung)
    assert counts.crashes == len(failed) - len(hung)
    assert counts.escalations == len(_of(events, "supervision.supervisor_gave_up"))
    transitions = "circuit_breaker.state_transition"
    assert counts.breaker_trips == len(_of(events, transitions, from_state="CLOSED", state="OPEN"))
    assert counts.breaker_opened == len(_of(events, transitions, state="OPEN"))
    assert counts.breaker_closed == len(_of(events, transitions, state="CLOSED"))
    tasks = summary.tasks
    assert tasks.routed == len(_of(events, "routing.task_routed"))
    assert tasks.completed == len(_of(events, "routing.task_completed"))
    assert tasks.route_failed == len(_of(events, "routing.task_failed"))
    assert tasks.ok + tasks.degraded + tasks.failed <= tasks.submitted
    assert summary.events_before == 0
    assert summary.events_stored == len(events)
    assert summary.events_dropped == 0
    # The demo's own markers frame the run.
    assert str(events[0].type) == "demo.run_started"
    assert events[0].payload == {"seed": 4, "duration": 3.0, "chaos": 0.1}
    assert str(events[-1].type) == "demo.run_ended"

    text = "\n".join(summary_lines(summary))
    assert f"\n  tasks routed   {tasks.routed}: {tasks.completed} completed, " in text
    assert f"\n  restarts       {counts.restarts}\n" in text
    assert f"\n  hung caught    {counts.hung}\n" in text
    assert f"\n  escalations    {counts.escalations}\n" in text
    assert f"\n  breaker trips  {counts.breaker_trips} (opened " in text
    assert f"\n  events stored  {len(events)} in {db}\n" in text
    assert f"\n  trio-smith events stats {db}\n" in text
    assert out.startswith("banner\nevents -> ")
    assert out.endswith("\n")


async def test_the_suggested_trace_has_a_delegation_and_a_deep_causal_tree(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    db = tmp_path / "demo.db"
    summary, _ = await _run(db, seed=5)
    trace = summary.trace
    assert trace is not None

    async with SQLiteEventStore(db, read_only=True) as store:
        chain = await store.get_by_correlation(trace.correlation_id)
    assert _depth(chain) == trace.depth >= 3
    routed = _of(chain, "routing.task_routed")
    assert [e.payload["task_type"] for e in routed] == ["code", "research"]
    # The research was routed while the coder handled the task: caused by it.
    received = {e.id: e for e in _of(chain, "agent.message_received")}
    cause = routed[1].causation_id
    assert cause is not None
    assert received[cause].source.startswith("agents/coder-")
    assert trace.delegated
    assert trace.crashed == bool(_of(chain, "chaos.crash_injected"))
    assert f"  trio-smith events trace {db} {trace.correlation_id}" in summary_lines(summary)
    # make demo runs .venv/bin/trio-smith, not on PATH: the commands name it so.
    given = summary_lines(summary, program=".venv/bin/trio-smith")
    assert f"  .venv/bin/trio-smith events trace {db} {trace.correlation_id}" in given


@pytest.mark.parametrize(
    ("argv0", "on_path", "expected"),
    [
        (".venv/bin/trio-smith", None, ".venv/bin/trio-smith"),
        ("/usr/local/bin/trio-smith", "/usr/local/bin/trio-smith", "trio-smith"),
        ("/x/__main__.py", None, "trio-smith"),
        ("trio-smith", "/usr/bin/trio-smith", "trio-smith"),
    ],
)
def test_the_summary_names_the_command_as_it_can_be_run_again(
    monkeypatch: pytest.MonkeyPatch, argv0: str, on_path: str | None, expected: str
) -> None:
    from trio_smith.cli import _demo

    monkeypatch.setattr(sys, "argv", [argv0, "demo"])
    monkeypatch.setattr(shutil, "which", lambda name: on_path)
    assert _demo._program() == expected


async def test_without_random_chaos_the_timeline_still_plays_out(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    db = tmp_path / "demo.db"
    summary, _ = await _run(db, chaos=0.0)
    counts = summary.counts
    assert counts.hung == 1
    assert counts.escalations == 1
    assert counts.breaker_trips >= 1
    assert counts.breaker_closed >= 1
    events = await _stored(db)
    crashed = _of(events, "chaos.crash_injected")
    assert crashed
    assert all(str(e.payload["task"]).startswith("burst-") for e in crashed)


async def test_a_second_run_appends_to_the_store_and_says_so(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    db = tmp_path / "demo.db"
    first, first_out = await _run(db, duration=1.0)
    second, second_out = await _run(db, duration=1.0, seed=2)
    assert f"events -> {db} (a new store)" in first_out
    assert (
        f"events -> {db} (appending to the existing store, {first.events_stored} events so far)"
        in second_out
    )
    assert second.events_before == first.events_stored
    assert len(await _stored(db)) == first.events_stored + second.events_stored
    assert f"(after {first.events_stored} from earlier runs)" in "\n".join(summary_lines(second))


async def test_stop_ends_the_run_early_and_cleanly(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    # What Ctrl-C does: the CLI's signal watcher sets the stop event. Here a
    # reporter sets it 1 s into the run (virtual time; the store opens in
    # real time, during which the mock clock may jump).
    db = tmp_path / "demo.db"
    stop = trio.Event()
    out = io.StringIO()
    plain = PlainReporter(out, interval=0.25)

    class StopAfterOneSecond:
        interval = plain.interval

        def begin(self, lines: Sequence[str], snapshot: Snapshot) -> None:
            plain.begin(lines, snapshot)

        def notable(self, line: Line) -> None:
            plain.notable(line)

        def update(self, snapshot: Snapshot) -> None:
            plain.update(snapshot)
            if snapshot.elapsed >= 1.0:
                stop.set()

        def end(self, snapshot: Snapshot) -> None:
            plain.end(snapshot)

        def summary(self, lines: Sequence[str]) -> None:
            plain.summary(lines)

    results = [(await _run(db, duration=20.0, stop=stop, reporter=StopAfterOneSecond()))[0]]
    [summary] = results
    assert summary.interrupted
    assert 1.0 <= summary.elapsed < 1.5
    assert summary_lines(summary)[0].startswith(
        f"trio-smith demo interrupted after {summary.elapsed:.1f} s (seed 1"
    )
    events = await _stored(db)
    assert str(events[-1].type) == "demo.run_ended"
    assert events[-1].payload["interrupted"] is True
    # Every child was stopped in order before the end.
    assert _of(events, "supervision.supervisor_stopped", supervisor="demo", reason="shutdown")


async def test_the_live_view_draws_the_tree_phi_mailboxes_breaker_and_counters(
    tmp_path: pathlib.Path, clock: trio.testing.MockClock
) -> None:
    # An 80x24 terminal: every frame fits (tests/cli/test_demo_screen.py
    # checks the layout), so rich never cuts one with its "..." line.
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, height=24, color_system=None)
    reporter = LiveReporter(console)
    summary, _ = await _run(tmp_path / "demo.db", duration=2.0, reporter=reporter)
    reporter.summary(summary_lines(summary))
    drawn = screen.getvalue()
    for text in (
        "supervision tree",
        "demo  running",
        "tools  running  search-api CLOSED",
        "researchers  running",
        "(gives up after 3 in 1 s)",
        "in flight",
        "restarts",
        "hung caught",
        "trips",
        "stored",
        "trio-smith events stats",
    ):
        assert text in drawn
    assert re.search(r"researcher-1  running .*phi \d+\.\d\d  mailbox \d+", drawn)
    assert re.search(r"\[ *\d+\.\d\ds\] hung     analysts/analyst-\d", drawn)
    assert not re.search(r"^ *\.\.\. *$", drawn, re.M)


def test_a_terminal_gets_the_live_view_unless_plain() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_reporter(Terminal(), plain=False), LiveReporter)
    assert isinstance(make_reporter(Terminal(), plain=True), PlainReporter)
    assert isinstance(make_reporter(io.StringIO(), plain=False), PlainReporter)


# ---------------------------------------------------------------- the decisions


def test_a_seed_fixes_every_job_of_the_plan() -> None:
    def jobs(seed: int, chaos: float = 0.1) -> list[Job]:
        plan = Plan(seed=seed, chaos=chaos, rate=20.0)
        return [plan.next_job() for _ in range(200)]

    assert jobs(7) == jobs(7)
    assert jobs(7) != jobs(8)
    plan = jobs(7)
    assert {job.type for job in plan} == {"research", "code", "analyze", "summarize"}
    assert all((job.sub is not None) == (job.type == "code") for job in plan)
    assert not any(job.crash for job in jobs(7, chaos=0.0))
    assert all(job.crash for job in jobs(7, chaos=1.0))
    # The crash draws do not shift the rest of the stream.
    assert [j.type for j in jobs(7, 0.0)] == [j.type for j in jobs(7, 1.0)]


def test_the_timeline_is_relative_to_the_duration() -> None:
    timeline = Timeline.for_duration(3.0)
    assert [(s.at, s.kind) for s in timeline.steps()] == [
        (0.75, "outage_started"),
        (pytest.approx(1.35), "outage_ended"),
        (1.5, "hang"),
        (pytest.approx(2.1), "burst"),
    ]
    assert not timeline.in_outage(0.74)
    assert timeline.in_outage(0.75)
    assert timeline.in_outage(1.34)
    assert not timeline.in_outage(1.35)
    assert Timeline.for_duration(3.0).breaker_wait == 0.2
    assert Timeline.for_duration(20.0).breaker_wait == pytest.approx(1.2)
    assert Timeline.for_duration(100.0).breaker_wait == 1.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0}, "duration must be a finite number > 0, got 0"),
        ({"duration": float("inf")}, "duration must be a finite number > 0, got inf"),
        ({"chaos": 1.5}, "chaos must be a number from 0 to 1, got 1.5"),
        ({"concurrency": 0}, "concurrency must be an integer >= 1, got 0"),
    ],
)
def test_a_config_refuses_numbers_out_of_range(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        DemoConfig(seed=1, **kwargs)  # type: ignore[arg-type]


def test_the_observer_words_each_notable_event() -> None:
    observer = Observer("demo", DEMO_SUBTREES)

    def see(wire: str, source: str, at: float, **payload: object) -> str | None:
        line = observer.see(Event.new(wire, source=source, payload=payload), at)
        return None if line is None else str(line)

    assert see(
        "supervision.child_failed",
        "demo/analysts",
        5.0,
        supervisor="demo/analysts",
        child_id="analyst-1",
        reason="hung",
        phi=9.13,
        silence=0.42,
    ) == ("[   5.00s] hung     analysts/analyst-1 (phi 9.1, silent 0.42 s): cancelled")
    assert (
        see(
            "supervision.child_restarted",
            "demo/analysts",
            5.0,
            supervisor="demo/analysts",
            child_id="analyst-1",
        )
        == "[   5.00s] restart  analysts/analyst-1 after hung, phi 9.1"
    )
    assert (
        see(
            "supervision.child_failed",
            "demo/coders",
            7.0,
            supervisor="demo/coders",
            child_id="coder-2",
            error_type="trio_smith.cli._demo_system.ChaosCrash",
            error="injected into task 12",
        )
        is None
    )
    assert (
        see(
            "supervision.supervisor_gave_up",
            "demo/coders",
            7.0,
            supervisor="demo/coders",
            reason="intensity",
            child_id="coder-2",
            error_type="trio_smith.cli._demo_system.ChaosCrash",
        )
        == "[   7.00s] escalate coders gave up: too many restarts (last: coder-2, ChaosCrash); "
        "its parent takes over"
    )
    see(
        "supervision.child_failed",
        "demo",
        7.0,
        supervisor="demo",
        child_id="coders",
        error_type="trio_smith._exceptions.RestartIntensityExceeded",
        error="restart intensity exceeded: ...",
    )
    assert (
        see("supervision.child_restarted", "demo", 7.0, supervisor="demo", child_id="coders")
        == "[   7.00s] restart  coders (the whole subtree) after it gave up"
    )
    assert (
        see(
            "circuit_breaker.state_transition",
            "circuit_breaker/search-api",
            1.5,
            breaker="search-api",
            from_state="CLOSED",
            state="OPEN",
        )
        == "[   1.50s] breaker  search-api CLOSED -> OPEN"
    )
    see(
        "circuit_breaker.state_transition",
        "circuit_breaker/search-api",
        2.0,
        breaker="search-api",
        from_state="HALF_OPEN",
        state="CLOSED",
    )
    assert (
        see("chaos.outage_started", "chaos", 0.75, tool="search-api", seconds=0.6)
        == "[   0.75s] chaos    search-api outage begins: every call fails for 0.6 s"
    )
    counts = observer.counts
    assert (counts.hung, counts.restarts, counts.crashes, counts.escalations) == (1, 2, 2, 1)
    assert (counts.breaker_trips, counts.breaker_opened, counts.breaker_closed) == (1, 1, 1)
    assert observer.ended is None
    assert see("demo.run_ended", "demo", 9.0, elapsed=9.0, interrupted=False) is None
    assert observer.ended is not None


# ---------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "argument --duration: expected a number of seconds > 0, got '0'"),
        (["--duration", "-3"], "argument --duration: expected a number of seconds > 0, got '-3'"),
        (["--duration", "nan"], "argument --duration: expected a number of seconds > 0, got 'nan'"),
        (["--duration", "inf"], "argument --duration: expected a number of seconds > 0, got 'inf'"),
        (["--duration", "1s"], "argument --duration: expected a number of seconds > 0, got '1s'"),
        (["--chaos", "1.5"], "argument --chaos: expected a probability from 0 to 1, got '1.5'"),
        (["--chaos", "-0.1"], "argument --chaos: expected a probability from 0 to 1, got '-0.1'"),
        (["--chaos", "nan"], "argument --chaos: expected a probability from 0 to 1, got 'nan'"),
        (["--seed", "1.5"], "argument --seed: expected an integer, got '1.5'"),
        (["--db", ""], "argument --db: expected a file path or a postgresql:// URL, got ''"),
        (["--plain", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_a_bad_argument_is_one_line_and_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", *argv])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    if argv[0] == "--plain":  # argparse's own, from the top-level parser
        assert captured.err == f"trio-smith: error: {message}\n"
    else:
        assert captured.err == f"trio-smith demo: error: {message}\n"


def _not_a_store(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database\n")
    return path, (
        "cannot open event store {path!r}: not an SQLite database, or corrupt "
        "(file is not a database)"
    )


def _another_database(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        connection.execute("INSERT INTO invoices VALUES (1, 9.5)")
    connection.close()
    return path, "cannot open event store {path!r}: not a trio_smith event store"


def _missing_directory(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    path = tmp_path / "no" / "such" / "demo.db"
    directory = str(path.parent)
    return path, f"cannot open event store {{path!r}}: directory {directory!r} does not exist"


def _a_directory(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    path = tmp_path / "a-directory"
    path.mkdir()
    return path, "cannot open event store {path!r}: it is a directory"


def _a_device(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    return pathlib.Path(os.devnull), "cannot open event store {path!r}: it is not a regular file"


@pytest.mark.parametrize(
    "make", [_not_a_store, _another_database, _missing_directory, _a_directory, _a_device]
)
def test_a_file_that_is_no_store_is_one_line_exits_1_and_is_left_alone(
    make: object, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, message = make(tmp_path)  # type: ignore[operator]
    before = path.read_bytes() if path.is_file() else None
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["demo", "--duration", "1", "--db", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"trio-smith demo: error: {message.format(path=str(path))}\n"
    if before is not None:
        assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing  # nothing created


# ---------------------------------------------------------------- as a user runs it


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_smith", "demo", *args]


def test_the_demo_runs_as_a_user_runs_it(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "d.db"
    done = subprocess.run(
        _demo("--duration", "3", "--seed", "1", "--db", str(db)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout
    lines = out.splitlines()
    assert lines[0] == "trio-smith demo: 3 s, chaos 0.1, seed 1"
    assert lines[1] == f"events -> {db} (a new store); Ctrl-C stops it early"
    assert lines[2] == "demo [running] supervisor"
    assert "├── coders [running] supervisor" in lines
    line = r"^\[ *\d+\.\d\ds\] "
    for pattern in (
        r"restart  \S+ after ",
        r"breaker  search-api CLOSED -> OPEN$",
        r"breaker  search-api HALF_OPEN -> CLOSED$",
        r"hung     analysts/analyst-\d \(phi ",
        r"escalate coders gave up: ",
        r"status   tasks \d+ ",
    ):
        assert re.search(line + pattern, out, re.M), pattern
    assert re.search(r"^trio-smith demo done after 3\.\d s \(seed 1, chaos 0\.1\)$", out, re.M)
    for label in ("tasks routed", "restarts", "hung caught", "escalations", "breaker trips"):
        assert re.search(rf"^  {label} +\d+", out, re.M), label
    assert re.search(rf"^  events stored  \d+ in {re.escape(str(db))}$", out, re.M)
    assert f"\n  trio-smith events stats {db}\n" in out
    found = re.search(rf"^  trio-smith events trace {re.escape(str(db))} (\S+)$", out, re.M)
    assert found is not None
    correlation = UUID(found[1])

    async def chain() -> list[Event]:
        async with SQLiteEventStore(db, read_only=True) as store:
            return await store.get_by_correlation(correlation)

    assert _depth(trio.run(chain)) >= 3

    async def indexer_starts() -> list[Event]:
        async with SQLiteEventStore(db, read_only=True) as store:
            return [
                e
                for e in await store.read()
                if e.type.name == "child_started" and e.payload["child_id"] == "indexer"
            ]

    # The indexer is a real program: started with its pid.
    starts = trio.run(indexer_starts)
    assert starts
    assert all(isinstance(e.payload["os_pid"], int) for e in starts)


def test_ctrl_c_stops_the_demo_cleanly_with_its_summary(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "d.db"
    process = subprocess.Popen(
        _demo("--duration", "60", "--db", str(db)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        # No seed given: the one chosen is printed, to repeat the run.
        assert re.fullmatch(
            r"trio-smith demo: 60 s, chaos 0\.1, seed (\d+) \(a new one: --seed \1 repeats "
            r"this run\)\n",
            first,
        )
        # The tree is printed once the system runs: then interrupt it.
        while process.stdout.readline().rstrip() != "└── hub [running] worker":
            pass
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert err == ""
    assert re.search(r"^trio-smith demo interrupted after \d+\.\d s \(seed \d+", out, re.M)
    assert re.search(r"^  events stored  \d+ in ", out, re.M)


def test_a_bad_store_file_fails_in_one_line_as_a_user_sees_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n")
    done = subprocess.run(
        _demo("--db", str(path)), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"trio-smith demo: error: cannot open event store {str(path)!r}: "
        "not an SQLite database, or corrupt (file is not a database)\n"
    )
    assert path.read_text() == "not a database\n"


def test_the_demo_writes_to_postgresql_and_events_reads_it_back(pg_dsn: str) -> None:
    done = subprocess.run(
        _demo("--duration", "2", "--seed", "1", "--plain", "--db", pg_dsn),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    name = PostgresEventStore(pg_dsn).name
    assert done.stdout.splitlines()[1] == f"events -> {name} (a new store); Ctrl-C stops it early"
    found = re.search(rf"^  events stored  (\d+) in {re.escape(name)}$", done.stdout, re.M)
    assert found is not None
    stats = subprocess.run(
        [sys.executable, "-m", "trio_smith", "events", "stats", pg_dsn, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(stats.stdout)["events"] == int(found[1])


def test_two_demos_share_one_store_file(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "shared.db"
    runs = [
        subprocess.Popen(
            _demo("--duration", "3", "--seed", str(seed), "--plain", "--db", str(db)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    outs = [run.communicate(timeout=90) for run in runs]
    for run, (_, err) in zip(runs, outs, strict=True):
        assert run.returncode == 0, err
        assert err == ""
    stored = [
        int(found[1])
        for out, _ in outs
        if (found := re.search(r"^  events stored  (\d+) in ", out, re.M)) is not None
    ]
    assert len(stored) == 2

    async def read() -> list[Event]:
        async with SQLiteEventStore(db, read_only=True) as store:
            return await store.read()

    events = trio.run(read)
    assert [e.position for e in events] == list(range(1, sum(stored) + 1))
    # Each saw the other's events as they came (the runs overlap).
    assert any("  other writers  " in out for out, _ in outs)

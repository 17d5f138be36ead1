"""``trio-smith observe``: the tree from an observer's URL or a store; ``demo --observe``.

The rebuilding of a tree from stored events is a pure function, tested on
hand-made event lists; the rest runs as a user runs it, against a live
Observer and a store written by a real supervisor. Real sockets need real
time: those tests run on trio's real clock, with no timing assertions
(docs/design.md rule 47); they wait on conditions (a client connected, a
line printed), never on durations.
"""

from __future__ import annotations

import io
import json
import pathlib
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import trio
from rich.cells import cell_len
from rich.console import Console

from trio_smith import ChildSpec, Supervisor
from trio_smith.cli import main
from trio_smith.cli._demo_view import Line
from trio_smith.cli._observe_tree import (
    ObserveView,
    TreeFormatError,
    ViewNode,
    rebuild,
    tree_from_json,
)
from trio_smith.events import Event, EventBus, SQLiteEventStore, SupervisionEvent
from trio_smith.observer import Observer

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sup_event(kind: object, at: float = 0.0, **payload: object) -> Event:
    assert isinstance(kind, type(SupervisionEvent.CHILD_STARTED))
    return Event.new(kind, source="test", payload=payload, timestamp=T0 + timedelta(seconds=at))


S = SupervisionEvent

# ---------------------------------------------------------------- events -> tree


def test_an_empty_store_has_no_tree() -> None:
    assert rebuild([]) == ()


def test_starts_failures_restarts_and_stops_make_the_statuses_and_counts() -> None:
    # As a Supervisor publishes them: its children's starts before its own.
    events = [
        sup_event(S.CHILD_STARTED, supervisor="app", child_id="a", incarnation=1),
        sup_event(S.CHILD_STARTED, supervisor="app", child_id="b", incarnation=1, os_pid=42),
        sup_event(S.SUPERVISOR_STARTED, supervisor="app"),
        sup_event(S.CHILD_FAILED, supervisor="app", child_id="a", incarnation=1),
        sup_event(S.CHILD_STARTED, supervisor="app", child_id="a", incarnation=2),
        sup_event(S.CHILD_RESTARTED, supervisor="app", child_id="a", incarnation=2),
        sup_event(S.CHILD_FAILED, supervisor="app", child_id="a", incarnation=2),
    ]
    assert rebuild(events) == (
        ViewNode(
            id="app",
            supervisor=True,
            status="running",
            children=(
                ViewNode(id="a", status="failed", restarts=1),
                ViewNode(id="b", status="running", os_pid=42),
            ),
        ),
    )
    stopped = [
        *events,
        sup_event(S.CHILD_STOPPED, supervisor="app", child_id="b", reason="shutdown"),
        sup_event(S.SUPERVISOR_STOPPED, supervisor="app", reason="shutdown"),
    ]
    (root,) = rebuild(stopped)
    assert root.status == "stopped"
    assert root.children[1] == ViewNode(id="b", status="stopped")


def test_a_nested_supervisor_hangs_under_its_child_and_restarts_fresh() -> None:
    events = [
        sup_event(S.SUPERVISOR_STARTED, supervisor="app"),
        sup_event(S.SUPERVISOR_STARTED, supervisor="app/pool"),
        sup_event(S.CHILD_STARTED, supervisor="app/pool", child_id="w", incarnation=1),
        sup_event(S.CHILD_RESTARTED, supervisor="app/pool", child_id="w", incarnation=2),
        sup_event(S.CHILD_STARTED, supervisor="app", child_id="pool", incarnation=1),
        sup_event(S.CHILD_FAILED, supervisor="app/pool", child_id="w", reason="hung", phi=9.5),
    ]
    (root,) = rebuild(events)
    (pool,) = root.children
    assert pool == ViewNode(
        id="pool",
        supervisor=True,
        status="running",
        children=(ViewNode(id="w", status="failed", restarts=1, phi=9.5),),
    )
    gave_up = [
        *events,
        sup_event(S.SUPERVISOR_GAVE_UP, supervisor="app/pool", reason="intensity"),
        sup_event(S.CHILD_FAILED, supervisor="app", child_id="pool"),
    ]
    assert rebuild(gave_up)[0].children[0].status == "gave up"
    again = [
        *gave_up,
        sup_event(S.SUPERVISOR_STOPPED, supervisor="app/pool", reason="intensity"),
        sup_event(S.SUPERVISOR_STARTED, supervisor="app/pool"),
        sup_event(S.CHILD_RESTARTED, supervisor="app", child_id="pool"),
    ]
    # A new Supervisor: no children until they start, the child's restart counted.
    assert rebuild(again)[0].children[0] == ViewNode(
        id="pool", supervisor=True, status="running", restarts=1
    )


def test_other_events_and_malformed_payloads_are_ignored() -> None:
    events = [
        Event.new("app.thing", source="x", payload={"supervisor": "app"}),
        sup_event(S.CHILD_STARTED, supervisor=7, child_id="a"),
        sup_event(S.SUPERVISOR_STARTED, supervisor="app"),
        sup_event(S.CHILD_FAILED, supervisor="app", child_id=None),
    ]
    assert rebuild(events) == (ViewNode(id="app", supervisor=True, status="running"),)


def test_a_tree_document_of_another_version_is_refused() -> None:
    with pytest.raises(TreeFormatError) as info:
        tree_from_json({"version": 2, "root": {}})
    assert str(info.value) == "tree version 2; this trio-smith reads version 1"


# ---------------------------------------------------------------- the CLI


def run_main(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def idle() -> None:
    await trio.sleep_forever()


def test_a_non_http_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["observe", "ftp://example.com:21"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "trio-smith observe: error: argument URL|STORE: 'ftp://example.com:21' is not an "
        "http:// URL (an observer) nor a store (a file path or a postgresql:// URL)\n"
    )


def test_replay_with_a_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(["observe", "http://127.0.0.1:9", "--replay"], capsys)
    assert (status, err) == (
        2,
        "trio-smith observe: error: argument --replay: applies to a store, not to an "
        "observer's URL\n",
    )


async def test_once_draws_the_live_tree_of_an_observer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        Supervisor(
            [ChildSpec("mailer", idle), Supervisor.spec("pool", [ChildSpec("job", idle)])],
            name="app",
        ) as root,
        Observer(root) as obs,
    ):
        url = obs.url
        status = await trio.to_thread.run_sync(main, ["observe", url, "--once"])
        await root.shutdown()
    out = capsys.readouterr().out
    assert status == 0
    assert url.rstrip("/") in out
    drawn = [line.removeprefix("│ ").rstrip(" │") for line in out.splitlines()]
    assert "app  running" in drawn
    assert "├── mailer  running" in drawn
    assert "└── pool  running" in drawn
    assert "    └── job  running" in drawn
    assert "(nothing yet)" in out


async def test_following_ends_with_exit_1_when_the_observer_goes_away(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with (
        EventBus() as bus,
        Supervisor([ChildSpec("mailer", idle)], name="app", events=bus) as root,
    ):
        async with trio.open_nursery() as nursery:
            done: list[int] = []

            async with Observer(root, bus=bus) as obs:
                url = obs.url

                async def follow() -> None:
                    done.append(await trio.to_thread.run_sync(main, ["observe", url]))

                nursery.start_soon(follow)
                while obs.statistics().clients == 0:  # noqa: ASYNC110 (another process's state)
                    await trio.sleep(0.01)
        await root.shutdown()
    assert done == [1]
    err = capsys.readouterr().err
    assert err == f"trio-smith observe: error: the observer at {url.rstrip('/')} went away\n"


def test_a_closed_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, _, err = run_main(["observe", f"http://127.0.0.1:{port}", "--once"], capsys)
    assert status == 1
    assert err.startswith(
        f"trio-smith observe: error: cannot reach the observer at http://127.0.0.1:{port}: "
    )


async def write_crashing_store(path: pathlib.Path) -> None:
    crashes = 0

    async def flaky() -> None:
        nonlocal crashes
        if crashes < 2:
            crashes += 1
            raise ValueError("boom")
        await trio.sleep_forever()

    async with (
        SQLiteEventStore(str(path)) as store,
        EventBus(store) as bus,
        Supervisor(
            [ChildSpec("steady", idle), ChildSpec("flaky", flaky)],
            name="app",
            max_restarts=5,
            events=bus,
        ) as root,
    ):
        while root.tree().children[1].restarts < 2:  # noqa: ASYNC110 (no event to wait on)
            await trio.sleep(0.01)
        await root.shutdown()


async def test_once_draws_a_store_as_of_its_end(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.db"
    await write_crashing_store(path)
    status = await trio.to_thread.run_sync(main, ["observe", str(path), "--once"])
    out = capsys.readouterr().out
    assert status == 0
    drawn = [line.removeprefix("│ ").rstrip(" │") for line in out.splitlines()]
    assert "app  stopped" in drawn
    assert "├── steady  stopped" in drawn
    assert "└── flaky  stopped  restarts 2" in drawn
    assert "[  0.00s] status   app started" in out
    assert "restart  flaky after ValueError: boom" in out
    assert "status   app stopped (shutdown)" in out


def test_a_missing_store_is_a_clear_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_main(["observe", str(tmp_path / "none.db"), "--once"], capsys)
    assert status == 1
    assert err.startswith("trio-smith observe: error: ")


def test_demo_observe_needs_a_token_off_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_main(["demo", "--observe", "0.0.0.0:0"], capsys)
    assert status == 2
    assert err == (
        "trio-smith demo: error: argument --observe: the observer serves '0.0.0.0', which "
        "is not a loopback address, only with a token: pass token=... (every request must "
        "then carry it) or bind to 127.0.0.1\n"
    )


def test_demo_observe_serves_the_demo_tree(tmp_path: pathlib.Path) -> None:
    command = [
        sys.executable,
        "-m",
        "trio_smith",
        "demo",
        "--plain",
        "--duration",
        "30",
        "--db",
        str(tmp_path / "demo.db"),
        "--observe",
        "127.0.0.1:0",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("observer at "):
                    url = line.split()[2]
                    break
            else:
                pytest.fail("no observer line")
            with urllib.request.urlopen(url + "api/tree") as response:
                doc = json.loads(response.read())
            once = subprocess.run(
                [sys.executable, "-m", "trio_smith", "observe", url, "--once"],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            proc.terminate()
    assert doc["version"] == 1
    assert doc["root"]["name"] == "demo"
    assert [c["id"] for c in doc["root"]["children"]][:1] == ["tools"]
    assert "demo  running" in once.stdout


# ---------------------------------------------------------------- as a user runs it


def observe_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_smith", "observe", *args]


async def test_once_against_a_live_observer_as_a_subprocess() -> None:
    async with (
        Supervisor(
            [ChildSpec("mailer", idle), Supervisor.spec("pool", [ChildSpec("job", idle)])],
            name="app",
        ) as root,
        Observer(root) as obs,
    ):
        url = obs.url
        done = await trio.run_process(
            observe_command(url, "--once"), capture_stdout=True, capture_stderr=True
        )
        await root.shutdown()
    out = done.stdout.decode()
    assert (done.returncode, done.stderr) == (0, b"")
    assert url.rstrip("/") in out
    drawn = [line.removeprefix("│ ").rstrip(" │") for line in out.splitlines()]
    assert "app  running" in drawn
    assert "├── mailer  running" in drawn
    assert "    └── job  running" in drawn
    assert max(cell_len(line) for line in out.splitlines()) <= 80  # a pipe: 80 columns


async def test_once_on_a_store_as_a_subprocess(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.db"
    await write_crashing_store(path)
    done = await trio.run_process(
        observe_command(str(path), "--once"), capture_stdout=True, capture_stderr=True
    )
    out = done.stdout.decode()
    assert (done.returncode, done.stderr) == (0, b"")
    drawn = [line.removeprefix("│ ").rstrip(" │") for line in out.splitlines()]
    assert "└── flaky  stopped  restarts 2" in drawn
    assert "status   app stopped (shutdown)" in out


# ---------------------------------------------------------------- 80x24


#: A tree of 15 nodes: the most that leaves the last five lines on 80x24.
FRAME_TREE = ViewNode(
    id="app",
    supervisor=True,
    status="running",
    children=(
        ViewNode(id="mailer", status="running", phi=0.42, restarts=3),
        ViewNode(id="indexer", status="running", os_pid=4242, status_text="indexing " * 12),
        ViewNode(
            id="pool",
            supervisor=True,
            status="running",
            children=tuple(ViewNode(id=f"job-{n}", status="running") for n in range(11)),
        ),
    ),
)
FRAME_LOG = [
    Line(at=float(n), kind="restart", text=f"job-{n} after Boom: " + "x" * 70) for n in range(30)
]
FRAME_LOG.append(Line(at=99.0, kind="status", text="the newest line"))


def test_the_frame_fits_80x24_and_nothing_is_cut() -> None:
    console = Console(width=80, height=24, record=True, file=io.StringIO(), force_terminal=True)
    console.print(
        ObserveView([FRAME_TREE], FRAME_LOG, title="http://127.0.0.1:8000", subtitle="31 events")
    )
    lines = console.export_text().splitlines()
    assert len(lines) == 24
    assert max(cell_len(line) for line in lines) <= 80
    tops = [n for n, line in enumerate(lines) if line.startswith("╭")]
    bottoms = [n for n, line in enumerate(lines) if line.startswith("╰")]
    # Both panels whole: the tree's 15 rows, then the events down to the last row.
    assert list(zip(tops, bottoms, strict=True)) == [(0, 16), (17, 23)]
    assert "31 events" in lines[16]
    tree = [line.removeprefix("│ ") for line in lines[1:16]]
    assert tree[0].startswith("app  running ")
    for n in range(11):
        assert any(f"job-{n}  running" in line for line in tree), n
    assert "mailer  running  restarts 3  phi 0.42" in tree[1]
    assert tree[2].rstrip(" │").endswith("…")  # a long label is cut with an ellipsis, one row
    assert "the newest line" in lines[22]


async def test_an_observer_with_a_token_needs_it(capsys: pytest.CaptureFixture[str]) -> None:
    async with (
        Supervisor([ChildSpec("mailer", idle)], name="app") as root,
        Observer(root, token="s3cret") as obs,
    ):
        base = obs.url.rstrip("/")
        answers = []
        for extra in ([], ["--token", "wrong"], ["--token", "s3cret"]):
            argv = ["observe", obs.url, "--once", *extra]
            answers.append(await trio.to_thread.run_sync(main, argv))
        await root.shutdown()
    assert answers == [1, 1, 0]
    out, err = capsys.readouterr()
    assert err == f"trio-smith observe: error: {base} wants a token: pass --token\n" * 2
    assert "mailer  running" in out

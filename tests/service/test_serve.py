"""``trio_smith.serve`` / ``serve_async``: a root supervisor run as a process's service.

Two kinds of tests: real signals to a real process running ``serve``
(``service_app.py``: real time, generous limits, no timing assertions), and
``serve_async`` inside the test's own ``trio.run`` under an autojump
``MockClock``, signalled with ``os.kill`` of the test process itself (pytest
runs tests in the main thread). docs/design.md rule 43.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
import trio
import trio.testing

import trio_smith
from trio_smith import AutoShutdown, ChildSpec, Restart, Supervisor, current_child
from trio_smith.events import Event, MemoryEventStore, SQLiteEventStore

APP = pathlib.Path(__file__).with_name("service_app.py")
#: Real seconds a process may take to reach a line or to exit (a loaded CI machine).
LIMIT = 60.0

Clock = trio.testing.MockClock


# ---------------------------------------------------------------- a real process


class Service:
    """``service_app.py`` in a process of its own; its stdout lines read by a thread."""

    def __init__(self, tmp_path: pathlib.Path, *args: str, env: dict[str, str] | None = None):
        self.stderr_path = tmp_path / "stderr.txt"
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(APP), *args],
                stdout=subprocess.PIPE,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **(env or {})},
            )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self._queue.put(line.rstrip("\n"))
        self._closed.set()
        self._queue.put(None)

    def wait_for(self, line: str) -> None:
        while line not in self.lines:
            got = self._queue.get(timeout=LIMIT)
            assert got is not None, f"exited before {line!r}: {self.lines}, {self.stderr()}"
            self.lines.append(got)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def finish(self) -> int:
        """Wait for the exit; every line read."""
        code = self.process.wait(timeout=LIMIT)
        while (got := self._queue.get(timeout=LIMIT)) is not None:
            self.lines.append(got)
        return code

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        assert self._closed.wait(LIMIT)  # the reader closed stdout


@pytest.fixture
def service(tmp_path: pathlib.Path) -> Iterator[list[Service]]:
    started: list[Service] = []
    yield started
    for one in started:
        one.kill()


def _start(
    started: list[Service], tmp_path: pathlib.Path, *args: str, **kw: dict[str, str]
) -> Service:
    one = Service(tmp_path, *args, **kw)
    started.append(one)
    return one


def _stored(path: pathlib.Path) -> list[Event]:
    async def read() -> list[Event]:
        async with SQLiteEventStore(path, read_only=True) as store:
            return await store.read()

    return trio.run(read)


def _kinds(events: list[Event]) -> list[str]:
    return [
        e.type.name + (f" {e.payload['child_id']}" if e.type.name.startswith("child_") else "")
        for e in events
    ]


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_children_in_reverse_order_commits_the_events_and_exits_0(
    service: list[Service], tmp_path: pathlib.Path, number: signal.Signals
) -> None:
    db = tmp_path / "events.db"
    app = _start(service, tmp_path, "--store", str(db))
    app.wait_for("start c")
    app.signal(number)
    assert app.finish() == 0, app.stderr()
    assert app.lines == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    # Committed before the process exited: every event, the last one included.
    assert _kinds(_stored(db)) == [
        "child_started a",
        "child_started b",
        "child_started c",
        "supervisor_started",
        "child_stopped c",
        "child_stopped b",
        "child_stopped a",
        "supervisor_stopped",
    ]


def test_a_second_signal_cuts_a_slow_shutdown_short_and_exits_3(
    service: list[Service], tmp_path: pathlib.Path
) -> None:
    app = _start(service, tmp_path, "--slow-stop")
    app.wait_for("start c")
    app.signal(signal.SIGTERM)
    app.wait_for("ignoring stop b")  # no deadline: it would wait for ever
    app.signal(signal.SIGINT)
    assert app.finish() == 3
    assert app.lines == [
        "start a",
        "start b",
        "start c",
        "stop c",
        "ignoring stop b",
        "cancelled b",
        "stop a",
    ]
    assert "a second stop signal (SIGINT): cancelling every child left" in app.stderr()


def test_the_deadline_cuts_a_slow_shutdown_short_and_exits_3(
    service: list[Service], tmp_path: pathlib.Path
) -> None:
    app = _start(service, tmp_path, "--slow-stop", "--deadline", "0.5")
    app.wait_for("start c")
    app.signal(signal.SIGTERM)
    assert app.finish() == 3
    assert app.lines[-3:] == ["ignoring stop b", "cancelled b", "stop a"]
    assert "the shutdown deadline (0.5 s) passed: cancelling every child left" in app.stderr()


def test_a_root_that_gives_up_exits_1_with_its_events_committed(
    service: list[Service], tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "events.db"
    app = _start(service, tmp_path, "--give-up", "--store", str(db))
    assert app.finish() == 1
    assert app.lines[-2:] == ["stop c", "stop a"]
    kinds = _kinds(_stored(db))
    assert kinds[-5:] == [
        "child_failed b",
        "child_stopped c",
        "child_stopped a",
        "supervisor_gave_up",
        "supervisor_stopped",
    ]
    assert "supervisor 'app' gave up" in app.stderr()


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A fake service manager: an abstract AF_UNIX datagram socket (Linux)."""
    name = f"trio_smith_test_{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(LIMIT)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


def _message(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_the_service_manager_is_told_ready_status_watchdog_and_stopping_in_order(
    service: list[Service], tmp_path: pathlib.Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    app = _start(service, tmp_path, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    assert _message(sock) == ["READY=1", "STATUS=running 3 children"]
    assert _message(sock) == ["WATCHDOG=1"]
    assert _message(sock) == ["WATCHDOG=1"]  # every 0.1 s: half WATCHDOG_USEC
    app.signal(signal.SIGTERM)
    rest = []
    while (message := _message(sock)) != ["STATUS=stopped"]:
        rest.append(message)
    assert app.finish() == 0
    # Pings until the stop began, none after.
    while rest and rest[0] == ["WATCHDOG=1"]:
        rest.pop(0)
    assert rest == [["STOPPING=1", "STATUS=stopping on SIGTERM (no deadline)"]]
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


# ---------------------------------------------------------------- serve_async in trio.run


def _kill(number: int = signal.SIGTERM) -> None:
    os.kill(os.getpid(), number)


def _children(log: list[str], slow: str = "") -> list[ChildSpec]:
    async def child(name: str, task_status: trio.TaskStatus[None]) -> None:
        log.append(f"start {name}")
        task_status.started()
        await current_child().stop_requested.wait()
        if name in slow:
            try:
                await trio.sleep_forever()
            finally:
                log.append(f"cancelled {name}")
        log.append(f"stop {name}")

    return [ChildSpec(name, child, (name,), shutdown=math.inf) for name in "abc"]


async def _after(delay: float, number: int = signal.SIGTERM) -> None:
    await trio.sleep(delay)
    _kill(number)


async def test_serve_async_stops_in_order_on_sigterm_and_puts_the_handlers_back(
    autojump_clock: Clock,
) -> None:
    before = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_after, 1)
        code = await trio_smith.serve_async(_children(log))
    assert code == 0
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]
    assert {n: signal.getsignal(n) for n in before} == before


async def test_the_deadline_cuts_the_shutdown_down_a_nested_tree(autojump_clock: Clock) -> None:
    log: list[str] = []
    inner = Supervisor.spec("inner", _children(log, slow="b"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_after, 1)
        code = await trio_smith.serve_async([inner], shutdown_deadline=5)
    assert code == 3
    assert trio.current_time() == 6  # the signal at 1, the cut 5 s later
    assert log == [
        "start a",
        "start b",
        "start c",
        "stop c",
        "cancelled b",
        "stop a",
    ]


async def test_a_second_signal_cancels_every_child_left_at_once(autojump_clock: Clock) -> None:
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_after, 1)
        nursery.start_soon(_after, 3, signal.SIGINT)
        code = await trio_smith.serve_async(_children(log, slow="cb"), shutdown_deadline=math.inf)
    assert code == 3
    # c was being stopped, and is cancelled; b, asked afterwards, is cancelled
    # as soon as it is asked, whatever its shutdown (math.inf).
    assert trio.current_time() == 3
    assert log[3:] == ["cancelled c", "cancelled b", "stop a"]


async def test_a_signal_during_the_start_stops_it_without_ready(
    autojump_clock: Clock, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    log: list[str] = []

    async def slow_start(task_status: trio.TaskStatus[None]) -> None:
        log.append("starting")
        _kill()
        await trio.sleep(10)
        task_status.started()

    code = await trio_smith.serve_async([ChildSpec("a", slow_start)], shutdown_deadline=math.inf)
    assert code == 0
    assert trio.current_time() < 10
    assert _message(sock) == ["STOPPING=1", "STATUS=stopping on SIGTERM (no deadline)"]
    assert _message(sock) == ["STATUS=stopped"]


async def test_a_root_that_gives_up_returns_1_and_tells_the_manager(
    autojump_clock: Clock,
    notify_socket: tuple[socket.socket, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock, address = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")

    async def crash() -> None:
        await trio.sleep(2.5)
        raise RuntimeError("boom")

    async def deaf() -> None:
        await trio.sleep_forever()

    children = [ChildSpec("deaf", deaf, shutdown=5), ChildSpec("crash", crash)]
    with caplog.at_level(logging.CRITICAL):
        code = await trio_smith.serve_async(children, max_restarts=0)
    assert code == 1
    assert trio.current_time() == 7.5  # the crash at 2.5, then 5 s to stop "deaf"
    assert _message(sock) == ["READY=1", "STATUS=running 2 children"]
    assert [_message(sock) for _ in range(3)] == [["WATCHDOG=1"]] * 3  # at 0, 1 and 2
    # At 3 the watchdog saw the root stopping by itself: no more pings, STOPPING=1.
    assert _message(sock) == ["STOPPING=1", "STATUS=stopping: the root supervisor stops by itself"]
    assert _message(sock) == [
        "STATUS=gave up: restart intensity exceeded: 1 restarts within 5.0 s (max_restarts=0); "
        "the last one was for child 'crash'"
    ]


async def test_a_tree_that_ends_by_itself_returns_0(autojump_clock: Clock) -> None:
    async def brief() -> None:
        await trio.sleep(1)

    spec = ChildSpec("a", brief, restart=Restart.TRANSIENT, significant=True)
    code = await trio_smith.serve_async([spec], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT)
    assert code == 0


async def test_sighup_runs_the_hook_sync_or_async_and_a_failing_hook_is_logged(
    autojump_clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def sync_hook() -> None:
        calls.append("sync")
        if len(calls) == 2:
            raise RuntimeError("cannot reload")

    async def async_hook() -> None:
        await trio.sleep(0.5)
        calls.append("async")

    for hook in (sync_hook, async_hook):
        async with trio.open_nursery() as nursery:
            for at in (1, 2):
                nursery.start_soon(_after, at, signal.SIGHUP)
            nursery.start_soon(_after, 3)
            with caplog.at_level(logging.ERROR, logger="trio_smith.serve"):
                assert await trio_smith.serve_async(_children([]), on_sighup=hook) == 0
    assert calls == ["sync", "sync", "async", "async"]
    assert [r.getMessage() for r in caplog.records] == ["on_sighup raised; the service goes on"]


async def test_without_on_sighup_sighup_is_left_alone(autojump_clock: Clock) -> None:
    seen: list[object] = []

    async def look() -> None:
        seen.append(signal.getsignal(signal.SIGHUP))
        await trio.sleep_forever()

    before = signal.getsignal(signal.SIGHUP)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_after, 1)
        await trio_smith.serve_async([ChildSpec("look", look)])
    assert seen == [before]


async def test_the_store_is_closed_with_every_event_committed_before_it_returns(
    autojump_clock: Clock, tmp_path: pathlib.Path
) -> None:
    store = SQLiteEventStore(tmp_path / "events.db")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_after, 1)
        await trio_smith.serve_async(_children([]), store=store)
    with pytest.raises(trio.ClosedResourceError):
        await store.head()
    async with SQLiteEventStore(tmp_path / "events.db", read_only=True) as again:
        assert _kinds(await again.read())[-2:] == ["child_stopped a", "supervisor_stopped"]


# ---------------------------------------------------------------- bad input


def _noop() -> None:
    pass


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"shutdown_deadline": -1},
            ValueError,
            "shutdown_deadline must be a number of seconds >= 0 (math.inf: no deadline), got -1",
        ),
        (
            {"shutdown_deadline": math.nan},
            ValueError,
            "shutdown_deadline must be a number of seconds >= 0 (math.inf: no deadline), got nan",
        ),
        (
            {"shutdown_deadline": "30"},
            ValueError,
            "shutdown_deadline must be a number of seconds >= 0 (math.inf: no deadline), got '30'",
        ),
        ({"on_sighup": "reload"}, TypeError, "on_sighup must be a callable or None, got 'reload'"),
        ({"stop_signals": [99]}, ValueError, "unknown signal 99 in stop_signals"),
        ({"stop_signals": ["SIGTERM"]}, ValueError, "unknown signal 'SIGTERM' in stop_signals"),
        ({"stop_signals": [True]}, ValueError, "unknown signal True in stop_signals"),
        (
            {"stop_signals": [signal.SIGKILL]},
            ValueError,
            "SIGKILL cannot be caught: it cannot be a stop signal",
        ),
        ({"stop_signals": []}, ValueError, "stop_signals must name at least one signal"),
        (
            {"stop_signals": signal.SIGTERM},
            TypeError,
            "stop_signals must be an iterable of signals, got <Signals.SIGTERM: 15>",
        ),
        (
            {"stop_signals": [signal.SIGHUP], "on_sighup": _noop},
            ValueError,
            "SIGHUP cannot be both a stop signal and on_sighup's signal",
        ),
        (
            {"store": "events.db"},
            TypeError,
            "store must be an event store (not yet entered) or None, got 'events.db'",
        ),
        (
            {"store": MemoryEventStore(), "events": MemoryEventStore()},
            ValueError,
            "pass store= or events=, not both: serve publishes the tree's events to its store",
        ),
        ({"max_restarts": -1}, ValueError, "max_restarts must be >= 0, got -1"),
    ],
)
def test_bad_input_is_refused_at_the_call(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        trio_smith.serve([], **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


async def test_serve_async_checks_its_input_too() -> None:
    with pytest.raises(ValueError, match="shutdown_deadline") as caught:
        await trio_smith.serve_async([], shutdown_deadline=-0.5)
    assert str(caught.value) == (
        "shutdown_deadline must be a number of seconds >= 0 (math.inf: no deadline), got -0.5"
    )


def test_serve_needs_the_main_thread() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            trio_smith.serve([])
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, name="worker-7")
    thread.start()
    thread.join(LIMIT)
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert str(errors[0]) == (
        "serve must run in the main thread: only it can handle signals "
        "(called in thread 'worker-7')"
    )

"""Several processes on one event log, for SQLite and PostgreSQL: real processes,
real signals, a real server restart.

Four writer processes append at once (tests/events/store_process.py prints
every acknowledged append) while a fifth follows the log through a bus. Every
acknowledged event must be stored exactly once, positions must be dense, and
the follower must see every stored event once, in position order. A writer
killed with SIGKILL in the middle of its batches loses nothing it was told was
stored; a PostgreSQL server restarted under the writers neither.

No test sleeps: each waits for counted lines of output.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio

from trio_smith.events import Event, EventStore, PostgresEventStore, SQLiteEventStore

from ..postgres import PostgresServer

SCRIPT = pathlib.Path(__file__).with_name("store_process.py")
WRITERS = 4
PER_WRITER = 250


class Output:
    """The ``<position> <id hex>`` lines a process printed, read as they come."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self.retries = 0
        self.ready = trio.Event()
        self._changed = trio.Event()
        self.ended = False

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        async for chunk in stream:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                if line == b"ready":
                    self.ready.set()
                    continue
                if line == b"retry":
                    self.retries += 1
                    continue
                position, event_id = line.decode().split()
                self.lines.append((int(position), event_id))
            self._changed.set()
            self._changed = trio.Event()
        # A cut-off last line (a killed writer) is no acknowledgement.
        self.ended = True
        self._changed.set()

    async def wait_lines(self, n: int) -> None:
        while len(self.lines) < n:
            assert not self.ended, f"the process ended after {len(self.lines)} of {n} lines"
            await self._changed.wait()


@asynccontextmanager
async def _process(nursery: trio.Nursery, *args: str) -> AsyncIterator[tuple[trio.Process, Output]]:
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE
    )
    output = Output()
    assert process.stdout is not None
    nursery.start_soon(output.read, process.stdout)
    try:
        yield process, output
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def _open(spec: str) -> EventStore:
    if spec.startswith("postgresql://"):
        return PostgresEventStore(spec)
    return SQLiteEventStore(spec)


async def _stored(spec: str) -> list[Event]:
    async with _open(spec) as store:
        return await store.read()


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[str]:
    """Where the shared log lives: a file, or a database on the test server."""
    if request.param == "sqlite":
        yield str(tmp_path / "shared.db")
    else:
        yield request.getfixturevalue("pg_dsn")


def _check(
    stored: list[Event], acks: list[tuple[int, str]], followed: list[tuple[int, str]]
) -> None:
    assert [e.position for e in stored] == list(range(1, len(stored) + 1)), "positions not dense"
    by_position = {e.position: e.id.hex for e in stored}
    assert len(set(by_position.values())) == len(stored), "an event stored twice"
    missing = [(p, i) for p, i in acks if by_position.get(p) != i]
    assert not missing, f"acknowledged but not stored as acknowledged: {missing[:5]}"
    assert followed == [(e.position, e.id.hex) for e in stored], "the follower's view differs"


async def _run(
    spec: str,
    *,
    per_writer: int = PER_WRITER,
    kill_after: int | None = None,
    restart: PostgresServer | None = None,
) -> None:
    """Writers and a follower on ``spec``; SIGKILL writer 0 after ``kill_after`` acks,
    or restart the server once every writer has some acks."""
    async with _open(spec):
        pass  # created before the follower opens it read-only
    async with (
        trio.open_nursery() as nursery,
        _process(nursery, "follow", spec) as (follower, followed),
    ):
        with trio.fail_after(30):
            await followed.ready.wait()
        writers = []
        async with _process(nursery, "write", spec, "0", str(per_writer)) as first:
            writers.append(first)
            async with (
                _process(nursery, "write", spec, "1", str(per_writer)) as second,
                _process(nursery, "write", spec, "2", str(per_writer)) as third,
                _process(nursery, "write", spec, "3", str(per_writer)) as fourth,
            ):
                writers += [second, third, fourth]
                with trio.fail_after(120):
                    if kill_after is not None:
                        await first[1].wait_lines(kill_after)
                        first[0].send_signal(signal.SIGKILL)
                        assert await first[0].wait() == -signal.SIGKILL
                    if restart is not None:
                        for _, output in writers:
                            await output.wait_lines(10)
                        await trio.to_thread.run_sync(restart.restart)
                    for index, (process, _) in enumerate(writers):
                        code = await process.wait()
                        if index > 0 or kill_after is None:
                            assert code == 0, f"writer {index} exited with {code}"
        acks = [line for _, output in writers for line in output.lines]
        if kill_after is None:
            assert len(acks) == WRITERS * per_writer
        if restart is not None:
            # The restart came while they wrote: they had to retry.
            assert sum(output.retries for _, output in writers) > 0
        stored = await _stored(spec)
        with trio.fail_after(60):
            await followed.wait_lines(len(stored))
        follower.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await follower.wait() == 0
    _check(stored, acks, followed.lines)


async def test_four_writer_processes_and_a_follower_share_one_log(spec: str) -> None:
    await _run(spec)


async def test_a_writer_killed_in_the_middle_of_its_batches_loses_nothing_acknowledged(
    spec: str,
) -> None:
    await _run(spec, kill_after=60)


async def test_a_server_restarted_under_the_writers_loses_nothing_acknowledged(
    private_postgres: PostgresServer,
) -> None:
    await _run(private_postgres.dsn, per_writer=1000, restart=private_postgres)

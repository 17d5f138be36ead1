"""Scripted children for runtime tests: they record what happens to them."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from trio_smith import ChildSpec, Restart, current_child


class Boom(Exception):
    """The error scripted children raise."""


class Log:
    """A shared record of child events, in order, with the virtual time of each."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.times: list[float] = []

    def add(self, kind: str, child_id: str) -> None:
        self.events.append((kind, child_id))
        self.times.append(trio.current_time())

    def of(self, kind: str) -> list[str]:
        return [child_id for k, child_id in self.events if k == kind]

    def clear(self) -> None:
        self.events.clear()
        self.times.clear()


class Control:
    """Tell scripted children, by id, to crash or return (one order per incarnation)."""

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._what: dict[str, str] = {}

    def order(self, child_id: str, what: str) -> None:
        self._what[child_id] = what
        self._events.setdefault(child_id, trio.Event()).set()

    async def wait(self, child_id: str) -> str:
        await self._events.setdefault(child_id, trio.Event()).wait()
        del self._events[child_id]
        return self._what.pop(child_id)


def worker(log: Log, control: Control | None = None) -> Callable[..., Awaitable[None]]:
    """A child that records start/stop and obeys ``control`` ("crash" or "return")."""

    async def child(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        me = current_child().id
        log.add("start", me)
        task_status.started()
        try:
            if control is None:
                await trio.sleep_forever()
            what = await control.wait(me)
            if what == "crash":
                raise Boom(f"{me} crashed")
        finally:
            log.add("stop", me)

    return child


def specs(
    log: Log,
    ids: str,
    control: Control | None = None,
    *,
    restart: Restart = Restart.PERMANENT,
    shutdown: float | None = None,
) -> list[ChildSpec]:
    """One scripted worker spec per character of ``ids``."""
    return [ChildSpec(i, worker(log, control), restart=restart, shutdown=shutdown) for i in ids]


async def settle() -> None:
    """Let every task run until all are blocked."""
    await trio.testing.wait_all_tasks_blocked()


async def sleep_forever(*_: Any) -> None:
    await trio.sleep(math.inf)

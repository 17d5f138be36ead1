"""A real-time limit for async tests that does not break trio.

pytest-timeout's signal method interrupts ``trio.run`` from a signal handler
and leaves trio's global state corrupted ("Attempted to call run() from inside
a run()" in every later test), and ``trio.fail_after`` runs in virtual time
under ``autojump_clock``. So the limit is a real ``threading.Timer`` that
reaches into the run through ``TrioToken.run_sync_soon`` and cancels the
test's own cancel scope; the test then fails with a clear message.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import pytest
import trio


class _Timer(Protocol):
    def start(self) -> None: ...
    def cancel(self) -> None: ...


TimerFactory = Callable[[float, Callable[[], None]], _Timer]


def _thread_timer(seconds: float, callback: Callable[[], None]) -> _Timer:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    return timer


def with_real_time_limit(
    fn: Callable[..., Awaitable[object]],
    seconds: float,
    timer_factory: TimerFactory = _thread_timer,
) -> Callable[..., Awaitable[None]]:
    """Wrap an async test so that it fails after ``seconds`` of real time."""

    @functools.wraps(fn)
    async def limited(**kwargs: Any) -> None:
        token = trio.lowlevel.current_trio_token()
        expired = threading.Event()

        with trio.CancelScope() as scope:

            def expire() -> None:
                expired.set()
                scope.cancel(reason="real-time test limit")

            def from_thread() -> None:
                # RunFinishedError: the test ended as the timer fired.
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(expire)

            timer = timer_factory(seconds, from_thread)
            timer.start()
            try:
                await fn(**kwargs)
            finally:
                timer.cancel()
        if expired.is_set():
            pytest.fail(f"test ran for more than {seconds} s of real time")

    return limited

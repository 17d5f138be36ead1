"""The real-time test limit cancels a hung trio test without breaking trio."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from ._limits import with_real_time_limit


class _ManualTimer:
    """A timer that fires when the test says so, from a real thread."""

    def __init__(self, seconds: float, callback: Callable[[], None]) -> None:
        self.seconds = seconds
        self.callback = callback
        self.cancelled = False

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        self.cancelled = True


async def test_limit_cancels_a_test_hung_under_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timers: list[_ManualTimer] = []

    def factory(seconds: float, callback: Callable[[], None]) -> _ManualTimer:
        timers.append(_ManualTimer(seconds, callback))
        return timers[-1]

    async def hung() -> None:
        await trio.sleep_forever()  # no deadline: autojump never ends this

    limited = with_real_time_limit(hung, 2.5, factory)
    async with trio.open_nursery() as nursery:

        async def run_limited() -> None:
            with pytest.raises(pytest.fail.Exception, match=r"more than 2\.5 s of real time"):
                await limited()

        nursery.start_soon(run_limited)
        await trio.testing.wait_all_tasks_blocked()
        [timer] = timers
        assert timer.seconds == 2.5
        await trio.to_thread.run_sync(timer.callback)  # fire from a real thread
    assert timer.cancelled


async def test_limit_lets_a_quick_test_pass_and_stops_its_timer() -> None:
    timers: list[_ManualTimer] = []

    def factory(seconds: float, callback: Callable[[], None]) -> _ManualTimer:
        timers.append(_ManualTimer(seconds, callback))
        return timers[-1]

    ran: list[int] = []

    async def quick(x: int) -> None:
        await trio.lowlevel.checkpoint()
        ran.append(x)

    await with_real_time_limit(quick, 1.0, factory)(x=7)
    assert ran == [7]
    assert timers[0].cancelled


def test_trio_still_runs_after_a_limited_test_was_cancelled() -> None:
    # The failure mode of pytest-timeout's signal method: trio left "inside a run".
    async def main() -> int:
        await trio.lowlevel.checkpoint()
        return 42

    assert trio.run(main) == 42

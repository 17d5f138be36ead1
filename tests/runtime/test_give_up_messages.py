"""Giving up after normal exits says so: in the error, its records and the log.

A PERMANENT child that returns is restarted (OTP R3.2) and the restart
counts toward intensity (R5.1), so a worker that simply finishes, or whose
input channel was closed, makes its supervisor give up within
milliseconds. The error and the log line count the restarts that followed a
normal return and those that followed a failure, and say what to use.
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from trio_smith import (
    Backoff,
    ChildSpec,
    RestartIntensityExceeded,
    RestartRecord,
    Supervisor,
)

ADVICE = (
    "a PERMANENT child is restarted when it returns; use Restart.TRANSIENT or "
    "Restart.TEMPORARY for a child that may finish"
)


async def returns() -> None:
    await trio.lowlevel.checkpoint()


def gave_up_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The give-up lines of the supervisor logger (errors, as every give-up)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "trio_smith.supervisor"
        and r.levelno == logging.ERROR
        and "gave up" in r.getMessage()
    ]


async def test_a_permanent_child_that_returns_gives_up_saying_it_returned(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([ChildSpec("worker", returns)], name="app"):
            await trio.sleep_forever()
    message = (
        "restart intensity exceeded: 4 restarts within 5.0 s (max_restarts=3); the last one "
        "was for child 'worker'; 4 came after a normal return (child 'worker' returned "
        f"4 times) and 0 after a failure: {ADVICE}"
    )
    assert str(info.value) == message
    assert info.value.normal_exits == 4
    assert info.value.restarts == tuple(
        RestartRecord(at=0.0, child_id="worker", normal_exit=True) for _ in range(4)
    )
    assert info.value.__cause__ is None  # no error: it returned
    assert gave_up_lines(caplog) == [f"supervisor 'app' gave up: {message}"]


async def test_a_worker_whose_channel_was_closed_gives_up_saying_it_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The case from the field: the producer went away, the consumer's loop
    # ends at once, and every restart ends at once too.
    send, receive = trio.open_memory_channel[int](1)
    await send.aclose()

    async def consume() -> None:
        async for _ in receive:
            pass

    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([ChildSpec("consumer", consume)], max_restarts=5, within=1.0):
            await trio.sleep_forever()
    assert str(info.value) == (
        "restart intensity exceeded: 6 restarts within 1.0 s (max_restarts=5); the last one "
        "was for child 'consumer'; 6 came after a normal return (child 'consumer' returned "
        f"6 times) and 0 after a failure: {ADVICE}"
    )


async def test_failures_alone_keep_the_plain_message(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def crashes() -> None:
        await trio.sleep(0.1)
        raise ValueError("boom")

    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([ChildSpec("c", crashes)], name="app", max_restarts=2):
            await trio.sleep_forever()
    message = (
        "restart intensity exceeded: 3 restarts within 5.0 s (max_restarts=2); the last one "
        "was for child 'c'"
    )
    assert str(info.value) == message
    assert info.value.normal_exits == 0
    assert not any(r.normal_exit for r in info.value.restarts)
    assert gave_up_lines(caplog) == [f"supervisor 'app' gave up: {message}"]


async def test_mixed_exits_give_both_counts_and_every_child_that_returned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def alternates() -> None:
        nonlocal runs
        runs += 1
        await trio.sleep(0.1)
        if runs % 2:
            raise ValueError("odd run")

    async def returns_later() -> None:
        await trio.sleep(0.25)

    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor(
            [ChildSpec("a", alternates), ChildSpec("b", returns_later)], max_restarts=4
        ):
            await trio.sleep_forever()
    # a fails at 0.1, returns at 0.2, fails at 0.3, returns at 0.4; b returns
    # at 0.25: the fifth restart (a's, at 0.4) is one too many.
    assert [(r.child_id, r.normal_exit) for r in info.value.restarts] == [
        ("a", False),
        ("a", True),
        ("b", True),
        ("a", False),
        ("a", True),
    ]
    assert str(info.value) == (
        "restart intensity exceeded: 5 restarts within 5.0 s (max_restarts=4); the last one "
        "was for child 'a'; 3 came after a normal return (child 'a' returned 2 times, "
        f"child 'b' returned once) and 2 after a failure: {ADVICE}"
    )
    assert info.value.normal_exits == 3


async def test_a_retry_after_a_failed_start_counts_as_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = 0

    async def returns_then_cannot_start(task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        if starts > 1:
            raise OSError("port in use")
        task_status.started()
        await trio.sleep(1)

    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([ChildSpec("w", returns_then_cannot_start)], max_restarts=1):
            await trio.sleep_forever()
    assert str(info.value) == (
        "restart intensity exceeded: 2 restarts within 5.0 s (max_restarts=1); the last one "
        "was for child 'w'; 1 came after a normal return (child 'w' returned once) and "
        f"1 after a failure: {ADVICE}"
    )
    assert isinstance(info.value.__cause__, OSError)


async def test_a_backoff_restart_after_a_normal_return_says_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The restart is counted when its delay is over (D8): it still knows why.
    child = ChildSpec("w", returns, backoff=Backoff(initial=1.0, maximum=1.0, jitter=0.0))
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([child], max_restarts=0, within=10.0):
            await trio.sleep_forever()
    assert str(info.value) == (
        "restart intensity exceeded: 1 restarts within 10.0 s (max_restarts=0); the last one "
        "was for child 'w'; 1 came after a normal return (child 'w' returned once) and "
        f"0 after a failure: {ADVICE}"
    )
    assert trio.current_time() == 1.0

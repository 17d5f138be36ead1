"""The bulkhead: resilience4j's bulkhead tests ported to trio, and trio's own cases.

Every time is on ``autojump_clock`` and exact. Tasks that hold a permit use
``async with bulkhead:`` and wait on a ``trio.Event`` to end their call.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith.events import Event, EventBus
from trio_smith.resilience import (
    Bulkhead,
    BulkheadEvent,
    BulkheadFull,
    BulkheadStatistics,
    CallTimedOut,
    CircuitBreaker,
    CircuitState,
    TimeLimiter,
)

from ..publisher import Recorder
from ._telemetry import Seen, recording

CALL = ("trio_smith", "bulkhead", "call")
PERMITTED = "bulkhead.call_permitted"
REJECTED = "bulkhead.call_rejected"
FINISHED = "bulkhead.call_finished"


@pytest.fixture
def seen() -> Iterator[Seen]:
    """The bulkhead's telemetry events, while this test runs."""
    with recording(CALL) as got:
        yield got


def available(bulkhead: Bulkhead) -> int:
    return bulkhead.statistics().available_concurrent_calls


def counts(bulkhead: Bulkhead) -> tuple[int, int, int]:
    """(permitted, rejected, finished)."""
    stats = bulkhead.statistics()
    return stats.permitted_calls, stats.rejected_calls, stats.finished_calls


def waiting(bulkhead: Bulkhead) -> int:
    return bulkhead.statistics().waiting_calls


async def answer() -> str:
    return "Hello world"


async def boom() -> None:
    raise RuntimeError("BAM!")


class Holder:
    """A task that enters the bulkhead and holds its permit until told to end."""

    def __init__(self, bulkhead: Bulkhead, label: str, log: list[tuple[str, str, float]]) -> None:
        self.bulkhead = bulkhead
        self.label = label
        self.log = log
        self.release = trio.Event()
        self.scope = trio.CancelScope()

    async def run(self) -> None:
        with self.scope:
            try:
                async with self.bulkhead:
                    self.log.append(("in", self.label, trio.current_time()))
                    await self.release.wait()
                self.log.append(("out", self.label, trio.current_time()))
            except BulkheadFull:
                self.log.append(("full", self.label, trio.current_time()))
                return
        if self.scope.cancelled_caught:
            self.log.append(("cancelled", self.label, trio.current_time()))


async def start_holders(
    nursery: trio.Nursery, bulkhead: Bulkhead, labels: str, log: list[tuple[str, str, float]]
) -> dict[str, Holder]:
    """Start one holder per letter, in order, each after the previous has entered or parked."""
    holders = {}
    for label in labels:
        holder = Holder(bulkhead, label, log)
        holders[label] = holder
        nursery.start_soon(holder.run)
        await trio.testing.wait_all_tasks_blocked()
    return holders


# ---------------------------------------------------------------- configuration


def test_defaults() -> None:
    """resilience4j BulkheadConfigTest (defaults: 25 calls, no wait, fair)."""
    bulkhead = Bulkhead()
    assert bulkhead.name == "bulkhead"
    assert bulkhead.max_concurrent_calls == 25
    assert bulkhead.max_wait == 0.0
    assert bulkhead.statistics() == BulkheadStatistics(
        name="bulkhead",
        max_concurrent_calls=25,
        available_concurrent_calls=25,
        waiting_calls=0,
        permitted_calls=0,
        rejected_calls=0,
        finished_calls=0,
        events_dropped=0,
    )


def test_the_configuration_is_kept() -> None:
    """resilience4j BulkheadConfigTest (66 calls, 555 ms; 0 calls allowed)."""
    bulkhead = Bulkhead("b", max_concurrent_calls=66, max_wait=0.555)
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait) == (66, 0.555)
    assert Bulkhead("b", max_concurrent_calls=0).max_concurrent_calls == 0
    assert isinstance(Bulkhead("b", max_wait=1).max_wait, float)


BAD_ARGUMENTS = [
    (dict(max_concurrent_calls=-1), "max_concurrent_calls must be an int >= 0, got -1"),
    (dict(max_concurrent_calls=1.0), "max_concurrent_calls must be an int >= 0, got 1.0"),
    (dict(max_concurrent_calls=True), "max_concurrent_calls must be an int >= 0, got True"),
    (dict(max_concurrent_calls="2"), "max_concurrent_calls must be an int >= 0, got '2'"),
    (dict(max_wait=-1), "max_wait must be a finite number >= 0, got -1"),
    (dict(max_wait=-0.001), "max_wait must be a finite number >= 0, got -0.001"),
    (dict(max_wait=math.nan), "max_wait must be a finite number >= 0, got nan"),
    (dict(max_wait=math.inf), "max_wait must be a finite number >= 0, got inf"),
    (dict(max_wait=False), "max_wait must be a finite number >= 0, got False"),
    (dict(max_wait="1"), "max_wait must be a finite number >= 0, got '1'"),
]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(name=""), ValueError, "name must be a non-empty str, got ''"),
        (dict(name=3), ValueError, "name must be a non-empty str, got 3"),
        (
            dict(max_concurrent_calls=None),
            ValueError,
            "max_concurrent_calls must be an int >= 0, got None",
        ),
        (dict(max_wait=None), ValueError, "max_wait must be a finite number >= 0, got None"),
        *((options, ValueError, message) for options, message in BAD_ARGUMENTS),
        (
            dict(events=object),
            TypeError,
            "events must have a publish_nowait method, got <class 'object'>",
        ),
        (dict(call_events=1, events=Recorder()), TypeError, "call_events must be a bool, got 1"),
        (dict(call_events=None), TypeError, "call_events must be a bool, got None"),
        (
            dict(call_events=True),
            ValueError,
            "call_events=True needs a publisher, but events is None",
        ),
    ],
)
def test_bad_arguments_are_refused_with_their_names(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """resilience4j BulkheadConfigTest (-1 calls, -1 ms, -1 s are refused)."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        Bulkhead(**options)


@pytest.mark.parametrize(("options", "message"), BAD_ARGUMENTS)
def test_change_refuses_bad_arguments_and_changes_nothing(
    options: dict[str, Any], message: str
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=3, max_wait=5.0)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        bulkhead.change(**{"max_concurrent_calls": 4, "max_wait": 6.0, **options})
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait) == (3, 5.0)


# ---------------------------------------------------------------- admission and refusal


async def test_basic_operations_and_their_events() -> None:
    """resilience4j SemaphoreBulkheadTest.shouldHandleBasicBulkheadOperationsInBothThreadModes."""
    events = Recorder()
    bulkhead = Bulkhead("test", max_concurrent_calls=2, events=events, call_events=True)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "ab", log)
        assert available(bulkhead) == 0
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        holders["a"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert available(bulkhead) == 1
        holders["b"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert available(bulkhead) == 2
        assert await bulkhead.call(answer) == "Hello world"
    assert events.wire_names() == [
        PERMITTED,
        PERMITTED,
        REJECTED,
        FINISHED,
        FINISHED,
        PERMITTED,
        FINISHED,
    ]
    assert {e.source for e in events.events} == {"bulkhead/test"}
    assert counts(bulkhead) == (3, 1, 3)


async def test_zero_concurrent_calls_refuses_every_call() -> None:
    """resilience4j SemaphoreBulkheadTest.testZeroMaxConcurrentCalls."""
    bulkhead = Bulkhead("zero", max_concurrent_calls=0)
    ran: list[int] = []

    async def runs() -> None:
        ran.append(1)  # pragma: no cover

    for _ in range(3):
        with pytest.raises(BulkheadFull) as caught:
            await bulkhead.call(runs)
    assert caught.value.max_concurrent_calls == 0
    assert ran == []
    assert counts(bulkhead) == (0, 3, 0)


@pytest.mark.parametrize("max_wait", [0.01, 0.05])
async def test_a_waiter_is_refused_exactly_at_max_wait(
    autojump_clock: trio.testing.MockClock, seen: Seen, max_wait: float
) -> None:
    """resilience4j SemaphoreBulkheadTest.testEntryTimeout.

    And SemaphoreBulkheadTest.shouldHandleTimeoutBehaviorConsistentlyInBothThreadModes.
    """
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=max_wait, events=events)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "a", log)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        assert trio.current_time() == max_wait
        holders["a"].release.set()
    assert events.wire_names() == [REJECTED]
    assert events.events[0].payload == {
        "bulkhead": "b",
        "max_concurrent_calls": 1,
        "wait": max_wait,
    }
    assert seen[0] == (
        {"wait": max_wait, "duration": 0.0},
        {"bulkhead": "b", "outcome": "rejected"},
    )


async def test_a_full_bulkhead_refuses_with_bulkhead_full_and_the_callee_does_not_run() -> None:
    """resilience4j BulkheadTest.shouldReturnFailureWithBulkheadFullException."""
    bulkhead = Bulkhead("test", max_concurrent_calls=2)
    ran: list[int] = []

    async def runs() -> None:
        ran.append(1)  # pragma: no cover

    async with bulkhead, bulkhead:
        with pytest.raises(BulkheadFull) as caught:
            await bulkhead.call(runs)
        with pytest.raises(BulkheadFull):
            async with bulkhead:
                ran.append(2)  # pragma: no cover
    error = caught.value
    assert str(error) == "bulkhead 'test' is full and does not permit further calls"
    assert (error.bulkhead, error.max_concurrent_calls) == ("test", 2)
    assert isinstance(error, RuntimeError)
    assert error.__context__ is None
    assert ran == []
    assert available(bulkhead) == 2


async def test_a_full_bulkhead_refuses_at_once_while_a_call_runs() -> None:
    """resilience4j CoroutineBulkheadTest "should not execute function when full"."""
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    ran: list[str] = []

    async def b_call() -> None:
        ran.append("b")  # pragma: no cover

    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.call(b_call)
        assert counts(bulkhead) == (1, 1, 0)
    assert ran == []
    assert counts(bulkhead) == (1, 1, 1)


async def test_a_refusal_is_a_checkpoint_and_an_admission_is_not() -> None:
    """Like the breaker's refusals (docs/design.md T6); the admitted call checkpoints itself."""
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    with trio.testing.assert_no_checkpoints():
        assert await bulkhead.call(answer) == "Hello world"
        async with bulkhead:
            pass
    async with bulkhead:
        with trio.testing.assert_checkpoints(), pytest.raises(BulkheadFull):
            await bulkhead.call(answer)


async def test_a_call_cancelled_at_the_refusal_checkpoint_is_not_counted(
    seen: Seen,
) -> None:
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=0, events=events)
    with trio.CancelScope() as scope:
        scope.cancel()
        await bulkhead.call(answer)
    assert scope.cancelled_caught
    assert counts(bulkhead) == (0, 0, 0)
    assert events.events == []
    assert seen == []


# ---------------------------------------------------------------- outcomes


async def test_a_call_returns_its_result_and_gives_the_permit_back() -> None:
    """resilience4j BulkheadTest.shouldDecorateSupplierAndReturnWithSuccess.

    And its Callable, Runnable and Function variants: here call(), the
    decorator and ``async with``.
    """
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    assert await bulkhead.call(answer) == "Hello world"
    assert available(bulkhead) == 1
    decorated = bulkhead(answer)
    assert await decorated() == "Hello world"
    async with bulkhead as entered:
        assert entered is bulkhead
        assert available(bulkhead) == 0
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (3, 0, 3)


async def test_an_error_propagates_and_gives_the_permit_back() -> None:
    """resilience4j BulkheadTest.shouldDecorateSupplierAndReturnWithException.

    And CoroutineBulkheadTest "should execute unsuccessful function".
    """
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    with pytest.raises(RuntimeError, match=r"^BAM!$"):
        await bulkhead.call(boom)
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (1, 0, 1)


async def test_an_error_with_another_permit_taken() -> None:
    """resilience4j BulkheadTest.shouldReturnFailureWithRuntimeException."""
    bulkhead = Bulkhead("b", max_concurrent_calls=2)
    async with bulkhead:
        with pytest.raises(RuntimeError):
            await bulkhead.call(boom)
        assert available(bulkhead) == 1


async def test_a_callable_that_fails_before_its_coroutine_gives_the_permit_back() -> None:
    """resilience4j BulkheadTest.shouldDecorateCompletionStageAndReturnWithExceptionAtSyncStage."""
    bulkhead = Bulkhead("b", max_concurrent_calls=1)

    async def one(x: int) -> int:
        return x  # pragma: no cover

    with pytest.raises(TypeError):
        await bulkhead.call(one)  # a missing argument: fails when called
    assert available(bulkhead) == 1


async def test_chained_bulkheads_both_give_their_permits_back() -> None:
    """resilience4j BulkheadTest.shouldChainDecoratedFunctions."""
    first = Bulkhead("first", max_concurrent_calls=1)
    second = Bulkhead("second", max_concurrent_calls=1)
    assert await first.call(second.call, answer) == "Hello world"
    assert (available(first), available(second)) == (1, 1)


async def test_a_permit_is_given_back_once_per_call() -> None:
    """resilience4j BulkheadFutureTest.shouldDecorateFutureAndBulkheadApplyOnceOnMultipleFutureEval.

    A permit belongs to its call: there is no public release that could
    over-release it (resilience4j BulkheadEventPublisherTest's bare
    ``onComplete()``).
    """
    bulkhead = Bulkhead("b", max_concurrent_calls=2)
    async with bulkhead:
        async with bulkhead:  # the same task, twice: two permits
            assert available(bulkhead) == 0
        assert available(bulkhead) == 1
    assert available(bulkhead) == 2
    for _ in range(3):
        await bulkhead.call(answer)
    assert available(bulkhead) == 2
    assert not hasattr(bulkhead, "release")
    assert not hasattr(bulkhead, "on_complete")


async def test_a_call_cancelled_while_it_runs_gives_the_permit_back_and_finishes(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """resilience4j BulkheadFutureTest.shouldReturnFailureWithFutureCancellationException.

    And the Kotlin adapter's executeSuspendFunction.

    Unlike the Kotlin adapter (``releasePermission``, no event), a cancelled
    call counts as finished and publishes ``call_finished``: every admitted
    call finishes, however it ends.
    """
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=1, events=events, call_events=True)
    with trio.move_on_after(1.0) as scope:
        await bulkhead.call(trio.sleep_forever)
    assert scope.cancelled_caught
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (1, 0, 1)
    assert events.wire_names() == [PERMITTED, FINISHED]
    assert seen == [({"wait": 0.0, "duration": 1.0}, {"bulkhead": "b", "outcome": "finished"})]


async def test_keyboard_interrupt_and_exception_groups_give_the_permit_back() -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1)

    async def interrupted() -> None:
        raise KeyboardInterrupt

    async def group() -> None:
        raise BaseExceptionGroup("g", [KeyboardInterrupt(), ValueError("v")])

    with pytest.raises(KeyboardInterrupt):
        await bulkhead.call(interrupted)
    with pytest.raises(BaseExceptionGroup):
        await bulkhead.call(group)
    with pytest.raises(KeyboardInterrupt):
        async with bulkhead:
            raise KeyboardInterrupt
    with pytest.RaisesGroup(ValueError, ValueError):
        async with bulkhead:
            raise ExceptionGroup("g", [ValueError("a"), ValueError("b")])
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (4, 0, 4)


class InterruptingPublisher(Recorder):
    """A publisher that raises KeyboardInterrupt on one kind of event."""

    def __init__(self, on: str) -> None:
        super().__init__()
        self.on = on

    def publish_nowait(self, event: Event) -> None:
        if event.type.wire == self.on:
            raise KeyboardInterrupt
        super().publish_nowait(event)


@pytest.mark.parametrize("on", [PERMITTED, FINISHED])
async def test_a_publisher_raising_keyboard_interrupt_leaks_no_permit(on: str) -> None:
    bulkhead = Bulkhead(
        "b", max_concurrent_calls=1, events=InterruptingPublisher(on), call_events=True
    )
    with pytest.raises(KeyboardInterrupt):
        await bulkhead.call(answer)
    assert available(bulkhead) == 1
    with pytest.raises(KeyboardInterrupt):
        async with bulkhead:
            pass
    assert available(bulkhead) == 1
    permitted, _, finished = counts(bulkhead)
    assert permitted == finished == 2


# ---------------------------------------------------------------- waiting in line


async def test_waiters_are_admitted_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=100.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "abcde", log)
        assert waiting(bulkhead) == 4
        for label in "abcde":
            await trio.sleep(1.0)
            holders[label].release.set()
    assert [(kind, label) for kind, label, _ in log if kind == "in"] == [
        ("in", label) for label in "abcde"
    ]
    assert [t for kind, _, t in log if kind == "in"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert counts(bulkhead) == (5, 0, 5)


async def test_a_newcomer_never_overtakes_a_waiter(autojump_clock: trio.testing.MockClock) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=10.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        # This task holds the only permit; w waits for it.
        async with bulkhead:
            holders = await start_holders(nursery, bulkhead, "w", log)
            assert waiting(bulkhead) == 1
        # The permit went to w, which has not even run yet: this newcomer,
        # in the same instant, finds none free.
        assert waiting(bulkhead) == 0
        assert available(bulkhead) == 0
        bulkhead.change(max_wait=0)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        holders["w"].release.set()
    assert log[0][:2] == ("in", "w")


async def test_a_cancelled_waiter_never_owns_a_permit_and_nobody_is_skipped(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    """resilience4j SemaphoreBulkheadTest.testTryEnterWithInterruptDuringTimeout.

    And SemaphoreBulkheadTest.testAcquireWithInterruptDuringTimeout.
    """
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=2.0, events=events)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "abcd", log)
        await trio.sleep(0.5)
        holders["b"].scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert waiting(bulkhead) == 2
        holders["a"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        holders["c"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        holders["d"].release.set()
    assert log == [
        ("in", "a", 0.0),
        ("cancelled", "b", 0.5),
        ("out", "a", 0.5),
        ("in", "c", 0.5),
        ("out", "c", 0.5),
        ("in", "d", 0.5),
        ("out", "d", 0.5),
    ]
    assert counts(bulkhead) == (3, 0, 3)
    assert events.events == []
    assert [d["outcome"] for _, d in seen] == ["finished"] * 3
    assert available(bulkhead) == 1


async def test_a_permit_handed_over_then_cancelled_in_the_same_round_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=10.0)
    started: list[float] = []
    waiter_scope = trio.CancelScope()

    async def callee() -> None:
        started.append(trio.current_time())
        await trio.sleep(1.0)  # the pending cancellation is delivered here

    async def waiter() -> None:
        with waiter_scope:
            await bulkhead.call(callee)

    async with trio.open_nursery() as nursery:
        async with bulkhead:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert waiting(bulkhead) == 1
        # The permit was handed to the waiter; it is cancelled before it runs.
        waiter_scope.cancel()
    assert waiter_scope.cancelled_caught
    # It owned the permit: its call began (trio delivers the cancellation at
    # the first checkpoint), and the permit came back.
    assert started == [0.0]
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (2, 0, 2)


async def test_an_outer_cancellation_at_max_wait_wins_over_the_refusal(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=0, max_wait=1.0, events=events)
    with trio.move_on_after(1.0) as outer:
        await bulkhead.call(answer)
    assert outer.cancelled_caught
    with trio.move_on_after(1.0) as outer:
        async with bulkhead:
            pass  # pragma: no cover
    assert outer.cancelled_caught
    assert counts(bulkhead) == (0, 0, 0)
    assert events.events == []
    assert seen == []
    assert waiting(bulkhead) == 0


async def test_a_release_at_the_waiter_s_deadline_comes_too_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A release in the instant of the waiter's deadline: trio sees the deadline first."""
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=1.0)

    async def hold() -> None:
        await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bulkhead.call, hold)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
    assert trio.current_time() == 1.0
    assert available(bulkhead) == 1
    assert counts(bulkhead) == (1, 1, 1)


async def test_statistics_while_calls_wait(autojump_clock: trio.testing.MockClock) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=2, max_wait=5.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "abcd", log)
        assert bulkhead.statistics() == BulkheadStatistics(
            name="b",
            max_concurrent_calls=2,
            available_concurrent_calls=0,
            waiting_calls=2,
            permitted_calls=2,
            rejected_calls=0,
            finished_calls=0,
            events_dropped=0,
        )
        await trio.sleep(10.0)
        assert bulkhead.statistics().waiting_calls == 0
        assert counts(bulkhead) == (2, 2, 0)
        for holder in holders.values():
            holder.release.set()
    assert [kind for kind, _, _ in log] == ["in", "in", "full", "full", "out", "out"]


async def test_telemetry_of_a_wait_then_a_call(
    autojump_clock: trio.testing.MockClock, seen: Seen
) -> None:
    events = Recorder()
    bulkhead = Bulkhead("db", max_concurrent_calls=1, max_wait=5.0, events=events, call_events=True)

    async def hold(seconds: float) -> None:
        await trio.sleep(seconds)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bulkhead.call, hold, 2.0)
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.5)
        await bulkhead.call(hold, 3.0)  # waits 1.5 s, runs 3 s
    assert trio.current_time() == 5.0
    assert seen == [
        ({"wait": 0.0, "duration": 2.0}, {"bulkhead": "db", "outcome": "finished"}),
        ({"wait": 1.5, "duration": 3.0}, {"bulkhead": "db", "outcome": "finished"}),
    ]
    assert events.wire_names() == [PERMITTED, FINISHED, PERMITTED, FINISHED]
    assert [e.payload for e in events.events] == [
        {"bulkhead": "db", "max_concurrent_calls": 1, "wait": 0.0},
        {"bulkhead": "db", "max_concurrent_calls": 1, "wait": 0.0},
        {"bulkhead": "db", "max_concurrent_calls": 1, "wait": 1.5},
        {"bulkhead": "db", "max_concurrent_calls": 1, "wait": 1.5},
    ]


async def test_by_default_only_refusals_are_published(seen: Seen) -> None:
    events = Recorder()
    bulkhead = Bulkhead("b", max_concurrent_calls=1, events=events)
    await bulkhead.call(answer)
    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
    assert events.wire_names() == [REJECTED]
    assert events.events[0].type == BulkheadEvent.CALL_REJECTED
    # A refusal at once waited for no permit, on the real clock too (its
    # checkpoint is not a wait).
    assert events.events[0].payload["wait"] == 0.0
    rejected = [m for m, d in seen if d["outcome"] == "rejected"]
    assert rejected == [{"wait": 0.0, "duration": 0.0}]


async def test_events_reach_a_real_bus() -> None:
    async with EventBus() as bus:
        subscription = bus.subscribe()
        bulkhead = Bulkhead("b", max_concurrent_calls=0, events=bus)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        event = subscription.receive_nowait()
    assert event.type == BulkheadEvent.CALL_REJECTED
    assert event.payload == {"bulkhead": "b", "max_concurrent_calls": 0, "wait": 0.0}


async def test_a_refusing_publisher_never_affects_a_call() -> None:
    events = Recorder(refuse=True)
    bulkhead = Bulkhead("b", max_concurrent_calls=1, events=events, call_events=True)
    assert await bulkhead.call(answer) == "Hello world"
    async with bulkhead:
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
    assert events.tries == 5
    assert bulkhead.statistics().events_dropped == 5
    assert available(bulkhead) == 1


# ---------------------------------------------------------------- change()


def test_changing_the_limit_while_idle_keeps_the_wait() -> None:
    """resilience4j SemaphoreBulkheadTest.changePermissionsInIdleState."""
    bulkhead = Bulkhead("b", max_concurrent_calls=3, max_wait=5.0)
    bulkhead.change(max_concurrent_calls=5)
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait, available(bulkhead)) == (5, 5.0, 5)
    bulkhead.change(max_concurrent_calls=2)
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait, available(bulkhead)) == (2, 5.0, 2)


def test_changing_the_wait_while_idle_keeps_the_limit() -> None:
    """resilience4j SemaphoreBulkheadTest.changeWaitTimeInIdleState."""
    bulkhead = Bulkhead("b", max_concurrent_calls=3, max_wait=5.0)
    bulkhead.change(max_wait=3.0)
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait) == (3, 3.0)
    bulkhead.change(max_wait=7)
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait) == (3, 7.0)
    bulkhead.change()
    assert (bulkhead.max_concurrent_calls, bulkhead.max_wait) == (3, 7.0)


async def test_changing_the_limit_while_a_call_holds_a_permit() -> None:
    """Ported from resilience4j SemaphoreBulkheadTest:
    changePermissionsCountWhileOneThreadIsRunningWithThisPermission.

    Lowering the limit never blocks the changer (resilience4j's blocks
    until enough calls have finished); the available count stays at 0
    until the running calls are back under the new limit.
    """
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "a", log)
        assert available(bulkhead) == 0
        bulkhead.change(max_concurrent_calls=2)
        assert available(bulkhead) == 1
        holders.update(await start_holders(nursery, bulkhead, "b", log))
        assert available(bulkhead) == 0
        with trio.testing.assert_no_checkpoints():
            bulkhead.change(max_concurrent_calls=1)
        assert (bulkhead.max_concurrent_calls, available(bulkhead)) == (1, 0)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        holders["a"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert available(bulkhead) == 0  # b still runs: one of one
        holders["b"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert available(bulkhead) == 1


async def test_raising_the_limit_admits_a_waiter_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Ported from resilience4j SemaphoreBulkheadTest:
    changePermissionsCountWhileOneThreadIsWaitingForPermission.
    """
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=500.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "aw", log)
        await trio.sleep(1.0)
        assert waiting(bulkhead) == 1
        bulkhead.change(max_concurrent_calls=2)
        await trio.testing.wait_all_tasks_blocked()
        assert log[-1] == ("in", "w", 1.0)
        holders["w"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert available(bulkhead) == 1
        holders["a"].release.set()


async def test_raising_the_limit_admits_only_the_difference_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=500.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "abcde", log)
        bulkhead.change(max_concurrent_calls=3)
        await trio.testing.wait_all_tasks_blocked()
        # b and c, the first two in line, resume in the same instant, in
        # either order (trio's scheduler does not promise one).
        assert sorted(label for kind, label, _ in log if kind == "in") == ["a", "b", "c"]
        assert waiting(bulkhead) == 2
        bulkhead.change(max_concurrent_calls=0)
        for holder in holders.values():
            holder.release.set()
            await trio.testing.wait_all_tasks_blocked()
        # Lowered to 0: d and e wait on until their max_wait.
        assert waiting(bulkhead) == 2
        bulkhead.change(max_concurrent_calls=1)
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(label for kind, label, _ in log if kind == "in") == ["a", "b", "c", "d", "e"]


async def test_a_new_wait_applies_to_new_callers_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """resilience4j SemaphoreBulkheadTest.changeWaitingTimeWhileOneThreadIsWaitingForPermission."""
    bulkhead = Bulkhead("b", max_concurrent_calls=1, max_wait=500.0)
    log: list[tuple[str, str, float]] = []
    async with trio.open_nursery() as nursery:
        holders = await start_holders(nursery, bulkhead, "aw", log)
        bulkhead.change(max_wait=0)
        with pytest.raises(BulkheadFull):
            await bulkhead.call(answer)
        assert trio.current_time() == 0.0
        await trio.sleep(400.0)
        assert waiting(bulkhead) == 1  # w keeps its 500 s
        holders["a"].release.set()
        await trio.testing.wait_all_tasks_blocked()
        holders["w"].release.set()
    assert ("in", "w", 400.0) in log


async def test_zero_concurrent_calls_with_a_wait_refuse_at_max_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=0, max_wait=2.0)
    with pytest.raises(BulkheadFull):
        await bulkhead.call(answer)
    assert trio.current_time() == 2.0


# ---------------------------------------------------------------- forms


async def test_concurrent_async_with_blocks_in_many_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=2, max_wait=10.0)
    peak = 0
    inside = 0

    async def worker() -> None:
        nonlocal peak, inside
        async with bulkhead:
            inside += 1
            peak = max(peak, inside)
            await trio.sleep(1.0)
            inside -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(worker)
    assert peak == 2
    assert trio.current_time() == 3.0
    assert counts(bulkhead) == (6, 0, 6)


async def test_the_decorator_passes_arguments_and_keywords() -> None:
    bulkhead = Bulkhead("b", max_concurrent_calls=1)

    @bulkhead
    async def add(x: int, y: int = 0) -> int:
        """Adds."""
        assert available(bulkhead) == 0
        return x + y

    assert await add(1, y=2) == 3
    assert await add(4) == 4
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert await bulkhead.call(functools.partial(answer)) == "Hello world"
    assert counts(bulkhead) == (3, 0, 3)


def sync_fetch() -> str:
    return "fetched"  # pragma: no cover


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (3, "a bulkhead decorates an async function, got 3"),
        (
            sync_fetch,
            "a bulkhead decorates an async function, got the plain function "
            "'sync_fetch' (define it with async def)",
        ),
    ],
)
def test_the_decorator_refuses_what_is_not_an_async_function(fn: Any, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Bulkhead("b")(fn)


# ---------------------------------------------------------------- with a circuit breaker


async def test_refusals_inside_a_breaker_are_failures_unless_ignored() -> None:
    """resilience4j #1656: a saturated bulkhead inside a breaker opens it."""
    bulkhead = Bulkhead("b", max_concurrent_calls=0)
    breaker = CircuitBreaker("cb", sliding_window_size=2, minimum_calls=2)
    for _ in range(2):
        with pytest.raises(BulkheadFull):
            await breaker.call(bulkhead.call, answer)
    assert breaker.statistics().failed_calls == 2
    assert breaker.state is CircuitState.OPEN
    tolerant = CircuitBreaker(
        "tolerant", sliding_window_size=2, minimum_calls=2, ignore_exceptions=(BulkheadFull,)
    )
    for _ in range(2):
        with pytest.raises(BulkheadFull):
            await tolerant.call(bulkhead.call, answer)
    assert tolerant.statistics().buffered_calls == 0
    assert tolerant.state is CircuitState.CLOSED


async def test_an_outer_cancellation_through_the_stack_records_nothing_and_frees_the_permit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Breaker, then time limiter, then bulkhead; the caller gives up while the callee runs."""
    breaker = CircuitBreaker("cb", sliding_window_size=1, minimum_calls=1)
    limiter = TimeLimiter("t", timeout=10.0)
    bulkhead = Bulkhead("b", max_concurrent_calls=1)
    entered: list[float] = []

    async def callee() -> None:
        entered.append(trio.current_time())
        await trio.sleep_forever()

    with trio.move_on_after(1.0) as outer:
        await breaker.call(limiter.call, bulkhead.call, callee)
    assert outer.cancelled_caught
    assert entered == [0.0]
    assert breaker.statistics().buffered_calls == 0
    assert breaker.statistics().state is CircuitState.CLOSED
    assert limiter.statistics().timed_out_calls == 0
    assert available(bulkhead) == 1
    # The same stack's own timeout is a breaker failure, and frees the permit.
    with pytest.raises(CallTimedOut):
        await breaker.call(limiter.call, bulkhead.call, callee)
    assert breaker.state is CircuitState.OPEN
    assert available(bulkhead) == 1

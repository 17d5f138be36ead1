"""The trio runtime: start-up, restarts, ordered shutdown, escalation, nesting.

Every test runs on trio's MockClock (``autojump_clock``): no real sleeping.
"""

from __future__ import annotations

import logging
import math

import pytest
import trio
import trio.testing

from trio_smith import (
    AutoShutdown,
    Backoff,
    ChildFailureEscalated,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    NoCurrentChild,
    Restart,
    RestartIntensityExceeded,
    RestartRecord,
    Strategy,
    Supervisor,
    SupervisorGaveUp,
    SupervisorState,
    current_child,
)

from .helpers import Boom, Control, Log, settle, specs, worker

# ---------------------------------------------------------------- start-up


async def test_children_start_in_list_order_each_started_before_the_next(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    def slow_start(delay: float) -> ChildSpec:
        async def child(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            me = current_child().id
            log.add("begin", me)
            await trio.sleep(delay)
            log.add("started", me)
            task_status.started()
            await trio.sleep_forever()

        return ChildSpec(f"d{delay:g}", child)

    async with Supervisor([slow_start(3), slow_start(1), slow_start(2)]) as sup:
        assert log.events == [
            ("begin", "d3"),
            ("started", "d3"),
            ("begin", "d1"),
            ("started", "d1"),
            ("begin", "d2"),
            ("started", "d2"),
        ]
        assert trio.current_time() == 6
        await sup.shutdown()


async def test_a_child_without_task_status_counts_as_started_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def plain() -> None:
        log.add("start", current_child().id)
        await trio.sleep_forever()

    async with Supervisor([ChildSpec("a", plain), ChildSpec("b", plain)]) as sup:
        # Started as soon as spawned (their code may not have run yet).
        assert [i.status for i in sup.which_children()] == [ChildStatus.RUNNING] * 2
        await settle()
        assert sorted(log.of("start")) == ["a", "b"]
        await sup.shutdown()


async def test_start_failure_stops_started_children_in_reverse_and_raises_bare(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        raise Boom("no database")

    children = [*specs(log, "ab"), ChildSpec("db", broken), *specs(log, "c")]
    with pytest.raises(ChildStartFailed, match=r"^child 'db' failed to start$") as info:
        async with Supervisor(children):
            pytest.fail("the body must not run")  # pragma: no cover
    assert info.value.child_id == "db"
    assert isinstance(info.value.__cause__, Boom)
    assert log.events == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]


async def test_a_child_that_returns_before_started_is_ignored_and_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def ignore(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        return

    async with Supervisor([ChildSpec("x", ignore)]) as sup:
        [info] = sup.which_children()
        assert (info.id, info.status) == ("x", ChildStatus.STOPPED)
        await sup.shutdown()


async def test_calling_started_twice_is_the_childs_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def twice(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        task_status.started()

    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([ChildSpec("x", twice)], max_restarts=0):
            await trio.sleep_forever()
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert str(cause) == "called 'started' twice on the same task status"


# ---------------------------------------------------------------- restarts


async def test_one_for_one_restarts_only_the_failed_child(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_smith")
    log, control = Log(), Control()
    async with Supervisor(specs(log, "abc", control)) as sup:
        await settle()
        log.clear()
        control.order("b", "crash")
        await settle()
        assert log.events == [("stop", "b"), ("start", "b")]
        assert [(i.id, i.restarts) for i in sup.which_children()] == [
            ("a", 0),
            ("b", 1),
            ("c", 0),
        ]
        await sup.shutdown()
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "child 'b' of supervisor 'supervisor' failed"
    assert failure.exc_info is not None
    assert isinstance(failure.exc_info[1], Boom)
    restarts = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert restarts == ["restarting child 'b' of supervisor 'supervisor'"]


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            Strategy.ONE_FOR_ALL,
            [
                ("stop", "b"),
                ("stop", "c"),
                ("stop", "a"),
                ("start", "a"),
                ("start", "b"),
                ("start", "c"),
            ],
        ),
        (Strategy.REST_FOR_ONE, [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]),
    ],
)
async def test_group_restarts_stop_in_reverse_then_start_in_order(
    autojump_clock: trio.testing.MockClock, strategy: Strategy, expected: list[tuple[str, str]]
) -> None:
    log, control = Log(), Control()
    async with Supervisor(specs(log, "abc", control), strategy=strategy) as sup:
        await settle()
        log.clear()
        control.order("b", "crash")
        await settle()
        assert log.events == expected
        await sup.shutdown()


async def test_intensity_exceeded_stops_everyone_and_raises_bare_with_history(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor(specs(log, "abc", control), max_restarts=2, within=10.0):
            for t in range(3):
                await trio.sleep(1)
                control.order("b", "crash")
                await settle()
                assert t < 2 or False  # the third crash gives up: the body is cancelled
    error = info.value
    assert type(error) is RestartIntensityExceeded
    assert str(error) == (
        "restart intensity exceeded: 3 restarts within 10.0 s (max_restarts=2); "
        "the last one was for child 'b'"
    )
    assert error.child_id == "b"
    assert isinstance(error.__cause__, Boom)
    assert error.restarts == tuple(RestartRecord(at=float(t), child_id="b") for t in (1, 2, 3))
    assert (error.max_restarts, error.within) == (2, 10.0)
    assert log.events[-3:] == [("stop", "b"), ("stop", "c"), ("stop", "a")]


async def test_escalate_gives_up_at_the_first_abnormal_exit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    with pytest.raises(ChildFailureEscalated) as info:
        async with Supervisor(specs(log, "ab", control), strategy=Strategy.ESCALATE):
            control.order("a", "crash")
            await trio.sleep_forever()
    assert str(info.value) == "child 'a' failed and the strategy is ESCALATE"
    assert isinstance(info.value, SupervisorGaveUp)
    assert isinstance(info.value.__cause__, Boom)
    assert log.events == [("start", "a"), ("start", "b"), ("stop", "a"), ("stop", "b")]


async def test_backoff_delays_each_restart_on_trios_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    backoff = Backoff(initial=1.0, multiplier=2.0, maximum=10.0, reset_after=100.0)
    async with Supervisor(specs(log, "a", control), backoff=backoff, max_restarts=10) as sup:
        for _ in range(3):
            control.order("a", "crash")
            await settle()
            assert sup.which_children()[0].status is ChildStatus.RESTARTING
            await trio.sleep(5)
        starts = [t for (kind, _), t in zip(log.events, log.times, strict=True) if kind == "start"]
        # Crashes at 0, 5 and 10; delays 1, 2 and 4 (Akka K3).
        assert starts == [0.0, 1.0, 7.0, 14.0]
        await sup.shutdown()


async def test_transient_returns_for_good_and_temporary_is_removed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    children = [
        *specs(log, "t", control, restart=Restart.TRANSIENT),
        *specs(log, "x", control, restart=Restart.TEMPORARY),
    ]
    async with Supervisor(children) as sup:
        control.order("t", "return")
        control.order("x", "crash")
        await settle()
        assert [(i.id, i.status) for i in sup.which_children()] == [("t", ChildStatus.STOPPED)]
        assert sup.statistics().restarts == 0
        await sup.shutdown()


async def test_auto_shutdown_ends_the_supervisor_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    children = [
        *specs(log, "a", control),
        ChildSpec("s", worker(log, control), restart=Restart.TRANSIENT, significant=True),
    ]
    async with Supervisor(children, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT) as sup:
        control.order("s", "return")
    assert sup.statistics().state is SupervisorState.STOPPED
    assert log.events[-1] == ("stop", "a")


# ---------------------------------------------------------------- shutdown


async def test_shutdown_stops_in_reverse_start_order_and_exits_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    async with Supervisor(specs(log, "abcd")) as sup:
        await settle()
        log.clear()
        await sup.shutdown()
        assert log.events == [("stop", "d"), ("stop", "c"), ("stop", "b"), ("stop", "a")]
        assert sup.statistics().state is SupervisorState.STOPPED
        await sup.shutdown()  # idempotent


async def test_an_error_in_the_body_stops_children_in_order_then_propagates_bare(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with pytest.raises(Boom, match=r"^body$"):
        async with Supervisor(specs(log, "abc")):
            await settle()
            raise Boom("body")
    assert log.events[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_outer_cancellation_stops_children_in_order_and_is_absorbed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with trio.move_on_after(5) as scope:
        async with Supervisor(specs(log, "abc")):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert log.events[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]


async def test_outer_cancellation_waits_for_graceful_children_shielded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def graceful() -> None:
        me = current_child().id
        log.add("start", me)
        await current_child().stop_requested.wait()
        await trio.sleep(2)  # cleaning up, under outer cancellation
        log.add("stop", me)

    children = [ChildSpec(i, graceful, shutdown=10) for i in "ab"]
    with trio.move_on_after(1):
        async with Supervisor(children):
            await trio.sleep_forever()
    # They began in either order (no task_status); they stop in reverse order.
    assert log.events[2:] == [("stop", "b"), ("stop", "a")]
    assert log.times[2:] == [3.0, 5.0]


async def test_shutdown_zero_cancels_at_once(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()

    async def stubborn() -> None:
        log.add("start", current_child().id)
        try:
            await trio.sleep_forever()
        finally:
            log.add("stop", current_child().id)

    async with Supervisor([ChildSpec("a", stubborn, shutdown=0)]) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    assert log.times == [0.0, 1.0]


async def test_shutdown_timeout_asks_then_cancels_after_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def polite() -> None:
        await current_child().stop_requested.wait()
        log.add("asked", current_child().id)

    async def deaf() -> None:
        try:
            await trio.sleep_forever()
        finally:
            log.add("killed", current_child().id)

    children = [ChildSpec("deaf", deaf, shutdown=5), ChildSpec("polite", polite, shutdown=5)]
    async with Supervisor(children) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    assert log.events == [("asked", "polite"), ("killed", "deaf")]
    assert log.times == [1.0, 6.0]


async def test_shutdown_infinity_waits_for_ever_for_the_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def slow() -> None:
        await current_child().stop_requested.wait()
        await trio.sleep(1000)
        log.add("done", current_child().id)

    async with Supervisor([ChildSpec("slow", slow, shutdown=math.inf)]) as sup:
        await sup.shutdown()
    assert log.times == [1000.0]


async def test_a_child_raising_while_stopped_is_logged_not_restarted(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def messy() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise Boom("cleanup failed")

    async with Supervisor([ChildSpec("m", messy)]) as sup:
        await settle()
        await sup.shutdown()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "child 'm' of supervisor 'supervisor' raised while being stopped"


async def test_a_failure_mixed_with_the_stops_cancellation_is_caught_at_the_boundary(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # design rule 15: stopping a child whose grandchild fails in cleanup gives
    # BaseExceptionGroup([Boom, Cancelled]); it must not escape the child.
    log = Log()

    async def fail_in_cleanup() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise Boom("grandchild cleanup")

    async def parent_of_a_messy_task() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail_in_cleanup)
            await trio.sleep_forever()

    children = [*specs(log, "a"), ChildSpec("n", parent_of_a_messy_task), *specs(log, "b")]
    async with Supervisor(children) as sup:
        await settle()
        await sup.shutdown()
    assert log.of("stop") == ["b", "a"]
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "child 'n' of supervisor 'supervisor' raised while being stopped"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ExceptionGroup)


async def test_keyboard_interrupt_in_a_child_stops_the_others_in_order_then_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def interrupted() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    children = [*specs(log, "ab"), ChildSpec("k", interrupted), *specs(log, "c")]
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with Supervisor(children):
            await trio.sleep_forever()
    assert log.of("stop") == ["c", "b", "a"]


@pytest.mark.parametrize("takes_status", [False, True])
async def test_a_child_ended_by_keyboard_interrupt_is_never_restarted_nor_reported_failed(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    takes_status: bool,
) -> None:
    # Design rule 15: a BaseException other than Cancelled is no failure and
    # never restarted; it propagates after the ordered shutdown. Before the
    # fix the child ran again (its start code twice) and was logged as failed.
    from trio_smith.events import SupervisionEvent

    from ..publisher import Recorder

    rec = Recorder()
    starts = 0

    async def interrupted() -> None:
        nonlocal starts
        starts += 1
        await trio.sleep(1)
        raise KeyboardInterrupt

    async def interrupted_started(task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await interrupted()

    fn = interrupted_started if takes_status else interrupted
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with Supervisor([ChildSpec("k", fn)], name="s", events=rec):
            await trio.sleep_forever()
    assert starts == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "child 'k' of supervisor 's' was interrupted by KeyboardInterrupt; "
        "it propagates, no restart"
    ]
    assert [e.type.name for e in rec.events] == [
        "child_started",
        "supervisor_started",
        "child_stopped",
        "supervisor_stopped",
    ]
    stopped = rec.of(SupervisionEvent.CHILD_STOPPED)[0]
    assert stopped.payload["reason"] == "interrupted"
    assert stopped.payload["error_type"] == "KeyboardInterrupt"


async def test_keyboard_interrupt_while_starting_is_not_a_start_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    starts = 0

    async def interrupted(task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        await trio.sleep(1)
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with Supervisor([*specs(log, "ab"), ChildSpec("k", interrupted)]):
            pytest.fail("never entered")  # pragma: no cover
    assert starts == 1
    assert log.of("stop") == ["b", "a"]


async def test_outer_cancellation_during_start_up_aborts_the_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def hangs(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        log.add("start", "h")
        try:
            await trio.sleep_forever()
        finally:
            log.add("stop", "h")

    with trio.move_on_after(3) as scope:
        async with Supervisor([*specs(log, "ab"), ChildSpec("h", hangs), *specs(log, "c")]):
            pytest.fail("never entered")  # pragma: no cover
    assert scope.cancelled_caught
    assert log.events == [
        ("start", "a"),
        ("start", "b"),
        ("start", "h"),
        ("stop", "h"),
        ("stop", "b"),
        ("stop", "a"),
    ]


async def test_a_body_error_while_giving_up_raises_both_in_a_group(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    with pytest.RaisesGroup(Boom, RestartIntensityExceeded):
        async with Supervisor(specs(log, "a", control), max_restarts=0):
            try:
                control.order("a", "crash")
                await trio.sleep_forever()
            finally:
                raise Boom("body cleanup")


async def test_rest_for_one_restarts_the_last_child_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()
    async with Supervisor(specs(log, "ab", control), strategy=Strategy.REST_FOR_ONE) as sup:
        for _ in range(3):
            control.order("b", "crash")
            await settle()
        assert log.events[2:] == [("stop", "b"), ("start", "b")] * 3
        assert sup.which_children()[1].restarts == 3
        await sup.shutdown()


# ---------------------------------------------------------------- nesting


async def test_a_child_supervisor_stops_its_children_in_order_when_its_parent_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def subtree() -> None:
        async with Supervisor(specs(log, "xyz")):
            pass

    async with Supervisor([*specs(log, "a"), ChildSpec("sub", subtree), *specs(log, "b")]) as sup:
        await settle()
        assert sup.count_children().supervisors == 1
        log.clear()
        await sup.shutdown()
    assert log.events == [
        ("stop", "b"),
        ("stop", "z"),
        ("stop", "y"),
        ("stop", "x"),
        ("stop", "a"),
    ]


async def test_a_child_supervisor_whose_body_sleeps_is_stopped_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def subtree() -> None:
        async with Supervisor(specs(log, "xy")):
            await trio.sleep_forever()  # the body goes on; D19 cancels it

    async with Supervisor([*specs(log, "a"), ChildSpec("sub", subtree)]) as sup:
        await settle()
        log.clear()
        await sup.shutdown()
    assert log.events == [("stop", "y"), ("stop", "x"), ("stop", "a")]


async def test_a_child_supervisor_that_gives_up_is_restarted_by_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()

    async def subtree() -> None:
        async with Supervisor(specs(log, "xy", control), max_restarts=0):
            pass

    async with Supervisor([ChildSpec("sub", subtree)], max_restarts=1) as sup:
        await settle()
        log.clear()
        control.order("x", "crash")
        await settle()
        # x crashed, y stopped, then the parent restarted the whole subtree.
        assert log.events == [("stop", "x"), ("stop", "y"), ("start", "x"), ("start", "y")]
        assert sup.which_children()[0].restarts == 1
        await sup.shutdown()


async def test_render_draws_the_live_tree_with_nested_supervisors(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log, control = Log(), Control()

    async def subtree() -> None:
        async with Supervisor(specs(log, "xy", control)):
            pass

    children = [*specs(log, "db", control), ChildSpec("workers", subtree)]
    async with Supervisor(children, name="app") as sup:
        await settle()
        control.order("x", "crash")
        await settle()
        assert sup.render() == "\n".join(
            [
                "app [running] supervisor",
                "├── d [running] worker",
                "├── b [running] worker",
                "└── workers [running] supervisor",
                "    ├── x [running] worker, restarts=1",
                "    └── y [running] worker",
            ]
        )
        await sup.shutdown()


# ---------------------------------------------------------------- current_child


async def test_current_child_describes_the_child_and_reaches_its_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, str, int]] = []

    async def child() -> None:
        async def helper() -> None:
            ctx = current_child()
            seen.append((ctx.id, ctx.supervisor, ctx.incarnation))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(helper)
        current_child().heartbeat()
        assert current_child().last_heartbeat == trio.current_time()
        assert current_child().heartbeats == 1
        await trio.sleep_forever()

    async with Supervisor([ChildSpec("c", child)], name="top") as sup:
        await settle()
        await sup.shutdown()
    assert seen == [("c", "top", 1)]


async def test_current_child_outside_a_child_raises(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(
        NoCurrentChild,
        match=r"^current_child\(\) was called outside a child of a trio_smith supervisor$",
    ):
        current_child()


# ---------------------------------------------------------------- no leaks


async def test_no_task_survives_the_supervisor(autojump_clock: trio.testing.MockClock) -> None:
    log, control = Log(), Control()
    before = len(trio.lowlevel.current_task().child_nurseries)
    async with Supervisor(specs(log, "abc", control), strategy=Strategy.ONE_FOR_ALL) as sup:
        control.order("a", "crash")
        await settle()
        await sup.shutdown()
    assert len(trio.lowlevel.current_task().child_nurseries) == before
    starts, stops = log.of("start"), log.of("stop")
    assert sorted(starts) == sorted(stops)

"""The child API, the dynamic pool, statistics, and every error with its exact message."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from trio_smith import (
    Backoff,
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildCounts,
    ChildHandle,
    ChildLimitReached,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    DynamicSupervisor,
    Restart,
    RestartRecord,
    Strategy,
    Supervisor,
    SupervisorNotRunning,
    SupervisorState,
    SupervisorStatistics,
    current_child,
)

from .helpers import Boom, Control, Log, settle, specs, worker

Clock = trio.testing.MockClock


async def _broken(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    raise Boom("cannot start")


# ---------------------------------------------------------------- start_child


async def test_start_child_appends_and_starts(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "a")) as sup:
        await sup.start_child(ChildSpec("b", worker(log)))
        assert [i.id for i in sup.which_children()] == ["a", "b"]
        assert log.of("start") == ["a", "b"]
        await sup.shutdown()
    assert log.of("stop") == ["b", "a"]


async def test_start_child_refusals(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "ab", restart=Restart.TRANSIENT)) as sup:
        with pytest.raises(ChildAlreadyStarted, match=r"^child 'a' is already started$"):
            await sup.start_child(ChildSpec("a", worker(log)))
        await sup.terminate_child("b")
        with pytest.raises(ChildAlreadyPresent, match=r"^child 'b' is already present$"):
            await sup.start_child(ChildSpec("b", worker(log)))
        with pytest.raises(TypeError, match=r"^spec must be a ChildSpec, got 'c'$"):
            await sup.start_child("c")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^child 'c' is significant, which needs"):
            await sup.start_child(
                ChildSpec("c", worker(log), restart=Restart.TRANSIENT, significant=True)
            )
        await sup.shutdown()


async def test_start_child_failure_raises_with_cause_and_discards_the_spec(
    autojump_clock: Clock,
) -> None:
    async with Supervisor() as sup:
        with pytest.raises(ChildStartFailed, match=r"^child 'x' failed to start$") as info:
            await sup.start_child(ChildSpec("x", _broken))
        assert isinstance(info.value.__cause__, Boom)
        assert sup.which_children() == []
        assert sup.statistics().state is SupervisorState.RUNNING
        await sup.shutdown()


# ---------------------------------------------------------------- terminate/restart/delete


async def test_terminate_child_is_idempotent_and_never_restarts(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "ab")) as sup:
        await settle()
        await sup.terminate_child("a")
        await sup.terminate_child("a")
        assert [(i.id, i.status) for i in sup.which_children()] == [
            ("a", ChildStatus.STOPPED),
            ("b", ChildStatus.RUNNING),
        ]
        with pytest.raises(ChildNotFound, match=r"^no child with id 'zz'$"):
            await sup.terminate_child("zz")
        await sup.shutdown()
    assert log.of("stop") == ["a", "b"]


async def test_terminate_child_removes_a_temporary_child(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "t", restart=Restart.TEMPORARY)) as sup:
        await sup.terminate_child("t")
        assert sup.which_children() == []
        await sup.shutdown()


async def test_restart_child_keeps_the_place_and_does_not_count(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "abc"), max_restarts=0) as sup:
        await sup.terminate_child("b")
        with pytest.raises(ChildRunning, match=r"^child 'a' is running$"):
            await sup.restart_child("a")
        await sup.restart_child("b")
        assert [(i.id, i.status, i.restarts) for i in sup.which_children()] == [
            ("a", ChildStatus.RUNNING, 0),
            ("b", ChildStatus.RUNNING, 1),
            ("c", ChildStatus.RUNNING, 0),
        ]
        assert sup.statistics().recent_restarts == ()
        with pytest.raises(ChildNotFound, match=r"^no child with id 'x'$"):
            await sup.restart_child("x")
        await sup.shutdown()
    assert log.of("stop") == ["b", "c", "b", "a"]


async def test_restart_child_failure_leaves_it_stopped(autojump_clock: Clock) -> None:
    async with Supervisor() as sup:
        flaky_calls = 0

        async def flaky(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            nonlocal flaky_calls
            flaky_calls += 1
            if flaky_calls > 1:
                raise Boom("second start fails")
            task_status.started()
            await trio.sleep_forever()

        await sup.start_child(ChildSpec("f", flaky, restart=Restart.TRANSIENT))
        await sup.terminate_child("f")
        with pytest.raises(ChildStartFailed, match=r"^child 'f' failed to start$"):
            await sup.restart_child("f")
        assert sup.which_children()[0].status is ChildStatus.STOPPED
        await sup.shutdown()


async def test_a_restarting_child_refuses_restart_and_delete(autojump_clock: Clock) -> None:
    log, control = Log(), Control()
    backoff = Backoff(initial=10.0)
    async with Supervisor(specs(log, "a", control), backoff=backoff) as sup:
        control.order("a", "crash")
        await settle()
        with pytest.raises(ChildRestarting, match=r"^child 'a' is restarting$"):
            await sup.restart_child("a")
        with pytest.raises(ChildRestarting, match=r"^child 'a' is restarting$"):
            await sup.delete_child("a")
        await sup.terminate_child("a")  # ends the retries (OTP R6.6)
        await trio.sleep(20)
        assert sup.which_children()[0].status is ChildStatus.STOPPED
        await sup.shutdown()


async def test_delete_child(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor(specs(log, "ab")) as sup:
        with pytest.raises(ChildRunning, match=r"^child 'a' is running$"):
            await sup.delete_child("a")
        await sup.terminate_child("a")
        await sup.delete_child("a")
        assert [i.id for i in sup.which_children()] == ["b"]
        with pytest.raises(ChildNotFound, match=r"^no child with id 'a'$"):
            await sup.delete_child("a")
        await sup.shutdown()


# ---------------------------------------------------------------- calls from other tasks


async def test_the_api_is_safe_from_many_tasks_at_once(autojump_clock: Clock) -> None:
    log = Log()
    async with Supervisor() as sup:
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(sup.start_child, ChildSpec(f"c{i:02}", worker(log)))
        assert sorted(i.id for i in sup.which_children()) == [f"c{i:02}" for i in range(20)]
        async with trio.open_nursery() as nursery:
            for i in range(0, 20, 2):
                nursery.start_soon(sup.terminate_child, f"c{i:02}")
        assert sup.count_children() == ChildCounts(specs=20, active=10, supervisors=0, workers=20)
        await sup.shutdown()
    assert sorted(log.of("stop")) == sorted(log.of("start"))


async def test_a_request_queued_behind_a_slow_stop_can_be_withdrawn(autojump_clock: Clock) -> None:
    log = Log()

    async def slow() -> None:
        await current_child().stop_requested.wait()
        await trio.sleep(100)

    async with Supervisor([ChildSpec("slow", slow, shutdown=math.inf)]) as sup:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.terminate_child, "slow")
            await settle()
            with trio.move_on_after(1):
                await sup.start_child(ChildSpec("late", worker(log)))
        assert [i.id for i in sup.which_children()] == ["slow"]
        assert log.events == []
        await sup.shutdown()


async def test_calls_on_a_supervisor_that_is_not_running(autojump_clock: Clock) -> None:
    sup = Supervisor(name="idle")
    message = r"^supervisor 'idle' is not running$"
    with pytest.raises(SupervisorNotRunning, match=message):
        await sup.terminate_child("a")
    with pytest.raises(SupervisorNotRunning, match=message):
        await sup.shutdown()
    async with sup:
        await sup.shutdown()
    with pytest.raises(SupervisorNotRunning, match=message):
        await sup.start_child(ChildSpec("a", worker(Log())))
    with pytest.raises(RuntimeError, match=r"^supervisor 'idle' was already entered"):
        async with sup:
            pass  # pragma: no cover


async def test_a_shutdown_aborts_a_request_under_way(autojump_clock: Clock) -> None:
    async def never_starts(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep_forever()

    errors: list[BaseException] = []

    async def starter(sup: Supervisor) -> None:
        try:
            await sup.start_child(ChildSpec("stuck", never_starts))
        except SupervisorNotRunning as error:
            errors.append(error)

    async def supervise(task_status: trio.TaskStatus[Supervisor]) -> None:
        with trio.move_on_after(5):  # outer cancellation interrupts the start (D5)
            async with Supervisor(name="s") as sup:
                task_status.started(sup)
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        sup = await nursery.start(supervise)
        nursery.start_soon(starter, sup)
    assert [str(e) for e in errors] == ["supervisor 's' is not running"]


# ---------------------------------------------------------------- statistics


async def test_statistics_is_a_frozen_snapshot(autojump_clock: Clock) -> None:
    log, control = Log(), Control()
    async with Supervisor(specs(log, "ab", control), name="stats", within=60.0) as sup:
        await trio.sleep(2)
        control.order("a", "crash")
        await settle()
        stats = sup.statistics()
        assert stats == SupervisorStatistics(
            name="stats",
            state=SupervisorState.RUNNING,
            strategy=Strategy.ONE_FOR_ONE,
            children=2,
            active=2,
            restarts=1,
            recent_restarts=(RestartRecord(at=2.0, child_id="a"),),
            max_restarts=3,
            within=60.0,
            path="stats",
            events_dropped=0,
        )
        with pytest.raises(AttributeError):
            stats.children = 3  # type: ignore[misc]
        await sup.shutdown()


def test_supervisor_arguments_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match=r"^name must be a non-empty str or None, got ''$"):
        Supervisor(name="")
    with pytest.raises(ValueError, match=r"^max_restarts must be >= 0, got -1$"):
        Supervisor(max_restarts=-1)
    with pytest.raises(ValueError, match=r"^duplicate child id 'a'$"):
        Supervisor([ChildSpec("a", _broken), ChildSpec("a", _broken)])


# ---------------------------------------------------------------- the dynamic pool


async def test_pool_starts_children_with_arguments(autojump_clock: Clock) -> None:
    seen: list[tuple[object, ...]] = []

    async def job(*args: object) -> None:
        seen.append(args)
        await trio.sleep_forever()

    async with DynamicSupervisor(ChildSpec("w", job, ("base",)), name="pool") as pool:
        first = await pool.start_child(1)
        second = await pool.start_child(2, 3)
        assert (first.id, first.args, second.id, second.args) == ("w-1", (1,), "w-2", (2, 3))
        await settle()
        assert seen == [("base", 1), ("base", 2, 3)]
        assert [i.id for i in pool.which_children()] == ["w-1", "w-2"]
        await pool.shutdown()


async def test_pool_restarts_a_crashed_child_with_the_same_arguments(
    autojump_clock: Clock,
) -> None:
    seen: list[object] = []

    async def job(n: int) -> None:
        seen.append(n)
        await trio.sleep(1)
        if len(seen) < 3:
            raise Boom("crash")
        await trio.sleep_forever()

    async with DynamicSupervisor(ChildSpec("w", job)) as pool:
        await pool.start_child(7)
        await trio.sleep(5)
        assert seen == [7, 7, 7]
        assert pool.which_children()[0].restarts == 2
        await pool.shutdown()


async def test_pool_drops_children_that_end_for_good(autojump_clock: Clock) -> None:
    async def short(n: int) -> None:
        await trio.sleep(n)

    async with DynamicSupervisor(ChildSpec("w", short, restart=Restart.TRANSIENT)) as pool:
        await pool.start_child(1)
        await pool.start_child(10)
        await trio.sleep(2)
        assert [i.id for i in pool.which_children()] == ["w-2"]
        await pool.shutdown()


async def test_pool_max_children(autojump_clock: Clock) -> None:
    log = Log()
    async with DynamicSupervisor(ChildSpec("w", worker(log)), max_children=2, name="p") as pool:
        handle = await pool.start_child()
        await pool.start_child()
        with pytest.raises(
            ChildLimitReached, match=r"^supervisor 'p' already has max_children=2 children$"
        ):
            await pool.start_child()
        await pool.terminate_child(handle)
        await pool.start_child()
        assert [i.id for i in pool.which_children()] == ["w-2", "w-4"]
        await pool.shutdown()


async def test_pool_terminate_by_handle(autojump_clock: Clock) -> None:
    log = Log()
    template = ChildSpec("w", worker(log))
    async with DynamicSupervisor(template) as pool, DynamicSupervisor(template) as other:
        handle = await pool.start_child()
        await pool.terminate_child(handle)
        await pool.terminate_child(handle)  # gone already: fine
        assert pool.which_children() == []
        foreign = await other.start_child()
        with pytest.raises(ChildNotFound, match=r"^no child with id 'w-1'$"):
            await pool.terminate_child(foreign)
        with pytest.raises(TypeError, match=r"^handle must be a ChildHandle, got 'w-1'$"):
            await pool.terminate_child("w-1")  # type: ignore[arg-type]
        await other.shutdown()
        await pool.shutdown()
    assert isinstance(handle, ChildHandle)


async def test_pool_shutdown_asks_every_child_at_once_with_one_deadline(
    autojump_clock: Clock,
) -> None:
    log = Log()

    async def deaf() -> None:
        try:
            await trio.sleep_forever()
        finally:
            log.add("stop", current_child().id)

    async with DynamicSupervisor(ChildSpec("w", deaf, shutdown=5)) as pool:
        for _ in range(4):
            await pool.start_child()
        await trio.sleep(1)
        await pool.shutdown()
    # One shared deadline (OTP R4.7): all killed at 1 + 5, not one after another.
    assert sorted(log.of("stop")) == ["w-1", "w-2", "w-3", "w-4"]
    assert log.times == [6.0] * 4


def test_pool_arguments_are_checked_when_built() -> None:
    with pytest.raises(TypeError, match=r"^template must be a ChildSpec, got None$"):
        DynamicSupervisor(None)  # type: ignore[arg-type]
    significant = ChildSpec("w", _broken, restart=Restart.TRANSIENT, significant=True)
    with pytest.raises(
        ValueError,
        match=r"^template 'w' is significant, but a DynamicSupervisor never shuts down "
        r"by itself \(OTP R1\.3\)$",
    ):
        DynamicSupervisor(significant)
    with pytest.raises(ValueError, match=r"^max_children must be an int >= 1 or None, got 0$"):
        DynamicSupervisor(ChildSpec("w", _broken), max_children=0)

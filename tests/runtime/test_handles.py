"""``ChildHandle.wait()`` and ``start_child``'s argument check (docs/design.md rule 39).

``wait()`` returns once the child has ended for good (the core removed it
from the pool, or the pool exited): its result after a normal end, else
``ChildFailed`` (its error is the cause) or ``ChildTerminated`` (by
``terminate_child``, the shutdown, or the pool giving up).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import (
    Backoff,
    ChildFailed,
    ChildHandle,
    ChildHung,
    ChildSpec,
    ChildStatus,
    ChildTerminated,
    DynamicSupervisor,
    Heartbeat,
    Restart,
    RestartIntensityExceeded,
    Supervisor,
    current_child,
)

from .helpers import Boom, Control, settle

Clock = trio.testing.MockClock


async def job(control: Control, answer: object) -> object:
    """Returns ``answer`` (with its incarnation) or crashes, as it is told."""
    ctx = current_child()
    if await control.wait(ctx.id) == "crash":
        raise Boom(f"{ctx.id} crashed")
    return (answer, ctx.incarnation)


def pool(control: Control, restart: Restart, **options: Any) -> DynamicSupervisor:
    return DynamicSupervisor(ChildSpec("j", job, (control,), restart=restart), name="p", **options)


async def outcome(handle: ChildHandle) -> tuple[str, object, BaseException | None]:
    """What ``wait()`` gives, as data: ("result", value, None) or (error type, str, cause)."""
    try:
        return ("result", await handle.wait(), None)
    except (ChildFailed, ChildTerminated) as exc:
        return (type(exc).__name__, str(exc), exc.__cause__)


# ---------------------------------------------------------------- results


@pytest.mark.parametrize("restart", [Restart.TEMPORARY, Restart.TRANSIENT])
async def test_a_child_that_returns_for_good_gives_its_result(
    autojump_clock: Clock, restart: Restart
) -> None:
    control = Control()
    async with pool(control, restart) as sup:
        handle = await sup.start_child(42)
        control.order(handle.id, "return")
        assert await handle.wait() == (42, 1)
        assert sup.which_children() == []
        await sup.shutdown()


async def test_a_transient_child_is_waited_for_across_its_restarts(autojump_clock: Clock) -> None:
    control = Control()
    async with pool(control, Restart.TRANSIENT) as sup:
        handle = await sup.start_child("x")
        async with trio.open_nursery() as nursery:
            results: list[object] = []

            async def waiter() -> None:
                results.append(await handle.wait())

            nursery.start_soon(waiter)
            control.order(handle.id, "crash")
            await settle()
            assert results == []  # restarted: not ended for good
            assert sup.which_children()[0].restarts == 1
            control.order(handle.id, "return")
        assert results == [("x", 2)]
        await sup.shutdown()


async def test_a_permanent_child_that_returns_is_restarted_not_ended(autojump_clock: Clock) -> None:
    control = Control()
    async with pool(control, Restart.PERMANENT) as sup:
        handle = await sup.start_child("x")
        control.order(handle.id, "return")
        await settle()
        with trio.move_on_after(100) as scope:
            await handle.wait()
        assert scope.cancelled_caught
        await sup.terminate_child(handle)
        assert (await outcome(handle))[:2] == (
            "ChildTerminated",
            "child 'j-1' of supervisor 'p' was stopped by terminate_child()",
        )
        await sup.shutdown()


async def ignoring(task_status: trio.TaskStatus[None]) -> str:
    return "not today"


async def test_an_ignored_start_gives_what_it_returned(autojump_clock: Clock) -> None:
    async with DynamicSupervisor(ChildSpec("i", ignoring)) as sup:
        handle = await sup.start_child()
        assert sup.which_children() == []
        assert await handle.wait() == "not today"
        await sup.shutdown()


# ---------------------------------------------------------------- failures and stops


async def test_a_temporary_child_that_fails_raises_child_failed(autojump_clock: Clock) -> None:
    control = Control()
    async with pool(control, Restart.TEMPORARY) as sup:
        handle = await sup.start_child(1)
        control.order(handle.id, "crash")
        kind, message, cause = await outcome(handle)
        assert (kind, message) == (
            "ChildFailed",
            "child 'j-1' of supervisor 'p' failed and was not restarted",
        )
        assert isinstance(cause, Boom)
        assert str(cause) == "j-1 crashed"
        await sup.shutdown()


async def test_a_hung_temporary_child_fails_with_child_hung(autojump_clock: Clock) -> None:
    template = ChildSpec("h", trio.sleep_forever, restart=Restart.TEMPORARY, heartbeat=Heartbeat(1))
    async with DynamicSupervisor(template, name="p") as sup:
        handle = await sup.start_child()
        with pytest.raises(ChildFailed) as info:
            await handle.wait()
        assert isinstance(info.value.__cause__, ChildHung)
        assert (info.value.child_id, info.value.supervisor) == ("h-1", "p")
        await sup.shutdown()


async def test_children_stopped_by_the_shutdown_raise_child_terminated(
    autojump_clock: Clock,
) -> None:
    control = Control()
    async with pool(control, Restart.PERMANENT) as sup:
        handles = [await sup.start_child(n) for n in range(2)]
        await sup.shutdown()
    for handle in handles:
        kind, message, cause = await outcome(handle)
        assert (kind, message, cause) == (
            "ChildTerminated",
            f"child {handle.id!r} of supervisor 'p' was stopped by its supervisor's shutdown",
            None,
        )


async def test_a_cancelled_pool_stops_its_children_for_good(autojump_clock: Clock) -> None:
    control = Control()
    with trio.CancelScope() as scope:
        async with pool(control, Restart.TEMPORARY) as sup:
            handle = await sup.start_child(0)
            scope.cancel()
    with pytest.raises(ChildTerminated) as info:
        await handle.wait()
    assert info.value.reason == "shutdown"


async def test_when_the_pool_gives_up_its_failing_child_failed_and_the_others_were_stopped(
    autojump_clock: Clock,
) -> None:
    control = Control()
    with pytest.raises(RestartIntensityExceeded) as gave_up:
        async with pool(control, Restart.PERMANENT, max_restarts=0) as sup:
            bad, good = await sup.start_child(0), await sup.start_child(1)
            control.order(bad.id, "crash")
    kind, message, cause = await outcome(bad)
    assert (kind, message) == (
        "ChildFailed",
        "child 'j-1' of supervisor 'p' failed and was not restarted",
    )
    assert isinstance(cause, Boom)
    kind, message, stopped_by = await outcome(good)
    assert (kind, message) == (
        "ChildTerminated",
        "child 'j-2' of supervisor 'p' was stopped because its supervisor gave up",
    )
    assert stopped_by is gave_up.value


async def test_a_permanent_child_whose_return_was_one_restart_too_many_was_stopped(
    autojump_clock: Clock,
) -> None:
    control = Control()
    with pytest.raises(RestartIntensityExceeded) as gave_up:
        async with pool(control, Restart.PERMANENT, max_restarts=0) as sup:
            handle = await sup.start_child(0)
            control.order(handle.id, "return")
    with pytest.raises(ChildTerminated) as info:
        await handle.wait()
    assert info.value.reason == "gave_up"
    assert info.value.__cause__ is gave_up.value


async def test_terminating_a_child_that_waits_for_its_restart_ends_it(
    autojump_clock: Clock,
) -> None:
    control = Control()
    async with pool(control, Restart.PERMANENT, backoff=Backoff(initial=20.0)) as sup:
        handle = await sup.start_child(0)
        control.order(handle.id, "crash")
        await settle()
        assert sup.which_children()[0].status is ChildStatus.RESTARTING
        await sup.terminate_child(handle)
        with pytest.raises(ChildTerminated) as info, trio.fail_after(100):
            await handle.wait()
        assert info.value.reason == "terminate_child"
        assert sup.which_children() == []
        await sup.shutdown()


# ---------------------------------------------------------------- waiters


async def test_many_waiters_late_waiters_and_cancelled_waiters(autojump_clock: Clock) -> None:
    control = Control()
    async with pool(control, Restart.TEMPORARY) as sup:
        handle = await sup.start_child(0)
        errors: list[BaseException] = []

        async def waiter() -> None:
            try:
                await handle.wait()
            except ChildFailed as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(waiter)
            with trio.move_on_after(1) as scope:  # one gives up waiting first
                await handle.wait()
            assert scope.cancelled_caught
            assert errors == []
            assert sup.which_children()[0].status is ChildStatus.RUNNING
            control.order(handle.id, "crash")
        nursery_errors = list(errors)
        await waiter()  # arrives after the end
        assert len(errors) == 4
        # A fresh error for each waiter, the same cause.
        assert len({id(e) for e in errors}) == 4
        assert len({id(e.__cause__) for e in errors}) == 1
        assert nursery_errors == errors[:3]
        await sup.shutdown()


async def test_wait_is_a_checkpoint_even_after_the_end(autojump_clock: Clock) -> None:
    async with DynamicSupervisor(ChildSpec("i", ignoring)) as sup:
        handle = await sup.start_child()
        with trio.testing.assert_checkpoints():
            await handle.wait()
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await handle.wait()
        await sup.shutdown()


async def test_the_pool_keeps_nothing_for_children_that_ended(autojump_clock: Clock) -> None:
    control = Control()
    async with pool(control, Restart.TEMPORARY) as sup:
        handles = [await sup.start_child(n) for n in range(3)]
        for handle in handles:
            control.order(handle.id, "return")
        await settle()
        assert sup._rt._ends == {}
        assert [await h.wait() for h in handles] == [(0, 1), (1, 2), (2, 3)]
        await sup.shutdown()


async def test_a_refused_start_keeps_nothing(autojump_clock: Clock) -> None:
    async def broken(task_status: trio.TaskStatus[None]) -> None:
        raise Boom("no")

    async with DynamicSupervisor(ChildSpec("b", broken), max_children=1) as sup:
        with pytest.raises(Exception, match="failed to start"):
            await sup.start_child()
        assert sup._rt._ends == {}
        await sup.shutdown()


# ---------------------------------------------------------------- argument checks


async def two(a: int, b: int = 0) -> None:
    await trio.sleep_forever()


async def many(a: int, *rest: int, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await trio.sleep_forever()


async def status_last(
    a: int, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    await trio.sleep_forever()


async def keyword(a: int, *, mode: str) -> None:
    await trio.sleep_forever()


@pytest.mark.parametrize(
    ("fn", "template_args", "good", "bad", "problem"),
    [
        (two, (), (1,), (), "two() of template 'w': missing a required argument: 'a'"),
        (two, (1,), (2,), (2, 3), "two() of template 'w': too many positional arguments"),
        (many, (), (1, 2, 3), (), "many() of template 'w': missing a required argument: 'a'"),
        (
            status_last,
            (),
            (1,),
            (1, 2),
            "status_last() of template 'w': multiple values for argument 'task_status'",
        ),
        (
            functools.partial(two, 1),
            (),
            (2,),
            (2, 3),
            "two() of template 'w': too many positional arguments",
        ),
    ],
)
async def test_arguments_that_cannot_bind_are_refused_before_anything_starts(
    autojump_clock: Clock,
    fn: Any,
    template_args: tuple[object, ...],
    good: tuple[object, ...],
    bad: tuple[object, ...],
    problem: str,
) -> None:
    async with DynamicSupervisor(ChildSpec("w", fn, template_args), name="p") as sup:
        healthy = await sup.start_child(*good)
        with pytest.raises(TypeError) as info:
            await sup.start_child(*bad)
        assert str(info.value) == f"bad arguments for child function {problem}"
        assert [i.id for i in sup.which_children()] == [healthy.id]
        # The refused call used no id: the next child is w-2.
        assert (await sup.start_child(*good)).id == "w-2"
        await sup.shutdown()


async def test_a_required_keyword_can_never_be_given(autojump_clock: Clock) -> None:
    async with DynamicSupervisor(ChildSpec("w", keyword)) as sup:
        with pytest.raises(TypeError) as info:
            await sup.start_child(1)
        assert str(info.value) == (
            "bad arguments for child function keyword() of template 'w': "
            "missing a required argument: 'mode'"
        )
        await sup.shutdown()


@pytest.mark.parametrize(
    ("fn", "counts"),
    [
        (two, {0: False, 1: True, 2: True, 3: False}),
        (many, {0: False, 1: True, 5: True}),
        (status_last, {0: False, 1: True, 2: False}),
        (keyword, {0: False, 1: False}),
    ],
)
async def test_the_fast_count_check_agrees_with_binding(
    autojump_clock: Clock, fn: Any, counts: dict[int, bool]
) -> None:
    async with DynamicSupervisor(ChildSpec("w", fn, shutdown=0), name="p") as sup:
        for n, fits in counts.items():
            if fits:
                await sup.start_child(*range(n))
            else:
                with pytest.raises(TypeError):
                    await sup.start_child(*range(n))
        await sup.shutdown()


async def test_a_function_without_a_signature_is_not_checked(autojump_clock: Clock) -> None:
    class NoSignature:
        __signature__ = property(lambda self: (_ for _ in ()).throw(ValueError("none")))

        async def __call__(self, *args: object) -> None:
            await trio.sleep_forever()

    async with DynamicSupervisor(ChildSpec("w", NoSignature())) as sup:
        await sup.start_child(1, 2, 3)
        await sup.shutdown()


async def test_a_bad_argument_no_longer_takes_the_pool_down(autojump_clock: Clock) -> None:
    """Before the check, a child that could not be called crash-looped until the pool gave up."""
    async with Supervisor([DynamicSupervisor.spec("p", ChildSpec("w", two))], name="root") as root:
        sup = root.find("root/p")
        assert isinstance(sup, DynamicSupervisor)
        healthy = await sup.start_child(1)
        with pytest.raises(TypeError):
            await sup.start_child()
        await settle()
        assert [i.id for i in sup.which_children()] == [healthy.id]
        assert root.which_children()[0].restarts == 0
        await root.shutdown()


def test_the_error_messages() -> None:
    assert (
        str(ChildFailed("w-1", "p")) == "child 'w-1' of supervisor 'p' failed and was not restarted"
    )
    assert str(ChildTerminated("w-1", "p", "shutdown")) == (
        "child 'w-1' of supervisor 'p' was stopped by its supervisor's shutdown"
    )
    assert isinstance(ChildFailed("w", "p"), RuntimeError)
    assert isinstance(ChildTerminated("w", "p", "gave_up"), RuntimeError)

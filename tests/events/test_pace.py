"""The fast-path helpers agree with trio's own cancellation test."""

from __future__ import annotations

import trio
import trio.testing

from trio_smith.events._pace import EVERY, Pacer, cancel_requested


async def test_cancel_requested_follows_trio_cancel_scopes() -> None:
    assert not cancel_requested()
    with trio.CancelScope() as outer:
        outer.cancel()
        assert cancel_requested()
        with trio.CancelScope(shield=True):
            assert not cancel_requested()
            await trio.lowlevel.checkpoint()  # shielded: not cancelled
        assert cancel_requested()
        await trio.lowlevel.checkpoint_if_cancelled()  # trio agrees: raises
        raise AssertionError("not cancelled")
    assert outer.cancelled_caught
    assert not cancel_requested()


async def test_cancel_requested_sees_an_expired_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.move_on_after(1):
        assert not cancel_requested()
        autojump_clock.jump(2)
        await trio.testing.wait_all_tasks_blocked()  # lets trio notice the deadline
        assert cancel_requested()


def test_the_pacer_is_due_once_every_every_calls() -> None:
    pacer = Pacer()
    due = [pacer.due() for _ in range(3 * EVERY)]
    assert [i for i, d in enumerate(due) if d] == [EVERY - 1, 2 * EVERY - 1, 3 * EVERY - 1]
    pacer.reset()
    assert not any(pacer.due() for _ in range(EVERY - 1))
    assert pacer.due()

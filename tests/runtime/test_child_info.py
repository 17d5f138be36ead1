"""``which_children()``: a watched child's last heartbeat, a backed-off child's restart time.

Every test runs on trio's MockClock (``autojump_clock``), which starts at 0,
so the times are exact.
"""

from __future__ import annotations

import trio
import trio.testing

from trio_smith import Backoff, ChildSpec, ChildStatus, Heartbeat, Supervisor, current_child

from .helpers import Boom


async def beats_at_1_5() -> None:
    await trio.sleep(1.5)
    current_child().heartbeat()
    await trio.sleep_forever()


async def crashes_at_1() -> None:
    await trio.sleep(1.0)
    raise Boom("crashed")


async def test_a_watched_child_shows_its_last_heartbeat_an_unwatched_one_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    children = [
        ChildSpec(id="watched", fn=beats_at_1_5, heartbeat=Heartbeat(10.0)),
        ChildSpec(id="plain", fn=beats_at_1_5),
    ]
    async with Supervisor(children) as sup:
        await trio.sleep(1.0)
        watched, plain = sup.which_children()
        assert (watched.last_heartbeat, plain.last_heartbeat) == (None, None)  # no beat yet
        await trio.sleep(1.0)
        watched, plain = sup.which_children()
        assert watched.last_heartbeat == 1.5
        assert watched.phi is not None
        # Unwatched: neither phi nor a heartbeat time, as before (only watched show).
        assert (plain.phi, plain.last_heartbeat) == (None, None)
        assert (watched.restart_at, plain.restart_at) == (None, None)
        await sup.shutdown()
    # Stopped: nothing is live any more.
    assert [i.last_heartbeat for i in sup.which_children()] == [None, None]


async def test_a_child_waiting_for_a_delayed_restart_shows_when_it_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backoff = Backoff(initial=2.0, multiplier=2.0, maximum=10.0, reset_after=100.0)
    children = [ChildSpec(id="crashy", fn=crashes_at_1)]
    async with Supervisor(children, backoff=backoff, max_restarts=10) as sup:
        assert sup.which_children()[0].restart_at is None  # running
        await trio.sleep(1.5)  # crashed at 1.0: restart at 1.0 + 2.0
        info = sup.which_children()[0]
        assert (info.status, info.restart_at) == (ChildStatus.RESTARTING, 3.0)
        await trio.sleep(1.75)  # restarted at 3.0, running until 4.0
        info = sup.which_children()[0]
        assert (info.status, info.restart_at) == (ChildStatus.RUNNING, None)
        await trio.sleep(1.0)  # crashed at 4.0: second delay 4.0
        info = sup.which_children()[0]
        assert (info.status, info.restart_at) == (ChildStatus.RESTARTING, 8.0)
        await sup.shutdown()
    assert sup.which_children()[0].restart_at is None

"""Hung-child detection: ``ChildSpec(heartbeat=Heartbeat(...))``.

Expected times are hand-computed from Akka's formula (docs/design.md A6):
with ``Heartbeat(1.0)`` (pause 3 s, min std 100 ms), steady 1 s
heartbeats put phi's crossing of 8 at 4522.60 ms after the last one, so the
child is judged at +4.523 s; a child that never heartbeats is judged on the
bootstrap history (mean 1 s, sd 250 ms) at +5.307 s. Every test runs on
trio's MockClock (``autojump_clock``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing

from trio_smith import (
    ChildHung,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    Heartbeat,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorError,
    current_child,
)
from trio_smith.events import SupervisionEvent

from ..publisher import Recorder
from .helpers import Log, worker

#: Silence after steady 1 s heartbeats at which phi reaches 8 (4522.60 ms).
STEADY = 4.523
#: Silence after the first heartbeat alone (bootstrap: mean 1 s, sd 250 ms).
FIRST = 5.307
#: phi at those instants.
PHI_STEADY = 8.012869649581168
PHI_FIRST = 8.00645430354629


def silent(log: Log) -> Callable[[], Awaitable[None]]:
    """A child that never heartbeats."""

    async def child() -> None:
        me = current_child().id
        log.add("start", me)
        try:
            await trio.sleep_forever()
        finally:
            log.add("stop", me)

    return child


# ---------------------------------------------------------------- the spec


def test_heartbeat_defaults_scale_akkas_ratios_to_the_interval() -> None:
    hb = Heartbeat(2.0)
    assert (hb.interval, hb.threshold, hb.acceptable_pause, hb.min_std_deviation) == (
        2.0,
        8.0,
        6.0,
        0.2,
    )
    assert hb.max_sample_size == 1000
    # The floor of the standard deviation is at least 1 ms (whole ms).
    assert Heartbeat(0.005).min_std_deviation == 0.001
    given = Heartbeat(1.0, threshold=10.0, acceptable_pause=0, min_std_deviation=0.05)
    assert (given.threshold, given.acceptable_pause, given.min_std_deviation) == (10.0, 0, 0.05)
    assert Heartbeat(1.0) == Heartbeat(1.0, acceptable_pause=3.0, min_std_deviation=0.1)
    assert attrs.evolve(Heartbeat(1.0), threshold=9.0).threshold == 9.0
    with pytest.raises(ValueError, match=r"^threshold must be a finite number > 0, got -1$"):
        attrs.evolve(Heartbeat(1.0), threshold=-1)
    assert repr(Heartbeat(1.0)) == (
        "Heartbeat(interval=1.0, threshold=8.0, acceptable_pause=3.0, "
        "min_std_deviation=0.1, max_sample_size=1000)"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, r"^interval must be a finite number >= 0\.001, got 0$"),
        ((math.inf,), {}, r"^interval must be a finite number >= 0\.001, got inf$"),
        (("1",), {}, r"^interval must be a finite number >= 0\.001, got '1'$"),
        ((1.0,), dict(threshold=0.0), r"^threshold must be a finite number > 0, got 0\.0$"),
        (
            (1.0,),
            dict(acceptable_pause=-1),
            r"^acceptable_pause must be a finite number >= 0, got -1$",
        ),
        (
            (1.0,),
            dict(min_std_deviation=0.0001),
            r"^min_std_deviation must be a finite number >= 0\.001, got 0\.0001$",
        ),
        ((1.0,), dict(max_sample_size=0), r"^max_sample_size must be an int >= 1, got 0$"),
    ],
)
def test_heartbeat_validation_names_the_argument(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Heartbeat(*args, **kwargs)  # type: ignore[arg-type]


def test_a_child_spec_refuses_a_heartbeat_that_is_not_one() -> None:
    async def fn() -> None:
        pass  # pragma: no cover

    with pytest.raises(TypeError, match=r"^heartbeat must be a Heartbeat or None, got 1\.0$"):
        ChildSpec("w", fn, heartbeat=1.0)  # type: ignore[arg-type]
    assert ChildSpec("w", fn).heartbeat is None


def test_child_hung_is_a_supervisor_error_and_a_timeout_with_an_exact_message() -> None:
    error = ChildHung("w", "sup", phi=8.0129, silence=4.523, threshold=8.0)
    assert isinstance(error, SupervisorError)
    assert isinstance(error, TimeoutError)
    assert str(error) == (
        "child 'w' of supervisor 'sup' is hung: no heartbeat for 4.523 s "
        "(phi 8.01 >= threshold 8.0)"
    )
    assert (error.child_id, error.supervisor, error.phi, error.silence, error.threshold) == (
        "w",
        "sup",
        8.0129,
        4.523,
        8.0,
    )


# ---------------------------------------------------------------- detection


async def test_a_child_that_stops_heartbeating_is_restarted_when_suspect_at_says(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    rec = Recorder()

    async def beat_then_block() -> None:
        me = current_child()
        log.add("start", me.id)
        if me.incarnation == 1:
            for _ in range(20):
                await trio.sleep(1)
                me.heartbeat()
        await trio.sleep_forever()

    spec = ChildSpec("w", beat_then_block, heartbeat=Heartbeat(1.0))
    async with Supervisor([spec], name="sup", events=rec) as sup:
        # The last heartbeat is at 20 s: still running one ms before 24.523.
        await trio.sleep_until(20 + STEADY - 0.001)
        [info] = sup.which_children()
        assert (info.status, info.restarts) == (ChildStatus.RUNNING, 0)
        assert info.phi is not None
        assert info.phi == pytest.approx(7.9808, abs=1e-4)
        await trio.sleep_until(26)
        [info] = sup.which_children()
        assert info.restarts == 1
        await sup.shutdown()
    assert log.events == [("start", "w"), ("start", "w")]
    assert log.times == [0.0, 20 + STEADY]
    [failed] = rec.of(SupervisionEvent.CHILD_FAILED)
    assert failed.payload["silence"] == STEADY
    assert failed.payload["phi"] == pytest.approx(PHI_STEADY, abs=1e-9)


async def test_a_child_that_never_heartbeats_is_caught_and_so_is_its_next_incarnation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Its start counts as its first heartbeat (Akka's expect).
    log = Log()
    spec = ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0))
    async with Supervisor([spec], max_restarts=10, within=100) as sup:
        await trio.sleep_until(3 * FIRST + 0.5)
        await sup.shutdown()
    assert log.of("start") == ["w"] * 4
    starts = [t for (kind, _), t in zip(log.events, log.times, strict=True) if kind == "start"]
    assert starts == pytest.approx([0.0, FIRST, 2 * FIRST, 3 * FIRST], abs=1e-9)


async def test_a_healthy_child_is_never_judged_hung(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    beats = 0

    async def healthy() -> None:
        nonlocal beats
        me = current_child()
        # Irregular but healthy, with one 2.5 s pause (within the 3 s allowed).
        pattern = [0.5, 1.5, 1.0, 0.8, 1.2] * 300 + [2.5] + [1.0] * 2000
        for delay in pattern:
            await trio.sleep(delay)
            me.heartbeat()
            beats += 1
        await trio.sleep_forever()

    spec = ChildSpec("w", healthy, heartbeat=Heartbeat(1.0))
    with caplog.at_level(logging.WARNING, logger="trio_smith"):
        async with Supervisor([spec], events=rec) as sup:
            await trio.sleep(3500)
            [info] = sup.which_children()
            assert info.restarts == 0
            await sup.shutdown()
    assert beats == 3498
    assert rec.of(SupervisionEvent.CHILD_FAILED) == []
    # Akka's warning at 2/3 of the acceptable pause (2000 ms), once.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "child 'w' of supervisor 'supervisor': heartbeat interval is growing too large: 2500 ms"
    ]
    # Structured like every record the shell writes (design rule 33).
    [record] = warnings
    assert record.supervisor == "supervisor"  # type: ignore[attr-defined]
    assert record.child_id == "w"  # type: ignore[attr-defined]
    assert record.incarnation == 1  # type: ignore[attr-defined]
    assert record.reason == "heartbeat_late"  # type: ignore[attr-defined]
    assert record.interval_ms == 2500  # type: ignore[attr-defined]


async def test_a_hung_child_under_one_for_all_restarts_its_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    rec = Recorder()
    children = [
        ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0)),
        ChildSpec("b", worker(log)),
    ]
    async with Supervisor(children, strategy=Strategy.ONE_FOR_ALL, events=rec) as sup:
        await trio.sleep(FIRST + 1)
        assert [i.restarts for i in sup.which_children()] == [1, 1]
        await sup.shutdown()
    steps = [(e.type.name, e.payload.get("child_id")) for e in rec.events]
    assert steps[3:9] == [
        ("child_failed", "w"),
        ("child_stopped", "b"),
        ("child_restarted", "w"),
        ("child_started", "w"),
        ("child_restarted", "b"),
        ("child_started", "b"),
    ]
    assert sorted(log.events[2:4]) == [("stop", "b"), ("stop", "w")]
    assert log.times[2:6] == [FIRST] * 4


async def test_a_hang_counts_toward_intensity_and_is_the_cause_of_giving_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    spec = ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0))
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([spec], name="sup", max_restarts=0):
            await trio.sleep_forever()
    assert trio.current_time() == FIRST
    cause = info.value.__cause__
    assert isinstance(cause, ChildHung)
    assert str(cause) == (
        "child 'w' of supervisor 'sup' is hung: no heartbeat for 5.307 s "
        "(phi 8.01 >= threshold 8.0)"
    )
    assert (cause.child_id, cause.supervisor, cause.silence, cause.threshold) == (
        "w",
        "sup",
        FIRST,
        8.0,
    )
    assert cause.phi == pytest.approx(PHI_FIRST, abs=1e-9)


async def test_the_failure_event_says_hung_with_phi_and_silence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    rec = Recorder()
    spec = ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0), restart=Restart.TRANSIENT)
    async with Supervisor([spec], name="sup", events=rec) as sup:
        await trio.sleep(FIRST + 1)
        await sup.shutdown()
    [failed] = rec.of(SupervisionEvent.CHILD_FAILED)
    assert failed.payload == {
        "supervisor": "sup",
        "child_id": "w",
        "incarnation": failed.payload["incarnation"],
        "error_type": "trio_smith.ChildHung",
        "error": (
            "child 'w' of supervisor 'sup' is hung: no heartbeat for 5.307 s "
            "(phi 8.01 >= threshold 8.0)"
        ),
        "traceback": None,  # a verdict, never raised
        "reason": "hung",
        "phi": pytest.approx(PHI_FIRST, abs=1e-9),
        "silence": FIRST,
    }
    kinds = [e.type.name for e in rec.events if e.payload.get("child_id") == "w"]
    assert kinds == [
        "child_started",
        "child_failed",
        "child_restarted",
        "child_started",
        "child_stopped",
    ]


async def test_a_hang_before_the_child_has_started_is_a_start_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def never_ready(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await trio.sleep_forever()

    spec = ChildSpec("w", never_ready, heartbeat=Heartbeat(1.0))
    with pytest.raises(ChildStartFailed, match=r"^child 'w' failed to start$") as info:
        async with Supervisor([spec], name="sup", events=rec):
            pytest.fail("the body must not run")  # pragma: no cover
    assert trio.current_time() == FIRST
    assert isinstance(info.value.__cause__, ChildHung)
    [failed] = rec.of(SupervisionEvent.CHILD_FAILED)
    assert failed.payload["during"] == "start"
    assert failed.payload["reason"] == "hung"


async def test_a_heartbeat_that_moves_the_deadline_earlier_is_honoured(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Two 10 ms intervals replace the bootstrap (max_sample_size=2): mean
    # 10 ms, sd at its 10 ms floor, no pause. phi reaches 8 at 63 ms of
    # silence, so at 20 + 63 ms, long before the first deadline (2.307 s).
    log = Log()
    hb = Heartbeat(1.0, acceptable_pause=0, min_std_deviation=0.01, max_sample_size=2)

    async def quick_then_block() -> None:
        me = current_child()
        log.add("start", me.id)
        if me.incarnation == 1:
            for _ in range(2):
                await trio.sleep(0.01)
                me.heartbeat()
        await trio.sleep_forever()

    async with Supervisor([ChildSpec("w", quick_then_block, heartbeat=hb)]) as sup:
        await trio.sleep(1)
        await sup.shutdown()
    assert log.times == [0.0, pytest.approx(0.083, abs=1e-9)]


async def test_a_child_being_stopped_is_not_judged_hung(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # It ignores the stop request, so it is cancelled 10 s later, at 11 s;
    # its hang deadline (5.307 s) passes meanwhile and must not count.
    log = Log()
    rec = Recorder()
    spec = ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0), shutdown=10)
    async with Supervisor([spec], events=rec) as sup:
        await trio.sleep(1)
        await sup.terminate_child("w")
        await trio.sleep(5)
        [info] = sup.which_children()
        assert (info.status, info.restarts) == (ChildStatus.STOPPED, 0)
        await sup.shutdown()
    assert log.events == [("start", "w"), ("stop", "w")]
    assert log.times == [0.0, 11.0]
    assert rec.of(SupervisionEvent.CHILD_FAILED) == []
    [stopped] = [e for e in rec.events if e.type == SupervisionEvent.CHILD_STOPPED]
    assert stopped.payload["reason"] == "shutdown"


async def test_which_children_shows_phi_of_watched_running_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    children = [
        ChildSpec("w", silent(log), heartbeat=Heartbeat(1.0)),
        ChildSpec("u", worker(log)),
    ]
    async with Supervisor(children) as sup:
        w, u = sup.which_children()
        assert (w.phi, u.phi) == (0.0, None)
        await trio.sleep(5)
        w, u = sup.which_children()
        # 5 s of silence after the bootstrap: y = 4 sd past mean + pause.
        assert w.phi == pytest.approx(4.7367, abs=1e-4)
        assert u.phi is None
        await sup.terminate_child("w")
        w, u = sup.which_children()
        assert (w.status, w.phi) == (ChildStatus.STOPPED, None)
        await sup.shutdown()


def test_which_children_after_the_run_of_a_supervisor_that_watched_a_child() -> None:
    # It used to read trio's clock for phi, which needs a running trio.
    box: list[Supervisor] = []

    async def child() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        async with Supervisor([ChildSpec("c", child, heartbeat=Heartbeat(1.0))]) as sup:
            box.append(sup)
            await sup.shutdown()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    [info] = box[0].which_children()
    assert (info.id, info.status, info.phi) == ("c", ChildStatus.STOPPED, None)

"""What trio_smith adds to OTP's supervisor: Akka backoff, ESCALATE, interrupts.

Backoff rules K3-K9 are Akka's (BackoffSupervisor) as listed in docs/design.md
("Akka's backoff rules"); the deviations D-numbers are in docs/design.md too.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith import AutoShutdown, Backoff, Restart, RestartRecord, Strategy
from trio_smith._core._protocol import (
    CancelRestart,
    ChildExited,
    ChildStarted,
    ChildStopped,
    Exit,
    ExitKind,
    ExitReason,
    Reply,
    ReplyOutcome,
    ScheduleRestart,
    ShutdownRequested,
    StartChild,
    StartChildRequested,
    StartupRequested,
    StopChild,
    TerminateChildRequested,
    TimerFired,
)

from .sim import Sim, booted, lines, machine, spec

MIN, DAY = 60.0, 86400.0

# ================================================================ the delay formula


@pytest.mark.parametrize(
    ("n", "initial", "maximum", "expected"),
    [
        # Akka BackoffSupervisorSpec "correctly calculate the delay" (randomFactor 0).
        (0, 5 * MIN, 7 * MIN, 5 * MIN),
        (2, 5.0, 7.0, 7.0),
        (2, 5.0, 7 * DAY, 20.0),
        (29, 5 * MIN, 10 * MIN, 10 * MIN),
        (29, 10_000 * DAY, 10_000 * DAY, 10_000 * DAY),
        (2**31 - 1, 10_000 * DAY, 10_000 * DAY, 10_000 * DAY),
    ],
)
def test_delay_matches_akka_vectors(
    n: int, initial: float, maximum: float, expected: float
) -> None:
    # K3.
    assert Backoff(initial=initial, maximum=maximum).delay(n, 0.0) == expected


def test_delay_sequences_from_the_akka_docs_and_tests() -> None:
    # K3: "min 3 s, max 30 s gives 3, 6, 12, 24, 30, 30"; and 200 ms .. 1600 ms.
    docs = Backoff(initial=3.0, maximum=30.0)
    assert [docs.delay(n, 0.0) for n in range(6)] == [3, 6, 12, 24, 30, 30]
    test = Backoff(initial=0.2, maximum=10.0)
    assert [test.delay(n, 0.0) for n in range(4)] == pytest.approx([0.2, 0.4, 0.8, 1.6])


def test_jitter_applies_after_the_cap() -> None:
    # K3: a delay can exceed maximum by up to (1 + jitter).
    b = Backoff(initial=1.0, maximum=4.0, jitter=0.5)
    assert b.delay(10, 0.5) == 4.0 * 1.25
    assert b.delay(0, 0.0) == 1.0


def test_an_overflowing_delay_is_the_maximum_without_jitter() -> None:
    # K3: "If the multiplication overflows or throws, the delay is maxBackoff, without jitter."
    b = Backoff(initial=1.0, multiplier=10.0, maximum=5.0, jitter=1.0)
    assert b.delay(10**6, 0.99) == 5.0
    assert b.delay(400, 0.5) == 5.0  # 10.0**400 overflows a float
    assert b.delay(300, 0.5) == 7.5  # 1e300 is finite: capped, then jittered


@given(
    initial=st.floats(0.001, 100),
    multiplier=st.floats(1, 10),
    extra=st.floats(0, 1000),
    jitter=st.floats(0, 1),
    n=st.integers(0, 2000),
    u=st.floats(0, 1, exclude_max=True),
)
def test_delay_bounds(
    initial: float, multiplier: float, extra: float, jitter: float, n: int, u: float
) -> None:
    b = Backoff(initial=initial, multiplier=multiplier, maximum=initial + extra, jitter=jitter)
    base = b.delay(n, 0.0)
    assert initial <= base <= b.maximum
    assert base <= b.delay(n, u) <= base * (1 + jitter) * (1 + 1e-12)
    assert b.delay(n, 0.0) <= b.delay(n + 1, 0.0)  # never shrinks as n grows


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(initial=0), r"^initial must be a finite number > 0, got 0$"),
        (dict(initial=math.inf), r"^initial must be a finite number > 0, got inf$"),
        (dict(multiplier=0.5), r"^multiplier must be a finite number >= 1, got 0\.5$"),
        (dict(maximum=0.05), r"^maximum must be a finite number >= initial \(0\.1\), got 0\.05$"),
        (dict(jitter=-0.1), r"^jitter must be a number between 0 and 1, got -0\.1$"),
        (dict(jitter=1.5), r"^jitter must be a number between 0 and 1, got 1\.5$"),
        (dict(reset_after=0), r"^reset_after must be a finite number > 0, got 0$"),
        (dict(initial="1"), r"^initial must be a finite number > 0, got '1'$"),
    ],
)
def test_backoff_validation(options: dict[str, object], message: str) -> None:
    # K9 (with D7: reset_after need not be <= maximum).
    with pytest.raises(ValueError, match=message):
        Backoff(**options)  # type: ignore[arg-type]


def test_backoff_defaults_follow_api_md_and_akka_reset() -> None:
    b = Backoff()
    assert (b.initial, b.multiplier, b.maximum, b.jitter, b.reset_after) == (0.1, 2.0, 30.0, 0, 0.1)
    assert Backoff(initial=2.0, maximum=60.0).reset_after == 2.0  # K6 default
    assert Backoff(initial=2.0, maximum=5.0, reset_after=600.0).reset_after == 600.0


# ================================================================ backoff in the machine


def _restart_delays(sim: Sim) -> list[float]:
    return [c.delay for c in sim.commands if isinstance(c, ScheduleRestart)]


def test_a_crashed_child_waits_its_backoff_delay_then_restarts() -> None:
    sim = booted([spec("a"), spec("b")], backoff=Backoff(initial=1.0), max_restarts=10)
    sim.exit("a")
    assert lines(sim.trace) == ["exit a crash"]
    assert sim.which()[0] == ["a", "restarting"]
    sim.advance(0.999)
    assert lines(sim.trace)[-1] != "start a"
    sim.advance(0.001)
    assert lines(sim.trace)[-1] == "start a"


def test_consecutive_restarts_grow_the_delay_and_uptime_resets_it() -> None:
    # K4 (pre-increment count) and K6 (reset after reset_after of uptime).
    b = Backoff(initial=1.0, multiplier=2.0, maximum=5.0, reset_after=3.0)
    sim = booted([spec("a")], backoff=b, max_restarts=100, within=1.0)
    for _ in range(5):
        sim.exit("a")
        sim.advance(10.0)  # restarted after 1 s, then up for 9 s >= reset_after
    # Each crash came long after the restart: every count was reset.
    assert _restart_delays(sim) == [1.0] * 5

    sim = booted([spec("a")], backoff=b, max_restarts=100, within=1.0)
    for _ in range(5):
        sim.exit("a")  # crashes at once after each restart: no reset
        sim.advance(sim.pending_timers()[0][0] - sim.now)
    assert _restart_delays(sim) == [1.0, 2.0, 4.0, 5.0, 5.0]
    sim.advance(3.0)  # stays up reset_after
    sim.exit("a")
    assert _restart_delays(sim)[-1] == 1.0


def test_jitter_draws_one_random_number_per_scheduled_restart() -> None:
    draws = iter([0.5, 0.25])
    sim = booted(
        [spec("a")],
        backoff=Backoff(initial=2.0, jitter=1.0, maximum=10.0, reset_after=100.0),
        random=lambda: next(draws),
        max_restarts=10,
    )
    sim.exit("a")
    sim.advance(10)
    sim.exit("a")
    assert _restart_delays(sim) == [2.0 * 1.5, 4.0 * 1.25]


def test_a_childs_own_backoff_wins_over_the_supervisors() -> None:
    sim = booted(
        [spec("a", backoff=Backoff(initial=7.0)), spec("b")],
        backoff=Backoff(initial=1.0),
        max_restarts=10,
    )
    sim.exit("a")
    sim.exit("b")
    assert sim.pending_timers() == [(1.0, "b"), (7.0, "a")]


def test_backoff_restarts_count_toward_intensity_when_attempted() -> None:
    # D8: the attempt (when the timer fires) is what OTP's add_restart counts.
    sim = booted([spec("a")], backoff=Backoff(initial=1.0, maximum=1.0), max_restarts=1, within=5)
    sim.exit("a")  # t=0, attempt at t=1
    assert sim.machine.restart_history(sim.now) == ()
    sim.advance(1.0)
    sim.exit("a")  # t=1, attempt at t=2: two attempts within 5 s: give up
    sim.advance(1.0)
    end = sim.exit_command()
    assert end.reason is ExitReason.INTENSITY
    assert end.restarts == (
        RestartRecord(at=1.0, child_id="a"),
        RestartRecord(at=2.0, child_id="a"),
    )


def test_backoff_spaces_restarts_beyond_the_intensity_window() -> None:
    # The point of backoff: a crash loop slows down instead of taking the tree down.
    b = Backoff(initial=3.0, multiplier=2.0, maximum=60.0)
    sim = booted([spec("a")], backoff=b, max_restarts=1, within=5)
    for _ in range(6):
        sim.exit("a")
        sim.advance(sim.pending_timers()[0][0] - sim.now)
    assert sim.ended() is None
    assert _restart_delays(sim) == [3.0, 6.0, 12.0, 24.0, 48.0, 60.0]


@pytest.mark.parametrize(
    ("strategy", "stopped_at_once", "started_later"),
    [
        (Strategy.ONE_FOR_ALL, ["stop c", "stop a"], ["start a", "start b", "start c"]),
        (Strategy.REST_FOR_ONE, ["stop c"], ["start b", "start c"]),
    ],
)
def test_group_backoff_stops_the_siblings_at_once_and_starts_all_after_the_delay(
    strategy: Strategy, stopped_at_once: list[str], started_later: list[str]
) -> None:
    # D9: the dependants do not run while the child they depend on waits.
    sim = booted([spec(c) for c in "abc"], strategy=strategy, backoff=Backoff(initial=2.0))
    sim.exit("b")
    assert lines(sim.trace) == ["exit b crash", *stopped_at_once]
    sim.trace.clear()
    sim.advance(2.0)
    assert lines(sim.trace) == started_later


def test_a_failed_start_under_backoff_retries_after_the_next_delay() -> None:
    sim = booted([spec("a")], backoff=Backoff(initial=1.0), max_restarts=10)
    sim.script("a", ["fail", "fail"])
    sim.exit("a")
    sim.advance(1.0)  # attempt 1 fails: next in 2
    sim.advance(2.0)  # attempt 2 fails: next in 4
    sim.advance(4.0)
    assert lines(sim.trace) == ["exit a crash", "start a fail", "start a fail", "start a"]
    assert _restart_delays(sim) == [1.0, 2.0, 4.0]


def test_terminate_child_cancels_a_pending_backoff_restart() -> None:
    sim = booted([spec("a")], backoff=Backoff(initial=1.0))
    sim.exit("a")
    assert sim.api("terminate_child", "a") == "ok"
    assert CancelRestart(child_id="a", timer=1) in sim.commands
    sim.advance(5)
    assert sim.which() == [["a", "undefined"]]
    # A timer that fired anyway (a race in the runtime) is stale.
    m = sim.machine
    assert m.handle(TimerFired(child_id="a", timer=1), now=sim.now) == []


# ================================================================ ESCALATE


@pytest.mark.parametrize("restart", list(Restart))
def test_escalate_gives_up_at_the_first_abnormal_exit_of_any_child(restart: Restart) -> None:
    sim = booted([spec("a"), spec("x", restart), spec("c")], strategy=Strategy.ESCALATE)
    sim.exit("x", "crash")
    assert lines(sim.trace) == ["exit x crash", "stop c", "stop a", "sup_exit shutdown"]
    assert sim.ended() == Exit(reason=ExitReason.ESCALATED, child_id="x", error="x crashed")


def test_escalate_handles_normal_exits_as_one_for_one() -> None:
    sim = booted(
        [spec("p"), spec("t", Restart.TRANSIENT), spec("tmp", Restart.TEMPORARY)],
        strategy=Strategy.ESCALATE,
        max_restarts=1,
    )
    sim.exit("p", "normal")
    sim.exit("t", "normal")
    sim.exit("tmp", "normal")
    assert lines(sim.trace) == ["exit p normal", "start p", "exit t normal", "exit tmp normal"]
    sim.exit("p", "normal")  # permanent restarts still count
    end = sim.exit_command()
    assert end.reason is ExitReason.INTENSITY


def test_escalate_gives_up_when_a_restart_fails_to_start() -> None:
    sim = booted([spec("p"), spec("q")], strategy=Strategy.ESCALATE)
    sim.script("p", ["fail"])
    sim.exit("p", "normal")
    assert lines(sim.trace) == ["exit p normal", "start p fail", "stop q", "sup_exit shutdown"]
    assert sim.ended() == Exit(
        reason=ExitReason.ESCALATED,
        child_id="p",
        error="p failed to start",
        restarts=(RestartRecord(at=0.0, child_id="p", normal_exit=True),),  # a restart too
    )


def test_escalate_wins_over_auto_shutdown() -> None:
    sim = booted(
        [spec("s", Restart.TEMPORARY, significant=True)],
        strategy=Strategy.ESCALATE,
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    sim.exit("s", "crash")
    end = sim.exit_command()
    assert end.reason is ExitReason.ESCALATED


# ================================================================ interrupts (D5)


def test_shutdown_during_startup_aborts_the_start_under_way() -> None:
    m = machine([spec("a"), spec("b"), spec("c")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    assert m.handle(ShutdownRequested(), now=0) == [StopChild(child_id="b")]
    assert m.handle(ChildStopped(child_id="b"), now=0) == [StopChild(child_id="a")]
    assert m.handle(ChildStopped(child_id="a"), now=0) == [Exit(reason=ExitReason.SHUTDOWN)]


def test_shutdown_during_an_api_start_aborts_the_request_first() -> None:
    m = machine([spec("a")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    assert m.handle(StartChildRequested(spec=spec("n")), now=0) == [
        StartChild(child_id="n", incarnation=2)
    ]
    assert m.handle(ShutdownRequested(), now=0) == [
        Reply(outcome=ReplyOutcome.ABORTED, child_id="n"),
        StopChild(child_id="n"),
    ]


def test_shutdown_during_a_group_restart_waits_for_the_stop_under_way() -> None:
    m = machine([spec("a"), spec("b"), spec("c")], strategy=Strategy.ONE_FOR_ALL)
    m.handle(StartupRequested(), now=0)
    for c in "abc":
        m.handle(ChildStarted(child_id=c), now=0)
    assert m.handle(ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL), now=0) == [
        StopChild(child_id="c")
    ]
    assert m.handle(ShutdownRequested(), now=0) == []  # c's stop is already out
    assert m.handle(ChildStopped(child_id="c"), now=0) == [StopChild(child_id="b")]
    assert m.handle(ChildStopped(child_id="b"), now=0) == [
        Exit(reason=ExitReason.SHUTDOWN, restarts=(RestartRecord(at=0, child_id="a"),))
    ]
    assert m.handle(ShutdownRequested(), now=0) == []  # after the exit: nothing


def test_shutdown_while_already_stopping_keeps_the_first_reason() -> None:
    m = machine([spec("a"), spec("b")], max_restarts=0)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    m.handle(ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL, error="e"), now=0)
    assert m.stopping
    assert m.handle(ShutdownRequested(), now=0) == []
    [end] = m.handle(ChildStopped(child_id="b"), now=0)
    assert isinstance(end, Exit)
    assert (end.reason, end.child_id, end.error) == (ExitReason.INTENSITY, "a", "e")


def test_shutdown_before_startup_exits_at_once() -> None:
    m = machine([spec("a")])
    assert m.handle(ShutdownRequested(), now=0) == [Exit(reason=ExitReason.SHUTDOWN)]


def test_terminate_child_interrupted_by_shutdown_is_aborted() -> None:
    m = machine([spec("a"), spec("b")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    assert m.handle(TerminateChildRequested(child_id="a"), now=0) == [StopChild(child_id="a")]
    assert m.handle(ShutdownRequested(), now=0) == [
        Reply(outcome=ReplyOutcome.ABORTED, child_id="a")
    ]
    assert m.handle(ChildStopped(child_id="a"), now=0) == [StopChild(child_id="b")]

"""The supervision core against Erlang/OTP's supervisor, rule by rule.

Rule numbers R<section>.<n> are OTP's rules as docs/design.md numbers them
(its table "How the OTP rules are implemented"); each is stated here beside
its test, citing supervisor.erl and supervisor_SUITE.erl. Traces use the notation
of tests/core/sim.py: "start a" / "start a fail" / "start a ignore" (the
supervisor started a), "stop a" (it stopped a live a), "exit a crash" (a
ended by itself).
"""

from __future__ import annotations

import math

import pytest

from trio_smith import (
    AutoShutdown,
    Backoff,
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildCounts,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildStatus,
    IllegalStateTransition,
    Restart,
    RestartRecord,
    Strategy,
)
from trio_smith._core._protocol import (
    CancelChild,
    CancelRestart,
    ChildExited,
    ChildJudgedHung,
    ChildStarted,
    ChildStopped,
    DeleteChildRequested,
    Exit,
    ExitKind,
    ExitReason,
    Reply,
    ReplyOutcome,
    RestartChildRequested,
    ScheduleRestart,
    ShutdownRequested,
    StartChild,
    StartChildRequested,
    StartFailed,
    StartupRequested,
    StopChild,
    StopChildren,
    TerminateChildRequested,
    TimerFired,
)
from trio_smith._core._supervision import Phase, SupervisorMachine

from .sim import Sim, booted, lines, machine, run_scenario, spec

P, T, TMP = Restart.PERMANENT, Restart.TRANSIENT, Restart.TEMPORARY


# ================================================================ 1.1 configuration


def test_defaults_are_one_for_one_3_restarts_in_5_seconds_never_auto_shutdown() -> None:
    # R1.1; trio_smith's intensity default is 3 (OTP's is 1): docs/design.md D1.
    sim = booted([spec("a")])
    for _ in range(3):
        sim.exit("a")
    assert sim.ended() is None
    sim.exit("a")
    assert sim.ended() is not None
    assert sim.exit_command().reason is ExitReason.INTENSITY
    default = SupervisorMachine([spec("a")], random=lambda: 0.0)
    assert default.strategy is Strategy.ONE_FOR_ONE


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(max_restarts=-1), ValueError, r"^max_restarts must be >= 0, got -1$"),
        (dict(max_restarts=1.5), TypeError, r"^max_restarts must be an int, got 1\.5$"),
        (dict(max_restarts=True), TypeError, r"^max_restarts must be an int, got True$"),
        (dict(within=0), ValueError, r"^within must be a finite number > 0, got 0$"),
        (dict(within=-1.0), ValueError, r"^within must be a finite number > 0, got -1\.0$"),
        (dict(within=math.inf), ValueError, r"^within must be a finite number > 0, got inf$"),
        (dict(within=math.nan), ValueError, r"^within must be a finite number > 0, got nan$"),
        (dict(within="5"), ValueError, r"^within must be a finite number > 0, got '5'$"),
        (
            dict(strategy="one_for_one"),
            TypeError,
            r"^strategy must be a Strategy, got 'one_for_one'$",
        ),
        (
            dict(auto_shutdown="never"),
            TypeError,
            r"^auto_shutdown must be an AutoShutdown, got 'never'$",
        ),
        (dict(backoff=1.0), TypeError, r"^backoff must be a Backoff or None, got 1\.0$"),
    ],
)
def test_invalid_flags_are_refused_at_construction(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    # R1.2 (OTP: invalid_intensity, invalid_period, invalid_strategy, ...).
    with pytest.raises(error, match=message):
        SupervisorMachine([spec("a")], random=lambda: 0.0, **options)  # type: ignore[arg-type]


def test_max_restarts_zero_and_fractional_within_are_valid() -> None:
    # R1.2 allows intensity 0; trio_smith allows any finite period > 0 (D2).
    SupervisorMachine([], max_restarts=0, within=0.25, random=lambda: 0.0)


def test_child_spec_defaults() -> None:
    # R1.4: restart permanent, not significant; shutdown None (trio's natural stop).
    s = ChildSpec("a", spec("x").fn)
    assert (s.restart, s.significant, s.shutdown, s.args, s.backoff) == (P, False, None, (), None)


def test_duplicate_child_ids_are_refused() -> None:
    # R1.5 duplicate_child_name.
    with pytest.raises(ValueError, match=r"^duplicate child id 'a'$"):
        machine([spec("a"), spec("b"), spec("a")])


def test_children_must_be_child_specs() -> None:
    with pytest.raises(TypeError, match=r"^children must be ChildSpec instances, got 'a'$"):
        SupervisorMachine(["a"], random=lambda: 0.0)  # type: ignore[list-item]


def test_significant_permanent_child_is_refused() -> None:
    # R1.6 (a).
    with pytest.raises(
        ValueError, match=r"^child 'a' cannot be significant with restart=Restart.PERMANENT$"
    ):
        spec("a", P, significant=True)


def test_significant_child_needs_auto_shutdown_at_construction_and_in_start_child() -> None:
    # R1.6 (b): refused in the init list and by start_child, which changes nothing.
    message = r"^child 'a' is significant, which needs auto_shutdown other than AutoShutdown.NEVER$"
    with pytest.raises(ValueError, match=message):
        machine([spec("a", T, significant=True)])
    sim = booted([spec("b")])
    m = sim.machine
    assert isinstance(m, SupervisorMachine)
    with pytest.raises(ValueError, match=message):
        m.handle(StartChildRequested(spec=spec("a", T, significant=True)), now=0)
    assert [i.id for i in m.which_children()] == ["b"]
    assert m.phase is Phase.IDLE


# ================================================================ 1.2 start-up


def test_children_start_one_at_a_time_in_list_order() -> None:
    # R2.1: each start is a blocking command; the next waits for its result.
    m = machine([spec("a"), spec("b"), spec("c")])
    assert m.handle(StartupRequested(), now=0) == [StartChild(child_id="a", incarnation=1)]
    assert m.phase is Phase.AWAITING_START
    assert m.handle(ChildStarted(child_id="a"), now=0) == [StartChild(child_id="b", incarnation=2)]
    assert m.handle(ChildStarted(child_id="b"), now=0) == [StartChild(child_id="c", incarnation=3)]
    assert m.handle(ChildStarted(child_id="c"), now=0) == []
    assert m.awaiting is None
    assert m.phase.name == "IDLE"


def test_ignored_start_keeps_the_spec_stopped_unless_temporary() -> None:
    # R2.2 (SUITE sup_start_ignore_child, sup_start_ignore_temporary_child).
    sim = Sim(machine([spec("a"), spec("b", T), spec("c", TMP), spec("d")]), {"a": ["ignore"]})
    sim.script("b", ["ignore"])
    sim.script("c", ["ignore"])
    sim.boot()
    assert lines(sim.trace) == ["start a ignore", "start b ignore", "start c ignore", "start d"]
    assert sim.statuses() == {"a": "stopped", "b": "stopped", "d": "running"}
    sim.count()
    assert sim.trace[-1] == ["count", 3, 1, 0, 3]


def test_start_failure_during_startup_stops_the_started_children_in_reverse_and_exits() -> None:
    # R2.3: no retry, later children never start, no intensity entry.
    sim = Sim(machine([spec("a"), spec("b"), spec("c"), spec("d")]), {"c": ["fail"]})
    sim.boot()
    assert lines(sim.trace) == [
        "start a",
        "start b",
        "start c fail",
        "stop b",
        "stop a",
        "sup_start_failed c",
    ]
    assert sim.exited == Exit(
        reason=ExitReason.START_FAILED, child_id="c", error="c failed to start"
    )


def test_an_empty_supervisor_starts_and_stays_up() -> None:
    # R2.1 with no children; like OTP it keeps running and takes new children.
    sim = booted([])
    assert sim.api("start_child", spec("a")) == "ok"
    assert sim.statuses() == {"a": "running"}


# ================================================================ 1.3 restart types


@pytest.mark.parametrize(
    ("restart", "reason", "restarted", "kept"),
    [
        (P, "normal", True, True),
        (P, "shutdown", True, True),
        (P, "crash", True, True),
        (T, "normal", False, True),
        (T, "shutdown", False, True),
        (T, "crash", True, True),
        (TMP, "normal", False, False),
        (TMP, "shutdown", False, False),
        (TMP, "crash", False, False),
    ],
)
def test_restart_decision_table(restart: Restart, reason: str, restarted: bool, kept: bool) -> None:
    # R3.1, R3.2: a permanent child that returns normally IS restarted and counts.
    sim = booted([spec("a", restart), spec("z")], max_restarts=1, within=10)
    sim.exit("a", reason)
    assert lines(sim.trace) == [f"exit a {reason}"] + (["start a"] if restarted else [])
    assert ("a" in sim.statuses()) is kept
    counted = sim.machine.restart_history(sim.now)
    record = RestartRecord(at=0.0, child_id="a", normal_exit=reason != "crash")
    assert counted == ((record,) if restarted else ())


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_temporary_bystanders_are_removed_not_restarted(strategy: Strategy) -> None:
    # R3.3 (SUITE temporary_bystander).
    sim = booted([spec("a"), spec("b", TMP), spec("c", TMP)], strategy=strategy)
    sim.exit("a")
    assert lines(sim.trace) == ["exit a crash", "stop c", "stop b", "start a"]
    assert sim.statuses() == {"a": "running"}


def test_exits_that_need_no_restart_never_trigger_a_group_restart() -> None:
    # R3.4.
    sim = booted([spec("a", T), spec("b", TMP), spec("c")], strategy=Strategy.ONE_FOR_ALL)
    sim.exit("a", "normal")
    sim.exit("b", "crash")
    assert lines(sim.trace) == ["exit a normal", "exit b crash"]
    assert sim.statuses() == {"a": "stopped", "c": "running"}


def test_a_stop_the_supervisor_caused_is_never_a_failure() -> None:
    # R3.5: terminate_child's stop comes back as ChildStopped; a late exit fact
    # of that same incarnation is stale and ignored.
    m = machine([spec("a")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    assert m.handle(TerminateChildRequested(child_id="a"), now=0) == [StopChild(child_id="a")]
    m.handle(ChildStopped(child_id="a"), now=0)
    late = ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL, error="x")
    assert m.handle(late, now=0) == []
    assert m.restart_history(0) == ()
    assert [i.status for i in m.which_children()] == [ChildStatus.STOPPED]


# ================================================================ 1.4 strategies


def test_one_for_one_restarts_only_the_failed_child_in_place() -> None:
    # R4.1 (SUITE one_for_one).
    sim = booted([spec("a"), spec("b"), spec("c")])
    sim.exit("b")
    assert lines(sim.trace) == ["exit b crash", "start b"]
    assert list(sim.statuses()) == ["a", "b", "c"]


def test_one_for_all_stops_the_others_in_reverse_then_starts_all_in_order() -> None:
    # R4.2 (SUITE one_for_all).
    sim = booted([spec(c) for c in "abcd"], strategy=Strategy.ONE_FOR_ALL)
    sim.exit("b")
    assert lines(sim.trace) == [
        "exit b crash",
        "stop d",
        "stop c",
        "stop a",
        "start a",
        "start b",
        "start c",
        "start d",
    ]


def test_rest_for_one_restarts_the_child_and_the_later_siblings_in_start_order() -> None:
    # R4.3 (SUITE rest_for_one): children before it are untouched.
    sim = booted([spec(c) for c in "abcd"], strategy=Strategy.REST_FOR_ONE)
    sim.exit("b")
    assert lines(sim.trace) == ["exit b crash", "stop d", "stop c", "start b", "start c", "start d"]


@pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
def test_group_restarts_bring_back_children_that_were_not_running(strategy: Strategy) -> None:
    # R4.4 (SUITE tree): terminated by the API, a transient that ended normally,
    # and a spec whose start said "ignore" all start again; temporaries do not.
    sim = booted(
        [spec("a"), spec("b"), spec("c", T), spec("d"), spec("e", TMP)],
        {"d": ["ignore"]},
        strategy=strategy,
        max_restarts=10,
    )
    assert lines(sim.trace) == []
    sim.api("terminate_child", "b")
    sim.exit("c", "normal")
    sim.trace.clear()
    sim.exit("a")
    assert lines(sim.trace) == [
        "exit a crash",
        "stop e",
        "start a",
        "start b",
        "start c",
        "start d",
    ]
    assert sim.statuses() == dict.fromkeys("abcd", "running")


def test_ignore_during_a_group_restart_leaves_that_child_stopped_and_goes_on() -> None:
    # R4.4 with R2.2 in start_children: {ok, undefined} keeps the spec undefined.
    sim = booted([spec("a"), spec("b"), spec("c")], strategy=Strategy.ONE_FOR_ALL)
    sim.script("b", ["ignore"])
    sim.exit("a")
    assert lines(sim.trace)[-3:] == ["start a", "start b ignore", "start c"]
    assert sim.statuses() == {"a": "running", "b": "stopped", "c": "running"}


def test_a_group_restart_counts_once() -> None:
    # R4.5: one intensity entry however many children restart.
    sim = booted([spec(c) for c in "abcde"], strategy=Strategy.ONE_FOR_ALL, max_restarts=1)
    sim.exit("c")
    assert sim.ended() is None
    assert sim.machine.restart_history(0) == (RestartRecord(at=0.0, child_id="c"),)


def test_dynamic_children_go_last_and_restart_child_keeps_the_place() -> None:
    # R4.6 (SUITE significant_temporary, significant_transient).
    sim = booted([spec("a"), spec("t", TMP), spec("b")], strategy=Strategy.REST_FOR_ONE)
    assert sim.api("start_child", spec("d")) == "ok"
    sim.exit("t")  # temporary: removed
    assert sim.api("start_child", spec("t", TMP)) == "ok"  # re-added: at the end
    sim.api("terminate_child", "a")
    assert sim.api("restart_child", "a") == "ok"  # keeps its place
    assert list(sim.statuses()) == ["a", "b", "d", "t"]
    sim.trace.clear()
    sim.exit("b")  # rest_for_one: d and the re-added t are "after" b
    assert lines(sim.trace) == ["exit b crash", "stop t", "stop d", "start b", "start d"]


# ================================================================ 1.5 intensity


def test_api_calls_and_exits_needing_no_restart_do_not_count() -> None:
    # R5.1.
    sim = booted([spec("a"), spec("b", T), spec("c", TMP)], max_restarts=0)
    sim.api("start_child", spec("d"))
    sim.api("terminate_child", "a")
    sim.api("restart_child", "a")
    sim.exit("b", "normal")
    sim.exit("c", "crash")
    assert sim.ended() is None
    assert sim.machine.restart_history(0) == ()


def test_one_restart_history_for_all_children() -> None:
    # R5.2 (SUITE one_for_one: crashes of different children add up).
    sim = booted([spec("a"), spec("b"), spec("c")], max_restarts=2)
    sim.exit("a")
    sim.exit("b")
    assert sim.ended() is None
    sim.exit("c")
    assert sim.ended() is not None
    assert sim.exit_command().reason is ExitReason.INTENSITY
    assert sim.exit_command().restarts == tuple(RestartRecord(at=0.0, child_id=c) for c in "abc")


def test_max_restarts_in_the_window_are_tolerated_and_the_next_one_is_fatal() -> None:
    # R5.3: check after adding; strictly greater than max_restarts.
    sim = booted([spec("a")], max_restarts=2, within=10)
    sim.exit("a")
    sim.advance(4)
    sim.exit("a")
    sim.advance(4)
    assert sim.ended() is None
    sim.exit("a")
    assert sim.ended() is not None
    assert [r.at for r in sim.exit_command().restarts] == [0.0, 4.0, 8.0]


def test_the_window_is_inclusive_in_continuous_time() -> None:
    # R5.4, trio_smith's rule: restart r counts at t iff t - r <= within.
    sim = booted([spec("a")], max_restarts=1, within=2.0)
    sim.exit("a")  # t = 0
    sim.advance(2.0)
    sim.exit("a")  # t = 2: 2 - 0 <= 2, so two restarts count: one too many
    assert sim.ended() is not None
    assert sim.exit_command().reason is ExitReason.INTENSITY

    sim = booted([spec("a")], max_restarts=1, within=2.0)
    sim.exit("a")
    sim.advance(2.0 + 1e-9)
    sim.exit("a")  # the first one left the window
    assert sim.ended() is None
    assert [r.at for r in sim.machine.restart_history(sim.now)] == [2.0 + 1e-9]


def test_max_restarts_zero_gives_up_at_the_first_restart_only() -> None:
    # R5.5: nothing is restarted; exits that need no restart do not take it down.
    sim = booted([spec("a"), spec("b", T), spec("c")], max_restarts=0)
    sim.exit("b", "normal")
    assert sim.ended() is None
    sim.exit("a")
    assert lines(sim.trace) == ["exit b normal", "exit a crash", "stop c", "sup_exit shutdown"]


def test_giving_up_stops_every_child_in_reverse_order_without_restarting_the_failed_one() -> None:
    # R5.6 (SUITE one_for_one ... *_escalation): the Exit carries the history.
    sim = booted([spec(c) for c in "abcd"], max_restarts=1, within=60)
    sim.exit("c")
    sim.advance(1)
    sim.trace.clear()
    sim.exit("b")
    assert lines(sim.trace) == [
        "exit b crash",
        "stop d",
        "stop c",
        "stop a",
        "sup_exit shutdown",
    ]
    assert sim.exited == Exit(
        reason=ExitReason.INTENSITY,
        child_id="b",
        error="b crashed",
        restarts=(RestartRecord(at=0.0, child_id="c"), RestartRecord(at=1.0, child_id="b")),
    )
    assert sim.statuses() == dict.fromkeys("abcd", "stopped")


def test_a_new_machine_starts_with_an_empty_history() -> None:
    # R5.7: a restarted supervisor is a fresh incarnation (the runtime builds
    # a new machine from the static specs).
    sim = booted([spec("a")], max_restarts=1)
    sim.exit("a")
    fresh = booted([spec("a")], max_restarts=1)
    assert fresh.machine.restart_history(0) == ()


# ================================================================ 1.6 failed restarts


def test_a_failed_restart_marks_the_child_restarting_and_queues_a_retry() -> None:
    # R6.1: the retry is a timer of delay 0, fed back through the queue.
    m = machine([spec("a")], max_restarts=5)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    crash = ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL, error="boom")
    assert m.handle(crash, now=0) == [StartChild(child_id="a", incarnation=2)]
    assert m.handle(StartFailed(child_id="a", error="e"), now=0) == [
        ScheduleRestart(child_id="a", delay=0.0, timer=1)
    ]
    assert m.which_children()[0].status is ChildStatus.RESTARTING
    assert m.handle(TimerFired(child_id="a", timer=1), now=0) == [
        StartChild(child_id="a", incarnation=3)
    ]
    assert m.handle(ChildStarted(child_id="a"), now=0) == []
    assert len(m.restart_history(0)) == 2  # R6.2: the retry counted


def test_every_retry_counts_so_a_child_gets_exactly_max_restarts_attempts() -> None:
    # R6.2 (SUITE one_for_one_escalation, MaxR=4).
    sim = booted([spec("a"), spec("b")], max_restarts=4)
    sim.script("a", ["fail"] * 10)
    sim.exit("a")
    assert lines(sim.trace) == ["exit a crash"] + ["start a fail"] * 4 + [
        "stop b",
        "sup_exit shutdown",
    ]


def test_a_start_failure_in_a_group_restart_leaves_a_partial_group() -> None:
    # R6.3: earlier children run again, the failed one is restarting, later
    # ones are not started (seen between the attempt and its retry).
    sim = booted([spec(c) for c in "abcd"], strategy=Strategy.ONE_FOR_ALL, max_restarts=5)
    sim.script("c", ["fail"])
    sim.exit("b", settle=False)
    sim.feed_one()  # only the exit: the retry stays queued
    assert isinstance(sim.commands[-1], ScheduleRestart)
    assert sim.statuses() == {"a": "running", "b": "running", "c": "restarting", "d": "stopped"}
    assert lines(sim.trace)[-3:] == ["start a", "start b", "start c fail"]


def test_one_for_all_retry_restarts_everything_again() -> None:
    # R6.4 (SUITE one_for_all_other_child_fails_restart).
    sim = booted([spec(c) for c in "abc"], strategy=Strategy.ONE_FOR_ALL, max_restarts=5)
    sim.script("b", ["fail"])
    sim.exit("a")
    assert lines(sim.trace) == [
        "exit a crash",
        "stop c",
        "stop b",
        "start a",
        "start b fail",
        # the retry, for b: stop all running (a, just restarted), start all
        "stop a",
        "start a",
        "start b",
        "start c",
    ]


def test_rest_for_one_retry_starts_from_the_failed_child_only() -> None:
    # R6.5 (SUITE rest_for_one_other_child_fails_restart).
    sim = booted([spec(c) for c in "abcd"], strategy=Strategy.REST_FOR_ONE, max_restarts=5)
    sim.script("c", ["fail"])
    sim.exit("b")
    assert lines(sim.trace) == [
        "exit b crash",
        "stop d",
        "stop c",
        "start b",
        "start c fail",
        "start c",
        "start d",
    ]


def test_the_api_view_of_a_restarting_child() -> None:
    # R6.6 (SUITE hanging_restart_loop, count_restarting_children).
    sim = booted([spec("a"), spec("b")], max_restarts=100)
    sim.script("a", ["fail"] * 1000)
    sim.exit("a", settle=False)
    sim.feed_one()  # the exit: first attempt fails, the retry is queued
    m = sim.machine
    assert isinstance(m, SupervisorMachine)
    assert sim.statuses()["a"] == "restarting"
    assert m.count_children() == ChildCounts(specs=2, active=1, supervisors=0, workers=2)
    with pytest.raises(ChildRestarting, match=r"^child 'a' is restarting$"):
        m.handle(RestartChildRequested(child_id="a"), now=0)
    with pytest.raises(ChildRestarting, match=r"^child 'a' is restarting$"):
        m.handle(DeleteChildRequested(child_id="a"), now=0)
    with pytest.raises(ChildAlreadyPresent, match=r"^child 'a' is already present$"):
        m.handle(StartChildRequested(spec=spec("a")), now=0)
    # terminate_child ends the retry loop; the queued retry is then stale.
    assert sim.api("terminate_child", "a") == "ok"
    attempts = lines(sim.trace).count("start a fail")
    sim.settle()
    assert lines(sim.trace).count("start a fail") == attempts
    assert sim.statuses() == {"a": "stopped", "b": "running"}
    assert sim.ended() is None


def test_rest_for_one_children_after_a_terminated_restarting_child_stay_stopped() -> None:
    # R6.6 (SUITE hanging_restart_loop_rest_for_one).
    sim = booted([spec(c) for c in "abc"], strategy=Strategy.REST_FOR_ONE, max_restarts=100)
    sim.script("b", ["fail"] * 1000)
    sim.exit("b", settle=False)
    assert sim.api("terminate_child", "b") == "ok"
    sim.settle()
    assert sim.statuses() == {"a": "running", "b": "stopped", "c": "stopped"}


def test_a_supervisor_in_a_restart_loop_can_still_be_shut_down() -> None:
    # R6.7: the shutdown request is served between two attempts.
    sim = booted([spec("a"), spec("b")], max_restarts=1000)
    sim.script("a", ["fail"] * 10_000)
    sim.exit("a", settle=False)
    sim.queue.append(ShutdownRequested())
    sim.settle()
    assert lines(sim.trace)[-3:] == ["start a fail", "stop b", "sup_exit shutdown"]
    assert lines(sim.trace).count("start a fail") == 1
    assert sim.ended() is not None
    assert sim.exit_command().reason is ExitReason.SHUTDOWN


# ================================================================ 1.7 overlapping failures


def test_a_sibling_that_died_before_the_group_restart_reached_it_is_absorbed() -> None:
    # R7.1: no separate restart, no intensity entry.
    sim = booted([spec(c) for c in "abc"], strategy=Strategy.ONE_FOR_ALL, max_restarts=1)
    sim.queue_exit("a")
    sim.queue_exit("c")  # dies too, its exit queued behind a's
    sim.settle()
    assert lines(sim.trace) == [
        "exit a crash",
        "exit c crash",
        # c is already dead: no "stop c"
        "stop b",
        "start a",
        "start b",
        "start c",
    ]
    assert sim.ended() is None
    assert len(sim.machine.restart_history(0)) == 1


def test_a_child_failing_after_its_group_restart_started_it_is_a_fresh_failure() -> None:
    # R7.2: handled after the current restart; it counts.
    m = machine([spec("a"), spec("b")], strategy=Strategy.ONE_FOR_ALL, max_restarts=5)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    m.handle(ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL), now=0)
    m.handle(ChildStopped(child_id="b"), now=0)
    assert m.handle(ChildStarted(child_id="a"), now=0) == [StartChild(child_id="b", incarnation=4)]
    m.handle(ChildStarted(child_id="b"), now=0)
    # a (incarnation 3) now crashes: a new group restart.
    assert m.handle(ChildExited(child_id="a", incarnation=3, kind=ExitKind.ABNORMAL), now=0) == [
        StopChild(child_id="b")
    ]
    assert len(m.restart_history(0)) == 2


@pytest.mark.parametrize(
    "fact",
    [
        ChildExited(child_id="nobody", incarnation=1, kind=ExitKind.ABNORMAL),
        ChildExited(child_id="a", incarnation=99, kind=ExitKind.ABNORMAL),
        TimerFired(child_id="a", timer=7),
        TimerFired(child_id="nobody", timer=1),
    ],
)
def test_exits_and_timers_of_unknown_or_old_incarnations_are_ignored(fact: object) -> None:
    # R7.3.
    m = machine([spec("a")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    before = m.which_children()
    assert m.handle(fact, now=0) == []  # type: ignore[arg-type]
    assert m.which_children() == before


def test_exits_during_shutdown_cause_no_restart() -> None:
    # R7.4 (SUITE sup_stop_race): the runtime drops facts once the machine
    # exited; the shutdown completes with reason shutdown.
    sim = booted([spec("a"), spec("b")])
    sim.queue.append(ShutdownRequested())
    sim.queue_exit("a")  # a dies while the shutdown waits in the queue
    sim.settle()
    assert lines(sim.trace) == ["exit a crash", "stop b", "sup_exit shutdown"]
    assert sim.machine.restart_history(0) == ()


# ================================================================ 1.8 shutdown


def test_shutdown_stops_children_one_at_a_time_in_reverse_start_order() -> None:
    # R8.1 (SUITE order_of_children: start [ch7,ch3,ch10,ch2,ch5] -> stop reversed).
    ids = ["ch7", "ch3", "ch10", "ch2", "ch5"]
    m = machine([spec(c) for c in ids])
    m.handle(StartupRequested(), now=0)
    for c in ids:
        m.handle(ChildStarted(child_id=c), now=0)
    stopped = []
    commands = m.handle(ShutdownRequested(), now=0)
    while isinstance(commands[-1], StopChild):
        assert len(commands) == 1
        stopped.append(commands[-1].child_id)
        commands = m.handle(ChildStopped(child_id=stopped[-1]), now=0)
    assert stopped == ["ch5", "ch2", "ch10", "ch3", "ch7"]
    assert commands == [Exit(reason=ExitReason.SHUTDOWN)]
    assert m.phase is Phase.EXITED


def test_shutdown_skips_stopped_children_and_cancels_pending_restarts() -> None:
    # R8.1 with R6.6: a restarting child has no process; its retry is dropped.
    sim = booted([spec("a", backoff=Backoff(initial=1.0)), spec("b"), spec("c")])
    sim.api("terminate_child", "b")
    sim.exit("a")
    assert sim.pending_timers() == [(1.0, "a")]
    sim.stop()
    assert lines(sim.trace)[-2:] == ["stop c", "sup_exit shutdown"]
    assert CancelRestart(child_id="a", timer=1) in sim.commands
    assert sim.pending_timers() == []


@pytest.mark.parametrize(
    ("setup", "reason"),
    [("shutdown", ExitReason.SHUTDOWN), ("intensity", ExitReason.INTENSITY)],
)
def test_supervisor_exit_reasons(setup: str, reason: ExitReason) -> None:
    # R8.5: shutdown, exceeded intensity (and auto-shutdown, below) each end it.
    sim = booted([spec("a")], max_restarts=0)
    if setup == "shutdown":
        sim.stop()
    else:
        sim.exit("a")
    assert sim.ended() is not None
    assert sim.exit_command().reason is reason


# ================================================================ 1.9 escalation


def test_a_child_supervisor_giving_up_is_an_abnormal_exit_for_its_parent() -> None:
    # R9.1 in the core: a nested supervisor is an ordinary child; the runtime
    # reports its giving up as ABNORMAL (docs/design.md D6), so the parent
    # restarts it under its own strategy and intensity.
    sim = booted([spec("inner_sup", T), spec("x")], strategy=Strategy.ONE_FOR_ALL)
    sim.exit("inner_sup", "crash")
    assert lines(sim.trace) == ["exit inner_sup crash", "stop x", "start inner_sup", "start x"]


# ================================================================ 1.10 auto-shutdown


@pytest.mark.parametrize(
    ("restart", "reason", "shuts_down"),
    [
        (T, "normal", True),
        (T, "shutdown", True),
        (T, "crash", False),  # restarted instead
        (TMP, "normal", True),
        (TMP, "crash", True),
    ],
)
def test_any_significant_shuts_down_when_a_significant_child_ends_for_good(
    restart: Restart, reason: str, shuts_down: bool
) -> None:
    # R10.1, R10.2, R10.5 (SUITE significant_temporary, significant_transient).
    sim = booted(
        [spec("a"), spec("s", restart, significant=True), spec("c")],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    sim.exit("s", reason)
    if shuts_down:
        assert lines(sim.trace) == [f"exit s {reason}", "stop c", "stop a", "sup_exit shutdown"]
        assert sim.ended() is not None
        assert sim.exit_command().reason is ExitReason.AUTO_SHUTDOWN
        assert sim.exit_command().child_id == "s"
    else:
        assert lines(sim.trace) == [f"exit s {reason}", "start s"]
        assert sim.ended() is None


def test_terminations_by_the_supervisor_never_trigger_auto_shutdown() -> None:
    # R10.3 (SUITE significant_bystander): terminate_child and group bystanders.
    sim = booted(
        [spec("a"), spec("s", TMP, significant=True), spec("t", T, significant=True)],
        strategy=Strategy.ONE_FOR_ALL,
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    sim.exit("a")  # s (temporary) is a bystander: removed, no auto-shutdown
    assert "s" not in sim.statuses()
    assert sim.api("terminate_child", "t") == "ok"
    assert sim.ended() is None


def test_all_significant_waits_for_the_last_alive_significant_child() -> None:
    # R10.4: "alive" is running or restarting; a child stopped by
    # terminate_child is not alive.
    sim = booted(
        [
            spec("s1", T, significant=True),
            spec("s2", T, significant=True),
            spec("s3", TMP, significant=True),
            spec("w"),
        ],
        auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
        max_restarts=100,
    )
    sim.api("terminate_child", "s1")
    sim.exit("s3", "crash")
    assert sim.ended() is None
    # s2 is restarting: still alive.
    sim.script("s2", ["fail"])
    sim.exit("s2", "crash", settle=False)
    sim.feed_one()
    assert sim.statuses()["s2"] == "restarting"
    sim.settle()
    assert sim.ended() is None
    sim.exit("s2", "normal")
    assert lines(sim.trace)[-3:] == ["exit s2 normal", "stop w", "sup_exit shutdown"]
    assert sim.ended() is not None
    assert sim.exit_command().reason is ExitReason.AUTO_SHUTDOWN


def test_non_significant_children_never_trigger_auto_shutdown() -> None:
    # R10.6 (SUITE nonsignificant_temporary, nonsignificant_transient).
    sim = booted(
        [spec("a", TMP), spec("b", T), spec("s", T, significant=True)],
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    sim.exit("a", "normal")
    sim.exit("b", "normal")
    assert sim.ended() is None


# ================================================================ 1.11 child API


def test_start_child_outcomes() -> None:
    # R1.11 start_child rows (SUITE child_adm, extra_return, sup_start_child_returns_error,
    # sup_start_ignore_child, sup_start_ignore_temporary_child_start_child).
    sim = booted([spec("a")], {"f": ["fail"], "i": ["ignore"], "ti": ["ignore"]})
    assert sim.api("start_child", spec("a")) == "already_started"
    sim.api("terminate_child", "a")
    assert sim.api("start_child", spec("a")) == "already_present"
    assert sim.api("start_child", spec("f")) == "start_failed"
    assert sim.api("start_child", spec("i")) == "ok_undefined"
    assert sim.api("start_child", spec("ti", TMP)) == "ok_undefined"
    assert sim.api("start_child", spec("n")) == "ok"
    assert sim.statuses() == {"a": "stopped", "i": "stopped", "n": "running"}
    assert sim.machine.restart_history(0) == ()
    assert sim.replies[-4].error == "f failed to start"


def test_start_child_refusals_raise_exact_errors_and_change_nothing() -> None:
    m = machine([spec("a"), spec("b")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    with pytest.raises(ChildAlreadyStarted, match=r"^child 'a' is already started$"):
        m.handle(StartChildRequested(spec=spec("a")), now=0)
    assert [i.id for i in m.which_children()] == ["a", "b"]


def test_restart_child_outcomes() -> None:
    # R1.11 restart_child rows (SUITE child_adm, extra_return,
    # sup_start_restart_child_returns_error): no intensity entry, no retry loop.
    sim = booted([spec("a"), spec("t", TMP)], max_restarts=0)
    assert sim.api("restart_child", "a") == "running"
    assert sim.api("restart_child", "nobody") == "not_found"
    sim.exit("t")
    assert sim.api("restart_child", "t") == "not_found"  # a temporary that ended
    sim.api("terminate_child", "a")
    sim.script("a", ["fail", "ignore"])
    assert sim.api("restart_child", "a") == "start_failed"
    assert sim.statuses() == {"a": "stopped"}
    assert sim.api("restart_child", "a") == "ok_undefined"
    assert sim.api("restart_child", "a") == "ok"
    assert sim.statuses() == {"a": "running"}
    assert sim.ended() is None


def test_terminate_child_outcomes() -> None:
    # R1.11 terminate_child rows (SUITE child_adm): idempotent; a temporary's
    # spec is removed; no restart, no auto-shutdown.
    sim = booted([spec("a"), spec("t", TMP)])
    assert sim.api("terminate_child", "a") == "ok"
    assert sim.api("terminate_child", "a") == "ok"
    assert sim.api("terminate_child", "t") == "ok"
    assert sim.api("terminate_child", "nobody") == "not_found"
    assert lines(sim.trace) == [
        "stop a",
        "api terminate_child a ok",
        "api terminate_child a ok",
        "stop t",
        "api terminate_child t ok",
        "api terminate_child nobody not_found",
    ]
    assert sim.statuses() == {"a": "stopped"}


def test_delete_child_outcomes() -> None:
    # R1.11 delete_child rows (SUITE child_adm).
    sim = booted([spec("a"), spec("b")])
    assert sim.api("delete_child", "a") == "running"
    assert sim.api("delete_child", "nobody") == "not_found"
    sim.api("terminate_child", "a")
    assert sim.api("delete_child", "a") == "ok"
    assert sim.api("restart_child", "a") == "not_found"
    assert sim.statuses() == {"b": "running"}


def test_api_errors_have_exact_messages() -> None:
    m = machine([spec("a")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    with pytest.raises(ChildNotFound, match=r"^no child with id 'x'$"):
        m.handle(RestartChildRequested(child_id="x"), now=0)
    with pytest.raises(ChildRunning, match=r"^child 'a' is running$"):
        m.handle(RestartChildRequested(child_id="a"), now=0)


def test_which_children_lists_start_order_with_statuses_and_restart_counts() -> None:
    # R1.11 which_children (OTP lists newest first; trio_smith start order, D4).
    sim = booted([spec("a"), spec("b", T), spec("c", TMP)])
    sim.exit("a")
    sim.exit("a")
    sim.api("terminate_child", "b")
    infos = sim.machine.which_children()
    assert [(i.id, i.status, i.restart, i.restarts) for i in infos] == [
        ("a", ChildStatus.RUNNING, P, 2),
        ("b", ChildStatus.STOPPED, T, 0),
        ("c", ChildStatus.RUNNING, TMP, 0),
    ]


def test_count_children_counts_specs_active_supervisors_and_workers() -> None:
    # R1.11 count_children: specs dead or alive; supervisors by what the
    # runtime says (it knows which children run a supervisor).
    sim = booted([spec("a"), spec("b"), spec("sup")])
    sim.api("terminate_child", "b")
    m = sim.machine
    assert isinstance(m, SupervisorMachine)
    assert m.count_children(lambda cid: cid == "sup") == ChildCounts(
        specs=3, active=2, supervisors=1, workers=2
    )


# ================================================================ 1.12 one event at a time


def test_nothing_but_the_awaited_result_or_a_shutdown_is_taken_mid_operation() -> None:
    # R12.1: while a blocking command is out the runtime queues other facts.
    m = machine([spec("a"), spec("b")])
    m.handle(StartupRequested(), now=0)
    for fact in [
        ChildStarted(child_id="b"),
        ChildStopped(child_id="a"),
        ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL),
        TerminateChildRequested(child_id="a"),
        StartupRequested(),
    ]:
        with pytest.raises(IllegalStateTransition):
            m.handle(fact, now=0)  # type: ignore[arg-type]
    assert m.awaiting == "a"
    assert m.phase is Phase.AWAITING_START


def test_illegal_input_message_names_the_state_and_the_input() -> None:
    m = machine([spec("a")])
    with pytest.raises(
        IllegalStateTransition,
        match=r"^supervisor in state NEW cannot handle ChildStopped\(child_id='a'\)$",
    ):
        m.handle(ChildStopped(child_id="a"), now=0)
    m.handle(StartupRequested(), now=0)
    with pytest.raises(
        IllegalStateTransition,
        match=r"^supervisor in state AWAITING_START\('a'\) cannot handle "
        r"ChildStarted\(child_id='b'\)$",
    ):
        m.handle(ChildStarted(child_id="b"), now=0)


def test_time_never_goes_back() -> None:
    m = machine([spec("a")])
    m.handle(StartupRequested(), now=5.0)
    with pytest.raises(ValueError, match=r"^now must not go back in time: 4\.0 < 5\.0$"):
        m.handle(ChildStarted(child_id="a"), now=4.0)
    assert m.phase is Phase.AWAITING_START


# ================================================================ pools, limits, hung children
# OTP simple_one_for_one (R4.7, R4.8) as pool=True; Elixir DynamicSupervisor's
# max_children; the hung verdict of the runtime's phi-accrual detector.


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (dict(max_children=0), ValueError, r"^max_children must be an int >= 1 or None, got 0$"),
        (
            dict(max_children=1.5),
            ValueError,
            r"^max_children must be an int >= 1 or None, got 1\.5$",
        ),
        (
            dict(max_children=True),
            ValueError,
            r"^max_children must be an int >= 1 or None, got True$",
        ),
        (dict(pool=1), TypeError, r"^pool must be a bool, got 1$"),
        (
            dict(pool=True, strategy=Strategy.ONE_FOR_ALL),
            ValueError,
            r"^a pool needs Strategy.ONE_FOR_ONE or Strategy.ESCALATE, got <Strategy.ONE_FOR_ALL",
        ),
    ],
)
def test_pool_and_limit_flags_are_checked(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        SupervisorMachine([], random=lambda: 0.0, **options)  # type: ignore[arg-type]


def _snapshot(m: SupervisorMachine) -> object:
    return (m.phase, m.awaiting, m.awaiting_stops, m.which_children(), m.restart_history(9))


def _waiting(m: SupervisorMachine) -> tuple[str | None, frozenset[str]]:
    return (m.awaiting, m.awaiting_stops)


def test_start_child_beyond_max_children_is_refused_with_nothing_changed() -> None:
    # Elixir DynamicSupervisor: {:error, :max_children}. Static children count.
    m = machine([spec("a")], max_children=2)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    assert m.handle(StartChildRequested(spec=spec("b")), now=0) == [
        StartChild(child_id="b", incarnation=2)
    ]
    m.handle(ChildStarted(child_id="b"), now=0)
    before = _snapshot(m)
    assert m.handle(StartChildRequested(spec=spec("c")), now=0) == [
        Reply(outcome=ReplyOutcome.LIMIT_REACHED, child_id="c")
    ]
    assert _snapshot(m) == before
    # Check order: a bad spec first, then the limit, then duplicates.
    with pytest.raises(ValueError, match=r"is significant"):
        m.handle(StartChildRequested(spec=spec("c", T, significant=True)), now=0)
    assert m.handle(StartChildRequested(spec=spec("a")), now=0) == [
        Reply(outcome=ReplyOutcome.LIMIT_REACHED, child_id="a")
    ]
    assert _snapshot(m) == before
    # A stopped child still counts (it is a spec the machine holds) ...
    m.handle(TerminateChildRequested(child_id="b"), now=0)
    m.handle(ChildStopped(child_id="b"), now=0)
    assert m.handle(StartChildRequested(spec=spec("c")), now=0) == [
        Reply(outcome=ReplyOutcome.LIMIT_REACHED, child_id="c")
    ]
    # ... until it is deleted.
    m.handle(DeleteChildRequested(child_id="b"), now=0)
    assert m.handle(StartChildRequested(spec=spec("c")), now=0) == [
        StartChild(child_id="c", incarnation=3)
    ]


def test_a_pool_drops_children_that_end_for_good() -> None:
    # R4.8: OTP keeps no stopped dynamic child (del_child is dyn_erase).
    sim = booted([], {"i": ["ignore"]}, pool=True)
    for child in (spec("p"), spec("tr", T), spec("tmp", TMP), spec("x"), spec("i")):
        sim.api("start_child", child)
    assert sim.statuses() == {"p": "running", "tr": "running", "tmp": "running", "x": "running"}
    sim.exit("p", "crash")
    sim.exit("tr", "normal")
    sim.exit("tmp", "crash")
    assert sim.api("terminate_child", "x") == "ok"
    assert sim.statuses() == {"p": "running"}  # restarted in place; the rest are gone
    assert sim.api("terminate_child", "x") == "not_found"
    assert lines(sim.trace) == [
        "start p",
        "api start_child p ok",
        "start tr",
        "api start_child tr ok",
        "start tmp",
        "api start_child tmp ok",
        "start x",
        "api start_child x ok",
        "start i ignore",
        "api start_child i ok_undefined",
        "exit p crash",
        "start p",
        "exit tr normal",
        "exit tmp crash",
        "stop x",
        "api terminate_child x ok",
        "api terminate_child x not_found",
    ]


def test_a_pool_drops_a_restarting_child_on_terminate_and_the_quitter_on_giving_up() -> None:
    sim = booted([spec("a"), spec("b")], {"b": ["ok", "fail", "fail"]}, pool=True, max_restarts=2)
    sim.exit("b", settle=False)
    sim.feed_one()  # the first attempt fails: b is restarting, its retry queued
    assert sim.statuses() == {"a": "running", "b": "restarting"}
    assert sim.api("terminate_child", "b") == "ok"  # served before the retry (R6.6)
    assert sim.statuses() == {"a": "running"}
    assert isinstance(sim.commands[-2], CancelRestart)
    sim.exit("a")
    sim.exit("a")
    sim.exit("a")  # the third restart in the window: give up (R5.6)
    assert sim.exit_command().reason is ExitReason.INTENSITY
    assert sim.statuses() == {}  # OTP restart/2 del_child's it before terminate


def test_a_pool_stops_all_its_children_at_once_and_collects_them_in_any_order() -> None:
    # R4.7 (terminate_dynamic_children): one StopChildren in reverse start order,
    # the pending retry dropped first; the children stay listed, stopped.
    m = machine([spec("a"), spec("b"), spec("c", TMP), spec("d")], pool=True)
    m.handle(StartupRequested(), now=0)
    for cid in "abcd":
        m.handle(ChildStarted(child_id=cid), now=0)
    m.handle(ChildExited(child_id="d", incarnation=4, kind=ExitKind.ABNORMAL), now=0)
    assert m.handle(StartFailed(child_id="d"), now=0) == [
        ScheduleRestart(child_id="d", delay=0.0, timer=1)
    ]
    assert m.handle(ShutdownRequested(), now=1) == [
        CancelRestart(child_id="d", timer=1),
        StopChildren(child_ids=("c", "b", "a")),
    ]
    assert (m.phase, m.awaiting, m.awaiting_stops) == (
        Phase.AWAITING_STOP,
        None,
        frozenset("abc"),
    )
    assert m.stopping
    with pytest.raises(IllegalStateTransition):
        m.handle(ChildStopped(child_id="d"), now=1)
    assert m.handle(ChildStopped(child_id="a"), now=1) == []
    assert m.handle(ChildStopped(child_id="c"), now=2) == []
    assert m.handle(ShutdownRequested(), now=2) == []  # already stopping
    out = m.handle(ChildStopped(child_id="b"), now=2)
    assert out == [Exit(reason=ExitReason.SHUTDOWN, restarts=(RestartRecord(at=0, child_id="d"),))]
    assert [(i.id, i.status) for i in m.which_children()] == [
        ("a", ChildStatus.STOPPED),
        ("b", ChildStatus.STOPPED),
        ("d", ChildStatus.STOPPED),
    ]


def test_a_pool_with_nothing_running_exits_at_once() -> None:
    m = machine([], pool=True)
    m.handle(StartupRequested(), now=0)
    assert m.handle(ShutdownRequested(), now=0) == [Exit(reason=ExitReason.SHUTDOWN)]


def test_a_shutdown_aborts_a_pool_start_with_the_others() -> None:
    # D5 in a pool: the start under way is stopped together with the rest.
    m2 = machine([spec("a"), spec("b")], pool=True)
    m2.handle(StartupRequested(), now=0)
    m2.handle(ChildStarted(child_id="a"), now=0)
    assert m2.awaiting == "b"
    assert m2.handle(ShutdownRequested(), now=0) == [StopChildren(child_ids=("b", "a"))]
    assert _waiting(m2) == (None, frozenset("ab"))
    m2.handle(ChildStopped(child_id="b"), now=0)
    assert m2.handle(ChildStopped(child_id="a"), now=0)[-1] == Exit(reason=ExitReason.SHUTDOWN)


def test_a_shutdown_during_a_pool_terminate_child_waits_for_that_stop_beside_the_rest() -> None:
    m = machine([spec("a"), spec("b"), spec("c")], pool=True)
    m.handle(StartupRequested(), now=0)
    for cid in "abc":
        m.handle(ChildStarted(child_id=cid), now=0)
    assert m.handle(TerminateChildRequested(child_id="b"), now=0) == [StopChild(child_id="b")]
    assert m.handle(ShutdownRequested(), now=0) == [
        Reply(outcome=ReplyOutcome.ABORTED, child_id="b"),
        StopChildren(child_ids=("c", "a")),
    ]
    assert _waiting(m) == (None, frozenset("abc"))
    assert m.handle(ChildStopped(child_id="c"), now=0) == []
    assert m.handle(ChildStopped(child_id="b"), now=0) == []
    assert m.handle(ChildStopped(child_id="a"), now=0)[-1] == Exit(reason=ExitReason.SHUTDOWN)
    # With nobody else to stop, the stop under way is all there is: no StopChildren.
    m = machine([spec("a")], pool=True)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(TerminateChildRequested(child_id="a"), now=0)
    assert m.handle(ShutdownRequested(), now=0) == [
        Reply(outcome=ReplyOutcome.ABORTED, child_id="a")
    ]
    assert _waiting(m) == ("a", frozenset("a"))


def test_a_machine_that_is_not_a_pool_stops_one_child_at_a_time() -> None:
    m = machine([spec("a"), spec("b")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    assert m.handle(ShutdownRequested(), now=0) == [StopChild(child_id="b")]
    assert _waiting(m) == ("b", frozenset("b"))


def test_a_hung_incarnation_is_cancelled_and_its_end_is_an_ordinary_failure() -> None:
    sim = booted([spec("a"), spec("b")])
    m = sim.machine
    assert isinstance(m, SupervisorMachine)
    before = _snapshot(m)
    assert m.handle(ChildJudgedHung(child_id="a", incarnation=1), now=0) == [
        CancelChild(child_id="a", incarnation=1)
    ]
    assert _snapshot(m) == before  # a verdict changes nothing
    sim.judge_hung("a")  # the simulated runtime cancels it: it ends abnormally
    assert lines(sim.trace) == ["exit a crash", "start a"]
    assert sim.machine.restart_history(0) == (RestartRecord(at=0.0, child_id="a"),)


@pytest.mark.parametrize(
    "case", ["old incarnation", "unknown", "restarting", "stopping", "shutting down", "exited"]
)
def test_stale_hung_verdicts_are_ignored(case: str) -> None:
    m = machine([spec("a"), spec("b")])
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    verdict = ChildJudgedHung(child_id="a", incarnation=1)
    if case == "old incarnation":
        verdict = ChildJudgedHung(child_id="a", incarnation=7)
    elif case == "unknown":
        verdict = ChildJudgedHung(child_id="nobody", incarnation=1)
    elif case == "restarting":
        m.handle(ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL), now=0)
        m.handle(StartFailed(child_id="a"), now=0)
        verdict = ChildJudgedHung(child_id="a", incarnation=3)
    elif case == "stopping":
        m.handle(TerminateChildRequested(child_id="a"), now=0)
    elif case == "shutting down":
        m.handle(ShutdownRequested(), now=0)  # b is being stopped; a still runs
    else:
        m.handle(ShutdownRequested(), now=0)
        m.handle(ChildStopped(child_id="b"), now=0)
        m.handle(ChildStopped(child_id="a"), now=0)
    before = _snapshot(m)
    assert m.handle(verdict, now=0) == []
    assert _snapshot(m) == before


def test_a_hung_verdict_is_taken_while_another_child_starts_and_may_cancel_that_start() -> None:
    m = machine([spec("a"), spec("b")])
    with pytest.raises(IllegalStateTransition):
        m.handle(ChildJudgedHung(child_id="a", incarnation=0), now=0)  # NEW: nothing runs
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    assert m.awaiting == "b"
    assert m.handle(ChildJudgedHung(child_id="a", incarnation=1), now=0) == [
        CancelChild(child_id="a", incarnation=1)
    ]
    assert m.handle(ChildJudgedHung(child_id="b", incarnation=2), now=0) == [
        CancelChild(child_id="b", incarnation=2)
    ]
    # The cancelled start ends as a failed start: start-up fails (R2.3).
    assert m.handle(StartFailed(child_id="b", error="hung"), now=0) == [StopChild(child_id="a")]


def test_a_pool_scenario_runs_in_the_oracle_format() -> None:
    # The format a simple_one_for_one scenario for the OTP oracle takes
    # (tests/core/sim.py): no static children, start_child names an id only.
    scenario = {
        "strategy": "simple_one_for_one",
        "intensity": 1,
        "period": 3600,
        "template": {"restart": "transient"},
        "max_children": 2,
        "children": [],
        "starts": {"c03": ["ignore"]},
        "steps": [
            {"op": "start_child", "child": {"id": "c01"}},
            {"op": "start_child", "child": {"id": "c02"}},
            {"op": "start_child", "child": {"id": "c03"}},
            {"op": "exit", "id": "c01", "reason": "normal"},
            {"op": "start_child", "child": {"id": "c03"}},
            {"op": "terminate_child", "id": "c01"},
            {"op": "count_children"},
            {"op": "hung", "id": "c02"},
            {"op": "which_children"},
            {"op": "stop"},
        ],
    }
    assert lines(run_scenario(scenario)) == [
        "start c01",
        "api start_child c01 ok",
        "start c02",
        "api start_child c02 ok",
        "api start_child c03 max_children",
        "exit c01 normal",
        "start c03 ignore",
        "api start_child c03 ok_undefined",
        "api terminate_child c01 ok",  # gone already: fine, as in OTP
        "count 1 1 0 1",
        "exit c02 crash",
        "start c02",
        "which c02:running",
        "stop c02",
        "sup_exit shutdown",
    ]

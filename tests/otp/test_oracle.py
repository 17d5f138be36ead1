"""Tests of the OTP oracle itself: well-known OTP supervisor behaviour, trace for trace."""

from __future__ import annotations

from typing import Any

import pytest

from .oracle import otp_available, run_otp, to_erlang_term
from .scenarios import random_scenarios

pytestmark = [
    pytest.mark.otp,
    pytest.mark.skipif(not otp_available(), reason="Erlang/OTP (erl, erlc) not on PATH"),
]

Scenario = dict[str, Any]

START_ABC = [["start", "a", "ok"], ["start", "b", "ok"], ["start", "c", "ok"]]


def scenario(
    strategy: str = "one_for_one",
    *,
    intensity: int = 3,
    children: list[dict[str, Any]] | None = None,
    starts: dict[str, list[str]] | None = None,
    steps: list[dict[str, Any]] | None = None,
    auto_shutdown: str = "never",
) -> Scenario:
    """Build a scenario (children a, b, c by default; period never matters)."""
    return {
        "strategy": strategy,
        "intensity": intensity,
        "period": 3600,
        "auto_shutdown": auto_shutdown,
        "children": children
        if children is not None
        else [{"id": i, "restart": "permanent", "significant": False} for i in "abc"],
        "starts": starts or {},
        "steps": steps or [],
    }


def crash(child_id: str, *, settle: bool = True) -> dict[str, Any]:
    """An "exit" step with reason crash."""
    return {"op": "exit", "id": child_id, "reason": "crash", "settle": settle}


def run_one(s: Scenario) -> list[Any]:
    """Run one scenario, return its trace."""
    [trace] = run_otp([s])
    return trace


def test_one_for_all_restarts_everyone() -> None:
    trace = run_one(scenario("one_for_all", steps=[crash("b"), {"op": "which_children"}]))
    assert trace == [
        *START_ABC,
        ["exit", "b", "crash"],
        ["stop", "c"],
        ["stop", "a"],
        *START_ABC,
        ["which", [["a", "running"], ["b", "running"], ["c", "running"]]],
    ]


def test_rest_for_one_restarts_younger_siblings() -> None:
    trace = run_one(scenario("rest_for_one", steps=[crash("b")]))
    assert trace == [
        *START_ABC,
        ["exit", "b", "crash"],
        ["stop", "c"],
        ["start", "b", "ok"],
        ["start", "c", "ok"],
    ]


def test_intensity_zero_shuts_down_in_reverse_start_order() -> None:
    trace = run_one(scenario(intensity=0, steps=[crash("b"), {"op": "which_children"}]))
    assert trace == [
        *START_ABC,
        ["exit", "b", "crash"],
        ["stop", "c"],
        ["stop", "a"],
        ["sup_exit", "shutdown"],
    ]


def test_failing_restart_retries_until_intensity_is_exceeded() -> None:
    s = scenario(
        intensity=2,
        children=[{"id": "a"}, {"id": "b"}],
        steps=[{"op": "script", "id": "a", "outcomes": ["fail"] * 10}, crash("a")],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "b", "ok"],
        ["exit", "a", "crash"],
        ["start", "a", "fail"],
        ["start", "a", "fail"],
        ["stop", "b"],
        ["sup_exit", "shutdown"],
    ]


def test_temporary_child_is_not_restarted() -> None:
    s = scenario(
        children=[{"id": "a", "restart": "temporary"}, {"id": "b"}],
        steps=[
            crash("a"),
            {"op": "which_children"},
            {"op": "count_children"},
            {"op": "restart_child", "id": "a"},
            crash("a"),
        ],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "b", "ok"],
        ["exit", "a", "crash"],
        ["which", [["b", "running"]]],
        ["count", 1, 1, 0, 1],
        ["api", "restart_child", "a", "not_found"],
        ["exit_skipped", "a"],
    ]


def test_transient_child_normal_exit_is_not_restarted() -> None:
    s = scenario(
        children=[{"id": "a", "restart": "transient"}],
        steps=[
            {"op": "exit", "id": "a", "reason": "normal"},
            {"op": "which_children"},
            {"op": "restart_child", "id": "a"},
            {"op": "exit", "id": "a", "reason": "shutdown"},
            {"op": "exit", "id": "a", "reason": "crash"},
            {"op": "which_children"},
        ],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["exit", "a", "normal"],
        ["which", [["a", "undefined"]]],
        ["start", "a", "ok"],
        ["api", "restart_child", "a", "ok"],
        ["exit", "a", "shutdown"],
        ["exit_skipped", "a"],
        ["which", [["a", "undefined"]]],
    ]


def test_terminate_then_restart_child() -> None:
    s = scenario(
        steps=[
            {"op": "terminate_child", "id": "b"},
            {"op": "which_children"},
            {"op": "count_children"},
            {"op": "restart_child", "id": "b"},
            {"op": "restart_child", "id": "b"},
            {"op": "terminate_child", "id": "zz"},
        ],
    )
    assert run_one(s) == [
        *START_ABC,
        ["stop", "b"],
        ["api", "terminate_child", "b", "ok"],
        ["which", [["a", "running"], ["b", "undefined"], ["c", "running"]]],
        ["count", 3, 2, 0, 3],
        ["start", "b", "ok"],
        ["api", "restart_child", "b", "ok"],
        ["api", "restart_child", "b", "running"],
        ["api", "terminate_child", "zz", "not_found"],
    ]


def test_start_failure_during_init() -> None:
    trace = run_one(scenario(starts={"b": ["fail"]}, steps=[crash("a")]))
    assert trace == [
        ["start", "a", "ok"],
        ["start", "b", "fail"],
        ["stop", "a"],
        ["sup_start_failed", "b"],
    ]


def test_ignore_during_init_keeps_the_spec() -> None:
    trace = run_one(
        scenario(starts={"b": ["ignore"]}, steps=[{"op": "which_children"}, crash("b")])
    )
    assert trace == [
        *START_ABC[:1],
        ["start", "b", "ignore"],
        *START_ABC[2:],
        ["which", [["a", "running"], ["b", "undefined"], ["c", "running"]]],
        ["exit_skipped", "b"],
    ]


def test_start_child_results() -> None:
    d = {"id": "d", "restart": "permanent", "significant": False}
    s = scenario(
        children=[{"id": "a"}],
        starts={"d": ["fail", "ignore"]},
        steps=[
            {"op": "start_child", "child": d},  # fail
            {"op": "start_child", "child": d},  # ignore: kept, not running
            {"op": "start_child", "child": d},  # already_present
            {"op": "restart_child", "id": "d"},  # ok
            {"op": "start_child", "child": d},  # already_started
            {"op": "delete_child", "id": "d"},  # running
            {"op": "terminate_child", "id": "d"},
            {"op": "delete_child", "id": "d"},
            {"op": "delete_child", "id": "d"},  # not_found
            {"op": "start_child", "child": {"id": "t", "restart": "temporary"}},
            {"op": "which_children"},
        ],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "d", "fail"],
        ["api", "start_child", "d", "start_failed"],
        ["start", "d", "ignore"],
        ["api", "start_child", "d", "ok_undefined"],
        ["api", "start_child", "d", "already_present"],
        ["start", "d", "ok"],
        ["api", "restart_child", "d", "ok"],
        ["api", "start_child", "d", "already_started"],
        ["api", "delete_child", "d", "running"],
        ["stop", "d"],
        ["api", "terminate_child", "d", "ok"],
        ["api", "delete_child", "d", "ok"],
        ["api", "delete_child", "d", "not_found"],
        ["start", "t", "ok"],
        ["api", "start_child", "t", "ok"],
        ["which", [["a", "running"], ["t", "running"]]],
    ]


def test_significant_child_and_bad_combination() -> None:
    s = scenario(
        children=[{"id": "a", "restart": "transient", "significant": True}, {"id": "b"}],
        auto_shutdown="any_significant",
        steps=[
            {"op": "start_child", "child": {"id": "x", "significant": True}},
            {"op": "exit", "id": "a", "reason": "normal"},
        ],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "b", "ok"],
        ["api", "start_child", "x", "bad_combination"],
        ["exit", "a", "normal"],
        ["stop", "b"],
        ["sup_exit", "shutdown"],
    ]


def test_call_sneaks_in_between_failed_restart_and_retry() -> None:
    s = scenario(
        children=[{"id": "a"}, {"id": "b"}],
        steps=[
            {"op": "script", "id": "a", "outcomes": ["fail", "fail"]},
            crash("a", settle=False),
            {"op": "restart_child", "id": "a"},
            {"op": "which_children"},
        ],
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "b", "ok"],
        ["exit", "a", "crash"],
        ["start", "a", "fail"],
        ["api", "restart_child", "a", "restarting"],
        ["start", "a", "fail"],
        ["start", "a", "ok"],
        ["which", [["a", "running"], ["b", "running"]]],
    ]


def test_unsettled_exits_queue_up() -> None:
    # b's crash is queued behind a's: the one_for_all restart triggered by a
    # finds b dead already, and b's own 'EXIT' is then flushed by it.
    s = scenario(
        "one_for_all",
        steps=[crash("a", settle=False), crash("b", settle=False), {"op": "count_children"}],
    )
    assert run_one(s) == [
        *START_ABC,
        ["exit", "a", "crash"],
        ["exit", "b", "crash"],
        ["stop", "c"],
        *START_ABC,
        ["count", 3, 3, 0, 3],
    ]


def test_stop_is_queued_behind_an_unsettled_exit() -> None:
    s = scenario(
        children=[{"id": "a"}, {"id": "b"}], steps=[crash("a", settle=False), {"op": "stop"}]
    )
    assert run_one(s) == [
        ["start", "a", "ok"],
        ["start", "b", "ok"],
        ["exit", "a", "crash"],
        ["start", "a", "ok"],
        ["stop", "b"],
        ["stop", "a"],
        ["sup_exit", "shutdown"],
    ]


def test_batch_keeps_order_and_state_is_fresh_per_scenario() -> None:
    s1 = scenario(starts={"a": ["fail"]})
    s2 = scenario(steps=[{"op": "stop"}])
    unicode = scenario(children=[{"id": 'é"x'}])
    assert run_otp([s1, s2, unicode]) == [
        [["start", "a", "fail"], ["sup_start_failed", "a"]],
        [*START_ABC, ["stop", "c"], ["stop", "b"], ["stop", "a"], ["sup_exit", "shutdown"]],
        [["start", 'é"x', "ok"]],
    ]
    assert run_otp([]) == []


def test_bad_flags_are_reported() -> None:
    assert run_one(scenario("bogus")) == [
        ["sup_start_error", "{supervisor_data,{invalid_strategy,bogus}}"]
    ]


def test_malformed_scenario_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown step"):
        run_otp([scenario(steps=[{"op": "nope"}])])
    with pytest.raises(ValueError, match="bad start outcomes"):
        run_otp([scenario(starts={"a": ["maybe"]})])


def test_to_erlang_term() -> None:
    assert (
        to_erlang_term({"a": [1, True, None, "x y"]})
        == '#{<<"a">> => [1, true, undefined, <<"x y">>]}'
    )
    assert to_erlang_term('"') == "<<34>>"


def test_traces_are_deterministic() -> None:
    batch = random_scenarios(20250711, 60)
    first = run_otp(batch)
    assert run_otp(batch) == first
    assert len(first) == len(batch)

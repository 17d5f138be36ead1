"""The routing decisions: the agent lifecycle table, balancing and the route table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith import IllegalStateTransition
from trio_smith._core._routing import (
    AGENT_TRANSITIONS,
    AgentInput,
    AgentStatus,
    RouteTable,
    agent_step,
    choose,
)
from trio_smith.routing import Balance, NoRoute

# ---------------------------------------------------------------- lifecycle

STATES: list[AgentStatus | None] = [None, *AgentStatus]


def _naive_step(status: AgentStatus | None, given: AgentInput) -> AgentStatus | None:
    """The lifecycle as the module docstring draws it; None: refused."""
    if given is AgentInput.BIND:
        return AgentStatus.RUNNING if status in (None, AgentStatus.DOWN) else None
    if given is AgentInput.UNBIND:
        return AgentStatus.DOWN if status is AgentStatus.RUNNING else None
    return AgentStatus.GONE if status in (AgentStatus.RUNNING, AgentStatus.DOWN) else None


@pytest.mark.parametrize("status", STATES, ids=lambda s: "new" if s is None else s.name)
@pytest.mark.parametrize("given", list(AgentInput), ids=lambda i: i.name)
def test_every_move_of_the_table_and_nothing_else(
    status: AgentStatus | None, given: AgentInput
) -> None:
    expected = _naive_step(status, given)
    assert AGENT_TRANSITIONS.get((status, given)) == expected
    if expected is None:
        with pytest.raises(IllegalStateTransition) as info:
            agent_step("a", status, given)
        state = "UNREGISTERED" if status is None else status.name
        assert str(info.value) == f"agent 'a' in state {state} cannot handle {given.name}"
    else:
        assert agent_step("a", status, given) is expected


@given(st.lists(st.sampled_from(list(AgentInput)), max_size=30))
def test_any_run_of_inputs_follows_the_naive_model(inputs: list[AgentInput]) -> None:
    status: AgentStatus | None = None
    for given_input in inputs:
        expected = _naive_step(status, given_input)
        if expected is None:
            with pytest.raises(IllegalStateTransition):
                agent_step("a", status, given_input)
            continue  # refused: nothing changed
        status = agent_step("a", status, given_input)
        assert status is expected
    # GONE is final.
    if status is AgentStatus.GONE:
        for given_input in AgentInput:
            with pytest.raises(IllegalStateTransition):
                agent_step("a", status, given_input)


# ---------------------------------------------------------------- balancing


def _naive_choose(loads: list[int | None], balance: Balance, cursor: int) -> int | None:
    """Try each index in turn from the cursor; least-loaded keeps the first minimum."""
    n = len(loads)
    order = [(cursor + k) % n for k in range(n)] if n else []
    available = [i for i in order if loads[i] is not None]
    if not available:
        return None
    if balance is Balance.ROUND_ROBIN:
        return available[0]
    least = min(loads[i] for i in available if loads[i] is not None)  # type: ignore[type-var]
    return next(i for i in available if loads[i] == least)


loads_strategy = st.lists(st.none() | st.integers(0, 5), max_size=8)


@given(loads_strategy, st.sampled_from(list(Balance)), st.integers(-20, 20))
def test_choose_agrees_with_the_naive_model(
    loads: list[int | None], balance: Balance, cursor: int
) -> None:
    assert choose(loads, balance, cursor) == _naive_choose(loads, balance, cursor)


@given(st.lists(st.booleans(), min_size=1, max_size=6), st.integers(1, 40))
def test_round_robin_is_fair_among_the_available(available: list[bool], rounds: int) -> None:
    """Advancing the cursor past each pick serves every available agent in turn."""
    loads: list[int | None] = [0 if a else None for a in available]
    cursor = 0
    picks = []
    for _ in range(rounds * max(1, sum(available))):
        index = choose(loads, Balance.ROUND_ROBIN, cursor)
        if index is None:
            assert not any(available)
            return
        picks.append(index)
        cursor = index + 1
    served = [i for i, a in enumerate(available) if a]
    # Exactly the available ones, each as often as the others.
    assert sorted(set(picks)) == served
    counts = {i: picks.count(i) for i in served}
    assert max(counts.values()) - min(counts.values()) == 0


def test_choose_examples() -> None:
    assert choose([], Balance.ROUND_ROBIN, 0) is None
    assert choose([None, None], Balance.LEAST_LOADED, 0) is None
    assert choose([3, 1, 1], Balance.LEAST_LOADED, 0) == 1
    assert choose([3, 1, 1], Balance.LEAST_LOADED, 2) == 2  # tie: the turn decides
    assert choose([0, None, 0], Balance.ROUND_ROBIN, 1) == 2  # skips the unavailable
    assert choose([0, None, 0], Balance.ROUND_ROBIN, 3) == 0  # goes round


# ---------------------------------------------------------------- routes


def test_route_table() -> None:
    table = RouteTable(routes={"research": "researcher", "code": "coder"}, default="analyst")
    assert table.role_for("research") == "researcher"
    assert table.role_for("code") == "coder"
    assert table.role_for("poetry") == "analyst"
    strict = RouteTable(routes={"research": "researcher"})
    with pytest.raises(NoRoute) as info:
        strict.role_for("poetry")
    assert str(info.value) == "no route for task type 'poetry' and no default role"
    assert info.value.task_type == "poetry"


@pytest.mark.parametrize(
    ("routes", "default", "error", "message"),
    [
        (["x"], None, TypeError, "routes must be a mapping of task type to role, got ['x']"),
        (
            {"": "r"},
            None,
            ValueError,
            "a task type in routes must be a non-empty str, got ''",
        ),
        (
            {"t": ""},
            None,
            ValueError,
            "the role of task type 't' must be a non-empty str, got ''",
        ),
        ({}, "", ValueError, "default must be a non-empty str or None, got ''"),
    ],
)
def test_route_table_refuses_bad_input(
    routes: object, default: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        RouteTable(routes=routes, default=default)  # type: ignore[arg-type]
    assert str(info.value) == message

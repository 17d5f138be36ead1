"""The delayed-restart timers (``RestartTimers``) against a naive list."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from trio_smith._supervision._timers import RestartTimers

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"), st.sampled_from([0.5, 1.0, 1.0, 2.5, 4.0]), st.sampled_from("ab")
        ),
        st.tuples(st.just("cancel"), st.integers(1, 12)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 3.0])),
    ),
    max_size=40,
)


@given(OPS)
def test_timers_fire_in_deadline_then_scheduling_order_and_never_when_cancelled(
    ops: list[tuple[object, ...]],
) -> None:
    timers = RestartTimers()
    naive: list[tuple[float, int, str]] = []  # live timers: (deadline, timer, child)
    now = 0.0
    number = 0
    for op in ops:
        if op[0] == "add":
            number += 1
            delay, child = op[1], op[2]
            assert isinstance(delay, float)
            assert isinstance(child, str)
            timers.add(now + delay, number, child)
            naive.append((now + delay, number, child))
        elif op[0] == "cancel":
            timers.cancel(op[1])  # type: ignore[arg-type]
            naive = [t for t in naive if t[1] != op[1]]
        else:
            now += op[1]  # type: ignore[operator]
            due = sorted(t for t in naive if t[0] <= now)
            naive = [t for t in naive if t[0] > now]
            assert timers.pop_due(now) == [(child, timer) for _, timer, child in due]
        if naive:
            # A cancelled timer may still be the earliest (it is skipped when due).
            assert timers.next_deadline() <= min(t[0] for t in naive)
    timers.clear()
    assert not timers
    assert timers.next_deadline() == math.inf
    assert timers.pop_due(math.inf) == []

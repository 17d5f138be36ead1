"""Sweeps of the machine's two transition tables: every (state, input) pair.

A pair in the table is handled; a pair missing from it raises
IllegalStateTransition and leaves the machine exactly as it was (design rule 5).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from trio_smith import ChildStatus, IllegalStateTransition
from trio_smith._core._protocol import (
    CancelChild,
    ChildExited,
    ChildJudgedHung,
    ChildStarted,
    ChildStopped,
    DeleteChildRequested,
    ExitKind,
    Input,
    RestartChildRequested,
    ShutdownRequested,
    StartChildRequested,
    StartFailed,
    StartIgnored,
    StartupRequested,
    StopChildren,
    TerminateChildRequested,
    TimerFired,
)
from trio_smith._core._supervision import (
    _PHASE_TABLE,
    CHILD_TRANSITIONS,
    ChildEvent,
    Phase,
    SupervisorMachine,
    _Child,
)

from .sim import machine, spec

INPUTS: list[Input] = [
    StartupRequested(),
    ShutdownRequested(),
    ChildStarted(child_id="a"),
    StartFailed(child_id="a", error="e"),
    StartIgnored(child_id="a"),
    ChildStopped(child_id="a"),
    ChildExited(child_id="a", incarnation=1, kind=ExitKind.ABNORMAL),
    TimerFired(child_id="a", timer=1),
    StartChildRequested(spec=spec("z")),
    RestartChildRequested(child_id="a"),
    TerminateChildRequested(child_id="a"),
    DeleteChildRequested(child_id="a"),
    ChildJudgedHung(child_id="a", incarnation=1),
]


def _new(pool: bool = False) -> SupervisorMachine:
    return machine([spec("a"), spec("b")], pool=pool)


def _idle(pool: bool = False) -> SupervisorMachine:
    m = _new(pool)
    m.handle(StartupRequested(), now=0)
    m.handle(ChildStarted(child_id="a"), now=0)
    m.handle(ChildStarted(child_id="b"), now=0)
    return m


def _awaiting_start() -> SupervisorMachine:
    m = _new()
    m.handle(StartupRequested(), now=0)
    return m


def _awaiting_stop() -> SupervisorMachine:
    m = _idle()
    m.handle(TerminateChildRequested(child_id="a"), now=0)
    return m


def _exited() -> SupervisorMachine:
    m = _idle()
    m.handle(ShutdownRequested(), now=0)
    m.handle(ChildStopped(child_id="b"), now=0)
    m.handle(ChildStopped(child_id="a"), now=0)
    return m


BUILDERS: dict[Phase, Callable[[], SupervisorMachine]] = {
    Phase.NEW: _new,
    Phase.IDLE: _idle,
    Phase.AWAITING_START: _awaiting_start,
    Phase.AWAITING_STOP: _awaiting_stop,
    Phase.EXITED: _exited,
}


def _group_stop() -> SupervisorMachine:
    """A pool in AWAITING_STOP with a StopChildren out (no single awaited child)."""
    m = _idle(pool=True)
    assert m.handle(ShutdownRequested(), now=0) == [StopChildren(child_ids=("b", "a"))]
    return m


#: The phases again, the awaiting ones also as a pool's group stop.
POOL_BUILDERS: dict[str, Callable[[], SupervisorMachine]] = {
    "GROUP_STOP": _group_stop,
    "POOL_IDLE": lambda: _idle(pool=True),
}


def _snapshot(m: SupervisorMachine) -> object:
    return (
        m.phase,
        m.awaiting,
        m.awaiting_stops,
        m.stopping,
        m.which_children(),
        m.restart_history(0),
    )


def test_every_phase_has_a_builder() -> None:
    assert set(BUILDERS) == set(Phase)
    for phase, build in BUILDERS.items():
        assert build().phase is phase


@pytest.mark.parametrize(
    ("phase", "fact"),
    list(itertools.product(list(Phase), INPUTS)),
    ids=lambda v: v.name if isinstance(v, Phase) else type(v).__name__,
)
def test_phase_table_sweep(phase: Phase, fact: Input) -> None:
    m = BUILDERS[phase]()
    before = _snapshot(m)
    if (phase, type(fact)) in _PHASE_TABLE:
        try:
            m.handle(fact, now=0)
        except IllegalStateTransition:  # pragma: no cover - the failure we look for
            pytest.fail(f"{phase.name} lists {type(fact).__name__} but refused it")
        except (LookupError, RuntimeError, ValueError):
            assert _snapshot(m) == before  # an API refusal changes nothing
        if isinstance(fact, ChildJudgedHung):
            assert _snapshot(m) == before  # a verdict never changes the machine
    else:
        with pytest.raises(IllegalStateTransition):
            m.handle(fact, now=0)
        assert _snapshot(m) == before


def test_the_phase_table_takes_every_input_somewhere() -> None:
    taken = {input_type for _, input_type in _PHASE_TABLE}
    assert taken == {type(fact) for fact in INPUTS}


def test_shutdown_is_accepted_in_every_phase() -> None:
    # Outer cancellation can come at any moment; the runtime must always be
    # able to tell the machine.
    assert all((phase, ShutdownRequested) in _PHASE_TABLE for phase in Phase)


@pytest.mark.parametrize(
    ("status", "event"),
    list(itertools.product(list(ChildStatus), list(ChildEvent))),
    ids=lambda v: v.name,
)
def test_child_status_table_sweep(status: ChildStatus, event: ChildEvent) -> None:
    m = _idle()
    child = _Child(spec("x"), status=status)
    target = CHILD_TRANSITIONS.get((status, event))
    if target is None:
        with pytest.raises(
            IllegalStateTransition,
            match=rf"^child 'x' in state {status.name} cannot handle {event.name}$",
        ):
            m._move(child, event)
        assert child.status is status
    else:
        m._move(child, event)
        assert child.status is target


def test_every_child_status_can_be_reached_and_left() -> None:
    sources = {s for s, _ in CHILD_TRANSITIONS}
    targets = set(CHILD_TRANSITIONS.values())
    assert sources == set(ChildStatus)
    assert targets == set(ChildStatus)
    # Only a start leads into STARTING and only a stop into STOPPING.
    into = {t: {e for (_, e), tt in CHILD_TRANSITIONS.items() if tt is t} for t in ChildStatus}
    assert into[ChildStatus.STARTING] == {ChildEvent.START_ISSUED}
    assert into[ChildStatus.STOPPING] == {ChildEvent.STOP_ISSUED}


def test_a_hung_verdict_is_taken_in_every_phase_but_new() -> None:
    # docs/design.md rule 5: the verdict is a fact like any other, in the table.
    assert {p for p, t in _PHASE_TABLE if t is ChildJudgedHung} == set(Phase) - {Phase.NEW}


@pytest.mark.parametrize("phase", [Phase.AWAITING_START, Phase.AWAITING_STOP])
def test_a_hung_verdict_about_another_child_is_taken_mid_operation(phase: Phase) -> None:
    m = BUILDERS[phase]()
    before = _snapshot(m)
    # b runs (incarnation 2) in AWAITING_STOP; in AWAITING_START it has not started.
    out = m.handle(ChildJudgedHung(child_id="b", incarnation=2), now=0)
    expected = [CancelChild(child_id="b", incarnation=2)] if phase is Phase.AWAITING_STOP else []
    assert out == expected
    assert _snapshot(m) == before


@pytest.mark.parametrize("name", sorted(POOL_BUILDERS))
@pytest.mark.parametrize("fact", INPUTS, ids=lambda v: type(v).__name__)
def test_pool_phase_table_sweep(name: str, fact: Input) -> None:
    # The same table drives a pool; in a group stop only the ChildStopped of
    # a child still being stopped (and a verdict, a shutdown) is legal.
    m = POOL_BUILDERS[name]()
    before = _snapshot(m)
    legal = (m.phase, type(fact)) in _PHASE_TABLE
    if name == "GROUP_STOP" and isinstance(fact, ChildStopped):
        legal = fact.child_id in m.awaiting_stops
    if legal:
        try:
            m.handle(fact, now=0)
        except IllegalStateTransition:  # pragma: no cover - the failure we look for
            pytest.fail(f"{name} refused {type(fact).__name__}")
        except (LookupError, RuntimeError, ValueError):
            assert _snapshot(m) == before
    else:
        with pytest.raises(IllegalStateTransition):
            m.handle(fact, now=0)
        assert _snapshot(m) == before


def test_a_group_stop_takes_each_stop_once_in_any_order() -> None:
    m = _group_stop()
    assert (m.phase, m.awaiting, m.awaiting_stops) == (
        Phase.AWAITING_STOP,
        None,
        frozenset({"a", "b"}),
    )
    assert m.handle(ChildStopped(child_id="a"), now=0) == []
    before = _snapshot(m)
    with pytest.raises(IllegalStateTransition, match=r"AWAITING_STOP\(\['b'\]\)"):
        m.handle(ChildStopped(child_id="a"), now=0)
    assert _snapshot(m) == before
    assert m.awaiting_stops == frozenset({"b"})
    out = m.handle(ChildStopped(child_id="b"), now=0)
    assert [type(c).__name__ for c in out] == ["Exit"]
    assert (m.phase, m.awaiting, m.awaiting_stops) == (Phase.EXITED, None, frozenset())

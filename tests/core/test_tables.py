"""Sweeps of the machine's two transition tables: every (state, input) pair.

A pair in the table is handled; a pair missing from it raises
IllegalStateTransition and leaves the machine exactly as it was (STYLE.md 3).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from trio_smith import ChildStatus, IllegalStateTransition
from trio_smith._core._protocol import (
    ChildExited,
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
]


def _new() -> SupervisorMachine:
    return machine([spec("a"), spec("b")])


def _idle() -> SupervisorMachine:
    m = _new()
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


def _snapshot(m: SupervisorMachine) -> object:
    return (m.phase, m.awaiting, m.stopping, m.which_children(), m.restart_history(0))


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

"""``ServiceMachine`` (serve's phase table) swept pair by pair and against a naive model.

docs/design.md rules 5 and 43.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_smith import IllegalStateTransition
from trio_smith._core._service import (
    _TABLE,
    EXIT_CUT_SHORT,
    EXIT_GAVE_UP,
    EXIT_OK,
    ServiceAction,
    ServiceInput,
    ServiceMachine,
    ServicePhase,
    exit_code,
)


class Naive:
    """The rules in words: started -> ready; first stop signal -> shutdown; a second,
    or the deadline while stopping -> cut; ended ends. Anything else is refused."""

    def __init__(self) -> None:
        self.started = False
        self.signals = 0
        self.cut = False
        self.ended = False

    def handle(self, input: ServiceInput) -> tuple[ServiceAction, ...] | None:
        if self.ended:
            return () if input is ServiceInput.STOP_SIGNAL else None
        if input is ServiceInput.ENDED:
            self.ended = True
            return ()
        if input is ServiceInput.STARTED:
            if self.signals:
                return ()  # the stop has begun: no READY=1, whenever the start ends
            if self.started:
                return None
            self.started = True
            return (ServiceAction.READY,)
        if input is ServiceInput.STOP_SIGNAL:
            self.signals += 1
            if self.signals == 1:
                return (ServiceAction.SHUTDOWN,)
            if not self.cut:
                self.cut = True
                return (ServiceAction.CUT_SHORT,)
            return ()
        # The deadline runs only while stopping and not yet cut.
        if self.signals == 1 and not self.cut:
            self.cut = True
            return (ServiceAction.CUT_SHORT,)
        return None


@given(st.lists(st.sampled_from(list(ServiceInput)), max_size=12))
def test_the_machine_matches_the_naive_model(inputs: list[ServiceInput]) -> None:
    machine, naive = ServiceMachine(), Naive()
    for input in inputs:
        expected = naive.handle(input)
        if expected is None:
            before = (machine.phase, machine.signalled, machine.cut_short)
            with pytest.raises(IllegalStateTransition):
                machine.handle(input)
            assert (machine.phase, machine.signalled, machine.cut_short) == before
            return
        assert machine.handle(input) == expected
        assert machine.cut_short == naive.cut
        assert machine.signalled == (naive.signals > 0)
        assert (machine.phase is ServicePhase.ENDED) == naive.ended


def _reach(phase: ServicePhase) -> ServiceMachine:
    machine = ServiceMachine()
    path = {
        ServicePhase.STARTING: [],
        ServicePhase.RUNNING: [ServiceInput.STARTED],
        ServicePhase.STOPPING: [ServiceInput.STOP_SIGNAL],
        ServicePhase.CUTTING: [ServiceInput.STOP_SIGNAL, ServiceInput.DEADLINE],
        ServicePhase.ENDED: [ServiceInput.ENDED],
    }[phase]
    for input in path:
        machine.handle(input)
    assert machine.phase is phase
    return machine


@pytest.mark.parametrize(("phase", "input"), list(itertools.product(ServicePhase, ServiceInput)))
def test_every_pair_is_in_the_table_or_refused_changing_nothing(
    phase: ServicePhase, input: ServiceInput
) -> None:
    machine = _reach(phase)
    row = _TABLE.get((phase, input))
    if row is None:
        with pytest.raises(IllegalStateTransition) as caught:
            machine.handle(input)
        assert str(caught.value) == f"service in state {phase.value} cannot handle {input.value}"
        assert machine.phase is phase
    else:
        assert machine.handle(input) == row[1]
        assert machine.phase is row[0]


def test_exit_codes() -> None:
    assert exit_code(gave_up=False, cut_short=False) == EXIT_OK == 0
    assert exit_code(gave_up=True, cut_short=False) == EXIT_GAVE_UP == 1
    assert exit_code(gave_up=False, cut_short=True) == EXIT_CUT_SHORT == 3
    assert exit_code(gave_up=True, cut_short=True) == EXIT_GAVE_UP

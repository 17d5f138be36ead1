"""The fused transition ``handle_exit_fast`` decides exactly what ``handle`` decides.

The runtime's hot path (a crashing child restarted at once in its own task)
replaces ``handle(ChildExited)`` -> ``[StartChild]`` -> ``handle(ChildStarted)``
with one call. These tests run the same scenarios through both and require
identical traces, so the shortcut can never change a decision.
"""

from __future__ import annotations

from typing import Any

from trio_smith import ChildInfo, ChildStatus, RestartRecord
from trio_smith._core._protocol import (
    ChildExited,
    ChildStarted,
    ChildStopped,
    Command,
    Exit,
    ExitKind,
    ExitReason,
    Input,
    StartChild,
    StartupRequested,
    StopChild,
)
from trio_smith._core._supervision import SupervisorMachine

from ..otp.scenarios import Scenario, random_scenarios
from .sim import machine, run_scenario, spec


class FastPath:
    """Takes every ChildExited through ``handle_exit_fast``, as the runtime does.

    With ``awaits_start`` (children that take ``task_status``), the start's
    result is fed as ``handle`` would get it.
    """

    def __init__(self, inner: SupervisorMachine, awaits_start: bool = False) -> None:
        self.inner = inner
        self.awaits_start = awaits_start
        self.pending_start: str | None = None
        self.fused = 0
        self.fused_starts = 0

    def handle(self, input: Input, *, now: float) -> list[Command]:
        if self.pending_start is not None:
            # The fused call already applied this start's result.
            assert input == ChildStarted(child_id=self.pending_start)
            self.pending_start = None
            return []
        if (
            self.awaits_start
            and isinstance(input, ChildStarted)
            and self.inner.handle_started_fast(input.child_id, now=now)
        ):
            self.fused_starts += 1
            return []
        if isinstance(input, ChildExited):
            out = self.inner.handle_exit_fast(
                input.child_id,
                input.incarnation,
                input.kind,
                input.error,
                now=now,
                awaits_start=self.awaits_start,
            )
            if isinstance(out, int):
                self.fused += 1
                if not self.awaits_start:
                    self.pending_start = input.child_id
                return [StartChild(child_id=input.child_id, incarnation=out)]
            return out
        return self.inner.handle(input, now=now)

    def which_children(self) -> list[ChildInfo]:
        return self.inner.which_children()

    def restart_history(self, now: float) -> tuple[RestartRecord, ...]:
        return self.inner.restart_history(now)


def _starting_at_once(scenario: Scenario) -> Scenario:
    """The fast path is only for children that start at once: drop scripted start outcomes."""
    steps = [step for step in scenario["steps"] if step["op"] != "script"]
    return {**scenario, "starts": {}, "steps": steps}


SCENARIOS = [_starting_at_once(s) for s in random_scenarios(20261124, 1500)]


def _fast(*args: Any, **kwargs: Any) -> FastPath:
    return FastPath(machine(*args, **kwargs))


def test_fast_path_gives_the_same_traces_as_handle() -> None:
    wrappers: list[FastPath] = []

    def factory(*args: Any, **kwargs: Any) -> FastPath:
        wrappers.append(_fast(*args, **kwargs))
        return wrappers[-1]

    for index, scenario in enumerate(SCENARIOS):
        assert run_scenario(scenario, factory) == run_scenario(scenario, machine), index
    fused = sum(w.fused for w in wrappers)
    # The sample must really exercise the shortcut.
    assert len(SCENARIOS) >= 200
    assert fused >= 200


def test_fast_path_awaiting_the_start_gives_the_same_traces_as_handle() -> None:
    # Children with task_status: any start result may follow the fused
    # restart (started, failed, ignored, or a shutdown interrupting it), so
    # the scenarios keep their scripted start outcomes.
    wrappers: list[FastPath] = []

    def factory(*args: Any, **kwargs: Any) -> FastPath:
        wrappers.append(FastPath(machine(*args, **kwargs), awaits_start=True))
        return wrappers[-1]

    scenarios = random_scenarios(20261205, 1500)
    for index, scenario in enumerate(scenarios):
        assert run_scenario(scenario, factory) == run_scenario(scenario, machine), index
    assert sum(w.fused for w in wrappers) >= 200
    assert sum(w.fused_starts for w in wrappers) >= 200
    assert any(s["starts"] for s in scenarios)


def test_fast_path_awaiting_the_start_leaves_the_start_out() -> None:
    m = _booted(max_restarts=5)
    assert m.handle_exit_fast("a", 1, ExitKind.ABNORMAL, None, now=1.0, awaits_start=True) == 3
    assert (m.phase.name, m.awaiting) == ("AWAITING_START", "a")
    assert m.which_children()[0].status is ChildStatus.STARTING
    assert not m.handle_started_fast("b", now=1.0)  # not the start that is out
    assert m.handle_started_fast("a", now=1.0)
    assert (m.phase.name, m.which_children()[0].status) == ("IDLE", ChildStatus.RUNNING)
    assert m.which_children()[0].restarts == 1
    assert not m.handle_started_fast("a", now=1.0)  # nothing is out any more


def _booted(max_restarts: int) -> SupervisorMachine:
    m = machine([spec("a"), spec("b")], max_restarts=max_restarts, within=10.0)
    assert m.handle(StartupRequested(), now=0.0) == [StartChild(child_id="a", incarnation=1)]
    m.handle(ChildStarted(child_id="a"), now=0.0)
    m.handle(ChildStarted(child_id="b"), now=0.0)
    return m


def test_fast_path_restarts_in_place_and_counts_the_restart() -> None:
    m = _booted(max_restarts=5)
    assert m.handle_exit_fast("a", 1, ExitKind.ABNORMAL, ValueError("x"), now=1.0) == 3
    info = m.which_children()[0]
    assert (info.status, info.restarts) == (ChildStatus.RUNNING, 1)
    assert m.restart_history(1.0) == (RestartRecord(at=1.0, child_id="a"),)


def test_fast_path_gives_up_as_handle_does() -> None:
    m = _booted(max_restarts=0)
    error = ValueError("x")
    assert m.handle_exit_fast("a", 1, ExitKind.ABNORMAL, error, now=1.0) == [
        StopChild(child_id="b")
    ]
    assert m.handle(ChildStopped(child_id="b"), now=1.0) == [
        Exit(
            reason=ExitReason.INTENSITY,
            child_id="a",
            error=error,
            restarts=(RestartRecord(at=1.0, child_id="a"),),
        )
    ]


def test_fast_path_falls_back_for_a_stale_exit() -> None:
    m = _booted(max_restarts=5)
    assert m.handle_exit_fast("a", 7, ExitKind.ABNORMAL, None, now=1.0) == []
    assert m.restart_history(1.0) == ()


def test_fast_path_gives_the_same_traces_in_a_pool() -> None:
    # A pool drops children that end for good, the one that makes the
    # machine give up included: the fused transition must do the same.
    wrappers: list[FastPath] = []

    def pooled(*args: Any, **kwargs: Any) -> SupervisorMachine:
        return machine(*args, pool=True, max_children=4, **kwargs)

    def factory(*args: Any, **kwargs: Any) -> FastPath:
        wrappers.append(FastPath(pooled(*args, **kwargs)))
        return wrappers[-1]

    one_for_one = [s for s in SCENARIOS if s["strategy"] == "one_for_one"]
    for index, scenario in enumerate(one_for_one):
        assert run_scenario(scenario, factory) == run_scenario(scenario, pooled), index
    assert len(one_for_one) >= 200
    assert sum(w.fused for w in wrappers) >= 100
    assert any(w.inner.phase.name == "EXITED" and w.inner.size == 0 for w in wrappers)

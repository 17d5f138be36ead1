"""trio_smith's supervision core against a real Erlang/OTP supervisor, trace for trace.

Random scenarios (crashes and normal exits, settled or queued behind each
other, scripted start failures and ignores, the child API, which/count,
shutdowns) run on OTP 25's ``supervisor`` through tests/otp/oracle.py and on
``SupervisorMachine`` through the simulated runtime of tests/core/sim.py; the
traces must be equal. The naive reference model must agree too.

``recorded.json`` holds a batch of scenarios with the traces real OTP gave,
so the comparison also runs where Erlang is not installed;
``python -m tests.otp.record`` regenerates it.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from trio_smith import AutoShutdown, Strategy

from ..core.reference_model import ReferenceSupervisor
from ..core.sim import Trace, machine, run_scenario
from .oracle import otp_available, run_otp
from .scenarios import Scenario, random_scenarios

RECORDED = pathlib.Path(__file__).with_name("recorded.json")

#: The live batch: seed and size (each OTP run of 500 takes about 2 s).
LIVE_SEED, LIVE_COUNT = 20261123, 500


def _reference(*args: Any, **kwargs: Any) -> ReferenceSupervisor:
    kwargs["strategy"] = Strategy(kwargs["strategy"])
    kwargs["auto_shutdown"] = AutoShutdown(kwargs["auto_shutdown"])
    return ReferenceSupervisor(*args, backoff=None, random=lambda: 0.0, **kwargs)


def _first_difference(a: Trace, b: Trace) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"entry {i}: OTP {x!r} vs trio_smith {y!r}"
    return f"lengths {len(a)} vs {len(b)}"


def _compare(scenarios: list[Scenario], otp: list[Trace]) -> None:
    failures = []
    for index, (scenario, expected) in enumerate(zip(scenarios, otp, strict=True)):
        for name, factory in (("machine", machine), ("reference", _reference)):
            got = run_scenario(scenario, factory)
            if got != expected:
                failures.append(
                    f"scenario {index} ({name}): {_first_difference(expected, got)}\n"
                    f"  scenario: {json.dumps(scenario)}\n"
                    f"  OTP:        {json.dumps(expected)}\n"
                    f"  trio_smith: {json.dumps(got)}"
                )
    assert not failures, f"{len(failures)} differences; first:\n" + failures[0]


def _recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(RECORDED.read_text())
    return data


def test_recorded_otp_traces_match() -> None:
    data = _recorded()
    assert len(data["scenarios"]) >= 200
    _compare(data["scenarios"], data["otp_traces"])


@pytest.mark.otp
@pytest.mark.skipif(not otp_available(), reason="Erlang/OTP (erl, erlc) not on PATH")
def test_live_otp_traces_match() -> None:
    scenarios = random_scenarios(LIVE_SEED, LIVE_COUNT)
    _compare(scenarios, run_otp(scenarios))


@pytest.mark.otp
@pytest.mark.skipif(not otp_available(), reason="Erlang/OTP (erl, erlc) not on PATH")
def test_recorded_traces_are_what_otp_still_gives() -> None:
    data = _recorded()
    assert random_scenarios(data["seed"], len(data["scenarios"])) == data["scenarios"]
    assert run_otp(data["scenarios"]) == data["otp_traces"]


def test_the_recorded_batch_exercises_the_interesting_paths() -> None:
    # Guards the generator: a batch of dull scenarios would prove little.
    traces = _recorded()["otp_traces"]
    flat = [entry for trace in traces for entry in trace]
    kinds = {entry[0] for entry in flat}
    assert {"start", "stop", "exit", "api", "which", "count", "sup_exit"} <= kinds
    assert sum(1 for e in flat if e[0] == "start" and e[2] == "fail") >= 50
    assert sum(1 for e in flat if e[:2] == ["api", "restart_child"] and e[3] == "restarting") >= 1
    assert sum(1 for t in traces if t and t[-1] == ["sup_exit", "shutdown"]) >= 40
    assert any(
        e[0] == "which" and isinstance(e[1], list) and any(s == "restarting" for _, s in e[1])
        for e in flat
    )

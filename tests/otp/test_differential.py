"""trio_smith's supervision core against a real Erlang/OTP supervisor, trace for trace.

Random scenarios (crashes and normal exits, settled or queued behind each
other, scripted start failures and ignores, the child API, which/count,
shutdowns) run on OTP 25's ``supervisor`` through tests/otp/oracle.py and on
``SupervisorMachine`` through the simulated runtime of tests/core/sim.py; the
traces must be equal. The naive reference model must agree too.

A second family compares ``SupervisorMachine(pool=True)`` (strategy
one_for_one, no ``max_children``: OTP has none) with OTP's
``simple_one_for_one``: children started one by one with
``supervisor:start_child(Sup, [Id])``, their exits (normal, shutdown, crash;
settled or queued), failed and ignored starts, failed restarts up to the
intensity, ``terminate_child``, which/count and the shutdown. What differs by
design is normalised, each time for a reason:

* ids: OTP 25 knows a dynamic child by its pid. The harness keeps the pids
  its start function gave per id; ``which_children`` (ids ``undefined``,
  restarting children without a pid) is rebuilt with ids from the
  supervisor's state at the reply, and ``terminate_child`` names the id's
  latest pid, or a dead pid for an id that never ran (D3: handles, not pids).
* order: ``which_children`` is sorted by id, and ids are zero-padded and
  given in start order, so this is start order (D4; OTP lists a pool in the
  order of its internal map).
* ``terminate_child`` of a child that is gone: OTP answers ``ok`` for a dead
  pid, the core refuses the id (``not_found``): ``ok`` (tests/core/sim.py;
  D3: "a handle whose child is gone is fine").
* ``count_children`` of a pool: the core has no template spec, OTP counts it:
  specs = 1 (tests/core/sim.py).
* the shutdown stops a pool's children at once (rule 35, ``StopChildren``);
  OTP does too, so the order in which they record their stop is the
  scheduler's: each run of consecutive ``stop`` entries of an OTP pool trace
  is written in reverse start order, the order of ``StopChildren``.

Left out by the generator (see ``random_pool_scenario``): ``restart_child``
and ``delete_child`` (D25), restarts that return ``ignore`` (D24), a
``terminate_child`` queued behind its child's exit whose restart may succeed
first (D3: a handle names the child, a pid one incarnation), and
``count_children`` after a ``terminate_child`` of a possibly restarting child
(an OTP 25 bug: ``active`` stays one too low).

``recorded.json`` holds a batch of each family with the traces real OTP gave,
so the comparison also runs where Erlang is not installed;
``python -m tests.otp.record`` regenerates it.
"""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

import pytest

from trio_smith import AutoShutdown, Strategy

from ..core.reference_model import ReferenceSupervisor
from ..core.sim import Trace, machine, run_scenario
from .oracle import otp_available, run_otp
from .scenarios import Scenario, random_pool_scenarios, random_scenarios

RECORDED = pathlib.Path(__file__).with_name("recorded.json")

#: The live batch: seed and size (each OTP run of 500 takes about 2 s).
LIVE_SEED, LIVE_COUNT = 20261123, 500
#: The live simple_one_for_one batch (about 2 s on OTP).
LIVE_POOL_SEED, LIVE_POOL_COUNT = 20261124, 500


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


def test_recorded_pool_otp_traces_match() -> None:
    data = _recorded()
    assert len(data["pool_scenarios"]) >= 200
    _compare(data["pool_scenarios"], data["pool_otp_traces"])


@pytest.mark.otp
@pytest.mark.skipif(not otp_available(), reason="Erlang/OTP (erl, erlc) not on PATH")
def test_live_pool_otp_traces_match() -> None:
    scenarios = random_pool_scenarios(LIVE_POOL_SEED, LIVE_POOL_COUNT)
    _compare(scenarios, run_otp(scenarios))


@pytest.mark.otp
@pytest.mark.skipif(not otp_available(), reason="Erlang/OTP (erl, erlc) not on PATH")
def test_recorded_pool_traces_are_what_otp_still_gives() -> None:
    data = _recorded()
    scenarios = data["pool_scenarios"]
    assert random_pool_scenarios(data["pool_seed"], len(scenarios)) == scenarios
    assert run_otp(scenarios) == data["pool_otp_traces"]


def test_the_recorded_pool_batch_exercises_the_interesting_paths() -> None:
    data = _recorded()
    scenarios, traces = data["pool_scenarios"], data["pool_otp_traces"]
    assert {s["strategy"] for s in scenarios} == {"simple_one_for_one"}
    assert {s["template"]["restart"] for s in scenarios} == {"permanent", "transient", "temporary"}
    flat = [entry for trace in traces for entry in trace]
    results = {(e[1], e[3]) for e in flat if e[0] == "api"}
    assert {
        ("start_child", "ok"),
        ("start_child", "ok_undefined"),
        ("start_child", "start_failed"),
        ("terminate_child", "ok"),
    } <= results
    assert not {op for op, _ in results} - {"start_child", "terminate_child"}
    assert sum(1 for e in flat if e[0] == "start" and e[2] == "fail") >= 100
    assert sum(1 for e in flat if e[0] == "count") >= 50
    # A restarting child listed, and one terminated while restarting.
    assert any(
        e[0] == "which" and isinstance(e[1], list) and any(s == "restarting" for _, s in e[1])
        for e in flat
    )
    assert any(
        e[:2] == ["api", "terminate_child"] and p[0] == "start" and p[2] == "fail"
        for t in traces
        for p, e in itertools.pairwise(t)
    )
    # Shutdowns, by the parent or by the intensity, with several children to stop.
    assert sum(1 for t in traces if t and t[-1] == ["sup_exit", "shutdown"]) >= 100
    assert sum(1 for t in traces for a, b in itertools.pairwise(t) if a[0] == b[0] == "stop") >= 50
    # A pool holds no stopped child: nothing listed as undefined.
    assert not any(e[0] == "which" and "undefined" in str(e[1]) for e in flat)

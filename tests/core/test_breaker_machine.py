"""The circuit breaker's pure machine: tables, a naive model under hypothesis, waits, config.

The reference is resilience4j's ``CircuitBreakerStateMachine`` (docs/design.md
rule 23; B1-B8 are the departures). The stateful test drives
:class:`BreakerMachine` beside ``NaiveBreaker``, written from resilience4j's
rules alone: it keeps every recorded outcome with its time and
recomputes the window from scratch, counts permits with a plain int and
names states with strings. After every step both must agree on the state,
the attempts, the rates, the window's counts, the not-permitted count, the
deadlines, the signals and every acquire's answer. Window sizes, minimums
and permits of 10**9 are drawn too: the naive model holds only what was
recorded, and so must the machine (docs/design.md rule 41).
"""

from __future__ import annotations

import itertools
import math
import random
import re
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from trio_smith import IllegalStateTransition
from trio_smith._core._breaker import (
    LEGAL,
    BreakerConfig,
    BreakerMachine,
    CheckResult,
    CircuitState,
    SignalKind,
    SlidingWindowType,
    WaitInterval,
)

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
DISABLED = CircuitState.DISABLED
FORCED_OPEN = CircuitState.FORCED_OPEN
METRICS_ONLY = CircuitState.METRICS_ONLY

#: resilience4j ``StateTransition``: the only three pairs it lacks.
ILLEGAL = {(CLOSED, HALF_OPEN), (METRICS_ONLY, OPEN), (METRICS_ONLY, HALF_OPEN)}


def machine_in(state: CircuitState, **config: Any) -> BreakerMachine:
    """A machine that starts in ``state`` at t=0, observed, calls included."""
    options: dict[str, Any] = dict(
        sliding_window_size=4,
        minimum_calls=4,
        permitted_calls_in_half_open=3,
        wait_duration_in_open_state=5.0,
    )
    options.update(config)
    machine = BreakerMachine(
        BreakerConfig(initial_state=state, **options), name="t", now=0.0, random=lambda: 0.5
    )
    machine.observed = True
    machine.calls_observed = True
    return machine


def snapshot(machine: BreakerMachine) -> tuple[object, ...]:
    phase = machine.phase
    window = phase.metrics.window
    return (
        machine.state,
        machine.attempts,
        phase.generation,
        phase.deadline,
        phase.permits,
        window.total,
        window.failed,
        window.slow,
        phase.metrics.not_permitted,
    )


def kinds(machine: BreakerMachine) -> list[SignalKind]:
    got = [signal.kind for signal in machine.signals]
    machine.signals.clear()
    return got


# ---------------------------------------------------------------- transition table


@pytest.mark.parametrize("target", list(CircuitState), ids=lambda s: s.value)
@pytest.mark.parametrize("source", list(CircuitState), ids=lambda s: s.value)
def test_manual_transition_table_refuses_exactly_three_pairs(
    source: CircuitState, target: CircuitState
) -> None:
    machine = machine_in(source)
    # Give the stay something to lose: an outcome where one is recorded, a
    # rejection where calls are refused, a held permit in HALF_OPEN.
    permit = machine.acquire(0.5)
    if permit is not None:
        machine.failed(0.1, 0.5)
    kinds(machine)
    before = snapshot(machine)
    if (source, target) in ILLEGAL:
        message = (
            f"circuit breaker 't' in state {source.value} cannot handle "
            f"a transition to {target.value}"
        )
        with pytest.raises(IllegalStateTransition, match=f"^{re.escape(message)}$"):
            machine.transition_to(target, 1.0)
        assert snapshot(machine) == before
        assert machine.signals == []
        return
    machine.transition_to(target, 1.0)
    assert machine.state is target
    expected_attempts = {
        OPEN: before[1] + 1,  # type: ignore[operator]
        FORCED_OPEN: before[1] + 1,  # type: ignore[operator]
        HALF_OPEN: before[1],
    }.get(target, 0)
    assert machine.attempts == expected_attempts
    window = machine.phase.metrics.window
    if target is OPEN:
        # OPEN keeps the metrics of the stay it came from (late results land there).
        assert (window.total, window.failed, machine.phase.metrics.not_permitted) == (
            before[5],
            before[6],
            before[8],
        )
        assert machine.phase.deadline == 1.0 + 5.0
    else:
        assert (window.total, window.failed, machine.phase.metrics.not_permitted) == (0, 0, 0)
    # A new stay every time, X -> X included (resilience4j's OPEN -> OPEN),
    # but a signal only on a change.
    assert machine.phase.generation != before[2]
    expected = [SignalKind.STATE_TRANSITION] if source is not target else []
    assert kinds(machine) == expected


def test_legal_table_is_the_33_pairs_of_resilience4j() -> None:
    assert len(LEGAL) == 33
    assert {(a, b) for a in CircuitState for b in CircuitState} - LEGAL == ILLEGAL


def test_open_for_from_metrics_only_is_illegal_and_changes_nothing() -> None:
    machine = machine_in(METRICS_ONLY)
    before = snapshot(machine)
    message = "circuit breaker 't' in state METRICS_ONLY cannot handle a transition to OPEN"
    with pytest.raises(IllegalStateTransition, match=f"^{re.escape(message)}$"):
        machine.open_for(3.0, 1.0)
    assert snapshot(machine) == before


# ---------------------------------------------------------------- (state, input) table

#: Per state: (acquire admits, an outcome is recorded, signals of a failed call).
STATE_TABLE = {
    CLOSED: (True, True, [SignalKind.ERROR]),
    OPEN: (False, True, [SignalKind.ERROR]),
    HALF_OPEN: (True, True, [SignalKind.ERROR]),
    DISABLED: (True, False, []),
    FORCED_OPEN: (False, False, []),
    METRICS_ONLY: (True, True, [SignalKind.ERROR]),
}


@pytest.mark.parametrize("state", list(CircuitState), ids=lambda s: s.value)
def test_each_state_admits_records_and_publishes_as_resilience4j(state: CircuitState) -> None:
    admits, records, failure_signals = STATE_TABLE[state]
    machine = machine_in(state)
    permit = machine.acquire(1.0)
    assert (permit is not None) is admits
    if admits:
        assert kinds(machine) == []
        assert machine.phase.metrics.not_permitted == 0
    else:
        assert machine.phase.metrics.not_permitted == 1
        # FORCED_OPEN counts the rejection but does not publish it (S19).
        assert kinds(machine) == ([SignalKind.NOT_PERMITTED] if state is OPEN else [])
    machine.failed(0.1, 1.0)
    assert machine.phase.metrics.window.total == (1 if records else 0)
    assert kinds(machine) == failure_signals
    machine.succeeded(0.1, 1.0)
    assert kinds(machine) == [
        SignalKind.SUCCESS if kind is SignalKind.ERROR else kind for kind in failure_signals
    ]
    machine.ignored(permit if permit is not None else -1, 0.1)
    assert kinds(machine) == ([SignalKind.IGNORED_ERROR] if failure_signals else [])
    assert machine.state is state


@pytest.mark.parametrize("state", list(CircuitState), ids=lambda s: s.value)
def test_reset_is_a_fresh_closed_with_transition_then_reset_signals(state: CircuitState) -> None:
    # resilience4j's reset(): STATE_TRANSITION only when the state was not CLOSED, RESET always.
    machine = machine_in(state)
    machine.reset(1.0)
    assert (machine.state, machine.attempts, machine.phase.metrics.window.total) == (CLOSED, 0, 0)
    expected = [SignalKind.RESET]
    if state is not CLOSED:
        expected.insert(0, SignalKind.STATE_TRANSITION)
    assert kinds(machine) == expected


@pytest.mark.parametrize(
    ("state", "after"),
    [
        (CLOSED, CLOSED),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (DISABLED, DISABLED),
        (FORCED_OPEN, FORCED_OPEN),
        (METRICS_ONLY, METRICS_ONLY),
    ],
    ids=lambda s: s.value,
)
def test_deadline_reached_moves_only_open_and_limited_half_open(
    state: CircuitState, after: CircuitState
) -> None:
    machine = machine_in(state, max_wait_duration_in_half_open_state=2.0)
    deadline = machine.next_deadline()
    assert deadline == {OPEN: 5.0, HALF_OPEN: 2.0}.get(state)
    machine.deadline_reached(1.0)  # early: nothing
    assert machine.state is state
    machine.deadline_reached(1000.0)
    assert machine.state is after


def test_deadline_reached_before_the_deadline_after_a_move_does_nothing() -> None:
    machine = machine_in(OPEN)
    machine.open_for(10.0, 1.0)  # the deadline moved to 11
    machine.deadline_reached(5.0)  # a timer armed for the old one fires late
    assert machine.state is OPEN
    assert machine.retry_after(5.0) == 6.0


# ---------------------------------------------------------------- the naive model

STATES = ["CLOSED", "OPEN", "HALF_OPEN", "DISABLED", "FORCED_OPEN", "METRICS_ONLY"]
NAIVE_ILLEGAL = {("CLOSED", "HALF_OPEN"), ("METRICS_ONLY", "OPEN"), ("METRICS_ONLY", "HALF_OPEN")}
#: States whose events go out (allowPublish); the others only transitions and resets.
NAIVE_PUBLISHING = {"CLOSED", "OPEN", "HALF_OPEN", "METRICS_ONLY"}
#: The kinds said once per call, only when calls are observed (rule 41).
NAIVE_PER_CALL = {"success", "error", "ignored_error", "not_permitted"}


@dataclass(frozen=True)
class NaiveConfig:
    failure_threshold: float
    slow_threshold: float
    slow_duration: float
    time_window: bool
    window_size: int
    minimum_calls: int
    permitted: int
    #: The wait in OPEN: milliseconds of the first, growth, cap (ms or None), randomization.
    wait_ms: int
    wait_growth: float
    wait_cap_ms: int | None
    wait_spread: float
    half_open_limit: float
    after_limit: str
    initial: str


def naive_wait(config: NaiveConfig, attempt: int, u: float) -> float:
    """resilience4j's IntervalFunction, step by step in whole milliseconds."""
    value = config.wait_ms
    for _ in range(attempt - 1):
        value = int(value * config.wait_growth)  # Java's (long) cast
    if config.wait_spread:
        spread = config.wait_spread * value
        value = max(1, int(value - spread + u * (2 * spread + 1)))
    if config.wait_cap_ms is not None:
        value = min(value, config.wait_cap_ms)
    return value / 1000


@dataclass
class Recorded:
    at: float
    failed: bool
    slow: bool


@dataclass
class NaiveBreaker:
    config: NaiveConfig
    draw: Any
    observed: bool
    calls_observed: bool
    state: str = "CLOSED"
    attempts: int = 0
    stay: int = 0
    #: Every outcome recorded in this window, oldest first; never trimmed.
    recorded: list[Recorded] = field(default_factory=list)
    window: tuple[str, int, int] = ("count", 1, 1)
    not_permitted: int = 0
    permits: int = 0
    deadline: float | None = None
    reported: set[str] = field(default_factory=set)
    said: list[tuple[object, ...]] = field(default_factory=list)

    def start(self, now: float) -> None:
        first = self.config.initial
        attempts = 1 if first in ("OPEN", "FORCED_OPEN", "HALF_OPEN") else 0
        self.window = self.closed_window()
        self.enter(first, now, attempts, keep=False)

    # -- reading

    def closed_window(self) -> tuple[str, int, int]:
        c = self.config
        if c.time_window:
            return ("time", c.window_size, c.minimum_calls)
        return ("count", c.window_size, min(c.minimum_calls, c.window_size))

    def in_window(self, now: float) -> list[Recorded]:
        kind, size, _ = self.window
        if kind == "count":
            return self.recorded[-size:]
        newest = math.floor(now)
        return [r for r in self.recorded if math.floor(r.at) > newest - size]

    def rates(self, now: float) -> tuple[float, float]:
        calls = self.in_window(now)
        if not calls or len(calls) < self.window[2]:
            return -1.0, -1.0
        failed = sum(1 for r in calls if r.failed)
        slow = sum(1 for r in calls if r.slow)
        return failed * 100.0 / len(calls), slow * 100.0 / len(calls)

    def counts(self, now: float) -> tuple[int, int, int, int]:
        calls = self.in_window(now)
        return (
            len(calls),
            sum(r.failed for r in calls),
            sum(r.slow for r in calls),
            sum(r.slow and r.failed for r in calls),
        )

    # -- saying

    def say(self, kind: str, **extra: object) -> None:
        if not (self.calls_observed if kind in NAIVE_PER_CALL else self.observed):
            return
        if kind in ("state_transition", "reset") or self.state in NAIVE_PUBLISHING:
            self.said.append(
                (kind, self.state, extra.get("came_from"), extra.get("took"), extra.get("rate"))
            )

    # -- moving

    def enter(
        self, to: str, now: float, attempts: int, *, keep: bool, wait: float | None = None
    ) -> None:
        self.state = to
        self.attempts = attempts
        self.stay += 1
        self.reported = set()
        self.permits = 0
        self.deadline = None
        if not keep:
            self.recorded = []
            self.not_permitted = 0
            if to in ("CLOSED", "METRICS_ONLY"):
                self.window = self.closed_window()
            elif to == "HALF_OPEN":
                p = self.config.permitted
                self.window = ("count", p, min(self.config.minimum_calls, p))
            elif to != "OPEN":
                # DISABLED and FORCED_OPEN: empty metrics (a one-slot window).
                self.window = ("count", 1, 1)
        if to == "OPEN":
            if wait is None:
                wait = naive_wait(self.config, max(attempts, 1), self.draw())
            self.deadline = now + wait
        elif to == "HALF_OPEN":
            self.permits = self.config.permitted
            if self.config.half_open_limit:
                self.deadline = now + self.config.half_open_limit
        return

    def move(self, to: str, now: float) -> None:
        before = self.state
        if to in ("OPEN", "FORCED_OPEN"):
            attempts = self.attempts + 1
        elif to == "HALF_OPEN":
            attempts = self.attempts
        else:
            attempts = 0
        self.enter(to, now, attempts, keep=to == "OPEN")
        if before != to:
            self.say("state_transition", came_from=before)

    def manual(self, to: str, now: float) -> bool:
        if (self.state, to) in NAIVE_ILLEGAL:
            return False
        self.move(to, now)
        return True

    def open_for(self, seconds: float, now: float) -> bool:
        if (self.state, "OPEN") in NAIVE_ILLEGAL:
            return False
        before = self.state
        self.enter("OPEN", now, self.attempts, keep=True, wait=seconds)
        if before != "OPEN":
            self.say("state_transition", came_from=before)
        return True

    def reset(self, now: float) -> None:
        self.move("CLOSED", now)
        self.say("reset")

    def half_open_expired(self, now: float) -> bool:
        return self.state == "HALF_OPEN" and self.deadline is not None and now >= self.deadline

    def timer(self, now: float) -> None:
        if self.state == "OPEN" and self.deadline is not None and now >= self.deadline:
            self.move("HALF_OPEN", now)
        elif self.half_open_expired(now):
            self.move(self.config.after_limit, now)

    # -- calls

    def acquire(self, now: float) -> int | None:
        if self.state == "OPEN" and self.deadline is not None and now > self.deadline:
            self.move("HALF_OPEN", now)
        elif self.half_open_expired(now):
            self.move(self.config.after_limit, now)
            return self.acquire(now)
        if self.state in ("CLOSED", "DISABLED", "METRICS_ONLY"):
            return self.stay
        if self.state == "HALF_OPEN" and self.permits > 0:
            self.permits -= 1
            return self.stay
        self.not_permitted += 1
        self.say("not_permitted")
        return None

    def give_back(self, stay: int) -> None:
        if stay == self.stay and self.state == "HALF_OPEN":
            self.permits += 1

    def ignored(self, stay: int, took: float) -> None:
        self.give_back(stay)
        self.say("ignored_error", took=took)

    def outcome(self, failed: bool, took: float, now: float) -> None:
        if self.half_open_expired(now):
            # An expired HALF_OPEN moves on before it judges (as run() would have).
            self.move(self.config.after_limit, now)
        self.say("error" if failed else "success", took=took)
        if self.state in ("DISABLED", "FORCED_OPEN"):
            return
        self.recorded.append(Recorded(now, failed, took > self.config.slow_duration))
        if self.state == "OPEN":
            return
        failure, slow = self.rates(now)
        if failure < 0:
            return
        over_failure = failure >= self.config.failure_threshold
        over_slow = slow >= self.config.slow_threshold
        if self.state == "CLOSED":
            if over_failure:
                self.say("failure_rate_exceeded", rate=failure)
            if over_slow:
                self.say("slow_call_rate_exceeded", rate=slow)
            if over_failure or over_slow:
                self.move("OPEN", now)
        elif self.state == "HALF_OPEN":
            self.move("OPEN" if over_failure or over_slow else "CLOSED", now)
        else:  # METRICS_ONLY: each report once per stay
            if over_failure and "failure" not in self.reported:
                self.reported.add("failure")
                self.say("failure_rate_exceeded", rate=failure)
            if over_slow and "slow" not in self.reported:
                self.reported.add("slow")
                self.say("slow_call_rate_exceeded", rate=slow)


@st.composite
def breaker_configs(draw: st.DrawFn) -> tuple[BreakerConfig, NaiveConfig]:
    time_window = draw(st.booleans())
    # 10**9: memory must follow the calls recorded, not the sizes (rule 41).
    size = draw(st.integers(1, 6) | st.just(10**9))
    minimum = draw(st.integers(1, 7) | st.just(10**9))
    permitted = draw(st.integers(1, 4) | st.just(10**9))
    failure = draw(st.sampled_from([25.0, 33.4, 50, 50.0, 60, 100]))
    slow = draw(st.sampled_from([20.0, 50, 75.5, 100.0]))
    slow_duration = draw(st.sampled_from([1.0, 2.5]))
    shape = draw(st.sampled_from(["constant", "exponential", "randomized", "both"]))
    wait_ms = draw(st.sampled_from([1, 3, 500, 1000, 2500]))
    growth = draw(st.sampled_from([1.5, 2.0, 1.3])) if shape in ("exponential", "both") else 1.0
    cap = draw(st.sampled_from([None, 3000, 20_000])) if shape != "constant" else None
    spread = draw(st.sampled_from([0.25, 0.5])) if shape in ("randomized", "both") else 0.0
    limit = draw(st.sampled_from([0.0, 0.0, 1.0, 3.5]))
    after = draw(st.sampled_from(["OPEN", "CLOSED"]))
    initial = draw(st.sampled_from(STATES))
    wait: float | WaitInterval
    if shape == "constant":
        wait = wait_ms / 1000 if draw(st.booleans()) else WaitInterval.constant(wait_ms / 1000)
    else:
        wait = WaitInterval(
            initial=wait_ms / 1000,
            multiplier=growth,
            maximum=None if cap is None else cap / 1000,
            randomization=spread,
        )
    real = BreakerConfig(
        failure_rate_threshold=failure,
        slow_call_rate_threshold=slow,
        slow_call_duration_threshold=slow_duration,
        sliding_window_type=(
            SlidingWindowType.TIME_BASED if time_window else SlidingWindowType.COUNT_BASED
        ),
        sliding_window_size=size,
        minimum_calls=minimum,
        permitted_calls_in_half_open=permitted,
        wait_duration_in_open_state=wait,
        max_wait_duration_in_half_open_state=limit,
        state_after_half_open_wait=CircuitState(after),
        initial_state=CircuitState(initial),
    )
    naive = NaiveConfig(
        failure_threshold=float(failure),
        slow_threshold=float(slow),
        slow_duration=slow_duration,
        time_window=time_window,
        window_size=size,
        minimum_calls=minimum,
        permitted=permitted,
        wait_ms=wait_ms,
        wait_growth=growth,
        wait_cap_ms=cap,
        wait_spread=spread,
        half_open_limit=limit,
        after_limit=after,
        initial=initial,
    )
    return real, naive


DURATIONS = st.sampled_from([0.0, 0.2, 1.0, 2.5, 2.6, 4.0])
STEPS = st.sampled_from([0.0, 0.001, 0.25, 0.5, 0.75, 1.0, 2.0, 4.5, 11.0])


class BreakerComparison(RuleBasedStateMachine):
    """Drives BreakerMachine and NaiveBreaker with the same calls, times and commands."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        #: Calls in flight: (the machine's permit, the model's stay, started at).
        self.held: list[tuple[int, int, float]] = []

    @initialize(
        configs=breaker_configs(),
        start=st.sampled_from([0.0, 12.75, -3.5]),
        observed=st.booleans(),
        calls_observed=st.booleans(),
        seed=st.integers(0, 2**32 - 1),
    )
    def build(
        self,
        configs: tuple[BreakerConfig, NaiveConfig],
        start: float,
        observed: bool,
        calls_observed: bool,
        seed: int,
    ) -> None:
        real, naive = configs
        self.now = start
        self.machine = BreakerMachine(real, name="m", now=start, random=random.Random(seed).random)
        self.machine.observed = observed
        self.machine.calls_observed = calls_observed
        self.model = NaiveBreaker(naive, random.Random(seed).random, observed, calls_observed)
        self.model.start(start)

    # -- calls

    def _admit(self) -> tuple[int, int] | None:
        permit = self.machine.acquire(self.now)
        stay = self.model.acquire(self.now)
        assert (permit is None) == (stay is None), "acquire answers differ"
        if permit is None or stay is None:
            return None
        return permit, stay

    def _finish(self, permit: int, stay: int, how: str, took: float) -> None:
        if how == "success":
            self.machine.succeeded(took, self.now)
            self.model.outcome(False, took, self.now)
        elif how == "failure":
            self.machine.failed(took, self.now)
            self.model.outcome(True, took, self.now)
        elif how == "ignore":
            self.machine.ignored(permit, took)
            self.model.ignored(stay, took)
        else:  # cancelled: nothing recorded
            self.machine.release(permit)
            self.model.give_back(stay)

    @rule(count=st.integers(1, 3))
    def acquire(self, count: int) -> None:
        for _ in range(count):
            admitted = self._admit()
            if admitted is not None and len(self.held) < 8:
                self.held.append((*admitted, self.now))

    @rule(
        calls=st.lists(
            st.tuples(
                st.sampled_from(["success", "success", "failure", "failure", "ignore"]), DURATIONS
            ),
            min_size=1,
            max_size=6,
        )
    )
    def call(self, calls: list[tuple[str, float]]) -> None:
        for how, took in calls:
            admitted = self._admit()
            if admitted is not None:
                self._finish(*admitted, how, took)

    @precondition(lambda self: bool(self.held))
    @rule(
        data=st.data(),
        how=st.sampled_from(["success", "failure", "failure", "ignore", "release"]),
        took=DURATIONS,
    )
    def finish_held(self, data: st.DataObject, how: str, took: float) -> None:
        index = data.draw(st.integers(0, len(self.held) - 1))
        permit, stay, _ = self.held.pop(index)
        self._finish(permit, stay, how, took)

    @precondition(lambda self: bool(self.held) and self.model.deadline is not None)
    @rule(how=st.sampled_from(["success", "failure", "ignore", "release"]), took=DURATIONS)
    def finish_held_at_the_deadline(self, how: str, took: float) -> None:
        # A call that outlives OPEN's wait or HALF_OPEN's limit, no acquire between.
        deadline = self.model.deadline
        assert deadline is not None
        self.now = max(self.now, deadline)
        permit, stay, _ = self.held.pop()
        self._finish(permit, stay, how, took)

    # -- time

    @rule(step=STEPS)
    def advance(self, step: float) -> None:
        self.now += step

    @precondition(lambda self: self.model.deadline is not None)
    @rule(extra=st.sampled_from([0.0, 0.0, 0.001]))
    def jump_to_deadline(self, extra: float) -> None:
        deadline = self.model.deadline
        assert deadline is not None
        self.now = max(self.now, deadline + extra)

    @precondition(lambda self: self.model.state == "OPEN")
    @rule(how=st.sampled_from(["success", "failure", "failure"]), took=DURATIONS)
    def trial_call_after_the_wait(self, how: str, took: float) -> None:
        # The common cycle, made likely: OPEN, its wait ends, a trial call.
        deadline = self.model.deadline
        assert deadline is not None
        self.now = max(self.now, deadline + 0.001)
        admitted = self._admit()
        if admitted is not None:
            self._finish(*admitted, how, took)

    @rule()
    def timer_fires(self) -> None:
        self.machine.deadline_reached(self.now)
        self.model.timer(self.now)

    # -- manual control

    @rule(to=st.sampled_from(list(CircuitState)))
    def transition(self, to: CircuitState) -> None:
        try:
            self.machine.transition_to(to, self.now)
            done = True
        except IllegalStateTransition:
            done = False
        assert done == self.model.manual(to.value, self.now)

    @rule(seconds=st.sampled_from([0.0, 0.5, 3.0]))
    def open_for(self, seconds: float) -> None:
        try:
            self.machine.open_for(seconds, self.now)
            done = True
        except IllegalStateTransition:
            done = False
        assert done == self.model.open_for(seconds, self.now)

    @rule()
    def reset(self) -> None:
        self.machine.reset(self.now)
        self.model.reset(self.now)

    # -- agreement

    @invariant()
    def same_everything(self) -> None:
        machine, model, now = self.machine, self.model, self.now
        assert machine.state.value == model.state
        assert machine.attempts == model.attempts
        assert machine.rates(now) == model.rates(now)
        window = machine.phase.metrics.window
        assert (window.total, window.failed, window.slow, window.slow_failed) == model.counts(now)
        assert machine.phase.metrics.not_permitted == model.not_permitted
        if model.state == "HALF_OPEN":
            assert machine.phase.permits == model.permits
        assert machine.next_deadline() == model.deadline
        expected_retry = (
            max(0.0, model.deadline - now)
            if model.state == "OPEN" and model.deadline is not None
            else None
        )
        assert machine.retry_after(now) == expected_retry
        said = [
            (s.kind.value, s.state.value, s.from_state and s.from_state.value, s.duration, s.rate)
            for s in machine.signals
        ]
        machine.signals.clear()
        assert said == model.said
        model.said.clear()


TestBreakerComparison = BreakerComparison.TestCase
TestBreakerComparison.settings = settings(max_examples=500, stateful_step_count=40, deadline=None)


# ---------------------------------------------------------------- scenarios on the machine


def test_count_window_keeps_the_last_n_outcomes() -> None:
    # S29: 12 recorded, 10 kept.
    machine = machine_in(CLOSED, sliding_window_size=10, minimum_calls=10)
    for i in range(12):
        assert machine.acquire(float(i)) is not None
        if i < 2:
            machine.failed(0.0, float(i))
        else:
            machine.succeeded(0.0, float(i))
    window = machine.phase.metrics.window
    assert (window.total, window.failed) == (10, 0)
    assert machine.rates(12.0) == (0.0, 0.0)
    assert machine.state is CLOSED


def test_minimum_calls_is_clamped_to_a_count_window_but_not_a_time_window() -> None:
    counted = machine_in(CLOSED, sliding_window_size=2, minimum_calls=100)
    counted.failed(0.0, 0.0)
    assert counted.state is CLOSED
    counted.failed(0.0, 0.0)
    assert counted.state is OPEN
    timed = machine_in(
        CLOSED,
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=2,
        minimum_calls=3,
    )
    timed.failed(0.0, 0.0)
    timed.failed(0.0, 0.0)
    assert (timed.state, timed.rates(0.0)) == (CLOSED, (-1.0, -1.0))
    timed.failed(0.0, 0.0)
    assert timed.state is OPEN


def test_check_result_precedence() -> None:
    machine = machine_in(
        METRICS_ONLY,
        sliding_window_size=2,
        minimum_calls=2,
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=50.0,
    )
    assert machine.check() is CheckResult.BELOW_MINIMUM_CALLS
    machine.succeeded(0.5, 0.0)
    machine.succeeded(0.5, 0.0)
    assert machine.check() is CheckResult.BELOW_THRESHOLDS
    machine.succeeded(1.5, 0.0)
    assert machine.check() is CheckResult.SLOW_CALL_RATE_ABOVE_THRESHOLDS
    machine.failed(0.5, 0.0)
    assert machine.check() is CheckResult.ABOVE_THRESHOLDS
    machine.failed(0.5, 0.0)
    assert machine.check() is CheckResult.FAILURE_RATE_ABOVE_THRESHOLDS
    assert CheckResult.ABOVE_THRESHOLDS.exceeded
    assert not CheckResult.BELOW_MINIMUM_CALLS.exceeded
    assert CheckResult.ABOVE_THRESHOLDS.failure_rate_exceeded
    assert CheckResult.ABOVE_THRESHOLDS.slow_call_rate_exceeded
    assert not CheckResult.FAILURE_RATE_ABOVE_THRESHOLDS.slow_call_rate_exceeded


def test_a_slow_call_is_strictly_longer_than_the_threshold() -> None:
    machine = machine_in(CLOSED, slow_call_duration_threshold=2.0)
    machine.succeeded(2.0, 0.0)
    machine.succeeded(2.000001, 0.0)
    window = machine.phase.metrics.window
    assert (window.total, window.slow) == (2, 1)


def test_an_expired_half_open_moves_on_before_it_judges_a_late_outcome() -> None:
    # Without run(), HALF_OPEN's max wait is applied lazily (design note 2):
    # an outcome that arrives after it lands where the timer would have put it.
    machine = machine_in(
        HALF_OPEN,
        permitted_calls_in_half_open=1,
        minimum_calls=1,
        max_wait_duration_in_half_open_state=2.0,
    )
    assert machine.acquire(0.5) is not None
    machine.succeeded(3.0, 3.5)
    assert (machine.state, machine.attempts) == (OPEN, 2)
    assert kinds(machine) == [SignalKind.STATE_TRANSITION, SignalKind.SUCCESS]


# ---------------------------------------------------------------- memory follows the calls


@pytest.mark.parametrize("kind", list(SlidingWindowType), ids=lambda k: k.value)
def test_windows_and_permits_of_a_billion_hold_only_what_was_recorded(
    kind: SlidingWindowType,
) -> None:
    # rule 41: a count window preallocated its slots (8 bytes each) and a
    # time window its buckets, on every entry into CLOSED or HALF_OPEN.
    tracemalloc.start()
    try:
        machine = machine_in(
            CLOSED,
            sliding_window_type=kind,
            sliding_window_size=10**9,
            minimum_calls=3,
            permitted_calls_in_half_open=10**9,
        )
        for cycle in range(3):
            start = 100.0 * cycle
            machine.failed(0.0, start)
            machine.failed(0.0, start + 5.0)
            machine.succeeded(0.0, start + 10.0)  # 2 of 3 failed: opens
            assert machine.state is OPEN
            # Far later, the first trial call moves it to HALF_OPEN.
            assert machine.acquire(start + 50.0) is not None
            assert machine.state is HALF_OPEN
            assert machine.phase.permits == 10**9 - 1
            machine.succeeded(0.0, start + 50.0)
            assert machine.acquire(start + 50.0) is not None
            machine.succeeded(0.0, start + 50.0)
            assert (machine.state, machine.phase.metrics.window.total) == (HALF_OPEN, 2)
            assert machine.acquire(start + 50.0) is not None
            machine.succeeded(0.0, start + 50.0)  # min(3, 10**9) calls decide
            assert machine.state is CLOSED
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


def test_a_time_window_of_a_billion_seconds_keeps_every_second_it_saw() -> None:
    machine = machine_in(
        METRICS_ONLY,
        sliding_window_type=SlidingWindowType.TIME_BASED,
        sliding_window_size=10**9,
        minimum_calls=1,
    )
    for second in range(0, 50_000, 1000):
        machine.failed(0.0, float(second))
    window = machine.phase.metrics.window
    assert (window.total, window.failed) == (50, 50)
    assert machine.rates(1e9 + 999.5) == (100.0, 0.0)  # second 1000 is still in
    assert (window.total, window.failed) == (49, 49)  # second 0 has left


def test_a_state_only_observer_hears_no_call() -> None:
    # observed without calls_observed: what the shell sets for events= alone.
    machine = machine_in(CLOSED, sliding_window_size=2, minimum_calls=2)
    machine.calls_observed = False
    machine.succeeded(0.1, 1.0)
    machine.failed(0.1, 1.0)
    assert kinds(machine) == [SignalKind.FAILURE_RATE_EXCEEDED, SignalKind.STATE_TRANSITION]
    assert machine.acquire(1.0) is None
    assert kinds(machine) == []
    machine.reset(2.0)
    assert kinds(machine) == [SignalKind.STATE_TRANSITION, SignalKind.RESET]
    machine.ignored(machine.acquire(2.0) or 0, 0.1)
    assert kinds(machine) == []


# ---------------------------------------------------------------- wait intervals


def test_capped_exponential_wait_grows_until_the_cap() -> None:
    # resilience4j IntervalFunctionTest.generatesCappedExponentialIntervals.
    wait = WaitInterval.exponential(0.1, 2, 100.0)
    values = [wait.delay(attempt, 0.0) for attempt in range(1, 14)]
    # Strictly increasing up to attempt 11, then at the cap.
    assert all(a < b for a, b in itertools.pairwise(values[:11]))
    assert values[0] == 0.1
    assert values[9] == 51.2
    assert values[10] == values[11] == values[12] == 100.0


def test_exponential_wait_truncates_to_whole_milliseconds_at_every_step() -> None:
    # ofExponentialBackoff: v(n+1) = (long)(v(n) * multiplier), not the closed form.
    wait = WaitInterval.exponential()
    assert [wait.delay(n, 0.0) for n in range(1, 9)] == [
        0.5,
        0.75,
        1.125,
        1.687,
        2.53,
        3.795,
        5.692,
        8.538,
    ]


def test_uncapped_exponential_wait_keeps_growing() -> None:
    # resilience4j generatesExponentialIntervals.
    wait = WaitInterval.exponential(0.1, 1.5)
    values = [wait.delay(n, 0.0) for n in range(1, 50)]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_constant_wait_is_the_same_for_every_attempt() -> None:
    wait = WaitInterval.constant(2.5)
    assert {wait.delay(n, 0.7) for n in range(1, 20)} == {2.5}


#: u up to 1 - 1e-9: within 2**-53 of 1, u * 101 rounds up to 101.0 in
#: float64 (Java's Math.random() would do the same), one ms over the bound.
UNIFORM = st.floats(0.0, 1.0 - 1e-9)


@given(u=UNIFORM, attempt=st.integers(1, 60))
def test_randomized_wait_stays_within_its_factor(u: float, attempt: int) -> None:
    # resilience4j generatesRandomizedIntervals: 100 ms +- 50 %.
    value = WaitInterval.randomized(0.1, 0.5).delay(attempt, u)
    assert 0.05 <= value <= 0.15


@given(u=UNIFORM)
def test_exponential_random_wait_stays_around_the_exponential_value(u: float) -> None:
    # resilience4j generatesExponentialRandomIntervals / generatesCappedExponentialRandomIntervals.
    free = WaitInterval.exponential_randomized(0.1, 1.5, 0.5)
    capped = WaitInterval.exponential_randomized(0.1, 1.5, 0.5, maximum=100.0)
    expected = 100
    for attempt in range(1, 50):
        low, high = int(expected * 0.5) - 1, int(expected * 1.5) + 1
        value = round(free.delay(attempt, u) * 1000)
        assert low <= value <= high
        value = round(capped.delay(attempt, u) * 1000)
        assert value == 100_000 or low <= value <= high
        assert value <= 100_000
        expected = int(expected * 1.5)


def test_randomized_wait_bounds_are_exact() -> None:
    wait = WaitInterval.randomized(0.1, 0.5)
    assert wait.delay(1, 0.0) == 0.05
    assert wait.delay(1, 0.999999) == 0.15
    # max(1 ms, ...): a tiny wait never randomizes to zero.
    assert WaitInterval.randomized(0.001, 0.9).delay(1, 0.0) == 0.001


@pytest.mark.parametrize(
    "wait",
    [
        WaitInterval.constant(1.0),
        WaitInterval.randomized(),
        WaitInterval.exponential(),
        WaitInterval.exponential_randomized(),
    ],
)
@pytest.mark.parametrize("attempt", [0, -1])
def test_attempt_below_one_is_refused(wait: WaitInterval, attempt: int) -> None:
    with pytest.raises(ValueError, match=rf"^attempt must be >= 1, got {attempt}$"):
        wait.delay(attempt, 0.5)


def test_wait_interval_defaults_are_resilience4j_s() -> None:
    assert WaitInterval.exponential() == WaitInterval(initial=0.5, multiplier=1.5)
    assert WaitInterval.randomized() == WaitInterval(initial=0.5, randomization=0.5)
    assert WaitInterval.exponential_randomized() == WaitInterval(
        initial=0.5, multiplier=1.5, randomization=0.5
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: WaitInterval.constant(0.0005),
            "seconds must be a finite number of seconds >= 0.001, got 0.0005",
        ),
        (
            lambda: WaitInterval.constant(math.inf),
            "seconds must be a finite number of seconds >= 0.001, got inf",
        ),
        (
            lambda: WaitInterval.constant(True),
            "seconds must be a finite number of seconds >= 0.001, got True",
        ),
        (
            lambda: WaitInterval.randomized(0.0),
            "seconds must be a finite number of seconds >= 0.001, got 0.0",
        ),
        (
            lambda: WaitInterval.randomized(1.0, 1.0),
            "factor must be a number in [0, 1), got 1.0",
        ),
        (
            lambda: WaitInterval.randomized(1.0, -0.1),
            "factor must be a number in [0, 1), got -0.1",
        ),
        (
            lambda: WaitInterval.exponential(0.0),
            "initial must be a finite number of seconds >= 0.001, got 0.0",
        ),
        (
            lambda: WaitInterval.exponential(1.0, 0.5),
            "multiplier must be a finite number >= 1.0, got 0.5",
        ),
        (
            lambda: WaitInterval.exponential(1.0, math.nan),
            "multiplier must be a finite number >= 1.0, got nan",
        ),
        (
            lambda: WaitInterval.exponential(1.0, 2.0, 0.0),
            "maximum must be a finite number of seconds >= 0.001, got 0.0",
        ),
        (
            lambda: WaitInterval.exponential_randomized(1.0, 2.0, 1.5),
            "factor must be a number in [0, 1), got 1.5",
        ),
        (
            lambda: WaitInterval.exponential_randomized(1.0, 2.0, 0.5, -1.0),
            "maximum must be a finite number of seconds >= 0.001, got -1.0",
        ),
        (
            lambda: WaitInterval.exponential(initial=10, maximum=1),
            "maximum must be a finite number of seconds >= initial (10), got 1",
        ),
        (
            lambda: WaitInterval.exponential_randomized(2.0, 2.0, 0.5, 1.999),
            "maximum must be a finite number of seconds >= initial (2.0), got 1.999",
        ),
        (
            lambda: WaitInterval.exponential(1.0, 2.0, math.nan),
            "maximum must be a finite number of seconds >= 0.001, got nan",
        ),
        (
            lambda: WaitInterval.exponential(math.inf),
            "initial must be a finite number of seconds >= 0.001, got inf",
        ),
        (
            lambda: WaitInterval.exponential(1.0, math.inf),
            "multiplier must be a finite number >= 1.0, got inf",
        ),
        (
            lambda: WaitInterval(initial=1.0, randomization=math.nan),
            "randomization must be a number in [0, 1), got nan",
        ),
        (
            lambda: WaitInterval(initial="1"),  # type: ignore[arg-type]
            "initial must be a finite number of seconds >= 0.001, got '1'",
        ),
    ],
)
def test_wait_interval_validation_messages(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build()


# ---------------------------------------------------------------- configuration


def test_config_defaults_are_resilience4j_s() -> None:
    config = BreakerConfig()
    assert (
        config.failure_rate_threshold,
        config.slow_call_rate_threshold,
        config.slow_call_duration_threshold,
        config.sliding_window_type,
        config.sliding_window_size,
        config.minimum_calls,
        config.permitted_calls_in_half_open,
        config.wait_duration_in_open_state,
        config.max_wait_duration_in_half_open_state,
        config.state_after_half_open_wait,
        config.initial_state,
    ) == (50.0, 100.0, 60.0, SlidingWindowType.COUNT_BASED, 100, 100, 10, 60.0, 0.0, OPEN, CLOSED)
    assert config.wait_interval == WaitInterval.constant(60.0)
    given_interval = WaitInterval.exponential()
    assert BreakerConfig(wait_duration_in_open_state=given_interval).wait_interval is given_interval


@pytest.mark.parametrize(
    ("field_name", "value", "error", "message"),
    [
        *[
            (name, bad, ValueError, f"{name} must be a percentage in (0, 100], got {bad!r}")
            for name in ("failure_rate_threshold", "slow_call_rate_threshold")
            for bad in (0, -1.0, 100.5, math.nan, True, "50")
        ],
        *[
            (
                "slow_call_duration_threshold",
                bad,
                ValueError,
                f"slow_call_duration_threshold must be a number of seconds > 0, got {bad!r}",
            )
            for bad in (0, -1.0, math.nan, None)
        ],
        (
            "sliding_window_type",
            "COUNT_BASED",
            TypeError,
            "sliding_window_type must be a SlidingWindowType, got 'COUNT_BASED'",
        ),
        *[
            (name, bad, ValueError, f"{name} must be an int >= 1, got {bad!r}")
            for name in ("sliding_window_size", "minimum_calls", "permitted_calls_in_half_open")
            for bad in (0, -3, 2.0, True)
        ],
        *[
            (
                "wait_duration_in_open_state",
                bad,
                ValueError,
                "wait_duration_in_open_state must be a WaitInterval or a finite number of "
                f"seconds >= 0.001, got {bad!r}",
            )
            for bad in (0, 0.0009, math.inf, "60", None)
        ],
        *[
            (
                "max_wait_duration_in_half_open_state",
                bad,
                ValueError,
                "max_wait_duration_in_half_open_state must be 0 (no limit) or a finite "
                f"number of seconds >= 0.001, got {bad!r}",
            )
            for bad in (-1.0, 0.0005, math.inf, None)
        ],
        *[
            (
                "state_after_half_open_wait",
                bad,
                ValueError,
                "state_after_half_open_wait must be CircuitState.OPEN or "
                f"CircuitState.CLOSED, got {bad!r}",
            )
            for bad in (HALF_OPEN, FORCED_OPEN, "OPEN")
        ],
        (
            "initial_state",
            "CLOSED",
            TypeError,
            "initial_state must be a CircuitState, got 'CLOSED'",
        ),
    ],
)
def test_config_validation_messages(
    field_name: str, value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        BreakerConfig(**{field_name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("state", list(CircuitState), ids=lambda s: s.value)
def test_every_state_may_be_the_initial_one(state: CircuitState) -> None:
    machine = machine_in(state)
    assert machine.state is state
    # resilience4j: a configured initial state that holds attempts starts at 1.
    assert machine.attempts == (1 if state in (OPEN, FORCED_OPEN, HALF_OPEN) else 0)


def test_valid_edge_values_are_accepted() -> None:
    BreakerConfig(
        failure_rate_threshold=100,
        slow_call_rate_threshold=0.001,
        slow_call_duration_threshold=1e-9,
        sliding_window_size=1,
        minimum_calls=1,
        permitted_calls_in_half_open=1,
        wait_duration_in_open_state=0.001,
        max_wait_duration_in_half_open_state=0.001,
        state_after_half_open_wait=CLOSED,
    )

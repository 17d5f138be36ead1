"""The pure phi-accrual machine (``_core._phi``): Akka's formula, history and state.

Hand-computed values come from Akka's formula, docs/design.md A6 (steady
1000 ms heartbeats, min std 100 ms, pause 3000 ms: phi crosses 8 at
4522.60 ms) and Akka's ``AccrualFailureDetectorSpec``; hypothesis checks the
history against a naive recomputation, ``suspect_at`` against brute force,
and the state machine against a naive reference model of Akka's detector.
"""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from trio_smith._core._phi import (
    HeartbeatHistory,
    PhiConfig,
    PhiDeadlines,
    PhiState,
    crossing,
    phi,
    to_ms,
)

LONG = 2**63 - 1


def cdf(value: float) -> float:
    """The CDF value a phi stands for (Akka's spec helper)."""
    return 1.0 - math.pow(10.0, -value)


def config(
    *,
    threshold: float = 8.0,
    max_sample_size: int = 1000,
    min_std_ms: int = 100,
    pause_ms: int = 0,
    estimate_ms: int = 1000,
) -> PhiConfig:
    """Akka's spec defaults (pause 0), in ms."""
    return PhiConfig(
        threshold=threshold,
        max_sample_size=max_sample_size,
        min_std_deviation=min_std_ms / 1000,
        acceptable_heartbeat_pause=pause_ms / 1000,
        first_heartbeat_estimate=estimate_ms / 1000,
    )


def beats(state: PhiState, *times: int) -> None:
    for t in times:
        state.heartbeat(t)


# ------------------------------------------------------------------ phi()


def test_phi_crosses_eight_at_the_reference_point() -> None:
    # A6: mean 1000 + pause 3000, sd at the 100 ms floor.
    assert phi(4500, 4000.0, 100.0) == pytest.approx(7.2999, abs=1e-4)
    assert phi(4600, 4000.0, 100.0) == pytest.approx(10.7826, abs=1e-4)
    assert phi(4522, 4000.0, 100.0) < 8.0 <= phi(4523, 4000.0, 100.0)
    assert crossing(8.0, 4000.0, 100.0) == 4523
    # sd 200: the crossing is at 5045.2 ms.
    assert phi(5045, 4000.0, 200.0) < 8.0 <= phi(5046, 4000.0, 200.0)
    assert crossing(8.0, 4000.0, 200.0) == 5046


def test_phi_uses_the_logistic_approximation_not_the_exact_tail() -> None:
    # A6: at 6 sigma Akka's phi is 10.78, the exact normal 9.01.
    exact = -math.log10(0.5 * math.erfc(6.0 / math.sqrt(2.0)))
    assert exact == pytest.approx(9.0059, abs=1e-3)
    assert phi(1600, 1000.0, 100.0) == pytest.approx(10.7826, abs=1e-3)


def test_phi_is_a_good_enough_cumulative_distribution_function() -> None:
    # Akka: "use good enough cumulative distribution function".
    assert cdf(phi(0, 0, 10)) == pytest.approx(0.5, abs=0.001)
    assert cdf(phi(6, 0, 10)) == pytest.approx(0.7257, abs=0.001)
    assert cdf(phi(15, 0, 10)) == pytest.approx(0.9332, abs=0.001)
    assert cdf(phi(20, 0, 10)) == pytest.approx(0.97725, abs=0.001)
    assert cdf(phi(25, 0, 10)) == pytest.approx(0.99379, abs=0.001)
    assert cdf(phi(35, 0, 10)) == pytest.approx(0.99977, abs=0.001)
    assert cdf(phi(40, 0, 10)) == pytest.approx(0.99997, abs=0.0001)
    for x in range(40):
        assert phi(x, 0, 10) < phi(x + 1, 0, 10)
    assert cdf(phi(22, 20.0, 3)) == pytest.approx(0.7475, abs=0.001)


def test_phi_handles_outliers_without_exceptions_or_negative_zero() -> None:
    # Akka: "handle outliers without losing precision or hitting exceptions".
    assert phi(10, 0, 1) == pytest.approx(38.0, abs=1.0)
    below = phi(-25, 0, 1)
    assert below == 0.0
    assert math.copysign(1.0, below) == 1.0  # Akka returns -0.0 here
    # Java semantics: exp overflow -> phi 0.0; exp underflow -> phi +inf.
    assert phi(-(10**9), 0.0, 1.0) == 0.0
    assert phi(10**9, 0.0, 1.0) == math.inf
    assert phi(LONG, 0.0, 1.0) == math.inf
    assert phi(-LONG, 0.0, 1.0) == 0.0


def test_phi_returns_realistic_values() -> None:
    # Akka: "return realistic phi values" (mean 1000, sd 100).
    expected = {0: 0.0, 500: 0.1, 1000: 0.3, 1200: 1.6, 1400: 4.7, 1600: 10.8, 1700: 15.3}
    for time_diff, value in expected.items():
        assert phi(time_diff, 1000.0, 100.0) == pytest.approx(value, abs=0.1)
    # A larger standard deviation gives a lower phi.
    assert phi(1100, 1000.0, 500.0) < phi(1100, 1000.0, 100.0)


@given(
    time_diff=st.integers(-LONG, LONG),
    mean=st.floats(-1e18, 1e18),
    std=st.floats(1e-300, 1e18),
)
def test_phi_never_raises_and_is_never_negative_or_nan(
    time_diff: int, mean: float, std: float
) -> None:
    value = phi(time_diff, mean, std)
    assert value >= 0.0
    assert math.copysign(1.0, value) == 1.0


@given(
    mean=st.floats(0, 1e6),
    std=st.floats(1, 1e4),
    a=st.integers(-(10**6), 10**7),
    b=st.integers(-(10**6), 10**7),
)
def test_phi_is_monotonic_in_the_silence(mean: float, std: float, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert phi(low, mean, std) <= phi(high, mean, std)


# ------------------------------------------------------------------ crossing()


@settings(max_examples=200)
@given(
    threshold=st.floats(0.01, 40),
    mean=st.floats(0, 5000),
    std=st.floats(1, 1000),
)
def test_crossing_agrees_with_a_brute_force_scan(threshold: float, mean: float, std: float) -> None:
    found = crossing(threshold, mean, std)
    # A scan from far below the mean (phi 0 there) upward.
    start = math.floor(mean - 40 * std)
    assert phi(start, mean, std) < threshold
    first = next(d for d in range(start, found + 2) if phi(d, mean, std) >= threshold)
    assert first == found
    assert all(phi(d, mean, std) >= threshold for d in range(found, found + 200))


@given(
    threshold=st.one_of(
        st.floats(1e-12, 1.0), st.floats(1.0, 500.0), st.floats(500.0, 1e300, allow_infinity=False)
    ),
    mean=st.floats(-1e15, 1e15),
    std=st.floats(1.0, 1e12),
)
def test_crossing_is_exact_for_extreme_parameters(
    threshold: float, mean: float, std: float
) -> None:
    found = crossing(threshold, mean, std)
    assert phi(found - 1, mean, std) < threshold <= phi(found, mean, std)


# ------------------------------------------------------------------ to_ms()


def test_to_ms_keeps_decimal_times_exact() -> None:
    assert 1.001 * 1000 < 1001  # the reason for the epsilon
    assert to_ms(1.001) == 1001
    assert to_ms(0.1 + 0.2) == 300
    assert to_ms(4.523) == 4523
    assert to_ms(0.0009999) == 0
    assert to_ms(-0.0015) == -2
    assert to_ms(sum([0.1] * 10)) == 1000


@given(st.integers(-(10**9), 10**9))
def test_to_ms_round_trips_whole_milliseconds(ms: int) -> None:
    assert to_ms(ms / 1000) == ms


# ------------------------------------------------------------------ the history


def test_history_mean_and_variance() -> None:
    # Akka: "calculate correct mean and variance".
    history = HeartbeatHistory(20, [100, 200, 125, 340, 130])
    assert history.mean == pytest.approx(179.0, abs=1e-5)
    assert history.variance == pytest.approx(7584.0, abs=1e-5)
    # Akka: "have 0.0 variance for one sample".
    assert HeartbeatHistory(600, [1000]).variance == 0.0


def test_history_is_capped_by_max_sample_size() -> None:
    # Akka: "be capped by the specified maxSampleSize".
    history = HeartbeatHistory(3, [100, 110, 90])
    assert history.mean == pytest.approx(100.0, abs=1e-5)
    assert history.variance == pytest.approx(66.6666667, abs=1e-5)
    history.append(140)
    assert history.intervals == (110, 90, 140)
    assert history.mean == pytest.approx(113.333333, abs=1e-5)
    assert history.variance == pytest.approx(422.222222, abs=1e-5)
    history.append(80)
    assert history.mean == pytest.approx(103.333333, abs=1e-5)
    assert history.variance == pytest.approx(688.88888889, abs=1e-5)


@given(
    size=st.integers(1, 20),
    intervals=st.lists(st.integers(0, 10**7), min_size=1, max_size=80),
)
def test_history_running_sums_match_a_naive_recomputation(size: int, intervals: list[int]) -> None:
    history = HeartbeatHistory(size)
    for i, interval in enumerate(intervals):
        history.append(interval)
        kept = intervals[max(0, i + 1 - size) : i + 1]
        assert history.intervals == tuple(kept)
        assert len(history) == len(kept)
        assert history.interval_sum == sum(kept)
        assert history.squared_interval_sum == sum(k * k for k in kept)
        assert history.mean == pytest.approx(statistics.fmean(kept), rel=1e-12)
        exact = float(statistics.pvariance([Fraction(k) for k in kept]))
        assert history.variance == pytest.approx(exact, rel=1e-6, abs=1e-3)
        assert history.variance >= 0.0


# ------------------------------------------------------------------ the state


def test_no_heartbeat_means_phi_zero_and_not_monitoring() -> None:
    state = PhiState(config())
    assert state.phi(0) == 0.0
    assert state.phi(10**9) == 0.0
    assert state.is_available(10**9)
    assert not state.is_monitoring
    assert state.suspect_at() is None


def test_the_first_heartbeat_bootstraps_the_history_from_the_estimate() -> None:
    state = PhiState(config(estimate_ms=1000))
    assert state.heartbeat(0) is None
    assert state.is_monitoring
    assert state.history is not None
    assert state.history.intervals == (750, 1250)
    assert state.history.mean == 1000.0
    assert state.history.std_deviation == 250.0
    # Integer division, as Akka's Long arithmetic: 1001 // 4 == 250, 3 // 4 == 0.
    odd = PhiState(config(estimate_ms=1001))
    odd.heartbeat(0)
    assert odd.history is not None
    assert odd.history.intervals == (751, 1251)
    tiny = PhiState(config(estimate_ms=3))
    tiny.heartbeat(0)
    assert tiny.history is not None
    assert tiny.history.intervals == (3, 3)


def test_phi_is_based_on_the_guess_after_one_heartbeat() -> None:
    # Akka: "return phi based on guess when only one heartbeat".
    state = PhiState(config())
    state.heartbeat(0)
    assert state.phi(1000) == pytest.approx(0.3, abs=0.2)
    assert state.phi(2000) == pytest.approx(4.5, abs=0.3)
    assert state.phi(3000) > 15.0


def test_phi_uses_the_first_interval_after_the_second_heartbeat() -> None:
    # Akka: "return phi value using first interval after second heartbeat".
    state = PhiState(config())
    state.heartbeat(0)
    assert state.phi(100) > 0.0
    state.heartbeat(200)
    assert state.phi(300) > 0.0


def test_a_node_is_monitored_and_available_after_heartbeats() -> None:
    # Akka: "mark node as monitored after a series of successful heartbeats".
    state = PhiState(config())
    beats(state, 0, 1000, 1100)
    assert state.is_monitoring
    assert state.is_available(1200)


def test_a_node_is_unavailable_when_heartbeats_are_missed() -> None:
    # Akka: "mark node as dead if heartbeat are missed" (threshold 3).
    state = PhiState(config(threshold=3))
    beats(state, 0, 1000, 1100)
    assert state.is_available(1200)
    assert not state.is_available(8200)


def test_a_node_is_available_again_when_it_heartbeats_after_being_dead() -> None:
    # Akka: "mark node as available if it starts heartbeat again after being
    # marked dead due to detection of failure".
    state = PhiState(config(pause_ms=3000))
    t = 0
    for _ in range(1000):
        state.heartbeat(t)
        t += 1000
    t -= 1000
    t += 5 * 60 * 1000
    assert not state.is_available(t)
    state.heartbeat(t)
    t += 100
    assert state.is_available(t)
    state.heartbeat(t)
    t += 900
    assert state.is_available(t)
    state.heartbeat(t)
    t += 100
    assert state.is_available(t)
    state.heartbeat(t)
    t += 7000
    assert not state.is_available(t)  # after the 7 s pause
    state.heartbeat(t)
    t += 100
    assert state.is_available(t)
    state.heartbeat(t)
    t += 900
    assert state.is_available(t)


def test_some_configured_missing_heartbeats_are_accepted() -> None:
    # Akka: "accept some configured missing heartbeats" (pause 3 s).
    state = PhiState(config(pause_ms=3000))
    beats(state, 0, 1000, 2000, 3000)
    assert state.is_available(7000)
    state.heartbeat(7000)
    assert state.is_available(8000)


def test_a_node_fails_after_the_configured_missing_heartbeats() -> None:
    # Akka: "fail after configured acceptable missing heartbeats".
    state = PhiState(config(pause_ms=3000))
    beats(state, 0, 1000, 2000, 3000, 4000, 5000)
    assert state.is_available(5500)
    state.heartbeat(5500)
    assert state.is_available(6000)
    assert not state.is_available(11000)


def test_only_max_sample_size_heartbeats_count() -> None:
    # Akka: "use maxSampleSize heartbeats".
    state = PhiState(config(max_sample_size=3))
    beats(state, 0, 100, 200, 300)
    phi1 = state.phi(400)
    beats(state, 1000, 1500, 2000, 2500)
    phi2 = state.phi(3000)
    assert phi2 == pytest.approx(phi1, abs=0.001)


def test_intervals_are_not_recorded_while_unavailable() -> None:
    state = PhiState(config(pause_ms=3000))
    beats(state, 0, 1000, 2000)
    assert state.history is not None
    before = state.history.intervals
    assert not state.is_available(60_000)
    state.heartbeat(60_000)
    assert state.history.intervals == before
    assert state.timestamp == 60_000  # the timestamp always moves
    state.heartbeat(61_000)
    assert state.history.intervals == (*before, 1000)


def test_the_warning_applies_from_two_thirds_of_the_pause() -> None:
    # Akka: interval >= pause / 3 * 2 in Long arithmetic: 3000 -> 2000, 1000 -> 666.
    state = PhiState(config(pause_ms=3000))
    state.heartbeat(0)
    assert state.heartbeat(1999) is None
    assert state.heartbeat(3999) == 2000
    odd = PhiState(config(pause_ms=1000))
    odd.heartbeat(0)
    assert odd.heartbeat(665) is None
    assert odd.heartbeat(1331) == 666
    # Not for an interval that is not recorded (the node was unavailable).
    assert odd.heartbeat(100_000) is None


def test_suspect_at_of_steady_heartbeats_is_the_reference_point() -> None:
    state = PhiState(config(pause_ms=3000))
    t = 0
    for _ in range(20):
        state.heartbeat(t)
        t += 1000
    last = t - 1000
    assert state.suspect_at() == last + 4523
    assert state.is_available(last + 4522)
    assert not state.is_available(last + 4523)


def test_suspect_at_after_one_heartbeat_uses_the_bootstrap() -> None:
    # A6: 2306 ms with pause 0, 5306 with the 3 s pause
    # (phi reaches 8 within the 5307th ms).
    zero = PhiState(config())
    zero.heartbeat(10)
    assert zero.suspect_at() == 10 + 2307
    default = PhiState(config(pause_ms=3000))
    default.heartbeat(10)
    assert default.suspect_at() == 10 + 5307


@settings(max_examples=60)
@given(
    threshold=st.floats(0.05, 30),
    size=st.integers(1, 12),
    pause_ms=st.integers(0, 3000),
    min_std_ms=st.integers(1, 400),
    estimate_ms=st.integers(1, 3000),
    intervals=st.lists(st.integers(0, 4000), max_size=15),
)
def test_suspect_at_agrees_with_phi_by_brute_force(
    threshold: float,
    size: int,
    pause_ms: int,
    min_std_ms: int,
    estimate_ms: int,
    intervals: list[int],
) -> None:
    state = PhiState(
        config(
            threshold=threshold,
            max_sample_size=size,
            min_std_ms=min_std_ms,
            pause_ms=pause_ms,
            estimate_ms=estimate_ms,
        )
    )
    t = 5000
    state.heartbeat(t)
    for interval in intervals:
        t += interval
        state.heartbeat(t)
    due = state.suspect_at()
    assert due is not None
    assert not state.is_available(due)
    assert state.is_available(due - 1)
    # Brute force over a window wide enough to hold the whole rise of phi.
    start = t - 10_000
    assert state.is_available(start)
    first = next(u for u in range(start, due + 1) if not state.is_available(u))
    assert first == due
    assert all(not state.is_available(u) for u in range(due, due + 500))


# ------------------------------------------------------------------ the config


def test_config_defaults_are_akkas_and_in_whole_ms() -> None:
    c = PhiConfig()
    assert (c.threshold, c.max_sample_size) == (8.0, 1000)
    assert (c.min_std_deviation, c.acceptable_heartbeat_pause, c.first_heartbeat_estimate) == (
        0.1,
        3.0,
        1.0,
    )
    assert c.min_std_deviation_ms == 100
    assert c.acceptable_heartbeat_pause_ms == 3000
    assert c.first_heartbeat_estimate_ms == 1000
    assert c.warning_interval_ms == 2000
    # Akka's toMillis truncates sub-ms parts.
    assert PhiConfig(acceptable_heartbeat_pause=0.0015).acceptable_heartbeat_pause_ms == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(threshold=-1.0), r"^threshold must be a finite number > 0, got -1\.0$"),
        (dict(threshold=0), r"^threshold must be a finite number > 0, got 0$"),
        (dict(threshold=math.inf), r"^threshold must be a finite number > 0, got inf$"),
        (dict(threshold=math.nan), r"^threshold must be a finite number > 0, got nan$"),
        (dict(max_sample_size=0), r"^max_sample_size must be an int >= 1, got 0$"),
        (dict(max_sample_size=2.0), r"^max_sample_size must be an int >= 1, got 2\.0$"),
        (dict(max_sample_size=True), r"^max_sample_size must be an int >= 1, got True$"),
        (
            dict(min_std_deviation=0),
            r"^min_std_deviation must be a finite number >= 0\.001, got 0$",
        ),
        (
            dict(min_std_deviation=0.0005),
            r"^min_std_deviation must be a finite number >= 0\.001, got 0\.0005$",
        ),
        (
            dict(acceptable_heartbeat_pause=-0.5),
            r"^acceptable_heartbeat_pause must be a finite number >= 0, got -0\.5$",
        ),
        (
            dict(acceptable_heartbeat_pause="3"),
            r"^acceptable_heartbeat_pause must be a finite number >= 0, got '3'$",
        ),
        (
            dict(first_heartbeat_estimate=0),
            r"^first_heartbeat_estimate must be a finite number >= 0\.001, got 0$",
        ),
    ],
)
def test_config_validation_messages(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhiConfig(**kwargs)  # type: ignore[arg-type]


def test_config_labels_rename_arguments_in_messages() -> None:
    with pytest.raises(
        ValueError, match=r"^acceptable_pause must be a finite number >= 0, got -1$"
    ):
        PhiConfig(
            acceptable_heartbeat_pause=-1, labels={"acceptable_heartbeat_pause": "acceptable_pause"}
        )


# ------------------------------------------------------------------ against a naive model


def test_resume_restarts_the_silence_without_recording_the_idle_time() -> None:
    state, twin = PhiState(config()), PhiState(config())
    for t in (0, 1000, 2000, 3000):
        state.heartbeat(t)
        twin.heartbeat(t)
    assert state.history is not None
    before = state.history.intervals
    state.resume(600_000)  # ten minutes idle
    assert state.history.intervals == before
    assert state.timestamp == 600_000
    # From then on it is its twin, shifted: as if the last beat were now.
    for silence in (0, 500, 1000, 2500, 4000):
        assert state.phi(600_000 + silence) == twin.phi(3000 + silence)
    assert (state.suspect_at() or 0) - 600_000 == (twin.suspect_at() or 0) - 3000 > 0
    # Before any heartbeat, resuming is the first heartbeat.
    fresh = PhiState(config())
    fresh.resume(5)
    assert fresh.timestamp == 5
    assert fresh.is_monitoring


class NaiveAkka:
    """Akka's detector as plainly as possible: a list, recomputed sums, no ring."""

    def __init__(self, cfg: PhiConfig) -> None:
        self.cfg = cfg
        self.intervals: list[int] = []
        self.timestamp: int | None = None

    def stats(self) -> tuple[float, float]:
        kept = self.intervals[-self.cfg.max_sample_size :]
        n = len(kept)
        mean = sum(kept) / n
        variance = sum(k * k for k in kept) / n - mean * mean
        return mean, math.sqrt(max(0.0, variance))

    def phi(self, now: int) -> float:
        if self.timestamp is None:
            return 0.0
        mean, std = self.stats()
        return phi(
            now - self.timestamp,
            mean + self.cfg.acceptable_heartbeat_pause_ms,
            max(std, self.cfg.min_std_deviation_ms),
        )

    def heartbeat(self, now: int) -> int | None:
        warn = None
        if self.timestamp is None:
            est = self.cfg.first_heartbeat_estimate_ms
            self.intervals = [est - est // 4, est + est // 4]
        else:
            interval = now - self.timestamp
            if self.phi(now) < self.cfg.threshold:
                self.intervals.append(interval)
                if interval >= self.cfg.acceptable_heartbeat_pause_ms // 3 * 2:
                    warn = interval
        self.timestamp = now
        return warn

    def resume(self, now: int) -> None:
        # An idle node's silence restarts without an interval being recorded.
        if self.timestamp is None:
            self.heartbeat(now)
        else:
            self.timestamp = max(self.timestamp, now)


class PhiMachineComparison(RuleBasedStateMachine):
    """PhiState and NaiveAkka, driven by the same heartbeats and clock."""

    @initialize(
        threshold=st.floats(0.5, 16),
        size=st.integers(1, 8),
        pause_ms=st.integers(0, 3000),
        min_std_ms=st.integers(1, 300),
        estimate_ms=st.integers(1, 2000),
    )
    def build(
        self, threshold: float, size: int, pause_ms: int, min_std_ms: int, estimate_ms: int
    ) -> None:
        cfg = config(
            threshold=threshold,
            max_sample_size=size,
            min_std_ms=min_std_ms,
            pause_ms=pause_ms,
            estimate_ms=estimate_ms,
        )
        self.state = PhiState(cfg)
        self.model = NaiveAkka(cfg)
        self.now = 0

    @rule(ms=st.integers(0, 6000))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule()
    def heartbeat(self) -> None:
        assert self.state.heartbeat(self.now) == self.model.heartbeat(self.now)

    @rule()
    def resume(self) -> None:
        self.state.resume(self.now)
        self.model.resume(self.now)

    @invariant()
    def agree(self) -> None:
        if not hasattr(self, "state"):
            return
        state = self.state
        assert state.phi(self.now) == self.model.phi(self.now)
        assert state.is_monitoring == (self.model.timestamp is not None)
        assert state.timestamp == self.model.timestamp
        if state.history is not None:
            size = state.config.max_sample_size
            assert state.history.intervals == tuple(self.model.intervals[-size:])
            due = state.suspect_at()
            assert due is not None
            assert self.model.phi(due - 1) < state.config.threshold <= self.model.phi(due)


TestPhiMachineComparison = PhiMachineComparison.TestCase


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("schedule"), st.integers(0, 9), st.integers(0, 5_000)),
        st.tuples(st.just("discard"), st.integers(0, 9), st.just(0)),
        st.tuples(st.just("pop"), st.just(0), st.integers(0, 5_000)),
    ),
    max_size=300,
)


@given(_OPS)
def test_deadlines_agree_with_a_plain_dict(ops: list[tuple[str, int, int]]) -> None:
    """PhiDeadlines (heap, lazy invalidation, sweeps) against a dict of key -> due."""
    deadlines: PhiDeadlines[int] = PhiDeadlines()
    model: dict[int, int] = {}
    for op, key, value in ops:
        if op == "schedule":
            soonest = deadlines.schedule(key, value)
            # Exactly when it is earlier than every other live deadline: a
            # watcher not woken must already wake earlier, even after the
            # key that was soonest was discarded.
            assert soonest == all(value < due for k, due in model.items() if k != key)
            model[key] = value
        elif op == "discard":
            deadlines.discard(key)
            model.pop(key, None)
        else:
            taken = deadlines.pop_due(value / 1000)
            expected = sorted((due, k) for k, due in model.items() if due <= value)
            assert sorted((due, k) for k, due in taken) == expected
            for _, k in expected:
                del model[k]
        assert len(deadlines) == len(model)
        assert deadlines.next_due() == (min(model.values()) if model else None)
        for k in range(10):
            assert deadlines.due(k) == model.get(k)

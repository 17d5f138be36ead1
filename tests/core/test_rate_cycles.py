"""The rate limiter's cycles machine: resilience4j's arithmetic, exactly, and a naive model.

The reference is resilience4j's ``AtomicRateLimiter`` (``calculateNextState``,
``nanosToWaitForPermission``, ``reservePermissions``), ported test by test
from ``AtomicRateLimiterTest`` with its times in nanoseconds (its cycle is
``CYCLE_IN_NANOS`` = 250 ms). The property tests drive :class:`RateMachine`
beside ``NaiveCycles``, written from the rules alone: it refreshes one cycle
at a time in a loop, and finds a wait by trying whole cycles one after the
other until enough permits have come in.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith._core._rate import MAX_NS, RateMachine, nanoseconds

MS = 1_000_000
#: resilience4j AtomicRateLimiterTest's CYCLE_IN_NANOS.
CYCLE = 250 * MS


def machine(limit: int = 1, period: int = CYCLE, timeout: int = 0) -> RateMachine:
    return RateMachine(limit_for_period=limit, period_ns=period, timeout_ns=timeout)


def state(m: RateMachine) -> tuple[int, int]:
    return m.cycle, m.permissions


# ---------------------------------------------------------------- the worked example


def test_worked_example_of_four_callers_one_permit_per_second() -> None:
    """Limit 1 per 1000 ms, timeout 2000 ms; callers at 0, 125, 250 and 375 ms, then 3000 ms."""
    m = machine(limit=1, period=1000 * MS, timeout=2000 * MS)
    assert m.reserve(0) == 0  # a goes at once
    assert m.permissions == 0
    assert m.reserve(125 * MS) == 875 * MS  # b: the cycle-1 permit, at 1000
    assert m.permissions == -1
    assert m.reserve(250 * MS) == 1750 * MS  # c: 750 to cycle 1, then one whole cycle
    assert m.permissions == -2
    assert m.reserve(375 * MS) == -2625 * MS  # d: 2625 > 2000, refused
    assert state(m) == (0, -2)  # nothing reserved
    assert m.reserve(3000 * MS) == 0  # cycle 3 refilled: at once
    assert state(m) == (3, 0)


# ---------------------------------------------------------------- resilience4j's tests


def test_a_fresh_machine_has_its_limit_and_no_wait() -> None:
    """resilience4j AtomicRateLimiterTest.metricsTest."""
    m = machine()
    assert m.available(0) == 1
    assert m.nanos_to_wait(0) == 0


def test_the_first_cycle_holds_the_whole_limit() -> None:
    """resilience4j AtomicRateLimiterTest.permissionsInFirstCycle."""
    assert machine().available(CYCLE - 10) == 1


def test_acquire_then_refresh_at_the_next_cycle() -> None:
    """resilience4j AtomicRateLimiterTest.acquireAndRefreshWithEventPublishing (timeout 0)."""
    m = machine()
    assert m.reserve(CYCLE) == 0
    assert m.available(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.reserve(CYCLE) == -CYCLE
    assert m.available(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.reserve(2 * CYCLE) == 0
    assert m.available(2 * CYCLE) == 0
    assert m.reserve(2 * CYCLE) == -CYCLE
    assert m.nanos_to_wait(2 * CYCLE) == CYCLE


def test_a_reservation_waits_for_the_next_cycle_start() -> None:
    """resilience4j AtomicRateLimiterTest.reserveAndRefresh (timeout one cycle)."""
    m = machine(timeout=CYCLE)
    assert m.reserve(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.reserve(CYCLE) == CYCLE  # reserved: go at 2 * CYCLE
    assert m.available(CYCLE) == -1
    assert m.nanos_to_wait(CYCLE) == 2 * CYCLE
    assert m.available(2 * CYCLE + 10) == 0
    assert m.nanos_to_wait(2 * CYCLE + 10) == CYCLE - 10


def test_idle_cycles_refill_only_up_to_the_limit() -> None:
    """resilience4j AtomicRateLimiterTest.reserveFewThenSkipCyclesBeforeRefreshNonBlocking."""
    m = machine(timeout=CYCLE)
    assert m.reserve(CYCLE) == 0
    assert m.available(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.reserve(CYCLE) == CYCLE
    assert m.available(CYCLE) == -1
    assert m.nanos_to_wait(CYCLE) == 2 * CYCLE
    assert m.reserve(CYCLE) == -2 * CYCLE  # needs 500 ms > 250: nothing changes
    assert m.available(CYCLE) == -1
    assert m.nanos_to_wait(CYCLE) == 2 * CYCLE
    assert m.available(6 * CYCLE + 10) == 1  # five idle cycles, one permit
    assert m.nanos_to_wait(6 * CYCLE + 10) == 0


def test_more_permits_than_the_limit_wait_several_cycles() -> None:
    """resilience4j AtomicRateLimiterTest.reserveManyCyclesIfWegithgreaterThenLimitPerPeriod."""
    m = machine(timeout=5 * CYCLE)
    assert m.reserve(CYCLE, 3) == 2 * CYCLE
    assert m.permissions == -2


def test_a_zero_timeout_refuses_until_the_cycle_ends() -> None:
    """resilience4j AtomicRateLimiterTest.rejectedByTimeoutNonBlocking."""
    m = machine()
    assert m.reserve(CYCLE) == 0
    assert m.reserve(CYCLE) < 0
    assert m.available(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.available(2 * CYCLE - 1) == 0
    assert m.nanos_to_wait(2 * CYCLE - 1) == 1


def test_a_refund_gives_a_cancelled_reservation_back() -> None:
    """resilience4j AtomicRateLimiterTest.waitingThreadIsInterrupted, with the refund.

    resilience4j keeps the interrupted waiter's permit spent (available -1);
    the trio shell refunds it.
    """
    m = machine(timeout=CYCLE)
    assert m.reserve(CYCLE) == 0
    assert m.reserve(CYCLE) == CYCLE
    assert m.available(CYCLE) == -1
    m.refund(CYCLE + 5, 1)
    assert state(m) == (1, 0)
    assert m.nanos_to_wait(CYCLE + 5) == CYCLE - 5


def test_a_new_limit_counts_from_the_next_refresh() -> None:
    """resilience4j AtomicRateLimiterTest.changePermissionsLimitBetweenCycles."""
    m = machine(timeout=CYCLE)
    assert m.reserve(CYCLE) == 0
    assert m.nanos_to_wait(CYCLE) == CYCLE
    assert m.reserve(CYCLE) == CYCLE
    assert m.available(CYCLE) == -1
    assert m.nanos_to_wait(CYCLE) == 2 * CYCLE
    m.change_limit(2)
    assert m.limit_for_period == 2
    assert m.available(CYCLE) == -1  # the count is kept
    assert m.nanos_to_wait(CYCLE) == CYCLE  # the estimate uses the new limit at once
    assert m.available(2 * CYCLE + 10) == 1
    assert m.nanos_to_wait(2 * CYCLE + 10) == 0


def test_permissions_reserved_upfront_until_the_timeout() -> None:
    """resilience4j AtomicRateLimiterTest.reservePermissionsUpfront: 3 per 10 ms, timeout 12 ms."""
    period = 10 * MS
    m = machine(limit=3, period=period, timeout=12 * MS)
    waits = [m.reserve(period + i + 1) for i in range(9)]
    assert waits == [
        0,
        0,
        0,
        period - 4,
        period - 5,
        period - 6,
        -(2 * period - 7),  # refused: its permit comes 2 cycles on
        -(2 * period - 8),
        -(2 * period - 9),
    ]
    assert state(m) == (1, -3)


def test_changes_keep_the_other_settings() -> None:
    """resilience4j AtomicRateLimiterTest.changeDefaultTimeoutDuration and changeLimitForPeriod."""
    m = machine()
    m.change_timeout(1_000 * MS)
    assert (m.limit_for_period, m.period_ns, m.timeout_ns) == (1, CYCLE, 1_000 * MS)
    m.change_limit(35)
    assert (m.limit_for_period, m.period_ns, m.timeout_ns) == (35, CYCLE, 1_000 * MS)


# ---------------------------------------------------------------- this port's operations


def test_a_timeout_given_to_reserve_overrides_the_configured_one() -> None:
    m = machine(timeout=10 * CYCLE)
    assert m.reserve(0) == 0
    assert m.reserve(0, 1, 0) == -CYCLE  # now or never
    assert state(m) == (0, 0)
    assert m.reserve(0) == CYCLE  # the configured timeout reserves


def test_drain_takes_what_is_left_in_the_current_cycle() -> None:
    m = machine(limit=5, timeout=CYCLE)
    assert m.reserve(10, 2) == 0
    assert m.drain(20) == 3
    assert state(m) == (0, 0)
    assert m.nanos_to_wait(20) == CYCLE - 20
    assert m.drain(30) == 0  # nothing left: nothing drained
    assert m.available(CYCLE) == 5  # the next cycle is whole again


def test_drain_keeps_permits_reserved_ahead_and_refreshes_first() -> None:
    m = machine(limit=2, timeout=CYCLE)
    assert m.reserve(0, 2) == 0
    assert m.reserve(0) == CYCLE
    assert m.drain(0) == 0
    assert state(m) == (0, -1)  # a negative count is kept
    assert m.drain(CYCLE) == 1  # refreshed to 1 first, then drained
    assert state(m) == (1, 0)


def test_a_refund_never_lifts_the_count_above_the_limit() -> None:
    m = machine(limit=3, timeout=CYCLE)
    assert m.reserve(0, 3) == 0
    assert m.reserve(0, 2) == CYCLE
    m.refund(0, 5)
    assert state(m) == (0, 3)


def test_a_lower_limit_leaves_the_current_count_until_the_refresh() -> None:
    m = machine(limit=10)
    m.change_limit(2)
    assert m.available(0) == 10  # this cycle keeps what it had
    assert m.reserve(0, 4) == 0
    assert m.available(CYCLE) == 2


def test_a_clock_that_goes_back_starts_the_cycles_afresh() -> None:
    m = machine(limit=2, timeout=10 * CYCLE)
    assert m.reserve(50 * CYCLE, 2) == 0
    assert m.reserve(50 * CYCLE, 3) == 2 * CYCLE
    # A new trio run's clock reads earlier than the origin: cycle -1, full.
    assert m.available(-5) == 2
    assert m.reserve(-5) == 0
    assert state(m) == (-1, 1)
    assert m.nanos_to_wait(-5, 2) == 5  # cycle 0 starts 5 ns later


def test_the_machine_checks_its_numbers() -> None:
    with pytest.raises(ValueError, match=r"^limit_for_period must be an int >= 1, got 0$"):
        machine(limit=0)
    with pytest.raises(ValueError, match=r"^limit_for_period must be an int >= 1, got True$"):
        machine(limit=True)
    with pytest.raises(ValueError, match=r"^period_ns must be an int >= 1, got 0$"):
        machine(period=0)
    with pytest.raises(ValueError, match=r"^timeout_ns must be an int >= 0, got -1$"):
        machine(timeout=-1)
    m = machine()
    with pytest.raises(ValueError, match=r"^limit_for_period must be an int >= 1, got 1.5$"):
        m.change_limit(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout_ns must be an int >= 0, got -2$"):
        m.change_timeout(-2)
    assert (m.limit_for_period, m.timeout_ns) == (1, 0)
    assert repr(m) == f"<RateMachine 1 per {CYCLE} ns, timeout 0 ns: cycle 0, 1 permissions>"


@pytest.mark.parametrize(
    ("value", "positive", "expected"),
    [
        (0.25, True, 250_000_000),
        (1, True, 1_000_000_000),
        (1e-9, True, 1),
        (1.4e-9, True, 1),
        (0.1, True, 100_000_000),
        (0, False, 0),
        (0.0, False, 0),
        (5.0, False, 5_000_000_000),
        (9_223_372_036, False, 9_223_372_036_000_000_000),
    ],
)
def test_seconds_become_whole_nanoseconds(value: float, positive: bool, expected: int) -> None:
    got = nanoseconds("x", value, positive=positive)
    assert got == expected
    assert type(got) is int


@pytest.mark.parametrize(
    ("value", "positive", "message"),
    [
        (0, True, "x must be a finite number >= 1e-09, got 0"),
        (-1, True, "x must be a finite number >= 1e-09, got -1"),
        (0.9e-9, True, "x must be a finite number >= 1e-09, got 9e-10"),
        (-1e-9, False, "x must be a finite number >= 0, got -1e-09"),
        (math.nan, False, "x must be a finite number >= 0, got nan"),
        (math.inf, True, "x must be a finite number >= 1e-09, got inf"),
        (True, True, "x must be a finite number >= 1e-09, got True"),
        ("1", False, "x must be a finite number >= 0, got '1'"),
        (None, False, "x must be a finite number >= 0, got None"),
        (1e300, False, "x is too large: at most 2**63 - 1 ns (about 292 years), got 1e+300"),
        (10**10, True, "x is too large: at most 2**63 - 1 ns (about 292 years), got 10000000000"),
    ],
)
def test_seconds_out_of_range_are_refused(value: object, positive: bool, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        nanoseconds("x", value, positive=positive)


def test_the_largest_period_is_a_java_long_of_nanoseconds() -> None:
    assert nanoseconds("x", MAX_NS // 10**9, positive=True) == MAX_NS // 10**9 * 10**9
    assert MAX_NS == 9_223_372_036_854_775_807


# ---------------------------------------------------------------- a naive model under hypothesis


@dataclass
class NaiveCycles:
    """The cycles from the rules alone: one cycle at a time, whole cycles tried in turn."""

    limit: int
    period: int
    timeout: int
    cycle: int = 0
    permissions: int = -1

    def __post_init__(self) -> None:
        self.permissions = self.limit

    def refreshed(self, now: int) -> tuple[int, int]:
        cycle, permissions = self.cycle, self.permissions
        while cycle < now // self.period:
            cycle += 1
            permissions = min(permissions + self.limit, self.limit)
        return cycle, permissions

    def wait(self, now: int, cycle: int, permissions: int, permits: int) -> int:
        whole = 0
        while permissions + whole * self.limit < permits:
            whole += 1
        return 0 if whole == 0 else (cycle + whole) * self.period - now

    def reserve(self, now: int, permits: int, timeout: int | None) -> int:
        self.cycle, permissions = self.refreshed(now)
        wait = self.wait(now, self.cycle, permissions, permits)
        if wait <= (self.timeout if timeout is None else timeout):
            self.permissions = permissions - permits
            return wait
        self.permissions = permissions
        return -wait

    def refund(self, now: int, permits: int) -> None:
        self.cycle, permissions = self.refreshed(now)
        self.permissions = min(permissions + permits, self.limit)

    def drain(self, now: int) -> int:
        self.cycle, permissions = self.refreshed(now)
        drained = max(permissions, 0)
        self.permissions = permissions - drained
        return drained

    def available(self, now: int) -> int:
        return self.refreshed(now)[1]

    def nanos_to_wait(self, now: int, permits: int) -> int:
        cycle, permissions = self.refreshed(now)
        return self.wait(now, cycle, permissions, permits)


@st.composite
def operations(draw: st.DrawFn) -> tuple[tuple[int, int, int], list[tuple[object, ...]]]:
    limit = draw(st.integers(1, 5))
    period = draw(st.integers(1, 40))
    timeout = draw(st.integers(0, 4 * period))
    step = st.one_of(
        st.integers(0, 3 * period),
        st.sampled_from(["boundary", "before_boundary"]),
    )
    permits = st.integers(1, 3 * limit)
    op = st.one_of(
        st.tuples(st.just("reserve"), step, permits, st.none() | st.integers(0, 4 * period)),
        st.tuples(st.just("refund"), step, permits),
        st.tuples(st.just("drain"), step),
        st.tuples(st.just("available"), step),
        st.tuples(st.just("nanos_to_wait"), step, permits),
        st.tuples(st.just("change_limit"), step, st.integers(1, 5)),
        st.tuples(st.just("change_timeout"), step, st.integers(0, 4 * period)),
    )
    return (limit, period, timeout), draw(st.lists(op, max_size=60))


def advance(now: int, step: object, period: int) -> int:
    if step == "boundary":  # exactly the next cycle start
        return (now // period + 1) * period
    if step == "before_boundary":  # its last nanosecond
        return max(now, (now // period + 1) * period - 1)
    assert isinstance(step, int)
    return now + step


@settings(max_examples=500)
@given(operations())
def test_the_machine_agrees_with_the_naive_cycles(
    case: tuple[tuple[int, int, int], list[tuple[object, ...]]],
) -> None:
    (limit, period, timeout), ops = case
    m = machine(limit, period, timeout)
    naive = NaiveCycles(limit, period, timeout)
    now = 0
    for name, step, *args in ops:
        now = advance(now, step, period)
        if name == "reserve":
            permits, override = args
            assert isinstance(permits, int)
            assert override is None or isinstance(override, int)
            assert m.reserve(now, permits, override) == naive.reserve(now, permits, override)
        elif name == "refund":
            (permits,) = args
            assert isinstance(permits, int)
            m.refund(now, permits)
            naive.refund(now, permits)
        elif name == "drain":
            assert m.drain(now) == naive.drain(now)
        elif name == "available":
            assert m.available(now) == naive.available(now)
        elif name == "nanos_to_wait":
            (permits,) = args
            assert isinstance(permits, int)
            assert m.nanos_to_wait(now, permits) == naive.nanos_to_wait(now, permits)
        elif name == "change_limit":
            (new,) = args
            assert isinstance(new, int)
            m.change_limit(new)
            naive.limit = new
        else:
            (new,) = args
            assert isinstance(new, int)
            m.change_timeout(new)
            naive.timeout = new
        if name not in ("available", "nanos_to_wait", "change_limit", "change_timeout"):
            assert state(m) == (naive.cycle, naive.permissions)
        assert m.available(now) == naive.available(now)


@settings(max_examples=300)
@given(
    limit=st.integers(1, 4),
    period=st.integers(1, 30),
    timeout_cycles=st.integers(0, 6),
    steps=st.lists(st.integers(0, 40), max_size=80),
)
def test_single_permits_never_exceed_the_limit_in_any_cycle(
    limit: int, period: int, timeout_cycles: int, steps: list[int]
) -> None:
    # One permit per call: every grant (now + wait) falls in a cycle that
    # holds at most the limit, however the calls bunch up.
    m = machine(limit, period, timeout_cycles * period)
    now = 0
    granted: Counter[int] = Counter()
    for step in steps:
        now += step
        wait = m.reserve(now)
        if wait >= 0:
            granted[(now + wait) // period] += 1
            # A wait ends exactly at a cycle start (or is none).
            assert wait == 0 or (now + wait) % period == 0
    assert all(count <= limit for count in granted.values())

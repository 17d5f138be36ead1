"""The rate limiter's cycles: resilience4j's ``AtomicRateLimiter``, in integer nanoseconds.

docs/design.md rule 51 (and B18-B20) is the contract this module implements.

Theory of operation
-------------------

Time is ``now_ns``: whole nanoseconds since an origin that the shell
chooses (trio's clock when the limiter is built inside a run, else its
first use). Cycles are ``now_ns // period_ns``, so cycle ``c`` starts at
``c * period_ns`` and every boundary is exact: no float can move a permit
into the wrong cycle.

The state is resilience4j's ``State``: the active cycle and the active
permissions, which go negative while permits are reserved ahead (one
reservation per waiting caller). Initially ``(0, limit)``. Nothing runs at
a cycle start: the state is refreshed lazily, when someone asks, and idle
cycles refill only up to the limit (a burst after a long pause gets at most
``limit`` permits at once)::

    cycle = now // P
    if cycle != active:  permissions = min(permissions + (cycle - active) * L, L)
    if permissions >= p: wait = 0
    else:                wait = ((cycle + 1) * P - now)                  # to the next cycle start
                                + ceil((p - (permissions + L)) / L) * P  # whole cycles beyond
    if wait <= timeout:  permissions -= p                               # reserved

A waiter is released at a cycle start, not "P after its request". A caller
that cannot be served within its timeout reserves nothing; the state still
records the refresh. resilience4j's state also keeps the last wait
(``nanosToWait``); only its metrics read it, and they recompute it from the
state, as :meth:`RateMachine.nanos_to_wait` does.

Two operations are this port's own (the shell documents why):
:meth:`RateMachine.refund` gives back the permits of a reservation whose
wait was cancelled, and a clock that reads a cycle before the active one (a
limiter used again in a new trio run, whose clock starts afresh) restarts
the state at that cycle with a full limit.
"""

from __future__ import annotations

from typing import Final, final

from ._check import finite_at_least, int_at_least

__all__ = ["MAX_NS", "RateMachine", "nanoseconds"]

#: The longest period or timeout: resilience4j's (a Java long of nanoseconds).
MAX_NS: Final = 2**63 - 1


def nanoseconds(label: str, value: object, *, positive: bool) -> int:
    """``value`` seconds as whole nanoseconds, rounded to the nearest, checked.

    Args:
        label: the argument's name, for the error.
        value: seconds, an int or a float.
        positive: at least 1 ns (a period) instead of at least 0 (a timeout).

    Raises:
        ValueError: not a finite number (bools, NaN and infinities refused),
            below the minimum (1e-09 or 0), or more than :data:`MAX_NS`
            nanoseconds.
    """
    finite_at_least(label, value, 1e-9 if positive else 0)
    assert isinstance(value, int | float)  # checked just above
    # An int is converted exactly; a float to the nearest nanosecond.
    scaled = value * 1_000_000_000 if isinstance(value, int) else value * 1e9
    if scaled > MAX_NS:  # an exact comparison, even of a float with an int
        raise ValueError(
            f"{label} is too large: at most 2**63 - 1 ns (about 292 years), got {value!r}"
        )
    return round(scaled)


@final
class RateMachine:
    """The cycles of one rate limiter: configuration and state, in integer nanoseconds.

    Every method takes ``now_ns``, which must not decrease between calls
    (except across trio runs, see the module's docstring).

    Attributes:
        limit_for_period: permits per cycle (L).
        period_ns: the cycle's length (P).
        timeout_ns: the longest wait :meth:`reserve` reserves for.
        cycle: the active cycle.
        permissions: the active cycle's permissions; negative while
            permits are reserved ahead.

    Raises:
        ValueError: ``limit_for_period`` or ``period_ns`` not an int >= 1,
            ``timeout_ns`` not an int >= 0.
    """

    __slots__ = ("cycle", "limit_for_period", "period_ns", "permissions", "timeout_ns")

    def __init__(self, *, limit_for_period: int, period_ns: int, timeout_ns: int) -> None:
        int_at_least("limit_for_period", limit_for_period, 1)
        int_at_least("period_ns", period_ns, 1)
        int_at_least("timeout_ns", timeout_ns, 0)
        self.limit_for_period = limit_for_period
        self.period_ns = period_ns
        self.timeout_ns = timeout_ns
        self.cycle = 0
        self.permissions = limit_for_period

    def __repr__(self) -> str:
        return (
            f"<RateMachine {self.limit_for_period} per {self.period_ns} ns, timeout "
            f"{self.timeout_ns} ns: cycle {self.cycle}, {self.permissions} permissions>"
        )

    # ------------------------------------------------------------ arithmetic

    def _refreshed(self, cycle: int) -> int:
        """The permissions at ``cycle`` (the state is not changed)."""
        active = self.cycle
        if cycle == active:
            return self.permissions
        limit = self.limit_for_period
        if cycle > active:
            return min(self.permissions + (cycle - active) * limit, limit)
        # The clock went back: only a new trio run's clock does. Start afresh.
        return limit

    def _wait(self, now_ns: int, cycle: int, permissions: int, permits: int) -> int:
        """Nanoseconds until ``permits`` are available (``nanosToWaitForPermission``)."""
        if permissions >= permits:
            return 0
        limit = self.limit_for_period
        period = self.period_ns
        # ceil((permits - (permissions + limit)) / limit), in floor division.
        cycles = -((permissions + limit - permits) // limit)
        return (cycle + 1) * period - now_ns + cycles * period

    # ------------------------------------------------------------ operations

    def reserve(self, now_ns: int, permits: int = 1, timeout_ns: int | None = None) -> int:
        """Ask for ``permits``; reserve them if the wait is within the timeout.

        resilience4j ``reservePermission``: the answer is 0 (go now: the
        permits are taken), the wait in nanoseconds (> 0: the permits are
        reserved; go after it), or minus the wait needed (< 0: refused,
        nothing reserved; the state still records the refresh).

        Args:
            now_ns: the time.
            permits: how many (>= 1; may exceed the limit: the wait then
                spans several cycles).
            timeout_ns: the longest acceptable wait; default
                :attr:`timeout_ns` (0 asks for permits now or never).
        """
        cycle = now_ns // self.period_ns
        if cycle == self.cycle:
            permissions = self.permissions
            if permissions >= permits:  # the common case: a permit left in this cycle
                self.permissions = permissions - permits
                return 0
        else:
            permissions = self._refreshed(cycle)
            self.cycle = cycle
        wait = self._wait(now_ns, cycle, permissions, permits)
        if wait <= (self.timeout_ns if timeout_ns is None else timeout_ns):
            self.permissions = permissions - permits
            return wait
        self.permissions = permissions
        return -wait

    def refund(self, now_ns: int, permits: int) -> None:
        """Give back a reservation whose wait was cancelled: refresh, then add, up to the limit."""
        cycle = now_ns // self.period_ns
        self.permissions = min(self._refreshed(cycle) + permits, self.limit_for_period)
        self.cycle = cycle

    def drain(self, now_ns: int) -> int:
        """Take what is left in the current cycle (resilience4j ``drainPermissions``).

        Only the simple case is ported: after the refresh, a positive count
        drops to 0; a count already at or below 0 (reserved ahead) is kept.

        Returns:
            How many permits were drained.
        """
        cycle = now_ns // self.period_ns
        permissions = self._refreshed(cycle)
        self.cycle = cycle
        if permissions <= 0:
            self.permissions = permissions
            return 0
        self.permissions = 0
        return permissions

    def available(self, now_ns: int) -> int:
        """The refreshed permissions, without reserving (may be negative)."""
        return self._refreshed(now_ns // self.period_ns)

    def nanos_to_wait(self, now_ns: int, permits: int = 1) -> int:
        """The wait :meth:`reserve` would compute now, without reserving (0: none)."""
        cycle = now_ns // self.period_ns
        return self._wait(now_ns, cycle, self._refreshed(cycle), permits)

    def change_limit(self, limit_for_period: int) -> None:
        """A new limit (resilience4j ``changeLimitForPeriod``).

        The cycle and the permissions are kept; the new limit counts from
        the next refresh, and every estimate from now on uses it.

        Raises:
            ValueError: not an int >= 1.
        """
        int_at_least("limit_for_period", limit_for_period, 1)
        self.limit_for_period = limit_for_period

    def change_timeout(self, timeout_ns: int) -> None:
        """A new timeout for later reservations (resilience4j ``changeTimeoutDuration``).

        Raises:
            ValueError: not an int >= 0.
        """
        int_at_least("timeout_ns", timeout_ns, 0)
        self.timeout_ns = timeout_ns

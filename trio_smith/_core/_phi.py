"""The phi-accrual failure detector's pure machine: Akka's, exactly, in integer milliseconds.

Theory of operation
===================

Hayashibara et al., "The phi accrual failure detector" (SRDS 2004): instead
of a verdict, a detector outputs a suspicion level
``phi(t) = -log10(P_later(t - T_last))``, the improbability that a heartbeat
still comes after a silence of ``t - T_last``, where ``P_later`` is the tail
of a normal distribution fitted to the recent inter-arrival times. The
caller suspects the node once ``phi >= threshold``; the chance that the
suspicion is a mistake is about ``10 ** -threshold``.

This module is Akka's ``PhiAccrualFailureDetector`` and ``HeartbeatHistory``
(akka-remote; docs/design.md A6), bit for bit where Python
allows:

* **phi** uses Akka's logistic approximation of the normal CDF, not the
  exact tail (they differ by 1.8 at 6 sigma, which moves the crossing of 8
  by 39 ms); see :func:`phi`. Java's float semantics are kept: ``exp``
  overflowing gives phi 0.0, ``exp`` underflowing gives phi ``math.inf``;
  Python would raise instead.
* **Time is integer milliseconds**, as Akka's clock. :func:`to_ms` converts
  a trio time at the boundary. The bootstrap's ``est / 4`` and the warning's
  ``pause / 3 * 2`` are integer divisions, as Akka's ``Long`` arithmetic.
* **The history** keeps the last ``max_sample_size`` intervals in a ring
  with running sums (O(1) per heartbeat); mean and *population* variance
  come from the sums. The first heartbeat only stores its timestamp and
  seeds the history with ``[est - est // 4, est + est // 4]`` (mean ``est``,
  sd ``est // 4``) so that a node heard once still becomes suspect.
* **An interval is recorded only if the node was available** when its
  heartbeat came, judged with the history before it ("don't use the first
  heartbeat after failure for the history, since a long pause will skew the
  stats"); the timestamp always moves.
* **phi(now)** uses ``mean + acceptable_heartbeat_pause`` as the mean (the
  pause shifts the curve right) and ``max(sd, min_std_deviation)``.

What Akka lacks and a scheduler needs: :meth:`PhiState.suspect_at`, the first
millisecond at which ``phi >= threshold`` if no heartbeat comes. phi is
non-decreasing in the silence, so the answer is a threshold on an integer
line; a closed-form inverse (a cubic) gives a guess and a galloping then
binary search with :func:`phi` itself makes it exact: ``phi(t) >= threshold``
iff ``t >= suspect_at()``. A watcher can sleep until then and be right to the
millisecond, with no polling.

Deviations from Akka (each removes a Java NaN or a division by zero):
the variance is floored at 0.0 (Java takes ``sqrt`` of a rounding-negative
variance to NaN), and ``min_std_deviation`` and ``first_heartbeat_estimate``
must be at least 1 ms (Akka checks ``> 0`` and then truncates to whole
milliseconds, so 0.5 ms becomes a zero standard deviation).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from typing import Final, Generic, TypeVar, final

import attrs

from ._check import finite_at_least, int_at_least

__all__ = [
    "HeartbeatHistory",
    "PhiConfig",
    "PhiDeadlines",
    "PhiState",
    "crossing",
    "phi",
    "to_ms",
]

K = TypeVar("K", bound=Hashable)

#: The logistic approximation's coefficients (Akka, citing the "beta
#: Mathematics Handbook"; error 0.00014 at +-3.16 sigma).
_A: Final = 1.5976
_B: Final = 0.070566
_LN10: Final = math.log(10.0)
#: Below this, ``q**2`` cannot overflow in Cardano's formula.
_CARDANO_LIMIT: Final = 1e100


def to_ms(seconds: float) -> int:
    """Convert a ``trio.current_time()`` (or a duration) in seconds to whole milliseconds.

    ``floor(seconds * 1000 + 1e-6)``: Akka's clock and durations are whole
    milliseconds (``toMillis`` truncates). The epsilon absorbs binary
    rounding, so that decimal times such as 0.3 s or 4.523 s give 300 and
    4523, not 299 and 4522, and ``to_ms(n / 1000) == n`` for every n below
    ``10**9``.
    """
    return math.floor(seconds * 1000.0 + 1e-6)


def phi(time_diff: int, mean: float, std_deviation: float) -> float:
    """Return Akka's phi for a silence of ``time_diff`` ms under N(mean, std_deviation).

    ``y = (time_diff - mean) / sd`` and ``e = exp(-y * (1.5976 + 0.070566 *
    y**2))``; phi is ``-log10(e / (1 + e))`` past the mean and
    ``-log10(1 - 1 / (1 + e))`` up to it (Akka compares ``time_diff`` with
    the mean *after* the pause was added to it). Both are
    ``-log10(1 - F(time_diff))`` with F the logistic approximation of the
    normal CDF.

    Java semantics, never an exception: ``exp`` overflowing (far below the
    mean) gives 0.0, ``exp`` underflowing to 0 (far past it) gives
    ``math.inf``. Never -0.0.

    Args:
        time_diff: ms since the last heartbeat (any int a float can hold).
        mean: expected interval plus the acceptable pause, ms, finite.
        std_deviation: > 0, ms.

    Returns:
        phi, in ``[0.0, math.inf]``.
    """
    y = (time_diff - mean) / std_deviation
    try:
        e = math.exp(-y * (_A + _B * y * y))
    except OverflowError:
        # Java: exp gives +inf, then -log10(1 - 1 / (1 + inf)) = -log10(1.0).
        return 0.0
    if time_diff > mean:
        if e == 0.0:
            # Java: -log10(0.0) is +inf; Python's log10 raises.
            return math.inf
        return -math.log10(e / (1.0 + e))
    # 0.0 - x rather than -x: log10(1.0) is 0.0 and -0.0 must not leak
    # (Akka's phi(-25, 0, 1) is -0.0).
    return 0.0 - math.log10(1.0 - 1.0 / (1.0 + e))


def _approximate_y(threshold: float) -> float:
    """The y (in sd past the mean) at which :func:`phi` reaches ``threshold``, about.

    Past the mean phi is ``log10(1 + exp(z))`` with ``z = y * (A + B * y**2)``,
    so it reaches the threshold at ``z = ln(10**threshold - 1)``; the cubic
    ``B y**3 + A y - z = 0`` is increasing, with one real root (Cardano).
    Rounding makes this a guess; :func:`crossing` makes it exact.
    """
    scaled = threshold * _LN10
    # ln(10**t - 1) without overflow for a large t or cancellation for a small one.
    z = math.log(math.expm1(scaled)) if scaled < 700.0 else scaled
    q = z / (2.0 * _B)
    if abs(q) > _CARDANO_LIMIT:
        return math.cbrt(z / _B)
    p = _A / (3.0 * _B)
    root = math.sqrt(q * q + p * p * p)
    return math.cbrt(q + root) + math.cbrt(q - root)


def crossing(threshold: float, mean: float, std_deviation: float) -> int:
    """Return the least int ``d`` with ``phi(d, mean, std_deviation) >= threshold``.

    phi is non-decreasing in ``d``, tends to 0 below the mean and reaches
    ``math.inf`` some 22 sd past it, so ``d`` exists for every threshold > 0.
    A closed-form guess, then a galloping search and a binary search driven
    by :func:`phi` itself: the answer agrees with :func:`phi` exactly.

    Args:
        threshold: > 0.
        mean: expected interval plus the acceptable pause, ms, finite.
        std_deviation: > 0, ms.

    Returns:
        The silence, in ms, at which the node becomes suspect.
    """
    guess = mean + std_deviation * _approximate_y(threshold)
    start = math.ceil(guess) if math.isfinite(guess) else math.ceil(mean)
    # Invariant below: phi(low) < threshold <= phi(high).
    if phi(start, mean, std_deviation) >= threshold:
        high = start
        step = 1
        low = start - step
        while phi(low, mean, std_deviation) >= threshold:
            high = low
            step *= 2
            low = start - step
    else:
        low = start
        step = 1
        high = start + step
        while phi(high, mean, std_deviation) < threshold:
            low = high
            step *= 2
            high = start + step
    while high - low > 1:
        middle = (low + high) // 2
        if phi(middle, mean, std_deviation) >= threshold:
            high = middle
        else:
            low = middle
    return high


def _ms_at_least_one(label: str, value: object) -> int:
    """A duration in seconds of at least 1 ms, as whole ms (Akka's ``toMillis``)."""
    finite_at_least(label, value, 0.001)
    return to_ms(value)  # type: ignore[arg-type]


_NO_LABELS: Final[Mapping[str, str]] = {}


@final
@attrs.frozen(kw_only=True, init=False)
class PhiConfig:
    """Akka's five detector parameters, validated once, in seconds and in whole ms.

    The failure detector and the supervisor's heartbeat watch share it. Akka's
    ``require`` checks, plus: ``min_std_deviation`` and
    ``first_heartbeat_estimate`` are at least 1 ms, as Akka truncates them to
    whole ms (0.5 ms would become a zero standard deviation).

    Args:
        threshold: suspect once phi >= threshold; finite, > 0.
        max_sample_size: intervals kept; an int >= 1.
        min_std_deviation: floor of the standard deviation, seconds, >= 0.001.
        acceptable_heartbeat_pause: added to the mean interval, seconds, >= 0.
        first_heartbeat_estimate: the expected interval that seeds the
            history at the first heartbeat, seconds, >= 0.001.
        labels: names to use in error messages instead of these (a facade
            whose arguments are named otherwise).

    Raises:
        ValueError: an argument out of range, naming it and its value.
    """

    threshold: float
    max_sample_size: int
    min_std_deviation: float
    acceptable_heartbeat_pause: float
    first_heartbeat_estimate: float
    #: The durations in whole ms, as Akka uses them.
    min_std_deviation_ms: int
    acceptable_heartbeat_pause_ms: int
    first_heartbeat_estimate_ms: int

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        max_sample_size: int = 1000,
        min_std_deviation: float = 0.1,
        acceptable_heartbeat_pause: float = 3.0,
        first_heartbeat_estimate: float = 1.0,
        labels: Mapping[str, str] = _NO_LABELS,
    ) -> None:
        def label(name: str) -> str:
            return labels.get(name, name)

        # Akka's require(...) checks, in Akka's order.
        finite_at_least(label("threshold"), threshold, 0, strict=True)
        int_at_least(label("max_sample_size"), max_sample_size, 1)
        min_std_ms = _ms_at_least_one(label("min_std_deviation"), min_std_deviation)
        finite_at_least(label("acceptable_heartbeat_pause"), acceptable_heartbeat_pause, 0)
        estimate_ms = _ms_at_least_one(label("first_heartbeat_estimate"), first_heartbeat_estimate)
        self.__attrs_init__(
            threshold=threshold,
            max_sample_size=max_sample_size,
            min_std_deviation=min_std_deviation,
            acceptable_heartbeat_pause=acceptable_heartbeat_pause,
            first_heartbeat_estimate=first_heartbeat_estimate,
            min_std_deviation_ms=min_std_ms,
            acceptable_heartbeat_pause_ms=to_ms(acceptable_heartbeat_pause),
            first_heartbeat_estimate_ms=estimate_ms,
        )

    @property
    def warning_interval_ms(self) -> int:
        """Intervals at least this long draw Akka's "growing too large" warning.

        ``pause / 3 * 2`` in Akka's ``Long`` arithmetic: 2000 ms for a 3 s pause.
        """
        return self.acceptable_heartbeat_pause_ms // 3 * 2


@final
class HeartbeatHistory:
    """The last ``max_sample_size`` inter-arrival intervals, with running sums.

    Akka's ``HeartbeatHistory``: ``mean = sum / n`` and the *population*
    variance ``sum_sq / n - mean**2``, floored at 0.0 (Java would take its
    square root to NaN when rounding makes it negative). Appending is O(1).
    Mean and variance are undefined (ZeroDivisionError) for an empty
    history; the detector never has one.

    Args:
        max_sample_size: intervals kept; once full, each append drops the oldest.
        intervals: initial intervals, appended in order.
    """

    __slots__ = ("_intervals", "interval_sum", "max_sample_size", "squared_interval_sum")

    def __init__(self, max_sample_size: int, intervals: Iterable[int] = ()) -> None:
        self.max_sample_size = max_sample_size
        # Invariant: interval_sum == sum(_intervals) and squared_interval_sum
        # == sum(i * i for i in _intervals), exactly (Python ints), and
        # len(_intervals) <= max_sample_size.
        self._intervals: deque[int] = deque()
        self.interval_sum = 0
        self.squared_interval_sum = 0
        for interval in intervals:
            self.append(interval)

    def append(self, interval: int) -> None:
        """Record an interval in ms, dropping the oldest if full."""
        kept = self._intervals
        if len(kept) >= self.max_sample_size:
            oldest = kept.popleft()
            self.interval_sum -= oldest
            self.squared_interval_sum -= oldest * oldest
        kept.append(interval)
        self.interval_sum += interval
        self.squared_interval_sum += interval * interval

    def __len__(self) -> int:
        return len(self._intervals)

    @property
    def intervals(self) -> tuple[int, ...]:
        """The intervals kept, oldest first."""
        return tuple(self._intervals)

    @property
    def mean(self) -> float:
        """The mean interval, ms."""
        return self.interval_sum / len(self._intervals)

    @property
    def variance(self) -> float:
        """The population variance of the intervals, ms squared, >= 0.0."""
        n = len(self._intervals)
        mean = self.interval_sum / n
        return max(0.0, self.squared_interval_sum / n - mean * mean)

    @property
    def std_deviation(self) -> float:
        """The population standard deviation, ms."""
        return math.sqrt(self.variance)


@final
class PhiState:
    """One monitored node: its history and the time of its last heartbeat, in ms.

    Akka's ``PhiAccrualFailureDetector`` for one resource, minus the clock:
    every method takes ``now_ms`` (from :func:`to_ms`). Mutable; a trio
    program needs none of Akka's compare-and-set.

    Args:
        config: the parameters.
    """

    __slots__ = ("_mean", "_std", "config", "history", "timestamp")

    def __init__(self, config: PhiConfig) -> None:
        self.config = config
        #: None until the first heartbeat, which seeds it.
        self.history: HeartbeatHistory | None = None
        #: The last heartbeat, ms; None before the first.
        self.timestamp: int | None = None
        # Invariant: once history is set, _mean == history.mean + pause and
        # _std == max(history.std_deviation, min_std), as Akka's phi(now)
        # computes them; kept here because they change only on an append,
        # while phi is asked far more often (each heartbeat asks twice).
        self._mean = 0.0
        self._std = 1.0

    def _refresh(self, history: HeartbeatHistory) -> None:
        # HeartbeatHistory's mean and std_deviation, inlined (same formulas).
        config = self.config
        n = len(history._intervals)
        mean = history.interval_sum / n
        variance = history.squared_interval_sum / n - mean * mean
        std = math.sqrt(variance) if variance > 0.0 else 0.0
        self._mean = mean + config.acceptable_heartbeat_pause_ms
        self._std = max(std, float(config.min_std_deviation_ms))

    @property
    def is_monitoring(self) -> bool:
        """Whether a heartbeat has been recorded (Akka's ``isMonitoring``)."""
        return self.timestamp is not None

    def heartbeat(self, now_ms: int) -> int | None:
        """Record a heartbeat at ``now_ms``.

        The first one seeds the history (``[est - est // 4, est + est // 4]``).
        Later ones append ``now_ms - last`` only if the node is available at
        ``now_ms`` with the history as it was; the timestamp always moves.

        Returns:
            The interval, when it was recorded and is at least
            ``pause // 3 * 2`` ms (Akka then warns "heartbeat interval is
            growing too large"); otherwise None.
        """
        config = self.config
        last = self.timestamp
        self.timestamp = now_ms
        history = self.history
        if last is None or history is None:
            estimate = config.first_heartbeat_estimate_ms
            quarter = estimate // 4
            history = self.history = HeartbeatHistory(
                config.max_sample_size, (estimate - quarter, estimate + quarter)
            )
            self._refresh(history)
            return None
        interval = now_ms - last
        # Akka: "don't use the first heartbeat after failure for the history,
        # since a long pause will skew the stats" (judged with the old history).
        if phi(interval, self._mean, self._std) >= config.threshold:
            return None
        history.append(interval)
        self._refresh(history)
        return interval if interval >= config.warning_interval_ms else None

    def resume(self, now_ms: int) -> None:
        """Restart the silence at ``now_ms`` without recording an interval.

        For a node that was known to be idle until ``now_ms`` (not in Akka:
        docs/design.md rule 38): the idle time must not enter the history,
        which would make the detector slow for every later hang. Before the
        first heartbeat it is the first heartbeat.
        """
        if self.timestamp is None:
            self.heartbeat(now_ms)
        else:
            self.timestamp = max(self.timestamp, now_ms)

    def phi(self, now_ms: int) -> float:
        """Return phi at ``now_ms``: 0.0 before the first heartbeat (Akka: healthy)."""
        last = self.timestamp
        if last is None:
            return 0.0
        return phi(now_ms - last, self._mean, self._std)

    def is_available(self, now_ms: int) -> bool:
        """Whether ``phi(now_ms) < threshold`` (strict, as Akka)."""
        return self.phi(now_ms) < self.config.threshold

    def suspected_before(self, due: int) -> bool:
        """Whether phi reaches the threshold before ``due`` ms (a deadline moved earlier).

        phi is non-decreasing in the silence, so it does iff it does one ms
        before.
        """
        return self.phi(due - 1) >= self.config.threshold

    def suspect_at(self) -> int | None:
        """Return the first ms at which phi >= threshold if no heartbeat comes.

        Exact: ``phi(t) >= threshold`` iff ``t >= suspect_at()``, for the
        current history and timestamp. It may lie before the last heartbeat
        (a threshold below phi's value at zero silence, about 0.3 at the
        mean).

        Returns:
            A time in ms, or None before the first heartbeat (never suspect).
        """
        last = self.timestamp
        if last is None:
            return None
        return last + crossing(self.config.threshold, self._mean, self._std)


@final
class PhiDeadlines(Generic[K]):
    """When each watched key's phi reaches its threshold, soonest first: a watcher's agenda.

    The failure detector's watcher and the supervisor's hung-child watch
    share it. A key holds at most one live deadline; :meth:`schedule` makes
    its earlier entries stale (lazy invalidation: a rescheduled key costs a
    push, never a search), and stale entries are dropped when they surface
    or, once they outnumber the live ones, in one sweep (amortised O(1)).

    Invariant: ``_live[key] == (token, due)`` of the key's one live heap
    entry; every other entry of the heap is stale.
    """

    __slots__ = ("_heap", "_live", "_tokens")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, K]] = []
        self._live: dict[K, tuple[int, int]] = {}
        self._tokens = 0

    def __len__(self) -> int:
        return len(self._live)

    def due(self, key: K) -> int | None:
        """The key's live deadline, ms, or None if it has none."""
        entry = self._live.get(key)
        return None if entry is None else entry[1]

    def schedule(self, key: K, due: int) -> bool:
        """Set the key's deadline to ``due`` ms; return whether it is now the soonest.

        Soonest: earlier than every other key's live deadline (a tie goes to
        the one scheduled first).
        """
        self._tokens += 1
        token = self._tokens
        live = self._live
        live[key] = (token, due)
        heap = self._heap
        if len(heap) > 64 and len(heap) > 2 * len(live):
            heap[:] = [e for e in heap if live.get(e[2], (0, 0))[0] == e[1]]
            heapq.heapify(heap)
        heapq.heappush(heap, (due, token, key))
        # Exact among live deadlines: a stale entry left at the top (a
        # discarded key) must not hide that this one is now the soonest, or
        # a watcher with nothing else to wake for would never be woken.
        while live.get(heap[0][2], (0, 0))[0] != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][1] == token

    def discard(self, key: K) -> None:
        """Forget the key's deadline, if any."""
        self._live.pop(key, None)

    def clear(self) -> None:
        """Forget every deadline."""
        self._heap.clear()
        self._live.clear()

    def next_due(self) -> int | None:
        """The soonest live deadline, ms, or None."""
        heap = self._heap
        live = self._live
        while heap and live.get(heap[0][2], (0, 0))[0] != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[tuple[K, int]]:
        """Take the keys whose deadline is at or before ``now`` seconds, with their deadlines.

        A taken key has no deadline any more; schedule it again to keep
        watching it. Seconds, not ms: the caller woke at ``due / 1000`` on its
        clock, and converting that clock back to ms may read a ms less.
        """
        heap = self._heap
        live = self._live
        taken: list[tuple[K, int]] = []
        while heap and heap[0][0] / 1000 <= now:
            due, token, key = heapq.heappop(heap)
            if live.get(key, (0, 0))[0] == token:
                del live[key]
                taken.append((key, due))
        return taken

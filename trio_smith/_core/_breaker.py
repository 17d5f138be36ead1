"""The circuit breaker's state machine: resilience4j's, with time passed in.

Theory of operation
-------------------

This is resilience4j's ``CircuitBreakerStateMachine`` (docs/design.md rule
23 and B1-B8) as a plain object: trio is single-threaded, so there is no CAS
loop, and every "concurrent" interleaving comes from checkpoints inside the
protected call, between :meth:`BreakerMachine.acquire` and the outcome.

Six states (``CircuitState``). Each entry into a state builds a fresh
``_Phase``: its metrics, its attempts (how many times the breaker opened in a
row, for the wait interval), its OPEN deadline or HALF_OPEN permits, and a
generation number. Legal transitions are the table ``LEGAL`` (33 of the 36
pairs; resilience4j's ``StateTransition`` enum); anything else raises
``IllegalStateTransition`` and changes nothing.

A call goes: ``acquire(now)`` -> a permit (the phase's generation) or None
(rejected, counted as not permitted); then exactly one of
``record(permit, failed, duration, now)`` (an outcome) or
``release(permit)`` (an ignored error, or a cancellation: nothing recorded).
Outcomes go into the *current* phase's metrics, as resilience4j's do (late
results of calls admitted before a trip land in the OPEN phase's carried-over
metrics); a released permit only goes back to the phase that gave it, so a
permit from an earlier HALF_OPEN cannot inflate a later one (design.md B3).

Windows: COUNT_BASED keeps the last N outcomes in a ring; TIME_BASED keeps one
bucket per whole second of ``now`` (resilience4j's epoch seconds; here the
trio clock's seconds), so its effective span is (N-1, N] seconds. Both keep
running totals with subtract-on-evict: recording and reading are O(1).

What the machine says comes out as ``Signal`` values in ``signals``, in two
tiers (docs/design.md rule 41): the state's own news (STATE_TRANSITION, RESET
and the two *_EXCEEDED reports, a bounded number per stay) while
``observed`` is set, and the per-call kinds (SUCCESS, ERROR, IGNORED_ERROR,
NOT_PERMITTED) only while ``calls_observed`` is set too. resilience4j builds
its events only when a consumer is registered; the shell turns them into bus
events.

Time: ``now`` and durations are seconds of one monotonic clock (the shell's
``trio.current_time()``); randomness (randomized wait intervals) comes from the
``random`` callable given to the machine.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from typing import Final, final

import attrs

from .._exceptions import IllegalStateTransition
from ._check import is_finite_number, is_int, is_number

__all__ = [
    "LEGAL",
    "BreakerConfig",
    "BreakerMachine",
    "CheckResult",
    "CircuitState",
    "Signal",
    "SignalKind",
    "SlidingWindowType",
    "WaitInterval",
]


@final
class CircuitState(enum.Enum):
    """The states of a circuit breaker (resilience4j ``CircuitBreaker.State``).

    * ``CLOSED``: calls pass; outcomes are recorded and judged.
    * ``OPEN``: calls are rejected until the wait in OPEN has passed.
    * ``HALF_OPEN``: a fixed number of trial calls pass; their outcomes decide.
    * ``DISABLED``: calls pass; nothing is recorded (manual).
    * ``FORCED_OPEN``: every call is rejected (manual).
    * ``METRICS_ONLY``: calls pass; outcomes are recorded and the thresholds
      are reported but never open the breaker (manual).
    """

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    DISABLED = "DISABLED"
    FORCED_OPEN = "FORCED_OPEN"
    METRICS_ONLY = "METRICS_ONLY"


CLOSED: Final = CircuitState.CLOSED
OPEN: Final = CircuitState.OPEN
HALF_OPEN: Final = CircuitState.HALF_OPEN
DISABLED: Final = CircuitState.DISABLED
FORCED_OPEN: Final = CircuitState.FORCED_OPEN
METRICS_ONLY: Final = CircuitState.METRICS_ONLY

#: resilience4j ``StateTransition``: every (from, to) pair but three.
#: Every state can reach itself, CLOSED, DISABLED, FORCED_OPEN and
#: METRICS_ONLY; HALF_OPEN only comes from OPEN (and itself, and the manual
#: states); METRICS_ONLY never opens by itself or by hand.
LEGAL: Final[frozenset[tuple[CircuitState, CircuitState]]] = frozenset(
    (a, b)
    for a in CircuitState
    for b in CircuitState
    if (a, b) not in {(CLOSED, HALF_OPEN), (METRICS_ONLY, OPEN), (METRICS_ONLY, HALF_OPEN)}
)

#: States whose events are published (``allowPublish``); the others publish
#: only the forced kinds, STATE_TRANSITION and RESET.
_PUBLISHING: Final = frozenset({CLOSED, OPEN, HALF_OPEN, METRICS_ONLY})
#: States that record outcomes into their metrics.
_RECORDING: Final = frozenset({CLOSED, OPEN, HALF_OPEN, METRICS_ONLY})


@final
class SlidingWindowType(enum.Enum):
    """How the breaker's window holds outcomes (resilience4j ``SlidingWindowType``).

    * ``COUNT_BASED``: the last ``sliding_window_size`` calls.
    * ``TIME_BASED``: the calls of the last ``sliding_window_size`` whole seconds.
    """

    COUNT_BASED = "COUNT_BASED"
    TIME_BASED = "TIME_BASED"


@final
class CheckResult(enum.Enum):
    """What a window says about its thresholds (resilience4j ``Metrics.Result``)."""

    BELOW_MINIMUM_CALLS = "BELOW_MINIMUM_CALLS_THRESHOLD"
    BELOW_THRESHOLDS = "BELOW_THRESHOLDS"
    FAILURE_RATE_ABOVE_THRESHOLDS = "FAILURE_RATE_ABOVE_THRESHOLDS"
    SLOW_CALL_RATE_ABOVE_THRESHOLDS = "SLOW_CALL_RATE_ABOVE_THRESHOLDS"
    ABOVE_THRESHOLDS = "ABOVE_THRESHOLDS"

    @property
    def exceeded(self) -> bool:
        """Whether a threshold is exceeded."""
        return self in _EXCEEDED

    @property
    def failure_rate_exceeded(self) -> bool:
        """Whether the failure-rate threshold is exceeded."""
        return self in (CheckResult.FAILURE_RATE_ABOVE_THRESHOLDS, CheckResult.ABOVE_THRESHOLDS)

    @property
    def slow_call_rate_exceeded(self) -> bool:
        """Whether the slow-call-rate threshold is exceeded."""
        return self in (CheckResult.SLOW_CALL_RATE_ABOVE_THRESHOLDS, CheckResult.ABOVE_THRESHOLDS)


_EXCEEDED: Final = frozenset(
    {
        CheckResult.FAILURE_RATE_ABOVE_THRESHOLDS,
        CheckResult.SLOW_CALL_RATE_ABOVE_THRESHOLDS,
        CheckResult.ABOVE_THRESHOLDS,
    }
)


# ---------------------------------------------------------------- wait intervals


def _positive_seconds(label: str, value: object, minimum: float = 0.001) -> None:
    # resilience4j refuses waits under 1 ms (checkInterval).
    if not is_finite_number(value) or value < minimum:  # type: ignore[operator]
        raise ValueError(
            f"{label} must be a finite number of seconds >= {minimum:g}, got {value!r}"
        )


def _factor(label: str, value: object) -> None:
    if not is_finite_number(value) or not 0.0 <= value < 1.0:  # type: ignore[operator]
        raise ValueError(f"{label} must be a number in [0, 1), got {value!r}")


@final
@attrs.frozen(kw_only=True)
class WaitInterval:
    """How long the breaker stays OPEN on its n-th opening in a row (``IntervalFunction``).

    Build one with :meth:`constant`, :meth:`exponential`, :meth:`randomized`
    or :meth:`exponential_randomized`. ``attempt`` counts the openings since
    the breaker was last CLOSED (1 for the first), so an exponential wait
    starts again from ``initial`` after the breaker closes.

    Arithmetic is resilience4j's, in whole milliseconds: the exponential value
    is ``v(1) = initial``, ``v(n+1) = (long)(v(n) * multiplier)`` (truncated
    at every step, as ``ofExponentialBackoff`` iterates), capped at
    ``maximum``; the randomized value is
    ``max(1, v - f*v + u*(2*f*v + 1))`` for ``u`` in [0, 1).

    Attributes:
        initial: the first wait, seconds (finite, >= 0.001).
        multiplier: growth per attempt (1.0 for a constant wait; finite, >= 1).
        maximum: the cap, seconds (finite, >= ``initial``), or None.
        randomization: the randomization factor f, 0 for none.

    Raises:
        ValueError: a value out of range, naming it and its value.
    """

    initial: float
    multiplier: float = 1.0
    maximum: float | None = None
    randomization: float = 0.0

    def __attrs_post_init__(self) -> None:
        _positive_seconds("initial", self.initial)
        multiplier: object = self.multiplier
        if not is_finite_number(multiplier) or multiplier < 1.0:  # type: ignore[operator]
            raise ValueError(f"multiplier must be a finite number >= 1.0, got {multiplier!r}")
        maximum = self.maximum
        if maximum is not None:
            _positive_seconds("maximum", maximum)
            if maximum < self.initial:
                # A cap below the first wait would make every wait the cap
                # (resilience4j takes it silently; docs/design.md B9).
                raise ValueError(
                    "maximum must be a finite number of seconds >= initial "
                    f"({self.initial!r}), got {maximum!r}"
                )
        _factor("randomization", self.randomization)

    @classmethod
    def constant(cls, seconds: float) -> WaitInterval:
        """The same wait every time (resilience4j ``IntervalFunction.of``).

        Raises:
            ValueError: ``seconds`` is not a finite number >= 0.001.
        """
        _positive_seconds("seconds", seconds)
        return cls(initial=seconds)

    @classmethod
    def exponential(
        cls, initial: float = 0.5, multiplier: float = 1.5, maximum: float | None = None
    ) -> WaitInterval:
        """``initial``, times ``multiplier`` per attempt, capped (``ofExponentialBackoff``).

        Raises:
            ValueError: ``initial`` or ``maximum`` under 1 ms or not finite,
                ``maximum`` below ``initial``, or ``multiplier`` < 1.
        """
        return cls(initial=initial, multiplier=multiplier, maximum=maximum)

    @classmethod
    def randomized(cls, seconds: float = 0.5, factor: float = 0.5) -> WaitInterval:
        """``seconds``, spread by +-``factor`` at random (``ofRandomized``).

        Raises:
            ValueError: ``seconds`` under 1 ms, or ``factor`` outside [0, 1).
        """
        # Checked here too, so that the messages name this method's arguments.
        _positive_seconds("seconds", seconds)
        _factor("factor", factor)
        return cls(initial=seconds, randomization=factor)

    @classmethod
    def exponential_randomized(
        cls,
        initial: float = 0.5,
        multiplier: float = 1.5,
        factor: float = 0.5,
        maximum: float | None = None,
    ) -> WaitInterval:
        """The exponential wait, randomized, then capped (``ofExponentialRandomBackoff``).

        Raises:
            ValueError: as :meth:`exponential` and :meth:`randomized`.
        """
        _factor("factor", factor)
        return cls(initial=initial, multiplier=multiplier, maximum=maximum, randomization=factor)

    def delay(self, attempt: int, u: float) -> float:
        """The wait before the ``attempt``-th opening may be tried again, in seconds.

        Args:
            attempt: 1 for the first opening since CLOSED.
            u: a uniform random number in [0, 1) (used only when randomized).

        Raises:
            ValueError: ``attempt`` < 1 (resilience4j ``checkAttempt``).
        """
        if attempt < 1:
            raise ValueError(f"attempt must be >= 1, got {attempt!r}")
        value = float(int(self.initial * 1000 + 0.5))
        multiplier = self.multiplier
        if multiplier != 1.0:
            # Step by step: the closed form initial * multiplier ** (attempt - 1)
            # differs once a step truncates (500 ms * 1.5: 2530 ms, not 2531, at 5).
            cap = None if self.maximum is None or self.randomization else self.maximum * 1000
            for _ in range(attempt - 1):
                grown = value * multiplier
                value = float(math.floor(grown)) if grown < math.inf else math.inf
                if value == math.inf or (cap is not None and value >= cap):
                    break
        if self.randomization and value < math.inf:
            # Randomize before the cap (ofExponentialRandomBackoff caps last).
            delta = self.randomization * value
            value = max(1.0, float(math.floor(value - delta + u * (2 * delta + 1))))
        if self.maximum is not None:
            value = min(value, float(int(self.maximum * 1000 + 0.5)))
        return value / 1000


# ---------------------------------------------------------------- configuration


def _rate(label: str, value: object) -> None:
    if not is_number(value) or not 0 < value <= 100:  # type: ignore[operator]
        raise ValueError(f"{label} must be a percentage in (0, 100], got {value!r}")


@final
@attrs.frozen(kw_only=True)
class BreakerConfig:
    """The numbers that drive a breaker (resilience4j ``CircuitBreakerConfig``), checked.

    The shell's ``CircuitBreaker`` documents each field; defaults are
    resilience4j's ``CircuitBreakerConfig`` defaults.

    Raises:
        ValueError: a value out of range, naming it.
        TypeError: a value of the wrong type.
    """

    failure_rate_threshold: float = 50.0
    slow_call_rate_threshold: float = 100.0
    slow_call_duration_threshold: float = 60.0
    sliding_window_type: SlidingWindowType = SlidingWindowType.COUNT_BASED
    sliding_window_size: int = 100
    minimum_calls: int = 100
    permitted_calls_in_half_open: int = 10
    wait_duration_in_open_state: float | WaitInterval = 60.0
    max_wait_duration_in_half_open_state: float = 0.0
    state_after_half_open_wait: CircuitState = CircuitState.OPEN
    initial_state: CircuitState = CircuitState.CLOSED

    def __attrs_post_init__(self) -> None:
        _rate("failure_rate_threshold", self.failure_rate_threshold)
        _rate("slow_call_rate_threshold", self.slow_call_rate_threshold)
        slow: object = self.slow_call_duration_threshold
        if not is_number(slow) or math.isnan(slow) or slow <= 0:  # type: ignore[arg-type,operator]
            raise ValueError(
                f"slow_call_duration_threshold must be a number of seconds > 0, got {slow!r}"
            )
        if not isinstance(self.sliding_window_type, SlidingWindowType):
            raise TypeError(
                f"sliding_window_type must be a SlidingWindowType, got {self.sliding_window_type!r}"
            )
        for label in ("sliding_window_size", "minimum_calls", "permitted_calls_in_half_open"):
            value: object = getattr(self, label)
            if not is_int(value) or value < 1:  # type: ignore[operator]
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        wait: object = self.wait_duration_in_open_state
        if not isinstance(wait, WaitInterval) and (
            not is_finite_number(wait) or wait < 0.001  # type: ignore[operator]
        ):
            raise ValueError(
                "wait_duration_in_open_state must be a WaitInterval or a finite number of "
                f"seconds >= 0.001, got {wait!r}"
            )
        half: object = self.max_wait_duration_in_half_open_state
        if not is_finite_number(half) or half < 0 or 0 < half < 0.001:  # type: ignore[operator]
            raise ValueError(
                "max_wait_duration_in_half_open_state must be 0 (no limit) or a finite "
                f"number of seconds >= 0.001, got {half!r}"
            )
        after: object = self.state_after_half_open_wait
        if after not in (OPEN, CLOSED):
            raise ValueError(
                "state_after_half_open_wait must be CircuitState.OPEN or "
                f"CircuitState.CLOSED, got {after!r}"
            )
        if not isinstance(self.initial_state, CircuitState):
            raise TypeError(f"initial_state must be a CircuitState, got {self.initial_state!r}")

    @property
    def wait_interval(self) -> WaitInterval:
        """The wait in OPEN as an interval function."""
        wait = self.wait_duration_in_open_state
        return wait if isinstance(wait, WaitInterval) else WaitInterval.constant(wait)


# ---------------------------------------------------------------- windows and metrics

#: An outcome's code: bit 0 failed, bit 1 slow.
_FAILED: Final = 1
_SLOW: Final = 2


class _Window:
    """Running totals over a window of outcomes; subclasses decide what leaves it."""

    __slots__ = ("failed", "slow", "slow_failed", "total")

    def __init__(self) -> None:
        # Invariant: each total equals the sum over the outcomes in the window.
        self.total = 0
        self.failed = 0
        self.slow = 0
        self.slow_failed = 0

    def _add(self, code: int, sign: int) -> None:
        self.total += sign
        if code & _FAILED:
            self.failed += sign
        if code & _SLOW:
            self.slow += sign
            if code & _FAILED:
                self.slow_failed += sign

    def record(self, code: int, now: float) -> None:
        raise NotImplementedError  # pragma: no cover

    def advance(self, now: float) -> None:
        """Drop what has left the window by ``now`` (time-based only)."""


@final
class _CountWindow(_Window):
    """The last ``size`` outcomes (resilience4j ``FixedSizeSlidingWindowMetrics``).

    The ring grows with the outcomes recorded, up to ``size``: its memory is
    O(min(size, outcomes)), never O(size) up front. A HALF_OPEN stay builds a
    window of ``permitted_calls_in_half_open`` slots on every entry and
    records only a few of them (its verdict comes at
    ``min(minimum_calls, permitted)``), so preallocating it cost 8 bytes per
    permitted call each time: 7.6 GiB for 10**9 (docs/design.md rule 41).
    """

    __slots__ = ("index", "ring", "size")

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        #: Invariant: the codes of the outcomes in the window, at most
        #: ``size``; shorter than ``size`` only while it fills.
        self.ring: list[int] = []
        #: Where the next outcome goes: ``len(ring)`` while it fills, then the
        #: oldest one's slot.
        self.index = 0

    def record(self, code: int, now: float) -> None:
        ring = self.ring
        index = self.index
        if index < len(ring):
            old = ring[index]
            ring[index] = code
        else:  # filling: nothing leaves the window
            ring.append(code)
            old = -1
        index += 1
        self.index = 0 if index == self.size else index
        # A full window of plain successes (the common case) changes no total.
        if old != code:
            if old >= 0:
                self._add(old, -1)
            self._add(code, 1)


@final
class _TimeWindow(_Window):
    """Outcomes of the last ``size`` whole seconds (``SlidingTimeWindowMetrics``).

    Buckets are whole seconds of ``now``: the window at second ``s`` holds
    seconds ``s - size + 1 .. s``, so an outcome leaves it between
    ``size - 1`` and ``size`` seconds after it was recorded, as in resilience4j.
    Only seconds that hold an outcome have a bucket (resilience4j keeps
    ``size`` of them): memory is O(min(size, seconds with calls)).
    """

    __slots__ = ("_buckets", "_latest", "_size")

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        #: [second, total, failed, slow, slow_failed] per second that holds an
        #: outcome, oldest first. Invariant: only seconds in the window.
        self._buckets: deque[list[int]] = deque()
        #: The newest second seen; None before the first.
        self._latest: int | None = None

    def advance(self, now: float) -> None:
        second = math.floor(now)
        latest = self._latest
        if latest is not None and second <= latest:
            return
        self._latest = second
        # Drop the buckets of the seconds that left: each goes once, so this
        # is amortised O(1) per recorded outcome.
        buckets = self._buckets
        oldest_kept = second - self._size + 1
        while buckets and buckets[0][0] < oldest_kept:
            _, total, failed, slow, slow_failed = buckets.popleft()
            self.total -= total
            self.failed -= failed
            self.slow -= slow
            self.slow_failed -= slow_failed

    def record(self, code: int, now: float) -> None:
        self.advance(now)
        # The newest second: a clock never goes back, but if it did, the
        # outcome would land in the newest bucket, not a stale one.
        latest = self._latest
        assert latest is not None
        buckets = self._buckets
        if buckets and buckets[-1][0] == latest:
            bucket = buckets[-1]
        else:
            bucket = [latest, 0, 0, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        self._add(code, 1)
        if code & _FAILED:
            bucket[2] += 1
        if code & _SLOW:
            bucket[3] += 1
            if code & _FAILED:
                bucket[4] += 1


@final
class _Metrics:
    """A window, its minimum number of calls and the not-permitted count."""

    __slots__ = ("minimum_calls", "not_permitted", "window")

    def __init__(self, window: _Window, minimum_calls: int) -> None:
        self.window = window
        self.minimum_calls = minimum_calls
        self.not_permitted = 0

    def rates(self) -> tuple[float, float]:
        """(failure rate, slow-call rate) in percent; -1.0 each below the minimum calls."""
        window = self.window
        total = window.total
        if total == 0 or total < self.minimum_calls:
            return -1.0, -1.0
        return window.failed * 100.0 / total, window.slow * 100.0 / total


# ---------------------------------------------------------------- signals


@final
class SignalKind(enum.Enum):
    """What the machine reports (resilience4j ``CircuitBreakerEvent.Type``)."""

    SUCCESS = "success"
    ERROR = "error"
    IGNORED_ERROR = "ignored_error"
    NOT_PERMITTED = "not_permitted"
    STATE_TRANSITION = "state_transition"
    RESET = "reset"
    FAILURE_RATE_EXCEEDED = "failure_rate_exceeded"
    SLOW_CALL_RATE_EXCEEDED = "slow_call_rate_exceeded"


@final
@attrs.frozen(kw_only=True)
class Signal:
    """One thing the machine reports, in order.

    Attributes:
        kind: what happened.
        state: the state the breaker is in after it.
        from_state: for STATE_TRANSITION, the state left.
        duration: for SUCCESS / ERROR / IGNORED_ERROR, the call's seconds.
        rate: for the two *_EXCEEDED kinds, the rate in percent.
    """

    kind: SignalKind
    state: CircuitState
    from_state: CircuitState | None = None
    duration: float | None = None
    rate: float | None = None


# ---------------------------------------------------------------- the machine


@final
class _Phase:
    """One stay in one state: what resilience4j keeps in a ``CircuitBreakerState`` object."""

    __slots__ = (
        "attempts",
        "deadline",
        "failure_reported",
        "generation",
        "metrics",
        "permits",
        "slow_reported",
        "state",
    )

    def __init__(
        self,
        state: CircuitState,
        attempts: int,
        metrics: _Metrics,
        generation: int,
        deadline: float = math.inf,
        permits: int = 0,
    ) -> None:
        self.state = state
        self.attempts = attempts
        self.metrics = metrics
        self.generation = generation
        #: OPEN: retry after this (strictly); HALF_OPEN: the max wait's end.
        self.deadline = deadline
        #: HALF_OPEN: trial calls still admitted.
        self.permits = permits
        #: METRICS_ONLY reports each threshold once per stay (resilience4j's
        #: failure-rate and slow-call-rate exceeded events).
        self.failure_reported = False
        self.slow_reported = False


@final
class BreakerMachine:
    """The breaker's decisions; see the module docstring.

    Args:
        config: the checked configuration.
        name: the breaker's name, for errors.
        now: the current time, seconds.
        random: a source of uniform numbers in [0, 1), for randomized waits.
    """

    __slots__ = (
        "_generation",
        "_interval",
        "_random",
        "_slow_threshold",
        "calls_observed",
        "closed_fast",
        "config",
        "name",
        "observed",
        "phase",
        "signals",
    )

    def __init__(
        self,
        config: BreakerConfig,
        *,
        name: str,
        now: float,
        random: Callable[[], float],
    ) -> None:
        self.config = config
        self.name = name
        self._random = random
        self._interval = config.wait_interval
        self._slow_threshold = config.slow_call_duration_threshold
        self._generation = 0
        #: Whether the state's signals are collected (someone listens).
        self.observed = False
        #: Whether the per-call signals are collected too (one per call).
        self.calls_observed = False
        self.signals: list[Signal] = []
        initial = config.initial_state
        # resilience4j: a configured initial state starts with attempts 1.
        attempts = 1 if initial in (OPEN, FORCED_OPEN, HALF_OPEN) else 0
        self.phase = self._enter(initial, attempts, now, None)
        #: CLOSED: the success fast path (and the shell's hot path) applies.
        self.closed_fast = self.phase.state is CLOSED

    # ------------------------------------------------------------ reading

    @property
    def state(self) -> CircuitState:
        """The current state (an elapsed OPEN wait shows as OPEN until a call)."""
        return self.phase.state

    @property
    def attempts(self) -> int:
        """Openings in a row since the breaker was last CLOSED (0 when closed)."""
        return self.phase.attempts

    def rates(self, now: float) -> tuple[float, float]:
        """(failure rate, slow-call rate) of the current metrics; -1.0 below the minimum calls."""
        metrics = self.phase.metrics
        metrics.window.advance(now)
        return metrics.rates()

    def retry_after(self, now: float) -> float | None:
        """Seconds until OPEN admits a trial call; None in the other states."""
        phase = self.phase
        if phase.state is not OPEN:
            return None
        return max(0.0, phase.deadline - now)

    def next_deadline(self) -> float | None:
        """When a timer should call :meth:`deadline_reached` (OPEN's wait, HALF_OPEN's limit)."""
        phase = self.phase
        if phase.state is OPEN or (phase.state is HALF_OPEN and phase.deadline < math.inf):
            return phase.deadline
        return None

    # ------------------------------------------------------------ building phases

    def _window(self, size: int, kind: SlidingWindowType) -> _Window:
        if kind is SlidingWindowType.TIME_BASED:
            return _TimeWindow(size)
        return _CountWindow(size)

    def _closed_metrics(self) -> _Metrics:
        config = self.config
        size = config.sliding_window_size
        minimum = config.minimum_calls
        if config.sliding_window_type is SlidingWindowType.COUNT_BASED:
            # resilience4j clamps the minimum to a count window's size.
            minimum = min(minimum, size)
        return _Metrics(self._window(size, config.sliding_window_type), minimum)

    def _enter(
        self,
        state: CircuitState,
        attempts: int,
        now: float,
        previous: _Phase | None,
        wait: float | None = None,
    ) -> _Phase:
        self._generation += 1
        generation = self._generation
        config = self.config
        if state is CLOSED or state is METRICS_ONLY:
            return _Phase(state, 0, self._closed_metrics(), generation)
        if state is OPEN:
            if wait is None:
                wait = self._interval.delay(max(attempts, 1), self._random())
            # OPEN keeps the metrics of the state that opened (late results
            # are still recorded there; resilience4j OpenState).
            metrics = previous.metrics if previous is not None else self._closed_metrics()
            return _Phase(OPEN, attempts, metrics, generation, deadline=now + wait)
        if state is HALF_OPEN:
            permitted = config.permitted_calls_in_half_open
            # A count window of `permitted`; its minimum is min(minimum, permitted).
            metrics = _Metrics(_CountWindow(permitted), min(config.minimum_calls, permitted))
            limit = config.max_wait_duration_in_half_open_state
            deadline = now + limit if limit > 0 else math.inf
            return _Phase(HALF_OPEN, attempts, metrics, generation, deadline, permitted)
        # DISABLED and FORCED_OPEN record nothing: empty metrics.
        return _Phase(state, attempts, _Metrics(_CountWindow(1), 1), generation)

    def _signal(self, kind: SignalKind, **fields: object) -> None:
        state = self.phase.state
        if state in _PUBLISHING or kind is SignalKind.STATE_TRANSITION or kind is SignalKind.RESET:
            self.signals.append(Signal(kind=kind, state=state, **fields))  # type: ignore[arg-type]

    def _transition(
        self,
        to: CircuitState,
        now: float,
        *,
        attempts: int | None = None,
        wait: float | None = None,
    ) -> None:
        """Enter ``to`` (legality checked by the caller); publish STATE_TRANSITION unless X->X."""
        old = self.phase
        if attempts is None:
            if to is OPEN or to is FORCED_OPEN:
                attempts = old.attempts + 1
            elif to is HALF_OPEN:
                attempts = old.attempts
            else:
                attempts = 0
        self.phase = self._enter(to, attempts, now, old, wait)
        self.closed_fast = self.phase.state is CLOSED
        if self.observed and old.state is not to:
            self._signal(SignalKind.STATE_TRANSITION, from_state=old.state)

    def _check_legal(self, to: CircuitState) -> None:
        if (self.phase.state, to) not in LEGAL:
            raise IllegalStateTransition(
                f"circuit breaker {self.name!r}",
                self.phase.state.value,
                f"a transition to {to.value}",
            )

    # ------------------------------------------------------------ calls

    def acquire(self, now: float) -> int | None:
        """Ask to run a call: the permit (an int to give back), or None if rejected.

        OPEN moves to HALF_OPEN when ``now`` is strictly after its deadline
        (resilience4j ``isAfter``), then asks again there. HALF_OPEN past its
        max wait moves on first (design.md B2).
        """
        phase = self.phase
        state = phase.state
        if state is CLOSED or state is DISABLED or state is METRICS_ONLY:
            return phase.generation
        if state is OPEN and now > phase.deadline:
            self._transition(HALF_OPEN, now)
            phase = self.phase
            state = HALF_OPEN
        elif state is HALF_OPEN and now >= phase.deadline:
            self.deadline_reached(now)
            return self.acquire(now)
        if state is HALF_OPEN and phase.permits > 0:
            phase.permits -= 1
            return phase.generation
        phase.metrics.not_permitted += 1
        if self.calls_observed:
            self._signal(SignalKind.NOT_PERMITTED)
        return None

    def release(self, permit: int) -> None:
        """Give back a permit whose call is not recorded (ignored, cancelled).

        Only the stay that gave it takes it back: a HALF_OPEN permit returns
        to that HALF_OPEN only (design.md B3).
        """
        phase = self.phase
        if phase.generation == permit and phase.state is HALF_OPEN:
            phase.permits += 1

    def ignored(self, permit: int, duration: float) -> None:
        """An ignored error: the permit goes back, nothing is recorded (IGNORED_ERROR)."""
        self.release(permit)
        if self.calls_observed:
            self._signal(SignalKind.IGNORED_ERROR, duration=duration)

    def succeeded(self, duration: float, now: float) -> bool:
        """A call succeeded (or raised an error that is not recorded as a failure).

        Returns:
            Whether the state moved (a slow success can open the breaker).
        """
        if self.closed_fast and not self.calls_observed:
            # The common case (docs/performance.md): CLOSED, nobody listening
            # to calls. No SUCCESS signal, and no judging while the window
            # holds no failed or slow call (no rate can reach a threshold);
            # a trip judged here still signals its report and transition.
            metrics = self.phase.metrics
            window = metrics.window
            window.record(_SLOW if duration > self._slow_threshold else 0, now)
            if (window.failed or window.slow) and window.total >= metrics.minimum_calls:
                phase = self.phase
                self._judge(now)
                return self.phase is not phase
            return False
        phase = self.phase
        self._record(0, duration, now, SignalKind.SUCCESS)
        return self.phase is not phase

    def failed(self, duration: float, now: float) -> None:
        """A call failed: a recorded exception, or a result recorded as a failure."""
        self._record(_FAILED, duration, now, SignalKind.ERROR)

    def _record(self, code: int, duration: float, now: float, kind: SignalKind) -> None:
        phase = self.phase
        if phase.state is HALF_OPEN and now >= phase.deadline:
            # Past its max wait, HALF_OPEN moves on before it judges, as it
            # would have at its deadline under run() (design.md B2): a trial
            # call that outlived the limit is a late result, not a verdict.
            self.deadline_reached(now)
            phase = self.phase
        if duration > self._slow_threshold:
            code |= _SLOW
        if self.calls_observed:
            self._signal(kind, duration=duration)
        if phase.state not in _RECORDING:
            return
        phase.metrics.window.record(code, now)
        self._judge(now)

    def _judge(self, now: float) -> None:
        """Apply the thresholds after a recorded call (``checkIfThresholdsExceeded``)."""
        phase = self.phase
        state = phase.state
        if state is OPEN:
            return  # late results: recorded, no transition
        result = self.check()
        if state is CLOSED:
            if result.exceeded:
                self._report_exceeded(result)
                self._transition(OPEN, now)
        elif state is HALF_OPEN:
            if result.exceeded:
                self._transition(OPEN, now)
            elif result is CheckResult.BELOW_THRESHOLDS:
                self._transition(CLOSED, now)
        elif state is METRICS_ONLY and result.exceeded:
            self._report_exceeded(result, once=True)

    def check(self) -> CheckResult:
        """What the current metrics say about the thresholds."""
        metrics = self.phase.metrics
        failure, slow = metrics.rates()
        if failure < 0:
            return CheckResult.BELOW_MINIMUM_CALLS
        config = self.config
        over_failure = failure >= config.failure_rate_threshold
        over_slow = slow >= config.slow_call_rate_threshold
        if over_failure and over_slow:
            return CheckResult.ABOVE_THRESHOLDS
        if over_failure:
            return CheckResult.FAILURE_RATE_ABOVE_THRESHOLDS
        if over_slow:
            return CheckResult.SLOW_CALL_RATE_ABOVE_THRESHOLDS
        return CheckResult.BELOW_THRESHOLDS

    def _report_exceeded(self, result: CheckResult, *, once: bool = False) -> None:
        if not self.observed:
            return
        phase = self.phase
        failure, slow = phase.metrics.rates()
        if result.failure_rate_exceeded and not (once and phase.failure_reported):
            phase.failure_reported = once
            self._signal(SignalKind.FAILURE_RATE_EXCEEDED, rate=failure)
        if result.slow_call_rate_exceeded and not (once and phase.slow_reported):
            phase.slow_reported = once
            self._signal(SignalKind.SLOW_CALL_RATE_EXCEEDED, rate=slow)

    # ------------------------------------------------------------ time

    def deadline_reached(self, now: float) -> None:
        """A timer fired at :meth:`next_deadline`: OPEN -> HALF_OPEN, or HALF_OPEN's max wait.

        Does nothing if the deadline has moved (a transition since).
        """
        phase = self.phase
        if now < phase.deadline:
            return
        if phase.state is OPEN:
            self._transition(HALF_OPEN, now)
        elif phase.state is HALF_OPEN:
            self._transition(self.config.state_after_half_open_wait, now)

    # ------------------------------------------------------------ manual control

    def transition_to(self, to: CircuitState, now: float) -> None:
        """A manual transition (resilience4j ``transitionTo*State``).

        X -> X is legal and starts a new stay (OPEN re-arms its wait and
        counts one more attempt) but publishes no STATE_TRANSITION (as
        resilience4j's OPEN -> OPEN).

        Raises:
            IllegalStateTransition: CLOSED -> HALF_OPEN, METRICS_ONLY -> OPEN or
                METRICS_ONLY -> HALF_OPEN; nothing changes.
        """
        self._check_legal(to)
        self._transition(to, now)

    def open_for(self, seconds: float, now: float) -> None:
        """OPEN for ``seconds`` instead of the wait interval; attempts unchanged.

        resilience4j's ``transitionToOpenStateFor``.

        Raises:
            IllegalStateTransition: from METRICS_ONLY.
        """
        self._check_legal(OPEN)
        self._transition(OPEN, now, attempts=self.phase.attempts, wait=seconds)

    def reset(self, now: float) -> None:
        """A fresh CLOSED; STATE_TRANSITION if it was not CLOSED, then RESET.

        resilience4j's ``reset``.
        """
        self._transition(CLOSED, now)
        if self.observed:
            self._signal(SignalKind.RESET)

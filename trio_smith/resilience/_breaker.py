"""The circuit breaker's trio shell: wraps calls, reads the clock, runs the timers.

Every decision is the machine's (``trio_smith._core._breaker``); this module
classifies what a call did ("What counts" in docs/resilience.md; design.md
B4 and T1-T4), measures its duration, rejects with :class:`CallNotPermitted`
after a checkpoint, and turns the machine's signals into events and
telemetry (``trio_smith.telemetry``: state changes and, while a handler
listens, each call's outcome; docs/design.md rule 44).
"""

from __future__ import annotations

import contextvars
import logging
import random as _random
from collections.abc import Awaitable, Callable
from time import perf_counter as _perf_counter
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar, final

import attrs
import trio

from .. import _telemetry
from .._core._breaker import (
    BreakerConfig,
    BreakerMachine,
    CircuitState,
    Signal,
    SignalKind,
    SlidingWindowType,
    WaitInterval,
)
from .._core._check import (
    exception_types,
    is_finite_number,
    non_empty_str,
    optional_callable,
)
from .._emit import Emitter, check_call_events, check_publisher, describe_error
from .._event import Event, EventPublisher, EventType, SystemEvent
from .._exceptions import CallNotPermitted
from .._telemetry import BREAKER_CALL, BREAKER_STATE_CHANGE
from .._trio_private import system_clock_offset
from ._decorate import through

__all__ = ["BreakerStatistics", "CircuitBreaker", "CircuitBreakerEvent"]

log: Final = logging.getLogger("trio_smith.resilience")

P = ParamSpec("P")
T = TypeVar("T")


@final
class CircuitBreakerEvent:
    """The event types of a breaker, category ``circuit_breaker``.

    They are resilience4j's ``CircuitBreakerEvent.Type`` kinds. A breaker
    with ``events=`` publishes STATE_TRANSITION, RESET and the two
    ``*_RATE_EXCEEDED`` kinds; SUCCESS, ERROR, IGNORED_ERROR and
    NOT_PERMITTED, one per call, only with ``call_events=True``. Besides
    them, it publishes :attr:`SystemEvent.CIRCUIT_BREAKER_OPEN
    <trio_smith.events.SystemEvent.CIRCUIT_BREAKER_OPEN>` when it opens
    (OPEN or FORCED_OPEN) and ``CIRCUIT_BREAKER_CLOSED`` when it closes.
    """

    SUCCESS: Final = EventType("circuit_breaker", "success")
    ERROR: Final = EventType("circuit_breaker", "error")
    IGNORED_ERROR: Final = EventType("circuit_breaker", "ignored_error")
    NOT_PERMITTED: Final = EventType("circuit_breaker", "not_permitted")
    STATE_TRANSITION: Final = EventType("circuit_breaker", "state_transition")
    RESET: Final = EventType("circuit_breaker", "reset")
    FAILURE_RATE_EXCEEDED: Final = EventType("circuit_breaker", "failure_rate_exceeded")
    SLOW_CALL_RATE_EXCEEDED: Final = EventType("circuit_breaker", "slow_call_rate_exceeded")


_EVENT_TYPES: Final = {kind: getattr(CircuitBreakerEvent, kind.name) for kind in SignalKind}


@final
@attrs.frozen(kw_only=True)
class BreakerStatistics:
    """A snapshot of a breaker (resilience4j ``CircuitBreaker.Metrics``).

    The counts are those of the current state's window: a new stay in
    CLOSED or HALF_OPEN starts from zero, and OPEN keeps the window that
    opened it.

    Attributes:
        name: the breaker's name.
        state: its state (an elapsed OPEN wait still shows OPEN until a call).
        failure_rate: percent of failed calls in the window; -1.0 below the
            minimum number of calls.
        slow_call_rate: percent of slow calls; -1.0 below the minimum.
        buffered_calls: calls in the window.
        failed_calls: failed calls in the window.
        slow_calls: slow calls in the window (failed or not).
        slow_failed_calls: slow calls that failed.
        successful_calls: ``buffered_calls - failed_calls``.
        not_permitted_calls: calls rejected in this stay.
        attempts: openings in a row since the breaker was last CLOSED.
        retry_after: OPEN: seconds until a trial call is admitted; else None.
        events_dropped: events the publisher refused (full, closed, or
            its own error); the first refusal is logged as a warning naming
            the breaker, then the 10th, the 100th...
    """

    name: str
    state: CircuitState
    failure_rate: float
    slow_call_rate: float
    buffered_calls: int
    failed_calls: int
    slow_calls: int
    slow_failed_calls: int
    successful_calls: int
    not_permitted_calls: int
    attempts: int
    retry_after: float | None
    events_dropped: int


#: Per task (trio gives each task its own context): the entries of
#: ``async with breaker:`` blocks, innermost first, as (breaker, permit,
#: start, outer entry). A contextvar, not an attribute: many tasks may be
#: inside the same breaker at once.
_ENTRY: Final[contextvars.ContextVar[tuple[Any, ...] | None]] = contextvars.ContextVar(
    "trio_smith.breaker_entry", default=None
)


@final
class CircuitBreaker:
    """A circuit breaker with resilience4j's semantics, for trio.

    Use it as ``async with breaker:``, ``await breaker.call(fn, *args)`` or a
    decorator (``@breaker``). A call that raises a recorded exception, or
    whose result ``record_result`` marks, is a failure; one slower than
    ``slow_call_duration_threshold`` is slow. When the failure rate or the
    slow-call rate of the window reaches its threshold (with at least
    ``minimum_calls`` calls in it) the breaker opens: calls raise
    :class:`CallNotPermitted` until the wait in OPEN has passed, then
    ``permitted_calls_in_half_open`` trial calls decide whether it closes or
    opens again. The call that trips it raises its own exception.

    ``trio.Cancelled``, ``KeyboardInterrupt`` and every other exception that
    is not an ``Exception`` are never outcomes: the permit is given back,
    nothing is recorded, and the exception propagates unchanged.

    OPEN moves to HALF_OPEN lazily, at the first call strictly after the
    wait (resilience4j's default). Run :meth:`run` in a nursery to make it
    happen at the deadline, and to enforce
    ``max_wait_duration_in_half_open_state`` on time (without it, that limit
    is applied at the next call, or when a trial call ends past it).

    Args:
        name: names the breaker in errors, events and logs.
        failure_rate_threshold: percent in (0, 100]; reached (``>=``) opens.
        slow_call_rate_threshold: percent in (0, 100]; reached opens.
        slow_call_duration_threshold: seconds (> 0); a call that takes longer
            (strictly) is slow. ``math.inf``: no call is.
        sliding_window_type: COUNT_BASED (the last N calls) or TIME_BASED
            (the calls of the last N seconds).
        sliding_window_size: N, >= 1.
        minimum_calls: calls the window needs before rates count (>= 1;
            capped at N for a count window; in HALF_OPEN,
            ``min(minimum_calls, permitted_calls_in_half_open)``).
        permitted_calls_in_half_open: trial calls HALF_OPEN admits at once.
        wait_duration_in_open_state: seconds (>= 0.001) or a
            :class:`WaitInterval` of the number of openings in a row.
        max_wait_duration_in_half_open_state: 0 (no limit) or seconds
            (>= 0.001) after which HALF_OPEN moves to
            ``state_after_half_open_wait`` (OPEN or CLOSED).
        state_after_half_open_wait: see above.
        record_exceptions: exception classes recorded as failures
            (subclasses too); default: every ``Exception``.
        record_exception: a predicate that also marks failures (or-ed with
            ``record_exceptions`` when both are given).
        ignore_exceptions: exception classes that are not recorded at all:
            the call's permit is given back. Checked before recording.
        ignore_exception: a predicate that also marks ignored exceptions.
        record_result: a predicate on a returned value; True records the
            call as a failure (the value is still returned).
        initial_state: the state to start in.
        events: where to publish events (an ``EventBus``, or anything with
            ``publish_nowait``); None publishes nothing. By default only the
            state's events go out: transitions, resets and thresholds
            reached (a few per trip, whatever the load).
        call_events: also publish one event per call (``success``,
            ``error``, ``ignored_error``, ``not_permitted``). Needs
            ``events``. A bus takes them at some microseconds each and, under
            load, refuses what its subscribers cannot keep up with (counted
            in ``events_dropped``).
        clock: seconds, for durations and deadlines; default
            ``trio.current_time`` (so ``MockClock`` drives everything).
        random: uniform numbers in [0, 1) for randomized waits; default
            ``random.random``.

    Raises:
        ValueError: a number out of range, naming it.
        TypeError: an argument of the wrong type.
    """

    def __init__(
        self,
        name: str = "circuit_breaker",
        *,
        failure_rate_threshold: float = 50.0,
        slow_call_rate_threshold: float = 100.0,
        slow_call_duration_threshold: float = 60.0,
        sliding_window_type: SlidingWindowType = SlidingWindowType.COUNT_BASED,
        sliding_window_size: int = 100,
        minimum_calls: int = 100,
        permitted_calls_in_half_open: int = 10,
        wait_duration_in_open_state: float | WaitInterval = 60.0,
        max_wait_duration_in_half_open_state: float = 0.0,
        state_after_half_open_wait: CircuitState = CircuitState.OPEN,
        record_exceptions: tuple[type[Exception], ...] | None = None,
        record_exception: Callable[[Exception], bool] | None = None,
        ignore_exceptions: tuple[type[Exception], ...] = (),
        ignore_exception: Callable[[Exception], bool] | None = None,
        record_result: Callable[[Any], bool] | None = None,
        initial_state: CircuitState = CircuitState.CLOSED,
        events: EventPublisher | None = None,
        call_events: bool = False,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._name = non_empty_str("name", name)
        config = BreakerConfig(
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration_threshold=slow_call_duration_threshold,
            sliding_window_type=sliding_window_type,
            sliding_window_size=sliding_window_size,
            minimum_calls=minimum_calls,
            permitted_calls_in_half_open=permitted_calls_in_half_open,
            wait_duration_in_open_state=wait_duration_in_open_state,
            max_wait_duration_in_half_open_state=max_wait_duration_in_half_open_state,
            state_after_half_open_wait=state_after_half_open_wait,
            initial_state=initial_state,
        )
        self._record_types = (
            None
            if record_exceptions is None
            else exception_types("record_exceptions", record_exceptions)
        )
        self._ignore_types = exception_types("ignore_exceptions", ignore_exceptions)
        for label, value in (
            ("record_exception", record_exception),
            ("ignore_exception", ignore_exception),
            ("record_result", record_result),
            ("clock", clock),
            ("random", random),
        ):
            optional_callable(label, value)
        checked = check_publisher(events)
        check_call_events(checked, call_events)
        self._record_predicate = record_exception
        self._ignore_predicate = ignore_exception
        self._record_result = record_result
        self._events = checked
        self._emitter = Emitter(checked, f"circuit breaker {self._name!r}")
        self._clock: Callable[[], float] = clock if clock is not None else trio.current_time
        #: The time is trio's: with its SystemClock, offset + perf_counter().
        self._trio_clock = clock is None
        self._call_events = call_events
        #: The hot path of call() may be taken (docs/performance.md): a bus
        #: that hears only the state's events does not close it.
        self._fast = self._trio_clock and record_result is None and not call_events
        # The machine is built on first use: its clock may need a running trio.
        self._config = config
        self._random = random if random is not None else _random.random
        self._machine: BreakerMachine | None = None
        #: While :meth:`run` waits: set when the state moves (its deadline may have).
        self._runner_wakeup: trio.Event | None = None
        self._running = False
        #: The machine's stay (generation) when :meth:`_after` last looked.
        self._generation = 0

    # ------------------------------------------------------------ reading

    @property
    def name(self) -> str:
        """The breaker's name."""
        return self._name

    @property
    def config(self) -> BreakerConfig:
        """The checked configuration (thresholds, window, waits)."""
        return self._config

    @property
    def state(self) -> CircuitState:
        """The current state; OPEN shows until a call (or :meth:`run`) ends its wait."""
        machine = self._machine
        return self._config.initial_state if machine is None else machine.state

    def statistics(self) -> BreakerStatistics:
        """A snapshot of the state and the current window's counts."""
        machine = self._get_machine()
        now = self._clock()
        failure, slow = machine.rates(now)
        window = machine.phase.metrics.window
        return BreakerStatistics(
            name=self._name,
            state=machine.state,
            failure_rate=failure,
            slow_call_rate=slow,
            buffered_calls=window.total,
            failed_calls=window.failed,
            slow_calls=window.slow,
            slow_failed_calls=window.slow_failed,
            successful_calls=window.total - window.failed,
            not_permitted_calls=machine.phase.metrics.not_permitted,
            attempts=machine.attempts,
            retry_after=machine.retry_after(now),
            events_dropped=self._emitter.dropped,
        )

    def __repr__(self) -> str:
        state = "?" if self._machine is None else self._machine.state.value
        return f"<CircuitBreaker {self._name!r} {state}>"

    # ------------------------------------------------------------ the machine

    def _get_machine(self) -> BreakerMachine:
        machine = self._machine
        if machine is None:
            machine = self._machine = BreakerMachine(
                self._config, name=self._name, now=self._clock(), random=self._random
            )
            # Always: a telemetry handler may be attached at any time and
            # must see every transition; they are a few signals per trip,
            # and the success fast path does not look at this switch (rule 44).
            machine.observed = True
            machine.calls_observed = self._call_events
            self._generation = machine.phase.generation
        return machine

    def _after(self, machine: BreakerMachine, error: BaseException | None = None) -> None:
        """After a machine step: publish its signals, wake :meth:`run` if the state moved."""
        if machine.signals:
            signals = machine.signals
            machine.signals = []
            for signal in signals:
                if (
                    _telemetry.enabled
                    and signal.kind is SignalKind.STATE_TRANSITION
                    and _telemetry.attached(BREAKER_STATE_CHANGE)
                ):
                    assert signal.from_state is not None
                    _telemetry.execute(
                        BREAKER_STATE_CHANGE,
                        {},
                        {
                            "breaker": self._name,
                            "from_state": signal.from_state.value,
                            "to_state": signal.state.value,
                        },
                    )
                self._publish(signal, error)
        generation = machine.phase.generation
        if generation != self._generation:
            # A new stay: its deadline (OPEN's wait, HALF_OPEN's limit) may differ.
            self._generation = generation
            wakeup = self._runner_wakeup
            if wakeup is not None:
                self._runner_wakeup = None
                wakeup.set()

    def _tell(self, outcome: str, duration: float) -> None:
        """One call's telemetry; callers check ``_telemetry.enabled`` first (rule 44)."""
        if _telemetry.attached(BREAKER_CALL):
            _telemetry.execute(
                BREAKER_CALL,
                {"duration": duration},
                {
                    "breaker": self._name,
                    "outcome": outcome,
                    "slow": duration > self._config.slow_call_duration_threshold,
                },
            )

    def _publish(self, signal: Signal, error: BaseException | None) -> None:
        events = self._events
        if events is None:
            return
        kind = signal.kind
        payload: dict[str, object] = {"breaker": self._name, "state": signal.state.value}
        if signal.from_state is not None:
            payload["from_state"] = signal.from_state.value
        if signal.duration is not None:
            payload["duration"] = signal.duration
        if signal.rate is not None:
            payload["rate"] = signal.rate
        if error is not None and kind in (SignalKind.ERROR, SignalKind.IGNORED_ERROR):
            payload.update(describe_error(error))
        source = f"circuit_breaker/{self._name}"
        built = [Event.new(_EVENT_TYPES[kind], source=source, payload=payload)]
        if kind is SignalKind.STATE_TRANSITION:
            if signal.state is CircuitState.OPEN or signal.state is CircuitState.FORCED_OPEN:
                built.append(
                    Event.new(SystemEvent.CIRCUIT_BREAKER_OPEN, source=source, payload=payload)
                )
            elif signal.state is CircuitState.CLOSED:
                built.append(
                    Event.new(SystemEvent.CIRCUIT_BREAKER_CLOSED, source=source, payload=payload)
                )
        for event in built:
            # A breaker never waits for, nor fails because of, a bus (rule 34).
            self._emitter.publish(event)

    # ------------------------------------------------------------ calls

    def _acquire(self, machine: BreakerMachine, now: float) -> int | None:
        """Ask the machine for a permit; publish what that did (to HALF_OPEN, a rejection)."""
        permit = machine.acquire(now)
        if machine.signals or machine.phase.generation != self._generation:
            self._after(machine)
        return permit

    async def _reject(self, machine: BreakerMachine, now: float) -> CallNotPermitted:
        # A rejected call is still a checkpoint, so a retry loop cannot
        # starve the scheduler (docs/design.md T6, trio's checkpoint rule).
        # What rejected it is read first: other tasks may move the state
        # during the checkpoint (a trial call may close the breaker).
        error = CallNotPermitted(self._name, machine.state.value, machine.retry_after(now))
        if _telemetry.enabled:
            self._tell("not_permitted", 0.0)
        await trio.lowlevel.checkpoint()
        return error

    def _classify(self, permit: int, error: BaseException, duration: float, now: float) -> None:
        """Record what a call that raised did, in resilience4j's order (docs/resilience.md)."""
        machine = self._get_machine()
        if not isinstance(error, Exception):
            # Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit, and any
            # BaseExceptionGroup (a group of Cancelled leaves is a
            # cancellation): never an outcome; the permit goes back.
            machine.release(permit)
            return
        try:
            ignored = isinstance(error, self._ignore_types) or (
                self._ignore_predicate is not None and self._ignore_predicate(error)
            )
            failed = not ignored and self._records(error)
        except BaseException:
            # A predicate that raises: no outcome, and the permit goes back,
            # or a HALF_OPEN would wait for it for ever (resilience4j #2324).
            machine.release(permit)
            raise
        if ignored:
            machine.ignored(permit, duration)
        elif failed:
            machine.failed(duration, now)
        else:
            machine.succeeded(duration, now)
        self._after(machine, error)
        if _telemetry.enabled:
            self._tell("ignored" if ignored else "failure" if failed else "success", duration)

    def _records(self, error: Exception) -> bool:
        types = self._record_types
        predicate = self._record_predicate
        if types is None:
            # resilience4j: classes or-ed with the predicate; neither: all.
            return predicate(error) if predicate is not None else True
        return isinstance(error, types) or (predicate is not None and predicate(error))

    async def call(self, fn: Callable[..., Awaitable[T]], *args: object) -> T:
        """Run ``await fn(*args)`` through the breaker and return its result.

        Args:
            fn: an async callable.
            *args: its positional arguments (use ``functools.partial`` for
                keywords, as trio does).

        Returns:
            What ``fn`` returned.

        Raises:
            CallNotPermitted: the breaker rejected the call (after a
                checkpoint); ``fn`` was not called.
            Exception: whatever ``fn`` raised, unchanged (including the call
                that trips the breaker).
        """
        machine = self._machine or self._get_machine()
        if self._fast and machine.closed_fast:
            # The hot path (docs/performance.md): CLOSED, trio's
            # own clock, nobody listening, no result predicate. With trio's
            # SystemClock, current_time() is offset + perf_counter(), read
            # here without its two layers of calls; durations need no offset
            # (design rules 23 and 32).
            offset = system_clock_offset()
            if offset is not None:
                held = machine.phase.generation
                start = _perf_counter()
                try:
                    result = await fn(*args)
                except BaseException as error:
                    end = _perf_counter()
                    self._classify(held, error, end - start, offset + end)
                    raise
                end = _perf_counter()
                if machine.succeeded(end - start, offset + end):
                    self._after(machine)
                if _telemetry.enabled:
                    self._tell("success", end - start)
                return result
        read = self._clock
        start = read()
        permit = self._acquire(machine, start)
        if permit is None:
            raise await self._reject(machine, start)
        try:
            result = await fn(*args)
        except BaseException as error:
            now = read()
            self._classify(permit, error, now - start, now)
            raise
        now = read()
        predicate = self._record_result
        # resilience4j never tests a null result.
        try:
            failed = predicate is not None and result is not None and predicate(result)
        except BaseException:
            machine.release(permit)  # as in _classify: no outcome, no leak
            raise
        if failed:
            machine.failed(now - start, now)
        else:
            machine.succeeded(now - start, now)
        self._after(machine)
        if _telemetry.enabled:
            self._tell("failure" if failed else "success", now - start)
        return result

    async def __aenter__(self) -> CircuitBreaker:
        machine = self._machine or self._get_machine()
        # trio's SystemClock read directly, as in call(): start is then a
        # perf_counter() reading and the entry keeps the clock's offset.
        offset = system_clock_offset() if self._trio_clock else None
        if offset is not None:
            start = _perf_counter()
            now = offset + start
        else:
            start = now = self._clock()
        permit = self._acquire(machine, now)
        if permit is None:
            raise await self._reject(machine, now)
        _ENTRY.set((self, permit, start, _ENTRY.get(), offset))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        entry = _ENTRY.get()
        # Invariant: blocks nest per task, so the innermost entry is ours.
        assert entry is not None
        assert entry[0] is self
        _ENTRY.set(entry[3])
        permit, start, offset = entry[1], entry[2], entry[4]
        if offset is not None:
            end = _perf_counter()
            duration = end - start
            now = offset + end
        else:
            now = self._clock()
            duration = now - start
        if exc is None:
            machine = self._get_machine()
            if machine.succeeded(duration, now) or machine.signals:
                self._after(machine)
            if _telemetry.enabled:
                self._tell("success", duration)
        else:
            self._classify(permit, exc, duration, now)
        return False

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so that every call goes through :meth:`call`.

        Args:
            fn: an async function (see :class:`~trio_smith.ChildSpec` for
                what counts as one).

        Returns:
            An async function with the same signature.

        Raises:
            TypeError: ``fn`` is not an async function (a plain function would
                only fail when called, and count as a failure), naming it.
        """
        return through(self.call, fn, "circuit breaker")

    # ------------------------------------------------------------ manual control

    def _manual(self, step: Callable[[BreakerMachine, float], None]) -> None:
        machine = self._get_machine()
        step(machine, self._clock())
        self._after(machine)

    def transition_to(self, state: CircuitState) -> None:
        """Move to ``state`` by hand (resilience4j ``transitionTo<State>State``).

        A move to the current state starts a new stay (OPEN re-arms its wait
        and counts one more attempt) but publishes no transition event.

        Raises:
            IllegalStateTransition: CLOSED -> HALF_OPEN, METRICS_ONLY -> OPEN,
                METRICS_ONLY -> HALF_OPEN; nothing changes.
            TypeError: ``state`` is not a CircuitState.
        """
        if not isinstance(state, CircuitState):
            raise TypeError(f"state must be a CircuitState, got {state!r}")
        self._manual(lambda machine, now: machine.transition_to(state, now))

    def force_open(self) -> None:
        """FORCED_OPEN: reject every call until another manual transition.

        Raises:
            IllegalStateTransition: never (every state may be forced open); kept
                for symmetry.
        """
        self.transition_to(CircuitState.FORCED_OPEN)

    def disable(self) -> None:
        """DISABLED: admit every call and record nothing, until another manual transition."""
        self.transition_to(CircuitState.DISABLED)

    def metrics_only(self) -> None:
        """METRICS_ONLY: admit every call, record and report the thresholds, never open."""
        self.transition_to(CircuitState.METRICS_ONLY)

    def open_for(self, seconds: float) -> None:
        """OPEN for ``seconds`` instead of the usual wait (``transitionToOpenStateFor``).

        Raises:
            ValueError: ``seconds`` is not a finite number >= 0.
            IllegalStateTransition: from METRICS_ONLY.
        """
        if not is_finite_number(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self._manual(lambda machine, now: machine.open_for(seconds, now))

    def open_until(self, deadline: float) -> None:
        """OPEN until the clock reads ``deadline`` (``transitionToOpenStateUntil``).

        Raises:
            ValueError: ``deadline`` is not a finite number.
            IllegalStateTransition: from METRICS_ONLY.
        """
        if not is_finite_number(deadline):
            raise ValueError(f"deadline must be a finite number, got {deadline!r}")
        self._manual(lambda machine, now: machine.open_for(max(0.0, deadline - now), now))

    def reset(self) -> None:
        """A fresh CLOSED with empty metrics (resilience4j ``reset``)."""
        self._manual(lambda machine, now: machine.reset(now))

    # ------------------------------------------------------------ timers

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the breaker's timers until cancelled: start it in a nursery.

        While it runs, OPEN moves to HALF_OPEN when its wait ends
        (resilience4j ``automaticTransitionFromOpenToHalfOpenEnabled``) and
        HALF_OPEN's max wait is enforced at its deadline, even if no call
        comes. Without it, both happen lazily at the next call (and the
        max wait also when a trial call ends past it).

        Raises:
            RuntimeError: it is already running.
        """
        if self._running:
            raise RuntimeError(f"circuit breaker {self._name!r} is already running its timers")
        self._running = True
        try:
            task_status.started()
            while True:
                machine = self._get_machine()
                wakeup = self._runner_wakeup = trio.Event()
                deadline = machine.next_deadline()
                if deadline is None:
                    await wakeup.wait()
                    continue
                delay = deadline - self._clock()
                if delay > 0:
                    with trio.move_on_after(delay):
                        await wakeup.wait()
                    continue
                generation = machine.phase.generation
                machine.deadline_reached(self._clock())
                self._after(machine)
                if machine.phase.generation == generation:
                    # The clock has not reached it yet (a custom clock): try again soon.
                    await trio.lowlevel.checkpoint()
        finally:
            self._running = False
            self._runner_wakeup = None

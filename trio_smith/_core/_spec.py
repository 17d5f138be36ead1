"""What a supervisor is told: strategies, restart types, child specs, backoff.

Pure data (attrs), validated when built, so that a bad argument fails at the
constructor with a message naming the value, never deep inside a run.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final, final

import attrs

from ._check import async_problem, finite_at_least, is_finite_number, is_number, non_empty_str
from ._phi import PhiConfig

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "ChildStatus",
    "Heartbeat",
    "Restart",
    "Strategy",
]


class IdentityHash:
    """Mixin: hash enum members by identity, as they are compared.

    Python 3.11's ``Enum.__hash__`` is a Python function (it hashes the
    member's name); the transition tables look up (enum, enum) pairs on every
    step of a supervisor, and identity hashing halves that cost. Members are
    singletons compared by identity, so the two agree.
    """

    __slots__ = ()
    __hash__ = object.__hash__


@final
class Strategy(enum.Enum):
    """What a supervisor does when a child must be restarted (OTP rules R4.1-R4.6)."""

    #: Restart only the child that exited (OTP R4.1).
    ONE_FOR_ONE = "one_for_one"
    #: Stop every other child in reverse start order, then start them all in
    #: start order (OTP R4.2).
    ONE_FOR_ALL = "one_for_all"
    #: Stop the children started after it in reverse order, then start it and
    #: them in start order (OTP R4.3).
    REST_FOR_ONE = "rest_for_one"
    #: Any abnormal exit makes the supervisor give up at once, raising
    #: :exc:`ChildFailureEscalated`; normal exits follow ONE_FOR_ONE.
    ESCALATE = "escalate"


@final
class Restart(enum.Enum):
    """When a child that ended by itself is restarted (OTP R3.2).

    * ``PERMANENT`` (the default): the child should run as long as its
      supervisor does, so it is restarted whenever it ends, whether it
      raised or returned; each restart counts toward the restart intensity.
      A worker that returns when its channel closes is restarted too, and
      makes the supervisor give up after a few quick returns: make such a child
      ``TRANSIENT``.
    * ``TRANSIENT``: the child may finish. Returning is its normal end and
      it is not restarted; raising is a failure and it is restarted. A
      finished transient child keeps its place and can be restarted with
      ``restart_child``.
    * ``TEMPORARY``: the child runs once. It is never restarted, whatever
      the reason it ended, not even when a sibling's failure restarts a
      group; it is removed from its supervisor when it ends.
    """

    #: Always restarted, even after returning normally; each restart counts.
    PERMANENT = "permanent"
    #: Restarted only after an abnormal exit.
    TRANSIENT = "transient"
    #: Never restarted, not even as a bystander of a group restart; removed
    #: from the supervisor when it ends.
    TEMPORARY = "temporary"


@final
class AutoShutdown(enum.Enum):
    """When a supervisor stops by itself because significant children ended (OTP 1.10)."""

    #: Never; significant children are refused.
    NEVER = "never"
    #: When any significant child ends by itself without being restarted.
    ANY_SIGNIFICANT = "any_significant"
    #: When the last significant child that is alive (running or restarting)
    #: ends by itself without being restarted.
    ALL_SIGNIFICANT = "all_significant"


@final
class ChildStatus(IdentityHash, enum.Enum):
    """Where a child is in its life, as :meth:`Supervisor.which_children` reports it."""

    #: Its start was issued and has not completed.
    STARTING = "starting"
    #: Started and not yet ended.
    RUNNING = "running"
    #: Its supervisor is stopping it.
    STOPPING = "stopping"
    #: Not running; its spec is kept (OTP child ``undefined``).
    STOPPED = "stopped"
    #: Waiting for an automatic restart: a restart attempt failed and will be
    #: retried (OTP ``restarting``), or a backoff delay runs.
    RESTARTING = "restarting"


def _check_backoff(b: Backoff) -> None:
    initial: object = b.initial
    multiplier: object = b.multiplier
    maximum: object = b.maximum
    jitter: object = b.jitter
    finite_at_least("initial", initial, 0, strict=True)
    finite_at_least("multiplier", multiplier, 1)
    if not (is_finite_number(maximum) and maximum >= b.initial):  # type: ignore[operator]
        raise ValueError(
            f"maximum must be a finite number >= initial ({b.initial!r}), got {maximum!r}"
        )
    if not (is_finite_number(jitter) and 0 <= jitter <= 1):  # type: ignore[operator]
        raise ValueError(f"jitter must be a number between 0 and 1, got {jitter!r}")
    finite_at_least("reset_after", b.reset_after, 0, strict=True)


@final
@attrs.frozen(kw_only=True, init=False)
class Backoff:
    """Akka-style exponential backoff before automatic restarts.

    The delay before the n-th consecutive restart of a child (n = 0 first) is
    ``min(maximum, initial * multiplier**n) * (1 + U[0,1) * jitter)`` (Akka
    ``BackoffSupervisor``, rule K3: jitter applies after the cap). The count
    goes back to 0 once the child has stayed up ``reset_after`` seconds since
    its last start (rule K6). Restarts still count toward the supervisor's
    restart intensity, when they are attempted.

    Args:
        initial: delay before the first restart, seconds, > 0.
        multiplier: growth factor per consecutive restart, >= 1.
        maximum: cap on the delay before jitter, >= ``initial``.
        jitter: random extra fraction in [0, 1]; 0 makes delays exact.
        reset_after: uptime after which the count resets, > 0; None means
            ``initial`` (Akka's default ``resetBackoff = minBackoff``).

    Raises:
        ValueError: if an argument is out of range, naming it and its value.
    """

    initial: float
    multiplier: float
    maximum: float
    jitter: float
    reset_after: float

    def __init__(
        self,
        *,
        initial: float = 0.1,
        multiplier: float = 2.0,
        maximum: float = 30.0,
        jitter: float = 0.0,
        reset_after: float | None = None,
    ) -> None:
        self.__attrs_init__(
            initial=initial,
            multiplier=multiplier,
            maximum=maximum,
            jitter=jitter,
            reset_after=initial if reset_after is None else reset_after,
        )

    def __attrs_post_init__(self) -> None:
        _check_backoff(self)

    def delay(self, n: int, u: float) -> float:
        """Return the delay before the restart that follows ``n`` consecutive ones.

        Args:
            n: consecutive restarts so far (0 for the first restart).
            u: a uniform random number in [0, 1), used for the jitter.

        Returns:
            The delay in seconds. When ``initial * multiplier**n`` overflows it
            is ``maximum`` without jitter, as in Akka.
        """
        try:
            scaled = self.initial * self.multiplier**n
        except OverflowError:
            return self.maximum
        if not math.isfinite(scaled):
            return self.maximum
        return min(self.maximum, scaled) * (1.0 + u * self.jitter)


#: Heartbeat's error messages name its own arguments.
_HEARTBEAT_LABELS: Final[Mapping[str, str]] = {
    "acceptable_heartbeat_pause": "acceptable_pause",
    "first_heartbeat_estimate": "interval",
}


@final
@attrs.frozen(kw_only=True, init=False)
class Heartbeat:
    """Watch a child for hangs: it must call ``current_child().heartbeat()`` regularly.

    A phi-accrual detector (Akka's, see ``trio_smith.resilience``) judges
    each incarnation of the child from the intervals between its heartbeats;
    the incarnation's start counts as its first heartbeat. Once phi reaches
    ``threshold`` the supervisor cancels the child, which then counts as
    failed with :exc:`ChildHung`: the strategy, restart type and intensity
    apply as for a crash.

    The defaults scale Akka's cluster settings at a 1 s heartbeat (pause 3 s,
    min std 100 ms) to ``interval``: with steady heartbeats a child is
    judged hung about ``4.52 * interval`` after its last one.

    Args:
        interval: the expected time between heartbeats, seconds, >= 0.001
            (Akka's ``heartbeat-interval``, the first-heartbeat estimate).
        threshold: phi at which the child is hung; finite, > 0 (Akka 8.0).
        acceptable_pause: added to the mean interval, seconds, >= 0; None
            means ``3 * interval``.
        min_std_deviation: floor of the standard deviation of the intervals,
            seconds, >= 0.001; None means ``interval / 10`` (at least 1 ms).
        max_sample_size: intervals kept, an int >= 1 (Akka 1000).

    Attributes:
        interval, threshold, acceptable_pause, min_std_deviation,
        max_sample_size: the resolved values (defaults filled in).

    Raises:
        ValueError: an argument out of range, naming it and its value.
    """

    interval: float
    threshold: float
    acceptable_pause: float
    min_std_deviation: float
    max_sample_size: int

    def __init__(
        self,
        interval: float,
        *,
        threshold: float = 8.0,
        acceptable_pause: float | None = None,
        min_std_deviation: float | None = None,
        max_sample_size: int = 1000,
    ) -> None:
        # Checked first: the defaults are computed from it.
        finite_at_least("interval", interval, 0.001)
        self.__attrs_init__(
            interval=interval,
            threshold=threshold,
            acceptable_pause=3 * interval if acceptable_pause is None else acceptable_pause,
            min_std_deviation=(
                max(interval / 10, 0.001) if min_std_deviation is None else min_std_deviation
            ),
            max_sample_size=max_sample_size,
        )
        # Validate now, at construction, not when the child first starts.
        _ = self._config

    @functools.cached_property
    def _config(self) -> PhiConfig:
        """The validated parameters, as the detector's machine takes them."""
        return PhiConfig(
            threshold=self.threshold,
            max_sample_size=self.max_sample_size,
            min_std_deviation=self.min_std_deviation,
            acceptable_heartbeat_pause=self.acceptable_pause,
            first_heartbeat_estimate=self.interval,
            labels=_HEARTBEAT_LABELS,
        )


def _to_tuple(args: object) -> tuple[object, ...]:
    if isinstance(args, str | bytes) or not isinstance(args, Iterable):
        raise TypeError(f"args must be a tuple of positional arguments, got {args!r}")
    return tuple(args)


def _check_child_spec(spec: ChildSpec) -> None:
    child_id: object = spec.id
    fn: object = spec.fn
    restart: object = spec.restart
    shutdown: object = spec.shutdown
    significant: object = spec.significant
    backoff: object = spec.backoff
    heartbeat: object = spec.heartbeat
    non_empty_str("id", child_id)
    problem = async_problem(fn)
    if problem is not None:
        # Refused here, not at its first start: a sync function would "crash"
        # at every restart until the intensity gives up (rule 41).
        raise TypeError(f"fn must be an async function, got {problem}")
    if not isinstance(restart, Restart):
        raise TypeError(f"restart must be a Restart, got {restart!r}")
    if shutdown is not None and not (
        is_number(shutdown) and not math.isnan(shutdown) and shutdown >= 0  # type: ignore[arg-type,operator]
    ):
        raise ValueError(
            "shutdown must be None or a number of seconds >= 0 (math.inf: wait for ever), "
            f"got {shutdown!r}"
        )
    if not isinstance(significant, bool):
        raise TypeError(f"significant must be a bool, got {significant!r}")
    if backoff is not None and not isinstance(backoff, Backoff):
        raise TypeError(f"backoff must be a Backoff or None, got {backoff!r}")
    if heartbeat is not None and not isinstance(heartbeat, Heartbeat):
        raise TypeError(f"heartbeat must be a Heartbeat or None, got {heartbeat!r}")
    # OTP R1.6 (a): a permanent child is always restarted, so it never ends for
    # good and being significant would mean nothing.
    if significant and restart is Restart.PERMANENT:
        raise ValueError(f"child {child_id!r} cannot be significant with restart=Restart.PERMANENT")


@final
@attrs.frozen
class ChildSpec:
    """How to run one child of a supervisor.

    Args:
        id: unique within its supervisor; a non-empty string.
        fn: the async function the child runs, called as ``fn(*args)`` (and with
            ``task_status=`` if it accepts it: the child then counts as started
            when it calls ``task_status.started()``): an ``async def``, a bound
            method or a ``functools.partial`` of one, or an object whose
            ``__call__`` is ``async def``. A ``functools.partial`` also has
            its arguments checked by mypy (``args`` is not: rule 41).
        args: positional arguments for ``fn``.
        restart: when it is restarted after ending by itself (OTP R3.2).
        shutdown: how it is stopped: None (cancel at once, but ask a child
            that runs a supervisor and wait for it), 0 (cancel at once, OTP
            ``brutal_kill``), T > 0 (ask, wait up to T seconds, then cancel) or
            ``math.inf`` (ask and wait for ever).
        significant: whether its end can shut the supervisor down
            (auto-shutdown, OTP 1.10). Not allowed with ``Restart.PERMANENT``.
        backoff: delays before its automatic restarts; None uses the
            supervisor's.
        heartbeat: watch the child for hangs (see :class:`Heartbeat`); None
            (the default) does not watch it.

    Raises:
        ValueError: if an argument is out of range or a combination is
            refused (OTP R1.5, R1.6), naming the value.
        TypeError: if an argument has the wrong type, or ``fn`` is not an
            async function (a plain function, a lambda, a generator or async
            generator function, a coroutine object...), naming it.
    """

    id: str
    fn: Callable[..., Awaitable[object]]
    args: tuple[object, ...] = attrs.field(default=(), converter=_to_tuple)
    restart: Restart = attrs.field(default=Restart.PERMANENT, kw_only=True)
    shutdown: float | None = attrs.field(default=None, kw_only=True)
    significant: bool = attrs.field(default=False, kw_only=True)
    backoff: Backoff | None = attrs.field(default=None, kw_only=True)
    heartbeat: Heartbeat | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        _check_child_spec(self)


@final
@attrs.frozen(kw_only=True)
class ChildInfo:
    """A snapshot of one child, as :meth:`Supervisor.which_children` lists it.

    Attributes:
        id: the child's id.
        status: where it is in its life.
        restart: its restart type.
        significant: whether it is significant for auto-shutdown.
        restarts: how many times it was started again after its first start
            (automatic restarts, group restarts and ``restart_child``).
        phi: the hung-child detector's suspicion level of its current
            incarnation (see :class:`Heartbeat`); None if the child is not
            watched or has no live incarnation.
        last_heartbeat: ``trio.current_time()`` of the last heartbeat of its
            live, watched incarnation; None if it is not watched, not running
            or has not beaten yet. ``now - last_heartbeat`` is its silence.
        restart_at: for a child waiting for a delayed restart (``RESTARTING``
            under a :class:`Backoff`), when it will be started again, on
            trio's clock; None otherwise.
        os_pid: the pid of the program its live incarnation runs
            (``os_process``); None for a task or when not running.
        status_text: the program's last ``STATUS=`` message, or None.
    """

    id: str
    status: ChildStatus
    restart: Restart
    significant: bool
    restarts: int
    phi: float | None = None
    last_heartbeat: float | None = None
    restart_at: float | None = None
    os_pid: int | None = None
    status_text: str | None = None


@final
@attrs.frozen(kw_only=True)
class ChildCounts:
    """Counts of a supervisor's children (OTP ``count_children/1``).

    Attributes:
        specs: every child spec, running or not.
        active: children that are running (a restarting child is not active).
        supervisors: specs whose child runs a supervisor, running or not.
        workers: the other specs.
    """

    specs: int
    active: int
    supervisors: int
    workers: int

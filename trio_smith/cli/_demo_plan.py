"""The demo's decisions: its configuration, its timeline and its chaos draws.

Nothing here reads a clock or touches trio: time comes in as an argument
(seconds since the run began) and randomness from one ``random.Random``
seeded with ``--seed``. So a seed fixes every task the hub submits, in
order: its type, its topic, how long its work takes, whether it crashes
its worker, whether the flaky tool fails it. What the tree then does with
those tasks depends on timing (a real clock jitters), but the decisions
are the same from run to run, and under trio's ``MockClock`` the whole run
is.

On top of the random chaos, :class:`Timeline` scripts the four things the
demo must show in every run, at fixed fractions of its duration: a tool
outage (the breaker opens, then closes), a worker that hangs (the
phi-accrual detector catches it) and a burst of crashes that makes a
supervisor give up (an escalation).
"""

from __future__ import annotations

import math
import random
from typing import Final, final

import attrs

__all__ = [
    "DEFAULT_CHAOS",
    "DEFAULT_DB",
    "DEFAULT_DURATION",
    "DemoConfig",
    "Job",
    "Plan",
    "Step",
    "Timeline",
]

#: ``--duration``, ``--chaos`` and ``--db`` when not given.
DEFAULT_DURATION: Final = 20.0
DEFAULT_CHAOS: Final = 0.1
DEFAULT_DB: Final = "trio-smith-demo.db"

#: Task types the hub submits, with their weights. "summarize" has no route
#: of its own: it shows the router's default role.
TASK_MIX: Final = (("research", 35), ("code", 25), ("analyze", 30), ("summarize", 10))

#: Probability that the flaky search tool fails a call outside the outage.
#: Low enough that 4 failures among the breaker's last 8 calls (what opens
#: it) are rare: the breaker opens for the outage, not by accident.
TOOL_FLAKINESS: Final = 0.05

#: Seconds of simulated work per task (also the tool's latency), drawn
#: uniformly. Well under the hung-worker tolerance (about 0.45 s with
#: ``Heartbeat(0.1)``), and the workers beat while they work anyway.
WORK_RANGE: Final = (0.02, 0.12)

#: Crash-flagged code tasks in the scripted burst. The coders supervisor
#: tolerates 3 restarts within 1 s; 2 coders, and the queued tasks survive
#: a restart, so 5 crash tasks give the 4 restarts that make it give up.
BURST_SIZE: Final = 5

TOPICS: Final = (
    "supervision trees",
    "phi accrual",
    "circuit breakers",
    "backpressure",
    "structured concurrency",
    "event sourcing",
    "restart intensity",
    "causal tracing",
)


def _positive_finite(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _rate(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not (isinstance(value, int | float) and 0 <= value <= 1):
        raise ValueError(f"{attribute.name} must be a number from 0 to 1, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name} must be an integer >= 1, got {value!r}")


@final
@attrs.frozen(kw_only=True, slots=True)
class DemoConfig:
    """What one run of the demo does.

    Args:
        seed: seeds every random decision (``--seed``).
        duration: seconds the run lasts (``--duration``), finite and > 0.
        chaos: the probability that a task crashes its worker (``--chaos``),
            from 0 to 1.
        db: the SQLite event store file (``--db``).
        rate: tasks per second the hub submits, on average (Poisson).
        concurrency: the most hub tasks waiting for their reply at once; at
            the limit the hub waits (bounded concurrency, not a queue).
        observe: serve the tree with an ``Observer`` at ``(host, port,
            token)`` (``--observe``), or not (None).
        programs: run the indexer, a real program (``os_process``). It lives
            in real time: runs on a ``MockClock`` (in-process tests) leave it
            out.

    Raises:
        ValueError: a number out of range, naming it.
    """

    seed: int
    duration: float = attrs.field(default=DEFAULT_DURATION, validator=_positive_finite)
    chaos: float = attrs.field(default=DEFAULT_CHAOS, validator=_rate)
    db: str = DEFAULT_DB
    rate: float = attrs.field(default=20.0, validator=_positive_finite)
    concurrency: int = attrs.field(default=8, validator=_at_least_one)
    observe: tuple[str, int, str | None] | None = None
    programs: bool = True


@final
@attrs.frozen(kw_only=True, slots=True)
class Step:
    """One scripted moment of the timeline.

    Attributes:
        at: seconds since the run began.
        kind: ``"outage_started"``, ``"outage_ended"``, ``"hang"`` or ``"burst"``.
    """

    at: float
    kind: str


@final
@attrs.frozen(kw_only=True, slots=True)
class Timeline:
    """The scripted chaos, in seconds since the run began.

    Attributes:
        duration: the run's length.
        outage_start, outage_end: the search tool fails every call in
            ``[outage_start, outage_end)``.
        hang_at: an analyst is given a task on which it stops heartbeating.
        burst_at: a burst of crash tasks hits the coders.
        breaker_wait: the breaker's wait in OPEN before a trial call.
    """

    duration: float
    outage_start: float
    outage_end: float
    hang_at: float
    burst_at: float
    breaker_wait: float

    @classmethod
    def for_duration(cls, duration: float) -> Timeline:
        """The timeline of a run of ``duration`` seconds.

        Fractions of the duration, so even a 3 s run shows all four: the
        outage from 25 % to 45 % (the breaker opens within a few calls, and
        its wait, 6 % of the run clamped to 0.2-1.5 s, lets it try again
        during the outage and close after it), the hang at 50 %, the burst
        at 70 % (its escalation and the subtree's restart finish well
        before the end).
        """
        return cls(
            duration=duration,
            outage_start=0.25 * duration,
            outage_end=0.45 * duration,
            hang_at=0.50 * duration,
            burst_at=0.70 * duration,
            breaker_wait=min(1.5, max(0.2, 0.06 * duration)),
        )

    def in_outage(self, elapsed: float) -> bool:
        """Whether the search tool is down ``elapsed`` seconds into the run."""
        return self.outage_start <= elapsed < self.outage_end

    def steps(self) -> list[Step]:
        """The scripted moments, in time order."""
        return [
            Step(at=self.outage_start, kind="outage_started"),
            Step(at=self.outage_end, kind="outage_ended"),
            Step(at=self.hang_at, kind="hang"),
            Step(at=self.burst_at, kind="burst"),
        ]


@final
@attrs.frozen(kw_only=True, slots=True)
class Job:
    """What a task asks of its worker (a :class:`~trio_smith.routing.Task`'s payload).

    Attributes:
        label: names the task in messages: ``"41"``, ``"41.r"`` (the
            research a code task delegates), ``"hang"``, ``"burst-2"``.
        type: the task type, which the router maps to a role.
        topic: what it is about.
        work: seconds of simulated work (for research: the tool's latency).
        crash: the worker raises (a chaos crash) instead of answering.
        tool_fails: the search tool fails this call even outside the outage.
        delay: seconds the hub waits before submitting it.
        sub: the research a code task delegates; None for other types.
        hang: the worker stops heartbeating and never answers.
    """

    label: str
    type: str
    topic: str
    work: float
    crash: bool = False
    tool_fails: bool = False
    delay: float = 0.0
    sub: Job | None = None
    hang: bool = False


@final
class Plan:
    """The seeded stream of jobs the hub submits, plus the scripted ones.

    Every job draws the same numbers in the same order whatever its type,
    so job ``n`` of a seed is always the same job.

    Args:
        seed: the seed of the ``random.Random``.
        chaos: probability that a job (and, separately, its delegated
            research) crashes its worker.
        rate: jobs per second, on average: delays are exponential.
    """

    __slots__ = ("_count", "_rng", "chaos", "rate")

    def __init__(self, *, seed: int, chaos: float, rate: float) -> None:
        self._rng = random.Random(seed)
        self._count = 0
        self.chaos = chaos
        self.rate = rate

    def next_job(self) -> Job:
        """The next job of the stream."""
        rng = self._rng
        self._count += 1
        label = str(self._count)
        delay = rng.expovariate(self.rate)
        kind = rng.choices([t for t, _ in TASK_MIX], weights=[w for _, w in TASK_MIX])[0]
        topic = rng.choice(TOPICS)
        crash = rng.random() < self.chaos
        work = rng.uniform(*WORK_RANGE)
        tool_fails = rng.random() < TOOL_FLAKINESS
        sub = Job(
            label=f"{label}.r",
            type="research",
            topic=topic,
            crash=rng.random() < self.chaos,
            work=rng.uniform(*WORK_RANGE),
            tool_fails=rng.random() < TOOL_FLAKINESS,
        )
        return Job(
            label=label,
            type=kind,
            topic=topic,
            work=work,
            crash=crash,
            tool_fails=tool_fails,
            delay=delay,
            sub=sub if kind == "code" else None,
        )

    @staticmethod
    def hang_job() -> Job:
        """The scripted task on which an analyst hangs."""
        return Job(label="hang", type="analyze", topic="the halting problem", work=0.0, hang=True)

    @staticmethod
    def burst_jobs() -> list[Job]:
        """The scripted burst: code tasks that crash their coder at once."""
        return [
            Job(label=f"burst-{n}", type="code", topic="a poison pill", work=0.0, crash=True)
            for n in range(1, BURST_SIZE + 1)
        ]

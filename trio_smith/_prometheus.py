"""The Prometheus collector: snapshots taken on the trio thread, read by the scrape thread.

docs/design.md rule 45. prometheus_client scrapes on its own thread (its
HTTP server's, or whoever calls ``generate_latest``), while supervisors,
breakers, buses and stores live on the trio thread and read trio's clock in
their ``statistics()``. So the collector never touches them from the scrape:
a trio task (:meth:`TrioSmithCollector.run`) reads them every ``interval``
into an immutable :class:`_Snapshot` of plain tuples, and ``collect()``
turns the last one into metric families. A stuck trio loop still answers
scrapes, with a growing ``trio_smith_snapshot_age_seconds``.

Counters no ``statistics()`` keeps (child failures, supervisors given up,
breaker calls by outcome) are counted from ``trio_smith.telemetry`` events
while the collector runs, on the trio thread too. Retries, time limiters,
bulkheads and rate limiters keep their call counts in ``statistics()``: those
are read like any other figure.
"""

from __future__ import annotations

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.samples import Sample
except ImportError as exc:  # the prometheus extra is optional
    raise ImportError(
        "trio_smith.prometheus needs prometheus_client: install trio-smith[prometheus]"
    ) from exc

import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Final, TypeVar, final

import attrs
import trio

from . import _telemetry
from ._core._breaker import CircuitState
from ._core._check import finite_at_least
from ._core._spec import ChildStatus
from ._supervision import DynamicSupervisor, Supervisor, SupervisorState, children_and_nested
from .events import EventBus, EventStore
from .resilience import (
    Bulkhead,
    BulkheadStatistics,
    CircuitBreaker,
    RateLimiter,
    RateLimiterStatistics,
    Retry,
    RetryStatistics,
    TimeLimiter,
    TimeLimiterStatistics,
)

__all__ = ["TrioSmithCollector"]

#: (label values, value): one sample of a family.
_Sample = tuple[tuple[str, ...], float]

_STATES: Final = tuple(s.value for s in SupervisorState)
_STATUSES: Final = tuple(s.value for s in ChildStatus)
_BREAKER_STATES: Final = tuple(s.value.lower() for s in CircuitState)
_CALL_KINDS: Final = {"success": "successful", "failure": "failed", "ignored": "ignored"}

#: The telemetry events counted while the collector runs.
_TELEMETRY: Final = (
    ("trio_smith", "child", "failed"),
    ("trio_smith", "supervisor", "gave_up"),
    ("trio_smith", "breaker", "call"),
)

#: name: (type, help, label names). Every metric, in exposition order.
_FAMILIES: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "trio_smith_supervisor_state": (
        "gauge",
        "1 for the supervisor's state, 0 for the others.",
        ("supervisor", "state"),
    ),
    "trio_smith_supervisor_children": (
        "gauge",
        "Children of the supervisor by status.",
        ("supervisor", "status"),
    ),
    "trio_smith_supervisor_restarts": (
        "counter",
        "Children restarted since the supervisor was entered.",
        ("supervisor",),
    ),
    "trio_smith_supervisor_recent_restarts": (
        "gauge",
        "Restarts in the restart-intensity window now.",
        ("supervisor",),
    ),
    "trio_smith_supervisor_max_restarts": (
        "gauge",
        "The restart-intensity limit: one more restart in the window and it gives up.",
        ("supervisor",),
    ),
    "trio_smith_supervisor_child_failures": (
        "counter",
        "Abnormal exits of the supervisor's children while the collector ran.",
        ("supervisor",),
    ),
    "trio_smith_supervisor_gave_up": (
        "counter",
        "Times the supervisor gave up while the collector ran.",
        ("supervisor",),
    ),
    "trio_smith_supervisor_events_dropped": (
        "counter",
        "Supervision events a full or closed bus refused.",
        ("supervisor",),
    ),
    "trio_smith_child_restarts": (
        "counter",
        "Restarts of a Supervisor's child (children that never restarted are absent).",
        ("supervisor", "child"),
    ),
    "trio_smith_child_failures": (
        "counter",
        "Abnormal exits of a Supervisor's child while the collector ran (absent: none).",
        ("supervisor", "child"),
    ),
    "trio_smith_circuitbreaker_state": (
        "gauge",
        "1 for the breaker's state, 0 for the others.",
        ("name", "state"),
    ),
    "trio_smith_circuitbreaker_calls": (
        "counter",
        "Calls through the breaker by outcome while the collector ran.",
        ("name", "kind"),
    ),
    "trio_smith_circuitbreaker_not_permitted_calls": (
        "counter",
        "Calls the breaker rejected while the collector ran.",
        ("name",),
    ),
    "trio_smith_circuitbreaker_failure_rate": (
        "gauge",
        "Failed calls in the window, 0-1; absent below the minimum number of calls.",
        ("name",),
    ),
    "trio_smith_circuitbreaker_slow_call_rate": (
        "gauge",
        "Slow calls in the window, 0-1; absent below the minimum number of calls.",
        ("name",),
    ),
    "trio_smith_circuitbreaker_buffered_calls": (
        "gauge",
        "Calls in the current window by outcome.",
        ("name", "kind"),
    ),
    "trio_smith_circuitbreaker_slow_calls": (
        "gauge",
        "Slow calls in the current window by outcome.",
        ("name", "kind"),
    ),
    "trio_smith_retry_calls": (
        "counter",
        "Calls through the retry by outcome.",
        ("name", "kind"),
    ),
    "trio_smith_timelimiter_calls": (
        "counter",
        "Calls through the time limiter by outcome.",
        ("name", "kind"),
    ),
    "trio_smith_bulkhead_available_concurrent_calls": (
        "gauge",
        "Free permits of the bulkhead now.",
        ("name",),
    ),
    "trio_smith_bulkhead_max_allowed_concurrent_calls": (
        "gauge",
        "The bulkhead's limit: calls that may hold a permit at once.",
        ("name",),
    ),
    "trio_smith_bulkhead_waiting_calls": (
        "gauge",
        "Calls waiting in line for a permit of the bulkhead now.",
        ("name",),
    ),
    "trio_smith_bulkhead_calls": (
        "counter",
        "Calls the bulkhead admitted or refused.",
        ("name", "kind"),
    ),
    "trio_smith_ratelimiter_available_permissions": (
        "gauge",
        "Permits left in the current cycle; negative while later cycles' are reserved.",
        ("name",),
    ),
    "trio_smith_ratelimiter_waiting_threads": (
        "gauge",
        "Calls (trio tasks) sleeping until their reserved permit's cycle.",
        ("name",),
    ),
    "trio_smith_ratelimiter_calls": (
        "counter",
        "Acquisitions the rate limiter granted or refused.",
        ("name", "kind"),
    ),
    "trio_smith_bus_events_published": (
        "counter",
        "Events the bus fanned out, by event category.",
        ("bus", "category"),
    ),
    "trio_smith_bus_events_delivered": (
        "counter",
        "Events handed to the bus's subscribers.",
        ("bus",),
    ),
    "trio_smith_bus_events_dropped": (
        "counter",
        "Events the subscriptions' overflow policies dropped.",
        ("bus",),
    ),
    "trio_smith_bus_handler_errors": (
        "counter",
        "Exceptions the bus's handlers raised.",
        ("bus",),
    ),
    "trio_smith_bus_subscriptions": ("gauge", "Open subscriptions.", ("bus",)),
    "trio_smith_bus_events_buffered": (
        "gauge",
        "Events waiting in the subscriptions' buffers.",
        ("bus",),
    ),
    "trio_smith_store_events_appended": (
        "counter",
        "Events this store object committed.",
        ("store",),
    ),
    "trio_smith_store_transactions": (
        "counter",
        "Transactions that committed them.",
        ("store",),
    ),
    "trio_smith_store_events_followed": (
        "counter",
        "Events other writers committed that the store announced.",
        ("store",),
    ),
    "trio_smith_store_events_dropped": (
        "counter",
        "Events given to append_nowait that could not be committed.",
        ("store",),
    ),
    "trio_smith_store_events_pruned": (
        "counter",
        "Events this store object removed with prune.",
        ("store",),
    ),
    "trio_smith_store_head_position": (
        "gauge",
        "The last position the store announced.",
        ("store",),
    ),
    "trio_smith_store_queued_appends": (
        "gauge",
        "Appends queued or committing.",
        ("store",),
    ),
    "trio_smith_store_follow_error": (
        "gauge",
        "1 while the store cannot read other writers' events.",
        ("store",),
    ),
    "trio_smith_snapshot_duration_seconds": (
        "gauge",
        "How long the last snapshot held the trio thread.",
        (),
    ),
}


@final
@attrs.frozen(kw_only=True)
class _Snapshot:
    """What one refresh read: samples per family name, taken at ``taken`` (monotonic)."""

    taken: float
    samples: Mapping[str, list[_Sample]]


class _Tally:
    """Counts from telemetry events, keyed by bounded labels; touched on the trio thread."""

    def __init__(self) -> None:
        self.child_failures: dict[tuple[str, str], int] = {}
        self.supervisor_failures: dict[str, int] = {}
        self.gave_up: dict[str, int] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.not_permitted: dict[str, int] = {}

    def on_event(
        self,
        name: tuple[str, ...],
        measurements: Mapping[str, float],
        metadata: Mapping[str, object],
    ) -> None:
        kind = name[1:]
        if kind == ("child", "failed"):
            path, child = str(metadata.get("supervisor")), str(metadata.get("child_id"))
            key = (path, child)
            self.child_failures[key] = self.child_failures.get(key, 0) + 1
            self.supervisor_failures[path] = self.supervisor_failures.get(path, 0) + 1
        elif kind == ("supervisor", "gave_up"):
            path = str(metadata.get("supervisor"))
            self.gave_up[path] = self.gave_up.get(path, 0) + 1
        elif kind == ("breaker", "call"):
            breaker, outcome = str(metadata.get("breaker")), metadata.get("outcome")
            if outcome == "not_permitted":
                self.not_permitted[breaker] = self.not_permitted.get(breaker, 0) + 1
            elif isinstance(outcome, str) and outcome in _CALL_KINDS:
                key2 = (breaker, _CALL_KINDS[outcome])
                self.calls[key2] = self.calls.get(key2, 0) + 1


class _BusTotals:
    """A bus's delivered/dropped/handler-error totals that never go down.

    ``BusStatistics`` sums over the *open* subscriptions, so a closing
    subscription would make the sums fall (a counter reset to Prometheus).
    The last figures seen of each subscription (by name and rank among
    equal names) are kept; when one disappears they move to ``retired``.
    """

    def __init__(self) -> None:
        self.retired = [0, 0, 0]
        self.last: dict[tuple[str, int], tuple[int, int, int]] = {}

    def update(self, bus: EventBus) -> tuple[int, int, int, int, int]:
        stats = bus.statistics()
        now: dict[tuple[str, int], tuple[int, int, int]] = {}
        buffered = 0
        for sub in stats.subscriptions:
            rank = 0
            while (sub.name, rank) in now:
                rank += 1
            now[(sub.name, rank)] = (sub.delivered, sub.dropped, sub.handler_errors)
            buffered += sub.buffered
        for key, figures in self.last.items():
            if key not in now:
                for i in range(3):
                    self.retired[i] += figures[i]
        self.last = now
        totals = [self.retired[i] + sum(f[i] for f in now.values()) for i in range(3)]
        return totals[0], totals[1], totals[2], len(now), buffered


@final
class TrioSmithCollector:
    """A Prometheus collector of supervisors, resilience components, buses and stores.

    Register it with a ``prometheus_client`` registry and run it in the trio
    program (:meth:`running`, or :meth:`run` as a child): every ``interval``
    it takes a snapshot of the objects on the trio thread, and each scrape
    exposes the last snapshot, from whatever thread scrapes. Supervisors
    nested in the given ones are found through their trees at each snapshot.

    Args:
        supervisors: the root supervisors (``Supervisor`` or ``DynamicSupervisor``).
        breakers: circuit breakers.
        retries: retries.
        time_limiters: time limiters.
        bulkheads: bulkheads.
        rate_limiters: rate limiters.
        buses: event buses.
        stores: event stores.

    Raises:
        TypeError: an object of the wrong kind in one of the arguments.
    """

    def __init__(
        self,
        *,
        supervisors: Iterable[Supervisor | DynamicSupervisor] = (),
        breakers: Iterable[CircuitBreaker] = (),
        retries: Iterable[Retry] = (),
        time_limiters: Iterable[TimeLimiter] = (),
        bulkheads: Iterable[Bulkhead] = (),
        rate_limiters: Iterable[RateLimiter] = (),
        buses: Iterable[EventBus] = (),
        stores: Iterable[EventStore] = (),
    ) -> None:
        self._supervisors: dict[Supervisor | DynamicSupervisor, None] = {}
        self._breakers: dict[CircuitBreaker, None] = {}
        self._retries: dict[Retry, None] = {}
        self._time_limiters: dict[TimeLimiter, None] = {}
        self._bulkheads: dict[Bulkhead, None] = {}
        self._rate_limiters: dict[RateLimiter, None] = {}
        self._buses: dict[EventBus, _BusTotals] = {}
        self._stores: dict[EventStore, None] = {}
        self._tally = _Tally()
        self._snapshot: _Snapshot | None = None
        self._runs = 0
        self.add(
            supervisors=supervisors,
            breakers=breakers,
            retries=retries,
            time_limiters=time_limiters,
            bulkheads=bulkheads,
            rate_limiters=rate_limiters,
            buses=buses,
            stores=stores,
        )

    # ------------------------------------------------------------ registration

    def add(
        self,
        *,
        supervisors: Iterable[Supervisor | DynamicSupervisor] = (),
        breakers: Iterable[CircuitBreaker] = (),
        retries: Iterable[Retry] = (),
        time_limiters: Iterable[TimeLimiter] = (),
        bulkheads: Iterable[Bulkhead] = (),
        rate_limiters: Iterable[RateLimiter] = (),
        buses: Iterable[EventBus] = (),
        stores: Iterable[EventStore] = (),
    ) -> None:
        """Watch more objects from the next snapshot on; adding one twice is harmless.

        Raises:
            TypeError: an object of the wrong kind; nothing is added then.
        """
        sups = _checked("supervisors", supervisors, (Supervisor, DynamicSupervisor))
        breakers = _checked("breakers", breakers, (CircuitBreaker,))
        retries = _checked("retries", retries, (Retry,))
        time_limiters = _checked("time_limiters", time_limiters, (TimeLimiter,))
        bulkheads = _checked("bulkheads", bulkheads, (Bulkhead,))
        rate_limiters = _checked("rate_limiters", rate_limiters, (RateLimiter,))
        buses = _checked("buses", buses, (EventBus,))
        stores = _checked("stores", stores, (EventStore,))
        self._supervisors.update(dict.fromkeys(sups))
        self._breakers.update(dict.fromkeys(breakers))
        self._retries.update(dict.fromkeys(retries))
        self._time_limiters.update(dict.fromkeys(time_limiters))
        self._bulkheads.update(dict.fromkeys(bulkheads))
        self._rate_limiters.update(dict.fromkeys(rate_limiters))
        for bus in buses:
            self._buses.setdefault(bus, _BusTotals())
        self._stores.update(dict.fromkeys(stores))

    def remove(
        self,
        *,
        supervisors: Iterable[Supervisor | DynamicSupervisor] = (),
        breakers: Iterable[CircuitBreaker] = (),
        retries: Iterable[Retry] = (),
        time_limiters: Iterable[TimeLimiter] = (),
        bulkheads: Iterable[Bulkhead] = (),
        rate_limiters: Iterable[RateLimiter] = (),
        buses: Iterable[EventBus] = (),
        stores: Iterable[EventStore] = (),
    ) -> None:
        """Stop watching objects from the next snapshot on; one not watched is ignored."""
        for sup in supervisors:
            self._supervisors.pop(sup, None)
        for breaker in breakers:
            self._breakers.pop(breaker, None)
        for retry in retries:
            self._retries.pop(retry, None)
        for time_limiter in time_limiters:
            self._time_limiters.pop(time_limiter, None)
        for bulkhead in bulkheads:
            self._bulkheads.pop(bulkhead, None)
        for rate_limiter in rate_limiters:
            self._rate_limiters.pop(rate_limiter, None)
        for bus in buses:
            self._buses.pop(bus, None)
        for store in stores:
            self._stores.pop(store, None)

    # ------------------------------------------------------------ the trio side

    def refresh(self) -> None:
        """Take a snapshot now. Call it on the trio thread (``run`` does, every interval).

        Raises:
            RuntimeError: not called from the trio thread.
        """
        start = time.perf_counter()
        trio.lowlevel.current_trio_token()  # RuntimeError outside trio, before any read
        samples: dict[str, list[_Sample]] = {name: [] for name in _FAMILIES}
        self._read_supervisors(samples)
        self._read_breakers(samples)
        self._read_limiters(samples)
        self._read_buses(samples)
        self._read_stores(samples)
        taken = time.monotonic()
        samples["trio_smith_snapshot_duration_seconds"].append(((), time.perf_counter() - start))
        self._snapshot = _Snapshot(taken=taken, samples=samples)  # one atomic store

    async def run(
        self,
        interval: float = 5.0,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Count telemetry events and refresh the snapshot every ``interval`` seconds, for ever.

        A child function: ``ChildSpec("metrics", collector.run)``. The first
        snapshot is taken before it reports started.

        Args:
            interval: seconds between snapshots (trio's clock).

        Raises:
            ValueError: ``interval`` is not a finite number > 0.
        """
        finite_at_least("interval", interval, 0, strict=True)
        self._runs += 1
        handler_id = f"trio_smith.prometheus-{id(self)}-{self._runs}"
        _telemetry.attach(handler_id, _TELEMETRY, self._tally.on_event)
        try:
            self.refresh()
            task_status.started()
            while True:
                await trio.sleep(interval)
                self.refresh()
        finally:
            _telemetry.detach(handler_id)

    @contextlib.asynccontextmanager
    async def running(self, interval: float = 5.0) -> AsyncIterator[None]:
        """Run :meth:`run` in a task of its own for the block's duration.

        Args:
            interval: seconds between snapshots (trio's clock).

        Raises:
            ValueError: ``interval`` is not a finite number > 0.
        """
        finite_at_least("interval", interval, 0, strict=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run, interval)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    def _read_supervisors(self, out: dict[str, list[_Sample]]) -> None:
        seen: set[str] = set()
        stack = list(self._supervisors)
        tally = self._tally
        failures, child_failures = tally.supervisor_failures, tally.child_failures
        kept: dict[tuple[str, str], int] = {}
        restarts_out = out["trio_smith_child_restarts"]
        failures_out = out["trio_smith_child_failures"]
        while stack:
            sup = stack.pop()
            stats = sup.statistics()
            path = stats.path
            if path in seen:  # one series per path: the first supervisor found wins
                continue
            seen.add(path)
            state = stats.state.value
            for s in _STATES:
                out["trio_smith_supervisor_state"].append(((path, s), 1.0 if s == state else 0.0))
            by_status = dict.fromkeys(_STATUSES, 0)
            pool = isinstance(sup, DynamicSupervisor)
            for info, nested in children_and_nested(sup):
                by_status[info.status.value] += 1
                stack.extend(nested)
                if pool:  # a pool's child ids are unbounded: no series of their own
                    continue
                labels = (path, info.id)
                if info.restarts:
                    restarts_out.append((labels, float(info.restarts)))
                failed = child_failures.get(labels)
                if failed:
                    kept[labels] = failed
                    failures_out.append((labels, float(failed)))
            for status, n in by_status.items():
                out["trio_smith_supervisor_children"].append(((path, status), float(n)))
            one = (path,)
            out["trio_smith_supervisor_restarts"].append((one, float(stats.restarts)))
            out["trio_smith_supervisor_recent_restarts"].append(
                (one, float(len(stats.recent_restarts)))
            )
            out["trio_smith_supervisor_max_restarts"].append((one, float(stats.max_restarts)))
            out["trio_smith_supervisor_child_failures"].append((one, float(failures.get(path, 0))))
            out["trio_smith_supervisor_gave_up"].append((one, float(tally.gave_up.get(path, 0))))
            out["trio_smith_supervisor_events_dropped"].append((one, float(stats.events_dropped)))
        # Forget the failures of children that are gone (a pool's, a deleted
        # child's): the tally stays as big as the tree.
        tally.child_failures = kept

    def _read_breakers(self, out: dict[str, list[_Sample]]) -> None:
        seen: set[str] = set()
        tally = self._tally
        for breaker in self._breakers:
            stats = breaker.statistics()
            name = stats.name
            if name in seen:
                continue
            seen.add(name)
            state = stats.state.value.lower()
            for s in _BREAKER_STATES:
                out["trio_smith_circuitbreaker_state"].append(
                    ((name, s), 1.0 if s == state else 0.0)
                )
            for kind in _CALL_KINDS.values():
                out["trio_smith_circuitbreaker_calls"].append(
                    ((name, kind), float(tally.calls.get((name, kind), 0)))
                )
            out["trio_smith_circuitbreaker_not_permitted_calls"].append(
                ((name,), float(tally.not_permitted.get(name, 0)))
            )
            # resilience4j's -1 ("not enough calls") is left out, not exported:
            # a -1 or a NaN would spoil every average and alert over breakers.
            if stats.failure_rate >= 0:
                out["trio_smith_circuitbreaker_failure_rate"].append(
                    ((name,), stats.failure_rate / 100)
                )
            if stats.slow_call_rate >= 0:
                out["trio_smith_circuitbreaker_slow_call_rate"].append(
                    ((name,), stats.slow_call_rate / 100)
                )
            buffered = out["trio_smith_circuitbreaker_buffered_calls"]
            buffered.append(((name, "successful"), float(stats.successful_calls)))
            buffered.append(((name, "failed"), float(stats.failed_calls)))
            slow = out["trio_smith_circuitbreaker_slow_calls"]
            slow.append(((name, "successful"), float(stats.slow_calls - stats.slow_failed_calls)))
            slow.append(((name, "failed"), float(stats.slow_failed_calls)))

    def _read_limiters(self, out: dict[str, list[_Sample]]) -> None:
        """Retries, time limiters, bulkheads, rate limiters: their statistics() only.

        They keep their call counts themselves (from their creation), so,
        unlike the breaker's, these counters need no telemetry handler.
        The kinds are resilience4j-micrometer's.
        """
        for r in _first_by_name(retry.statistics() for retry in self._retries):
            _kinds(
                out["trio_smith_retry_calls"],
                r.name,
                successful_without_retry=r.successful_calls_without_retry,
                successful_with_retry=r.successful_calls_with_retry,
                failed_without_retry=r.failed_calls_without_retry,
                failed_with_retry=r.failed_calls_with_retry,
            )
        for t in _first_by_name(limiter.statistics() for limiter in self._time_limiters):
            _kinds(
                out["trio_smith_timelimiter_calls"],
                t.name,
                successful=t.successful_calls,
                failed=t.failed_calls,
                timeout=t.timed_out_calls,
            )
        for b in _first_by_name(bulkhead.statistics() for bulkhead in self._bulkheads):
            one = (b.name,)
            out["trio_smith_bulkhead_available_concurrent_calls"].append(
                (one, float(b.available_concurrent_calls))
            )
            out["trio_smith_bulkhead_max_allowed_concurrent_calls"].append(
                (one, float(b.max_concurrent_calls))
            )
            out["trio_smith_bulkhead_waiting_calls"].append((one, float(b.waiting_calls)))
            _kinds(
                out["trio_smith_bulkhead_calls"],
                b.name,
                permitted=b.permitted_calls,
                rejected=b.rejected_calls,
            )
        for q in _first_by_name(limiter.statistics() for limiter in self._rate_limiters):
            one = (q.name,)
            out["trio_smith_ratelimiter_available_permissions"].append(
                (one, float(q.available_permissions))
            )
            out["trio_smith_ratelimiter_waiting_threads"].append((one, float(q.waiting_calls)))
            _kinds(
                out["trio_smith_ratelimiter_calls"],
                q.name,
                permitted=q.permitted_calls,
                rejected=q.rejected_calls,
            )

    def _read_buses(self, out: dict[str, list[_Sample]]) -> None:
        seen: set[str] = set()
        for bus, totals in self._buses.items():
            name = bus.name
            delivered, dropped, errors, subscriptions, buffered = totals.update(bus)
            if name in seen:
                continue
            seen.add(name)
            by_category: dict[str, int] = {}
            for wire, n in bus.statistics().published_by_type.items():
                category = wire.partition(".")[0]
                by_category[category] = by_category.get(category, 0) + n
            for category, n in sorted(by_category.items()):
                out["trio_smith_bus_events_published"].append(((name, category), float(n)))
            one = (name,)
            out["trio_smith_bus_events_delivered"].append((one, float(delivered)))
            out["trio_smith_bus_events_dropped"].append((one, float(dropped)))
            out["trio_smith_bus_handler_errors"].append((one, float(errors)))
            out["trio_smith_bus_subscriptions"].append((one, float(subscriptions)))
            out["trio_smith_bus_events_buffered"].append((one, float(buffered)))

    def _read_stores(self, out: dict[str, list[_Sample]]) -> None:
        seen: set[str] = set()
        for store in self._stores:
            stats = store.statistics()
            if stats.name in seen:
                continue
            seen.add(stats.name)
            one = (stats.name,)
            for family, value in (
                ("trio_smith_store_events_appended", stats.appended),
                ("trio_smith_store_transactions", stats.transactions),
                ("trio_smith_store_events_followed", stats.followed),
                ("trio_smith_store_events_dropped", stats.dropped),
                ("trio_smith_store_events_pruned", stats.pruned),
                ("trio_smith_store_head_position", stats.head),
                ("trio_smith_store_queued_appends", stats.queued),
                ("trio_smith_store_follow_error", stats.follow_error is not None),
            ):
                out[family].append((one, float(value)))

    # ------------------------------------------------------------ the scrape side

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples: registration never calls :meth:`collect`."""
        for name, (kind, help_text, labels) in _FAMILIES.items():
            yield _family(name, kind, help_text, labels)
        yield _family("trio_smith_snapshot_age_seconds", "gauge", _AGE_HELP, ())

    def collect(self) -> Iterator[Metric]:
        """The last snapshot as metric families; safe from any thread (it reads no trio object).

        Before the first snapshot there are no samples, and
        ``trio_smith_snapshot_age_seconds`` is NaN.
        """
        snapshot = self._snapshot  # one atomic read: a refresh replaces it whole
        for name, (kind, help_text, labels) in _FAMILIES.items():
            family = _family(name, kind, help_text, labels)
            if snapshot is not None:
                sample_name = f"{name}_total" if kind == "counter" else name
                append = family.samples.append
                for values, value in snapshot.samples[name]:
                    append(
                        Sample(
                            sample_name, dict(zip(labels, values, strict=True)), value, None, None
                        )
                    )
            yield family
        age = GaugeMetricFamily(
            "trio_smith_snapshot_age_seconds",
            _AGE_HELP,
            value=math.nan if snapshot is None else time.monotonic() - snapshot.taken,
        )
        yield age


_AGE_HELP: Final = "Seconds since the last snapshot (NaN before the first); grows if trio is stuck."


def _family(name: str, kind: str, help_text: str, labels: tuple[str, ...]) -> Metric:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


_T = TypeVar("_T")
_S = TypeVar(
    "_S", RetryStatistics, TimeLimiterStatistics, BulkheadStatistics, RateLimiterStatistics
)


def _kinds(out: list[_Sample], name: str, **counts: int) -> None:
    """One sample per kind label (the keywords, in order) of the object ``name``."""
    for kind, n in counts.items():
        out.append(((name, kind), float(n)))


def _first_by_name(snapshots: Iterable[_S]) -> Iterator[_S]:
    """One series per name: the first object found with a name wins (as for breakers)."""
    seen: set[str] = set()
    for stats in snapshots:
        if stats.name not in seen:
            seen.add(stats.name)
            yield stats


def _checked(label: str, objects: Iterable[_T], kinds: tuple[type, ...]) -> list[_T]:
    if isinstance(objects, str | bytes) or not isinstance(objects, Iterable):
        raise TypeError(f"{label} must be an iterable, got {objects!r}")
    items = list(objects)
    for item in items:
        if not isinstance(item, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            raise TypeError(f"{label} must hold {expected} objects, got {item!r}")
    return items

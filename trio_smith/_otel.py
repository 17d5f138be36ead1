"""OpenTelemetry spans and metrics, bridged from trio_smith's telemetry events.

Written against the OpenTelemetry *API* only (``opentelemetry-api``, the
``otel`` extra): the application chooses the SDK, its processors and its
exporters; without an SDK every call here is a no-op (docs/design.md rule 46).
Nothing in trio_smith imports this module: ``import trio_smith.otel`` does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Final, TypeAlias

try:
    from opentelemetry import context, metrics, propagate, trace
except ImportError as error:  # pragma: no cover - tested in a subprocess
    raise ImportError(
        "trio_smith.otel needs the OpenTelemetry API: pip install 'trio-smith[otel]'"
    ) from error

from . import __version__, telemetry
from ._event import Event, TraceContextInjector, set_context_injector
from ._exceptions import AlreadyInstrumented
from ._telemetry import (
    BREAKER_CALL,
    BREAKER_STATE_CHANGE,
    BULKHEAD_CALL,
    BUS_DROPPED,
    CHILD_FAILED,
    CHILD_RESTARTED,
    CHILD_STARTED,
    CHILD_STOPPED,
    RATE_LIMITER_ACQUIRE,
    RETRY_CALL,
    ROUTER_REQUEST,
    STORE_COMMIT,
    SUPERVISOR_GAVE_UP,
    TIME_LIMITER_CALL,
    EventName,
)

Measurements: TypeAlias = Mapping[str, float]
Metadata: TypeAlias = Mapping[str, object]

#: The telemetry handler id; one instrumentation at a time.
HANDLER_ID: Final = "trio_smith.otel"
#: The instrumentation scope's name (``otel.scope.name``).
SCOPE: Final = "trio_smith"

REQUEST_START: Final = (*ROUTER_REQUEST, "start")
REQUEST_STOP: Final = (*ROUTER_REQUEST, "stop")
REQUEST_EXCEPTION: Final = (*ROUTER_REQUEST, "exception")

#: Histogram buckets in seconds (OpenTelemetry's semantic conventions for
#: durations; the SDK's default buckets are meant for milliseconds).
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

#: How many correlations remember their first request span, for links; the
#: oldest is forgotten first, so a long-running service holds a bounded map.
CORRELATIONS_KEPT: Final = 4096

_current: Instrumentation | None = None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _put(attributes: dict[str, str | bool | int | float], key: str, value: object) -> None:
    # Attribute values must be primitives; ids arrive as UUIDs, None means absent.
    if value is None:
        return
    if isinstance(value, bool | int | float | str):
        attributes[key] = value
    else:
        attributes[key] = str(value)


def _error_type(metadata: Metadata) -> str:
    # A child's failure names its error's type; a span's exception event has
    # only reason = "TypeName: message" (and kind = error, cancelled or exit).
    error_type = metadata.get("error_type")
    if error_type is not None:
        return str(error_type)
    reason = metadata.get("reason")
    if isinstance(reason, str) and reason:
        return reason.partition(":")[0]
    return "_OTHER"


def inject_trace_context() -> dict[str, str] | None:
    """The current span's W3C Trace Context, for a new event (the injector).

    Through the global propagator (``opentelemetry.propagate.inject``, W3C
    Trace Context by default), keeping only its two headers (a composite
    propagator adds ``baggage``, which an event does not carry); None when no
    span is current.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    traceparent = carrier.get("traceparent")
    if traceparent is None:
        return None
    tracestate = carrier.get("tracestate")
    if tracestate:
        return {"traceparent": traceparent, "tracestate": tracestate}
    return {"traceparent": traceparent}


def context_of(event: Event) -> context.Context:
    """The OpenTelemetry context an event's trace context describes, to continue its trace.

    Start the spans of the work an event causes in it (in this process or
    another one that read the event from a store)::

        with tracer.start_as_current_span("handle", context=otel.context_of(event)):
            ...

    Args:
        event: any event; one without a trace context gives an empty
            context, in which a span starts a new trace.

    Returns:
        The context extracted by the global propagator
        (``opentelemetry.propagate.extract``) from ``event.trace_context``.

    Raises:
        TypeError: ``event`` is not an :class:`~trio_smith.events.Event`.
    """
    if not isinstance(event, Event):
        raise TypeError(f"event must be an Event, got {event!r}")
    return propagate.extract(dict(event.trace_context or {}), context.Context())


class Instrumentation:
    """trio_smith's telemetry, sent to OpenTelemetry: made by :func:`instrument`.

    While it is instrumented, a handler attached to :mod:`trio_smith.telemetry`
    turns the library's events into spans and metrics. :meth:`uninstrument`
    detaches it.
    """

    def __init__(
        self,
        tracer: trace.Tracer,
        meter: metrics.Meter,
        *,
        child_spans: bool,
    ) -> None:
        self._tracer = tracer
        self._child_spans = child_spans
        self._instrumented = False
        #: The event trace context injector ``instrument()`` replaced.
        self._replaced: TraceContextInjector | None = None
        # Open spans, paired by the router's task id (a Task requested twice at
        # once pairs last-in first-out) and by the child's incarnation.
        self._requests: dict[tuple[object, object], list[tuple[trace.Span, str | None]]] = {}
        self._children: dict[tuple[object, object, object], trace.Span] = {}
        self._correlations: OrderedDict[str, trace.SpanContext] = OrderedDict()
        self._restarts = meter.create_counter(
            "trio_smith.child.restarts", "{restart}", "Restarts of supervised children."
        )
        self._failures = meter.create_counter(
            "trio_smith.child.failures", "{failure}", "Children that ended with an error."
        )
        self._give_ups = meter.create_counter(
            "trio_smith.supervisor.give_ups",
            "{give_up}",
            "Supervisors that gave up (restart intensity exceeded, or an escalated failure).",
        )
        self._breaker_calls = meter.create_counter(
            "trio_smith.breaker.calls", "{call}", "Calls through circuit breakers, by outcome."
        )
        self._breaker_duration = meter.create_histogram(
            "trio_smith.breaker.call.duration",
            "s",
            "Duration of the calls a circuit breaker permitted.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._breaker_transitions = meter.create_counter(
            "trio_smith.breaker.transitions", "{transition}", "Circuit breaker state changes."
        )
        self._retry_calls = meter.create_counter(
            "trio_smith.retry.calls", "{call}", "Calls through retries, by outcome."
        )
        self._retry_attempts = meter.create_counter(
            "trio_smith.retry.attempts",
            "{attempt}",
            "Attempts made by the calls through retries, by the call's outcome.",
        )
        self._time_limiter_calls = meter.create_counter(
            "trio_smith.time_limiter.calls", "{call}", "Calls through time limiters, by outcome."
        )
        self._time_limiter_duration = meter.create_histogram(
            "trio_smith.time_limiter.call.duration",
            "s",
            "Duration of the calls through time limiters, a timed-out one's included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._bulkhead_calls = meter.create_counter(
            "trio_smith.bulkhead.calls",
            "{call}",
            "Calls through bulkheads: finished (admitted) or rejected.",
        )
        self._bulkhead_wait = meter.create_histogram(
            "trio_smith.bulkhead.wait_time",
            "s",
            "Time calls waited for a bulkhead's permit, until admitted or rejected.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._bulkhead_duration = meter.create_histogram(
            "trio_smith.bulkhead.call.duration",
            "s",
            "Duration of the calls a bulkhead admitted, from admission to the end.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._rate_limiter_acquisitions = meter.create_counter(
            "trio_smith.rate_limiter.acquisitions",
            "{acquisition}",
            "Permit acquisitions from rate limiters, by outcome.",
        )
        self._rate_limiter_wait = meter.create_histogram(
            "trio_smith.rate_limiter.wait_time",
            "s",
            "Time granted acquisitions waited for their rate limiter's cycle.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._bus_drops = meter.create_counter(
            "trio_smith.bus.drops", "{event}", "Events an event bus dropped for a subscriber."
        )
        self._store_commits = meter.create_counter(
            "trio_smith.store.commits", "{commit}", "Commits to event stores."
        )
        self._store_events = meter.create_counter(
            "trio_smith.store.events", "{event}", "Events committed to event stores."
        )
        self._store_duration = meter.create_histogram(
            "trio_smith.store.commit.duration",
            "s",
            "Duration of event store commits.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._request_duration = meter.create_histogram(
            "trio_smith.router.request.duration",
            "s",
            "Duration of routed requests, from routing to the reply or the error.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._dispatch = {
            REQUEST_START: self._request_start,
            REQUEST_STOP: self._request_stop,
            REQUEST_EXCEPTION: self._request_stop,
            CHILD_FAILED: self._child_failed,
            CHILD_RESTARTED: self._child_restarted,
            SUPERVISOR_GAVE_UP: self._gave_up,
            BREAKER_STATE_CHANGE: self._breaker_state_change,
            BREAKER_CALL: self._breaker_call,
            RETRY_CALL: self._retry_call,
            TIME_LIMITER_CALL: self._time_limiter_call,
            BULKHEAD_CALL: self._bulkhead_call,
            RATE_LIMITER_ACQUIRE: self._rate_limiter_acquire,
            BUS_DROPPED: self._bus_dropped,
            STORE_COMMIT: self._store_commit,
        }
        if child_spans:
            self._dispatch[CHILD_STARTED] = self._child_started
            self._dispatch[CHILD_STOPPED] = self._child_stopped

    def __repr__(self) -> str:
        state = "instrumented" if self._instrumented else "uninstrumented"
        return f"<trio_smith.otel.Instrumentation {state} child_spans={self._child_spans}>"

    @property
    def instrumented(self) -> bool:
        """True until :meth:`uninstrument`."""
        return self._instrumented

    @property
    def child_spans(self) -> bool:
        """Whether each child incarnation is a span (``instrument(child_spans=True)``)."""
        return self._child_spans

    def _attach(self) -> None:
        telemetry.attach(HANDLER_ID, tuple(self._dispatch), self._handle)
        self._replaced = set_context_injector(inject_trace_context)
        self._instrumented = True

    def uninstrument(self) -> None:
        """Detach from trio_smith's telemetry: no more spans or metrics.

        New events no longer carry the current trace context (the injector
        :func:`instrument` replaced is put back). Spans still open (a request
        in flight, a running child) end now. A second call does nothing.
        Afterwards :func:`instrument` may be called again.
        """
        global _current
        if not self._instrumented:
            return
        telemetry.detach(HANDLER_ID)
        # Put back the injector replaced, unless another has replaced ours since.
        current = set_context_injector(self._replaced)
        if current is not inject_trace_context:
            set_context_injector(current)
        self._replaced = None
        self._instrumented = False
        if _current is self:
            _current = None
        for spans in self._requests.values():
            for span, _ in spans:
                span.end()
        for span in self._children.values():
            span.end()
        self._requests.clear()
        self._children.clear()
        self._correlations.clear()

    def _handle(self, name: EventName, measurements: Measurements, metadata: Metadata) -> None:
        self._dispatch[name](measurements, metadata)

    # ------------------------------------------------------------ routed requests

    @staticmethod
    def _request_attributes(metadata: Metadata) -> dict[str, str | bool | int | float]:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "messaging.destination.name", metadata.get("role"))
        _put(attributes, "messaging.message.id", metadata.get("task_id"))
        _put(attributes, "messaging.message.conversation_id", metadata.get("correlation_id"))
        _put(attributes, "trio_smith.router", metadata.get("router"))
        _put(attributes, "trio_smith.task.type", metadata.get("task_type"))
        _put(attributes, "trio_smith.role", metadata.get("role"))
        _put(attributes, "trio_smith.agent", metadata.get("agent"))
        _put(attributes, "trio_smith.causation_id", metadata.get("causation_id"))
        return attributes

    def _correlate(self, span: trace.Span, correlation: str | None) -> None:
        """Link ``span`` to the first span of its correlation when they are in two traces.

        The parent of a request span is the span active in the requesting task
        (trio copies the context into the tasks it spawns). A request made by an
        agent runs in the agent's task, outside its requester's context: the
        link keeps the causal chain in one view. A request learns its
        correlation when routed (its stop event tells it) if it had none.
        """
        if correlation is None:
            return
        first = self._correlations.get(correlation)
        if first is None:
            self._correlations[correlation] = span.get_span_context()
            if len(self._correlations) > CORRELATIONS_KEPT:
                self._correlations.popitem(last=False)
        elif first.trace_id != span.get_span_context().trace_id:
            span.add_link(first, {"messaging.message.conversation_id": correlation})

    def _request_start(self, measurements: Measurements, metadata: Metadata) -> None:
        role = _text(metadata.get("role"))
        attributes: dict[str, str | bool | int | float] = {
            "messaging.system": "trio_smith",
            "messaging.operation.name": "request",
            "messaging.operation.type": "send",
            **self._request_attributes(metadata),
        }
        span = self._tracer.start_span(
            "request" if role is None else f"request {role}",
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        correlation = _text(metadata.get("correlation_id"))
        self._correlate(span, correlation)
        key = (metadata.get("router"), metadata.get("task_id"))
        self._requests.setdefault(key, []).append((span, correlation))

    def _request_stop(self, measurements: Measurements, metadata: Metadata) -> None:
        failed = "kind" in metadata  # only the exception event has a kind
        duration_attributes: dict[str, str | bool | int | float] = {}
        _put(duration_attributes, "trio_smith.router", metadata.get("router"))
        _put(duration_attributes, "trio_smith.role", metadata.get("role"))
        if failed:
            duration_attributes["error.type"] = _error_type(metadata)
        if "duration" in measurements:
            self._request_duration.record(measurements["duration"], duration_attributes)
        key = (metadata.get("router"), metadata.get("task_id"))
        spans = self._requests.get(key)
        if not spans:
            return  # started before instrument(), or ended by uninstrument()
        span, correlation = spans.pop()
        if not spans:
            del self._requests[key]
        # The stop metadata adds what was learnt on the way: role, agent and
        # the correlation of the routed event.
        span.set_attributes(self._request_attributes(metadata))
        role = metadata.get("role")
        if role is not None:
            span.update_name(f"request {role}")
        told = _text(metadata.get("correlation_id"))
        if told != correlation:
            self._correlate(span, told)
        if failed:
            self._fail(span, metadata)
        span.end()

    @staticmethod
    def _fail(span: trace.Span, metadata: Metadata) -> None:
        error_type = _error_type(metadata)
        reason = _text(metadata.get("reason")) or ""
        message = reason.removeprefix(f"{error_type}: ")
        span.set_attribute("error.type", error_type)
        # The exception itself stays in the library: its event is the
        # semantic conventions' "exception" event, from the type and message.
        span.add_event("exception", {"exception.type": error_type, "exception.message": message})
        span.set_status(trace.StatusCode.ERROR, reason)

    # ------------------------------------------------------------ children

    @staticmethod
    def _child_key(metadata: Metadata) -> tuple[object, object, object]:
        return (metadata.get("supervisor"), metadata.get("child_id"), metadata.get("incarnation"))

    @staticmethod
    def _child_attributes(metadata: Metadata) -> dict[str, str | bool | int | float]:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.supervisor", metadata.get("supervisor"))
        _put(attributes, "trio_smith.child.id", metadata.get("child_id"))
        return attributes

    def _child_started(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes = self._child_attributes(metadata)
        _put(attributes, "trio_smith.child.incarnation", metadata.get("incarnation"))
        _put(attributes, "process.pid", metadata.get("os_pid"))
        _put(attributes, "trio_smith.correlation_id", metadata.get("correlation_id"))
        supervisor = _text(metadata.get("supervisor"))
        child = _text(metadata.get("child_id"))
        span = self._tracer.start_span(
            f"child {child}" if supervisor is None else f"child {supervisor}/{child}",
            kind=trace.SpanKind.INTERNAL,
            attributes=attributes,
        )
        key = self._child_key(metadata)
        previous = self._children.pop(key, None)
        if previous is not None:  # pragma: no cover - a start without its stop
            previous.end()
        self._children[key] = span

    def _child_stopped(self, measurements: Measurements, metadata: Metadata) -> None:
        span = self._children.pop(self._child_key(metadata), None)
        if span is not None:
            if metadata.get("error_type") is not None:  # its stop raised
                self._fail(span, metadata)
            span.end()

    def _child_failed(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes = self._child_attributes(metadata)
        attributes["error.type"] = _error_type(metadata)
        self._failures.add(1, attributes)
        span = self._children.pop(self._child_key(metadata), None)
        if span is not None:
            self._fail(span, metadata)
            span.end()

    def _child_restarted(self, measurements: Measurements, metadata: Metadata) -> None:
        self._restarts.add(1, self._child_attributes(metadata))

    def _gave_up(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.supervisor", metadata.get("supervisor"))
        self._give_ups.add(1, attributes)

    # ------------------------------------------------------------ resilience, bus, stores

    def _breaker_state_change(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.breaker", metadata.get("breaker"))
        _put(attributes, "trio_smith.breaker.from_state", metadata.get("from_state"))
        _put(attributes, "trio_smith.breaker.to_state", metadata.get("to_state"))
        self._breaker_transitions.add(1, attributes)

    def _breaker_call(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.breaker", metadata.get("breaker"))
        outcome = metadata.get("outcome")
        _put(attributes, "trio_smith.breaker.outcome", outcome)
        self._breaker_calls.add(1, attributes)
        # A rejected call never ran: it has no duration to report.
        if outcome != "not_permitted" and "duration" in measurements:
            self._breaker_duration.record(measurements["duration"], attributes)

    def _retry_call(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.retry", metadata.get("retry"))
        _put(attributes, "trio_smith.retry.outcome", metadata.get("outcome"))
        self._retry_calls.add(1, attributes)
        if "attempts" in measurements:
            self._retry_attempts.add(int(measurements["attempts"]), attributes)

    def _time_limiter_call(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.time_limiter", metadata.get("time_limiter"))
        _put(attributes, "trio_smith.time_limiter.outcome", metadata.get("outcome"))
        self._time_limiter_calls.add(1, attributes)
        if "duration" in measurements:
            self._time_limiter_duration.record(measurements["duration"], attributes)

    def _bulkhead_call(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.bulkhead", metadata.get("bulkhead"))
        outcome = metadata.get("outcome")
        _put(attributes, "trio_smith.bulkhead.outcome", outcome)
        self._bulkhead_calls.add(1, attributes)
        if "wait" in measurements:
            self._bulkhead_wait.record(measurements["wait"], attributes)
        # A rejected call never ran: it has no duration to report.
        if outcome != "rejected" and "duration" in measurements:
            self._bulkhead_duration.record(measurements["duration"], attributes)

    def _rate_limiter_acquire(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.rate_limiter", metadata.get("rate_limiter"))
        outcome = metadata.get("outcome")
        _put(attributes, "trio_smith.rate_limiter.outcome", outcome)
        self._rate_limiter_acquisitions.add(1, attributes)
        # A refused acquisition's wait is the one it would have needed: it
        # waited for nothing, so only granted waits are time spent waiting.
        if outcome == "permitted" and "wait" in measurements:
            self._rate_limiter_wait.record(measurements["wait"], attributes)

    def _bus_dropped(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.bus", metadata.get("bus"))
        _put(attributes, "trio_smith.bus.subscription", metadata.get("subscription"))
        self._bus_drops.add(int(measurements.get("count", 1)), attributes)

    def _store_commit(self, measurements: Measurements, metadata: Metadata) -> None:
        attributes: dict[str, str | bool | int | float] = {}
        _put(attributes, "trio_smith.store", metadata.get("store"))
        self._store_commits.add(1, attributes)
        self._store_events.add(int(measurements.get("events", 0)), attributes)
        if "duration" in measurements:
            self._store_duration.record(measurements["duration"], attributes)


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    child_spans: bool = False,
) -> Instrumentation:
    """Send trio_smith's telemetry to OpenTelemetry: spans and metrics.

    Spans: one per routed request (``Router.request``), and, with
    ``child_spans=True``, one per child incarnation, from its start to its
    stop or failure. Metrics: restarts, failures, give-ups, breaker calls and
    their durations, retries' calls and attempts, time limiters' calls and
    durations, bulkheads' calls, waits and durations, rate limiters'
    acquisitions and waits, bus drops, store commits and request durations. Events:
    each new event carries the current span's W3C trace context
    (``Event.trace_context``, through
    :func:`trio_smith.telemetry.set_context_injector`), so that whoever reads
    it, in any process, continues the trace with :func:`context_of`.

    Args:
        tracer_provider: where spans go; default: the global provider
            (``opentelemetry.trace.set_tracer_provider``).
        meter_provider: where metrics go; default: the global provider
            (``opentelemetry.metrics.set_meter_provider``).
        child_spans: also make a span of every child incarnation. Off by
            default: a long-lived child makes a span as long as its life, which
            most tracing back ends show poorly and export only at its end.

    Returns:
        The instrumentation; its :meth:`~Instrumentation.uninstrument` undoes
        this call.

    Raises:
        AlreadyInstrumented: trio_smith is already instrumented (call
            ``uninstrument()`` on the first instrumentation first).
        TypeError: ``child_spans`` is not a bool.
    """
    global _current
    if not isinstance(child_spans, bool):
        raise TypeError(f"child_spans must be a bool, got {child_spans!r}")
    if _current is not None or any(hid == HANDLER_ID for hid, _ in telemetry.handlers()):
        raise AlreadyInstrumented()
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(SCOPE, __version__, meter_provider=meter_provider)
    instrumentation = Instrumentation(tracer, meter, child_spans=child_spans)
    instrumentation._attach()
    _current = instrumentation
    return instrumentation

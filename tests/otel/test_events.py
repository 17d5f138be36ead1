"""Telemetry events in, OpenTelemetry spans and metrics out (events executed by hand)."""

from __future__ import annotations

import uuid

import pytest
import trio
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trio_smith import otel, telemetry

from .helpers import attributes, counts, finished, key, sums

REQUEST = ("trio_smith", "router", "request")
TASK_ID = uuid.UUID(int=1)
CORRELATION = uuid.UUID(int=2)
CAUSE = uuid.UUID(int=3)


def request_metadata(**changes: object) -> dict[str, object]:
    metadata: dict[str, object] = {
        "router": "main",
        "task_type": "research",
        "role": "researcher",
        "agent": None,
        "task_id": TASK_ID,
        "correlation_id": CORRELATION,
        "causation_id": CAUSE,
    }
    metadata.update(changes)
    return metadata


def child(event: str, incarnation: int, **extra: object) -> None:
    metadata: dict[str, object] = {
        "supervisor": "root/app",
        "child_id": "worker",
        "incarnation": incarnation,
        "os_pid": None,
        "correlation_id": None,
        **extra,
    }
    telemetry.execute(("trio_smith", "child", event), {"incarnation": incarnation}, metadata)


def test_a_request_is_a_client_span_with_the_messaging_attributes(
    instrumented: otel.Instrumentation, spans: InMemorySpanExporter
) -> None:
    with telemetry.span(REQUEST, request_metadata()) as stop:
        stop["agent"] = "r1"  # known once routed: the stop event adds it
    [span] = finished(spans)
    assert span.name == "request researcher"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None
    assert span.links == ()
    assert attributes(span) == {
        "messaging.system": "trio_smith",
        "messaging.operation.name": "request",
        "messaging.operation.type": "send",
        "messaging.destination.name": "researcher",
        "messaging.message.id": str(TASK_ID),
        "messaging.message.conversation_id": str(CORRELATION),
        "trio_smith.router": "main",
        "trio_smith.task.type": "research",
        "trio_smith.role": "researcher",
        "trio_smith.causation_id": str(CAUSE),
        "trio_smith.agent": "r1",
    }
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "trio_smith"


def test_a_failed_request_has_status_error_and_an_exception_event(
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    reader: InMemoryMetricReader,
) -> None:
    with pytest.raises(LookupError), telemetry.span(REQUEST, request_metadata()):
        raise LookupError("no agent")
    [span] = finished(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "LookupError: no agent"
    assert attributes(span)["error.type"] == "LookupError"
    [event] = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {}) == {
        "exception.type": "LookupError",
        "exception.message": "no agent",
    }
    labels = {"trio_smith.router": "main", "trio_smith.role": "researcher"}
    assert counts(reader, "trio_smith.router.request.duration") == {
        key({**labels, "error.type": "LookupError"}): 1
    }


async def test_the_request_span_is_a_child_of_the_span_active_in_the_task(
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    tracer = tracer_provider.get_tracer("test")

    async def requester() -> None:
        with telemetry.span(REQUEST, request_metadata()):
            await trio.lowlevel.checkpoint()

    with tracer.start_as_current_span("handling") as outer:
        # trio copies the context into the tasks it spawns: the span follows.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(requester)
    request, handling = finished(spans)
    assert request.parent is not None
    assert request.parent.span_id == outer.get_span_context().span_id
    assert request.context is not None
    assert request.context.trace_id == outer.get_span_context().trace_id
    assert handling.name == "handling"


def test_a_request_in_another_trace_links_to_the_first_span_of_its_correlation(
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    tracer = tracer_provider.get_tracer("test")
    with telemetry.span(REQUEST, request_metadata()):
        pass
    # An agent's own request: another task, no span active, same correlation.
    with telemetry.span(REQUEST, request_metadata(task_id=uuid.UUID(int=11))):
        pass
    # Another correlation: no link.
    with (
        tracer.start_as_current_span("unrelated"),
        telemetry.span(
            REQUEST, request_metadata(task_id=uuid.UUID(int=12), correlation_id=uuid.UUID(int=9))
        ),
    ):
        pass
    first, later, other, _ = finished(spans)
    assert first.context is not None
    assert later.parent is None
    [link] = later.links
    assert link.context.span_id == first.context.span_id
    assert dict(link.attributes or {}) == {"messaging.message.conversation_id": str(CORRELATION)}
    assert first.links == ()
    assert other.links == ()


def test_a_request_started_before_instrumenting_is_ignored_at_its_stop(
    tracer_provider: TracerProvider, spans: InMemorySpanExporter, reader: InMemoryMetricReader
) -> None:
    telemetry.attach("other", [("trio_smith", "x")], lambda *_: None)
    try:
        with telemetry.span(REQUEST, request_metadata()):
            instrumentation = otel.instrument(tracer_provider=tracer_provider)
        instrumentation.uninstrument()
    finally:
        telemetry.detach("other")
    assert finished(spans) == []


def test_child_spans_are_off_by_default(
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    reader: InMemoryMetricReader,
) -> None:
    assert not instrumented.child_spans
    child("started", 1)
    child("failed", 1, error_type="ValueError", reason="it crashed: ValueError: boom")
    assert finished(spans) == []
    labels = {"trio_smith.supervisor": "root/app", "trio_smith.child.id": "worker"}
    assert counts(reader, "trio_smith.child.failures") == {
        key({**labels, "error.type": "ValueError"}): 1
    }


def test_each_child_incarnation_is_a_span_when_enabled(
    with_child_spans: otel.Instrumentation, spans: InMemorySpanExporter
) -> None:
    child("started", 1, os_pid=4242, correlation_id=CORRELATION)
    child("started", 2)
    child("stopped", 2)
    child("failed", 1, error_type="ValueError", reason="boom")
    child("stopped", 1)  # its span already ended with the failure
    second, first = finished(spans)
    assert (first.name, second.name) == ("child root/app/worker", "child root/app/worker")
    assert first.kind is SpanKind.INTERNAL
    assert attributes(first) == {
        "trio_smith.supervisor": "root/app",
        "trio_smith.child.id": "worker",
        "trio_smith.child.incarnation": 1,
        "process.pid": 4242,
        "trio_smith.correlation_id": str(CORRELATION),
        "error.type": "ValueError",
    }
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "boom"
    assert second.status.status_code is StatusCode.UNSET
    assert attributes(second)["trio_smith.child.incarnation"] == 2


def test_the_metrics_count_what_the_events_report(
    instrumented: otel.Instrumentation, reader: InMemoryMetricReader
) -> None:
    sup = {"supervisor": "root", "child_id": "w"}
    for _ in range(2):
        telemetry.execute(("trio_smith", "child", "restarted"), {"restarts": 1}, sup)
    telemetry.execute(
        ("trio_smith", "supervisor", "gave_up"),
        {"restarts": 3},
        {"supervisor": "root", "reason": "shutdown", "child_id": "w"},
    )
    for outcome, duration in [("success", 0.5), ("success", 1.5), ("failure", 2.0)]:
        telemetry.execute(
            ("trio_smith", "breaker", "call"),
            {"duration": duration},
            {"breaker": "db", "outcome": outcome, "slow": False},
        )
    telemetry.execute(
        ("trio_smith", "breaker", "call"),
        {"duration": 0.0},
        {"breaker": "db", "outcome": "not_permitted", "slow": False},
    )
    telemetry.execute(
        ("trio_smith", "breaker", "state_change"),
        {},
        {"breaker": "db", "from_state": "CLOSED", "to_state": "OPEN"},
    )
    telemetry.execute(
        ("trio_smith", "bus", "dropped"), {"count": 3}, {"bus": "main", "subscription": None}
    )
    telemetry.execute(
        ("trio_smith", "bus", "dropped"), {"count": 2}, {"bus": "main", "subscription": "ui"}
    )
    for events in (4, 6):
        telemetry.execute(
            ("trio_smith", "store", "commit"), {"events": events, "duration": 0.01}, {"store": "s"}
        )
    worker = {"trio_smith.supervisor": "root", "trio_smith.child.id": "w"}
    assert counts(reader, "trio_smith.child.restarts") == {key(worker): 2}
    assert counts(reader, "trio_smith.supervisor.give_ups") == {
        key({"trio_smith.supervisor": "root"}): 1
    }

    def db(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.breaker": "db", "trio_smith.breaker.outcome": outcome})

    assert counts(reader, "trio_smith.breaker.calls") == {
        db("success"): 2,
        db("failure"): 1,
        db("not_permitted"): 1,
    }
    # A rejected call never ran: no duration.
    assert counts(reader, "trio_smith.breaker.call.duration") == {
        db("success"): 2,
        db("failure"): 1,
    }
    assert sums(reader, "trio_smith.breaker.call.duration") == {
        db("success"): 2.0,
        db("failure"): 2.0,
    }
    assert counts(reader, "trio_smith.breaker.transitions") == {
        key(
            {
                "trio_smith.breaker": "db",
                "trio_smith.breaker.from_state": "CLOSED",
                "trio_smith.breaker.to_state": "OPEN",
            }
        ): 1
    }
    assert counts(reader, "trio_smith.bus.drops") == {
        key({"trio_smith.bus": "main"}): 3,
        key({"trio_smith.bus": "main", "trio_smith.bus.subscription": "ui"}): 2,
    }
    store = key({"trio_smith.store": "s"})
    assert counts(reader, "trio_smith.store.commits") == {store: 2}
    assert counts(reader, "trio_smith.store.events") == {store: 10}
    assert counts(reader, "trio_smith.store.commit.duration") == {store: 2}


def test_the_histograms_have_buckets_in_seconds(
    instrumented: otel.Instrumentation, reader: InMemoryMetricReader
) -> None:
    with telemetry.span(REQUEST, request_metadata()):
        pass
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "trio_smith.router.request.duration"
    ]
    assert metric.unit == "s"
    [point] = metric.data.data_points
    assert list(getattr(point, "explicit_bounds", ())) == [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
    ]  # fmt: skip


def test_uninstrument_detaches_and_ends_the_open_spans(
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    reader: InMemoryMetricReader,
    meter_provider: object,
) -> None:
    from opentelemetry.sdk.metrics import MeterProvider

    assert isinstance(meter_provider, MeterProvider)
    instrumentation = otel.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, child_spans=True
    )
    before = instrumentation.instrumented
    assert [hid for hid, _ in telemetry.handlers()] == ["trio_smith.otel"]
    child("started", 1)
    with telemetry.span(REQUEST, request_metadata()):
        instrumentation.uninstrument()
    assert (before, instrumentation.instrumented) == (True, False)
    assert telemetry.handlers() == []
    assert sorted(span.name for span in finished(spans)) == [
        "child root/app/worker",
        "request researcher",
    ]
    # Nothing more: no span, no count.
    child("started", 2)
    child("failed", 2, error_type="ValueError", reason="boom")
    with telemetry.span(REQUEST, request_metadata()):
        pass
    assert len(finished(spans)) == 2
    assert counts(reader, "trio_smith.child.failures") == {}
    assert counts(reader, "trio_smith.router.request.duration") == {}
    instrumentation.uninstrument()  # a second call does nothing
    again = otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    again.uninstrument()
    assert repr(again) == "<trio_smith.otel.Instrumentation uninstrumented child_spans=False>"


def test_instrumenting_twice_is_refused(instrumented: otel.Instrumentation) -> None:
    with pytest.raises(otel.AlreadyInstrumented) as caught:
        otel.instrument()
    assert str(caught.value) == (
        "trio_smith is already instrumented for OpenTelemetry: call uninstrument() on the "
        "Instrumentation that instrument() returned before instrumenting again"
    )
    assert isinstance(caught.value, RuntimeError)
    assert repr(instrumented) == "<trio_smith.otel.Instrumentation instrumented child_spans=False>"


def test_a_handler_attached_under_its_id_elsewhere_is_refused_too() -> None:
    telemetry.attach("trio_smith.otel", [("x",)], lambda *_: None)
    try:
        with pytest.raises(otel.AlreadyInstrumented):
            otel.instrument()
    finally:
        telemetry.detach("trio_smith.otel")


def test_child_spans_must_be_a_bool() -> None:
    with pytest.raises(TypeError) as caught:
        otel.instrument(child_spans=1)  # type: ignore[arg-type]
    assert str(caught.value) == "child_spans must be a bool, got 1"
    assert telemetry.handlers() == []


def test_the_role_and_a_correlation_told_at_the_stop_name_and_link_the_span(
    instrumented: otel.Instrumentation, spans: InMemorySpanExporter
) -> None:
    # Router.request learns its role, agent and (for a task with no chain
    # yet) its correlation when it routes: the stop event tells them.
    with telemetry.span(REQUEST, request_metadata(role=None, correlation_id=None)) as stop:
        stop.update(role="coder", agent="c1", correlation_id=str(CORRELATION))
        # Meanwhile the agent made a request of the same chain, in its own task.
        with telemetry.span(REQUEST, request_metadata(task_id=uuid.UUID(int=11))):
            pass
    inner, outer = finished(spans)
    assert outer.name == "request coder"
    assert attributes(outer)["messaging.destination.name"] == "coder"
    assert attributes(outer)["trio_smith.agent"] == "c1"
    assert attributes(outer)["messaging.message.conversation_id"] == str(CORRELATION)
    assert inner.context is not None
    [link] = outer.links
    assert link.context.span_id == inner.context.span_id


def test_a_child_whose_stop_raised_ends_its_span_with_status_error(
    with_child_spans: otel.Instrumentation, spans: InMemorySpanExporter
) -> None:
    child("started", 1)
    child("stopped", 1, reason="shutdown", error_type="OSError")
    [span] = finished(spans)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["error.type"] == "OSError"

"""A trace continues across processes through the trace context events carry."""

from __future__ import annotations

import pathlib

import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trio_smith import otel, telemetry
from trio_smith._emit import Emitter
from trio_smith._otel import inject_trace_context
from trio_smith.events import Event, SQLiteEventStore, SystemEvent

from .helpers import finished

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _traceparent(span: trace.Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_a_trace_continues_in_a_second_process_through_a_stored_event(
    instrumented: otel.Instrumentation,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    tmp_path: pathlib.Path,
) -> None:
    tracer = tracer_provider.get_tracer("test")
    path = tmp_path / "events.db"

    async def first_process() -> None:
        async with SQLiteEventStore(path) as store:
            with tracer.start_as_current_span("produce"):
                await store.append(Event.new("billing.paid", source="shop"))

    async def second_process() -> None:
        async with SQLiteEventStore(path, read_only=True) as store:
            (stored,) = await store.read()
        with tracer.start_as_current_span("consume", context=otel.context_of(stored)):
            pass

    # Two trio.run calls, with nothing shared but the file: as two processes.
    trio.run(first_process)
    trio.run(second_process)
    produce, consume = finished(spans)
    assert (produce.name, consume.name) == ("produce", "consume")
    assert produce.context is not None
    assert consume.context is not None
    assert consume.context.trace_id == produce.context.trace_id
    assert consume.parent is not None
    assert consume.parent.span_id == produce.context.span_id
    assert consume.parent.is_remote


def test_new_events_carry_the_current_span_while_instrumented(
    tracer_provider: TracerProvider,
) -> None:
    tracer = tracer_provider.get_tracer("test")
    published: list[Event] = []

    class Publisher:
        def publish_nowait(self, event: Event) -> None:
            published.append(event)

    with tracer.start_as_current_span("before"):
        assert Event.new("billing.paid", source="a").trace_context is None
    instrumentation = otel.instrument(tracer_provider=tracer_provider)
    try:
        assert Event.new("billing.paid", source="a").trace_context is None, "no span, none"
        with tracer.start_as_current_span("work") as span:
            made = Event.new("billing.paid", source="a")
            # The library's own events (supervisors, routers, breakers) too.
            Emitter(Publisher(), "test").emit(SystemEvent.STARTED, "x", {})
        assert made.trace_context == {"traceparent": _traceparent(span)}
        assert published[0].trace_context == made.trace_context
    finally:
        instrumentation.uninstrument()
    with tracer.start_as_current_span("after"):
        assert Event.new("billing.paid", source="a").trace_context is None


def test_uninstrument_puts_back_the_injector_it_replaced(
    tracer_provider: TracerProvider,
) -> None:
    def mine() -> dict[str, str]:
        return {"traceparent": TRACEPARENT}

    previous = telemetry.set_context_injector(mine)
    try:
        instrumentation = otel.instrument(tracer_provider=tracer_provider)
        assert telemetry.set_context_injector(inject_trace_context) is inject_trace_context
        instrumentation.uninstrument()
        assert Event.new("billing.paid", source="a").trace_context == {"traceparent": TRACEPARENT}
        # One that replaced ours meanwhile is left in place.
        instrumentation = otel.instrument(tracer_provider=tracer_provider)
        telemetry.set_context_injector(None)
        instrumentation.uninstrument()
        assert Event.new("billing.paid", source="a").trace_context is None
    finally:
        telemetry.set_context_injector(previous)


def test_the_injector_keeps_only_the_trace_context_headers(
    tracer_provider: TracerProvider,
) -> None:
    from opentelemetry import baggage, context

    tracer = tracer_provider.get_tracer("test")
    # The default global propagator also writes baggage, which events do not carry.
    token = context.attach(baggage.set_baggage("user", "alice"))
    try:
        assert inject_trace_context() is None
        with tracer.start_as_current_span("work") as span:
            assert inject_trace_context() == {"traceparent": _traceparent(span)}
    finally:
        context.detach(token)


def test_context_of_reads_the_carrier_and_an_event_without_one_starts_a_new_trace() -> None:
    carried = Event.new(
        "billing.paid",
        source="a",
        trace_context={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
    )
    span_context = trace.get_current_span(otel.context_of(carried)).get_span_context()
    assert span_context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span_context.span_id == 0xB7AD6B7169203331
    assert span_context.is_remote
    assert span_context.trace_state.to_header() == "congo=t61rcWkgMzE"
    plain = Event.new("billing.paid", source="a")
    assert not trace.get_current_span(otel.context_of(plain)).get_span_context().is_valid


def test_context_of_needs_an_event() -> None:
    with pytest.raises(TypeError) as caught:
        otel.context_of("event")  # type: ignore[arg-type]
    assert str(caught.value) == "event must be an Event, got 'event'"

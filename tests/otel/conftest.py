"""OpenTelemetry's SDK with in-memory exporters, and trio_smith instrumented into it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from trio_smith import otel


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def _instrumented(
    tracer_provider: TracerProvider, meter_provider: MeterProvider, *, child_spans: bool
) -> Iterator[otel.Instrumentation]:
    instrumentation = otel.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, child_spans=child_spans
    )
    try:
        yield instrumentation
    finally:
        instrumentation.uninstrument()


@pytest.fixture
def instrumented(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[otel.Instrumentation]:
    yield from _instrumented(tracer_provider, meter_provider, child_spans=False)


@pytest.fixture
def with_child_spans(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[otel.Instrumentation]:
    yield from _instrumented(tracer_provider, meter_provider, child_spans=True)

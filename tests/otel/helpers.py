"""Reading what the SDK's in-memory exporters hold."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def finished(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return list(spans.get_finished_spans())


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _points(reader: InMemoryMetricReader, name: str) -> list[NumberDataPoint | HistogramDataPoint]:
    data = reader.get_metrics_data()
    found: list[NumberDataPoint | HistogramDataPoint] = []
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(
                        point
                        for point in metric.data.data_points
                        if isinstance(point, NumberDataPoint | HistogramDataPoint)
                    )
    return found


def counts(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, object]], float]:
    """A counter's value by attribute set (sums, or a histogram's counts)."""
    values: dict[frozenset[tuple[str, object]], float] = {}
    for point in _points(reader, name):
        key = frozenset((point.attributes or {}).items())
        values[key] = point.count if isinstance(point, HistogramDataPoint) else point.value
    return values


def sums(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, object]], float]:
    """A histogram's sum by attribute set."""
    return {
        frozenset((point.attributes or {}).items()): point.sum
        for point in _points(reader, name)
        if isinstance(point, HistogramDataPoint)
    }


def key(attributes: Mapping[str, object]) -> frozenset[tuple[str, object]]:
    return frozenset(attributes.items())

"""The library's own telemetry, through trio_smith.otel into the SDK's in-memory exporters."""

from __future__ import annotations

import uuid

import pytest
import trio
import trio.testing
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from trio_smith import ChildSpec, Supervisor, otel
from trio_smith.resilience import CircuitBreaker
from trio_smith.routing import AgentDied, Registry, Router, Task

from .helpers import attributes, counts, finished, key


async def coder(task: Task) -> str:
    if task.payload == "bad":
        raise ValueError("cannot parse")
    return f"wrote {task.payload}"


async def test_a_routed_request_is_one_client_span(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    reader: InMemoryMetricReader,
    tracer_provider: TracerProvider,
) -> None:
    registry = Registry()
    router = Router(registry, {"code": "coder"})
    async with Supervisor([registry.agent("c1", coder, role="coder")]) as sup:
        task = Task("code", "a parser", correlation_id=uuid.UUID(int=7))
        with tracer_provider.get_tracer("test").start_as_current_span("handling") as outer:
            assert await router.request(task) == "wrote a parser"
        await sup.shutdown()
    [span] = [span for span in finished(spans) if span.name.startswith("request")]
    assert span.name == "request coder"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    found = attributes(span)
    assert found["messaging.system"] == "trio_smith"
    assert found["messaging.message.id"] == str(task.id)
    assert found["trio_smith.role"] == "coder"
    assert found["trio_smith.agent"] == "c1"
    assert found["trio_smith.task.type"] == "code"
    assert found["messaging.message.conversation_id"] == str(uuid.UUID(int=7))
    [(labels, count)] = counts(reader, "trio_smith.router.request.duration").items()
    assert count == 1
    assert dict(labels)["trio_smith.role"] == "coder"


async def test_a_crashing_agent_fails_the_span_and_counts_a_failure_and_a_restart(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    spans: InMemorySpanExporter,
    reader: InMemoryMetricReader,
) -> None:
    registry = Registry()
    router = Router(registry, {"code": "coder"})
    async with Supervisor([registry.agent("c1", coder, role="coder")]) as sup:
        with pytest.raises(AgentDied):
            await router.request(Task("code", "bad"))
        assert await router.request(Task("code", "good")) == "wrote good"
        await sup.shutdown()
    failed, completed = [span for span in finished(spans) if span.name.startswith("request")]
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes(failed)["error.type"] == "AgentDied"
    assert completed.status.status_code is StatusCode.UNSET
    [failures] = counts(reader, "trio_smith.child.failures").items()
    assert dict(failures[0])["trio_smith.child.id"] == "c1"
    assert dict(failures[0])["error.type"] == "ValueError"
    assert failures[1] == 1
    [(labels, restarts)] = counts(reader, "trio_smith.child.restarts").items()
    assert dict(labels)["trio_smith.child.id"] == "c1"
    assert restarts == 1


async def test_child_incarnations_are_spans_when_enabled(
    autojump_clock: trio.testing.MockClock,
    with_child_spans: otel.Instrumentation,
    spans: InMemorySpanExporter,
) -> None:
    runs = 0

    async def worker() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("first run")
        await trio.sleep_forever()

    async with Supervisor([ChildSpec("worker", worker)], name="root") as sup:
        await trio.testing.wait_all_tasks_blocked()
        await sup.shutdown()
    first, second = [span for span in finished(spans) if span.name.startswith("child")]
    assert first.kind is SpanKind.INTERNAL
    assert first.status.status_code is StatusCode.ERROR
    assert attributes(first)["error.type"] == "ValueError"
    assert attributes(first)["trio_smith.child.id"] == "worker"
    assert second.status.status_code is StatusCode.UNSET
    incarnations = [attributes(span)["trio_smith.child.incarnation"] for span in (first, second)]
    assert incarnations == sorted(incarnations, key=int)  # type: ignore[arg-type]
    assert incarnations[0] != incarnations[1]


async def test_breaker_calls_are_counted_by_outcome_with_their_durations(
    autojump_clock: trio.testing.MockClock,
    instrumented: otel.Instrumentation,
    reader: InMemoryMetricReader,
) -> None:
    breaker = CircuitBreaker("db")

    async def ok() -> None:
        await trio.sleep(0.25)

    async def bad() -> None:
        await trio.sleep(0.5)
        raise OSError("down")

    await breaker.call(ok)
    await breaker.call(ok)
    with pytest.raises(OSError, match="down"):
        await breaker.call(bad)

    def db(outcome: str) -> frozenset[tuple[str, object]]:
        return key({"trio_smith.breaker": "db", "trio_smith.breaker.outcome": outcome})

    assert counts(reader, "trio_smith.breaker.calls") == {db("success"): 2, db("failure"): 1}
    assert counts(reader, "trio_smith.breaker.call.duration") == {
        db("success"): 2,
        db("failure"): 1,
    }

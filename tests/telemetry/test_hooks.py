"""attach, detach, handlers, execute, attached and span (docs/design.md rule 44)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import _telemetry, telemetry

from .conftest import Seen

A = ("app", "a")
B = ("app", "b")


def enabled() -> bool:
    """The flag every emission point reads (a call: mypy would narrow the attribute)."""
    return _telemetry.enabled


def test_attach_detach_and_handlers(seen: Seen) -> None:
    assert telemetry.handlers() == []
    assert not telemetry.attached(A)
    assert not enabled()
    telemetry.attach("one", [A, B, A], seen)
    telemetry.attach("two", iter([B]), seen)
    assert telemetry.handlers() == [("one", (A, B)), ("two", (B,))]
    assert telemetry.attached(A)
    assert telemetry.attached(B)
    assert not telemetry.attached(("app",))
    assert enabled()
    telemetry.execute(B, {"n": 1.0}, {"k": "v"})
    assert seen.events == [(B, {"n": 1.0}, {"k": "v"})] * 2
    assert telemetry.detach("one") is True
    assert telemetry.detach("one") is False
    assert not telemetry.attached(A)
    assert telemetry.handlers() == [("two", (B,))]
    telemetry.execute(A, {}, {})  # nobody listens: nothing happens
    assert len(seen.events) == 2
    assert telemetry.detach("two") is True
    assert not enabled()


def test_handlers_are_called_in_attach_order() -> None:
    order: list[str] = []

    def appends(label: str) -> telemetry.Handler:
        return lambda name, measurements, metadata: order.append(label)

    for label in ("c", "a", "b"):
        telemetry.attach(label, [A], appends(label))
    telemetry.execute(A, {}, {})
    assert order == ["c", "a", "b"]


def test_handlers_is_a_snapshot(seen: Seen) -> None:
    telemetry.attach("one", [A], seen)
    snapshot = telemetry.handlers()
    telemetry.detach("one")
    assert snapshot == [("one", (A,))]


def _noop(name: tuple[str, ...], m: Mapping[str, float], d: Mapping[str, object]) -> None:
    pass


def refused(kind: type[Exception], handler_id: Any, names: Any, handler: Any = _noop) -> str:
    """The message of the ``kind`` error that ``attach(handler_id, names, handler)`` raises."""
    with pytest.raises(kind) as info:
        telemetry.attach(handler_id, names, handler)
    return str(info.value)


def test_bad_input_is_refused_with_exact_messages() -> None:
    telemetry.attach("taken", [A], _noop)
    assert refused(ValueError, "taken", [B]) == (
        "a telemetry handler with id 'taken' is already attached"
    )
    assert refused(TypeError, 3, [A]) == "handler_id must be a str, got 3"
    assert refused(ValueError, "", [A]) == "handler_id must not be empty"
    for bad in [(), ("app", ""), ("app", 1), ["app", "a"], "app"]:
        assert refused(ValueError, "h", [bad]) == (
            f"an event name must be a non-empty tuple of non-empty strings, got {bad!r}"
        )
    assert refused(TypeError, "h", A) == (
        "event_names must be an iterable of event names, got ('app', 'a')"
    )
    assert refused(TypeError, "h", "app.a") == (
        "event_names must be an iterable of event names, got 'app.a'"
    )
    assert refused(TypeError, "h", 5) == "event_names must be an iterable of event names, got 5"
    assert refused(ValueError, "h", []) == (
        "handler 'h' must be attached to at least one event name"
    )
    assert refused(TypeError, "h", [A], "not a function") == (
        "handler must be callable, got 'not a function'"
    )
    # Nothing of the refused ones was attached.
    assert telemetry.handlers() == [("taken", (A,))]


def test_a_raising_handler_is_detached_and_logged_once(
    seen: Seen, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def bad(name: tuple[str, ...], m: Mapping[str, float], d: Mapping[str, object]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("broken handler")

    telemetry.attach("bad", [A], bad)
    telemetry.attach("good", [A], seen)
    with caplog.at_level(logging.ERROR, logger="trio_smith.telemetry"):
        for _ in range(3):
            telemetry.execute(A, {"n": 1}, {})  # never raises
    assert calls == 1
    assert len(seen.events) == 3  # the next handler ran each time
    assert telemetry.handlers() == [("good", (A,))]
    records = [r for r in caplog.records if r.name == "trio_smith.telemetry"]
    assert len(records) == 1
    record = records[0]
    assert record.getMessage() == "telemetry handler 'bad' failed on event app.a and was detached"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert record.__dict__["handler_id"] == "bad"
    assert record.__dict__["telemetry_event"] == ["app", "a"]


def test_a_handler_may_detach_itself_while_called(seen: Seen) -> None:
    def once(name: tuple[str, ...], m: Mapping[str, float], d: Mapping[str, object]) -> None:
        telemetry.detach("once")

    telemetry.attach("once", [A], once)
    telemetry.attach("seen", [A], seen)
    telemetry.execute(A, {}, {})
    telemetry.execute(A, {}, {})
    assert len(seen.events) == 2
    assert telemetry.handlers() == [("seen", (A,))]


SPAN = ("app", "work")
SPAN_EVENTS = [(*SPAN, "start"), (*SPAN, "stop"), (*SPAN, "exception")]


async def test_span_start_and_stop(seen: Seen, autojump_clock: trio.testing.MockClock) -> None:
    telemetry.attach("span", SPAN_EVENTS, seen)
    with telemetry.span(SPAN, {"job": "j"}) as extra:
        await trio.sleep(2.5)
        extra["result"] = 3
    assert [n for n, _, _ in seen.events] == [(*SPAN, "start"), (*SPAN, "stop")]
    (start, start_meta), (stop, stop_meta) = seen.events[0][1:], seen.events[1][1:]
    assert set(start) == {"system_time"}
    assert start["system_time"] > 1e9
    assert start_meta == {"job": "j"}
    assert stop == {"duration": 2.5}  # the run's clock (MockClock here)
    assert stop_meta == {"job": "j", "result": 3}


async def test_span_exception(seen: Seen, autojump_clock: trio.testing.MockClock) -> None:
    telemetry.attach("span", SPAN_EVENTS, seen)

    async def fails() -> None:
        with telemetry.span(SPAN, {"job": "j"}):
            await trio.sleep(1)
            raise KeyError("k")

    with pytest.raises(KeyError):
        await fails()
    name, measurements, metadata = seen.events[-1]
    assert name == (*SPAN, "exception")
    assert measurements == {"duration": 1.0}
    assert metadata == {"job": "j", "kind": "error", "reason": "KeyError: 'k'"}
    with trio.move_on_after(1), telemetry.span(SPAN, {}):
        await trio.sleep(5)
    assert seen.events[-1][2] == {
        "kind": "cancelled",
        "reason": "Cancelled: cancelled due to deadline",
    }


def test_span_outside_trio_and_with_nothing_attached(seen: Seen) -> None:
    with telemetry.span(SPAN, {}) as extra:  # nothing attached: nothing executed
        extra["x"] = 1
    assert seen.events == []
    telemetry.attach("stop-only", [(*SPAN, "stop")], seen)
    with telemetry.span(SPAN, {"a": 1}):
        pass
    assert [n for n, _, _ in seen.events] == [(*SPAN, "stop")]
    assert seen.events[0][1]["duration"] >= 0  # perf_counter outside a trio run
    with pytest.raises(ValueError, match=r"^an event name must be a non-empty tuple"):  # noqa: SIM117
        with telemetry.span(("app", ""), {}):
            pass

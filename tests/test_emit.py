"""The one way events are published and errors described (trio_smith/_emit.py)."""

from __future__ import annotations

import logging

import pytest
import trio

import trio_smith
from trio_smith._emit import Emitter, check_publisher, describe_error, public_name
from trio_smith.events import BusClosed, EventBus, SystemEvent
from trio_smith.routing import AgentDied

from .publisher import Recorder


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ValueError, "ValueError"),
        (trio_smith.ChildHung, "trio_smith.ChildHung"),
        (AgentDied, "trio_smith.routing.AgentDied"),
        (BusClosed, "trio_smith.events.BusClosed"),
        (trio.Cancelled, "trio.Cancelled"),
        (trio.WouldBlock, "trio.WouldBlock"),
    ],
)
def test_an_error_type_is_named_as_users_import_it(kind: type[BaseException], name: str) -> None:
    assert public_name(kind) == name
    # ... and that name imports the very class.
    module, _, attr = name.rpartition(".")
    if module:
        assert getattr(__import__(module, fromlist=[attr]), attr) is kind


def test_a_class_nobody_exports_keeps_its_full_path() -> None:
    class Local(Exception):
        pass

    assert public_name(Local) == f"{__name__}.{Local.__qualname__}"


def test_an_error_is_described_with_its_innermost_frames() -> None:
    def deep(n: int) -> None:
        if n == 0:
            raise KeyError("x" * 3000)
        deep(n - 1)

    with pytest.raises(KeyError) as caught:
        deep(20)
    described = describe_error(caught.value)
    assert described["error_type"] == "KeyError"
    assert described["error"] == repr("x" * 3000)[:2000] + "..."
    frames = str(described["traceback"]).splitlines()
    assert len(frames) == 8
    assert all(frame.startswith(__file__ + ":") for frame in frames)
    assert all(frame.endswith(" in deep") for frame in frames)
    assert describe_error(None) == {"error_type": None, "error": None, "traceback": None}
    assert describe_error(ValueError("never raised"))["traceback"] is None


def test_a_message_with_a_lone_surrogate_is_described_storably() -> None:
    assert describe_error(ValueError("bad \ud800"))["error"] == "bad \\ud800"


def test_a_publisher_without_publish_nowait_is_refused() -> None:
    assert check_publisher(None) is None
    with pytest.raises(TypeError) as caught:
        check_publisher(42)
    assert str(caught.value) == "events must have a publish_nowait method, got 42"


async def test_refused_events_are_counted_and_logged_at_1_10_100(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter = Emitter(Recorder(refuse=True), "thing 't'")
    for _ in range(150):
        emitter.emit(SystemEvent.STARTED, "t", {})
    assert emitter.dropped == 150
    assert [r.dropped for r in caplog.records if r.levelno == logging.WARNING] == [1, 10, 100]  # type: ignore[attr-defined]


async def test_a_closed_bus_drops_without_raising() -> None:
    async with EventBus() as bus:
        pass
    emitter = Emitter(bus, "thing 't'")
    event = emitter.emit(SystemEvent.STARTED, "t", {"a": 1})
    assert event is not None
    assert event.payload == {"a": 1}
    assert emitter.dropped == 1


def test_without_a_publisher_nothing_is_built() -> None:
    assert Emitter(None, "x").emit(SystemEvent.STARTED, "t", {}) is None

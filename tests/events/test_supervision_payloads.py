"""Every supervision event's payload is exactly what docs/events.md lists.

The table in docs/events.md ("Supervision events") is compared with the
payload types the supervisors build (one TypedDict per event type), and a
supervisor driven through every kind of event publishes only payloads of
those shapes.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import ChildNotFound, ChildSpec, Heartbeat, RestartIntensityExceeded, Supervisor
from trio_smith._supervision._report import PAYLOADS
from trio_smith.events import SupervisionEvent

from ..publisher import Recorder

DOCS = pathlib.Path(__file__).parent.parent.parent / "docs" / "events.md"


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """Each event type's fields, always and sometimes, as the docs' table lists them."""
    text = DOCS.read_text()
    section = text[text.index("## Supervision events") :]
    table = {}
    for line in section.splitlines():
        match = re.match(r"\| `supervision\.(\w+)` \|([^|]*)\|([^|]*)\|$", line)
        if match:
            kind, always, sometimes = match.groups()
            table[kind] = (
                set(re.findall(r"`(\w+)`", always)),
                set(re.findall(r"`(\w+)`", sometimes)),
            )
    return table


def test_the_docs_list_every_supervision_event_with_exactly_its_payload_fields() -> None:
    table = documented()
    assert set(table) == {kind.name for kind in PAYLOADS}  # type: ignore[attr-defined]
    for kind, payload in PAYLOADS.items():
        always, sometimes = table[kind.name]  # type: ignore[attr-defined]
        assert (always, sometimes) == (
            set(payload.__required_keys__),  # type: ignore[attr-defined]
            set(payload.__optional_keys__),  # type: ignore[attr-defined]
        ), kind


def test_the_docs_table_parser_sees_a_missing_field() -> None:
    # The comparison above can fail: a row without a field is read without it.
    row = "| `supervision.child_started` | `supervisor`, `child_id` | |"
    match = re.match(r"\| `supervision\.(\w+)` \|([^|]*)\|([^|]*)\|$", row)
    assert match is not None
    assert set(re.findall(r"`(\w+)`", match.group(2))) != set(
        PAYLOADS[SupervisionEvent.CHILD_STARTED].__required_keys__  # type: ignore[attr-defined]
    )


def conforms(kind: Any, payload: dict[str, object]) -> bool:
    shape: Any = PAYLOADS[kind]
    keys = set(payload)
    return bool(
        shape.__required_keys__ <= keys <= shape.__required_keys__ | shape.__optional_keys__
    )


async def test_every_event_a_supervisor_publishes_has_its_documented_shape(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    crashes = 0

    async def crash_twice(task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        await trio.sleep(1)
        crashes += 1
        if crashes <= 2:
            raise ValueError("boom")
        await trio.sleep_forever()

    async def hangs() -> None:
        await trio.sleep_forever()

    async def returns() -> None:
        await trio.sleep(1)

    async def ignored(task_status: trio.TaskStatus[None]) -> None:
        return

    async def messy_stop() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise KeyError("in cleanup")

    from trio_smith import Restart

    children = [
        ChildSpec("c", crash_twice),
        ChildSpec("h", hangs, heartbeat=Heartbeat(1.0), restart=Restart.TEMPORARY),
        ChildSpec("r", returns, restart=Restart.TRANSIENT),
        ChildSpec("i", ignored),
        ChildSpec("m", messy_stop, shutdown=0),
    ]
    async with Supervisor(children, name="root", events=rec, max_restarts=10) as sup:
        await trio.sleep(20)
        await sup.shutdown()

    async def fails() -> None:
        await trio.sleep(1)
        raise OSError("disk")

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor([ChildSpec("f", fails)], name="s", events=rec, max_restarts=0):
            await trio.sleep_forever()

    seen = {event.type for event in rec.events}
    # Output events come from programs (tests/process checks their shape).
    assert seen == set(PAYLOADS) - {SupervisionEvent.CHILD_OUTPUT}
    for event in rec.events:
        assert conforms(event.type, event.payload), event
    failed = rec.of(SupervisionEvent.CHILD_FAILED)
    hung = [e for e in failed if e.payload.get("reason") == "hung"]
    assert len(hung) == 1
    assert math.isfinite(hung[0].payload["phi"])
    stopped = {e.payload["child_id"]: e.payload for e in rec.of(SupervisionEvent.CHILD_STOPPED)}
    assert stopped["i"]["reason"] == "ignored"
    assert stopped["r"]["reason"] == "normal"
    assert stopped["m"]["reason"] == "shutdown"
    assert stopped["m"]["error_type"] == "KeyError"


async def test_child_failed_describes_the_error_by_public_name_bounded_message_and_frames(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # What a trace shows of a crash: the error's public type (never a
    # private module), its message (at most 2,000 characters) and its
    # innermost 8 frames, ``file:line in function`` (docs/events.md).
    rec = Recorder()

    def deep(n: int) -> None:
        if n == 0:
            raise ChildNotFound("x" * 3000)
        deep(n - 1)

    async def fails_deep_down() -> None:
        await trio.sleep(1)
        deep(12)

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor([ChildSpec("d", fails_deep_down)], events=rec, max_restarts=0):
            await trio.sleep_forever()
    (failed,) = rec.of(SupervisionEvent.CHILD_FAILED)
    assert failed.payload["error_type"] == "trio_smith.ChildNotFound"
    assert failed.payload["error"] == ("no child with id '" + "x" * 3000)[:2000] + "..."
    frames = failed.payload["traceback"].splitlines()
    assert len(frames) == 8
    assert all(frame.startswith(__file__ + ":") for frame in frames)
    assert all(frame.endswith(" in deep") for frame in frames)
    assert conforms(failed.type, failed.payload)

"""ContextFilter and add_context: the cause and the child on every log record (rule 44)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import structlog
import trio
import trio.testing

from trio_smith import ChildSpec, Restart, Supervisor, current_child
from trio_smith.events import Event, SystemEvent, caused_by
from trio_smith.telemetry import ContextFilter, add_context

FIELDS = ("correlation_id", "causation_id", "event_id", "child_id", "supervisor", "incarnation")


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
    record.__dict__.update(extra)
    return record


def test_filter_outside_any_child_or_cause() -> None:
    record = _record()
    assert ContextFilter().filter(record) is True
    assert {field: record.__dict__[field] for field in FIELDS} == dict.fromkeys(FIELDS)


def test_filter_with_a_cause() -> None:
    root = Event.new(SystemEvent.STARTED, source="t")
    with caused_by(root):
        child = Event.new(SystemEvent.STOPPED, source="t")
    with caused_by(child):
        record = _record()
        ContextFilter().filter(record)
    assert record.__dict__["correlation_id"] == str(root.id)
    assert record.__dict__["causation_id"] == str(root.id)
    assert record.__dict__["event_id"] == str(child.id)
    with caused_by(root):
        record = _record()
        ContextFilter().filter(record)
    assert (record.__dict__["correlation_id"], record.__dict__["causation_id"]) == (
        str(root.id),
        None,
    )


def test_filter_keeps_what_the_record_has() -> None:
    root = Event.new(SystemEvent.STARTED, source="t")
    with caused_by(root):
        record = _record(correlation_id="mine", child_id="c9")
        ContextFilter().filter(record)
    # A group the record has a field of is completed with None, never mixed.
    assert record.__dict__["correlation_id"] == "mine"
    assert record.__dict__["event_id"] is None
    assert record.__dict__["child_id"] == "c9"
    assert record.__dict__["supervisor"] is None


async def test_filter_inside_a_child(autojump_clock: trio.testing.MockClock) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.telemetry.child")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    cause = Event.new(SystemEvent.STARTED, source="t")

    async def child() -> None:
        with caused_by(cause):
            logger.info("working")

    try:
        async with Supervisor(
            [ChildSpec("worker", child, restart=Restart.TEMPORARY)], name="top"
        ) as sup:
            await trio.sleep(1)
            await sup.shutdown()
    finally:
        logger.removeHandler(handler)
    (record,) = records
    assert record.__dict__["child_id"] == "worker"
    assert record.__dict__["supervisor"] == "top"
    assert record.__dict__["incarnation"] == 1
    assert record.__dict__["event_id"] == str(cause.id)
    json.dumps({field: record.__dict__[field] for field in FIELDS})


async def test_library_records_keep_their_fields_and_are_json_friendly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every field the library puts in a record's ``extra`` is one json.dumps takes."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("trio_smith")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    async def crash() -> None:
        await trio.sleep(1)
        raise ValueError("boom")

    try:
        async with Supervisor([ChildSpec("c", crash)], name="top", max_restarts=1):
            await trio.sleep_forever()
    except Exception:
        pass
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    standard = set(vars(logging.LogRecord("x", 0, "", 0, "", None, None))) | {"message"}
    assert records
    for record in records:
        extra = {k: v for k, v in vars(record).items() if k not in standard}
        json.dumps(extra)  # raises on an object JSON cannot take
        assert record.__dict__["supervisor"] == "top"
    failed = [r for r in records if r.getMessage() == "child 'c' of supervisor 'top' failed"]
    assert failed[0].__dict__["child_id"] == "c"
    assert failed[0].__dict__["incarnation"] == 1
    gave_up = [r for r in records if "gave up" in r.getMessage()]
    assert gave_up[0].__dict__["child_id"] == "c"


def test_add_context_outside_and_with_a_cause() -> None:
    assert add_context(None, "info", {"event": "x"}) == {"event": "x", **dict.fromkeys(FIELDS)}
    cause = Event.new(SystemEvent.STARTED, source="t")
    with caused_by(cause):
        found = add_context(None, "info", {"event": "x", "child_id": "mine"})
    assert found["event_id"] == str(cause.id)
    assert found["child_id"] == "mine"
    assert found["supervisor"] is None


async def test_add_context_in_a_structlog_chain(autojump_clock: trio.testing.MockClock) -> None:
    out = io.StringIO()
    log: Any = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[add_context, structlog.processors.JSONRenderer()],
    )
    cause = Event.new(SystemEvent.STARTED, source="t")

    async def child() -> None:
        assert current_child().id == "w"
        with caused_by(cause):
            log.info("working", job=3)

    async with Supervisor([ChildSpec("w", child, restart=Restart.TEMPORARY)], name="s") as sup:
        await trio.sleep(1)
        await sup.shutdown()
    log.info("outside")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {
        "event": "working",
        "job": 3,
        "correlation_id": str(cause.id),
        "causation_id": None,
        "event_id": str(cause.id),
        "child_id": "w",
        "supervisor": "s",
        "incarnation": 1,
    }
    assert lines[1] == {"event": "outside", **dict.fromkeys(FIELDS)}

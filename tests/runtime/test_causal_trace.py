"""A crash stays in the causal chain of the work it cut short (docs/design.md rule 40).

A child's ``supervision.child_failed`` is caused by the event whose work it
was doing (the innermost ``caused_by`` block its error escaped, else the
event a subscription or a mailbox was delivering in its task), its
``child_restarted`` by the failure and its next ``child_started`` by the
restart; so ``trio-smith events trace`` of a request shows the request, the
crash, the restart and the retry.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any
from uuid import UUID

import pytest
import trio
import trio.testing

from trio_smith import ChildSpec, RestartIntensityExceeded, Supervisor
from trio_smith._event import failure_cause
from trio_smith.cli import main
from trio_smith.events import (
    AgentEvent,
    Event,
    EventBus,
    EventFilter,
    SQLiteEventStore,
    SupervisionEvent,
    caused_by,
    current_cause,
    uuid7,
)
from trio_smith.routing import AgentDied, Registry, Router, RoutingEvent, Task

from ..publisher import Recorder


def work(name: str = "job", cause: Event | None = None) -> Event:
    """An event standing for some work a child does."""
    return Event.new(AgentEvent.MESSAGE_RECEIVED, source=f"work/{name}", cause=cause)


# ---------------------------------------------------------------- failure_cause


def test_an_error_escaping_caused_by_keeps_its_cause_after_the_block() -> None:
    job = work()
    with pytest.raises(ValueError, match="bad input") as info, caused_by(job):
        raise ValueError("bad input")
    assert current_cause() is None  # the block reset it, as before
    assert failure_cause(info.value) is job


def test_the_innermost_block_an_error_escapes_is_its_cause() -> None:
    outer, inner = work("outer"), work("inner")
    with pytest.raises(KeyError) as info, caused_by(outer), caused_by(inner):
        raise KeyError("k")
    assert failure_cause(info.value) is inner
    # caused_by(None) starts new chains: an error from it has no cause,
    # even inside another block.
    with pytest.raises(KeyError) as none, caused_by(outer), caused_by(None):
        raise KeyError("k")
    assert failure_cause(none.value) is None


def test_an_error_that_escaped_no_block_takes_the_current_cause() -> None:
    job = work()
    error = OSError("disk")
    assert failure_cause(error) is None
    with caused_by(job):
        assert failure_cause(error) is job


def test_a_group_s_cause_is_its_first_exception_that_escaped_a_block() -> None:
    first, second = work("first"), work("second")
    plain = RuntimeError("no block")
    errors: list[Exception] = [plain]
    for cause, message in ((first, "one"), (second, "two")):
        try:
            with caused_by(cause):
                raise ValueError(message)
        except ValueError as exc:
            errors.append(exc)
    group = ExceptionGroup("several", [ExceptionGroup("nested", errors[:2]), errors[2]])
    assert failure_cause(group) is first
    # A group escaping a block gives its cause to the exceptions that had none
    # (except* hands on new groups, never the one that escaped).
    outer = work("outer")
    lone = LookupError("lone")
    with pytest.raises(ExceptionGroup) as info, caused_by(outer):
        raise ExceptionGroup("g", [lone, errors[2]])
    assert failure_cause(lone) is outer
    assert failure_cause(errors[2]) is second
    assert failure_cause(info.value) is outer
    matched, _ = BaseExceptionGroup("mixed", [lone, KeyboardInterrupt()]).split(Exception)
    assert matched is not None
    assert failure_cause(matched) is outer


# ---------------------------------------------------------------- a supervisor's events


def chain_of(rec: Recorder, correlation: UUID | None) -> list[tuple[str, str | None]]:
    """The events of one correlation: type name and child id."""
    return [
        (e.type.name, e.payload.get("child_id"))
        for e in rec.events
        if e.correlation_id == correlation
    ]


async def test_a_child_failing_in_caused_by_publishes_its_crash_in_that_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    root = work("request")
    job = work("step", cause=root)
    crashed = False

    async def handles_a_job(task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashed
        task_status.started()
        await trio.sleep(1)
        if not crashed:
            crashed = True
            with caused_by(job):
                raise ValueError("bad job")
        await trio.sleep_forever()

    async with Supervisor([ChildSpec("w", handles_a_job)], name="app", events=rec) as sup:
        await trio.sleep(2)
        await sup.shutdown()
    failed, restarted, started = (
        rec.of(SupervisionEvent.CHILD_FAILED)[0],
        rec.of(SupervisionEvent.CHILD_RESTARTED)[0],
        rec.of(SupervisionEvent.CHILD_STARTED)[1],
    )
    assert (failed.correlation_id, failed.causation_id) == (root.id, job.id)
    assert (restarted.correlation_id, restarted.causation_id) == (root.id, failed.id)
    assert (started.correlation_id, started.causation_id) == (root.id, restarted.id)
    assert chain_of(rec, root.id) == [
        ("child_failed", "w"),
        ("child_restarted", "w"),
        ("child_started", "w"),
    ]
    # The error is described as before: public type, message, innermost frames.
    assert (failed.payload["error_type"], failed.payload["error"]) == ("ValueError", "bad job")
    assert failed.payload["traceback"].splitlines()[-1].endswith(" in handles_a_job")


async def test_a_child_failing_on_an_event_it_received_publishes_its_crash_in_its_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    bus_events: list[Event] = []

    async def consumer(bus: EventBus) -> None:
        async with bus.subscribe(EventFilter(categories="agent")) as events:
            async for event in events:  # the subscription sets the current cause
                bus_events.append(event)
                raise RuntimeError(f"cannot handle {event.source}")

    poison = work("poison")
    async with EventBus() as bus:
        with pytest.raises(RestartIntensityExceeded):
            async with Supervisor(
                [ChildSpec("c", consumer, args=(bus,))], name="app", events=rec, max_restarts=0
            ):
                await trio.testing.wait_all_tasks_blocked()
                await bus.publish(poison)
                await trio.sleep_forever()
    assert bus_events == [poison]
    gave_up = rec.of(SupervisionEvent.SUPERVISOR_GAVE_UP)[0]
    assert chain_of(rec, poison.id) == [("child_failed", "c"), ("supervisor_gave_up", "c")]
    assert gave_up.causation_id == rec.of(SupervisionEvent.CHILD_FAILED)[0].id


async def test_a_failure_in_a_task_of_the_child_takes_that_task_s_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    job = work()

    async def runs_tasks() -> None:
        async def one_job() -> None:
            with caused_by(job):
                await trio.sleep(1)
                raise ValueError("in a task")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one_job)
            nursery.start_soon(trio.sleep_forever)

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor([ChildSpec("n", runs_tasks)], events=rec, max_restarts=0):
            await trio.sleep_forever()
    failed = rec.of(SupervisionEvent.CHILD_FAILED)[0]
    assert failed.payload["error_type"] == "ExceptionGroup"
    assert (failed.correlation_id, failed.causation_id) == (job.id, job.id)


async def test_a_failure_outside_any_work_is_a_root_as_before(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def crashes() -> None:
        await trio.sleep(1)
        raise ValueError("no work")

    with pytest.raises(RestartIntensityExceeded):
        async with Supervisor([ChildSpec("x", crashes)], events=rec, max_restarts=0):
            await trio.sleep_forever()
    failed = rec.of(SupervisionEvent.CHILD_FAILED)[0]
    assert (failed.correlation_id, failed.causation_id) == (failed.id, None)


# ---------------------------------------------------------------- end to end: trace a request


async def _serve_a_request_that_crashes_its_agent(db: pathlib.Path, correlation: UUID) -> None:
    """A router sends a task to an agent that crashes on it; the caller retries."""
    handled: list[str] = []

    async def coder(task: Task) -> str:
        handled.append(task.payload)
        if len(handled) == 1:
            raise ValueError("cannot parse")
        return f"wrote {task.payload}"

    async with SQLiteEventStore(db) as store, EventBus(store) as bus:
        registry = Registry(events=bus)
        router = Router(registry, {"code": "coder"}, name="hub")
        async with Supervisor(
            [registry.agent("coder-1", coder, role="coder")], name="app", events=bus
        ) as sup:
            with pytest.raises(AgentDied):
                await router.request(Task("code", "a parser", correlation_id=correlation))
            retried = Task("code", "a parser", correlation_id=correlation)
            assert await router.request(retried) == "wrote a parser"
            await sup.shutdown()
    assert handled == ["a parser", "a parser"]


def _shape(node: dict[str, Any]) -> tuple[str, list[Any]]:
    """A node of ``trace --json`` as (type, children)."""
    return node["event"]["type"], [_shape(child) for child in node["children"]]


def test_trace_of_a_request_shows_the_crash_the_restart_and_the_retry(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "trace.db"
    correlation = uuid7()
    trio.run(
        _serve_a_request_that_crashes_its_agent,
        db,
        correlation,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    capsys.readouterr()
    assert main(["events", "trace", str(db), str(correlation), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    tree = json.loads(out)
    assert (tree["correlation_id"], tree["count"]) == (str(correlation), 11)
    assert [_shape(root) for root in tree["roots"]] == [
        (
            "routing.task_routed",
            [
                (
                    "agent.message_received",
                    [
                        ("agent.failed", []),
                        (
                            "supervision.child_failed",
                            [
                                (
                                    "supervision.child_restarted",
                                    [("supervision.child_started", [])],
                                )
                            ],
                        ),
                    ],
                ),
                ("routing.task_failed", []),
            ],
        ),
        (
            "routing.task_routed",
            [
                ("agent.message_received", [("agent.message_processed", [])]),
                ("routing.task_completed", []),
            ],
        ),
    ]
    failed = tree["roots"][0]["children"][0]["children"][1]["event"]
    assert failed["payload"]["child_id"] == "coder-1"
    assert failed["payload"]["error_type"] == "ValueError"
    assert failed["payload"]["error"] == "cannot parse"
    assert failed["payload"]["traceback"].splitlines()[-1].endswith(" in coder")
    # The drawing lists the same events, one line each, under the same root.
    assert main(["events", "trace", str(db), str(correlation)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"correlation {correlation}: 11 events"
    # Each line up to its event type (the tree's lines, then the type).
    drawn = [re.sub(r"^([│├└─ ]*[\w.]+).*", r"\1", line) for line in lines[1:]]
    assert drawn == [
        "routing.task_routed",
        "├── agent.message_received",
        "│   ├── agent.failed",
        "│   └── supervision.child_failed",
        "│       └── supervision.child_restarted",
        "│           └── supervision.child_started",
        "└── routing.task_failed",
        "routing.task_routed",
        "├── agent.message_received",
        "│   └── agent.message_processed",
        "└── routing.task_completed",
    ]
    assert RoutingEvent.TASK_ROUTED.wire == "routing.task_routed"

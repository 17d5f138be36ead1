"""The registry: names, mailboxes, send/request/reply, and agents that die."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import (
    Backoff,
    ChildHung,
    ChildSpec,
    Heartbeat,
    IllegalStateTransition,
    Restart,
    Supervisor,
    current_child,
)
from trio_smith._event import failure_cause
from trio_smith.events import AgentEvent, Event, caused_by, current_cause
from trio_smith.resilience import CallNotPermitted, CircuitBreaker, CircuitState
from trio_smith.routing import (
    AgentDied,
    AgentNameTaken,
    AgentNotFound,
    AgentStatus,
    AgentUnavailable,
    Envelope,
    Registry,
    RequestTimeout,
)

from ..publisher import Recorder


async def echo(message: object) -> object:
    return message


def crash_on(bad: object) -> Any:
    async def handler(message: object) -> object:
        if message == bad:
            raise ValueError(f"cannot handle {message!r}")
        return message

    return handler


# ---------------------------------------------------------------- names


async def test_a_name_is_held_for_the_block_and_freed_after() -> None:
    registry = Registry()
    with registry.register("a", role="worker", mailbox_size=3) as mailbox:
        info = registry.lookup("a")
        assert (info.name, info.role, info.status, info.mailbox_size) == (
            "a",
            "worker",
            AgentStatus.RUNNING,
            3,
        )
        assert "a" in registry
        assert len(registry) == 1
        assert registry.names() == ["a"]
        assert registry.names("worker") == ["a"]
        assert registry.roles() == ["worker"]
        assert (mailbox.name, mailbox.role) == ("a", "worker")
        with pytest.raises(AgentNameTaken) as taken, registry.register("a"):
            pass  # pragma: no cover
        assert str(taken.value) == "the agent name 'a' is taken by a running agent"
        assert registry.lookup("a").status is AgentStatus.RUNNING  # unharmed
    # Not supervised: nothing can restart it, so the name is free at once.
    with pytest.raises(AgentNotFound) as missing:
        registry.lookup("a")
    assert str(missing.value) == "no agent named 'a'"
    assert registry.names() == []
    assert registry.roles() == []
    with registry.register("a"):
        assert registry.lookup("a").role == "a"  # the role defaults to the name


async def test_role_defaults_and_order() -> None:
    registry = Registry()
    with registry.register("b", role="r"), registry.register("a", role="r"):
        assert registry.names("r") == ["b", "a"]
        assert registry.names("other") == []


async def test_send_and_request_to_a_hand_written_agent() -> None:
    registry = Registry()
    seen: list[object] = []

    async def agent(task_status: trio.TaskStatus[None]) -> None:
        with registry.register("calc") as mailbox:
            task_status.started()
            async for envelope in mailbox:
                seen.append(envelope.message)
                if envelope.message == "fail":
                    envelope.fail(KeyError("nope"))
                elif envelope.expects_reply:
                    assert isinstance(envelope.message, int)
                    envelope.reply(envelope.message * 2)
                else:
                    envelope.reply()

    async with trio.open_nursery() as nursery:
        await nursery.start(agent)
        await registry.send("calc", "hello")
        registry.send_nowait("calc", "again")
        assert await registry.request("calc", 21) == 42
        with pytest.raises(KeyError, match="nope"):
            await registry.request("calc", "fail")
        assert await registry.request("calc", 1) == 2  # a handled failure is no crash
        nursery.cancel_scope.cancel()
    assert seen == ["hello", "again", 21, "fail", 1]
    stats = registry.statistics()
    assert (stats.sent, stats.replies, stats.failed, stats.timeouts) == (5, 4, 1, 0)


async def test_replying_twice_is_refused() -> None:
    registry = Registry()
    envelopes: list[Envelope] = []

    async def agent(task_status: trio.TaskStatus[None]) -> None:
        with registry.register("a") as mailbox:
            task_status.started()
            envelope = await mailbox.receive()
            envelope.reply(1)
            envelopes.append(envelope)
            with pytest.raises(IllegalStateTransition) as info:
                envelope.reply(2)
            assert (
                str(info.value) == f"request {envelope.id} in state REPLIED cannot handle REPLIED"
            )
            with pytest.raises(IllegalStateTransition):
                envelope.fail(ValueError())
            with pytest.raises(TypeError, match="error must be an Exception"):
                envelope.fail(KeyboardInterrupt())  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        await nursery.start(agent)
        assert await registry.request("a", "x") == 1
    assert len(envelopes) == 1


async def test_unknown_names_fail_at_once() -> None:
    registry = Registry()
    with pytest.raises(AgentNotFound):
        await registry.send("ghost", 1)
    with pytest.raises(AgentNotFound):
        registry.send_nowait("ghost", 1)
    with pytest.raises(AgentNotFound):
        await registry.request("ghost", 1)


# ---------------------------------------------------------------- supervised agents


async def test_a_crash_fails_the_request_being_handled_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    started = trio.Event()
    release = trio.Event()

    async def handler(message: object) -> object:
        if message == "crash":
            started.set()
            await release.wait()
            raise ValueError("boom")
        return message

    async with Supervisor([registry.agent("w", handler)]) as sup:
        async with trio.open_nursery() as nursery:

            async def crash_later() -> None:
                await started.wait()
                await trio.sleep(2.0)
                release.set()

            nursery.start_soon(crash_later)
            t0 = trio.current_time()
            with pytest.raises(AgentDied) as info:
                await registry.request("w", "crash", timeout=60)
            # At the crash, not at the timeout.
            assert trio.current_time() - t0 == pytest.approx(2.0)
        died = info.value
        assert died.agent == "w"
        assert died.reason == "it crashed: ValueError: boom"
        assert str(died) == (
            f"agent 'w' ended before replying to request {died.request_id}: "
            "it crashed: ValueError: boom"
        )
        assert isinstance(died.__cause__, ValueError)
        # Restarted by its supervisor, under the same name.
        assert await registry.request("w", "ok") == "ok"
        info2 = registry.lookup("w")
        assert (info2.status, info2.restarts, info2.failures) == (AgentStatus.RUNNING, 1, 1)
        assert sup.which_children()[0].restarts == 1
        await sup.shutdown()


async def test_queued_messages_wait_for_the_restart(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()
    handled: list[object] = []
    gate = trio.Event()

    async def handler(message: object) -> object:
        if message == "crash":
            await gate.wait()
            raise ValueError("boom")
        handled.append(message)
        return message

    async with Supervisor([registry.agent("w", handler, backoff=Backoff(initial=1.0))]) as sup:
        results: list[object] = []
        async with trio.open_nursery() as nursery:

            async def ask(message: object) -> None:
                try:
                    results.append(await registry.request("w", message))
                except AgentDied as exc:
                    results.append(type(exc).__name__)

            for message in ["crash", 1, 2]:
                nursery.start_soon(ask, message)
                await trio.testing.wait_all_tasks_blocked()
            assert registry.lookup("w").queued == 2
            gate.set()
        # The crash failed only the request being handled; the queued ones
        # waited in the mailbox for the next incarnation, in order.
        assert results == ["AgentDied", 1, 2]
        assert handled == [1, 2]
        assert registry.lookup("w").restarts == 1
        await sup.shutdown()


async def test_a_sender_waits_for_a_restarting_agent_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(restart_wait=0.5)
    slow = Registry(restart_wait=5.0)
    specs = [
        registry.agent("w", crash_on("crash"), backoff=Backoff(initial=2.0)),
        slow.agent("v", crash_on("crash"), backoff=Backoff(initial=2.0)),
    ]
    async with Supervisor(specs, max_restarts=10) as sup:
        with pytest.raises(AgentDied):
            await registry.request("w", "crash")
        assert registry.lookup("w").status is AgentStatus.DOWN
        t0 = trio.current_time()
        with pytest.raises(AgentUnavailable) as info:
            await registry.request("w", 1)
        assert trio.current_time() - t0 == pytest.approx(0.5)
        assert str(info.value) == "agent 'w' is not running; waited 0.5 s for it to restart"
        with pytest.raises(AgentUnavailable) as info2:
            registry.send_nowait("w", 1)
        assert info2.value.waited == 0.0
        # The other registry waits long enough for the 2 s backoff.
        with pytest.raises(AgentDied):
            await slow.request("v", "crash")
        t0 = trio.current_time()
        assert await slow.request("v", 7) == 7
        assert trio.current_time() - t0 == pytest.approx(2.0)
        # A request timeout shorter than the wait ends the wait.
        with pytest.raises(AgentDied):
            await slow.request("v", "crash")
        with pytest.raises(RequestTimeout) as late:
            await slow.request("v", 8, timeout=0.25)
        assert str(late.value) == "no reply from agent 'v' within 0.25 s (it stayed down)"
        await sup.shutdown()


async def test_names_of_agents_that_cannot_come_back_are_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()

    async def once(message: object) -> object:
        raise ValueError("done")

    async with Supervisor(
        [
            registry.agent("temp", once, restart=Restart.TEMPORARY),
            registry.agent("perm", echo),
        ]
    ) as sup:
        with pytest.raises(AgentDied):
            await registry.request("temp", 1)
        # A temporary child is removed: nothing will restart it.
        with pytest.raises(AgentNotFound):
            registry.lookup("temp")
        # terminate_child keeps the spec (it may be restarted): DOWN.
        await sup.terminate_child("perm")
        assert registry.lookup("perm").status is AgentStatus.DOWN
        await sup.restart_child("perm")
        assert await registry.request("perm", 2) == 2
        await sup.terminate_child("perm")
        await sup.delete_child("perm")
        with pytest.raises(AgentNotFound):
            registry.lookup("perm")
        assert len(registry) == 0
        await sup.shutdown()


async def test_a_supervisor_stopping_forgets_its_agents_and_fails_queued_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    gate = trio.Event()

    async def blocked(message: object) -> object:
        await gate.wait()
        return message  # pragma: no cover

    errors: list[str] = []
    async with trio.open_nursery() as nursery, Supervisor([registry.agent("w", blocked)]) as sup:

        async def ask(message: object) -> None:
            try:
                await registry.request("w", message)
            except AgentDied as exc:
                errors.append(exc.reason)

        nursery.start_soon(ask, 1)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(ask, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.lookup("w").queued == 1
        assert registry.lookup("w").in_flight == 1
        await sup.shutdown()
    assert errors == [
        "it was stopped (stopped by supervisor 'supervisor')",
        "it stopped for good",
    ]
    assert len(registry) == 0


async def test_a_late_reply_is_dropped_and_never_crashes_the_agent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    calls: list[object] = []

    async def slow(message: object) -> object:
        calls.append(message)
        if message == "slow":
            await trio.sleep(5)
        return message

    async with Supervisor([registry.agent("w", slow)]) as sup:
        with pytest.raises(RequestTimeout) as info:
            await registry.request("w", "slow", timeout=1)
        assert info.value.timeout == 1
        # A request that timed out while queued is skipped, not handled.
        with pytest.raises(RequestTimeout):
            await registry.request("w", "queued", timeout=1)
        await trio.sleep(10)
        assert await registry.request("w", "next") == "next"
        assert calls == ["slow", "next"]
        stats = registry.statistics()
        assert (stats.timeouts, stats.late_replies, stats.expired) == (2, 1, 1)
        assert registry.lookup("w").restarts == 0
        await sup.shutdown()


async def test_cancelling_the_caller_abandons_the_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()

    async def slow(message: object) -> object:
        await trio.sleep(5)
        return message

    async with Supervisor([registry.agent("w", slow)]) as sup:
        with trio.move_on_after(1) as scope:
            await registry.request("w", 1)
        assert scope.cancelled_caught  # Cancelled went through untouched
        await trio.sleep(10)
        assert registry.statistics().late_replies == 1
        assert await registry.request("w", 2) == 2
        await sup.shutdown()


async def test_a_hung_agent_fails_its_request_at_once_and_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder)

    async def handler(message: object) -> object:
        if message == "hang":
            await trio.sleep_forever()
        if message == "long":
            for _ in range(20):  # a long job that beats stays healthy
                current_child().heartbeat()
                await trio.sleep(0.1)
        return message

    async with Supervisor([registry.agent("w", handler, heartbeat=Heartbeat(0.1))]) as sup:
        await trio.sleep(5)  # idle: healthy
        assert registry.lookup("w").restarts == 0
        assert await registry.request("w", "long") == "long"
        t0 = trio.current_time()
        with pytest.raises(AgentDied) as info:
            await registry.request("w", "hang", timeout=60)
        assert trio.current_time() - t0 < 2
        assert info.value.reason.startswith("it hung: child 'w' of supervisor 'supervisor' is hung")
        assert isinstance(info.value.__cause__, ChildHung)
        assert await registry.request("w", "ok") == "ok"
        assert (registry.lookup("w").restarts, registry.lookup("w").failures) == (1, 1)
        [failed] = recorder.of(AgentEvent.FAILED)
        assert failed.payload["error_type"] == "trio_smith.ChildHung"
        await sup.shutdown()


async def test_mailboxes_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry(mailbox_size=1)
    gate = trio.Event()

    async def blocked(message: object) -> object:
        await gate.wait()
        return message

    async with Supervisor([registry.agent("w", blocked)]) as sup:
        registry.send_nowait("w", 1)  # taken by the agent
        await trio.testing.wait_all_tasks_blocked()
        registry.send_nowait("w", 2)  # fills the mailbox
        with pytest.raises(trio.WouldBlock):
            registry.send_nowait("w", 3)
        with trio.move_on_after(1) as scope:
            await registry.send("w", 3)  # backpressure: waits for room
        assert scope.cancelled_caught
        assert registry.lookup("w").queued == 1
        gate.set()
        await registry.send("w", 3)
        assert registry.statistics().sent == 3
        await sup.shutdown()


async def test_agent_events_form_a_causal_chain(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder)
    async with Supervisor([registry.agent("w", crash_on("crash"))]) as sup:
        assert await registry.request("w", "hi") == "hi"
        with pytest.raises(AgentDied):
            await registry.request("w", "crash")
        await sup.shutdown()
    names = recorder.wire_names()
    assert names == [
        "agent.started",
        "agent.message_received",
        "agent.message_processed",
        "agent.message_received",
        "agent.failed",
        "agent.started",
        "agent.stopped",
    ]
    _, received, processed, received2, failed, restarted, _ = recorder.events
    assert processed.causation_id == received.id
    assert processed.correlation_id == received.correlation_id
    assert failed.causation_id == received2.id  # the crash joins the request's chain
    assert failed.payload["error_type"] == "ValueError"
    assert received.payload["message_type"] == "str"
    assert restarted.payload == {"agent": "w", "role": "w", "restarts": 1}
    assert all(e.source == "agents/w" for e in recorder.events)
    assert recorder.of(AgentEvent.MESSAGE_PROCESSED)[0].payload["duration"] == 0


async def test_a_breaker_guards_requests_to_an_agent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        "w", sliding_window_size=2, minimum_calls=2, wait_duration_in_open_state=10
    )
    registry = Registry()
    async with Supervisor([registry.agent("w", crash_on("crash"), breaker=breaker)]) as sup:
        for _ in range(2):
            with pytest.raises(AgentDied):
                await registry.request("w", "crash")
        assert breaker.state is CircuitState.OPEN
        assert registry.lookup("w").breaker is CircuitState.OPEN
        with pytest.raises(CallNotPermitted):
            await registry.request("w", 1)
        await sup.shutdown()


def test_a_sync_handler_is_refused_when_the_agent_is_declared() -> None:
    def handler(message: object) -> str:
        return "sync"

    with pytest.raises(TypeError, match="handler") as caught:
        Registry().agent("a", handler)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "handler must be an async function, got the plain function "
        "'test_a_sync_handler_is_refused_when_the_agent_is_declared.<locals>.handler' "
        "(define it with async def)"
    )


def test_bad_arguments_are_refused_with_their_names() -> None:
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: Registry(mailbox_size=0), ValueError, "mailbox_size must be"),
        (lambda: Registry(restart_wait=-1), ValueError, "restart_wait must be"),
        (lambda: Registry(request_timeout=0), ValueError, "request_timeout must be"),
        (lambda: Registry(events=object()), TypeError, "events must have a publish_nowait"),  # type: ignore[arg-type]
        (lambda: Registry().agent("", echo), ValueError, "name must be a non-empty str"),
        (lambda: Registry().agent("a", 3), TypeError, "handler must be an async function, got 3"),  # type: ignore[arg-type]
        (lambda: Registry().agent("a", echo, role=""), ValueError, "role must be"),
        (lambda: Registry().agent("a", echo, mailbox_size=0), ValueError, "mailbox_size"),
        (lambda: Registry().agent("a", echo, breaker=1), TypeError, "breaker must be"),  # type: ignore[arg-type]
    ]
    for make, error, text in cases:
        with pytest.raises(error, match=text):
            make()


async def test_request_timeout_must_be_positive() -> None:
    registry = Registry()
    with registry.register("a"), pytest.raises(ValueError, match="timeout must be"):
        await registry.request("a", 1, timeout=0)
    with registry.register("a"), pytest.raises(ValueError, match="timeout must be"):
        await registry.request("a", 1, timeout=math.nan)


async def test_agent_spec_is_a_child_spec() -> None:
    spec = Registry().agent("w", echo, restart=Restart.TRANSIENT, shutdown=1.0)
    assert isinstance(spec, ChildSpec)
    assert (spec.id, spec.restart, spec.shutdown) == ("w", Restart.TRANSIENT, 1.0)


async def test_a_handler_cancelled_inside_its_nursery_was_stopped_not_crashed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Cancelled comes out of a handler's nursery as a group of Cancelled.
    recorder = Recorder()
    registry = Registry(events=recorder)

    async def handler(message: object) -> object:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()
        raise AssertionError  # never: the supervisor cancels it

    reasons: list[str] = []
    async with trio.open_nursery() as nursery, Supervisor([registry.agent("w", handler)]) as sup:

        async def ask() -> None:
            with pytest.raises(AgentDied) as info:
                await registry.request("w", 1)
            reasons.append(info.value.reason)

        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()
        await sup.shutdown()
    assert reasons == ["it was stopped (stopped by supervisor 'supervisor')"]
    assert recorder.wire_names()[-1] == "agent.stopped"


# ---------------------------------------------------------------- the current cause


async def test_a_register_block_keeps_the_message_s_cause_inside_it() -> None:
    registry = Registry(events=Recorder())
    outer = Event.new(AgentEvent.CREATED, source="agents/caller")
    inside: list[Event | None] = []

    def crash_on_a_message() -> None:
        with registry.register("a") as mailbox:
            registry.send_nowait("a", "m")
            mailbox.receive_nowait()
            inside.append(current_cause())
            raise ValueError("crash")

    with caused_by(outer):
        with pytest.raises(ValueError, match="crash") as info:
            crash_on_a_message()
        assert current_cause() is outer  # back to what it was
    (received,) = inside
    assert received is not None
    assert (received.type, received.causation_id) == (AgentEvent.MESSAGE_RECEIVED, outer.id)
    # The error keeps the message's event: a supervisor publishes the crash there.
    assert failure_cause(info.value) is received


async def test_an_agent_s_next_incarnation_starts_without_the_last_message_s_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(events=Recorder())
    seen: list[Event | None] = []

    async def crashes_on_a_message(task_status: trio.TaskStatus[None]) -> None:
        seen.append(current_cause())
        with registry.register("a") as mailbox:
            task_status.started()
            async for _ in mailbox:
                raise ValueError("crash")

    async with Supervisor([ChildSpec("a", crashes_on_a_message)]) as sup:
        registry.send_nowait("a", "m")
        await trio.testing.wait_all_tasks_blocked()
        await sup.shutdown()
    assert seen == [None, None]

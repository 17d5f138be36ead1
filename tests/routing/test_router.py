"""The router: routes by type, balances, skips what cannot take a task, links events."""

from __future__ import annotations

import pathlib
import re
from typing import Any, assert_type

import pytest
import trio
import trio.testing

from trio_smith import Backoff, Supervisor
from trio_smith.events import AgentEvent, Event, EventType, caused_by, uuid7
from trio_smith.resilience import CircuitBreaker, CircuitState
from trio_smith.routing import (
    AgentDied,
    Balance,
    NoAgentAvailable,
    NoRoute,
    Registry,
    Router,
    RoutingEvent,
    Task,
    UnexpectedReply,
)
from trio_smith.routing._router import PAYLOADS as ROUTING_PAYLOADS

from ..publisher import Recorder


def named(agent: str, log: list[str] | None = None) -> Any:
    """A handler that answers with its agent's name (and logs the task type)."""

    async def handler(task: Task) -> str:
        if log is not None:
            log.append(task.type)
        if task.payload == "crash":
            raise ValueError("boom")
        return agent

    return handler


async def test_routes_by_type_with_a_default(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()
    router = Router(registry, {"research": "researcher", "code": "coder"}, default="analyst")
    specs = [
        registry.agent("r1", named("r1"), role="researcher"),
        registry.agent("c1", named("c1"), role="coder"),
        registry.agent("a1", named("a1"), role="analyst"),
    ]
    async with Supervisor(specs) as sup:
        assert await router.request(Task("research")) == "r1"
        assert await router.request(Task("code", {"lines": 3})) == "c1"
        assert await router.request(Task("poetry")) == "a1"
        assert router.role_for("poetry") == "analyst"
        strict = Router(registry, {"research": "researcher"})
        with pytest.raises(NoRoute):
            await strict.request(Task("poetry"))
        with pytest.raises(NoRoute):
            strict.pick("poetry")
        stats = router.statistics()
        assert (stats.routed, stats.completed, stats.failed) == (3, 3, 0)
        assert stats.by_role == {"researcher": 1, "coder": 1, "analyst": 1}
        await sup.shutdown()


async def test_round_robin_among_the_agents_of_a_role(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"})
    specs = [registry.agent(n, named(n), role="worker") for n in ("w1", "w2", "w3")]
    async with Supervisor(specs) as sup:
        answers = [await router.request(Task("t")) for _ in range(7)]
        assert answers == ["w1", "w2", "w3", "w1", "w2", "w3", "w1"]
        await sup.shutdown()


async def test_least_loaded_takes_the_shortest_queue(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"}, balance=Balance.LEAST_LOADED)
    gate = trio.Event()

    def slow(agent: str) -> Any:
        async def handler(task: Task) -> str:
            await gate.wait()
            return agent

        return handler

    specs = [registry.agent(n, slow(n), role="worker") for n in ("w1", "w2")]
    async with Supervisor(specs) as sup:
        # Three tasks into w1's mailbox by hand: w1 is loaded.
        for _ in range(3):
            registry.send_nowait("w1", Task("t"))
        await trio.testing.wait_all_tasks_blocked()
        assert registry.lookup("w1").in_flight + registry.lookup("w1").queued == 3
        assert router.pick("t") == "w2"
        assert router.pick("t") == "w2"  # still the least loaded, whatever the turn
        gate.set()
        assert await router.request(Task("t")) == "w2"
        await sup.shutdown()


async def test_down_agents_are_skipped(autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"})
    specs = [
        registry.agent(n, named(n), role="worker", backoff=Backoff(initial=1.0))
        for n in ("w1", "w2")
    ]
    async with Supervisor(specs, max_restarts=10) as sup:
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))  # w1 crashes: DOWN for 1 s
        answers = [await router.request(Task("t")) for _ in range(3)]
        assert answers == ["w2", "w2", "w2"]
        await trio.sleep(1.5)
        answers = [await router.request(Task("t")) for _ in range(2)]
        assert sorted(answers) == ["w1", "w2"]
        await sup.shutdown()


async def test_all_down_waits_for_a_restart_then_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry(restart_wait=2.0)
    router = Router(registry, {"t": "worker"})
    async with Supervisor(
        [registry.agent("w1", named("w1"), role="worker", backoff=Backoff(initial=1.0))],
        max_restarts=10,
    ) as sup:
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))
        t0 = trio.current_time()
        assert await router.request(Task("t")) == "w1"  # waited for the restart
        assert trio.current_time() - t0 == pytest.approx(1.0)
        await sup.terminate_child("w1")  # DOWN, and it will not come back by itself
        t0 = trio.current_time()
        with pytest.raises(NoAgentAvailable) as info:
            await router.request(Task("t"))
        assert trio.current_time() - t0 == pytest.approx(2.0)
        assert str(info.value) == (
            "no agent of role 'worker' is available: 1 down, 0 behind an open circuit breaker"
        )
        assert (info.value.role, info.value.down, info.value.open) == ("worker", 1, 0)
        await sup.shutdown()
    with pytest.raises(NoAgentAvailable) as empty:
        await router.request(Task("t"))
    assert str(empty.value) == "no agent of role 'worker' is available: no agent has that role"
    assert router.statistics().unroutable == 2


async def test_agents_behind_an_open_breaker_are_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"})
    breakers = {
        n: CircuitBreaker(
            n, sliding_window_size=1, minimum_calls=1, wait_duration_in_open_state=5.0
        )
        for n in ("w1", "w2")
    }
    specs = [registry.agent(n, named(n), role="worker", breaker=breakers[n]) for n in breakers]
    async with Supervisor(specs, max_restarts=10) as sup:
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))  # w1's breaker opens
        assert breakers["w1"].state is CircuitState.OPEN
        assert [await router.request(Task("t")) for _ in range(3)] == ["w2"] * 3
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))  # w2's opens too
        with pytest.raises(NoAgentAvailable) as info:
            await router.request(Task("t"))
        assert (info.value.down, info.value.open) == (0, 2)
        await trio.sleep(5.5)  # the waits are over: a trial call gets through
        assert await router.request(Task("t")) in ("w1", "w2")
        await sup.shutdown()


async def test_a_routed_task_forms_one_causal_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder)
    router = Router(registry, {"code": "coder", "research": "researcher"}, name="hub")

    async def coder(task: Task) -> str:
        # Delegation: the sub-task joins the chain of the task being handled.
        found = await router.request(Task("research", task.payload))
        return f"code using {found}"

    async def researcher(task: Task) -> str:
        return f"facts about {task.payload}"

    specs = [
        registry.agent("c1", coder, role="coder"),
        registry.agent("r1", researcher, role="researcher"),
    ]
    async with Supervisor(specs) as sup:
        task = Task("code", "trio")
        assert await router.request(task) == "code using facts about trio"
        await sup.shutdown()
    chain = [e for e in recorder.events if e.correlation_id == recorder.events[2].correlation_id]
    by_id = {e.id: e for e in chain}

    def depth(event: Event) -> int:
        return 0 if event.causation_id is None else 1 + depth(by_id[event.causation_id])

    drawn = [(depth(e), e.type.wire, e.source) for e in chain]
    assert drawn == [
        (0, "routing.task_routed", "router/hub"),
        (1, "agent.message_received", "agents/c1"),
        (2, "routing.task_routed", "router/hub"),
        (3, "agent.message_received", "agents/r1"),
        (4, "agent.message_processed", "agents/r1"),
        (3, "routing.task_completed", "router/hub"),
        (2, "agent.message_processed", "agents/c1"),
        (1, "routing.task_completed", "router/hub"),
    ]
    root = chain[0]
    assert root.correlation_id == root.id
    assert root.payload == {
        "task_id": str(task.id),
        "task_type": "code",
        "role": "coder",
        "agent": "c1",
    }


async def test_a_task_may_bring_its_own_correlation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder)
    router = Router(registry, {"t": "worker"})
    task = Task("t")
    given = Task("t", correlation_id=task.id)
    async with Supervisor([registry.agent("w", named("w"), role="worker")]) as sup:
        await router.request(given)
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))
        await sup.shutdown()
    routed = recorder.of(RoutingEvent.TASK_ROUTED)
    assert routed[0].correlation_id == task.id
    failed = recorder.of(RoutingEvent.TASK_FAILED)[0]
    assert failed.causation_id == routed[1].id
    assert failed.payload["error_type"] == "trio_smith.routing.AgentDied"
    assert EventType("routing", "task_routed") == RoutingEvent.TASK_ROUTED


async def test_send_routes_without_waiting_for_a_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"})
    log: list[str] = []
    async with Supervisor([registry.agent("w", named("w", log), role="worker")]) as sup:
        assert await router.send(Task("t")) == "w"
        await trio.testing.wait_all_tasks_blocked()
        assert log == ["t"]
        with pytest.raises(TypeError, match="task must be a Task"):
            await router.send("t")  # type: ignore[arg-type]
        await sup.shutdown()


def test_bad_arguments_are_refused() -> None:
    registry = Registry()
    with pytest.raises(TypeError, match="registry must be a Registry"):
        Router(object(), {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="balance must be a Balance"):
        Router(registry, {}, balance="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default must be a non-empty str or None"):
        Router(registry, {}, default="")
    with pytest.raises(ValueError, match="task type must be a non-empty str"):
        Task("")
    with pytest.raises(TypeError, match="correlation_id must be a UUID or None"):
        Task("t", correlation_id="x")  # type: ignore[arg-type]


# ---------------------------------------------------------------- unroutable tasks


async def test_an_unroutable_task_leaves_an_event_in_its_chain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder, restart_wait=0)
    router = Router(registry, {"t": "worker"}, name="hub")
    own = Task("poetry", correlation_id=uuid7())
    with pytest.raises(NoRoute):
        await router.request(own)
    handling = Event.new(AgentEvent.MESSAGE_RECEIVED, source="agents/caller")
    nobody = Task("t", "x")
    with pytest.raises(NoAgentAvailable), caused_by(handling):
        await router.request(nobody)
    with pytest.raises(NoAgentAvailable):
        await router.send(Task("t"))
    with pytest.raises(NoAgentAvailable):
        router.pick("t")  # only asks: no event
    assert recorder.wire_names() == ["routing.task_unroutable"] * 3
    no_route, no_agent, _ = recorder.events
    assert no_route.source == "router/hub"
    assert no_route.correlation_id == own.correlation_id
    assert no_route.payload == {
        "task_id": str(own.id),
        "task_type": "poetry",
        "role": None,
        "error_type": "trio_smith.routing.NoRoute",
        "error": "no route for task type 'poetry' and no default role",
        "traceback": no_route.payload["traceback"],
    }
    assert (no_agent.correlation_id, no_agent.causation_id) == (handling.id, handling.id)
    assert no_agent.payload == {
        "task_id": str(nobody.id),
        "task_type": "t",
        "role": "worker",
        "error_type": "trio_smith.routing.NoAgentAvailable",
        "error": "no agent of role 'worker' is available: no agent has that role",
        "traceback": None,  # described before it was raised
    }
    assert router.statistics().unroutable == 3
    assert recorder.events[2].correlation_id == recorder.events[2].id  # a chain of its own


async def test_all_down_then_unroutable_says_how_many_were_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder, restart_wait=1.0)
    router = Router(registry, {"t": "worker"})
    async with Supervisor([registry.agent("w1", named("w1"), role="worker")]) as sup:
        await sup.terminate_child("w1")
        recorder.events.clear()
        with pytest.raises(NoAgentAvailable):
            await router.request(Task("t"))
        await sup.shutdown()
    (unroutable,) = recorder.of(RoutingEvent.TASK_UNROUTABLE)
    assert unroutable.payload["error"] == (
        "no agent of role 'worker' is available: 1 down, 0 behind an open circuit breaker"
    )


ROUTING_DOCS = pathlib.Path(__file__).parent.parent.parent / "docs" / "routing.md"
ROW = re.compile(r"\| `routing\.(\w+)` \| [^|]* \| ([^|]*) \|")


def documented_routing_payloads() -> dict[str, set[str]]:
    """Each routing event's payload fields, as docs/routing.md's table lists them."""
    table: dict[str, set[str]] = {}
    for line in ROUTING_DOCS.read_text().splitlines():
        match = ROW.match(line)
        if match:
            table[match.group(1)] = set(re.findall(r"`(\w+)`", match.group(2)))
    return table


def test_the_docs_list_every_routing_event_with_exactly_its_payload_fields() -> None:
    table = documented_routing_payloads()
    assert set(table) == {kind.name for kind in ROUTING_PAYLOADS}
    for kind, payload in ROUTING_PAYLOADS.items():
        assert table[kind.name] == set(payload.__required_keys__), kind  # type: ignore[attr-defined]
        assert not payload.__optional_keys__  # type: ignore[attr-defined]
    # The parser sees a field that is missing from a row.
    row = "| `routing.task_failed` | `router/<name>` | `task_id`, `agent` | `task_routed` |"
    match = ROW.match(row)
    assert match is not None
    assert set(re.findall(r"`(\w+)`", match.group(2))) != set(
        ROUTING_PAYLOADS[RoutingEvent.TASK_FAILED].__required_keys__  # type: ignore[attr-defined]
    )


async def test_every_routing_event_has_its_documented_shape(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder, restart_wait=0)
    router = Router(registry, {"t": "worker"})
    async with Supervisor([registry.agent("w", named("w"), role="worker")]) as sup:
        await router.request(Task("t"))
        with pytest.raises(AgentDied):
            await router.request(Task("t", "crash"))
        with pytest.raises(NoRoute):
            await router.request(Task("other"))
        await sup.shutdown()
    routing = [e for e in recorder.events if e.type.category == "routing"]
    assert {e.type for e in routing} == set(ROUTING_PAYLOADS)
    for event in routing:
        assert set(event.payload) == ROUTING_PAYLOADS[event.type].__required_keys__  # type: ignore[attr-defined]


# ---------------------------------------------------------------- typed replies


async def test_reply_type_types_and_checks_the_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    registry = Registry(events=recorder)
    router = Router(registry, {"t": "worker", "n": "numbers"})

    async def counts(task: Task) -> int:
        return 42

    specs = [
        registry.agent("w", named("w"), role="worker"),
        registry.agent("n1", counts, role="numbers"),
    ]
    async with Supervisor(specs) as sup:
        name = await router.request(Task("t"), reply_type=str)
        assert_type(name, str)
        assert name == "w"
        direct = await registry.request("w", Task("t"), reply_type=str)
        assert_type(direct, str)
        untyped = await router.request(Task("t"))
        assert_type(untyped, Any)  # as before: no reply_type, no check
        with pytest.raises(UnexpectedReply) as info:
            await router.request(Task("n"), reply_type=str)
        assert str(info.value) == "agent 'n1' replied with a value of type int, expected str"
        assert (info.value.agent, info.value.reply, info.value.expected) == ("n1", 42, str)
        assert isinstance(info.value, TypeError)
        with pytest.raises(UnexpectedReply) as direct_info:
            await registry.request("n1", 0, reply_type=bytes)
        assert str(direct_info.value) == (
            "agent 'n1' replied with a value of type int, expected bytes"
        )
        assert registry.lookup("n1").failures == 0  # the agent replied and goes on
        assert await router.request(Task("n"), reply_type=int) == 42
        await sup.shutdown()
    stats = router.statistics()
    assert (stats.completed, stats.failed) == (3, 1)
    failed = recorder.of(RoutingEvent.TASK_FAILED)[0]
    assert failed.payload["error_type"] == "trio_smith.routing.UnexpectedReply"


async def test_a_reply_type_that_is_not_a_class_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    router = Router(registry, {"t": "worker"})
    with pytest.raises(TypeError) as info:
        await router.request(Task("t"), reply_type=list[str])
    assert str(info.value) == "reply_type must be a class or None, got list[str]"
    with pytest.raises(TypeError, match=r"^reply_type must be a class or None, got 'str'$"):
        await registry.request("w", 1, reply_type="str")  # type: ignore[call-overload]
    assert router.statistics().routed == 0

"""The registry under random requests, crashes, timeouts and stops, against a naive model."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_smith import Supervisor
from trio_smith.routing import (
    AgentDied,
    AgentStatus,
    AgentUnavailable,
    Registry,
    RequestTimeout,
)

AGENTS = ("a", "b")

#: (what, agent): "ok" answers, "crash" raises, "slow" outlives its 1 s
#: timeout, "send" is a message without reply, "stop"/"start" terminate and
#: restart the child.
operations = st.lists(
    st.tuples(
        st.sampled_from(["ok", "crash", "slow", "send", "stop", "start"]), st.sampled_from(AGENTS)
    ),
    max_size=25,
)


@attrs.define
class Model:
    """What the registry should report: counts, and which agents are up."""

    up: dict[str, bool] = attrs.field(factory=lambda: dict.fromkeys(AGENTS, True))
    restarts: Counter[str] = attrs.field(factory=Counter)
    handled: Counter[str] = attrs.field(factory=Counter)
    failures: Counter[str] = attrs.field(factory=Counter)
    replies: int = 0
    failed: int = 0
    timeouts: int = 0
    late: int = 0
    sent: int = 0

    def expect(self, what: str, agent: str) -> str:
        """The outcome of one operation, and the model's new counts."""
        if what in ("stop", "start"):
            if what == "start" and not self.up[agent]:
                self.restarts[agent] += 1
            self.up[agent] = what == "start"
            return "ok"
        if not self.up[agent]:
            return "AgentUnavailable"  # restart_wait=0: at once
        self.sent += 1
        if what == "crash":
            self.failed += 1
            self.failures[agent] += 1
            self.restarts[agent] += 1
            return "AgentDied"
        self.handled[agent] += 1  # a late reply counts as handled
        if what == "slow":
            self.timeouts += 1
            self.late += 1
            return "RequestTimeout"
        self.replies += 1
        return "ok"


async def handler(message: object) -> object:
    if message == "crash":
        raise ValueError("boom")
    if message == "slow":
        await trio.sleep(2)
    return message


@settings(max_examples=60)
@given(operations)
def test_the_registry_agrees_with_the_model(ops: list[tuple[str, str]]) -> None:
    model = Model()
    registry = Registry(restart_wait=0)

    async def run() -> None:
        specs = [registry.agent(name, handler) for name in AGENTS]
        async with Supervisor(specs, max_restarts=1000) as sup:
            for what, agent in ops:
                expected = model.expect(what, agent)
                outcome = "ok"
                try:
                    if what == "stop":
                        await sup.terminate_child(agent)
                    elif what == "start":
                        if registry.lookup(agent).status is AgentStatus.DOWN:
                            await sup.restart_child(agent)
                    elif what == "send":
                        await registry.send(agent, "hello")
                        await trio.testing.wait_all_tasks_blocked()
                    else:
                        reply: Any = await registry.request(agent, what, timeout=1)
                        assert reply == what
                except (AgentDied, AgentUnavailable, RequestTimeout) as exc:
                    outcome = type(exc).__name__
                assert outcome == expected, (what, agent)
                if what == "slow":
                    await trio.sleep(2)  # let the late reply land
                await trio.testing.wait_all_tasks_blocked()  # restarts happen
            for name in AGENTS:
                info = registry.lookup(name)
                assert info.status is (AgentStatus.RUNNING if model.up[name] else AgentStatus.DOWN)
                assert (info.restarts, info.handled, info.failures) == (
                    model.restarts[name],
                    model.handled[name],
                    model.failures[name],
                ), name
                assert (info.queued, info.in_flight) == (0, 0)
            stats = registry.statistics()
            assert (stats.sent, stats.replies, stats.failed, stats.timeouts) == (
                model.sent,
                model.replies,
                model.failed,
                model.timeouts,
            )
            assert (stats.late_replies, stats.expired) == (model.late, 0)
            await sup.shutdown()
        assert len(registry) == 0

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("agent", AGENTS)
def test_the_model_itself(agent: str) -> None:
    model = Model()
    assert [model.expect(w, agent) for w in ["ok", "crash", "stop", "ok", "start", "slow"]] == [
        "ok",
        "AgentDied",
        "ok",
        "AgentUnavailable",
        "ok",
        "RequestTimeout",
    ]
    assert model.restarts[agent] == 2

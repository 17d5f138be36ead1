"""The observer's details: breaker states, mailbox depths and a child's recent failures.

Real sockets on 127.0.0.1 and trio's real clock; no timing assertions
(docs/design.md rule 47). Heartbeat ages and backoffs are read from
``tree_json`` on a MockClock, where they are exact.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_smith import Backoff, ChildSpec, Heartbeat, Supervisor, current_child
from trio_smith import _observer as observer_module
from trio_smith.events import Event, EventBus, SupervisionEvent
from trio_smith.observer import Observer
from trio_smith.resilience import CircuitBreaker
from trio_smith.routing import Registry

from .client import get

EVIL = "<img src=x onerror=alert(1)>"


async def idle() -> None:
    await trio.sleep_forever()


async def fail() -> None:
    raise RuntimeError("nope")


async def test_the_tree_shows_breakers_and_mailbox_depths() -> None:
    breaker = CircuitBreaker("payments", minimum_calls=2, sliding_window_size=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await breaker.call(fail)
    registry = Registry()
    async with Supervisor([ChildSpec("w", idle)], name="app") as root:
        with registry.register("mailer", role="mail", mailbox_size=4):
            registry.send_nowait("mailer", "one")
            registry.send_nowait("mailer", "two")
            async with Observer(root, breakers=[breaker], registry=registry) as obs:
                doc = (await get(obs.url, "/api/tree")).json()
        await root.shutdown()
    assert doc["version"] == 1
    assert doc["breakers"] == [
        {
            "name": "payments",
            "state": "OPEN",
            "failure_rate": 100.0,
            "slow_call_rate": 0.0,
            "calls": 2,
            "failed_calls": 2,
            "not_permitted_calls": 0,
            "retry_after": doc["breakers"][0]["retry_after"],
        }
    ]
    assert doc["breakers"][0]["retry_after"] > 0
    assert doc["mailboxes"] == [
        {
            "agent": "mailer",
            "role": "mail",
            "status": "running",
            "depth": 2,
            "capacity": 4,
            "in_flight": 0,
        }
    ]


async def test_without_breakers_or_registry_the_lists_are_empty() -> None:
    async with Supervisor([ChildSpec("w", idle)], name="app") as root:
        async with Observer(root) as obs:
            doc = (await get(obs.url, "/api/tree")).json()
        await root.shutdown()
    assert (doc["breakers"], doc["mailboxes"]) == ([], [])


def test_bad_breakers_and_registry_are_refused() -> None:
    sup = Supervisor([], name="app")
    with pytest.raises(TypeError) as err:
        Observer(sup, breakers=[object()])  # type: ignore[list-item]
    assert str(err.value).startswith("breakers must hold CircuitBreaker objects, got <object")
    with pytest.raises(TypeError) as err:
        Observer(sup, breakers="x")  # type: ignore[arg-type]
    assert str(err.value) == "breakers must be a tuple or list of CircuitBreaker, got 'x'"
    with pytest.raises(TypeError) as err:
        Observer(sup, registry=3)  # type: ignore[arg-type]
    assert str(err.value) == "registry must be a Registry or None, got 3"


async def test_a_crash_shows_in_the_childs_recent_failures_as_escaped_json() -> None:
    go = trio.Event()
    crashed: list[bool] = []

    async def crashy() -> None:
        if not crashed:
            await go.wait()  # after the observer subscribed
            crashed.append(True)
            raise ValueError(EVIL)
        await trio.sleep_forever()

    async with (
        EventBus() as bus,
        Supervisor([ChildSpec(EVIL, crashy)], name="app", events=bus) as root,
        Observer(root, bus=bus) as obs,
    ):
        go.set()
        path = "/api/failures?supervisor=app&child=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E"
        while not (response := await get(obs.url, path)).json()["failures"]:  # noqa: ASYNC110
            await trio.sleep(0.01)  # the observer records on its own task
        none = (await get(obs.url, "/api/failures?supervisor=app&child=other")).json()
        await root.shutdown()
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    assert b"<" not in response.body
    assert b">" not in response.body
    doc = response.json()
    assert (doc["supervisor"], doc["child"]) == ("app", EVIL)
    [failure] = doc["failures"]
    assert failure["error_type"] == "ValueError"
    assert failure["error"] == EVIL
    assert "test_details.py:" in failure["traceback"]
    assert failure["traceback"].endswith(" in crashy")
    assert failure["incarnation"] == 1
    assert isinstance(failure["timestamp"], str)
    assert none == {"supervisor": "app", "child": "other", "failures": []}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("supervisor=app", "/api/failures needs one 'child' query parameter"),
        ("child=a&child=b&supervisor=app", "/api/failures needs one 'child' query parameter"),
        ("child=a", "/api/failures needs one 'supervisor' query parameter"),
        ("child=a&supervisor=app&x=1", "unknown query parameter 'x'; expected child, supervisor"),
    ],
)
async def test_a_bad_failures_query_gets_400(query: str, message: str) -> None:
    async with Supervisor([ChildSpec("w", idle)], name="app") as root:
        async with Observer(root) as obs:
            response = await get(obs.url, "/api/failures?" + query)
        await root.shutdown()
    assert response.status == 400
    assert response.body.decode() == message + "\n"


def failed(child: str, n: int) -> Event:
    payload = {
        "supervisor": "app",
        "child_id": child,
        "incarnation": n,
        "error_type": "RuntimeError",
        "error": f"crash {n}",
        "traceback": "Traceback ...",
    }
    return Event.new(SupervisionEvent.CHILD_FAILED, source="app", payload=payload)


async def test_failures_are_bounded_per_child_and_in_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observer_module, "_FAILURES_PER_CHILD", 3)
    monkeypatch.setattr(observer_module, "_FAILURE_CHILDREN", 2)
    async with (
        EventBus() as bus,
        Supervisor([ChildSpec("w", idle)], name="app") as root,
        Observer(root, bus=bus) as obs,
    ):
        for n in range(1, 6):
            bus.publish_nowait(failed("a", n))
        bus.publish_nowait(failed("b", 1))
        bus.publish_nowait(failed("a", 6))  # a is now the most recent: b goes first
        bus.publish_nowait(failed("c", 1))

        async def failures(child: str) -> list[int]:
            doc = (await get(obs.url, f"/api/failures?supervisor=app&child={child}")).json()
            return [f["incarnation"] for f in doc["failures"]]

        while await failures("c") != [1]:  # noqa: ASYNC110
            await trio.sleep(0.01)  # the observer records on its own task
        assert await failures("a") == [6, 5, 4]
        assert await failures("b") == []
        await root.shutdown()


async def test_the_tree_shows_heartbeat_age_and_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def beats_at_1_5() -> None:
        await trio.sleep(1.5)
        current_child().heartbeat()
        await trio.sleep_forever()

    async def crashes_at_1() -> None:
        await trio.sleep(1.0)
        raise RuntimeError("crashed")

    children = [
        ChildSpec("beating", beats_at_1_5, heartbeat=Heartbeat(10.0)),
        ChildSpec("crashy", crashes_at_1),
        ChildSpec("plain", idle),
    ]
    backoff = Backoff(initial=2.0, multiplier=2.0, maximum=10.0, reset_after=100.0)
    async with Supervisor(children, name="app", backoff=backoff, max_restarts=10) as root:
        await trio.sleep(2.25)  # a beat at 1.5; a crash at 1.0, restart due at 3.0
        doc = observer_module.tree_json(root)
        await root.shutdown()
    # Built directly on the MockClock for exact ages; test_http sees the fields served.
    node = doc["root"]
    assert isinstance(node, dict)
    rows = {c["id"]: (c["heartbeat_age"], c["backoff"]) for c in node["children"]}
    assert rows == {"beating": (0.75, None), "crashy": (None, 0.75), "plain": (None, None)}

"""Nested supervisors as one child spec (``.spec``), found by path (``find``).

docs/design.md rule 39: a ``.spec`` child is started once its nested tree
has started, stopped by the nested tree's ordered stop, and fails with the
nested tree's give-up error; ``find`` walks live supervisors by name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
import trio
import trio.testing

from trio_smith import (
    AutoShutdown,
    Backoff,
    ChildNotFound,
    ChildSpec,
    ChildStartFailed,
    ChildStatus,
    DynamicSupervisor,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorState,
    current_child,
)
from trio_smith.events import SupervisionEvent

from ..publisher import Recorder
from .helpers import Boom, Control, Log, settle, specs, worker

Clock = trio.testing.MockClock


async def slow_start(log: Log, task_status: trio.TaskStatus[None]) -> None:
    """Ready one virtual second after it begins."""
    me = current_child().id
    await trio.sleep(1)
    log.add("ready", me)
    task_status.started()
    try:
        await trio.sleep_forever()
    finally:
        log.add("stop", me)


async def client(log: Log, ready: Sequence[str]) -> None:
    """A sibling that needs its elder siblings' subtrees up at its first step."""
    log.add("client sees", ",".join(sorted(set(ready) & set(log.of("ready")))))
    await trio.sleep_forever()


# ---------------------------------------------------------------- start and stop


async def test_a_sibling_after_a_spec_finds_the_nested_tree_started(
    autojump_clock: Clock,
) -> None:
    log = Log()
    app = Supervisor.spec("app", [ChildSpec("db", slow_start, (log,)), *specs(log, "x")])
    async with Supervisor([app, ChildSpec("client", client, (log, ["db"]))]) as sup:
        await settle()
        assert log.events[:3] == [("ready", "db"), ("start", "x"), ("client sees", "db")]
        assert [(i.id, i.status) for i in sup.which_children()] == [
            ("app", ChildStatus.RUNNING),
            ("client", ChildStatus.RUNNING),
        ]
        await sup.shutdown()


async def test_stopping_a_spec_child_stops_its_tree_in_order_first(autojump_clock: Clock) -> None:
    log = Log()
    app = Supervisor.spec("app", specs(log, "xy"))
    async with Supervisor([*specs(log, "a"), app, *specs(log, "b")]) as sup:
        await sup.shutdown()
    assert log.of("stop") == ["b", "y", "x", "a"]


async def graceful(log: Log, task_status: trio.TaskStatus[None]) -> None:
    """Asked to stop, it takes 3 virtual seconds to finish."""
    me = current_child().id
    task_status.started()
    await current_child().stop_requested.wait()
    await trio.sleep(3)
    log.add("stop", me)


async def test_a_spec_child_waits_for_its_tree_to_stop_by_default(autojump_clock: Clock) -> None:
    log = Log()
    app = Supervisor.spec("app", [ChildSpec("slow", graceful, (log,), shutdown=math.inf)])
    async with Supervisor([app, *specs(log, "b")]) as sup:
        start = trio.current_time()
        await sup.terminate_child("app")
        assert trio.current_time() - start == 3
        assert log.of("stop") == ["slow"]
        await sup.shutdown()


async def test_start_child_of_a_spec_returns_once_the_tree_has_started(
    autojump_clock: Clock,
) -> None:
    log = Log()
    async with Supervisor(name="root") as sup:
        await sup.start_child(Supervisor.spec("late", [ChildSpec("db", slow_start, (log,))]))
        assert log.of("ready") == ["db"]
        assert sup.find("root/late").which_children()[0].status is ChildStatus.RUNNING
        await sup.shutdown()


async def test_a_nested_tree_that_fails_to_start_is_a_failed_start(autojump_clock: Clock) -> None:
    async def broken(task_status: trio.TaskStatus[None]) -> None:
        raise Boom("no")

    app = Supervisor.spec("app", [ChildSpec("db", broken)])
    with pytest.raises(ChildStartFailed, match=r"^child 'app' failed to start$") as info:
        async with Supervisor([app]):
            pass
    assert isinstance(info.value.__cause__, ChildStartFailed)
    assert str(info.value.__cause__) == "child 'db' failed to start"


# ---------------------------------------------------------------- giving up


@pytest.mark.parametrize("restart", list(Restart))
async def test_a_nested_tree_that_gives_up_fails_its_child_and_the_parent_applies_restart(
    autojump_clock: Clock, restart: Restart
) -> None:
    log, control = Log(), Control()
    app = Supervisor.spec("app", specs(log, "w", control), max_restarts=0, restart=restart)
    async with Supervisor([app, *specs(log, "b")], max_restarts=5) as sup:
        await settle()
        control.order("w", "crash")
        await settle()
        infos = {i.id: i for i in sup.which_children()}
        if restart is Restart.TEMPORARY:
            assert "app" not in infos
            assert log.of("start") == ["w", "b"]
        else:
            # A fresh nested supervisor (OTP R5.7): its window is empty again.
            assert infos["app"].status is ChildStatus.RUNNING
            assert infos["app"].restarts == 1
            assert log.of("start") == ["w", "b", "w"]
        await sup.shutdown()


async def test_the_nested_give_up_error_is_the_childs_failure(autojump_clock: Clock) -> None:
    log, control = Log(), Control()
    app = Supervisor.spec("app", specs(log, "w", control), max_restarts=0)
    with pytest.raises(RestartIntensityExceeded) as info:
        async with Supervisor([app], max_restarts=0, name="root"):
            await settle()
            control.order("w", "crash")
    assert info.value.child_id == "app"
    nested = info.value.__cause__
    assert isinstance(nested, RestartIntensityExceeded)
    assert nested.child_id == "w"
    assert isinstance(nested.__cause__, Boom)


async def test_a_nested_pool_that_gives_up_fails_its_child(autojump_clock: Clock) -> None:
    log, control = Log(), Control()
    pool = DynamicSupervisor.spec(
        "pool", ChildSpec("w", worker(log, control)), max_restarts=0, restart=Restart.TRANSIENT
    )
    async with Supervisor([pool], name="root") as sup:
        nested = sup.find("root/pool")
        assert isinstance(nested, DynamicSupervisor)
        handle = await nested.start_child()
        control.order(handle.id, "crash")
        await settle()
        [info] = sup.which_children()
        assert (info.status, info.restarts) == (ChildStatus.RUNNING, 1)
        assert sup.find("root/pool").which_children() == []
        await sup.shutdown()


# ---------------------------------------------------------------- options


async def test_options_go_to_the_child_spec_or_to_the_nested_supervisor(
    autojump_clock: Clock,
) -> None:
    slow = Backoff(initial=2.0)
    fast = Backoff(initial=0.5)
    app = Supervisor.spec(
        "app",
        [],
        restart=Restart.TRANSIENT,
        shutdown=7.0,
        significant=True,
        restart_backoff=slow,
        strategy=Strategy.REST_FOR_ONE,
        max_restarts=9,
        within=3.0,
        backoff=fast,
        name="tree",
    )
    assert (app.id, app.restart, app.shutdown, app.significant, app.backoff) == (
        "app",
        Restart.TRANSIENT,
        7.0,
        True,
        slow,
    )
    assert app.heartbeat is None
    assert repr(app.args) == "(<nested Supervisor 'tree'>,)"
    async with Supervisor([app], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT, name="root") as sup:
        tree = sup.find("root/tree")
        stats = tree.statistics()
        assert (stats.strategy, stats.max_restarts, stats.within, stats.path) == (
            Strategy.REST_FOR_ONE,
            9,
            3.0,
            "root/tree",
        )
        assert tree._rt.machine._backoff is fast
        await sup.shutdown()


async def test_a_nested_supervisor_is_named_after_its_child_and_inherits_events(
    autojump_clock: Clock,
) -> None:
    log = Log()
    events = Recorder()
    app = Supervisor.spec("app", specs(log, "x"))
    async with Supervisor([app], name="root", events=events) as sup:
        assert sup.find("root/app").name == "app"
        await sup.shutdown()
    sources = [e.source for e in events.of(SupervisionEvent.CHILD_STARTED)]
    assert sources == ["root/app", "root"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: Supervisor.spec("a", [], stratgy=Strategy.ONE_FOR_ALL),  # type: ignore[call-arg]
            TypeError,
            "Supervisor.spec() got an unexpected keyword argument 'stratgy'",
        ),
        (
            lambda: DynamicSupervisor.spec("a", ChildSpec("w", worker(Log())), heartbeat=None),  # type: ignore[call-arg]
            TypeError,
            "DynamicSupervisor.spec() got an unexpected keyword argument 'heartbeat'",
        ),
        (
            lambda: Supervisor.spec("a", None),  # type: ignore[arg-type]
            TypeError,
            "children must be an iterable of ChildSpec, got None",
        ),
        (
            lambda: Supervisor.spec("a", [], max_restarts=-1),
            ValueError,
            "max_restarts must be >= 0, got -1",
        ),
        (
            lambda: Supervisor.spec("a", [ChildSpec("x", worker(Log()))] * 2),
            ValueError,
            "duplicate child id 'x'",
        ),
        (
            lambda: Supervisor.spec("a", [], strategy="one_for_one"),  # type: ignore[arg-type]
            TypeError,
            "strategy must be a Strategy, got 'one_for_one'",
        ),
        (
            lambda: Supervisor.spec("a", [], restart="permanent"),  # type: ignore[arg-type]
            TypeError,
            "restart must be a Restart, got 'permanent'",
        ),
        (lambda: Supervisor.spec("", []), ValueError, "id must be a non-empty str, got ''"),
        (
            lambda: DynamicSupervisor.spec("a", None),  # type: ignore[arg-type]
            TypeError,
            "template must be a ChildSpec, got None",
        ),
        (
            lambda: DynamicSupervisor.spec("a", ChildSpec("w", worker(Log())), max_children=0),
            ValueError,
            "max_children must be an int >= 1 or None, got 0",
        ),
    ],
)
def test_bad_options_are_refused_at_the_call(
    call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


# ---------------------------------------------------------------- Supervisor(None)


@pytest.mark.parametrize("children", [None, 3, "ab", b"ab", ChildSpec("a", worker(Log()))])
def test_children_that_are_no_collection_of_specs_are_refused(children: Any) -> None:
    with pytest.raises(TypeError) as info:
        Supervisor(children)
    assert str(info.value) == f"children must be an iterable of ChildSpec, got {children!r}"


def test_a_template_that_is_no_child_spec_is_refused() -> None:
    with pytest.raises(TypeError) as info:
        DynamicSupervisor(None)  # type: ignore[arg-type]
    assert str(info.value) == "template must be a ChildSpec, got None"


def test_children_may_be_any_iterable_of_specs() -> None:
    log = Log()
    sup = Supervisor(iter(specs(log, "ab")))
    assert [i.id for i in sup.which_children()] == ["a", "b"]


# ---------------------------------------------------------------- find


async def old_style(log: Log, task_status: trio.TaskStatus[None]) -> None:
    """A child that runs a supervisor in its own body (the way before ``.spec``)."""
    async with Supervisor(specs(log, "x"), name="inner"):
        task_status.started()


async def test_find_walks_spec_trees_and_in_child_supervisors(autojump_clock: Clock) -> None:
    log = Log()
    agents = DynamicSupervisor.spec("agents", ChildSpec("a", worker(log)))
    app = Supervisor.spec("app", [*specs(log, "d"), agents, ChildSpec("old", old_style, (log,))])
    async with Supervisor([app], name="root") as root:
        assert root.find("root") is root
        pool = root.find("root/app/agents")
        assert isinstance(pool, DynamicSupervisor)
        assert pool.statistics().path == "root/app/agents"
        inner = root.find("root/app/inner")
        assert isinstance(inner, Supervisor)
        assert [i.id for i in inner.which_children()] == ["x"]
        app_sup = root.find("root/app")
        assert app_sup.find("app/agents") is pool
        await root.shutdown()
    with pytest.raises(ChildNotFound):
        root.find("root/app")


async def test_find_tells_how_far_it_got(autojump_clock: Clock) -> None:
    log = Log()
    app = Supervisor.spec("app", specs(log, "w"))
    async with Supervisor([app, *specs(log, "b")], name="root") as root:
        with pytest.raises(ChildNotFound) as info:
            root.find("root/app/agents/deep")
        assert str(info.value) == (
            "no supervisor at 'root/app/agents/deep': 'root/app' runs no supervisor named 'agents'"
        )
        assert (info.value.child_id, info.value.path, info.value.found) == (
            "agents",
            "root/app/agents/deep",
            "root/app",
        )
        with pytest.raises(ChildNotFound) as info:
            root.find("root/b")  # a worker runs no supervisor
        assert str(info.value) == "no supervisor at 'root/b': 'root' runs no supervisor named 'b'"
        with pytest.raises(ChildNotFound) as info:
            root.find("app/agents")
        assert str(info.value) == (
            "no supervisor at 'app/agents': the supervisor searched from is not named 'app'"
        )
        assert (info.value.found, info.value.child_id) == (None, "app")
        with pytest.raises(ChildNotFound) as info:
            root.find("")
        assert (
            str(info.value) == "no supervisor at '': the supervisor searched from is not named ''"
        )
        with pytest.raises(TypeError) as type_info:
            root.find(["root"])  # type: ignore[arg-type]
        assert str(type_info.value) == "path must be a str, got ['root']"
        await root.shutdown()


async def test_a_restarting_tree_is_not_found(autojump_clock: Clock) -> None:
    log, control = Log(), Control()
    app = Supervisor.spec("app", specs(log, "w", control), max_restarts=0)
    async with Supervisor([app], backoff=Backoff(initial=10.0), name="root") as root:
        await settle()
        control.order("w", "crash")
        await settle()
        assert root.which_children()[0].status is ChildStatus.RESTARTING
        with pytest.raises(ChildNotFound, match="runs no supervisor named 'app'"):
            root.find("root/app")
        await trio.sleep(11)
        assert root.find("root/app").statistics().state is SupervisorState.RUNNING
        await root.shutdown()


async def test_a_pool_of_trees_finds_each_by_child_id(autojump_clock: Clock) -> None:
    log = Log()
    tree = Supervisor.spec("t", specs(log, "x"))
    async with DynamicSupervisor(tree, name="pool") as pool:
        first = await pool.start_child()
        second = await pool.start_child()
        assert pool.find(f"pool/{second.id}").statistics().path == "pool/t-2"
        assert pool.find(f"pool/{first.id}") is not pool.find(f"pool/{second.id}")
        assert log.of("start") == ["x", "x"]
        await pool.shutdown()
    assert log.of("stop") == ["x", "x"]

"""Random supervisor scenarios in the oracle's format (see oracle.py).

Seeded and deterministic, so that a batch can be run on a real OTP supervisor
once and on trio_smith's core many times, and a recorded batch can be
regenerated. The period is an hour, so restart intensity is a pure count
(time is tested by tests/core, where the clock is ours).

:func:`random_pool_scenarios` gives the simple_one_for_one family (a core
with ``pool=True``): one template, children started one by one with their id
as the start argument, and only the requests OTP takes for such a
supervisor (see there).
"""

from __future__ import annotations

import random
from typing import Any

Scenario = dict[str, Any]

STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"]
RESTARTS = ["permanent", "transient", "temporary"]
POOL = ["a", "b", "c", "d", "e", "f", "g"]
CALLS = ["restart_child", "terminate_child", "delete_child", "restart_child"]


def _child(rng: random.Random, child_id: str, auto_shutdown: str, *, valid: bool) -> Scenario:
    restart = rng.choice(RESTARTS)
    significant = auto_shutdown != "never" and restart != "permanent" and rng.random() < 0.4
    if not valid and rng.random() < 0.05:
        significant = True  # may be refused: bad_combination
    return {"id": child_id, "restart": restart, "significant": significant}


def random_scenario(rng: random.Random) -> Scenario:
    """One scenario: up to five static children and up to 30 steps."""
    auto_shutdown = rng.choice(["never"] * 3 + ["any_significant", "all_significant"])
    count = rng.randint(1, 5)
    children = [_child(rng, child_id, auto_shutdown, valid=True) for child_id in POOL[:count]]
    starts = {c["id"]: [rng.choice(["fail", "ignore"])] for c in children if rng.random() < 0.04}
    steps: list[Scenario] = []
    for _ in range(rng.randint(3, 30)):
        roll = rng.random()
        child_id = rng.choice(POOL[: count + 2])
        if roll < 0.06:
            # R6.6: a call served between a failed restart attempt and its retry.
            steps += [
                {"op": "script", "id": child_id, "outcomes": ["fail"] * rng.randint(1, 3)},
                {"op": "exit", "id": child_id, "reason": "crash", "settle": False},
                {"op": "which_children"}
                if rng.random() < 0.25
                else {"op": rng.choice(CALLS), "id": child_id},
            ]
        elif roll < 0.40:
            steps.append(
                {
                    "op": "exit",
                    "id": child_id,
                    "reason": rng.choice(["crash", "crash", "normal", "shutdown"]),
                    "settle": rng.random() > 0.2,
                }
            )
        elif roll < 0.52:
            outcomes = rng.choices(["fail", "ignore", "ok"], weights=[6, 1, 2], k=rng.randint(1, 4))
            steps.append({"op": "script", "id": child_id, "outcomes": outcomes})
        elif roll < 0.62:
            steps.append(
                {"op": "start_child", "child": _child(rng, child_id, auto_shutdown, valid=False)}
            )
        elif roll < 0.86:
            op = rng.choice(["restart_child", "terminate_child", "delete_child"])
            steps.append({"op": op, "id": rng.choice([child_id, child_id, "nobody"])})
        elif roll < 0.94:
            steps.append({"op": "which_children"})
        elif roll < 0.985:
            steps.append({"op": "count_children"})
        else:
            steps.append({"op": "stop"})
    return {
        "strategy": rng.choice(STRATEGIES),
        "intensity": rng.choice([0, 1, 1, 2, 3, 3, 4, 6]),
        "period": 3600,
        "auto_shutdown": auto_shutdown,
        "children": children,
        "starts": starts,
        "steps": steps,
    }


def random_scenarios(seed: int, count: int) -> list[Scenario]:
    """``count`` scenarios from ``seed``; the same arguments give the same list."""
    rng = random.Random(seed)
    return [random_scenario(rng) for _ in range(count)]


def random_pool_scenario(rng: random.Random) -> Scenario:
    """One simple_one_for_one scenario: up to 32 steps, children ``c01``, ``c02``, ...

    Ids are zero-padded and given in start order, so sorting by id is start
    order. Kept out, because OTP 25 and the core differ there by design or
    OTP 25 is wrong:

    * ``restart_child`` and ``delete_child`` (OTP: ``{error,
      simple_one_for_one}``; D25);
    * a restart that the child ignores (OTP 25 stores the child under the
      pid ``undefined``; D24): ``ignore`` is only ever the first outcome of a
      child, the one of its ``start_child``; scripts for restarts give
      ``fail`` or ``ok``;
    * a ``terminate_child`` queued behind an exit of its child whose restart
      may succeed first (D3): OTP's caller can only name the pid it knows, the
      one that ended, and OTP answers ``ok`` and leaves the new one running;
      trio_smith's handle names the child, whatever incarnation runs. While an
      exit is pending, a child whose exit is queued is only terminated when
      its first restart attempt is sure to fail (it has a script of failures
      from this stretch and never had an ``ok`` scripted), so that it is
      restarting and OTP finds it by its old pid (``{restarting, Pid}``);
    * ``count_children`` after a ``terminate_child`` served while a restart
      may be pending: OTP 25 erases a restarting child without decrementing
      its count of restarting children, so its ``active`` is one too low from
      then on (a bug); such a count becomes a ``which_children``.
    """
    template = {"restart": rng.choice(RESTARTS)}
    started: list[str] = []
    starts: dict[str, list[str]] = {}
    steps: list[Scenario] = []
    # The current stretch of steps queued behind an unsettled exit ("pending"):
    # the children whose exit is queued, and those given failures in it.
    pending = False
    exited: set[str] = set()
    primed: set[str] = set()
    dirty: set[str] = set()  # ever had an "ok" scripted for a restart
    no_count = False

    def settled() -> None:
        nonlocal pending
        pending = False
        exited.clear()
        primed.clear()

    def script(child_id: str, outcomes: list[str]) -> None:
        steps.append({"op": "script", "id": child_id, "outcomes": outcomes})
        if "ok" in outcomes:
            dirty.add(child_id)
        else:
            primed.add(child_id)

    def exit_step(child_id: str, reason: str, settle: bool) -> None:
        nonlocal pending
        steps.append({"op": "exit", "id": child_id, "reason": reason, "settle": settle})
        if settle:
            settled()
        else:
            pending = True
            exited.add(child_id)

    def new_child() -> None:
        child_id = f"c{len(started) + 1:02d}"
        started.append(child_id)
        roll = rng.random()
        if roll < 0.08:
            starts[child_id] = ["fail"]
        elif roll < 0.14:
            starts[child_id] = ["ignore"]
        elif roll < 0.2:
            starts[child_id] = ["ok", "fail"]  # its first restart fails
        steps.append({"op": "start_child", "child": {"id": child_id}})

    def some_child() -> str:
        # Mostly a started one; now and then one that never was.
        if started and rng.random() < 0.93:
            return rng.choice(started[-6:] if rng.random() < 0.7 else started)
        return f"c{len(started) + 1:02d}"

    def terminable(child_id: str) -> bool:
        return child_id not in exited or (child_id in primed and child_id not in dirty)

    def request(target: str | None = None) -> None:
        nonlocal no_count
        roll = rng.random()
        child_id = target or some_child()
        if roll < 0.3 or not started:
            new_child()
        elif roll < 0.6 and terminable(child_id):
            no_count = no_count or pending
            steps.append({"op": "terminate_child", "id": child_id})
        elif roll < 0.8 or no_count:
            steps.append({"op": "which_children"})
        else:
            steps.append({"op": "count_children"})
        settled()

    for _ in range(rng.randint(2, 4)):
        new_child()
    for _ in range(rng.randint(3, 28)):
        roll = rng.random()
        if roll < 0.08 and started:
            # R6.6: a request served between a failed restart and its retry.
            child_id = rng.choice(started)
            script(child_id, ["fail"] * rng.randint(1, 3))
            exit_step(child_id, "crash", settle=False)
            request(child_id if rng.random() < 0.7 else None)
        elif roll < 0.16 and started:
            # A crash loop: failed restarts count toward the intensity.
            child_id = rng.choice(started)
            script(child_id, ["fail"] * rng.randint(1, 6))
            exit_step(child_id, "crash", settle=True)
        elif roll < 0.5:
            reason = rng.choice(["crash", "crash", "normal", "shutdown"])
            exit_step(some_child(), reason, settle=rng.random() > 0.2)
        elif roll < 0.58 and started:
            script(
                rng.choice(started),
                rng.choices(["fail", "ok"], weights=[3, 1], k=rng.randint(1, 3)),
            )
        elif roll < 0.98:
            request()
        else:
            steps.append({"op": "stop"})
            settled()
    return {
        "strategy": "simple_one_for_one",
        "intensity": rng.choice([0, 1, 1, 2, 3, 3, 4, 6]),
        "period": 3600,
        "auto_shutdown": "never",
        "template": template,
        "children": [],
        "starts": starts,
        "steps": steps,
    }


def random_pool_scenarios(seed: int, count: int) -> list[Scenario]:
    """``count`` pool scenarios from ``seed``; the same arguments give the same list."""
    rng = random.Random(seed)
    return [random_pool_scenario(rng) for _ in range(count)]

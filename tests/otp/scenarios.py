"""Random supervisor scenarios in the oracle's format (see oracle.py).

Seeded and deterministic, so that a batch can be run on a real OTP supervisor
once and on trio_smith's core many times, and a recorded batch can be
regenerated. The period is an hour, so restart intensity is a pure count
(time is tested by tests/core, where the clock is ours).
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

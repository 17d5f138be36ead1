"""Record batches of scenarios with the traces a real Erlang/OTP supervisor gives.

Run ``python -m tests.otp.record`` (needs ``erl`` and ``erlc``); it rewrites
tests/otp/recorded.json, which test_differential.py checks on every run: the
static-children batch (``seed``, ``scenarios``, ``otp_traces``) and the
simple_one_for_one batch (``pool_seed``, ``pool_scenarios``,
``pool_otp_traces``).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

from .oracle import run_otp
from .scenarios import random_pool_scenarios, random_scenarios

SEED, COUNT = 2026, 250
POOL_SEED, POOL_COUNT = 2027, 250
RECORDED = pathlib.Path(__file__).with_name("recorded.json")


def main() -> None:
    """Run the batches on OTP and write the file (one scenario per line, for diffs)."""
    scenarios = random_scenarios(SEED, COUNT)
    traces = run_otp(scenarios)
    pool_scenarios = random_pool_scenarios(POOL_SEED, POOL_COUNT)
    pool_traces = run_otp(pool_scenarios)

    def rows(items: Sequence[object]) -> str:
        return ",\n".join(json.dumps(item, separators=(",", ":")) for item in items)

    lines = [
        "{",
        f'"seed": {SEED},',
        '"scenarios": [',
        rows(scenarios),
        "],",
        '"otp_traces": [',
        rows(traces),
        "],",
        f'"pool_seed": {POOL_SEED},',
        '"pool_scenarios": [',
        rows(pool_scenarios),
        "],",
        '"pool_otp_traces": [',
        rows(pool_traces),
        "]}",
    ]
    RECORDED.write_text("\n".join(lines) + "\n")
    entries = sum(map(len, traces)) + sum(map(len, pool_traces))
    print(
        f"recorded {COUNT} + {POOL_COUNT} (simple_one_for_one) scenarios, "
        f"{entries} trace entries in {RECORDED}"
    )


if __name__ == "__main__":
    main()

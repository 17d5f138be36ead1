"""Record a batch of scenarios with the traces a real Erlang/OTP supervisor gives.

Run ``python -m tests.otp.record`` (needs ``erl`` and ``erlc``); it rewrites
tests/otp/recorded.json, which test_differential.py checks on every run.
"""

from __future__ import annotations

import json
import pathlib

from .oracle import run_otp
from .scenarios import random_scenarios

SEED, COUNT = 2026, 250
RECORDED = pathlib.Path(__file__).with_name("recorded.json")


def main() -> None:
    """Run the batch on OTP and write the file (one scenario per line, for diffs)."""
    scenarios = random_scenarios(SEED, COUNT)
    traces = run_otp(scenarios)
    lines = [
        "{",
        f'"seed": {SEED},',
        '"scenarios": [',
        ",\n".join(json.dumps(s, separators=(",", ":")) for s in scenarios),
        "],",
        '"otp_traces": [',
        ",\n".join(json.dumps(t, separators=(",", ":")) for t in traces),
        "]}",
    ]
    RECORDED.write_text("\n".join(lines) + "\n")
    print(f"recorded {COUNT} scenarios, {sum(map(len, traces))} trace entries in {RECORDED}")


if __name__ == "__main__":
    main()

"""Test oracle: run supervisor scenarios against a real Erlang/OTP ``supervisor``.

:func:`run_otp` takes a batch of *scenarios* (JSON-able dicts) and returns, per
scenario, the *trace* a stock OTP supervisor produces for it (a list of
JSON-able entries).  The Erlang side lives in ``diff_harness.erl`` next to this
file; its header comment documents the trace format and, in particular, how
``"settle": false`` exits interleave with the following step.

The whole batch runs in ONE ``erl`` process: the harness reads the scenarios
(written here as Erlang terms for ``file:consult/1``, strings as binaries) and
writes one line of JSON per scenario.

Trace entries (strings, ints and lists only)::

    ["start", Id, "ok"|"fail"|"ignore"]      a call of the child start function
    ["stop", Id]                             the supervisor shut the child down
    ["exit", Id, Reason] / ["exit_skipped", Id]
    ["api", Op, Id, Result]                  start/restart/terminate/delete_child
    ["which", [[Id, "running"|"undefined"|"restarting"], ...]]   in start order
    ["count", Specs, Active, Supervisors, Workers]
    ["sup_exit", Reason] / ["sup_start_failed", Id] / ["sup_start_error", Text]

``Result`` is one of "ok", "ok_undefined", "not_found", "running",
"restarting", "already_present", "already_started", "bad_combination",
"start_failed", "sup_down" (the supervisor died before replying; which/count
then give ``["which", "sup_down"]`` / ``["count", "sup_down"]``), or else the
one-line ``~p`` text of OTP's reply.

After every step the supervisor is settled (idle, mailbox empty), except
after ``{"op": "exit", ..., "settle": false}``: then what the next steps send
the supervisor is queued behind the child's 'EXIT' (a call is served after the
first restart attempt but before its try_again_restart retry).  An ``exit``
step in that state only finds children that the supervisor still holds a pid
for (its 'EXIT'-queue not yet handled) and that have not been killed since.
Pending work is flushed at the end of the scenario.

A pool scenario (``"strategy": "simple_one_for_one"``) has a ``"template"``
(``{"restart": ...}``) instead of ``"children"``; its ``start_child`` steps
name only the new child's id (``supervisor:start_child(Sup, [Id])``), and it
takes no ``restart_child`` or ``delete_child``. The harness maps OTP's pids to
ids; see the header of ``diff_harness.erl`` for how, and for the order of the
``stop`` entries of a pool's shutdown.

Example::

    traces = run_otp([{
        "strategy": "one_for_all", "intensity": 3, "period": 3600,
        "children": [{"id": "a"}, {"id": "b"}],
        "steps": [{"op": "exit", "id": "b", "reason": "crash"}],
    }])
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["HARNESS_SOURCE", "otp_available", "run_otp", "to_erlang_term"]

#: The Erlang harness (harness, supervisor callback and child module in one).
HARNESS_SOURCE = Path(__file__).with_name("diff_harness.erl")

#: Default wall-clock limit for one batch (one ``erl`` run).
DEFAULT_TIMEOUT = 120.0

_OPS = frozenset(
    {
        "exit",
        "script",
        "start_child",
        "restart_child",
        "terminate_child",
        "delete_child",
        "which_children",
        "count_children",
        "stop",
    }
)
_OUTCOMES = frozenset({"ok", "fail", "ignore"})
_ID_OPS = frozenset({"exit", "script", "restart_child", "terminate_child", "delete_child"})
_PLAIN_STRING = re.compile(r"[A-Za-z0-9_ .:/+-]*")


def otp_available() -> bool:
    """Return True if ``erl`` and ``erlc`` are on ``PATH``."""
    return shutil.which("erl") is not None and shutil.which("erlc") is not None


def run_otp(
    scenarios: Sequence[Mapping[str, Any]], *, timeout: float = DEFAULT_TIMEOUT
) -> list[list[Any]]:
    """Run every scenario against OTP's ``supervisor``; return one trace each.

    Args:
        scenarios: scenario dicts (see ``diff_harness.erl`` and the project's
            test docs for the format).
        timeout: seconds allowed for the whole batch.

    Returns:
        The traces, in the order of ``scenarios``.

    Raises:
        ValueError: a scenario is malformed in a way the harness would not
            report as a trace (unknown step op, unknown start outcome, ...).
        RuntimeError: compiling or running the Erlang harness failed (the
            message includes Erlang's output).
    """
    for index, scenario in enumerate(scenarios):
        _check_scenario(index, scenario)
    if not scenarios:
        return []
    ebin = _compiled_harness()
    with tempfile.TemporaryDirectory(prefix="trio_smith_otp_run_") as tmp:
        in_path = Path(tmp) / "scenarios.eterm"
        out_path = Path(tmp) / "traces.jsonl"
        in_path.write_text(
            "".join(to_erlang_term(scenario) + ".\n" for scenario in scenarios),
            encoding="utf-8",
        )
        cmd = [
            "erl",
            "-noshell",
            "-noinput",
            "-pa",
            str(ebin),
            "-run",
            "diff_harness",
            "main",
            str(in_path),
            str(out_path),
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"OTP harness timed out after {timeout} s on {len(scenarios)} scenarios\n"
                f"{_output(exc.stdout, exc.stderr)}"
            ) from exc
        if proc.returncode != 0 or not out_path.exists():
            raise RuntimeError(
                f"OTP harness failed (exit status {proc.returncode})\n"
                f"{_output(proc.stdout, proc.stderr)}"
            )
        lines = out_path.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(scenarios):
        raise RuntimeError(
            f"OTP harness wrote {len(lines)} traces for {len(scenarios)} scenarios\n"
            f"{_output(proc.stdout, proc.stderr)}"
        )
    traces: list[list[Any]] = []
    for line in lines:
        trace = json.loads(line)
        if not isinstance(trace, list):
            raise RuntimeError(f"OTP harness wrote a non-list trace: {line!r}")
        traces.append(trace)
    return traces


def to_erlang_term(value: Any) -> str:
    """Render a JSON-able value as Erlang term text (for ``file:consult/1``).

    dict -> map (keys must be strings), str -> binary, bool -> true/false,
    None -> undefined, int -> integer, list/tuple -> list.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "undefined"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _erlang_binary(value)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"map keys must be strings, got {key!r}")
            items.append(f"{_erlang_binary(key)} => {to_erlang_term(item)}")
        return "#{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_erlang_term(item) for item in value) + "]"
    raise TypeError(f"cannot send {value!r} to Erlang")


def _erlang_binary(text: str) -> str:
    """Return an Erlang binary literal holding ``text`` as UTF-8."""
    if _PLAIN_STRING.fullmatch(text):
        return f'<<"{text}">>'
    return "<<" + ",".join(str(byte) for byte in text.encode("utf-8")) + ">>"


def _check_scenario(index: int, scenario: Mapping[str, Any]) -> None:
    """Reject what the harness would crash on rather than trace."""

    def check_outcomes(outcomes: Any) -> None:
        if not isinstance(outcomes, list) or not set(outcomes) <= _OUTCOMES:
            raise ValueError(f"scenario {index}: bad start outcomes {outcomes!r}")

    def check_child(child: Any) -> None:
        if not isinstance(child, Mapping) or not isinstance(child.get("id"), str):
            raise ValueError(f"scenario {index}: bad child {child!r}")

    pool = scenario.get("strategy") == "simple_one_for_one"
    if pool and (scenario.get("children") or not isinstance(scenario.get("template"), Mapping)):
        raise ValueError(f"scenario {index}: a pool has a template and no children")
    for child in scenario.get("children", []):
        check_child(child)
    for outcomes in scenario.get("starts", {}).values():
        check_outcomes(outcomes)
    for step in scenario.get("steps", []):
        op = step.get("op")
        if op not in _OPS:
            raise ValueError(f"scenario {index}: unknown step {step!r}")
        if op == "script":
            check_outcomes(step.get("outcomes"))
        if op == "start_child":
            check_child(step.get("child"))
        if op in _ID_OPS and not isinstance(step.get("id"), str):
            raise ValueError(f"scenario {index}: step without id {step!r}")
        if pool and op in ("restart_child", "delete_child"):
            raise ValueError(f"scenario {index}: {op} is not offered by a pool (D25)")
        if op == "exit" and not isinstance(step.get("reason"), str):
            raise ValueError(f"scenario {index}: exit step without reason {step!r}")


def _compiled_harness() -> Path:
    """Return an ebin directory holding the current harness, compiled once."""
    return _compile(hashlib.sha256(HARNESS_SOURCE.read_bytes()).hexdigest())


@functools.cache
def _compile(source_digest: str) -> Path:
    """Compile the harness (once per source version); return its ebin directory."""
    del source_digest  # only the cache key
    if not otp_available():
        raise RuntimeError("Erlang/OTP (erl, erlc) is not on PATH")
    ebin = Path(tempfile.mkdtemp(prefix="trio_smith_otp_ebin_"))
    atexit.register(shutil.rmtree, ebin, ignore_errors=True)
    try:
        proc = subprocess.run(
            ["erlc", "-Wall", "-o", str(ebin), str(HARNESS_SOURCE)],
            cwd=ebin,
            env=_erl_env(),
            capture_output=True,
            text=True,
            timeout=DEFAULT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"erlc timed out on {HARNESS_SOURCE}\n{_output(exc.stdout, exc.stderr)}"
        ) from exc
    if proc.returncode != 0 or not (ebin / "diff_harness.beam").exists():
        raise RuntimeError(
            f"erlc failed on {HARNESS_SOURCE} (exit status {proc.returncode})\n"
            f"{_output(proc.stdout, proc.stderr)}"
        )
    return ebin


def _erl_env() -> dict[str, str]:
    """Environment for erl/erlc: no erl_crash.dump files anywhere."""
    return {**os.environ, "ERL_CRASH_DUMP_SECONDS": "0"}


def _output(stdout: str | bytes | None, stderr: str | bytes | None) -> str:
    """Format a subprocess's captured output for an error message."""

    def text(data: str | bytes | None) -> str:
        if data is None:
            return ""
        if isinstance(data, bytes):
            return data.decode("utf-8", errors="replace")
        return data

    return f"--- stdout ---\n{text(stdout)}\n--- stderr ---\n{text(stderr)}"

"""trio's private names that trio_smith reads (design rule 32): present, and as trio behaves.

Each fast reader must agree with the public call it stands in for, under
trio's SystemClock and under MockClock; a missing or reshaped name must make
``import trio_smith`` fail loudly, naming it and trio's version.
"""

from __future__ import annotations

import ast
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from time import perf_counter

import attrs
import pytest
import trio
import trio.testing

from trio_smith import _trio_private
from trio_smith._trio_private import (
    TESTED_TRIO,
    TrioInternalsChanged,
    cancel_requested,
    current_time,
    system_clock_offset,
    untested_trio_message,
)

RUN = "trio._core._run"
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- the names


def test_the_names_are_trio_s_own() -> None:
    import trio._core._run as run

    assert _trio_private._RUN_CONTEXT is run.GLOBAL_RUN_CONTEXT
    assert _trio_private.SystemClock is run.SystemClock
    assert _trio_private._load() == (run.GLOBAL_RUN_CONTEXT, run.SystemClock)


async def test_the_run_context_holds_the_runner_and_the_current_task() -> None:
    context = _trio_private._RUN_CONTEXT
    assert context.task is trio.lowlevel.current_task()
    assert type(context.runner.clock) is _trio_private.SystemClock


async def test_the_task_s_cancel_status_is_the_one_trio_checks() -> None:
    task = trio.lowlevel.current_task()
    assert task._cancel_status.effectively_cancelled is False
    with trio.CancelScope() as scope:  # noqa: ASYNC100 (cancel() sets the flag read)
        scope.cancel()
        assert task._cancel_status.effectively_cancelled is True


# ---------------------------------------------------------------- the clock


async def test_under_the_system_clock_the_fast_reads_are_trio_s_time() -> None:
    for _ in range(100):
        before = trio.current_time()
        now = current_time()
        after = trio.current_time()
        assert before <= now <= after
        offset = system_clock_offset()
        assert offset is not None
        before = trio.current_time()
        now = offset + perf_counter()
        after = trio.current_time()
        assert before <= now <= after


async def test_under_a_mock_clock_the_fast_reads_are_trio_s_time(
    mock_clock: trio.testing.MockClock,
) -> None:
    assert system_clock_offset() is None
    assert current_time() == trio.current_time()
    mock_clock.jump(12.5)
    assert current_time() == trio.current_time()
    mock_clock.rate = 3.0
    await trio.sleep(0.001)
    first = current_time()
    assert trio.current_time() >= first
    mock_clock.rate = 0.0
    assert current_time() == trio.current_time() == mock_clock.current_time()


def test_a_system_clock_subclass_is_asked_its_own_time() -> None:
    # Only trio's own SystemClock takes the fast path (an exact type check).
    class Shifted(_trio_private.SystemClock):  # type: ignore[misc]
        def current_time(self) -> float:
            return 1e9

    async def main() -> tuple[float, float | None, float]:
        return current_time(), system_clock_offset(), trio.current_time()

    assert trio.run(main, clock=Shifted()) == (1e9, None, 1e9)


@pytest.mark.parametrize("reader", [current_time, system_clock_offset, cancel_requested])
def test_outside_a_run_the_readers_raise_like_trio(reader: object) -> None:
    with pytest.raises(RuntimeError, match="must be called from async context"):
        trio.current_time()
    with pytest.raises(RuntimeError, match=r"^must be called from async context$"):
        reader()  # type: ignore[operator]


# ---------------------------------------------------------------- cancellation


def trio_says_cancelled() -> bool:
    # trio documents checkpoint_if_cancelled() as this test.
    return trio.current_effective_deadline() == -math.inf


async def test_cancel_requested_agrees_with_trio_in_every_state(
    mock_clock: trio.testing.MockClock,
) -> None:
    states = []

    def record() -> None:
        states.append((cancel_requested(), trio_says_cancelled()))

    record()
    with trio.CancelScope() as outer:
        record()
        outer.cancel()
        record()
        with trio.CancelScope(shield=True):  # noqa: ASYNC100
            record()
            with trio.CancelScope() as inner:  # noqa: ASYNC100
                inner.cancel()
                record()
            record()
        record()
        with pytest.raises(trio.Cancelled):
            await trio.lowlevel.checkpoint_if_cancelled()  # trio agrees: raises
    with trio.move_on_after(1):
        record()
        mock_clock.jump(2)
        with trio.CancelScope(shield=True):
            # Lets trio's scheduler notice the deadline (shielded: it would
            # raise Cancelled here).
            await trio.testing.wait_all_tasks_blocked()
        record()
    record()
    assert [mine for mine, _ in states] == [theirs for _, theirs in states]
    assert [mine for mine, _ in states] == [
        False,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
    ]


async def test_cancel_requested_then_checkpoint_if_cancelled_raises_exactly_when_asked() -> None:
    with trio.CancelScope() as scope:
        assert not cancel_requested()
        await trio.lowlevel.checkpoint_if_cancelled()
        scope.cancel()
        assert cancel_requested()
        await trio.lowlevel.checkpoint_if_cancelled()
        raise AssertionError("not cancelled")
    assert scope.cancelled_caught


async def test_cancel_requested_never_yields() -> None:
    with trio.testing.assert_no_checkpoints():
        cancel_requested()
    with trio.CancelScope() as scope:  # noqa: ASYNC100 (cancel() sets the flag read)
        scope.cancel()
        with trio.testing.assert_no_checkpoints():
            assert cancel_requested()


# ---------------------------------------------------------------- loud failures


@pytest.mark.parametrize("name", ["GLOBAL_RUN_CONTEXT", "Runner", "SystemClock", "CancelStatus"])
def test_a_missing_name_is_a_loud_error(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import trio._core._run as run

    monkeypatch.delattr(run, name)
    with pytest.raises(TrioInternalsChanged) as caught:
        _trio_private._load()
    message = str(caught.value)
    assert f"its private name {RUN}.{name} does not exist" in message
    assert f"trio {trio.__version__}" in message
    assert "rule 32" in message
    assert "was tested with trio >=0.32,<0.36" in message
    assert isinstance(caught.value, ImportError)


def test_a_missing_module_is_a_loud_error() -> None:
    with pytest.raises(
        TrioInternalsChanged,
        match=rf"^trio_smith cannot use trio {trio.__version__}: its private name "
        r"trio\._core\._gone cannot be imported\.",
    ):
        _trio_private._load("trio._core._gone")


def test_a_run_context_of_another_shape_is_a_loud_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import trio._core._run as run

    monkeypatch.setattr(run, "GLOBAL_RUN_CONTEXT", object())
    with pytest.raises(
        TrioInternalsChanged, match="GLOBAL_RUN_CONTEXT is no longer a thread-local"
    ):
        _trio_private._load()


@pytest.mark.parametrize(
    ("owner", "name", "field"),
    [
        (RUN, "Runner", "clock"),
        (RUN, "CancelStatus", "effectively_cancelled"),
        ("trio.lowlevel", "Task", "_cancel_status"),
    ],
)
def test_a_field_that_is_gone_is_a_loud_error(
    monkeypatch: pytest.MonkeyPatch, owner: str, name: str, field: str
) -> None:
    module = sys.modules[owner]

    @attrs.define
    class Reshaped:
        other: int = 0

    monkeypatch.setattr(module, name, Reshaped)
    with pytest.raises(
        TrioInternalsChanged,
        match=rf"its private name {owner}\.{name}\.{field} is no longer an attrs field",
    ):
        _trio_private._load()


def test_a_system_clock_that_is_not_offset_plus_perf_counter_is_a_loud_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trio._core._run as run

    class Drifting(run.SystemClock):
        def current_time(self) -> float:
            return self.offset + perf_counter() + 1.0

    monkeypatch.setattr(run, "SystemClock", Drifting)
    with pytest.raises(TrioInternalsChanged, match=r"SystemClock\.offset is gone, or current_time"):
        _trio_private._load()

    class NoOffset(trio.abc.Clock):
        def start_clock(self) -> None:
            pass

        def current_time(self) -> float:
            return perf_counter()

        def deadline_to_sleep_time(self, deadline: float) -> float:
            return deadline - perf_counter()

    monkeypatch.setattr(run, "SystemClock", NoOffset)
    with pytest.raises(TrioInternalsChanged, match=r"SystemClock\.offset is gone"):
        _trio_private._load()

    monkeypatch.setattr(run, "SystemClock", int)
    with pytest.raises(TrioInternalsChanged, match=r"SystemClock is no longer a trio\.abc\.Clock"):
        _trio_private._load()


def test_import_trio_smith_fails_loudly_when_a_name_is_gone() -> None:
    code = "import trio._core._run as run; del run.SystemClock; import trio_smith"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("trio_smith._exceptions.TrioInternalsChanged: trio_smith cannot use")
    assert f"trio {trio.__version__}: its private name trio._core._run.SystemClock" in last


# ---------------------------------------------------------------- versions


def test_the_tested_range_is_pyproject_s_bound() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (low, high) = TESTED_TRIO
    assert f"trio>={low[0]}.{low[1]},<{high[0]}.{high[1]}" in project["dependencies"]


def test_the_installed_trio_is_in_the_tested_range() -> None:
    assert untested_trio_message(trio.__version__) is None


@pytest.mark.parametrize("version", ["0.32.0", "0.33.1", "0.35.0", "0.35.9.dev0"])
def test_no_warning_inside_the_range(version: str) -> None:
    assert untested_trio_message(version) is None


@pytest.mark.parametrize("version", ["0.36.0", "0.36.0rc1", "0.40.2", "1.0.0", "0.31.0", "x"])
def test_a_warning_outside_the_range(version: str) -> None:
    message = untested_trio_message(version)
    assert message is not None
    assert message.startswith(
        f"trio_smith was tested with trio >=0.32,<0.36 and trio {version} is installed."
    )


def test_an_untested_trio_warns_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trio, "__version__", "0.36.0")
    with pytest.warns(RuntimeWarning, match=r"^trio_smith was tested with trio >=0\.32,<0\.36"):
        _trio_private._warn_if_untested()


def test_an_untested_trio_warns_once_per_process() -> None:
    code = (
        "import trio; trio.__version__ = '0.36.0'\n"
        "import trio_smith, trio_smith.events, trio_smith.resilience, importlib\n"
        "import trio_smith._trio_private\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RuntimeWarning: trio_smith was tested with trio") == 1


# ---------------------------------------------------------------- one module

#: trio's private attributes and names that trio_smith reads (or might).
PRIVATE_NAMES = {
    "GLOBAL_RUN_CONTEXT",
    "SystemClock",
    "CancelStatus",
    "Runner",
    "_cancel_status",
    "_cancel_points",
    "_schedule_points",
    "_runner",
    "effectively_cancelled",
}


def private_trio_uses(source: str) -> list[int]:
    """The lines of ``source`` (code, not comments or docstrings) that use a private trio name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            private = (node.module or "").startswith("trio._")
        elif isinstance(node, ast.Import):
            private = any(alias.name.startswith("trio._") for alias in node.names)
        elif isinstance(node, ast.Attribute):
            private = node.attr in PRIVATE_NAMES
        elif isinstance(node, ast.Name):
            private = node.id in PRIVATE_NAMES
        elif isinstance(node, ast.Call):
            # importlib.import_module("trio._core._run"), getattr(m, "SystemClock")
            private = any(
                isinstance(arg, ast.Constant)
                and isinstance(arg.value, str)
                and (arg.value.startswith("trio._") or arg.value in PRIVATE_NAMES)
                for arg in node.args
            )
        else:
            continue
        if private:
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_finder_sees_the_private_names_this_module_uses() -> None:
    source = (ROOT / "trio_smith" / "_trio_private.py").read_text()
    assert private_trio_uses(source) != []
    assert private_trio_uses("import trio._core._run\nx = 1\n") == [1]
    assert private_trio_uses("task = t\nok = task._cancel_status.effectively_cancelled\n") == [2]
    assert private_trio_uses('m = importlib.import_module("trio._core._run")\n') == [1]
    assert private_trio_uses('c = getattr(run, "GLOBAL_RUN_CONTEXT", None)\n') == [1]
    assert private_trio_uses("# trio._core._run.SystemClock\n'SystemClock'\n") == []


def test_no_other_module_reads_a_private_trio_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "trio_smith").rglob("*.py"))
        if path.name != "_trio_private.py"
        for line in private_trio_uses(path.read_text())
    ]
    assert found == []

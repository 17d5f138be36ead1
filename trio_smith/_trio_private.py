"""The one module that reads trio's private names (design rule 32).

Two hot paths read trio's internals because trio's public API costs more
than the rest of their work (measured figures: design rule 32):

* the circuit breaker's ``call()`` reads the time of trio's default clock as
  ``offset + perf_counter()`` (:func:`system_clock_offset`,
  :func:`current_time`; design rule 23);
* the event bus and the memory store check for cancellation on every call by
  reading the task's cancel status (:func:`cancel_requested`; design
  rule 17).

Every private name they need is checked here, once, when trio_smith is
imported: a trio release that renamed or reshaped one makes ``import
trio_smith`` raise :class:`TrioInternalsChanged` naming it and trio's version,
rather than silently taking a slower path. A trio newer than the range
trio_smith was tested with (:data:`TESTED_TRIO`, the bound in
pyproject.toml) gets a ``RuntimeWarning`` at import, once.
tests/test_trio_private.py checks each name's behaviour against trio's public
API.
"""

from __future__ import annotations

import importlib
import re
import threading
import warnings
from time import perf_counter
from typing import Any, Final

import attrs
import trio

from ._exceptions import TrioInternalsChanged

__all__ = [
    "TESTED_TRIO",
    "TrioInternalsChanged",
    "cancel_requested",
    "current_time",
    "system_clock_offset",
    "untested_trio_message",
]

#: The trio versions trio_smith was tested with: ``>= low, < high`` (minor
#: versions), as pyproject.toml's dependency says.
TESTED_TRIO: Final = ((0, 32), (0, 36))


def _changed(name: str, problem: str) -> TrioInternalsChanged:
    low, high = (f"{major}.{minor}" for major, minor in TESTED_TRIO)
    return TrioInternalsChanged(
        f"trio_smith cannot use trio {trio.__version__}: its private name {name} {problem}. "
        f"trio_smith reads it on its hot paths (docs/design.md rule 32) and was tested "
        f"with trio >={low},<{high}; install a trio in that range, or a trio_smith "
        f"release that supports trio {trio.__version__}."
    )


def _attrs_field(cls: type, field: str, qualname: str) -> None:
    if not (attrs.has(cls) and field in attrs.fields_dict(cls)):
        raise _changed(f"{qualname}.{field}", "is no longer an attrs field")


def _load(module_name: str = "trio._core._run") -> tuple[Any, Any]:
    """Check every private name and its shape; return (run context, SystemClock).

    Raises:
        TrioInternalsChanged: naming the first name that is missing or changed.
    """
    try:
        run: Any = importlib.import_module(module_name)
    except ImportError:
        raise _changed(module_name, "cannot be imported") from None
    found: dict[str, Any] = {}
    for name in ("GLOBAL_RUN_CONTEXT", "Runner", "SystemClock", "CancelStatus"):
        value = getattr(run, name, None)
        if value is None:
            raise _changed(f"{module_name}.{name}", "does not exist")
        found[name] = value
    context = found["GLOBAL_RUN_CONTEXT"]
    # A thread-local with .runner (the Runner) and .task (the current Task)
    # set while trio runs in this thread: what trio.lowlevel.current_task()
    # and trio.current_time() read.
    annotations = getattr(type(context), "__annotations__", {})
    if not (isinstance(context, threading.local) and {"runner", "task"} <= annotations.keys()):
        raise _changed(
            f"{module_name}.GLOBAL_RUN_CONTEXT",
            "is no longer a thread-local with .runner and .task",
        )
    _attrs_field(found["Runner"], "clock", f"{module_name}.Runner")
    _attrs_field(trio.lowlevel.Task, "_cancel_status", "trio.lowlevel.Task")
    _attrs_field(found["CancelStatus"], "effectively_cancelled", f"{module_name}.CancelStatus")
    system_clock = found["SystemClock"]
    if not (isinstance(system_clock, type) and issubclass(system_clock, trio.abc.Clock)):
        raise _changed(f"{module_name}.SystemClock", "is no longer a trio.abc.Clock")
    # Its time must be exactly offset + perf_counter(): the hot path adds them.
    clock = system_clock()
    offset = getattr(clock, "offset", None)
    before = perf_counter()
    now = clock.current_time()
    after = perf_counter()
    if type(offset) is not float or not offset + before <= now <= offset + after:
        raise _changed(
            f"{module_name}.SystemClock.offset",
            "is gone, or current_time() is no longer offset + time.perf_counter()",
        )
    return context, system_clock


_RUN_CONTEXT, SystemClock = _load()


def cancel_requested() -> bool:
    """Whether the calling task's ``checkpoint_if_cancelled()`` would raise; never yields.

    Use it as ``if cancel_requested(): await
    trio.lowlevel.checkpoint_if_cancelled()``: trio then raises ``Cancelled``
    (or the pending ``KeyboardInterrupt``, which this answer does not
    include: it is delivered at the task's next yield). It reads
    ``task._cancel_status.effectively_cancelled``, the flag trio's own check
    reads, without building a coroutine.

    Raises:
        RuntimeError: outside a trio run.
    """
    try:
        task = _RUN_CONTEXT.task
    except AttributeError:
        raise RuntimeError("must be called from async context") from None
    return task._cancel_status.effectively_cancelled  # type: ignore[no-any-return]


def system_clock_offset() -> float | None:
    """The running trio's ``SystemClock`` offset, or None for any other clock.

    With trio's default clock, ``trio.current_time()`` is ``offset +
    time.perf_counter()``, and durations are differences of
    ``perf_counter()`` readings.

    Raises:
        RuntimeError: outside a trio run.
    """
    try:
        clock = _RUN_CONTEXT.runner.clock
    except AttributeError:
        raise RuntimeError("must be called from async context") from None
    return clock.offset if type(clock) is SystemClock else None


def current_time() -> float:
    """``trio.current_time()``, read without its layers of calls for trio's default clock.

    Any other clock (``MockClock``, a custom one) answers through its own
    ``current_time()``, as in trio.

    Raises:
        RuntimeError: outside a trio run.
    """
    try:
        clock = _RUN_CONTEXT.runner.clock
    except AttributeError:
        raise RuntimeError("must be called from async context") from None
    if type(clock) is SystemClock:
        return clock.offset + perf_counter()  # type: ignore[no-any-return]
    return clock.current_time()  # type: ignore[no-any-return]


def untested_trio_message(version: str) -> str | None:
    """The warning for a trio ``version`` outside :data:`TESTED_TRIO`, or None."""
    match = re.match(r"(\d+)\.(\d+)", version)
    found = None if match is None else (int(match[1]), int(match[2]))
    low, high = TESTED_TRIO
    if found is not None and low <= found < high:
        return None
    return (
        f"trio_smith was tested with trio >={low[0]}.{low[1]},<{high[0]}.{high[1]} and "
        f"trio {version} is installed. trio_smith reads some of trio's private names "
        f"(docs/design.md rule 32); they were all found, but their behaviour in this "
        f"trio is untested. Run trio_smith's tests/test_trio_private.py against it."
    )


def _warn_if_untested() -> None:
    message = untested_trio_message(trio.__version__)
    if message is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=2)


_warn_if_untested()

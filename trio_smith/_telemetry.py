"""Telemetry hooks: named events, synchronous handlers, nothing to pay when none is attached.

In the manner of Erlang's ``telemetry`` library: a library executes an event
(a tuple of names, numeric measurements, free-form metadata), and the
handlers attached to that name are called at once, in the executing task, in
the order they were attached. A handler that raises is detached and logged
once (logger ``trio_smith.telemetry``); the code that executed the event
never sees the error (docs/design.md rule 44).

The emission points of the library read :data:`enabled` (any handler at all)
before they call :func:`attached` and build their dictionaries, so that with
nothing attached an emission costs one module attribute read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final, TypeAlias

import trio

from ._trio_private import current_time

__all__ = [
    "EventName",
    "Handler",
    "attach",
    "attached",
    "detach",
    "enabled",
    "execute",
    "handlers",
    "span",
]

log: Final = logging.getLogger("trio_smith.telemetry")

#: An event's name: a non-empty tuple of non-empty strings, most general first.
EventName: TypeAlias = tuple[str, ...]
#: ``handler(event_name, measurements, metadata)``, called synchronously.
Handler: TypeAlias = Callable[[EventName, Mapping[str, float], Mapping[str, object]], None]

# The library's events (docs/operations.md lists their measurements and metadata).
CHILD_STARTED: Final = ("trio_smith", "child", "started")
CHILD_FAILED: Final = ("trio_smith", "child", "failed")
CHILD_RESTARTED: Final = ("trio_smith", "child", "restarted")
CHILD_STOPPED: Final = ("trio_smith", "child", "stopped")
SUPERVISOR_GAVE_UP: Final = ("trio_smith", "supervisor", "gave_up")
BREAKER_STATE_CHANGE: Final = ("trio_smith", "breaker", "state_change")
BREAKER_CALL: Final = ("trio_smith", "breaker", "call")
RETRY_RETRY: Final = ("trio_smith", "retry", "retry")
RETRY_CALL: Final = ("trio_smith", "retry", "call")
TIME_LIMITER_CALL: Final = ("trio_smith", "time_limiter", "call")
BULKHEAD_CALL: Final = ("trio_smith", "bulkhead", "call")
RATE_LIMITER_ACQUIRE: Final = ("trio_smith", "rate_limiter", "acquire")
BUS_DROPPED: Final = ("trio_smith", "bus", "dropped")
STORE_COMMIT: Final = ("trio_smith", "store", "commit")
STORE_DROPPED: Final = ("trio_smith", "store", "dropped")
ROUTER_REQUEST: Final = ("trio_smith", "router", "request")
#: The events of the router's request span.
ROUTER_REQUEST_EVENTS: Final = tuple(
    (*ROUTER_REQUEST, end) for end in ("start", "stop", "exception")
)

#: Whether any handler is attached: the one check of every emission point.
enabled = False

#: Every attached handler by id, in attach order: its names and function.
_BY_ID: Final[dict[str, tuple[tuple[EventName, ...], Handler]]] = {}
#: The handlers of each event name, in attach order. Tuples, rebuilt on each
#: attach and detach, so that a handler may detach (itself or another)
#: while an event is being executed.
_BY_NAME: dict[EventName, tuple[tuple[str, Handler], ...]] = {}


def _check_name(value: object) -> EventName:
    if (
        not isinstance(value, tuple)
        or not value
        or not all(isinstance(part, str) and part for part in value)
    ):
        raise ValueError(
            f"an event name must be a non-empty tuple of non-empty strings, got {value!r}"
        )
    return value


def _rebuild() -> None:
    global _BY_NAME, enabled
    by_name: dict[EventName, list[tuple[str, Handler]]] = {}
    for handler_id, (names, handler) in _BY_ID.items():
        for name in names:
            by_name.setdefault(name, []).append((handler_id, handler))
    _BY_NAME = {name: tuple(found) for name, found in by_name.items()}
    enabled = bool(_BY_ID)


def attach(handler_id: str, event_names: Iterable[EventName], handler: Handler) -> None:
    """Call ``handler`` for every event executed under one of ``event_names``.

    Handlers are called synchronously, in the task that executes the event,
    in the order they were attached. One that raises is detached and logged.

    Args:
        handler_id: a unique name for this attachment, to :func:`detach` it.
        event_names: the event names to handle (at least one; repeats count once).
        handler: ``handler(event_name, measurements, metadata)``.

    Raises:
        ValueError: ``handler_id`` is empty or already attached; an event
            name is not a non-empty tuple of non-empty strings; no event name.
        TypeError: ``handler_id`` is not a string; ``event_names`` is a
            string, a single name, or not iterable; ``handler`` is not
            callable.
    """
    if not isinstance(handler_id, str):
        raise TypeError(f"handler_id must be a str, got {handler_id!r}")
    if not handler_id:
        raise ValueError("handler_id must not be empty")
    given: object = event_names
    if isinstance(given, str) or (
        isinstance(given, tuple) and given and all(isinstance(part, str) for part in given)
    ):
        # attach("h", ("trio_smith", "child", "failed"), f): one name, not a list of them.
        raise TypeError(f"event_names must be an iterable of event names, got {given!r}")
    try:
        listed = list(event_names)
    except TypeError:
        raise TypeError(f"event_names must be an iterable of event names, got {given!r}") from None
    names = tuple(dict.fromkeys(_check_name(name) for name in listed))
    if not names:
        raise ValueError(f"handler {handler_id!r} must be attached to at least one event name")
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {handler!r}")
    if handler_id in _BY_ID:
        raise ValueError(f"a telemetry handler with id {handler_id!r} is already attached")
    _BY_ID[handler_id] = (names, handler)
    _rebuild()


def detach(handler_id: str) -> bool:
    """Detach the handler attached as ``handler_id``.

    Returns:
        True if it was attached, False if not.
    """
    if _BY_ID.pop(handler_id, None) is None:
        return False
    _rebuild()
    return True


def handlers() -> list[tuple[str, tuple[EventName, ...]]]:
    """Every attached handler's id and event names, in attach order (a snapshot)."""
    return [(handler_id, names) for handler_id, (names, _) in _BY_ID.items()]


def attached(name: EventName) -> bool:
    """Whether some handler listens to ``name``: a dict lookup, to skip building an event."""
    return name in _BY_NAME


def attached_any(names: Iterable[EventName]) -> bool:
    """Whether some handler listens to one of ``names`` (a span's three events)."""
    return any(name in _BY_NAME for name in names)


def execute(
    name: EventName, measurements: Mapping[str, float], metadata: Mapping[str, object]
) -> None:
    """Call the handlers attached to ``name`` with ``measurements`` and ``metadata``.

    A handler that raises an ``Exception`` is detached and the error logged
    (logger ``trio_smith.telemetry``, once: it is never called again); the
    others still run and nothing is raised here.

    Args:
        name: the event name.
        measurements: numbers (durations in seconds, counts).
        metadata: what the numbers are about.
    """
    found = _BY_NAME.get(name)
    if found is None:
        return
    for handler_id, handler in found:
        try:
            handler(name, measurements, metadata)
        except Exception:
            # Erlang's telemetry: a failing handler is removed, so that it
            # cannot fail (nor flood the log) on every event (rule 44).
            entry = _BY_ID.get(handler_id)
            if entry is None or entry[1] is not handler:
                continue  # detached (or replaced) meanwhile: logged already
            del _BY_ID[handler_id]
            _rebuild()
            log.exception(
                "telemetry handler %r failed on event %s and was detached",
                handler_id,
                ".".join(name),
                extra={"handler_id": handler_id, "telemetry_event": list(name)},
            )


def _kind(error: BaseException) -> str:
    if isinstance(error, Exception):
        return "error"
    if isinstance(error, trio.Cancelled):
        return "cancelled"
    return "exit"  # KeyboardInterrupt, SystemExit, a group of them


def _now() -> float:
    """trio's clock in a trio run (so MockClock drives durations), else perf_counter()."""
    try:
        return current_time()
    except RuntimeError:
        return time.perf_counter()


@contextmanager
def span(name: EventName, metadata: Mapping[str, object]) -> Iterator[dict[str, object]]:
    """Execute ``name + ("start",)`` now, and ``("stop",)`` or ``("exception",)`` at the end.

    The start event has ``{"system_time": time.time()}``; the stop and
    exception events ``{"duration": seconds}`` (trio's clock inside a trio
    run, else ``time.perf_counter()``). The exception event's metadata adds
    ``kind`` (``"error"`` for an ``Exception``, ``"cancelled"`` for
    ``trio.Cancelled``, ``"exit"`` for another ``BaseException``) and
    ``reason`` (the exception's type name and message). The exception
    propagates unchanged. A span begun while no handler at all is attached
    executes nothing.

    Args:
        name: the span's event name (without ``"start"``).
        metadata: metadata of all three events.

    Yields:
        A dict whose items are added to the stop (or exception) metadata.

    Raises:
        ValueError: ``name`` is not a non-empty tuple of non-empty strings.
    """
    _check_name(name)
    extra: dict[str, object] = {}
    if not enabled:
        yield extra
        return
    start_name = (*name, "start")
    if start_name in _BY_NAME:
        execute(start_name, {"system_time": time.time()}, metadata)
    began = _now()
    try:
        yield extra
    except BaseException as error:
        failed = (*name, "exception")
        if failed in _BY_NAME:
            execute(
                failed,
                {"duration": _now() - began},
                {
                    **metadata,
                    **extra,
                    "kind": _kind(error),
                    "reason": f"{type(error).__name__}: {error}",
                },
            )
        raise
    stop = (*name, "stop")
    if stop in _BY_NAME:
        execute(stop, {"duration": _now() - began}, {**metadata, **extra})

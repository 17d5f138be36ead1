"""The one place where trio_smith's components publish their events.

Supervisors, the agent registry and its routers, and circuit breakers all
publish to a user's publisher (an ``EventBus``, or anything with
``publish_nowait``) the same way:

* the publisher is checked once, where the component is built
  (:func:`check_publisher`);
* an event is published without waiting, and an event the publisher refuses
  (full, closed, or its own error) is dropped, counted and logged at the 1st,
  10th, 100th... drop (:class:`Emitter`): a component never waits for, nor
  fails because of, a bus (docs/design.md rule 20);
* an error is described one way (:func:`describe_error`): the exception's
  public name (``trio_smith.ChildHung``, ``ValueError``, ``trio.Cancelled``;
  never a private module path), its message, and a bounded traceback, all
  text a store can write (docs/design.md rule 27).
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, TypedDict, final
from uuid import UUID

from ._event import Event, EventPublisher, EventType, linked_event, storable_text

__all__ = [
    "Emitter",
    "ErrorDescription",
    "check_call_events",
    "check_publisher",
    "describe_error",
    "public_name",
]

log: Final = logging.getLogger("trio_smith.events")

#: Frames kept in an error's description: the innermost ones, where it was raised.
TRACEBACK_FRAMES: Final = 8
#: Characters kept of an error's message.
MESSAGE_LIMIT: Final = 2000


def check_publisher(events: object) -> EventPublisher | None:
    """Return ``events`` if it can be published to (or is None).

    Raises:
        TypeError: it has no callable ``publish_nowait``.
    """
    if events is not None and not callable(getattr(events, "publish_nowait", None)):
        raise TypeError(f"events must have a publish_nowait method, got {events!r}")
    return events  # type: ignore[return-value]  # checked just above


def check_call_events(events: EventPublisher | None, call_events: object) -> None:
    """Check that ``call_events`` is a bool, and that per-call events have somewhere to go.

    The resilience components publish their state's events (or rejections)
    to ``events=`` and, with ``call_events=True``, one event per call too
    (docs/design.md B10).

    Raises:
        TypeError: ``call_events`` is not a bool.
        ValueError: it is True and ``events`` is None.
    """
    if not isinstance(call_events, bool):
        raise TypeError(f"call_events must be a bool, got {call_events!r}")
    if call_events and events is None:
        raise ValueError("call_events=True needs a publisher, but events is None")


#: public_name's answers for classes defined at module level (they live as
#: long as their module), and, weakly, for classes made at run time (in a
#: function, a test, a plugin), which must not be kept alive.
_PUBLIC_NAMES: Final[dict[type[BaseException], str]] = {}
_LOCAL_NAMES: Final[weakref.WeakKeyDictionary[type[BaseException], str]] = (
    weakref.WeakKeyDictionary()
)


def public_name(kind: type[BaseException]) -> str:
    """The name under which users import an exception class.

    The shortest dotted prefix of its module that exports the class under its
    own name (``trio_smith._exceptions.ChildHung`` -> ``trio_smith.ChildHung``,
    ``trio._core._exceptions.Cancelled`` -> ``trio.Cancelled``), else a public
    module of its package that does (``trio_smith.routing.AgentDied``);
    builtins are bare (``ValueError``); a class nobody exports keeps its full
    path.
    """
    name = _PUBLIC_NAMES.get(kind)
    if name is not None:
        return name
    name = _LOCAL_NAMES.get(kind)
    if name is None:
        name = _find_public_name(kind)
        if "<locals>" in kind.__qualname__:
            _LOCAL_NAMES[kind] = name
        else:
            _PUBLIC_NAMES[kind] = name
    return name


def _find_public_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    qualname = kind.__qualname__
    if module == "builtins":
        return qualname
    parts = module.split(".")
    # The module's own prefixes first (``trio``), then its package's public
    # modules (``trio_smith.routing`` exports ``trio_smith._exceptions.AgentDied``).
    candidates = [".".join(parts[:end]) for end in range(1, len(parts))]
    top = parts[0] + "."
    candidates += sorted(
        (
            name
            for name in list(sys.modules)
            if name.startswith(top)
            and name not in candidates
            and not any(part.startswith("_") for part in name.split("."))
        ),
        key=lambda name: (name.count("."), name),
    )
    head, *rest = qualname.split(".")
    for candidate in candidates:
        found: Any = getattr(sys.modules.get(candidate), head, None)
        for attr in rest:
            found = getattr(found, attr, None)
        if found is kind:
            return f"{candidate}.{qualname}"
    return f"{module}.{qualname}"


def _frames(tb: TracebackType | None) -> str:
    """The innermost frames of a traceback, one ``file:line in function`` per line.

    No source lines are read (no file I/O on a restart path): about 0.3 us
    per frame kept.
    """
    frames: list[TracebackType] = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return "\n".join(
        f"{frame.tb_frame.f_code.co_filename}:{frame.tb_lineno} in {frame.tb_frame.f_code.co_name}"
        for frame in frames[-TRACEBACK_FRAMES:]
    )


class ErrorDescription(TypedDict):
    """How every event describes an error (:func:`describe_error`)."""

    error_type: str | None
    error: str | None
    traceback: str | None


def describe_error(error: BaseException | None) -> ErrorDescription:
    """An error as event payload: ``error_type``, ``error`` and ``traceback``.

    ``error_type`` is the public name (:func:`public_name`), ``error`` its
    ``str()`` (at most ``MESSAGE_LIMIT`` characters), ``traceback`` its
    innermost ``TRACEBACK_FRAMES`` frames, ``file:line in function`` each
    (None when it has none); all escaped so that a store can write them.
    None gives three Nones.
    """
    if error is None:
        return {"error_type": None, "error": None, "traceback": None}
    message = str(error)
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "..."
    frames = _frames(error.__traceback__)
    return {
        "error_type": storable_text(public_name(type(error))),
        "error": storable_text(message),
        "traceback": storable_text(frames) if frames else None,
    }


@final
class Emitter:
    """Publishes one component's events, never waiting, counting what is dropped.

    Args:
        events: the publisher (checked by :func:`check_publisher`), or None.
        owner: the component, for the drop log line (``supervisor 'app'``).
    """

    __slots__ = ("dropped", "events", "owner")

    def __init__(self, events: EventPublisher | None, owner: str) -> None:
        self.events = events
        self.owner = owner
        #: Events the publisher refused.
        self.dropped = 0

    def emit(
        self,
        kind: EventType,
        source: str,
        payload: Mapping[str, object],
        cause: Event | None = None,
        *,
        to: EventPublisher | None = None,
        correlation_id: UUID | None = None,
    ) -> Event | None:
        """Build an event from checked parts and publish it without waiting.

        The payload must be JSON-safe already (the callers build it from
        their own values and :func:`describe_error`); ``cause`` is explicit
        (None: a root event), ``correlation_id`` overrides the one it
        gives. ``to`` publishes to another publisher than ``events``,
        counting its refusals here too. Returns the event,
        published or dropped, or None when there is no publisher.
        """
        events = self.events if to is None else to
        if events is None:
            return None
        # A payload built by its component is a dict; typed ones are TypedDicts.
        event = linked_event(
            kind,
            source,
            payload,  # type: ignore[arg-type]
            cause,
            correlation_id=correlation_id,
        )
        self.publish(event, events)
        return event

    def publish(self, event: Event, to: EventPublisher | None = None) -> None:
        """Publish a built event; a refusal is counted and logged, never raised."""
        events = self.events if to is None else to
        if events is None:
            return
        try:
            events.publish_nowait(event)
        except Exception as exc:  # trio.WouldBlock, BusClosed, the publisher's own
            self.dropped += 1
            dropped = self.dropped
            # The 1st, 10th, 100th...: a full bus drops many, the log stays short.
            if dropped == 10 ** (len(str(dropped)) - 1):
                log.warning(
                    "%s dropped event %s (%d dropped so far): %s",
                    self.owner,
                    event.type,
                    dropped,
                    describe_error(exc)["error"] or public_name(type(exc)),
                    extra={"event_type": str(event.type), "dropped": dropped},
                )

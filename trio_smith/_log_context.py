"""The causal chain and the child a log record was written in, as fields of the record.

:class:`ContextFilter` (``logging``) and :func:`add_context` (a structlog
processor) add two groups of fields, read from the context of the task that
writes the record (docs/design.md rule 44):

* the cause: ``correlation_id``, ``causation_id`` and ``event_id`` of
  :func:`~trio_smith.events.current_cause` (the event being handled), as
  strings, None without one;
* the child: ``child_id``, ``supervisor`` (its supervisor's name) and
  ``incarnation`` of :func:`~trio_smith.current_child`, None outside a child.

A field the record already has is never overwritten. The library's own
records carry their fields (the supervisor's path, the child and the event
they report: ``_supervision/_report.py``), which are not those of the task
that happens to write them: a group the record has any field of is
completed with None, never mixed with the writer's context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Final

from ._event import current_cause
from ._exceptions import NoCurrentChild
from ._supervision import current_child

__all__ = ["ContextFilter", "add_context"]

#: The fields of each group, in the order they are added.
CAUSE_FIELDS: Final = ("correlation_id", "causation_id", "event_id")
CHILD_FIELDS: Final = ("child_id", "supervisor", "incarnation")


def _cause_values() -> tuple[str | None, str | None, str | None]:
    event = current_cause()
    if event is None:
        return None, None, None
    causation = event.causation_id
    return (
        str(event.correlation_id or event.id),
        None if causation is None else str(causation),
        str(event.id),
    )


def _child_values() -> tuple[str | None, str | None, int | None]:
    try:
        ctx = current_child()
    except NoCurrentChild:
        return None, None, None
    return ctx.id, ctx.supervisor, ctx.incarnation


def _fill(
    has: Callable[[str], bool],
    put: Callable[[str, object], None],
    fields: tuple[str, ...],
    values: Callable[[], tuple[object, ...]],
) -> None:
    present = [has(field) for field in fields]
    if all(present):
        return
    found = (None,) * len(fields) if any(present) else values()
    for field, there, value in zip(fields, present, found, strict=True):
        if not there:
            put(field, value)


class ContextFilter(logging.Filter):
    """A ``logging.Filter`` that adds the current cause and child to every record.

    It never drops a record. Attach it to a handler (it then sees the records
    of every logger that handler writes) or to a logger::

        handler.addFilter(ContextFilter())

    Fields added (unless the record has them): ``correlation_id``,
    ``causation_id``, ``event_id``, ``child_id``, ``supervisor`` and
    ``incarnation``; strings, an int, or None, which any JSON formatter takes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields to ``record``.

        Args:
            record: the record being written.

        Returns:
            True: the record is always written.
        """
        fields = record.__dict__
        _fill(fields.__contains__, fields.__setitem__, CAUSE_FIELDS, _cause_values)
        _fill(fields.__contains__, fields.__setitem__, CHILD_FIELDS, _child_values)
        return True


def add_context(
    logger: object, method_name: str, event_dict: MutableMapping[str, object]
) -> MutableMapping[str, object]:
    """A structlog processor that adds the current cause and child to the event dict.

    Put it in the processor chain before the renderer::

        structlog.configure(processors=[add_context, structlog.processors.JSONRenderer()])

    The same fields as :class:`ContextFilter`, with the same rules: a key the
    event dict already has is kept.

    Args:
        logger: the wrapped logger (unused).
        method_name: the log method's name (unused).
        event_dict: the event dict.

    Returns:
        ``event_dict``, with the fields added.
    """
    _fill(event_dict.__contains__, event_dict.__setitem__, CAUSE_FIELDS, _cause_values)
    _fill(event_dict.__contains__, event_dict.__setitem__, CHILD_FIELDS, _child_values)
    return event_dict

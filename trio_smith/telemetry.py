"""Telemetry hooks and structured logs: what trio_smith measures, for your metrics and logs.

In the manner of Erlang's ``telemetry``: attach a handler to event names and
the library calls it, synchronously, each time such an event happens::

    from trio_smith import telemetry

    def on_failure(name, measurements, metadata):
        failures.labels(metadata["supervisor"], metadata["child_id"]).inc()

    telemetry.attach("metrics", [("trio_smith", "child", "failed")], on_failure)

A handler that raises is detached and logged; with nothing attached, the
library pays one flag check per emission point. :class:`ContextFilter` (for
``logging``) and :func:`add_context` (a structlog processor) add the current
causal chain and child to every log record. :func:`set_context_injector`
gives new events the current trace context (``trio_smith.otel`` sets it).
See docs/operations.md.
"""

from ._event import TraceContextInjector as TraceContextInjector
from ._event import set_context_injector as set_context_injector
from ._log_context import ContextFilter as ContextFilter
from ._log_context import add_context as add_context
from ._telemetry import EventName as EventName
from ._telemetry import Handler as Handler
from ._telemetry import attach as attach
from ._telemetry import attached as attached
from ._telemetry import detach as detach
from ._telemetry import execute as execute
from ._telemetry import handlers as handlers
from ._telemetry import span as span

__all__ = [
    "EventName",
    "Handler",
    "attach",
    "detach",
    "handlers",
    "execute",
    "attached",
    "span",
    "ContextFilter",
    "add_context",
    "TraceContextInjector",
    "set_context_injector",
]

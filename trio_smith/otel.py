"""OpenTelemetry for trio_smith: spans and metrics from its telemetry events.

Needs the ``otel`` extra (``pip install 'trio-smith[otel]'``: the
OpenTelemetry API only); the application installs the SDK and its exporters.
``import trio_smith`` never imports this module::

    from trio_smith import otel

    instrumentation = otel.instrument()   # the global tracer and meter providers
    ...
    instrumentation.uninstrument()

While instrumented, new events carry the current trace context;
``otel.context_of(event)`` continues that trace wherever the event is read.
See "OpenTelemetry" in the operations guide for what is emitted.
"""

from ._exceptions import AlreadyInstrumented as AlreadyInstrumented
from ._otel import Instrumentation as Instrumentation
from ._otel import context_of as context_of
from ._otel import instrument as instrument

__all__ = ["AlreadyInstrumented", "Instrumentation", "context_of", "instrument"]

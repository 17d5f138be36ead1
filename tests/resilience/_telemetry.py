"""Recording one telemetry event of a component for the length of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from trio_smith import telemetry

#: (measurements, metadata) of each event, in order.
Seen = list[tuple[dict[str, float], dict[str, object]]]


@contextlib.contextmanager
def recording(name: tuple[str, ...]) -> Iterator[Seen]:
    """Every ``name`` event executed inside the block; the handler is detached after it."""
    got: Seen = []

    def handler(
        event: tuple[str, ...], measurements: Mapping[str, float], metadata: Mapping[str, object]
    ) -> None:
        got.append((dict(measurements), dict(metadata)))

    handler_id = f"tests.resilience.recording{name}"
    telemetry.attach(handler_id, [name], handler)
    try:
        yield got
    finally:
        telemetry.detach(handler_id)

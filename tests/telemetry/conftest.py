"""A recorder of telemetry events, attached for one test and detached after it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from trio_smith import telemetry


class Seen:
    """Every event a handler was called with, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[tuple[str, ...], dict[str, float], dict[str, object]]] = []

    def __call__(
        self,
        name: tuple[str, ...],
        measurements: Mapping[str, float],
        metadata: Mapping[str, object],
    ) -> None:
        self.events.append((name, dict(measurements), dict(metadata)))

    def named(self, *name: str) -> list[tuple[dict[str, float], dict[str, object]]]:
        return [(m, d) for n, m, d in self.events if n == name]


@pytest.fixture(autouse=True)
def no_handlers_left() -> Iterator[None]:
    """Each test starts and ends with no handler attached (the registry is global)."""
    for handler_id, _ in telemetry.handlers():
        telemetry.detach(handler_id)
    yield
    for handler_id, _ in telemetry.handlers():
        telemetry.detach(handler_id)


@pytest.fixture
def seen() -> Seen:
    return Seen()

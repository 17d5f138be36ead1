"""A fake event publisher for tests: anything with ``publish_nowait`` is one."""

from __future__ import annotations

import trio

from trio_smith.events import Event, EventType


class Recorder:
    """Keeps the events it is given, in order; or, with ``refuse``, refuses each (a full bus).

    Attributes:
        events: what it kept.
        tries: how many publishes it was asked for, kept or refused.
    """

    def __init__(self, refuse: bool = False) -> None:
        self.events: list[Event] = []
        self.refuse = refuse
        self.tries = 0

    def publish_nowait(self, event: Event) -> None:
        self.tries += 1
        if self.refuse:
            raise trio.WouldBlock
        self.events.append(event)

    def of(self, kind: EventType) -> list[Event]:
        """The kept events of one type."""
        return [e for e in self.events if e.type == kind]

    def wire_names(self) -> list[str]:
        """The kept events' types, as wire names."""
        return [e.type.wire for e in self.events]

    def take(self) -> list[str]:
        """The wire names kept since the last take."""
        names = self.wire_names()
        self.events.clear()
        return names

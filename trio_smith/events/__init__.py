"""Events: the typed event model, filters, the event bus and the event stores.

``async with EventBus(store=MemoryEventStore()) as bus:`` then
``await bus.publish(Event.new(AgentEvent.STARTED, source="agents/a"))``;
``async with bus.subscribe(EventFilter(categories="agent")) as events:``
``async for event in events: ...``. See docs/events.md.
"""

from .._event import CATEGORIES as CATEGORIES
from .._event import AgentEvent as AgentEvent
from .._event import Event as Event
from .._event import EventPublisher as EventPublisher
from .._event import EventType as EventType
from .._event import SupervisionEvent as SupervisionEvent
from .._event import SystemEvent as SystemEvent
from .._event import ToolEvent as ToolEvent
from .._event import caused_by as caused_by
from .._event import current_cause as current_cause
from .._event import uuid7 as uuid7
from .._exceptions import EventsError as EventsError
from .._exceptions import NoEventStore as NoEventStore
from .._exceptions import PruneRefused as PruneRefused
from .._exceptions import StoreCorrupt as StoreCorrupt
from .._exceptions import StoreFileError as StoreFileError
from .._exceptions import StoreFull as StoreFull
from .._exceptions import StoreOpenError as StoreOpenError
from .._exceptions import StoreReadOnly as StoreReadOnly
from .._exceptions import StoreUnavailable as StoreUnavailable
from .._exceptions import SubscriberOverflowed as SubscriberOverflowed
from ._bus import DEFAULT_BUFFER as DEFAULT_BUFFER
from ._bus import BusStatistics as BusStatistics
from ._bus import EventBus as EventBus
from ._bus import Handler as Handler
from ._bus import Overflow as Overflow
from ._bus import Subscription as Subscription
from ._bus import SubscriptionStatistics as SubscriptionStatistics
from ._closed import BusClosed as BusClosed
from ._closed import StoreClosed as StoreClosed
from ._codec import dumps as dumps
from ._codec import loads as loads
from ._filter import EventFilter as EventFilter
from ._memory import MemoryEventStore as MemoryEventStore
from ._postgres import PostgresEventStore as PostgresEventStore
from ._sqlite import SQLiteEventStore as SQLiteEventStore
from ._store import EventStore as EventStore
from ._store import StoreScan as StoreScan
from ._store import StoreStatistics as StoreStatistics

__all__ = [
    "Event",
    "EventType",
    "CATEGORIES",
    "SystemEvent",
    "AgentEvent",
    "ToolEvent",
    "SupervisionEvent",
    "EventPublisher",
    "uuid7",
    "caused_by",
    "current_cause",
    "EventFilter",
    "EventBus",
    "Subscription",
    "Handler",
    "Overflow",
    "DEFAULT_BUFFER",
    "BusStatistics",
    "SubscriptionStatistics",
    "EventStore",
    "StoreScan",
    "MemoryEventStore",
    "SQLiteEventStore",
    "PostgresEventStore",
    "StoreStatistics",
    "dumps",
    "loads",
    "EventsError",
    "BusClosed",
    "StoreClosed",
    "StoreOpenError",
    "StoreFileError",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreFull",
    "StoreCorrupt",
    "PruneRefused",
    "NoEventStore",
    "SubscriberOverflowed",
]

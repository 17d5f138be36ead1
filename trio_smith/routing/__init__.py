"""Routing: named agents with mailboxes, and a hub that routes tasks to them.

``registry = Registry(events=bus)``; put ``registry.agent("coder-1", handle,
role="coder")`` under a :class:`~trio_smith.Supervisor`; then
``router = Router(registry, {"code": "coder"}, default="analyst")`` and
``reply = await router.request(Task("code", payload), timeout=5)``.
See docs/routing.md.
"""

from .._core._routing import AgentStatus as AgentStatus
from .._core._routing import Balance as Balance
from .._exceptions import AgentDied as AgentDied
from .._exceptions import AgentNameTaken as AgentNameTaken
from .._exceptions import AgentNotFound as AgentNotFound
from .._exceptions import AgentUnavailable as AgentUnavailable
from .._exceptions import NoAgentAvailable as NoAgentAvailable
from .._exceptions import NoRoute as NoRoute
from .._exceptions import RequestTimeout as RequestTimeout
from .._exceptions import RoutingError as RoutingError
from .._exceptions import UnexpectedReply as UnexpectedReply
from ._registry import AgentInfo as AgentInfo
from ._registry import Envelope as Envelope
from ._registry import Mailbox as Mailbox
from ._registry import Registry as Registry
from ._registry import RegistryStatistics as RegistryStatistics
from ._router import Router as Router
from ._router import RouterStatistics as RouterStatistics
from ._router import RoutingEvent as RoutingEvent
from ._router import Task as Task

__all__ = [
    "Registry",
    "Router",
    "Task",
    "Mailbox",
    "Envelope",
    "Balance",
    "AgentStatus",
    "AgentInfo",
    "RegistryStatistics",
    "RouterStatistics",
    "RoutingEvent",
    "RoutingError",
    "AgentNotFound",
    "AgentNameTaken",
    "AgentUnavailable",
    "AgentDied",
    "RequestTimeout",
    "NoRoute",
    "NoAgentAvailable",
    "UnexpectedReply",
]

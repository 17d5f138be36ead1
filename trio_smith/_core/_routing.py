"""Routing decisions: an agent's lifecycle table, the route table, balancing.

Pure: no trio, no clock. The registry and the router in
``trio_smith.routing`` hold the state and call these.

An agent name goes through ``AGENT_TRANSITIONS``::

    (new) --BIND--> RUNNING --UNBIND--> DOWN --BIND--> RUNNING ...
                       |                  |
                       +-----REMOVE-------+--REMOVE--> (gone)

RUNNING: an incarnation holds the name and reads its mailbox. DOWN: the
incarnation ended; the name and its mailbox wait for the next incarnation
(a restart) and any new registration may take them. REMOVE: the agent will
not come back (its spec left its supervisor, or the supervisor stopped), so
the name is forgotten and its queued requests fail.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from .._exceptions import IllegalStateTransition, NoRoute
from ._check import non_empty_str, optional_str


class AgentStatus(enum.Enum):
    """Where an agent is in its lifecycle (see :class:`~trio_smith.routing.Registry`)."""

    #: An incarnation holds the name and reads its mailbox.
    RUNNING = "running"
    #: Its incarnation ended; a restart (or a new registration) takes the name
    #: and the mailbox back. Senders wait for it, up to the registry's
    #: ``restart_wait``.
    DOWN = "down"
    #: Forgotten: the name is free and the mailbox closed.
    GONE = "gone"


class AgentInput(enum.Enum):
    """What happens to an agent name."""

    BIND = "bind"
    UNBIND = "unbind"
    REMOVE = "remove"


#: The whole lifecycle; anything else raises IllegalStateTransition.
AGENT_TRANSITIONS: Final[Mapping[tuple[AgentStatus | None, AgentInput], AgentStatus]] = {
    (None, AgentInput.BIND): AgentStatus.RUNNING,
    (AgentStatus.RUNNING, AgentInput.UNBIND): AgentStatus.DOWN,
    (AgentStatus.DOWN, AgentInput.BIND): AgentStatus.RUNNING,
    (AgentStatus.RUNNING, AgentInput.REMOVE): AgentStatus.GONE,
    (AgentStatus.DOWN, AgentInput.REMOVE): AgentStatus.GONE,
}


def agent_step(agent: str, status: AgentStatus | None, given: AgentInput) -> AgentStatus:
    """The status after ``given``; ``status`` None is a name not yet registered.

    Raises:
        IllegalStateTransition: the table has no such move.
    """
    new = AGENT_TRANSITIONS.get((status, given))
    if new is None:
        state = "UNREGISTERED" if status is None else status.name
        raise IllegalStateTransition(f"agent {agent!r}", state, given.name)
    return new


class Balance(enum.Enum):
    """How a router spreads the tasks of a role over its agents."""

    #: Each in turn, skipping the unavailable ones.
    ROUND_ROBIN = "round_robin"
    #: The one with the fewest requests queued or being handled; ties go in turn.
    LEAST_LOADED = "least_loaded"


def choose(loads: Sequence[int | None], balance: Balance, cursor: int) -> int | None:
    """The index of the agent to take, or None if none is available.

    Args:
        loads: per agent of the role, in registration order: its load
            (requests queued or being handled), or None if it cannot take a
            task now (down, or behind an open breaker).
        balance: the policy.
        cursor: where the turn is (any int; taken modulo ``len(loads)``).
            The caller advances it to the returned index + 1.

    Returns:
        ROUND_ROBIN: the first available index at or after the cursor, going
        round. LEAST_LOADED: among the least-loaded available ones, the first
        at or after the cursor. None when every load is None (or no agent).
    """
    n = len(loads)
    if n == 0:
        return None
    start = cursor % n
    best: int | None = None
    best_load = 0
    for step in range(n):
        index = start + step
        if index >= n:
            index -= n
        load = loads[index]
        if load is None:
            continue
        if balance is Balance.ROUND_ROBIN:
            return index
        if best is None or load < best_load:
            best, best_load = index, load
    return best


def _routes(value: Mapping[str, str]) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"routes must be a mapping of task type to role, got {value!r}")
    for task_type, role in value.items():
        non_empty_str("a task type in routes", task_type)
        non_empty_str(f"the role of task type {task_type!r}", role)
    return dict(value)


def _default(instance: RouteTable, attribute: attrs.Attribute[str | None], value: object) -> None:
    optional_str("default", value)


@attrs.frozen(kw_only=True)
class RouteTable:
    """Task type -> agent role, with a default role for the other types.

    Args:
        routes: the roles of the known task types.
        default: the role of any other type; None: other types have no route.

    Raises:
        TypeError, ValueError: a bad mapping, type or role (the message names it).
    """

    routes: Mapping[str, str] = attrs.field(converter=_routes)
    default: str | None = attrs.field(default=None, validator=_default)

    def role_for(self, task_type: str) -> str:
        """The role that handles ``task_type``.

        Raises:
            NoRoute: an unknown type and no default.
        """
        role = self.routes.get(task_type, self.default)
        if role is None:
            raise NoRoute(task_type)
        return role

"""The router: hub-and-spoke routing of tasks to agent roles."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Final, TypedDict, final, overload
from uuid import UUID

import attrs
import trio

from .. import _telemetry
from .._core._check import finite_at_least, non_empty_str, optional_name
from .._core._routing import AgentStatus, Balance, RouteTable, choose
from .._emit import ErrorDescription, check_publisher, describe_error
from .._event import (
    Event,
    EventPublisher,
    EventType,
    caused_by,
    current_cause,
    uuid7,
)
from .._exceptions import CallNotPermitted, NoAgentAvailable, NoRoute
from .._telemetry import ROUTER_REQUEST, ROUTER_REQUEST_EVENTS
from ..resilience import CircuitState
from ._registry import Envelope, R, Registry, _Agent, check_reply_type, checked_reply


def _task_type(instance: Task, attribute: attrs.Attribute[str], value: object) -> None:
    non_empty_str("task type", value)


def _optional_uuid(instance: Task, attribute: attrs.Attribute[UUID | None], value: object) -> None:
    if value is not None and not isinstance(value, UUID):
        raise TypeError(f"correlation_id must be a UUID or None, got {value!r}")


@attrs.frozen
class Task:
    """A unit of work for an agent; a :class:`Router` routes it by its ``type``.

    Args:
        type: what kind of task it is, e.g. ``"research"``.
        payload: anything the agent needs; passed as is (not serialised).
        id: default: a new UUIDv7.
        correlation_id: the causal chain it joins; default: the chain of the
            event being handled when it is routed, else a new chain.

    Raises:
        TypeError, ValueError: an empty type or a bad id.
    """

    type: str = attrs.field(validator=_task_type)
    payload: Any = None
    id: UUID = attrs.field(factory=uuid7, kw_only=True)
    correlation_id: UUID | None = attrs.field(default=None, kw_only=True, validator=_optional_uuid)


@final
class RoutingEvent:
    """The ``routing`` event types, published by a router with ``events``.

    Their payloads are listed in docs/routing.md ("Causal chains"):

    * ``TASK_ROUTED``: ``{"task_id", "task_type", "role", "agent"}``; the root
      of the task's causal chain (or a link in its caller's).
    * ``TASK_COMPLETED``: ``{"task_id", "agent", "duration"}`` (seconds).
    * ``TASK_FAILED``: ``{"task_id", "agent", "error_type", "error", "traceback"}``.
    * ``TASK_UNROUTABLE``: ``{"task_id", "task_type", "role", "error_type",
      "error", "traceback"}``: no role for its type (``role`` None,
      :class:`NoRoute`) or no agent of the role could take it
      (:class:`NoAgentAvailable`); in the task's chain, as ``TASK_ROUTED``
      would have been.
    """

    TASK_ROUTED: ClassVar[EventType] = EventType("routing", "task_routed")
    TASK_COMPLETED: ClassVar[EventType] = EventType("routing", "task_completed")
    TASK_FAILED: ClassVar[EventType] = EventType("routing", "task_failed")
    TASK_UNROUTABLE: ClassVar[EventType] = EventType("routing", "task_unroutable")


# Every routing event's payload, exactly as docs/routing.md lists it
# (tests/routing/test_router.py compares them).


class TaskRoutedPayload(TypedDict):
    task_id: str
    task_type: str
    role: str
    agent: str


class TaskCompletedPayload(TypedDict):
    task_id: str
    agent: str
    duration: float


class TaskFailedPayload(ErrorDescription):
    task_id: str
    agent: str


class TaskUnroutablePayload(ErrorDescription):
    task_id: str
    task_type: str
    role: str | None


#: The payload type of each routing event type.
PAYLOADS: Final[dict[EventType, type]] = {
    RoutingEvent.TASK_ROUTED: TaskRoutedPayload,
    RoutingEvent.TASK_COMPLETED: TaskCompletedPayload,
    RoutingEvent.TASK_FAILED: TaskFailedPayload,
    RoutingEvent.TASK_UNROUTABLE: TaskUnroutablePayload,
}


@attrs.frozen(kw_only=True)
class RouterStatistics:
    """Counts over a router's life (:meth:`Router.statistics`).

    Attributes:
        routed: tasks given to an agent.
        completed: requests that got their reply.
        failed: requests that raised (the agent died, timed out, failed it).
        rerouted: tasks moved to another agent because a breaker refused them.
        unroutable: tasks with no role (:class:`NoRoute`) or that no agent
            could take (:class:`NoAgentAvailable`), each published as
            ``routing.task_unroutable``.
        by_role: tasks routed per role.
    """

    routed: int
    completed: int
    failed: int
    rerouted: int
    unroutable: int
    by_role: Mapping[str, int]


def _admits(agent: _Agent, now: float) -> bool:
    """Whether the agent's breaker lets a call through now (an elapsed OPEN does)."""
    breaker = agent.breaker
    if breaker is None:
        return True
    state = breaker.state
    if state is CircuitState.FORCED_OPEN:
        return False
    if state is CircuitState.OPEN:
        retry_after = breaker.statistics().retry_after
        return retry_after is not None and retry_after <= 0
    return True


@final
class Router:
    """The hub: routes each task by its type to an agent of the matching role.

    ``routes`` maps task types to roles; ``default`` takes the other types.
    Among the agents of a role the router balances (round robin or least
    loaded) and skips those that are DOWN (restarting) or whose circuit
    breaker is open. If every agent of the role is DOWN it waits for one to
    come back, at most the registry's ``restart_wait``.

    A task keeps its agent once it is in that agent's mailbox: if the agent
    crashes while handling it the caller gets :class:`AgentDied` (at most
    once delivery; retrying is the caller's choice).

    Args:
        registry: where the agents are.
        routes: task type -> role.
        default: the role of every other type; None: they raise :class:`NoRoute`.
        balance: ``Balance.ROUND_ROBIN`` (default) or ``Balance.LEAST_LOADED``.
        events: where routing events go; default: the registry's.
        name: the router's name; its events' source is ``router/<name>``.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """

    def __init__(
        self,
        registry: Registry,
        routes: Mapping[str, str],
        *,
        default: str | None = None,
        balance: Balance = Balance.ROUND_ROBIN,
        events: EventPublisher | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry, got {registry!r}")
        if not isinstance(balance, Balance):
            raise TypeError(f"balance must be a Balance, got {balance!r}")
        check_publisher(events)
        self.registry = registry
        self.table = RouteTable(routes=routes, default=default)
        self.balance = balance
        self.events = events if events is not None else registry.events
        self.name = optional_name(name) or "router"
        self._source = f"router/{self.name}"
        #: The round-robin turn of each role.
        self._cursors: dict[str, int] = {}
        self._routed = 0
        self._completed = 0
        self._failed = 0
        self._rerouted = 0
        self._unroutable = 0
        self._by_role: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Router {self.name!r} routes={len(self.table.routes)}>"

    def role_for(self, task_type: str) -> str:
        """The role ``task_type`` goes to.

        Raises:
            NoRoute: an unknown type and no default.
        """
        return self.table.role_for(task_type)

    def pick(self, task_type: str) -> str:
        """The agent a task of ``task_type`` would go to now (and advance the turn).

        Raises:
            NoRoute: an unknown type and no default.
            NoAgentAvailable: every agent of the role is DOWN or behind an
                open breaker, or the role has none.
        """
        role = self.table.role_for(task_type)
        agent, down, refused = self._choose(role, ())
        if agent is None:
            raise NoAgentAvailable(role, down=down, open=refused)
        return agent.name

    def _choose(
        self, role: str, skip: tuple[str, ...] | set[str]
    ) -> tuple[_Agent | None, int, int]:
        """Pick an agent of ``role``; also how many are DOWN and behind an open breaker."""
        registry = self.registry
        agents = [registry._agents[name] for name in registry._roles.get(role, ())]
        now = trio.current_time()
        loads: list[int | None] = []
        down = refused = 0
        for agent in agents:
            if agent.status is not AgentStatus.RUNNING:
                down += 1
                loads.append(None)
            elif agent.name in skip or not _admits(agent, now):
                refused += 1
                loads.append(None)
            else:
                loads.append(agent.load)
        index = choose(loads, self.balance, self._cursors.get(role, 0))
        if index is None:
            return None, down, refused
        self._cursors[role] = index + 1
        return agents[index], down, refused

    def _role_of(self, task: Task) -> str:
        """The role ``task`` goes to.

        Raises:
            NoRoute: none (the task is unroutable: counted and published).
        """
        try:
            return self.table.role_for(task.type)
        except NoRoute as exc:
            self._unroutable_task(task, None, exc)
            raise

    async def _agent_for(self, task: Task, role: str, skip: set[str], deadline: float) -> _Agent:
        """Choose an agent, waiting (bounded) while every candidate is DOWN."""
        registry = self.registry
        give_up = min(deadline, trio.current_time() + registry.restart_wait)
        while True:
            agent, down, refused = self._choose(role, skip)
            if agent is not None:
                return agent
            if down == 0 or trio.current_time() >= give_up:
                error = NoAgentAvailable(role, down=down, open=refused)
                self._unroutable_task(task, role, error)
                raise error
            with trio.move_on_at(give_up):
                await registry._changed.wait()

    def _unroutable_task(self, task: Task, role: str | None, error: Exception) -> None:
        """Count a task no agent can take, and leave ``routing.task_unroutable`` in its chain."""
        self._unroutable += 1
        payload: TaskUnroutablePayload = {
            "task_id": str(task.id),
            "task_type": task.type,
            "role": role,
            **describe_error(error),
        }
        self._publish(RoutingEvent.TASK_UNROUTABLE, payload, current_cause(), task.correlation_id)

    @overload
    async def request(self, task: Task, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    @overload
    async def request(
        self,
        task: Task,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        reply_type: type[R],
    ) -> R: ...

    async def request(
        self,
        task: Task,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        reply_type: type[Any] | None = None,
    ) -> Any:
        """Route ``task`` to an agent and wait for the reply.

        Args:
            task: the task; its ``type`` picks the role.
            timeout: seconds for the whole exchange; default: the registry's
                ``request_timeout``.
            reply_type: the class the reply must be an instance of. Given,
                the call is typed as returning it (``reply_type=str``: a
                ``str``, for mypy) and another reply fails the request with
                :class:`UnexpectedReply`; default: any reply, typed ``Any``.

        Returns:
            The agent's reply.

        Raises:
            NoRoute: no role for the task's type.
            NoAgentAvailable: no agent of the role could take it.
            AgentDied, RequestTimeout: as :meth:`Registry.request`.
            UnexpectedReply: the reply is not a ``reply_type``.
            TypeError: ``task`` is not a Task, or ``reply_type`` not a class.
            Exception: whatever the agent passed to ``Envelope.fail``.
        """
        if not isinstance(task, Task):
            raise TypeError(f"task must be a Task, got {task!r}")
        check_reply_type(reply_type)
        registry = self.registry
        if timeout is None:
            timeout = registry.request_timeout
        else:
            finite_at_least("timeout", timeout, 0, strict=True)
        if not (_telemetry.enabled and _telemetry.attached_any(ROUTER_REQUEST_EVENTS)):
            return await self._request(task, timeout, reply_type, None)
        # A telemetry span (docs/design.md rule 44): role, agent and the
        # routed event's chain are told at its stop.
        cause = current_cause()
        correlation = task.correlation_id or (
            None if cause is None else cause.correlation_id or cause.id
        )
        metadata = {
            "router": self.name,
            "task_type": task.type,
            "role": None,
            "agent": None,
            "task_id": str(task.id),
            "correlation_id": None if correlation is None else str(correlation),
            "causation_id": None if cause is None else str(cause.id),
        }
        with _telemetry.span(ROUTER_REQUEST, metadata) as told:
            return await self._request(task, timeout, reply_type, told)

    async def _request(
        self,
        task: Task,
        timeout: float,  # noqa: ASYNC109
        reply_type: type[Any] | None,
        told: dict[str, object] | None,
    ) -> Any:
        registry = self.registry
        role = self._role_of(task)
        if told is not None:
            told["role"] = role
        start = trio.current_time()
        deadline = start + timeout
        skip: set[str] = set()
        while True:
            agent = await self._agent_for(task, role, skip, deadline)
            routed = self._route(task, role, agent)
            if told is not None:
                told["agent"] = agent.name
                if routed is not None:
                    told["correlation_id"] = str(routed.correlation_id or routed.id)
            try:
                with caused_by(routed if routed is not None else current_cause()):
                    reply = await registry._request_agent(agent, task, deadline, timeout)
                reply = checked_reply(agent.name, reply, reply_type)
            except CallNotPermitted:
                # Its breaker filled up between the choice and the call: next one.
                self._rerouted += 1
                skip.add(agent.name)
                continue
            except Exception as exc:
                self._failed += 1
                failed: TaskFailedPayload = {
                    "task_id": str(task.id),
                    "agent": agent.name,
                    **describe_error(exc),
                }
                self._publish(RoutingEvent.TASK_FAILED, failed, routed)
                raise
            self._completed += 1
            completed: TaskCompletedPayload = {
                "task_id": str(task.id),
                "agent": agent.name,
                "duration": trio.current_time() - start,
            }
            self._publish(RoutingEvent.TASK_COMPLETED, completed, routed)
            return reply

    async def send(self, task: Task) -> str:
        """Route ``task`` to an agent's mailbox without waiting for a reply.

        Returns:
            The name of the agent it went to.

        Raises:
            NoRoute, NoAgentAvailable: as :meth:`request`.
            AgentDied: the agent was forgotten while the task waited for room.
        """
        if not isinstance(task, Task):
            raise TypeError(f"task must be a Task, got {task!r}")
        role = self._role_of(task)
        agent = await self._agent_for(task, role, set(), math.inf)
        routed = self._route(task, role, agent)
        with caused_by(routed if routed is not None else current_cause()):
            await self.registry._put(
                agent, Envelope(self.registry, agent.name, task, expects_reply=False)
            )
        return agent.name

    def _route(self, task: Task, role: str, agent: _Agent) -> Event | None:
        self._routed += 1
        self._by_role[role] = self._by_role.get(role, 0) + 1
        payload: TaskRoutedPayload = {
            "task_id": str(task.id),
            "task_type": task.type,
            "role": role,
            "agent": agent.name,
        }
        return self._publish(
            RoutingEvent.TASK_ROUTED, payload, current_cause(), task.correlation_id
        )

    def statistics(self) -> RouterStatistics:
        """Counts since the router was made."""
        return RouterStatistics(
            routed=self._routed,
            completed=self._completed,
            failed=self._failed,
            rerouted=self._rerouted,
            unroutable=self._unroutable,
            by_role=dict(self._by_role),
        )

    def _publish(
        self,
        kind: EventType,
        payload: Mapping[str, object],
        cause: Event | None,
        correlation_id: UUID | None = None,
    ) -> Event | None:
        return self.registry._publish_to(
            self.events, kind, self._source, payload, cause, correlation_id
        )

"""The agent registry: named agents, each with a bounded mailbox.

An agent is a task that holds a name in a :class:`Registry` and reads the
name's mailbox (a trio memory channel). Usually it is a supervised child
built by :meth:`Registry.agent`; any task can also hold a name with
``with registry.register(name) as mailbox:``.

Invariants (checked by tests/routing):

* A name is RUNNING iff exactly one live ``register`` block holds it.
* The mailbox belongs to the name, not to an incarnation: messages queued
  when an agent crashes wait for its restart. Only the requests the dead
  incarnation had taken fail, at once, with :class:`AgentDied`.
* A name is forgotten (its mailbox closed, its queued requests failed) when
  its agent cannot come back: its spec left the supervisor, the supervisor
  stopped, or it was never supervised.
* Every request ends exactly once: replied, failed, timed out or abandoned by
  its caller; a reply after that is dropped and counted, never raised in
  the agent.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TypeVar, final, overload
from uuid import UUID

import attrs
import trio

from .._core._check import (
    async_problem,
    finite_at_least,
    int_at_least,
    non_empty_str,
    optional_name,
)
from .._core._routing import AgentInput, AgentStatus, agent_step
from .._core._spec import Backoff, ChildSpec, ChildStatus, Heartbeat, Restart
from .._emit import Emitter, check_publisher, describe_error
from .._event import (
    AgentEvent,
    Event,
    EventPublisher,
    EventType,
    current_cause,
    keep_cause,
    set_cause,
    storable_text,
    uuid7,
)
from .._exceptions import (
    AgentDied,
    AgentNameTaken,
    AgentNotFound,
    AgentUnavailable,
    ChildHung,
    IllegalStateTransition,
    NoCurrentChild,
    RequestTimeout,
    UnexpectedReply,
)
from .._supervision import (
    ChildContext,
    current_child,
    hung_verdict,
    listen_status,
    only_cancelled,
)
from ..resilience import CircuitBreaker, CircuitState

#: An envelope's states: waiting for its reply, then exactly one end.
_PENDING: Final = 0
_REPLIED: Final = 1
_FAILED: Final = 2
_ABANDONED: Final = 3
_STATE_NAMES: Final = ("PENDING", "REPLIED", "FAILED", "ABANDONED")

#: A handler: takes a message, returns the reply.
Handler = Callable[[Any], Awaitable[object]]

#: The reply type a caller asks for (``request(..., reply_type=R)``).
R = TypeVar("R")


def check_reply_type(reply_type: object) -> None:
    """Refuse a ``reply_type`` that ``isinstance`` cannot check.

    Raises:
        TypeError: it is not a class (``list[str]``, ``"str"``...).
    """
    if reply_type is not None and not isinstance(reply_type, type):
        raise TypeError(f"reply_type must be a class or None, got {reply_type!r}")


def checked_reply(agent: str, reply: object, reply_type: type | None) -> Any:
    """``reply``, if it is of ``reply_type`` (or none was asked for).

    Raises:
        UnexpectedReply: it is not.
    """
    if reply_type is not None and not isinstance(reply, reply_type):
        raise UnexpectedReply(agent, reply, reply_type)
    return reply


@final
class Envelope:
    """A message in an agent's mailbox, with what its reply needs.

    Attributes:
        message: what was sent (a :class:`~trio_smith.routing.Task` when it
            came through a router).
        id: the request's id (a UUIDv7).
        correlation_id: the causal chain it belongs to.
        cause: the event that caused it (e.g. the router's ``task_routed``),
            or None.
        expects_reply: False for :meth:`Registry.send`: replies are then
            ignored.
    """

    __slots__ = (
        "_agent",
        "_binding",
        "_done",
        "_error",
        "_received",
        "_registry",
        "_state",
        "_taken_at",
        "_value",
        "cause",
        "correlation_id",
        "expects_reply",
        "id",
        "message",
    )

    def __init__(
        self, registry: Registry, agent: str, message: object, *, expects_reply: bool
    ) -> None:
        cause = current_cause()
        self.message = message
        self.id: UUID = uuid7()
        self.cause: Event | None = cause
        given = getattr(message, "correlation_id", None)
        if cause is not None:
            self.correlation_id: UUID = cause.correlation_id or cause.id
        elif isinstance(given, UUID):
            self.correlation_id = given
        else:
            self.correlation_id = self.id
        self.expects_reply = expects_reply
        self._registry = registry
        self._agent = agent
        self._done: trio.Event | None = trio.Event() if expects_reply else None
        self._state = _PENDING
        self._value: object = None
        self._error: BaseException | None = None
        self._binding: _Binding | None = None
        self._received: Event | None = None
        self._taken_at = 0.0

    def reply(self, value: object = None) -> None:
        """Answer the request with ``value`` (for a ``send``: mark it handled).

        A reply after the caller gave up (timeout, cancellation) is dropped and
        counted in ``Registry.statistics().late_replies``; it never raises.

        Raises:
            IllegalStateTransition: it was already replied to or failed.
        """
        self._end(_REPLIED, value, None)

    def fail(self, error: Exception) -> None:
        """Answer the request with an error: the caller's ``request`` raises ``error``.

        The agent goes on: this is a handled failure, not a crash.

        Raises:
            TypeError: ``error`` is not an Exception.
            IllegalStateTransition: it was already replied to or failed.
        """
        if not isinstance(error, Exception):
            raise TypeError(f"error must be an Exception, got {error!r}")
        self._end(_FAILED, None, error)

    def _end(self, state: int, value: object, error: BaseException | None) -> None:
        registry = self._registry
        binding = self._binding
        if binding is not None:
            binding.taken.discard(self)
            self._binding = None
        if self._state == _ABANDONED:
            # Its caller gave up: drop the answer, never raise in the agent.
            if state == _REPLIED:
                registry._late_replies += 1
                registry._count_handled(self)
            return
        if self._state != _PENDING:
            raise IllegalStateTransition(
                f"request {self.id}", _STATE_NAMES[self._state], _STATE_NAMES[state]
            )
        self._state = state
        self._value = value
        self._error = error
        if self._done is not None:
            self._done.set()
        if state == _REPLIED:
            registry._handled(self)
        else:
            registry._failed += 1

    def __repr__(self) -> str:
        return (
            f"<Envelope {self.id} to {self._agent!r} {_STATE_NAMES[self._state].lower()}: "
            f"{self.message!r}>"
        )


@final
class _Binding:
    """One incarnation's hold on a name: the requests it has taken."""

    __slots__ = ("child", "open", "orphaned", "taken")

    def __init__(self) -> None:
        self.taken: set[Envelope] = set()
        #: The supervised child holding the name, if any: its supervisor
        #: tells the registry whether it comes back. None: it never does.
        self.child: ChildContext | None = None
        self.open = True
        #: Its supervisor said the child is gone while the block still ran.
        self.orphaned = False


@final
class _Agent:
    """A registered name: its mailbox and lifecycle (trio thread only)."""

    __slots__ = (
        "binding",
        "breaker",
        "capacity",
        "changed",
        "down_since",
        "failures",
        "handled",
        "name",
        "queued",
        "receive",
        "restarts",
        "role",
        "send",
        "status",
    )

    def __init__(self, name: str, role: str, capacity: int) -> None:
        self.name = name
        self.role = role
        self.capacity = capacity
        self.send: trio.MemorySendChannel[Envelope]
        self.receive: trio.MemoryReceiveChannel[Envelope]
        self.send, self.receive = trio.open_memory_channel[Envelope](capacity)
        self.status: AgentStatus | None = None
        self.binding: _Binding | None = None
        self.breaker: CircuitBreaker | None = None
        #: Set and replaced on every status change (waiters wake and look).
        self.changed = trio.Event()
        self.down_since = -math.inf
        #: Envelopes in the mailbox (load = queued + taken).
        self.queued = 0
        self.restarts = -1
        self.handled = 0
        self.failures = 0

    @property
    def load(self) -> int:
        binding = self.binding
        return self.queued + (0 if binding is None else len(binding.taken))


@attrs.frozen(kw_only=True)
class AgentInfo:
    """A snapshot of one agent (:meth:`Registry.lookup`).

    Attributes:
        name: its name.
        role: its role (its name when registered without one).
        status: RUNNING or DOWN.
        restarts: how many times the name was taken again after its first
            registration (restarts of the agent).
        queued: messages waiting in its mailbox.
        in_flight: requests its current incarnation has taken and not answered.
        mailbox_size: the mailbox's capacity.
        handled: messages it answered (late replies included).
        failures: incarnations that ended with an error.
        breaker: its circuit breaker's state, or None without one.
    """

    name: str
    role: str
    status: AgentStatus
    restarts: int
    queued: int
    in_flight: int
    mailbox_size: int
    handled: int
    failures: int
    breaker: CircuitState | None


@attrs.frozen(kw_only=True)
class RegistryStatistics:
    """Counts over a registry's life (:meth:`Registry.statistics`).

    Attributes:
        agents: names registered now.
        running: of those, RUNNING.
        down: of those, DOWN (restarting, or stopped and not yet forgotten).
        sent: messages put in mailboxes (``send`` and ``request``).
        replies: messages answered while their sender still waited.
        failed: requests that failed (:class:`AgentDied`, or the agent's
            :meth:`Envelope.fail`).
        timeouts: requests whose caller gave up waiting (timeout or cancellation).
        late_replies: replies that came after their caller had given up.
        expired: queued requests skipped because their caller had given up.
        events_dropped: events the publisher refused (full or closed).
    """

    agents: int
    running: int
    down: int
    sent: int
    replies: int
    failed: int
    timeouts: int
    late_replies: int
    expired: int
    events_dropped: int


@final
class Mailbox:
    """An agent's mailbox as the incarnation holding its name sees it.

    ``async for envelope in mailbox:`` takes the messages in order; answer
    each with :meth:`Envelope.reply` (or :meth:`Envelope.fail`). While an
    envelope is being handled, events built with ``Event.new`` are caused by
    its ``agent.message_received`` event, so they join its causal chain.
    The iteration ends when the name is forgotten.
    """

    __slots__ = ("_agent", "_binding", "_registry")

    def __init__(self, registry: Registry, agent: _Agent, binding: _Binding) -> None:
        self._registry = registry
        self._agent = agent
        self._binding = binding

    @property
    def name(self) -> str:
        """The agent's name."""
        return self._agent.name

    @property
    def role(self) -> str:
        """The agent's role."""
        return self._agent.role

    @property
    def queued(self) -> int:
        """Messages waiting."""
        return self._agent.queued

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    async def receive(self) -> Envelope:
        """Wait for the next message.

        Raises:
            trio.EndOfChannel: the name was forgotten (its mailbox closed).
            trio.ClosedResourceError: this incarnation no longer holds the name.
        """
        agent = self._agent
        while True:
            if not self._binding.open:
                raise trio.ClosedResourceError(f"agent {agent.name!r} no longer holds its name")
            envelope = await agent.receive.receive()
            taken = self._take(envelope)
            if taken is not None:
                return taken

    def receive_nowait(self) -> Envelope:
        """Take the next message without waiting.

        Raises:
            trio.WouldBlock: the mailbox is empty.
            trio.EndOfChannel: the name was forgotten.
            trio.ClosedResourceError: this incarnation no longer holds the name.
        """
        agent = self._agent
        while True:
            if not self._binding.open:
                raise trio.ClosedResourceError(f"agent {agent.name!r} no longer holds its name")
            taken = self._take(agent.receive.receive_nowait())
            if taken is not None:
                return taken

    def _take(self, envelope: Envelope) -> Envelope | None:
        agent = self._agent
        agent.queued -= 1
        registry = self._registry
        if envelope._state != _PENDING:
            registry._expired += 1  # its caller gave up while it waited
            return None
        envelope._binding = self._binding
        self._binding.taken.add(envelope)
        envelope._taken_at = trio.current_time()
        received = registry._publish(
            AgentEvent.MESSAGE_RECEIVED,
            agent.name,
            {"agent": agent.name, "request_id": str(envelope.id), **_describe(envelope.message)},
            envelope.cause,
            envelope.correlation_id,
        )
        envelope._received = received
        # Like a subscription: what the handler publishes joins the chain.
        set_cause(received if received is not None else envelope.cause)
        return envelope


def _describe(message: object) -> dict[str, object]:
    """What events say of a message: a task's type and id, else its Python type."""
    kind = getattr(message, "type", None)
    task_id = getattr(message, "id", None)
    if isinstance(kind, str) and isinstance(task_id, UUID):
        return {"task_type": kind, "task_id": str(task_id)}
    return {"message_type": storable_text(type(message).__qualname__)}


def _by_id(envelope: Envelope) -> UUID:
    return envelope.id


def _cancel_reason(error: BaseException) -> str | None:
    """The reason of the first Cancelled in ``error`` (one, or a group of them)."""
    if isinstance(error, trio.Cancelled):
        return error.reason
    if isinstance(error, BaseExceptionGroup):
        return _cancel_reason(error.exceptions[0])
    return None


def _end_reason(error: BaseException | None, stopped: bool) -> str:
    if error is None:
        return "it stopped"
    if stopped:
        reason = _cancel_reason(error)
        return f"it was stopped ({reason})" if reason else "it was stopped"
    if isinstance(error, ChildHung):
        return f"it hung: {error}"
    return f"it crashed: {type(error).__qualname__}: {error}"


@final
class Registry:
    """Named agents, each with a bounded mailbox; send, request and reply.

    ``registry.agent(name, handler, role=...)`` makes a :class:`ChildSpec`;
    put it under any :class:`Supervisor`. Each incarnation registers the
    name, then answers the mailbox's messages one at a time with
    ``await handler(message)``. A handler that raises crashes the agent, as
    in an OTP ``gen_server``: the request it was handling fails at once with
    :class:`AgentDied`, the supervisor applies its strategy, and the
    messages still queued wait for the restart.

    ``await registry.request(name, message, timeout=5)`` waits for the
    reply; ``await registry.send(name, message)`` only delivers. Both wait
    for a mailbox with room (backpressure) and, while the agent is DOWN
    (between a crash and its restart), for it to come back, at most
    ``restart_wait`` seconds.

    Args:
        events: where agent events go (an ``EventBus`` or anything with
            ``publish_nowait``); None: none are published.
        mailbox_size: default capacity of each mailbox (>= 1).
        restart_wait: seconds a sender waits for a DOWN agent to come back
            before :class:`AgentUnavailable`; 0 fails at once.
        request_timeout: default timeout of :meth:`request`, seconds.
        name: for logs and reprs.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
    """

    def __init__(
        self,
        *,
        events: EventPublisher | None = None,
        mailbox_size: int = 64,
        restart_wait: float = 5.0,
        request_timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        checked = check_publisher(events)
        int_at_least("mailbox_size", mailbox_size, 1)
        finite_at_least("restart_wait", restart_wait, 0)
        finite_at_least("request_timeout", request_timeout, 0, strict=True)
        self.name = optional_name(name) or "registry"
        #: Publishes the registry's events, and its routers' (one drop count).
        self._emitter = Emitter(checked, f"registry {self.name!r}")
        self.mailbox_size = mailbox_size
        self.restart_wait = restart_wait
        self.request_timeout = request_timeout
        self._agents: dict[str, _Agent] = {}
        #: role -> its agents' names in registration order (an ordered set).
        self._roles: dict[str, dict[str, None]] = {}
        #: Set and replaced whenever any agent's status changes.
        self._changed = trio.Event()
        self._sent = 0
        self._replies = 0
        self._failed = 0
        self._timeouts = 0
        self._late_replies = 0
        self._expired = 0

    def __repr__(self) -> str:
        return f"<Registry {self.name!r} agents={len(self._agents)}>"

    @property
    def events(self) -> EventPublisher | None:
        """Where the registry publishes its events (None: nowhere)."""
        return self._emitter.events

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    # ------------------------------------------------------------ agents

    def agent(
        self,
        name: str,
        handler: Handler,
        *,
        role: str | None = None,
        mailbox_size: int | None = None,
        breaker: CircuitBreaker | None = None,
        restart: Restart = Restart.PERMANENT,
        shutdown: float | None = None,
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = None,
        significant: bool = False,
    ) -> ChildSpec:
        """A child spec for an agent that answers each message with ``handler``.

        Args:
            name: the agent's name, also the child's id.
            handler: ``async def handler(message) -> reply``. It handles one
                message at a time; if it raises, the agent crashes.
            role: what a :class:`Router` routes to it; default: ``name``.
            mailbox_size: its mailbox's capacity; default: the registry's.
            breaker: a circuit breaker on the requests sent to it: failed
                and timed-out requests count as failures, and a router skips
                the agent while the breaker is open.
            restart, shutdown, backoff, significant: as in :class:`ChildSpec`.
            heartbeat: hung-agent detection (:class:`Heartbeat`): waiting
                for mail is idle (``current_child().idle()``), never a hang;
                a handler that runs longer than the detector tolerates must
                call ``current_child().heartbeat()``, or it is judged hung,
                cancelled and restarted.

        Returns:
            The :class:`ChildSpec` (id ``name``).

        Raises:
            TypeError, ValueError: a bad argument.
        """
        non_empty_str("name", name)
        problem = async_problem(handler)
        if problem is not None:
            raise TypeError(f"handler must be an async function, got {problem}")
        self._check_options(role, mailbox_size, breaker)
        watched = heartbeat is not None

        async def run_agent(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with self.register(
                name, role=role, mailbox_size=mailbox_size, breaker=breaker
            ) as mailbox:
                # Started once the name is held (as an OTP gen_server registers
                # before init returns): the next child may send to it at once.
                task_status.started()
                if not watched:
                    async for envelope in mailbox:
                        envelope.reply(await handler(envelope.message))
                    return
                child = current_child()
                while True:
                    # Waiting for mail is idle, never a hang (docs/design.md
                    # rule 38); the handler must beat if it runs long.
                    async with child.idle():
                        try:
                            received = await mailbox.receive()
                        except trio.EndOfChannel:
                            return
                    child.heartbeat()
                    received.reply(await handler(received.message))

        run_agent.__qualname__ = f"agent {name}"
        return ChildSpec(
            name,
            run_agent,
            restart=restart,
            shutdown=shutdown,
            backoff=backoff,
            heartbeat=heartbeat,
            significant=significant,
        )

    def _check_options(
        self, role: str | None, mailbox_size: int | None, breaker: CircuitBreaker | None
    ) -> None:
        if role is not None:
            non_empty_str("role", role)
        if mailbox_size is not None:
            int_at_least("mailbox_size", mailbox_size, 1)
        if breaker is not None and not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"breaker must be a CircuitBreaker or None, got {breaker!r}")

    @contextmanager
    def register(
        self,
        name: str,
        *,
        role: str | None = None,
        mailbox_size: int | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> Iterator[Mailbox]:
        """Hold ``name`` for the block; read its mailbox from the :class:`Mailbox`.

        In O(1). Entering takes the name: a new one, or a DOWN one with its
        mailbox and queued messages (a restart). Leaving lets go of it: the
        requests this block took and did not answer fail at once with
        :class:`AgentDied`, and the name goes DOWN. Inside a supervised child
        the name then waits for the restart and is forgotten only when the
        supervisor will not start the child again; elsewhere it is forgotten
        at once. The current cause (the event of the message being handled)
        goes back to what it was when the block was entered; an error that
        ends the block keeps it, so a supervisor publishes the crash in that
        message's causal chain.

        Args:
            name: the agent's name.
            role: its role; default: ``name``.
            mailbox_size: the capacity of a new mailbox; default: the
                registry's. A name taken again keeps its mailbox.
            breaker: see :meth:`agent`; default: keep the name's breaker.

        Raises:
            AgentNameTaken: a running agent holds the name.
            TypeError, ValueError: a bad argument.
        """
        non_empty_str("name", name)
        self._check_options(role, mailbox_size, breaker)
        agent, binding = self._bind(name, role or name, mailbox_size or self.mailbox_size, breaker)
        error: BaseException | None = None
        outer = current_cause()
        try:
            yield Mailbox(self, agent, binding)
        except BaseException as exc:
            error = exc
            # The message being handled is the cause of the crash: the error
            # keeps it for the supervisor (docs/design.md rule 40), since the
            # current cause goes back below.
            keep_cause(exc, current_cause())
            raise
        finally:
            self._unbind(agent, binding, error)
            # As a subscription's block: the last message's event does not
            # outlive the block (nor leak into the agent's next incarnation).
            set_cause(outer)

    def _bind(
        self, name: str, role: str, capacity: int, breaker: CircuitBreaker | None
    ) -> tuple[_Agent, _Binding]:
        agent = self._agents.get(name)
        if agent is not None and agent.status is AgentStatus.RUNNING:
            raise AgentNameTaken(name)
        if agent is None:
            agent = _Agent(name, role, capacity)
            self._agents[name] = agent
        elif agent.role != role:
            self._roles[agent.role].pop(name, None)
            agent.role = role
        self._roles.setdefault(role, {})[name] = None
        agent.status = agent_step(name, agent.status, AgentInput.BIND)
        if breaker is not None:
            agent.breaker = breaker
        binding = agent.binding = _Binding()
        agent.restarts += 1
        try:
            child = current_child()
        except NoCurrentChild:
            pass
        else:
            binding.child = child
            listen_status(child, lambda status: self._settled(agent, binding, status))
        self._changed_status(agent)
        self._publish(
            AgentEvent.STARTED,
            name,
            {"agent": name, "role": role, "restarts": agent.restarts},
            None,
            None,
        )
        return agent, binding

    def _unbind(self, agent: _Agent, binding: _Binding, error: BaseException | None) -> None:
        binding.open = False
        # Cancelled (alone, or a handler's nursery's group of them) is a stop,
        # unless the supervisor cancelled the agent because it hung: a failure.
        stopped = error is None or only_cancelled(error)
        hung = None if binding.child is None else hung_verdict(binding.child)
        if hung is not None:
            error, stopped = hung, False
        reason = _end_reason(error, stopped)
        if not stopped:
            agent.failures += 1
        # The end joins the causal chain of a request it cut short (the
        # oldest taken), so a trace of that task shows the crash.
        cause: Event | None = None
        for envelope in sorted(binding.taken, key=_by_id):
            if cause is None:
                cause = envelope._received
            died = AgentDied(agent.name, envelope.id, reason)
            died.__cause__ = error
            envelope._end(_FAILED, None, died)
        binding.taken.clear()
        agent.binding = None
        agent.status = agent_step(agent.name, agent.status, AgentInput.UNBIND)
        agent.down_since = trio.current_time()
        # The reason quotes the error (or a cancel reason): make it storable.
        payload: dict[str, object] = {"agent": agent.name, "reason": storable_text(reason)}
        if stopped or error is None:
            self._publish(AgentEvent.STOPPED, agent.name, payload, cause, None)
        else:
            payload.update(describe_error(error))
            self._publish(AgentEvent.FAILED, agent.name, payload, cause, None)
        if binding.child is None or binding.orphaned:
            self._forget(agent)
        else:
            self._changed_status(agent)

    def _settled(self, agent: _Agent, binding: _Binding, status: ChildStatus | None) -> None:
        """The supervisor's word on the child that held ``agent``'s name."""
        if status is not None or self._agents.get(agent.name) is not agent:
            return
        if agent.binding is binding:
            binding.orphaned = True  # the block is still unwinding; it forgets
        elif agent.binding is None:
            self._forget(agent)

    def _forget(self, agent: _Agent) -> None:
        """The agent will not come back: free its name, fail what it had queued."""
        agent.status = agent_step(agent.name, agent.status, AgentInput.REMOVE)
        del self._agents[agent.name]
        members = self._roles[agent.role]
        del members[agent.name]
        if not members:
            del self._roles[agent.role]
        agent.send.close()
        while True:
            try:
                envelope = agent.receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            agent.queued -= 1
            if envelope._state == _PENDING:
                died = AgentDied(agent.name, envelope.id, "it stopped for good")
                envelope._end(_FAILED, None, died)
        agent.receive.close()
        self._changed_status(agent)

    def _changed_status(self, agent: _Agent) -> None:
        agent.changed.set()
        agent.changed = trio.Event()
        self._changed.set()
        self._changed = trio.Event()

    # ------------------------------------------------------------ queries

    def lookup(self, name: str) -> AgentInfo:
        """A snapshot of the agent holding ``name``, in O(1).

        Raises:
            AgentNotFound: no such name (never registered, or forgotten).
        """
        agent = self._agents.get(name)
        if agent is None:
            raise AgentNotFound(name)
        assert agent.status is not None
        binding = agent.binding
        return AgentInfo(
            name=agent.name,
            role=agent.role,
            status=agent.status,
            restarts=agent.restarts,
            queued=agent.queued,
            in_flight=0 if binding is None else len(binding.taken),
            mailbox_size=agent.capacity,
            handled=agent.handled,
            failures=agent.failures,
            breaker=None if agent.breaker is None else agent.breaker.state,
        )

    def names(self, role: str | None = None) -> list[str]:
        """The registered names (of ``role`` only, if given), in registration order."""
        if role is None:
            return list(self._agents)
        return list(self._roles.get(role, ()))

    def roles(self) -> list[str]:
        """The roles that have at least one registered agent."""
        return list(self._roles)

    def statistics(self) -> RegistryStatistics:
        """Counts since the registry was made, and the agents now."""
        running = sum(1 for a in self._agents.values() if a.status is AgentStatus.RUNNING)
        return RegistryStatistics(
            agents=len(self._agents),
            running=running,
            down=len(self._agents) - running,
            sent=self._sent,
            replies=self._replies,
            failed=self._failed,
            timeouts=self._timeouts,
            late_replies=self._late_replies,
            expired=self._expired,
            events_dropped=self._emitter.dropped,
        )

    # ------------------------------------------------------------ sending

    async def send(self, name: str, message: object) -> None:
        """Put ``message`` in the agent's mailbox; no reply.

        Waits while the mailbox is full (backpressure), and while the agent is
        DOWN, at most ``restart_wait`` seconds.

        Raises:
            AgentNotFound: no such name, or it was forgotten while we waited.
            AgentUnavailable: it stayed DOWN ``restart_wait`` seconds.
        """
        agent = await self._reachable(name, math.inf)
        envelope = Envelope(self, name, message, expects_reply=False)
        await self._put(agent, envelope)

    def send_nowait(self, name: str, message: object) -> None:
        """Put ``message`` in the agent's mailbox now, or raise.

        Raises:
            AgentNotFound: no such name.
            AgentUnavailable: the agent is DOWN.
            trio.WouldBlock: its mailbox is full.
        """
        agent = self._agents.get(name)
        if agent is None:
            raise AgentNotFound(name)
        if agent.status is not AgentStatus.RUNNING:
            raise AgentUnavailable(name, 0.0)
        agent.send.send_nowait(Envelope(self, name, message, expects_reply=False))
        agent.queued += 1
        self._sent += 1

    @overload
    async def request(self, name: str, message: object, *, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    @overload
    async def request(
        self,
        name: str,
        message: object,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        reply_type: type[R],
    ) -> R: ...

    async def request(
        self,
        name: str,
        message: object,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        reply_type: type[Any] | None = None,
    ) -> Any:
        """Send ``message`` to the agent and wait for its reply.

        Args:
            name: the agent.
            message: anything; the handler gets it as is.
            timeout: seconds for the whole exchange (waiting for a restart,
                for room in the mailbox, and for the reply); default: the
                registry's ``request_timeout``.
            reply_type: the class the reply must be an instance of. Given,
                the call is typed as returning it (``reply_type=str``: a
                ``str``, for mypy) and another reply raises
                :class:`UnexpectedReply`; default: any reply, typed ``Any``.

        Returns:
            The handler's reply.

        Raises:
            AgentNotFound: no such name.
            AgentUnavailable: it stayed DOWN ``restart_wait`` seconds.
            AgentDied: it ended (crashed, hung, was stopped) before replying;
                its error is the ``__cause__``. Raised as soon as it ends.
            RequestTimeout: no reply in time. A later reply is dropped.
            CallNotPermitted: the agent's circuit breaker is open.
            UnexpectedReply: the reply is not a ``reply_type``.
            TypeError: ``reply_type`` is not a class.
            Exception: whatever the agent passed to :meth:`Envelope.fail`.
        """
        check_reply_type(reply_type)
        if timeout is None:
            timeout = self.request_timeout
        else:
            finite_at_least("timeout", timeout, 0, strict=True)
        deadline = trio.current_time() + timeout
        agent = await self._reachable(name, deadline, timeout)
        reply = await self._request_agent(agent, message, deadline, timeout)
        return checked_reply(name, reply, reply_type)

    async def _request_agent(
        self, agent: _Agent, message: object, deadline: float, limit: float
    ) -> Any:
        envelope = Envelope(self, agent.name, message, expects_reply=True)
        if agent.breaker is None:
            return await self._exchange(agent, envelope, deadline, limit)
        return await agent.breaker.call(self._exchange, agent, envelope, deadline, limit)

    async def _exchange(
        self, agent: _Agent, envelope: Envelope, deadline: float, limit: float
    ) -> Any:
        done = envelope._done
        assert done is not None
        try:
            with trio.move_on_at(deadline):
                await self._put(agent, envelope)
                await done.wait()
        finally:
            if envelope._state == _PENDING:
                # Timed out or cancelled: a reply that comes now is dropped.
                envelope._state = _ABANDONED
                self._timeouts += 1
        if envelope._state == _REPLIED:
            return envelope._value
        if envelope._state == _FAILED:
            assert envelope._error is not None
            raise envelope._error
        raise RequestTimeout(agent.name, envelope.id, limit)

    async def _put(self, agent: _Agent, envelope: Envelope) -> None:
        agent.queued += 1  # before the send: the receiver may run inside it
        try:
            await agent.send.send(envelope)
        except trio.ClosedResourceError:
            agent.queued -= 1
            died = AgentDied(agent.name, envelope.id, "it stopped for good")
            envelope._end(_FAILED, None, died)
            if envelope._done is None:
                raise died from None
            return
        except BaseException:
            agent.queued -= 1
            raise
        self._sent += 1

    async def _reachable(self, name: str, deadline: float, limit: float = math.inf) -> _Agent:
        """The RUNNING agent ``name``, waiting for a restart up to ``restart_wait``."""
        agent = self._agents.get(name)
        if agent is None:
            raise AgentNotFound(name)
        first = agent.status  # (a local: the loop below changes agent.status)
        if first is AgentStatus.RUNNING:
            return agent
        start = trio.current_time()
        give_up = min(deadline, start + self.restart_wait)
        with trio.move_on_at(give_up):
            while agent.status is AgentStatus.DOWN:
                await agent.changed.wait()
        if agent.status is AgentStatus.RUNNING:
            return agent
        if agent.status is AgentStatus.GONE:
            raise AgentNotFound(name)
        if give_up >= deadline:
            raise RequestTimeout(name, None, limit)
        raise AgentUnavailable(name, trio.current_time() - start)

    # ------------------------------------------------------------ events

    def _count_handled(self, envelope: Envelope) -> None:
        agent = self._agents.get(envelope._agent)
        if agent is not None:
            agent.handled += 1

    def _handled(self, envelope: Envelope) -> None:
        self._replies += 1
        self._count_handled(envelope)
        if envelope._received is not None:
            self._publish(
                AgentEvent.MESSAGE_PROCESSED,
                envelope._agent,
                {
                    "agent": envelope._agent,
                    "request_id": str(envelope.id),
                    "duration": trio.current_time() - envelope._taken_at,
                },
                envelope._received,
                envelope.correlation_id,
            )

    def _publish(
        self,
        kind: EventType,
        agent: str,
        payload: Mapping[str, object],
        cause: Event | None,
        correlation_id: UUID | None,
    ) -> Event | None:
        """Publish an agent event (source ``agents/<agent>``)."""
        return self._publish_to(
            self._emitter.events, kind, f"agents/{agent}", payload, cause, correlation_id
        )

    def _publish_to(
        self,
        events: EventPublisher | None,
        kind: EventType,
        source: str,
        payload: Mapping[str, object],
        cause: Event | None,
        correlation_id: UUID | None,
    ) -> Event | None:
        """Publish a routing event to ``events``; a refusal is counted, never raised.

        The registry's and its routers' events, so one count covers both.
        Our payloads are JSON-safe, and the cause is explicit (None: a root
        event), never whatever the publishing task happens to be handling.
        """
        return self._emitter.emit(
            kind, source, payload, cause, to=events, correlation_id=correlation_id
        )

"""The observer: a read-only HTTP view of a live supervision tree, on h11 and trio's sockets.

docs/design.md rule 47. One trio task per connection speaks HTTP/1.1 through
h11 (sans-io, as trio's own docs do); nothing here runs asyncio or a thread.
Every request is answered on the trio thread from the public tree APIs
(``statistics()``, ``which_children()`` and the shell's
``children_and_nested``), so a response is one consistent snapshot.

An event stream (``/api/events``) is one bus subscription of a bounded
buffer that drops its oldest events when the client reads too slowly
(``Overflow.DROP_OLDEST``): publishers never wait for a browser. Tree updates
are a shared latest-wins slot, rebuilt once per interval for every client
and only sent when the tree changed. A client whose socket takes no bytes
for ``send_timeout`` seconds is disconnected.

Recent failures come from one more bus subscription of the observer's own,
also dropping its oldest events: the last ``_FAILURES_PER_CHILD``
``supervision.child_failed`` payloads of each child, for at most
``_FAILURE_CHILDREN`` children (the one that failed longest ago is forgotten
first), so memory stays bounded however many children come and go.
"""

from __future__ import annotations

try:
    import h11
except ImportError as exc:  # the observer extra is optional
    raise ImportError("trio_smith.observer needs h11: pip install 'trio-smith[observer]'") from exc

import collections
import contextlib
import http
import importlib.resources
import ipaddress
import json
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Final, Self, final
from urllib.parse import parse_qs, urlsplit

import attrs
import trio

from ._core._check import finite_at_least, int_at_least, is_int
from ._core._spec import ChildSpec, Restart
from ._supervision import DynamicSupervisor, Supervisor, SupervisorState, children_and_nested
from .events import (
    BusClosed,
    Event,
    EventBus,
    EventFilter,
    Overflow,
    Subscription,
    SupervisionEvent,
    dumps,
)
from .resilience import CircuitBreaker
from .routing import Registry

__all__ = ["Observer", "ObserverStatistics", "TREE_VERSION"]

#: The version of ``/api/tree``'s JSON shape (docs/observer.md).
TREE_VERSION: Final = 1

_log: Final = logging.getLogger("trio_smith.observer")

#: Bytes of one request's head accepted before answering 431 (400 while incomplete).
_MAX_HEAD: Final = 16 * 1024
#: Bytes of request body read (and thrown away) before answering 400.
_MAX_BODY: Final = 64 * 1024
#: Seconds a connection may take to send a whole request.
_READ_TIMEOUT: Final = 30.0
#: Seconds an erroneous connection is read (and thrown away) before it is closed.
_LINGER: Final = 2.0
#: Seconds between keep-alive comments on an idle event stream.
_KEEPALIVE: Final = 15.0
#: The query parameters of ``/api/events`` and their EventFilter fields.
#: Failures kept per child for ``/api/failures``, newest last.
_FAILURES_PER_CHILD: Final = 5
#: Children whose failures are kept; beyond it the one that failed longest ago is forgotten.
_FAILURE_CHILDREN: Final = 1000
#: Events buffered by the observer's own child_failed subscription (oldest dropped).
_FAILURE_BUFFER: Final = 256
#: The payload fields of a child_failed event that ``/api/failures`` serves.
_FAILURE_FIELDS: Final = ("incarnation", "error_type", "error", "traceback", "during", "reason")
_FILTER_PARAMS: Final = {
    "category": "categories",
    "type": "types",
    "source": "sources",
    "source_prefix": "source_prefixes",
}

_COMMON_HEADERS: Final = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
#: Headers an error answer carries besides the common ones.
_ERROR_HEADERS: Final = {401: [(b"www-authenticate", b"Bearer")], 405: [(b"allow", b"GET, HEAD")]}
#: The page may run its own inline script and style and talk to its own
#: origin; nothing else, so even injected markup could load nothing.
_PAGE_CSP: Final = (
    b"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    b"connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
    b"frame-ancestors 'none'"
)


@final
@attrs.frozen(kw_only=True)
class ObserverStatistics:
    """A snapshot of an observer (``Observer.statistics()``).

    Attributes:
        url: where it serves, or None when it is not serving.
        requests: requests answered since it was built.
        clients: event streams open now.
        clients_refused: event streams refused because ``max_clients`` were open.
        clients_disconnected: event streams closed because the client read nothing
            for ``send_timeout`` seconds.
        events_sent: bus events written to event streams.
        events_dropped: bus events dropped because a client read too slowly
            (its buffer of ``client_buffer`` events was full), over every client.
    """

    url: str | None
    requests: int
    clients: int
    clients_refused: int
    clients_disconnected: int
    events_sent: int
    events_dropped: int


def check_address(host: object, port: object, token: object) -> None:
    """Check where an observer would serve, and with which token (``Observer`` and the CLI).

    Raises:
        TypeError: ``host`` is not a str, or ``token`` not a str or None.
        ValueError: a bad port or token, or a non-loopback ``host`` without a token.
    """
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {host!r}")
    if not is_int(port) or not 0 <= port <= 65535:  # type: ignore[operator]
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}")
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a str or None, got a {type(token).__name__}")
    if token is not None and not (
        token != "" and token.isascii() and token.isprintable() and " " not in token
    ):
        # The token itself is never echoed: error messages end up in logs.
        raise ValueError("token must be a non-empty str of printable ASCII without spaces")
    if token is None and not _is_loopback(host):
        raise ValueError(
            f"the observer serves {host!r}, which is not a loopback address, only with a "
            "token: pass token=... (every request must then carry it) or bind to 127.0.0.1"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _safe_json(value: object) -> bytes:
    """``value`` as JSON that is inert in HTML too: ``<``, ``>`` and ``&`` as \\u escapes."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text.encode()


def _phi(value: float | None) -> float | None:
    # JSON has no infinity: a child past every threshold shows as a large number.
    if value is None or math.isfinite(value):
        return value
    return 1e308 if value > 0 else None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def tree_json(
    root: Supervisor | DynamicSupervisor,
    breakers: tuple[CircuitBreaker, ...] = (),
    registry: Registry | None = None,
) -> dict[str, object]:
    """The ``/api/tree`` document of the tree below ``root`` (docs/observer.md)."""
    return {
        "version": TREE_VERSION,
        "taken": time.time(),
        "root": _node(root, trio.current_time()),
        "breakers": _breakers(breakers),
        "mailboxes": _mailboxes(registry),
    }


def _breakers(breakers: tuple[CircuitBreaker, ...]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for breaker in breakers:
        stats = breaker.statistics()
        rows.append(
            {
                "name": stats.name,
                "state": stats.state.value,
                "failure_rate": stats.failure_rate,
                "slow_call_rate": stats.slow_call_rate,
                "calls": stats.buffered_calls,
                "failed_calls": stats.failed_calls,
                "not_permitted_calls": stats.not_permitted_calls,
                # An OPEN wait of infinity (a custom WaitInterval) has no JSON form.
                "retry_after": _finite(stats.retry_after),
            }
        )
    return rows


def _mailboxes(registry: Registry | None) -> list[dict[str, object]]:
    if registry is None:
        return []
    rows: list[dict[str, object]] = []
    for name in registry.names():
        info = registry.lookup(name)  # same trio tick as names(): it is still there
        rows.append(
            {
                "agent": info.name,
                "role": info.role,
                "status": info.status.value,
                "depth": info.queued,
                "capacity": info.mailbox_size,
                "in_flight": info.in_flight,
            }
        )
    return rows


def _since(now: float, then: float | None) -> float | None:
    return None if then is None else round(now - then, 3)


def _until(now: float, then: float | None) -> float | None:
    # A restart already due but not yet run reads 0, never a negative wait.
    return None if then is None else round(max(then - now, 0.0), 3)


def _node(sup: Supervisor | DynamicSupervisor, now: float) -> dict[str, object]:
    stats = sup.statistics()
    # phi, last heartbeat, restart deadline, os pid and status text
    infos = sup.which_children()
    # A child counts as a supervisor once seen running one (D11): with none,
    # the second walk of a big flat tree is skipped.
    if sup.count_children().supervisors:
        below = [nested for _, nested in children_and_nested(sup)]
    else:
        below = [[]] * len(infos)
    children = []
    for info, nested in zip(infos, below, strict=True):
        children.append(
            {
                "id": info.id,
                "status": info.status.value,
                "restart": info.restart.value,
                "restarts": info.restarts,
                "phi": _phi(info.phi),
                "heartbeat_age": _since(now, info.last_heartbeat),
                "backoff": _until(now, info.restart_at),
                "os_pid": info.os_pid,
                "status_text": info.status_text,
                "supervisors": [_node(n, now) for n in nested],
            }
        )
    return {
        "name": stats.name,
        "path": stats.path,
        "kind": "dynamic_supervisor" if isinstance(sup, DynamicSupervisor) else "supervisor",
        "state": stats.state.value,
        "strategy": stats.strategy.value,
        "restarts": stats.restarts,
        "active": stats.active,
        "children": children,
    }


def _page() -> bytes:
    return importlib.resources.files("trio_smith").joinpath("_observer_page.html").read_bytes()


class _Refused(Exception):
    """A request answered with an error status before anything was sent."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Stuck(Exception):
    """A client took no bytes for ``send_timeout`` seconds."""


def _event_filter(query: dict[str, list[str]]) -> EventFilter | None:
    """The EventFilter the query of ``/api/events`` asks for; None: every event.

    Raises:
        _Refused: an unknown parameter or a bad value (400).
    """
    fields: dict[str, list[str]] = {}
    for key, values in query.items():
        if key == "token":
            continue
        field = _FILTER_PARAMS.get(key)
        if field is None:
            expected = ", ".join(sorted(_FILTER_PARAMS))
            raise _Refused(400, f"unknown query parameter {key!r}; expected {expected}")
        fields.setdefault(field, []).extend(v for value in values for v in value.split(",") if v)
    if not fields:
        return None
    try:
        return EventFilter(**fields)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise _Refused(400, f"bad event filter: {exc}") from None


@final
class _Client:
    """One open event stream."""

    __slots__ = ("conn", "dropped", "lock", "sent", "stream", "subscription")

    def __init__(
        self, conn: h11.Connection, stream: trio.SocketStream, subscription: Subscription | None
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.subscription = subscription
        self.lock = trio.Lock()  # one writer at a time: events and tree updates
        self.sent = 0
        self.dropped = 0

    def dropped_now(self) -> int:
        sub = self.subscription
        return 0 if sub is None else sub.statistics().dropped


@final
class Observer:
    """A read-only HTTP view of a live supervision tree: a page, JSON, events, metrics.

    ``async with Observer(root, port=8790) as obs:`` serves while the block
    runs (``obs.url``); the ``ChildSpec`` of :meth:`spec` runs it as a child of
    a tree. Endpoints, the JSON shape and the safety rules: docs/observer.md.

    Args:
        root: the supervisor whose tree it shows.
        host: the address to bind; loopback by default. Any other needs ``token``.
        port: the TCP port; 0 picks a free one (read ``url``).
        bus: the event bus whose events ``/api/events`` streams; None: the
            stream carries tree updates only.
        token: when given, every request must carry it, as
            ``Authorization: Bearer <token>`` or ``?token=<token>`` (else 401).
        tree_interval: seconds between tree updates on event streams (sent
            only when the tree changed).
        client_buffer: events buffered per event stream; a client that reads
            more slowly loses the oldest (counted in ``events_dropped``).
        max_clients: event streams open at once; more get 503.
        send_timeout: seconds a client may take no bytes before it is disconnected.
        breakers: circuit breakers whose states ``/api/tree`` shows.
        registry: the routing registry whose mailboxes ``/api/tree`` shows.

    Raises:
        TypeError, ValueError: a bad argument (the message names it).
        ValueError: a non-loopback ``host`` without a ``token``.
    """

    __slots__ = (
        "_breakers",
        "_bus",
        "_client_buffer",
        "_clients",
        "_disconnected",
        "_failures",
        "_host",
        "_max_clients",
        "_nursery_cm",
        "_port",
        "_refused",
        "_registry",
        "_requests",
        "_retired_dropped",
        "_retired_sent",
        "_root",
        "_scrape",
        "_send_timeout",
        "_serving",
        "_token",
        "_tree_frame",
        "_tree_interval",
        "_tree_lot",
        "_tree_root",
        "_tree_version",
        "_url",
    )

    def __init__(
        self,
        root: Supervisor | DynamicSupervisor,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bus: EventBus | None = None,
        token: str | None = None,
        tree_interval: float = 1.0,
        client_buffer: int = 256,
        max_clients: int = 100,
        send_timeout: float = 30.0,
        breakers: tuple[CircuitBreaker, ...] | list[CircuitBreaker] = (),
        registry: Registry | None = None,
    ) -> None:
        if not isinstance(root, Supervisor | DynamicSupervisor):
            raise TypeError(f"root must be a Supervisor or DynamicSupervisor, got {root!r}")
        check_address(host, port, token)
        if bus is not None and not isinstance(bus, EventBus):
            raise TypeError(f"bus must be an EventBus or None, got {bus!r}")
        if not isinstance(breakers, tuple | list):
            raise TypeError(f"breakers must be a tuple or list of CircuitBreaker, got {breakers!r}")
        for breaker in breakers:
            if not isinstance(breaker, CircuitBreaker):
                raise TypeError(f"breakers must hold CircuitBreaker objects, got {breaker!r}")
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry or None, got {registry!r}")
        finite_at_least("tree_interval", tree_interval, 0, strict=True)
        int_at_least("client_buffer", client_buffer, 1)
        int_at_least("max_clients", max_clients, 1)
        finite_at_least("send_timeout", send_timeout, 0, strict=True)
        self._root = root
        # "localhost" may resolve to two addresses, which port 0 would give two ports.
        self._host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self._bus = bus
        self._breakers = tuple(breakers)
        self._registry = registry
        #: (supervisor path, child id) -> its last failures, the most recent child last.
        self._failures: collections.OrderedDict[
            tuple[str, str], collections.deque[dict[str, object]]
        ] = collections.OrderedDict()
        self._token = None if token is None else token.encode()
        self._tree_interval = tree_interval
        self._client_buffer = client_buffer
        self._max_clients = max_clients
        self._send_timeout = send_timeout
        self._url: str | None = None
        self._scrape: Callable[[], bytes] | None = None
        self._serving = False
        self._nursery_cm: (
            tuple[contextlib.AbstractAsyncContextManager[trio.Nursery], trio.Nursery] | None
        ) = None
        self._clients: set[_Client] = set()
        self._requests = 0
        self._refused = 0
        self._disconnected = 0
        self._retired_sent = 0
        self._retired_dropped = 0
        self._tree_root = b""
        self._tree_frame = b""
        self._tree_version = 0
        self._tree_lot = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return f"<Observer of {self._root.name!r} {self._url or 'not serving'}>"

    @property
    def url(self) -> str:
        """Where it serves: ``http://host:port/``.

        Raises:
            RuntimeError: it is not serving.
        """
        if self._url is None:
            raise RuntimeError("the observer is not serving: enter it, or run it as a child")
        return self._url

    def statistics(self) -> ObserverStatistics:
        """Return a frozen snapshot of the observer. Never blocks."""
        return ObserverStatistics(
            url=self._url,
            requests=self._requests,
            clients=len(self._clients),
            clients_refused=self._refused,
            clients_disconnected=self._disconnected,
            events_sent=self._retired_sent + sum(c.sent for c in self._clients),
            events_dropped=self._retired_dropped + sum(c.dropped_now() for c in self._clients),
        )

    def spec(self, id: str = "observer", *, restart: Restart = Restart.PERMANENT) -> ChildSpec:
        """Return the spec of a child that runs the observer (:meth:`run`).

        Args:
            id: the child's id.
            restart: its restart type.

        Returns:
            The ``ChildSpec``; the child counts as started once it listens.
        """
        return ChildSpec(id, self.run, restart=restart)

    async def __aenter__(self) -> Self:
        listeners = await self._bind()
        cm = trio.open_nursery()
        nursery = await cm.__aenter__()  # no checkpoint: nothing can cancel in between
        try:
            # From here on _serve closes the listeners, whatever happens.
            await nursery.start(self._serve, listeners)
        except BaseException:
            nursery.cancel_scope.cancel()
            await cm.__aexit__(None, None, None)
            raise
        self._nursery_cm = (cm, nursery)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        cm = self._nursery_cm
        assert cm is not None
        self._nursery_cm = None
        # The block's own exception is not handed to the nursery, which would
        # wrap it in an ExceptionGroup: it propagates as it is.
        cm[1].cancel_scope.cancel()
        await cm[0].__aexit__(None, None, None)
        return False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, report started, and serve until cancelled.

        Raises:
            RuntimeError: it is already serving.
            OSError: the address cannot be bound.
        """
        listeners = await self._bind()
        await self._serve(listeners, task_status=task_status)

    async def _bind(self) -> list[trio.SocketListener]:
        if self._serving:
            raise RuntimeError(f"the observer is already serving at {self._url}")
        self._serving = True
        try:
            return await trio.open_tcp_listeners(self._port, host=self._host)
        except BaseException:
            self._serving = False
            raise

    async def _serve(
        self,
        listeners: list[trio.SocketListener],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            host, port = listeners[0].socket.getsockname()[:2]
            self._url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
            async with trio.open_nursery() as nursery:
                collector = _collector(self._root, self._bus)
                if collector is not None:
                    # Counts telemetry (child failures...) while serving; every
                    # scrape takes a fresh snapshot, so the interval is long.
                    await nursery.start(collector[0], 3600.0)
                    self._scrape = collector[1]
                nursery.start_soon(self._tick)
                if self._bus is not None:
                    await nursery.start(self._watch_failures, self._bus)
                await nursery.start(trio.serve_listeners, self._connection, listeners)
                task_status.started()
        finally:
            self._url = None
            self._scrape = None
            self._serving = False
            for listener in listeners:
                listener.socket.close()  # synchronous: it must happen even when cancelled

    # ------------------------------------------------------------ failures

    async def _watch_failures(
        self, bus: EventBus, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            sub = bus.subscribe(
                EventFilter(types=[SupervisionEvent.CHILD_FAILED]),
                buffer=_FAILURE_BUFFER,
                overflow=Overflow.DROP_OLDEST,  # publishers never wait for the observer
                name="observer failures",
            )
        except BusClosed:
            task_status.started()
            return
        try:
            task_status.started()
            with contextlib.suppress(trio.EndOfChannel, BusClosed):
                while True:
                    self._record_failure(await sub.receive())
        finally:
            sub.close()

    def _record_failure(self, event: Event) -> None:
        payload = event.payload
        supervisor = payload.get("supervisor", event.source)
        child = payload.get("child_id")
        if not isinstance(supervisor, str) or not isinstance(child, str):
            return
        key = (supervisor, child)
        kept = self._failures.pop(key, None)
        if kept is None:
            kept = collections.deque(maxlen=_FAILURES_PER_CHILD)
            while len(self._failures) >= _FAILURE_CHILDREN:
                self._failures.popitem(last=False)
        self._failures[key] = kept  # last: the most recent to fail
        failure: dict[str, object] = {"timestamp": event.timestamp.isoformat()}
        failure.update((k, payload[k]) for k in _FAILURE_FIELDS if k in payload)
        kept.append(failure)

    def _failures_json(self, query: dict[str, list[str]]) -> bytes:
        """The ``/api/failures`` document the query asks for.

        Raises:
            _Refused: a missing, repeated or unknown parameter (400).
        """
        for key in query:
            if key not in ("supervisor", "child", "token"):
                raise _Refused(400, f"unknown query parameter {key!r}; expected child, supervisor")
        wanted = []
        for key in ("supervisor", "child"):
            values = query.get(key, [])
            if len(values) != 1:
                raise _Refused(400, f"/api/failures needs one {key!r} query parameter")
            wanted.append(values[0])
        supervisor, child = wanted
        kept = self._failures.get((supervisor, child), ())
        return _safe_json(
            {
                "supervisor": supervisor,
                "child": child,
                "failures": list(reversed(kept)),  # newest first
            }
        )

    # ------------------------------------------------------------ the tree

    def _tree_json(self) -> dict[str, object]:
        return tree_json(self._root, self._breakers, self._registry)

    def _refresh_tree(self) -> None:
        """Rebuild the tree and wake the event streams if it changed."""
        doc = self._tree_json()
        del doc["taken"]  # a new time alone is no change
        root = _safe_json(doc)
        if root == self._tree_root:
            return
        self._tree_root = root
        # root is the document without "taken": put it back in front.
        frame = b'{"taken":%r,' % time.time() + root[1:]
        self._tree_frame = b"event: tree\ndata: " + frame + b"\n\n"
        self._tree_version += 1
        self._tree_lot.unpark_all()

    async def _tick(self) -> None:
        while True:
            await trio.sleep(self._tree_interval)
            if self._clients:
                self._refresh_tree()

    # ------------------------------------------------------------ HTTP

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                request = await self._read_request(conn, stream)
                if request is None or not await self._answer(conn, stream, request):
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            await self._try_error(conn, stream, exc.error_status_hint, "bad request\n")
        except _Refused as exc:
            await self._try_error(conn, stream, exc.status, exc.message + "\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        except Exception:
            # One bad request never stops the server (trio.serve_listeners
            # would end with the first handler that raises).
            _log.exception("the observer failed to answer a request")
            await self._try_error(conn, stream, 500, "internal error\n")
        finally:
            await trio.aclose_forcefully(stream)

    async def _read_request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> h11.Request | None:
        """The next whole request (its body read and thrown away); None at EOF."""
        request = None
        body = 0
        with trio.fail_after(_READ_TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Request):
                    request = event
                    if (
                        len(event.target) + sum(len(k) + len(v) for k, v in event.headers)
                        > _MAX_HEAD
                    ):
                        raise _Refused(431, "request header fields too large")
                elif isinstance(event, h11.Data):
                    body += len(event.data)
                    if body > _MAX_BODY:
                        raise _Refused(400, "request body too large")
                elif isinstance(event, h11.EndOfMessage):
                    return request
                else:  # ConnectionClosed
                    return None

    async def _try_error(
        self, conn: h11.Connection, stream: trio.SocketStream, status: int, message: str
    ) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError
        ):
            extra = _ERROR_HEADERS.get(status, [])
            await self._respond(
                conn, stream, b"GET", status, message.encode(), b"text/plain; charset=utf-8", extra
            )
            # A lingering close: closing with unread bytes would reset the
            # connection and could destroy the answer before the client reads it.
            await stream.send_eof()
            with trio.move_on_after(_LINGER):
                while await stream.receive_some(65536):
                    pass

    async def _respond(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        method: bytes,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", content_type),
            (b"content-length", b"%d" % len(body)),
            *_COMMON_HEADERS,
            *(extra or ()),
        ]
        data = conn.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        if method != b"HEAD" and body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)

    def _authorized(self, request: h11.Request, query: dict[str, list[str]]) -> bool:
        token = self._token
        assert token is not None
        for name, value in request.headers:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                if scheme.lower() == b"bearer" and secrets.compare_digest(given.strip(), token):
                    return True
        return any(secrets.compare_digest(v.encode(), token) for v in query.get("token", ()))

    async def _answer(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request
    ) -> bool:
        """Answer ``request``; whether the connection may carry another."""
        self._requests += 1
        method = request.method
        try:
            target = request.target.decode("ascii")
            if not target.startswith("/"):
                raise ValueError(target)
            url = urlsplit(target)
            query = parse_qs(url.query, keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "bad request target") from None
        if self._token is not None and not self._authorized(request, query):
            raise _Refused(401, "unauthorized: this observer needs its token")
        if method not in (b"GET", b"HEAD"):
            raise _Refused(405, "method not allowed: the observer is read-only")
        path = url.path
        if path == "/api/events":
            await self._events(conn, stream, method, query)
            return False
        if path == "/api/failures":
            body = self._failures_json(query)
            await self._respond(conn, stream, method, 200, body, b"application/json")
            return True
        answer = self._simple(path)
        if answer is None:
            raise _Refused(404, f"not found: {path}")
        status, body, content_type, extra = answer
        await self._respond(conn, stream, method, status, body, content_type, extra)
        return True

    def _simple(self, path: str) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]] | None:
        if path == "/":
            return (
                200,
                _page(),
                b"text/html; charset=utf-8",
                [(b"content-security-policy", _PAGE_CSP)],
            )
        if path == "/api/tree":
            return 200, _safe_json(self._tree_json()), b"application/json", []
        if path == "/healthz":
            return 200, b"ok\n", b"text/plain; charset=utf-8", []
        if path == "/readyz":
            state = self._root.statistics().state
            if state is SupervisorState.RUNNING:
                return 200, b"ready\n", b"text/plain; charset=utf-8", []
            return 503, f"not ready: {state.value}\n".encode(), b"text/plain; charset=utf-8", []
        if path == "/metrics":
            if self._scrape is None:
                return None
            return 200, self._scrape(), b"text/plain; version=0.0.4; charset=utf-8", []
        return None

    async def _events(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        method: bytes,
        query: dict[str, list[str]],
    ) -> None:
        flt = _event_filter(query)
        if len(self._clients) >= self._max_clients:
            self._refused += 1
            raise _Refused(503, f"too many event streams (max_clients={self._max_clients})")
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), *_COMMON_HEADERS]
        if method == b"HEAD":
            await self._respond(conn, stream, method, 200, b"", headers[0][1])
            return
        sub = None
        if self._bus is not None:
            with contextlib.suppress(BusClosed):
                sub = self._bus.subscribe(
                    flt,
                    buffer=self._client_buffer,
                    overflow=Overflow.DROP_OLDEST,
                    name=f"observer client {self._requests}",
                )
        client = _Client(conn, stream, sub)
        self._clients.add(client)
        try:
            self._refresh_tree()
            head = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
            await stream.send_all(head + conn.send(h11.Data(data=b"retry: 2000\n\n")))
            async with trio.open_nursery() as nursery:
                for pump in (self._pump_tree, self._pump_events, self._watch_eof):
                    nursery.start_soon(self._until_gone, pump, client, nursery.cancel_scope)
        finally:
            self._clients.discard(client)
            self._retired_sent += client.sent
            self._retired_dropped += client.dropped_now()
            if sub is not None:
                sub.close()

    async def _until_gone(
        self,
        pump: Callable[[_Client], Awaitable[None]],
        client: _Client,
        scope: trio.CancelScope,
    ) -> None:
        """Run ``pump``; when it ends or the client is gone, end the stream."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, _Stuck):
            await pump(client)
        scope.cancel()

    async def _send(self, client: _Client, frame: bytes) -> None:
        async with client.lock:
            data = client.conn.send(h11.Data(data=frame))
            with trio.move_on_after(self._send_timeout) as timeout:
                await client.stream.send_all(data)
        if timeout.cancelled_caught:
            self._disconnected += 1
            raise _Stuck

    async def _pump_tree(self, client: _Client) -> None:
        seen = -1
        while True:
            if seen == self._tree_version:
                with trio.move_on_after(_KEEPALIVE) as idle:
                    await self._tree_lot.park()
                if idle.cancelled_caught:
                    await self._send(client, b": keep-alive\n\n")
                    continue
            seen = self._tree_version
            await self._send(client, self._tree_frame)

    async def _pump_events(self, client: _Client) -> None:
        sub = client.subscription
        if sub is not None:
            with contextlib.suppress(trio.EndOfChannel, BusClosed):
                while True:
                    event = await sub.receive()
                    frame = _event_frame(event)
                    dropped = sub.statistics().dropped
                    if dropped != client.dropped:
                        client.dropped = dropped
                        frame = b'event: dropped\ndata: {"dropped":%d}\n\n' % dropped + frame
                    await self._send(client, frame)
                    client.sent += 1
        await trio.sleep_forever()  # the tree stream goes on without the bus

    async def _watch_eof(self, client: _Client) -> None:
        while await client.stream.receive_some(4096):
            pass  # an event stream's client has nothing more to say


def _event_frame(event: Event) -> bytes:
    text = dumps(event).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return b"event: event\ndata: " + text.encode() + b"\n\n"


def _reason(status: int) -> bytes:
    return http.HTTPStatus(status).phrase.encode()


def _collector(
    root: Supervisor | DynamicSupervisor, bus: EventBus | None
) -> tuple[Callable[..., Awaitable[None]], Callable[[], bytes]] | None:
    """The Prometheus collector's ``run`` and a scrape, or None without prometheus_client."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest

        from ._prometheus import TrioSmithCollector
    except ImportError:
        return None
    collector = TrioSmithCollector(supervisors=[root], buses=[] if bus is None else [bus])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    def scrape() -> bytes:
        collector.refresh()
        return generate_latest(registry)

    return collector.run, scrape

"""``trio-smith observe``: a supervision tree drawn live in the terminal.

From an observer (``http://HOST:PORT``): ``/api/tree``, then the
``/api/events`` stream, with a small HTTP/1.1 client on trio and h11 (the
``observer`` extra). From a store (a SQLite file or a ``postgresql://``
URL): the tree rebuilt from its ``supervision.*`` events, as of the end or
replayed. What is drawn, and how the events make a tree, is in
``_observe_tree`` (pure, no trio).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
import urllib.parse
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs
import trio

from ._errors import CommandError
from ._stores import DEFAULT_SCHEMA, is_database_url

if TYPE_CHECKING:
    import h11
    from rich.console import Console

    from ..events import Event
    from ._observe_tree import ObserveView, ViewNode

__all__ = ["Target", "configure", "run", "target"]

#: Lines the log keeps (the view shows as many as fit).
LOG_SIZE: Final = 200
#: Bytes read from the socket at a time.
_CHUNK: Final = 65536


@attrs.frozen(kw_only=True, slots=True)
class Target:
    """What ``observe`` reads: an observer (``host``, ``port``) or a store (``store``)."""

    text: str
    host: str = ""
    port: int = 0
    store: str = ""


def target(text: str) -> Target:
    """Parse ``observe``'s argument: an ``http://`` URL, or a store.

    Raises:
        argparse.ArgumentTypeError: another URL scheme, or an http URL
            without a port or with a path.
    """
    if "://" not in text or is_database_url(text):
        if not text:
            raise argparse.ArgumentTypeError(
                "expected an http:// URL, a file path or a postgresql:// URL, got ''"
            )
        return Target(text=text, store=text)
    url = urllib.parse.urlsplit(text)
    if url.scheme != "http":
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// URL (an observer) nor a store (a file path or a "
            "postgresql:// URL)"
        )
    try:
        port = url.port
    except ValueError:
        port = None
    if url.hostname is None or port is None or url.path not in ("", "/") or url.query:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected an observer's address, http://HOST:PORT"
        )
    return Target(text=f"http://{url.netloc}", host=url.hostname, port=port)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``observe``'s arguments to ``parser``."""
    parser.add_argument(
        "target",
        type=target,
        metavar="URL|STORE",
        help="an observer, http://HOST:PORT; or an event store, a file path or a postgresql:// URL",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help="the observer's token (sent as Authorization: Bearer)",
    )
    parser.add_argument(
        "--once", action="store_true", help="print one frame and exit (scripts, tests)"
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="a store only: replay its supervision events instead of drawing the end",
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="X",
        help="--replay's speed: 2 plays twice as fast as it happened (default 1)",
    )
    parser.add_argument(
        "--schema",
        default=DEFAULT_SCHEMA,
        help=f"a postgresql:// store's schema (default {DEFAULT_SCHEMA})",
    )


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``observe``; return the exit status.

    Raises:
        UsageError: ``--replay`` or ``--speed`` with an observer's URL.
        CommandError: the observer or the store cannot be read.
    """
    from rich.console import Console

    from ._errors import UsageError

    where: Target = args.target
    if where.host and args.replay:
        raise UsageError("argument --replay: applies to a store, not to an observer's URL")
    console = Console(file=sys.stdout, highlight=False)
    try:
        if where.host:
            return trio.run(_follow_observer, where, args.token, args.once, console)
        return trio.run(_from_store, args, console)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a live view is meant to end


# ------------------------------------------------------------ the observer


async def _request(where: Target, path: str, token: str | None) -> tuple[trio.SocketStream, object]:
    """Send ``GET path``; return the stream and the h11 connection, past a 200 response."""
    try:
        import h11  # noqa: F401 - only to say clearly that it is missing
    except ImportError:
        raise CommandError(
            "observing a URL needs h11: pip install 'trio-smith[observer]'"
        ) from None

    try:
        stream = await trio.open_tcp_stream(where.host, where.port)
    except OSError as exc:
        raise CommandError(
            f"cannot reach the observer at {where.text}: {exc.strerror or exc}"
        ) from None
    try:
        return stream, await _response(stream, where, path, token)
    except BaseException:
        # Refused (401, 404, ...) or gone: the socket is not left to the
        # garbage collector.
        await trio.aclose_forcefully(stream)
        raise


async def _response(
    stream: trio.SocketStream, where: Target, path: str, token: str | None
) -> object:
    """Send the request on ``stream``; return the h11 connection past a 200 response."""
    import h11

    conn = h11.Connection(our_role=h11.CLIENT)
    headers = [("Host", f"{where.host}:{where.port}"), ("Accept", "*/*")]
    if token is not None:
        headers.append(("Authorization", f"Bearer {token}"))
    await stream.send_all(conn.send(h11.Request(method="GET", target=path, headers=headers)))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    while True:
        event = _next(conn, where)
        if event is h11.NEED_DATA:
            conn.receive_data(await _receive(stream, where))
            continue
        if isinstance(event, h11.Response):
            if event.status_code == 401:
                raise CommandError(f"{where.text} wants a token: pass --token")
            if event.status_code != 200:
                raise CommandError(f"{where.text}{path} answered {event.status_code}")
            return conn
        if isinstance(event, h11.ConnectionClosed):
            raise CommandError(f"the observer at {where.text} went away")


def _next(conn: h11.Connection, where: Target) -> object:
    """The connection's next event; a broken response counts as the server going away."""
    import h11

    try:
        return conn.next_event()
    except h11.RemoteProtocolError:
        return h11.ConnectionClosed()


async def _receive(stream: trio.SocketStream, where: Target) -> bytes:
    try:
        return await stream.receive_some(_CHUNK)
    except trio.BrokenResourceError:
        return b""


async def _body(where: Target, path: str, token: str | None) -> bytes:
    import h11

    stream, conn = await _request(where, path, token)
    assert isinstance(conn, h11.Connection)
    parts: list[bytes] = []
    async with stream:
        while True:
            event = _next(conn, where)
            if event is h11.NEED_DATA:
                conn.receive_data(await _receive(stream, where))
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            elif isinstance(event, h11.ConnectionClosed):
                raise CommandError(f"the observer at {where.text} went away")


async def _stream(where: Target, token: str | None) -> AsyncIterator[tuple[str, str]]:
    """The ``(event, data)`` messages of ``/api/events``, until the server goes away."""
    import h11

    stream, conn = await _request(where, "/api/events", token)
    assert isinstance(conn, h11.Connection)
    buffer = ""
    async with stream:
        while True:
            event = _next(conn, where)
            if event is h11.NEED_DATA:
                conn.receive_data(await _receive(stream, where))
                continue
            if not isinstance(event, h11.Data):
                return  # the end of the stream, or of the connection
            buffer += bytes(event.data).decode("utf-8", "replace").replace("\r\n", "\n")
            *blocks, buffer = buffer.split("\n\n")
            for block in blocks:
                name, data = "message", []
                for line in block.split("\n"):
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        name = value
                    elif field == "data":
                        data.append(value)
                if data:
                    yield name, "\n".join(data)


def _tree_of(doc_text: str | bytes, where: Target) -> tuple[ViewNode, float]:
    from ._observe_tree import TreeFormatError, tree_from_json

    try:
        doc = json.loads(doc_text)
        tree = tree_from_json(doc)
    except (ValueError, TreeFormatError) as exc:
        raise CommandError(f"{where.text}/api/tree: {exc}") from None
    taken = doc.get("taken") if isinstance(doc, dict) else None
    return tree, float(taken) if isinstance(taken, int | float) else 0.0


async def _follow_observer(where: Target, token: str | None, once: bool, console: Console) -> int:
    from rich.live import Live

    from ..events import loads
    from ._demo_view import Line
    from ._demo_view import Observer as Wording
    from ._observe_tree import ObserveView, event_line

    tree, began = _tree_of(await _body(where, "/api/tree", token), where)
    log: collections.deque[Line] = collections.deque(maxlen=LOG_SIZE)
    dropped = 0

    def view() -> ObserveView:
        lost = f"  ·  {dropped} dropped" if dropped else ""
        return ObserveView([tree], log, title=f"{where.text}", subtitle=f"{len(log)} events{lost}")

    if once:
        console.print(view())
        return 0
    wording = Wording(tree.id)
    with Live(view(), console=console, auto_refresh=False, redirect_stdout=False) as live:
        async for name, data in _stream(where, token):
            if name == "tree":
                tree, _ = _tree_of(data, where)
            elif name == "event":
                try:
                    event = loads(data)
                except ValueError:
                    continue  # a newer observer's event: skipped, not fatal
                line = event_line(wording, event, _since(event.timestamp, began))
                if line is not None:
                    log.append(line)
            elif name == "dropped":
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    dropped = int(json.loads(data)["dropped"])
            live.update(view(), refresh=True)
    raise CommandError(f"the observer at {where.text} went away")


def _since(when: datetime, began: float) -> float:
    return max(0.0, when.timestamp() - began)


# ------------------------------------------------------------ a store


async def _from_store(args: argparse.Namespace, console: Console) -> int:
    from rich.live import Live

    from ..events import EventFilter
    from ._demo_view import Line
    from ._demo_view import Observer as Wording
    from ._events import open_store
    from ._observe_tree import ObserveView, StoreTree, event_line

    where: Target = args.target
    args.db = where.store
    async with open_store(args) as store:
        events = await store.read(EventFilter(categories={"supervision"}))
    title = f"{where.store}"
    tree = StoreTree()
    log: collections.deque[Line] = collections.deque(maxlen=LOG_SIZE)
    wording: Wording | None = None
    began = events[0].timestamp if events else None

    def see(event: Event) -> None:
        nonlocal wording
        tree.see(event)
        roots = tree.roots()
        if wording is None and roots:
            wording = Wording(roots[0].id)
        if wording is not None and began is not None:
            line = event_line(wording, event, (event.timestamp - began).total_seconds())
            if line is not None:
                log.append(line)

    def view(at: float, fill: bool = True) -> ObserveView:
        return ObserveView(
            tree.roots(),
            log,
            title=title,
            subtitle=f"{at:.1f} s  ·  {len(events)} events",
            fill=fill,
        )

    if not args.replay or args.once:
        for event in events:
            see(event)
        end = (events[-1].timestamp - began).total_seconds() if began is not None else 0.0
        console.print(view(end, fill=False))
        return 0
    start = trio.current_time()
    with Live(view(0.0), console=console, auto_refresh=False, redirect_stdout=False) as live:
        for event in events:
            assert began is not None
            at = (event.timestamp - began).total_seconds()
            await trio.sleep_until(start + at / args.speed)
            see(event)
            live.update(view(at), refresh=True)
    return 0

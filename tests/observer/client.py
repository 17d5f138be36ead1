"""A small HTTP client for the observer's tests: h11 over trio's sockets, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11
import trio


@attrs.frozen
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def raw(url: str, data: bytes) -> bytes:
    """Send ``data`` as it is, then EOF, and read until the server closes."""
    stream = await trio.open_tcp_stream(*address(url))
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):  # it may answer before the end
            await stream.send_all(data)
            await stream.send_eof()
        received = b""
        while chunk := await stream.receive_some():
            received += chunk
    return received


async def get(
    url: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> Response:
    stream = await trio.open_tcp_stream(*address(url))
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        head = [("host", "127.0.0.1"), *(headers or {}).items()]
        request = h11.Request(method=method, target=path, headers=head)
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        status = 0
        got: dict[str, str] = {}
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                status = event.status_code
                got = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, got, body)
            else:
                raise AssertionError(f"unexpected {event!r}")


@attrs.define
class EventStream:
    """An open ``/api/events`` stream, read one Server-Sent Event at a time."""

    stream: trio.SocketStream
    conn: h11.Connection
    status: int
    headers: dict[str, str]
    _buffer: str = ""

    async def next(self) -> tuple[str, str]:
        """The next event, as (type, data); comments are skipped."""
        while True:
            frame, sep, rest = self._buffer.partition("\n\n")
            if sep:
                self._buffer = rest
                kind, data = "message", []
                for line in frame.split("\n"):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                if data:
                    return kind, "\n".join(data)
                continue
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some())
            elif isinstance(event, h11.Data):
                self._buffer += bytes(event.data).decode()
            else:
                raise EOFError(repr(event))

    async def next_of(self, kind: str) -> Any:
        """The data of the next event of type ``kind``, parsed as JSON."""
        while True:
            got, data = await self.next()
            if got == kind:
                return json.loads(data)


@asynccontextmanager
async def events(url: str, path: str = "/api/events") -> AsyncIterator[EventStream]:
    stream = await trio.open_tcp_stream(*address(url))
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=path, headers=[("host", "127.0.0.1")])
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                headers = {k.decode(): v.decode() for k, v in event.headers}
                yield EventStream(stream, conn, event.status_code, headers)
                return
            else:
                raise AssertionError(f"unexpected {event!r}")

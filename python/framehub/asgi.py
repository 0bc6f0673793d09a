"""Mounting a hub in a Python web app (ASGI 3).

``framehub.asgi.app(server)`` is an ASGI application that serves the hub's
pages, REST routes, the web client's files and its viewers' WebSockets under
the path it is mounted at, through the same Rust sessions as the hub's own
port (credit, latest wins, limits, authentication, input policy)::

    import framehub, framehub.asgi
    from starlette.applications import Starlette
    from starlette.routing import Mount

    server = framehub.sync.serve_server(port=None)   # no port of its own
    display = server.add_stream("cam", 640, 480)
    app = Starlette(routes=[Mount("/fh", app=framehub.asgi.app(server))])
    # uvicorn module:app  ->  http://HOST:PORT/fh/cam

(FastAPI: ``app.mount("/fh", framehub.asgi.app(server))``.)

Requests run on the hub's own threads; the event loop only awaits them. A
viewer's WebSocket is pumped both ways by two coroutines over bounded
channels: a viewer that does not read holds at most the session's credit of
frames and a few messages, and is dropped after the hub's write timeout,
as on the port; other viewers and routes carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from . import _native
from ._base import ServerBase, StreamBase
from ._errors import FramehubError

__all__ = ["App", "app", "MAX_REQUEST_BODY", "WRITE_TIMEOUT"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Largest HTTP request body read, bytes (the hub's routes take none).
MAX_REQUEST_BODY = 1 << 20

#: Longest wait for the ASGI server to take one message for a viewer,
#: seconds: the hub's write timeout (``framehub::ServerConfig::write_timeout``).
WRITE_TIMEOUT = 10.0

#: How long a closed viewer's reader waits for the client's disconnect, seconds
#: (the hub's close linger).
CLOSE_LINGER = 1.0

# Characters of a decoded path kept as they are when it is re-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def app(server: ServerBase[Any] | StreamBase[Any]) -> App:
    """The ASGI application of ``server`` (a ``Server`` of either API, or a
    display, meaning its hub). Mount it anywhere: the pages find their base
    path from the ASGI ``root_path``."""
    return App(server)


def _route_path(scope: Scope) -> tuple[str, str]:
    """(path under the mount, the mount) of a request: ASGI's ``path`` holds
    the mount (``root_path``) too, as Starlette's ``Mount`` passes it on."""
    path: str = scope.get("path") or "/"
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    return quote(path or "/", safe=_PATH_SAFE), quote(root, safe=_PATH_SAFE)


def _headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in scope.get("headers") or []]


def _client(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    if not client:
        return None
    return (str(client[0]), int(client[1]))


async def _respond(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


class App:
    """An ASGI 3 application serving one hub (see :func:`app`)."""

    def __init__(self, server: ServerBase[Any] | StreamBase[Any]) -> None:
        if isinstance(server, StreamBase):
            server = server.server
        if not isinstance(server, ServerBase):
            raise TypeError(f"framehub.asgi.app takes a framehub Server, got {type(server).__name__}")
        self._server = server
        self._bridge = _native.AsgiBridge(server._hub)

    @property
    def server(self) -> ServerBase[Any]:
        """The hub this application serves."""
        return self._server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)
        else:
            raise ValueError(f"framehub.asgi does not serve ASGI scope type {kind!r}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body += msg.get("body", b"")
            if len(body) > MAX_REQUEST_BODY:
                await _respond(send, 413, "request body too large")
                return
            if not msg.get("more_body", False):
                break
        path, root = _route_path(scope)
        try:
            status, headers, data = await self._bridge.http(
                asyncio.get_running_loop(),
                scope.get("method", "GET"),
                path,
                root,
                scope.get("query_string", b""),
                _headers(scope),
                bytes(body),
                _client(scope),
            )
        except ValueError as e:
            await _respond(send, 400, str(e))
            return
        except FramehubError as e:
            await _respond(send, 503, str(e))
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        path, _root = _route_path(scope)
        try:
            channel = self._bridge.attach_viewer(
                path, scope.get("query_string", b""), _headers(scope), _client(scope)
            )
        except PermissionError as e:
            await _deny(scope, send, 403, str(e))
            return
        except FileNotFoundError as e:
            await _deny(scope, send, 404, str(e))
            return
        except FramehubError as e:
            await _deny(scope, send, 503, str(e))
            return
        await send({"type": "websocket.accept"})
        loop = asyncio.get_running_loop()
        reader = asyncio.ensure_future(_pump_in(channel, receive, loop))
        try:
            await _pump_out(channel, send, loop)
            # Closed by the session: the client's disconnect follows its close reply.
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(reader), CLOSE_LINGER)
        finally:
            channel.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _deny(scope: Scope, send: Send, status: int, text: str) -> None:
    """Refuses a WebSocket before accepting it: an HTTP ``status`` where the
    server supports the denial-response extension, else its 403."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": text.encode()})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": text[:120]})


async def _pump_in(
    channel: _native.ViewerChannel, receive: Receive, loop: asyncio.AbstractEventLoop
) -> None:
    """Viewer → session, until the client disconnects."""
    while True:
        msg = await receive()
        kind = msg["type"]
        if kind == "websocket.receive":
            data = msg.get("text")
            if data is None:
                data = msg.get("bytes")
            if data is None:
                continue
            if not channel.try_send(data):
                await channel.send_async(loop, data)
        elif kind == "websocket.disconnect":
            channel.close()
            return


async def _pump_out(
    channel: _native.ViewerChannel, send: Send, loop: asyncio.AbstractEventLoop
) -> None:
    """Session → viewer, until the session closes it or ends."""
    while True:
        messages = channel.drain()
        if not messages:
            messages = [await channel.recv_async(loop)]
        for m in messages:
            if m is None:
                return
            if isinstance(m, tuple):
                code, reason = m
                out: Message = {"type": "websocket.close", "code": code, "reason": reason}
            elif isinstance(m, str):
                out = {"type": "websocket.send", "text": m}
            else:
                out = {"type": "websocket.send", "bytes": m}
            try:
                # asyncio.timeout, not wait_for: no task per message.
                async with asyncio.timeout(WRITE_TIMEOUT):
                    await send(out)
            except Exception:
                # The client takes nothing (timeout) or is gone (the server's
                # disconnect error, whatever its class): drop it, as the port does.
                channel.close()
                return
            if isinstance(m, tuple):
                return


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answers the lifespan protocol when the app is served on its own (the
    hub needs no start-up or shut-down step from the server)."""
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""The asyncio API: ``serve()``, ``serve_server()``, ``Server``, ``Display``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _native
from ._base import (
    DownscaleHint,
    RecordingBase,
    ServerBase,
    StreamBase,
    check_address,
    pdum_settings,
    record_args,
)
from ._remote import RemoteAddress, remote_base

if TYPE_CHECKING:
    from ._native import InputEvent

__all__ = [
    "Display",
    "Lifecycle",
    "Recording",
    "Server",
    "connect",
    "serve",
    "serve_server",
]


class Recording(RecordingBase):
    """An MP4 recording (``display.record(path)``), as pdum.rfb's: an async
    context manager that finalizes the file on exit, or ``await rec.stop()``.
    See ``RecordingBase`` for what the file holds."""

    async def stop(self) -> dict[str, Any]:
        """Stops recording and finalizes the file (in a worker thread).
        Returns ``{"frames", "keyframes", "dropped", "bytes", "duration"}``
        (duration in seconds). Idempotent. Raises ``OSError`` when writing
        failed, ``FramehubError`` when the video could not be muxed (the
        stream's size changed: the file holds the video up to then)."""
        return await asyncio.to_thread(self._native.stop)

    async def __aenter__(self) -> Recording:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class Display(StreamBase["Server"]):
    """One stream of a hub (what ``serve()`` and ``Server.add_stream()`` return)."""

    def record(
        self,
        path: str | os.PathLike[str],
        *,
        fps: int | None = None,
        bitrate: int | None = None,
        crf: int | None = None,
        preset: str = "veryfast",
        fragment_duration: float = 1.0,
    ) -> Recording:
        """Records what this stream publishes to an MP4 file at ``path``
        (created or truncated) and returns the started ``Recording``::

            async with display.record("out.mp4"):
                ...  # publish frames
            # or: rec = display.record("out.mp4"); ...; await rec.stop()

        H.264 from the stream's own encoder (no second encode; while
        recording it runs even with no viewer), each picture timed by when
        it was published, as fragmented MP4 (``fragment_duration`` seconds
        at most per fragment). ``fps`` and ``preset`` are pdum.rfb's
        keywords and have no effect; ``bitrate``/``crf`` raise
        ``NotImplementedError`` (set ``bitrate`` on the stream).

        Raises ``OSError`` when the file cannot be created, ``ValueError``
        for a bad ``fragment_duration``.
        """
        frag = record_args(fps, bitrate, crf, preset, fragment_duration)
        return Recording(self._native.record(os.fspath(path), frag))

    async def events(self) -> AsyncIterator[InputEvent | DownscaleHint]:
        """The viewers' input events as they arrive; ends when the stream
        is removed or the hub closes."""
        loop = asyncio.get_running_loop()
        native = self._native
        while True:
            events = self._deliver(native.poll_events(self._event_shape))
            if events:
                for ev in events:
                    yield ev
                continue
            if not await native.wait_event_async(loop):
                for ev in self._deliver(native.poll_events(self._event_shape)):
                    yield ev
                return

    async def aclose(self) -> None:
        """Closes the whole hub for the display ``serve()`` returned; removes
        just this stream for one from ``add_stream()``. Idempotent."""
        if self._owns_server:
            await self._server.aclose()
        elif not self._server.closed and self.name in self._server.streams:
            self._server.remove_stream(self.name)

    async def __aenter__(self) -> Display:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Lifecycle:
    """The hub's lifecycle events from the moment ``Server.lifecycle()``
    was called: ``async for ev in server.lifecycle(): ...``. Each is a dict
    with its kind in ``type``: ``stream.created`` (``stream``, ``width``,
    ``height``, ``remote``), ``stream.destroyed``, ``publisher.online``
    (``principal``, ``resumed``), ``publisher.offline``, ``viewer.joined`` /
    ``viewer.left`` (``client_id``, ``principal``, ``viewers``). The
    iteration ends when the hub closes. A listener more than 1024 events
    behind skips the oldest."""

    def __init__(self, hub: _native.Hub) -> None:
        self._sub = hub.lifecycle()

    def __aiter__(self) -> Lifecycle:
        return self

    async def __anext__(self) -> dict[str, Any]:
        ev = await self._sub.next_async(asyncio.get_running_loop())
        if ev is None:
            raise StopAsyncIteration
        return ev


class Server(ServerBase[Display]):
    """A framehub hub (what ``serve_server()`` returns): named streams on one port."""

    _display_cls = Display

    def lifecycle(self) -> Lifecycle:
        """The hub's lifecycle events from now on (see ``Lifecycle``): the
        same as ``GET /_/events``."""
        return Lifecycle(self._hub)

    async def aclose(self) -> None:
        """Stops the listener and disconnects every viewer of every stream
        (close code 1001); the hub's threads stop. Idempotent."""
        if self._hub.runtime_running:
            # On a Python thread of its own, joined right after. (A thread of
            # the hub's own that resolved the future from Rust could still be
            # inside Python when the program, its await done, reached
            # interpreter shutdown: Python 3.11 kills such threads with
            # pthread_exit, and the unwinding through Rust aborted the process.)
            with concurrent.futures.ThreadPoolExecutor(1, "framehub-close") as pool:
                await asyncio.get_running_loop().run_in_executor(pool, self._hub.close)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def serve_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = 8765,
    origins: str | Iterable[str] | None = None,
    nats: str | Iterable[str] | dict[str, Any] | None = None,
) -> Server:
    """Starts a hub with no stream yet, listening on ``host:port`` (port 0
    picks a free one: see ``server.port``). Add streams with ``add_stream``.

    ``port=None``: the hub does not listen at all; serve it from your own
    web app with ``framehub.asgi.app(server)`` (``server.port`` is 0).

    ``origins``: which web pages may open viewers (checked against the
    WebSocket upgrade's ``Origin`` header, HTTP 403 otherwise; clients that
    send no ``Origin``, like scripts, always pass). None: same-origin pages,
    and loopback pages when listening on loopback; ``"*"``: any page; a list
    such as ``["https://app.example.com"]``: those and same-origin pages.

    ``nats``: join a NATS system (``"nats://a:4222,nats://b:4222"``, a list
    of URLs, or a dict with ``urls`` and any of ``hub_id``,
    ``credentials_file``, ``token``, ``tls_required``, ``root_certificates``):
    this hub's streams are served by every hub of the system and theirs by
    this one (README "More than one hub"). Joined when it starts listening.

    Raises ``OSError`` when the address cannot be bound (port in use),
    ``TypeError``/``ValueError`` for bad ``origins`` or ``nats``,
    ``FramehubError`` when the NATS servers cannot be reached.
    """
    loop = asyncio.get_running_loop()
    if port is None:
        check_address(host, 0)
        return Server(_native.Hub(loop, origins, nats), host)
    check_address(host, port)
    hub = _native.Hub(loop, origins, nats)
    try:
        await hub.listen_async(loop, host, port)
    except OSError as e:
        hub.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    except BaseException:
        hub.close()
        raise
    return Server(hub, host)


async def serve(
    width: int, height: int, *, host: str = "127.0.0.1", port: int = 8765, **config: Any
) -> Display:
    """Starts a hub with one ``width`` x ``height`` stream named ``default``
    (browsers connecting to ``ws://HOST:PORT/`` land on it) and returns its
    display. ``display.server`` reaches the hub; ``await display.aclose()``
    closes it all. ``config``: the stream settings of ``Server.add_stream``.

    Raises ``OSError`` when the port is in use, ``TypeError`` for an unknown
    setting, ``NotImplementedError`` for a feature not available yet.
    """
    server = await serve_server(host=host, port=port)
    try:
        display = server._add_stream("default", width, height, config, "serve")
    except BaseException:
        await server.aclose()
        raise
    display._owns_server = True
    return display



class _RemoteServer(RemoteAddress, Server):
    """The hub-less side of ``connect()``: the encoding runs here, the
    viewers are on the remote hub (``port``, ``url``, ``ws_url`` are its)."""


async def connect(
    url: str,
    name: str,
    width: int,
    height: int,
    *,
    token: str | None = None,
    takeover: bool = False,
    **config: Any,
) -> Display:
    """Publishes a ``width`` x ``height`` stream ``name`` into the running
    hub at ``url`` (``ws://HOST:PORT``, e.g. ``framehub serve``) and returns
    its display: the same API as ``serve()`` (``publish``, ``poll_events``,
    ``events()``, ``aclose``). Frames are encoded in this process, only in
    the formats the hub's viewers demand; their events come back here. If
    the connection drops, it reconnects by itself; within the hub's grace
    period (10 s) its viewers only see "publisher offline".

    ``token``: the publisher's credential (the hub's ``--publish-token``);
    ``takeover``: take the name from a live publisher of the same principal.
    ``config``: the stream settings of ``Server.add_stream``.

    Raises ``StreamExistsError`` when the name is taken (4409),
    ``FramehubError`` when the hub refuses otherwise (4401 unauthorized),
    ``OSError`` when it cannot be reached, ``ValueError``/``TypeError`` for
    bad arguments.
    """
    base = remote_base(url)
    settings, shape = pdum_settings(config, "connect")
    loop = asyncio.get_running_loop()
    hub = _native.Hub(loop, None)
    try:
        native = await hub.connect_async(
            loop, f"{base}/{name}", width, height, settings, token, takeover
        )
    except BaseException:
        hub.close()
        raise
    server = _RemoteServer(hub, base)
    display = Display(server, native, owns_server=True, event_shape=shape)
    server._displays[name] = display
    return display

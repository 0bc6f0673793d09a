"""The synchronous API, for scripts without asyncio.

``framehub.sync.serve()`` and ``framehub.sync.serve_server()`` return objects
with the same methods as the async ones, but ``close()`` blocks (no
``aclose()``) and ``events()`` is a blocking iterator. The hub runs on its
own threads (its tokio runtime) either way, so nothing has to be pumped::

    import numpy as np
    import framehub.sync as fh

    display = fh.serve(640, 480, port=8765)
    frame = np.zeros((480, 640, 3), np.uint8)
    while True:
        for ev in display.poll_events():
            print(ev.event)
        display.publish(frame)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
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

__all__ = ["Display", "Recording", "Server", "connect", "serve", "serve_server"]

# Longest single wait inside events(), so Ctrl-C is seen promptly.
_SLICE = 0.2


class Recording(RecordingBase):
    """An MP4 recording (``display.record(path)``, synchronous API): a
    context manager that finalizes the file on exit, or ``rec.stop()``.
    See ``RecordingBase`` for what the file holds."""

    def stop(self) -> dict[str, Any]:
        """Stops recording and finalizes the file (blocks until written).
        Returns ``{"frames", "keyframes", "dropped", "bytes", "duration"}``
        (duration in seconds). Idempotent. Raises ``OSError`` when writing
        failed, ``FramehubError`` when the video could not be muxed (the
        stream's size changed: the file holds the video up to then)."""
        return self._native.stop()

    def __enter__(self) -> Recording:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Display(StreamBase["Server"]):
    """One stream of a hub (synchronous API)."""

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
        and returns the started ``Recording`` (``with display.record(p):``
        or ``rec.stop()``). The same as the async ``Display.record``."""
        frag = record_args(fps, bitrate, crf, preset, fragment_duration)
        return Recording(self._native.record(os.fspath(path), frag))

    def events(self, timeout: float | None = None) -> Iterator[InputEvent | DownscaleHint]:
        """Yields the viewers' events as they arrive, blocking in between.
        Ends when the stream is removed or the hub closes, or after
        ``timeout`` seconds without an event (None: no limit)."""
        native = self._native
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            events = self._deliver(native.poll_events(self._event_shape))
            if events:
                yield from events
                if timeout is not None:
                    deadline = time.monotonic() + timeout
                continue
            wait = _SLICE
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            ready = native.wait_event(wait)
            if ready is False:
                yield from self._deliver(native.poll_events(self._event_shape))
                return

    def close(self) -> None:
        """Closes the whole hub for the display ``serve()`` returned; removes
        just this stream for one from ``add_stream()``. Blocks; idempotent."""
        if self._owns_server:
            self._server.close()
        elif not self._server.closed and self.name in self._server.streams:
            self._server.remove_stream(self.name)

    def __enter__(self) -> Display:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Server(ServerBase[Display]):
    """A framehub hub (synchronous API)."""

    _display_cls = Display

    def close(self) -> None:
        """Stops the listener, disconnects every viewer (close code 1001)
        and stops the hub's threads. Blocks until done; idempotent."""
        self._hub.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = 8765,
    origins: str | Iterable[str] | None = None,
    nats: str | Iterable[str] | dict[str, Any] | None = None,
) -> Server:
    """Starts a hub listening on ``host:port`` (0: a free port), with no stream yet.
    ``origins``: as in ``framehub.serve_server``. ``port=None``: the hub does
    not listen; serve it from a web app with ``framehub.asgi.app(server)``.

    Async authenticators given to its streams run on a private event loop
    per call (there is no application loop to run them on).

    ``nats``: join a NATS system, as in ``framehub.serve_server``.

    Raises ``OSError`` when the address cannot be bound, ``FramehubError``
    when the NATS servers cannot be reached.
    """
    if port is None:
        check_address(host, 0)
        return Server(_native.Hub(None, origins, nats), host)
    check_address(host, port)
    hub = _native.Hub(None, origins, nats)
    try:
        hub.listen(host, port)
    except OSError as e:
        hub.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from None
    except BaseException:
        hub.close()
        raise
    return Server(hub, host)


def serve(
    width: int, height: int, *, host: str = "127.0.0.1", port: int = 8765, **config: Any
) -> Display:
    """Starts a hub with one ``width`` x ``height`` stream named ``default``;
    ``display.close()`` closes it all. ``config``: the stream settings of
    ``Server.add_stream``."""
    server = serve_server(host=host, port=port)
    try:
        display = server._add_stream("default", width, height, config, "serve")
    except BaseException:
        server.close()
        raise
    display._owns_server = True
    return display


class _RemoteServer(RemoteAddress, Server):
    """The hub-less side of ``connect()``: the encoding runs here, the
    viewers are on the remote hub (``port``, ``url``, ``ws_url`` are its)."""


def connect(
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
    hub at ``url`` (``ws://HOST:PORT``); as ``framehub.connect``, without
    asyncio. ``display.close()`` closes the feed.

    Raises ``StreamExistsError`` when the name is taken (4409),
    ``FramehubError`` when the hub refuses otherwise, ``OSError`` when it
    cannot be reached.
    """
    base = remote_base(url)
    settings, shape = pdum_settings(config, "connect")
    hub = _native.Hub(None, None)
    try:
        native = hub.connect(f"{base}/{name}", width, height, settings, token, takeover)
    except BaseException:
        hub.close()
        raise
    server = _RemoteServer(hub, base)
    display = Display(server, native, owns_server=True, event_shape=shape)
    server._displays[name] = display
    return display

"""What the async and the synchronous APIs share: stream and server handles
over the Rust extension (``framehub._native``)."""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _native
from ._errors import UnknownStreamError

if TYPE_CHECKING:
    from ._native import InputEvent

__all__ = ["StreamBase", "ServerBase", "check_address"]

D = TypeVar("D", bound="StreamBase[Any]")
S = TypeVar("S", bound="ServerBase[Any]")


def check_address(host: object, port: object) -> None:
    """Refuses a bad ``host``/``port`` before anything is bound."""
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be within 0..=65535 (0 picks a free port), got {port}")


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class StreamBase(Generic[S]):
    """One stream of a hub: publish frames into it, take its viewers' events."""

    def __init__(self, server: S, native: _native.Stream, owns_server: bool = False) -> None:
        self._server = server
        self._native = native
        self._owns_server = owns_server

    @property
    def server(self) -> S:
        """The hub this stream belongs to."""
        return self._server

    @property
    def name(self) -> str:
        """The stream's name (its URL path)."""
        return self._native.name

    @property
    def width(self) -> int:
        """Width in pixels (of the last frame published, or as created)."""
        return self._native.width

    @property
    def height(self) -> int:
        """Height in pixels (of the last frame published, or as created)."""
        return self._native.height

    @property
    def client_count(self) -> int:
        """Viewers connected now (past the handshake)."""
        return self._native.client_count

    @property
    def events_dropped(self) -> int:
        """Events dropped because the queue was full."""
        return self._native.events_dropped

    @property
    def frame_pending(self) -> bool:
        """Whether the latest frame published still waits for an encoder.

        While it does, a new ``publish()`` replaces it before any viewer saw
        it, so a program that renders on demand can skip rendering until
        this turns ``False``. ``False`` before the first publish; stays
        ``True`` while no viewer can take a frame (none connected, or every
        one out of credit).
        """
        return self._native.frame_pending

    @property
    def port(self) -> int:
        """The hub's port."""
        return self._server.port

    @property
    def ws_url(self) -> str:
        """Where viewers connect: ``ws://HOST:PORT/<name>``."""
        return self._server.ws_url(self.name)

    @property
    def url(self) -> str:
        """The viewer page: ``http://HOST:PORT/<name>``."""
        return self._server.url(self.name)

    def publish(self, frame: Any) -> None:
        """Publishes a frame and returns at once (latest wins).

        ``frame``: a numpy ``uint8`` array of shape ``(H, W, 3)`` (RGB) or
        ``(H, W, 4)`` (RGBA), C-contiguous or with padded rows (a slice
        ``a[:, :w]`` of a larger array), or any object with the buffer
        protocol of that shape (``memoryview``), or a 1-D ``bytes``-like
        object of exactly ``W*H*4`` or ``W*H*3`` bytes at the stream's size.
        It is copied once, without the GIL. A frame of a new size resizes
        the stream.

        Raises ``TypeError`` (not a buffer, not uint8), ``InvalidFrameError``
        (a ``ValueError``: wrong shape or layout), ``ClosedError``.
        """
        self._native.publish(frame)

    def poll_events(self) -> list[InputEvent]:
        """Takes every event waiting, oldest first (never blocks)."""
        return self._native.poll_events()

    def metrics(self) -> list[dict[str, Any]]:
        """One snapshot per connected viewer (``client_id``, ``frames_sent``,
        ``fps_acked``, ``rtt_ms``, ... as ``GET /streams/<name>/metrics``)."""
        return self._native.metrics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.width}x{self.height} at {self.ws_url}>"


_live_hubs: weakref.WeakSet[ServerBase[Any]] = weakref.WeakSet()


@atexit.register
def _close_all_hubs() -> None:
    """Closes the hubs still open when the interpreter exits (their threads
    must not outlive it)."""
    for server in list(_live_hubs):
        try:
            server._hub.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass


class ServerBase(Generic[D]):
    """A framehub hub: named streams on one port."""

    _display_cls: type[D]

    def __init__(self, hub: _native.Hub, host: str) -> None:
        self._hub = hub
        self._host = host
        self._displays: dict[str, D] = {}
        self._lock = threading.Lock()
        _live_hubs.add(self)

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        port = self._hub.port
        return 0 if port is None else port

    @property
    def host(self) -> str:
        """The host the hub was asked to bind."""
        return self._host

    @property
    def streams(self) -> list[str]:
        """The names of the streams, sorted."""
        return self._hub.stream_names()

    @property
    def closed(self) -> bool:
        """Whether the hub was closed."""
        return self._hub.closed

    def ws_url(self, name: str = "default") -> str:
        """``ws://HOST:PORT/<name>``."""
        return f"ws://{_url_host(self._host)}:{self.port}/{name}"

    def url(self, name: str = "") -> str:
        """``http://HOST:PORT/<name>`` (the index page when ``name`` is empty)."""
        return f"http://{_url_host(self._host)}:{self.port}/{name}"

    def add_stream(self, name: str, width: int, height: int, **config: Any) -> D:
        """Adds a stream viewable at ``ws://HOST:PORT/<name>`` and returns its display.

        Settings (keyword arguments): ``fps`` (cap, None: unpaced),
        ``quality`` (JPEG 1-100, 80), ``max_inflight`` (2), ``authenticate``
        (a sync or async callable taking an ``AuthContext``, returning a
        principal or None to refuse), ``record_events`` (False), ``input``
        (``"all"``, ``"first"``, ``"none"``), ``stats_interval`` (seconds or
        None), ``event_queue`` (1024), ``token_cookie``, ``image_format``
        (``"jpeg"``/``"png"``), ``has_h264``, ``bitrate``, ``still_after``,
        ``max_viewers``, ``events_per_second``, ``event_burst``, ``idle_timeout``,
        ``record_file`` (a path: events appended as JSON lines),
        ``adaptive`` (True: per-viewer adaptive quality), ``gpu`` (only
        None/False: framehub encodes on the CPU). See ``framehub.STREAM_SETTINGS``.

        Raises ``InvalidNameError``, ``StreamExistsError``,
        ``InvalidFrameError`` (bad size), ``ClosedError``, ``TypeError``
        (unknown keyword), ``ValueError``, ``NotImplementedError``
        (``gpu`` other than None/False).
        """
        return self._add_stream(name, width, height, config, "add_stream")

    def _add_stream(
        self, name: str, width: int, height: int, config: Mapping[str, Any], caller: str
    ) -> D:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        for what, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{what} must be an int, got {type(v).__name__}")
        native = self._hub.add_stream(name, width, height, dict(config), caller)
        display = self._display_cls(self, native)
        with self._lock:
            self._displays[name] = display
        return display

    def stream(self, name: str) -> D:
        """The display of the existing stream ``name``.

        Raises ``UnknownStreamError``.
        """
        with self._lock:
            display = self._displays.get(name)
        if display is not None and name in self._hub.stream_names():
            return display
        native = self._hub.stream(name)
        if native is None:
            raise UnknownStreamError(f"no stream named '{name}'")
        display = self._display_cls(self, native)
        with self._lock:
            self._displays[name] = display
        return display

    def remove_stream(self, name: str) -> None:
        """Removes a stream: its viewers get close code 1001, its display
        stops publishing (``ClosedError``).

        Raises ``UnknownStreamError`` when there is no such stream.
        """
        with self._lock:
            self._displays.pop(name, None)
        if not self._hub.remove_stream(name):
            raise UnknownStreamError(f"no stream named '{name}'")

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"on {self.url()}"
        return f"<{type(self).__name__} {state} streams={self.streams}>"

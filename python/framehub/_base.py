"""What the async and the synchronous APIs share: stream and server handles
over the Rust extension (``framehub._native``)."""

from __future__ import annotations

import atexit
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _native
from ._errors import UnknownStreamError

if TYPE_CHECKING:
    from ._native import InputEvent

__all__ = [
    "EVENT_SHAPES",
    "DownscaleHint",
    "RecordingBase",
    "StreamBase",
    "ServerBase",
    "check_address",
]


@dataclass(frozen=True, slots=True)
class DownscaleHint:
    """The hub's adaptive-resolution hint, as pdum.rfb hands it to programs.

    With ``adaptive=True``, once every viewer of a stream receives pictures
    at a reduced size, and again when one is back at full size, the hub
    makes a ``downscale`` event (docs/protocol.md §5). In the ``"pdum"``
    event shape, ``poll_events()`` and ``events()`` hand it out as this
    (``isinstance(ev, framehub.DownscaleHint)``, as with pdum.rfb); in the
    ``"renderview"`` shape it stays an ``InputEvent`` of kind ``downscale``.
    Honouring it (publishing at ``width`` x ``height``) is optional.

    ``scale``: ``width`` over the display's width when it was created, at
    most 1.0 (1.0: full size). ``width``, ``height``: the suggested size in
    pixels. ``received_us``: µs since the stream was created.
    """

    scale: float
    width: int
    height: int
    received_us: int

#: The vocabularies an event's dict can come in (``event_shape=``): ``"pdum"``
#: (pdum.rfb's: the kind under ``type``, the time under ``timestamp``; the
#: default) and ``"renderview"`` (jupyter_rfb / rendercanvas: ``event_type``,
#: ``time_stamp``). The other keys are the same in both (docs/protocol.md §5).
EVENT_SHAPES = ("pdum", "renderview")


def check_event_shape(shape: object) -> str:
    """Returns ``shape`` if it names an event shape; ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(shape, str):
        raise TypeError(f"event_shape must be a str, got {type(shape).__name__}")
    if shape not in EVENT_SHAPES:
        raise ValueError(f"event_shape must be 'pdum' or 'renderview', got {shape!r}")
    return shape

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


#: pdum.rfb 0.3.0's names of framehub's stream settings: the pdum name is
#: accepted as the framehub one (docs/pdum-parity.md).
PDUM_SETTING_ALIASES = {"event_log": "record_file", "event_queue_size": "event_queue"}


def pdum_settings(config: Mapping[str, Any], caller: str) -> tuple[dict[str, Any], str]:
    """Splits ``serve``/``add_stream`` keywords into the native stream
    settings and the ``event_shape``, accepting pdum.rfb 0.3.0's keywords.

    pdum.rfb's ``event_log`` and ``event_queue_size`` become ``record_file``
    and ``event_queue``. Its keywords without a framehub counterpart are
    accepted where framehub already behaves as asked: ``own_frames``
    (``publish`` always copies the frame before returning, so the caller may
    reuse its buffer either way), ``has_nvenc`` None/False (no NVENC
    encoder: ``NotImplementedError`` for True), ``encode_pipeline_depth``
    (an int >= 0: framehub's encode threads run beside the publisher
    whatever the depth), ``resize_policy="publisher"`` (framehub's default;
    ``NotImplementedError`` for ``"match_client"``).

    Raises ``TypeError`` when both a pdum name and its framehub name are
    given, or for a value of the wrong type.
    """
    out = dict(config)
    shape = check_event_shape(out.pop("event_shape", "pdum"))
    for pdum_name, name in PDUM_SETTING_ALIASES.items():
        if pdum_name in out:
            if name in out:
                raise TypeError(f"{caller}() got both '{pdum_name}' and '{name}' (the same setting)")
            out[name] = out.pop(pdum_name)
    if "own_frames" in out:
        own = out.pop("own_frames")
        if not isinstance(own, bool):
            raise TypeError(f"own_frames must be a bool, got {type(own).__name__}")
    if "has_nvenc" in out:
        nvenc = out.pop("has_nvenc")
        if nvenc not in (None, False):
            raise NotImplementedError(
                "has_nvenc=True: framehub has no NVENC encoder; its H.264 is OpenH264 on the CPU"
            )
    if "encode_pipeline_depth" in out:
        depth = out.pop("encode_pipeline_depth")
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"encode_pipeline_depth must be an int, got {type(depth).__name__}")
        if depth < 0:
            raise ValueError(f"encode_pipeline_depth must be >= 0, got {depth}")
    if "resize_policy" in out:
        policy = out.pop("resize_policy")
        if policy != "publisher":
            raise NotImplementedError(
                f"resize_policy={policy!r}: the Python package has only 'publisher' "
                "(the Rust API's ResizePolicy::Controller follows a viewer's size)"
            )
    return out, shape


class RecordingBase:
    """An MP4 recording of a stream (what ``display.record(path)`` returns).

    The file holds H.264 from the stream's own encoder (no second encode),
    each picture timed by when it was published (variable frame rate: a
    pause plays as long as it lasted), as fragmented MP4, so a process that
    dies leaves a file playable up to its last fragment (at most
    ``fragment_duration`` seconds lost). ``stop()`` finalizes it.
    """

    def __init__(self, native: _native.Recording) -> None:
        self._native = native

    @property
    def path(self) -> Path:
        """The file being written."""
        return Path(self._native.path)

    @property
    def frames_written(self) -> int:
        """Pictures written so far (pdum.rfb's name)."""
        return self._native.frames_written

    @property
    def dropped(self) -> int:
        """Access units lost so far (the writer fell behind the encoder; it
        resumes at the next keyframe). Viewers are never held back."""
        return self._native.dropped

    @property
    def bytes_written(self) -> int:
        """Bytes written to the file so far."""
        return self._native.bytes_written

    @property
    def finished(self) -> bool:
        """Whether the recording has ended: stopped, its stream removed or
        the hub closed, or an error (which ``stop()`` raises)."""
        return self._native.finished

    def __repr__(self) -> str:
        return repr(self._native)


def record_args(
    fps: int | None, bitrate: int | None, crf: int | None, preset: str, fragment_duration: float
) -> float:
    """Checks ``record()``'s pdum.rfb keywords: ``fps`` and ``preset`` are
    accepted and have no effect (the stream's encoder sets the rate; the
    timing comes from publish times); ``bitrate`` and ``crf`` raise
    ``NotImplementedError`` (the recording shares the stream's encoder:
    set ``bitrate`` on the stream). Returns ``fragment_duration``."""
    del fps, preset
    if bitrate is not None or crf is not None:
        raise NotImplementedError(
            "record(bitrate=..., crf=...): a framehub recording takes the stream's own H.264 "
            "(no second encode); set bitrate=... on serve()/add_stream() instead"
        )
    return float(fragment_duration)


def _is_srgb(color: Any) -> bool:
    """Whether a pdum.rfb colour descriptor (a dict, or an object with
    attributes such as ``pdum.rfb.SRGB``) says sRGB: BT.709 primaries, sRGB
    transfer, RGB matrix, full range, 8 bits (absent fields: those)."""
    want = {"primaries": "bt709", "transfer": "srgb", "matrix": "rgb", "full_range": True, "bit_depth": 8}
    if isinstance(color, Mapping):
        got = {k: color.get(k, v) for k, v in want.items()}
    else:
        got = {k: getattr(color, k, v) for k, v in want.items()}
    return got == want


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

    def __init__(
        self,
        server: S,
        native: _native.Stream,
        owns_server: bool = False,
        event_shape: str = "pdum",
    ) -> None:
        self._server = server
        self._native = native
        self._owns_server = owns_server
        self._event_shape = check_event_shape(event_shape)
        # The size DownscaleHint.scale is relative to.
        self._base_width = max(1, native.width)

    def _deliver(self, events: list[InputEvent]) -> list[InputEvent | DownscaleHint]:
        """The events as handed to the program: in the pdum shape, the hub's
        ``downscale`` events become ``DownscaleHint``s."""
        if self._event_shape != "pdum":
            return list(events)
        out: list[InputEvent | DownscaleHint] = []
        for ev in events:
            e = ev.event
            if e.get("type") == "downscale":
                w, h = int(e["width"]), int(e["height"])
                scale = min(1.0, w / self._base_width)
                out.append(DownscaleHint(scale=scale, width=w, height=h, received_us=ev.received_us))
            else:
                out.append(ev)
        return out

    @property
    def event_shape(self) -> str:
        """The vocabulary of the event dicts this display hands out:
        ``"pdum"`` (``ev.event["type"]``, ``ev.event["timestamp"]``) or
        ``"renderview"`` (``ev.event["event_type"]``, ``ev.event["time_stamp"]``).
        Set with ``serve(..., event_shape=...)`` / ``add_stream(..., event_shape=...)``."""
        return self._event_shape

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

    @property
    def target_size(self) -> tuple[int, int] | None:
        """Always ``None``: the program owns the stream's size (pdum.rfb's
        ``resize_policy="publisher"``, the only policy of the Python package;
        viewers' sizes arrive as ``resize`` events)."""
        return None

    @property
    def target_ratio(self) -> float:
        """Always ``1.0`` (see ``target_size``)."""
        return 1.0

    @property
    def pixel_ratio(self) -> float:
        """The render-side device pixel ratio of the frames: always ``1.0``
        (framehub's frames carry none; pdum.rfb's default)."""
        return 1.0

    @property
    def color(self) -> dict[str, Any] | None:
        """The frames' colour space: always ``None``, meaning sRGB."""
        return None

    def publish(self, frame: Any, *, pixel_ratio: float | None = None, color: Any = None) -> None:
        """Publishes a frame and returns at once (latest wins).

        ``frame``: a numpy ``uint8`` array of shape ``(H, W, 3)`` (RGB) or
        ``(H, W, 4)`` (RGBA), C-contiguous or with padded rows (a slice
        ``a[:, :w]`` of a larger array), or any object with the buffer
        protocol of that shape (``memoryview``), or a 1-D ``bytes``-like
        object of exactly ``W*H*4`` or ``W*H*3`` bytes at the stream's size.
        It is copied once, without the GIL. A frame of a new size resizes
        the stream.

        ``pixel_ratio`` and ``color`` are pdum.rfb's keywords: ``None`` or
        ``1.0``, and ``None`` or sRGB (a dict or object with ``primaries``
        ``"bt709"`` and ``transfer`` ``"srgb"``, such as pdum.rfb's ``SRGB``)
        are what framehub's frames are; anything else raises
        ``NotImplementedError`` before the frame is published.

        Raises ``TypeError`` (not a buffer, not uint8), ``InvalidFrameError``
        (a ``ValueError``: wrong shape or layout), ``ClosedError``,
        ``NotImplementedError`` (see above).
        """
        if pixel_ratio is not None and pixel_ratio != 1.0:
            raise NotImplementedError(
                f"publish(pixel_ratio={pixel_ratio!r}): framehub's frames carry no pixel ratio (only None or 1.0)"
            )
        if color is not None and not _is_srgb(color):
            raise NotImplementedError(
                f"publish(color={color!r}): framehub's frames are sRGB (only None or sRGB)"
            )
        self._native.publish(frame)

    def poll_events(self) -> list[InputEvent | DownscaleHint]:
        """Takes every event waiting, oldest first (never blocks).

        Each is an ``InputEvent``; its ``event`` dict is in this display's
        ``event_shape``: by default pdum.rfb's, such as ``{"type":
        "pointer_down", "x": 12.5, "y": 40.0, "button": 1, "buttons": [1],
        "modifiers": [], "inside": True, "pixel_ratio": 1.0, "timestamp": 3.2}``.
        In that shape the hub's ``downscale`` hints (``adaptive=True``) come as
        ``DownscaleHint``s, as in pdum.rfb.
        """
        return self._deliver(self._native.poll_events(self._event_shape))

    def metrics(self) -> list[dict[str, Any]]:
        """One snapshot per connected viewer (``client_id``, ``frames_sent``,
        ``fps_acked``, ``rtt_ms``, ... as ``GET /streams/<name>/metrics``)."""
        return self._native.metrics()

    def widget(self, **options: Any) -> Any:
        """A notebook widget (anywidget) showing this stream, connected
        straight to the hub: ``framehub.notebook.widget(self, **options)``
        (options: ``fit``, ``image_only``, ``token``, ``height``, ``width``,
        ``status``, ``url``, ...). Needs ``pip install 'framehub[notebook]'``."""
        from .notebook import widget

        return widget(self, **options)

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
        ``event_shape``: ``"pdum"`` (default: ``ev.event["type"]``,
        ``ev.event["timestamp"]``) or ``"renderview"`` (``ev.event["event_type"]``,
        ``ev.event["time_stamp"]``). pdum.rfb's ``event_log``,
        ``event_queue_size``, ``own_frames``, ``has_nvenc``,
        ``encode_pipeline_depth`` and ``resize_policy`` are accepted too
        (``framehub._base.pdum_settings``; docs/pdum-parity.md).

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
        settings, shape = pdum_settings(config, caller)
        native = self._hub.add_stream(name, width, height, settings, caller)
        display = self._display_cls(self, native, event_shape=shape)
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

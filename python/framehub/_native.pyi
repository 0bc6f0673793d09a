"""Type stubs of the Rust extension module ``framehub._native`` (crates/framehub-py)."""

import asyncio
from collections.abc import Iterable
from typing import Any, final

__all__ = [
    "AsgiBridge",
    "AuthContext",
    "Hub",
    "InputEvent",
    "Lifecycle",
    "Recording",
    "STREAM_SETTINGS",
    "Stream",
    "ViewerChannel",
    "__version__",
    "web_asset",
    "web_asset_names",
]

__version__: str
STREAM_SETTINGS: list[str]

def web_asset(name: str) -> bytes | None:
    """A file of the embedded browser client (``web/``), or None."""

def web_asset_names() -> list[str]:
    """The embedded browser client's file names."""

@final
class AuthContext:
    """What the viewer presented, as an authenticator sees it."""

    @property
    def token(self) -> str | None: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def cookies(self) -> dict[str, str]: ...
    @property
    def query(self) -> dict[str, str]: ...
    @property
    def path(self) -> str: ...
    @property
    def remote(self) -> tuple[str, int] | None: ...
    @property
    def hello(self) -> dict[str, Any]: ...
    @property
    def stream(self) -> str: ...

@final
class InputEvent:
    """One input event from a viewer."""

    @property
    def client_id(self) -> int: ...
    @property
    def principal(self) -> str | None: ...
    @property
    def event(self) -> dict[str, Any]: ...
    @property
    def received_us(self) -> int: ...
    @property
    def hub(self) -> str | None: ...
    @property
    def event_type(self) -> str: ...
    def as_pdum(self) -> dict[str, Any]: ...
    def as_renderview(self) -> dict[str, Any]: ...

@final
class Stream:
    """One stream of a hub."""

    def publish(self, frame: Any) -> None: ...
    def poll_events(self, event_shape: str = "pdum") -> list[InputEvent]: ...
    def wait_event_async(self, event_loop: asyncio.AbstractEventLoop) -> asyncio.Future[bool]: ...
    def wait_event(self, timeout: float | None = None) -> bool | None: ...
    def metrics(self) -> list[dict[str, Any]]: ...
    def record(self, path: str, fragment_duration: float = 1.0) -> Recording: ...
    @property
    def name(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def client_count(self) -> int: ...
    @property
    def events_dropped(self) -> int: ...
    @property
    def frame_pending(self) -> bool: ...

@final
class Recording:
    """An MP4 recording of a stream (``Stream.record``)."""

    def stop(self) -> dict[str, Any]: ...
    @property
    def path(self) -> str: ...
    @property
    def frames_written(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def bytes_written(self) -> int: ...
    @property
    def finished(self) -> bool: ...

@final
class Lifecycle:
    """A subscription to a hub's lifecycle events."""

    def next_async(
        self, event_loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[dict[str, Any] | None]: ...

@final
class Hub:
    """A framehub server with its own tokio runtime."""

    def __new__(
        cls,
        event_loop: asyncio.AbstractEventLoop | None = None,
        origins: str | Iterable[str] | None = None,
        nats: str | Iterable[str] | dict[str, Any] | None = None,
    ) -> Hub: ...
    def listen(self, host: str, port: int) -> int: ...
    def listen_async(
        self, event_loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> asyncio.Future[int]: ...
    def connect_async(
        self,
        event_loop: asyncio.AbstractEventLoop,
        url: str,
        width: int,
        height: int,
        config: dict[str, Any] | None = None,
        token: str | None = None,
        takeover: bool = False,
    ) -> asyncio.Future[Stream]: ...
    def connect(
        self,
        url: str,
        width: int,
        height: int,
        config: dict[str, Any] | None = None,
        token: str | None = None,
        takeover: bool = False,
    ) -> Stream: ...
    def add_stream(
        self,
        name: str,
        width: int,
        height: int,
        config: dict[str, Any] | None = None,
        caller: str = "add_stream",
    ) -> Stream: ...
    def lifecycle(self) -> Lifecycle: ...
    def remove_stream(self, name: str) -> bool: ...
    def stream(self, name: str) -> Stream | None: ...
    def stream_names(self) -> list[str]: ...
    @property
    def port(self) -> int | None: ...
    @property
    def address(self) -> tuple[str, int] | None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def runtime_running(self) -> bool: ...
    def close(self) -> None: ...

@final
class ViewerChannel:
    """One viewer attached through the ASGI bridge: bounded channels to and from its session."""

    def drain(self) -> list[str | bytes | tuple[int, str] | None]: ...
    def recv_async(
        self, event_loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[str | bytes | tuple[int, str] | None]: ...
    def try_send(self, msg: str | bytes) -> bool: ...
    def send_async(
        self, event_loop: asyncio.AbstractEventLoop, msg: str | bytes
    ) -> asyncio.Future[None]: ...
    def close(self) -> None: ...

@final
class AsgiBridge:
    """A hub seen from an ASGI app: HTTP requests through its router, viewers attached."""

    def __new__(cls, hub: Hub) -> AsgiBridge: ...
    def http(
        self,
        event_loop: asyncio.AbstractEventLoop,
        method: str,
        path: str,
        root_path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        client: tuple[str, int] | None,
    ) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]]: ...
    def attach_viewer(
        self,
        path: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
    ) -> ViewerChannel: ...

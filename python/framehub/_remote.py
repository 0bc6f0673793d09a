"""What ``connect()`` (asyncio and sync) share: a publisher's hub-less
server reports the remote hub's address."""

from __future__ import annotations

import urllib.parse
from typing import Any

from . import _native

__all__ = ["RemoteAddress", "remote_base"]


def remote_base(url: object) -> str:
    """``scheme://HOST:PORT`` of a hub URL; raises ``TypeError`` /
    ``ValueError`` for anything else."""
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.netloc:
        raise ValueError(f"url must be ws://HOST:PORT (or wss, http, https), got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


class RemoteAddress:
    """Mixed into a ``Server`` whose streams are published into a remote
    hub: ``port``, ``url`` and ``ws_url`` name that hub."""

    def __init__(self, hub: _native.Hub, base: str, *args: Any) -> None:
        parts = urllib.parse.urlsplit(base)
        super().__init__(hub, parts.hostname or "127.0.0.1", *args)  # type: ignore[call-arg]
        secure = parts.scheme in ("wss", "https")
        self._remote_port = parts.port or (443 if secure else 80)
        self._ws_base = f"{'wss' if secure else 'ws'}://{parts.netloc}"
        self._http_base = f"{'https' if secure else 'http'}://{parts.netloc}"

    @property
    def port(self) -> int:
        """The remote hub's port."""
        return self._remote_port

    def ws_url(self, name: str = "default") -> str:
        """``ws://HOST:PORT/<name>`` on the remote hub."""
        return f"{self._ws_base}/{name}"

    def url(self, name: str = "") -> str:
        """``http://HOST:PORT/<name>`` on the remote hub."""
        return f"{self._http_base}/{name}"

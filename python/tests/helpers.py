"""Test helpers: a protocol-speaking WebSocket viewer (the `websockets` package), thread counts."""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


def parse_envelope(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Splits a binary media message: u32 LE header length, JSON header, payload."""
    (n,) = struct.unpack_from("<I", data, 0)
    header = json.loads(data[4 : 4 + n].decode())
    return header, data[4 + n :]


def decode_image(payload: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))


class Viewer:
    """One viewer speaking the framehub protocol over a real WebSocket."""

    def __init__(self, ws: ClientConnection, config: dict[str, Any]) -> None:
        self.ws = ws
        self.config = config
        self.texts: list[dict[str, Any]] = []

    @property
    def session(self) -> int:
        return int(self.config["session"])

    async def frame(self, timeout: float = 10.0) -> tuple[dict[str, Any], bytes]:
        """The next media message (text messages on the way are kept in ``texts``)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame")
            msg = await asyncio.wait_for(self.ws.recv(), left)
            if isinstance(msg, bytes):
                return parse_envelope(msg)
            self.texts.append(json.loads(msg))

    async def ack(self, seq: int) -> None:
        await self.ws.send(json.dumps({"type": "ack", "seq": seq, "decode_queue_size": 0}))

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"type": "event", "event": event}))

    async def closed_code(self, timeout: float = 10.0) -> int | None:
        """Reads until the server closes; returns its close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None

    async def close(self) -> None:
        await self.ws.close()


async def open_viewer(
    url: str,
    *,
    token: str | None = None,
    supported: tuple[str, ...] = ("image/jpeg",),
    headers: dict[str, str] | None = None,
) -> Viewer:
    """Connects, sends hello, waits for config."""
    ws = await connect(url, additional_headers=headers, max_size=None, compression=None)
    hello: dict[str, Any] = {"type": "hello", "supported": list(supported)}
    if token is not None:
        hello["token"] = token
    await ws.send(json.dumps(hello))
    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert msg["type"] == "config", msg
    return Viewer(ws, msg)


async def refused_code(url: str, *, token: str | None = None, timeout: float = 10.0) -> int | None:
    """Connects and sends hello to a viewer expected to be refused; returns the close code."""
    async with connect(url, max_size=None, compression=None) as ws:
        hello: dict[str, Any] = {"type": "hello", "supported": ["image/jpeg"]}
        if token is not None:
            hello["token"] = token
        try:
            await ws.send(json.dumps(hello))  # a 4404 may close before hello is read
            async with asyncio.timeout(timeout):
                while True:
                    msg = await ws.recv()
                    if isinstance(msg, str) and json.loads(msg).get("type") == "config":
                        return 0  # admitted
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd is not None else None
    return None


async def wait_events(display: Any, n: int = 1, timeout: float = 10.0) -> list[Any]:
    """Polls ``display.poll_events()`` until ``n`` events arrived."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        got.extend(display.poll_events())
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(got)} of {n} events")
        await asyncio.sleep(0.01)
    return got


def os_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def wait_for_threads(python_threads: int, os_threads: int, timeout: float = 5.0) -> tuple[int, int]:
    """Waits until thread counts fall back to the given ones; returns the last counts."""
    deadline = time.monotonic() + timeout
    while True:
        now = (threading.active_count(), os_thread_count())
        if (now[0] <= python_threads and now[1] <= os_threads) or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


async def async_wait_for_threads(
    python_threads: int, os_threads: int, timeout: float = 5.0
) -> tuple[int, int]:
    """``wait_for_threads`` without blocking the event loop (and without a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        now = (threading.active_count(), os_thread_count())
        if (now[0] <= python_threads and now[1] <= os_threads) or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


def solid(h: int, w: int, color: tuple[int, ...]) -> np.ndarray:
    a = np.empty((h, w, len(color)), np.uint8)
    a[:] = color
    return a

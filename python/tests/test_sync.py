"""The synchronous façade (framehub.sync): no asyncio in the program."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

import framehub
import framehub.sync as fhs
from helpers import os_thread_count, parse_envelope, solid, wait_for_threads


@contextmanager
def sync_viewer(
    url: str, token: str | None = None
) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
    with connect(url, max_size=None, compression=None) as ws:
        hello: dict[str, Any] = {"type": "hello", "supported": ["image/jpeg"]}
        if token is not None:
            hello["token"] = token
        ws.send(json.dumps(hello))
        config = json.loads(ws.recv(timeout=10))
        assert config["type"] == "config", config
        yield ws, config


def next_frame(ws: ClientConnection) -> tuple[dict[str, Any], bytes]:
    while True:
        msg = ws.recv(timeout=10)
        if isinstance(msg, bytes):
            return parse_envelope(msg)


def close_code(ws: ClientConnection) -> int | None:
    try:
        while True:
            ws.recv(timeout=10)
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd is not None else None


def test_sync_serve_publish_events_and_close() -> None:
    py_threads, os_threads = threading.active_count(), os_thread_count()
    display = fhs.serve(48, 32, port=0)
    assert isinstance(display, fhs.Display)
    assert display.server.port == display.port > 0
    with sync_viewer(display.ws_url) as (ws, config):
        assert config["width"] == 48

        display.publish(solid(32, 48, (1, 2, 3)))
        header, payload = next_frame(ws)
        assert header["type"] == "image_frame" and payload[:2] == b"\xff\xd8"

        event = {"type": "pointer_down", "x": 1, "y": 2, "button": 1, "timestamp": 1.5}
        ws.send(json.dumps({"type": "event", "event": event}))
        ev = next(display.events(timeout=10))
        assert ev.event["type"] == "pointer_down" and ev.event["timestamp"] == 1.5
        assert ev.client_id == config["session"]
        # No event: events(timeout) ends after the timeout.
        t0 = time.monotonic()
        assert list(display.events(timeout=0.3)) == []
        assert 0.25 < time.monotonic() - t0 < 3

        display.close()
        assert close_code(ws) == 1001
    assert display.server.closed
    with pytest.raises(framehub.ClosedError):
        display.publish(solid(32, 48, (1, 2, 3)))
    display.close()  # idempotent
    assert list(display.events()) == []  # ends at once on a closed stream
    now = wait_for_threads(py_threads, os_threads)
    assert now[0] <= py_threads and now[1] <= os_threads, (now, threading.enumerate())


def test_sync_events_iterator_ends_when_the_hub_closes_from_another_thread() -> None:
    display = fhs.serve(8, 8, port=0)
    threading.Timer(0.3, display.close).start()
    t0 = time.monotonic()
    assert list(display.events()) == []
    assert time.monotonic() - t0 < 5


def test_sync_server_streams_and_publishing_from_threads() -> None:
    with fhs.serve_server(port=0) as server:
        displays = [server.add_stream(f"s{i}", 32, 32) for i in range(3)]
        assert server.streams == ["s0", "s1", "s2"]
        errors: list[BaseException] = []

        def publish(d: fhs.Display) -> None:
            try:
                for i in range(100):
                    d.publish(solid(32, 32, (i, i, i)))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=publish, args=(d,)) for d in displays]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        with sync_viewer(displays[1].ws_url) as (ws, _):
            header, _ = next_frame(ws)
            assert header["width"] == 32
    assert server.closed


def test_sync_async_authenticator_runs_without_an_application_loop() -> None:
    import asyncio

    async def authenticate(ctx: framehub.AuthContext) -> str | None:
        await asyncio.sleep(0.01)
        return "bob" if ctx.token == "b" else None

    with fhs.serve(8, 8, port=0, authenticate=authenticate) as display:
        with sync_viewer(display.ws_url, token="b") as (ws, _):
            ws.send(json.dumps({"type": "event", "event": {"event_type": "key_up", "key": "x"}}))
            ev = next(display.events(timeout=10))
            assert ev.principal == "bob"
        with connect(display.ws_url) as bad:
            bad.send(json.dumps({"type": "hello", "supported": ["image/jpeg"], "token": "x"}))
            assert close_code(bad) == 4401


def test_sync_errors() -> None:
    with fhs.serve_server(port=0) as server:
        with pytest.raises(OSError):
            fhs.serve_server(port=server.port)
        with pytest.raises(TypeError):
            server.add_stream("a", 8, 8, nope=True)
        with pytest.raises(ValueError, match="origin"):
            fhs.serve_server(port=0, origins=["x"])
        d = server.add_stream("a", 8, 8)
        with pytest.raises(TypeError, match="uint8"):
            d.publish(np.zeros((8, 8, 3), np.float64))

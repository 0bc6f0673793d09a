"""The hub: streams, routing, REST, ports, settings, closing, threads."""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import threading
import urllib.request
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

import framehub
from helpers import async_wait_for_threads, open_viewer, os_thread_count, refused_code, solid


def http_get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body, status = e.read(), e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


async def test_two_streams_on_one_port_and_the_listing() -> None:
    server = await framehub.serve_server(port=0)
    try:
        cam = server.add_stream("camera", 64, 48)
        depth = server.add_stream("depth", 32, 24, fps=15)
        assert server.streams == ["camera", "depth"]
        assert server.stream("camera") is cam
        assert cam.server is server and cam.port == server.port
        assert cam.ws_url == f"ws://127.0.0.1:{server.port}/camera"

        a = await open_viewer(cam.ws_url)
        b = await open_viewer(depth.ws_url)
        assert (a.config["width"], a.config["stream"]) == (64, "camera")
        assert (b.config["width"], b.config["stream"]) == (32, "depth")
        cam.publish(solid(48, 64, (255, 0, 0)))
        depth.publish(solid(24, 32, (0, 0, 255)))
        ha, _ = await a.frame()
        hb, _ = await b.frame()
        assert (ha["width"], hb["width"]) == (64, 32)

        status, listing = await asyncio.to_thread(http_get, server.url("streams"))
        assert status == 200
        by_name = {s["name"]: s for s in listing}
        assert set(by_name) == {"camera", "depth"}
        assert by_name["depth"]["fps"] == 15
        assert (by_name["camera"]["width"], by_name["camera"]["height"]) == (64, 48)
        assert by_name["camera"]["clients"] == 1
        status, metrics = await asyncio.to_thread(http_get, server.url("streams/camera/metrics"))
        assert status == 200 and metrics[0]["client_id"] == a.session
        [m] = cam.metrics()
        assert m["client_id"] == a.session and m["frames_sent"] >= 1

        assert await refused_code(server.ws_url("nope")) == 4404

        # Removing a stream closes its viewers with 1001, not the others'.
        server.remove_stream("depth")
        assert await b.closed_code() == 1001
        assert server.streams == ["camera"]
        with pytest.raises(framehub.ClosedError):
            depth.publish(solid(24, 32, (0, 0, 255)))
        with pytest.raises(framehub.UnknownStreamError):
            server.remove_stream("depth")
        with pytest.raises(framehub.UnknownStreamError):
            server.stream("depth")
        await a.ack(ha["seq"])
        cam.publish(solid(48, 64, (0, 255, 0)))
        ha2, _ = await a.frame()
        assert ha2["seq"] > ha["seq"]
        await a.close()
    finally:
        await server.aclose()


async def test_stream_name_and_size_errors() -> None:
    async with await framehub.serve_server(port=0) as server:
        server.add_stream("cam", 16, 16)
        with pytest.raises(framehub.StreamExistsError, match="cam"):
            server.add_stream("cam", 16, 16)
        for bad in ("bad name!", "health", "streams", "_private", "", "x" * 65):
            with pytest.raises(framehub.InvalidNameError):
                server.add_stream(bad, 16, 16)
        with pytest.raises(framehub.InvalidFrameError, match="outside"):
            server.add_stream("big", 20000, 16)
        with pytest.raises(ValueError):
            server.add_stream("neg", -1, 16)
        with pytest.raises(TypeError, match="width must be an int"):
            server.add_stream("f", 1.5, 16)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="name must be a str"):
            server.add_stream(3, 16, 16)  # type: ignore[arg-type]


async def test_settings_are_checked() -> None:
    async with await framehub.serve_server(port=0) as server:
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            server.add_stream("a", 16, 16, colour="red")
        with pytest.raises(ValueError, match="quality must be within 1..=100"):
            server.add_stream("a", 16, 16, quality=0)
        with pytest.raises(TypeError, match="quality must be an int"):
            server.add_stream("a", 16, 16, quality="high")
        with pytest.raises(TypeError, match="quality must be an int"):
            server.add_stream("a", 16, 16, quality=True)
        with pytest.raises(ValueError, match="fps must be > 0"):
            server.add_stream("a", 16, 16, fps=0)
        with pytest.raises(ValueError, match="input must be"):
            server.add_stream("a", 16, 16, input="some")
        with pytest.raises(TypeError, match="record_events must be a bool"):
            server.add_stream("a", 16, 16, record_events=1)
        with pytest.raises(ValueError, match="image_format"):
            server.add_stream("a", 16, 16, image_format="gif")
        # Not available yet: only the "off" value is accepted.
        # gpu: only off; framehub encodes on the CPU.
        server.add_stream("off-gpu", 16, 16, gpu=False)
        server.add_stream("none-gpu", 16, 16, gpu=None)
        for on in (True, "auto", 1):
            with pytest.raises(NotImplementedError, match=f"gpu={on!r}: GPU encoding is not available") as e:
                server.add_stream("a", 16, 16, gpu=on)
            assert "it encodes on the CPU" in str(e.value)
            assert "gpu accepts only None or False" in str(e.value)
        # adaptive: a bool (or None).
        with pytest.raises(TypeError, match="adaptive must be a bool"):
            server.add_stream("a", 16, 16, adaptive="yes")
        d = server.add_stream(
            "full",
            16,
            16,
            fps=30,
            quality=90,
            max_inflight=3,
            record_events=True,
            input="first",
            stats_interval=1.0,
            event_queue=10,
            token_cookie="session",
            image_format="png",
            has_h264=None,
            bitrate=None,
            still_after=None,
            adaptive=False,
            authenticate=None,
        )
        assert d.name == "full"
        assert "a" not in server.streams
    with pytest.raises(TypeError, match=r"serve\(\) got an unexpected keyword argument 'nope'"):
        await framehub.serve(16, 16, port=0, nope=1)


async def test_serve_default_stream_and_extra_streams() -> None:
    display = await framehub.serve(40, 30, port=0)
    try:
        assert display.name == "default"
        assert (display.width, display.height) == (40, 30)
        overview = display.server.add_stream("overview", 20, 15)
        assert display.server.streams == ["default", "overview"]
        # ws://HOST:PORT/ lands on "default".
        v = await open_viewer(f"ws://127.0.0.1:{display.port}/")
        assert v.config["stream"] == "default"
        await v.close()
        # Closing an added stream's display removes just that stream.
        await overview.aclose()
        assert display.server.streams == ["default"]
        assert not display.server.closed
    finally:
        await display.aclose()
    assert display.server.closed


async def test_port_zero_picks_a_free_port_and_a_taken_port_is_oserror() -> None:
    server = await framehub.serve_server(port=0)
    try:
        assert 0 < server.port < 65536
        status, body = await asyncio.to_thread(http_get, server.url("health"))
        assert (status, body) == (200, "ok")
        with pytest.raises(OSError) as info:
            await framehub.serve_server(port=server.port)
        assert info.value.errno == errno.EADDRINUSE
        assert str(server.port) in str(info.value)
    finally:
        await server.aclose()
    # The port is released on close: a new hub can listen on it at once.
    again = await framehub.serve_server(port=server.port)
    await again.aclose()


async def test_bad_addresses() -> None:
    with pytest.raises(ValueError, match="port"):
        await framehub.serve_server(port=70000)
    with pytest.raises(TypeError, match="port"):
        await framehub.serve_server(port="80")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="origins must be"):
        await framehub.serve_server(port=0, origins="https://a.example")
    with pytest.raises(TypeError, match="origins must be"):
        await framehub.serve_server(port=0, origins=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scheme://host"):
        await framehub.serve_server(port=0, origins=["a.example"])


async def upgrade_status(url: str, origin: str | None) -> int:
    """101 when the WebSocket upgrade is accepted, else the HTTP status."""
    try:
        async with connect(url, origin=Origin(origin) if origin else None):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


@pytest.mark.parametrize(
    ("origins", "expected"),
    [
        (None, {None: 101, "http://127.0.0.1:1": 101, "https://evil.example": 403}),
        (["https://app.example"], {None: 101, "https://app.example": 101, "https://evil.example": 403}),
        ("*", {None: 101, "https://evil.example": 101}),
    ],
)
async def test_origins_allow_list(origins: Any, expected: dict[str | None, int]) -> None:
    async with await framehub.serve_server(port=0, origins=origins) as server:
        server.add_stream("s", 8, 8)
        got = {o: await upgrade_status(server.ws_url("s"), o) for o in expected}
        assert got == expected


async def test_aclose_with_viewers_connected_sends_1001_and_stops_every_thread() -> None:
    py_threads, os_threads = threading.active_count(), os_thread_count()
    server = await framehub.serve_server(port=0)
    assert os_thread_count() > os_threads  # the hub's runtime threads
    a = server.add_stream("a", 32, 32)
    b = server.add_stream("b", 32, 32)
    va = await open_viewer(a.ws_url)
    vb = await open_viewer(b.ws_url)
    a.publish(np.zeros((32, 32, 3), np.uint8))
    await va.frame()
    async def first_event() -> framehub.InputEvent:
        return await anext(aiter(a.events()))

    waiting = asyncio.create_task(first_event())  # waits for an event
    await asyncio.sleep(0.05)
    await server.aclose()
    codes = await asyncio.gather(va.closed_code(), vb.closed_code())
    assert list(codes) == [1001, 1001]
    assert server.closed and not server._hub.runtime_running
    with pytest.raises(framehub.ClosedError):
        a.publish(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(framehub.ClosedError):
        server.add_stream("c", 8, 8)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)  # the pending iterator ended with the hub
    await server.aclose()  # idempotent
    now = await async_wait_for_threads(py_threads, os_threads)
    assert now[0] <= py_threads and now[1] <= os_threads, (now, threading.enumerate())


async def test_async_with_closes_the_server() -> None:
    async with await framehub.serve_server(port=0) as server:
        async with server.add_stream("s", 8, 8) as display:
            display.publish(np.zeros((8, 8, 4), np.uint8))
        assert server.streams == []
    assert server.closed


async def test_an_unclosed_hub_is_closed_when_dropped() -> None:
    py_threads, os_threads = threading.active_count(), os_thread_count()
    server = await framehub.serve_server(port=0)
    port = server.port
    del server
    gc.collect()
    now = await async_wait_for_threads(py_threads, os_threads)
    assert now[0] <= py_threads and now[1] <= os_threads, now
    again = await framehub.serve_server(port=port)  # the port was released
    await again.aclose()

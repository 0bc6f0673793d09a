"""framehub.asgi: a hub mounted in a Starlette app served by uvicorn.

The viewer page under /fh/<stream> draws in headless Chromium (Debian's
chromium + chromedriver, driven with selenium) and its events reach
poll_events(); the host app's own route keeps answering; a viewer that never
reads stalls neither the event loop nor the other viewers; authentication,
limits, the input policy and the origin check apply through the bridge as on
the hub's own port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from helpers import open_viewer, refused_code, solid, wait_events
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

import framehub
import framehub.asgi
from framehub import AuthContext

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "target" / "py-screenshots"


def host_app(server: Any) -> Starlette:
    """A host app with a route of its own and the hub mounted at /fh."""

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello from the host app")

    return Starlette(
        routes=[Route("/hello", hello), Mount("/fh", app=framehub.asgi.app(server))]
    )


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any, **config: Any) -> AsyncIterator[int]:
    """Serves ``app`` with uvicorn on this event loop, on a free port (yielded)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config.setdefault("ws_per_message_deflate", False)  # as the README advises
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            await asyncio.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def publishing(display: Any, frame: np.ndarray, period: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        display.publish(frame)
        await asyncio.sleep(period)


def chromium_view(url: str, shot: str) -> dict[str, Any]:
    """Opens ``url`` in headless Chromium, waits until the canvas shows a
    frame, clicks its middle; returns the centre pixel and the page's base."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains

    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--window-size=400,300",
    ):
        opts.add_argument(arg)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        driver.get(url)
        pixel_js = """
            const v = window.framehubView;
            if (!v || !v.mapping) return null;
            const m = v.mapping();
            if (!m || !m.scale) return null;
            const px = Math.floor(m.offsetX + 32.5 * m.scale), py = Math.floor(m.offsetY + 24.5 * m.scale);
            return Array.from(v.canvas.getContext('2d').getImageData(px, py, 1, 1).data);
        """
        deadline = time.monotonic() + 30
        pixel = None
        while time.monotonic() < deadline:
            pixel = driver.execute_script(pixel_js)
            if pixel and abs(pixel[0] - 200) < 12 and abs(pixel[1] - 40) < 12 and abs(pixel[2] - 90) < 12:
                break
            time.sleep(0.1)
        # The status line's viewer count comes from GET <base>streams, through the bridge too.
        count_js = "return document.getElementById('st-viewers').textContent"
        deadline = time.monotonic() + 6
        while driver.execute_script(count_js) != "1 viewer" and time.monotonic() < deadline:
            time.sleep(0.1)
        viewers = driver.execute_script(count_js)
        canvas = driver.execute_script("return window.framehubView.canvas")
        ActionChains(driver).move_to_element(canvas).click().perform()
        base = driver.execute_script("return document.baseURI")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / shot))
        return {"pixel": pixel, "base": base, "viewers": viewers}
    finally:
        driver.quit()


async def test_asgi_viewer_page_draws_in_chromium_and_its_events_reach_the_program() -> None:
    server = await framehub.serve_server(port=None)
    try:
        assert server.port == 0, "port=None: the hub does not listen"
        display = server.add_stream("cam", 64, 48)
        stop = asyncio.Event()
        async with uvicorn_serving(host_app(server)) as port:
            pub = asyncio.create_task(publishing(display, solid(48, 64, (200, 40, 90)), 0.05, stop))
            try:
                url = f"http://127.0.0.1:{port}/fh/cam"
                seen = await asyncio.to_thread(chromium_view, url, "asgi-viewer.png")
                pixel = seen["pixel"]
                assert pixel is not None, "the page drew nothing"
                assert [abs(a - b) < 12 for a, b in zip(pixel[:3], (200, 40, 90))] == [True] * 3, pixel
                assert seen["base"] == f"http://127.0.0.1:{port}/fh/", "the page's base is the mount"
                assert seen["viewers"] == "1 viewer", seen
                events = await wait_events(display, 1, timeout=10)
                kinds = {ev.event_type for ev in events}
                for _ in range(20):
                    if "pointer_down" in kinds:
                        break
                    kinds |= {ev.event_type for ev in display.poll_events()}
                    await asyncio.sleep(0.05)
                assert "pointer_down" in kinds, kinds
                # The host app's own route answers beside the mount.
                async with httpx.AsyncClient() as http:
                    r = await http.get(f"http://127.0.0.1:{port}/hello")
                assert r.status_code == 200 and r.text == "hello from the host app"
            finally:
                stop.set()
                await pub
    finally:
        await server.aclose()


async def test_asgi_serves_pages_rest_and_assets_under_the_mount() -> None:
    server = framehub.sync.serve_server(port=None)
    try:
        server.add_stream("cam", 32, 16)
        async with uvicorn_serving(host_app(server)) as port, httpx.AsyncClient() as http:
            base = f"http://127.0.0.1:{port}"
            r = await http.get(f"{base}/fh/streams")
            assert r.status_code == 200
            assert [s["name"] for s in r.json()] == ["cam"]
            r = await http.get(f"{base}/fh/cam")
            assert r.status_code == 200 and '<base href="/fh/">' in r.text
            r = await http.get(f"{base}/fh/")
            assert r.status_code == 200 and '<base href="/fh/">' in r.text
            r = await http.get(f"{base}/fh/nope")
            assert r.status_code == 404
            r = await http.get(f"{base}/fh/_/util.js")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
            assert "HUB_BASE" in r.text
            r = await http.get(f"{base}/fh/health")
            assert r.text == "ok"
            r = await http.post(f"{base}/fh/streams")
            assert r.status_code == 405
            r = await http.get(f"{base}/hello")
            assert r.text == "hello from the host app"
        # Served on its own (no host app): the lifespan is answered, the base is /.
        async with uvicorn_serving(framehub.asgi.app(server), lifespan="on") as port:
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://127.0.0.1:{port}/cam")
            assert r.status_code == 200 and '<base href="/">' in r.text
            v = await open_viewer(f"ws://127.0.0.1:{port}/cam")
            assert v.config["stream"] == "cam"
            await v.close()
    finally:
        server.close()


async def test_asgi_applies_auth_limits_input_policy_and_origins_as_the_port() -> None:
    async def auth(ctx: AuthContext) -> str | None:
        await asyncio.sleep(0)
        return "alice" if ctx.token == "s3cret" else None

    # The hub listens on a port of its own too: the same checks on both ways in.
    server = await framehub.serve_server(port=0)
    try:
        server.add_stream("sec", 8, 8, authenticate=auth)
        server.add_stream("one", 8, 8, max_viewers=1)
        ctl = server.add_stream("ctl", 8, 8, input="first")
        async with uvicorn_serving(host_app(server)) as port:
            for root in (f"ws://127.0.0.1:{server.port}", f"ws://127.0.0.1:{port}/fh"):
                assert await refused_code(f"{root}/sec") == 4401, root
                assert await refused_code(f"{root}/sec", token="s3cret") == 0, root
                assert await refused_code(f"{root}/sec?token=s3cret") == 0, root
                assert await refused_code(f"{root}/nope") == 4404, root
                first = await open_viewer(f"{root}/one")
                assert await refused_code(f"{root}/one") == 1008, root
                await first.close()
                # input="first": only the first viewer's events reach the program.
                a = await open_viewer(f"{root}/ctl")
                b = await open_viewer(f"{root}/ctl")
                await b.send_event({"event_type": "key_down", "key": "b", "code": "KeyB"})
                await a.send_event({"event_type": "key_down", "key": "a", "code": "KeyA"})
                events = await wait_events(ctl, 1)
                await asyncio.sleep(0.2)
                events += ctl.poll_events()
                assert [ev.client_id for ev in events] == [a.session], root
                await a.close()
                await b.close()
                # A page of another origin is refused before the upgrade.
                with pytest.raises(InvalidStatus) as refused:
                    await connect(f"{root}/one", additional_headers={"Origin": "http://evil.example"})
                assert refused.value.response.status_code == 403, root
            metrics = json.loads(
                (await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/fh/_/metrics"))
            )
            assert metrics["closes"]["4401"] == 2, metrics
            assert metrics["refused"]["too many viewers of this stream"] == 2, metrics
    finally:
        await server.aclose()


def _get(url: str) -> str:
    return httpx.get(url).text


def _ws_client_frame(text: str) -> bytes:
    """One masked text frame, as a WebSocket client sends it."""
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    if len(data) < 126:
        head += bytes([0x80 | len(data)])
    else:
        head += bytes([0x80 | 126]) + struct.pack(">H", len(data))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def stuck_viewer(port: int, path: str) -> asyncio.StreamWriter:
    """Opens a viewer, says hello, and never reads again."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert status.startswith(b"HTTP/1.1 101"), status
    writer.write(_ws_client_frame(json.dumps({"type": "hello", "supported": ["image/jpeg"]})))
    await writer.drain()
    return writer


async def test_asgi_a_viewer_that_never_reads_stalls_neither_the_loop_nor_other_viewers() -> None:
    server = await framehub.serve_server(port=None)
    try:
        # Noise at 640x360 is ~0.3 MB per JPEG; credit 32 lets the hub push
        # ~10 MB at a viewer that reads nothing: far more than socket buffers.
        display = server.add_stream("big", 640, 360, max_inflight=32)
        rng = np.random.default_rng(1)
        frames = [rng.integers(0, 256, (360, 640, 3), np.uint8) for _ in range(4)]
        stop = asyncio.Event()

        async def publish() -> None:
            i = 0
            while not stop.is_set():
                display.publish(frames[i % 4])
                i += 1
                await asyncio.sleep(1 / 30)

        async with uvicorn_serving(host_app(server)) as port:
            pub = asyncio.create_task(publish())
            stuck = await stuck_viewer(port, "/fh/big")
            try:
                await asyncio.sleep(2.0)  # its buffers fill, its pump waits
                # Held back by the stalled write, not by its credit: ~60 frames
                # were published, it was sent fewer than its credit of 32.
                (m,) = display.metrics()
                assert 1 <= m["frames_sent"] < 32, m
                good = await open_viewer(f"ws://127.0.0.1:{port}/fh/big")
                latencies: list[float] = []
                frames_got = 0

                async def ping_host() -> None:
                    async with httpx.AsyncClient() as http:
                        while not stop.is_set():
                            t = time.monotonic()
                            r = await http.get(f"http://127.0.0.1:{port}/hello")
                            assert r.status_code == 200
                            latencies.append(time.monotonic() - t)
                            await asyncio.sleep(0.05)

                pinger = asyncio.create_task(ping_host())
                t0 = time.monotonic()
                while time.monotonic() - t0 < 4.0:
                    header, _ = await good.frame()
                    await good.ack(header["seq"])
                    frames_got += 1
                fps = frames_got / (time.monotonic() - t0)
                stop.set()
                await pinger
                await good.close()
                assert display.client_count >= 1
                assert fps >= 20, f"the reading viewer got {fps:.1f} frames/s beside the stuck one"
                assert latencies and max(latencies) < 0.5, (
                    f"the host route answered in up to {max(latencies):.3f} s"
                )
            finally:
                stop.set()
                await pub
                stuck.close()
    finally:
        await server.aclose()


def test_asgi_benchmark_smoke_run() -> None:
    # A tiny, short run of python/bench/asgi_bench.py: both phases run to the
    # end and print the JSON line. The figures are judged in docs/benchmarks.md.
    bench = Path(__file__).resolve().parent.parent / "bench" / "asgi_bench.py"
    r = subprocess.run(
        [sys.executable, str(bench), "--width", "64", "--height", "48", "--viewers", "2",
         "--seconds", "1", "--warmup", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for phase in ("bridge", "port"):
        assert out[phase]["viewers"] == 2 and out[phase]["frames"] > 0, out
        assert out[phase]["errors"] == [], out
    assert "/fh/" in out["bridge"]["url"] and "/fh/" not in out["port"]["url"]


async def test_asgi_mounts_in_fastapi_as_the_readme_shows() -> None:
    from fastapi import FastAPI

    server = framehub.sync.serve_server(port=None)
    try:
        display = server.add_stream("cam", 64, 48)
        app = FastAPI()
        app.mount("/fh", framehub.asgi.app(server))

        @app.get("/status")
        def status() -> dict[str, int]:
            return {"viewers": display.client_count}

        async with uvicorn_serving(app) as port, httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{port}/fh/cam")
            assert r.status_code == 200 and '<base href="/fh/">' in r.text
            v = await open_viewer(f"ws://127.0.0.1:{port}/fh/cam")
            display.publish(solid(48, 64, (10, 200, 30)))
            header, payload = await v.frame()
            assert header["width"] == 64 and payload[:2] == b"\xff\xd8", header
            assert (await http.get(f"http://127.0.0.1:{port}/status")).json() == {"viewers": 1}
            await v.close()
    finally:
        server.close()


async def test_asgi_viewers_are_told_when_their_stream_or_the_hub_goes() -> None:
    server = await framehub.serve_server(port=None)
    try:
        server.add_stream("a", 8, 8)
        server.add_stream("b", 8, 8)
        async with uvicorn_serving(host_app(server)) as port:
            a = await open_viewer(f"ws://127.0.0.1:{port}/fh/a")
            b = await open_viewer(f"ws://127.0.0.1:{port}/fh/b")
            server.remove_stream("a")
            assert await a.closed_code() == 1001
            await server.aclose()
            assert await b.closed_code() == 1001
            # A closed hub answers its routes with 503; the host app carries on.
            async with httpx.AsyncClient() as http:
                r = await http.get(f"http://127.0.0.1:{port}/fh/streams")
                assert r.status_code == 503, r.text
                assert (await http.get(f"http://127.0.0.1:{port}/hello")).status_code == 200
    finally:
        await server.aclose()

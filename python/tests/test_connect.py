"""Issue 15: a Python program publishes into a running hub with
``framehub.connect`` (asyncio) and ``framehub.sync.connect``; a viewer on
the hub sees its picture, and its events reach the program."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

import framehub
import framehub.sync as fhs
from helpers import decode_image, open_viewer, refused_code


async def test_a_connected_publisher_is_viewed_and_driven() -> None:
    hub = await framehub.serve_server(port=0)
    try:
        display = await framehub.connect(f"ws://127.0.0.1:{hub.port}", "cam", 64, 48)
        assert hub.streams == ["cam"]
        assert display.url == f"http://127.0.0.1:{hub.port}/cam"
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[..., 0] = 200
        frame[..., 2] = 40
        viewer = await open_viewer(f"ws://127.0.0.1:{hub.port}/cam")
        for _ in range(100):
            display.publish(frame)
            try:
                header, payload = await asyncio.wait_for(viewer.frame(), 0.2)
                break
            except asyncio.TimeoutError:
                continue
        else:
            raise AssertionError("no frame reached the hub's viewer")
        mean = decode_image(payload).reshape(-1, 3).mean(0)
        assert abs(mean[0] - 200) < 10 and abs(mean[2] - 40) < 10
        await viewer.ack(header["seq"])

        await viewer.send_event({"type": "pointer_down", "x": 5.0, "y": 6.0, "button": 1})
        ev = await asyncio.wait_for(display.events().__anext__(), 5)
        assert ev.client_id == viewer.session
        assert (ev.event["x"], ev.event["y"]) == (5.0, 6.0)

        # A second publisher of the same name is refused.
        with pytest.raises(framehub.StreamExistsError, match="4409"):
            await framehub.connect(f"ws://127.0.0.1:{hub.port}", "cam", 64, 48)
        await display.aclose()
    finally:
        await hub.aclose()


def test_the_sync_api_connects_too() -> None:
    hub = fhs.serve_server(port=0)
    try:
        display = fhs.connect(f"ws://127.0.0.1:{hub.port}", "sync", 32, 32)
        deadline = time.monotonic() + 5
        while "sync" not in hub.streams:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        display.publish(np.full((32, 32, 4), 128, np.uint8))
        display.close()
    finally:
        hub.close()


async def test_an_unreachable_hub_and_a_bad_url_raise() -> None:
    with pytest.raises(OSError):
        await framehub.connect("ws://127.0.0.1:9", "cam", 64, 48)
    with pytest.raises(ValueError):
        await framehub.connect("127.0.0.1:9", "cam", 64, 48)
    with pytest.raises(framehub.InvalidNameError):
        await framehub.connect("ws://127.0.0.1:9", "_bad", 64, 48)


async def test_after_close_the_stream_goes_offline_and_its_viewer_is_told() -> None:
    hub = await framehub.serve_server(port=0)
    try:
        display = await framehub.connect(f"ws://127.0.0.1:{hub.port}", "cam", 64, 48)
        viewer = await open_viewer(f"ws://127.0.0.1:{hub.port}/cam")
        await display.aclose()
        async def status() -> dict[str, object]:
            while True:
                msg = await viewer.ws.recv()
                if isinstance(msg, str) and json.loads(msg).get("type") == "status":
                    return dict(json.loads(msg))

        assert (await asyncio.wait_for(status(), 5))["publisher"] == "offline"
        assert await refused_code(f"ws://127.0.0.1:{hub.port}/nope") == 4404
    finally:
        await hub.aclose()


async def test_the_lifecycle_tells_of_a_publisher_and_its_viewer() -> None:
    hub = await framehub.serve_server(port=0)
    try:
        events = hub.lifecycle()
        display = await framehub.connect(f"ws://127.0.0.1:{hub.port}", "cam", 64, 48)
        viewer = await open_viewer(f"ws://127.0.0.1:{hub.port}/cam")
        seen = []
        async with asyncio.timeout(5):
            async for ev in events:
                assert ev["stream"] == "cam"
                seen.append(ev["type"])
                if ev["type"] == "viewer.joined":
                    assert ev["client_id"] == viewer.session and ev["viewers"] == 1
                    break
        assert seen == ["stream.created", "publisher.online", "viewer.joined"]
        await display.aclose()
    finally:
        await hub.aclose()
    # Once the hub is closed, the iteration ends.
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(events.__anext__(), 5)

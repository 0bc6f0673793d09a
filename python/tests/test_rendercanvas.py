"""framehub.rendercanvas: a rendercanvas bitmap-context program (no GPU)
publishing through a framehub stream to a WebSocket viewer, its draws paced
by the viewers' demand, the viewer's events arriving at the canvas's handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rendercanvas")

import framehub
from framehub.rendercanvas import RenderCanvas, loop, to_rendercanvas_event
from helpers import decode_image, open_viewer

W, H = 160, 120


def test_event_conversion() -> None:
    ev = {"type": "pointer_down", "x": 20.0, "y": 10.0, "button": 1, "buttons": [1],
          "modifiers": ["Shift"], "inside": True, "pixel_ratio": 1.0, "timestamp": 2.5}
    rc = to_rendercanvas_event(ev, pixel_ratio=2.0)
    assert rc is not None
    assert rc["event_type"] == "pointer_down" and rc["time_stamp"] == 2.5
    assert (rc["x"], rc["y"]) == (10.0, 5.0)
    assert rc["buttons"] == (1,) and rc["modifiers"] == ("Shift",)
    assert "type" not in rc and "timestamp" not in rc
    assert to_rendercanvas_event({"event_type": "resize", "width": 3, "height": 4}) is None
    key = to_rendercanvas_event({"event_type": "key_down", "key": "a", "code": "KeyA", "modifiers": [], "time_stamp": 1.0})
    assert key == {"event_type": "key_down", "key": "a", "code": "KeyA", "modifiers": (), "time_stamp": 1.0}


async def test_bitmap_canvas_streams_to_a_viewer_paced_by_demand_and_gets_its_events() -> None:
    display = await framehub.serve(W, H, port=0)
    canvas = RenderCanvas(display=display, size=(W, H), update_mode="continuous", max_fps=120)
    ctx = canvas.get_bitmap_context()
    draws = 0
    got: list[dict[str, Any]] = []

    @canvas.request_draw
    def draw() -> None:
        nonlocal draws
        draws += 1
        w, h = canvas.get_physical_size()
        frame = np.zeros((h, w, 4), np.uint8)
        frame[..., 0] = 200
        frame[..., 1] = min(255, draws)  # changes every draw
        frame[..., 3] = 255
        ctx.set_bitmap(frame)

    canvas.add_event_handler(lambda e: got.append(dict(e)), "pointer_down", "wheel", "key_down")
    try:
        # Nobody views: nothing is rendered.
        await asyncio.sleep(0.5)
        assert draws == 0 and canvas.frames_published == 0

        viewer = await open_viewer(display.ws_url)
        header, payload = await viewer.frame()
        assert (header["width"], header["height"]) == (W, H)
        px = decode_image(payload)[H // 2, W // 2]
        assert abs(int(px[0]) - 200) < 16, px

        # Frames keep coming while the viewer acks; draws follow demand.
        for _ in range(5):
            await viewer.ack(header["seq"])
            header, _ = await viewer.frame()
        assert draws >= 3

        await viewer.send_event({"event_type": "pointer_down", "x": 40, "y": 30, "button": 1,
                                 "buttons": [1], "modifiers": [], "timestamp": 1.0})
        await viewer.send_event({"event_type": "wheel", "x": 80, "y": 60, "dx": 0, "dy": 32,
                                 "buttons": [], "modifiers": ["Control"], "timestamp": 1.1})
        await viewer.send_event({"event_type": "key_down", "key": "q", "code": "KeyQ",
                                 "modifiers": [], "timestamp": 1.2})
        await viewer.ack(header["seq"])
        for _ in range(200):
            if len(got) >= 3:
                break
            await asyncio.sleep(0.02)
        kinds = [e["event_type"] for e in got]
        assert kinds == ["pointer_down", "wheel", "key_down"], got
        assert (got[0]["x"], got[0]["y"], got[0]["button"]) == (40.0, 30.0, 1)
        assert got[1]["dy"] == 32.0 and got[1]["modifiers"] == ("Control",)
        assert got[2]["key"] == "q"

        # The viewer leaves: drawing stops.
        await viewer.close()
        for _ in range(100):
            if display.client_count == 0:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        before = draws
        await asyncio.sleep(0.5)
        assert draws <= before + 1, (before, draws)
    finally:
        canvas.close()
        loop.stop()
        await display.aclose()


async def test_controller_policy_follows_the_viewport() -> None:
    display = await framehub.serve(W, H, port=0, input="first")
    canvas = RenderCanvas(display=display, resize_policy="controller", update_mode="continuous")
    ctx = canvas.get_bitmap_context()

    @canvas.request_draw
    def draw() -> None:
        w, h = canvas.get_physical_size()
        ctx.set_bitmap(np.full((h, w, 4), 90, np.uint8))

    try:
        viewer = await open_viewer(display.ws_url)
        await viewer.ws.send('{"type":"set_viewport","width":100,"height":50,"pwidth":200,"pheight":100,"ratio":2}')
        for _ in range(100):
            header, _ = await viewer.frame()
            await viewer.ack(header["seq"])
            if (header["width"], header["height"]) == (200, 100):
                break
        assert (header["width"], header["height"]) == (200, 100)
        assert canvas.get_logical_size() == (100.0, 50.0)
        assert canvas.get_pixel_ratio() == 2.0
        await viewer.close()
    finally:
        canvas.close()
        loop.stop()
        await display.aclose()


def _wgpu_adapter() -> bool:
    try:
        import pygfx  # noqa: F401
        import wgpu
    except ModuleNotFoundError:
        return False
    try:
        return wgpu.gpu.request_adapter_sync(power_preference="high-performance") is not None
    except Exception:
        return False


@pytest.mark.skipif(not _wgpu_adapter(), reason="pygfx/wgpu not installed or wgpu has no adapter (apt install mesa-vulkan-drivers)")
async def test_pygfx_cube_example_streams_through_the_backend() -> None:
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "pygfx_cube.py"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(example), "--port", "0", "--seconds", "20", "--width", "320", "--height", "240",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        url = line.split("WebSocket ")[1].rstrip(")\n")
        viewer = await open_viewer(url)
        header, payload = await viewer.frame(timeout=30)
        assert (header["width"], header["height"]) == (320, 240)
        img = decode_image(payload)
        centre, corner = img[120, 160].astype(int), img[5, 5].astype(int)
        assert abs(corner - (0x20, 0x24, 0x28)).max() < 16, corner  # the background
        assert centre[2] > centre[0] + 40, centre  # the blue cube
        # A drag (the orbit controller takes it) and more frames.
        for ev in ({"event_type": "pointer_down", "x": 100, "y": 100, "button": 1, "buttons": [1]},
                   {"event_type": "pointer_move", "x": 160, "y": 110, "button": 0, "buttons": [1]},
                   {"event_type": "pointer_up", "x": 160, "y": 110, "button": 1, "buttons": []}):
            await viewer.send_event({**ev, "modifiers": [], "timestamp": 1.0})
        for _ in range(2):
            await viewer.ack(header["seq"])
            header, payload = await viewer.frame(timeout=30)
        await viewer.close()
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert b"Traceback" not in err, err.decode()

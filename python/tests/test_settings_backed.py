"""pdum.rfb settings the Rust hub implements: has_h264, bitrate, still_after, adaptive."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np

import framehub
from helpers import Viewer, open_viewer, solid


async def test_has_h264_offers_webcodecs_and_sends_annexb_keyframes() -> None:
    display = await framehub.serve(320, 240, port=0, has_h264=True, bitrate=1_000_000)
    try:
        video = await open_viewer(display.ws_url, supported=("webcodecs/h264-annexb", "image/jpeg"))
        assert video.config["transport"] == "webcodecs"
        assert video.config["codec"].startswith("avc1.42")
        image = await open_viewer(display.ws_url)  # a JPEG-only viewer of the same stream
        assert image.config["transport"] == "image"
        rng = np.random.default_rng(1)
        display.publish(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        header, payload = await video.frame()
        assert header["type"] == "video_chunk"
        assert header["keyframe"] is True and header["bitstream"] == "annexb"
        assert header["codec"].startswith("avc1.")
        assert payload[:4] == b"\x00\x00\x00\x01" or payload[:3] == b"\x00\x00\x01"
        h2, p2 = await image.frame()
        assert h2["type"] == "image_frame" and p2[:2] == b"\xff\xd8"
        await video.close()
        await image.close()
    finally:
        await display.aclose()


async def test_h264_off_by_default_and_with_none() -> None:
    for kwargs in ({}, {"has_h264": None}, {"has_h264": False}):
        display = await framehub.serve(64, 64, port=0, **kwargs)
        try:
            v = await open_viewer(display.ws_url, supported=("webcodecs/h264-annexb", "image/jpeg"))
            assert v.config["transport"] == "image"
            await v.close()
        finally:
            await display.aclose()


async def test_still_after_sends_a_lossless_still_once_the_picture_rests() -> None:
    display = await framehub.serve(64, 48, port=0, still_after=0.1)
    try:
        viewer = await open_viewer(display.ws_url, supported=("image/jpeg", "image/png"))
        display.publish(solid(48, 64, (90, 10, 200)))
        first, _ = await viewer.frame()
        assert first["mime"] == "image/jpeg" and not first.get("still")
        await viewer.ack(first["seq"])
        still, payload = await viewer.frame()
        assert still["still"] is True and still["mime"] == "image/png"
        assert payload[:8] == b"\x89PNG\r\n\x1a\n"
        await viewer.close()
    finally:
        await display.aclose()


async def test_still_after_none_sends_no_still() -> None:
    display = await framehub.serve(64, 48, port=0, still_after=None)
    try:
        viewer = await open_viewer(display.ws_url, supported=("image/jpeg", "image/png"))
        display.publish(solid(48, 64, (90, 10, 200)))
        first, _ = await viewer.frame()
        await viewer.ack(first["seq"])
        try:
            extra, _ = await viewer.frame(timeout=0.8)
        except TimeoutError:
            extra = None
        assert extra is None
        await viewer.close()
    finally:
        await display.aclose()


async def test_bitrate_and_still_after_values_are_checked() -> None:
    import pytest

    with pytest.raises(ValueError, match="bitrate"):
        await framehub.serve(8, 8, port=0, bitrate=5)
    with pytest.raises(TypeError, match="still_after must be a number"):
        await framehub.serve(8, 8, port=0, still_after="soon")
    with pytest.raises(TypeError, match="has_h264 must be a bool"):
        await framehub.serve(8, 8, port=0, has_h264="yes")
    assert "has_h264" in framehub.STREAM_SETTINGS


async def test_adaptive_steps_a_congested_viewer_down_and_leaves_others() -> None:
    # Two streams on one hub, the same viewer behaviour on each: it acks
    # every frame reporting a decode queue of 3 (a congested client). With
    # adaptive=True the hub moves it one tier down after ~1 s (quality 60,
    # told with set_quality; its tier shows in metrics); without, nothing.
    server = await framehub.serve_server(port=0)
    try:
        adaptive = server.add_stream("adaptive", 64, 48, adaptive=True, still_after=None)
        fixed = server.add_stream("fixed", 64, 48, adaptive=False, still_after=None)
        viewers = {
            "adaptive": await open_viewer(adaptive.ws_url),
            "fixed": await open_viewer(fixed.ws_url),
        }
        rng = np.random.default_rng(2)

        async def publish() -> None:
            while True:
                frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                adaptive.publish(frame)
                fixed.publish(frame)
                await asyncio.sleep(1 / 60)

        async def view(v: Viewer, seconds: float) -> list[dict[str, object]]:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    header, _ = await v.frame(timeout=max(0.05, deadline - time.monotonic()))
                except TimeoutError:
                    break
                await v.ws.send(json.dumps({"type": "ack", "seq": header["seq"], "decode_queue_size": 3}))
            return [t for t in v.texts if t.get("type") == "set_quality"]

        publisher = asyncio.ensure_future(publish())
        try:
            moved, unmoved = await asyncio.gather(view(viewers["adaptive"], 3.0), view(viewers["fixed"], 3.0))
        finally:
            publisher.cancel()
        assert moved, "the congested viewer of the adaptive stream was not moved"
        assert moved[0]["tier"] == 1 and moved[0]["quality"] == 60 and moved[0]["scale"] == 1
        # (a later step may have been sent as the window closed, not yet read)
        [tier] = [m["tier"] for m in adaptive.metrics()]
        assert tier >= moved[-1]["tier"] >= 1
        assert not [m for m in unmoved if "tier" in m], unmoved
        assert [m.get("tier", 0) for m in fixed.metrics()] == [0]
    finally:
        await server.aclose()

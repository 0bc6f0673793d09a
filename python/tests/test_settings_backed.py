"""pdum.rfb settings the Rust hub implements: has_h264, bitrate, still_after."""

from __future__ import annotations

import numpy as np

import framehub
from helpers import open_viewer, solid


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

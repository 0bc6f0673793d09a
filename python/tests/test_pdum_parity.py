"""pdum.rfb 0.3.0's names that a typical program uses, on framehub
(docs/pdum-parity.md): keyword aliases, keywords accepted where framehub
already behaves as asked, the exception types, the Display attributes and
publish keywords, and DownscaleHint."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import framehub
import framehub as rfb  # as a moved pdum.rfb program spells it
from helpers import decode_image, open_viewer, wait_events


async def test_event_log_and_event_queue_size_are_pdum_names_of_record_file_and_event_queue(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    display = await rfb.serve(64, 48, port=0, event_log=str(log), event_queue_size=2)
    try:
        viewer = await open_viewer(display.ws_url)
        for x in range(5):
            await viewer.send_event({"type": "pointer_move", "x": x, "y": 1, "timestamp": 1.0 + x})
        deadline = time.monotonic() + 10
        while display.events_dropped < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        # The bound is 2: the oldest three were dropped and counted.
        assert display.events_dropped == 3
        assert [ev.event["x"] for ev in display.poll_events()] == [3.0, 4.0]
        # Every event was appended to the log (the hub's serde form).
        while len(log.read_text().splitlines() if log.exists() else []) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [(e["event"]["event_type"], e["event"]["x"]) for e in lines] == [
            ("pointer_move", float(x)) for x in range(5)
        ], lines
        await viewer.close()
    finally:
        await display.aclose()


async def test_a_pdum_name_and_its_framehub_name_together_are_refused() -> None:
    server = await rfb.serve_server(port=0)
    try:
        with pytest.raises(TypeError, match="both 'event_queue_size' and 'event_queue'"):
            server.add_stream("a", 8, 8, event_queue_size=4, event_queue=4)
        with pytest.raises(TypeError, match="both 'event_log' and 'record_file'"):
            server.add_stream("a", 8, 8, event_log="x", record_file="y")
        assert server.streams == []
    finally:
        await server.aclose()


async def test_pdum_keywords_framehub_already_honours_are_accepted() -> None:
    server = await rfb.serve_server(port=0)
    try:
        d = server.add_stream(
            "cam",
            32,
            16,
            own_frames=True,
            has_nvenc=None,
            gpu=False,
            encode_pipeline_depth=2,
            resize_policy="publisher",
        )
        # own_frames: publish() copied the frame, so mutating the buffer
        # right after it returned does not change what viewers get.
        frame = np.zeros((16, 32, 3), np.uint8)
        frame[:] = (200, 40, 40)
        d.publish(frame)
        frame[:] = (0, 0, 255)
        viewer = await open_viewer(d.ws_url)
        _, payload = await viewer.frame()
        mean = decode_image(payload).reshape(-1, 3).mean(0)
        assert abs(mean[0] - 200) < 12 and abs(mean[2] - 40) < 12, mean
        await viewer.close()

        for bad, exc, msg in [
            ({"has_nvenc": True}, NotImplementedError, "NVENC"),
            ({"resize_policy": "match_client"}, NotImplementedError, "match_client"),
            ({"own_frames": "yes"}, TypeError, "own_frames must be a bool"),
            ({"encode_pipeline_depth": -1}, ValueError, ">= 0"),
            ({"encode_pipeline_depth": 1.5}, TypeError, "must be an int"),
            ({"max_render_dimension": 1024}, TypeError, "unexpected keyword argument 'max_render_dimension'"),
        ]:
            with pytest.raises(exc, match=msg):
                server.add_stream("bad", 8, 8, **bad)
        assert server.streams == ["cam"]
    finally:
        await server.aclose()


async def test_the_exceptions_pdum_programs_catch() -> None:
    server = await rfb.serve_server(port=0)
    try:
        server.add_stream("cam", 8, 8)
        # pdum.rfb: a taken name is a ValueError, an unknown stream a KeyError.
        with pytest.raises(ValueError, match="cam"):
            server.add_stream("cam", 8, 8)
        with pytest.raises(KeyError) as err:
            server.stream("nope")
        assert str(err.value) == "no stream named 'nope'"
        assert isinstance(err.value, framehub.UnknownStreamError)
    finally:
        await server.aclose()


async def test_display_attributes_and_publish_keywords_of_pdum() -> None:
    display = await rfb.serve(32, 16, port=0)
    try:
        # pdum.rfb's values under resize_policy="publisher" with sRGB frames.
        assert display.target_size is None and display.target_ratio == 1.0
        assert display.pixel_ratio == 1.0 and display.color is None
        srgb = {"primaries": "bt709", "transfer": "srgb", "matrix": "rgb", "full_range": True, "bit_depth": 8}
        frame = np.full((16, 32, 3), 90, np.uint8)
        display.publish(frame, pixel_ratio=1.0, color=srgb)
        display.publish(frame, pixel_ratio=None, color=SimpleNamespace(**srgb))
        display.publish(frame, color={"primaries": "bt709"})  # the rest default to sRGB's
        with pytest.raises(NotImplementedError, match="pixel_ratio=2"):
            display.publish(frame, pixel_ratio=2.0)
        with pytest.raises(NotImplementedError, match="sRGB"):
            display.publish(frame, color=dict(srgb, primaries="display-p3"))
        viewer = await open_viewer(display.ws_url)
        header, _ = await viewer.frame()
        assert (header["width"], header["height"]) == (32, 16)
        await viewer.close()
    finally:
        await display.aclose()


def test_downscale_events_come_as_downscale_hints_in_the_pdum_shape() -> None:
    display = framehub.sync.serve(640, 480, port=0)
    try:

        def native(event: dict[str, Any], received_us: int) -> Any:
            # Stand-ins for the extension's InputEvent (the hub makes
            # downscale events only under adaptive congestion).
            return SimpleNamespace(event=event, received_us=received_us)

        move = native({"type": "pointer_move", "x": 1.0, "y": 2.0}, 5)
        half = native({"type": "downscale", "width": 320, "height": 240}, 7)
        full = native({"type": "downscale", "width": 640, "height": 480}, 9)
        out = display._deliver([move, half, full])
        assert out[0] is move
        assert out[1] == framehub.DownscaleHint(scale=0.5, width=320, height=240, received_us=7)
        assert out[2] == framehub.DownscaleHint(scale=1.0, width=640, height=480, received_us=9)
        assert isinstance(out[1], rfb.DownscaleHint)
    finally:
        display.close()
    rv = framehub.sync.serve(640, 480, port=0, event_shape="renderview")
    try:
        kept = SimpleNamespace(event={"event_type": "downscale", "width": 320, "height": 240}, received_us=1)
        assert rv._deliver([kept]) == [kept]
    finally:
        rv.close()

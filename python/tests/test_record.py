"""MP4 recording: ``display.record(path)`` (async and sync), read back with
``ffprobe`` (Debian's ``ffmpeg``; ``scripts/setup`` installs it)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import framehub
import framehub.sync as fhs


def ffprobe(path: Path) -> dict[str, Any]:
    """The file's format and its one video stream, as ffprobe reads them."""
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.fail("ffprobe is missing: install Debian's `ffmpeg` package (scripts/setup does)")
    out = subprocess.run(
        [exe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert len(info["streams"]) == 1, info
    return {
        "codec": info["streams"][0]["codec_name"],
        "width": info["streams"][0]["width"],
        "height": info["streams"][0]["height"],
        "duration": float(info["format"]["duration"]),
    }


def picture(w: int, h: int, i: int) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2 :] = (0, 0, 255)
    x = (i * 8) % w
    a[:16, x : x + 16] = 128
    return a


async def test_async_record_plays_at_the_pace_published(tmp_path: Path) -> None:
    display = await framehub.serve(320, 240, port=0)
    path = tmp_path / "async.mp4"
    try:
        started = time.monotonic()
        async with display.record(path) as rec:
            assert rec.path == path
            i = 0
            # 1 s of pictures at 30 fps, a 1 s pause, 0.5 s more.
            for seconds, pause in ((1.0, 1.0), (0.5, 0.0)):
                t0 = time.monotonic()
                while time.monotonic() - t0 < seconds:
                    display.publish(picture(320, 240, i))
                    i += 1
                    await asyncio.sleep(1 / 30)
                await asyncio.sleep(pause)
        wall = time.monotonic() - started
        stats = await rec.stop()  # idempotent: the same as on exit
        assert rec.finished
        assert stats["frames"] >= i - 2, (stats, i)
        assert rec.frames_written == stats["frames"]
        assert stats["dropped"] == 0
        probe = ffprobe(path)
        assert (probe["codec"], probe["width"], probe["height"]) == ("h264", 320, 240)
        assert abs(probe["duration"] - wall) <= 0.05 * wall, (probe, wall)
        assert abs(stats["duration"] - probe["duration"]) < 0.05, (stats, probe)
    finally:
        await display.aclose()


def test_sync_record_and_its_errors(tmp_path: Path) -> None:
    display = fhs.serve(160, 120, port=0)
    try:
        path = tmp_path / "sync.mp4"
        with display.record(str(path), fps=30, preset="veryfast") as rec:
            for i in range(20):
                display.publish(picture(160, 120, i))
                time.sleep(1 / 30)
        stats = rec.stop()
        assert stats["frames"] >= 18, stats
        assert stats["bytes"] == path.stat().st_size
        assert "frames" in repr(rec)
        probe = ffprobe(path)
        assert (probe["codec"], probe["width"], probe["height"]) == ("h264", 160, 120)

        with pytest.raises(NotImplementedError, match="bitrate"):
            display.record(tmp_path / "x.mp4", bitrate=1_000_000)
        with pytest.raises(OSError):
            display.record(tmp_path / "no-such-dir" / "x.mp4")
        with pytest.raises(ValueError, match="fragment_duration"):
            display.record(tmp_path / "y.mp4", fragment_duration=0)
    finally:
        display.close()


def test_pdum_recording_module_names() -> None:
    from framehub.recording import Recording, recording_available

    assert recording_available() is True
    from framehub._aio import Recording as AioRecording

    assert Recording is AioRecording

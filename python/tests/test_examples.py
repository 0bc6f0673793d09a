"""Smoke runs of python/examples/ (each runs a few seconds, then exits cleanly)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import open_viewer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, seconds: float = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--port", "0", "--seconds", str(seconds), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["gradient.py", "matplotlib_live.py"])
def test_example_runs_and_exits_cleanly(name: str) -> None:
    r = run_example(name)
    assert r.returncode == 0, r.stderr
    assert "ws://127.0.0.1:" in r.stdout
    assert "Traceback" not in r.stderr


def test_two_streams_runs_and_prints_the_listing() -> None:
    r = run_example("two_streams.py")
    assert r.returncode == 0, r.stderr
    assert "ws://127.0.0.1:" in r.stdout and "Traceback" not in r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("["))
    names = {s["name"] for s in json.loads(line)}
    assert names == {"camera", "depth"}


async def test_matplotlib_example_pans_and_zooms_from_browser_events() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "matplotlib_live.py"),
        "--port",
        "0",
        "--seconds",
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "the example exited early"
            m = re.search(r"ws://[^\s)]+", line)
            url = m.group(0) if m else None
        viewer = await open_viewer(url)
        header, payload = await viewer.frame()
        assert header["width"] == 640 and header["height"] == 480
        await viewer.send_event({"type": "wheel", "x": 320, "y": 240, "dx": 0, "dy": -200})
        await viewer.send_event({"type": "pointer_down", "x": 300, "y": 200, "button": 1, "buttons": [1]})
        await viewer.send_event({"event_type": "pointer_move", "x": 350, "y": 220, "buttons": [1]})
        await viewer.send_event({"event_type": "pointer_up", "x": 350, "y": 220, "button": 1})
        await viewer.close()
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "zoom" in text and "pan" in text, text


def test_publish_benchmark_smoke_run() -> None:
    # A tiny, short run of python/bench/publish_bench.py (its Python viewer):
    # it must run to the end and print its JSON line. No figure is judged.
    bench = EXAMPLES.parent / "bench" / "publish_bench.py"
    r = subprocess.run(
        [sys.executable, str(bench), "--width", "64", "--height", "48", "--seconds", "1", "--framehub", "none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["viewer"] == "python websockets"
    assert out["publish_calls"] > 0 and out["delivered_fps"] > 0
    assert out["mean_frame_bytes"] > 0

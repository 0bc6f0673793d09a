"""Issue #7's "Done when": a pdum.rfb program runs on framehub with only its
import changed (`import framehub as rfb`), using serve, serve_server,
add_stream, publish, poll_events and aclose. The program
(programs/pdum_rfb_program.py) runs as its own process; this test is its
viewer: it receives frames, sends an event the program must print, checks
the REST listing and 4404, and waits for a clean exit."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from helpers import decode_image, open_viewer, refused_code

PROGRAM = Path(__file__).resolve().parent / "programs" / "pdum_rfb_program.py"


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


async def test_a_pdum_rfb_program_runs_with_only_its_import_changed() -> None:
    assert "import framehub as rfb  # was: import pdum.rfb as rfb" in PROGRAM.read_text()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        # A crash prints every thread's Python stack to stderr (shown on failure).
        "-X",
        "faulthandler",
        str(PROGRAM),
        "--port",
        "0",
        "--seconds",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None

    async def line() -> dict[str, Any]:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
        assert raw, "the program ended early: " + (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        out: dict[str, Any] = json.loads(raw)
        return out

    try:
        # Phase 1: serve_server + two add_stream'd streams.
        multi = await line()
        assert multi["phase"] == "multi" and multi["port"] > 0
        port = multi["port"]
        assert multi["camera"] == f"ws://127.0.0.1:{port}/camera"
        listing = {s["name"]: s for s in http_json(f"http://127.0.0.1:{port}/streams")}
        assert set(listing) == {"camera", "depth"}
        assert (listing["camera"]["width"], listing["camera"]["height"]) == (1280, 720)
        assert (listing["depth"]["width"], listing["depth"]["height"]) == (640, 480)
        assert await refused_code(f"ws://127.0.0.1:{port}/nope") == 4404

        depth = await open_viewer(multi["depth"])
        header, payload = await depth.frame()
        assert (header["width"], header["height"]) == (640, 480)
        # RGBA (t % 256, 30, 200, 255): the blue and green are the program's.
        mean = decode_image(payload).reshape(-1, 3).mean(0)
        assert abs(mean[1] - 30) < 10 and abs(mean[2] - 200) < 10
        await depth.ack(header["seq"])
        camera = await open_viewer(multi["camera"])
        header, _ = await camera.frame()
        assert (header["width"], header["height"]) == (1280, 720)
        await camera.ack(header["seq"])

        # A drag as pdum.rfb's widget.js sends it: the kind under "type", the time under "timestamp".
        drag = [
            {"type": "pointer_down", "x": 10.0, "y": 20.0, "button": 1, "buttons": [1], "modifiers": [], "timestamp": 4.0},
            {"type": "pointer_move", "x": 30.0, "y": 25.0, "button": 0, "buttons": [1], "modifiers": [], "timestamp": 4.1},
            {"type": "pointer_up", "x": 50.0, "y": 30.0, "button": 1, "buttons": [], "modifiers": [], "timestamp": 4.2},
        ]
        for ev in drag:
            await camera.send_event(ev)
        got = [await line() for _ in drag]
        for sent, printed in zip(drag, got):
            assert printed["stream"] == "camera+depth"
            assert printed["client_id"] == camera.session
            assert printed["principal"] is None and printed["received_us"] >= 0
            # What the program read with ev.event.get("type") / .get("timestamp").
            assert (printed["type"], printed["timestamp"]) == (sent["type"], sent["timestamp"])
            assert {k: printed["event"][k] for k in sent} == sent
            assert "event_type" not in printed["event"]
        assert [g["drag"] for g in got] == [None, None, [10.0, 20.0, 50.0, 30.0]]
        # server.aclose() disconnects every viewer.
        assert await camera.closed_code() is not None
        assert await depth.closed_code() is not None

        # Phase 2: the one-liner serve() + display.server.add_stream().
        single = await line()
        assert single["phase"] == "single"
        port = single["port"]
        names = {s["name"] for s in http_json(f"http://127.0.0.1:{port}/streams")}
        assert names == {"default", "overview"}
        # A viewer with no path lands on "default".
        viewer = await open_viewer(f"ws://127.0.0.1:{port}/")
        assert viewer.config["stream"] == "default"
        header, payload = await viewer.frame()
        assert (header["width"], header["height"]) == (320, 240)
        await viewer.ack(header["seq"])
        await viewer.send_event({"type": "key_down", "key": "a", "code": "KeyA", "modifiers": [], "timestamp": 9.5})
        got = await line()
        assert got["stream"] == "default" and got["type"] == "key_down"
        assert got["event"] == {"type": "key_down", "key": "a", "code": "KeyA", "modifiers": [], "timestamp": 9.5}
        assert await viewer.closed_code() is not None  # display.aclose() closed the hub

        assert (await line())["phase"] == "done"
        code = await asyncio.wait_for(proc.wait(), 30)
        stderr = (await proc.stderr.read()).decode()
        assert code == 0, f"the program exited with {code}; its stderr:\n{stderr}"
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

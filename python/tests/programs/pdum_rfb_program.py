"""A program written against pdum.rfb's documented API, moved over to
framehub by changing only its import (the "Done when" of issue #7).

Phase 1 is pdum.rfb's multi-stream example (serve_server, add_stream,
poll_events, publish, aclose); phase 2 its one-liner (serve, the default
stream, display.server.add_stream, display.aclose). Each phase prints its
hub's URLs as a JSON line, publishes until the viewer finished a drag
(phase 1) or pressed a key (phase 2), or ``--seconds`` passed, prints each
event as a JSON line, then closes. It reads events as pdum.rfb's own
demos do (``demos.py``: ``et = event.get("type")``): the kind under
``"type"``, the time under ``"timestamp"``.
Run by python/tests/test_pdum_rfb_program.py, which is the viewer.
"""

import argparse
import asyncio
import json
import time

import numpy as np

import framehub as rfb  # was: import pdum.rfb as rfb


def render_camera(t: int) -> np.ndarray:
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[..., 0] = (np.arange(1280) + 4 * t) % 256
    frame[..., 1] = 80
    return frame


def render_depth(t: int) -> np.ndarray:
    frame = np.empty((480, 640, 4), np.uint8)
    frame[...] = (t % 256, 30, 200, 255)
    return frame


class Drag:
    """Follows a drag the way pdum.rfb's DrawDemo reads events."""

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None
        self.done: list[float] | None = None

    def on_event(self, event: dict) -> None:
        et = event.get("type")
        if et == "pointer_down":
            self.start = (event.get("x", 0), event.get("y", 0))
        elif et == "pointer_up" and self.start is not None:
            self.done = [*self.start, event.get("x", 0), event.get("y", 0)]
            self.start = None


def report(stream: str, ev: "rfb.InputEvent", **extra: object) -> None:
    print(
        json.dumps(
            {
                "stream": stream,
                "client_id": ev.client_id,
                "principal": ev.principal,
                "received_us": ev.received_us,
                "type": ev.event.get("type"),
                "timestamp": ev.event.get("timestamp"),
                "event": ev.event,
                **extra,
            }
        ),
        flush=True,
    )


async def multi_stream(port: int, seconds: float) -> None:
    server = await rfb.serve_server(port=port)
    camera = server.add_stream("camera", 1280, 720)  # ws://host:port/camera
    depth = server.add_stream("depth", 640, 480, has_h264=False)  # ws://host:port/depth
    urls = {"camera": camera.ws_url, "depth": depth.ws_url}
    print(json.dumps({"phase": "multi", "port": server.port, **urls}), flush=True)
    deadline = time.monotonic() + seconds
    drag = Drag()
    t = 0
    while drag.done is None and time.monotonic() < deadline:
        for ev in camera.poll_events() + depth.poll_events():
            drag.on_event(ev.event)
            report("camera+depth", ev, drag=drag.done)
        camera.publish(render_camera(t))
        depth.publish(render_depth(t))
        t += 1
        await asyncio.sleep(1 / 30)
    await server.aclose()  # stops the listener and disconnects every viewer


async def one_liner(port: int, seconds: float) -> None:
    display = await rfb.serve(320, 240, port=port)  # the "default" stream
    overview = display.server.add_stream("overview", 160, 120)
    print(json.dumps({"phase": "single", "port": display.port, "default": display.ws_url}), flush=True)
    deadline = time.monotonic() + seconds
    key = None
    frame = np.zeros((240, 320, 3), np.uint8)
    small = np.zeros((120, 160, 3), np.uint8)
    while key is None and time.monotonic() < deadline:
        for ev in display.poll_events():
            if ev.event.get("type") == "key_down":
                key = ev.event.get("key")
            report("default", ev)
        frame[...] = (0, 120, 255)
        display.publish(frame)
        overview.publish(small)
        await asyncio.sleep(1 / 30)
    await display.aclose()  # tears down the whole hub


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seconds", type=float, default=30)
    args = p.parse_args()
    await multi_stream(args.port, args.seconds)
    await one_liner(args.port, args.seconds)
    print(json.dumps({"phase": "done"}), flush=True)


asyncio.run(main())

"""A program written against pdum.rfb's documented API, moved over to
framehub by changing only its import (the "Done when" of issue #7).

Phase 1 is pdum.rfb's multi-stream example (serve_server, add_stream,
poll_events, publish, aclose); phase 2 its one-liner (serve, the default
stream, display.server.add_stream, display.aclose). Each phase prints its
hub's URLs as a JSON line, publishes until a viewer's event arrived (or
``--seconds`` passed), prints each event as a JSON line, then closes.
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


def report(stream: str, ev: "rfb.InputEvent") -> None:
    print(
        json.dumps(
            {
                "stream": stream,
                "client_id": ev.client_id,
                "principal": ev.principal,
                "received_us": ev.received_us,
                "event": ev.event,
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
    seen = 0
    t = 0
    while seen == 0 and time.monotonic() < deadline:
        for ev in camera.poll_events() + depth.poll_events():
            seen += 1
            report("camera+depth", ev)
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
    seen = 0
    frame = np.zeros((240, 320, 3), np.uint8)
    small = np.zeros((120, 160, 3), np.uint8)
    while seen == 0 and time.monotonic() < deadline:
        for ev in display.poll_events():
            seen += 1
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

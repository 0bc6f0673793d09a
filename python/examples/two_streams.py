"""Two streams from one port, and the hub's /streams listing.

    python two_streams.py    # http://127.0.0.1:8765/camera and /depth; index at /
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.request

import numpy as np

import framehub


def fetch_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


async def main(args: argparse.Namespace) -> None:
    server = await framehub.serve_server(host=args.host, port=args.port)
    camera = server.add_stream("camera", 640, 360)
    depth = server.add_stream("depth", 320, 240, fps=15)
    for d in (camera, depth):
        print(f"{d.name}: open {d.url} (WebSocket {d.ws_url})", flush=True)

    cam = np.zeros((360, 640, 3), np.uint8)
    yy, xx = np.mgrid[0:240, 0:320]
    listed = False
    t0 = time.monotonic()
    try:
        while args.seconds is None or time.monotonic() - t0 < args.seconds:
            t = time.monotonic() - t0
            # "camera": a bar sweeping across; "depth": rings in grey.
            cam[:] = 30
            x = int((t * 200) % 640)
            cam[:, max(0, x - 20) : x + 20] = (240, 180, 40)
            camera.publish(cam)
            r = np.hypot(xx - 160, yy - 120)
            depth.publish(np.repeat(((np.sin(r / 8 - t * 3) + 1) * 127).astype(np.uint8)[..., None], 3, axis=2))
            for d in (camera, depth):
                for ev in d.poll_events():
                    print(f"{d.name}: {ev.event['type']} from viewer {ev.client_id}", flush=True)
            if not listed and t > 0.5:
                listing = await asyncio.to_thread(fetch_json, server.url("streams"))
                print(json.dumps(listing), flush=True)
                listed = True
            await asyncio.sleep(1 / 30)
    finally:
        await server.aclose()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--seconds", type=float, default=None, help="run this long, then exit")
    return p.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass

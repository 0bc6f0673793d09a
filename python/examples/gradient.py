"""A moving colour gradient published from numpy, with the viewers' events printed.

    python gradient.py                 # then open http://127.0.0.1:8765/
    python gradient.py --port 0 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

import numpy as np

import framehub


async def main(args: argparse.Namespace) -> None:
    w, h = args.width, args.height
    display = await framehub.serve(w, h, host=args.host, port=args.port)
    print(f"open {display.url} in a browser (WebSocket {display.ws_url})", flush=True)
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    frame = np.empty((h, w, 3), np.uint8)
    t0 = time.monotonic()
    frames = 0
    try:
        while args.seconds is None or time.monotonic() - t0 < args.seconds:
            t = time.monotonic() - t0
            frame[..., 0] = ((x + 0.25 * t) % 1.0) * 255
            frame[..., 1] = ((y + 0.15 * t) % 1.0) * 255
            frame[..., 2] = int(128 + 127 * math.sin(t))
            display.publish(frame)  # copied once; returns at once
            frames += 1
            for ev in display.poll_events():
                e = ev.event
                where = f" at ({e['x']:.0f}, {e['y']:.0f})" if "x" in e else ""
                print(f"viewer {ev.client_id}: {e['type']}{where}", flush=True)
            await asyncio.sleep(1 / args.fps)
    finally:
        await display.aclose()
    print(f"published {frames} frames", flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=None, help="run this long, then exit")
    return p.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass

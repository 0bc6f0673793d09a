"""Benchmark of the Python publisher: CPU per publish() and frames delivered.

A Python publisher loop publishes fresh 1280x720 RGB numpy frames into a
framehub stream as fast as it can (yielding to asyncio between frames),
while one WebSocket viewer in a separate process (the ``websockets``
package) receives the frames and acks each at once. Measured:

* around each ``publish()`` call: wall time (``time.perf_counter``), the
  process's CPU time (``time.process_time``: every thread of the process,
  so it includes the hub's encode thread running meanwhile on the other
  core) and the calling thread's CPU time (``time.thread_time``: the
  publisher's own cost); medians (and p90) over every call (at least 1000);
* frames per second the viewer received over the run (``--seconds``, 10);
* for reference, ``numpy.copyto`` of the same frame into a preallocated
  array (the memory-bandwidth floor of a publish that copies the frame).

Prints one JSON line. Run it from a venv with framehub, numpy and websockets:

    python python/bench/publish_bench.py [--seconds 10] [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np


def viewer_main(url: str, seconds: float) -> None:
    """The viewer process: hello, then receive and ack every frame for ``seconds``."""
    import struct

    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None) as ws:
        ws.send(json.dumps({"type": "hello", "supported": ["image/jpeg"]}))
        config = json.loads(ws.recv(timeout=10))
        assert config["type"] == "config", config
        print("ready", flush=True)
        frames = 0
        payload_bytes = 0
        first: float | None = None
        last = 0.0
        end = time.monotonic() + seconds + 10
        while time.monotonic() < end:
            try:
                msg = ws.recv(timeout=1)
            except TimeoutError:
                continue
            if isinstance(msg, str):
                continue
            now = time.monotonic()
            (n,) = struct.unpack_from("<I", msg, 0)
            header = json.loads(msg[4 : 4 + n])
            ws.send(json.dumps({"type": "ack", "seq": header["seq"], "decode_queue_size": 0}))
            if first is None:
                first = now
                end = now + seconds
                continue  # the window starts at the first frame
            frames += 1
            payload_bytes += len(msg) - 4 - n
            last = now
        span = (last - first) if first is not None else 0.0
        print(
            json.dumps(
                {
                    "frames": frames,
                    "seconds": round(span, 3),
                    "fps": round(frames / span, 2) if span > 0 else 0.0,
                    "mean_frame_bytes": round(payload_bytes / frames) if frames else 0,
                }
            ),
            flush=True,
        )


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


async def publisher_main(args: argparse.Namespace) -> dict[str, Any]:
    import framehub

    w, h = args.width, args.height
    display = await framehub.serve(w, h, port=0, quality=args.quality)
    viewer = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--viewer",
        display.ws_url,
        "--seconds",
        str(args.seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert viewer.stdout is not None
    ready = (await asyncio.wait_for(viewer.stdout.readline(), 30)).decode().strip()
    assert ready == "ready", ready

    # Fresh content every frame: a gradient whose colours move, plus a moving bar.
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    base = np.empty((h, w, 3), np.uint8)
    base[..., 0] = x.astype(np.uint8)
    base[..., 1] = y.astype(np.uint8)
    base[..., 2] = 128
    frame = base.copy()

    wall: list[float] = []
    proc: list[float] = []
    thread: list[float] = []
    published_end = time.monotonic() + args.seconds + 1.0
    i = 0
    viewer_done = asyncio.ensure_future(viewer.stdout.readline())
    while (time.monotonic() < published_end and not viewer_done.done()) or len(wall) < args.min_calls:
        # New content (not timed).
        np.copyto(frame, base)
        frame[..., 2] = (i * 7) % 256
        bar = (i * 16) % (w - 32)
        frame[:, bar : bar + 32] = 255
        # Timed: the publish call alone.
        t0, p0, c0 = time.perf_counter(), time.process_time(), time.thread_time()
        display.publish(frame)
        t1, p1, c1 = time.perf_counter(), time.process_time(), time.thread_time()
        wall.append(t1 - t0)
        proc.append(p1 - p0)
        thread.append(c1 - c0)
        i += 1
        await asyncio.sleep(0)
    line = (await asyncio.wait_for(viewer_done, args.seconds + 30)).decode()
    await viewer.wait()
    delivered = json.loads(line)
    await display.aclose()

    # Reference: numpy copying the same frame into a preallocated array (the
    # memory-bandwidth floor of any publish that copies).
    dst = np.empty_like(frame)
    copies = []
    for _ in range(1000):
        t0 = time.perf_counter()
        np.copyto(dst, frame)
        copies.append(time.perf_counter() - t0)

    def us(v: float) -> float:
        return round(v * 1e6, 1)

    return {
        "bench": "python_publish",
        "width": w,
        "height": h,
        "layout": "rgb",
        "jpeg_quality": args.quality,
        "publish_calls": len(wall),
        "publish_wall_us_median": us(statistics.median(wall)),
        "publish_wall_us_p90": us(percentile(wall, 0.9)),
        "publish_thread_cpu_us_median": us(statistics.median(thread)),
        "publish_process_cpu_us_median": us(statistics.median(proc)),
        "publish_calls_per_s": round(len(wall) / (args.seconds + 1.0), 1),
        "numpy_copy_us_median": us(statistics.median(copies)),
        "delivered_fps": delivered["fps"],
        "delivered_frames": delivered["frames"],
        "delivered_seconds": delivered["seconds"],
        "mean_frame_bytes": delivered["mean_frame_bytes"],
        "python": sys.version.split()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--min-calls", type=int, default=1000)
    p.add_argument("--viewer", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.viewer:
        viewer_main(args.viewer, args.seconds)
        return
    print(json.dumps(asyncio.run(publisher_main(args))), flush=True)


if __name__ == "__main__":
    main()

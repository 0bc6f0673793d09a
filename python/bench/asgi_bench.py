"""Benchmark of the ASGI bridge: viewers through ``framehub.asgi`` (uvicorn)
next to viewers on the hub's own port, in one run.

One process holds one hub with one 1280x720 stream (JPEG q80), published at
30 Hz from an asyncio task (4 ``natural`` pictures of publish_bench.py,
cycled). The hub listens on a port of its own and is also mounted at
``/fh`` in a Starlette app served by uvicorn in the same process, on the
same event loop as the publisher. Two phases, one after the other:

* **bridge**: ``--viewers`` viewers (default 10) at ``ws://.../fh/bench``
  through uvicorn and the bridge;
* **port**: as many at the hub's own ``ws://.../bench``.

Each phase's viewers run in a process of their own (this script with
``--viewer``: ``websockets`` clients that say hello for JPEG and ack every
frame on arrival). After every viewer has its ``config`` and ``--warmup``
seconds more, they count frames for ``--seconds``; the server process reads
its CPU time (``time.process_time``: all threads, the hub's and uvicorn's)
at the window's edges. Reported per phase: frames/s per viewer (mean, min),
the process's CPU in % of one core, and CPU per viewer-frame in us (CPU
seconds / frames all viewers received; it includes the publisher and the
one JPEG encode per frame that all viewers share), and what the bridge
adds per viewer-frame over the port. Prints one JSON line::

    python/test.sh -q    # builds the wheel into target/py-venv (or FRAMEHUB_PY_PROFILE=release)
    target/py-venv/bin/python python/bench/asgi_bench.py [--seconds 10] [--viewers 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from publish_bench import natural  # noqa: E402


def parse_header(data: bytes) -> dict[str, Any]:
    (n,) = struct.unpack_from("<I", data, 0)
    header: dict[str, Any] = json.loads(data[4 : 4 + n])
    return header


async def viewers_main(url: str, viewers: int, warmup: float, seconds: float) -> None:
    """The load process: ``viewers`` viewers of ``url``, one JSON line per phase."""
    from websockets.asyncio.client import connect

    window = {"on": False}
    counts = [0] * viewers
    ready = asyncio.Event()
    connected = [0]

    async def one(i: int) -> None:
        async with connect(url, max_size=None, compression=None) as ws:
            await ws.send(json.dumps({"type": "hello", "supported": ["image/jpeg"]}))
            while True:
                msg = await ws.recv()
                if isinstance(msg, str):
                    if json.loads(msg).get("type") == "config":
                        connected[0] += 1
                        if connected[0] == viewers:
                            ready.set()
                    continue
                seq = parse_header(msg)["seq"]
                await ws.send(json.dumps({"type": "ack", "seq": seq, "decode_queue_size": 0}))
                if window["on"]:
                    counts[i] += 1

    tasks = [asyncio.create_task(one(i)) for i in range(viewers)]
    await asyncio.wait_for(ready.wait(), 30)
    print(json.dumps({"phase": "ready"}), flush=True)
    await asyncio.sleep(warmup)
    window["on"] = True
    t0 = time.monotonic()
    print(json.dumps({"phase": "start"}), flush=True)
    await asyncio.sleep(seconds)
    window["on"] = False
    elapsed = time.monotonic() - t0
    print(json.dumps({"phase": "end"}), flush=True)
    failed = [str(t.exception()) for t in tasks if t.done() and t.exception() is not None]
    fps = [c / elapsed for c in counts]
    print(json.dumps({"phase": "result", "fps": fps, "frames": sum(counts), "seconds": elapsed, "errors": failed}), flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_phase(url: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--viewer", url, "--viewers", str(args.viewers),
        "--warmup", str(args.warmup), "--seconds", str(args.seconds),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    cpu = [0.0, 0.0]
    wall = [0.0, 0.0]
    result: dict[str, Any] = {}
    while True:
        line = await proc.stdout.readline()
        if not line:
            break
        msg = json.loads(line)
        if msg["phase"] == "start":
            cpu[0], wall[0] = time.process_time(), time.monotonic()
        elif msg["phase"] == "end":
            cpu[1], wall[1] = time.process_time(), time.monotonic()
        elif msg["phase"] == "result":
            result = msg
    await proc.wait()
    if not result:
        raise RuntimeError(f"the viewers of {url} reported nothing (exit {proc.returncode})")
    cpu_s = cpu[1] - cpu[0]
    fps = result["fps"]
    return {
        "url": url,
        "viewers": len(fps),
        "fps_per_viewer_mean": round(sum(fps) / len(fps), 2),
        "fps_per_viewer_min": round(min(fps), 2),
        "process_cpu_pct": round(100 * cpu_s / (wall[1] - wall[0]), 1),
        "cpu_us_per_viewer_frame": round(1e6 * cpu_s / max(1, result["frames"]), 1),
        "frames": result["frames"],
        "errors": result["errors"],
    }


async def serve_main(args: argparse.Namespace) -> dict[str, Any]:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    import framehub
    import framehub.asgi

    w, h = args.width, args.height
    pictures = [natural(w, h, seed) for seed in range(4)]
    server = await framehub.serve_server(port=0)
    display = server.add_stream("bench", w, h, quality=80)
    app = Starlette(routes=[Mount("/fh", app=framehub.asgi.app(server))])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws_per_message_deflate=False))
    uv_task = asyncio.create_task(uv.serve(sockets=[sock]))
    while not uv.started:
        await asyncio.sleep(0.02)
    stop = asyncio.Event()

    async def publish() -> None:
        period, i = 1 / args.fps, 0
        next_at = time.monotonic()
        while not stop.is_set():
            display.publish(pictures[i % 4])
            i += 1
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    pub = asyncio.create_task(publish())
    try:
        bridge = await run_phase(f"ws://127.0.0.1:{port}/fh/bench", args)
        own = await run_phase(f"ws://127.0.0.1:{server.port}/bench", args)
    finally:
        stop.set()
        await pub
        uv.should_exit = True
        await uv_task
        await server.aclose()
    return {
        "bench": "asgi",
        "stream": f"{w}x{h} jpeg q80 at {args.fps:g} Hz",
        "seconds": args.seconds,
        "load1": os.getloadavg()[0],
        "bridge": bridge,
        "port": own,
        # What the bridge adds per viewer-frame (uvicorn's WebSocket, the
        # pumps), over the port's cost (which includes the shared encode).
        "bridge_extra_us_per_viewer_frame": round(
            bridge["cpu_us_per_viewer_frame"] - own["cpu_us_per_viewer_frame"], 1
        ),
        "cpu_ratio_bridge_to_port": round(
            bridge["cpu_us_per_viewer_frame"] / max(1e-9, own["cpu_us_per_viewer_frame"]), 2
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--viewers", type=int, default=10)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--viewer", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.viewer:
        asyncio.run(viewers_main(args.viewer, args.viewers, args.warmup, args.seconds))
        return
    print(json.dumps(asyncio.run(serve_main(args))), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

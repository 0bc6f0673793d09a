"""Benchmark of the Python publisher: CPU per publish() and frames delivered,
next to the pure-Rust figure of the same case.

A Python publisher loop (on the main thread) publishes 1280x720 RGB numpy
frames into a framehub stream (the package's synchronous API,
``framehub.sync``) while one viewer receives them and acks each at once. The case is ``framehub bench``'s
scenario **a** (1 viewer, 1280x720 JPEG q80, publisher as fast as the hub
takes frames), replayed from Python:

* **Pictures**: 4 pictures made once and cycled, like ``framehub bench``'s
  ``natural`` picture (the same construction -- gradients, a wave, 12
  soft discs, 5 shaded boxes, sensor noise -- ported to numpy, with numpy's
  random numbers), as RGB. Before each publish the next picture is copied
  into the one array the loop publishes (not timed), like a program that
  renders into the same buffer every frame.
* **Pace** (``--pace pending``, the default): after each publish the
  publisher waits until an encode thread has taken the frame
  (``display.frame_pending`` turns False) and then publishes the next, so
  a frame is always ready when an encoder frees up, but none is thrown
  away unseen; the wait sleeps through half of the shorter of the last two
  waits, then polls every 20 us -- ``framehub bench``'s max-rate loop.
  ``--pace none`` publishes again at once (the hub keeps the latest).
* **Viewer**: ``framehub bench-client`` (the load client of
  ``framehub bench``, in its own process), when a ``framehub`` binary is
  found (``--framehub``; default ``target/release/framehub``), else a Python
  viewer (the ``websockets`` package; it reports no latency).

Measured inside the viewer's window (``--seconds``, after 1 s of warm-up):

* around each ``publish()`` call: wall time (``time.perf_counter``) and the
  publisher thread's CPU time (``time.thread_time``): medians and p90;
* next to every 4th call, under the same conditions, ``numpy.copyto`` of
  the same frame into a preallocated array: the memory-bandwidth floor of
  a ``publish()`` that copies the frame (``publish_to_copy_ratio``);
* frames per second the viewer received (new pictures), its
  publish->receive latency, mean message size, and the process's CPU
  (hub + publisher), % of one core.

With ``--rust``, then runs ``framehub bench --scenarios a --picture natural``
for the same duration and quality and adds its delivered frames/s, the
ratio of the two (``delivered_ratio_to_rust``), and the same ratio per
CPU-second of each process, hub and publisher together
(``per_cpu_ratio_to_rust``: on a loaded machine the frames/s of each
follow the CPU share it got). Prints one JSON line. Run
it from a venv with framehub and numpy (and websockets without a
``framehub`` binary):

    cargo build --release --bin framehub
    python python/bench/publish_bench.py [--seconds 10] [--rust]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def natural(w: int, h: int, seed: int) -> np.ndarray:
    """An RGB picture built like ``framehub bench``'s ``natural`` one
    (crates/framehub-bench/src/bench/picture.rs), with numpy's random numbers."""
    rng = np.random.default_rng(seed + 1)
    fx = (np.arange(w, dtype=np.float32) / w)[None, :]
    fy = (np.arange(h, dtype=np.float32) / h)[:, None]
    s = np.sin(fx * 6.0 + seed * 0.7) * (1.0 - fy)
    px = np.empty((h, w, 3), np.float32)
    px[..., 0] = 60.0 + 150.0 * fx + 30.0 * s
    px[..., 1] = 90.0 + 100.0 * fy + 40.0 * s
    px[..., 2] = 200.0 - 120.0 * fy + 25.0 * s
    px = np.clip(np.trunc(px), 0, 255)
    unit = min(w, h)
    # Soft-edged discs, shaded towards the rim.
    for _ in range(12):
        cx, cy = float(rng.integers(w)), float(rng.integers(h))
        r = unit * (0.03 + rng.integers(100) / 100 * 0.12)
        col = rng.integers(256, size=3).astype(np.float32)
        x0, x1 = int(max(cx - r - 2, 0)), min(int(cx + r + 2), w)
        y0, y1 = int(max(cy - r - 2, 0)), min(int(cy + r + 2), h)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        a = np.clip((r - d) / 2, 0, 1) * (1 - 0.4 * np.minimum(d / r, 1))
        a = a[..., None]
        region = px[y0:y1, x0:x1]
        px[y0:y1, x0:x1] = np.where(a > 0, np.trunc(region * (1 - a) + col * a), region)
    # Boxes with a vertical shade.
    for _ in range(5):
        bw = unit // 10 + int(rng.integers(unit // 5))
        bh = unit // 12 + int(rng.integers(unit // 6))
        x0 = int(rng.integers(max(w - bw, 1)))
        y0 = int(rng.integers(max(h - bh, 1)))
        col = rng.integers(256, size=3).astype(np.float32)
        y1, x1 = min(y0 + bh, h), min(x0 + bw, w)
        shade = (1.0 - 0.3 * np.arange(y1 - y0, dtype=np.float32) / bh)[:, None, None]
        px[y0:y1, x0:x1] = np.trunc(col * shade)
    # Sensor noise, -6..6 per channel, on everything.
    px += (rng.integers(0, 256, size=(h, w, 3)) % 13 - 6).astype(np.float32)
    return np.clip(px, 0, 255).astype(np.uint8)


def find_framehub(arg: str | None) -> Path | None:
    if arg == "none":
        return None
    path = Path(arg) if arg else REPO / "target" / "release" / "framehub"
    if path.is_file() and os.access(path, os.X_OK):
        return path
    if arg:
        raise SystemExit(f"no framehub binary at {path}")
    return None


def python_viewer_main(url: str, seconds: float) -> None:
    """The Python viewer process: hello, then receive and ack every frame for
    1 s of warm-up plus ``seconds``. Prints ``start``, ``end`` and a result line."""
    import struct

    from websockets.sync.client import connect

    with connect(url, max_size=None, compression=None) as ws:
        ws.send(json.dumps({"type": "hello", "supported": ["image/jpeg"]}))
        config = json.loads(ws.recv(timeout=10))
        assert config["type"] == "config", config
        print(json.dumps({"phase": "ready"}), flush=True)
        frames = 0
        payload_bytes = 0
        start = time.monotonic() + 1.0
        end = start + seconds
        started = False
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if not started and now >= start:
                started = True
                print(json.dumps({"phase": "start"}), flush=True)
            try:
                msg = ws.recv(timeout=0.2)
            except TimeoutError:
                continue
            if isinstance(msg, str):
                continue
            (n,) = struct.unpack_from("<I", msg, 0)
            header = json.loads(msg[4 : 4 + n])
            ws.send(json.dumps({"type": "ack", "seq": header["seq"], "decode_queue_size": 0}))
            if started:
                frames += 1
                payload_bytes += len(msg)
        print(json.dumps({"phase": "end"}), flush=True)
        result = {
            "window_s": seconds,
            "viewers": [{"frames": frames, "bytes": payload_bytes, "fps": frames / seconds, "latency": None}],
        }
        print(json.dumps({"phase": "result", **result}), flush=True)
        sys.stdin.readline()


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def process_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def encoder_times() -> tuple[float, float]:
    """CPU time and run-queue wait, s, of this process's encode threads
    (``framehub-enc*``), from /proc (zeros where it is not available)."""
    cpu = wait = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return cpu, wait
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("framehub-enc"):
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                wait += int(f.read().split()[1]) / 1e9  # time runnable but not running
        except (OSError, IndexError, ValueError):
            continue
    return cpu, wait


class Publisher:
    """The publisher loop (see the module's doc). It runs on the main
    thread, as a program's render loop usually does; ``stop`` and
    ``measuring`` are set by the thread that reads the viewer."""

    def __init__(self, display: Any, pictures: list[np.ndarray], pace: bool) -> None:
        self.display = display
        self.pictures = pictures
        self.pace = pace
        self.stop = threading.Event()
        self.measuring = False
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.copy: list[float] = []
        self.calls = 0

    def loop(self) -> None:
        display, pictures = self.display, self.pictures
        frame = np.empty_like(pictures[0])
        ref = np.empty_like(frame)
        waits = [0.0, 0.0]
        i = 0
        np.copyto(frame, pictures[0])
        while not self.stop.is_set():
            measuring = self.measuring
            t0, c0 = time.perf_counter(), time.thread_time()
            display.publish(frame)
            t1, c1 = time.perf_counter(), time.thread_time()
            published_at = t1
            if measuring:
                self.calls += 1
                self.wall.append(t1 - t0)
                self.cpu.append(c1 - c0)
                if self.calls % 4 == 0:
                    t2 = time.perf_counter()
                    np.copyto(ref, frame)
                    self.copy.append(time.perf_counter() - t2)
            i += 1
            np.copyto(frame, pictures[i % len(pictures)])  # the next frame (not timed)
            if not self.pace:
                continue
            # Like framehub bench's max-rate loop: sleep through half of the
            # shorter of the last two waits, then poll every 20 us until an
            # encode thread took the frame (give up after 250 ms: no viewer).
            coarse = min(waits[0], waits[1], 0.05) / 2
            wake = published_at + coarse
            now = time.perf_counter()
            if wake > now:
                time.sleep(wake - now)
            while display.frame_pending and not self.stop.is_set():
                if time.perf_counter() - published_at > 0.25:
                    break
                time.sleep(20e-6)
            waits = [waits[1], time.perf_counter() - published_at]


def run_python(args: argparse.Namespace, framehub_bin: Path | None) -> dict[str, Any]:
    import framehub.sync as fh

    w, h = args.width, args.height
    pictures = [natural(w, h, seed) for seed in range(4)]
    created_unix_us = time.time_ns() // 1000
    display = fh.serve(w, h, port=0, quality=args.quality)
    try:
        if framehub_bin is not None:
            cmd = [
                str(framehub_bin), "bench-client",
                "--addr", f"127.0.0.1:{display.port}",
                "--stream", display.name,
                "--transport", "jpeg",
                "--viewers", "1",
                "--duration", str(args.seconds),
                "--warmup", "1",
                "--created-unix-us", str(created_unix_us),
            ]  # fmt: skip
        else:
            cmd = [sys.executable, __file__, "--viewer", display.ws_url, "--seconds", str(args.seconds)]
        viewer = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert viewer.stdout is not None and viewer.stdin is not None
        publisher = Publisher(display, pictures, args.pace == "pending")
        cpu = [0.0, 0.0]
        enc = [(0.0, 0.0), (0.0, 0.0)]
        got: dict[str, Any] = {}

        def read_viewer() -> None:
            # The viewer's lines: the window's edges, then its result.
            try:
                for line in viewer.stdout:  # type: ignore[union-attr]
                    msg = json.loads(line)
                    phase = msg.get("phase")
                    if phase == "start":
                        cpu[0] = process_cpu_s()
                        enc[0] = encoder_times()
                        publisher.measuring = True
                    elif phase == "end":
                        publisher.measuring = False
                        cpu[1] = process_cpu_s()
                        enc[1] = encoder_times()
                    elif phase in ("result", "error"):
                        got[phase] = msg
                        break
            finally:
                publisher.stop.set()

        reader = threading.Thread(target=read_viewer, name="bench-viewer-reader", daemon=True)
        reader.start()
        try:
            publisher.loop()
        finally:
            publisher.stop.set()
            reader.join(30)
            viewer.stdin.write("\n")
            viewer.stdin.close()
            viewer.wait(15)
        if "error" in got:
            raise SystemExit(f"viewer: {got['error'].get('message')}")
        result = got.get("result")
        if result is None or not publisher.wall:
            raise SystemExit("the viewer gave no result")
        cpu_start, cpu_end = cpu
    finally:
        display.close()

    v = result["viewers"][0]
    window = float(result["window_s"])

    def us(x: float) -> float:
        return round(x * 1e6, 1)

    wall_med = statistics.median(publisher.wall)
    copy_med = statistics.median(publisher.copy) if publisher.copy else float("nan")
    latency = v.get("latency")
    return {
        "viewer": "framehub bench-client" if framehub_bin is not None else "python websockets",
        "publish_calls": len(publisher.wall),
        "publish_calls_per_s": round(len(publisher.wall) / window, 1),
        "publish_wall_us_median": us(wall_med),
        "publish_wall_us_p90": us(percentile(publisher.wall, 0.9)),
        "publish_thread_cpu_us_median": us(statistics.median(publisher.cpu)),
        "publish_thread_cpu_us_p90": us(percentile(publisher.cpu, 0.9)),
        "numpy_copy_us_median": us(copy_med),
        "publish_to_copy_ratio": round(wall_med / copy_med, 2),
        "delivered_fps": round(float(v["fps"]), 2),
        "latency_p50_ms": latency["p50_ms"] if latency else None,
        "latency_p95_ms": latency["p95_ms"] if latency else None,
        "mean_frame_bytes": round(v["bytes"] / v["frames"]) if v["frames"] else 0,
        "process_cpu_pct": round(100 * (cpu_end - cpu_start) / window, 1),
        # The encode threads: CPU, and time runnable but without a CPU
        # (what other processes took from them), % of the window.
        "encoder_cpu_pct": round(100 * (enc[1][0] - enc[0][0]) / window, 1),
        "encoder_wait_pct": round(100 * (enc[1][1] - enc[0][1]) / window, 1),
    }


def run_rust(args: argparse.Namespace, framehub_bin: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.jsonl"
        cmd = [
            str(framehub_bin), "bench",
            "--scenarios", "a",
            "--picture", "natural",
            "--duration", str(args.seconds),
            "--quality", str(args.quality),
            "--out", str(out),
        ]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        r = json.loads(out.read_text().splitlines()[0])
    return {
        "rust_delivered_fps": r["fps_median"],
        "rust_latency_p50_ms": r["latency"]["p50_ms"],
        "rust_mean_frame_bytes": round(r["bytes_per_frame"]),
        "rust_server_cpu_pct": round(r["server_cpu_pct"], 1),
        "rust_encoder_cpu_pct": round(r["server_cpu"]["encoder_pct"], 1),
        "rust_encoder_wait_pct": round(r["server_cpu"]["encoder_wait_pct"], 1),
    }


def load1() -> float:
    return os.getloadavg()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window, s (default 10)")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--quality", type=int, default=80)
    p.add_argument("--pace", choices=["pending", "none"], default="pending")
    p.add_argument("--framehub", metavar="PATH", help="framehub binary (viewer, --rust); 'none': Python viewer")
    p.add_argument("--rust", action="store_true", help="then run framehub bench's scenario a and compare")
    p.add_argument("--viewer", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.viewer:
        python_viewer_main(args.viewer, args.seconds)
        return
    framehub_bin = find_framehub(args.framehub)
    if args.rust and framehub_bin is None:
        raise SystemExit("--rust needs a framehub binary: cargo build --release --bin framehub")
    out: dict[str, Any] = {
        "bench": "python_publish",
        "width": args.width,
        "height": args.height,
        "layout": "rgb",
        "picture": "natural",
        "jpeg_quality": args.quality,
        "pace": args.pace,
        "window_s": args.seconds,
        "load1_before": round(load1(), 2),
    }
    out.update(run_python(args, framehub_bin))
    if args.rust:
        assert framehub_bin is not None
        out.update(run_rust(args, framehub_bin))
        out["delivered_ratio_to_rust"] = round(out["delivered_fps"] / out["rust_delivered_fps"], 3)
        # Frames delivered per CPU-second of the process (hub + publisher):
        # on a machine others load, fps follows the CPU share a process
        # gets; this ratio does much less.
        py_eff = out["delivered_fps"] / max(out["process_cpu_pct"] / 100, 1e-9)
        rust_eff = out["rust_delivered_fps"] / max(out["rust_server_cpu_pct"] / 100, 1e-9)
        out["delivered_per_cpu_s"] = round(py_eff, 1)
        out["rust_delivered_per_cpu_s"] = round(rust_eff, 1)
        out["per_cpu_ratio_to_rust"] = round(py_eff / rust_eff, 3)
    out["load1_after"] = round(load1(), 2)
    out["python"] = sys.version.split()[0]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

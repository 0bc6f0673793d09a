"""A live matplotlib figure in the browser: drag to pan, wheel to zoom.

The figure is drawn on an Agg canvas; ``canvas.buffer_rgba()`` (an
(H, W, 4) uint8 buffer) is published as is. Pointer and wheel events from
the browser come back in framebuffer pixels and are turned into data
coordinates with the axes' transform.

    pip install framehub matplotlib numpy
    python matplotlib_live.py          # then open http://127.0.0.1:8765/
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import framehub  # noqa: E402


class LivePlot:
    """A figure whose view follows pointer drags (pan) and the wheel (zoom)."""

    def __init__(self, width: int, height: int, dpi: int = 100) -> None:
        self.width, self.height = width, height
        self.fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        self.xs = np.linspace(-50, 50, 5000)
        (self.line,) = self.ax.plot(self.xs, self.xs * 0)
        self.ax.set_xlim(-10, 10)
        self.ax.set_ylim(-1.5, 1.5)
        self.ax.grid(True)
        self.ax.set_title("drag to pan, wheel to zoom")
        self.drag: tuple[float, float, tuple[float, float], tuple[float, float]] | None = None

    def data_at(self, x: float, y: float) -> tuple[float, float]:
        """Data coordinates of framebuffer pixel (x, y) (y down)."""
        dx, dy = self.ax.transData.inverted().transform((x, self.height - y))
        return float(dx), float(dy)

    def handle(self, e: dict[str, Any]) -> str | None:
        """Applies one browser event; returns what it did, for the log."""
        kind = e["type"]
        if kind == "pointer_down" and e.get("button") == 1:
            self.drag = (e["x"], e["y"], self.ax.get_xlim(), self.ax.get_ylim())
        elif kind == "pointer_move" and self.drag is not None:
            x0, y0, (xa, xb), (ya, yb) = self.drag
            bbox = self.ax.bbox
            sx = (xb - xa) / bbox.width
            sy = (yb - ya) / bbox.height
            ddx, ddy = (e["x"] - x0) * sx, (e["y"] - y0) * sy
            self.ax.set_xlim(xa - ddx, xb - ddx)
            self.ax.set_ylim(ya + ddy, yb + ddy)
            return f"pan to x=[{xa - ddx:.2f}, {xb - ddx:.2f}]"
        elif kind == "pointer_up":
            self.drag = None
        elif kind == "wheel":
            factor = 1.0015 ** e.get("dy", 0.0)  # wheel up (dy < 0) zooms in
            cx, cy = self.data_at(e["x"], e["y"])
            (xa, xb), (ya, yb) = self.ax.get_xlim(), self.ax.get_ylim()
            self.ax.set_xlim(cx + (xa - cx) * factor, cx + (xb - cx) * factor)
            self.ax.set_ylim(cy + (ya - cy) * factor, cy + (yb - cy) * factor)
            return f"zoom x{1 / factor:.2f} around ({cx:.2f}, {cy:.2f})"
        return None

    def render(self, t: float) -> memoryview:
        self.line.set_ydata(np.sin(self.xs + t) * np.exp(-((self.xs / 25) ** 2)))
        self.canvas.draw()
        return self.canvas.buffer_rgba()  # (H, W, 4) uint8, published without a reshape


async def main(args: argparse.Namespace) -> None:
    plot = LivePlot(args.width, args.height)
    display = await framehub.serve(args.width, args.height, host=args.host, port=args.port)
    print(f"open {display.url} in a browser (WebSocket {display.ws_url})", flush=True)
    t0 = time.monotonic()
    try:
        while args.seconds is None or time.monotonic() - t0 < args.seconds:
            for ev in display.poll_events():
                what = plot.handle(ev.event)
                if what:
                    print(what, flush=True)
            display.publish(plot.render(time.monotonic() - t0))
            await asyncio.sleep(1 / args.fps)
    finally:
        await display.aclose()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--fps", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=None, help="run this long, then exit")
    return p.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass

"""The notebook widget's frame rate and latency, measured in a real
JupyterLab (headless Chromium), next to a comm-based widget fed the same
frames.

A kernel thread draws 640x360 frames at 60 fps (a moving gradient) with
the wall-clock time of their making stamped in the top row (24 black or
white 8x8 blocks: milliseconds mod 2^24). The page reads the stamp back
from the canvas after each frame is drawn: latency = draw time - stamp
(browser and kernel share the machine's clock). Two ways to the page, one
after the other for ``--seconds`` each:

* framehub: ``display.publish(frame)`` into a hub, shown by
  ``display.widget()`` (its own WebSocket to the hub; JPEG q80, or H.264
  where the browser decodes it, as negotiated);
* comm: the same frame encoded to JPEG q80 with Pillow in the kernel and set
  as an anywidget ``Bytes`` traitlet (the kernel's comm over Jupyter's
  WebSocket: how jupyter_rfb-style widgets move pixels), drawn with
  ``createImageBitmap``.

Run: ``target/py-venv/bin/python python/bench/notebook_bench.py`` (after
``python/test.sh`` has made the venv). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from notebook_harness import Lab, chromium, jupyter_lab, wait_for, write_notebook  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

#: How long the busy cell runs, s.
BUSY_S = 4

SETUP = r"""
import threading, time, io
import numpy as np, anywidget, traitlets
import framehub.sync as fh
from PIL import Image

W, H, FPS = 640, 360, {fps}
yy, xx = np.mgrid[0:H, 0:W]
def make(t):
    f = np.empty((H, W, 3), np.uint8)
    f[..., 0] = (xx + t * 4) % 256
    f[..., 1] = (yy + t * 2) % 256
    f[..., 2] = 128
    ms = int(time.time() * 1000) & 0xFFFFFF
    for i in range(24):
        f[0:8, 8 * i:8 * i + 8] = 255 if (ms >> i) & 1 else 0
    return f

class Pacer:
    def __init__(self, send):
        self.send, self.stop, self.sent = send, threading.Event(), 0
        threading.Thread(target=self.run, daemon=True).start()
    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            self.send(make(self.sent)); self.sent += 1
            left = t0 + self.sent / FPS - time.perf_counter()
            if left > 0: time.sleep(left)

class CommView(anywidget.AnyWidget):
    _esm = '''export default { render({ model, el }) {
      const c = document.createElement('canvas'); c.width = 640; c.height = 360;
      c.className = 'comm-view'; el.appendChild(c);
      const ctx = c.getContext('2d');
      c.addEventListener('pointerdown', () => model.send({ t: Date.now() }));
      model.on('change:frame', async () => {
        const dv = model.get('frame');
        const b = await createImageBitmap(new Blob([dv], { type: 'image/jpeg' }));
        ctx.drawImage(b, 0, 0); b.close();
        c.dispatchEvent(new CustomEvent('frame'));
      });
    } };'''
    frame = traitlets.Bytes(b"").tag(sync=True)

fh_in, comm_in = [], []   # when a click reached the program (ms since the epoch)

def watch_input(display):
    def run():
        while True:
            for ev in display.poll_events():
                if ev.event.get("type") == "pointer_down":
                    fh_in.append(time.time() * 1000)
            time.sleep(0.002)
    threading.Thread(target=run, daemon=True).start()

def jpeg(f):
    out = io.BytesIO(); Image.fromarray(f).save(out, "JPEG", quality=80); return out.getvalue()
"""

CELLS = [
    SETUP,
    "display_ = fh.serve(W, H, port=0, stats_interval=1)\nwatch_input(display_)\n"
    "fh_pacer = Pacer(display_.publish)\nw = display_.widget(width=W, height=H)\nw",
    "fh_pacer.stop.set()\ncw = CommView()\ncw.on_msg(lambda _w, _c, _b: comm_in.append(time.time() * 1000))\n"
    "def send(f): cw.frame = jpeg(f)\ncomm_pacer = Pacer(send)\ncw",
    "comm_pacer.stop.set()",
    "busy_from = time.time() * 1000; time.sleep(BUSY)  # a long-running cell",
    "import json; print(json.dumps([fh_in, comm_in, busy_from]))",
]

# Each click's browser time, by the kind of canvas clicked.
RECORD_CLICKS = """
window.__downs = [];
document.addEventListener('pointerdown', (e) => window.__downs.push([e.target.className, Date.now()]), true);
"""

# Collects (draw time, stamp) for `seconds` from canvas `sel` (index `i`),
# listening for 'frame' events on `target` ('view': the framehub view of that
# canvas; else the canvas itself).
MEASURE = """
const [sel, i, target, seconds, done] = arguments;
const canvas = document.querySelectorAll(sel)[i];
let src = canvas;
if (target === 'view') for (const v of globalThis.__framehubViews) if (v.canvas === canvas) src = v;
const ctx = canvas.getContext('2d', { willReadFrequently: true });
const lat = []; let frames = 0;
const on = () => {
  const now = Date.now() & 0xFFFFFF;
  const sx = canvas.width / 640, sy = canvas.height / 360;
  const m = src === canvas ? { scale: 1, offsetX: 0, offsetY: 0 } : src.mapping();
  const d = ctx.getImageData(0, 0, canvas.width, Math.max(1, Math.ceil(m.offsetY + 8 * m.scale))).data;
  let ms = 0;
  for (let b = 0; b < 24; b++) {
    const x = Math.floor(m.offsetX + (8 * b + 4) * m.scale), y = Math.floor(m.offsetY + 4 * m.scale);
    if (d[(y * canvas.width + x) * 4 + 1] > 128) ms |= 1 << b;
  }
  frames++;
  lat.push(((now - ms) + 0x1000000) % 0x1000000);
};
src.addEventListener('frame', on);
setTimeout(() => {
  src.removeEventListener('frame', on);
  const stats = src === canvas ? null : src.getStats();
  done({ frames, lat, transport: stats && stats.transport, rtt: stats && stats.rttMs });
}, seconds * 1000);
"""


def summary(name: str, r: dict, seconds: float) -> dict:
    lat = sorted(r["lat"])
    return {
        "path": name,
        "fps": r["frames"] / seconds,
        "lat_median_ms": statistics.median(lat) if lat else None,
        "lat_p95_ms": lat[int(0.95 * (len(lat) - 1))] if lat else None,
        "transport": r.get("transport"),
        "hub_rtt_ms": r.get("rtt"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--fps", type=int, default=60, help="the publisher's rate (both paths)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cells = [CELLS[0].replace("{fps}", str(args.fps)), *CELLS[1:]]
        cells[4] = cells[4].replace("BUSY", str(BUSY_S))
        write_notebook(root / "bench.ipynb", cells)
        with jupyter_lab(root) as base, chromium(root / "profile", "1200,1000") as driver:
            driver.set_script_timeout(args.seconds + 30)
            lab = Lab(driver, base, "bench.ipynb")
            lab.run(0)
            lab.run(1)
            time.sleep(3)  # warm up
            fh_r = driver.execute_async_script(MEASURE, ".framehub-widget canvas", 0, "view", args.seconds)
            lab.run(2)
            time.sleep(3)
            comm_r = driver.execute_async_script(MEASURE, "canvas.comm-view", 0, "canvas", args.seconds)
            lab.run(3)
            lab.screenshot("notebook-bench.png")
            # Clicks in both widgets while a cell runs for BUSY seconds.
            driver.execute_script(RECORD_CLICKS)
            lab._press_run(4)
            wait_for("the busy cell to start", lambda: "*" in lab.cells()[4].find_element(
                By.CSS_SELECTOR, ".jp-InputArea-prompt").text, 20, 0.05)
            time.sleep(0.5)
            fh_canvas = driver.find_elements(By.CSS_SELECTOR, ".framehub-widget canvas")[0]
            comm_canvas = driver.find_elements(By.CSS_SELECTOR, "canvas.comm-view")[0]
            for c in (fh_canvas, comm_canvas):
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", c)
                ActionChains(driver).move_to_element(c).click().perform()
                time.sleep(0.3)
            wait_for("the busy cell", lambda: lab._ran(4), BUSY_S + 30, 0.1)
            lab.run(5)
            fh_in, comm_in, busy_from = json.loads(lab.output_text(5).strip())
            downs = [d for d in driver.execute_script("return window.__downs") if "canvas" in d[0] or "comm-view" in d[0]]
    rows = [summary("framehub widget (WebSocket to the hub)", fh_r, args.seconds),
            summary("anywidget Bytes traitlet (kernel comm)", comm_r, args.seconds)]
    assert all(t > busy_from for _, t in downs), "a click came before the busy cell ran"
    t_fh = next(t for k, t in downs if "framehub" in k)
    t_comm = next(t for k, t in downs if "comm-view" in k)
    rows[0]["click_ms_busy"] = round(fh_in[0] - t_fh) if fh_in else None
    rows[1]["click_ms_busy"] = round(comm_in[0] - t_comm) if comm_in else None
    print(f"load average: {os.getloadavg()[0]:.1f}")
    print(f"| path | frames/s drawn (publisher {args.fps}) | latency median ms | p95 ms | transport | hub RTT ms | click → program during a {BUSY_S} s cell, ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['fps']:.1f} | {r['lat_median_ms']} | {r['lat_p95_ms']} | {r['transport'] or 'jpeg'} | {round(r['hub_rtt_ms'], 1) if r['hub_rtt_ms'] is not None else '–'} | {r['click_ms_busy']} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()

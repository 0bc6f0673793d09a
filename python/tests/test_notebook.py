"""framehub's notebook widget in a real JupyterLab, driven by headless Chromium.

A notebook starts a hub with two streams, publishes a picture into each
and displays their widgets (one through jupyter-server-proxy when it is
installed, one straight to the hub's port). The test reads the pictures
back from the widgets' canvases, clicks in one and finds the click in what
the kernel's ``poll_events()`` got (a kernel thread writes it to a file);
re-displaying the widget makes a second viewer, closing it closes both.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("jupyterlab") is None or importlib.util.find_spec("anywidget") is None:
    pytest.skip("jupyterlab and anywidget are not installed", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from notebook_harness import Lab, chromium, jupyter_lab, wait_for, write_notebook

ROOT = Path(__file__).resolve().parents[2]
HAS_PROXY = importlib.util.find_spec("jupyter_server_proxy") is not None

SETUP = """\
import json, threading, time
import numpy as np
import framehub, framehub.sync as fh

def quadrants(w, h, colours):
    f = np.empty((h, w, 3), np.uint8)
    for i, c in enumerate(colours):
        qx, qy = i % 2, i // 2
        f[qy * h // 2:(qy + 1) * h // 2, qx * w // 2:(qx + 1) * w // 2] = c
    return f

server = fh.serve_server(port=0)
a = server.add_stream("a", 320, 240)
a.publish(quadrants(320, 240, [(220, 40, 40), (40, 200, 70), (40, 70, 230), (230, 220, 40)]))
b = server.add_stream("b", 160, 120)
b.publish(np.full((120, 160, 3), (250, 130, 20), np.uint8))

def watch(path):
    with open(path, "a") as out:
        while True:
            for ev in a.poll_events():
                e = ev.event
                out.write(json.dumps({"type": e.get("type"), "x": e.get("x"), "y": e.get("y")}) + "\\n")
            out.write(json.dumps({"clients": [a.client_count, b.client_count]}) + "\\n")
            out.flush()
            time.sleep(0.05)

threading.Thread(target=watch, args=(EVENTS,), daemon=True).start()
wa = a.widget(height=240, width=320)
wa
"""

CELLS = [
    SETUP,
    "wb = framehub.widget(b, height=120, width=160, proxy=False)\nwb",
    "display(wa)",
    "wa.close(); wb.close()",
]

# The RGB at a fraction of the backing size of the widget canvas number
# arguments[0] (in document order).
READ_PIXEL = """
const c = document.querySelectorAll('.framehub-widget canvas')[arguments[0]];
if (!c || c.width === 0) return null;
const x = Math.floor(arguments[1] * c.width), y = Math.floor(arguments[2] * c.height);
const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
return [d[0], d[1], d[2]];
"""

WIDGETS = "return [...document.querySelectorAll('.framehub-widget')].map(e => [e.dataset.via, e.dataset.state, e.dataset.url])"


def close(rgb: Any, want: tuple[int, int, int], tol: int = 24) -> bool:
    return rgb is not None and max(abs(a - b) for a, b in zip(rgb, want)) <= tol


def test_widget_in_jupyterlab_shows_the_stream_and_input_reaches_the_kernel(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    cells = [f"EVENTS = {str(events)!r}\n" + CELLS[0], *CELLS[1:]]
    write_notebook(tmp_path / "fh.ipynb", cells)

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]

    def clients() -> list[int] | None:
        got = [r["clients"] for r in records() if "clients" in r]
        return got[-1] if got else None

    t0 = time.monotonic()
    with jupyter_lab(tmp_path) as base, chromium(tmp_path / "profile") as driver:
        lab = Lab(driver, base, "fh.ipynb")
        lab.run(0)
        lab.run(1)
        wait_for("two widgets", lambda: len(driver.execute_script(WIDGETS)) == 2)

        # Stream a's quadrants and stream b's orange, read back from the canvases.
        quads = {(0, 0): (220, 40, 40), (1, 0): (40, 200, 70), (0, 1): (40, 70, 230), (1, 1): (230, 220, 40)}
        wait_for("stream a's picture in the first widget", lambda: all(
            close(driver.execute_script(READ_PIXEL, 0, 0.25 + 0.5 * qx, 0.25 + 0.5 * qy), rgb)
            for (qx, qy), rgb in quads.items()))
        wait_for("stream b's picture in the second widget",
                 lambda: close(driver.execute_script(READ_PIXEL, 1, 0.5, 0.5), (250, 130, 20)))
        widgets = driver.execute_script(WIDGETS)
        assert widgets[0][0] == ("proxy" if HAS_PROXY else "direct"), widgets
        assert widgets[1][0] == "direct", widgets
        if HAS_PROXY:
            assert "/proxy/" in widgets[0][2] and widgets[0][2].endswith("/a"), widgets
        assert all(w[1] == "open" for w in widgets), widgets
        wait_for("one viewer of each stream", lambda: clients() == [1, 1])
        status = wait_for("the status line", lambda: "320×240" in (s := driver.execute_script(
            "return document.querySelector('.framehub-status').textContent")) and s)
        assert status.startswith("open · 320×240 · "), status
        (tmp_path / "shot.png").write_bytes(driver.get_screenshot_as_png())
        (ROOT / "target" / "notebook-widget.png").write_bytes(driver.get_screenshot_as_png())

        # A click 60 px right of and 40 px below the first canvas's centre
        # (a 320x240 frame in a 320x240 canvas: frame pixel (220, 160)).
        canvas = driver.find_elements(By.CSS_SELECTOR, ".framehub-widget canvas")[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        ActionChains(driver).move_to_element_with_offset(canvas, 60, 40).click().perform()
        down = wait_for("the click at poll_events() in the kernel",
                        lambda: [r for r in records() if r.get("type") == "pointer_down"])[0]
        assert abs(down["x"] - 220) <= 3 and abs(down["y"] - 160) <= 3, down
        wait_for("the release", lambda: any(r.get("type") == "pointer_up" for r in records()))

        # Displaying the widget again makes another view: a second viewer.
        lab.run(2)
        wait_for("three widget views", lambda: len(driver.execute_script(WIDGETS)) == 3)
        wait_for("two viewers of stream a", lambda: clients() == [2, 1])
        wait_for("the picture in the new view", lambda: close(driver.execute_script(READ_PIXEL, 2, 0.25, 0.25), (220, 40, 40)))

        # Closing the widgets removes their views and closes their WebSockets.
        lab.run(3)
        wait_for("no view left", lambda: len(driver.execute_script(WIDGETS)) == 0)
        wait_for("no viewer left", lambda: clients() == [0, 0])
    assert time.monotonic() - t0 < 90


MARIMO_APP = '''\
import marimo

app = marimo.App()


@app.cell
def _():
    import json, threading, time
    import marimo as mo
    import numpy as np
    import framehub.sync as fh

    display_ = fh.serve(320, 240, port=0)
    display_.publish(np.full((240, 320, 3), (220, 40, 40), np.uint8))

    def watch():
        with open(EVENTS, "a") as out:
            while True:
                for ev in display_.poll_events():
                    out.write(json.dumps({"type": ev.event.get("type"), "x": ev.event.get("x"), "y": ev.event.get("y")}) + "\\n")
                out.flush()
                time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    mo.ui.anywidget(display_.widget(height=240, width=320))
    return


if __name__ == "__main__":
    app.run()
'''

# The widget's root, looked for through shadow roots (marimo mounts anywidgets in one).
FIND_WIDGET = """
const find = (root) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.classList && el.classList.contains('framehub-widget')) return el;
    if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; }
  }
  return null;
};
const w = find(document);
if (!w || w.dataset.state !== 'open') return null;
const c = w.querySelector('canvas');
if (!c || c.width === 0) return null;
const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;
window.__fhCanvas = c;
return [w.dataset.via, d[0], d[1], d[2]];
"""


@pytest.mark.skipif(importlib.util.find_spec("marimo") is None, reason="marimo is not installed")
def test_widget_in_marimo_shows_the_stream_and_input_reaches_the_program(tmp_path: Path) -> None:
    import subprocess
    import sys

    from notebook_harness import free_port

    events = tmp_path / "events.jsonl"
    events.write_text("")
    app = tmp_path / "app.py"
    app.write_text(MARIMO_APP.replace("open(EVENTS", f"open({str(events)!r}"))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "marimo", "run", str(app), "--headless", "--host", "127.0.0.1",
         "--port", str(port), "--no-token"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        with chromium(tmp_path / "profile") as driver:
            def load() -> bool:
                try:
                    driver.get(f"http://127.0.0.1:{port}/")
                    return True
                except Exception:
                    time.sleep(0.3)
                    return False

            wait_for("marimo's page", load, 30)
            got = wait_for("the picture in marimo's output", lambda: (
                (r := driver.execute_script(FIND_WIDGET)) and close(r[1:], (220, 40, 40)) and r), 45)
            assert got[0] == "direct", got
            canvas = driver.execute_script("return window.__fhCanvas")
            ActionChains(driver).move_to_element_with_offset(canvas, -60, 20).click().perform()

            def down() -> list[dict[str, Any]]:
                rows = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
                return [r for r in rows if r["type"] == "pointer_down"]

            ev = wait_for("the click at poll_events()", down)[0]
            assert abs(ev["x"] - 100) <= 3 and abs(ev["y"] - 140) <= 3, ev
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_example_notebook_pans_and_zooms_from_the_widget(tmp_path: Path) -> None:
    nb = json.loads((ROOT / "python" / "examples" / "notebook.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    setup = "".join(code[0]["source"])
    write_notebook(tmp_path / "ex.ipynb", [setup, "print(plot.view)", "print(plot.view)", code[-1]["source"]])
    with jupyter_lab(tmp_path) as base, chromium(tmp_path / "profile") as driver:
        lab = Lab(driver, base, "ex.ipynb")
        lab.run(0)
        wait_for("the plot", lambda: close(driver.execute_script(READ_PIXEL, 0, 0.02, 0.02), (250, 250, 250), 8))
        canvas = driver.find_elements(By.CSS_SELECTOR, ".framehub-widget canvas")[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        lab.screenshot("notebook-example.png")
        # Drag 100 px to the right: the view moves left by 100/720 of its width.
        actions = ActionChains(driver).move_to_element(canvas).click_and_hold()
        for _ in range(4):
            actions.move_by_offset(25, 0)
        actions.release().perform()
        time.sleep(0.5)
        lab.run(1)
        x0, x1, y0, y1 = json.loads(lab.output_text(1).strip().replace("'", '"'))
        assert abs((x1 - x0) - 20.0) < 1e-6 and x0 < -12.0, (x0, x1)
        # The wheel zooms out at the pointer.
        from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 200).perform()
        time.sleep(0.5)
        lab.run(2)
        v = json.loads(lab.output_text(2).strip())
        assert v[1] - v[0] > 20.5, v
        lab.run(3)

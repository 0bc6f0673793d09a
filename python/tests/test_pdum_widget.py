"""pdum.rfb's own released browser client against a framehub stream.

``pdum/rfb/static/widget.js`` (and its ``widget.css``) come unmodified from
pdum.rfb 0.3.0's wheel on PyPI (``habemus-papadum-rfb``), downloaded once
into ``target/pdum-rfb-0.3.0/`` with pip. The widget is an anywidget module
(``export default {render({model, el})}``); the page here is its host: it
imports the module and hands ``render`` a minimal model (``get``/``set``/
``save_changes``/``on``/``off`` over a dict of traits) whose ``url`` trait
is the framehub stream's WebSocket. Headless Chromium (Debian's
``chromium`` + ``chromium-driver``, installed by scripts/setup) runs it,
driven with selenium. The test reads the widget's canvas back (it shows
the published picture), then drags and turns the wheel over it and checks
that the program's ``poll_events()`` gets those events in pdum.rfb's shape
at the right framebuffer coordinates.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By

import framehub.sync as fh

PDUM_VERSION = "0.3.0"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "target" / f"pdum-rfb-{PDUM_VERSION}"
# The client's files inside the wheel, taken as they are.
CLIENT_FILES = ("pdum/rfb/static/widget.js", "pdum/rfb/static/widget.css")

# The page: pdum.rfb's widget mounted by a minimal anywidget-style host.
PAGE = """<!doctype html>
<meta charset="utf-8">
<link rel="stylesheet" href="widget.css">
<style>body { margin: 0; background: #fff; } #host { width: 320px; }</style>
<div id="host"></div>
<script type="module">
import widget from "./widget.js";
const traits = {
  url: new URLSearchParams(location.search).get("ws"),
  height: 240,
  show_toolbar: false,
  show_stats: false,
};
const listeners = [];
const model = {
  get: (name) => traits[name],
  set: (name, value) => { traits[name] = value; },
  save_changes: () => {},
  on: (name, cb) => listeners.push([name, cb]),
  off: () => { listeners.length = 0; },
};
window.pdumTraits = traits;
window.pdumCleanup = widget.render({ model, el: document.getElementById("host") });
</script>
"""

W, H = 320, 240
# The published picture: four quadrants of distinct colours.
QUADRANTS = {
    (0, 0): (220, 40, 40),  # top left: red
    (1, 0): (40, 200, 70),  # top right: green
    (0, 1): (40, 70, 230),  # bottom left: blue
    (1, 1): (230, 220, 40),  # bottom right: yellow
}


def picture() -> np.ndarray:
    frame = np.empty((H, W, 3), np.uint8)
    for (qx, qy), rgb in QUADRANTS.items():
        frame[qy * H // 2 : (qy + 1) * H // 2, qx * W // 2 : (qx + 1) * W // 2] = rgb
    return frame


def pdum_client() -> Path:
    """The directory holding pdum.rfb 0.3.0's widget.js and widget.css
    (downloaded from PyPI with pip on first use)."""
    if all((CACHE / Path(f).name).is_file() for f in CLIENT_FILES):
        return CACHE
    wheels = CACHE / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--python-version", "3.12", "--only-binary=:all:",
            "-d", str(wheels), f"habemus-papadum-rfb=={PDUM_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"pip could not download habemus-papadum-rfb=={PDUM_VERSION}:\n{r.stderr}"
    [wheel] = wheels.glob(f"habemus_papadum_rfb-{PDUM_VERSION}-*.whl")
    with zipfile.ZipFile(wheel) as z:
        for f in CLIENT_FILES:
            tmp = CACHE / (Path(f).name + ".part")
            tmp.write_bytes(z.read(f))
            tmp.replace(CACHE / Path(f).name)
    return CACHE


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on loopback serving the host page and pdum's files; yields its base URL."""
    client = pdum_client()
    site = tmp_path / "site"
    site.mkdir()
    for f in CLIENT_FILES:
        shutil.copyfile(client / Path(f).name, site / Path(f).name)
    (site / "index.html").write_text(PAGE)
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (Debian's, through its chromedriver)."""
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--window-size=800,600", f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")),
        options=options,
    )
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# The canvas's RGB at a fraction (fx, fy) of its backing size.
READ_PIXEL = """
const c = document.querySelector('#host canvas');
if (!c || c.width === 0) return null;
const x = Math.floor(arguments[0] * c.width), y = Math.floor(arguments[1] * c.height);
const d = c.getContext('2d').getImageData(x, y, 1, 1).data;
return [d[0], d[1], d[2]];
"""


def test_pdum_rfb_widget_draws_a_framehub_stream_and_its_input_reaches_the_program(
    page_server: str, browser: webdriver.Chrome
) -> None:
    display = fh.serve(W, H, port=0)
    try:
        assert display.event_shape == "pdum"
        display.publish(picture())
        browser.get(f"{page_server}?ws={display.ws_url}")
        canvas = wait_for("the widget's canvas", lambda: browser.find_elements(By.CSS_SELECTOR, "#host canvas"))[0]
        assert (canvas.size["width"], canvas.size["height"]) == (W, H), canvas.size

        # The canvas shows the published quadrants (JPEG: within a tolerance).
        def shows_picture() -> bool:
            for (qx, qy), rgb in QUADRANTS.items():
                got = browser.execute_script(READ_PIXEL, 0.25 + 0.5 * qx, 0.25 + 0.5 * qy)
                if got is None or max(abs(a - b) for a, b in zip(got, rgb)) > 24:
                    return False
            return True

        wait_for("the published picture on the widget's canvas", shows_picture)
        browser.save_screenshot(str(ROOT / "target" / "pdum-widget.png"))  # to look at
        assert display.client_count == 1
        state = browser.execute_script("return document.querySelector('#host').dataset.state")
        assert state == "negotiated", state
        display.poll_events()  # the viewer's resize on connecting

        # A drag: down 40 px left of and 30 px above the canvas's centre, then
        # 60 px right and 20 px down, up; then the wheel at the centre.
        actions = ActionChains(browser)
        actions.move_to_element_with_offset(canvas, -40, -30).click_and_hold()
        actions.move_by_offset(30, 10).move_by_offset(30, 10).release().perform()
        ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, 120).perform()

        got: list[Any] = []

        def all_arrived() -> bool:
            got.extend(display.poll_events())
            kinds = [ev.event.get("type") for ev in got]
            return "pointer_up" in kinds and "wheel" in kinds

        wait_for("the drag and the wheel at poll_events()", all_arrived)
        events = [ev.event for ev in got if ev.event.get("type") != "resize"]
        kinds = [e["type"] for e in events]
        # pointer_move events before the press (the move onto the canvas) are
        # fine; the drag itself comes down, move(s), up, then the wheel.
        first_down = kinds.index("pointer_down")
        drag = kinds[first_down : kinds.index("pointer_up") + 1]
        assert drag[0] == "pointer_down" and drag[-1] == "pointer_up", kinds
        assert "pointer_move" in drag, kinds
        assert kinds[-1] == "wheel", kinds
        assert all(k in ("pointer_move", "pointer_down", "pointer_up", "wheel") for k in kinds), kinds

        down = events[first_down]
        up = events[kinds.index("pointer_up")]
        wheel = events[-1]
        # The canvas is 320x240 CSS px showing a 320x240 frame at DPR 1: frame
        # pixels are CSS pixels from the canvas's corner, centre (160, 120).
        assert abs(down["x"] - 120) <= 2 and abs(down["y"] - 90) <= 2, down
        assert abs(up["x"] - 180) <= 2 and abs(up["y"] - 110) <= 2, up
        assert abs(wheel["x"] - 160) <= 2 and abs(wheel["y"] - 120) <= 2, wheel
        assert down["button"] == 1 and down["buttons"] == [1], down
        assert up["button"] == 1 and up["buttons"] == [], up
        assert wheel["dy"] > 0 and wheel["dx"] == 0, wheel
        assert all(e["inside"] is True for e in (down, up, wheel))
        # pdum.rfb's shape: the kind under "type", the browser's time under
        # "timestamp" (seconds since the page loaded), in order.
        assert all("event_type" not in e for e in events)
        stamps = [e["timestamp"] for e in events]
        assert all(0 < t < 600 for t in stamps) and stamps == sorted(stamps), stamps
        assert all(ev.client_id == got[0].client_id for ev in got)
    finally:
        display.close()

"""A real JupyterLab (a server subprocess on loopback, no token) driven by
headless Chromium through selenium: open a notebook, run its cells one by
one, look at their outputs. Used by test_notebook.py and
python/bench/notebook_bench.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = {
        "cells": [
            {"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


@contextmanager
def jupyter_lab(root: Path, *, timeout: float = 60.0) -> Iterator[str]:
    """A JupyterLab server on loopback serving ``root``; yields its base URL."""
    port = free_port()
    home = root / ".jupyter-home"
    home.mkdir(exist_ok=True)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
        IPYTHONDIR=str(home / "ipython"),
        # The kernel is this interpreter (the test venv's ipykernel).
        JUPYTER_PATH=str(home / "data"),
    )
    # No "news" notification over the page.
    notes = home / "settings" / "@jupyterlab" / "apputils-extension"
    notes.mkdir(parents=True, exist_ok=True)
    (notes / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # The kernel spec: this interpreter.
    spec = home / "data" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python",
    }))
    log = open(root / "jupyter.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(base + "api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("JupyterLab did not start:\n" + (root / "jupyter.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def chromium(profile: Path, size: str = "1200,900") -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        f"--window-size={size}", f"--user-data-dir={profile}",
        # Background tabs and occluded windows must not be throttled (measurements).
        "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
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


def wait_for(what: str, check: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = check()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Lab:
    """One notebook open in JupyterLab."""

    def __init__(self, driver: webdriver.Chrome, base: str, notebook: str) -> None:
        self.driver = driver
        driver.get(f"{base}lab/tree/{notebook}")
        wait_for("the notebook's cells", lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 60)
        wait_for("the kernel", lambda: not self.dismiss_dialogs() and self.kernel_idle(), 60, 0.2)
        # JupyterLab may still ask which kernel to start: give it a moment.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            self.dismiss_dialogs()
            time.sleep(0.1)

    def dismiss_dialogs(self) -> bool:
        """Accepts any dialog JupyterLab shows (such as "Select Kernel");
        returns whether there was one."""
        buttons = self.driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        for b in buttons:
            try:
                b.click()
            except Exception:
                pass
        return bool(buttons)

    def kernel_idle(self) -> bool:
        return bool(self.driver.execute_script(
            "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            "return s && s.getAttribute('data-status') === 'idle';"
        ))

    def cells(self) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")

    def run(self, index: int, timeout: float = 60.0) -> Any:
        """Runs cell ``index`` (Shift+Enter in it) and waits until it has run; returns the cell."""
        self._press_run(index)

        def ran() -> bool:
            if self.dismiss_dialogs():  # the keys went to a dialog: again
                time.sleep(0.5)
                self._press_run(index)
                return False
            return self._ran(index)

        try:
            wait_for(f"cell {index} to run", ran, timeout, 0.1)
        except AssertionError:
            self.screenshot("notebook-failed.png")
            raise
        return self.cells()[index]

    def screenshot(self, name: str) -> Path:
        """Saves a screenshot under target/ (to look at); returns its path."""
        path = Path(__file__).resolve().parents[2] / "target" / name
        path.write_bytes(self.driver.get_screenshot_as_png())
        return path

    def _press_run(self, index: int) -> None:
        cell = self.cells()[index]
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        editor = cell.find_element(By.CSS_SELECTOR, ".jp-InputArea-editor")
        actions = ActionChains(self.driver).move_to_element(editor).click()
        actions.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()

    def _ran(self, index: int) -> bool:
        prompt = self.cells()[index].find_elements(By.CSS_SELECTOR, ".jp-InputArea-prompt")
        text = prompt[0].text if prompt else ""
        return text.startswith("[") and any(c.isdigit() for c in text) and self.kernel_idle()

    def output_text(self, index: int) -> str:
        return "\n".join(e.text for e in self.cells()[index].find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))

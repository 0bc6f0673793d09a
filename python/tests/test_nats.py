"""Hubs joined over NATS (issue 16): a stream of one hub is listed on and
viewed through another. Starts its own nats-server (apt-get install
nats-server; scripts/setup does it)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import framehub
from helpers import open_viewer, solid


def http_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def nats_url() -> Iterator[str]:
    exe = shutil.which("nats-server")
    if exe is None:
        pytest.fail("nats-server is not installed (apt-get install nats-server; scripts/setup does it)")
    port = free_port()
    store = tempfile.mkdtemp(prefix="framehub-nats-")
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nats-server did not start"
                time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(store, ignore_errors=True)


async def test_a_stream_of_one_hub_is_listed_and_viewed_on_another(nats_url: str) -> None:
    a = await framehub.serve_server(port=0, nats={"urls": nats_url, "hub_id": "py-a"})
    b = await framehub.serve_server(port=0, nats=[nats_url])
    try:
        cam = a.add_stream("cam", 64, 48)
        deadline = time.monotonic() + 10
        while True:
            listing = await asyncio.to_thread(http_get, b.url("streams"))
            by_name = {s["name"]: s for s in listing}
            if "cam" in by_name:
                break
            assert time.monotonic() < deadline, f"hub b never listed cam: {listing}"
            await asyncio.sleep(0.1)
        assert by_name["cam"]["origin"] == "py-a"
        assert (by_name["cam"]["width"], by_name["cam"]["height"]) == (64, 48)
        v = await open_viewer(b.ws_url("cam"))
        cam.publish(solid(48, 64, (255, 0, 0)))
        header, _ = await v.frame()
        assert (header["width"], header["height"]) == (64, 48)
        # The edge viewer's event reaches the origin's program, with its hub.
        await v.ws.send(json.dumps({"type": "event", "event": {"event_type": "key_down", "key": "r"}}))
        deadline = time.monotonic() + 5
        events: list[Any] = []
        while not events:
            events = cam.poll_events()
            assert time.monotonic() < deadline, "no event reached the origin"
            await asyncio.sleep(0.02)
        assert events[0].event_type == "key_down"
        assert events[0].hub is not None and events[0].hub.startswith("hub-")
        await v.close()
    finally:
        await a.aclose()
        await b.aclose()


def test_bad_nats_settings_are_refused() -> None:
    with pytest.raises(TypeError):
        framehub.sync.serve_server(port=None, nats=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        framehub.sync.serve_server(port=None, nats={"urls": "nats://127.0.0.1:4222", "colour": 1})
    with pytest.raises(framehub.FramehubError, match="NATS"):
        framehub.sync.serve_server(port=0, nats=f"nats://127.0.0.1:{free_port()}")

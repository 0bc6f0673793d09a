"""Issue 14: an independent WebRTC client, aiortc (PyPI), views a framehub
stream through both signalling styles — rtcbot-style JSON at
``POST /<stream>/webrtc`` and WHEP at ``POST /<stream>/whep`` — receives
H.264 frames that decode to the published picture, and sends an event over
the data channel that reaches the program's ``poll_events()``."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

import framehub

aiortc = pytest.importorskip("aiortc", reason="python/test.sh installs aiortc")
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def picture(width: int, height: int) -> np.ndarray:
    """Left half orange, right half teal: easy to tell apart after H.264."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:, : width // 2] = (230, 120, 20)
    img[:, width // 2 :] = (20, 160, 170)
    return img


async def view(url: str, whep: bool) -> tuple[np.ndarray, RTCPeerConnection, object, str | None]:
    """Connects like an rtcbot client (offerer, recvonly video, a data
    channel named 'default', non-trickle ICE); returns a decoded frame,
    the connection, its data channel, and the WHEP Location if any."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    channel = pc.createDataChannel("default")
    frames: asyncio.Queue = asyncio.Queue()

    @pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        async def pull() -> None:
            while True:
                try:
                    f = await track.recv()
                except Exception:
                    return
                await frames.put(f)

        asyncio.ensure_future(pull())

    await pc.setLocalDescription(await pc.createOffer())
    location = None
    if whep:
        status, headers, body = await asyncio.to_thread(
            post, url, pc.localDescription.sdp.encode(), "application/sdp"
        )
        assert status == 201, body
        location = headers.get("Location")
        answer = RTCSessionDescription(sdp=body.decode(), type="answer")
    else:
        offer = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
        status, _, body = await asyncio.to_thread(post, url, offer, "application/json")
        assert status == 200, body
        a = json.loads(body)
        assert a["type"] == "answer"
        answer = RTCSessionDescription(sdp=a["sdp"], type="answer")
    await pc.setRemoteDescription(answer)
    frame = await asyncio.wait_for(frames.get(), 15)
    # A few more, so the picture is past any first-frame artefacts.
    for _ in range(2):
        try:
            frame = await asyncio.wait_for(frames.get(), 2)
        except asyncio.TimeoutError:
            break
    return frame.to_ndarray(format="rgb24"), pc, channel, location


@pytest.mark.parametrize("whep", [False, True], ids=["json", "whep"])
async def test_aiortc_receives_the_picture_and_its_event_reaches_the_program(whep: bool) -> None:
    hub = await framehub.serve_server(port=0)
    try:
        # Without has_h264 the stream offers WebSocket viewers no H.264, and
        # still serves peers: its chain runs for them alone.
        display = hub.add_stream("cam", 160, 96, has_h264=not whep)
        img = picture(160, 96)
        stop = asyncio.Event()

        async def publish() -> None:
            while not stop.is_set():
                display.publish(img)
                await asyncio.sleep(0.05)

        publisher = asyncio.ensure_future(publish())
        route = "whep" if whep else "webrtc"
        got, pc, channel, location = await view(f"http://127.0.0.1:{hub.port}/cam/{route}", whep)
        try:
            assert got.shape == (96, 160, 3)
            left = got[:, :70].reshape(-1, 3).mean(0)
            right = got[:, 90:].reshape(-1, 3).mean(0)
            assert np.abs(left - (230, 120, 20)).max() < 20, left
            assert np.abs(right - (20, 160, 170)).max() < 20, right

            # rtcbot-style: JSON text on the 'default' channel.
            display.poll_events()
            for _ in range(100):
                if channel.readyState == "open":
                    break
                await asyncio.sleep(0.05)
            event = {"type": "pointer_down", "x": 40.0, "y": 30.0, "button": 1, "buttons": [1], "modifiers": [], "timestamp": 1.5}
            channel.send(json.dumps({"type": "event", "event": event}))
            events = []
            for _ in range(100):
                events += display.poll_events()
                if events:
                    break
                await asyncio.sleep(0.05)
            assert events, "the event never reached poll_events()"
            ev = events[0].event
            assert ev["type"] == "pointer_down" and ev["x"] == 40.0 and ev["y"] == 30.0, ev
            assert display.client_count == 1
        finally:
            await pc.close()
            stop.set()
            await publisher
        if location:
            # WHEP teardown of a session that is already gone: 404, or 200 if it was still closing.
            req = urllib.request.Request(f"http://127.0.0.1:{hub.port}{location}", method="DELETE")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200
            except urllib.error.HTTPError as e:
                assert e.code == 404
        # The peer's place is freed once it has gone.
        for _ in range(100):
            if display.client_count == 0:
                break
            await asyncio.sleep(0.1)
        assert display.client_count == 0
    finally:
        await hub.aclose()

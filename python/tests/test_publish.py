"""Publishing frames: accepted layouts, refused ones, what a viewer receives."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import framehub
from helpers import decode_image, open_viewer, solid


async def test_rgb_rgba_and_strided_frames_reach_a_viewer() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        viewer = await open_viewer(display.ws_url)
        assert viewer.config["transport"] == "image"
        assert (viewer.config["width"], viewer.config["height"]) == (64, 48)
        assert viewer.config["stream"] == "default"

        # RGB, C-contiguous.
        display.publish(solid(48, 64, (200, 30, 60)))
        header, payload = await viewer.frame()
        assert header["type"] == "image_frame"
        assert header["seq"] == 0
        assert (header["width"], header["height"]) == (64, 48)
        assert header["mime"] == "image/jpeg"
        assert isinstance(header["timestamp_us"], int) and header["timestamp_us"] >= 0
        assert payload[:2] == b"\xff\xd8"
        img = decode_image(payload)
        assert img.shape == (48, 64, 3)
        assert np.abs(img.reshape(-1, 3).mean(0) - (200, 30, 60)).max() < 10
        await viewer.ack(header["seq"])

        # RGBA.
        display.publish(solid(48, 64, (10, 220, 40, 255)))
        header2, payload2 = await viewer.frame()
        assert header2["seq"] > header["seq"]
        assert header2["timestamp_us"] >= header["timestamp_us"]
        assert np.abs(decode_image(payload2).reshape(-1, 3).mean(0) - (10, 220, 40)).max() < 10
        await viewer.ack(header2["seq"])

        # A slice of a larger array: rows contiguous, row stride != W*C.
        big = solid(48, 100, (250, 250, 250))
        big[:, :64] = (30, 60, 200)
        view = big[:, :64]
        assert not view.flags["C_CONTIGUOUS"]
        display.publish(view)
        header3, payload3 = await viewer.frame()
        img3 = decode_image(payload3)
        assert (header3["width"], header3["height"]) == (64, 48)
        # No pixel of the part outside the slice leaks in.
        assert np.abs(img3.reshape(-1, 3).mean(0) - (30, 60, 200)).max() < 10
        assert img3[:, -1].astype(int).sum(axis=1).max() < 450
        await viewer.ack(header3["seq"])

        # A memoryview of a 3-D uint8 buffer.
        display.publish(memoryview(solid(48, 64, (120, 120, 0))))  # type: ignore[arg-type]
        header4, payload4 = await viewer.frame()
        assert np.abs(decode_image(payload4).reshape(-1, 3).mean(0) - (120, 120, 0)).max() < 10
        await viewer.close()
    finally:
        await display.aclose()


async def test_one_dimensional_bytes_at_the_stream_size() -> None:
    display = await framehub.serve(8, 4, port=0)
    try:
        display.publish(bytes(8 * 4 * 3))
        display.publish(bytearray(8 * 4 * 4))
        display.publish(memoryview(bytes(8 * 4 * 4)))
        with pytest.raises(framehub.InvalidFrameError, match=r"8\*4\*4 = 128 \(RGBA\)"):
            display.publish(bytes(10))
    finally:
        await display.aclose()


@pytest.mark.parametrize(
    ("frame", "exc", "message"),
    [
        (np.zeros((4, 8, 3), np.float32), TypeError, r"uint8.*got dtype float32"),
        (np.zeros((4, 8, 3), np.uint16), TypeError, r"got dtype uint16"),
        (np.zeros((4, 8, 3), np.int8), TypeError, r"got dtype int8"),
        (np.zeros((4, 8), np.uint8), ValueError, r"\(H, W, 3\).*got 2 dimension\(s\) of shape \(4, 8\)"),
        (np.zeros((4, 8, 2), np.uint8), ValueError, r"got shape \(4, 8, 2\)"),
        (np.zeros((4, 8, 5), np.uint8), ValueError, r"got shape \(4, 8, 5\)"),
        (np.zeros((2, 4, 8, 3), np.uint8), ValueError, r"got 4 dimension"),
        (np.zeros((0, 8, 3), np.uint8), ValueError, r"empty frame"),
        (np.zeros((4, 16, 3), np.uint8)[:, ::2], ValueError, r"contiguous.*ascontiguousarray"),
        (np.zeros((4, 8, 3), np.uint8)[::-1], ValueError, r"rows in order"),
        (np.zeros((3, 4, 8), np.uint8).transpose(1, 2, 0), ValueError, r"contiguous"),
        ([[1, 2, 3]], TypeError, r"buffer protocol.*got list"),
        ("frame", TypeError, r"got str"),
        (None, TypeError, r"got NoneType"),
    ],
)
async def test_wrong_frames_are_refused_with_a_clear_message(
    frame: object, exc: type[Exception], message: str
) -> None:
    display = await framehub.serve(8, 4, port=0)
    try:
        with pytest.raises(exc, match=message) as info:
            display.publish(frame)
        if exc is ValueError:
            assert isinstance(info.value, framehub.InvalidFrameError)
            assert isinstance(info.value, framehub.FramehubError)
    finally:
        await display.aclose()


async def test_a_frame_of_a_new_size_resizes_the_stream() -> None:
    display = await framehub.serve(8, 4, port=0)
    try:
        assert (display.width, display.height) == (8, 4)
        display.publish(np.zeros((30, 20, 4), np.uint8))
        assert (display.width, display.height) == (20, 30)
        with pytest.raises(framehub.InvalidFrameError, match="16384"):
            display.publish(np.zeros((1, 20000, 3), np.uint8))
    finally:
        await display.aclose()


async def test_publish_after_close_raises_closed_error() -> None:
    display = await framehub.serve(8, 4, port=0)
    await display.aclose()
    with pytest.raises(framehub.ClosedError):
        display.publish(np.zeros((4, 8, 3), np.uint8))


async def test_publishing_from_a_plain_thread() -> None:
    display = await framehub.serve(32, 16, port=0)
    try:
        viewer = await open_viewer(display.ws_url)
        errors: list[BaseException] = []
        stop = threading.Event()

        def publisher() -> None:
            try:
                i = 0
                while not stop.is_set():
                    display.publish(solid(16, 32, (i % 256, 0, 0)))
                    i += 1
                    stop.wait(0.005)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        t = threading.Thread(target=publisher)
        t.start()
        seqs = []
        try:
            for _ in range(5):
                header, _ = await viewer.frame()
                seqs.append(header["seq"])
                await viewer.ack(header["seq"])
        finally:
            stop.set()
            await asyncio.to_thread(t.join)
        assert not errors
        assert seqs == sorted(seqs) and len(set(seqs)) == 5
        await viewer.close()
    finally:
        await display.aclose()


async def test_publish_copies_so_the_array_can_be_reused_at_once() -> None:
    # The hub recycles frame buffers; what a viewer gets must be the frame
    # as it was at publish(), whatever the program writes into the array next.
    display = await framehub.serve(64, 48, port=0)
    try:
        viewer = await open_viewer(display.ws_url)
        frame = solid(48, 64, (200, 30, 60))
        colours = [(200, 30, 60), (20, 200, 60), (20, 30, 220)]
        for colour in colours:
            frame[:] = colour
            display.publish(frame)
            frame[:] = (255, 255, 255)  # overwritten at once, before any encode
            header, payload = await viewer.frame()
            assert np.abs(decode_image(payload).reshape(-1, 3).mean(0) - colour).max() < 10
            await viewer.ack(header["seq"])
    finally:
        await display.aclose()


async def test_frame_pending_follows_the_encoder() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        assert display.frame_pending is False  # nothing published yet
        display.publish(solid(48, 64, (1, 2, 3)))
        # No viewer: nothing takes it.
        await asyncio.sleep(0.1)
        assert display.frame_pending is True
        viewer = await open_viewer(display.ws_url)
        header, _ = await viewer.frame()
        assert display.frame_pending is False  # encoded and sent
        await viewer.ack(header["seq"])
    finally:
        await display.aclose()

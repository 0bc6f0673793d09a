"""Input events: from a viewer's WebSocket to poll_events() and events()."""

from __future__ import annotations

import asyncio
import json

import pytest

import framehub
from helpers import open_viewer, wait_events


async def test_poll_events_gives_the_event_with_its_viewer_and_time() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        assert display.event_shape == "pdum"
        viewer = await open_viewer(display.ws_url)
        # As pdum.rfb's widget.js sends it: the kind under "type".
        await viewer.send_event({"type": "pointer_down", "x": 1, "y": 2, "button": 1, "timestamp": 2.5})
        [ev] = await wait_events(display, 1)
        assert isinstance(ev, framehub.InputEvent)
        assert ev.client_id == viewer.session
        assert ev.principal is None
        assert isinstance(ev.received_us, int) and ev.received_us > 0
        assert ev.event_type == "pointer_down"
        # pdum.rfb's shape by default: every field the Rust InputEvent has
        # (defaults filled in), the kind under "type", the time under "timestamp".
        pdum_shape = {
            "type": "pointer_down",
            "x": 1.0,
            "y": 2.0,
            "inside": True,
            "pixel_ratio": 1.0,
            "button": 1,
            "buttons": [],
            "modifiers": [],
            "timestamp": 2.5,
        }
        assert ev.event == pdum_shape
        assert next(iter(ev.event)) == "type"
        assert ev.as_pdum() == pdum_shape and ev.as_pdum() is not ev.event
        renderview = dict(pdum_shape, event_type="pointer_down", time_stamp=2.5)
        del renderview["type"], renderview["timestamp"]
        assert ev.as_renderview() == renderview
        assert "pointer_down" in repr(ev)
        assert display.poll_events() == []
        await viewer.close()
    finally:
        await display.aclose()


@pytest.mark.parametrize("kind_key,time_key", [("type", "timestamp"), ("event_type", "time_stamp")])
async def test_the_renderview_shape_on_request(kind_key: str, time_key: str) -> None:
    """``event_shape="renderview"`` hands out ``event_type``/``time_stamp``,
    whichever vocabulary the viewer sent."""
    server = await framehub.serve_server(port=0)
    try:
        rv = server.add_stream("rv", 64, 48, event_shape="renderview")
        pd = server.add_stream("pd", 64, 48, event_shape="pdum")
        assert (rv.event_shape, pd.event_shape) == ("renderview", "pdum")
        assert server.stream("rv").event_shape == "renderview"
        for display in (rv, pd):
            viewer = await open_viewer(display.ws_url)
            await viewer.send_event({kind_key: "wheel", "x": 3, "y": 4, "dy": -48, time_key: 7.25})
            await viewer.send_event({kind_key: "key_up", "key": "q", "code": "KeyQ", time_key: 8.0})
            wheel, key = await wait_events(display, 2)
            if display is rv:
                assert wheel.event["event_type"] == "wheel" and "type" not in wheel.event
                assert wheel.event["time_stamp"] == 7.25 and "timestamp" not in wheel.event
                assert key.event == {"event_type": "key_up", "key": "q", "code": "KeyQ", "modifiers": [], "time_stamp": 8.0}
            else:
                assert wheel.event["type"] == "wheel" and "event_type" not in wheel.event
                assert wheel.event["timestamp"] == 7.25 and "time_stamp" not in wheel.event
                assert key.event == {"type": "key_up", "key": "q", "code": "KeyQ", "modifiers": [], "timestamp": 8.0}
            assert (wheel.event["x"], wheel.event["y"], wheel.event["dy"]) == (3.0, 4.0, -48.0)
            assert wheel.event_type == "wheel" and key.event_type == "key_up"
            assert wheel.as_renderview()["event_type"] == wheel.as_pdum()["type"] == "wheel"
            await viewer.close()
    finally:
        await server.aclose()


async def test_serve_takes_event_shape_and_refuses_an_unknown_one() -> None:
    display = await framehub.serve(64, 48, port=0, event_shape="renderview")
    try:
        viewer = await open_viewer(display.ws_url)
        await viewer.send_event({"type": "pointer_move", "x": 5, "y": 6})
        [ev] = await wait_events(display, 1)
        assert ev.event["event_type"] == "pointer_move" and ev.event["time_stamp"] == 0.0
        await viewer.close()
        with pytest.raises(ValueError, match="event_shape must be 'pdum' or 'renderview', got 'jupyter'"):
            display.server.add_stream("bad", 8, 8, event_shape="jupyter")
        with pytest.raises(TypeError, match="event_shape must be a str"):
            display.server.add_stream("bad", 8, 8, event_shape=1)
        assert "bad" not in display.server.streams
        with pytest.raises(ValueError, match="event_shape"):
            display._native.poll_events("jupyter")
    finally:
        await display.aclose()


async def test_events_async_iterator_yields_in_order_and_ends_on_close() -> None:
    display = await framehub.serve(64, 48, port=0)
    viewer = await open_viewer(display.ws_url)
    got: list[framehub.InputEvent] = []

    async def consume() -> None:
        async for ev in display.events():
            got.append(ev)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await viewer.send_event({"type": "wheel", "x": 5, "y": 6, "dx": 0, "dy": -48, "modifiers": ["Shift"]})
    await viewer.send_event({"event_type": "key_down", "key": "r", "code": "KeyR"})
    await viewer.ws.send(
        json.dumps(
            {"type": "set_viewport", "width": 320, "height": 200, "pwidth": 640, "pheight": 400, "ratio": 2}
        )
    )
    for _ in range(500):
        if len(got) >= 3:
            break
        await asyncio.sleep(0.01)
    kinds = [ev.event["type"] for ev in got]
    assert kinds == ["wheel", "key_down", "resize"], kinds
    wheel, key, resize = got
    assert wheel.event["dy"] == -48.0 and wheel.event["modifiers"] == ["Shift"]
    assert key.event["key"] == "r" and key.event["code"] == "KeyR"
    assert resize.event["pwidth"] == 640 and resize.event["ratio"] == 2.0
    assert all(ev.client_id == viewer.session for ev in got)
    assert [ev.received_us for ev in got] == sorted(ev.received_us for ev in got)

    await display.aclose()
    await asyncio.wait_for(task, 5)  # the iterator ends when the hub closes


async def test_a_cancelled_wait_loses_no_event() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        viewer = await open_viewer(display.ws_url)
        it = display.events().__aiter__()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(it.__anext__(), 0.1)
        await viewer.send_event({"event_type": "pointer_move", "x": 3, "y": 4})
        await viewer.send_event({"event_type": "pointer_move", "x": 5, "y": 6})
        got = await wait_events(display, 2)
        assert [(e.event["x"], e.event["y"]) for e in got] == [(3.0, 4.0), (5.0, 6.0)]
        # And a fresh iterator still works.
        await viewer.send_event({"event_type": "pointer_up", "x": 7, "y": 8, "button": 1})
        ev = await asyncio.wait_for(display.events().__anext__(), 5)
        assert ev.event["type"] == "pointer_up"
        await viewer.close()
    finally:
        await display.aclose()


async def test_invalid_events_are_dropped_not_delivered() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        viewer = await open_viewer(display.ws_url)
        await viewer.send_event({"event_type": "explode"})
        await viewer.send_event({"event_type": "pointer_move", "x": 1e300, "y": 0})
        await viewer.send_event({"event_type": "pointer_move", "x": 9, "y": 9})
        [ev] = await wait_events(display, 1)
        assert ev.event["x"] == 9.0
        await asyncio.sleep(0.1)
        assert display.poll_events() == []
        await viewer.close()
    finally:
        await display.aclose()


async def test_input_none_delivers_nothing() -> None:
    display = await framehub.serve(64, 48, port=0, input="none")
    try:
        viewer = await open_viewer(display.ws_url)
        await viewer.send_event({"event_type": "pointer_move", "x": 1, "y": 1})
        await asyncio.sleep(0.3)
        assert display.poll_events() == []
        await viewer.close()
    finally:
        await display.aclose()


async def test_events_from_two_viewers_carry_their_ids() -> None:
    display = await framehub.serve(64, 48, port=0)
    try:
        a = await open_viewer(display.ws_url)
        b = await open_viewer(display.ws_url)
        assert a.session != b.session
        await a.send_event({"event_type": "pointer_move", "x": 1, "y": 1})
        await b.send_event({"event_type": "pointer_move", "x": 2, "y": 2})
        got = await wait_events(display, 2)
        by_x = {ev.event["x"]: ev.client_id for ev in got}
        assert by_x == {1.0: a.session, 2.0: b.session}
        assert display.client_count == 2
        await a.close()
        await b.close()
    finally:
        await display.aclose()


async def test_events_of_a_removed_stream_end_every_time() -> None:
    server = await framehub.serve_server(port=0)
    try:
        d = server.add_stream("gone", 8, 8)
        server.remove_stream("gone")
        for _ in range(3):  # waiting again after the end answers at once
            assert [ev async for ev in d.events()] == []
            assert await asyncio.wait_for(d._native.wait_event_async(asyncio.get_running_loop()), 5) is False
            assert await asyncio.to_thread(d._native.wait_event, 1.0) is False
    finally:
        await server.aclose()

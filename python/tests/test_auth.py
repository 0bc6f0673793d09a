"""Authenticators: sync and async callables, accept, refuse (4401), errors, timeouts."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

import framehub
from helpers import open_viewer, refused_code, wait_events


async def test_sync_authenticator_admits_with_a_principal_and_sees_the_context() -> None:
    seen: list[framehub.AuthContext] = []

    def authenticate(ctx: framehub.AuthContext) -> Any:
        seen.append(ctx)
        return {"alice-token": "alice"}.get(ctx.token or "")

    display = await framehub.serve(32, 32, port=0, authenticate=authenticate)
    try:
        viewer = await open_viewer(display.ws_url + "?mode=x", token="alice-token")
        [ctx] = seen
        assert ctx.token == "alice-token"
        assert ctx.stream == "default"
        assert ctx.path == "/default"
        assert ctx.query == {"mode": "x"}
        assert ctx.hello["token"] == "alice-token"
        assert ctx.hello["supported"] == ["image/jpeg"]
        assert "host" in ctx.headers
        assert ctx.remote is not None and ctx.remote[0] == "127.0.0.1"
        assert isinstance(ctx.cookies, dict)
        assert "alice-token" not in repr(ctx)

        await viewer.send_event({"event_type": "pointer_down", "x": 1, "y": 1, "button": 1})
        [ev] = await wait_events(display, 1)
        assert ev.principal == "alice"
        await viewer.close()

        assert await refused_code(display.ws_url, token="mallory") == 4401
        assert await refused_code(display.ws_url) == 4401
    finally:
        await display.aclose()


async def test_async_authenticator_runs_on_the_hubs_loop() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def authenticate(ctx: framehub.AuthContext) -> Any:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0.01)
        if ctx.token == "good":
            return 42  # any object: its str() is the principal
        return None

    display = await framehub.serve(32, 32, port=0, authenticate=authenticate)
    try:
        viewer = await open_viewer(display.ws_url, token="good")
        assert loops == [asyncio.get_running_loop()]
        await viewer.send_event({"event_type": "key_down", "key": "a"})
        [ev] = await wait_events(display, 1)
        assert ev.principal == "42"
        await viewer.close()
        assert await refused_code(display.ws_url, token="bad") == 4401
    finally:
        await display.aclose()


async def test_true_admits_without_principal_and_false_refuses() -> None:
    display = await framehub.serve(32, 32, port=0, authenticate=lambda ctx: ctx.token == "yes")
    try:
        viewer = await open_viewer(display.ws_url, token="yes")
        await viewer.send_event({"event_type": "key_down", "key": "a"})
        [ev] = await wait_events(display, 1)
        assert ev.principal is None
        await viewer.close()
        assert await refused_code(display.ws_url, token="no") == 4401
    finally:
        await display.aclose()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_exception_refuses_and_is_logged(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(ctx: framehub.AuthContext) -> Any:
        raise RuntimeError("database down")

    async def aboom(ctx: framehub.AuthContext) -> Any:
        raise RuntimeError("database down")

    display = await framehub.serve(32, 32, port=0, authenticate=boom if kind == "sync" else aboom)
    try:
        with caplog.at_level(logging.ERROR, logger="framehub"):
            assert await refused_code(display.ws_url, token="t") == 4401
            for _ in range(100):
                if caplog.records:
                    break
                await asyncio.sleep(0.01)
        [record] = [r for r in caplog.records if r.name == "framehub"]
        assert "authenticate raised" in record.getMessage()
        assert record.exc_info is not None and "database down" in str(record.exc_info[1])
    finally:
        await display.aclose()


async def test_a_slow_async_authenticator_times_out_and_refuses() -> None:
    cancelled = asyncio.Event()

    async def slow(ctx: framehub.AuthContext) -> Any:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    display = await framehub.serve(32, 32, port=0, authenticate=slow)
    try:
        t0 = time.monotonic()
        assert await refused_code(display.ws_url, timeout=15) == 4401
        assert 4.5 < time.monotonic() - t0 < 10
        await asyncio.wait_for(cancelled.wait(), 2)  # the coroutine was cancelled
    finally:
        await display.aclose()


async def test_per_stream_authenticators_see_their_stream() -> None:
    server = await framehub.serve_server(port=0)
    try:

        def only_admin(ctx: framehub.AuthContext) -> str | None:
            return "root" if ctx.stream == "admin" and ctx.token == "pw" else None

        server.add_stream("admin", 16, 16, authenticate=only_admin)
        server.add_stream("public", 16, 16)
        v = await open_viewer(server.ws_url("public"))
        await v.close()
        v = await open_viewer(server.ws_url("admin"), token="pw")
        await v.close()
        assert await refused_code(server.ws_url("admin")) == 4401
    finally:
        await server.aclose()


async def test_authenticate_must_be_callable() -> None:
    with pytest.raises(TypeError, match="authenticate must be a callable"):
        await framehub.serve(16, 16, port=0, authenticate="nope")

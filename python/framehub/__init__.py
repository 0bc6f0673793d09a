"""framehub: stream live framebuffers from Python to web browsers.

A program publishes frames (numpy ``uint8`` arrays, RGB or RGBA) into named
streams of one hub; browsers view them at ``http://HOST:PORT/<name>`` (the
WebSocket is ``ws://HOST:PORT/<name>``), and their pointer, wheel, keyboard
and resize events come back. The API mirrors pdum.rfb::

    import asyncio, numpy as np, framehub

    async def main():
        display = await framehub.serve(640, 480)   # http://127.0.0.1:8765/
        frame = np.zeros((480, 640, 3), np.uint8)
        for t in range(1000):
            for ev in display.poll_events():
                print(ev.event["type"], ev.event.get("x"), ev.event.get("y"))
            frame[:] = (t % 256, 64, 128)
            display.publish(frame)
            await asyncio.sleep(1 / 30)
        await display.aclose()

    asyncio.run(main())

``framehub.sync`` has the same API without asyncio; ``framehub.asgi.app(server)``
mounts a hub in a Python web app (FastAPI, Starlette: any ASGI server).
"""

from __future__ import annotations

from typing import Any

from . import asgi, sync
from ._aio import Display, Server, connect, serve, serve_server
from ._base import EVENT_SHAPES, DownscaleHint
from ._errors import (
    ClosedError,
    FramehubError,
    InvalidFrameError,
    InvalidNameError,
    StreamExistsError,
    UnknownStreamError,
)
from ._native import STREAM_SETTINGS, AuthContext, InputEvent, __version__


def widget(source: Any, **options: Any) -> Any:
    """A notebook widget (anywidget) showing a stream: ``source`` is a
    ``Display`` or a viewer URL (``ws://HOST:PORT/<name>``). See
    ``framehub.notebook.widget``; needs ``pip install 'framehub[notebook]'``."""
    from .notebook import widget as make

    return make(source, **options)


__all__ = [
    "AuthContext",
    "ClosedError",
    "Display",
    "DownscaleHint",
    "EVENT_SHAPES",
    "FramehubError",
    "InputEvent",
    "InvalidFrameError",
    "InvalidNameError",
    "STREAM_SETTINGS",
    "Server",
    "StreamExistsError",
    "UnknownStreamError",
    "__version__",
    "asgi",
    "connect",
    "serve",
    "serve_server",
    "sync",
    "widget",
]

"""A `rendercanvas <https://rendercanvas.readthedocs.io>`_ backend whose
pixels go to a framehub stream and whose events come from its viewers, so a
pygfx / fastplotlib / wgpu-py program runs unchanged in the browser::

    import asyncio, framehub
    from framehub.rendercanvas import RenderCanvas, loop

    async def main():
        display = await framehub.serve(640, 480, port=8765)
        canvas = RenderCanvas(display=display, size=(640, 480), update_mode="continuous")
        ctx = canvas.get_bitmap_context()          # or a pygfx WgpuRenderer(canvas)

        @canvas.request_draw
        def draw():
            ctx.set_bitmap(render_numpy_rgba())

        await asyncio.sleep(3600)   # rendercanvas's loop runs inside the running asyncio loop

    asyncio.run(main())

Inside a running asyncio loop (``asyncio.run``, Jupyter, marimo)
rendercanvas's asyncio ``loop`` runs by itself; a plain script without
asyncio creates its canvases and calls ``loop.run()``.

Needs ``pip install 'framehub[rendercanvas]'`` (rendercanvas, numpy).

* Present method ``bitmap`` (``rgba-u8``): each frame rendercanvas presents
  is published (copied once; latest wins), so it works with the bitmap
  context and with wgpu on any adapter (wgpu downloads the frame).
* Drawing is paced by the hub's demand: the canvas draws only while some
  viewer watches the stream and the previous frame has left for an encoder
  (``display.client_count``, ``display.frame_pending``). Nobody viewing,
  nothing is rendered; a viewer connecting gets a draw at once.
* Size: the canvas renders at ``size`` (default: the stream's) at pixel
  ratio 1, and the stream follows what is published. With
  ``resize_policy="controller"`` the canvas follows the viewport of the
  viewer whose input is delivered (with ``input="first"`` on the stream,
  the controlling viewer): its ``resize`` events set the canvas's physical
  size and pixel ratio, and the frames (hence the stream) follow.
* Events: the viewers' input (``pointer_down``/``move``/``up``,
  ``pointer_enter``/``leave``, ``double_click``, ``wheel``, ``key_down``/``up``,
  ``char``) becomes rendercanvas events (``event_type``, ``time_stamp``,
  logical coordinates, ``buttons``/``modifiers`` tuples) for
  ``canvas.add_event_handler`` and pygfx controllers; the canvas drains
  ``display.poll_events()`` for that, so a program using this backend reads
  its events from the canvas.
"""

from __future__ import annotations

import importlib.util
from typing import Any

if any(importlib.util.find_spec(m) is None for m in ("rendercanvas", "numpy")):  # pragma: no cover
    raise ModuleNotFoundError(
        "framehub.rendercanvas needs rendercanvas and numpy: pip install 'framehub[rendercanvas]'"
    )

import numpy as np
from rendercanvas.asyncio import loop  # type: ignore[import-untyped]
from rendercanvas.base import BaseCanvasGroup, BaseRenderCanvas  # type: ignore[import-untyped]

from ._base import DownscaleHint

__all__ = ["FramehubRenderCanvas", "RenderCanvas", "loop", "to_rendercanvas_event"]

#: The viewer events handed to the canvas (renderview kinds rendercanvas knows).
FORWARDED = frozenset(
    {
        "pointer_down", "pointer_up", "pointer_move", "pointer_enter", "pointer_leave",
        "double_click", "wheel", "key_down", "key_up", "char",
    }
)
_POINTER = frozenset({"pointer_down", "pointer_up", "pointer_move", "pointer_enter", "pointer_leave", "double_click", "wheel"})

#: While no viewer can take a frame: how often the canvas looks again, s.
_IDLE_POLL_S = 0.05
#: While the previous frame waits for an encoder, s.
_BUSY_POLL_S = 0.004


def to_rendercanvas_event(event: dict[str, Any], pixel_ratio: float = 1.0) -> dict[str, Any] | None:
    """A viewer's event (a dict in either shape: ``ev.as_renderview()``)
    as a rendercanvas event dict, or None for kinds the canvas does not
    take (``resize``, ``downscale``: the backend handles those itself).

    ``pixel_ratio``: the canvas's (framebuffer pixels per logical pixel);
    the hub's coordinates are framebuffer pixels, rendercanvas's logical."""
    kind = event.get("event_type", event.get("type"))
    if kind not in FORWARDED:
        return None
    out = {k: v for k, v in event.items() if k not in ("type", "timestamp", "event_type", "time_stamp")}
    out["event_type"] = kind
    out["time_stamp"] = event.get("time_stamp", event.get("timestamp", 0.0))
    if "modifiers" in out:
        out["modifiers"] = tuple(out["modifiers"])
    if kind in _POINTER:
        r = pixel_ratio if pixel_ratio > 0 else 1.0
        out["x"] = float(out.get("x", 0.0)) / r
        out["y"] = float(out.get("y", 0.0)) / r
        out["buttons"] = tuple(out.get("buttons", ()))
        out.setdefault("button", 0)
        out.setdefault("modifiers", ())
        out.setdefault("ntouches", 0)
        out.setdefault("touches", {})
        if kind == "wheel":
            out["dx"] = float(out.get("dx", 0.0)) / r
            out["dy"] = float(out.get("dy", 0.0)) / r
    return out


class FramehubCanvasGroup(BaseCanvasGroup):  # type: ignore[misc]
    """The canvases of this backend, on rendercanvas's asyncio loop."""


class FramehubRenderCanvas(BaseRenderCanvas):  # type: ignore[misc]
    """A rendercanvas canvas drawing into a framehub stream.

    ``display``: a ``Display`` (``framehub.serve``, ``Server.add_stream``,
    ``framehub.connect``, or their ``framehub.sync`` counterparts).
    ``size``: the logical size ``(w, h)`` (default: the stream's).
    ``resize_policy``: ``"publisher"`` (default: the canvas keeps its size)
    or ``"controller"`` (it follows the delivered viewer's viewport).
    Other keywords go to ``BaseRenderCanvas`` (``update_mode``,
    ``min_fps``, ``max_fps``, ``title``, ...).
    """

    _rc_canvas_group = FramehubCanvasGroup(loop)

    def __init__(
        self,
        *args: Any,
        display: Any,
        size: tuple[int, int] | None = None,
        resize_policy: str = "publisher",
        **kwargs: Any,
    ) -> None:
        if resize_policy not in ("publisher", "controller"):
            raise ValueError(f"resize_policy must be 'publisher' or 'controller', got {resize_policy!r}")
        self._display = display
        self._resize_policy = resize_policy
        self._closed = False
        self._waiting = False
        self._frames_published = 0
        if size is None:
            size = (display.width, display.height)
        super().__init__(*args, size=size, **kwargs)
        self._final_canvas_init()

    @property
    def display(self) -> Any:
        """The stream this canvas draws into."""
        return self._display

    @property
    def frames_published(self) -> int:
        """Frames this canvas has published."""
        return self._frames_published

    # --- demand ---------------------------------------------------------

    def has_demand(self) -> bool:
        """Whether a frame drawn now would reach a viewer: someone views
        the stream and the last frame is no longer waiting for an encoder."""
        try:
            return self._display.client_count > 0 and not self._display.frame_pending
        except Exception:  # the hub is gone
            return False

    def _rc_request_draw(self) -> None:
        if self._closed:
            return
        if self.has_demand():
            self._time_to_draw()
        elif not self._waiting:
            self._waiting = True
            self._rc_canvas_group.get_loop().call_later(self._poll_delay(), self._retry_draw)

    def _poll_delay(self) -> float:
        try:
            busy = self._display.client_count > 0
        except Exception:
            busy = False
        return _BUSY_POLL_S if busy else _IDLE_POLL_S

    def _retry_draw(self) -> None:
        if self._closed:
            self._waiting = False
            return
        if self.has_demand():
            self._waiting = False
            self._time_to_draw()
        else:
            self._rc_gui_poll()  # keep the stream's event queue drained
            self._rc_canvas_group.get_loop().call_later(self._poll_delay(), self._retry_draw)

    # --- present ----------------------------------------------------------

    def _rc_get_present_info(self, present_methods: list[str]) -> dict[str, Any] | None:
        if "bitmap" in present_methods:
            return {"method": "bitmap", "formats": ["rgba-u8"]}
        return None

    def _rc_present_bitmap(self, *, data: Any, format: str, **kwargs: Any) -> None:
        if self._closed:
            return
        frame = np.asarray(data)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 4:
            raise ValueError(f"expected an (H, W, 4) uint8 frame, got {frame.shape} {frame.dtype}")
        try:
            self._display.publish(frame)
        except Exception:
            if getattr(self._display.server, "closed", False):
                self._closed = True
                return
            raise
        self._frames_published += 1

    def _rc_request_paint(self) -> None:
        pass  # the frame was published in _rc_present_bitmap

    def _rc_force_paint(self) -> None:
        self._time_to_paint()

    # --- events -------------------------------------------------------------

    def _rc_gui_poll(self) -> None:
        if self._closed:
            return
        try:
            events = self._display.poll_events()
        except Exception:
            return
        ratio = self._size_info["total_pixel_ratio"]
        for ev in events:
            if isinstance(ev, DownscaleHint):
                continue
            e = ev.as_renderview()
            kind = e.get("event_type")
            if kind == "resize":
                if self._resize_policy == "controller":
                    self._follow_viewport(e)
                continue
            rc = to_rendercanvas_event(e, ratio)
            if rc is not None:
                self.submit_event(rc)

    def _follow_viewport(self, e: dict[str, Any]) -> None:
        pw, ph = int(e.get("pwidth", 0)), int(e.get("pheight", 0))
        r = float(e.get("ratio", 1.0)) or 1.0
        if pw <= 0 or ph <= 0:
            pw, ph = round(float(e.get("width", 0)) * r), round(float(e.get("height", 0)) * r)
        if pw > 0 and ph > 0:
            self._size_info.set_physical_size(pw, ph, r)

    # --- size and life --------------------------------------------------------

    def _rc_set_logical_size(self, width: float, height: float) -> None:
        self._size_info.set_physical_size(max(1, round(width)), max(1, round(height)), 1.0)

    def _rc_close(self) -> None:
        self._closed = True

    def _rc_get_closed(self) -> bool:
        return self._closed

    def _rc_set_title(self, title: str) -> None:
        pass

    def _rc_set_cursor(self, cursor: str) -> None:
        pass


#: The name every rendercanvas backend exports.
RenderCanvas = FramehubRenderCanvas

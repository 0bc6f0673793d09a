"""A pygfx scene (a lit, spinning cube) rendered by wgpu and streamed through
framehub's rendercanvas backend; drag in the browser to orbit the camera,
wheel to zoom.

    pip install 'framehub[rendercanvas]' pygfx
    python pygfx_cube.py                    # then open http://127.0.0.1:8765/
    python pygfx_cube.py --port 0 --seconds 5

It renders only while someone views the stream. wgpu needs an adapter: a
GPU, or a software one (Debian: ``apt install mesa-vulkan-drivers`` gives
lavapipe). Without one it exits with status 2 and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import framehub


def adapter_or_exit() -> None:
    try:
        import wgpu
    except ModuleNotFoundError:
        sys.exit("pygfx_cube.py needs wgpu and pygfx: pip install pygfx")
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as e:  # wgpu raises when no backend has an adapter
        adapter = None
        why = f" ({e})"
    else:
        why = ""
    if adapter is None:
        print(
            f"pygfx_cube.py: wgpu found no GPU adapter{why}; install a GPU driver or a "
            "software one (Debian: apt install mesa-vulkan-drivers)",
            file=sys.stderr,
        )
        sys.exit(2)


async def main(args: argparse.Namespace) -> None:
    import pygfx as gfx

    from framehub.rendercanvas import RenderCanvas, loop

    display = await framehub.serve(args.width, args.height, host=args.host, port=args.port)
    print(f"open {display.url} in a browser (WebSocket {display.ws_url})", flush=True)
    canvas = RenderCanvas(display=display, size=(args.width, args.height), update_mode="continuous", max_fps=args.fps)
    renderer = gfx.renderers.WgpuRenderer(canvas)
    scene = gfx.Scene()
    scene.add(gfx.Background.from_color("#202428"))
    cube = gfx.Mesh(gfx.box_geometry(200, 200, 200), gfx.MeshPhongMaterial(color="#3a8fd8"))
    scene.add(cube)
    scene.add(gfx.AmbientLight(intensity=0.4))
    light = gfx.DirectionalLight(intensity=2.5)
    light.local.position = (1, 2, 3)
    scene.add(light)
    camera = gfx.PerspectiveCamera(60, args.width / args.height)
    camera.show_object(cube, scale=1.6)
    gfx.OrbitController(camera, register_events=renderer)
    t0 = time.monotonic()

    def animate() -> None:
        t = time.monotonic() - t0
        cube.local.rotation = _euler(0.5 * t, 0.8 * t)
        renderer.render(scene, camera)

    canvas.request_draw(animate)
    # rendercanvas's asyncio loop runs inside this running asyncio loop by
    # itself (from a plain script without asyncio: loop.run()).
    try:
        await asyncio.sleep(1e9 if args.seconds is None else args.seconds)
    finally:
        canvas.close()
        loop.stop()
        print(f"published {canvas.frames_published} frames", flush=True)
        await display.aclose()


def _euler(x: float, y: float) -> tuple[float, float, float, float]:
    """The quaternion (x, y, z, w) of a rotation by x about X then y about Y."""
    import math

    cx, sx = math.cos(x / 2), math.sin(x / 2)
    cy, sy = math.cos(y / 2), math.sin(y / 2)
    return (sx * cy, cx * sy, -sx * sy, cx * cy)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--fps", type=float, default=60)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    adapter_or_exit()
    asyncio.run(main(args))

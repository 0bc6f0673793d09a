"""A notebook widget (Jupyter, JupyterLab, VS Code, marimo) showing a
framehub stream: ``display.widget()`` or ``framehub.widget(display_or_url)``.

Needs the ``notebook`` extra (``pip install 'framehub[notebook]'``:
anywidget). The widget's front-end is framehub's own browser client
(``RemoteFramebufferView``), bundled from the files embedded in the package,
so it loads without network access. Frames go over a WebSocket straight
from the widget to the hub, never through the kernel's comm, and the
viewer's input goes straight to the hub (it reaches ``poll_events()`` while
a cell is running). The comm carries only the options below, and once a
second the view's figures (``widget.stats``).

Where the widget connects, in order: ``url`` when given; the
jupyter-server-proxy path ``<base_url>proxy/<port>/<stream>`` (``wss`` on an
https page) when Jupyter serves the page and the proxy reaches the hub; the
page's host at the hub's port.
"""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import unquote, urlsplit

if importlib.util.find_spec("anywidget") is None:  # pragma: no cover - only without the extra
    raise ModuleNotFoundError("framehub's notebook widget needs anywidget: pip install 'framehub[notebook]'")

import anywidget
import traitlets

from . import _bundle
from ._base import StreamBase

__all__ = ["FramehubWidget", "widget"]


class FramehubWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """A live view of one framehub stream in a notebook cell.

    Displaying it again makes another view (its own WebSocket); removing
    the output or ``close()`` closes the view's WebSocket.
    """

    _esm = _bundle.widget_module()

    # Where (changing one reconnects).
    url = traitlets.Unicode("").tag(sync=True)
    port = traitlets.Int(0).tag(sync=True)
    stream = traitlets.Unicode("default").tag(sync=True)
    host = traitlets.Unicode("").tag(sync=True)
    proxy = traitlets.Bool(True).tag(sync=True)
    token = traitlets.Unicode("").tag(sync=True)
    image_only = traitlets.Bool(False).tag(sync=True)
    input = traitlets.Bool(True).tag(sync=True)
    # How.
    fit = traitlets.Unicode("contain").tag(sync=True)
    height = traitlets.Union([traitlets.Int(), traitlets.Unicode()], default_value=480).tag(sync=True)
    width = traitlets.Union([traitlets.Int(), traitlets.Unicode()], default_value="100%").tag(sync=True)
    status = traitlets.Bool(True).tag(sync=True)
    report_stats = traitlets.Bool(True).tag(sync=True)
    # From the front-end: the last view's figures (fps, latency_ms, ...).
    stats = traitlets.Dict().tag(sync=True)

    @traitlets.validate("fit")
    def _check_fit(self, proposal: Any) -> str:
        if proposal["value"] not in ("contain", "cover", "fill"):
            raise traitlets.TraitError(f"fit must be 'contain', 'cover' or 'fill', got {proposal['value']!r}")
        return str(proposal["value"])


_OPTIONS = ("url", "token", "image_only", "input", "fit", "height", "width", "status", "proxy", "report_stats")


def widget(source: Any, **options: Any) -> FramehubWidget:
    """A widget showing ``source``: a ``Display`` (of ``framehub.serve``,
    ``Server.add_stream``, ``framehub.sync``), or a viewer URL
    (``ws://HOST:PORT/<name>``, ``http://HOST:PORT/<name>``, ``wss://``...).

    Options: ``url`` (connect there instead), ``token`` (sent in the
    viewer's hello), ``fit`` (``"contain"``, ``"cover"``, ``"fill"``),
    ``image_only`` (no H.264 even where the browser has WebCodecs),
    ``input`` (False: view only), ``height`` / ``width`` (pixels or a CSS
    length; 480 and ``"100%"``), ``status`` (the status line: state, size,
    fps, latency; True), ``proxy`` (False: never use jupyter-server-proxy),
    ``report_stats`` (the view's figures in ``widget.stats`` once a second; True).
    """
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"widget() got unknown options: {', '.join(sorted(unknown))}")
    traits: dict[str, Any] = {}
    if isinstance(source, StreamBase):
        traits.update(port=source.port, stream=source.name, host=_host_of(source.ws_url))
        if source.port == 0 and not options.get("url"):
            raise ValueError("the stream's hub does not listen on a port: pass url=")
    elif isinstance(source, str):
        parts = urlsplit(source)
        if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
            raise ValueError(f"not a viewer URL: {source!r}")
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        traits["url"] = f"{scheme}://{parts.netloc}{parts.path or '/'}"
        traits["stream"] = unquote(parts.path.strip("/").split("/")[-1] or "default")
        traits["host"] = parts.hostname
        if parts.port:
            traits["port"] = parts.port
    else:
        raise TypeError(f"widget() takes a Display or a URL, got {type(source).__name__}")
    traits.update(options)
    return FramehubWidget(**traits)


def _host_of(url: str) -> str:
    return urlsplit(url).hostname or "127.0.0.1"

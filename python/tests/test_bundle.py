"""framehub._bundle: the browser client inlined into one ES module, and the
widget() front door's argument checks (no browser: test_notebook.py has those)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from framehub import _bundle, _native


def test_bundle_inlines_imports_exports_and_reexports(tmp_path: Path) -> None:
    sources = {
        "a.js": "export const X = 2;\nexport function twice(v) {\n  return v * X;\n}\n",
        "b.js": "import { twice as t, X } from './a.js';\nexport { X as Y } from './a.js';\n"
                "export class K {\n  get v() { return t(X); }\n}\nexport default K;\n",
    }
    code, var = _bundle.bundle(sources, "b.js")
    assert code.index("const __fh_a") < code.index("const __fh_b") and var == "__fh_b"
    assert "import" not in code.replace("import.meta", "")
    node = shutil.which("node")
    if node:
        mod = tmp_path / "m.mjs"
        mod.write_text(code + f"console.log(new {var}.K().v, {var}.Y, {var}.default === {var}.K);\n")
        out = subprocess.run([node, str(mod)], capture_output=True, text=True, timeout=30)
        assert out.stdout.split() == ["4", "2", "true"], out.stderr


def test_bundle_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unsupported module syntax"):
        _bundle.bundle({"a.js": "import * as m from './b.js';\n", "b.js": ""}, "a.js")
    with pytest.raises(ValueError, match="not found"):
        _bundle.bundle({"a.js": "import { x } from './nope.js';\n"}, "a.js")


def test_client_module_is_the_embedded_client() -> None:
    assert "framehub.js" in _native.web_asset_names()
    assert _native.web_asset("nope.js") is None
    code = _bundle.client_module()
    for name in ("framehub.js", "transport.js", "display.js", "input.js", "decoder-h264.js"):
        assert f"// --- {name}" in code
    assert "export default __fh_framehub.RemoteFramebufferView" in code
    node = shutil.which("node")
    if node:
        out = subprocess.run([node, "--input-type=module", "--check"], input=_bundle.widget_module(),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr


@pytest.mark.skipif(importlib.util.find_spec("anywidget") is None, reason="anywidget is not installed")
def test_widget_arguments() -> None:
    import framehub
    import framehub.sync as fh

    display = fh.serve(64, 48, port=0)
    try:
        w = display.widget(height=200, fit="cover", token="t")
        assert (w.port, w.stream, w.host, w.height, w.fit, w.token) == (display.port, "default", "127.0.0.1", 200, "cover", "t")
        assert w.url == ""
        u = framehub.widget("http://example.org:9000/cam")
        assert (u.url, u.stream, u.port) == ("ws://example.org:9000/cam", "cam", 9000)
        with pytest.raises(TypeError, match="unknown options"):
            display.widget(colour="red")
        with pytest.raises(ValueError, match="not a viewer URL"):
            framehub.widget("ftp://x/y")
        with pytest.raises(Exception, match="fit"):
            display.widget(fit="stretch")
    finally:
        display.close()

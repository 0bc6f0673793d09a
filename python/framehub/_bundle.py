"""framehub's browser client as one ES module string, for hosts that load a
single module and have no hub to fetch files from (the notebook widget).

The client's ES modules (``web/``: ``framehub.js`` and what it imports) are
embedded in the extension module as the hub serves them
(``framehub._native.web_asset``). :func:`client_module` inlines them,
dependency-free, in import order: each module becomes a function scope that
returns its exports, and each ``import {a, b as c} from './m.js'`` becomes a
destructuring of that module's exports. Only the module syntax ``web/``
uses is understood (named imports and exports at the start of a line,
``export { ... } from``, ``export default``); anything else raises
``ValueError`` so a change of style in ``web/`` shows up in the tests.
"""

from __future__ import annotations

import re

from . import _native

__all__ = ["bundle", "client_module", "widget_module"]

_IMPORT = re.compile(r"^import\s*\{([^}]*)\}\s*from\s*'\./([\w.-]+\.js)';?[ \t]*$", re.M)
_REEXPORT = re.compile(r"^export\s*\{([^}]*)\}\s*from\s*'\./([\w.-]+\.js)';?[ \t]*$", re.M)
_DECL = re.compile(r"^export\s+((?:async\s+)?function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)", re.M)
_DEFAULT = re.compile(r"^export\s+default\s+([A-Za-z_$][\w$]*)\s*;?[ \t]*$", re.M)
_OTHER = re.compile(r"^\s*(import|export)\b(?!\.meta)", re.M)


def _names(spec: str) -> list[tuple[str, str]]:
    """``a, b as c`` -> [(a, a), (b, c)] (exported name, local name)."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        bits = part.split()
        if len(bits) == 1:
            out.append((bits[0], bits[0]))
        elif len(bits) == 3 and bits[1] == "as":
            out.append((bits[0], bits[2]))
        else:
            raise ValueError(f"unsupported import/export specifier {part!r}")
    return out


def _var(module: str) -> str:
    return "__fh_" + re.sub(r"\W", "_", module[:-3])


def bundle(sources: dict[str, str], entry: str) -> tuple[str, str]:
    """Inlines ``entry`` and the modules it imports (from ``sources``, by
    file name) into one script; returns it and the variable holding the
    entry's exports (an object)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in path:
            raise ValueError(f"import cycle: {' -> '.join(path + (name,))}")
        if name not in sources:
            raise ValueError(f"module {name!r} not found")
        for m in _IMPORT.finditer(sources[name]):
            visit(m.group(2), path + (name,))
        for m in _REEXPORT.finditer(sources[name]):
            visit(m.group(2), path + (name,))
        seen.add(name)
        order.append(name)

    visit(entry, ())
    parts = ["// framehub browser client, bundled from web/ by framehub._bundle\n"]
    for name in order:
        src = sources[name]
        head: list[str] = []
        exports: list[tuple[str, str]] = []  # (exported name, expression)

        def imp(m: re.Match[str]) -> str:
            pairs = ", ".join(a if a == b else f"{a}: {b}" for a, b in _names(m.group(1)))
            head.append(f"const {{ {pairs} }} = {_var(m.group(2))};")
            return ""

        def reexp(m: re.Match[str]) -> str:
            for a, b in _names(m.group(1)):
                exports.append((b, f"{_var(m.group(2))}.{a}"))
            return ""

        def decl(m: re.Match[str]) -> str:
            exports.append((m.group(2), m.group(2)))
            return f"{m.group(1)} {m.group(2)}"

        def default(m: re.Match[str]) -> str:
            exports.append(("default", m.group(1)))
            return ""

        src = _IMPORT.sub(imp, src)
        src = _REEXPORT.sub(reexp, src)
        src = _DECL.sub(decl, src)
        src = _DEFAULT.sub(default, src)
        left = _OTHER.search(src)
        if left:
            line = src[left.start() : src.find("\n", left.start())]
            raise ValueError(f"{name}: unsupported module syntax: {line.strip()!r}")
        ret = ", ".join(k if k == v else f"{k}: {v}" for k, v in exports)
        parts.append(
            f"// --- {name}\nconst {_var(name)} = (() => {{\n"
            + "".join(h + "\n" for h in head)
            + src
            + f"\nreturn Object.freeze({{ {ret} }});\n}})();\n"
        )
    return "".join(parts), _var(entry)


def _client() -> tuple[str, str]:
    sources = {}
    for name in _native.web_asset_names():
        if name.endswith(".js"):
            data = _native.web_asset(name)
            assert data is not None
            sources[name] = data.decode("utf-8")
    return bundle(sources, "framehub.js")


_cache: dict[str, str] = {}


def client_module() -> str:
    """The browser client (``RemoteFramebufferView`` and the rest of
    ``framehub.js``'s exports) as one ES module, from the files embedded
    in the extension module."""
    if "client" not in _cache:
        code, var = _client()
        exports = "RemoteFramebufferView, streamUrl, formatBitrate, VERSION, supportedFormats"
        _cache["client"] = (
            code + f"export const {{ {exports} }} = {var};\nexport default {var}.RemoteFramebufferView;\n"
        )
    return _cache["client"]


def widget_module() -> str:
    """The notebook widget's anywidget module: the client followed by
    ``_widget.js`` (shipped next to this file), which uses its
    ``RemoteFramebufferView``."""
    from importlib.resources import files

    if "widget" not in _cache:
        code, var = _client()
        widget = files(__package__).joinpath("_widget.js").read_text("utf-8")
        _cache["widget"] = code + f"const {{ RemoteFramebufferView, formatBitrate }} = {var};\n" + widget
    return _cache["widget"]

"""The .pyi stubs match the extension module; the package's public names import."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import framehub
from framehub import _native

STUB = Path(framehub.__file__).parent / "_native.pyi"


def stub_members() -> dict[str, set[str]]:
    """Top-level names of the stub: {name: members} (empty for non-classes)."""
    tree = ast.parse(STUB.read_text())
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = set()
        elif isinstance(node, ast.FunctionDef):
            out[node.name] = set()
    return out


def test_every_stub_name_exists_in_the_extension() -> None:
    for name, members in stub_members().items():
        obj = getattr(_native, name)
        for member in members:
            assert hasattr(obj, member), f"{name}.{member} is in the stub but not in the module"


def test_every_public_extension_name_is_in_the_stub() -> None:
    stub = stub_members()
    for name in dir(_native):
        if name.startswith("_") and name != "__version__":
            continue
        assert name in stub, f"{name} is missing from _native.pyi"
        obj = getattr(_native, name)
        if isinstance(obj, type):
            public = {m for m in vars(obj) if not m.startswith("_")}
            assert public <= stub[name], f"{name}: {public - stub[name]} missing from the stub"


def test_public_names_import() -> None:
    for name in framehub.__all__:
        assert getattr(framehub, name) is not None
    for mod in ("framehub.sync", "framehub._errors", "framehub._native"):
        importlib.import_module(mod)
    assert issubclass(framehub.InvalidFrameError, ValueError)
    assert issubclass(framehub.StreamExistsError, framehub.FramehubError)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_stubtest(tmp_path: Path) -> None:
    env = dict(os.environ, MYPY_CACHE_DIR=str(Path(__file__).parent.parent.parent / "target" / "mypy-cache"))
    # anywidget has no type information: the widget's metaclass is unknown to mypy.
    allow = tmp_path / "allowlist.txt"
    allow.write_text("framehub.notebook.FramehubWidget\n")
    r = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "framehub", "--allowlist", str(allow)],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr

#!/usr/bin/env bash
# Builds the framehub Python package and runs its tests (python/tests/).
#
# A venv under target/py-venv (created once) gets maturin, pytest,
# pytest-asyncio, websockets, numpy, matplotlib, mypy, for framehub.asgi
# uvicorn, starlette, fastapi and httpx, and selenium (which drives Debian's
# chromium through its chromedriver in test_pdum_widget.py, test_asgi.py and
# test_notebook.py; the first also pip-downloads pdum.rfb's wheel into
# target/); for the notebook widget anywidget, jupyterlab,
# jupyter-server-proxy and marimo; for framehub.rendercanvas rendercanvas,
# wgpu and pygfx (wgpu renders on lavapipe, scripts/setup); aiortc (an
# independent WebRTC client for test_webrtc.py); the package is
# built as a wheel (release, abi3) with maturin and installed into it; then
# pytest runs. The wheel is rebuilt only when a source it depends on changed,
# so a second run goes straight to the tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/target/py-venv
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
deps="maturin>=1.7,<2 pytest pytest-asyncio websockets numpy matplotlib mypy uvicorn starlette fastapi httpx selenium anywidget jupyterlab jupyter-server-proxy marimo rendercanvas wgpu pygfx aiortc"
if [ "$(cat "$venv/.framehub-deps" 2>/dev/null)" != "$deps" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $deps
  echo "$deps" >"$venv/.framehub-deps"
fi

# Everything the wheel is built from: the workspace's crates and manifests,
# the embedded web client, the Python sources.
inputs_hash() {
  find crates web python/framehub python/pyproject.toml Cargo.toml Cargo.lock \
    -type f -not -path '*/target/*' -not -name '*.pyc' -print0 |
    sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)
if [ "$(cat "$venv/.framehub-built" 2>/dev/null)" != "$hash" ] ||
  ! "$venv/bin/python" -c 'import framehub' 2>/dev/null; then
  wheels=$root/target/py-wheels
  rm -rf "$wheels"
  # FRAMEHUB_PY_PROFILE=dev reuses the workspace's debug build (the test command sets it).
  (cd python && "$venv/bin/maturin" build --profile "${FRAMEHUB_PY_PROFILE:-release}" --quiet -o "$wheels")
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/framehub-*.whl
  echo "$hash" >"$venv/.framehub-built"
fi

cd python
# Run the installed package (pytest's importlib mode keeps python/ off sys.path).
exec "$venv/bin/pytest" "$@"

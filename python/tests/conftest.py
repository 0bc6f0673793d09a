"""pytest hooks: check the installed package is the one under test."""

from __future__ import annotations

from pathlib import Path

import pytest

import framehub

PYTHON_DIR = Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    return f"framehub {framehub.__version__} from {Path(framehub.__file__).parent}"


def pytest_configure(config: pytest.Config) -> None:
    # The tests must run the installed package (with its extension), not python/framehub.
    if Path(framehub.__file__).resolve().parent == PYTHON_DIR / "framehub":
        raise pytest.UsageError(
            "framehub was imported from the source tree; run python/test.sh "
            "(it installs the package and runs pytest in importlib mode)"
        )

"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The official SDKs from PyPI, each in its own virtualenv (made by build_tools/dev.py setup).
OFFICIAL_VENVS = ROOT / ".venvs"


def official_python(name: str) -> Path:
    """The interpreter of an official SDK's virtualenv: "render_sdk-0.4.0" or "render-1.5.0"."""
    python = OFFICIAL_VENVS / name / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `python3 build_tools/dev.py setup` first")
    return python


@pytest.fixture
def sdk040_python() -> Path:
    """Python of the official render_sdk==0.4.0 virtualenv."""
    return official_python("render_sdk-0.4.0")


@pytest.fixture
def render150_python() -> Path:
    """Python of the official render==1.5.0 virtualenv."""
    return official_python("render-1.5.0")

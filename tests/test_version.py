"""The package version is declared in pyproject.toml and in render_sdk/_version.py; they agree."""

from __future__ import annotations

import sys
from pathlib import Path

import render_sdk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has no tomllib; parse the one line instead
    tomllib = None

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pyproject_version() -> str:
    text = PYPROJECT.read_text(encoding="utf-8")
    if tomllib is not None:
        return str(tomllib.loads(text)["project"]["version"])
    for line in text.splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("pyproject.toml has no [project] version line")


def test_pyproject_and_package_version_agree() -> None:
    assert pyproject_version() == render_sdk.__version__

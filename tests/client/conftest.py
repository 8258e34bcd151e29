"""Fixtures of the client tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _clean_render_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's RENDER_* variables."""
    for name in (
        "RENDER_API_KEY",
        "RENDER_USE_LOCAL_DEV",
        "RENDER_LOCAL_DEV_URL",
        "RENDER_WORKSPACE_ID",
        "RENDER_REGION",
    ):
        monkeypatch.delenv(name, raising=False)

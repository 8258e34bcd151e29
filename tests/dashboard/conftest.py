"""Fixtures of the dashboard's browser tests: a real server on a real app, Debian's Chromium."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from dashboard_support import APP, CHROMIUM

from render_sdk.testing import LocalServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    path = tmp_path_factory.mktemp("app")
    (path / "dashapp.py").write_text(textwrap.dedent(APP))
    with LocalServer(app="dashapp:app", cwd=path) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "run build_tools/dev.py setup (it installs Debian's chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--disable-background-networking", "--no-sandbox"],
        )
        yield b
        b.close()

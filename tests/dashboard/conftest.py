"""Fixtures of the dashboard's browser tests: a real server on a real app, Debian's Chromium."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from render_sdk.testing import LocalServer

CHROMIUM = Path("/usr/bin/chromium")
#: Screenshots of every test, kept as artifacts (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"

APP = """
    import time

    from render_sdk import Retry, Workflows

    app = Workflows(default_retry=Retry(max_retries=0, wait_duration_ms=0))


    @app.task
    def square(a: int) -> int:
        return a * a


    @app.task
    async def add_squares(a: int, b: int) -> int:
        return await square(a) + await square(b)


    @app.task
    def sleepy(seconds: float) -> str:
        for i in range(int(seconds * 10)):
            print(f"tick {i}", flush=True)
            time.sleep(0.1)
        return "slept"


    @app.task
    async def parent_of_sleepers(n: int) -> list:
        import asyncio

        return await asyncio.gather(*(sleepy(60) for _ in range(n)))


    @app.task
    def greet(
        name: str, punctuation: str = "!", *rest: str, times: int = 1, **extra: object
    ) -> str:
        return (name + punctuation) * times


    def explode(x):
        raise ValueError(f"bad value {x}")


    @app.task
    def always_fails(x: int) -> None:
        explode(x)
"""


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

"""The dashboard tests' app and paths, shared by their conftest and tests.

A module of its own, with a name no other test folder uses: pytest puts each test folder on
``sys.path``, so ``from conftest import ...`` would get whichever folder's conftest came first.
"""

from __future__ import annotations

from pathlib import Path

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

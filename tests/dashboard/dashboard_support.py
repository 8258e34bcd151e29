"""The dashboard tests' app, paths and HTTP helpers, shared by their conftest and tests.

A module of its own, with a name no other test folder uses: pytest puts each test folder on
``sys.path``, so ``from conftest import ...`` would get whichever folder's conftest came first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

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


#: Generous: the machine may be loaded (the waits end as soon as the condition holds).
WAIT_S = 60.0


def start(client: httpx.Client, task: str, input: Any) -> str:
    resp = client.post("/v1/task-runs", json={"task": task, "input": input})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def wait_status(client: httpx.Client, run_id: str, wanted: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while client.get(f"/v1/task-runs/{run_id}").json()["status"] != wanted:
        assert time.monotonic() < deadline, f"run {run_id} never became {wanted}"
        time.sleep(0.05)


def frames(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in frame:  # not the retry preamble
                out.append(frame)
            if frame:
                frame = {}
            if len(out) == count:
                return out
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        frame[key] = value
    return out

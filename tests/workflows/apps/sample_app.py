"""Tasks the runner tests execute in real subprocesses."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from render_sdk import Retry, Workflows
from render_sdk.workflows import TaskRunError

app = Workflows(default_retry=Retry(max_retries=2, wait_duration_ms=100))


@app.task
def square(a: int) -> int:
    """Square a number."""
    return a * a


@app.task
async def add_squares(a: int, b: int) -> int:
    result1 = await square(a)
    result2 = await square(b)
    return result1 + result2


@app.task
async def fan_out(n: int) -> list[int]:
    return list(await asyncio.gather(*[square(i) for i in range(n)]))


@app.task
async def eager_pair() -> int:
    first = square(1)  # both start here, before either is awaited
    second = square(2)
    return await first + await second


@app.task
def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


@app.task
async def async_echo(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


@app.task
def where_am_i() -> dict[str, Any]:
    return {
        "main_thread": threading.current_thread() is threading.main_thread(),
        "event_loop": asyncio._get_running_loop() is not None,
        "pid": os.getpid(),
    }


@app.task
def boom(message: str) -> None:
    raise ValueError(message)


@app.task
async def async_boom() -> None:
    await asyncio.sleep(0)
    raise KeyError("missing")


@app.task
def bad_result() -> Any:
    return {1, 2}


@app.task
async def call_boom() -> None:
    await boom("child failed")


@app.task
async def catch_boom() -> dict[str, Any]:
    try:
        await boom("child failed")
    except TaskRunError as exc:
        return {"details": exc.details, "id": exc.task_run_id, "status": exc.status}
    return {}


@app.task
async def kw_subtask() -> str:
    return await greet(name="kw", punctuation="?")


@app.task
async def mixed_args() -> str:
    return await greet("a", punctuation="?")  # type: ignore[call-arg]


@app.task
def sync_calls_subtask() -> int:
    return square(2)  # type: ignore[return-value]


@app.task
async def unknown_child() -> int:
    return await square(1)


if __name__ == "__main__":
    app.start()

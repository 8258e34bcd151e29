"""Checked by mypy in test_typing.py (never executed): the task decorator keeps types."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import assert_type

from render_sdk import Options, Retry, Workflows
from render_sdk.workflows import Task

app = Workflows(default_retry=Retry(max_retries=1, wait_duration_ms=10))


@app.task
def square(a: int) -> int:
    return a * a


@app.task()
async def add_squares(a: int, b: int = 2) -> int:
    return await square(a) + await square(b)


@app.task(name="greeting", retry={"max_retries": 2, "wait_duration_ms": 5}, timeout_seconds=30)
def greet(name: str, *, punctuation: str = "!") -> str:
    return name + punctuation


@app.task(timeout=60, plan="starter")
async def nothing() -> None:
    return None


async def parent() -> None:
    as_task: Task[..., int] = square
    assert as_task.name == "square"
    assert_type(square(3), Awaitable[int])
    assert_type(await square(3), int)
    assert_type(await add_squares(1), int)
    assert_type(await add_squares(a=1, b=3), int)
    assert_type(await greet("x", punctuation="?"), str)
    assert_type(await nothing(), None)
    assert_type(await asyncio.gather(square(1), greet("y")), tuple[int, str])
    square.func(3)  # the original function keeps its parameters
    square.func("3")  # type: ignore[arg-type]
    await square("three")  # type: ignore[arg-type]
    await square(1, 2)  # type: ignore[call-arg]
    await greet(name=1)  # type: ignore[arg-type]


assert_type(Options(retry={"max_retries": 1, "wait_duration_ms": 1}).retry, Retry | None)
assert_type(Workflows.from_workflows(app), Workflows)

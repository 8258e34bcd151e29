"""Canned Render responses for ``httpx.MockTransport`` (imported by the client tests)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

BASE = "https://api.render.test"


def split_idempotency_key(content: bytes) -> tuple[bytes, str]:
    """A POST /task-runs body without its trailing ``idempotencyKey``, and the key (a UUID4)."""
    match = re.fullmatch(rb'(.*),"idempotencyKey":"([0-9a-f-]{36})"\}', content, flags=re.S)
    assert match is not None, content
    key = match.group(2).decode()
    assert uuid.UUID(key).version == 4
    return match.group(1) + b"}", key


def details(run_id: str = "trn-1", status: str = "completed", **extra: Any) -> dict[str, Any]:
    """A TaskRunDetails body as Render sends it."""
    body: dict[str, Any] = {
        "id": run_id,
        "taskId": "tsk-1",
        "status": status,
        "results": [25] if status == "completed" else None,
        "input": [5],
        "parentTaskRunId": "",
        "rootTaskRunId": run_id,
        "retries": 0,
        "attempts": [],
        "startedAt": "2026-01-02T03:04:05.123456789Z",
    }
    body.update(extra)
    return body


def task_run(run_id: str = "trn-1", status: str = "pending") -> dict[str, Any]:
    """A TaskRun body (the POST /task-runs response, list items)."""
    return {
        "id": run_id,
        "taskId": "tsk-1",
        "status": status,
        "parentTaskRunId": "",
        "rootTaskRunId": run_id,
        "retries": 0,
        "attempts": [],
    }


def sse(data: dict[str, Any] | str, *, event: str = "task.completed", id: str = "") -> bytes:
    """One server-sent event block."""
    text = data if isinstance(data, str) else json.dumps(data)
    head = f"id: {id}\n" if id else ""
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return f"{head}event: {event}\n{lines}\n".encode()


def sse_response(*chunks: bytes, error: Exception | None = None) -> httpx.Response:
    """A streamed text/event-stream response made of exactly these chunks.

    With ``error``, the stream raises it after the chunks (a dropped connection).
    """

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
        if error is not None:
            raise error

    return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body())


def sse_response_sync(*chunks: bytes, error: Exception | None = None) -> httpx.Response:
    """The synchronous variant of :func:`sse_response`."""

    def body() -> Iterator[bytes]:
        yield from chunks
        if error is not None:
            raise error

    return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body())


class Recorder:
    """A MockTransport handler that records requests and answers from a function."""

    def __init__(self, answer: Callable[[httpx.Request, int], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request, len(self.requests) - 1)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]

"""A real task-socket server for tests: HTTP/1.1 on a Unix socket, speaking the
protocol through the generated types and the codec, as a task server does.

One instance serves one task process (as each attempt gets its own socket). Subtask
outcomes come from ``on_subtask``, which a test supplies (simulated outcomes, or a
real child process on its own server). Every request is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from render_sdk import _wire
from render_sdk._gen.render.tasksocket.v1 import (
    CallbackRequest,
    ErrorResponse,
    GetInputResponse,
    GetSubtaskResultRequest,
    GetSubtaskResultResponse,
    RegisterTasksRequest,
    RunSubtaskRequest,
    RunSubtaskResponse,
    TaskComplete,
    TaskError,
)

#: The server never holds a long poll longer than this (as the contract says).
MAX_WAIT_S = 10.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def complete(value: Any) -> CallbackRequest:
    """A success outcome in Render's encoding."""
    wrapped = value if isinstance(value, list) else [value]
    return CallbackRequest(complete=TaskComplete(output=_wire.encode_json_value(wrapped)))


def failed(details: str, stack_trace: str | None = None) -> CallbackRequest:
    return CallbackRequest(error=TaskError(details=details, stack_trace=stack_trace))


SubtaskHandler = Callable[[str, Any], Awaitable[CallbackRequest | None]]


@dataclass
class _Child:
    name: str
    input_value: Any
    done: asyncio.Future[CallbackRequest | None]


@dataclass
class SocketServer:
    path: str
    task_name: str = ""
    input_value: Any = None
    on_subtask: SubtaskHandler | None = None
    #: path -> number of first requests answered 503 (after reading the body).
    fail_first: dict[str, int] = field(default_factory=dict)
    #: path -> number of first requests whose connection is dropped without an answer.
    drop_first: dict[str, int] = field(default_factory=dict)
    #: Names /run-subtask answers 404 for.
    unknown_tasks: set[str] = field(default_factory=set)
    long_poll: bool = True
    #: A /callback body longer than this is answered 413 (as a server with a smaller cap).
    callback_limit: int | None = None

    requests: list[Recorded] = field(default_factory=list)
    children: dict[str, _Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._by_key: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._callback: asyncio.Future[CallbackRequest] | None = None
        self._registered: asyncio.Future[RegisterTasksRequest] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> SocketServer:
        loop = asyncio.get_running_loop()
        self._callback = self._callback or loop.create_future()
        self._registered = self._registered or loop.create_future()
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            import os

            os.unlink(self.path)

    async def __aenter__(self) -> SocketServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        for child in self.children.values():
            if not child.done.done():
                child.done.cancel()

    async def callback(self, timeout: float = 30) -> CallbackRequest:
        assert self._callback is not None
        return await asyncio.wait_for(asyncio.shield(self._callback), timeout)

    async def registered(self, timeout: float = 30) -> RegisterTasksRequest:
        assert self._registered is not None
        return await asyncio.wait_for(asyncio.shield(self._registered), timeout)

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    # ------------------------------------------------------------------ HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ")
            assert version == "HTTP/1.1", request_line
            headers = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            loop = asyncio.get_running_loop()
            self.requests.append(Recorded(method, target, headers, body, loop.time()))
            count = self._counts[target] = self._counts.get(target, 0) + 1
            if count <= self.drop_first.get(target, 0):
                return  # connection closed without an answer
            if count <= self.fail_first.get(target, 0):
                await self._answer(writer, 503, ErrorResponse(message="try again later"))
                return
            limit = self.callback_limit
            if target == "/callback" and limit is not None and len(body) > limit:
                message = f"body larger than {limit} bytes"
                await self._answer(writer, 413, ErrorResponse(message=message))
                return
            status, message = await self._route(method, target, body)
            await self._answer(writer, status, message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, message: Any) -> None:
        body = b"" if message is None else _wire.dumps(message, _wire.SOCKET)
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            413: "Payload Too Large",
            503: "Service Unavailable",
        }
        head = (
            f"HTTP/1.1 {status} {reason.get(status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        await writer.drain()

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        try:
            if (method, path) == ("GET", "/input"):
                raw = b"" if self.input_value is None else _wire.encode_json_value(self.input_value)
                return 200, GetInputResponse(task_name=self.task_name, input=raw)
            if (method, path) == ("POST", "/register-tasks"):
                request = _wire.loads(RegisterTasksRequest, body, _wire.SOCKET)
                assert self._registered is not None
                if not self._registered.done():
                    self._registered.set_result(request)
                return 200, None
            if (method, path) == ("POST", "/callback"):
                callback = _wire.loads(CallbackRequest, body, _wire.SOCKET)
                assert self._callback is not None
                if not self._callback.done():
                    self._callback.set_result(callback)
                return 200, None
            if (method, path) == ("POST", "/run-subtask"):
                return self._run_subtask(_wire.loads(RunSubtaskRequest, body, _wire.SOCKET))
            if (method, path) == ("POST", "/get-subtask-result"):
                request = _wire.loads(GetSubtaskResultRequest, body, _wire.SOCKET)
                return await self._get_result(request)
        except _wire.WireFormatError as exc:
            return 400, ErrorResponse(message=str(exc))
        return 404, ErrorResponse(message=f"no route {method} {path}")

    def _run_subtask(self, request: RunSubtaskRequest) -> tuple[int, Any]:
        if request.task_name in self.unknown_tasks or self.on_subtask is None:
            return 404, ErrorResponse(message=f"unknown task {request.task_name!r}")
        key = request.idempotency_key or ""
        if key and key in self._by_key:
            return 200, RunSubtaskResponse(task_run_id=self._by_key[key])
        run_id = f"trn-{len(self.children) + 1}"
        if key:
            self._by_key[key] = run_id
        input_value = _wire.decode_json_value(request.input)
        done = asyncio.ensure_future(self.on_subtask(request.task_name, input_value))
        self.children[run_id] = _Child(request.task_name, input_value, done)
        return 200, RunSubtaskResponse(task_run_id=run_id)

    async def _get_result(self, request: GetSubtaskResultRequest) -> tuple[int, Any]:
        child = self.children.get(request.task_run_id)
        if child is None:
            return 404, ErrorResponse(message=f"unknown run {request.task_run_id!r}")
        if not child.done.done() and self.long_poll and request.wait_ms:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(child.done), min(request.wait_ms / 1000, MAX_WAIT_S)
                )
        if not child.done.done():
            return 200, GetSubtaskResultResponse(still_running=True)
        outcome = child.done.result()
        if outcome is None:  # canceled
            return 200, GetSubtaskResultResponse(
                still_running=False, error=TaskError(details="canceled")
            )
        return 200, GetSubtaskResultResponse(
            still_running=False, complete=outcome.complete, error=outcome.error
        )

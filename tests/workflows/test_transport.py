"""The socket client: HTTP parsing, status mapping and retry timing without processes,
plus real-socket runs of the retry loop with injected (short) timings."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import pytest

from render_sdk._errors import ClientError, RateLimitError, ServerError, TimeoutError
from render_sdk._gen.render.tasksocket.v1 import GetInputResponse, RegisterTasksRequest
from render_sdk.workflows import Workflows, _runner
from render_sdk.workflows._errors import RunnerError
from render_sdk.workflows._transport import (
    AsyncSocketClient,
    ProtocolError,
    Response,
    ResponseParser,
    SyncSocketClient,
    TransportPolicy,
    build_request,
    error_for_response,
    is_transient,
)

from .socket_server import SocketServer

FAST = TransportPolicy(max_attempts=4, backoff_base_s=0.01, backoff_cap_s=0.02, request_timeout_s=2)


def test_default_backoff_is_capped_and_about_five_minutes() -> None:
    policy = TransportPolicy()
    delays = [policy.retry_delay(n) for n in range(policy.max_attempts - 1)]
    assert delays[:7] == [0.25, 0.5, 1, 2, 4, 8, 16]
    assert max(delays) == 16
    assert sum(delays) == 303.75
    assert [policy.poll_delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_request_bytes() -> None:
    raw = build_request("POST", "/callback", b'{"a":1}')
    head, body = raw.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /callback HTTP/1.1"
    assert "Host: localhost" in lines
    assert "Connection: close" in lines
    assert "Content-Length: 7" in lines
    assert "Content-Type: application/json" in lines
    assert body == b'{"a":1}'
    assert b"Content-Length" not in build_request("GET", "/input")


@pytest.mark.parametrize("split", [1, 5, 17, 1000])
def test_parser_content_length_and_chunked_in_pieces(split: int) -> None:
    for raw, body in [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
    ]:
        parser = ResponseParser()
        result = None
        for i in range(0, len(raw), split):
            result = parser.feed(raw[i : i + split]) or result
        assert result is not None
        assert result.body == body


def test_parser_until_eof_and_errors() -> None:
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\npartial") is None
    assert parser.feed_eof().body == b"partial"
    truncated = ResponseParser()
    truncated.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="closed the connection"):
        truncated.feed_eof()
    with pytest.raises(ProtocolError, match="bad status line"):
        ResponseParser().feed(b"SMTP ready\r\n\r\n")
    with pytest.raises(ProtocolError, match="bad Content-Length"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")


def test_status_mapping() -> None:
    def resp(status: int, body: bytes = b"", **headers: str) -> Response:
        return Response(status, "", headers, body)

    err = error_for_response(resp(404, b'{"message":"unknown task"}'), "run subtask")
    assert isinstance(err, ClientError)
    assert not is_transient(err)
    assert str(err) == "run subtask failed with status 404: unknown task"
    assert err.status_code == 404
    err = error_for_response(resp(409, b"plain text"), "op")
    assert str(err) == "op failed with status 409: plain text"
    assert not is_transient(err)
    err = error_for_response(resp(429, **{"retry-after": "3"}), "op")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 3
    assert is_transient(err)
    err = error_for_response(resp(500), "op")
    assert isinstance(err, ServerError)
    assert is_transient(err)
    assert str(err) == "op failed with status 500: (empty body)"


def test_sync_client_gives_up_after_the_attempts(tmp_path: Path) -> None:
    slept: list[float] = []
    client = SyncSocketClient(str(tmp_path / "nobody.sock"), policy=FAST, sleep=slept.append)
    with pytest.raises(ServerError, match="cannot reach the task server"):
        client.call("GET", "/input", None, GetInputResponse, operation="get input")
    assert slept == [0.01, 0.02, 0.02]


async def test_async_client_retries_then_succeeds_and_does_not_retry_4xx(sock_dir: Path) -> None:
    path = str(sock_dir / "s.sock")
    async with SocketServer(path, task_name="t", fail_first={"/input": 2}) as server:
        client = AsyncSocketClient(path, policy=FAST)
        got = await client.call("GET", "/input", None, GetInputResponse, operation="get input")
        assert got is not None
        assert got.task_name == "t"
        assert len(server.calls("/input")) == 3
        with pytest.raises(ClientError, match="status 404: no route GET /nope"):
            await client.call("GET", "/nope", None, None, operation="nope")
        assert len(server.calls("/nope")) == 1


async def test_async_client_times_out(sock_dir: Path) -> None:
    path = str(sock_dir / "slow.sock")

    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # never answers

    server = await asyncio.start_unix_server(silent, path=path)
    try:
        policy = TransportPolicy(max_attempts=2, backoff_base_s=0.01, request_timeout_s=0.2)
        client = AsyncSocketClient(path, policy=policy)
        with pytest.raises(TimeoutError, match="get input timed out"):
            await client.call("GET", "/input", None, GetInputResponse, operation="get input")
        assert len(writers) == 2
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_sync_client_registers(sock_dir: Path) -> None:
    path = str(sock_dir / "r.sock")
    app = Workflows()

    @app.task
    def one(x: int) -> int:
        return x

    async with SocketServer(path, fail_first={"/register-tasks": 1}) as server:
        # The blocking client runs in a thread here only because the server shares the loop.
        await asyncio.to_thread(_runner.register, app, path, policy=FAST)
        request: RegisterTasksRequest = await server.registered()
    assert [t.name for t in request.tasks] == ["one"]


def test_start_environment_errors() -> None:
    app = Workflows()
    with pytest.raises(RunnerError, match="RENDER_SDK_MODE environment variable is required"):
        _runner.start(app, environ={"RENDER_SDK_SOCKET_PATH": "/x"})
    with pytest.raises(
        RunnerError, match="RENDER_SDK_SOCKET_PATH environment variable is required"
    ):
        _runner.start(app, environ={"RENDER_SDK_MODE": "run"})
    with pytest.raises(RunnerError, match="longer than 107 bytes"):
        _runner.start(app, environ={"RENDER_SDK_MODE": "run", "RENDER_SDK_SOCKET_PATH": "/" * 108})
    with pytest.raises(RunnerError, match="Unknown mode: 'x'"):
        _runner.start(app, environ={"RENDER_SDK_MODE": "x", "RENDER_SDK_SOCKET_PATH": "/x"})


def test_result_encoding() -> None:
    assert _runner.encode_result(5, "t") == b"[5]"
    assert _runner.encode_result([1, 2], "t") == b"[1,2]"
    assert _runner.encode_result((1, 2), "t") == b"[[1,2]]"
    assert _runner.encode_result(None, "t") == b"[null]"
    with pytest.raises(Exception, match="task 't' returned a bytes"):
        _runner.encode_result(b"x", "t")


def test_sync_body_runs_in_a_thread_with_the_context() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    marker.set("run-1")
    seen: dict[str, Any] = {}

    def body(x: int) -> int:
        seen["thread"] = threading.current_thread() is not threading.main_thread()
        seen["marker"] = marker.get()
        return x + 1

    def fails() -> None:
        raise KeyError("inside")

    app = Workflows()
    assert _runner.call_in_thread(app.task(body)._spec, [1], {}) == 2
    assert seen == {"thread": True, "marker": "run-1"}
    with pytest.raises(KeyError, match="inside"):
        _runner.call_in_thread(app.task(fails)._spec, [], {})


def test_sync_body_runs_on_the_main_thread_in_a_copy_of_the_context() -> None:
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")
    marker.set("run-1")
    seen: dict[str, Any] = {}

    def body(x: int) -> int:
        seen["main"] = threading.current_thread() is threading.main_thread()
        seen["marker"] = marker.get("unset")
        marker.set("changed inside")
        return x + 1

    def fails() -> None:
        raise KeyError("inside")

    app = Workflows()
    spec = app.task(body)._spec
    assert _runner.call_sync(spec, [1], {}) == 2
    assert seen == {"main": True, "marker": "run-1"}
    # The body ran in a copy: what it set stays there.
    assert marker.get() == "run-1"
    with pytest.raises(KeyError, match="inside"):
        _runner.call_sync(app.task(fails)._spec, [], {})
    # Off the main thread it falls back to a worker thread of its own.
    from_thread: dict[str, Any] = {}

    def call() -> None:
        from_thread["result"] = _runner.call_sync(spec, [2], {})

    caller = threading.Thread(target=call)
    caller.start()
    caller.join()
    assert from_thread["result"] == 3
    assert seen["main"] is False


async def test_a_subtask_wait_ends_with_an_error_never_none(sock_dir: Path) -> None:
    path = str(sock_dir / "w.sock")
    never = asyncio.Event()

    async def forever(name: str, value: Any) -> Any:
        await never.wait()

    policy = TransportPolicy(
        subtask_wait_ms=50, poll_base_s=0.01, poll_cap_s=0.02, subtask_wait_limit_s=0.3
    )
    async with SocketServer(path, on_subtask=forever):
        session = _runner._Session(
            AsyncSocketClient(path, policy=policy), policy, asyncio.get_running_loop()
        )
        with pytest.raises(TimeoutError, match=r"subtask 'square' \(trn-1\) was still running"):
            await session.start_subtask("square", [1])


class _KeepAliveServer:
    """A blocking Unix-socket server in a thread that answers ``{}`` to every request and,
    with ``close_after_each``, closes each connection after its first answer (as a server
    closing an idle kept connection does)."""

    def __init__(self, path: Path, *, close_after_each: bool) -> None:
        import socket

        self.connections = 0
        self.requests = 0
        self._close_after_each = close_after_each
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen()
        self._listener.settimeout(10)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed, or the accept timed out (socket.timeout is an OSError)
                return
            self.connections += 1
            with conn:
                buffer = b""
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    _head, _, buffer = buffer.partition(b"\r\n\r\n")
                    self.requests += 1
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 2\r\n\r\n{}"
                    )
                    if self._close_after_each:
                        break

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)


def test_the_sync_client_keeps_one_connection_for_all_its_calls(sock_dir: Path) -> None:
    server = _KeepAliveServer(sock_dir / "k.sock", close_after_each=False)
    client = SyncSocketClient(str(sock_dir / "k.sock"))
    try:
        for _ in range(3):
            assert client.call("POST", "/callback", None, None, operation="call") is None
    finally:
        client.close()
        server.close()
    assert (server.connections, server.requests) == (1, 3)


def test_a_kept_connection_the_server_closed_is_replaced(sock_dir: Path) -> None:
    server = _KeepAliveServer(sock_dir / "c.sock", close_after_each=True)
    client = SyncSocketClient(str(sock_dir / "c.sock"), policy=TransportPolicy(max_attempts=1))
    try:
        # One attempt only: the resend on a new connection is not a retry.
        for _ in range(3):
            assert client.call("POST", "/callback", None, None, operation="call") is None
    finally:
        client.close()
        server.close()
    assert (server.connections, server.requests) == (3, 3)

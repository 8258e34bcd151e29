"""The warm path with the real runner: a ``Workflows`` app forked from the zygote talks
to a real task socket (the server's own ``TaskSocketServer``), in register and run mode,
and the spawn path (``python -c``) does the same for comparison."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from render_sdk import _wire
from render_sdk._gen.render.tasksocket.v1 import (
    CallbackRequest,
    GetInputResponse,
    RegisterTasksRequest,
)
from render_sdk.devserver._launcher import Launcher, SpawnLauncher, WarmLauncher, make_launcher
from render_sdk.devserver._socket import TaskSocketServer

pytestmark = pytest.mark.timeout(90)

APP = """\
import asyncio
from render_sdk import Workflows

app = Workflows()


@app.task
def square(x: int) -> int:
    print("squaring", x)
    return x * x


@app.task
async def greet(name: str) -> str:
    await asyncio.sleep(0)
    return f"hello {name}"


@app.task
def explode() -> None:
    raise ValueError("no good")
"""


class FakeServer:
    """Answers one process's task-socket calls and records what it was told."""

    def __init__(self, path: Path, task_name: str = "", input_json: bytes = b"") -> None:
        self.path = path
        self.task_name = task_name
        self.input_json = input_json
        self.registered: RegisterTasksRequest | None = None
        self.callback: CallbackRequest | None = None
        self.server = TaskSocketServer(path, self.handle)

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if (method, path) == ("POST", "/register-tasks"):
            self.registered = _wire.loads(RegisterTasksRequest, body, _wire.SOCKET)
            return 200, b"{}"
        if (method, path) == ("GET", "/input"):
            reply = GetInputResponse(task_name=self.task_name, input=self.input_json)
            return 200, _wire.dumps(reply, _wire.SOCKET)
        if (method, path) == ("POST", "/callback"):
            self.callback = _wire.loads(CallbackRequest, body, _wire.SOCKET)
            return 200, b"{}"
        return 404, b'{"message": "not found"}'


def launchers(tmp_path: Path) -> list[Launcher]:
    (tmp_path / "tasks.py").write_text(APP)
    env = {**os.environ, "PYTHONPATH": ""}
    warm = make_launcher(
        [sys.executable, "-m", "render_sdk.workflows", "tasks:app"], cwd=tmp_path, env=env
    )
    cold = make_launcher(
        [sys.executable, "-c", "from tasks import app; app.start()"], cwd=tmp_path, env=env
    )
    assert isinstance(warm, WarmLauncher)
    assert isinstance(cold, SpawnLauncher)
    return [warm, cold]


async def serve_one(
    launcher: Launcher, sock_dir: Path, mode: str, task: str = "", input_json: bytes = b""
) -> tuple[int, FakeServer, dict[str, bytes]]:
    server = FakeServer(sock_dir / f"{os.urandom(4).hex()}.sock", task, input_json)
    await server.server.start()
    out: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def on_output(stream: str, chunk: bytes) -> None:
        out[stream] += chunk

    try:
        proc = await launcher.start(
            mode=mode,  # type: ignore[arg-type]
            socket_path=str(server.path),
            on_output=on_output,
        )
        server.server.bind(proc.pid)
        status = await asyncio.wait_for(proc.wait(), 60)
    finally:
        await server.server.close()
    return status, server, out


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for the sockets (sun_path is limited to ~104 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="sock-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_register_and_run_through_both_paths(tmp_path: Path, sock_dir: Path) -> None:
    for launcher in launchers(tmp_path):
        try:
            status, server, out = await serve_one(launcher, sock_dir, "register")
            assert status == 0, out
            assert server.registered is not None
            assert sorted(t.name for t in server.registered.tasks) == [
                "explode",
                "greet",
                "square",
            ]

            status, server, out = await serve_one(launcher, sock_dir, "run", "square", b"[7]")
            assert status == 0, out
            assert server.callback is not None
            assert server.callback.complete is not None
            assert _wire.decode_json_value(server.callback.complete.output) == [49]
            assert out["stdout"] == b"squaring 7\n"

            results = await asyncio.gather(
                *(serve_one(launcher, sock_dir, "run", "greet", b'["x"]') for _ in range(10))
            )
            for status, server, out in results:
                assert status == 0, out
                assert server.callback is not None
                assert server.callback.complete is not None
                output = _wire.decode_json_value(server.callback.complete.output)
                assert output == ["hello x"]

            status, server, out = await serve_one(launcher, sock_dir, "run", "explode", b"[]")
            assert status != 0
            assert server.callback is not None
            assert server.callback.error is not None
            assert "no good" in server.callback.error.details
        finally:
            await launcher.aclose()
        if isinstance(launcher, WarmLauncher):
            assert launcher.warm is True, launcher.warm_error

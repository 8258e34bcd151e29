"""Task-process start-up: ours vs the official render_sdk==0.4.0, whole processes.

The runner starts once per task-run attempt, so its start-up is on every run's
critical path. Rows:

* ``python -c "from render_sdk import Workflows"``;
* register round trip: spawn ``render-workflows tasks:app`` in register mode against
  an in-process Unix-socket server until the process has exited after its
  ``POST /register-tasks``;
* run round trip: the same for one run of ``square`` (``GET /input``, execute,
  ``POST /callback``).

Both SDKs serve the same module (the seed README's tasks) and the same server.
Run with ``python benchmarks/run.py --only runner``.
"""

from __future__ import annotations

import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from benchmarks._harness import Row, measure, repeats
from render_sdk import _wire
from render_sdk._gen.render.tasksocket.v1 import (
    CallbackRequest,
    GetInputResponse,
    RegisterTasksRequest,
)

ROOT = Path(__file__).resolve().parent.parent
OURS_BIN = ROOT / ".venv" / "bin"
THEIRS_BIN = ROOT / ".venvs" / "render_sdk-0.4.0" / "bin"

TASKS_MODULE = '''
from render_sdk import Retry, Workflows

app = Workflows(default_retry=Retry(max_retries=3, wait_duration_ms=1000), default_timeout=300)


@app.task
def square(a: int) -> int:
    """Square a number."""
    return a * a


@app.task(timeout=60, plan="starter")
async def add_squares(a: int, b: int) -> int:
    result1 = await square(a)
    result2 = await square(b)
    return result1 + result2
'''


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        super().__init__(path, _Handler)
        self.registrations = 0
        self.callbacks = 0
        self.input = GetInputResponse(task_name="square", input=_wire.encode_json_value([7]))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def address_string(self) -> str:  # a Unix socket has no client address
        return "uds"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _reply(self, body: bytes = b"") -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._reply(_wire.dumps(self.server.input, _wire.SOCKET))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/register-tasks":
            _wire.loads(RegisterTasksRequest, body, _wire.SOCKET)
            self.server.registrations += 1
        elif self.path == "/callback":
            callback = _wire.loads(CallbackRequest, body, _wire.SOCKET)
            assert callback.complete is not None, callback.error
            assert _wire.decode_json_value(callback.complete.output) == [49]
            self.server.callbacks += 1
        self._reply()


def _process(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def run(quick: bool) -> list[Row]:
    if not (THEIRS_BIN / "python").exists():
        raise RuntimeError(f"{THEIRS_BIN} is missing: run `python3 build_tools/dev.py setup`")
    n = repeats(quick)
    workdir = Path(tempfile.mkdtemp(prefix="rwbench-", dir="/tmp"))
    rows: list[Row] = []
    try:
        (workdir / "tasks.py").write_text(TASKS_MODULE)
        ours_py, theirs_py = str(OURS_BIN / "python"), str(THEIRS_BIN / "python")

        def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
            _process(cmd, cwd=workdir, env=env)  # warm the OS caches
            return measure(lambda: _process(cmd, cwd=workdir, env=env), repeat=n)

        code = "from render_sdk import Workflows"
        rows.append(
            Row(
                "runner",
                "python -c 'from render_sdk import Workflows'",
                timed([ours_py, "-c", code]),
                baseline=timed([theirs_py, "-c", code]),
                baseline_name="render_sdk 0.4.0",
                note="whole process",
            )
        )
        for mode, label in (("register", "register round trip"), ("run", "run round trip")):
            path = str(workdir / f"{mode}.sock")
            server = _Server(path)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                env = {**os.environ, "RENDER_SDK_MODE": mode, "RENDER_SDK_SOCKET_PATH": path}
                figures = []
                for bin_dir in (OURS_BIN, THEIRS_BIN):
                    before = server.registrations + server.callbacks
                    figures.append(timed([str(bin_dir / "render-workflows"), "tasks:app"], env))
                    # Every sample really talked to the server (one request per process).
                    assert server.registrations + server.callbacks - before == n + 1
                note = (
                    "spawn render-workflows tasks:app, POST /register-tasks, exit"
                    if mode == "register"
                    else "spawn, GET /input, run square(7), POST /callback, exit"
                )
                rows.append(
                    Row(
                        "runner",
                        label,
                        figures[0],
                        baseline=figures[1],
                        baseline_name="render_sdk 0.4.0",
                        note=note,
                    )
                )
            finally:
                server.shutdown()
                server.server_close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows

"""Size limits end to end: a real server, our runner (and a raw one), payloads at and over
the limits, and a task socket that answers before it has read the whole request."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from devserver_helpers import start_run, wait_terminal

from render_sdk import RenderSync
from render_sdk._constants import MAX_INPUT_BYTES, MAX_RESULT_BYTES
from render_sdk._errors import ClientError, WireFormatError
from render_sdk._gen.render.tasksocket.v1 import CallbackRequest, TaskComplete
from render_sdk.devserver._constants import MAX_SOCKET_BODY_BYTES
from render_sdk.devserver._socket import TaskSocketServer
from render_sdk.testing import LocalServer
from render_sdk.workflows._transport import AsyncSocketClient, SyncSocketClient, TransportPolicy

MakeServer = Callable[..., LocalServer]

BIG_APP = """
from render_sdk import Retry, Workflows

app = Workflows()

@app.task
def big(n: int) -> str:
    return "x" * n

@app.task
def length(s: str) -> int:
    return len(s)

@app.task(retry=Retry(max_retries=0, wait_duration_ms=0))
async def send_big(n: int) -> int:
    return await length("x" * n)
"""

#: A runner that checks nothing (as another SDK might): sends over-limit payloads as is.
RAW_APP = r"""
import base64, json, os, sys, time
import httpx

client = httpx.Client(transport=httpx.HTTPTransport(uds=os.environ["RENDER_SDK_SOCKET_PATH"]),
                      base_url="http://task", timeout=60)

def b64(value):
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()

if os.environ["RENDER_SDK_MODE"] == "register":
    names = ["raw_subtask", "raw_result", "length"]
    client.post("/register-tasks", json={"tasks": [{"name": n} for n in names]})
    time.sleep(60)
    sys.exit(0)
inp = client.get("/input").json()
n = json.loads(base64.b64decode(inp["input"]))[0]
if inp["task_name"] == "raw_subtask":
    r = client.post("/run-subtask", json={"task_name": "length", "input": b64(["x" * n])})
    out = [r.status_code, r.json().get("message")]
    client.post("/callback", json={"complete": {"output": b64([out])}})
elif inp["task_name"] == "raw_result":
    r = client.post("/callback", json={"complete": {"output": b64(["x" * n])}})
    print("callback answered", r.status_code, flush=True)
time.sleep(60)
"""

#: `["` and `"]` around the string: the encoded result's overhead.
OVERHEAD = 4


@pytest.fixture
def big_server(make_server: MakeServer, tmp_path: Path) -> LocalServer:
    (tmp_path / "big_app.py").write_text(textwrap.dedent(BIG_APP))
    return make_server(app="big_app:app", cwd=tmp_path)


def _names_size_and_limit(message: str, size: int, limit: int) -> None:
    assert f"{size} bytes" in message, message
    assert f"limit of {limit} bytes" in message, message


def test_result_at_limit_completes_and_over_limit_fails_at_once(big_server: LocalServer) -> None:
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        at = wait_terminal(c, start_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD]), 60)
        assert at["status"] == "completed"
        assert len(at["results"][0]) == MAX_RESULT_BYTES - OVERHEAD
        over = wait_terminal(c, start_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD + 1]), 60)
    assert over["status"] == "failed", over["status"]
    _names_size_and_limit(over["error"], MAX_RESULT_BYTES + 1, MAX_RESULT_BYTES)
    assert over["results"] in (None, []), "no partial result"
    assert len(over["attempts"]) == 1, "one attempt, failed by the runner's own check"


def test_subtask_input_over_limit_fails_the_parent_at_once(big_server: LocalServer) -> None:
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        at = wait_terminal(c, start_run(c, "send_big", [MAX_INPUT_BYTES - OVERHEAD]), 60)
        assert at["status"] == "completed", at.get("error")
        assert at["results"] == [MAX_INPUT_BYTES - OVERHEAD]
        began = time.monotonic()
        over = wait_terminal(c, start_run(c, "send_big", [MAX_INPUT_BYTES - OVERHEAD + 1]), 60)
        took = time.monotonic() - began
        runs = c.get("/v1/task-runs", params={"taskSlug": "length", "limit": 100}).json()
    assert over["status"] == "failed", over
    _names_size_and_limit(over["error"], MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES)
    assert "subtask 'length'" in over["error"], over["error"]
    assert len(over["attempts"]) == 1
    assert len(runs) == 1, "the over-limit subtask was never started"
    assert took < 30, f"failing took {took:.1f}s"


def test_rest_input_over_limit_is_413_and_starts_nothing(big_server: LocalServer) -> None:
    with httpx.Client(base_url=big_server.url, timeout=60) as c:
        at = wait_terminal(c, start_run(c, "length", ["x" * (MAX_INPUT_BYTES - OVERHEAD)]))
        assert at["status"] == "completed"
        assert at["results"] == [MAX_INPUT_BYTES - OVERHEAD]
        r = c.post(
            "/v1/task-runs",
            json={"task": "length", "input": ["x" * (MAX_INPUT_BYTES - OVERHEAD + 1)]},
        )
        assert r.status_code == 413, r.text
        _names_size_and_limit(r.json()["message"], MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES)
        assert len(c.get("/v1/task-runs").json()) == 1, "nothing was started"


def test_client_refuses_an_over_limit_input_before_sending(
    big_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in big_server.client_env().items():
        monkeypatch.setenv(name, value)
    render = RenderSync()
    with pytest.raises(WireFormatError) as info:
        render.workflows.run_task("length", ["x" * (MAX_INPUT_BYTES - OVERHEAD + 1)])
    _names_size_and_limit(str(info.value), MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES)
    with httpx.Client(base_url=big_server.url, timeout=30) as c:
        assert c.get("/v1/task-runs").json() == [], "nothing reached the server"


def test_server_checks_payloads_of_a_runner_that_does_not(
    make_server: MakeServer, tmp_path: Path
) -> None:
    (tmp_path / "raw_app.py").write_text(RAW_APP)
    server = make_server(command=[sys.executable, "raw_app.py"], cwd=tmp_path)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        sub = wait_terminal(c, start_run(c, "raw_subtask", [MAX_INPUT_BYTES]), 60)
        assert sub["status"] == "completed", sub
        status, message = sub["results"][0]
        assert status == 413, sub
        _names_size_and_limit(message, MAX_INPUT_BYTES + 4, MAX_INPUT_BYTES)
        assert len(c.get("/v1/task-runs", params={"taskSlug": "length"}).json()) == 0
        res = wait_terminal(c, start_run(c, "raw_result", [MAX_RESULT_BYTES]), 60)
    assert res["status"] == "failed", res["status"]
    _names_size_and_limit(res["error"], MAX_RESULT_BYTES + 4, MAX_RESULT_BYTES)


async def _refusing_socket(tmp_path: Path) -> TaskSocketServer:
    async def never(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        raise AssertionError("an over-cap body must not reach the handler")

    server = TaskSocketServer(tmp_path / "t.sock", never)
    await server.start()
    server.bind(os.getpid())
    return server


#: A callback larger than the socket's cap: the server answers 413 without reading it.
HUGE = CallbackRequest(complete=TaskComplete(output=b"x" * (MAX_SOCKET_BODY_BYTES + 1)))
POLICY = TransportPolicy(max_attempts=5, backoff_base_s=0.5, backoff_cap_s=1, request_timeout_s=30)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_runner_reads_a_413_sent_before_the_body_was_read(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await _refusing_socket(tmp_path)
    began = time.monotonic()
    try:
        if kind == "sync":
            client = SyncSocketClient(str(server.path), policy=POLICY)
            call = asyncio.to_thread(
                client.call, "POST", "/callback", HUGE, None, operation="post callback"
            )
        else:
            aclient = AsyncSocketClient(str(server.path), policy=POLICY)
            call = aclient.call("POST", "/callback", HUGE, None, operation="post callback")
        with pytest.raises(ClientError) as info:
            await call
    finally:
        await server.close()
    assert info.value.status_code == 413
    assert f"body larger than {MAX_SOCKET_BODY_BYTES} bytes" in str(info.value)
    assert "retrying" not in capsys.readouterr().err, "a 4xx is not retried"
    assert time.monotonic() - began < 20

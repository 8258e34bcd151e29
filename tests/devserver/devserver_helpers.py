"""Helpers of the local server's end-to-end tests: app sources and run polling."""

from __future__ import annotations

import time
from typing import Any

import httpx

TERMINAL = ("completed", "failed", "canceled")

#: An app for our runner (`render-workflows tasks:app`): one task per behaviour under test.
APP = """
import asyncio, os, sys, time
from render_sdk import Retry, Workflows

app = Workflows()

@app.task
def square(x: int) -> int:
    print(f"squaring {x}")
    print(f"warning {x}", file=sys.stderr)
    return x * x

@app.task
async def fan(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))

@app.task
async def chain(n: int) -> int:
    return await square(await square(n))

@app.task(retry=Retry(max_retries=2, wait_duration_ms=200, backoff_scaling=2))
def flaky(marker: str) -> str:
    n = int(open(marker).read()) if os.path.exists(marker) else 0
    with open(marker, "w") as f:
        f.write(str(n + 1))
    if n < 2:
        raise RuntimeError(f"attempt {n} failed")
    return "ok"

@app.task(retry=Retry(max_retries=1, wait_duration_ms=50))
def always_fails() -> None:
    raise ValueError("nope")

@app.task
def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"

@app.task(timeout_seconds=1)
def too_slow() -> None:
    time.sleep(60)

@app.task
async def parent_of_sleepers(n: int) -> list:
    return await asyncio.gather(*(sleepy(60) for _ in range(n)))

@app.task(retry=Retry(max_retries=3, wait_duration_ms=60000))
def retry_later() -> None:
    raise RuntimeError("again")

@app.task
async def parent_of_pending() -> None:
    await retry_later()

@app.task(retry=Retry(max_retries=1, wait_duration_ms=10))
def crash() -> None:
    os._exit(7)

@app.task(retry=Retry(max_retries=1, wait_duration_ms=10))
def slow_then_ok(marker: str) -> str:
    if not os.path.exists(marker):
        # Written whole, then renamed: the test reads the pid as soon as the marker exists.
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        time.sleep(60)
    return "recovered"

@app.task
def pid_then_sleep(seconds: float) -> None:
    print(f"pid={os.getpid()}", flush=True)
    time.sleep(seconds)

@app.task
def add(a: int, b: int = 2) -> int:
    return a + b

@app.task
def as_list(n: int) -> list:
    return list(range(n))
"""

#: A task process that speaks the task socket by hand (httpx over the Unix socket),
#: to probe the server's protocol handling. The task name selects the behaviour.
RAW_RUNNER = r"""
import json, os, sys, time, base64
import httpx

mode = os.environ["RENDER_SDK_MODE"]
client = httpx.Client(transport=httpx.HTTPTransport(uds=os.environ["RENDER_SDK_SOCKET_PATH"]),
                      base_url="http://task", timeout=30)

def b64(value):  # the socket's bytes fields are base64 of JSON
    return base64.b64encode(json.dumps(value).encode()).decode()

def complete(value):
    r = client.post("/callback", json={"complete": {"output": b64([value])}})
    assert r.status_code == 200, r.text

if mode == "register":
    names = ["neither", "exits", "child", "probe", "hang", "parent_cancel", "echo_env"]
    r = client.post("/register-tasks", json={"tasks": [{"name": n} for n in names]})
    assert r.status_code == 200, r.text
    time.sleep(60)
    sys.exit(0)

inp = client.get("/input").json()
name = inp["task_name"]
args = json.loads(base64.b64decode(inp["input"])) if inp["input"] else None

if name == "neither":
    client.post("/callback", json={})
    time.sleep(60)
elif name == "exits":
    sys.exit(3)
elif name == "hang":
    time.sleep(120)
elif name == "echo_env":
    keys = ("FROM_ENV_FILE", "OVERRIDDEN", "RENDER_SDK_MODE", "RENDER_SDK_SOCKET_PATH")
    complete({k: os.environ.get(k) for k in keys})
elif name == "child":
    if args and args[0] == "sleep":
        time.sleep(120)
    complete(args)
elif name == "parent_cancel":
    r = client.post("/run-subtask", json={"task_name": "child", "input": b64(["sleep"])})
    child = r.json()["task_run_id"]
    print("child", child, flush=True)
    while True:
        r = client.post("/get-subtask-result", json={"task_run_id": child, "wait_ms": 5000})
        if not r.json()["still_running"]:
            break
    complete(r.json())
elif name == "probe":
    out = {}
    def code(path, body=None, raw=None):
        if raw is not None:
            r = client.post(path, content=raw, headers={"content-type": "application/json"})
        else:
            r = client.post(path, json=body)
        msg = r.json().get("message") if r.status_code >= 400 else None
        return [r.status_code, msg]
    out["malformed"] = code("/run-subtask", raw=b"{not json")
    out["wrong_type"] = code("/run-subtask", {"task_name": 5})
    out["unknown_name"] = code("/run-subtask", {"task_name": "nope"})
    out["no_name"] = code("/run-subtask", {"input": b64([])})
    out["bad_input"] = code("/run-subtask", {"task_name": "child", "input": b64(7)})
    r = client.post("/run-subtask", json={"task_name": "child"})
    missing = r.json()["task_run_id"]
    t0 = time.monotonic()
    r = client.post("/get-subtask-result", json={"task_run_id": missing, "wait_ms": 8000})
    out["missing_input_result"] = r.json()
    out["long_poll_s"] = time.monotonic() - t0
    key = {"task_name": "child", "input": b64([1]), "idempotency_key": "k-1",
           "created_at": "2026-01-01T00:00:00Z"}
    a = client.post("/run-subtask", json=key).json()["task_run_id"]
    b = client.post("/run-subtask", json=key).json()["task_run_id"]
    later = {**key, "created_at": "2026-01-01T00:00:01Z"}
    c = client.post("/run-subtask", json=later).json()["task_run_id"]
    out["dedup_same"] = a == b
    out["dedup_other_time"] = a != c
    out["unknown_result"] = code("/get-subtask-result", {"task_run_id": "trn-nope"})
    out["foreign_result"] = code("/get-subtask-result", {"task_run_id": args[0]})
    r = client.post("/get-subtask-result", json={"task_run_id": a})
    out["quick_answer"] = r.json()
    t0 = time.monotonic()
    r = client.post("/get-subtask-result", json={"task_run_id": a, "wait_ms": 300})
    out["short_poll"] = [r.json(), time.monotonic() - t0]
    out["register_in_run"] = code("/register-tasks", {"tasks": []})
    out["bad_route"] = code("/nope", {})
    complete(out)
    time.sleep(60)
"""


def wait_terminal(client: httpx.Client, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /v1/task-runs/{id} until the run is terminal."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/task-runs/{run_id}").raise_for_status().json()
        if body["status"] in TERMINAL:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not terminal after {timeout}s: {body}")
        time.sleep(0.05)


def wait_status(
    client: httpx.Client, run_id: str, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll until the run has ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/v1/task-runs/{run_id}").raise_for_status().json()
        if body["status"] == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} not {status} after {timeout}s: {body}")
        time.sleep(0.05)


def start_run(client: httpx.Client, task: str, input: Any) -> str:
    """POST /v1/task-runs and return the run id."""
    r = client.post("/v1/task-runs", json={"task": task, "input": input})
    assert r.status_code == 202, r.text
    run_id: str = r.json()["id"]
    return run_id

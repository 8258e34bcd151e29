"""The official SDKs from PyPI (render_sdk==0.4.0, render==1.5.0), unmodified, against our server.

As clients: a script run with the SDK's own interpreter starts, awaits, gets, lists,
cancels and streams runs. As task runners: the server launches the SDK's own
``render-workflows module:app`` from its virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_terminal

from render_sdk.testing import LocalServer

pytestmark = pytest.mark.compat

MakeServer = Callable[..., LocalServer]

CLIENT_040 = """
import asyncio, json
from render_sdk import Render
from render_sdk.client import ListTaskRunsParams

async def main():
    out = {}
    render = Render()
    run = await render.workflows.run_task("my-workflow/square", [6])
    details = await run
    out["await"] = [details.id == run.id, details.status.value, details.results]
    got = await render.workflows.get_task_run(run.id)
    out["get"] = [got.status.value, got.results, got.input_, got.retries, len(got.attempts)]
    listed = await render.workflows.list_task_runs(ListTaskRunsParams(limit=2))
    out["list"] = [len(listed), run.id in [t.id for t in listed]]
    slow = await render.workflows.run_task("sleepy", [30])
    for _ in range(200):
        if (await render.workflows.get_task_run(slow.id)).status.value == "running":
            break
        await asyncio.sleep(0.05)
    await render.workflows.cancel_task_run(slow.id)
    out["cancel"] = (await render.workflows.get_task_run(slow.id)).status.value
    ev_run = await render.workflows.run_task("square", [3])
    async for ev in render.workflows.task_run_events([ev_run.id]):
        out["event"] = [ev.id == ev_run.id, ev.status.value, ev.results]
    bad = await render.workflows.run_task("always_fails", [])
    try:
        await bad
        out["fail"] = "no error"
    except Exception as exc:
        out["fail"] = [type(exc).__name__, str(exc)]
    try:
        await render.workflows.run_task("no-such-task", [])
        out["unknown"] = "no error"
    except Exception as exc:
        out["unknown"] = [type(exc).__name__, str(exc)]
    print("RESULT " + json.dumps(out, default=str))

asyncio.run(main())
"""

CLIENT_150 = """
import json, time
from render import Render
from render.client import ListTaskRunsParams

out = {}
render = Render()
details = render.workflows.run_task("my-workflow/square", [6])
out["run"] = [details.status.value, details.results]
got = render.workflows.get_task_run(details.id)
out["get"] = [got.status.value, got.results, got.retries, len(got.attempts)]
listed = render.workflows.list_task_runs(ListTaskRunsParams(limit=2))
out["list"] = [len(listed), details.id in [t.task_run.id for t in listed]]
slow = render.workflows.start_task("sleepy", [30])
for _ in range(200):
    if render.workflows.get_task_run(slow.id).status.value == "running":
        break
    time.sleep(0.05)
render.workflows.cancel_task_run(slow.id)
out["cancel"] = render.workflows.get_task_run(slow.id).status.value
started = render.workflows.start_task("square", [3])
for ev in render.workflows.task_run_events([started.id]):
    out["event"] = [ev.id == started.id, ev.status.value, ev.results]
a = render.workflows.start_task("square", [5], idempotency_key="order-1")
b = render.workflows.start_task("square", [5], idempotency_key="order-1")
out["idempotent"] = a.id == b.id
try:
    render.workflows.run_task("always_fails", [])
    out["fail"] = "no error"
except Exception as exc:
    out["fail"] = [type(exc).__name__, str(exc)]
print("RESULT " + json.dumps(out, default=str))
"""

APP_040 = """
from render_sdk import Retry, Workflows

app = Workflows()

@app.task
def square(x: int) -> int:
    return x * x

@app.task
async def fan(n: int) -> int:
    total = 0
    for i in range(n):
        total += await square(i)
    return total

@app.task(retry=Retry(max_retries=1, wait_duration_ms=20, backoff_scaling=1.5))
def always_fails() -> None:
    raise ValueError("boom")
"""

APP_150 = """
from render import Retry, TaskContext, Workflows

app = Workflows()

@app.task
def square(ctx: TaskContext, x: int) -> int:
    return x * x

@app.task
async def fan(ctx: TaskContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.run(square, i)
    return total

@app.task(retry=Retry(max_retries=1, wait_duration_ms=20))
def always_fails(ctx: TaskContext) -> None:
    raise ValueError("boom")
"""


#: The seed README's "Stream task run events" lines, verbatim, inside a minimal main().
SEED_EVENTS = """
import asyncio
from render_sdk import Render

async def main():
    render = Render()
    # Stream task run events
    task_run3 = await render.workflows.run_task("my-workflow/my-task", [6])
    async for event in render.workflows.task_run_events([task_run3.id]):
        print(f"{event.id} status={event.status}")
        if event.error:
            print(f"Error: {event.error}")
    print("RESULT " + json.dumps(task_run3.id))

import json
asyncio.run(main())
"""

SEED_APP = """
from render_sdk import Workflows

app = Workflows()

@app.task(name="my-task")
def my_task(x: int) -> int:
    return x + 1
"""


@pytest.mark.parametrize("client", ["render_sdk-0.4.0", "render-1.5.0"])
def test_seed_events_loop_ends(
    client: str, make_server: MakeServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The seed's events loop ends by itself with both official clients (issue 11 item 1)."""
    python = request.getfixturevalue(
        "sdk040_python" if client.startswith("render_sdk") else "render150_python"
    )
    (tmp_path / "seed_app.py").write_text(textwrap.dedent(SEED_APP))
    server = make_server(app="seed_app:app", cwd=tmp_path)
    script = SEED_EVENTS
    if client.startswith("render-"):
        script = script.replace("from render_sdk import Render", "from render import RenderAsync")
        script = script.replace("render = Render()", "render = RenderAsync()")
    out = run_client(python, script, server, tmp_path)
    assert out.startswith("trn-"), out


def run_client(python: Path, script: str, server: LocalServer, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "client_script.py"
    path.write_text(textwrap.dedent(script))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RENDER_")}
    env.update(server.client_env())
    env["RENDER_API_KEY"] = "dummy-local-key"
    proc = subprocess.run(
        [str(python), str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    details = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, details
    assert lines, details
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def test_sdk040_as_client(sdk040_python: Path, server: LocalServer, tmp_path: Path) -> None:
    out = run_client(sdk040_python, CLIENT_040, server, tmp_path)
    assert out["await"] == [True, "completed", [36]]
    assert out["get"] == ["completed", [36], [6], 0, 1]
    assert out["list"] == [1, True]  # newest first: the run just awaited
    assert out["cancel"] == "canceled"
    assert out["event"] == [True, "completed", [9]]
    assert out["fail"][0] == "TaskRunError"
    assert "nope" in out["fail"][1]
    assert out["unknown"][0] == "ClientError"


def test_render150_as_client(render150_python: Path, server: LocalServer, tmp_path: Path) -> None:
    out = run_client(render150_python, CLIENT_150, server, tmp_path)
    assert out["run"] == ["completed", [36]]
    assert out["get"] == ["completed", [36], 0, 1]
    assert out["list"] == [2, True]
    assert out["cancel"] == "canceled"
    assert out["event"] == [True, "completed", [9]]
    assert out["idempotent"] is True
    assert out["fail"][0] == "TaskRunError"
    assert "nope" in out["fail"][1]


@pytest.mark.parametrize(
    ("venv", "app"), [("render_sdk-0.4.0", APP_040), ("render-1.5.0", APP_150)]
)
def test_official_runners(
    venv: str,
    app: str,
    make_server: MakeServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    python = request.getfixturevalue(
        "sdk040_python" if venv.startswith("render_sdk") else "render150_python"
    )
    runner = Path(python).parent / "render-workflows"
    (tmp_path / "official_app.py").write_text(textwrap.dedent(app))
    server = make_server(command=[str(runner), "official_app:app"], cwd=tmp_path)
    assert any("3 task(s) found" in line for line in server.output)
    # Their interpreter cannot import our zygote: the server says it spawns instead.
    assert any("Warm start is off" in line for line in server.output), server.output
    if venv.startswith("render_sdk"):
        warm = next(line for line in server.output if "Warm start is off" in line)
        assert "does not have this SDK's task runner" in warm, warm
        assert "Error while finding module specification" not in "\n".join(server.output)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert wait_terminal(c, start_run(c, "square", [7]))["results"] == [49]
        fan_id = start_run(c, "fan", [4])
        fan = wait_terminal(c, fan_id, 120)
        assert fan["status"] == "completed", fan
        assert fan["results"] == [14]
        subs = c.get("/v1/task-runs", params={"rootTaskRunId": fan_id}).json()
        assert len(subs) == 5
        failed = wait_terminal(c, start_run(c, "always_fails", []), 60)
        assert failed["status"] == "failed"
        assert "boom" in failed["error"]
        assert failed["retries"] == 1

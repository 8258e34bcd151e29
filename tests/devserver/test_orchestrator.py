"""The orchestrator and REST app in-process: an injected launcher double plays the runner.

The double speaks the real task socket (httpx over the Unix socket), so sockets, store
and API are real; only process creation is replaced, which makes timing checks exact.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from render_sdk.devserver._api import create_app
from render_sdk.devserver._orchestrator import Orchestrator, RegistrationError
from render_sdk.devserver._protocol import RunStatus
from render_sdk.devserver._socket import make_socket_dir
from render_sdk.devserver._store import Store

Behaviour = Callable[[httpx.AsyncClient, str, Any], Awaitable[None]]


def b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


class FakeProcess:
    reusable = False

    def __init__(self) -> None:
        # The "process" is a coroutine of this one: its socket peer is this pid.
        self.pid = os.getpid()
        self.exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.killed = False

    async def wait(self) -> int:
        return await self.exit

    def kill(self) -> None:
        self.killed = True
        if not self.exit.done():
            self.exit.set_result(-9)

    async def release(self) -> None:
        self.kill()


class FakeLauncher:
    """Starts a coroutine per process that uses the socket like a runner would."""

    warm = False

    def __init__(self, tasks: list[dict[str, Any]], behaviours: dict[str, Behaviour]) -> None:
        self.tasks = tasks
        self.behaviours = behaviours
        self.processes: list[FakeProcess] = []
        self.register = True
        self._jobs: set[asyncio.Task[None]] = set()

    async def start(self, *, mode: str, socket_path: str, on_output: Any) -> FakeProcess:
        proc = FakeProcess()
        self.processes.append(proc)
        job = asyncio.get_running_loop().create_task(self._run(mode, socket_path, proc, on_output))
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return proc

    async def _run(self, mode: str, path: str, proc: FakeProcess, on_output: Any) -> None:
        transport = httpx.AsyncHTTPTransport(uds=path)
        async with httpx.AsyncClient(transport=transport, base_url="http://task") as c:
            try:
                if mode == "register":
                    if self.register:
                        await c.post("/register-tasks", json={"tasks": self.tasks})
                    await asyncio.sleep(3600)
                inp = (await c.get("/input")).json()
                on_output("stdout", f"running {inp['task_name']}\n".encode())
                args = json.loads(base64.b64decode(inp["input"]))
                await self.behaviours[inp["task_name"]](c, inp["task_name"], args)
                await asyncio.sleep(3600)
            except (httpx.TransportError, asyncio.CancelledError):
                pass
            finally:
                if not proc.exit.done():
                    proc.exit.set_result(0)

    async def reload(self) -> None:
        return None

    async def aclose(self) -> None:
        for job in list(self._jobs):
            job.cancel()


async def ok(c: httpx.AsyncClient, name: str, args: Any) -> None:
    await c.post("/callback", json={"complete": {"output": b64(args)}})


async def fail(c: httpx.AsyncClient, name: str, args: Any) -> None:
    await c.post("/callback", json={"error": {"details": f"{name} failed"}})


async def hang(c: httpx.AsyncClient, name: str, args: Any) -> None:
    await asyncio.sleep(3600)


async def exit_now(c: httpx.AsyncClient, name: str, args: Any) -> None:
    raise httpx.TransportError("simulated exit")


TASKS = [
    {"name": "ok"},
    {"name": "fail", "options": {"retry": {"max_retries": 2, "wait_duration_ms": 60, "factor": 2}}},
    {"name": "hang", "options": {"timeout_seconds": 1}},
    {"name": "exit_now"},
]
BEHAVIOURS: dict[str, Behaviour] = {"ok": ok, "fail": fail, "hang": hang, "exit_now": exit_now}


@pytest.fixture
async def env(
    tmp_path: Path,
) -> AsyncIterator[tuple[Orchestrator, httpx.AsyncClient, FakeLauncher]]:
    launcher = FakeLauncher(TASKS, BEHAVIOURS)
    store = Store(tmp_path / "db.sqlite3")
    lines: list[str] = []
    sockets = make_socket_dir()
    orch = Orchestrator(
        store=store,
        launcher=launcher,  # type: ignore[arg-type]
        socket_dir=sockets,
        report=lines.append,
        registration_timeout=2,
    )
    await orch.register()
    app = create_app(orch, state_dir=tmp_path, secret=b"k" * 32)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://127.0.0.1"
    ) as c:
        yield orch, c, launcher
    await orch.aclose()
    await launcher.aclose()
    store.close()
    shutil.rmtree(sockets)


async def wait_done(c: httpx.AsyncClient, run_id: str, timeout: float = 10) -> dict[str, Any]:
    async def poll() -> dict[str, Any]:
        while True:
            body: dict[str, Any] = (await c.get(f"/v1/task-runs/{run_id}")).json()
            if body["status"] in ("completed", "failed", "canceled"):
                return body
            await asyncio.sleep(0.01)

    return await asyncio.wait_for(poll(), timeout)


async def test_registration_sets_policies(env: Any) -> None:
    orch, _, _ = env
    fail_task = orch.store.tasks["fail"]
    assert fail_task.retry.max_retries == 2
    assert fail_task.retry.wait_duration_ms == 60
    assert orch.store.tasks["hang"].timeout_seconds == 1


async def test_completion_kills_the_process(env: Any) -> None:
    _, c, launcher = env
    r = await c.post("/v1/task-runs", json={"task": "ok", "input": [1, 2]})
    assert r.status_code == 202
    done = await wait_done(c, r.json()["id"])
    assert done["results"] == [1, 2]
    assert launcher.processes[-1].killed


async def test_retry_waits_follow_the_formula(env: Any) -> None:
    orch, c, _ = env
    r = await c.post("/v1/task-runs", json={"task": "fail", "input": []})
    done = await wait_done(c, r.json()["id"])
    assert done["status"] == "failed"
    assert done["error"] == "fail failed"
    run = orch.store.runs[done["id"]]
    a = run.attempts
    assert len(a) == 3
    gap1 = (a[1].started_at - a[0].completed_at).total_seconds()
    gap2 = (a[2].started_at - a[1].completed_at).total_seconds()
    assert gap1 >= 0.06
    assert gap2 >= 0.12
    assert gap2 > gap1


async def test_timeout_fails_the_attempt(env: Any) -> None:
    _, c, launcher = env
    r = await c.post("/v1/task-runs", json={"task": "hang", "input": []})
    done = await wait_done(c, r.json()["id"])
    assert done["error"] == "task timed out after 1 seconds"
    assert launcher.processes[-1].killed


async def test_exit_without_callback(env: Any) -> None:
    _, c, _ = env
    r = await c.post("/v1/task-runs", json={"task": "exit_now", "input": []})
    done = await wait_done(c, r.json()["id"])
    assert done["error"] == "start command exited before completing the task"


async def test_logs_are_captured_per_run(env: Any) -> None:
    _, c, _ = env
    r = await c.post("/v1/task-runs", json={"task": "ok", "input": []})
    run_id = r.json()["id"]
    await wait_done(c, run_id)
    logs = (await c.get("/v1/logs", params={"taskRun": run_id})).json()["logs"]
    assert [log["message"] for log in logs] == ["running ok\n"]


async def test_recover_fails_in_flight_attempts(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    run = store.create_run(run_id="trn-a", task_name="ok", input_json=b"[]")
    store.start_attempt(run)
    store.close()
    store = Store(tmp_path / "db.sqlite3")
    sockets = make_socket_dir()
    orch = Orchestrator(
        store=store,
        launcher=FakeLauncher(TASKS, BEHAVIOURS),  # type: ignore[arg-type]
        socket_dir=sockets,
        report=lambda line: None,
    )
    assert orch.recover() == 1
    recovered = store.runs["trn-a"]
    assert recovered.status == RunStatus.FAILED
    assert recovered.error == "server restarted while the attempt was running"
    await orch.aclose()
    store.close()
    shutil.rmtree(sockets)


async def test_registration_timeout(tmp_path: Path) -> None:
    launcher = FakeLauncher(TASKS, BEHAVIOURS)
    launcher.register = False
    store = Store(tmp_path / "db.sqlite3")
    sockets = make_socket_dir()
    orch = Orchestrator(
        store=store,
        launcher=launcher,  # type: ignore[arg-type]
        socket_dir=sockets,
        report=lambda line: None,
        registration_timeout=0.2,
    )
    with pytest.raises(RegistrationError, match=r"did not register its tasks within 0\.2s"):
        await orch.register()
    assert launcher.processes[0].killed
    assert orch.registration_error is not None
    await orch.aclose()
    await launcher.aclose()
    store.close()
    shutil.rmtree(sockets)


def _reusable_workers(launcher: FakeLauncher) -> list[FakeProcess]:
    """Every process the launcher starts from now on is a reusable worker that reports
    the end of its attempt late (never: the orchestrator waits ``REUSE_END_WAIT_S``)."""
    started: list[FakeProcess] = []
    start = launcher.start

    async def reusable_start(**kw: Any) -> FakeProcess:
        proc = await start(**kw)
        proc.reusable = True
        started.append(proc)
        return proc

    launcher.start = reusable_start  # type: ignore[method-assign]
    return started


async def test_a_kept_workers_result_is_recorded_before_it_is_handed_back(env: Any) -> None:
    _, c, launcher = env
    started = _reusable_workers(launcher)
    r = await c.post("/v1/task-runs", json={"task": "ok", "input": [1, 2]})
    run_id = r.json()["id"]
    done = await wait_done(c, run_id, timeout=5)
    # Completed while the worker has not reported the end of its attempt yet: the
    # acknowledged result is recorded at once, not after the hand-back.
    assert done["status"] == "completed"
    assert done["results"] == [1, 2]
    assert not started[0].exit.done()


async def test_a_cancel_while_a_kept_worker_is_handed_back_keeps_the_result(env: Any) -> None:
    orch, c, launcher = env
    _reusable_workers(launcher)
    r = await c.post("/v1/task-runs", json={"task": "ok", "input": [1, 2]})
    run_id = r.json()["id"]
    # The callback is in (the attempt left _active) and the worker is being handed back.
    for _ in range(2500):
        if run_id not in orch._active and orch.store.runs[run_id].status != RunStatus.PENDING:
            break
        await asyncio.sleep(0.002)
    await c.delete(f"/v1/task-runs/{run_id}")
    done = await wait_done(c, run_id, timeout=5)
    assert done["status"] == "completed"
    assert done["results"] == [1, 2]
    assert orch.store.runs[run_id].status == RunStatus.COMPLETED

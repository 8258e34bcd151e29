"""Run mode, end to end: the real runner in a subprocess against a real socket server."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from render_sdk import _wire
from render_sdk._gen.render.tasksocket.v1 import CallbackRequest

from .conftest import APPS, RENDER_WORKFLOWS, Finished, finish, run_cli, spawn
from .socket_server import SocketServer, complete, failed


def output_of(callback: CallbackRequest) -> Any:
    assert callback.error is None, callback.error
    assert callback.complete is not None
    return _wire.decode_json_value(callback.complete.output)


async def simulate_square(name: str, value: Any) -> CallbackRequest:
    assert name == "square"
    (a,) = value
    return complete(a * a)


async def run_task(
    sock_dir: Path, task: str, input_value: Any, **server_options: Any
) -> tuple[Finished, CallbackRequest, SocketServer]:
    path = str(sock_dir / "run.sock")
    async with SocketServer(path, task_name=task, input_value=input_value, **server_options) as s:
        done = await run_cli("sample_app:app", mode="run", socket_path=path)
        callback = await s.callback(timeout=1)
    return done, callback, s


@pytest.mark.parametrize(
    ("task", "input_value", "expected"),
    [
        ("square", [7], [49]),
        ("greet", {"name": "ada"}, ["hello ada!"]),
        ("greet", ["bob", "?"], ["hello bob?"]),
        ("greet", {"name": "eve", "punctuation": "."}, ["hello eve."]),
        ("async_echo", [[1, 2, 3]], [1, 2, 3]),  # a list result is sent as is
        ("async_echo", [{"k": None}], [{"k": None}]),
        ("async_echo", [None], [None]),
    ],
)
async def test_sync_and_async_tasks_with_positional_and_keyword_input(
    sock_dir: Path, task: str, input_value: Any, expected: Any
) -> None:
    done, callback, server = await run_task(sock_dir, task, input_value)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == expected
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/input"),
        ("POST", "/callback"),
    ]


async def test_empty_input_means_no_arguments(sock_dir: Path) -> None:
    done, callback, _ = await run_task(sock_dir, "where_am_i", None)
    assert done.returncode == 0, done.stderr
    (result,) = output_of(callback)
    # A sync body never runs on an event loop; in the task process it runs on the main
    # thread itself (no thread is started per call).
    assert result["event_loop"] is False
    assert result["main_thread"] is True


async def test_subtasks_run_and_results_are_unwrapped(sock_dir: Path) -> None:
    done, callback, server = await run_task(
        sock_dir, "add_squares", [3, 4], on_subtask=simulate_square
    )
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [25]
    runs = [r.json for r in server.calls("/run-subtask")]
    assert [(r["task_name"], r["input"]) for r in runs] == [("square", "WzNd"), ("square", "WzRd")]
    for r in runs:
        assert len(r["idempotency_key"]) == 36
        assert r["created_at"].endswith("Z")
    waits = [r.json for r in server.calls("/get-subtask-result")]
    assert all(w["wait_ms"] == 5000 for w in waits)


async def test_keyword_subtask_call(sock_dir: Path) -> None:
    async def greet(name: str, value: Any) -> CallbackRequest:
        assert value == {"name": "kw", "punctuation": "?"}
        return complete("hi kw?")

    done, callback, _ = await run_task(sock_dir, "kw_subtask", [], on_subtask=greet)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == ["hi kw?"]


async def test_gather_fans_out_concurrently(sock_dir: Path) -> None:
    """No subtask may finish before all of them were started. A runner that awaited each
    call before making the next would leave the first one waiting for the others, and
    after a while the server fails it, so the result shows it."""
    n = 6
    all_started = asyncio.Event()
    started: list[int] = []

    async def gated(name: str, value: Any) -> CallbackRequest:
        started.append(value[0])
        if len(started) == n:
            all_started.set()
        try:
            await asyncio.wait_for(all_started.wait(), 10)
        except asyncio.TimeoutError:
            return failed(f"only {len(started)} of {n} subtasks were started concurrently")
        return complete(value[0] ** 2)

    done, callback, server = await run_task(sock_dir, "fan_out", [n], on_subtask=gated)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [i * i for i in range(n)]
    assert sorted(started) == list(range(n))
    assert len(server.calls("/run-subtask")) == n


async def test_calls_start_eagerly_before_they_are_awaited(sock_dir: Path) -> None:
    both_started = asyncio.Event()
    started: list[Any] = []

    async def gated(name: str, value: Any) -> CallbackRequest:
        started.append(value)
        if len(started) == 2:
            both_started.set()
        try:
            await asyncio.wait_for(both_started.wait(), 10)
        except asyncio.TimeoutError:
            return failed("the second call did not start before the first was awaited")
        return complete(value[0] ** 2)

    done, callback, _ = await run_task(sock_dir, "eager_pair", [], on_subtask=gated)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [5]


async def test_failed_subtask_raises_task_run_error_in_parent(sock_dir: Path) -> None:
    async def fail(name: str, value: Any) -> CallbackRequest:
        return failed("ValueError: child failed", "Traceback ...child")

    done, callback, _ = await run_task(sock_dir, "call_boom", [], on_subtask=fail)
    assert done.returncode == 1
    assert callback.error is not None
    assert callback.error.details == (
        "TaskRunError: Subtask 'boom' (trn-1) failed: ValueError: child failed"
    )
    assert "TaskRunError" in (callback.error.stack_trace or "")
    assert "TaskRunError" in done.stderr  # the process shows why it exits non-zero


async def test_task_run_error_carries_child_details(sock_dir: Path) -> None:
    async def fail(name: str, value: Any) -> CallbackRequest:
        return failed("ValueError: child failed", "Traceback ...child")

    done, callback, _ = await run_task(sock_dir, "catch_boom", [], on_subtask=fail)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [
        {"details": "ValueError: child failed", "id": "trn-1", "status": "failed"}
    ]


async def test_canceled_subtask(sock_dir: Path) -> None:
    async def cancel(name: str, value: Any) -> None:
        return None

    done, callback, _ = await run_task(sock_dir, "catch_boom", [], on_subtask=cancel)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [{"details": "canceled", "id": "trn-1", "status": "canceled"}]


@pytest.mark.parametrize(
    ("task", "input_value", "details", "frame"),
    [
        ("boom", ["bad thing"], "ValueError: bad thing", "raise ValueError(message)"),
        ("async_boom", [], "KeyError: 'missing'", 'raise KeyError("missing")'),
        (
            "square",
            ["x", "y"],
            "TypeError: square() takes 1 positional argument but 2 were given",
            "",
        ),
    ],
)
async def test_task_exception_reports_type_message_and_traceback(
    sock_dir: Path, task: str, input_value: Any, details: str, frame: str
) -> None:
    done, callback, _ = await run_task(sock_dir, task, input_value)
    assert done.returncode == 1
    assert callback.error is not None
    assert callback.error.details == details
    trace = callback.error.stack_trace or ""
    assert trace.startswith("Traceback (most recent call last):")
    assert frame in trace
    assert details.split(":")[0] in done.stderr


async def test_non_serializable_result_fails_naming_the_type(sock_dir: Path) -> None:
    done, callback, _ = await run_task(sock_dir, "bad_result", [])
    assert done.returncode == 1
    assert callback.error is not None
    assert callback.error.details.startswith(
        "WireFormatError: result: task 'bad_result' returned a set"
    )
    assert "Object of type set is not JSON serializable" in callback.error.details


@pytest.mark.parametrize(
    ("task", "input_value", "needle"),
    [
        ("no_such_task", [], "RunnerError: Task 'no_such_task' is not defined in this app"),
        ("square", 5, "must be a JSON array (positional arguments) or object"),
        ("mixed_args", [], "TypeError: Cannot mix positional and keyword arguments"),
        ("sync_calls_subtask", [], "TaskContextError: square() was called from a sync task"),
    ],
)
async def test_bad_runs_are_reported_not_lost(
    sock_dir: Path, task: str, input_value: Any, needle: str
) -> None:
    done, callback, _ = await run_task(sock_dir, task, input_value)
    assert done.returncode == 1
    assert callback.error is not None
    assert needle in callback.error.details


@pytest.mark.parametrize("task", ["greet", "async_echo"])
async def test_a_result_refused_as_too_large_fails_the_run_with_the_reason(
    sock_dir: Path, task: str
) -> None:
    # A server with a smaller cap than the runner's own limit answers 413: the runner
    # reports that as the run's error at once instead of retrying or exiting silently.
    done, callback, server = await run_task(sock_dir, task, ["x" * 3000], callback_limit=2000)
    assert done.returncode == 1
    assert callback.error is not None
    assert callback.error.details == (
        "the task server refused the result: post callback failed with status 413: "
        "body larger than 2000 bytes"
    )
    assert len(server.calls("/callback")) == 2
    assert "retrying" not in done.stderr


async def test_unknown_subtask_is_a_client_error_not_retried(sock_dir: Path) -> None:
    done, callback, server = await run_task(
        sock_dir, "unknown_child", [], on_subtask=simulate_square, unknown_tasks={"square"}
    )
    assert done.returncode == 1
    assert callback.error is not None
    assert callback.error.details.startswith(
        "ClientError: run subtask 'square' failed with status 404"
    )
    assert len(server.calls("/run-subtask")) == 1


async def test_transient_failures_are_retried_with_a_stable_idempotency_key(
    sock_dir: Path,
) -> None:
    done, callback, server = await run_task(
        sock_dir,
        "add_squares",
        [1, 2],
        on_subtask=simulate_square,
        fail_first={"/run-subtask": 2, "/callback": 1},
        drop_first={"/get-subtask-result": 1},
    )
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [5]
    runs = [r.json for r in server.calls("/run-subtask")]
    assert len(runs) == 4  # 2 refused + the first call accepted, then the second call
    assert runs[0] == runs[1] == runs[2]  # same key, same created_at, byte for byte
    assert runs[3]["idempotency_key"] != runs[0]["idempotency_key"]
    assert len(server.children) == 2
    assert "attempt 1/25 failed, retrying in 0.25s" in done.stderr
    assert len(server.calls("/callback")) == 2


async def test_server_down_then_up(sock_dir: Path) -> None:
    """The runner starts before its server exists, and the server restarts mid-run."""
    path = str(sock_dir / "late.sock")
    proc = await spawn(RENDER_WORKFLOWS, "sample_app:app", mode="run", socket_path=path)
    await asyncio.sleep(0.6)
    first = SocketServer(path, task_name="add_squares", input_value=[2, 3])
    gate = asyncio.Event()

    async def slow_square(name: str, value: Any) -> CallbackRequest:
        await asyncio.wait_for(gate.wait(), 30)
        return complete(value[0] ** 2)

    first.on_subtask = slow_square
    await first.start()
    for _ in range(200):
        if first.calls("/run-subtask"):
            break
        await asyncio.sleep(0.05)
    accepted = first.calls("/run-subtask")[0].json
    await first.stop()  # the server goes away while the parent waits for its subtask
    await asyncio.sleep(0.5)
    second = SocketServer(path, task_name="add_squares", input_value=[2, 3])
    second.on_subtask = simulate_square
    # The restarted server keeps the run it accepted before.
    second.children = first.children
    second._by_key = first._by_key
    gate.set()
    async with second:
        done = await finish(proc)
        callback = await second.callback(timeout=1)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [13]
    assert "cannot reach the task server" in done.stderr
    # The accepted call is not repeated; the wait for it resumed on the new server.
    resent = [r.json for r in second.calls("/run-subtask")]
    assert [r["input"] for r in resent] == ["WzNd"]  # only square(3)
    assert resent[0]["idempotency_key"] != accepted["idempotency_key"]
    assert second.calls("/get-subtask-result")[0].json["task_run_id"] == "trn-1"
    assert first.calls("/input")


async def test_real_child_processes(sock_dir: Path) -> None:
    """Each subtask runs in its own runner process on its own socket, like a task server."""

    async def spawn_child(name: str, value: Any) -> CallbackRequest:
        path = str(sock_dir / f"child-{id(value)}.sock")
        async with SocketServer(path, task_name=name, input_value=value) as child:
            result = await run_cli("sample_app:app", mode="run", socket_path=path)
            assert result.returncode in (0, 1), result.stderr
            return await child.callback(timeout=1)

    done, callback, _ = await run_task(sock_dir, "fan_out", [4], on_subtask=spawn_child)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [0, 1, 4, 9]


async def test_run_in_a_forked_child_of_a_warm_process(sock_dir: Path) -> None:
    """The zygote contract: import once, fork, set the env, app.start(), os._exit."""
    path = str(sock_dir / "fork.sock")
    code = f"""
import asyncio, os, sys
import sample_app
asyncio.run(asyncio.sleep(0))  # the warm parent used an event loop before forking
pid = os.fork()
if pid == 0:
    os.setsid()
    os.environ["RENDER_SDK_MODE"] = "run"
    os.environ["RENDER_SDK_SOCKET_PATH"] = {path!r}
    try:
        sample_app.app.start()
    except BaseException:
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    async with SocketServer(
        path, task_name="add_squares", input_value=[5, 6], on_subtask=simulate_square
    ) as server:
        done = await finish(await spawn(sys.executable, "-c", code, mode=None, socket_path=None))
        callback = await server.callback(timeout=1)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [61]
    assert APPS.exists()


async def test_server_that_ignores_wait_ms_is_polled_with_backoff(sock_dir: Path) -> None:
    async def slow(name: str, value: Any) -> CallbackRequest:
        await asyncio.sleep(1.5)
        return complete(value[0] ** 2)

    done, callback, server = await run_task(
        sock_dir, "add_squares", [1, 1], on_subtask=slow, long_poll=False
    )
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [2]
    polls = len(server.calls("/get-subtask-result"))
    # 0.1, 0.2, 0.4, 0.8, 1, 1 ... s between asks: a handful per subtask, not a busy loop.
    assert 4 <= polls <= 20, polls


async def test_a_sync_task_run_needs_no_event_loop(sock_dir: Path) -> None:
    path = str(sock_dir / "sync.sock")
    code = (
        "import sys, json, options_app; options_app.app.start(); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    async with SocketServer(path, task_name="quick_task", input_value=[41]) as server:
        done = await finish(await spawn(sys.executable, "-c", code, mode="run", socket_path=path))
        callback = await server.callback(timeout=1)
    assert done.returncode == 0, done.stderr
    assert output_of(callback) == [42]
    loaded = set(json.loads(done.stdout))
    assert "asyncio" not in loaded
    assert not {m for m in loaded if m.startswith(("httpx", "render_sdk.client", "starlette"))}

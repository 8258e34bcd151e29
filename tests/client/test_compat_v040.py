"""render_sdk 0.4.0's public surface, used as a 0.4.0 user would (issue 11).

Imports, constructor signatures and keyword names are checked directly; behaviour
(keyword names, ``render.client``, error text) against the real local task server.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest

import render_sdk
from render_sdk.models import TaskRun, TaskRunStatus
from render_sdk.testing import LocalServer

TASKS = textwrap.dedent(
    """
    from render_sdk import Retry, Workflows

    app = Workflows(default_retry=Retry(max_retries=0, wait_duration_ms=100))


    @app.task
    def square(a: int) -> int:
        return a * a


    @app.task
    def fail(message: str) -> None:
        raise ValueError(message)
    """
)

V040_EXPORTS = {
    "render_sdk": ["Options", "Render", "Retry", "Workflows", "__version__", "start", "task"],
    "render_sdk.render": ["Render"],
    "render_sdk.client": [
        "Client",
        "CursorParam",
        "DownloadResponse",
        "ExperimentalService",
        "LimitParam",
        "ListTaskRunsParams",
        "ObjectApi",
        "ObjectClient",
        "ObjectData",
        "OwnerID",
        "OwnerIDParam",
        "PutObjectResult",
        "Region",
        "ScopedObjectClient",
        "StorageService",
        "TaskData",
        "TaskIdentifier",
        "TaskRun",
        "TaskRunDetails",
        "TaskRunStatus",
        "UploadResponse",
        "WorkflowsService",
    ],
    "render_sdk.client.client": ["Client"],
    "render_sdk.client.workflows": ["AwaitableTaskRun", "WorkflowsService"],
    "render_sdk.client.types": [
        "CursorParam",
        "LimitParam",
        "ListTaskRunsParams",
        "OwnerIDParam",
        "TaskData",
        "TaskIdentifier",
        "TaskRun",
        "TaskRunDetails",
        "TaskRunStatus",
        "TaskRunStatusValues",
    ],
    "render_sdk.client.sse": ["parse_stream"],
    "render_sdk.client.util": [
        "handle_api_error",
        "handle_http_error",
        "handle_http_errors",
        "handle_httpx_exception",
        "handle_storage_http_error",
        "retry_with_backoff",
        "storage_error_message",
    ],
    "render_sdk.client.errors": [
        "ClientError",
        "RateLimitError",
        "RenderError",
        "ServerError",
        "TaskRunError",
        "TimeoutError",
    ],
    "render_sdk.experimental.object": [
        "DownloadResponse",
        "ListObjectsResponse",
        "ObjectApi",
        "ObjectClient",
        "ObjectData",
        "ObjectMetadata",
        "OwnerID",
        "PutObjectResult",
        "Region",
        "ScopedObjectClient",
        "UploadResponse",
    ],
    "render_sdk.workflows.task": ["Options", "Retry", "task"],
    "render_sdk.version": ["get_user_agent", "get_version"],
}


@pytest.mark.parametrize("module", sorted(V040_EXPORTS))
def test_v040_module_exports(module: str) -> None:
    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__, key=lambda n: (not n[0].isupper(), n))
    missing = [name for name in V040_EXPORTS[module] if name not in mod.__all__]
    assert missing == []
    for name in V040_EXPORTS[module]:
        assert getattr(mod, name) is not None, name


def test_compat_names_report_public_module_paths() -> None:
    from render_sdk.client import Client

    assert Client.__module__ == "render_sdk.client.client"
    assert (render_sdk.task.__module__, render_sdk.start.__module__) == ("render_sdk",) * 2


def test_version_selected_by_a_v040_pin() -> None:
    from render_sdk.version import get_user_agent, get_version

    major, minor, _ = (int(part) for part in render_sdk.__version__.split("."))
    assert (major, minor) >= (0, 5)  # satisfies render_sdk>=0.4 and a 0.4.0 user's upgrades
    assert get_version() == render_sdk.__version__
    assert get_user_agent().startswith(f"render-sdk-python/{render_sdk.__version__} (")


def test_client_constructor_is_v040s() -> None:
    from render_sdk.client import Client

    params = inspect.signature(Client).parameters
    assert list(params) == ["token", "base_url", "owner_id", "region"]
    assert params["base_url"].default == "https://api.render.com"
    client = Client("tok", "api.example.com/", "tea-1", "oregon")  # positional, as in 0.4.0
    assert (client.token, client.base_url, client.owner_id, client.region) == (
        "tok",
        "https://api.example.com",
        "tea-1",
        "oregon",
    )
    assert client.workflows is client.render.workflows
    assert client.experimental is client.render.experimental


def test_client_without_token_says_what_to_set() -> None:
    from render_sdk.client import Client
    from render_sdk.client.errors import RenderError

    with pytest.raises(RenderError, match="RENDER_API_KEY"):
        Client()


def test_awaitable_task_run_constructor_is_v040s() -> None:
    from render_sdk import Render, RenderSync
    from render_sdk.client import TaskRunSync
    from render_sdk.client.workflows import AwaitableTaskRun

    assert list(inspect.signature(AwaitableTaskRun).parameters) == [
        "task_run",
        "workflows_service",
    ]
    assert list(inspect.signature(TaskRunSync).parameters) == ["task_run", "workflows_service"]
    run = TaskRun(id="trn-1", task_id="tsk-1", status=TaskRunStatus.PENDING)
    service = Render(token="t").workflows
    handle = AwaitableTaskRun(run, service)  # positional, as in 0.4.0
    assert (handle.task_run, handle.workflows_service, handle.id) == (run, service, "trn-1")
    by_name = AwaitableTaskRun(task_run=run, workflows_service=service)
    assert by_name.workflows_service is service
    # The order this package had before 0.4.0's was restored is refused with a message.
    with pytest.raises(TypeError, match=r"AwaitableTaskRun\(task_run, workflows_service\)"):
        AwaitableTaskRun(service, run)  # type: ignore[arg-type]
    with RenderSync(token="t") as sync:
        assert TaskRunSync(run, sync.workflows).workflows_service is sync.workflows
        with pytest.raises(TypeError, match="TaskRunSync"):
            TaskRunSync(sync.workflows, run)  # type: ignore[arg-type]


def _frames(*events: tuple[str, str]) -> bytes:
    return b"".join(f"event: {name}\ndata: {data}\n\n".encode() for name, data in events)


async def _chunks(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


async def test_sse_parse_stream_yields_terminal_events(caplog: pytest.LogCaptureFixture) -> None:
    from render_sdk.client.sse import parse_stream

    done = '{"id": "trn-1", "taskId": "tsk-1", "status": "completed", "results": ["h\u00e9"]}'
    failed = '{"id": "trn-2", "taskId": "tsk-1", "status": "failed", "error": "ValueError: x"}'
    raw = (
        _frames(("task.running", '{"id": "trn-1", "status": "running"}'))
        + _frames(("task.completed", done))
        + _frames(("task.completed", "not json"))
        + b"event: task.completed\ndata: "
        + failed.encode()
        + b"\n\n"
        + b'event: task.completed\ndata: {"id": "trn-3"'  # cut off at the end
    )
    # One byte at a time: a UTF-8 character split across chunks survives (0.4.0 lost it).
    got = [d async for d in parse_stream(_chunks(raw, 1))]
    assert [(d.id, d.status_text) for d in got] == [("trn-1", "completed"), ("trn-2", "failed")]
    assert got[0].results == ["h\u00e9"]
    assert got[1].error == "ValueError: x"
    assert any(r.message.startswith("Error parsing event: ") for r in caplog.records)


def test_util_maps_responses_and_transport_errors() -> None:
    import httpx

    from render_sdk.client.errors import (
        ClientError,
        RateLimitError,
        ServerError,
        TimeoutError,
    )
    from render_sdk.client.util import (
        handle_api_error,
        handle_http_error,
        handle_httpx_exception,
        handle_storage_http_error,
        storage_error_message,
    )

    request = httpx.Request("GET", "https://api.render.com/v1/task-runs/trn-1")

    def response(status: int, body: object = None, text: str = "") -> httpx.Response:
        if body is not None:
            return httpx.Response(status, json=body, request=request)
        return httpx.Response(status, text=text, request=request)

    handle_http_error(response(200, {"ok": True}))  # no error: nothing raised
    with pytest.raises(ClientError, match="API request failed with status 404: Not found") as e:
        handle_http_error(response(404, {"message": "Not found"}))
    assert e.value.status_code == 404
    with pytest.raises(ServerError, match="boom"):
        handle_http_error(response(500, {"error": "boom"}), "SSE stream")
    with pytest.raises(RateLimitError):
        handle_api_error(response(429, {"message": "slow down"}))
    with pytest.raises(ClientError, match="create task failed with status 400: Bad request"):
        handle_api_error(response(400, {"message": "Bad request"}), "create task")
    xml = "<Error><Code>NoSuchKey</Code></Error>"
    with pytest.raises(ClientError, match="upload failed with status 404: object not found") as e:
        handle_storage_http_error(response(404, text=xml), "upload")
    assert "NoSuchKey" not in str(e.value)
    with pytest.raises(ServerError, match="storage service temporarily unavailable"):
        handle_storage_http_error(response(503, text=xml), "download")
    handle_storage_http_error(response(200, text=""), "download")
    assert storage_error_message(413) == "object too large"
    assert storage_error_message(418) == "unexpected error"
    with pytest.raises(TimeoutError, match="HTTP request timed out") as t:
        handle_httpx_exception(httpx.ReadTimeout("slow", request=request))
    assert isinstance(t.value.__cause__, httpx.ReadTimeout)
    with pytest.raises(ServerError, match="SSE connection failed"):
        handle_httpx_exception(httpx.ConnectError("refused", request=request), "SSE connection")


async def test_util_decorator_and_retry_with_backoff() -> None:
    import httpx

    from render_sdk.client.errors import ClientError, RenderError, ServerError, TaskRunError
    from render_sdk.client.util import handle_http_errors, retry_with_backoff

    request = httpx.Request("POST", "https://api.render.com/v1/task-runs")

    @handle_http_errors("test operation")
    async def call(status: int) -> httpx.Response:
        if status == 0:
            raise httpx.ConnectError("refused", request=request)
        if status == 1:
            raise KeyError("id")
        return httpx.Response(status, json={"message": "Bad request"}, request=request)

    assert (await call(202)).status_code == 202
    with pytest.raises(ClientError, match="test operation failed with status 400: Bad request"):
        await call(400)
    with pytest.raises(ServerError, match="test operation failed"):
        await call(0)
    with pytest.raises(RenderError, match="test operation failed with unexpected error: 'id'"):
        await call(1)

    calls: list[int] = []

    async def flaky() -> str | None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ServerError("once")
        return None if len(calls) == 2 else "ok"

    assert await retry_with_backoff(flaky, poll_interval=0.001) == "ok"
    assert len(calls) == 3  # failed, None (retried at once), ok

    async def always_none() -> None:
        calls.append(0)

    calls.clear()
    assert await retry_with_backoff(always_none, max_retries=3, poll_interval=0.001) is None
    assert len(calls) == 3

    async def exempt() -> None:
        calls.append(0)
        raise TaskRunError("final")

    calls.clear()
    with pytest.raises(TaskRunError, match="final"):
        await retry_with_backoff(exempt, exempted_exceptions=(TaskRunError,))
    assert len(calls) == 1

    async def broken() -> None:
        calls.append(0)
        raise ServerError(f"attempt {len(calls)}")

    calls.clear()
    with pytest.raises(ServerError, match="attempt 2"):
        await retry_with_backoff(broken, max_retries=2, poll_interval=0.001)


def test_run_task_keyword_names() -> None:
    from render_sdk.client.workflows import WorkflowsService

    params = inspect.signature(WorkflowsService.run_task).parameters
    assert {"task_identifier", "input_data"} <= set(params)


def test_module_level_task_and_start_are_deprecated(monkeypatch: pytest.MonkeyPatch) -> None:
    from render_sdk import start, task
    from render_sdk.workflows import Options, Retry, RunnerError, Task
    from render_sdk.workflows._legacy import _default_app

    with pytest.warns(DeprecationWarning, match=r"render_sdk\.task .*Workflows\(\)"):

        @task(name="legacy-square", options=Options(retry=Retry(2, 100), timeout_seconds=60))
        def square(a: int) -> int:
            return a * a

    assert isinstance(square, Task)
    assert "legacy-square" in _default_app._tasks
    monkeypatch.delenv("RENDER_SDK_MODE", raising=False)
    with (
        pytest.warns(DeprecationWarning, match=r"render_sdk\.start"),
        pytest.raises(RunnerError, match="RENDER_SDK_MODE"),
    ):
        start()


# --------------------------------------------------------------------------- real server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    root = tmp_path_factory.mktemp("compat_app")
    (root / "tasks.py").write_text(TASKS)
    with LocalServer(app="tasks:app", cwd=root, state_dir=root / "state") as srv:
        yield srv


@pytest.fixture
def local_env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    return server


async def test_v040_keywords_client_and_error_text(local_env: LocalServer) -> None:
    from render_sdk import Render
    from render_sdk.client import Client
    from render_sdk.client.errors import TaskRunError

    render = Render()
    assert isinstance(render.client, Client)
    workflows = render.client.workflows
    with pytest.warns(
        DeprecationWarning,
        match=r"run_task\(task_identifier=, input_data=\).*use run_task\(task=, input=\)",
    ):
        handle = await workflows.run_task(task_identifier="my-workflow/square", input_data=[7])
    details = await handle
    assert details.results == [49]
    assert handle.is_terminal_status() is False  # the snapshot taken at creation

    with pytest.warns(DeprecationWarning, match="input_data"):
        failing = await workflows.run_task("my-workflow/fail", input_data={"message": "bad"})
    with pytest.raises(TaskRunError) as info:
        await failing
    assert f"Task failed: {info.value}" == "Task failed: ValueError: bad"
    assert (info.value.task_run_id, info.value.status) == (failing.id, "failed")

    await render.aclose()


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (TaskRunStatus.PENDING, False),
        (TaskRunStatus.RUNNING, False),
        (TaskRunStatus.COMPLETED, True),
        (TaskRunStatus.FAILED, True),
        (TaskRunStatus.CANCELED, True),  # 0.4.0 said False; fixed upstream in 0.5.0
    ],
)
def test_is_terminal_status(status: TaskRunStatus, terminal: bool) -> None:
    from render_sdk import Render
    from render_sdk.client.workflows import AwaitableTaskRun

    run = TaskRun(id="trn-1", task_id="tsk-1", status=status)
    handle = AwaitableTaskRun(run, Render(token="t").workflows)
    assert handle.is_terminal_status() is terminal


async def test_run_task_argument_errors(local_env: LocalServer) -> None:
    from render_sdk import Render

    async with Render() as render:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pytest.raises(
                TypeError, match=r"both task= and its 0\.4\.0 name task_identifier="
            ):
                await render.workflows.run_task("my-workflow/square", [1], task_identifier="x")
        with pytest.raises(TypeError, match="missing required argument: 'input'"):
            await render.workflows.run_task("my-workflow/square")


def test_sync_twin_accepts_v040_keywords(local_env: LocalServer) -> None:
    from render_sdk import RenderSync

    with RenderSync() as render:
        with pytest.warns(DeprecationWarning, match="0.4.0's names"):
            run = render.workflows.run_task(task_identifier="my-workflow/square", input_data=[3])
        assert run.wait(timeout=30).results == [9]
        assert run.is_terminal_status() is False


async def test_sse_parse_stream_reads_the_real_servers_events(local_env: LocalServer) -> None:
    import httpx

    from render_sdk import Render
    from render_sdk.client.sse import parse_stream

    async with Render() as render:
        handle = await render.workflows.run_task("my-workflow/square", [12])
    async with (
        httpx.AsyncClient(base_url=local_env.url, timeout=30) as client,
        client.stream(
            "GET",
            "/v1/task-runs/events",
            params={"taskRunIds": handle.id},
            headers={"Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200
        # The server ends the stream after the run's terminal event, so this ends too.
        got = [details async for details in parse_stream(response.aiter_bytes())]
    assert [(d.id, d.status_text, d.results) for d in got] == [(handle.id, "completed", [144])]

"""render_sdk 0.4.0's public surface, used as a 0.4.0 user would (issue 11).

Imports, constructor signatures and keyword names are checked directly; behaviour
(keyword names, ``render.client``, error text) against the real local task server.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
import warnings
from collections.abc import Iterator

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
    handle = AwaitableTaskRun(Render(token="t").workflows, run)
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

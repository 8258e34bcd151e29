"""Static checks of the client's public signatures (checked by mypy in test_client_typing.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, assert_type

from render_sdk import Render, RenderSync
from render_sdk.client import (
    AwaitableTaskRun,
    ListTaskRunsParams,
    TaskRunList,
    TaskRunSync,
)
from render_sdk.models import TaskRun, TaskRunDetails


async def async_client() -> None:
    async with Render() as render:
        handle = await render.workflows.run_task("wf/t", [1])
        assert_type(handle, AwaitableTaskRun)
        assert_type(handle.id, str)
        assert_type(handle.status, str)
        assert_type(await handle, TaskRunDetails)
        assert_type(await handle.wait(timeout=1.0), TaskRunDetails)
        assert_type(await render.workflows.get_task_run("x"), TaskRunDetails)
        assert_type(await render.workflows.cancel_task_run("x"), None)
        runs = await render.workflows.list_task_runs(ListTaskRunsParams(limit=1))
        assert_type(runs, TaskRunList)
        assert_type(runs[0], TaskRun)
        assert_type(runs.next_cursor, str | None)
        assert_type(render.workflows.task_run_events(["x"]), AsyncGenerator[TaskRunDetails, None])
        assert_type(render.workflows.iter_task_runs(), AsyncGenerator[TaskRun, None])
        async for event in render.workflows.task_run_events(["x"]):
            assert_type(event.results, list[Any] | None)
            assert_type(event.status_text, str)


def sync_client() -> None:
    with RenderSync() as render:
        handle = render.workflows.run_task("wf/t", {"a": 1})
        assert_type(handle, TaskRunSync)
        assert_type(handle.wait(), TaskRunDetails)
        assert_type(render.workflows.wait_for_task_run("x", timeout=2), TaskRunDetails)
        assert_type(render.workflows.task_run_events(["x"]), Generator[TaskRunDetails, None, None])
        assert_type(render.workflows.list_task_runs(), TaskRunList)


def wrong_usage() -> None:
    render = RenderSync()
    render.workflows.get_task_run(5)  # type: ignore[arg-type]
    Render("token")  # type: ignore[call-arg]

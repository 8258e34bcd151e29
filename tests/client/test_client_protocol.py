"""Protocol logic without I/O: params, list shapes, outcomes, the event-stream state machine;
plus exports and the per-event-loop connection pool."""

from __future__ import annotations

import asyncio
import json

import pytest
from _client_helpers import details

import render_sdk
import render_sdk.client
from render_sdk.client import _protocol as P
from render_sdk.client._constants import SSE_MAX_RECONNECTS
from render_sdk.client._protocol import EventStream, ListTaskRunsParams
from render_sdk.client.errors import (
    ClientError,
    RateLimitError,
    ServerError,
    TimeoutError,
    WireFormatError,
)
from render_sdk.models import TaskRunDetails


def test_public_names() -> None:
    exported = render_sdk.client.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(render_sdk.client, name) is not None
    assert {"Render", "RenderSync", "ListTaskRunsParams", "WorkflowsService"} <= set(exported)
    assert {"AwaitableTaskRun", "TaskRunDetails", "TaskRunError"} <= set(exported)
    assert render_sdk.Render is render_sdk.client.Render
    assert render_sdk.RenderSync is render_sdk.client.RenderSync
    assert render_sdk.client.TaskRunDetails is render_sdk.models.TaskRunDetails


def test_list_params_to_query() -> None:
    assert P.list_params(None) == {}
    assert P.list_params(ListTaskRunsParams(10)) == {"limit": 10}
    params = ListTaskRunsParams(
        limit=5, cursor="c", owner_id="tea-1", task_slug=["a", "b"], root_task_run_id="trn-r"
    )
    assert P.list_params(params) == {
        "limit": 5,
        "cursor": "c",
        "ownerId": ["tea-1"],
        "taskSlug": ["a", "b"],
        "rootTaskRunId": ["trn-r"],
    }
    with pytest.raises(ValueError, match="limit"):
        P.list_params(ListTaskRunsParams(limit=0))
    with pytest.raises(TypeError, match="owner_id"):
        P.list_params(ListTaskRunsParams(owner_id=[1]))  # type: ignore[list-item]


def test_events_params_repeat_the_key() -> None:
    assert P.events_params(["a", "b"]) == {"taskRunIds": ["a", "b"]}
    assert P.check_ids(["a", "b", "a"]) == ["a", "b"]
    with pytest.raises(ValueError, match="at least one"):
        P.check_ids([])
    with pytest.raises(TypeError, match="list of ids"):
        P.check_ids("trn-1")


def test_list_page_cursor_rules() -> None:
    two = json.dumps([{"cursor": "c1", "taskRun": {"id": "a"}}, {"taskRun": {"id": "b"}}])
    page = P.parse_task_run_list(two.encode(), limit=2)
    assert [r.id for r in page] == ["a", "b"]
    assert page.next_cursor == "b"  # an item without a cursor falls back to its id
    assert P.parse_task_run_list(two.encode(), limit=3).next_cursor is None
    assert P.parse_task_run_list(b"[]").next_cursor is None
    wrapped = P.parse_task_run_list(b'{"taskRuns": [{"id": "x"}]}')
    assert [r.id for r in wrapped] == ["x"]


def _details(status: str, error: str | None = None) -> TaskRunDetails:
    return P.parse_details(json.dumps(details("trn-1", status, error=error)).encode())


def test_outcomes() -> None:
    assert P.outcome_error(_details("completed")) is None
    assert P.outcome_error(_details("succeeded")) is None
    failed = P.outcome_error(_details("failed", "ValueError: x"))
    assert failed is not None
    assert (failed.status, failed.details) == ("failed", "ValueError: x")
    canceled = P.outcome_error(_details("canceled"))
    assert canceled is not None
    assert canceled.status == "canceled"
    assert "canceled" in str(canceled)
    assert P.is_terminal(_details("canceled"))
    assert not P.is_terminal(_details("paused"))


def _line(run_id: str, status: str) -> str:
    return json.dumps(details(run_id, status))


def test_event_stream_dedups_and_finishes() -> None:
    state = EventStream(ids=["a", "b"])
    assert state.on_sse("", "", "", 2000) is None
    assert state.server_retry == 2.0
    assert state.on_sse("task.running", _line("a", "running"), "1", None) is not None
    assert state.on_sse("task.completed", _line("z", "completed"), "2", None) is None
    assert state.on_sse("task.completed", _line("a", "completed"), "3", None) is not None
    assert state.on_sse("task.completed", _line("a", "completed"), "4", None) is None  # dup
    assert state.pending == ["b"]
    assert state.params() == {"taskRunIds": ["b"]}
    assert state.headers()["Last-Event-ID"] == "4"
    snapshot = state.on_snapshot(_details("running"))
    assert snapshot is None  # a non-terminal read is not an event
    final = P.parse_details(_line("b", "failed").encode())
    assert state.on_snapshot(final) is final
    assert state.finished


def test_wait_mode_skips_progress_events() -> None:
    state = EventStream(ids=["a"], all_events=False)
    assert state.on_sse("task.running", "{not even json", "1", None) is None
    assert state.on_sse("task.completed", _line("a", "running"), "2", None) is None
    with pytest.raises(WireFormatError):
        state.on_sse("task.completed", "{bad", "3", None)


def test_reconnect_policy() -> None:
    now = [100.0]
    state = EventStream(ids=["a"], clock=lambda: now[0])
    delays = [state.on_failure(ServerError("drop")) for _ in range(4)]
    assert delays == sorted(delays)
    assert all(0 < d <= 16 for d in delays)
    state.server_retry = 2.0
    assert state.on_failure(ServerError("drop")) >= 2.0
    with pytest.raises(ClientError):
        state.on_failure(ClientError("forbidden", status_code=403))
    assert state.on_failure(RateLimitError("slow", retry_after=1.5)) == 1.5
    # A connection that stayed up a while resets the backoff.
    state.on_connected()
    now[0] += 60
    assert state.on_failure(ServerError("drop")) < 2.5
    for _ in range(SSE_MAX_RECONNECTS - state.failures):
        state.on_failure(ServerError("still down"))
    with pytest.raises(ServerError, match="still down"):  # gives up after a while
        state.on_failure(ServerError("still down"))


def test_deadline() -> None:
    now = [0.0]
    state = EventStream(ids=["a"], deadline=10.0, clock=lambda: now[0])
    assert state.remaining() == 10.0
    timeout = state.timeout(__import__("httpx").Timeout(60.0, connect=5.0))
    assert timeout.read == 10.0
    now[0] = 9.9
    with pytest.raises(TimeoutError):
        state.on_failure(ServerError("drop"))  # no time left for the backoff
    now[0] = 11.0
    with pytest.raises(TimeoutError, match="a"):
        state.remaining()
    with pytest.raises(ValueError, match="positive"):
        P.deadline_after(0)


def test_pool_is_per_event_loop_and_closed_with_it() -> None:
    render = render_sdk.client.Render(base_url="http://127.0.0.1:9")

    async def pool() -> object:
        return render._http.client()

    first = asyncio.run(pool())
    second = asyncio.run(pool())
    assert first is not second
    assert first.is_closed  # type: ignore[attr-defined]
    assert second.is_closed  # type: ignore[attr-defined]

    async def same_loop() -> None:
        assert render._http.client() is render._http.client()
        await render.aclose()
        await render.aclose()

    asyncio.run(same_loop())


def test_experimental_is_lazy_and_shared() -> None:
    render = render_sdk.client.Render(base_url="http://127.0.0.1:9")
    assert render.experimental is render.experimental
    assert hasattr(render.experimental.storage, "objects")
    sync = render_sdk.client.RenderSync(base_url="http://127.0.0.1:9")
    assert hasattr(sync.experimental.storage, "objects")

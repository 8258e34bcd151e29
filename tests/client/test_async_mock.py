"""The async client against httpx.MockTransport: behaviours only Render's API shows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from _client_helpers import (
    BASE,
    Recorder,
    details,
    split_idempotency_key,
    sse,
    sse_response,
    task_run,
)

from render_sdk import _wire
from render_sdk.client import (
    AwaitableTaskRun,
    ListTaskRunsParams,
    Render,
    TaskRunDetails,
)
from render_sdk.client.errors import (
    ClientError,
    RateLimitError,
    RenderError,
    ServerError,
    TaskRunError,
    TimeoutError,
    WireFormatError,
)

Answer = Callable[[httpx.Request, int], httpx.Response]


def client(answer: Answer, **kwargs: object) -> tuple[Render, Recorder]:
    recorder = Recorder(answer)
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return Render(token="rnd_test", base_url=BASE, http_client=http, **kwargs), recorder  # type: ignore[arg-type]


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# --------------------------------------------------------------------------- run_task


async def test_run_task_request_and_handle() -> None:
    render, rec = client(lambda r, i: json_response(202, task_run(status="running")))
    handle = await render.workflows.run_task("my-workflow/my-task", [3, 4])
    assert isinstance(handle, AwaitableTaskRun)
    assert (handle.id, handle.status) == ("trn-1", "running")
    request = rec.requests[0]
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/task-runs"
    body, _ = split_idempotency_key(request.content)
    assert body == b'{"task":"my-workflow/my-task","input":[3,4]}'
    assert request.headers["Authorization"] == "Bearer rnd_test"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("render-sdk-python/")


@pytest.mark.parametrize("status", [200, 201, 202])
async def test_run_task_accepts_any_2xx(status: int) -> None:
    render, _ = client(lambda r, i: json_response(status, task_run()))
    assert (await render.workflows.run_task("wf/t", [])).id == "trn-1"


async def test_run_task_keyword_input_and_tuple() -> None:
    render, rec = client(lambda r, i: json_response(202, task_run()))
    await render.workflows.run_task("wf/t", {"a": 1, "b": "é"})
    await render.workflows.run_task("wf/t", (1, 2))
    first, first_key = split_idempotency_key(rec.requests[0].content)
    second, second_key = split_idempotency_key(rec.requests[1].content)
    assert first == '{"task":"wf/t","input":{"a":1,"b":"é"}}'.encode()
    assert second == b'{"task":"wf/t","input":[1,2]}'
    assert first_key != second_key  # one key per logical start


@pytest.mark.parametrize("bad", [5, "text", {1, 2}, [object()], [float("nan")]])
async def test_run_task_bad_input_fails_before_sending(bad: object) -> None:
    render, rec = client(lambda r, i: json_response(202, task_run()))
    with pytest.raises(WireFormatError) as info:
        await render.workflows.run_task("wf/t", bad)
    assert info.value.field is not None
    assert info.value.field.startswith("input")
    assert rec.requests == []


async def test_run_task_bad_slug() -> None:
    render, rec = client(lambda r, i: json_response(202, task_run()))
    with pytest.raises(TypeError, match="task slug"):
        await render.workflows.run_task("", [])
    assert rec.requests == []


async def test_run_task_404_message_and_id() -> None:
    render, _ = client(
        lambda r, i: json_response(404, {"message": "task not found: wf/nope", "id": "e-1"})
    )
    with pytest.raises(ClientError) as info:
        await render.workflows.run_task("wf/nope", [])
    assert info.value.status_code == 404
    assert info.value.error_id == "e-1"
    assert "task not found: wf/nope" in str(info.value)


async def test_post_is_not_retried_after_a_500() -> None:
    render, rec = client(lambda r, i: json_response(500, {"message": "boom"}))
    with pytest.raises(ServerError):
        await render.workflows.run_task("wf/t", [])
    assert len(rec.requests) == 1


async def test_post_is_retried_when_it_never_connected() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if i == 0:
            raise httpx.ConnectError("connection refused")
        return json_response(202, task_run())

    render, rec = client(answer)
    assert (await render.workflows.run_task("wf/t", [])).id == "trn-1"
    assert len(rec.requests) == 2
    # The retry is the same start: same body, same idempotency key.
    assert rec.requests[0].content == rec.requests[1].content


async def test_post_is_not_retried_after_a_read_error() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    render, rec = client(answer)
    with pytest.raises(ServerError, match="network error") as info:
        await render.workflows.run_task("wf/t", [])
    assert isinstance(info.value.__cause__, httpx.ReadError)
    assert len(rec.requests) == 1


async def test_post_is_retried_after_429_retry_after() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if i == 0:
            return json_response(429, {"message": "slow"}, **{"Retry-After": "0"})
        return json_response(202, task_run())

    render, rec = client(answer)
    assert (await render.workflows.run_task("wf/t", [])).id == "trn-1"
    assert len(rec.requests) == 2
    # The retry is the same start: same body, same idempotency key.
    assert rec.requests[0].content == rec.requests[1].content


async def test_malformed_success_body() -> None:
    render, _ = client(lambda r, i: httpx.Response(202, content=b"<html>oops</html>"))
    with pytest.raises(WireFormatError, match="not valid JSON"):
        await render.workflows.run_task("wf/t", [])
    render, _ = client(lambda r, i: json_response(200, {"id": 5, "status": "running"}))
    with pytest.raises(WireFormatError) as info:
        await render.workflows.get_task_run("trn-1")
    assert info.value.field == "id"


# --------------------------------------------------------------------------- get / cancel


async def test_get_task_run_details() -> None:
    render, rec = client(lambda r, i: json_response(200, details(error=None)))
    got = await render.workflows.get_task_run("trn-1")
    assert isinstance(got, TaskRunDetails)
    assert (got.id, got.status_text, got.results, got.input) == ("trn-1", "completed", [25], [5])
    assert got.is_terminal
    assert rec.paths() == ["GET /v1/task-runs/trn-1"]


async def test_unknown_status_string_is_kept() -> None:
    render, _ = client(lambda r, i: json_response(200, details(status="hibernating")))
    got = await render.workflows.get_task_run("trn-1")
    assert got.status_text == "hibernating"
    assert not got.is_terminal


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"message": "unauthorized"}'),
        (403, b'{"message": "forbidden", "id": "x"}'),
        (404, b'{"message": "task run not found"}'),
    ],
)
async def test_get_4xx_not_retried(status: int, body: bytes) -> None:
    render, rec = client(lambda r, i: httpx.Response(status, content=body))
    with pytest.raises(ClientError) as info:
        await render.workflows.get_task_run("trn-1")
    assert info.value.status_code == status
    assert json.loads(body)["message"] in str(info.value)
    assert len(rec.requests) == 1


async def test_get_plain_text_401() -> None:
    render, _ = client(lambda r, i: httpx.Response(401, content=b"Unauthorized"))
    with pytest.raises(ClientError, match="non-JSON response: Unauthorized"):
        await render.workflows.get_task_run("trn-1")


async def test_get_retries_500_then_succeeds() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if i == 0:
            return json_response(500, {"message": "hiccup"}, **{"Retry-After": "0"})
        return json_response(200, details())

    render, rec = client(answer)
    assert (await render.workflows.get_task_run("trn-1")).id == "trn-1"
    assert len(rec.requests) == 2


async def test_get_gives_up_after_max_retries() -> None:
    render, rec = client(
        lambda r, i: json_response(503, {"message": "down"}, **{"Retry-After": "0"}),
        max_retries=3,
    )
    with pytest.raises(ServerError, match="down"):
        await render.workflows.get_task_run("trn-1")
    assert len(rec.requests) == 4


async def test_429_exhausted_raises_rate_limit_with_retry_after() -> None:
    render, rec = client(
        lambda r, i: json_response(429, {"message": "slow"}, **{"Retry-After": "0"}),
        max_retries=1,
    )
    with pytest.raises(RateLimitError) as info:
        await render.workflows.get_task_run("trn-1")
    assert info.value.retry_after == 0.0
    assert len(rec.requests) == 2


async def test_429_with_long_retry_after_is_raised_at_once() -> None:
    render, rec = client(
        lambda r, i: json_response(429, {"message": "slow"}, **{"Retry-After": "3600"})
    )
    with pytest.raises(RateLimitError) as info:
        await render.workflows.get_task_run("trn-1")
    assert info.value.retry_after == 3600
    assert len(rec.requests) == 1


async def test_get_timeout_is_timeout_error() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    render, _rec = client(answer, max_retries=0)
    with pytest.raises(TimeoutError, match="get task run timed out"):
        await render.workflows.get_task_run("trn-1")


async def test_cancel_204_and_errors() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.url.path.endswith("trn-1"):
            return httpx.Response(204)
        return httpx.Response(500, content=b'{"message": "task run trn-2 is not active"}')

    render, rec = client(answer, max_retries=0)
    assert await render.workflows.cancel_task_run("trn-1") is None
    with pytest.raises(ServerError, match="not active"):
        await render.workflows.cancel_task_run("trn-2")
    assert rec.paths() == ["DELETE /v1/task-runs/trn-1", "DELETE /v1/task-runs/trn-2"]


async def test_bad_run_id_rejected() -> None:
    render, rec = client(lambda r, i: json_response(200, details()))
    with pytest.raises(ValueError, match="task run id"):
        await render.workflows.get_task_run("../tasks")
    assert rec.requests == []


# --------------------------------------------------------------------------- list


async def test_list_bare_array_shape_and_query() -> None:
    render, rec = client(lambda r, i: json_response(200, [task_run("trn-1"), task_run("trn-2")]))
    runs = await render.workflows.list_task_runs(
        ListTaskRunsParams(limit=2, cursor="c0", owner_id=["tea-1", "tea-2"], task_slug="wf/t")
    )
    assert [r.id for r in runs] == ["trn-1", "trn-2"]
    assert runs.next_cursor == "trn-2"
    query = rec.requests[0].url.params
    assert query["limit"] == "2"
    assert query["cursor"] == "c0"
    assert query.get_list("ownerId") == ["tea-1", "tea-2"]
    assert query.get_list("taskSlug") == ["wf/t"]


async def test_list_with_cursor_shape() -> None:
    body = [
        {"cursor": "cur-1", "taskRun": task_run("trn-1", "completed")},
        {"cursor": "cur-2", "taskRun": task_run("trn-2", "failed")},
    ]
    render, rec = client(lambda r, i: json_response(200, body))
    runs = await render.workflows.list_task_runs(ListTaskRunsParams(limit=2))
    assert [(r.id, r.status.name) for r in runs] == [("trn-1", "COMPLETED"), ("trn-2", "FAILED")]
    assert runs.next_cursor == "cur-2"
    assert "cursor" not in rec.requests[0].url.params


async def test_list_without_params_sends_no_query() -> None:
    render, rec = client(lambda r, i: json_response(200, []))
    runs = await render.workflows.list_task_runs()
    assert list(runs) == []
    assert runs.next_cursor is None
    assert rec.requests[0].url.query == b""


async def test_list_malformed_item_names_index() -> None:
    render, _ = client(lambda r, i: json_response(200, [task_run(), {"taskRun": {"id": 3}}]))
    with pytest.raises(WireFormatError) as info:
        await render.workflows.list_task_runs()
    assert info.value.field is not None
    assert info.value.field.startswith("[1]")
    render, _ = client(lambda r, i: json_response(200, {"unexpected": True}))
    with pytest.raises(WireFormatError, match="JSON array"):
        await render.workflows.list_task_runs()


async def test_iter_task_runs_follows_cursors() -> None:
    pages = {
        None: [
            {"cursor": "a", "taskRun": task_run("trn-1")},
            {"cursor": "b", "taskRun": task_run("trn-2")},
        ],
        "b": [
            {"cursor": "c", "taskRun": task_run("trn-3")},
            {"cursor": "d", "taskRun": task_run("trn-4")},
        ],
        "d": [{"cursor": "e", "taskRun": task_run("trn-5")}],
    }

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        return json_response(200, pages[request.url.params.get("cursor")])

    render, rec = client(answer)
    ids = [run.id async for run in render.workflows.iter_task_runs(ListTaskRunsParams(limit=2))]
    assert ids == ["trn-1", "trn-2", "trn-3", "trn-4", "trn-5"]
    assert len(rec.requests) == 3


async def test_iter_task_runs_stops_when_server_ignores_cursor() -> None:
    render, rec = client(lambda r, i: json_response(200, [task_run("trn-1"), task_run("trn-2")]))
    ids = [run.id async for run in render.workflows.iter_task_runs(ListTaskRunsParams(limit=2))]
    assert ids == ["trn-1", "trn-2"]
    assert len(rec.requests) == 2


# --------------------------------------------------------------------------- events


def events_answer(
    *streams: httpx.Response | Callable[[httpx.Request], httpx.Response],
    snapshot: dict[str, object] | None = None,
) -> Answer:
    """Event-stream connections answered in order; GETs answer ``snapshot`` (running)."""
    queue = list(streams)

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.url.path.endswith("/events"):
            item = queue.pop(0)
            return item(request) if callable(item) else item
        run_id = request.url.path.rsplit("/", 1)[1]
        return json_response(200, snapshot or details(run_id, "running"))

    return answer


async def test_events_yield_all_until_terminal() -> None:
    stream = sse_response(
        b"retry: 10\n\n",
        sse(details("trn-1", "running"), event="task.running", id="1"),
        b": ping\n\n",
        sse(details("trn-2", "completed"), id="2"),
        sse(details("trn-9", "completed"), id="3"),  # not requested: ignored
        sse(details("trn-1", "failed", error="ValueError: bad"), id="4"),
    )
    render, rec = client(events_answer(stream))
    seen = [
        (e.id, e.status_text, e.error)
        async for e in render.workflows.task_run_events(["trn-1", "trn-2"])
    ]
    assert seen == [
        ("trn-1", "running", None),
        ("trn-2", "completed", None),
        ("trn-1", "failed", "ValueError: bad"),
    ]
    events_request = rec.requests[0]
    assert events_request.url.params.get_list("taskRunIds") == ["trn-1", "trn-2"]
    assert events_request.headers["Accept"] == "text/event-stream"


async def test_events_multiline_data_and_split_utf8() -> None:
    body = details("trn-1", "completed", results=["héllo ✓"])
    pretty = json.dumps(body, ensure_ascii=False, indent=1)  # many data: lines
    raw = sse(pretty, id="7")
    cut = raw.index("✓".encode()) + 1  # inside the 3-byte character
    stream = sse_response(raw[:cut], raw[cut:])
    render, _ = client(events_answer(stream))
    events = [e async for e in render.workflows.task_run_events(["trn-1"])]
    assert [e.results for e in events] == [["héllo ✓"]]


async def test_events_crlf_and_unknown_names() -> None:
    text = json.dumps(details("trn-1", "completed"))
    stream = sse_response(
        f"event: task.exotic\r\ndata: {text}\r\n\r\n".encode(),
        f"event: task.completed\r\ndata: {text}\r\n\r\n".encode(),
    )
    render, _ = client(events_answer(stream))
    events = [e async for e in render.workflows.task_run_events(["trn-1"])]
    assert len(events) == 1


async def test_events_terminal_name_with_unknown_status_is_final() -> None:
    stream = sse_response(sse(details("trn-1", "vanished"), event="task.completed"))
    render, _ = client(events_answer(stream))
    events = [e async for e in render.workflows.task_run_events(["trn-1"])]
    assert [e.status_text for e in events] == ["vanished"]


async def test_events_malformed_data_raises_clear_error() -> None:
    stream = sse_response(b"event: task.completed\ndata: {not json\n\n")
    render, _ = client(events_answer(stream))
    with pytest.raises(WireFormatError, match="not valid JSON"):
        _ = [e async for e in render.workflows.task_run_events(["trn-1"])]


async def test_dropped_stream_reconnects_with_last_event_id() -> None:
    first = sse_response(
        b"retry: 10\n\n",
        sse(details("trn-1", "running"), event="task.running", id="41"),
        error=httpx.RemoteProtocolError("peer closed connection"),
    )

    def second(request: httpx.Request) -> httpx.Response:
        assert request.headers["Last-Event-ID"] == "41"
        return sse_response(sse(details("trn-1", "completed"), id="42"))

    render, rec = client(events_answer(first, second))
    seen = [e.status_text async for e in render.workflows.task_run_events(["trn-1"])]
    assert seen == ["running", "completed"]
    assert rec.paths().count("GET /v1/task-runs/events") == 2
    assert "Last-Event-ID" not in rec.requests[0].headers


async def test_stream_closed_by_server_reconnects() -> None:
    first = sse_response(b"retry: 10\n\n")  # ends without the run's final state
    second = sse_response(sse(details("trn-1", "completed")))
    render, rec = client(events_answer(first, second))
    result = await render.workflows.wait_for_task_run("trn-1")
    assert result.results == [25]
    assert rec.paths().count("GET /v1/task-runs/events") == 2


@pytest.mark.parametrize(
    ("status", "cls"), [(401, ClientError), (403, ClientError), (404, ClientError)]
)
async def test_sse_error_status_reads_body_and_maps(status: int, cls: type[RenderError]) -> None:
    body = json.dumps({"message": f"events said {status}", "id": "e-9"}).encode()

    def refuse(request: httpx.Request) -> httpx.Response:
        async def stream() -> AsyncIterator[bytes]:
            yield body

        return httpx.Response(status, content=stream())

    render, _rec = client(events_answer(refuse))
    with pytest.raises(cls) as info:
        _ = [e async for e in render.workflows.task_run_events(["trn-1"])]
    assert info.value.status_code == status
    assert f"events said {status}" in str(info.value)
    assert info.value.error_id == "e-9"


async def test_sse_500_then_recovers() -> None:
    refuse = httpx.Response(500, content=b"upstream exploded")
    ok = sse_response(sse(details("trn-1", "completed")))
    render, _rec = client(events_answer(refuse, ok))
    assert (await render.workflows.wait_for_task_run("trn-1")).id == "trn-1"


async def test_sse_wrong_content_type() -> None:
    html = httpx.Response(200, content=b"<html></html>", headers={"Content-Type": "text/html"})
    render, _ = client(events_answer(*([html] * 20)))
    with pytest.raises((ServerError, TimeoutError)) as info:
        await render.workflows.wait_for_task_run("trn-1", timeout=1.0)
    assert "text/event-stream" in str(info.value) or "text/event-stream" in str(
        info.value.__cause__
    )


async def test_persistent_5xx_wait_times_out_with_cause() -> None:
    render, _ = client(events_answer(*[httpx.Response(503) for _ in range(20)]))
    with pytest.raises(TimeoutError) as info:
        await render.workflows.wait_for_task_run("trn-1", timeout=0.5)
    assert "trn-1" in str(info.value)


async def test_wait_timeout_on_silent_stream() -> None:
    async def silent() -> AsyncIterator[bytes]:
        yield b"retry: 10\n\n"
        await asyncio.sleep(30)

    def stream() -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=silent())

    render, _ = client(events_answer(stream(), stream()))
    with pytest.raises(TimeoutError, match="trn-1"):
        await render.workflows.wait_for_task_run("trn-1", timeout=0.3)
    with pytest.raises(TimeoutError):
        _ = [e async for e in render.workflows.task_run_events(["trn-1"], timeout=0.3)]


# --------------------------------------------------------------------------- awaiting a handle


async def test_await_handle_success_and_cached() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status="running"))
        if request.url.path.endswith("/events"):
            return sse_response(sse(details("trn-1", "completed")))
        return json_response(200, details("trn-1", "running"))

    render, rec = client(answer)
    handle = await render.workflows.run_task("wf/t", [5])
    result = await handle
    assert result.results == [25]
    assert (await handle) is result
    assert rec.paths() == [
        "POST /v1/task-runs",
        "GET /v1/task-runs/events",
        "GET /v1/task-runs/trn-1",
    ]


async def test_await_handle_run_finished_before_subscribing() -> None:
    """Render does not replay: the GET made after subscribing catches the outcome."""

    async def silent() -> AsyncIterator[bytes]:
        yield b": ping\n\n"
        await asyncio.sleep(30)

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status="pending"))
        if request.url.path.endswith("/events"):
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=silent()
            )
        return json_response(200, details("trn-1", "completed"))

    render, _ = client(answer)
    handle = await render.workflows.run_task("wf/t", [5])
    result = await asyncio.wait_for(handle.wait(), 5)
    assert result.results == [25]


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        ("failed", "ValueError: boom", "^ValueError: boom$"),
        ("canceled", None, "was canceled"),
    ],
)
async def test_await_failed_or_canceled_raises(status: str, error: str | None, text: str) -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status="running"))
        if request.url.path.endswith("/events"):
            return sse_response(sse(details("trn-1", status, error=error)))
        return json_response(200, details("trn-1", "running"))

    render, _ = client(answer)
    handle = await render.workflows.run_task("wf/t", [5])
    with pytest.raises(TaskRunError, match=text) as info:
        await handle
    assert (info.value.task_run_id, info.value.status) == ("trn-1", status)
    if error:
        assert info.value.details == error
    with pytest.raises(TaskRunError):
        await handle  # the outcome is remembered


@pytest.mark.parametrize("status", ["failed", "canceled"])
async def test_await_already_finished_failed_run_raises(status: str) -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status=status))
        return json_response(200, details("trn-1", status, error="RuntimeError: x"))

    render, rec = client(answer)
    handle = await render.workflows.run_task("wf/t", [5])
    with pytest.raises(TaskRunError) as info:
        await handle
    assert info.value.status == status
    assert rec.paths() == ["POST /v1/task-runs", "GET /v1/task-runs/trn-1"]


async def test_injected_client_is_not_closed() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: json_response(200, [])))
    async with Render(token="k", base_url=BASE, http_client=http) as render:
        await render.workflows.list_task_runs()
    assert not http.is_closed
    await http.aclose()


# --------------------------------------------------------------------------- shared waits


def replaying_stream(*chunks: bytes) -> httpx.Response:
    """An event stream from a server that sends already-terminal runs itself."""
    response = sse_response(*chunks)
    response.headers[_wire.EVENTS_REPLAY_HEADER] = _wire.EVENTS_REPLAY_TERMINAL
    return response


async def test_concurrent_waits_share_one_event_stream() -> None:
    ids = [f"trn-{i}" for i in range(5)]
    seen: list[list[str]] = []

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        assert request.url.path.endswith("/events"), "no GET of a run: the server replays"
        wanted = request.url.params.get_list("taskRunIds")
        seen.append(wanted)
        return replaying_stream(*(sse(details(run_id, "completed")) for run_id in wanted))

    render, _ = client(answer)
    results = await asyncio.gather(*(render.workflows.wait_for_task_run(i) for i in ids))
    assert [r.id for r in results] == ids
    assert seen == [ids]  # one stream for all five waits


async def test_a_stream_error_reaches_every_wait_on_it() -> None:
    refuse = httpx.Response(404, json={"message": "no such runs"})
    render, rec = client(lambda request, i: refuse)
    waits = [render.workflows.wait_for_task_run(f"trn-{i}") for i in range(3)]
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(o, ClientError) and o.status_code == 404 for o in outcomes), outcomes
    assert len(rec.requests) == 1


async def test_a_wait_that_times_out_leaves_the_others_waiting() -> None:
    gate = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        await gate.wait()
        yield sse(details("trn-2", "completed"))

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        response = httpx.Response(
            200, headers={"Content-Type": "text/event-stream"}, content=body()
        )
        response.headers[_wire.EVENTS_REPLAY_HEADER] = _wire.EVENTS_REPLAY_TERMINAL
        return response

    render, _ = client(answer)
    patient = asyncio.ensure_future(render.workflows.wait_for_task_run("trn-2"))
    with pytest.raises(TimeoutError, match="trn-1"):
        await asyncio.gather(render.workflows.wait_for_task_run("trn-1", timeout=0.2), patient)
    assert not patient.done()
    gate.set()
    assert (await asyncio.wait_for(patient, 10)).id == "trn-2"


async def test_without_the_replay_header_each_run_is_read_after_subscribing() -> None:
    stream = sse_response(sse(details("trn-1", "completed")))
    render, rec = client(events_answer(stream, snapshot=details("trn-1", "running")))
    assert (await render.workflows.wait_for_task_run("trn-1")).id == "trn-1"
    assert rec.paths() == ["GET /v1/task-runs/events", "GET /v1/task-runs/trn-1"]


async def test_a_wait_after_an_abandoned_stream_gets_a_stream_of_its_own() -> None:
    opened: list[int] = []

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        opened.append(i)
        if len(opened) == 1:  # the first stream never says anything

            async def silent() -> AsyncIterator[bytes]:
                await asyncio.sleep(30)
                yield b""

            response = httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=silent()
            )
        else:
            response = sse_response(sse(details("trn-1", "completed")))
        response.headers[_wire.EVENTS_REPLAY_HEADER] = _wire.EVENTS_REPLAY_TERMINAL
        return response

    render, _ = client(answer)
    with pytest.raises(TimeoutError):
        await render.workflows.wait_for_task_run("trn-1", timeout=0.2)
    # At once (awaited directly, so it registers before the abandoned stream winds down).
    details_ = await render.workflows.wait_for_task_run("trn-1", timeout=10)
    assert details_.id == "trn-1"
    assert len(opened) == 2

"""The synchronous twin against httpx.MockTransport, and method parity with the async client."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from _client_helpers import (
    BASE,
    Recorder,
    details,
    split_idempotency_key,
    sse,
    sse_response_sync,
    task_run,
)

from render_sdk import RenderSync, _wire
from render_sdk.client import (
    AwaitableTaskRun,
    ListTaskRunsParams,
    Render,
    TaskRunSync,
    WorkflowsService,
    WorkflowsServiceSync,
)
from render_sdk.client.errors import (
    ClientError,
    RateLimitError,
    ServerError,
    TaskRunError,
    TimeoutError,
    WireFormatError,
)

Answer = Callable[[httpx.Request, int], httpx.Response]


def client(answer: Answer, **kwargs: object) -> tuple[RenderSync, Recorder]:
    recorder = Recorder(answer)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return RenderSync(token="rnd_test", base_url=BASE, http_client=http, **kwargs), recorder  # type: ignore[arg-type]


def json_response(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_run_and_wait() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status="running"))
        if request.url.path.endswith("/events"):
            return sse_response_sync(b"retry: 10\n\n", sse(details("trn-1", "completed")))
        return json_response(200, details("trn-1", "running"))

    render, rec = client(answer)
    handle = render.workflows.run_task("wf/t", [5])
    assert isinstance(handle, TaskRunSync)
    assert (handle.id, handle.status) == ("trn-1", "running")
    assert handle.wait().results == [25]
    assert split_idempotency_key(rec.requests[0].content)[0] == b'{"task":"wf/t","input":[5]}'
    assert rec.requests[0].headers["Authorization"] == "Bearer rnd_test"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, ClientError), (403, ClientError), (404, ClientError), (429, RateLimitError)],
)
def test_errors_map(status: int, cls: type[Exception]) -> None:
    render, rec = client(
        lambda r, i: json_response(status, {"message": "no", "id": "e"}, **{"Retry-After": "0"}),
        max_retries=1,
    )
    with pytest.raises(cls) as info:
        render.workflows.get_task_run("trn-1")
    assert "no (ID: e)" in str(info.value)
    assert len(rec.requests) == (2 if status == 429 else 1)


def test_get_retries_then_succeeds_but_post_does_not() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if i == 0 or request.method == "POST":
            return json_response(502, {"message": "bad gateway"}, **{"Retry-After": "0"})
        return json_response(200, details())

    render, rec = client(answer)
    assert render.workflows.get_task_run("trn-1").id == "trn-1"
    with pytest.raises(ServerError):
        render.workflows.run_task("wf/t", [])
    assert rec.paths() == [
        "GET /v1/task-runs/trn-1",
        "GET /v1/task-runs/trn-1",
        "POST /v1/task-runs",
    ]


def test_non_json_error_and_malformed_success() -> None:
    render, _ = client(lambda r, i: httpx.Response(401, content=b"Unauthorized"))
    with pytest.raises(ClientError, match="non-JSON response: Unauthorized"):
        render.workflows.cancel_task_run("trn-1")
    render, _ = client(lambda r, i: httpx.Response(200, content=b"[not json"))
    with pytest.raises(WireFormatError):
        render.workflows.list_task_runs()


def test_list_shapes_and_iteration() -> None:
    pages = {
        None: [{"cursor": "a", "taskRun": task_run("trn-1")}],
        "a": [task_run("trn-2")],
        "trn-2": [],
    }
    render, rec = client(lambda r, i: json_response(200, pages[r.url.params.get("cursor")]))
    assert [r.id for r in render.workflows.iter_task_runs(ListTaskRunsParams(limit=1))] == [
        "trn-1",
        "trn-2",
    ]
    assert len(rec.requests) == 3


def test_events_split_utf8_multiline_and_reconnect() -> None:
    body = json.dumps(
        details("trn-1", "completed", results=["ünïcödé"]), indent=1, ensure_ascii=False
    )
    raw = sse(body, id="8")
    cut = raw.index("ü".encode()) + 1

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if not request.url.path.endswith("/events"):
            return json_response(200, details("trn-1", "running"))
        if "Last-Event-ID" not in request.headers:
            return sse_response_sync(
                b"retry: 10\n\n",
                sse(details("trn-1", "running"), event="task.running", id="7"),
                error=httpx.ReadError("connection reset"),
            )
        assert request.headers["Last-Event-ID"] == "7"
        return sse_response_sync(raw[:cut], raw[cut:])

    render, _rec = client(answer)
    events = list(render.workflows.task_run_events(["trn-1"]))
    assert [(e.status_text, e.results) for e in events] == [
        ("running", None),
        ("completed", ["ünïcödé"]),
    ]


def test_sse_error_status_reads_body() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        def stream() -> Iterator[bytes]:
            yield b'{"message": "bad token"}'

        return httpx.Response(403, content=stream())

    render, _ = client(answer)
    with pytest.raises(ClientError, match="bad token") as info:
        list(render.workflows.task_run_events(["trn-1"]))
    assert info.value.status_code == 403


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_wait_on_finished_failed_run_raises(status: str) -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status=status))
        return json_response(200, details("trn-1", status, error="boom"))

    render, _ = client(answer)
    handle = render.workflows.run_task("wf/t", [])
    with pytest.raises(TaskRunError) as info:
        handle.wait()
    assert (info.value.task_run_id, info.value.status) == ("trn-1", status)


def test_context_manager_closes_own_pool_only() -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: json_response(200, [])))
    with RenderSync(token="k", base_url=BASE, http_client=http) as render:
        render.workflows.list_task_runs()
    assert not http.is_closed
    http.close()
    own = RenderSync(token="k", base_url=BASE)
    pool = own._http.client()
    own.close()
    own.close()
    assert pool.is_closed


# --------------------------------------------------------------------------- parity


def _public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(member) or isinstance(member, property))
    }


def _params(fn: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"),
    [
        (Render, RenderSync),
        (WorkflowsService, WorkflowsServiceSync),
        (AwaitableTaskRun, TaskRunSync),
    ],
)
def test_method_parity(async_cls: type, sync_cls: type) -> None:
    renames = {"aclose": "close"}
    # render_sdk 0.4.0's ``Render.client`` (a ``Client``) existed only on its async client.
    v040_async_only = {"client"}
    no_io = {"is_terminal_status"}  # reads the creation snapshot; sync on both sides
    async_members = {
        renames.get(k, k): v
        for k, v in _public(async_cls).items()
        if not (async_cls is Render and k in v040_async_only)
    }
    sync_members = _public(sync_cls)
    assert sorted(async_members) == sorted(sync_members)
    for name, member in async_members.items():
        twin = sync_members[name]
        if isinstance(member, property):
            assert isinstance(twin, property), name
            continue
        assert _params(member) == _params(twin), name
        is_async = inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member)
        if name in no_io:
            assert not is_async, f"{async_cls.__name__}.{name} does no I/O and is sync in 0.4.0"
        else:
            assert is_async, f"{async_cls.__name__}.{name} should be async"
        assert not inspect.iscoroutinefunction(twin), name
        assert not inspect.isasyncgenfunction(twin), name
    assert _params(async_cls.__init__)[:-1] == _params(sync_cls.__init__)[:-1]


def test_async_context_manager_methods_have_sync_twins() -> None:
    assert hasattr(Render, "__aenter__")
    assert hasattr(Render, "__aexit__")
    assert hasattr(RenderSync, "__enter__")
    assert hasattr(RenderSync, "__exit__")
    assert hasattr(AwaitableTaskRun, "__await__")


def test_wait_timeout_despite_heartbeats() -> None:
    def pings() -> Iterator[bytes]:
        yield b"retry: 10\n\n"
        for _ in range(200):  # ~10 s of heartbeats, never an event
            time.sleep(0.05)
            yield b": ping\n\n"

    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=pings()
            )
        return json_response(200, details("trn-1", "running"))

    render, _ = client(answer)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="trn-1"):
        render.workflows.wait_for_task_run("trn-1", timeout=0.3)
    assert time.monotonic() - started < 5


def test_wait_reads_no_run_when_the_server_replays_terminal_states() -> None:
    def answer(request: httpx.Request, i: int) -> httpx.Response:
        if request.method == "POST":
            return json_response(202, task_run(status="running"))
        assert request.url.path.endswith("/events"), "no GET of the run after subscribing"
        response = sse_response_sync(sse(details("trn-1", "completed")))
        response.headers[_wire.EVENTS_REPLAY_HEADER] = _wire.EVENTS_REPLAY_TERMINAL
        return response

    render, rec = client(answer)
    assert render.workflows.run_task("wf/t", [5]).wait().results == [25]
    assert rec.paths() == ["POST /v1/task-runs", "GET /v1/task-runs/events"]

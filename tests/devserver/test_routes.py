"""The server's routes and the clients' requests come from the schema's services.

Every rpc of the REST services is a route of the local server's app (same method, same
path, same order), every route under the API's prefixes is an rpc, handlers are bound
by rpc name and a missing or extra handler is refused.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
from starlette.routing import Route

from render_sdk._gen import routes
from render_sdk._routing import bind, by_request_line, expand, query_keys, router_path
from render_sdk.client import _protocol as client_protocol
from render_sdk.devserver._api import create_app
from render_sdk.devserver._orchestrator import Orchestrator
from render_sdk.devserver._store import Store

REST_SERVICES = [
    routes.WORKFLOWS_SERVICE,
    routes.OBJECTS_SERVICE,
    routes.LOCAL_PRESIGNED_OBJECTS_SERVICE,
]
#: Routes of the app that are not (yet) rpcs of a schema service: the dashboard's
#: own page, assets and its two API routes (issue 9 leaves them to _dashboard.py).
NOT_RPCS = {
    "/",
    "/_dashboard/{name}",
    "/v1/dashboard/info",
    "/v1/dashboard/events",
    "/v1/dashboard/runs",
    "/v1/dashboard/logs",
    "/openapi.json",  # the document describing the rpcs, not one of them
}


def _app_routes(tmp_path: Path) -> list[Route]:
    # Closed here: a connection left to the garbage collector is a ResourceWarning on 3.13,
    # raised in whichever test happens to run the collection.
    with closing(Store(tmp_path / "db.sqlite3")) as store:
        orch = Orchestrator(
            store=store,
            launcher=object(),  # type: ignore[arg-type]  # never started: only routes are read
            socket_dir=tmp_path,  # no socket is made: the orchestrator never starts
            report=lambda line: None,
        )
        app = create_app(orch, state_dir=tmp_path, secret=b"k" * 32)
        return [r for r in app.routes if isinstance(r, Route)]


def test_every_rpc_is_a_route_and_every_route_an_rpc(tmp_path: Path) -> None:
    served = [(r.path, sorted(r.methods or ()), r.name) for r in _app_routes(tmp_path)]
    expected = [
        (
            router_path(route),
            sorted({route.method, "HEAD"} if route.method == "GET" else {route.method}),
            name,
        )
        for service in REST_SERVICES
        for name, route in service.items()
    ]
    api = [entry for entry in served if entry[0] not in NOT_RPCS]
    assert sorted(api) == sorted(expected)
    # Starlette matches in list order: the declaration order of each service is kept
    # (StreamTaskRunEvents before GetTaskRun, whose {task_run_id} would swallow "events").
    names = [name for _, _, name in api]
    for service in REST_SERVICES:
        assert [n for n in names if n in service] == list(service)


def test_bind_refuses_missing_and_extra_handlers() -> None:
    handlers = dict.fromkeys(routes.TASK_SOCKET_SERVICE, "h")
    assert [r.name for r, _ in bind(routes.TASK_SOCKET_SERVICE, handlers)] == list(
        routes.TASK_SOCKET_SERVICE
    )
    del handlers["Callback"]
    with pytest.raises(LookupError, match="Callback"):
        bind(routes.TASK_SOCKET_SERVICE, handlers)
    with pytest.raises(LookupError, match="Nope"):
        bind(
            routes.TASK_SOCKET_SERVICE,
            {**dict.fromkeys(routes.TASK_SOCKET_SERVICE, "h"), "Nope": "h"},
        )


def test_expand_fills_and_checks_path_fields() -> None:
    get_task = routes.WORKFLOWS_SERVICE["GetTask"]
    assert expand(get_task, task_id="wf/add square") == "/tasks/wf/add%20square"
    run = routes.WORKFLOWS_SERVICE["GetTaskRun"]
    assert expand(run, task_run_id="trn-1?x") == "/task-runs/trn-1%3Fx"
    for bad in ("", "a/b"):
        with pytest.raises(ValueError, match="task run id"):
            expand(run, task_run_id=bad)
    with pytest.raises(ValueError, match="task run id"):
        expand(run)
    assert router_path(get_task) == "/v1/tasks/{task_id:path}"


def test_the_task_socket_routes_are_fixed_paths() -> None:
    table = by_request_line(routes.TASK_SOCKET_SERVICE)
    assert table[("GET", "/input")].name == "GetInput"
    assert table[("POST", "/callback")].request == "render.tasksocket.v1.CallbackRequest"
    with pytest.raises(ValueError, match="path fields"):
        by_request_line(routes.WORKFLOWS_SERVICE)


def test_client_requests_follow_the_routes() -> None:
    assert client_protocol.request_line(client_protocol.RUN_TASK) == ("POST", "/task-runs")
    assert client_protocol.request_line(client_protocol.CANCEL_TASK_RUN, task_run_id="trn-1") == (
        "DELETE",
        "/task-runs/trn-1",
    )
    assert client_protocol.RUN_TASK.success_status == 202
    assert client_protocol.TASK_RUN_EVENTS.server_sent_events
    # Query keys are the request fields' REST wire keys.
    assert routes.WORKFLOWS_SERVICE["ListTaskRuns"].query_keys[:3] == ("limit", "cursor", "ownerId")


def test_query_keys_come_from_the_wire_tables() -> None:
    keys = query_keys(routes.WORKFLOWS_SERVICE["ListLogs"])
    assert keys["task_run"][0] == "taskRun"  # what clients send
    assert {"taskRunID", "taskRunId", "task_run"} <= set(keys["task_run"])  # accepted too
    assert keys["start_time"][0] == "startTime"
    assert list(keys) == list(routes.WORKFLOWS_SERVICE["ListLogs"].query)


def test_local_run_filters_are_query_fields_of_the_schema() -> None:
    # The dashboard's status and rootsOnly filters are fields of ListTaskRunsRequest
    # (read through the route table like Render's own), omitted from the wire when empty.
    from render_sdk import _wire
    from render_sdk.models import ListTaskRunsRequest

    keys = query_keys(routes.WORKFLOWS_SERVICE["ListTaskRuns"])
    assert keys["status"][0] == "status"
    assert keys["roots_only"][0] == "rootsOnly"
    empty = json.loads(_wire.dumps(ListTaskRunsRequest(), _wire.REST))
    assert "status" not in empty
    assert "rootsOnly" not in empty
    assert bytes(ListTaskRunsRequest()) == b""
    both = ListTaskRunsRequest(status=["running", "failed"], roots_only=True)
    assert _wire.loads(ListTaskRunsRequest, _wire.dumps(both, _wire.REST), _wire.REST) == both


def test_object_keys_expand_as_one_segment() -> None:
    from render_sdk._routing import expand_segments

    get = routes.OBJECTS_SERVICE["GetObject"]
    values = {"owner_id": "tea-1", "region": "oregon", "key": "a/b c"}
    assert expand(get, **values) == "/objects/tea-1/oregon/a/b%20c"  # the template's reading
    assert expand_segments(get, **values) == "/objects/tea-1/oregon/a%2Fb%20c"  # what we send
    assert expand_segments(get, **{**values, "key": ".."}) == "/objects/tea-1/oregon/%2E%2E"
    with pytest.raises(ValueError, match="not a valid owner id"):
        expand_segments(get, **{**values, "owner_id": ""})

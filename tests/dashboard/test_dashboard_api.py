"""The dashboard's API routes and run filters over real HTTP, on a real server and app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard_support import WAIT_S, frames, start, wait_status

from render_sdk.testing import LocalServer


@pytest.fixture
def client(server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=WAIT_S) as c:
        yield c


def test_info_describes_every_parameter(client: httpx.Client) -> None:
    tasks = {t["name"]: t for t in client.get("/v1/dashboard/info").json()["tasks"]}
    assert tasks["square"]["parameters"] == [
        {
            "name": "a",
            "type": "int",
            "hasDefault": False,
            "default": None,
            "kind": "positional_or_keyword",
        }
    ]
    greet = tasks["greet"]["parameters"]
    assert [(p["name"], p["type"], p["hasDefault"], p["default"], p["kind"]) for p in greet] == [
        ("name", "str", False, None, "positional_or_keyword"),
        ("punctuation", "str", True, '"!"', "positional_or_keyword"),
        ("rest", "str", False, None, "var_positional"),
        ("times", "int", True, "1", "keyword_only"),
        ("extra", "object", False, None, "var_keyword"),
    ]
    assert tasks["greet"]["retry"]["maxRetries"] == 0
    assert "plan" in tasks["greet"]


def test_runs_filters_are_applied_by_the_server_and_page_correctly(
    client: httpx.Client,
) -> None:
    roots = [start(client, "add_squares", [i, 1]) for i in range(3)]
    failed = start(client, "always_fails", [1])
    for run_id in roots:
        wait_status(client, run_id, "completed")
    wait_status(client, failed, "failed")

    only_roots = client.get("/v1/task-runs", params={"rootsOnly": "true", "limit": 100}).json()
    assert only_roots
    assert all(r["parentTaskRunId"] == "" for r in only_roots)
    assert set(roots) <= {r["id"] for r in only_roots}

    failures = client.get("/v1/task-runs", params={"status": "failed"}).json()
    assert failed in {r["id"] for r in failures}
    assert {r["status"] for r in failures} == {"failed"}

    # Paging one run at a time under the filters visits exactly the filtered set.
    seen: list[str] = []
    query: dict[str, Any] = {
        "taskSlug": "square",
        "status": "completed",
        "rootsOnly": "false",
        "limit": 1,
    }
    page = client.get("/v1/dashboard/runs", params=query).json()
    while True:
        assert len(page["runs"]) <= 1
        seen += [r["id"] for r in page["runs"]]
        if page["nextCursor"] is None:
            break
        page = client.get("/v1/dashboard/runs", params={**query, "cursor": page["nextCursor"]})
        page = page.json()
    every = client.get("/v1/task-runs", params={"taskSlug": "square", "limit": 100}).json()
    assert seen == [r["id"] for r in every if r["status"] == "completed"]
    assert len(seen) >= 6  # two square subtasks per add_squares run

    squares = client.get("/v1/dashboard/runs", params={"taskSlug": "square", "rootsOnly": "1"})
    assert squares.json()["runs"] == []  # every square here ran as a subtask
    assert isinstance(squares.json()["eventId"], int)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "done"}, "unknown run status 'done'"),
        ({"rootsOnly": "maybe"}, "rootsOnly must be true or false"),
        ({"cursor": "nope"}, "cursor"),
    ],
)
def test_bad_filters_get_a_clear_400(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    for path in ("/v1/task-runs", "/v1/dashboard/runs"):
        resp = client.get(path, params=params)
        assert resp.status_code == 400
        assert message in resp.json()["message"]


def test_logs_stream_live_and_resume_without_repeats(client: httpx.Client) -> None:
    run_id = start(client, "sleepy", [5])
    got: list[str] = []
    with client.stream("GET", "/v1/dashboard/logs", params={"taskRunId": run_id}) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        while "tick 1\n" not in got:
            (frame,) = frames(lines, 1)
            assert frame["event"] == "logs"
            got += [line["message"] for line in json.loads(frame["data"])]
        last_id = frame["id"]
        # Seen while the task was still printing: the lines came as they were written.
        assert client.get(f"/v1/task-runs/{run_id}").json()["status"] == "running"
    wait_status(client, run_id, "completed")
    rest: list[str] = []
    with client.stream(
        "GET",
        "/v1/dashboard/logs",
        params={"taskRunId": run_id},
        headers={"Last-Event-ID": last_id},
    ) as resp:
        lines = resp.iter_lines()
        while "tick 49\n" not in rest:
            (frame,) = frames(lines, 1)
            rest += [line["message"] for line in json.loads(frame["data"])]
    assert got + rest == [f"tick {i}\n" for i in range(50)]


def test_logs_stream_of_an_unknown_run_is_a_404(client: httpx.Client) -> None:
    assert client.get("/v1/dashboard/logs", params={"taskRunId": "trn-nope"}).status_code == 404
    assert client.get("/v1/dashboard/logs").status_code == 400


def test_runs_search_by_id_finds_that_run_or_none(client: httpx.Client) -> None:
    run_id = start(client, "square", [2])
    found = client.get("/v1/dashboard/runs", params={"runId": run_id}).json()
    assert [r["id"] for r in found["runs"]] == [run_id]
    none = client.get("/v1/dashboard/runs", params={"runId": "trn-none"})
    assert none.status_code == 200
    assert none.json()["runs"] == []

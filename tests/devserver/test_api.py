"""End to end: the REST API of a real server running real task processes (our runner)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal

from render_sdk._wire import parse_timestamp
from render_sdk.testing import LocalServer


def test_startup_lists_tasks_and_url(server: LocalServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    out = "\n".join(server.output)
    assert "task(s) found in tasks:app" in out
    assert "  - square" in out
    assert f"Listening on {server.url}" in out


def test_list_and_get_tasks(client: httpx.Client) -> None:
    items = client.get("/v1/tasks").json()
    names = {i["task"]["name"] for i in items}
    assert {"square", "fan", "flaky", "sleepy"} <= names
    for item in items:
        assert item["cursor"] == item["task"]["id"]
        assert item["task"]["id"].startswith("tsk-")
        assert item["task"]["createdAt"].endswith("Z")
    square = next(i["task"] for i in items if i["task"]["name"] == "square")
    for key in ("square", "wf/square", "wf/square:v2", square["id"]):
        r = client.get(f"/v1/tasks/{key}")
        assert r.status_code == 200, key
        assert r.json() == square
    r = client.get("/v1/tasks/nope")
    assert r.status_code == 404
    assert r.json() == {"message": "task not found: nope"}
    filtered = client.get("/v1/tasks", params={"taskSlug": "wf/square"}).json()
    assert [i["task"]["name"] for i in filtered] == ["square"]


def test_run_to_completion_with_every_field(client: httpx.Client) -> None:
    r = client.post("/v1/task-runs", json={"task": "my-workflow/square:v1", "input": [7]})
    assert r.status_code == 202
    created = r.json()
    for key in ("id", "taskId", "status", "parentTaskRunId", "rootTaskRunId", "retries"):
        assert key in created
    assert created["attempts"] == [] or created["attempts"][0]["attempt"] == 0
    assert created["rootTaskRunId"] == created["id"]
    assert created["parentTaskRunId"] == ""
    done = wait_terminal(client, created["id"])
    assert done["status"] == "completed"
    assert done["results"] == [49]
    assert done["input"] == [7]
    assert done["retries"] == 0
    assert done["startedAt"] <= done["completedAt"]
    assert "error" not in done
    (attempt,) = done["attempts"]
    assert attempt["attempt"] == 0
    assert attempt["status"] == "completed"
    assert attempt["results"] == [49]
    assert attempt["startedAt"]
    assert attempt["completedAt"]


def test_keyword_input_and_list_results(client: httpx.Client) -> None:
    assert wait_terminal(client, start_run(client, "add", {"a": 40}))["results"] == [42]
    assert wait_terminal(client, start_run(client, "as_list", [3]))["results"] == [0, 1, 2]


def test_subtasks_carry_parent_and_root(client: httpx.Client) -> None:
    run_id = start_run(client, "chain", [2])
    done = wait_terminal(client, run_id)
    assert done["results"] == [16]
    children = client.get("/v1/task-runs", params={"rootTaskRunId": run_id}).json()
    runs = [c["taskRun"] for c in children]
    assert len(runs) == 3
    subs = [r for r in runs if r["id"] != run_id]
    assert len(subs) == 2
    for sub in subs:
        assert sub["parentTaskRunId"] == run_id
        assert sub["rootTaskRunId"] == run_id
        assert sub["status"] == "completed"
        assert sub["parentTaskAttempt"] == 0


def test_fan_out(client: httpx.Client) -> None:
    run_id = start_run(client, "fan", [10])
    assert wait_terminal(client, run_id)["results"] == [285]
    subs = client.get("/v1/task-runs", params={"rootTaskRunId": run_id, "limit": 100}).json()
    assert len(subs) == 11


def test_retries_same_run_every_attempt_recorded(client: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "flaky.count"
    run_id = start_run(client, "flaky", [str(marker)])
    done = wait_terminal(client, run_id)
    assert done["status"] == "completed"
    assert done["results"] == ["ok"]
    assert done["retries"] == 2
    attempts = done["attempts"]
    assert [a["attempt"] for a in attempts] == [0, 1, 2]
    assert [a["status"] for a in attempts] == ["failed", "failed", "completed"]
    assert "attempt 0 failed" in attempts[0]["error"]
    assert "attempt 1 failed" in attempts[1]["error"]
    # Waits of 200 ms then 400 ms (wait_duration_ms * factor ** n) separate the attempts.
    t = [(parse_timestamp(a["startedAt"]), parse_timestamp(a["completedAt"])) for a in attempts]
    assert (t[1][0] - t[0][1]).total_seconds() >= 0.2
    assert (t[2][0] - t[1][1]).total_seconds() >= 0.4
    assert marker.read_text() == "3"


def test_final_failure_is_terminal_once(client: httpx.Client) -> None:
    run_id = start_run(client, "always_fails", [])
    done = wait_terminal(client, run_id)
    assert done["status"] == "failed"
    assert "nope" in done["error"]
    assert done["retries"] == 1
    assert [a["status"] for a in done["attempts"]] == ["failed", "failed"]
    assert done["results"] is None


def test_process_exit_without_callback_fails_and_retries(client: httpx.Client) -> None:
    done = wait_terminal(client, start_run(client, "crash", []))
    assert done["status"] == "failed"
    assert "exited before completing the task: exit status 7" in done["error"]
    assert len(done["attempts"]) == 2


def test_timeout_kills_the_attempt(client: httpx.Client) -> None:
    t0 = time.monotonic()
    done = wait_terminal(client, start_run(client, "too_slow", []))
    assert done["status"] == "failed"
    assert "timed out after 1 seconds" in done["error"]
    assert time.monotonic() - t0 < 20


def test_cancel_running_run_and_cascade(client: httpx.Client) -> None:
    run_id = start_run(client, "parent_of_sleepers", [2])
    deadline = time.monotonic() + 30
    while True:
        subs = client.get("/v1/task-runs", params={"rootTaskRunId": run_id}).json()
        running = [s for s in subs if s["taskRun"]["status"] == "running"]
        if len(running) == 3:
            break
        assert time.monotonic() < deadline, subs
        time.sleep(0.05)
    r = client.delete(f"/v1/task-runs/{run_id}")
    assert r.status_code == 204
    for s in subs:
        assert wait_terminal(client, s["taskRun"]["id"], 10)["status"] == "canceled"
    again = client.delete(f"/v1/task-runs/{run_id}")
    assert again.status_code == 409
    assert "already canceled" in again.json()["message"]


def test_cancel_cascades_to_child_waiting_for_retry(client: httpx.Client) -> None:
    run_id = start_run(client, "parent_of_pending", [])
    deadline = time.monotonic() + 30
    child = None
    while child is None:
        subs = client.get("/v1/task-runs", params={"rootTaskRunId": run_id}).json()
        pending = [
            s["taskRun"]
            for s in subs
            if s["taskRun"]["id"] != run_id
            and s["taskRun"]["status"] == "pending"
            and s["taskRun"]["attempts"]
        ]
        child = pending[0] if pending else None
        assert time.monotonic() < deadline, subs
        time.sleep(0.05)
    assert client.delete(f"/v1/task-runs/{run_id}").status_code == 204
    assert wait_terminal(client, child["id"], 10)["status"] == "canceled"
    assert wait_terminal(client, run_id, 10)["status"] == "canceled"


def test_cancel_finished_and_unknown(client: httpx.Client) -> None:
    run_id = start_run(client, "square", [1])
    wait_terminal(client, run_id)
    r = client.delete(f"/v1/task-runs/{run_id}")
    assert r.status_code == 409
    assert "completed" in r.json()["message"]
    r = client.delete("/v1/task-runs/trn-unknown")
    assert r.status_code == 404
    assert r.json() == {"message": "task run not found: trn-unknown"}


def test_get_unknown_run_is_404(client: httpx.Client) -> None:
    r = client.get("/v1/task-runs/trn-doesnotexist")
    assert r.status_code == 404
    assert r.json() == {"message": "task run not found: trn-doesnotexist"}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1,2]", 400, "JSON object"),
        (b'{"task": 5, "input": []}', 400, "task"),
        (b'{"input": []}', 400, "`task` is required"),
        (b'{"task": "square", "input": 5}', 400, "JSON array"),
        (b'{"task": "nope", "input": []}', 404, "task not found: nope"),
    ],
)
def test_bad_create_requests(client: httpx.Client, body: bytes, status: int, fragment: str) -> None:
    r = client.post("/v1/task-runs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert fragment in r.json()["message"]


def test_oversized_body_is_413(client: httpx.Client) -> None:
    big = b'{"task": "square", "input": ["' + b"x" * (10 * 1024 * 1024) + b'"]}'
    r = client.post("/v1/task-runs", content=big)
    assert r.status_code == 413
    assert "limit" in r.json()["message"]
    assert client.get("/v1/tasks").status_code == 200


def test_list_runs_pagination_and_filters(client: httpx.Client) -> None:
    ids = [start_run(client, "add", [i, 0]) for i in range(5)]
    for run_id in ids:
        wait_terminal(client, run_id)
    page1 = client.get("/v1/task-runs", params={"taskSlug": "wf/add", "limit": 2}).json()
    assert [p["taskRun"]["id"] for p in page1] == ids[::-1][:2]
    page2 = client.get(
        "/v1/task-runs", params={"taskSlug": "add", "limit": 2, "cursor": page1[-1]["cursor"]}
    ).json()
    assert [p["taskRun"]["id"] for p in page2] == ids[::-1][2:4]
    assert all(p["taskRun"]["taskId"] == page1[0]["taskRun"]["taskId"] for p in page2)
    none = client.get("/v1/task-runs", params={"taskSlug": "nope"}).json()
    assert none == []
    r = client.get("/v1/task-runs", params={"cursor": "garbage"})
    assert r.status_code == 400
    assert "invalid cursor" in r.json()["message"]
    assert client.get("/v1/task-runs", params={"limit": "0"}).status_code == 400
    assert client.get("/v1/task-runs", params={"limit": "x"}).status_code == 400


def test_logs_per_run_with_filters(client: httpx.Client) -> None:
    a = start_run(client, "square", [11])
    b = start_run(client, "square", [12])
    wait_terminal(client, a)
    wait_terminal(client, b)
    time.sleep(0.2)  # log batches are committed every 50 ms
    logs = client.get("/v1/logs", params={"taskRun": a}).json()
    assert set(logs) == {"logs", "hasMore"} | ({"nextStartTime", "nextEndTime"} & set(logs))
    messages = [log["message"] for log in logs["logs"]]
    assert "squaring 11\n" in messages
    assert "warning 11\n" in messages
    assert not any("12" in m for m in messages)
    both = client.get("/v1/logs", params={"taskRunID": f"{a},{b}", "text": "squaring"}).json()
    assert sorted(log["message"] for log in both["logs"]) == ["squaring 11\n", "squaring 12\n"]
    labels = {lbl["name"]: lbl["value"] for lbl in both["logs"][0]["labels"]}
    assert labels["taskRun"] in (a, b)
    page = client.get("/v1/logs", params={"taskRun": [a, b], "limit": 1}).json()
    assert page["hasMore"] is True
    rest = client.get(
        "/v1/logs", params={"taskRun": [a, b], "startTime": page["nextStartTime"]}
    ).json()
    assert len(rest["logs"]) == 3
    future = client.get("/v1/logs", params={"taskRun": a, "startTime": "2999-01-01T00:00:00Z"})
    assert future.json()["logs"] == []
    bad = client.get("/v1/logs", params={"startTime": "yesterday"})
    assert bad.status_code == 400


def test_unknown_route_is_json_404(client: httpx.Client) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404
    assert "message" in r.json()


#: A printed duration (``7ms``, ``1.23s``, ``1m2.00s``).
DURATION = r"(\d+ms|\d+\.\d\ds|\d+m\d+\.\d\ds)"


def _lines_of(server: LocalServer, run_id: str) -> list[str]:
    return [line for line in server.output if f" {run_id} " in line]


def test_status_lines(server: LocalServer, client: httpx.Client) -> None:
    # One format for every transition: "Task <wire status>: <id> (<task>) key=value ...".
    run_id = start_run(client, "chain", [1])
    wait_terminal(client, run_id)
    server.wait_for_output(rf"^Task completed: {run_id} ")
    lines = _lines_of(server, run_id)
    assert lines[0] == f"Task pending: {run_id} (chain) input=[1]"
    assert lines[1] == f"Task running: {run_id} (chain) input=[1]"
    assert re.fullmatch(
        rf"Task completed: {run_id} \(chain\) input=\[1\] output=\[1\] duration={DURATION}",
        lines[-1],
    ), lines[-1]
    subs = [line for line in server.output if "Subtask (parent: chain)" in line]
    assert any(
        re.fullmatch(
            rf"  Task completed: trn-\w+ \(square\) \u21b3 Subtask \(parent: chain\) "
            rf"input=\[1\] output=\[1\] duration={DURATION}",
            line,
        )
        for line in subs
    ), subs


def test_failed_and_canceled_status_lines(server: LocalServer, client: httpx.Client) -> None:
    run_id = start_run(client, "always_fails", [])
    wait_terminal(client, run_id)
    line = server.wait_for_output(rf"^Task failed: {run_id} ")
    assert re.fullmatch(
        rf"Task failed: {run_id} \(always_fails\) input=\[\] attempt=2 duration={DURATION} "
        r"error=ValueError: nope",
        line,
    ), line
    sleeper = start_run(client, "sleepy", [30])
    wait_status(client, sleeper, "running")
    client.delete(f"/v1/task-runs/{sleeper}")
    line = server.wait_for_output(rf"^Task canceled: {sleeper} ")
    assert re.fullmatch(
        rf"Task canceled: {sleeper} \(sleepy\) input=\[30\] duration={DURATION}", line
    ), line
    # No other spelling of a status is printed anywhere.
    for old in ("Completed", "Failed", "Cancelled", "enqueued", "attempt failed", "retry in"):
        assert not any(old in printed for printed in server.output), old


def test_retry_status_lines(server: LocalServer, client: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "flaky-count"
    run_id = start_run(client, "flaky", [str(marker)])
    assert wait_terminal(client, run_id)["status"] == "completed"
    server.wait_for_output(rf"^Task completed: {run_id} ")
    lines = _lines_of(server, run_id)
    inp = re.escape(json.dumps([str(marker)], separators=(",", ":")))
    retry = [line for line in lines if "retry_in=" in line]
    assert len(retry) == 2, lines
    for attempt, (line, wait) in enumerate(zip(retry, ("200ms", "400ms"), strict=True), 1):
        assert re.fullmatch(
            rf"Task pending: {run_id} \(flaky\) input={inp} attempt={attempt} "
            rf"retry_in={wait} duration={DURATION} error=\S.*",
            line,
        ), line
    assert re.fullmatch(rf"Task running: {run_id} \(flaky\) input={inp} attempt=3", lines[-2])
    assert re.fullmatch(
        rf"Task completed: {run_id} \(flaky\) input={inp} attempt=3 output=\S+ "
        rf"duration={DURATION}",
        lines[-1],
    ), lines[-1]


def test_input_json_preserved(client: httpx.Client) -> None:
    run_id = start_run(client, "add", {"a": 1, "b": 2})
    assert json.dumps(wait_terminal(client, run_id)["input"]) == '{"a": 1, "b": 2}'


def test_localhost_reaches_the_server(server: LocalServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    for host in ("localhost", "[::1]"):
        r = httpx.get(f"http://{host}:{port}/v1/tasks", timeout=10)
        assert r.status_code == 200, host


def test_null_input_means_no_arguments(client: httpx.Client) -> None:
    r = client.post("/v1/task-runs", json={"task": "as_list", "input": None})
    assert r.status_code == 202
    done = wait_terminal(client, r.json()["id"])
    assert done["input"] == []
    assert done["status"] == "failed"  # as_list needs its argument
    assert "missing 1 required positional argument" in done["error"]


def test_events_for_unknown_runs_is_404(client: httpx.Client) -> None:
    r = client.get("/v1/task-runs/events", params={"taskRunIds": "trn-nope"})
    assert r.status_code == 404
    assert r.json() == {"message": "task run not found: trn-nope"}


def test_run_task_idempotency_key_returns_the_first_run(client: httpx.Client) -> None:
    body = {"task": "square", "input": [6], "idempotencyKey": "0b8c7f3e-key-test"}
    first = client.post("/v1/task-runs", json=body)
    again = client.post("/v1/task-runs", json=body)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    other = client.post("/v1/task-runs", json={**body, "idempotencyKey": "another-key"})
    assert other.json()["id"] != first.json()["id"]
    assert wait_terminal(client, first.json()["id"])["results"] == [36]
    bad = client.post("/v1/task-runs", json={**body, "idempotencyKey": 5})
    assert bad.status_code == 400
    assert "idempotencyKey" in bad.json()["message"]


def test_method_not_allowed_names_every_allowed_method(client: httpx.Client) -> None:
    # RFC 9110 §15.5.6: a 405 carries Allow, listing the methods of every route on the path.
    r = client.request("PATCH", "/v1/task-runs")
    assert r.status_code == 405
    assert r.json() == {"message": "method PATCH not allowed on /v1/task-runs"}
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = client.request("TRACE", "/v1/objects/tea-x/oregon/some/key")
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET, HEAD, PUT"

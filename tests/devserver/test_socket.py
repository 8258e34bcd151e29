"""End to end: the task socket, probed by a hand-written runner process (raw.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal

from render_sdk.devserver._orchestrator import Orchestrator, _Attempt
from render_sdk.devserver._store import Store
from render_sdk.testing import LocalServer


@pytest.fixture(scope="module")
def probe(raw_server: LocalServer) -> dict[str, Any]:
    """What raw.py's probe task observed on its socket."""
    with httpx.Client(base_url=raw_server.url, timeout=30) as c:
        foreign = start_run(c, "child", ["other root"])
        wait_terminal(c, foreign)
        run_id = start_run(c, "probe", [foreign])
        done = wait_terminal(c, run_id, 60)
        assert done["status"] == "completed", done
        result: dict[str, Any] = done["results"][0]
        result["run_id"] = run_id
        return result


def test_caller_errors_are_4xx_with_message(probe: dict[str, Any]) -> None:
    assert probe["malformed"][0] == 400
    assert "invalid run-subtask body" in probe["malformed"][1]
    assert probe["wrong_type"][0] == 400
    assert probe["unknown_name"] == [404, 'subtask "nope" not found']
    assert probe["no_name"] == [400, "task_name is required"]
    assert probe["bad_input"][0] == 400
    assert probe["unknown_result"] == [404, "subtask run not found: trn-nope"]
    assert probe["register_in_run"][0] == 409
    assert probe["bad_route"][0] == 404


def test_a_socket_only_serves_its_own_runs_children(probe: dict[str, Any]) -> None:
    assert probe["foreign_result"][0] == 404


def test_missing_input_is_an_empty_list_and_long_poll_answers_on_completion(
    probe: dict[str, Any],
) -> None:
    result = probe["missing_input_result"]
    assert result["still_running"] is False
    assert result["complete"]["output"]  # base64 of [[]]
    import base64
    import json

    assert json.loads(base64.b64decode(result["complete"]["output"])) == [[]]
    # Answered when the child finished, well before the 8 s wait_ms.
    assert probe["long_poll_s"] < 7


def test_idempotent_run_subtask(probe: dict[str, Any], raw_client: httpx.Client) -> None:
    assert probe["dedup_same"] is True
    assert probe["dedup_other_time"] is True
    runs = raw_client.get(
        "/v1/task-runs", params={"rootTaskRunId": probe["run_id"], "limit": 100}
    ).json()
    # probe + missing-input child + two distinct idempotent children.
    assert len(runs) == 4


async def test_second_callback_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    orch = Orchestrator(
        store=store,
        launcher=None,  # type: ignore[arg-type]  # never launches in this test
        socket_dir=tmp_path,
        report=lambda line: None,
    )
    run = store.create_run(run_id="trn-a", task_name="t", input_json=b"[]")
    store.start_attempt(run)
    att = _Attempt(run=run, number=0, callback=asyncio.get_running_loop().create_future())
    ok = b'{"complete": {"output": "WzFd"}}'
    assert orch._on_callback(att, b"{")[0] == 400
    assert orch._on_callback(att, ok) == (200, b"")
    status, body = orch._on_callback(att, ok)
    assert status == 409
    assert b"already sent its callback" in body
    store.close()


def test_callback_with_neither_fails_the_run(raw_client: httpx.Client) -> None:
    done = wait_terminal(raw_client, start_run(raw_client, "neither", []))
    assert done["status"] == "failed"
    assert "neither" in done["error"]


def test_exit_without_callback_fails_the_run(raw_client: httpx.Client) -> None:
    done = wait_terminal(raw_client, start_run(raw_client, "exits", []))
    assert done["status"] == "failed"
    assert done["error"] == "start command exited before completing the task: exit status 3"


def test_canceled_child_answers_error_canceled(raw_client: httpx.Client) -> None:
    parent = start_run(raw_client, "parent_cancel", [])
    deadline = time.monotonic() + 30
    while True:
        runs = raw_client.get("/v1/task-runs", params={"rootTaskRunId": parent}).json()
        children = [r["taskRun"] for r in runs if r["taskRun"]["id"] != parent]
        if children and children[0]["status"] == "running":
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.05)
    assert raw_client.delete(f"/v1/task-runs/{children[0]['id']}").status_code == 204
    done = wait_terminal(raw_client, parent)
    assert done["status"] == "completed"
    assert done["results"] == [{"still_running": False, "error": {"details": "canceled"}}]


def test_hung_runner_is_canceled(raw_client: httpx.Client) -> None:
    run_id = start_run(raw_client, "hang", [])
    wait_status(raw_client, run_id, "running")
    assert raw_client.delete(f"/v1/task-runs/{run_id}").status_code == 204
    done = wait_terminal(raw_client, run_id)
    assert done["status"] == "canceled"
    assert done["attempts"][0]["status"] == "canceled"

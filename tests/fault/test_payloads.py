"""Payloads at and just over the documented limits: at the limit succeeds, one byte over
fails fast with a message naming the limit, and nothing is left stuck.

The limits (``render_sdk/_constants.py``, ``render_sdk/devserver/_constants.py``): a run's
encoded input (``MAX_INPUT_BYTES``; checked by the server on ``POST /v1/task-runs`` and by
the task runner before a subtask call), its encoded result (``MAX_RESULT_BYTES``; checked by
the runner before its callback), and a REST request body (``MAX_BODY_BYTES``; checked by the
server before the body is decoded, from Content-Length or as a chunked body streams).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fault_support import MakeServer, Record, all_runs, assert_settled, settle, statuses, submit

from render_sdk._constants import MAX_INPUT_BYTES, MAX_RESULT_BYTES
from render_sdk.devserver._constants import MAX_BODY_BYTES

pytestmark = [pytest.mark.fault]

#: `["` and `"]` around a string: the encoded input's or result's overhead.
OVERHEAD = 4
#: An over-limit run must be failed within this (the defect it guards against kept the run
#: "running" for ~10 minutes of callback retries); generous for a loaded machine.
FAIL_FAST_S = 60.0
JSON = {"content-type": "application/json"}


def _names_limit(message: str, size: int, limit: int) -> None:
    assert f"{size} bytes" in message, message
    assert f"limit of {limit} bytes" in message, message


def _chunked(body: bytes) -> Iterator[bytes]:
    """The body in 1 MiB pieces: sent chunked, with no Content-Length to check up front."""
    for i in range(0, len(body), 1 << 20):
        yield body[i : i + (1 << 20)]


def _timed_run(c: httpx.Client, task: str, input: list[Any]) -> tuple[dict[str, Any], float]:
    """Start a run and wait for its end; its details and the seconds that took."""
    started = time.monotonic()
    run_id = submit(c, task, input)
    run: dict[str, Any] = settle(c, [run_id], FAIL_FAST_S)["runs"][run_id]
    return run, time.monotonic() - started


@pytest.mark.timeout(180)
def test_payloads_at_and_over_the_limits(fault_server: MakeServer, figures: Record) -> None:
    fig = figures("payloads at and over the limits")
    server = fault_server()
    with httpx.Client(base_url=server.url, timeout=120) as c:
        over_result, result_fail_s = _timed_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD + 1])
        at_result, _ = _timed_run(c, "big", [MAX_RESULT_BYTES - OVERHEAD])
        over_sub, sub_fail_s = _timed_run(c, "send_big", [MAX_INPUT_BYTES - OVERHEAD + 1])
        at_sub, _ = _timed_run(c, "send_big", [MAX_INPUT_BYTES - OVERHEAD])
        at_input, _ = _timed_run(c, "size", ["y" * (MAX_INPUT_BYTES - OVERHEAD)])
        before = len(all_runs(c))
        over_input = c.post(
            "/v1/task-runs", json={"task": "size", "input": ["y" * (MAX_INPUT_BYTES - 3)]}
        )
        body = json.dumps({"task": "size", "input": ["y" * MAX_BODY_BYTES]}).encode()
        over_body = [
            c.post("/v1/task-runs", content=body, headers=JSON),
            c.post("/v1/task-runs", content=_chunked(body), headers=JSON),
        ]
        listed = all_runs(c)
        everything = settle(c, [run["id"] for run in listed], 30)

    fig.account(everything)
    fig.extra = {
        "over-limit result failed in s": round(result_fail_s, 1),
        "over-limit subtask input failed in s": round(sub_fail_s, 1),
        "over-limit input": over_input.status_code,
        "over-limit body (sized/chunked)": "/".join(str(r.status_code) for r in over_body),
        "statuses": statuses(everything["runs"].values()),
    }
    # The result: one byte over fails its only attempt at once, naming size and limit.
    assert over_result["status"] == "failed", over_result
    assert result_fail_s < FAIL_FAST_S
    _names_limit(over_result["error"], MAX_RESULT_BYTES + 1, MAX_RESULT_BYTES)
    assert len(over_result["attempts"]) == 1, "a permanent error is not retried"
    assert over_result["results"] in (None, []), "no partial result"
    assert at_result["status"] == "completed", at_result["error"]
    assert [len(r) for r in at_result["results"]] == [MAX_RESULT_BYTES - OVERHEAD]
    # A subtask's input: one byte over fails the calling task, and starts no child.
    assert over_sub["status"] == "failed", over_sub
    assert sub_fail_s < FAIL_FAST_S
    _names_limit(over_sub["error"], MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES)
    assert (at_sub["status"], at_sub["results"]) == ("completed", [MAX_INPUT_BYTES - OVERHEAD])
    # A run's input through the REST API, and the REST body cap above it.
    assert (at_input["status"], at_input["results"]) == ("completed", [MAX_INPUT_BYTES - OVERHEAD])
    assert over_input.status_code == 413, over_input.text
    _names_limit(over_input.json()["message"], MAX_INPUT_BYTES + 1, MAX_INPUT_BYTES)
    for response in over_body:
        assert response.status_code == 413, response.text
        assert f"{MAX_BODY_BYTES}-byte limit" in response.json()["message"], response.text
    # Runs: the two results, the two parents with one child (the at-limit one), the input.
    assert len(listed) == before == 6, "a refused input or body starts nothing"
    assert_settled(everything)
    fig.done(server)

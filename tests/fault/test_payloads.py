"""Payloads at and just over the documented limits: at the limit succeeds, one byte over
fails fast with a message naming the limit, and nothing is left stuck.

The limits: a task's encoded result (``MAX_RESULT_BYTES``, checked by the task runner
before anything is sent) and a REST request body, which carries the run's input
(``MAX_BODY_BYTES``, checked by the server before the body is decoded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from fault_support import MakeServer, Record, all_runs, assert_settled, settle, statuses, submit

from render_sdk.devserver._constants import MAX_BODY_BYTES
from render_sdk.workflows._constants import MAX_RESULT_BYTES

pytestmark = [pytest.mark.fault]

#: `["` and `"]` around a string result: its encoding's overhead.
RESULT_OVERHEAD = 4
#: An over-limit run must be failed within this (the defect it guards against kept the run
#: "running" for ~10 minutes of callback retries); generous for a loaded machine.
FAIL_FAST_S = 60.0


def _input_body(pad: int) -> bytes:
    """A POST /v1/task-runs body for ``size`` with a string of ``pad`` bytes."""
    return json.dumps({"task": "size", "input": ["y" * pad]}).encode()


#: The string length that makes the body exactly MAX_BODY_BYTES.
AT_LIMIT_PAD = MAX_BODY_BYTES - len(_input_body(0))


def _streamed(body: bytes) -> Iterator[bytes]:
    """The body in 1 MiB pieces: sent chunked, with no Content-Length to check up front."""
    for i in range(0, len(body), 1 << 20):
        yield body[i : i + (1 << 20)]


@pytest.mark.timeout(180)
def test_payloads_at_and_over_the_limits(fault_server: MakeServer, figures: Record) -> None:
    fig = figures("payloads at and over the limits")
    server = fault_server()
    json_headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=120) as c:
        started = time.monotonic()
        over = submit(c, "big", [MAX_RESULT_BYTES - RESULT_OVERHEAD + 1])
        over_run = settle(c, [over], FAIL_FAST_S)["runs"][over]
        fail_s = time.monotonic() - started
        at = submit(c, "big", [MAX_RESULT_BYTES - RESULT_OVERHEAD])
        at_run = settle(c, [at], 120)["runs"][at]

        body = _input_body(AT_LIMIT_PAD)
        assert len(body) == MAX_BODY_BYTES
        r = c.post("/v1/task-runs", content=body, headers=json_headers)
        assert r.status_code == 202, r.text
        input_run = settle(c, [r.json()["id"]], 120)["runs"][r.json()["id"]]
        before = len(all_runs(c))
        refused = [
            c.post("/v1/task-runs", content=_input_body(AT_LIMIT_PAD + 1), headers=json_headers),
            c.post(
                "/v1/task-runs",
                content=_streamed(_input_body(AT_LIMIT_PAD + 1)),
                headers=json_headers,
            ),
        ]
        listed = all_runs(c)
        everything = settle(c, [run["id"] for run in listed], 30)

    fig.account(everything)
    fig.extra = {
        "over-limit result failed in s": round(fail_s, 1),
        "over-limit input (sized/chunked)": "/".join(str(r.status_code) for r in refused),
        "statuses": statuses(everything["runs"].values()),
    }
    assert over_run["status"] == "failed", over_run["status"]
    assert fail_s < FAIL_FAST_S
    assert f"{MAX_RESULT_BYTES + 1} bytes" in over_run["error"], over_run["error"]
    assert f"limit of {MAX_RESULT_BYTES} bytes" in over_run["error"], over_run["error"]
    assert len(over_run["attempts"]) == 1, "a permanent error is not retried"
    assert over_run["results"] in (None, []), "no partial result"
    assert at_run["status"] == "completed"
    assert len(at_run["results"][0]) == MAX_RESULT_BYTES - RESULT_OVERHEAD
    assert (input_run["status"], input_run["results"]) == ("completed", [AT_LIMIT_PAD])
    for response in refused:
        assert response.status_code == 413, response.text
        assert f"{MAX_BODY_BYTES}-byte limit" in response.json()["message"], response.text
    assert len(listed) == before == 3, "a refused body starts nothing"
    assert_settled(everything)
    fig.done(server)

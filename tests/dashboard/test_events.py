"""The dashboard's all-runs event stream over real HTTP: every run, resume without loss."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx

from render_sdk.testing import LocalServer


def frames(lines: Iterator[str], count: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    frame: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in frame:  # not the retry preamble
                out.append(frame)
            if frame:
                frame = {}
            if len(out) == count:
                return out
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        frame[key] = value
    return out


def test_stream_sees_every_run_and_resumes_after_last_event_id(server: LocalServer) -> None:
    url = f"{server.url}/v1/dashboard/events"
    with httpx.Client(timeout=30) as client:
        with client.stream("GET", url) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            (ready,) = frames(lines, 1)
            assert ready["event"] == "ready"
            run_id = client.post(
                f"{server.url}/v1/task-runs", json={"task": "square", "input": [5]}
            ).json()["id"]
            seen = frames(lines, 1)
            assert run_id in seen[0]["data"]
        # Disconnected; both runs finish meanwhile; resuming replays everything missed.
        other = client.post(
            f"{server.url}/v1/task-runs", json={"task": "square", "input": [6]}
        ).json()["id"]
        for rid in (run_id, other):
            while client.get(f"{server.url}/v1/task-runs/{rid}").json()["status"] != "completed":
                time.sleep(0.01)
        with client.stream("GET", url, headers={"Last-Event-ID": seen[0]["id"]}) as resp:
            lines = resp.iter_lines()
            got: list[dict[str, str]] = []
            # Both runs ended before this stream opened, so the replay holds every terminal
            # frame this subscriber missed (a lost one would hang here until pytest's timeout).
            while not (completed(other, got) and completed(run_id, seen + got)):
                got += frames(lines, 1)
        ids = [int(f["id"]) for f in got]
        assert ids == sorted(ids)
        assert ids[0] > int(seen[0]["id"])
        # The first run's terminal state reached this subscriber once: in the first stream
        # (when the run finished before its first frame was read, the hub sends its latest
        # state) or in the replay.
        assert sum(completed(run_id, [f]) for f in seen + got) == 1


def completed(run_id: str, events: list[dict[str, str]]) -> bool:
    """Whether ``events`` hold ``run_id``'s completion."""
    return any(
        f["event"] == "task.completed" and json.loads(f["data"])["id"] == run_id for f in events
    )


def test_page_and_assets_are_served_with_a_strict_policy(server: LocalServer) -> None:
    page = httpx.get(server.url + "/")
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert (
        httpx.get(server.url + "/_dashboard/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    missing = httpx.get(server.url + "/_dashboard/../_api.py")
    assert missing.status_code == 404

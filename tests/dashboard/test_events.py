"""The dashboard's all-runs event stream over real HTTP: every run, resume without loss."""

from __future__ import annotations

import json

import httpx
from dashboard_support import WAIT_S, frames, start, wait_status

from render_sdk.testing import LocalServer


def test_stream_sees_every_run_and_resumes_after_last_event_id(server: LocalServer) -> None:
    url = "/v1/dashboard/events"
    with httpx.Client(base_url=server.url, timeout=WAIT_S) as client:
        with client.stream("GET", url) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            (ready,) = frames(lines, 1)
            assert ready["event"] == "ready"
            run_id = start(client, "square", [5])
            seen = frames(lines, 1)
            assert run_id in seen[0]["data"]
        # Disconnected; both runs finish meanwhile; resuming replays everything missed.
        other = start(client, "square", [6])
        for rid in (run_id, other):
            wait_status(client, rid, "completed")
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

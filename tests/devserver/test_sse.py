"""End to end: GET /v1/task-runs/events against a real server; the hub and stream in-process."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal

from render_sdk import _wire
from render_sdk.devserver._api import Api, SSEResponse
from render_sdk.devserver._orchestrator import EventHub, Orchestrator
from render_sdk.devserver._store import Store
from render_sdk.testing import LocalServer


def read_events(
    client: httpx.Client,
    params: Any,
    *,
    until: int = 1,
    headers: dict[str, str] | None = None,
    terminal_only: bool = True,
    timeout: float = 30.0,
) -> tuple[bytes, list[dict[str, Any]]]:
    """Read a stream until ``until`` terminal events arrived; returns raw bytes and events."""
    events: list[dict[str, Any]] = []
    terminals = 0
    raw = b""
    deadline = time.monotonic() + timeout
    with client.stream(
        "GET", "/v1/task-runs/events", params=params, headers=headers or {}, timeout=timeout
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        # The promise clients rely on to skip a GET per run: terminal runs are replayed
        # (the tests that use this helper check that they are).
        assert r.headers[_wire.EVENTS_REPLAY_HEADER] == _wire.EVENTS_REPLAY_TERMINAL
        buf = b""
        for chunk in r.iter_raw():
            raw += chunk
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                fields = dict(
                    line.split(": ", 1) for line in block.decode().split("\n") if ": " in line
                )
                if "event" in fields:
                    ev = {"id": fields["id"], "event": fields["event"]}
                    ev["data"] = json.loads(fields["data"])
                    terminals += ev["event"] == "task.completed"
                    if not terminal_only or ev["event"] == "task.completed":
                        events.append(ev)
            if terminals >= until:
                break
            assert time.monotonic() < deadline, f"timed out; events so far: {events}"
    return raw, events


def test_first_write_is_retry_and_completed_runs_replay(client: httpx.Client) -> None:
    run_id = start_run(client, "square", [5])
    wait_terminal(client, run_id)
    raw, events = read_events(client, {"taskRunIds": run_id})
    assert raw.startswith(b"retry: 2000\n\n")
    (ev,) = events
    assert ev["event"] == "task.completed"
    assert ev["data"]["status"] == "completed"
    assert ev["data"]["results"] == [25]
    assert ev["data"]["id"] == run_id
    assert ev["data"]["startedAt"]
    assert ev["data"]["completedAt"]


def test_canceled_runs_replay(client: httpx.Client) -> None:
    run_id = start_run(client, "sleepy", [30])
    wait_status(client, run_id, "running")
    client.delete(f"/v1/task-runs/{run_id}")
    _, events = read_events(client, {"taskRunIds": run_id})
    assert events[0]["data"]["status"] == "canceled"
    assert events[0]["event"] == "task.completed"


def test_live_event_and_non_terminal_events(client: httpx.Client) -> None:
    run_id = start_run(client, "sleepy", [0.5])
    _, events = read_events(client, {"taskRunIds": run_id}, terminal_only=False)
    names = [e["event"] for e in events]
    assert names[-1] == "task.completed"
    assert names.count("task.completed") == 1
    assert events[-1]["data"]["results"] == ["woke"]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)


def test_ids_repeated_or_comma_separated(client: httpx.Client) -> None:
    a = start_run(client, "square", [1])
    b = start_run(client, "square", [2])
    c = start_run(client, "square", [3])
    for run_id in (a, b, c):
        wait_terminal(client, run_id)
    _, events = read_events(client, [("taskRunIds", f"{a},{b}"), ("taskRunIds", c)], until=3)
    assert {e["data"]["id"] for e in events} == {a, b, c}


def test_retried_failures_are_not_terminal_events(client: httpx.Client, tmp_path: Path) -> None:
    run_id = start_run(client, "flaky", [str(tmp_path / "m")])
    _, events = read_events(client, {"taskRunIds": run_id}, terminal_only=False)
    terminal = [e for e in events if e["event"] == "task.completed"]
    assert len(terminal) == 1
    assert terminal[0]["data"]["status"] == "completed"
    assert terminal[0]["data"]["retries"] == 2


def test_final_failure_event_carries_error(client: httpx.Client) -> None:
    run_id = start_run(client, "always_fails", [])
    _, events = read_events(client, {"taskRunIds": run_id})
    assert events[0]["data"]["status"] == "failed"
    assert "nope" in events[0]["data"]["error"]


def test_last_event_id_replays_missed_events(client: httpx.Client) -> None:
    run_id = start_run(client, "square", [9])
    wait_terminal(client, run_id)
    _, events = read_events(
        client, {"taskRunIds": run_id}, headers={"Last-Event-ID": "0"}, terminal_only=False
    )
    assert [e["event"] for e in events] == ["task.pending", "task.running", "task.completed"]
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    _, rest = read_events(
        client,
        {"taskRunIds": run_id},
        headers={"Last-Event-ID": str(ids[1])},
        terminal_only=False,
    )
    assert [e["id"] for e in rest] == [events[2]["id"]]
    # A plain resubscribe replays the terminal state under the same event id.
    _, replay = read_events(client, {"taskRunIds": run_id})
    assert replay[0]["id"] == events[2]["id"]


def read_to_end(
    client: httpx.Client, params: Any, headers: dict[str, str] | None = None
) -> list[str]:
    """The whole stream, read until the server closes it: each event's ``event`` name."""
    with client.stream(
        "GET", "/v1/task-runs/events", params=params, headers=headers or {}, timeout=30
    ) as r:
        assert r.status_code == 200
        body = r.read().decode()
    return [ln.split(": ", 1)[1] for ln in body.split("\n") if ln.startswith("event: ")]


def test_stream_ends_once_every_run_is_terminal(client: httpx.Client) -> None:
    done = start_run(client, "square", [2])
    wait_terminal(client, done)
    live = start_run(client, "sleepy", [0.5])
    # No break: the server closes the stream after both terminal events went out.
    names = read_to_end(client, {"taskRunIds": f"{done},{live}"})
    assert names.count("task.completed") == 2
    assert names[-1] == "task.completed"
    # Every run already terminal: the replay, then the end.
    assert read_to_end(client, {"taskRunIds": done}) == ["task.completed"]


def test_last_event_id_above_any_issued_id_still_gets_terminal_state(
    client: httpx.Client,
) -> None:
    run_id = start_run(client, "square", [3])
    wait_terminal(client, run_id)
    names = read_to_end(client, {"taskRunIds": run_id}, {"Last-Event-ID": str(10**18)})
    assert names[-1] == "task.completed"


def test_missing_ids_is_400(client: httpx.Client) -> None:
    r = client.get("/v1/task-runs/events")
    assert r.status_code == 400
    assert "taskRunIds" in r.json()["message"]


def test_disconnecting_clients_do_not_block_the_server(client: httpx.Client) -> None:
    run_id = start_run(client, "sleepy", [1])
    for _ in range(20):
        with client.stream("GET", "/v1/task-runs/events", params={"taskRunIds": run_id}) as r:
            next(r.iter_raw())
    assert wait_terminal(client, run_id)["status"] == "completed"
    # The server still answers promptly and runs new work.
    assert wait_terminal(client, start_run(client, "square", [4]))["results"] == [16]


@pytest.fixture
def ping_server(make_server: Any) -> LocalServer:
    return make_server(extra_args=["--sse-ping", "0.2"])


def test_heartbeats(ping_server: LocalServer) -> None:
    with httpx.Client(base_url=ping_server.url, timeout=10) as c:
        run_id = start_run(c, "sleepy", [2])
        raw = b""
        with c.stream("GET", "/v1/task-runs/events", params={"taskRunIds": run_id}) as r:
            for chunk in r.iter_raw():
                raw += chunk
                if raw.count(b": ping\n\n") >= 2:
                    break
        assert raw.startswith(b"retry: 2000\n\n")


# --------------------------------------------------------------------------- in-process


def test_hub_drops_slow_subscribers_without_blocking() -> None:
    hub = EventHub(queue_size=2)
    slow = hub.subscribe(["r"])
    other = hub.subscribe(["q"])
    for i in range(5):
        hub.publish("r", lambda n, i=i: b"%d" % i)
    assert slow.dropped
    assert list(slow.queue) == [b"0", b"1"]
    assert hub.subscriber_count == 1
    hub.unsubscribe(other)
    assert hub.subscriber_count == 0


def test_hub_history_is_bounded_in_bytes_and_reports_evicted_runs() -> None:
    hub = EventHub(history=10, history_bytes=100)
    for i in range(6):
        hub.publish("r" if i < 3 else "q", lambda n, i=i: bytes([65 + i]) * 30)
    # 180 bytes published, at most 100 kept: the oldest frames went first.
    assert hub.history_bytes == 90
    frames, stale = hub.replay_after(0, frozenset({"r", "q"}))
    assert stale == {"r"}, "r's first frames are gone: replay its current state instead"
    assert [rid for rid, _ in frames] == ["q", "q", "q"]
    # A frame larger than the whole budget is never kept, and its run is reported stale.
    hub.publish("q", lambda n: b"z" * 101)
    assert hub.replay_after(0, frozenset({"q"}))[1] == {"q"}


def test_hub_forgets_old_ids_and_reports_runs_that_missed_them() -> None:
    hub = EventHub(history=2)
    first = hub.last_issued
    for rid in ("r", "q", "q"):
        hub.publish(rid, lambda n: b"f")
    frames, stale = hub.replay_after(first, frozenset({"r", "q"}))
    assert stale == {"r"}
    assert [rid for rid, _ in frames] == ["q", "q"]


def test_hub_drops_subscribers_by_bytes_behind_and_shares_frames() -> None:
    hub = EventHub(max_behind=100)
    slow, fast = hub.subscribe(["r"]), hub.subscribe(["r"])
    hub.publish("r", lambda n: b"a" * 150)  # one frame always fits, whatever its size
    assert slow.behind == 150
    assert not slow.dropped
    fast.queue.clear()
    fast.behind = 0
    hub.publish("r", lambda n: b"b" * 50)
    assert slow.dropped
    assert not fast.dropped
    assert fast.queue[0] is hub.replay_after(0, frozenset({"r"}))[0][-1][1], "shared bytes"
    # A new stream of a watched run gets the newest published frame itself, not a rebuild.
    assert hub.current_frame("r", lambda n: b"rebuilt") is fast.queue[0]
    # Unwatched, a run's current frame is built for the caller and not kept.
    assert hub.current_frame("q", lambda n: b"%d" % n) == b"%d" % hub.latest_ids["q"]
    hub.unsubscribe(fast)
    assert hub.current_frame("r", lambda n: b"rebuilt") == b"rebuilt"


async def test_stream_releases_subscriber_on_disconnect(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    orch = Orchestrator(
        store=store,
        launcher=None,  # type: ignore[arg-type]  # never launches in this test
        socket_dir=tmp_path,
        report=lambda line: None,
    )
    api = Api(orch, ping_s=60)
    disconnect = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    response = SSEResponse(api, ["trn-x"], None)
    task = asyncio.create_task(response({"type": "http"}, receive, send))
    await asyncio.sleep(0.05)
    assert orch.hub.subscriber_count == 1
    disconnect.set()
    await asyncio.wait_for(task, 2)
    assert orch.hub.subscriber_count == 0
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"retry: 2000\n\n"
    store.close()

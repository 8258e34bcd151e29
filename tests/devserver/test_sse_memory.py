"""SSE memory is bounded by the documented limits, not by payload sizes or slow readers.

A real server subprocess, real task processes and real loopback sockets; the server's
memory is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal
from server_probe import MiB, memory, open_stream, read_events

from render_sdk.devserver._constants import (
    SSE_HISTORY_MAX_BYTES,
    SSE_SUBSCRIBER_MAX_BYTES,
    SSE_WRITE_CHUNK_BYTES,
)
from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]

APP = """
import time
from render_sdk import Workflows

app = Workflows()

@app.task
def size(s: str) -> int:
    return len(s)

@app.task
def hold(s: str, t: float) -> int:
    time.sleep(t)
    return len(s)

@app.task
def big(n: int) -> str:
    return "x" * n

@app.task
def hold_big(c: str, n: int, t: float) -> str:
    time.sleep(t)
    return c * n
"""


def serve(make_server: MakeServer, tmp_path: Path) -> LocalServer:
    (tmp_path / "mem_app.py").write_text(textwrap.dedent(APP))
    return make_server(app="mem_app:app", cwd=tmp_path)


def test_history_holds_no_payload_per_event(make_server: MakeServer, tmp_path: Path) -> None:
    # 60 runs with 1 MiB inputs and no subscriber: every event's frame carries the input,
    # so a history of full frames grows by ~3 frames per run (the issue saw 36 -> 910 MB
    # for 200 runs); a history bounded in bytes adds at most SSE_HISTORY_MAX_BYTES.
    server = serve(make_server, tmp_path)
    assert server.pid is not None
    runs, size = 60, MiB
    with httpx.Client(base_url=server.url, timeout=60) as c:
        wait_terminal(c, start_run(c, "size", ["warm"]), 60)
        before = memory(server.pid)
        ids = [start_run(c, "size", ["y" * size]) for _ in range(runs)]
        for run_id in ids:
            assert wait_terminal(c, run_id, 120)["results"] == [size]
    after = memory(server.pid)
    growth = after["VmHWM"] - before["VmRSS"]
    inputs = runs * size
    print(f"60 x 1 MiB inputs: RSS {before['VmRSS'] / MiB:.0f} -> peak {after['VmHWM'] / MiB:.0f}")
    # The store's own copies of the inputs plus the bounded history, with slack for the
    # allocator; full-frame history alone would be three more copies of every input.
    assert growth < 2 * inputs + SSE_HISTORY_MAX_BYTES + 48 * MiB, growth / MiB


def test_never_reading_subscribers_share_one_frame(make_server: MakeServer, tmp_path: Path) -> None:
    # 20 streams that never read, on a run whose result is 8 MB (its frame holds it twice):
    # one shared frame and a slice per stream, not 20 copies (the issue saw 894 MB).
    server = serve(make_server, tmp_path)
    assert server.pid is not None
    n = 8_000_000
    with httpx.Client(base_url=server.url, timeout=60) as c:
        run_id = start_run(c, "big", [n])
        assert wait_terminal(c, run_id, 60)["status"] == "completed"
        frame = len(c.get(f"/v1/task-runs/{run_id}").content)
    before = memory(server.pid)
    streams = [open_stream(server.url, run_id) for _ in range(20)]
    time.sleep(3)
    after = memory(server.pid)
    print(
        f"20 stalled streams, {frame / MiB:.0f} MiB frame: "
        f"RSS {before['VmRSS'] / MiB:.0f} -> {after['VmRSS'] / MiB:.0f}"
    )
    try:
        growth = after["VmRSS"] - before["VmRSS"]
        assert growth < 2 * frame + 20 * 4 * SSE_WRITE_CHUNK_BYTES + 16 * MiB, growth / MiB
        # Each stream still gets the whole terminal event once it reads, and then its end.
        events = read_events(streams.pop())
        assert [e[1] for e in events] == ["task.completed"]
        assert events[0][2]["results"] == ["x" * n]
    finally:
        for s in streams:
            s.close()


def test_slow_subscriber_is_dropped_and_resumes_with_last_event_id(
    make_server: MakeServer, tmp_path: Path
) -> None:
    # Two runs whose terminal frames are each ~8 MiB (their results; an input may not be
    # that large, MAX_INPUT_BYTES) finish while the stream is not read
    # (more than the kernel's socket buffers take): the second puts it over
    # SSE_SUBSCRIBER_MAX_BYTES behind, so the stream is dropped after the first; a resume
    # with its last id gets the other terminal state (its frame, larger than the history
    # budget, is rebuilt from the store).
    server = serve(make_server, tmp_path)
    size = 8 * MiB
    assert 2 * size > SSE_SUBSCRIBER_MAX_BYTES
    with httpx.Client(base_url=server.url, timeout=60) as c:
        a = start_run(c, "hold_big", ["a", size, 2.0])
        b = start_run(c, "hold_big", ["b", size, 4.0])
        # Subscribe once both run, so the stream's only events are the two terminal ones.
        while any(c.get(f"/v1/task-runs/{r}").json()["status"] != "running" for r in (a, b)):
            time.sleep(0.05)
        sock = open_stream(server.url, f"{a},{b}")
        for run_id in (a, b):
            assert wait_terminal(c, run_id, 60)["status"] == "completed"
    first = read_events(sock)
    assert [(e[1], e[2]["id"]) for e in first] == [("task.completed", a)], [
        (e[1], e[2]["id"]) for e in first
    ]
    rest = read_events(open_stream(server.url, f"{a},{b}", last_id=first[-1][0]))
    assert [(e[1], e[2]["id"]) for e in rest] == [("task.completed", b)]
    assert rest[0][2]["results"] == ["b" * size]

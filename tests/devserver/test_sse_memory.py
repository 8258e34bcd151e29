"""SSE memory is bounded by the documented limits, not by payload sizes or slow readers.

A real server subprocess, real task processes and real loopback sockets; the server's
memory is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import json
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal

from render_sdk.devserver._constants import (
    SSE_HISTORY_MAX_BYTES,
    SSE_SUBSCRIBER_MAX_BYTES,
    SSE_WRITE_CHUNK_BYTES,
)
from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]
MiB = 1024 * 1024

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


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def serve(make_server: MakeServer, tmp_path: Path) -> LocalServer:
    (tmp_path / "mem_app.py").write_text(textwrap.dedent(APP))
    return make_server(app="mem_app:app", cwd=tmp_path)


def open_stream(server: LocalServer, run_ids: str, last_id: int | None = None) -> socket.socket:
    """A raw events request on a socket with a small receive buffer, not yet read."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect((host, int(port)))
    extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
    sock.sendall(
        f"GET /v1/task-runs/events?taskRunIds={run_ids} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Connection: close\r\n{extra}\r\n".encode()
    )
    return sock


def read_events(sock: socket.socket) -> list[tuple[int, str, dict[str, object]]]:
    """Read the stream to its end: ``(id, event, data)`` of each complete event."""
    sock.settimeout(60)
    raw = b""
    while chunk := sock.recv(1 << 20):
        raw += chunk
    sock.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    text = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        text, body = text + body[:size], body[size + 2 :]
    events = []
    for block in text.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"event" in fields:
            data = json.loads(fields[b"data"])
            events.append((int(fields[b"id"]), fields[b"event"].decode(), data))
    return events


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
    streams = [open_stream(server, run_id) for _ in range(20)]
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
        sock = open_stream(server, f"{a},{b}")
        for run_id in (a, b):
            assert wait_terminal(c, run_id, 60)["status"] == "completed"
    first = read_events(sock)
    assert [(e[1], e[2]["id"]) for e in first] == [("task.completed", a)], [
        (e[1], e[2]["id"]) for e in first
    ]
    rest = read_events(open_stream(server, f"{a},{b}", last_id=first[-1][0]))
    assert [(e[1], e[2]["id"]) for e in rest] == [("task.completed", b)]
    assert rest[0][2]["results"] == ["b" * size]

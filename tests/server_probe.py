"""Probes of a running local server from outside: its memory and descriptors from ``/proc``,
and raw SSE streams on loopback sockets whose reading the test controls.

Shared by the SSE memory tests (tests/devserver) and the fault-and-load suite (tests/fault).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of ``pid``, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` holds open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_stream(
    url: str, run_ids: str, last_id: int | None = None, *, rcvbuf: int = 16 * 1024
) -> socket.socket:
    """A raw events request for ``run_ids`` (comma-separated) on a socket with a small
    receive buffer, sent but not yet read."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.connect((host, int(port)))
        extra = f"Last-Event-ID: {last_id}\r\n" if last_id is not None else ""
        sock.sendall(
            f"GET /v1/task-runs/events?taskRunIds={run_ids} HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nConnection: close\r\n{extra}\r\n".encode()
        )
    except BaseException:
        sock.close()
        raise
    return sock


def read_events(sock: socket.socket, timeout: float = 60.0) -> list[tuple[int, str, Any]]:
    """Read the stream to its end: ``(id, event, data)`` of each complete event."""
    raw = bytearray()
    with sock:
        sock.settimeout(timeout)
        while chunk := sock.recv(1 << 20):
            raw += chunk
    end = raw.index(b"\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), bytes(raw[:end])
    # De-chunk by offsets: a dropped stream's frames are megabytes in 64 KiB chunks.
    pos, parts = end + 4, []
    while pos < len(raw):
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol], 16)
        if size == 0:
            break
        parts.append(raw[eol + 2 : eol + 2 + size])
        pos = eol + 2 + size + 2
    text = b"".join(parts)
    events = []
    for block in text.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"event" in fields:
            data = json.loads(fields[b"data"])
            events.append((int(fields[b"id"]), fields[b"event"].decode(), data))
    return events

"""SSE under load: many readers that drop mid-stream, some that never read, large results.

The server's memory must stay under a bound derived from its documented SSE limits, the
dropped connections must be released, and a slow reader must be dropped and then see
every terminal state when it resumes with Last-Event-ID.
"""

from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_support import TERMINAL, MakeServer, Record, assert_settled, settle, submit
from server_probe import MiB, memory, open_fds, open_stream, read_events

from render_sdk.devserver._constants import (
    SSE_HISTORY_MAX_BYTES,
    SSE_SUBSCRIBER_MAX_BYTES,
    SSE_WRITE_CHUNK_BYTES,
)

pytestmark = [pytest.mark.fault]


def _send_buffer_max() -> int:
    """The most a loopback TCP send buffer autotunes to (tcp_wmem's maximum)."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 * MiB


#: Runs whose results stream, each RESULT bytes, finishing STAGGER_S apart: enough that a
#: stream which reads nothing falls more than SSE_SUBSCRIBER_MAX_BYTES behind whatever the
#: kernel's socket buffers absorb, so the server must drop it.
RESULT = 4 * MiB
RUNS = max(6, (_send_buffer_max() + SSE_SUBSCRIBER_MAX_BYTES) // RESULT + 3)
STAGGER_S = 0.5
#: Streams that never read until every run is terminal.
SLOW = 20
#: Every this many-th slow stream is resumed with Last-Event-ID and checked.
RESUME_EVERY = 4
#: Streams that read a little and disconnect (a third of them with a reset).
DROPPED = 300
DROP_AFTER = (1024, 64 * 1024, 512 * 1024)
DROPPERS = 8
#: What the server's resident memory may grow by, beyond the documented SSE budgets:
#: the results' own passage through the server (socket body, decoded result, stored row,
#: encoded frame: a few copies of each run's result) and the allocator's slack.
PASSAGE = RUNS * 4 * RESULT
SLACK = 64 * MiB


def _drop(url: str, run_ids: str, n: int) -> None:
    """Subscribe, read up to some bytes of the stream, then disconnect mid-stream."""
    sock = open_stream(url, run_ids)
    try:
        sock.settimeout(30)
        want, got = DROP_AFTER[n % len(DROP_AFTER)], 0
        while got < want and (chunk := sock.recv(min(65536, want - got))):
            got += len(chunk)
        if n % 3 == 0:  # an abortive close: the server sees a reset, not a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except TimeoutError:
        pass  # the stream waits for the next transition: disconnect anyway
    finally:
        sock.close()


def _last_id(events: list[tuple[int, str, Any]]) -> int | None:
    return events[-1][0] if events else None


def _terminal(events: list[tuple[int, str, Any]]) -> list[tuple[int, str, Any]]:
    return [e for e in events if e[2]["status"] in TERMINAL]


@pytest.mark.timeout(180)
def test_dropped_and_slow_readers_keep_memory_bounded(
    fault_server: MakeServer, figures: Record
) -> None:
    fig = figures("dropped and slow SSE readers")
    server = fault_server()
    assert server.pid is not None
    with httpx.Client(base_url=server.url, timeout=60) as c:
        submit(c, "square", [2])  # warm the server's code paths before the baseline
        time.sleep(1)
        before, fds_before = memory(server.pid), open_fds(server.pid)
        ids = [submit(c, "big_later", [RESULT, 2 + i * STAGGER_S]) for i in range(RUNS)]
        joined = ",".join(ids)
        slow = [open_stream(server.url, joined) for _ in range(SLOW)]
        try:
            with ThreadPoolExecutor(DROPPERS) as pool:
                # Readers that come while the runs work wait for the first large terminal
                # frame and drop in the middle of it; later ones drop in the middle of
                # the replay of those frames.
                for f in [pool.submit(_drop, server.url, joined, n) for n in range(DROPPED)]:
                    f.result()
            outcome = settle(c, ids, 90)
            peak = memory(server.pid)["VmHWM"]
            frame = len(c.get(f"/v1/task-runs/{ids[0]}").content)
            first = [read_events(s) for s in slow]
        finally:
            for s in slow:
                s.close()
        # Resumed: every RESUME_EVERY-th slow stream (each resume makes the server rebuild
        # the evicted multi-MiB frames, which is slow on a loaded machine).
        resumed = [
            (events, read_events(open_stream(server.url, joined, _last_id(events), rcvbuf=4 * MiB)))
            for events in first[::RESUME_EVERY]
        ]
        fds_after = open_fds(server.pid)
        deadline = time.monotonic() + 20
        while fds_after > fds_before + 8 and time.monotonic() < deadline:
            time.sleep(0.2)
            fds_after = open_fds(server.pid)
        outcome = settle(c, ids, 10)

    # The documented budgets: the replay history, each slow stream's backlog, one write
    # slice per open stream (every dropped one, if the server has not yet noticed), and
    # each watched run's current frame, encoded once and shared by every stream.
    budget = SSE_HISTORY_MAX_BYTES + SLOW * SSE_SUBSCRIBER_MAX_BYTES
    budget += (SLOW + DROPPED) * SSE_WRITE_CHUNK_BYTES + RUNS * frame + PASSAGE + SLACK
    growth = peak - before["VmRSS"]
    dropped = sum(1 for events in first if len(_terminal(events)) < RUNS)
    # What each resumed stream saw in all, before its drop and after its resume.
    seen = [
        {d["id"]: (name, len(d["results"][0])) for _, name, d in _terminal(events + more)}
        for events, more in resumed
    ]
    everything = {run_id: ("task.completed", RESULT) for run_id in ids}
    fig.account(outcome)
    fig.extra = {
        "readers dropped mid-stream": DROPPED,
        "slow readers dropped": f"{dropped}/{SLOW}",
        "resumed and saw every terminal state": f"{seen.count(everything)}/{len(seen)}",
        "RSS growth MiB": round(growth / MiB, 1),
        "bound MiB": round(budget / MiB, 1),
        "frame MiB": round(frame / MiB, 1),
        "fds before/after": f"{fds_before}/{fds_after}",
    }
    assert_settled(outcome)
    assert growth < budget, f"{growth / MiB:.0f} MiB > {budget / MiB:.0f} MiB"
    # Every slow stream fell more than SSE_SUBSCRIBER_MAX_BYTES behind and was dropped
    # after what was queued for it; its resume gets each terminal state it missed.
    assert dropped == SLOW, [len(events) for events in first]
    assert seen == [everything] * len(resumed)
    assert fds_after <= fds_before + 8, "the dropped connections were released"
    fig.done(server)

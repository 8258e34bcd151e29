"""REST + SSE client overhead, next to raw httpx against the same loopback server.

The server is a tiny starlette + uvicorn app in a subprocess serving canned Render JSON
and an event stream, so both sides pay the same network and server costs and the
difference is the client: request building, error mapping, typed decoding, SSE state.

Rows:
* request build + response decode without I/O (our codec path vs json.dumps/json.loads);
* GET /task-runs/{id} and POST /task-runs per call, sync and async;
* task run events per second over one SSE stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from benchmarks._harness import Row, measure, repeats
from render_sdk import Render, RenderSync
from render_sdk.client import _protocol as P

GROUP = "client"

DETAILS: dict[str, Any] = {
    "id": "trn-bench",
    "taskId": "tsk-bench",
    "status": "completed",
    "startedAt": "2026-01-02T03:04:05.123456Z",
    "completedAt": "2026-01-02T03:04:06.123456Z",
    "parentTaskRunId": "",
    "rootTaskRunId": "trn-bench",
    "retries": 0,
    "attempts": [
        {
            "attempt": 0,
            "status": "completed",
            "startedAt": "2026-01-02T03:04:05.123456Z",
            "completedAt": "2026-01-02T03:04:06.123456Z",
            "results": [{"total": 25, "items": list(range(10))}],
        }
    ],
    "results": [{"total": 25, "items": list(range(10))}],
    "input": [3, 4, {"name": "bench", "tags": ["a", "b", "c"]}],
}

SERVER = r"""
import json, os, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

DETAILS = json.loads(os.environ["BENCH_DETAILS"])
EVENTS = int(os.environ["BENCH_EVENTS"])
details = json.dumps(DETAILS, separators=(",", ":")).encode()
running = dict(DETAILS, id="trn-bench-running", status="running", results=None)
run = {k: v for k, v in running.items() if k not in ("results", "input")}
run_body = json.dumps(run, separators=(",", ":")).encode()
running_line = json.dumps(running, separators=(",", ":"))
done_line = json.dumps(dict(DETAILS, id="trn-bench-running"), separators=(",", ":"))

async def get_run(request):
    if request.path_params["run_id"] == "trn-bench-running":
        return Response(json.dumps(running).encode(), media_type="application/json")
    return Response(details, media_type="application/json")

async def post_run(request):
    await request.body()
    return Response(run_body, status_code=202, media_type="application/json")

async def events(request):
    async def body():
        yield b"retry: 2000\n\n"
        batch = []
        for i in range(EVENTS):
            batch.append(f"id: {i}\nevent: task.running\ndata: {running_line}\n\n")
            if len(batch) == 200:
                yield "".join(batch).encode()
                batch = []
        batch.append(f"id: {EVENTS}\nevent: task.completed\ndata: {done_line}\n\n")
        yield "".join(batch).encode()
    return StreamingResponse(body(), media_type="text/event-stream")

app = Starlette(routes=[
    Route("/v1/task-runs/events", events),
    Route("/v1/task-runs/{run_id}", get_run),
    Route("/v1/task-runs", post_run, methods=["POST"]),
])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Server:
    def __init__(self, events: int) -> None:
        self.port = _free_port()
        env = dict(os.environ, BENCH_DETAILS=json.dumps(DETAILS), BENCH_EVENTS=str(events))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(self.port)], env=env, stderr=subprocess.PIPE
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.url}/v1/task-runs/trn-bench", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("benchmark server did not start") from None
                time.sleep(0.05)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _paired(
    ours: Callable[[], Any], baseline: Callable[[], Any], *, rounds: int, number: int
) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternating rounds so that load from
    other processes on a shared machine hits both sides alike."""
    ours_samples, baseline_samples = [], []
    for _ in range(rounds):
        ours_samples.append(measure(ours, repeat=1, number=number))
        baseline_samples.append(measure(baseline, repeat=1, number=number))
    return statistics.median(ours_samples), statistics.median(baseline_samples)


def _codec_rows(quick: bool) -> list[Row]:
    raw = json.dumps(DETAILS, separators=(",", ":")).encode()
    inputs = [3, 4, {"name": "bench", "tags": ["a", "b", "c"]}]
    number = 2000 if quick else 10000

    def ours() -> None:
        P.run_task_body("wf/task", inputs)
        P.parse_details(raw)

    def baseline() -> None:
        json.dumps({"task": "wf/task", "input": inputs}).encode()
        json.loads(raw)

    mine, base = _paired(ours, baseline, rounds=repeats(quick), number=number)
    return [
        Row(
            GROUP,
            "build RunTask + decode TaskRunDetails (no I/O)",
            mine,
            baseline=base,
            baseline_name="json.dumps + json.loads (untyped)",
            note="typed, validated model vs plain dicts",
        )
    ]


def _sync_rows(url: str, quick: bool) -> list[Row]:
    number = 100 if quick else 400
    rows: list[Row] = []
    with RenderSync(base_url=url) as render, httpx.Client() as raw:
        get_url = f"{url}/v1/task-runs/trn-bench"
        post_url = f"{url}/v1/task-runs"
        body = {"task": "wf/task", "input": [3, 4]}

        def ours_get() -> None:
            render.workflows.get_task_run("trn-bench")

        def raw_get() -> None:
            response = raw.get(get_url)
            response.raise_for_status()
            response.json()

        def ours_post() -> None:
            render.workflows.run_task("wf/task", [3, 4])

        def raw_post() -> None:
            response = raw.post(post_url, json=body)
            response.raise_for_status()
            response.json()

        for fn in (ours_get, raw_get, ours_post, raw_post):
            fn()  # open the pooled connection first
        mine, base = _paired(ours_get, raw_get, rounds=repeats(quick), number=number)
        rows.append(
            Row(
                GROUP,
                "RenderSync.get_task_run per call",
                mine,
                baseline=base,
                baseline_name="httpx.Client GET + .json()",
            )
        )
        mine, base = _paired(ours_post, raw_post, rounds=repeats(quick), number=number)
        rows.append(
            Row(
                GROUP,
                "RenderSync.workflows.run_task per call",
                mine,
                baseline=base,
                baseline_name="httpx.Client POST + .json()",
            )
        )
    return rows


async def _async_rows(url: str, quick: bool, events: int) -> list[Row]:
    number = 100 if quick else 400
    rows: list[Row] = []
    rounds = repeats(quick)
    async with Render(base_url=url) as render, httpx.AsyncClient() as raw:
        get_url = f"{url}/v1/task-runs/trn-bench"

        async def ours_get() -> None:
            for _ in range(number):
                await render.workflows.get_task_run("trn-bench")

        async def raw_get() -> None:
            for _ in range(number):
                response = await raw.get(get_url)
                response.raise_for_status()
                response.json()

        async def ours_events() -> int:
            count = 0
            async for _ in render.workflows.task_run_events(["trn-bench-running"]):
                count += 1
            return count

        async def raw_events() -> int:
            count = 0
            async with aconnect_sse(
                raw,
                "GET",
                f"{url}/v1/task-runs/events",
                params={"taskRunIds": "trn-bench-running"},
            ) as source:
                async for sse in source.aiter_sse():
                    if sse.data:
                        json.loads(sse.data)
                        count += 1
            return count

        async def timed(fn: Any) -> tuple[float, Any]:
            started = time.perf_counter()
            result = await fn()
            return time.perf_counter() - started, result

        await ours_get()
        await raw_get()
        ours_samples, raw_samples = [], []
        for _ in range(rounds):  # alternating, like _paired
            ours_samples.append((await timed(ours_get))[0] / number)
            raw_samples.append((await timed(raw_get))[0] / number)
        rows.append(
            Row(
                GROUP,
                "Render.get_task_run per call (async)",
                statistics.median(ours_samples),
                baseline=statistics.median(raw_samples),
                baseline_name="httpx.AsyncClient GET + .json()",
            )
        )
        ours_rates, raw_rates = [], []
        for _ in range(rounds):
            elapsed, count = await timed(ours_events)
            assert count == events + 1, count
            ours_rates.append(count / elapsed)
            elapsed, count = await timed(raw_events)
            raw_rates.append(count / elapsed)
        rows.append(
            Row(
                GROUP,
                "task_run_events throughput (typed TaskRunDetails)",
                statistics.median(ours_rates),
                unit="events/s",
                baseline=statistics.median(raw_rates),
                baseline_name="httpx + httpx-sse + json.loads",
                higher_is_better=True,
                note=f"{events + 1} events per stream",
            )
        )
    return rows


def run(quick: bool) -> list[Row]:
    """Measure the client next to raw httpx (see the module docstring)."""
    events = 2000 if quick else 10000
    rows = _codec_rows(quick)
    server = _Server(events)
    try:
        rows += _sync_rows(server.url, quick)
        rows += asyncio.run(_async_rows(server.url, quick, events))
    finally:
        server.close()
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)

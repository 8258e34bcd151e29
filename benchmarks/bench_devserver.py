"""The local task server: warm fork against spawning, measured in the same run.

Launcher rows start a trivial app through ``render_sdk.devserver._launcher`` directly.
Server rows start the real server (``render-workflows dev --port 0``, a subprocess) with a
real ``Workflows`` app, once forking attempts from a warm zygote and once with
``--no-warm`` (a fresh interpreter per attempt, the baseline), and drive it over HTTP
with httpx / httpx-sse the way a client does:

- end to end: ``POST /v1/task-runs`` → terminal SSE event (``task.completed``), p50, once
  with a minimal HTTP/1.1 client on asyncio streams (what the server and runner cost) and
  once with httpx + httpx-sse (what a typical Python client adds);
- throughput: trivial runs created by 32 concurrent httpx workers until every one has
  completed, with the CPU the server and the task processes spent per run (from
  /proc/PID/stat; forked attempts are reaped by the zygote, spawned ones by the server);
- fan-out: one task that starts N subtasks and gathers them;
- SSE delay: client receipt of ``task.completed`` minus the run's ``completedAt``, for
  runs that end while the client is subscribed.

The machine is shared (2 cores): the load average at the end is in the first e2e note.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

from benchmarks._harness import Row, percentile
from benchmarks.peers._common import children_by_parent
from render_sdk.devserver._launcher import Launcher, SpawnLauncher, make_launcher

PY = sys.executable
GROUP_LAUNCH = "devserver launcher"
GROUP_SERVER = "devserver e2e"
WARM = "warm fork"
SPAWN = "spawn (--no-warm)"

TRIVIAL_APP = """\
class App:
    def start(self):
        print("up", flush=True)


app = App()
"""

WORKFLOWS_APP = """\
import asyncio

from render_sdk import Workflows

app = Workflows()


@app.task
def noop(x: int = 0) -> int:
    return x


@app.task
async def slow(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task
async def fan(n: int) -> int:
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return len(results)
"""


# ---------------------------------------------------------------------------------------
# Launcher level


async def _launch_once(launcher: Launcher) -> tuple[float, float]:
    """(start → first output chunk, start → exit) of one process, in seconds."""
    first: list[float] = []

    def on_output(stream: str, chunk: bytes) -> None:
        if not first:
            first.append(time.perf_counter())

    started = time.perf_counter()
    proc = await launcher.start(mode="run", socket_path="unused", on_output=on_output)
    status = await proc.wait()
    ended = time.perf_counter()
    if status != 0 or not first:
        raise RuntimeError(f"trivial app failed with status {status}")
    return first[0] - started, ended - started


async def _launcher_rows(workdir: Path, n: int) -> list[Row]:
    (workdir / "trivial.py").write_text(TRIVIAL_APP)
    command = [PY, "-m", "render_sdk.workflows", "trivial:app"]
    env = dict(os.environ)
    results: dict[str, tuple[list[float], list[float]]] = {}
    for name, launcher in (
        (WARM, make_launcher(command, cwd=workdir, env=env)),
        (SPAWN, SpawnLauncher(command, cwd=workdir, env=env)),
    ):
        try:
            await _launch_once(launcher)  # the zygote's import; OS caches for spawning
            samples = [await _launch_once(launcher) for _ in range(n)]
        finally:
            await launcher.aclose()
        results[name] = ([s[0] for s in samples], [s[1] for s in samples])
    first_w, exit_w = results[WARM]
    first_s, exit_s = results[SPAWN]
    return [
        Row(
            GROUP_LAUNCH,
            "start → first output line, trivial app",
            statistics.median(first_w),
            baseline=statistics.median(first_s),
            baseline_name=SPAWN,
            note=f"{WARM}, n={n}",
        ),
        Row(
            GROUP_LAUNCH,
            "start → exit status, trivial app",
            statistics.median(exit_w),
            baseline=statistics.median(exit_s),
            baseline_name=SPAWN,
            note=f"{WARM}, n={n}",
        ),
    ]


# ---------------------------------------------------------------------------------------
# Server level


@contextlib.contextmanager
def _server(workdir: Path, *, warm: bool) -> Iterator[tuple[str, int]]:
    """Run ``render-workflows dev --port 0`` on the app in ``workdir``; yield (URL, pid)."""
    state = Path(tempfile.mkdtemp(prefix="bench-state-"))
    log_path = state / "server.log"
    command = [PY, "-m", "render_sdk.workflows", "dev", "--port", "0", "--no-reload"]
    command += ["--state-dir", str(state)]
    if not warm:
        command.append("--no-warm")
    command += ["--", PY, "-m", "render_sdk.workflows", "tasks:app"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            text = log_path.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("Listening on "):
                    yield line.removeprefix("Listening on ").strip(), proc.pid
                    return
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{text}")
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields 14-17 of stat(5): utime, stime, cutime, cstime (after pid and comm).
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def _zygote_pids(server_pid: int) -> list[int]:
    pids = []
    for pid in children_by_parent().get(server_pid, []):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"render_sdk.devserver._zygote" in fh.read():
                    pids.append(pid)
        except OSError:
            continue
    return pids


class _CpuMeter:
    """CPU used by the server itself and by the task processes it started."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        own, children = _cpu_seconds(self.server_pid)
        # Forked attempts are reaped by the zygote, so their CPU shows up there.
        for pid in _zygote_pids(self.server_pid):
            with contextlib.suppress(OSError):
                children += sum(_cpu_seconds(pid))
        return own, children

    def per_run(self, n: int) -> tuple[float, float]:
        own, children = self._read()
        return (own - self.start[0]) / n, (children - self.start[1]) / n


class _RawClient:
    """HTTP/1.1 over asyncio streams: what the server costs, without a client library's."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        # The server answers 421 to a Host that is not the address it listens on.
        self._host_header = f"{host}:{port}".encode()
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def create(self, task: str, input: list[object]) -> str:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        body = json.dumps({"task": task, "input": input}).encode()
        writer.write(
            b"POST /v1/task-runs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (self._host_header, len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        data = json.loads(await reader.readexactly(length))
        if not head.startswith(b"HTTP/1.1 202"):
            raise RuntimeError(f"POST /v1/task-runs: {head!r} {data}")
        run_id: str = data["id"]
        return run_id

    async def terminal(self, run_id: str) -> dict[str, object]:
        """Subscribe to the run's events; return the ``task.completed`` data."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                b"GET /v1/task-runs/events?taskRunIds=%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (run_id.encode(), self._host_header)
            )
            marker = b"event: task.completed\ndata: "
            buffer = b""
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    raise RuntimeError(f"the event stream of {run_id} ended early")
                buffer += chunk
                start = buffer.find(marker)
                if start >= 0 and buffer.find(b"\n", start + len(marker)) >= 0:
                    line = buffer[start + len(marker) :].split(b"\n", 1)[0]
                    data: dict[str, object] = json.loads(line)
                    return data
        finally:
            writer.close()

    async def all_terminal(self, run_ids: list[str]) -> list[dict[str, object]]:
        """Subscribe to several runs at once; return each one's ``task.completed`` data."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        remaining = set(run_ids)
        found: list[dict[str, object]] = []
        try:
            writer.write(
                b"GET /v1/task-runs/events?taskRunIds=%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (",".join(run_ids).encode(), self._host_header)
            )
            marker = b"event: task.completed\ndata: "
            buffer = b""
            while remaining:
                chunk = await reader.read(65536)
                if not chunk:
                    raise RuntimeError("an event stream ended early")
                buffer += chunk
                while (start := buffer.find(marker)) >= 0:
                    end = buffer.find(b"\n", start + len(marker))
                    if end < 0:
                        break
                    data = json.loads(buffer[start + len(marker) : end])
                    buffer = buffer[end:]
                    if data["id"] in remaining:
                        remaining.discard(data["id"])
                        found.append(data)
        finally:
            writer.close()
        return found

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


async def _raw_end_to_end(url: str, n: int) -> list[float]:
    client = _RawClient(url)
    samples = []
    try:
        for i in range(n):
            started = time.perf_counter()
            data = await client.terminal(await client.create("noop", [i]))
            samples.append(time.perf_counter() - started)
            if data["status"] != "completed":
                raise RuntimeError(f"run ended {data['status']}: {data}")
    finally:
        await client.aclose()
    return samples


async def _raw_throughput(url: str, n: int, concurrency: int = 32) -> tuple[float, float]:
    """(runs/s, client CPU per run) of ``n`` trivial runs driven by the minimal client."""
    batch = 100
    queue = list(range(n))
    watchers: list[asyncio.Task[list[dict[str, object]]]] = []
    pending: list[str] = []
    clients = [_RawClient(url) for _ in range(concurrency)]

    async def worker(client: _RawClient) -> None:
        while queue:
            i = queue.pop()
            pending.append(await client.create("noop", [i]))
            if len(pending) >= batch:
                ids = pending[:batch]
                del pending[:batch]
                watchers.append(asyncio.ensure_future(client.all_terminal(ids)))

    cpu = time.process_time()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in clients))
        if pending:
            watchers.append(asyncio.ensure_future(clients[0].all_terminal(list(pending))))
        results = [d for found in await asyncio.gather(*watchers) for d in found]
    finally:
        for client in clients:
            await client.aclose()
    elapsed = time.perf_counter() - started
    bad = [d for d in results if d["status"] != "completed"]
    if bad:
        raise RuntimeError(f"{len(bad)} runs did not complete: {bad[0]}")
    return n / elapsed, (time.process_time() - cpu) / n


async def _create(client: httpx.AsyncClient, task: str, input: list[object]) -> str:
    response = await client.post("/v1/task-runs", json={"task": task, "input": input})
    response.raise_for_status()
    run_id: str = response.json()["id"]
    return run_id


async def _terminal_events(
    client: httpx.AsyncClient, run_ids: list[str]
) -> AsyncIterator[tuple[dict[str, object], float]]:
    """Each run's terminal event data and its receipt time (``time.time()``)."""
    remaining = set(run_ids)
    params = {"taskRunIds": ",".join(run_ids)}
    async with aconnect_sse(client, "GET", "/v1/task-runs/events", params=params) as source:
        async for event in source.aiter_sse():
            if event.event != "task.completed":
                continue
            received = time.time()
            data = json.loads(event.data)
            if data["id"] in remaining:
                remaining.discard(data["id"])
                yield data, received
                if not remaining:
                    return


async def _await_terminal(
    client: httpx.AsyncClient, run_ids: list[str], failed: list[str] | None = None
) -> None:
    """Wait until every run is terminal; failures go to ``failed`` (else raise)."""
    async for data, _ in _terminal_events(client, run_ids):
        if data["status"] != "completed":
            if failed is None:
                raise RuntimeError(f"run {data['id']} ended {data['status']}: {data}")
            failed.append(str(data["id"]))


async def _explain(client: httpx.AsyncClient, run_ids: list[str]) -> str:
    """The error and log lines of the first failed run (printed, so a failure is visible)."""
    if not run_ids:
        return ""
    run = (await client.get(f"/v1/task-runs/{run_ids[0]}")).json()
    logs = (await client.get("/v1/logs", params={"taskRun": run_ids[0]})).json()
    lines = [str(entry.get("message", "")) for entry in logs.get("logs", [])]
    text = f"{len(run_ids)} failed; first: {run.get('error')}\n" + "\n".join(lines[-20:])
    print(text, file=sys.stderr)
    return f"{len(run_ids)} failed"


async def _end_to_end(client: httpx.AsyncClient, n: int) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        run_id = await _create(client, "noop", [i])
        await _await_terminal(client, [run_id])
        samples.append(time.perf_counter() - started)
    return samples


async def _throughput(
    client: httpx.AsyncClient, n: int, failed: list[str], concurrency: int = 32
) -> float:
    """Runs per second: ``n`` trivial runs created by ``concurrency`` workers, all terminal."""
    batch = 100
    queue = list(range(n))
    watchers: list[asyncio.Task[None]] = []
    pending: list[str] = []

    async def worker() -> None:
        while queue:
            i = queue.pop()
            pending.append(await _create(client, "noop", [i]))
            if len(pending) >= batch:
                ids = pending[:batch]
                del pending[:batch]
                watchers.append(asyncio.ensure_future(_await_terminal(client, ids, failed)))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if pending:
        watchers.append(asyncio.ensure_future(_await_terminal(client, list(pending), failed)))
    await asyncio.gather(*watchers)
    return n / (time.perf_counter() - started)


async def _fan_out(client: httpx.AsyncClient, n: int) -> float:
    started = time.perf_counter()
    run_id = await _create(client, "fan", [n])
    async for data, _ in _terminal_events(client, [run_id]):
        if data["status"] != "completed":
            raise RuntimeError(f"fan-out of {n} ended {data['status']}")
    return time.perf_counter() - started


async def _sse_delay(client: httpx.AsyncClient, n: int) -> list[float]:
    """Receipt of ``task.completed`` minus ``completedAt``, for runs that end while watched."""
    samples = []
    for _ in range(n):
        run_id = await _create(client, "slow", [0.2])
        async for data, received in _terminal_events(client, [run_id]):
            completed = datetime.datetime.fromisoformat(
                str(data["completedAt"]).replace("Z", "+00:00")
            )
            samples.append(received - completed.timestamp())
    return samples


async def _server_figures(workdir: Path, *, warm: bool, quick: bool) -> dict[str, float]:
    figures: dict[str, float] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    timeout = httpx.Timeout(120.0)
    with _server(workdir, warm=warm) as (url, pid):
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
            await _end_to_end(client, 3)  # warm up the server, the zygote and the client
            raw = await _raw_end_to_end(url, 15 if quick else 50)
            figures["raw_p50"] = statistics.median(raw)
            figures["raw_p90"] = percentile(raw, 90)
            e2e = await _end_to_end(client, 15 if quick else 50)
            figures["e2e_p50"] = statistics.median(e2e)
            figures["e2e_p90"] = percentile(e2e, 90)
            failed: list[str] = []
            n = 200 if quick else 1000
            meter = _CpuMeter(pid)
            client_cpu = time.process_time()
            figures["throughput"] = await _throughput(client, n, failed)
            figures["client_cpu"] = (time.process_time() - client_cpu) / n
            figures["server_cpu"], figures["runner_cpu"] = meter.per_run(n)
            figures["throughput_failed"] = len(failed)
            await _explain(client, failed)
            figures["raw_throughput"], figures["raw_client_cpu"] = await _raw_throughput(url, n)
            fan_n = FAN_OUT if warm else SPAWN_FAN_OUT
            figures["fan_out"] = await _fan_out(client, fan_n)
            delays = await _sse_delay(client, 5 if quick else 15)
            figures["sse_p50"] = statistics.median(delays)
            figures["sse_max"] = max(delays)
    return figures


#: Subtasks of the fan-out row; the spawn baseline uses fewer (one interpreter each
#: would need ~40 MB x N of memory at once).
FAN_OUT = 1000
SPAWN_FAN_OUT = 100


async def _server_rows(workdir: Path, quick: bool) -> list[Row]:
    (workdir / "tasks.py").write_text(WORKFLOWS_APP)
    warm = await _server_figures(workdir, warm=True, quick=quick)
    cold = await _server_figures(workdir, warm=False, quick=quick)
    load = f"load avg {os.getloadavg()[0]:.1f}"
    return [
        Row(
            GROUP_SERVER,
            "POST → task.completed, p50, raw HTTP client (target ≤ 15 ms)",
            warm["raw_p50"],
            baseline=cold["raw_p50"],
            baseline_name=SPAWN,
            note=f"p90 {warm['raw_p90'] * 1e3:.1f} ms vs {cold['raw_p90'] * 1e3:.1f} ms; {load}",
        ),
        Row(
            GROUP_SERVER,
            "POST → task.completed, p50, httpx + httpx-sse client",
            warm["e2e_p50"],
            baseline=cold["e2e_p50"],
            baseline_name=SPAWN,
            note=f"p90 {warm['e2e_p90'] * 1e3:.1f} ms vs {cold['e2e_p90'] * 1e3:.1f} ms",
        ),
        Row(
            GROUP_SERVER,
            "trivial runs/s, 32 concurrent clients (target ≥ 200)",
            warm["throughput"],
            unit="runs/s",
            baseline=cold["throughput"],
            baseline_name=SPAWN,
            higher_is_better=True,
            note=f"2 cores shared by server, runners and client; failed runs: "
            f"{warm['throughput_failed']:.0f} vs {cold['throughput_failed']:.0f}",
        ),
        Row(
            GROUP_SERVER,
            "trivial runs/s, 32 concurrent raw HTTP clients (target ≥ 200)",
            warm["raw_throughput"],
            unit="runs/s",
            baseline=cold["raw_throughput"],
            baseline_name=SPAWN,
            higher_is_better=True,
            note=f"client CPU {warm['raw_client_cpu'] * 1e3:.2f} ms/run (httpx: "
            f"{warm['client_cpu'] * 1e3:.2f})",
        ),
        Row(
            GROUP_SERVER,
            "runs/s ceiling of 2 idle cores (2 s / CPU per run)",
            2 / (warm["runner_cpu"] + warm["server_cpu"] + warm["client_cpu"]),
            unit="runs/s",
            baseline=2 / (cold["runner_cpu"] + cold["server_cpu"] + cold["client_cpu"]),
            baseline_name=SPAWN,
            higher_is_better=True,
            note=f"task process + server + httpx client CPU; client "
            f"{warm['client_cpu'] * 1e3:.2f} ms/run",
        ),
        Row(
            GROUP_SERVER,
            "task process CPU per trivial run",
            warm["runner_cpu"],
            baseline=cold["runner_cpu"],
            baseline_name=SPAWN,
            note="forked child (reaped by the zygote) vs a fresh interpreter",
        ),
        Row(
            GROUP_SERVER,
            "server process CPU per trivial run",
            warm["server_cpu"],
            baseline=cold["server_cpu"],
            baseline_name=SPAWN,
            note="REST + SSE + task socket + SQLite + launcher",
        ),
        Row(
            GROUP_SERVER,
            f"fan-out of {FAN_OUT} subtasks, POST → completed",
            warm["fan_out"],
            baseline=cold["fan_out"] * FAN_OUT / SPAWN_FAN_OUT,
            baseline_name=f"{SPAWN}, {SPAWN_FAN_OUT} subtasks x{FAN_OUT // SPAWN_FAN_OUT}",
            note=f"spawn measured {cold['fan_out']:.2f} s for {SPAWN_FAN_OUT}",
        ),
        Row(
            GROUP_SERVER,
            "task.completed receipt - completedAt, p50 (target ≤ 10 ms)",
            warm["sse_p50"],
            baseline=cold["sse_p50"],
            baseline_name=SPAWN,
            note=f"max {warm['sse_max'] * 1e3:.1f} ms vs {cold['sse_max'] * 1e3:.1f} ms",
        ),
    ]


async def _all(quick: bool) -> list[Row]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-devserver-"))
    try:
        rows = await _launcher_rows(workdir, 10 if quick else 40)
        rows += await _server_rows(workdir, quick)
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(quick: bool) -> list[Row]:
    """Launcher and end-to-end rows, warm fork against spawning."""
    return asyncio.run(_all(quick))

"""The concurrency limit on running attempts, fd limits and accept() error reporting.

End to end: a real server subprocess whose RLIMIT_NOFILE (soft and hard) is lowered in
the child, so that it cannot raise it, runs a 1,000-subtask fan-out; units cover the
gate, the default limit and the accept() error filter.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import APP, start_run, wait_terminal

from render_sdk.devserver._constants import (
    ATTEMPTS_PER_CPU,
    FD_RESERVE,
    FDS_PER_ATTEMPT,
    LISTENING_PREFIX,
    MIN_CONCURRENCY,
)
from render_sdk.devserver._limits import (
    AcceptErrorFilter,
    AttemptGate,
    default_concurrency,
)
from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]

#: The fd limit the server runs under (soft = hard: it cannot raise it).
LOW_NOFILE = 1024
FAN_OUT = 1000


class _LowFdServer:
    """``render-workflows dev`` started with RLIMIT_NOFILE lowered to LOW_NOFILE (both)."""

    def __init__(self, cwd: Path, *extra: str) -> None:
        argv = LocalServer(
            "tasks:app", cwd=cwd, state_dir=cwd / "state", extra_args=["--no-reload", *extra]
        ).argv()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            preexec_fn=_lower_nofile,
        )
        self.lines: list[str] = []
        self.url = ""
        listening = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = raw.rstrip("\n")
                self.lines.append(line)
                if line.startswith(LISTENING_PREFIX):
                    self.url = line[len(LISTENING_PREFIX) :]
                    listening.set()
            listening.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        assert listening.wait(60), "no output within 60 s"
        assert self.url, "\n".join(self.lines)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, LOW_NOFILE))


@pytest.fixture
def low_fd_server(tmp_path: Path) -> Iterator[Callable[..., _LowFdServer]]:
    (tmp_path / "tasks.py").write_text(APP)
    servers: list[_LowFdServer] = []

    def make(*extra: str) -> _LowFdServer:
        servers.append(_LowFdServer(tmp_path, *extra))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def _storm_free(lines: list[str]) -> list[str]:
    """The lines after startup that are not per-run status lines (those are one per event)."""
    assert not [line for line in lines if "Traceback" in line], "\n".join(lines[-50:])
    start = next(i for i, line in enumerate(lines) if line.startswith(LISTENING_PREFIX))
    return [line for line in lines[start:] if not line.startswith("  Task ")]


def test_fan_out_of_1000_completes_at_ulimit_1024(
    low_fd_server: Callable[..., _LowFdServer],
) -> None:
    server = low_fd_server()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run = wait_terminal(c, start_run(c, "fan", [FAN_OUT]), 120)
    server.stop()
    assert run["status"] == "completed", run.get("error")
    assert run["results"] == [sum(i * i for i in range(FAN_OUT))]
    completed = [ln for ln in server.lines if "Task completed:" in ln and "(square)" in ln]
    assert len(completed) == FAN_OUT, "every child completed, none failed or retried"
    assert not [ln for ln in server.lines if "Too many open files" in ln]
    others = _storm_free(server.lines)
    assert len(others) < 10, "\n".join(others)


def test_runs_beyond_the_limit_wait_in_pending(make_server: MakeServer) -> None:
    server = make_server(max_concurrency=1)
    assert server.argv().count("--max-concurrency") == 1
    with httpx.Client(base_url=server.url, timeout=30) as c:
        ids = [start_run(c, "sleepy", [0.5]) for _ in range(3)]
        most_running = 0
        seen_pending_while_running = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [c.get(f"/v1/task-runs/{i}").json()["status"] for i in ids]
            most_running = max(most_running, statuses.count("running"))
            if "running" in statuses and "pending" in statuses:
                seen_pending_while_running = True
            if all(s == "completed" for s in statuses):
                break
            time.sleep(0.05)
        runs = [wait_terminal(c, i) for i in ids]
    assert all(r["status"] == "completed" for r in runs)
    # The attempts ran one after another (the polls above are not one atomic snapshot).
    spans = sorted((a["startedAt"], a["completedAt"]) for r in runs for a in r["attempts"])
    assert len(spans) == 3
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))
    assert most_running >= 1
    assert seen_pending_while_running


def test_a_parent_holding_the_only_slot_still_gets_its_subtasks(
    make_server: MakeServer,
) -> None:
    server = make_server(max_concurrency=1)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        fan = wait_terminal(c, start_run(c, "fan", [3]), 60)
        chain = wait_terminal(c, start_run(c, "chain", [2]), 60)
    assert (fan["status"], fan["results"]) == ("completed", [0 + 1 + 4])
    assert (chain["status"], chain["results"]) == ("completed", [16])


def test_bad_max_concurrency_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LocalServer("tasks:app", max_concurrency=0)
    proc = subprocess.run(
        [sys.executable, "-m", "render_sdk.devserver", "--max-concurrency", "0", "tasks:app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--max-concurrency must be at least 1, got 0" in proc.stderr
    assert not (tmp_path / ".render").exists(), "nothing was started"


# --------------------------------------------------------------------------- units


def test_default_concurrency_follows_fds_and_cpus() -> None:
    assert default_concurrency(nofile=1024, cpus=2) == min(
        (1024 - FD_RESERVE) // FDS_PER_ATTEMPT, 2 * ATTEMPTS_PER_CPU
    )
    assert default_concurrency(nofile=1024, cpus=64) == (1024 - FD_RESERVE) // FDS_PER_ATTEMPT
    assert default_concurrency(nofile=1 << 20, cpus=2) == 2 * ATTEMPTS_PER_CPU
    assert default_concurrency(nofile=FD_RESERVE, cpus=8) == MIN_CONCURRENCY
    assert default_concurrency() >= MIN_CONCURRENCY


def test_raise_nofile_limit_raises_soft_to_hard_where_allowed() -> None:
    # In a child: this process's limits stay as they are.
    code = textwrap.dedent(
        """
        import resource
        from render_sdk.devserver._limits import raise_nofile_limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 2048))
        print(raise_nofile_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))
        print(raise_nofile_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        print(raise_nofile_limit(target=100), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["2048", "2048", "512", "512", "512", "512"]


def test_gate_admits_up_to_the_limit_in_order_and_withdraws() -> None:
    async def scenario() -> list[Any]:
        gate = AttemptGate(2)
        assert await gate.acquire("a")
        assert await gate.acquire("b")
        order: list[str] = []

        async def wait(run_id: str) -> bool:
            ok = await gate.acquire(run_id)
            order.append(run_id)
            return ok

        c, d, e = (asyncio.ensure_future(wait(x)) for x in "cde")
        await asyncio.sleep(0)
        assert (gate.running, gate.waiting) == (2, 3)
        gate.withdraw("d")  # canceled while pending
        gate.release()
        results = [await c, await d]
        assert not e.done()
        gate.release()
        results.append(await e)
        return [results, [x for x in order if x != "d"], gate.running]

    # c (first in line) got the first free slot, e the next one; d gave up its wait.
    assert asyncio.run(scenario()) == [[True, False, True], ["c", "e"], 2]


def test_gate_admits_beyond_the_limit_when_every_runner_waits_for_subtasks() -> None:
    async def scenario() -> tuple[bool, int]:
        gate = AttemptGate(1)
        parent = object()
        assert await gate.acquire("parent")
        child = asyncio.ensure_future(gate.acquire("child"))
        await asyncio.sleep(0)
        assert not child.done()
        gate.blocked(parent, +1)  # the parent now long-polls for its child
        admitted = await child
        gate.blocked(parent, -1)
        return admitted, gate.running

    assert asyncio.run(scenario()) == (True, 2)
    with pytest.raises(ValueError, match="at least 1"):
        AttemptGate(0)


def test_gate_frees_a_slot_granted_to_a_cancelled_waiter() -> None:
    async def scenario() -> int:
        gate = AttemptGate(1)
        assert await gate.acquire("a")
        waiter = asyncio.ensure_future(gate.acquire("b"))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.release()
        return gate.running

    assert asyncio.run(scenario()) == 0


def test_accept_error_filter_folds_repeats_and_passes_the_rest() -> None:
    now = [0.0]
    logged: list[str] = []
    passed: list[dict[str, Any]] = []
    flt = AcceptErrorFilter(interval=10.0, clock=lambda: now[0], log=logged.append)
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _loop, ctx: passed.append(ctx))
        flt.install(loop)
        err = OSError(24, "Too many open files")
        for _ in range(1000):
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": err}
            )
        now[0] = 10.5
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": err}
        )
        loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    assert logged == [
        "accept() failed, retrying: [Errno 24] Too many open files",
        "accept() failed, retrying: [Errno 24] Too many open files "
        "(999 more since the last report)",
    ]
    assert passed == [{"message": "something else"}]

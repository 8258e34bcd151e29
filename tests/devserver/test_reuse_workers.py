"""``--reuse-workers``: warm workers run many attempts in turn, and are replaced by the rules.

Real servers, real forked workers: a module global counts the runs a process has served,
and each task returns its pid, so reuse (and its absence) is observed, not inferred. The
behaviour tests of ``test_api`` (retries, timeouts, cancel, crash recovery) run again here
against a server in reuse mode (``test_reuse_compat`` does the same for the official SDK
clients).
"""

from __future__ import annotations

import contextlib
import os
import signal
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal
from test_api import (  # the same behaviour, now with reused workers
    test_cancel_cascades_to_child_waiting_for_retry,
    test_cancel_running_run_and_cascade,
    test_final_failure_is_terminal_once,
    test_process_exit_without_callback_fails_and_retries,
    test_retries_same_run_every_attempt_recorded,
    test_timeout_kills_the_attempt,
)

from render_sdk.testing import LocalServer

__all__ = [
    "test_cancel_cascades_to_child_waiting_for_retry",
    "test_cancel_running_run_and_cascade",
    "test_final_failure_is_terminal_once",
    "test_process_exit_without_callback_fails_and_retries",
    "test_retries_same_run_every_attempt_recorded",
    "test_timeout_kills_the_attempt",
]

REUSE_APP = """
import asyncio, os, signal, subprocess, sys, threading, time
from render_sdk import Retry, Workflows

app = Workflows()
SERVED = 0

@app.task
def served() -> list:
    global SERVED
    SERVED += 1
    return [os.getpid(), SERVED]

@app.task
async def aserved() -> list:
    global SERVED
    SERVED += 1
    await asyncio.sleep(0)
    return [os.getpid(), SERVED]

@app.task
def fails() -> None:
    raise ValueError("a task error is not a crash")

@app.task(retry=Retry(max_retries=1, wait_duration_ms=10))
def dies_once(marker: str, how: str) -> list:
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        if how == "exit":
            os._exit(5)
        os.kill(os.getpid(), signal.SIGKILL)
    return [os.getpid()]

@app.task(timeout_seconds=1)
def hangs() -> None:
    time.sleep(60)

@app.task
def leaves_a_subprocess() -> list:
    # Not waited for: it outlives the attempt, holding the attempt's stdout and stderr.
    sleeper = subprocess.Popen(["sleep", "60"])
    return [os.getpid(), sleeper.pid]

@app.task
def leaves_a_daemon() -> list:
    # In a session of its own: the process group kill misses it.
    daemon = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return [os.getpid(), daemon.pid]

@app.task
def leaves_an_orphan(new_session: bool) -> list:
    # A double fork: the middle process exits, so the grandchild is nobody's child here.
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            if new_session:
                os.setsid()
            os.write(write_end, str(os.getpid()).encode())
            time.sleep(60)
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    grandchild = int(os.read(read_end, 32))
    os.close(read_end)
    return [os.getpid(), grandchild]

PROBE = r'''
import os, socket, sys, time
shared = sys.argv[1]
path_file = os.path.join(shared, "socket_path")
deadline = time.monotonic() + 60
while not os.path.exists(path_file) and time.monotonic() < deadline:
    time.sleep(0.05)
with socket.socket(socket.AF_UNIX) as s:
    s.connect(open(path_file).read())
    s.sendall(b"GET /input HTTP/1.1\\r\\nHost: task\\r\\nConnection: close\\r\\n\\r\\n")
    answer = s.recv(64).split(b"\\r\\n")[0]
with open(os.path.join(shared, "answer.tmp"), "wb") as f:
    f.write(answer)
os.rename(os.path.join(shared, "answer.tmp"), os.path.join(shared, "answer"))
'''

@app.task
def leaves_a_probe(shared: str) -> list:
    # Outlives its start in a session of its own, then knocks on the next start's socket.
    probe = subprocess.Popen([sys.executable, "-c", PROBE, shared], start_new_session=True)
    return [os.getpid(), probe.pid]

@app.task
def reports_its_socket(shared: str) -> str:
    with open(os.path.join(shared, "socket_path.tmp"), "w") as f:
        f.write(os.environ["RENDER_SDK_SOCKET_PATH"])
    os.rename(os.path.join(shared, "socket_path.tmp"), os.path.join(shared, "socket_path"))
    answer = os.path.join(shared, "answer")
    deadline = time.monotonic() + 60
    while not os.path.exists(answer) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(answer) as f:
        return f.read()

@app.task
def leaves_a_thread() -> list:
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
    return [os.getpid()]

@app.task
def hangs_until_canceled(marker: str) -> None:
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
"""

MakeServer = Callable[..., LocalServer]


@pytest.fixture(scope="module")
def server(shared_dir: Path) -> Iterator[LocalServer]:
    """The shared server of the imported behaviour tests, in reuse mode."""
    with LocalServer(
        app="tasks:app", cwd=shared_dir, state_dir=".reuse", reuse_workers=True
    ) as srv:
        yield srv


@pytest.fixture
def reuse_dir(app_dir: Path) -> Path:
    (app_dir / "reuse_app.py").write_text(textwrap.dedent(REUSE_APP))
    return app_dir


def _run(c: httpx.Client, task: str, input: Any = ()) -> dict[str, Any]:
    done = wait_terminal(c, start_run(c, task, list(input)))
    assert done["status"] == "completed", done
    return done


def _served(c: httpx.Client, task: str = "served") -> tuple[int, int]:
    pid, count = _run(c, task)["results"]
    return int(pid), int(count)


def _assert_replaced(c: httpx.Client, worker: int) -> None:
    """The next attempt runs in a fresh worker, not in ``worker``."""
    after, count = _served(c)
    assert after != worker
    assert count == 1


def test_attempts_reuse_a_worker_and_module_state_persists(
    make_server: MakeServer, reuse_dir: Path
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    assert any("Reusing workers" in line for line in server.output)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        seen = [_served(c) for _ in range(3)] + [_served(c, "aserved") for _ in range(2)]
        # A task error is a failed run, not a broken worker: the worker stays.
        assert wait_terminal(c, start_run(c, "fails", []))["status"] == "failed"
        seen.append(_served(c))
    assert {pid for pid, _ in seen} == {seen[0][0]}
    assert [count for _, count in seen] == [1, 2, 3, 4, 5, 6]


def test_default_mode_never_reuses_a_process(make_server: MakeServer, reuse_dir: Path) -> None:
    server = make_server(app="reuse_app:app")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        seen = [_served(c) for _ in range(3)] + [_served(c, "aserved") for _ in range(2)]
    assert len({pid for pid, _ in seen}) == len(seen)
    assert [count for _, count in seen] == [1] * len(seen)


def test_a_worker_is_replaced_after_max_attempts(make_server: MakeServer, reuse_dir: Path) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True, max_attempts_per_worker=2)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        seen = [_served(c) for _ in range(5)]
    pids = [pid for pid, _ in seen]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert len(set(pids)) == 3
    assert [count for _, count in seen] == [1, 2, 1, 2, 1]


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_crashed_worker_is_replaced_and_the_run_retried(
    make_server: MakeServer, reuse_dir: Path, tmp_path: Path, how: str
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    marker = tmp_path / f"died-{how}"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        warm_pid, _ = _served(c)
        done = _run(c, "dies_once", [str(marker), how])
        crashed = int(marker.read_text())
        assert crashed == warm_pid  # the crash happened in the reused worker
        expected = "exit status 5" if how == "exit" else f"killed by signal {signal.SIGKILL}"
        assert [a["status"] for a in done["attempts"]] == ["failed", "completed"]
        assert expected in done["attempts"][0]["error"]
        (retried_pid,) = done["results"]
        assert retried_pid != crashed
        after, count = _served(c)
    assert after == retried_pid  # the replacement serves on (its first `served`)
    assert count == 1
    _assert_gone(crashed)


def test_a_timed_out_attempts_worker_is_replaced(make_server: MakeServer, reuse_dir: Path) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first, _ = _served(c)
        done = wait_terminal(c, start_run(c, "hangs", []))
        assert done["status"] == "failed"
        assert "timed out after 1 seconds" in done["error"]
        _assert_replaced(c, first)
    _assert_gone(first)


def test_a_canceled_attempts_worker_is_replaced(
    make_server: MakeServer, reuse_dir: Path, tmp_path: Path
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    marker = tmp_path / "hanging"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first, _ = _served(c)
        run_id = start_run(c, "hangs_until_canceled", [str(marker)])
        wait_status(c, run_id, "running")
        deadline = time.monotonic() + 30
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert int(marker.read_text()) == first
        assert c.delete(f"/v1/task-runs/{run_id}").status_code == 204
        assert wait_terminal(c, run_id)["status"] == "canceled"
        _assert_replaced(c, first)
    _assert_gone(first)


def test_a_reload_gives_new_workers(make_server: MakeServer, reuse_dir: Path) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        old, _ = _served(c)
        assert _served(c)[0] == old
        source = reuse_dir / "reuse_app.py"
        source.write_text(source.read_text() + "\nVERSION = 2\n")
        server.wait_for_output(r"^Reloaded: \d+ task\(s\)", timeout=30)
        new, count = _served(c)
        assert new != old
        assert count == 1
        assert _served(c) == (new, 2)
    _assert_gone(old)


def test_reuse_workers_needs_warm_workers(app_dir: Path) -> None:
    with pytest.raises(ValueError, match="reuse_workers needs warm=True"):
        LocalServer(app="tasks:app", cwd=app_dir, reuse_workers=True, warm=False)
    with pytest.raises(ValueError, match="max_attempts_per_worker must be at least 1"):
        LocalServer(app="tasks:app", cwd=app_dir, reuse_workers=True, max_attempts_per_worker=0)


def _assert_gone(pid: int, timeout: float = 30.0) -> None:
    """The replaced worker exits (it is killed or retired, never left behind)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return  # exited; its parent (the zygote) reaps it
        except OSError:
            return
        assert time.monotonic() < deadline, f"worker {pid} is still alive"
        time.sleep(0.05)


def test_cli_refuses_reuse_without_warm_workers(app_dir: Path) -> None:
    from test_lifecycle import _dev

    proc = _dev(["--reuse-workers", "--no-warm", "tasks:app"], app_dir)
    assert proc.returncode == 2
    assert "--reuse-workers needs warm workers" in proc.stderr
    proc = _dev(["--reuse-workers", "--max-attempts-per-worker", "0", "tasks:app"], app_dir)
    assert proc.returncode == 2
    assert "--max-attempts-per-worker must be at least 1, got 0" in proc.stderr


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _wait_fds_back_to(pid: int, baseline: int, timeout: float = 30.0) -> None:
    """``pid`` holds no more descriptors than ``baseline`` (closed pipes, within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while _open_fds(pid) > baseline:
        assert time.monotonic() < deadline, (_open_fds(pid), baseline)
        time.sleep(0.1)


@contextlib.contextmanager
def _killed_at_end() -> Iterator[list[int]]:
    """Pids appended to the list are SIGKILLed at the end: leftovers never outlive a test."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_that_leaves_a_subprocess_is_replaced_and_the_subprocess_killed(
    make_server: MakeServer, reuse_dir: Path
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    assert server.pid is not None
    with httpx.Client(base_url=server.url, timeout=30) as c:
        warm, _ = _served(c)
        baseline = _open_fds(server.pid)
        sleepers = []
        for _ in range(3):
            worker, sleeper = _run(c, "leaves_a_subprocess")["results"]
            sleepers.append(sleeper)
            # The next attempt never shares a process (or a session) with the leftover.
            _assert_replaced(c, worker)
        assert worker != warm
        for sleeper in sleepers:
            _assert_gone(sleeper)
        # The attempts' output pipes are closed: no descriptor outlives its attempt.
        _wait_fds_back_to(server.pid, baseline)


@pytest.mark.parametrize("new_session", [False, True], ids=["same-session", "own-session"])
def test_a_worker_that_leaves_an_orphaned_grandchild_is_replaced(
    make_server: MakeServer, reuse_dir: Path, new_session: bool
) -> None:
    # The worker is a subreaper: a double-forked leftover becomes its child and is seen,
    # even one that left the worker's session.
    server = make_server(app="reuse_app:app", reuse_workers=True)
    with _killed_at_end() as leftovers, httpx.Client(base_url=server.url, timeout=30) as c:
        _served(c)
        worker, grandchild = _run(c, "leaves_an_orphan", [new_session])["results"]
        leftovers.append(grandchild)
        _assert_replaced(c, worker)
        _assert_gone(worker)


def test_a_worker_that_leaves_a_thread_is_replaced(
    make_server: MakeServer, reuse_dir: Path
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        _served(c)
        (worker,) = _run(c, "leaves_a_thread")["results"]
        _assert_replaced(c, worker)
        _assert_gone(worker)


@pytest.mark.parametrize("reuse", [True, False])
def test_a_leftover_that_escaped_the_kill_does_not_hold_the_servers_pipes(
    make_server: MakeServer, reuse_dir: Path, reuse: bool
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=reuse)
    assert server.pid is not None
    with _killed_at_end() as daemons, httpx.Client(base_url=server.url, timeout=30) as c:
        _served(c)
        baseline = _open_fds(server.pid)
        for _ in range(3):
            daemons.append(_run(c, "leaves_a_daemon")["results"][1])
        _served(c)
        _wait_fds_back_to(server.pid, baseline)


def test_a_leftover_of_one_start_cannot_use_the_next_starts_socket(
    make_server: MakeServer, reuse_dir: Path, tmp_path: Path
) -> None:
    server = make_server(app="reuse_app:app", reuse_workers=True)
    with _killed_at_end() as probes, httpx.Client(base_url=server.url, timeout=60) as c:
        _served(c)
        probes.append(_run(c, "leaves_a_probe", [str(tmp_path)])["results"][1])
        (answer,) = _run(c, "reports_its_socket", [str(tmp_path)])["results"]
        assert answer.startswith("HTTP/1.1 403"), answer

"""The client against the real local task server (a subprocess, real task processes).

One server serves the whole module; each test starts its own runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import socket
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from render_sdk import Render, RenderSync
from render_sdk.client import ListTaskRunsParams
from render_sdk.client._cli import main as cli_main
from render_sdk.client.errors import ClientError, ServerError, TaskRunError, TimeoutError
from render_sdk.testing import LocalServer

TASKS = textwrap.dedent(
    '''
    import time

    from render_sdk import Retry, Workflows

    app = Workflows(default_retry=Retry(max_retries=0, wait_duration_ms=100))


    @app.task(name="my-task")
    def my_task(a: int, b: int = 0) -> int:
        """Sleeps a little, so that a run can be canceled or streamed."""
        time.sleep(0.4 * a)
        return a * a + b * b


    @app.task
    def square(a: int) -> int:
        return a * a


    @app.task
    def echo(value: object) -> object:
        print(f"echo says {value!r}", flush=True)
        return value


    @app.task
    def fail(message: str) -> None:
        raise ValueError(message)


    @app.task
    def sleepy(seconds: float) -> float:
        time.sleep(seconds)
        return seconds
    '''
)

SLUG = "my-workflow"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    root = tmp_path_factory.mktemp("client_app")
    (root / "tasks.py").write_text(TASKS)
    with LocalServer(app="tasks:app", cwd=root, state_dir=root / "state") as srv:
        yield srv


@pytest.fixture
def local_env(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    return server


# --------------------------------------------------------------------------- the seed README


README_RUNNING_TASKS = """
import asyncio
from render_sdk import Render
from render_sdk.client import ListTaskRunsParams
from render_sdk.client.errors import RenderError, TaskRunError

async def main():
    render = Render()  # Uses RENDER_API_KEY from environment

    # run_task() starts a task and returns an awaitable handle.
    # The first await starts the task; the second await waits for completion.
    task_run = await render.workflows.run_task("my-workflow/my-task", [3, 4])
    print(f"Task started: {task_run.id}")

    # Wait for the result
    try:
        result = await task_run
        print(result.results)
    except TaskRunError as e:
        print(f"Task failed: {e}")

    # Get task run details by ID
    details = await render.workflows.get_task_run(task_run.id)
    print(f"Status: {details.status}")

    # Cancel a running task
    task_run2 = await render.workflows.run_task("my-workflow/my-task", [5])
    await render.workflows.cancel_task_run(task_run2.id)

    # Stream task run events
    task_run3 = await render.workflows.run_task("my-workflow/my-task", [6])
    async for event in render.workflows.task_run_events([task_run3.id]):
        print(f"{event.id} status={event.status}")
        if event.error:
            print(f"Error: {event.error}")

    # List recent task runs
    runs = await render.workflows.list_task_runs(ListTaskRunsParams(limit=10))

asyncio.run(main())
"""


def test_readme_running_tasks_sample_runs_unchanged(
    local_env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    exec(compile(README_RUNNING_TASKS, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 4, out
    assert re.fullmatch(r"Task started: trn-\w+", out[0])
    assert out[1] == "[25]"
    # Statuses print as the wire spells them, like render_sdk 0.4.0's str enum.
    assert out[2] == "Status: completed"
    # One line per event of the third run (progress events, if any, then the final one).
    assert all(re.fullmatch(r"trn-\w+ status=(pending|running|completed)", x) for x in out[3:])
    assert re.fullmatch(r"trn-\w+ status=completed", out[-1])
    # The second run (input [5]) was canceled while it ran.
    with RenderSync() as render:
        runs = [render.workflows.get_task_run(run.id) for run in render.workflows.list_task_runs()]
    assert [run.status_text for run in runs if run.input == [5]] == ["canceled"]


# --------------------------------------------------------------------------- async client


async def test_run_wait_get_list(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/square", [7])
        assert handle.id.startswith("trn-")
        assert handle.status in {"pending", "running"}
        details = await handle
        assert details.results == [49]
        assert details.input == [7]
        assert details.status_text == "completed"
        assert details.is_terminal
        fetched = await render.workflows.get_task_run(handle.id)
        assert fetched.results == [49]
        runs = await render.workflows.list_task_runs()
        assert handle.id in {run.id for run in runs}
        every = [run.id async for run in render.workflows.iter_task_runs()]
        assert handle.id in every
        only_square = await render.workflows.list_task_runs(ListTaskRunsParams(task_slug="square"))
        assert handle.id in {run.id for run in only_square}


async def test_keyword_input_and_unicode(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/echo", {"value": {"ü": [1, 2**60]}})
        details = await handle
        assert details.results == [{"ü": [1, 2**60]}]
        assert details.input == {"value": {"ü": [1, 2**60]}}


async def test_failed_run_raises_even_when_already_finished(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/fail", ["kaboom"])
        with pytest.raises(TaskRunError) as info:
            await handle
        assert info.value.task_run_id == handle.id
        assert info.value.status == "failed"
        assert "kaboom" in (info.value.details or "")
        # A fresh handle-less wait on the finished run raises the same way.
        with pytest.raises(TaskRunError, match="kaboom"):
            await render.workflows.wait_for_task_run(handle.id)


async def test_canceled_run_raises(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/sleepy", [30])
        await render.workflows.cancel_task_run(handle.id)
        with pytest.raises(TaskRunError) as info:
            await handle.wait(timeout=30)
        assert info.value.status == "canceled"
        # Canceling again is refused by the server with a clear error.
        with pytest.raises(ClientError) as refused:
            await render.workflows.cancel_task_run(handle.id)
        assert refused.value.status_code in {404, 409}


async def test_events_for_several_runs(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        done = await render.workflows.run_task(f"{SLUG}/square", [2])
        await done
        later = await render.workflows.run_task(f"{SLUG}/my-task", [1])
        failing = await render.workflows.run_task(f"{SLUG}/fail", ["nope"])
        ids = [done.id, later.id, failing.id]
        finals = {}
        async for event in render.workflows.task_run_events(ids, timeout=60):
            assert event.id in ids
            if event.is_terminal:
                finals[event.id] = event
        assert set(finals) == set(ids)
        assert finals[done.id].results == [4]
        assert finals[later.id].results == [1]
        assert finals[failing.id].status_text == "failed"
        assert "nope" in (finals[failing.id].error or "")


async def test_wait_timeout(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/sleepy", [20])
        with pytest.raises(TimeoutError, match=handle.id):
            await handle.wait(timeout=0.5)
        await render.workflows.cancel_task_run(handle.id)


async def test_abandoned_waits_leak_no_connection(server: LocalServer) -> None:
    # Each timed-out wait abandons its event stream mid-read; more of them than the
    # client's connection pool holds (100) must leave the pool usable.
    async with Render(base_url=server.url) as render:
        handle = await render.workflows.run_task(f"{SLUG}/sleepy", [120])
        try:
            for _ in range(150):
                with pytest.raises(TimeoutError):
                    await handle.wait(timeout=0.05)
            details = await asyncio.wait_for(render.workflows.get_task_run(handle.id), 20)
            assert details.id == handle.id
        finally:
            await render.workflows.cancel_task_run(handle.id)


async def test_unknown_task_and_run(server: LocalServer) -> None:
    async with Render(base_url=server.url) as render:
        with pytest.raises(ClientError) as info:
            await render.workflows.run_task(f"{SLUG}/no_such_task", [])
        assert info.value.status_code == 404
        assert "no_such_task" in str(info.value)
        with pytest.raises(ClientError) as info:
            await render.workflows.get_task_run("trn-doesnotexist")
        assert info.value.status_code == 404


def test_one_client_across_event_loops(server: LocalServer) -> None:
    render = Render(base_url=server.url)

    async def once(n: int) -> list[object] | None:
        return (await (await render.workflows.run_task(f"{SLUG}/square", [n]))).results

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asyncio.run(once(3)) == [9]
        assert asyncio.run(once(4)) == [16]
        asyncio.run(render.aclose())


async def test_server_down_is_server_error(server: LocalServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Render(base_url=f"http://127.0.0.1:{port}", max_retries=0) as render:
        with pytest.raises(ServerError, match="network error"):
            await render.workflows.get_task_run("trn-x")


# --------------------------------------------------------------------------- a dropped stream


class DroppingProxy:
    """A loopback TCP proxy that cuts the first event-stream connection as soon as
    ``cut_when(response bytes so far)`` holds, and records each event request."""

    def __init__(self, target_port: int, cut_when: Callable[[bytes], bool]) -> None:
        self.target_port = target_port
        self.cut_when = cut_when
        self.event_requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        armed = threading.Event()  # the next response on this connection gets cut

        def pump_up() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if data.startswith(b"GET /v1/task-runs/events"):
                        if not self.event_requests:
                            armed.set()
                        self.event_requests.append(data)
                    upstream.sendall(data)

        threading.Thread(target=pump_up, daemon=True).start()
        received = b""
        with contextlib.suppress(OSError):
            cut = False
            while not cut and (data := upstream.recv(65536)):
                if not armed.is_set():
                    client.sendall(data)
                    continue
                # Piece by piece (each ends a line), so the cut lands right where
                # ``cut_when`` first holds even when several events share one read.
                for piece in data.splitlines(keepends=True):
                    client.sendall(piece)
                    received += piece
                    if self.cut_when(received):
                        cut = True
                        break
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()


async def test_dropped_stream_reconnects_and_still_gets_result(server: LocalServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    proxy = DroppingProxy(port, lambda got: b"\r\n\r\n" in got)  # right after the head
    try:
        async with Render(base_url=f"http://127.0.0.1:{proxy.port}") as render:
            handle = await render.workflows.run_task(f"{SLUG}/my-task", [2])
            details = await handle.wait(timeout=60)
            assert details.results == [4]
        assert len(proxy.event_requests) >= 2
    finally:
        proxy.close()


async def test_dropped_stream_resumes_with_last_event_id(server: LocalServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])

    def after_first_event(got: bytes) -> bool:
        # The body is chunked: a complete event is its lines plus the blank line.
        return re.search(rb"event: task\.[^\n]*\ndata: [^\n]*\n\n", got) is not None

    proxy = DroppingProxy(port, after_first_event)
    try:
        async with Render(base_url=f"http://127.0.0.1:{proxy.port}") as render:
            fast = await render.workflows.run_task(f"{SLUG}/my-task", [0])
            slow = await render.workflows.run_task(f"{SLUG}/my-task", [3])
            streamed = [e async for e in render.workflows.task_run_events([fast.id, slow.id])]
        # The resumed stream may replay progress it missed (pending, running); each run's
        # final state arrives exactly once and is its last event.
        events = [e for e in streamed if str(e.status) in {"completed", "failed", "canceled"}]
        assert {e.id: str(e.status) for e in streamed} == {
            fast.id: "completed",
            slow.id: "completed",
        }
        assert sorted(e.id for e in events) == sorted([fast.id, slow.id])
        assert {e.id: e.results for e in events} == {fast.id: [0], slow.id: [9]}
        assert len(proxy.event_requests) >= 2
        assert b"last-event-id: " in proxy.event_requests[1].lower()
        assert b"last-event-id" not in proxy.event_requests[0].lower()
    finally:
        proxy.close()


# --------------------------------------------------------------------------- sync twin


def test_sync_twin_end_to_end(server: LocalServer) -> None:
    with RenderSync(base_url=server.url) as render:
        handle = render.workflows.run_task(f"{SLUG}/square", [9])
        assert handle.wait(timeout=60).results == [81]
        assert render.workflows.get_task_run(handle.id).results == [81]
        events = list(render.workflows.task_run_events([handle.id], timeout=30))
        assert events[-1].results == [81]
        failing = render.workflows.run_task(f"{SLUG}/fail", ["sync boom"])
        with pytest.raises(TaskRunError, match="sync boom"):
            failing.wait(timeout=60)
        slow = render.workflows.run_task(f"{SLUG}/sleepy", [20])
        with pytest.raises(TimeoutError):
            slow.wait(timeout=0.5)
        render.workflows.cancel_task_run(slow.id)
        with pytest.raises(TaskRunError, match="canceled"):
            render.workflows.wait_for_task_run(slow.id, timeout=30)
        assert handle.id in {run.id for run in render.workflows.iter_task_runs()}


def test_api_key_is_sent_and_required(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    with LocalServer(app="tasks:app", cwd=tmp_path, api_key="sekret") as secured:
        with (
            RenderSync(base_url=secured.url) as anonymous,
            pytest.raises(ClientError) as info,
        ):
            anonymous.workflows.list_task_runs()
        assert info.value.status_code == 401
        with RenderSync(base_url=secured.url, token="sekret") as render:
            assert render.workflows.run_task(f"{SLUG}/square", [5]).wait(timeout=60).results == [25]


# --------------------------------------------------------------------------- command line


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_cli_tasks_start_runs_logs(server: LocalServer) -> None:
    url = ["--url", server.url]
    code, out, _ = run_cli("tasks", "list", *url)
    assert code == 0
    assert {"my-task", "square", "echo", "fail", "sleepy"} <= {
        line.split()[0] for line in out.splitlines()
    }

    code, out, err = run_cli("start", f"{SLUG}/square", "--input", "[6]", *url)
    assert code == 0, err
    lines = out.splitlines()
    # The server console's format (one style): "Task <wire status>: <id> (<task>) ...".
    assert re.fullmatch(rf"Task pending: trn-\w+ \({SLUG}/square\) input=\[6\]", lines[0])
    run_id = lines[0].split()[2]
    assert re.fullmatch(
        rf"Task completed: {run_id} \({SLUG}/square\) input=\[6\] output=\[36\] "
        r"duration=\d+(ms|\.\d\ds)",
        lines[-2],
    ), lines[-2]
    assert lines[-1] == "[36]"

    code, out, _ = run_cli("runs", "show", run_id, *url)
    assert code == 0
    assert "results: [36]" in out

    code, out, _ = run_cli("runs", "list", *url)
    assert code == 0
    assert run_id in out
    # Runs are listed by task name, not by the task's opaque id.
    row = next(line for line in out.splitlines() if line.startswith(run_id))
    assert row.split()[2] == "square"

    code, out, err = run_cli("start", "echo", "--input", '["hello logs"]', *url)
    assert code == 0, err
    echo_id = out.splitlines()[0].split()[2]
    code, out, _ = run_cli("logs", echo_id, *url)
    assert code == 0
    assert "echo says 'hello logs'" in out


def test_cli_failures(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDER_LOCAL_DEV_URL", server.url)  # the default --url
    code, _, err = run_cli("start", "fail", "--input", '["cli boom"]')
    assert code == 1
    assert "cli boom" in err

    code, _, err = run_cli("start", "square", "--input", "not json")
    assert code == 1
    assert "--input is not valid JSON" in err

    code, _, err = run_cli("runs", "show", "trn-missing")
    assert code == 1
    assert "404" in err

    code, out, err = run_cli("logs", "trn-unknown")
    assert (code, out) == (1, "")
    assert "404" in err

    code, out, err = run_cli("start", "sqare", "--input", "[2]")
    assert (code, out) == (1, "")
    assert "did you mean square?" in err

    code, out, _ = run_cli("start", "sleepy", "--input", "[30]", "--no-wait")
    assert code == 0
    code, out, err = run_cli("runs", "cancel", out.strip())
    assert code == 0, err
    assert out.startswith("canceled trn-")

    code, _, _ = run_cli("runs")
    assert code == 2

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, _, err = run_cli("runs", "list", "--url", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "is the task server running" in err


def test_render_workflows_console_script_dispatches_here(server: LocalServer) -> None:
    script = Path(sys.executable).parent / "render-workflows"
    done = subprocess.run(
        [str(script), "start", f"{SLUG}/square", "--input", "[11]", "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[121]"
    failed = subprocess.run(
        [str(script), "start", "fail", "--input", '["exit 1"]', "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1
    assert "exit 1" in failed.stderr


def test_cli_logs_follow_and_json(server: LocalServer) -> None:
    url = ["--url", server.url]
    code, out, err = run_cli("start", "echo", "--input", '["followed"]', "--no-wait", *url)
    assert code == 0, err
    run_id = out.strip()
    code, out, err = run_cli("logs", run_id, "--follow", *url)
    assert code == 0, err
    assert "echo says 'followed'" in out
    code, out, _ = run_cli("runs", "show", run_id, "--json", *url)
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == run_id
    assert shown["results"] == ["followed"]
    code, out, _ = run_cli("tasks", "--json", "list", *url)
    assert code == 0
    assert "echo" in {task["name"] for task in json.loads(out)}

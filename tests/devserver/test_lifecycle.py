"""End to end: startup, shutdown, crash recovery, hot reload, registration faults, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal

from render_sdk.testing import AppRegistrationError, LocalServer, LocalServerError

MakeServer = Callable[..., LocalServer]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _pid_from_logs(c: httpx.Client, run_id: str) -> int:
    deadline = time.monotonic() + 20
    while True:
        logs = c.get("/v1/logs", params={"taskRun": run_id, "text": "pid="}).json()["logs"]
        if logs:
            return int(logs[0]["message"].strip().split("=")[1])
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigkill_and_restart_loses_nothing(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server()
    marker = app_dir / "slow.marker"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        done_id = start_run(c, "square", [3])
        wait_terminal(c, done_id)
        sleeper = start_run(c, "sleepy", [60])
        retrying = start_run(c, "slow_then_ok", [str(marker)])
        wait_status(c, sleeper, "running")
        wait_status(c, retrying, "running")
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        orphan = int(marker.read_text())
    stale_sockets = Path((app_dir / ".render" / "devserver.sockets").read_text())
    server.stop(kill=True)
    assert stale_sockets.is_dir()  # nothing cleans up after SIGKILL...
    server.start()
    assert not stale_sockets.exists()  # ...until the next start
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert wait_terminal(c, done_id)["results"] == [9]
        lost = wait_terminal(c, sleeper)
        assert lost["status"] == "failed"
        assert "server restarted" in lost["error"]
        recovered = wait_terminal(c, retrying)
        assert recovered["status"] == "completed"
        assert recovered["results"] == ["recovered"]
        assert [a["status"] for a in recovered["attempts"]] == ["failed", "completed"]
        assert "server restarted" in recovered["attempts"][0]["error"]
        listed = {r["taskRun"]["id"] for r in c.get("/v1/task-runs").json()}
        assert {done_id, sleeper, retrying} <= listed
    assert any("Recovered 2 unfinished run(s)" in line for line in server.output)
    os.kill(orphan, signal.SIGKILL) if _alive(orphan) else None


def test_sigterm_kills_children_removes_sockets_keeps_state(make_server: MakeServer) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run_id = start_run(c, "pid_then_sleep", [60])
        pid = _pid_from_logs(c, run_id)
        done_id = start_run(c, "square", [2])
        wait_terminal(c, done_id)
    assert _alive(pid)
    assert server.stop() == 0
    assert _wait_dead(pid)
    assert "Shutting down" in server.output
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert wait_terminal(c, done_id)["status"] == "completed"
        assert "server restarted" in wait_terminal(c, run_id)["error"]


def test_socket_dir_is_private_and_removed(make_server: MakeServer) -> None:
    server = make_server(command=[sys.executable, "raw.py"])
    with httpx.Client(base_url=server.url, timeout=30) as c:
        env = wait_terminal(c, start_run(c, "echo_env", []))["results"][0]
    sock = Path(env["RENDER_SDK_SOCKET_PATH"])
    assert env["RENDER_SDK_MODE"] == "run"
    assert len(str(sock)) < 100
    assert (sock.parent.stat().st_mode & 0o777) == 0o700
    # Closed when its attempt ended: the attempt ends when its process exits, which can be
    # just after the run reads as completed (its result is recorded first).
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not sock.exists()
    server.stop()
    assert not sock.parent.exists()


def test_env_files_reach_the_task_processes(make_server: MakeServer, app_dir: Path) -> None:
    (app_dir / ".env").write_text("FROM_ENV_FILE=base\nOVERRIDDEN=first\n")
    (app_dir / "local.env").write_text("OVERRIDDEN=second\nRENDER_SDK_MODE=nope\n")
    server = make_server(command=[sys.executable, "raw.py"], env_files=[".env", "local.env"])
    with httpx.Client(base_url=server.url, timeout=30) as c:
        env = wait_terminal(c, start_run(c, "echo_env", []))["results"][0]
    assert env["FROM_ENV_FILE"] == "base"
    assert env["OVERRIDDEN"] == "second"
    assert env["RENDER_SDK_MODE"] == "run"
    assert "Loaded environment variables from .env, local.env" in server.output


def test_missing_explicit_env_file_is_an_error(app_dir: Path) -> None:
    server = LocalServer(app="tasks:app", cwd=app_dir, env_files=["missing.env"])
    with pytest.raises(LocalServerError, match=r"env file missing\.env not found"):
        server.start()


def test_hot_reload_registers_new_tasks(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        before = {t["task"]["name"]: t["task"]["id"] for t in c.get("/v1/tasks").json()}
        assert "added_later" not in before
        source = app_dir / "tasks.py"
        source.write_text(
            source.read_text() + "\n@app.task\ndef added_later() -> str:\n    return 'new'\n"
        )
        server.wait_for_output(r"^Reloaded: \d+ task\(s\)", timeout=30)
        after = {t["task"]["name"]: t["task"]["id"] for t in c.get("/v1/tasks").json()}
        assert after["square"] == before["square"]
        assert wait_terminal(c, start_run(c, "added_later", []))["results"] == ["new"]


def test_registration_timeout_keeps_serving(make_server: MakeServer) -> None:
    server = make_server(
        command=[sys.executable, "-c", "import time; time.sleep(60)"],
        extra_args=["--registration-timeout", "1"],
        allow_broken_app=True,
    )
    assert any("did not register its tasks within 1s" in line for line in server.output)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/v1/tasks").json() == []
        r = c.post("/v1/task-runs", json={"task": "x", "input": []})
        assert r.status_code == 404
        assert "task registration failed" in r.json()["message"]


def test_command_exiting_before_registration(make_server: MakeServer) -> None:
    server = make_server(
        command=[sys.executable, "-c", "print('broken app'); raise SystemExit(2)"],
        allow_broken_app=True,
    )
    assert any(
        "start command exited before registering tasks: exit status 2" in line
        for line in server.output
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        logs = c.get("/v1/logs", params={"text": "broken app"}).json()["logs"]
        assert logs


def test_api_key_is_enforced_when_given(make_server: MakeServer) -> None:
    server = make_server(api_key="sekret")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/v1/tasks")
        assert r.status_code == 401
        assert "API key" in r.json()["message"]
        assert c.get("/v1/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/v1/tasks", headers={"Authorization": "Bearer sekret"})
        assert ok.status_code == 200


def _dev(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "render_sdk.devserver", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_non_loopback_host_requires_an_api_key(app_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RENDER_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "render_sdk.devserver", "--host", "0.0.0.0", "tasks:app"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--api-key" in proc.stderr


def test_cli_usage_errors(app_dir: Path) -> None:
    proc = _dev([], app_dir)
    assert proc.returncode == 2
    assert "command is required" in proc.stderr
    assert "render-workflows dev main:app" in proc.stderr  # the module:app form, not only --
    proc = _dev(["python", "main.py"], app_dir)
    assert proc.returncode == 2
    assert "after --" in proc.stderr


def test_port_in_use_is_a_clear_error(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server()
    proc = _dev(["--port", str(server.port), "--state-dir", ".other", "tasks:app"], app_dir)
    assert proc.returncode == 1
    assert f"port {server.port} is already in use" in proc.stderr


def test_render_workflows_dev_entry_point(app_dir: Path) -> None:
    """`render-workflows dev module:app` (the console script) serves the app."""
    exe = Path(sys.executable).parent / "render-workflows"
    proc = subprocess.Popen(
        [str(exe), "dev", "--port", "0", "tasks:app"],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("Listening on "):
                url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=30) as c:
            assert wait_terminal(c, start_run(c, "square", [12]))["results"] == [144]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 130  # Ctrl-C: 128 + SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_second_server_on_same_state_dir_is_refused(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server()
    proc = _dev(["--port", "0", "tasks:app"], app_dir)
    assert proc.returncode == 1
    assert f"in use by another render-workflows dev (pid {server.pid})" in proc.stderr


def test_debug_echoes_task_output(make_server: MakeServer) -> None:
    server = make_server(extra_args=["--debug"])
    with httpx.Client(base_url=server.url, timeout=30) as c:
        wait_terminal(c, start_run(c, "square", [21]))
    server.wait_for_output(r"^squaring 21$")
    server.wait_for_output(r"^warning 21$")


def test_concurrent_submissions_all_complete(make_server: MakeServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = make_server()
    with httpx.Client(base_url=server.url, timeout=60) as c:

        def submit(i: int) -> tuple[int, str]:
            r = c.post("/v1/task-runs", json={"task": "square", "input": [i]})
            return r.status_code, r.text

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(60)))
        assert all(code == 202 for code, _ in answers), answers
        ids = [json.loads(text)["id"] for _, text in answers]
        results = [wait_terminal(c, run_id, 120)["results"][0] for run_id in ids]
        assert results == [i * i for i in range(60)]
        listed = c.get("/v1/task-runs", params={"taskSlug": "square", "limit": 100}).json()
        assert len(listed) == 60
    assert not any("database is locked" in line for line in server.output)


def test_launch_failure_fails_the_run_and_keeps_serving(
    make_server: MakeServer, app_dir: Path
) -> None:
    script = app_dir / "run.sh"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} raw.py\n")
    script.chmod(0o755)
    server = make_server(command=["./run.sh"], extra_args=["--no-reload"])
    script.unlink()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        done = wait_terminal(c, start_run(c, "child", [1]))
        assert done["status"] == "failed"
        assert done["error"].startswith("failed to start task:")
        assert done["attempts"][0]["status"] == "failed"
        assert c.get("/v1/tasks").status_code == 200


def _has_child_running(pid: int, needle: str) -> bool:
    """Whether a direct child of ``pid`` has ``needle`` in its command line (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # exited meanwhile
        if needle.encode() in cmdline:
            return True
    return False


def test_sigterm_during_registration_exits_promptly(app_dir: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "render_sdk.devserver",
            "--port",
            "0",
            "--",
            *(sys.executable, "-c", "import time; time.sleep(60)"),
        ],
        cwd=app_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # Signal once the app process exists: the app is then "registering" (it never will).
        # A fixed sleep raced the server's own start-up on a loaded machine.
        deadline = time.monotonic() + 30
        while not _has_child_running(proc.pid, "time.sleep(60)"):
            assert proc.poll() is None, "the server exited before starting the app"
            assert time.monotonic() < deadline, "the server never started the app"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout is not None
        assert "Shutting down" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_last_event_id_from_before_a_restart(make_server: MakeServer) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run_id = start_run(c, "square", [8])
        wait_terminal(c, run_id)
    server.restart()
    with (
        httpx.Client(base_url=server.url, timeout=30) as c,
        c.stream(
            "GET",
            "/v1/task-runs/events",
            params={"taskRunIds": run_id},
            headers={"Last-Event-ID": "12345"},
        ) as r,
    ):
        raw = b""
        for chunk in r.iter_raw():
            raw += chunk
            if b"event: task.completed" in raw and raw.endswith(b"\n\n"):
                break
    assert b'"results":[64]' in raw


def test_unknown_executable_is_reported(make_server: MakeServer) -> None:
    with pytest.raises(AppRegistrationError) as caught:
        make_server(command=["no-such-program-xyz"], extra_args=["--no-reload"])
    assert "failed to start the command" in caught.value.details
    assert "no-such-program-xyz" in caught.value.details


def test_non_loopback_host_takes_the_key_from_the_environment(make_server: MakeServer) -> None:
    server = make_server(host="0.0.0.0", env={"RENDER_API_KEY": "from-env"})
    port = server.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        assert c.get("/v1/tasks").status_code == 401
        r = c.get("/v1/tasks", headers={"Authorization": "Bearer from-env"})
        assert r.status_code == 200


def test_broken_edit_keeps_the_last_good_tasks(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server(extra_args=["--registration-timeout", "20"])
    source = app_dir / "tasks.py"
    good = source.read_text()
    source.write_text(good + "\ndef broken(:\n")
    server.wait_for_output(r"^Task registration failed", timeout=60)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        names = {t["task"]["name"] for t in c.get("/v1/tasks").json()}
        assert "square" in names
        source.write_text(good)
        server.wait_for_output(r"^Reloaded: \d+ task\(s\)", timeout=60)
        assert wait_terminal(c, start_run(c, "square", [5]))["results"] == [25]


# --------------------------------------------------------------------------- broken apps


def _dev_exit(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``render-workflows dev --port 0 ARGS`` to completion (it must exit by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "render_sdk.devserver", "--port", "0", *args],
        cwd=app_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(output: str) -> list[str]:
    """The app's own lines of a failed registration report."""
    return [ln[4:] for ln in output.splitlines() if ln.startswith("  | ")]


def test_wrong_module_exits_non_zero_with_the_import_error(app_dir: Path) -> None:
    done = _dev_exit(app_dir, "--no-reload", "mian:app")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Task registration failed: "), lines
    assert _report(done.stdout) == [
        "Error: Could not import module 'mian': ModuleNotFoundError: No module named 'mian'"
        f" (looked in {app_dir} and sys.path: is that the app's directory?)"
    ]
    assert lines[-1] == "No tasks registered; exiting (fix the app, then restart)"
    # The import error is the report above, not a "warm start" footnote; nothing listens.
    assert "Warm start is off" not in done.stdout
    assert "Listening on" not in done.stdout


def test_syntax_error_shows_the_users_frames_only(app_dir: Path) -> None:
    (app_dir / "helper.py").write_text("x = 1\ndef broken(:\n    pass\n")
    (app_dir / "main.py").write_text(
        "from render_sdk.workflows import Workflows\n\napp = Workflows()\nimport helper\n"
    )
    done = _dev_exit(app_dir, "--no-reload", "main:app")
    assert done.returncode == 1
    report = _report(done.stdout)
    assert f'  File "{app_dir / "main.py"}", line 4, in <module>' in report
    assert f'  File "{app_dir / "helper.py"}", line 2' in report
    assert "SyntaxError: invalid syntax" in report
    frames = [ln for ln in report if ln.startswith("  File ")]
    assert len(frames) == 2, report  # no importlib or render_sdk frame
    assert not any("importlib" in ln or "render_sdk" in ln for ln in frames)


def test_start_with_no_tasks_exits_non_zero(app_dir: Path) -> None:
    (app_dir / "empty.py").write_text(
        "from render_sdk.workflows import Workflows\napp = Workflows()\n"
    )
    done = _dev_exit(app_dir, "--no-reload", "empty:app")
    assert done.returncode == 1
    assert "0 tasks found in empty:app" in done.stdout
    assert "No tasks registered; exiting" in done.stdout


def test_script_without_start_gets_a_hint(make_server: MakeServer, app_dir: Path) -> None:
    (app_dir / "main.py").write_text(
        "from render_sdk.workflows import Workflows\n\napp = Workflows()\n\n"
        "@app.task\ndef hello() -> str:\n    return 'hi'\n"
    )
    with pytest.raises(AppRegistrationError) as caught:
        make_server(command=[sys.executable, "main.py"], extra_args=["--no-reload"])
    assert "exited (status 0) without registering tasks" in caught.value.details
    assert "app.start()" in caught.value.details


def test_broken_start_with_reload_waits_for_a_fix(make_server: MakeServer, app_dir: Path) -> None:
    source = app_dir / "tasks.py"
    good = source.read_text()
    source.write_text("raise RuntimeError('not configured yet')\n" + good)
    server = make_server(allow_broken_app=True)
    assert any(
        ln == "No tasks registered; waiting for a fix (it re-registers when files change)"
        for ln in server.output
    ), server.output
    assert "  | RuntimeError: not configured yet" in server.output
    source.write_text(good)
    server.wait_for_output(r"^Reloaded: \d+ task\(s\)", timeout=60)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert wait_terminal(c, start_run(c, "square", [4]))["results"] == [16]


def test_every_failed_reload_prints_the_error(make_server: MakeServer, app_dir: Path) -> None:
    server = make_server(extra_args=["--registration-timeout", "20"])
    source = app_dir / "tasks.py"
    good = source.read_text()
    assert good.endswith("\n")
    broken_line = len(good.splitlines()) + 3  # after the two blank lines
    for attempt, message in enumerate(("first", "second"), start=1):
        source.write_text(good + f"\n\nraise ValueError('{message} mistake')\n")
        server.wait_for_output(rf"^  \| ValueError: {message} mistake$", timeout=60)
        server.wait_for_output(r"^Reload failed; serving the last good version \(\d+ task\(s\)")
        assert f'  |   File "{source}", line {broken_line}, in <module>' in server.output, (
            server.output
        )
        failures = [ln for ln in server.output if ln.startswith("Task registration failed")]
        assert len(failures) == attempt

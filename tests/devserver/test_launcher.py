"""The spawn launcher: real subprocesses, real pipes, real process groups."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from launcher_helpers import Output, alive, gone, open_fds

from render_sdk.devserver._launcher import (
    LaunchError,
    SpawnLauncher,
    WarmLauncher,
    make_launcher,
    warm_target,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc"),
]

PY = sys.executable


def spawner(tmp_path: Path, *argv: str, **env: str) -> SpawnLauncher:
    launcher = make_launcher(list(argv), cwd=tmp_path, env={**os.environ, **env})
    assert isinstance(launcher, SpawnLauncher)
    assert launcher.warm is False
    return launcher


async def test_env_vars_win_and_output_per_stream(tmp_path: Path) -> None:
    launcher = spawner(
        tmp_path,
        "sh",
        "-c",
        'echo "$RENDER_SDK_MODE $RENDER_SDK_SOCKET_PATH $FOO $(pwd)"; echo oops >&2',
        RENDER_SDK_MODE="stale",
        RENDER_SDK_SOCKET_PATH="/stale.sock",
        FOO="bar",
    )
    out = Output()
    proc = await launcher.start(mode="register", socket_path="/tmp/x.sock", on_output=out)
    assert await proc.wait() == 0
    assert out.stdout == f"register /tmp/x.sock bar {tmp_path}\n"
    assert out.stderr == "oops\n"
    await launcher.aclose()


async def test_exit_code_and_signal_status(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, "sh", "-c", "exit 7")
    assert await (await launcher.start(mode="run", socket_path="s", on_output=Output())).wait() == 7
    launcher = spawner(tmp_path, "sh", "-c", "kill -TERM $$")
    proc = await launcher.start(mode="run", socket_path="s", on_output=Output())
    assert await proc.wait() == -15
    assert await proc.wait() == -15  # wait() may be called again
    await launcher.aclose()


async def test_kill_reaches_grandchildren(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, "sh", "-c", "sleep 100 & echo $!; sleep 100")
    out = Output()
    proc = await launcher.start(mode="run", socket_path="s", on_output=out)
    await out.wait_for("stdout", "\n")
    grandchild = int(out.stdout.split()[0])
    assert alive(grandchild)
    proc.kill()
    assert await proc.wait() == -9
    assert await gone(grandchild)
    proc.kill()  # idempotent after exit
    await launcher.aclose()


async def test_kill_after_leader_exit_reaches_leftover_group(tmp_path: Path) -> None:
    # The leader exits at once; a background grandchild keeps the group (and stdout) alive.
    launcher = spawner(tmp_path, "sh", "-c", "sleep 100 & echo $!")
    out = Output()
    proc = await launcher.start(mode="run", socket_path="s", on_output=out)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    grandchild = int(out.stdout.split()[0])
    assert alive(grandchild)
    proc.kill()
    assert await gone(grandchild)
    await launcher.aclose()


async def test_never_exiting_child_is_killed(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, PY, "-c", "import time; print('up', flush=True); time.sleep(1000)")
    out = Output()
    proc = await launcher.start(mode="run", socket_path="s", on_output=out)
    await out.wait_for("stdout", "up")
    waiter = asyncio.ensure_future(proc.wait())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    proc.kill()
    assert await asyncio.wait_for(waiter, 10) == -9
    await launcher.aclose()


async def test_kill_right_after_start(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, "sh", "-c", "sleep 100 & sleep 100")
    procs = [
        await launcher.start(mode="run", socket_path="s", on_output=Output()) for _ in range(5)
    ]
    for proc in procs:
        proc.kill()
    for proc in procs:
        assert await asyncio.wait_for(proc.wait(), 10) == -9
    await launcher.aclose()


async def test_missing_executable_raises_launch_error(tmp_path: Path) -> None:
    before = open_fds()
    launcher = spawner(tmp_path, str(tmp_path / "no-such-program"), "x")
    with pytest.raises(LaunchError, match="no-such-program"):
        await launcher.start(mode="run", socket_path="s", on_output=Output())
    assert open_fds() == before
    await launcher.aclose()


async def test_failing_on_output_does_not_stop_draining(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []

    def flaky(stream: str, chunk: bytes) -> None:
        seen.append(chunk)
        raise RuntimeError("consumer bug")

    launcher = spawner(tmp_path, "sh", "-c", "head -c 300000 /dev/zero")
    proc = await launcher.start(mode="run", socket_path="s", on_output=flaky)
    assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert sum(map(len, seen)) == 300000
    assert "consumer bug" in caplog.text
    await launcher.aclose()


async def test_one_string_command_is_split(tmp_path: Path) -> None:
    launcher = make_launcher(["sh -c 'exit 5'"], cwd=tmp_path, env=dict(os.environ))
    assert isinstance(launcher, SpawnLauncher)
    assert launcher.command == ["sh", "-c", "exit 5"]
    assert await (await launcher.start(mode="run", socket_path="s", on_output=Output())).wait() == 5
    await launcher.aclose()
    with pytest.raises(ValueError, match="command is required"):
        make_launcher([], cwd=tmp_path, env={})


async def test_many_concurrent_starts_leak_no_fds(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, "sh", "-c", 'echo "$RENDER_SDK_SOCKET_PATH"')
    before = open_fds()
    outputs = [Output() for _ in range(200)]

    async def one(i: int) -> int:
        proc = await launcher.start(mode="run", socket_path=f"s{i}", on_output=outputs[i])
        return await proc.wait()

    assert await asyncio.gather(*(one(i) for i in range(200))) == [0] * 200
    assert [o.stdout for o in outputs] == [f"s{i}\n" for i in range(200)]
    await launcher.aclose()
    assert open_fds() == before


async def test_aclose_kills_everything(tmp_path: Path) -> None:
    launcher = spawner(tmp_path, "sh", "-c", "sleep 100 & echo $!; sleep 100")
    outs = [Output() for _ in range(3)]
    procs = [await launcher.start(mode="run", socket_path="s", on_output=o) for o in outs]
    for out in outs:
        await out.wait_for("stdout", "\n")
    pids = [p.pid for p in procs] + [int(o.stdout.split()[0]) for o in outs]
    await launcher.aclose()
    for pid in pids:
        assert await gone(pid)
    with pytest.raises(LaunchError, match="closed"):
        await launcher.start(mode="run", socket_path="s", on_output=Output())


def test_warm_only_for_python_apps(tmp_path: Path) -> None:
    env = dict(os.environ)
    script = tmp_path / "render-workflows"
    script.write_text(f"#!{PY}\n")
    assert warm_target([str(script), "main:app"], env=env, cwd=tmp_path) == (PY, "main:app")
    assert warm_target([PY, "-m", "render_sdk.workflows", "pkg.mod:app"], env=env, cwd=tmp_path)
    for command in (
        [str(script), "main:app", "--extra"],
        [str(script), "dev"],
        ["node", "main.js"],
        [PY, "main.py"],
        [PY, "-c", "from main import app; app.start()"],
    ):
        assert warm_target(command, env=env, cwd=tmp_path) is None, command
        assert isinstance(make_launcher(command, cwd=tmp_path, env=env), SpawnLauncher)
    warm = make_launcher([f"{script} main:app"], cwd=tmp_path, env=env)
    assert isinstance(warm, WarmLauncher)
    assert warm.warm is True
    cold = make_launcher([str(script), "main:app"], cwd=tmp_path, env=env, warm=False)
    assert isinstance(cold, SpawnLauncher)


async def test_render_workflows_off_path_runs_through_this_interpreter(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": "/nonexistent"}
    launcher = make_launcher(["render-workflows", "tasks:app"], cwd=tmp_path, env=env, warm=False)
    assert isinstance(launcher, SpawnLauncher)
    assert launcher.command == [PY, "-m", "render_sdk.workflows", "tasks:app"]
    warm = make_launcher(["render-workflows", "tasks:app"], cwd=tmp_path, env=env)
    assert isinstance(warm, WarmLauncher)
    assert (warm.python, warm.app_spec) == (PY, "tasks:app")

"""The warm path: a zygote imports the app once and forks a child per start.

The apps here are plain modules in tmp_path with their own ``start()`` (the zygote only
needs an object with a ``start()`` method), and ``render-workflows`` is a stand-in script
with the same ``module:app`` interface, so that the spawn fallback runs a real process.
Each app picks its behaviour from ``RENDER_SDK_SOCKET_PATH``, which is set per start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from launcher_helpers import Output, alive, gone, open_fds

from render_sdk.devserver._launcher import LaunchError, WarmLauncher, make_launcher

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects /proc"),
]

PY = sys.executable


RUNNER = """\
#!{python}
import importlib, os, sys
sys.path.insert(0, os.getcwd())
module, _, attr = sys.argv[1].partition(":")
app = importlib.import_module(module)
for part in attr.split("."):
    app = getattr(app, part)
app.start()
"""

APP = """\
import asyncio, os, signal, socket, subprocess, sys, time

VERSION = "v1"


class App:
    def start(self):
        what = os.environ["RENDER_SDK_SOCKET_PATH"]
        mode = os.environ["RENDER_SDK_MODE"]
        if what == "env":
            print(mode, os.environ.get("FOO"), os.getsid(0) == os.getpid(), os.getcwd())
            print(os.getppid())
            print("to stderr", file=sys.stderr)
        elif what == "version":
            print(VERSION)
        elif what.startswith("sleep:"):
            time.sleep(float(what[6:]))
            print(VERSION)
        elif what == "big":
            sys.stdout.write("x" * 300000)
            sys.stderr.write("y" * 100000)
        elif what == "exit":
            sys.exit(4)
        elif what == "raise":
            raise RuntimeError("task body exploded")
        elif what == "signal":
            os.kill(os.getpid(), signal.SIGTERM)
        elif what == "hang":
            print("up", os.getppid(), flush=True)
            time.sleep(1000)
        elif what == "grandchild":
            child = subprocess.Popen(["sleep", "100"])
            print(child.pid, flush=True)
            time.sleep(1000)
        elif what == "modules":
            heavy = {"starlette", "uvicorn", "httpx", "sqlite3"}
            print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
            print("render_sdk.devserver._launcher" in sys.modules)
        elif what == "asyncio":
            async def main():
                await asyncio.sleep(0.001)
                return "async ok"
            print(asyncio.run(main()))
        elif what.startswith("/"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(what)
                sock.sendall(f"hello from {os.getpid()}\\n".encode())
        else:
            raise ValueError(what)


app = App()
"""


def make_app(tmp_path: Path, source: str = APP, *, python: str = PY) -> list[str]:
    """Write the app module and the stand-in runner; return the command."""
    (tmp_path / "tasks.py").write_text(source)
    runner = tmp_path / "render-workflows"
    runner.write_text(RUNNER.format(python=python))
    runner.chmod(0o755)
    return [str(runner), "tasks:app"]


@pytest.fixture
async def launcher(tmp_path: Path):  # type: ignore[no-untyped-def]
    command = make_app(tmp_path)
    launcher = make_launcher(command, cwd=tmp_path, env={**os.environ, "FOO": "bar"})
    assert isinstance(launcher, WarmLauncher)
    yield launcher
    await launcher.aclose()


async def run(launcher: WarmLauncher, what: str, mode: str = "run") -> tuple[int, Output]:
    out = Output()
    proc = await launcher.start(mode=mode, socket_path=what, on_output=out)  # type: ignore[arg-type]
    return await asyncio.wait_for(proc.wait(), 30), out


def zygote_pid(launcher: WarmLauncher) -> int:
    assert launcher._zygote is not None
    return launcher._zygote.process.pid


async def test_forked_child_gets_env_output_and_own_session(
    launcher: WarmLauncher, tmp_path: Path
) -> None:
    for mode in ("register", "run"):
        status, out = await run(launcher, "env", mode)
        assert status == 0
        lines = out.stdout.splitlines()
        assert lines[0] == f"{mode} bar True {tmp_path}"
        assert int(lines[1]) == zygote_pid(launcher)  # forked, not spawned
        assert out.stderr == "to stderr\n"
    assert launcher.warm is True


async def test_exit_statuses(launcher: WarmLauncher) -> None:
    assert (await run(launcher, "exit"))[0] == 4
    status, out = await run(launcher, "raise")
    assert status == 1
    assert "Traceback" in out.stderr
    assert "RuntimeError: task body exploded" in out.stderr
    assert (await run(launcher, "signal"))[0] == -signal.SIGTERM


async def test_child_can_run_asyncio_and_zygote_stays_lean(launcher: WarmLauncher) -> None:
    for _ in range(3):
        status, out = await run(launcher, "asyncio")
        assert (status, out.stdout) == (0, "async ok\n")
    status, out = await run(launcher, "modules")
    assert (status, out.stdout) == (0, "[]\nFalse\n")


async def test_large_output_is_delivered_whole(launcher: WarmLauncher) -> None:
    status, out = await run(launcher, "big")
    assert status == 0
    assert out.stdout == "x" * 300000
    assert out.stderr == "y" * 100000


async def test_kill_right_after_start(launcher: WarmLauncher) -> None:
    await run(launcher, "version")
    procs = [
        await launcher.start(mode="run", socket_path="hang", on_output=Output()) for _ in range(5)
    ]
    for proc in procs:
        proc.kill()
    for proc in procs:
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        assert await gone(proc.pid)


async def test_children_reach_a_real_unix_socket(launcher: WarmLauncher, tmp_path: Path) -> None:
    lines: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.append((await reader.readline()).decode())
        writer.close()

    path = str(tmp_path / "task.sock")
    server = await asyncio.start_unix_server(handle, path)
    async with server:
        results = await asyncio.gather(*(run(launcher, path) for _ in range(20)))
    assert [status for status, _ in results] == [0] * 20
    assert len(lines) == 20
    assert all(line.startswith("hello from ") for line in lines)


async def test_kill_hanging_child_and_its_grandchildren(launcher: WarmLauncher) -> None:
    out = Output()
    proc = await launcher.start(mode="run", socket_path="hang", on_output=out)
    await out.wait_for("stdout", "up")
    proc.kill()
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    proc.kill()

    out = Output()
    proc = await launcher.start(mode="run", socket_path="grandchild", on_output=out)
    await out.wait_for("stdout", "\n")
    grandchild = int(out.stdout.split()[0])
    assert alive(grandchild)
    proc.kill()
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    assert await gone(grandchild)


async def test_zygote_crash_fails_its_children_and_later_starts_still_work(
    launcher: WarmLauncher,
) -> None:
    out = Output()
    proc = await launcher.start(mode="run", socket_path="hang", on_output=out)
    await out.wait_for("stdout", "up")
    os.kill(zygote_pid(launcher), signal.SIGKILL)
    # Nobody can report that child's exit any more: it is killed and reported as such.
    assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
    assert await gone(proc.pid)
    status, out = await run(launcher, "version")
    assert (status, out.stdout) == (0, "v1\n")


async def test_import_error_falls_back_to_spawn_and_shows_the_error(tmp_path: Path) -> None:
    command = make_app(tmp_path, "import no_such_module_here\n" + APP)
    launcher = make_launcher(command, cwd=tmp_path, env=dict(os.environ))
    assert isinstance(launcher, WarmLauncher)
    status, out = await run(launcher, "version")
    # The spawned runner fails the same way and its traceback reaches on_output.
    assert status == 1
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in out.stderr
    assert launcher.warm is False
    assert launcher.warm_error is not None
    assert "no_such_module_here" in launcher.warm_error
    # Fixed source + reload: warm again.
    (tmp_path / "tasks.py").write_text(APP.replace('"v1"', '"v2 fixed"'))
    await launcher.reload()
    assert launcher.warm is True
    status, out = await run(launcher, "env")
    assert int(out.stdout.splitlines()[1]) == zygote_pid(launcher)
    assert (await run(launcher, "version"))[1].stdout == "v2 fixed\n"
    await launcher.aclose()


async def test_app_without_start_falls_back(tmp_path: Path) -> None:
    command = make_app(tmp_path, "app = 42\n")
    launcher = make_launcher(command, cwd=tmp_path, env=dict(os.environ))
    assert isinstance(launcher, WarmLauncher)
    status, out = await run(launcher, "version")
    assert status == 1
    assert "AttributeError" in out.stderr
    assert launcher.warm_error is not None
    assert "no start() method" in launcher.warm_error
    await launcher.aclose()


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs a system python")
async def test_foreign_interpreter_falls_back_to_spawn(tmp_path: Path) -> None:
    # A runner from another environment cannot import our zygote: it is spawned instead.
    command = make_app(tmp_path, python="/usr/bin/python3")
    env = {**os.environ, "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    launcher = make_launcher(command, cwd=tmp_path, env=env)
    assert isinstance(launcher, WarmLauncher)
    assert launcher.python == "/usr/bin/python3"
    status, out = await run(launcher, "version")
    assert (status, out.stdout) == (0, "v1\n")
    assert launcher.warm is False
    await launcher.aclose()


async def test_reload_picks_up_changes_and_drains_the_old_zygote(
    launcher: WarmLauncher, tmp_path: Path
) -> None:
    assert (await run(launcher, "version"))[1].stdout == "v1\n"
    old_zygote = zygote_pid(launcher)
    out = Output()
    running = await launcher.start(mode="run", socket_path="sleep:0.5", on_output=out)
    (tmp_path / "tasks.py").write_text(APP.replace('"v1"', '"v2 (changed)"'))
    await launcher.reload()
    assert zygote_pid(launcher) != old_zygote
    assert (await run(launcher, "version"))[1].stdout == "v2 (changed)\n"
    # The attempt started before the reload finishes on the old code and is reported.
    assert await asyncio.wait_for(running.wait(), 10) == 0
    assert out.stdout == "v1\n"
    assert await gone(old_zygote)


async def test_failed_reload_keeps_the_last_good_zygote_serving_runs(
    launcher: WarmLauncher, tmp_path: Path
) -> None:
    assert (await run(launcher, "version"))[1].stdout == "v1\n"
    good_zygote = zygote_pid(launcher)
    (tmp_path / "tasks.py").write_text("raise SyntaxError('half-typed edit')\n" + APP)
    await launcher.reload()
    assert launcher.serving_last_good is True
    assert launcher.reload_error is not None
    assert "half-typed edit" in launcher.reload_error
    # Runs fork from the last good import ...
    status, out = await run(launcher, "env")
    assert status == 0
    assert int(out.stdout.splitlines()[1]) == good_zygote
    assert (await run(launcher, "version"))[1].stdout == "v1\n"
    # ... while a registration runs the current source, so that it reports the error.
    status, out = await run(launcher, "version", "register")
    assert status == 1
    assert "half-typed edit" in out.stderr
    # A second broken edit changes nothing; the fix replaces the last good zygote.
    await launcher.reload()
    assert zygote_pid(launcher) == good_zygote
    (tmp_path / "tasks.py").write_text(APP.replace('"v1"', '"v2 fixed"'))
    await launcher.reload()
    assert launcher.serving_last_good is False
    assert zygote_pid(launcher) != good_zygote
    assert (await run(launcher, "version"))[1].stdout == "v2 fixed\n"
    assert (await run(launcher, "version", "register"))[1].stdout == "v2 fixed\n"
    assert await gone(good_zygote)


async def test_many_concurrent_forks_leak_no_fds(launcher: WarmLauncher) -> None:
    await run(launcher, "version")  # the zygote's own pipes exist before we count
    before = open_fds()
    results = await asyncio.gather(*(run(launcher, "env") for _ in range(200)))
    zygote = zygote_pid(launcher)
    assert all(status == 0 for status, _ in results)
    assert all(int(out.stdout.splitlines()[1]) == zygote for _, out in results)
    assert open_fds() == before


async def test_starts_queue_up_while_the_zygote_is_busy(launcher: WarmLauncher) -> None:
    # With the zygote stopped, the start requests (each carrying two descriptors) fill
    # the control socket's buffer; every one must still go through once it resumes.
    await run(launcher, "version")
    zygote = zygote_pid(launcher)
    os.kill(zygote, signal.SIGSTOP)
    try:
        starts = [asyncio.ensure_future(run(launcher, "version")) for _ in range(400)]
        await asyncio.sleep(0.5)
    finally:
        os.kill(zygote, signal.SIGCONT)
    results = await asyncio.wait_for(asyncio.gather(*starts), 60)
    assert {(status, out.stdout) for status, out in results} == {(0, "v1\n")}
    assert zygote_pid(launcher) == zygote


async def test_zygote_killed_with_starts_in_flight(launcher: WarmLauncher) -> None:
    await run(launcher, "version")
    zygote = zygote_pid(launcher)
    os.kill(zygote, signal.SIGSTOP)
    starts = [asyncio.ensure_future(run(launcher, "env")) for _ in range(100)]
    await asyncio.sleep(0.3)
    os.kill(zygote, signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*starts), 60)
    assert all(status == 0 for status, _ in results)
    # Retried on a fresh zygote rather than spawned one by one.
    replacement = zygote_pid(launcher)
    assert replacement != zygote
    assert {int(out.stdout.splitlines()[1]) for _, out in results} == {replacement}
    assert launcher.warm is True


async def test_repeated_zygote_crashes_disable_the_warm_path(launcher: WarmLauncher) -> None:
    for _ in range(5):
        await run(launcher, "version")
        if not launcher.warm:
            break
        os.kill(zygote_pid(launcher), signal.SIGKILL)
        assert launcher._zygote is not None
        await asyncio.wait_for(launcher._zygote.gone, 10)
    status, out = await run(launcher, "version")
    assert (status, out.stdout) == (0, "v1\n")  # spawned now
    assert launcher.warm is False
    assert launcher.warm_error is not None
    assert "exited unexpectedly" in launcher.warm_error


async def test_aclose_leaves_no_process_behind(tmp_path: Path) -> None:
    before = open_fds()
    command = make_app(tmp_path)
    launcher = make_launcher(command, cwd=tmp_path, env=dict(os.environ))
    outs = [Output() for _ in range(3)]
    procs = [await launcher.start(mode="run", socket_path="grandchild", on_output=o) for o in outs]
    for out in outs:
        await out.wait_for("stdout", "\n")
    assert isinstance(launcher, WarmLauncher)
    pids = [zygote_pid(launcher)] + [p.pid for p in procs] + [int(o.stdout) for o in outs]
    await launcher.aclose()
    for pid in pids:
        assert await gone(pid), pid
    assert open_fds() == before


def zygotes_of(app_spec: str) -> list[int]:
    """Pids of the zygotes importing ``app_spec`` (found by their command line)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if b"render_sdk.devserver._zygote" in argv and app_spec.encode() in argv:
                pids.append(int(entry))
    return pids


async def test_aclose_during_a_slow_import(tmp_path: Path) -> None:
    module = f"slow_{os.getpid()}"
    (tmp_path / f"{module}.py").write_text("import time\ntime.sleep(60)\n" + APP)
    runner = make_app(tmp_path)[0]
    launcher = make_launcher([runner, f"{module}:app"], cwd=tmp_path, env=dict(os.environ))
    start = asyncio.ensure_future(run(launcher, "version"))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not zygotes_of(f"{module}:app"):
        assert loop.time() < deadline
        await asyncio.sleep(0.02)
    [zygote] = zygotes_of(f"{module}:app")
    started = loop.time()
    await launcher.aclose()
    assert loop.time() - started < 10
    assert await gone(zygote)
    with pytest.raises(LaunchError, match="closed"):
        await start


LAUNCHER_OWNER = """\
import asyncio, os, sys
from pathlib import Path
from render_sdk.devserver._launcher import make_launcher

async def main():
    launcher = make_launcher(sys.argv[1:], cwd=Path.cwd(), env=dict(os.environ))
    out = []
    proc = await launcher.start(
        mode="run", socket_path="hang", on_output=lambda s, c: out.append(c)
    )
    while not out:
        await asyncio.sleep(0.01)
    print(launcher._zygote.process.pid, proc.pid, flush=True)
    await asyncio.sleep(1000)

asyncio.run(main())
"""


async def test_zygote_and_children_die_with_the_server(tmp_path: Path) -> None:
    command = make_app(tmp_path)
    owner = await asyncio.create_subprocess_exec(
        PY, "-c", LAUNCHER_OWNER, *command, cwd=tmp_path, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        line = await asyncio.wait_for(owner.stdout.readline(), 30)
        zygote, child = map(int, line.split())
        assert alive(zygote)
        assert alive(child)
        owner.kill()
        assert await gone(zygote)
        assert await gone(child)
    finally:
        if owner.returncode is None:
            owner.kill()
        await owner.wait()

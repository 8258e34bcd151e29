"""A retried parent reuses the children its dead attempt started (issue 10 item 12).

The parent's process is SIGKILLed once its children run; its next attempt makes the same
calls, which take over the surviving children instead of starting them (and their side
effects) a second time. A call the earlier attempt did not make, or whose child failed,
starts a new child.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal

from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]

APP = """
import asyncio, os, time
from pathlib import Path

from render_sdk import Retry, Workflows

app = Workflows()

@app.task(retry=Retry(max_retries=0, wait_duration_ms=0))
def effect(workdir: str, n: int) -> int:
    with open(Path(workdir, "effects.log"), "a") as f:
        f.write(f"{n}\\n")
    if n < 0:
        raise ValueError("a failing child")
    time.sleep(2)
    return n * 10

@app.task(retry=Retry(max_retries=1, wait_duration_ms=100))
async def parent(workdir: str) -> list:
    attempt = len(list(Path(workdir).glob("parent-*")))
    Path(workdir, f"parent-{attempt}").write_text(str(os.getpid()))
    calls = [effect(workdir, 1), effect(workdir, 2), effect(workdir, 2), effect(workdir, -1)]
    if attempt:
        calls.append(effect(workdir, 3))  # a call only the retry makes
    out = await asyncio.gather(*calls, return_exceptions=True)
    if not attempt:
        await asyncio.sleep(120)  # killed meanwhile
    return [x if isinstance(x, int) else "failed" for x in out]
"""


def _effects(workdir: Path) -> list[int]:
    path = workdir / "effects.log"
    return sorted(int(x) for x in path.read_text().split()) if path.exists() else []


def _failed_children(c: httpx.Client, root_id: str) -> int:
    runs = c.get("/v1/task-runs", params={"rootTaskRunId": root_id, "limit": 100}).json()
    return sum(r["status"] == "failed" for r in runs if r["id"] != root_id)


def test_retried_parent_reuses_the_children_of_its_killed_attempt(
    make_server: MakeServer, tmp_path: Path
) -> None:
    (tmp_path / "reuse_app.py").write_text(textwrap.dedent(APP))
    workdir = tmp_path / "work"
    workdir.mkdir()
    server = make_server(app="reuse_app:app", cwd=tmp_path)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run_id = start_run(c, "parent", [str(workdir)])
        deadline = time.monotonic() + 60
        # The first attempt's children have all started, and the failing one has failed.
        while _effects(workdir) != [-1, 1, 2, 2] or _failed_children(c, run_id) != 1:
            assert time.monotonic() < deadline, _effects(workdir)
            time.sleep(0.05)
        os.kill(int((workdir / "parent-0").read_text()), signal.SIGKILL)
        done = wait_terminal(c, run_id, 90)
        runs = c.get("/v1/task-runs", params={"rootTaskRunId": run_id, "limit": 100}).json()
    assert done["status"] == "completed", done
    assert done["results"] == [10, 20, 20, "failed", 30]
    assert len(done["attempts"]) == 2
    assert "killed by signal 9" in done["attempts"][0]["error"], done["attempts"][0]
    children = [r for r in runs if r["id"] != run_id]
    # 1, 2, 2 ran once; the failed -1 ran again for the retry; 3 is the retry's own call.
    assert _effects(workdir) == [-1, -1, 1, 2, 2, 3]
    assert len(children) == 6, [(r["id"], r["status"]) for r in children]

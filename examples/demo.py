"""Quick-start demo: serve examples/tasks.py on the local task server and run it with the client.

Run with `python3 build_tools/dev.py demo` (which sets everything up first).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from render_sdk import Render
from render_sdk.testing import LocalServer

HERE = Path(__file__).resolve().parent


async def run_tasks(url: str) -> None:
    os.environ["RENDER_LOCAL_DEV_URL"] = url
    async with Render() as render:
        task_run = await render.workflows.run_task("demo/add_squares", [3, 4])
        print(f"Task started: {task_run.id}")
        result = await task_run
        print(f"add_squares(3, 4) = {result.results[0]}  (status: {result.status_text})")
        runs = await render.workflows.list_task_runs()
        print(f"{len(runs)} runs recorded (the root and its two square subtasks)")


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as state_dir,
        LocalServer(app="tasks:app", cwd=HERE, state_dir=Path(state_dir)) as server,
    ):
        print(f"Local task server on {server.url}")
        asyncio.run(run_tasks(server.url))


if __name__ == "__main__":
    main()

"""Ours: ``render-workflows dev`` (via render_sdk.testing.LocalServer) and the async client.

``--reuse`` starts the server with reusable workers (``LocalServer(reuse_workers=True)``);
the harness passes it only when LocalServer has that option.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WARMUP_RUNS, emit, idle_rss_mib, parse_sizes

from render_sdk import Render
from render_sdk.testing import LocalServer

APP = """\
import asyncio

from render_sdk import Workflows

app = Workflows()


@app.task
def noop(x: int) -> int:
    return x


@app.task
async def fan(n: int) -> int:
    return len(await asyncio.gather(*(noop(i) for i in range(n))))
"""


async def one_noop(render: Render, i: int) -> None:
    """Run ``noop(i)`` and await it (W1's unit, and W2's)."""
    details = await (await render.workflows.run_task("noop", [i]))
    if details.results != [i]:
        raise RuntimeError(f"noop({i}) returned {details.results}")


async def noops(render: Render, runs: int, in_flight: int) -> None:
    """W2's work: ``runs`` noops awaited by ``in_flight`` coroutines on one client."""
    queue = iter(range(runs))

    async def worker() -> None:
        for i in queue:
            await one_noop(render, i)

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def _measure(render: Render, args: object, server_pid: int) -> dict[str, float]:
    sizes = args.sizes  # type: ignore[attr-defined]
    workflows = render.workflows

    for i in range(WARMUP_RUNS):
        await one_noop(render, i)
    figures = {"w5_mib": idle_rss_mib([server_pid])}
    samples = []
    for i in range(sizes.w1):
        started = time.perf_counter()
        await one_noop(render, i)
        samples.append(time.perf_counter() - started)
    figures["w1_p50"] = statistics.median(samples)

    cpu = time.process_time()
    started = time.perf_counter()
    await noops(render, sizes.w2, sizes.w2_concurrency)
    figures["w2_rps"] = sizes.w2 / (time.perf_counter() - started)
    figures["w2_client_cpu"] = (time.process_time() - cpu) / sizes.w2

    started = time.perf_counter()
    details = await (await workflows.run_task("fan", [sizes.w3]))
    figures["w3_s"] = time.perf_counter() - started
    if details.results != [sizes.w3]:
        raise RuntimeError(f"fan({sizes.w3}) returned {details.results}")
    return figures


def main() -> None:
    args = parse_sizes(lambda p: p.add_argument("--reuse", action="store_true"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-ours-"))
    try:
        (workdir / "tasks.py").write_text(APP)
        options = {"reuse_workers": True} if args.reuse else {}
        with LocalServer(
            app="tasks:app",
            cwd=workdir,
            state_dir=workdir / "state",
            extra_args=["--no-reload"],
            **options,  # type: ignore[arg-type]
        ) as server:
            assert server.pid is not None

            async def go() -> dict[str, float]:
                async with Render(base_url=server.url) as render:
                    return await _measure(render, args, server.pid or 0)

            figures = asyncio.run(go())
        mode = "reusable workers" if args.reuse else "one process per attempt"
        emit(**figures, note=f"{mode}; W5 = server + zygote + live workers")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

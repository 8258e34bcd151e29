"""Object storage through the local server: throughput and memory.

An object of 10 MB and of 100 MB is uploaded (``put`` from an open file) and downloaded
(``download`` into a file) by ``render_sdk.Render`` against the real local server
(``render_sdk.testing.LocalServer``). The baseline, measured in the same run, is a plain
``shutil.copyfile`` of the same file. The client runs in its own process and each size
gets a fresh server, so the peak resident memory (``ru_maxrss`` / ``VmHWM``) of each is
that size's alone: it must stay flat as the object grows (10 MB vs 100 MB).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks._harness import Row, measure, repeats
from render_sdk.testing import LocalServer

MB = 1_000_000
SIZES_MB = (10, 100)

_TASKS = """
from render_sdk import Workflows

app = Workflows()


@app.task
def noop() -> None:
    return None
"""

# The client: prints median upload/download seconds and its own peak RSS (KiB).
_CLIENT = r"""
import asyncio, json, resource, statistics, sys, time
from render_sdk import Render

url, src, dest, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

async def main():
    up, down = [], []
    async with Render(base_url=url, owner_id="tea-bench", region="oregon") as render:
        objects = render.experimental.storage.objects
        for _ in range(repeat):
            started = time.perf_counter()
            with open(src, "rb") as f:
                await objects.put(key="bench/object.bin", data=f)
            up.append(time.perf_counter() - started)
            started = time.perf_counter()
            await objects.download(key="bench/object.bin", file=dest)
            down.append(time.perf_counter() - started)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"up": statistics.median(up), "down": statistics.median(down), "rss": rss}))

asyncio.run(main())
"""


def _write_random(path: Path, size: int) -> None:
    block = os.urandom(MB)
    with path.open("wb") as f:
        for _ in range(size // MB):
            f.write(block)


def _vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM missing")


def _one_size(root: Path, size_mb: int, repeat: int) -> dict[str, float]:
    src = root / f"src-{size_mb}.bin"
    _write_random(src, size_mb * MB)
    work = root / f"server-{size_mb}"
    work.mkdir()
    (work / "tasks.py").write_text(_TASKS)
    with LocalServer(app="tasks:app", cwd=work, state_dir=work / "state") as server:
        assert server.pid is not None
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _CLIENT,
                server.url,
                str(src),
                str(root / "out.bin"),
                str(repeat),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        server_rss = _vm_hwm_kib(server.pid)
    client = json.loads(proc.stdout.strip().splitlines()[-1])
    if (root / "out.bin").stat().st_size != src.stat().st_size:
        raise RuntimeError("downloaded object differs in size")
    copy = measure(lambda: shutil.copyfile(src, root / "copy.bin"), repeat=repeat)
    src.unlink()
    return {
        "up": size_mb / client["up"],
        "down": size_mb / client["down"],
        "copy": size_mb / copy,
        "client_rss": client["rss"] / 1024,
        "server_rss": server_rss / 1024,
    }


def run(quick: bool) -> list[Row]:
    """Upload/download throughput (MB/s) vs copyfile, and peak RSS at 10 vs 100 MB."""
    # Each round moves the object twice; a third of the usual repetitions keeps it short.
    repeat = max(1, repeats(quick) // 3)
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        root = Path(tmp)
        results = {size: _one_size(root, size, repeat) for size in SIZES_MB}
    small, large = results[SIZES_MB[0]], results[SIZES_MB[-1]]
    group = "storage"
    note = f"median of {repeat}; loopback; server fsyncs each upload, copyfile does not"
    rows = [
        Row(
            group,
            f"upload {size} MB (put from file)",
            r["up"],
            "MB/s",
            r["copy"],
            "shutil.copyfile",
            higher_is_better=True,
            note=note,
        )
        for size, r in results.items()
    ] + [
        Row(
            group,
            f"download {size} MB (download to file)",
            r["down"],
            "MB/s",
            r["copy"],
            "shutil.copyfile",
            higher_is_better=True,
            note=note,
        )
        for size, r in results.items()
    ]
    for who in ("client", "server"):
        rows.append(
            Row(
                group,
                f"{who} peak RSS, {SIZES_MB[-1]} MB object",
                large[f"{who}_rss"],
                "MiB",
                small[f"{who}_rss"],
                f"same at {SIZES_MB[0]} MB",
                note="flat when ratio is ~1.0x",
            )
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)

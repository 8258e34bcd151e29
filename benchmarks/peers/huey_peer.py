"""Huey with SQLite storage: a consumer with 8 worker threads, a blocking client.

Tuned for latency, as a developer would for local work: the consumer polls its queue from
every 1 ms up to every 10 ms when idle (``-d 0.001 -m 0.01``; the default starts at 100 ms),
and the client polls a result every 1 ms (Huey's own ``get(blocking=True)`` starts at 50 ms).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WARMUP_RUNS,
    blocking_workloads,
    emit,
    idle_rss_mib,
    parse_sizes,
    process,
)

THREADS = 8
POLL_S = 0.001

APP = """\
import os
import time

from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["BENCH_HUEY_DB"])


def wait(result):
    while True:
        value = result.get()
        if value is not None:
            return value
        time.sleep(0.001)


@huey.task()
def noop(x):
    return [x]


@huey.task()
def fan(n):
    children = [noop(i) for i in range(n)]
    return [len([wait(r) for r in children])]
"""


def main() -> None:
    args = parse_sizes()
    sizes = args.sizes
    workdir = Path(tempfile.mkdtemp(prefix="bench-huey-"))
    try:
        (workdir / "tasks.py").write_text(APP)
        import os

        os.environ["BENCH_HUEY_DB"] = str(workdir / "huey.db")
        sys.path.insert(0, str(workdir))
        import tasks  # type: ignore[import-not-found]

        consumer = Path(sys.executable).parent / "huey_consumer"
        cmd = [str(consumer), "tasks.huey", "-w", str(THREADS), "-k", "thread"]
        cmd += ["-d", "0.001", "-m", "0.01", "-q"]
        with process(cmd, cwd=workdir) as proc:

            def wait(result: object) -> object:
                while True:
                    value = result.get()  # type: ignore[attr-defined]
                    if value is not None:
                        return value
                    time.sleep(POLL_S)

            def one(i: int) -> None:
                value = wait(tasks.noop(i))
                if value != [i]:
                    raise RuntimeError(f"noop({i}) returned {value}")

            for i in range(WARMUP_RUNS):
                one(i)
            w5 = idle_rss_mib([proc.pid])
            figures = blocking_workloads(one, lambda n: wait(tasks.fan(n)), sizes)
        emit(
            **figures,
            w5_mib=w5,
            note=f"{THREADS} threads; consumer and client poll SQLite every 1 ms",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

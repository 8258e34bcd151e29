"""Where W2's CPU goes: per run, in the client, the server, the zygote and its workers.

Usage: ``.venv/bin/python benchmarks/cpu_split.py [--runs N] [--in-flight C] [--mode M]
[--profile-client]``

Runs ``bench_peers``' W2 (trivial runs awaited by C coroutines on one async client) against a
``LocalServer`` with one process per attempt and with reusable workers, and prints the CPU
each process spent per run: the client (``time.process_time``, its threads included), and,
from ``/proc/<pid>/stat``, the server, the zygote's own work (``fork()`` included) and its
workers (the exited ones' time is the zygote's ``cutime``/``cstime``, split into user and
kernel time). ``--profile-client`` adds cProfile's top functions of the client. This is the
breakdown behind the README's "what bounds each target"; a sampling profiler such as py-spy
(``py-spy record -p <server pid>``) shows the inside of the server.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from _common import children_by_parent, descendants
from ours import APP, noops

from render_sdk import Render
from render_sdk.testing import LocalServer

#: Clock ticks per second of ``/proc/<pid>/stat``'s times.
TICKS = os.sysconf("SC_CLK_TCK")
#: Runs before counting (imports, connections, the first workers).
WARMUP_RUNS = 20


@dataclass(frozen=True)
class Times:
    """One process's CPU seconds: its own, and its reaped children's (user, kernel)."""

    user: float
    system: float
    children_user: float
    children_system: float


def times(pid: int) -> Times | None:
    """``pid``'s CPU times from ``/proc``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return Times(*(int(fields[i]) / TICKS for i in (11, 12, 13, 14)))


def tree(root: int) -> dict[int, Times]:
    """Every live process under ``root`` (``root`` included) with its times."""
    found = {pid: times(pid) for pid in descendants([root])}
    return {pid: got for pid, got in found.items() if got is not None}


def zygote_of(server: int) -> int | None:
    """The server's warm process (``render_sdk.devserver._zygote``), if it runs one."""
    for pid in children_by_parent().get(server, ()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"render_sdk.devserver._zygote" in fh.read():
                    return pid
        except OSError:
            continue
    return None


def split(
    before: dict[int, Times], after: dict[int, Times], server: int, zygote: int | None
) -> tuple[float, float, float, float]:
    """CPU seconds of the server, the zygote itself, and the workers (user, kernel)."""

    def delta(pid: int, field: str) -> float:
        old = before.get(pid)
        return getattr(after[pid], field) - (getattr(old, field) if old else 0.0)

    server_s = delta(server, "user") + delta(server, "system")
    if zygote is None or zygote not in after:
        return server_s, 0.0, 0.0, 0.0
    zygote_s = delta(zygote, "user") + delta(zygote, "system")
    # Exited workers are in the zygote's children times; live ones count by themselves.
    workers_user = delta(zygote, "children_user")
    workers_system = delta(zygote, "children_system")
    for pid in after:
        if pid not in (server, zygote):
            workers_user += delta(pid, "user")
            workers_system += delta(pid, "system")
    return server_s, zygote_s, workers_user, workers_system


def measure(*, reuse: bool, runs: int, in_flight: int, profile: bool) -> list[str]:
    """The report lines of one mode."""
    workdir = Path(tempfile.mkdtemp(prefix="cpu-split-"))
    try:
        (workdir / "tasks.py").write_text(APP)
        with LocalServer(
            app="tasks:app",
            cwd=workdir,
            state_dir=workdir / "state",
            extra_args=["--no-reload"],
            reuse_workers=reuse,
        ) as server:
            assert server.pid is not None
            server_pid = server.pid
            zygote: int | None = None

            async def go() -> tuple[float, float, dict[int, Times], dict[int, Times]]:
                nonlocal zygote
                async with Render(base_url=server.url) as render:
                    await noops(render, WARMUP_RUNS, 1)
                    before = tree(server_pid)
                    zygote = zygote_of(server_pid)
                    profiler = cProfile.Profile() if profile else None
                    cpu, started = time.process_time(), time.perf_counter()
                    if profiler is not None:
                        profiler.enable()
                    await noops(render, runs, in_flight)
                    if profiler is not None:
                        profiler.disable()
                        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
                    elapsed = time.perf_counter() - started
                    return time.process_time() - cpu, elapsed, before, tree(server_pid)

            client_s, elapsed, before, after = asyncio.run(go())
        server_s, zygote_s, workers_user, workers_system = split(before, after, server_pid, zygote)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per = 1e3 / runs
    mode = "reusable workers" if reuse else "one process per attempt"
    return [
        f"{mode}: {runs / elapsed:.0f} runs/s, CPU per run (ms):",
        f"  client {client_s * per:.2f}",
        f"  server {server_s * per:.2f}",
        f"  zygote itself (fork() included) {zygote_s * per:.2f}",
        f"  workers {(workers_user + workers_system) * per:.2f}"
        f" (user {workers_user * per:.2f}, kernel {workers_system * per:.2f})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--mode", choices=["both", "default", "reuse"], default="both")
    parser.add_argument("--profile-client", action="store_true")
    args = parser.parse_args()
    # As on a user's machine (see bench_peers.BENCH_ENV).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    modes = {"both": (False, True), "default": (False,), "reuse": (True,)}[args.mode]
    for reuse in modes:
        for line in measure(
            reuse=reuse, runs=args.runs, in_flight=args.in_flight, profile=args.profile_client
        ):
            print(line, flush=True)


if __name__ == "__main__":
    main()

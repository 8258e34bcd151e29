"""What every workload script shares (stdlib only: it runs in each peer's own virtualenv).

A workload script is started as ``python <script> --w1 N --w2 N --w2-concurrency C --w3 N``
with the interpreter of the system it measures. It starts that system (server, workers,
broker) in a temporary directory, measures, stops everything it started, and prints one
line ``RESULT {json}`` with the keys of :data:`KEYS` (seconds, runs/s, MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The figures one script reports.
KEYS = ("w1_p50", "w2_rps", "w2_client_cpu", "w3_s", "w5_mib")
#: Prefix of the one line the harness parses.
RESULT_PREFIX = "RESULT "
#: How long the system sits idle before its memory is read (W5).
IDLE_BEFORE_RSS_S = 1.0
#: Runs before any figure is taken (imports, caches, connections, the first fork).
WARMUP_RUNS = 5


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does (the harness scales them down with ``--quick``)."""

    w1: int
    w2: int
    w2_concurrency: int
    w3: int


def parse_sizes(extra: Callable[[argparse.ArgumentParser], None] | None = None) -> Any:
    """The command line: workload sizes, plus what ``extra`` adds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--w1", type=int, required=True, help="W1 samples")
    parser.add_argument("--w2", type=int, required=True, help="W2 runs")
    parser.add_argument("--w2-concurrency", type=int, required=True, help="W2 runs in flight")
    parser.add_argument("--w3", type=int, required=True, help="W3 children")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    args.sizes = Sizes(args.w1, args.w2, args.w2_concurrency, args.w3)
    return args


def emit(**figures: Any) -> None:
    """Print the result line (every key of :data:`KEYS`, plus a free-text ``note``)."""
    missing = [key for key in KEYS if key not in figures]
    if missing:
        raise ValueError(f"result is missing {missing}")
    print(RESULT_PREFIX + json.dumps(figures), flush=True)


def children_by_parent() -> dict[int, list[int]]:
    """Every process on the machine, by parent pid (from ``/proc/*/stat``)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0  # exited meanwhile, or a kernel thread


def descendants(roots: Iterable[int]) -> set[int]:
    """``roots`` and every process below them, as ``/proc`` shows them now."""
    tree = children_by_parent()
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(tree.get(pid, ()))
    return seen


def tree_rss_mib(roots: Iterable[int]) -> float:
    """Resident memory of ``roots`` and all their descendants, MiB (from /proc)."""
    return sum(_rss_kib(pid) for pid in descendants(roots)) / 1024


def idle_rss_mib(roots: Iterable[int]) -> float:
    """W5: the process tree's memory after it sat idle for :data:`IDLE_BEFORE_RSS_S`."""
    time.sleep(IDLE_BEFORE_RSS_S)
    return tree_rss_mib(roots)


def w1_p50(one_run: Callable[[int], None], n: int) -> float:
    """W1: the median wall time of ``n`` single runs, one after another."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        one_run(i)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def threaded_w2(one_run: Callable[[int], None], n: int, concurrency: int) -> tuple[float, float]:
    """W2 for blocking clients: ``n`` runs by ``concurrency`` threads; (runs/s, CPU s/run)."""
    lock = threading.Lock()
    counter = iter(range(n))
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or errors:
                return
            try:
                one_run(i)
            except BaseException as exc:  # reported after the join, not lost in a thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"W2 failed: {errors[0]!r}") from errors[0]
    return n / elapsed, (time.process_time() - cpu) / n


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def blocking_workloads(
    one_run: Callable[[int], None], fan: Callable[[int], object], sizes: Sizes
) -> dict[str, float]:
    """W1, W2 (with its client CPU) and W3 of a system driven by a blocking client.

    Args:
        one_run: Runs trivial task ``i`` to its result.
        fan: Runs a parent awaiting ``n`` children and returns its result, ``[n]``.
        sizes: The workload sizes.

    Returns:
        :func:`emit`'s ``w1_p50``, ``w2_rps``, ``w2_client_cpu`` and ``w3_s``.
    """
    w1 = w1_p50(one_run, sizes.w1)
    w2, cpu = threaded_w2(one_run, sizes.w2, sizes.w2_concurrency)
    fanned: list[object] = []
    w3 = timed(lambda: fanned.append(fan(sizes.w3)))
    if fanned != [[sizes.w3]]:
        raise RuntimeError(f"fan({sizes.w3}) returned {fanned}")
    return {"w1_p50": w1, "w2_rps": w2, "w2_client_cpu": cpu, "w3_s": w3}


@contextlib.contextmanager
def process(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A background process with its output in ``cwd/<name>.log``, stopped (TERM, then KILL)."""
    log_path = cwd / f"{Path(cmd[0]).name}-{len(list(cwd.glob('*.log')))}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()


def wait_until(check: Callable[[], bool], *, what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` every 10 ms until it is true, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.01)

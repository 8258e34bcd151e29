"""Celery with Redis: redis-server on a loopback port in a temporary directory (no
persistence), a prefork worker with one process per core, results in Redis.

W3's parent waits for its children inside a task (``allow_join_result``), which a worker
process supports but blocks for the duration. W5 counts the worker's processes and
redis-server (the broker a local setup needs); the note gives redis-server's share.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    WARMUP_RUNS,
    blocking_workloads,
    emit,
    idle_rss_mib,
    parse_sizes,
    process,
    tree_rss_mib,
    wait_until,
)

APP = """\
import os

from celery import Celery
from celery.result import allow_join_result

url = os.environ["BENCH_REDIS_URL"]
app = Celery("tasks", broker=url, backend=url)
app.conf.update(worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)


@app.task
def noop(x):
    return [x]


@app.task
def fan(n):
    children = [noop.delay(i) for i in range(n)]
    with allow_join_result():
        return [len([r.get() for r in children])]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def main() -> None:
    args = parse_sizes(lambda p: p.add_argument("--redis-server", required=True))
    sizes = args.sizes
    workdir = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    try:
        port = _free_port()
        redis_cmd = [args.redis_server, "--bind", "127.0.0.1", "--port", str(port)]
        redis_cmd += ["--dir", str(workdir), "--save", "", "--appendonly", "no"]
        with process(redis_cmd, cwd=workdir) as redis:
            wait_until(lambda: _answers(port), what="redis-server answering PING")
            os.environ["BENCH_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            (workdir / "tasks.py").write_text(APP)
            sys.path.insert(0, str(workdir))
            import tasks  # type: ignore[import-not-found]

            celery = Path(sys.executable).parent / "celery"
            worker_cmd = [str(celery), "-A", "tasks", "worker", "--pool", "prefork"]
            worker_cmd += ["--concurrency", str(os.cpu_count() or 1), "--loglevel", "WARNING"]
            env = {**os.environ, "PYTHONPATH": str(workdir)}
            with process(worker_cmd, cwd=workdir, env=env) as worker:

                def one(i: int) -> None:
                    value = tasks.noop.delay(i).get(timeout=120)
                    if value != [i]:
                        raise RuntimeError(f"noop({i}) returned {value}")

                for i in range(WARMUP_RUNS):
                    one(i)
                w5 = idle_rss_mib([worker.pid, redis.pid])
                redis_mib = tree_rss_mib([redis.pid])
                figures = blocking_workloads(
                    one, lambda n: tasks.fan.delay(n).get(timeout=600), sizes
                )
        emit(
            **figures,
            w5_mib=w5,
            note=f"prefork x{os.cpu_count()}; W5 includes redis-server {redis_mib:.0f} MiB",
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The fault-and-load suite's server, app, process bookkeeping and run accounting.

Everything here drives a real ``render-workflows dev`` subprocess (through
:class:`render_sdk.testing.LocalServer`) on loopback, with real task processes and a real
SQLite file in the test's tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from render_sdk.testing import LocalServer

MiB = 1024 * 1024
TERMINAL = frozenset({"completed", "failed", "canceled"})

#: The app every scenario serves (written to ``fault_app.py`` in the test's tmp dir).
FAULT_APP = '''
import asyncio, os, time
from render_sdk import Retry, Workflows

app = Workflows()


@app.task(retry=Retry(max_retries=2, wait_duration_ms=100))
def burst(i: int) -> int:
    """A short run; retried when the server dies under it."""
    time.sleep(0.2)
    return i


@app.task(retry=Retry(max_retries=2, wait_duration_ms=100))
async def burst_parent(n: int) -> int:
    """A parent of n burst runs; retried when the server dies under it."""
    return sum(await asyncio.gather(*(burst(i) for i in range(n))))


def _note_pid(pid_dir: str, key: str) -> bool:
    """Append this attempt's pid to pid_dir/key (one small O_APPEND write, read whole
    lines only); True on the run's first attempt."""
    path = os.path.join(pid_dir, key)
    first = not os.path.exists(path)
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\\n")
    return first


@app.task(retry=Retry(max_retries=2, wait_duration_ms=100))
def victim(pid_dir: str, key: str) -> str:
    """Waits to be killed on its first attempt; the retry completes."""
    if _note_pid(pid_dir, key):
        time.sleep(120)
    return f"survived {key}"


@app.task(retry=Retry(max_retries=0, wait_duration_ms=0))
def fragile(pid_dir: str, key: str) -> str:
    """Waits to be killed; no retry, so the run fails."""
    _note_pid(pid_dir, key)
    time.sleep(120)
    return "unreachable"


@app.task(retry=Retry(max_retries=0, wait_duration_ms=0))
async def victims_parent(pid_dir: str, n: int) -> list:
    """Subtasks that are killed and retried while their parent waits."""
    return await asyncio.gather(*(victim(pid_dir, f"child-{i}") for i in range(n)))


@app.task
def square(x: int) -> int:
    return x * x


@app.task
async def fan(n: int) -> int:
    return sum(await asyncio.gather(*(square(i) for i in range(n))))


@app.task
def big_later(n: int, seconds: float) -> str:
    time.sleep(seconds)
    return "x" * n


@app.task
def big(n: int) -> str:
    return "x" * n


@app.task
def size(s: str) -> int:
    return len(s)


@app.task(retry=Retry(max_retries=0, wait_duration_ms=0))
async def send_big(n: int) -> int:
    """Starts a subtask whose input is a string of n bytes."""
    return await size("y" * n)
'''

#: Sets RLIMIT_NOFILE (soft and hard, so the server cannot raise it) and execs the server:
#: the limit applies to the server process itself (same pid) and everything it starts.
_NOFILE_EXEC = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


class FaultServer(LocalServer):
    """A LocalServer serving ``fault_app:app``, optionally under a lowered fd limit.

    Args:
        nofile: Start the server with ``RLIMIT_NOFILE`` soft = hard = ``nofile``
            (``ulimit -n``), set in the child before it execs the server.
        **kwargs: As for :class:`LocalServer`.
    """

    def __init__(self, *, nofile: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("app", "fault_app:app")
        kwargs.setdefault("extra_args", ["--no-reload"])
        super().__init__(**kwargs)
        self.nofile = nofile
        self.peak_rss = 0

    def argv(self) -> list[str]:
        argv = super().argv()
        if self.nofile is None:
            return argv
        return [sys.executable, "-c", _NOFILE_EXEC, str(self.nofile), *argv]

    def sample_peak(self) -> int:
        """Read the server's peak RSS (VmHWM) so far; keeps the largest across restarts."""
        if self.pid is not None:
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, _status_kib(self.pid, "VmHWM") * 1024)
        return self.peak_rss

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> int | None:
        self.sample_peak()
        return super().stop(kill=kill, timeout=timeout)


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    raise KeyError(key)


def nofile_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of ``pid`` (from /proc/<pid>/limits)."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise KeyError("Max open files")


@dataclass
class Figures:
    """What one scenario measured.

    Attributes:
        scenario: A short name, as shown in the summary and the README's table.
        runs: Runs the server accepted (202).
        lost: Accepted runs it no longer knows (404).
        stuck: Accepted runs not terminal at the scenario's deadline.
        peak_rss_mib: The server's peak resident memory (VmHWM from /proc), MiB.
        wall_s: Seconds from the scenario's start to its last check.
        extra: Scenario-specific figures.
        passed: Whether the scenario reached its end (set by :meth:`done`).
    """

    scenario: str
    runs: int = 0
    lost: int = 0
    stuck: int = 0
    peak_rss_mib: float = 0.0
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    passed: bool = False
    _started: float = field(default_factory=time.monotonic, repr=False)

    def account(self, outcome: dict[str, Any], runs: int | None = None) -> None:
        """Take runs (default: every run the outcome polled), lost and stuck from a
        :func:`settle` outcome."""
        self.lost, self.stuck = len(outcome["lost"]), len(outcome["stuck"])
        self.runs = runs if runs is not None else len(outcome["runs"]) + self.lost

    def done(self, server: FaultServer | None = None) -> None:
        """Stop the clock (and read the server's peak RSS): the scenario passed."""
        self.wall_s = round(time.monotonic() - self._started, 1)
        if server is not None:
            self.peak_rss_mib = round(server.sample_peak() / MiB, 1)
        self.passed = True

    def summary(self) -> str:
        """The one-line summary printed at the end of the session."""
        extra = ", ".join(f"{k} {v}" for k, v in self.extra.items())
        return (
            f"{'ok  ' if self.passed else 'FAIL'} {self.scenario}: runs {self.runs}, "
            f"lost {self.lost}, stuck {self.stuck}, peak RSS {self.peak_rss_mib:g} MiB, "
            f"{self.wall_s:g} s" + (f" ({extra})" if extra else "")
        )


#: The fixtures' types: ``fault_server(**kwargs)`` and ``figures("scenario")``.
MakeServer = Callable[..., FaultServer]
Record = Callable[[str], Figures]


# --------------------------------------------------------------------------- processes


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start time) of ``pid``, or None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def process_tree(roots: Iterable[int]) -> set[tuple[int, int]]:
    """Every live process below ``roots`` (and the roots), as (pid, start time) pairs."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children.setdefault(stat[0], []).append(int(entry))
            starts[int(entry)] = stat[1]
    found: set[tuple[int, int]] = set()
    todo = [pid for pid in roots if pid in starts]
    while todo:
        pid = todo.pop()
        if (pid, starts[pid]) not in found:
            found.add((pid, starts[pid]))
            todo.extend(children.get(pid, ()))
    return found


@dataclass
class Reaper:
    """Processes a killed server left behind (its zygote, its attempts), killed at teardown.

    A SIGKILLed server cannot stop its task processes; those still retry their callbacks
    for a while. The suite stops them itself so that it leaves nothing running.
    """

    known: set[tuple[int, int]] = field(default_factory=set)

    def adopt(self, roots: Iterable[int]) -> None:
        """Remember everything below ``roots`` now."""
        self.known |= process_tree(roots)

    def reap(self) -> int:
        """SIGKILL the remembered processes that are still the same processes; how many."""
        self.adopt(pid for pid, _ in self.known)  # children forked since adoption
        killed = 0
        for pid, start in self.known:
            stat = _stat(pid)
            if stat is not None and stat[1] == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
        return killed


# --------------------------------------------------------------------------- runs


def submit(client: httpx.Client, task: str, input: Any, **extra: Any) -> str:
    """POST /v1/task-runs; the run id."""
    r = client.post("/v1/task-runs", json={"task": task, "input": input, **extra})
    assert r.status_code == 202, r.text
    run_id: str = r.json()["id"]
    return run_id


def settle(client: httpx.Client, run_ids: Iterable[str], timeout: float) -> dict[str, Any]:
    """Poll every run until all are terminal or ``timeout`` passes.

    Returns:
        ``{"runs": {id: details}, "lost": [ids answering 404], "stuck": [ids not terminal]}``.
    """
    pending = list(dict.fromkeys(run_ids))
    runs: dict[str, Any] = {}
    lost: list[str] = []
    deadline = time.monotonic() + timeout
    while pending:
        still = []
        for run_id in pending:
            r = client.get(f"/v1/task-runs/{run_id}")
            if r.status_code == 404:
                lost.append(run_id)
                continue
            body = r.raise_for_status().json()
            runs[run_id] = body
            if body["status"] not in TERMINAL:
                still.append(run_id)
        pending = still
        if pending and time.monotonic() > deadline:
            break
        if pending:
            time.sleep(0.2)
    return {"runs": runs, "lost": lost, "stuck": pending}


def assert_settled(outcome: dict[str, Any]) -> None:
    """No run of a :func:`settle` outcome is lost or stuck."""
    assert outcome["lost"] == [], f"lost: {outcome['lost']}"
    stuck = {run_id: outcome["runs"][run_id]["status"] for run_id in outcome["stuck"]}
    assert stuck == {}, f"stuck: {stuck}"


def all_runs(client: httpx.Client) -> list[dict[str, Any]]:
    """Every run the server lists, page by page (GET /v1/task-runs with cursors)."""
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = client.get("/v1/task-runs", params=params).raise_for_status().json()
        out.extend(item["taskRun"] for item in page)
        if len(page) < params["limit"]:
            return out
        params["cursor"] = page[-1]["cursor"]


def statuses(runs: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many runs are in each status."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return dict(sorted(counts.items()))

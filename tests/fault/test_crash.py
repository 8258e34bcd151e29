"""Crashes under load: the server SIGKILLed mid-burst, task processes SIGKILLed mid-run.

Every accepted run must reach a terminal state (lost = 0, stuck = 0), per its retry policy.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fault_support import (
    MakeServer,
    Reaper,
    Record,
    all_runs,
    assert_settled,
    settle,
    statuses,
    submit,
)

pytestmark = [pytest.mark.fault]

BURST = 200
#: Parents of CHILDREN burst subtasks each, started just before the burst.
PARENTS = 3
PARENT_CHILDREN = 20
#: The server is killed once this many of the burst's runs were accepted.
KILL_AFTER = 80
SUBMITTERS = 8
#: Generous bounds (the machine runs at load 10+): the whole burst is submitted, and then
#: every run is terminal, within these.
SUBMIT_S = 90.0
SETTLE_S = 90.0


@pytest.mark.timeout(240)
def test_server_sigkill_mid_burst_loses_nothing(
    fault_server: MakeServer, figures: Record, reaper: Reaper
) -> None:
    fig = figures("server SIGKILL mid-burst")
    server = fault_server()
    url = server.url  # restart keeps the port
    accepted: dict[int, str] = {}
    retried_posts = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + SUBMIT_S
    with httpx.Client(base_url=url, timeout=10) as c:
        parents = [submit(c, "burst_parent", [PARENT_CHILDREN]) for _ in range(PARENTS)]

    def submitter(indices: range) -> None:
        # Each POST carries an idempotency key, so one whose answer died with the server
        # is sent again after the restart and must not start a second run.
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in indices:
                while True:
                    try:
                        r = c.post(
                            "/v1/task-runs",
                            json={"task": "burst", "input": [i], "idempotencyKey": f"burst-{i}"},
                        )
                    except httpx.TransportError:
                        r = None
                    if r is not None and r.status_code == 202:
                        with lock:
                            accepted[i] = r.json()["id"]
                        break
                    assert r is None or r.status_code >= 500, r.text
                    if time.monotonic() > deadline:
                        return
                    with lock:
                        retried_posts[0] += 1
                    time.sleep(0.1)

    with ThreadPoolExecutor(SUBMITTERS) as pool:
        futures = [pool.submit(submitter, range(k, BURST, SUBMITTERS)) for k in range(SUBMITTERS)]
        while len(accepted) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        with lock:
            at_kill = len(accepted)
        assert server.pid is not None
        reaper.adopt([server.pid])  # its zygote and attempts outlive a SIGKILL
        server.stop(kill=True)
        server.start()
        for f in futures:
            f.result()

    assert len(accepted) == BURST, f"only {len(accepted)} of {BURST} accepted"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        settle(c, [*accepted.values(), *parents], SETTLE_S)
        listed = all_runs(c)
        # Every accepted run and every run listed (the parents' children too).
        outcome = settle(c, [*accepted.values(), *parents, *(r["id"] for r in listed)], 30)
    runs = outcome["runs"]
    restarted = sum(
        1
        for run in runs.values()
        for a in run["attempts"]
        if "server restarted" in (a.get("error") or "")
    )
    recovered_lines = [line for line in server.output if line.startswith("Recovered ")]
    leftovers = reaper.reap()
    fig.account(outcome)
    fig.extra = {
        "accepted before the kill": at_kill,
        "recovered at restart": recovered_lines[0].split()[1] if recovered_lines else 0,
        "attempts failed by the restart": restarted,
        "parents retried": sum(1 for p in parents if len(runs[p]["attempts"]) > 1),
        "POSTs retried": retried_posts[0],
        "its processes still running after recovery": leftovers,
        "statuses": statuses(runs.values()),
    }
    assert_settled(outcome)
    roots = {r["id"] for r in listed if not r.get("parentTaskRunId")}
    assert len(roots) == BURST + PARENTS, "a retried POST started a second run"
    # A parent the restart interrupted is retried; its retry takes over the children the
    # dead attempt started instead of starting them again.
    children = {p: [r for r in listed if r.get("parentTaskRunId") == p] for p in parents}
    assert {p: len(kids) for p, kids in children.items()} == dict.fromkeys(parents, PARENT_CHILDREN)
    total = sum(range(PARENT_CHILDREN))
    assert {p: runs[p]["results"] for p in parents} == {p: [total] for p in parents}
    # burst retries twice: a run the restart interrupted completes on its next attempt.
    assert {i: runs[run_id]["results"] for i, run_id in accepted.items()} == {
        i: [i] for i in range(BURST)
    }
    assert len(recovered_lines) == 1, server.output[-40:]
    fig.done(server)


VICTIMS = 10
FRAGILE = 3
CHILDREN = 4
KILL_S = 60.0


def _first_pids(pid_dir: Path) -> dict[str, int]:
    """The first attempt's pid of every run that wrote one (complete lines only)."""
    out = {}
    for path in pid_dir.iterdir():
        text = path.read_text()
        if "\n" in text:
            out[path.name] = int(text.split("\n", 1)[0])
    return out


@pytest.mark.timeout(180)
def test_task_processes_sigkilled_mid_run_are_retried(
    fault_server: MakeServer, figures: Record, fault_dir: Path
) -> None:
    fig = figures("task processes SIGKILLed mid-run")
    server = fault_server()
    pid_dir = fault_dir / "pids"
    pid_dir.mkdir()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        victims = {f"v{i}": submit(c, "victim", [str(pid_dir), f"v{i}"]) for i in range(VICTIMS)}
        fragile = {f"f{i}": submit(c, "fragile", [str(pid_dir), f"f{i}"]) for i in range(FRAGILE)}
        parent = submit(c, "victims_parent", [str(pid_dir), CHILDREN])
        expected = {*victims, *fragile, *(f"child-{i}" for i in range(CHILDREN))}
        killed: set[str] = set()
        deadline = time.monotonic() + KILL_S
        # Kill each run's first attempt once it is up: the runs are all running at once.
        while killed != expected:
            assert time.monotonic() < deadline, f"never started: {expected - killed}"
            for key, pid in _first_pids(pid_dir).items():
                if key not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(key)
            time.sleep(0.05)
        ids = [*victims.values(), *fragile.values(), parent]
        outcome = settle(c, ids, 90)
        listed = all_runs(c)
        everything = settle(c, [r["id"] for r in listed], 30)
    runs = outcome["runs"]
    fig.account(everything)
    fig.extra = {"processes killed": len(killed), "statuses": statuses(everything["runs"].values())}
    assert_settled(everything)
    for key, run_id in victims.items():
        run = runs[run_id]
        assert (run["status"], run["results"]) == ("completed", [f"survived {key}"]), run
        assert [a["status"] for a in run["attempts"]] == ["failed", "completed"], run
        assert "killed by signal 9" in run["attempts"][0]["error"], run["attempts"][0]
    for run_id in fragile.values():
        run = runs[run_id]
        assert run["status"] == "failed", run
        assert len(run["attempts"]) == 1, "max_retries=0: no retry"
        assert "killed by signal 9" in run["error"], run["error"]
    assert runs[parent]["status"] == "completed", runs[parent]
    # A list result is the run's results array itself.
    assert runs[parent]["results"] == [f"survived child-{i}" for i in range(CHILDREN)]
    # Every retried attempt wrote a second pid: one retry per kill, no more.
    assert all(len(p.read_text().split()) == 2 for p in pid_dir.iterdir() if p.name[0] != "f")
    fig.done(server)

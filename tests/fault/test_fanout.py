"""A 1,000-subtask fan-out with the server at ``ulimit -n 1024`` (soft = hard, so it cannot
raise it): the fan-out completes and the server's output has no traceback storm."""

from __future__ import annotations

import contextlib
import re
import threading

import httpx
import pytest
from fault_support import (
    MakeServer,
    Record,
    all_runs,
    assert_settled,
    nofile_limit,
    settle,
    statuses,
    submit,
)
from server_probe import open_fds

from render_sdk.devserver._constants import LISTENING_PREFIX

pytestmark = [pytest.mark.fault]

NOFILE = 1024
FAN_OUT = 1000
#: A run's status line ("Task <transition>: trn-...", indented two spaces per subtask level).
STATUS_LINE = re.compile(r"^ *Task [A-Za-z ]+: trn-")
#: Output lines after "Listening on" that are not one run's status line: a few notices at
#: most (the old accept() storm printed millions).
MAX_OTHER_LINES = 10


@pytest.mark.timeout(240)
def test_fan_out_of_1000_at_ulimit_1024(fault_server: MakeServer, figures: Record) -> None:
    fig = figures(f"{FAN_OUT:,}-subtask fan-out at ulimit -n {NOFILE}")
    server = fault_server(nofile=NOFILE)
    assert server.pid is not None
    assert nofile_limit(server.pid) == NOFILE, "the limit applies to the server itself"
    fds = [open_fds(server.pid)]
    stop = threading.Event()

    def sample_fds(pid: int) -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(OSError):
                fds.append(open_fds(pid))

    sampler = threading.Thread(target=sample_fds, args=(server.pid,), daemon=True)
    sampler.start()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        parent = submit(c, "fan", [FAN_OUT])
        outcome = settle(c, [parent], 180)
        stop.set()
        sampler.join(5)
        everything = settle(c, [r["id"] for r in all_runs(c)], 30)
    server.stop()  # its peak RSS is read first
    start = next(i for i, line in enumerate(server.output) if line.startswith(LISTENING_PREFIX))
    after = server.output[start + 1 :]
    others = [line for line in after if not STATUS_LINE.match(line)]
    tracebacks = [line for line in after if "Traceback" in line]
    fig.account(everything)
    fig.extra = {
        "server fds peak": f"{max(fds)}/{NOFILE}",
        "output lines": len(after),
        "non-status lines": len(others),
        "tracebacks": len(tracebacks),
        "statuses": statuses(everything["runs"].values()),
    }
    run = outcome["runs"][parent]
    assert (run["status"], run["results"]) == ("completed", [sum(i * i for i in range(FAN_OUT))])
    assert_settled(everything)
    assert fig.runs == FAN_OUT + 1
    assert statuses(everything["runs"].values()) == {"completed": FAN_OUT + 1}
    assert tracebacks == [], "\n".join(after[-40:])
    assert not [line for line in after if "Too many open files" in line]
    assert len(others) <= MAX_OTHER_LINES, "\n".join(others[:40])
    # One status line per transition (pending, running, completed) of each run, no more.
    assert len(after) - len(others) == 3 * (FAN_OUT + 1)
    fig.done(server)

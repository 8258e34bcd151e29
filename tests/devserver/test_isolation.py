"""End to end: one attempt's task socket serves that attempt's processes and no others.

A victim run publishes its socket path (as any same-user process could find it, by listing
the socket directory or reading its environment); an intruder run, and a plain process
started by the test, connect to it and try to read its input, start a subtask under it,
and complete it with a forged result. Each call must get 403, and the victim must complete
with its own result, no subtask and one attempt. A process the victim starts in a session
of its own is still served: it descends from the attempt.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver_helpers import start_run, wait_status, wait_terminal

from render_sdk.testing import LocalServer

#: The forged calls, shared by the intruder task and the plain intruder process.
FORGE = r"""
import base64, json, os, sys, time
import httpx

def b64(value):
    return base64.b64encode(json.dumps(value).encode()).decode()

def forge(path):
    out = {}
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://task",
                      timeout=30) as c:
        def call(name, method, url, body=None):
            r = c.request(method, url, json=body)
            out[name] = [r.status_code, r.json().get("message") if r.status_code >= 400 else None]
        call("input", "GET", "/input")
        call("subtask", "POST", "/run-subtask", {"task_name": "victim", "input": b64(["x"])})
        call("result", "POST", "/get-subtask-result", {"task_run_id": "trn-x"})
        call("callback", "POST", "/callback", {"complete": {"output": b64(["forged"])}})
    return out

def victim_path(d):
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(d, "victim.path")):
        if time.monotonic() > deadline:
            raise SystemExit("no victim.path")
        time.sleep(0.05)
    return open(os.path.join(d, "victim.path")).read()
"""

APP = (
    FORGE
    + r"""
import subprocess
from render_sdk import Workflows

app = Workflows()

DESCENDANT = '''
import os, sys, httpx
with httpx.Client(transport=httpx.HTTPTransport(uds=sys.argv[1]), base_url="http://task") as c:
    r = c.get("/input")
    print(r.status_code, os.getsid(0) == os.getpid())
'''

@app.task
def victim(d: str) -> dict:
    path = os.environ["RENDER_SDK_SOCKET_PATH"]
    # A helper in a session of its own (like a daemonizing tool) still descends from us.
    child = subprocess.run([sys.executable, "-c", DESCENDANT, path], capture_output=True,
                           text=True, start_new_session=True, timeout=60)
    tmp = os.path.join(d, "victim.tmp")
    with open(tmp, "w") as fh:
        fh.write(path)
    os.rename(tmp, os.path.join(d, "victim.path"))
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"mine": d, "descendant": child.stdout.split()}

@app.task
def intruder(d: str) -> dict:
    return forge(victim_path(d))
"""
)

PLAIN_INTRUDER = FORGE + "\nprint(json.dumps(forge(victim_path(sys.argv[1]))))\n"


def assert_forbidden(calls: dict[str, Any]) -> None:
    assert set(calls) == {"input", "subtask", "result", "callback"}
    for name, (status, message) in calls.items():
        assert status == 403, (name, status, message)
        assert "belongs to another task attempt" in message


@pytest.mark.parametrize("warm", [True, False], ids=["forked", "spawned"])
def test_a_foreign_process_cannot_act_for_an_attempt(
    make_server: Callable[..., LocalServer], app_dir: Path, tmp_path: Path, warm: bool
) -> None:
    (app_dir / "iso.py").write_text(textwrap.dedent(APP))
    server = make_server(app="iso:app", warm=warm)
    shared = tmp_path / "shared"
    shared.mkdir()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        victim = start_run(c, "victim", [str(shared)])
        deadline = time.monotonic() + 60
        while not (shared / "victim.path").exists():
            assert time.monotonic() < deadline, "the victim never published its socket"
            time.sleep(0.05)
        sock = (shared / "victim.path").read_text()
        # The name says nothing about the run or its order.
        assert len(Path(sock).stem) >= 16

        # Another run's task process.
        intruder = start_run(c, "intruder", [str(shared)])
        done = wait_terminal(c, intruder)
        assert done["status"] == "completed", done
        assert_forbidden(done["results"][0])

        # A process outside the server altogether.
        plain = subprocess.run(
            [sys.executable, "-c", PLAIN_INTRUDER, str(shared)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert_forbidden(json.loads(plain.stdout))

        # The victim is untouched: still running, then completed with its own result.
        wait_status(c, victim, "running", timeout=1)
        (shared / "go").touch()
        done = wait_terminal(c, victim)
        assert done["status"] == "completed", done
        assert done["results"] == [{"mine": str(shared), "descendant": ["200", "True"]}]
        assert len(done["attempts"]) == 1
        runs = c.get("/v1/task-runs", params={"limit": 100}).raise_for_status().json()
        assert sorted(r["id"] for r in runs) == sorted([victim, intruder])

"""Slow and greedy clients (issue 10 items 6 and 7), against a real server with short,
flag-given deadlines: connections that trickle or never finish their headers or bodies are
closed in time, on the REST port and on a task socket, and the fds they held come back;
large partial bodies on the task sockets are held within one shared budget."""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from devserver_helpers import start_run, wait_terminal

from render_sdk.devserver._constants import MAX_SOCKET_BUFFERED_BYTES
from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]

HEADER_S = 1.0
BODY_S = 2.0
#: Deadlines short enough for a test, as the documented flags set them.
FLAGS = ["--header-timeout", f"{HEADER_S:g}", "--body-timeout", f"{BODY_S:g}"]
SLOW = 200
#: However loaded the machine, the server closes them well within this.
MARGIN_S = 20.0

APP = """
import os, socket, threading, time

from render_sdk import Workflows

app = Workflows()

def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))

def head(extra=b"", target=b"/callback"):
    return b"POST " + target + b" HTTP/1.1\\r\\nHost: task\\r\\n" + extra

def steady_request(path):
    # A 3 MiB body sent in slices over longer than the body timeout, but never stalling.
    import base64, json
    payload = base64.b64encode(json.dumps(["x" * (2 * 1024 * 1024)]).encode()).decode()
    # An unknown task: the whole body is read and answered 404, and nothing starts.
    body = json.dumps({"task_name": "no-such-task", "input": payload}).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    extra = f"Content-Length: {len(body)}\\r\\nConnection: close\\r\\n\\r\\n".encode()
    s.sendall(head(extra, b"/run-subtask"))
    for i in range(0, len(body), 256 * 1024):
        time.sleep(0.3)
        s.sendall(body[i:i + 256 * 1024])
    answer = s.recv(100).split(b"\\r\\n")[0].decode()
    s.close()
    return answer

@app.task
def square(x: int) -> int:
    return x * x

@app.task
def slowloris(n: int, server_pid: int, wait_s: float) -> dict:
    path = os.environ["RENDER_SDK_SOCKET_PATH"]
    before = fds(server_pid)
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        if i % 3 == 1:
            s.sendall(head())  # a head that never ends
        elif i % 3 == 2:
            s.sendall(head(b"Content-Length: 1000\\r\\n\\r\\n{"))  # a body that never comes
        socks.append(s)
    began = time.monotonic()
    # The same socket still serves a normal request meanwhile.
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.connect(path)
    probe.sendall(b"GET /input HTTP/1.1\\r\\nHost: task\\r\\nConnection: close\\r\\n\\r\\n")
    normal = probe.recv(100).split(b"\\r\\n")[0].decode()
    probe.close()
    steady = steady_request(path)
    closed, answers = 0, {}
    for s in socks:
        s.settimeout(max(0.1, began + wait_s - time.monotonic()))
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
            closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        first = data.split(b"\\r\\n")[0].decode() or "(nothing)"
        answers[first] = answers.get(first, 0) + 1
    seconds = time.monotonic() - began
    time.sleep(0.2)
    after = fds(server_pid)
    for s in socks:
        s.close()
    return {"before": before, "after": after, "closed": closed,
            "seconds": seconds, "normal": normal, "answers": answers, "steady": steady}

@app.task
def hog(n: int, size: int, server_pid: int) -> dict:
    path = os.environ["RENDER_SDK_SOCKET_PATH"]
    request = head(f"Content-Length: {size}\\r\\n\\r\\n".encode())
    body = memoryview(b"x" * (size - 1024 * 1024))  # all but the last MiB: never complete
    socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(n)]
    outcome = [""] * n

    def send(i):
        s = socks[i]
        s.connect(path)
        try:
            s.sendall(request)
            s.sendall(body)
            outcome[i] = "held"
        except OSError:
            s.settimeout(10)
            outcome[i] = s.recv(65536).split(b"\\r\\n")[0].decode() or "closed"

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    time.sleep(0.5)
    with open(f"/proc/{server_pid}/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    for s in socks:
        s.close()
    return {"outcome": outcome, "hwm_kib": hwm}
"""


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _server(make_server: MakeServer, tmp_path: Path, *flags: str) -> LocalServer:
    (tmp_path / "slow_app.py").write_text(textwrap.dedent(APP))
    return make_server(app="slow_app:app", cwd=tmp_path, extra_args=list(flags))


def _trickle(socks: list[socket.socket], stop: threading.Event) -> None:
    """Send one byte on each socket every 0.2 s until it is closed (or the test ends)."""
    live = list(socks)
    while live and not stop.wait(0.2):
        for sock in list(live):
            try:
                sock.send(b"x")
            except OSError:
                live.remove(sock)


def _wait_closed(sock: socket.socket, deadline: float) -> bool:
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def test_slow_rest_clients_are_cut_off_and_their_fds_come_back(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, *FLAGS)
    assert server.pid is not None
    url = httpx.URL(server.url)
    assert url.host
    assert url.port
    host = f"127.0.0.1:{url.port}".encode()
    post = (
        b"POST /v1/task-runs HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/v1/tasks").status_code == 200
        baseline = _fds(server.pid)
        socks: list[socket.socket] = []
        trickled: list[socket.socket] = []
        stop = threading.Event()
        try:
            for i in range(SLOW):
                sock = socket.create_connection((url.host, url.port), timeout=30)
                kind = i % 5
                if kind == 1:  # a head that never ends
                    sock.sendall(post)
                elif kind == 2:  # a head that trickles
                    sock.sendall(post + b"X-Slow: ")
                    trickled.append(sock)
                elif kind == 3:  # a body that never comes
                    sock.sendall(post + b"Content-Length: 1000\r\n\r\n{")
                elif kind == 4:  # a body that trickles
                    sock.sendall(post + b"Content-Length: 100000\r\n\r\n[")
                    trickled.append(sock)
                socks.append(sock)
            threading.Thread(target=_trickle, args=(trickled, stop), daemon=True).start()
            began = time.monotonic()
            # Normal clients are served meanwhile.
            assert c.get("/v1/tasks").status_code == 200
            done = wait_terminal(c, start_run(c, "square", [7]), 60)
            assert done["status"] == "completed"
            assert done["results"] == [49]
            deadline = began + BODY_S + MARGIN_S
            still_open = [i for i, s in enumerate(socks) if not _wait_closed(s, deadline)]
            took = time.monotonic() - began
        finally:
            stop.set()
            for sock in socks:
                sock.close()
        assert still_open == [], f"{len(still_open)} slow connections were not closed"
        print(f"{SLOW} slow REST connections closed within {took:.1f}s (fds back to {baseline})")
        assert took < BODY_S + MARGIN_S
        fd_deadline = time.monotonic() + 10
        while _fds(server.pid) > baseline and time.monotonic() < fd_deadline:
            time.sleep(0.1)
        assert _fds(server.pid) <= baseline
        assert c.get("/v1/tasks").status_code == 200
        # A large body that keeps coming is not cut, however long it takes in all.
        r = c.post(
            "/v1/task-runs", content=_steady_body(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 202, r.text


def _steady_body() -> Iterator[bytes]:
    body = json.dumps({"task": "square", "input": ["x" * (2 * 1024 * 1024)]}).encode()
    for i in range(0, len(body), 256 * 1024):
        time.sleep(0.3)
        yield body[i : i + 256 * 1024]


def test_slow_task_socket_clients_are_cut_off_and_their_fds_come_back(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = _server(make_server, tmp_path, *FLAGS)
    assert server.pid is not None
    with httpx.Client(base_url=server.url, timeout=30) as c:
        done = wait_terminal(
            c, start_run(c, "slowloris", [SLOW, server.pid, BODY_S + MARGIN_S]), 120
        )
    assert done["status"] == "completed", done.get("error")
    out = done["results"][0]
    assert out["normal"] == "HTTP/1.1 200 OK", out
    assert out["steady"] == "HTTP/1.1 404 Not Found", out
    assert out["closed"] == SLOW, out
    print(f"{SLOW} slow task-socket connections closed within {out['seconds']:.1f}s; fds {out}")
    assert out["seconds"] < BODY_S + MARGIN_S, out
    # A late head is dropped silently; a late body is told why.
    assert out["answers"] == {
        "(nothing)": SLOW - SLOW // 3,
        "HTTP/1.1 408 Request Timeout": SLOW // 3,
    }
    assert out["after"] <= out["before"] + 2, out


def test_large_partial_bodies_share_one_budget(make_server: MakeServer, tmp_path: Path) -> None:
    server = _server(make_server, tmp_path)
    assert server.pid is not None
    size = 63 * 1024 * 1024
    n = 8
    with httpx.Client(base_url=server.url, timeout=30) as c:
        baseline = _hwm_kib(server.pid)
        done = wait_terminal(c, start_run(c, "hog", [n, size, server.pid]), 120)
        assert done["status"] == "completed", done.get("error")
        out = done["results"][0]
        fits = MAX_SOCKET_BUFFERED_BYTES // size
        assert (
            sorted(out["outcome"])
            == ["HTTP/1.1 503 Service Unavailable"] * (n - fits) + ["held"] * fits
        ), out["outcome"]
        grown = (out["hwm_kib"] - baseline) * 1024
        print(f"{n} x {size // 2**20} MiB partial bodies: server peak RSS +{grown / 2**20:.0f} MiB")
        # Bounded by the budget (plus the reader's slack), not by 8 x 63 MB.
        assert grown < MAX_SOCKET_BUFFERED_BYTES + 64 * 1024 * 1024, grown
        # The held bodies were given back: normal work goes on.
        again = wait_terminal(c, start_run(c, "square", [3]), 60)
        assert again["results"] == [9]

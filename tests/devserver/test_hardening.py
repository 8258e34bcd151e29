"""Issue 10 hardening, end to end on a real server: bad input, auth, files, objects."""

from __future__ import annotations

import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from devserver_helpers import wait_terminal

from render_sdk.testing import LocalServer

MakeServer = Callable[..., LocalServer]


@pytest.mark.parametrize("value", ["0", "false", '""'])
def test_falsy_inputs_are_400_like_other_scalars(client: httpx.Client, value: str) -> None:
    before = len(client.get("/v1/task-runs", params={"limit": 100}).json())
    body = f'{{"task": "square", "input": {value}}}'.encode()
    r = client.post("/v1/task-runs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "`input` must be a JSON array" in r.json()["message"]
    # Nothing was started.
    assert len(client.get("/v1/task-runs", params={"limit": 100}).json()) == before


def test_idempotency_key_reused_for_a_different_call_is_409(client: httpx.Client) -> None:
    body = {"task": "square", "input": [7], "idempotencyKey": "conflict-key-1"}
    first = client.post("/v1/task-runs", json=body)
    assert first.status_code == 202
    again = client.post("/v1/task-runs", json=body)
    assert again.json()["id"] == first.json()["id"]
    other_input = client.post("/v1/task-runs", json={**body, "input": [8]})
    assert other_input.status_code == 409
    message = other_input.json()["message"]
    assert "conflict-key-1" in message
    assert first.json()["id"] in message
    other_task = client.post("/v1/task-runs", json={**body, "task": "add"})
    assert other_task.status_code == 409
    assert wait_terminal(client, first.json()["id"])["results"] == [49]


def test_client_disconnect_mid_body_leaves_no_traceback(server: LocalServer) -> None:
    url = httpx.URL(server.url)
    assert url.host
    assert url.port
    for _ in range(3):
        with socket.create_connection((url.host, url.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/task-runs HTTP/1.1\r\nHost: "
                + f"{url.host}:{url.port}".encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                + b'{"task": "square", "inp'
            )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # let the server notice the disconnects
            assert c.get("/v1/tasks").status_code == 200
            time.sleep(0.2)
    out = "\n".join(server.output)
    assert "ClientDisconnect" not in out
    assert "Traceback" not in out


def test_bearer_scheme_is_case_insensitive(make_server: MakeServer) -> None:
    server = make_server(api_key="sekret")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for scheme in ("Bearer", "bearer", "BEARER"):
            r = c.get("/v1/tasks", headers={"Authorization": f"{scheme} sekret"})
            assert r.status_code == 200, scheme
        assert c.get("/v1/tasks", headers={"Authorization": "bearer wrong"}).status_code == 401
        assert c.get("/v1/tasks", headers={"Authorization": "Basic sekret"}).status_code == 401
        assert c.get("/v1/tasks", headers={"Authorization": "sekret"}).status_code == 401


def test_api_key_from_a_file_stays_out_of_the_command_line(
    make_server: MakeServer, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-file\n")
    server = make_server(extra_args=["--api-key-file", str(key_file)])
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/v1/tasks").status_code == 401
        assert c.get("/v1/tasks", headers={"Authorization": "Bearer from-file"}).status_code == 200
    assert server.pid is not None
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert b"from-file" not in cmdline


def test_wildcard_host_prints_a_connectable_client_url(make_server: MakeServer) -> None:
    server = make_server(host="0.0.0.0", env={"RENDER_API_KEY": "k"})
    line = server.wait_for_output(r"^Clients:")
    assert "RENDER_LOCAL_DEV_URL=http://127.0.0.1:" in line
    assert "0.0.0.0" not in line


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_dir_and_files_are_owner_only(make_server: MakeServer, app_dir: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files would otherwise be 0644
    try:
        server = make_server(state_dir=".state")
    finally:
        os.umask(old)
    state = app_dir / ".state"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        run = c.post("/v1/task-runs", json={"task": "square", "input": [3]}).json()
        wait_terminal(c, run["id"])
        base = "/v1/objects/tea-perm/oregon"
        put = c.put(f"{base}/secret.txt", json={"sizeBytes": 5}).json()
        assert c.put(put["url"], content=b"hello").status_code == 200
    assert _mode(state) == 0o700
    files = [p for p in state.rglob("*") if p.is_file() and not p.is_symlink()]
    names = {p.name for p in files}
    assert {"devserver.sqlite3", "devserver.sqlite3-wal", "secret.txt"} <= names
    for path in files:
        assert _mode(path) == 0o600, path


def test_object_download_does_not_follow_a_planted_symlink(
    make_server: MakeServer, app_dir: Path, tmp_path: Path
) -> None:
    server = make_server(state_dir=".objs")
    outside = tmp_path / "outside-secret"
    outside.write_bytes(b"not an object")
    bucket = app_dir / ".objs" / "objects" / "oregon" / "tea-link"
    bucket.mkdir(parents=True)
    (bucket / "link.txt").symlink_to(outside)
    (bucket / "real.txt").write_bytes(b"real")
    base = f"{server.url}/v1/objects/tea-link/oregon"
    with httpx.Client(timeout=30) as http:
        keys = [i["object"]["key"] for i in http.get(base).json()["items"]]
        assert keys == ["real.txt"]
        assert http.get(base + "/link.txt").status_code == 404
        assert http.get(http.get(base + "/real.txt").json()["url"]).content == b"real"
        # A presigned URL obtained while the key was a regular file must not follow a
        # symlink put in its place afterwards.
        url = http.get(base + "/real.txt").json()["url"]
        (bucket / "real.txt").unlink()
        (bucket / "real.txt").symlink_to(outside)
        r = http.get(url)
        assert r.status_code == 404
        assert b"not an object" not in r.content


def _post_raw(server: LocalServer, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """POST /v1/task-runs with exactly these headers (httpx would add its own Host)."""
    url = httpx.URL(server.url)
    assert url.host
    assert url.port
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /v1/task-runs HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def test_hostile_pages_cannot_drive_the_server(server: LocalServer, client: httpx.Client) -> None:
    before = len(client.get("/v1/task-runs", params={"limit": 100}).json())
    own = httpx.URL(server.url).netloc.decode()
    body = b'{"task": "square", "input": [2]}'
    # What a browser sends for a form-like POST from another site: no preflight.
    status, answer = _post_raw(
        server,
        {"Host": own, "Content-Type": "text/plain", "Origin": "http://evil.example"},
        body,
    )
    assert status == 403
    assert b"--allow-origin" in answer
    status, _ = _post_raw(
        server,
        {"Host": own, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        body,
    )
    assert status == 403
    # DNS rebinding: the page's own name in Host.
    status, answer = _post_raw(
        server, {"Host": f"evil.example:{server.port}", "Content-Type": "application/json"}, body
    )
    assert status == 421
    assert b"--allow-host" in answer
    r = client.get("/v1/task-runs", headers={"Host": "rebound.example"})
    assert r.status_code == 421
    # A JSON body must say so.
    status, answer = _post_raw(server, {"Host": own, "Content-Type": "text/plain"}, body)
    assert status == 415
    assert b"application/json" in answer
    assert len(client.get("/v1/task-runs", params={"limit": 100}).json()) == before
    # Same-origin browser requests and plain clients keep working.
    status, _ = _post_raw(
        server,
        {
            "Host": own,
            "Content-Type": "application/json; charset=utf-8",
            "Origin": f"http://{own}",
            "Sec-Fetch-Site": "same-origin",
        },
        body,
    )
    assert status == 202
    status, _ = _post_raw(
        server, {"Host": f"localhost:{server.port}", "Content-Type": "application/json"}, body
    )
    assert status == 202


def test_allow_flags_admit_named_hosts_and_origins(make_server: MakeServer) -> None:
    server = make_server(
        extra_args=["--allow-host", "devbox.test", "--allow-origin", "http://localhost:3000"]
    )
    body = b'{"task": "square", "input": [2]}'
    status, _ = _post_raw(
        server, {"Host": f"devbox.test:{server.port}", "Content-Type": "application/json"}, body
    )
    assert status == 202
    own = httpx.URL(server.url).netloc.decode()
    status, _ = _post_raw(
        server,
        {
            "Host": own,
            "Content-Type": "application/json",
            "Origin": "http://localhost:3000",
            "Sec-Fetch-Site": "same-site",
        },
        body,
    )
    assert status == 202
    status, _ = _post_raw(
        server,
        {"Host": own, "Content-Type": "application/json", "Origin": "http://localhost:4000"},
        body,
    )
    assert status == 403


def test_presigned_urls_use_the_listening_address_not_the_host_header(
    make_server: MakeServer,
) -> None:
    server = make_server(extra_args=["--allow-host", "attacker.test"])
    base = "/v1/objects/tea-host/oregon/file.txt"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.put(base, json={"sizeBytes": 1}, headers={"Host": f"attacker.test:{server.port}"})
        assert r.status_code == 200, r.text
        url = r.json()["url"]
    assert url.startswith(f"{server.url}/")
    assert "attacker.test" not in url


def test_slowloris_connections_are_closed_after_the_header_timeout(server: LocalServer) -> None:
    from render_sdk.devserver._constants import HEADER_TIMEOUT_S

    url = httpx.URL(server.url)
    assert url.host
    assert url.port
    socks = []
    try:
        for i in range(50):
            sock = socket.create_connection((url.host, url.port), timeout=HEADER_TIMEOUT_S + 20)
            # Half the connections trickle part of a request head, half send nothing.
            if i % 2:
                sock.sendall(b"GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
        started = time.monotonic()
        for sock in socks:
            assert sock.recv(1024) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 15
    finally:
        for sock in socks:
            sock.close()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/v1/tasks").status_code == 200

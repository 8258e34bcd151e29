"""A server killed with SIGKILL in the middle of uploads loses nothing and tears nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from storage_server import REGION, StorageServer

from render_sdk import RenderSync
from render_sdk._errors import ClientError, RenderError
from render_sdk.experimental import ObjectClientSync

OWNER = "tea-crash"
MIB = 1024 * 1024


def _client(server: StorageServer) -> tuple[RenderSync, ObjectClientSync]:
    render = RenderSync(base_url=server.url, owner_id=OWNER, region=REGION)
    objects = render.experimental.storage.objects
    assert isinstance(objects, ObjectClientSync)
    return render, objects


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_sigkill_during_uploads(server: StorageServer) -> None:
    http, objects = _client(server)
    keep = bytes(range(256)) * 4096
    old = b"old version " * 1000
    objects.put(key="keep", data=keep, content_type="application/x-keep")
    objects.put(key="victim", data=old, content_type="text/old")
    http.close()

    bucket = server.state_dir / "objects" / REGION / OWNER
    tmp_dir = bucket / "%tmp"
    killed = threading.Event()
    errors: dict[str, BaseException] = {}

    def body(total: int) -> Iterator[bytes]:
        # Send part of the object, then hold the upload open until the server is dead.
        sent = 0
        while sent < total:
            if sent >= 4 * MIB:
                killed.wait(30)
            yield b"n" * MIB
            sent += MIB

    def upload(key: str) -> None:
        thread_http, thread_objects = _client(server)
        try:
            thread_objects.put(key=key, data=body(32 * MIB), size=32 * MIB, content_type="x/new")
        except BaseException as exc:
            errors[key] = exc
        finally:
            thread_http.close()

    threads = [threading.Thread(target=upload, args=(k,)) for k in ("victim", "partial")]
    for t in threads:
        t.start()

    def partial_uploads_on_disk() -> bool:
        parts = [p for p in tmp_dir.glob("*.part")]
        return len(parts) == 2 and all(p.stat().st_size >= 2 * MIB for p in parts)

    _wait_for(partial_uploads_on_disk)
    server.kill()
    killed.set()
    for t in threads:
        t.join(30)
    assert set(errors) == {"victim", "partial"}
    assert all(isinstance(e, RenderError) for e in errors.values()), errors

    server.start()
    http, objects = _client(server)
    try:
        assert [(o.key, o.size) for o in objects.iter()] == [
            ("keep", len(keep)),
            ("victim", len(old)),
        ]
        got = objects.get(key="keep")
        assert (got.data, got.content_type) == (keep, "application/x-keep")
        got = objects.get(key="victim")
        assert (got.data, got.content_type) == (old, "text/old")
        with pytest.raises(ClientError) as info:
            objects.get(key="partial")
        assert info.value.status_code == 404
        # The killed server's partial files were removed when the new one started.
        assert list(tmp_dir.iterdir()) == []
        assert sorted(p.name for p in bucket.iterdir()) == ["%meta", "%tmp", "keep", "victim"]
        # And the store works as before.
        objects.put(key="victim", data=b"after", content_type="text/new")
        assert objects.get(key="victim").data == b"after"
    finally:
        http.close()


def test_partial_upload_of_a_disconnected_client_is_discarded(server: StorageServer) -> None:
    """A client that goes away mid-upload leaves neither an object nor a temp file."""
    import httpx

    base = f"{server.url}/v1/objects/{OWNER}/{REGION}"
    with httpx.Client() as raw:
        url = raw.put(base + "/gone", json={"sizeBytes": 8 * MIB}).json()["url"]

    class Abort(Exception):
        pass

    tmp_dir = server.state_dir / "objects" / REGION / OWNER / "%tmp"

    def body() -> Iterator[bytes]:
        yield b"x" * MIB
        yield b"x" * MIB
        # Hang up only once the server is writing the upload to disk.
        _wait_for(lambda: tmp_dir.is_dir() and any(tmp_dir.glob("*.part")))
        raise Abort

    with httpx.Client() as raw, pytest.raises(Abort):
        raw.put(url, content=body(), headers={"Content-Length": str(8 * MIB)})
    _wait_for(lambda: not list(tmp_dir.iterdir()))
    with httpx.Client() as raw:
        assert raw.get(base).json()["items"] == []
        assert raw.get(base + "/gone").status_code == 404

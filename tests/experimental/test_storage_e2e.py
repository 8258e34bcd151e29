"""Object storage end to end: the client against the real local server's routes."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest
from storage_server import OWNER, REGION, StorageServer

from render_sdk import Render, RenderSync
from render_sdk._errors import ClientError, RenderError
from render_sdk.devserver._objects import escape_key, presign
from render_sdk.experimental import ObjectClient, ObjectClientSync, Region

_open_async: list[Render] = []
_open_sync: list[RenderSync] = []


@pytest.fixture(autouse=True)
async def _clients(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    for name in ("RENDER_WORKSPACE_ID", "RENDER_REGION", "RENDER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield
    while _open_async:
        await _open_async.pop().aclose()
    while _open_sync:
        _open_sync.pop().close()


def objects(server: StorageServer, **kw: str) -> ObjectClient:
    """``Render(...).experimental.storage.objects`` against the server (closed after the test)."""
    _open_async.append(render := Render(base_url=server.url, **kw))
    client = render.experimental.storage.objects
    assert isinstance(client, ObjectClient)
    return client


def sync_objects(server: StorageServer, **kw: str) -> ObjectClientSync:
    """``RenderSync(...).experimental.storage.objects`` against the server."""
    _open_sync.append(render := RenderSync(base_url=server.url, **kw))
    client = render.experimental.storage.objects
    assert isinstance(client, ObjectClientSync)
    return client


async def test_put_get_list_delete(module_server: StorageServer, owner: str) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)
    result = await client.put(
        key="path/to/file.png", data=b"binary content", content_type="image/png"
    )
    assert result.etag == f'"{hashlib.md5(b"binary content").hexdigest()}"'

    obj = await client.get(key="path/to/file.png")
    assert (obj.data, obj.size, obj.content_type) == (b"binary content", 14, "image/png")
    assert obj.etag == result.etag

    page = await client.list()
    assert [(o.key, o.size) for o in page.objects] == [("path/to/file.png", 14)]
    assert page.has_next is False
    assert page.next_cursor is None
    modified = page.objects[0].last_modified
    assert modified is not None
    assert abs(modified - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)

    # The presigned download URL answers HEAD with the headers alone.
    async with httpx.AsyncClient() as http:
        api = f"{module_server.url}/v1/objects/{owner}/{REGION}/path/to/file.png"
        url = (await http.get(api)).json()["url"]
        head = await http.head(url)
    assert head.status_code == 200
    assert head.headers["content-length"] == "14"
    assert head.headers["content-type"] == "image/png"
    assert head.content == b""

    # Stored in the Render CLI's layout, so `render ea objects --local` sees it.
    path = module_server.state_dir / "objects" / REGION / owner / "path%2Fto%2Ffile.png"
    assert path.read_bytes() == b"binary content"

    await client.delete(key="path/to/file.png")
    assert not path.exists()
    with pytest.raises(ClientError) as info:
        await client.get(key="path/to/file.png")
    assert info.value.status_code == 404
    with pytest.raises(ClientError) as info:
        await client.delete(key="path/to/file.png")
    assert info.value.status_code == 404
    assert (await client.list()).objects == []


async def test_overwrite_replaces_bytes_and_content_type(
    module_server: StorageServer, owner: str
) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)
    await client.put(key="k", data=b"first version", content_type="text/plain")
    await client.put(key="k", data=b"2nd")
    obj = await client.get(key="k")
    assert (obj.data, obj.content_type) == (b"2nd", "application/octet-stream")


async def test_owner_and_region_per_call_override_defaults(
    module_server: StorageServer, owner: str
) -> None:
    client = objects(module_server, owner_id=owner, region="frankfurt")
    await client.put(key="a", data=b"default place")
    await client.put(key="a", data=b"elsewhere", owner_id=owner + "-2", region=Region.OHIO)
    assert (await client.get(key="a")).data == b"default place"
    assert (await client.get(key="a", owner_id=owner + "-2", region="ohio")).data == b"elsewhere"
    assert [o.key for o in (await client.list(region="ohio")).objects] == []


async def test_defaults_from_environment(
    module_server: StorageServer, owner: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENDER_WORKSPACE_ID", owner)
    monkeypatch.setenv("RENDER_REGION", "virginia")
    client = objects(module_server)
    await client.put(key="from-env", data=b"x")
    assert (await client.get(key="from-env", owner_id=owner, region="virginia")).data == b"x"


async def test_missing_owner_or_region_is_a_clear_error(module_server: StorageServer) -> None:
    client = objects(module_server)
    with pytest.raises(RenderError, match=r"owner_id is required.*RENDER_WORKSPACE_ID"):
        await client.get(key="k", region=REGION)
    with pytest.raises(RenderError, match=r"region is required.*RENDER_REGION"):
        await client.get(key="k", owner_id=OWNER)


async def test_scoped_client(module_server: StorageServer, owner: str) -> None:
    scoped = objects(module_server).scoped(owner_id=owner, region="singapore")
    assert (scoped.owner_id, scoped.region) == (owner, "singapore")
    await scoped.put(key="s/1", data=b"one", content_type="text/plain")
    await scoped.put(key="s/2", data=io.BytesIO(b"two"), size=3)
    assert (await scoped.get(key="s/1")).data == b"one"
    assert [o.key for o in (await scoped.list()).objects] == ["s/1", "s/2"]
    assert [o.key async for o in scoped.iter(limit=1)] == ["s/1", "s/2"]
    await scoped.delete(key="s/1")
    assert [o.key for o in (await scoped.list()).objects] == ["s/2"]
    with pytest.raises(RenderError, match="owner_id"):
        objects(module_server).scoped(owner_id="", region="oregon")


async def test_pagination(module_server: StorageServer, owner: str) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)
    keys = [f"item-{i:02d}" for i in range(7)] + ["a/b", "z?#%"]
    await asyncio.gather(*(client.put(key=k, data=k.encode()) for k in keys))

    first = await client.list(limit=4)
    assert [o.key for o in first.objects] == sorted(keys)[:4]
    assert first.has_next
    assert first.next_cursor == first.objects[-1].cursor
    second = await client.list(limit=4, cursor=first.next_cursor)
    assert [o.key for o in second.objects] == sorted(keys)[4:8]
    last = await client.list(limit=4, cursor=second.next_cursor)
    assert [o.key for o in last.objects] == sorted(keys)[8:]
    assert not last.has_next
    assert last.next_cursor is None

    pages = [page async for page in client.iter_pages(limit=2)]
    assert [len(p.objects) for p in pages] == [2, 2, 2, 2, 1]
    assert [o.key for p in pages for o in p.objects] == sorted(keys)
    assert [o.key async for o in client.iter(limit=3)] == sorted(keys)
    # Default page size of the server is 20.
    assert len((await client.list()).objects) == len(keys)

    with pytest.raises(ClientError) as info:
        await client.list(limit=101)
    assert info.value.status_code == 400


def test_sync_client_round_trip(module_server: StorageServer, owner: str, tmp_path: Path) -> None:
    client = sync_objects(module_server, owner_id=owner, region=REGION)
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    with src.open("rb") as f:
        client.put(key="file", data=f, content_type="application/x-test")
    client.put(key="gen", data=iter([b"ab", b"", b"cd"]), size=4)
    assert client.get(key="gen").data == b"abcd"
    assert b"".join(client.stream(key="file")) == src.read_bytes()
    dest = tmp_path / "out.bin"
    assert client.download(key="file", file=dest) == src.stat().st_size
    assert dest.read_bytes() == src.read_bytes()
    assert [p.objects[0].key for p in client.iter_pages(limit=1)] == ["file", "gen"]
    scoped = client.scoped(owner_id=owner, region=REGION)
    scoped.delete(key="gen")
    assert [o.key for o in scoped.iter()] == ["file"]
    with pytest.raises(ClientError) as info:
        client.get(key="gen")
    assert info.value.status_code == 404


async def test_stream_uploads_and_downloads(
    module_server: StorageServer, owner: str, tmp_path: Path
) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([i]) * 100_000

    await client.put(key="aiter", data=chunks(), size=500_000)
    received = [c async for c in client.stream(key="aiter", chunk_size=65536)]
    assert b"".join(received) == b"".join(bytes([i]) * 100_000 for i in range(5))
    assert max(len(c) for c in received) <= 65536

    buf = io.BytesIO()
    assert await client.download(key="aiter", file=buf) == 500_000
    dest = tmp_path / "x.bin"
    await client.download(key="aiter", file=dest)
    assert dest.stat().st_size == 500_000
    # A failed download leaves no partial file behind.
    with pytest.raises(ClientError):
        await client.download(key="missing", file=tmp_path / "missing.bin")
    assert sorted(os.listdir(tmp_path)) == ["x.bin"]

    # Stopping early releases the connection (aclosing), the object stays intact.
    async with aclosing(client.stream(key="aiter", chunk_size=1000)) as stream:
        async for _ in stream:
            break
    assert (await client.get(key="aiter")).size == 500_000


async def test_upload_length_must_match_size(module_server: StorageServer, owner: str) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)

    async def three() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(RenderError, match="ended after 3 of the declared 5 bytes"):
        await client.put(key="short", data=three(), size=5)
    with pytest.raises(RenderError, match="longer than the declared size of 2"):
        await client.put(key="long", data=three(), size=2)
    with pytest.raises(RenderError, match="Size mismatch: provided size 4"):
        await client.put(key="b", data=b"abc", size=4)
    with pytest.raises(RenderError, match="size is required"):
        await client.put(key="b", data=three())
    assert (await client.list()).objects == []


async def test_server_refuses_size_mismatches(module_server: StorageServer, owner: str) -> None:
    base = f"{module_server.url}/v1/objects/{owner}/{REGION}"
    async with httpx.AsyncClient() as http:
        url = (await http.put(base + "/k", json={"sizeBytes": 10})).json()["url"]
        # Declared Content-Length differs from the presigned size: refused up front.
        r = await http.put(url, content=b"x" * 9)
        assert r.status_code == 400
        assert "size mismatch" in r.json()["message"]

        # No Content-Length (chunked): counted while streaming.
        async def body(n: int) -> AsyncIterator[bytes]:
            for _ in range(n):
                yield b"x"

        r = await http.put(url, content=body(11))
        assert r.status_code == 400
        r = await http.put(url, content=body(9))
        assert r.status_code == 400
        assert (await http.get(base)).json()["items"] == []
        assert (await http.put(url, content=body(10))).status_code == 200

        # Declared sizes are checked too.
        r = await http.put(base + "/k", json={"sizeBytes": -1})
        assert r.status_code == 400
        r = await http.put(base + "/k", json={"sizeBytes": 6 * 1024**3})
        assert r.status_code == 413
        r = await http.put(base + "/k", content=b"{}")
        assert r.status_code == 400
        assert r.json() == {"message": "sizeBytes is required"}
        r = await http.put(base + "/k", content=b"not json")
        assert r.status_code == 400
    # Nothing partial is left in the temp directory.
    tmp = module_server.state_dir / "objects" / REGION / owner / "%tmp"
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("raw_key", "why"),
    [
        ("..", "'..' segments"),
        ("a/../b", "'..' segments"),
        ("a/..", "'..' segments"),
        ("%2Fabs", "start with '/'"),
        ("nul%00byte", "NUL"),
        ("k" * 1025, "1025 bytes"),
        ("%C3%A9" * 513, "1026 bytes"),
    ],
)
async def test_bad_keys_are_refused(
    module_server: StorageServer, owner: str, raw_key: str, why: str
) -> None:
    base = f"{module_server.url}/v1/objects/{owner}/{REGION}/"
    raw = raw_key.replace("..", "%2E%2E")
    async with httpx.AsyncClient() as http:
        for request in (
            http.build_request("PUT", base + raw, json={"sizeBytes": 1}),
            http.build_request("GET", base + raw),
            http.build_request("DELETE", base + raw),
        ):
            r = await http.send(request)
            assert r.status_code == 400, (request.method, r.text)
            assert why in r.json()["message"]


async def test_bad_keys_through_the_client(module_server: StorageServer, owner: str) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)
    for key in ("../etc/passwd", "/abs", "a\x00b", "x" * 1025):
        with pytest.raises(ClientError) as info:
            await client.put(key=key, data=b"x")
        assert info.value.status_code == 400
    with pytest.raises(ClientError, match="must not be empty"):
        await client.put(key="", data=b"x")
    # Keys that look odd but are fine round-trip exactly.
    odd = ["./x", "a//b", "%41", "sp ace?q=1#f", "é/ü", "." * 3, "x" * 1024, "é" * 512]
    for key in odd:
        await client.put(key=key, data=key.encode())
    assert sorted([o.key async for o in client.iter()]) == sorted(odd)
    for key in odd:
        assert (await client.get(key=key)).data == key.encode()


async def test_bad_owner_and_region(module_server: StorageServer) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{module_server.url}/v1/objects/{OWNER}/mars")
        assert r.status_code == 400
        assert "oregon" in r.json()["message"]
        r = await http.get(f"{module_server.url}/v1/objects/%2E%2E/oregon")
        assert r.status_code == 400


async def test_tampered_urls_are_refused(module_server: StorageServer, owner: str) -> None:
    base = f"{module_server.url}/v1/objects/{owner}/{REGION}"
    async with httpx.AsyncClient() as http:
        up = (await http.put(base + "/k", json={"sizeBytes": 3})).json()["url"]
        assert (await http.put(up, content=b"abc")).status_code == 200
        down = (await http.get(base + "/k")).json()["url"]
        url = httpx.URL(up)
        q = dict(url.params)
        tampered = [
            url.copy_with(params={**q, "size": "4"}),
            url.copy_with(params={**q, "expires": str(int(q["expires"]) + 3600)}),
            url.copy_with(params={**q, "signature": "0" * 64}),
            url.copy_with(params={k: v for k, v in q.items() if k != "signature"}),
            url.copy_with(path=url.path.replace("/k", "/other")),
            url.copy_with(path=url.path.replace(owner, owner + "x")),
            url.copy_with(path=url.path.replace(REGION, "ohio")),
        ]
        for bad in tampered:
            body = b"abcd" if bad.params.get("size") == "4" else b"xyz"
            r = await http.put(bad, content=body)
            assert r.status_code == 403, bad
        # A download URL does not allow an upload, nor the reverse.
        assert (await http.put(down, content=b"xyz")).status_code == 403
        assert (await http.get(up)).status_code == 403
        assert (await http.get(down.replace("/k?", "/other?"))).status_code == 403
        assert (await http.get(down)).content == b"abc"


async def test_expired_urls_are_refused(module_server: StorageServer, owner: str) -> None:
    past = int(dt.datetime.now().timestamp()) - 1
    sign = {
        "secret": module_server.secret,
        "base_url": module_server.url,
        "owner": owner,
        "region": REGION,
        "key": "k",
        "expires": past,
    }
    async with httpx.AsyncClient() as http:
        r = await http.put(presign(method="PUT", size=1, **sign), content=b"x")  # type: ignore[arg-type]
        assert r.status_code == 403
        assert "expired" in r.json()["message"]
        # The same URL with a future expiry (correctly signed) works: only time differs.
        sign["expires"] = past + 3600
        r = await http.put(presign(method="PUT", size=1, **sign), content=b"x")  # type: ignore[arg-type]
        assert r.status_code == 200
        sign["expires"] = past
        r = await http.get(presign(method="GET", size=None, **sign))  # type: ignore[arg-type]
        assert r.status_code == 403
        assert "expired" in r.json()["message"]


async def test_concurrent_writers_last_complete_write_wins(
    module_server: StorageServer, owner: str
) -> None:
    client = objects(module_server, owner_id=owner, region=REGION)
    size = 2 * 1024 * 1024
    bodies = {bytes([i]) * size: f"type/{i}" for i in range(6)}

    async def slow(body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]
            await asyncio.sleep(0)

    results = await asyncio.gather(
        *(client.put(key="hot", data=slow(b), size=size, content_type=t) for b, t in bodies.items())
    )
    assert len({r.etag for r in results}) == len(bodies)
    obj = await client.get(key="hot")
    # One writer's bytes, whole, with that writer's content type and ETag.
    assert obj.data in bodies
    assert obj.content_type == bodies[obj.data]
    assert obj.etag == f'"{hashlib.md5(obj.data).hexdigest()}"'
    assert [o.key for o in (await client.list()).objects] == ["hot"]
    bucket = module_server.state_dir / "objects" / REGION / owner
    assert list((bucket / "%tmp").iterdir()) == []
    assert sorted(p.name for p in bucket.iterdir()) == ["%meta", "%tmp", "hot"]


def test_long_keys_are_stored_under_their_hash(module_server: StorageServer, owner: str) -> None:
    client = sync_objects(module_server, owner_id=owner, region=REGION)
    key = "/".join(["segment"] * 100)[:1000]
    client.put(key=key, data=b"deep", content_type="text/x")
    bucket = module_server.state_dir / "objects" / REGION / owner
    assert escape_key(key).startswith("%H")
    assert (bucket / escape_key(key)).read_bytes() == b"deep"
    assert [o.key for o in client.iter()] == [key]
    assert client.get(key=key).content_type == "text/x"
    client.delete(key=key)
    assert [o.key for o in client.iter()] == []


def _rss_chunks(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    block = os.urandom(chunk)
    for _ in range(total // chunk):
        yield block


def test_large_objects_stream_with_flat_memory(server: StorageServer, tmp_path: Path) -> None:
    """64 MiB up and down: neither the server nor the client holds the object."""
    import tracemalloc

    size = 64 * 1024 * 1024
    client = sync_objects(server, owner_id=OWNER, region=REGION)
    client.put(key="warmup", data=b"w" * 1024)
    client.get(key="warmup")
    server_before = server.peak_rss_kib()

    tracemalloc.start()
    try:
        digest = hashlib.sha256()
        up = hashlib.sha256()

        def counted() -> Iterator[bytes]:
            for block in _rss_chunks(size):
                up.update(block)
                yield block

        client.put(key="big", data=counted(), size=size)
        for chunk in client.stream(key="big"):
            digest.update(chunk)
        dest = tmp_path / "big.bin"
        assert client.download(key="big", file=dest) == size
        _, client_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == up.hexdigest()
    assert dest.stat().st_size == size
    server_growth_mib = (server.peak_rss_kib() - server_before) / 1024
    assert client_peak < 16 * 1024 * 1024, f"client peak {client_peak / 2**20:.1f} MiB"
    assert server_growth_mib < 24, f"server grew {server_growth_mib:.1f} MiB"


async def test_large_file_async_round_trip_with_flat_memory(
    server: StorageServer, tmp_path: Path
) -> None:
    """The async client: 64 MiB from a file, back into a file, with bounded memory."""
    import tracemalloc

    size = 64 * 1024 * 1024
    src = tmp_path / "src.bin"
    with src.open("wb") as f:
        for block in _rss_chunks(size):
            f.write(block)
    client = objects(server, owner_id=OWNER, region=REGION)
    await client.put(key="warmup", data=b"w")
    server_before = server.peak_rss_kib()
    dest = tmp_path / "dest.bin"
    tracemalloc.start()
    try:
        with src.open("rb") as f:
            await client.put(key="big-file", data=f, content_type="application/x-big")
        written = await client.download(key="big-file", file=dest)
        _, client_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == size
    assert dest.read_bytes() == src.read_bytes()
    assert client_peak < 16 * 1024 * 1024, f"client peak {client_peak / 2**20:.1f} MiB"
    server_growth_mib = (server.peak_rss_kib() - server_before) / 1024
    assert server_growth_mib < 24, f"server grew {server_growth_mib:.1f} MiB"

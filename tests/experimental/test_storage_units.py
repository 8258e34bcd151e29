"""Units of the object storage client: httpx.MockTransport, no sockets."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from render_sdk import Render, RenderSync
from render_sdk._errors import ClientError, RateLimitError, RenderError, ServerError
from render_sdk.client import ConfigurationError
from render_sdk.experimental import (
    ListObjectsResponse,
    ObjectClient,
    ObjectClientSync,
    ObjectMetadata,
    storage_error_message,
)
from render_sdk.experimental import _protocol as P

BASE = "https://api.render.test"
UPLOAD = "https://storage.test/bucket/obj?X-Amz-Signature=abc"
DOWNLOAD = "https://storage.test/bucket/obj?X-Amz-Signature=def"
S3_404 = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code>'
    b"<Message>The specified key does not exist.</Message><BucketName>secret-bucket"
    b"</BucketName><RequestId>4442587FB7D0A2F9</RequestId></Error>"
)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler playing Render's API and a storage backend."""

    def __init__(
        self,
        *,
        max_size: int | None = None,
        upload_status: int = 200,
        download_status: int = 200,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.max_size = max_size
        self.upload_status = upload_status
        self.download_status = download_status
        self.body = body
        self.headers = headers or {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(request.read())
        host = request.url.host
        if host == "api.render.test" and request.method == "PUT":
            size = json.loads(self.bodies[-1])["sizeBytes"]
            max_size = size if self.max_size is None else self.max_size
            out = {"url": UPLOAD, "expiresAt": "2030-01-01T00:00:00Z", "maxSizeBytes": max_size}
            return httpx.Response(200, json=out)
        if host == "api.render.test" and request.method == "GET" and "/k" in request.url.path:
            return httpx.Response(200, json={"url": DOWNLOAD, "expiresAt": "2030-01-01T00:00:00Z"})
        if host == "api.render.test" and request.method == "GET":
            return httpx.Response(
                200,
                json={
                    "items": [
                        {
                            "cursor": "c1",
                            "object": {
                                "key": "a",
                                "sizeBytes": 3,
                                "lastModified": "2026-01-02T03:04:05Z",
                            },
                        }
                    ],
                    "hasNext": True,
                    "nextCursor": "c1",
                },
            )
        if host == "api.render.test" and request.method == "DELETE":
            return httpx.Response(404, json={"message": "object not found: k", "id": "err-1"})
        if request.method == "PUT":
            return httpx.Response(
                self.upload_status, headers={"ETag": '"abc"', **self.headers}, content=self.body
            )
        return httpx.Response(
            self.download_status,
            headers={"Content-Type": "image/png", **self.headers},
            content=self.body,
        )


def make(rec: Recorder, **kw: Any) -> ObjectClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(rec))
    render = Render(token="t", base_url=BASE, http_client=http, max_retries=0, **kw)
    objects = render.experimental.storage.objects
    assert isinstance(objects, ObjectClient)
    return objects


def make_sync(rec: Recorder, **kw: Any) -> ObjectClientSync:
    http = httpx.Client(transport=httpx.MockTransport(rec))
    render = RenderSync(token="t", base_url=BASE, http_client=http, max_retries=0, **kw)
    objects = render.experimental.storage.objects
    assert isinstance(objects, ObjectClientSync)
    return objects


async def test_put_streams_a_file_with_content_length_and_no_auth() -> None:
    rec = Recorder()
    objects = make(rec, owner_id="tea-1", region="oregon")
    data = b"0123456789" * 300_000
    result = await objects.put(key="dir/f ile?.bin", data=io.BytesIO(data), size=len(data),
                               content_type="application/x-bin")  # fmt: skip
    assert result.etag == '"abc"'
    api, upload = rec.requests
    assert api.url.raw_path == b"/v1/objects/tea-1/oregon/dir%2Ff%20ile%3F.bin"
    assert json.loads(rec.bodies[0]) == {"sizeBytes": len(data)}
    assert api.headers["Authorization"] == "Bearer t"
    assert str(upload.url) == UPLOAD
    assert upload.headers["Content-Length"] == str(len(data))
    assert upload.headers["Content-Type"] == "application/x-bin"
    assert "Authorization" not in upload.headers
    assert not upload.headers.get("User-Agent", "").startswith("render-sdk-python")
    assert rec.bodies[1] == data


async def test_put_async_iterator_and_seekable_file_without_size() -> None:
    rec = Recorder()
    objects = make(rec, owner_id="tea-1", region="oregon")

    async def gen() -> AsyncIterator[bytes]:
        yield b"ab"
        yield bytearray(b"cd")

    await objects.put(key="k", data=gen(), size=4)
    assert rec.bodies[1] == b"abcd"
    f = io.BytesIO(b"skipped|rest")
    f.seek(8)
    await objects.put(key="k", data=f)
    assert json.loads(rec.bodies[2]) == {"sizeBytes": 4}
    assert rec.bodies[3] == b"rest"


async def test_max_size_must_equal_size() -> None:
    rec = Recorder(max_size=10)
    objects = make(rec, owner_id="tea-1", region="oregon")
    with pytest.raises(ClientError, match="File size 3 bytes does not match expected size of 10"):
        await objects.put(key="k", data=b"abc")
    assert len(rec.requests) == 1  # nothing uploaded


@pytest.mark.parametrize(
    ("status", "cls", "text"),
    [
        (400, ClientError, "bad request"),
        (401, ClientError, "access denied"),
        (403, ClientError, "access denied"),
        (404, ClientError, "object not found"),
        (409, ClientError, "conflict"),
        (413, ClientError, "object too large"),
        (429, RateLimitError, "rate limited, please try again later"),
        (500, ServerError, "storage service temporarily unavailable"),
        (503, ServerError, "storage service temporarily unavailable"),
        (418, ClientError, "unexpected error"),
    ],
)
async def test_storage_errors_are_sanitized(status: int, cls: type[RenderError], text: str) -> None:
    rec = Recorder(upload_status=status, download_status=status, body=S3_404,
                   headers={"Content-Type": "application/xml", "Retry-After": "7"})  # fmt: skip
    objects = make(rec, owner_id="tea-1", region="oregon")
    with pytest.raises(cls) as info:
        await objects.put(key="k", data=b"abc")
    assert str(info.value) == f"upload object failed with status {status}: {text}"
    assert info.value.status_code == status
    for leak in ("NoSuchKey", "secret-bucket", "4442587FB7D0A2F9", "<"):
        assert leak not in str(info.value)
    with pytest.raises(cls) as info:
        await objects.get(key="k")
    assert str(info.value) == f"download object failed with status {status}: {text}"
    with pytest.raises(cls) as info:
        async for _ in objects.stream(key="k"):
            pass
    assert info.value.status_code == status
    if status == 429:
        assert isinstance(info.value, RateLimitError)
        assert info.value.retry_after == 7


def test_storage_error_message_table() -> None:
    assert storage_error_message(404) == "object not found"
    assert storage_error_message(502) == "storage service temporarily unavailable"
    assert storage_error_message(301) == "unexpected error"


async def test_api_errors_keep_the_server_message() -> None:
    objects = make(Recorder(), owner_id="tea-1", region="oregon")
    with pytest.raises(ClientError) as info:
        await objects.delete(key="k")
    assert (
        str(info.value) == "delete object failed with status 404: object not found: k (ID: err-1)"
    )
    assert info.value.status_code == 404
    assert info.value.error_id == "err-1"


async def test_transport_errors_become_server_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.render.test":
            return Recorder()(request)
        raise httpx.ConnectError("connection refused", request=request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    render = Render(token="t", base_url=BASE, http_client=http, owner_id="o", region="ohio")
    with pytest.raises(ServerError, match="upload object failed: network error") as info:
        await render.experimental.storage.objects.put(key="k", data=b"x")
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_get_and_list() -> None:
    objects = make(Recorder(body=b"png!"), owner_id="tea-1", region="oregon")
    obj = await objects.get(key="k")
    assert (obj.data, obj.size, obj.content_type) == (b"png!", 4, "image/png")
    page = await objects.list(limit=5, cursor="c0")
    assert isinstance(page, ListObjectsResponse)
    assert page.has_next
    assert page.next_cursor == "c1"
    assert page.objects == [
        ObjectMetadata(key="a", size=3, last_modified=page.objects[0].last_modified, cursor="c1")
    ]


def test_sync_client_shares_the_rules() -> None:
    rec = Recorder(upload_status=403, body=S3_404)
    objects = make_sync(rec, owner_id="tea-1", region="oregon")
    with pytest.raises(ClientError) as info:
        objects.put(key="k", data=iter([b"a", b"b"]), size=2)
    assert str(info.value) == "upload object failed with status 403: access denied"
    assert rec.bodies[1] == b"ab"
    assert "Authorization" not in rec.requests[1].headers
    with pytest.raises(RenderError, match="ended after 2 of the declared 3 bytes"):
        objects.put(key="k", data=iter([b"a", b"b"]), size=3)


def test_resolution_rules() -> None:
    assert P.resolve_owner_id("arg", "default") == "arg"
    assert P.resolve_owner_id(None, "default") == "default"
    assert P.resolve_owner_id("", "default") == "default"
    with pytest.raises(ConfigurationError) as info:
        P.resolve_owner_id(None, None)
    assert str(info.value) == (
        "owner_id is required. Provide it as a parameter or set the RENDER_WORKSPACE_ID "
        "environment variable."
    )
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigurationError) as info:
        P.resolve_region(None, "")
    assert str(info.value) == (
        "region is required. Provide it as a parameter or set the RENDER_REGION environment "
        "variable."
    )


def test_env_defaults_through_render(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENDER_WORKSPACE_ID", "tea-env")
    monkeypatch.setenv("RENDER_REGION", "frankfurt")
    objects = Render(token="t", base_url=BASE).experimental.storage.objects
    assert (objects.default_owner_id, objects.default_region) == ("tea-env", "frankfurt")
    objects = Render(token="t", base_url=BASE, owner_id="tea-arg", region="ohio")
    assert objects.experimental.storage.objects.default_owner_id == "tea-arg"
    monkeypatch.setenv("RENDER_WORKSPACE_ID", "")
    monkeypatch.delenv("RENDER_REGION")
    objects = RenderSync(token="t", base_url=BASE).experimental.storage.objects
    assert (objects.default_owner_id, objects.default_region) == (None, None)


def test_size_rules() -> None:
    assert P.resolve_size(b"abc", None) == 3
    assert P.resolve_size(memoryview(b"abcd"), 4) == 4
    assert P.resolve_size(io.BytesIO(b"xyz"), None) == 3
    assert P.resolve_size(io.BytesIO(b"xyz"), 0) == 0
    with pytest.raises(
        RenderError, match="Size mismatch: provided size 2 does not match actual size 3"
    ):
        P.resolve_size(b"abc", 2)
    with pytest.raises(RenderError, match="size must be a non-negative integer"):
        P.resolve_size(b"abc", -1)
    with pytest.raises(RenderError, match="size is required for stream uploads"):
        P.resolve_size(iter([b"a"]), None)
    with pytest.raises(RenderError, match="not str"):
        P.resolve_size("text", None)
    counter = P.ByteCounter(2)
    with pytest.raises(RenderError, match="binary mode"):
        counter.feed("text")


def test_paths_escape_keys_as_one_segment() -> None:
    assert P.object_path("tea-1", "oregon", "a/b c") == "/objects/tea-1/oregon/a%2Fb%20c"
    assert P.object_path("tea-1", "oregon", "..") == "/objects/tea-1/oregon/%2E%2E"
    assert P.object_path("tea-1", "oregon", "100%") == "/objects/tea-1/oregon/100%25"
    assert P.list_params(None, None) == {}
    assert P.list_params("c", 5) == {"cursor": "c", "limit": 5}
    with pytest.raises(RenderError):
        P.list_params(None, 0)


def test_malformed_api_responses() -> None:
    with pytest.raises(RenderError, match="Failed to get upload URL"):
        P.parse_upload_url(b'{"url": 5}')
    with pytest.raises(RenderError, match="Failed to get download URL"):
        P.parse_download_url(b"<html>")
    with pytest.raises(RenderError, match="Failed to list objects"):
        P.parse_list(b'{"items": "nope"}')
    page = P.parse_list(b'{"items": [], "hasNext": false, "nextCursor": "x"}')
    assert page.next_cursor is None


#: Keys and the exact raw path every object rpc sends for them: the key is one escaped
#: segment (slashes, spaces, reserved characters and non-ASCII all percent-encoded).
WIRE_PATHS = [
    ("k/a b/ü.bin", b"/v1/objects/tea-1/oregon/k%2Fa%20b%2F%C3%BC.bin"),
    ("k?#%&=+@:;", b"/v1/objects/tea-1/oregon/k%3F%23%25%26%3D%2B%40%3A%3B"),
    ("k/../..", b"/v1/objects/tea-1/oregon/k%2F..%2F.."),
    ("k\u00e9\u6f22/\U0001f600 x", b"/v1/objects/tea-1/oregon/k%C3%A9%E6%BC%A2%2F%F0%9F%98%80%20x"),
]


@pytest.mark.parametrize(("key", "raw_path"), WIRE_PATHS)
async def test_object_rpcs_send_todays_exact_paths(key: str, raw_path: bytes) -> None:
    rec = Recorder()
    objects = make(rec, owner_id="tea-1", region="oregon")
    await objects.put(key=key, data=b"abc")
    await objects.get(key=key)
    with pytest.raises(RenderError, match="not found"):
        await objects.delete(key=key)
    await objects.list()
    put, _upload, get, _download, delete, listing = rec.requests
    assert [(r.method, r.url.raw_path) for r in (put, get, delete)] == [
        ("PUT", raw_path),
        ("GET", raw_path),
        ("DELETE", raw_path),
    ]
    assert listing.url.raw_path == b"/v1/objects/tea-1/oregon"


def test_presigned_urls_escape_the_key_as_one_segment() -> None:
    from render_sdk.devserver._objects import presign

    sign = {"secret": b"k" * 32, "owner": "tea-1", "region": "oregon", "expires": 2000000000}
    upload = presign(base_url="http://127.0.0.1:8120/", method="PUT", key="k/a b/ü.bin", size=3,
                     **sign)  # type: ignore[arg-type]  # fmt: skip
    assert upload.startswith(
        "http://127.0.0.1:8120/_local-objects/tea-1/oregon/k%2Fa%20b%2F%C3%BC.bin"
        "?size=3&expires=2000000000&signature="
    )
    download = presign(base_url="http://127.0.0.1:8120", method="GET", key="..", size=None,
                       **sign)  # type: ignore[arg-type]  # fmt: skip
    assert download.startswith(
        "http://127.0.0.1:8120/_local-objects/tea-1/oregon/%2E%2E?expires=2000000000&signature="
    )

"""The server side of object storage: on-disk layout, limits, and the public surface."""

from __future__ import annotations

import socket

import httpx
import pytest
from storage_server import REGION, StorageServer

import render_sdk.experimental
from render_sdk.devserver import _objects as objects_module
from render_sdk.devserver._objects import (
    MAX_KEY_BYTES,
    MAX_OBJECT_SIZE_BYTES,
    REGIONS,
    escape_key,
)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("path/to/file.txt", "path%2Fto%2Ffile.txt"),
        ("file(1).txt", "file%281%29.txt"),
        ("a;b,c?d e%f", "a%3Bb%2Cc%3Fd%20e%25f"),
        ("keep-_.~$&+:=@", "keep-_.~$&+:=@"),
        ("é", "%C3%A9"),
        (".", "%2E"),
    ],
)
def test_escape_key_matches_the_render_cli(key: str, name: str) -> None:
    assert escape_key(key) == name


def test_documented_limits() -> None:
    assert MAX_OBJECT_SIZE_BYTES == 5 * 1024**3
    assert MAX_KEY_BYTES == 1024
    assert {"frankfurt", "oregon", "ohio", "singapore", "virginia"} == REGIONS
    # The maximum is documented where the routes are.
    assert "5 GiB" in (objects_module.__doc__ or "")


def test_objects_written_by_the_cli_are_served(module_server: StorageServer) -> None:
    """A file put in place by ``render ea objects put --local`` is listed and downloadable."""
    bucket = module_server.state_dir / "objects" / REGION / "tea-cli"
    bucket.mkdir(parents=True)
    (bucket / "file%281%29.txt").write_bytes(b"from the cli")
    (bucket / "nested").mkdir()  # directories are not objects
    base = f"{module_server.url}/v1/objects/tea-cli/{REGION}"
    with httpx.Client() as http:
        items = http.get(base).json()["items"]
        assert [(i["object"]["key"], i["object"]["sizeBytes"]) for i in items] == [
            ("file(1).txt", 12)
        ]
        url = http.get(base + "/file(1).txt").json()["url"]
        r = http.get(url)
        assert r.content == b"from the cli"
        assert r.headers["content-type"] == "application/octet-stream"
        assert http.delete(base + "/file(1).txt").status_code == 204
    assert sorted(p.name for p in bucket.iterdir()) == ["nested"]


def _raw_request(url: str, head: str) -> bytes:
    """Send only a request head (no body) and read what the server answers."""
    u = httpx.URL(url)
    target = u.raw_path.decode()
    with socket.create_connection((u.host, u.port or 80), timeout=10) as sock:
        sock.sendall(f"{head.format(target=target, host=u.host)}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_oversized_upload_is_refused_before_the_body(module_server: StorageServer) -> None:
    base = f"{module_server.url}/v1/objects/tea-big/{REGION}"
    with httpx.Client() as http:
        url = http.put(base + "/k", json={"sizeBytes": 10}).json()["url"]
    too_big = MAX_OBJECT_SIZE_BYTES + 1
    # The server answers at once although not one byte of the body was sent.
    answer = _raw_request(
        url, "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: " + str(too_big)
    )
    assert answer.startswith(b"HTTP/1.1 413 ")
    answer = _raw_request(url, "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 11")
    assert answer.startswith(b"HTTP/1.1 400 ")
    # Same for the API: a declared size over the maximum.
    api = f"{base}/k"
    answer = _raw_request(api, "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 999999999")
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_public_names() -> None:
    assert render_sdk.experimental.__all__ == sorted(render_sdk.experimental.__all__)
    assert set(render_sdk.experimental.__all__) == {
        "DownloadResponse",
        "ExperimentalService",
        "ExperimentalServiceSync",
        "ListObjectsResponse",
        "ObjectApi",
        "ObjectApiSync",
        "ObjectClient",
        "ObjectClientSync",
        "ObjectData",
        "ObjectMetadata",
        "OwnerID",
        "PutObjectResult",
        "Region",
        "ScopedObjectClient",
        "ScopedObjectClientSync",
        "StorageService",
        "StorageServiceSync",
        "UploadData",
        "UploadDataSync",
        "UploadResponse",
        "storage_error_message",
    }

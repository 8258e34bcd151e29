"""The synchronous object storage client (``RenderSync().experimental.storage.objects``).

The same behaviour as :mod:`._async`, on the sync transport; all non-I/O logic lives in
:mod:`._protocol`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from .._errors import RenderError
from ..client._core import SyncHTTP, map_transport_errors
from . import _constants as C
from . import _protocol as P
from ._types import (
    DownloadResponse,
    ListObjectsResponse,
    ObjectData,
    ObjectMetadata,
    PutObjectResult,
    Region,
    UploadResponse,
)

__all__ = [
    "ExperimentalServiceSync",
    "ObjectApiSync",
    "ObjectClientSync",
    "ScopedObjectClientSync",
    "StorageServiceSync",
    "UploadDataSync",
]

#: What ``put`` uploads: bytes, a binary file (read in chunks) or an iterator of bytes.
UploadDataSync = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | Iterable[bytes]


def _file_chunks(file: Any, counter: P.ByteCounter) -> Iterator[bytes]:
    while counter.sent < counter.size:
        chunk = file.read(min(C.CHUNK_SIZE, counter.size - counter.sent))
        if not chunk:
            break
        yield counter.feed(chunk)
    counter.finish()


def _byte_chunks(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    for piece in P.byte_slices(data):
        yield bytes(piece)


def _iter_chunks(data: Iterable[Any], counter: P.ByteCounter) -> Iterator[bytes]:
    for chunk in data:
        if chunk:
            yield counter.feed(chunk)
    counter.finish()


class ObjectApiSync:
    """The object storage API calls, one request each; see :class:`ObjectApi`."""

    def __init__(self, http: SyncHTTP) -> None:
        self._http = http

    def get_upload_url(
        self, owner_id: str, region: str | Region, key: str, size_bytes: int
    ) -> UploadResponse:
        """Ask for a presigned URL to upload ``size_bytes`` bytes under ``key``."""
        response = self._http.request(
            *P.object_request("PutObject", owner_id, str(region), key),
            operation=C.OP_UPLOAD_URL,
            content=P.put_body(size_bytes),
        )
        return P.parse_upload_url(response.content)

    def get_download_url(self, owner_id: str, region: str | Region, key: str) -> DownloadResponse:
        """Ask for a presigned URL to download ``key``."""
        response = self._http.request(
            *P.object_request("GetObject", owner_id, str(region), key), operation=C.OP_DOWNLOAD_URL
        )
        return P.parse_download_url(response.content)

    def delete(self, owner_id: str, region: str | Region, key: str) -> None:
        """Delete ``key``."""
        self._http.request(
            *P.object_request("DeleteObject", owner_id, str(region), key), operation=C.OP_DELETE
        )

    def list_objects(
        self,
        owner_id: str,
        region: str | Region,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ListObjectsResponse:
        """Fetch one page of an owner's objects in a region."""
        response = self._http.request(
            "GET",
            P.objects_path(owner_id, str(region)),
            operation=C.OP_LIST,
            params=P.list_params(cursor, limit),
        )
        return P.parse_list(response.content)


class ObjectClientSync:
    """Upload, download, list and delete objects (blocking); see :class:`ObjectClient`."""

    def __init__(
        self,
        http: SyncHTTP,
        *,
        default_owner_id: str | None = None,
        default_region: str | Region | None = None,
    ) -> None:
        self._http = http
        self.api = ObjectApiSync(http)
        self.default_owner_id = default_owner_id
        self.default_region = str(default_region) if default_region else None

    def _where(self, owner_id: str | None, region: str | Region | None) -> tuple[str, str]:
        return P.resolve_scope(
            owner_id,
            region,
            default_owner_id=self.default_owner_id,
            default_region=self.default_region,
        )

    def put(
        self,
        *,
        key: str,
        data: UploadDataSync,
        owner_id: str | None = None,
        region: str | Region | None = None,
        size: int | None = None,
        content_type: str | None = None,
    ) -> PutObjectResult:
        """Upload an object, replacing any object with the same key.

        Args:
            key: The object's key (up to 1024 bytes).
            data: ``bytes``, a binary file object (read from its current position) or an
                iterator of ``bytes``; streams go up in chunks, never read whole.
            owner_id: The workspace id; defaults to the client's.
            region: The region; defaults to the client's.
            size: The number of bytes ``data`` holds. Needed for iterators and
                unseekable files; must match for ``bytes``.
            content_type: Stored with the object and returned on download.

        Returns:
            The storage's ETag of the new object.

        Raises:
            RenderError: Bad arguments, or the data's length differs from ``size``.
            ClientError: The storage refused the request (sanitized, with ``status_code``).
            ServerError: The storage failed or could not be reached.
        """
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        nbytes = P.resolve_size(data, size)
        target = self.api.get_upload_url(owner, reg, key, nbytes)
        P.check_max_size(nbytes, target.max_size_bytes)
        headers = P.upload_headers(nbytes, content_type)
        counter = P.ByteCounter(nbytes)
        content: Iterator[bytes]
        if isinstance(data, bytes | bytearray | memoryview):
            content = _byte_chunks(data)
        elif hasattr(data, "read"):
            content = _file_chunks(data, counter)
        elif isinstance(data, Iterable):
            content = _iter_chunks(data, counter)
        else:
            raise RenderError(
                f"data must be bytes, a binary file or a byte iterator, not {type(data).__name__}"
            )
        with map_transport_errors(C.OP_UPLOAD):
            response = self._http.client().request(
                "PUT", target.url, content=content, headers=headers, timeout=P.TRANSFER_TIMEOUT
            )
        if not response.is_success:
            raise P.storage_error(response, C.OP_UPLOAD)
        return PutObjectResult(etag=response.headers.get("ETag"))

    def get(
        self, *, key: str, owner_id: str | None = None, region: str | Region | None = None
    ) -> ObjectData:
        """Download an object into memory; see :meth:`ObjectClient.get`."""
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        target = self.api.get_download_url(owner, reg, key)
        with map_transport_errors(C.OP_DOWNLOAD):
            response = self._http.client().get(target.url, timeout=P.TRANSFER_TIMEOUT)
        if not response.is_success:
            raise P.storage_error(response, C.OP_DOWNLOAD)
        return P.object_data(response)

    def stream(
        self,
        *,
        key: str,
        owner_id: str | None = None,
        region: str | Region | None = None,
        chunk_size: int = C.CHUNK_SIZE,
    ) -> Generator[bytes, None, None]:
        """Download an object chunk by chunk; see :meth:`ObjectClient.stream`."""
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        target = self.api.get_download_url(owner, reg, key)
        with (
            map_transport_errors(C.OP_DOWNLOAD),
            self._http.client().stream("GET", target.url, timeout=P.TRANSFER_TIMEOUT) as response,
        ):
            if not response.is_success:
                response.read()
                raise P.storage_error(response, C.OP_DOWNLOAD)
            yield from response.iter_bytes(chunk_size)

    def download(
        self,
        *,
        key: str,
        file: str | os.PathLike[str] | BinaryIO | IO[bytes],
        owner_id: str | None = None,
        region: str | Region | None = None,
    ) -> int:
        """Download an object into a file, streaming; see :meth:`ObjectClient.download`."""
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
            try:
                with open(tmp, "wb") as out:
                    written = self.download(key=key, file=out, owner_id=owner_id, region=region)
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            return written
        written = 0
        with contextlib.closing(self.stream(key=key, owner_id=owner_id, region=region)) as chunks:
            for chunk in chunks:
                file.write(chunk)
                written += len(chunk)
        return written

    def delete(
        self, *, key: str, owner_id: str | None = None, region: str | Region | None = None
    ) -> None:
        """Delete an object; see :meth:`ObjectClient.delete`."""
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        self.api.delete(owner, reg, key)

    def list(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ListObjectsResponse:
        """Fetch one page of objects; see :meth:`ObjectClient.list`."""
        owner, reg = self._where(owner_id, region)
        return self.api.list_objects(owner, reg, cursor=cursor, limit=limit)

    def iter_pages(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        cursor: str | None = None,
        limit: int | None = C.DEFAULT_PAGE_SIZE,
    ) -> Iterator[ListObjectsResponse]:
        """Iterate over every page of objects, starting at ``cursor``."""
        owner, reg = self._where(owner_id, region)
        while True:
            page = self.api.list_objects(owner, reg, cursor=cursor, limit=limit)
            yield page
            cursor = P.next_cursor(page, cursor)
            if cursor is None:
                return

    def iter(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        limit: int | None = C.DEFAULT_PAGE_SIZE,
    ) -> Iterator[ObjectMetadata]:
        """Iterate over every object, fetching pages as needed."""
        for page in self.iter_pages(owner_id=owner_id, region=region, limit=limit):
            yield from page.objects

    def scoped(self, *, owner_id: str, region: str | Region) -> ScopedObjectClientSync:
        """A client bound to one owner and region (both required; no env fallback)."""
        owner, reg = P.scoped_args(owner_id, str(region))
        return ScopedObjectClientSync(self, owner_id=owner, region=reg)


class ScopedObjectClientSync:
    """A :class:`ObjectClientSync` bound to one owner and region."""

    def __init__(self, client: ObjectClientSync, *, owner_id: str, region: str | Region) -> None:
        self._client = client
        self.owner_id, self.region = P.scoped_args(owner_id, str(region))

    def put(
        self,
        *,
        key: str,
        data: UploadDataSync,
        size: int | None = None,
        content_type: str | None = None,
    ) -> PutObjectResult:
        """Upload an object; see :meth:`ObjectClientSync.put`."""
        return self._client.put(
            key=key,
            data=data,
            size=size,
            content_type=content_type,
            owner_id=self.owner_id,
            region=self.region,
        )

    def get(self, *, key: str) -> ObjectData:
        """Download an object; see :meth:`ObjectClientSync.get`."""
        return self._client.get(key=key, owner_id=self.owner_id, region=self.region)

    def stream(self, *, key: str, chunk_size: int = C.CHUNK_SIZE) -> Generator[bytes, None, None]:
        """Download an object in chunks; see :meth:`ObjectClientSync.stream`."""
        return self._client.stream(
            key=key, owner_id=self.owner_id, region=self.region, chunk_size=chunk_size
        )

    def download(self, *, key: str, file: str | os.PathLike[str] | BinaryIO | IO[bytes]) -> int:
        """Download an object into a file; see :meth:`ObjectClientSync.download`."""
        return self._client.download(key=key, file=file, owner_id=self.owner_id, region=self.region)

    def delete(self, *, key: str) -> None:
        """Delete an object; see :meth:`ObjectClientSync.delete`."""
        self._client.delete(key=key, owner_id=self.owner_id, region=self.region)

    def list(self, *, cursor: str | None = None, limit: int | None = None) -> ListObjectsResponse:
        """Fetch one page of objects; see :meth:`ObjectClientSync.list`."""
        return self._client.list(
            owner_id=self.owner_id, region=self.region, cursor=cursor, limit=limit
        )

    def iter_pages(
        self, *, cursor: str | None = None, limit: int | None = C.DEFAULT_PAGE_SIZE
    ) -> Iterator[ListObjectsResponse]:
        """Iterate over every page; see :meth:`ObjectClientSync.iter_pages`."""
        return self._client.iter_pages(
            owner_id=self.owner_id, region=self.region, cursor=cursor, limit=limit
        )

    def iter(self, *, limit: int | None = C.DEFAULT_PAGE_SIZE) -> Iterator[ObjectMetadata]:
        """Iterate over every object; see :meth:`ObjectClientSync.iter`."""
        return self._client.iter(owner_id=self.owner_id, region=self.region, limit=limit)


class StorageServiceSync:
    """``RenderSync().experimental.storage``: Render's storage products (``.objects``)."""

    def __init__(self, http: SyncHTTP) -> None:
        config = http.config
        self.objects = ObjectClientSync(
            http, default_owner_id=config.owner_id, default_region=config.region
        )


class ExperimentalServiceSync:
    """``RenderSync().experimental``: APIs that may still change (``.storage``)."""

    def __init__(self, http: SyncHTTP) -> None:
        self.storage = StorageServiceSync(http)

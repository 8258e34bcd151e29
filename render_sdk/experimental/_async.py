"""The asynchronous object storage client (``Render().experimental.storage.objects``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from .._errors import RenderError
from ..client._core import AsyncHTTP, map_transport_errors
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
    "ExperimentalService",
    "ObjectApi",
    "ObjectClient",
    "ScopedObjectClient",
    "StorageService",
    "UploadData",
]

#: What ``put`` uploads: bytes, a binary file (read in chunks) or an async byte iterator.
UploadData = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | AsyncIterable[bytes]


async def _file_chunks(file: Any, counter: P.ByteCounter) -> AsyncIterator[bytes]:
    # Blocking reads of a real file run in a worker thread, one chunk ahead of the socket;
    # in-memory buffers and files whose read() is a coroutine are read directly.
    if isinstance(file, io.BytesIO):
        mode = "inline"
    elif inspect.iscoroutinefunction(getattr(file, "read", None)):
        mode = "async"
    else:
        mode = "thread"

    async def read(n: int) -> Any:
        if mode == "inline":
            return file.read(n)
        if mode == "async":
            return await file.read(n)
        return await asyncio.to_thread(file.read, n)

    asked = 0

    def start() -> tuple[asyncio.Future[Any] | None, int]:
        nonlocal asked
        n = min(C.CHUNK_SIZE, counter.size - asked)
        if n <= 0:
            return None, 0
        asked += n
        return asyncio.ensure_future(read(n)), n

    ahead, n = start()
    try:
        while ahead is not None:
            chunk = await ahead
            ahead = None
            asked -= n - len(chunk or b"")  # a short read (pipes) asks again for the rest
            if not chunk:
                break
            ahead, n = start()
            yield counter.feed(chunk)
    finally:
        if ahead is not None:
            # The caller stopped early: let the read in flight finish before they close
            # the file.
            with contextlib.suppress(Exception):
                await ahead
    counter.finish()


def _flush_and_sync(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


async def _byte_chunks(data: bytes | bytearray | memoryview) -> AsyncIterator[bytes]:
    for piece in P.byte_slices(data):
        yield bytes(piece)


async def _iter_chunks(data: AsyncIterable[Any], counter: P.ByteCounter) -> AsyncIterator[bytes]:
    async for chunk in data:
        if chunk:
            yield counter.feed(chunk)
    counter.finish()


class ObjectApi:
    """The object storage API calls, one request each (presigned URLs, delete, list).

    Args:
        http: The client's transport (from ``render_sdk.client._core``).
    """

    def __init__(self, http: AsyncHTTP) -> None:
        self._http = http

    async def get_upload_url(
        self, owner_id: str, region: str | Region, key: str, size_bytes: int
    ) -> UploadResponse:
        """Ask for a presigned URL to upload ``size_bytes`` bytes under ``key``."""
        response = await self._http.request(
            *P.object_request("PutObject", owner_id, str(region), key),
            operation=C.OP_UPLOAD_URL,
            content=P.put_body(size_bytes),
        )
        return P.parse_upload_url(response.content)

    async def get_download_url(
        self, owner_id: str, region: str | Region, key: str
    ) -> DownloadResponse:
        """Ask for a presigned URL to download ``key``."""
        response = await self._http.request(
            *P.object_request("GetObject", owner_id, str(region), key), operation=C.OP_DOWNLOAD_URL
        )
        return P.parse_download_url(response.content)

    async def delete(self, owner_id: str, region: str | Region, key: str) -> None:
        """Delete ``key``."""
        await self._http.request(
            *P.object_request("DeleteObject", owner_id, str(region), key), operation=C.OP_DELETE
        )

    async def list_objects(
        self,
        owner_id: str,
        region: str | Region,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ListObjectsResponse:
        """Fetch one page of an owner's objects in a region."""
        response = await self._http.request(
            "GET",
            P.objects_path(owner_id, str(region)),
            operation=C.OP_LIST,
            params=P.list_params(cursor, limit),
        )
        return P.parse_list(response.content)


class ObjectClient:
    """Upload, download, list and delete objects.

    ``owner_id`` and ``region`` may be given per call; otherwise the client's defaults
    (``Render(owner_id=..., region=...)``, or ``RENDER_WORKSPACE_ID`` / ``RENDER_REGION``)
    are used.

    Example::

        objects = Render().experimental.storage.objects
        await objects.put(key="reports/today.csv", data=b"a,b\\n", content_type="text/csv")
        obj = await objects.get(key="reports/today.csv")
        async for page in objects.iter_pages():
            ...
    """

    def __init__(
        self,
        http: AsyncHTTP,
        *,
        default_owner_id: str | None = None,
        default_region: str | Region | None = None,
    ) -> None:
        self._http = http
        self.api = ObjectApi(http)
        self.default_owner_id = default_owner_id
        self.default_region = str(default_region) if default_region else None

    def _where(self, owner_id: str | None, region: str | Region | None) -> tuple[str, str]:
        return P.resolve_scope(
            owner_id,
            region,
            default_owner_id=self.default_owner_id,
            default_region=self.default_region,
        )

    async def put(
        self,
        *,
        key: str,
        data: UploadData,
        owner_id: str | None = None,
        region: str | Region | None = None,
        size: int | None = None,
        content_type: str | None = None,
    ) -> PutObjectResult:
        """Upload an object, replacing any object with the same key.

        Streams (files, iterators) go up in chunks with an explicit ``Content-Length``
        and are never read whole into memory.

        Args:
            key: The object's key (up to 1024 bytes).
            data: ``bytes``, a binary file object (read from its current position) or an
                async iterator of ``bytes``.
            owner_id: The workspace id; defaults to the client's.
            region: The region; defaults to the client's.
            size: The number of bytes ``data`` holds. Needed for iterators and
                unseekable files; must match for ``bytes``.
            content_type: Stored with the object and returned on download.

        Returns:
            The storage's ETag of the new object.

        Raises:
            RenderError: Bad arguments, or the data's length differs from ``size``.
            ClientError: The storage refused the request (sanitized message, with
                ``status_code``).
            ServerError: The storage failed or could not be reached.
        """
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        nbytes = P.resolve_size(data, size)
        target = await self.api.get_upload_url(owner, reg, key, nbytes)
        P.check_max_size(nbytes, target.max_size_bytes)
        headers = P.upload_headers(nbytes, content_type)
        counter = P.ByteCounter(nbytes)
        content: AsyncIterator[bytes]
        if isinstance(data, bytes | bytearray | memoryview):
            content = _byte_chunks(data)
        elif hasattr(data, "read"):
            content = _file_chunks(data, counter)
        elif isinstance(data, AsyncIterable):
            content = _iter_chunks(data, counter)
        else:
            raise RenderError(
                f"data must be bytes, a binary file or an async byte iterator, "
                f"not {type(data).__name__}"
            )
        with map_transport_errors(C.OP_UPLOAD):
            response = await self._http.client().request(
                "PUT", target.url, content=content, headers=headers, timeout=P.TRANSFER_TIMEOUT
            )
        if not response.is_success:
            raise P.storage_error(response, C.OP_UPLOAD)
        return PutObjectResult(etag=response.headers.get("ETag"))

    async def get(
        self, *, key: str, owner_id: str | None = None, region: str | Region | None = None
    ) -> ObjectData:
        """Download an object into memory (see :meth:`stream` / :meth:`download` for large ones).

        Raises:
            ClientError: No such object (``status_code`` 404), or access denied.
            ServerError: The storage failed or could not be reached.
        """
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        target = await self.api.get_download_url(owner, reg, key)
        with map_transport_errors(C.OP_DOWNLOAD):
            response = await self._http.client().get(target.url, timeout=P.TRANSFER_TIMEOUT)
        if not response.is_success:
            raise P.storage_error(response, C.OP_DOWNLOAD)
        return P.object_data(response)

    async def stream(
        self,
        *,
        key: str,
        owner_id: str | None = None,
        region: str | Region | None = None,
        chunk_size: int | None = C.CHUNK_SIZE,
    ) -> AsyncGenerator[bytes, None]:
        """Download an object chunk by chunk, never holding it whole.

        Close the iterator if you stop early (``contextlib.aclosing``), so the connection
        is released at once.

        Args:
            key: The object's key.
            owner_id: The workspace id; defaults to the client's.
            region: The region; defaults to the client's.
            chunk_size: The size of the chunks yielded (the last may be shorter), or None
                for chunks as they arrive.

        Yields:
            The object's bytes.
        """
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        target = await self.api.get_download_url(owner, reg, key)
        with map_transport_errors(C.OP_DOWNLOAD):
            async with self._http.client().stream(
                "GET", target.url, timeout=P.TRANSFER_TIMEOUT
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise P.storage_error(response, C.OP_DOWNLOAD)
                async for chunk in response.aiter_bytes(chunk_size):
                    yield chunk

    async def download(
        self,
        *,
        key: str,
        file: str | os.PathLike[str] | BinaryIO | IO[bytes],
        owner_id: str | None = None,
        region: str | Region | None = None,
    ) -> int:
        """Download an object into a file, streaming.

        A path is written atomically: the bytes go to a temporary file next to it that
        replaces ``file`` only once complete, so a failed download leaves nothing behind.
        A file object is written from its position.

        Returns:
            The number of bytes written.
        """
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
            out = await asyncio.to_thread(open, tmp, "wb")
            try:
                with out:
                    written = await self.download(
                        key=key, file=out, owner_id=owner_id, region=region
                    )
                    # Durable before the rename, as the sync client: a crash never leaves
                    # an empty file under the final name.
                    await asyncio.to_thread(_flush_and_sync, out)
                await asyncio.to_thread(os.replace, tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            return written
        written = 0
        buffer = bytearray()
        pending: asyncio.Future[Any] | None = None
        try:
            async with contextlib.aclosing(
                self.stream(key=key, owner_id=owner_id, region=region, chunk_size=None)
            ) as chunks:
                async for chunk in chunks:
                    buffer += chunk
                    if len(buffer) >= C.CHUNK_SIZE:
                        # One write in flight in a worker thread while the next chunk
                        # is received.
                        if pending is not None:
                            await pending
                        pending = asyncio.ensure_future(asyncio.to_thread(file.write, buffer))
                        written += len(buffer)
                        buffer = bytearray()
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await asyncio.to_thread(file.write, buffer)
                written += len(buffer)
        finally:
            if pending is not None:
                with contextlib.suppress(Exception):
                    await pending
        return written

    async def delete(
        self, *, key: str, owner_id: str | None = None, region: str | Region | None = None
    ) -> None:
        """Delete an object.

        Raises:
            ClientError: No such object (``status_code`` 404).
        """
        owner, reg = self._where(owner_id, region)
        P.check_key(key)
        await self.api.delete(owner, reg, key)

    async def list(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> ListObjectsResponse:
        """Fetch one page of objects, ordered by key.

        Args:
            owner_id: The workspace id; defaults to the client's.
            region: The region; defaults to the client's.
            cursor: ``next_cursor`` of the previous page.
            limit: Page size (the server's default when None).
        """
        owner, reg = self._where(owner_id, region)
        return await self.api.list_objects(owner, reg, cursor=cursor, limit=limit)

    async def iter_pages(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        cursor: str | None = None,
        limit: int | None = C.DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[ListObjectsResponse]:
        """Iterate over every page of objects, starting at ``cursor``."""
        owner, reg = self._where(owner_id, region)
        while True:
            page = await self.api.list_objects(owner, reg, cursor=cursor, limit=limit)
            yield page
            cursor = P.next_cursor(page, cursor)
            if cursor is None:
                return

    async def iter(
        self,
        *,
        owner_id: str | None = None,
        region: str | Region | None = None,
        limit: int | None = C.DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[ObjectMetadata]:
        """Iterate over every object, fetching pages of ``limit`` as needed."""
        async for page in self.iter_pages(owner_id=owner_id, region=region, limit=limit):
            for obj in page.objects:
                yield obj

    def scoped(self, *, owner_id: str, region: str | Region) -> ScopedObjectClient:
        """A client bound to one owner and region (both required; no env fallback)."""
        owner, reg = P.scoped_args(owner_id, str(region))
        return ScopedObjectClient(self, owner_id=owner, region=reg)


class ScopedObjectClient:
    """An :class:`ObjectClient` bound to one owner and region.

    Args:
        client: The client to delegate to.
        owner_id: The workspace id of every call.
        region: The region of every call.
    """

    def __init__(self, client: ObjectClient, *, owner_id: str, region: str | Region) -> None:
        self._client = client
        self.owner_id, self.region = P.scoped_args(owner_id, str(region))

    async def put(
        self,
        *,
        key: str,
        data: UploadData,
        size: int | None = None,
        content_type: str | None = None,
    ) -> PutObjectResult:
        """Upload an object; see :meth:`ObjectClient.put`."""
        return await self._client.put(
            key=key,
            data=data,
            size=size,
            content_type=content_type,
            owner_id=self.owner_id,
            region=self.region,
        )

    async def get(self, *, key: str) -> ObjectData:
        """Download an object; see :meth:`ObjectClient.get`."""
        return await self._client.get(key=key, owner_id=self.owner_id, region=self.region)

    def stream(self, *, key: str, chunk_size: int = C.CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
        """Download an object in chunks; see :meth:`ObjectClient.stream`."""
        return self._client.stream(
            key=key, owner_id=self.owner_id, region=self.region, chunk_size=chunk_size
        )

    async def download(
        self, *, key: str, file: str | os.PathLike[str] | BinaryIO | IO[bytes]
    ) -> int:
        """Download an object into a file; see :meth:`ObjectClient.download`."""
        return await self._client.download(
            key=key, file=file, owner_id=self.owner_id, region=self.region
        )

    async def delete(self, *, key: str) -> None:
        """Delete an object; see :meth:`ObjectClient.delete`."""
        await self._client.delete(key=key, owner_id=self.owner_id, region=self.region)

    async def list(
        self, *, cursor: str | None = None, limit: int | None = None
    ) -> ListObjectsResponse:
        """Fetch one page of objects; see :meth:`ObjectClient.list`."""
        return await self._client.list(
            owner_id=self.owner_id, region=self.region, cursor=cursor, limit=limit
        )

    def iter_pages(
        self, *, cursor: str | None = None, limit: int | None = C.DEFAULT_PAGE_SIZE
    ) -> AsyncIterator[ListObjectsResponse]:
        """Iterate over every page; see :meth:`ObjectClient.iter_pages`."""
        return self._client.iter_pages(
            owner_id=self.owner_id, region=self.region, cursor=cursor, limit=limit
        )

    def iter(self, *, limit: int | None = C.DEFAULT_PAGE_SIZE) -> AsyncIterator[ObjectMetadata]:
        """Iterate over every object; see :meth:`ObjectClient.iter`."""
        return self._client.iter(owner_id=self.owner_id, region=self.region, limit=limit)


class StorageService:
    """``render.experimental.storage``: Render's storage products (``.objects``)."""

    def __init__(self, http: AsyncHTTP) -> None:
        config = http.config
        self.objects = ObjectClient(
            http, default_owner_id=config.owner_id, default_region=config.region
        )


class ExperimentalService:
    """``render.experimental``: APIs that may still change (``.storage``)."""

    def __init__(self, http: AsyncHTTP) -> None:
        self.storage = StorageService(http)

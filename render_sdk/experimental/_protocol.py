"""Object storage logic without I/O, shared by the async and the sync clients.

Argument resolution (owner, region, size), request paths, response parsing, the
byte-count guard of uploads and the sanitized errors of presigned-URL transfers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx

from .. import _wire
from .._errors import ClientError, RateLimitError, RenderError, ServerError, WireFormatError
from ..client._core import ConfigurationError, parse_retry_after
from ..models import GetObjectOutput, PutObjectInput, PutObjectOutput
from ..models import ListObjectsResponse as WireListObjectsResponse
from ._constants import CHUNK_SIZE
from ._types import DownloadResponse, ListObjectsResponse, ObjectMetadata, UploadResponse

__all__ = [
    "ByteCounter",
    "byte_slices",
    "check_key",
    "check_max_size",
    "list_params",
    "object_path",
    "objects_path",
    "parse_download_url",
    "parse_list",
    "parse_upload_url",
    "put_body",
    "resolve_owner_id",
    "resolve_region",
    "resolve_size",
    "scoped_args",
    "storage_error",
    "storage_error_message",
]

_OWNER_MISSING: Final = (
    "owner_id is required. Provide it as a parameter or set the RENDER_WORKSPACE_ID "
    "environment variable."
)
_REGION_MISSING: Final = (
    "region is required. Provide it as a parameter or set the RENDER_REGION environment variable."
)

# The messages presigned-URL failures are reduced to: a storage backend's raw error
# body (S3 XML naming buckets and request ids) is never shown.
_STORAGE_MESSAGES: Final[Mapping[int, str]] = {
    400: "bad request",
    401: "access denied",
    403: "access denied",
    404: "object not found",
    409: "conflict",
    413: "object too large",
    429: "rate limited, please try again later",
    500: "storage service temporarily unavailable",
    502: "storage service temporarily unavailable",
    503: "storage service temporarily unavailable",
    504: "storage service temporarily unavailable",
}


# --------------------------------------------------------------------------- arguments


def resolve_owner_id(owner_id: str | None, default: str | None) -> str:
    """The owner id of a call: the argument, else the client's default.

    Raises:
        ConfigurationError: Neither is set.
    """
    resolved = owner_id or default
    if not resolved:
        raise ConfigurationError(_OWNER_MISSING)
    return str(resolved)


def resolve_region(region: str | None, default: str | None) -> str:
    """The region of a call: the argument, else the client's default.

    Raises:
        ConfigurationError: Neither is set.
    """
    resolved = region or default
    if not resolved:
        raise ConfigurationError(_REGION_MISSING)
    # str(Region.OREGON) is "oregon"; a plain string passes through.
    return str(resolved)


def scoped_args(owner_id: str, region: str) -> tuple[str, str]:
    """Validate the arguments of ``scoped()``: both required, no environment fallback."""
    if not owner_id:
        raise ConfigurationError("scoped() needs a non-empty owner_id")
    if not region:
        raise ConfigurationError("scoped() needs a non-empty region")
    return str(owner_id), str(region)


def check_key(key: str) -> str:
    """Reject keys no storage accepts before any request is made."""
    if not isinstance(key, str):
        raise ClientError(f"key must be a string, not {type(key).__name__}")
    if not key:
        raise ClientError("key must not be empty")
    return key


def _remaining_file_size(data: Any) -> int | None:
    """The bytes left in a seekable file from its current position, else None."""
    try:
        if not data.seekable():
            return None
        position = data.tell()
        try:
            fileno = data.fileno()
        except (AttributeError, OSError, ValueError):
            end = data.seek(0, os.SEEK_END)
            data.seek(position)
        else:
            end = os.fstat(fileno).st_size
        return max(0, int(end) - int(position))
    except (AttributeError, OSError, ValueError):
        return None


def resolve_size(data: Any, size: int | None) -> int:
    """The number of bytes an upload will send.

    ``bytes`` (or ``bytearray``/``memoryview``) know their size; a given ``size`` must
    match it. A seekable binary file's size is what remains from its position when
    ``size`` is not given. Other streams (pipes, iterators) need ``size``.

    Raises:
        RenderError: A mismatching or negative size, or a stream without one.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise RenderError("size must be a non-negative integer")
    if isinstance(data, bytes | bytearray | memoryview):
        actual = memoryview(data).nbytes
        if size is not None and size != actual:
            raise RenderError(
                f"Size mismatch: provided size {size} does not match actual size {actual}"
            )
        return actual
    if isinstance(data, str):
        raise RenderError("data must be bytes, a binary file or a byte iterator, not str")
    if size is None and hasattr(data, "read"):
        size = _remaining_file_size(data)
    if size is None:
        raise RenderError("size is required for stream uploads")
    return size


def check_max_size(size: int, max_size: int) -> None:
    """The storage must accept exactly the size we will send.

    Raises:
        ClientError: It presigned another size.
    """
    if size != max_size:
        raise ClientError(
            f"File size {size} bytes does not match expected size of {max_size} bytes"
        )


class ByteCounter:
    """Counts the bytes a stream yields against the size declared for the upload.

    The storage refuses an upload of another length; failing here names the cause
    (the caller's stream) instead of a protocol error on the socket.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.sent = 0

    def feed(self, chunk: Any) -> bytes:
        """Check and return one chunk.

        Raises:
            RenderError: A chunk that is not bytes, or more bytes than declared.
        """
        if isinstance(chunk, bytearray | memoryview):
            chunk = bytes(chunk)
        if not isinstance(chunk, bytes):
            raise RenderError(
                f"upload data must yield bytes, got {type(chunk).__name__} "
                "(open files in binary mode)"
            )
        self.sent += len(chunk)
        if self.sent > self.size:
            raise RenderError(f"upload data is longer than the declared size of {self.size} bytes")
        return chunk

    def finish(self) -> None:
        """Raises RenderError when the stream ended before the declared size."""
        if self.sent != self.size:
            raise RenderError(
                f"upload data ended after {self.sent} of the declared {self.size} bytes"
            )


def byte_slices(data: bytes | bytearray | memoryview) -> list[memoryview]:
    """Views of ``data`` in upload-sized pieces (no copies).

    Sending one large buffer in a single write is several times slower through httpx and
    h11 than sending it in chunks.
    """
    view = memoryview(data).cast("B")
    return [view[i : i + CHUNK_SIZE] for i in range(0, view.nbytes, CHUNK_SIZE)]


# --------------------------------------------------------------------------- requests


def objects_path(owner_id: str, region: str) -> str:
    """The API path of an owner's objects in a region (relative to ``/v1``)."""
    return f"/objects/{quote(owner_id, safe='')}/{quote(region, safe='')}"


def object_path(owner_id: str, region: str, key: str) -> str:
    """The API path of one object. The key is one escaped segment, so ``?``, ``#``,
    ``%`` and dot segments reach the server as written."""
    text = quote(key, safe="")
    if text in (".", ".."):
        text = text.replace(".", "%2E")
    return f"{objects_path(owner_id, region)}/{text}"


def put_body(size: int) -> bytes:
    """The JSON body of the upload-URL request."""
    return _wire.dumps(PutObjectInput(size_bytes=size), _wire.REST)


def list_params(cursor: str | None, limit: int | None) -> dict[str, str | int]:
    """Query parameters of a list request (omitted when None)."""
    params: dict[str, str | int] = {}
    if cursor:
        params["cursor"] = cursor
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RenderError("limit must be a positive integer")
        params["limit"] = limit
    return params


# --------------------------------------------------------------------------- responses


def _unexpected(what: str, exc: WireFormatError) -> RenderError:
    return RenderError(f"Failed to {what}: unexpected response: {exc}")


def parse_upload_url(raw: bytes) -> UploadResponse:
    """Decode a ``PutObjectOutput``."""
    try:
        out = _wire.loads(PutObjectOutput, raw, _wire.REST)
    except WireFormatError as exc:
        raise _unexpected("get upload URL", exc) from exc
    if not out.url:
        raise RenderError("Failed to get upload URL: the response has no url")
    return UploadResponse(url=out.url, expires_at=out.expires_at, max_size_bytes=out.max_size_bytes)


def parse_download_url(raw: bytes) -> DownloadResponse:
    """Decode a ``GetObjectOutput``."""
    try:
        out = _wire.loads(GetObjectOutput, raw, _wire.REST)
    except WireFormatError as exc:
        raise _unexpected("get download URL", exc) from exc
    if not out.url:
        raise RenderError("Failed to get download URL: the response has no url")
    return DownloadResponse(url=out.url, expires_at=out.expires_at)


def parse_list(raw: bytes) -> ListObjectsResponse:
    """Decode a ``ListObjectsResponse`` into the public page type."""
    try:
        page = _wire.loads(WireListObjectsResponse, raw, _wire.REST)
    except WireFormatError as exc:
        raise _unexpected("list objects", exc) from exc
    objects = [
        ObjectMetadata(
            key=item.object.key,
            size=item.object.size_bytes,
            last_modified=item.object.last_modified,
            cursor=item.cursor or None,
        )
        for item in page.items
        if item.object is not None
    ]
    next_cursor = page.next_cursor or None
    if page.has_next and next_cursor is None and page.items:
        # Some servers leave nextCursor out and expect the last item's cursor.
        next_cursor = page.items[-1].cursor or None
    return ListObjectsResponse(
        objects=objects,
        has_next=page.has_next,
        next_cursor=next_cursor if page.has_next else None,
    )


def storage_error_message(status_code: int) -> str:
    """The sanitized text of a presigned-URL failure status."""
    return _STORAGE_MESSAGES.get(status_code, "unexpected error")


def storage_error(response: httpx.Response, operation: str) -> RenderError:
    """Map a failed presigned-URL transfer to an error without the storage's raw body.

    429 is :class:`RateLimitError`, other 4xx :class:`ClientError`, the rest
    :class:`ServerError`; ``status_code`` is set on each.
    """
    status = response.status_code
    text = f"{operation} failed with status {status}: {storage_error_message(status)}"
    if status == 429:
        return RateLimitError(
            text,
            status_code=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if 400 <= status < 500:
        return ClientError(text, status_code=status)
    return ServerError(text, status_code=status)

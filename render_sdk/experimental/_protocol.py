"""Object storage logic without I/O, shared by the async and the sync clients.

Argument resolution (owner, region, size), request paths, response parsing, the
byte-count guard of uploads and the sanitized errors of presigned-URL transfers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import httpx

from .. import _wire
from .._errors import ClientError, ConfigurationError, RenderError, WireFormatError
from .._gen.routes import OBJECTS_SERVICE
from .._routing import expand_segments
from ..client._core import QueryParams, error_for_status
from ..models import GetObjectOutput, PutObjectInput, PutObjectOutput
from ..models import ListObjectsResponse as WireListObjectsResponse
from ._constants import (
    CHUNK_SIZE,
    OP_DOWNLOAD_URL,
    OP_LIST,
    OP_UPLOAD_URL,
    TRANSFER_CONNECT_TIMEOUT,
    TRANSFER_STALL_TIMEOUT,
)
from ._types import (
    DownloadResponse,
    ListObjectsResponse,
    ObjectData,
    ObjectMetadata,
    UploadResponse,
)

__all__ = [
    "TRANSFER_TIMEOUT",
    "ByteCounter",
    "byte_slices",
    "check_key",
    "check_max_size",
    "list_params",
    "next_cursor",
    "object_data",
    "object_path",
    "objects_path",
    "parse_download_url",
    "parse_list",
    "parse_upload_url",
    "put_body",
    "resolve_owner_id",
    "resolve_region",
    "resolve_scope",
    "resolve_size",
    "scoped_args",
    "storage_error",
    "storage_error_message",
    "upload_headers",
]

_OWNER_MISSING: Final = (
    "owner_id is required. Provide it as a parameter or set the RENDER_WORKSPACE_ID "
    "environment variable."
)
_REGION_MISSING: Final = (
    "region is required. Provide it as a parameter or set the RENDER_REGION environment variable."
)

#: Timeouts of presigned-URL transfers (see the constants it is built from).
TRANSFER_TIMEOUT: Final = httpx.Timeout(TRANSFER_STALL_TIMEOUT, connect=TRANSFER_CONNECT_TIMEOUT)

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


def _argument_or_default(value: str | None, default: str | None, missing: str) -> str:
    resolved = value or default
    if not resolved:
        raise ConfigurationError(missing)
    # str(Region.OREGON) is "oregon"; a plain string passes through.
    return str(resolved)


def resolve_owner_id(owner_id: str | None, default: str | None) -> str:
    """The owner id of a call: the argument, else the client's default.

    Raises:
        ConfigurationError: Neither is set.
    """
    return _argument_or_default(owner_id, default, _OWNER_MISSING)


def resolve_region(region: str | None, default: str | None) -> str:
    """The region of a call: the argument, else the client's default.

    Raises:
        ConfigurationError: Neither is set.
    """
    return _argument_or_default(region, default, _REGION_MISSING)


def resolve_scope(
    owner_id: str | None,
    region: str | None,
    *,
    default_owner_id: str | None,
    default_region: str | None,
) -> tuple[str, str]:
    """The ``(owner id, region)`` of a call: each argument, else the client's default.

    Raises:
        ConfigurationError: An owner id or a region is set neither way.
    """
    return (
        resolve_owner_id(owner_id, default_owner_id),
        resolve_region(str(region) if region else None, default_region),
    )


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
    return _expand("ListObjects", owner_id=owner_id, region=region)


def object_request(rpc: str, owner_id: str, region: str, key: str) -> tuple[str, str]:
    """The method and API path (relative to ``/v1``) of ``rpc`` on one object.

    The key is one escaped segment, so ``/``, ``?``, ``#``, ``%`` and dot segments reach
    the server as written (the ``{key=**}`` template would also accept it unescaped).
    """
    return OBJECTS_SERVICE[rpc].method, _expand(rpc, owner_id=owner_id, region=region, key=key)


def _expand(rpc: str, **values: str) -> str:
    try:
        return expand_segments(OBJECTS_SERVICE[rpc], **values)
    except ValueError as exc:  # an empty owner id or region from the low-level ObjectApi
        raise ClientError(str(exc)) from None


def object_path(owner_id: str, region: str, key: str) -> str:
    """The API path of one object (every object rpc shares it), relative to ``/v1``."""
    return object_request("GetObject", owner_id, region, key)[1]


def put_body(size: int) -> bytes:
    """The JSON body of the upload-URL request."""
    return _wire.dumps(PutObjectInput(size_bytes=size), _wire.REST)


def list_params(cursor: str | None, limit: int | None) -> QueryParams:
    """Query parameters of a list request (omitted when None)."""
    params: QueryParams = {}
    if cursor:
        params["cursor"] = cursor
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RenderError("limit must be a positive integer")
        params["limit"] = limit
    return params


# --------------------------------------------------------------------------- responses


def _load(cls: type[_wire.M], raw: bytes, operation: str) -> _wire.M:
    try:
        return _wire.loads(cls, raw, _wire.REST)
    except WireFormatError as exc:
        raise RenderError(f"Failed to {operation}: unexpected response: {exc}") from exc


def _presigned_url(url: str, operation: str) -> str:
    if not url:
        raise RenderError(f"Failed to {operation}: the response has no url")
    return url


def parse_upload_url(raw: bytes) -> UploadResponse:
    """Decode a ``PutObjectOutput``."""
    out = _load(PutObjectOutput, raw, OP_UPLOAD_URL)
    return UploadResponse(
        url=_presigned_url(out.url, OP_UPLOAD_URL),
        expires_at=out.expires_at,
        max_size_bytes=out.max_size_bytes,
    )


def parse_download_url(raw: bytes) -> DownloadResponse:
    """Decode a ``GetObjectOutput``."""
    out = _load(GetObjectOutput, raw, OP_DOWNLOAD_URL)
    return DownloadResponse(url=_presigned_url(out.url, OP_DOWNLOAD_URL), expires_at=out.expires_at)


def parse_list(raw: bytes) -> ListObjectsResponse:
    """Decode a ``ListObjectsResponse`` into the public page type."""
    page = _load(WireListObjectsResponse, raw, OP_LIST)
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


def next_cursor(page: ListObjectsResponse, cursor: str | None) -> str | None:
    """The cursor of the page after ``page`` (asked for with ``cursor``), or None at the end.

    A server that ignores the cursor repeats it; iteration stops rather than loop.
    """
    if not page.has_next or not page.next_cursor or page.next_cursor == cursor:
        return None
    return page.next_cursor


def upload_headers(size: int, content_type: str | None) -> dict[str, str]:
    """Headers of the presigned upload: an explicit length, and the type when given."""
    headers = {"Content-Length": str(size)}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def object_data(response: httpx.Response) -> ObjectData:
    """An in-memory download from its (read, successful) response."""
    data = response.content
    return ObjectData(
        data=data,
        size=len(data),
        content_type=response.headers.get("Content-Type"),
        etag=response.headers.get("ETag"),
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
    return error_for_status(
        response, f"{operation} failed with status {status}: {storage_error_message(status)}"
    )

"""The public result types of object storage."""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field

__all__ = [
    "DownloadResponse",
    "ListObjectsResponse",
    "ObjectData",
    "ObjectMetadata",
    "OwnerID",
    "PutObjectResult",
    "Region",
    "UploadResponse",
]

#: A workspace (owner) id, for example ``"tea-d1abc2def3ghi4jk5lm6"``.
OwnerID = str


class Region(str, enum.Enum):
    """The regions of Render's object storage. Plain strings are accepted too."""

    FRANKFURT = "frankfurt"
    OHIO = "ohio"
    OREGON = "oregon"
    SINGAPORE = "singapore"
    VIRGINIA = "virginia"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class UploadResponse:
    """Where to upload an object's bytes (a presigned URL).

    Attributes:
        url: The presigned upload URL (PUT, no Authorization).
        expires_at: When the URL stops working.
        max_size_bytes: The size the upload must have.
    """

    url: str
    expires_at: _dt.datetime | None
    max_size_bytes: int


@dataclass(frozen=True)
class DownloadResponse:
    """Where to download an object's bytes (a presigned URL).

    Attributes:
        url: The presigned download URL (GET, no Authorization).
        expires_at: When the URL stops working.
    """

    url: str
    expires_at: _dt.datetime | None


@dataclass(frozen=True)
class PutObjectResult:
    """The outcome of an upload.

    Attributes:
        etag: The storage's ETag of the object, quotes included (``'"9a0364b9..."'``),
            when it sent one.
    """

    etag: str | None = None


@dataclass(frozen=True)
class ObjectData:
    """A downloaded object.

    Attributes:
        data: The object's bytes.
        size: ``len(data)``.
        content_type: The content type stored with the object, when known.
        etag: The object's ETag, when the storage sent one.
    """

    data: bytes = field(repr=False)
    size: int
    content_type: str | None = None
    etag: str | None = None


@dataclass(frozen=True)
class ObjectMetadata:
    """One stored object, as listed.

    Attributes:
        key: The object's key.
        size: Its size in bytes.
        last_modified: When it was last written.
        cursor: The list cursor that resumes after this object.
    """

    key: str
    size: int
    last_modified: _dt.datetime | None
    cursor: str | None = None


@dataclass(frozen=True)
class ListObjectsResponse:
    """One page of a listing.

    Attributes:
        objects: The objects of this page, ordered by key.
        has_next: Whether more objects follow.
        next_cursor: Pass it as ``cursor`` to get the next page; set only when ``has_next``.
    """

    objects: list[ObjectMetadata]
    has_next: bool
    next_cursor: str | None = None
